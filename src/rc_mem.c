/* rc_mem.c: the per-thread small-object allocator and the system allocator.
 *
 * Blocks up to MEM_SMALL_MAX bytes come from 64 KiB spans, each serving one
 * size class and one block kind (plain or size-prefixed, so the heap can be
 * walked); spans are carved from 1 MiB segments taken from the process
 * allocator (rc_set_allocator). Larger blocks go to that allocator directly
 * with a 32-byte prefix linking them into the heap's large list.
 *
 * Invariants:
 *   - a span is on partial[kind][cls]  <=>  it has a free or never-used slot;
 *   - span->used counts its live blocks; an empty span is returned to its
 *     segment unless it is the last partial span of its class (no thrash
 *     when one object is allocated and freed in a loop);
 *   - a segment with no span in use is returned to the system unless it is
 *     the heap's only segment.
 * Free and never-used slots are poisoned for AddressSanitizer and marked
 * inaccessible for Valgrind, so a use-after-free of a pooled object is
 * caught as it would be with malloc.
 */
#include <stdlib.h>

#include "rc_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_ASAN 1
#endif
#endif
#ifdef MEM_ASAN
#include <sanitizer/asan_interface.h>
#define asan_poison(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define asan_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define asan_poison(p, n) ((void)(p), (void)(n))
#define asan_unpoison(p, n) ((void)(p), (void)(n))
#endif

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MEM_VALGRIND 1
#endif
#endif
#ifndef MEM_VALGRIND
#define VALGRIND_MALLOCLIKE_BLOCK(a, s, r, z) ((void)0)
#define VALGRIND_FREELIKE_BLOCK(a, r) ((void)0)
#define VALGRIND_MAKE_MEM_NOACCESS(a, s) ((void)0)
#define VALGRIND_MAKE_MEM_DEFINED(a, s) ((void)0)
#define VALGRIND_MAKE_MEM_UNDEFINED(a, s) ((void)0)
#endif

/* ------------------------------------------------------- system memory */

static void *std_alloc(size_t size, void *ud) { (void)ud; return malloc(size); }
static void std_free(void *p, size_t size, void *ud) {
    (void)size; (void)ud;
    free(p);
}

static rc_allocator sys = {std_alloc, std_free, NULL};
static _Atomic int sys_used; /* set by the first allocation, never cleared */

int rc_set_allocator(const rc_allocator *a) {
    if (sys_used)
        return -1;
    if (a == NULL) {
        sys = (rc_allocator){std_alloc, std_free, NULL};
        return 0;
    }
    if (a->alloc == NULL || a->free == NULL)
        return -1;
    sys = *a;
    return 0;
}

void *mem_sys_alloc(size_t size) {
    sys_used = 1;
    return sys.alloc(size, sys.ud);
}

void mem_sys_free(void *p, size_t size) {
    if (p != NULL)
        sys.free(p, size, sys.ud);
}

/* ------------------------------------------------------- size classes */

static const uint16_t class_size[MEM_CLASSES] = {
    16,  32,  48,  64,  80,   96,   112,  128,  160,  192,  224,  256,
    320, 384, 448, 512, 640,  768,  896,  1024, 1280, 1536, 1792, 2048};

/* 16-byte steps up to 128, then four classes per doubling. */
static inline unsigned class_of(size_t size) {
    if (size <= 128)
        return size == 0 ? 0 : (unsigned)((size - 1) >> 4);
    size_t s = size - 1;
    unsigned b = 63u - (unsigned)__builtin_clzll(s);
    return 8u + (b - 7u) * 4u + (unsigned)((s >> (b - 2u)) & 3u);
}

/* ------------------------------------------------------- spans, segments */

struct mem_span {
    void *free;        /* freed slots, linked through their first word */
    char *bump;        /* first never-used slot */
    char *end;         /* end of the last slot */
    uint32_t used;     /* live blocks */
    uint32_t block;    /* slot size */
    uint16_t cls, kind;
    bool in_partial;
    mem_span *prev, *next;
    mem_segment *seg;
};

#define SPAN_FIRST ((sizeof(mem_span) + 15) & ~(size_t)15)

struct mem_segment {
    void *raw;
    char *base;         /* first span, MEM_SPAN_SIZE aligned */
    uint32_t free_mask; /* bit i: span i is idle */
    uint32_t used_spans;
    mem_segment *prev, *next;
};

#define SEGMENT_RAW ((MEM_SEGMENT_SPANS + 1) * MEM_SPAN_SIZE)
#define ALL_SPANS ((uint32_t)((1ull << MEM_SEGMENT_SPANS) - 1))

static inline mem_span *span_of(const void *block) {
    return (mem_span *)((uintptr_t)block & ~(uintptr_t)(MEM_SPAN_SIZE - 1));
}

static void partial_push(mem_heap *mh, mem_span *sp) {
    mem_span **head = &mh->partial[sp->kind][sp->cls];
    sp->prev = NULL;
    sp->next = *head;
    if (*head)
        (*head)->prev = sp;
    *head = sp;
    sp->in_partial = true;
}

static void partial_remove(mem_heap *mh, mem_span *sp) {
    if (sp->prev)
        sp->prev->next = sp->next;
    else
        mh->partial[sp->kind][sp->cls] = sp->next;
    if (sp->next)
        sp->next->prev = sp->prev;
    sp->prev = sp->next = NULL;
    sp->in_partial = false;
}

static void seg_unlink(mem_heap *mh, mem_segment *seg) {
    if (seg->prev)
        seg->prev->next = seg->next;
    else
        mh->segments = seg->next;
    if (seg->next)
        seg->next->prev = seg->prev;
}

static mem_segment *seg_new(mem_heap *mh) {
    mem_segment *seg = mem_sys_alloc(sizeof *seg);
    if (seg == NULL)
        return NULL;
    seg->raw = mem_sys_alloc(SEGMENT_RAW);
    if (seg->raw == NULL) {
        mem_sys_free(seg, sizeof *seg);
        return NULL;
    }
    uintptr_t a = ((uintptr_t)seg->raw + MEM_SPAN_SIZE - 1) &
                  ~(uintptr_t)(MEM_SPAN_SIZE - 1);
    seg->base = (char *)a;
    seg->free_mask = ALL_SPANS;
    seg->used_spans = 0;
    seg->prev = NULL;
    seg->next = mh->segments;
    if (mh->segments)
        mh->segments->prev = seg;
    mh->segments = seg;
    mh->free_span_bytes += MEM_SEGMENT_SPANS * MEM_SPAN_SIZE;
    return seg;
}

static void seg_free(mem_heap *mh, mem_segment *seg) {
    seg_unlink(mh, seg);
    mh->free_span_bytes -= MEM_SEGMENT_SPANS * MEM_SPAN_SIZE;
    mem_sys_free(seg->raw, SEGMENT_RAW);
    mem_sys_free(seg, sizeof *seg);
}

static rc_noinline mem_span *span_new(mem_heap *mh, unsigned kind,
                                      unsigned cls) {
    mem_segment *seg = mh->segments;
    while (seg && seg->free_mask == 0)
        seg = seg->next;
    if (seg == NULL && (seg = seg_new(mh)) == NULL)
        return NULL;
    unsigned i = (unsigned)__builtin_ctz(seg->free_mask);
    seg->free_mask &= ~(1u << i);
    seg->used_spans++;
    mh->free_span_bytes -= MEM_SPAN_SIZE;
    mh->span_bytes += MEM_SPAN_SIZE;

    mem_span *sp = (mem_span *)(seg->base + (size_t)i * MEM_SPAN_SIZE);
    asan_unpoison(sp, sizeof *sp);
    sp->block = class_size[cls];
    sp->cls = (uint16_t)cls;
    sp->kind = (uint16_t)kind;
    sp->free = NULL;
    sp->bump = (char *)sp + SPAN_FIRST;
    size_t n = (MEM_SPAN_SIZE - SPAN_FIRST) / sp->block;
    sp->end = sp->bump + n * sp->block;
    sp->used = 0;
    sp->seg = seg;
    asan_poison(sp->bump, (size_t)(sp->end - sp->bump));
    VALGRIND_MAKE_MEM_NOACCESS(sp->bump, (size_t)(sp->end - sp->bump));
    partial_push(mh, sp);
    return sp;
}

static void span_release(mem_heap *mh, mem_span *sp) {
    mem_segment *seg = sp->seg;
    partial_remove(mh, sp);
    unsigned i = (unsigned)(((char *)sp - seg->base) / MEM_SPAN_SIZE);
    seg->free_mask |= 1u << i;
    seg->used_spans--;
    mh->span_bytes -= MEM_SPAN_SIZE;
    mh->free_span_bytes += MEM_SPAN_SIZE;
    asan_poison(sp, MEM_SPAN_SIZE);
    if (seg->used_spans == 0 && (seg->prev || seg->next))
        seg_free(mh, seg);
}

/* The first word of a free slot links the span's free list; the sanitizers
 * see it as inaccessible except while the allocator reads or writes it. */
static inline void *link_get(void *slot) {
    asan_unpoison(slot, sizeof(void *));
    VALGRIND_MAKE_MEM_DEFINED(slot, sizeof(void *));
    void *next = *(void **)slot;
    return next;
}

static inline void link_set(void *slot, void *next, size_t block) {
    VALGRIND_MAKE_MEM_UNDEFINED(slot, sizeof(void *));
    asan_unpoison(slot, sizeof(void *));
    *(void **)slot = next;
    asan_poison(slot, block);
    VALGRIND_MAKE_MEM_NOACCESS(slot, block);
}

/* ------------------------------------------------------- large blocks */

struct mem_large {
    mem_large *prev, *next;
    size_t size;   /* the block's size, without this prefix */
    size_t kind;
};

static rc_noinline void *large_alloc(mem_heap *mh, size_t size, unsigned kind) {
    if (size > SIZE_MAX - sizeof(mem_large))
        return NULL;
    mem_large *lg = mem_sys_alloc(sizeof(mem_large) + size);
    if (lg == NULL)
        return NULL;
    lg->size = size;
    lg->kind = kind;
    lg->prev = NULL;
    lg->next = mh->large;
    if (mh->large)
        mh->large->prev = lg;
    mh->large = lg;
    mh->large_count++;
    return lg + 1;
}

static rc_noinline void large_free(mem_heap *mh, void *block) {
    mem_large *lg = (mem_large *)block - 1;
    if (lg->prev)
        lg->prev->next = lg->next;
    else
        mh->large = lg->next;
    if (lg->next)
        lg->next->prev = lg->prev;
    mh->large_count--;
    mem_sys_free(lg, sizeof(mem_large) + lg->size);
}

/* ------------------------------------------------------- alloc and free */

void *mem_alloc(mem_heap *mh, size_t size, unsigned kind) {
    if (unlikely(size > MEM_SMALL_MAX))
        return large_alloc(mh, size, kind);
    unsigned cls = class_of(size);
    mem_span *sp = mh->partial[kind][cls];
    if (unlikely(sp == NULL) && (sp = span_new(mh, kind, cls)) == NULL)
        return NULL;
    void *b = sp->free;
    if (b != NULL) {
        sp->free = link_get(b);
    } else {
        b = sp->bump;
        sp->bump += sp->block;
    }
    sp->used++;
    if (sp->free == NULL && sp->bump == sp->end)
        partial_remove(mh, sp); /* full */
    mh->pooled_live_bytes += size;
    asan_unpoison(b, size);
    VALGRIND_MALLOCLIKE_BLOCK(b, size, 0, 0);
    return b;
}

void mem_free(mem_heap *mh, void *block, size_t size) {
    if (unlikely(size > MEM_SMALL_MAX)) {
        large_free(mh, block);
        return;
    }
    mem_span *sp = span_of(block);
    VALGRIND_FREELIKE_BLOCK(block, 0);
    link_set(block, sp->free, sp->block);
    sp->free = block;
    sp->used--;
    mh->pooled_live_bytes -= size;
    if (!sp->in_partial)
        partial_push(mh, sp);
    else if (sp->used == 0 && (sp->prev || sp->next))
        span_release(mh, sp);
}

/* ------------------------------------------------------- heap walks */

static void span_foreach(mem_span *sp, mem_visit_fn fn, void *ctx) {
    enum { MAX_SLOTS = MEM_SPAN_SIZE / 16 };
    unsigned char is_free[MAX_SLOTS / 8];
    memset(is_free, 0, sizeof is_free);
    char *first = (char *)sp + SPAN_FIRST;
    for (void *f = sp->free; f; f = link_get(f)) {
        size_t i = (size_t)((char *)f - first) / sp->block;
        is_free[i / 8] |= (unsigned char)(1u << (i % 8));
    }
    size_t n = (size_t)(sp->bump - first) / sp->block;
    for (size_t i = 0; i < n; i++)
        if (!(is_free[i / 8] & (1u << (i % 8))))
            fn(first + i * sp->block, sp->kind, ctx);
}

/* Calls fn on every live block: pooled ones span by span, then large. */
void mem_foreach(mem_heap *mh, mem_visit_fn fn, void *ctx) {
    for (mem_segment *seg = mh->segments; seg; seg = seg->next)
        for (unsigned i = 0; i < MEM_SEGMENT_SPANS; i++)
            if (!(seg->free_mask & (1u << i)))
                span_foreach((mem_span *)(seg->base + i * MEM_SPAN_SIZE), fn,
                             ctx);
    for (mem_large *lg = mh->large; lg; lg = lg->next)
        fn(lg + 1, (unsigned)lg->kind, ctx);
}

/* F: span bytes not holding a live block (free slots, class rounding, span
 * headers and tails, idle spans) plus the large blocks' link prefixes. */
uint64_t mem_fragmented(const mem_heap *mh) {
    return mh->span_bytes + mh->free_span_bytes - mh->pooled_live_bytes +
           mh->large_count * sizeof(mem_large);
}

bool mem_is_empty(const mem_heap *mh) {
    return mh->pooled_live_bytes == 0 && mh->large == NULL;
}

/* Returns every segment to the system; only valid once the heap is empty. */
void mem_release_all(mem_heap *mh) {
    while (mh->segments)
        seg_free(mh, mh->segments);
    memset(mh->partial, 0, sizeof mh->partial);
    mh->span_bytes = 0;
    mh->free_span_bytes = 0;
}
