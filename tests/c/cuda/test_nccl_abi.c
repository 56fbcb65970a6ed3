/* test_nccl_abi.c — kiln's own NCCL declarations (src/backend/cuda/nccl_abi.h)
 * against NCCL's nccl.h, where a build machine has one: the id's size, the
 * result, reduction and dtype numbers, the config prefix's layout and magic.
 * Built only when CMake finds nccl.h (kiln itself never includes it); at run
 * time it also calls ncclGetUniqueId through kiln's function type when
 * libnccl.so.2 can be loaded ($KILN_NCCL_LIBRARY, else the library path),
 * which needs no GPU. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <nccl.h>

#include "backend/cuda/nccl_abi.h"
#include "test.h"

_Static_assert(sizeof(ncclUniqueId) == sizeof(kiln_nccl_id) && NCCL_UNIQUE_ID_BYTES == KILN_NCCL_ID_BYTES, "id");
_Static_assert(ncclSuccess == (int)KILN_NCCL_SUCCESS && ncclUnhandledCudaError == (int)KILN_NCCL_UNHANDLED_CUDA_ERROR &&
                   ncclSystemError == (int)KILN_NCCL_SYSTEM_ERROR && ncclInternalError == (int)KILN_NCCL_INTERNAL_ERROR &&
                   ncclInvalidArgument == (int)KILN_NCCL_INVALID_ARGUMENT &&
                   ncclInvalidUsage == (int)KILN_NCCL_INVALID_USAGE && ncclRemoteError == (int)KILN_NCCL_REMOTE_ERROR &&
                   ncclInProgress == (int)KILN_NCCL_IN_PROGRESS,
               "ncclResult_t");
_Static_assert(sizeof(ncclResult_t) == sizeof(kiln_nccl_result) && sizeof(ncclRedOp_t) == sizeof(kiln_nccl_op) &&
                   sizeof(ncclDataType_t) == sizeof(kiln_nccl_dtype),
               "enum sizes");
_Static_assert(ncclSum == (int)KILN_NCCL_SUM && ncclProd == (int)KILN_NCCL_PROD && ncclMax == (int)KILN_NCCL_MAX &&
                   ncclMin == (int)KILN_NCCL_MIN,
               "ncclRedOp_t");
_Static_assert(ncclInt8 == (int)KILN_NCCL_INT8 && ncclUint8 == (int)KILN_NCCL_UINT8 && ncclInt32 == (int)KILN_NCCL_INT32 &&
                   ncclInt64 == (int)KILN_NCCL_INT64 && ncclFloat16 == (int)KILN_NCCL_FLOAT16 &&
                   ncclFloat32 == (int)KILN_NCCL_FLOAT32 && ncclBfloat16 == (int)KILN_NCCL_BFLOAT16,
               "ncclDataType_t");
_Static_assert(offsetof(ncclConfig_t, size) == offsetof(kiln_nccl_config, size) &&
                   offsetof(ncclConfig_t, magic) == offsetof(kiln_nccl_config, magic) &&
                   offsetof(ncclConfig_t, version) == offsetof(kiln_nccl_config, version) &&
                   offsetof(ncclConfig_t, blocking) == offsetof(kiln_nccl_config, blocking) &&
                   sizeof(kiln_nccl_config) <= sizeof(ncclConfig_t),
               "ncclConfig_t prefix");
_Static_assert(NCCL_VERSION(2, 14, 0) == KILN_NCCL_CONFIG_VERSION, "config version");

static void test_magic(void) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    CHECK(config.magic == KILN_NCCL_CONFIG_MAGIC);
}

static void test_unique_id_through_kiln_types(void) {
    const char *path = getenv("KILN_NCCL_LIBRARY");
    void *lib = dlopen(path && *path ? path : "libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        printf("skipped: cannot load libnccl.so.2 (%s)\n", dlerror());
        return;
    }
    kiln_nccl_get_unique_id_fn get_unique_id;
    kiln_nccl_get_error_string_fn error_string;
    *(void **)&get_unique_id = dlsym(lib, "ncclGetUniqueId");
    *(void **)&error_string = dlsym(lib, "ncclGetErrorString");
    REQUIRE(get_unique_id && error_string);
    kiln_nccl_id a, b;
    CHECK(get_unique_id(&a) == KILN_NCCL_SUCCESS && get_unique_id(&b) == KILN_NCCL_SUCCESS);
    CHECK(memcmp(&a, &b, sizeof a) != 0);
    CHECK(strstr(error_string(KILN_NCCL_IN_PROGRESS), "progress") != NULL);
    CHECK(strstr(error_string(KILN_NCCL_REMOTE_ERROR), "remote") != NULL);
    /* Not dlclose'd: each id started NCCL's bootstrap root thread, which runs
     * NCCL's code until the process ends (kiln never unloads NCCL either). */
}

int main(void) {
    TEST_RUN(test_magic);
    TEST_RUN(test_unique_id_through_kiln_types);
    return test_summary();
}
