/* backend_registry.c — finding the backend for a device type.
 *
 * The CPU backend is built in.  The CUDA backend is libkiln-cuda.so, loaded
 * on first use so that libkiln itself never links against CUDA and a machine
 * without it still loads kiln.  The library is looked for
 *   1. at the path in the environment variable KILN_CUDA_BACKEND, if set
 *      (and then only there: an explicit choice that fails is an error);
 *   2. next to the file libkiln was loaded from (a wheel ships both in one
 *      directory, which need not be on the loader's search path);
 *   3. by plain name, through the dynamic loader's search path.
 * Its init function gets a kiln_backend_host table and returns its own
 * function table, which is refused unless its api_version is ours.  The
 * outcome, success or failure with its message, is decided once per process
 * and cached: loading is costly, and a GPU does not appear later. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"

#define CUDA_LIBRARY_NAME "libkiln-cuda.so"

static const kiln_backend_host host = {
    .api_version = KILN_BACKEND_API_VERSION,
    .set_error   = kiln_error,
};

static pthread_once_t            cuda_once = PTHREAD_ONCE_INIT;
static const kiln_backend_iface *cuda_iface;            /* NULL: not available */
static kiln_status               cuda_status;
static char                      cuda_message[2048];    /* why not, when cuda_iface is NULL */

/* Append a formatted line to buf (bounded; truncation is acceptable). */
static void append(char *buf, size_t size, const char *fmt, const char *a, const char *b) {
    size_t len = strlen(buf);
    if (len + 1 < size) snprintf(buf + len, size - len, fmt, a, b);
}

/* dlopen path; on failure add "path: dlerror" to tried and return NULL. */
static void *try_open(const char *path, char *tried, size_t tried_size) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        append(tried, tried_size, "%s%s", tried[0] ? "; " : "", why ? why : path);
    }
    return handle;
}

static void *open_cuda_library(char *path, size_t path_size) {
    char tried[1536] = "";
    const char *env = getenv("KILN_CUDA_BACKEND");
    if (env && env[0]) {
        snprintf(path, path_size, "%s", env);
        void *handle = try_open(env, tried, sizeof tried);
        if (!handle)
            cuda_status = kiln_error(KILN_ERROR_UNSUPPORTED,
                                     "CUDA backend unavailable: cannot load KILN_CUDA_BACKEND=%s: %s", env, tried);
        return handle;
    }
    /* The directory of the object that holds this function: libkiln.so, or
     * the executable when kiln is linked statically. */
    Dl_info info;
    if (dladdr((void *)kiln_backend_get, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash) {
            int dir_len = (int)(slash - info.dli_fname);
            int n = snprintf(path, path_size, "%.*s/%s", dir_len, info.dli_fname, CUDA_LIBRARY_NAME);
            if (n > 0 && (size_t)n < path_size) {
                void *handle = try_open(path, tried, sizeof tried);
                if (handle) return handle;
            }
        }
    }
    snprintf(path, path_size, "%s", CUDA_LIBRARY_NAME);
    void *handle = try_open(CUDA_LIBRARY_NAME, tried, sizeof tried);
    if (!handle)
        cuda_status = kiln_error(KILN_ERROR_UNSUPPORTED, "CUDA backend unavailable: cannot load %s (%s)",
                                 CUDA_LIBRARY_NAME, tried);
    return handle;
}

static void load_cuda_backend(void) {
    char path[1024];
    void *handle = open_cuda_library(path, sizeof path);
    if (!handle) goto failed;

    dlerror();
    /* POSIX guarantees that a dlsym result converts to a function pointer. */
    kiln_backend_init_fn init = (kiln_backend_init_fn)dlsym(handle, KILN_BACKEND_CUDA_INIT_SYMBOL);
    if (!init) {
        const char *why = dlerror();
        cuda_status = kiln_error(KILN_ERROR_UNSUPPORTED, "CUDA backend unavailable: %s has no %s: %s", path,
                                 KILN_BACKEND_CUDA_INIT_SYMBOL, why ? why : "symbol is NULL");
        dlclose(handle);
        goto failed;
    }
    /* The init function has run code (CUDA's own setup) from here on, so the
     * library stays loaded even when it is refused. */
    uint64_t serial = kiln_error_serial();
    const kiln_backend_iface *iface = init(&host);
    /* The backend reports why through host.set_error, into the last error;
     * it is copied out before being formatted into the new message. */
    char why[1024];
    if (!iface) {
        snprintf(why, sizeof why, "%s", kiln_error_serial() != serial ? kiln_last_error() : "");
        cuda_status = kiln_error(KILN_ERROR_UNSUPPORTED, "CUDA backend unavailable: %s: %s", path,
                                 why[0] ? why : "its init function failed");
        goto failed;
    }
    if (iface->api_version != KILN_BACKEND_API_VERSION) {
        cuda_status = kiln_error(KILN_ERROR_UNSUPPORTED,
                                 "CUDA backend unavailable: %s has backend API version %u, this libkiln needs %u "
                                 "(install matching versions)", path, (unsigned)iface->api_version,
                                 (unsigned)KILN_BACKEND_API_VERSION);
        goto failed;
    }
    if (!iface->device_count || !iface->alloc || !iface->free || !iface->copy || !iface->run_layer ||
        !iface->supports_op || !iface->synchronize) {
        cuda_status = kiln_error(KILN_ERROR_UNSUPPORTED, "CUDA backend unavailable: %s lacks required functions",
                                 path);
        goto failed;
    }
    serial = kiln_error_serial();
    if (iface->device_count() <= 0) {
        snprintf(why, sizeof why, "%s", kiln_error_serial() != serial ? kiln_last_error() : "");
        cuda_status = kiln_error(KILN_ERROR_UNSUPPORTED, "CUDA backend unavailable: no CUDA device%s%s",
                                 why[0] ? ": " : "", why);
        goto failed;
    }
    cuda_iface = iface;
    cuda_status = KILN_OK;
    return;
failed:
    snprintf(cuda_message, sizeof cuda_message, "%s", kiln_last_error());
}

/* The CUDA backend or NULL (why: cuda_status and cuda_message).  The first
 * call loads it and may set this thread's last error on the way, as any kiln
 * call may (kiln.h: the message is valid until the next kiln call). */
static const kiln_backend_iface *cuda_backend(void) {
    pthread_once(&cuda_once, load_cuda_backend);
    return cuda_iface;
}

kiln_status kiln_backend_get(kiln_device_type type, const kiln_backend_iface **out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_backend_get: NULL output pointer");
    *out = NULL;
    switch (type) {
    case KILN_DEVICE_CPU:
        *out = kiln_backend_cpu();
        return KILN_OK;
    case KILN_DEVICE_CUDA:
        if (!(*out = cuda_backend())) return kiln_error(cuda_status, "%s", cuda_message);
        return KILN_OK;
    }
    return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "unknown device type %d", (int)type);
}

bool kiln_cuda_available(void) { return cuda_backend() != NULL; }

int32_t kiln_cuda_device_count(void) {
    const kiln_backend_iface *iface = cuda_backend();
    return iface ? iface->device_count() : 0;
}
