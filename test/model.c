/* model.c: the random-program model and its reachability oracle (model.h).
 *
 * Invariants the model keeps between ops:
 *   - o[id].ptr is dereferenced only while o[id].disposed == 0 (dispose is
 *     the last thing the runtime does before reclaiming the memory);
 *   - the model's edges (o[id].slot), external counts, global slots and
 *     immortal flags are the program's truth; the payloads mirror the edges
 *     and are compared with them, never read to learn them;
 *   - the model is updated before the runtime call that acts on it, so a
 *     finalize or dispose run by that call sees the program's new state;
 *   - nothing is drawn from the byte source inside a hook, so the meaning
 *     of the bytes does not depend on the order the runtime runs hooks in.
 */
#define _POSIX_C_SOURCE 200809L

#include "model.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rcgc.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define MODEL_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef MODEL_ON_VALGRIND
#define MODEL_ON_VALGRIND() 0
#endif

/* --------------------------------------------------------------- payloads */

#define MAGIC_LIVE 0x6d6f646cu /* written at allocation */
#define MAGIC_DEAD 0x64656164u /* written by dispose */

/* Every payload starts with the model id and the graph it belongs to. */
typedef struct mhead {
    uint32_t magic;
    uint32_t id;
    uint64_t epoch;
} mhead;

typedef struct mnode {
    mhead h;
    void *slot[MODEL_NODE_SLOTS];
} mnode;

/* Children in a malloc'd array, freed by dispose. */
typedef struct mvec {
    mhead h;
    uint32_t len, cap;
    void **items;
} mvec;

/* No references; `extra` bytes follow (rc_alloc_extra), filled with a
 * pattern that must survive. */
typedef struct mleaf {
    mhead h;
    unsigned char extra[];
} mleaf;

enum { K_NODE, K_VEC, K_LEAF };

/* Finalizer actions, chosen per object at allocation. */
#define ACT_RESURRECT 1u /* store the object into a free global slot */
#define ACT_CLEAR 2u     /* release global slot clear_slot */
#define ACT_ALLOC 4u     /* allocate a leaf into a free global slot */
#define ACT_LOOP 8u      /* store the object into a NULL slot of its own */
#define ACT_BACK 16u     /* store it into a NULL slot of one of its children */

/* Other hook behaviours, chosen per object at allocation. */
#define HK_FIN_CALLS 1u   /* finalize calls the runtime back (reenter()) */
#define HK_DISP_CALLS 2u  /* dispose does */
#define HK_TRACE_CALLS 4u /* trace does, while the program dumps the graph */
#define HK_DISP_CLEAR 8u  /* dispose releases global slot disp_slot */
#define HK_FIN_OFF 16u    /* finalize turns automatic passes off */

/* ------------------------------------------------------------ model state */

/* The model's view of one object. */
typedef struct mobj {
    void *ptr;
    const rc_type *type;
    uint8_t kind, has_fin, immortal, act, hooks;
    uint8_t res_slot, clear_slot, disp_slot;
    uint16_t nslots;                /* node: MODEL_NODE_SLOTS; vec: len */
    int16_t slot[MODEL_VEC_MAX];    /* child ids, -1 for NULL */
    uint32_t ext;                   /* external references */
    uint32_t finalized, disposed;   /* hook calls seen */
    uint32_t extra;                 /* leaf: extra payload bytes */
} mobj;

/* The byte source every decision is drawn from. */
typedef struct msrc {
    const uint8_t *data;
    size_t size, pos;
    bool prng, exhausted, recording;
    uint64_t state, buf;
    unsigned nbuf;
    uint8_t *rec; /* recording of the consumed bytes, or NULL */
    size_t rec_len, rec_cap;
    bool rec_oom;
} msrc;

enum {
    OP_ALLOC, OP_SET, OP_CLEAR, OP_DROP, OP_DUP, OP_GLOBAL,
    OP_COLLECT, OP_AUTO, OP_REPORT, OP_IMMORTAL, OP_COUNT
};

typedef struct model {
    const model_params *p;
    model_stats *st;
    msrc s;
    uint64_t seed, graph, op, epoch;
    unsigned cap;  /* objects this graph may allocate */
    unsigned nobj; /* objects allocated so far: ids 0..nobj-1 */
    mobj *o;
    int32_t gid[MODEL_GLOBALS]; /* model id in each global slot, or -1 */
    void *gptr[MODEL_GLOBALS];  /* the global slots: strong references */
    size_t baseline;            /* live objects before the graph */
    uint64_t ndisposed;
    bool immortal_ok, failed;
    unsigned w[OP_COUNT], wtotal;
    unsigned pct_vec, pct_leaf, pct_fin, pct_extra;
    unsigned auto_left; /* ops left in a window of automatic passes */
    bool off_in_hook;   /* a finalizer closed the window during this op */
    uint64_t off_mark;  /* collections() when it did */
    bool dumping;       /* the program is in rc_dump_dot() */
    FILE *devnull;      /* what reports and dumps are written to */
    /* oracle scratch */
    bool dirty;
    uint8_t *reach;
    int32_t *stack, *list, *plist;
    unsigned nlist, nplist;
    uint32_t *indeg;
} model;

static _Thread_local model *tl_model;
static atomic_uint_fast64_t epochs;
static atomic_uint_fast64_t stray_hooks; /* hook calls outside any graph */

/* ---------------------------------------------------------------- reports */

static void fail(model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail(model *m, const char *fmt, ...) {
    if (m->failed)
        return;
    m->failed = true;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (m->s.prng)
        snprintf(m->st->failure, sizeof m->st->failure,
                 "seed=%llu graph=%llu op=%llu: %s",
                 (unsigned long long)m->seed, (unsigned long long)m->graph,
                 (unsigned long long)m->op, what);
    else
        snprintf(m->st->failure, sizeof m->st->failure,
                 "bytes op=%llu: %s", (unsigned long long)m->op, what);
    fprintf(stderr, "model: MISMATCH %s\n", m->st->failure);
}

static void tr(model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void tr(model *m, const char *fmt, ...) {
    if (m->p->trace == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(m->p->trace, "  [%llu] ", (unsigned long long)m->op);
    vfprintf(m->p->trace, fmt, ap);
    fputc('\n', m->p->trace);
    va_end(ap);
}

static const char *name_of(const mobj *o) {
    return o->type ? o->type->name : "?";
}

/* ------------------------------------------------------------- the source */

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t model_graph_seed(uint64_t seed, uint64_t graph) {
    uint64_t x = seed ^ (graph * 0xd1b54a32d192ed03ull);
    splitmix(&x);
    return splitmix(&x);
}

static void src_record(msrc *s, unsigned b) {
    if (s->rec_len == s->rec_cap) {
        size_t cap = s->rec_cap ? s->rec_cap * 2 : 1024;
        uint8_t *rec = realloc(s->rec, cap);
        if (rec == NULL) {
            s->rec_oom = true;
            return;
        }
        s->rec = rec;
        s->rec_cap = cap;
    }
    s->rec[s->rec_len++] = (uint8_t)b;
}

static unsigned src_byte(msrc *s) {
    unsigned b;
    if (s->prng) {
        if (s->nbuf == 0) {
            s->buf = splitmix(&s->state);
            s->nbuf = 8;
        }
        b = (unsigned)(s->buf & 0xff);
        s->buf >>= 8;
        s->nbuf--;
    } else if (s->pos < s->size) {
        b = s->data[s->pos++];
    } else {
        s->exhausted = true;
        return 0;
    }
    if (s->recording)
        src_record(s, b);
    return b;
}

/* A value in [0, n): one byte for n <= 256, two up to 65536, else three.
 * n <= 1 consumes nothing. */
static unsigned pick(model *m, unsigned n) {
    if (n <= 1)
        return 0;
    unsigned v = src_byte(&m->s);
    if (n > 256)
        v |= src_byte(&m->s) << 8;
    if (n > 65536)
        v |= src_byte(&m->s) << 16;
    return v % n;
}

static bool chance(model *m, unsigned pct) { return pick(m, 100) < pct; }

/* ------------------------------------------------------------------ hooks */

static bool alive(const mobj *o) { return o->disposed == 0; }

static uint64_t collections(void) {
    rc_stats s;
    rc_stats_get(&s);
    return s.collections;
}

/* Calls the runtime back from inside a hook, where objects may be dying:
 * rc_collect() must do nothing, rc_leak_report() count only and
 * rc_dump_dot() write an empty graph and fail. */
static void reenter(model *m, unsigned id, const char *hook) {
    size_t live = rc_live_objects();
    uint64_t passes = collections();
    size_t r = rc_collect();
    if (r != 0 || collections() != passes || rc_live_objects() != live)
        fail(m, "rc_collect() inside the %s of #%u returned %zu (%llu "
             "passes, live %zu -> %zu)", hook, id, r,
             (unsigned long long)(collections() - passes), live,
             rc_live_objects());
    size_t n = rc_leak_report(m->devnull);
    if (n != live)
        fail(m, "rc_leak_report() inside the %s of #%u returned %zu, "
             "rc_live_objects() %zu", hook, id, n, live);
    int d = rc_dump_dot(m->devnull);
    if (d != -1)
        fail(m, "rc_dump_dot() inside the %s of #%u returned %d", hook, id,
             d);
}

/* The model object behind a payload handed to a hook, or NULL (after a
 * failure is recorded) when the payload is not one of this graph's live
 * objects. */
static mobj *hook_obj(model *m, void *obj, const char *hook) {
    const mhead *h = obj;
    if (m == NULL) {
        atomic_fetch_add(&stray_hooks, 1);
        return NULL;
    }
    if (h->magic == MAGIC_DEAD) {
        fail(m, "%s of #%u after its dispose", hook, h->id);
        return NULL;
    }
    if (h->magic != MAGIC_LIVE) {
        fail(m, "%s of an object with a bad payload (magic %08x)", hook,
             h->magic);
        return NULL;
    }
    if (h->epoch != m->epoch) {
        fail(m, "%s of #%u of an earlier graph", hook, h->id);
        return NULL;
    }
    if (h->id >= m->nobj || m->o[h->id].ptr != obj) {
        fail(m, "%s of an object the model does not know (id %u)", hook,
             h->id);
        return NULL;
    }
    return &m->o[h->id];
}

/* Checks that a traced object was not disposed; while the program dumps
 * the graph, objects so marked call the runtime back. */
static void trace_check(const mhead *h) {
    model *m = tl_model;
    if (h->magic == MAGIC_LIVE) {
        if (m != NULL && m->dumping && h->epoch == m->epoch &&
            h->id < m->nobj && (m->o[h->id].hooks & HK_TRACE_CALLS))
            reenter(m, h->id, "trace");
        return;
    }
    if (m != NULL)
        fail(m, "trace of #%u after its dispose (magic %08x)", h->id,
             h->magic);
    else
        atomic_fetch_add(&stray_hooks, 1);
}

static void node_trace(void *obj, rc_visit_fn visit, void *ctx) {
    mnode *n = obj;
    trace_check(&n->h);
    for (unsigned i = 0; i < MODEL_NODE_SLOTS; i++)
        visit(n->slot[i], ctx);
}

static void vec_trace(void *obj, rc_visit_fn visit, void *ctx) {
    mvec *v = obj;
    trace_check(&v->h);
    for (uint32_t i = 0; i < v->len; i++)
        visit(v->items[i], ctx);
}

/* Empties global slot k; the release may run any hook. */
static void release_global(model *m, unsigned k) {
    if (m->gid[k] < 0)
        return;
    void *old = m->gptr[k];
    m->gid[k] = -1;
    m->gptr[k] = NULL;
    m->dirty = true;
    rc_release(old);
}

static void note_dispose(void *obj) {
    model *m = tl_model;
    mobj *o = hook_obj(m, obj, "dispose");
    ((mhead *)obj)->magic = MAGIC_DEAD;
    if (o == NULL)
        return;
    o->disposed++;
    m->ndisposed++;
    unsigned id = (unsigned)(o - m->o);
    if (o->immortal)
        fail(m, "immortal #%u (%s) disposed", id, name_of(o));
    else if (o->has_fin && o->finalized != 1)
        fail(m, "#%u (%s) disposed after %u finalize calls", id, name_of(o),
             o->finalized);
    if (o->hooks & HK_DISP_CALLS)
        reenter(m, id, "dispose");
    if (o->hooks & HK_DISP_CLEAR)
        release_global(m, o->disp_slot);
}

static void obj_dispose(void *obj) { note_dispose(obj); }

static void vec_dispose(void *obj) {
    mvec *v = obj;
    note_dispose(obj);
    free(v->items);
    v->items = NULL;
    v->len = v->cap = 0;
}

static int new_object(model *m, unsigned kind, bool fin, size_t extra,
                      unsigned variant);

/* A free global slot, trying `from` first; -1 when all are taken. */
static int free_global(model *m, unsigned from) {
    for (unsigned i = 0; i < MODEL_GLOBALS; i++) {
        unsigned k = (from + i) % MODEL_GLOBALS;
        if (m->gid[k] < 0)
            return (int)k;
    }
    return -1;
}

/* A NULL slot of #id (node slot or vec item), or -1. */
static int null_slot(const mobj *o) {
    for (unsigned i = 0; i < o->nslots; i++)
        if (o->slot[i] < 0)
            return (int)i;
    return -1;
}

/* Stores #to into NULL slot i of #from: a new edge, nothing released. */
static void link_null_slot(model *m, unsigned from, unsigned i, unsigned to) {
    mobj *f = &m->o[from];
    void **slot = f->kind == K_NODE ? &((mnode *)f->ptr)->slot[i]
                                    : &((mvec *)f->ptr)->items[i];
    f->slot[i] = (int16_t)to;
    m->dirty = true;
    rc_set(slot, m->o[to].ptr);
    m->st->resurrected++;
}

/* Resurrects #id through a cycle, which no count of a candidate root may
 * show: a self-loop, or a back edge from its first child with room. */
static void fin_cycle(model *m, unsigned id) {
    mobj *o = &m->o[id];
    int i = null_slot(o);
    if ((o->act & ACT_LOOP) && i >= 0) {
        link_null_slot(m, id, (unsigned)i, id);
        return;
    }
    for (unsigned k = 0; k < o->nslots && (o->act & ACT_BACK); k++) {
        int c = o->slot[k];
        int j = c >= 0 && alive(&m->o[c]) ? null_slot(&m->o[c]) : -1;
        if (j >= 0) {
            link_null_slot(m, (unsigned)c, (unsigned)j, id);
            return;
        }
    }
}

/* Turns automatic passes off in the middle of an op: from then on only a
 * pass already running may end. */
static void fin_threshold_off(model *m) {
    if (m->auto_left == 0)
        return;
    m->auto_left = 0;
    m->off_in_hook = true;
    m->off_mark = collections();
    rc_set_threshold(0);
}

/* The finalizer's side effects: release a global (which may run other
 * hooks), allocate a leaf into a global, resurrect the object into a
 * global or through a cycle. */
static void fin_actions(model *m, mobj *o, void *obj) {
    unsigned id = (unsigned)(o - m->o);
    if (o->act & ACT_CLEAR)
        release_global(m, o->clear_slot);
    if ((o->act & ACT_ALLOC) && m->nobj < m->cap && !m->failed) {
        int nid = new_object(m, K_LEAF, false, 0, 1);
        if (nid >= 0) {
            int k = free_global(m, o->res_slot);
            if (k >= 0) {
                m->gid[k] = nid;
                m->gptr[k] = m->o[nid].ptr; /* the allocation's reference */
                m->dirty = true;
            } else {
                rc_release(m->o[nid].ptr);
            }
        }
    }
    if (o->act & ACT_RESURRECT) {
        int k = free_global(m, o->res_slot);
        if (k >= 0) {
            m->gid[k] = (int32_t)id;
            m->dirty = true;
            rc_set(&m->gptr[k], obj);
            m->st->resurrected++;
        }
    }
    if (o->act & (ACT_LOOP | ACT_BACK))
        fin_cycle(m, id);
}

static void obj_finalize(void *obj) {
    model *m = tl_model;
    mobj *o = hook_obj(m, obj, "finalize");
    if (o == NULL)
        return;
    unsigned id = (unsigned)(o - m->o);
    o->finalized++;
    m->st->finalized++;
    if (o->finalized > 1) {
        fail(m, "#%u (%s) finalized %u times", id, name_of(o), o->finalized);
        return;
    }
    if (o->immortal)
        fail(m, "immortal #%u (%s) finalized", id, name_of(o));
    for (unsigned i = 0; i < o->nslots; i++) {
        int c = o->slot[i];
        if (c >= 0 && !alive(&m->o[c]))
            fail(m, "finalize of #%u (%s): its child #%d was already disposed",
                 id, name_of(o), c);
    }
    if (o->hooks & HK_FIN_CALLS)
        reenter(m, id, "finalizer");
    if (o->hooks & HK_FIN_OFF)
        fin_threshold_off(m);
    fin_actions(m, o, obj);
}

static const rc_type t_node = {"model.node", sizeof(mnode), node_trace,
                               NULL, 0, obj_dispose};
static const rc_type t_node_fin = {"model.node_fin", sizeof(mnode),
                                   node_trace, obj_finalize, 0, obj_dispose};
static const rc_type t_vec = {"model.vec", sizeof(mvec), vec_trace, NULL, 0,
                              vec_dispose};
static const rc_type t_vec_fin = {"model.vec_fin", sizeof(mvec), vec_trace,
                                  obj_finalize, 0, vec_dispose};
static const rc_type t_leaf = {"model.leaf", sizeof(mleaf), NULL, NULL,
                               RC_TYPE_ACYCLIC, obj_dispose};
/* No trace and no flag: acyclic all the same. */
static const rc_type t_leaf_plain = {"model.leaf_plain", sizeof(mleaf), NULL,
                                     NULL, 0, obj_dispose};
static const rc_type t_leaf_fin = {"model.leaf_fin", sizeof(mleaf), NULL,
                                   obj_finalize, RC_TYPE_ACYCLIC,
                                   obj_dispose};

static const rc_type *type_for(unsigned kind, bool fin, unsigned variant) {
    switch (kind) {
    case K_NODE: return fin ? &t_node_fin : &t_node;
    case K_VEC: return fin ? &t_vec_fin : &t_vec;
    default:
        if (fin)
            return &t_leaf_fin;
        return (variant & 2) ? &t_leaf_plain : &t_leaf;
    }
}

/* ------------------------------------------------------------- allocation */

static void *alloc_payload(const rc_type *t, unsigned kind, size_t extra,
                           unsigned variant) {
    if (extra != 0)
        return rc_alloc_extra(t, extra);
    if (kind == K_NODE && (variant & 1))
        return rc_new(mnode, t);
    return (variant & 1) ? rc_alloc(t) : rc_alloc_extra(t, 0);
}

static bool payload_zeroed(const void *obj, size_t n) {
    const unsigned char *b = obj;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static unsigned char extra_byte(unsigned id, size_t j) {
    return (unsigned char)(id * 7u + j * 13u + 1u);
}

/* Allocates a new object with count 1 (the caller owns that reference) and
 * enters it in the table. Returns its id, or -1 after recording a failure. */
static int new_object(model *m, unsigned kind, bool fin, size_t extra,
                      unsigned variant) {
    const rc_type *t = type_for(kind, fin, variant);
    void *obj = alloc_payload(t, kind, extra, variant);
    if (obj == NULL) {
        fail(m, "rc_alloc(%s, extra %zu) returned NULL", t->name, extra);
        return -1;
    }
    unsigned id = m->nobj++;
    mobj *o = &m->o[id];
    memset(o, 0, sizeof *o);
    memset(o->slot, 0xff, sizeof o->slot);
    o->ptr = obj;
    o->type = t;
    o->kind = (uint8_t)kind;
    o->has_fin = fin;
    o->nslots = kind == K_NODE ? MODEL_NODE_SLOTS : 0;
    o->extra = (uint32_t)extra;
    m->st->allocated++;
    m->dirty = true;
    if (!payload_zeroed(obj, t->size + extra))
        fail(m, "new #%u (%s) is not zeroed", id, t->name);
    if (rc_refcount(obj) != 1 || rc_type_of(obj) != t)
        fail(m, "new #%u (%s): count %zu, type %p", id, t->name,
             rc_refcount(obj), (const void *)rc_type_of(obj));
    mhead *h = obj;
    h->magic = MAGIC_LIVE;
    h->id = id;
    h->epoch = m->epoch;
    for (size_t j = 0; j < extra; j++)
        ((mleaf *)obj)->extra[j] = extra_byte(id, j);
    return (int)id;
}

/* ----------------------------------------------------------------- oracle */

static void push_root(model *m, unsigned *sp, int id) {
    if (id >= 0 && !m->reach[id]) {
        m->reach[id] = 1;
        m->stack[(*sp)++] = id;
    }
}

/* Reachability from the external references, the global slots and the
 * immortal objects, over the model's own edges. */
static void update_reach(model *m) {
    if (!m->dirty)
        return;
    m->dirty = false;
    memset(m->reach, 0, m->nobj);
    unsigned sp = 0;
    for (unsigned id = 0; id < m->nobj; id++)
        if (m->o[id].ext > 0 || m->o[id].immortal)
            push_root(m, &sp, (int)id);
    for (unsigned k = 0; k < MODEL_GLOBALS; k++)
        push_root(m, &sp, m->gid[k]);
    while (sp > 0) {
        const mobj *o = &m->o[m->stack[--sp]];
        for (unsigned i = 0; i < o->nslots; i++)
            push_root(m, &sp, o->slot[i]);
    }
    m->nlist = m->nplist = 0;
    for (unsigned id = 0; id < m->nobj; id++) {
        if (!m->reach[id])
            continue;
        m->list[m->nlist++] = (int32_t)id;
        if (m->o[id].kind != K_LEAF)
            m->plist[m->nplist++] = (int32_t)id;
    }
}

/* In-degree of every object from live objects and global slots. */
static void count_indeg(model *m) {
    memset(m->indeg, 0, m->nobj * sizeof *m->indeg);
    for (unsigned id = 0; id < m->nobj; id++) {
        const mobj *o = &m->o[id];
        if (!alive(o))
            continue;
        for (unsigned i = 0; i < o->nslots; i++)
            if (o->slot[i] >= 0)
                m->indeg[o->slot[i]]++;
    }
    for (unsigned k = 0; k < MODEL_GLOBALS; k++)
        if (m->gid[k] >= 0)
            m->indeg[m->gid[k]]++;
}

static void *ptr_of(model *m, int id) { return id >= 0 ? m->o[id].ptr : NULL; }

/* The payload of live #id against the model: header, edges, leaf bytes. */
static void check_payload(model *m, unsigned id) {
    const mobj *o = &m->o[id];
    const mhead *h = o->ptr;
    if (h->magic != MAGIC_LIVE || h->id != id || h->epoch != m->epoch ||
        rc_type_of(o->ptr) != o->type) {
        fail(m, "payload header of live #%u (%s) was overwritten", id,
             name_of(o));
        return;
    }
    for (unsigned i = 0; i < o->nslots; i++)
        if (o->slot[i] >= 0 && !alive(&m->o[o->slot[i]]))
            fail(m, "live #%u (%s) holds #%d, which was disposed", id,
                 name_of(o), o->slot[i]);
    if (o->kind == K_NODE) {
        const mnode *n = o->ptr;
        for (unsigned i = 0; i < MODEL_NODE_SLOTS; i++)
            if (n->slot[i] != ptr_of(m, o->slot[i]))
                fail(m, "slot %u of live #%u (%s) was overwritten", i, id,
                     name_of(o));
    } else if (o->kind == K_VEC) {
        const mvec *v = o->ptr;
        if (v->len != o->nslots) {
            fail(m, "length of live #%u (%s) was overwritten", id, name_of(o));
            return;
        }
        for (unsigned i = 0; i < o->nslots; i++)
            if (v->items[i] != ptr_of(m, o->slot[i]))
                fail(m, "item %u of live #%u (%s) was overwritten", i, id,
                     name_of(o));
    } else {
        const mleaf *l = o->ptr;
        for (size_t j = 0; j < o->extra; j++)
            if (l->extra[j] != extra_byte(id, j)) {
                fail(m, "extra byte %zu of live #%u (%s) was overwritten", j,
                     id, name_of(o));
                break;
            }
    }
}

/* One object against the oracle; returns whether it is alive. */
static bool check_object(model *m, unsigned id, bool after_collect) {
    const mobj *o = &m->o[id];
    if (o->disposed > 1 || o->finalized > 1)
        fail(m, "#%u (%s): disposed %u, finalized %u times", id, name_of(o),
             o->disposed, o->finalized);
    if (!alive(o)) {
        if (m->reach[id])
            fail(m, "#%u (%s) is reachable but was disposed", id, name_of(o));
        return false;
    }
    size_t got = rc_refcount(o->ptr);
    if (after_collect && !m->reach[id])
        fail(m, "#%u (%s) is unreachable but alive after rc_collect() "
             "(count %zu)", id, name_of(o), got);
    check_payload(m, id);
    unsigned globals = 0;
    for (unsigned k = 0; k < MODEL_GLOBALS; k++)
        globals += m->gid[k] == (int32_t)id;
    size_t want = o->immortal ? SIZE_MAX : (size_t)m->indeg[id] + o->ext;
    if (got != want)
        fail(m, "#%u (%s): rc_refcount %zu, model %zu (edges from live "
             "objects %u, external %u, global %u%s)", id, name_of(o), got,
             want, m->indeg[id] - globals, o->ext, globals,
             o->immortal ? ", immortal" : "");
    return true;
}

static void check_stats(model *m, size_t live) {
    rc_stats s;
    rc_stats_get(&s);
    if (s.objects_live != live ||
        s.objects_allocated - s.objects_freed != s.objects_live)
        fail(m, "stats: allocated %llu freed %llu live %llu, "
             "rc_live_objects() %zu", (unsigned long long)s.objects_allocated,
             (unsigned long long)s.objects_freed,
             (unsigned long long)s.objects_live, live);
}

/* The whole table against the oracle. After rc_collect() nothing
 * unreachable may be left alive. */
static void check(model *m, bool after_collect) {
    m->dirty = true;
    update_reach(m);
    count_indeg(m);
    size_t nalive = 0;
    for (unsigned id = 0; id < m->nobj && !m->failed; id++)
        nalive += check_object(m, id, after_collect);
    if (m->failed)
        return;
    if (nalive > m->st->peak_live)
        m->st->peak_live = nalive;
    size_t live = rc_live_objects();
    if (live != m->baseline + nalive)
        fail(m, "rc_live_objects() %zu, model %zu (+%zu from before the "
             "graph)", live, nalive, m->baseline);
    if (after_collect)
        check_stats(m, live);
}

/* -------------------------------------------------------------- targets */

/* A random reachable object, or -1 when there is none. Touching a disposed
 * one would be a use after free: it is a mismatch. */
static int checked(model *m, int id) {
    if (id >= 0 && !alive(&m->o[id])) {
        fail(m, "#%d (%s) is reachable but was disposed", id,
             name_of(&m->o[id]));
        return -1;
    }
    return id;
}

static int pick_reach(model *m) {
    update_reach(m);
    if (m->nlist == 0)
        return -1;
    return checked(m, m->list[pick(m, m->nlist)]);
}

static int pick_parent(model *m) {
    update_reach(m);
    if (m->nplist == 0)
        return -1;
    return checked(m, m->plist[pick(m, m->nplist)]);
}

/* A child for a slot: NULL one time in eight. */
static int pick_child(model *m) {
    return pick(m, 8) == 0 ? -1 : pick_reach(m);
}

/* ------------------------------------------------------------------- ops */

/* The HK_* behaviours of a new object: calls back from a hook one time
 * in sixteen, passes turned off by a finalizer one in eight, a dispose
 * that empties a global one in four. */
static unsigned draw_hooks(model *m, bool fin) {
    unsigned hooks = 0;
    if (fin && pick(m, 16) == 0)
        hooks |= HK_FIN_CALLS;
    if (fin && pick(m, 8) == 0)
        hooks |= HK_FIN_OFF;
    if (pick(m, 16) == 0)
        hooks |= HK_DISP_CALLS;
    if (pick(m, 16) == 0)
        hooks |= HK_TRACE_CALLS;
    if (pick(m, 4) == 0)
        hooks |= HK_DISP_CLEAR;
    return hooks;
}

static void op_alloc(model *m) {
    if (m->nobj >= m->cap) {
        tr(m, "alloc: table full");
        return;
    }
    unsigned kind = chance(m, m->pct_leaf) ? K_LEAF
                    : chance(m, m->pct_vec) ? K_VEC : K_NODE;
    bool fin = chance(m, m->pct_fin);
    unsigned act = 0, rs = 0, cs = 0, hooks = draw_hooks(m, fin);
    if (fin) {
        unsigned cycle = pick(m, 8); /* 3 in 8: ACT_LOOP, ACT_BACK or both */
        act = pick(m, 8) | (cycle < 3 ? (cycle + 1) << 3 : 0);
        rs = pick(m, MODEL_GLOBALS);
        cs = pick(m, MODEL_GLOBALS);
    }
    unsigned ds = (hooks & HK_DISP_CLEAR) ? pick(m, MODEL_GLOBALS) : 0;
    size_t extra = 0;
    if (kind == K_LEAF && chance(m, m->pct_extra))
        extra = pick(m, 300);
    unsigned variant = pick(m, 4);
    int id = new_object(m, kind, fin, extra, variant);
    if (id < 0)
        return;
    mobj *o = &m->o[id];
    o->ext = 1;
    o->act = (uint8_t)act;
    o->res_slot = (uint8_t)rs;
    o->clear_slot = (uint8_t)cs;
    o->hooks = (uint8_t)hooks;
    o->disp_slot = (uint8_t)ds;
    tr(m, "alloc #%d %s extra=%zu act=%u res=%u clear=%u hooks=%u "
       "dispose-clear=%u", id, o->type->name, extra, act, rs, cs, hooks, ds);
}

static void vec_append(model *m, mobj *po) {
    mvec *v = po->ptr;
    if (v->len == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 2;
        void **items = realloc(v->items, cap * sizeof *items);
        if (items == NULL) {
            fail(m, "out of memory growing a vec");
            return;
        }
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = NULL;
    po->slot[po->nslots++] = -1;
}

static void op_set(model *m) {
    int p = pick_parent(m);
    if (p < 0)
        return;
    int c = pick_child(m);
    if (m->failed)
        return;
    mobj *po = &m->o[p];
    void *cp = ptr_of(m, c);
    if (po->kind == K_NODE) {
        unsigned i = pick(m, MODEL_NODE_SLOTS);
        bool macro = pick(m, 2);
        tr(m, "set #%d.slot[%u] = #%d (was #%d)%s", p, i, c, po->slot[i],
           macro ? " RC_SET" : "");
        po->slot[i] = (int16_t)c;
        m->dirty = true;
        mnode *n = po->ptr;
        if (macro)
            RC_SET(n->slot[i], cp);
        else
            rc_set(&n->slot[i], cp);
        return;
    }
    unsigned len = po->nslots;
    unsigned i = pick(m, len < MODEL_VEC_MAX ? len + 1 : len);
    tr(m, "set #%d.items[%u] = #%d (len %u)", p, i, c, len);
    if (i == len)
        vec_append(m, po);
    if (m->failed)
        return;
    po->slot[i] = (int16_t)c;
    m->dirty = true;
    rc_set(&((mvec *)po->ptr)->items[i], cp);
}

static void op_clear(model *m) {
    int p = pick_parent(m);
    if (p < 0)
        return;
    mobj *po = &m->o[p];
    if (po->nslots == 0)
        return;
    unsigned i = pick(m, po->nslots);
    m->dirty = true;
    if (po->kind == K_NODE) {
        tr(m, "clear #%d.slot[%u] (was #%d)", p, i, po->slot[i]);
        po->slot[i] = -1;
        rc_set(&((mnode *)po->ptr)->slot[i], NULL);
    } else if (i + 1 == po->nslots && pick(m, 2)) {
        tr(m, "pop #%d.items[%u] (was #%d)", p, i, po->slot[i]);
        mvec *v = po->ptr;
        void *old = v->items[i];
        po->slot[i] = -1;
        po->nslots--;
        v->len--;
        v->items[i] = NULL;
        rc_release(old);
    } else {
        tr(m, "clear #%d.items[%u] (was #%d)", p, i, po->slot[i]);
        po->slot[i] = -1;
        rc_set(&((mvec *)po->ptr)->items[i], NULL);
    }
}

/* Drops one external reference, each reference equally likely. */
static void op_drop(model *m) {
    unsigned total = 0;
    for (unsigned id = 0; id < m->nobj; id++)
        total += m->o[id].ext;
    if (total == 0)
        return;
    unsigned r = pick(m, total), id = 0;
    while (r >= m->o[id].ext)
        r -= m->o[id++].ext;
    mobj *o = &m->o[id];
    if (checked(m, (int)id) < 0)
        return;
    bool fn = pick(m, 2);
    tr(m, "drop #%u (external %u)%s", id, o->ext, fn ? " fn" : "");
    o->ext--;
    m->dirty = true;
    if (fn)
        rc_release_fn(o->ptr);
    else
        rc_release(o->ptr);
}

static void op_dup(model *m) {
    int id = pick_reach(m);
    if (id < 0)
        return;
    mobj *o = &m->o[id];
    bool fn = pick(m, 2);
    tr(m, "dup #%d (external %u)%s", id, o->ext, fn ? " fn" : "");
    o->ext++;
    m->dirty = true;
    void *r = fn ? rc_retain_fn(o->ptr) : rc_retain(o->ptr);
    if (r != o->ptr)
        fail(m, "rc_retain(#%d) returned another pointer", id);
}

static void op_global(model *m) {
    unsigned k = pick(m, MODEL_GLOBALS);
    int c = pick(m, 4) == 0 ? -1 : pick_reach(m);
    if (m->failed)
        return;
    tr(m, "global[%u] = #%d (was #%d)", k, c, m->gid[k]);
    m->gid[k] = c;
    m->dirty = true;
    rc_set(&m->gptr[k], ptr_of(m, c));
}

/* Whether a report by the program freed anything since it began. */
static void report_changed(model *m, const char *what, size_t live,
                           uint64_t hooks, uint64_t passes) {
    uint64_t now = m->st->finalized + m->ndisposed;
    if (rc_live_objects() != live || collections() != passes || now != hooks)
        fail(m, "%s freed objects: live %zu -> %zu, %llu passes, %llu "
             "finalize/dispose calls", what, live, rc_live_objects(),
             (unsigned long long)(collections() - passes),
             (unsigned long long)(now - hooks));
}

/* The program dumps the graph and reports leaks: both must succeed and
 * neither may free anything, run a finalizer or dispose, or run a pass. */
static void op_report(model *m) {
    size_t live = rc_live_objects();
    uint64_t hooks = m->st->finalized + m->ndisposed;
    uint64_t passes = collections();
    tr(m, "report (%zu live)", live);
    m->dumping = true;
    int d = rc_dump_dot(m->devnull);
    m->dumping = false;
    if (d != 0)
        fail(m, "rc_dump_dot() returned %d", d);
    report_changed(m, "rc_dump_dot()", live, hooks, passes);
    size_t n = rc_leak_report(m->devnull);
    if (n != live)
        fail(m, "rc_leak_report() returned %zu with %zu live", n, live);
    report_changed(m, "rc_leak_report()", live, hooks, passes);
}

static void collect(model *m) {
    uint64_t before = m->ndisposed;
    size_t r = rc_collect();
    uint64_t freed = m->ndisposed - before;
    m->st->collects++;
    m->st->collected += r;
    m->dirty = true;
    if (!m->failed && r > freed)
        fail(m, "rc_collect() returned %zu, but %llu objects were disposed",
             r, (unsigned long long)freed);
}

static void op_collect(model *m) {
    tr(m, "collect");
    collect(m);
    if (!m->failed)
        check(m, true);
}

static void op_auto(model *m) {
    unsigned t = 1 + pick(m, 8);
    m->auto_left = 1 + pick(m, 32);
    m->st->auto_windows++;
    tr(m, "threshold %u for %u ops", t, m->auto_left);
    rc_set_threshold(t);
}

/* Saturates a node's count. Crossing 2^32 one retain at a time would take
 * seconds, so the count is first set just below the limit through the
 * header rcgc.h shows; the retain that wraps it is a real rc_retain(). */
static void op_immortal(model *m) {
    int id = pick_reach(m);
    if (id < 0 || pick(m, 4) != 0)
        return;
    mobj *o = &m->o[id];
    if (o->kind != K_NODE || o->immortal)
        return;
    tr(m, "immortal #%d", id);
    ((rc__header *)o->ptr - 1)->rc = UINT32_MAX;
    rc_retain(o->ptr);
    o->immortal = 1;
    m->dirty = true;
    m->st->immortal++;
    if (rc_refcount(o->ptr) != SIZE_MAX)
        fail(m, "#%d did not saturate: rc_refcount %zu", id,
             rc_refcount(o->ptr));
}

static void run_op(model *m, unsigned op) {
    switch (op) {
    case OP_ALLOC: op_alloc(m); break;
    case OP_SET: op_set(m); break;
    case OP_CLEAR: op_clear(m); break;
    case OP_DROP: op_drop(m); break;
    case OP_DUP: op_dup(m); break;
    case OP_GLOBAL: op_global(m); break;
    case OP_COLLECT: op_collect(m); break;
    case OP_AUTO: op_auto(m); break;
    case OP_REPORT: op_report(m); break;
    default: op_immortal(m); break;
    }
}

/* ----------------------------------------------------------------- graphs */

/* The graph's shape: table size, op count, kinds and op weights. */
static unsigned draw_mix(model *m) {
    const model_params *p = m->p;
    m->cap = 2 + pick(m, p->max_objects - 1);
    unsigned nops = p->min_ops + pick(m, p->max_ops - p->min_ops + 1);
    m->pct_leaf = pick(m, 35);
    m->pct_vec = pick(m, 45);
    m->pct_fin = pick(m, 60);
    m->pct_extra = pick(m, 30);
    m->w[OP_ALLOC] = 2 + pick(m, 12);
    m->w[OP_SET] = 2 + pick(m, 24);
    m->w[OP_CLEAR] = pick(m, 10);
    m->w[OP_DROP] = 2 + pick(m, 12);
    m->w[OP_DUP] = pick(m, 6);
    m->w[OP_GLOBAL] = pick(m, 3);
    m->w[OP_COLLECT] = pick(m, 4);
    m->w[OP_AUTO] = pick(m, 3);
    /* A dump walks the thread's whole heap, which makes it the dearest op:
     * one graph in 32 dumps, never where earlier graphs left their
     * immortal objects. */
    m->w[OP_REPORT] = m->immortal_ok ? 0 : pick(m, 32) == 0;
    m->w[OP_IMMORTAL] = m->immortal_ok ? 1 : 0;
    m->wtotal = 0;
    for (unsigned k = 0; k < OP_COUNT; k++)
        m->wtotal += m->w[k];
    if (p->trace)
        fprintf(p->trace, "graph %llu: objects<=%u ops=%u leaf%%=%u vec%%=%u "
                "fin%%=%u weights=%u,%u,%u,%u,%u,%u,%u,%u,%u,%u\n",
                (unsigned long long)m->graph, m->cap, nops, m->pct_leaf,
                m->pct_vec, m->pct_fin, m->w[0], m->w[1], m->w[2], m->w[3],
                m->w[4], m->w[5], m->w[6], m->w[7], m->w[8], m->w[9]);
    return nops;
}

static unsigned draw_op(model *m) {
    unsigned r = pick(m, m->wtotal), op = 0;
    while (r >= m->w[op])
        r -= m->w[op++];
    return op;
}

static void end_auto(model *m) {
    if (m->auto_left > 0) {
        m->auto_left = 0;
        rc_set_threshold(0);
    }
}

static bool globals_empty(const model *m) {
    for (unsigned k = 0; k < MODEL_GLOBALS; k++)
        if (m->gid[k] >= 0)
            return false;
    return true;
}

/* Passes an op other than rc_collect() ran: automatic ones, only while a
 * window was open, and only until a finalizer closed it (but for the one
 * running then, if any). RCGC_STRESS builds run passes everywhere. */
static void count_passes(model *m, bool window, uint64_t before,
                         uint64_t now) {
    if (window)
        m->st->auto_passes += now - before;
    if (RCGC_STRESS)
        return;
    uint64_t limit = !window ? before
                     : m->off_in_hook ? m->off_mark + 1 : now;
    if (now > limit)
        fail(m, "%llu automatic passes with the threshold at 0",
             (unsigned long long)(now - limit));
}

/* Drops every reference the program holds, then collects until finalizers
 * stop refilling the global slots. What is left must be exactly what the
 * immortal objects reach. */
static void teardown(model *m) {
    end_auto(m);
    tr(m, "teardown");
    uint64_t passes = collections();
    for (unsigned id = 0; id < m->nobj && !m->failed; id++) {
        mobj *o = &m->o[id];
        while (o->ext > 0 && checked(m, (int)id) >= 0) {
            o->ext--;
            m->dirty = true;
            rc_release(o->ptr);
        }
    }
    count_passes(m, false, passes, collections());
    for (unsigned round = 0; !m->failed; round++) {
        if (round > m->nobj + 2) {
            fail(m, "finalizers keep refilling the global slots");
            return;
        }
        for (unsigned k = 0; k < MODEL_GLOBALS; k++)
            release_global(m, k);
        collect(m);
        if (globals_empty(m))
            break;
    }
    if (!m->failed)
        check(m, true);
}

static void reset_graph(model *m) {
    m->epoch = atomic_fetch_add(&epochs, 1) + 1;
    m->nobj = 0;
    m->ndisposed = 0;
    m->op = 0;
    m->failed = false;
    m->auto_left = 0;
    m->off_in_hook = false;
    m->dirty = true;
    for (unsigned k = 0; k < MODEL_GLOBALS; k++) {
        m->gid[k] = -1;
        m->gptr[k] = NULL;
    }
}

/* Runs the graph the source describes. `expect_live` is what
 * rc_live_objects() must be before it; *leaked gets the objects it leaves
 * alive on purpose. Returns whether a mismatch was found. */
static bool run_graph(model *m, size_t expect_live, size_t *leaked) {
    reset_graph(m);
    tl_model = m;
    rc_set_threshold(0);
    m->baseline = rc_live_objects();
    if (m->baseline != expect_live)
        fail(m, "graph start: rc_live_objects() %zu, expected %zu",
             m->baseline, expect_live);
    unsigned nops = draw_mix(m);
    uint64_t passes = collections();
    for (; m->op < nops && !m->failed && !m->s.exhausted; m->op++) {
        unsigned op = draw_op(m);
        bool window = m->auto_left > 0;
        run_op(m, op);
        uint64_t now = collections();
        if (op != OP_COLLECT)
            count_passes(m, window, passes, now);
        passes = now;
        m->off_in_hook = false;
        if (m->auto_left > 0 && --m->auto_left == 0)
            rc_set_threshold(0);
        m->st->ops++;
        if (!m->failed && m->p->check_every &&
            (m->op + 1) % m->p->check_every == 0)
            check(m, false);
    }
    if (!m->failed)
        teardown(m);
    if (!m->failed)
        *leaked = rc_live_objects() - m->baseline;
    end_auto(m);
    tl_model = NULL;
    return m->failed;
}

static bool model_init(model *m, const model_params *p, model_stats *st) {
    memset(m, 0, sizeof *m);
    m->p = p;
    m->st = st;
    size_t n = p->max_objects < 2 ? 2 : p->max_objects;
    if (n > MODEL_MAX_OBJECTS)
        n = MODEL_MAX_OBJECTS;
    m->o = calloc(n, sizeof *m->o);
    m->reach = calloc(n, 1);
    m->stack = calloc(n, sizeof *m->stack);
    m->list = calloc(n, sizeof *m->list);
    m->plist = calloc(n, sizeof *m->plist);
    m->indeg = calloc(n, sizeof *m->indeg);
    m->devnull = fopen("/dev/null", "w");
    return m->o && m->reach && m->stack && m->list && m->plist && m->indeg &&
           m->devnull;
}

static void model_fini(model *m) {
    free(m->o);
    free(m->reach);
    free(m->stack);
    free(m->list);
    free(m->plist);
    free(m->indeg);
    free(m->s.rec);
    if (m->devnull != NULL)
        fclose(m->devnull);
}

/* Records the failure and stops a run that cannot start. */
static uint64_t setup_failed(model_stats *out) {
    snprintf(out->failure, sizeof out->failure,
             "out of memory setting up the model");
    out->failed++;
    return 1;
}

static void note_strays(model_stats *out, uint64_t before) {
    uint64_t n = atomic_load(&stray_hooks) - before;
    if (n == 0 || out->failed)
        return;
    snprintf(out->failure, sizeof out->failure,
             "%llu finalize/dispose/trace calls outside any graph",
             (unsigned long long)n);
    out->failed++;
}

/* --------------------------------------------------------------- params */

static model_params checked_params(const model_params *p) {
    model_params q = *p;
    if (q.max_objects < 2)
        q.max_objects = 2;
    if (q.max_objects > MODEL_MAX_OBJECTS)
        q.max_objects = MODEL_MAX_OBJECTS;
    if (q.max_ops < q.min_ops)
        q.max_ops = q.min_ops;
    return q;
}

void model_params_small(model_params *out) {
    memset(out, 0, sizeof *out);
    out->max_objects = 64;
    out->min_ops = 100;
    out->max_ops = 400;
    out->check_every = 1;
    /* Immortal objects are leaked on purpose, and valgrind would report
     * them once the helper thread's runtime is gone. */
    out->immortal_every = MODEL_ON_VALGRIND() ? 0 : 8;
}

void model_params_large(model_params *out) {
    memset(out, 0, sizeof *out);
    out->max_objects = 2000;
    out->min_ops = 3000;
    out->max_ops = 9000;
    out->check_every = 97;
    out->immortal_every = 0;
}

int model_graph_is_immortal(const model_params *p, uint64_t graph) {
    return p->immortal_every != 0 &&
           graph % p->immortal_every == p->immortal_every - 1;
}

/* ------------------------------------------------------------------ runs */

static void src_prng(msrc *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->prng = true;
    s->state = seed;
}

uint64_t model_run(const model_params *p, uint64_t seed, uint64_t first,
                   uint64_t count, int which, model_stats *out) {
    model_params q = checked_params(p);
    model m;
    uint64_t strays = atomic_load(&stray_hooks);
    if (!model_init(&m, &q, out)) {
        model_fini(&m);
        return setup_failed(out);
    }
    size_t expect = rc_live_objects();
    for (uint64_t g = first; g < first + count; g++) {
        bool imm = model_graph_is_immortal(&q, g);
        if ((which == 1 && imm) || (which == 2 && !imm))
            continue;
        src_prng(&m.s, model_graph_seed(seed, g));
        m.seed = seed;
        m.graph = g;
        m.immortal_ok = imm;
        size_t leaked = 0;
        out->graphs++;
        if (run_graph(&m, expect, &leaked)) {
            out->failed++;
            out->first_failed_graph = g;
            break;
        }
        expect += leaked;
        out->leaked += leaked;
    }
    model_fini(&m);
    rc_set_threshold(RC_DEFAULT_THRESHOLD);
    note_strays(out, strays);
    return out->failed;
}

uint64_t model_record(const model_params *p, uint64_t seed, uint64_t graph,
                      uint8_t **bytes, size_t *size, model_stats *out) {
    model_params q = checked_params(p);
    model m;
    if (!model_init(&m, &q, out)) {
        model_fini(&m);
        return setup_failed(out);
    }
    src_prng(&m.s, model_graph_seed(seed, graph));
    m.s.recording = true;
    m.seed = seed;
    m.graph = graph;
    m.immortal_ok = model_graph_is_immortal(&q, graph);
    size_t leaked = 0;
    out->graphs++;
    if (run_graph(&m, rc_live_objects(), &leaked)) {
        out->failed++;
        out->first_failed_graph = graph;
    }
    out->leaked += leaked;
    *bytes = m.s.rec;
    *size = m.s.rec_len;
    if (m.s.rec_oom) {
        snprintf(out->failure, sizeof out->failure, "out of memory recording");
        out->failed++;
    }
    m.s.rec = NULL;
    model_fini(&m);
    rc_set_threshold(RC_DEFAULT_THRESHOLD);
    return out->failed;
}

int model_run_bytes(const model_params *p, const uint8_t *data, size_t size,
                    model_stats *out) {
    model_params q = checked_params(p);
    model m;
    if (!model_init(&m, &q, out)) {
        model_fini(&m);
        return (int)setup_failed(out);
    }
    m.s.data = data;
    m.s.size = size;
    m.immortal_ok = q.immortal_every == 1;
    size_t leaked = 0;
    out->graphs++;
    bool bad = run_graph(&m, rc_live_objects(), &leaked);
    out->failed += bad;
    out->leaked += leaked;
    model_fini(&m);
    return bad;
}

/* ------------------------------------------------------------- two threads */

typedef struct split_job {
    const model_params *p;
    uint64_t seed, first, count;
    model_stats st;
} split_job;

/* The graphs with immortal objects, on a runtime of their own: afterwards
 * exactly the accounted objects may be left, then the runtime is dropped. */
static void *split_worker(void *arg) {
    split_job *j = arg;
    model_run(j->p, j->seed, j->first, j->count, 2, &j->st);
    rc_collect();
    size_t live = rc_live_objects();
    if (j->st.failed == 0 && live != j->st.leaked) {
        snprintf(j->st.failure, sizeof j->st.failure,
                 "seed=%llu: %zu objects live after the immortal graphs, "
                 "model %llu", (unsigned long long)j->seed, live,
                 (unsigned long long)j->st.leaked);
        j->st.failed++;
    }
    rc_thread_exit();
    return NULL;
}

static void merge_stats(model_stats *out, const model_stats *in) {
    if (in->failed && (out->failed == 0 ||
                       in->first_failed_graph < out->first_failed_graph)) {
        memcpy(out->failure, in->failure, sizeof out->failure);
        out->first_failed_graph = in->first_failed_graph;
    }
    out->graphs += in->graphs;
    out->failed += in->failed;
    out->ops += in->ops;
    out->collects += in->collects;
    out->collected += in->collected;
    out->allocated += in->allocated;
    out->finalized += in->finalized;
    out->resurrected += in->resurrected;
    out->immortal += in->immortal;
    out->auto_windows += in->auto_windows;
    out->auto_passes += in->auto_passes;
    out->leaked += in->leaked;
    if (in->peak_live > out->peak_live)
        out->peak_live = in->peak_live;
}

uint64_t model_run_split(const model_params *p, uint64_t seed, uint64_t first,
                         uint64_t count, model_stats *out) {
    split_job job;
    memset(&job, 0, sizeof job);
    job.p = p;
    job.seed = seed;
    job.first = first;
    job.count = count;
    pthread_t t;
    bool threaded = p->immortal_every != 0 &&
                    pthread_create(&t, NULL, split_worker, &job) == 0;
    model_stats mine;
    memset(&mine, 0, sizeof mine);
    model_run(p, seed, first, count, threaded ? 1 : 0, &mine);
    if (threaded)
        pthread_join(t, NULL);
    merge_stats(out, &mine);
    merge_stats(out, &job.st);
    return out->failed;
}

/* ----------------------------------------------------------- crash report */

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
#define NCRASH (sizeof crash_signals / sizeof crash_signals[0])
static struct sigaction crash_saved[NCRASH];

static void crash_note(void) {
    char buf[160];
    const model *m = tl_model;
    int n;
    if (m != NULL && m->s.prng)
        n = snprintf(buf, sizeof buf,
                     "model: crashed in seed=%llu graph=%llu op=%llu\n",
                     (unsigned long long)m->seed,
                     (unsigned long long)m->graph,
                     (unsigned long long)m->op);
    else if (m != NULL)
        n = snprintf(buf, sizeof buf, "model: crashed in bytes op=%llu\n",
                     (unsigned long long)m->op);
    else
        n = snprintf(buf, sizeof buf, "model: crashed outside a graph\n");
    if (n > 0 && write(2, buf, (size_t)n) < 0)
        return;
}

/* Notes where the crash happened, puts the previous handler back and lets
 * the signal reach it: a fault repeats on return, a sent signal is raised
 * again. */
static void crash_handler(int sig, siginfo_t *info, void *ctx) {
    (void)ctx;
    crash_note();
    for (size_t i = 0; i < NCRASH; i++)
        if (crash_signals[i] == sig)
            sigaction(sig, &crash_saved[i], NULL);
    if (info == NULL || info->si_code <= 0)
        raise(sig);
}

/* Present only when a sanitizer runtime is linked. */
extern void __sanitizer_set_death_callback(void (*cb)(void))
    __attribute__((weak));

void model_install_crash_reporter(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = crash_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NCRASH; i++)
        sigaction(crash_signals[i], &sa, &crash_saved[i]);
    if (__sanitizer_set_death_callback != NULL)
        __sanitizer_set_death_callback(crash_note);
}
