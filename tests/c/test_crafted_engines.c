/* test_crafted_engines.c — engines that a hostile file could hold, with valid
 * checksums: each is made by building a real engine, reading it back into a
 * desc, changing one thing and writing it again (the writer seals every
 * checksum).  The loader must refuse each with a message naming the record at
 * fault, and the context must refuse shapes whose bytes do not fit int64. */
#include <stdint.h>
#include <stdio.h>

#include "core/alloc.h"
#include "kiln/plugin.h"
#include "runtime/engine_impl.h"
#include "format/engine_format.h"
#include "shape/exprs.h"
#include "test.h"

/* x [batch, 4] float32 → reshape [batch*4] → relu → y. */
static kiln_blob *build_reshape_relu(void) {
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range range = {1, 2, 8};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_expr xs[2] = {batch, kiln_expr_const(pool, 4)};
    kiln_expr flat[1] = {kiln_expr_const(pool, -1)};
    kiln_tensor x, r, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xs, &x);
    kiln_network_add_reshape(net, x, 1, flat, &r);
    kiln_network_add_unary(net, KILN_UNARY_RELU, r, &y);
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    if (kiln_network_build(net, NULL, &blob) != KILN_OK) fprintf(stderr, "build: %s\n", kiln_last_error());
    kiln_network_free(net);
    return blob;
}

static int32_t tensor_named(const kiln_engine_desc *d, const char *name) {
    for (int32_t i = 0; i < d->tensor_count; i++)
        if (strcmp(d->tensors[i].name, name) == 0) return i;
    return -1;
}

/* Write desc (checksums sealed) and try to load it from memory. */
static kiln_status load_desc(const kiln_engine_desc *d, kiln_engine **out) {
    uint8_t *bytes = NULL;
    size_t size = 0;
    *out = NULL;
    kiln_status s = kiln_format_write(d, &bytes, &size);
    if (s == KILN_OK) s = kiln_engine_load_memory(bytes, size, 0, out);
    kiln_aligned_free(bytes);
    return s;
}

/* An input axis given as an expression (batch*4) rather than a size the
 * caller sets: before, set_input_shape accepted any batch while the reshape
 * kernel read batch*4 rows, past the caller's buffer. */
static void test_input_axis_expression_refused(void) {
    kiln_blob *blob = build_reshape_relu();
    REQUIRE(blob != NULL);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    int32_t x = tensor_named(&d, "x");
    REQUIRE(x >= 0);
    kiln_expr batch = d.tensors[x].shape[0];
    d.tensors[x].shape[0] = kiln_expr_binary(d.exprs, KILN_EXPR_MUL, batch, kiln_expr_const(d.exprs, 4));
    REQUIRE(d.tensors[x].shape[0] >= 0);
    kiln_engine *e;
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT,
                "input tensor 0 'x' dimension 0 is neither a constant size nor a named dimension");
    /* A negative constant is refused the same way. */
    d.tensors[x].shape[0] = kiln_expr_const(d.exprs, -3);
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "'x' dimension 0 is neither");
    /* The engine as built still loads and runs. */
    d.tensors[x].shape[0] = batch;
    CHECK_OK(load_desc(&d, &e));
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, NULL, &ctx));
    int64_t shape[2] = {3, 4};
    float in[12], out[12];
    for (int i = 0; i < 12; i++) in[i] = (float)i - 6;
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, shape));
    kiln_context_set_tensor(ctx, "x", in);
    kiln_context_set_tensor(ctx, "y", out);
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    for (int i = 0; i < 12; i++) CHECK(out[i] == (in[i] > 0 ? in[i] : 0));
    kiln_context_free(ctx);
    kiln_engine_free(e);
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* Kernels do aligned vector loads from the arena: an activation placed at an
 * offset the planner never produces is refused. */
static void test_misaligned_activation_refused(void) {
    kiln_blob *blob = build_reshape_relu();
    REQUIRE(blob != NULL);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    int32_t act = -1;
    for (int32_t i = 0; i < d.tensor_count; i++)
        if (d.tensors[i].kind == KILN_TENSOR_ACTIVATION) act = i;
    REQUIRE(act >= 0);
    d.arena_bytes += 256;   /* still inside the arena */
    d.tensors[act].offset += 4;
    kiln_engine *e;
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "arena offset 4 is not 256-byte aligned");
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* int8 [2, 3, 2^62]: 6·2^62 bytes.  Before, the context computed strides
 * before checking the size, a signed overflow (UBSan abort). */
static void test_huge_shape_is_an_error(void) {
    kiln_network *net;
    CHECK_OK(kiln_network_create(&net));
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range range = {1, 1, INT64_C(1) << 62};
    kiln_expr n;
    kiln_network_add_dim(net, "n", &range, 1, &n);
    kiln_expr xs[3] = {kiln_expr_const(pool, 2), kiln_expr_const(pool, 3), n};
    kiln_tensor x, y;
    CHECK_OK(kiln_network_add_input(net, "x", KILN_INT8, 3, xs, &x));
    CHECK_OK(kiln_network_add_unary(net, KILN_UNARY_NEG, x, &y));
    CHECK_OK(kiln_network_mark_output(net, y, "y", KILN_INT8));
    kiln_blob *blob = NULL;
    kiln_status built = kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    CHECK_OK(built);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    kiln_blob_free(blob);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, NULL, &ctx));
    int64_t shape[3] = {2, 3, INT64_C(1) << 62};
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 3, shape));
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    CHECK_FAILS(kiln_context_tensor_shape(ctx, "y", &rank, dims), KILN_ERROR_SHAPE,
                "tensor 'x' is too large (more than 2^63 bytes)");
    kiln_context_free(ctx);
    kiln_engine_free(e);
}

/* x [batch, 3] → ScaleShift (native plugin) → relu → y. */
static kiln_blob *build_plugin_chain(void) {
    if (!kiln_plugin_find("example", "ScaleShift", "1") && kiln_plugin_library_load(KILN_EXAMPLE_PLUGIN_PATH))
        return NULL;
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_dim_range range = {1, 2, 8};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_expr xs[2] = {batch, kiln_expr_const(kiln_network_exprs(net), 3)};
    kiln_tensor x, s, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xs, &x);
    kiln_value *fields = kiln_value_map();
    kiln_value_map_set(fields, "scale", kiln_value_float64(2.0));
    kiln_value_map_set(fields, "shift", kiln_value_float64(1.0));
    kiln_network_add_plugin(net, "example", "ScaleShift", "1", NULL, fields, 1, &x, 1, &s);
    kiln_value_free(fields);
    kiln_network_add_unary(net, KILN_UNARY_RELU, s, &y);
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    if (kiln_network_build(net, NULL, &blob) != KILN_OK) fprintf(stderr, "build: %s\n", kiln_last_error());
    kiln_network_free(net);
    return blob;
}

/* An engine that states a bigger output for a native plugin than the plugin
 * computes: before, the plugin's enqueue wrote past the arena (found by
 * fuzz_engine_exec with SplitHalves).  The plugin is asked again at load. */
static void test_plugin_output_shape_must_match_plugin(void) {
    kiln_blob *blob = build_plugin_chain();
    REQUIRE(blob != NULL);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    int32_t s = -1, y = tensor_named(&d, "y");
    for (int32_t l = 0; l < d.layer_count; l++)
        if (d.layers[l].op == KILN_OP_PLUGIN) s = d.layers[l].outputs[0];
    REQUIRE(s >= 0 && y >= 0);
    kiln_expr three = d.tensors[s].shape[1];
    kiln_expr six = kiln_expr_const(d.exprs, 6);
    /* Plugin output and everything after it consistently [batch, 6]: only the
     * plugin can tell that its output is [batch, 3]. */
    d.tensors[s].shape[1] = six;
    d.tensors[y].shape[1] = six;
    kiln_engine *e;
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT,
                "layer 0 (plugin example::ScaleShift version 1): output 0 '");
    d.tensors[s].shape[1] = three;
    d.tensors[y].shape[1] = three;
    CHECK_OK(load_desc(&d, &e));
    kiln_engine_free(e);
    /* Without plugins (inspection) the engine loads: nothing will run it. */
    d.tensors[s].shape[1] = six;
    d.tensors[y].shape[1] = six;
    uint8_t *bytes;
    size_t size;
    CHECK_OK(kiln_format_write(&d, &bytes, &size));
    CHECK_OK(kiln_engine_load_memory(bytes, size, KILN_LOAD_NO_PLUGINS, &e));
    kiln_engine_free(e);
    kiln_aligned_free(bytes);
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* A built-in layer whose stored output is not what its op's rule gives. */
static void test_builtin_output_must_match_rule(void) {
    kiln_blob *blob = build_reshape_relu();
    REQUIRE(blob != NULL);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    int32_t y = tensor_named(&d, "y");
    REQUIRE(y >= 0);
    kiln_expr rows = d.tensors[y].shape[0];
    d.tensors[y].shape[0] = kiln_expr_binary(d.exprs, KILN_EXPR_MUL, rows, kiln_expr_const(d.exprs, 2));
    kiln_engine *e;
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "layer 1 (unary): output 'y' is stored as float32 [");
    d.tensors[y].shape[0] = rows;
    d.tensors[y].dtype = KILN_FLOAT16;
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "but the op's rule gives float32");
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* A reshape states its result only through its output shape: an output with
 * more elements than its input loads, but the element counts become a check
 * that refuses every run, by name, before a kernel reads past the input. */
static void test_reshape_count_becomes_a_check(void) {
    kiln_blob *blob = build_reshape_relu();
    REQUIRE(blob != NULL);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    int32_t x = tensor_named(&d, "x"), y = tensor_named(&d, "y");
    int32_t r = d.layers[0].outputs[0];
    REQUIRE(x >= 0 && y >= 0 && d.layers[0].op == KILN_OP_RESHAPE);
    kiln_expr bigger = kiln_expr_binary(d.exprs, KILN_EXPR_MUL, d.tensors[x].shape[0], kiln_expr_const(d.exprs, 8));
    d.tensors[r].shape[0] = bigger;
    d.tensors[y].shape[0] = bigger;
    int32_t checks_before = d.check_count;
    kiln_engine *e;
    CHECK_OK(load_desc(&d, &e));
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, NULL, &ctx));
    int64_t shape[2] = {2, 4};
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, shape));
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    CHECK_FAILS(kiln_context_tensor_shape(ctx, "y", &rank, dims), KILN_ERROR_SHAPE,
                "reshape of 'x': (batch * 4) elements cannot take a shape of (batch * 8) elements");
    CHECK(checks_before == d.check_count);   /* the file had no such check: the reader added it */
    kiln_context_free(ctx);
    kiln_engine_free(e);
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* A backend narrower than the op rules (one without matmul here) refuses the
 * engine when a context is created, naming the layer, the op and the dtypes;
 * the CPU backend takes every layer the rules accept. */
static bool no_matmul(const kiln_layer_launch *l) {
    return l->op != KILN_OP_MATMUL && kiln_backend_cpu()->supports_op(l);
}

static void test_backend_says_what_it_supports(void) {
    const kiln_backend_iface *cpu = kiln_backend_cpu();
    kiln_tensor_desc f32 = {.dtype = KILN_FLOAT32}, i32 = {.dtype = KILN_INT32}, f16 = {.dtype = KILN_FLOAT16};
    kiln_tensor_desc in[2] = {f32, f32}, out[1] = {f32};
    kiln_layer_launch l = {.op = KILN_OP_MATMUL, .input_count = 2, .output_count = 1, .inputs = in, .outputs = out};
    CHECK(cpu->supports_op(&l));
    in[0] = in[1] = out[0] = i32;
    CHECK(!cpu->supports_op(&l));                       /* integer matmul: no kernel */
    l.op = KILN_OP_UNARY;
    l.subop = KILN_UNARY_NEG;
    l.input_count = 1;
    CHECK(cpu->supports_op(&l));
    l.subop = KILN_UNARY_RELU;
    CHECK(!cpu->supports_op(&l));
    in[0] = out[0] = f16;
    CHECK(cpu->supports_op(&l));
    l.input_count = 2;                                  /* arity other than the table's */
    CHECK(!cpu->supports_op(&l));
    l.op = KILN_OP_PLUGIN;
    CHECK(!cpu->supports_op(&l));

    kiln_network *net;
    CHECK_OK(kiln_network_create(&net));
    kiln_expr shape[2] = {kiln_expr_const(kiln_network_exprs(net), 2), kiln_expr_const(kiln_network_exprs(net), 2)};
    kiln_tensor a, b, m, r;
    kiln_network_add_input(net, "a", KILN_FLOAT32, 2, shape, &a);
    kiln_network_add_input(net, "b", KILN_FLOAT32, 2, shape, &b);
    kiln_network_add_unary(net, KILN_UNARY_RELU, a, &r);
    kiln_network_add_matmul(net, r, b, &m);
    kiln_network_mark_output(net, m, "m", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    kiln_status built = kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    CHECK_OK(built);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    kiln_blob_free(blob);
    kiln_backend_iface narrow = *cpu;
    narrow.supports_op = no_matmul;
    CHECK_OK(kiln_engine_check_backend(e, cpu));
    CHECK_FAILS(kiln_engine_check_backend(e, &narrow), KILN_ERROR_UNSUPPORTED,
                "layer 1 (matmul): the cpu backend cannot run it with dtypes float32, float32 -> float32");
    kiln_engine_free(e);
}

/* x [4, batch] → all_gather along axis 1 at rank 1 of 2 → y [4, batch*2]. */
static kiln_blob *build_all_gather(void) {
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range range = {1, 2, 8};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_network_set_parallel(net, 1, 2);
    kiln_expr xs[2] = {kiln_expr_const(pool, 4), batch};
    kiln_tensor x, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xs, &x);
    kiln_layer_attr axis = {.name = "axis", .kind = KILN_ATTR_INT, .i = 1};
    kiln_network_add_layer(net, KILN_LAYER_ALL_GATHER, 1, &x, 1, &axis, &y);
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    if (kiln_network_build(net, NULL, &blob) != KILN_OK) fprintf(stderr, "build: %s\n", kiln_last_error());
    kiln_network_free(net);
    return blob;
}

/* The parallel record is checked like every other field: a rank outside
 * its group, an empty or absurd group, and a world size the layers' shapes
 * were not made for are refused, naming what is wrong. */
static void test_parallel_record_refused(void) {
    kiln_blob *blob = build_all_gather();
    REQUIRE(blob != NULL);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    CHECK(d.parallel.rank == 1 && d.parallel.world_size == 2);
    kiln_engine *e;
    d.parallel = (kiln_parallel_record){.rank = 2, .world_size = 2};
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "rank 2 is not below the world size 2");
    d.parallel = (kiln_parallel_record){.rank = 1, .world_size = 0};
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "world size 0 is outside [1, 65536]");
    d.parallel = (kiln_parallel_record){.rank = 0, .world_size = KILN_MAX_WORLD_SIZE + 1};
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "world size 65537 is outside");
    d.parallel = (kiln_parallel_record){.rank = -1, .world_size = 2};
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "rank 4294967295 is not below");
    /* all_gather's output was shaped for 2 ranks: a record of 3 does not fit it. */
    d.parallel = (kiln_parallel_record){.rank = 1, .world_size = 3};
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "all_gather");
    /* Rank 0 of 1 is written as version 2, where the shapes do not fit either. */
    d.parallel = (kiln_parallel_record){.rank = 0, .world_size = 1};
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "all_gather");
    /* The engine as built loads, and the CPU refuses it when a context is
     * made, naming the layer and the world size. */
    d.parallel = (kiln_parallel_record){.rank = 1, .world_size = 2};
    CHECK_OK(load_desc(&d, &e));
    kiln_context *ctx;
    CHECK_FAILS(kiln_context_create(e, NULL, &ctx), KILN_ERROR_UNSUPPORTED,
                "layer 0 (all_gather axis 1 rank 1 of 2): the cpu backend runs collective layers only at world size "
                "1, and this engine is rank 1 of world size 2");
    kiln_engine_free(e);
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* x [batch, 3] → ScaleShift written in place into x → relu → y: the
 * caller's x is modified, relu reads it, and crafted alias entries are
 * refused at load. */
static void test_outputs_written_in_place(void) {
    if (!kiln_plugin_find("example", "ScaleShift", "1") && kiln_plugin_library_load(KILN_EXAMPLE_PLUGIN_PATH)) {
        CHECK(!"example plugin library");
        return;
    }
    kiln_network *net;
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    kiln_dim_range range = {1, 2, 8};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_expr xs[2] = {batch, kiln_expr_const(kiln_network_exprs(net), 3)};
    kiln_tensor x, s, y, w;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xs, &x);
    kiln_value *fields = kiln_value_map();
    kiln_value_map_set(fields, "scale", kiln_value_float64(2.0));
    kiln_value_map_set(fields, "shift", kiln_value_float64(-1.0));
    CHECK_OK(kiln_network_add_plugin(net, "example", "ScaleShift", "1", NULL, fields, 1, &x, 1, &s));
    kiln_value_free(fields);
    CHECK_FAILS(kiln_network_alias_output(net, x, x), KILN_ERROR_INVALID_ARGUMENT, "not an output of a plugin layer");
    kiln_network_add_unary(net, KILN_UNARY_RELU, s, &y);
    CHECK_FAILS(kiln_network_alias_output(net, y, x), KILN_ERROR_INVALID_ARGUMENT, "not an output of a plugin layer");
    kiln_network_add_input(net, "w", KILN_FLOAT32, 2, xs, &w);
    CHECK_FAILS(kiln_network_alias_output(net, s, w), KILN_ERROR_INVALID_ARGUMENT, "does not read 'w'");
    CHECK_OK(kiln_network_alias_output(net, s, x));
    CHECK_FAILS(kiln_network_mark_output(net, s, "s", KILN_FLOAT32), KILN_ERROR_INVALID_ARGUMENT,
                "written in place into input 'x'");
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_tensor wy;
    kiln_network_add_unary(net, KILN_UNARY_NEG, w, &wy);
    kiln_network_mark_output(net, wy, "wy", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    CHECK_OK(kiln_network_build(net, NULL, &blob));
    kiln_network_free(net);
    REQUIRE(blob != NULL);

    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    CHECK(kiln_engine_input_is_written(e, "x") == 1 && kiln_engine_input_is_written(e, "w") == 0);
    const char *kind = NULL, *detail = NULL;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strstr(detail, "[writes out0 into in0]") != NULL);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, NULL, &ctx));
    float xv[6] = {1, -2, 3, 0.25f, 4, -5}, wv[6] = {0}, yv[6], wyv[6];
    int64_t dims[2] = {2, 3};
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, dims));
    CHECK_OK(kiln_context_set_input_shape(ctx, "w", 2, dims));
    CHECK_OK(kiln_context_set_tensor(ctx, "x", xv));
    CHECK_OK(kiln_context_set_tensor(ctx, "w", wv));
    CHECK_OK(kiln_context_set_tensor(ctx, "y", yv));
    CHECK_OK(kiln_context_set_tensor(ctx, "wy", wyv));
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    const float want_x[6] = {1, -5, 5, -0.5f, 7, -11};   /* 2x - 1, in x's own buffer */
    CHECK(memcmp(xv, want_x, sizeof want_x) == 0);
    for (int i = 0; i < 6; i++) CHECK(yv[i] == (want_x[i] > 0 ? want_x[i] : 0));
    kiln_context_free(ctx);
    kiln_engine_free(e);

    /* Crafted: an alias entry out of range, onto an input of another shape. */
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), KILN_LOAD_NO_PLUGINS, &d));
    int32_t pl = -1;
    for (int32_t l = 0; l < d.layer_count; l++)
        if (d.layers[l].op == KILN_OP_PLUGIN) pl = l;
    REQUIRE(pl >= 0 && d.layers[pl].attrs.int_count == 1 && d.layers[pl].attrs.ints[0] == 0);
    d.layers[pl].attrs.ints[0] = 1;
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "output 0 is written into input 1 of 1");
    d.layers[pl].attrs.ints[0] = 0;
    d.layers[pl].attrs.int_count = 2;
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "has 2 in-place entries for 1 outputs");
    d.layers[pl].attrs.int_count = 1;
    int32_t xt = d.layers[pl].inputs[0];
    d.tensors[xt].kind = KILN_TENSOR_ACTIVATION;   /* aliasing is for the caller's buffers only */
    CHECK_FAILS(load_desc(&d, &e), KILN_ERROR_CORRUPT, "must be an engine input");
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

int main(void) {
    TEST_RUN(test_outputs_written_in_place);
    TEST_RUN(test_input_axis_expression_refused);
    TEST_RUN(test_misaligned_activation_refused);
    TEST_RUN(test_huge_shape_is_an_error);
    TEST_RUN(test_plugin_output_shape_must_match_plugin);
    TEST_RUN(test_builtin_output_must_match_rule);
    TEST_RUN(test_reshape_count_becomes_a_check);
    TEST_RUN(test_backend_says_what_it_supports);
    TEST_RUN(test_parallel_record_refused);
    return test_summary();
}
