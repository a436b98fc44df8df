/**
 * @file rcgc/check.h
 * @brief Leak checks for a program's own tests.
 *
 * @code
 *   rc_checkpoint cp = rc_check_begin();
 *   ... code under test ...
 *   if (!RC_CHECK_NO_LEAKS(cp))      // or cr_assert(RC_CHECK_NO_LEAKS(cp))
 *       return EXIT_FAILURE;
 * @endcode
 *
 * Both ends run a full collection first, so garbage cycles do not count as
 * leaks. The check compares live-object counts of the calling thread, not
 * identities: an object alive at the checkpoint and freed since makes room
 * for one new leak. When the count grew, the check prints
 * "file:line: N rcgc objects leaked" and the leak report (every live object,
 * see rc_leak_report()) on stderr.
 *
 * Do not put the check inside assert(): with NDEBUG it would not run.
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

/**
 * Collects garbage, then records the live-object count a later
 * rc_check_leaks() compares with.
 */
static inline rc_checkpoint rc_check_begin(void) {
    rc_checkpoint cp;
    rc_collect();
    cp.live = rc_live_objects();
    return cp;
}

/**
 * Collects garbage, then counts the objects alive beyond those of the
 * checkpoint.
 * @param cp   from rc_check_begin() on the same thread.
 * @param file where the check stands, for the message.
 * @param line the line of `file`.
 * @return 0 when nothing leaked; otherwise the number of extra live objects,
 *         after printing "file:line: N rcgc objects leaked" and the leak
 *         report to stderr.
 */
static inline size_t rc_check_leaks(rc_checkpoint cp, const char *file,
                                    int line) {
    size_t live;
    rc_collect();
    live = rc_live_objects();
    if (live <= cp.live)
        return 0;
    fprintf(stderr, "%s:%d: %zu rcgc object%s leaked\n", file, line,
            live - cp.live, live - cp.live == 1 ? "" : "s");
    rc_leak_report(stderr);
    return live - cp.live;
}

/** True when nothing leaked since `cp`; prints the report otherwise. */
#define RC_CHECK_NO_LEAKS(cp) (rc_check_leaks((cp), __FILE__, __LINE__) == 0)

#ifdef __cplusplus
}
#endif

#endif /* RCGC_CHECK_H */
