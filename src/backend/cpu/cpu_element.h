/* cpu_element.h — one element of any kiln dtype, read or written as a
 * number, for the CPU kernels that are not elementwise loops (reductions,
 * softmax, norms, attention, cumsum, comparisons): they compute in double or
 * int64 and convert one element at a time. */
#ifndef KILN_CPU_ELEMENT_H
#define KILN_CPU_ELEMENT_H

#include <stdint.h>

#include "core/dtype.h"

/* Element i as a double: floats, and integers (as their value). */
static inline double kiln_cpu_load_f64(const void *p, kiln_dtype dt, int64_t i) {
    switch (dt) {
    case KILN_FLOAT32: return ((const float *)p)[i];
    case KILN_FLOAT16: return kiln_f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_BFLOAT16: return kiln_bf16_to_f32(((const uint16_t *)p)[i]);
    case KILN_INT8: return ((const int8_t *)p)[i];
    case KILN_UINT8: return ((const uint8_t *)p)[i];
    case KILN_INT32: return ((const int32_t *)p)[i];
    case KILN_INT64: return (double)((const int64_t *)p)[i];
    default: return ((const uint8_t *)p)[i] != 0;   /* bool */
    }
}

/* A float element: v rounded to dt (float32, float16, bfloat16). */
static inline void kiln_cpu_store_f64(void *p, kiln_dtype dt, int64_t i, double v) {
    switch (dt) {
    case KILN_FLOAT32: ((float *)p)[i] = (float)v; break;
    case KILN_FLOAT16: ((uint16_t *)p)[i] = kiln_f32_to_f16((float)v); break;
    case KILN_BFLOAT16: ((uint16_t *)p)[i] = kiln_f32_to_bf16((float)v); break;
    default: break;
    }
}

/* An integer or bool element (bool: any nonzero byte is 1). */
static inline int64_t kiln_cpu_load_i64(const void *p, kiln_dtype dt, int64_t i) {
    switch (dt) {
    case KILN_INT8: return ((const int8_t *)p)[i];
    case KILN_UINT8: return ((const uint8_t *)p)[i];
    case KILN_INT32: return ((const int32_t *)p)[i];
    case KILN_INT64: return ((const int64_t *)p)[i];
    default: return ((const uint8_t *)p)[i] != 0;   /* bool */
    }
}

/* An integer element: v wrapped to dt's width. */
static inline void kiln_cpu_store_i64(void *p, kiln_dtype dt, int64_t i, int64_t v) {
    switch (dt) {
    case KILN_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
    case KILN_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case KILN_INT32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
    case KILN_INT64: ((int64_t *)p)[i] = v; break;
    default: break;
    }
}

#endif
