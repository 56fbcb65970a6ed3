"""The seed: its plugin code verbatim (imports changed) built and run, and the
example in examples/python_plugin end to end (build, then run in fresh processes)."""
import subprocess
import sys

import pytest
import torch

import kiln
from kiln.compat import trtllm as tensorrt_llm
from kiln.compat.trtllm import Tensor, torch_dtype_to_str, torch_dtype_to_trt
from kiln.compat.trtllm.runtime.session import Session, TensorInfo

from conftest import EXAMPLE, HAVE_GPU, subprocess_env


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_seed_plugin_verbatim(dtype, tmp_path):
    from seed_plugin import LookUpPlugin
    vocab_size, n_embed = 10, 6
    index_shape = (5,)
    device = "cuda" if HAVE_GPU else "cpu"

    # The seed's network code (its `LookUpPlugin(False)` lacks the second
    # argument the class requires; on the CPU the interpreter needs torch
    # tensors, hence use_torch_tensor=True there).
    builder = tensorrt_llm.Builder()
    network = builder.create_network()
    with tensorrt_llm.net_guard(network):
        x = Tensor(name='x',
                   shape=index_shape,
                   dtype=tensorrt_llm.str_dtype_to_trt('int32'))
        y = Tensor(name='y',
                   shape=(vocab_size, n_embed),
                   dtype=torch_dtype_to_trt(dtype))

        def lookup(x, y):
            lookup_plugin = LookUpPlugin(not HAVE_GPU, False)
            return lookup_plugin(x, y)

        output = lookup(x, y)
        output.mark_output('output', torch_dtype_to_str(dtype))
    engine = builder.build_engine(network, builder.create_builder_config(precision=torch_dtype_to_str(dtype)))
    engine_path = tmp_path / "lookup.engine"
    with engine_path.open('wb') as f:
        f.write(engine)

    with engine_path.open('rb') as f:
        session = Session.from_serialized_engine(f.read(), device=device)
    index = torch.tensor([3, 0, 9, 3, 1], dtype=torch.int32, device=device)
    table = torch.randn(vocab_size, n_embed).to(dtype).to(device)
    info = session.infer_shapes([TensorInfo('x', tensorrt_llm.str_dtype_to_trt('int32'), index_shape),
                                 TensorInfo('y', torch_dtype_to_trt(dtype), (vocab_size, n_embed))])
    out = torch.empty(info[0].shape, dtype=tensorrt_llm.trt_dtype_to_torch(info[0].dtype), device=device)
    assert session.run(inputs={'x': index, 'y': table}, outputs={'output': out})
    if HAVE_GPU:
        torch.cuda.synchronize()
    assert torch.equal(out, torch.nn.functional.embedding(index.long(), table))


def test_example_end_to_end(tmp_path):
    env = subprocess_env()
    out = str(tmp_path / "tmp")
    build = subprocess.run([sys.executable, "build_lookup.py", "--out", out, "--vocab", "20", "--hidden", "24"],
                           cwd=EXAMPLE, env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    for name in ("float32", "float16", "bfloat16"):
        assert (tmp_path / "tmp" / name / "lookup.engine").stat().st_size > 0
        assert (tmp_path / "tmp" / name / "config.json").exists()
    run = subprocess.run([sys.executable, "run_lookup.py", "--out", out, "--tokens", "7"],
                         cwd=EXAMPLE, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [l for l in run.stdout.splitlines() if l.split() and l.split()[0] in ("float32", "float16", "bfloat16")]
    assert len(lines) == 3 and all(l.rstrip().endswith("OK") for l in lines), run.stdout


def test_compat_names():
    from kiln.compat import trtllm
    for name in ("trtllm_plugin", "PluginBase", "SymTensor", "TensorWrapper", "convert_to_torch_tensor",
                 "Builder", "Tensor", "net_guard", "str_dtype_to_trt", "torch_dtype_to_trt", "torch_dtype_to_str",
                 "trt_dtype_to_torch", "Session", "TensorInfo"):
        assert hasattr(trtllm, name), name
    assert trtllm.str_dtype_to_trt("float16") == kiln.float16 == torch.float16
    assert trtllm.trt_dtype_to_torch(trtllm.torch_dtype_to_trt(torch.bfloat16)) is torch.bfloat16
    assert trtllm.torch_dtype_to_str(torch.int32) == "int32"
    assert trtllm.runtime.Session is kiln.Session
