/* rc_mem.c: the per-thread small-object allocator and the system allocator.
 *
 * Blocks up to MEM_SMALL_MAX bytes come from 64 KiB spans, each serving one
 * size class and one block kind (plain or size-prefixed, so the heap can be
 * walked); spans are carved from 1 MiB segments taken from the process
 * allocator (rc_set_allocator). Larger blocks go to that allocator directly
 * behind a 32-byte prefix linking them into the heap's large list.
 *
 * A span's 64-byte header sits inside the span at a line chosen by the
 * span's address ("colour"), so that the headers of many spans do not all
 * compete for the same cache sets; the slots overlapping it are never used.
 *
 * Invariants:
 *   - a span in use is on partial[kind][cls]  <=>  it is not `full`; a
 *     listed span may turn out to be full only when an allocation finds it
 *     so (it is then unlisted);
 *   - `used` counts the span's live blocks, plus SPAN_ALONE when it is the
 *     only span on its list; a full span holds 1 instead (its live count
 *     is its capacity). So the free path takes its slow branch only when
 *     `used` drops to exactly 0: an empty span that is not alone (back to
 *     its segment), or the first free in a full span (listed again);
 *   - the segment list holds the segments with a span in use; it is
 *     circular, and segments with an idle span come before full ones, so a
 *     new span is found at the head;
 *   - a segment whose spans are all idle is on the spare list instead;
 *     spare segments are returned to the system while the heap holds more
 *     idle span bytes than span bytes in use, and two segments' worth,
 *     once that excess has lasted a second or on mem_trim;
 *   - F = bytes of segments + large-block prefixes - bytes of live pooled
 *     blocks (mem_fragmented). The heap does not count the bytes of its
 *     pooled blocks: its owner counts every block's bytes anyway (the
 *     statistics), and one count less on each free matters when frees
 *     wait on cache misses.
 * Free slots, gaps and idle spans are poisoned for AddressSanitizer, and
 * under Valgrind's Memcheck every pooled or large object is a heap block of
 * its own, so a use-after-free or a leak of a pooled object is reported as
 * it would be with malloc.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "rc_internal.h"

/* ------------------------------------------------------- sanitizers */

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
#define mem_no_asan __attribute__((no_sanitize_address))
#else
#define asan_poison(p, n) ((void)(p), (void)(n))
#define asan_unpoison(p, n) ((void)(p), (void)(n))
#define mem_no_asan
#endif

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MEM_VALGRIND 1
#endif
#endif

/* mem_alloc_quick serves payloads of plain objects: a block is the payload
 * and what precedes it. */
#define QUICK_FIXED (DBG_PREFIX + sizeof(rc__header))
#define QUICK_END (MEM_SMALL_MAX - QUICK_FIXED + 1)

#ifdef MEM_VALGRIND
/* Set once per process: the client requests cost a dozen instructions
 * each, so the fast paths skip them all unless Memcheck runs (it is the
 * tool that answers a MAKE_MEM request; Callgrind then counts the paths
 * a normal run takes). */
static int mem_vg;
static pthread_once_t mem_vg_once = PTHREAD_ONCE_INIT;
#if RCGC_DEBUG
static void vg_keep_quarantine(void);
#endif
static void mem_vg_init(void) {
    static char probe;
    mem_vg = RUNNING_ON_VALGRIND && VALGRIND_MAKE_MEM_DEFINED(&probe, 1) != 0;
#if RCGC_DEBUG
    if (mem_vg)
        atexit(vg_keep_quarantine);
#endif
}
static void mem_init(void) { pthread_once(&mem_vg_once, mem_vg_init); }
#define vg_on() unlikely(mem_vg)
#define vg_block(p, n) VALGRIND_MALLOCLIKE_BLOCK((p), (n), 0, 0)
#define vg_unblock(p) VALGRIND_FREELIKE_BLOCK((p), 0)
#define vg_noaccess(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define vg_undefined(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define vg_defined(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
static void mem_init(void) {}
#define vg_on() 0
#define vg_block(p, n) ((void)0)
#define vg_unblock(p) ((void)0)
#define vg_noaccess(p, n) ((void)0)
#define vg_undefined(p, n) ((void)0)
#define vg_defined(p, n) ((void)0)
#endif

/* Blocks up to this size take the pooled fast paths: MEM_SMALL_MAX, or 0
 * while Memcheck watches, which sends every block to the tracked paths for
 * the price of the size test the fast paths make anyway. Each heap keeps
 * its copy, set by its first slow allocation (mem_bounds): before that it
 * has no block to free, and a 0 sends its allocations the slow way. */
static inline size_t fast_max(const mem_heap *mh) { return mh->fast_max; }
/* The same bound for mem_alloc_quick's payloads, as one past the largest:
 * 0 rejects every payload, even an empty one. */
static inline size_t quick_end(const mem_heap *mh) { return mh->quick_end; }
static inline void mem_bounds(mem_heap *mh) {
    mh->fast_max = vg_on() ? 0 : MEM_SMALL_MAX;
    mh->quick_end = vg_on() ? 0 : QUICK_END;
}

/* Where the block Memcheck sees starts: at the payload, so the pointers a
 * program holds are start pointers for the leak checker (a live object is
 * "reachable", a dropped one "definitely lost", its children "indirectly
 * lost"). The prefixes and header before it stay accessible outside any
 * block. */
static inline size_t vg_offset(unsigned kind) {
    return block_prefix(kind) + sizeof(rc__header);
}

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
    if (unlikely(!atomic_load_explicit(&sys_used, memory_order_relaxed)))
        atomic_store_explicit(&sys_used, 1, memory_order_relaxed);
    return sys.alloc(size, sys.ud);
}

void mem_sys_free(void *p, size_t size) {
    if (p != NULL)
        sys.free(p, size, sys.ud);
}

/* Memcheck: a system allocation that is to hold pooled or large blocks
 * shrinks to its first `keep` bytes (at least one), so that each object in
 * it is a heap block of its own rather than nested in a bigger one (no
 * block counted twice, none ignored by the leak checker, and a
 * use-after-free described by the object's own allocation and release).
 * It grows back before it is given back. Memory from an allocator Memcheck
 * does not watch is left alone. */
static inline bool sys_watched(void) {
    /* Only the C library's blocks are known to Memcheck as blocks of their
     * own; an embedder's allocator may hand out pieces of bigger ones. */
    return vg_on() && sys.alloc == std_alloc;
}

static void sys_hold(void *p, size_t size, size_t keep) {
    if (sys_watched())
        VALGRIND_RESIZEINPLACE_BLOCK(p, size, keep, 0);
}

/* Gives memory that held pooled or large blocks back, in the state the
 * system allocator handed it out: neither poisoned nor inaccessible. */
static void sys_give_back(void *p, size_t size, size_t kept) {
    asan_unpoison(p, size);
    if (sys_watched())
        VALGRIND_RESIZEINPLACE_BLOCK(p, kept, size, 0);
    if (vg_on())
        vg_undefined(p, size);
    mem_sys_free(p, size);
}

/* ------------------------------------------------------- size classes */

static const uint16_t class_size[MEM_CLASSES] = {
    16,  32,  48,  64,  80,   96,   112,  128,  160,  192,  224,  256,
    320, 384, 448, 512, 640,  768,  896,  1024, 1280, 1536, 1792, 2048};

/* class_index[(size - 1) / 16]: the smallest class holding `size` bytes
 * (16-byte steps up to 128, then four classes per doubling). */
static const uint8_t class_index[MEM_SMALL_MAX / 16] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  8,  9,  9,  10, 10, 11, 11,
    12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15,
    16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17,
    18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21,
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22,
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23};

_Static_assert(MEM_SMALL_MAX == 2048 && MEM_CLASSES == 24,
               "class tables cover 16..2048 bytes");

static inline unsigned class_of(size_t size) {
    rc_assert_internal(size > 0 && size <= MEM_SMALL_MAX);
    return class_index[(size - 1) >> 4];
}

/* ------------------------------------------------------- spans */

#define SPAN_HDR 64                             /* bytes for the header */
#define SPAN_COLOURS (MEM_SPAN_SIZE / SPAN_HDR) /* header positions */
#define SPAN_ALONE 1                            /* in `used`: see below */
#define SEG_SPAN_BYTES ((uint64_t)MEM_SEGMENT_SPANS * MEM_SPAN_SIZE)

struct mem_span {
    void *free;       /* freed slots, linked through their first word */
    char *bump;       /* next never-used slot of the current run */
    char *limit;      /* bump < limit while the run has a slot left */
    int32_t used;     /* live blocks, + SPAN_ALONE; 1 when full */
    uint32_t block;   /* slot size */
    mem_span *prev, *next;
    mem_segment *seg;
    uint32_t tail;    /* offset of the run after the header; 0: none left */
    uint8_t cls, kind, index;
    uint8_t full;     /* every slot is live: on no list */
};

_Static_assert(sizeof(mem_span) <= SPAN_HDR, "span header fits its line");

/* The span of a pooled block: its 64 KiB frame, plus the header's colour,
 * bits 16-25 of the address (every span of a segment has its own line). */
static inline mem_span *span_of(const void *block) {
    uintptr_t a = (uintptr_t)block;
    uintptr_t base = a & ~(uintptr_t)(MEM_SPAN_SIZE - 1);
    uintptr_t colour = (a >> (MEM_SPAN_SHIFT - 6)) &
                       ((uintptr_t)(SPAN_COLOURS - 1) << 6);
    return (mem_span *)(base | colour);
}

static inline char *span_base(const mem_span *sp) {
    return (char *)((uintptr_t)sp & ~(uintptr_t)(MEM_SPAN_SIZE - 1));
}

/* Starts handing out the slots of [from, to) in order. */
static inline void run_start(mem_span *sp, char *from, char *to) {
    sp->bump = from;
    sp->limit = to;
}

/* Slots are laid out from the span's start; [lo, hi) overlap the header. */
typedef struct span_geom {
    size_t n, lo, hi;
} span_geom;

static span_geom span_geometry(const mem_span *sp) {
    size_t b = sp->block;
    size_t h = (size_t)((char *)sp - span_base(sp));
    span_geom g = {MEM_SPAN_SIZE / b, h / b, (h + SPAN_HDR + b - 1) / b};
    if (g.lo > g.n)
        g.lo = g.n;
    if (g.hi > g.n)
        g.hi = g.n;
    return g;
}

/* The head of an empty class list: a span with no slot at hand (no free
 * slot, an empty run), so that the allocation fast paths test for a slot
 * without testing for a span first. Never written. A heap's lists hold it
 * from its first slow allocation on (mem_heap_ready); before that, the
 * heap's zero bounds keep the fast paths away from them. */
static const mem_span span_none = {.bump = (char *)&span_none,
                                    .limit = (char *)&span_none};

static inline mem_span *head_get(const mem_heap *mh, unsigned kind,
                                 unsigned cls) {
    mem_span *sp = mh->partial[kind][cls];
    return sp == &span_none ? NULL : sp;
}
static inline void head_set(mem_heap *mh, unsigned kind, unsigned cls,
                            mem_span *sp) {
    mh->partial[kind][cls] = sp != NULL ? sp : (mem_span *)&span_none;
}

static void mem_heap_ready(mem_heap *mh) {
    if (likely(mh->partial[0][0] != NULL))
        return;
    for (unsigned kind = 0; kind < MEM_KINDS; kind++)
        for (unsigned cls = 0; cls < MEM_CLASSES; cls++)
            head_set(mh, kind, cls, NULL);
}

/* The only span on its class's list carries SPAN_ALONE in `used`, so that
 * emptying it (kept, to avoid thrash) never takes the free path's slow
 * branch: a loop allocating and freeing one object stays on the fast path. */
static void partial_push(mem_heap *mh, mem_span *sp) {
    mem_span *head = head_get(mh, sp->kind, sp->cls);
    sp->prev = NULL;
    sp->next = head;
    if (head == NULL)
        sp->used += SPAN_ALONE;
    else if (head->next == NULL)
        head->used -= SPAN_ALONE;
    if (head)
        head->prev = sp;
    head_set(mh, sp->kind, sp->cls, sp);
}

static void partial_remove(mem_heap *mh, mem_span *sp) {
    if (sp->prev == NULL && sp->next == NULL)
        sp->used -= SPAN_ALONE;
    if (sp->prev)
        sp->prev->next = sp->next;
    else
        head_set(mh, sp->kind, sp->cls, sp->next);
    if (sp->next)
        sp->next->prev = sp->prev;
    mem_span *head = head_get(mh, sp->kind, sp->cls);
    if (head != NULL && head->next == NULL && (sp->prev || sp->next))
        head->used += SPAN_ALONE;
    sp->prev = sp->next = NULL;
}

/* The first word of a free slot links the span's free list. Free slots are
 * poisoned: only the allocator reads them, without the checks. */
static inline mem_no_asan void *link_load(const void *slot) {
    return *(void *const *)slot;
}

/* ------------------------------------------------------- segments */

struct mem_segment {
    void *raw;          /* as the system allocator returned it */
    char *base;         /* first span, MEM_SPAN_SIZE aligned */
    mem_segment *prev, *next;
    uint32_t idle;      /* bit i: span i is idle */
    uint32_t touched;   /* bit i: span i was populated (span_populate) */
    uint32_t nused;     /* spans in use */
};

#define SEGMENT_RAW ((MEM_SEGMENT_SPANS + 1) * MEM_SPAN_SIZE)
#define ALL_SPANS ((uint32_t)((1ull << MEM_SEGMENT_SPANS) - 1))

/* Span i of a segment. (Pointers to slots never keep an object alive for
 * Memcheck's leak checker: its blocks start at payloads, see vg_offset.) */
static inline char *seg_span(const mem_segment *seg, unsigned i) {
    return seg->base + (size_t)i * MEM_SPAN_SIZE;
}

static void seg_insert_head(mem_heap *mh, mem_segment *seg) {
    mem_segment *head = mh->segments;
    if (head == NULL) {
        seg->prev = seg->next = seg;
    } else {
        seg->next = head;
        seg->prev = head->prev;
        head->prev->next = seg;
        head->prev = seg;
    }
    mh->segments = seg;
}

static void seg_unlink(mem_heap *mh, mem_segment *seg) {
    if (seg->next == seg) {
        mh->segments = NULL;
        return;
    }
    seg->prev->next = seg->next;
    seg->next->prev = seg->prev;
    if (mh->segments == seg)
        mh->segments = seg->next;
}

static mem_segment *seg_new(mem_heap *mh) {
    mem_init();
    mem_segment *seg = mem_sys_alloc(sizeof *seg);
    if (seg == NULL)
        return NULL;
    seg->raw = mem_sys_alloc(SEGMENT_RAW);
    if (seg->raw == NULL) {
        mem_sys_free(seg, sizeof *seg);
        return NULL;
    }
    sys_hold(seg->raw, SEGMENT_RAW, 1);
    uintptr_t a = ((uintptr_t)seg->raw + MEM_SPAN_SIZE - 1) &
                  ~(uintptr_t)(MEM_SPAN_SIZE - 1);
    seg->base = (char *)a;
    seg->idle = ALL_SPANS;
    seg->touched = 0;
    seg->nused = 0;
    seg_insert_head(mh, seg);
    mh->free_span_bytes += SEG_SPAN_BYTES;
    return seg;
}

/* Gives back a segment that is on no list. */
static void seg_free(mem_heap *mh, mem_segment *seg) {
    mh->free_span_bytes -= SEG_SPAN_BYTES;
    sys_give_back(seg->raw, SEGMENT_RAW, 1);
    mem_sys_free(seg, sizeof *seg);
}

/* Sets up span `i` of `seg` for one class: the header at its colour, the
 * first run of slots up to the header, the second after it. */
static mem_span *span_init(mem_segment *seg, unsigned i, unsigned kind,
                           unsigned cls) {
    char *base = seg_span(seg, i);
    mem_span *sp = span_of(base);
    asan_poison(base, MEM_SPAN_SIZE);
    asan_unpoison(sp, SPAN_HDR);
    if (vg_on()) {
        vg_noaccess(base, MEM_SPAN_SIZE);
        vg_undefined(sp, SPAN_HDR);
    }
    sp->block = class_size[cls];
    sp->cls = (uint8_t)cls;
    sp->kind = (uint8_t)kind;
    sp->index = (uint8_t)i;
    sp->seg = seg;
    sp->free = NULL;
    sp->used = 0;
    sp->full = 0;
    span_geom g = span_geometry(sp);
    run_start(sp, base, base + g.lo * sp->block);
    sp->tail = g.hi < g.n ? (uint32_t)(g.hi * sp->block) : 0;
    return sp;
}

/* Maps in the whole pages of [p, p + n) with one system call instead of a
 * page fault per 4 KiB, which costs more than the call and the zeroing
 * together. Only for the C library's allocator (an embedder's memory is
 * left as it is handed out), and not under Memcheck. */
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
static _Atomic int populate_works = 1; /* cleared on kernels before 5.14 */

void mem_prefault(void *p, size_t n) {
    uintptr_t lo = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t hi = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    if (hi <= lo || sys.alloc != std_alloc || vg_on() ||
        !atomic_load_explicit(&populate_works, memory_order_relaxed))
        return;
    if (madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) != 0)
        atomic_store_explicit(&populate_works, 0, memory_order_relaxed);
}
#else
void mem_prefault(void *p, size_t n) { (void)p, (void)n; }
#endif

/* Maps in span i together with the idle, never-populated spans after it in
 * its segment: the heap takes a segment's spans in order, so they are the
 * next ones it will use, and one call for up to 1 MiB costs less than one
 * per span (W5 allocation phase: 4 % faster, median of 11 alternating runs
 * of 10M objects). What it can map in ahead is at most one segment's worth,
 * the rest of the segment the heap is filling. */
static void span_populate(const mem_heap *mh, mem_segment *seg, unsigned i) {
    if (mh->span_bytes < SEG_SPAN_BYTES || (seg->touched & (1u << i)))
        return;
    unsigned n = 1;
    while (i + n < MEM_SEGMENT_SPANS &&
           (seg->idle & ~seg->touched & (1u << (i + n))))
        n++;
    seg->touched |= (uint32_t)((1ull << n) - 1) << i;
    mem_prefault(seg_span(seg, i), (size_t)n * MEM_SPAN_SIZE);
}

static rc_noinline mem_span *span_new(mem_heap *mh, unsigned kind,
                                      unsigned cls) {
    mem_segment *seg = mh->segments;
    if (seg == NULL || seg->idle == 0) {
        if ((seg = mh->spare) != NULL) {
            mh->spare = seg->next;
            seg_insert_head(mh, seg);
        } else if ((seg = seg_new(mh)) == NULL) {
            return NULL;
        }
    }
    unsigned i = (unsigned)__builtin_ctz(seg->idle);
    seg->idle &= ~(1u << i);
    seg->nused++;
    if (seg->idle == 0)
        mh->segments = seg->next; /* full: now the last of the circle */
    mh->free_span_bytes -= MEM_SPAN_SIZE;
    mh->span_bytes += MEM_SPAN_SIZE;
    span_populate(mh, seg, i);
    mem_span *sp = span_init(seg, i, kind, cls);
    partial_push(mh, sp);
    return sp;
}

/* Segments whose spans are all idle wait on the spare list. The heap may
 * keep as many idle span bytes as it has span bytes in use (and two
 * segments' worth): a heap that shrinks and grows back (a program building
 * and dropping large structures) reuses memory it has already touched
 * instead of faulting fresh pages in. Spare segments beyond that go back to
 * the system once the excess has lasted TRIM_DELAY_NS, seen when a span
 * goes idle, or at once on mem_trim (rc_collect, thread exit): giving
 * memory back in the middle of a burst of frees costs more than the frees
 * (unmapping, then faulting the pages in again when the heap regrows). */
#define TRIM_DELAY_NS 1000000000u

static bool seg_excess(const mem_heap *mh) {
    return mh->spare != NULL && mh->free_span_bytes >= 2 * SEG_SPAN_BYTES &&
           mh->free_span_bytes > mh->span_bytes;
}

/* Gives back the first spare segment. */
static void spare_free(mem_heap *mh) {
    mem_segment *seg = mh->spare;
    mh->spare = seg->next;
    seg_free(mh, seg);
}

/* Gives an empty span back to its segment. */
static void span_idle(mem_heap *mh, mem_span *sp) {
    mem_segment *seg = sp->seg;
    bool was_full = seg->idle == 0;
    partial_remove(mh, sp);
    seg->idle |= 1u << sp->index;
    seg->nused--;
    mh->span_bytes -= MEM_SPAN_SIZE;
    mh->free_span_bytes += MEM_SPAN_SIZE;
    char *base = span_base(sp);
    asan_poison(base, MEM_SPAN_SIZE);
    if (vg_on())
        vg_noaccess(base, MEM_SPAN_SIZE);
    if (seg->nused == 0) {
        seg_unlink(mh, seg);
        seg->next = mh->spare;
        mh->spare = seg;
    } else if (was_full) {
        seg_unlink(mh, seg);
        seg_insert_head(mh, seg);
    }
}

/* The empty spans that frees keep (each the only one of its class) go
 * back to their segments too: otherwise one per class can pin a segment. */
void mem_trim(mem_heap *mh) {
    for (unsigned kind = 0; kind < MEM_KINDS; kind++)
        for (unsigned cls = 0; cls < MEM_CLASSES; cls++) {
            mem_span *sp = head_get(mh, kind, cls);
            if (sp != NULL && sp->next == NULL && sp->used == SPAN_ALONE)
                span_idle(mh, sp);
        }
    while (seg_excess(mh))
        spare_free(mh);
    mh->excess_since = 0;
}

static uint64_t coarse_now_ns(void) {
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void seg_trim_later(mem_heap *mh) {
    if (!seg_excess(mh)) {
        mh->excess_since = 0;
        return;
    }
    uint64_t now = coarse_now_ns() | 1; /* 0 means "no excess" */
    if (mh->excess_since == 0)
        mh->excess_since = now;
    else if (now - mh->excess_since >= TRIM_DELAY_NS)
        mem_trim(mh);
}

static void span_release(mem_heap *mh, mem_span *sp) {
    span_idle(mh, sp);
    seg_trim_later(mh);
}

/* ------------------------------------------------------- large blocks */

struct mem_large {
    mem_large *prev, *next;
    size_t size;     /* the block's size, without this prefix */
    uint32_t kind;
    uint32_t pad;    /* LARGE_PADDED | bytes before the prefix */
};

#define LARGE_PADDED 0x10000u /* allocated with room to align */
#define MEM_ALIGN 16u

static inline size_t large_raw_size(const mem_large *lg) {
    return sizeof(mem_large) + lg->size +
           ((lg->pad & LARGE_PADDED) ? MEM_ALIGN - 1 : 0);
}

/* The system allocator's memory for `total` bytes, the prefix aligned for
 * a payload: with malloc it is already; an allocator returning less aligned
 * memory is asked again for MEM_ALIGN - 1 bytes more. The prefix and the
 * `front` bytes after it are accessible (under Memcheck, the rest is for
 * the object's own block). */
static mem_large *large_raw_alloc(size_t total, size_t front) {
    char *raw = mem_sys_alloc(total);
    size_t pad = 0;
    uint32_t padded = 0;
    if (raw != NULL && ((uintptr_t)raw & (MEM_ALIGN - 1)) != 0) {
        mem_sys_free(raw, total);
        if (total > SIZE_MAX - (MEM_ALIGN - 1))
            return NULL;
        total += MEM_ALIGN - 1;
        if ((raw = mem_sys_alloc(total)) == NULL)
            return NULL;
        pad = (MEM_ALIGN - ((uintptr_t)raw & (MEM_ALIGN - 1))) &
              (MEM_ALIGN - 1);
        padded = LARGE_PADDED;
    }
    if (raw == NULL)
        return NULL;
    /* The prefix stays in the system block: its links keep the other
     * large blocks reachable for the leak checker. */
    sys_hold(raw, total, pad + sizeof(mem_large));
    if (vg_on())
        vg_undefined(raw + pad + sizeof(mem_large), front);
    mem_large *lg = (mem_large *)(raw + pad);
    lg->pad = padded | (uint32_t)pad;
    return lg;
}

static rc_noinline void *large_alloc(mem_heap *mh, size_t size,
                                     unsigned kind) {
    mem_init();
    /* No object can be bigger than PTRDIFF_MAX (pointer differences in it
     * would overflow), so such a request fails here, not in the system
     * allocator, which Valgrind and the sanitizers report it to. */
    if (size > (size_t)PTRDIFF_MAX - sizeof(mem_large) - MEM_ALIGN)
        return NULL;
    mem_large *lg = large_raw_alloc(sizeof(mem_large) + size, vg_offset(kind));
    if (lg == NULL)
        return NULL;
    lg->size = size;
    mh->large_bytes += size;
    lg->kind = kind;
    lg->prev = NULL;
    lg->next = mh->large;
    if (mh->large)
        mh->large->prev = lg;
    mh->large = lg;
    mh->large_count++;
    char *block = (char *)(lg + 1);
    if (vg_on())
        vg_block(block + vg_offset(kind), size - vg_offset(kind));
    return block;
}

static rc_noinline void large_free(mem_heap *mh, void *block) {
    mem_large *lg = (mem_large *)block - 1;
    if (vg_on())
        vg_unblock((char *)block + vg_offset(lg->kind));
    if (lg->prev)
        lg->prev->next = lg->next;
    else
        mh->large = lg->next;
    if (lg->next)
        lg->next->prev = lg->prev;
    mh->large_count--;
    mh->large_bytes -= lg->size;
    size_t pad = lg->pad & (MEM_ALIGN - 1);
    sys_give_back((char *)lg - pad, large_raw_size(lg), pad + sizeof(mem_large));
}

/* ------------------------------------------------------- alloc and free */

/* A slot from the head span of the class, taking the next span when the
 * head turns out to be full and a new one when there is none. */
static rc_noinline void *pool_take(mem_heap *mh, size_t size, unsigned kind) {
    unsigned cls = class_of(size);
    for (;;) {
        mem_span *sp = head_get(mh, kind, cls);
        if (sp == NULL && (sp = span_new(mh, kind, cls)) == NULL)
            return NULL;
        void *b = sp->free;
        if (b != NULL) {
            if (vg_on())
                vg_defined(b, sizeof(void *));
            sp->free = link_load(b);
        } else if (sp->bump >= sp->limit && sp->tail != 0) {
            span_geom g = span_geometry(sp);
            char *base = span_base(sp);
            run_start(sp, base + sp->tail, base + g.n * sp->block);
            sp->tail = 0;
            continue;
        } else if (sp->bump < sp->limit) {
            b = sp->bump;
            sp->bump += sp->block;
        } else {
            partial_remove(mh, sp);
            sp->full = 1;
            sp->used = 1; /* its next free relists it (free_slow) */
            continue;
        }
        sp->used++;
        asan_unpoison(b, size);
        return b;
    }
}

/* Under Valgrind: the object becomes a heap block of its own; the bytes in
 * front of it (size and debug prefixes, header) are accessible. */
static rc_noinline void *alloc_tracked(mem_heap *mh, size_t size,
                                       unsigned kind) {
    char *b = pool_take(mh, size, kind);
    if (b != NULL) {
        size_t off = vg_offset(kind);
        vg_undefined(b, off);
        vg_block(b + off, size - off);
    }
    return b;
}

/* Everything the fast path does not do: large blocks, Memcheck, a class
 * with no slot at hand. The first allocation of a process decides whether
 * Memcheck watches. */
static rc_noinline void *alloc_slow(mem_heap *mh, size_t size, unsigned kind) {
    mem_init();
    mem_heap_ready(mh);
    mem_bounds(mh);
    if (size > MEM_SMALL_MAX)
        return large_alloc(mh, size, kind);
    if (vg_on())
        return alloc_tracked(mh, size, kind);
    return pool_take(mh, size, kind);
}

/* A slot of the head span of the class, or NULL if it has none at hand.
 * Only for a heap whose lists are set up (non-zero bounds): an empty list
 * holds span_none. */
static inline void *pool_pop(mem_heap *mh, size_t size, unsigned kind) {
    mem_span *sp = mh->partial[kind][class_of(size)];
    void *b;
    if (likely((b = sp->free) != NULL)) {
        sp->free = link_load(b);
    } else if (likely(sp->bump < sp->limit)) {
        b = sp->bump;
        sp->bump += sp->block;
    } else {
        return NULL;
    }
    sp->used++;
    asan_unpoison(b, size);
    return b;
}

rc_lto_inline void *mem_alloc_quick(mem_heap *mh, size_t payload) {
    if (unlikely(payload >= quick_end(mh)))
        return NULL;
    return pool_pop(mh, payload + QUICK_FIXED, MEM_PLAIN);
}

void *mem_alloc(mem_heap *mh, size_t size, unsigned kind) {
    void *b;
    if (likely(size <= fast_max(mh)) && likely((b = pool_pop(mh, size, kind))))
        return b;
    return alloc_slow(mh, size, kind);
}

/* The span was full, or is now empty: list it again with its true count
 * (every slot but the one just freed), or give it back to its segment
 * (unless it is its class's only span). */
static rc_noinline void free_slow(mem_heap *mh, mem_span *sp) {
    if (sp->full) {
        span_geom g = span_geometry(sp);
        sp->full = 0;
        sp->used = (int32_t)(g.n - (g.hi - g.lo)) - 1;
        partial_push(mh, sp);
    }
    if (sp->used == 0 && (sp->prev || sp->next))
        span_release(mh, sp);
}

static inline void free_account(mem_heap *mh, mem_span *sp) {
    if (unlikely(--sp->used == 0))
        free_slow(mh, sp);
}

static rc_noinline void free_tracked(mem_heap *mh, void *block) {
    mem_span *sp = span_of(block);
    vg_unblock((char *)block + vg_offset(sp->kind));
    vg_undefined(block, sizeof(void *));
    *(void **)block = sp->free;
    sp->free = block;
    vg_noaccess(block, sp->block);
    free_account(mh, sp);
}

static rc_noinline void free_other(mem_heap *mh, void *block, size_t size) {
    if (size > MEM_SMALL_MAX)
        large_free(mh, block);
    else
        free_tracked(mh, block);
}

/* Both frees are inlined into the object paths (by GCC's link-time
 * optimisation): a call would cost as much as the free itself. */
rc_lto_inline void mem_free_pooled(mem_heap *mh, void *block) {
    mem_span *sp = span_of(block);
    *(void **)block = sp->free;
    sp->free = block;
    asan_poison(block, sp->block);
    free_account(mh, sp);
}

rc_lto_inline void mem_free(mem_heap *mh, void *block, size_t size) {
    if (unlikely(size > fast_max(mh))) {
        free_other(mh, block, size);
        return;
    }
    mem_free_pooled(mh, block);
}

/* ------------------------------------------------------- heap walks */

/* Marks the free slots of sp in is_free (one bit per slot). */
static void span_free_slots(const mem_span *sp, unsigned char *is_free) {
    char *base = span_base(sp);
    for (void *f = sp->free; f;) {
        size_t i = (size_t)((char *)f - base) / sp->block;
        is_free[i / 8] |= (unsigned char)(1u << (i % 8));
        if (vg_on())
            vg_defined(f, sizeof(void *));
        void *next = link_load(f);
        if (vg_on())
            vg_noaccess(f, sizeof(void *));
        f = next;
    }
}

static void span_foreach(const mem_span *sp, mem_visit_fn fn, void *ctx) {
    enum { MAX_SLOTS = MEM_SPAN_SIZE / 16 };
    unsigned char is_free[MAX_SLOTS / 8];
    memset(is_free, 0, sizeof is_free);
    span_free_slots(sp, is_free);
    char *base = span_base(sp);
    span_geom g = span_geometry(sp);
    size_t bump = (size_t)(sp->bump - base) / sp->block;
    bool second = bump >= g.hi && g.hi > g.lo; /* in the run after the header */
    size_t first_end = second ? g.lo : bump;
    for (size_t i = 0; i < first_end; i++)
        if (!(is_free[i / 8] & (1u << (i % 8))))
            fn(base + i * sp->block, sp->kind, ctx);
    for (size_t i = g.hi; second && i < bump; i++)
        if (!(is_free[i / 8] & (1u << (i % 8))))
            fn(base + i * sp->block, sp->kind, ctx);
}

/* Calls fn on every live block: pooled ones span by span, then large. */
void mem_foreach(mem_heap *mh, mem_visit_fn fn, void *ctx) {
    mem_segment *seg = mh->segments;
    if (seg != NULL) {
        do {
            for (unsigned i = 0; i < MEM_SEGMENT_SPANS; i++)
                if (!(seg->idle & (1u << i)))
                    span_foreach(span_of(seg_span(seg, i)), fn,
                                 ctx);
            seg = seg->next;
        } while (seg != mh->segments);
    }
    for (mem_large *lg = mh->large; lg; lg = lg->next)
        fn(lg + 1, (unsigned)lg->kind, ctx);
}

/* F: segment bytes not holding a live block (free slots, class rounding,
 * span headers and the slots they cover, span tails, idle spans, alignment
 * slack) plus the large blocks' link prefixes. `live` is the bytes of all
 * live blocks, pooled and large. (A pass counts the bytes of a garbage set
 * once the whole set is reclaimed, so a dispose hook asking meanwhile gets
 * an F short by the bytes reclaimed so far, and never below 0.) */
uint64_t mem_fragmented(const mem_heap *mh, uint64_t live) {
    uint64_t segments = (mh->span_bytes + mh->free_span_bytes) / SEG_SPAN_BYTES;
    uint64_t held = segments * SEGMENT_RAW + mh->large_bytes +
                    mh->large_count * sizeof(mem_large);
    return held > live ? held - live : 0;
}

/* Returns every segment to the system; only valid once the heap is empty. */
void mem_release_all(mem_heap *mh) {
    while (mh->segments) {
        mem_segment *seg = mh->segments;
        seg_unlink(mh, seg);
        seg_free(mh, seg);
    }
    while (mh->spare)
        spare_free(mh);
    memset(mh->partial, 0, sizeof mh->partial); /* as new: not set up */
    mh->fast_max = mh->quick_end = 0;
    mh->span_bytes = 0;
    mh->free_span_bytes = 0;
}

/* ------------------------------------------------------- debug builds */

#if RCGC_DEBUG && defined(MEM_VALGRIND)
/* Objects in the debug quarantine are dead but still hold their blocks,
 * which only the quarantine's links (to their debug prefixes) point to.
 * At exit, under Memcheck, a table of their payloads keeps them reachable,
 * so the leak checker does not call them lost. */
typedef struct vg_table {
    void **at;
    size_t n, cap;
} vg_table;

static void vg_note_quarantined(void *block, unsigned kind, void *ctx) {
    vg_table *t = ctx;
    rc__header *h = hdr_of_block(block, kind);
    if (dbg_of(h)->state != DBG_FREED)
        return;
    if (t->at != NULL && t->n < t->cap)
        t->at[t->n] = payload_of(h);
    t->n++;
}

/* The table, reachable from here (volatile: the store must happen). */
static void **volatile vg_kept;

static void vg_keep_quarantine(void) {
    rc_state *st = rc_tls_state;
    if (st == NULL || st->in_pass || st->freeing)
        return;
    vg_table t = {NULL, 0, 0};
    mem_foreach(&st->heap, vg_note_quarantined, &t);
    if (t.n == 0 || (t.at = mem_sys_alloc(t.n * sizeof *t.at)) == NULL)
        return;
    t.cap = t.n;
    t.n = 0;
    mem_foreach(&st->heap, vg_note_quarantined, &t);
    vg_kept = t.at;
}
#endif
