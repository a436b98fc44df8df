/* helpers.h: small types, graph builders and a death-capture helper shared by
 * the Criterion test suites. Header-only: everything is `static`, so several
 * test programs can include it; each program gets its own counters.
 *
 * Types (all use the counters below unless said otherwise):
 *   tnode_type          "tnode", four child slots, finalize and dispose count
 *   tnode_acyclic_type  "tnode_acyclic", the same with RC_TYPE_ACYCLIC
 *   tleaf_type          "tleaf", no references, no hooks
 *   tvec_type           "tvec", children in a malloc'd array that dispose frees
 *   tflex_type          "tflex", children in a flexible array (rc_alloc_extra)
 *
 * Builders return the first object as a new strong reference and keep no
 * other external reference: dropping that one reference leaves the whole
 * structure to counting (chains) or to the collector (rings, cliques).
 *
 * Define TH_NO_CRITERION before including this file to use it from a plain C
 * driver; TH_ASSERT_NO_LEAKS is then not available.
 */
#ifndef RCGC_TEST_HELPERS_H
#define RCGC_TEST_HELPERS_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rcgc.h>

#ifndef TH_NO_CRITERION
#include <criterion/criterion.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TH_UNUSED __attribute__((unused))
#else
#define TH_UNUSED
#endif

/* ------------------------------------------------------------- counters */

/* Calls of the counting finalize and dispose hooks in this process. */
static int th_finalized TH_UNUSED;
static int th_disposed TH_UNUSED;

/* The calling thread's counters, by value. */
static TH_UNUSED rc_stats th_stats(void) {
    rc_stats s;
    rc_stats_get(&s);
    return s;
}

static TH_UNUSED void th_reset(void) {
    th_finalized = 0;
    th_disposed = 0;
}

static TH_UNUSED void th_count_finalize(void *obj) {
    (void)obj;
    th_finalized++;
}

static TH_UNUSED void th_count_dispose(void *obj) {
    (void)obj;
    th_disposed++;
}

/* An allocation the tests cannot do without: a failure is a test failure. */
static TH_UNUSED void *th_must(void *obj, const char *what) {
    if (obj == NULL) {
        fprintf(stderr, "helpers.h: allocation of %s failed\n", what);
        abort();
    }
    return obj;
}

/* ---------------------------------------------------------------- tnode */

typedef struct tnode {
    struct tnode *kid[4];
    int id;
} tnode;

static TH_UNUSED void th_tnode_trace(void *obj, rc_visit_fn visit, void *ctx) {
    tnode *n = obj;
    for (int i = 0; i < 4; i++)
        visit(n->kid[i], ctx);
}

static const rc_type tnode_type TH_UNUSED = {
    "tnode", sizeof(tnode), th_tnode_trace, th_count_finalize, 0,
    th_count_dispose};

static const rc_type tnode_acyclic_type TH_UNUSED = {
    "tnode_acyclic", sizeof(tnode), th_tnode_trace, th_count_finalize,
    RC_TYPE_ACYCLIC, th_count_dispose};

/* ---------------------------------------------------------------- tleaf */

typedef struct tleaf {
    int v;
} tleaf;

static const rc_type tleaf_type TH_UNUSED = {
    "tleaf", sizeof(tleaf), NULL, NULL, 0, NULL};

/* ----------------------------------------------------------------- tvec */

typedef struct tvec {
    size_t n;
    void **items;
} tvec;

static TH_UNUSED void th_tvec_trace(void *obj, rc_visit_fn visit, void *ctx) {
    tvec *v = obj;
    for (size_t i = 0; i < v->n; i++)
        visit(v->items[i], ctx);
}

/* Frees the child array and empties the vector, so that a trace running
 * after dispose (a runtime bug) visits nothing and shows up as a leak. */
static TH_UNUSED void th_tvec_dispose(void *obj) {
    tvec *v = obj;
    free(v->items);
    v->items = NULL;
    v->n = 0;
    th_disposed++;
}

static const rc_type tvec_type TH_UNUSED = {
    "tvec", sizeof(tvec), th_tvec_trace, th_count_finalize, 0,
    th_tvec_dispose};

/* A vector of `type` (tvec_type or a type with the tvec layout) with n
 * empty (NULL) slots. */
static TH_UNUSED tvec *th_tvec_of(const rc_type *type, size_t n) {
    tvec *v = th_must(rc_alloc(type), type->name);
    v->items = th_must(calloc(n ? n : 1, sizeof(void *)), "tvec items");
    v->n = n;
    return v;
}

/* A tvec with n empty (NULL) slots. */
static TH_UNUSED tvec *tvec_new(size_t n) { return th_tvec_of(&tvec_type, n); }

/* ---------------------------------------------------------------- tflex */

typedef struct tflex {
    size_t n;
    void *items[];
} tflex;

static TH_UNUSED void th_tflex_trace(void *obj, rc_visit_fn visit, void *ctx) {
    tflex *f = obj;
    for (size_t i = 0; i < f->n; i++)
        visit(f->items[i], ctx);
}

static const rc_type tflex_type TH_UNUSED = {
    "tflex", sizeof(tflex), th_tflex_trace, th_count_finalize, 0,
    th_count_dispose};

/* A flexible object of n empty (NULL) slots. */
static TH_UNUSED tflex *tflex_new(size_t n) {
    tflex *f = th_must(rc_alloc_extra(&tflex_type, n * sizeof(void *)),
                       "tflex");
    f->n = n;
    return f;
}

/* ---------------------------------------------------------------- links */

/* from->kid[slot] = to, retaining `to` and releasing the old child. */
static TH_UNUSED void th_link(tnode *from, int slot, void *to) {
    RC_SET(from->kid[slot], (tnode *)to);
}

/* v->items[i] = to, with the same counting. */
static TH_UNUSED void th_vset(tvec *v, size_t i, void *to) {
    RC_SET(v->items[i], to);
}

/* f->items[i] = to, with the same counting. */
static TH_UNUSED void th_fset(tflex *f, size_t i, void *to) {
    RC_SET(f->items[i], to);
}

/* ------------------------------------------------------------- builders */

static TH_UNUSED tnode *th_node_of(const rc_type *type, int id) {
    tnode *n = th_must(rc_alloc(type), type->name);
    n->id = id;
    return n;
}

/* n >= 1 nodes of `type` with ids 0..n-1, kid[0] of each pointing to the
 * next; the last one points to the first when `close` is set. */
static TH_UNUSED tnode *th_line_of(const rc_type *type, size_t n, int close) {
    tnode *first = th_node_of(type, 0);
    tnode *prev = first;
    for (size_t i = 1; i < n; i++) {
        tnode *cur = th_node_of(type, (int)i);
        th_link(prev, 0, cur);
        if (prev != first)
            rc_release(prev);
        prev = cur;
    }
    if (close)
        th_link(prev, 0, first);
    if (prev != first)
        rc_release(prev);
    return first;
}

/* A ring of n >= 1 nodes of `type`: node i -> node i+1 via kid[0], the last
 * one back to the first (a ring of one is a self-loop). */
static TH_UNUSED tnode *th_ring_of(const rc_type *type, size_t n) {
    return th_line_of(type, n, 1);
}

/* An open chain of n >= 1 nodes of `type` via kid[0]. */
static TH_UNUSED tnode *th_chain_of(const rc_type *type, size_t n) {
    return th_line_of(type, n, 0);
}

static TH_UNUSED tnode *th_ring(size_t n) { return th_ring_of(&tnode_type, n); }

static TH_UNUSED tnode *th_chain(size_t n) {
    return th_chain_of(&tnode_type, n);
}

/* One tnode whose kid[0] is itself (count 2: the caller's and its own). */
static TH_UNUSED tnode *th_self_loop(void) {
    tnode *n = th_node_of(&tnode_type, 0);
    th_link(n, 0, n);
    return n;
}

/* n >= 1 vectors of `type` (tvec layout), each holding every other one in
 * its n-1 items. */
static TH_UNUSED tvec *th_clique_of(const rc_type *type, size_t n) {
    tvec **all = th_must(calloc(n, sizeof *all), "clique table");
    for (size_t i = 0; i < n; i++)
        all[i] = th_tvec_of(type, n - 1);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        for (size_t j = 0; j < n; j++)
            if (j != i)
                th_vset(all[i], k++, all[j]);
    }
    tvec *first = all[0];
    for (size_t i = 1; i < n; i++)
        rc_release(all[i]);
    free(all);
    return first;
}

/* n >= 1 tvec nodes, each holding every other node in its n-1 items. */
static TH_UNUSED tvec *th_clique(size_t n) {
    return th_clique_of(&tvec_type, n);
}

/* ---------------------------------------------------------------- scale */

/* n divided by RCGC_TEST_SCALE (a positive divisor) when it is set, never
 * below 10,000 (nor above n). */
static TH_UNUSED size_t th_scale(size_t n) {
    const char *s = getenv("RCGC_TEST_SCALE");
    unsigned long div = s ? strtoul(s, NULL, 10) : 1;
    if (div <= 1)
        return n;
    size_t m = n / div;
    size_t low = n < 10000 ? n : 10000;
    return m < low ? low : m;
}

/* -------------------------------------------------------- death capture */

/* Runs fn(arg) in a child process whose stderr goes into a pipe, then
 * collects what it wrote into buf (NUL-terminated, truncated to len - 1).
 * Returns the signal that ended the child, 0 if it exited normally (the
 * child exits with 0 once fn returns), -1 if the child could not be run. */
static TH_UNUSED int th_capture(void (*fn)(void *), void *arg, char *buf,
                                size_t len) {
    int fds[2];
    if (len > 0)
        buf[0] = '\0';
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t used = 0;
    for (;;) {
        char tmp[512];
        ssize_t r = read(fds[0], tmp, sizeof tmp);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        /* Keep draining past a full buffer so the child never blocks. */
        size_t room = len > used + 1 ? len - used - 1 : 0;
        size_t take = (size_t)r < room ? (size_t)r : room;
        memcpy(buf + used, tmp, take);
        used += take;
    }
    close(fds[0]);
    if (len > 0)
        buf[used] = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* ---------------------------------------------------------- leak check */

#ifndef TH_NO_CRITERION
/* The last statement of every test: a full pass leaves nothing alive. */
#define TH_ASSERT_NO_LEAKS()                                                 \
    do {                                                                     \
        rc_collect();                                                        \
        cr_assert_eq(rc_live_objects(), 0, "leaked %zu objects",             \
                     rc_live_objects());                                     \
    } while (0)
#endif

#endif /* RCGC_TEST_HELPERS_H */
