/* hello.c: two refcounted types, a structure built from them, released,
 * and the runtime's counters before and after. */
#include <stdio.h>
#include <stdlib.h>

#include <rcgc.h>

/* A tag: holds no references, so it needs no trace. */
typedef struct tag {
    char text[16];
} tag;
static const rc_type tag_type = {"tag", sizeof(tag), NULL, NULL, 0, NULL};

/* A list cell holds two strong references. */
typedef struct cell {
    struct cell *next;
    tag *label;
} cell;

static void cell_trace(void *obj, rc_visit_fn visit, void *ctx) {
    cell *c = obj;
    visit(c->next, ctx);
    visit(c->label, ctx);
}
static const rc_type cell_type = {"cell", sizeof(cell), cell_trace, NULL, 0,
                                  NULL};

static void print_stats(const char *when) {
    rc_stats s;
    rc_stats_get(&s);
    printf("%-16s live %3llu objects %5llu bytes | allocated %llu bytes, "
           "freed %llu\n",
           when, (unsigned long long)s.objects_live,
           (unsigned long long)s.bytes_live,
           (unsigned long long)s.bytes_allocated,
           (unsigned long long)s.bytes_freed);
}

int main(void) {
    tag *shared = rc_new(tag, &tag_type);
    if (shared == NULL)
        return EXIT_FAILURE;
    snprintf(shared->text, sizeof shared->text, "shared");
    cell *head = NULL;
    for (int i = 0; i < 10; i++) {
        cell *c = rc_new(cell, &cell_type);
        if (c == NULL)
            return EXIT_FAILURE;
        c->next = head;                 /* the new cell takes over head */
        c->label = rc_retain(shared);   /* every cell shares the tag */
        head = c;
    }
    printf("tag count: %zu (1 + one per cell)\n", rc_refcount(shared));
    print_stats("built:");
    rc_release(shared);
    rc_release(head); /* frees all ten cells, then the tag */
    print_stats("released:");
    return rc_live_objects() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
