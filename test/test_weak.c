/* test_weak.c: weak references against the contract.
 *
 * A weak reference never keeps its object alive; rc_weak_get() answers a
 * new strong reference while the object lives and NULL from the moment its
 * count reaches zero or it is found in a garbage set, before any finalizer
 * of the object or the set runs; a weak reference a finalizer makes to a
 * dying object is cleared before the memory is reclaimed; rc_weak_free()
 * is valid before and after the object dies, and NULL is accepted
 * everywhere. A resurrected object's old weak references stay cleared.
 *
 * Automatic passes are off: every object dies by a release or by the
 * rc_collect() a test calls. Every test ends with the leak check.
 */
#include <pthread.h>
#include <stdbool.h>

#include <rcgc/check.h>

#include "helpers.h"

static void no_auto_passes(void) {
    rc_set_threshold(0);
    th_reset();
}

TestSuite(weak, .init = no_auto_passes);
TestSuite(weak_finalizers, .init = no_auto_passes);
TestSuite(weak_misuse, .init = no_auto_passes);

/* ------------------------------------------------------------ hook type */

/* "hnode": a tnode whose finalizer counts and then calls on_finalize. */
static void (*on_finalize)(tnode *self);

static void hook_finalize(void *obj) {
    th_finalized++;
    if (on_finalize != NULL)
        on_finalize(obj);
}

static const rc_type hnode_type = {"hnode", sizeof(tnode), th_tnode_trace,
                                   hook_finalize, 0, th_count_dispose};

/* Weak references a test watches, and what finalizers saw through them. */
#define MAXW 16
static rc_weak *g_w[MAXW];
static int g_nw;
static int g_seen_alive;  /* rc_weak_get() answered an object */
static int g_seen_null;   /* rc_weak_get() answered NULL */
static void *g_saved[4];  /* strong references stored by finalizers */
static int g_nsaved;

static rc_weak *watch(void *obj) {
    rc_weak *w = th_must(rc_weak_new(obj), "weak reference");
    g_w[g_nw++] = w;
    return w;
}

static void free_watched(void) {
    for (int i = 0; i < g_nw; i++)
        rc_weak_free(g_w[i]);
    g_nw = 0;
}

/* Looks through every watched weak reference, as a finalizer. */
static void look_through_all(tnode *self) {
    (void)self;
    for (int i = 0; i < g_nw; i++) {
        void *p = rc_weak_get(g_w[i]);
        if (p == NULL) {
            g_seen_null++;
        } else {
            g_seen_alive++;
            rc_release(p);
        }
    }
}

static tnode *hnode(int id) { return th_node_of(&hnode_type, id); }

/* a -> b -> ... -> a along kid[0], built without any external reference
 * left but the returned one; ids 0..n-1. */
static tnode *hring(size_t n) { return th_ring_of(&hnode_type, n); }

static tnode *nth(tnode *n, size_t k) {
    while (k--)
        n = n->kid[0];
    return n;
}

/* ================================================================ basics */

Test(weak, get_returns_a_new_strong_reference) {
    rc_checkpoint cp = rc_check_begin();
    tnode *n = th_node_of(&tnode_type, 7);
    rc_weak *w = th_must(rc_weak_new(n), "weak");
    cr_assert_eq(rc_refcount(n), 1, "a weak reference does not count");
    tnode *got = rc_weak_get(w);
    cr_assert_eq(got, n);
    cr_assert_eq(rc_refcount(n), 2, "rc_weak_get retains");
    cr_assert_eq(got->id, 7);
    rc_release(got);
    cr_assert_eq(rc_refcount(n), 1);
    rc_release(n);
    cr_assert_eq(th_finalized, 1, "the weak reference kept nothing alive");
    cr_assert_null(rc_weak_get(w));
    rc_weak_free(w);
    cr_assert(RC_CHECK_NO_LEAKS(cp));
    TH_ASSERT_NO_LEAKS();
}

Test(weak, null_arguments) {
    cr_assert_null(rc_weak_new(NULL));
    cr_assert_null(rc_weak_get(NULL));
    rc_weak_free(NULL);
    TH_ASSERT_NO_LEAKS();
}

Test(weak, weak_refs_to_every_kind_of_object) {
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    tnode *acyc = th_node_of(&tnode_acyclic_type, 1);
    tflex *flex = tflex_new(5);
    tvec *vec = tvec_new(3);
    void *objs[] = {leaf, acyc, flex, vec};
    rc_weak *w[4];
    for (int i = 0; i < 4; i++)
        w[i] = th_must(rc_weak_new(objs[i]), "weak");
    for (int i = 0; i < 4; i++) {
        void *p = rc_weak_get(w[i]);
        cr_assert_eq(p, objs[i]);
        cr_assert_eq(rc_refcount(p), 2);
        rc_release(p);
    }
    for (int i = 0; i < 4; i++) {
        rc_release(objs[i]);
        cr_assert_null(rc_weak_get(w[i]), "object %d", i);
        for (int j = i + 1; j < 4; j++)
            cr_assert_not_null(w[j] ? rc_weak_get(w[j]) : NULL);
        for (int j = i + 1; j < 4; j++)
            rc_release(objs[j]); /* the gets above */
    }
    for (int i = 0; i < 4; i++)
        rc_weak_free(w[i]);
    TH_ASSERT_NO_LEAKS();
}

/* ========================================================= several, free */

Test(weak, several_weak_refs_to_one_object) {
    tnode *n = th_node_of(&tnode_type, 1);
    rc_weak *w[6];
    for (int i = 0; i < 6; i++)
        w[i] = th_must(rc_weak_new(n), "weak");
    for (int i = 0; i < 6; i++) {
        tnode *p = rc_weak_get(w[i]);
        cr_assert_eq(p, n);
        rc_release(p);
    }
    /* Free the newest, the oldest and one in the middle before the object
     * dies: the others are unaffected. */
    rc_weak_free(w[5]);
    rc_weak_free(w[0]);
    rc_weak_free(w[2]);
    for (int i = 1; i < 5; i += (i == 1 ? 2 : 1)) {
        tnode *p = rc_weak_get(w[i]);
        cr_assert_eq(p, n, "weak %d", i);
        rc_release(p);
    }
    cr_assert_eq(rc_refcount(n), 1);
    rc_release(n);
    cr_assert_eq(th_finalized, 1);
    cr_assert_null(rc_weak_get(w[1]));
    cr_assert_null(rc_weak_get(w[3]));
    cr_assert_null(rc_weak_get(w[4]));
    rc_weak_free(w[4]);
    rc_weak_free(w[1]);
    rc_weak_free(w[3]);
    TH_ASSERT_NO_LEAKS();
}

Test(weak, free_before_death_then_new_weak_ref) {
    tnode *n = th_node_of(&tnode_type, 1);
    rc_weak *a = th_must(rc_weak_new(n), "weak");
    rc_weak_free(a); /* the object has no weak reference left */
    rc_weak *b = th_must(rc_weak_new(n), "weak");
    tnode *p = rc_weak_get(b);
    cr_assert_eq(p, n);
    rc_release(p);
    rc_weak_free(b);
    rc_release(n);
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(th_disposed, 1);
    TH_ASSERT_NO_LEAKS();
}

Test(weak, free_after_death_in_any_order) {
    tnode *a = th_node_of(&tnode_type, 1);
    tnode *b = th_node_of(&tnode_type, 2);
    rc_weak *wa1 = th_must(rc_weak_new(a), "weak");
    rc_weak *wb = th_must(rc_weak_new(b), "weak");
    rc_weak *wa2 = th_must(rc_weak_new(a), "weak");
    rc_release(a);
    cr_assert_null(rc_weak_get(wa1));
    cr_assert_null(rc_weak_get(wa2));
    tnode *p = rc_weak_get(wb);
    cr_assert_eq(p, b, "another object's weak reference is untouched");
    rc_release(p);
    rc_weak_free(wa1);
    rc_release(b);
    rc_weak_free(wb);
    rc_weak_free(wa2);
    TH_ASSERT_NO_LEAKS();
}

Test(weak, many_objects_with_weak_refs) {
    enum { N = 3000 };
    static tnode *objs[N];
    static rc_weak *w[N];
    for (int i = 0; i < N; i++) {
        objs[i] = th_node_of(&tnode_type, i);
        w[i] = th_must(rc_weak_new(objs[i]), "weak");
    }
    for (int i = 0; i < N; i += 2)
        rc_release(objs[i]);
    for (int i = 0; i < N; i++) {
        tnode *p = rc_weak_get(w[i]);
        if (i % 2 == 0) {
            cr_assert_null(p, "weak %d", i);
        } else {
            cr_assert_eq(p, objs[i]);
            cr_assert_eq(p->id, i);
            rc_release(p);
        }
    }
    for (int i = 0; i < N; i += 3)
        rc_weak_free(w[i]);
    for (int i = 1; i < N; i += 2)
        rc_release(objs[i]);
    for (int i = 0; i < N; i++)
        if (i % 3 != 0) {
            cr_assert_null(rc_weak_get(w[i]));
            rc_weak_free(w[i]);
        }
    cr_assert_eq(th_finalized, N);
    TH_ASSERT_NO_LEAKS();
}

/* ================================================ cleared at count zero */

Test(weak_finalizers, cleared_at_count_zero_before_the_finalizer) {
    on_finalize = look_through_all;
    tnode *n = hnode(0);
    watch(n);
    watch(n);
    rc_release(n);
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(g_seen_alive, 0, "the finalizer saw its object through a "
                                  "weak reference");
    cr_assert_eq(g_seen_null, 2);
    cr_assert_null(rc_weak_get(g_w[0]));
    free_watched();
    TH_ASSERT_NO_LEAKS();
}

Test(weak_finalizers, cleared_when_a_release_cascade_reaches_a_child) {
    on_finalize = look_through_all;
    tnode *parent = th_node_of(&tnode_type, 0);
    tnode *child = hnode(1);
    th_link(parent, 0, child);
    watch(child);
    rc_release(child);
    cr_assert_not_null(g_w[0] ? rc_weak_get(g_w[0]) : NULL);
    rc_release(child); /* the get */
    rc_release(parent);
    cr_assert_eq(th_finalized, 2);
    cr_assert_eq(g_seen_alive, 0);
    cr_assert_eq(g_seen_null, 1);
    free_watched();
    TH_ASSERT_NO_LEAKS();
}

Test(weak_finalizers, cleared_for_a_garbage_set_before_any_finalizer) {
    on_finalize = look_through_all;
    tnode *r = hring(4);
    for (size_t i = 0; i < 4; i++)
        watch(nth(r, i));
    tleaf *other = th_must(rc_alloc(&tleaf_type), "leaf");
    rc_weak *wo = th_must(rc_weak_new(other), "weak");
    rc_release(r);
    cr_assert_eq(th_finalized, 0, "counting alone frees no cycle");
    for (int i = 0; i < g_nw; i++) {
        void *p = rc_weak_get(g_w[i]);
        cr_assert_not_null(p, "the ring is not garbage before a pass");
        rc_release(p);
    }
    cr_assert_eq(rc_collect(), 4);
    cr_assert_eq(th_finalized, 4);
    cr_assert_eq(g_seen_alive, 0, "a finalizer saw a set member");
    cr_assert_eq(g_seen_null, 16, "4 finalizers x 4 weak references");
    for (int i = 0; i < g_nw; i++)
        cr_assert_null(rc_weak_get(g_w[i]));
    tleaf *o = rc_weak_get(wo);
    cr_assert_eq(o, other, "an unrelated live object keeps its weak ref");
    rc_release(o);
    free_watched();
    rc_weak_free(wo);
    rc_release(other);
    TH_ASSERT_NO_LEAKS();
}

/* A live structure keeps its weak references across a pass that frees
 * unrelated garbage; the live ring is scanned (its members are candidate
 * roots) and comes out with its counts intact. */
Test(weak, live_ring_keeps_weak_refs_across_a_pass) {
    tnode *live = th_ring(3);
    rc_weak *w = th_must(rc_weak_new(nth(live, 1)), "weak");
    tnode *garbage = th_ring(5);
    rc_weak *wg = th_must(rc_weak_new(nth(garbage, 2)), "weak");
    rc_release(garbage);
    cr_assert_eq(rc_collect(), 5);
    cr_assert_null(rc_weak_get(wg));
    tnode *p = rc_weak_get(w);
    cr_assert_eq(p, nth(live, 1));
    cr_assert_eq(rc_refcount(p), 2);
    rc_release(p);
    rc_release(live);
    cr_assert_eq(rc_collect(), 3);
    cr_assert_null(rc_weak_get(w));
    rc_weak_free(w);
    rc_weak_free(wg);
    TH_ASSERT_NO_LEAKS();
}

/* ================================== weak references made by finalizers */

static void weak_to_self_and_look(tnode *self) {
    rc_weak *w = watch(self);
    tnode *p = rc_weak_get(w);
    if (p == self) /* intact while its finalizer runs */
        g_seen_alive++;
    rc_release(p);
}

Test(weak_finalizers, weak_made_by_finalizer_of_a_dying_object_is_cleared) {
    on_finalize = weak_to_self_and_look;
    tnode *n = hnode(0);
    rc_release(n);
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(th_disposed, 1, "not resurrected by the get/release pair");
    cr_assert_eq(g_nw, 1);
    cr_assert_eq(g_seen_alive, 1);
    cr_assert_null(rc_weak_get(g_w[0]), "a weak reference would dangle");
    free_watched();
    TH_ASSERT_NO_LEAKS();
}

static void weak_to_self_and_next(tnode *self) {
    watch(self);
    watch(self->kid[0]);
}

Test(weak_finalizers, weak_made_by_finalizers_of_a_garbage_set_is_cleared) {
    on_finalize = weak_to_self_and_next;
    tnode *r = hring(3);
    rc_release(r);
    cr_assert_eq(rc_collect(), 3);
    cr_assert_eq(th_finalized, 3);
    cr_assert_eq(th_disposed, 3);
    cr_assert_eq(g_nw, 6);
    for (int i = 0; i < g_nw; i++)
        cr_assert_null(rc_weak_get(g_w[i]), "weak %d dangles", i);
    free_watched();
    TH_ASSERT_NO_LEAKS();
}

static void free_watched_in_finalizer(tnode *self) {
    (void)self;
    for (int i = 0; i < g_nw; i++) {
        void *p = rc_weak_get(g_w[i]);
        if (p == NULL)
            g_seen_null++;
        rc_release(p);
    }
    free_watched();
}

Test(weak_finalizers, finalizer_frees_weak_refs_to_itself_and_others) {
    on_finalize = free_watched_in_finalizer;
    tnode *n = hnode(0);
    tleaf *other = th_must(rc_alloc(&tleaf_type), "leaf");
    watch(n);
    watch(other); /* alive: freed while still attached */
    watch(n);
    rc_release(n);
    cr_assert_eq(g_seen_null, 2, "the two weak refs to the dying object");
    cr_assert_eq(g_nw, 0);
    rc_weak *again = th_must(rc_weak_new(other), "weak");
    tleaf *p = rc_weak_get(again);
    cr_assert_eq(p, other);
    rc_release(p);
    rc_weak_free(again);
    rc_release(other);
    TH_ASSERT_NO_LEAKS();
}

/* ======================================================= resurrection */

static void resurrect_self(tnode *self) { g_saved[g_nsaved++] = rc_retain(self); }

/* The contract clears a weak reference the moment its object's count
 * reaches zero, before the finalizer decides to resurrect it: the old weak
 * reference stays NULL for good; new ones follow the object's new life. */
Test(weak_finalizers, weak_ref_stays_cleared_after_resurrection) {
    on_finalize = resurrect_self;
    tnode *n = hnode(0);
    rc_weak *old = th_must(rc_weak_new(n), "weak");
    rc_release(n);
    cr_assert_eq(g_nsaved, 1, "resurrected");
    cr_assert_eq(th_disposed, 0);
    cr_assert_null(rc_weak_get(old), "cleared before the finalizer ran");
    rc_weak *fresh = th_must(rc_weak_new(g_saved[0]), "weak");
    tnode *p = rc_weak_get(fresh);
    cr_assert_eq(p, g_saved[0]);
    rc_release(p);
    rc_release(g_saved[0]); /* dies for good, not finalized again */
    cr_assert_eq(th_finalized, 1);
    cr_assert_eq(th_disposed, 1);
    cr_assert_null(rc_weak_get(fresh));
    cr_assert_null(rc_weak_get(old));
    rc_weak_free(fresh);
    rc_weak_free(old);
    TH_ASSERT_NO_LEAKS();
}

static tnode *g_resurrector;

static void resurrect_if_chosen(tnode *self) {
    if (self == g_resurrector)
        g_saved[g_nsaved++] = rc_retain(self);
}

Test(weak_finalizers, garbage_set_weak_refs_stay_cleared_after_resurrection) {
    on_finalize = resurrect_if_chosen;
    tnode *r = hring(3);
    g_resurrector = nth(r, 1);
    for (size_t i = 0; i < 3; i++)
        watch(nth(r, i));
    rc_release(r);
    cr_assert_eq(rc_collect(), 0, "member 1 resurrects, and reaches all");
    cr_assert_eq(rc_live_objects(), 3);
    cr_assert_eq(th_finalized, 3);
    for (int i = 0; i < g_nw; i++)
        cr_assert_null(rc_weak_get(g_w[i]), "cleared with the set");
    rc_weak *fresh = th_must(rc_weak_new(g_saved[0]), "weak");
    g_resurrector = NULL;
    rc_release(g_saved[0]);
    cr_assert_not_null(fresh ? rc_weak_get(fresh) : NULL,
                       "the ring is garbage only after a pass");
    rc_release(g_saved[0]);
    cr_assert_eq(rc_collect(), 3);
    cr_assert_eq(th_finalized, 3, "never finalized twice");
    cr_assert_null(rc_weak_get(fresh));
    rc_weak_free(fresh);
    free_watched();
    TH_ASSERT_NO_LEAKS();
}

static void resurrect_and_watch(tnode *self) {
    resurrect_self(self);
    watch(self);
}

Test(weak_finalizers, weak_made_by_a_resurrecting_finalizer_stays_valid) {
    on_finalize = resurrect_and_watch;
    tnode *n = hnode(0);
    rc_release(n);
    cr_assert_eq(g_nw, 1);
    tnode *p = rc_weak_get(g_w[0]);
    cr_assert_eq(p, g_saved[0], "the object lives on: so does the weak ref");
    rc_release(p);
    rc_release(g_saved[0]);
    cr_assert_null(rc_weak_get(g_w[0]));
    free_watched();
    TH_ASSERT_NO_LEAKS();
}

/* ====================================================== immortal, threads */

#define CHILD_CHECK(c)                                                       \
    do {                                                                     \
        if (!(c)) {                                                          \
            fprintf(stderr, "check failed: %s\n", #c);                       \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* In a child process: an immortal object's weak reference never clears
 * (the object is never freed, so it stays live in the leak count). */
static void immortal_child(void *arg) {
    (void)arg;
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    rc_weak *w = th_must(rc_weak_new(leaf), "weak");
    ((rc__header *)leaf - 1)->rc = UINT32_MAX - 2; /* as after 4e9 retains */
    for (int i = 0; i < 3; i++)
        rc_retain(leaf);
    CHILD_CHECK(rc_refcount(leaf) == SIZE_MAX);
    for (int i = 0; i < 10; i++)
        rc_release(leaf);
    rc_collect();
    tleaf *p = rc_weak_get(w);
    CHILD_CHECK(p == leaf);
    CHILD_CHECK(rc_refcount(p) == SIZE_MAX);
    rc_release(p);
    rc_weak_free(w);
    CHILD_CHECK(rc_live_objects() == 1);
    fprintf(stderr, "immortal ok\n");
}

Test(weak, weak_ref_to_an_immortal_object_never_clears) {
    char buf[1024];
    cr_assert_eq(th_capture(immortal_child, NULL, buf, sizeof buf), 0, "%s",
                 buf);
    cr_assert_str_eq(buf, "immortal ok\n");
    TH_ASSERT_NO_LEAKS();
}

/* Leaked on purpose; kept reachable, as a program keeps what outlives its
 * thread's runtime, so memory checkers do not call it lost. */
extern tnode *test_weak_survivor;
tnode *test_weak_survivor;

static void *survivor_thread(void *arg) {
    (void)arg;
    tnode *kept = test_weak_survivor = th_node_of(&tnode_type, 1);
    rc_weak *w = rc_weak_new(kept);
    void *p = rc_weak_get(w);
    bool ok = p == kept;
    rc_release(p);
    rc_thread_exit();
    ok = ok && rc_weak_get(w) == NULL; /* the runtime ended: cleared */
    rc_weak_free(w);
    return ok ? arg : NULL;
}

Test(weak, thread_exit_clears_weak_refs_to_survivors) {
    pthread_t t;
    void *res = NULL;
    static int token;
    cr_assert_eq(pthread_create(&t, NULL, survivor_thread, &token), 0);
    pthread_join(t, &res);
    cr_assert_eq(res, &token);
    TH_ASSERT_NO_LEAKS();
}

/* ================================================================ misuse */

static void weak_to_freed(void *arg) {
    (void)arg;
    tleaf *leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    rc_release(leaf);
    rc_weak_new(leaf);
}

static tleaf *g_foreign;

static void *weak_from_other_thread(void *arg) {
    (void)arg;
    rc_weak_new(g_foreign);
    return NULL;
}

static void weak_to_foreign(void *arg) {
    (void)arg;
    pthread_t t;
    g_foreign = th_must(rc_alloc(&tleaf_type), "leaf");
    if (pthread_create(&t, NULL, weak_from_other_thread, NULL) == 0)
        pthread_join(t, NULL);
}

Test(weak_misuse, weak_to_a_freed_object_aborts_in_debug_builds) {
#if RCGC_DEBUG
    char buf[1024];
    cr_assert_eq(th_capture(weak_to_freed, NULL, buf, sizeof buf), SIGABRT);
    cr_assert_not_null(strstr(buf, "rcgc: rc_weak_new: object already freed"),
                       "%s", buf);
    cr_assert_not_null(strstr(buf, "type 'tleaf'"), "%s", buf);
    cr_assert_not_null(strstr(buf, "test_weak.c:"), "%s", buf);
#else
    (void)weak_to_freed;
#endif
    TH_ASSERT_NO_LEAKS();
}

Test(weak_misuse, weak_from_another_thread_aborts_in_debug_builds) {
#if RCGC_DEBUG
    char buf[1024];
    cr_assert_eq(th_capture(weak_to_foreign, NULL, buf, sizeof buf), SIGABRT);
    cr_assert_not_null(strstr(buf, "rcgc: rc_weak_new: object belongs to "
                                   "another thread"),
                       "%s", buf);
#else
    (void)weak_to_foreign;
#endif
    TH_ASSERT_NO_LEAKS();
}
