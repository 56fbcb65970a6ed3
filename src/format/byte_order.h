/* byte_order.h — little-endian loads and stores at any alignment.
 *
 * The engine format is little-endian whatever the host is, and a field may
 * sit at any address (a buffer from the user need not be aligned), so every
 * multi-byte field goes through these.  Compilers turn them into single
 * moves on little-endian hosts. */
#ifndef KILN_FORMAT_BYTE_ORDER_H
#define KILN_FORMAT_BYTE_ORDER_H

#include <stdint.h>

static inline uint32_t kiln_load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t kiln_load_u64le(const uint8_t *p) {
    return (uint64_t)kiln_load_u32le(p) | (uint64_t)kiln_load_u32le(p + 4) << 32;
}

/* Two's complement reinterpretation without implementation-defined casts. */
static inline int32_t kiln_load_i32le(const uint8_t *p) {
    uint32_t u = kiln_load_u32le(p);
    return u <= INT32_MAX ? (int32_t)u : (int32_t)(u - INT32_MAX - 1) + INT32_MIN;
}

static inline int64_t kiln_load_i64le(const uint8_t *p) {
    uint64_t u = kiln_load_u64le(p);
    return u <= INT64_MAX ? (int64_t)u : (int64_t)(u - INT64_MAX - 1) + INT64_MIN;
}

static inline void kiln_store_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static inline void kiln_store_u64le(uint8_t *p, uint64_t v) {
    kiln_store_u32le(p, (uint32_t)v);
    kiln_store_u32le(p + 4, (uint32_t)(v >> 32));
}

static inline void kiln_store_i32le(uint8_t *p, int32_t v) { kiln_store_u32le(p, (uint32_t)v); }
static inline void kiln_store_i64le(uint8_t *p, int64_t v) { kiln_store_u64le(p, (uint64_t)v); }

#endif
