/* rc_weak.c: weak references.
 *
 * A side table (uthash, keyed by header address) maps each object that has
 * weak references to the list of its handles; the header's F_WEAK flag says
 * whether an entry exists, so objects without weak references pay nothing:
 * no table lookup on any path unless the flag is set. Clearing an object's
 * weak references sets every handle's target to NULL and drops the entry;
 * handles live on until rc_weak_free().
 *
 * Who clears: obj_kill() when a count reaches zero, before the finalizer;
 * obj_finalize() again after it, for references the finalizer made; the
 * collector for every member of a garbage set before any finalizer of the
 * set, and again before reclaiming, for references its finalizers made.
 * rc_thread_exit() clears those left to survivors (wk_detach_all).
 *
 * An object that is immortal when its first weak reference is made never
 * dies: its handles (st NULL) are in no table and set no flag.
 *
 * Invariants:
 *   - F_WEAK set  <=>  an entry with at least one handle exists;
 *   - a handle's obj is NULL, or an immortal object (st NULL), or a live
 *     object of handle->st whose entry lists the handle.
 */
#include "rc_uthash.h"

_Thread_local int rc_uthash_oom;

struct rc_weak {
    void *obj;            /* NULL once the object is gone */
    rc_state *st;         /* the runtime obj belongs to; NULL: immortal */
    rc_weak *prev, *next; /* the entry's handles */
};

struct wk_entry {
    rc__header *key;
    rc_weak *handles;
    UT_hash_handle hh;
};

/* ------------------------------------------------------- the table */

static wk_entry *wk_find(rc_state *st, rc__header *h) {
    wk_entry *e = NULL;
    HASH_FIND_PTR(st->weak, &h, e);
    return e;
}

/* The entry for h, made if h has none yet; NULL without memory. */
static wk_entry *wk_entry_of(rc_state *st, rc__header *h) {
    if (h->gc & F_WEAK)
        return wk_find(st, h);
    wk_entry *e = mem_sys_alloc(sizeof *e);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof *e);
    e->key = h;
    rc_uthash_oom = 0;
    HASH_ADD_PTR(st->weak, key, e);
    if (rc_uthash_oom) { /* uthash took it back out */
        mem_sys_free(e, sizeof *e);
        return NULL;
    }
    h->gc |= F_WEAK;
    return e;
}

static void wk_drop_entry(rc_state *st, wk_entry *e) {
    HASH_DEL(st->weak, e);
    e->key->gc &= ~F_WEAK;
    mem_sys_free(e, sizeof *e);
}

static void wk_unlink(wk_entry *e, rc_weak *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        e->handles = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

/* ------------------------------------------------------- API */

#if RCGC_DEBUG
/* A weak reference to a freed or dying object would dangle at once. */
static void wk_check_target(rc_state *st, void *obj) {
    obj_debug *d = dbg_of(hdr_of(obj));
    if (d->state == DBG_FREED)
        dbg_die("rc_weak_new", obj, "object already freed");
    if (d->state != DBG_LIVE)
        dbg_die("rc_weak_new", obj, "object is dying (count reached zero)");
    if (d->owner != st && d->owner != NULL) /* NULL: orphaned */
        dbg_die("rc_weak_new", obj, "object belongs to another thread");
}
#endif

rc_weak *rc_weak_new(void *obj) {
    if (obj == NULL)
        return NULL;
    rc_state *st = st_get();
    if (st == NULL)
        return NULL;
#if RCGC_DEBUG
    wk_check_target(st, obj);
#endif
    rc_weak *w = mem_sys_alloc(sizeof *w);
    if (w == NULL)
        return NULL;
    rc__header *h = hdr_of(obj);
    if ((h->gc & (F_IMMORTAL | F_WEAK)) == F_IMMORTAL) {
        /* It never dies, so nothing will clear the handle: it needs no
         * entry, nor any thread's table (a survivor of rc_thread_exit
         * belongs to none). */
        *w = (rc_weak){obj, NULL, NULL, NULL};
        return w;
    }
    wk_entry *e = wk_entry_of(st, h);
    if (e == NULL) {
        mem_sys_free(w, sizeof *w);
        return NULL;
    }
    w->obj = obj;
    w->st = st;
    w->prev = NULL;
    w->next = e->handles;
    if (e->handles)
        e->handles->prev = w;
    e->handles = w;
    return w;
}

void *rc_weak_get(rc_weak *w) {
    return w && w->obj ? rc_retain(w->obj) : NULL;
}

void rc_weak_free(rc_weak *w) {
    if (w == NULL)
        return;
    if (w->obj != NULL && w->st != NULL) {
        wk_entry *e = wk_find(w->st, hdr_of(w->obj));
        rc_assert_internal(e != NULL);
        wk_unlink(e, w);
        if (e->handles == NULL)
            wk_drop_entry(w->st, e);
    }
    mem_sys_free(w, sizeof *w);
}

/* ------------------------------------------------------- clearing */

/* The object is dying: its weak references answer NULL from now on. */
void wk_clear(rc_state *st, rc__header *h) {
    wk_entry *e = wk_find(st, h);
    rc_assert_internal(e != NULL);
    if (e == NULL) {
        h->gc &= ~F_WEAK;
        return;
    }
    for (rc_weak *w = e->handles; w; w = w->next)
        w->obj = NULL;
    wk_drop_entry(st, e);
}

/* The thread's runtime ends: weak references to survivors are cleared, so
 * that no handle keeps a pointer into a runtime state that is gone. */
void wk_detach_all(rc_state *st) {
    wk_entry *e, *tmp;
    HASH_ITER(hh, st->weak, e, tmp) {
        wk_clear(st, e->key);
    }
}
