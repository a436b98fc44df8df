/* test_core.c: objects, counting, death order, stats, the 16-byte header. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>

#include "helpers.h"

/* ------------------------------------------------------------ a log type */

/* Records the order of finalize / child release / dispose events. */
static char events[64];
static size_t nevents;
static void ev(char c) {
    if (nevents < sizeof events - 1)
        events[nevents++] = c;
}

typedef struct logged {
    void *child;
    int *alive_flag;
} logged;

static void logged_trace(void *o, rc_visit_fn visit, void *ctx) {
    ev('t');
    visit(((logged *)o)->child, ctx);
}
static void logged_finalize(void *o) {
    logged *l = o;
    ev('f');
    /* the child is intact while the parent is finalized */
    if (l->child)
        cr_assert_geq(rc_refcount(l->child), 1);
}
static void logged_dispose(void *o) { (void)o; ev('d'); }
static const rc_type logged_type = {"logged", sizeof(logged), logged_trace,
                                    logged_finalize, 0, logged_dispose};

static void leaf_finalize(void *o) { (void)o; ev('c'); }
static const rc_type leaf_fin_type = {"leaf", 8, NULL, leaf_finalize, 0, NULL};

/* ------------------------------------------------------------ allocation */

Test(alloc, zeroed_count_one_and_typed) {
    tnode *n = rc_new(tnode, &tnode_type);
    cr_assert_not_null(n);
    cr_assert_eq(rc_refcount(n), 1);
    cr_assert_eq(rc_type_of(n), &tnode_type);
    for (int i = 0; i < 4; i++)
        cr_assert_null(n->kid[i]);
    cr_assert_eq(n->id, 0);
    rc_release(n);
    cr_assert_eq(rc_live_objects(), 0);
}

Test(alloc, payload_aligned_to_max_align) {
    static const rc_type sizes[] = {
        {"s1", 1, NULL, NULL, 0, NULL},   {"s8", 8, NULL, NULL, 0, NULL},
        {"s24", 24, NULL, NULL, 0, NULL}, {"s100", 100, NULL, NULL, 0, NULL},
        {"s3000", 3000, NULL, NULL, 0, NULL}};
    void *keep[5 * 20];
    size_t k = 0;
    for (size_t i = 0; i < 5; i++)
        for (int j = 0; j < 20; j++) {
            void *p = rc_alloc(&sizes[i]);
            cr_assert_not_null(p);
            cr_assert_eq((uintptr_t)p % alignof(max_align_t), 0);
            keep[k++] = p;
        }
    for (size_t i = 0; i < k; i++)
        rc_release(keep[i]);
    cr_assert_eq(rc_live_objects(), 0);
}

Test(alloc, extra_bytes_are_zeroed_and_usable) {
    tflex *f = rc_alloc_extra(&tflex_type, 100 * sizeof(void *));
    cr_assert_not_null(f);
    for (int i = 0; i < 100; i++)
        cr_assert_null(f->items[i]);
    rc_release(f);
    cr_assert_eq(rc_live_objects(), 0);
}

Test(alloc, null_type_and_unrepresentable_sizes_return_null) {
    rc_stats before, after;
    rc_release(rc_alloc(&tleaf_type)); /* make the thread's runtime exist */
    rc_stats_get(&before);
    cr_assert_null(rc_alloc(NULL));
    cr_assert_null(rc_alloc_extra(NULL, 8));
    cr_assert_null(rc_alloc_extra(&tleaf_type, SIZE_MAX));
    cr_assert_null(rc_alloc_extra(&tleaf_type, SIZE_MAX - sizeof(tleaf)));
    cr_assert_null(rc_alloc_extra(&tleaf_type, SIZE_MAX - 64));
    static const rc_type huge = {"huge", SIZE_MAX - 8, NULL, NULL, 0, NULL};
    cr_assert_null(rc_alloc(&huge));
    rc_stats_get(&after);
    cr_assert_eq(after.objects_allocated, before.objects_allocated);
    cr_assert_eq(after.bytes_allocated, before.bytes_allocated);
    /* the runtime still works */
    tnode *n = rc_new(tnode, &tnode_type);
    cr_assert_not_null(n);
    rc_release(n);
}

/* ------------------------------------------------------------ counting */

Test(count, retain_release_and_null_safety) {
    tnode *n = rc_new(tnode, &tnode_type);
    cr_assert_eq(rc_retain(n), n);
    cr_assert_eq(rc_refcount(n), 2);
    rc_release(n);
    cr_assert_eq(rc_refcount(n), 1);
    cr_assert_null(rc_retain(NULL));
    rc_release(NULL);
    cr_assert_eq(rc_refcount(NULL), 0);
    cr_assert_null(rc_type_of(NULL));
    cr_assert_eq(rc_retain_fn(n), n);
    rc_release_fn(n);
    rc_release_fn(n);
    rc_release_fn(NULL);
    cr_assert_eq(rc_live_objects(), 0);
}

Test(count, release_to_zero_frees_at_once) {
    th_reset();
    tnode *n = rc_new(tnode, &tnode_type);
    cr_assert_eq(rc_live_objects(), 1);
    rc_release(n);
    cr_assert_eq(rc_live_objects(), 0);
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(th_disposed, 1);
}

Test(count, death_order_finalize_children_dispose) {
    nevents = 0;
    logged *p = rc_new(logged, &logged_type);
    p->child = rc_alloc(&leaf_fin_type);
    rc_release(p);
    events[nevents] = 0;
    /* finalize, trace (releasing the child), dispose; the child's own death
     * follows the parent's: cascades are iterative, never recursive */
    cr_assert_str_eq(events, "ftdc");
    cr_assert_eq(rc_live_objects(), 0);
}

Test(count, rc_set_stores_before_releasing) {
    tnode *a = rc_new(tnode, &tnode_type);
    tnode *b = rc_new(tnode, &tnode_type);
    rc_set((void **)&a->kid[0], b);
    cr_assert_eq(a->kid[0], b);
    cr_assert_eq(rc_refcount(b), 2);
    rc_set((void **)&a->kid[0], b); /* same value: no premature free */
    cr_assert_eq(rc_refcount(b), 2);
    rc_release(b);
    rc_set((void **)&a->kid[0], NULL);
    cr_assert_null(a->kid[0]);
    cr_assert_eq(rc_live_objects(), 1);
    rc_release(a);
    cr_assert_eq(rc_live_objects(), 0);
}

/* A finalizer run by rc_set's release sees the slot already updated. */
static tnode **watched_slot;
static void *seen_in_slot;
static void watch_finalize(void *o) {
    (void)o;
    seen_in_slot = *watched_slot;
}
static const rc_type watch_type = {"watch", sizeof(tnode), th_tnode_trace,
                                   watch_finalize, 0, NULL};

Test(count, finalizer_never_sees_dangling_slot) {
    tnode *holder = rc_new(tnode, &tnode_type);
    tnode *old = rc_alloc(&watch_type);
    tnode *fresh = rc_new(tnode, &tnode_type);
    holder->kid[0] = old;
    watched_slot = &holder->kid[0];
    RC_SET(holder->kid[0], fresh);
    cr_assert_eq(seen_in_slot, fresh);
    rc_release(fresh);
    rc_release(holder);
    cr_assert_eq(rc_live_objects(), 0);
}

Test(count, rc_set_macro_evaluates_its_slot_once) {
    tnode *holder = rc_new(tnode, &tnode_type);
    tnode *a = rc_new(tnode, &tnode_type), *b = rc_new(tnode, &tnode_type);
    holder->kid[0] = a; /* transfers */
    holder->kid[1] = b;
    tnode *v = rc_new(tnode, &tnode_type);
    int i = 0;
    RC_SET(holder->kid[i++], v);
    cr_assert_eq(i, 1, "the slot expression ran %d times", i);
    cr_assert_eq(holder->kid[0], v, "the new value went to another slot");
    cr_assert_eq(holder->kid[1], b);
    cr_assert_eq(rc_refcount(v), 2);
    cr_assert_eq(rc_refcount(b), 1);
    cr_assert_eq(rc_live_objects(), 3, "a, the old value, is freed");
    rc_release(v);
    rc_release(holder);
    cr_assert_eq(rc_live_objects(), 0);
}

/* RC_SET evaluates the value before the slot: a value expression that
 * moves the array holding the slot stores into the new array. */
static void **g_items;
static void *grow_items_then(void *v) {
    void **bigger = th_must(calloc(64, sizeof *bigger), "array");
    bigger[0] = g_items[0];
    free(g_items);
    g_items = bigger;
    return v;
}

Test(count, rc_set_macro_evaluates_the_value_first) {
    g_items = th_must(calloc(1, sizeof *g_items), "array");
    tnode *v = rc_new(tnode, &tnode_type);
    RC_SET(g_items[0], grow_items_then(v));
    cr_assert_eq(g_items[0], v, "stored into the array before it moved");
    cr_assert_eq(rc_refcount(v), 2);
    rc_release(g_items[0]);
    rc_release(v);
    free(g_items);
    cr_assert_eq(rc_live_objects(), 0);
}

Test(count, rc_auto_releases_at_scope_exit) {
#ifdef RC_HAVE_AUTO
    {
        RC_AUTO tnode *t = rc_new(tnode, &tnode_type);
        cr_assert_eq(rc_live_objects(), 1);
        (void)t;
    }
    cr_assert_eq(rc_live_objects(), 0);
#else
    cr_skip_test("no cleanup attribute");
#endif
}

/* Immortal objects are never freed; tests keep them reachable, as a
 * program keeps its static objects. */
extern void *test_immortals[4];
void *test_immortals[4];

/* Saturation: a count driven past 2^32-1 makes the object immortal. */
Test(count, overflow_saturates_to_immortal) {
    th_reset();
    tnode *n = test_immortals[0] = th_must(rc_new(tnode, &tnode_type), "n");
    rc__header *h = (rc__header *)n - 1;
    h->rc = UINT32_MAX - 3; /* as if 4 billion retains had happened */
    for (int i = 0; i < 10; i++)
        rc_retain(n);
    cr_assert_eq(rc_refcount(n), SIZE_MAX);
    for (int i = 0; i < 100; i++)
        rc_release(n);
    cr_assert_eq(rc_refcount(n), SIZE_MAX, "immortality is sticky");
    rc_collect();
    cr_assert_eq(th_finalized, 0, "immortal objects are never freed");
    cr_assert_eq(rc_live_objects(), 1);
}

/* Immortal objects are never freed, even when released 2^32 times. */
Test(count, immortal_survives_count_drift_to_zero) {
    tnode *n = test_immortals[1] = th_must(rc_new(tnode, &tnode_type), "n");
    rc__header *h = (rc__header *)n - 1;
    h->rc = UINT32_MAX;
    rc_retain(n);
    cr_assert_eq(rc_refcount(n), SIZE_MAX);
    h->rc = 1; /* as if it had drifted down through 3 billion releases */
    rc_release(n);
    cr_assert_eq(rc_refcount(n), SIZE_MAX);
    cr_assert_eq(rc_live_objects(), 1);
}

/* Makes obj immortal with a count of 1, as if its count had saturated and
 * then drifted down through 3 billion releases. */
static void drift_immortal(void *obj) {
    rc__header *h = (rc__header *)obj - 1;
    h->rc = UINT32_MAX;
    rc_retain(obj); /* saturates */
    h->rc = 1;
}

/* Leaves without hooks die on the shortest path (a count and a push on the
 * span's free list) unless something else holds on to them: an immortal
 * one stays, a weakly referenced one clears its weak references first. */
Test(count, hookless_leaves_immortal_weak_and_plain) {
    static const rc_type bare = {"bare", 24, NULL, NULL, 0, NULL};
    /* The thread's first allocation sets its heap up on the slow path; the
     * objects below come from the fast path, which marks them plain. */
    rc_release(th_must(rc_alloc(&bare), "bare"));
    rc_stats s0 = th_stats();

    void *imm = test_immortals[2] = th_must(rc_alloc(&bare), "bare");
    drift_immortal(imm);
    rc_release(imm);
    cr_assert_eq(rc_refcount(imm), SIZE_MAX, "an immortal leaf is not freed");

    void *w_obj = th_must(rc_alloc(&bare), "bare");
    rc_weak *w = th_must(rc_weak_new(w_obj), "weak");
    rc_release(w_obj);
    cr_assert_null(rc_weak_get(w), "the weak reference is cleared at death");
    rc_weak_free(w);

    for (int i = 0; i < 2; i++)
        rc_release(th_must(rc_alloc(&bare), "bare"));

    rc_stats s = th_stats();
    uint64_t each = (s.bytes_allocated - s0.bytes_allocated) / 4;
    cr_assert_geq(each, sizeof(rc__header) + 24);
    cr_assert_eq(s.objects_allocated - s0.objects_allocated, 4);
    cr_assert_eq(s.objects_freed - s0.objects_freed, 3);
    cr_assert_eq(s.bytes_freed - s0.bytes_freed, 3 * each);
    cr_assert_eq(s.objects_live - s0.objects_live, 1, "only the immortal");
}

/* A dying container frees its hookless children on the spot, unless one
 * is shared, immortal or weakly referenced. */
Test(count, container_of_hookless_leaves) {
    static const rc_type bare = {"bare", 24, NULL, NULL, 0, NULL};
    th_reset();
    rc_release(th_must(rc_alloc(&bare), "bare")); /* the heap is set up */
    enum { N = 1000 };
    tvec *v = tvec_new(N);
    for (size_t i = 0; i < N; i++)
        v->items[i] = th_must(rc_alloc(&bare), "bare");
    void *shared = rc_retain(v->items[1]);
    void *imm = test_immortals[3] = v->items[2];
    drift_immortal(imm);
    rc_weak *w = th_must(rc_weak_new(v->items[3]), "weak");
    rc_stats s0 = th_stats();

    rc_release(v);
    rc_stats s = th_stats();
    cr_assert_eq(th_disposed, 1);
    cr_assert_eq(s.objects_freed - s0.objects_freed, 1 + N - 2,
                 "the vector and all its leaves but the shared and the "
                 "immortal one");
    cr_assert_eq(rc_live_objects(), 2);
    cr_assert_null(rc_weak_get(w), "the weak reference is cleared");
    cr_assert_eq(rc_refcount(shared), 1);
    cr_assert_eq(rc_refcount(imm), SIZE_MAX);
    rc_weak_free(w);
    rc_release(shared);
    cr_assert_eq(rc_live_objects(), 1, "only the immortal");
}

/* ------------------------------------------------------------ finalizers */

static tnode *resurrected;
static int fin_calls;
static void resurrect_finalize(void *o) {
    fin_calls++;
    resurrected = rc_retain(o);
}
static const rc_type resurrect_type = {"phoenix", sizeof(tnode), th_tnode_trace,
                                       resurrect_finalize, 0, th_count_dispose};

Test(finalize, resurrection_at_zero_keeps_object_and_children) {
    th_reset();
    tnode *p = rc_alloc(&resurrect_type);
    tnode *kid = rc_new(tnode, &tnode_type);
    p->kid[0] = kid;
    rc_release(p);
    cr_assert_eq(fin_calls, 1);
    cr_assert_eq(resurrected, p);
    cr_assert_eq(rc_refcount(p), 1);
    cr_assert_eq(rc_refcount(kid), 1, "children of a resurrected object live");
    cr_assert_eq(th_disposed, 0);
    rc_release(resurrected); /* dies for good: never finalized twice */
    cr_assert_eq(fin_calls, 1);
    cr_assert_eq(th_disposed, 2, "the phoenix and its child");
    cr_assert_eq(rc_live_objects(), 0);
}

static int made_in_finalizer;
static void allocating_finalize(void *o) {
    (void)o;
    tnode *t = rc_new(tnode, &tnode_type);
    tnode *u = rc_new(tnode, &tnode_type);
    t->kid[0] = u;
    rc_release(t); /* frees both, from inside a death */
    made_in_finalizer++;
    cr_assert_eq(rc_collect(), 0, "no pass from inside a finalizer");
}
static const rc_type alloc_fin_type = {"allocfin", sizeof(tnode), th_tnode_trace,
                                       allocating_finalize, 0, NULL};

Test(finalize, finalizer_may_allocate_and_release) {
    tnode *a = rc_alloc(&alloc_fin_type);
    a->kid[0] = rc_alloc(&alloc_fin_type);
    rc_release(a);
    cr_assert_eq(made_in_finalizer, 2);
    cr_assert_eq(rc_live_objects(), 0);
}

/* ------------------------------------------------------------ deep graphs */

static void *drop_chain(void *arg) {
    size_t n = *(size_t *)arg;
    tnode *head = rc_new(tnode, &tnode_type), *cur = head;
    for (size_t i = 1; i < n; i++) {
        tnode *x = rc_new(tnode, &tnode_type);
        if (!x)
            return NULL;
        cur->kid[0] = x; /* transfer */
        cur = x;
    }
    size_t live = rc_live_objects();
    rc_release(head);
    size_t after = rc_live_objects();
    rc_thread_exit();
    return (void *)(uintptr_t)(live == n && after == 0);
}

Test(deep, chain_of_ten_million_freed_on_256k_stack, .timeout = 300) {
    size_t n = th_scale(10000000);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, &attr, drop_chain, &n), 0);
    void *ok = NULL;
    pthread_join(t, &ok);
    cr_assert(ok, "%zu-node chain not freed", n);
    cr_assert_eq(rc_live_objects(), 0);
}

/* A wide tree and a list through malloc'd child arrays (dispose frees them
 * only after the last trace). */
Test(deep, vector_children_released_before_dispose) {
    th_reset();
    tvec *root = tvec_new(1000);
    for (size_t i = 0; i < 1000; i++)
        root->items[i] = tvec_new(3);
    rc_release(root);
    cr_assert_eq(th_disposed, 1001);
    cr_assert_eq(rc_live_objects(), 0);
}

/* ------------------------------------------------------------ stats */

Test(stats, exact_bytes_for_known_pattern) {
    rc_stats s;
    static const rc_type t40 = {"t40", 40, NULL, NULL, 0, NULL};
    void *a = rc_alloc(&t40);
    void *b = rc_alloc(&t40);
    void *c = rc_alloc_extra(&t40, 24);
    rc_stats_get(&s);
    size_t hdr = sizeof(rc__header);
#if RCGC_DEBUG
    (void)hdr;
#else
    cr_assert_eq(hdr, 16);
    cr_assert_eq(s.bytes_allocated, 2 * (16 + 40) + (16 + 16 + 40 + 24));
    cr_assert_eq(s.bytes_live, s.bytes_allocated);
#endif
    cr_assert_eq(s.objects_allocated, 3);
    cr_assert_eq(s.objects_live, 3);
    cr_assert_eq(s.objects_freed, 0);
    uint64_t m = s.bytes_allocated;
    rc_release(a);
    rc_stats_get(&s);
    cr_assert_eq(s.objects_freed, 1);
    cr_assert_eq(s.bytes_freed, m - s.bytes_live);
    rc_release(b);
    rc_release(c);
    rc_stats_get(&s);
    cr_assert_eq(s.bytes_freed, m);
    cr_assert_eq(s.bytes_live, 0);
    cr_assert_eq(s.bytes_freed_by_collector, 0);
    cr_assert_eq(s.objects_live, 0);
    cr_assert_eq(rc_live_objects(), 0);
}

/* Hookless objects of every pooled size, each from the allocation fast
 * path: their death reads the block size they carry in their header, and
 * R must still match M byte for byte. */
Test(stats, exact_bytes_for_hookless_objects_of_every_size) {
    enum { MAX = 2048 };
    static rc_type types[MAX + 1];
    static const rc_type first = {"first", 8, NULL, NULL, 0, NULL};
    rc_release(th_must(rc_alloc(&first), "first")); /* sets the heap up */
    for (size_t n = 0; n <= MAX; n++) {
        types[n] = (rc_type){"t", n, NULL, NULL, 0, NULL};
        rc_stats s0 = th_stats();
        void *o = th_must(rc_alloc(&types[n]), "object");
        rc_stats s1 = th_stats();
        rc_release(o);
        rc_stats s2 = th_stats();
        cr_assert_geq(s1.bytes_allocated - s0.bytes_allocated,
                      sizeof(rc__header) + n);
        cr_assert_eq(s2.bytes_freed - s1.bytes_freed,
                     s1.bytes_allocated - s0.bytes_allocated,
                     "payload of %zu bytes", n);
        cr_assert_eq(s2.bytes_live, s0.bytes_live, "payload of %zu bytes", n);
        cr_assert_eq(s2.objects_live, s0.objects_live);
    }
}

Test(stats, per_object_overhead_at_most_16_bytes) {
#if RCGC_DEBUG
    cr_skip_test("debug builds add an allocation-site prefix");
#else
    rc_stats s;
    enum { N = 1000 };
    void *keep[N];
    static const rc_type t24 = {"t24", 24, NULL, NULL, 0, NULL};
    for (int i = 0; i < N; i++)
        keep[i] = rc_alloc(&t24);
    rc_stats_get(&s);
    cr_assert_leq((s.bytes_allocated - N * 24) / N, 16);
    for (int i = 0; i < N; i++)
        rc_release(keep[i]);
    cr_assert_eq(rc_live_objects(), 0);
#endif
}

Test(stats, header_is_16_bytes) {
    cr_assert_eq(sizeof(rc__header), 16);
}
