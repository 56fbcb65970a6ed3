/* engine_format.h — engine bytes ⇄ kiln_engine_desc.
 *
 * The byte layout is in docs/engine-format.md (and, as numbers, in
 * format/format_layout.h).  In short: a 128-byte little-endian header (magic,
 * version, a check block, file size, section table location, arena size, and
 * a checksum), a table of checksummed sections, and the weights last at a
 * 64-byte aligned offset so that a mapped file is used in place.
 *
 *     uint8_t *bytes; size_t size;
 *     kiln_format_write(&desc, &bytes, &size);           // desc from the builder
 *     kiln_engine_desc loaded;
 *     if (kiln_format_read(bytes, size, 0, &loaded) != KILN_OK)
 *         fprintf(stderr, "%s\n", kiln_last_error());   // says what is wrong
 *     ...                                               // loaded.weights points into bytes
 *     kiln_engine_desc_clear(&loaded);
 *     kiln_aligned_free(bytes);
 */
#ifndef KILN_FORMAT_ENGINE_FORMAT_H
#define KILN_FORMAT_ENGINE_FORMAT_H

#include "engine/engine_desc.h"

/* The newest version this kiln reads and writes.  Readers refuse a newer
 * version with KILN_ERROR_VERSION (docs/engine-format.md, "Versions").  The
 * writer writes the oldest version that holds the engine: 3 only when its
 * parallel record is not rank 0 of 1, so that other engines stay readable by
 * kilns that read version 2. */
#define KILN_FORMAT_VERSION 3   /* 2: layer attribute lists (kiln_layer_attrs); 3: the parallel record */
#define KILN_FORMAT_VERSION_PARALLEL 3

/* Where tensors start: weights at 64-byte offsets in the weights section,
 * activations at 256-byte offsets in the arena (the builder plans them so;
 * the reader refuses others, since kernels do aligned vector loads). */
#define KILN_FORMAT_WEIGHT_ALIGNMENT 64u
#define KILN_FORMAT_ARENA_ALIGNMENT  256u

/*
 * Serialize desc.  *out comes from kiln_aligned_alloc (64-byte aligned; free
 * it with kiln_aligned_free) and holds *out_size bytes.  The writer does not
 * validate the desc's meaning (the reader does; tests rely on being able to
 * write bad engines): it only refuses what it cannot write — negative counts,
 * NULL arrays with a non-zero count, sizes that do not fit the format's
 * fields — with KILN_ERROR_INVALID_ARGUMENT.  Fields a record's kind or op does
 * not use are written as zero (e.g. an input tensor's offset).
 */
kiln_status kiln_format_write(const kiln_engine_desc *desc, uint8_t **out, size_t *out_size);

/*
 * Parse and verify engine bytes.  Trusts nothing: every checksum, count,
 * offset, size and index is checked, then the desc's meaning (see
 * kiln_format_check_desc), so that the runtime can use the result without
 * further checks.  Fails with KILN_ERROR_CORRUPT (message says what is wrong),
 * KILN_ERROR_VERSION (written by a newer format version), or
 * KILN_ERROR_NO_MEMORY.  flags: kiln_load_flags (KILN_LOAD_SKIP_WEIGHT_CHECKSUM
 * skips the weights section's checksum; other bits are ignored).
 * On success out->weights points INTO data (weights_owned = 0) and everything
 * else is freshly allocated: free with kiln_engine_desc_clear.  On failure
 * *out is left cleared.
 */
kiln_status kiln_format_read(const uint8_t *data, size_t size, uint32_t flags, kiln_engine_desc *out);

/*
 * The semantic checks of kiln_format_read on their own: indices in range,
 * dtypes and ops known, per-op arity and dtype rules, weights and activations
 * inside their regions, unique names, io list complete, layers in
 * dependency order.  Returns KILN_ERROR_CORRUPT naming the first problem.
 * desc->exprs must be set.
 */
kiln_status kiln_format_check_desc(const kiln_engine_desc *desc);

/*
 * Run every built-in layer's rule from the op table (ops/op_table.h) on its
 * stored inputs, in desc->exprs: KILN_ERROR_CORRUPT, naming the layer and
 * both shapes, unless each stored output is exactly what the rule gives.
 * Conditions the rule reports that the engine's checks lack are appended to
 * desc->checks (and their expressions to desc->exprs), so a context evaluates
 * them before any kernel runs.  Part of kiln_format_read; needs a desc that
 * passed kiln_format_check_desc.
 */
kiln_status kiln_format_verify_layers(kiln_engine_desc *desc);

/*
 * Recompute, in place, every checksum in engine bytes: each section's (in the
 * section table), the table's and the header's.  For tests and the fuzzer,
 * which patch bytes on purpose and want the reader to see the patch rather
 * than a checksum mismatch; the writer uses it to finish a file.  Safe on any
 * bytes: checksums whose region is out of bounds are left alone.  Returns 0
 * when memory for a large section's block checksums cannot be had, else 1.
 */
int kiln_format_seal(uint8_t *data, size_t size);

#endif
