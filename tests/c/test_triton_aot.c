/* test_triton_aot.c — the built-in kiln::TritonAOT plugin without a GPU: it
 * is registered with no set-up call, its output shapes are the expressions of
 * the network's pool its fields name, it refuses malformed fields (and
 * indices outside the pool) naming the kernel and the parameter or output
 * axis, survives an engine round trip without NEEDS_PYTHON, and a CPU
 * context is refused with a message naming it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kiln.h"
#include "kiln/plugin.h"
#include "test.h"

static kiln_value *ints(int n, const int64_t *v) {
    kiln_value *l = kiln_value_list();
    for (int i = 0; i < n; i++) kiln_value_list_append(l, kiln_value_int64(v[i]));
    return l;
}

static kiln_value *str(const char *s) { return kiln_value_string(s, strlen(s)); }

/* The expressions the fields name, built in the network's pool. */
typedef struct aot_exprs {
    kiln_expr n, c16, n16, blocks, rows, two;
} aot_exprs;

static aot_exprs exprs_of(kiln_network *net) {
    kiln_exprs *pool = kiln_network_exprs(net);
    aot_exprs e;
    if (kiln_network_find_dim(net, "n", &e.n) != KILN_OK) e.n = KILN_EXPR_INVALID;   /* the calls below fail */
    e.c16 = kiln_expr_const(pool, 16);
    e.n16 = kiln_expr_binary(pool, KILN_EXPR_MUL, e.n, e.c16);
    e.blocks = kiln_expr_binary(pool, KILN_EXPR_CEILDIV, e.n16, kiln_expr_const(pool, 128));
    e.two = kiln_expr_const(pool, 2);
    e.rows = kiln_expr_binary(pool, KILN_EXPR_MUL, e.blocks, e.two);
    return e;
}

/* One input x[n, 16] float16; output [ceildiv(n*16, 128) * 2, 16], grid
 * (ceildiv(n*16, 128), 2, 2), parameters x, y, n*16. */
static kiln_value *fields(const aot_exprs *e) {
    kiln_value *f = kiln_value_map();
    kiln_value *plugin = kiln_value_map();
    kiln_value_map_set(plugin, "namespace", str("test"));
    kiln_value_map_set(plugin, "name", str("Copy"));
    kiln_value_map_set(plugin, "version", str("3"));
    kiln_value_map_set(f, "plugin", plugin);
    kiln_value_map_set(f, "inputs", kiln_value_int64(1));
    kiln_value *out = kiln_value_map();
    kiln_value_map_set(out, "dtype", kiln_value_int64(KILN_FLOAT16));
    kiln_value_map_set(out, "shape", ints(2, (int64_t[]){e->rows, e->c16}));
    kiln_value *outs = kiln_value_list();
    kiln_value_list_append(outs, out);
    kiln_value_map_set(f, "outputs", outs);
    kiln_value *k = kiln_value_map();
    kiln_value_map_set(k, "name", str("copy_kernel"));
    kiln_value_map_set(k, "cubin", kiln_value_bytes("\x7f" "ELF", 4));
    kiln_value_map_set(k, "ptx", str(".version 8.0"));
    kiln_value_map_set(k, "num_warps", kiln_value_int64(4));
    kiln_value_map_set(k, "grid", ints(3, (int64_t[]){e->blocks, e->two, e->two}));
    kiln_value *params = kiln_value_list();
    kiln_value *p0 = kiln_value_map(), *p1 = kiln_value_map(), *p2 = kiln_value_map();
    kiln_value_map_set(p0, "kind", str("input"));
    kiln_value_map_set(p0, "index", kiln_value_int64(0));
    kiln_value_map_set(p0, "align", kiln_value_int64(16));
    kiln_value_map_set(p1, "kind", str("output"));
    kiln_value_map_set(p1, "index", kiln_value_int64(0));
    kiln_value_map_set(p2, "kind", str("i32"));
    kiln_value_map_set(p2, "expr", kiln_value_int64(e->n16));
    kiln_value_list_append(params, p0);
    kiln_value_list_append(params, p1);
    kiln_value_list_append(params, p2);
    kiln_value_map_set(k, "params", params);
    kiln_value *kernels = kiln_value_list();
    kiln_value_list_append(kernels, k);
    kiln_value_map_set(f, "kernels", kernels);
    return f;
}

static kiln_network *network(kiln_tensor *x) {
    kiln_network *net;
    kiln_network_create(&net);
    kiln_dim_range r = {1, 8, 64};
    kiln_expr n;
    kiln_network_add_dim(net, "n", &r, 1, &n);
    kiln_expr shape[2] = {n, kiln_expr_const(kiln_network_exprs(net), 16)};
    kiln_network_add_input(net, "x", KILN_FLOAT16, 2, shape, x);
    return net;
}

static void test_registered_and_shapes(void) {
    const kiln_plugin_creator *c = kiln_plugin_find("kiln", "TritonAOT", "1");
    REQUIRE(c != NULL);
    CHECK(c->flags == (KILN_PLUGIN_SUPPORTS_CUDA | KILN_PLUGIN_RUNS_ENGINE_CODE));
    kiln_tensor x, y;
    kiln_network *net = network(&x);
    aot_exprs ex = exprs_of(net);
    kiln_value *f = fields(&ex);
    CHECK_OK(kiln_network_add_plugin(net, "kiln", "TritonAOT", "1", "my.module", f, 1, &x, 1, &y));
    kiln_dtype dt;
    int32_t rank;
    kiln_expr shape[KILN_MAX_RANK];
    CHECK_OK(kiln_network_tensor_info(net, y, &dt, &rank, shape));
    CHECK(dt == KILN_FLOAT16 && rank == 2);
    int64_t v;
    for (int64_t n = 1; n <= 64; n += 9) {
        CHECK_OK(kiln_expr_eval(kiln_network_exprs(net), shape[0], &n, 1, &v));
        CHECK(v == (n * 16 + 127) / 128 * 2);
    }
    CHECK(kiln_expr_is_const(kiln_network_exprs(net), shape[1], &v) && v == 16);
    /* The output's shape is the pool's own expression, not a copy of it. */
    CHECK(shape[0] == ex.rows && shape[1] == ex.c16);
    int32_t dim = -1;
    CHECK(kiln_expr_is_dim(kiln_network_exprs(net), ex.n, &dim) && dim == 0);
    CHECK(!kiln_expr_is_dim(kiln_network_exprs(net), ex.rows, &dim));
    CHECK(kiln_expr_is_valid(kiln_network_exprs(net), ex.rows));
    CHECK(!kiln_expr_is_valid(kiln_network_exprs(net), 1 << 30) && !kiln_expr_is_valid(NULL, 0));

    /* Engine round trip: no Python needed, CPU refused by name. */
    kiln_network_mark_output(net, y, "y", KILN_FLOAT16);
    kiln_blob *blob = NULL;
    CHECK_OK(kiln_network_build(net, NULL, &blob));
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    uint32_t flags = 0;
    CHECK_OK(kiln_engine_plugin_flags(e, 0, &flags));
    CHECK(!(flags & KILN_PLUGIN_NEEDS_PYTHON));
    kiln_context *ctx = NULL;
    CHECK_FAILS(kiln_context_create(e, NULL, &ctx), KILN_ERROR_UNSUPPORTED, "TritonAOT");
    kiln_engine_free(e);
    /* A caller that will not run code carried by an engine refuses it at load,
     * from memory and from a file alike; unknown flag bits are refused too. */
    CHECK_FAILS(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), KILN_LOAD_NO_MACHINE_CODE, &e),
                KILN_ERROR_UNSUPPORTED, "engine carries machine code (plugin kiln::TritonAOT version 1");
    const char *path = KILN_TEST_TMPDIR "/aot_machine_code.engine";
    CHECK_OK(kiln_blob_save(blob, path));
    CHECK_FAILS(kiln_engine_load_file(path, KILN_LOAD_NO_MACHINE_CODE, &e), KILN_ERROR_UNSUPPORTED,
                "KILN_LOAD_NO_MACHINE_CODE");
    CHECK_OK(kiln_engine_load_file(path, KILN_LOAD_NO_MACHINE_CODE | KILN_LOAD_NO_PLUGINS, &e));   /* inspection */
    kiln_engine_free(e);
    CHECK_FAILS(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0xffffffffu, &e),
                KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_load_memory: unknown flag bits 0xfffffff8");
    CHECK_FAILS(kiln_engine_load_file(path, 1u << 9, &e), KILN_ERROR_INVALID_ARGUMENT, "unknown flag bits 0x200");
    remove(path);
    kiln_blob_free(blob);
    kiln_value_free(f);
    kiln_network_free(net);
}

/* Replace fields[key] (a path of map keys / list indices given as strings). */
static void set_path(kiln_value *root, const char *const *path, int n, kiln_value *item) {
    kiln_value *v = root;
    for (int i = 0; i < n - 1; i++) {
        const char *k = path[i];
        v = (kiln_value *)(k[0] >= '0' && k[0] <= '9' ? kiln_value_item(v, (size_t)atoi(k))
                                                      : kiln_value_map_get(v, k));
    }
    kiln_value_map_set(v, path[n - 1], item);
}

static void expect_refused(const char *const *path, int n, kiln_value *item, const char *message) {
    kiln_tensor x, y;
    kiln_network *net = network(&x);
    aot_exprs ex = exprs_of(net);
    kiln_value *f = fields(&ex);
    set_path(f, path, n, item);
    CHECK_FAILS(kiln_network_add_plugin(net, "kiln", "TritonAOT", "1", NULL, f, 1, &x, 1, &y), KILN_ERROR_PLUGIN,
                message);
    kiln_value_free(f);
    kiln_network_free(net);
}

static void test_bad_fields(void) {
    static const char *const grid[] = {"kernels", "0", "grid"}, *warps[] = {"kernels", "0", "num_warps"},
                             *name[] = {"kernels", "0", "name"}, *inputs[] = {"inputs"}, *plugin[] = {"plugin"},
                             *expr[] = {"kernels", "0", "params", "2", "expr"},
                             *shape[] = {"outputs", "0", "shape"};
    expect_refused(grid, 3, ints(3, (int64_t[]){0, 0, 70}),
                   "AOT plugin test::Copy version 3: kernel 0 'copy_kernel' grid[2]: expression 70 does not exist");
    expect_refused(grid, 3, ints(3, (int64_t[]){0, -1, 0}), "kernel 0 'copy_kernel' grid[1] is not an expression index");
    expect_refused(expr, 5, kiln_value_int64(1000), "kernel 0 'copy_kernel' param 2: expression 1000 does not exist");
    expect_refused(shape, 3, ints(2, (int64_t[]){0, 99}), "output 0 axis 1: expression 99 does not exist");
    static const char *const old_program[] = {"exprs"};
    expect_refused(old_program, 1, kiln_value_list(), "the engine was built by an older kiln; build it again");
    expect_refused(warps, 3, kiln_value_int64(0), "kernel 0 'copy_kernel': field 'num_warps' is 0");
    expect_refused(name, 3, kiln_value_int64(1), "kernel 0: 'name'");
    expect_refused(inputs, 1, kiln_value_int64(2), "takes 2 inputs and 1 outputs, the layer has 1 and 1");
    expect_refused(plugin, 1, kiln_value_none(), "field 'plugin' must be a map");
}

/* A workspace: its size is the fields' expression (the layer's workspace at
 * build, asked again and matched at load), and a parameter may point into it
 * only when there is one. */
static void test_workspace(void) {
    static const char *const kind[] = {"kernels", "0", "params", "2", "kind"}, *ws[] = {"workspace"};
    expect_refused(kind, 5, str("workspace"),
                   "kernel 0 'copy_kernel' param 2 points into the workspace, but the fields give none");
    expect_refused(ws, 1, kiln_value_int64(500), "field 'workspace': expression 500 does not exist");
    expect_refused(ws, 1, str("big"), "field 'workspace' is not an expression index");

    kiln_tensor x, y;
    kiln_network *net = network(&x);
    aot_exprs ex = exprs_of(net);
    kiln_value *f = fields(&ex);
    set_path(f, ws, 1, kiln_value_int64(ex.n16));
    set_path(f, kind, 5, str("workspace"));   /* param 2: workspace + n*16 bytes */
    CHECK_OK(kiln_network_add_plugin(net, "kiln", "TritonAOT", "1", NULL, f, 1, &x, 1, &y));
    kiln_network_mark_output(net, y, "y", KILN_FLOAT16);
    kiln_blob *blob = NULL;
    CHECK_OK(kiln_network_build(net, NULL, &blob));
    kiln_engine *e = NULL;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    /* The layer's workspace is a tensor of n*16 bytes. */
    int found = 0;
    for (int32_t t = 0; e && t < kiln_engine_tensor_count(e); t++) {
        kiln_dtype dt;
        int32_t rank;
        kiln_expr shape[KILN_MAX_RANK];
        if (kiln_engine_tensor_info(e, t, &dt, &rank, shape) == KILN_OK && rank == 1 && shape[0] == ex.n16 &&
            dt == KILN_UINT8)
            found = 1;
    }
    CHECK(found);
    kiln_engine_free(e);
    kiln_blob_free(blob);
    kiln_value_free(f);
    kiln_network_free(net);
}

/* Every key of v (at path) is described by the creator's schema, with its type. */
static int described(const kiln_plugin_creator *c, const kiln_value *v, const char *path) {
    size_t plen = strlen(path);
    if (plen && !(plen >= 2 && !strcmp(path + plen - 2, "[]"))) {   /* a list's items are described by their keys */
        int found = 0;
        for (int32_t i = 0; i < c->field_count; i++)
            if (!strcmp(c->field_schema[i].path, path)) found = c->field_schema[i].type == kiln_value_get_type(v);
        if (!found) fprintf(stderr, "field '%s' is not in the schema (or has another type)\n", path);
        if (!found) return 0;
    }
    int ok = 1;
    if (kiln_value_get_type(v) == KILN_VALUE_MAP) {
        for (size_t i = 0; i < kiln_value_count(v); i++) {
            const char *key = kiln_value_key(v, i);
            const kiln_value *item = kiln_value_item(v, i);
            char sub[256];
            snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
            ok &= described(c, item, sub);
        }
    } else if (kiln_value_get_type(v) == KILN_VALUE_LIST) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s[]", path);
        for (size_t i = 0; i < kiln_value_count(v); i++)
            if (kiln_value_get_type(kiln_value_item(v, i)) == KILN_VALUE_MAP) ok &= described(c, kiln_value_item(v, i), sub);
    }
    return ok;
}

static void test_schema_and_views(void) {
    const kiln_plugin_creator *c = kiln_plugin_find("kiln", "TritonAOT", "1");
    REQUIRE(c != NULL && c->field_count > 0 && c->field_view_count == 2);
    kiln_tensor x;
    kiln_network *net = network(&x);
    aot_exprs ex = exprs_of(net);
    kiln_value *f = fields(&ex);
    CHECK(described(c, f, ""));
    char text[128];
    kiln_plugin_field_view_format(&c->field_views[0], f, text, sizeof text);
    CHECK(!strcmp(c->field_views[0].label, "AOT of") && !strcmp(text, "test::Copy v3"));
    CHECK(kiln_plugin_field_view_format(&c->field_views[1], f, text, sizeof text) == strlen("copy_kernel (?)"));
    CHECK(!strcmp(text, "copy_kernel (?)"));   /* no target given */
    /* A second architecture, and a kernel with a target. */
    kiln_value *k = (kiln_value *)kiln_value_item(kiln_value_map_get(f, "kernels"), 0);
    kiln_value_map_set(k, "target", str("sm_90"));
    kiln_value *img = kiln_value_map(), *images = kiln_value_list();
    kiln_value_map_set(img, "name", str("copy_kernel"));
    kiln_value_map_set(img, "target", str("sm_80"));
    kiln_value_list_append(images, img);
    kiln_value_map_set(k, "images", images);
    kiln_plugin_field_view_format(&c->field_views[1], f, text, sizeof text);
    CHECK(!strcmp(text, "copy_kernel (sm_90, sm_80)"));
    CHECK(described(c, f, ""));
    /* Cut to the buffer, NUL-terminated, the length it needed returned. */
    char small[8];
    CHECK(kiln_plugin_field_view_format(&c->field_views[1], f, small, sizeof small) == strlen(text));
    CHECK(!strcmp(small, "copy_ke"));
    /* Fields of the wrong shape give nothing, not a crash. */
    kiln_value *odd = kiln_value_map();
    kiln_value_map_set(odd, "kernels", kiln_value_int64(3));
    kiln_value_map_set(odd, "plugin", kiln_value_list());
    CHECK(kiln_plugin_field_view_format(&c->field_views[1], odd, text, sizeof text) == 0 && text[0] == 0);
    kiln_plugin_field_view_format(&c->field_views[0], odd, text, sizeof text);
    CHECK(!strcmp(text, "?::? v?"));
    kiln_value_free(odd);
    kiln_value_free(f);
    kiln_network_free(net);
}

int main(void) {
    TEST_RUN(test_schema_and_views);
    TEST_RUN(test_registered_and_shapes);
    TEST_RUN(test_bad_fields);
    TEST_RUN(test_workspace);
    return test_summary();
}
