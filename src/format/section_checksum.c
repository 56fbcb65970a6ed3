/* section_checksum.c — block-parallel section checksums (see section_checksum.h). */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
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
    size_t         first, step, count;
} block_job;

static void *hash_blocks(void *arg) {
    block_job *job = arg;
    for (size_t b = job->first; b < job->count; b += job->step) {
        size_t offset = b * KILN_CHECKSUM_BLOCK;
        size_t n = job->size - offset < KILN_CHECKSUM_BLOCK ? job->size - offset : KILN_CHECKSUM_BLOCK;
        kiln_store_u64le(job->sums + 8 * b, kiln_checksum(job->data + offset, n));
    }
    return NULL;
}

int kiln_section_checksum(const uint8_t *data, size_t size, uint64_t *out) {
    if (size <= KILN_CHECKSUM_BLOCK) {
        *out = kiln_checksum(data, size);
        return 1;
    }
    size_t blocks = (size + KILN_CHECKSUM_BLOCK - 1) / KILN_CHECKSUM_BLOCK;
    uint8_t stack_sums[8 * 256 + 8];
    uint8_t *sums = blocks <= 256 ? stack_sums : kiln_malloc(8 * blocks + 8);
    if (!sums) return 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t threads = size >= PARALLEL_THRESHOLD && cpus > 1 ? (size_t)cpus : 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > blocks) threads = blocks;
    block_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    size_t started = 1;
    for (size_t t = 0; t < threads; t++)
        jobs[t] = (block_job){.data = data, .size = size, .sums = sums, .first = t, .step = threads, .count = blocks};
    for (size_t t = 1; t < threads && pthread_create(&tids[t], NULL, hash_blocks, &jobs[t]) == 0; t++) started++;
    for (size_t t = started; t < threads; t++) hash_blocks(&jobs[t]);   /* threads that did not start */
    hash_blocks(&jobs[0]);
    for (size_t t = 1; t < started; t++) pthread_join(tids[t], NULL);
    kiln_store_u64le(sums + 8 * blocks, (uint64_t)size);
    *out = kiln_checksum(sums, 8 * blocks + 8);
    if (sums != stack_sums) kiln_free(sums);
    return 1;
}
