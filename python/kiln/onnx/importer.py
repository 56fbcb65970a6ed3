"""The ONNX graph walker: ONNX values become kiln tensors or known values.

Every ONNX value is one of
  - a kiln Tensor (data computed when the engine runs), or
  - a *known* value: a numpy array the importer can compute now — an
    initializer, a Constant, or a shape computation (Shape → Gather → Concat →
    Reshape), whose entries may be ints or SymDims of the network.
Known values stay in Python as long as every consumer can take them (so a
model's shape subgraphs become expressions in the network's pool and one
engine serves every shape of its profile, as TensorRT does with shape
tensors); a consumer that needs data at run time gets them as a constant
(or, for symbolic integers, sliced out of a constant range).  The ops are in
ops.py, one function per ONNX op type."""
import numpy as np

from .. import network as _network
from ..symbolic import SymDim
from . import dtypes as _odt
from .errors import NeedsKnown, UnsupportedNode


def _norm(d):
    """A dimension as an int when its value is known, else the SymDim."""
    if isinstance(d, SymDim):
        v = d.value
        return d if v is None else int(v)
    return int(d)


class Known:
    """A value the importer holds: a numpy array, of object dtype when some
    entry is a SymDim, with its ONNX element type."""

    __slots__ = ("array", "onnx_type")

    def __init__(self, array, onnx_type):
        if not isinstance(array, np.ndarray):      # numpy hands back a bare element for 0-d object results
            cell = np.empty((), dtype=object if isinstance(array, SymDim) else None)
            cell[()] = array
            array = cell if isinstance(array, SymDim) else np.asarray(array)
        self.array = array
        self.onnx_type = onnx_type

    @property
    def symbolic(self):
        return self.array.dtype == object and any(isinstance(v, SymDim) for v in self.array.flat)

    def ints(self):
        """The entries as a list of ints / SymDims."""
        return [_norm(v) for v in self.array.reshape(-1).tolist()]


class Importer:
    def __init__(self, model, network, dim_range, opset):
        self.model = model
        self.network = network
        self.dim_range = dim_range or {}
        self.opset = opset
        self.values = {}
        self._max_cache = {}
        # Tensor id -> the tensor a Transpose swapped the last two axes of:
        # MatMul and Gemm read that source with a transpose flag instead (the
        # Transpose layer is pruned at build when nothing else reads it).
        self.swapped_last_two = {}

    # ---- values ---------------------------------------------------------------

    def get(self, name):
        if name == "":
            return None
        if name not in self.values:
            raise KeyError(name)
        return self.values[name]

    def tensor(self, value, node=None):
        """A kiln Tensor for any value (known values become constants)."""
        if isinstance(value, _network.Tensor):
            return value
        if value is None:
            raise UnsupportedNode(node, "a required input is missing")
        if value.symbolic:
            return self.materialize_ints(value, node)
        arr = value.array
        if arr.dtype == object:
            arr = arr.astype(np.int64)
        dtype = _odt.kiln_dtype(value.onnx_type, node)
        with _network.net_guard(self.network):
            return _network.constant(np.ascontiguousarray(arr).astype(_odt.numpy_dtype(value.onnx_type), copy=False)
                                     .reshape(arr.shape), dtype=dtype)

    def onnx_type(self, value):
        if isinstance(value, Known):
            return value.onnx_type
        return _odt.onnx_type_of(value.dtype)

    def shape(self, value):
        """Dims (ints or SymDims) of a value."""
        if isinstance(value, Known):
            return list(value.array.shape)
        return [_norm(d) for d in value.shape]

    # ---- symbolic integers as data --------------------------------------------

    def upper_bound(self, d):
        """The largest value a SymDim takes over the profiles (its expression at
        every dim's maximum: the shape expressions kiln builds grow with the
        dims)."""
        if isinstance(d, int):
            return d
        key = str(d)
        if key not in self._max_cache:
            self._max_cache[key] = self.network._max_value(d)
        return self._max_cache[key]

    def materialize_ints(self, value, node):
        """A 1-D (or 0-d) int64 tensor holding symbolic values: each is sliced
        out of a constant 0..max range, so the engine computes it from the
        shapes at run time."""
        arr = value.array
        if arr.ndim > 1:
            raise UnsupportedNode(node, "a symbolic integer tensor of rank > 1 is needed at run time")
        parts = []
        with _network.net_guard(self.network):
            for v in arr.reshape(-1).tolist():
                v = _norm(v)
                if isinstance(v, int):
                    parts.append(_network.constant(np.array([v], np.int64)))
                    continue
                hi = self.upper_bound(v)
                table = _network.constant(np.arange(hi + 1, dtype=np.int64))
                from ..shape_ops import slice as kslice
                parts.append(_network.reshape(kslice(table, [v], [v + 1]), [1]))
            from ..shape_ops import concat
            out = parts[0] if len(parts) == 1 else concat(parts, 0)
            if arr.ndim == 0:
                out = _network.reshape(out, [])
            if value.onnx_type != _odt.INT64:
                out = _network.cast(out, _odt.kiln_dtype(value.onnx_type, node))
        return out

    # ---- the walk -------------------------------------------------------------

    def run(self):
        from .ops import OPS
        g = self.model.graph
        for init in g.initializer:
            self.values[init.name] = Known(_odt.to_array(init), init.data_type)
        for inp in g.input:
            if inp.name in self.values:
                continue      # an initializer listed as an input (older exporters): the initializer wins
            self.values[inp.name] = self._add_input(inp)
        for node in g.node:
            fn = OPS.get((node.domain or "", node.op_type)) or OPS.get(("ai.onnx", node.op_type) if not node.domain
                                                                     else (node.domain, node.op_type))
            if fn is None and node.domain not in ("", "ai.onnx"):
                from .custom import plugin_op
                fn = plugin_op
            if fn is None:
                raise UnsupportedNode(node, "kiln has no importer for this op", self.opset_of(node))
            ins = [self.get(n) for n in node.input]
            try:
                outs = fn(self, node, ins)
            except NeedsKnown as e:
                e.input_names = [n for n, v in zip(node.input, ins) if v is e.value]
                raise
            except UnsupportedNode:
                raise
            except Exception as e:   # kiln.Error, ValueError...: name the node
                raise UnsupportedNode(node, f"{type(e).__name__}: {e}", self.opset_of(node)) from e
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for name, v in zip(node.output, outs):
                if name:
                    self.values[name] = v
        for out in g.output:
            v = self.values[out.name]
            t = self.tensor(v)
            want = out.type.tensor_type.elem_type
            if want and _odt.onnx_type_of(t.dtype) != want:
                with _network.net_guard(self.network):
                    t = _network.cast(t, _odt.kiln_dtype(want, None))
            t.mark_output(out.name)
        return self.network

    def opset_of(self, node):
        return self.opset.get(node.domain or "", None)

    def _add_input(self, inp):
        tt = inp.type.tensor_type
        dtype = _odt.kiln_dtype(tt.elem_type, None, what=f"input '{inp.name}'")
        dims, names = [], []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
                names.append(f"{inp.name}.{axis}")
            elif d.dim_param and d.dim_param in self.dim_range:
                dims.append(-1)
                names.append(d.dim_param)
            else:
                what = f"'{d.dim_param}'" if d.dim_param else "no name"
                raise ValueError(f"kiln.onnx: input '{inp.name}' axis {axis} is dynamic ({what}) and dim_range has "
                                 f"no range for it: pass dim_range={{'{d.dim_param or 'name'}': [(min, opt, max)]}}"
                                 + ("" if d.dim_param else " after naming the axis in the model"))
        ranges = {}
        for n, d in zip(names, dims):
            ranges[n] = self.dim_range[n] if d == -1 else [(d, d, d)]
        with _network.net_guard(self.network):
            return _network.Tensor(name=inp.name, shape=dims, dtype=dtype, dim_range=ranges if dims else None)
