/* rc_state.c: per-thread runtime state, its creation and its end.
 *
 * Each thread gets its own rc_state on first use (allocation, weak
 * reference, collection). It ends with rc_thread_exit(), or when the thread
 * exits (a pthread key destructor does the same work). A state whose thread
 * ends with objects still alive is kept on a process-wide orphan list: those
 * objects turn immortal, their memory stays valid and reachable, and
 * nothing is reused.
 */
#include <pthread.h>
#include <stdlib.h>

#include "rc_internal.h"

_Thread_local rc_state *rc_tls_state
    __attribute__((tls_model("initial-exec")));
_Thread_local size_t rc_tls_threshold
    __attribute__((tls_model("initial-exec"))) = RC_DEFAULT_THRESHOLD;

static pthread_key_t st_key;
static pthread_once_t st_key_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static rc_state *orphans;
static bool key_ok;

static void st_key_destructor(void *p) {
    (void)p;
    rc_thread_exit();
}

static void st_key_init(void) {
    key_ok = pthread_key_create(&st_key, st_key_destructor) == 0;
    rpt_init();
}

rc_state *st_create(void) {
    pthread_once(&st_key_once, st_key_init);
    rc_state *st = mem_sys_alloc(sizeof *st);
    if (st == NULL)
        return NULL;
    memset(st, 0, sizeof *st);
#if RCGC_DEBUG
    st->quarantine_max = dbg_quarantine_limit();
#endif
    if (key_ok)
        pthread_setspecific(st_key, st);
    rc_tls_state = st;
    return st;
}

/* A survivor of its thread's runtime turns immortal: its memory stays
 * valid for good, and a retain or release the program still makes (after
 * rc_thread_exit, or from a destructor running at process exit) touches
 * its count and nothing else, least of all the runtime it came from. */
static void st_orphan_object(void *block, unsigned kind, void *ctx) {
    (void)ctx;
    rc__header *h = hdr_of_block(block, kind);
    h->rc = RC_IMMORTAL_COUNT;
    h->gc |= F_IMMORTAL;
#if RCGC_DEBUG
    dbg_of(h)->owner = NULL; /* no thread's now */
#endif
}

static void st_free(rc_state *st) {
    mem_sys_free(st->roots, st->roots_cap * sizeof *st->roots);
    mem_sys_free(st->work, st->work_cap * sizeof *st->work);
    st->roots = NULL;
    st->work = NULL;
    st->roots_cap = st->work_cap = st->nroots = 0;
}

void rc_thread_exit(void) {
    rc_state *st = rc_tls_state;
    if (st == NULL || st->in_pass || st->freeing)
        return;
    rc_collect();
    rpt_at_thread_exit(st);
#if RCGC_DEBUG
    dbg_quarantine_flush(st, 0);
#endif
    gc_forget_roots(st);
    wk_detach_all(st);
    st_free(st);
    if (key_ok)
        pthread_setspecific(st_key, NULL);
    rc_tls_state = NULL;
    if (st_block_bytes(st) == 0) {
        mem_release_all(&st->heap);
        mem_sys_free(st, sizeof *st);
        return;
    }
    mem_foreach(&st->heap, st_orphan_object, NULL);
    pthread_mutex_lock(&orphan_lock);
    st->next_orphan = orphans;
    orphans = st;
    pthread_mutex_unlock(&orphan_lock);
}

/* ------------------------------------------------------- statistics */

void rc_stats_get(rc_stats *out) {
    rc_state *st = rc_tls_state;
    if (st == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = st->stats;
    out->objects_allocated = st_allocated(st);
    out->objects_freed = st_freed(st);
    out->objects_live = out->objects_allocated - out->objects_freed;
    out->bytes_live = out->bytes_allocated - out->bytes_freed;
    out->bytes_fragmented = mem_fragmented(&st->heap, st_block_bytes(st));
}

size_t rc_live_objects(void) {
    rc_state *st = rc_tls_state;
    return st ? (size_t)(st_allocated(st) - st_freed(st)) : 0;
}
