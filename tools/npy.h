/* npy.h — reading and writing NumPy .npy files.
 *
 * File layout (numpy.lib.format):
 *     offset  size  contents
 *     0       6     magic "\x93NUMPY"
 *     6       1     major version: 1, 2 or 3
 *     7       1     minor version: 0
 *     8       2|4   header length, little-endian: 2 bytes in v1, 4 in v2 and v3
 *     10|12   n     header: a Python dict literal, ASCII (v1, v2) or UTF-8 (v3),
 *                   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *                   padded with spaces and ended by '\n'
 *     ...           the array data, C order, exactly prod(shape) * itemsize bytes
 *
 * The reader trusts nothing: the header is parsed strictly (the three keys,
 * nothing else), the rank is limited to KILN_MAX_RANK, the data size is
 * computed without overflow and must match the file exactly.
 *
 * dtypes (descr → kiln): '<f4' float32, '<f2' float16, '<i4' int32,
 * '<i8' int64, '|i1' int8, '|u1' uint8, '|b1' bool ('<' also accepted for
 * the one-byte ones).  NumPy has no bfloat16: a 16-bit raw type, '<u2' or
 * '|V2' (what ml_dtypes' bfloat16 saves as), is read as bfloat16 bit
 * patterns.  Big-endian data, Fortran order and other dtypes are refused
 * with a message saying what the file holds. */
#ifndef KILN_TOOLS_NPY_H
#define KILN_TOOLS_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/kiln.h"

typedef struct npy_array {
    char       descr[16];               /* as the header gave it, e.g. "<f4" */
    kiln_dtype dtype;
    int32_t    rank;
    int64_t    dims[KILN_MAX_RANK];
    size_t     bytes;                   /* prod(dims) * kiln_dtype_size(dtype) */
    void      *data;                    /* malloc'd (at least 1 byte); free with npy_array_free */
} npy_array;

/* Read path into out.  On failure returns -1 with a message (naming the
 * file and what is wrong) in err. */
int  npy_read(const char *path, npy_array *out, char *err, size_t err_size);
void npy_array_free(npy_array *a);

/* The descr a kiln dtype is written with ("<f4"); NULL for bfloat16, which
 * has none (write it converted to float32). */
const char *npy_descr(kiln_dtype dtype);

/* Write a version 1.0 file.  On failure returns -1 with a message in err
 * (and removes a partly written file). */
int npy_write(const char *path, kiln_dtype dtype, int32_t rank, const int64_t *dims, const void *data, size_t bytes,
              char *err, size_t err_size);

#endif
