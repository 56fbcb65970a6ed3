/* cmd_bench.c — `kiln bench`: time repeated runs of an engine.
 *
 * Each timed run is one kiln_context_enqueue followed by a synchronize of
 * the device (a no-op on the CPU), so a latency is the whole run as the
 * caller sees it.  Inputs are uploaded once, before the warm-up; nothing is
 * copied back.  Percentiles use the nearest-rank method on the sorted
 * latencies; throughput is runs divided by the wall time of the timed loop.
 *
 * --graphs records one run as a CUDA graph (kiln_context_capture) and times
 * replays of it.  Capture needs a stream other than the legacy default one;
 * the tool has no CUDA of its own, so it uses the per-thread default stream,
 * whose handle is a fixed value of CUDA's ABI (cudaStreamPerThread, and
 * CU_STREAM_PER_THREAD in the driver API, are both 0x2). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "exec_setup.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p percent of values <= it. */
static double percentile(const double *sorted, int64_t n, double p) {
    int64_t rank = (int64_t)ceil(p / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

#define CUDA_STREAM_PER_THREAD ((void *)(uintptr_t)0x2)

/* One run: an enqueue (or a graph replay) and a wait for it. */
static int run_once(kiln_context *ctx, kiln_device device, bool graphs, const char *path) {
    void *stream = graphs ? CUDA_STREAM_PER_THREAD : NULL;
    if ((graphs ? kiln_context_replay(ctx, stream) : kiln_context_enqueue(ctx, stream)) != KILN_OK)
        return cli_fail_kiln("running '%s'", path);
    if (kiln_device_synchronize(device, stream) != KILN_OK) return cli_fail_kiln("running '%s'", path);
    return CLI_EXIT_OK;
}

int cli_cmd_bench(int argc, char **argv) {
    cli_args a = {argc, argv, 0, "bench"};
    cli_exec_options o = {0};
    int64_t iterations = 100, warmup = 10;
    bool graphs = false;
    int code = CLI_EXIT_OK;
    while (a.i < a.argc && !code) {
        const char *value;
        bool taken;
        int r;
        if (cli_args_flag(&a, "--help") || cli_args_flag(&a, "-h")) {
            cli_print_command_help("bench");
            cli_exec_options_free(&o);
            return CLI_EXIT_OK;
        }
        if (cli_args_flag(&a, "--graphs")) {
            graphs = true;
            continue;
        }
        if ((r = cli_args_value(&a, "--iterations", &value))) {
            if (r < 0) code = CLI_EXIT_USAGE;
            else if (!cli_parse_int(value, 1, 100000000, &iterations))
                code = cli_fail(CLI_EXIT_USAGE, "bench: --iterations '%s': expected an integer from 1 to 100000000",
                                value);
            continue;
        }
        if ((r = cli_args_value(&a, "--warmup", &value))) {
            if (r < 0) code = CLI_EXIT_USAGE;
            else if (!cli_parse_int(value, 0, 100000000, &warmup))
                code = cli_fail(CLI_EXIT_USAGE, "bench: --warmup '%s': expected an integer from 0 to 100000000", value);
            continue;
        }
        if ((code = cli_exec_option(&a, &o, &taken)) || taken) continue;
        code = cli_fail(CLI_EXIT_USAGE, "bench: unknown option '%s' (see 'kiln help bench')", a.argv[a.i]);
    }
    if (!code) code = cli_exec_check(&a, &o);
    if (!code && graphs && o.device.type != KILN_DEVICE_CUDA)
        code = cli_fail(CLI_EXIT_USAGE, "bench: --graphs (CUDA graphs) requires a CUDA device: add --device cuda:N");
    if (code) {
        cli_exec_options_free(&o);
        return code;
    }

    kiln_engine *engine;
    kiln_context *ctx;
    cli_bindings b;
    if ((code = cli_exec_open(&o, &engine, &ctx, &b))) {
        cli_exec_options_free(&o);
        return code;
    }
    double *latency = malloc(sizeof *latency * (size_t)iterations);
    if (!latency) code = cli_fail(CLI_EXIT_FAILURE, "out of memory for %lld latencies", (long long)iterations);
    if (!code && graphs) {
        if (kiln_context_capture(ctx, CUDA_STREAM_PER_THREAD) != KILN_OK)
            code = cli_fail_kiln("capturing '%s' as a CUDA graph", o.engine_path);
        else if (kiln_device_synchronize(b.device, CUDA_STREAM_PER_THREAD) != KILN_OK)
            code = cli_fail_kiln("capturing '%s' as a CUDA graph", o.engine_path);
    }
    for (int64_t i = 0; i < warmup && !code; i++) code = run_once(ctx, b.device, graphs, o.engine_path);
    double start = now_seconds();
    for (int64_t i = 0; i < iterations && !code; i++) {
        double t0 = now_seconds();
        code = run_once(ctx, b.device, graphs, o.engine_path);
        latency[i] = now_seconds() - t0;
    }
    double wall = now_seconds() - start;
    if (!code) {
        double sum = 0;
        for (int64_t i = 0; i < iterations; i++) sum += latency[i];
        qsort(latency, (size_t)iterations, sizeof *latency, compare_doubles);
        char device[32];
        cli_device_text(b.device, device, sizeof device);
        printf("engine      %s\n", o.engine_path);
        printf("device      %s\n", device);
        printf("mode        %s\n", graphs ? "CUDA graph replay" : "enqueue");
        for (int32_t i = 0; i < b.count; i++) {
            if (b.tensors[i].kind != KILN_IO_INPUT) continue;
            char shape[512];
            cli_format_dims(b.tensors[i].rank, b.tensors[i].dims, shape, sizeof shape);
            printf("input       %s %s %s\n", cli_safe(b.tensors[i].name), kiln_dtype_name(b.tensors[i].dtype), shape);
        }
        printf("runs        %lld timed after %lld warm-up\n\n", (long long)iterations, (long long)warmup);
        /* Milliseconds, or microseconds for engines that run in under one. */
        double mean = sum / (double)iterations, scale = mean < 1e-3 ? 1e6 : 1e3;
        const char *unit = mean < 1e-3 ? "us" : "ms";
        char head[6][16];
        const char *names[6] = {"mean", "p50", "p90", "p99", "min", "max"};
        for (int k = 0; k < 6; k++) snprintf(head[k], sizeof head[k], "%s (%s)", names[k], unit);
        printf("%12s %12s %12s %12s %12s %12s %14s\n", head[0], head[1], head[2], head[3], head[4], head[5],
               "runs/s");
        printf("%12.3f %12.3f %12.3f %12.3f %12.3f %12.3f %14.1f\n", mean * scale,
               percentile(latency, iterations, 50) * scale, percentile(latency, iterations, 90) * scale,
               percentile(latency, iterations, 99) * scale, latency[0] * scale, latency[iterations - 1] * scale,
               wall > 0 ? (double)iterations / wall : 0.0);
    }
    free(latency);
    cli_exec_close(engine, ctx, &b);
    cli_exec_options_free(&o);
    return code;
}
