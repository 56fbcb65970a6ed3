/* npy.c — see npy.h for the format and the rules. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "npy.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_SIZE 6
/* Real headers are a few hundred bytes; a huge length is a corrupt file. */
#define NPY_MAX_HEADER (1u << 20)

static int fail(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- dtypes ----------------------------------------------------------------- */

static const struct {
    const char *descr;
    kiln_dtype  dtype;
} known_descrs[] = {
    {"<f4", KILN_FLOAT32}, {"<f2", KILN_FLOAT16}, {"<i4", KILN_INT32}, {"<i8", KILN_INT64},
    {"|i1", KILN_INT8},    {"<i1", KILN_INT8},    {"|u1", KILN_UINT8}, {"<u1", KILN_UINT8},
    {"|b1", KILN_BOOL},    {"<b1", KILN_BOOL},
    /* bfloat16 bit patterns: numpy has no bfloat16 type. */
    {"<u2", KILN_BFLOAT16}, {"|V2", KILN_BFLOAT16}, {"<V2", KILN_BFLOAT16},
};

const char *npy_descr(kiln_dtype dtype) {
    switch (dtype) {
    case KILN_FLOAT32: return "<f4";
    case KILN_FLOAT16: return "<f2";
    case KILN_INT32:   return "<i4";
    case KILN_INT64:   return "<i8";
    case KILN_INT8:    return "|i1";
    case KILN_UINT8:   return "|u1";
    case KILN_BOOL:    return "|b1";
    default:           return NULL;
    }
}

/* ---- the header dict ----------------------------------------------------------- */

typedef struct header_parser {
    const char *p, *end;
    char       *err;
    size_t      err_size;
    const char *path;
} header_parser;

static void skip_space(header_parser *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r')) h->p++;
}

static int expect(header_parser *h, char c, const char *where) {
    skip_space(h);
    if (h->p >= h->end || *h->p != c)
        return fail(h->err, h->err_size, "'%s': malformed .npy header: expected '%c' %s", h->path, c, where);
    h->p++;
    return 0;
}

/* A quoted Python string without escapes (numpy never writes any here). */
static int parse_string(header_parser *h, char *out, size_t size, const char *what) {
    skip_space(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
        return fail(h->err, h->err_size, "'%s': malformed .npy header: %s is not a string%s", h->path, what,
                    h->p < h->end && *h->p == '[' ? " (structured dtypes are not supported)" : "");
    char quote = *h->p++;
    const char *start = h->p;
    while (h->p < h->end && *h->p != quote) {
        if (*h->p == '\\') return fail(h->err, h->err_size, "'%s': malformed .npy header: escape in %s", h->path, what);
        h->p++;
    }
    if (h->p >= h->end) return fail(h->err, h->err_size, "'%s': malformed .npy header: unterminated %s", h->path, what);
    size_t n = (size_t)(h->p - start);
    h->p++;
    if (n >= size) return fail(h->err, h->err_size, "'%s': .npy header %s is too long", h->path, what);
    memcpy(out, start, n);
    out[n] = '\0';
    return 0;
}

static int parse_bool(header_parser *h, int *out) {
    skip_space(h);
    size_t left = (size_t)(h->end - h->p);
    if (left >= 4 && memcmp(h->p, "True", 4) == 0) {
        *out = 1, h->p += 4;
        return 0;
    }
    if (left >= 5 && memcmp(h->p, "False", 5) == 0) {
        *out = 0, h->p += 5;
        return 0;
    }
    return fail(h->err, h->err_size, "'%s': malformed .npy header: fortran_order is not True or False", h->path);
}

/* "(2, 3)", "(3,)", "()"; Python 2 files may write "3L". */
static int parse_shape(header_parser *h, npy_array *a) {
    if (expect(h, '(', "to open the shape")) return -1;
    a->rank = 0;
    for (;;) {
        skip_space(h);
        if (h->p < h->end && *h->p == ')') {
            h->p++;
            return 0;
        }
        if (h->p >= h->end || *h->p < '0' || *h->p > '9')
            return fail(h->err, h->err_size, "'%s': malformed .npy header: bad shape", h->path);
        int64_t v = 0;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            int digit = *h->p++ - '0';
            if (v > (INT64_MAX - digit) / 10)
                return fail(h->err, h->err_size, "'%s': .npy shape has a dimension that overflows", h->path);
            v = v * 10 + digit;
        }
        if (h->p < h->end && *h->p == 'L') h->p++;
        if (a->rank == KILN_MAX_RANK)
            return fail(h->err, h->err_size, "'%s': the array has more than %d dimensions", h->path, KILN_MAX_RANK);
        a->dims[a->rank++] = v;
        skip_space(h);
        if (h->p < h->end && *h->p == ',') h->p++;
        else if (h->p >= h->end || *h->p != ')')
            return fail(h->err, h->err_size, "'%s': malformed .npy header: bad shape", h->path);
    }
}

static int parse_header(header_parser *h, npy_array *a) {
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    if (expect(h, '{', "at the start")) return -1;
    for (;;) {
        skip_space(h);
        if (h->p < h->end && *h->p == '}') {
            h->p++;
            break;
        }
        char key[32];
        if (parse_string(h, key, sizeof key, "a key")) return -1;
        if (expect(h, ':', "after a key")) return -1;
        if (strcmp(key, "descr") == 0 && !have_descr) {
            if (parse_string(h, a->descr, sizeof a->descr, "descr")) return -1;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            if (parse_bool(h, &fortran)) return -1;
            have_order = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if (parse_shape(h, a)) return -1;
            have_shape = 1;
        } else {
            return fail(h->err, h->err_size, "'%s': .npy header has an unexpected or repeated key '%s'", h->path, key);
        }
        skip_space(h);
        if (h->p < h->end && *h->p == ',') h->p++;
        else if (h->p >= h->end || *h->p != '}')
            return fail(h->err, h->err_size, "'%s': malformed .npy header: expected ',' or '}'", h->path);
    }
    skip_space(h);
    if (h->p != h->end && !(h->end - h->p == 1 && *h->p == '\0'))
        return fail(h->err, h->err_size, "'%s': malformed .npy header: text after the dict", h->path);
    if (!have_descr || !have_order || !have_shape)
        return fail(h->err, h->err_size, "'%s': .npy header lacks '%s'", h->path,
                    !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    if (fortran)
        return fail(h->err, h->err_size,
                    "'%s': the array is in Fortran order, which is not supported (save np.ascontiguousarray(a))",
                    h->path);
    for (size_t i = 0; i < sizeof known_descrs / sizeof known_descrs[0]; i++)
        if (strcmp(a->descr, known_descrs[i].descr) == 0) {
            a->dtype = known_descrs[i].dtype;
            return 0;
        }
    if (a->descr[0] == '>')
        return fail(h->err, h->err_size, "'%s': the data is big-endian ('%s'); save it little-endian", h->path,
                    a->descr);
    return fail(h->err, h->err_size,
                "'%s': dtype '%s' is not supported (use float32 '<f4', float16 '<f2', int32 '<i4', int64 '<i8', "
                "int8, uint8, bool, or '<u2' holding bfloat16 bits)", h->path, a->descr);
}

/* ---- reading ------------------------------------------------------------------- */

static uint32_t load_le(const unsigned char *p, int n) {
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int npy_read(const char *path, npy_array *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    /* O_NONBLOCK: a FIFO would block open() until a writer came, before the
     * regular-file check could refuse it (no effect on regular files). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return fail(err, err_size, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, err_size, "'%s' is not a regular file", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return fail(err, err_size, "cannot open '%s': %s", path, strerror(errno));
    }
    uint64_t file_size = (uint64_t)st.st_size;
    unsigned char pre[12];
    char *header = NULL;
    int rc = -1;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, NPY_MAGIC, NPY_MAGIC_SIZE) != 0) {
        fail(err, err_size, "'%s' is not a .npy file (no \\x93NUMPY magic)", path);
        goto done;
    }
    int major = pre[6];
    if (major < 1 || major > 3) {
        fail(err, err_size, "'%s': .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are)", path, major,
             pre[7]);
        goto done;
    }
    uint32_t header_len;
    uint64_t data_offset;
    if (major == 1) {
        header_len = load_le(pre + 8, 2);
        data_offset = 10 + (uint64_t)header_len;
    } else {
        if (fread(pre + 10, 1, 2, f) != 2) {
            fail(err, err_size, "'%s' is truncated in its .npy preamble", path);
            goto done;
        }
        header_len = load_le(pre + 8, 4);
        data_offset = 12 + (uint64_t)header_len;
    }
    if (header_len > NPY_MAX_HEADER || data_offset > file_size) {
        fail(err, err_size, "'%s': .npy header length %u does not fit the file (%llu bytes)", path,
             (unsigned)header_len, (unsigned long long)file_size);
        goto done;
    }
    header = malloc(header_len ? header_len : 1);
    if (!header) {
        fail(err, err_size, "'%s': out of memory", path);
        goto done;
    }
    if (fread(header, 1, header_len, f) != header_len) {
        fail(err, err_size, "'%s' is truncated in its .npy header", path);
        goto done;
    }
    header_parser h = {header, header + header_len, err, err_size, path};
    if (parse_header(&h, out)) goto done;

    uint64_t count = 1, bytes = 0;
    int overflow = 0;
    for (int32_t i = 0; i < out->rank; i++) overflow |= __builtin_mul_overflow(count, (uint64_t)out->dims[i], &count);
    if (overflow || __builtin_mul_overflow(count, (uint64_t)kiln_dtype_size(out->dtype), &bytes)) {
        fail(err, err_size, "'%s': the array's shape is too large", path);
        goto done;
    }
    if (bytes > file_size - data_offset) {
        fail(err, err_size, "'%s' is truncated: its shape needs %llu bytes of data, the file has %llu", path,
             (unsigned long long)bytes, (unsigned long long)(file_size - data_offset));
        goto done;
    }
    if (bytes < file_size - data_offset) {
        fail(err, err_size, "'%s' has %llu bytes after the array data (shape needs %llu)", path,
             (unsigned long long)(file_size - data_offset - bytes), (unsigned long long)bytes);
        goto done;
    }
    out->bytes = (size_t)bytes;
    out->data = malloc(out->bytes ? out->bytes : 1);
    if (!out->data) {
        fail(err, err_size, "'%s': out of memory for %zu bytes", path, out->bytes);
        goto done;
    }
    if (fread(out->data, 1, out->bytes, f) != out->bytes) {
        fail(err, err_size, "'%s': read error: %s", path, ferror(f) ? strerror(errno) : "file shrank");
        goto done;
    }
    rc = 0;
done:
    free(header);
    fclose(f);
    if (rc) npy_array_free(out);
    return rc;
}

void npy_array_free(npy_array *a) {
    free(a->data);
    a->data = NULL;
}

/* ---- writing ------------------------------------------------------------------- */

int npy_write(const char *path, kiln_dtype dtype, int32_t rank, const int64_t *dims, const void *data, size_t bytes,
              char *err, size_t err_size) {
    const char *descr = npy_descr(dtype);
    if (!descr) return fail(err, err_size, "'%s': no .npy dtype for %s", path, kiln_dtype_name(dtype));
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int32_t i = 0; i < rank && n > 0 && (size_t)n < sizeof dict; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s", (long long)dims[i],
                      rank == 1 ? "," : i + 1 < rank ? ", " : "");
    if (n > 0 && (size_t)n < sizeof dict) n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    if (n <= 0 || (size_t)n >= sizeof dict) return fail(err, err_size, "'%s': shape too long for a header", path);
    /* Pad with spaces so that the data starts at a multiple of 64 bytes
     * (numpy's own choice, good for mapping), and end with '\n'. */
    size_t dict_len = (size_t)n, total = 10 + dict_len + 1;
    size_t padded = (total + 63) / 64 * 64, header_len = padded - 10;
    unsigned char pre[10];
    memcpy(pre, NPY_MAGIC, NPY_MAGIC_SIZE);
    pre[6] = 1, pre[7] = 0;
    pre[8] = (unsigned char)(header_len & 0xff), pre[9] = (unsigned char)(header_len >> 8);
    FILE *f = fopen(path, "wb");
    if (!f) return fail(err, err_size, "cannot create '%s': %s", path, strerror(errno));
    int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(dict, 1, dict_len, f) == dict_len;
    for (size_t i = dict_len; ok && i + 1 < header_len; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && (bytes == 0 || fwrite(data, 1, bytes, f) == bytes);
    int saved = errno;
    if (fclose(f) != 0 && ok) ok = 0, saved = errno;
    if (!ok) {
        remove(path);
        return fail(err, err_size, "cannot write '%s': %s", path, strerror(saved));
    }
    return 0;
}
