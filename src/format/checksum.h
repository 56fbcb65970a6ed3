/* checksum.h — the engine format's 64-bit checksum.
 *
 * Not cryptographic: it catches accidental corruption (bad disks, truncated
 * copies, bit flips), not forgery.  It must be fast because the runtime
 * checks every weight byte on load: a 1 GiB engine is hashed at memory
 * speed.  Guarantee: for inputs of equal length that differ in one 8-byte
 * word (in particular one byte), the checksums differ — every step of the
 * function is a bijection of its state for a fixed length. */
#ifndef KILN_FORMAT_CHECKSUM_H
#define KILN_FORMAT_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* The checksum of size bytes at data (any alignment; data may be NULL when size is 0). */
uint64_t kiln_checksum(const void *data, size_t size);

#endif
