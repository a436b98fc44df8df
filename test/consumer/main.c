/* A program built against the installed rcgc package. */
#include <rcgc.h>
#include <rcgc/check.h>
#include <stdio.h>

typedef struct pair { struct pair *other; } pair;
static void pair_trace(void *o, rc_visit_fn visit, void *ctx) {
    visit(((pair *)o)->other, ctx);
}
static const rc_type pair_type = {"pair", sizeof(pair), pair_trace, NULL, 0, NULL};

int main(void) {
    rc_checkpoint cp = rc_check_begin();
    pair *a = rc_new(pair, &pair_type), *b = rc_new(pair, &pair_type);
    RC_SET(a->other, b);
    RC_SET(b->other, a);
    rc_release(a);
    rc_release(b);
    size_t freed = rc_collect();
    printf("consumer: rcgc %s freed %zu\n", RCGC_VERSION_STRING, freed);
    return freed == 2 && RC_CHECK_NO_LEAKS(cp) ? 0 : 1;
}
