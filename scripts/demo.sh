#!/usr/bin/env bash
# Builds rcgc and runs the demo: a small object system with cycles, dropped,
# collected, reported and drawn (out/demo/*.dot, rendered to .svg and .png
# with Graphviz). Installs the Debian packages it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages "${BUILD_PACKAGES[@]}" graphviz
cmake -S . -B out/demo-build -DCMAKE_BUILD_TYPE=Release \
    -DRCGC_BUILD_TESTS=OFF -DRCGC_BUILD_SAMPLES=ON >/dev/null
cmake --build out/demo-build --parallel 2 --target demo >/dev/null
./out/demo-build/samples/demo out/demo
