/* test_device_service.c — what enqueue hands a plugin besides its tensors:
 * the values of the engine's expressions (the ones its shape rule built are
 * readable by id) and the context's device service.  On the CPU the service
 * allocates and synchronizes, and refuses to load machine code by name; on a
 * fake backend it forwards loads and launches, and refuses an image that is
 * neither a cubin nor terminated PTX before the driver could read past it. */
#include <stdlib.h>
#include <string.h>

#include "kiln/kiln.h"
#include "kiln/plugin.h"
#include "runtime/device_service.h"
#include "test.h"

static kiln_expr seen_rows = KILN_EXPR_INVALID;   /* what infer_shapes returned for axis 0 */
static int enqueues, service_checked;

static kiln_status dev_create(const kiln_plugin_creator *c, const kiln_value *fields, void **instance) {
    (void)c, (void)fields;
    *instance = NULL;
    return KILN_OK;
}

static kiln_status dev_shapes(void *instance, kiln_exprs *pool, int32_t ni, const kiln_shape_expr *in, int32_t no,
                              kiln_shape_expr *out) {
    (void)instance, (void)pool, (void)ni, (void)no;
    out[0] = in[0];
    seen_rows = in[0].dims[0];
    return KILN_OK;
}

static kiln_status dev_enqueue(void *instance, const kiln_plugin_launch *l) {
    (void)instance;
    enqueues++;
    /* The rows expression, evaluated by the runtime, is the input's size. */
    if (seen_rows < 0 || seen_rows >= l->expr_count || l->expr_values[seen_rows] != l->inputs[0].dims[0]) {
        kiln_plugin_set_error("expression %d: no value, or not the input's rows", (int)seen_rows);
        return KILN_ERROR_INVALID_ARGUMENT;
    }
    const kiln_device_service *dev = l->device_service;
    if (!dev || dev->version != KILN_DEVICE_SERVICE_VERSION || dev->device.type != KILN_DEVICE_CPU) {
        kiln_plugin_set_error("no device service for the CPU");
        return KILN_ERROR_INVALID_ARGUMENT;
    }
    void *scratch = NULL;
    kiln_status s = dev->alloc(dev, 256, &scratch);
    if (s) return s;
    memset(scratch, 0, 256);
    dev->free(dev, scratch);
    dev->free(dev, NULL);
    if ((s = dev->synchronize(dev, l->stream))) return s;
    kiln_device_kernel *k = (kiln_device_kernel *)&enqueues;
    s = dev->kernel_load(dev, "\x7f" "ELF", 4, "k", 0, &k);
    service_checked = s == KILN_ERROR_UNSUPPORTED && k == NULL &&
                      strstr(kiln_last_error(), "the cpu backend cannot load compiled kernels") != NULL;
    dev->kernel_unload(dev, NULL);
    size_t bytes = kiln_dtype_size(l->inputs[0].dtype);
    for (int32_t a = 0; a < l->inputs[0].rank; a++) bytes *= (size_t)l->inputs[0].dims[a];
    memcpy(l->outputs[0].data, l->inputs[0].data, bytes);
    return KILN_OK;
}

static const kiln_plugin_creator dev_creator = {
    .abi_version = KILN_PLUGIN_ABI_VERSION,
    .plugin_namespace = "test", .name = "DeviceService", .version = "1",
    .flags = KILN_PLUGIN_SUPPORTS_CPU, .output_count = 1,
    .create = dev_create, .infer_shapes = dev_shapes, .enqueue = dev_enqueue,
};

static void test_enqueue_gets_values_and_service(void) {
    CHECK_OK(kiln_plugin_register(&dev_creator));
    kiln_network *net;
    CHECK_OK(kiln_network_create(&net));
    kiln_dim_range r = {1, 4, 16};
    kiln_expr n, shape[2];
    CHECK_OK(kiln_network_add_dim(net, "n", &r, 1, &n));
    shape[0] = n;
    shape[1] = kiln_expr_const(kiln_network_exprs(net), 3);
    kiln_tensor x, y;
    CHECK_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, shape, &x));
    kiln_value *fields = kiln_value_map();
    CHECK_OK(kiln_network_add_plugin(net, "test", "DeviceService", "1", NULL, fields, 1, &x, 1, &y));
    CHECK_OK(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    kiln_blob *blob = NULL;
    CHECK_OK(kiln_network_build(net, NULL, &blob));
    kiln_engine *e = NULL;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    kiln_context *ctx = NULL;
    CHECK_OK(kiln_context_create(e, NULL, &ctx));
    float in[5 * 3], out[5 * 3];
    for (int i = 0; i < 15; i++) in[i] = (float)i;
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, (int64_t[]){5, 3}));
    CHECK_OK(kiln_context_set_tensor(ctx, "x", in));
    CHECK_OK(kiln_context_set_tensor(ctx, "y", out));
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    CHECK(enqueues == 1 && service_checked);
    CHECK(memcmp(in, out, sizeof in) == 0);
    kiln_context_free(ctx);
    kiln_engine_free(e);
    kiln_blob_free(blob);
    kiln_value_free(fields);
    kiln_network_free(net);
    CHECK_OK(kiln_plugin_deregister("test", "DeviceService", "1"));
}

/* A backend with kernel calls that record what reaches them. */
static int fake_loads, fake_launches, fake_unloads;
static kiln_status fake_load(int32_t device, const void *image, size_t size, const char *name, uint32_t shared,
                             void **kernel) {
    (void)image, (void)size, (void)name, (void)shared;
    fake_loads++;
    *kernel = &fake_loads;
    return device == 3 ? KILN_OK : KILN_ERROR_INVALID_ARGUMENT;
}
static kiln_status fake_launch(int32_t device, void *kernel, const uint32_t grid[3], const uint32_t block[3],
                               uint32_t shared, void **params, void *stream) {
    (void)grid, (void)block, (void)shared, (void)params, (void)stream;
    fake_launches++;
    return device == 3 && kernel == &fake_loads ? KILN_OK : KILN_ERROR_INVALID_ARGUMENT;
}
static void fake_unload(int32_t device, void *kernel) {
    if (device == 3 && kernel == &fake_loads) fake_unloads++;
}

static void test_service_forwards_and_checks_images(void) {
    kiln_backend_iface fake = *kiln_backend_cpu();
    fake.name = "fake";
    fake.kernel_load = fake_load;
    fake.kernel_launch = fake_launch;
    fake.kernel_unload = fake_unload;
    kiln_device_service svc;
    kiln_device_service_init(&svc, &fake, (kiln_device){KILN_DEVICE_CUDA, 3});
    kiln_device_kernel *k = NULL;
    CHECK_OK(svc.kernel_load(&svc, "\x7f" "ELF....", 8, "kern", 0, &k));
    CHECK(k != NULL && fake_loads == 1);
    CHECK_OK(svc.kernel_load(&svc, ".version 8.0\0", 13, "kern", 0, &k));   /* terminated PTX */
    CHECK(fake_loads == 2);
    CHECK_FAILS(svc.kernel_load(&svc, ".version 8.0", 12, "kern", 0, &k), KILN_ERROR_INVALID_ARGUMENT,
                "kernel 'kern': the image is neither a cubin nor a fatbin, and as PTX it has no NUL within its 12 bytes");
    CHECK(k == NULL && fake_loads == 2);
    CHECK_FAILS(svc.kernel_load(&svc, "\x7f" "ELF", 4, "", 0, &k), KILN_ERROR_INVALID_ARGUMENT, "empty image or name");
    CHECK_OK(svc.kernel_load(&svc, "\x7f" "ELF", 4, "kern", 0, &k));
    const uint32_t grid[3] = {1, 1, 1}, block[3] = {32, 1, 1};
    CHECK_OK(svc.kernel_launch(&svc, k, grid, block, 0, NULL, NULL));
    CHECK(fake_launches == 1);
    CHECK_FAILS(svc.kernel_launch(&svc, NULL, grid, block, 0, NULL, NULL), KILN_ERROR_INVALID_ARGUMENT, "NULL");
    svc.kernel_unload(&svc, k);
    CHECK(fake_unloads == 1);
}

int main(void) {
    TEST_RUN(test_enqueue_gets_values_and_service);
    TEST_RUN(test_service_forwards_and_checks_images);
    return test_summary();
}
