/* test_alloc.c: the small-object allocator (size classes, alignment, spans
 * and segments and when they go back, F, large blocks, reuse order, pages
 * mapped in ahead) and its use-after-free detection under AddressSanitizer.
 *
 * The layout these tests rely on (src/rc_mem.c): a block is the object's
 * 16-byte header plus its payload, plus a 32-byte allocation-site prefix in
 * debug builds, plus a 16-byte size prefix for rc_alloc_extra() objects with
 * extra > 0. Blocks of up to 2048 bytes take a slot of the smallest class
 * holding them, in 64 KiB spans; spans come from segments for which the
 * system allocator is asked 17 x 64 KiB (16 spans and room to align them).
 * Larger blocks are one system allocation each, with a 32-byte prefix.
 * F = segments x 17 x 64 KiB + 32 x large blocks - bytes of pooled blocks.
 *
 * Debug builds keep freed objects in a quarantine before the allocator
 * sees them; these suites turn it off (RCGC_QUARANTINE=0), so the same
 * figures hold in every build.
 *
 * Every test installs a counting system allocator first (each test runs in
 * a fresh process) and ends with the leak check.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#define TA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TA_ASAN 1
#endif
#endif

/* ---------------------------------------------------------------- layout */

#define HDR ((size_t)16)
#define DBG ((size_t)(RCGC_DEBUG ? 32 : 0))
#define SIZED ((size_t)16)
#define SPAN ((size_t)64 << 10)
#define SEGMENT ((size_t)17 * SPAN)
#define SMALL_MAX ((size_t)2048)
#define LARGE_PREFIX ((size_t)32)

static const size_t classes[] = {16,  32,  48,  64,   80,   96,   112,  128,
                                 160, 192, 224, 256,  320,  384,  448,  512,
                                 640, 768, 896, 1024, 1280, 1536, 1792, 2048};
#define NCLASSES (sizeof classes / sizeof classes[0])

/* The slot size a block of `block` bytes takes; 0 for a large block. */
static size_t class_for(size_t block) {
    for (size_t i = 0; i < NCLASSES; i++)
        if (block <= classes[i])
            return classes[i];
    return 0;
}

/* --------------------------------------------------- counting allocator */

static struct {
    uint64_t held;       /* bytes handed out and not given back */
    uint64_t allocs, frees;
    uint64_t segments;   /* allocations of exactly SEGMENT bytes, held */
    uint64_t asks;       /* calls, the failed ones too */
    size_t last_size;
    void *last_ptr;
    void *last_freed;
    size_t last_freed_size;
} ca;

static void *ca_alloc(size_t size, void *ud) {
    (void)ud;
    ca.asks++;
    void *p = malloc(size);
    if (p == NULL)
        return NULL;
    ca.held += size;
    ca.allocs++;
    ca.segments += size == SEGMENT;
    ca.last_size = size;
    ca.last_ptr = p;
    return p;
}

static void ca_free(void *p, size_t size, void *ud) {
    (void)ud;
    ca.held -= size;
    ca.frees++;
    ca.segments -= size == SEGMENT;
    ca.last_freed = p;
    ca.last_freed_size = size;
    free(p);
}

static const rc_allocator counting = {ca_alloc, ca_free, NULL};

static void install_counting(void) {
    memset(&ca, 0, sizeof ca);
    cr_assert_eq(setenv("RCGC_QUARANTINE", "0", 1), 0); /* read at start */
    cr_assert_eq(rc_set_allocator(&counting), 0,
                 "the allocator is set before the first allocation");
    rc_set_threshold(0);
}

TestSuite(classes, .init = install_counting);
TestSuite(spans, .init = install_counting);
TestSuite(frag, .init = install_counting);
TestSuite(large, .init = install_counting);
TestSuite(reuse, .init = install_counting);
TestSuite(uaf, .init = install_counting);

/* ---------------------------------------------------------------- helpers */


/* Types outlive their objects, also in the quarantine of debug builds,
 * where block sizes are read back from them: tests take theirs from here. */
static rc_type type_pool[8192];
static size_t types_used;

static const rc_type *type_of_size(size_t payload) {
    cr_assert_lt(types_used, sizeof type_pool / sizeof type_pool[0]);
    rc_type *t = &type_pool[types_used++];
    *t = (rc_type){"t", payload, NULL, NULL, 0, NULL};
    return t;
}

static const rc_type big_type = {"big", 3000, NULL, NULL, 0, NULL};
static const rc_type flex_type = {"flex", 0, NULL, NULL, 0, NULL};

/* F with `segments` segments, `pooled` bytes of live pooled blocks and
 * `large` live large blocks. */
static uint64_t frag(uint64_t segments, uint64_t pooled, uint64_t large) {
    return segments * SEGMENT - pooled + large * LARGE_PREFIX;
}

/* A plain object whose block is exactly `block` bytes, or NULL when no
 * payload size gives that block. */
static void *plain_block(size_t block) {
    if (block < HDR + DBG)
        return NULL;
    return th_must(rc_alloc(type_of_size(block - HDR - DBG)), "plain");
}

/* A size-prefixed object (rc_alloc_extra, extra > 0) of `block` bytes. */
static void *sized_block(size_t block) {
    if (block <= SIZED + HDR + DBG)
        return NULL;
    return th_must(rc_alloc_extra(&flex_type, block - SIZED - HDR - DBG),
                   "sized");
}

static size_t min_distance(void *const *p, size_t n) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            uintptr_t a = (uintptr_t)p[i], b = (uintptr_t)p[j];
            if (a > b && a - b < best)
                best = a - b;
        }
    return best;
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* ================================================================ classes */

/* Four objects of one block size: pooled ones sit one slot apart (the
 * smallest distance between two of them is the class size); large ones are
 * one system allocation each, of the block plus the prefix. */
static void check_block_size(size_t block, bool sized) {
    enum { K = 4 };
    void *objs[K];
    uint64_t allocs = ca.allocs;
    for (int i = 0; i < K; i++) {
        objs[i] = sized ? sized_block(block) : plain_block(block);
        if (objs[i] == NULL)
            return; /* no object has a block that small */
    }
    size_t cls = class_for(block);
    if (cls == 0) {
        cr_assert_eq(ca.allocs - allocs, K, "block %zu: one allocation each",
                     block);
        cr_assert_eq(ca.last_size, block + LARGE_PREFIX, "block %zu", block);
    } else {
        cr_assert_eq(min_distance(objs, K), cls,
                     "block %zu (%s) goes to the %zu-byte class", block,
                     sized ? "sized" : "plain", cls);
    }
    for (int i = 0; i < K; i++)
        rc_release(objs[i]);
}

Test(classes, blocks_at_and_one_over_every_boundary) {
    for (size_t i = 0; i < NCLASSES; i++) {
        check_block_size(classes[i], false);
        check_block_size(classes[i] + 1, false);
        check_block_size(classes[i], true);
        check_block_size(classes[i] + 1, true);
    }
    TH_ASSERT_NO_LEAKS();
}

/* Every payload size up to past the largest class, plain and sized:
 * 16-byte aligned, zeroed, writable to its last byte. */
Test(classes, every_class_aligns_payloads_to_16) {
    for (size_t payload = 0; payload <= SMALL_MAX + 64; payload++) {
        unsigned char *p = th_must(rc_alloc(type_of_size(payload)), "t");
        unsigned char *q = th_must(rc_alloc_extra(&flex_type, payload + 1),
                                   "extra");
        cr_assert_eq((uintptr_t)p % 16, 0, "payload %zu", payload);
        cr_assert_eq((uintptr_t)q % 16, 0, "extra payload %zu", payload + 1);
        for (size_t i = 0; i < payload; i++)
            cr_assert_eq(p[i], 0, "payload %zu zeroed at %zu", payload, i);
        memset(p, 0xa5, payload);
        memset(q, 0x5a, payload + 1);
        rc_release(p);
        rc_release(q);
    }
    TH_ASSERT_NO_LEAKS();
}

/* Descriptors the compiler can read (static const) take the header's
 * inline rc_alloc in release builds: classified at compile time, zeroed by
 * the caller. Their objects must be what rc_alloc makes of any other type:
 * zeroed (also in a slot just dirtied and freed), counted at their block
 * size, typed, and freed by the death their kind calls for. */
static void known_trace(void *obj, rc_visit_fn visit, void *ctx) {
    void **kid = obj;
    visit(*kid, ctx);
}
static void known_trace_none(void *obj, rc_visit_fn visit, void *ctx) {
    (void)obj, (void)visit, (void)ctx; /* a payload too small for a kid */
}
#define KNOWN_TRACE(n) ((n) >= sizeof(void *) ? known_trace : known_trace_none)

static void check_known(const rc_type *t, unsigned char *p, uint64_t bytes) {
    cr_assert_eq((uintptr_t)p % 16, 0, "%s: aligned", t->name);
    for (size_t i = 0; i < t->size; i++)
        cr_assert_eq(p[i], 0, "%s: zeroed at %zu", t->name, i);
    cr_assert_eq(rc_type_of(p), t, "%s", t->name);
    cr_assert_eq(rc_refcount(p), 1, "%s", t->name);
    cr_assert_eq(bytes, HDR + DBG + t->size, "%s: counted at its block size",
                 t->name);
}

/* Allocates from T twice, dirtying and freeing the first object, so that
 * the second one most likely takes the dirty slot; a kid of the first
 * object is freed with it when T traces one. */
#define CHECK_KNOWN(T)                                                       \
    do {                                                                     \
        for (int round = 0; round < 2; round++) {                            \
            rc_stats s0 = th_stats();                                        \
            unsigned char *p = th_must(rc_alloc(&(T)), (T).name);            \
            check_known(&(T), p,                                             \
                        th_stats().bytes_allocated - s0.bytes_allocated);    \
            if ((T).trace != NULL && (T).size >= sizeof(void *))             \
                *(void **)p = th_must(rc_alloc(&tleaf_type), "kid");         \
            else                                                             \
                memset(p, 0xa5, (T).size);                                   \
            rc_release(p);                                                   \
            rc_stats s1 = th_stats();                                        \
            cr_assert_eq(s1.objects_live, s0.objects_live, "%s", (T).name);  \
            cr_assert_eq(s1.bytes_live, s0.bytes_live, "%s", (T).name);      \
        }                                                                    \
    } while (0)

#define KNOWN_TYPES(X) X(0) X(8) X(16) X(24) X(40) X(64) X(100) X(256) \
    X(257) X(3000)
#define KNOWN_DEFINE(n)                                                      \
    static const rc_type known_cyclic_##n = {                               \
        "cyclic" #n, n, KNOWN_TRACE(n), NULL, 0, NULL};                      \
    static const rc_type known_plain_##n = {"plain" #n, n, NULL, NULL, 0,  \
                                            NULL};                           \
    static const rc_type known_acyclic_##n = {                              \
        "acyclic" #n, n, KNOWN_TRACE(n), NULL, RC_TYPE_ACYCLIC, NULL};       \
    static const rc_type known_hooks_##n = {                                \
        "hooks" #n, n, NULL, th_count_finalize, 0, th_count_dispose};
KNOWN_TYPES(KNOWN_DEFINE)

Test(classes, types_known_at_compile_time) {
    th_reset();
#define KNOWN_CHECK(n)                                                       \
    CHECK_KNOWN(known_cyclic_##n);                                           \
    CHECK_KNOWN(known_plain_##n);                                            \
    CHECK_KNOWN(known_acyclic_##n);                                          \
    CHECK_KNOWN(known_hooks_##n);
    KNOWN_TYPES(KNOWN_CHECK)
    cr_assert_eq(th_finalized, 2 * 10, "each hooked object finalized once");
    cr_assert_eq(th_disposed, 2 * 10);
    TH_ASSERT_NO_LEAKS();
}

/* ================================================================= spans */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Enough 64-byte blocks for four segments, then all freed: the spans go
 * back to their segments, and the segments wait as spares while the burst
 * of frees lasts (less than a second); rc_collect() gives all but at most
 * two (the one holding the class's last span, and one spare) back. */
Test(spans, emptied_spans_and_segments_are_returned, .timeout = 60) {
    const size_t block = 64, per_span = SPAN / block - 1;
    const size_t n = 3 * 16 * per_span + 100;
    void **objs = th_must(malloc(n * sizeof *objs), "table");
    const rc_type *t = type_of_size(block - HDR - DBG);
    uint64_t held0 = ca.held;
    for (size_t i = 0; i < n; i++)
        objs[i] = th_must(rc_alloc(t), "t");
    rc_stats s = th_stats();
    cr_assert_eq(ca.segments, 4, "four segments for %zu blocks", n);
    cr_assert_eq(s.bytes_fragmented, frag(4, n * block, 0));
    uint64_t peak = ca.held;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
        rc_release(objs[i]);
    if (now_s() - t0 < 0.5) /* a slow machine may see the delay pass */
        cr_assert_eq(ca.segments, 4, "kept during the burst: %" PRIu64,
                     ca.segments);
    rc_collect();
    s = th_stats();
    cr_assert_leq(ca.segments, 2, "segments left: %" PRIu64, ca.segments);
    cr_assert_eq(s.bytes_fragmented, frag(ca.segments, 0, 0));
    cr_assert_geq(peak - ca.held, (4 - ca.segments) * SEGMENT);
    cr_assert_leq(ca.held - held0, 2 * SEGMENT + 65536,
                  "held after: %" PRIu64, ca.held - held0);
    free(objs);
    TH_ASSERT_NO_LEAKS();
}

/* Emptied spans that are the only ones of their class stay listed for
 * reuse, but not across rc_collect(): eight classes, a segment each, all
 * released, leave no more segments than a heap with one class would. */
Test(spans, lone_empty_spans_of_many_classes_go_back_on_collect,
     .timeout = 60) {
    enum { K = 8 };
    void **objs[K];
    size_t n[K];
    for (size_t k = 0; k < K; k++) {
        size_t block = classes[NCLASSES - K + k]; /* 640 .. 2048 */
        n[k] = 16 * (SPAN / block - 1);
        objs[k] = th_must(malloc(n[k] * sizeof *objs[k]), "table");
        const rc_type *t = type_of_size(block - HDR - DBG);
        for (size_t i = 0; i < n[k]; i++)
            objs[k][i] = th_must(rc_alloc(t), "t");
    }
    cr_assert_geq(ca.segments, K, "a segment per class at least");
    for (size_t k = 0; k < K; k++) {
        for (size_t i = 0; i < n[k]; i++)
            rc_release(objs[k][i]);
        free(objs[k]);
    }
    rc_collect();
    cr_assert_leq(ca.segments, 2, "segments left: %" PRIu64, ca.segments);
    cr_assert_eq(th_stats().bytes_fragmented, frag(ca.segments, 0, 0));
    TH_ASSERT_NO_LEAKS();
}

/* A heap that drops half of what it uses and grows back: the idle
 * segments (no more than the ones in use) are kept and reused, so the
 * second growth asks the system for nothing; freeing everything and
 * collecting then gives all but two back. */
Test(spans, idle_segments_kept_while_no_more_than_used, .timeout = 60) {
    const size_t block = 64, per_span = SPAN / block - 1;
    const size_t half = 4 * 16 * per_span; /* at least four segments */
    void **objs = th_must(malloc(2 * half * sizeof *objs), "table");
    const rc_type *t = type_of_size(block - HDR - DBG);
    for (size_t i = 0; i < 2 * half; i++)
        objs[i] = th_must(rc_alloc(t), "t");
    uint64_t segs = ca.segments, allocs = ca.allocs;
    cr_assert_geq(segs, 8);
    for (int round = 0; round < 3; round++) {
        for (size_t i = half; i < 2 * half; i++)
            rc_release(objs[i]);
        cr_assert_eq(ca.segments, segs, "round %d: idle segments kept", round);
        allocs = ca.allocs;
        for (size_t i = half; i < 2 * half; i++)
            objs[i] = th_must(rc_alloc(t), "t");
        cr_assert_eq(ca.segments, segs, "round %d: no new segment", round);
        cr_assert_eq(ca.allocs, allocs, "round %d: no system allocation",
                     round);
    }
    for (size_t i = 0; i < 2 * half; i++)
        rc_release(objs[i]);
    rc_collect();
    cr_assert_leq(ca.segments, 2, "segments left: %" PRIu64, ca.segments);
    free(objs);
    TH_ASSERT_NO_LEAKS();
}

/* Without rc_collect(), spare segments beyond what the heap keeps go back
 * at the first span to go idle once the excess has lasted a second. */
Test(spans, excess_idle_segments_returned_after_a_second, .timeout = 60) {
    const size_t block = 64, per_span = SPAN / block - 1;
    const size_t n = 3 * 16 * per_span + 100;
    void **objs = th_must(malloc(n * sizeof *objs), "table");
    const rc_type *t = type_of_size(block - HDR - DBG);
    for (size_t i = 0; i < n; i++)
        objs[i] = th_must(rc_alloc(t), "t");
    cr_assert_eq(ca.segments, 4);
    for (size_t i = 0; i < n; i++)
        rc_release(objs[i]);
    struct timespec pause = {1, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    /* Two spans of another class, emptied: the first to go idle (not its
     * class's only span) looks at the spares. */
    const rc_type *u = type_of_size(128 - HDR - DBG);
    size_t m = SPAN / 128 + 10;
    for (size_t i = 0; i < m; i++)
        objs[i] = th_must(rc_alloc(u), "u");
    for (size_t i = 0; i < m; i++)
        rc_release(objs[i]);
    cr_assert_leq(ca.segments, 2, "segments left: %" PRIu64, ca.segments);
    free(objs);
    TH_ASSERT_NO_LEAKS();
}

/* One object allocated and freed in a loop, and a class filled to one
 * slot past a span and back, a thousand times: no system allocation. */
Test(spans, no_thrash_at_span_boundaries) {
    const size_t block = 128, per_span = SPAN / block - 1;
    void **objs = th_must(malloc((per_span + 1) * sizeof *objs), "table");
    const rc_type *t = type_of_size(block - HDR - DBG);
    const rc_type *small = type_of_size(48 - HDR - DBG);
    for (size_t i = 0; i < per_span; i++)
        objs[i] = th_must(rc_alloc(t), "t");
    uint64_t allocs = ca.allocs;
    for (int round = 0; round < 1000; round++) {
        rc_release(th_must(rc_alloc(t), "extra"));
        rc_release(th_must(rc_alloc(small), "one"));
    }
    cr_assert_leq(ca.allocs - allocs, 0,
                  "system allocations: %" PRIu64, ca.allocs - allocs);
    for (size_t i = 0; i < per_span; i++)
        rc_release(objs[i]);
    free(objs);
    TH_ASSERT_NO_LEAKS();
}

/* ================================================================= frag */

/* 100 blocks of 36 (+32) bytes, two large objects and a sized object; then
 * every other pooled one and one large one freed. F is exact throughout:
 * class rounding, free slots and idle spans are all of it. */
Test(frag, exact_figure_for_a_known_pattern) {
    enum { N = 100 };
    static const rc_type t20 = {"t20", 20, NULL, NULL, 0, NULL};
    const size_t b20 = HDR + DBG + 20, bx = SIZED + HDR + DBG + 100;
    void *objs[N];
    for (int i = 0; i < N; i++)
        objs[i] = th_must(rc_alloc(&t20), "t20");
    void *big1 = th_must(rc_alloc(&big_type), "big");
    void *big2 = th_must(rc_alloc(&big_type), "big");
    void *x = th_must(rc_alloc_extra(&flex_type, 100), "extra");
    rc_stats s = th_stats();
    cr_assert_eq(ca.segments, 1);
    cr_assert_eq(s.bytes_fragmented, frag(1, N * b20 + bx, 2));
    cr_assert_eq(s.bytes_live, N * b20 + bx + 2 * (HDR + DBG + 3000));

    for (int i = 0; i < N; i += 2)
        rc_release(objs[i]);
    rc_release(big1);
    s = th_stats();
    cr_assert_eq(s.bytes_fragmented, frag(1, N / 2 * b20 + bx, 1));
    cr_assert_eq(s.bytes_fragmented + s.bytes_live,
                 SEGMENT + LARGE_PREFIX +
                     (HDR + DBG + 3000),
                 "F + L: every byte held is counted once");

    for (int i = 1; i < N; i += 2)
        rc_release(objs[i]);
    rc_release(big2);
    rc_release(x);
    cr_assert_eq(th_stats().bytes_fragmented, frag(1, 0, 0));
    TH_ASSERT_NO_LEAKS();
}

/* F counts rounding: one 49-byte block in a 64-byte slot leaves 15 bytes
 * more slack than one 64-byte block. */
Test(frag, class_rounding_is_slack) {
    void *a = plain_block(49);
    uint64_t f49 = th_stats().bytes_fragmented;
    rc_release(a);
    void *b = plain_block(64);
    uint64_t f64 = th_stats().bytes_fragmented;
    cr_assert_eq(f49 - f64, 15);
    rc_release(b);
    TH_ASSERT_NO_LEAKS();
}

/* ================================================================= large */

Test(large, blocks_over_2_kib_come_from_the_system_allocator) {
    void *warm = plain_block(48); /* the first segment */
    uint64_t allocs = ca.allocs, frees = ca.frees, held = ca.held;

    void *at_max = plain_block(SMALL_MAX);
    cr_assert_eq(ca.allocs, allocs, "a 2048-byte block is pooled");

    unsigned char *big = plain_block(SMALL_MAX + 1);
    size_t big_payload = SMALL_MAX + 1 - HDR - DBG;
    cr_assert_eq(ca.allocs, allocs + 1);
    cr_assert_eq(ca.last_size, SMALL_MAX + 1 + LARGE_PREFIX);
    cr_assert_eq((uintptr_t)big % 16, 0);
    for (size_t i = 0; i < big_payload; i++)
        cr_assert_eq(big[i], 0);
    memset(big, 0x77, big_payload);

    void *raw = ca.last_ptr;
    rc_release(big);
    rc_release(at_max);
    rc_release(warm);
    cr_assert_eq(ca.frees, frees + 1, "released: given back at once");
    cr_assert_eq(ca.last_freed, raw);
    cr_assert_eq(ca.last_freed_size, SMALL_MAX + 1 + LARGE_PREFIX);
    cr_assert_eq(ca.held, held);
    cr_assert_eq(th_stats().bytes_fragmented, frag(1, 0, 0));
    TH_ASSERT_NO_LEAKS();
}

/* A size no object can have (over PTRDIFF_MAX) fails before the system
 * allocator is asked for it. */
Test(large, impossible_sizes_never_reach_the_system_allocator) {
    static const rc_type t = {"t", 8, NULL, NULL, 0, NULL};
    static const rc_type huge = {"huge", (size_t)PTRDIFF_MAX, NULL, NULL, 0,
                                 NULL};
    rc_release(th_must(rc_alloc(&t), "t")); /* the runtime exists */
    uint64_t asks = ca.asks;
    cr_assert_null(rc_alloc_extra(&t, (size_t)PTRDIFF_MAX));
    cr_assert_null(rc_alloc_extra(&t, (size_t)PTRDIFF_MAX - 64));
    cr_assert_null(rc_alloc_extra(&t, SIZE_MAX - 100));
    cr_assert_null(rc_alloc(&huge));
    cr_assert_eq(ca.asks, asks, "asked the system allocator %" PRIu64 " times",
                 ca.asks - asks);
    TH_ASSERT_NO_LEAKS();
}

/* A system allocator that hands out memory 8 bytes off 16-byte alignment:
 * large payloads are aligned anyway (pooled ones are: spans are aligned
 * to 64 KiB inside the segment). */
static size_t odd_held; /* bytes handed out and not given back */
static void *odd_alloc(size_t size, void *ud) {
    (void)ud;
    char *p = malloc(size + 16);
    if (p == NULL)
        return NULL;
    memcpy(p, &size, sizeof size);
    odd_held += size;
    return p + 8;
}
static void odd_free(void *p, size_t size, void *ud) {
    (void)ud;
    size_t was;
    memcpy(&was, (char *)p - 8, sizeof was);
    cr_assert_eq(was, size, "freed with the size it was allocated with");
    odd_held -= size;
    free((char *)p - 8);
}

Test(large_misaligned, payloads_aligned_with_a_misaligned_allocator) {
    static const rc_allocator odd = {odd_alloc, odd_free, NULL};
    cr_assert_eq(rc_set_allocator(&odd), 0);
    for (size_t payload = 2000; payload < 2200; payload += 8) {
        unsigned char *p = th_must(rc_alloc(type_of_size(payload)), "t");
        cr_assert_eq((uintptr_t)p % 16, 0, "payload %zu", payload);
        memset(p, 1, payload);
        rc_release(p);
    }
    TH_ASSERT_NO_LEAKS();
    /* Thread exit gives every byte back, through the allocator's free. */
    cr_assert_gt(odd_held, 0);
    rc_thread_exit();
    cr_assert_eq(odd_held, 0, "%zu bytes kept after rc_thread_exit", odd_held);
}

/* ================================================================= reuse */

/* Objects of mixed sizes (pooled and large) allocated and freed in a
 * random order: each keeps its contents while alive; in the end the heap is
 * back to idle segments only. */
Test(reuse, random_order, .timeout = 60) {
    enum { N = 20000, ROUNDS = 3 };
    static rc_type types[N];
    static unsigned char *objs[N];
    uint64_t seed = 42;
    for (int i = 0; i < N; i++)
        types[i] = (rc_type){"r", (size_t)(xorshift(&seed) % 2200), NULL,
                             NULL, 0, NULL};
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            if (objs[i] != NULL)
                continue;
            objs[i] = th_must(rc_alloc(&types[i]), "r");
            memset(objs[i], (unsigned char)i, types[i].size);
        }
        for (int k = 0; k < N; k++) {
            int i = (int)(xorshift(&seed) % N);
            if (objs[i] == NULL)
                continue;
            for (size_t j = 0; j < types[i].size; j++)
                cr_assert_eq(objs[i][j], (unsigned char)i, "object %d intact",
                             i);
            rc_release(objs[i]);
            objs[i] = NULL;
        }
    }
    for (int i = 0; i < N; i++)
        rc_release(objs[i]);
    rc_stats s = th_stats();
    cr_assert_eq(s.bytes_live, 0);
    cr_assert_eq(s.bytes_fragmented, frag(ca.segments, 0, 0));
    TH_ASSERT_NO_LEAKS();
}

/* The block freed last is the next one handed out. */
Test(reuse, lifo) {
    static const rc_type t = {"t", 40, NULL, NULL, 0, NULL};
    void *a = th_must(rc_alloc(&t), "a");
    void *b = th_must(rc_alloc(&t), "b");
    void *c = th_must(rc_alloc(&t), "c");
    rc_release(b);
    void *d = th_must(rc_alloc(&t), "d");
    cr_assert_eq(d, b);
    rc_release(a);
    rc_release(c);
    void *e = th_must(rc_alloc(&t), "e");
    void *f = th_must(rc_alloc(&t), "f");
    cr_assert_eq(e, c);
    cr_assert_eq(f, a);
    void *g = th_must(rc_alloc_extra(&t, 8), "g");
    rc_release(g);
    void *h = th_must(rc_alloc_extra(&t, 8), "h");
    cr_assert_eq(h, g, "sized blocks too");
    rc_release(d);
    rc_release(e);
    rc_release(f);
    rc_release(h);
    TH_ASSERT_NO_LEAKS();
}

/* =================================================================== uaf */

typedef struct uaf_case {
    size_t payload;
    size_t extra;
    size_t offset; /* read at payload + offset */
    bool release;  /* false: read past the end of a live object */
} uaf_case;

#ifdef TA_ASAN
static volatile unsigned char uaf_sink;

static void uaf_child(void *arg) {
    const uaf_case *c = arg;
    rc_type t = {"victim", c->payload, NULL, NULL, 0, NULL};
    unsigned char *p = c->extra ? rc_alloc_extra(&t, c->extra) : rc_alloc(&t);
    if (p == NULL)
        _exit(3);
    rc_type other = {"other", c->payload, NULL, NULL, 0, NULL};
    void *neighbour = rc_alloc(&other); /* keeps the span in use */
    if (c->release)
        rc_release(p);
    uaf_sink = ((volatile unsigned char *)p)[c->offset];
    fprintf(stderr, "uaf: survived\n");
    rc_release(neighbour);
}
#endif

static void expect_asan_report(uaf_case c, const char *what) {
#ifndef TA_ASAN
    (void)c;
    (void)what;
    cr_skip_test("not built with AddressSanitizer");
#else
    char out[8192];
    int sig = th_capture(uaf_child, &c, out, sizeof out);
    cr_assert_neq(sig, -1, "could not run the child");
    cr_assert_null(strstr(out, "uaf: survived"), "%s went unnoticed", what);
    cr_assert_not_null(strstr(out, "AddressSanitizer"), "%s: %s", what, out);
    cr_assert(strstr(out, "heap-use-after-free") != NULL ||
                  strstr(out, "use-after-poison") != NULL,
              "%s: %s", what, out);
    TH_ASSERT_NO_LEAKS();
#endif
}

Test(uaf, read_of_released_pooled_object) {
    expect_asan_report((uaf_case){32, 0, 0, true}, "pooled read");
}

Test(uaf, read_of_released_pooled_object_last_byte) {
    expect_asan_report((uaf_case){100, 0, 99, true}, "pooled last byte");
}

Test(uaf, read_of_released_sized_object) {
    expect_asan_report((uaf_case){16, 200, 100, true}, "sized read");
}

Test(uaf, read_of_released_large_object) {
    expect_asan_report((uaf_case){5000, 0, 8, true}, "large read");
}

/* A 20-byte payload in a 48-byte slot: the rest of the slot is poisoned. */
Test(uaf, read_past_the_end_into_class_slack) {
    expect_asan_report((uaf_case){20, 0, 24, false}, "overflow into slack");
}

/* ============================================================== populate */

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* Whether this kernel maps pages in on request (Linux 5.14 and later). */
static bool kernel_populates(void) {
#ifdef MADV_POPULATE_WRITE
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = madvise(p, 4096, MADV_POPULATE_WRITE) == 0;
    munmap(p, 4096);
    return ok;
#else
    return false;
#endif
}

TestSuite(populate);

/* 2 MiB of 64-byte objects: a heap past its first segment, where new spans
 * are mapped in ahead. */
enum { WARM_BLOCK = 64, WARM_N = (2u << 20) / WARM_BLOCK };
static void **warm_heap(void) {
    void **objs = th_must(malloc(WARM_N * sizeof *objs), "table");
    const rc_type *t = type_of_size(WARM_BLOCK - HDR - DBG);
    for (size_t i = 0; i < WARM_N; i++)
        objs[i] = th_must(rc_alloc(t), "t");
    return objs;
}
static void drop_warm_heap(void **objs) {
    for (size_t i = 0; i < WARM_N; i++)
        rc_release(objs[i]);
    free(objs);
}

/* With the C library's allocator, a heap past its first segment has each
 * new span's pages mapped in at once, not page by page as they are first
 * touched: right after its first allocation, all 16 pages of a fresh span
 * are resident. (Not under Memcheck, whose blocks are tracked one by one.) */
Test(populate, big_heaps_map_new_spans_in_at_once, .timeout = 60) {
    if (RUNNING_ON_VALGRIND || !kernel_populates()) {
        cr_skip_test("needs Linux 5.14 and no Memcheck");
        return;
    }
    void **objs = warm_heap();
    /* The first object of another class opens a fresh span. */
    void *one = th_must(rc_alloc(type_of_size(1024 - HDR - DBG)), "one");
    uintptr_t span = ((uintptr_t)one - HDR - DBG) & ~(uintptr_t)(SPAN - 1);
    unsigned char resident[SPAN / 4096];
    cr_assert_eq(mincore((void *)span, SPAN, resident), 0, "mincore");
    size_t in = 0;
    for (size_t i = 0; i < sizeof resident; i++)
        in += resident[i] & 1;
    cr_assert_eq(in, sizeof resident, "%zu of %zu pages resident", in,
                 sizeof resident);
    rc_release(one);
    drop_warm_heap(objs);
    TH_ASSERT_NO_LEAKS();
}

static long minor_faults(void) {
    struct rusage ru;
    cr_assert_eq(getrusage(RUSAGE_SELF, &ru), 0, "getrusage");
    return ru.ru_minflt;
}

/* The call that maps in a new span maps in the idle spans after it in its
 * segment too: of six fresh spans taken one after the other, at most one
 * (the first of a new segment) faults pages in, where one call per span
 * would fault all six. (Not under AddressSanitizer, whose
 * shadow pages fault in as the spans are poisoned.) */
Test(populate, a_new_span_maps_in_the_spans_after_it, .timeout = 60) {
#ifdef TA_ASAN
    cr_skip_test("AddressSanitizer faults shadow pages in");
    return;
#endif
    if (RUNNING_ON_VALGRIND || !kernel_populates()) {
        cr_skip_test("needs Linux 5.14 and no Memcheck");
        return;
    }
    void **objs = warm_heap();
    /* Blocks of classes the heap has not used yet: each opens a span. */
    static const size_t fresh[] = {128, 256, 512, 768, 1536, 2048};
    void *one[6];
    int faulted = 0;
    for (int k = 0; k < 6; k++) {
        long before = minor_faults();
        one[k] = th_must(rc_alloc(type_of_size(fresh[k] - HDR - DBG)), "one");
        faulted += minor_faults() > before;
    }
    cr_assert_leq(faulted, 1, "%d of 6 fresh spans faulted pages in", faulted);
    for (int k = 0; k < 6; k++)
        rc_release(one[k]);
    drop_warm_heap(objs);
    TH_ASSERT_NO_LEAKS();
}
