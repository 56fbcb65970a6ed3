/* test_collectives.c — collective layers (all_reduce, all_gather,
 * reduce_scatter) without a GPU: their op-table rows and names, their shape
 * rules at several world sizes, the network's and the engine's parallel
 * record, the CPU's identity at world size 1 and its refusal, when a context
 * is made, of a larger group; communicator ids as text, from the
 * environment and from a file.  Runs across processes are GPU tests
 * (tests/python/test_collectives.py). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "graph/network_impl.h"
#include "ops/op_table.h"
#include "runtime/engine_impl.h"
#include "test.h"

static void test_rows_and_names(void) {
    static const struct { kiln_layer_op op; const char *name; kiln_op kop; int32_t subop; int32_t attrs; } rows[] = {
        {KILN_LAYER_ALL_REDUCE_SUM, "all_reduce_sum", KILN_OP_ALL_REDUCE, KILN_COLLECTIVE_SUM, 0},
        {KILN_LAYER_ALL_REDUCE_PROD, "all_reduce_prod", KILN_OP_ALL_REDUCE, KILN_COLLECTIVE_PROD, 0},
        {KILN_LAYER_ALL_REDUCE_MAX, "all_reduce_max", KILN_OP_ALL_REDUCE, KILN_COLLECTIVE_MAX, 0},
        {KILN_LAYER_ALL_REDUCE_MIN, "all_reduce_min", KILN_OP_ALL_REDUCE, KILN_COLLECTIVE_MIN, 0},
        {KILN_LAYER_ALL_GATHER, "all_gather", KILN_OP_ALL_GATHER, 0, 1},
        {KILN_LAYER_REDUCE_SCATTER, "reduce_scatter", KILN_OP_REDUCE_SCATTER, KILN_COLLECTIVE_SUM, 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        CHECK(strcmp(kiln_layer_op_name(rows[i].op), rows[i].name) == 0);
        kiln_layer_op found;
        CHECK_OK(kiln_layer_op_from_name(rows[i].name, &found));
        CHECK(found == rows[i].op);
        const kiln_layer_op_row *row = kiln_layer_op_row_get(rows[i].op);
        CHECK(row->op == rows[i].kop && row->subop == rows[i].subop);
        int32_t inputs = -1, attrs = -1;
        CHECK_OK(kiln_layer_op_info(rows[i].op, &inputs, &attrs));
        CHECK(inputs == 1 && attrs == rows[i].attrs);
        CHECK(kiln_op_is_collective(rows[i].kop));
    }
    CHECK(strcmp(kiln_op_name(KILN_OP_ALL_REDUCE), "all_reduce") == 0);
    CHECK(strcmp(kiln_op_name(KILN_OP_REDUCE_SCATTER), "reduce_scatter") == 0);
    CHECK(strcmp(kiln_collective_op_name(KILN_COLLECTIVE_MAX), "max") == 0);
    CHECK(!kiln_op_is_collective(KILN_OP_REDUCE) && !kiln_op_is_collective(KILN_OP_PLUGIN));
    CHECK(kiln_op_has_subop(KILN_OP_ALL_REDUCE) && !kiln_op_has_axis(KILN_OP_ALL_REDUCE));
    CHECK(!kiln_op_has_subop(KILN_OP_ALL_GATHER) && kiln_op_has_axis(KILN_OP_ALL_GATHER));
    CHECK(kiln_op_has_subop(KILN_OP_REDUCE_SCATTER) && kiln_op_has_axis(KILN_OP_REDUCE_SCATTER));
}

/* One collective layer on an input of `dtype` and the given shape. */
static kiln_status add_collective(kiln_network *net, kiln_layer_op op, kiln_tensor x, int64_t axis, kiln_tensor *y) {
    kiln_layer_attr a = {.name = "axis", .kind = KILN_ATTR_INT, .i = axis};
    return kiln_network_add_layer(net, op, 1, &x, op == KILN_LAYER_ALL_GATHER || op == KILN_LAYER_REDUCE_SCATTER,
                                  &a, y);
}

static int64_t dim_of(kiln_network *net, kiln_tensor t, int axis) {
    int32_t rank;
    kiln_expr shape[KILN_MAX_RANK];
    kiln_dtype dt;
    if (kiln_network_tensor_info(net, t, &dt, &rank, shape) != KILN_OK || axis >= rank) return -1;
    int64_t v = -1;
    if (!kiln_expr_is_const(kiln_network_exprs(net), shape[axis], &v)) return -2;
    return v;
}

static void test_shape_rules(void) {
    kiln_network *net;
    CHECK_OK(kiln_network_create(&net));
    kiln_exprs *pool = kiln_network_exprs(net);
    int32_t rank = -1, world = -1;
    CHECK_OK(kiln_network_parallel(net, &rank, &world));
    CHECK(rank == 0 && world == 1);
    CHECK_FAILS(kiln_network_set_parallel(net, 4, 4), KILN_ERROR_INVALID_ARGUMENT, "rank 4 is outside [0, 4)");
    CHECK_FAILS(kiln_network_set_parallel(net, 0, 0), KILN_ERROR_INVALID_ARGUMENT, "world size 0 is outside");
    CHECK_FAILS(kiln_network_set_parallel(net, 0, KILN_MAX_WORLD_SIZE + 1), KILN_ERROR_INVALID_ARGUMENT,
                "world size 65537");
    CHECK_OK(kiln_network_set_parallel(net, 3, 4));

    kiln_dim_range range = {1, 4, 64};
    kiln_expr batch;
    CHECK_OK(kiln_network_add_dim(net, "batch", &range, 1, &batch));
    kiln_expr s[2] = {kiln_expr_const(pool, 8), kiln_expr_const(pool, 3)};
    kiln_expr sb[2] = {batch, kiln_expr_const(pool, 3)};
    kiln_tensor x, xb, xi, flag, y;
    CHECK_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, s, &x));
    CHECK_OK(kiln_network_add_input(net, "xb", KILN_BFLOAT16, 2, sb, &xb));
    CHECK_OK(kiln_network_add_input(net, "xi", KILN_INT32, 2, s, &xi));
    CHECK_OK(kiln_network_add_input(net, "flag", KILN_BOOL, 2, s, &flag));

    /* all_reduce: shape and dtype unchanged. */
    CHECK_OK(add_collective(net, KILN_LAYER_ALL_REDUCE_MAX, xi, 0, &y));
    CHECK(dim_of(net, y, 0) == 8 && dim_of(net, y, 1) == 3);
    CHECK_FAILS(add_collective(net, KILN_LAYER_ALL_REDUCE_SUM, flag, 0, &y), KILN_ERROR_INVALID_NETWORK,
                "all_reduce of 'flag': dtype bool is not supported (numbers only, not bool)");
    /* all_gather: the axis grows world_size times; negative axes count from the end. */
    CHECK_OK(add_collective(net, KILN_LAYER_ALL_GATHER, x, -1, &y));
    CHECK(dim_of(net, y, 0) == 8 && dim_of(net, y, 1) == 12);
    CHECK_OK(add_collective(net, KILN_LAYER_ALL_GATHER, flag, 0, &y));   /* moving bools is fine */
    CHECK(dim_of(net, y, 0) == 32);
    CHECK_FAILS(add_collective(net, KILN_LAYER_ALL_GATHER, x, 2, &y), KILN_ERROR_INVALID_NETWORK,
                "all_gather of 'x': axis 2 is out of range for rank 2");
    /* reduce_scatter: the axis is cut into world_size parts; it must divide. */
    CHECK_OK(add_collective(net, KILN_LAYER_REDUCE_SCATTER, x, 0, &y));
    CHECK(dim_of(net, y, 0) == 2 && dim_of(net, y, 1) == 3);
    CHECK_FAILS(add_collective(net, KILN_LAYER_REDUCE_SCATTER, x, 1, &y), KILN_ERROR_INVALID_NETWORK,
                "reduce_scatter of 'x': axis 1 has size 3, which world size 4 does not divide");
    int32_t checks_before = (int32_t)net->check_count;
    CHECK_OK(add_collective(net, KILN_LAYER_REDUCE_SCATTER, xb, 0, &y));   /* symbolic: a run-time check */
    CHECK(dim_of(net, y, 0) == -2);
    CHECK((int32_t)net->check_count == checks_before + 1);
    CHECK(strstr(net->checks[net->check_count - 1].message, "reduce_scatter of 'xb': axis 0 has size batch, which "
                 "world size 4 does not divide") != NULL);

    /* The world size is fixed once a collective layer depends on it. */
    CHECK_FAILS(kiln_network_set_parallel(net, 0, 2), KILN_ERROR_STATE, "set the world size (2) before adding them");
    CHECK_OK(kiln_network_set_parallel(net, 1, 4));   /* another rank of the same group is fine */
    CHECK_OK(kiln_network_parallel(net, &rank, &world));
    CHECK(rank == 1 && world == 4);
    kiln_network_free(net);
}

/* in → op → out at rank `rank` of `world`; an engine. */
static kiln_engine *build_one(kiln_layer_op op, kiln_dtype dtype, int32_t rank, int32_t world, int64_t axis) {
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range range = {1, 2, 8};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_network_set_parallel(net, rank, world);
    kiln_expr s[3] = {batch, kiln_expr_const(pool, 4), kiln_expr_const(pool, 2)};
    kiln_tensor x, y;
    kiln_engine *e = NULL;
    kiln_blob *blob = NULL;
    if (kiln_network_add_input(net, "x", dtype, 3, s, &x) == KILN_OK && add_collective(net, op, x, axis, &y) == KILN_OK &&
        kiln_network_mark_output(net, y, "y", dtype) == KILN_OK && kiln_network_build(net, NULL, &blob) == KILN_OK)
        kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e);
    else
        fprintf(stderr, "build: %s\n", kiln_last_error());
    kiln_blob_free(blob);
    kiln_network_free(net);
    return e;
}

/* World size 1 on the CPU: every collective is the identity. */
static void test_cpu_identity(void) {
    static const kiln_layer_op ops[] = {KILN_LAYER_ALL_REDUCE_SUM, KILN_LAYER_ALL_REDUCE_PROD, KILN_LAYER_ALL_REDUCE_MAX,
                                        KILN_LAYER_ALL_REDUCE_MIN, KILN_LAYER_ALL_GATHER, KILN_LAYER_REDUCE_SCATTER};
    static const kiln_dtype dtypes[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_INT8, KILN_INT64};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        for (size_t k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++) {
            kiln_engine *e = build_one(ops[i], dtypes[k], 0, 1, (int64_t)(k % 3));
            REQUIRE(e != NULL);
            int32_t rank = -1, world = -1;
            CHECK_OK(kiln_engine_parallel(e, &rank, &world));
            CHECK(rank == 0 && world == 1);
            CHECK(kiln_engine_format_version(e) == 2);   /* rank 0 of 1: readable by kilns before version 3 */
            kiln_context *ctx;
            CHECK_OK(kiln_context_create(e, NULL, &ctx));
            CHECK_OK(kiln_context_set_communicator(ctx, 0, 1, NULL));   /* a group of one joins nothing */
            CHECK_FAILS(kiln_context_set_communicator(ctx, 1, 2, NULL), KILN_ERROR_INVALID_ARGUMENT,
                        "rank 1 of world size 2 given, but the engine was built for rank 0 of world size 1");
            int64_t shape[3] = {3, 4, 2};
            uint8_t in[3 * 4 * 2 * 8], out[sizeof in];
            for (size_t b = 0; b < sizeof in; b++) in[b] = (uint8_t)(b * 7 + 1);
            memset(out, 0, sizeof out);
            CHECK_OK(kiln_context_set_input_shape(ctx, "x", 3, shape));
            int32_t r;
            int64_t dims[KILN_MAX_RANK];
            CHECK_OK(kiln_context_tensor_shape(ctx, "y", &r, dims));
            CHECK(r == 3 && dims[0] == 3 && dims[1] == 4 && dims[2] == 2);
            kiln_context_set_tensor(ctx, "x", in);
            kiln_context_set_tensor(ctx, "y", out);
            CHECK_OK(kiln_context_enqueue(ctx, NULL));
            CHECK_OK(kiln_context_synchronize(ctx, NULL));
            CHECK(memcmp(in, out, 24 * kiln_dtype_size(dtypes[k])) == 0);
            kiln_context_free(ctx);
            kiln_engine_free(e);
        }
}

/* World size > 1 on the CPU: refused when the context is made, naming the
 * layer, the op and the world size; describing the engine still works. */
static void test_cpu_refuses_groups(void) {
    kiln_engine *e = build_one(KILN_LAYER_ALL_REDUCE_SUM, KILN_FLOAT32, 1, 2, 0);
    REQUIRE(e != NULL);
    int32_t rank = -1, world = -1;
    CHECK_OK(kiln_engine_parallel(e, &rank, &world));
    CHECK(rank == 1 && world == 2);
    CHECK(kiln_engine_format_version(e) == 3);
    const char *kind, *detail;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(kind, "all_reduce") == 0 && strcmp(detail, "sum rank 1 of 2") == 0);
    kiln_context *ctx;
    CHECK_FAILS(kiln_context_create(e, NULL, &ctx), KILN_ERROR_UNSUPPORTED,
                "layer 0 (all_reduce sum rank 1 of 2): the cpu backend runs collective layers only at world size 1");
    CHECK(strstr(kiln_last_error(), "world size 2") != NULL);
    kiln_engine_free(e);

    e = build_one(KILN_LAYER_REDUCE_SCATTER, KILN_FLOAT32, 0, 2, 1);
    REQUIRE(e != NULL);
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(detail, "sum axis 1 rank 0 of 2") == 0);
    CHECK_FAILS(kiln_context_create(e, NULL, &ctx), KILN_ERROR_UNSUPPORTED, "layer 0 (reduce_scatter sum axis 1");
    kiln_engine_free(e);
}

static void test_comm_id_text(void) {
    kiln_comm_id id, back;
    for (int i = 0; i < KILN_COMM_ID_BYTES; i++) id.bytes[i] = (uint8_t)(i * 37 + 5);
    char hex[KILN_COMM_ID_HEX_SIZE];
    CHECK_FAILS(kiln_comm_id_to_hex(&id, hex, sizeof hex - 1), KILN_ERROR_INVALID_ARGUMENT, "needs 257");
    CHECK_OK(kiln_comm_id_to_hex(&id, hex, sizeof hex));
    CHECK(strlen(hex) == 256 && strncmp(hex, "052a4f", 6) == 0);
    CHECK_OK(kiln_comm_id_from_hex(hex, &back));
    CHECK(memcmp(&id, &back, sizeof id) == 0);
    char padded[300];
    snprintf(padded, sizeof padded, "  %s\n", hex);
    for (char *c = padded; *c; c++) *c = (char)toupper((unsigned char)*c);   /* upper case is read too */
    memset(&back, 0, sizeof back);
    CHECK_OK(kiln_comm_id_from_hex(padded, &back));
    CHECK(memcmp(&id, &back, sizeof id) == 0);
    CHECK_FAILS(kiln_comm_id_from_hex("abc", &back), KILN_ERROR_INVALID_ARGUMENT, "3 characters, an id is 256");
    hex[17] = 'g';
    CHECK_FAILS(kiln_comm_id_from_hex(hex, &back), KILN_ERROR_INVALID_ARGUMENT, "character 17 is not a hex digit");
    /* Making an id needs the CUDA backend and NCCL; without them the error says so. */
    if (kiln_comm_id_new(&back) != KILN_OK) CHECK(strstr(kiln_last_error(), "kiln_comm_id_new") != NULL ||
                                                  strstr(kiln_last_error(), "nccl") != NULL);
}

static void test_comm_env(void) {
    static const char *const vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK",
                                       "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK", "PMI_SIZE",
                                       "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "KILN_NCCL_ID",
                                       "KILN_NCCL_ID_FILE", "KILN_NCCL_TIMEOUT_S"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    int32_t rank = -1, world = -1, local = -1;
    CHECK_FAILS(kiln_comm_env(&rank, &world, &local), KILN_ERROR_NOT_FOUND, "no launcher's rank variables");
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    CHECK_OK(kiln_comm_env(&rank, &world, &local));
    CHECK(rank == 3 && world == 4 && local == 1);
    setenv("RANK", "1", 1);   /* torchrun's variables come first; LOCAL_RANK defaults to the rank */
    setenv("WORLD_SIZE", "2", 1);
    CHECK_OK(kiln_comm_env(&rank, &world, &local));
    CHECK(rank == 1 && world == 2 && local == 1);
    setenv("WORLD_SIZE", "1", 1);
    CHECK_FAILS(kiln_comm_env(&rank, &world, &local), KILN_ERROR_INVALID_ARGUMENT, "torchrun gives rank 1 of world "
                "size 1");
    setenv("WORLD_SIZE", "two", 1);
    CHECK_FAILS(kiln_comm_env(NULL, NULL, NULL), KILN_ERROR_INVALID_ARGUMENT, "RANK and WORLD_SIZE must both be set");
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);

    /* The id from KILN_NCCL_ID, then from a file rank 0 wrote. */
    kiln_comm_id id, got;
    for (int i = 0; i < KILN_COMM_ID_BYTES; i++) id.bytes[i] = (uint8_t)(255 - i);
    char hex[KILN_COMM_ID_HEX_SIZE];
    CHECK_OK(kiln_comm_id_to_hex(&id, hex, sizeof hex));
    CHECK_FAILS(kiln_comm_id_from_env(1, &got), KILN_ERROR_NOT_FOUND, "neither KILN_NCCL_ID nor KILN_NCCL_ID_FILE");
    setenv("KILN_NCCL_ID", hex, 1);
    CHECK_OK(kiln_comm_id_from_env(1, &got));
    CHECK(memcmp(&id, &got, sizeof id) == 0);
    setenv("KILN_NCCL_ID", "0123", 1);
    CHECK_FAILS(kiln_comm_id_from_env(1, &got), KILN_ERROR_INVALID_ARGUMENT, "KILN_NCCL_ID: communicator id: 4 "
                "characters");
    unsetenv("KILN_NCCL_ID");

    char path[512];
    snprintf(path, sizeof path, "%s/test_collectives.%ld.id", KILN_TEST_TMPDIR, (long)getpid());
    unlink(path);
    setenv("KILN_NCCL_ID_FILE", path, 1);
    setenv("KILN_NCCL_TIMEOUT_S", "0.2", 1);
    CHECK_FAILS(kiln_comm_id_from_env(1, &got), KILN_ERROR_IO, "rank 1 waited 0 s for rank 0 to write");
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fprintf(f, "%s\n", hex);
    fclose(f);
    CHECK_OK(kiln_comm_id_from_env(1, &got));
    CHECK(memcmp(&id, &got, sizeof id) == 0);
    /* Rank 0 never reuses a file that exists: others may have read it. */
    CHECK_FAILS(kiln_comm_id_from_env(0, &got), KILN_ERROR_STATE, "exists already");
    unlink(path);
    unsetenv("KILN_NCCL_ID_FILE");
    unsetenv("KILN_NCCL_TIMEOUT_S");
}

int main(void) {
    TEST_RUN(test_rows_and_names);
    TEST_RUN(test_shape_rules);
    TEST_RUN(test_cpu_identity);
    TEST_RUN(test_cpu_refuses_groups);
    TEST_RUN(test_comm_id_text);
    TEST_RUN(test_comm_env);
    return test_summary();
}
