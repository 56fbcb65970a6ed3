"""The standard ONNX backend interface (onnx.backend.base.Backend), so that
ONNX's own test runner drives kiln:

    import onnx.backend.test
    import kiln.onnx.backend
    onnx.backend.test.BackendTest(kiln.onnx.backend.KilnBackend, __name__)

prepare() builds the engine when it first sees inputs: dynamic axes get the
inputs' sizes as their range (a model with named dims can instead be
prepared with dim_range=).  Runs on the CPU ("CPU") or a GPU ("CUDA")."""
import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from .. import network as _network
from ..runtime import Session
from . import parse


def _device(device):
    d = str(device).upper()
    return "cuda" if d.startswith("CUDA") else "cpu"


class KilnRep(BackendRep):
    def __init__(self, model, device, dim_range=None):
        self.model = model
        self.original = model
        self.device = _device(device)
        self.dim_range = dim_range
        self.inits = {i.name for i in model.graph.initializer}
        self.inputs = [i for i in model.graph.input if i.name not in self.inits]
        self.session = None
        self.shapes = None
        # Inputs that set shapes or axes (ONNX's tests feed them as data):
        # built into the engine with the values of the run, as TensorRT's
        # shape tensors are; a run with other values builds again.
        self.baked = []
        self.baked_values = []

    def _build(self, values):
        from .errors import NeedsKnown
        while True:
            model = self._model_with_named_dims()
            for name in self.baked:
                inp = next(i for i in model.graph.input if i.name == name)
                model.graph.input.remove(inp)
                model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(values[name]), name))
            arrays = [values[i.name] for i in self.inputs if i.name not in self.baked]
            kept = [i for i in self.inputs if i.name not in self.baked]
            try:
                net = parse(model, dim_range=self._ranges(arrays, kept))
            except NeedsKnown as e:
                fresh = [n for n in e.input_names if n in values and n not in self.baked]
                if not fresh:
                    raise
                self.baked += fresh
                continue
            engine = _network.Builder().build_engine(net)
            self.session = Session.from_serialized_engine(engine, device=self.device)
            self.model = model
            return

    def _ranges(self, arrays, inputs):
        ranges = dict(self.dim_range or {})
        for inp, arr in zip(inputs, arrays):
            for d, n in zip(inp.type.tensor_type.shape.dim, np.shape(arr)):
                if not d.HasField("dim_value") and d.dim_param and d.dim_param not in ranges:
                    ranges[d.dim_param] = [(n, n, n)]
        return ranges

    def _model_with_named_dims(self):
        """Dynamic axes without a name get one (the engine needs a name per dimension)."""
        m = onnx.ModelProto()
        m.CopyFrom(self.original)
        for inp in m.graph.input:
            for axis, d in enumerate(inp.type.tensor_type.shape.dim):
                if not d.HasField("dim_value") and not d.dim_param:
                    d.dim_param = f"{inp.name}_axis{axis}"
        return m

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            arrays = [inputs[i.name] for i in self.inputs]
        else:
            arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        arrays = [np.asarray(a) for a in arrays]
        shapes = [a.shape for a in arrays]
        values = {i.name: a for i, a in zip(self.inputs, arrays)}
        baked_values = [values[n].tobytes() for n in self.baked]
        if self.session is None or shapes != self.shapes or baked_values != self.baked_values:
            self._build(values)
            self.shapes = shapes
            self.baked_values = [values[n].tobytes() for n in self.baked]
        feed = {i.name: a for i, a in zip(self.inputs, arrays) if i.name not in self.baked}
        got = self.session(feed)
        outs = []
        for o in self.model.graph.output:
            v = got[o.name]
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            outs.append(np.asarray(v))
        return outs


class KilnBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        super().prepare(model, device, **kwargs)
        return KilnRep(model, device, kwargs.get("dim_range"))

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        from onnx import helper
        ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype),
                                             np.shape(a)) for n, a in zip(node.input, inputs)]
        outs = [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in node.output]
        graph = helper.make_graph([node], "node", ins, outs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(node.domain or "", kwargs.get("opset", 21))])
        return cls.run_model(model, inputs, device)

    @classmethod
    def supports_device(cls, device):
        d = str(device).upper()
        if d.startswith("CUDA"):
            from .. import cuda_available
            return cuda_available()
        return d.startswith("CPU")


prepare = KilnBackend.prepare
run_model = KilnBackend.run_model
run_node = KilnBackend.run_node
supports_device = KilnBackend.supports_device
