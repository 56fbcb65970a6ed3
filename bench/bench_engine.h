/* bench_engine.h — the C benchmarks' shared set-up: a TRY that exits with
 * kiln's message, and building a network into a CPU context in one call. */
#ifndef KILN_BENCH_ENGINE_H
#define KILN_BENCH_ENGINE_H
#include <stdio.h>
#include <stdlib.h>

#include "kiln/kiln.h"

#define TRY(call) do { kiln_status s_ = (call); if (s_ != KILN_OK) { \
    fprintf(stderr, "%s: %s\n", #call, kiln_last_error()); exit(1); } } while (0)

typedef struct bench_engine {
    kiln_blob    *blob;
    kiln_engine  *engine;
    kiln_context *ctx;      /* on the CPU */
} bench_engine;

/* Build net (then freed), load the engine from memory, create a context. */
static inline bench_engine bench_engine_open(kiln_network *net) {
    bench_engine b;
    TRY(kiln_network_build(net, NULL, &b.blob));
    kiln_network_free(net);
    TRY(kiln_engine_load_memory(kiln_blob_data(b.blob), kiln_blob_size(b.blob), 0, &b.engine));
    TRY(kiln_context_create(b.engine, NULL, &b.ctx));
    return b;
}

static inline void bench_engine_close(bench_engine *b) {
    kiln_context_free(b->ctx);
    kiln_engine_free(b->engine);
    kiln_blob_free(b->blob);
}

#endif
