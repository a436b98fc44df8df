/* uaf_driver.c: a plain program (no test framework) that misuses or leaks
 * pooled objects on purpose, for Valgrind memcheck, which sees inside no
 * Criterion worker. Every object of the pooled allocator is a heap block of
 * its own for Memcheck, so:
 *
 *   uaf_driver uaf        reads a released pooled object: memcheck reports
 *                         an invalid read (the program itself exits 0)
 *   uaf_driver leak       drops an object holding another without releasing
 *                         it: one block definitely lost, one indirectly lost
 *   uaf_driver clean      allocates and frees plain, sized, large and cyclic
 *                         objects: no error, nothing lost
 *   uaf_driver reachable  as clean, and keeps one object alive in a global
 *                         at exit: still reachable, not lost
 *
 * Debug builds keep freed objects in a quarantine, where Memcheck sees them
 * still allocated; `uaf` turns it off (RCGC_QUARANTINE=0). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rcgc.h>

typedef struct holder {
    void *child;
    uint64_t words[2];
} holder;

static void holder_trace(void *obj, rc_visit_fn visit, void *ctx) {
    visit(((holder *)obj)->child, ctx);
}

static const rc_type holder_type = {"holder", sizeof(holder), holder_trace,
                                    NULL, 0, NULL};
static const rc_type leaf_type = {"leaf", 40, NULL, NULL, 0, NULL};
static const rc_type filler_type = {"filler", 200, NULL, NULL, 0, NULL};
static const rc_type big_type = {"big", 6000, NULL, NULL, 0, NULL};
static const rc_type flex_type = {"flex", 8, NULL, NULL, 0, NULL};

static void *must(void *p) {
    if (p == NULL) {
        fprintf(stderr, "uaf_driver: allocation failed\n");
        exit(2);
    }
    return p;
}

static volatile unsigned char sink;

static __attribute__((noinline)) int mode_uaf(void) {
    setenv("RCGC_QUARANTINE", "0", 1); /* read as the runtime starts */
    unsigned char *victim = must(rc_alloc(&leaf_type));
    void *neighbour = must(rc_alloc(&leaf_type)); /* keeps the span in use */
    memset(victim, 7, leaf_type.size);
    rc_release(victim);
    sink = ((volatile unsigned char *)victim)[8];
    rc_release(neighbour);
    return 0;
}

/* The only references to the holder and its child live in this frame. */
static __attribute__((noinline)) void drop_a_holder(void) {
    holder *h = must(rc_alloc(&holder_type));
    h->child = must(rc_alloc(&leaf_type));
    h->words[0] = 1;
}

/* Overwrites the stack below the caller's frame, where the dropped
 * pointers may still lie and keep the leak checker from calling them
 * lost. */
static __attribute__((noinline)) void scrub_stack(void) {
    volatile char area[16384];
    for (size_t i = 0; i < sizeof area; i++)
        area[i] = 0;
}

static __attribute__((noinline)) int mode_leak(void) {
    drop_a_holder();
    scrub_stack();
    return 0;
}

static __attribute__((noinline)) void churn(void) {
    enum { N = 3000 };
    static void *objs[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            switch (i % 4) {
            case 0: objs[i] = must(rc_alloc(&leaf_type)); break;
            case 1: objs[i] = must(rc_alloc_extra(&flex_type, (size_t)i % 500 + 1)); break;
            case 2: objs[i] = must(rc_alloc(&big_type)); break;
            default: objs[i] = must(rc_alloc(&filler_type)); break;
            }
        }
        for (int i = 0; i < N; i++)
            rc_release(objs[(i * 7919) % N]);
    }
    /* A garbage cycle with a child outside it, for the collector. */
    holder *a = must(rc_alloc(&holder_type));
    holder *b = must(rc_alloc(&holder_type));
    a->child = rc_retain(b);
    b->child = a; /* takes over the allocation's reference */
    rc_release(b);
    rc_collect();
}

static __attribute__((noinline)) int mode_clean(void) {
    churn();
    return rc_live_objects() == 0 ? 0 : 1;
}

static void *kept;

static __attribute__((noinline)) int mode_reachable(void) {
    churn();
    kept = must(rc_alloc(&holder_type));
    ((holder *)kept)->child = must(rc_alloc(&leaf_type));
    return rc_live_objects() == 2 ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "uaf") == 0)
        return mode_uaf();
    if (strcmp(mode, "leak") == 0)
        return mode_leak();
    if (strcmp(mode, "clean") == 0)
        return mode_clean();
    if (strcmp(mode, "reachable") == 0)
        return mode_reachable();
    fprintf(stderr, "usage: uaf_driver uaf|leak|clean|reachable\n");
    return 2;
}
