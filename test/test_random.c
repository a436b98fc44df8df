/* test_random.c: the collector against the model's reachability oracle on
 * thousands of random programs (model.h).
 *
 * The run seed comes from RCGC_SEED (replay) or from the clock; every
 * failure names the seed and the graph, and RCGC_SEED=S replays the same
 * run. RCGC_TEST_SCALE=N divides the graph counts (for valgrind); the small
 * graphs never drop below 1,000.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <rcgc.h>

#include "model.h"

#define SMALL_GRAPHS 10000u
#define SMALL_GRAPHS_MIN 1000u
#define LARGE_GRAPHS 48u
#define LARGE_GRAPHS_MIN 2u

static uint64_t run_seed(void) {
    const char *env = getenv("RCGC_SEED");
    if (env != NULL && *env != '\0')
        return strtoull(env, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)getpid() << 32);
    return x % 10000000000000ull; /* short enough to type */
}

static uint64_t scaled(uint64_t graphs, uint64_t floor) {
    const char *env = getenv("RCGC_TEST_SCALE");
    long div = env != NULL ? strtol(env, NULL, 10) : 1;
    if (div > 1)
        graphs /= (uint64_t)div;
    return graphs < floor ? floor : graphs;
}

/* Runs `graphs` graphs and asserts there was no mismatch; `label` starts
 * the summary line. */
static void run_checked(const char *label, const model_params *p,
                        uint64_t graphs) {
    model_install_crash_reporter();
    uint64_t seed = run_seed();
    fprintf(stderr, "%s: seed=%" PRIu64 " graphs=%" PRIu64
            " starting (replay: RCGC_SEED=%" PRIu64 ")\n",
            label, seed, graphs, seed);
    model_stats st;
    memset(&st, 0, sizeof st);
    model_run_split(p, seed, 0, graphs, &st);
    fprintf(stderr, "%s: seed=%" PRIu64 " graphs=%" PRIu64
            " mismatches=%" PRIu64 "\n", label, seed, st.graphs, st.failed);
    fprintf(stderr, "%s: ops=%" PRIu64 " allocated=%" PRIu64
            " collects=%" PRIu64 " collected=%" PRIu64 " finalized=%" PRIu64
            " resurrected=%" PRIu64 " immortal=%" PRIu64 " leaked=%" PRIu64
            " peak=%" PRIu64 " auto-passes=%" PRIu64 "\n", label, st.ops,
            st.allocated, st.collects, st.collected, st.finalized,
            st.resurrected, st.immortal, st.leaked, st.peak_live,
            st.auto_passes);
    cr_assert_eq(st.failed, 0,
                 "%s: seed=%" PRIu64 " graph=%" PRIu64 ": %s "
                 "(replay: RCGC_SEED=%" PRIu64 ")", label, seed,
                 st.first_failed_graph, st.failure, seed);
    cr_assert_eq(st.graphs, graphs, "%s: ran %" PRIu64 " of %" PRIu64
                 " graphs", label, st.graphs, graphs);
    rc_collect();
    cr_assert_eq(rc_live_objects(), 0, "%s: %zu objects leaked", label,
                 rc_live_objects());
}

Test(random, small_graphs) {
    model_params p;
    model_params_small(&p);
    run_checked("random", &p, scaled(SMALL_GRAPHS, SMALL_GRAPHS_MIN));
}

Test(random, large_graphs) {
    model_params p;
    model_params_large(&p);
    run_checked("random-large", &p, scaled(LARGE_GRAPHS, LARGE_GRAPHS_MIN));
}
