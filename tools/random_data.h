/* random_data.h — reproducible random tensor contents for `run` and `bench`.
 *
 * Floating-point tensors (float32, float16, bfloat16) get values uniform in
 * [-1, 1); integer tensors (int8, uint8, int32, int64) get integers uniform
 * in [0, 10); bool tensors get 0 or 1.  The generator is splitmix64, seeded
 * from the user's --seed and the tensor's position among the engine's inputs
 * and outputs, so a tensor's values do not change when another input is
 * given from a file instead. */
#ifndef KILN_TOOLS_RANDOM_DATA_H
#define KILN_TOOLS_RANDOM_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/kiln.h"

/* Fill count elements of dtype at data. */
void cli_random_fill(void *data, kiln_dtype dtype, size_t count, uint64_t seed, int32_t stream);

#endif
