"""Architectures users bring, exported from torch / transformers to ONNX and
run by kiln on the CPU, compared with onnxruntime and torch (the models and
the comparison are in onnx_model_zoo.py, which as a script prints the table
of docs/onnx-models.md).

The default set is representative and fast (every architecture family:
encoders, decoders with rotary / ALiBi / learned positions, seq2seq, vision
CNNs and transformers, audio); KILN_TEST_MODELS=all runs every model at
opsets 17 and 18.  A model whose failure has a known reason outside kiln's
importer (an exporter bug that onnxruntime shares, an op being added on
another branch) is an expected failure with that reason."""
import os

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")

import onnx_model_zoo as zoo  # noqa: E402

# The exporter warns about every traced Python branch: noise here.
pytestmark = pytest.mark.filterwarnings("ignore")

ALL = os.environ.get("KILN_TEST_MODELS", "") == "all"
# The default set also runs these at opset 18 (ReduceMean's axes and Split's
# sizes become inputs, LayerNormalization and Pad change).
OPSET18 = {"roberta", "mistral", "resnet", "whisper-encoder"}


def _cases():
    for spec in zoo.MODELS:
        if not (ALL or spec.default):
            continue
        for opset in (17, 18):
            if opset == 18 and not (ALL or spec.name in OPSET18):
                continue
            yield pytest.param(spec.name, opset, id=f"{spec.name}-opset{opset}")


@pytest.mark.parametrize("name,opset", list(_cases()))
def test_model_matches_onnxruntime(tmp_path, name, opset):
    spec = zoo.BY_NAME[name]
    r = zoo.check(spec, str(tmp_path), opset)
    if r["stage"] != "ok" and spec.expect and spec.expect_stage == r["stage"]:
        pytest.xfail(f"{spec.expect}: {r['error'][:200]}")
    assert r["stage"] == "ok", f"{name} opset {opset} failed at {r['stage']}: {r['error']}\n{r.get('trace', '')}"
    assert r["err_ort"] <= zoo.TOL and r["err_torch"] <= zoo.TOL, r
