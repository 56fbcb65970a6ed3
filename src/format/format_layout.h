/* format_layout.h — byte offsets and record sizes of the engine file format.
 *
 * One table of numbers shared by the writer, the reader, the sealer and the
 * tests, so that they cannot disagree.  docs/engine-format.md describes the
 * same layout in prose, byte by byte; change both together.
 *
 *   file    = header | section table | sections (each 8-aligned; weights last, 64-aligned)
 *   header  = 128 bytes, little-endian, ends with the checksum of its first 120 bytes
 *   table   = section_count entries of 32 bytes
 *   a byte that belongs to none of these is padding and must be zero
 */
#ifndef KILN_FORMAT_LAYOUT_H
#define KILN_FORMAT_LAYOUT_H

#include <stdint.h>

/* --- header --------------------------------------------------------------- */
/* Bytes [0, 12) and the rule "the header's last 8 bytes are the checksum of
 * the bytes before them" are the same in every format version: that is what
 * lets this reader say "version N is too new" instead of "corrupt". */
#define KILN_FORMAT_MAGIC             "KILN"
#define KILN_FORMAT_MAGIC_SIZE        4
#define KILN_FORMAT_PREFIX_SIZE       12          /* magic, version, header size */
#define KILN_FORMAT_HEADER_SIZE       128
#define KILN_FORMAT_MIN_HEADER_SIZE   24          /* any version: prefix, padding, checksum */

#define KILN_HDR_MAGIC                0           /* 4  "KILN" */
#define KILN_HDR_VERSION              4           /* u32 format version */
#define KILN_HDR_HEADER_SIZE          8           /* u32 128 in version 1 */
#define KILN_HDR_FLAGS                12          /* u32 reserved, 0 */
#define KILN_HDR_CHECK_BYTES          16          /* 6 bytes: KILN_FORMAT_CHECK_BYTES */
#define KILN_HDR_SIZES                22          /* 10 bytes: KILN_FORMAT_SIZES */
#define KILN_HDR_SAMPLE_INT           32          /* u64 KILN_FORMAT_SAMPLE_INT */
#define KILN_HDR_SAMPLE_FLOAT         40          /* f64 KILN_FORMAT_SAMPLE_FLOAT */
#define KILN_HDR_FILE_SIZE            48          /* u64 total bytes */
#define KILN_HDR_TABLE_OFFSET         56          /* u64 section table offset */
#define KILN_HDR_SECTION_COUNT        64          /* u32 */
#define KILN_HDR_RESERVED0            68          /* u32 0 */
#define KILN_HDR_TABLE_CHECKSUM       72          /* u64 checksum of the section table */
#define KILN_HDR_ARENA_BYTES          80          /* u64 activation arena size */
#define KILN_HDR_RESERVED1            88          /* 32 bytes of 0 (versions 1 and 2) */
#define KILN_HDR_RESERVED1_SIZE       32
/* Version 3: the parallel record in the first 8 of those bytes. */
#define KILN_HDR_RANK                 88          /* u32 rank, < world_size */
#define KILN_HDR_WORLD_SIZE           92          /* u32 world size, 1..KILN_MAX_WORLD_SIZE */
#define KILN_HDR_RESERVED2            96          /* 24 bytes of 0 */
#define KILN_HDR_RESERVED2_SIZE       24
#define KILN_HDR_CHECKSUM             120         /* u64 checksum of bytes [0, 120) */

/* Bytes that text-mode transfers and C string handling mangle: a high-bit
 * byte (7-bit channels), CR LF (CRLF → LF), ^Z (DOS end of file), LF
 * (LF → CRLF) and NUL (string truncation). */
#define KILN_FORMAT_CHECK_BYTES       "\x89\r\n\x1a\n\0"
#define KILN_FORMAT_CHECK_BYTES_SIZE  6

/* Sample values: a byte-swapped writer turns the integer into
 * 0x0102030405060708, a non-IEEE-754 float format misreads the float. */
#define KILN_FORMAT_SAMPLE_INT        UINT64_C(0x0807060504030201)
#define KILN_FORMAT_SAMPLE_FLOAT      370.5

/* --- record sizes (also written in the header's size block) --------------- */
#define KILN_FMT_INT_SIZE             8           /* integers: int64/uint64 */
#define KILN_FMT_INDEX_SIZE           4           /* indices, ids, counts: int32/uint32 */
#define KILN_FMT_FLOAT_SIZE           8           /* floats: IEEE-754 binary64 */
#define KILN_FMT_SECTION_ENTRY_SIZE   32
#define KILN_FMT_EXPR_NODE_SIZE       24
#define KILN_FMT_DIM_SIZE             8
#define KILN_FMT_TENSOR_SIZE          64
#define KILN_FMT_LAYER_SIZE           32
#define KILN_FMT_PLUGIN_SIZE          56
#define KILN_FMT_CHECK_SIZE           16
#define KILN_FMT_RANGE_SIZE           24          /* min, opt, max: 3 × i64 */
#define KILN_FMT_LAYER_ATTR_COUNTS_SIZE 8         /* version 2: u32 int_count, u32 expr_count per layer */
#define KILN_FORMAT_SIZES_COUNT       10

/* --- section table entry --------------------------------------------------- */
#define KILN_SEC_ID                   0           /* u32 */
#define KILN_SEC_FLAGS                4           /* u32 KILN_SECTION_OPTIONAL or 0 */
#define KILN_SEC_OFFSET               8           /* u64 from the start of the file */
#define KILN_SEC_SIZE                 16          /* u64 */
#define KILN_SEC_CHECKSUM             24          /* u64 checksum of the section's bytes */

/* A reader that does not know an optional section verifies and skips it;
 * an unknown section without this flag makes the engine unreadable. */
#define KILN_SECTION_OPTIONAL         1u

/* Section ids: stored in engine files, never renumber. */
enum kiln_section_id {
    KILN_SECTION_STRINGS = 1,
    KILN_SECTION_DIMS    = 2,
    KILN_SECTION_EXPRS   = 3,
    KILN_SECTION_TENSORS = 4,
    KILN_SECTION_LAYERS  = 5,
    KILN_SECTION_PLUGINS = 6,
    KILN_SECTION_CHECKS  = 7,
    KILN_SECTION_IO      = 8,
    KILN_SECTION_WEIGHTS = 9,
    KILN_SECTION_ID_COUNT          /* ids 1..KILN_SECTION_ID_COUNT-1 are known */
};

#define KILN_FORMAT_SECTION_ALIGN     8
#define KILN_FORMAT_WEIGHTS_ALIGN     64

/* Every section except weights and strings starts with two u32: a count and
 * a second word (profile count, index count, or 0). */
#define KILN_FMT_SECTION_HEAD_SIZE    8

/* --- records ---------------------------------------------------------------- */
/* A string reference is (u32 offset, u32 length) into the strings section;
 * the byte at offset+length is NUL and none before it is. */
#define KILN_FMT_STRING_REF_SIZE      8

/* expression node */
#define KILN_EXPR_OFF_OP              0           /* u8, then 3 zero bytes */
#define KILN_EXPR_OFF_A               4           /* i32 */
#define KILN_EXPR_OFF_B               8           /* i32 */
#define KILN_EXPR_OFF_PAD             12          /* u32 0 */
#define KILN_EXPR_OFF_VALUE           16          /* i64 */

/* tensor record */
#define KILN_TENSOR_OFF_NAME          0           /* string ref */
#define KILN_TENSOR_OFF_KIND          8           /* u8 */
#define KILN_TENSOR_OFF_DTYPE         9           /* u8, then 2 zero bytes */
#define KILN_TENSOR_OFF_RANK          12          /* u32 */
#define KILN_TENSOR_OFF_SHAPE         16          /* 8 × i32; entries from rank on are -1 */
#define KILN_TENSOR_OFF_OFFSET        48          /* u64 */
#define KILN_TENSOR_OFF_SIZE          56          /* u64 */

/* layer record */
#define KILN_LAYER_OFF_OP             0           /* u8, then 3 zero bytes */
#define KILN_LAYER_OFF_SUBOP          4           /* i32 */
#define KILN_LAYER_OFF_AXIS           8           /* i64 */
#define KILN_LAYER_OFF_INPUT_COUNT    16          /* u32 */
#define KILN_LAYER_OFF_OUTPUT_COUNT   20          /* u32 */
#define KILN_LAYER_OFF_FIRST_INDEX    24          /* u32 into the index list */
#define KILN_LAYER_OFF_WORKSPACE      28          /* i32 */

/* plugin record */
#define KILN_PLUGIN_OFF_NAMESPACE     0           /* string ref */
#define KILN_PLUGIN_OFF_NAME          8           /* string ref */
#define KILN_PLUGIN_OFF_VERSION       16          /* string ref */
#define KILN_PLUGIN_OFF_MODULE        24          /* string ref */
#define KILN_PLUGIN_OFF_FLAGS         32          /* u32 */
#define KILN_PLUGIN_OFF_PAD           36          /* u32 0 */
#define KILN_PLUGIN_OFF_FIELDS_OFFSET 40          /* u64 into the fields area */
#define KILN_PLUGIN_OFF_FIELDS_SIZE   48          /* u64 */

/* check record */
#define KILN_CHECK_OFF_COND           0           /* i32 */
#define KILN_CHECK_OFF_PAD            4           /* u32 0 */
#define KILN_CHECK_OFF_MESSAGE        8           /* string ref */

/* "strings", "dims", ...; "section 17" style names are made by the caller. */
const char *kiln_format_section_name(uint32_t id);

#endif
