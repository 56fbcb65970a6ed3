/* test_values.c — typed values and their binary format. */
#include <math.h>
#include <stdlib.h>

#include "test.h"
#include "core/alloc.h"

/* --- helpers ------------------------------------------------------------------ */

/* A byte string under construction, for hand-made encodings. */
typedef struct bytes { uint8_t b[8192]; size_t n; } bytes;
static void u8(bytes *s, uint8_t x) { s->b[s->n++] = x; }
static void u64(bytes *s, uint64_t x) { for (int i = 0; i < 8; i++) u8(s, (uint8_t)(x >> (8 * i))); }
static void raw(bytes *s, const void *p, size_t n) { memcpy(s->b + s->n, p, n); s->n += n; }
static void str(bytes *s, const char *text) { u64(s, strlen(text)); raw(s, text, strlen(text)); }

/* Decode must fail with CORRUPT and a message containing `what`. */
static int rejects(const bytes *s, const char *what) {
    kiln_value *v = (kiln_value *)s;   /* must be reset to NULL */
    kiln_status st = kiln_value_decode(s->b, s->n, &v);
    int ok = st == KILN_ERROR_CORRUPT && v == NULL && strstr(kiln_last_error(), what);
    if (!ok) fprintf(stderr, "  wanted CORRUPT \"%s\", got %s \"%s\"\n", what, kiln_status_string(st), kiln_last_error());
    if (st == KILN_OK) kiln_value_free(v);
    return ok;
}

static kiln_value *sample_array(void) {
    int64_t dims[3] = {2, 3, 4};
    float data[24];
    for (int i = 0; i < 24; i++) data[i] = (float)i * 0.5f - 3.0f;
    return kiln_value_array(KILN_FLOAT32, 3, dims, data);
}

/* One of every type, nested: the fields a plugin might have. */
static kiln_value *sample(void) {
    kiln_value *m = kiln_value_map();
    if (!m) return NULL;
    int ok = 1;
    ok &= kiln_value_map_set(m, "none", kiln_value_none()) == KILN_OK;
    ok &= kiln_value_map_set(m, "flag", kiln_value_bool(true)) == KILN_OK;
    ok &= kiln_value_map_set(m, "off", kiln_value_bool(false)) == KILN_OK;
    ok &= kiln_value_map_set(m, "count", kiln_value_int64(-1234567890123ll)) == KILN_OK;
    ok &= kiln_value_map_set(m, "scale", kiln_value_float64(-0.125)) == KILN_OK;
    ok &= kiln_value_map_set(m, "nan", kiln_value_float64(NAN)) == KILN_OK;
    ok &= kiln_value_map_set(m, "name", kiln_value_string("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x94\xa5", 15)) == KILN_OK;
    ok &= kiln_value_map_set(m, "empty", kiln_value_string("", 0)) == KILN_OK;
    ok &= kiln_value_map_set(m, "blob", kiln_value_bytes("\x00\xff\x01\x80", 4)) == KILN_OK;
    ok &= kiln_value_map_set(m, "weights", sample_array()) == KILN_OK;
    int64_t zero_dims[2] = {0, 5};
    ok &= kiln_value_map_set(m, "no_data", kiln_value_array(KILN_INT64, 2, zero_dims, NULL)) == KILN_OK;
    uint16_t h = 0x3c00;
    ok &= kiln_value_map_set(m, "scalar", kiln_value_array(KILN_FLOAT16, 0, NULL, &h)) == KILN_OK;
    kiln_value *list = kiln_value_list();
    if (list) {
        ok &= kiln_value_list_append(list, kiln_value_int64(1)) == KILN_OK;
        ok &= kiln_value_list_append(list, kiln_value_string("two", 3)) == KILN_OK;
        kiln_value *inner = kiln_value_map();
        if (inner) ok &= kiln_value_map_set(inner, "deep", kiln_value_list()) == KILN_OK;
        ok &= kiln_value_list_append(list, inner) == KILN_OK;
    }
    ok &= kiln_value_map_set(m, "list", list) == KILN_OK;
    if (!ok) {
        kiln_value_free(m);
        return NULL;
    }
    return m;
}

/* --- construction and access ----------------------------------------------------- */

static void test_scalars(void) {
    kiln_value *b = kiln_value_bool(true), *i = kiln_value_int64(INT64_MIN), *f = kiln_value_float64(2.5);
    kiln_value *s = kiln_value_string("a\0b", 3), *y = kiln_value_bytes("xyz", 3), *n = kiln_value_none();
    REQUIRE(b && i && f && s && y && n);
    CHECK(kiln_value_get_type(b) == KILN_VALUE_BOOL && kiln_value_as_bool(b));
    CHECK(kiln_value_get_type(i) == KILN_VALUE_INT64 && kiln_value_as_int64(i) == INT64_MIN);
    CHECK(kiln_value_get_type(f) == KILN_VALUE_FLOAT64 && kiln_value_as_float64(f) == 2.5);
    CHECK(kiln_value_get_type(n) == KILN_VALUE_NONE);
    size_t len = 99;
    const char *text = kiln_value_as_string(s, &len);
    CHECK(text && len == 3 && memcmp(text, "a\0b", 3) == 0 && text[3] == '\0');
    const void *data = kiln_value_as_bytes(y, &len);
    CHECK(data && len == 3 && memcmp(data, "xyz", 3) == 0);

    /* the wrong type: 0 / NULL and a message, never a crash */
    kiln_clear_error();
    CHECK(kiln_value_as_int64(f) == 0);
    CHECK(strstr(kiln_last_error(), "float64, not a int64"));
    CHECK(kiln_value_as_float64(i) == 0.0);
    CHECK(!kiln_value_as_bool(i));
    len = 99;
    CHECK(kiln_value_as_string(y, &len) == NULL && len == 0);
    CHECK(strstr(kiln_last_error(), "bytes, not a string"));
    CHECK(kiln_value_as_bytes(s, NULL) == NULL);
    CHECK(kiln_value_count(i) == 0);
    CHECK(kiln_value_item(s, 0) == NULL);
    CHECK(kiln_value_key(y, 0) == NULL);
    CHECK(kiln_value_map_get(b, "x") == NULL);
    CHECK_FAILS(kiln_value_array_info(b, NULL, NULL, NULL, NULL), KILN_ERROR_INVALID_ARGUMENT, "bool, not a array");
    CHECK(kiln_value_as_int64(NULL) == 0);
    CHECK(kiln_value_get_type(NULL) == KILN_VALUE_NONE);
    CHECK(kiln_value_count(NULL) == 0);
    CHECK_FAILS(kiln_value_list_append(i, kiln_value_int64(1)), KILN_ERROR_INVALID_ARGUMENT, "not a list");
    CHECK_FAILS(kiln_value_map_set(i, "k", kiln_value_int64(1)), KILN_ERROR_INVALID_ARGUMENT, "not a map");

    /* strings must be UTF-8 */
    CHECK(kiln_value_string("\xff", 1) == NULL);
    CHECK(strstr(kiln_last_error(), "UTF-8"));
    CHECK(kiln_value_string("ok\xc0\xaf", 4) == NULL);          /* overlong '/' */
    CHECK(kiln_value_string("\xed\xa0\x80", 3) == NULL);        /* surrogate */
    CHECK(kiln_value_string("\xf4\x90\x80\x80", 4) == NULL);    /* > U+10FFFF */
    CHECK(kiln_value_string("\xe2\x82", 2) == NULL);            /* cut short */
    CHECK(kiln_value_string(NULL, 1) == NULL);
    kiln_value *e = kiln_value_bytes(NULL, 0);
    CHECK(e && kiln_value_as_bytes(e, &len) != NULL && len == 0);
    kiln_value_free(e);
    kiln_value_free(b); kiln_value_free(i); kiln_value_free(f);
    kiln_value_free(s); kiln_value_free(y); kiln_value_free(n);
    kiln_value_free(NULL);
}

static void test_containers(void) {
    kiln_value *m = kiln_value_map();
    REQUIRE(m);
    CHECK_OK(kiln_value_map_set(m, "b", kiln_value_int64(1)));
    CHECK_OK(kiln_value_map_set(m, "a", kiln_value_int64(2)));
    CHECK_OK(kiln_value_map_set(m, "c", kiln_value_int64(3)));
    CHECK_OK(kiln_value_map_set(m, "a", kiln_value_string("two", 3)));   /* replaces, keeps place */
    CHECK(kiln_value_count(m) == 3);
    CHECK(strcmp(kiln_value_key(m, 0), "b") == 0 && strcmp(kiln_value_key(m, 1), "a") == 0 &&
          strcmp(kiln_value_key(m, 2), "c") == 0);
    CHECK(kiln_value_get_type(kiln_value_item(m, 1)) == KILN_VALUE_STRING);
    CHECK(kiln_value_get_type(kiln_value_map_get(m, "a")) == KILN_VALUE_STRING);
    CHECK(kiln_value_as_int64(kiln_value_map_get(m, "c")) == 3);
    /* A missing key is an answer, not a failure: the last error stays as it was. */
    kiln_value_item(m, 99);
    CHECK(strstr(kiln_last_error(), "index 99"));
    CHECK(kiln_value_map_get(m, "zz") == NULL);
    CHECK(strstr(kiln_last_error(), "index 99") && !strstr(kiln_last_error(), "zz"));
    CHECK(kiln_value_item(m, 3) == NULL);
    CHECK(strstr(kiln_last_error(), "index 3"));
    CHECK(kiln_value_key(m, 3) == NULL);
    CHECK_FAILS(kiln_value_map_set(m, "bad\xff", kiln_value_int64(1)), KILN_ERROR_INVALID_ARGUMENT, "UTF-8");
    CHECK_FAILS(kiln_value_map_set(m, NULL, kiln_value_int64(1)), KILN_ERROR_INVALID_ARGUMENT, "key is NULL");

    kiln_value *l = kiln_value_list();
    REQUIRE(l);
    for (int i = 0; i < 100; i++) CHECK_OK(kiln_value_list_append(l, kiln_value_int64(i * i)));
    CHECK(kiln_value_count(l) == 100);
    CHECK(kiln_value_as_int64(kiln_value_item(l, 99)) == 9801);
    CHECK(kiln_value_key(l, 0) == NULL);
    /* a failed constructor's message survives the append */
    CHECK_FAILS(kiln_value_list_append(l, kiln_value_string("\xff", 1)), KILN_ERROR_INVALID_ARGUMENT, "UTF-8");
    /* no cycles */
    CHECK_FAILS(kiln_value_list_append(l, l), KILN_ERROR_INVALID_ARGUMENT, "cycle");
    kiln_value *inner = kiln_value_list();
    REQUIRE(inner);
    CHECK_OK(kiln_value_list_append(l, inner));
    CHECK_FAILS(kiln_value_list_append(inner, l), KILN_ERROR_INVALID_ARGUMENT, "cycle");
    CHECK(kiln_value_count(l) == 101);
    CHECK_OK(kiln_value_map_set(m, "list", l));

    /* nesting is bounded at 64 containers */
    kiln_value *deep = kiln_value_list();
    for (int i = 1; i < 64; i++) {
        kiln_value *outer = kiln_value_list();
        REQUIRE(outer);
        CHECK_OK(kiln_value_list_append(outer, deep));
        deep = outer;
    }
    uint8_t *enc;
    size_t size;
    CHECK_OK(kiln_value_encode(deep, &enc, &size));
    kiln_value *back;
    CHECK_OK(kiln_value_decode(enc, size, &back));
    CHECK(kiln_value_equal(back, deep));
    kiln_value_free(back);
    kiln_free(enc);
    kiln_value *too_deep = kiln_value_list();
    REQUIRE(too_deep);
    CHECK_FAILS(kiln_value_list_append(too_deep, deep), KILN_ERROR_INVALID_ARGUMENT, "deeper than 64");
    kiln_value_free(too_deep);
    kiln_value_free(m);
}

static void test_arrays(void) {
    int32_t data[6] = {1, -2, 3, -4, 5, -6};
    int64_t dims[2] = {2, 3};
    kiln_value *a = kiln_value_array(KILN_INT32, 2, dims, data);
    REQUIRE(a);
    data[0] = 100;
    dims[0] = 7;   /* copied: the value does not change */
    kiln_dtype dt;
    int32_t rank;
    const int64_t *d;
    const void *p;
    CHECK_OK(kiln_value_array_info(a, &dt, &rank, &d, &p));
    CHECK(dt == KILN_INT32 && rank == 2 && d[0] == 2 && d[1] == 3);
    CHECK(((const int32_t *)p)[0] == 1 && ((const int32_t *)p)[5] == -6);
    CHECK(((uintptr_t)p & 63) == 0);
    kiln_value_free(a);
    dims[0] = 2;
    int64_t bad[2] = {2, -1}, huge[3] = {INT64_MAX, INT64_MAX, 2};
    CHECK(kiln_value_array(KILN_DTYPE_COUNT, 2, dims, data) == NULL && strstr(kiln_last_error(), "dtype"));
    CHECK(kiln_value_array(KILN_INT32, 9, dims, data) == NULL && strstr(kiln_last_error(), "rank 9"));
    CHECK(kiln_value_array(KILN_INT32, -1, dims, data) == NULL);
    CHECK(kiln_value_array(KILN_INT32, 2, bad, data) == NULL && strstr(kiln_last_error(), "negative"));
    CHECK(kiln_value_array(KILN_INT32, 3, huge, data) == NULL && strstr(kiln_last_error(), "overflow"));
    CHECK(kiln_value_array(KILN_INT32, 2, dims, NULL) == NULL && strstr(kiln_last_error(), "data is NULL"));
    CHECK(kiln_value_array(KILN_INT32, 2, NULL, data) == NULL && strstr(kiln_last_error(), "dims is NULL"));
}

static void test_equal_copy(void) {
    kiln_value *a = sample(), *b = sample();
    REQUIRE(a && b);
    CHECK(kiln_value_equal(a, b));           /* NaN compares by bits */
    kiln_value *c = kiln_value_copy(a);
    REQUIRE(c);
    CHECK(kiln_value_equal(a, c));
    CHECK(kiln_value_map_get(c, "weights") != kiln_value_map_get(a, "weights"));
    CHECK_OK(kiln_value_map_set(c, "count", kiln_value_int64(0)));
    CHECK(!kiln_value_equal(a, c));
    CHECK_OK(kiln_value_map_set(c, "count", kiln_value_int64(-1234567890123ll)));
    CHECK(kiln_value_equal(a, c));
    /* map equality ignores key order */
    kiln_value *m1 = kiln_value_map(), *m2 = kiln_value_map();
    REQUIRE(m1 && m2);
    CHECK_OK(kiln_value_map_set(m1, "x", kiln_value_int64(1)));
    CHECK_OK(kiln_value_map_set(m1, "y", kiln_value_int64(2)));
    CHECK_OK(kiln_value_map_set(m2, "y", kiln_value_int64(2)));
    CHECK(!kiln_value_equal(m1, m2));
    CHECK_OK(kiln_value_map_set(m2, "x", kiln_value_int64(1)));
    CHECK(kiln_value_equal(m1, m2));
    CHECK_OK(kiln_value_map_set(m2, "x", kiln_value_float64(1)));
    CHECK(!kiln_value_equal(m1, m2));
    /* floats by bit pattern, arrays by shape as well as bytes */
    kiln_value *z = kiln_value_float64(0.0), *nz = kiln_value_float64(-0.0);
    CHECK(!kiln_value_equal(z, nz));
    float f6[6] = {0};
    int64_t d23[2] = {2, 3}, d32[2] = {3, 2}, d6[1] = {6};
    kiln_value *x1 = kiln_value_array(KILN_FLOAT32, 2, d23, f6), *x2 = kiln_value_array(KILN_FLOAT32, 2, d32, f6);
    kiln_value *x3 = kiln_value_array(KILN_FLOAT32, 1, d6, f6), *x4 = kiln_value_array(KILN_INT32, 2, d23, f6);
    kiln_value *x5 = kiln_value_array(KILN_FLOAT32, 2, d23, f6);
    CHECK(!kiln_value_equal(x1, x2) && !kiln_value_equal(x1, x3) && !kiln_value_equal(x1, x4));
    CHECK(kiln_value_equal(x1, x5));
    CHECK(!kiln_value_equal(x1, NULL) && kiln_value_equal(NULL, NULL));
    CHECK(kiln_value_copy(NULL) == NULL);
    kiln_value *l1 = kiln_value_list(), *l2 = kiln_value_list();
    CHECK(kiln_value_equal(l1, l2) && !kiln_value_equal(l1, m1));
    kiln_value *vals[] = {a, b, c, m1, m2, z, nz, x1, x2, x3, x4, x5, l1, l2};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) kiln_value_free(vals[i]);
}

/* --- the binary format ------------------------------------------------------------ */

static void test_golden_bytes(void) {
    /* {"a": [true, 7], "s": "hi", "t": int32[2] {1, 2}} */
    kiln_value *m = kiln_value_map(), *l = kiln_value_list();
    REQUIRE(m && l);
    CHECK_OK(kiln_value_list_append(l, kiln_value_bool(true)));
    CHECK_OK(kiln_value_list_append(l, kiln_value_int64(7)));
    CHECK_OK(kiln_value_map_set(m, "a", l));
    CHECK_OK(kiln_value_map_set(m, "s", kiln_value_string("hi", 2)));
    int32_t t[2] = {1, 2};
    int64_t two = 2;
    CHECK_OK(kiln_value_map_set(m, "t", kiln_value_array(KILN_INT32, 1, &two, t)));
    bytes want = {0};
    u8(&want, 7); u64(&want, 3);
    str(&want, "a"); u8(&want, 6); u64(&want, 2); u8(&want, 1); u8(&want, 1); u8(&want, 2); u64(&want, 7);
    str(&want, "s"); u8(&want, 4); str(&want, "hi");
    str(&want, "t"); u8(&want, 8); u8(&want, KILN_INT32); u8(&want, 1); u64(&want, 2); u64(&want, 8);
    raw(&want, "\x01\x00\x00\x00\x02\x00\x00\x00", 8);
    uint8_t *enc;
    size_t size;
    CHECK_OK(kiln_value_encode(m, &enc, &size));
    CHECK(size == want.n && memcmp(enc, want.b, size) == 0);
    kiln_free(enc);
    bytes f = {0};
    u8(&f, 3); u64(&f, 0x3ff8000000000000ull);   /* 1.5 */
    kiln_value *v;
    CHECK_OK(kiln_value_decode(f.b, f.n, &v));
    CHECK(kiln_value_as_float64(v) == 1.5);
    kiln_value_free(v);
    kiln_value_free(m);
}

static void test_round_trip(void) {
    kiln_value *all = sample();
    REQUIRE(all);
    kiln_value *each[] = {
        kiln_value_none(), kiln_value_bool(false), kiln_value_bool(true), kiln_value_int64(INT64_MAX),
        kiln_value_int64(INT64_MIN), kiln_value_float64(INFINITY), kiln_value_float64(-1e300),
        kiln_value_string("", 0), kiln_value_string("\xf0\x9f\x98\x80", 4), kiln_value_bytes("", 0),
        kiln_value_bytes("\0\0", 2), kiln_value_list(), kiln_value_map(), sample_array(), all,
    };
    for (size_t i = 0; i < sizeof each / sizeof each[0]; i++) {
        REQUIRE(each[i]);
        uint8_t *enc;
        size_t size;
        kiln_value *back;
        CHECK_OK(kiln_value_encode(each[i], &enc, &size));
        CHECK_OK(kiln_value_decode(enc, size, &back));
        CHECK(kiln_value_equal(each[i], back));
        CHECK(kiln_value_get_type(back) == kiln_value_get_type(each[i]));
        /* re-encoding gives the same bytes: the format is canonical for a value */
        uint8_t *again;
        size_t size2;
        CHECK_OK(kiln_value_encode(back, &again, &size2));
        CHECK(size2 == size && memcmp(again, enc, size) == 0);
        kiln_free(again);
        kiln_free(enc);
        kiln_value_free(back);
        kiln_value_free(each[i]);
    }
}

static void test_truncations(void) {
    kiln_value *all = sample();
    REQUIRE(all);
    uint8_t *enc;
    size_t size;
    CHECK_OK(kiln_value_encode(all, &enc, &size));
    int bad = 0;
    for (size_t n = 0; n < size; n++) {
        /* a copy of exactly n bytes, so ASan sees any read past the end */
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, enc, n);
        kiln_value *v = NULL;
        kiln_status st = kiln_value_decode(n ? cut : NULL, n, &v);
        if (st != KILN_ERROR_CORRUPT || v || !strstr(kiln_last_error(), "byte offset")) bad++;
        free(cut);
    }
    CHECK(bad == 0);
    fprintf(stderr, "  %zu truncations rejected\n", size);
    kiln_free(enc);
    kiln_value_free(all);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_byte_flips(void) {
    kiln_value *all = sample();
    REQUIRE(all);
    uint8_t *enc;
    size_t size;
    CHECK_OK(kiln_value_encode(all, &enc, &size));
    uint8_t *buf = malloc(size);
    int decoded = 0, rejected = 0, bad = 0;
    for (int round = 0; round < 5000; round++) {
        memcpy(buf, enc, size);
        int flips = 1 + (int)(rng() % 3);
        for (int k = 0; k < flips; k++) {
            size_t at = rng() % size;
            buf[at] = rng() % 4 ? (uint8_t)(buf[at] ^ (1u << (rng() % 8))) : (uint8_t)rng();
        }
        kiln_value *v = NULL;
        kiln_status st = kiln_value_decode(buf, size, &v);
        if (st == KILN_OK) {
            /* whatever decodes is a real value: it re-encodes to the same bytes */
            uint8_t *again;
            size_t n;
            decoded++;
            if (kiln_value_encode(v, &again, &n) != KILN_OK || n != size || memcmp(again, buf, n) != 0) bad++;
            else kiln_free(again);
            kiln_value_free(v);
        } else {
            rejected++;
            if (st != KILN_ERROR_CORRUPT || v || !strstr(kiln_last_error(), "byte offset")) bad++;
        }
    }
    /* random buffers */
    for (int round = 0; round < 5000; round++) {
        size_t n = rng() % 64;
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(rng() % 4 ? rng() % 10 : rng());
        kiln_value *v = NULL;
        kiln_status st = kiln_value_decode(buf, n, &v);
        if (st == KILN_OK) kiln_value_free(v);
        else if (st != KILN_ERROR_CORRUPT || v) bad++;
    }
    fprintf(stderr, "  flips: %d decoded, %d rejected\n", decoded, rejected);
    CHECK(bad == 0);
    CHECK(decoded > 100 && rejected > 100);
    free(buf);
    kiln_free(enc);
    kiln_value_free(all);
}

static void test_rejections(void) {
    bytes s;
    #define FRESH() (memset(&s, 0, sizeof s), &s)
    (void)FRESH();
    CHECK(rejects(&s, "byte offset 0: truncated value tag"));
    u8(FRESH(), 0); u8(&s, 0);
    CHECK(rejects(&s, "byte offset 1: 1 trailing bytes"));
    u8(FRESH(), 9);
    CHECK(rejects(&s, "byte offset 0: unknown value tag 0x09"));
    u8(FRESH(), 0xff);
    CHECK(rejects(&s, "unknown value tag 0xff"));
    u8(FRESH(), 1); u8(&s, 2);
    CHECK(rejects(&s, "byte offset 1: bool byte 0x02"));
    u8(FRESH(), 2); u8(&s, 0); u8(&s, 0);
    CHECK(rejects(&s, "byte offset 1: truncated int64 (needs 8 bytes, 2 left)"));
    u8(FRESH(), 4); u64(&s, 3); raw(&s, "ab", 2);
    CHECK(rejects(&s, "byte offset 9: truncated string (needs 3 bytes, 2 left)"));
    u8(FRESH(), 4); u64(&s, UINT64_MAX);
    CHECK(rejects(&s, "truncated string"));
    u8(FRESH(), 4); str(&s, "ok\xe2\x28\xa1");
    CHECK(rejects(&s, "byte offset 11: string is not valid UTF-8"));
    /* lists and maps */
    u8(FRESH(), 6); u64(&s, 1000);
    CHECK(rejects(&s, "byte offset 1: list count 1000 exceeds the 0 bytes left"));
    u8(FRESH(), 6); u64(&s, UINT64_MAX); u8(&s, 0);
    CHECK(rejects(&s, "list count 18446744073709551615 exceeds"));
    u8(FRESH(), 6); u64(&s, 2); u8(&s, 0); u8(&s, 2);
    CHECK(rejects(&s, "byte offset 11: truncated int64"));
    u8(FRESH(), 7); u64(&s, 2); str(&s, "k"); u8(&s, 0); str(&s, "k"); u8(&s, 1); u8(&s, 1);
    CHECK(rejects(&s, "byte offset 19: duplicate map key \"k\""));
    u8(FRESH(), 7); u64(&s, 3); str(&s, "a"); u8(&s, 0); str(&s, "b"); u8(&s, 0); str(&s, "a"); u8(&s, 0);
    CHECK(rejects(&s, "byte offset 29: duplicate map key \"a\""));
    u8(FRESH(), 7); u64(&s, 1); str(&s, "\xc3"); u8(&s, 0);
    CHECK(rejects(&s, "byte offset 17: map key is not valid UTF-8"));
    u8(FRESH(), 7); u64(&s, 1); u64(&s, 3); raw(&s, "a\0b", 3); u8(&s, 0);
    CHECK(rejects(&s, "byte offset 18: map key contains a NUL byte"));
    u8(FRESH(), 7); u64(&s, 1); str(&s, "k");
    CHECK(rejects(&s, "byte offset 18: truncated value tag"));
    u8(FRESH(), 7); u64(&s, 1); u64(&s, 0);
    CHECK(rejects(&s, "byte offset 1: map count 1 exceeds the 8 bytes left"));
    u8(FRESH(), 7); u64(&s, 1); u64(&s, 100); raw(&s, "k", 1);
    CHECK(rejects(&s, "byte offset 17: truncated map key"));
    /* nesting: 64 lists decode, 65 do not */
    (void)FRESH();
    for (int i = 0; i < 64; i++) { u8(&s, 6); u64(&s, i < 63 ? 1 : 0); }
    kiln_value *v;
    CHECK_OK(kiln_value_decode(s.b, s.n, &v));
    kiln_value_free(v);
    (void)FRESH();
    for (int i = 0; i < 65; i++) { u8(&s, 6); u64(&s, i < 64 ? 1 : 0); }
    CHECK(rejects(&s, "byte offset 576: list nests deeper than 64"));
    (void)FRESH();
    for (int i = 0; i < 200; i++) { u8(&s, 7); u64(&s, 1); str(&s, ""); }
    CHECK(rejects(&s, "nests deeper than 64"));
    /* arrays */
    u8(FRESH(), 8); u8(&s, KILN_DTYPE_COUNT);
    CHECK(rejects(&s, "byte offset 1: unknown array dtype 8"));
    u8(FRESH(), 8); u8(&s, KILN_INT8); u8(&s, 9);
    CHECK(rejects(&s, "byte offset 2: array rank 9 exceeds 8"));
    u8(FRESH(), 8); u8(&s, KILN_INT8); u8(&s, 2); u64(&s, 1); u64(&s, (uint64_t)-3);
    CHECK(rejects(&s, "byte offset 11: array dimension 1 is negative (-3)"));
    u8(FRESH(), 8); u8(&s, KILN_INT64); u8(&s, 2); u64(&s, 1ull << 32); u64(&s, 1ull << 30); u64(&s, 0);
    CHECK(rejects(&s, "byte size of int64[2 dims] overflows"));
    u8(FRESH(), 8); u8(&s, KILN_INT32); u8(&s, 1); u64(&s, 2); u64(&s, 4); u64(&s, 0);
    CHECK(rejects(&s, "byte offset 11: array data is 4 bytes but its shape needs 8"));
    u8(FRESH(), 8); u8(&s, KILN_INT32); u8(&s, 1); u64(&s, 2); u64(&s, 8); u64(&s, 0);
    CHECK(kiln_value_decode(s.b, s.n, &v) == KILN_OK);   /* exactly 8 left: fine */
    kiln_value_free(v);
    u8(FRESH(), 8); u8(&s, KILN_INT32); u8(&s, 1); u64(&s, 2); u64(&s, 8); u64(&s, 0); s.n -= 1;
    CHECK(rejects(&s, "byte offset 19: truncated array data (needs 8 bytes, 7 left)"));
    u8(FRESH(), 8); u8(&s, KILN_INT32); u8(&s, 3); u64(&s, 2);
    CHECK(rejects(&s, "byte offset 11: truncated array dimension"));
    /* arguments */
    CHECK_FAILS(kiln_value_decode(NULL, 3, &v), KILN_ERROR_INVALID_ARGUMENT, "data is NULL");
    CHECK_FAILS(kiln_value_decode(s.b, s.n, NULL), KILN_ERROR_INVALID_ARGUMENT, "out is NULL");
    uint8_t *enc;
    size_t size;
    CHECK_FAILS(kiln_value_encode(NULL, &enc, &size), KILN_ERROR_INVALID_ARGUMENT, "value is NULL");
    #undef FRESH
}

/* --- out of memory ------------------------------------------------------------------ */

/* Build, encode, decode, copy and compare; every failure must be NO_MEMORY. */
static kiln_status oom_round(void) {
    kiln_value *v = sample(), *back = NULL, *copy = NULL;
    uint8_t *enc = NULL;
    size_t size;
    kiln_status st = v ? KILN_OK : KILN_ERROR_NO_MEMORY;
    if (st == KILN_OK) st = kiln_value_encode(v, &enc, &size);
    if (st == KILN_OK) st = kiln_value_decode(enc, size, &back);
    if (st == KILN_OK && !(copy = kiln_value_copy(back))) st = KILN_ERROR_NO_MEMORY;
    if (st == KILN_OK && !kiln_value_equal(v, copy)) st = KILN_ERROR_INVALID_ARGUMENT;
    kiln_value_free(copy);
    kiln_value_free(back);
    kiln_free(enc);
    kiln_value_free(v);
    return st;
}

static void test_alloc_failures(void) {
    kiln_status st = KILN_ERROR_NO_MEMORY;
    long n;
    int wrong = 0;
    for (n = 0; n < 100000; n++) {
        kiln_alloc_fail_after(n);
        kiln_clear_error();
        st = oom_round();
        kiln_alloc_fail_after(-1);
        if (st == KILN_OK) break;
        if (st != KILN_ERROR_NO_MEMORY || !strstr(kiln_last_error(), "memory")) {
            wrong++;
            fprintf(stderr, "  fail_after(%ld): %s: %s\n", n, kiln_status_string(st), kiln_last_error());
        }
    }
    fprintf(stderr, "  succeeded after %ld injected failures\n", n);
    CHECK(st == KILN_OK);
    CHECK(n > 50);
    CHECK(wrong == 0);
}

int main(void) {
    TEST_RUN(test_scalars);
    TEST_RUN(test_containers);
    TEST_RUN(test_arrays);
    TEST_RUN(test_equal_copy);
    TEST_RUN(test_golden_bytes);
    TEST_RUN(test_round_trip);
    TEST_RUN(test_truncations);
    TEST_RUN(test_byte_flips);
    TEST_RUN(test_rejections);
    TEST_RUN(test_alloc_failures);
    return test_summary();
}
