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
    shape_dtype_inference (and workspace_size) is called once, here, with
    SymTensors whose dims are SymDims on the network's expression pool; the
    layer is added data-first with the results (kiln_network_add_plugin_traced:
    the C core calls no Python to build it) and the expressions are stored in
    the engine, so running it needs no Python for shapes.
  - The instance's attributes (its __dict__, less kiln's own) are its state,
    stored as typed data (no pickle).  At load the bridge rebuilds the object
    with object.__new__ and setattr: __init__ is not called.
  - Calling an instance on torch tensors or numpy arrays runs it eagerly.

SymDim, SymTensor and the sym_* helpers live in kiln.symbolic (re-exported
here and from kiln).
"""
import functools
import threading
import typing
import warnings

from ._native import _kiln
from .errors import PluginDefinitionError, PluginInMainWarning, PluginRegistrationError, PluginShapeError
from . import dtypes as _dt
from . import tensor as _tensor
from .tensor import triton_interpreting
from .network import Tensor, network_of
from . import aot as _aot
from .symbolic import (SymDim, SymTensor, UnknownShape, sym_min, sym_max, sym_eq, sym_lt, as_int, dim_expr,
                       shape_exprs)

__all__ = ["PluginBase", "plugin", "SymTensor", "SymDim", "sym_min", "sym_max", "sym_eq", "sym_lt",
           "registered_plugins", "unregister_plugin"]

# Instance attributes that are kiln's, not the plugin's state.
_RESERVED = ("workspace", "workspace_bytes", "device", "current_stream")


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
        raise PluginDefinitionError(f"plugin {label}: cannot tell how many outputs it has: annotate "
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
        raise PluginDefinitionError(f"plugin {label}: the return annotation {ann!r} of shape_dtype_inference does not say "
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
            raise PluginDefinitionError(f"@plugin('{name}') must decorate a subclass of kiln.PluginBase, got {cls!r}")
        for method in ("shape_dtype_inference", "forward"):
            if getattr(cls, method, None) is getattr(PluginBase, method):
                raise PluginDefinitionError(f"plugin {label}: {cls.__qualname__} must define {method}()")
        existing = _registry.get(key)
        if existing is not None:
            raise PluginRegistrationError(f"plugin {label} is already registered by {existing.__module__}."
                             f"{existing.__qualname__}; cannot register {cls.__module__}.{cls.__qualname__} "
                             "under the same namespace, name and version")
        n = int(num_outputs) if num_outputs is not None else _count_outputs(cls, label)
        if n < 1:
            raise ValueError(f"plugin {label}: num_outputs must be at least 1")
        has_ws = getattr(cls, "workspace_size", None) is not PluginBase.workspace_size
        if triton_interpreting() and not getattr(cls.forward, "_kiln_serialized", False):
            cls.forward = _serialized(cls.forward)
        _kiln.register_plugin(cls, key[0], key[1], key[2], cls.__module__ or "", n)
        cls._kiln_key = key
        cls._kiln_label = label
        cls._kiln_num_outputs = n
        cls._kiln_has_workspace = has_ws
        cls._plugin_creator = PluginCreator(key[0], key[1], key[2], n, has_ws)
        _registry[key] = cls
        return cls

    return register


class PluginCreator(typing.NamedTuple):
    """What a registered plugin class was registered as: one per class, shared
    by its instances (`instance._plugin_creator`, TensorRT-LLM's name for the
    plugin creator its plugin objects share)."""
    namespace: str
    name: str
    version: str
    num_outputs: int
    has_workspace: bool


# Triton's CPU interpreter (TRITON_INTERPRET=1) keeps launch state in
# module globals: two threads launching at once corrupt each other's grid
# ("x >= grid_dim[0]").  So that "one Session per thread" holds for every
# plugin, forward() of plugins registered while the interpreter is on runs
# under one process-wide lock (reentrant: a forward may call another plugin
# eagerly).  Only forward is serialized; the rest of a run stays parallel.
# Compiled Triton (a GPU) is thread-safe and takes no lock.
_INTERPRETER_LOCK = threading.RLock()


def _serialized(forward):
    @functools.wraps(forward)
    def forward_under_interpreter_lock(self, inputs, outputs):
        with _INTERPRETER_LOCK:
            try:
                return forward(self, inputs, outputs)
            finally:
                _tensor.forget_interpreter_copies()

    forward_under_interpreter_lock._kiln_serialized = True
    return forward_under_interpreter_lock


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

    During forward, self.workspace is the workspace address (0 when none),
    self.workspace_bytes its size, self.device where the tensors live ("cpu",
    "cuda:0") and self.current_stream the CUDA stream (0 on the CPU);
    self.workspace_tensor(dtype, shape) views the workspace as a tensor."""

    workspace = 0
    workspace_bytes = 0
    device = "cpu"
    current_stream = 0

    def workspace_tensor(self, dtype, shape, offset=0):
        """The workspace (or the part at byte `offset`) as a TensorWrapper of
        dtype and shape, for forward: no copy, valid until forward returns.
        Refused, naming the plugin, when it does not fit the workspace_size()
        the plugin asked for."""
        from .tensor import TensorWrapper
        label = type(self)._kiln_label
        d = _dt.to_dtype(dtype)
        dims = [as_int(s) for s in shape]
        if any(s < 0 for s in dims) or offset < 0:
            raise ValueError(f"plugin {label}: workspace_tensor: shape {tuple(dims)} or offset {offset} is negative")
        need = d.itemsize
        for s in dims:
            need *= s
        if offset + need > self.workspace_bytes:
            raise ValueError(f"plugin {label}: workspace_tensor({d.name}, {tuple(dims)}) at byte {offset} needs "
                             f"{offset + need} bytes, but the workspace has {self.workspace_bytes} (what "
                             "workspace_size() asked for, for these inputs)")
        return TensorWrapper(self.workspace + offset, d.code, dims, device=self.device)

    def __new__(cls, *args, **kwargs):
        if "_kiln_key" not in cls.__dict__:
            raise PluginDefinitionError(f"plugin class {cls.__module__}.{cls.__qualname__} is not registered: decorate it "
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
        if not inputs:
            raise TypeError(f"plugin {self._kiln_label}: call it with its input tensors")
        graph = [isinstance(t, Tensor) for t in inputs]
        if all(graph):
            return _add_layer(self, inputs)
        if any(graph):
            raise TypeError(f"plugin {self._kiln_label}: inputs mix kiln Tensors and arrays")
        return _run_eager(self, inputs)


# --- tracing shape_dtype_inference ------------------------------------------------

def _trace(obj, inputs, n_out, where=""):
    """Call shape_dtype_inference; return (dtype codes, list of SymTensor).
    An exception from it is raised again as a PluginShapeError naming the
    plugin, `where` (the layer) and the inputs it was called with, the
    original chained as __cause__."""
    label = type(obj)._kiln_label
    try:
        result = obj.shape_dtype_inference(inputs)
    except Exception as e:
        shapes = ", ".join(_describe_input(t) for t in inputs)
        raise PluginShapeError(f"plugin {label}{where}: shape_dtype_inference raised {type(e).__name__}: {e} "
                               f"(called with inputs {shapes})") from e
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


def _describe_input(t):
    try:
        dtype = _dt.dtype_name(t.dtype) if t.dtype is not None else "?"
    except (TypeError, ValueError):
        dtype = str(t.dtype)
    shape = t.shape
    dims = "?" if isinstance(shape, UnknownShape) else "[" + ", ".join(str(d) for d in shape) + "]"
    return f"{dtype} {dims}"


def _workspace_expr(obj, pool, inputs):
    label = type(obj)._kiln_label
    ws = obj.workspace_size(inputs)
    if ws is None:
        return None
    try:
        return dim_expr(pool, ws)
    except (TypeError, ValueError) as e:
        raise TypeError(f"plugin {label}: workspace_size: {e}") from None


_warned_main = set()


def _warn_if_main(cls):
    """A plugin class defined in __main__ (a script, a notebook) is recorded as
    module '__main__': an engine using it loads only in a program that defines
    the same class again before loading.  Said once per class, at build."""
    if cls.__module__ == "__main__" and cls not in _warned_main:
        _warned_main.add(cls)
        warnings.warn(f"plugin {cls._kiln_label} is defined in __main__: engines using it can be loaded only by a "
                      "program that defines (and registers) the same class again; put plugins in a module "
                      "to import instead", PluginInMainWarning, stacklevel=4)


def _add_layer(obj, tensors):
    """Add obj as a plugin layer on kiln Tensors; returns its output Tensor(s)."""
    cls = type(obj)
    net = network_of(*tensors)
    pool = net.exprs
    inputs = []
    for t in tensors:
        dtype, shape = net._net.tensor_info(t._id)
        inputs.append(SymTensor(_dt.to_dtype(dtype), [SymDim._of(pool, e) for e in shape]))
    _warn_if_main(cls)
    where = f" (layer on inputs {', '.join(repr(t.name) for t in tensors)})"
    codes, outs = _trace(obj, inputs, cls._kiln_num_outputs, where)
    ws = _workspace_expr(obj, pool, inputs) if cls._kiln_has_workspace else None
    if callable(getattr(cls, "aot", None)):
        if _aot.prefer_aot(net):   # compiled kernels instead of forward (python/kiln/aot.py)
            result = _aot.add_layer(obj, net, tensors, inputs, codes, outs, ws)
            _alias_outputs(obj, net, tensors, [result] if isinstance(result, Tensor) else list(result))
            return result
    shapes = [shape_exprs(pool, o, cls._kiln_label, i) for i, o in enumerate(outs)]
    trace = (tuple(codes), shapes, ws)
    ns, name, version = cls._kiln_key
    ids = net._net.add_plugin(ns, name, version, cls.__module__ or "", obj._kiln_fields(),
                              [t._id for t in tensors], cls._kiln_num_outputs, trace)
    result = [net._tensor(i) for i in ids]
    _alias_outputs(obj, net, tensors, result)
    return result[0] if len(result) == 1 else tuple(result)


def _alias_outputs(obj, net, tensors, outputs):
    """A plugin's aliased_outputs(): {output index: input index} of outputs
    written in place into their input's memory (TensorRT's aliased outputs;
    kiln_network_alias_output).  The input must be a network input."""
    aliases = getattr(obj, "aliased_outputs", None)
    for out_index, in_index in (aliases() if callable(aliases) else {}).items():
        net._net.alias_output(outputs[out_index]._id, tensors[in_index]._id)


# --- eager calls ---------------------------------------------------------------------

def _run_eager(obj, arrays):
    """Run forward on torch tensors / numpy arrays, allocating the outputs."""
    from .tensor import TensorWrapper
    cls = type(obj)
    label = cls._kiln_label
    # forward reads its inputs as dense arrays (as a Session hands them) and
    # must not write them: contiguous copies of strided inputs, parameters
    # detached (no copy), every input wrapped read-only.
    arrays = [_eager_input(a) for a in arrays]
    ins = [TensorWrapper.from_tensor(a, readonly=True) for a in arrays]
    sym = [SymTensor(_dt.to_dtype(w.kiln_dtype), [SymDim(d) for d in w.shape]) for w in ins]
    codes, outs = _trace(obj, sym, cls._kiln_num_outputs, " (called eagerly)")
    first = arrays[0]
    is_torch = type(first).__module__.startswith("torch")
    results = []
    for i, (code, o) in enumerate(zip(codes, outs)):
        try:
            shape = [as_int(d) for d in o.shape]
        except TypeError as e:
            raise TypeError(f"plugin {label}: output {i}: {e}") from None
        results.append(_alloc(first, is_torch, code, shape))
    out_w = [TensorWrapper.from_tensor(r) for r in results]
    workspace_buf = None
    if cls._kiln_has_workspace:
        n = obj.workspace_size(sym)
        n = as_int(n) if n is not None else 0
        if n > 0:
            workspace_buf = _alloc(first, is_torch, _dt.uint8.code, [n])
            obj.workspace = TensorWrapper.from_tensor(workspace_buf).data_ptr()
        else:
            obj.workspace = 0
        obj.workspace_bytes = max(n, 0)
    else:
        obj.workspace = 0
        obj.workspace_bytes = 0
    obj.device = ins[0].device if ins else "cpu"
    obj.current_stream = _current_stream(first, is_torch)
    obj.forward(ins, out_w)
    del workspace_buf
    return results[0] if len(results) == 1 else tuple(results)


def _eager_input(a):
    if type(a).__module__.startswith("torch"):
        if a.requires_grad:
            a = a.detach()
        return a if a.is_contiguous() else a.contiguous()
    if type(a).__module__ == "numpy" and not a.flags.c_contiguous:
        import numpy as np
        return np.ascontiguousarray(a)
    return a


def _alloc(like, is_torch, code, shape):
    if is_torch:
        torch = _dt.optional_torch()
        return torch.empty(shape, dtype=_dt.to_torch_dtype(code), device=like.device)
    if code == _dt.bfloat16.code:
        torch = _dt.optional_torch()
        if torch is None:
            raise TypeError("a bfloat16 output needs torch (numpy has no bfloat16)")
        return torch.empty(shape, dtype=torch.bfloat16)
    import numpy as np
    return np.empty(shape, dtype=_dt.to_numpy_dtype(code))


def _current_stream(like, is_torch):
    if is_torch and getattr(like, "is_cuda", False):
        torch = _dt.optional_torch()
        return torch.cuda.current_stream(like.device).cuda_stream
    return 0
