/* make_exec_corpus.c — seed engines for fuzz_engine_exec, built through the
 * public API so that they follow the format whatever its version:
 *
 *   kiln_make_exec_corpus DIR
 *
 *   mlp.engine      matmul, add (broadcast bias), relu, the native plugins
 *                   ScaleShift and SplitHalves (a workspace), an input copied
 *                   to an output; matmuls with a transposed weight (x @ Wᵀ)
 *                   and a transposed input (xᵀ x, summed over the batch);
 *                   dynamic batch, two profiles
 *   ops.engine      gather (int32 and int64 indices), cast (float32 → float16
 *                   → bfloat16 → float32), reshape with an inferred axis, every
 *                   unary op, every binary op with broadcasting; dims batch and
 *                   seq shared by two inputs
 *   static.engine   no dims, int8/int32/int64 negation and casts
 *   attrs.engine    the ops with attribute lists: transpose, slice with a
 *                   symbolic end and a negative step, concat, expand, every
 *                   reduction, softmax, log-softmax, layer and RMS norm, where,
 *                   a comparison, gather_elements, cumsum, pad, fused
 *                   attention (grouped-query heads, causal)
 *   scatter.engine  scatter_nd (one and two coordinates per index, reductions
 *                   add and none) and scatter_elements (none, max) over a
 *                   dynamic axis, so that the fuzzer's indices land both in
 *                   and out of range
 *   collectives.engine all_reduce, all_gather, reduce_scatter at world size 1
 *   topk.engine     topk, a layer of two outputs: a symbolic k (the row
 *                   count) along the last axis of float16, and the smallest
 *                   entry of int32 columns (k 1, axis 0)
 *   rotary.engine   rotary_embedding: a 3-D float32 x (two heads, partial,
 *                   interleaved) rotated by caches of n rows picked by int64
 *                   position ids (the fuzzer's -1 … 5: in range or not
 *                   depending on n), and a 4-D bfloat16 x with per-token
 *                   caches
 *   conv.engine     conv: a 2-D float32 one with groups, strides, dilation,
 *                   asymmetric pads and a bias over a symbolic height, and a
 *                   1-D bfloat16 depthwise one without bias, and a
 *                   conv_transpose of the first's output (a negative pad)
 *   pool.engine     max_pool (ceil mode, dilated, asymmetric pads, one a
 *                   function of the symbolic height) and avg_pool
 *                   (count_include_pad) of a float32 input, and a 1-D
 *                   float16 max_pool
 *   resize.engine   resize: a linear one with scales of a symbolic height
 *                   (size 2h), a cubic one (exclude_outside, sizes only)
 *                   of a float32 input, and a nearest one of int32 */
#include <stdio.h>

#include "kiln/plugin.h"

kiln_status kiln_plugin_library_init(void);   /* examples/native_plugin/scale_plugin.c */

#define TRY(call) do { if ((call) != KILN_OK) { fprintf(stderr, "%s: %s\n", #call, kiln_last_error()); return 1; } } while (0)

static int save(kiln_network *net, const char *dir, const char *name) {
    kiln_blob *blob = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    kiln_status s = kiln_network_build(net, NULL, &blob);
    if (s == KILN_OK) s = kiln_blob_save(blob, path);
    if (s != KILN_OK) fprintf(stderr, "%s: %s\n", path, kiln_last_error());
    kiln_blob_free(blob);
    kiln_network_free(net);
    return s != KILN_OK;
}

static int mlp(const char *dir) {
    static const float w[12] = {0.5f, -1, 0.25f, 2, -0.5f, 1, 1.5f, -2, 1, 0.75f, -0.25f, 0.125f};
    static const float b[4] = {0.1f, -0.2f, 0.3f, -0.4f};
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range ranges[2] = {{1, 2, 4}, {5, 8, 32}};
    kiln_expr batch;
    TRY(kiln_network_add_dim(net, "batch", ranges, 2, &batch));
    kiln_expr xs[2] = {batch, kiln_expr_const(pool, 3)};
    kiln_tensor x, wt, wtt, bt, mm, sum, act, scaled, halves[2], xwt, gram;
    int64_t wd[2] = {3, 4}, wtd[2] = {4, 3}, bd[1] = {4};
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xs, &x));
    TRY(kiln_network_add_constant(net, "W", KILN_FLOAT32, 2, wd, w, &wt));
    TRY(kiln_network_add_constant(net, "b", KILN_FLOAT32, 1, bd, b, &bt));
    TRY(kiln_network_add_matmul(net, x, wt, &mm));
    TRY(kiln_network_add_binary(net, KILN_BINARY_ADD, mm, bt, &sum));
    TRY(kiln_network_add_unary(net, KILN_UNARY_RELU, sum, &act));
    kiln_value *fields = kiln_value_map();
    kiln_value_map_set(fields, "scale", kiln_value_float64(2.0));
    kiln_value_map_set(fields, "shift", kiln_value_float64(1.0));
    TRY(kiln_network_add_plugin(net, "example", "ScaleShift", "1", NULL, fields, 1, &act, 1, &scaled));
    kiln_value_free(fields);
    kiln_value *none = kiln_value_map();
    TRY(kiln_network_add_plugin(net, "example", "SplitHalves", "1", NULL, none, 1, &scaled, 2, halves));
    kiln_value_free(none);
    TRY(kiln_network_mark_output(net, halves[0], "lo", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, halves[1], "hi", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, x, "x_copy", KILN_FLOAT32));
    TRY(kiln_network_add_constant(net, "Wt", KILN_FLOAT32, 2, wtd, w, &wtt));
    TRY(kiln_network_add_matmul_transposed(net, x, wtt, 0, 1, &xwt));
    TRY(kiln_network_add_matmul_transposed(net, x, x, 1, 0, &gram));
    TRY(kiln_network_mark_output(net, xwt, "xwt", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, gram, "gram", KILN_FLOAT32));
    return save(net, dir, "mlp.engine");
}

static int ops(const char *dir) {
    static float table[10 * 8];
    for (int i = 0; i < 80; i++) table[i] = (float)i / 10.0f - 4;
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range br = {1, 2, 3}, sr = {1, 4, 6};
    kiln_expr batch, seq;
    TRY(kiln_network_add_dim(net, "batch", &br, 1, &batch));
    TRY(kiln_network_add_dim(net, "seq", &sr, 1, &seq));
    kiln_expr ids_shape[2] = {batch, seq}, x_shape[3] = {batch, seq, kiln_expr_const(pool, 8)};
    kiln_tensor ids, ids64, x, emb, e, h, h16, hb, back, flat, shaped, cur, other;
    int64_t td[2] = {10, 8};
    TRY(kiln_network_add_input(net, "ids", KILN_INT32, 2, ids_shape, &ids));
    TRY(kiln_network_add_input(net, "ids64", KILN_INT64, 2, ids_shape, &ids64));
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 3, x_shape, &x));
    TRY(kiln_network_add_constant(net, "table", KILN_FLOAT32, 2, td, table, &emb));
    TRY(kiln_network_add_gather(net, emb, ids, 0, &e));
    TRY(kiln_network_add_gather(net, emb, ids64, 0, &other));
    TRY(kiln_network_add_binary(net, KILN_BINARY_ADD, e, x, &h));
    TRY(kiln_network_add_binary(net, KILN_BINARY_SUB, h, other, &h));
    TRY(kiln_network_add_cast(net, h, KILN_FLOAT16, &h16));
    TRY(kiln_network_add_cast(net, h16, KILN_BFLOAT16, &hb));
    TRY(kiln_network_add_cast(net, hb, KILN_FLOAT32, &back));
    kiln_expr rs[2] = {kiln_expr_const(pool, -1), kiln_expr_const(pool, 4)};
    TRY(kiln_network_add_reshape(net, back, 2, rs, &flat));
    kiln_expr rs2[3] = {batch, seq, kiln_expr_const(pool, 8)};
    TRY(kiln_network_add_reshape(net, flat, 3, rs2, &shaped));
    cur = shaped;
    for (int op = 0; op < KILN_UNARY_OP_COUNT; op++) TRY(kiln_network_add_unary(net, (kiln_unary_op)op, cur, &cur));
    int64_t rowd[1] = {8};
    static const float row[8] = {1, 2, 0.5f, -1, 3, 0.25f, -2, 4};
    kiln_tensor bias;
    TRY(kiln_network_add_constant(net, "row", KILN_FLOAT32, 1, rowd, row, &bias));
    for (int op = 0; op < KILN_BINARY_OP_COUNT; op++)
        TRY(kiln_network_add_binary(net, (kiln_binary_op)op, cur, bias, &cur));
    TRY(kiln_network_mark_output(net, cur, "y", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, h16, "h16", KILN_FLOAT16));
    return save(net, dir, "ops.engine");
}

static int static_ints(const char *dir) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_expr shape[2] = {kiln_expr_const(pool, 3), kiln_expr_const(pool, 5)};
    kiln_tensor a, na, a32, n32, a64, n64;
    TRY(kiln_network_add_input(net, "a", KILN_INT8, 2, shape, &a));
    TRY(kiln_network_add_unary(net, KILN_UNARY_NEG, a, &na));
    TRY(kiln_network_add_cast(net, na, KILN_INT32, &a32));
    TRY(kiln_network_add_unary(net, KILN_UNARY_NEG, a32, &n32));
    TRY(kiln_network_add_cast(net, n32, KILN_INT64, &a64));
    TRY(kiln_network_add_unary(net, KILN_UNARY_NEG, a64, &n64));
    TRY(kiln_network_mark_output(net, n64, "n64", KILN_INT64));
    TRY(kiln_network_mark_output(net, na, "n8", KILN_INT8));
    return save(net, dir, "static.engine");
}

static kiln_status layer(kiln_network *net, kiln_layer_op op, int32_t n, const kiln_tensor *in, int32_t na,
                         const kiln_layer_attr *attrs, kiln_tensor *out) {
    return kiln_network_add_layer(net, op, n, in, na, attrs, out);
}

static int attrs(const char *dir) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 3, 6};
    kiln_expr n;
    TRY(kiln_network_add_dim(net, "n", &range, 1, &n));
    kiln_expr four = kiln_expr_const(p, 4);
    kiln_tensor x, w, cond, t, s, c, e, r, y;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, (kiln_expr[]){n, four}, &x));
    TRY(kiln_network_add_input(net, "cond", KILN_BOOL, 2, (kiln_expr[]){n, four}, &cond));
    static const float ones[4] = {1, 0.5f, 2, -1};
    TRY(kiln_network_add_constant(net, "w", KILN_FLOAT32, 1, (int64_t[]){4}, ones, &w));
    int64_t perm[2] = {1, 0};
    TRY(layer(net, KILN_LAYER_TRANSPOSE, 1, &x, 1,
              &(kiln_layer_attr){.name = "perm", .kind = KILN_ATTR_INTS, .count = 2, .ints = perm}, &t));
    kiln_expr starts[2] = {kiln_expr_const(p, -1), kiln_expr_const(p, 0)};
    kiln_expr ends[2] = {kiln_expr_const(p, -100), kiln_expr_binary(p, KILN_EXPR_SUB, n, kiln_expr_const(p, 1))};
    int64_t steps[2] = {-1, 1};
    kiln_layer_attr sa[3] = {{.name = "starts", .kind = KILN_ATTR_EXPRS, .count = 2, .exprs = starts},
                             {.name = "ends", .kind = KILN_ATTR_EXPRS, .count = 2, .exprs = ends},
                             {.name = "steps", .kind = KILN_ATTR_INTS, .count = 2, .ints = steps}};
    TRY(layer(net, KILN_LAYER_SLICE, 1, &t, 3, sa, &s));
    TRY(layer(net, KILN_LAYER_CONCAT, 2, (kiln_tensor[]){t, s}, 1,
              &(kiln_layer_attr){.name = "axis", .kind = KILN_ATTR_INT, .i = 1}, &c));
    kiln_expr shape[3] = {kiln_expr_const(p, 2), kiln_expr_const(p, 1), kiln_expr_const(p, 1)};
    TRY(layer(net, KILN_LAYER_EXPAND, 1, &c, 1,
              &(kiln_layer_attr){.name = "shape", .kind = KILN_ATTR_EXPRS, .count = 3, .exprs = shape}, &e));
    for (int op = KILN_LAYER_REDUCE_SUM; op <= KILN_LAYER_ARGMIN; op++) {
        int64_t axes[1] = {-1};
        kiln_layer_attr ra = op >= KILN_LAYER_ARGMAX
                                 ? (kiln_layer_attr){.name = "axis", .kind = KILN_ATTR_INT, .i = 1}
                                 : (kiln_layer_attr){.name = "axes", .kind = KILN_ATTR_INTS, .count = 1, .ints = axes};
        TRY(layer(net, (kiln_layer_op)op, 1, &e, 1, &ra, &r));
        char name[32];
        snprintf(name, sizeof name, "r%d", op);
        TRY(kiln_network_mark_output(net, r, name, op >= KILN_LAYER_ARGMAX ? KILN_INT64 : KILN_FLOAT32));
    }
    TRY(layer(net, KILN_LAYER_SOFTMAX, 1, &x, 0, NULL, &y));
    TRY(layer(net, KILN_LAYER_LOG_SOFTMAX, 1, &y, 1,
              &(kiln_layer_attr){.name = "axis", .kind = KILN_ATTR_INT, .i = 0}, &y));
    TRY(layer(net, KILN_LAYER_RMS_NORM, 2, (kiln_tensor[]){y, w}, 0, NULL, &y));
    TRY(layer(net, KILN_LAYER_LAYER_NORM, 3, (kiln_tensor[]){y, w, w}, 1,
              &(kiln_layer_attr){.name = "epsilon", .kind = KILN_ATTR_FLOAT, .f = 1e-3}, &y));
    TRY(layer(net, KILN_LAYER_WHERE, 3, (kiln_tensor[]){cond, y, x}, 0, NULL, &y));
    TRY(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    kiln_tensor less, idx, ge, cs, padded;
    TRY(layer(net, KILN_LAYER_LESS, 2, (kiln_tensor[]){x, y}, 0, NULL, &less));
    TRY(kiln_network_mark_output(net, less, "less", KILN_BOOL));
    TRY(kiln_network_add_input(net, "idx", KILN_INT64, 2, (kiln_expr[]){n, four}, &idx));
    TRY(layer(net, KILN_LAYER_GATHER_ELEMENTS, 2, (kiln_tensor[]){x, idx}, 1,
              &(kiln_layer_attr){.name = "axis", .kind = KILN_ATTR_INT, .i = 1}, &ge));
    TRY(kiln_network_mark_output(net, ge, "ge", KILN_FLOAT32));
    TRY(layer(net, KILN_LAYER_CUMSUM, 1, &x, 1,
              &(kiln_layer_attr){.name = "reverse", .kind = KILN_ATTR_INT, .i = 1}, &cs));
    TRY(kiln_network_mark_output(net, cs, "cs", KILN_FLOAT32));
    kiln_expr pads[4] = {kiln_expr_const(p, 1), kiln_expr_const(p, 0), n, kiln_expr_const(p, 2)};
    TRY(layer(net, KILN_LAYER_PAD, 1, &x, 1,
              &(kiln_layer_attr){.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 4, .exprs = pads}, &padded));
    TRY(kiln_network_mark_output(net, padded, "padded", KILN_FLOAT32));
    /* attention: q [1, 4, n, 4], k = v [1, 2, n, 4] (grouped-query heads) */
    kiln_tensor q4, kv4, att;
    kiln_expr qd[4] = {kiln_expr_const(p, 1), four, n, four}, kd[4] = {kiln_expr_const(p, 1), kiln_expr_const(p, 2), n, four};
    TRY(kiln_network_add_input(net, "q4", KILN_FLOAT32, 4, qd, &q4));
    TRY(kiln_network_add_input(net, "kv4", KILN_FLOAT32, 4, kd, &kv4));
    TRY(layer(net, KILN_LAYER_ATTENTION, 3, (kiln_tensor[]){q4, kv4, kv4}, 1,
              &(kiln_layer_attr){.name = "causal", .kind = KILN_ATTR_INT, .i = 1}, &att));
    TRY(kiln_network_mark_output(net, att, "att", KILN_FLOAT32));
    return save(net, dir, "attrs.engine");
}

/* Collectives at world size 1 (copies on the CPU), the axis symbolic: a
 * mutated world size must be refused at load or at context creation. */
static int collectives(const char *dir) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 3, 8};
    kiln_expr n;
    TRY(kiln_network_add_dim(net, "n", &range, 1, &n));
    kiln_expr xs[2] = {n, kiln_expr_const(p, 6)};
    kiln_tensor x, a, g, r;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xs, &x));
    TRY(layer(net, KILN_LAYER_ALL_REDUCE_MAX, 1, &x, 0, NULL, &a));
    TRY(layer(net, KILN_LAYER_ALL_GATHER, 1, &a, 1, &(kiln_layer_attr){.name = "axis", .kind = KILN_ATTR_INT, .i = 1},
              &g));
    TRY(layer(net, KILN_LAYER_REDUCE_SCATTER, 1, &g, 0, NULL, &r));
    TRY(kiln_network_mark_output(net, r, "r", KILN_FLOAT32));
    return save(net, dir, "collectives.engine");
}

/* Scatters whose indices come from the run's inputs: the fuzzer's values
 * (-1 … 5) are in range or not depending on the chosen n, and a mutated
 * engine may change every shape; no write may leave the output. */
static int scatter(const char *dir) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 4, 8};
    kiln_expr n;
    TRY(kiln_network_add_dim(net, "n", &range, 1, &n));
    kiln_expr one = kiln_expr_const(p, 1), two = kiln_expr_const(p, 2), four = kiln_expr_const(p, 4),
              six = kiln_expr_const(p, 6);
    kiln_tensor x, h, sidx, supd, pidx, pupd, eidx, eupd, nd, nd2, el, el2;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, (kiln_expr[]){n, six}, &x));
    TRY(kiln_network_add_input(net, "h", KILN_FLOAT16, 2, (kiln_expr[]){n, six}, &h));
    TRY(kiln_network_add_input(net, "sidx", KILN_INT64, 2, (kiln_expr[]){n, one}, &sidx));
    TRY(kiln_network_add_input(net, "supd", KILN_FLOAT32, 2, (kiln_expr[]){n, six}, &supd));
    TRY(kiln_network_add_input(net, "pidx", KILN_INT32, 2, (kiln_expr[]){four, two}, &pidx));
    TRY(kiln_network_add_input(net, "pupd", KILN_FLOAT16, 1, (kiln_expr[]){four}, &pupd));
    TRY(kiln_network_add_input(net, "eidx", KILN_INT32, 2, (kiln_expr[]){n, four}, &eidx));
    TRY(kiln_network_add_input(net, "eupd", KILN_FLOAT32, 2, (kiln_expr[]){n, four}, &eupd));
    kiln_layer_attr add = {.name = "reduction", .kind = KILN_ATTR_INT, .i = KILN_SCATTER_ADD};
    TRY(layer(net, KILN_LAYER_SCATTER_ND, 3, (kiln_tensor[]){x, sidx, supd}, 1, &add, &nd));
    TRY(layer(net, KILN_LAYER_SCATTER_ND, 3, (kiln_tensor[]){h, pidx, pupd}, 0, NULL, &nd2));
    kiln_layer_attr axis1 = {.name = "axis", .kind = KILN_ATTR_INT, .i = 1};
    TRY(layer(net, KILN_LAYER_SCATTER_ELEMENTS, 3, (kiln_tensor[]){nd, eidx, eupd}, 1, &axis1, &el));
    kiln_layer_attr max0[2] = {{.name = "axis", .kind = KILN_ATTR_INT, .i = 0},
                               {.name = "reduction", .kind = KILN_ATTR_INT, .i = KILN_SCATTER_MAX}};
    TRY(layer(net, KILN_LAYER_SCATTER_ELEMENTS, 3, (kiln_tensor[]){x, eidx, eupd}, 2, max0, &el2));
    TRY(kiln_network_mark_output(net, nd2, "nd2", KILN_FLOAT16));
    TRY(kiln_network_mark_output(net, el, "el", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, el2, "el2", KILN_FLOAT32));
    return save(net, dir, "scatter.engine");
}

/* TOPK: two outputs per layer; a mutated k, axis or output count must be
 * refused at load, a k past the axis by the engine's checks at run time. */
static int topk(const char *dir) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 3, 6};
    kiln_expr n;
    TRY(kiln_network_add_dim(net, "n", &range, 1, &n));
    kiln_tensor x, xi, outs[2], v, i;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT16, 2, (kiln_expr[]){n, kiln_expr_const(p, 6)}, &x));
    TRY(kiln_network_add_input(net, "xi", KILN_INT32, 2, (kiln_expr[]){n, kiln_expr_const(p, 5)}, &xi));
    TRY(kiln_network_add_layer_outputs(net, KILN_LAYER_TOPK, 1, &x, 1,
                                       &(kiln_layer_attr){.name = "k", .kind = KILN_ATTR_EXPRS, .count = 1,
                                                          .exprs = &n}, 2, outs));
    TRY(kiln_network_mark_output(net, outs[0], "values", KILN_FLOAT16));
    TRY(kiln_network_mark_output(net, outs[1], "indices", KILN_INT64));
    TRY(kiln_network_add_topk(net, xi, kiln_expr_const(p, 1), 0, 0, 1, &v, &i));
    TRY(kiln_network_mark_output(net, v, "min_values", KILN_INT32));
    TRY(kiln_network_mark_output(net, i, "min_indices", KILN_INT64));
    return save(net, dir, "topk.engine");
}

/* ROTARY_EMBEDDING: position ids from the run's inputs index caches of a
 * dynamic row count; a mutated attribute or shape must be refused at load,
 * an id out of range fail the run, and no read leave the caches. */
static int rotary(const char *dir) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 3, 6};
    kiln_expr b, s, n;
    TRY(kiln_network_add_dim(net, "b", &range, 1, &b));
    TRY(kiln_network_add_dim(net, "s", &range, 1, &s));
    TRY(kiln_network_add_dim(net, "n", &range, 1, &n));
    kiln_expr two = kiln_expr_const(p, 2), four = kiln_expr_const(p, 4), sixteen = kiln_expr_const(p, 16);
    kiln_tensor x, c, sn, ids, xh, ct, st, y, yh;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 3, (kiln_expr[]){b, s, sixteen}, &x));
    TRY(kiln_network_add_input(net, "cos", KILN_FLOAT32, 2, (kiln_expr[]){n, two}, &c));
    TRY(kiln_network_add_input(net, "sin", KILN_FLOAT32, 2, (kiln_expr[]){n, two}, &sn));
    TRY(kiln_network_add_input(net, "ids", KILN_INT64, 2, (kiln_expr[]){b, s}, &ids));
    TRY(kiln_network_add_input(net, "xh", KILN_BFLOAT16, 4, (kiln_expr[]){b, two, s, four}, &xh));
    TRY(kiln_network_add_input(net, "ct", KILN_BFLOAT16, 3, (kiln_expr[]){b, s, two}, &ct));
    TRY(kiln_network_add_input(net, "st", KILN_BFLOAT16, 3, (kiln_expr[]){b, s, two}, &st));
    kiln_layer_attr a[3] = {{.name = "interleaved", .kind = KILN_ATTR_INT, .i = 1},
                            {.name = "rotary_embedding_dim", .kind = KILN_ATTR_INT, .i = 4},
                            {.name = "num_heads", .kind = KILN_ATTR_INT, .i = 2}};
    TRY(layer(net, KILN_LAYER_ROTARY_EMBEDDING, 4, (kiln_tensor[]){x, c, sn, ids}, 3, a, &y));
    TRY(layer(net, KILN_LAYER_ROTARY_EMBEDDING, 3, (kiln_tensor[]){xh, ct, st}, 0, NULL, &yh));
    TRY(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, yh, "yh", KILN_BFLOAT16));
    return save(net, dir, "rotary.engine");
}

/* CONV: a mutated stride, dilation, pad, group or weight shape must be
 * refused at load or by the checks, never read past the input. */
static int conv(const char *dir) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {3, 5, 9};
    kiln_expr h;
    TRY(kiln_network_add_dim(net, "h", &range, 1, &h));
#define C(v) kiln_expr_const(p, v)
    kiln_tensor x, w, b, x1, w1, y, y1;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 4, (kiln_expr[]){C(1), C(4), h, C(6)}, &x));
    TRY(kiln_network_add_input(net, "w", KILN_FLOAT32, 4, (kiln_expr[]){C(6), C(2), C(2), C(3)}, &w));
    TRY(kiln_network_add_input(net, "b", KILN_FLOAT32, 1, (kiln_expr[]){C(6)}, &b));
    TRY(kiln_network_add_input(net, "x1", KILN_BFLOAT16, 3, (kiln_expr[]){C(2), C(3), h}, &x1));
    TRY(kiln_network_add_input(net, "w1", KILN_BFLOAT16, 3, (kiln_expr[]){C(3), C(1), C(3)}, &w1));
    const int64_t s2[2] = {2, 1}, d2[2] = {1, 2}, one[1] = {1};
    kiln_expr pads[4] = {C(1), C(0), C(0), C(2)}, pads1[2] = {C(1), C(1)};
    kiln_layer_attr a[4] = {{.name = "group", .kind = KILN_ATTR_INT, .i = 2},
                            {.name = "strides", .kind = KILN_ATTR_INTS, .count = 2, .ints = s2},
                            {.name = "dilations", .kind = KILN_ATTR_INTS, .count = 2, .ints = d2},
                            {.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 4, .exprs = pads}};
    TRY(layer(net, KILN_LAYER_CONV, 3, (kiln_tensor[]){x, w, b}, 4, a, &y));
    kiln_layer_attr a1[4] = {{.name = "group", .kind = KILN_ATTR_INT, .i = 3},
                             {.name = "strides", .kind = KILN_ATTR_INTS, .count = 1, .ints = one},
                             {.name = "dilations", .kind = KILN_ATTR_INTS, .count = 1, .ints = one},
                             {.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 2, .exprs = pads1}};
    TRY(layer(net, KILN_LAYER_CONV, 2, (kiln_tensor[]){x1, w1}, 4, a1, &y1));
    /* Transposed, back up from y: w [6, 2, 3, 2] (group 2: 4 outputs), a negative end pad. */
    kiln_tensor wt, yt;
    TRY(kiln_network_add_input(net, "wt", KILN_FLOAT32, 4, (kiln_expr[]){C(6), C(2), C(3), C(2)}, &wt));
    kiln_expr padst[4] = {C(1), C(0), C(-1), C(1)};
    kiln_layer_attr at[4] = {a[0], a[1], a[2], {.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 4, .exprs = padst}};
    TRY(layer(net, KILN_LAYER_CONV_TRANSPOSE, 2, (kiln_tensor[]){y, wt}, 4, at, &yt));
#undef C
    TRY(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, y1, "y1", KILN_BFLOAT16));
    TRY(kiln_network_mark_output(net, yt, "yt", KILN_FLOAT32));
    return save(net, dir, "conv.engine");
}

/* POOL: a mutated kernel, stride, dilation, pad or mode must be refused at
 * load or by the checks, never read past the input. */
static int pool(const char *dir) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {3, 5, 9};
    kiln_expr h;
    TRY(kiln_network_add_dim(net, "h", &range, 1, &h));
#define C(v) kiln_expr_const(p, v)
    kiln_tensor x, x1, y, ya, y1;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 4, (kiln_expr[]){C(1), C(3), h, C(7)}, &x));
    TRY(kiln_network_add_input(net, "x1", KILN_FLOAT16, 3, (kiln_expr[]){C(2), C(2), C(9)}, &x1));
    kiln_expr pads[4] = {kiln_expr_binary(p, KILN_EXPR_FLOORDIV, h, C(4)), C(0), C(1), C(2)};
    kiln_layer_attr a[6] = {{.name = "kernel_shape", .kind = KILN_ATTR_INTS, .count = 2, .ints = (int64_t[]){3, 2}},
                            {.name = "strides", .kind = KILN_ATTR_INTS, .count = 2, .ints = (int64_t[]){2, 2}},
                            {.name = "dilations", .kind = KILN_ATTR_INTS, .count = 2, .ints = (int64_t[]){1, 2}},
                            {.name = "ceil_mode", .kind = KILN_ATTR_INT, .i = 1},
                            {.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 4, .exprs = pads},
                            {.name = "count_include_pad", .kind = KILN_ATTR_INT, .i = 1}};
    TRY(layer(net, KILN_LAYER_MAX_POOL, 1, &x, 5, a, &y));
    TRY(layer(net, KILN_LAYER_AVG_POOL, 1, &x, 6, a, &ya));
    kiln_layer_attr a1[3] = {{.name = "kernel_shape", .kind = KILN_ATTR_INTS, .count = 1, .ints = (int64_t[]){4}},
                             {.name = "strides", .kind = KILN_ATTR_INTS, .count = 1, .ints = (int64_t[]){3}},
                             {.name = "dilations", .kind = KILN_ATTR_INTS, .count = 1, .ints = (int64_t[]){1}}};
    TRY(layer(net, KILN_LAYER_MAX_POOL, 1, &x1, 3, a1, &y1));
#undef C
    TRY(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, ya, "ya", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, y1, "y1", KILN_FLOAT16));
    return save(net, dir, "pool.engine");
}

/* RESIZE: a mutated mode, coordinate transformation, scale (NaN, huge)
 * or size must be refused at load or by the checks, never read past the
 * input. */
static int resize(const char *dir) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {2, 5, 9};
    kiln_expr h;
    TRY(kiln_network_add_dim(net, "h", &range, 1, &h));
#define C(v) kiln_expr_const(p, v)
    kiln_tensor x, xi, y, yc, yi;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 4, (kiln_expr[]){C(1), C(2), h, C(6)}, &x));
    TRY(kiln_network_add_input(net, "xi", KILN_INT32, 2, (kiln_expr[]){C(3), C(4)}, &xi));
    kiln_expr sizes[4] = {C(1), C(2), kiln_expr_binary(p, KILN_EXPR_MUL, h, C(2)), C(3)};
    kiln_layer_attr a[4] = {{.name = "sizes", .kind = KILN_ATTR_EXPRS, .count = 4, .exprs = sizes},
                            {.name = "mode", .kind = KILN_ATTR_INT, .i = 1},
                            {.name = "coordinate_transformation_mode", .kind = KILN_ATTR_INT, .i = 2},
                            {.name = "scales", .kind = KILN_ATTR_FLOATS, .count = 4,
                             .floats = (double[]){1, 1, 2, 0.5}}};
    TRY(layer(net, KILN_LAYER_RESIZE, 1, &x, 4, a, &y));
    kiln_expr sizes_c[4] = {C(1), C(2), C(7), C(11)};
    kiln_layer_attr ac[3] = {{.name = "sizes", .kind = KILN_ATTR_EXPRS, .count = 4, .exprs = sizes_c},
                             {.name = "mode", .kind = KILN_ATTR_INT, .i = 2},
                             {.name = "exclude_outside", .kind = KILN_ATTR_INT, .i = 1}};
    TRY(layer(net, KILN_LAYER_RESIZE, 1, &x, 3, ac, &yc));
    kiln_layer_attr ai[1] = {{.name = "sizes", .kind = KILN_ATTR_EXPRS, .count = 2, .exprs = (kiln_expr[]){C(7), C(2)}}};
    TRY(layer(net, KILN_LAYER_RESIZE, 1, &xi, 1, ai, &yi));
#undef C
    TRY(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, yc, "yc", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, yi, "yi", KILN_INT32));
    return save(net, dir, "resize.engine");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    TRY(kiln_plugin_library_init());
    return mlp(argv[1]) || ops(argv[1]) || static_ints(argv[1]) || attrs(argv[1]) || collectives(argv[1]) ||
           scatter(argv[1]) || topk(argv[1]) || rotary(argv[1]) || conv(argv[1]) ||
           pool(argv[1]) || resize(argv[1]);
}
