/* rc_internal.h: the runtime's private structures, shared by src/ only.
 *
 * Invariants (outside a pass, on every live object of a thread):
 *   - rc >= 1; a count of 0 means the object is dying or freed;
 *   - F_BUFFERED is set  <=>  roots[slot] == the object (slot saturates at
 *     SLOT_OVERFLOW, where the buffer is searched instead: only a pass's
 *     rebuffering of the whole heap goes that far); without it the slot
 *     bits are zero but for F_PLAIN and the size a plain object keeps;
 *   - the colour is black;
 *   - F_WEAK is set  <=>  the weak side table has an entry for the object;
 *   - F_IMMORTAL is sticky: such an object is never freed.
 */
#ifndef RC_INTERNAL_H
#define RC_INTERNAL_H

#ifndef RCGC_BUILDING
#error "rc_internal.h is private to the rcgc library"
#endif

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rcgc.h"

/* ------------------------------------------------------- link names */

/* Functions shared between the runtime's files are external symbols of the
 * static library as well, where a program's own `mem_alloc` or `obj_kill`
 * would clash with them: they link under the private rc__ prefix. A new
 * shared function gets its line here (the packaging test lists the
 * library's symbols). */
#define dbg_assert_fail      rc__dbg_assert_fail
#define dbg_bad_trace        rc__dbg_bad_trace
#define dbg_die              rc__dbg_die
#define dbg_die_foreign      rc__dbg_die_foreign
#define dbg_quarantine       rc__dbg_quarantine
#define dbg_quarantine_flush rc__dbg_quarantine_flush
#define dbg_quarantine_limit rc__dbg_quarantine_limit
#define gc_buffer            rc__gc_buffer
#define gc_forget_roots      rc__gc_forget_roots
#define gc_maybe_collect     rc__gc_maybe_collect
#define gc_now_ns            rc__gc_now_ns
#define gc_unbuffer          rc__gc_unbuffer
#define mem_alloc            rc__mem_alloc
#define mem_alloc_quick      rc__mem_alloc_quick
#define mem_foreach          rc__mem_foreach
#define mem_fragmented       rc__mem_fragmented
#define mem_free             rc__mem_free
#define mem_free_pooled      rc__mem_free_pooled
#define mem_prefault         rc__mem_prefault
#define mem_release_all      rc__mem_release_all
#define mem_sys_alloc        rc__mem_sys_alloc
#define mem_sys_free         rc__mem_sys_free
#define mem_trim             rc__mem_trim
#define obj_drain            rc__obj_drain
#define obj_kill             rc__obj_kill
#define obj_reclaim          rc__obj_reclaim
#define obj_release_child    rc__obj_release_child
#define rpt_at_thread_exit   rc__rpt_at_thread_exit
#define rpt_init             rc__rpt_init
#define st_create            rc__st_create
#define wk_clear             rc__wk_clear
#define wk_detach_all        rc__wk_detach_all

/* ---------------------------------------------------------------- macros */

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define rc_noinline __attribute__((noinline))
#define rc_cold __attribute__((cold, noinline))
#define rc_noreturn __attribute__((noreturn))
/* An external function that link-time optimisation inlines into callers in
 * other files. GCC wants `inline` with the attribute (the header's plain
 * declaration keeps the definition external, C11 6.7.4p7); clang, which
 * warns about such a definition using static functions, gets neither. */
#if defined(__clang__)
#define rc_lto_inline
#else
#define rc_lto_inline inline __attribute__((always_inline))
#endif

/* Graded checks: rc_assert for API misuse and rc_assert_internal for our
 * own invariants (both on with RCGC_DEBUG); rc_assert_expensive for whole
 * graph or table walks (RCGC_DEBUG and RCGC_STRESS). Release builds compile
 * all three away. */
#if RCGC_DEBUG
#define rc_assert_internal(c) \
    ((c) ? (void)0 : dbg_assert_fail(#c, __FILE__, __LINE__))
#else
#define rc_assert_internal(c) ((void)0)
#endif
#if RCGC_DEBUG && RCGC_STRESS
#define rc_assert_expensive(c) rc_assert_internal(c)
#else
#define rc_assert_expensive(c) ((void)0)
#endif

/* ---------------------------------------------------------- header bits */

/* Bits 0-2 are the ones a dying object keeps in its pending link (see
 * rc_object.c), so they sit where the link's alignment leaves room. */
#define F_ACYCLIC RC__F_ACYCLIC
#define F_FINALIZED 0x02u
#define F_SIZED 0x04u  /* a 16-byte size prefix precedes the block */
#define F_LINKED (F_ACYCLIC | F_FINALIZED | F_SIZED)
#define F_COLOUR 0x18u
#define C_BLACK 0x00u  /* live, or done with in this pass */
#define C_GRAY 0x08u   /* trial-deleted; after the scan: member of the set */
#define C_WHITE 0x10u  /* garbage candidate; or resurrected set member */
#define C_QUEUED 0x18u /* gray, waiting on the scan stack */
#define F_BUFFERED RC__F_BUFFERED
#define F_IMMORTAL RC__F_IMMORTAL
#define F_NOBUFFER RC__F_NOBUFFER
#define F_WEAK 0x80u
#define F_FLAGS 0xffu
#define SLOT_SHIFT 8
/* The root buffer holds at most this many entries (see gc_buffer); a build
 * of the tests lowers it to reach the limit with a few objects. */
#ifdef RCGC_SLOT_LIMIT
#define SLOT_OVERFLOW ((uint32_t)(RCGC_SLOT_LIMIT))
#else
#define SLOT_OVERFLOW 0xffffffu
#endif
/* Bits 8-31 hold the root-buffer slot while F_BUFFERED is set and are zero
 * otherwise, except for this flag, which only objects that are never
 * buffered carry: a leaf in a pooled slot of its own size (no trace,
 * finalize or dispose) from rc_alloc's fast path, whose death is a count
 * and a push on its span's free list (rc__release_zero). Such an object
 * keeps its block's size in the bits above the flag, so that its death
 * reads nothing but its header line: in a program freeing in random
 * order, a load of the type's size waiting on that line's cache miss
 * costs more than the rest of the free. Never set in debug builds. */
#define F_PLAIN 0x100u
#define PLAIN_SIZE_SHIFT 9
#define RC_IMMORTAL_COUNT RC__IMMORTAL_COUNT

static inline rc__header *hdr_of(const void *obj) {
    return (rc__header *)obj - 1;
}
static inline void *payload_of(rc__header *h) { return h + 1; }
static inline unsigned colour_of(const rc__header *h) {
    return h->gc & F_COLOUR;
}
static inline void set_colour(rc__header *h, unsigned c) {
    h->gc = (h->gc & ~F_COLOUR) | c;
}
/* Objects the collector trial-deletes: cyclic and mortal. */
static inline bool gc_participates(const rc__header *h) {
    return !(h->gc & (F_ACYCLIC | F_IMMORTAL));
}
static inline bool type_is_acyclic(const rc_type *t) {
    return t->trace == NULL || (t->flags & RC_TYPE_ACYCLIC);
}
static inline bool type_is_plain(const rc_type *t) {
    return t->trace == NULL && t->finalize == NULL && t->dispose == NULL;
}

/* ------------------------------------------------------- block layout */

/* A block is [size prefix, if F_SIZED][debug prefix, in debug builds]
 * [header][payload]. The size prefix holds the block's exact size for
 * objects whose size the type does not tell (rc_alloc_extra). */
typedef struct obj_sized {
    size_t size;
    size_t reserved;
} obj_sized;

#if RCGC_DEBUG
typedef struct obj_debug {
    const char *file;       /* allocation site */
    int line;
    uint32_t state;         /* DBG_LIVE, DBG_DYING, DBG_FREED */
    struct rc_state *owner; /* the thread's runtime; NULL once it ended
                               with the object alive (immortal then) */
    struct obj_debug *qnext; /* quarantine link */
} obj_debug;
#define DBG_LIVE 0x4c495645u
#define DBG_DYING 0x44594e47u
#define DBG_FREED 0x46524545u
#define DBG_PREFIX sizeof(obj_debug)
static inline obj_debug *dbg_of(rc__header *h) { return (obj_debug *)h - 1; }
#else
#define DBG_PREFIX 0
#endif

enum { MEM_PLAIN = 0, MEM_SIZED = 1, MEM_KINDS = 2 };

static inline size_t block_prefix(unsigned kind) {
    return (kind == MEM_SIZED ? sizeof(obj_sized) : 0) + DBG_PREFIX;
}
static inline rc__header *hdr_of_block(void *block, unsigned kind) {
    return (rc__header *)((char *)block + block_prefix(kind));
}
static inline void *block_of(rc__header *h) {
    return (char *)h - block_prefix((h->gc & F_SIZED) ? MEM_SIZED : MEM_PLAIN);
}
static inline size_t block_size(rc__header *h) {
    if (h->gc & F_SIZED)
        return ((obj_sized *)block_of(h))->size;
    return DBG_PREFIX + sizeof(rc__header) + h->type->size;
}

/* ------------------------------------------------------ memory (rc_mem) */

#define MEM_SPAN_SHIFT 16
#define MEM_SPAN_SIZE ((size_t)1 << MEM_SPAN_SHIFT)
#define MEM_SEGMENT_SPANS 16
#define MEM_SMALL_MAX 2048 /* largest pooled block */
#define MEM_CLASSES 24

typedef struct mem_span mem_span;
typedef struct mem_segment mem_segment;
typedef struct mem_large mem_large;

typedef struct mem_heap {
    mem_span *partial[MEM_KINDS][MEM_CLASSES]; /* spans with a free slot */
    mem_segment *segments;       /* segments with spans in use */
    mem_segment *spare;          /* segments with all spans idle */
    uint64_t excess_since;       /* when spare segments began to exceed
                                    what the heap keeps; 0: they do not */
    mem_large *large;            /* live large blocks */
    uint64_t span_bytes;         /* bytes of spans carved for classes */
    uint64_t free_span_bytes;    /* bytes of spans idle in segments */
    uint64_t large_bytes;        /* bytes of live large blocks */
    uint64_t large_count;
    /* Where the fast paths stop (rc_mem.c: fast_max, quick_end): the
     * heap's own copies of process-wide bounds (lower under Valgrind), so
     * that a fast path compares with them in one instruction. Zero until
     * the heap's first slow allocation (which any block of it comes from)
     * has set its class lists up. */
    size_t fast_max, quick_end;
} mem_heap;

void *mem_sys_alloc(size_t size);
/* Maps in the pages of memory about to be written (see rc_mem.c). */
void mem_prefault(void *p, size_t n);
void mem_sys_free(void *p, size_t size);
void *mem_alloc(mem_heap *mh, size_t size, unsigned kind);
/* The block of a plain object of `payload` bytes (any size_t) from a span
 * with a slot at hand, or NULL: never takes a slow path, so a caller's fast
 * path needs no stack frame. */
void *mem_alloc_quick(mem_heap *mh, size_t payload);
void mem_free(mem_heap *mh, void *block, size_t size);
/* mem_free of a block known to be pooled (from mem_alloc_quick). */
void mem_free_pooled(mem_heap *mh, void *block);
typedef void (*mem_visit_fn)(void *block, unsigned kind, void *ctx);
void mem_foreach(mem_heap *mh, mem_visit_fn fn, void *ctx);
/* F, given the bytes of all the heap's live blocks. */
uint64_t mem_fragmented(const mem_heap *mh, uint64_t live);
void mem_release_all(mem_heap *mh);
/* Gives idle segments beyond what the heap keeps back to the system now. */
void mem_trim(mem_heap *mh);

/* ------------------------------------------------------ weak (rc_weak) */

typedef struct wk_entry wk_entry;
struct rc_state;
void wk_clear(struct rc_state *st, rc__header *h);
void wk_detach_all(struct rc_state *st);

/* ------------------------------------------------------ thread state */

typedef struct rc_state {
    /* first: the heap's address is the state's, which the paths that free
     * have at hand already */
    mem_heap heap;

    /* candidate-root buffer */
    rc__header **roots;
    size_t nroots, roots_cap;
    uint64_t debt_mark;      /* st_allocated at the end of the last pass */
    uint64_t min_debt;       /* allocations a pass must be paid for by */

    /* pass work area: stacks and the garbage set, reserved per pass */
    uintptr_t *work;
    size_t work_cap;

    /* dying objects, linked through their headers (see rc_object.c) */
    rc__header *pending;
    rc__header *finalizing;  /* object whose finalizer runs in drain */
    bool freeing;            /* draining pending: frees are queued */
    bool in_pass;
    bool pass_due;           /* a threshold was reached while busy */
    bool roots_lost;         /* a root went unbuffered: memory was short
                                or the buffer was at SLOT_OVERFLOW */
    size_t pass_finalized;   /* finalizers run by the current pass */

    /* Objects allocated and freed, [0] cyclic, [1] acyclic (index: the
     * F_ACYCLIC bit): a birth or death updates one of them, and the
     * statistics' object counts, which stats leaves at 0, are their sums.
     * One store fewer per object than counting the acyclic ones apart,
     * and frees in random order overlap more of their cache misses the
     * fewer stores each one queues. */
    uint64_t allocated[2], freed[2];
    rc_stats stats;
    wk_entry *weak;          /* uthash table: object -> weak handles */

#if RCGC_DEBUG
    obj_debug *quarantine_head, *quarantine_tail;
    uint64_t quarantine_bytes; /* blocks the quarantine holds */
    uint64_t quarantine_max;   /* and at most this many (RCGC_QUARANTINE) */
#endif
    struct rc_state *next_orphan;
} rc_state;

/* Bytes of the heap's live blocks: the objects not yet freed, and in debug
 * builds the freed ones the quarantine still holds. */
static inline uint64_t st_block_bytes(const rc_state *st) {
    uint64_t n = st->stats.bytes_allocated - st->stats.bytes_freed;
#if RCGC_DEBUG
    n += st->quarantine_bytes;
#endif
    return n;
}

_Static_assert(F_ACYCLIC == 1, "F_ACYCLIC indexes allocated and freed");

static inline uint64_t st_allocated(const rc_state *st) {
    return st->allocated[0] + st->allocated[1];
}
static inline uint64_t st_freed(const rc_state *st) {
    return st->freed[0] + st->freed[1];
}
/* Live objects the collector may visit. */
static inline uint64_t st_live_cyclic(const rc_state *st) {
    return st->allocated[0] - st->freed[0];
}

/* initial-exec: one instruction to reach, also from the shared library. */
extern _Thread_local rc_state *rc_tls_state
    __attribute__((tls_model("initial-exec")));
/* The thread's rc_set_threshold() setting; 0 = automatic passes off. */
extern _Thread_local size_t rc_tls_threshold
    __attribute__((tls_model("initial-exec")));
rc_state *st_create(void);

static inline rc_state *st_get(void) {
    rc_state *st = rc_tls_state;
    return likely(st != NULL) ? st : st_create();
}

/* ---------------------------------------------- objects (rc_object) */

void obj_kill(rc_state *st, rc__header *h);
void obj_drain(rc_state *st);
void obj_release_child(rc_state *st, rc__header *h);
/* Gives a garbage-set member's block back (no release, no hooks, not
 * counted: the collector counts a set at a time); returns its size. */
size_t obj_reclaim(rc_state *st, rc__header *h);

/* ---------------------------------------------- collector (rc_collect) */

void gc_buffer(rc_state *st, rc__header *h);
void gc_unbuffer(rc_state *st, rc__header *h);
void gc_maybe_collect(rc_state *st);
void gc_forget_roots(rc_state *st);
uint64_t gc_now_ns(void);

/* ---------------------------------------------- debug (rc_debug) */

rc_cold rc_noreturn void dbg_die(const char *op, const void *obj,
                                 const char *what);
/* obj's debug prefix holds no state an rcgc object has: it was never
 * allocated by rcgc, or the memory in front of it was overwritten. */
rc_cold rc_noreturn void dbg_die_foreign(const char *op, const void *obj);
rc_cold rc_noreturn void dbg_bad_trace(rc__header *parent, void *child);
rc_cold rc_noreturn void dbg_assert_fail(const char *expr, const char *file,
                                         int line);
#if RCGC_DEBUG
void dbg_quarantine(rc_state *st, rc__header *h, size_t size);
void dbg_quarantine_flush(rc_state *st, uint64_t keep);
uint64_t dbg_quarantine_limit(void);
#endif

/* ---------------------------------------------- reports (rc_report) */

void rpt_at_thread_exit(rc_state *st);
void rpt_init(void);

#endif /* RC_INTERNAL_H */
