/* exprs_simplify.c — rewriting a shape expression into a simpler equal one.
 *
 * Shape rules and importers build expressions mechanically: an ONNX graph's
 * Shape → Concat → Reshape chain gives ((seq + 1) - 1), ((batch * seq) //
 * seq), max(0, min(seq, 9223372036854775807))...  kiln_expr_simplify turns
 * them into seq, batch, seq, so that `kiln inspect` shows what a user wrote
 * and equal dimensions get equal ids.  The network stores simplified output
 * shapes; the engine reader accepts a stored shape equal to the rule's or to
 * its simplification (format/layer_verify.c), so engines written before
 * simplification existed still load.
 *
 * Rewrites (bottom-up, every result again an expression of the pool):
 *   - sums: an expression built of +, -, and products with a constant is a
 *     linear form Σ cᵢ·atomᵢ + c, rebuilt in atom order with the constants
 *     collected: (x + 1) - 1 → x, (2·x) + x → 3·x;
 *   - (a · b) // b → a and ceildiv(a · b, b) → a, for any b (sizes: a zero b
 *     leaves an empty tensor either way);
 *   - sizes are never negative: DIM leaves, and +, ·, min, max, //, ceildiv
 *     of non-negative operands, are ≥ 0, so max(0, x) → x, min(0, x) → 0,
 *     x < 0 → 0 for such x; min(x, INT64_MAX) → x for any x;
 *   - a product divided by a product: common factors cancel,
 *     ((b · s) · 64) // (s · 64) → b. */
#include <stdint.h>

#include "core/alloc.h"
#include "shape/exprs.h"

#define MAX_TERMS 16

typedef struct linear {
    int32_t   count;
    kiln_expr atom[MAX_TERMS];
    int64_t   coef[MAX_TERMS];
    int64_t   constant;
} linear;

static const kiln_expr_node *node(const kiln_exprs *p, kiln_expr e) { return &p->nodes[e]; }

static int is_const(const kiln_exprs *p, kiln_expr e, int64_t *v) {
    if (node(p, e)->op != KILN_EXPR_CONST) return 0;
    *v = node(p, e)->value;
    return 1;
}

/* x ≥ 0 for every value of the dims (which are sizes). */
static int nonneg(const kiln_exprs *p, kiln_expr e, int depth) {
    const kiln_expr_node *n = node(p, e);
    if (depth > 64) return 0;
    switch (n->op) {
    case KILN_EXPR_CONST: return n->value >= 0;
    case KILN_EXPR_DIM:
    case KILN_EXPR_EQ:
    case KILN_EXPR_LT: return 1;
    case KILN_EXPR_ADD:
    case KILN_EXPR_MUL:
    case KILN_EXPR_MIN: return nonneg(p, n->a, depth + 1) && nonneg(p, n->b, depth + 1);
    case KILN_EXPR_MAX: return nonneg(p, n->a, depth + 1) || nonneg(p, n->b, depth + 1);
    case KILN_EXPR_FLOORDIV:
    case KILN_EXPR_CEILDIV: {
        int64_t d;
        return nonneg(p, n->a, depth + 1) && is_const(p, n->b, &d) && d > 0;
    }
    default: return 0;
    }
}

/* Add k·e to the form; 0 when it does not fit or overflows. */
static int add_term(const kiln_exprs *p, linear *f, kiln_expr e, int64_t k, int depth) {
    const kiln_expr_node *n = node(p, e);
    int64_t v;
    if (depth > 32) return 0;
    if (n->op == KILN_EXPR_CONST) {
        int64_t t;
        return !__builtin_mul_overflow(k, n->value, &t) && !__builtin_add_overflow(f->constant, t, &f->constant);
    }
    if (n->op == KILN_EXPR_ADD) return add_term(p, f, n->a, k, depth + 1) && add_term(p, f, n->b, k, depth + 1);
    if (n->op == KILN_EXPR_SUB) {
        int64_t neg;
        if (__builtin_mul_overflow(k, -1, &neg)) return 0;
        return add_term(p, f, n->a, k, depth + 1) && add_term(p, f, n->b, neg, depth + 1);
    }
    if (n->op == KILN_EXPR_MUL && (is_const(p, n->a, &v) || is_const(p, n->b, &v))) {
        int64_t kv;
        kiln_expr other = node(p, n->a)->op == KILN_EXPR_CONST ? n->b : n->a;
        return !__builtin_mul_overflow(k, v, &kv) && add_term(p, f, other, kv, depth + 1);
    }
    for (int32_t i = 0; i < f->count; i++)
        if (f->atom[i] == e) return !__builtin_add_overflow(f->coef[i], k, &f->coef[i]);
    if (f->count == MAX_TERMS) return 0;
    /* keep atoms in id order: the rebuilt sum is then canonical */
    int32_t at = f->count;
    while (at > 0 && f->atom[at - 1] > e) {
        f->atom[at] = f->atom[at - 1];
        f->coef[at] = f->coef[at - 1];
        at--;
    }
    f->atom[at] = e;
    f->coef[at] = k;
    f->count++;
    return 1;
}

/* Σ positive terms, minus the negative ones, ± the constant. */
static kiln_expr rebuild(kiln_exprs *p, const linear *f) {
    kiln_expr sum = KILN_EXPR_INVALID;
    for (int pass = 0; pass < 2; pass++)
        for (int32_t i = 0; i < f->count; i++) {
            int64_t c = f->coef[i];
            if (c == 0 || (pass == 0) != (c > 0)) continue;
            int64_t mag = c > 0 ? c : (c == INT64_MIN ? c : -c);
            kiln_expr term = mag == 1 ? f->atom[i]
                                      : kiln_expr_binary(p, KILN_EXPR_MUL, kiln_expr_const(p, mag), f->atom[i]);
            if (sum == KILN_EXPR_INVALID)
                sum = c > 0 ? term : kiln_expr_binary(p, KILN_EXPR_SUB, kiln_expr_const(p, 0), term);
            else
                sum = kiln_expr_binary(p, c > 0 ? KILN_EXPR_ADD : KILN_EXPR_SUB, sum, term);
        }
    if (sum == KILN_EXPR_INVALID) return kiln_expr_const(p, f->constant);
    if (f->constant > 0) return kiln_expr_binary(p, KILN_EXPR_ADD, sum, kiln_expr_const(p, f->constant));
    if (f->constant < 0 && f->constant != INT64_MIN)
        return kiln_expr_binary(p, KILN_EXPR_SUB, sum, kiln_expr_const(p, -f->constant));
    if (f->constant < 0) return kiln_expr_binary(p, KILN_EXPR_ADD, sum, kiln_expr_const(p, f->constant));
    return sum;
}

/* A product as constant × factors (multiset, by id); 0 when it does not fit. */
typedef struct product {
    int32_t   count;
    kiln_expr factor[MAX_TERMS];
    int64_t   constant;
} product;

static int factor_into(const kiln_exprs *p, product *f, kiln_expr e, int depth) {
    const kiln_expr_node *n = node(p, e);
    if (depth > 32) return 0;
    if (n->op == KILN_EXPR_CONST) return !__builtin_mul_overflow(f->constant, n->value, &f->constant);
    if (n->op == KILN_EXPR_MUL) return factor_into(p, f, n->a, depth + 1) && factor_into(p, f, n->b, depth + 1);
    if (f->count == MAX_TERMS) return 0;
    f->factor[f->count++] = e;
    return 1;
}

/* a // b (or ceildiv) when b's factors are among a's and its constant divides
 * a's: the quotient's factors, rebuilt; KILN_EXPR_INVALID otherwise. */
static kiln_expr cancel(kiln_exprs *p, kiln_expr a, kiln_expr b) {
    product fa = {.constant = 1}, fb = {.constant = 1};
    if (!factor_into(p, &fa, a, 0) || !factor_into(p, &fb, b, 0) || fb.count == 0 || fb.constant <= 0 ||
        fa.constant % fb.constant != 0)
        return KILN_EXPR_INVALID;
    for (int32_t i = 0; i < fb.count; i++) {
        int32_t j = 0;
        while (j < fa.count && fa.factor[j] != fb.factor[i]) j++;
        if (j == fa.count) return KILN_EXPR_INVALID;
        fa.factor[j] = fa.factor[--fa.count];
    }
    kiln_expr r = kiln_expr_const(p, fa.constant / fb.constant);
    for (int32_t j = 0; j < fa.count; j++) r = kiln_expr_binary(p, KILN_EXPR_MUL, r, fa.factor[j]);
    return r;
}

/* memo[e] = simplified e + 1 (0: not yet), for the nodes that existed when
 * the call began: expressions are DAGs with much sharing. */
typedef struct simplifier {
    kiln_exprs *p;
    kiln_expr  *memo;
    size_t      memo_size;
} simplifier;

static kiln_expr simplify_node(simplifier *s, kiln_expr e, int depth);

static kiln_expr simplify(simplifier *s, kiln_expr e, int depth) {
    if (depth > 200 || !kiln_exprs_valid(s->p, e)) return e;
    if ((size_t)e < s->memo_size && s->memo[e]) return s->memo[e] - 1;
    kiln_expr r = simplify_node(s, e, depth);
    if ((size_t)e < s->memo_size && r >= 0) s->memo[e] = r + 1;
    return r;
}

static kiln_expr simplify_node(simplifier *s, kiln_expr e, int depth) {
    kiln_exprs *p = s->p;
    kiln_expr_node n = *node(p, e);   /* a copy: the node array may move as nodes are added */
    if (n.op == KILN_EXPR_CONST || n.op == KILN_EXPR_DIM) return e;
    kiln_expr a = simplify(s, n.a, depth + 1), b = simplify(s, n.b, depth + 1);
    if (a < 0 || b < 0) return KILN_EXPR_INVALID;
    int64_t v;
    switch (n.op) {
    case KILN_EXPR_ADD:
    case KILN_EXPR_SUB:
    case KILN_EXPR_MUL: {
        kiln_expr x = kiln_expr_binary(p, (kiln_expr_op)n.op, a, b);
        if (x < 0) return x;
        linear f = {0};
        if ((n.op != KILN_EXPR_MUL || is_const(p, a, &v) || is_const(p, b, &v)) && add_term(p, &f, x, 1, 0))
            return rebuild(p, &f);
        return x;
    }
    case KILN_EXPR_FLOORDIV:
    case KILN_EXPR_CEILDIV: {
        const kiln_expr_node *m = node(p, a);
        if (m->op == KILN_EXPR_MUL && (m->a == b || m->b == b)) return m->a == b ? m->b : m->a;
        kiln_expr q = cancel(p, a, b);
        if (q >= 0) return q;
        break;
    }
    case KILN_EXPR_MAX:
        if (is_const(p, a, &v) && v == 0 && nonneg(p, b, 0)) return b;
        if (is_const(p, b, &v) && v == 0 && nonneg(p, a, 0)) return a;
        break;
    case KILN_EXPR_MIN:
        if (is_const(p, a, &v) && v == INT64_MAX) return b;
        if (is_const(p, b, &v) && v == INT64_MAX) return a;
        if (is_const(p, a, &v) && v == 0 && nonneg(p, b, 0)) return a;
        if (is_const(p, b, &v) && v == 0 && nonneg(p, a, 0)) return b;
        break;
    case KILN_EXPR_LT:
        if (is_const(p, b, &v) && v == 0 && nonneg(p, a, 0)) return kiln_expr_const(p, 0);
        break;
    default:
        break;
    }
    return kiln_expr_binary(p, (kiln_expr_op)n.op, a, b);
}

kiln_expr kiln_expr_simplify(kiln_exprs *pool, kiln_expr e) {
    if (!pool || !kiln_exprs_valid(pool, e)) return e;
    /* Rewrites can enable each other (a sum that folds feeds a max): a few rounds. */
    for (int round = 0; round < 4; round++) {
        simplifier s = {pool, kiln_calloc(pool->count, sizeof(kiln_expr)), pool->count};
        if (!s.memo) return e;   /* out of memory: the expression as it is, still correct */
        kiln_expr r = simplify(&s, e, 0);
        kiln_free(s.memo);
        if (r == e || r < 0) return r < 0 ? e : r;
        e = r;
    }
    return e;
}
