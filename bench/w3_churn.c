/* W3 live-graph churn: a doubly-linked list of N nodes, every node on a
 * cycle and none garbage, walked P times with one rc_retain and one
 * rc_release per node per walk (see bench/README.md). In a Bacon-Rajan
 * collector each such release buffers the node as a candidate root, so the
 * question is whether the passes this provokes keep the walk linear in N.
 *
 * Usage: w3_rcgc N P [default|off]
 *   off: rc_set_threshold(0) for the walk only (build and teardown keep the
 *   default policy). */
#include "bench_util.h"

#include <rcgc.h>
#include <string.h>

typedef struct Node {
    struct Node *prev, *next;
} Node;

static void node_trace(void *obj, rc_visit_fn visit, void *ctx) {
    Node *n = obj;
    visit(n->prev, ctx);
    visit(n->next, ctx);
}

static const rc_type node_type = {"Node", sizeof(Node), node_trace, NULL, 0,
                                  NULL};

/* Appends as the peers do: n.prev = tail; tail.next = n; tail = n. */
static void build(size_t n_count, Node **head_out, Node **tail_out) {
    Node *head = bench_check_alloc(rc_new(Node, &node_type), "node");
    Node *tail = rc_retain(head);
    for (size_t i = 1; i < n_count; i++) {
        Node *n = bench_check_alloc(rc_new(Node, &node_type), "node");
        RC_SET(n->prev, tail);
        RC_SET(tail->next, n);
        Node *old = tail;
        tail = n; /* the local reference n moves into tail */
        rc_release(old);
    }
    *head_out = head;
    *tail_out = tail;
}

/* One walk: the cursor is a strong reference, taken and dropped per node. */
static uint64_t walk(Node *head) {
    uint64_t touched = 0;
    Node *n = head;
    while (n != NULL) {
        Node *cur = rc_retain(n);
        n = cur->next;
        touched++;
        rc_release(cur);
    }
    return touched;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s N P [default|off]\n", argv[0]);
        return 2;
    }
    size_t n_count = (size_t)bench_arg_u64(argv[1], "N");
    uint64_t passes = bench_arg_u64(argv[2], "P");
    int off = 0;
    if (argc > 3) {
        if (strcmp(argv[3], "off") == 0)
            off = 1;
        else if (strcmp(argv[3], "default") != 0) {
            fprintf(stderr, "unknown policy '%s'\n", argv[3]);
            return 2;
        }
    }

    rc_stats s0, s1, s2, s3;
    rc_stats_get(&s0);
    uint64_t t0 = bench_now_ns();
    Node *head, *tail;
    build(n_count, &head, &tail);
    uint64_t tb = bench_now_ns();
    rc_stats_get(&s1);

    if (off)
        rc_set_threshold(0);
    uint64_t c1 = bench_cpu_ns();
    uint64_t t1 = bench_now_ns();
    uint64_t touched = 0;
    for (uint64_t p = 0; p < passes; p++)
        touched += walk(head);
    uint64_t t2 = bench_now_ns();
    uint64_t c2 = bench_cpu_ns();
    rc_stats_get(&s2);
    if (off)
        rc_set_threshold(RC_DEFAULT_THRESHOLD);
    size_t live_after_walk = rc_live_objects();

    rc_release(head);
    rc_release(tail);
    size_t freed = rc_collect();
    uint64_t t3 = bench_now_ns();
    rc_stats_get(&s3);

    /* Nothing may die during the walk; everything must die in teardown. */
    int ok = touched == (uint64_t)n_count * passes;
    ok &= live_after_walk == s0.objects_live + n_count;
    ok &= s3.objects_live == s0.objects_live;
    ok &= s2.objects_freed == s1.objects_freed;

    uint64_t walk_ns = t2 - t1;
    printf("RESULT bench=w3 impl=rcgc policy=%s n=%zu p=%llu touches=%llu "
           "build_ms=%.3f walk_ms=%.3f ns_per_touch=%.3f teardown_ms=%.3f "
           "walk_collections=%llu walk_gc_ms=%.3f gc_max_ms=%.3f "
           "walk_roots=%llu build_collections=%llu teardown_freed=%zu "
           "walk_cpu_ms=%.3f cpu_ns_per_touch=%.3f ok=%d\n",
           off ? "off" : "default", n_count, (unsigned long long)passes,
           (unsigned long long)touched, bench_ms(tb - t0), bench_ms(walk_ns),
           (double)walk_ns / (double)touched, bench_ms(t3 - t2),
           (unsigned long long)(s2.collections - s1.collections),
           bench_ms(s2.gc_ns_total - s1.gc_ns_total), bench_ms(s2.gc_ns_max),
           (unsigned long long)(s2.roots_buffered - s1.roots_buffered),
           (unsigned long long)(s1.collections - s0.collections), freed,
           bench_ms(c2 - c1), (double)(c2 - c1) / (double)touched, ok);
    return ok ? 0 : 1;
}
