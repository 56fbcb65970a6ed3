/* cmd_run.c — `kiln run`: run an engine once and show (and save) its outputs.
 *
 * Outputs are written as DIR/NAME.npy when --output-dir is given; a name's
 * characters other than letters, digits, '.', '_' and '-' become '_' so a
 * tensor name can never leave the directory.  bfloat16 outputs are written
 * as float32 (numpy has no bfloat16), which holds every value exactly. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exec_setup.h"
#include "float_bits.h"
#include "npy.h"

#define VALUES_SHOWN 6

/* Element i of t's host data as text. */
static void format_value(const cli_tensor *t, size_t i, char *buf, size_t size) {
    const unsigned char *p = t->host;
    switch (t->dtype) {
    case KILN_FLOAT32: {
        float v;
        memcpy(&v, p + i * 4, 4);
        snprintf(buf, size, "%.6g", (double)v);
        break;
    }
    case KILN_FLOAT16:
    case KILN_BFLOAT16: {
        uint16_t h;
        memcpy(&h, p + i * 2, 2);
        snprintf(buf, size, "%.6g", (double)(t->dtype == KILN_FLOAT16 ? cli_f16_to_f32(h) : cli_bf16_to_f32(h)));
        break;
    }
    case KILN_INT8: snprintf(buf, size, "%d", (int)(int8_t)p[i]); break;
    case KILN_UINT8: snprintf(buf, size, "%u", (unsigned)p[i]); break;
    case KILN_INT32: {
        int32_t v;
        memcpy(&v, p + i * 4, 4);
        snprintf(buf, size, "%ld", (long)v);
        break;
    }
    case KILN_INT64: {
        int64_t v;
        memcpy(&v, p + i * 8, 8);
        snprintf(buf, size, "%lld", (long long)v);
        break;
    }
    case KILN_BOOL: snprintf(buf, size, "%s", p[i] ? "true" : "false"); break;
    default: snprintf(buf, size, "?"); break;
    }
}

static void print_values(const cli_tensor *t) {
    size_t shown = t->count < VALUES_SHOWN ? t->count : VALUES_SHOWN;
    printf("[");
    for (size_t i = 0; i < shown; i++) {
        char v[64];
        format_value(t, i, v, sizeof v);
        printf("%s%s", i ? ", " : "", v);
    }
    if (shown < t->count) printf(", ... (%zu values)", t->count);
    printf("]");
}

/* Create dir if it does not exist (one level, like mkdir without -p). */
static int ensure_dir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return CLI_EXIT_OK;
        return cli_fail(CLI_EXIT_FAILURE, "--output-dir '%s' exists and is not a directory", dir);
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return cli_fail(CLI_EXIT_FAILURE, "cannot create output directory '%s': %s", dir, strerror(errno));
    return CLI_EXIT_OK;
}

/* NAME with every character outside [A-Za-z0-9._-] made '_'. */
static void safe_name(const char *name, char *buf, size_t size) {
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < size; p++)
        buf[n++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                    *p == '_' || *p == '-') ? *p : '_';
    buf[n] = '\0';
}

/* DIR/NAME.npy; when an earlier output's name made safe is the same, the
 * output's index is added (DIR/NAME_3.npy) so that no file is overwritten. */
static void output_path(const cli_bindings *b, int32_t index, const char *dir, char *buf, size_t size) {
    char mine[256], other[256];
    safe_name(b->tensors[index].name, mine, sizeof mine);
    bool clash = false;
    for (int32_t j = 0; j < index && !clash; j++) {
        if (b->tensors[j].kind != KILN_IO_OUTPUT) continue;
        safe_name(b->tensors[j].name, other, sizeof other);
        clash = strcmp(mine, other) == 0;
    }
    if (clash) snprintf(buf, size, "%s/%s_%d.npy", dir, mine, (int)index);
    else snprintf(buf, size, "%s/%s.npy", dir, mine);
}

/* Write one output; bfloat16 goes out as float32. */
static int write_output(const cli_tensor *t, const char *path) {
    char err[1024];
    int rc;
    if (t->dtype == KILN_BFLOAT16) {
        float *f = malloc(t->count ? t->count * sizeof *f : 1);
        if (!f) return cli_fail(CLI_EXIT_FAILURE, "out of memory writing '%s'", path);
        const unsigned char *p = t->host;
        for (size_t i = 0; i < t->count; i++) {
            uint16_t h;
            memcpy(&h, p + i * 2, 2);
            f[i] = cli_bf16_to_f32(h);
        }
        rc = npy_write(path, KILN_FLOAT32, t->rank, t->dims, f, t->count * sizeof *f, err, sizeof err);
        free(f);
    } else {
        rc = npy_write(path, t->dtype, t->rank, t->dims, t->host, t->bytes, err, sizeof err);
    }
    return rc ? cli_fail(CLI_EXIT_FAILURE, "output '%s': %s", t->name, err) : CLI_EXIT_OK;
}

int cli_cmd_run(int argc, char **argv) {
    cli_args a = {argc, argv, 0, "run"};
    cli_exec_options o = {0};
    const char *output_dir = NULL;
    int code = CLI_EXIT_OK;
    while (a.i < a.argc && !code) {
        const char *value;
        bool taken;
        int r;
        if (cli_args_flag(&a, "--help") || cli_args_flag(&a, "-h")) {
            cli_print_command_help("run");
            cli_exec_options_free(&o);
            return CLI_EXIT_OK;
        }
        if ((r = cli_args_value(&a, "--output-dir", &value))) {
            if (r < 0) code = CLI_EXIT_USAGE;
            else output_dir = value;
            continue;
        }
        if ((code = cli_exec_option(&a, &o, &taken)) || taken) continue;
        code = cli_fail(CLI_EXIT_USAGE, "run: unknown option '%s' (see 'kiln help run')", a.argv[a.i]);
    }
    if (!code) code = cli_exec_check(&a, &o);
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
    if (output_dir) code = ensure_dir(output_dir);
    if (!code && kiln_context_enqueue(ctx, NULL) != KILN_OK) code = cli_fail_kiln("running '%s'", o.engine_path);
    if (!code && kiln_device_synchronize(b.device, NULL) != KILN_OK) code = cli_fail_kiln("running '%s'", o.engine_path);
    if (!code) code = cli_bindings_fetch_outputs(&b);
    if (!code) {
        char device[32];
        cli_device_text(b.device, device, sizeof device);
        printf("ran %s on %s\n", o.engine_path, device);
        for (int32_t i = 0; i < b.count && !code; i++) {
            const cli_tensor *t = &b.tensors[i];
            char shape[512];
            cli_format_dims(t->rank, t->dims, shape, sizeof shape);
            printf("%-6s %s: %s %s ", t->kind == KILN_IO_INPUT ? "input" : "output", cli_safe(t->name),
                   kiln_dtype_name(t->dtype), shape);
            print_values(t);
            if (t->kind == KILN_IO_INPUT) {
                if (t->source) printf(" from %s", t->source);
                else printf(" (random, seed %llu)", (unsigned long long)o.seed);
            } else if (output_dir) {
                char path[4096];
                output_path(&b, i, output_dir, path, sizeof path);
                code = write_output(t, path);
                if (!code) printf(" -> %s%s", path, t->dtype == KILN_BFLOAT16 ? " (bfloat16 written as float32)" : "");
            }
            printf("\n");
        }
    }
    cli_exec_close(engine, ctx, &b);
    cli_exec_options_free(&o);
    return code;
}
