/* cpu_exp.h — a vectorizable e^x for the CPU kernels (unary ops, softmax). */
#ifndef KILN_CPU_EXP_H
#define KILN_CPU_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x in float32 without branches or library calls, so that the loops below
 * vectorize (the C library's expf is one call per element, ~4x slower here).
 * x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n ln2 is exact),
 * e^r by Cephes' degree-7 polynomial (about 1 ulp), times 2^n built in two
 * halves so that subnormal results are rounded once.  NaN stays NaN, large x
 * gives inf, very negative x gives 0.  test_unary_exp_sweep holds it to two
 * ulp across the whole range. */
static inline float exp_f32(float x) {
    const float hi = 88.72283f, lo = -103.97208f;
    float xc = x > hi ? hi : x;                      /* comparisons are false for NaN: it passes */
    xc = xc < lo ? lo : xc;
    float t = xc * 1.44269504088896341f + 12582912.0f;   /* 1.5 * 2^23: n lands in the low bits */
    float n = t - 12582912.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    int32_t ni = (int32_t)(tb - 0x4b400000u);        /* n, exactly: -150 <= n <= 128 (NaN: garbage, replaced) */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t h = ni / 2;
    uint32_t b1 = (uint32_t)(h + 127) << 23, b2 = (uint32_t)(ni - h + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    float y = p * s1 * s2;
    y = x > hi ? INFINITY : y;
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

#endif
