"""Layers with attributes: moving data (transpose, slice, concat, expand),
reductions, softmax, normalization, where, rotary embedding, top-k and convolution.

Each function adds one built-in layer through the op table
(kiln_network_add_layer), so the shape rules, checks and error messages are
the C core's.  Sizes and indices may be ints or SymDims of the network
(symbolic slices serve every shape of the profile).  Reductions follow numpy:
keepdims=False by default (ONNX's default is 1; kiln.onnx passes it)."""
import math

from .network import Tensor, network_of
from .symbolic import SymDim, dim_expr

_INT64_MAX = (1 << 63) - 1


def _expr(pool, value, what):
    if isinstance(value, SymDim):
        return dim_expr(pool, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return pool.const(value)
    raise TypeError(f"{what}: a {type(value).__name__} is not an integer or a SymDim")


def _layer(op, inputs, attrs=None):
    net = network_of(*inputs)
    for t in inputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: inputs must be kiln Tensors, not {type(t).__name__}")
    ids = net._net.add_layer(op, [t._id for t in inputs], attrs or {})
    # An op of several outputs (topk) gives a tuple, in the op's order.
    return tuple(net._tensor(i) for i in ids) if isinstance(ids, tuple) else net._tensor(ids)


def transpose(x, perm=None):
    """Permute axes: output axis i is input axis perm[i] (default: reversed)."""
    if perm is None:
        perm = list(range(len(x.shape)))[::-1]
    return _layer("transpose", [x], {"perm": [int(p) for p in perm]})


permute = transpose


def slice(x, starts, ends, axes=None, steps=None):   # noqa: A001 (the op's name)
    """x[starts:ends:steps] along axes (default: the first len(starts) axes),
    ONNX Slice semantics: negative values count from the end, out-of-range
    ones are clamped, steps are nonzero ints.  starts/ends may be SymDims."""
    rank = len(x.shape)
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    steps = [1] * len(axes) if steps is None else [int(s) for s in steps]
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        raise ValueError("slice: starts, ends, axes and steps must have the same length")
    pool = x._network.exprs
    full_starts, full_ends, full_steps = [0] * rank, [_INT64_MAX] * rank, [1] * rank
    for s, e, a, st in zip(starts, ends, axes, steps):
        if not -rank <= a < rank:
            raise ValueError(f"slice: axis {a} is out of range for rank {rank}")
        a %= rank
        full_starts[a], full_ends[a], full_steps[a] = s, e, st
    return _layer("slice", [x], {"starts": [_expr(pool, v, "slice start") for v in full_starts],
                                 "ends": [_expr(pool, v, "slice end") for v in full_ends],
                                 "steps": full_steps})


def concat(tensors, axis=0):
    """Join tensors along axis (1 to 64 tensors, same dtype and other sizes)."""
    return _layer("concat", list(tensors), {"axis": int(axis)})


def expand(x, shape):
    """numpy broadcast of x and shape (ONNX Expand; sizes of 1 in shape keep x's)."""
    pool = x._network.exprs
    return _layer("expand", [x], {"shape": [_expr(pool, d, "expand") for d in shape]})


def broadcast_to(x, shape):
    """x broadcast to shape (numpy.broadcast_to)."""
    return expand(x, shape)


def _reduce(op, x, axes, keepdims):
    attrs = {"keepdims": 1 if keepdims else 0}
    if axes is not None:
        attrs["axes"] = [int(axes)] if isinstance(axes, int) else [int(a) for a in axes]
    return _layer(op, [x], attrs)


def reduce_sum(x, axes=None, keepdims=False):
    """Sum over axes (default: all)."""
    return _reduce("reduce_sum", x, axes, keepdims)


def reduce_mean(x, axes=None, keepdims=False):
    return _reduce("reduce_mean", x, axes, keepdims)


def reduce_max(x, axes=None, keepdims=False):
    """Maximum over axes; NaN propagates (numpy.max)."""
    return _reduce("reduce_max", x, axes, keepdims)


def reduce_min(x, axes=None, keepdims=False):
    return _reduce("reduce_min", x, axes, keepdims)


def reduce_prod(x, axes=None, keepdims=False):
    return _reduce("reduce_prod", x, axes, keepdims)


def argmax(x, axis=0, keepdims=False):
    """int64 index of the first maximum along axis."""
    return _layer("argmax", [x], {"axis": int(axis), "keepdims": 1 if keepdims else 0})


def argmin(x, axis=0, keepdims=False):
    return _layer("argmin", [x], {"axis": int(axis), "keepdims": 1 if keepdims else 0})


def softmax(x, axis=-1):
    """Numerically stable softmax along axis."""
    return _layer("softmax", [x], {"axis": int(axis)})


def log_softmax(x, axis=-1):
    return _layer("log_softmax", [x], {"axis": int(axis)})


def layer_norm(x, scale, bias, axis=-1, epsilon=1e-5):
    """(x - mean) / sqrt(var + epsilon) * scale + bias over axes axis..; scale
    and bias have those axes' shape (torch.nn.functional.layer_norm)."""
    return _layer("layer_norm", [x, scale, bias], {"axis": int(axis), "epsilon": float(epsilon)})


def rms_norm(x, scale, axis=-1, epsilon=1e-6):
    """x / sqrt(mean(x**2) + epsilon) * scale over axes axis.."""
    return _layer("rms_norm", [x, scale], {"axis": int(axis), "epsilon": float(epsilon)})


def gather_elements(data, indices, axis=0):
    """torch.gather / ONNX GatherElements: out shaped like indices; negative
    indices count from the end."""
    return _layer("gather_elements", [data, indices], {"axis": int(axis)})


_SCATTER_REDUCTIONS = ("none", "add", "mul", "max", "min")


def _reduction(what, reduction):
    if reduction not in _SCATTER_REDUCTIONS:
        raise ValueError(f"{what}: reduction must be one of {', '.join(_SCATTER_REDUCTIONS)}, not {reduction!r}")
    return _SCATTER_REDUCTIONS.index(reduction)


def scatter_nd(data, indices, updates, reduction="none"):
    """ONNX ScatterND: a copy of data in which, for every index tuple
    indices[i..] (the last axis, of constant size k <= data's rank, names
    data's first k axes), the slice data[indices[i..]] is replaced by
    updates[i..] (reduction "none") or combined with it ("add", "mul", "max",
    "min"); updates' shape is indices.shape[:-1] + data.shape[k:].  Negative
    indices count from the end; one out of range fails the run on the CPU and
    is skipped on CUDA.  With "none", of duplicate indices the last wins on
    the CPU and an unspecified one on CUDA."""
    return _layer("scatter_nd", [data, indices, updates], {"reduction": _reduction("scatter_nd", reduction)})


def scatter_elements(data, indices, updates, axis=0, reduction="none"):
    """ONNX ScatterElements / torch.Tensor.scatter_ (scatter_reduce): a copy
    of data with out[i.. with axis i_axis replaced by indices[i..]] set to
    (or combined with) updates[i..]; indices and updates have one shape, of
    data's rank.  Bounds and duplicates as scatter_nd."""
    return _layer("scatter_elements", [data, indices, updates],
                  {"axis": int(axis), "reduction": _reduction("scatter_elements", reduction)})


def cumsum(x, axis=0, exclusive=False, reverse=False):
    """Running sum along axis (ONNX CumSum): exclusive sums the elements
    before each one; reverse sums from the end."""
    return _layer("cumsum", [x], {"axis": int(axis), "exclusive": int(bool(exclusive)),
                                  "reverse": int(bool(reverse))})


_PAD_MODES = ("constant", "edge", "reflect", "wrap")


def pad(x, pads, value=0.0, mode="constant"):
    """Padding: pads = [before each axis..., after each axis...] (ints or
    SymDims, >= 0; ONNX Pad's order).  mode (numpy.pad's names): "constant"
    (value), "edge" (the nearest edge element), "reflect" (mirrored without
    repeating the edge) or "wrap" (the other end, periodically)."""
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(_PAD_MODES)}, not {mode!r}")
    pool = x._network.exprs
    return _layer("pad", [x], {"pads": [_expr(pool, p, "pad") for p in pads], "value": float(value),
                               "mode": _PAD_MODES.index(mode)})


def scaled_dot_product_attention(q, k, v, causal=False, scale=None):
    """softmax(q kᵀ · scale) v as one fused layer: q [batch, heads, seq, dim],
    k and v [batch, kv_heads, kv_seq, dim] with heads a multiple of kv_heads
    (grouped-query attention); causal: query i sees keys j <= i; scale
    defaults to 1/sqrt(dim) (torch.nn.functional.scaled_dot_product_attention)."""
    return _layer("attention", [q, k, v], {"causal": int(bool(causal)), "scale": float(scale or 0.0)})


def rotary_embedding(x, cos_cache, sin_cache, position_ids=None, *, interleaved=False, rotary_embedding_dim=0,
                     num_heads=0):
    """Rotary position embedding (RoPE) as one layer: ONNX RotaryEmbedding
    (opset 23), transformers' apply_rotary_pos_emb.  x is [batch, seq,
    num_heads*head] (num_heads required) or [batch, heads, seq, head]; the
    caches are [max_position, rot/2] rows picked by position_ids [batch, seq]
    (int64 or int32; each in [0, max_position): one out of range fails the
    run on the CPU, and reads zero rows on CUDA), or [batch, seq, rot/2]
    without position_ids.  Of each head's first rot elements
    (rotary_embedding_dim, 0: the whole head; even), the pairs (x1, x2) — the
    two halves, or even and odd elements when interleaved — become
    (x1·cos − x2·sin, x1·sin + x2·cos); the rest passes unchanged.  Output
    shaped like x; float32, float16, bfloat16 (computed in float32)."""
    inputs = [x, cos_cache, sin_cache] + ([] if position_ids is None else [position_ids])
    return _layer("rotary_embedding", inputs, {"interleaved": int(bool(interleaved)),
                                               "rotary_embedding_dim": int(rotary_embedding_dim),
                                               "num_heads": int(num_heads)})


def topk(x, k, axis=-1, largest=True, sorted=True):   # noqa: A002 (torch's and ONNX's name)
    """The k largest (largest=False: smallest) entries of x along axis and
    their positions: (values, indices), indices int64; torch.topk / ONNX
    TopK.  k is an int or a SymDim (0 <= k <= the axis's size, checked when
    the shapes are known).  Equal values: the lower index first; NaN ranks
    above every number (first when largest, last when smallest), as torch.
    The results are always sorted best first (sorted=False allows any order,
    so that one too).  float32, float16, bfloat16, int32, int64."""
    if isinstance(k, bool):
        raise TypeError("topk: k must be an integer or a SymDim, not a bool")
    return _layer("topk", [x], {"k": [_expr(x._network.exprs, k, "topk k")], "axis": int(axis),
                                "largest": int(bool(largest)), "sorted": int(bool(sorted))})


def _per_axis(value, k, what):
    """An int for every one of k spatial axes, or a list of k ints; what
    names the op and the argument ("conv_transpose: strides")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * k
    values = [int(v) for v in value]
    if len(values) != k:
        raise ValueError(f"{what} has {len(values)} entries; the input has {k} spatial axes")
    return values


def conv(x, w, bias=None, *, strides=None, pads=None, dilations=None, group=1):
    """Convolution (cross-correlation) over the 1 to 3 spatial axes of
    x [N, C, D1..Dk] with w [M, C/group, K1..Kk] and an optional bias [M]:
    ONNX Conv, torch.nn.functional.conv1d/2d/3d.  strides, dilations: an int
    or one per spatial axis (default 1).  pads: an int, one per axis (both
    sides, torch's padding=) or 2k entries, the k begins then the k ends
    (ONNX's order); ints or SymDims, >= 0.  group divides C and M
    (group == C == M: depthwise).  float32, float16, bfloat16; sums in
    float32.  Output [N, M, O1..Ok], Oi = (Di + pads - dilation·(Ki-1) - 1)
    // stride + 1."""
    _, strides, pads, dilations = _conv_args("conv", x, strides, pads, dilations, group)
    return _conv_layer("conv", x, w, bias, strides, pads, dilations, group)


def _spatial_axes(what, x):
    """k, the spatial axes of x [N, C, D1..Dk] (conv and pooling: 1 to 3)."""
    k = len(x.shape) - 2
    if k < 1 or k > 3:
        raise ValueError(f"{what}: input of rank {len(x.shape)}; needs [N, C, D1..Dk] with 1 to 3 spatial axes")
    return k


def _spatial_pads(what, pads, k):
    """pads as 2k entries (begins, then ends) from None (0), one int or
    SymDim (every side), k entries (both sides of each axis) or 2k."""
    if pads is None:
        return [0] * (2 * k)
    if isinstance(pads, (int, SymDim)) and not isinstance(pads, bool):
        return [pads] * (2 * k)
    pads = list(pads)
    if len(pads) == k:
        return pads + pads
    if len(pads) != 2 * k:
        raise ValueError(f"{what}: pads has {len(pads)} entries; needs {k} (both sides) or {2 * k} (begins, "
                         "then ends)")
    return pads


def _conv_args(what, x, strides, pads, dilations, group):
    k = _spatial_axes(what, x)
    strides = _per_axis(1 if strides is None else strides, k, f"{what}: strides")
    dilations = _per_axis(1 if dilations is None else dilations, k, f"{what}: dilations")
    pads = _spatial_pads(what, pads, k)
    if isinstance(group, bool) or not isinstance(group, int):
        raise TypeError(f"{what}: group must be an int, not {type(group).__name__}")
    return k, strides, pads, dilations


def _conv_layer(op, x, w, bias, strides, pads, dilations, group):
    pool = x._network.exprs
    inputs = [x, w] if bias is None else [x, w, bias]
    return _layer(op, inputs, {"strides": strides, "dilations": dilations, "group": group,
                               "pads": [_expr(pool, p, f"{op} pad") for p in pads]})


def conv_transpose(x, w, bias=None, *, strides=None, pads=None, dilations=None, group=1, output_padding=None):
    """Transposed convolution (the gradient of conv with respect to its
    input) of x [N, C, D1..Dk] with w [C, M/group, K1..Kk] and an optional
    bias [M]: ONNX ConvTranspose, torch.nn.functional.conv_transpose1d/2d/3d.
    strides, dilations, pads as conv's (pads crop the full output);
    output_padding (an int or one per axis, default 0) adds positions at
    the end of each axis.  Output [N, M, O1..Ok], Oi = stride·(Di-1) +
    dilation·(Ki-1) + 1 - pads + output_padding.  float32, float16,
    bfloat16; sums in float32."""
    k, strides, pads, dilations = _conv_args("conv_transpose", x, strides, pads, dilations, group)
    extra = _per_axis(0 if output_padding is None else output_padding, k, "conv_transpose: output_padding")
    # The layer has no output_padding: a negative end pad is the same thing.
    pads = pads[:k] + [p - e for p, e in zip(pads[k:], extra)]
    return _conv_layer("conv_transpose", x, w, bias, strides, pads, dilations, group)


def _pool_args(what, x, kernel_shape, strides, pads, dilations, ceil_mode):
    k = _spatial_axes(what, x)
    kernel = _per_axis(kernel_shape, k, f"{what}: kernel_shape")
    # torch's default: the stride is the kernel size (ONNX's is 1: the importer passes it).
    strides = kernel if strides is None else _per_axis(strides, k, f"{what}: strides")
    dilations = _per_axis(1 if dilations is None else dilations, k, f"{what}: dilations")
    pads = _spatial_pads(what, pads, k)
    if not isinstance(ceil_mode, (bool, int)):
        raise TypeError(f"{what}: ceil_mode must be a bool, not {type(ceil_mode).__name__}")
    pool = x._network.exprs
    return {"kernel_shape": kernel, "strides": strides, "dilations": dilations, "ceil_mode": int(bool(ceil_mode)),
            "pads": [_expr(pool, p, f"{what} pad") for p in pads]}


def max_pool(x, kernel_shape, *, strides=None, pads=None, dilations=None, ceil_mode=False):
    """The largest element of each (dilated) window over the 1 to 3 spatial
    axes of x [N, C, D1..Dk]: ONNX MaxPool, torch.nn.functional.max_pool1d..3d.
    kernel_shape, strides (default: the kernel, as torch), dilations
    (default 1): an int or one per axis.  pads: an int, one per axis (both
    sides) or 2k entries, begins then ends (ints or SymDims, >= 0); padding
    is never the maximum.  ceil_mode rounds the output size up, without a
    window that would start in the end padding.  A NaN in a window gives
    NaN.  float32, float16, bfloat16."""
    return _layer("max_pool", [x], _pool_args("max_pool", x, kernel_shape, strides, pads, dilations, ceil_mode))


def avg_pool(x, kernel_shape, *, strides=None, pads=None, ceil_mode=False, count_include_pad=False, dilations=None):
    """The mean of each window over the 1 to 3 spatial axes of x
    [N, C, D1..Dk]: ONNX AveragePool, torch.nn.functional.avg_pool1d..3d.
    Arguments as max_pool's; count_include_pad divides by the window's taps
    inside the padded input instead of its input elements.  dilations
    (ONNX AveragePool has them, torch does not) default to 1.  Sums in
    float32."""
    attrs = _pool_args("avg_pool", x, kernel_shape, strides, pads, dilations, ceil_mode)
    attrs["count_include_pad"] = int(bool(count_include_pad))
    return _layer("avg_pool", [x], attrs)


_RESIZE_MODES = ("nearest", "linear", "cubic")
_RESIZE_COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric")
_RESIZE_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _resize_enum(value, names, what):
    if isinstance(value, str) and value in names:
        return names.index(value)
    raise ValueError(f"resize: {what} {value!r} is not one of {', '.join(names)}")


def resize_scaled_size(d, scale):
    """ONNX's (and torch's) output size of an axis of size d resized by
    scale: floor(d · scale), in double (a model's float32 scale widened
    exactly, as onnx's reference does).  d may be a SymDim: the size is then
    (d · p) // q for scale = p / q exactly (every double is a binary
    fraction), which needs p and q below 2^31 (a float32 scale of up to 24
    significant bits with a modest exponent: 1.5, 0.6f, 1/3f)."""
    import fractions
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"resize: scale {scale} is not a positive number")
    if isinstance(d, int):
        return int(math.floor(d * scale))
    f = fractions.Fraction(scale)
    if f.numerator >= 2 ** 31 or f.denominator >= 2 ** 31:
        raise ValueError(f"resize: scale {scale} of a symbolic size is not a fraction of two numbers below 2^31")
    return (d * f.numerator) // f.denominator


def resize(x, sizes=None, scales=None, *, mode="nearest", coordinate_transformation_mode="half_pixel",
           nearest_mode="round_prefer_floor", cubic_coeff_a=-0.75, exclude_outside=False):
    """Resize every axis of x by interpolation: ONNX Resize,
    torch.nn.functional.interpolate.  sizes: the output size of each axis
    (ints or SymDims); scales: each axis's scale (floats), which the
    coordinate transformation divides by, as ONNX's scales input (so
    torch's scale_factor).  Give either or both; scales alone give sizes
    floor(size · scale).  mode: "nearest", "linear" (n-linear over the
    resized axes) or "cubic" (Keys, parameter cubic_coeff_a);
    coordinate_transformation_mode: "half_pixel", "half_pixel_symmetric",
    "pytorch_half_pixel", "align_corners", "asymmetric" (ONNX's formulas;
    torch's align_corners=False is pytorch_half_pixel, True align_corners,
    its "nearest" is asymmetric with nearest_mode "floor"); nearest_mode:
    "round_prefer_floor", "round_prefer_ceil", "floor", "ceil";
    exclude_outside: weights of taps outside the input are 0 and the rest
    renormalized.  Edges repeat.  float32, float16, bfloat16 (computed in
    float32); nearest takes every dtype."""
    rank = len(x.shape)
    if sizes is None and scales is None:
        raise ValueError("resize: give sizes or scales (or both)")
    if scales is not None:
        scales = [float(s) for s in scales]
        if len(scales) != rank:
            raise ValueError(f"resize: {len(scales)} scales for an input of rank {rank}")
    if sizes is None:
        sizes = [resize_scaled_size(d, sc) for d, sc in zip(x.shape, scales)]
    sizes = list(sizes)
    if len(sizes) != rank:
        raise ValueError(f"resize: {len(sizes)} sizes for an input of rank {rank}")
    pool = x._network.exprs
    attrs = {"sizes": [_expr(pool, d, "resize size") for d in sizes],
             "mode": _resize_enum(mode, _RESIZE_MODES, "mode"),
             "coordinate_transformation_mode": _resize_enum(coordinate_transformation_mode, _RESIZE_COORDS,
                                                            "coordinate_transformation_mode"),
             "nearest_mode": _resize_enum(nearest_mode, _RESIZE_NEAREST, "nearest_mode"),
             "exclude_outside": int(bool(exclude_outside)), "cubic_coeff_a": float(cubic_coeff_a)}
    if scales is not None:
        attrs["scales"] = scales
    return _layer("resize", [x], attrs)


def where(cond, a, b):
    """cond ? a : b elementwise, numpy broadcasting; cond is bool."""
    return _layer("where", [cond, a, b])


# ---- collectives: the engine's group is the network's (Network.set_parallel) ----

_ALL_REDUCE_OPS = ("sum", "prod", "max", "min")


def all_reduce(x, op="sum"):
    """The elementwise sum (or prod, max, min) of x over every rank of the
    network's group (Network.set_parallel); same shape.  On a GPU it runs
    NCCL's all-reduce on the session's stream; at world size 1 it is a copy."""
    if op not in _ALL_REDUCE_OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(_ALL_REDUCE_OPS)}, not {op!r}")
    return _layer(f"all_reduce_{op}", [x])


def all_gather(x, axis=0):
    """The ranks' x concatenated along axis in rank order: that axis grows
    world_size times (torch.distributed.all_gather_into_tensor, then
    reordered when axis is not the first)."""
    return _layer("all_gather", [x], {"axis": int(axis)})


def reduce_scatter(x, axis=0):
    """The sum of x over the ranks, cut into world_size equal parts along
    axis; each rank keeps its own part (the axis must divide by world_size)."""
    return _layer("reduce_scatter", [x], {"axis": int(axis)})
