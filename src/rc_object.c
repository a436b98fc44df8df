/* rc_object.c: allocation, counting and the death of objects.
 *
 * An object whose count reaches zero is "killed": taken out of the root
 * buffer, its weak references cleared, and pushed on the thread's pending
 * list. Draining the list finalizes, releases children, disposes and
 * reclaims one object at a time, so a release cascade never recurses on the
 * C stack whatever the depth of the structure.
 *
 * A pending object has no use for its count and gc word, so the list is
 * threaded through them: the header's first 8 bytes hold the next pending
 * header, with the gc word's bits 0-2 (F_ACYCLIC, F_FINALIZED, F_SIZED)
 * kept as they are in the link's low bits (headers are 16-byte aligned).
 * Dying therefore never allocates.
 */
#include <stdlib.h>

#include "rc_internal.h"

/* ------------------------------------------------------- allocation */

/* Bytes of a block holding `payload` bytes, or 0 if it does not fit. */
static size_t block_bytes(size_t payload, unsigned kind) {
    size_t fixed = block_prefix(kind) + sizeof(rc__header);
    return payload > SIZE_MAX - fixed ? 0 : payload + fixed;
}

/* Zeroes a new payload. Up to 64 bytes, two stores of a fixed width that
 * overlap in the middle cover any size in their range: exactly the
 * payload's bytes, as the sanitizers expect, with one test per range and
 * no call. */
static inline void *zero_payload(void *p, size_t n) {
    char *c = p;
    if (n - 8 <= 8) { /* 8..16 */
        memset(c, 0, 8);
        memset(c + n - 8, 0, 8);
    } else if (n - 17 <= 15) { /* 17..32 */
        memset(c, 0, 16);
        memset(c + n - 16, 0, 16);
    } else if (n - 33 <= 31) { /* 33..64 */
        memset(c, 0, 32);
        memset(c + n - 32, 0, 32);
    } else {
        return memset(c, 0, n); /* a tail call */
    }
    return p;
}

/* A new object's debug record (debug builds; nothing otherwise). */
static inline void obj_debug_init(rc_state *st, rc__header *h,
                                  const char *file, int line) {
#if RCGC_DEBUG
    obj_debug *d = dbg_of(h);
    d->file = file;
    d->line = line;
    d->state = DBG_LIVE;
    d->owner = st;
    d->qnext = NULL;
#else
    (void)st, (void)h, (void)file, (void)line;
#endif
}

static inline __attribute__((always_inline)) void *
obj_alloc(const rc_type *type, size_t extra, const char *file, int line) {
    if (type == NULL || extra > SIZE_MAX - type->size)
        return NULL;
    size_t payload = type->size + extra;
    unsigned kind = extra ? MEM_SIZED : MEM_PLAIN;
    size_t size = block_bytes(payload, kind);
    if (size == 0)
        return NULL;
    rc_state *st = st_get();
    if (st == NULL)
        return NULL;
    void *block = mem_alloc(&st->heap, size, kind);
    if (block == NULL)
        return NULL;

    rc__header *h = hdr_of_block(block, kind);
    h->rc = 1;
    h->gc = C_BLACK;
    h->type = type;
    if (kind == MEM_SIZED) {
        ((obj_sized *)block)->size = size;
        ((obj_sized *)block)->reserved = 0;
        h->gc |= F_SIZED;
    }
    if (type_is_acyclic(type))
        h->gc |= F_ACYCLIC;
    obj_debug_init(st, h, file, line);
    zero_payload(payload_of(h), payload);
    st->allocated[h->gc & F_ACYCLIC]++;
    st->stats.bytes_allocated += size;
    return payload_of(h);
}

void *rc__alloc_at(const rc_type *type, size_t extra, const char *file,
                   int line) {
    return obj_alloc(type, extra, file, line);
}

static rc_noinline void *alloc_slow(const rc_type *type) {
    return obj_alloc(type, 0, NULL, 0);
}

/* The first 8 bytes of a header with these count and gc word. */
static inline uint64_t hdr_word(uint32_t rc, uint32_t gc) {
    _Static_assert(offsetof(rc__header, gc) == 4, "count and gc are a word");
    rc__header h = {rc, gc, NULL};
    uint64_t w;
    memcpy(&w, &h, sizeof w);
    return w;
}

/* What a new object's header says about its type. */
enum {
    KIND_CYCLIC, /* may be on a cycle: buffered, scanned */
    KIND_ACYCLIC,
    KIND_PLAIN /* acyclic, with no trace, finalize or dispose */
};

/* A small object from a slot its thread's heap has at hand, with its
 * header written and its payload NOT zeroed; NULL if the heap has no slot
 * at hand (or the thread no state yet). `kind` is a constant wherever the
 * caller knows it, so that each copy keeps only its own header word. */
static inline __attribute__((always_inline)) void *
alloc_quick(const rc_type *type, size_t payload, unsigned kind) {
    _Static_assert(F_ACYCLIC == RC_TYPE_ACYCLIC, "the flag is copied as is");
    rc_state *st = rc_tls_state;
    if (unlikely(st == NULL))
        return NULL;
    void *block = mem_alloc_quick(&st->heap, payload);
    if (unlikely(block == NULL))
        return NULL;
    rc__header *h = hdr_of_block(block, MEM_PLAIN);
    size_t size = DBG_PREFIX + sizeof *h + payload;
    uint32_t gc = C_BLACK;
    if (kind != KIND_CYCLIC) {
        gc |= F_ACYCLIC;
        if (!RCGC_DEBUG && kind == KIND_PLAIN)
            gc |= F_PLAIN | (uint32_t)size << PLAIN_SIZE_SHIFT;
    }
    uint64_t word = hdr_word(1, gc); /* count and gc word: one store */
    memcpy(h, &word, sizeof word);
    h->type = type;
    st->allocated[kind != KIND_CYCLIC]++;
    st->stats.bytes_allocated += size;
    obj_debug_init(st, h, NULL, 0);
    return payload_of(h);
}

#undef rc_alloc
#undef rc_alloc_extra
/* The common case, a small object of a thread whose heap has a slot at
 * hand, calls nothing but memset (as a tail call, for payloads of more
 * than 64 bytes), so it needs no stack frame. */
void *rc_alloc(const rc_type *type) {
    if (likely(type != NULL)) {
        void *p;
        /* type_is_acyclic(), with the common case first */
        if (likely(!type_is_acyclic(type)))
            p = alloc_quick(type, type->size, KIND_CYCLIC);
        else if (type_is_plain(type))
            p = alloc_quick(type, type->size, KIND_PLAIN);
        else
            p = alloc_quick(type, type->size, KIND_ACYCLIC);
        if (likely(p != NULL))
            return zero_payload(p, type->size);
    }
    return alloc_slow(type);
}

/* rc_alloc for types the header's inline rc_alloc classified at compile
 * time; the caller zeroes the payload (alloc_slow zeroes it too). */
void *rc__alloc_cyclic(const rc_type *type, size_t size) {
    void *p = alloc_quick(type, size, KIND_CYCLIC);
    return likely(p != NULL) ? p : alloc_slow(type);
}
void *rc__alloc_plain(const rc_type *type, size_t size) {
    void *p = alloc_quick(type, size, KIND_PLAIN);
    return likely(p != NULL) ? p : alloc_slow(type);
}

void *rc_alloc_extra(const rc_type *type, size_t extra) {
    return obj_alloc(type, extra, NULL, 0);
}

/* ------------------------------------------------------- counting */

static inline size_t obj_free(rc_state *st, rc__header *h, const rc_type *t,
                              uint32_t flags);

/* Flags that send even a leaf without hooks the long way when it dies. */
#define F_PLAIN_BUSY (F_BUFFERED | F_IMMORTAL | F_WEAK)

/* Everything but a plain leaf: immortals, objects with hooks to run,
 * objects to detach, objects with children. They die through the pending
 * list, whose drain marks the thread busy while user code runs (a nested
 * rc_collect() then does nothing). */
static rc_noinline void release_zero_slow(rc_state *st, rc__header *h) {
    if (unlikely(h->gc & F_IMMORTAL)) {
        h->rc = RC_IMMORTAL_COUNT; /* sticky: drifted down, never freed */
        return;
    }
    if (unlikely(st->finalizing == h)) {
        /* The finalizer released its own object once too often. */
#if RCGC_DEBUG
        dbg_die("rc_release", payload_of(h),
                "count underflow (released by its own finalizer)");
#endif
        h->rc = 1;
        return;
    }
    obj_kill(st, h);
}

#if !RCGC_DEBUG
/* The common death, with the fewest instructions: a program freeing many
 * objects in random order waits on a cache miss for each count, and the
 * shorter this path, the more of those misses overlap. */
_Static_assert(((uint64_t)MEM_SMALL_MAX << PLAIN_SIZE_SHIFT) <= UINT32_MAX,
               "a plain object's size fits its gc word");
static inline bool is_plain(const rc__header *h) {
    return (h->gc & (F_PLAIN | F_PLAIN_BUSY)) == F_PLAIN;
}
static inline void plain_free(rc_state *st, rc__header *h) {
    size_t size = h->gc >> PLAIN_SIZE_SHIFT;
    st->freed[1]++; /* a plain object is acyclic */
    st->stats.bytes_freed += size;
    mem_free_pooled(&st->heap, (char *)h - block_prefix(MEM_PLAIN));
}
#endif

void rc__release_zero(rc__header *h) {
    rc_state *st = rc_tls_state;
#if !RCGC_DEBUG
    if (likely(is_plain(h))) {
        plain_free(st, h);
        return;
    }
#endif
    const rc_type *t = h->type;
    /* A leaf without hooks that is not marked plain (allocated on a slow
     * path, or in a debug build) with nothing to detach also dies here and
     * now: no user code runs, so even inside a cascade it needs no pending
     * list. */
    if (likely(!(h->gc & F_PLAIN_BUSY) && type_is_plain(t))) {
#if RCGC_DEBUG
        dbg_of(h)->state = DBG_DYING;
#endif
        obj_free(st, h, t, h->gc);
        return;
    }
    release_zero_slow(st, h);
}

void rc__buffer(rc__header *h) { gc_buffer(rc_tls_state, h); }

void *rc_retain_fn(void *obj) { return rc_retain(obj); }
void rc_release_fn(void *obj) { rc_release(obj); }

void rc_set(void **slot, void *value) {
    void *old = *slot;
    *slot = rc_retain(value);
    rc_release(old);
}

size_t rc_refcount(const void *obj) {
    if (obj == NULL)
        return 0;
    const rc__header *h = hdr_of(obj);
    return (h->gc & F_IMMORTAL) ? SIZE_MAX : h->rc;
}

const rc_type *rc_type_of(const void *obj) {
    return obj ? hdr_of(obj)->type : NULL;
}

/* ------------------------------------------------------- dying */

/* F_FINALIZED, F_SIZED and F_ACYCLIC ride in the link's low bits. */
static inline uintptr_t link_bits(uint32_t gc) { return gc & F_LINKED; }
static inline uint32_t link_flags(uintptr_t link) {
    return (uint32_t)(link & F_LINKED);
}

static rc_noinline void obj_detach(rc_state *st, rc__header *h) {
    if (h->gc & F_BUFFERED)
        gc_unbuffer(st, h);
    if (h->gc & F_WEAK)
        wk_clear(st, h);
}

void obj_kill(rc_state *st, rc__header *h) {
    if (unlikely(h->gc & (F_BUFFERED | F_WEAK)))
        obj_detach(st, h);
#if RCGC_DEBUG
    dbg_of(h)->state = DBG_DYING;
#endif
    uintptr_t link = (uintptr_t)st->pending | link_bits(h->gc);
    memcpy(h, &link, sizeof link);
    st->pending = h;
    if (!st->freeing)
        obj_drain(st);
}

/* Releases one reference held by a dying object or a garbage set. */
void obj_release_child(rc_state *st, rc__header *c) {
#if RCGC_DEBUG
    if (dbg_of(c)->state != DBG_LIVE)
        dbg_die("rc_release", payload_of(c),
                dbg_of(c)->state == DBG_FREED
                    ? "object already freed (released by hand and by trace?)"
                    : "count underflow (a finalizer or dispose released a "
                      "traced child?)");
#endif
    if (--c->rc == 0) {
        if (unlikely(c->gc & F_IMMORTAL))
            c->rc = RC_IMMORTAL_COUNT;
        else
            obj_kill(st, c);
    } else if (!(c->gc & F_NOBUFFER)) {
        gc_buffer(st, c);
    }
}

#if !RCGC_DEBUG
/* A child whose count reached zero and that is plain or needs more than
 * joining the pending list. This helper and the next take visit_release's
 * arguments as they are, so that its tail calls to them move no register. */
static rc_noinline void release_child_slow(void *child, void *ctx) {
    rc_state *st = ctx;
    rc__header *c = hdr_of(child);
    if (is_plain(c)) {
        plain_free(st, c);
        return;
    }
    c->rc++;
    obj_release_child(st, c);
}

static rc_noinline void visit_buffer(void *child, void *ctx) {
    gc_buffer(ctx, hdr_of(child));
}
#endif

/* The release of a dying object's child, while the pending list drains:
 * a child reaching zero joins the list, or is freed at once if it is
 * plain (no hooks, so nothing can run or be released meanwhile). */
static void visit_release(void *child, void *ctx) {
    if (child == NULL)
        return;
    rc_state *st = ctx;
    rc__header *c = hdr_of(child);
#if RCGC_DEBUG
    obj_release_child(st, c);
#else
    if (--c->rc == 0) {
        if (unlikely(c->gc & (F_PLAIN | F_PLAIN_BUSY))) {
            release_child_slow(child, ctx); /* a tail call: no frame here */
            return;
        }
        uintptr_t link = (uintptr_t)st->pending | link_bits(c->gc);
        memcpy(c, &link, sizeof link);
        st->pending = c;
    } else if (!(c->gc & F_NOBUFFER)) {
        visit_buffer(child, ctx);
    }
#endif
}

/* Runs the finalizer of a dying object with a count of 1 lent to it.
 * Returns true if the finalizer resurrected the object. */
static bool obj_finalize(rc_state *st, rc__header *h) {
    h->gc |= F_FINALIZED;
    h->rc = 1;
#if RCGC_DEBUG
    dbg_of(h)->state = DBG_LIVE;
#endif
    st->finalizing = h;
    h->type->finalize(payload_of(h));
    st->finalizing = NULL;
    if (h->rc != 1) {
        /* Stored somewhere: alive again, never finalized again. Taking
         * the lent count back is a decrement to non-zero like any other:
         * the new reference may be the object's own, or on a cycle back
         * to it, and nothing else would ever make it a candidate root. */
        h->rc--;
        if (!(h->gc & F_NOBUFFER))
            gc_buffer(st, h);
        return true;
    }
    h->rc = 0;
#if RCGC_DEBUG
    dbg_of(h)->state = DBG_DYING;
#endif
    if (h->gc & F_BUFFERED) /* a retain/release pair in the finalizer */
        gc_unbuffer(st, h);
    if (h->gc & F_WEAK) /* a weak reference the finalizer made */
        wk_clear(st, h);
    return false;
}

/* The block of h and its size, with `flags` standing for the header's gc
 * bits (the header may hold a pending link). */
static inline void *obj_block(rc__header *h, const rc_type *t, uint32_t flags,
                              size_t *size) {
    if (flags & F_SIZED) {
        obj_sized *b = (obj_sized *)((char *)h - block_prefix(MEM_SIZED));
        *size = b->size;
        return b;
    }
    *size = DBG_PREFIX + sizeof(rc__header) + t->size;
    return (char *)h - block_prefix(MEM_PLAIN);
}

static inline void obj_give_back(rc_state *st, rc__header *h, uint32_t flags,
                                 void *block, size_t size) {
#if RCGC_DEBUG
    (void)block;
    h->rc = 0;
    h->gc = flags;
    dbg_quarantine(st, h, size);
#else
    (void)h;
    (void)flags;
    mem_free(&st->heap, block, size);
#endif
}

/* Frees the block and counts it in the statistics (first, so that the
 * free can be a tail call); returns its size. */
static inline size_t obj_free(rc_state *st, rc__header *h, const rc_type *t,
                              uint32_t flags) {
    size_t size;
    void *block = obj_block(h, t, flags, &size);
    st->freed[flags & F_ACYCLIC]++;
    st->stats.bytes_freed += size;
    obj_give_back(st, h, flags, block, size);
    return size;
}

size_t obj_reclaim(rc_state *st, rc__header *h) {
    size_t size;
    void *block = obj_block(h, h->type, h->gc, &size);
    obj_give_back(st, h, h->gc, block, size);
    return size;
}

/* The death of a pending object of a type without hooks, in a block
 * without size prefix, with `flags` a constant: inlined once per value. */
static inline __attribute__((always_inline)) void
drain_plain(rc_state *st, rc__header *h, const rc_type *t, uint32_t flags) {
    if (t->trace)
        t->trace(payload_of(h), visit_release, st);
    obj_free(st, h, t, flags);
}

/* Any other death: hooks to run, a size prefix, or a finalizer that ran
 * (and resurrected the object) before. */
static rc_noinline void drain_one(rc_state *st, rc__header *h,
                                  const rc_type *t, uint32_t flags) {
    if (t->finalize != NULL && !(flags & F_FINALIZED)) {
        h->rc = 0;
        h->gc = C_BLACK | flags;
        if (obj_finalize(st, h))
            return; /* resurrected */
        flags = h->gc;
    }
    if (t->trace)
        t->trace(payload_of(h), visit_release, st);
    if (t->dispose)
        t->dispose(payload_of(h));
    obj_free(st, h, t, flags);
}

/* Frees every pending object; objects killed meanwhile join the list. */
void obj_drain(rc_state *st) {
    st->freeing = true;
    rc__header *h;
    while ((h = st->pending) != NULL) {
        uintptr_t link; /* the header stays a link */
        memcpy(&link, h, sizeof link);
        const rc_type *t = h->type;
        /* One test for both hooks: most types have neither. */
        bool hooks = ((uintptr_t)t->finalize | (uintptr_t)t->dispose) != 0;
        if (likely(!(link & F_LINKED)) && likely(!hooks)) {
            /* The common death: a cyclic object without size prefix, not
             * finalized before, of a type without hooks. With no flag in
             * its link, the link is the next header as it is. */
            st->pending = (rc__header *)link;
            drain_plain(st, h, t, 0);
            continue;
        }
        st->pending = (rc__header *)(link & ~(uintptr_t)F_LINKED);
        uint32_t flags = link_flags(link);
        if (!hooks && flags == F_ACYCLIC)
            drain_plain(st, h, t, F_ACYCLIC);
        else
            drain_one(st, h, t, flags);
    }
    st->freeing = false;
    if (st->pass_due && !st->in_pass)
        gc_maybe_collect(st);
}

/* ------------------------------------------------------- checked paths */

#if RCGC_DEBUG
static void check_live(const char *op, void *obj) {
    rc__header *h = hdr_of(obj);
    obj_debug *d = dbg_of(h);
    if (d->state != DBG_LIVE && d->state != DBG_DYING && d->state != DBG_FREED)
        dbg_die_foreign(op, obj);
    if (d->state == DBG_FREED)
        dbg_die(op, obj, "object already freed");
    if (d->state != DBG_LIVE || (h->rc == 0 && !(h->gc & F_IMMORTAL)))
        dbg_die(op, obj, "count underflow (object is dying)");
    if (d->owner != rc_tls_state && d->owner != NULL) /* NULL: orphaned */
        dbg_die(op, obj, "object belongs to another thread");
}
#endif

void rc__retain_checked(void *obj) {
    if (obj == NULL)
        return;
#if RCGC_DEBUG
    check_live("rc_retain", obj);
#endif
    rc__header *h = hdr_of(obj);
    if (unlikely(++h->rc == 0)) {
        h->rc = RC_IMMORTAL_COUNT;
        h->gc |= F_IMMORTAL;
    }
}

void rc__release_checked(void *obj) {
    if (obj == NULL)
        return;
#if RCGC_DEBUG
    check_live("rc_release", obj);
#endif
    rc__header *h = hdr_of(obj);
    if (--h->rc == 0)
        rc__release_zero(h);
    else if (!(h->gc & F_NOBUFFER))
        rc__buffer(h);
}
