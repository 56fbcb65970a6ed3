"""Building networks: Builder, Network, Tensor, net_guard and the layer functions.

The API follows TensorRT-LLM's:

    builder = kiln.Builder()
    network = builder.create_network()
    with kiln.net_guard(network):
        x = kiln.Tensor(name="x", shape=(-1, 16), dtype="float32",
                        dim_range=OrderedDict([("batch", [(1, 8, 64)]), ("hidden", [16])]))
        y = kiln.relu(x + 1.0)
        y.mark_output("y")
    engine = builder.build_engine(network, builder.create_builder_config(precision="float32"))
    with open("relu.engine", "wb") as f:
        f.write(engine)

Dynamic dimensions are -1 entries of `shape`, named by `dim_range`: an
OrderedDict with one key per axis, in order; for a dynamic axis the value is
a list of (min, opt, max), one per optimization profile (a bare (min, opt,
max) means one profile); for a static axis the value is ignored.  The same
name on two inputs is one dimension.

All the work is done by the C library: this module only keeps the Python
objects tidy.
"""
import json
import os
import threading
from contextlib import contextmanager

from ._native import _kiln
from . import dtypes as _dt
from . import aot as _aot
from .symbolic import SymDim, dim_expr

__all__ = [
    "TRTLLM_IGNORED_TENSOR_ARGS", "Builder", "BuilderConfig", "Network", "Tensor", "net_guard", "current_network",
    "constant", "cast", "matmul", "gather", "reshape", "relu", "gelu", "silu", "exp", "neg", "sqrt",
    "tanh", "sigmoid", "erf", "gelu_erf", "rsqrt", "absolute", "log", "sin", "cos", "floor", "ceil", "reciprocal",
    "sign",
    "add", "sub", "mul", "div", "minimum", "maximum",
]

# kiln_binary_op / kiln_unary_op codes, from the extension (include/kiln/kiln.h)
_ADD, _SUB, _MUL, _DIV = _kiln.BINARY_ADD, _kiln.BINARY_SUB, _kiln.BINARY_MUL, _kiln.BINARY_DIV
_MIN, _MAX = _kiln.BINARY_MIN, _kiln.BINARY_MAX
_RELU, _GELU, _SILU = _kiln.UNARY_RELU, _kiln.UNARY_GELU, _kiln.UNARY_SILU
_EXP, _NEG, _SQRT = _kiln.UNARY_EXP, _kiln.UNARY_NEG, _kiln.UNARY_SQRT

# Tensor() keyword arguments of TensorRT-LLM's that kiln accepts and ignores
# on purpose (docs/python.md): is_network_input (every Tensor() is an input
# here), location (kiln has no TensorRT tensor locations).  Any other unknown
# keyword is a TypeError.
TRTLLM_IGNORED_TENSOR_ARGS = ("is_network_input", "location")

_tls = threading.local()


def _stack():
    s = getattr(_tls, "stack", None)
    if s is None:
        s = _tls.stack = []
    return s


def current_network():
    """The network of the innermost net_guard on this thread, or None."""
    s = _stack()
    return s[-1] if s else None


@contextmanager
def net_guard(network):
    """Make `network` the one new Tensors and layers go into."""
    if not isinstance(network, Network):
        raise TypeError(f"net_guard needs a kiln Network, got {type(network).__name__}")
    _stack().append(network)
    try:
        yield network
    finally:
        _stack().pop()


def _require_network(what):
    net = current_network()
    if net is None:
        raise RuntimeError(f"{what}: no current network (use `with kiln.net_guard(network):`)")
    return net


class Network:
    """A network under construction (wraps the C kiln_network)."""

    def __init__(self):
        self._net = _kiln.Network()
        self._tensors = {}
        self._dims = {}         # name -> tuple of (min, opt, max)
        self._names = set()
        self._counter = 0
        self._built = False
        # AOT settings (python/kiln/aot.py; None: the environment's, else the
        # default) and the (plugin label, target) of each layer added as AOT.
        self.prefer_aot = None
        self.aot_target = None
        self.aot_layers = []

    @property
    def exprs(self):
        """The network's expression pool (symbolic dimensions live there)."""
        return self._net.exprs

    def _tensor(self, tid):
        t = self._tensors.get(tid)
        if t is None:
            t = Tensor._wrap(self, tid)
            self._tensors[tid] = t
        return t

    def _fresh_name(self, stem):
        while True:
            self._counter += 1
            name = f"{stem}{self._counter}"
            if name not in self._names:
                self._names.add(name)
                return name

    def _dim(self, name, ranges):
        known = self._dims.get(name)
        if known is not None:
            if known != ranges:
                raise ValueError(f"dimension '{name}' is declared twice with different ranges: "
                                 f"{list(known)} and {list(ranges)} (one name is one dimension)")
            return self._net.find_dim(name)
        e = self._net.add_dim(name, list(ranges))
        self._dims[name] = ranges
        return e

    def _max_value(self, d):
        """A SymDim's value with every dynamic dim at its largest (over the
        profiles): the bound of the shape expressions, which grow with the dims."""
        maxima = [max(r[2] for r in ranges) for ranges in self._dims.values()]
        return self.exprs.eval(d._expr_in(self.exprs), maxima)

    def set_parallel(self, rank, world_size):
        """This network is rank `rank` of a group of `world_size` processes
        (tensor parallelism): collective layers (kiln.all_reduce, all_gather,
        reduce_scatter) combine the tensors of the group's ranks, and the
        engine records (rank, world_size) for the session that joins the
        group.  Set it before adding collectives (their shapes depend on it)."""
        self._net.set_parallel(int(rank), int(world_size))

    @property
    def parallel(self):
        """(rank, world_size); (0, 1) unless set_parallel said otherwise."""
        return self._net.parallel

    @property
    def dims(self):
        """{name: [(min, opt, max), ...]} of the declared dynamic dimensions."""
        return {k: list(v) for k, v in self._dims.items()}

    def build(self):
        """Build and serialize; returns the engine bytes (a Blob)."""
        blob = self._net.build()
        self._built = True
        return blob

    def build_report(self):
        return self._net.build_report()


class BuilderConfig:
    """Build settings (kept for TensorRT-LLM compatibility and saved as JSON).

    kiln networks are strongly typed: every tensor has the dtype it was
    declared with, and the builder converts nothing.  precision says which
    float type the network computes in: "float32" (the default) or None
    accept any network; "float16" or "bfloat16" are accepted for a network
    that already has no float32 tensor, and build_engine refuses one that has
    (naming it) rather than pretend to cast it.  Other options are kept as
    given (saved by Builder.save_config)."""

    _PRECISIONS = ("float32", "float16", "bfloat16")

    def __init__(self, precision="float32", **kwargs):
        if precision is not None:
            precision = _dt.dtype_name(precision)
            if precision not in self._PRECISIONS:
                raise ValueError(f"BuilderConfig: precision {precision!r} is not a float type "
                                 f"(one of {', '.join(self._PRECISIONS)}, or None)")
        self.precision = precision
        self.options = dict(kwargs)

    def check(self, network):
        """Refuse a network the precision would have to convert (build_engine calls this)."""
        if self.precision in (None, "float32"):
            return
        for t in network._tensors.values():
            if t.dtype == _dt.float32:
                raise ValueError(f"BuilderConfig(precision={self.precision!r}): tensor '{t.name}' is float32 and "
                                 "kiln does not convert networks (they are strongly typed): declare it as "
                                 f"{self.precision} (inputs, constants, cast()) or build with precision='float32'")

    def to_dict(self):
        d = {"precision": self.precision}
        d.update(self.options)
        return d

    def __repr__(self):
        return f"BuilderConfig({self.to_dict()!r})"


class Builder:
    """Creates networks and builds them into engines."""

    def __init__(self):
        self._strongly_typed = None   # None: never set

    @property
    def strongly_typed(self):
        """Always True: every tensor of a kiln network has the dtype it was
        declared with.  TensorRT-LLM code sets it explicitly
        (builder.strongly_typed = True); then, as in TensorRT, a config's
        precision does not apply and is not checked.  Left unset, a precision
        other than float32 is checked (BuilderConfig.check); set to False, the
        build is refused: kiln has no weakly typed mode."""
        return self._strongly_typed is not False

    @strongly_typed.setter
    def strongly_typed(self, value):
        self._strongly_typed = bool(value)

    def create_network(self, prefer_aot=None, aot_target=None):
        """A new network.  prefer_aot / aot_target: how plugins with an aot()
        method are added (python/kiln/aot.py); the defaults come from the
        environment (KILN_PREFER_AOT, KILN_AOT_TARGET), else AOT for the local GPU."""
        net = Network()
        if prefer_aot is not None or aot_target is not None:
            _aot.configure(net, prefer_aot=prefer_aot, aot_target=aot_target)
        return net

    def create_builder_config(self, precision="float32", **kwargs):
        return BuilderConfig(precision=precision, **kwargs)

    def build_engine(self, network, config=None):
        """The serialized engine: supports the buffer protocol (f.write(engine),
        bytes(engine)) and .save(path)."""
        if not isinstance(network, Network):
            raise TypeError(f"build_engine needs a kiln Network, got {type(network).__name__}")
        if config is not None:
            if not isinstance(config, BuilderConfig):
                raise TypeError(f"build_engine: config must be a kiln BuilderConfig "
                                f"(Builder.create_builder_config), not a {type(config).__name__}")
            if self._strongly_typed is False:
                raise ValueError("Builder.strongly_typed = False: kiln networks are always strongly typed (every "
                                 "tensor has the dtype it was declared with); leave it unset or set it to True")
            if self._strongly_typed is not True:
                config.check(network)
        if network.aot_layers:
            _aot.check_config(network, config)
        return network.build()

    def save_config(self, config, path):
        d = {"builder_config": config.to_dict() if config is not None else {},
             "kiln_version": _kiln.version(), "strongly_typed": self.strongly_typed}
        with open(os.fspath(path), "w") as f:
            json.dump(d, f, indent=2, sort_keys=True)
            f.write("\n")


def _parse_ranges(name, value):
    """dim_range value of a dynamic axis -> tuple of (min, opt, max)."""
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, int) for v in value):
        value = [value]
    try:
        ranges = tuple(tuple(int(x) for x in r) for r in value)
    except TypeError:
        raise TypeError(f"dim_range['{name}'] must be a list of (min, opt, max), one per profile; got {value!r}")
    for r in ranges:
        if len(r) != 3:
            raise ValueError(f"dim_range['{name}']: {r!r} is not (min, opt, max)")
    if not ranges:
        raise ValueError(f"dim_range['{name}'] is empty")
    return ranges


class Tensor:
    """A tensor of a network.

    Tensor(name=, shape=, dtype=, dim_range=) declares an input of the current
    network (see the module docstring for dim_range).  Layer functions and the
    operators + - * / @ return new Tensors."""

    __slots__ = ("_network", "_id", "__weakref__")

    def __init__(self, name=None, shape=None, dtype=None, dim_range=None, network=None, **kwargs):
        unknown = [k for k in kwargs if k not in TRTLLM_IGNORED_TENSOR_ARGS]
        if unknown:
            raise TypeError(f"kiln.Tensor: unexpected keyword argument(s) {', '.join(map(repr, unknown))} "
                            "(kiln takes name, shape, dtype, dim_range, network; TensorRT-LLM's "
                            f"{', '.join(TRTLLM_IGNORED_TENSOR_ARGS)} are accepted and ignored)")
        net = network if network is not None else _require_network("kiln.Tensor")
        if name is None:
            raise ValueError("an input Tensor needs a name")
        if shape is None:
            raise ValueError(f"input '{name}' needs a shape")
        if dtype is None:
            raise ValueError(f"input '{name}' needs a dtype")
        dt = _dt.to_dtype(dtype)
        shape = list(shape)
        axis_names = list(dim_range.keys()) if dim_range is not None else None
        if axis_names is not None and len(axis_names) != len(shape):
            raise ValueError(f"input '{name}': dim_range has {len(axis_names)} entries for {len(shape)} axes "
                             "(one name per axis)")
        pool = net.exprs
        exprs = []
        for axis, d in enumerate(shape):
            if isinstance(d, bool) or not isinstance(d, int):
                d = int(d)
            if d == -1:
                if axis_names is None:
                    raise ValueError(f"input '{name}': axis {axis} is dynamic (-1) but no dim_range names it")
                dim_name = axis_names[axis]
                exprs.append(net._dim(dim_name, _parse_ranges(dim_name, dim_range[dim_name])))
            elif d < 0:
                raise ValueError(f"input '{name}': axis {axis} has size {d} (use -1 for a dynamic axis)")
            else:
                exprs.append(pool.const(d))
        self._network = net
        self._id = net._net.add_input(name, dt.code, exprs)
        net._names.add(name)
        net._tensors[self._id] = self

    @classmethod
    def _wrap(cls, net, tid):
        t = object.__new__(cls)
        t._network = net
        t._id = tid
        return t

    # --- what the network knows -------------------------------------------
    @property
    def network(self):
        return self._network

    @property
    def name(self):
        return self._network._net.tensor_name(self._id)

    @name.setter
    def name(self, value):
        self._network._net.set_tensor_name(self._id, value)

    @property
    def dtype(self):
        return _dt.to_dtype(self._network._net.tensor_info(self._id)[0])

    @property
    def shape(self):
        """Tuple of SymDim: constants compare equal to ints, dynamic ones print
        as their expression."""
        pool = self._network.exprs
        return tuple(SymDim._of(pool, e) for e in self._network._net.tensor_info(self._id)[1])

    @property
    def ndim(self):
        return len(self._network._net.tensor_info(self._id)[1])

    rank = ndim

    def size(self, dim=None):
        s = self.shape
        return s if dim is None else s[dim]

    def mark_output(self, name=None, dtype=None):
        """Make this tensor an output of the network, named `name`."""
        name = name if name is not None else self.name
        dt = self.dtype if dtype is None else _dt.to_dtype(dtype)
        self._network._net.mark_output(self._id, name, dt.code)
        return self

    def __repr__(self):
        try:
            dims = ", ".join(str(d) for d in self.shape)
            return f"Tensor(name={self.name!r}, dtype={self.dtype}, shape=({dims}))"
        except Exception:  # pragma: no cover - a broken network
            return f"Tensor(id={self._id})"

    # --- operators --------------------------------------------------------
    def __add__(self, other): return add(self, other)
    def __radd__(self, other): return add(other, self)
    def __sub__(self, other): return sub(self, other)
    def __rsub__(self, other): return sub(other, self)
    def __mul__(self, other): return mul(self, other)
    def __rmul__(self, other): return mul(other, self)
    def __truediv__(self, other): return div(self, other)
    def __rtruediv__(self, other): return div(other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __neg__(self): return neg(self)

    def view(self, shape):
        return reshape(self, shape)

    def cast(self, dtype):
        return cast(self, dtype)

    # Identity semantics: Tensors are graph nodes, not values.
    __hash__ = object.__hash__


# --- layer functions ---------------------------------------------------------

def network_of(*tensors):
    """The one network of the kiln Tensors among tensors (else the current one)."""
    nets = {id(t._network): t._network for t in tensors if isinstance(t, Tensor)}
    if len(nets) > 1:
        raise ValueError("tensors from different networks cannot be combined")
    if nets:
        return next(iter(nets.values()))
    return _require_network("layer")


def _out(net, tid):
    return net._tensor(tid)


def constant(value, dtype=None, name=None):
    """A constant tensor (weights) from a numpy array, torch tensor or Python
    number/list.  float64 data needs an explicit dtype (kiln has no float64)."""
    import numpy as np
    net = _require_network("kiln.constant")
    if hasattr(value, "detach") and hasattr(value, "cpu"):     # a torch tensor
        t = value.detach().cpu().contiguous()
        dt = _dt.to_dtype(t.dtype) if dtype is None else _dt.to_dtype(dtype)
        if dt.code == _dt.bfloat16.code:
            torch = _dt.optional_torch()
            raw = t.to(torch.bfloat16).view(torch.int16).numpy()
            return _add_constant(net, name, dt, list(t.shape), raw.tobytes())
        value = t.numpy()
    arr = np.asarray(value)
    if dtype is not None:
        dt = _dt.to_dtype(dtype)
        arr = arr.astype(_dt.to_numpy_dtype(dt), copy=False)
    else:
        if arr.dtype == np.float64:
            raise TypeError("kiln.constant: float64 data has no kiln dtype; pass dtype= "
                            "(e.g. 'float32') or convert the array first")
        dt = _dt.to_dtype(arr.dtype)
    dims = list(arr.shape)          # before ascontiguousarray, which makes a 0-d array 1-d
    arr = np.ascontiguousarray(arr)
    return _add_constant(net, name, dt, dims, arr)


def _add_constant(net, name, dt, dims, data):
    if name is None:
        name = net._fresh_name("const")
    else:
        net._names.add(name)
    return _out(net, net._net.add_constant(name, dt.code, dims, data))


def _operand(x, like):
    """A Tensor operand; Python numbers become constants of like's dtype and rank."""
    if isinstance(x, Tensor):
        return x
    import numpy as np
    if isinstance(x, (int, float, bool)) or (hasattr(x, "dtype") and hasattr(x, "shape")):
        arr = np.asarray(x)
        if arr.ndim == 0:
            arr = arr.reshape((1,) * like.ndim)
        with net_guard(like._network):
            return constant(arr, dtype=like.dtype)
    raise TypeError(f"cannot use a {type(x).__name__} as a tensor operand")


def _binary(op, a, b):
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("a binary layer needs at least one kiln Tensor")
    if not isinstance(a, Tensor):
        a = _operand(a, b)
    if not isinstance(b, Tensor):
        b = _operand(b, a)
    net = network_of(a, b)
    return _out(net, net._net.add_binary(op, a._id, b._id))


def add(a, b): return _binary(_ADD, a, b)
def sub(a, b): return _binary(_SUB, a, b)
def mul(a, b): return _binary(_MUL, a, b)
def div(a, b): return _binary(_DIV, a, b)
def minimum(a, b): return _binary(_MIN, a, b)
def maximum(a, b): return _binary(_MAX, a, b)
def power(a, b):
    """a ** b, floating-point (numpy.power)."""
    return _binary(_kiln.BINARY_POW, a, b)
def mod(a, b):
    """numpy.mod: the result has b's sign (Python's %); integer x mod 0 is 0."""
    return _binary(_kiln.BINARY_MOD, a, b)
def fmod(a, b):
    """C fmod / numpy.fmod: the result has a's sign; integer x fmod 0 is 0."""
    return _binary(_kiln.BINARY_FMOD, a, b)


def _compare(op, a, b):
    if not isinstance(a, Tensor):
        a = _operand(a, b)
    if not isinstance(b, Tensor):
        b = _operand(b, a)
    net = network_of(a, b)
    return _out(net, net._net.add_layer(op, [a._id, b._id], {}))


def equal(a, b):
    """a == b elementwise, bool (NaN equals nothing); numpy broadcasting."""
    return _compare("equal", a, b)
def not_equal(a, b): return _compare("not_equal", a, b)
def less(a, b): return _compare("less", a, b)
def less_equal(a, b): return _compare("less_equal", a, b)
def greater(a, b): return _compare("greater", a, b)
def greater_equal(a, b): return _compare("greater_equal", a, b)


def _bool_operands(what, a, b):
    for t in (a, b):
        if isinstance(t, Tensor) and t.dtype != _dt.bool_:
            raise TypeError(f"{what}: operands must be bool, not {t.dtype}")


def logical_and(a, b):
    """Elementwise and of bool tensors (kiln's bool mul)."""
    _bool_operands("logical_and", a, b)
    return _binary(_MUL, a, b)
def logical_or(a, b):
    """Elementwise or of bool tensors (kiln's bool add)."""
    _bool_operands("logical_or", a, b)
    return _binary(_ADD, a, b)
def logical_xor(a, b):
    """Elementwise xor of bool tensors (kiln's bool sub)."""
    _bool_operands("logical_xor", a, b)
    return _binary(_SUB, a, b)
def logical_not(x):
    """Elementwise not of a bool tensor: x == False."""
    _bool_operands("logical_not", x, None)
    return equal(x, False)


def _unary(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a kiln Tensor, got {type(x).__name__}")
    return _out(x._network, x._network._net.add_unary(op, x._id))


def relu(x): return _unary(_RELU, x)
def gelu(x): return _unary(_GELU, x)
def silu(x): return _unary(_SILU, x)
def exp(x): return _unary(_EXP, x)
def neg(x): return _unary(_NEG, x)
def sqrt(x): return _unary(_SQRT, x)


def tanh(x): return _unary(_kiln.UNARY_TANH, x)
def sigmoid(x): return _unary(_kiln.UNARY_SIGMOID, x)
def erf(x): return _unary(_kiln.UNARY_ERF, x)
def gelu_erf(x):
    """The exact gelu, 0.5·x·(1 + erf(x/√2)) (torch's default, BERT); kiln.gelu is the tanh approximation."""
    return _unary(_kiln.UNARY_GELU_ERF, x)
def rsqrt(x): return _unary(_kiln.UNARY_RSQRT, x)
def absolute(x): return _unary(_kiln.UNARY_ABS, x)
def log(x): return _unary(_kiln.UNARY_LOG, x)
def sin(x): return _unary(_kiln.UNARY_SIN, x)
def cos(x): return _unary(_kiln.UNARY_COS, x)
def floor(x): return _unary(_kiln.UNARY_FLOOR, x)
def ceil(x): return _unary(_kiln.UNARY_CEIL, x)
def reciprocal(x): return _unary(_kiln.UNARY_RECIPROCAL, x)
def sign(x): return _unary(_kiln.UNARY_SIGN, x)


def cast(x, dtype):
    dt = _dt.to_dtype(dtype)
    return _out(x._network, x._network._net.add_cast(x._id, dt.code))


def matmul(a, b, transpose_a=False, transpose_b=False):
    """a @ b, batch axes broadcast as numpy's matmul (both ranks >= 2).
    transpose_a / transpose_b swap that operand's last two axes first, read
    where it lies (no copy, no transpose layer): matmul(x, w, transpose_b=True)
    is x @ w.T for a weight w [N, K] kept as torch's nn.Linear keeps it."""
    net = network_of(a, b)
    return _out(net, net._net.add_matmul(a._id, b._id, int(bool(transpose_a)), int(bool(transpose_b))))


def gather(data, indices, axis=0):
    """take(data, indices, axis): out shape = data[:axis] + indices + data[axis+1:]."""
    net = network_of(data, indices)
    return _out(net, net._net.add_gather(data._id, indices._id, int(axis)))


def reshape(x, shape):
    """New shape: ints, -1 (at most once, inferred) or SymDims of this network."""
    pool = x._network.exprs
    exprs = []
    for d in shape:
        if isinstance(d, SymDim):
            exprs.append(dim_expr(pool, d))
        elif isinstance(d, int) and not isinstance(d, bool):
            exprs.append(pool.const(d))
        else:
            raise TypeError(f"reshape: a {type(d).__name__} is not a dimension")
    return _out(x._network, x._network._net.add_reshape(x._id, exprs))
