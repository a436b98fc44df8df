/* stress_driver.c: a plain program (no test framework) exercising counting,
 * cycles, finalizers, weak references and threads, for Valgrind memcheck and
 * ThreadSanitizer, which cannot look inside Criterion's workers.
 * Usage: stress_driver [threads] [rounds]. Exit status 0 when every check
 * passed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <rcgc.h>

typedef struct node {
    struct node *next, *other;
    void **items;
    size_t nitems;
} node;

static _Thread_local int finalized;

static void node_trace(void *o, rc_visit_fn visit, void *ctx) {
    node *n = o;
    visit(n->next, ctx);
    visit(n->other, ctx);
    for (size_t i = 0; i < n->nitems; i++)
        visit(n->items[i], ctx);
}
static void node_finalize(void *o) { (void)o; finalized++; }
static void node_dispose(void *o) { free(((node *)o)->items); }
static const rc_type node_type = {"node", sizeof(node), node_trace,
                                  node_finalize, 0, node_dispose};

static int failures;
#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "stress-driver: check failed: %s (line %d)\n", #c, \
                    __LINE__);                                                \
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);               \
        }                                                                     \
    } while (0)

static node *ring(size_t n) {
    node *first = rc_new(node, &node_type), *prev = first;
    for (size_t i = 1; i < n; i++) {
        node *x = rc_new(node, &node_type);
        prev->next = x;
        prev = x;
    }
    prev->next = rc_retain(first);
    return first;
}

static void round_of_work(unsigned seed) {
    /* rings hanging off a live spine, some with vector fan-out */
    node *spine = rc_new(node, &node_type);
    for (int r = 0; r < 50; r++) {
        node *g = ring(1 + (seed + (unsigned)r) % 13);
        if (r % 3 == 0) {
            g->nitems = 4;
            g->items = calloc(4, sizeof(void *));
            for (size_t i = 0; i < 4; i++)
                g->items[i] = rc_retain(spine);
        }
        if (r % 5 == 0)
            RC_SET(spine->other, g);
        rc_weak *w = rc_weak_new(g);
        rc_release(g);
        void *again = rc_weak_get(w);
        CHECK(again == NULL || rc_refcount(again) >= 2);
        rc_release(again);
        rc_weak_free(w);
    }
    size_t live = rc_live_objects();
    rc_collect();
    CHECK(rc_live_objects() <= live);
    CHECK(rc_refcount(spine) >= 1);
    rc_weak *ws = rc_weak_new(spine);
    rc_release(spine);
    rc_collect();
    CHECK(rc_weak_get(ws) == NULL);
    rc_weak_free(ws);
    CHECK(rc_live_objects() == 0);
    /* a long chain freed by counting */
    node *head = rc_new(node, &node_type), *cur = head;
    for (int i = 0; i < 20000; i++) {
        cur->next = rc_new(node, &node_type);
        cur = cur->next;
    }
    rc_release(head);
    CHECK(rc_live_objects() == 0);
}

static void *thread_main(void *arg) {
    int rounds = *(int *)arg;
    for (int i = 0; i < rounds; i++)
        round_of_work((unsigned)i * 7919u);
    CHECK(finalized > 0);
    rc_thread_exit();
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 3;
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    pthread_t t[16];
    if (threads < 1 || threads > 16 || rounds < 1) {
        fprintf(stderr, "usage: stress_driver [threads 1-16] [rounds]\n");
        return 2;
    }
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, thread_main, &rounds);
    thread_main(&rounds);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    int total = (threads + 1) * rounds;
    printf("stress-driver: %d passed, %d failed\n", failures ? 0 : total,
           failures);
    return failures ? 1 : 0;
}
