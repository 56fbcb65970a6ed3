/* device_memory.c — the public device-memory calls, forwarded to a backend.
 *
 * Callers that run a context on a GPU need buffers on that GPU; these calls
 * give them the backend's own allocator and copies, so an application (or
 * the kiln tool) never links against CUDA.  Every device is checked here,
 * once, so the backends may trust the index they get. */
#include "backend/backend.h"
#include "core/error.h"

/* The public kind is passed straight to the backend: keep the values equal. */
_Static_assert((int)KILN_MEMCPY_HOST_TO_DEVICE == (int)KILN_COPY_HOST_TO_DEVICE &&
                   (int)KILN_MEMCPY_DEVICE_TO_HOST == (int)KILN_COPY_DEVICE_TO_HOST &&
                   (int)KILN_MEMCPY_DEVICE_TO_DEVICE == (int)KILN_COPY_DEVICE_TO_DEVICE,
               "kiln_memcpy_kind and kiln_copy_kind must agree");

/* The backend for device, or an error naming the device. */
static kiln_status device_backend(kiln_device device, const char *what, const kiln_backend_iface **out) {
    if (device.type != KILN_DEVICE_CPU && device.type != KILN_DEVICE_CUDA)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: unknown device type %d", what, (int)device.type);
    kiln_status s = kiln_backend_get(device.type, out);
    if (s) return kiln_error_prefix(s, "%s", what);
    int32_t count = (*out)->device_count();
    if (device.index < 0 || device.index >= count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: device %s:%d does not exist (%d available)", what,
                          (*out)->name, device.index, count);
    return KILN_OK;
}

kiln_status kiln_device_malloc(kiln_device device, size_t size, void **out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_device_malloc: out is NULL");
    *out = NULL;
    const kiln_backend_iface *b;
    kiln_status s = device_backend(device, "kiln_device_malloc", &b);
    if (s) return s;
    if (b->set_device && (s = b->set_device(device.index))) return s;
    /* At least one byte, so that a zero-size tensor still gets a distinct,
     * non-NULL buffer (kiln_context_set_tensor treats NULL as "unbound"). */
    return b->alloc(device.index, size ? size : 1, out);
}

void kiln_device_free(kiln_device device, void *p) {
    const kiln_backend_iface *b;
    if (!p || device_backend(device, "kiln_device_free", &b)) return;
    b->free(device.index, p);
}

kiln_status kiln_device_memcpy(kiln_device device, void *dst, const void *src, size_t size, kiln_memcpy_kind kind,
                               void *stream) {
    if (kind != KILN_MEMCPY_HOST_TO_DEVICE && kind != KILN_MEMCPY_DEVICE_TO_HOST &&
        kind != KILN_MEMCPY_DEVICE_TO_DEVICE)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_device_memcpy: unknown copy kind %d", (int)kind);
    if (size == 0) return KILN_OK;
    if (!dst || !src)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_device_memcpy: NULL pointer for a copy of %zu bytes",
                          size);
    const kiln_backend_iface *b;
    kiln_status s = device_backend(device, "kiln_device_memcpy", &b);
    if (s) return s;
    return b->copy(device.index, dst, src, size, (kiln_copy_kind)kind, stream);
}

kiln_status kiln_device_stream_create(kiln_device device, void **out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_device_stream_create: out is NULL");
    *out = NULL;
    const kiln_backend_iface *b;
    kiln_status s = device_backend(device, "kiln_device_stream_create", &b);
    if (s) return s;
    return b->stream_create ? b->stream_create(device.index, out) : KILN_OK;   /* the CPU: no streams */
}

void kiln_device_stream_destroy(kiln_device device, void *stream) {
    const kiln_backend_iface *b;
    if (!stream || device_backend(device, "kiln_device_stream_destroy", &b)) return;
    if (b->stream_destroy) b->stream_destroy(device.index, stream);
}

kiln_status kiln_device_synchronize(kiln_device device, void *stream) {
    const kiln_backend_iface *b;
    kiln_status s = device_backend(device, "kiln_device_synchronize", &b);
    if (s) return s;
    return b->synchronize(device.index, stream);
}
