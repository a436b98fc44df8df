/* Compiled to assembly by inline_check.cmake: rc_retain must be an inline
 * increment (no call at all), rc_release an inline decrement-and-test whose
 * only exits to the library are tail jumps to its rare paths. */
#include <rcgc.h>

void *check_retain(void *p);
void check_release(void *p);

void *check_retain(void *p) { return rc_retain(p); }
void check_release(void *p) { rc_release(p); }
