/* generate.c — greedy generation from saved kiln Llama engines, in C, with no
 * Python in the process.
 *
 *   kiln_llama_generate MODEL_DIR [--new N] [--device cuda:N] [--eager] TOKEN...
 *
 * MODEL_DIR is what kiln.models.llama's LlamaModel.save wrote for a model
 * built with prefer_aot=True (every plugin compiled into kiln::TritonAOT
 * layers, so the engines need no Python): prefill.engine and decode.engine.
 * Prints the prompt's token ids followed by N generated ones on one line,
 * the same ids LlamaModel.generate(prompt, N) returns; timings go to stderr.
 *
 * What it does, in the order Python's LlamaModel.generate does it:
 *   1. prefill: the prompt through prefill.engine, the greedy choice at the
 *      last position only (logits_positions = [n - 1]; the engine's
 *      next_token output, the argmax of the logits) and each layer's keys and
 *      values (k_0, v_0, ...), copied into the KV cache's first n rows;
 *   2. each further token: one decode.engine step (input_ids = the last
 *      token, lengths = the tokens so far) that writes its key and value rows
 *      into the cache in place and gives the next token.  The step's buffers
 *      never change, so it is captured once into a CUDA graph and replayed
 *      (--eager: run it layer by layer instead).
 * Tokens stay on the device between steps (a step's next_token is copied to
 * the next step's input_ids on the stream), so the host queues the whole
 * generation and waits once, at the end.
 * Everything the program needs to know (layers, cache length, widths,
 * vocabulary, dtype) is read from the engines' input and output shapes.
 * Batch 1: one prompt.
 *
 * Tensor-parallel engines (built with tp_size N, saved per rank by
 * examples/llama/generate_tp.py --save DIR) run one process per rank under
 * mpirun or torchrun: each reads its rank from the launcher's environment,
 * loads DIR/rank<r>, runs on cuda:<local rank>, and joins two communicators
 * (the prefill's and the decode's) whose ids go through files named by
 * $KILN_NCCL_ID_FILE (a fresh path prefix per job: PREFIX.prefill and
 * PREFIX.decode).  Rank 0 prints the tokens.
 *
 *   KILN_NCCL_ID_FILE=/tmp/job42 mpirun -np 2 kiln_llama_generate DIR --new 32 1 450 3681 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/kiln.h"

#define MAX_LAYERS 1024

static const char *prog = "kiln_llama_generate";

#define TRY(call)                                                                                                 \
    do {                                                                                                          \
        kiln_status s_ = (call);                                                                                  \
        if (s_ != KILN_OK) {                                                                                      \
            fprintf(stderr, "%s: %s failed: %s: %s\n", prog, #call, kiln_status_string(s_), kiln_last_error());    \
            goto fail;                                                                                            \
        }                                                                                                         \
    } while (0)

#define FAIL(...)                                                                                                 \
    do {                                                                                                          \
        fprintf(stderr, "%s: ", prog);                                                                            \
        fprintf(stderr, __VA_ARGS__);                                                                             \
        fputc('\n', stderr);                                                                                      \
        goto fail;                                                                                                \
    } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The engine's input or output `name`, with its dtype and constant axes
 * (an axis that is not a constant gives -1). */
static int io_shape(const kiln_engine *e, const char *name, kiln_dtype *dtype, int32_t want_rank, int64_t *dims) {
    int32_t index = kiln_engine_io_index(e, name);
    kiln_io_info info;
    if (index < 0 || kiln_engine_io_info(e, index, &info) != KILN_OK) {
        fprintf(stderr, "%s: the engine has no '%s' (%s): not a kiln Llama engine?\n", prog, name, kiln_last_error());
        return -1;
    }
    if (info.rank != want_rank) {
        fprintf(stderr, "%s: the engine's '%s' has rank %d, expected %d\n", prog, name, info.rank, want_rank);
        return -1;
    }
    *dtype = info.dtype;
    for (int32_t a = 0; a < info.rank; a++)
        if (!kiln_expr_is_const(kiln_engine_exprs(e), info.shape[a], &dims[a])) dims[a] = -1;
    return 0;
}

/* The id of one of the job's communicators ("prefill", "decode"): through
 * the file $KILN_NCCL_ID_FILE.<which> (rank 0 writes it, the others wait). */
static kiln_status job_comm_id(int32_t rank, const char *which, kiln_comm_id *id) {
    const char *prefix = getenv("KILN_NCCL_ID_FILE");
    if (!prefix || !prefix[0]) {
        fprintf(stderr, "%s: tensor-parallel engines: set KILN_NCCL_ID_FILE to a fresh path prefix every rank "
                        "sees (the communicator ids go through PREFIX.prefill and PREFIX.decode)\n", prog);
        return KILN_ERROR_INVALID_ARGUMENT;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s.%s", prefix, which) >= sizeof path) return KILN_ERROR_INVALID_ARGUMENT;
    return kiln_comm_id_from_file(rank, path, id);
}

static int parse_device(const char *s, kiln_device *out) {
    char *end = NULL;
    if (!strcmp(s, "cpu")) {
        *out = (kiln_device){KILN_DEVICE_CPU, 0};
        return 0;
    }
    if (!strcmp(s, "cuda")) {
        *out = (kiln_device){KILN_DEVICE_CUDA, 0};
        return 0;
    }
    if (!strncmp(s, "cuda:", 5)) {
        errno = 0;
        long i = strtol(s + 5, &end, 10);
        if (!errno && end != s + 5 && !*end && i >= 0 && i < 1024) {
            *out = (kiln_device){KILN_DEVICE_CUDA, (int32_t)i};
            return 0;
        }
    }
    return -1;
}

static void usage(void) {
    fprintf(stderr, "usage: %s MODEL_DIR [--new N] [--device cuda:N] [--eager] TOKEN...\n"
                    "  MODEL_DIR  written by kiln.models.llama (LlamaModel.save) for a model built with "
                    "prefer_aot=True\n", prog);
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    long new_tokens = 16;
    int eager = 0, device_given = 0;
    kiln_device device = {KILN_DEVICE_CUDA, 0};
    int64_t *tokens = calloc((size_t)argc + 1, sizeof *tokens);
    int64_t n_prompt = 0;
    if (!tokens) return 1;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--new") && i + 1 < argc) {
            errno = 0;
            new_tokens = strtol(argv[++i], &end, 10);
            if (errno || *end || new_tokens < 1) {
                fprintf(stderr, "%s: --new %s: need a positive number of tokens\n", prog, argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            if (parse_device(argv[++i], &device)) {
                fprintf(stderr, "%s: --device %s: expected cpu, cuda or cuda:N\n", prog, argv[i]);
                return 2;
            }
            device_given = 1;
        } else if (!strcmp(argv[i], "--eager")) {
            eager = 1;
        } else if (!dir) {
            dir = argv[i];
        } else {
            errno = 0;
            long long t = strtoll(argv[i], &end, 10);
            if (errno || *end || end == argv[i] || t < 0 || t > INT32_MAX) {
                fprintf(stderr, "%s: token '%s' is not a token id\n", prog, argv[i]);
                return 2;
            }
            tokens[n_prompt++] = t;
        }
    }
    if (!dir || n_prompt == 0) {
        usage();
        return 2;
    }

    int rc = 1;
    kiln_engine *prefill = NULL, *decode = NULL;
    kiln_context *pctx = NULL, *dctx = NULL;
    void *stream = NULL;
    void *d_ids = NULL, *d_positions = NULL, *d_plogits = NULL, *d_kv = NULL, *d_cache[2] = {NULL, NULL};
    void *d_token = NULL, *d_next = NULL, *d_lengths = NULL, *d_all_lengths = NULL, *d_history = NULL;
    void *d_logits = NULL;
    void *h_zeros = NULL;
    int32_t *h_lengths = NULL, *h_history = NULL;
    int64_t *out_tokens = NULL;
    char path[4096];

    /* Under a launcher (mpirun, torchrun): this rank's directory and GPU. */
    int32_t env_rank = 0, env_world = 1, local_rank = 0;
    char rank_dir[3072];
    if (kiln_comm_env(&env_rank, &env_world, &local_rank) == KILN_OK && env_world > 1) {
        snprintf(rank_dir, sizeof rank_dir, "%s/rank%d", dir, (int)env_rank);
        snprintf(path, sizeof path, "%s/prefill.engine", rank_dir);
        FILE *probe = fopen(path, "rb");
        if (probe) {
            fclose(probe);
            dir = rank_dir;
        }
        if (!device_given) device.index = local_rank;
    }
    snprintf(path, sizeof path, "%s/prefill.engine", dir);
    TRY(kiln_engine_load_file(path, 0, &prefill));
    snprintf(path, sizeof path, "%s/decode.engine", dir);
    TRY(kiln_engine_load_file(path, 0, &decode));
    int32_t rank = 0, world = 1;
    TRY(kiln_engine_parallel(decode, &rank, &world));
    if (world > 1 && (env_world != world || env_rank != rank))
        FAIL("%s holds rank %d of %d, but the launcher made this process rank %d of %d", dir, (int)rank, (int)world,
             (int)env_rank, (int)env_world);

    /* The model's sizes, from the decode engine's cache and logits. */
    kiln_dtype dtype, logits_dtype, next_dtype;
    int64_t next_dims[2];
    int64_t cache_dims[4], logits_dims[3];
    if (io_shape(decode, "k_cache", &dtype, 4, cache_dims) ||
        io_shape(decode, "logits", &logits_dtype, 3, logits_dims) ||
        io_shape(decode, "next_token", &next_dtype, 2, next_dims))
        goto fail;
    if (next_dtype != KILN_INT32) FAIL("next_token has dtype %s, not int32", kiln_dtype_name(next_dtype));
    const int64_t n_layers = cache_dims[1], max_seq = cache_dims[2], kv_width = cache_dims[3];
    const int64_t vocab = logits_dims[2];
    if (n_layers < 1 || n_layers > MAX_LAYERS || max_seq < 1 || kv_width < 1 || vocab < 1)
        FAIL("the decode engine's k_cache [batch, %lld, %lld, %lld] or logits (vocabulary %lld) is not fixed-size",
             (long long)n_layers, (long long)max_seq, (long long)kv_width, (long long)vocab);
    if (n_prompt + new_tokens > max_seq)
        FAIL("%lld prompt tokens + %ld new ones exceed the engines' max_seq_len %lld", (long long)n_prompt,
             new_tokens, (long long)max_seq);
    for (int64_t i = 0; i < n_prompt; i++)
        if (tokens[i] >= vocab) FAIL("token %lld is outside the vocabulary [0, %lld)", (long long)tokens[i],
                                     (long long)vocab);
    const size_t elt = kiln_dtype_size(dtype), logit_elt = kiln_dtype_size(logits_dtype);
    const size_t layer_rows = (size_t)n_prompt * (size_t)kv_width * elt;     /* one layer's prompt keys */
    const size_t cache_bytes = (size_t)n_layers * (size_t)max_seq * (size_t)kv_width * elt;

    kiln_context_options options = {.struct_size = sizeof options, .device = device};
    TRY(kiln_context_create(prefill, &options, &pctx));
    TRY(kiln_context_create(decode, &options, &dctx));
    TRY(kiln_device_stream_create(device, &stream));
    if (world > 1) {
        setenv("NCCL_NVLS_ENABLE", "0", 0);   /* NVLink multicast off unless the launcher says otherwise */
        kiln_comm_id prefill_id, decode_id;
        TRY(job_comm_id(rank, "prefill", &prefill_id));
        TRY(job_comm_id(rank, "decode", &decode_id));
        TRY(kiln_context_set_communicator(pctx, rank, world, &prefill_id));
        TRY(kiln_context_set_communicator(dctx, rank, world, &decode_id));
    }

    /* Buffers: prefill inputs/outputs, the cache, the decode step's. */
    int32_t ids32[4096], last32;
    if (n_prompt > (int64_t)(sizeof ids32 / sizeof ids32[0])) FAIL("at most %zu prompt tokens", sizeof ids32 / 4);
    for (int64_t i = 0; i < n_prompt; i++) ids32[i] = (int32_t)tokens[i];
    TRY(kiln_device_malloc(device, (size_t)n_prompt * 4, &d_ids));
    TRY(kiln_device_malloc(device, 4, &d_positions));
    TRY(kiln_device_malloc(device, (size_t)vocab * logit_elt, &d_plogits));
    TRY(kiln_device_malloc(device, 2 * (size_t)n_layers * layer_rows, &d_kv));
    for (int c = 0; c < 2; c++) TRY(kiln_device_malloc(device, cache_bytes, &d_cache[c]));
    TRY(kiln_device_malloc(device, 4, &d_token));
    TRY(kiln_device_malloc(device, 4, &d_next));
    TRY(kiln_device_malloc(device, 4, &d_lengths));
    TRY(kiln_device_malloc(device, (size_t)new_tokens * 4, &d_all_lengths));
    TRY(kiln_device_malloc(device, (size_t)new_tokens * 4, &d_history));
    TRY(kiln_device_malloc(device, (size_t)vocab * logit_elt, &d_logits));
    h_zeros = calloc(1, cache_bytes);
    h_lengths = calloc((size_t)new_tokens, sizeof *h_lengths);
    h_history = calloc((size_t)new_tokens, sizeof *h_history);
    out_tokens = calloc((size_t)(n_prompt + new_tokens), sizeof *out_tokens);
    if (!h_zeros || !h_lengths || !h_history || !out_tokens) FAIL("out of host memory");
    for (int c = 0; c < 2; c++)
        TRY(kiln_device_memcpy(device, d_cache[c], h_zeros, cache_bytes, KILN_MEMCPY_HOST_TO_DEVICE, NULL));
    /* Step s (1..N-1) sees the prompt and the s-1 tokens before its input. */
    for (long step = 1; step < new_tokens; step++) h_lengths[step] = (int32_t)(n_prompt + step - 1);
    TRY(kiln_device_memcpy(device, d_all_lengths, h_lengths, (size_t)new_tokens * 4, KILN_MEMCPY_HOST_TO_DEVICE,
                           NULL));
    memcpy(out_tokens, tokens, (size_t)n_prompt * sizeof *tokens);

    /* 1. prefill */
    double t0 = now();
    int64_t ids_shape[2] = {1, n_prompt}, one = 1;
    last32 = (int32_t)(n_prompt - 1);
    TRY(kiln_device_memcpy(device, d_ids, ids32, (size_t)n_prompt * 4, KILN_MEMCPY_HOST_TO_DEVICE, stream));
    TRY(kiln_device_memcpy(device, d_positions, &last32, 4, KILN_MEMCPY_HOST_TO_DEVICE, stream));
    TRY(kiln_context_set_input_shape(pctx, "input_ids", 2, ids_shape));
    TRY(kiln_context_set_input_shape(pctx, "logits_positions", 1, &one));
    TRY(kiln_context_set_tensor(pctx, "input_ids", d_ids));
    TRY(kiln_context_set_tensor(pctx, "logits_positions", d_positions));
    TRY(kiln_context_set_tensor(pctx, "logits", d_plogits));
    TRY(kiln_context_set_tensor(pctx, "next_token", d_token));   /* the first new token: step 1's input */
    for (int64_t i = 0; i < n_layers; i++) {
        char name[32];
        snprintf(name, sizeof name, "k_%lld", (long long)i);
        TRY(kiln_context_set_tensor(pctx, name, (char *)d_kv + (size_t)(2 * i) * layer_rows));
        snprintf(name, sizeof name, "v_%lld", (long long)i);
        TRY(kiln_context_set_tensor(pctx, name, (char *)d_kv + (size_t)(2 * i + 1) * layer_rows));
    }
    TRY(kiln_context_enqueue(pctx, stream));
    /* Layer i's prompt rows are cache[0, i, :n]: contiguous in [batch, layers, max_seq, width]. */
    for (int64_t i = 0; i < n_layers; i++)
        for (int c = 0; c < 2; c++)
            TRY(kiln_device_memcpy(device, (char *)d_cache[c] + (size_t)i * (size_t)max_seq * (size_t)kv_width * elt,
                                   (char *)d_kv + (size_t)(2 * i + c) * layer_rows, layer_rows,
                                   KILN_MEMCPY_DEVICE_TO_DEVICE, stream));
    TRY(kiln_device_memcpy(device, d_history, d_token, 4, KILN_MEMCPY_DEVICE_TO_DEVICE, stream));
    TRY(kiln_context_synchronize(pctx, stream));   /* watches the communicator: a dead peer fails, no hang */
    double t_prefill = now() - t0;

    /* 3. decode steps: the same buffers every step (one graph). */
    int64_t step_ids[2] = {1, 1}, cache_shape[4] = {1, n_layers, max_seq, kv_width};
    TRY(kiln_context_set_input_shape(dctx, "input_ids", 2, step_ids));
    TRY(kiln_context_set_input_shape(dctx, "lengths", 1, &one));
    TRY(kiln_context_set_input_shape(dctx, "k_cache", 4, cache_shape));
    TRY(kiln_context_set_input_shape(dctx, "v_cache", 4, cache_shape));
    TRY(kiln_context_set_tensor(dctx, "input_ids", d_token));
    TRY(kiln_context_set_tensor(dctx, "lengths", d_lengths));
    TRY(kiln_context_set_tensor(dctx, "k_cache", d_cache[0]));
    TRY(kiln_context_set_tensor(dctx, "v_cache", d_cache[1]));
    TRY(kiln_context_set_tensor(dctx, "logits", d_logits));
    TRY(kiln_context_set_tensor(dctx, "next_token", d_next));
    double t1 = now();
    for (int64_t step = 1; step < new_tokens; step++) {
        TRY(kiln_device_memcpy(device, d_lengths, (int32_t *)d_all_lengths + step, 4, KILN_MEMCPY_DEVICE_TO_DEVICE,
                               stream));
        if (eager)
            TRY(kiln_context_enqueue(dctx, stream));
        else if (step == 1)
            TRY(kiln_context_capture(dctx, stream));   /* runs the step once, then records it (not run) */
        else
            TRY(kiln_context_replay(dctx, stream));
        TRY(kiln_device_memcpy(device, (int32_t *)d_history + step, d_next, 4, KILN_MEMCPY_DEVICE_TO_DEVICE,
                               stream));
        TRY(kiln_device_memcpy(device, d_token, d_next, 4, KILN_MEMCPY_DEVICE_TO_DEVICE, stream));
    }
    TRY(kiln_device_memcpy(device, h_history, d_history, (size_t)new_tokens * 4, KILN_MEMCPY_DEVICE_TO_HOST, stream));
    TRY(kiln_context_synchronize(dctx, stream));
    double t_decode = now() - t1;
    for (long i = 0; i < new_tokens; i++) out_tokens[n_prompt + i] = h_history[i];

    if (rank == 0) {
        for (int64_t i = 0; i < n_prompt + new_tokens; i++) printf("%s%lld", i ? " " : "", (long long)out_tokens[i]);
        printf("\n");
    }
    fprintf(stderr, "%s: prefill %lld tokens %.2f ms; %ld new tokens, %.1f decode steps/s (%s)\n", prog,
            (long long)n_prompt, 1e3 * t_prefill, new_tokens,
            new_tokens > 1 ? (double)(new_tokens - 1) / t_decode : 0.0, eager ? "eager" : "CUDA graph");
    rc = 0;
fail:
    if (stream) kiln_device_synchronize(device, stream);
    kiln_context_free(dctx);
    kiln_context_free(pctx);
    void *buffers[] = {d_ids,   d_positions, d_plogits,     d_kv,      d_cache[0], d_cache[1],
                       d_token, d_next,      d_lengths,     d_logits,  d_all_lengths, d_history};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) kiln_device_free(device, buffers[i]);
    kiln_device_stream_destroy(device, stream);
    kiln_engine_free(decode);
    kiln_engine_free(prefill);
    free(h_zeros);
    free(h_lengths);
    free(h_history);
    free(out_tokens);
    free(tokens);
    return rc;
}
