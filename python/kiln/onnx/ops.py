"""One function per ONNX op: (importer, node, input values) -> output values.

Inputs are kiln Tensors, Known values (importer.py) or None for an omitted
optional input.  A function computes in numpy when every input it needs is
known (shape arithmetic, constant folding) and adds kiln layers otherwise.
Ops not listed here are refused by name (docs/onnx.md lists what is and is
not supported)."""
import math

import numpy as np

from .. import network as N
from .. import shape_ops as S
from ..symbolic import SymDim, cdiv, sym_max
from . import dtypes as D
from .errors import NeedsKnown, UnsupportedNode
from .importer import Known, _norm

OPS = {}


def op(*names):
    def register(fn):
        for n in names:
            OPS[("", n)] = fn
        return fn
    return register


def attr(node, name, default=None):
    import onnx
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode()
            if isinstance(v, onnx.TensorProto):
                v = D.to_array(v)
            return v
    return default


def all_known(ins):
    return all(v is None or isinstance(v, Known) for v in ins)


def T(imp, v, node):
    return imp.tensor(v, node)


def out_known(arr, onnx_type):
    return Known(arr if isinstance(arr, (np.ndarray, SymDim)) else np.asarray(arr), onnx_type)


def _guard(imp):
    return N.net_guard(imp.network)


def int_list(imp, v, node, what):
    """A known 1-D integer input (axes, shape, starts...) as ints/SymDims."""
    if v is None:
        return None
    if not isinstance(v, Known):
        raise NeedsKnown(node, f"{what} must be known when the model is imported (here it is data computed at "
                               "run time: make it an initializer, or a computation of shapes)", v)
    return v.ints()


# ---- elementwise ----------------------------------------------------------------

def _numpy_binary(name, a, b, t):
    if name == "Div" and t in (D.INT8, D.UINT8, D.INT32, D.INT64):
        if a.dtype == object or b.dtype == object:
            return a // b
        return np.trunc(a / b).astype(a.dtype)
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
          "Equal": np.equal, "Less": np.less, "LessOrEqual": np.less_equal, "Greater": np.greater,
          "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or,
          "Xor": np.logical_xor}[name]
    return fn(a, b)


_BINARY = {"Add": N.add, "Sub": N.sub, "Mul": N.mul, "Div": N.div, "Pow": N.power, "Equal": N.equal,
           "Less": N.less, "LessOrEqual": N.less_equal, "Greater": N.greater, "GreaterOrEqual": N.greater_equal,
           "And": N.logical_and, "Or": N.logical_or, "Xor": N.logical_xor}
_BOOL_RESULT = {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"}


def _symbolic_equal(a, b):
    """Equal of shape values that may hold SymDims, or None when a pair cannot
    be decided now.  Shape values are sizes (>= 0), so a SymDim never equals
    a negative number — the exporters' `Where(Equal(shape, -1), 1, shape)`."""
    a, b = np.broadcast_arrays(a, b)
    out = np.empty(a.shape, bool)
    for i, (x, y) in enumerate(zip(a.reshape(-1).tolist(), b.reshape(-1).tolist())):
        x, y = _norm(x), _norm(y)
        if isinstance(x, int) and isinstance(y, int):
            out.flat[i] = x == y
        elif isinstance(x, SymDim) and isinstance(y, SymDim) and x == y:
            out.flat[i] = True
        elif (isinstance(x, int) and x < 0) or (isinstance(y, int) and y < 0):
            out.flat[i] = False
        else:
            return None
    return out


@op(*_BINARY)
def binary(imp, node, ins):
    a, b = ins
    t = imp.onnx_type(a)
    if all_known(ins) and node.op_type == "Equal" and (a.symbolic or b.symbolic):
        r = _symbolic_equal(a.array, b.array)
        if r is not None:
            return out_known(r, D.BOOL)
    if all_known(ins):
        ka, kb = a.array, b.array
        symbolic = a.symbolic or b.symbolic
        if not symbolic or node.op_type in ("Add", "Sub", "Mul", "Div"):
            r = _numpy_binary(node.op_type, ka, kb, t)
            rt = D.BOOL if node.op_type in _BOOL_RESULT else t
            if not symbolic and rt != D.BOOL:
                r = np.asarray(r).astype(D.numpy_dtype(rt) if rt != D.DOUBLE else np.float64)
            return out_known(r, rt)
    if node.op_type == "Pow":
        # A known small exponent is a product (or a square root): exact, and
        # far cheaper than powf (x ** 2 in layer norms, x ** 3 in GPT-2's gelu).
        if isinstance(b, Known) and b.array.size == 1 and not b.symbolic and t in (D.FLOAT, D.FLOAT16, D.BFLOAT16):
            e = float(b.array.reshape(-1)[0])
            if e in (1.0, 2.0, 3.0, 0.5):
                rank_b = b.array.ndim
                with _guard(imp):
                    x = T(imp, a, node)
                    if rank_b > len(imp.shape(a)):      # the exponent's rank may broadcast the result
                        x = N.reshape(x, [1] * (rank_b - len(imp.shape(a))) + list(imp.shape(a)))
                    if e == 0.5:
                        return N.sqrt(x)
                    y = x
                    for _ in range(int(e) - 1):
                        y = N.mul(y, x)
                    return y if e != 1.0 else N.mul(x, 1.0)
        # ONNX lets the exponent's type differ; kiln's pow is floating-point
        with _guard(imp):
            x, y = T(imp, a, node), T(imp, b, node)
            ft = x.dtype if t in (D.FLOAT, D.FLOAT16, D.BFLOAT16) else N._dt.float32
            xf = x if x.dtype == ft else N.cast(x, ft)
            yf = y if y.dtype == ft else N.cast(y, ft)
            r = N.power(xf, yf)
            return r if r.dtype == x.dtype else N.cast(r, x.dtype)
    with _guard(imp):
        return _BINARY[node.op_type](T(imp, a, node), T(imp, b, node))


@op("Mod")
def mod(imp, node, ins):
    fmod = attr(node, "fmod", 0)
    if all_known(ins) and not any(v.symbolic for v in ins):
        a, b = ins[0].array, ins[1].array
        return out_known((np.fmod(a, b) if fmod else np.mod(a, b)).astype(a.dtype), ins[0].onnx_type)
    if all_known(ins) and not fmod:
        # shape values (Swin pads each side to a multiple of its window:
        # (w - W % w) % w): a - floor(a / b) * b in the pool's floor division
        a, b = np.broadcast_arrays(ins[0].array.astype(object), ins[1].array.astype(object))
        r = np.empty(a.shape, object)
        for i, (x, y) in enumerate(zip(a.reshape(-1).tolist(), b.reshape(-1).tolist())):
            x, y = _norm(x), _norm(y)
            r.flat[i] = _norm(x - (x // y) * y)
        return Known(r, ins[0].onnx_type)
    with _guard(imp):
        x, y = T(imp, ins[0], node), T(imp, ins[1], node)
        return N.fmod(x, y) if fmod else N.mod(x, y)


@op("Max", "Min", "Sum", "Mean")
def variadic(imp, node, ins):
    if all_known(ins) and not any(v.symbolic for v in ins):
        f = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add, "Mean": np.add}[node.op_type]
        acc = ins[0].array
        for v in ins[1:]:
            acc = f(acc, v.array)
        if node.op_type == "Mean":
            acc = acc / len(ins)
        return out_known(np.asarray(acc).astype(ins[0].array.dtype), ins[0].onnx_type)
    fn = {"Max": N.maximum, "Min": N.minimum, "Sum": N.add, "Mean": N.add}[node.op_type]
    with _guard(imp):
        acc = T(imp, ins[0], node)
        for v in ins[1:]:
            acc = fn(acc, T(imp, v, node))
        if node.op_type == "Mean":
            acc = N.div(acc, float(len(ins)))
        return acc


_UNARY = {"Relu": N.relu, "Tanh": N.tanh, "Sigmoid": N.sigmoid, "Erf": N.erf, "Exp": N.exp, "Log": N.log,
          "Sqrt": N.sqrt, "Neg": N.neg, "Abs": N.absolute, "Floor": N.floor, "Ceil": N.ceil,
          "Reciprocal": N.reciprocal, "Sign": N.sign, "Sin": N.sin, "Cos": N.cos, "Not": N.logical_not}


@op(*_UNARY)
def unary(imp, node, ins):
    (x,) = ins
    if isinstance(x, Known) and x.symbolic and node.op_type == "Neg":
        return Known(-x.array, x.onnx_type)        # a shape value negated (Funnel)
    if isinstance(x, Known) and not x.symbolic and node.op_type in _NUMPY_UNARY and x.onnx_type != D.DOUBLE:
        # folded at import (MobileViT's patch sizes: Ceil of a float Div of
        # a Shape, cast back to int64 for a Reshape); numpy's results here are
        # exact in the array's own dtype
        arr = x.array.astype(np.int64) if x.array.dtype == object else x.array    # shape values, all ints here
        with np.errstate(all="ignore"):
            return out_known(np.asarray(_NUMPY_UNARY[node.op_type](arr)).astype(arr.dtype), x.onnx_type)
    with _guard(imp):
        if imp.onnx_type(x) in _INTEGER and node.op_type in _INTEGER_UNARY:
            return _INTEGER_UNARY[node.op_type](T(imp, x, node), imp.onnx_type(x) == D.UINT8)
        return _UNARY[node.op_type](T(imp, x, node))


_NUMPY_UNARY = {"Neg": np.negative, "Abs": np.abs, "Not": np.logical_not, "Sign": np.sign, "Floor": np.floor,
                "Ceil": np.ceil, "Relu": lambda a: np.maximum(a, 0), "Sqrt": np.sqrt}
_INTEGER = (D.INT8, D.UINT8, D.INT32, D.INT64)
# kiln's abs, sign, relu, floor and ceil layers take floating-point data; on
# integers (T5's and DeBERTa's relative positions) they are exact as min/max:
# |x| = max(x, -x), sign(x) = min(max(x, -1), 1), relu(x) = max(x, 0).
_INTEGER_UNARY = {
    "Abs": lambda x, unsigned: x if unsigned else N.maximum(x, N.neg(x)),
    "Sign": lambda x, unsigned: N.minimum(x, 1) if unsigned else N.minimum(N.maximum(x, -1), 1),
    "Relu": lambda x, unsigned: x if unsigned else N.maximum(x, 0),
    "Floor": lambda x, unsigned: x,
    "Ceil": lambda x, unsigned: x,
}


@op("Identity")
def identity(imp, node, ins):
    return ins[0]


@op("Dropout")
def dropout(imp, node, ins):
    training = ins[2] if len(ins) > 2 else None
    if training is not None and (not isinstance(training, Known) or bool(training.array)):
        raise UnsupportedNode(node, "training-mode Dropout (kiln runs inference: Dropout is the identity)")
    if len(node.output) < 2 or not node.output[1]:
        return ins[0]
    with _guard(imp):   # inference: nothing is dropped, the mask is all true
        x = T(imp, ins[0], node)
        return [ins[0], N.equal(N.mul(x, 0), N.mul(x, 0)) if imp.onnx_type(ins[0]) != D.BOOL else N.equal(x, x)]


@op("Gelu")
def gelu(imp, node, ins):
    with _guard(imp):
        x = T(imp, ins[0], node)
        return N.gelu(x) if attr(node, "approximate", "none") == "tanh" else N.gelu_erf(x)


@op("Softplus")
def softplus(imp, node, ins):
    with _guard(imp):
        x = T(imp, ins[0], node)
        # log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)): no overflow for large x
        return N.add(N.maximum(x, 0.0), N.log(N.add(N.exp(N.neg(N.absolute(x))), 1.0)))


@op("Softsign")
def softsign(imp, node, ins):
    with _guard(imp):
        x = T(imp, ins[0], node)
        return N.div(x, N.add(N.absolute(x), 1.0))


@op("LeakyRelu")
def leaky_relu(imp, node, ins):
    alpha = attr(node, "alpha", 0.01)
    with _guard(imp):
        x = T(imp, ins[0], node)
        return S.where(N.less(x, 0.0), N.mul(x, alpha), x)


@op("PRelu")
def prelu(imp, node, ins):
    with _guard(imp):
        x, slope = T(imp, ins[0], node), T(imp, ins[1], node)
        return S.where(N.less(x, 0.0), N.mul(x, slope), x)


@op("ThresholdedRelu")
def thresholded_relu(imp, node, ins):
    alpha = attr(node, "alpha", 1.0)
    with _guard(imp):
        x = T(imp, ins[0], node)
        return S.where(N.greater(x, alpha), x, N.mul(x, 0.0))


@op("Elu", "Celu", "Selu")
def elu_family(imp, node, ins):
    alpha = attr(node, "alpha", {"Elu": 1.0, "Celu": 1.0, "Selu": 1.67326319217681884765625}[node.op_type])
    gamma = attr(node, "gamma", 1.05070102214813232421875) if node.op_type == "Selu" else 1.0
    with _guard(imp):
        x = T(imp, ins[0], node)
        inner = N.div(x, alpha) if node.op_type == "Celu" else x
        neg = N.mul(N.sub(N.exp(inner), 1.0), alpha)
        y = S.where(N.greater(x, 0.0), x, neg)
        return N.mul(y, gamma) if node.op_type == "Selu" else y


@op("HardSigmoid", "HardSwish")
def hard_sigmoid(imp, node, ins):
    alpha = attr(node, "alpha", 0.2 if node.op_type == "HardSigmoid" else 1 / 6)
    beta = attr(node, "beta", 0.5)
    with _guard(imp):
        x = T(imp, ins[0], node)
        y = N.minimum(N.maximum(N.add(N.mul(x, alpha), beta), 0.0), 1.0)
        return N.mul(x, y) if node.op_type == "HardSwish" else y


@op("Mish")
def mish(imp, node, ins):
    sp = softplus(imp, node, ins)
    with _guard(imp):
        return N.mul(T(imp, ins[0], node), N.tanh(sp))


@op("IsNaN")
def isnan(imp, node, ins):
    with _guard(imp):
        x = T(imp, ins[0], node)
        return N.not_equal(x, x)


@op("IsInf")
def isinf(imp, node, ins):
    pos, neg = attr(node, "detect_positive", 1), attr(node, "detect_negative", 1)
    with _guard(imp):
        x = T(imp, ins[0], node)
        hits = []
        if pos:
            hits.append(N.equal(x, float("inf")))
        if neg:
            hits.append(N.equal(x, float("-inf")))
        if not hits:       # nothing to detect: all false
            return N.less(x, float("-inf"))
        return hits[0] if len(hits) == 1 else N.logical_or(hits[0], hits[1])


@op("Clip")
def clip(imp, node, ins):
    x = ins[0]
    lo = ins[1] if len(ins) > 1 else None
    hi = ins[2] if len(ins) > 2 else None
    if imp.opset_of(node) and imp.opset_of(node) < 11:
        lo_v, hi_v = attr(node, "min"), attr(node, "max")
        lo = None if lo_v is None else Known(np.array(lo_v, np.float32), D.FLOAT)
        hi = None if hi_v is None else Known(np.array(hi_v, np.float32), D.FLOAT)
    with _guard(imp):
        y = T(imp, x, node)
        t = imp.onnx_type(x)
        if lo is not None:
            y = N.maximum(y, T(imp, _as_type(lo, t), node))
        if hi is not None:
            y = N.minimum(y, T(imp, _as_type(hi, t), node))
        return y


def _as_type(v, onnx_type):
    if isinstance(v, Known) and v.onnx_type != onnx_type:
        return Known(v.array.astype(D.numpy_dtype(onnx_type)), onnx_type)
    return v


@op("Cast", "CastLike")
def cast(imp, node, ins):
    to = attr(node, "to") if node.op_type == "Cast" else imp.onnx_type(ins[1])
    x = ins[0]
    if isinstance(x, Known):
        if x.symbolic:
            if to in (D.INT32, D.INT64):
                return Known(x.array, to)
        elif to != D.DOUBLE:
            return out_known(x.array.astype(D.numpy_dtype(to)), to)
    with _guard(imp):
        return N.cast(T(imp, x, node), D.kiln_dtype(to, node))


# ---- constants and shapes ------------------------------------------------------

@op("Constant")
def constant(imp, node, ins):
    for name, t in (("value", None), ("value_float", D.FLOAT), ("value_floats", D.FLOAT), ("value_int", D.INT64),
                    ("value_ints", D.INT64)):
        v = attr(node, name)
        if v is None:
            continue
        if t is None:
            return out_known(v, D.onnx_type_of_array(v))
        return out_known(np.array(v, np.float32 if t == D.FLOAT else np.int64), t)
    raise UnsupportedNode(node, "only value, value_float(s) and value_int(s) Constants are supported")


@op("Shape")
def shape(imp, node, ins):
    dims = imp.shape(ins[0])
    start, end = attr(node, "start", 0), attr(node, "end", None)
    dims = dims[start:end]
    arr = np.array(dims, dtype=object if any(isinstance(d, SymDim) for d in dims) else np.int64)
    return out_known(arr, D.INT64)


@op("Size")
def size(imp, node, ins):
    n = 1
    for d in imp.shape(ins[0]):
        n = n * d
    n = _norm(n)
    return out_known(np.array(n, dtype=object if isinstance(n, SymDim) else np.int64), D.INT64)


@op("ConstantOfShape")
def constant_of_shape(imp, node, ins):
    dims = int_list(imp, ins[0], node, "ConstantOfShape's shape")
    value = attr(node, "value")
    value = np.zeros(1, np.float32) if value is None else value.reshape(1)
    t = D.onnx_type_of_array(value)
    if all(isinstance(d, int) for d in dims):
        return out_known(np.full(dims, value[0], dtype=value.dtype), t)
    with _guard(imp):
        scalar = N.constant(value.reshape([1] * len(dims)), dtype=D.kiln_dtype(t, node))
        return S.expand(scalar, dims)


@op("Range")
def range_op(imp, node, ins):
    start, limit, delta = (int_list(imp, v, node, "Range's bounds") if imp.onnx_type(v) in (D.INT32, D.INT64)
                           else None for v in ins)
    t = imp.onnx_type(ins[0])
    if start is None:      # floats: must be numbers
        for v in ins:
            if not isinstance(v, Known):
                raise NeedsKnown(node, "a floating-point Range's bounds must be known when the model is imported", v)
        s, l, d = (float(v.array) for v in ins)
        return out_known(np.arange(s, l, d).astype(D.numpy_dtype(t)), t)
    s, l, d = start[0], limit[0], delta[0]
    if all(isinstance(v, int) for v in (s, l, d)):
        return out_known(np.arange(s, l, d, dtype=D.numpy_dtype(t)), t)
    if not isinstance(d, int) or d == 0:
        raise UnsupportedNode(node, "a Range with a symbolic delta")
    count = _norm((l - s + d - 1) // d) if d > 0 else _norm((s - l - d - 1) // (-d))
    hi = imp.upper_bound(count)
    # a symbolic start (Funnel's relative positions run from -2 seq to 2 seq)
    # is added at run time to the steps from 0
    table = np.arange(max(hi, 0), dtype=np.int64) * d + (s if isinstance(s, int) else 0)
    with _guard(imp):
        t_ = N.constant(table.astype(D.numpy_dtype(t)), dtype=D.kiln_dtype(t, node))
        # the reshape states the length as count (not min(count, table size)): checked at run time
        r = N.reshape(S.slice(t_, [0], [count]), [count])
        if not isinstance(s, int):
            # symbolic integers become data as non-negative values: a start
            # that is negative at the dims' maxima (-2 seq) is subtracted as -s
            negative = imp.upper_bound(s) < 0
            v = imp.materialize_ints(Known(np.array([-s if negative else s], dtype=object), t), node)
            r = N.sub(r, v) if negative else N.add(r, v)
        return r


def _reshape_known_or_tensor(imp, node, x, dims):
    if isinstance(x, Known) and all(isinstance(d, int) for d in dims):
        return Known(x.array.reshape(dims), x.onnx_type)
    with _guard(imp):
        return N.reshape(T(imp, x, node), dims)


@op("Reshape")
def reshape(imp, node, ins):
    x, target = ins
    dims = int_list(imp, target, node, "Reshape's shape")
    in_dims = imp.shape(x)
    if not attr(node, "allowzero", 0):
        dims = [in_dims[i] if isinstance(d, int) and d == 0 else d for i, d in enumerate(dims)]
    if -1 in [d for d in dims if isinstance(d, int)]:
        known_part = 1
        for d in dims:
            if not (isinstance(d, int) and d == -1):
                known_part = known_part * d
        total = 1
        for d in in_dims:
            total = total * d
        dims = [_norm(total // known_part) if isinstance(d, int) and d == -1 else d for d in dims]
    return _reshape_known_or_tensor(imp, node, x, dims)


@op("Flatten")
def flatten(imp, node, ins):
    dims = imp.shape(ins[0])
    axis = attr(node, "axis", 1)
    axis = axis + len(dims) if axis < 0 else axis
    a, b = 1, 1
    for d in dims[:axis]:
        a = a * d
    for d in dims[axis:]:
        b = b * d
    return _reshape_known_or_tensor(imp, node, ins[0], [_norm(a), _norm(b)])


def _axes(imp, node, ins, index=1):
    if len(ins) > index and ins[index] is not None:
        return int_list(imp, ins[index], node, f"{node.op_type}'s axes")
    return attr(node, "axes", None)


@op("Squeeze")
def squeeze(imp, node, ins):
    dims = imp.shape(ins[0])
    axes = _axes(imp, node, ins)
    if axes is None:
        axes = [i for i, d in enumerate(dims) if isinstance(d, int) and d == 1]
    axes = {a % len(dims) for a in axes}
    return _reshape_known_or_tensor(imp, node, ins[0], [d for i, d in enumerate(dims) if i not in axes])


@op("Unsqueeze")
def unsqueeze(imp, node, ins):
    dims = list(imp.shape(ins[0]))
    axes = _axes(imp, node, ins)
    rank = len(dims) + len(axes)
    for a in sorted(x % rank for x in axes):
        dims.insert(a, 1)
    return _reshape_known_or_tensor(imp, node, ins[0], dims)


@op("Transpose")
def transpose(imp, node, ins):
    rank = len(imp.shape(ins[0]))
    perm = attr(node, "perm", list(range(rank))[::-1])
    if isinstance(ins[0], Known):
        return Known(np.transpose(ins[0].array, perm), ins[0].onnx_type)
    with _guard(imp):
        x = T(imp, ins[0], node)
        y = S.transpose(x, list(perm))
        if rank >= 2 and [int(p) % rank for p in perm] == list(range(rank - 2)) + [rank - 1, rank - 2]:
            imp.swapped_last_two[y._id] = x
        return y


def _unswap(imp, t, flag):
    """(tensor, transpose flag) that a matmul reads for t read with its last
    two axes swapped when flag: a Transpose output of exactly that swap is
    read from the Transpose's input with the flag flipped, so the product
    reads the data where it lies and the copy goes (when nothing else reads
    it)."""
    src = imp.swapped_last_two.get(t._id)
    return (src, not flag) if src is not None else (t, flag)


@op("Concat")
def concat(imp, node, ins):
    axis = attr(node, "axis")
    ins = [v for v in ins if v is not None and 0 not in [d for d in imp.shape(v) if isinstance(d, int)]] or ins[:1]
    if all_known(ins):
        arrays = [v.array for v in ins]
        obj = any(a.dtype == object for a in arrays)
        return Known(np.concatenate([a.astype(object) if obj else a for a in arrays], axis=axis), ins[0].onnx_type)
    with _guard(imp):
        return S.concat([T(imp, v, node) for v in ins], axis)


@op("Split")
def split(imp, node, ins):
    x = ins[0]
    dims = imp.shape(x)
    axis = attr(node, "axis", 0) % len(dims)
    sizes = int_list(imp, ins[1], node, "Split's sizes") if len(ins) > 1 and ins[1] is not None else attr(node, "split")
    n_out = len(node.output)
    if sizes is None:
        total = dims[axis]
        if not isinstance(total, int):
            raise UnsupportedNode(node, "an even Split of a symbolic axis")
        part = -(-total // n_out)
        sizes = [min(part, total - part * i) for i in range(n_out)]
    outs, at = [], 0
    with _guard(imp):
        t = T(imp, x, node) if not isinstance(x, Known) else None
        for s in sizes:
            if t is None:
                outs.append(Known(np.take(x.array, range(at, at + s), axis=axis), x.onnx_type))
            else:
                outs.append(S.slice(t, [at], [at + s], axes=[axis]))
            at = at + s
    return outs


@op("Slice")
def slice_op(imp, node, ins):
    x = ins[0]
    if imp.opset_of(node) and imp.opset_of(node) < 10:
        starts, ends, axes, steps = attr(node, "starts"), attr(node, "ends"), attr(node, "axes"), None
    else:
        starts = int_list(imp, ins[1], node, "Slice's starts")
        ends = int_list(imp, ins[2], node, "Slice's ends")
        axes = int_list(imp, ins[3], node, "Slice's axes") if len(ins) > 3 else None
        steps = int_list(imp, ins[4], node, "Slice's steps") if len(ins) > 4 else None
    rank = len(imp.shape(x))
    axes = list(range(len(starts))) if axes is None else [a % rank for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if isinstance(x, Known) and all(isinstance(v, int) for v in starts + ends):
        index = [slice(None)] * rank
        big = (1 << 62)
        for s, e, a, st in zip(starts, ends, axes, steps):
            e = None if (st > 0 and e >= big) or (st < 0 and e <= -big) else e
            index[a] = slice(s, e, st)
        return Known(x.array[tuple(index)], x.onnx_type)
    clamp = lambda v: max(min(v, (1 << 63) - 1), -(1 << 63)) if isinstance(v, int) else v
    with _guard(imp):
        return S.slice(T(imp, x, node), [clamp(s) for s in starts], [clamp(e) for e in ends], axes=axes,
                       steps=steps)


@op("Gather")
def gather(imp, node, ins):
    data, idx = ins
    axis = attr(node, "axis", 0)
    dims = imp.shape(data)
    axis = axis % len(dims)
    if isinstance(data, Known) and isinstance(idx, Known):
        return Known(np.take(data.array, idx.array.astype(np.int64), axis=axis), data.onnx_type)
    with _guard(imp):
        if isinstance(idx, Known):
            ix = idx.array.astype(np.int64)
            n = dims[axis]
            if (ix < 0).any():
                if not isinstance(n, int):
                    raise UnsupportedNode(node, "negative indices into a symbolic axis")
                ix = np.where(ix < 0, ix + n, ix)
            idx_t = N.constant(ix)
        else:
            # ONNX counts negative indices from the end; kiln's gather does not
            idx_t = T(imp, idx, node)
            n = dims[axis]
            if isinstance(n, int):
                n_t = n
            else:   # the axis length as data: sliced out of a constant range (importer.materialize_ints)
                n_t = imp.tensor(Known(np.array(n, dtype=object), D.INT64), node)
                n_t = n_t if idx_t.dtype == N._dt.int64 else N.cast(n_t, idx_t.dtype)
            idx_t = S.where(N.less(idx_t, 0), N.add(idx_t, n_t), idx_t)
        return N.gather(T(imp, data, node), idx_t, axis)


@op("Expand")
def expand(imp, node, ins):
    dims = int_list(imp, ins[1], node, "Expand's shape")
    x = ins[0]
    if isinstance(x, Known) and not x.symbolic and all(isinstance(d, int) for d in dims):
        shape = np.broadcast_shapes(x.array.shape, tuple(dims))
        return Known(np.broadcast_to(x.array, shape).copy(), x.onnx_type)
    with _guard(imp):
        return S.expand(T(imp, x, node), dims)


@op("Tile")
def tile(imp, node, ins):
    reps = int_list(imp, ins[1], node, "Tile's repeats")
    x = ins[0]
    if isinstance(x, Known) and not x.symbolic:
        return Known(np.tile(x.array, reps), x.onnx_type)
    dims = imp.shape(x)
    with _guard(imp):
        t = T(imp, x, node)
        # [d0, d1] -> [1, d0, 1, d1] -> expand [r0, d0, r1, d1] -> [r0*d0, r1*d1];
        # an axis repeated once gets no new axis (kiln's shapes have at most 8
        # axes: GPT-J tiles 5-D tensors along one axis)
        tiled = [i for i, r in enumerate(reps) if not (isinstance(r, int) and r == 1)]
        if not tiled:
            return t
        if len(dims) + len(tiled) > 8:
            for i in tiled:       # more axes than kiln has: one concat per tiled axis
                if not isinstance(reps[i], int):
                    raise UnsupportedNode(node, "a symbolic repeat count on a tensor of more than 4 axes")
                t = S.concat([t] * reps[i], i)
            return t
        inter, big = [], []
        for i, (r, d) in enumerate(zip(reps, dims)):
            inter += [1, d] if i in tiled else [d]
            big += [r, d] if i in tiled else [d]
        t = S.expand(N.reshape(t, inter), big)
        return N.reshape(t, [_norm(r * d) for r, d in zip(reps, dims)])


@op("Where")
def where(imp, node, ins):
    c, a, b = ins
    if all_known(ins) and not c.symbolic:
        if a.symbolic or b.symbolic:
            return Known(np.where(c.array, a.array.astype(object), b.array.astype(object)), a.onnx_type)
        return Known(np.where(c.array, a.array, b.array), a.onnx_type)
    with _guard(imp):
        return S.where(T(imp, c, node), T(imp, a, node), T(imp, b, node))


@op("Trilu")
def trilu(imp, node, ins):
    x = ins[0]
    k = int_list(imp, ins[1], node, "Trilu's k")[0] if len(ins) > 1 and ins[1] is not None else 0
    upper = attr(node, "upper", 1)
    dims = imp.shape(x)
    rows, cols = dims[-2], dims[-1]
    with _guard(imp):
        if isinstance(rows, int) and isinstance(cols, int) and isinstance(k, int):
            ones = np.ones((rows, cols), bool)
            mask = N.constant(np.triu(ones, k) if upper else np.tril(ones, k))
        else:
            r = _symbolic_arange(imp, node, rows)
            c = _symbolic_arange(imp, node, cols)
            diff = N.sub(N.reshape(c, [1, cols]), N.reshape(r, [rows, 1]))   # col - row
            kk = N.constant(np.array([[k]], np.int64)) if isinstance(k, int) else None
            if kk is None:
                raise UnsupportedNode(node, "a symbolic k")
            mask = N.greater_equal(diff, kk) if upper else N.less_equal(diff, kk)
        t = T(imp, x, node)
        return S.where(mask, t, N.mul(t, 0) if imp.onnx_type(x) != D.BOOL else N.logical_and(t, False))


def _symbolic_arange(imp, node, n):
    hi = imp.upper_bound(n)
    return N.reshape(S.slice(N.constant(np.arange(hi, dtype=np.int64)), [0], [n]), [n])


# ---- reductions, softmax, norms, matmul -----------------------------------------

_REDUCE = {"ReduceSum": S.reduce_sum, "ReduceMean": S.reduce_mean, "ReduceMax": S.reduce_max,
           "ReduceMin": S.reduce_min, "ReduceProd": S.reduce_prod}


def _reduce_axes(imp, node, ins):
    # axes: an input from opset 13 (ReduceSum) / 18 (the others), an attribute before
    axes = _axes(imp, node, ins)
    if not axes:
        if attr(node, "noop_with_empty_axes", 0):
            return None
        return list(range(len(imp.shape(ins[0]))))
    return list(axes)


@op("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp")
def reduce(imp, node, ins):
    axes = _reduce_axes(imp, node, ins)
    keep = bool(attr(node, "keepdims", 1))
    with _guard(imp):
        x = T(imp, ins[0], node)
        if axes is None:
            return x if node.op_type in _REDUCE else unary_post(node, x)
        if node.op_type in ("ReduceMax", "ReduceMin") and imp.onnx_type(ins[0]) == D.BOOL:
            # max of bools is any, min is all: through uint8
            r = _REDUCE[node.op_type](N.cast(x, N._dt.uint8), axes=axes, keepdims=keep)
            return N.cast(r, N._dt.bool_)
        if node.op_type in _REDUCE:
            return _REDUCE[node.op_type](x, axes=axes, keepdims=keep)
        if node.op_type == "ReduceSumSquare":
            return S.reduce_sum(N.mul(x, x), axes=axes, keepdims=keep)
        if node.op_type == "ReduceL1":
            return S.reduce_sum(N.absolute(x), axes=axes, keepdims=keep)
        if node.op_type == "ReduceL2":
            return N.sqrt(S.reduce_sum(N.mul(x, x), axes=axes, keepdims=keep))
        if node.op_type == "ReduceLogSum":
            return N.log(S.reduce_sum(x, axes=axes, keepdims=keep))
        m = S.reduce_max(x, axes=axes, keepdims=True)
        s = N.log(S.reduce_sum(N.exp(N.sub(x, m)), axes=axes, keepdims=True))
        y = N.add(s, m)
        return y if keep else N.reshape(y, [d for i, d in enumerate(imp.shape(ins[0])) if i not in
                                            {a % len(imp.shape(ins[0])) for a in axes}])


def unary_post(node, x):
    if node.op_type == "ReduceSumSquare":
        return N.mul(x, x)
    if node.op_type == "ReduceL1":
        return N.absolute(x)
    if node.op_type == "ReduceL2":
        return N.absolute(x)
    if node.op_type == "ReduceLogSum":
        return N.log(x)
    return x


@op("ArgMax", "ArgMin")
def arg(imp, node, ins):
    fn = S.argmax if node.op_type == "ArgMax" else S.argmin
    dims = imp.shape(ins[0])
    axis = attr(node, "axis", 0) % len(dims)
    keep = bool(attr(node, "keepdims", 1))
    with _guard(imp):
        x = T(imp, ins[0], node)
        if not attr(node, "select_last_index", 0):
            return fn(x, axis=axis, keepdims=keep)
        # the last extreme: the first one of the reversed axis, counted from the end
        rev = S.slice(x, [-1], [-(1 << 63)], axes=[axis], steps=[-1])
        return N.sub(N.constant(np.array(dims[axis] - 1, np.int64)) if isinstance(dims[axis], int)
                     else imp.tensor(Known(np.array(_norm(dims[axis] - 1), dtype=object), D.INT64), node),
                     fn(rev, axis=axis, keepdims=keep))


@op("Softmax", "LogSoftmax")
def softmax(imp, node, ins):
    fn = S.softmax if node.op_type == "Softmax" else S.log_softmax
    opset = imp.opset_of(node) or 13
    dims = imp.shape(ins[0])
    with _guard(imp):
        x = T(imp, ins[0], node)
        if opset >= 13:
            return fn(x, axis=attr(node, "axis", -1))
        # before opset 13: over the input flattened to 2-D at axis
        axis = attr(node, "axis", 1) % max(len(dims), 1)
        a, b = 1, 1
        for d in dims[:axis]:
            a = a * d
        for d in dims[axis:]:
            b = b * d
        y = fn(N.reshape(x, [_norm(a), _norm(b)]), axis=-1)
        return N.reshape(y, dims)


@op("LayerNormalization")
def layer_norm(imp, node, ins):
    if len(node.output) > 1 and any(node.output[1:]):
        return _layer_norm_with_stats(imp, node, ins)
    axis = attr(node, "axis", -1)
    eps = attr(node, "epsilon", 1e-5)
    with _guard(imp):
        x, scale = T(imp, ins[0], node), T(imp, ins[1], node)
        bias = T(imp, ins[2], node) if len(ins) > 2 and ins[2] is not None else N.mul(scale, 0.0)
        rank = len(imp.shape(ins[0]))
        axis = axis % rank
        # ONNX broadcasts scale/bias to the normalized axes; kiln's layer takes them shaped like those axes.
        norm_dims = imp.shape(ins[0])[axis:]
        if imp.shape(ins[1]) != norm_dims:
            scale = S.expand(scale, norm_dims)
        if (imp.shape(ins[2]) if len(ins) > 2 and ins[2] is not None else norm_dims) != norm_dims:
            bias = S.expand(bias, norm_dims)
        return S.layer_norm(x, scale, bias, axis=axis, epsilon=eps)


def _layer_norm_with_stats(imp, node, ins):
    """LayerNormalization whose Mean and InvStdDev outputs are used: spelled
    out with reductions (the fused layer gives only Y)."""
    dims = imp.shape(ins[0])
    axis = attr(node, "axis", -1) % len(dims)
    eps = attr(node, "epsilon", 1e-5)
    axes = list(range(axis, len(dims)))
    with _guard(imp):
        x, scale = T(imp, ins[0], node), T(imp, ins[1], node)
        mean = S.reduce_mean(x, axes=axes, keepdims=True)
        d = N.sub(x, mean)
        inv = N.reciprocal(N.sqrt(N.add(S.reduce_mean(N.mul(d, d), axes=axes, keepdims=True), float(eps))))
        y = N.mul(N.mul(d, inv), scale)
        if len(ins) > 2 and ins[2] is not None:
            y = N.add(y, T(imp, ins[2], node))
        return [y, mean, inv]


def _per_channel(imp, node, v, rank, dtype):
    """A [C] parameter as a kiln tensor shaped [C, 1, ..] to broadcast over
    [N, C, D1..]."""
    if isinstance(v, Known) and not v.symbolic:
        return N.constant(np.ascontiguousarray(v.array.astype(dtype).reshape((-1,) + (1,) * (rank - 2))))
    t = T(imp, v, node)
    return N.reshape(t, [imp.shape(v)[0]] + [1] * (rank - 2))


@op("BatchNormalization")
def batch_norm(imp, node, ins):
    """Inference BatchNormalization, y = (x - mean) / sqrt(var + eps) * scale + B:
    one multiply and one add per channel (folded at import when the
    statistics are initializers, as an exporter's eval-mode model has them)."""
    x, scale, bias, mean, var = ins[:5]
    eps = attr(node, "epsilon", 1e-5)
    rank = len(imp.shape(x))
    np_t = D.numpy_dtype(imp.onnx_type(x))
    if attr(node, "spatial", 1) == 0:
        raise UnsupportedNode(node, "spatial=0 (statistics per channel and position, opset < 9)")
    if len(node.output) > 3 and any(node.output[3:]):
        raise UnsupportedNode(node, "the saved mean and variance outputs (opset < 14 training)")
    if attr(node, "training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])):
        return _batch_norm_batch_statistics(imp, node, ins, eps, rank, np_t)
    with _guard(imp):
        t = T(imp, x, node)
        if all_known([scale, bias, mean, var]):
            a = scale.array.astype(np.float64) / np.sqrt(var.array.astype(np.float64) + eps)
            b = bias.array.astype(np.float64) - mean.array.astype(np.float64) * a
            a, b = Known(a, D.FLOAT), Known(b, D.FLOAT)
            return N.add(N.mul(t, _per_channel(imp, node, a, rank, np_t)), _per_channel(imp, node, b, rank, np_t))
        mean_t, var_t = _per_channel(imp, node, mean, rank, np_t), _per_channel(imp, node, var, rank, np_t)
        inv = N.reciprocal(N.sqrt(N.add(var_t, float(eps))))
        y = N.mul(N.mul(N.sub(t, mean_t), inv), _per_channel(imp, node, scale, rank, np_t))
        return N.add(y, _per_channel(imp, node, bias, rank, np_t))


def _batch_norm_batch_statistics(imp, node, ins, eps, rank, np_t):
    """training_mode=1: normalized with the batch's own mean and (biased)
    variance over every axis but the channels; the running statistics
    outputs blend them with the inputs' by momentum (ONNX's rule).  BiT's
    weight-standardized convolutions normalize their weights this way."""
    x, scale, bias, mean, var = ins[:5]
    momentum = attr(node, "momentum", 0.9)
    axes = [0] + list(range(2, rank))
    with _guard(imp):
        t = T(imp, x, node)
        m = S.reduce_mean(t, axes=axes, keepdims=True)
        d = N.sub(t, m)
        v = S.reduce_mean(N.mul(d, d), axes=axes, keepdims=True)
        y = N.mul(N.mul(d, N.reciprocal(N.sqrt(N.add(v, float(eps))))), _per_channel(imp, node, scale, rank, np_t))
        y = N.add(y, _per_channel(imp, node, bias, rank, np_t))
        c = imp.shape(x)[1]
        m, v = N.reshape(m, [c]), N.reshape(v, [c])
        running = [N.add(N.mul(T(imp, old, node), float(momentum)), N.mul(new, float(1 - momentum)))
                   for old, new in ((mean, m), (var, v))]
        return [y] + running


def _ones(dims, np_t):
    return S.expand(N.constant(np.ones([1] * len(dims), np_t)), dims)


@op("InstanceNormalization")
def instance_norm(imp, node, ins):
    """Each (sample, channel) normalized over its spatial axes: kiln's layer
    norm over axes 2.. with unit scale, then the per-channel scale and bias
    (wav2vec2's feature extractor; torch's GroupNorm is exported this way)."""
    x, scale, bias = ins
    dims = imp.shape(x)
    if len(dims) < 3:
        raise UnsupportedNode(node, f"an input of rank {len(dims)} (needs [N, C, D1..])")
    eps = attr(node, "epsilon", 1e-5)
    np_t = D.numpy_dtype(imp.onnx_type(x))
    with _guard(imp):
        t = T(imp, x, node)
        one = _ones(dims[2:], np_t)
        y = S.layer_norm(t, one, N.mul(one, 0.0), axis=2, epsilon=eps)
        return N.add(N.mul(y, _per_channel(imp, node, scale, len(dims), np_t)),
                     _per_channel(imp, node, bias, len(dims), np_t))


@op("GroupNormalization")
def group_norm(imp, node, ins):
    """[N, C, D..] as [N, G, C/G * D..], each group normalized (kiln's layer
    norm over axis 2 with unit scale), then scale and bias per channel
    (opset 21) or per group (opset 18, repeated over its channels)."""
    x, scale, bias = ins
    dims = imp.shape(x)
    groups = attr(node, "num_groups")
    eps = attr(node, "epsilon", 1e-5)
    if len(dims) < 3 or not isinstance(dims[1], int) or dims[1] % groups:
        raise UnsupportedNode(node, f"input dims {dims} with {groups} groups (needs [N, C, D1..], C known, "
                                    "divisible by num_groups)")
    c = dims[1]
    np_t = D.numpy_dtype(imp.onnx_type(x))
    rest = 1
    for d in dims[2:]:
        rest = rest * d
    with _guard(imp):
        t = N.reshape(T(imp, x, node), [dims[0], groups, _norm(c // groups * rest)])
        one = _ones([_norm(c // groups * rest)], np_t)
        y = N.reshape(S.layer_norm(t, one, N.mul(one, 0.0), axis=2, epsilon=eps), dims)
        params = []
        for v in (scale, bias):
            if imp.shape(v)[0] != c:        # opset 18: one value per group
                if not isinstance(v, Known):
                    raise UnsupportedNode(node, "per-group scale/bias computed at run time")
                v = Known(np.repeat(v.array, c // groups), v.onnx_type)
            params.append(_per_channel(imp, node, v, len(dims), np_t))
        return N.add(N.mul(y, params[0]), params[1])


@op("RMSNormalization")
def rms_norm(imp, node, ins):
    axis = attr(node, "axis", -1)
    eps = attr(node, "epsilon", 1e-5)
    with _guard(imp):
        x, scale = T(imp, ins[0], node), T(imp, ins[1], node)
        rank = len(imp.shape(ins[0]))
        axis = axis % rank
        norm_dims = imp.shape(ins[0])[axis:]
        if imp.shape(ins[1]) != norm_dims:
            scale = S.expand(scale, norm_dims)
        return S.rms_norm(x, scale, axis=axis, epsilon=eps)


@op("MatMul")
def matmul(imp, node, ins):
    a, b = ins
    da, db = imp.shape(a), imp.shape(b)
    with _guard(imp):
        ta, tb = T(imp, a, node), T(imp, b, node)
        flag_a = flag_b = False
        if len(da) == 1:
            ta = N.reshape(ta, [1, da[0]])
        else:
            ta, flag_a = _unswap(imp, ta, False)
        if len(db) == 1:
            tb = N.reshape(tb, [db[0], 1])
        else:
            tb, flag_b = _unswap(imp, tb, False)
        y = N.matmul(ta, tb, transpose_a=flag_a, transpose_b=flag_b)
        if len(da) == 1 or len(db) == 1:
            out = list(imp.shape(y))
            if len(da) == 1:
                del out[-2]
            if len(db) == 1:
                del out[-1]
            y = N.reshape(y, out)
        return y


@op("Gemm")
def gemm(imp, node, ins):
    alpha, beta = attr(node, "alpha", 1.0), attr(node, "beta", 1.0)
    with _guard(imp):
        # transA/transB are the matmul's own flags: the operands are read as
        # stored (a weight kept [N, K] is not copied into [K, N]).
        a, flag_a = _unswap(imp, T(imp, ins[0], node), bool(attr(node, "transA", 0)))
        b, flag_b = _unswap(imp, T(imp, ins[1], node), bool(attr(node, "transB", 0)))
        y = N.matmul(a, b, transpose_a=flag_a, transpose_b=flag_b)
        if alpha != 1.0:
            y = N.mul(y, alpha)
        if len(ins) > 2 and ins[2] is not None:
            c = T(imp, ins[2], node)
            y = N.add(y, N.mul(c, beta) if beta != 1.0 else c)
        return y


@op("GatherElements")
def gather_elements(imp, node, ins):
    data, idx = ins
    axis = attr(node, "axis", 0)
    if isinstance(data, Known) and isinstance(idx, Known) and not data.symbolic:
        ix = idx.array.astype(np.int64)
        n = data.array.shape[axis]
        return Known(np.take_along_axis(data.array, np.where(ix < 0, ix + n, ix), axis=axis), data.onnx_type)
    with _guard(imp):
        return S.gather_elements(T(imp, data, node), T(imp, idx, node), axis)


_SCATTER_NUMPY = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_reduction(imp, node):
    reduction = attr(node, "reduction", "none")
    if reduction not in ("none", "add", "mul", "max", "min"):
        raise UnsupportedNode(node, f"reduction '{reduction}' (kiln has none, add, mul, max, min)",
                              imp.opset_of(node))
    return reduction


def _scatter_known(ins):
    return all(isinstance(v, Known) and not v.symbolic for v in ins)


def _combine_np(reduction, old, new):
    return new if reduction == "none" else _SCATTER_NUMPY[reduction](old, new)


@op("ScatterND")
def scatter_nd(imp, node, ins):
    data, idx, upd = ins
    reduction = _scatter_reduction(imp, node)
    if _scatter_known(ins):
        out, ix = data.array.copy(), idx.array.astype(np.int64)
        k = ix.shape[-1]
        ix = ix.reshape(-1, k)
        up = upd.array.reshape((ix.shape[0],) + out.shape[k:])
        for i in range(ix.shape[0]):
            at = tuple(int(c) + (out.shape[j] if c < 0 else 0) for j, c in enumerate(ix[i]))
            out[at] = _combine_np(reduction, out[at], up[i])
        return Known(out, data.onnx_type)
    with _guard(imp):
        return S.scatter_nd(T(imp, data, node), T(imp, idx, node), T(imp, upd, node), reduction=reduction)


@op("ScatterElements", "Scatter")
def scatter_elements(imp, node, ins):
    data, idx, upd = ins
    axis = attr(node, "axis", 0)
    reduction = _scatter_reduction(imp, node)
    if _scatter_known(ins):
        out, ix = data.array.copy(), idx.array.astype(np.int64)
        axis %= out.ndim
        for pos in np.ndindex(*ix.shape):
            c = int(ix[pos])
            at = pos[:axis] + (c + (out.shape[axis] if c < 0 else 0),) + pos[axis + 1:]
            out[at] = _combine_np(reduction, out[at], upd.array[pos])
        return Known(out, data.onnx_type)
    with _guard(imp):
        return S.scatter_elements(T(imp, data, node), T(imp, idx, node), T(imp, upd, node), axis=axis,
                                  reduction=reduction)


@op("TopK")
def topk(imp, node, ins):
    # K: an attribute before opset 10, then a 1-element input that must be
    # known at import (a constant, or a computation of shapes: a SymDim).
    if len(ins) > 1 and ins[1] is not None:
        k = int_list(imp, ins[1], node, "TopK's K")
        if len(k) != 1:
            raise UnsupportedNode(node, f"a K of {len(k)} entries (TopK takes one)")
        k = k[0]
    else:
        k = attr(node, "k")
        if k is None:
            raise UnsupportedNode(node, "a TopK without K")
    with _guard(imp):
        values, indices = S.topk(T(imp, ins[0], node), k, axis=attr(node, "axis", -1),
                                 largest=bool(attr(node, "largest", 1)), sorted=bool(attr(node, "sorted", 1)))
    return [values, indices]


@op("CumSum")
def cumsum(imp, node, ins):
    axis = int_list(imp, ins[1], node, "CumSum's axis")[0]
    with _guard(imp):
        return S.cumsum(T(imp, ins[0], node), axis=axis, exclusive=bool(attr(node, "exclusive", 0)),
                        reverse=bool(attr(node, "reverse", 0)))


@op("Pad")
def pad(imp, node, ins):
    mode = attr(node, "mode", "constant")
    if mode not in ("constant", "edge", "reflect", "wrap"):
        raise UnsupportedNode(node, f"mode '{mode}' (kiln pads with constant, edge, reflect or wrap)")
    rank = len(imp.shape(ins[0]))
    if imp.opset_of(node) and imp.opset_of(node) < 11:
        pads, value, axes = attr(node, "pads"), attr(node, "value", 0.0), None
    else:
        pads = int_list(imp, ins[1], node, "Pad's pads")
        value = 0.0
        if len(ins) > 2 and ins[2] is not None:
            if not isinstance(ins[2], Known):
                raise NeedsKnown(node, "Pad's constant value must be known when the model is imported", ins[2])
            value = float(ins[2].array.reshape(-1)[0]) if ins[2].array.size else 0.0
        axes = int_list(imp, ins[3], node, "Pad's axes") if len(ins) > 3 and ins[3] is not None else None
    if axes is not None:      # pads for the listed axes only: spread to every axis
        full = [0] * (2 * rank)
        k = len(axes)
        for j, a in enumerate(axes):
            full[a % rank], full[rank + a % rank] = pads[j], pads[k + j]
        pads = full
    with _guard(imp):
        x = T(imp, ins[0], node)
        crop = [(a, -pads[a], -pads[rank + a]) for a in range(rank)
                if any(isinstance(p, int) and p < 0 for p in (pads[a], pads[rank + a]))]
        if crop:      # negative pads crop: a slice first, then the padding that is left
            dims = imp.shape(ins[0])
            x = S.slice(x, [max(b, 0) for _, b, _ in crop], [_norm(dims[a] - max(e, 0)) for a, _, e in crop],
                        axes=[a for a, _, _ in crop])
            pads = [p if not (isinstance(p, int) and p < 0) else 0 for p in pads]
        return S.pad(x, pads, value, mode=mode)


@op("Attention")
def attention(imp, node, ins):
    """ONNX Attention (opset 23-25).  Without mask, cache, softcap, window or
    extra outputs: kiln's fused attention layer.  Otherwise the reference
    chain (_attention_unfused).  3-D inputs [batch, seq, heads*dim] are split
    by q_num_heads / kv_num_heads; past_key/past_value (4-D) are concatenated
    before the new keys (the present outputs); nonpad_kv_seqlen masks each
    sequence's padding."""
    def opt(i):
        return ins[i] if len(ins) > i else None
    mask, past_k, past_v, nonpad = opt(3), opt(4), opt(5), opt(6)
    if (past_k is None) != (past_v is None):
        raise UnsupportedNode(node, "past_key and past_value must be given together")
    if nonpad is not None and past_k is not None:
        raise UnsupportedNode(node, "nonpad_kv_seqlen cannot be combined with past_key/past_value")
    outputs = list(node.output) + [""] * (4 - len(node.output))
    mode = attr(node, "qk_matmul_output_mode", 0)
    precision = attr(node, "softmax_precision", 0)
    if precision == D.DOUBLE:      # kiln has no float64: the softmax runs in float32, its widest float
        precision = D.FLOAT
    if precision not in (0, D.FLOAT, D.FLOAT16, D.BFLOAT16):
        raise UnsupportedNode(node, f"softmax_precision {precision} (kiln computes in float32, float16 or bfloat16)")
    window = (attr(node, "left_window_size", -1), attr(node, "right_window_size", -1))
    softcap = attr(node, "softcap", 0.0)
    causal = bool(attr(node, "is_causal", 0))
    scale = attr(node, "scale", None)
    q, k, v = ins[:3]
    dq, dk, dv = imp.shape(q), imp.shape(k), imp.shape(v)
    with _guard(imp):
        tq, tk, tv = T(imp, q, node), T(imp, k, node), T(imp, v, node)
        three_d = len(dq) == 3
        if three_d:
            hq, hk = attr(node, "q_num_heads"), attr(node, "kv_num_heads")
            if not hq or not hk:
                raise UnsupportedNode(node, "3-D Attention inputs need q_num_heads and kv_num_heads")

            def heads(t, dims, h):
                return S.transpose(N.reshape(t, [dims[0], dims[1], h, _norm(dims[2] // h)]), [0, 2, 1, 3])
            tq, tk, tv = heads(tq, dq, hq), heads(tk, dk, hk), heads(tv, dv, hk)
        offset = 0
        if past_k is not None:
            offset = imp.shape(past_k)[2]
            tk = S.concat([T(imp, past_k, node), tk], axis=2)
            tv = S.concat([T(imp, past_v, node), tv], axis=2)
        plain = (mask is None and not softcap and past_k is None and nonpad is None and window == (-1, -1)
                 and not precision and not any(outputs[1:]))
        qk = None
        if plain:
            y = S.scaled_dot_product_attention(tq, tk, tv, causal=causal, scale=scale)
        else:
            nonpad_t = T(imp, nonpad, node) if nonpad is not None else None
            y, qk = _attention_unfused(imp, node, tq, tk, tv, mask, causal, scale, softcap, offset, nonpad_t, window,
                                       mode, precision)
        if three_d:   # back to [batch, seq, heads*dim_v]
            ys = imp.shape(y)
            y = N.reshape(S.transpose(y, [0, 2, 1, 3]), [ys[0], ys[2], _norm(ys[1] * ys[3])])
        return [y, tk, tv, qk][:len(node.output)]


def _position_bias(imp, node, sq, sk, causal, offset, nonpad, window, dtype):
    """The additive bias (0 or -inf) of causality, the sliding window and the
    padding of each sequence.  A query at in-block index i sits at position
    i + offset (offset: the cached keys before it, or nonpad[b] - sq per
    sequence); it sees key j when j <= i + offset (causal) and within the
    window's left/right reach.  None when nothing restricts."""
    left, right = window
    if not (causal or left >= 0 or right >= 0 or nonpad is not None):
        return None
    if not (isinstance(sq, int) and isinstance(sk, int)):
        raise UnsupportedNode(node, "a causal, windowed or padded Attention over symbolic lengths")
    diff = np.arange(sq).reshape(sq, 1) - np.arange(sk).reshape(1, sk)      # i - j
    zero_inf = np.array([0.0, -np.inf], np.float32)
    if nonpad is None:
        d = diff + int(offset)
        allowed = np.ones((sq, sk), bool)
        if causal:
            allowed &= d >= 0
        if left >= 0:
            allowed &= d <= left
        if right >= 0:
            allowed &= -d <= right
        bias = N.constant(np.where(allowed, zero_inf[0], zero_inf[1]).astype(np.float32))
    else:
        # Per sequence: offset[b] = nonpad[b] - sq, and keys at j >= nonpad[b] are padding.
        lengths = N.reshape(N.cast(nonpad, "int64"), [imp.shape(nonpad)[0], 1, 1, 1])
        d = N.add(N.constant(diff.astype(np.int64)), N.sub(lengths, int(sq)))        # [b, 1, sq, sk]
        allowed = N.less(N.constant(np.arange(sk, dtype=np.int64).reshape(1, sk)), lengths)
        if causal:
            allowed = N.logical_and(allowed, N.greater_equal(d, 0))
        if left >= 0:
            allowed = N.logical_and(allowed, N.less_equal(d, left))
        if right >= 0:
            allowed = N.logical_and(allowed, N.greater_equal(d, -right))
        zero = N.constant(np.zeros(1, np.float32))
        bias = S.where(allowed, zero, N.sub(zero, float("inf")))
    return bias if dtype == N._dt.float32 else N.cast(bias, dtype)


def _attention_unfused(imp, node, q, k, v, mask, causal, scale, softcap, offset, nonpad, window, mode, precision):
    """ONNX Attention's reference order: scores = (q·scale)(k·scale)ᵀ with
    scale = sqrt(the scale), softcap, plus the bias (the mask: bool as 0/-inf;
    causality, window and padding: _position_bias), softmax (in
    softmax_precision when given), rows that see no key give 0, times v.
    Returns (y, the qk output of qk_matmul_output_mode)."""
    dq, dk = imp.shape(q), imp.shape(k)
    hq, hk = dq[1], dk[1]
    if scale is None:
        scale = 1.0 / math.sqrt(int(dq[3]))
    root = math.sqrt(scale)
    if hq != hk:       # grouped-query heads: repeat each key/value head
        g = _norm(hq // hk)

        def rep(t):
            d = imp.shape(t)
            t = S.expand(N.reshape(t, [d[0], d[1], 1, d[2], d[3]]), [d[0], d[1], g, d[2], d[3]])
            return N.reshape(t, [d[0], hq, d[2], d[3]])
        k, v = rep(k), rep(v)
    scores = N.matmul(N.mul(q, root), N.mul(k, root), transpose_b=True)   # q kᵀ, k read as stored
    if softcap:
        scores = N.mul(N.tanh(N.div(scores, float(softcap))), float(softcap))
    raw = scores
    zeros = N.mul(scores, 0.0)            # finite scores: exact zeros of the scores' shape and dtype
    sq, sk = imp.shape(scores)[2], imp.shape(scores)[3]
    bias = None
    if mask is not None:
        m = T(imp, mask, node)
        if m.dtype == N._dt.bool_:
            zero = N.mul(N.cast(m, scores.dtype), 0.0)
            m = S.where(m, zero, N.sub(zero, float("inf")))
        elif m.dtype != scores.dtype:
            m = N.cast(m, scores.dtype)
        mk = imp.shape(m)[-1]
        if isinstance(mk, int) and isinstance(sk, int) and mk < sk:   # shorter masks are padded with -inf
            pads = [0] * (2 * len(imp.shape(m)))
            pads[-1] = sk - mk
            m = S.pad(m, pads, value=float("-inf"))
        bias = m
    structural = _position_bias(imp, node, sq, sk, causal, offset, nonpad, window, scores.dtype)
    if structural is not None:
        bias = structural if bias is None else N.add(bias, structural)
    if bias is not None:
        scores = N.add(scores, bias)
    with_bias = scores
    if precision and D.kiln_dtype(precision, node, "softmax_precision") != scores.dtype:
        scores = N.cast(scores, D.kiln_dtype(precision, node, "softmax_precision"))
    p = S.softmax(scores, axis=-1)
    if bias is not None:
        none_seen = N.equal(S.reduce_max(N.add(bias, zeros), axes=[-1], keepdims=True), float("-inf"))
        zero = N.constant(np.zeros(1, np.float32))      # select, not multiply: a masked row may hold NaN
        p = S.where(none_seen, zero if p.dtype == N._dt.float32 else N.cast(zero, p.dtype), p)
    if p.dtype != q.dtype:
        p = N.cast(p, q.dtype)
    qk = {0: raw, 1: raw, 2: with_bias, 3: p}.get(mode)
    if qk is None:
        raise UnsupportedNode(node, f"qk_matmul_output_mode {mode}")
    return N.matmul(p, v), qk


def _conv_pads(node, auto_pad, in_dims, kernel, strides, dilations, pads):
    """ONNX's pads (begins, then ends) for auto_pad, as ints or SymDims: SAME
    padding of a symbolic size is an expression of it, so one engine serves
    every size of the profile."""
    k = len(kernel)
    if auto_pad in ("NOTSET", ""):
        return list(pads) if pads is not None else [0] * (2 * k)
    if auto_pad == "VALID":
        return [0] * (2 * k)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise UnsupportedNode(node, f"auto_pad '{auto_pad}' (NOTSET, VALID, SAME_UPPER and SAME_LOWER exist)")
    begins, ends = [], []
    for d, kk, st, dil in zip(in_dims, kernel, strides, dilations):
        # Output ceil(d / stride); the total pad makes the last window end at the input's end.
        out = cdiv(d, st)
        total = sym_max((out - 1) * st + (kk - 1) * dil + 1 - d, 0)
        small = total // 2
        big = total - small
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def _spatial_axes(node, x_dims):
    """k of an input [N, C, D1..Dk] of Conv, ConvTranspose or a pooling node (1 to 3)."""
    k = len(x_dims) - 2
    if k < 1 or k > 3:
        raise UnsupportedNode(node, f"an input of rank {len(x_dims)} (kiln's {node.op_type} has 1 to 3 spatial axes)")
    return k


def _conv_kernel(node, x_dims, w_dims):
    """(k, kernel_shape, strides, dilations) of Conv / ConvTranspose: the
    kernel from the weight's spatial axes when the attribute is absent."""
    k = _spatial_axes(node, x_dims)
    kernel = attr(node, "kernel_shape")
    kernel = list(w_dims[2:]) if kernel is None else [int(v) for v in kernel]
    if len(kernel) != k:
        raise UnsupportedNode(node, f"kernel_shape of {len(kernel)} entries for {k} spatial axes")
    strides = [int(v) for v in attr(node, "strides", [1] * k)]
    dilations = [int(v) for v in attr(node, "dilations", [1] * k)]
    return k, kernel, strides, dilations


@op("Conv")
def conv(imp, node, ins):
    x_v, w_v = ins[0], ins[1]
    b_v = ins[2] if len(ins) > 2 else None
    x_dims, w_dims = imp.shape(x_v), imp.shape(w_v)
    k, kernel, strides, dilations = _conv_kernel(node, x_dims, w_dims)
    for i, (a, b) in enumerate(zip(kernel, w_dims[2:])):
        if isinstance(b, int) and a != b:
            raise UnsupportedNode(node, f"kernel_shape {kernel} disagrees with the weight's shape {w_dims} "
                                        f"(spatial axis {i})")
    pads = attr(node, "pads")
    if pads is not None and len(pads) != 2 * k:
        raise UnsupportedNode(node, f"pads of {len(pads)} entries for {k} spatial axes (needs {2 * k})")
    pads = _conv_pads(node, attr(node, "auto_pad", "NOTSET"), x_dims[2:], kernel, strides, dilations, pads)
    with _guard(imp):
        return S.conv(T(imp, x_v, node), T(imp, w_v, node), None if b_v is None else T(imp, b_v, node),
                      strides=strides, dilations=dilations, group=int(attr(node, "group", 1)),
                      pads=[p if isinstance(p, SymDim) else int(p) for p in pads])


@op("ConvTranspose")
def conv_transpose(imp, node, ins):
    x_v, w_v = ins[0], ins[1]
    b_v = ins[2] if len(ins) > 2 else None
    x_dims, w_dims = imp.shape(x_v), imp.shape(w_v)
    k, kernel, strides, dilations = _conv_kernel(node, x_dims, w_dims)
    extra = [int(v) for v in attr(node, "output_padding", [0] * k)]
    pads = attr(node, "pads")
    pads = [0] * (2 * k) if pads is None else [int(v) for v in pads]
    auto_pad = attr(node, "auto_pad", "NOTSET")
    output_shape = attr(node, "output_shape")
    if auto_pad not in ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise UnsupportedNode(node, f"auto_pad '{auto_pad}' (NOTSET, VALID, SAME_UPPER and SAME_LOWER exist)")
    if len(pads) != 2 * k or len(extra) != k or len(strides) != k or len(dilations) != k:
        raise UnsupportedNode(node, f"pads, strides, dilations or output_padding of the wrong length for {k} "
                                    "spatial axes")
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # The pads that give output_shape (SAME: input · stride), split as
        # ONNX's reference does; symbolic sizes give expressions.
        if output_shape is not None:
            want = [int(v) for v in output_shape][-k:]
        else:
            want = [d * st for d, st in zip(x_dims[2:], strides)]
        begins, ends = [], []
        for d, kk, st, dil, e, o in zip(x_dims[2:], kernel, strides, dilations, extra, want):
            total = st * (d - 1) + e + (kk - 1) * dil + 1 - o
            if auto_pad == "SAME_UPPER":
                begins.append(total // 2)
                ends.append(total - total // 2)
            else:
                begins.append(total - total // 2)
                ends.append(total // 2)
        pads = begins + ends   # output_padding stays: total counts it
    elif auto_pad == "VALID":
        pads = [0] * (2 * k)
    with _guard(imp):
        return S.conv_transpose(T(imp, x_v, node), T(imp, w_v, node), None if b_v is None else T(imp, b_v, node),
                                strides=strides, dilations=dilations, group=int(attr(node, "group", 1)),
                                pads=[p if isinstance(p, SymDim) else int(p) for p in pads], output_padding=extra)


def _pool_attrs(imp, node, x_v):
    """kernel_shape, strides, dilations and pads (auto_pad resolved: SAME of
    a symbolic size is an expression of it) of MaxPool / AveragePool."""
    x_dims = imp.shape(x_v)
    k = _spatial_axes(node, x_dims)
    kernel = attr(node, "kernel_shape")
    if kernel is None:
        raise UnsupportedNode(node, "no kernel_shape (the attribute is required)")
    kernel = [int(v) for v in kernel]
    strides = [int(v) for v in attr(node, "strides", [1] * k)]
    dilations = [int(v) for v in attr(node, "dilations", [1] * k)]
    pads = attr(node, "pads")
    if len(kernel) != k or len(strides) != k or len(dilations) != k or (pads is not None and len(pads) != 2 * k):
        raise UnsupportedNode(node, f"kernel_shape, strides, dilations or pads of the wrong length for {k} spatial "
                                    "axes")
    pads = _conv_pads(node, attr(node, "auto_pad", "NOTSET"), x_dims[2:], kernel, strides, dilations, pads)
    return dict(kernel_shape=kernel, strides=strides, dilations=dilations, ceil_mode=bool(attr(node, "ceil_mode", 0)),
                pads=[p if isinstance(p, SymDim) else int(p) for p in pads])


@op("MaxPool")
def max_pool(imp, node, ins):
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedNode(node, f"the Indices output ('{node.output[1]}'): kiln's max_pool gives the values only")
    a = _pool_attrs(imp, node, ins[0])
    with _guard(imp):
        return S.max_pool(T(imp, ins[0], node), a.pop("kernel_shape"), **a)


@op("AveragePool")
def average_pool(imp, node, ins):
    a = _pool_attrs(imp, node, ins[0])
    with _guard(imp):
        return S.avg_pool(T(imp, ins[0], node), a.pop("kernel_shape"),
                          count_include_pad=bool(attr(node, "count_include_pad", 0)), **a)


@op("GlobalAveragePool", "GlobalMaxPool")
def global_pool(imp, node, ins):
    """The mean (max) over every spatial axis, kept as size 1: the REDUCE op."""
    rank = len(imp.shape(ins[0]))
    if rank < 3:
        raise UnsupportedNode(node, f"an input of rank {rank} (needs [N, C, D1..])")
    fn = S.reduce_mean if node.op_type == "GlobalAveragePool" else S.reduce_max
    with _guard(imp):
        return fn(T(imp, ins[0], node), axes=list(range(2, rank)), keepdims=True)


def unsupported(imp, node, ins):
    """What an op registered as not supported yet says (none is now; the
    node-test runner skips ops mapped here)."""
    raise UnsupportedNode(node, "not supported yet (docs/onnx.md lists the gaps)", imp.opset_of(node))


def _present(ins, i):
    """Input i when given and not an empty tensor (ONNX's "absent" scales/sizes/roi)."""
    if len(ins) <= i or ins[i] is None:
        return None
    v = ins[i]
    if isinstance(v, Known) and np.asarray(v.array).size == 0:
        return None
    return v


def _float_list(node, v, what):
    if not isinstance(v, Known):
        raise NeedsKnown(node, f"{what} must be known when the model is imported (here it is data computed at run "
                               "time: make it an initializer or a Constant)", v)
    arr = np.asarray(v.array)
    if arr.dtype == object:
        raise UnsupportedNode(node, f"{what} holds symbolic values (scales must be numbers)")
    return [float(f) for f in arr.astype(np.float64).reshape(-1)]


@op("Resize", "Upsample")
def resize(imp, node, ins):
    """ONNX Resize (opsets 10-19) and Upsample (7, 9): kiln's resize layer.
    Scales must be known at import (initializers, Constants); sizes may be
    a computation of shapes (Shape -> Gather -> Concat), so symbolic.  With
    scales, each size is floor(size · scale) (an expression when the size is
    symbolic) and the coordinate transformation divides by the given scale;
    with sizes, by out/in.  Refused by name: tf_crop_and_resize,
    antialias when it would change the result (linear or cubic shrinking an
    axis), keep_aspect_ratio_policy other than stretch on symbolic sizes."""
    x = ins[0]
    dims = list(imp.shape(x))
    r = len(dims)
    opset = imp.opset_of(node)
    kind = node.op_type

    def refuse(reason):   # names the node, its op and opset
        return UnsupportedNode(node, reason, opset)

    mode = attr(node, "mode", "nearest")
    if kind == "Upsample" or opset < 11:
        # Upsample and Resize-10: output floor(size · scale), x_in = x_out / scale.
        if mode == "bilinear":
            mode = "linear"
        if mode not in ("nearest", "linear"):
            raise refuse(f"mode '{mode}' ({kind}-{opset} has nearest and linear)")
        if kind == "Upsample" and opset < 9:
            scales = attr(node, "scales")
            if scales is None:
                raise refuse("no scales (the attribute is required)")
            scales = [float(f) for f in scales]
        else:
            sv = _present(ins, 1)
            if sv is None:
                raise refuse("no scales input")
            scales = _float_list(node, sv, f"{kind}'s scales")
        coord, nearest_mode, sizes = "asymmetric", "floor", None
        cubic_a, exclude = -0.75, 0
    else:
        coord = attr(node, "coordinate_transformation_mode", "half_pixel")
        nearest_mode = attr(node, "nearest_mode", "round_prefer_floor")
        cubic_a = float(attr(node, "cubic_coeff_a", -0.75))
        exclude = int(attr(node, "exclude_outside", 0))
        if coord == "tf_crop_and_resize":
            raise refuse("coordinate_transformation_mode 'tf_crop_and_resize' (kiln's resize has no "
                                        "region of interest)")
        if coord not in S._RESIZE_COORDS:
            raise refuse(f"coordinate_transformation_mode '{coord}'")
        if mode not in S._RESIZE_MODES:
            raise refuse(f"mode '{mode}'")
        if nearest_mode not in S._RESIZE_NEAREST:
            raise refuse(f"nearest_mode '{nearest_mode}'")
        sv, zv = _present(ins, 2), _present(ins, 3)
        if (sv is None) == (zv is None):
            raise refuse("needs exactly one of scales and sizes")
        axes = attr(node, "axes")
        naxes = r if axes is None else len(axes)
        if axes is not None:
            axes = [int(a) + r if int(a) < 0 else int(a) for a in axes]
            if any(a < 0 or a >= r for a in axes) or len(set(axes)) != len(axes):
                raise refuse(f"axes {list(attr(node, 'axes'))} for an input of rank {r}")
        else:
            axes = list(range(r))
        scales = sizes = None
        if sv is not None:
            given = _float_list(node, sv, "Resize's scales")
            if len(given) != naxes:
                raise refuse(f"{len(given)} scales for {naxes} axes")
            scales = [1.0] * r
            for a, f in zip(axes, given):
                scales[a] = f
        else:
            given = int_list(imp, zv, node, "Resize's sizes")
            if len(given) != naxes:
                raise refuse(f"{len(given)} sizes for {naxes} axes")
            sizes = list(dims)
            for a, d in zip(axes, given):
                sizes[a] = d
            policy = attr(node, "keep_aspect_ratio_policy", "stretch")
            if policy != "stretch":
                if policy not in ("not_larger", "not_smaller"):
                    raise refuse(f"keep_aspect_ratio_policy '{policy}'")
                if not all(isinstance(sizes[a], int) and isinstance(dims[a], int) for a in axes):
                    raise refuse(f"keep_aspect_ratio_policy '{policy}' of symbolic sizes")
                ratios = [sizes[a] / dims[a] for a in axes]
                scale = min(ratios) if policy == "not_larger" else max(ratios)
                scales = [scale if i in axes else 1.0 for i in range(r)]
                sizes = [int(scale * dims[i] + 0.5) if i in axes else dims[i] for i in range(r)]
        if int(attr(node, "antialias", 0)) and mode != "nearest":
            # Antialiasing widens the filter of a shrunk axis only; growing
            # or keeping an axis is the plain filter.
            for i in range(r):
                if scales is not None:
                    shrinks = scales[i] < 1
                elif isinstance(sizes[i], int) and isinstance(dims[i], int):
                    shrinks = sizes[i] < dims[i]
                else:
                    shrinks = sizes[i] is not dims[i]
                if shrinks:
                    raise refuse(f"antialias on axis {i}, which may shrink (kiln's resize has no "
                                                "antialiasing filter)")
    if scales is not None:
        for f in scales:
            if not math.isfinite(f) or f <= 0:
                raise refuse(f"scale {f} (scales must be positive)")
        if sizes is None:
            try:
                sizes = [S.resize_scaled_size(d, f) for d, f in zip(dims, scales)]
            except ValueError as e:
                raise refuse(str(e)) from None
    with _guard(imp):
        return S.resize(T(imp, x, node), sizes=[_norm(d) if isinstance(d, SymDim) else int(d) for d in sizes],
                        scales=scales, mode=mode, coordinate_transformation_mode=coord, nearest_mode=nearest_mode,
                        cubic_coeff_a=cubic_a, exclude_outside=exclude)


@op("RotaryEmbedding")
def rotary_embedding(imp, node, ins):
    """ONNX RotaryEmbedding (opset 23): kiln's built-in layer of the same
    semantics (3-D or 4-D input, partial and interleaved rotation, caches
    indexed by position_ids or given per token); its rule checks the
    attributes and shapes and names what is wrong."""
    x, cos, sin = ins[0], ins[1], ins[2]
    pos = ins[3] if len(ins) > 3 else None
    with _guard(imp):
        return S.rotary_embedding(T(imp, x, node), T(imp, cos, node), T(imp, sin, node),
                                  None if pos is None else T(imp, pos, node),
                                  interleaved=attr(node, "interleaved", 0),
                                  rotary_embedding_dim=attr(node, "rotary_embedding_dim", 0),
                                  num_heads=attr(node, "num_heads", 0))


# ---- Einsum ------------------------------------------------------------------------

def _einsum_terms(node, equation, ranks):
    """The equation's operand terms and output term as letter lists, with
    '...' spelled out as upper-case letters (right-aligned, numpy's
    broadcasting), and the implicit output (letters seen once, sorted)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise UnsupportedNode(node, f"Einsum equation {equation!r} has {len(terms)} operands, the node {len(ranks)}")
    ell = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t), default=0)
    spare = [chr(ord("A") + i) for i in range(ell)]
    out = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            n = r - len(t.replace("...", ""))
            t = t.replace("...", "".join(spare[ell - n:]))
        if len(t) != r or not all(ch.isalpha() for ch in t):
            raise UnsupportedNode(node, f"Einsum term {t!r} does not match an operand of rank {r}")
        out.append(list(t))
    if arrow:
        result = list(rhs.replace("...", "".join(spare)))
    else:
        counts = {}
        for t in out:
            for ch in t:
                counts[ch] = counts.get(ch, 0) + 1
        result = spare + sorted(ch for ch, c in counts.items() if c == 1 and ch.islower())
    return out, result


def _einsum_prepare(imp, node, x, term, keep):
    """One operand: its repeated letters reduced to their diagonal, its
    letters that no one else needs summed away.  Returns (tensor, letters)."""
    term = list(term)
    while True:
        dup = next((ch for ch in term if term.count(ch) > 1), None)
        if dup is None:
            break
        i = term.index(dup)
        j = term.index(dup, i + 1)
        dims = imp.shape(x)
        n = dims[i]
        if not isinstance(n, int):
            raise UnsupportedNode(node, "an Einsum diagonal over a symbolic dimension")
        rest = [a for a in range(len(term)) if a not in (i, j)]
        x = S.transpose(x, rest + [i, j])
        lead = [dims[a] for a in rest]
        x = N.reshape(x, lead + [n * n])
        x = S.slice(x, [0], [n * n], axes=[len(lead)], steps=[n + 1])      # the diagonal: every (n+1)th
        term = [term[a] for a in rest] + [dup]
    drop = [a for a, ch in enumerate(term) if ch not in keep]
    if drop:
        x = S.reduce_sum(x, axes=drop)
        term = [ch for ch in term if ch in keep]
    return x, term


def _einsum_pair(imp, a, ta, b, tb, keep):
    """Contract two prepared operands over the letters both have and no one
    else needs: one batched matmul.  Returns (tensor, letters)."""
    da, db = dict(zip(ta, imp.shape(a))), dict(zip(tb, imp.shape(b)))
    batch = [ch for ch in ta if ch in tb and ch in keep]
    summed = [ch for ch in ta if ch in tb and ch not in keep]
    free_a = [ch for ch in ta if ch not in tb]
    free_b = [ch for ch in tb if ch not in ta]

    def size(ch):   # broadcast: a size of 1 on one side takes the other's
        x, y = da.get(ch, 1), db.get(ch, 1)
        return y if isinstance(x, int) and x == 1 else x

    def prod(chs, d):
        n = 1
        for ch in chs:
            n = _norm(n * d[ch])
        return n

    def arrange(x, term, order, d):
        x = S.transpose(x, [term.index(ch) for ch in order]) if order != term else x
        full = [size(ch) for ch in order]
        if [d[ch] for ch in order] != full:
            x = S.expand(x, full)
        return x, {ch: size(ch) for ch in order}

    def matrix_order(term, rows, cols):
        """batch + rows + cols, or batch + cols + rows read with a transpose
        flag when that is the operand's own order (no transpose layer:
        "ij,kj->ik" is x @ W.T)."""
        plain, swapped = batch + rows + cols, batch + cols + rows
        return (swapped, True) if term != plain and term == swapped else (plain, False)

    order_a, flag_a = matrix_order(ta, free_a, summed)
    order_b, flag_b = matrix_order(tb, summed, free_b)
    a, da = arrange(a, ta, order_a, da)
    b, db = arrange(b, tb, order_b, db)
    bshape = [da[ch] for ch in batch]
    rows_a, cols_a = [prod(free_a, da), prod(summed, da)][::-1 if flag_a else 1]
    rows_b, cols_b = [prod(summed, db), prod(free_b, db)][::-1 if flag_b else 1]
    a = N.reshape(a, bshape + [rows_a, cols_a])
    b = N.reshape(b, bshape + [rows_b, cols_b])
    y = N.matmul(a, b, transpose_a=flag_a, transpose_b=flag_b)
    letters = batch + free_a + free_b
    return N.reshape(y, bshape + [da[ch] for ch in free_a] + [db[ch] for ch in free_b]), letters


@op("Einsum")
def einsum(imp, node, ins):
    """Einsum from kiln layers: diagonals by strided slices, sums by
    reductions, each contraction one batched matmul (operands folded left to
    right), then the output's order by a transpose."""
    equation = attr(node, "equation")
    with _guard(imp):
        xs = [T(imp, v, node) for v in ins]
        terms, result = _einsum_terms(node, equation, [len(imp.shape(v)) for v in ins])
        if len(set(result)) != len(result):
            raise UnsupportedNode(node, f"Einsum output {''.join(result)!r} repeats a letter")

        def needed(later):
            return set(result).union(*[set(t) for t in later])
        x, t = _einsum_prepare(imp, node, xs[0], terms[0], needed(terms[1:]))
        for k in range(1, len(xs)):
            y, u = _einsum_prepare(imp, node, xs[k], terms[k], needed(terms[:k] + terms[k + 1:]) | set(t))
            x, t = _einsum_pair(imp, x, t, y, u, needed(terms[k + 1:]))
        extra = [a for a, ch in enumerate(t) if ch not in result]
        if extra:
            x = S.reduce_sum(x, axes=extra)
            t = [ch for ch in t if ch in result]
        if set(t) != set(result):
            raise UnsupportedNode(node, f"Einsum output letters {''.join(result)!r} do not appear in the inputs")
        if t != result:
            x = S.transpose(x, [t.index(ch) for ch in result])
        if not result:     # a scalar
            x = N.reshape(x, [])
        return x
