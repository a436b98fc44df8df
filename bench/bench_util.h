/* Shared helpers for the benchmark programs: a monotonic clock, argument
 * parsing that fails loudly, the xorshift64* generator used for shuffles,
 * and the compiler barriers that keep measured operations from being merged
 * or deleted. Header-only so every program stays a single translation unit. */
#ifndef RCGC_BENCH_UTIL_H
#define RCGC_BENCH_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Forces the count to be stored and re-loaded around it. */
#define BENCH_BARRIER() __asm__ volatile("" ::: "memory")
/* Makes `p` observable, so an allocation and its free cannot be elided. */
#define BENCH_ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static inline uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process (every thread, so Boehm's marker threads
 * count too). Reported beside the monotonic times: on a shared machine it
 * leaves out the time the process spent waiting for a core. */
static inline uint64_t bench_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double bench_ms(uint64_t ns) { return (double)ns / 1e6; }

/* A positive integer argument, or exit(2) with a message naming it. */
static inline uint64_t bench_arg_u64(const char *s, const char *what) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0) {
        fprintf(stderr, "bad %s: '%s' (want a positive integer)\n", what, s);
        exit(2);
    }
    return (uint64_t)v;
}

/* xorshift64*: tiny, fast and reproducible across runs and machines. */
static inline uint64_t bench_xorshift64s(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Out-of-memory in a benchmark is a failed run, not something to measure. */
static inline void *bench_check_alloc(void *p, const char *what) {
    if (p == NULL) {
        fprintf(stderr, "out of memory: %s\n", what);
        exit(3);
    }
    return p;
}

#if defined(BENCH_IMPL_MIMALLOC_RC)
/* The mimalloc-rc reference rows: counting by hand on mimalloc with rcgc's
 * block layout, a 16-byte header holding the count in front of each object
 * (so the same bytes move as with rcgc, and the count is read before every
 * free, as any counted release must). */
#include <mimalloc.h>
#include <stdbool.h>

typedef struct bench_rc_header {
    uint32_t rc;
    uint32_t flags;
    const void *type;
} bench_rc_header;

/* A new object of `size` bytes with a count of 1, or NULL. */
static inline void *bench_rc_new(size_t size) {
    bench_rc_header *h = mi_malloc(sizeof *h + size);
    if (h == NULL)
        return NULL;
    h->rc = 1;
    h->flags = 0;
    h->type = NULL;
    return h + 1;
}

/* Drops a reference; true when it was the last one, and the caller, having
 * dropped what the object holds, frees it with bench_rc_free. */
static inline bool bench_rc_drop(void *obj) {
    return --((bench_rc_header *)obj - 1)->rc == 0;
}

static inline void bench_rc_free(void *obj) {
    mi_free((bench_rc_header *)obj - 1);
}
#endif

#endif
