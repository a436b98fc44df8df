/* test_oom.c: allocation failure injected at every allocation of a scenario
 * returns NULL, leaks nothing and leaves the runtime usable. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "helpers.h"

/* A process allocator that fails the n-th request after arming and keeps a
 * byte balance. */
static long fail_at = -1, calls;
static bool fail_all;
static long long outstanding;
static int failures;

static void *test_alloc(size_t size, void *ud) {
    (void)ud;
    if (fail_all || (fail_at >= 0 && ++calls == fail_at)) {
        failures++;
        return NULL;
    }
    void *p = malloc(size);
    if (p)
        outstanding += (long long)size;
    return p;
}

static void test_free(void *p, size_t size, void *ud) {
    (void)ud;
    outstanding -= (long long)size;
    free(p);
}

static const rc_allocator failing = {test_alloc, test_free, NULL};

/* Builds cycles, chains, weak references and large objects, checking every
 * allocation; whatever failed is simply skipped. */
static void scenario(void) {
    tnode *ring = NULL, *prev = NULL;
    for (int i = 0; i < 40; i++) {
        tnode *n = rc_new(tnode, &tnode_type);
        if (n == NULL)
            continue;
        if (ring == NULL)
            ring = rc_retain(n);
        if (prev)
            th_link(prev, 0, n);
        rc_set((void **)&prev, n);
        rc_release(n);
    }
    if (prev && ring)
        th_link(prev, 0, ring);
    rc_release(prev);
    rc_weak *w = ring ? rc_weak_new(ring) : NULL;
    tflex *big = rc_alloc_extra(&tflex_type, 600 * sizeof(void *));
    if (big) {
        big->n = 600;
        big->items[0] = rc_retain(ring);
        big->items[1] = rc_retain(big); /* self cycle through a large object */
    }
    tvec *v = tvec_new(4);
    if (v && big)
        v->items[0] = rc_retain(big);
    rc_release(big);
    rc_release(v);
    rc_release(ring);
    rc_collect();
    rc_collect(); /* a first pass may have lacked memory */
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_null(rc_weak_get(w));
    rc_weak_free(w);
}

Test(oom, every_allocation_failure_is_survived, .timeout = 120) {
    cr_assert_eq(rc_set_allocator(&failing), 0);
    int n;
    for (n = 1; n < 5000; n++) {
        calls = 0;
        failures = 0;
        fail_at = n;
        scenario();
        fail_at = -1;
        rc_thread_exit();
        cr_assert_eq(outstanding, 0, "failing allocation %d leaked %lld bytes",
                     n, outstanding);
        if (failures == 0)
            break; /* the scenario no longer reaches the n-th allocation */
    }
    cr_assert_gt(n, 5, "the scenario allocates");
    cr_assert_lt(n, 5000);
}

Test(oom, allocator_is_fixed_after_first_allocation) {
    cr_assert_eq(rc_set_allocator(&failing), 0);
    tnode *n = rc_new(tnode, &tnode_type);
    cr_assert_eq(rc_set_allocator(NULL), -1);
    cr_assert_eq(rc_set_allocator(&failing), -1);
    cr_assert_gt(outstanding, 0, "object memory came from the allocator");
    rc_release(n);
    rc_thread_exit();
    cr_assert_eq(outstanding, 0);
}

Test(oom, allocator_without_functions_is_refused) {
    rc_allocator bad = {NULL, test_free, NULL};
    cr_assert_eq(rc_set_allocator(&bad), -1);
    cr_assert_eq(rc_set_allocator(NULL), 0);
}

Test(oom, failed_state_creation_returns_null_then_recovers) {
    cr_assert_eq(rc_set_allocator(&failing), 0);
    calls = 0;
    fail_at = 1;
    cr_assert_null(rc_new(tnode, &tnode_type));
    cr_assert_eq(rc_live_objects(), 0);
    tnode *n = rc_new(tnode, &tnode_type);
    cr_assert_not_null(n);
    rc_release(n);
    rc_thread_exit();
    cr_assert_eq(outstanding, 0);
}

Test(oom, full_root_buffer_without_memory_runs_no_pass_when_passes_are_off) {
    enum { N = 5000 };
    static tnode *live[N];
    cr_assert_eq(rc_set_allocator(&failing), 0);
    rc_set_threshold(0);
    for (int i = 0; i < N; i++)
        live[i] = th_must(rc_new(tnode, &tnode_type), "node");
    /* A pass sizes its work array for every live object: a pass run
     * later would need no memory. */
    rc_release(rc_retain(live[0]));
    cr_assert_eq(rc_collect(), 0);
    rc_release(th_ring(2)); /* garbage, buffered */
    rc_stats s0 = th_stats();
    fail_all = true;
    int i = 0;
    uint64_t buffered = s0.roots_buffered;
    for (; i < N; i++) { /* until the buffer is full and cannot grow */
        rc_release(rc_retain(live[i]));
        uint64_t now = th_stats().roots_buffered;
        if (now == buffered)
            break;
        buffered = now;
    }
    fail_all = false;
    cr_assert_lt(i, N, "the root buffer never needed to grow");
    rc_stats s1 = th_stats();
    cr_assert_eq(s1.collections, s0.collections, "a pass ran with passes off");
    cr_assert_eq(th_finalized, 0);
    cr_assert_eq(rc_live_objects(), N + 2);
    cr_assert_eq(rc_collect(), 2, "the lost root's pass finds the ring");
    for (i = 0; i < N; i++)
        rc_release(live[i]);
    TH_ASSERT_NO_LEAKS();
    rc_thread_exit();
    cr_assert_eq(outstanding, 0);
}

/* rc_collect() reserves its work array before a pass; without memory for
 * it the call frees nothing and keeps the candidates for the next one. */
Test(oom, collect_without_memory_keeps_its_candidates) {
    cr_assert_eq(rc_set_allocator(&failing), 0);
    rc_set_threshold(0);
    rc_release(th_ring(20)); /* garbage, buffered */
    fail_all = true;
    cr_assert_eq(rc_collect(), 0);
    fail_all = false;
    cr_assert_gt(failures, 0, "the pass asked for memory");
    cr_assert_eq(rc_live_objects(), 20);
    cr_assert_eq(th_finalized, 0);
    cr_assert_eq(rc_collect(), 20, "the next call finds the ring");
    cr_assert_eq(th_finalized, 20);
    TH_ASSERT_NO_LEAKS();
    rc_thread_exit();
    cr_assert_eq(outstanding, 0);
}

/* rc_set_threshold takes no memory: the allocator can still be set after
 * it, and the thread's state, made by the first allocation, uses it. */
Test(oom, threshold_set_before_the_allocator) {
    rc_set_threshold(5);
    cr_assert_eq(rc_set_allocator(&failing), 0);
    for (int i = 0; i < 5; i++) /* 10 roots: none would pass 10,000 */
        rc_release(th_ring(2));
    cr_assert_geq(th_stats().collections, 1, "no automatic pass at 5 roots");
    rc_thread_exit();
    cr_assert_eq(outstanding, 0);
    for (int i = 0; i < 5; i++) /* the setting outlives the state */
        rc_release(th_ring(2));
    cr_assert_geq(th_stats().collections, 1);
    TH_ASSERT_NO_LEAKS();
}

/* The root buffer is full and cannot grow, so buffering h runs a pass to
 * make room; that pass frees a garbage ring referring to h, whose release
 * buffers h in the pass's fresh buffer. h must not be buffered twice: the
 * second entry would outlive h (ASan and Memcheck see the next pass read
 * it). */
Test(oom, root_buffered_by_the_pass_that_made_room_is_buffered_once) {
    enum { K = 2000 };
    static tnode *keep[K];
    cr_assert_eq(rc_set_allocator(&failing), 0);
    tnode *h = rc_retain(th_node_of(&tnode_type, 1)); /* count 2 */
    for (int i = 0; i < K; i++)
        keep[i] = th_must(rc_new(tnode, &tnode_type), "node");
    rc_release(rc_retain(keep[0]));
    rc_collect(); /* sizes the work array: the pass below allocates none */

    /* The buffer's capacity C: roots buffered before it is full. */
    uint64_t base = th_stats().roots_buffered, cap = 0;
    uint64_t passes = th_stats().collections;
    fail_all = true;
    for (int i = 0; i < K && th_stats().collections == passes; i++) {
        cap = th_stats().roots_buffered - base;
        rc_release(rc_retain(keep[i]));
    }
    fail_all = false;
    cr_assert_gt(cap, 0);
    cr_assert_lt(cap + 2, K);
    rc_collect(); /* the buffer, C slots, is empty again */

    base = th_stats().roots_buffered;
    tnode *x = th_ring(2);
    th_link(x, 1, h); /* count 3 */
    rc_release(x); /* garbage, with finalizers, holding h */
    for (int i = 0; th_stats().roots_buffered - base < cap; i++)
        rc_release(rc_retain(keep[i])); /* the buffer is full */
    calls = 0;
    fail_at = 1; /* its growth fails, nothing else */
    rc_release(h); /* 3 -> 2 */
    fail_at = -1;
    cr_assert_eq(rc_refcount(h), 1, "the ring was freed, h kept");
    cr_assert_eq(th_finalized, 2);
    rc_release(h); /* h dies and leaves the buffer */
    cr_assert_eq(rc_collect(), 0);
    for (int i = 0; i < K; i++)
        rc_release(keep[i]);
    TH_ASSERT_NO_LEAKS();
    rc_thread_exit();
    cr_assert_eq(outstanding, 0);
}
