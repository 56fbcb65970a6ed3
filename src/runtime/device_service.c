/* device_service.c — the device service plugins get with every enqueue
 * (kiln/plugin.h), implemented on the context's backend.
 *
 * A plugin never includes a backend header: it loads, launches and frees
 * through these calls, which check what they are given (the plugin is
 * trusted code, but a wrong call should be an error, not a driver crash) and
 * forward to the backend's kernel_load / kernel_launch / kernel_unload and
 * its allocator.  The service lives in the context, so it outlives the
 * plugin instances the context destroys. */
#include <string.h>

#include "core/error.h"
#include "runtime/device_service.h"

static const kiln_backend_iface *backend_of(const kiln_device_service *svc) {
    return svc ? (const kiln_backend_iface *)svc->runtime : NULL;
}

/* A cubin or fatbin, or PTX that ends within size: the driver reads PTX up
 * to its NUL, so an unterminated image would be read past its end. */
static int image_bounded(const uint8_t *p, size_t size) {
    static const uint8_t elf[4] = {0x7f, 'E', 'L', 'F'}, fatbin[4] = {0x50, 0xed, 0x55, 0xba};
    if (size >= 4 && (!memcmp(p, elf, 4) || !memcmp(p, fatbin, 4))) return 1;
    return memchr(p, 0, size) != NULL;
}

static kiln_status service_kernel_load(const kiln_device_service *svc, const void *image, size_t size,
                                       const char *name, uint32_t shared_bytes, kiln_device_kernel **kernel) {
    const kiln_backend_iface *b = backend_of(svc);
    if (!b || !kernel) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "device service: kernel_load: NULL argument");
    *kernel = NULL;
    if (!b->kernel_load || !b->kernel_launch || !b->kernel_unload)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "the %s backend cannot load compiled kernels", b->name);
    if (!image || !size || !name || !name[0])
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "device service: kernel_load: empty image or name");
    if (!image_bounded(image, size))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "device service: kernel_load: kernel '%.200s': the image is "
                          "neither a cubin nor a fatbin, and as PTX it has no NUL within its %zu bytes", name, size);
    void *k = NULL;
    kiln_status s = b->kernel_load(svc->device.index, image, size, name, shared_bytes, &k);
    if (!s) *kernel = k;
    return s;
}

static kiln_status service_kernel_launch(const kiln_device_service *svc, kiln_device_kernel *kernel,
                                         const uint32_t grid[3], const uint32_t block[3], uint32_t shared_bytes,
                                         void **args, void *stream) {
    const kiln_backend_iface *b = backend_of(svc);
    if (!b || !kernel || !grid || !block)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "device service: kernel_launch: NULL argument");
    if (!b->kernel_launch)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "the %s backend cannot launch compiled kernels", b->name);
    return b->kernel_launch(svc->device.index, kernel, grid, block, shared_bytes, args, stream);
}

static void service_kernel_unload(const kiln_device_service *svc, kiln_device_kernel *kernel) {
    const kiln_backend_iface *b = backend_of(svc);
    if (b && kernel && b->kernel_unload) b->kernel_unload(svc->device.index, kernel);
}

static kiln_status service_alloc(const kiln_device_service *svc, size_t size, void **out) {
    const kiln_backend_iface *b = backend_of(svc);
    if (!b || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "device service: alloc: NULL argument");
    *out = NULL;
    return b->alloc(svc->device.index, size ? size : 1, out);
}

static void service_free(const kiln_device_service *svc, void *p) {
    const kiln_backend_iface *b = backend_of(svc);
    if (b && p) b->free(svc->device.index, p);
}

static kiln_status service_synchronize(const kiln_device_service *svc, void *stream) {
    const kiln_backend_iface *b = backend_of(svc);
    if (!b) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "device service: synchronize: NULL service");
    return b->synchronize(svc->device.index, stream);
}

void kiln_device_service_init(kiln_device_service *svc, const kiln_backend_iface *backend, kiln_device device) {
    *svc = (kiln_device_service){
        .version       = KILN_DEVICE_SERVICE_VERSION,
        .device        = device,
        .runtime       = backend,
        .kernel_load   = service_kernel_load,
        .kernel_launch = service_kernel_launch,
        .kernel_unload = service_kernel_unload,
        .alloc         = service_alloc,
        .free          = service_free,
        .synchronize   = service_synchronize,
    };
}
