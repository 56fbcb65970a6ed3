"""kiln.onnx against the references users trust: ONNX's own backend node
tests (through kiln.onnx.backend), and transformers models exported by
torch.onnx.export compared with onnxruntime; the importer's errors; a
custom-domain node reaching a Triton plugin; `kiln build`; bfloat16 numpy
(ml_dtypes) inputs and outputs."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import kiln  # noqa: E402
import kiln.onnx  # noqa: E402

from conftest import HAVE_GPU, subprocess_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def session(net, device="cpu"):
    return kiln.Session.from_serialized_engine(kiln.Builder().build_engine(net), device=device)


def test_onnx_node_tests_pass():
    """At least 90% of the node test cases kiln can express (ops in its list,
    element types it has) pass; the per-op table goes to docs/onnx-node-tests.md."""
    r = subprocess.run([sys.executable, str(ROOT / "tests/onnx/run_node_tests.py"), "--min-pass", "0.9"],
                       env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "cases pass" in r.stdout


def export(name, path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if name == "gpt2":
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=256,
                                                                     n_positions=128))
    elif name == "bert":
        model = transformers.BertModel(transformers.BertConfig(num_hidden_layers=2, hidden_size=64,
                                                               num_attention_heads=4, intermediate_size=128,
                                                               vocab_size=256, max_position_embeddings=128))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
            vocab_size=256, max_position_embeddings=128, attn_implementation="eager"))
    model.eval()

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            r = self.m(input_ids=ids, attention_mask=mask)
            return r.logits if hasattr(r, "logits") else r.last_hidden_state

    ids = torch.randint(0, 256, (2, 8))
    axes = {0: "batch", 1: "seq"}
    torch.onnx.export(Wrap(model), (ids, torch.ones_like(ids)), str(path), input_names=["input_ids", "attention_mask"],
                      output_names=["out"], dynamic_axes={"input_ids": axes, "attention_mask": axes, "out": axes},
                      opset_version=17, dynamo=False)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if HAVE_GPU else []))
@pytest.mark.parametrize("name", ["gpt2", "bert", "llama"])
def test_transformers_models_match_onnxruntime(tmp_path, name, device):
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / f"{name}.onnx"
    export(name, path)
    net = kiln.onnx.parse(path, dim_range={"batch": [(1, 2, 4)], "seq": [(1, 16, 48)]})
    s = session(net, device)
    ref = ort.InferenceSession(str(path))
    rng = np.random.default_rng(0)
    for batch, seq in [(1, 1), (2, 16), (3, 33), (4, 48)]:       # one engine, every shape of the profile
        ids = rng.integers(0, 256, (batch, seq)).astype(np.int64)
        mask = np.ones((batch, seq), np.int64)
        if name != "bert":
            mask[0, : seq // 2] = 0                               # left padding
        want = ref.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        if device == "cpu":
            got = s({"input_ids": ids, "attention_mask": mask})["out"]
        else:
            import torch
            got = s({"input_ids": torch.from_numpy(ids).cuda(), "attention_mask": torch.from_numpy(mask).cuda()})
            got = got["out"].cpu().numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 if device == "cpu" else 2e-3)


def test_dynamic_axis_needs_a_range():
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match=r"input 'x' axis 0 is dynamic \('batch'\) and dim_range has no range"):
        kiln.onnx.parse(m)
    y = session(kiln.onnx.parse(m, dim_range={"batch": [(1, 4, 8)]}))({"x": -np.ones((5, 4), np.float32)})["y"]
    assert (y == 0).all()


def test_unsupported_op_names_node_type_and_opset():
    g = helper.make_graph([helper.make_node("Resize", ["x", "", "s"], ["y"], name="pick",
                                            coordinate_transformation_mode="tf_crop_and_resize")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])],
                          [onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(kiln.onnx.UnsupportedNode, match=r"node 'pick' \(ai.onnx::Resize, opset 17\): "
                                                        r"coordinate_transformation_mode 'tf_crop_and_resize'"):
        kiln.onnx.parse(m)
    g2 = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], name="f", domain="acme")], "g",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    m2 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)])
    with pytest.raises(kiln.onnx.UnsupportedNode, match=r"namespace 'acme', name 'Frobnicate'.*@kiln.plugin"):
        kiln.onnx.parse(m2)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"])
def test_conv_auto_pad_on_symbolic_sizes(auto_pad):
    # SAME padding of a dynamic height and width: the pads are expressions of
    # them, so one engine matches ONNX's reference at every size.
    from onnx.reference import ReferenceEvaluator
    kw = {"pads": [1, 0, 2, 1]} if auto_pad == "NOTSET" else {"auto_pad": auto_pad}
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[2, 3], dilations=[1, 2], group=2, **kw)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2, 3, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, "h", "w"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    s = session(kiln.onnx.parse(m, dim_range={"n": [(1, 1, 3)], "h": [(4, 8, 16)], "w": [(4, 8, 16)]}))
    ref = ReferenceEvaluator(m)
    for n, h, wd in ((1, 8, 8), (2, 5, 13), (3, 16, 4)):
        x = rng.standard_normal((n, 4, h, wd)).astype(np.float32)
        (want,) = ref.run(None, {"x": x})
        got = s({"x": x})["y"]
        assert got.shape == want.shape, (auto_pad, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kw", [{"auto_pad": "SAME_UPPER"}, {"auto_pad": "SAME_LOWER"},
                                {"pads": [1, 0, 0, 1], "output_padding": [1, 0]}], ids=["upper", "lower", "pads"])
def test_conv_transpose_on_symbolic_sizes(kw):
    # SAME: the output is input · stride, its pads expressions of the input's sizes.
    from onnx.reference import ReferenceEvaluator
    # group 1: onnx's reference ConvTranspose mishandles groups (the torch tests cover them).
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 3], dilations=[1, 2], **kw)
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, "h", "w"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    s = session(kiln.onnx.parse(m, dim_range={"n": [(1, 1, 2)], "h": [(2, 4, 8)], "w": [(2, 4, 8)]}))
    ref = ReferenceEvaluator(m)
    for n, h, wd in ((1, 4, 4), (2, 3, 7), (1, 8, 2)):
        x = rng.standard_normal((n, 4, h, wd)).astype(np.float32)
        (want,) = ref.run(None, {"x": x})
        got = s({"x": x})["y"]
        assert got.shape == want.shape, (kw, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op, kw", [
    ("MaxPool", {"auto_pad": "SAME_UPPER", "strides": [2, 3]}),
    # SAME_LOWER with unit strides and dilations: onnx's reference pads a
    # strided or dilated SAME_LOWER MaxPool as SAME_UPPER with floor sizes
    # (its _max_pool path), against the spec that kiln follows.
    ("MaxPool", {"auto_pad": "SAME_LOWER"}),
    ("MaxPool", {"pads": [2, 0, 1, 1], "strides": [2, 1], "dilations": [2, 3]}),
    ("MaxPool", {"pads": [1, 0, 0, 1], "strides": [2, 2], "ceil_mode": 1}),
    ("AveragePool", {"auto_pad": "SAME_UPPER", "strides": [2, 3]}),
    ("AveragePool", {"auto_pad": "VALID", "strides": [1, 2]}),
    ("AveragePool", {"pads": [1, 1, 1, 1], "strides": [2, 2], "count_include_pad": 1}),
], ids=["max-upper", "max-lower", "max-dilated", "max-ceil", "avg-upper", "avg-valid", "avg-include-pad"])
def test_pool_on_symbolic_sizes(op, kw):
    # SAME padding of a dynamic height and width: pads are expressions of
    # them, so one engine matches ONNX's reference at every size.
    from onnx.reference import ReferenceEvaluator
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[3, 2], **kw)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    s = session(kiln.onnx.parse(m, dim_range={"n": [(1, 1, 2)], "h": [(4, 8, 16)], "w": [(4, 8, 16)]}))
    ref = ReferenceEvaluator(m)
    rng = np.random.default_rng(2)
    for n, h, wd in ((1, 8, 8), (2, 5, 13), (1, 16, 4)):
        x = rng.standard_normal((n, 3, h, wd)).astype(np.float32)
        (want,) = ref.run(None, {"x": x})
        got = s({"x": x})["y"]
        assert got.shape == want.shape, (op, kw, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op):
    node = helper.make_node(op, ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    s = session(kiln.onnx.parse(m, dim_range={"n": [(1, 1, 2)], "h": [(1, 4, 8)]}))
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 5)).astype(np.float32)
    want = x.mean(axis=(2, 3), keepdims=True) if op == "GlobalAveragePool" else x.max(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(s({"x": x})["y"], want, rtol=1e-5, atol=1e-6)


def test_pool_refusals_name_the_node():
    node = helper.make_node("MaxPool", ["x"], ["y", "idx"], name="p", kernel_shape=[2, 2])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("idx", TensorProto.INT64, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(kiln.onnx.UnsupportedNode, match=r"node 'p'.*the Indices output \('idx'\)"):
        kiln.onnx.parse(m)
    node = helper.make_node("AveragePool", ["x"], ["y"], name="a", kernel_shape=[2, 2], auto_pad="SAME_SIDEWAYS")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(kiln.onnx.UnsupportedNode, match=r"node 'a'.*auto_pad 'SAME_SIDEWAYS'"):
        kiln.onnx.parse(m)
    node = helper.make_node("AveragePool", ["x"], ["y"], name="a", kernel_shape=[2, 9])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(kiln.onnx.UnsupportedNode, match=r"shorter than the dilated kernel"):
        kiln.onnx.parse(m)


def test_conv_refusals_name_the_node():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad="SAME_SIDEWAYS")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(kiln.onnx.UnsupportedNode, match=r"node 'c'.*auto_pad 'SAME_SIDEWAYS'"):
        kiln.onnx.parse(m)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", kernel_shape=[2, 2])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(np.ones((3, 2, 3, 3), np.float32), "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(kiln.onnx.UnsupportedNode, match=r"kernel_shape \[2, 2\] disagrees"):
        kiln.onnx.parse(m)
    # A weight whose channels do not match: the core's message names the tensors.
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(np.ones((3, 5, 3, 3), np.float32), "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(Exception, match=r"input channels must equal"):
        kiln.onnx.parse(m)


def _layers(net):
    from kiln.runtime import Engine
    return [layer[:2] for layer in Engine.from_memory(kiln.Builder().build_engine(net)).layers()]


@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_transposes_are_matmul_flags(trans_a, trans_b):
    """Gemm's transA/transB read the operands as stored: one matmul layer with
    the flags (then the bias), no transpose layer, a weight never copied."""
    rng = np.random.default_rng(trans_a * 2 + trans_b)
    x = rng.standard_normal((5, 3) if trans_a else (3, 5)).astype(np.float32)
    w = rng.standard_normal((4, 5) if trans_b else (5, 4)).astype(np.float32)
    c = rng.standard_normal(4).astype(np.float32)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w", "c"], ["y"], transA=trans_a, transB=trans_b,
                                            alpha=1.0, beta=1.0)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])],
                          [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(c, "c")])
    net = kiln.onnx.parse(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    detail = f"transpose_a {trans_a} transpose_b {trans_b}" if trans_a or trans_b else ""
    assert _layers(net) == [("matmul", detail), ("binary", "add")]
    want = (x.T if trans_a else x) @ (w.T if trans_b else w) + c
    np.testing.assert_allclose(session(net)({"x": x})["y"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("also_output", [False, True])
def test_transpose_of_last_two_axes_feeding_matmul_is_a_flag(also_output):
    """MatMul(x, Transpose(w, perm [0, 2, 1])) reads w as stored: the
    Transpose layer is pruned, unless the graph also outputs its result."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 5)).astype(np.float32), rng.standard_normal((2, 4, 5)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["x", "wt"], ["y"]),
             helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["xt", "x"], ["gram"])]    # xᵀ x: the flag on a
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4]),
               helper.make_tensor_value_info("gram", TensorProto.FLOAT, [2, 5, 5])]
    if also_output:
        outputs.append(helper.make_tensor_value_info("wt", TensorProto.FLOAT, [2, 5, 4]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5]),
                                       helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 4, 5])], outputs)
    net = kiln.onnx.parse(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    layers = _layers(net)
    assert ("matmul", "transpose_a 0 transpose_b 1") in layers and ("matmul", "transpose_a 1 transpose_b 0") in layers
    assert [kind for kind, _ in layers].count("transpose") == (1 if also_output else 0)
    out = session(net)({"x": x, "w": w})
    np.testing.assert_allclose(out["y"], x @ w.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["gram"], x.transpose(0, 2, 1) @ x, rtol=1e-5, atol=1e-5)
    if also_output:
        np.testing.assert_array_equal(out["wt"], w.transpose(0, 2, 1))


def test_topk_with_a_k_computed_from_shapes():
    # K = the batch size (Shape -> Gather): a symbolic K, one engine for every shape.
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["k"]),
             helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=0)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq"])],
                          [helper.make_tensor_value_info("v", TensorProto.FLOAT, ["batch", "batch"]),
                           helper.make_tensor_value_info("i", TensorProto.INT64, ["batch", "batch"])],
                          [onnx.numpy_helper.from_array(np.array([0], np.int64), "zero")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    s = session(kiln.onnx.parse(m, dim_range={"batch": [(1, 2, 8)], "seq": [(8, 9, 16)]}))
    rng = np.random.default_rng(0)
    for b, n in ((2, 9), (5, 16), (8, 8)):
        x = rng.permutation(b * n).reshape(b, n).astype(np.float32)
        out = s({"x": x})
        want_i = np.argsort(x, axis=1, kind="stable")[:, :b]
        np.testing.assert_array_equal(out["i"], want_i)
        np.testing.assert_array_equal(out["v"], np.take_along_axis(x, want_i, axis=1))
    # A K that is data at run time cannot be a shape: refused by name.
    g2 = helper.make_graph([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="pick")], "g",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
                            helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
                           [helper.make_tensor_value_info("v", TensorProto.FLOAT, [2]),
                            helper.make_tensor_value_info("i", TensorProto.INT64, [2])])
    m2 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(Exception, match=r"TopK's K must be known when the model is imported"):
        kiln.onnx.parse(m2)


def test_custom_op_exported_by_torch_reaches_a_triton_plugin(tmp_path):
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).parent))
    import onnx_scale_plugin as plug

    class M(torch.nn.Module):
        def forward(self, x):
            return torch.relu(plug.ScaleAddFunction.apply(x, 2.5, -1.0))

    path = tmp_path / "custom.onnx"
    x = torch.randn(3, 7)
    torch.onnx.export(M(), (x,), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "rows"}, "y": {0: "rows"}}, opset_version=17, dynamo=False,
                      custom_opsets={"kiln_test": 1})
    assert any(n.domain == "kiln_test" and n.op_type == "ScaleAdd" for n in onnx.load(str(path)).graph.node)
    net = kiln.onnx.parse(path, dim_range={"rows": [(1, 4, 16)]})
    device = "cuda" if HAVE_GPU else "cpu"
    s = session(net, device)
    for rows in (1, 9):
        xs = torch.randn(rows, 7, device=device)
        got = s({"x": xs})["y"]
        torch.testing.assert_close(got, M()(xs), rtol=1e-6, atol=1e-6)


def test_kiln_build_command(tmp_path):
    g = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    cmd = [sys.executable, "-m", "kiln.cli", "build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.engine"),
           "--shape", "x=1x5:4x5:8x5"]
    r = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = kiln.Session.from_file(str(tmp_path / "m.engine"), device="cpu") if hasattr(kiln.Session, "from_file") \
        else kiln.Session.from_serialized_engine(open(tmp_path / "m.engine", "rb").read(), device="cpu")
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(s({"x": x})["y"], e / e.sum(-1, keepdims=True), rtol=1e-6)
    bad = subprocess.run(cmd[:-1] + ["x=1x5:4x5"], env=subprocess_env(), capture_output=True, text=True)
    assert bad.returncode != 0 and "INPUT=MIN:OPT:MAX" in bad.stderr


def test_bfloat16_numpy_inputs_and_outputs():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    g = helper.make_graph([helper.make_node("Mul", ["x", "x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [3])])
    s = session(kiln.onnx.parse(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])))
    x = np.array([1.5, -2.0, 3.0], dtype=ml_dtypes.bfloat16)
    y = s({"x": x})["y"]
    assert y.dtype == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(y.astype(np.float32), np.array([2.25, 4.0, 9.0], np.float32))


EINSUMS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 6)]),      # broadcast batch
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 8), (2, 3, 5, 8)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
    ("i,i->", [(6,), (6,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij->j", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),                             # implicit output
    ("bij,jk->bik", [(2, 3, 4), (4, 5)]),
    ("ab,ab->a", [(3, 4), (3, 4)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUMS)
def test_einsum_matches_numpy(equation, shapes):
    """Einsum from kiln layers (diagonals, sums, batched matmuls, transposes)
    against numpy.einsum, float32."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    names = [f"x{i}" for i in range(len(arrays))]
    want = np.einsum(equation, *arrays)
    g = helper.make_graph([helper.make_node("Einsum", names, ["y"], equation=equation)], "g",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in zip(names, shapes)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(want.shape))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    got = session(kiln.onnx.parse(m))(dict(zip(names, arrays)))["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_einsum_over_a_dynamic_batch():
    g = helper.make_graph([helper.make_node("Einsum", ["q", "k"], ["s"], equation="bhqd,bhkd->bhqk")], "g",
                          [helper.make_tensor_value_info("q", TensorProto.FLOAT, ["batch", 2, 3, 8]),
                           helper.make_tensor_value_info("k", TensorProto.FLOAT, ["batch", 2, 5, 8])],
                          [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch", 2, 3, 5])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    s = session(kiln.onnx.parse(m, dim_range={"batch": [(1, 2, 4)]}))
    rng = np.random.default_rng(1)
    for b in (1, 3):
        q, k = rng.standard_normal((b, 2, 3, 8), np.float32), rng.standard_normal((b, 2, 5, 8), np.float32)
        np.testing.assert_allclose(s({"q": q, "k": k})["s"], np.einsum("bhqd,bhkd->bhqk", q, k), rtol=1e-5, atol=1e-5)


# ---- ops that exported models (tests/python/onnx_model_zoo.py) needed ---------------

def _single_node(node, inputs, out_type=TensorProto.FLOAT, inits=(), opset=17, dynamic=()):
    """A one-node model over `inputs` (name -> array): axes named in `dynamic`
    (a list of (input, axis)) are dynamic 'd<axis>'."""
    vis = []
    for name, a in inputs.items():
        dims = [f"d{ax}" if (name, ax) in dynamic else n for ax, n in enumerate(a.shape)]
        vis.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), dims))
    g = helper.make_graph([node], "g", vis, [helper.make_tensor_value_info(node.output[0], out_type, None)],
                          [onnx.numpy_helper.from_array(v, k) for k, v in inits])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _reference(model, feed):
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, feed)[0]


def _kiln_run(model, feed, dim_range=None):
    return session(kiln.onnx.parse(model, dim_range=dim_range))(feed)[model.graph.output[0].name]


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint8])
@pytest.mark.parametrize("op", ["Abs", "Sign", "Relu"])
def test_integer_abs_sign_relu(op, dtype):
    """T5's and DeBERTa's relative-position buckets take Abs and Sign of int64
    positions; kiln's abs/sign layers are floating-point only, so integers are
    spelled as min/max (exact)."""
    if op == "Relu" and dtype == np.uint8:
        pytest.skip("ONNX's Relu has no uint8")
    x = np.array([[-128 if dtype != np.uint8 else 0, -3, -1, 0, 1, 2, 127, 5]], np.int64)
    x = np.abs(x).astype(dtype) if dtype == np.uint8 else x.astype(dtype)
    m = _single_node(helper.make_node(op, ["x"], ["y"]), {"x": x}, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    got = _kiln_run(m, {"x": x})
    want = _reference(m, {"x": x})
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("reps", [[1, 1, 1, 1, 2], [2, 1, 3, 1, 1], [2, 2, 2, 2, 2]])
def test_tile_of_a_five_axis_tensor(reps):
    """GPT-J tiles 5-D tensors: interleaving a new axis for each one would need
    10 axes (kiln has 8); only repeated axes get one, and beyond 8 it concats."""
    x = np.arange(2 * 3 * 1 * 2 * 4, dtype=np.float32).reshape(2, 3, 1, 2, 4)
    r = np.array(reps, np.int64)
    m = _single_node(helper.make_node("Tile", ["x", "r"], ["y"]), {"x": x}, inits=[("r", r)],
                     dynamic=[("x", 0)])
    got = _kiln_run(m, {"x": x}, dim_range={"d0": [(1, 2, 4)]})
    np.testing.assert_array_equal(got, np.tile(x, reps))


def test_batch_normalization_inference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    params = [("s", rng.standard_normal(3)), ("b", rng.standard_normal(3)), ("mean", rng.standard_normal(3)),
              ("var", rng.random(3) + 0.5)]
    params = [(k, v.astype(np.float32)) for k, v in params]
    m = _single_node(helper.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], ["y"], epsilon=1e-3),
                     {"x": x}, inits=params, dynamic=[("x", 0), ("x", 2)])
    got = _kiln_run(m, {"x": x}, dim_range={"d0": [(1, 2, 4)], "d2": [(1, 4, 8)]})
    np.testing.assert_allclose(got, _reference(m, {"x": x}), rtol=1e-5, atol=1e-5)
    # statistics as graph inputs: the same arithmetic in layers
    g = m.graph
    m2 = _single_node(g.node[0], {"x": x, **dict(params)})
    feed = {"x": x, **dict(params)}
    np.testing.assert_allclose(_kiln_run(m2, feed), _reference(m2, feed), rtol=1e-5, atol=1e-5)


def test_batch_normalization_training_mode_uses_batch_statistics():
    """BiT's weight-standardized convolutions: BatchNormalization with
    training_mode=1 normalizes with the batch's own mean and variance."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 2, 4, 5)) * 2 + 1).astype(np.float32)
    params = [(k, v.astype(np.float32)) for k, v in [("s", rng.standard_normal(2)), ("b", rng.standard_normal(2)),
                                                      ("mean", rng.standard_normal(2)), ("var", rng.random(2) + 0.5)]]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], ["y", "rm", "rv"],
                            training_mode=1, momentum=0.8, epsilon=1e-4)
    m = _single_node(node, {"x": x}, inits=params, opset=15)
    for name in ("rm", "rv"):
        m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    from onnx.reference import ReferenceEvaluator
    want = ReferenceEvaluator(m).run(None, {"x": x})
    got = session(kiln.onnx.parse(m))({"x": x})
    for name, w in zip(("y", "rm", "rv"), want):
        np.testing.assert_allclose(got[name], w, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("shape", [(2, 4, 7), (2, 4, 3, 5)])
def test_instance_normalization(shape):
    """wav2vec2's feature extractor (torch's GroupNorm with one group per channel)."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    params = [("s", rng.standard_normal(4).astype(np.float32)), ("b", rng.standard_normal(4).astype(np.float32))]
    m = _single_node(helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4), {"x": x},
                     inits=params, dynamic=[("x", 0), ("x", 2)])
    got = _kiln_run(m, {"x": x}, dim_range={"d0": [(1, 2, 4)], "d2": [(1, 4, 8)]})
    np.testing.assert_allclose(got, _reference(m, {"x": x}), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_normalization(opset):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 3, 4)).astype(np.float32)
    n = 6 if opset == 21 else 3          # opset 18: scale and bias per group
    params = [("s", rng.standard_normal(n).astype(np.float32)), ("b", rng.standard_normal(n).astype(np.float32))]
    m = _single_node(helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-5),
                     {"x": x}, inits=params, opset=opset, dynamic=[("x", 0), ("x", 3)])
    got = _kiln_run(m, {"x": x}, dim_range={"d0": [(1, 2, 4)], "d3": [(1, 4, 8)]})
    xg = x.reshape(2, 3, -1)
    want = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    s, b = (np.repeat(v, 6 // n) for _, v in params)
    np.testing.assert_allclose(got, want * s[:, None, None] + b[:, None, None], rtol=1e-4, atol=1e-5)


def test_shape_arithmetic_in_floats_folds():
    """MobileViT: Shape -> Cast(float) -> Div -> Ceil -> Mul -> Cast(int64)
    feeding a Reshape: Ceil of a known value is folded at import, so the
    Reshape's shape is known."""
    x = np.arange(2 * 6 * 5, dtype=np.float32).reshape(2, 6, 5)
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1, end=2),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["sf", "four"], ["q"]),
             helper.make_node("Ceil", ["q"], ["c"]),
             helper.make_node("Cast", ["c"], ["ci"], to=TensorProto.INT64),
             helper.make_node("Concat", ["minus1", "ci"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 6, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(np.array(4, np.float32), "four"),
                           onnx.numpy_helper.from_array(np.array([-1], np.int64), "minus1")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    got = _kiln_run(m, {"x": x}, dim_range={"b": [(1, 2, 4)]})
    np.testing.assert_array_equal(got, x.reshape(-1, 2))


def test_range_with_a_symbolic_start():
    """Funnel's relative positions: Range(-2 n, 2 n, 1) over a sequence length n
    (a Neg of a shape value, and a start known only at run time)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1, end=2),
             helper.make_node("Squeeze", ["s"], ["n"]),
             helper.make_node("Neg", ["n"], ["neg"]),
             helper.make_node("Mul", ["neg", "two"], ["start"]),
             helper.make_node("Mul", ["n", "two"], ["limit"]),
             helper.make_node("Range", ["start", "limit", "one"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=TensorProto.FLOAT)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(np.array(2, np.int64), "two"),
                           onnx.numpy_helper.from_array(np.array(1, np.int64), "one")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    s = session(kiln.onnx.parse(m, dim_range={"n": [(1, 4, 9)]}))
    for n in (1, 5, 9):
        np.testing.assert_array_equal(s({"x": np.zeros((1, n), np.float32)})["y"], np.arange(-2 * n, 2 * n))


def test_mod_of_shape_values():
    """Swin pads height and width to a multiple of its window, (w - W % w) % w,
    in shape arithmetic: a Mod of symbolic sizes stays an expression, so the
    Pad's pads are known for every size of the profile."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1, end=2),
             helper.make_node("Mod", ["s", "w"], ["m"]),
             helper.make_node("Sub", ["w", "m"], ["d"]),
             helper.make_node("Mod", ["d", "w"], ["p"]),
             helper.make_node("Concat", ["zeros", "p"], ["pads"], axis=0),
             helper.make_node("Pad", ["x", "pads"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, "n"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(np.array([4], np.int64), "w"),
                           onnx.numpy_helper.from_array(np.array([0, 0, 0], np.int64), "zeros")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    s = session(kiln.onnx.parse(m, dim_range={"n": [(1, 4, 13)]}))
    for n in (1, 4, 5, 8, 13):
        x = np.ones((2, n), np.float32)
        y = s({"x": x})["y"]
        np.testing.assert_array_equal(y, np.pad(x, [(0, 0), (0, (4 - n % 4) % 4)]))
