/* test_threads.c: every thread has its own runtime. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "helpers.h"

typedef struct job {
    int rings, size;
    size_t freed, live_after, allocated;
} job;

static void *worker(void *arg) {
    job *j = arg;
    for (int r = 0; r < j->rings; r++)
        rc_release(th_ring((size_t)j->size));
    j->freed = rc_collect();
    j->live_after = rc_live_objects();
    rc_stats s;
    rc_stats_get(&s);
    j->allocated = s.objects_allocated;
    rc_thread_exit();
    return NULL;
}

Test(threads, each_thread_collects_its_own_cycles) {
    enum { T = 4 };
    pthread_t t[T];
    job jobs[T];
    tnode *mine = th_ring(10); /* the main thread's, untouched by workers */
    for (int i = 0; i < T; i++) {
        jobs[i] = (job){100 + i, 7 + i, 0, 0, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(t[i], NULL);
        size_t n = (size_t)jobs[i].rings * (size_t)jobs[i].size;
        cr_assert_eq(jobs[i].allocated, n, "stats are per thread");
        cr_assert_eq(jobs[i].freed, n, "thread %d freed %zu of %zu", i,
                     jobs[i].freed, n);
        cr_assert_eq(jobs[i].live_after, 0);
    }
    cr_assert_eq(rc_live_objects(), 10);
    rc_release(mine);
    cr_assert_eq(rc_collect(), 10);
    TH_ASSERT_NO_LEAKS();
}

static void *exit_without_call(void *arg) {
    (void)arg;
    for (int i = 0; i < 100; i++)
        rc_release(th_ring(5));
    return NULL; /* the runtime ends with the thread */
}

Test(threads, thread_end_without_rc_thread_exit) {
    pthread_t t;
    pthread_create(&t, NULL, exit_without_call, NULL);
    pthread_join(t, NULL);
    cr_assert_eq(rc_live_objects(), 0, "the main thread saw none of it");
}

Test(threads, thread_exit_then_reuse) {
    rc_release(th_ring(3));
    rc_thread_exit();
    cr_assert_eq(rc_live_objects(), 0);
    rc_stats s;
    rc_stats_get(&s);
    cr_assert_eq(s.objects_allocated, 0, "state was dropped");
    tnode *n = rc_new(tnode, &tnode_type);
    cr_assert_not_null(n);
    rc_release(n);
    TH_ASSERT_NO_LEAKS();
}

/* Objects alive at rc_thread_exit() turn immortal: they stay readable, and
 * the retains and releases the thread still makes afterwards (when it uses
 * the runtime again, or in destructors at process exit) free nothing and
 * touch no runtime, least of all the thread's new one. */
static tleaf *leaf; /* survivors stay reachable: never freed, not lost */
static tnode *node, *ring;

static void *weak_to_survivor(void *out) {
    *(rc_weak **)out = rc_weak_new(node);
    rc_thread_exit();
    return NULL;
}

Test(threads, survivors_of_rc_thread_exit_turn_immortal) {
    leaf = th_must(rc_alloc(&tleaf_type), "leaf");
    leaf->v = 7;
    node = rc_retain(th_node_of(&tnode_type, 1)); /* count 2 */
    ring = th_ring(3);
    rc_weak *w = th_must(rc_weak_new(node), "weak");
    rc_thread_exit();
    cr_assert_eq(rc_live_objects(), 0, "the state was dropped");
    cr_assert_eq(rc_refcount(leaf), SIZE_MAX);
    cr_assert_eq(rc_refcount(node), SIZE_MAX);
    cr_assert_eq(rc_refcount(ring->kid[0]), SIZE_MAX);
    cr_assert_null(rc_weak_get(w), "weak references to survivors read NULL");
    rc_weak_free(w);
    w = th_must(rc_weak_new(node), "a new weak reference to a survivor");
    cr_assert_eq(rc_weak_get(w), node, "it never clears");
    pthread_t t;
    rc_weak *other = NULL;
    cr_assert_eq(pthread_create(&t, NULL, weak_to_survivor, &other), 0);
    pthread_join(t, NULL);
    cr_assert_not_null(other, "another thread's weak reference to it");
    cr_assert_eq(rc_weak_get(other), node);
    rc_weak_free(other);
    rc_weak *again = th_must(rc_weak_new(node), "a third one, after that");
    rc_weak_free(again);
    rc_weak_free(w);

    rc_release(th_ring(100)); /* the thread's new runtime */
    rc_release(leaf);
    rc_release(node);
    rc_release(node);
    rc_release(rc_retain(ring));
    rc_release(ring);
    cr_assert_eq(rc_collect(), 100, "only the new state's garbage");
    cr_assert_eq(th_finalized, 100, "survivors are never finalized");
    rc_stats s = th_stats();
    cr_assert_eq(s.objects_allocated, 100);
    cr_assert_eq(s.objects_freed, 100);
    cr_assert_eq(leaf->v, 7, "survivors stay valid");
    cr_assert_eq(ring->kid[0]->kid[0]->kid[0], ring);
    TH_ASSERT_NO_LEAKS();
}
