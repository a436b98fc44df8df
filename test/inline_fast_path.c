/* Compiled to assembly by inline_check.cmake: rc_retain must be an inline
 * increment (no call at all), rc_release an inline decrement-and-test whose
 * only exits to the library are tail jumps to its rare paths, and rc_alloc
 * of a static const type a call of the entry for its kind, zeroing nothing
 * the caller's stores overwrite. */
#include <rcgc.h>

typedef struct pair {
    void *a, *b;
} pair;

static void pair_trace(void *obj, rc_visit_fn visit, void *ctx) {
    pair *p = obj;
    visit(p->a, ctx);
    visit(p->b, ctx);
}

static const rc_type pair_type = {"pair", sizeof(pair), pair_trace, NULL, 0,
                                  NULL};

void *check_retain(void *p);
void check_release(void *p);
void *check_alloc_known(void *a, void *b);
void *check_alloc_unknown(const rc_type *t);

void *check_retain(void *p) { return rc_retain(p); }
void check_release(void *p) { rc_release(p); }

void *check_alloc_known(void *a, void *b) {
    pair *p = rc_new(pair, &pair_type);
    if (p != NULL) {
        p->a = a;
        p->b = b;
    }
    return p;
}

void *check_alloc_unknown(const rc_type *t) { return rc_alloc(t); }
