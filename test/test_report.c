/* test_report.c: statistics, the leak report, the DOT dump, the
 * RCGC_LEAK_REPORT switch and <rcgc/check.h>.
 *
 * Byte figures are exact: an object's block is its 16-byte header plus its
 * payload, plus a 32-byte allocation-site prefix in debug builds, plus a
 * 16-byte size prefix for rc_alloc_extra() objects with extra > 0. Pooled
 * blocks live in 64 KiB spans carved from segments of 16 spans; F is
 * segments x segment bytes + 32 bytes per live large block - live pooled
 * bytes, where a segment's bytes are measured once (16 or 17 spans: the
 * allocator may count the span it asks for to align the others).
 * Debug builds keep freed blocks in a quarantine (they stay pooled), so F
 * does not grow back when objects die there.
 *
 * Automatic passes are off unless a test says otherwise; every test ends
 * with the leak check.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>

#include <rcgc/check.h>

#include "helpers.h"

static void no_auto_passes(void) {
    rc_set_threshold(0);
    th_reset();
}

TestSuite(stats, .init = no_auto_passes);
TestSuite(leak_report, .init = no_auto_passes);
TestSuite(dot, .init = no_auto_passes);
TestSuite(check, .init = no_auto_passes);
TestSuite(exit_report); /* no fixture: children must start with no state */

/* --------------------------------------------------------------- sizes */

#define DBG ((uint64_t)(RCGC_DEBUG ? 32 : 0))
#define HDR ((uint64_t)16)
#define BLOCK(payload) (HDR + DBG + (uint64_t)(payload))
#define BLOCK_X(payload) (BLOCK(payload) + 16) /* rc_alloc_extra, extra > 0 */
#define SPAN ((uint64_t)64 << 10)
#define LARGE_PREFIX ((uint64_t)32)


/* What one segment adds to F: its 16 spans, or the 17 the system is asked
 * for so that spans can be aligned. Measured on the first pooled block and
 * checked to be one of the two; every other figure is then exact. */
static uint64_t segment_bytes;

static void measure_segment(uint64_t first_block) {
    segment_bytes = th_stats().bytes_fragmented + first_block;
    cr_assert(segment_bytes == 16 * SPAN || segment_bytes == 17 * SPAN,
              "a segment holds 16 spans of 64 KiB: F says %" PRIu64,
              segment_bytes);
}

/* F while `segments` segments are held, `pooled` bytes of pooled blocks
 * and `large` large blocks are held (live, or quarantined in debug). */
static uint64_t frag(uint64_t segments, uint64_t pooled, uint64_t large) {
    cr_assert_neq(segment_bytes, 0);
    return segments * segment_bytes - pooled + large * LARGE_PREFIX;
}

/* Pooled and large bytes still held after `freed` of them died: in debug
 * builds the quarantine keeps them. */
static uint64_t held(uint64_t live, uint64_t freed) {
    return RCGC_DEBUG ? live + freed : live;
}

/* ---------------------------------------------------------------- types */

typedef struct pair {
    struct pair *a, *b;
} pair;

static void pair_trace(void *obj, rc_visit_fn visit, void *ctx) {
    pair *p = obj;
    visit(p->a, ctx);
    visit(p->b, ctx);
}

static const rc_type pair_type = {"pair", sizeof(pair), pair_trace, NULL, 0,
                                  NULL};
static const rc_type blob32_type = {"blob32", 32, NULL, NULL, 0, NULL};
static const rc_type big_type = {"big", 4000, NULL, NULL, 0, NULL};

static pair *new_pair(void) { return th_must(rc_alloc(&pair_type), "pair"); }

/* ================================================================ stats */

Test(stats, all_zero_before_anything_is_allocated) {
    rc_stats s = th_stats();
    rc_stats zero;
    memset(&zero, 0, sizeof zero);
    cr_assert_eq(memcmp(&s, &zero, sizeof s), 0);
    TH_ASSERT_NO_LEAKS();
}

Test(stats, exact_bytes_for_plain_sized_and_large_objects) {
    void *a = th_must(rc_alloc(&blob32_type), "a");             /* 48 */
    measure_segment(BLOCK(32));
    void *b = th_must(rc_alloc_extra(&blob32_type, 40), "b");   /* 104 */
    void *c = th_must(rc_alloc_extra(&blob32_type, 0), "c");    /* 48 */
    void *d = th_must(rc_alloc(&big_type), "d");                /* 4016 */
    const uint64_t ba = BLOCK(32), bb = BLOCK_X(32 + 40), bc = BLOCK(32),
                   bd = BLOCK(4000);
    const uint64_t m = ba + bb + bc + bd;
    rc_stats s = th_stats();
    if (!RCGC_DEBUG)
        cr_assert_eq(m, 48 + 104 + 48 + 4016);
    cr_assert_eq(s.objects_allocated, 4);
    cr_assert_eq(s.objects_freed, 0);
    cr_assert_eq(s.objects_live, 4);
    cr_assert_eq(s.bytes_allocated, m, "M");
    cr_assert_eq(s.bytes_freed, 0, "R");
    cr_assert_eq(s.bytes_live, m, "L");
    cr_assert_eq(s.bytes_fragmented, frag(1, ba + bb + bc, 1), "F");

    rc_release(b);
    rc_release(d);
    s = th_stats();
    cr_assert_eq(s.objects_freed, 2);
    cr_assert_eq(s.objects_live, 2);
    cr_assert_eq(s.bytes_allocated, m, "M never goes down");
    cr_assert_eq(s.bytes_freed, bb + bd, "R");
    cr_assert_eq(s.bytes_freed_by_collector, 0, "counting freed them");
    cr_assert_eq(s.bytes_live, ba + bc, "L");
    cr_assert_eq(s.bytes_fragmented,
                 frag(1, held(ba + bc, bb), RCGC_DEBUG ? 1 : 0), "F");

    rc_release(a);
    rc_release(c);
    s = th_stats();
    cr_assert_eq(s.bytes_freed, m);
    cr_assert_eq(s.bytes_live, 0);
    cr_assert_eq(s.objects_live, 0);
    cr_assert_eq(s.bytes_fragmented,
                 frag(1, held(0, ba + bb + bc), RCGC_DEBUG ? 1 : 0), "F");
    cr_assert_eq(s.collections, 0);
    cr_assert_eq(s.roots_buffered, 0, "acyclic objects are never buffered");
    TH_ASSERT_NO_LEAKS();
}

/* Seventeen blocks in seventeen size classes need seventeen spans: two
 * segments. Class rounding (a 56-byte block in a 64-byte slot) is part of
 * F, never of M. */
Test(stats, fragmentation_for_a_known_pattern) {
    static const uint64_t blocks[17] = {56,  128, 192, 256,  320,  384,
                                        448, 512, 640, 768,  896,  1024,
                                        1280, 1536, 1792, 2048, 96};
    static rc_type types[17];
    void *objs[17];
    uint64_t total = 0;
    for (int i = 0; i < 17; i++) {
        types[i] = (rc_type){"blob", (size_t)(blocks[i] - HDR - DBG), NULL,
                             NULL, 0, NULL};
        if (RCGC_DEBUG && i == 0)
            types[i].size = 40; /* 88 bytes: the 96-byte class */
        if (RCGC_DEBUG && i == 16)
            types[i].size = 8;  /* 56 bytes: the 64-byte class */
        objs[i] = th_must(rc_alloc(&types[i]), "blob");
        total += BLOCK(types[i].size);
        if (i == 0)
            measure_segment(BLOCK(types[0].size));
    }
    rc_stats s = th_stats();
    cr_assert_eq(s.bytes_allocated, total);
    cr_assert_eq(s.bytes_fragmented, frag(2, total, 0), "two segments");
    void *big = th_must(rc_alloc(&big_type), "big");
    cr_assert_eq(th_stats().bytes_fragmented, frag(2, total, 1),
                 "a large block adds its link prefix only");
    rc_release(big);
    for (int i = 0; i < 17; i++)
        rc_release(objs[i]);
    s = th_stats();
    cr_assert_eq(s.bytes_live, 0);
    cr_assert_eq(s.bytes_fragmented,
                 frag(2, held(0, total), RCGC_DEBUG ? 1 : 0),
                 "idle spans stay with their segments");
    TH_ASSERT_NO_LEAKS();
}

/* A ring of three pairs, built so that exactly three releases leave counts
 * above zero, plus a leaf only the ring holds. */
Test(stats, collector_figures_for_a_garbage_ring) {
    pair *x = new_pair(), *y = new_pair(), *z = new_pair();
    void *leaf = th_must(rc_alloc(&blob32_type), "leaf");
    x->a = rc_retain(y);
    y->a = rc_retain(z);
    z->a = rc_retain(x);
    z->b = leaf; /* takes over the allocation's reference */
    cr_assert_eq(th_stats().roots_buffered, 0);
    rc_release(x);
    rc_release(y);
    rc_release(z);
    rc_stats s = th_stats();
    cr_assert_eq(s.roots_buffered, 3);
    cr_assert_eq(s.objects_live, 4, "counting alone frees no cycle");
    cr_assert_eq(s.collections, 0);
    cr_assert_eq(s.gc_ns_total, 0);

    cr_assert_eq(rc_collect(), 4, "the ring and the leaf it held");
    s = th_stats();
    const uint64_t ring = 3 * BLOCK(sizeof(pair)), lb = BLOCK(32);
    cr_assert_eq(s.collections, 1, "one pass found all; the next had no "
                                   "candidate and does not count");
    cr_assert_eq(s.objects_freed, 4);
    cr_assert_eq(s.cycles_objects_freed, 3, "the leaf died by counting");
    cr_assert_eq(s.bytes_freed_by_collector, ring);
    cr_assert_eq(s.bytes_freed, ring + lb);
    cr_assert_eq(s.bytes_allocated, ring + lb);
    cr_assert_eq(s.bytes_live, 0);
    cr_assert_eq(s.roots_buffered, 3, "releasing into the set buffers nothing");
    cr_assert_gt(s.gc_ns_total, 0);
    cr_assert_gt(s.gc_ns_max, 0);
    cr_assert_eq(s.gc_ns_max, s.gc_ns_total, "one pass");
    if (!RCGC_DEBUG)
        cr_assert_eq(ring + lb, 3 * 32 + 48);

    cr_assert_eq(rc_collect(), 0);
    rc_stats s2 = th_stats();
    cr_assert_eq(s2.collections, 1, "nothing buffered: no pass");
    cr_assert_eq(s2.gc_ns_total, s.gc_ns_total);
    TH_ASSERT_NO_LEAKS();
}

Test(stats, roots_buffered_counts_each_buffering) {
    pair *p = new_pair();
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    tnode *acyc = th_node_of(&tnode_acyclic_type, 0);
    for (int i = 0; i < 3; i++) {
        rc_retain(p);
        rc_retain(leaf);
        rc_retain(acyc);
    }
    rc_release(leaf); /* no trace: never a candidate */
    rc_release(acyc); /* RC_TYPE_ACYCLIC: never a candidate */
    cr_assert_eq(th_stats().roots_buffered, 0);
    rc_release(p); /* 4 -> 3: buffered */
    cr_assert_eq(th_stats().roots_buffered, 1);
    rc_release(p); /* 3 -> 2: already buffered */
    cr_assert_eq(th_stats().roots_buffered, 1);

    rc_stats s0 = th_stats();
    cr_assert_eq(rc_collect(), 0, "p is live");
    rc_stats s1 = th_stats();
    cr_assert_eq(s1.collections, 1);
    cr_assert_gt(s1.gc_ns_total, 0);
    cr_assert_eq(s1.bytes_freed_by_collector, 0);
    cr_assert_eq(s1.cycles_objects_freed, 0);
    cr_assert_eq(s1.objects_freed, s0.objects_freed);
    cr_assert_eq(rc_refcount(p), 2, "a pass leaves live counts as they were");

    rc_release(p); /* 2 -> 1: the pass took it out, buffered again */
    cr_assert_eq(th_stats().roots_buffered, 2);
    cr_assert_eq(rc_collect(), 0);
    rc_stats s2 = th_stats();
    cr_assert_eq(s2.collections, 2);
    cr_assert_geq(s2.gc_ns_total, s1.gc_ns_total + 1);
    cr_assert_geq(s2.gc_ns_max, s1.gc_ns_max);
    cr_assert_leq(s2.gc_ns_max, s2.gc_ns_total);

    rc_release(p); /* 1 -> 0: freed, not buffered */
    for (int i = 0; i < 3; i++) {
        rc_release(leaf);
        rc_release(acyc);
    }
    rc_stats s3 = th_stats();
    cr_assert_eq(s3.roots_buffered, 2);
    cr_assert_eq(s3.objects_freed, 3);
    cr_assert_eq(s3.bytes_freed_by_collector, 0);
    cr_assert_eq(s3.bytes_freed,
                 BLOCK(sizeof(pair)) + BLOCK(sizeof(tleaf)) +
                     BLOCK(sizeof(tnode)));
    TH_ASSERT_NO_LEAKS();
}

static void *other_thread_allocates(void *arg) {
    (void)arg;
    void *keep = rc_alloc(&blob32_type);
    rc_stats s;
    rc_stats_get(&s);
    bool ok = s.objects_allocated == 1 && s.bytes_allocated == BLOCK(32);
    rc_release(keep);
    rc_thread_exit();
    rc_stats_get(&s);
    ok = ok && s.objects_allocated == 0; /* the state is gone */
    return ok ? arg : NULL;
}

Test(stats, counters_belong_to_the_calling_thread) {
    void *mine = th_must(rc_alloc(&big_type), "big");
    pthread_t t;
    static int token;
    void *res = NULL;
    cr_assert_eq(pthread_create(&t, NULL, other_thread_allocates, &token), 0);
    pthread_join(t, &res);
    cr_assert_eq(res, &token);
    rc_stats s = th_stats();
    cr_assert_eq(s.objects_allocated, 1);
    cr_assert_eq(s.bytes_allocated, BLOCK(4000));
    rc_release(mine);
    TH_ASSERT_NO_LEAKS();
}

/* ========================================================== leak report */

/* The whole report written by rc_leak_report(), and its return value. */
static char *report(size_t *live) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    *live = rc_leak_report(f);
    fclose(f);
    return text;
}

static const rc_type alpha_type = {"alpha", 32, NULL, NULL, 0, NULL};
static const rc_type beta_type = {"beta", 200, NULL, NULL, 0, NULL};
static const rc_type gamma_type = {"gamma", 16, NULL, NULL, 0, NULL};
static const rc_type delta_type = {"delta", 16, NULL, NULL, 0, NULL};
static const rc_type eps_type = {"eps", 48, NULL, NULL, 0, NULL};

static void **keep;
static size_t nkeep;

static void hold(void *obj) {
    keep = realloc(keep, (nkeep + 1) * sizeof *keep);
    keep[nkeep++] = th_must(obj, "object");
}

static void drop_all(void) {
    for (size_t i = 0; i < nkeep; i++)
        rc_release(keep[i]);
    free(keep);
    keep = NULL;
    nkeep = 0;
}

static int helper_line;

/* n objects of `type`, all from one allocation site. */
static void alloc_n(const rc_type *type, int n) {
    for (int i = 0; i < n; i++) {
        hold(rc_alloc(type)); helper_line = __LINE__;
    }
}

Test(leak_report, nothing_live) {
    size_t live = 99;
    char *text = report(&live);
    cr_assert_eq(live, 0);
    cr_assert_str_eq(text, "rcgc: no live objects\n");
    free(text);
    TH_ASSERT_NO_LEAKS();
}

/* Groups come largest first by bytes, then by object count, then by name;
 * one line per type, and in debug builds one per (type, site). */
Test(leak_report, groups_by_type_and_site_largest_first) {
    alloc_n(&alpha_type, 2);
    hold(rc_alloc(&alpha_type)); int alpha_line = __LINE__;
    alloc_n(&beta_type, 1);
    alloc_n(&gamma_type, 2);
    alloc_n(&delta_type, 2);
    alloc_n(&eps_type, 1);
    const uint64_t a = BLOCK(32), b = BLOCK(200), g = BLOCK(16),
                   e = BLOCK(48);
    const uint64_t total = 3 * a + b + 2 * g + 2 * g + e;
    char expect[4096];
    int n = snprintf(expect, sizeof expect,
                     "rcgc: 9 live objects, %" PRIu64 " bytes\n"
                     "  by type:\n"
                     "    %8" PRIu64 " bytes in 1 object of type beta\n"
                     "    %8" PRIu64 " bytes in 3 objects of type alpha\n"
                     "    %8" PRIu64 " bytes in 2 objects of type delta\n"
                     "    %8" PRIu64 " bytes in 2 objects of type gamma\n"
                     "    %8" PRIu64 " bytes in 1 object of type eps\n",
                     total, b, 3 * a, 2 * g, 2 * g, e);
    if (RCGC_DEBUG) {
        /* beta 248, alpha (helper) 160, delta 128, gamma 128, eps 96,
         * alpha (direct) 80 */
        const char *f = __FILE__;
        int h = helper_line;
        n += snprintf(expect + n, sizeof expect - (size_t)n,
                      "  by allocation site:\n"
                      "    %8" PRIu64 " bytes in 1 object of type beta "
                      "allocated at %s:%d\n"
                      "    %8" PRIu64 " bytes in 2 objects of type alpha "
                      "allocated at %s:%d\n"
                      "    %8" PRIu64 " bytes in 2 objects of type delta "
                      "allocated at %s:%d\n"
                      "    %8" PRIu64 " bytes in 2 objects of type gamma "
                      "allocated at %s:%d\n"
                      "    %8" PRIu64 " bytes in 1 object of type eps "
                      "allocated at %s:%d\n"
                      "    %8" PRIu64 " bytes in 1 object of type alpha "
                      "allocated at %s:%d\n",
                      b, f, h, 2 * a, f, h, 2 * g, f, h, 2 * g, f, h, e, f,
                      h, a, f, alpha_line);
    } else {
        cr_assert_eq(total, 3 * 48 + 216 + 4 * 32 + 64);
        (void)alpha_line;
    }
    snprintf(expect + n, sizeof expect - (size_t)n,
             "SUMMARY: rcgc: %" PRIu64 " bytes leaked in 9 objects.\n",
             total);
    size_t live = 0;
    char *text = report(&live);
    cr_assert_eq(live, 9);
    cr_assert_str_eq(text, expect);
    free(text);
    drop_all();
    TH_ASSERT_NO_LEAKS();
}

/* Two type descriptors with one name (a static type in a header included
 * by several files) make one group. */
Test(leak_report, equal_type_names_make_one_group) {
    static const rc_type twin1 = {"twin", 24, NULL, NULL, 0, NULL};
    static const rc_type twin2 = {"twin", 40, NULL, NULL, 0, NULL};
    static const rc_type anon = {NULL, 8, NULL, NULL, 0, NULL};
    void *x = th_must(rc_alloc(&twin1), "twin1");
    void *y = th_must(rc_alloc(&twin2), "twin2");
    void *z = th_must(rc_alloc(&anon), "anon");
    size_t live = 0;
    char *text = report(&live);
    char line[128];
    snprintf(line, sizeof line, "\n    %8" PRIu64 " bytes in 2 objects of "
             "type twin\n    %8" PRIu64 " bytes in 1 object of type ?\n",
             BLOCK(24) + BLOCK(40), BLOCK(8));
    cr_assert_eq(live, 3);
    cr_assert_not_null(strstr(text, line), "%s", text);
    free(text);
    rc_release(x);
    rc_release(y);
    rc_release(z);
    TH_ASSERT_NO_LEAKS();
}

/* A type name with control characters stays on its group's line. */
Test(leak_report, control_characters_in_names_are_escaped) {
    static const rc_type odd = {"two\nlines\t", 8, NULL, NULL, 0, NULL};
    void *x = th_must(rc_alloc(&odd), "odd");
    size_t live = 0;
    char *text = report(&live);
    char line[128];
    snprintf(line, sizeof line, "\n    %8" PRIu64 " bytes in 1 object of "
             "type two\\x0alines\\x09", BLOCK(8));
    cr_assert_eq(live, 1);
    cr_assert_not_null(strstr(text, line), "%s", text);
    cr_assert_null(strstr(text, "two\n"), "%s", text);
    free(text);
    rc_release(x);
    TH_ASSERT_NO_LEAKS();
}

Test(leak_report, extra_bytes_and_collected_cycles) {
    tflex *f = tflex_new(6); /* 16 + 8 + 48 payload, size prefix */
    tnode *ring = th_ring(4);
    rc_release(ring);
    cr_assert_eq(rc_collect(), 4);
    size_t live = 0;
    char *text = report(&live);
    const uint64_t fb = BLOCK_X(sizeof(tflex) + 6 * sizeof(void *));
    char line[256];
    snprintf(line, sizeof line, "rcgc: 1 live object, %" PRIu64 " bytes\n"
             "  by type:\n    %8" PRIu64 " bytes in 1 object of type tflex\n",
             fb, fb);
    cr_assert_eq(live, 1);
    cr_assert_eq(strncmp(text, line, strlen(line)), 0, "%s", text);
    snprintf(line, sizeof line,
             "SUMMARY: rcgc: %" PRIu64 " bytes leaked in 1 object.\n", fb);
    cr_assert_not_null(strstr(text, line), "%s", text);
    cr_assert_null(strstr(text, "tnode"), "collected garbage is not live");
    free(text);
    rc_release(f);
    TH_ASSERT_NO_LEAKS();
}

Test(leak_report, null_stream_only_counts) {
    void *a = th_must(rc_alloc(&blob32_type), "a");
    cr_assert_eq(rc_leak_report(NULL), 1);
    rc_release(a);
    cr_assert_eq(rc_leak_report(NULL), 0);
    TH_ASSERT_NO_LEAKS();
}

static char *g_inside;

static void report_from_finalizer(void *obj) {
    (void)obj;
    size_t live = 0;
    g_inside = report(&live);
}

Test(leak_report, inside_a_finalizer_gives_the_count_only) {
    static const rc_type fin_type = {"fin", 8, NULL, report_from_finalizer, 0,
                                     NULL};
    void *other = th_must(rc_alloc(&blob32_type), "other");
    void *f = th_must(rc_alloc(&fin_type), "fin");
    rc_release(f);
    cr_assert_str_eq(g_inside, "rcgc: 2 live objects (no details inside a "
                               "pass)\n");
    free(g_inside);
    rc_release(other);
    TH_ASSERT_NO_LEAKS();
}

Test(leak_report, unknown_site_in_debug_builds) {
    void *obj = th_must((rc_alloc)(&eps_type), "eps"); /* not the macro */
    size_t live = 0;
    char *text = report(&live);
    if (RCGC_DEBUG)
        cr_assert_not_null(strstr(text, " bytes in 1 object of type eps "
                                        "allocated at an unknown site\n"),
                           "%s", text);
    else
        cr_assert_null(strstr(text, "allocated at"), "%s", text);
    free(text);
    rc_release(obj);
    TH_ASSERT_NO_LEAKS();
}

/* ================================================================== DOT */

typedef struct dot_graph {
    int nodes, edges, other;
    char node_id[16][32], node_label[16][128], node_rest[16][128];
    char edge_from[16][32], edge_to[16][32];
    char graph_label[256];
} dot_graph;

/* Parses the line shapes rc_dump_dot() writes. */
static void dot_parse(const char *text, dot_graph *g) {
    memset(g, 0, sizeof *g);
    const char *p = text;
    cr_assert_eq(strncmp(p, "digraph rcgc {\n", 15), 0, "%s", text);
    while ((p = strchr(p, '\n')) != NULL && *++p) {
        char id[32], to[32], label[128], rest[128];
        if (sscanf(p, "  \"%31[^\"]\" -> \"%31[^\"]\";", id, to) == 2) {
            cr_assert_lt(g->edges, 16);
            strcpy(g->edge_from[g->edges], id);
            strcpy(g->edge_to[g->edges++], to);
        } else if (sscanf(p, "  \"%31[^\"]\" [label=\"%127[^\"]\"%127[^\n]",
                          id, label, rest) >= 2) {
            cr_assert_lt(g->nodes, 16);
            strcpy(g->node_id[g->nodes], id);
            strcpy(g->node_label[g->nodes], label);
            strcpy(g->node_rest[g->nodes++], rest);
        } else if (sscanf(p, "  graph [label=\"%255[^\"]\"", g->graph_label) ==
                   1) {
        } else if (strncmp(p, "}\n", 2) != 0) {
            g->other++;
        }
    }
}

static int node_of(const dot_graph *g, const void *obj) {
    char id[32];
    snprintf(id, sizeof id, "%p", obj);
    for (int i = 0; i < g->nodes; i++)
        if (strcmp(g->node_id[i], id) == 0)
            return i;
    return -1;
}

static bool has_edge(const dot_graph *g, const void *from, const void *to) {
    char a[32], b[32];
    snprintf(a, sizeof a, "%p", from);
    snprintf(b, sizeof b, "%p", to);
    for (int i = 0; i < g->edges; i++)
        if (!strcmp(g->edge_from[i], a) && !strcmp(g->edge_to[i], b))
            return true;
    return false;
}

/* Runs `dot -Tsvg` on text when Graphviz is installed; false if it
 * rejects it. */
static bool graphviz_accepts(const char *text) {
    if (system("command -v dot >/dev/null 2>&1") != 0) {
        cr_log_info("dot not installed: DOT syntax not checked by Graphviz");
        return true;
    }
    char path[] = "/tmp/rcgc-dot-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "dot -Tsvg -o /dev/null %s 2>/dev/null", path);
    int rc = system(cmd);
    unlink(path);
    return rc == 0;
}

static char *dot_text(int *ret) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    *ret = rc_dump_dot(f);
    fclose(f);
    return text;
}

Test(dot, empty_heap) {
    int ret = -2;
    char *text = dot_text(&ret);
    cr_assert_eq(ret, 0);
    dot_graph g;
    dot_parse(text, &g);
    cr_assert_eq(g.nodes, 0);
    cr_assert_eq(g.edges, 0);
    cr_assert_str_eq(g.graph_label, "rcgc heap: no live objects");
    cr_assert(graphviz_accepts(text), "%s", text);
    free(text);
    TH_ASSERT_NO_LEAKS();
}

/* In a child, so that the immortal object stays out of the leak check:
 * writes the five addresses, then the graph, to stderr.
 *   a -> b -> c -> a (a held by the child; b buffered), a -> leaf,
 *   b -> immortal leaf. */
static void dot_child(void *arg) {
    (void)arg;
    rc_set_threshold(0);
    pair *a = new_pair(), *b = new_pair(), *c = new_pair();
    a->a = rc_retain(b);
    b->a = rc_retain(c);
    c->a = rc_retain(a);
    rc_release(b);
    rc_release(c);
    rc_collect(); /* the ring is live: no candidate left */
    a->b = th_must(rc_alloc(&tleaf_type), "leaf");
    tleaf *imm = th_must(rc_alloc(&tleaf_type), "immortal");
    ((rc__header *)imm - 1)->rc = UINT32_MAX; /* as after 4e9 retains */
    b->b = rc_retain(imm);
    rc_retain(b);
    rc_release(b); /* b: buffered candidate root */
    fprintf(stderr, "%p %p %p %p %p\n", (void *)a, (void *)b, (void *)c,
            (void *)a->b, (void *)imm);
    if (rc_dump_dot(stderr) != 0)
        abort();
}

Test(dot, nodes_edges_roots_and_immortals) {
    static char buf[16384];
    cr_assert_eq(th_capture(dot_child, NULL, buf, sizeof buf), 0, "%s", buf);
    void *a, *b, *c, *leaf, *imm;
    cr_assert_eq(sscanf(buf, "%p %p %p %p %p", &a, &b, &c, &leaf, &imm), 5);
    const char *text = strchr(buf, '\n') + 1;
    dot_graph g;
    dot_parse(text, &g);
    cr_assert_eq(g.nodes, 5, "%s", text);
    cr_assert_eq(g.edges, 5, "%s", text);
    cr_assert_eq(g.other, 1, "only the node defaults line: %s", text);
    char want[256];
    snprintf(want, sizeof want,
             "rcgc heap: 5 live objects, %" PRIu64 " bytes\\nyellow, dashed: "
             "buffered candidate root\\nblue, double border: immortal",
             3 * BLOCK(sizeof(pair)) + 2 * BLOCK(sizeof(tleaf)));
    cr_assert_str_eq(g.graph_label, want);

    struct { void *obj; const char *label; } expect[] = {
        {a, "pair\\n%p\\nrc=2"}, {b, "pair\\n%p\\nrc=1 (root)"},
        {c, "pair\\n%p\\nrc=1"}, {leaf, "tleaf\\n%p\\nrc=1"},
        {imm, "tleaf\\n%p\\nimmortal"}};
    for (int i = 0; i < 5; i++) {
        int k = node_of(&g, expect[i].obj);
        cr_assert_geq(k, 0, "no node for object %d: %s", i, text);
        snprintf(want, sizeof want, expect[i].label, expect[i].obj);
        cr_assert_str_eq(g.node_label[k], want);
        bool root = expect[i].obj == b, immortal = expect[i].obj == imm;
        cr_assert_eq(strstr(g.node_rest[k], "dashed") != NULL, root);
        cr_assert_eq(strstr(g.node_rest[k], "peripheries=2") != NULL,
                     immortal);
    }
    cr_assert(has_edge(&g, a, b));
    cr_assert(has_edge(&g, b, c));
    cr_assert(has_edge(&g, c, a));
    cr_assert(has_edge(&g, a, leaf));
    cr_assert(has_edge(&g, b, imm));
    cr_assert(graphviz_accepts(text), "%s", text);
    TH_ASSERT_NO_LEAKS();
}

Test(dot, one_edge_per_traced_reference) {
    tvec *v = tvec_new(4);
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    th_vset(v, 0, leaf);
    th_vset(v, 2, leaf); /* the same child twice: two edges */
    th_vset(v, 3, v);    /* a self-loop */
    int ret = -2;
    char *text = dot_text(&ret);
    cr_assert_eq(ret, 0);
    dot_graph g;
    dot_parse(text, &g);
    cr_assert_eq(g.nodes, 2);
    cr_assert_eq(g.edges, 3, "%s", text);
    cr_assert(has_edge(&g, v, v));
    cr_assert(graphviz_accepts(text), "%s", text);
    free(text);
    rc_release(leaf);
    rc_release(v);
    TH_ASSERT_NO_LEAKS();
}

Test(dot, type_names_are_escaped) {
    static const rc_type odd = {"say \"hi\"\\now", 8, NULL, NULL, 0, NULL};
    void *obj = th_must(rc_alloc(&odd), "odd");
    int ret = -2;
    char *text = dot_text(&ret);
    cr_assert_eq(ret, 0);
    char want[128];
    snprintf(want, sizeof want, "[label=\"say \\\"hi\\\"\\\\now\\n%p\\nrc=1\"",
             obj);
    cr_assert_not_null(strstr(text, want), "%s", text);
    cr_assert(graphviz_accepts(text), "%s", text);
    free(text);
    rc_release(obj);
    TH_ASSERT_NO_LEAKS();
}

static int g_dot_ret = -2;
static char *g_dot_text;

static void dot_from_finalizer(void *obj) {
    (void)obj;
    g_dot_text = dot_text(&g_dot_ret);
}

Test(dot, errors) {
    cr_assert_eq(rc_dump_dot(NULL), -1);
    static const rc_type fin_type = {"fin", 8, NULL, dot_from_finalizer, 0,
                                     NULL};
    rc_release(th_must(rc_alloc(&fin_type), "fin"));
    cr_assert_eq(g_dot_ret, -1, "no graph inside a release cascade");
    dot_graph g;
    dot_parse(g_dot_text, &g);
    cr_assert_eq(g.nodes, 0);
    cr_assert_str_eq(g.graph_label, "rcgc heap: not shown inside a pass");
    cr_assert(graphviz_accepts(g_dot_text), "%s", g_dot_text);
    free(g_dot_text);
    FILE *full = fopen("/dev/full", "w");
    if (full != NULL) {
        void *obj = th_must(rc_alloc(&blob32_type), "blob");
        cr_assert_eq(rc_dump_dot(full), -1, "a write error is reported");
        fclose(full);
        rc_release(obj);
    }
    TH_ASSERT_NO_LEAKS();
}

/* ============================================================ check.h */

static void *g_leaked[4];

static void check_passes(void *arg) {
    (void)arg;
    void *before = th_must(rc_alloc(&blob32_type), "before");
    rc_checkpoint cp = rc_check_begin();
    void *tmp = th_must(rc_alloc(&blob32_type), "tmp");
    tnode *ring = th_ring(3); /* garbage cycles are not leaks */
    rc_release(ring);
    rc_release(tmp);
    rc_release(before); /* freed since the checkpoint: fine */
    size_t n = rc_check_leaks(cp, "x.c", 1);
    bool ok = RC_CHECK_NO_LEAKS(cp);
    fprintf(stderr, "n=%zu ok=%d\n", n, (int)ok);
}

static void check_fails(void *arg) {
    size_t leaks = *(size_t *)arg;
    rc_checkpoint cp = rc_check_begin();
    for (size_t i = 0; i < leaks; i++)
        g_leaked[i] = th_must(rc_alloc(&eps_type), "leak");
    size_t n = rc_check_leaks(cp, "here.c", 42);
    fprintf(stderr, "n=%zu\n", n);
    bool ok = RC_CHECK_NO_LEAKS(cp);
    fprintf(stderr, "ok=%d\n", (int)ok);
}

Test(check, passes_silently_when_nothing_leaked) {
    char buf[4096];
    cr_assert_eq(th_capture(check_passes, NULL, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "n=0 ok=1\n");
    rc_checkpoint cp = rc_check_begin();
    rc_release(th_must(rc_alloc(&blob32_type), "blob"));
    cr_assert(RC_CHECK_NO_LEAKS(cp));
    TH_ASSERT_NO_LEAKS();
}

Test(check, failure_prints_the_count_and_the_report) {
    static char buf[8192];
    size_t two = 2;
    cr_assert_eq(th_capture(check_fails, &two, buf, sizeof buf), 0);
    char want[1024];
    const uint64_t e = BLOCK(48);
    int n = snprintf(want, sizeof want,
                     "here.c:42: 2 rcgc objects leaked\n"
                     "rcgc: 2 live objects, %" PRIu64 " bytes\n"
                     "  by type:\n"
                     "    %8" PRIu64 " bytes in 2 objects of type eps\n",
                     2 * e, 2 * e);
    cr_assert_eq(strncmp(buf, want, (size_t)n), 0, "%s", buf);
    snprintf(want, sizeof want,
             "SUMMARY: rcgc: %" PRIu64 " bytes leaked in 2 objects.\n"
             "n=2\n%s:",
             2 * e, __FILE__);
    cr_assert_not_null(strstr(buf, want), "%s", buf);
    cr_assert_not_null(strstr(buf, ": 2 rcgc objects leaked\n"), "%s", buf);
    size_t len = strlen(buf);
    cr_assert_eq(strcmp(buf + len - 5, "ok=0\n"), 0, "%s", buf);

    size_t one = 1;
    cr_assert_eq(th_capture(check_fails, &one, buf, sizeof buf), 0);
    cr_assert_eq(strncmp(buf, "here.c:42: 1 rcgc object leaked\n", 32), 0,
                 "%s", buf);
    TH_ASSERT_NO_LEAKS();
}

/* ====================================================== RCGC_LEAK_REPORT */

/* Runs fn in a child process with RCGC_LEAK_REPORT set to `mode` (NULL:
 * unset), then exit(0) as a program ending normally would. Collects its
 * stderr into buf; returns its exit status (128 + signal if killed). The
 * child's first exit handler ends it with _exit(0) right after the
 * runtime's own handler has run, so that the test framework's handlers,
 * inherited by the child, do not run. */
static void quit_child(void) { _exit(0); }

static void (*g_child_fn)(void);
static const char *g_child_mode;

static void env_child(void *arg) {
    (void)arg;
    atexit(quit_child);
    if (g_child_mode)
        setenv("RCGC_LEAK_REPORT", g_child_mode, 1);
    else
        unsetenv("RCGC_LEAK_REPORT");
    g_child_fn();
    exit(0);
}

static int run_with_mode(void (*fn)(void), const char *mode, char *buf,
                         size_t len) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        g_child_fn = fn;
        g_child_mode = mode;
        env_child(NULL);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + used, len - 1 - used)) > 0 ||
           (r < 0 && errno == EINTR))
        used += r > 0 ? (size_t)r : 0;
    buf[used] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        cr_assert_eq(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void *g_global; /* a strong reference nobody ever releases */

static void leak_one(void) {
    g_global = th_must(rc_alloc(&eps_type), "leak");
    tnode *ring = th_ring(3); /* garbage: the final pass frees it */
    rc_release(ring);
}

static void leak_nothing(void) {
    tnode *ring = th_ring(3);
    rc_release(ring);
    rc_release(th_must(rc_alloc(&eps_type), "tmp"));
}

static void leak_then_thread_exit(void) {
    leak_one();
    rc_thread_exit();
    fprintf(stderr, "after rc_thread_exit\n");
}

static void *leaking_thread(void *arg) {
    (void)arg;
    g_global = rc_alloc(&eps_type);
    return NULL; /* the thread's end runs rc_thread_exit() */
}

static void leak_in_a_thread(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, leaking_thread, NULL) == 0)
        pthread_join(t, NULL);
    fprintf(stderr, "joined\n");
}

static const char *one_eps_report(void) {
    static char text[512];
    const uint64_t e = BLOCK(48);
    snprintf(text, sizeof text,
             "rcgc: 1 live object, %" PRIu64 " bytes\n"
             "  by type:\n"
             "    %8" PRIu64 " bytes in 1 object of type eps\n",
             e, e);
    return text;
}

static const char *one_eps_summary(void) {
    static char text[128];
    snprintf(text, sizeof text,
             "SUMMARY: rcgc: %" PRIu64 " bytes leaked in 1 object.\n",
             BLOCK(48));
    return text;
}

static int count_of(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
        n++;
    return n;
}

Test(exit_report, off_by_default) {
    char buf[4096];
    cr_assert_eq(run_with_mode(leak_one, NULL, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(run_with_mode(leak_one, "0", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(run_with_mode(leak_one, "", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
    TH_ASSERT_NO_LEAKS();
}

Test(exit_report, report_at_process_exit) {
    char buf[4096];
    cr_assert_eq(run_with_mode(leak_one, "1", buf, sizeof buf), 0,
                 "only strict changes the exit status");
    cr_assert_eq(strncmp(buf, one_eps_report(), strlen(one_eps_report())), 0,
                 "%s", buf);
    cr_assert_eq(count_of(buf, one_eps_summary()), 1, "%s", buf);
    cr_assert_null(strstr(buf, "tnode"), "garbage is collected first");
    TH_ASSERT_NO_LEAKS();
}

Test(exit_report, report_at_rc_thread_exit_once) {
    char buf[4096];
    cr_assert_eq(run_with_mode(leak_then_thread_exit, "1", buf, sizeof buf),
                 0);
    cr_assert_eq(strncmp(buf, one_eps_report(), strlen(one_eps_report())), 0,
                 "%s", buf);
    cr_assert_eq(count_of(buf, "SUMMARY: rcgc:"), 1, "%s", buf);
    char *after = strstr(buf, "after rc_thread_exit\n");
    cr_assert_not_null(after, "%s", buf);
    cr_assert_str_eq(after, "after rc_thread_exit\n",
                     "nothing more at process exit");
    TH_ASSERT_NO_LEAKS();
}

Test(exit_report, strict_fails_the_process_on_a_leak) {
    char buf[4096];
    cr_assert_eq(run_with_mode(leak_one, "strict", buf, sizeof buf), 1);
    cr_assert_eq(count_of(buf, one_eps_summary()), 1, "%s", buf);
    TH_ASSERT_NO_LEAKS();
}

Test(exit_report, strict_is_silent_without_leaks) {
    char buf[4096];
    cr_assert_eq(run_with_mode(leak_nothing, "strict", buf, sizeof buf), 0,
                 "%s", buf);
    cr_assert_str_eq(buf, "");
    TH_ASSERT_NO_LEAKS();
}

Test(exit_report, a_thread_that_ends_with_live_objects) {
    char buf[4096];
    cr_assert_eq(run_with_mode(leak_in_a_thread, "strict", buf, sizeof buf),
                 1);
    char *joined = strstr(buf, "joined\n");
    cr_assert_not_null(joined, "%s", buf);
    cr_assert_not_null(strstr(buf, one_eps_summary()), "%s", buf);
    cr_assert_lt(strstr(buf, one_eps_summary()), joined,
                 "reported when the thread ended");
    TH_ASSERT_NO_LEAKS();
}
