/* kernel_launch.c — loading and launching compiled kernels (cubin or PTX)
 * with the CUDA driver API, for ahead-of-time plugins (kiln::TritonAOT).
 *
 * A kernel handle is the CUfunction itself: its module is found again with
 * cuFuncGetModule when it is unloaded, so this file allocates nothing.
 * Modules belong to the device's primary context, the one the CUDA runtime
 * uses: cudaSetDevice makes it current, and the runtime's enqueue calls
 * set_device before running layers, so kernel_launch (the hot path) does no
 * device switching of its own. */
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>

#include "backend/cuda/cuda_ops.h"

/* KILN_OK for CUDA_SUCCESS; else KILN_ERROR_BACKEND "cuda: <what>: <name>: <message>". */
static kiln_status drv_check(CUresult r, const char *what) {
    if (r == CUDA_SUCCESS) return KILN_OK;
    const char *name = NULL, *msg = NULL;
    if (cuGetErrorName(r, &name) != CUDA_SUCCESS || !name) name = "CUDA_ERROR_?";
    if (cuGetErrorString(r, &msg) != CUDA_SUCCESS || !msg) msg = "unknown error";
    return kiln_cuda_fail(KILN_ERROR_BACKEND, "cuda: %s: %s (%d): %s", what, name, (int)r, msg);
}

/* Make device's primary context current on this thread (cudaFree(0) forces
 * the runtime to create it if nothing has yet). */
static kiln_status make_current(int32_t device, const char *what) {
    kiln_status st = kiln_cuda_check(cudaSetDevice(device), what);
    if (!st) st = kiln_cuda_check(cudaFree(NULL), what);
    return st;
}

kiln_status kiln_cuda_kernel_load(int32_t device, const void *image, size_t size, const char *name,
                                  uint32_t shared, void **kernel) {
    if (!kernel) return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: kernel_load: NULL kernel");
    *kernel = NULL;
    if (!image || size == 0 || !name || !name[0])
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: kernel_load: empty image or name");
    int previous = 0;
    kiln_status st = kiln_cuda_check(cudaGetDevice(&previous), "kernel_load: cudaGetDevice");
    if (st) return st;
    if ((st = make_current(device, "kernel_load: cudaSetDevice"))) return st;

    char what[320];
    CUmodule module = NULL;
    CUfunction fn = NULL;
    /* cuModuleLoadData takes cubins and NUL-terminated PTX alike; the caller
     * checks that PTX is terminated (size counts the NUL). */
    snprintf(what, sizeof what, "loading the module of kernel '%.200s' (cuModuleLoadData, %zu bytes)", name, size);
    st = drv_check(cuModuleLoadData(&module, image), what);
    if (!st) {
        snprintf(what, sizeof what, "finding kernel '%.200s' in its module (cuModuleGetFunction)", name);
        st = drv_check(cuModuleGetFunction(&fn, module, name), what);
    }
    if (!st && shared > 48u * 1024u) {
        snprintf(what, sizeof what, "allowing %u bytes of dynamic shared memory for kernel '%.200s'", shared, name);
        st = drv_check(cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)shared), what);
    }
    if (st && module) (void)cuModuleUnload(module);
    if (!st) *kernel = (void *)fn;
    if (previous != device && cudaSetDevice(previous) != cudaSuccess) (void)cudaGetLastError();
    return st;
}

kiln_status kiln_cuda_kernel_launch(int32_t device, void *kernel, const uint32_t grid[3], const uint32_t block[3],
                                    uint32_t shared, void **params, void *stream) {
    if (!kernel || !grid || !block)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: kernel_launch: NULL argument");
    CUresult r = cuLaunchKernel((CUfunction)kernel, grid[0], grid[1], grid[2], block[0], block[1], block[2], shared,
                                (CUstream)stream, params, NULL);
    if (r == CUDA_SUCCESS) return KILN_OK;
    char what[160];
    snprintf(what, sizeof what, "cuLaunchKernel(grid %u x %u x %u, block %u, shared %u) on device %d", grid[0],
             grid[1], grid[2], block[0], shared, (int)device);
    return drv_check(r, what);
}

void kiln_cuda_kernel_unload(int32_t device, void *kernel) {
    if (!kernel) return;
    int previous = 0;
    if (cudaGetDevice(&previous) != cudaSuccess || make_current(device, "kernel_unload") != KILN_OK) {
        (void)cudaGetLastError();
        return;
    }
    CUmodule module = NULL;
    if (cuFuncGetModule(&module, (CUfunction)kernel) == CUDA_SUCCESS && module) (void)cuModuleUnload(module);
    if (previous != device && cudaSetDevice(previous) != cudaSuccess) (void)cudaGetLastError();
}
