/*
 * dlpack_abi.h — the DLPack structures kiln produces and consumes.
 *
 * Declared here from the DLPack specification (v1.x ABI) so the extension
 * needs no extra header.  The layouts are a fixed ABI shared with numpy,
 * torch, cupy, jax: never reorder.  Capsule names: "dltensor" (unversioned,
 * DLManagedTensor) and "dltensor_versioned" (DLManagedTensorVersioned); a
 * consumer renames the capsule to "used_dltensor[_versioned]" and becomes
 * responsible for calling the deleter.
 */
#ifndef KILN_PYTHON_DLPACK_ABI_H
#define KILN_PYTHON_DLPACK_ABI_H

#include <stdint.h>

enum { KILN_DL_CPU = 1, KILN_DL_CUDA = 2, KILN_DL_CUDA_HOST = 3, KILN_DL_CUDA_MANAGED = 13 };
enum { KILN_DL_INT = 0, KILN_DL_UINT = 1, KILN_DL_FLOAT = 2, KILN_DL_BFLOAT = 4, KILN_DL_BOOL = 6 };

#define KILN_DL_FLAG_READ_ONLY (1ull << 0)

typedef struct kiln_dl_device {
    int32_t device_type;   /* an enum in C: int-sized */
    int32_t device_id;
} kiln_dl_device;

typedef struct kiln_dl_dtype {
    uint8_t  code;
    uint8_t  bits;
    uint16_t lanes;
} kiln_dl_dtype;

typedef struct kiln_dl_tensor {
    void          *data;
    kiln_dl_device device;
    int32_t        ndim;
    kiln_dl_dtype  dtype;
    int64_t       *shape;
    int64_t       *strides;       /* in elements; NULL means compact row-major */
    uint64_t       byte_offset;
} kiln_dl_tensor;

typedef struct kiln_dl_managed {
    kiln_dl_tensor dl_tensor;
    void          *manager_ctx;
    void         (*deleter)(struct kiln_dl_managed *self);
} kiln_dl_managed;

typedef struct kiln_dl_version {
    uint32_t major, minor;
} kiln_dl_version;

typedef struct kiln_dl_managed_versioned {
    kiln_dl_version version;
    void          *manager_ctx;
    void         (*deleter)(struct kiln_dl_managed_versioned *self);
    uint64_t       flags;
    kiln_dl_tensor dl_tensor;
} kiln_dl_managed_versioned;

/* kiln dtype <-> DLPack (code, bits); -1 when there is no match. */
static inline int kiln_dl_from_dtype(int kiln_dtype_value, kiln_dl_dtype *out) {
    static const kiln_dl_dtype table[] = {
        {KILN_DL_FLOAT, 32, 1}, {KILN_DL_FLOAT, 16, 1}, {KILN_DL_BFLOAT, 16, 1}, {KILN_DL_INT, 8, 1},
        {KILN_DL_UINT, 8, 1},   {KILN_DL_INT, 32, 1},   {KILN_DL_INT, 64, 1},    {KILN_DL_BOOL, 8, 1},
    };
    if (kiln_dtype_value < 0 || kiln_dtype_value >= (int)(sizeof table / sizeof table[0])) return -1;
    *out = table[kiln_dtype_value];
    return 0;
}

static inline int kiln_dl_to_dtype(kiln_dl_dtype t) {
    if (t.lanes != 1) return -1;
    switch (t.code) {
    case KILN_DL_FLOAT: return t.bits == 32 ? 0 : t.bits == 16 ? 1 : -1;
    case KILN_DL_BFLOAT: return t.bits == 16 ? 2 : -1;
    case KILN_DL_INT: return t.bits == 8 ? 3 : t.bits == 32 ? 5 : t.bits == 64 ? 6 : -1;
    case KILN_DL_UINT: return t.bits == 8 ? 4 : -1;
    case KILN_DL_BOOL: return t.bits == 8 ? 7 : -1;
    default: return -1;
    }
}

#endif
