/**
 * @file rcgc.h
 * @brief rcgc: reference-counted objects for C, with a cycle collector.
 *
 * Objects are allocated by the runtime and carry a 16-byte header placed
 * before the payload; programs hold plain payload pointers (`Node *`).
 * Counting frees an object the moment its count reaches zero. Garbage cycles,
 * which counting alone cannot free, are reclaimed by a synchronous
 * trial-deletion pass (Bacon & Rajan, 2001) over the objects whose count was
 * last decremented to a non-zero value ("candidate roots").
 *
 * Every thread has its own runtime: an object is retained and released only on
 * the thread that allocated it.
 *
 * This header is the whole public API but for `<rcgc/check.h>`, leak checks
 * for a program's own tests. Names starting with `rc__` / `RC__`
 * are private: they are visible only because the inline fast paths need them,
 * and may change in any release.
 */
#ifndef RCGC_H
#define RCGC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rcgc/config.h"

#ifdef __cplusplus
extern "C" {
#endif

#if (defined(__GNUC__) || defined(__clang__)) && RCGC_SHARED
#define RCGC_API __attribute__((visibility("default")))
#else
#define RCGC_API
#endif

/* Casts in macros and inline functions: C++ builds with -Wold-style-cast
 * include this header too. */
#ifdef __cplusplus
#define RC__CAST(T, x) static_cast<T>(x)
#else
#define RC__CAST(T, x) ((T)(x))
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RC__LIKELY(x) __builtin_expect(!!(x), 1)
#define RC__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define RC__LIKELY(x) (x)
#define RC__UNLIKELY(x) (x)
#endif

/* ------------------------------------------------------------------------ */
/** @name Types                                                              */
/* ------------------------------------------------------------------------ */

/**
 * Callback handed to a type's `trace` function.
 * @param child a strong reference held by the traced object; NULL is ignored.
 * @param ctx   the context the runtime passed to `trace`; pass it on unchanged.
 */
typedef void (*rc_visit_fn)(void *child, void *ctx);

/** Type flag: instances can never be on a cycle; they are never buffered as
 *  candidate roots nor scanned by the collector. */
#define RC_TYPE_ACYCLIC 1u

/**
 * A type descriptor. It must outlive every object of the type (normally it is
 * a `static const` object).
 */
typedef struct rc_type {
    /** Shown in stats, leak reports, graph dumps and misuse messages. */
    const char *name;
    /** Payload bytes for rc_alloc(). */
    size_t size;
    /** Calls `visit(child, ctx)` once for every strong rc reference `obj`
     *  holds. The single source of truth about edges: the runtime uses it to
     *  release children when `obj` dies and to walk graphs when collecting.
     *  NULL means the type holds no references (and is acyclic). */
    void (*trace)(void *obj, rc_visit_fn visit, void *ctx);
    /** Optional. Runs once, while `obj` and everything it references are
     *  intact. It may allocate, retain, release other objects and resurrect
     *  `obj` by storing a new strong reference to it. It must NOT release
     *  traced children: the runtime does that. */
    void (*finalize)(void *obj);
    /** #RC_TYPE_ACYCLIC or 0. */
    unsigned flags;
    /** Optional. Frees non-rc storage (such as a malloc'd array of child
     *  pointers) right before the memory is reclaimed, once the runtime no
     *  longer needs `trace`. Must not touch rc children. */
    void (*dispose)(void *obj);
} rc_type;

/* ------------------------------------------------------------------------ */
/** @name Allocation and counting                                           */
/* ------------------------------------------------------------------------ */

/**
 * Allocates a zeroed object of `type->size` payload bytes with count 1.
 * The payload is aligned to `alignof(max_align_t)`. With GCC or Clang in a
 * release build, a call whose descriptor the compiler can read (a `static
 * const` one) is cheaper: the object's kind is settled at compile time and
 * the payload is zeroed inline, where the compiler drops the zeroing of
 * fields the caller sets right away.
 * @return a new strong reference, or NULL on allocation failure, a NULL type
 *         or a size over PTRDIFF_MAX (nothing else changes then; such a
 *         size never reaches the system allocator).
 */
RCGC_API void *rc_alloc(const rc_type *type);

/**
 * Like rc_alloc() with `type->size + extra` payload bytes (for flexible array
 * members). NULL also when the size cannot be represented or, with the
 * header, exceeds PTRDIFF_MAX.
 */
RCGC_API void *rc_alloc_extra(const rc_type *type, size_t extra);

/** Typed allocation: `Node *n = rc_new(Node, &node_type);` */
#define rc_new(T, type) RC__CAST(T *, rc_alloc(type))

/** Count + 1. Returns `obj`; NULL-safe. Inline in release builds. */
static inline void *rc_retain(void *obj);

/** Count - 1; at zero the object is finalized, its children released, then
 *  disposed and reclaimed. NULL-safe. Inline fast path. */
static inline void rc_release(void *obj);

/** The count of `obj` (SIZE_MAX for an immortal object), or 0 for NULL. */
RCGC_API size_t rc_refcount(const void *obj);

/** The type `obj` was allocated with, or NULL for NULL. */
RCGC_API const rc_type *rc_type_of(const void *obj);

/**
 * Retains `value`, stores it in `*slot`, then releases the old `*slot`. The
 * store comes first, so a finalizer run by that release never sees a
 * dangling slot.
 */
RCGC_API void rc_set(void **slot, void *value);

/** Out-of-line rc_retain(), for FFI and function pointers. */
RCGC_API void *rc_retain_fn(void *obj);
/** Out-of-line rc_release(), for FFI and function pointers. */
RCGC_API void rc_release_fn(void *obj);

#if defined(__GNUC__) || defined(__clang__)
/** rc_set() for a typed pointer field: `RC_SET(node->next, other);`.
 *  `value` is evaluated first, then `lvalue`, once (it must be addressable:
 *  not a `register` variable). */
#define RC_SET(lvalue, value)                                                \
    do {                                                                     \
        __typeof__(lvalue) rc__new_ = (value); /* may move the slot */      \
        __typeof__(lvalue) *rc__slot_ = &(lvalue); /* evaluated once */      \
        __typeof__(lvalue) rc__old_ = *rc__slot_;                            \
        *rc__slot_ = RC__CAST(__typeof__(lvalue), rc_retain(rc__new_));     \
        rc_release(rc__old_);                                                \
    } while (0)
#endif

#if defined(__has_attribute)
#if __has_attribute(cleanup)
/** 1 where #RC_AUTO is available. */
#define RC_HAVE_AUTO 1
/** Declaration attribute: releases the pointer when it goes out of scope.
 *  `RC_AUTO Node *tmp = rc_new(Node, &node_type);` */
#define RC_AUTO __attribute__((cleanup(rc__auto_release)))
#endif
#endif

/* ------------------------------------------------------------------------ */
/** @name Cycle collection                                                  */
/* ------------------------------------------------------------------------ */

/**
 * Runs a full collection now: passes over the buffered candidate roots until
 * no garbage is left. Every object unreachable from outside is freed, and
 * the thread's idle memory beyond what its heap keeps for reuse (as many
 * idle bytes as bytes in use, and in any case up to two 1 MiB segments'
 * worth) goes back to the system at once.
 * A pass first reserves its work array (three words per object that can
 * be on a cycle); when that memory cannot be had, it frees nothing and the
 * candidates stay buffered for the next call.
 * @return the number of objects freed by the call; 0 when called from inside
 *         a finalizer, trace or dispose function (it then does nothing), or
 *         when the work array could not be had.
 */
RCGC_API size_t rc_collect(void);

/**
 * Sets, for the calling thread (also across rc_thread_exit()), the number of
 * buffered candidate roots that triggers an automatic pass; 0 turns
 * automatic passes off. A pass also waits until the thread has allocated at
 * least half as many objects as the previous pass found alive, so that
 * passes over a large live graph cost in proportion to the work the program
 * does.
 */
RCGC_API void rc_set_threshold(size_t roots);

/** The default base threshold. */
#define RC_DEFAULT_THRESHOLD 10000

/* ------------------------------------------------------------------------ */
/** @name Weak references                                                   */
/* ------------------------------------------------------------------------ */

typedef struct rc_weak rc_weak;

/** A weak reference to `obj` that does not keep it alive; NULL on allocation
 *  failure or for NULL. Free it with rc_weak_free(). */
RCGC_API rc_weak *rc_weak_new(void *obj);

/** A new strong reference to the object, or NULL once it is gone (its count
 *  reached zero, or it was found in a garbage cycle). */
RCGC_API void *rc_weak_get(rc_weak *w);

/** Frees the weak reference; valid before or after the object dies.
 *  NULL-safe. */
RCGC_API void rc_weak_free(rc_weak *w);

/* ------------------------------------------------------------------------ */
/** @name Introspection                                                     */
/* ------------------------------------------------------------------------ */

/** Counters of the calling thread's runtime. Byte figures count whole
 *  blocks: header and payload, plus the 16-byte size prefix of objects
 *  from rc_alloc_extra() with `extra > 0` and, in debug builds, the
 *  allocation record. */
typedef struct rc_stats {
    uint64_t objects_allocated, objects_freed, objects_live;
    uint64_t bytes_allocated;   /**< M: every payload+header byte handed out */
    uint64_t bytes_freed;       /**< R: reclaimed, counting and collector */
    uint64_t bytes_freed_by_collector; /**< part of R: garbage-set members
                                    freed by passes (what only they held dies
                                    by counting, and counts in R alone) */
    uint64_t bytes_live;        /**< L at exit: M - R */
    uint64_t bytes_fragmented;  /**< F: held from the system, unusable now */
    uint64_t collections;       /**< passes run */
    uint64_t cycles_objects_freed; /**< objects of garbage sets freed */
    uint64_t roots_buffered;    /**< candidate roots ever buffered */
    uint64_t gc_ns_total, gc_ns_max; /**< time in passes; longest pass */
} rc_stats;

/** Fills `*out` with the calling thread's counters. */
RCGC_API void rc_stats_get(rc_stats *out);

/** Objects of the calling thread not freed yet. */
RCGC_API size_t rc_live_objects(void);

/**
 * Prints the calling thread's live objects grouped by type (count, bytes),
 * and in debug builds by allocation site, largest first. Called from a
 * finalizer, trace or dispose function (while objects are dying, and their
 * headers are in use), it prints the count only.
 * @return the number of live objects.
 */
RCGC_API size_t rc_leak_report(FILE *out);

/**
 * Writes the live object graph of the calling thread as Graphviz DOT: one
 * node per object (type, address, count), one edge per traced reference;
 * buffered candidate roots and immortal objects are marked. Called from a
 * finalizer, trace or dispose function, it writes an empty graph.
 * @return 0, or -1 on a write or allocation error, or when called from a
 *         finalizer, trace or dispose function.
 */
RCGC_API int rc_dump_dot(FILE *out);

/* ------------------------------------------------------------------------ */
/** @name Embedding                                                         */
/* ------------------------------------------------------------------------ */

/** Where the runtime takes memory from. */
typedef struct rc_allocator {
    void *(*alloc)(size_t size, void *ud);           /**< NULL on failure */
    void (*free)(void *ptr, size_t size, void *ud);  /**< size as allocated */
    void *ud;
} rc_allocator;

/**
 * Routes all the runtime's memory (object spans, large objects, side tables,
 * root buffers, thread states) through `a`, which every thread calls, so it
 * must be thread-safe. Process-wide; valid only before the runtime takes any
 * memory, which its first allocation (rc_alloc(), rc_alloc_extra()) on any
 * thread does. NULL restores the C library's malloc/free (also only
 * before).
 * @return 0, or -1 when the runtime already took memory, or `a` lacks a
 *         function.
 */
RCGC_API int rc_set_allocator(const rc_allocator *a);

/** Runs a final pass for the calling thread, then drops its runtime state.
 *  Objects still alive afterwards stay valid for good: they turn immortal
 *  (rc_refcount() gives SIZE_MAX; retains and releases change nothing that
 *  matters), and they are reported as leaks when `RCGC_LEAK_REPORT` is
 *  set. The weak references made to them so far read NULL from then on;
 *  new ones, like any to an object that is immortal when it is made, never
 *  clear, and any thread may make them. Also runs when a thread other than
 *  the main one ends, and for the main thread at exit when
 *  `RCGC_LEAK_REPORT` is set. The thread may use the runtime again
 *  afterwards: it then gets a fresh state. */
RCGC_API void rc_thread_exit(void);

/* ------------------------------------------------------------------------ */
/* Private: object header and inline fast paths. May change in any release. */
/* ------------------------------------------------------------------------ */

/* The header stands right before the payload (16 bytes on 64-bit):
 *   rc   strong count; wraps into the immortal state, never to 0 by overflow
 *   gc   bits 0-7 flags and colour (RC__F_*), bits 8-31 root-buffer slot
 *        (of a buffered object; otherwise zero, but for a flag of the
 *        runtime's in bit 8 and, with it, the block size in bits 9-31)
 *   type the descriptor */
typedef struct rc__header {
    uint32_t rc;
    uint32_t gc;
    const rc_type *type;
} rc__header;

#define RC__F_ACYCLIC 0x01u  /* never buffered, never scanned */
#define RC__F_BUFFERED 0x20u /* in the candidate-root buffer */
#define RC__F_IMMORTAL 0x40u /* count saturated: never freed */
/* Where a saturated count is parked: far from both 0 and wrap-around. */
#define RC__IMMORTAL_COUNT 0xc0000000u
/* A release that leaves the count above zero buffers the object unless one
 * of these is set: one test on the hot path. */
#define RC__F_NOBUFFER (RC__F_BUFFERED | RC__F_ACYCLIC | RC__F_IMMORTAL)

RCGC_API void rc__release_zero(rc__header *h);
RCGC_API void rc__buffer(rc__header *h);
RCGC_API void *rc__alloc_at(const rc_type *type, size_t extra,
                            const char *file, int line);
RCGC_API void *rc__alloc_cyclic(const rc_type *type, size_t size);
RCGC_API void *rc__alloc_plain(const rc_type *type, size_t size);
RCGC_API void rc__retain_checked(void *obj);
RCGC_API void rc__release_checked(void *obj);

static inline void *rc_retain(void *obj) {
#if RCGC_DEBUG
    rc__retain_checked(obj);
#else
    if (RC__LIKELY(obj != NULL)) {
        rc__header *h = RC__CAST(rc__header *, obj) - 1;
        if (RC__UNLIKELY(++h->rc == 0)) { /* saturated: immortal for good */
            h->rc = RC__IMMORTAL_COUNT;
            h->gc |= RC__F_IMMORTAL;
        }
    }
#endif
    return obj;
}

static inline void rc_release(void *obj) {
#if RCGC_DEBUG
    rc__release_checked(obj);
#else
    if (RC__LIKELY(obj != NULL)) {
        rc__header *h = RC__CAST(rc__header *, obj) - 1;
        if (RC__UNLIKELY(--h->rc == 0))
            rc__release_zero(h);
        else if (RC__UNLIKELY(!(h->gc & RC__F_NOBUFFER)))
            rc__buffer(h);
    }
#endif
}

static inline void rc__auto_release(void *pp) {
    rc_release(*RC__CAST(void **, pp));
}

#if RCGC_DEBUG
/* Debug builds record the allocation site of every object. */
#define rc_alloc(type) rc__alloc_at((type), 0, __FILE__, __LINE__)
#define rc_alloc_extra(type, extra) rc__alloc_at((type), (extra), __FILE__, __LINE__)
#elif defined(__GNUC__) || defined(__clang__)
/* Payloads of at most this many bytes are zeroed inline (below). */
#define RC__INLINE_ZERO_MAX 256
#define RC__KNOWN(e) __builtin_constant_p(e)
/* rc_alloc of a descriptor the compiler can read, such as a `static const`
 * one: its kind is decided at compile time, so the runtime does not read
 * the descriptor to classify the object, and the payload is zeroed here,
 * with a size the compiler knows, where it merges the zeroing with the
 * caller's first stores to the object. Any other call is rc_alloc's. */
static inline void *rc__alloc_inline(const rc_type *type) {
    /* type->... is evaluated only once type is known not to be NULL (a
     * sanitizer would check the member accesses even here). */
    if (RC__KNOWN(type != NULL) && type != NULL && RC__KNOWN(type->size) &&
        RC__KNOWN(type->trace == NULL) &&
        RC__KNOWN(type->finalize == NULL) && RC__KNOWN(type->dispose == NULL) &&
        RC__KNOWN(type->flags) && type->size <= RC__INLINE_ZERO_MAX) {
        void *p;
        if (type->trace != NULL && !(type->flags & RC_TYPE_ACYCLIC))
            p = rc__alloc_cyclic(type, type->size);
        else if (type->trace == NULL && type->finalize == NULL &&
                 type->dispose == NULL)
            p = rc__alloc_plain(type, type->size);
        else
            return (rc_alloc)(type);
        if (RC__LIKELY(p != NULL))
            __builtin_memset(p, 0, type->size);
        return p;
    }
    return (rc_alloc)(type);
}
#define rc_alloc(type) rc__alloc_inline(type)
#endif

#ifdef __cplusplus
}
#endif

#endif /* RCGC_H */
