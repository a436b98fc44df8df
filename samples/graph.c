/* graph.c: the README's example, built and run as a test so the two
 * never disagree. */
#include <rcgc.h>
#include <stdlib.h>

/* A graph node with a fixed field and a growable array of children. */
typedef struct node {
    struct node *parent;     /* strong reference */
    size_t n;
    struct node **kids;      /* malloc'd array of strong references */
} node;

/* Visit every strong reference the object holds (NULL is ignored). */
static void node_trace(void *obj, rc_visit_fn visit, void *ctx) {
    node *nd = obj;
    visit(nd->parent, ctx);
    for (size_t i = 0; i < nd->n; i++)
        visit(nd->kids[i], ctx);
}

/* Free the array only here: the runtime traces before disposing. */
static void node_dispose(void *obj) { free(((node *)obj)->kids); }

static const rc_type node_type = {
    .name = "node", .size = sizeof(node),
    .trace = node_trace, .dispose = node_dispose,
};

static int add_kid(node *p, node *kid) {
    node **k = realloc(p->kids, (p->n + 1) * sizeof *k);
    if (k == NULL) return -1;
    p->kids = k;
    p->kids[p->n++] = rc_retain(kid);   /* the array holds a reference */
    RC_SET(kid->parent, p);             /* retain new, release old: a cycle */
    return 0;
}

int main(void) {
    node *root = rc_new(node, &node_type);       /* count 1, zeroed */
    if (root == NULL) return 1;                  /* out of memory */
    for (int i = 0; i < 3; i++) {
        node *kid = rc_new(node, &node_type);
        int failed = kid == NULL || add_kid(root, kid) != 0;
        rc_release(kid);           /* root keeps it alive; NULL is ignored */
        if (failed) return 1;
    }
    rc_release(root);    /* root <-> kids are cycles: counting alone leaks */
    size_t freed = rc_collect();                 /* frees all 4 */
    return freed == 4 && rc_live_objects() == 0 ? 0 : 1;
}
