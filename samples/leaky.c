/* leaky.c: a program that forgets to release a global cache.
 *
 * Run it with RCGC_LEAK_REPORT=1 to get the leak report on stderr when it
 * exits, or with RCGC_LEAK_REPORT=strict to also make it exit with status 1.
 *
 * Two things are left behind at exit, and only one is a leak:
 *   - a ring of scratch entries the program dropped without collecting: the
 *     runtime's final pass at exit frees it, so it is not reported;
 *   - the cache, a global strong reference nobody releases, and the three
 *     entries it holds: really alive, so they are reported.
 */
#include <stdio.h>
#include <stdlib.h>

#include <rcgc.h>

/* Entries form a ring through `next`. */
typedef struct entry {
    struct entry *next;
    char key[16];
} entry;

typedef struct cache {
    entry *first;
    size_t n;
} cache;

static void entry_trace(void *obj, rc_visit_fn visit, void *ctx) {
    visit(((entry *)obj)->next, ctx);
}

static void cache_trace(void *obj, rc_visit_fn visit, void *ctx) {
    visit(((cache *)obj)->first, ctx);
}

static const rc_type entry_type = {"entry", sizeof(entry), entry_trace, NULL,
                                   0, NULL};
static const rc_type scratch_type = {"scratch", sizeof(entry), entry_trace,
                                     NULL, 0, NULL};
static const rc_type cache_type = {"cache", sizeof(cache), cache_trace, NULL,
                                   0, NULL};

/* A ring of n entries of `type`; returns a new strong reference to one. */
static entry *ring(const rc_type *type, size_t n) {
    entry *first = rc_new(entry, type), *last = first;
    if (first == NULL)
        exit(EXIT_FAILURE);
    for (size_t i = 1; i < n; i++) {
        entry *e = rc_new(entry, type);
        if (e == NULL)
            exit(EXIT_FAILURE);
        snprintf(e->key, sizeof e->key, "key-%u", (unsigned)i); /* fits */
        last->next = e; /* takes over the allocation's reference */
        last = e;
    }
    last->next = rc_retain(first);
    return first;
}

static cache *g_cache; /* the forgotten reference */

int main(void) {
    rc_set_threshold(0); /* leave the scratch ring for the final pass */
    g_cache = rc_new(cache, &cache_type);
    if (g_cache == NULL)
        return EXIT_FAILURE;
    g_cache->first = ring(&entry_type, 3);
    g_cache->n = 3;
    rc_release(ring(&scratch_type, 4)); /* garbage, not a leak */
    printf("leaky: cached %zu entries and never released the cache\n",
           g_cache->n);
    return EXIT_SUCCESS;
}
