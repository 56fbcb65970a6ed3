/* test_exprs.c — the symbolic dimension expression pool. */
#include <inttypes.h>
#include <stdlib.h>

#include "test.h"
#include "core/alloc.h"
#include "core/error.h"
#include "shape/exprs.h"

#define C(v)    kiln_expr_const(p, (v))
#define B(op, a, b) kiln_expr_binary(p, KILN_EXPR_##op, (a), (b))

static int64_t const_of(const kiln_exprs *p, kiln_expr e) {
    int64_t v = INT64_MIN + 12345;
    kiln_expr_is_const(p, e, &v);
    return v;
}

static const char *text(const kiln_exprs *p, kiln_expr e) {
    static char buf[512];
    kiln_expr_format(p, e, buf, sizeof buf);
    return buf;
}

static void test_hash_consing(void) {
    kiln_exprs *p = kiln_exprs_create();
    REQUIRE(p);
    kiln_expr c5 = C(5), d0 = kiln_exprs_dim(p, 0), d1 = kiln_exprs_dim(p, 1);
    CHECK(c5 >= 0 && d0 >= 0 && d1 >= 0 && d0 != d1);
    CHECK(C(5) == c5);
    CHECK(kiln_exprs_dim(p, 0) == d0);
    size_t before = p->count;
    kiln_expr s = B(ADD, d0, d1), m = B(MUL, d1, d0);
    CHECK(B(ADD, d1, d0) == s);                      /* commutative: canonical order */
    CHECK(B(MUL, d0, d1) == m);
    CHECK(B(MIN, d1, d0) == B(MIN, d0, d1));
    CHECK(B(MAX, d1, d0) == B(MAX, d0, d1));
    CHECK(B(EQ, d1, d0) == B(EQ, d0, d1));
    CHECK(B(SUB, d1, d0) != B(SUB, d0, d1));         /* not commutative */
    CHECK(B(LT, d1, d0) != B(LT, d0, d1));
    CHECK(B(FLOORDIV, d1, d0) != B(FLOORDIV, d0, d1));
    CHECK(p->nodes[s].a < p->nodes[s].b);
    size_t after = p->count;
    CHECK(after == before + 2 + 2 + 1 + 2 + 2 + 2);
    /* building a compound expression a second time adds nothing */
    kiln_expr x = B(CEILDIV, B(ADD, B(MUL, d0, C(3)), d1), C(7));
    size_t n = p->count;
    CHECK(B(CEILDIV, B(ADD, d1, B(MUL, C(3), d0)), C(7)) == x);
    CHECK(p->count == n);
    /* many distinct nodes: the table grows and every one is still found */
    kiln_expr ids[2000];
    for (int i = 0; i < 2000; i++) ids[i] = B(ADD, d0, C(i + 100));
    n = p->count;
    int same = 1;
    for (int i = 0; i < 2000; i++) same &= B(ADD, C(i + 100), d0) == ids[i];
    CHECK(same);
    CHECK(p->count == n);
    CHECK(p->table_size >= 2 * p->count && (p->table_size & (p->table_size - 1)) == 0);
    kiln_exprs_free(p);
}

static void test_folding(void) {
    kiln_exprs *p = kiln_exprs_create();
    REQUIRE(p);
    CHECK(const_of(p, B(ADD, C(2), C(3))) == 5);
    CHECK(const_of(p, B(SUB, C(2), C(3))) == -1);
    CHECK(const_of(p, B(MUL, C(-4), C(3))) == -12);
    CHECK(const_of(p, B(MIN, C(-4), C(3))) == -4);
    CHECK(const_of(p, B(MAX, C(-4), C(3))) == 3);
    CHECK(const_of(p, B(EQ, C(3), C(3))) == 1);
    CHECK(const_of(p, B(EQ, C(3), C(4))) == 0);
    CHECK(const_of(p, B(LT, C(3), C(4))) == 1);
    CHECK(const_of(p, B(LT, C(4), C(3))) == 0);
    CHECK(const_of(p, B(LT, C(-4), C(3))) == 1);
    /* floor and ceil division, every sign combination, exact and inexact */
    static const struct { int64_t a, b, floor, ceil; } div[] = {
        {7, 2, 3, 4}, {-7, 2, -4, -3}, {7, -2, -4, -3}, {-7, -2, 3, 4},
        {6, 2, 3, 3}, {-6, 2, -3, -3}, {6, -2, -3, -3}, {-6, -2, 3, 3},
        {0, 5, 0, 0}, {0, -5, 0, 0}, {1, 3, 0, 1}, {-1, 3, -1, 0}, {1, -3, -1, 0}, {-1, -3, 0, 1},
        {INT64_MAX, 2, INT64_MAX / 2, INT64_MAX / 2 + 1}, {INT64_MIN, 2, INT64_MIN / 2, INT64_MIN / 2},
        {INT64_MIN, 3, -3074457345618258603, -3074457345618258602},
        {INT64_MIN, INT64_MAX, -2, -1}, {INT64_MAX, INT64_MIN, -1, 0}, {INT64_MIN, 1, INT64_MIN, INT64_MIN},
    };
    for (size_t i = 0; i < sizeof div / sizeof div[0]; i++) {
        int64_t f = const_of(p, B(FLOORDIV, C(div[i].a), C(div[i].b)));
        int64_t c = const_of(p, B(CEILDIV, C(div[i].a), C(div[i].b)));
        if (f != div[i].floor || c != div[i].ceil)
            fprintf(stderr, "  %" PRId64 " / %" PRId64 ": floor %" PRId64 " ceil %" PRId64 "\n", div[i].a, div[i].b, f, c);
        CHECK(f == div[i].floor);
        CHECK(c == div[i].ceil);
    }
    /* the fold result is itself a hash-consed constant */
    CHECK(B(ADD, C(2), C(3)) == C(5));
    kiln_exprs_free(p);
}

static void test_identities(void) {
    kiln_exprs *p = kiln_exprs_create();
    REQUIRE(p);
    kiln_expr x = kiln_exprs_dim(p, 0), y = kiln_exprs_dim(p, 1);
    kiln_expr xy = B(SUB, x, y);
    CHECK(B(ADD, xy, C(0)) == xy);
    CHECK(B(ADD, C(0), xy) == xy);
    CHECK(B(SUB, xy, C(0)) == xy);
    CHECK(B(SUB, C(0), xy) != xy);
    CHECK(B(MUL, xy, C(1)) == xy);
    CHECK(B(MUL, C(1), xy) == xy);
    CHECK(const_of(p, B(MUL, xy, C(0))) == 0);
    CHECK(const_of(p, B(MUL, C(0), xy)) == 0);
    CHECK(const_of(p, B(SUB, xy, xy)) == 0);
    CHECK(B(FLOORDIV, xy, C(1)) == xy);
    CHECK(B(CEILDIV, xy, C(1)) == xy);
    CHECK(B(FLOORDIV, C(1), xy) != xy);
    CHECK(B(MIN, xy, xy) == xy);
    CHECK(B(MAX, xy, xy) == xy);
    CHECK(const_of(p, B(EQ, xy, xy)) == 1);
    CHECK(const_of(p, B(LT, xy, xy)) == 0);
    CHECK(!kiln_expr_is_const(p, B(EQ, x, y), NULL));
    kiln_exprs_free(p);
}

static void test_errors(void) {
    kiln_exprs *p = kiln_exprs_create();
    REQUIRE(p);
    CHECK_OK(kiln_exprs_name_dim(p, 0, "batch"));
    kiln_expr batch = kiln_exprs_dim(p, 0);
    int64_t v = 0, dims[1] = {4};

    /* a fold that overflows keeps the node; evaluation reports it */
    kiln_expr cmax = C(INT64_MAX), c1 = C(1);     /* ids in this order: text "(max + 1)" */
    kiln_expr big = B(ADD, cmax, c1);
    REQUIRE(big >= 0);
    CHECK(!kiln_expr_is_const(p, big, NULL));
    CHECK_FAILS(kiln_expr_eval(p, big, dims, 1, &v), KILN_ERROR_SHAPE, "(9223372036854775807 + 1)");
    CHECK(strstr(kiln_last_error(), "overflow"));
    CHECK_FAILS(kiln_expr_eval(p, B(SUB, C(INT64_MIN), C(1)), NULL, 0, &v), KILN_ERROR_SHAPE, "overflow");
    CHECK_FAILS(kiln_expr_eval(p, B(MUL, C(INT64_MAX / 2), C(3)), NULL, 0, &v), KILN_ERROR_SHAPE, "overflow");
    CHECK_FAILS(kiln_expr_eval(p, B(FLOORDIV, C(INT64_MIN), C(-1)), NULL, 0, &v), KILN_ERROR_SHAPE,
                "(-9223372036854775808 // -1)");
    CHECK_FAILS(kiln_expr_eval(p, B(CEILDIV, C(INT64_MIN), C(-1)), NULL, 0, &v), KILN_ERROR_SHAPE, "overflow");
    kiln_expr z = B(FLOORDIV, C(7), C(0));
    CHECK(!kiln_expr_is_const(p, z, NULL));
    CHECK_FAILS(kiln_expr_eval(p, z, NULL, 0, &v), KILN_ERROR_SHAPE, "(7 // 0): division by zero");
    CHECK_FAILS(kiln_expr_eval(p, B(CEILDIV, C(7), C(0)), NULL, 0, &v), KILN_ERROR_SHAPE, "ceildiv(7, 0)");
    /* run-time failures, with the dimension in the text */
    kiln_expr q = B(FLOORDIV, C(100), B(SUB, batch, C(4)));
    CHECK_FAILS(kiln_expr_eval(p, q, dims, 1, &v), KILN_ERROR_SHAPE, "(100 // (batch - 4)): division by zero");
    dims[0] = 5;
    CHECK_OK(kiln_expr_eval(p, q, dims, 1, &v));
    CHECK(v == 100);
    dims[0] = INT64_MAX;
    CHECK_FAILS(kiln_expr_eval(p, B(MUL, batch, C(2)), dims, 1, &v), KILN_ERROR_SHAPE, "(batch * 2)");
    /* a dimension beyond the values given */
    CHECK_FAILS(kiln_expr_eval(p, kiln_exprs_dim(p, 3), dims, 1, &v), KILN_ERROR_SHAPE, "d3: needs dimension 3");
    /* eval of one expression is not failed by an unrelated bad node; eval_all is */
    int64_t *values = calloc(p->count + 16, sizeof *values);
    dims[0] = 8;
    CHECK_OK(kiln_expr_eval(p, q, dims, 1, &v));
    CHECK(v == 25);
    CHECK(kiln_exprs_eval_all(p, dims, 1, values) == KILN_ERROR_SHAPE);
    free(values);

    /* invalid ids, ops and pools */
    kiln_clear_error();
    CHECK(B(ADD, batch, 9999) == KILN_EXPR_INVALID);
    CHECK(strstr(kiln_last_error(), "9999"));
    CHECK(B(ADD, -7, batch) == KILN_EXPR_INVALID);
    CHECK(strstr(kiln_last_error(), "-7"));
    kiln_error(KILN_ERROR_SHAPE, "first failure");
    CHECK(B(ADD, KILN_EXPR_INVALID, batch) == KILN_EXPR_INVALID);
    CHECK(B(MUL, batch, B(SUB, KILN_EXPR_INVALID, C(1))) == KILN_EXPR_INVALID);
    CHECK(strcmp(kiln_last_error(), "first failure") == 0);   /* propagated, message kept */
    CHECK_FAILS(kiln_expr_eval(p, KILN_EXPR_INVALID, NULL, 0, &v), KILN_ERROR_INVALID_ARGUMENT, "first failure");
    CHECK(kiln_expr_binary(p, (kiln_expr_op)99, batch, batch) == KILN_EXPR_INVALID);
    CHECK(strstr(kiln_last_error(), "unknown binary expression op 99"));
    CHECK(kiln_expr_binary(p, KILN_EXPR_CONST, batch, batch) == KILN_EXPR_INVALID);
    CHECK(kiln_expr_binary(p, KILN_EXPR_DIM, batch, batch) == KILN_EXPR_INVALID);
    CHECK(kiln_expr_binary(p, (kiln_expr_op)-3, batch, batch) == KILN_EXPR_INVALID);
    CHECK(kiln_expr_binary(NULL, KILN_EXPR_ADD, 0, 0) == KILN_EXPR_INVALID);
    CHECK(kiln_expr_const(NULL, 1) == KILN_EXPR_INVALID);
    CHECK(kiln_exprs_dim(p, -1) == KILN_EXPR_INVALID);
    CHECK(kiln_exprs_dim(NULL, 0) == KILN_EXPR_INVALID);
    CHECK(!kiln_expr_is_const(p, 9999, &v));
    CHECK(!kiln_expr_is_const(NULL, 0, &v));
    CHECK_FAILS(kiln_expr_eval(p, 9999, NULL, 0, &v), KILN_ERROR_INVALID_ARGUMENT, "9999");
    CHECK_FAILS(kiln_expr_eval(NULL, 0, NULL, 0, &v), KILN_ERROR_INVALID_ARGUMENT, "pool");
    CHECK_FAILS(kiln_expr_eval(p, batch, NULL, 1, &v), KILN_ERROR_INVALID_ARGUMENT, "dim_values");
    CHECK_FAILS(kiln_expr_eval(p, batch, dims, -1, &v), KILN_ERROR_INVALID_ARGUMENT, "negative");
    CHECK_FAILS(kiln_exprs_name_dim(p, -1, "x"), KILN_ERROR_INVALID_ARGUMENT, "-1");
    CHECK_FAILS(kiln_exprs_name_dim(p, 0, NULL), KILN_ERROR_INVALID_ARGUMENT, "name");
    CHECK_FAILS(kiln_exprs_eval_all(NULL, NULL, 0, NULL), KILN_ERROR_INVALID_ARGUMENT, "pool");
    kiln_exprs_free(p);
    kiln_exprs_free(NULL);
}

static void test_format(void) {
    kiln_exprs *p = kiln_exprs_create();
    REQUIRE(p);
    CHECK_OK(kiln_exprs_name_dim(p, 0, "batch"));
    CHECK_OK(kiln_exprs_name_dim(p, 2, "seq"));
    CHECK_OK(kiln_exprs_name_dim(p, 2, "seq_len"));          /* renaming replaces */
    kiln_expr b = kiln_exprs_dim(p, 0), d1 = kiln_exprs_dim(p, 1), s = kiln_exprs_dim(p, 2);
    kiln_expr d7 = kiln_exprs_dim(p, 7);
    CHECK(strcmp(text(p, b), "batch") == 0);
    CHECK(strcmp(text(p, d1), "d1") == 0);
    CHECK(strcmp(text(p, d7), "d7") == 0);
    CHECK(strcmp(text(p, s), "seq_len") == 0);
    CHECK(strcmp(text(p, C(-42)), "-42") == 0);
    CHECK(strcmp(text(p, B(MUL, b, C(16))), "(batch * 16)") == 0);
    CHECK(strcmp(text(p, B(ADD, b, C(-3))), "(batch + -3)") == 0);
    CHECK(strcmp(text(p, B(SUB, s, b)), "(seq_len - batch)") == 0);
    CHECK(strcmp(text(p, B(FLOORDIV, s, C(2))), "(seq_len // 2)") == 0);
    CHECK(strcmp(text(p, B(CEILDIV, s, C(64))), "ceildiv(seq_len, 64)") == 0);
    CHECK(strcmp(text(p, B(MIN, b, d1)), "min(batch, d1)") == 0);
    CHECK(strcmp(text(p, B(MAX, b, d1)), "max(batch, d1)") == 0);
    CHECK(strcmp(text(p, B(EQ, b, d1)), "(batch == d1)") == 0);
    CHECK(strcmp(text(p, B(LT, d1, b)), "(d1 < batch)") == 0);
    /* commutative operands print in id order: build the left one first */
    kiln_expr left = B(ADD, b, C(1));
    kiln_expr nested = B(MUL, left, B(CEILDIV, B(SUB, s, C(1)), C(2)));
    CHECK(strcmp(text(p, nested), "((batch + 1) * ceildiv((seq_len - 1), 2))") == 0);
    /* snprintf-style: the length needed, a terminated prefix */
    char small[8];
    CHECK(kiln_expr_format(p, nested, small, sizeof small) == strlen("((batch + 1) * ceildiv((seq_len - 1), 2))"));
    CHECK(strcmp(small, "((batch") == 0);
    CHECK(kiln_expr_format(p, nested, NULL, 0) == 41);
    small[0] = 'x';
    CHECK(kiln_expr_format(p, nested, small, 1) == 41 && small[0] == '\0');
    CHECK(strcmp(text(p, 12345), "<invalid>") == 0);
    CHECK(strstr(kiln_last_error(), "12345"));
    /* a DAG whose text doubles at each level stays bounded */
    kiln_expr e = b;
    for (int i = 0; i < 64; i++) e = B(ADD, e, e);
    size_t len = kiln_expr_format(p, e, NULL, 0);
    CHECK(len > 1000 && len < (1u << 17));
    kiln_exprs_free(p);
}

/* --- property test: random expression trees vs. an independent reference --- */

typedef struct tree {
    int op;                 /* kiln_expr_op */
    int64_t value;          /* CONST value or DIM index */
    struct tree *a, *b;
} tree;

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return rng_state;
}

#define NDIMS 3
/* safe: small constants and non-zero divisors, so no node can fail when the
 * dimensions are in [1, 10] and depth <= 4 (|value| < 10^16). */
static tree *tree_random(int depth, int safe) {
    tree *t = calloc(1, sizeof *t);
    if (depth == 0 || rng() % 4 == 0) {
        if (rng() % 2) {
            t->op = KILN_EXPR_CONST;
            static const int64_t special[] = {0, 1, -1, 2, INT64_MAX, INT64_MIN, 1ll << 32};
            t->value = safe || rng() % 8 ? (int64_t)(rng() % 13) - 6 : special[rng() % 7];
        } else {
            t->op = KILN_EXPR_DIM;
            t->value = (int64_t)(rng() % NDIMS);
        }
        return t;
    }
    t->op = KILN_EXPR_ADD + (int)(rng() % (KILN_EXPR_OP_COUNT - KILN_EXPR_ADD));
    t->a = tree_random(depth - 1, safe);
    if (safe && (t->op == KILN_EXPR_FLOORDIV || t->op == KILN_EXPR_CEILDIV)) {
        t->b = calloc(1, sizeof *t->b);
        t->b->op = rng() % 2 ? KILN_EXPR_DIM : KILN_EXPR_CONST;
        t->b->value = t->b->op == KILN_EXPR_DIM ? (int64_t)(rng() % NDIMS)
                                                : (int64_t)(rng() % 6 + 1) * (rng() % 2 ? 1 : -1);
    } else {
        t->b = rng() % 6 == 0 ? t->a : tree_random(depth - 1, safe);   /* some x op x */
    }
    return t;
}

static void tree_free(tree *t) {
    if (!t) return;
    if (t->b != t->a) tree_free(t->b);
    tree_free(t->a);
    free(t);
}

/* Reference arithmetic in 128 bits: ok = 0 on overflow or division by zero. */
static int tree_eval(const tree *t, const int64_t *dims, int64_t *out) {
    if (t->op == KILN_EXPR_CONST) { *out = t->value; return 1; }
    if (t->op == KILN_EXPR_DIM) { *out = dims[t->value]; return 1; }
    int64_t x, y;
    if (!tree_eval(t->a, dims, &x) || !tree_eval(t->b, dims, &y)) return 0;
    __int128 a = x, b = y, r = 0;
    switch (t->op) {
    case KILN_EXPR_ADD: r = a + b; break;
    case KILN_EXPR_SUB: r = a - b; break;
    case KILN_EXPR_MUL: r = a * b; break;
    case KILN_EXPR_FLOORDIV:
    case KILN_EXPR_CEILDIV: {
        if (b == 0) return 0;
        /* floor(a/b) via the non-negative remainder; ceil(a/b) = -floor(-a/b) */
        __int128 n = t->op == KILN_EXPR_FLOORDIV ? a : -a;
        __int128 m = n % b;
        if (m != 0 && ((m < 0) != (b < 0))) m += b;
        r = (n - m) / b;
        if (t->op == KILN_EXPR_CEILDIV) r = -r;
        break;
    }
    case KILN_EXPR_MIN: r = a < b ? a : b; break;
    case KILN_EXPR_MAX: r = a > b ? a : b; break;
    case KILN_EXPR_EQ:  r = a == b; break;
    case KILN_EXPR_LT:  r = a < b; break;
    }
    if (r > INT64_MAX || r < INT64_MIN) return 0;
    *out = (int64_t)r;
    return 1;
}

static kiln_expr tree_build(kiln_exprs *p, const tree *t) {
    if (t->op == KILN_EXPR_CONST) return C(t->value);
    if (t->op == KILN_EXPR_DIM) return kiln_exprs_dim(p, (int32_t)t->value);
    return kiln_expr_binary(p, t->op, tree_build(p, t->a), tree_build(p, t->b));
}

/* Direct recursive evaluation of a pool node (no program order). */
static int node_eval(const kiln_exprs *p, kiln_expr e, const int64_t *dims, int64_t *out) {
    tree t = { p->nodes[e].op, p->nodes[e].value, NULL, NULL };
    if (t.op == KILN_EXPR_CONST || t.op == KILN_EXPR_DIM) return tree_eval(&t, dims, out);
    int64_t x, y;
    if (!node_eval(p, p->nodes[e].a, dims, &x) || !node_eval(p, p->nodes[e].b, dims, &y)) return 0;
    tree ca = { KILN_EXPR_CONST, x, NULL, NULL }, cb = { KILN_EXPR_CONST, y, NULL, NULL };
    t.a = &ca; t.b = &cb;
    return tree_eval(&t, dims, out);
}

/* eval_all on a pool where nothing can fail, against a recursive evaluation
 * of every node and the tree reference of every root. */
static void test_random_eval_all(void) {
    enum { COUNT = 300, ASSIGNMENTS = 10 };
    kiln_exprs *p = kiln_exprs_create();
    REQUIRE(p);
    tree *trees[COUNT];
    kiln_expr roots[COUNT];
    for (int i = 0; i < COUNT; i++) {
        trees[i] = tree_random(1 + i % 4, 1);
        roots[i] = tree_build(p, trees[i]);
        REQUIRE(roots[i] >= 0);
        size_t n = p->count;
        CHECK(tree_build(p, trees[i]) == roots[i]);        /* hash-consing */
        CHECK(p->count == n);
    }
    int64_t *values = malloc(p->count * sizeof *values);
    int bad = 0, nonconst = 0;
    for (int i = 0; i < COUNT; i++) nonconst += !kiln_expr_is_const(p, roots[i], NULL);
    for (int k = 0; k < ASSIGNMENTS; k++) {
        int64_t dims[NDIMS];
        for (int d = 0; d < NDIMS; d++) dims[d] = (int64_t)(rng() % 10) + 1;
        kiln_status st = kiln_exprs_eval_all(p, dims, NDIMS, values);
        CHECK(st == KILN_OK);
        if (st != KILN_OK) { fprintf(stderr, "  %s\n", kiln_last_error()); break; }
        for (size_t i = 0; i < p->count; i++) {
            int64_t r;
            if (!node_eval(p, (kiln_expr)i, dims, &r) || r != values[i]) bad++;
        }
        for (int i = 0; i < COUNT; i++) {
            int64_t want, got;
            if (!tree_eval(trees[i], dims, &want) || want != values[roots[i]]) bad++;
            if (kiln_expr_eval(p, roots[i], dims, NDIMS, &got) != KILN_OK || got != want) bad++;
        }
    }
    fprintf(stderr, "  %zu nodes, %d of %d roots not constant\n", p->count, nonconst, COUNT);
    CHECK(bad == 0);
    CHECK(nonconst > COUNT / 2);
    free(values);
    for (int i = 0; i < COUNT; i++) tree_free(trees[i]);
    kiln_exprs_free(p);
}

/* Expressions that overflow and divide by zero: kiln_expr_eval must agree
 * with the reference wherever the reference succeeds, and fail cleanly
 * only where the reference fails too. */
static void test_random_failures(void) {
    enum { COUNT = 400, ASSIGNMENTS = 8 };
    kiln_exprs *p = kiln_exprs_create();
    REQUIRE(p);
    tree *trees[COUNT];
    kiln_expr roots[COUNT];
    for (int i = 0; i < COUNT; i++) {
        trees[i] = tree_random(1 + i % 5, 0);
        roots[i] = tree_build(p, trees[i]);
        REQUIRE(roots[i] >= 0);
        size_t n = p->count;
        CHECK(tree_build(p, trees[i]) == roots[i]);
        CHECK(p->count == n);
    }
    int agree = 0, failed = 0, bad = 0;
    for (int k = 0; k < ASSIGNMENTS; k++) {
        int64_t dims[NDIMS];
        for (int d = 0; d < NDIMS; d++) dims[d] = (int64_t)(rng() % 21) - 10;
        if (k == ASSIGNMENTS - 1) dims[0] = INT64_MAX;
        if (k == ASSIGNMENTS - 2) dims[1] = INT64_MIN;
        for (int i = 0; i < COUNT; i++) {
            int64_t want = 0, got = 0, rec = 0;
            int ok_ref = tree_eval(trees[i], dims, &want);
            kiln_clear_error();
            kiln_status st = kiln_expr_eval(p, roots[i], dims, NDIMS, &got);
            int ok_rec = node_eval(p, roots[i], dims, &rec);
            /* simplifications (x*0, x-x) may remove a failing subtree, never add one */
            if (ok_ref && (st != KILN_OK || got != want)) {
                bad++;
                fprintf(stderr, "  expr %d %s: want %" PRId64 " got %" PRId64 " (%s)\n", i, text(p, roots[i]),
                        want, got, kiln_last_error());
            }
            if (st != KILN_OK && (ok_ref || st != KILN_ERROR_SHAPE || !strstr(kiln_last_error(), "shape expression")))
                bad++;
            if ((st == KILN_OK) != ok_rec || (ok_rec && rec != got)) bad++;
            agree += st == KILN_OK && ok_ref && got == want;
            failed += st != KILN_OK;
        }
    }
    fprintf(stderr, "  %zu nodes, %d agree, %d failed cleanly\n", p->count, agree, failed);
    CHECK(bad == 0);
    CHECK(agree > COUNT * ASSIGNMENTS / 2);
    CHECK(failed > 20);
    for (int i = 0; i < COUNT; i++) tree_free(trees[i]);
    kiln_exprs_free(p);
}

static void test_from_nodes(void) {
    kiln_exprs *p = kiln_exprs_create();
    REQUIRE(p);
    kiln_expr b = kiln_exprs_dim(p, 0), s = kiln_exprs_dim(p, 1);
    kiln_expr left = B(ADD, b, C(1));
    kiln_expr e = B(MUL, left, B(CEILDIV, s, C(4)));
    kiln_expr f = B(MAX, e, B(FLOORDIV, s, C(-3)));
    CHECK(kiln_exprs_max_dim(p) == 2);
    kiln_exprs *q = NULL;
    CHECK_OK(kiln_exprs_from_nodes(p->nodes, p->count, 2, &q));
    REQUIRE(q);
    CHECK(q->count == p->count);
    CHECK(kiln_exprs_max_dim(q) == 2);
    int64_t dims[2] = {3, 10}, v1, v2;
    CHECK_OK(kiln_expr_eval(q, f, dims, 2, &v1));
    CHECK_OK(kiln_expr_eval(p, f, dims, 2, &v2));
    CHECK(v1 == v2 && v1 == 12);
    CHECK(strcmp(text(q, e), "((d0 + 1) * ceildiv(d1, 4))") == 0);
    CHECK_OK(kiln_exprs_name_dim(q, 1, "seq"));
    CHECK(strcmp(text(q, e), "((d0 + 1) * ceildiv(seq, 4))") == 0);
    /* the hash table was rebuilt: building again finds the loaded nodes */
    size_t n = q->count;
    CHECK(kiln_expr_binary(q, KILN_EXPR_MUL, kiln_expr_binary(q, KILN_EXPR_CEILDIV, kiln_exprs_dim(q, 1),
                           kiln_expr_const(q, 4)), kiln_expr_binary(q, KILN_EXPR_ADD, kiln_expr_const(q, 1),
                           kiln_exprs_dim(q, 0))) == e);
    CHECK(q->count == n);
    CHECK(kiln_expr_binary(q, KILN_EXPR_ADD, e, f) == (kiln_expr)n);
    kiln_exprs_free(q);

    /* empty program */
    CHECK_OK(kiln_exprs_from_nodes(NULL, 0, 0, &q));
    CHECK(q && q->count == 0 && kiln_exprs_max_dim(q) == 0);
    CHECK(kiln_expr_const(q, 3) == 0);
    kiln_exprs_free(q);

    /* each kind of bad node */
    kiln_expr_node good[4] = {
        {KILN_EXPR_CONST, -1, -1, 5}, {KILN_EXPR_DIM, -1, -1, 1}, {KILN_EXPR_ADD, 0, 1, 0}, {KILN_EXPR_LT, 2, 1, 0},
    };
    CHECK_OK(kiln_exprs_from_nodes(good, 4, 2, &q));
    kiln_exprs_free(q);
    static const struct { int node; kiln_expr_node bad; int32_t dims; const char *msg; } cases[] = {
        {3, {KILN_EXPR_OP_COUNT, 2, 1, 0}, 2, "expression node 3: unknown op 11"},
        {3, {200, 2, 1, 0}, 2, "expression node 3: unknown op 200"},
        {0, {KILN_EXPR_CONST, 0, -1, 5}, 2, "expression node 0: constant leaf has operands (0, -1)"},
        {1, {KILN_EXPR_DIM, -1, 0, 1}, 2, "expression node 1: dimension leaf has operands (-1, 0)"},
        {1, {KILN_EXPR_DIM, -1, -1, 2}, 2, "expression node 1: dimension index 2 outside [0, 2)"},
        {1, {KILN_EXPR_DIM, -1, -1, -1}, 2, "expression node 1: dimension index -1 outside [0, 2)"},
        {1, {KILN_EXPR_DIM, -1, -1, 0}, 0, "expression node 1: dimension index 0 outside [0, 0)"},
        {2, {KILN_EXPR_ADD, 2, 1, 0}, 2, "expression node 2: operand a = 2 is not an earlier node"},
        {2, {KILN_EXPR_ADD, 0, 3, 0}, 2, "expression node 2: operand b = 3 is not an earlier node"},
        {2, {KILN_EXPR_ADD, -1, 1, 0}, 2, "expression node 2: operand a = -1 is not an earlier node"},
        {3, {KILN_EXPR_LT, 2, -5, 0}, 2, "expression node 3: operand b = -5 is not an earlier node"},
        {3, {KILN_EXPR_LT, 2, 1, 7}, 2, "expression node 3: operator node has value 7, want 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_expr_node nodes[4];
        memcpy(nodes, good, sizeof nodes);
        nodes[cases[i].node] = cases[i].bad;
        q = (kiln_exprs *)&q;
        CHECK_FAILS(kiln_exprs_from_nodes(nodes, 4, cases[i].dims, &q), KILN_ERROR_CORRUPT, cases[i].msg);
        CHECK(q == NULL);
    }
    CHECK_FAILS(kiln_exprs_from_nodes(good, 4, -1, &q), KILN_ERROR_CORRUPT, "-1");
    CHECK_FAILS(kiln_exprs_from_nodes(NULL, 4, 2, &q), KILN_ERROR_INVALID_ARGUMENT, "nodes");
    CHECK_FAILS(kiln_exprs_from_nodes(good, 4, 2, NULL), KILN_ERROR_INVALID_ARGUMENT, "out");
    CHECK_FAILS(kiln_exprs_from_nodes(good, (size_t)INT32_MAX + 1, 2, &q), KILN_ERROR_CORRUPT, "nodes");
    kiln_exprs_free(p);
}

/* One round of work that allocates: build, name, evaluate, reload. */
static kiln_status oom_round(void) {
    kiln_exprs *p = kiln_exprs_create(), *q = NULL;
    if (!p) return KILN_ERROR_NO_MEMORY;
    kiln_status st = kiln_exprs_name_dim(p, 0, "batch");
    if (st == KILN_OK) st = kiln_exprs_name_dim(p, 3, "seq");
    kiln_expr e = kiln_exprs_dim(p, 0);
    for (int i = 0; i < 40; i++) e = B(ADD, B(MUL, e, C(2 + i % 2)), kiln_exprs_dim(p, i % 4));
    if (st == KILN_OK && e < 0) st = kiln_last_error()[0] && strstr(kiln_last_error(), "out of memory")
                                   ? KILN_ERROR_NO_MEMORY : KILN_ERROR_INVALID_ARGUMENT;
    int64_t dims[4] = {1, 1, 1, 1}, v = 0;
    if (st == KILN_OK) st = kiln_expr_eval(p, e, dims, 4, &v);
    if (st == KILN_OK) st = kiln_exprs_from_nodes(p->nodes, p->count, 4, &q);
    if (st == KILN_OK && kiln_expr_binary(q, KILN_EXPR_ADD, e, kiln_expr_const(q, 1000)) < 0)
        st = KILN_ERROR_NO_MEMORY;
    kiln_exprs_free(q);
    kiln_exprs_free(p);
    return st;
}

static void test_alloc_failures(void) {
    kiln_status st = KILN_ERROR_NO_MEMORY;
    long n;
    int wrong = 0;
    for (n = 0; n < 10000; n++) {
        kiln_alloc_fail_after(n);
        kiln_clear_error();
        st = oom_round();
        kiln_alloc_fail_after(-1);
        if (st == KILN_OK) break;
        if (st != KILN_ERROR_NO_MEMORY || !strstr(kiln_last_error(), "out of memory")) {
            wrong++;
            fprintf(stderr, "  fail_after(%ld): %s: %s\n", n, kiln_status_string(st), kiln_last_error());
        }
    }
    fprintf(stderr, "  succeeded after %ld injected failures\n", n);
    CHECK(st == KILN_OK);
    CHECK(n > 5);
    CHECK(wrong == 0);
}

/* kiln_expr_simplify: the text `kiln inspect` would show, and values kept. */
static void check_simplifies(kiln_exprs *p, kiln_expr e, const char *want) {
    char got[256];
    kiln_expr s = kiln_expr_simplify(p, e);
    kiln_expr_format(p, s, got, sizeof got);
    if (strcmp(got, want) != 0) fprintf(stderr, "  simplify: got %s, want %s\n", got, want);
    CHECK(strcmp(got, want) == 0);
    /* Equal values wherever the original evaluates (sizes 1..6). */
    for (int64_t b = 1; b <= 6; b++)
        for (int64_t n = 1; n <= 6; n++) {
            int64_t dims[2] = {b, n}, v1 = 0, v2 = 0;
            if (kiln_expr_eval(p, e, dims, 2, &v1) != KILN_OK) continue;
            CHECK(kiln_expr_eval(p, s, dims, 2, &v2) == KILN_OK && v1 == v2);
        }
    CHECK(kiln_expr_simplify(p, s) == s);   /* a fixed point */
}

static void test_simplify(void) {
    kiln_exprs *p = kiln_exprs_create();
    REQUIRE(p != NULL);
    REQUIRE(kiln_exprs_name_dim(p, 0, "b") == KILN_OK && kiln_exprs_name_dim(p, 1, "n") == KILN_OK);
    kiln_expr b = kiln_exprs_dim(p, 0), n = kiln_exprs_dim(p, 1);
    check_simplifies(p, B(SUB, B(ADD, n, C(32)), C(32)), "n");                              /* the issue's */
    check_simplifies(p, B(FLOORDIV, B(MUL, C(8), B(MUL, b, n)), C(8)), "(b * n)");          /* examples */
    check_simplifies(p, B(FLOORDIV, B(MUL, B(MUL, b, n), C(64)), B(MUL, n, C(64))), "b");
    check_simplifies(p, B(ADD, B(MUL, C(2), n), B(SUB, n, C(1))), "((n * 3) - 1)");
    check_simplifies(p, B(SUB, b, B(ADD, b, n)), "(0 - n)");
    check_simplifies(p, B(MAX, C(0), B(MIN, n, C(INT64_MAX))), "n");
    check_simplifies(p, B(ADD, n, B(MUL, C(64), B(LT, n, C(0)))), "n");                      /* n + 64·(n < 0) */
    check_simplifies(p, B(MIN, B(MAX, C(0), C(0)), n), "0");
    check_simplifies(p, B(MAX, C(0), B(SUB, n, C(1))), "max((n - 1), 0)");                   /* may be negative */
    check_simplifies(p, B(FLOORDIV, B(ADD, n, C(1)), C(2)), "((n + 1) // 2)");               /* nothing to do */
    kiln_exprs_free(p);
}

int main(void) {
    TEST_RUN(test_simplify);
    TEST_RUN(test_hash_consing);
    TEST_RUN(test_folding);
    TEST_RUN(test_identities);
    TEST_RUN(test_errors);
    TEST_RUN(test_format);
    TEST_RUN(test_random_eval_all);
    TEST_RUN(test_random_failures);
    TEST_RUN(test_from_nodes);
    TEST_RUN(test_alloc_failures);
    return test_summary();
}
