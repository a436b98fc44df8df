/* rc_collect.c: the candidate-root buffer and the synchronous cycle
 * collector (Bacon & Rajan, "Concurrent Cycle Collection in Reference
 * Counted Systems", ECOOP 2001, section 3).
 *
 * A pass takes the whole buffer and runs, over what the candidates reach:
 *   gc_mark_gray    trial-deletes every internal edge (counts drop by the
 *                   references coming from inside the reached subgraph);
 *   gc_scan         objects whose count stays above zero are externally
 *                   referenced: gc_scan_black restores them and all they
 *                   reach; the rest turn white;
 *   gc_collect_white keeps the objects still white: the garbage set.
 * The set is then freed in two phases (gc_free_set): weak references
 * cleared, every finalizer run with the set intact, resurrected objects and
 * what they reach taken back out, the rest released and reclaimed. When no
 * whitened object has a finalizer or weak references, the set is freed
 * straight from the scan's list (gc_free_white).
 *
 * Invariants: outside a pass every object is black; inside, only objects
 * of the reached subgraph change colour or count. No walk recurses: all use
 * the work array, reserved before the pass at three times the number of
 * objects a pass can visit (each object enters the stack at most twice and
 * the list of whitened objects once), so a pass never fails half-way for
 * want of memory.
 *
 * Automatic passes are paid for by allocation. A pass runs when the buffer
 * holds `threshold` roots *and* the thread has allocated at least half as
 * many objects as the previous pass found alive. A program that walks a large
 * live graph, decrementing counts to non-zero values without allocating (the
 * pathology of the original algorithm, where each pass rescans the graph),
 * triggers no pass; garbage cycles can only grow the heap through
 * allocation, which keeps triggering passes at a cost proportional to it.
 */
#include <time.h>

#include "rc_internal.h"

uint64_t gc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------- root buffer */

static inline void set_slot(rc__header *h, size_t i) {
    uint32_t s = i < SLOT_OVERFLOW ? (uint32_t)i : SLOT_OVERFLOW;
    h->gc = (h->gc & F_FLAGS) | (s << SLOT_SHIFT);
}

/* Grows an array of *cap elements (the first `keep` in use) to at least
 * `need`, doubling. Returns the new array, or NULL with the old one
 * untouched when memory is short. */
static void *array_grow(void *arr, size_t *cap, size_t keep, size_t elem,
                        size_t need) {
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *a = mem_sys_alloc(n * elem);
    if (a == NULL)
        return NULL;
    if (keep)
        memcpy(a, arr, keep * elem);
    mem_sys_free(arr, *cap * elem);
    *cap = n;
    return a;
}

static bool roots_grow(rc_state *st) {
    rc__header **r = array_grow(st->roots, &st->roots_cap, st->nroots,
                                sizeof *r, st->roots_cap + 1);
    if (r != NULL)
        st->roots = r;
    return r != NULL;
}

/* A count dropped to a non-zero value: h may now be the last entry into a
 * garbage cycle. Without memory for the buffer, a pass makes room if
 * automatic passes are on (h, held meanwhile, cannot be freed by it);
 * otherwise the object stays unbuffered, and the next pass takes every
 * object that can be on a cycle as a candidate. The same happens once the
 * buffer holds SLOT_OVERFLOW roots: beyond that, a root leaving the buffer
 * would have to search it. */
void gc_buffer(rc_state *st, rc__header *h) {
    if (unlikely(st->nroots >= SLOT_OVERFLOW)) {
        st->roots_lost = true;
        goto policy;
    }
    if (unlikely(st->nroots == st->roots_cap) && !roots_grow(st)) {
        h->rc++; /* held: the pass cannot free it */
        gc_maybe_collect(st);
        if (--h->rc == 0) { /* it freed what alone referred to h */
            rc__release_zero(h);
            return;
        }
        if (h->gc & F_BUFFERED) /* a release in the pass buffered it */
            return;
        if (st->nroots == st->roots_cap) {
            st->roots_lost = true;
            return;
        }
    }
    set_slot(h, st->nroots);
    h->gc |= F_BUFFERED;
    st->roots[st->nroots++] = h;
    st->stats.roots_buffered++;
policy:
#if RCGC_STRESS
    st->pass_due = true;
    gc_maybe_collect(st);
#else
    if (unlikely(st->nroots >= rc_tls_threshold) && rc_tls_threshold != 0 &&
        st_allocated(st) - st->debt_mark >= st->min_debt)
        gc_maybe_collect(st);
#endif
}

/* O(1): the last root moves into the leaving root's slot. */
void gc_unbuffer(rc_state *st, rc__header *h) {
    size_t i = h->gc >> SLOT_SHIFT;
    if (i == SLOT_OVERFLOW)
        for (i = SLOT_OVERFLOW; st->roots[i] != h; i++) {
        }
    rc__header *last = st->roots[--st->nroots];
    st->roots[i] = last;
    set_slot(last, i);
    h->gc &= F_FLAGS & ~F_BUFFERED;
}

/* A root could not be buffered for want of memory: every live object that
 * can be on a cycle becomes a candidate, found by walking the heap. */
static void rebuffer_block(void *block, unsigned kind, void *ctx) {
    rc_state *st = ctx;
    rc__header *h = hdr_of_block(block, kind);
#if RCGC_DEBUG
    if (dbg_of(h)->state != DBG_LIVE)
        return;
#endif
    if (gc_participates(h) && !(h->gc & F_BUFFERED) && h->rc > 0 &&
        st->nroots < st->roots_cap) {
        set_slot(h, st->nroots);
        h->gc |= F_BUFFERED;
        st->roots[st->nroots++] = h;
    }
}

static void gc_rebuffer_all(rc_state *st) {
    while (st->roots_cap < st_live_cyclic(st))
        if (!roots_grow(st))
            return;
    mem_foreach(&st->heap, rebuffer_block, st);
    st->roots_lost = false;
}

/* The thread's runtime ends: survivors leave the buffer. */
void gc_forget_roots(rc_state *st) {
    for (size_t i = 0; i < st->nroots; i++)
        st->roots[i]->gc &= F_FLAGS & ~F_BUFFERED;
    st->nroots = 0;
}

/* The header of a child the collector trial-deletes, or NULL for a NULL
 * child and for acyclic and immortal ones, which are never touched. */
static inline rc__header *gc_child(void *child) {
    if (child == NULL)
        return NULL;
    rc__header *c = hdr_of(child);
    return gc_participates(c) ? c : NULL;
}

/* ------------------------------------------------------- work stack */

/* The work array holds the walk stack at its bottom, work[0..top), and the
 * objects the scan turned white at its top, work[white..cap). */
typedef struct gc_pass {
    rc_state *st;
    rc__header *cur;  /* object being traced, for misuse messages */
    uintptr_t *work;
    size_t top;
    size_t white;
    size_t visited;
    bool restored;    /* edges out of the set were given back (finalizers) */
    bool leaves;      /* some reached object holds an acyclic or immortal
                         child, which gc_mark_gray does not trial-delete */
    bool hooks;       /* some whitened object has weak references or a
                         finalizer still to run */
    size_t mapped;    /* work[mapped..cap) is known to be mapped in */
} gc_pass;

/* The list of whitened objects grows down into memory a large first pass
 * has never touched: it is mapped in 64 KiB at a time ahead of it. */
#define WHITE_AHEAD 8192u

static rc_noinline void white_map_ahead(gc_pass *p) {
    size_t lo = p->mapped > WHITE_AHEAD ? p->mapped - WHITE_AHEAD : 0;
    mem_prefault(p->work + lo, (p->mapped - lo) * sizeof *p->work);
    p->mapped = lo;
}

static inline void push(gc_pass *p, rc__header *h, uintptr_t tag) {
    rc_assert_internal(p->top < p->white);
    p->work[p->top++] = (uintptr_t)h | tag;
}

static inline void trace(gc_pass *p, rc__header *h, rc_visit_fn fn) {
#if RCGC_DEBUG
    p->cur = h;
#endif
    h->type->trace(payload_of(h), fn, p);
}

/* Makes room for n entries, keeping the first `keep` (between passes the
 * array holds nothing worth copying). */
static bool work_reserve(rc_state *st, size_t n, size_t keep) {
    if (st->work_cap >= n)
        return true;
    uintptr_t *w = array_grow(st->work, &st->work_cap, keep, sizeof *w, n);
    if (w != NULL)
        st->work = w;
    return w != NULL;
}

/* ------------------------------------------------------- mark gray */

#if RCGC_DEBUG
/* Debug builds remember every reached object's count before the pass. */
typedef struct dbg_seen {
    rc__header *h;
    uint32_t rc;
} dbg_seen;
static _Thread_local dbg_seen *seen;
static _Thread_local size_t nseen, seen_cap;
static _Thread_local bool seen_lost;

static void dbg_see(rc__header *h) {
    if (nseen == seen_cap) {
        dbg_seen *s = array_grow(seen, &seen_cap, nseen, sizeof *s, nseen + 1);
        if (s == NULL) {
            seen_lost = true;
            return;
        }
        seen = s;
    }
    seen[nseen++] = (dbg_seen){h, h->rc};
}

static void dbg_edge_from_white(void *child, void *ctx) {
    int delta = *(int *)ctx;
    rc__header *c = gc_child(child);
    if (c != NULL && colour_of(c) == C_BLACK)
        c->rc += (uint32_t)delta;
}

static void dbg_white_edges(int delta) {
    for (size_t i = 0; i < nseen; i++)
        if (colour_of(seen[i].h) == C_WHITE)
            seen[i].h->type->trace(payload_of(seen[i].h), dbg_edge_from_white,
                                   &delta);
}

/* After the scan every reached object is white with a count of zero, or
 * black with its count as before the pass less the edges coming from white
 * objects (the garbage's references, dropped for good). */
static void dbg_check_scan(void) {
    if (!seen_lost)
        dbg_white_edges(+1);
    for (size_t i = 0; !seen_lost && i < nseen; i++) {
        rc__header *h = seen[i].h;
        if (colour_of(h) == C_BLACK ? h->rc != seen[i].rc : h->rc != 0)
            dbg_die("rc_collect", payload_of(h),
                    "count changed across the pass: its type's trace, or the "
                    "trace of an object pointing to it, misses or invents an "
                    "edge");
    }
    if (!seen_lost)
        dbg_white_edges(-1);
    mem_sys_free(seen, seen_cap * sizeof *seen);
    seen = NULL;
    nseen = seen_cap = 0;
    seen_lost = false;
}
#define DBG_SEE(h) dbg_see(h)
#else
#define DBG_SEE(h) ((void)0)
#endif

static void visit_gray(void *child, void *ctx) {
    if (child == NULL)
        return;
    gc_pass *p = ctx;
    rc__header *c = hdr_of(child);
    if (!gc_participates(c)) {
        p->leaves = true; /* a reference the set may have to release */
        return;
    }
    if (unlikely(c->rc == 0)) {
        /* More edges into c than references to it: a trace that reports
         * an edge twice or one it does not own. */
#if RCGC_DEBUG
        dbg_bad_trace(p->cur, child);
#endif
        return;
    }
    if (colour_of(c) != C_GRAY) {
        DBG_SEE(c);
        c->rc--;
        set_colour(c, C_GRAY);
        p->visited++;
        push(p, c, 0);
    } else {
        c->rc--;
    }
}

static void gc_mark_gray(gc_pass *p, rc__header *root) {
    if (colour_of(root) == C_GRAY || !gc_participates(root))
        return; /* immortal since it was buffered: not a candidate now */
    DBG_SEE(root);
    set_colour(root, C_GRAY);
    p->visited++;
    push(p, root, 0);
    while (p->top > 0) {
        rc__header *h = (rc__header *)p->work[--p->top];
        trace(p, h, visit_gray);
    }
}

/* ------------------------------------------------------- scan */

#define TAG_BLACKEN 1u

static void visit_black(void *child, void *ctx) {
    gc_pass *p = ctx;
    rc__header *c = gc_child(child);
    if (c == NULL)
        return;
    c->rc++;
    if (colour_of(c) != C_BLACK) {
        set_colour(c, C_BLACK);
        push(p, c, TAG_BLACKEN);
    }
}

static void visit_scan(void *child, void *ctx) {
    gc_pass *p = ctx;
    rc__header *c = gc_child(child);
    if (c != NULL && colour_of(c) == C_GRAY) {
        set_colour(c, C_QUEUED);
        push(p, c, 0);
    }
}

/* gc_scan and gc_scan_black share one stack: a tagged entry is an object
 * already blackened whose children must be restored. */
static void gc_scan(gc_pass *p, rc__header *root) {
    if (colour_of(root) != C_GRAY || !gc_participates(root))
        return;
    set_colour(root, C_QUEUED);
    push(p, root, 0);
    while (p->top > 0) {
        uintptr_t e = p->work[--p->top];
        rc__header *h = (rc__header *)(e & ~(uintptr_t)TAG_BLACKEN);
        if (e & TAG_BLACKEN) {
            trace(p, h, visit_black);
        } else if (colour_of(h) != C_QUEUED) {
            continue; /* blackened while it waited */
        } else if (h->rc > 0) {
            set_colour(h, C_BLACK); /* gc_scan_black */
            trace(p, h, visit_black);
        } else {
            set_colour(h, C_WHITE); /* once only: white never turns gray */
            if (unlikely(p->white == p->mapped))
                white_map_ahead(p);
            p->work[--p->white] = (uintptr_t)h;
            p->hooks |= (h->gc & F_WEAK) ||
                        (h->type->finalize && !(h->gc & F_FINALIZED));
            trace(p, h, visit_scan);
        }
    }
}

/* ------------------------------------------------------- collect white */

typedef struct gc_set {
    size_t n;       /* members: work[0..n) */
    bool weak;      /* some member has weak references */
    bool finalize;  /* some member has a finalizer still to run */
} gc_set;

/* The objects still white after the scan are the garbage set. The scan
 * listed every object it whitened, once, so the set is that list less what
 * gc_scan_black took back: no further walk of the graph is needed. The set
 * moves to the bottom of the work array; gray now marks membership. */
static gc_set gc_collect_white(gc_pass *p) {
    gc_set s = {0, false, false};
    uintptr_t *w = p->work;
    for (size_t i = p->white; i < p->st->work_cap; i++) {
        rc__header *h = (rc__header *)w[i];
        if (colour_of(h) != C_WHITE)
            continue;
        set_colour(h, C_GRAY);
        s.weak |= (h->gc & F_WEAK) != 0;
        s.finalize |= h->type->finalize != NULL && !(h->gc & F_FINALIZED);
        w[s.n++] = (uintptr_t)h;
    }
    p->white = p->st->work_cap;
    return s;
}

/* ------------------------------------------------------- freeing a set */

static void visit_restore(void *child, void *ctx) {
    (void)ctx;
    rc__header *c = gc_child(child);
    if (c != NULL)
        c->rc++;
}

static void visit_set_dec(void *child, void *ctx) {
    (void)ctx;
    rc__header *c = gc_child(child);
    if (c != NULL && colour_of(c) == C_GRAY)
        c->rc--;
}

/* Resurrected members are white while the set is sorted out. */
static void visit_set_alive(void *child, void *ctx) {
    gc_pass *p = ctx;
    rc__header *c = gc_child(child);
    if (c == NULL)
        return;
    unsigned col = colour_of(c);
    if (col == C_GRAY) {
        c->rc++;
        set_colour(c, C_WHITE);
        push(p, c, 0);
    } else if (col == C_WHITE) {
        c->rc++;
    }
}

/* Set members are gray, resurrected ones white. Edges into members were
 * subtracted for good; edges to anything else are released for real,
 * except (on the fast path) to black objects, whose counts never got them
 * back after gc_mark_gray. */
static void visit_free(void *child, void *ctx) {
    if (child == NULL)
        return;
    gc_pass *p = ctx;
    rc__header *c = hdr_of(child);
    if (gc_participates(c) && (colour_of(c) != C_BLACK || !p->restored))
        return;
    obj_release_child(p->st, c);
}

/* A member of a garbage set that stays alive (resurrected, or kept for
 * want of memory) is an ordinary object again, and a candidate root: what
 * keeps it alive may be a cycle back to it that nothing outside reaches,
 * found by the next pass (rc_collect runs one while finalizers ran). */
static void gc_revive(rc_state *st, rc__header *h) {
    set_colour(h, C_BLACK);
    if (!(h->gc & F_NOBUFFER))
        gc_buffer(st, h);
}

/* Runs the finalizers of the set in `work[0..n)` with every member intact,
 * then finds which members they resurrected. Returns false if it could not
 * tell (no memory): then every member stays alive. */
static bool gc_finalize_set(gc_pass *p, size_t n) {
    rc_state *st = p->st;
    uintptr_t *set = st->work;
    for (size_t i = 0; i < n; i++) /* edges out of the set, as they were */
        trace(p, (rc__header *)set[i], visit_restore);
    p->restored = true;
    for (size_t i = 0; i < n; i++) /* a count of 1 lent to each member */
        ((rc__header *)set[i])->rc++;
    for (size_t i = 0; i < n; i++) {
        rc__header *h = (rc__header *)set[i];
        if (h->type->finalize && !(h->gc & F_FINALIZED)) {
            h->gc |= F_FINALIZED;
            st->pass_finalized++;
            h->type->finalize(payload_of(h));
        }
    }
    /* Finalizers may have grown the work array's needs: the set stays at
     * the bottom, the resurrection stack needs n more slots. */
    if (!work_reserve(st, 2 * n, n)) {
        for (size_t i = 0; i < n; i++) {
            rc__header *h = (rc__header *)set[i];
            h->rc--;
            gc_revive(st, h);
        }
        return false;
    }
    set = p->work = st->work;
    p->white = st->work_cap;
    for (size_t i = 0; i < n; i++)
        ((rc__header *)set[i])->rc--;
    for (size_t i = 0; i < n; i++)
        trace(p, (rc__header *)set[i], visit_set_dec);
    p->top = n;
    for (size_t i = 0; i < n; i++) {
        rc__header *h = (rc__header *)set[i];
        if (h->rc > 0 && colour_of(h) == C_GRAY) {
            set_colour(h, C_WHITE);
            push(p, h, 0);
            while (p->top > n)
                trace(p, (rc__header *)p->work[--p->top], visit_set_alive);
        }
    }
    return true;
}

/* Releases the references held by the members in work[from..to), those
 * of colour `member` (the rest were taken back out of the set). */
static void gc_release_edges(gc_pass *p, size_t from, size_t to,
                             unsigned member) {
    for (size_t i = from; i < to; i++) {
        rc__header *h = (rc__header *)p->work[i];
        if (colour_of(h) == member)
            trace(p, h, visit_free);
    }
}

/* Disposes of and reclaims one member of the garbage set; returns its
 * size (the caller counts it as the collector's). */
static inline size_t gc_reclaim_member(rc_state *st, rc__header *h) {
    if (unlikely(h->gc & (F_BUFFERED | F_WEAK))) { /* user code's doing */
        if (h->gc & F_BUFFERED)
            gc_unbuffer(st, h);
        if (h->gc & F_WEAK)
            wk_clear(st, h);
    }
    if (h->type->dispose)
        h->type->dispose(payload_of(h));
#if RCGC_DEBUG
    dbg_of(h)->state = DBG_DYING;
    h->rc = 0;
    set_colour(h, C_BLACK);
#endif
    return obj_reclaim(st, h);
}

/* Members are cyclic objects, all of them. */
static void gc_count_freed(rc_state *st, size_t n, uint64_t bytes) {
    st->freed[0] += n;
    st->stats.bytes_freed += bytes;
    st->stats.cycles_objects_freed += n;
    st->stats.bytes_freed_by_collector += bytes;
}

/* Frees the garbage set in `work[0..n)`; returns the members freed. */
static size_t gc_free_set(gc_pass *p, const gc_set *s) {
    rc_state *st = p->st;
    size_t n = s->n;
    if (s->weak)
        for (size_t i = 0; i < n; i++) {
            rc__header *h = (rc__header *)p->work[i];
            if (h->gc & F_WEAK)
                wk_clear(st, h);
        }
    p->restored = false;
    if (s->finalize && !gc_finalize_set(p, n))
        return 0;
    uintptr_t *set = p->work;
    /* Every member is traced before any is reclaimed: traces read their
     * children's headers. Without finalizers, edges to other set members
     * and to black objects are already subtracted, so when no reached
     * object holds an acyclic or immortal child there is nothing to do. */
    if (p->leaves || p->restored)
        gc_release_edges(p, 0, n, C_GRAY);
    /* Every survivor is an ordinary object again before any dispose runs:
     * a dispose may release the last reference to one (held by a global a
     * finalizer stored it in), whose header then becomes a pending link. The
     * garbage moves to the front of the set meanwhile. */
    size_t freed = 0;
    for (size_t i = 0; i < n; i++) {
        rc__header *h = (rc__header *)set[i];
        if (colour_of(h) == C_GRAY)
            set[freed++] = (uintptr_t)h;
        else
            gc_revive(st, h);
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < freed; i++)
        bytes += gc_reclaim_member(st, (rc__header *)set[i]);
    gc_count_freed(st, freed, bytes);
    return freed;
}

/* The common case: no whitened object has a finalizer to run or weak
 * references, so no user code runs before the garbage is reclaimed, and
 * the set is freed straight from the list the scan made (white members;
 * entries blackened later are skipped). */
static size_t gc_free_white(gc_pass *p) {
    rc_state *st = p->st;
    uintptr_t *w = p->work;
    size_t end = st->work_cap, freed = 0;
    uint64_t bytes = 0;
    if (p->leaves) /* all traced before any is reclaimed, as above */
        gc_release_edges(p, p->white, end, C_WHITE);
    for (size_t i = p->white; i < end; i++) {
        rc__header *h = (rc__header *)w[i];
        if (colour_of(h) == C_WHITE) {
            bytes += gc_reclaim_member(st, h);
            freed++;
        }
    }
    p->white = end;
    gc_count_freed(st, freed, bytes);
    return freed;
}

/* ------------------------------------------------------- one pass */

/* Runs one pass over the buffered candidates; returns objects freed,
 * counting those its releases freed too. */
static size_t gc_pass_run(rc_state *st) {
    if (unlikely(st->roots_lost))
        gc_rebuffer_all(st);
    size_t ncand = st->nroots;
    if (ncand == 0)
        return 0;
    if (!work_reserve(st, 3 * (size_t)st_live_cyclic(st) + 16, 0))
        return 0;
    uint64_t t0 = gc_now_ns();
    uint64_t freed0 = st_freed(st);
    st->in_pass = true;
    st->freeing = true;

    /* Take the buffer: roots buffered from now on wait for a later pass. */
    rc__header **cand = st->roots;
    size_t cand_cap = st->roots_cap;
    st->roots = NULL;
    st->roots_cap = st->nroots = 0;

    gc_pass p = {.st = st, .work = st->work, .white = st->work_cap,
                 .mapped = st->work_cap};
    for (size_t i = 0; i < ncand; i++) {
        cand[i]->gc &= F_FLAGS & ~F_BUFFERED;
        gc_mark_gray(&p, cand[i]);
    }
    for (size_t i = 0; i < ncand; i++)
        gc_scan(&p, cand[i]);
#if RCGC_DEBUG
    dbg_check_scan();
#endif
    size_t visited = p.visited, garbage;
    if (p.hooks) {
        gc_set s = gc_collect_white(&p);
        garbage = s.n ? gc_free_set(&p, &s) : 0;
    } else {
        garbage = gc_free_white(&p);
    }

    /* Hand the candidate array back as the buffer if nothing replaced it. */
    if (st->roots == NULL) {
        st->roots = cand;
        st->roots_cap = cand_cap;
    } else {
        mem_sys_free(cand, cand_cap * sizeof *cand);
    }
    obj_drain(st); /* frees what releasing the set's edges killed */
    st->in_pass = false;

    size_t survivors = visited > garbage ? visited - garbage : 0;
    st->min_debt = survivors / 2;
    st->debt_mark = st_allocated(st);
    uint64_t dt = gc_now_ns() - t0;
    st->stats.collections++;
    st->stats.gc_ns_total += dt;
    if (dt > st->stats.gc_ns_max)
        st->stats.gc_ns_max = dt;
    /* A pass asked for while this one ran is this one: roots buffered
     * meanwhile ask again when the next one is buffered. */
    st->pass_due = false;
    return (size_t)(st_freed(st) - freed0);
}

/* Runs an automatic pass now, or as soon as the current release cascade
 * is over, unless automatic passes are off by then. */
void gc_maybe_collect(rc_state *st) {
    if (st->in_pass || st->freeing) {
        st->pass_due = true;
        return;
    }
    st->pass_due = false;
    if (rc_tls_threshold != 0 || RCGC_STRESS)
        gc_pass_run(st);
}

size_t rc_collect(void) {
    rc_state *st = rc_tls_state;
    if (st == NULL || st->in_pass || st->freeing)
        return 0;
    uint64_t freed0 = st_freed(st);
    st->pass_due = false;
    /* Until a pass neither frees nor finalizes anything: what finalizers
     * release may be new garbage even when they resurrect their object. */
    for (;;) {
        st->pass_finalized = 0;
        if (gc_pass_run(st) == 0 && st->pass_finalized == 0)
            break;
    }
    mem_trim(&st->heap); /* a quiet moment: idle memory goes back now */
    return (size_t)(st_freed(st) - freed0);
}

/* A setting of the thread, kept across rc_thread_exit(); it makes no state
 * (which would take memory before rc_set_allocator could run). */
void rc_set_threshold(size_t roots) { rc_tls_threshold = roots; }
