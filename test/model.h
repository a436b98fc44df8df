/* model.h: randomized differential testing of the collector against an
 * independent reachability oracle.
 *
 * A "graph" is a short random program over a table of at most M objects:
 * allocate, store or clear a child slot, drop or duplicate one of the
 * program's own (external) references, store into a global slot, make an
 * object immortal, run rc_collect(), open a window of automatic passes
 * (closed again by setting the threshold to 0), or dump the graph and report
 * leaks (rc_dump_dot() and rc_leak_report() to /dev/null). The model keeps
 * its own copy of every edge, of the external references (a multiset), of
 * the global slots and of the immortal set; it never asks the runtime's
 * trace. Types record every finalize and dispose call per model id, so what
 * is alive is known without touching freed memory.
 *
 * Hooks act as the object's allocation drew: a finalizer may empty a global
 * slot, allocate into one, resurrect its object into one or only through a
 * cycle it makes (a self-loop in a NULL slot, or a back edge from a NULL
 * slot of a child), or turn automatic passes off; a dispose may empty a
 * global slot, even one holding a member of its own garbage set that a
 * finalizer resurrected. Finalize, dispose, and trace during the program's
 * dump may call the runtime back: there rc_collect() returns 0 and changes
 * nothing, rc_leak_report() returns rc_live_objects(), rc_dump_dot() -1.
 *
 * Checked after every op (or every `check_every` ops) and always after
 * rc_collect():
 *   - every object reachable from external refs, globals and immortals is
 *     alive, its payload matches the model and its rc_refcount() equals its
 *     in-degree from live objects + external refs + global slots (SIZE_MAX
 *     when immortal);
 *   - rc_live_objects() == objects alive by the model's dispose accounting;
 *   - finalize and dispose ran at most once per object, dispose last;
 *   - with the threshold at 0 no pass ran outside rc_collect() (but for
 *     the one a finalizer that set 0 ran in), and the program's dump and
 *     leak report returned 0 and the live count, and freed nothing: no
 *     pass, no finalize, no dispose.
 * After rc_collect() additionally: every unreachable object was disposed
 * exactly once (and finalized exactly once when its type has a finalizer),
 * rc_live_objects() is the reachable count, and the stats agree.
 *
 * Every decision is drawn from one byte source: a PRNG seeded with
 * (seed, graph index), or a fixed byte string (fuzzing, replays). A PRNG
 * graph can be recorded as bytes and replayed or minimized as a byte string.
 */
#ifndef RCGC_TEST_MODEL_H
#define RCGC_TEST_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Hard bounds of the model's tables. */
#define MODEL_MAX_OBJECTS 4096
#define MODEL_NODE_SLOTS 4 /* child slots of a node */
#define MODEL_VEC_MAX 8    /* children of a vec at most */
#define MODEL_GLOBALS 4    /* global slots (program and finalizers) */

/* What a run draws its graphs from. */
typedef struct model_params {
    unsigned max_objects;   /* M: objects per graph, 2..MODEL_MAX_OBJECTS */
    unsigned min_ops;       /* ops per graph drawn in [min_ops, max_ops] */
    unsigned max_ops;
    unsigned check_every;   /* invariant check every N ops; 0: at collects */
    unsigned immortal_every; /* graphs i with i % E == E-1 make immortal
                                objects; 0: none */
    FILE *trace;            /* when set, every op is printed here */
} model_params;

/* Parameters of the standard runs: small graphs have <= 64 objects and a
 * few hundred ops, large ones <= 2000 objects and thousands of ops. Under
 * valgrind the small runs make no immortal objects (they are leaked on
 * purpose). */
void model_params_small(model_params *out);
void model_params_large(model_params *out);

/* Counters of a run; `failure` holds the first mismatch, "" when none. */
typedef struct model_stats {
    uint64_t graphs, failed;
    uint64_t ops, collects, collected, allocated;
    uint64_t finalized, resurrected, immortal, auto_windows;
    uint64_t auto_passes;  /* passes the runtime ran on its own */
    uint64_t leaked;       /* objects left alive on purpose (immortal) */
    uint64_t peak_live;    /* most objects of one graph alive at a check */
    uint64_t first_failed_graph;
    char failure[768];
} model_stats;

/* The seed of graph `graph` of a run with seed `seed`. */
uint64_t model_graph_seed(uint64_t seed, uint64_t graph);

/* Whether graph `graph` makes immortal objects under `p`. */
int model_graph_is_immortal(const model_params *p, uint64_t graph);

/*
 * Runs graphs [first, first+count) of the run `seed` on the calling thread,
 * all of them (`which` 0), only those without immortal objects (1) or only
 * those with (2). Stops at the first mismatch. Objects left alive on purpose
 * are added to out->leaked. Returns the number of failed graphs (0 or 1).
 */
uint64_t model_run(const model_params *p, uint64_t seed, uint64_t first,
                   uint64_t count, int which, model_stats *out);

/*
 * Runs graphs [first, first+count) of the run `seed`: the graphs without
 * immortal objects on the calling thread, the others on a helper thread
 * whose runtime is dropped with rc_thread_exit() after checking that only
 * the accounted immortal objects are left. The calling thread is left with
 * no live object of the model. Returns the number of failed graphs.
 */
uint64_t model_run_split(const model_params *p, uint64_t seed, uint64_t first,
                         uint64_t count, model_stats *out);

/*
 * Runs one graph drawn from `data` on the calling thread (fuzzing, replays):
 * each decision takes one to three bytes; the program ends when the bytes
 * run out. Returns 0, or 1 on a mismatch (described in out->failure).
 */
int model_run_bytes(const model_params *p, const uint8_t *data, size_t size,
                    model_stats *out);

/*
 * Runs graph `graph` of run `seed` like model_run() and returns the bytes it
 * consumed in *bytes (malloc'd, free it): model_run_bytes() on them runs the
 * same program. Returns the number of failed graphs (0 or 1).
 */
uint64_t model_record(const model_params *p, uint64_t seed, uint64_t graph,
                      uint8_t **bytes, size_t *size, model_stats *out);

/* Prints "model: crashed in seed=S graph=G op=K" on a fatal signal or a
 * sanitizer error, then lets the previous handler run. */
void model_install_crash_reporter(void);

#endif
