/* checksum.c — four independent multiply-rotate lanes over 32-byte blocks.
 *
 * Each lane takes every fourth 8-byte word: v = rotl((v + w) * K1, 29).
 * One multiply per word and four lanes with no dependency between them keep
 * a 64-bit multiplier busy every cycle, so the loop runs at memory bandwidth
 * (see bench/bench_checksum.c).  The lanes are merged, the tail words and the
 * length are mixed in, and a final avalanche spreads every input bit over
 * the result.
 *
 * Why a single changed word always changes the result: for a fixed length,
 * each step (v + w) * K1 with K1 odd, rotl, h ^ f(v) with f a bijection,
 * h * K2 + K3 — is a bijection of the state for a given word and of the word
 * for a given state, so a difference can never cancel out. */
#include <string.h>

#include "format/checksum.h"

/* Odd constants with well-mixed bits (the fractional parts of irrational
 * numbers, as commonly used for hashing). */
#define K1 UINT64_C(0x9E3779B97F4A7C15)
#define K2 UINT64_C(0xC2B2AE3D27D4EB4F)
#define K3 UINT64_C(0x165667B19E3779F9)
#define K4 UINT64_C(0xD6E8FEB86659FD93)

static inline uint64_t rotl64(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

/* Words are little-endian by definition, whatever the host. */
static inline uint64_t load_word(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline uint64_t lane_step(uint64_t v, uint64_t w) { return rotl64((v + w) * K1, 29); }

/* A bijective finalizer: xor-shift / odd-multiply rounds. */
static inline uint64_t avalanche(uint64_t h) {
    h ^= h >> 31;
    h *= K2;
    h ^= h >> 29;
    h *= K4;
    h ^= h >> 32;
    return h;
}

uint64_t kiln_checksum(const void *data, size_t size) {
    const unsigned char *p = data;
    size_t n = size;
    uint64_t h = (uint64_t)size * K3 + K4;

    if (n >= 32) {
        uint64_t v0 = K1, v1 = K2, v2 = K3, v3 = K4;
        do {
            v0 = lane_step(v0, load_word(p));
            v1 = lane_step(v1, load_word(p + 8));
            v2 = lane_step(v2, load_word(p + 16));
            v3 = lane_step(v3, load_word(p + 24));
            p += 32;
            n -= 32;
        } while (n >= 32);
        h = (h ^ avalanche(v0)) * K2 + K3;
        h = (h ^ avalanche(v1)) * K2 + K3;
        h = (h ^ avalanche(v2)) * K2 + K3;
        h = (h ^ avalanche(v3)) * K2 + K3;
    }
    for (; n >= 8; p += 8, n -= 8) h = lane_step(h, load_word(p));
    if (n) {                           /* last 1..7 bytes as one zero-padded word */
        uint64_t w = 0;
        for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
        h = lane_step(h, w);
    }
    return avalanche(h);
}
