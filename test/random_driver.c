/* random_driver.c: the model (model.h) as a plain program, for valgrind and
 * other runs outside Criterion. Exit status 0 only when no graph mismatched.
 *
 *   random_driver [SEED [GRAPHS]] [options]
 *     --seed S            run seed (default: RCGC_SEED, else the clock)
 *     --graphs N          graphs to run (default 1000 / RCGC_TEST_SCALE)
 *     --first I           first graph index (replay one graph: --first I
 *                         --graphs 1)
 *     --large             up to 2000 objects and thousands of ops per graph
 *     --check-every N     oracle check every N ops (0: at collects only)
 *     --immortal-every N  every Nth graph makes immortal objects (0: none)
 *     --trace             print every op to stderr
 *     --record FILE       write the bytes of graph --first to FILE
 *     --corpus DIR        write the bytes of every graph run to DIR
 *     --bytes FILE        run the one graph FILE describes (fuzz inputs)
 *     --immortal          with --bytes: allow immortal objects
 *
 * The last line is always "random-driver: <graphs> passed, <n> failed".
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rcgc.h>

#include "model.h"

typedef struct options {
    uint64_t seed, graphs, first;
    int have_seed, have_graphs, large, trace, immortal;
    long check_every, immortal_every;
    const char *record, *corpus, *bytes;
} options;

static void usage(void) {
    fprintf(stderr,
            "usage: random_driver [SEED [GRAPHS]] [--seed S] [--graphs N]\n"
            "         [--first I] [--large] [--check-every N]\n"
            "         [--immortal-every N] [--trace] [--record FILE]\n"
            "         [--corpus DIR] [--bytes FILE [--immortal]]\n");
    exit(2);
}

static uint64_t clock_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)getpid() << 32);
    return x % 10000000000000ull;
}

static uint64_t default_graphs(void) {
    const char *env = getenv("RCGC_TEST_SCALE");
    long div = env != NULL ? strtol(env, NULL, 10) : 1;
    uint64_t n = 1000;
    if (div > 1)
        n /= (uint64_t)div;
    return n < 1 ? 1 : n;
}

static const char *value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc)
        usage();
    return argv[++*i];
}

static void parse(options *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->check_every = -1;
    o->immortal_every = -1;
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--seed") == 0) {
            o->seed = strtoull(value(argc, argv, &i), NULL, 0);
            o->have_seed = 1;
        } else if (strcmp(a, "--graphs") == 0) {
            o->graphs = strtoull(value(argc, argv, &i), NULL, 0);
            o->have_graphs = 1;
        } else if (strcmp(a, "--first") == 0) {
            o->first = strtoull(value(argc, argv, &i), NULL, 0);
        } else if (strcmp(a, "--large") == 0) {
            o->large = 1;
        } else if (strcmp(a, "--check-every") == 0) {
            o->check_every = strtol(value(argc, argv, &i), NULL, 0);
        } else if (strcmp(a, "--immortal-every") == 0) {
            o->immortal_every = strtol(value(argc, argv, &i), NULL, 0);
        } else if (strcmp(a, "--trace") == 0) {
            o->trace = 1;
        } else if (strcmp(a, "--record") == 0) {
            o->record = value(argc, argv, &i);
        } else if (strcmp(a, "--corpus") == 0) {
            o->corpus = value(argc, argv, &i);
        } else if (strcmp(a, "--bytes") == 0) {
            o->bytes = value(argc, argv, &i);
        } else if (strcmp(a, "--immortal") == 0) {
            o->immortal = 1;
        } else if (a[0] != '-' && positional == 0) {
            o->seed = strtoull(a, NULL, 0);
            o->have_seed = 1;
            positional++;
        } else if (a[0] != '-' && positional == 1) {
            o->graphs = strtoull(a, NULL, 0);
            o->have_graphs = 1;
            positional++;
        } else {
            usage();
        }
    }
    if (!o->have_seed) {
        const char *env = getenv("RCGC_SEED");
        o->seed = env && *env ? strtoull(env, NULL, 0) : clock_seed();
    }
    if (!o->have_graphs)
        o->graphs = default_graphs();
}

static void params_for(const options *o, model_params *p) {
    if (o->large)
        model_params_large(p);
    else
        model_params_small(p);
    if (o->check_every >= 0)
        p->check_every = (unsigned)o->check_every;
    if (o->immortal_every >= 0)
        p->immortal_every = (unsigned)o->immortal_every;
    if (o->trace)
        p->trace = stderr;
}

static int write_file(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t w = fwrite(b, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    uint8_t *b = malloc(cap);
    while (b != NULL) {
        len += fread(b + len, 1, cap - len, f);
        if (len < cap)
            break;
        uint8_t *nb = realloc(b, cap *= 2);
        if (nb == NULL)
            free(b);
        b = nb;
    }
    fclose(f);
    *n = len;
    return b;
}

/* Records graphs [first, first+graphs) as byte files, one per graph. */
static void record_graphs(const options *o, const model_params *p,
                          model_stats *st) {
    for (uint64_t g = o->first; g < o->first + o->graphs && !st->failed;
         g++) {
        uint8_t *b = NULL;
        size_t n = 0;
        model_record(p, o->seed, g, &b, &n, st);
        char path[4096];
        if (o->record != NULL)
            snprintf(path, sizeof path, "%s", o->record);
        else
            snprintf(path, sizeof path, "%s/seed%" PRIu64 "-graph%" PRIu64,
                     o->corpus, o->seed, g);
        if (b != NULL && write_file(path, b, n) != 0)
            fprintf(stderr, "random-driver: cannot write %s\n", path);
        free(b);
        if (o->record != NULL)
            break;
    }
}

static void replay_bytes(const options *o, model_params *p, model_stats *st) {
    size_t n = 0;
    uint8_t *b = read_file(o->bytes, &n);
    if (b == NULL) {
        fprintf(stderr, "random-driver: cannot read %s\n", o->bytes);
        exit(2);
    }
    p->immortal_every = o->immortal ? 1 : 0;
    model_run_bytes(p, b, n, st);
    free(b);
}

int main(int argc, char **argv) {
    options o;
    parse(&o, argc, argv);
    model_params p;
    params_for(&o, &p);
    model_install_crash_reporter();
    model_stats st;
    memset(&st, 0, sizeof st);
    if (o.bytes != NULL) {
        fprintf(stderr, "random-driver: bytes=%s\n", o.bytes);
        replay_bytes(&o, &p, &st);
    } else {
        fprintf(stderr, "random-driver: seed=%" PRIu64 " first=%" PRIu64
                " graphs=%" PRIu64 "%s\n", o.seed, o.first, o.graphs,
                o.large ? " large" : "");
        if (o.record != NULL || o.corpus != NULL)
            record_graphs(&o, &p, &st);
        else
            model_run_split(&p, o.seed, o.first, o.graphs, &st);
    }
    rc_collect();
    size_t live = rc_live_objects();
    if (st.failed == 0 && live != 0) {
        snprintf(st.failure, sizeof st.failure, "%zu objects leaked", live);
        st.failed = 1;
    }
    if (st.failed)
        fprintf(stderr, "random-driver: FAILED graph %" PRIu64 ": %s\n",
                st.first_failed_graph, st.failure);
    fprintf(stderr, "random-driver: ops=%" PRIu64 " allocated=%" PRIu64
            " collects=%" PRIu64 " collected=%" PRIu64 " finalized=%" PRIu64
            " resurrected=%" PRIu64 " immortal=%" PRIu64 " leaked=%" PRIu64
            " peak=%" PRIu64 " auto-passes=%" PRIu64 "\n", st.ops,
            st.allocated, st.collects, st.collected, st.finalized,
            st.resurrected, st.immortal, st.leaked, st.peak_live,
            st.auto_passes);
    printf("random-driver: %" PRIu64 " passed, %" PRIu64 " failed\n",
           st.graphs - st.failed, st.failed);
    return st.failed ? 1 : 0;
}
