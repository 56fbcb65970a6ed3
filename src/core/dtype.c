/* dtype.c — dtype names and sizes. */
#include <string.h>

#include "core/error.h"

static const struct { const char *name; size_t size; } dtype_table[KILN_DTYPE_COUNT] = {
    [KILN_FLOAT32]  = {"float32", 4}, [KILN_FLOAT16] = {"float16", 2}, [KILN_BFLOAT16] = {"bfloat16", 2},
    [KILN_INT8]     = {"int8", 1},    [KILN_UINT8]   = {"uint8", 1},   [KILN_INT32]    = {"int32", 4},
    [KILN_INT64]    = {"int64", 8},   [KILN_BOOL]    = {"bool", 1},
};

/* Spellings users bring from numpy, torch and TensorRT. */
static const struct { const char *alias; kiln_dtype dtype; } dtype_aliases[] = {
    {"fp32", KILN_FLOAT32}, {"float", KILN_FLOAT32}, {"fp16", KILN_FLOAT16}, {"half", KILN_FLOAT16},
    {"bf16", KILN_BFLOAT16}, {"int", KILN_INT32}, {"long", KILN_INT64}, {"bool_", KILN_BOOL},
};

const char *kiln_dtype_name(kiln_dtype dtype) {
    return (unsigned)dtype < KILN_DTYPE_COUNT ? dtype_table[dtype].name : NULL;
}

size_t kiln_dtype_size(kiln_dtype dtype) {
    return (unsigned)dtype < KILN_DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

kiln_status kiln_dtype_from_name(const char *name, kiln_dtype *out) {
    if (!name || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_dtype_from_name: NULL argument");
    for (int i = 0; i < KILN_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_table[i].name) == 0) { *out = (kiln_dtype)i; return KILN_OK; }
    for (size_t i = 0; i < sizeof dtype_aliases / sizeof dtype_aliases[0]; i++)
        if (strcmp(name, dtype_aliases[i].alias) == 0) { *out = dtype_aliases[i].dtype; return KILN_OK; }
    return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                      "unknown dtype '%s' (expected float32, float16, bfloat16, int8, uint8, int32, int64 or bool)",
                      name);
}
