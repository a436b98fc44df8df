/* rc_report.c: what is still alive, as text (the leak report) or as a
 * picture (Graphviz DOT), found by walking the thread's heap block by block.
 *
 * Invariants: reports only read objects; they never run inside a pass or a
 * release cascade (dying objects' headers hold list links then, and report
 * the fact instead); every table they build is freed before they return.
 * Output is deterministic for a given heap: groups are fully ordered and
 * nodes come in heap order.
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
 * release cascade, where dying objects' headers hold links. fn may call
 * user code (a type's trace): the walk marks the thread busy freeing, so a
 * nested rc_collect() does nothing and no object is freed before the walk
 * is over. */
static bool live_foreach(rc_state *st, obj_visit_fn fn, void *ctx) {
    if (st->in_pass || st->freeing)
        return false;
    live_walk lw = {fn, ctx};
    st->freeing = true;
    mem_foreach(&st->heap, live_block, &lw);
    obj_drain(st); /* clears the flag */
    return true;
}

static const char *type_name(const rc_type *t) {
    return t && t->name ? t->name : "?";
}

static const char *plural(uint64_t n) { return n == 1 ? "" : "s"; }

/* ------------------------------------------------------- leak groups */

/* A group is found by the pointers objects carry (type, allocation file)
 * but means their content: a type name or a file name can exist as several
 * equal strings (a static type in a header, __FILE__ in several units). The
 * first group seen with some content is canonical; groups met later with
 * other pointers and the same content are aliases that count into it. */
typedef struct leak_key {
    const rc_type *type;
    const char *file; /* NULL: by type only, or site unknown */
    long line;
} leak_key;

typedef struct leak_group {
    leak_key key;
    struct leak_group *canon; /* itself, or the equal group counted into */
    uint64_t count, bytes;
    UT_hash_handle hh;
} leak_group;

typedef struct leak_tally {
    leak_group *by_type, *by_site;
    uint64_t count, bytes;
    bool oom;
} leak_tally;

static bool str_eq(const char *a, const char *b) {
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_content(const leak_key *a, const leak_key *b) {
    return a->line == b->line &&
           str_eq(type_name(a->type), type_name(b->type)) &&
           str_eq(a->file, b->file);
}

static leak_group *group_add(leak_group **tab, const leak_key *k,
                             leak_group *canon) {
    leak_group *g = mem_sys_alloc(sizeof *g);
    if (g == NULL)
        return NULL;
    memset(g, 0, sizeof *g);
    memcpy(&g->key, k, sizeof *k);
    g->canon = canon ? canon : g;
    rc_uthash_oom = 0;
    HASH_ADD(hh, *tab, key, sizeof(leak_key), g);
    if (rc_uthash_oom) {
        mem_sys_free(g, sizeof *g);
        return NULL;
    }
    return g;
}

/* The canonical group an object with key k counts in; NULL without memory
 * for a group of new content. */
static leak_group *group_of(leak_group **tab, const leak_key *k) {
    leak_group *g = NULL, *it, *tmp, *canon = NULL;
    HASH_FIND(hh, *tab, k, sizeof(leak_key), g);
    if (g != NULL)
        return g->canon;
    HASH_ITER(hh, *tab, it, tmp) {
        if (it->canon == it && same_content(&it->key, k)) {
            canon = it;
            break;
        }
    }
    g = group_add(tab, k, canon);
    return g ? g->canon : canon;
}

static void tally_into(leak_tally *t, leak_group **tab, const leak_key *k,
                       uint64_t bytes) {
    leak_group *g = group_of(tab, k);
    if (g == NULL) {
        t->oom = true;
        return;
    }
    g->count++;
    g->bytes += bytes;
}

static void tally_object(rc__header *h, void *ctx) {
    leak_tally *t = ctx;
    uint64_t bytes = block_size(h);
    leak_key k;
    memset(&k, 0, sizeof k);
    k.type = h->type;
    t->count++;
    t->bytes += bytes;
    tally_into(t, &t->by_type, &k, bytes);
#if RCGC_DEBUG
    k.file = dbg_of(h)->file;
    k.line = dbg_of(h)->line;
    tally_into(t, &t->by_site, &k, bytes);
#endif
}

static int str_cmp(const char *a, const char *b) {
    return strcmp(a ? a : "", b ? b : "");
}

/* Largest first (bytes, then objects), then by name, file and line;
 * aliases, which count nothing themselves, last. */
static int group_order(const void *pa, const void *pb) {
    const leak_group *a = pa, *b = pb;
    int c;
    if ((a->canon == a) != (b->canon == b))
        return a->canon == a ? -1 : 1;
    if (a->bytes != b->bytes)
        return a->bytes > b->bytes ? -1 : 1;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    if ((c = strcmp(type_name(a->key.type), type_name(b->key.type))) != 0)
        return c;
    if ((c = str_cmp(a->key.file, b->key.file)) != 0)
        return c;
    return a->key.line < b->key.line ? -1 : a->key.line > b->key.line;
}

/* Writes a type name on a report line: control characters as \xNN, so a
 * name cannot break the report's one line per group. */
static void line_text(FILE *out, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
}

static void print_group(FILE *out, const leak_group *g, bool site) {
    fprintf(out, "    %8llu bytes in %llu object%s of type ",
            (unsigned long long)g->bytes, (unsigned long long)g->count,
            plural(g->count));
    line_text(out, type_name(g->key.type));
    if (site && g->key.file != NULL)
        fprintf(out, " allocated at %s:%ld\n", g->key.file, g->key.line);
    else if (site)
        fprintf(out, " allocated at an unknown site\n");
    else
        fputc('\n', out);
}

/* Prints the canonical groups of *tab in order (if out is set), then
 * frees the table. */
static void groups_flush(FILE *out, leak_group **tab, bool site) {
    leak_group *g, *tmp;
    HASH_SORT(*tab, group_order);
    HASH_ITER(hh, *tab, g, tmp) {
        if (out != NULL && g->canon == g)
            print_group(out, g, site);
        HASH_DEL(*tab, g);
        mem_sys_free(g, sizeof *g);
    }
}

/* ------------------------------------------------------- leak report */

static void report_body(FILE *out, leak_tally *t, size_t live) {
    fprintf(out, "rcgc: %zu live object%s, %llu bytes\n", live, plural(live),
            (unsigned long long)t->bytes);
    fprintf(out, "  by type:\n");
    groups_flush(out, &t->by_type, false);
    if (t->by_site != NULL) {
        fprintf(out, "  by allocation site:\n");
        groups_flush(out, &t->by_site, true);
    }
    if (t->oom)
        fprintf(out, "  (groups incomplete: out of memory)\n");
    fprintf(out, "SUMMARY: rcgc: %llu bytes leaked in %zu object%s.\n",
            (unsigned long long)t->bytes, live, plural(live));
}

/* A NULL `out` prints nothing: the call only counts. */
size_t rc_leak_report(FILE *out) {
    rc_state *st = rc_tls_state;
    size_t live = rc_live_objects();
    if (out == NULL)
        return live;
    if (st == NULL || live == 0) {
        fprintf(out, "rcgc: no live objects\n");
        return live;
    }
    leak_tally t;
    memset(&t, 0, sizeof t);
    if (!live_foreach(st, tally_object, &t)) {
        fprintf(out, "rcgc: %zu live object%s (no details inside a pass)\n",
                live, plural(live));
        return live;
    }
    rc_assert_internal(t.count == live);
    report_body(out, &t, live);
    return live;
}

/* ------------------------------------------------------- DOT */

typedef struct dot_ctx {
    FILE *out;
    rc__header *from; /* object whose edges are being written */
    uint64_t count, bytes, roots, immortal;
    int err;
} dot_ctx;

/* Writes s as the inside of a DOT string: quotes and backslashes escaped,
 * newlines as DOT line breaks. */
static void dot_text(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

static void dot_tally(rc__header *h, void *ctx) {
    dot_ctx *d = ctx;
    d->count++;
    d->bytes += block_size(h);
    if (h->gc & F_IMMORTAL)
        d->immortal++;
    else if (h->gc & F_BUFFERED)
        d->roots++;
}

static void dot_header(dot_ctx *d) {
    FILE *out = d->out;
    fprintf(out, "digraph rcgc {\n  graph [label=\"rcgc heap: ");
    if (d->err != 0)
        fprintf(out, "not shown inside a pass");
    else if (d->count == 0)
        fprintf(out, "no live objects");
    else
        fprintf(out, "%llu live object%s, %llu bytes",
                (unsigned long long)d->count, plural(d->count),
                (unsigned long long)d->bytes);
    if (d->roots)
        fprintf(out, "\\nyellow, dashed: buffered candidate root");
    if (d->immortal)
        fprintf(out, "\\nblue, double border: immortal");
    fprintf(out, "\", labelloc=t, fontname=\"monospace\", fontsize=12];\n"
                 "  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
}

/* "type\naddress\nrc=N" with the marks of candidate roots and immortal
 * objects. */
static void dot_node(rc__header *h, void *ctx) {
    dot_ctx *d = ctx;
    void *obj = payload_of(h);
    fprintf(d->out, "  \"%p\" [label=\"", obj);
    dot_text(d->out, type_name(h->type));
    if (h->gc & F_IMMORTAL)
        fprintf(d->out, "\\n%p\\nimmortal\", style=filled, "
                        "fillcolor=\"#d0d0ff\", peripheries=2];\n", obj);
    else if (h->gc & F_BUFFERED)
        fprintf(d->out, "\\n%p\\nrc=%u (root)\", style=\"filled,dashed\", "
                        "fillcolor=\"#fff3b0\"];\n", obj, (unsigned)h->rc);
    else
        fprintf(d->out, "\\n%p\\nrc=%u\"];\n", obj, (unsigned)h->rc);
}

static void dot_edge(void *child, void *ctx) {
    dot_ctx *d = ctx;
    if (child != NULL)
        fprintf(d->out, "  \"%p\" -> \"%p\";\n", payload_of(d->from), child);
}

static void dot_edges(rc__header *h, void *ctx) {
    dot_ctx *d = ctx;
    if (h->type->trace == NULL)
        return;
    d->from = h;
    h->type->trace(payload_of(h), dot_edge, d);
}

int rc_dump_dot(FILE *out) {
    if (out == NULL)
        return -1;
    rc_state *st = rc_tls_state;
    dot_ctx d;
    memset(&d, 0, sizeof d);
    d.out = out;
    if (st != NULL && !live_foreach(st, dot_tally, &d))
        d.err = -1; /* inside a pass: an empty graph */
    dot_header(&d);
    if (st != NULL && d.err == 0) {
        live_foreach(st, dot_node, &d);
        live_foreach(st, dot_edges, &d);
    }
    if (fprintf(out, "}\n") < 0 || fflush(out) != 0 || ferror(out))
        d.err = -1;
    return d.err;
}

/* ------------------------------------------------------- at exit */

static int report_mode = -1; /* 0 off, 1 report, 2 strict */
static _Atomic int leaks_seen;

/* Read once, under the pthread_once that makes the first thread state. */
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
