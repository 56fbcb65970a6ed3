/* section_checksum.c — block-parallel section checksums (see section_checksum.h). */
#include <limits.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "kiln/kiln.h"
#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/section_checksum.h"

#define MAX_THREADS 16
/* Below this, threads cost more than they save. */
#define PARALLEL_THRESHOLD ((size_t)64 << 20)

typedef struct block_job {
    const uint8_t *data;
    size_t         size;
    uint8_t       *sums;      /* 8 bytes per block, little-endian */
} block_job;

static void hash_block(void *ctx, int b) {
    const block_job *job = ctx;
    size_t offset = (size_t)b * KILN_CHECKSUM_BLOCK;
    size_t n = job->size - offset < KILN_CHECKSUM_BLOCK ? job->size - offset : KILN_CHECKSUM_BLOCK;
    kiln_store_u64le(job->sums + 8 * (size_t)b, kiln_checksum(job->data + offset, n));
}

int kiln_section_checksum(const uint8_t *data, size_t size, uint64_t *out) {
    if (size <= KILN_CHECKSUM_BLOCK) {
        *out = kiln_checksum(data, size);
        return 1;
    }
    size_t blocks = (size + KILN_CHECKSUM_BLOCK - 1) / KILN_CHECKSUM_BLOCK;
    if (blocks > INT_MAX) return 0;   /* 2^31 blocks of 4 MiB: beyond any engine the format allows */
    uint8_t stack_sums[8 * 256 + 8];
    uint8_t *sums = blocks <= 256 ? stack_sums : kiln_malloc(8 * blocks + 8);
    if (!sums) return 0;
    int threads = size >= PARALLEL_THRESHOLD ? kiln_cpu_thread_limit() : 1;
    block_job job = {.data = data, .size = size, .sums = sums};
    kiln_parallel_run((int)blocks, threads < MAX_THREADS ? threads : MAX_THREADS, hash_block, &job);
    kiln_store_u64le(sums + 8 * blocks, (uint64_t)size);
    *out = kiln_checksum(sums, 8 * blocks + 8);
    if (sums != stack_sums) kiln_free(sums);
    return 1;
}
