/* nccl_abi.h — the part of NCCL's C ABI (2.x) the CUDA backend calls.
 *
 * kiln does not build against nccl.h: the module loads libnccl.so.2 at run
 * time (collective.c), so a machine without NCCL builds kiln and runs
 * single-GPU engines.  These declarations are kiln's own, written from the
 * values NCCL's public header documents and keeps stable across 2.x; only
 * what collective.c uses is here.  Function types are pointers resolved with
 * dlsym. */
#ifndef KILN_CUDA_NCCL_ABI_H
#define KILN_CUDA_NCCL_ABI_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#define KILN_NCCL_ID_BYTES 128
typedef struct { char internal[KILN_NCCL_ID_BYTES]; } kiln_nccl_id;   /* ncclUniqueId */
typedef struct kiln_nccl_comm *kiln_nccl_comm_t;                        /* ncclComm_t */

/* ncclResult_t */
typedef enum {
    KILN_NCCL_SUCCESS              = 0,
    KILN_NCCL_UNHANDLED_CUDA_ERROR = 1,
    KILN_NCCL_SYSTEM_ERROR         = 2,
    KILN_NCCL_INTERNAL_ERROR       = 3,
    KILN_NCCL_INVALID_ARGUMENT     = 4,
    KILN_NCCL_INVALID_USAGE        = 5,
    KILN_NCCL_REMOTE_ERROR         = 6,
    KILN_NCCL_IN_PROGRESS          = 7,
} kiln_nccl_result;

/* ncclRedOp_t: the order of kiln_collective_op (static assertions in collective.c). */
typedef enum { KILN_NCCL_SUM = 0, KILN_NCCL_PROD = 1, KILN_NCCL_MAX = 2, KILN_NCCL_MIN = 3 } kiln_nccl_op;

/* ncclDataType_t */
typedef enum {
    KILN_NCCL_INT8     = 0,
    KILN_NCCL_UINT8    = 1,
    KILN_NCCL_INT32    = 2,
    KILN_NCCL_INT64    = 4,
    KILN_NCCL_FLOAT16  = 6,
    KILN_NCCL_FLOAT32  = 7,
    KILN_NCCL_BFLOAT16 = 9,   /* NCCL 2.10 and later */
} kiln_nccl_dtype;

/* ncclConfig_t as NCCL 2.14 first defined it: NCCL reads `size` bytes and
 * `version` says which fields the caller knows, so this prefix of the
 * current struct is a valid config for every later 2.x. */
#define KILN_NCCL_CONFIG_MAGIC   0xcafebeefu      /* NCCL_API_MAGIC */
#define KILN_NCCL_CONFIG_VERSION 21400u           /* NCCL_VERSION(2, 14, 0) */
typedef struct kiln_nccl_config {
    size_t       size;
    unsigned int magic;
    unsigned int version;
    int          blocking;                        /* 0: calls return ncclInProgress instead of waiting */
} kiln_nccl_config;

typedef kiln_nccl_result (*kiln_nccl_get_unique_id_fn)(kiln_nccl_id *id);
typedef kiln_nccl_result (*kiln_nccl_comm_init_rank_config_fn)(kiln_nccl_comm_t *comm, int nranks, kiln_nccl_id id,
                                                               int rank, kiln_nccl_config *config);
typedef kiln_nccl_result (*kiln_nccl_all_reduce_fn)(const void *send, void *recv, size_t count, kiln_nccl_dtype dtype,
                                                    kiln_nccl_op op, kiln_nccl_comm_t comm, cudaStream_t stream);
typedef kiln_nccl_result (*kiln_nccl_all_gather_fn)(const void *send, void *recv, size_t send_count,
                                                    kiln_nccl_dtype dtype, kiln_nccl_comm_t comm, cudaStream_t stream);
typedef kiln_nccl_result (*kiln_nccl_reduce_scatter_fn)(const void *send, void *recv, size_t recv_count,
                                                        kiln_nccl_dtype dtype, kiln_nccl_op op, kiln_nccl_comm_t comm,
                                                        cudaStream_t stream);
typedef kiln_nccl_result (*kiln_nccl_comm_fn)(kiln_nccl_comm_t comm);   /* ncclCommDestroy, ncclCommAbort */
typedef kiln_nccl_result (*kiln_nccl_comm_get_async_error_fn)(kiln_nccl_comm_t comm, kiln_nccl_result *async_error);
typedef const char *(*kiln_nccl_get_error_string_fn)(kiln_nccl_result result);
typedef const char *(*kiln_nccl_get_last_error_fn)(kiln_nccl_comm_t comm);

#endif
