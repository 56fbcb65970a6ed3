/* section_checksum.h — the checksum of an engine section, block-parallel.
 *
 * Sections up to KILN_CHECKSUM_BLOCK bytes use kiln_checksum directly.
 * Larger ones (weights) are cut into KILN_CHECKSUM_BLOCK-byte blocks whose
 * checksums are computed independently — on several threads when the section
 * is large — and the section checksum is kiln_checksum over the array of
 * block checksums followed by the section length (all u64 little-endian).
 * A changed byte changes its block's checksum, which changes one word of
 * that array, which changes the result: kiln_checksum's guarantee carries
 * over.  Documented in docs/engine-format.md. */
#ifndef KILN_FORMAT_SECTION_CHECKSUM_H
#define KILN_FORMAT_SECTION_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#define KILN_CHECKSUM_BLOCK ((size_t)4 << 20)

/* Returns 0 when memory for the block array cannot be had (or the section
 * is beyond 8 PiB), else 1.  Uses up to kiln_cpu_thread_limit() threads. */
int kiln_section_checksum(const uint8_t *data, size_t size, uint64_t *out);

#endif
