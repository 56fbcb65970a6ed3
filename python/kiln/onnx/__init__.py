"""kiln.onnx: ONNX models into kiln networks.

    net = kiln.onnx.parse("model.onnx", dim_range={"batch": [(1, 2, 8)], "seq": [(1, 64, 512)]})
    engine = kiln.Builder().build_engine(net)

`dim_range` is keyed by the model's symbolic dimension names (`dim_param`),
one (min, opt, max) per optimization profile.  Initializers become
constants; shape computations become expressions, so one engine serves
every shape in the profile; custom-domain nodes become kiln plugins
(custom.py).  `onnx` is needed to parse, never to run an engine.
`kiln.onnx.backend` is the standard ONNX backend interface."""
import os

from .. import network as _network
from .errors import UnsupportedNode
from .importer import Importer

__all__ = ["parse", "UnsupportedNode"]


def _load(model):
    import onnx
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    raise TypeError(f"kiln.onnx.parse: a path, bytes or onnx.ModelProto, not {type(model).__name__}")


def parse(model, network=None, *, dim_range=None):
    """The kiln Network of an ONNX model (path, bytes or onnx.ModelProto).

    network: add to this Network (default: a new one).  dim_range: {dim_param:
    [(min, opt, max), ...]} for every dynamic input axis.  Raises
    UnsupportedNode naming the node, op type and opset for what kiln cannot
    import, and ValueError for a dynamic axis without a range."""
    m = _load(model)
    opset = {(o.domain if o.domain != "ai.onnx" else ""): o.version for o in m.opset_import}
    net = network if network is not None else _network.Network()
    return Importer(m, net, dim_range, opset).run()
