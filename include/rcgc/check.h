/**
 * @file rcgc/check.h
 * @brief Leak checks for a program's own tests.
 *
 * @code
 *   rc_checkpoint cp = rc_check_begin();
 *   ... code under test ...
 *   assert(RC_CHECK_NO_LEAKS(cp));   // or cr_assert(...), TEST_ASSERT(...)
 * @endcode
 *
 * The check runs a full collection first, so garbage cycles do not count as
 * leaks; what is still alive beyond the checkpoint is reported on stderr
 * with rc_leak_report().
 */
#ifndef RCGC_CHECK_H
#define RCGC_CHECK_H

#include <rcgc.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The calling thread's live-object count at some point of a test. */
typedef struct rc_checkpoint {
    size_t live;
} rc_checkpoint;

/** Marks the point a later rc_check_leaks() compares with. */
static inline rc_checkpoint rc_check_begin(void) {
    rc_checkpoint cp;
    rc_collect();
    cp.live = rc_live_objects();
    return cp;
}

/**
 * Collects, then counts the objects alive beyond those of the checkpoint.
 * @return 0 when nothing leaked; otherwise the number of extra live objects,
 *         after printing "file:line: N rcgc objects leaked" and the leak
 *         report to stderr.
 */
static inline size_t rc_check_leaks(rc_checkpoint cp, const char *file,
                                    int line) {
    rc_collect();
    size_t live = rc_live_objects();
    if (live <= cp.live)
        return 0;
    fprintf(stderr, "%s:%d: %zu rcgc objects leaked\n", file, line,
            live - cp.live);
    rc_leak_report(stderr);
    return live - cp.live;
}

/** True when nothing leaked since `cp`; prints the report otherwise. */
#define RC_CHECK_NO_LEAKS(cp) (rc_check_leaks((cp), __FILE__, __LINE__) == 0)

#ifdef __cplusplus
}
#endif

#endif /* RCGC_CHECK_H */
