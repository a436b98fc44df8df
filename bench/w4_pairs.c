/* W4 retain/release pairs on one live object whose count never reaches
 * zero (see bench/README.md). Every row runs the same loop; a compiler barrier
 * after each operation keeps the count in memory, so the operations can be
 * neither merged nor deleted.
 *
 * Usage: w4_pairs MODE [PAIRS]   (default 100,000,000)
 *   MODE: plain volatile noinline atomic_relaxed atomic_acqrel br_model
 *         empty rcgc */
#include "bench_util.h"

#include <rcgc.h>
#include <string.h>

typedef struct Obj {
    uint32_t rc;
    uint32_t flags;
} Obj;

typedef struct VObj {
    volatile uint32_t rc;
    uint32_t flags;
} VObj;

#define BR_BUFFERED 1u

static uint64_t slow_calls;

/* Never reached while the count stays above zero: kept out of line so the
 * loops carry only the test and the branch. */
static __attribute__((noinline, cold)) void free_slow(void *o) {
    (void)o;
    slow_calls++;
}

/* The Bacon-Rajan model: the first decrement to non-zero pushes the object
 * to a root buffer; the flag keeps every later one to a single test. */
static void *root_buffer[1];
static __attribute__((noinline, cold)) void push_root(Obj *o) {
    o->flags |= BR_BUFFERED;
    root_buffer[0] = o;
}

static __attribute__((noipa)) void ni_retain(Obj *o) { ++o->rc; }
static __attribute__((noipa)) void ni_release(Obj *o) {
    if (--o->rc == 0)
        free_slow(o);
}

static __attribute__((noinline)) void loop_plain(Obj *o, uint64_t pairs) {
    for (uint64_t i = 0; i < pairs; i++) {
        ++o->rc;
        BENCH_BARRIER();
        if (--o->rc == 0)
            free_slow(o);
        BENCH_BARRIER();
    }
}

static __attribute__((noinline)) void loop_volatile(VObj *o, uint64_t pairs) {
    for (uint64_t i = 0; i < pairs; i++) {
        o->rc = o->rc + 1;
        BENCH_BARRIER();
        uint32_t c = o->rc - 1;
        o->rc = c;
        if (c == 0)
            free_slow(o);
        BENCH_BARRIER();
    }
}

static __attribute__((noinline)) void loop_noinline(Obj *o, uint64_t pairs) {
    for (uint64_t i = 0; i < pairs; i++) {
        ni_retain(o);
        BENCH_BARRIER();
        ni_release(o);
        BENCH_BARRIER();
    }
}

static __attribute__((noinline)) void loop_atomic_relaxed(Obj *o,
                                                         uint64_t pairs) {
    for (uint64_t i = 0; i < pairs; i++) {
        __atomic_fetch_add(&o->rc, 1, __ATOMIC_RELAXED);
        BENCH_BARRIER();
        if (__atomic_fetch_sub(&o->rc, 1, __ATOMIC_RELAXED) == 1)
            free_slow(o);
        BENCH_BARRIER();
    }
}

static __attribute__((noinline)) void loop_atomic_acqrel(Obj *o,
                                                        uint64_t pairs) {
    for (uint64_t i = 0; i < pairs; i++) {
        __atomic_fetch_add(&o->rc, 1, __ATOMIC_RELAXED);
        BENCH_BARRIER();
        if (__atomic_fetch_sub(&o->rc, 1, __ATOMIC_ACQ_REL) == 1)
            free_slow(o);
        BENCH_BARRIER();
    }
}

static __attribute__((noinline)) void loop_br_model(Obj *o, uint64_t pairs) {
    for (uint64_t i = 0; i < pairs; i++) {
        ++o->rc;
        BENCH_BARRIER();
        if (--o->rc == 0)
            free_slow(o);
        else if (__builtin_expect(!(o->flags & BR_BUFFERED), 0))
            push_root(o);
        BENCH_BARRIER();
    }
}

static __attribute__((noinline)) void loop_empty(uint64_t pairs) {
    for (uint64_t i = 0; i < pairs; i++) {
        BENCH_BARRIER();
        BENCH_BARRIER();
    }
}

static __attribute__((noinline)) void loop_rcgc(void *o, uint64_t pairs) {
    for (uint64_t i = 0; i < pairs; i++) {
        rc_retain(o);
        BENCH_BARRIER();
        rc_release(o);
        BENCH_BARRIER();
    }
}

/* The rcgc row's object: one (NULL) strong reference, so its type is an
 * ordinary cyclic-capable one and every release takes the buffering test. */
static void obj_trace(void *obj, rc_visit_fn visit, void *ctx) {
    visit(*(void **)obj, ctx);
}
static const rc_type obj_type = {"Obj", sizeof(void *), obj_trace, NULL, 0,
                                 NULL};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODE [PAIRS]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    uint64_t pairs = argc > 2 ? bench_arg_u64(argv[2], "PAIRS") : 100000000u;

    static Obj obj = {1, 0};
    static VObj vobj = {1, 0};
    void *ro = NULL;
    if (strcmp(mode, "rcgc") == 0)
        ro = bench_check_alloc(rc_alloc(&obj_type), "object");

    uint64_t c0 = bench_cpu_ns();
    uint64_t t0 = bench_now_ns();
    if (strcmp(mode, "plain") == 0)
        loop_plain(&obj, pairs);
    else if (strcmp(mode, "volatile") == 0)
        loop_volatile(&vobj, pairs);
    else if (strcmp(mode, "noinline") == 0)
        loop_noinline(&obj, pairs);
    else if (strcmp(mode, "atomic_relaxed") == 0)
        loop_atomic_relaxed(&obj, pairs);
    else if (strcmp(mode, "atomic_acqrel") == 0)
        loop_atomic_acqrel(&obj, pairs);
    else if (strcmp(mode, "br_model") == 0)
        loop_br_model(&obj, pairs);
    else if (strcmp(mode, "empty") == 0)
        loop_empty(pairs);
    else if (ro != NULL)
        loop_rcgc(ro, pairs);
    else {
        fprintf(stderr, "unknown mode '%s'\n", mode);
        return 2;
    }
    uint64_t elapsed = bench_now_ns() - t0;
    uint64_t cpu = bench_cpu_ns() - c0;

    int ok = slow_calls == 0 && obj.rc == 1 && vobj.rc == 1;
    if (ro != NULL) {
        ok &= rc_refcount(ro) == 1;
        rc_release(ro);
        ok &= rc_live_objects() == 0;
    }
    printf("RESULT bench=w4 impl=%s mode=%s pairs=%llu ms=%.3f "
           "ns_per_pair=%.4f cpu_ns_per_pair=%.4f ok=%d\n",
           ro != NULL ? "rcgc" : "c", mode, (unsigned long long)pairs,
           bench_ms(elapsed), (double)elapsed / (double)pairs,
           (double)cpu / (double)pairs, ok);
    return ok ? 0 : 1;
}
