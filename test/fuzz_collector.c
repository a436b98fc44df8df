/* fuzz_collector.c: libFuzzer target driving the model (model.h) from the
 * fuzzer's bytes: one random program per input, checked against the
 * reachability oracle after every op and every rc_collect(). A mismatch
 * prints the model's description and aborts, so the input is kept as a
 * crash. Immortal objects are left out: they would stay alive for the rest
 * of the process. Byte files written by `random_driver --corpus DIR` are
 * valid inputs (a seed corpus) and replay the same programs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rcgc.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static model_params p;
    static int ready;
    if (!ready) {
        model_params_small(&p);
        p.immortal_every = 0;
        if (getenv("RCGC_FUZZ_TRACE") != NULL)
            p.trace = stderr;
        model_install_crash_reporter();
        ready = 1;
    }
    model_stats st;
    memset(&st, 0, sizeof st);
    if (model_run_bytes(&p, data, size, &st) != 0) {
        fprintf(stderr, "fuzz_collector: %s\n", st.failure);
        abort();
    }
    if (rc_live_objects() != 0) {
        fprintf(stderr, "fuzz_collector: %zu objects left after the input\n",
                rc_live_objects());
        abort();
    }
    return 0;
}
