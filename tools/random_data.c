/* random_data.c — see random_data.h. */
#include <string.h>

#include "float_bits.h"
#include "random_data.h"

/* splitmix64 (Steele, Lea, Flood 2014): one add and a mix per value; good
 * enough for test data, and the same on every platform. */
static uint64_t next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1): 24 random bits, exact in a float. */
static float next_unit(uint64_t *state) { return (float)(next(state) >> 40) * (2.0f / 16777216.0f) - 1.0f; }

void cli_random_fill(void *data, kiln_dtype dtype, size_t count, uint64_t seed, int32_t stream) {
    uint64_t state = seed;
    /* Separate the streams of different tensors by mixing the index in. */
    state ^= next(&(uint64_t){(uint64_t)stream * 0xd1b54a32d192ed03ull + 1});
    unsigned char *p = data;
    for (size_t i = 0; i < count; i++) {
        switch (dtype) {
        case KILN_FLOAT32: {
            float v = next_unit(&state);
            memcpy(p + i * 4, &v, 4);
            break;
        }
        case KILN_FLOAT16: {
            uint16_t v = cli_f32_to_f16(next_unit(&state));
            memcpy(p + i * 2, &v, 2);
            break;
        }
        case KILN_BFLOAT16: {
            uint16_t v = cli_f32_to_bf16(next_unit(&state));
            memcpy(p + i * 2, &v, 2);
            break;
        }
        case KILN_INT8:
        case KILN_UINT8:
            p[i] = (unsigned char)(next(&state) % 10);
            break;
        case KILN_INT32: {
            int32_t v = (int32_t)(next(&state) % 10);
            memcpy(p + i * 4, &v, 4);
            break;
        }
        case KILN_INT64: {
            int64_t v = (int64_t)(next(&state) % 10);
            memcpy(p + i * 8, &v, 8);
            break;
        }
        case KILN_BOOL:
            p[i] = (unsigned char)(next(&state) >> 63);
            break;
        default:
            return;
        }
    }
}
