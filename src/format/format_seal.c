/* format_seal.c — computing an engine file's checksums in place.
 *
 * The writer lays every byte out with zero checksums and seals the result;
 * tests and the fuzzer seal bytes they patched on purpose so that the
 * reader's deeper checks, not the checksums, have to catch the patch.  The
 * bytes may be anything, so every region is bounds-checked and a checksum
 * whose region does not fit is simply left alone. */
#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/section_checksum.h"
#include "format/engine_format.h"
#include "format/format_layout.h"

/* [offset, offset + size) lies within [0, limit)? Overflow-safe. */
static int region_fits(uint64_t offset, uint64_t size, uint64_t limit) {
    return offset <= limit && size <= limit - offset;
}

static int seal_sections(uint8_t *data, size_t size) {
    uint64_t table = kiln_load_u64le(data + KILN_HDR_TABLE_OFFSET);
    uint64_t count = kiln_load_u32le(data + KILN_HDR_SECTION_COUNT);
    if (!region_fits(table, count * KILN_FMT_SECTION_ENTRY_SIZE, size)) return 1;
    int ok = 1;
    for (uint64_t i = 0; i < count; i++) {
        uint8_t *entry = data + table + i * KILN_FMT_SECTION_ENTRY_SIZE;
        uint64_t offset = kiln_load_u64le(entry + KILN_SEC_OFFSET);
        uint64_t length = kiln_load_u64le(entry + KILN_SEC_SIZE);
        uint64_t sum;
        if (region_fits(offset, length, size)) {
            if (kiln_section_checksum(data + offset, (size_t)length, &sum)) kiln_store_u64le(entry + KILN_SEC_CHECKSUM, sum);
            else ok = 0;
        }
    }
    kiln_store_u64le(data + KILN_HDR_TABLE_CHECKSUM,
                     kiln_checksum(data + table, (size_t)(count * KILN_FMT_SECTION_ENTRY_SIZE)));
    return ok;
}

int kiln_format_seal(uint8_t *data, size_t size) {
    if (!data || size < KILN_FORMAT_PREFIX_SIZE) return 1;
    uint32_t header_size = kiln_load_u32le(data + KILN_HDR_HEADER_SIZE);
    if (header_size < KILN_FORMAT_MIN_HEADER_SIZE || header_size % 8 != 0 || header_size > size) return 1;
    int ok = 1;
    /* Only a version-1-sized header has the section table fields where we
     * expect them; any other size gets just its header checksum. */
    if (header_size == KILN_FORMAT_HEADER_SIZE) ok = seal_sections(data, size);
    kiln_store_u64le(data + header_size - 8, kiln_checksum(data, header_size - 8));
    return ok;
}
