/* fuzz_engine_reader.c — libFuzzer target for the engine format reader.
 *
 * Each input is read twice: as it is, and resealed (every checksum
 * recomputed), because nearly every mutation of a real engine fails its
 * checksum and would otherwise never reach the structural and semantic
 * checks behind it.  Beyond "no crash, no sanitizer report", the target
 * asserts the reader's contract:
 *   - a failure is CORRUPT, VERSION or NO_MEMORY, with a message, and leaves
 *     the desc cleared;
 *   - a desc the reader accepted writes back to bytes that read again
 *     (what passed validation is a valid engine). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "format/engine_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond) {
    if (!cond) abort();
}

static int desc_is_clear(const kiln_engine_desc *d) {
    static const kiln_engine_desc zero;
    return memcmp(d, &zero, sizeof zero) == 0;
}

static void read_one(const uint8_t *data, size_t size, uint32_t flags) {
    kiln_engine_desc d;
    kiln_status st = kiln_format_read(data, size, flags, &d);
    if (st != KILN_OK) {
        require(st == KILN_ERROR_CORRUPT || st == KILN_ERROR_VERSION || st == KILN_ERROR_NO_MEMORY);
        require(kiln_last_error()[0] != '\0');
        require(desc_is_clear(&d));
        return;
    }
    uint8_t *again;
    size_t again_size;
    require(kiln_format_write(&d, &again, &again_size) == KILN_OK);
    kiln_engine_desc back;
    require(kiln_format_read(again, again_size, 0, &back) == KILN_OK);
    require(back.tensor_count == d.tensor_count && back.layer_count == d.layer_count
            && back.weights_size == d.weights_size);
    kiln_engine_desc_clear(&back);
    kiln_aligned_free(again);
    kiln_engine_desc_clear(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy, so AddressSanitizer sees any read past the end. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    read_one(copy, size, 0);
    kiln_format_seal(copy, size);
    read_one(copy, size, 0);
    read_one(copy, size, KILN_LOAD_SKIP_WEIGHT_CHECKSUM);
    free(copy);
    return 0;
}
