/* float_bits.c — see float_bits.h. */
#include <math.h>
#include <string.h>

#include "float_bits.h"

static uint32_t f32_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static float f32_from_bits(uint32_t x) {
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* m >> shift, rounded to nearest, ties to even (1 <= shift <= 31). */
static uint32_t shift_round_even(uint32_t m, int shift) {
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return r;
}

uint16_t cli_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7e00;                /* NaN */
    if (x >= 0x477ff000u) return sign | 0x7c00;               /* >= 65520 rounds past 65504: infinity */
    uint32_t exp = x >> 23, mant = (x & 0x7fffffu) | 0x800000u;
    if (x < 0x38800000u) {                                     /* below 2^-14: a float16 subnormal (or 0) */
        if (x <= 0x33000000u) return sign;                     /* <= 2^-25 rounds to 0 (2^-25 is a tie) */
        /* In units of 2^-24: mant * 2^(exp - 150 + 24) = mant >> (126 - exp). */
        return sign | (uint16_t)shift_round_even(mant, (int)(126 - exp));
    }
    /* Normal: rebias the exponent (127 → 15), keep 10 mantissa bits; a carry
     * out of the mantissa correctly bumps the exponent. */
    uint32_t h = ((exp - 112) << 10) + shift_round_even(x & 0x7fffffu, 13);
    return sign | (uint16_t)h;
}

float cli_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t cli_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040);  /* quiet NaN */
    /* Adding 0x7fff plus the lowest kept bit rounds ties to even; the carry
     * into the exponent is right, up to infinity. */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

float cli_bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }
