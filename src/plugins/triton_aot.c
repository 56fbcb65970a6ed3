/* triton_aot.c — kiln::TritonAOT, the built-in plugin that runs kernels
 * compiled ahead of time (Triton cubins, PTX as a fallback) with no Python.
 *
 * The Python layer (python/kiln/aot.py) compiles a plugin's kernels at build
 * time and adds this plugin in its place; everything it needs at run time is
 * in the fields (typed values, docs/plugin-guide.md "Ahead-of-time plugins"):
 *
 *   plugin   {namespace, name, version, module}   the plugin it stands for
 *   inputs   int                                  how many inputs it takes
 *   outputs  [{dtype, shape: [expr...]}, ...]
 *   workspace expr                                 optional: the layer's workspace bytes
 *   kernels  [{name, cubin, ptx, target, num_warps, num_ctas, shared,
 *              global_scratch_size/align, profile_scratch_size/align,
 *              images: [{name, cubin, ptx, target, num_warps, ...}, ...],
 *              grid: [expr, expr, expr],
 *              params: [{kind: input|output, index, align}
 *                      |{kind: workspace, expr (the byte offset), align}
 *                      |{kind: i32|i64, expr, align} | {kind: fp32, expr|value}]}]
 *
 * A kernel's own image keys (name ... profile_scratch_align) are its first
 * compiled image; the optional `images` list holds the same kernel compiled
 * for more GPU architectures (an engine built with aot_target="sm_90,sm_80").
 * Loading tries every image's cubin in order (a cubin loads only on its own
 * architecture family, and images are stored newest first), then every
 * image's PTX, and launches with the parameters of the image that loaded.
 *
 * Every `expr` is an expression of the engine's own pool (a kiln_expr: the
 * network's pool when the layer was added, which the engine stores as is).
 * The plugin keeps no program of its own: the output shapes are those
 * expressions, and at run time the context evaluates them with every other
 * expression of the engine (src/shape/exprs_eval.c) and hands the values to
 * enqueue (kiln_plugin_launch.expr_values).  An index outside the pool is
 * refused by infer_shapes (at build and at load) and again at the first
 * enqueue, which reads the values only through checked indices.
 *
 * Every field is checked at create; a bad one is an error naming the kernel
 * and the parameter or output axis.  Kernels are loaded on the first enqueue (per
 * instance, i.e. per context, so no lock is needed) — that is the warm-up
 * run kiln_context_capture makes before recording, so graphs capture only
 * launches.  Each kernel gets Triton's two hidden trailing parameters
 * (global scratch, profile scratch), allocated when the kernel needs them.
 *
 * An ordinary plugin: it uses only the public plugin ABI (kiln/plugin.h),
 * loads, launches and allocates through the device service enqueue gets,
 * and reports errors with kiln_plugin_set_error. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/plugin.h"
#include "plugins/builtin_plugins.h"

/* Set the message (as any plugin does) and return status. */
static kiln_status fail(kiln_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kiln_status fail(kiln_status status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kiln_plugin_set_error("%s", msg);
    return status;
}

/* "<prefix>: <the message a failed kiln call left>". */
static kiln_status fail_prefix(kiln_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kiln_status fail_prefix(kiln_status status, const char *fmt, ...) {
    char prefix[640], old[1024];
    snprintf(old, sizeof old, "%s", kiln_last_error());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    kiln_plugin_set_error("%s: %s", prefix, old);
    return status;
}

#define AOT_MAX_KERNELS 64
#define AOT_MAX_PARAMS  256
#define AOT_MAX_IMAGES  8

enum { PARAM_INPUT, PARAM_OUTPUT, PARAM_WORKSPACE, PARAM_I32, PARAM_I64, PARAM_FP32 };

typedef struct aot_param {
    int32_t kind;
    int32_t index;      /* PARAM_INPUT/OUTPUT: the tensor */
    int32_t expr;       /* scalars: the expression, or -1 for fp32 constants; workspace: the byte offset */
    int64_t align;      /* pointers: required address alignment; ints: required divisor (1: none) */
    float   fvalue;     /* fp32 constant */
} aot_param;

/* Storage for one argument value; params[] points into these. */
typedef union aot_arg {
    uint64_t ptr;
    int32_t  i32;
    int64_t  i64;
    float    f32;
} aot_arg;

/* One compiled form of a kernel: its code for one GPU architecture and the
 * launch parameters that code needs. */
typedef struct aot_image {
    const char *name;                 /* entry symbol, in the instance's fields */
    const void *cubin;
    size_t      cubin_size;
    const char *ptx;
    size_t      ptx_size;             /* without the NUL */
    char        target[32];           /* "sm_90": what it was compiled for (for messages), or "" */
    uint32_t    block, shared;
    uint64_t    scratch_size[2], scratch_align[2];   /* global, profile */
} aot_image;

typedef struct aot_kernel {
    const char *name;                 /* the first image's entry symbol, for messages */
    aot_image   images[AOT_MAX_IMAGES];
    int32_t     image_count;
    const aot_image *image;           /* the one that loaded; NULL before */
    int32_t     grid[3];
    int32_t     param_count;          /* user parameters (the two scratch ones come after) */
    aot_param  *params;
    aot_arg    *args;                 /* param_count + 2 */
    void      **argv;                 /* param_count + 2 pointers into args */
    kiln_device_kernel *fn;           /* loaded kernel, NULL until the first enqueue */
    void       *scratch[2];
    size_t      scratch_bytes[2];
} aot_kernel;

typedef struct aot_instance {
    kiln_value *fields;               /* our copy: kernel images and names point into it */
    char        label[600];           /* "AOT plugin ns::name version v" for messages */
    int32_t     input_count, output_count;
    kiln_dtype *out_dtypes;
    int32_t    *out_ranks;
    int32_t    (*out_shapes)[KILN_MAX_RANK];
    int32_t     workspace;            /* the workspace size's expression, -1: none */
    int32_t     kernel_count;
    aot_kernel *kernels;
    const kiln_device_service *dev;   /* the context's, kept from the first enqueue (outlives us) */
    int32_t     device;               /* where the kernels are (being) loaded; -1 none */
    int         loaded;               /* every kernel loaded on device */
    int64_t     checked_count;        /* expression count the indices were checked against; 0 none */
} aot_instance;

/* ---- reading fields --------------------------------------------------------- */

static kiln_status bad(const aot_instance *in, const char *fmt, const char *what, long long n) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, what, n);
    return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s", in->label, msg);
}

static const kiln_value *get(const kiln_value *map, const char *key, kiln_value_type type) {
    const kiln_value *v = kiln_value_map_get(map, key);
    return v && kiln_value_get_type(v) == type ? v : NULL;
}

/* An int field in [lo, hi]. */
static kiln_status get_int(const aot_instance *in, const kiln_value *map, const char *key, int64_t lo, int64_t hi,
                           const char *where, int64_t *out) {
    const kiln_value *v = get(map, key, KILN_VALUE_INT64);
    if (!v)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: field '%s' is missing or not an int", in->label,
                          where, key);
    int64_t x = kiln_value_as_int64(v);
    if (x < lo || x > hi)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: field '%s' is %lld, outside [%lld, %lld]", in->label,
                          where, key, (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return KILN_OK;
}

/* An optional int field (default when absent). */
static kiln_status get_int_or(const aot_instance *in, const kiln_value *map, const char *key, int64_t lo,
                              int64_t hi, int64_t dflt, const char *where, int64_t *out) {
    if (!kiln_value_map_get(map, key)) {
        *out = dflt;
        return KILN_OK;
    }
    return get_int(in, map, key, lo, hi, where, out);
}

static int is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

/* An expression index field: an int in [0, INT32_MAX] (checked against the
 * pool by infer_shapes and at the first enqueue). */
static kiln_status get_expr(const aot_instance *in, const kiln_value *x, const char *where, int32_t *out) {
    if (kiln_value_get_type(x) != KILN_VALUE_INT64 || kiln_value_as_int64(x) < 0 ||
        kiln_value_as_int64(x) > INT32_MAX)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s is not an expression index", in->label, where);
    *out = (int32_t)kiln_value_as_int64(x);
    return KILN_OK;
}

static kiln_status read_outputs(aot_instance *in) {
    const kiln_value *list = get(in->fields, "outputs", KILN_VALUE_LIST);
    if (!list || kiln_value_count(list) < 1 || kiln_value_count(list) > 1024)
        return bad(in, "field '%s' is missing or not a list of 1..1024 outputs%lld", "outputs", 0);
    size_t n = kiln_value_count(list);
    in->output_count = (int32_t)n;
    in->out_dtypes = calloc(n, sizeof *in->out_dtypes);
    in->out_ranks = calloc(n, sizeof *in->out_ranks);
    in->out_shapes = calloc(n, sizeof *in->out_shapes);
    if (!in->out_dtypes || !in->out_ranks || !in->out_shapes)
        return fail(KILN_ERROR_NO_MEMORY, "%s: out of memory", in->label);
    for (size_t i = 0; i < n; i++) {
        char where[64];
        snprintf(where, sizeof where, "output %zu", i);
        const kiln_value *o = kiln_value_item(list, i);
        if (kiln_value_get_type(o) != KILN_VALUE_MAP) return bad(in, "%s %lld is not a map", "output", (long long)i);
        int64_t dtype;
        kiln_status s = get_int(in, o, "dtype", 0, KILN_DTYPE_COUNT - 1, where, &dtype);
        if (s) return s;
        in->out_dtypes[i] = (kiln_dtype)dtype;
        const kiln_value *shape = get(o, "shape", KILN_VALUE_LIST);
        if (!shape || kiln_value_count(shape) > KILN_MAX_RANK)
            return bad(in, "%s %lld: 'shape' is missing or has more than 8 axes", "output", (long long)i);
        in->out_ranks[i] = (int32_t)kiln_value_count(shape);
        for (int32_t a = 0; a < in->out_ranks[i]; a++) {
            const kiln_value *x = kiln_value_item(shape, (size_t)a);
            snprintf(where, sizeof where, "output %zu axis %d", i, (int)a);
            if ((s = get_expr(in, x, where, &in->out_shapes[i][a]))) return s;
        }
    }
    return KILN_OK;
}

static kiln_status read_param(aot_instance *in, const kiln_value *p, const char *where, aot_param *out) {
    if (kiln_value_get_type(p) != KILN_VALUE_MAP)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s is not a map", in->label, where);
    const kiln_value *kind = get(p, "kind", KILN_VALUE_STRING);
    const char *k = kind ? kiln_value_as_string(kind, NULL) : "";
    kiln_status s;
    int64_t x;
    out->align = 1;
    out->expr = -1;
    if (!strcmp(k, "input") || !strcmp(k, "output")) {
        int is_in = k[0] == 'i';
        out->kind = is_in ? PARAM_INPUT : PARAM_OUTPUT;
        if ((s = get_int(in, p, "index", 0, (is_in ? in->input_count : in->output_count) - 1, where, &x))) return s;
        out->index = (int32_t)x;
        if ((s = get_int_or(in, p, "align", 1, 4096, 1, where, &out->align))) return s;
        if (!is_pow2((uint64_t)out->align))
            return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: align must be a power of two", in->label, where);
        return KILN_OK;
    }
    if (!strcmp(k, "workspace")) {
        out->kind = PARAM_WORKSPACE;
        if (in->workspace < 0)
            return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s points into the workspace, but the fields give none",
                        in->label, where);
        if ((s = get_int(in, p, "expr", 0, INT32_MAX, where, &x))) return s;
        out->expr = (int32_t)x;
        if ((s = get_int_or(in, p, "align", 1, 4096, 1, where, &out->align))) return s;
        if (!is_pow2((uint64_t)out->align))
            return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: align must be a power of two", in->label, where);
        return KILN_OK;
    }
    if (!strcmp(k, "i32") || !strcmp(k, "i64")) {
        out->kind = k[1] == '3' ? PARAM_I32 : PARAM_I64;
        if ((s = get_int(in, p, "expr", 0, INT32_MAX, where, &x))) return s;
        out->expr = (int32_t)x;
        return get_int_or(in, p, "align", 1, INT32_MAX, 1, where, &out->align);
    }
    if (!strcmp(k, "fp32")) {
        out->kind = PARAM_FP32;
        const kiln_value *v = get(p, "value", KILN_VALUE_FLOAT64);
        if (v) {
            out->fvalue = (float)kiln_value_as_float64(v);
            return KILN_OK;
        }
        if ((s = get_int(in, p, "expr", 0, INT32_MAX, where, &x))) return s;
        out->expr = (int32_t)x;
        return KILN_OK;
    }
    return fail(KILN_ERROR_INVALID_ARGUMENT,
                      "%s: %s: kind '%s' is not input, output, workspace, i32, i64 or fp32", in->label, where, k);
}

/* The image keys of map kv (a kernel, or an entry of its `images`). */
static kiln_status read_image(aot_instance *in, const kiln_value *kv, const char *kernel_where, aot_image *img) {
    char where[340];
    snprintf(where, sizeof where, "%s", kernel_where);
    if (kiln_value_get_type(kv) != KILN_VALUE_MAP)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s is not a map", in->label, where);
    const kiln_value *name = get(kv, "name", KILN_VALUE_STRING);
    size_t len = 0;
    img->name = name ? kiln_value_as_string(name, &len) : NULL;
    if (!img->name || len == 0 || len > 255 || strlen(img->name) != len)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: 'name' (the entry symbol) is missing or invalid",
                          in->label, where);
    const kiln_value *target = get(kv, "target", KILN_VALUE_STRING);
    if (target) {   /* optional and only quoted in messages: keep it printable and short */
        size_t tlen = 0;
        const char *t = kiln_value_as_string(target, &tlen);
        size_t n = 0;
        for (; n < tlen && n + 1 < sizeof img->target && t[n] > ' ' && t[n] < 127; n++) img->target[n] = t[n];
        img->target[n] = 0;
    }
    snprintf(where, sizeof where, "%s '%s'%s%s", kernel_where, img->name, img->target[0] ? " for " : "",
             img->target);
    const kiln_value *cubin = get(kv, "cubin", KILN_VALUE_BYTES);
    const kiln_value *ptx = get(kv, "ptx", KILN_VALUE_STRING);
    if (cubin) img->cubin = kiln_value_as_bytes(cubin, &img->cubin_size);
    if (ptx) img->ptx = kiln_value_as_string(ptx, &img->ptx_size);
    if (!img->cubin_size && !img->ptx_size)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s has neither a cubin nor PTX", in->label, where);
    kiln_status s;
    int64_t x;
    if ((s = get_int(in, kv, "num_warps", 1, 32, where, &x))) return s;
    img->block = (uint32_t)x * 32u;
    if ((s = get_int_or(in, kv, "num_ctas", 1, 1, 1, where, &x))) return s;   /* clusters are not supported */
    if ((s = get_int_or(in, kv, "shared", 0, 1 << 20, 0, where, &x))) return s;
    img->shared = (uint32_t)x;
    static const char *const scratch_keys[2][2] = {{"global_scratch_size", "global_scratch_align"},
                                                   {"profile_scratch_size", "profile_scratch_align"}};
    for (int i = 0; i < 2; i++) {
        if ((s = get_int_or(in, kv, scratch_keys[i][0], 0, INT32_MAX, 0, where, &x))) return s;
        img->scratch_size[i] = (uint64_t)x;
        if ((s = get_int_or(in, kv, scratch_keys[i][1], 1, 256, 1, where, &x))) return s;
        if (!is_pow2((uint64_t)x))
            return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: %s must be a power of two up to 256",
                              in->label, where, scratch_keys[i][1]);
        img->scratch_align[i] = (uint64_t)x;
    }
    return KILN_OK;
}

static kiln_status read_kernel(aot_instance *in, const kiln_value *kv, int32_t index, aot_kernel *k) {
    char where[300];
    snprintf(where, sizeof where, "kernel %d", (int)index);
    kiln_status s = read_image(in, kv, where, &k->images[0]);
    if (s) return s;
    k->name = k->images[0].name;
    k->image_count = 1;
    const kiln_value *images = kiln_value_map_get(kv, "images");
    if (images) {
        if (kiln_value_get_type(images) != KILN_VALUE_LIST || kiln_value_count(images) > AOT_MAX_IMAGES - 1)
            return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s '%s': 'images' must be a list of at most %d "
                              "more compiled images", in->label, where, k->name, AOT_MAX_IMAGES - 1);
        for (size_t i = 0; i < kiln_value_count(images); i++) {
            char w[340];
            snprintf(w, sizeof w, "kernel %d image %d", (int)index, (int)i + 1);
            if ((s = read_image(in, kiln_value_item(images, i), w, &k->images[k->image_count]))) return s;
            k->image_count++;
        }
    }
    snprintf(where, sizeof where, "kernel %d '%s'", (int)index, k->name);
    const kiln_value *grid = get(kv, "grid", KILN_VALUE_LIST);
    if (!grid || kiln_value_count(grid) != 3)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: 'grid' must be a list of 3 expression indices",
                          in->label, where);
    for (int i = 0; i < 3; i++) {
        const kiln_value *g = kiln_value_item(grid, (size_t)i);
        char w[340];
        snprintf(w, sizeof w, "%s grid[%d]", where, i);
        if ((s = get_expr(in, g, w, &k->grid[i]))) return s;
    }
    const kiln_value *params = get(kv, "params", KILN_VALUE_LIST);
    if (!params || kiln_value_count(params) > AOT_MAX_PARAMS)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: 'params' is missing or has more than %d entries",
                          in->label, where, AOT_MAX_PARAMS);
    k->param_count = (int32_t)kiln_value_count(params);
    k->params = calloc((size_t)k->param_count + 1, sizeof *k->params);
    k->args = calloc((size_t)k->param_count + 2, sizeof *k->args);
    k->argv = calloc((size_t)k->param_count + 2, sizeof *k->argv);
    if (!k->params || !k->args || !k->argv) return fail(KILN_ERROR_NO_MEMORY, "%s: out of memory", in->label);
    for (int32_t i = 0; i < k->param_count; i++) {
        char w[340];
        snprintf(w, sizeof w, "%s param %d", where, (int)i);
        if ((s = read_param(in, kiln_value_item(params, (size_t)i), w, &k->params[i]))) return s;
    }
    for (int32_t i = 0; i < k->param_count + 2; i++) k->argv[i] = &k->args[i];
    return KILN_OK;
}

static void aot_destroy(const kiln_plugin_creator *creator, void *instance) {
    aot_instance *in = instance;
    if (!in) return;
    for (int32_t i = 0; in->kernels && i < in->kernel_count; i++) {
        aot_kernel *k = &in->kernels[i];
        if (k->fn && in->dev) in->dev->kernel_unload(in->dev, k->fn);
        for (int j = 0; j < 2; j++)
            if (k->scratch[j] && in->dev) in->dev->free(in->dev, k->scratch[j]);
        free(k->params);
        free(k->args);
        free(k->argv);
    }
    free(in->kernels);
    free(in->out_dtypes);
    free(in->out_ranks);
    free(in->out_shapes);
    kiln_value_free(in->fields);
    free(in);
}

static kiln_status aot_create(const kiln_plugin_creator *creator, const kiln_value *fields, void **out) {
    *out = NULL;
    aot_instance *in = calloc(1, sizeof *in);
    if (!in) return fail(KILN_ERROR_NO_MEMORY, "kiln::TritonAOT: out of memory");
    in->device = -1;
    in->workspace = -1;
    snprintf(in->label, sizeof in->label, "kiln::TritonAOT");
    kiln_status s = KILN_OK;
    if (!(in->fields = kiln_value_copy(fields))) {
        aot_destroy(creator, in);
        return fail(KILN_ERROR_NO_MEMORY, "kiln::TritonAOT: out of memory copying the fields");
    }
    const kiln_value *plugin = get(in->fields, "plugin", KILN_VALUE_MAP);
    const kiln_value *ns = plugin ? get(plugin, "namespace", KILN_VALUE_STRING) : NULL;
    const kiln_value *name = plugin ? get(plugin, "name", KILN_VALUE_STRING) : NULL;
    const kiln_value *version = plugin ? get(plugin, "version", KILN_VALUE_STRING) : NULL;
    if (!ns || !name || !version) {
        s = bad(in, "field '%s' must be a map with the strings namespace, name and version%lld", "plugin", 0);
    } else {
        snprintf(in->label, sizeof in->label, "AOT plugin %.180s::%.180s version %.60s",
                 kiln_value_as_string(ns, NULL), kiln_value_as_string(name, NULL),
                 kiln_value_as_string(version, NULL));
    }
    /* Engines from before the launch values were pool expressions kept their
     * own program here, and their indices meant its nodes: refuse, do not
     * misread them. */
    if (!s && kiln_value_map_get(in->fields, "exprs"))
        s = fail(KILN_ERROR_INVALID_ARGUMENT, "%s: the fields hold an expression program of their own ('exprs'): "
                 "the engine was built by an older kiln; build it again", in->label);
    int64_t x = 0;
    if (!s) s = get_int(in, in->fields, "inputs", 0, 1024, "fields", &x);
    in->input_count = (int32_t)x;
    if (!s) s = read_outputs(in);
    const kiln_value *workspace = s ? NULL : kiln_value_map_get(in->fields, "workspace");
    if (workspace) s = get_expr(in, workspace, "field 'workspace'", &in->workspace);
    const kiln_value *kernels = s ? NULL : get(in->fields, "kernels", KILN_VALUE_LIST);
    if (!s && (!kernels || kiln_value_count(kernels) < 1 || kiln_value_count(kernels) > AOT_MAX_KERNELS))
        s = bad(in, "field '%s' is missing or not a list of 1..%lld kernels", "kernels", AOT_MAX_KERNELS);
    if (!s) {
        in->kernel_count = (int32_t)kiln_value_count(kernels);
        in->kernels = calloc((size_t)in->kernel_count, sizeof *in->kernels);
        if (!in->kernels) s = fail(KILN_ERROR_NO_MEMORY, "%s: out of memory", in->label);
    }
    for (int32_t i = 0; !s && i < in->kernel_count; i++)
        s = read_kernel(in, kiln_value_item(kernels, (size_t)i), i, &in->kernels[i]);
    if (s) {
        aot_destroy(creator, in);
        return s;
    }
    *out = in;
    return KILN_OK;
}

/* ---- build time: dtypes and shapes -------------------------------------------------- */

static kiln_status aot_infer_dtypes(void *instance, int32_t input_count, const kiln_dtype *inputs,
                                    int32_t output_count, kiln_dtype *outputs) {
    aot_instance *in = instance;
    if (input_count != in->input_count || output_count != in->output_count)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s takes %d inputs and %d outputs, the layer has %d and %d",
                          in->label, (int)in->input_count, (int)in->output_count, (int)input_count,
                          (int)output_count);
    memcpy(outputs, in->out_dtypes, sizeof *outputs * (size_t)output_count);
    return KILN_OK;
}

/* Every expression index the fields use must name an expression: of pool
 * (build and load time), or below count (the values enqueue gets). */
static kiln_status check_indices(const aot_instance *in, const kiln_exprs *pool, int64_t count) {
    char where[400];
#define AOT_CHECK(e, ...)                                                                                    \
    do {                                                                                                     \
        if (pool ? !kiln_expr_is_valid(pool, (e)) : (int64_t)(e) >= count) {                                \
            snprintf(where, sizeof where, __VA_ARGS__);                                                      \
            return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: expression %d does not exist in the "    \
                              "engine's expression pool", in->label, where, (int)(e));                      \
        }                                                                                                    \
    } while (0)
    for (int32_t o = 0; o < in->output_count; o++)
        for (int32_t a = 0; a < in->out_ranks[o]; a++)
            AOT_CHECK(in->out_shapes[o][a], "output %d axis %d", (int)o, (int)a);
    if (in->workspace >= 0) AOT_CHECK(in->workspace, "field 'workspace'");
    for (int32_t i = 0; i < in->kernel_count; i++) {
        const aot_kernel *k = &in->kernels[i];
        for (int d = 0; d < 3; d++) AOT_CHECK(k->grid[d], "kernel %d '%s' grid[%d]", (int)i, k->name, d);
        for (int32_t j = 0; j < k->param_count; j++)
            if (k->params[j].expr >= 0)
                AOT_CHECK(k->params[j].expr, "kernel %d '%s' param %d", (int)i, k->name, (int)j);
    }
#undef AOT_CHECK
    return KILN_OK;
}

/* The output shapes are the fields' expressions, held to exist in pool. */
static kiln_status aot_infer_shapes(void *instance, kiln_exprs *pool, int32_t input_count,
                                    const kiln_shape_expr *inputs, int32_t output_count, kiln_shape_expr *outputs) {
    aot_instance *in = instance;
    (void)inputs;
    if (input_count != in->input_count || output_count != in->output_count)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s takes %d inputs and %d outputs, the layer has %d and %d",
                          in->label, (int)in->input_count, (int)in->output_count, (int)input_count,
                          (int)output_count);
    kiln_status s = check_indices(in, pool, 0);
    if (s) return s;
    for (int32_t o = 0; o < output_count; o++) {
        outputs[o].rank = in->out_ranks[o];
        for (int32_t a = 0; a < in->out_ranks[o]; a++) outputs[o].dims[a] = in->out_shapes[o][a];
    }
    return KILN_OK;
}

/* The workspace size is the fields' expression (0 bytes without one). */
static kiln_status aot_workspace_size(void *instance, kiln_exprs *pool, int32_t input_count,
                                      const kiln_shape_expr *inputs, kiln_expr *bytes) {
    aot_instance *in = instance;
    (void)input_count;
    (void)inputs;
    kiln_status s = check_indices(in, pool, 0);
    if (s) return s;
    *bytes = in->workspace >= 0 ? in->workspace : kiln_expr_const(pool, 0);
    return KILN_OK;
}

/* ---- run time ------------------------------------------------------------------------- */

/* Load one kernel: each image's cubin in order, then each image's PTX. */
static kiln_status load_kernel(aot_instance *in, const kiln_device_service *dev, aot_kernel *k) {
    char errors[1024] = "", targets[160] = "";
    size_t used = 0, tused = 0;
    kiln_status s = KILN_ERROR_UNSUPPORTED;
    for (int pass = 0; pass < 2; pass++) {   /* 0: cubins, 1: PTX */
        for (int32_t i = 0; i < k->image_count; i++) {
            const aot_image *img = &k->images[i];
            if (pass == 0 && img->target[0] && tused < sizeof targets)
                tused += (size_t)snprintf(targets + tused, sizeof targets - tused, "%s%s", tused ? ", " : "",
                                          img->target);
            if (pass == 0 ? !img->cubin_size : !img->ptx_size) continue;
            if (pass == 0) {
                s = dev->kernel_load(dev, img->cubin, img->cubin_size, img->name, img->shared, &k->fn);
            } else {
                /* The driver wants PTX NUL-terminated; the value's bytes may not be. */
                char *ptx = malloc(img->ptx_size + 1);
                if (!ptx) return fail(KILN_ERROR_NO_MEMORY, "%s: out of memory", in->label);
                memcpy(ptx, img->ptx, img->ptx_size);
                ptx[img->ptx_size] = 0;
                s = dev->kernel_load(dev, ptx, img->ptx_size + 1, img->name, img->shared, &k->fn);
                free(ptx);
            }
            if (!s) {
                k->image = img;
                return KILN_OK;
            }
            if (used < sizeof errors)
                used += (size_t)snprintf(errors + used, sizeof errors - used, "%s%s%s%s: %s", used ? "; " : "",
                                         pass ? "PTX" : "cubin", img->target[0] ? " for " : "", img->target,
                                         kiln_last_error());
        }
    }
    /* The usual cause: a GPU older (or other) than the ones the engine was built for. */
    char hint[256] = "";
    if (targets[0])
        snprintf(hint, sizeof hint, " (compiled for %s: build the engine for this GPU's architecture, "
                 "aot_target=...)", targets);
    return fail(s ? s : KILN_ERROR_UNSUPPORTED, "%s: kernel '%s'%s: no compiled image loaded (%s)", in->label,
                      k->name, hint, errors);
}

static kiln_status load_kernels(aot_instance *in, const kiln_device_service *dev) {
    in->dev = dev;
    in->device = dev->device.index;
    for (int32_t i = 0; i < in->kernel_count; i++) {
        aot_kernel *k = &in->kernels[i];
        if (k->fn) continue;   /* loaded by an earlier, partly failed call */
        kiln_status s = load_kernel(in, dev, k);
        if (s) return s;
    }
    in->loaded = 1;
    return KILN_OK;
}

/* Grow a kernel's scratch buffer to `need` bytes.  Growing waits for the
 * stream first: the old buffer may still be in use by queued launches. */
static kiln_status ensure_scratch(aot_instance *in, aot_kernel *k, int j, size_t need, void *stream) {
    if (need <= k->scratch_bytes[j]) return KILN_OK;
    kiln_status s;
    if (k->scratch[j]) {
        if ((s = in->dev->synchronize(in->dev, stream))) return s;
        in->dev->free(in->dev, k->scratch[j]);
        k->scratch[j] = NULL;
        k->scratch_bytes[j] = 0;
    }
    if ((s = in->dev->alloc(in->dev, need, &k->scratch[j])))
        return fail_prefix(s, "%s: kernel '%s': %zu bytes of scratch memory", in->label, k->name, need);
    k->scratch_bytes[j] = need;
    return KILN_OK;
}

static kiln_status launch_kernel(aot_instance *in, aot_kernel *k, const kiln_plugin_launch *l) {
    static const int64_t grid_max[3] = {INT32_MAX, 65535, 65535};
    uint32_t grid[3];
    for (int d = 0; d < 3; d++) {
        int64_t g = l->expr_values[k->grid[d]];
        if (g < 0 || g > grid_max[d])
            return fail(KILN_ERROR_SHAPE, "%s: kernel '%s': grid[%d] is %lld (allowed 0..%lld)", in->label,
                              k->name, d, (long long)g, (long long)grid_max[d]);
        grid[d] = (uint32_t)g;
    }
    if (!grid[0] || !grid[1] || !grid[2]) return KILN_OK;   /* no programs, nothing to do (as Triton) */
    for (int32_t i = 0; i < k->param_count; i++) {
        const aot_param *p = &k->params[i];
        aot_arg *arg = &k->args[i];
        if (p->kind == PARAM_INPUT || p->kind == PARAM_OUTPUT) {
            const kiln_tensor_desc *t = p->kind == PARAM_INPUT ? &l->inputs[p->index] : &l->outputs[p->index];
            arg->ptr = (uint64_t)(uintptr_t)t->data;
            if (arg->ptr % (uint64_t)p->align)
                return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: kernel '%s' param %d: %s %d at %p is not "
                                  "%lld-byte aligned, as the kernel was compiled to assume", in->label, k->name,
                                  (int)i, p->kind == PARAM_INPUT ? "input" : "output", (int)p->index, t->data,
                                  (long long)p->align);
        } else if (p->kind == PARAM_WORKSPACE) {
            /* The offset is checked against this run's workspace: the kernel
             * may assume its pointer lies inside it. */
            int64_t offset = l->expr_values[p->expr];
            if (offset < 0 || (uint64_t)offset >= l->workspace_size || !l->workspace)
                return fail(KILN_ERROR_SHAPE, "%s: kernel '%s' param %d: workspace offset %lld is outside the "
                                  "layer's %llu-byte workspace", in->label, k->name, (int)i, (long long)offset,
                                  (unsigned long long)l->workspace_size);
            arg->ptr = (uint64_t)(uintptr_t)l->workspace + (uint64_t)offset;
            if (arg->ptr % (uint64_t)p->align)
                return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: kernel '%s' param %d: workspace offset %lld is not "
                                  "%lld-byte aligned, as the kernel was compiled to assume", in->label, k->name,
                                  (int)i, (long long)offset, (long long)p->align);
        } else if (p->kind == PARAM_FP32) {
            arg->f32 = p->expr >= 0 ? (float)l->expr_values[p->expr] : p->fvalue;
        } else {
            int64_t v = l->expr_values[p->expr];
            if (v % p->align)
                return fail(KILN_ERROR_SHAPE, "%s: kernel '%s' param %d is %lld, not a multiple of %lld as "
                                  "the kernel was compiled to assume", in->label, k->name, (int)i, (long long)v,
                                  (long long)p->align);
            if (p->kind == PARAM_I64) {
                arg->i64 = v;
            } else {
                if (v < INT32_MIN || v > INT32_MAX)
                    return fail(KILN_ERROR_SHAPE, "%s: kernel '%s' param %d is %lld, which does not fit "
                                      "its type i32", in->label, k->name, (int)i, (long long)v);
                arg->i32 = (int32_t)v;
            }
        }
    }
    /* Triton's hidden trailing parameters: global scratch, profile scratch. */
    uint64_t programs = (uint64_t)grid[0] * grid[1] * grid[2];
    for (int j = 0; j < 2; j++) {
        aot_arg *arg = &k->args[k->param_count + j];
        arg->ptr = 0;
        const uint64_t per_program = k->image->scratch_size[j];
        if (!per_program) continue;
        if (programs > SIZE_MAX / per_program)
            return fail(KILN_ERROR_SHAPE, "%s: kernel '%s': scratch size overflows", in->label, k->name);
        kiln_status s = ensure_scratch(in, k, j, (size_t)(programs * per_program), l->stream);
        if (s) return s;
        arg->ptr = (uint64_t)(uintptr_t)k->scratch[j];
    }
    const uint32_t block[3] = {k->image->block, 1, 1};
    kiln_status s = in->dev->kernel_launch(in->dev, k->fn, grid, block, k->image->shared, k->argv, l->stream);
    return s ? fail_prefix(s, "%s: kernel '%s'", in->label, k->name) : KILN_OK;
}

static kiln_status aot_enqueue(void *instance, const kiln_plugin_launch *l) {
    aot_instance *in = instance;
    if (l->device.type != KILN_DEVICE_CUDA)
        return fail(KILN_ERROR_UNSUPPORTED, "%s runs compiled GPU kernels: it needs a CUDA device", in->label);
    if (l->input_count != in->input_count || l->output_count != in->output_count)
        return fail(KILN_ERROR_INVALID_ARGUMENT, "%s takes %d inputs and %d outputs, the layer has %d and %d",
                          in->label, (int)in->input_count, (int)in->output_count, (int)l->input_count,
                          (int)l->output_count);
    kiln_status s;
    if (!in->loaded || in->device != l->device.index) {
        /* An instance belongs to one context, which runs on one device. */
        if (in->device >= 0 && in->device != l->device.index)
            return fail(KILN_ERROR_STATE, "%s: instance loaded on device %d, launched on device %d", in->label,
                              (int)in->device, (int)l->device.index);
        if (!l->device_service || l->device_service->version < 1)
            return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: enqueue was given no device service", in->label);
        if ((s = load_kernels(in, l->device_service))) return s;
    }
    if (in->checked_count != l->expr_count || !l->expr_values) {
        /* Once per instance: the count is the engine's, the same at every run. */
        if (!l->expr_values)
            return fail(KILN_ERROR_INVALID_ARGUMENT, "%s: enqueue was given no expression values", in->label);
        if ((s = check_indices(in, NULL, l->expr_count))) return s;
        in->checked_count = l->expr_count;
    }
    for (int32_t i = 0; i < in->kernel_count; i++)
        if ((s = launch_kernel(in, &in->kernels[i], l))) return s;
    return KILN_OK;
}

/* The fields, described once: kiln inspect shows the views, tests hold
 * python/kiln/aot.py's fields to the schema, and docs/plugin-guide.md points
 * here.  read_* above are what accept them. */
#define IMAGE_FIELDS(p)                                                                                          \
    {p "name", KILN_VALUE_STRING, KILN_FIELD_REQUIRED, "entry symbol of the compiled kernel"},                   \
    {p "cubin", KILN_VALUE_BYTES, 0, "the kernel compiled for target (a cubin may be empty when PTX is given)"},  \
    {p "ptx", KILN_VALUE_STRING, 0, "its PTX, loaded when no cubin loads"},                                      \
    {p "target", KILN_VALUE_STRING, 0, "the GPU architecture it was compiled for (\"sm_90\"), for messages"},    \
    {p "triton_version", KILN_VALUE_STRING, 0, "the Triton that compiled it (informational)"},                   \
    {p "num_warps", KILN_VALUE_INT64, KILN_FIELD_REQUIRED, "warps per program, 1..32 (block = 32 * num_warps)"},  \
    {p "num_ctas", KILN_VALUE_INT64, 0, "must be 1 (clusters are not supported)"},                              \
    {p "shared", KILN_VALUE_INT64, 0, "dynamic shared memory bytes per launch"},                                 \
    {p "global_scratch_size", KILN_VALUE_INT64, 0, "Triton's global scratch bytes per program"},               \
    {p "global_scratch_align", KILN_VALUE_INT64, 0, "its alignment (power of two up to 256)"},                  \
    {p "profile_scratch_size", KILN_VALUE_INT64, 0, "Triton's profile scratch bytes per program"},             \
    {p "profile_scratch_align", KILN_VALUE_INT64, 0, "its alignment (power of two up to 256)"}

static const kiln_plugin_field aot_fields[] = {
    {"plugin", KILN_VALUE_MAP, KILN_FIELD_REQUIRED, "the plugin this layer stands for"},
    {"plugin.namespace", KILN_VALUE_STRING, KILN_FIELD_REQUIRED, "its namespace"},
    {"plugin.name", KILN_VALUE_STRING, KILN_FIELD_REQUIRED, "its name"},
    {"plugin.version", KILN_VALUE_STRING, KILN_FIELD_REQUIRED, "its version"},
    {"plugin.module", KILN_VALUE_STRING, 0, "the Python module that defined it"},
    {"inputs", KILN_VALUE_INT64, KILN_FIELD_REQUIRED, "how many inputs the layer takes"},
    {"outputs", KILN_VALUE_LIST, KILN_FIELD_REQUIRED, "one map per output"},
    {"outputs[].dtype", KILN_VALUE_INT64, KILN_FIELD_REQUIRED, "kiln_dtype"},
    {"outputs[].shape", KILN_VALUE_LIST, KILN_FIELD_REQUIRED | KILN_FIELD_EXPR, "its axes (at most 8)"},
    {"workspace", KILN_VALUE_INT64, KILN_FIELD_EXPR, "the layer's workspace bytes (absent: none)"},
    {"kernels", KILN_VALUE_LIST, KILN_FIELD_REQUIRED, "1..64 kernels, launched in order"},
    IMAGE_FIELDS("kernels[]."),
    {"kernels[].images", KILN_VALUE_LIST, 0, "the same kernel for more architectures (at most 7), newest first"},
    IMAGE_FIELDS("kernels[].images[]."),
    {"kernels[].grid", KILN_VALUE_LIST, KILN_FIELD_REQUIRED | KILN_FIELD_EXPR, "the grid's 3 sizes"},
    {"kernels[].params", KILN_VALUE_LIST, KILN_FIELD_REQUIRED, "the kernel's parameters, in order"},
    {"kernels[].params[].kind", KILN_VALUE_STRING, KILN_FIELD_REQUIRED,
     "input, output, workspace, i32, i64 or fp32"},
    {"kernels[].params[].index", KILN_VALUE_INT64, 0, "input/output: which tensor"},
    {"kernels[].params[].align", KILN_VALUE_INT64, 0,
     "input/output/workspace: the address alignment assumed; i32/i64: the divisor assumed"},
    {"kernels[].params[].expr", KILN_VALUE_INT64, KILN_FIELD_EXPR,
     "i32/i64/fp32: the value's expression; workspace: the byte offset's"},
    {"kernels[].params[].value", KILN_VALUE_FLOAT64, 0, "fp32: a constant instead of expr"},
};
#undef IMAGE_FIELDS

static const kiln_plugin_field_view aot_views[] = {
    {"AOT of", NULL, "{plugin.namespace}::{plugin.name} v{plugin.version}"},
    {"AOT kernels", "kernels", "{name} ({target,images[].target})"},
};

const kiln_plugin_creator kiln_triton_aot_creator = {
    .abi_version      = KILN_PLUGIN_ABI_VERSION,
    .plugin_namespace = "kiln",
    .name             = "TritonAOT",
    .version          = "1",
    .module           = "libkiln (built in)",
    .flags            = KILN_PLUGIN_SUPPORTS_CUDA | KILN_PLUGIN_RUNS_ENGINE_CODE,
    .output_count     = 0,   /* as many as the fields' outputs */
    .field_schema     = aot_fields,
    .field_count      = (int32_t)(sizeof aot_fields / sizeof aot_fields[0]),
    .field_views      = aot_views,
    .field_view_count = (int32_t)(sizeof aot_views / sizeof aot_views[0]),
    .create           = aot_create,
    .destroy          = aot_destroy,
    .infer_dtypes     = aot_infer_dtypes,
    .infer_shapes     = aot_infer_shapes,
    .workspace_size   = aot_workspace_size,
    .enqueue          = aot_enqueue,
};
