/* test_debug.c: misuse detection in debug builds. Each case runs in a
 * forked child; the parent checks the signal and the one-line message. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "helpers.h"

#if RCGC_DEBUG

static char msg[4096];

static void expect_abort(void (*fn)(void *), const char *op, const char *what,
                         const char *type) {
    int sig = th_capture(fn, NULL, msg, sizeof msg);
    cr_assert_eq(sig, SIGABRT, "expected SIGABRT, got %d; stderr: %s", sig, msg);
    cr_assert_not_null(strstr(msg, op), "no '%s' in: %s", op, msg);
    cr_assert_not_null(strstr(msg, what), "no '%s' in: %s", what, msg);
    cr_assert_not_null(strstr(msg, type), "no '%s' in: %s", type, msg);
    cr_assert_eq(strchr(msg, '\n'), msg + strlen(msg) - 1, "one line: %s", msg);
}

static void double_release(void *arg) {
    (void)arg;
    tnode *n = rc_new(tnode, &tnode_type);
    rc_release(n);
    rc_release(n);
}

Test(misuse, release_of_freed_object_names_type_and_site) {
    expect_abort(double_release, "rc_release", "already freed", "'tnode'");
    cr_assert_not_null(strstr(msg, "test_debug.c:"), "site: %s", msg);
    TH_ASSERT_NO_LEAKS();
}

static void retain_freed(void *arg) {
    (void)arg;
    tnode *n = rc_new(tnode, &tnode_type);
    rc_release(n);
    rc_retain(n);
}

Test(misuse, retain_of_freed_object) {
    expect_abort(retain_freed, "rc_retain", "already freed", "'tnode'");
    TH_ASSERT_NO_LEAKS();
}

/* The quarantine holds freed blocks by bytes (32 MiB unless
 * RCGC_QUARANTINE says otherwise), not by a small count of objects: a
 * double release after 20,000 other objects died is still reported. */
static const rc_type other_type = {"other", 200, NULL, NULL, 0, NULL};
static void late_double_release(void *arg) {
    (void)arg;
    tnode *n = rc_new(tnode, &tnode_type);
    rc_release(n);
    for (int i = 0; i < 20000; i++) /* another class: n's stays as it was */
        rc_release(rc_alloc(&other_type));
    tnode *fresh = rc_new(tnode, &tnode_type);
    if (fresh == n) /* n's block was handed out again: nothing to catch */
        return;
    rc_release(n);
}

Test(misuse, release_of_an_object_freed_long_ago) {
    expect_abort(late_double_release, "rc_release", "already freed",
                 "'tnode'");
    TH_ASSERT_NO_LEAKS();
}

/* RCGC_QUARANTINE=0 hands a freed block back at once (the next object of
 * its size takes it); by default it is held. */
static void reuse_with_quarantine(void *arg) {
    if (arg != NULL)
        setenv("RCGC_QUARANTINE", arg, 1);
    tnode *a = rc_new(tnode, &tnode_type);
    rc_release(a);
    tnode *b = rc_new(tnode, &tnode_type);
    fprintf(stderr, "%s\n", a == b ? "reused" : "held");
    rc_release(b);
}

Test(quarantine, size_is_set_by_environment) {
    cr_assert_eq(th_capture(reuse_with_quarantine, NULL, msg, sizeof msg), 0);
    cr_assert_str_eq(msg, "held\n");
    cr_assert_eq(th_capture(reuse_with_quarantine, "0", msg, sizeof msg), 0);
    cr_assert_str_eq(msg, "reused\n");
    cr_assert_eq(th_capture(reuse_with_quarantine, "1k", msg, sizeof msg), 0);
    cr_assert_str_eq(msg, "held\n");
    TH_ASSERT_NO_LEAKS();
}

Test(quarantine, bad_size_is_reported_once_and_the_default_used) {
    cr_assert_eq(th_capture(reuse_with_quarantine, "12Q", msg, sizeof msg), 0);
    cr_assert_str_eq(msg, "rcgc: RCGC_QUARANTINE: bad size '12Q' (bytes, or "
                          "with a K, M or G suffix); using 32M\nheld\n");
    TH_ASSERT_NO_LEAKS();
}

/* In the middle of a zeroed buffer, so the debug prefix and header that
 * would stand in front of an object are readable and hold nothing. */
static void *foreign_pointer(void) {
    static _Alignas(16) unsigned char junk[256];
    return junk + 128;
}

static void release_foreign(void *arg) {
    (void)arg;
    rc_release(foreign_pointer());
}

static void retain_foreign(void *arg) {
    (void)arg;
    rc_retain(foreign_pointer());
}

Test(misuse, release_of_a_pointer_rcgc_did_not_allocate) {
    expect_abort(release_foreign, "rc_release", "is not an rcgc object",
                 "not allocated by rcgc");
    expect_abort(retain_foreign, "rc_retain", "is not an rcgc object",
                 "not allocated by rcgc");
    TH_ASSERT_NO_LEAKS();
}

static void self_release_finalize(void *o) { rc_release(o); }
static const rc_type selfish = {"selfish", sizeof(tnode), th_tnode_trace,
                                self_release_finalize, 0, NULL};
static void finalizer_underflow(void *arg) {
    (void)arg;
    rc_release(rc_alloc(&selfish));
}

Test(misuse, count_underflow_in_finalizer) {
    expect_abort(finalizer_underflow, "rc_release", "underflow", "'selfish'");
    TH_ASSERT_NO_LEAKS();
}

/* A trace that releases its children by hand: the runtime releases them
 * again, and the second release finds them freed. */
static void releasing_finalize(void *o) {
    tnode *n = o;
    rc_release(n->kid[0]);
}
static const rc_type bad_owner = {"badowner", sizeof(tnode), th_tnode_trace,
                                  releasing_finalize, 0, NULL};
static void release_traced_child(void *arg) {
    (void)arg;
    tnode *p = rc_alloc(&bad_owner);
    p->kid[0] = rc_new(tnode, &tnode_type);
    rc_release(p);
}

Test(misuse, finalizer_releasing_traced_child) {
    expect_abort(release_traced_child, "rc_release", "underflow", "'tnode'");
    TH_ASSERT_NO_LEAKS();
}

static tnode *shared;
static void *touch_from_other_thread(void *arg) {
    (void)arg;
    rc_retain(shared);
    return NULL;
}
static void cross_thread(void *arg) {
    (void)arg;
    shared = rc_new(tnode, &tnode_type);
    pthread_t t;
    pthread_create(&t, NULL, touch_from_other_thread, NULL);
    pthread_join(t, NULL);
}

Test(misuse, cross_thread_retain) {
    expect_abort(cross_thread, "rc_retain", "another thread", "'tnode'");
    TH_ASSERT_NO_LEAKS();
}

/* trace reports its single child twice */
static void twice_trace(void *o, rc_visit_fn visit, void *ctx) {
    tnode *n = o;
    visit(n->kid[0], ctx);
    visit(n->kid[0], ctx);
}
static const rc_type twice = {"twice", sizeof(tnode), twice_trace, NULL, 0, NULL};
static void double_edge(void *arg) {
    (void)arg;
    tnode *a = rc_alloc(&twice);
    tnode *b = rc_new(tnode, &tnode_type);
    a->kid[0] = b;            /* a holds b once */
    b->kid[0] = rc_retain(a); /* b holds a */
    rc_release(a);
    rc_collect();
}

Test(misuse, trace_reporting_an_edge_twice_is_caught) {
    expect_abort(double_edge, "rc_collect", "below zero", "'twice'");
    TH_ASSERT_NO_LEAKS();
}

/* trace invents an edge to an object it does not hold */
static tnode *stranger;
static void invent_trace(void *o, rc_visit_fn visit, void *ctx) {
    th_tnode_trace(o, visit, ctx);
    visit(stranger, ctx);
}
static const rc_type inventor = {"inventor", sizeof(tnode), invent_trace, NULL,
                                 0, NULL};
static void invented_edge(void *arg) {
    (void)arg;
    stranger = rc_new(tnode, &tnode_type); /* held only by the test */
    tnode *a = rc_alloc(&inventor);
    tnode *b = rc_alloc(&inventor);
    th_link(a, 0, b);
    th_link(b, 0, a); /* both claim the stranger: two edges, one count */
    rc_release(b);
    rc_release(a);
    rc_collect();
}

Test(misuse, trace_inventing_an_edge_is_caught) {
    expect_abort(invented_edge, "rc_collect", "below zero", "'inventor'");
    TH_ASSERT_NO_LEAKS();
}

#else

Test(misuse, debug_checks_need_a_debug_build) {
    cr_skip_test("built without RCGC_DEBUG");
}

#endif
