/* test_cycles.c: the cycle collector against the contract.
 *
 * Garbage cycles of every shape must all be freed by one rc_collect(), and
 * rc_collect() returns exactly how many objects it freed; live objects are
 * never freed and keep their exact counts after a pass; finalizers run once,
 * all of a garbage set's before any of its disposals, may resurrect, allocate,
 * release and call rc_collect() (which then returns 0); weak references to a
 * garbage set are cleared before its finalizers; automatic passes follow the
 * threshold; passes over millions of objects need no deep stack.
 *
 * Unless a test is about automatic passes, its suite turns them off, so that
 * every object freed is freed by a counted release or by the rc_collect() the
 * test calls, and return values can be asserted exactly. Every test ends with
 * the leak check (immortal objects, which are never freed, are counted in).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>

#include "helpers.h"

/* ------------------------------------------------------------- fixtures */

static void no_auto_passes(void) {
    rc_set_threshold(0);
    th_reset();
}

static void defaults(void) { th_reset(); }

TestSuite(cycles, .init = no_auto_passes);
TestSuite(finalize, .init = no_auto_passes);
TestSuite(resurrect, .init = no_auto_passes);
TestSuite(weak, .init = no_auto_passes);
TestSuite(threshold, .init = defaults);
TestSuite(long_graphs, .init = defaults);
TestSuite(immortal, .init = no_auto_passes);
TestSuite(misuse, .init = no_auto_passes);


/* The k-th successor of n along kid[0]. */
static tnode *nth(tnode *n, size_t k) {
    while (k--)
        n = n->kid[0];
    return n;
}

/* Releases `head`, the only external reference to a structure of n objects
 * nothing else references, and checks that one rc_collect() frees exactly
 * those n objects, by the collector, returning n. */
static void drop_and_collect(void *head, size_t n) {
    size_t live = rc_live_objects();
    rc_stats s0 = th_stats();
    rc_release(head);
    cr_assert_eq(rc_live_objects(), live, "counting alone freed a cycle");
    size_t freed = rc_collect();
    rc_stats s1 = th_stats();
    cr_assert_eq(freed, n, "rc_collect returned %zu, expected %zu", freed, n);
    cr_assert_eq(rc_live_objects(), live - n);
    cr_assert_eq(s1.objects_freed - s0.objects_freed, (uint64_t)n);
    cr_assert_eq(s1.cycles_objects_freed - s0.cycles_objects_freed,
                 (uint64_t)n);
    cr_assert_geq(s1.collections - s0.collections, 1);
}

/* A type with the tnode layout whose hooks count and then call the hooks a
 * test installs. */
static void (*g_on_finalize)(tnode *self);
static void (*g_on_dispose)(tnode *self);

static void hnode_finalize(void *obj) {
    th_finalized++;
    if (g_on_finalize)
        g_on_finalize(obj);
}

static void hnode_dispose(void *obj) {
    th_disposed++;
    if (g_on_dispose)
        g_on_dispose(obj);
}

static const rc_type hnode_type = {"hnode", sizeof(tnode), th_tnode_trace,
                                   hnode_finalize, 0, hnode_dispose};

/* A tnode layout with no hooks at all. */
static const rc_type pnode_type = {"pnode", sizeof(tnode), th_tnode_trace,
                                   NULL, 0, NULL};

/* ============================================================== cycles */

Test(cycles, self_loop_is_collected_with_exact_stats) {
    rc_stats s0 = th_stats();
    tnode *n = th_self_loop();
    rc_stats s1 = th_stats();
    cr_assert_eq(rc_refcount(n), 2);
    rc_release(n);
    rc_stats s2 = th_stats();
    cr_assert_eq(s2.roots_buffered - s1.roots_buffered, 1,
                 "a release leaving count 1 must buffer a candidate root");
    cr_assert_eq(rc_live_objects(), 1);
    cr_assert_eq(th_finalized, 0);
    cr_assert_eq(rc_collect(), 1);
    rc_stats s3 = th_stats();
    cr_assert_geq(s3.collections - s2.collections, 1);
    cr_assert_eq(s3.cycles_objects_freed - s2.cycles_objects_freed, 1);
    cr_assert_eq(s3.bytes_freed_by_collector - s2.bytes_freed_by_collector,
                 s1.bytes_allocated - s0.bytes_allocated);
    cr_assert_eq(s3.bytes_freed - s2.bytes_freed,
                 s1.bytes_allocated - s0.bytes_allocated);
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(th_disposed, 1);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, two_cycle_is_collected) {
    tnode *a = th_node_of(&tnode_type, 1);
    tnode *b = th_node_of(&tnode_type, 2);
    th_link(a, 0, b);
    th_link(b, 0, a);
    rc_release(b);
    cr_assert_eq(rc_refcount(b), 1);
    drop_and_collect(a, 2);
    cr_assert_eq(th_finalized, 2);
    cr_assert_eq(th_disposed, 2);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, rings_of_many_sizes_one_at_a_time) {
    static const size_t sizes[] = {1,   2,   3,   4,   5,    7,    8,
                                   15,  16,  17,  31,  64,   100,  127,
                                   128, 255, 256, 1000, 1023, 1024, 4096,
                                   9999, 10000};
    int total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        tnode *r = th_ring(sizes[i]);
        cr_assert_eq(rc_refcount(r), 2);
        drop_and_collect(r, sizes[i]);
        total += (int)sizes[i];
        cr_assert_eq(th_finalized, total);
        cr_assert_eq(th_disposed, total);
        cr_assert_eq(rc_live_objects(), 0);
    }
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, every_ring_size_up_to_300_in_one_pass) {
    size_t total = 0;
    for (size_t n = 1; n <= 300; n++) {
        rc_release(th_ring(n));
        total += n;
    }
    cr_assert_eq(rc_live_objects(), total);
    cr_assert_eq(rc_collect(), total);
    cr_assert_eq((size_t)th_finalized, total);
    cr_assert_eq((size_t)th_disposed, total);
    cr_assert_eq(rc_collect(), 0, "a second pass finds nothing");
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, thousand_two_cycles_in_one_pass) {
    for (int i = 0; i < 1000; i++) {
        tnode *a = th_node_of(&tnode_type, i);
        tnode *b = th_node_of(&tnode_type, -i);
        th_link(a, 0, b);
        th_link(b, 1, a);
        rc_release(a);
        rc_release(b);
    }
    cr_assert_eq(rc_live_objects(), 2000);
    cr_assert_eq(rc_collect(), 2000);
    cr_assert_eq(th_finalized, 2000);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, ring_of_types_without_hooks) {
    tnode *r = th_ring_of(&pnode_type, 50);
    drop_and_collect(r, 50);
    cr_assert_eq(th_finalized, 0);
    cr_assert_eq(th_disposed, 0);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, clique_is_collected) {
    tvec *c = th_clique(64);
    cr_assert_eq(rc_refcount(c), 64, "63 peers + the caller");
    drop_and_collect(c, 64);
    cr_assert_eq(th_finalized, 64);
    cr_assert_eq(th_disposed, 64, "every tvec disposed (items freed)");
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, clique_member_held_keeps_everything_with_exact_counts) {
    const size_t n = 32;
    tvec *c = th_clique(n);
    tvec *held = rc_retain(c->items[5]);
    rc_release(c);
    cr_assert_eq(rc_collect(), 0);
    cr_assert_eq(rc_live_objects(), n);
    cr_assert_eq(rc_refcount(held), n, "n-1 peers + the test");
    cr_assert_eq(held->n, n - 1);
    for (size_t i = 0; i < held->n; i++) {
        tvec *peer = held->items[i];
        cr_assert_eq(rc_refcount(peer), n - 1);
        cr_assert_eq(peer->n, n - 1);
    }
    cr_assert_eq(th_finalized, 0);
    drop_and_collect(held, n);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, cycle_hanging_off_live_object_survives) {
    tnode *owner = th_node_of(&tnode_type, 100);
    tnode *r = th_ring(10);
    th_link(owner, 1, r);
    rc_release(r);
    cr_assert_eq(rc_collect(), 0, "the ring is reachable from the owner");
    cr_assert_eq(rc_live_objects(), 11);
    cr_assert_eq(rc_refcount(owner), 1);
    cr_assert_eq(rc_refcount(r), 2, "from the owner and from the last node");
    for (size_t i = 1; i < 10; i++) {
        cr_assert_eq(nth(r, i)->id, (int)i);
        cr_assert_eq(rc_refcount(nth(r, i)), 1);
    }
    cr_assert_eq(nth(r, 10), r);
    cr_assert_eq(th_finalized, 0);
    /* The owner dies by counting; then the ring is garbage. */
    rc_release(owner);
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(rc_live_objects(), 10);
    cr_assert_eq(rc_collect(), 10);
    cr_assert_eq(th_finalized, 11);
    cr_assert_eq(th_disposed, 11);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, live_leaf_referenced_by_garbage_ring_keeps_exact_count) {
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    leaf->v = 42;
    tnode *r = th_ring(5);
    for (size_t i = 0; i < 5; i += 2) {
        th_link(nth(r, i), 1, leaf);
        th_link(nth(r, i), 2, leaf);
    }
    cr_assert_eq(rc_refcount(leaf), 7);
    rc_release(r);
    cr_assert_eq(rc_collect(), 5, "the leaf is live: only the ring goes");
    cr_assert_eq(rc_refcount(leaf), 1);
    cr_assert_eq(leaf->v, 42);
    cr_assert_eq(rc_live_objects(), 1);
    rc_release(leaf);
    cr_assert_eq(rc_live_objects(), 0);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, live_ring_referenced_by_garbage_ring_survives_intact) {
    tnode *live = th_ring(4);
    tnode *g = th_ring(6);
    for (size_t i = 0; i < 6; i++)
        th_link(nth(g, i), 1, nth(live, i % 4));
    rc_release(g);
    cr_assert_eq(rc_collect(), 6);
    cr_assert_eq(rc_live_objects(), 4);
    cr_assert_eq(rc_refcount(live), 2, "the test + its predecessor");
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(nth(live, i)->id, (int)i);
        if (i > 0)
            cr_assert_eq(rc_refcount(nth(live, i)), 1);
    }
    cr_assert_eq(nth(live, 4), live);
    cr_assert_eq(th_finalized, 6);
    drop_and_collect(live, 4);
    TH_ASSERT_NO_LEAKS();
}

/* 50 nodes, node i -> i+1, 7i and 13i+5 (mod 50): one strongly connected
 * graph with many overlapping cycles and repeated edges. */
#define MESH_N 50
static int mesh_target(int i, int slot) {
    switch (slot) {
    case 0: return (i + 1) % MESH_N;
    case 1: return (i * 7) % MESH_N;
    default: return (i * 13 + 5) % MESH_N;
    }
}

Test(cycles, counts_restored_exactly_when_nothing_is_garbage) {
    tnode *node[MESH_N];
    size_t indeg[MESH_N] = {0};
    for (int i = 0; i < MESH_N; i++)
        node[i] = th_node_of(&tnode_type, i);
    for (int i = 0; i < MESH_N; i++)
        for (int s = 0; s < 3; s++) {
            th_link(node[i], s, node[mesh_target(i, s)]);
            indeg[mesh_target(i, s)]++;
        }
    for (int i = 1; i < MESH_N; i++)
        rc_release(node[i]);
    /* Make every node a candidate root. */
    for (int i = 0; i < MESH_N; i++) {
        rc_retain(node[i]);
        rc_release(node[i]);
    }
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(rc_collect(), 0);
        for (int i = 0; i < MESH_N; i++) {
            size_t want = indeg[i] + (i == 0);
            cr_assert_eq(rc_refcount(node[i]), want,
                         "node %d: count %zu, expected %zu", i,
                         rc_refcount(node[i]), want);
            cr_assert_eq(node[i]->id, i);
            for (int s = 0; s < 3; s++)
                cr_assert_eq(node[i]->kid[s], node[mesh_target(i, s)]);
        }
    }
    cr_assert_eq(th_finalized, 0);
    drop_and_collect(node[0], MESH_N);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, nested_rings_through_an_outer_ring) {
    tnode *outer = th_ring(10);
    tnode *o = outer;
    size_t total = 10;
    for (size_t i = 0; i < 10; i++) {
        tnode *inner = th_ring(i + 1);
        th_link(o, 1, inner);
        th_link(nth(inner, i), 1, o); /* the inner ring's last node */
        rc_release(inner);
        total += i + 1;
        o = o->kid[0];
    }
    cr_assert_eq(o, outer);
    drop_and_collect(outer, total);
    cr_assert_eq((size_t)th_finalized, total);
    TH_ASSERT_NO_LEAKS();
}

/* Two rings sharing node x: x -> a1 -> a2 -> x (kid[0]) and
 * x -> b1 -> b2 -> b3 -> x (x's kid[1], then kid[0]). */
static tnode *figure_eight(tnode **b2_out) {
    tnode *x = th_node_of(&tnode_type, 0);
    tnode *a1 = th_node_of(&tnode_type, 1), *a2 = th_node_of(&tnode_type, 2);
    tnode *b1 = th_node_of(&tnode_type, 3), *b2 = th_node_of(&tnode_type, 4);
    tnode *b3 = th_node_of(&tnode_type, 5);
    th_link(x, 0, a1);
    th_link(a1, 0, a2);
    th_link(a2, 0, x);
    th_link(x, 1, b1);
    th_link(b1, 0, b2);
    th_link(b2, 0, b3);
    th_link(b3, 0, x);
    *b2_out = b2;
    rc_release(a1);
    rc_release(a2);
    rc_release(b1);
    rc_release(b2);
    rc_release(b3);
    return x;
}

Test(cycles, figure_eight_is_collected) {
    tnode *b2;
    tnode *x = figure_eight(&b2);
    cr_assert_eq(rc_refcount(x), 3);
    drop_and_collect(x, 6);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, figure_eight_held_through_one_lobe_survives) {
    tnode *b2;
    tnode *x = figure_eight(&b2);
    rc_retain(b2);
    rc_release(x);
    cr_assert_eq(rc_collect(), 0);
    cr_assert_eq(rc_live_objects(), 6);
    cr_assert_eq(rc_refcount(x), 2);
    cr_assert_eq(rc_refcount(b2), 2);
    cr_assert_eq(rc_refcount(x->kid[0]), 1);
    cr_assert_eq(rc_refcount(x->kid[1]), 1);
    cr_assert_eq(b2->kid[0]->kid[0], x);
    drop_and_collect(b2, 6);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, ring_with_chords_and_self_edges) {
    const size_t n = 100;
    tnode *r = th_ring(n);
    for (size_t i = 0; i < n; i++) {
        tnode *x = nth(r, i);
        th_link(x, 1, nth(r, (i + 2) % n));
        th_link(x, 2, nth(r, (i + 50) % n));
        th_link(x, 3, x);
    }
    cr_assert_eq(rc_refcount(nth(r, 7)), 4);
    drop_and_collect(r, n);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, repeated_edges_counted_per_reference) {
    tnode *r = th_ring(5);
    for (size_t i = 0; i < 5; i++)
        for (int s = 1; s < 4; s++)
            th_link(nth(r, i), s, nth(r, i + 1));
    cr_assert_eq(rc_refcount(r), 5);
    cr_assert_eq(rc_refcount(nth(r, 1)), 4);
    rc_retain(nth(r, 2));
    rc_release(nth(r, 2));
    cr_assert_eq(rc_collect(), 0, "still held by the test");
    cr_assert_eq(rc_refcount(r), 5);
    for (size_t i = 1; i < 5; i++)
        cr_assert_eq(rc_refcount(nth(r, i)), 4);
    drop_and_collect(r, 5);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, lasso_tail_held_survives_ring_goes) {
    /* ring of 5; ring node 2 -> t1 -> t2 (kid[1], then kid[0]) */
    tnode *r = th_ring(5);
    tnode *t1 = th_chain(2);
    th_link(nth(r, 2), 1, t1);
    rc_release(r);
    cr_assert_eq(rc_refcount(t1), 2);
    cr_assert_eq(rc_collect(), 5);
    cr_assert_eq(rc_live_objects(), 2);
    cr_assert_eq(rc_refcount(t1), 1);
    cr_assert_eq(rc_refcount(t1->kid[0]), 1);
    cr_assert_eq(t1->kid[0]->id, 1);
    rc_release(t1);
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(th_finalized, 7);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, chain_into_ring_freed_by_counting_then_ring_collected) {
    tnode *head = th_chain(5);
    tnode *r = th_ring(5);
    th_link(nth(head, 4), 0, r);
    rc_release(r);
    rc_release(head);
    cr_assert_eq(rc_live_objects(), 5, "the chain dies by counting");
    cr_assert_eq(th_disposed, 5);
    cr_assert_eq(rc_collect(), 5);
    cr_assert_eq(th_disposed, 10);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, ring_broken_by_rc_set_is_freed_by_counting) {
    tnode *r = th_ring(10);
    tnode *last = nth(r, 9);
    rc_set((void **)&last->kid[0], NULL);
    cr_assert_eq(rc_refcount(r), 1);
    rc_stats s0 = th_stats();
    rc_release(r);
    rc_stats s1 = th_stats();
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(s1.objects_freed - s0.objects_freed, 10);
    cr_assert_eq(s1.cycles_objects_freed - s0.cycles_objects_freed, 0);
    cr_assert_eq(s1.bytes_freed_by_collector - s0.bytes_freed_by_collector, 0);
    cr_assert_eq(rc_collect(), 0, "buffered roots freed by counting");
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, tflex_ring_with_self_and_back_edges) {
    const size_t n = 20;
    tflex *f[20];
    for (size_t i = 0; i < n; i++)
        f[i] = tflex_new(3);
    for (size_t i = 0; i < n; i++) {
        th_fset(f[i], 0, f[(i + 1) % n]);
        th_fset(f[i], 1, f[i]);
        th_fset(f[i], 2, f[(i + n - 1) % n]);
    }
    for (size_t i = 1; i < n; i++)
        rc_release(f[i]);
    cr_assert_eq(rc_refcount(f[0]), 4);
    drop_and_collect(f[0], n);
    cr_assert_eq(th_finalized, 20);
    cr_assert_eq(th_disposed, 20);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, tflex_hub_with_thousand_spokes) {
    const size_t n = 1000;
    tflex *hub = tflex_new(n);
    for (size_t i = 0; i < n; i++) {
        tnode *spoke = th_node_of(&tnode_type, (int)i);
        th_link(spoke, 0, hub);
        th_fset(hub, i, spoke);
        rc_release(spoke);
    }
    cr_assert_eq(rc_refcount(hub), n + 1);
    drop_and_collect(hub, n + 1);
    cr_assert_eq((size_t)th_disposed, n + 1);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, tvec_ring_dispose_frees_child_arrays) {
    const size_t n = 200;
    tvec *v[200];
    for (size_t i = 0; i < n; i++)
        v[i] = tvec_new(3);
    for (size_t i = 0; i < n; i++) {
        th_vset(v[i], 0, v[(i + 1) % n]);
        th_vset(v[i], 2, v[i]);
    }
    for (size_t i = 1; i < n; i++)
        rc_release(v[i]);
    drop_and_collect(v[0], n);
    cr_assert_eq((size_t)th_disposed, n);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, cycle_through_three_layouts) {
    tnode *a = th_node_of(&tnode_type, 1);
    tvec *b = tvec_new(2);
    tflex *c = tflex_new(2);
    th_link(a, 0, b);
    th_vset(b, 1, c);
    th_fset(c, 0, a);
    rc_release(b);
    rc_release(c);
    drop_and_collect(a, 3);
    cr_assert_eq(th_finalized, 3);
    cr_assert_eq(th_disposed, 3);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, acyclic_objects_in_reach_freed_in_same_call) {
    /* ring of 3, each -> its own acyclic node -> its own leaf */
    tnode *r = th_ring(3);
    for (size_t i = 0; i < 3; i++) {
        tnode *ac = th_node_of(&tnode_acyclic_type, 10 + (int)i);
        tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
        th_link(ac, 0, leaf);
        th_link(nth(r, i), 1, ac);
        rc_release(leaf);
        rc_release(ac);
    }
    cr_assert_eq(rc_live_objects(), 9);
    rc_stats s0 = th_stats();
    rc_release(r);
    size_t freed = rc_collect();
    rc_stats s1 = th_stats();
    cr_assert_eq(freed, 9, "rc_collect must count every object it freed");
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(s1.objects_freed - s0.objects_freed, 9);
    cr_assert_geq(s1.cycles_objects_freed - s0.cycles_objects_freed, 3);
    cr_assert_leq(s1.cycles_objects_freed - s0.cycles_objects_freed, 9);
    cr_assert_eq(th_finalized, 6);
    cr_assert_eq(th_disposed, 6);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, acyclic_bridge_to_second_cycle_one_call_frees_both) {
    tnode *b = th_ring(4);
    tnode *x = th_node_of(&tnode_acyclic_type, 99);
    th_link(x, 0, b);
    rc_release(b);
    tnode *a = th_ring(3);
    th_link(a, 1, x);
    rc_release(x);
    rc_release(a);
    cr_assert_eq(rc_live_objects(), 8);
    cr_assert_eq(rc_collect(), 8,
                 "the second ring becomes garbage during the call");
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(th_finalized, 8);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, buffered_root_freed_by_counting_before_pass) {
    tnode *a = th_node_of(&tnode_type, 1);
    tnode *b = th_node_of(&tnode_type, 2);
    th_link(b, 0, a);
    rc_stats s0 = th_stats();
    rc_release(a); /* count 2 -> 1: a becomes a candidate root */
    cr_assert_eq(th_stats().roots_buffered - s0.roots_buffered, 1);
    rc_release(b); /* frees b, then a while it is buffered */
    cr_assert_eq(rc_live_objects(), 0);
    /* Reuse the memory before the pass sees the stale candidate. */
    tnode *c = th_node_of(&tnode_type, 3);
    tnode *d = th_node_of(&tnode_type, 4);
    cr_assert_eq(rc_collect(), 0);
    cr_assert_eq(rc_refcount(c), 1);
    cr_assert_eq(rc_refcount(d), 1);
    cr_assert_eq(c->id, 3);
    cr_assert_eq(d->id, 4);
    rc_release(c);
    rc_release(d);
    cr_assert_eq(th_finalized, 4);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, collect_with_nothing_to_do_returns_zero) {
    cr_assert_eq(rc_collect(), 0);
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    tnode *n = th_node_of(&tnode_type, 1);
    cr_assert_eq(rc_collect(), 0);
    cr_assert_eq(rc_refcount(leaf), 1);
    cr_assert_eq(rc_refcount(n), 1);
    rc_release(th_ring(3));
    cr_assert_eq(rc_collect(), 3);
    cr_assert_eq(rc_collect(), 0, "nothing left after a full collection");
    rc_release(leaf);
    rc_release(n);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, roots_are_buffered_only_for_cyclic_types) {
    tnode *ac = th_node_of(&tnode_acyclic_type, 1);
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    tnode *cy = th_node_of(&tnode_type, 2);
    rc_retain(ac);
    rc_retain(leaf);
    rc_retain(cy);
    rc_stats s0 = th_stats();
    rc_release(ac);
    rc_release(leaf);
    rc_stats s1 = th_stats();
    cr_assert_eq(s1.roots_buffered - s0.roots_buffered, 0,
                 "acyclic and trace-less objects are never buffered");
    rc_release(cy);
    rc_stats s2 = th_stats();
    cr_assert_eq(s2.roots_buffered - s1.roots_buffered, 1);
    cr_assert_eq(rc_collect(), 0);
    rc_release(ac);
    rc_release(leaf);
    rc_release(cy);
    cr_assert_eq(rc_live_objects(), 0);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, stats_account_for_every_collected_byte) {
    rc_stats s0 = th_stats();
    tnode *r = th_ring(100);
    tvec *c = th_clique(10);
    tflex *f = tflex_new(7);
    th_fset(f, 6, f);
    th_link(r, 1, c);
    th_link(r, 2, f);
    rc_release(c);
    rc_release(f);
    rc_stats s1 = th_stats();
    uint64_t bytes = s1.bytes_allocated - s0.bytes_allocated;
    cr_assert_eq(s1.objects_allocated - s0.objects_allocated, 111);
    cr_assert_eq(s1.objects_live - s0.objects_live, 111);
    cr_assert_eq(s1.bytes_live - s0.bytes_live, bytes);
    rc_release(r);
    cr_assert_eq(rc_collect(), 111);
    rc_stats s2 = th_stats();
    cr_assert_eq(s2.objects_freed - s1.objects_freed, 111);
    cr_assert_eq(s2.cycles_objects_freed - s1.cycles_objects_freed, 111);
    cr_assert_eq(s2.bytes_freed - s1.bytes_freed, bytes);
    cr_assert_eq(s2.bytes_freed_by_collector - s1.bytes_freed_by_collector,
                 bytes);
    cr_assert_eq(s2.objects_live, s0.objects_live);
    cr_assert_eq(s2.bytes_live, s0.bytes_live);
    cr_assert_geq(s2.collections - s1.collections, 1);
    cr_assert_geq(s2.gc_ns_total, s1.gc_ns_total);
    TH_ASSERT_NO_LEAKS();
}

/* ------------------------------------------------------ random graphs */

static uint64_t rng_state;

static uint32_t rng(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (uint32_t)(x >> 16);
}

/* A model of a graph of tnodes: edges by index, the references the test
 * holds, and which nodes are alive. */
typedef struct model {
    size_t cap, n;
    tnode **obj;
    int (*edge)[4];
    unsigned *ext;
    bool *alive, *reach;
    size_t *queue;
} model;

static void model_init(model *m, size_t cap) {
    m->cap = cap;
    m->n = 0;
    m->obj = th_must(calloc(cap, sizeof *m->obj), "model");
    m->edge = th_must(calloc(cap, sizeof *m->edge), "model");
    m->ext = th_must(calloc(cap, sizeof *m->ext), "model");
    m->alive = th_must(calloc(cap, sizeof *m->alive), "model");
    m->reach = th_must(calloc(cap, sizeof *m->reach), "model");
    m->queue = th_must(calloc(cap, sizeof *m->queue), "model");
}

static void model_free(model *m) {
    free(m->obj);
    free(m->edge);
    free(m->ext);
    free(m->alive);
    free(m->reach);
    free(m->queue);
}

/* A target near i half of the time (many small cycles), anywhere otherwise,
 * or none; only alive nodes. */
static int model_pick(model *m, size_t i) {
    for (int tries = 0; tries < 8; tries++) {
        uint32_t r = rng();
        if (r % 5 == 0)
            return -1;
        size_t j = (r & 8) ? (i + m->n + (rng() % 17) - 8) % m->n
                           : rng() % m->n;
        if (m->alive[j])
            return (int)j;
    }
    return -1;
}

/* Marks what the test's references reach; returns how many. */
static size_t model_reach(model *m) {
    size_t head = 0, tail = 0;
    memset(m->reach, 0, m->n * sizeof *m->reach);
    for (size_t i = 0; i < m->n; i++)
        if (m->alive[i] && m->ext[i] > 0) {
            m->reach[i] = true;
            m->queue[tail++] = i;
        }
    while (head < tail) {
        size_t i = m->queue[head++];
        for (int s = 0; s < 4; s++) {
            int j = m->edge[i][s];
            if (j >= 0 && !m->reach[j]) {
                m->reach[j] = true;
                m->queue[tail++] = (size_t)j;
            }
        }
    }
    return tail;
}

/* Collects and checks the runtime against the model: exactly the reachable
 * nodes survive, with their exact counts and edges. */
static void model_collect_and_check(model *m, bool exact_return) {
    size_t nreach = model_reach(m);
    size_t before = rc_live_objects();
    size_t freed = rc_collect();
    cr_assert_eq(rc_live_objects(), nreach, "live %zu, reachable %zu",
                 rc_live_objects(), nreach);
    if (exact_return)
        cr_assert_eq(freed, before - nreach);
    size_t *indeg = th_must(calloc(m->n, sizeof *indeg), "indeg");
    for (size_t i = 0; i < m->n; i++)
        if (m->reach[i])
            for (int s = 0; s < 4; s++)
                if (m->edge[i][s] >= 0)
                    indeg[m->edge[i][s]]++;
    for (size_t i = 0; i < m->n; i++) {
        m->alive[i] = m->reach[i];
        if (!m->reach[i])
            continue;
        size_t want = indeg[i] + m->ext[i];
        cr_assert_eq(rc_refcount(m->obj[i]), want,
                     "node %zu: count %zu, expected %zu", i,
                     rc_refcount(m->obj[i]), want);
        cr_assert_eq(m->obj[i]->id, (int)i);
        for (int s = 0; s < 4; s++) {
            int j = m->edge[i][s];
            cr_assert_eq(m->obj[i]->kid[s], j >= 0 ? m->obj[j] : NULL);
        }
    }
    free(indeg);
}

/* Adds k fresh nodes, alive and held once by the test. */
static void model_add(model *m, size_t k) {
    for (size_t c = 0; c < k && m->n < m->cap; c++) {
        size_t i = m->n++;
        m->obj[i] = th_node_of(&tnode_type, (int)i);
        for (int s = 0; s < 4; s++)
            m->edge[i][s] = -1;
        m->ext[i] = 1;
        m->alive[i] = true;
    }
}

/* One round: hold every alive node, rewire `edits` random slots, choose new
 * external references, let go, collect and check. */
static void model_round(model *m, size_t add, size_t edits,
                        bool exact_return) {
    for (size_t i = 0; i < m->n; i++)
        if (m->alive[i])
            rc_retain(m->obj[i]);
    size_t first_new = m->n;
    model_add(m, add);
    for (size_t e = 0; e < edits; e++) {
        size_t i = rng() % m->n;
        if (!m->alive[i])
            continue;
        int s = (int)(rng() % 4);
        int j = model_pick(m, i);
        th_link(m->obj[i], s, j >= 0 ? m->obj[j] : NULL);
        m->edge[i][s] = j;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (!m->alive[i])
            continue;
        uint32_t r = rng() % 16;
        unsigned want = r < 12 ? 0 : r < 15 ? 1 : 2;
        while (m->ext[i] < want) {
            rc_retain(m->obj[i]);
            m->ext[i]++;
        }
        while (m->ext[i] > want) {
            rc_release(m->obj[i]);
            m->ext[i]--;
        }
    }
    /* Fresh nodes had no temporary hold: their allocation reference is
     * the external one model_add counted. */
    for (size_t i = 0; i < first_new; i++)
        if (m->alive[i])
            rc_release(m->obj[i]);
    model_collect_and_check(m, exact_return);
}

static void model_release_all(model *m) {
    for (size_t i = 0; i < m->n; i++)
        if (m->alive[i])
            while (m->ext[i] > 0) {
                rc_release(m->obj[i]);
                m->ext[i]--;
            }
}

static void random_graph(uint64_t seed, size_t n, size_t rounds,
                         bool exact_return) {
    model m;
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
    model_init(&m, n + rounds * (n / 8));
    /* Round 0 creates n nodes and wires each of their slots. */
    model_round(&m, n, 4 * n, exact_return);
    for (size_t r = 0; r < rounds; r++)
        model_round(&m, n / 8, n, exact_return);
    model_release_all(&m);
    rc_collect();
    cr_assert_eq(rc_live_objects(), 0);
    model_free(&m);
}

Test(cycles, random_graphs_match_reachability_model) {
    for (uint64_t seed = 1; seed <= 20; seed++)
        random_graph(seed, 200, 0, true);
    random_graph(77, 5000, 0, true);
    TH_ASSERT_NO_LEAKS();
}

Test(cycles, random_mutation_rounds_match_model) {
    for (uint64_t seed = 100; seed < 106; seed++)
        random_graph(seed, 400, 25, true);
    TH_ASSERT_NO_LEAKS();
}

/* ============================================================= finalize */

#define RING_N 200
static int g_fin_count[RING_N];
static int g_bad_neighbour, g_bad_order;
static int g_expect_finalized;

static void check_neighbours(tnode *self) {
    g_fin_count[self->id]++;
    tnode *next = self->kid[0];
    if (next == NULL || rc_type_of(next) != &hnode_type ||
        next->id != (self->id + 1) % RING_N || next->kid[0] == NULL)
        g_bad_neighbour++;
    if (th_disposed != 0)
        g_bad_order++;
}

static void check_all_finalized(tnode *self) {
    (void)self;
    if (th_finalized != g_expect_finalized)
        g_bad_order++;
}

Test(finalize, run_once_each_with_neighbours_intact_before_any_dispose) {
    g_on_finalize = check_neighbours;
    g_on_dispose = check_all_finalized;
    g_expect_finalized = RING_N;
    tnode *r = th_ring_of(&hnode_type, RING_N);
    drop_and_collect(r, RING_N);
    for (int i = 0; i < RING_N; i++)
        cr_assert_eq(g_fin_count[i], 1, "node %d finalized %d times", i,
                     g_fin_count[i]);
    cr_assert_eq(g_bad_neighbour, 0);
    cr_assert_eq(g_bad_order, 0, "a dispose ran before every finalizer");
    cr_assert_eq(th_disposed, RING_N);
    TH_ASSERT_NO_LEAKS();
}

/* A tvec layout whose finalizer inspects every neighbour's child array. */
static size_t g_vec_n;
static int g_vec_bad;

static void hvec_finalize(void *obj) {
    tvec *v = obj;
    th_finalized++;
    if (th_disposed != 0)
        g_vec_bad++;
    if (v->items == NULL || v->n != g_vec_n - 1) {
        g_vec_bad++;
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        tvec *w = v->items[i];
        if (w == NULL || w->items == NULL || w->n != g_vec_n - 1 ||
            w->items[0] == NULL || w->items[w->n - 1] == NULL)
            g_vec_bad++;
    }
}

static void hvec_dispose(void *obj) {
    if ((size_t)th_finalized != g_vec_n)
        g_vec_bad++;
    th_tvec_dispose(obj);
}

static const rc_type hvec_type = {"hvec", sizeof(tvec), th_tvec_trace,
                                  hvec_finalize, 0, hvec_dispose};

Test(finalize, clique_finalizers_see_every_child_array_intact) {
    g_vec_n = 40;
    tvec *c = th_clique_of(&hvec_type, g_vec_n);
    drop_and_collect(c, g_vec_n);
    cr_assert_eq((size_t)th_finalized, g_vec_n);
    cr_assert_eq((size_t)th_disposed, g_vec_n);
    cr_assert_eq(g_vec_bad, 0, "%d broken observations", g_vec_bad);
    TH_ASSERT_NO_LEAKS();
}

static int g_leaf_seen_bad;

static void read_live_leaf(tnode *self) {
    tleaf *leaf = (tleaf *)(void *)self->kid[1];
    if (leaf == NULL || leaf->v != 7 || rc_refcount(leaf) < 1)
        g_leaf_seen_bad++;
}

Test(finalize, finalizers_read_live_objects_the_set_references) {
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    leaf->v = 7;
    g_on_finalize = read_live_leaf;
    tnode *r = th_ring_of(&hnode_type, 8);
    for (size_t i = 0; i < 8; i++)
        th_link(nth(r, i), 1, leaf);
    drop_and_collect(r, 8);
    cr_assert_eq(g_leaf_seen_bad, 0);
    cr_assert_eq(rc_refcount(leaf), 1);
    cr_assert_eq(leaf->v, 7);
    rc_release(leaf);
    TH_ASSERT_NO_LEAKS();
}

static char g_log[64];
static int g_log_len;
static int g_child_intact = -1;

static void log_finalize(tnode *self) {
    g_log[g_log_len++] = (char)('a' + self->id);
    if (self->id == 0)
        g_child_intact = self->kid[0] != NULL && self->kid[0]->id == 1;
}

static void log_dispose(tnode *self) {
    g_log[g_log_len++] = (char)('A' + self->id);
}

Test(finalize, counting_release_finalizes_before_children_and_disposes_last) {
    g_on_finalize = log_finalize;
    g_on_dispose = log_dispose;
    tnode *head = th_chain_of(&hnode_type, 3);
    rc_release(head);
    cr_assert_eq(g_log_len, 6, "log %.*s", g_log_len, g_log);
    cr_assert_eq(g_log[0], 'a', "the dying object is finalized first");
    cr_assert_eq(g_child_intact, 1);
    for (int id = 0; id < 3; id++) {
        const char *f = memchr(g_log, 'a' + id, (size_t)g_log_len);
        const char *d = memchr(g_log, 'A' + id, (size_t)g_log_len);
        cr_assert(f && d && f < d, "log %.*s", g_log_len, g_log);
    }
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(rc_collect(), 0);
    TH_ASSERT_NO_LEAKS();
}

static tleaf *g_extra_leaf;
static tnode *g_extra_ring;

static void release_extras(tnode *self) {
    (void)self;
    if (g_extra_leaf) {
        tleaf *l = g_extra_leaf;
        g_extra_leaf = NULL;
        rc_release(l);
    }
    if (g_extra_ring) {
        tnode *r = g_extra_ring;
        g_extra_ring = NULL;
        rc_release(r);
    }
}

Test(finalize, finalizer_releases_unrelated_objects) {
    g_on_finalize = release_extras;
    g_extra_leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    g_extra_ring = th_ring(5);
    tnode *r = th_ring_of(&hnode_type, 3);
    rc_release(r);
    size_t freed = rc_collect();
    cr_assert_geq(freed, 3);
    cr_assert_eq(th_disposed >= 3, true);
    cr_assert_eq(g_extra_leaf, NULL);
    size_t left = rc_live_objects();
    cr_assert(left == 0 || left == 5, "live %zu", left);
    rc_collect();
    cr_assert_eq(rc_live_objects(), 0,
                 "the ring released in a finalizer is collected later");
    cr_assert_eq(th_finalized, 3 + 5);
    TH_ASSERT_NO_LEAKS();
}

static int g_shared_bad;

/* The first finalizer drops the test's reference to the leaf the whole set
 * shares; every finalizer then reads it, still held by the set. */
static void drop_shared_then_read(tnode *self) {
    if (g_extra_leaf) {
        tleaf *l = g_extra_leaf;
        g_extra_leaf = NULL;
        rc_release(l);
    }
    tleaf *shared = (tleaf *)(void *)self->kid[1];
    if (shared == NULL || shared->v != 9)
        g_shared_bad++;
}

Test(finalize, finalizer_drops_last_outside_ref_to_object_the_set_holds) {
    g_on_finalize = drop_shared_then_read;
    g_extra_leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    g_extra_leaf->v = 9;
    tnode *r = th_ring_of(&hnode_type, 4);
    for (size_t i = 0; i < 4; i++)
        th_link(nth(r, i), 1, g_extra_leaf);
    rc_release(r);
    cr_assert_eq(rc_collect(), 5, "the leaf dies with the set's references");
    cr_assert_eq(g_extra_leaf, NULL);
    cr_assert_eq(g_shared_bad, 0);
    cr_assert_eq(rc_live_objects(), 0);
    TH_ASSERT_NO_LEAKS();
}

static tnode *g_made[64];
static int g_nmade;

static void allocate_and_keep(tnode *self) {
    g_made[g_nmade++] = th_node_of(&tnode_type, 1000 + self->id);
}

Test(finalize, objects_allocated_in_finalizers_survive_the_pass) {
    g_on_finalize = allocate_and_keep;
    tnode *r = th_ring_of(&hnode_type, 6);
    rc_release(r);
    cr_assert_eq(rc_collect(), 6, "the new objects are not freed");
    cr_assert_eq(g_nmade, 6);
    cr_assert_eq(rc_live_objects(), 6);
    for (int i = 0; i < g_nmade; i++) {
        cr_assert_eq(rc_refcount(g_made[i]), 1);
        cr_assert_geq(g_made[i]->id, 1000);
        cr_assert_lt(g_made[i]->id, 1006);
    }
    cr_assert_eq(rc_collect(), 0, "new objects do not join a pass as garbage");
    cr_assert_eq(rc_live_objects(), 6);
    g_on_finalize = NULL;
    for (int i = 0; i < g_nmade; i++)
        rc_release(g_made[i]);
    cr_assert_eq(th_finalized, 12);
    TH_ASSERT_NO_LEAKS();
}

static void allocate_garbage_ring(tnode *self) {
    (void)self;
    rc_release(th_ring(3));
}

Test(finalize, garbage_cycles_made_in_finalizers_are_collected_later) {
    g_on_finalize = allocate_garbage_ring;
    tnode *r = th_ring_of(&hnode_type, 5);
    rc_release(r);
    size_t freed = rc_collect();
    size_t left = rc_live_objects();
    cr_assert(freed == 5 || freed == 20, "freed %zu", freed);
    cr_assert_eq(left, 20 - freed);
    cr_assert_eq(th_disposed >= 5, true);
    size_t later = rc_collect();
    cr_assert_eq(later, left);
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(th_finalized, 20);
    TH_ASSERT_NO_LEAKS();
}

static void allocate_into_self(tnode *self) {
    tnode *x = th_node_of(&tnode_type, 500 + self->id);
    th_link(self, 3, x);
    rc_release(x);
}

Test(finalize, objects_linked_into_dying_set_by_finalizers_are_freed) {
    g_on_finalize = allocate_into_self;
    tnode *r = th_ring_of(&hnode_type, 4);
    rc_release(r);
    rc_collect();
    rc_collect();
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(th_finalized, 8, "4 set members + 4 objects they made");
    cr_assert_eq(th_disposed, 8);
    TH_ASSERT_NO_LEAKS();
}

static size_t g_inner_ret[64];
static int g_ninner;

static void collect_inside(tnode *self) {
    (void)self;
    g_inner_ret[g_ninner++] = rc_collect();
}

Test(finalize, reentrant_collect_from_finalizer_returns_zero) {
    g_on_finalize = collect_inside;
    tnode *a = th_ring_of(&hnode_type, 3);
    tnode *b = th_ring(4);
    rc_release(b);
    rc_release(a);
    cr_assert_eq(rc_collect(), 7);
    cr_assert_eq(g_ninner, 3);
    for (int i = 0; i < g_ninner; i++)
        cr_assert_eq(g_inner_ret[i], 0);
    cr_assert_eq(rc_live_objects(), 0);
    /* On the counting path, with garbage waiting: the inner calls do
     * nothing. */
    g_ninner = 0;
    rc_release(th_ring(3));
    rc_release(th_chain_of(&hnode_type, 2));
    cr_assert_eq(g_ninner, 2);
    for (int i = 0; i < g_ninner; i++)
        cr_assert_eq(g_inner_ret[i], 0);
    cr_assert_eq(rc_live_objects(), 3);
    cr_assert_eq(rc_collect(), 3);
    TH_ASSERT_NO_LEAKS();
}

Test(finalize, reentrant_collect_from_dispose_returns_zero) {
    g_on_dispose = collect_inside;
    tnode *a = th_ring_of(&hnode_type, 5);
    rc_release(th_ring(2));
    rc_release(a);
    cr_assert_eq(rc_collect(), 7);
    cr_assert_eq(g_ninner, 5);
    for (int i = 0; i < g_ninner; i++)
        cr_assert_eq(g_inner_ret[i], 0);
    /* Dispose also runs on the counting path; garbage is waiting. */
    g_ninner = 0;
    rc_release(th_ring(2));
    rc_release(th_chain_of(&hnode_type, 3));
    cr_assert_eq(g_ninner, 3);
    for (int i = 0; i < g_ninner; i++)
        cr_assert_eq(g_inner_ret[i], 0);
    cr_assert_eq(rc_live_objects(), 2);
    cr_assert_eq(rc_collect(), 2);
    TH_ASSERT_NO_LEAKS();
}

/* A leaf with a dispose hook only: it dies on the counting path without
 * a pending list of its own making. */
static void leaf_dispose_collects(void *obj) {
    collect_inside(obj);
    th_disposed++;
}

static const rc_type dispose_leaf_type = {"dispose_leaf", sizeof(tleaf), NULL,
                                          NULL, 0, leaf_dispose_collects};

Test(finalize, reentrant_collect_from_a_leafs_dispose_returns_zero) {
    rc_release(th_ring(2));
    rc_release(th_must(rc_alloc(&dispose_leaf_type), "leaf"));
    cr_assert_eq(g_ninner, 1);
    cr_assert_eq(g_inner_ret[0], 0, "the waiting ring was collected inside");
    cr_assert_eq(th_disposed, 1);
    cr_assert_eq(rc_live_objects(), 2);
    cr_assert_eq(rc_collect(), 2);
    TH_ASSERT_NO_LEAKS();
}

/* A tnode layout whose trace calls rc_collect() and remembers the largest
 * value it returned. */
static size_t g_trace_ret_max;
static int g_trace_calls;

static void collecting_trace(void *obj, rc_visit_fn visit, void *ctx) {
    size_t r = rc_collect();
    g_trace_calls++;
    if (r > g_trace_ret_max)
        g_trace_ret_max = r;
    th_tnode_trace(obj, visit, ctx);
}

static const rc_type tracer_type = {"tracer", sizeof(tnode), collecting_trace,
                                    th_count_finalize, 0, th_count_dispose};

Test(finalize, reentrant_collect_from_trace_returns_zero) {
    tnode *r = th_ring_of(&tracer_type, 6);
    rc_release(th_ring(3));
    rc_release(r);
    cr_assert_eq(rc_collect(), 9);
    /* On the counting path, with garbage waiting. */
    rc_release(th_ring(3));
    rc_release(th_chain_of(&tracer_type, 4));
    cr_assert_geq(g_trace_calls, 1);
    cr_assert_eq(g_trace_ret_max, 0);
    cr_assert_eq(rc_live_objects(), 3);
    cr_assert_eq(rc_collect(), 3);
    cr_assert_eq(th_finalized, 16);
    TH_ASSERT_NO_LEAKS();
}

Test(finalize, reentrant_collect_from_trace_in_a_graph_dump_returns_zero) {
    tnode *keep = th_node_of(&tracer_type, 1);
    for (int i = 0; i < 10; i++)
        rc_release(th_ring(3));
    FILE *f = fopen("/dev/null", "w");
    cr_assert_not_null(f);
    cr_assert_eq(rc_dump_dot(f), 0);
    fclose(f);
    cr_assert_eq(g_trace_calls, 1, "the dump traces the one tracer");
    cr_assert_eq(g_trace_ret_max, 0, "a pass ran in the middle of the dump");
    cr_assert_eq(rc_live_objects(), 31);
    cr_assert_eq(rc_collect(), 30);
    rc_release(keep);
    TH_ASSERT_NO_LEAKS();
}

static void make_garbage_with_tiny_threshold(tnode *self) {
    (void)self;
    for (int i = 0; i < 4; i++)
        rc_release(th_ring(3));
}

Test(finalize, garbage_made_in_finalizers_with_tiny_threshold) {
    rc_set_threshold(1);
    g_on_finalize = make_garbage_with_tiny_threshold;
    for (int k = 0; k < 20; k++)
        rc_release(th_ring_of(&hnode_type, 3));
    rc_collect();
    rc_collect();
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(th_finalized, 60 + 60 * 4 * 3);
    TH_ASSERT_NO_LEAKS();
}

/* ============================================================ resurrect */

static tnode *g_target;
static tnode *g_saved[8];
static int g_nsaved;
static tnode *g_owner;

static void resurrect_target(tnode *self) {
    if (self == g_target)
        g_saved[g_nsaved++] = rc_retain(self);
}

static void resurrect_into_owner(tnode *self) {
    if (self == g_target)
        th_link(g_owner, 0, self);
}

Test(resurrect, resurrected_ring_is_kept_whole_and_finalized_once) {
    g_on_finalize = resurrect_target;
    tnode *r = th_ring_of(&hnode_type, 5);
    g_target = nth(r, 2);
    rc_release(r);
    cr_assert_eq(rc_collect(), 0, "everything is reachable from the target");
    cr_assert_eq(g_nsaved, 1);
    cr_assert_eq(g_saved[0], g_target);
    cr_assert_eq(th_finalized, 5, "the whole set is finalized");
    cr_assert_eq(th_disposed, 0, "nothing of it is disposed");
    cr_assert_eq(rc_live_objects(), 5);
    for (size_t i = 0; i < 5; i++) {
        tnode *x = nth(g_target, i);
        cr_assert_eq(x->id, (int)((2 + i) % 5));
        cr_assert_eq(rc_refcount(x), x == g_target ? 2u : 1u);
    }
    cr_assert_eq(nth(g_target, 5), g_target);
    /* Still a normal object: link it into something new, then let go. */
    tnode *extra = th_node_of(&tnode_type, 77);
    th_link(extra, 0, g_target);
    th_link(g_target, 1, extra);
    rc_release(extra);
    g_target = NULL;
    rc_release(g_saved[0]);
    cr_assert_eq(rc_collect(), 6);
    cr_assert_eq(th_finalized, 6, "hnodes are never finalized twice");
    cr_assert_eq(th_disposed, 6);
    TH_ASSERT_NO_LEAKS();
}

Test(resurrect, only_what_the_resurrected_object_reaches_is_kept) {
    /* a <-> b, b -> c (kid[1]), c <-> d; d resurrects itself */
    g_on_finalize = resurrect_target;
    tnode *a = th_node_of(&hnode_type, 0), *b = th_node_of(&hnode_type, 1);
    tnode *c = th_node_of(&hnode_type, 2), *d = th_node_of(&hnode_type, 3);
    th_link(a, 0, b);
    th_link(b, 0, a);
    th_link(b, 1, c);
    th_link(c, 0, d);
    th_link(d, 0, c);
    rc_release(b);
    rc_release(c);
    rc_release(d);
    g_target = d;
    rc_release(a);
    cr_assert_eq(rc_collect(), 2, "a and b are still unreachable");
    cr_assert_eq(th_finalized, 4);
    cr_assert_eq(th_disposed, 2);
    cr_assert_eq(rc_live_objects(), 2);
    cr_assert_eq(rc_refcount(d), 2);
    cr_assert_eq(rc_refcount(c), 1);
    cr_assert_eq(d->kid[0], c);
    cr_assert_eq(c->kid[0], d);
    g_target = NULL;
    rc_release(g_saved[0]);
    cr_assert_eq(rc_collect(), 2);
    cr_assert_eq(th_finalized, 4);
    cr_assert_eq(th_disposed, 4);
    TH_ASSERT_NO_LEAKS();
}

Test(resurrect, unrelated_garbage_of_the_same_pass_is_freed) {
    g_on_finalize = resurrect_target;
    tnode *x = th_ring_of(&hnode_type, 4);
    tnode *y = th_ring_of(&hnode_type, 6);
    tvec *z = th_clique(5);
    g_target = nth(x, 1);
    rc_release(y);
    rc_release(x);
    rc_release(z);
    cr_assert_eq(rc_collect(), 11);
    cr_assert_eq(rc_live_objects(), 4);
    cr_assert_eq(th_finalized, 15);
    cr_assert_eq(th_disposed, 11);
    g_target = NULL;
    rc_release(g_saved[0]);
    cr_assert_eq(rc_collect(), 4);
    cr_assert_eq(th_finalized, 15);
    cr_assert_eq(th_disposed, 15);
    TH_ASSERT_NO_LEAKS();
}

Test(resurrect, resurrection_through_a_live_object) {
    g_on_finalize = resurrect_into_owner;
    g_owner = th_node_of(&tnode_type, 9);
    tnode *r = th_ring_of(&hnode_type, 3);
    g_target = nth(r, 1);
    rc_release(r);
    cr_assert_eq(rc_collect(), 0);
    cr_assert_eq(g_owner->kid[0], g_target);
    cr_assert_eq(rc_refcount(g_target), 2);
    cr_assert_eq(rc_live_objects(), 4);
    g_target = NULL;
    th_link(g_owner, 0, NULL);
    cr_assert_eq(rc_collect(), 3);
    cr_assert_eq(th_finalized, 3);
    cr_assert_eq(th_disposed, 3);
    rc_release(g_owner);
    TH_ASSERT_NO_LEAKS();
}

Test(resurrect, resurrected_set_keeps_containers_and_their_arrays) {
    g_on_finalize = resurrect_target;
    tnode *r = th_ring_of(&hnode_type, 3);
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    leaf->v = 5;
    tvec *v = tvec_new(2);
    th_vset(v, 0, leaf);
    th_vset(v, 1, v);
    tflex *f = tflex_new(1);
    th_fset(f, 0, leaf);
    th_link(nth(r, 1), 1, v);
    th_link(nth(r, 2), 1, f);
    rc_release(leaf);
    rc_release(v);
    rc_release(f);
    g_target = r;
    rc_release(r);
    cr_assert_eq(rc_collect(), 0);
    cr_assert_eq(th_disposed, 0);
    cr_assert_eq(rc_live_objects(), 6);
    cr_assert_eq(v->n, 2);
    cr_assert_eq(v->items[0], leaf);
    cr_assert_eq(((tleaf *)v->items[0])->v, 5);
    cr_assert_eq(f->items[0], leaf);
    cr_assert_eq(rc_refcount(leaf), 2);
    g_target = NULL;
    rc_release(g_saved[0]);
    cr_assert_eq(rc_collect(), 6);
    TH_ASSERT_NO_LEAKS();
}

Test(resurrect, resurrection_on_the_counting_path) {
    g_on_finalize = resurrect_target;
    tnode *n = th_node_of(&hnode_type, 1);
    g_target = n;
    rc_release(n);
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(th_disposed, 0);
    cr_assert_eq(rc_live_objects(), 1);
    cr_assert_eq(g_saved[0], n);
    cr_assert_eq(rc_refcount(n), 1);
    cr_assert_eq(rc_collect(), 0);
    rc_release(g_saved[0]);
    cr_assert_eq(g_nsaved, 1, "never finalized twice");
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(th_disposed, 1);
    TH_ASSERT_NO_LEAKS();
}

/* Finalizers that resurrect their object only through a cycle they make:
 * afterwards nothing outside reaches it, and one rc_collect() frees it. */
static void resurrect_into_self_loop(tnode *self) {
    if (self->kid[1] == NULL)
        th_link(self, 1, self);
}

static void resurrect_through_child(tnode *self) {
    tnode *c = self->kid[0];
    if (c != NULL && c->kid[1] == NULL)
        th_link(c, 1, self);
}

static void resurrect_through_new_object(tnode *self) {
    if (self->kid[1] == NULL) {
        tnode *y = th_node_of(&tnode_type, 42);
        th_link(y, 0, self);
        self->kid[1] = y; /* transfer: self -> y -> self */
    }
}

Test(resurrect, into_a_self_loop_on_the_counting_path_is_collected) {
    g_on_finalize = resurrect_into_self_loop;
    rc_release(th_node_of(&hnode_type, 1));
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(rc_live_objects(), 1);
    cr_assert_eq(rc_collect(), 1, "the self-loop was never a candidate root");
    cr_assert_eq(th_finalized, 1, "never finalized twice");
    cr_assert_eq(th_disposed, 1);
    TH_ASSERT_NO_LEAKS();
}

Test(resurrect, through_a_child_on_the_counting_path_is_collected) {
    g_on_finalize = resurrect_through_child;
    tnode *p = th_node_of(&hnode_type, 1);
    p->kid[0] = th_node_of(&tnode_type, 2);
    rc_release(p);
    cr_assert_eq(rc_live_objects(), 2);
    cr_assert_eq(rc_collect(), 2);
    cr_assert_eq(th_finalized, 2, "the hnode once, the tnode once");
    TH_ASSERT_NO_LEAKS();
}

Test(resurrect, set_member_revived_into_a_new_cycle_is_collected) {
    /* ring {a, b}; a's finalizer makes y with a -> y -> a */
    g_on_finalize = resurrect_through_new_object;
    tnode *a = th_node_of(&hnode_type, 1);
    tnode *b = th_node_of(&tnode_type, 2);
    th_link(a, 0, b);
    th_link(b, 0, a);
    rc_release(b);
    rc_release(a);
    cr_assert_eq(rc_collect(), 3, "a, b and y are all unreachable");
    cr_assert_eq(th_finalized, 3, "a once; b and y once each");
    cr_assert_eq(th_disposed, 3);
    TH_ASSERT_NO_LEAKS();
}

/* A dispose that drops the global a finalizer of the same set stored a
 * member in: that member dies while the set is being reclaimed. */
static void drop_saved(tnode *self) {
    (void)self;
    if (g_nsaved > 0) {
        tnode *t = g_saved[--g_nsaved];
        g_saved[g_nsaved] = NULL;
        rc_release(t);
    }
}

Test(resurrect, member_dropped_by_a_dispose_of_its_own_set) {
    /* d <-> e, d -> r; r resurrects into g_saved, every dispose drops it */
    for (int order = 0; order < 2; order++) {
        th_reset();
        g_on_finalize = resurrect_target;
        g_on_dispose = drop_saved;
        tnode *d = th_node_of(&hnode_type, 0), *e = th_node_of(&hnode_type, 1);
        tnode *r = th_node_of(&hnode_type, 2);
        th_link(d, 0, e);
        th_link(e, 0, d);
        th_link(d, 1, r);
        rc_release(r);
        g_target = r;
        rc_release(order ? e : d);
        rc_release(order ? d : e);
        cr_assert_eq(rc_collect(), 3, "order %d", order);
        cr_assert_eq(th_finalized, 3, "each once");
        cr_assert_eq(th_disposed, 3, "each once");
        cr_assert_eq(g_nsaved, 0);
        g_target = NULL;
        TH_ASSERT_NO_LEAKS();
    }
}

/* ================================================================= weak */

static rc_weak *g_weak[8];
static int g_nweak;
static int g_weak_seen;

static void look_through_weak_refs(tnode *self) {
    (void)self;
    for (int i = 0; i < g_nweak; i++) {
        void *p = rc_weak_get(g_weak[i]);
        if (p != NULL) {
            g_weak_seen++;
            rc_release(p);
        }
    }
}

Test(weak, weak_refs_to_a_garbage_set_are_cleared_before_its_finalizers) {
    g_on_finalize = look_through_weak_refs;
    tnode *r = th_ring_of(&hnode_type, 3);
    for (size_t i = 0; i < 3; i++)
        g_weak[g_nweak++] = th_must(rc_weak_new(nth(r, i)), "weak");
    tnode *got = rc_weak_get(g_weak[1]);
    cr_assert_eq(got, nth(r, 1));
    rc_release(got);
    drop_and_collect(r, 3);
    cr_assert_eq(g_weak_seen, 0, "a finalizer saw a member through a weak ref");
    for (int i = 0; i < g_nweak; i++) {
        cr_assert_null(rc_weak_get(g_weak[i]));
        rc_weak_free(g_weak[i]);
    }
    TH_ASSERT_NO_LEAKS();
}

Test(weak, weak_ref_cleared_before_finalizer_on_counting_path) {
    g_on_finalize = look_through_weak_refs;
    tnode *n = th_node_of(&hnode_type, 0);
    g_weak[g_nweak++] = th_must(rc_weak_new(n), "weak");
    rc_release(n);
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(g_weak_seen, 0);
    cr_assert_null(rc_weak_get(g_weak[0]));
    rc_weak_free(g_weak[0]);
    TH_ASSERT_NO_LEAKS();
}

Test(weak, weak_ref_to_live_object_referenced_by_garbage_survives) {
    tnode *live = th_node_of(&tnode_type, 5);
    rc_weak *w = th_must(rc_weak_new(live), "weak");
    rc_weak *gone = th_must(rc_weak_new(live), "weak");
    rc_weak_free(gone); /* freed before its object dies */
    tnode *r = th_ring(4);
    th_link(nth(r, 3), 1, live);
    rc_weak *wr = th_must(rc_weak_new(nth(r, 2)), "weak");
    drop_and_collect(r, 4);
    tnode *got = rc_weak_get(w);
    cr_assert_eq(got, live);
    cr_assert_eq(rc_refcount(live), 2);
    rc_release(got);
    cr_assert_null(rc_weak_get(wr));
    rc_weak_free(wr);
    rc_release(live);
    cr_assert_null(rc_weak_get(w));
    rc_weak_free(w); /* freed after its object died */
    TH_ASSERT_NO_LEAKS();
}

static void make_weak_to_self(tnode *self) {
    g_weak[g_nweak++] = rc_weak_new(self);
}

Test(weak, weak_refs_made_by_finalizers_never_dangle) {
    g_on_finalize = make_weak_to_self;
    tnode *r = th_ring_of(&hnode_type, 5);
    drop_and_collect(r, 5);
    cr_assert_eq(g_nweak, 5);
    for (int i = 0; i < g_nweak; i++) {
        if (g_weak[i] == NULL)
            continue; /* allocation failure is allowed: NULL */
        cr_assert_null(rc_weak_get(g_weak[i]));
        rc_weak_free(g_weak[i]);
    }
    TH_ASSERT_NO_LEAKS();
}

Test(weak, weak_ref_stays_cleared_after_resurrection) {
    g_on_finalize = resurrect_target;
    tnode *r = th_ring_of(&hnode_type, 3);
    g_target = nth(r, 1);
    rc_weak *w = th_must(rc_weak_new(g_target), "weak");
    rc_release(r);
    cr_assert_eq(rc_collect(), 0);
    cr_assert_eq(rc_live_objects(), 3);
    cr_assert_null(rc_weak_get(w), "cleared once found in a garbage set");
    g_target = NULL;
    rc_release(g_saved[0]);
    cr_assert_eq(rc_collect(), 3);
    cr_assert_null(rc_weak_get(w));
    rc_weak_free(w);
    TH_ASSERT_NO_LEAKS();
}

/* ============================================================ threshold */

static void make_garbage_rings(int count, size_t size) {
    for (int i = 0; i < count; i++)
        rc_release(th_ring(size));
}

Test(threshold, zero_turns_automatic_passes_off) {
    rc_set_threshold(0);
    rc_stats s0 = th_stats();
    make_garbage_rings(20000, 3);
    rc_stats s1 = th_stats();
    cr_assert_eq(s1.collections, s0.collections, "no automatic pass");
    cr_assert_eq(rc_live_objects(), 60000);
    cr_assert_geq(s1.roots_buffered - s0.roots_buffered, 20000);
    cr_assert_eq(rc_collect(), 60000);
    TH_ASSERT_NO_LEAKS();
}

Test(threshold, small_threshold_collects_without_rc_collect) {
    rc_set_threshold(100);
    rc_stats s0 = th_stats();
    make_garbage_rings(2000, 3);
    rc_stats s1 = th_stats();
    cr_assert_gt(s1.collections - s0.collections, 0);
    cr_assert_gt(s1.cycles_objects_freed - s0.cycles_objects_freed, 0);
    cr_assert_lt(rc_live_objects(), 6000);
    cr_assert_eq(s1.objects_freed - s0.objects_freed,
                 6000 - rc_live_objects());
    size_t left = rc_live_objects();
    cr_assert_eq(rc_collect(), left);
    cr_assert_eq(th_finalized, 6000);
    TH_ASSERT_NO_LEAKS();
}

Test(threshold, default_threshold_runs_passes) {
    rc_stats s0 = th_stats();
    for (int i = 0; i < 3 * RC_DEFAULT_THRESHOLD; i++) {
        tnode *a = th_node_of(&tnode_type, i);
        tnode *b = th_node_of(&tnode_type, i);
        th_link(a, 0, b);
        th_link(b, 0, a);
        rc_release(a);
        rc_release(b);
    }
    rc_stats s1 = th_stats();
    cr_assert_gt(s1.collections - s0.collections, 0);
    cr_assert_lt(rc_live_objects(), (size_t)6 * RC_DEFAULT_THRESHOLD);
    TH_ASSERT_NO_LEAKS();
}

Test(threshold, automatic_passes_never_free_live_objects) {
    enum { LIVE = 100, SIZE = 7 };
    tnode *live[LIVE];
    rc_set_threshold(16);
    for (int i = 0; i < LIVE; i++) {
        live[i] = th_ring(SIZE);
        make_garbage_rings(5, 4);
        /* Turn live members into candidate roots, too. */
        for (int k = 0; k <= i; k += 7) {
            tnode *x = nth(live[k], (size_t)(i % SIZE));
            rc_retain(x);
            rc_release(x);
        }
    }
    rc_collect();
    cr_assert_eq(rc_live_objects(), (size_t)LIVE * SIZE);
    for (int i = 0; i < LIVE; i++) {
        cr_assert_eq(rc_refcount(live[i]), 2);
        for (size_t k = 1; k < SIZE; k++) {
            cr_assert_eq(rc_refcount(nth(live[i], k)), 1);
            cr_assert_eq(nth(live[i], k)->id, (int)k);
        }
        cr_assert_eq(nth(live[i], SIZE), live[i]);
    }
    cr_assert_eq(th_finalized, LIVE * 5 * 4);
    for (int i = 0; i < LIVE; i++)
        rc_release(live[i]);
    TH_ASSERT_NO_LEAKS();
}

/* A finalizer that buffers a live object while its pass runs: with a
 * threshold of 1 that asks for another pass. */
static tnode *g_live;
static void buffer_the_live_object(tnode *self) {
    (void)self;
    for (int i = 0; i < 4; i++) /* allocation that pays for a pass */
        rc_release(th_must(rc_alloc(&tleaf_type), "leaf"));
    rc_release(rc_retain(g_live));
}

Test(threshold, a_pass_asked_for_during_a_pass_does_not_outlive_it) {
    g_live = th_node_of(&tnode_type, 9);
    rc_set_threshold(1);
    g_on_finalize = buffer_the_live_object;
    rc_release(th_ring_of(&hnode_type, 2));
    rc_collect();
    g_on_finalize = NULL;
    rc_set_threshold(0);
    rc_release(th_ring(2)); /* garbage until the next rc_collect() */
    size_t live = rc_live_objects();
    uint64_t passes = th_stats().collections;
    FILE *f = fopen("/dev/null", "w");
    cr_assert_not_null(f);
    cr_assert_eq(rc_leak_report(f), live);
    cr_assert_eq(rc_dump_dot(f), 0);
    fclose(f);
    rc_release(th_node_of(&tnode_type, 5)); /* dies through the pending list */
    cr_assert_eq(th_stats().collections, passes, "an automatic pass ran");
    cr_assert_eq(rc_live_objects(), live);
    cr_assert_eq(rc_collect(), 2);
    rc_release(g_live);
    TH_ASSERT_NO_LEAKS();
}

Test(threshold, setting_zero_again_stops_passes) {
    rc_set_threshold(10);
    rc_stats s0 = th_stats();
    make_garbage_rings(100, 2);
    rc_stats s1 = th_stats();
    cr_assert_gt(s1.collections - s0.collections, 0);
    rc_set_threshold(0);
    size_t live = rc_live_objects();
    make_garbage_rings(1000, 2);
    rc_stats s2 = th_stats();
    cr_assert_eq(s2.collections, s1.collections);
    cr_assert_eq(rc_live_objects(), live + 2000);
    cr_assert_eq(rc_collect(), live + 2000);
    TH_ASSERT_NO_LEAKS();
}

Test(threshold, random_mutations_with_automatic_passes) {
    rc_set_threshold(8);
    for (uint64_t seed = 300; seed < 304; seed++)
        random_graph(seed, 300, 15, false);
    TH_ASSERT_NO_LEAKS();
}

/* ========================================================== long graphs */

Test(long_graphs, million_node_ring) {
    size_t n = th_scale(1000000);
    tnode *r = th_ring(n);
    rc_set_threshold(0);
    drop_and_collect(r, n);
    cr_assert_eq((size_t)th_finalized, n);
    cr_assert_eq((size_t)th_disposed, n);
    TH_ASSERT_NO_LEAKS();
}

Test(long_graphs, million_node_chain_freed_by_counting) {
    size_t n = th_scale(1000000);
    tnode *c = th_chain(n);
    rc_set_threshold(0);
    rc_stats s0 = th_stats();
    rc_release(c);
    rc_stats s1 = th_stats();
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(s1.objects_freed - s0.objects_freed, (uint64_t)n);
    cr_assert_eq(s1.cycles_objects_freed - s0.cycles_objects_freed, 0);
    cr_assert_eq((size_t)th_finalized, n);
    cr_assert_eq((size_t)th_disposed, n);
    cr_assert_eq(rc_collect(), 0);
    TH_ASSERT_NO_LEAKS();
}

Test(long_graphs, million_node_chain_hanging_off_self_loop) {
    size_t n = th_scale(1000000);
    tnode *s = th_self_loop();
    tnode *c = th_chain(n);
    th_link(s, 1, c);
    rc_release(c);
    rc_set_threshold(0);
    drop_and_collect(s, n + 1);
    TH_ASSERT_NO_LEAKS();
}

Test(long_graphs, million_node_live_ring_survives_a_pass) {
    size_t n = th_scale(1000000);
    tnode *r = th_ring(n);
    rc_set_threshold(0);
    rc_retain(r);
    rc_release(r);
    cr_assert_eq(rc_collect(), 0);
    cr_assert_eq(rc_live_objects(), n);
    cr_assert_eq(rc_refcount(r), 2);
    tnode *x = r->kid[0];
    for (size_t i = 1; i < n; i++, x = x->kid[0]) {
        if (x->id != (int)i || rc_refcount(x) != 1)
            cr_assert_fail("node %zu: id %d count %zu", i, x->id,
                           rc_refcount(x));
    }
    cr_assert_eq(x, r);
    cr_assert_eq(th_finalized, 0);
    drop_and_collect(r, n);
    TH_ASSERT_NO_LEAKS();
}

Test(long_graphs, million_node_tree_with_back_edges) {
    size_t n = th_scale(1000000);
    tnode **all = th_must(calloc(n, sizeof *all), "tree");
    for (size_t i = 0; i < n; i++)
        all[i] = th_node_of(&tnode_type, (int)i);
    size_t leaves = 0;
    for (size_t i = 0; i < n; i++) {
        if (2 * i + 1 < n)
            th_link(all[i], 0, all[2 * i + 1]);
        if (2 * i + 2 < n)
            th_link(all[i], 1, all[2 * i + 2]);
        if (2 * i + 1 >= n) {
            th_link(all[i], 2, all[0]);
            leaves++;
        }
    }
    tnode *root = all[0];
    for (size_t i = 1; i < n; i++)
        rc_release(all[i]);
    free(all);
    cr_assert_eq(rc_refcount(root), leaves + 1);
    rc_set_threshold(0);
    drop_and_collect(root, n);
    TH_ASSERT_NO_LEAKS();
}

typedef struct big_job {
    size_t n, live_before, freed, live_after;
    uint64_t cycles_freed;
} big_job;

static void *big_ring_thread(void *arg) {
    big_job *job = arg;
    tnode *r = th_ring(job->n);
    rc_set_threshold(0);
    rc_stats s0;
    rc_stats_get(&s0);
    rc_release(r);
    job->live_before = rc_live_objects();
    job->freed = rc_collect();
    job->live_after = rc_live_objects();
    rc_stats s1;
    rc_stats_get(&s1);
    job->cycles_freed = s1.cycles_objects_freed - s0.cycles_objects_freed;
    rc_thread_exit();
    return NULL;
}

Test(long_graphs, ten_million_ring_on_a_256k_stack) {
    big_job job = {.n = th_scale(10000000)};
    pthread_attr_t attr;
    pthread_t tid;
    cr_assert_eq(pthread_attr_init(&attr), 0);
    cr_assert_eq(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
    cr_assert_eq(pthread_create(&tid, &attr, big_ring_thread, &job), 0);
    cr_assert_eq(pthread_join(tid, NULL), 0);
    pthread_attr_destroy(&attr);
    cr_assert_eq(job.live_before, job.n);
    cr_assert_eq(job.freed, job.n);
    cr_assert_eq(job.live_after, 0);
    cr_assert_eq(job.cycles_freed, (uint64_t)job.n);
    cr_assert_eq((size_t)th_finalized, job.n);
    cr_assert_eq((size_t)th_disposed, job.n);
    TH_ASSERT_NO_LEAKS();
}

/* ============================================================= immortal */

/* Immortal objects are never freed: they stay listed here, so that memory
 * checkers see them as reachable rather than lost. */
static void *g_immortals[8];
static int g_nimmortals;

/* Makes obj immortal the way a program would, by overflowing its count,
 * but jumps most of the four billion retains by presetting the count in the
 * (private) header. */
static void make_immortal(void *obj) {
    rc__header *h = (rc__header *)obj - 1;
    g_immortals[g_nimmortals++] = obj;
    h->rc = UINT32_MAX - 2;
    for (int i = 0; i < 4; i++)
        rc_retain(obj);
    cr_assert_eq(rc_refcount(obj), SIZE_MAX, "count did not saturate");
}

/* The leak check of a test that made immortal objects: after a full pass
 * exactly `expect` objects are left, the immortal ones still immortal. */
static void assert_only_immortals_left(size_t expect) {
    rc_collect();
    cr_assert_eq(rc_live_objects(), expect, "%zu objects left, expected %zu",
                 rc_live_objects(), expect);
    for (int i = 0; i < g_nimmortals; i++)
        cr_assert_eq(rc_refcount(g_immortals[i]), SIZE_MAX);
}

Test(immortal, immortal_leaf_reached_from_garbage_ring) {
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    leaf->v = 3;
    tnode *r = th_ring(4);
    th_link(r, 1, leaf);
    th_link(nth(r, 2), 1, leaf);
    make_immortal(leaf);
    rc_release(leaf);
    drop_and_collect(r, 4);
    cr_assert_eq(rc_refcount(leaf), SIZE_MAX);
    cr_assert_eq(leaf->v, 3);
    assert_only_immortals_left(1);
}

Test(immortal, immortal_node_on_a_cycle_keeps_the_cycle) {
    tnode *r = th_ring(4);
    tnode *imm = nth(r, 2);
    make_immortal(imm);
    rc_release(r);
    cr_assert_eq(rc_collect(), 0, "the ring is reachable from an immortal");
    cr_assert_eq(rc_live_objects(), 4);
    cr_assert_eq(rc_refcount(imm), SIZE_MAX);
    cr_assert_eq(rc_refcount(r), 1);
    cr_assert_eq(rc_refcount(nth(r, 1)), 1);
    cr_assert_eq(rc_refcount(nth(r, 3)), 1);
    cr_assert_eq(nth(r, 4), r);
    cr_assert_eq(th_finalized, 0);
    assert_only_immortals_left(4); /* the immortal and what it reaches */
}

Test(immortal, immortal_owner_can_still_drop_a_cycle) {
    tnode *owner = th_node_of(&tnode_type, 1);
    make_immortal(owner);
    tnode *r = th_ring(5);
    th_link(owner, 0, r);
    rc_release(r);
    cr_assert_eq(rc_collect(), 0);
    cr_assert_eq(rc_live_objects(), 6);
    cr_assert_eq(rc_refcount(r), 2);
    th_link(owner, 0, NULL);
    cr_assert_eq(rc_collect(), 5);
    for (int i = 0; i < 1000; i++)
        rc_release(owner);
    cr_assert_eq(rc_refcount(owner), SIZE_MAX);
    assert_only_immortals_left(1);
}

/* =============================================================== misuse */

#if RCGC_DEBUG
static void do_release(void *obj) { rc_release(obj); }
static void do_retain(void *obj) { rc_retain(obj); }

static void check_death_message(void (*op)(void *), const char *what) {
    tnode *r = th_ring(2);
    tnode *dead = r->kid[0];
    rc_release(r);
    cr_assert_eq(rc_collect(), 2);
    char buf[4096];
    int sig = th_capture(op, dead, buf, sizeof buf);
    cr_assert_eq(sig, SIGABRT, "signal %d, stderr: %s", sig, buf);
    size_t len = strlen(buf);
    cr_assert_gt(len, 0);
    cr_assert_eq(buf[len - 1], '\n', "stderr: %s", buf);
    cr_assert_null(memchr(buf, '\n', len - 1), "one line: %s", buf);
    cr_assert_not_null(strstr(buf, what), "no operation in: %s", buf);
    cr_assert_not_null(strstr(buf, "tnode"), "no type in: %s", buf);
    char addr[32], hdr[32];
    snprintf(addr, sizeof addr, "%" PRIxPTR, (uintptr_t)dead);
    snprintf(hdr, sizeof hdr, "%" PRIxPTR, (uintptr_t)((rc__header *)dead - 1));
    cr_assert(strstr(buf, addr) || strstr(buf, hdr), "no address in: %s",
              buf);
    cr_assert_not_null(strstr(buf, "helpers.h"), "no site in: %s", buf);
}

Test(misuse, release_of_a_collected_object_aborts_with_one_line) {
    check_death_message(do_release, "release");
    TH_ASSERT_NO_LEAKS();
}

Test(misuse, retain_of_a_collected_object_aborts_with_one_line) {
    check_death_message(do_retain, "retain");
    TH_ASSERT_NO_LEAKS();
}
#endif
