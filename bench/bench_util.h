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

#endif
