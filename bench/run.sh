#!/usr/bin/env bash
# Builds and runs the rcgc benchmark suite (workloads W1-W5, bench/README.md).
#
#   bench/run.sh            full sizes (about 10 minutes on 2 cores)
#   bench/run.sh --quick    smaller sizes, a couple of minutes
#
# Options:
#   --runs N        runs per benchmark (default 3; at least 3 for a median)
#   --only LIST     comma-separated subset of w1,w2,w3,w4,w5,instr (instr:
#                   callgrind counts for whichever of w1, w2, w4, w5 are chosen)
#   --no-instr      skip the callgrind instruction counts
#   --no-install    never install missing Debian packages
#   --timeout S     seconds one run may take (default 600, quick 120)
#   --snapshot REV  build the committed tree REV (e.g. HEAD) instead of the
#                   working tree, so edits in progress cannot leak in
#
# It configures a release build (-O2) in build-bench/ (or $RCGC_BENCH_BUILD;
# with --snapshot, build-bench-snapshot/),
# runs every benchmark round-robin, each under /usr/bin/time, and writes to
# bench/results/ (or $RCGC_BENCH_RESULTS): results.csv (medians, min, max
# per metric), results.md (the tables printed here), runs.tsv (every run),
# instr.tsv (callgrind counts), w3.dat and w3.png (W3 cost per touch against
# N; the plot when gnuplot is installed) and logs/.
# Missing tools are installed with apt-get (as root, or through sudo).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${RCGC_BENCH_BUILD:-$ROOT/build-bench}
RESULTS=${RCGC_BENCH_RESULTS:-$ROOT/bench/results}
QUICK=0
RUNS=3
ONLY=w1,w2,w3,w4,w5,instr
INSTALL=1
TIMEOUT=
SNAPSHOT=

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --no-instr) ONLY=${ONLY//instr/} ;;
    --no-install) INSTALL=0 ;;
    --timeout) TIMEOUT=$2; shift ;;
    --snapshot) SNAPSHOT=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
# A snapshot gets a build directory of its own: build-bench/ always holds
# the working tree, so rebuilding it after an edit measures the edit.
[ -n "$SNAPSHOT" ] && BUILD=$BUILD-snapshot
if ! [[ $RUNS =~ ^[0-9]+$ ]] || [ "$RUNS" -lt 1 ]; then
    echo "run.sh: bad --runs '$RUNS'" >&2
    exit 2
fi
if [ -z "$TIMEOUT" ]; then
    if [ $QUICK = 1 ]; then TIMEOUT=120; else TIMEOUT=600; fi
fi
selected() { [[ ",$ONLY," == *",$1,"* ]]; }
say() { printf '%s\n' "$*" >&2; }

# ---- tools -----------------------------------------------------------------

# Installs the Debian packages the suite needs and does not find. Required
# ones stop the run when they cannot be installed; optional ones (baselines,
# callgrind, the plot) are skipped with a message.
ensure_tools() {
    local required=() optional=()
    command -v cmake >/dev/null || required+=(cmake)
    command -v gcc >/dev/null || required+=(gcc)
    command -v make >/dev/null || required+=(make)
    command -v pkg-config >/dev/null || required+=(pkg-config)
    [ -x /usr/bin/time ] || required+=(time)
    [ -f /usr/include/uthash.h ] || required+=(uthash-dev)
    [ -f /usr/include/mimalloc.h ] || optional+=(libmimalloc-dev)
    pkg-config --exists bdw-gc 2>/dev/null || optional+=(libgc-dev)
    command -v valgrind >/dev/null || optional+=(valgrind)
    command -v setarch >/dev/null || optional+=(util-linux)
    command -v gnuplot >/dev/null || optional+=(gnuplot-nox)
    local all=("${required[@]}" "${optional[@]}")
    [ ${#all[@]} -eq 0 ] && return 0
    local sudo=
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null && sudo=sudo
    fi
    if [ $INSTALL = 1 ] && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
        say "run.sh: installing missing Debian packages: ${all[*]}"
        $sudo apt-get update -qq >&2 || true
        for p in "${all[@]}"; do
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$p" >&2 ||
                say "run.sh: could not install $p"
        done
    else
        say "run.sh: missing Debian packages (not installing): ${all[*]}"
    fi
    for p in "${required[@]}"; do
        case $p in
        time) [ -x /usr/bin/time ] ;;
        uthash-dev) [ -f /usr/include/uthash.h ] ;;
        *) command -v "$p" >/dev/null ;;
        esac || { say "run.sh: $p is required"; exit 1; }
    done
}

# ---- build -----------------------------------------------------------------

# What was measured, for the report: a commit, and whether the working tree
# differed from it.
REVISION=
build() {
    local src=$ROOT
    if [ -n "$SNAPSHOT" ]; then
        src=$BUILD-src
        rm -rf "$src"
        mkdir -p "$src"
        git -C "$ROOT" archive "$SNAPSHOT" | tar -x -C "$src"
        REVISION="$(git -C "$ROOT" rev-parse --short "$SNAPSHOT") (snapshot)"
    else
        REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
        if [ -n "$(git -C "$ROOT" status --porcelain -- src include CMakeLists.txt bench/*.c bench/*.h 2>/dev/null)" ]; then
            REVISION="$REVISION + uncommitted changes"
        fi
    fi
    say "run.sh: building release (-O2) of $REVISION in $BUILD"
    # A build directory remembers its source tree; switching between the
    # working tree and a snapshot needs a fresh cache.
    if [ -f "$BUILD/CMakeCache.txt" ] &&
        ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$src" "$BUILD/CMakeCache.txt"; then
        rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
    fi
    cmake -S "$src" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" -DRCGC_BUILD_BENCH=ON \
        -DRCGC_BUILD_TESTS=OFF -DRCGC_BUILD_SAMPLES=OFF -DRCGC_INSTALL=OFF \
        -DRCGC_DEBUG=OFF -DRCGC_STRESS=OFF >"$LOGS/cmake.log" 2>&1 ||
        { cat "$LOGS/cmake.log" >&2; exit 1; }
    grep '^-- bench:' "$LOGS/cmake.log" >&2 || true
    cmake --build "$BUILD" -j "$(nproc)" >"$LOGS/build.log" 2>&1 ||
        { cat "$LOGS/build.log" >&2; exit 1; }
    BIN=$BUILD/bench
}

# ---- jobs --------------------------------------------------------------------

# A job is one benchmark row: workload, implementation, parameters (items
# joined by ';'), then the program and its arguments. Rows whose program was
# not built (a missing baseline) are left out.
JOBS=()
job() {
    local wl=$1 impl=$2 params=$3 prog=$4
    shift 4
    if [ ! -x "$BIN/$prog" ]; then
        say "run.sh: skipping $wl $impl $params ($prog not built)"
        return
    fi
    JOBS+=("$wl|$impl|$params|$prog $*")
}

define_jobs() {
    local d impl n m s
    if selected w1; then
        for d in "${W1_DEPTHS[@]}"; do
            for impl in rcgc rcgc_set rcgc_acyclic malloc mimalloc mimalloc_rc slab_rc boehm; do
                job w1 "${impl//_/-}" "depth=$d" "w1_$impl" "$d"
            done
        done
    fi
    if selected w2; then
        for s in "${W2_SIZES[@]}"; do
            for impl in rcgc malloc mimalloc boehm; do
                job w2 "$impl" "r=${s% *};k=${s#* };shape=ring" "w2_$impl" "${s% *}" "${s#* }"
            done
        done
        job w2x rcgc "r=1;k=$W2X_N;shape=ring" w2_rcgc 1 "$W2X_N"
        job w2x rcgc "r=1;k=$W2X_N;shape=chain" w2_rcgc 1 "$W2X_N" open
    fi
    if selected w3; then
        for s in "${W3_SIZES[@]}"; do
            for m in default off; do
                job w3 rcgc "policy=$m;n=${s% *};p=${s#* }" w3_rcgc "${s% *}" "${s#* }" "$m"
            done
        done
    fi
    if selected w4; then
        for m in plain volatile noinline atomic_relaxed atomic_acqrel br_model empty; do
            job w4 c "mode=$m" w4_pairs "$m" "$W4_PAIRS"
        done
        job w4 rcgc "mode=rcgc" w4_pairs rcgc "$W4_PAIRS"
    fi
    if selected w5; then
        for s in 32 48; do
            for m in lifo random churn; do
                n=$W5_COUNT
                [ $m = churn ] && n=$W5_CHURN
                for impl in rcgc malloc mimalloc mimalloc_rc boehm; do
                    job w5 "${impl//_/-}" "mode=$m;size=$s" "w5_$impl" "$m" "$s" "$n"
                done
            done
        done
    fi
    return 0
}

# ---- running -----------------------------------------------------------------

# The expected W1 lines for depth $1 (w1_expected_depth18.txt has them for 18; the
# same formulas hold for any depth).
w1_expected() {
    local n=$1 min=4 max d iters
    max=$((n > min + 2 ? n : min + 2))
    if [ "$n" = 18 ] && [ -f "$ROOT/bench/w1_expected_depth18.txt" ]; then
        cat "$ROOT/bench/w1_expected_depth18.txt"
        return
    fi
    printf 'stretch tree of depth %d\t check: %d\n' $((max + 1)) $(((1 << (max + 2)) - 1))
    for ((d = min; d <= max; d += 2)); do
        iters=$((1 << (max - d + min)))
        printf '%d\t trees of depth %d\t check: %d\n' $iters $d $((iters * ((1 << (d + 1)) - 1)))
    done
    printf 'long lived tree of depth %d\t check: %d\n' $max $(((1 << (max + 1)) - 1))
}

# Runs one job once and appends its record to runs.tsv.
run_job() {
    local spec=$1 run=$2 wl impl params cmd tag out tf rc status kvs times sig
    IFS='|' read -r wl impl params cmd <<<"$spec"
    tag="$wl.$impl.${params//[;=]/_}.$run"
    out="$LOGS/$tag.out"
    tf="$LOGS/$tag.time"
    # shellcheck disable=SC2086 # cmd is a program and plain arguments
    if timeout -k 10 "$TIMEOUT" /usr/bin/time -o "$tf" -f '%e %U %S %M' \
        "$BIN"/$cmd >"$out" 2>"$LOGS/$tag.err"; then rc=0; else rc=$?; fi
    kvs=$(grep -m1 '^RESULT ' "$out" | sed 's/^RESULT //' || true)
    sig=$(sed -n 's/^Command terminated by signal \([0-9]*\).*/\1/p' "$tf" 2>/dev/null || true)
    if [ $rc = 124 ] || [ $rc = 137 ]; then
        status="timeout:${TIMEOUT}s"
    elif [ -n "$sig" ]; then
        status="crash:SIG$(kill -l "$sig" 2>/dev/null || echo "$sig")"
    elif [ $rc != 0 ]; then
        status="fail:exit$rc"
    elif [ -z "$kvs" ]; then
        status="fail:noresult"
    elif [[ " $kvs " != *" ok=1 "* ]]; then
        status="fail:check"
    else
        status=ok
    fi
    if [ "$status" = ok ] && [ "$wl" = w1 ] &&
        ! diff -q <(grep -v '^RESULT ' "$out") <(w1_expected "${params#depth=}") >/dev/null; then
        status="fail:output"
    fi
    times=$(tail -n 1 "$tf" 2>/dev/null || true)
    if [[ $times =~ ^([0-9.]+)\ ([0-9.]+)\ ([0-9.]+)\ ([0-9]+)$ ]]; then
        kvs="$kvs wall_s=${BASH_REMATCH[1]} user_s=${BASH_REMATCH[2]} sys_s=${BASH_REMATCH[3]} rss_kb=${BASH_REMATCH[4]}"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$wl" "$impl" "$params" "$run" "$status" "$kvs" >>"$RUNS_TSV"
    say "  [$run/$RUNS] $wl $impl $params: $status ${times:+($times)}"
}

# Round-robin: every row once per round, so slow drift of the machine spreads
# over all rows instead of biasing one.
run_all() {
    local r spec
    for ((r = 1; r <= RUNS; r++)); do
        say "run.sh: round $r of $RUNS (${#JOBS[@]} rows)"
        for spec in "${JOBS[@]}"; do
            run_job "$spec" "$r"
        done
    done
}

# ---- instruction counts ----------------------------------------------------------

# Total instructions of one run of "$@" under callgrind, with address-space
# randomisation off so that two runs differ only in the work they do.
# CALLGRIND_OPTS adds options (e.g. --toggle-collect).
ir_of() {
    local f="$LOGS/callgrind.out.$$.$RANDOM"
    # shellcheck disable=SC2086
    setarch "$(uname -m)" -R valgrind --tool=callgrind --callgrind-out-file="$f" \
        ${CALLGRIND_OPTS:-} "$@" >/dev/null 2>>"$LOGS/callgrind.log" || return 1
    awk '/^totals:/ { t = $2 } /^summary:/ { s = $2 }
         END { print (t != "" ? t : s) }' "$f"
    rm -f "$f"
}

# Instructions per unit: (Ir(2 units) - Ir(1 unit)) / unit, as a decimal.
per_unit() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.2f", (b - a) / n }'; }

instr_counts() {
    if ! command -v valgrind >/dev/null || ! command -v setarch >/dev/null; then
        say "run.sh: valgrind or setarch missing: no instruction counts"
        return
    fi
    local m a b impl s mode x
    local W5_COLLECT="--collect-atstart=no --toggle-collect=alloc_phase --toggle-collect=free_phase --toggle-collect=churn"
    say "run.sh: instruction counts (callgrind)"
    if selected w4; then
        for m in plain volatile noinline atomic_relaxed atomic_acqrel br_model empty rcgc; do
            impl=c
            [ $m = rcgc ] && impl=rcgc
            if ! a=$(ir_of "$BIN/w4_pairs" $m 1000000) ||
                ! b=$(ir_of "$BIN/w4_pairs" $m 2000000); then
                say "  w4 $m: callgrind failed"
                continue
            fi
            x=$(per_unit "$a" "$b" 1000000)
            printf 'w4\t%s\tmode=%s\t%s\n' $impl $m "$x" >>"$INSTR_TSV"
            say "  w4 $m: $x Ir/pair"
        done
    fi
    if selected w1; then
        # Per node built, checked and freed: the difference of two depths
        # cancels start-up and exit; `nodes=` comes from a run outside callgrind.
        local n1 n2
        for impl in rcgc rcgc_set rcgc_acyclic malloc mimalloc mimalloc_rc slab_rc boehm; do
            [ -x "$BIN/w1_$impl" ] || continue
            n1=$("$BIN/w1_$impl" 10 | sed -n 's/.*nodes=\([0-9]*\).*/\1/p')
            n2=$("$BIN/w1_$impl" 12 | sed -n 's/.*nodes=\([0-9]*\).*/\1/p')
            if [ -z "$n1" ] || [ -z "$n2" ] || ! a=$(ir_of "$BIN/w1_$impl" 10) ||
                ! b=$(ir_of "$BIN/w1_$impl" 12); then
                say "  w1 $impl: callgrind failed"
                continue
            fi
            x=$(per_unit "$a" "$b" $((n2 - n1)))
            printf 'w1\t%s\tir=d10-d12\t%s\n' "${impl//_/-}" "$x" >>"$INSTR_TSV"
            say "  w1 $impl: $x Ir/node"
        done
    fi
    if selected w5; then
        for impl in rcgc malloc mimalloc mimalloc_rc boehm; do
            [ -x "$BIN/w5_$impl" ] || continue
            for s in 32 48; do
                for mode in lifo random churn; do
                    # Count only the timed phases, not the shuffle or checks.
                    if ! a=$(CALLGRIND_OPTS=$W5_COLLECT ir_of "$BIN/w5_$impl" $mode $s "$W5_IR_COUNT") ||
                        ! b=$(CALLGRIND_OPTS=$W5_COLLECT ir_of "$BIN/w5_$impl" $mode $s $((2 * W5_IR_COUNT))); then
                        say "  w5 $impl $mode $s: callgrind failed"
                        continue
                    fi
                    x=$(per_unit "$a" "$b" "$W5_IR_COUNT")
                    printf 'w5\t%s\tmode=%s;size=%s\t%s\n' "${impl//_/-}" $mode $s "$x" >>"$INSTR_TSV"
                    say "  w5 $impl $mode $s: $x Ir/obj"
                done
            done
        done
    fi
    if selected w2; then
        # [(reclaim - build)(R=20k) - (reclaim - build)(R=10k)] / 100k, K=10.
        local b1 r1 b2 r2
        for impl in rcgc malloc mimalloc boehm; do
            [ -x "$BIN/w2_$impl" ] || continue
            if ! b1=$(ir_of "$BIN/w2_$impl" 10000 10 stop=build) ||
                ! r1=$(ir_of "$BIN/w2_$impl" 10000 10 stop=reclaim) ||
                ! b2=$(ir_of "$BIN/w2_$impl" 20000 10 stop=build) ||
                ! r2=$(ir_of "$BIN/w2_$impl" 20000 10 stop=reclaim); then
                say "  w2 $impl: callgrind failed"
                continue
            fi
            x=$(awk -v b1="$b1" -v r1="$r1" -v b2="$b2" -v r2="$r2" \
                'BEGIN { printf "%.2f", ((r2 - b2) - (r1 - b1)) / 100000 }')
            printf 'w2\t%s\tk=10\t%s\n' $impl "$x" >>"$INSTR_TSV"
            say "  w2 $impl: $x Ir/obj drop+collect"
        done
    fi
}

# ---- report --------------------------------------------------------------------

plot_w3() {
    command -v gnuplot >/dev/null || { say "run.sh: gnuplot missing: no w3.png"; return; }
    [ -s "$RESULTS/w3.dat" ] && [ "$(grep -vc '^#' "$RESULTS/w3.dat")" -ge 1 ] || return 0
    gnuplot <<EOF 2>>"$LOGS/gnuplot.log" || say "run.sh: gnuplot failed (see logs/gnuplot.log)"
set terminal pngcairo size 900,560 noenhanced
set output '$RESULTS/w3.png'
set title 'W3 live-graph churn: cost per touch against list length (P = 10)'
set xlabel 'N (nodes in the live doubly-linked list)'
set ylabel 'ns per touch (one rc_retain + one rc_release)'
set logscale x 2
set yrange [0:*]
set key top left
set grid
plot '$RESULTS/w3.dat' using 1:2:xtic(sprintf('%.0fk', \$1 / 1000)) with linespoints lw 2 pt 7 title 'default threshold', \
     '' using 1:3 with linespoints lw 2 pt 5 title 'rc_set_threshold(0) during the walk'
EOF
}

report() {
    local title
    title="Mode: $MODE_NAME, $RUNS runs per row. $(date -u '+%Y-%m-%d %H:%M UTC'); \
$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') ($(nproc) cores); \
Linux $(uname -r); $(gcc --version | head -1); rcgc $REVISION; \
load average at start $LOAD_START, at end $(cut -d' ' -f1 /proc/loadavg)."
    awk -v csv="$RESULTS/results.csv" -v md="$RESULTS/results.md" \
        -v dat="$RESULTS/w3.dat" -v instr="$INSTR_TSV" -v title="$title" \
        -f "$ROOT/bench/report.awk" "$INSTR_TSV" "$RUNS_TSV"
    plot_w3
    say ""
    say "run.sh: wrote results.csv, results.md, runs.tsv$([ -f "$RESULTS/w3.png" ] && echo ", w3.png") in $RESULTS"
}

# ---- sizes ---------------------------------------------------------------------

if [ $QUICK = 1 ]; then
    MODE_NAME=quick
    W1_DEPTHS=(16)
    W2_SIZES=("100000 10" "1000 1000")
    W2X_N=1000000
    W3_SIZES=("100000 10" "200000 10" "400000 10" "400000 1")
    W4_PAIRS=10000000
    W5_COUNT=1000000
    W5_CHURN=10000000
    W5_IR_COUNT=100000
else
    MODE_NAME=full
    W1_DEPTHS=(18 20)
    W2_SIZES=("100000 10" "1000 1000" "1000000 10")
    W2X_N=1000000
    W3_SIZES=("250000 10" "500000 10" "1000000 10" "2000000 10" "2000000 1")
    W4_PAIRS=100000000
    W5_COUNT=10000000
    W5_CHURN=100000000
    W5_IR_COUNT=1000000
fi

mkdir -p "$RESULTS"
LOGS=$RESULTS/logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
RUNS_TSV=$RESULTS/runs.tsv
INSTR_TSV=$RESULTS/instr.tsv
: >"$RUNS_TSV"
: >"$INSTR_TSV"

START=$(date +%s)
# Other work on the machine shows up as noise in every number: say so.
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_START" -v c="$(nproc)" 'BEGIN { exit !(l > c / 2) }'; then
    say "run.sh: warning: load average $LOAD_START on $(nproc) cores; timings will be noisy"
fi
ensure_tools
build
define_jobs
run_all
selected instr && instr_counts
report
say "run.sh: $MODE_NAME mode took $(($(date +%s) - START)) s"
