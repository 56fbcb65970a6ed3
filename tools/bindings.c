/* bindings.c — see bindings.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bindings.h"
#include "float_bits.h"
#include "npy.h"
#include "random_data.h"

/* The engine dimension an input axis is, or -1 for a constant axis.  Input
 * shapes hold only constants and dimension leaves, and a leaf formats as
 * the dimension's name. */
static int32_t axis_dim(const kiln_engine *e, kiln_expr axis) {
    int64_t value;
    if (kiln_expr_is_const(kiln_engine_exprs(e), axis, &value)) return -1;
    char text[256];
    if (kiln_expr_format(kiln_engine_exprs(e), axis, text, sizeof text) >= sizeof text) return -1;
    for (int32_t d = 0; d < kiln_engine_dim_count(e); d++) {
        const char *name;
        if (kiln_engine_dim_info(e, d, &name, NULL) == KILN_OK && strcmp(name, text) == 0) return d;
    }
    return -1;
}

static const cli_assign *find_assign(const cli_assign_list *list, const char *name) {
    for (int32_t i = 0; list && i < list->count; i++)
        if (strcmp(list->items[i].name, name) == 0) return &list->items[i];
    return NULL;
}

/* Every NAME must be an input, and given once per option: usage errors. */
static int check_names(const kiln_engine *e, const cli_assign_list *list, const char *option) {
    for (int32_t i = 0; list && i < list->count; i++) {
        const char *name = list->items[i].name;
        for (int32_t j = 0; j < i; j++)
            if (strcmp(list->items[j].name, name) == 0)
                return cli_fail(CLI_EXIT_USAGE, "%s: input '%s' is given twice", option, name);
        int32_t io = kiln_engine_io_index(e, name);
        kiln_io_info info;
        if (io < 0 || kiln_engine_io_info(e, io, &info) != KILN_OK) {
            char names[1024] = "";
            size_t used = 0;
            for (int32_t k = 0; k < kiln_engine_io_count(e) && used < sizeof names; k++)
                if (kiln_engine_io_info(e, k, &info) == KILN_OK && info.kind == KILN_IO_INPUT)
                    used += (size_t)snprintf(names + used, sizeof names - used, "%s'%s'", used ? ", " : "", info.name);
            return cli_fail(CLI_EXIT_USAGE, "%s: the engine has no input named '%s' (its inputs: %s)", option, name,
                            names[0] ? names : "none");
        }
        if (info.kind != KILN_IO_INPUT)
            return cli_fail(CLI_EXIT_USAGE, "%s: '%s' is an output of the engine, not an input", option, name);
    }
    return CLI_EXIT_OK;
}

static bool dims_equal(int32_t rank_a, const int64_t *a, int32_t rank_b, const int64_t *b) {
    return rank_a == rank_b && memcmp(a, b, sizeof *a * (size_t)rank_a) == 0;
}

/* Element count and bytes of a shape, or false when they overflow size_t. */
static bool shape_size(kiln_dtype dtype, int32_t rank, const int64_t *dims, size_t *count, size_t *bytes) {
    size_t n = 1;
    for (int32_t a = 0; a < rank; a++)
        if (dims[a] < 0 || __builtin_mul_overflow(n, (size_t)dims[a], &n)) return false;
    *count = n;
    return !__builtin_mul_overflow(n, kiln_dtype_size(dtype), bytes);
}

/* Turn a .npy array into an input's data: the dtype must be the input's,
 * except that a bfloat16 input also takes float32 (rounded to nearest even). */
static int take_npy(cli_tensor *t, npy_array *a) {
    if (a->dtype == t->dtype) {
        t->host = a->data;
        a->data = NULL;
        return CLI_EXIT_OK;
    }
    if (t->dtype == KILN_BFLOAT16 && a->dtype == KILN_FLOAT32) {
        uint16_t *dst = malloc(t->bytes ? t->bytes : 1);
        if (!dst) return cli_fail(CLI_EXIT_FAILURE, "out of memory for input '%s'", t->name);
        const unsigned char *src = a->data;
        for (size_t i = 0; i < t->count; i++) {
            float f;
            memcpy(&f, src + i * 4, 4);
            dst[i] = cli_f32_to_bf16(f);
        }
        t->host = dst;
        return CLI_EXIT_OK;
    }
    return cli_fail(CLI_EXIT_FAILURE, "input '%s' is %s but '%s' holds %s ('%s')%s", t->name,
                    kiln_dtype_name(t->dtype), t->source, kiln_dtype_name(a->dtype), a->descr,
                    t->dtype == KILN_BFLOAT16 ? "; a bfloat16 input takes '<f4' or '<u2' (bfloat16 bits)" : "");
}

/* Shapes of all inputs (steps 1-3 of bindings.h), read files as we go. */
static int decide_inputs(kiln_context *ctx, const cli_data_options *opt, cli_bindings *b, npy_array *files) {
    const kiln_engine *e = kiln_context_engine(ctx);
    int32_t dim_count = kiln_engine_dim_count(e);
    int64_t *dim_values = calloc(dim_count ? (size_t)dim_count : 1, sizeof *dim_values);
    bool *dim_known = calloc(dim_count ? (size_t)dim_count : 1, sizeof *dim_known);
    int code = CLI_EXIT_OK;
    if (!dim_values || !dim_known) {
        code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    /* Pass 1: explicit shapes, and the dimension values they imply. */
    for (int32_t i = 0; i < b->count && !code; i++) {
        cli_tensor *t = &b->tensors[i];
        if (t->kind != KILN_IO_INPUT) continue;
        const cli_assign *file = find_assign(opt->inputs, t->name), *shape = find_assign(opt->shapes, t->name);
        int32_t rank = -1;
        int64_t dims[KILN_MAX_RANK];
        if (file) {
            char err[1024];
            t->source = file->value;
            if (npy_read(file->value, &files[i], err, sizeof err)) {
                code = cli_fail(CLI_EXIT_FAILURE, "--input %s: %s", t->name, err);
                break;
            }
            rank = files[i].rank;
            memcpy(dims, files[i].dims, sizeof dims);
        }
        if (shape) {
            int32_t srank;
            int64_t sdims[KILN_MAX_RANK];
            if (!cli_parse_dims(shape->value, &srank, sdims)) {
                code = cli_fail(CLI_EXIT_USAGE,
                                "--shape %s=%s: expected sizes separated by 'x' (e.g. 2x16), at most %d of them",
                                t->name, shape->value, KILN_MAX_RANK);
                break;
            }
            if (file && !dims_equal(rank, dims, srank, sdims)) {
                char a[256], c[256];
                cli_format_dims(srank, sdims, a, sizeof a);
                cli_format_dims(rank, dims, c, sizeof c);
                code = cli_fail(CLI_EXIT_USAGE, "--shape %s=%s says %s but '%s' has shape %s", t->name, shape->value,
                                a, file->value, c);
                break;
            }
            rank = srank;
            memcpy(dims, sdims, sizeof dims);
        }
        if (rank < 0) continue;
        t->rank = rank;
        memcpy(t->dims, dims, sizeof dims);
        kiln_io_info info;
        if (kiln_engine_io_info(e, kiln_engine_io_index(e, t->name), &info) != KILN_OK || info.rank != rank)
            continue;   /* a wrong rank is reported by kiln_context_set_input_shape below */
        for (int32_t a = 0; a < rank; a++) {
            int32_t d = axis_dim(e, info.shape[a]);
            if (d >= 0 && !dim_known[d]) dim_values[d] = dims[a], dim_known[d] = true;
        }
    }
    /* Pass 2: the other inputs, from constants, known dimensions and profile 0's optimum. */
    for (int32_t i = 0; i < b->count && !code; i++) {
        cli_tensor *t = &b->tensors[i];
        if (t->kind != KILN_IO_INPUT || t->rank >= 0) continue;
        kiln_io_info info;
        if (kiln_engine_io_info(e, kiln_engine_io_index(e, t->name), &info) != KILN_OK) {
            code = cli_fail_kiln("input '%s'", t->name);
            break;
        }
        t->rank = info.rank;
        for (int32_t a = 0; a < info.rank; a++) {
            int64_t value;
            int32_t d;
            if (kiln_expr_is_const(kiln_engine_exprs(e), info.shape[a], &value)) {
                t->dims[a] = value;
            } else if ((d = axis_dim(e, info.shape[a])) >= 0) {
                if (!dim_known[d]) {
                    kiln_dim_range ranges[64];
                    kiln_dim_range *r = kiln_engine_profile_count(e) <= 64
                                            ? ranges : malloc(sizeof *r * (size_t)kiln_engine_profile_count(e));
                    if (!r || kiln_engine_dim_info(e, d, NULL, r) != KILN_OK) {
                        if (r != ranges) free(r);
                        code = cli_fail_kiln("input '%s' axis %d", t->name, a);
                        break;
                    }
                    dim_values[d] = r[0].opt, dim_known[d] = true;
                    if (r != ranges) free(r);
                }
                t->dims[a] = dim_values[d];
            } else {
                code = cli_fail(CLI_EXIT_FAILURE,
                                "input '%s' axis %d is neither a constant nor a named dimension: give --shape %s=...",
                                t->name, a, t->name);
                break;
            }
        }
    }
done:
    free(dim_values);
    free(dim_known);
    return code;
}

int cli_bindings_create(kiln_context *ctx, const cli_data_options *opt, cli_bindings *b) {
    kiln_engine *e = kiln_context_engine(ctx);
    memset(b, 0, sizeof *b);
    b->device = kiln_context_device(ctx);
    int code = check_names(e, opt->inputs, "--input");
    if (!code) code = check_names(e, opt->shapes, "--shape");
    if (code) return code;
    int32_t n = kiln_engine_io_count(e);
    b->tensors = calloc(n ? (size_t)n : 1, sizeof *b->tensors);
    npy_array *files = calloc(n ? (size_t)n : 1, sizeof *files);
    if (!b->tensors || !files) {
        free(files);
        return cli_fail(CLI_EXIT_FAILURE, "out of memory");
    }
    b->count = n;
    for (int32_t i = 0; i < n; i++) {
        kiln_io_info info;
        if (kiln_engine_io_info(e, i, &info) != KILN_OK) {
            code = cli_fail_kiln("engine input/output %d", i);
            goto done;
        }
        b->tensors[i] = (cli_tensor){.name = info.name, .kind = info.kind, .dtype = info.dtype, .rank = -1};
    }
    if ((code = decide_inputs(ctx, opt, b, files))) goto done;
    for (int32_t i = 0; i < n; i++) {
        cli_tensor *t = &b->tensors[i];
        if (t->kind == KILN_IO_INPUT && kiln_context_set_input_shape(ctx, t->name, t->rank, t->dims) != KILN_OK) {
            code = cli_fail(CLI_EXIT_FAILURE, "%s", kiln_last_error());   /* names the input */
            goto done;
        }
    }
    for (int32_t i = 0; i < n; i++) {
        cli_tensor *t = &b->tensors[i];
        if (t->kind == KILN_IO_OUTPUT && kiln_context_tensor_shape(ctx, t->name, &t->rank, t->dims) != KILN_OK) {
            code = cli_fail(CLI_EXIT_FAILURE, "%s", kiln_last_error());   /* names what does not fit */
            goto done;
        }
        if (!shape_size(t->dtype, t->rank, t->dims, &t->count, &t->bytes)) {
            code = cli_fail(CLI_EXIT_FAILURE, "%s '%s' is too large", t->kind == KILN_IO_INPUT ? "input" : "output",
                            t->name);
            goto done;
        }
        if (t->kind == KILN_IO_INPUT && t->source) {
            if ((code = take_npy(t, &files[i]))) goto done;
        } else {
            if (!(t->host = malloc(t->bytes ? t->bytes : 1))) {
                code = cli_fail(CLI_EXIT_FAILURE, "out of memory for %zu bytes of '%s'", t->bytes, t->name);
                goto done;
            }
            if (t->kind == KILN_IO_INPUT) cli_random_fill(t->host, t->dtype, t->count, opt->seed, i);
            else memset(t->host, 0, t->bytes ? t->bytes : 1);
        }
        if (kiln_device_malloc(b->device, t->bytes, &t->device) != KILN_OK) {
            code = cli_fail_kiln("allocating %zu bytes for '%s'", t->bytes, t->name);
            goto done;
        }
        if (t->kind == KILN_IO_INPUT &&
            kiln_device_memcpy(b->device, t->device, t->host, t->bytes, KILN_MEMCPY_HOST_TO_DEVICE, NULL) != KILN_OK) {
            code = cli_fail_kiln("copying input '%s' to the device", t->name);
            goto done;
        }
        if (kiln_context_set_tensor(ctx, t->name, t->device) != KILN_OK) {
            code = cli_fail_kiln("binding '%s'", t->name);
            goto done;
        }
    }
done:
    for (int32_t i = 0; i < n; i++) npy_array_free(&files[i]);
    free(files);
    if (code) cli_bindings_free(b);
    return code;
}

int cli_bindings_fetch_outputs(cli_bindings *b) {
    for (int32_t i = 0; i < b->count; i++) {
        cli_tensor *t = &b->tensors[i];
        if (t->kind == KILN_IO_OUTPUT &&
            kiln_device_memcpy(b->device, t->host, t->device, t->bytes, KILN_MEMCPY_DEVICE_TO_HOST, NULL) != KILN_OK)
            return cli_fail_kiln("copying output '%s' from the device", t->name);
    }
    return CLI_EXIT_OK;
}

void cli_bindings_free(cli_bindings *b) {
    for (int32_t i = 0; i < b->count; i++) {
        free(b->tensors[i].host);
        kiln_device_free(b->device, b->tensors[i].device);
    }
    free(b->tensors);
    memset(b, 0, sizeof *b);
}
