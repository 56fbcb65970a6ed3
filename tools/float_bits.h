/* float_bits.h — float32 to and from the 16-bit float formats, as bit patterns.
 *
 * The tool reads and writes float16 and bfloat16 tensors and prints their
 * values, and kiln keeps its own conversions private, so the tool has these.
 * Narrowing rounds to nearest, ties to even; NaN stays NaN (quiet), values
 * past the largest finite one become infinity. */
#ifndef KILN_TOOLS_FLOAT_BITS_H
#define KILN_TOOLS_FLOAT_BITS_H

#include <stdint.h>

uint16_t cli_f32_to_f16 (float f);
float    cli_f16_to_f32 (uint16_t h);
uint16_t cli_f32_to_bf16(float f);
float    cli_bf16_to_f32(uint16_t b);

#endif
