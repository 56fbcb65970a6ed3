"""kiln.rotary_embedding (the built-in ROTARY_EMBEDDING layer) against the
references users trust: ONNX's reference implementation of RotaryEmbedding
(3-D and 4-D inputs, whole and partial heads, interleaved pairs, caches
picked by position ids or given per token, every float dtype) and
transformers' apply_rotary_pos_emb (Llama's rotation, and a partial one as
GPT-NeoX and Phi use it); on the CPU and, when there is one, the GPU.  Batch
and sequence are dynamic, so one engine runs several shapes.  Then the
errors: bad attributes and shapes are refused when the layer is added,
naming them; a position id out of range fails the CPU run naming it; and
kiln.onnx imports a RotaryEmbedding node as this one layer."""
import numpy as np
import pytest
import torch

import kiln
from kiln.runtime import Session, load_engine

from conftest import HAVE_GPU

onnx_rotary = pytest.importorskip("onnx.reference.ops.op_rotary_embedding").rotary_embedding

DEVICES = ["cpu"] + (["cuda"] if HAVE_GPU else [])
FLOATS = [torch.float32, torch.float16, torch.bfloat16]
# float32 is exact: kiln computes ONNX's float32 expression, rounding each
# product as numpy does.  The half types are computed in float32 and rounded
# once, where ONNX's reference rounds every step to the half type.
TOL = {torch.float32: (0, 0), torch.float16: (2e-3, 4e-3), torch.bfloat16: (1.6e-2, 3e-2)}
RANGE = [(1, 3, 32)]


def build(x_shape, cache_shape, pos, dtype, pos_dtype=torch.int64, **attrs):
    """An engine of one rotary_embedding layer; shapes are tuples whose "B"
    and "S" entries are the dynamic batch and sequence (shared by every input)."""
    builder = kiln.Builder()
    net = builder.create_network()

    def declare(name, shape, dt):
        dims = {}
        for i, d in enumerate(shape):
            dims[d if isinstance(d, str) else f"{name}{i}"] = RANGE if isinstance(d, str) else [(d, d, d)]
        return kiln.Tensor(name=name, shape=[-1 if isinstance(d, str) else d for d in shape],
                           dtype=kiln.to_dtype(dt), dim_range=dims)

    with kiln.net_guard(net):
        x = declare("x", x_shape, dtype)
        c = declare("cos", cache_shape, dtype)
        s = declare("sin", cache_shape, dtype)
        p = declare("pos", ("B", "S"), pos_dtype) if pos else None
        kiln.rotary_embedding(x, c, s, p, **attrs).mark_output("y")
    return builder.build_engine(net)


def case(layout, B, S, H, D, rot, pos, seed, P=24):
    """Random x, caches and ids for the given sizes, as numpy float32 / int64."""
    g = np.random.default_rng(seed)
    half = (rot or D) // 2
    x = g.standard_normal((B, H, S, D) if layout == 4 else (B, S, H * D)).astype(np.float32)
    if pos:
        ids = g.integers(0, P, (B, S))
        # Caches as a model builds them: cos/sin of position times frequency.
        ang = np.arange(P)[:, None] * (10000.0 ** (-np.arange(half) / half))[None, :]
        cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    else:
        ids = None
        cos = g.uniform(-1, 1, (B, S, half)).astype(np.float32)
        sin = g.uniform(-1, 1, (B, S, half)).astype(np.float32)
    return x, cos, sin, ids


def close(got, want, dtype):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got.float(), want.float(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("layout", [3, 4])
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rot", [0, 4])
@pytest.mark.parametrize("pos", [True, False], ids=["ids", "per-token"])
def test_matches_onnx_reference(device, dtype, layout, interleaved, rot, pos):
    H, D = 3, 8
    x_shape = ("B", H, "S", D) if layout == 4 else ("B", "S", H * D)
    cache_shape = (24, (rot or D) // 2) if pos else ("B", "S", (rot or D) // 2)
    attrs = dict(interleaved=bool(interleaved), rotary_embedding_dim=rot, num_heads=H if layout == 3 else 0)
    s = Session.from_serialized_engine(build(x_shape, cache_shape, pos, dtype, **attrs), device=device)
    for seed, (B, S) in enumerate([(2, 5), (1, 1), (3, 8)]):   # one engine, several shapes
        x, cos, sin, ids = case(layout, B, S, H, D, rot, pos, seed)
        # The reference on the dtype's values (rounded inputs), computed in float32.
        xt, ct, st = (torch.from_numpy(a).to(dtype) for a in (x, cos, sin))
        want = onnx_rotary(xt.float().numpy(), ct.float().numpy(), st.float().numpy(), ids,
                           interleaved=interleaved, rotary_embedding_dim=rot, num_heads=H)
        feeds = {"x": xt.to(device), "cos": ct.to(device), "sin": st.to(device)}
        if pos:
            feeds["pos"] = torch.from_numpy(ids).to(device)
        got = s(feeds)["y"].cpu()
        assert got.dtype == dtype and tuple(got.shape) == x.shape
        close(got, torch.from_numpy(want).to(dtype), dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_int32_ids_and_larger_heads(device):
    B, S, H, D, rot = 2, 17, 4, 64, 32
    s = Session.from_serialized_engine(build(("B", H, "S", D), (40, rot // 2), True, torch.float32, torch.int32,
                                             rotary_embedding_dim=rot, interleaved=True), device=device)
    x, cos, sin, ids = case(4, B, S, H, D, rot, True, 7, P=40)
    want = onnx_rotary(x, cos, sin, ids, interleaved=1, rotary_embedding_dim=rot)
    got = s({"x": torch.from_numpy(x).to(device), "cos": torch.from_numpy(cos).to(device),
             "sin": torch.from_numpy(sin).to(device), "pos": torch.from_numpy(ids.astype(np.int32)).to(device)})["y"]
    np.testing.assert_array_equal(got.cpu().numpy(), want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("partial", [False, True], ids=["llama", "partial"])
def test_matches_transformers_apply_rotary_pos_emb(device, dtype, partial):
    """transformers' Llama rotation: q·cos + rotate_half(q)·sin with cos/sin
    [batch, seq, dim] (the halves' angles repeated); a partial rotation
    (GPT-NeoX's rotary_pct, Phi's partial_rotary_factor) rotates the first
    rot features and passes the rest, as transformers' models do around it."""
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    B, H, S, D, P = 2, 4, 6, 32, 64
    rot = 16 if partial else D
    g = torch.Generator().manual_seed(3)
    q = torch.randn(B, H, S, D, generator=g).to(dtype)
    ids = torch.randint(0, P, (B, S), generator=g)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, rot, 2, dtype=torch.float32) / rot))
    freqs = torch.arange(P, dtype=torch.float32)[:, None] * inv_freq[None, :]           # [P, rot/2]
    cos, sin = freqs.cos(), freqs.sin()
    emb = torch.cat((freqs, freqs), dim=-1)[ids]                                        # [B, S, rot]
    q_rot, q_pass = q[..., :rot].float(), q[..., rot:].float()
    want, _ = llama.apply_rotary_pos_emb(q_rot, q_rot, emb.cos(), emb.sin())           # unsqueeze_dim=1
    want = torch.cat((want, q_pass), dim=-1)
    s = Session.from_serialized_engine(build(("B", H, "S", D), (P, rot // 2), True, dtype,
                                             rotary_embedding_dim=rot if partial else 0), device=device)
    got = s({"x": q.to(device), "cos": cos.to(dtype).to(device), "sin": sin.to(dtype).to(device),
             "pos": ids.to(device)})["y"].cpu()
    # The caches are rounded to the dtype on kiln's side: compare at its precision.
    rtol, atol = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 4e-3), torch.bfloat16: (1.6e-2, 4e-2)}[dtype]
    torch.testing.assert_close(got.float(), want, rtol=rtol, atol=atol)


def test_bad_position_id_fails_the_cpu_run_naming_it():
    s = Session.from_serialized_engine(build(("B", 2, "S", 4), (5, 2), True, torch.float32), device="cpu")
    x = torch.randn(1, 2, 3, 4)
    c = torch.ones(5, 2)
    with pytest.raises(kiln.Error, match=r"rotary_embedding: position id 5 at \[0, 2\] of position_ids is out of "
                                         r"range \[0, 5\)"):
        s({"x": x, "cos": c, "sin": c, "pos": torch.tensor([[0, 4, 5]])})
    with pytest.raises(kiln.Error, match=r"position id -1 at \[0, 0\]"):
        s({"x": x, "cos": c, "sin": c, "pos": torch.tensor([[-1, 0, 0]])})
    y = s({"x": x, "cos": c, "sin": c * 0, "pos": torch.tensor([[0, 4, 1]])})["y"]   # cos 1, sin 0: the identity
    torch.testing.assert_close(y, x, rtol=0, atol=0)


def test_bad_attributes_and_shapes_are_refused_naming_them():
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x3 = kiln.Tensor(name="q", shape=(2, 3, 32), dtype=kiln.float32)
        x4 = kiln.Tensor(name="k", shape=(2, 4, 3, 8), dtype=kiln.float32)
        c = kiln.Tensor(name="cos", shape=(16, 4), dtype=kiln.float32)
        s = kiln.Tensor(name="sin", shape=(16, 4), dtype=kiln.float32)
        ch = kiln.Tensor(name="cos16", shape=(16, 4), dtype=kiln.float16)
        p = kiln.Tensor(name="ids", shape=(2, 3), dtype=kiln.int64)
        pw = kiln.Tensor(name="ids5", shape=(2, 5), dtype=kiln.int64)
        with pytest.raises(kiln.Error, match=r"rotary_embedding of 'q': a 3-D input \[batch, seq, hidden\] needs "
                                             r"num_heads"):
            kiln.rotary_embedding(x3, c, s, p)
        with pytest.raises(kiln.Error, match=r"rotary_embedding_dim 3 is not an even number"):
            kiln.rotary_embedding(x4, c, s, p, rotary_embedding_dim=3)
        with pytest.raises(kiln.Error, match=r"x 'k' axis 1 \(the heads\) is 4 but num_heads is 2"):
            kiln.rotary_embedding(x4, c, s, p, num_heads=2)
        with pytest.raises(kiln.Error, match=r"cos_cache 'cos' axis 1 \(rotary_dim/2\) is 4 but "
                                             r"rotary_embedding_dim/2 is 2"):
            kiln.rotary_embedding(x4, c, s, p, rotary_embedding_dim=4)
        with pytest.raises(kiln.Error, match=r"cos_cache 'cos16' is float16, not float32 like x"):
            kiln.rotary_embedding(x4, ch, s, p)
        with pytest.raises(kiln.Error, match=r"position_ids 'ids5' axis 1 is 5 but x's sequence length is 3"):
            kiln.rotary_embedding(x4, c, s, pw)
        with pytest.raises(kiln.Error, match=r"cos_cache 'cos' has rank 2; needs \[batch, seq, rotary_dim/2\] \(3\) "
                                             r"without position_ids"):
            kiln.rotary_embedding(x4, c, s)
        with pytest.raises(kiln.Error, match=r"interleaved is 2, not 0 or 1"):
            net._net.add_layer("rotary_embedding", [x4._id, c._id, s._id, p._id], {"interleaved": 2})
        y = kiln.rotary_embedding(x3, c, s, p, num_heads=4)
        assert tuple(y.shape) == (2, 3, 32) and y.dtype == kiln.float32


def test_onnx_rotary_embedding_is_one_layer():
    onnx = pytest.importorskip("onnx")
    import kiln.onnx
    from onnx import TensorProto, helper
    node = helper.make_node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"], interleaved=1,
                            rotary_embedding_dim=4, num_heads=2)
    g = helper.make_graph([node], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 16]),
                           helper.make_tensor_value_info("pos", TensorProto.INT64, ["batch", "seq"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 16])],
                          [onnx.numpy_helper.from_array(np.cos(np.arange(20.0).reshape(10, 2)).astype(np.float32),
                                                        "cos"),
                           onnx.numpy_helper.from_array(np.sin(np.arange(20.0).reshape(10, 2)).astype(np.float32),
                                                        "sin")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 23)])
    engine = kiln.Builder().build_engine(kiln.onnx.parse(m, dim_range={"batch": [(1, 2, 4)], "seq": [(1, 3, 8)]}))
    layers = load_engine(engine).layers()
    assert [(kind, detail) for kind, detail, *_ in layers] == \
        [("rotary_embedding", "interleaved 1 rotary_embedding_dim 4 num_heads 2")]
    x = np.random.default_rng(1).standard_normal((2, 3, 16)).astype(np.float32)
    ids = np.array([[0, 9, 4], [2, 2, 7]])
    got = Session.from_serialized_engine(engine, device="cpu")({"x": x, "pos": ids})["y"]
    cos = np.cos(np.arange(20.0).reshape(10, 2)).astype(np.float32)
    sin = np.sin(np.arange(20.0).reshape(10, 2)).astype(np.float32)
    np.testing.assert_array_equal(got, onnx_rotary(x, cos, sin, ids, interleaved=1, rotary_embedding_dim=4,
                                                   num_heads=2))
