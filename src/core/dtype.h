/* dtype.h — element conversions shared by the backends. */
#ifndef KILN_CORE_DTYPE_H
#define KILN_CORE_DTYPE_H

#include <stdint.h>
#include <string.h>
#include "kiln/kiln.h"

static inline float kiln_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) { bits = sign; }
        else {                                   /* subnormal: renormalize */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) { man <<= 1; exp--; }
            man &= 0x3ffu;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);  /* inf or nan */
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f; memcpy(&f, &bits, 4); return f;
}

static inline uint16_t kiln_f32_to_f16(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u)                      /* inf / nan */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* overflow → inf */
    if (absx < 0x38800000u) {                     /* subnormal or zero in f16 */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23, m = (absx & 0x7fffffu) | 0x800000u;
        uint32_t sh = 126 - e;                    /* value = m * 2^(e-150) = val * 2^-24 */
        uint32_t val = m >> sh;
        uint32_t rem = m & ((1u << sh) - 1), halfway = 1u << (sh - 1);
        if (rem > halfway || (rem == halfway && (val & 1))) val++;   /* nearest even */
        return (uint16_t)(sign | val);
    }
    uint32_t val = ((absx - 0x38000000u) >> 13);  /* rebias exponent */
    uint32_t rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (val & 1))) val++;
    return (uint16_t)(sign | val);
}

static inline float kiln_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16; float f; memcpy(&f, &bits, 4); return f;
}

static inline uint16_t kiln_f32_to_bf16(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);  /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1u);                                          /* round to nearest even */
    return (uint16_t)(x >> 16);
}

static inline int kiln_dtype_is_float(kiln_dtype t) {
    return t == KILN_FLOAT32 || t == KILN_FLOAT16 || t == KILN_BFLOAT16;
}

#endif
