/* cuda_graph.c — CUDA graph capture and replay for the backend table.
 *
 * Capture uses thread-local mode: work this thread enqueues on the stream is
 * recorded; another thread's unrelated CUDA calls are not disturbed.  The
 * graph is instantiated once and replayed with cudaGraphLaunch. */
#include <cuda_runtime.h>

#include "backend/cuda/cuda_ops.h"

kiln_status kiln_cuda_capture_begin(int32_t device, void *stream) {
    kiln_status st = kiln_cuda_check(cudaSetDevice(device), "capture: cudaSetDevice");
    if (st != KILN_OK) return st;
    return kiln_cuda_check(cudaStreamBeginCapture((cudaStream_t)stream, cudaStreamCaptureModeThreadLocal),
                           "cudaStreamBeginCapture");
}

kiln_status kiln_cuda_capture_end(int32_t device, void *stream, void **out) {
    *out = NULL;
    cudaGraph_t graph = NULL;
    kiln_status st = kiln_cuda_check(cudaStreamEndCapture((cudaStream_t)stream, &graph), "cudaStreamEndCapture");
    if (st != KILN_OK) {
        if (graph) cudaGraphDestroy(graph);
        return st;
    }
    cudaGraphExec_t exec = NULL;
    st = kiln_cuda_check(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
    cudaGraphDestroy(graph);   /* the executable graph keeps what it needs */
    if (st == KILN_OK) *out = exec;
    return st;
}

kiln_status kiln_cuda_graph_launch(int32_t device, void *graph, void *stream) {
    return kiln_cuda_check(cudaGraphLaunch((cudaGraphExec_t)graph, (cudaStream_t)stream), "cudaGraphLaunch");
}

void kiln_cuda_graph_free(int32_t device, void *graph) {
    if (graph && cudaGraphExecDestroy((cudaGraphExec_t)graph) != cudaSuccess) (void)cudaGetLastError();
}
