"""Python plugins: PluginBase, the @plugin decorator, SymTensor and SymDim.

    @kiln.plugin("Scale")
    class Scale(kiln.PluginBase):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor                 # state: stored in the engine

        def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
            return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

        def forward(self, inputs, outputs):
            x = kiln.convert_to_torch_tensor(inputs[0])
            y = kiln.convert_to_torch_tensor(outputs[0])
            y.copy_(x * self.factor)

How it fits together
  - The decorator registers the class with the C plugin registry (through
    _kiln.register_plugin: the bridge in src/python/plugin_bridge.c).
  - Calling an instance on kiln Tensors inside net_guard adds a plugin layer.
    shape_dtype_inference is called once, here, with SymTensors whose dims are
    SymDims on the network's expression pool; the resulting expressions are
    stored in the engine, so running it needs no Python for shapes.
  - The instance's attributes (its __dict__, less kiln's own) are its state,
    stored as typed data (no pickle).  At load the bridge rebuilds the object
    with object.__new__ and setattr: __init__ is not called.
  - Calling an instance on torch tensors or numpy arrays runs it eagerly.

SymDim arithmetic: + - * with ints and SymDims, // floor division, / ceiling
division (as in TensorRT-LLM), sym_min / sym_max, sym_eq / sym_lt (1 or 0).
"""
import typing

from ._native import _kiln
from . import dtypes as _dt

__all__ = ["PluginBase", "plugin", "SymTensor", "SymDim", "sym_min", "sym_max", "sym_eq", "sym_lt",
           "registered_plugins", "unregister_plugin"]

# kiln_expr_op codes (include/kiln/kiln.h)
_OP_ADD, _OP_SUB, _OP_MUL, _OP_FLOORDIV, _OP_CEILDIV, _OP_MIN, _OP_MAX, _OP_EQ, _OP_LT = range(2, 11)

# Instance attributes that are kiln's, not the plugin's state.
_RESERVED = ("workspace", "current_stream")


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
        b = other if isinstance(other, SymDim) else SymDim(_as_int(other))
        pool = a._pool if a._pool is not None else b._pool
        if pool is None:
            if a._value is None or b._value is None:
                return SymDim(None)
            return SymDim(_PY_OPS[op](a._value, b._value))
        return SymDim._of(pool, pool.binary(op, a._expr_in(pool), b._expr_in(pool)))

    def __add__(self, o): return self._binop(o, _OP_ADD)
    def __radd__(self, o): return SymDim(_as_int(o))._binop(self, _OP_ADD)
    def __sub__(self, o): return self._binop(o, _OP_SUB)
    def __rsub__(self, o): return SymDim(_as_int(o))._binop(self, _OP_SUB)
    def __mul__(self, o): return self._binop(o, _OP_MUL)
    def __rmul__(self, o): return SymDim(_as_int(o))._binop(self, _OP_MUL)
    def __floordiv__(self, o): return self._binop(o, _OP_FLOORDIV)
    def __rfloordiv__(self, o): return SymDim(_as_int(o))._binop(self, _OP_FLOORDIV)
    # / is ceiling division, as in TensorRT-LLM's symbolic shapes.
    def __truediv__(self, o): return self._binop(o, _OP_CEILDIV)
    def __rtruediv__(self, o): return SymDim(_as_int(o))._binop(self, _OP_CEILDIV)
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
            if not self._pool.valid:
                return "SymDim(<expired>)"
            return f"SymDim({self._pool.format(self._expr)})"
        return f"SymDim({'?' if self._value is None else self._value})"

    def __str__(self):
        v = self.value if (self._pool is None or self._pool.valid) else None
        if v is not None:
            return str(v)
        if self._pool is not None and self._pool.valid:
            return self._pool.format(self._expr)
        return "?"


def _as_int(x):
    if isinstance(x, bool) or not hasattr(x, "__index__"):
        raise TypeError(f"a {type(x).__name__} is not a dimension (use ints or SymDims)")
    return x.__index__()


def _sym_binop(op, a, b):
    a = a if isinstance(a, SymDim) else SymDim(_as_int(a))
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


class _UnknownShape(list):
    """A shape of unknown rank: any index gives an unknown SymDim.  Used only
    when dtypes must be inferred before shapes are known."""

    def __getitem__(self, i):
        if isinstance(i, slice):
            return _UnknownShape()
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


# --- registration --------------------------------------------------------------

_registry = {}   # (namespace, name, version) -> class


def registered_plugins():
    """{(namespace, name, version): class} of the Python plugins registered."""
    return dict(_registry)


def _label(key):
    return f"{key[0]}::{key[1]} (version {key[2]})"


def _is_symtensor_type(t):
    return isinstance(t, type) and issubclass(t, SymTensor)


def _count_from_string(ann):
    s = ann.replace(" ", "")
    for prefix in ("typing.", "t."):
        s = s.replace(prefix, "")
    if s.split(".")[-1] == "SymTensor":
        return 1
    for head in ("tuple[", "Tuple["):
        if s.startswith(head) and s.endswith("]"):
            parts = s[len(head):-1].split(",")
            if "..." in parts:
                return None
            if all(p.split(".")[-1] == "SymTensor" for p in parts):
                return len(parts)
    return None


def _count_outputs(cls, label):
    fn = getattr(cls, "shape_dtype_inference", None)
    ann = getattr(fn, "__annotations__", {}).get("return", None)
    if ann is None:
        raise TypeError(f"plugin {label}: cannot tell how many outputs it has: annotate "
                        "shape_dtype_inference's return type (-> SymTensor or -> tuple[SymTensor, SymTensor]) "
                        "or pass num_outputs= to the decorator")
    resolved = ann
    if isinstance(ann, str):
        try:
            resolved = typing.get_type_hints(fn).get("return", ann)
        except Exception:
            resolved = ann
    if isinstance(resolved, str):
        n = _count_from_string(resolved)
    elif _is_symtensor_type(resolved):
        n = 1
    else:
        origin = typing.get_origin(resolved)
        args = typing.get_args(resolved)
        n = None
        if origin in (tuple,) and args and Ellipsis not in args and all(_is_symtensor_type(a) for a in args):
            n = len(args)
    if n is None:
        raise TypeError(f"plugin {label}: the return annotation {ann!r} of shape_dtype_inference does not say "
                        "how many outputs there are (use SymTensor or tuple[SymTensor, ...] with a fixed count, "
                        "or pass num_outputs=)")
    return n


def plugin(name, *, version="1", namespace="kiln", num_outputs=None):
    """Class decorator: register a PluginBase subclass as plugin
    namespace::name at version.  The number of outputs comes from
    shape_dtype_inference's return annotation unless num_outputs is given."""
    if not isinstance(name, str) or not name:
        raise TypeError("plugin name must be a non-empty str")

    def register(cls):
        key = (str(namespace), name, str(version))
        label = _label(key)
        if not (isinstance(cls, type) and issubclass(cls, PluginBase)):
            raise TypeError(f"@plugin('{name}') must decorate a subclass of kiln.PluginBase, got {cls!r}")
        for method in ("shape_dtype_inference", "forward"):
            if getattr(cls, method, None) is getattr(PluginBase, method):
                raise TypeError(f"plugin {label}: {cls.__qualname__} must define {method}()")
        existing = _registry.get(key)
        if existing is not None:
            raise ValueError(f"plugin {label} is already registered by {existing.__module__}."
                             f"{existing.__qualname__}; cannot register {cls.__module__}.{cls.__qualname__} "
                             "under the same namespace, name and version")
        n = int(num_outputs) if num_outputs is not None else _count_outputs(cls, label)
        if n < 1:
            raise ValueError(f"plugin {label}: num_outputs must be at least 1")
        has_ws = getattr(cls, "workspace_size", None) is not PluginBase.workspace_size
        _kiln.register_plugin(cls, key[0], key[1], key[2], cls.__module__ or "", n, has_ws)
        cls._kiln_key = key
        cls._kiln_label = label
        cls._kiln_num_outputs = n
        cls._kiln_has_workspace = has_ws
        _registry[key] = cls
        return cls

    return register


def unregister_plugin(cls):
    """Remove a plugin class's registration (tests, notebooks re-running a
    cell).  Sessions created before keep working."""
    key = cls.__dict__.get("_kiln_key")
    if key is None or _registry.get(key) is not cls:
        raise ValueError(f"{cls.__qualname__} is not registered")
    _kiln.deregister_plugin(*key)
    del _registry[key]
    del cls._kiln_key


class PluginBase:
    """Base class of Python plugins.  Subclasses define
    shape_dtype_inference(inputs) and forward(inputs, outputs), optionally
    workspace_size(inputs), and are registered with @kiln.plugin(name).

    During forward, self.workspace is the workspace address (0 when none) and
    self.current_stream the CUDA stream (0 on the CPU)."""

    workspace = 0
    current_stream = 0

    def __new__(cls, *args, **kwargs):
        if "_kiln_key" not in cls.__dict__:
            raise TypeError(f"plugin class {cls.__module__}.{cls.__qualname__} is not registered: decorate it "
                            "with @kiln.plugin(\"Name\") (or @trtllm_plugin(\"Name\")) before creating instances")
        return object.__new__(cls)

    def __init__(self):
        pass

    def shape_dtype_inference(self, inputs):
        raise NotImplementedError

    def forward(self, inputs, outputs):
        raise NotImplementedError

    def workspace_size(self, inputs):
        return 0

    # --- state ---------------------------------------------------------------
    def _kiln_fields(self):
        d = getattr(self, "__dict__", {})
        return {k: v for k, v in d.items() if not k.startswith("_kiln") and k not in _RESERVED}

    # --- calling -------------------------------------------------------------
    def __call__(self, *inputs):
        from .network import Tensor
        if not inputs:
            raise TypeError(f"plugin {self._kiln_label}: call it with its input tensors")
        graph = [isinstance(t, Tensor) for t in inputs]
        if all(graph):
            return _add_layer(self, inputs)
        if any(graph):
            raise TypeError(f"plugin {self._kiln_label}: inputs mix kiln Tensors and arrays")
        return _run_eager(self, inputs)


# --- tracing shape_dtype_inference ------------------------------------------------

def _trace(obj, inputs, n_out):
    """Call shape_dtype_inference; return (dtype codes, list of SymTensor)."""
    label = type(obj)._kiln_label
    result = obj.shape_dtype_inference(inputs)
    outs = [result] if isinstance(result, SymTensor) else result
    if not isinstance(outs, (list, tuple)) or not all(isinstance(o, SymTensor) for o in outs):
        raise TypeError(f"plugin {label}: shape_dtype_inference must return a SymTensor or a tuple of them, "
                        f"got {type(result).__name__}")
    if len(outs) != n_out:
        raise ValueError(f"plugin {label}: shape_dtype_inference returned {len(outs)} outputs, "
                         f"the plugin declares {n_out}")
    codes = []
    for i, o in enumerate(outs):
        try:
            codes.append(_dt.to_dtype(o.dtype).code)
        except (TypeError, ValueError) as e:
            raise TypeError(f"plugin {label}: output {i}: {e}") from None
    return codes, list(outs)


def _shape_exprs(pool, out, label, index):
    exprs = []
    for axis, d in enumerate(out.shape):
        try:
            if isinstance(d, SymDim):
                exprs.append(d._expr_in(pool))
            else:
                exprs.append(pool.const(_as_int(d)))
        except (TypeError, ValueError) as e:
            raise TypeError(f"plugin {label}: output {index} axis {axis}: {e}") from None
    return tuple(exprs)


def _sym_inputs(pool, dtypes, shapes):
    return [SymTensor(_dt.to_dtype(dtypes[i]) if dtypes is not None else None,
                      [SymDim._of(pool, e) for e in shape])
            for i, shape in enumerate(shapes)]


def _hook_dtypes(obj, in_codes, n_out):
    inputs = [SymTensor(_dt.to_dtype(c), _UnknownShape()) for c in in_codes]
    return _trace(obj, inputs, n_out)[0]


def _hook_shapes(obj, pool, in_codes, in_shapes, n_out):
    label = type(obj)._kiln_label
    _, outs = _trace(obj, _sym_inputs(pool, in_codes, in_shapes), n_out)
    return [_shape_exprs(pool, o, label, i) for i, o in enumerate(outs)]


def _hook_workspace(obj, pool, in_codes, in_shapes):
    return _workspace_expr(obj, pool, _sym_inputs(pool, in_codes, in_shapes))


def _workspace_expr(obj, pool, inputs):
    label = type(obj)._kiln_label
    ws = obj.workspace_size(inputs)
    if ws is None:
        return None
    try:
        return ws._expr_in(pool) if isinstance(ws, SymDim) else pool.const(_as_int(ws))
    except (TypeError, ValueError) as e:
        raise TypeError(f"plugin {label}: workspace_size: {e}") from None


_kiln._set_plugin_hooks(_hook_dtypes, _hook_shapes, _hook_workspace)


def _add_layer(obj, tensors):
    """Add obj as a plugin layer on kiln Tensors; returns its output Tensor(s)."""
    from .network import _net_of
    cls = type(obj)
    net = _net_of(*tensors)
    pool = net.exprs
    inputs = []
    for t in tensors:
        dtype, shape = net._net.tensor_info(t._id)
        inputs.append(SymTensor(_dt.to_dtype(dtype), [SymDim._of(pool, e) for e in shape]))
    codes, outs = _trace(obj, inputs, cls._kiln_num_outputs)
    if callable(getattr(cls, "aot", None)):
        from . import aot as _aot
        if _aot.prefer_aot(net):   # compiled kernels instead of forward (python/kiln/aot.py)
            return _aot.add_layer(obj, net, tensors, inputs, codes, outs)
    shapes = [_shape_exprs(pool, o, cls._kiln_label, i) for i, o in enumerate(outs)]
    ws = _workspace_expr(obj, pool, inputs) if cls._kiln_has_workspace else None
    trace = (cls._kiln_key, tuple(codes), shapes, ws, pool.key)
    ns, name, version = cls._kiln_key
    ids = net._net.add_plugin(ns, name, version, cls.__module__ or "", obj._kiln_fields(),
                              [t._id for t in tensors], cls._kiln_num_outputs, trace)
    result = [net._tensor(i) for i in ids]
    return result[0] if len(result) == 1 else tuple(result)


# --- eager calls ---------------------------------------------------------------------

def _run_eager(obj, arrays):
    """Run forward on torch tensors / numpy arrays, allocating the outputs."""
    from .tensor import TensorWrapper
    cls = type(obj)
    label = cls._kiln_label
    ins = [TensorWrapper.from_tensor(a) for a in arrays]
    sym = [SymTensor(_dt.to_dtype(w.kiln_dtype), [SymDim(d) for d in w.shape]) for w in ins]
    codes, outs = _trace(obj, sym, cls._kiln_num_outputs)
    first = arrays[0]
    is_torch = type(first).__module__.startswith("torch")
    results = []
    for i, (code, o) in enumerate(zip(codes, outs)):
        try:
            shape = [_as_int(d) for d in o.shape]
        except TypeError as e:
            raise TypeError(f"plugin {label}: output {i}: {e}") from None
        results.append(_alloc(first, is_torch, code, shape))
    out_w = [TensorWrapper.from_tensor(r) for r in results]
    workspace_buf = None
    if cls._kiln_has_workspace:
        n = obj.workspace_size(sym)
        n = _as_int(n) if n is not None else 0
        if n > 0:
            workspace_buf = _alloc(first, is_torch, _dt.uint8.code, [n])
            obj.workspace = TensorWrapper.from_tensor(workspace_buf).data_ptr()
        else:
            obj.workspace = 0
    else:
        obj.workspace = 0
    obj.current_stream = _current_stream(first, is_torch)
    obj.forward(ins, out_w)
    del workspace_buf
    return results[0] if len(results) == 1 else tuple(results)


def _alloc(like, is_torch, code, shape):
    if is_torch:
        torch = _dt._torch()
        return torch.empty(shape, dtype=_dt.to_torch_dtype(code), device=like.device)
    if code == _dt.bfloat16.code:
        torch = _dt._torch()
        if torch is None:
            raise TypeError("a bfloat16 output needs torch (numpy has no bfloat16)")
        return torch.empty(shape, dtype=torch.bfloat16)
    import numpy as np
    return np.empty(shape, dtype=_dt.to_numpy_dtype(code))


def _current_stream(like, is_torch):
    if is_torch and getattr(like, "is_cuda", False):
        torch = _dt._torch()
        return torch.cuda.current_stream(like.device).cuda_stream
    return 0
