/* rc_weak.c: weak references.
 *
 * A side table (uthash, keyed by header address) maps each object that has
 * weak references to the list of its handles; the header's F_WEAK flag says
 * whether an entry exists, so objects without weak references pay nothing.
 * Clearing an object's weak references sets every handle's target to NULL
 * and drops the entry; handles live on until rc_weak_free().
 *
 * Invariant: F_WEAK set  <=>  an entry with at least one handle exists.
 */
#include "rc_uthash.h"

_Thread_local int rc_uthash_oom;

struct rc_weak {
    void *obj;            /* NULL once the object is gone */
    rc_state *st;
    rc_weak *prev, *next; /* the entry's handles */
};

struct wk_entry {
    rc__header *key;
    rc_weak *handles;
    UT_hash_handle hh;
};

static wk_entry *wk_find(rc_state *st, rc__header *h) {
    wk_entry *e = NULL;
    HASH_FIND_PTR(st->weak, &h, e);
    return e;
}

static void wk_drop_entry(rc_state *st, wk_entry *e) {
    HASH_DEL(st->weak, e);
    e->key->gc &= ~F_WEAK;
    mem_sys_free(e, sizeof *e);
}

rc_weak *rc_weak_new(void *obj) {
    if (obj == NULL)
        return NULL;
    rc_state *st = st_get();
    if (st == NULL)
        return NULL;
    rc__header *h = hdr_of(obj);
    rc_weak *w = mem_sys_alloc(sizeof *w);
    if (w == NULL)
        return NULL;
    wk_entry *e = (h->gc & F_WEAK) ? wk_find(st, h) : NULL;
    if (e == NULL) {
        e = mem_sys_alloc(sizeof *e);
        if (e == NULL) {
            mem_sys_free(w, sizeof *w);
            return NULL;
        }
        memset(e, 0, sizeof *e);
        e->key = h;
        rc_uthash_oom = 0;
        HASH_ADD_PTR(st->weak, key, e);
        if (rc_uthash_oom) {
            mem_sys_free(e, sizeof *e);
            mem_sys_free(w, sizeof *w);
            return NULL;
        }
        h->gc |= F_WEAK;
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
    if (w->obj != NULL) {
        wk_entry *e = wk_find(w->st, hdr_of(w->obj));
        if (w->prev)
            w->prev->next = w->next;
        else
            e->handles = w->next;
        if (w->next)
            w->next->prev = w->prev;
        if (e->handles == NULL)
            wk_drop_entry(w->st, e);
    }
    mem_sys_free(w, sizeof *w);
}

/* The object is dying: its weak references now answer NULL. */
void wk_clear(rc_state *st, rc__header *h) {
    wk_entry *e = wk_find(st, h);
    if (e == NULL) {
        h->gc &= ~F_WEAK;
        return;
    }
    for (rc_weak *w = e->handles; w; w = w->next)
        w->obj = NULL;
    wk_drop_entry(st, e);
}

/* The thread's runtime ends: weak references to survivors are cleared. */
void wk_detach_all(rc_state *st) {
    wk_entry *e, *tmp;
    HASH_ITER(hh, st->weak, e, tmp) {
        wk_clear(st, e->key);
    }
}
