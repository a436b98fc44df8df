/* W1 binary-trees: post-order allocation of complete binary trees, each
 * dropped right after it is counted (see bench/README.md).
 *
 * One source, one implementation per build (BENCH_IMPL_*):
 *   rcgc          the parent takes over its children's references (transfer)
 *   rcgc-set      the parent stores with rc_set and the builder releases its
 *                 temporaries: one candidate root per node, as interpreters do
 *   rcgc-acyclic  transfer, with the node type flagged RC_TYPE_ACYCLIC
 *   malloc, mimalloc  hand-freed recursively
 *   mimalloc-rc   hand-rolled counting on mimalloc with rcgc's block layout:
 *                 a 16-byte header holding the count before each node; a
 *                 drop decrements it and frees the subtree at zero (what an
 *                 rcgc node costs in memory traffic, without the runtime)
 *   slab-rc       the least the API's semantics need, with none of rcgc's
 *                 bookkeeping: rcgc's 16-byte header, zeroed payloads, death
 *                 through the type's trace and a visitor (both called
 *                 through pointers) and a pending list threaded through the
 *                 headers, on a bare LIFO free list of 32-byte blocks. No
 *                 statistics, size classes, span accounting, hooks, weak
 *                 references or threads: what rcgc's own work costs is the
 *                 distance between its row and this one
 *   boehm         never freed; the collector finds the garbage
 *
 * Usage: w1_<impl> [depth]   (default 18) */
#include "bench_util.h"

#include <string.h>

typedef struct Node {
    struct Node *left, *right;
} Node;

/* ---- implementations --------------------------------------------------- */

#if defined(BENCH_IMPL_RCGC) || defined(BENCH_IMPL_RCGC_SET) ||               \
    defined(BENCH_IMPL_RCGC_ACYCLIC)
#include <rcgc.h>
#define BENCH_RCGC 1

static void node_trace(void *obj, rc_visit_fn visit, void *ctx) {
    Node *n = obj;
    visit(n->left, ctx);
    visit(n->right, ctx);
}

#if defined(BENCH_IMPL_RCGC_ACYCLIC)
#define IMPL_NAME "rcgc-acyclic"
static const rc_type node_type = {"Node", sizeof(Node), node_trace, NULL,
                                  RC_TYPE_ACYCLIC, NULL};
#else
#define IMPL_NAME (BENCH_SET_ROW ? "rcgc-set" : "rcgc")
static const rc_type node_type = {"Node", sizeof(Node), node_trace, NULL, 0,
                                  NULL};
#endif

#if defined(BENCH_IMPL_RCGC_SET)
#define BENCH_SET_ROW 1
#else
#define BENCH_SET_ROW 0
#endif

static Node *new_node(Node *l, Node *r) {
    Node *p = bench_check_alloc(rc_new(Node, &node_type), "node");
#if BENCH_SET_ROW
    /* Store new references, then drop the builder's: each child's count goes
     * 2 -> 1, a decrement to non-zero that buffers it as a candidate root. */
    rc_set((void **)&p->left, l);
    rc_set((void **)&p->right, r);
    rc_release(l);
    rc_release(r);
#else
    p->left = l; /* transfer: the builder's references become the parent's */
    p->right = r;
#endif
    return p;
}

static void drop_tree(Node *t) { rc_release(t); }

#elif defined(BENCH_IMPL_MALLOC) || defined(BENCH_IMPL_MIMALLOC)
#if defined(BENCH_IMPL_MALLOC)
#define IMPL_NAME "malloc"
#define BENCH_MALLOC malloc
#define BENCH_FREE free
#else
#include <mimalloc.h>
#define IMPL_NAME "mimalloc"
#define BENCH_MALLOC mi_malloc
#define BENCH_FREE mi_free
#endif

static Node *new_node(Node *l, Node *r) {
    Node *p = bench_check_alloc(BENCH_MALLOC(sizeof(Node)), "node");
    p->left = l;
    p->right = r;
    return p;
}

static void drop_tree(Node *t) {
    if (t->left != NULL) {
        drop_tree(t->left);
        drop_tree(t->right);
    }
    BENCH_FREE(t);
}

#elif defined(BENCH_IMPL_MIMALLOC_RC)
#define IMPL_NAME "mimalloc-rc"

static Node *new_node(Node *l, Node *r) {
    Node *p = bench_check_alloc(bench_rc_new(sizeof(Node)), "node");
    p->left = l; /* transfer, as in the rcgc row */
    p->right = r;
    return p;
}

static void drop_tree(Node *t) {
    if (!bench_rc_drop(t))
        return;
    if (t->left != NULL) {
        drop_tree(t->left);
        drop_tree(t->right);
    }
    bench_rc_free(t);
}

#elif defined(BENCH_IMPL_SLAB_RC)
#define IMPL_NAME "slab-rc"

typedef void (*slab_visit_fn)(void *child, void *ctx);
typedef struct slab_type {
    size_t size;
    void (*trace)(void *obj, slab_visit_fn visit, void *ctx);
} slab_type;
typedef struct slab_header {
    uint32_t rc, flags; /* the pending link overlays both when dying */
    const slab_type *type;
} slab_header;

enum { SLAB_BLOCK = 32, SLAB_CHUNK = 1 << 20, SLAB_NOBUFFER = 0x61 };
static char *slab_bump, *slab_end;
static void *slab_free_list;
static slab_header *slab_pending;
static uint64_t slab_buffered; /* decrements to non-zero: none in W1 */

/* Chunks are never given back: the program ends after the last tree. */
static void *slab_block(void) {
    void *b = slab_free_list;
    if (b != NULL) {
        memcpy(&slab_free_list, b, sizeof b);
        return b;
    }
    if (slab_bump == slab_end) {
        slab_bump = bench_check_alloc(aligned_alloc(16, SLAB_CHUNK), "chunk");
        slab_end = slab_bump + SLAB_CHUNK;
    }
    b = slab_bump;
    slab_bump += SLAB_BLOCK;
    return b;
}

/* Out of line, as mi_malloc and rcgc's allocation entries are; the payload
 * is zeroed inline, as rcgc's header does for a static const type, where
 * the compiler drops the zeroing the caller's stores overwrite. */
static __attribute__((noinline)) void *slab_block_of(const slab_type *t) {
    slab_header *h = slab_block();
    h->rc = 1;
    h->flags = 0;
    h->type = t;
    return h + 1;
}

static inline void *slab_alloc(const slab_type *t) {
    return memset(slab_block_of(t), 0, t->size);
}

static void slab_push(slab_header *h) {
    memcpy(h, &slab_pending, sizeof(void *));
    slab_pending = h;
}

static void slab_visit(void *child, void *ctx) {
    (void)ctx;
    if (child == NULL)
        return;
    slab_header *h = (slab_header *)child - 1;
    if (--h->rc == 0)
        slab_push(h);
    else if (!(h->flags & SLAB_NOBUFFER))
        slab_buffered++;
}

static __attribute__((noinline)) void slab_drain(void) {
    slab_header *h;
    while ((h = slab_pending) != NULL) {
        memcpy(&slab_pending, h, sizeof(void *));
        const slab_type *t = h->type;
        if (t->trace != NULL)
            t->trace(h + 1, slab_visit, NULL);
        memcpy(h, &slab_free_list, sizeof slab_free_list);
        slab_free_list = h;
    }
}

static void slab_trace(void *obj, slab_visit_fn visit, void *ctx) {
    Node *n = obj;
    visit(n->left, ctx);
    visit(n->right, ctx);
}

static const slab_type slab_node_type = {sizeof(Node), slab_trace};

static Node *new_node(Node *l, Node *r) {
    Node *p = slab_alloc(&slab_node_type);
    p->left = l; /* transfer, as in the rcgc row */
    p->right = r;
    return p;
}

static void drop_tree(Node *t) {
    slab_header *h = (slab_header *)t - 1;
    if (--h->rc == 0) {
        slab_push(h);
        slab_drain();
    } else if (!(h->flags & SLAB_NOBUFFER)) {
        slab_buffered++;
    }
}

#elif defined(BENCH_IMPL_BOEHM)
#include <gc.h>
#define IMPL_NAME "boehm"

static Node *new_node(Node *l, Node *r) {
    Node *p = bench_check_alloc(GC_MALLOC(sizeof(Node)), "node");
    p->left = l;
    p->right = r;
    return p;
}

static void drop_tree(Node *t) { (void)t; }

#else
#error "define one BENCH_IMPL_*"
#endif

/* ---- the workload ------------------------------------------------------- */

static Node *bottom_up(int d) {
    if (d > 0) {
        Node *l = bottom_up(d - 1);
        Node *r = bottom_up(d - 1);
        return new_node(l, r);
    }
    return new_node(NULL, NULL);
}

static uint64_t check(const Node *n) {
    return 1 + (n->left != NULL ? check(n->left) + check(n->right) : 0);
}

static uint64_t full_tree(int d) { return (UINT64_C(1) << (d + 1)) - 1; }

int main(int argc, char **argv) {
    int n = argc > 1 ? (int)bench_arg_u64(argv[1], "depth") : 18;
    if (n > 30) {
        fprintf(stderr, "depth %d too large\n", n);
        return 2;
    }
#if defined(BENCH_IMPL_BOEHM)
    GC_INIT();
#endif
#if BENCH_RCGC
    size_t live_before = rc_live_objects();
#endif
    const int min_depth = 4;
    const int max_depth = n > min_depth + 2 ? n : min_depth + 2;
    int ok = 1;
    uint64_t nodes = 0;

    uint64_t c0 = bench_cpu_ns();
    uint64_t t0 = bench_now_ns();

    Node *t = bottom_up(max_depth + 1);
    uint64_t c = check(t);
    printf("stretch tree of depth %d\t check: %llu\n", max_depth + 1,
           (unsigned long long)c);
    ok &= c == full_tree(max_depth + 1);
    nodes += c;
    drop_tree(t);

    Node *long_lived = bottom_up(max_depth);

    for (int d = min_depth; d <= max_depth; d += 2) {
        uint64_t iters = UINT64_C(1) << (max_depth - d + min_depth);
        uint64_t chk = 0;
        for (uint64_t i = 0; i < iters; i++) {
            Node *tree = bottom_up(d);
            chk += check(tree);
            drop_tree(tree);
        }
        printf("%llu\t trees of depth %d\t check: %llu\n",
               (unsigned long long)iters, d, (unsigned long long)chk);
        ok &= chk == iters * full_tree(d);
        nodes += chk;
    }

    c = check(long_lived);
    printf("long lived tree of depth %d\t check: %llu\n", max_depth,
           (unsigned long long)c);
    ok &= c == full_tree(max_depth);
    nodes += c;
    drop_tree(long_lived);

    uint64_t elapsed = bench_now_ns() - t0;
    uint64_t cpu = bench_cpu_ns() - c0;

    printf("RESULT bench=w1 impl=%s depth=%d nodes=%llu ms=%.3f "
           "ns_per_node=%.3f cpu_ms=%.3f cpu_ns_per_node=%.3f",
           IMPL_NAME, n, (unsigned long long)nodes, bench_ms(elapsed),
           (double)elapsed / (double)nodes, bench_ms(cpu),
           (double)cpu / (double)nodes);
#if BENCH_RCGC
    /* Trees are acyclic: counting alone must have freed every node. */
    size_t left_over = rc_live_objects() - live_before;
    rc_stats st;
    rc_stats_get(&st);
    ok &= left_over == 0;
    printf(" live_after=%zu collections=%llu roots_buffered=%llu gc_ms=%.3f",
           left_over, (unsigned long long)st.collections,
           (unsigned long long)st.roots_buffered, bench_ms(st.gc_ns_total));
#endif
    printf(" ok=%d\n", ok);
    return ok ? 0 : 1;
}
