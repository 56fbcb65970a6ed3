/* exprs.c — the expression pool: storage, hash-consing and simplification.
 *
 * Every node is interned through an open-addressing hash table (linear
 * probing, load factor at most 1/2, so a probe always ends at an empty slot).
 * Before interning, kiln_expr_binary puts commutative operands in canonical
 * order, folds constant operands and applies the identities listed in
 * exprs.h; together these make structurally equal expressions share an id. */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "shape/exprs.h"
#include "shape/exprs_internal.h"

static uint64_t mix64(uint64_t x) {             /* splitmix64 finalizer */
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t node_hash(const kiln_expr_node *n) {
    uint64_t h = mix64(n->op + 0x9e3779b97f4a7c15ull);
    h = mix64(h ^ ((uint64_t)(uint32_t)n->a | (uint64_t)(uint32_t)n->b << 32));
    return mix64(h ^ (uint64_t)n->value);
}

static int node_same(const kiln_expr_node *x, const kiln_expr_node *y) {
    return x->op == y->op && x->a == y->a && x->b == y->b && x->value == y->value;
}

/* The slot holding a node equal to key, or the empty slot where it would go. */
static size_t table_slot(const kiln_exprs *pool, const kiln_expr_node *key) {
    size_t mask = pool->table_size - 1;
    for (size_t i = (size_t)node_hash(key) & mask;; i = (i + 1) & mask) {
        int32_t id = pool->table[i];
        if (id < 0 || node_same(&pool->nodes[id], key)) return i;
    }
}

int kiln_exprs_table_rebuild(kiln_exprs *pool, size_t need) {
    size_t size = 16;
    while (size / 2 < need) {
        if (size > SIZE_MAX / 2 / sizeof(int32_t)) return 0;
        size *= 2;
    }
    int32_t *table = kiln_malloc(size * sizeof *table);
    if (!table) return 0;
    memset(table, 0xff, size * sizeof *table);  /* every slot -1: empty */
    kiln_free(pool->table);
    pool->table = table;
    pool->table_size = size;
    for (size_t i = 0; i < pool->count; i++) {
        size_t slot = table_slot(pool, &pool->nodes[i]);
        if (table[slot] < 0) table[slot] = (int32_t)i;
    }
    return 1;
}

kiln_exprs *kiln_exprs_create(void) {
    kiln_exprs *pool = kiln_calloc(1, sizeof *pool);
    if (!pool) kiln_error(KILN_ERROR_NO_MEMORY, "out of memory creating an expression pool");
    return pool;
}

void kiln_exprs_free(kiln_exprs *pool) {
    if (!pool) return;
    for (int32_t i = 0; i < pool->dim_count; i++) kiln_free(pool->dim_names[i]);
    kiln_free(pool->dim_names);
    kiln_free(pool->table);
    kiln_free(pool->nodes);
    kiln_free(pool);
}

/* The id of the node (op, a, b, value), appending it if new.  The pool is
 * unchanged when this fails. */
static kiln_expr intern(kiln_exprs *pool, uint8_t op, kiln_expr a, kiln_expr b, int64_t value) {
    kiln_expr_node key = { .op = op, .a = a, .b = b, .value = value };
    if (pool->table) {
        int32_t id = pool->table[table_slot(pool, &key)];
        if (id >= 0) return id;
    }
    if (pool->count >= (size_t)INT32_MAX) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "expression pool is full (%zu nodes)", pool->count);
        return KILN_EXPR_INVALID;
    }
    void *nodes = pool->nodes;
    size_t capacity = pool->capacity;
    if (!kiln_grow(&nodes, &capacity, pool->count + 1, sizeof key)) {
        kiln_error(KILN_ERROR_NO_MEMORY, "out of memory growing the expression pool to %zu nodes", pool->count + 1);
        return KILN_EXPR_INVALID;
    }
    pool->nodes = nodes;
    pool->capacity = capacity;
    if ((pool->count + 1) > pool->table_size / 2 && !kiln_exprs_table_rebuild(pool, pool->count + 1)) {
        kiln_error(KILN_ERROR_NO_MEMORY, "out of memory growing the expression hash table");
        return KILN_EXPR_INVALID;
    }
    pool->table[table_slot(pool, &key)] = (int32_t)pool->count;
    pool->nodes[pool->count] = key;
    return (kiln_expr)pool->count++;
}

kiln_expr kiln_expr_const(kiln_exprs *pool, int64_t value) {
    if (!pool) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_expr_const: pool is NULL");
        return KILN_EXPR_INVALID;
    }
    return intern(pool, KILN_EXPR_CONST, -1, -1, value);
}

kiln_expr kiln_exprs_dim(kiln_exprs *pool, int32_t index) {
    if (!pool) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_exprs_dim: pool is NULL");
        return KILN_EXPR_INVALID;
    }
    if (index < 0 || index == INT32_MAX) {  /* INT32_MAX: max_dim's index + 1 must fit */
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "dimension index %d is out of range", index);
        return KILN_EXPR_INVALID;
    }
    return intern(pool, KILN_EXPR_DIM, -1, -1, index);
}

kiln_status kiln_exprs_name_dim(kiln_exprs *pool, int32_t index, const char *name) {
    if (!pool || !name) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_exprs_name_dim: %s is NULL",
                                          pool ? "name" : "pool");
    if (index < 0 || index == INT32_MAX)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "dimension index %d for \"%s\" is out of range", index, name);
    char *copy = kiln_strdup(name);
    if (!copy) return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory naming dimension %d \"%s\"", index, name);
    if (index >= pool->dim_count) {
        size_t n = (size_t)index + 1;
        if (n > SIZE_MAX / sizeof(char *)) {
            kiln_free(copy);
            return kiln_error(KILN_ERROR_NO_MEMORY, "too many dimension names (%zu)", n);
        }
        char **names = kiln_realloc(pool->dim_names, n * sizeof *names);
        if (!names) {
            kiln_free(copy);
            return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory naming dimension %d \"%s\"", index, name);
        }
        for (size_t i = (size_t)pool->dim_count; i < n; i++) names[i] = NULL;
        pool->dim_names = names;
        pool->dim_count = (int32_t)n;
    }
    kiln_free(pool->dim_names[index]);
    pool->dim_names[index] = copy;
    return KILN_OK;
}

static int const_value(const kiln_exprs *pool, kiln_expr e, int64_t *value) {
    const kiln_expr_node *n = &pool->nodes[e];
    if (n->op != KILN_EXPR_CONST) return 0;
    *value = n->value;
    return 1;
}

/* Report a bad operand; KILN_EXPR_INVALID itself passes silently so that a
 * chain of calls keeps the message of the call that first failed. */
static int operand_ok(const kiln_exprs *pool, kiln_expr e, const char *which) {
    if (e == KILN_EXPR_INVALID) return 0;
    if (!kiln_exprs_valid(pool, e)) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "expression operand %s (id %d) is not in this pool (%zu nodes)",
                   which, e, pool->count);
        return 0;
    }
    return 1;
}

kiln_expr kiln_expr_binary(kiln_exprs *pool, kiln_expr_op op, kiln_expr a, kiln_expr b) {
    if (!pool) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_expr_binary: pool is NULL");
        return KILN_EXPR_INVALID;
    }
    if ((int)op < KILN_EXPR_ADD || (int)op >= KILN_EXPR_OP_COUNT) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "unknown binary expression op %d", (int)op);
        return KILN_EXPR_INVALID;
    }
    /* Both checks run so that a bad id is reported even next to INVALID. */
    int a_ok = operand_ok(pool, a, "a"), b_ok = operand_ok(pool, b, "b");
    if (!a_ok || !b_ok) return KILN_EXPR_INVALID;

    int commutative = op == KILN_EXPR_ADD || op == KILN_EXPR_MUL || op == KILN_EXPR_MIN ||
                      op == KILN_EXPR_MAX || op == KILN_EXPR_EQ;
    if (commutative && b < a) { kiln_expr t = a; a = b; b = t; }

    int64_t va = 0, vb = 0;
    int ca = const_value(pool, a, &va), cb = const_value(pool, b, &vb);
    if (ca && cb) {
        int64_t folded;
        /* A fold that fails (overflow, division by zero) keeps the node, so
         * the error surfaces, with the expression's text, at evaluation. */
        if (kiln_expr_apply(op, va, vb, &folded) == KILN_ARITH_OK) return kiln_expr_const(pool, folded);
    }
    switch (op) {
    case KILN_EXPR_ADD:
        if (ca && va == 0) return b;
        if (cb && vb == 0) return a;
        break;
    case KILN_EXPR_SUB:
        if (cb && vb == 0) return a;
        if (a == b) return kiln_expr_const(pool, 0);
        break;
    case KILN_EXPR_MUL:
        if ((ca && va == 0) || (cb && vb == 0)) return kiln_expr_const(pool, 0);
        if (ca && va == 1) return b;
        if (cb && vb == 1) return a;
        break;
    case KILN_EXPR_FLOORDIV:
    case KILN_EXPR_CEILDIV:
        if (cb && vb == 1) return a;
        break;
    case KILN_EXPR_MIN:
    case KILN_EXPR_MAX:
        if (a == b) return a;
        break;
    case KILN_EXPR_EQ:
        if (a == b) return kiln_expr_const(pool, 1);
        break;
    case KILN_EXPR_LT:
        if (a == b) return kiln_expr_const(pool, 0);
        break;
    default:
        break;
    }
    return intern(pool, (uint8_t)op, a, b, 0);
}

bool kiln_expr_is_const(const kiln_exprs *pool, kiln_expr e, int64_t *value) {
    if (!pool || !kiln_exprs_valid(pool, e)) return false;
    int64_t v;
    if (!const_value(pool, e, &v)) return false;
    if (value) *value = v;
    return true;
}

bool kiln_expr_is_valid(const kiln_exprs *pool, kiln_expr e) { return pool && kiln_exprs_valid(pool, e); }

bool kiln_expr_is_dim(const kiln_exprs *pool, kiln_expr e, int32_t *index) {
    if (!pool || !kiln_exprs_valid(pool, e) || pool->nodes[e].op != KILN_EXPR_DIM) return false;
    if (index) *index = (int32_t)pool->nodes[e].value;
    return true;
}

int32_t kiln_exprs_max_dim(const kiln_exprs *pool) {
    int64_t max = 0;
    if (!pool) return 0;
    for (size_t i = 0; i < pool->count; i++)
        if (pool->nodes[i].op == KILN_EXPR_DIM && pool->nodes[i].value + 1 > max) max = pool->nodes[i].value + 1;
    return (int32_t)max;
}
