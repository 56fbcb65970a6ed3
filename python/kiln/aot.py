"""Ahead-of-time (AOT) plugins: Triton kernels compiled at build time and
launched by kiln's C runtime, with no Python in the process that runs them.

A plugin opts in by defining `aot(inputs, outputs)` next to `forward`: it
gets the SymTensors of its inputs and of its outputs (as its
shape_dtype_inference made them) and returns one AotLaunch per kernel
launch, in order:

    @kiln.plugin("LookUp")
    class LookUp(kiln.PluginBase):
        def shape_dtype_inference(self, inputs) -> kiln.SymTensor: ...
        def forward(self, inputs, outputs): ...          # the JIT path (eager calls, fallback)

        def aot(self, inputs, outputs):
            index, table = inputs
            n, hidden = index.shape[0], table.shape[1]
            return [kiln.AotLaunch(lookup_kernel,
                                   args=[index, table, outputs[0], table.shape[0], hidden],
                                   grid=(n, kiln.cdiv(hidden, 1024)),
                                   constexprs={"BLOCK": 1024}, num_warps=8)]

`args` are the kernel's non-constexpr parameters in order: SymTensors from
`inputs`/`outputs` (their device pointers), AotWorkspace (a pointer into the
layer's workspace, which the plugin's workspace_size() sizes), Python ints and
floats, or SymDims (any expression of the input shapes).  `grid` has 1 to 3 entries of the same
kinds.  When a network adds the plugin and AOT is preferred (the default),
kiln compiles each kernel with triton.compile for the target GPU and adds
the built-in plugin kiln::TritonAOT in its place; its fields hold the cubin
(PTX as a fallback), and the grid, the scalar arguments and the output shapes
as expressions of the network's pool (their ids: the engine stores the pool
as is and evaluates it at every shape change).  See docs/plugin-guide.md.

Settings (per network, else the environment, else the default):
  prefer AOT   network.prefer_aot / KILN_PREFER_AOT=0|1      default: yes
  target       network.aot_target / KILN_AOT_TARGET=sm_90    default: the local
               GPU (torch.cuda), else sm_90.  Several, comma-separated or as
               a list ("sm_90,sm_80"), compile every kernel for each; the
               runtime loads the one that fits the GPU it runs on.
Builder.create_network(prefer_aot=..., aot_target=...) sets both; a builder
config with other values is refused at build_engine (the kernels are
compiled when the layer is added, before the config exists).
"""
import os

from . import dtypes as _dt
from .symbolic import SymDim, SymTensor, as_int, cdiv, shape_exprs

__all__ = ["AotLaunch", "AotWorkspace", "cdiv", "default_target", "configure"]

# kiln dtype code -> Triton pointer element type
_TRITON_TYPES = {
    _dt.float32.code: "fp32", _dt.float16.code: "fp16", _dt.bfloat16.code: "bf16", _dt.int8.code: "i8",
    _dt.uint8.code: "u8", _dt.int32.code: "i32", _dt.int64.code: "i64", _dt.bool_.code: "i1",
}
_SCALAR_TYPES = ("i32", "i64", "fp32")
_POINTER_ALIGN = 16   # what Triton's JIT specializes pointers on; checked at run time


class AotLaunch:
    """One kernel launch of an AOT plugin.

    kernel      a @triton.jit function
    args        its non-constexpr parameters in order (SymTensor, int, float, SymDim)
    grid        1 to 3 entries (int or SymDim), or a callable taking the constexprs dict
    constexprs  {name: value} for every tl.constexpr parameter
    num_warps, num_stages   as for a Triton launch
    assume_divisible  names of int parameters the kernel may assume divisible by 16
                (as Triton's JIT specializes them); checked at every run
    types       {name: "i32"|"i64"|"fp32"} to override a scalar parameter's type
    """

    __slots__ = ("kernel", "args", "grid", "constexprs", "num_warps", "num_stages", "assume_divisible", "types")

    def __init__(self, kernel, args, grid, constexprs=None, num_warps=4, num_stages=3, assume_divisible=(),
                 types=None):
        self.kernel = kernel
        self.args = list(args)
        self.grid = grid
        self.constexprs = dict(constexprs or {})
        self.num_warps = int(num_warps)
        self.num_stages = int(num_stages)
        self.assume_divisible = tuple(assume_divisible)
        self.types = dict(types or {})

    def __repr__(self):
        return f"AotLaunch({_kernel_name(self.kernel)}, grid={self.grid!r}, constexprs={self.constexprs!r})"


class AotWorkspace:
    """A kernel argument pointing into the layer's workspace (the bytes the
    plugin's workspace_size() asks for): `offset` bytes in (an int or a
    SymDim), as a pointer to `dtype`.  The kernel is compiled to assume the
    address is `align`-byte aligned (16, as Triton assumes of tensors; the
    workspace itself starts 256-byte aligned); every run checks that the
    offset lies inside the workspace and keeps that alignment."""

    __slots__ = ("dtype", "offset", "align")

    def __init__(self, dtype, offset=0, align=16):
        self.dtype = _dt.to_dtype(dtype)
        self.offset = offset
        self.align = int(align)
        if self.align < 1 or self.align & (self.align - 1) or self.align > 4096:
            raise ValueError(f"AotWorkspace: align {align} must be a power of two up to 4096")

    def __repr__(self):
        return f"AotWorkspace({_dt.dtype_name(self.dtype)}, offset={self.offset!r})"


# --- settings ----------------------------------------------------------------------

def configure(network, prefer_aot=None, aot_target=None):
    """Set a network's AOT settings (before adding plugin layers)."""
    if prefer_aot is not None:
        network.prefer_aot = bool(prefer_aot)
    if aot_target is not None:
        network.aot_target = _target_string(aot_target)
    return network


def prefer_aot(network):
    v = network.prefer_aot
    if v is not None:
        return bool(v)
    env = os.environ.get("KILN_PREFER_AOT")
    if env is not None and env.strip() != "":
        return env.strip().lower() not in ("0", "false", "no", "off")
    return True


def default_target():
    """"sm_XY" of the local GPU when torch sees one, else "sm_90"."""
    env = os.environ.get("KILN_AOT_TARGET")
    if env:
        return env
    try:
        import torch
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return f"sm_{major}{minor}"
    except Exception:
        pass
    return "sm_90"


def _target_of(network):
    t = network.aot_target
    return _target_string(t if t else default_target())


def _parse_target(target):
    s = str(target).strip().lower().replace("sm_", "").replace("sm", "").rstrip("a")
    if not s.isdigit() or len(s) < 2:
        raise ValueError(f"AOT target {target!r} is not like 'sm_90'")
    return int(s)


def _parse_targets(targets):
    """Architectures (ints, newest first, no repeats) of "sm_90", "sm_90,sm_80"
    or a list of such."""
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    archs = sorted({_parse_target(t) for t in items if str(t).strip()}, reverse=True)
    if not archs:
        raise ValueError(f"AOT target {targets!r} names no architecture (expected e.g. 'sm_90' or 'sm_90,sm_80')")
    if len(archs) > 8:
        raise ValueError(f"AOT target {targets!r} names {len(archs)} architectures; an engine holds at most 8")
    return archs


def _target_string(targets):
    return ",".join(f"sm_{a}" for a in _parse_targets(targets))


def check_config(network, config):
    """At build_engine: a builder config's AOT settings must be those the
    network's AOT layers were compiled with."""
    used = network.aot_layers
    if config is None:
        return
    opts = getattr(config, "options", {}) or {}
    if used and "aot_target" in opts and opts["aot_target"] is not None:
        want = _parse_targets(opts["aot_target"])
        for label, target in used:
            if _parse_targets(target) != want:
                raise ValueError(f"plugin {label} was compiled ahead of time for {target} when it was added to the "
                                 f"network, but the builder config asks for {opts['aot_target']}: set it before "
                                 "adding layers (Builder.create_network(aot_target=...) or kiln.aot.configure)")
    if used and opts.get("prefer_aot") is False:
        raise ValueError(f"the builder config says prefer_aot=False but plugin {used[0][0]} was added as an AOT "
                         "layer: set prefer_aot=False on the network before adding layers "
                         "(Builder.create_network(prefer_aot=False) or kiln.aot.configure)")


# --- compiling -----------------------------------------------------------------------

def _kernel_name(kernel):
    fn = getattr(kernel, "fn", kernel)
    return getattr(fn, "__name__", repr(kernel))


def _jit_function(kernel, where):
    """A JITFunction for kernel; under TRITON_INTERPRET=1 @triton.jit gives an
    InterpretedFunction, whose Python function is compiled the same way."""
    try:
        from triton.runtime.jit import JITFunction
    except ImportError as e:
        raise RuntimeError(f"{where}: compiling an AOT plugin needs triton ({e})") from None
    if isinstance(kernel, JITFunction):
        return kernel
    fn = getattr(kernel, "fn", None)
    if fn is not None and callable(fn) and type(kernel).__name__ == "InterpretedFunction":
        return JITFunction(fn)
    raise TypeError(f"{where}: kernel {kernel!r} is not a @triton.jit function")


def _compile(jf, signature, constexprs, attrs, target, num_warps, num_stages, where):
    import triton
    from triton.compiler import ASTSource
    try:
        from triton.backends.compiler import GPUTarget
    except ImportError:  # pragma: no cover - older layouts
        from triton.compiler import GPUTarget
    arch = _parse_target(target)
    options = {"num_warps": num_warps, "num_stages": num_stages}
    try:
        src = ASTSource(jf, signature, constexprs, attrs)
        return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    except Exception as e:
        raise RuntimeError(f"{where}: triton.compile for {target} failed: {type(e).__name__}: {e}") from e


def _meta(compiled, key, default=0):
    md = compiled.metadata
    v = getattr(md, key, None)
    if v is None and isinstance(md, dict):
        v = md.get(key)
    return default if v is None else v


# --- expressions ---------------------------------------------------------------------

def _expr(pool, v, label, what):
    """The id in pool of an int or SymDim: kiln::TritonAOT's fields name
    expressions of the network's pool, which the engine evaluates."""
    try:
        if isinstance(v, SymDim):
            return v._expr_in(pool)
        return pool.const(as_int(v))
    except (TypeError, ValueError) as err:
        raise TypeError(f"plugin {label}: {what}: {err}") from None


def _kernel_fields(launch, index, inputs, outputs, pool, target, label, workspace):
    if not isinstance(launch, AotLaunch):
        raise TypeError(f"plugin {label}: aot() must return AotLaunch objects, got {type(launch).__name__}")
    kname = _kernel_name(launch.kernel)
    where = f"plugin {label}: AOT kernel {index} '{kname}'"
    jf = _jit_function(launch.kernel, where)
    params = list(jf.params)
    constexpr_names = [p.name for p in params if p.is_constexpr]
    runtime_names = [p.name for p in params if not p.is_constexpr]
    for k in launch.constexprs:
        if k not in constexpr_names:
            raise ValueError(f"{where}: constexprs names '{k}', which is not a tl.constexpr parameter "
                             f"(those are {constexpr_names})")
    missing = [k for k in constexpr_names if k not in launch.constexprs]
    if missing:
        raise ValueError(f"{where}: constexprs lacks {missing} (every tl.constexpr parameter needs a value)")
    if len(launch.args) != len(runtime_names):
        raise ValueError(f"{where}: args has {len(launch.args)} entries but the kernel has {len(runtime_names)} "
                         f"non-constexpr parameters {runtime_names}")
    for k in launch.assume_divisible:
        if k not in runtime_names:
            raise ValueError(f"{where}: assume_divisible names '{k}', which is not a parameter of the kernel")
    signature, attrs, pfields = {}, {}, []
    arg_iter = iter(launch.args)
    for pos, p in enumerate(params):
        if p.is_constexpr:
            signature[p.name] = "constexpr"
            continue
        a = next(arg_iter)
        pw = f"argument '{p.name}'"
        if isinstance(a, SymTensor):
            kind, idx = None, None
            for i, t in enumerate(inputs):
                if a is t:
                    kind, idx = "input", i
            for i, t in enumerate(outputs):
                if a is t:
                    kind, idx = "output", i
            if kind is None:
                raise ValueError(f"{where}: {pw} is a SymTensor that is neither one of aot()'s inputs nor "
                                 "one of its outputs")
            code = _dt.to_dtype(a.dtype).code
            signature[p.name] = "*" + _TRITON_TYPES[code]
            attrs[(pos,)] = [["tt.divisibility", 16]]
            pfields.append({"kind": kind, "index": idx, "align": _POINTER_ALIGN})
            continue
        if isinstance(a, AotWorkspace):
            if workspace is None:
                raise ValueError(f"{where}: {pw} points into the workspace, but the plugin's workspace_size() "
                                 "asks for none")
            signature[p.name] = "*" + _TRITON_TYPES[a.dtype.code]
            if a.align >= 16:
                attrs[(pos,)] = [["tt.divisibility", 16]]
            pfields.append({"kind": "workspace", "expr": _expr(pool, a.offset, label, f"AOT kernel '{kname}' {pw}"),
                            "align": a.align})
            continue
        if isinstance(a, bool):
            raise TypeError(f"{where}: {pw} is a bool: pass an int")
        if isinstance(a, float):
            signature[p.name] = "fp32"
            pfields.append({"kind": "fp32", "value": float(a)})
            continue
        if not isinstance(a, (int, SymDim)) and not hasattr(a, "__index__"):
            raise TypeError(f"{where}: {pw} is a {type(a).__name__}; use a SymTensor, AotWorkspace, int, float or "
                            "SymDim")
        expr = _expr(pool, a, label, f"AOT kernel '{kname}' {pw}")
        const = pool.is_const(expr)
        ty = launch.types.get(p.name)
        if ty is None:
            ty = "i64" if const is not None and not (-2**31 <= const < 2**31) else "i32"
        if ty not in _SCALAR_TYPES:
            raise ValueError(f"{where}: types['{p.name}'] is {ty!r}, not one of {_SCALAR_TYPES}")
        signature[p.name] = ty
        f = {"kind": ty, "expr": expr}
        if ty != "fp32" and (p.name in launch.assume_divisible or (const is not None and const % 16 == 0
                                                                   and const != 0)):
            attrs[(pos,)] = [["tt.divisibility", 16]]
            f["align"] = 16
        pfields.append(f)
    grid = launch.grid(dict(launch.constexprs)) if callable(launch.grid) else launch.grid
    if isinstance(grid, (int, SymDim)):
        grid = (grid,)
    grid = tuple(grid)
    if not 1 <= len(grid) <= 3:
        raise ValueError(f"{where}: grid has {len(grid)} entries (need 1 to 3)")
    grid_exprs = [_expr(pool, g, label, f"AOT kernel '{kname}' grid[{i}]") for i, g in enumerate(grid)]
    while len(grid_exprs) < 3:
        grid_exprs.append(pool.const(1))
    # target is _target_of's "sm_90,sm_80": newest first, the order loading tries.
    images = [_image(jf, signature, dict(launch.constexprs), attrs, t, launch, where) for t in target.split(",")]
    kernel = dict(images[0])
    if len(images) > 1:
        kernel["images"] = images[1:]
    kernel["grid"] = grid_exprs
    kernel["params"] = pfields
    return kernel


def _image(jf, signature, constexprs, attrs, target, launch, where):
    """The kernel compiled for one target, with what launching it needs."""
    try:
        compiled = _compile(jf, signature, constexprs, attrs, target, launch.num_warps, launch.num_stages, where)
    except RuntimeError:
        if not attrs:
            raise
        # An older Triton with another attrs format: compile without the hints.
        compiled = _compile(jf, signature, constexprs, None, target, launch.num_warps, launch.num_stages, where)
    num_ctas = int(_meta(compiled, "num_ctas", 1))
    if num_ctas != 1:
        raise ValueError(f"{where}: compiled with num_ctas={num_ctas}; kiln launches single-CTA kernels only")
    asm = compiled.asm
    cubin = asm.get("cubin", b"") or b""
    ptx = asm.get("ptx", "") or ""
    if isinstance(ptx, bytes):
        ptx = ptx.decode()
    return {
        "name": str(_meta(compiled, "name", _kernel_name(launch.kernel))),
        "cubin": bytes(cubin),
        "ptx": ptx,
        "target": str(target),
        "triton_version": _triton_version(),
        "num_warps": int(_meta(compiled, "num_warps", launch.num_warps)),
        "num_ctas": num_ctas,
        "shared": int(_meta(compiled, "shared", 0)),
        "global_scratch_size": int(_meta(compiled, "global_scratch_size", 0)),
        "global_scratch_align": max(1, int(_meta(compiled, "global_scratch_align", 1))),
        "profile_scratch_size": int(_meta(compiled, "profile_scratch_size", 0)),
        "profile_scratch_align": max(1, int(_meta(compiled, "profile_scratch_align", 1))),
    }


def _triton_version():
    try:
        import triton
        return str(triton.__version__)
    except Exception:  # pragma: no cover
        return ""


def build_fields(obj, pool, input_syms, input_exprs, out_codes, out_syms, out_exprs, target, workspace=None):
    """The kiln::TritonAOT fields for plugin obj (see src/plugins/triton_aot.c).
    workspace: the expression id of its workspace bytes, or None."""
    cls = type(obj)
    label = cls._kiln_label
    # shape_dtype_inference may have assigned into its inputs' shape lists (the
    # seed's example does: `shape = inputs[1].shape; shape[0] = ...`), so aot()
    # gets fresh SymTensors built from the inputs' own expressions.
    input_syms = [SymTensor(s.dtype, [SymDim._of(pool, e) for e in exprs])
                  for s, exprs in zip(input_syms, input_exprs)]
    launches = obj.aot(input_syms, out_syms)
    if isinstance(launches, AotLaunch):
        launches = [launches]
    if not isinstance(launches, (list, tuple)) or not launches:
        raise TypeError(f"plugin {label}: aot() must return an AotLaunch or a non-empty list of them, "
                        f"got {launches!r}")
    outputs = [{"dtype": int(code), "shape": [int(e) for e in shape]} for code, shape in zip(out_codes, out_exprs)]
    kernels = [_kernel_fields(l, k, input_syms, out_syms, pool, target, label, workspace)
               for k, l in enumerate(launches)]
    ns, name, version = cls._kiln_key
    fields = {
        "plugin": {"namespace": ns, "name": name, "version": version, "module": cls.__module__ or ""},
        "inputs": len(input_exprs),
        "outputs": outputs,
        "kernels": kernels,
    }
    if workspace is not None:
        fields["workspace"] = int(workspace)
    return fields


def add_layer(obj, net, tensors, input_syms, codes, outs, workspace=None):
    """Add obj as kiln::TritonAOT on kiln Tensors; returns its output Tensor(s).
    workspace: its workspace bytes' expression id (workspace_size traced), or None."""
    cls = type(obj)
    pool = net.exprs
    input_exprs = [tuple(net._net.tensor_info(t._id)[1]) for t in tensors]
    out_exprs = [shape_exprs(pool, o, cls._kiln_label, i) for i, o in enumerate(outs)]
    target = _target_of(net)
    fields = build_fields(obj, pool, input_syms, input_exprs, codes, outs, out_exprs, target, workspace)
    ids = net._net.add_plugin("kiln", "TritonAOT", "1", cls.__module__ or "", fields, [t._id for t in tensors],
                              cls._kiln_num_outputs, None)
    net.aot_layers.append((cls._kiln_label, target))
    result = [net._tensor(i) for i in ids]
    return result[0] if len(result) == 1 else tuple(result)
