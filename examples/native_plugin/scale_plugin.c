/* scale_plugin.c — an example native plugin library for kiln.
 *
 * Two plugins, registered when the library is loaded with
 * kiln_plugin_library_load():
 *   example::ScaleShift v1   y = x * scale + shift              (fields: scale, shift)
 *   example::SplitHalves v1  a, b = x[..., :n/2], x[..., n/2:]  (uses a workspace)
 * Both take float32 on the CPU.  Shapes are given as expressions, so the
 * engine knows them without calling this library again. */
#include <stdlib.h>
#include <string.h>

#include "kiln/plugin.h"

/* ---- example::ScaleShift ------------------------------------------------- */

typedef struct scale_shift {
    float scale, shift;
} scale_shift;

static kiln_status scale_create(const kiln_plugin_creator *c, const kiln_value *fields, void **out) {
    const kiln_value *scale = kiln_value_map_get(fields, "scale");
    const kiln_value *shift = kiln_value_map_get(fields, "shift");
    if (!scale || kiln_value_get_type(scale) != KILN_VALUE_FLOAT64 || !shift ||
        kiln_value_get_type(shift) != KILN_VALUE_FLOAT64) {
        kiln_plugin_set_error("fields 'scale' and 'shift' must be float64 values");
        return KILN_ERROR_INVALID_ARGUMENT;
    }
    scale_shift *s = malloc(sizeof *s);
    if (!s) return KILN_ERROR_NO_MEMORY;
    s->scale = (float)kiln_value_as_float64(scale);
    s->shift = (float)kiln_value_as_float64(shift);
    *out = s;
    return KILN_OK;
}

static void instance_destroy(const kiln_plugin_creator *c, void *instance) { free(instance); }

static kiln_status float32_only(int32_t input_count, const kiln_dtype *inputs, int32_t output_count,
                                kiln_dtype *outputs) {
    if (input_count != 1 || inputs[0] != KILN_FLOAT32) {
        kiln_plugin_set_error("takes exactly one float32 input");
        return KILN_ERROR_INVALID_ARGUMENT;
    }
    for (int32_t i = 0; i < output_count; i++) outputs[i] = KILN_FLOAT32;
    return KILN_OK;
}

static kiln_status scale_dtypes(void *instance, int32_t input_count, const kiln_dtype *inputs, int32_t output_count,
                                kiln_dtype *outputs) {
    return float32_only(input_count, inputs, output_count, outputs);
}

static kiln_status scale_shapes(void *instance, kiln_exprs *pool, int32_t input_count, const kiln_shape_expr *inputs,
                                int32_t output_count, kiln_shape_expr *outputs) {
    outputs[0] = inputs[0];
    return KILN_OK;
}

static kiln_status scale_enqueue(void *instance, const kiln_plugin_launch *launch) {
    const scale_shift *s = instance;
    const kiln_tensor_desc *x = &launch->inputs[0], *y = &launch->outputs[0];
    int64_t n = 1;
    for (int32_t i = 0; i < x->rank; i++) n *= x->dims[i];
    const float *src = x->data;
    float *dst = y->data;
    for (int64_t i = 0; i < n; i++) dst[i] = src[i] * s->scale + s->shift;
    return KILN_OK;
}

static const kiln_plugin_creator scale_shift_creator = {
    .abi_version = KILN_PLUGIN_ABI_VERSION,
    .plugin_namespace = "example", .name = "ScaleShift", .version = "1",
    .module = "libkiln_example_plugin.so",
    .flags = KILN_PLUGIN_SUPPORTS_CPU,
    .output_count = 1,
    .create = scale_create, .destroy = instance_destroy,
    .infer_dtypes = scale_dtypes, .infer_shapes = scale_shapes,
    .enqueue = scale_enqueue,
};

/* ---- example::SplitHalves ------------------------------------------------ */

static kiln_status split_create(const kiln_plugin_creator *c, const kiln_value *fields, void **out) {
    *out = NULL;   /* stateless */
    return KILN_OK;
}

static kiln_status split_dtypes(void *instance, int32_t input_count, const kiln_dtype *inputs, int32_t output_count,
                                kiln_dtype *outputs) {
    return float32_only(input_count, inputs, output_count, outputs);
}

static kiln_status split_shapes(void *instance, kiln_exprs *pool, int32_t input_count, const kiln_shape_expr *inputs,
                                int32_t output_count, kiln_shape_expr *outputs) {
    const kiln_shape_expr *x = &inputs[0];
    if (x->rank < 1) {
        kiln_plugin_set_error("input must have rank >= 1");
        return KILN_ERROR_INVALID_ARGUMENT;
    }
    kiln_expr n = x->dims[x->rank - 1], two = kiln_expr_const(pool, 2);
    outputs[0] = outputs[1] = *x;
    outputs[0].dims[x->rank - 1] = kiln_expr_binary(pool, KILN_EXPR_FLOORDIV, n, two);
    outputs[1].dims[x->rank - 1] = kiln_expr_binary(pool, KILN_EXPR_SUB, n, outputs[0].dims[x->rank - 1]);
    return outputs[1].dims[x->rank - 1] < 0 ? KILN_ERROR_NO_MEMORY : KILN_OK;
}

/* The workspace holds one row: enough to show the ABI, needed by nothing. */
static kiln_status split_workspace(void *instance, kiln_exprs *pool, int32_t input_count,
                                   const kiln_shape_expr *inputs, kiln_expr *bytes) {
    *bytes = kiln_expr_binary(pool, KILN_EXPR_MUL, inputs[0].dims[inputs[0].rank - 1], kiln_expr_const(pool, 4));
    return *bytes < 0 ? KILN_ERROR_NO_MEMORY : KILN_OK;
}

static kiln_status split_enqueue(void *instance, const kiln_plugin_launch *launch) {
    const kiln_tensor_desc *x = &launch->inputs[0];
    int64_t n = x->dims[x->rank - 1], rows = 1, half = n / 2;
    for (int32_t i = 0; i + 1 < x->rank; i++) rows *= x->dims[i];
    if (launch->workspace_size < (uint64_t)n * sizeof(float)) {
        kiln_plugin_set_error("workspace of %llu bytes is too small", (unsigned long long)launch->workspace_size);
        return KILN_ERROR_INVALID_ARGUMENT;
    }
    float *row = launch->workspace;
    const float *src = x->data;
    float *a = launch->outputs[0].data, *b = launch->outputs[1].data;
    for (int64_t r = 0; r < rows; r++) {
        memcpy(row, src + r * n, (size_t)n * sizeof(float));
        memcpy(a + r * half, row, (size_t)half * sizeof(float));
        memcpy(b + r * (n - half), row + half, (size_t)(n - half) * sizeof(float));
    }
    return KILN_OK;
}

static const kiln_plugin_creator split_halves_creator = {
    .abi_version = KILN_PLUGIN_ABI_VERSION,
    .plugin_namespace = "example", .name = "SplitHalves", .version = "1",
    .module = "libkiln_example_plugin.so",
    .flags = KILN_PLUGIN_SUPPORTS_CPU,
    .output_count = 2,
    .create = split_create,
    .infer_dtypes = split_dtypes, .infer_shapes = split_shapes, .workspace_size = split_workspace,
    .enqueue = split_enqueue,
};

KILN_PLUGIN_EXPORT kiln_status kiln_plugin_library_init(void) {
    kiln_status s = kiln_plugin_register(&scale_shift_creator);
    if (s == KILN_OK) s = kiln_plugin_register(&split_halves_creator);
    return s;
}
