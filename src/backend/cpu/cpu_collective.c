/* cpu_collective.c — collective layers on the CPU: world size 1 only.
 *
 * A group of one rank reduces, gathers and scatters nothing: each collective
 * is a copy of its input (the rule gives the output the input's shape when
 * world_size is 1).  The CPU backend has no communicator, so supports refuses
 * a larger group and the context says so when it is created, naming the
 * layer and the world size (runtime/context.c). */
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_table.h"

bool kiln_cpu_collective_supports(const kiln_layer_launch *l) {
    return l->world_size == 1 && l->input_count == 1 && l->inputs[0].dtype == l->outputs[0].dtype &&
           kiln_dtype_size(l->inputs[0].dtype) > 0;
}

kiln_status kiln_cpu_collective(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    if (l->world_size != 1)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: %s at world size %d needs a communicator (run on "
                          "CUDA devices with NCCL)", kiln_op_name(l->op), (int)l->world_size);
    int64_t n = 1, m = 1;
    for (int32_t a = 0; a < in->rank; a++) n *= in->dims[a];
    for (int32_t a = 0; a < out->rank; a++) m *= out->dims[a];
    if (n != m)   /* the rule makes them equal at world size 1 */
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: %s: input has %lld elements, output %lld",
                          kiln_op_name(l->op), (long long)n, (long long)m);
    if (n && in->data != out->data) memmove(out->data, in->data, (size_t)n * kiln_dtype_size(in->dtype));
    return KILN_OK;
}
