/* W2 cyclic garbage: R rings of K nodes held by one array of heads; drop the
 * array, then one full collection (see bench/README.md). Also W2x: one ring of
 * 1M nodes, and with "open" one chain of 1M nodes that counting alone frees
 * (a release cascade 1M deep).
 *
 * Implementations (BENCH_IMPL_*):
 *   rcgc      heads is an rc object holding R strong references; default
 *             threshold, so the build and the drop may run automatic passes
 *   malloc, mimalloc  "manual": the program knows the shape and frees every
 *             ring by walking it (no detection at all: the lower bound)
 *   boehm     heads cleared, then GC_gcollect()
 *
 * Usage: w2_<impl> R K [open] [stop=build|reclaim]
 *   stop=PHASE exits right after that phase (instruction-count differencing). */
#include "bench_util.h"

#include <string.h>
#include <unistd.h>

typedef struct Node {
    struct Node *next;
} Node;

/* ---- implementations --------------------------------------------------- */

#if defined(BENCH_IMPL_RCGC)
#include <rcgc.h>
#define IMPL_NAME "rcgc"

typedef struct Heads {
    size_t count;
    Node *items[];
} Heads;

static void node_trace(void *obj, rc_visit_fn visit, void *ctx) {
    visit(((Node *)obj)->next, ctx);
}

static void heads_trace(void *obj, rc_visit_fn visit, void *ctx) {
    Heads *h = obj;
    for (size_t i = 0; i < h->count; i++)
        visit(h->items[i], ctx);
}

static const rc_type node_type = {"Node", sizeof(Node), node_trace, NULL, 0,
                                  NULL};
static const rc_type heads_type = {"Heads", sizeof(Heads), heads_trace, NULL,
                                   0, NULL};

static Heads *build(size_t r_count, size_t k, int open) {
    Heads *heads = bench_check_alloc(
        rc_alloc_extra(&heads_type, r_count * sizeof(Node *)), "heads");
    heads->count = r_count;
    for (size_t r = 0; r < r_count; r++) {
        /* first, prev and n are strong references, released the way a
         * language drops its locals: every rebinding of prev leaves the old
         * node's count above zero, as in the peers. */
        Node *first = bench_check_alloc(rc_new(Node, &node_type), "node");
        Node *prev = rc_retain(first);
        Node *n = NULL;
        for (size_t i = 1; i < k; i++) {
            Node *fresh = bench_check_alloc(rc_new(Node, &node_type), "node");
            Node *old = n;
            n = fresh; /* n = Node(): the new reference moves into n */
            rc_release(old);
            RC_SET(prev->next, n);
            RC_SET(prev, n);
        }
        if (!open)
            RC_SET(prev->next, first);
        heads->items[r] = rc_retain(first);
        rc_release(first);
        rc_release(prev);
        rc_release(n);
    }
    return heads;
}

static void drop(Heads *heads, size_t k) {
    (void)k;
    rc_release(heads);
}

static size_t collect(void) { return rc_collect(); }

#elif defined(BENCH_IMPL_MALLOC) || defined(BENCH_IMPL_MIMALLOC) ||           \
    defined(BENCH_IMPL_BOEHM)

typedef struct Heads {
    size_t count;
    Node *items[];
} Heads;

#if defined(BENCH_IMPL_MALLOC)
#define IMPL_NAME "malloc"
#define BENCH_MALLOC malloc
#define BENCH_FREE free
#elif defined(BENCH_IMPL_MIMALLOC)
#include <mimalloc.h>
#define IMPL_NAME "mimalloc"
#define BENCH_MALLOC mi_malloc
#define BENCH_FREE mi_free
#else
#include <gc.h>
#define IMPL_NAME "boehm"
#define BENCH_MALLOC GC_MALLOC
#define BENCH_FREE(p) ((void)(p))
#endif

static Heads *build(size_t r_count, size_t k, int open) {
    Heads *heads = bench_check_alloc(
        BENCH_MALLOC(sizeof(Heads) + r_count * sizeof(Node *)), "heads");
    heads->count = r_count;
    for (size_t r = 0; r < r_count; r++) {
        Node *first = bench_check_alloc(BENCH_MALLOC(sizeof(Node)), "node");
        first->next = NULL;
        Node *prev = first;
        for (size_t i = 1; i < k; i++) {
            Node *n = bench_check_alloc(BENCH_MALLOC(sizeof(Node)), "node");
            n->next = NULL;
            prev->next = n;
            prev = n;
        }
        if (!open)
            prev->next = first;
        heads->items[r] = first;
    }
    return heads;
}

#if defined(BENCH_IMPL_BOEHM)
/* Clearing the only pointer is the whole drop; the caller forgets heads. */
static void drop(Heads *heads, size_t k) {
    (void)heads;
    (void)k;
}

static size_t collect(void) {
    GC_gcollect();
    return 0;
}
#else
/* Walk each ring exactly k nodes (an open chain ends at NULL anyway). */
static void drop(Heads *heads, size_t k) {
    for (size_t r = 0; r < heads->count; r++) {
        Node *n = heads->items[r];
        for (size_t i = 0; i < k && n != NULL; i++) {
            Node *next = n->next;
            BENCH_FREE(n);
            n = next;
        }
    }
    BENCH_FREE(heads);
}

static size_t collect(void) { return 0; }
#endif

#else
#error "define one BENCH_IMPL_*"
#endif

/* ---- the workload ------------------------------------------------------- */

enum { STOP_NONE, STOP_BUILD, STOP_RECLAIM };

/* Leaves the process at once: exit-time cleanup must not blur the
 * instruction count of the phase that was asked for. */
static void stop_here(int stop, int phase) {
    if (stop == phase) {
        fflush(stdout);
        _exit(0);
    }
}

#if defined(BENCH_IMPL_BOEHM)
/* Built in a separate frame so that no stale pointer to the rings stays in
 * main's frame or registers when the collector scans the stack. */
static __attribute__((noinline)) uint64_t boehm_build(size_t r, size_t k,
                                                      int open) {
    uint64_t t0 = bench_now_ns();
    Heads *heads = build(r, k, open);
    uint64_t t = bench_now_ns() - t0;
    drop(heads, k);
    return t;
}

/* Scrubs the part of the stack the build used. */
static __attribute__((noinline)) void boehm_clear_stack(void) {
    volatile char pad[16384];
    memset((char *)pad, 0, sizeof pad);
}
#endif

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s R K [open] [stop=build|reclaim]\n", argv[0]);
        return 2;
    }
    size_t r_count = (size_t)bench_arg_u64(argv[1], "R");
    size_t k = (size_t)bench_arg_u64(argv[2], "K");
    int open = 0, stop = STOP_NONE;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "open") == 0)
            open = 1;
        else if (strcmp(argv[i], "stop=build") == 0)
            stop = STOP_BUILD;
        else if (strcmp(argv[i], "stop=reclaim") == 0)
            stop = STOP_RECLAIM;
        else {
            fprintf(stderr, "unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    uint64_t objects = (uint64_t)r_count * k;
    int ok = 1;

#if defined(BENCH_IMPL_BOEHM)
    GC_INIT();
    GC_gcollect();
    size_t use_before = GC_get_memory_use();
    uint64_t build_ns = boehm_build(r_count, k, open);
    stop_here(stop, STOP_BUILD);
    boehm_clear_stack();
    uint64_t c1 = bench_cpu_ns();
    uint64_t t1 = bench_now_ns();
    uint64_t t2 = bench_now_ns(); /* drop: the pointer is already gone */
    size_t freed = collect();
    uint64_t t3 = bench_now_ns();
    uint64_t c3 = bench_cpu_ns();
    stop_here(stop, STOP_RECLAIM);
    /* A conservative collector may keep a ring or two through a stale word;
     * demand that almost all of the built memory came back. */
    size_t use_after = GC_get_memory_use();
    size_t built_bytes = (size_t)objects * sizeof(Node);
    ok &= use_after <= use_before + built_bytes / 100 + 65536;
    printf("RESULT bench=w2 impl=%s r=%zu k=%zu shape=%s objects=%llu "
           "build_ms=%.3f",
           IMPL_NAME, r_count, k, open ? "chain" : "ring",
           (unsigned long long)objects, bench_ms(build_ns));
    printf(" heap_use_before=%zu heap_use_after=%zu", use_before, use_after);
    (void)freed;
#else
#if defined(BENCH_IMPL_RCGC)
    rc_stats before;
    rc_stats_get(&before);
#endif
    uint64_t t0 = bench_now_ns();
    Heads *heads = build(r_count, k, open);
    uint64_t tb = bench_now_ns();
    stop_here(stop, STOP_BUILD);
#if defined(BENCH_IMPL_RCGC)
    rc_stats built;
    rc_stats_get(&built);
#endif
    uint64_t c1 = bench_cpu_ns();
    uint64_t t1 = bench_now_ns();
    drop(heads, k);
    uint64_t t2 = bench_now_ns();
#if defined(BENCH_IMPL_RCGC)
    rc_stats dropped;
    rc_stats_get(&dropped);
#endif
    size_t freed = collect();
    uint64_t t3 = bench_now_ns();
    uint64_t c3 = bench_cpu_ns();
    stop_here(stop, STOP_RECLAIM);
    printf("RESULT bench=w2 impl=%s r=%zu k=%zu shape=%s objects=%llu "
           "build_ms=%.3f",
           IMPL_NAME, r_count, k, open ? "chain" : "ring",
           (unsigned long long)objects, bench_ms(tb - t0));
#if defined(BENCH_IMPL_RCGC)
    rc_stats after;
    rc_stats_get(&after);
    /* Every node and the heads object are gone, whoever freed them. */
    ok &= after.objects_live == before.objects_live;
    ok &= after.objects_freed - built.objects_freed == objects + 1;
    ok &= open || freed + (dropped.objects_freed - built.objects_freed) ==
                      objects + 1;
    printf(" collect_freed=%zu drop_freed=%llu build_collections=%llu "
           "drop_collections=%llu collect_collections=%llu",
           freed,
           (unsigned long long)(dropped.objects_freed - built.objects_freed),
           (unsigned long long)(built.collections - before.collections),
           (unsigned long long)(dropped.collections - built.collections),
           (unsigned long long)(after.collections - dropped.collections));
#else
    (void)freed;
#endif
#endif
    uint64_t reclaim = t3 - t1;
    printf(" drop_ms=%.3f collect_ms=%.3f reclaim_ms=%.3f ns_per_obj=%.3f "
           "reclaim_cpu_ms=%.3f cpu_ns_per_obj=%.3f ok=%d\n",
           bench_ms(t2 - t1), bench_ms(t3 - t2), bench_ms(reclaim),
           (double)reclaim / (double)objects, bench_ms(c3 - c1),
           (double)(c3 - c1) / (double)objects, ok);
    return ok ? 0 : 1;
}
