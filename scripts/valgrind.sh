#!/usr/bin/env bash
# valgrind.sh BUILD_DIR: runs every test program of a build under Valgrind
# memcheck and fails on any error or leak (definitely, indirectly or possibly
# lost; criterion.supp names the one kind of block left out, Criterion's own).
#
# Plain programs (samples, drivers) run with --error-exitcode. Criterion
# suites run each test in a worker process whose Valgrind errors do not
# change the suite's result, so every worker writes its own log (-q: only
# errors are logged) and any non-empty log fails the run. Criterion starts
# its workers with exec, which is traced; children a test forks itself
# (death tests, which abort or leak on purpose) are silent, and system
# programs a test starts (Graphviz's dot) are not traced.
set -uo pipefail
build=${1:?usage: valgrind.sh BUILD_DIR}
logs="$build/valgrind-logs"
rm -rf "$logs"
mkdir -p "$logs"
export RCGC_TEST_SCALE=${RCGC_TEST_SCALE:-20}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vg=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
    --show-leak-kinds=definite,indirect,possible --num-callers=20
    --suppressions="$here/criterion.supp")

plain() { # name args...
    local name=$1
    shift
    if "${vg[@]}" --error-exitcode=99 --log-file="$logs/$name.log" "$@" \
        >"$logs/$name.out" 2>&1; then
        echo "memcheck: $name clean"
    else
        echo "memcheck: $name FAILED"
        cat "$logs/$name.log" "$logs/$name.out" | head -60
        return 1
    fi
}

suite() { # name binary
    local name=$1 bin=$2 dir="$logs/$1"
    mkdir -p "$dir"
    "${vg[@]}" --trace-children=yes --child-silent-after-fork=yes \
        --trace-children-skip='/usr/*,/bin/*,/sbin/*' \
        --log-file="$dir/%p.log" "$bin" --jobs 1 \
        >"$dir/output.txt" 2>&1
    local rc=$?
    local bad
    bad=$(find "$dir" -name '*.log' -size +0 | head -5)
    if [ $rc -ne 0 ] || [ -n "$bad" ]; then
        echo "memcheck: $name FAILED (exit $rc)"
        tail -5 "$dir/output.txt"
        for f in $bad; do head -40 "$f"; done
        return 1
    fi
    echo "memcheck: $name clean ($(grep -o 'Tested: [0-9]*' "$dir/output.txt"))"
}

failed=0
for s in "$build"/samples/*; do
    [ -x "$s" ] && [ -f "$s" ] || continue
    name=$(basename "$s")
    args=()
    [ "$name" = demo ] && args=("$logs/demo-out")
    [ "$name" = leaky ] && continue # leaks on purpose
    plain "sample_$name" "$s" "${args[@]}" || failed=1
done
for d in stress_driver random_driver; do
    [ -x "$build/test/$d" ] || continue
    case $d in
    stress_driver) plain "$d" "$build/test/$d" 2 3 || failed=1 ;;
    random_driver) plain "$d" "$build/test/$d" --graphs 500 || failed=1 ;;
    esac
done
# Suites, two at a time.
pids=()
names=()
for t in "$build"/test/test_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    name=$(basename "$t")
    suite "$name" "$t" >"$logs/$name.result" 2>&1 &
    pids+=($!)
    names+=("$name")
    if ((${#pids[@]} == 2)); then
        for i in "${!pids[@]}"; do
            wait "${pids[$i]}" || failed=1
            cat "$logs/${names[$i]}.result"
        done
        pids=()
        names=()
    fi
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed=1
    cat "$logs/${names[$i]}.result"
done
exit $failed
