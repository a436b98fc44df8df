# Aggregates benchmark runs into the CSV, the markdown tables and the W3
# plot data. Called by bench/run.sh:
#   awk -v csv=FILE -v md=FILE -v dat=FILE -v title=TEXT -v instr=FILE \
#       -f report.awk INSTR_TSV RUNS_TSV
# RUNS_TSV: workload, impl, params, run, status, "key=value ..." per run.
# INSTR_TSV: workload, impl, params, instructions per unit.
# Statistics use only runs whose status is "ok"; a row that had any other
# status shows it in its last column. Written for any POSIX awk (no asort).

BEGIN { FS = "\t" }

FILENAME == instr {
    IR[$1 SUBSEP $2 SUBSEP $3] = $4
    INSTR_N++
    INSTR_ROW[INSTR_N] = $1 SUBSEP $2 SUBSEP $3
    next
}

{
    row = $1 SUBSEP $2 SUBSEP $3
    if (!(row in SEEN)) {
        SEEN[row] = 1
        NROWS++
        ROWS[NROWS] = row
    }
    RUNS[row]++
    if ($5 == "ok")
        OKS[row]++
    else if (!(row in BAD))
        BAD[row] = $5
    if ($5 != "ok")
        next
    n = split($6, kv, " ")
    for (i = 1; i <= n; i++) {
        eq = index(kv[i], "=")
        if (eq == 0)
            continue
        k = substr(kv[i], 1, eq - 1)
        v = substr(kv[i], eq + 1)
        if (v !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/)
            continue
        if (!((row, k) in CNT)) {
            NKEYS[row]++
            KEYS[row, NKEYS[row]] = k
        }
        c = ++CNT[row, k]
        V[row, k, c] = v + 0
    }
}

# ---- statistics ------------------------------------------------------------

function stats(row, k,    c, i, j, t, a) {
    if ((row, k) in MED)
        return
    c = CNT[row, k]
    for (i = 1; i <= c; i++)
        a[i] = V[row, k, i]
    for (i = 2; i <= c; i++) {
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] > t; j--)
            a[j + 1] = a[j]
        a[j + 1] = t
    }
    MIN[row, k] = a[1]
    MAX[row, k] = a[c]
    MED[row, k] = c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
}

function med(row, k) {
    if (!((row, k) in CNT))
        return ""
    stats(row, k)
    return MED[row, k]
}

function spread(row, k) {
    if (!((row, k) in CNT))
        return ""
    stats(row, k)
    return "[" fmt(MIN[row, k]) ".." fmt(MAX[row, k]) "]"
}

# ---- row helpers -------------------------------------------------------------

function wl_of(row,    p) { split(row, p, SUBSEP); return p[1] }
function impl_of(row,    p) { split(row, p, SUBSEP); return p[2] }
function params_of(row,    p) { split(row, p, SUBSEP); return p[3] }

# The value of one "name=value" item of a row's params (items joined by ';').
function param(row, name,    p, n, i, q) {
    n = split(params_of(row), p, ";")
    for (i = 1; i <= n; i++) {
        split(p[i], q, "=")
        if (q[1] == name)
            return q[2]
    }
    return ""
}

function rowkey(wl, impl, params) { return wl SUBSEP impl SUBSEP params }

function ok_cell(row) {
    if (OKS[row] == RUNS[row])
        return OKS[row] "/" RUNS[row]
    return (OKS[row] + 0) "/" RUNS[row] " " BAD[row]
}

# ---- formatting --------------------------------------------------------------

function abs(x) { return x < 0 ? -x : x }

function fmt(x,    a) {
    if (x == "")
        return "-"
    a = abs(x)
    if (a >= 100)
        return sprintf("%.0f", x)
    if (a >= 10)
        return sprintf("%.1f", x)
    if (a >= 1)
        return sprintf("%.2f", x)
    return sprintf("%.3f", x)
}

function ratio(a, b) {
    if (a == "" || b == "" || b + 0 == 0)
        return "-"
    return sprintf("%.2f", a / b)
}

function mb(kb) { return kb == "" ? "-" : sprintf("%.1f", kb / 1024) }

# Millions of units per second from nanoseconds per unit.
function mps(ns) { return ns == "" || ns + 0 == 0 ? "-" : fmt(1000 / ns) }

function out(line) {
    print line > md
    print line
}

function header(cols,    n, c, i, sep) {
    n = split(cols, c, "|")
    sep = "|"
    for (i = 1; i <= n; i++)
        sep = sep "---|"
    out("|" cols "|")
    out(sep)
}

function csv_row(row,    i, k, v) {
    for (i = 1; i <= NKEYS[row]; i++) {
        k = KEYS[row, i]
        v = med(row, k)
        printf "%s,%s,%s,%s,%s,%s,%s,%d,%d\n", wl_of(row), impl_of(row),
            params_of(row), k, v, MIN[row, k], MAX[row, k], OKS[row],
            RUNS[row] > csv
    }
}

# ---- tables ------------------------------------------------------------------

# "x mimalloc-rc" compares with hand-rolled counting on mimalloc using
# rcgc's 16-byte header: the same bytes moved, without the runtime.
function table_w1(    i, r, base_mi, base_c, base_rc, ms, ir) {
    out("")
    out("## W1 binary-trees")
    out("")
    header(" impl | depth | ms | [min..max] | ns/node | cpu ns/node | x mimalloc | x malloc | x mimalloc-rc | peak RSS MB | Mnodes/s | Ir/node | ok ")
    for (i = 1; i <= NROWS; i++) {
        r = ROWS[i]
        if (wl_of(r) != "w1")
            continue
        ms = med(r, "ms")
        base_mi = med(rowkey("w1", "mimalloc", params_of(r)), "ms")
        base_c = med(rowkey("w1", "malloc", params_of(r)), "ms")
        base_rc = med(rowkey("w1", "mimalloc-rc", params_of(r)), "ms")
        ir = IR[rowkey("w1", impl_of(r), "ir=d10-d12")]
        out("| " impl_of(r) " | " param(r, "depth") " | " fmt(ms) " | " \
            spread(r, "ms") " | " fmt(med(r, "ns_per_node")) " | " \
            fmt(med(r, "cpu_ns_per_node")) " | " ratio(ms, base_mi) " | " ratio(ms, base_c) " | " \
            ratio(ms, base_rc) " | " \
            mb(med(r, "rss_kb")) " | " mps(med(r, "ns_per_node")) " | " \
            (ir == "" ? "-" : ir) " | " ok_cell(r) " |")
    }
}

function table_w2(    i, r, p, rc, base_c, base_mi, colls) {
    out("")
    out("## W2 cyclic garbage (W2x: one ring / one open chain of 1M)")
    out("")
    header(" impl | R | K | shape | build ms | drop ms | collect ms | reclaim ms | [min..max] | ns/obj | cpu ns/obj | x malloc | x mimalloc | passes drop+collect | peak RSS MB | Mobj/s | ok ")
    for (i = 1; i <= NROWS; i++) {
        r = ROWS[i]
        if (wl_of(r) != "w2" && wl_of(r) != "w2x")
            continue
        p = params_of(r)
        rc = med(r, "reclaim_ms")
        base_c = med(rowkey(wl_of(r), "malloc", p), "reclaim_ms")
        base_mi = med(rowkey(wl_of(r), "mimalloc", p), "reclaim_ms")
        colls = "-"
        if ((r, "collect_collections") in CNT)
            colls = fmt(med(r, "drop_collections") + med(r, "collect_collections"))
        out("| " impl_of(r) " | " param(r, "r") " | " param(r, "k") " | " \
            param(r, "shape") " | " fmt(med(r, "build_ms")) " | " \
            fmt(med(r, "drop_ms")) " | " fmt(med(r, "collect_ms")) " | " \
            fmt(rc) " | " spread(r, "reclaim_ms") " | " \
            fmt(med(r, "ns_per_obj")) " | " fmt(med(r, "cpu_ns_per_obj")) " | " \
            ratio(rc, base_c) " | " \
            ratio(rc, base_mi) " | " colls " | " mb(med(r, "rss_kb")) " | " \
            mps(med(r, "ns_per_obj")) " | " ok_cell(r) " |")
    }
}

function table_w3(    i, r, n, pol, p, walk, off, half, expo) {
    out("")
    out("## W3 live-graph churn (walk: one rc_retain + one rc_release per node)")
    out("")
    header(" policy | N | P | build ms | walk ms | [min..max] | ns/touch | cpu ns/touch | teardown ms | passes in walk | pass ms in walk | default/off | exponent vs N/2 | peak RSS MB | ok ")
    for (i = 1; i <= NROWS; i++) {
        r = ROWS[i]
        if (wl_of(r) != "w3")
            continue
        pol = param(r, "policy")
        n = param(r, "n")
        p = param(r, "p")
        walk = med(r, "walk_ms")
        off = "-"
        if (pol == "default")
            off = ratio(walk, med(rowkey("w3", "rcgc", "policy=off;n=" n ";p=" p), "walk_ms"))
        expo = "-"
        half = med(rowkey("w3", "rcgc", "policy=" pol ";n=" (n / 2) ";p=" p), "walk_ms")
        if (half != "" && half > 0 && walk != "")
            expo = sprintf("%.2f", log(walk / half) / log(2))
        out("| " pol " | " n " | " p " | " fmt(med(r, "build_ms")) " | " \
            fmt(walk) " | " spread(r, "walk_ms") " | " \
            fmt(med(r, "ns_per_touch")) " | " fmt(med(r, "cpu_ns_per_touch")) " | " \
            fmt(med(r, "teardown_ms")) " | " \
            fmt(med(r, "walk_collections")) " | " fmt(med(r, "walk_gc_ms")) " | " \
            off " | " expo " | " mb(med(r, "rss_kb")) " | " ok_cell(r) " |")
        if (p == 10 && dat != "") {
            W3N[n] = 1
            W3[pol, n] = med(r, "ns_per_touch")
            W3W[pol, n] = walk
        }
    }
}

function table_w4(    i, r, mode, ns, plain, ir, ir_empty, beyond) {
    out("")
    out("## W4 retain/release pairs")
    out("")
    header(" mode | ns/pair | [min..max] | cpu ns/pair | x plain | Ir/pair | Ir/pair beyond empty | ok ")
    plain = med(rowkey("w4", "c", "mode=plain"), "ns_per_pair")
    ir_empty = IR["w4" SUBSEP "c" SUBSEP "mode=empty"]
    for (i = 1; i <= NROWS; i++) {
        r = ROWS[i]
        if (wl_of(r) != "w4")
            continue
        mode = param(r, "mode")
        ns = med(r, "ns_per_pair")
        ir = IR[r]
        beyond = ir != "" && ir_empty != "" ? sprintf("%.2f", ir - ir_empty) : "-"
        out("| " mode " | " fmt(ns) " | " spread(r, "ns_per_pair") " | " \
            fmt(med(r, "cpu_ns_per_pair")) " | " ratio(ns, plain) " | " (ir == "" ? "-" : ir) " | " beyond " | " \
            ok_cell(r) " |")
    }
}

function table_w5(    i, r, mode, size, ns, bmi, bc, bfoot, brc, ir) {
    out("")
    out("## W5 small-object allocation")
    out("")
    header(" impl | mode | size | ns alloc | ns free | ns/obj | [min..max] | cpu ns/obj | x mimalloc | x malloc | x mimalloc(size+16) | x mimalloc-rc | peak RSS MB | Mobj/s | Ir/obj | ok ")
    for (i = 1; i <= NROWS; i++) {
        r = ROWS[i]
        if (wl_of(r) != "w5")
            continue
        mode = param(r, "mode")
        size = param(r, "size")
        ns = med(r, "ns_per_obj")
        bmi = med(rowkey("w5", "mimalloc", params_of(r)), "ns_per_obj")
        bc = med(rowkey("w5", "malloc", params_of(r)), "ns_per_obj")
        bfoot = brc = "-"
        if (impl_of(r) == "rcgc") {
            bfoot = ratio(ns, med(rowkey("w5", "mimalloc", "mode=" mode ";size=" (size + 16)), "ns_per_obj"))
            brc = ratio(ns, med(rowkey("w5", "mimalloc-rc", params_of(r)), "ns_per_obj"))
        }
        ir = IR[r]
        out("| " impl_of(r) " | " mode " | " size " | " \
            fmt(med(r, "ns_alloc")) " | " fmt(med(r, "ns_free")) " | " \
            fmt(ns) " | " spread(r, "ns_per_obj") " | " \
            fmt(med(r, "cpu_ns_per_obj")) " | " ratio(ns, bmi) " | " \
            ratio(ns, bc) " | " bfoot " | " brc " | " mb(med(r, "rss_kb")) " | " \
            mps(ns) " | " (ir == "" ? "-" : ir) " | " ok_cell(r) " |")
    }
}

function table_instr(    i, k, p, any) {
    for (i = 1; i <= INSTR_N; i++) {
        split(INSTR_ROW[i], p, SUBSEP)
        if (p[1] == "w2")
            any = 1
    }
    if (!any)
        return
    out("")
    out("## W2-instr: instructions per object of drop+collect")
    out("")
    out("[(reclaim - build)(R=20k) - (reclaim - build)(R=10k)] / 100k, K=10.")
    out("")
    header(" impl | Ir/obj ")
    for (i = 1; i <= INSTR_N; i++) {
        k = INSTR_ROW[i]
        split(k, p, SUBSEP)
        if (p[1] == "w2")
            out("| " p[2] " | " IR[k] " |")
    }
}

# One line per target the project set itself, judged on the monotonic-clock
# median; the CPU-time figure is shown beside it. "-" when a row is missing.
function target(name, value, cpu, limit, unit,    verdict) {
    verdict = value == "" ? "-" : (value + 0 <= limit ? "met" : "MISSED")
    out("| " name " | " num(value) unit " | " num(cpu) (cpu == "" ? "" : unit) \
        " | <= " limit unit " | " verdict " |")
}

# A comparison without a limit of its own, shown next to the targets it
# explains.
function reference(name, value, cpu) {
    if (value == "")
        return
    out("| " name " | " num(value) "x | " num(cpu) (cpu == "" ? "" : "x") \
        " | - | reference |")
}

function num(x) { return x == "" ? "-" : sprintf("%.2f", x) }

function ratio_num(a, b) { return a == "" || b == "" || b + 0 == 0 ? "" : a / b }

function table_targets(    i, r, d, n, b, v) {
    out("")
    out("## Targets")
    out("")
    header(" target | measured | cpu time | limit | verdict ")
    for (i = 1; i <= NROWS; i++) {
        r = ROWS[i]
        if (wl_of(r) == "w1" && impl_of(r) == "rcgc") {
            d = params_of(r)
            b = rowkey("w1", "mimalloc", d)
            target("W1 rcgc / mimalloc hand-freed, " d,
                   ratio_num(med(r, "ms"), med(b, "ms")),
                   ratio_num(med(r, "cpu_ms"), med(b, "cpu_ms")), 1.1, "x")
            b = rowkey("w1", "mimalloc-rc", d)
            reference("W1 rcgc / mimalloc-rc (same 16-byte header), " d,
                      ratio_num(med(r, "ms"), med(b, "ms")),
                      ratio_num(med(r, "cpu_ms"), med(b, "cpu_ms")))
            b = rowkey("w1", "slab-rc", d)
            reference("W1 rcgc / slab-rc (the API's bare semantics), " d,
                      ratio_num(med(r, "ms"), med(b, "ms")),
                      ratio_num(med(r, "cpu_ms"), med(b, "cpu_ms")))
        }
        if (wl_of(r) == "w2" && impl_of(r) == "rcgc" && param(r, "r") * param(r, "k") == 1000000)
            target("W2 rcgc drop+collect per object, R=" param(r, "r") " K=" param(r, "k"),
                   med(r, "ns_per_obj"), med(r, "cpu_ns_per_obj"), 27, " ns")
        if (wl_of(r) == "w3" && param(r, "policy") == "default") {
            n = "n=" param(r, "n") ";p=" param(r, "p")
            b = rowkey("w3", "rcgc", "policy=off;" n)
            target("W3 walk default/off, N=" param(r, "n") " P=" param(r, "p"),
                   ratio_num(med(r, "walk_ms"), med(b, "walk_ms")),
                   ratio_num(med(r, "walk_cpu_ms"), med(b, "walk_cpu_ms")), 1.5, "x")
        }
        if (wl_of(r) == "w5" && impl_of(r) == "rcgc") {
            b = rowkey("w5", "mimalloc", params_of(r))
            target("W5 rcgc / mimalloc, " param(r, "mode") " size " param(r, "size"),
                   ratio_num(med(r, "ns_per_obj"), med(b, "ns_per_obj")),
                   ratio_num(med(r, "cpu_ns_per_obj"), med(b, "cpu_ns_per_obj")), 1.2, "x")
            b = rowkey("w5", "mimalloc-rc", params_of(r))
            reference("W5 rcgc / mimalloc-rc (same 16-byte header), " param(r, "mode") " size " param(r, "size"),
                      ratio_num(med(r, "ns_per_obj"), med(b, "ns_per_obj")),
                      ratio_num(med(r, "cpu_ns_per_obj"), med(b, "cpu_ns_per_obj")))
        }
    }
    v = IR["w4" SUBSEP "rcgc" SUBSEP "mode=rcgc"]
    if (v != "" && IR["w4" SUBSEP "c" SUBSEP "mode=empty"] != "")
        v = v - IR["w4" SUBSEP "c" SUBSEP "mode=empty"]
    else
        v = ""
    target("W4 rcgc instructions per pair beyond the empty loop", v, "", 8, "")
}

function write_dat(    n, i, j, c, ns) {
    c = 0
    for (n in W3N)
        ns[++c] = n + 0
    for (i = 2; i <= c; i++) {
        n = ns[i]
        for (j = i - 1; j >= 1 && ns[j] > n; j--)
            ns[j + 1] = ns[j]
        ns[j + 1] = n
    }
    print "# N default_ns_per_touch off_ns_per_touch default_walk_ms off_walk_ms" > dat
    for (i = 1; i <= c; i++) {
        n = ns[i]
        print n, (("default", n) in W3 ? W3["default", n] : "NaN"), \
            (("off", n) in W3 ? W3["off", n] : "NaN"), \
            (("default", n) in W3W ? W3W["default", n] : "NaN"), \
            (("off", n) in W3W ? W3W["off", n] : "NaN") > dat
    }
}

END {
    print "workload,impl,params,metric,median,min,max,ok_runs,runs" > csv
    for (i = 1; i <= NROWS; i++)
        csv_row(ROWS[i])
    for (i = 1; i <= INSTR_N; i++) {
        split(INSTR_ROW[i], p, SUBSEP)
        printf "%s,%s,%s,ir_per_unit,%s,%s,%s,1,1\n", p[1], p[2], p[3],
            IR[INSTR_ROW[i]], IR[INSTR_ROW[i]], IR[INSTR_ROW[i]] > csv
    }
    printf "" > md
    out("# rcgc benchmark results")
    out("")
    out(title)
    out("")
    out("Medians over the runs, [min..max] spread; ratios are medians over medians;")
    out("times from CLOCK_MONOTONIC, \"cpu\" columns from CLOCK_PROCESS_CPUTIME_ID")
    out("(less sensitive to other load on the machine); peak RSS from /usr/bin/time;")
    out("Ir from callgrind (differencing two sizes).")
    table_w1()
    table_w2()
    table_w3()
    table_w4()
    table_w5()
    table_instr()
    table_targets()
    if (dat != "")
        write_dat()
}
