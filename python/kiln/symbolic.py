"""Symbolic dimensions: SymDim, SymTensor and the expression helpers.

A SymDim is an expression of a network's dynamic dimensions, held in the
network's expression pool (the C kiln_exprs, through _kiln); plugins see them
in shape_dtype_inference, network layers (reshape) and AOT launches take them.
This module depends on nothing else of kiln's Python layer, so network.py,
plugin.py and aot.py all import it without importing each other.

SymDim arithmetic: + - * with ints and SymDims, // floor division, / ceiling
division (as in TensorRT-LLM), sym_min / sym_max, sym_eq / sym_lt (1 or 0).
"""
from ._native import _kiln

__all__ = ["SymDim", "SymTensor", "UnknownShape", "sym_min", "sym_max", "sym_eq", "sym_lt", "cdiv", "as_int",
           "dim_expr", "shape_exprs"]

# kiln_expr_op codes, from the extension (include/kiln/kiln.h)
_OP_ADD, _OP_SUB, _OP_MUL = _kiln.EXPR_ADD, _kiln.EXPR_SUB, _kiln.EXPR_MUL
_OP_FLOORDIV, _OP_CEILDIV = _kiln.EXPR_FLOORDIV, _kiln.EXPR_CEILDIV
_OP_MIN, _OP_MAX, _OP_EQ, _OP_LT = _kiln.EXPR_MIN, _kiln.EXPR_MAX, _kiln.EXPR_EQ, _kiln.EXPR_LT


def _ceildiv(a, b):
    return -((-a) // b)


_PY_OPS = {
    _OP_ADD: lambda a, b: a + b,
    _OP_SUB: lambda a, b: a - b,
    _OP_MUL: lambda a, b: a * b,
    _OP_FLOORDIV: lambda a, b: a // b,
    _OP_CEILDIV: _ceildiv,
    _OP_MIN: min,
    _OP_MAX: max,
    _OP_EQ: lambda a, b: int(a == b),
    _OP_LT: lambda a, b: int(a < b),
}


class SymDim:
    """A symbolic dimension: an expression of the network's dynamic dims.

    Three kinds exist: symbolic (an expression id in a pool), concrete (a
    Python int: eager calls) and unknown (only when the builder asks for
    dtypes before shapes are known).  Arithmetic between them gives SymDims;
    `int(d)` works when the value is known."""

    __slots__ = ("_pool", "_expr", "_value")

    def __init__(self, value):
        if isinstance(value, SymDim):
            self._pool, self._expr, self._value = value._pool, value._expr, value._value
            return
        self._pool = None
        self._expr = None
        self._value = None if value is None else int(value)

    @classmethod
    def _of(cls, pool, expr):
        d = object.__new__(cls)
        d._pool = pool
        d._expr = expr
        d._value = None
        return d

    @property
    def value(self):
        """The int value when known (a constant), else None."""
        if self._pool is not None:
            return self._pool.is_const(self._expr)
        return self._value

    def _expr_in(self, pool):
        if self._pool is not None:
            if self._pool.key != pool.key:
                raise ValueError("symbolic dimensions of different networks cannot be mixed")
            return self._expr
        if self._value is None:
            raise ValueError("this dimension is not known here (dtype-only inference)")
        return pool.const(self._value)

    def _binop(self, other, op):
        a = self
        b = other if isinstance(other, SymDim) else SymDim(as_int(other))
        pool = a._pool if a._pool is not None else b._pool
        if pool is None:
            if a._value is None or b._value is None:
                return SymDim(None)
            return SymDim(_PY_OPS[op](a._value, b._value))
        return SymDim._of(pool, pool.binary(op, a._expr_in(pool), b._expr_in(pool)))

    def __add__(self, o): return self._binop(o, _OP_ADD)
    def __radd__(self, o): return SymDim(as_int(o))._binop(self, _OP_ADD)
    def __sub__(self, o): return self._binop(o, _OP_SUB)
    def __rsub__(self, o): return SymDim(as_int(o))._binop(self, _OP_SUB)
    def __mul__(self, o): return self._binop(o, _OP_MUL)
    def __rmul__(self, o): return SymDim(as_int(o))._binop(self, _OP_MUL)
    def __floordiv__(self, o): return self._binop(o, _OP_FLOORDIV)
    def __rfloordiv__(self, o): return SymDim(as_int(o))._binop(self, _OP_FLOORDIV)
    # / is ceiling division, as in TensorRT-LLM's symbolic shapes.
    def __truediv__(self, o): return self._binop(o, _OP_CEILDIV)
    def __rtruediv__(self, o): return SymDim(as_int(o))._binop(self, _OP_CEILDIV)
    def __neg__(self): return SymDim(0)._binop(self, _OP_SUB)
    def __pos__(self): return self

    def __int__(self):
        v = self.value
        if v is None:
            raise TypeError(f"dimension {self} is symbolic: its value is known only at run time")
        return v

    def __index__(self):
        return self.__int__()

    def __eq__(self, other):
        """True when provably equal (same expression, or equal constants)."""
        if isinstance(other, bool):
            return NotImplemented
        if isinstance(other, int):
            return self.value == other
        if not isinstance(other, SymDim):
            return NotImplemented
        if self._pool is not None and other._pool is not None and self._pool.key == other._pool.key:
            return self._expr == other._expr
        a, b = self.value, other.value
        return a is not None and a == b

    def _order(self, other, op, name, hint):
        a = self.value
        b = other.value if isinstance(other, SymDim) else (other if isinstance(other, int) else None)
        if a is not None and b is not None:
            return op(a, b)
        if not isinstance(other, (SymDim, int)) or isinstance(other, bool):
            return NotImplemented
        raise TypeError(f"dimension {self} {name} {other}: a symbolic dimension's value is known only at run time, "
                        f"so Python cannot compare it; use {hint} to build the comparison into the shape")

    def __lt__(self, o): return self._order(o, lambda a, b: a < b, "<", "kiln.sym_lt(a, b) (or sym_min/sym_max)")
    def __le__(self, o): return self._order(o, lambda a, b: a <= b, "<=", "kiln.sym_lt(a, b + 1) (or sym_min/sym_max)")
    def __gt__(self, o): return self._order(o, lambda a, b: a > b, ">", "kiln.sym_lt(b, a) (or sym_min/sym_max)")
    def __ge__(self, o): return self._order(o, lambda a, b: a >= b, ">=", "kiln.sym_lt(b, a + 1) (or sym_min/sym_max)")

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        v = self.value
        if v is not None:
            return hash(v)
        return hash((self._pool.key if self._pool is not None else None, self._expr))

    def __repr__(self):
        if self._pool is not None:
            return f"SymDim({self._pool.format(self._expr)})"
        return f"SymDim({'?' if self._value is None else self._value})"

    def __str__(self):
        v = self.value
        if v is not None:
            return str(v)
        if self._pool is not None:
            return self._pool.format(self._expr)
        return "?"


def as_int(x):
    """x as a dimension's int (an int, or anything with __index__ but a bool)."""
    if isinstance(x, bool) or not hasattr(x, "__index__"):
        raise TypeError(f"a {type(x).__name__} is not a dimension (use ints or SymDims)")
    return x.__index__()


def _sym_binop(op, a, b):
    a = a if isinstance(a, SymDim) else SymDim(as_int(a))
    return a._binop(b, op)


def sym_min(a, b):
    """min of two dimensions (SymDim or int)."""
    return _sym_binop(_OP_MIN, a, b)


def sym_max(a, b):
    """max of two dimensions (SymDim or int)."""
    return _sym_binop(_OP_MAX, a, b)


def sym_eq(a, b):
    """1 when a == b at run time, else 0 (a SymDim)."""
    return _sym_binop(_OP_EQ, a, b)


def sym_lt(a, b):
    """1 when a < b at run time, else 0 (a SymDim)."""
    return _sym_binop(_OP_LT, a, b)


class UnknownShape(list):
    """A shape of unknown rank: any index gives an unknown SymDim.  Used only
    when dtypes must be inferred before shapes are known."""

    def __getitem__(self, i):
        if isinstance(i, slice):
            return UnknownShape()
        return SymDim(None)

    def __setitem__(self, i, value):
        pass

    def __len__(self):
        raise TypeError("the rank is not known during dtype-only inference")


class SymTensor:
    """A tensor description in shape_dtype_inference: a dtype and a shape
    (a list of SymDims; assign into it freely)."""

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype, shape):
        self.dtype = dtype
        self.shape = shape if isinstance(shape, list) else list(shape)

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"SymTensor(dtype={self.dtype}, shape=[{', '.join(str(d) for d in self.shape)}])"


def cdiv(a, b):
    """Ceiling division for ints and SymDims (SymDim's / is ceiling division)."""
    if isinstance(a, SymDim) or isinstance(b, SymDim):
        return (a if isinstance(a, SymDim) else SymDim(a)) / b
    return -((-a) // b)


def dim_expr(pool, d):
    """The expression id in pool of a dimension (a SymDim of that pool's
    network, or an int)."""
    return d._expr_in(pool) if isinstance(d, SymDim) else pool.const(as_int(d))


def shape_exprs(pool, out, label, index):
    """The expression ids of a SymTensor's shape (output `index` of plugin
    `label`, for errors)."""
    exprs = []
    for axis, d in enumerate(out.shape):
        try:
            exprs.append(dim_expr(pool, d))
        except (TypeError, ValueError) as e:
            raise TypeError(f"plugin {label}: output {index} axis {axis}: {e}") from None
    return tuple(exprs)
