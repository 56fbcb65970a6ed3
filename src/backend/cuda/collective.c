/* collective.c — collective layers and communicators on CUDA, over NCCL.
 *
 * NCCL is loaded at run time (dlopen $KILN_NCCL_LIBRARY when set, else
 * "libnccl.so.2", else "libnccl.so") the
 * first time a communicator is asked for, and only the functions below are
 * resolved, from kiln's own declarations (nccl_abi.h): kiln builds without
 * NCCL, and a machine without it runs every engine whose world size is 1.
 *
 * Communicators are non-blocking (ncclConfig_t.blocking = 0): joining and any
 * call that answers ncclInProgress are polled with ncclCommGetAsyncError
 * until done, a peer's failure, or $KILN_NCCL_TIMEOUT_S seconds; a failure
 * aborts the communicator (ncclCommAbort) and names this rank, so a dead peer
 * is an error, never an endless wait.  A communicator that failed stays
 * failed: the context must be made again.
 *
 * Collectives run on the context's stream, so a CUDA graph capture records
 * them with the other layers.  NCCL's collectives are flat: all_gather along
 * axis 0 and reduce_scatter along axis 0 need no copy; along an inner axis
 * the ranks' blocks are interleaved, which takes a strided copy through a
 * scratch buffer kept by the communicator (cudaMemcpy2DAsync, one per rank).
 * The scratch grows outside captures: a capture follows an eager run of the
 * same shapes, which has sized it. */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime, nanosleep */
#include <dlfcn.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/nccl_abi.h"
#include "ops/op_list.h"

_Static_assert(KILN_NCCL_SUM == (int)KILN_COLLECTIVE_SUM && KILN_NCCL_PROD == (int)KILN_COLLECTIVE_PROD &&
                   KILN_NCCL_MAX == (int)KILN_COLLECTIVE_MAX && KILN_NCCL_MIN == (int)KILN_COLLECTIVE_MIN,
               "kiln_collective_op numbers are NCCL's ncclRedOp_t");
_Static_assert(sizeof(kiln_nccl_id) == KILN_COMM_ID_BYTES, "a kiln_comm_id is an ncclUniqueId");

/* ---- loading NCCL ----------------------------------------------------------- */

static struct {
    void                              *library;
    const char                        *library_name;
    kiln_nccl_get_unique_id_fn         get_unique_id;
    kiln_nccl_comm_init_rank_config_fn comm_init_rank_config;
    kiln_nccl_all_reduce_fn            all_reduce;
    kiln_nccl_all_gather_fn            all_gather;
    kiln_nccl_reduce_scatter_fn        reduce_scatter;
    kiln_nccl_comm_fn                  comm_finalize, comm_destroy, comm_abort;
    kiln_nccl_comm_get_async_error_fn  comm_get_async_error;
    kiln_nccl_get_error_string_fn      get_error_string;
    kiln_nccl_get_last_error_fn        get_last_error;
    char                               failure[512];   /* why loading failed; "" when it worked */
} nccl;

static pthread_once_t nccl_once = PTHREAD_ONCE_INIT;

static void *resolve(const char *name) {
    void *f = dlsym(nccl.library, name);
    if (!f && !nccl.failure[0])
        snprintf(nccl.failure, sizeof nccl.failure, "%s has no %s (kiln needs NCCL 2.14 or later)", nccl.library_name,
                 name);
    return f;
}

static void load_nccl(void) {
    /* $KILN_NCCL_LIBRARY first when set; a process that has loaded NCCL
     * already (torch does) gets that copy back for "libnccl.so.2". */
    const char *chosen = getenv("KILN_NCCL_LIBRARY");
    if (chosen && chosen[0]) {   /* the caller's choice, or nothing */
        nccl.library = dlopen(chosen, RTLD_NOW | RTLD_LOCAL);
        if (!nccl.library) {
            snprintf(nccl.failure, sizeof nccl.failure, "cannot load NCCL from KILN_NCCL_LIBRARY=%s: %s", chosen,
                     dlerror());
            return;
        }
        nccl.library_name = chosen;
    }
    const char *names[] = {"libnccl.so.2", "libnccl.so"};
    char first_error[256] = "";
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !nccl.library; i++) {
        nccl.library = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (nccl.library) nccl.library_name = names[i];
        else if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", dlerror());
    }
    if (!nccl.library) {
        snprintf(nccl.failure, sizeof nccl.failure, "cannot load NCCL (libnccl.so.2): %s; install NCCL 2.14 or "
                 "later (e.g. the nvidia-nccl-cu12 wheel, or libnccl2) and put it on the library path",
                 first_error[0] ? first_error : "not found");
        return;
    }
    /* Function pointers from dlsym: POSIX guarantees the conversion. */
    *(void **)&nccl.get_unique_id = resolve("ncclGetUniqueId");
    *(void **)&nccl.comm_init_rank_config = resolve("ncclCommInitRankConfig");
    *(void **)&nccl.all_reduce = resolve("ncclAllReduce");
    *(void **)&nccl.all_gather = resolve("ncclAllGather");
    *(void **)&nccl.reduce_scatter = resolve("ncclReduceScatter");
    *(void **)&nccl.comm_finalize = resolve("ncclCommFinalize");
    *(void **)&nccl.comm_destroy = resolve("ncclCommDestroy");
    *(void **)&nccl.comm_abort = resolve("ncclCommAbort");
    *(void **)&nccl.comm_get_async_error = resolve("ncclCommGetAsyncError");
    *(void **)&nccl.get_error_string = resolve("ncclGetErrorString");
    *(void **)&nccl.get_last_error = resolve("ncclGetLastError");
}

kiln_status kiln_cuda_comm_available(void) {
    pthread_once(&nccl_once, load_nccl);
    if (nccl.failure[0]) return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: %s", nccl.failure);
    return KILN_OK;
}

kiln_status kiln_cuda_comm_unique_id(uint8_t *id) {
    if (!id) return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: comm_unique_id: id is NULL");
    kiln_status st = kiln_cuda_comm_available();
    if (st) return st;
    kiln_nccl_id uid;
    kiln_nccl_result r = nccl.get_unique_id(&uid);
    if (r != KILN_NCCL_SUCCESS)
        return kiln_cuda_fail(KILN_ERROR_BACKEND, "nccl: ncclGetUniqueId: %s (%s)", nccl.get_error_string(r),
                              nccl.get_last_error(NULL));
    memcpy(id, uid.internal, sizeof uid.internal);
    return KILN_OK;
}

/* ---- communicators ------------------------------------------------------------ */

typedef struct cuda_comm {
    kiln_nccl_comm_t comm;          /* NULL once aborted */
    int32_t          rank, world_size, device;
    double           timeout_s;     /* most seconds to wait for the peers */
    char             failure[512];  /* why it was aborted */
    void            *scratch;       /* interleaving buffer of the inner-axis collectives */
    size_t           scratch_bytes;
} cuda_comm;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pause_briefly(double waited) {
    /* Spin for the first millisecond (a collective's usual wait), then nap. */
    struct timespec nap = {0, waited < 1e-3 ? 0 : 100 * 1000};
    nanosleep(&nap, NULL);
}

/* Abort c's communicator after a failure described by the message, record
 * it, and report it naming this rank. */
static kiln_status comm_fail(cuda_comm *c, kiln_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kiln_status comm_fail(cuda_comm *c, kiln_status status, const char *fmt, ...) {
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->failure, sizeof c->failure, "nccl: rank %d of %d (cuda:%d): %s", (int)c->rank, (int)c->world_size,
             (int)c->device, what);
    if (c->comm) {
        nccl.comm_abort(c->comm);   /* also releases kernels waiting for a dead peer */
        c->comm = NULL;
    }
    return kiln_cuda_fail(status, "%s; the communicator was aborted", c->failure);
}

/* NCCL's words for a result, with its last message when it has one. */
static void describe(const cuda_comm *c, kiln_nccl_result r, char *out, size_t size) {
    const char *last = nccl.get_last_error(c->comm);
    snprintf(out, size, "%s%s%s%s", nccl.get_error_string(r), r == KILN_NCCL_REMOTE_ERROR ?
             " (a peer failed or exited)" : "", last && last[0] ? ": " : "", last ? last : "");
}

/* Wait until c's last call has finished (ncclInProgress no more). */
static kiln_status comm_wait(cuda_comm *c, const char *what, double timeout_s) {
    double start = now_seconds();
    for (;;) {
        kiln_nccl_result state = KILN_NCCL_SUCCESS;
        kiln_nccl_result r = nccl.comm_get_async_error(c->comm, &state);
        if (r != KILN_NCCL_SUCCESS) state = r;
        if (state == KILN_NCCL_SUCCESS) return KILN_OK;
        if (state != KILN_NCCL_IN_PROGRESS) {
            char text[256];
            describe(c, state, text, sizeof text);
            return comm_fail(c, KILN_ERROR_BACKEND, "%s failed: %s", what, text);
        }
        double waited = now_seconds() - start;
        if (waited > timeout_s)
            return comm_fail(c, KILN_ERROR_BACKEND, "%s did not finish within %.0f s (KILN_NCCL_TIMEOUT_S): a peer "
                             "may have died, or was given another id or world size", what, timeout_s);
        pause_briefly(waited);
    }
}

static kiln_status set_device(int32_t device, int *previous) {
    kiln_status st = kiln_cuda_check(cudaGetDevice(previous), "cudaGetDevice");
    if (!st && *previous != device) st = kiln_cuda_check(cudaSetDevice(device), "cudaSetDevice");
    return st;
}

static void restore_device(int32_t device, int previous) {
    if (previous != device && cudaSetDevice(previous) != cudaSuccess) (void)cudaGetLastError();
}

kiln_status kiln_cuda_comm_create(int32_t device, int32_t rank, int32_t world_size, const uint8_t *id,
                                  double timeout_s, void **out) {
    if (!id || !out) return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: comm_create: NULL argument");
    *out = NULL;
    if (world_size < 1 || rank < 0 || rank >= world_size)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: comm_create: rank %d of world size %d", (int)rank,
                              (int)world_size);
    kiln_status st = kiln_cuda_comm_available();
    if (st) return st;
    cuda_comm *c = calloc(1, sizeof *c);
    if (!c) return kiln_cuda_fail(KILN_ERROR_NO_MEMORY, "cuda: comm_create: out of memory");
    *c = (cuda_comm){.rank = rank, .world_size = world_size, .device = device, .timeout_s = timeout_s};
    int previous = device;
    if ((st = set_device(device, &previous))) {
        free(c);
        return st;
    }
    kiln_nccl_id uid;
    memcpy(uid.internal, id, sizeof uid.internal);
    kiln_nccl_config config = {.size = sizeof config, .magic = KILN_NCCL_CONFIG_MAGIC,
                               .version = KILN_NCCL_CONFIG_VERSION, .blocking = 0};
    kiln_nccl_result r = nccl.comm_init_rank_config(&c->comm, world_size, uid, rank, &config);
    if (r != KILN_NCCL_SUCCESS && r != KILN_NCCL_IN_PROGRESS) {
        char text[256];
        describe(c, r, text, sizeof text);
        st = comm_fail(c, KILN_ERROR_BACKEND, "ncclCommInitRankConfig: %s", text);
    } else {
        st = comm_wait(c, "joining the communicator", timeout_s);
    }
    restore_device(device, previous);
    if (st) {
        free(c);
        return st;
    }
    *out = c;
    return KILN_OK;
}

kiln_status kiln_cuda_comm_synchronize(int32_t device, void *comm, void *stream, double timeout_s) {
    cuda_comm *c = comm;
    if (!c) return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: comm_synchronize: no communicator");
    int previous = device;
    kiln_status st = set_device(device, &previous);
    double start = now_seconds();
    while (!st) {
        cudaError_t err = cudaStreamQuery((cudaStream_t)stream);
        if (err == cudaSuccess) break;
        if (err != cudaErrorNotReady) {
            st = kiln_cuda_check(err, "cudaStreamQuery");
            break;
        }
        if (c->comm) {   /* an aborted communicator's kernels have been released: wait for the stream only */
            kiln_nccl_result state = KILN_NCCL_SUCCESS;
            kiln_nccl_result r = nccl.comm_get_async_error(c->comm, &state);
            if (r != KILN_NCCL_SUCCESS) state = r;
            if (state != KILN_NCCL_SUCCESS && state != KILN_NCCL_IN_PROGRESS) {
                char text[256];
                describe(c, state, text, sizeof text);
                st = comm_fail(c, KILN_ERROR_BACKEND, "a collective failed: %s", text);
                break;
            }
        }
        double waited = now_seconds() - start;
        if (waited > timeout_s) {
            st = c->comm ? comm_fail(c, KILN_ERROR_BACKEND, "the run did not finish within %.0f s "
                                     "(KILN_NCCL_TIMEOUT_S): a peer may have died or stopped running", timeout_s)
                         : kiln_cuda_fail(KILN_ERROR_BACKEND, "%s; the stream did not finish within %.0f s",
                                          c->failure, timeout_s);
            break;
        }
        pause_briefly(waited);
    }
    restore_device(device, previous);
    if (!st && !c->comm && c->failure[0])
        return kiln_cuda_fail(KILN_ERROR_BACKEND, "%s; the communicator was aborted", c->failure);
    return st;
}

void kiln_cuda_comm_free(int32_t device, void *comm) {
    cuda_comm *c = comm;
    if (!c) return;
    int previous = device;
    if (set_device(device, &previous) == KILN_OK) {
        if (c->comm) {
            /* NCCL's order for a non-blocking communicator: finalize (flush
             * what was issued), poll until it is no longer in progress, then
             * destroy (local).  A failure, or a finalize still running after
             * the communicator's timeout (a peer gone), aborts instead, so
             * freeing never waits without end. */
            kiln_nccl_result r = nccl.comm_finalize(c->comm), state = r;
            const double start = now_seconds();
            while (r == KILN_NCCL_SUCCESS || r == KILN_NCCL_IN_PROGRESS) {
                r = nccl.comm_get_async_error(c->comm, &state);
                if (r != KILN_NCCL_SUCCESS || state != KILN_NCCL_IN_PROGRESS) break;
                double waited = now_seconds() - start;
                if (waited > c->timeout_s) break;
                pause_briefly(waited);
            }
            if (r != KILN_NCCL_SUCCESS || state != KILN_NCCL_SUCCESS) nccl.comm_abort(c->comm);
            else if ((r = nccl.comm_destroy(c->comm)) != KILN_NCCL_SUCCESS && r != KILN_NCCL_IN_PROGRESS)
                nccl.comm_abort(c->comm);   /* destroy refused: the communicator is still NCCL's to free */
        }
        if (c->scratch && cudaFree(c->scratch) != cudaSuccess) (void)cudaGetLastError();
        restore_device(device, previous);
    }
    free(c);
}

/* ---- the layers --------------------------------------------------------------- */

static int nccl_dtype(kiln_dtype dtype, kiln_nccl_dtype *out) {
    switch (dtype) {
    case KILN_FLOAT32: *out = KILN_NCCL_FLOAT32; return 1;
    case KILN_FLOAT16: *out = KILN_NCCL_FLOAT16; return 1;
    case KILN_BFLOAT16: *out = KILN_NCCL_BFLOAT16; return 1;
    case KILN_INT8: *out = KILN_NCCL_INT8; return 1;
    case KILN_UINT8: *out = KILN_NCCL_UINT8; return 1;
    case KILN_BOOL: *out = KILN_NCCL_UINT8; return 1;   /* moved, never reduced (the rule refuses bool sums) */
    case KILN_INT32: *out = KILN_NCCL_INT32; return 1;
    case KILN_INT64: *out = KILN_NCCL_INT64; return 1;
    default: return 0;
    }
}

bool kiln_cuda_collective_supports(const kiln_layer_launch *l) {
    kiln_nccl_dtype dt;
    if (l->input_count != 1 || l->inputs[0].dtype != l->outputs[0].dtype || !nccl_dtype(l->inputs[0].dtype, &dt))
        return false;
    if (l->op != KILN_OP_ALL_GATHER && l->inputs[0].dtype == KILN_BOOL) return false;
    return l->op == KILN_OP_ALL_GATHER || (l->subop >= 0 && l->subop < KILN_COLLECTIVE_OP_COUNT);
}

/* A scratch buffer of at least `bytes`, grown outside captures only. */
static kiln_status scratch(cuda_comm *c, size_t bytes, cudaStream_t stream, void **out) {
    if (bytes > c->scratch_bytes) {
        enum cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
        if (cudaStreamIsCapturing(stream, &capturing) != cudaSuccess) (void)cudaGetLastError();
        if (capturing != cudaStreamCaptureStatusNone)
            return kiln_cuda_fail(KILN_ERROR_STATE, "nccl: rank %d: an inner-axis collective needs %zu bytes of "
                                  "scratch, more than the eager run before the capture set aside", (int)c->rank, bytes);
        void *p = NULL;
        char what[96];
        snprintf(what, sizeof what, "cudaMalloc(%zu bytes) for collective scratch", bytes);
        kiln_status st = kiln_cuda_check(cudaMalloc(&p, bytes), what);
        if (st) return st;
        if (c->scratch && cudaFree(c->scratch) != cudaSuccess) (void)cudaGetLastError();
        c->scratch = p;
        c->scratch_bytes = bytes;
    }
    *out = c->scratch;
    return KILN_OK;
}

/* The result of an enqueueing NCCL call: in progress means wait for it. */
static kiln_status after_call(cuda_comm *c, kiln_nccl_result r, const char *what) {
    if (r == KILN_NCCL_SUCCESS) return KILN_OK;
    if (r == KILN_NCCL_IN_PROGRESS) return comm_wait(c, what, c->timeout_s);
    char text[256];
    describe(c, r, text, sizeof text);
    return comm_fail(c, KILN_ERROR_BACKEND, "%s: %s", what, text);
}

/* [outer, w·m] blocks to [w, outer·m] or back, one 2-D copy per rank: to_ranks
 * gathers each rank's columns into its own contiguous block. */
static kiln_status interleave(void *dst, const void *src, size_t outer, size_t block, int32_t world, int to_ranks,
                              cudaStream_t stream) {
    for (int32_t w = 0; w < world; w++) {
        cudaError_t err = to_ranks
            ? cudaMemcpy2DAsync((char *)dst + (size_t)w * outer * block, block, (const char *)src + (size_t)w * block,
                                (size_t)world * block, block, outer, cudaMemcpyDeviceToDevice, stream)
            : cudaMemcpy2DAsync((char *)dst + (size_t)w * block, (size_t)world * block,
                                (const char *)src + (size_t)w * outer * block, block, block, outer,
                                cudaMemcpyDeviceToDevice, stream);
        kiln_status st = kiln_cuda_check(err, "collective: cudaMemcpy2DAsync");
        if (st) return st;
    }
    return KILN_OK;
}

kiln_status kiln_cuda_collective_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    const char *name = kiln_op_list_name(l->op);
    size_t esize = kiln_cuda_dtype_size(in->dtype);
    size_t in_n = (size_t)kiln_cuda_numel(in), out_n = (size_t)kiln_cuda_numel(out);
    if (l->world_size == 1 && !l->comm) {   /* a group of one without a communicator: the identity */
        if (in->data == out->data || !in_n) return KILN_OK;
        return kiln_cuda_check(cudaMemcpyAsync(out->data, in->data, in_n * esize, cudaMemcpyDeviceToDevice, stream),
                               "collective (world size 1): cudaMemcpyAsync");
    }
    cuda_comm *c = l->comm;
    if (!c)
        return kiln_cuda_fail(KILN_ERROR_STATE, "cuda: %s at world size %d: the context has no communicator", name,
                              (int)l->world_size);
    if (!c->comm)
        return kiln_cuda_fail(KILN_ERROR_STATE, "%s; make a new context to run collectives again", c->failure);
    kiln_nccl_dtype dt;
    if (!nccl_dtype(in->dtype, &dt)) return kiln_cuda_unsupported(name, in->dtype);
    kiln_nccl_op op = (kiln_nccl_op)l->subop;
    /* outer: the product of the axes before `axis`, 1 for all_reduce. */
    size_t outer = 1;
    if (l->op != KILN_OP_ALL_REDUCE)
        for (int64_t a = 0; a < l->axis; a++) outer *= (size_t)in->dims[a];
    char what[64];
    snprintf(what, sizeof what, "%s", name);
    switch (l->op) {
    case KILN_OP_ALL_REDUCE:
        return after_call(c, nccl.all_reduce(in->data, out->data, in_n, dt, op, c->comm, stream), what);
    case KILN_OP_ALL_GATHER: {
        if (outer == 1 || in_n == 0)
            return after_call(c, nccl.all_gather(in->data, out->data, in_n, dt, c->comm, stream), what);
        void *tmp = NULL;
        kiln_status st = scratch(c, out_n * esize, stream, &tmp);
        if (!st) st = after_call(c, nccl.all_gather(in->data, tmp, in_n, dt, c->comm, stream), what);
        return st ? st : interleave(out->data, tmp, outer, in_n / outer * esize, l->world_size, 0, stream);
    }
    case KILN_OP_REDUCE_SCATTER: {
        if (outer == 1 || out_n == 0)
            return after_call(c, nccl.reduce_scatter(in->data, out->data, out_n, dt, op, c->comm, stream), what);
        void *tmp = NULL;
        kiln_status st = scratch(c, in_n * esize, stream, &tmp);
        if (!st) st = interleave(tmp, in->data, outer, out_n / outer * esize, l->world_size, 1, stream);
        return st ? st : after_call(c, nccl.reduce_scatter(tmp, out->data, out_n, dt, op, c->comm, stream), what);
    }
    default:
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: %s is not a collective", name);
    }
}
