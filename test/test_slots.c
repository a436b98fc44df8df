/* test_slots.c: the root buffer's limit, reached with a few objects. This
 * program links a build of the library whose buffer holds TEST_SLOT_LIMIT
 * roots (16.7M in the real one). Past the limit a root is not buffered:
 * the next pass takes every object that can be on a cycle as a candidate,
 * and no object leaving the buffer ever has to search it. */
#include <criterion/criterion.h>

#include "helpers.h"

#define LIMIT TEST_SLOT_LIMIT

/* Rings built and dropped with automatic passes off: their roots overflow
 * the buffer, and one rc_collect() still finds every ring. */
Test(slots, cycles_past_the_limit_are_collected) {
    th_reset();
    rc_set_threshold(0);
    rc_stats s0 = th_stats();
    enum { RINGS = 100, LEN = 3 };
    for (int i = 0; i < RINGS; i++)
        rc_release(th_ring(LEN)); /* every node's count went 2 -> 1 */
    rc_stats s = th_stats();
    cr_assert_eq(s.roots_buffered - s0.roots_buffered, LIMIT,
                 "the buffer stops at its limit: %llu roots buffered",
                 (unsigned long long)(s.roots_buffered - s0.roots_buffered));
    cr_assert_eq(rc_live_objects(), RINGS * LEN);
    cr_assert_eq(rc_collect(), RINGS * LEN);
    cr_assert_eq(th_finalized, RINGS * LEN);
    cr_assert_eq(rc_live_objects(), 0);
    TH_ASSERT_NO_LEAKS();
}

/* Buffered and unbuffered objects alike die by counting once the buffer is
 * full; those that leave it free their slots for new roots. */
Test(slots, objects_die_by_counting_with_the_buffer_full) {
    th_reset();
    rc_set_threshold(0);
    enum { N = 3 * LIMIT };
    tnode *n[N];
    rc_stats s0 = th_stats();
    for (int i = 0; i < N; i++) {
        n[i] = th_node_of(&tnode_type, i);
        rc_retain(n[i]);
        rc_release(n[i]); /* 2 -> 1: a candidate root */
    }
    cr_assert_eq(th_stats().roots_buffered - s0.roots_buffered, LIMIT);
    for (int i = N - 1; i >= 0; i--) /* the buffered ones last */
        rc_release(n[i]);
    cr_assert_eq(th_finalized, N);
    cr_assert_eq(rc_live_objects(), 0);

    /* The buffer is empty again: new roots are buffered. */
    tnode *m = th_node_of(&tnode_type, 0);
    rc_retain(m);
    rc_release(m);
    cr_assert_eq(th_stats().roots_buffered - s0.roots_buffered, LIMIT + 1);
    rc_release(m);
    cr_assert_eq(rc_collect(), 0);
    TH_ASSERT_NO_LEAKS();
}

/* After roots were lost, a pass takes every live object that can be on a
 * cycle as a candidate, many more than the buffer holds; the live ones
 * leave that pass unbuffered and die by counting later. */
Test(slots, pass_over_more_candidates_than_the_limit) {
    th_reset();
    rc_set_threshold(0);
    enum { LIVE = 4 * LIMIT, RINGS = LIMIT };
    tnode *chain = th_chain(LIVE); /* buffers LIVE - 1 roots: lost ones too */
    for (int i = 0; i < RINGS; i++)
        rc_release(th_ring(2));
    cr_assert_eq(rc_collect(), 2 * RINGS, "the rings, and only them");
    cr_assert_eq(rc_live_objects(), LIVE);
    cr_assert_eq(th_finalized, 2 * RINGS);

    /* The chain's nodes left the pass unbuffered: buffering them again
     * starts from an empty buffer. */
    rc_stats s0 = th_stats();
    tnode *second = chain->kid[0];
    rc_retain(second);
    rc_release(second);
    cr_assert_eq(th_stats().roots_buffered - s0.roots_buffered, 1);

    rc_release(chain); /* the whole chain dies by counting */
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(th_finalized, 2 * RINGS + LIVE);
    cr_assert_eq(rc_collect(), 0);
    TH_ASSERT_NO_LEAKS();
}
