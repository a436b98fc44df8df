/* demo.c: people and groups that point at each other, the kind of graph
 * plain reference counting cannot free, and one rc_collect() that does.
 *
 *   usage: demo OUTPUT-DIR
 *
 * Writes OUTPUT-DIR/heap-before.dot (the structure after the program let
 * go of it, still alive under counting alone) and heap-after.dot (after the
 * collection), and renders both to .svg and .png when Graphviz's `dot` is
 * installed. Exits 0 when the collection left nothing alive.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <rcgc.h>

extern char **environ;

/* ------------------------------------------------------------ the model */

typedef struct group group;

/* A person holds strong references to a friend and to the groups they
 * belong to: every membership is linked both ways. */
typedef struct person {
    char name[8];
    struct person *friend;
    group *groups[2];
} person;

/* A group keeps its members in a malloc'd array. */
struct group {
    char name[8];
    size_t n;
    person **members;
};

static void person_trace(void *obj, rc_visit_fn visit, void *ctx) {
    person *p = obj;
    visit(p->friend, ctx);
    visit(p->groups[0], ctx);
    visit(p->groups[1], ctx);
}

static void group_trace(void *obj, rc_visit_fn visit, void *ctx) {
    group *g = obj;
    for (size_t i = 0; i < g->n; i++)
        visit(g->members[i], ctx);
}

/* The runtime releases the members (through trace) before dispose frees
 * the array that held them. */
static void group_dispose(void *obj) { free(((group *)obj)->members); }

static const rc_type person_type = {"person", sizeof(person), person_trace,
                                    NULL, 0, NULL};
static const rc_type group_type = {"group", sizeof(group), group_trace, NULL,
                                   0, group_dispose};

static person *person_new(const char *name) {
    person *p = rc_new(person, &person_type);
    if (p == NULL)
        exit(EXIT_FAILURE);
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

static group *group_new(const char *name, size_t capacity) {
    group *g = rc_new(group, &group_type);
    if (g == NULL || (g->members = calloc(capacity, sizeof *g->members)) == NULL)
        exit(EXIT_FAILURE);
    snprintf(g->name, sizeof g->name, "%s", name);
    return g;
}

/* Links p and g both ways: g holds p, p holds g. */
static void join(person *p, group *g) {
    g->members[g->n++] = rc_retain(p);
    RC_SET(p->groups[p->groups[0] ? 1 : 0], g);
}

/* ------------------------------------------------------------ reporting */

static void print_stats(void) {
    rc_stats s;
    rc_stats_get(&s);
    printf("  objects   %llu allocated, %llu freed, %llu live\n",
           (unsigned long long)s.objects_allocated,
           (unsigned long long)s.objects_freed,
           (unsigned long long)s.objects_live);
    printf("  bytes     M %llu allocated, R %llu freed (%llu by the "
           "collector), L %llu live\n",
           (unsigned long long)s.bytes_allocated,
           (unsigned long long)s.bytes_freed,
           (unsigned long long)s.bytes_freed_by_collector,
           (unsigned long long)s.bytes_live);
    printf("            F %llu taken from the system but unused\n",
           (unsigned long long)s.bytes_fragmented);
    printf("  collector %llu pass%s, %llu cycle members freed, %llu roots "
           "buffered,\n            %.1f us in passes, longest %.1f us\n",
           (unsigned long long)s.collections, s.collections == 1 ? "" : "es",
           (unsigned long long)s.cycles_objects_freed,
           (unsigned long long)s.roots_buffered, s.gc_ns_total / 1e3,
           s.gc_ns_max / 1e3);
}

/* Creates dir and its missing parents. */
static int make_dirs(const char *dir) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_dot(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.dot", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || rc_dump_dot(f) != 0 || fclose(f) != 0) {
        fprintf(stderr, "demo: cannot write %s\n", path);
        return -1;
    }
    printf("  -> %s\n", path);
    return 0;
}

/* Runs `dot -T<fmt> -o dir/name.fmt dir/name.dot`; false if dot is not
 * there or fails. */
static int render(const char *dir, const char *name, const char *fmt) {
    char in[4096], out[4096], type[16];
    snprintf(in, sizeof in, "%s/%s.dot", dir, name);
    snprintf(out, sizeof out, "%s/%s.%s", dir, name, fmt);
    snprintf(type, sizeof type, "-T%s", fmt);
    char *argv[] = {"dot", type, "-o", out, in, NULL};
    pid_t pid;
    int status;
    if (posix_spawnp(&pid, "dot", NULL, NULL, argv, environ) != 0)
        return 0;
    if (waitpid(pid, &status, 0) < 0)
        return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void render_all(const char *dir) {
    static const char *names[] = {"heap-before", "heap-after"};
    static const char *formats[] = {"svg", "png"};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (!render(dir, names[i], formats[j])) {
                printf("\n(Graphviz `dot` not found: render the pictures "
                       "with  dot -Tsvg -O %s/*.dot)\n", dir);
                return;
            }
    printf("\nrendered %s/heap-{before,after}.{svg,png}\n", dir);
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT-DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    if (make_dirs(dir) != 0) {
        fprintf(stderr, "demo: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    rc_set_threshold(0); /* no automatic pass: we collect when we say so */

    /* Four people in two groups, and a few friendships. */
    person *ada = person_new("Ada"), *bob = person_new("Bob"),
           *cyd = person_new("Cyd"), *dee = person_new("Dee");
    group *chess = group_new("chess", 3), *hiking = group_new("hiking", 2);
    join(ada, chess);
    join(bob, chess);
    join(cyd, chess);
    join(cyd, hiking);
    join(dee, hiking);
    RC_SET(ada->friend, bob);
    RC_SET(bob->friend, cyd);
    RC_SET(dee->friend, ada);
    printf("rcgc demo: 4 people in 2 groups, every membership linked both "
           "ways\n\n");

    /* The program lets go of everything. */
    size_t built = rc_live_objects();
    void *mine[] = {ada, bob, cyd, dee, chess, hiking};
    for (size_t i = 0; i < sizeof mine / sizeof *mine; i++)
        rc_release(mine[i]);
    printf("1. every outside reference released: counting alone freed "
           "%zu objects,\n   %zu are still alive, kept only by each other\n",
           built - rc_live_objects(), rc_live_objects());
    print_stats();
    rc_leak_report(stdout);
    if (write_dot(dir, "heap-before") != 0)
        return 1;

    size_t freed = rc_collect();
    printf("\n2. rc_collect() freed %zu objects\n", freed);
    print_stats();
    rc_leak_report(stdout);
    if (write_dot(dir, "heap-after") != 0)
        return 1;

    render_all(dir);
    return rc_live_objects() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
