/* W5 small-object allocation throughput (see bench/README.md).
 *   lifo    allocate COUNT objects, then free them in reverse order
 *   random  allocate COUNT objects, then free them in a random order (a
 *           permutation computed before the timed phases: xorshift64*, seed
 *           42, Fisher-Yates)
 *   churn   ITERS times: allocate one object, write it, free it
 * Every new object gets its first and last 8 bytes written.
 *
 * Implementations (BENCH_IMPL_*): rcgc (rc_alloc of an acyclic type of
 * payload SIZE, rc_release as the free), malloc, mimalloc, mimalloc-rc
 * (mimalloc with a hand-rolled 16-byte counted header: rcgc's layout without
 * the runtime), boehm (GC_MALLOC; "free" clears the only pointer; batch modes
 * end with one GC_gcollect()).
 *
 * The timed phases are the out-of-line functions alloc_phase, free_phase and
 * churn, so an instruction counter can be told to count only those.
 *
 * Usage: w5_<impl> MODE SIZE [COUNT]
 *   COUNT defaults to 10,000,000 (lifo, random) and 100,000,000 (churn). */
#include "bench_util.h"

#include <string.h>

#if defined(BENCH_IMPL_RCGC)
#include <rcgc.h>
#define IMPL_NAME "rcgc"
static rc_type obj_type = {"Obj", 0, NULL, NULL, RC_TYPE_ACYCLIC, NULL};
static void impl_init(size_t size) { obj_type.size = size; }
#define OBJ_NEW(size) rc_alloc(&obj_type)
#define OBJ_FREE(slot) rc_release(slot)
#define PTRS_NEW(n) malloc((n) * sizeof(void *))
#define PTRS_FREE(p) free(p)
#elif defined(BENCH_IMPL_MALLOC)
#define IMPL_NAME "malloc"
static void impl_init(size_t size) { (void)size; }
#define OBJ_NEW(size) malloc(size)
#define OBJ_FREE(slot) free(slot)
#define PTRS_NEW(n) malloc((n) * sizeof(void *))
#define PTRS_FREE(p) free(p)
#elif defined(BENCH_IMPL_MIMALLOC)
#include <mimalloc.h>
#define IMPL_NAME "mimalloc"
static void impl_init(size_t size) { (void)size; }
#define OBJ_NEW(size) mi_malloc(size)
#define OBJ_FREE(slot) mi_free(slot)
#define PTRS_NEW(n) malloc((n) * sizeof(void *))
#define PTRS_FREE(p) free(p)
#elif defined(BENCH_IMPL_MIMALLOC_RC)
#define IMPL_NAME "mimalloc-rc"
static void impl_init(size_t size) { (void)size; }
static inline void counted_release(void *obj) {
    if (bench_rc_drop(obj))
        bench_rc_free(obj);
}
#define OBJ_NEW(size) bench_rc_new(size)
#define OBJ_FREE(slot) counted_release(slot)
#define PTRS_NEW(n) malloc((n) * sizeof(void *))
#define PTRS_FREE(p) free(p)
#elif defined(BENCH_IMPL_BOEHM)
#include <gc.h>
#define IMPL_NAME "boehm"
static void impl_init(size_t size) {
    (void)size;
    GC_INIT();
}
#define OBJ_NEW(size) GC_MALLOC(size)
#define OBJ_FREE(slot) ((void)(slot))
/* The collector must see the pointer array, and never reclaim it. */
#define PTRS_NEW(n) GC_MALLOC_UNCOLLECTABLE((n) * sizeof(void *))
#define PTRS_FREE(p) GC_FREE(p)
#else
#error "define one BENCH_IMPL_*"
#endif

static inline void *obj_new(size_t size, uint64_t tag) {
    char *p = bench_check_alloc(OBJ_NEW(size), "object");
    memcpy(p, &tag, 8);
    uint64_t inv = ~tag;
    memcpy(p + size - 8, &inv, 8);
    return p;
}

/* Untimed: every object still holds what was written into it. */
static int verify(void **ptrs, size_t count, size_t size) {
    for (size_t i = 0; i < count; i++) {
        uint64_t a, b;
        memcpy(&a, ptrs[i], 8);
        memcpy(&b, (char *)ptrs[i] + size - 8, 8);
        if (a != i || b != ~(uint64_t)i)
            return 0;
    }
    return 1;
}

static __attribute__((noinline)) void alloc_phase(void **ptrs, size_t count,
                                                 size_t size) {
    for (size_t i = 0; i < count; i++)
        ptrs[i] = obj_new(size, i);
}

/* Frees in reverse order, or in `order` when given. */
static __attribute__((noinline)) void free_phase(void **ptrs,
                                                const uint32_t *order,
                                                size_t count) {
    if (order == NULL) {
        for (size_t i = count; i-- > 0;) {
            OBJ_FREE(ptrs[i]);
            ptrs[i] = NULL;
        }
    } else {
        for (size_t i = 0; i < count; i++) {
            OBJ_FREE(ptrs[order[i]]);
            ptrs[order[i]] = NULL;
        }
    }
#if defined(BENCH_IMPL_BOEHM)
    GC_gcollect();
#endif
}

static __attribute__((noinline)) void churn(size_t iters, size_t size) {
    for (size_t i = 0; i < iters; i++) {
        void *p = obj_new(size, i);
        BENCH_ESCAPE(p);
        OBJ_FREE(p);
    }
}

static uint32_t *permutation(size_t count) {
    uint32_t *perm = bench_check_alloc(malloc(count * sizeof *perm), "perm");
    for (size_t i = 0; i < count; i++)
        perm[i] = (uint32_t)i;
    uint64_t state = 42;
    for (size_t i = count - 1; i > 0; i--) {
        size_t j = (size_t)(bench_xorshift64s(&state) % (i + 1));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    return perm;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s lifo|random|churn SIZE [COUNT]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    size_t size = (size_t)bench_arg_u64(argv[2], "SIZE");
    int is_churn = strcmp(mode, "churn") == 0;
    int is_random = strcmp(mode, "random") == 0;
    if (!is_churn && !is_random && strcmp(mode, "lifo") != 0) {
        fprintf(stderr, "unknown mode '%s'\n", mode);
        return 2;
    }
    if (size < 16) {
        fprintf(stderr, "SIZE must be at least 16\n");
        return 2;
    }
    size_t count = argc > 3 ? (size_t)bench_arg_u64(argv[3], "COUNT")
                            : (is_churn ? 100000000u : 10000000u);
    if (count > UINT32_MAX) {
        fprintf(stderr, "COUNT too large\n");
        return 2;
    }
    impl_init(size);
    int ok = 1;
    uint64_t alloc_ns = 0, free_ns = 0, total_ns, cpu_ns;

    if (is_churn) {
        uint64_t c0 = bench_cpu_ns();
        uint64_t t0 = bench_now_ns();
        churn(count, size);
        total_ns = bench_now_ns() - t0;
        cpu_ns = bench_cpu_ns() - c0;
    } else {
        uint32_t *perm = is_random ? permutation(count) : NULL;
        void **ptrs = bench_check_alloc(PTRS_NEW(count), "pointer array");
        uint64_t c0 = bench_cpu_ns();
        uint64_t t0 = bench_now_ns();
        alloc_phase(ptrs, count, size);
        uint64_t t1 = bench_now_ns();
        uint64_t c1 = bench_cpu_ns();
        ok &= verify(ptrs, count, size);
        uint64_t c2 = bench_cpu_ns();
        uint64_t t2 = bench_now_ns();
        free_phase(ptrs, perm, count);
        uint64_t t3 = bench_now_ns();
        uint64_t c3 = bench_cpu_ns();
        cpu_ns = (c1 - c0) + (c3 - c2);
        alloc_ns = t1 - t0;
        free_ns = t3 - t2;
        total_ns = alloc_ns + free_ns;
        free(perm);
        PTRS_FREE(ptrs);
    }
#if defined(BENCH_IMPL_RCGC)
    ok &= rc_live_objects() == 0;
#endif
    printf("RESULT bench=w5 impl=%s mode=%s size=%zu count=%zu", IMPL_NAME,
           mode, size, count);
    if (!is_churn)
        printf(" alloc_ms=%.3f free_ms=%.3f ns_alloc=%.3f ns_free=%.3f",
               bench_ms(alloc_ns), bench_ms(free_ns),
               (double)alloc_ns / (double)count,
               (double)free_ns / (double)count);
    printf(" ms=%.3f ns_per_obj=%.3f cpu_ns_per_obj=%.3f ok=%d\n",
           bench_ms(total_ns), (double)total_ns / (double)count,
           (double)cpu_ns / (double)count, ok);
    return ok ? 0 : 1;
}
