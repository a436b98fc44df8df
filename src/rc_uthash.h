/* rc_uthash.h: the one way src/ includes uthash.
 *
 * uthash's default reaction to a failed allocation is exit(-1); the runtime
 * must instead return NULL and stay consistent. Its memory goes through the
 * runtime's allocator, and a failed allocation only sets rc_uthash_oom,
 * which callers test after every HASH_ADD.
 */
#ifndef RC_UTHASH_H
#define RC_UTHASH_H

#ifndef RCGC_BUILDING
#error "rc_uthash.h is private to the rcgc library"
#endif

#include "rc_internal.h"

extern _Thread_local int rc_uthash_oom;

#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (rc_uthash_oom = 1)
#define uthash_malloc(sz) mem_sys_alloc(sz)
#define uthash_free(ptr, sz) mem_sys_free((ptr), (sz))

#include <uthash.h>

#endif
