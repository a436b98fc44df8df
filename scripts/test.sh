#!/usr/bin/env bash
# The whole test suite, as CI runs it: every test in a release build, again
# with debug checks under AddressSanitizer + UndefinedBehaviorSanitizer, the
# release build's programs under Valgrind memcheck, the plain drivers under
# ThreadSanitizer, and a short fuzz run of the collector. Installs the Debian
# packages it needs first. Exit status 0 only if everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"

stage() { printf '\n=== %s ===\n' "$*"; }
results=()

stage "release build: all tests"
cmake --workflow --preset release
results+=("release: ctest passed")

stage "debug checks + ASan + UBSan: all tests"
cmake --workflow --preset asan
results+=("asan+ubsan: ctest passed")

stage "Valgrind memcheck: samples, drivers and every suite (release build)"
scripts/valgrind.sh out/release
results+=("valgrind: no errors, no leaks")

stage "ThreadSanitizer: plain drivers"
if CC=${TSAN_CC:-gcc} cmake --workflow --preset tsan; then
    results+=("tsan: drivers passed")
else
    echo "ThreadSanitizer run failed" >&2
    exit 1
fi

stage "libFuzzer: collector model, ${FUZZ_SECONDS:-30} s"
if command -v clang >/dev/null; then
    CC=clang cmake -S . -B out/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DRCGC_FUZZ=ON -DRCGC_ASAN=ON -DRCGC_UBSAN=ON -DRCGC_BUILD_SAMPLES=OFF >/dev/null
    cmake --build out/fuzz --parallel 2 --target fuzz_collector >/dev/null
    mkdir -p out/fuzz/corpus
    out/fuzz/test/fuzz_collector -max_total_time="${FUZZ_SECONDS:-30}" \
        -print_final_stats=1 out/fuzz/corpus 2>&1 | tail -4
    results+=("fuzz: ${FUZZ_SECONDS:-30} s without a finding")
fi

stage "summary"
printf '%s\n' "${results[@]}"
echo "${#results[@]} passed, 0 failed"
