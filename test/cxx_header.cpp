/* cxx_header.cpp: <rcgc.h> and <rcgc/check.h> compile as C++ with strict
 * warnings (the ctest compiles it, -fsyntax-only). */
#include <rcgc.h>
#include <rcgc/check.h>
struct Node { Node *next; };
static void tr(void *o, rc_visit_fn v, void *c) { v(static_cast<Node *>(o)->next, c); }
static const rc_type nt = {"n", sizeof(Node), tr, nullptr, 0, nullptr};
int main() {
    Node *a = rc_new(Node, &nt);
    Node *b = rc_new(Node, &nt);
    RC_SET(a->next, b);
    rc_release(b);
    { RC_AUTO Node *t = rc_new(Node, &nt); (void)t; }
    rc_retain(a); rc_release(a);
    rc_release(a);
    return rc_collect() == 0 && rc_live_objects() == 0 ? 0 : 1;
}
