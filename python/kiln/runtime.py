"""Running engines: Session and TensorInfo (TensorRT-LLM's runtime.session API).

    session = Session.from_file("lookup.engine")          # mapped, not read
    outs = session({"x": x, "y": y})                      # allocates outputs
    session.run(inputs={"x": x, "y": y}, outputs={"output": z})   # into z

Inputs and outputs may be torch tensors, numpy arrays or anything speaking
DLPack or the buffer protocol; they must be contiguous and on the session's
device.  Errors raise kiln.Error naming the tensor (unknown or missing name,
wrong dtype, shape outside the profile, wrong output shape).  The C runtime
runs with the GIL released; Python plugin layers take it back.

A Session wraps one engine and one execution context: use one Session per
thread (Session.from_engine shares a loaded engine).
"""
import os

from ._native import _kiln
from . import dtypes as _dt

__all__ = ["Session", "TensorInfo", "Engine", "load_engine", "default_device"]

Engine = _kiln.Engine

_CPU, _CUDA = 0, 1


class TensorInfo:
    """Name, dtype and shape of an engine input or output."""

    __slots__ = ("name", "dtype", "shape")

    def __init__(self, name, dtype, shape):
        self.name = name
        self.dtype = dtype
        self.shape = tuple(shape)

    def __repr__(self):
        return f"TensorInfo(name={self.name!r}, dtype={self.dtype}, shape={self.shape})"

    def __eq__(self, other):
        if not isinstance(other, TensorInfo):
            return NotImplemented
        return (self.name == other.name and _dt.to_dtype(self.dtype) == _dt.to_dtype(other.dtype)
                and self.shape == other.shape)

    __hash__ = None


def default_device():
    """The device a Session uses when none is given: $KILN_DEFAULT_DEVICE if
    set ('cpu', 'cuda', 'cuda:N'), else the first GPU when kiln's CUDA backend
    sees one, else the CPU."""
    env = os.environ.get("KILN_DEFAULT_DEVICE")
    if env:
        return env
    return "cuda:0" if _kiln.cuda_available() else "cpu"


def _parse_device(device):
    if device is None:
        device = default_device()
    if isinstance(device, tuple):
        return int(device[0]), int(device[1])
    text = str(device)   # accepts torch.device too
    if text == "cpu":
        return _CPU, 0
    if text == "cuda":
        return _CUDA, 0
    if text.startswith("cuda:"):
        return _CUDA, int(text[5:])
    raise ValueError(f"unknown device {device!r} (expected 'cpu', 'cuda' or 'cuda:N')")


def load_engine(source):
    """An Engine from a path (mapped) or from bytes-like data (copied)."""
    if isinstance(source, Engine):
        return source
    if isinstance(source, (str, os.PathLike)):
        return Engine.from_file(os.fspath(source))
    try:
        memoryview(source).release()
    except TypeError:
        raise TypeError(f"a Session needs an engine: a kiln Engine, a path (str or os.PathLike) or bytes-like "
                        f"engine data (bytes, a Blob from build_engine), not a {type(source).__name__}") from None
    return Engine.from_memory(source)


def _check_tensor_dict(what, d):
    if not isinstance(d, dict):
        raise TypeError(f"{what} must be a dict {{name: tensor}} (torch tensors, numpy arrays or DLPack "
                        f"producers by input name), not a {type(d).__name__}")


class Session:
    """An engine plus one execution context on a device ('cpu', 'cuda', 'cuda:N';
    default: the GPU when there is one, see default_device()).  The context's
    activation memory follows the shapes it runs (memory_bytes);
    max_activation_bytes caps it: shapes that would need more raise kiln.Error
    saying how much.

    comm=(rank, world_size, id) joins the engine's group (an engine built
    with Network.set_parallel and collective layers): id is the 128-byte
    communicator id rank 0 made (kiln.distributed.comm_id_new, or
    comm_from_torch / comm_from_env, which return the whole tuple).  rank and
    world_size must be the engine's; joining waits for every rank (at most
    $KILN_NCCL_TIMEOUT_S seconds)."""

    def __init__(self, engine, device=None, max_activation_bytes=None, comm=None):
        self._engine = load_engine(engine)
        dev_type, dev_index = _parse_device(device)
        self._device = (dev_type, dev_index)
        if dev_type == _CUDA:
            from . import _streams
            _streams.install(_kiln)
        cap = 0 if max_activation_bytes is None else int(max_activation_bytes)
        if cap < 0:
            raise ValueError(f"max_activation_bytes must be >= 0 (or None for no cap), got {cap}")
        self._context = _kiln.Context(self._engine, dev_type, dev_index, cap)
        if comm is not None:
            self.set_communicator(*_comm_tuple(comm))
        self._io = self._engine.io()
        self._inputs = [n for n, is_out, _, _ in self._io if not is_out]
        self._outputs = [n for n, is_out, _, _ in self._io if is_out]
        self._dtypes = {n: dt for n, _, dt, _ in self._io}

    @classmethod
    def from_serialized_engine(cls, data, device=None, **options):
        """Load from engine bytes (anything with the buffer protocol)."""
        return cls(Engine.from_memory(data), device=device, **options)

    @classmethod
    def from_file(cls, path, device=None, **options):
        """Load from a file, mapped read-only (weights are used in place)."""
        return cls(Engine.from_file(os.fspath(path)), device=device, **options)

    @classmethod
    def from_engine(cls, engine, device=None, **options):
        return cls(engine, device=device, **options)

    @property
    def engine(self):
        return self._engine

    @property
    def device(self):
        t, i = self._device
        return "cpu" if t == _CPU else f"cuda:{i}"

    @property
    def input_names(self):
        return list(self._inputs)

    @property
    def output_names(self):
        return list(self._outputs)

    def io_info(self):
        """TensorInfo of every input and output; dynamic dims are their names."""
        return [TensorInfo(n, _dt.to_dtype(dt), shape) for n, _, dt, shape in self._io]

    def infer_shapes(self, inputs, context=None):
        """Output TensorInfos for the given input TensorInfos (no Python runs:
        shapes come from the expressions stored in the engine)."""
        for info in inputs:
            expected = self._dtypes.get(info.name)
            if expected is not None and info.dtype is not None and _dt.to_dtype(info.dtype).code != expected:
                raise _kiln.Error(f"input '{info.name}': dtype {_dt.to_dtype(info.dtype).name} given, "
                                  f"the engine expects {_dt.to_dtype(expected).name}")
            self._context.set_input_shape(info.name, [_dim_value(info.name, axis, d)
                                                      for axis, d in enumerate(info.shape)])
        return [TensorInfo(n, _dt.to_dtype(self._dtypes[n]), self._context.tensor_shape(n))
                for n in self._outputs]

    def run(self, inputs, outputs=None, stream=None, context=None):
        """Run the engine.  With outputs given, writes into them and returns
        True; without, allocates them (torch tensors when the inputs are, else
        numpy arrays) and returns {name: tensor}.  Raises kiln.Error."""
        return self._context.run(inputs, outputs, stream,
                                 None if outputs is not None else _allocator_for(inputs, self))

    def capture(self, inputs, outputs=None, stream=None):
        """Bind inputs and outputs and record the whole run into a CUDA graph
        (running it once); replay() then relaunches it with no per-layer work
        and no Python, plugins included.  The graph reads and writes the
        memory of the tensors given here: keep them alive and write new
        input values into them.  Needs a CUDA session and a stream other
        than the default one.  Returns the outputs like run()."""
        return self._context.run(inputs, outputs, stream,
                                 None if outputs is not None else _allocator_for(inputs, self), 1)

    def replay(self, stream=None):
        """Launch the graph recorded by capture().  Raises kiln.Error if none was
        captured or if shapes or buffers were rebound since (capture again)."""
        self._context.replay(stream)

    @property
    def graph_ready(self):
        """True when a captured graph matches the current bindings."""
        return self._context.graph_ready

    def run_graph(self, inputs, outputs, stream):
        """run() through a CUDA graph: replays the captured graph when the
        shapes and buffers are the ones it was captured with, and captures a
        new one (running once, eagerly) when they changed."""
        return self._context.run(inputs, outputs, stream, None, 2)

    def __call__(self, inputs, stream=None):
        """Run and return {name: output} (allocated)."""
        numpy_inputs = isinstance(inputs, dict) and not any(type(v).__module__.startswith("torch")
                                                             for v in inputs.values())
        inputs, _ = _from_ml_dtypes(inputs)
        outs = self._context.run(inputs, None, stream, _allocator_for(inputs, self))
        return _to_ml_dtypes(outs) if numpy_inputs and self._device[0] != _CUDA else outs

    @property
    def memory_bytes(self):
        return self._context.memory_bytes

    @property
    def parallel(self):
        """(rank, world_size) the engine was built for."""
        return self._engine.parallel

    def set_communicator(self, rank, world_size, comm_id=None):
        """Join the engine's group (see the class docstring); once per session."""
        if comm_id is not None:
            comm_id = bytes(comm_id)
        self._context.set_communicator(int(rank), int(world_size), comm_id)

    def synchronize(self, stream=None):
        """Wait for the work queued on stream (None: the default stream).  A
        session in a group also watches its communicator: a failed peer, or a
        wait past $KILN_NCCL_TIMEOUT_S, aborts it and raises kiln.Error naming
        this rank instead of hanging."""
        self._context.synchronize(stream)


def _comm_tuple(comm):
    try:
        rank, world_size, comm_id = comm
    except (TypeError, ValueError):
        raise TypeError(f"comm must be (rank, world_size, id), not {comm!r}") from None
    return int(rank), int(world_size), comm_id


def _dim_value(name, axis, d):
    """An input size: an int (or numpy integer), never a float that would be truncated."""
    if isinstance(d, bool) or not hasattr(d, "__index__"):
        raise TypeError(f"input '{name}': axis {axis} has size {d!r} ({type(d).__name__}); sizes must be ints")
    return d.__index__()


def _is_ml_bfloat16(v):
    dt = getattr(v, "dtype", None)
    return type(v).__module__ == "numpy" and dt is not None and dt.name == "bfloat16"


def _from_ml_dtypes(inputs):
    """numpy arrays of ml_dtypes.bfloat16 (what ONNX tooling uses) as torch
    bfloat16 views of the same memory: numpy's buffer and DLPack exports do
    not carry that dtype.  Returns (inputs, whether any was converted)."""
    if not isinstance(inputs, dict) or not any(_is_ml_bfloat16(v) for v in inputs.values()):
        return inputs, False
    torch = _dt.optional_torch()
    if torch is None:
        raise TypeError("ml_dtypes bfloat16 arrays need torch to reach kiln (numpy cannot export bfloat16)")
    import numpy as np
    out = {}
    for k, v in inputs.items():
        if _is_ml_bfloat16(v):
            v = torch.from_numpy(np.ascontiguousarray(v).view(np.int16)).view(torch.bfloat16)
        out[k] = v
    return out, True


def _to_ml_dtypes(outputs):
    """For a call with numpy inputs: outputs as numpy, bfloat16 ones as
    ml_dtypes arrays when ml_dtypes is installed (else they stay torch)."""
    res = {}
    for k, v in outputs.items():
        if type(v).__module__.startswith("torch") and v.device.type == "cpu":
            torch = _dt.optional_torch()
            if v.dtype != torch.bfloat16:
                v = v.numpy()
            else:
                try:
                    import ml_dtypes
                    v = v.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
                except ImportError:
                    pass
        res[k] = v
    return res


def _allocator_for(inputs, session):
    _check_tensor_dict("inputs", inputs)
    torch_like = None
    for v in inputs.values():
        if type(v).__module__.startswith("torch"):
            torch_like = v
            break
    if torch_like is not None or session._device[0] == _CUDA:
        torch = _dt.optional_torch()
        if torch is None:
            raise ImportError("allocating CUDA outputs needs torch")
        device = torch_like.device if torch_like is not None else torch.device(session.device)

        def alloc(name, code, shape):
            return torch.empty(shape, dtype=_dt.to_torch_dtype(code), device=device)
        return alloc

    def alloc_np(name, code, shape):
        if code == _dt.bfloat16.code:
            torch = _dt.optional_torch()
            if torch is None:
                raise TypeError(f"output '{name}' is bfloat16, which needs torch (numpy has no bfloat16)")
            return torch.empty(shape, dtype=torch.bfloat16)
        import numpy as np
        return np.empty(shape, dtype=_dt.to_numpy_dtype(code))
    return alloc_np
