/* rc_debug.c: misuse reports and, in debug builds, the freed-object
 * quarantine.
 *
 * A misuse report is one line on stderr naming the operation, the address,
 * the type and the allocation site, then abort(). It is formatted on the
 * stack and written with write(2): the reporter never allocates.
 *
 * Debug builds do not hand a freed object's block back at once: the header
 * and debug prefix stay readable and say "freed" (the payload is poisoned),
 * so a later rc_retain/rc_release of it is reported instead of corrupting
 * memory. The quarantine keeps the most recently freed blocks up to a
 * number of bytes (RCGC_QUARANTINE, default 32 MiB): a misuse of an object
 * freed longer ago than that, whose block a new object may have taken,
 * can go unnoticed, as with AddressSanitizer's own quarantine.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "rc_internal.h"

static void write_line(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}

void dbg_die(const char *op, const void *obj, const char *what) {
    if (obj == NULL) {
        write_line("rcgc: %s: %s", op, what);
        abort();
    }
    rc__header *h = hdr_of(obj);
    const char *name = h->type && h->type->name ? h->type->name : "?";
#if RCGC_DEBUG
    obj_debug *d = dbg_of(h);
    if (d->file != NULL) {
        write_line("rcgc: %s: %s: %p (type '%s', allocated at %s:%d)", op,
                   what, obj, name, d->file, d->line);
        abort();
    }
#endif
    write_line("rcgc: %s: %s: %p (type '%s')", op, what, obj, name);
    abort();
}

/* Nothing in front of obj can be trusted, not even its type. */
void dbg_die_foreign(const char *op, const void *obj) {
    write_line("rcgc: %s: %p is not an rcgc object (not allocated by rcgc, "
               "or the memory in front of it was overwritten)", op, obj);
    abort();
}

/* A pass found more edges into `child` than its count: the trace of
 * `parent`'s type reports an edge twice, or one it does not own. */
void dbg_bad_trace(rc__header *parent, void *child) {
    const rc_type *t = parent ? parent->type : NULL;
    const rc_type *ct = hdr_of(child)->type;
    write_line("rcgc: rc_collect: count of %p (type '%s') would go below zero: "
               "trace of type '%s' reports an edge it does not own",
               child, ct && ct->name ? ct->name : "?",
               t && t->name ? t->name : "?");
    abort();
}

void dbg_assert_fail(const char *expr, const char *file, int line) {
    write_line("rcgc: internal check failed: %s (%s:%d)", expr, file, line);
    abort();
}

#if RCGC_DEBUG

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define DBG_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define DBG_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define DBG_POISON(p, n) ((void)0)
#define DBG_UNPOISON(p, n) ((void)0)
#endif

#define DBG_QUARANTINE_DEFAULT ((uint64_t)32 << 20)

/* RCGC_QUARANTINE: bytes, with an optional K, M or G suffix; 0 turns the
 * quarantine off. A value that does not parse is reported once and the
 * default used. */
static uint64_t quarantine_limit;
static pthread_once_t quarantine_once = PTHREAD_ONCE_INIT;

static void quarantine_read_env(void) {
    quarantine_limit = DBG_QUARANTINE_DEFAULT;
    const char *v = getenv("RCGC_QUARANTINE");
    if (v == NULL || *v == '\0')
        return;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 ||
        n > (UINT64_MAX >> shift)) {
        write_line("rcgc: RCGC_QUARANTINE: bad size '%s' (bytes, or with a "
                   "K, M or G suffix); using 32M", v);
        return;
    }
    quarantine_limit = (uint64_t)n << shift;
}

uint64_t dbg_quarantine_limit(void) {
    pthread_once(&quarantine_once, quarantine_read_env);
    return quarantine_limit;
}

/* The header and debug prefix stay intact (block_size() still answers);
 * the payload is filled with 0xdb and poisoned. */
void dbg_quarantine(rc_state *st, rc__header *h, size_t size) {
    obj_debug *d = dbg_of(h);
    d->state = DBG_FREED;
    d->qnext = NULL;
    size_t payload = size - (size_t)((char *)payload_of(h) - (char *)block_of(h));
    memset(payload_of(h), 0xdb, payload);
    DBG_POISON(payload_of(h), payload);
    if (st->quarantine_tail)
        st->quarantine_tail->qnext = d;
    else
        st->quarantine_head = d;
    st->quarantine_tail = d;
    st->quarantine_bytes += size;
    if (st->quarantine_bytes > st->quarantine_max)
        dbg_quarantine_flush(st, st->quarantine_max);
}

/* Hands the oldest quarantined blocks back until at most `keep` bytes of
 * them remain. */
void dbg_quarantine_flush(rc_state *st, uint64_t keep) {
    while (st->quarantine_bytes > keep) {
        obj_debug *d = st->quarantine_head;
        st->quarantine_head = d->qnext;
        if (st->quarantine_head == NULL)
            st->quarantine_tail = NULL;
        rc__header *h = (rc__header *)(d + 1);
        size_t size = block_size(h);
        st->quarantine_bytes -= size;
        DBG_UNPOISON(block_of(h), size);
        mem_free(&st->heap, block_of(h), size);
    }
}

#endif
