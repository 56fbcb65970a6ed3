/* bindings.h — an engine's inputs and outputs, with data, bound to a context.
 *
 * `run` and `bench` both need every input filled and every output given a
 * buffer on the context's device.  Input shapes come from, in order:
 *   1. --input NAME=FILE.npy  the file's shape (and its data);
 *   2. --shape NAME=2x16      the given shape (random data);
 *   3. otherwise              each axis's constant, or for a dynamic
 *                             dimension the value another input gave it,
 *                             or else its optimal value in profile 0.
 * Both 1 and 2 for one input must agree.  Host copies are kept for every
 * tensor; on a GPU the device buffers are separate (kiln_device_malloc). */
#ifndef KILN_TOOLS_BINDINGS_H
#define KILN_TOOLS_BINDINGS_H

#include "cli.h"

typedef struct cli_tensor {
    const char  *name;                  /* owned by the engine */
    kiln_io_kind kind;
    kiln_dtype   dtype;
    int32_t      rank;
    int64_t      dims[KILN_MAX_RANK];
    size_t       count, bytes;          /* elements, bytes */
    void        *host;                  /* malloc'd, at least 1 byte */
    void        *device;                /* kiln_device_malloc'd, bound to the context */
    const char  *source;                /* inputs: the .npy path, or NULL for random data */
} cli_tensor;

typedef struct cli_bindings {
    kiln_device device;
    int32_t     count;                  /* the engine's inputs and outputs, in its order */
    cli_tensor *tensors;
} cli_bindings;

typedef struct cli_data_options {
    const cli_assign_list *inputs;      /* --input NAME=FILE.npy */
    const cli_assign_list *shapes;      /* --shape NAME=DIMS */
    uint64_t               seed;        /* --seed */
} cli_data_options;

/* Decide shapes, fill inputs, allocate everything on the context's device,
 * upload inputs and bind all tensors.  Returns an exit code (reported). */
int  cli_bindings_create(kiln_context *ctx, const cli_data_options *options, cli_bindings *out);
/* Copy outputs back to their host buffers (after the run). */
int  cli_bindings_fetch_outputs(cli_bindings *b);
void cli_bindings_free(cli_bindings *b);

#endif
