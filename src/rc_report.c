/* rc_report.c: what is still alive, as text (leak report) or as a picture
 * (Graphviz DOT), found by walking the thread's heap block by block.
 *
 * RCGC_LEAK_REPORT=1 prints the leak report at rc_thread_exit() and at
 * process exit when anything is alive; RCGC_LEAK_REPORT=strict also makes
 * the process exit with status 1 then.
 */
#include <stdlib.h>

#include "rc_uthash.h"

/* ------------------------------------------------------- live objects */

typedef void (*obj_visit_fn)(rc__header *h, void *ctx);

typedef struct live_walk {
    obj_visit_fn fn;
    void *ctx;
} live_walk;

static void live_block(void *block, unsigned kind, void *ctx) {
    live_walk *lw = ctx;
    rc__header *h = hdr_of_block(block, kind);
#if RCGC_DEBUG
    if (dbg_of(h)->state != DBG_LIVE)
        return; /* quarantined */
#endif
    lw->fn(h, lw->ctx);
}

/* Calls fn on every live object of the thread. Not inside a pass or a
 * release cascade, where dying objects' headers hold links. */
static bool live_foreach(rc_state *st, obj_visit_fn fn, void *ctx) {
    if (st->in_pass || st->freeing)
        return false;
    live_walk lw = {fn, ctx};
    mem_foreach(&st->heap, live_block, &lw);
    return true;
}

/* ------------------------------------------------------- leak report */

typedef struct leak_group {
    const rc_type *type;
    const char *file; /* NULL: grouped by type only */
    int line;
    uint64_t count, bytes;
    UT_hash_handle hh;
} leak_group;

typedef struct leak_key {
    const rc_type *type;
    const char *file;
    int line;
} leak_key;

typedef struct leak_tally {
    leak_group *by_type, *by_site;
    uint64_t count, bytes;
    bool oom;
} leak_tally;

static void tally_add(leak_tally *t, leak_group **tab, leak_key k,
                      uint64_t bytes) {
    leak_group *g = NULL;
    HASH_FIND(hh, *tab, &k, sizeof k, g);
    if (g == NULL) {
        g = mem_sys_alloc(sizeof *g);
        if (g == NULL) {
            t->oom = true;
            return;
        }
        memset(g, 0, sizeof *g);
        g->type = k.type;
        g->file = k.file;
        g->line = k.line;
        rc_uthash_oom = 0;
        HASH_ADD(hh, *tab, type, sizeof k, g);
        if (rc_uthash_oom) {
            mem_sys_free(g, sizeof *g);
            t->oom = true;
            return;
        }
    }
    g->count++;
    g->bytes += bytes;
}

static void tally_object(rc__header *h, void *ctx) {
    leak_tally *t = ctx;
    uint64_t bytes = block_size(h);
    t->count++;
    t->bytes += bytes;
    leak_key k;
    memset(&k, 0, sizeof k);
    k.type = h->type;
    tally_add(t, &t->by_type, k, bytes);
#if RCGC_DEBUG
    k.file = dbg_of(h)->file;
    k.line = dbg_of(h)->line;
    tally_add(t, &t->by_site, k, bytes);
#endif
}

static int by_bytes_desc(const void *a, const void *b) {
    const leak_group *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

static void print_groups(FILE *out, leak_group **tab, bool site) {
    leak_group *g, *tmp;
    HASH_SORT(*tab, by_bytes_desc);
    HASH_ITER(hh, *tab, g, tmp) {
        const char *name = g->type && g->type->name ? g->type->name : "?";
        if (site)
            fprintf(out, "    %8llu bytes in %6llu objects at %s:%d (%s)\n",
                    (unsigned long long)g->bytes, (unsigned long long)g->count,
                    g->file ? g->file : "<unknown site>", g->line, name);
        else
            fprintf(out, "    %8llu bytes in %6llu objects of type %s\n",
                    (unsigned long long)g->bytes, (unsigned long long)g->count,
                    name);
        HASH_DEL(*tab, g);
        mem_sys_free(g, sizeof *g);
    }
}

size_t rc_leak_report(FILE *out) {
    rc_state *st = rc_tls_state;
    size_t live = rc_live_objects();
    if (st == NULL || live == 0) {
        fprintf(out, "rcgc: no live objects\n");
        return live;
    }
    leak_tally t;
    memset(&t, 0, sizeof t);
    if (!live_foreach(st, tally_object, &t)) {
        fprintf(out, "rcgc: %zu live objects (no details during a pass)\n",
                live);
        return live;
    }
    fprintf(out, "rcgc: %zu live objects, %llu bytes\n", live,
            (unsigned long long)t.bytes);
    fprintf(out, "  by type:\n");
    print_groups(out, &t.by_type, false);
    if (t.by_site) {
        fprintf(out, "  by allocation site:\n");
        print_groups(out, &t.by_site, true);
    }
    if (t.oom)
        fprintf(out, "  (incomplete: out of memory while grouping)\n");
    fprintf(out, "SUMMARY: rcgc: %llu bytes leaked in %zu objects.\n",
            (unsigned long long)t.bytes, live);
    return live;
}

/* ------------------------------------------------------- DOT */

typedef struct dot_ctx {
    FILE *out;
    rc__header *from;
    int err;
} dot_ctx;

static void dot_edge(void *child, void *ctx) {
    dot_ctx *d = ctx;
    if (child != NULL)
        fprintf(d->out, "  \"%p\" -> \"%p\";\n", payload_of(d->from), child);
}

static void dot_node(rc__header *h, void *ctx) {
    dot_ctx *d = ctx;
    const char *name = h->type->name ? h->type->name : "?";
    const char *style = "";
    char count[24];
    if (h->gc & F_IMMORTAL) {
        snprintf(count, sizeof count, "immortal");
        style = ", style=filled, fillcolor=\"#d0d0ff\", peripheries=2";
    } else {
        snprintf(count, sizeof count, "rc=%u", (unsigned)h->rc);
        if (h->gc & F_BUFFERED)
            style = ", style=\"filled,dashed\", fillcolor=\"#fff3b0\"";
    }
    if (fprintf(d->out, "  \"%p\" [label=\"%s\\n%p\\n%s%s\"%s];\n",
                payload_of(h), name, payload_of(h), count,
                (h->gc & F_BUFFERED) ? " (root)" : "", style) < 0)
        d->err = -1;
}

static void dot_edges(rc__header *h, void *ctx) {
    dot_ctx *d = ctx;
    if (h->type->trace == NULL)
        return;
    d->from = h;
    h->type->trace(payload_of(h), dot_edge, d);
}

int rc_dump_dot(FILE *out) {
    rc_state *st = rc_tls_state;
    dot_ctx d = {out, NULL, 0};
    fprintf(out, "digraph rcgc {\n"
                 "  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
    if (st != NULL) {
        if (!live_foreach(st, dot_node, &d))
            d.err = -1;
        live_foreach(st, dot_edges, &d);
    }
    if (fprintf(out, "}\n") < 0 || ferror(out))
        d.err = -1;
    return d.err;
}

/* ------------------------------------------------------- at exit */

static int report_mode = -1; /* 0 off, 1 report, 2 strict */
static _Atomic int leaks_seen;

static int leak_report_mode(void) {
    if (report_mode < 0) {
        const char *v = getenv("RCGC_LEAK_REPORT");
        report_mode = !v || !*v || !strcmp(v, "0") ? 0
                      : !strcmp(v, "strict")       ? 2
                                                   : 1;
    }
    return report_mode;
}

void rpt_at_thread_exit(rc_state *st) {
    (void)st;
    if (leak_report_mode() == 0 || rc_live_objects() == 0)
        return;
    leaks_seen = 1;
    rc_leak_report(stderr);
}

static void rpt_at_exit(void) {
    if (rc_tls_state != NULL)
        rc_thread_exit();
    if (leaks_seen && report_mode == 2) {
        fflush(NULL);
        _Exit(1);
    }
}

/* Called once per process, when the first thread state is made. */
void rpt_init(void) {
    if (leak_report_mode() != 0)
        atexit(rpt_at_exit);
}
