"""kiln's versions of the two TensorRT-LLM test helpers (tests/unittest/utils/
util.py there) that tests/python/trtllm_port imports as `utils.util`: build a
network into a Session, and run it with outputs allocated from the inferred
shapes.  Written for kiln; only the names and call signatures follow
TensorRT-LLM's."""
import torch

from kiln.compat.trtllm import TensorInfo, torch_dtype_to_trt, trt_dtype_to_torch
from kiln.compat.trtllm.runtime.session import Session


def create_session(builder, network, precision="float32", int8=False, opt_level=None, memory_pool_limit=None,
                   optimization_profiles=(), quant_mode=None):
    """An engine built from network, loaded into a Session on the default torch device."""
    config = builder.create_builder_config(precision=precision)
    engine = builder.build_engine(network, config)
    assert engine is not None, "Failed to build engine"
    device = torch.empty(0).device
    return Session.from_serialized_engine(engine, device=str(device))


def run_session(session, inputs, outputs={}, override_shapes={}, override_types={}):  # noqa: B006
    """Run with the given inputs ({name: torch tensor}); outputs not given are
    allocated from the shapes the engine infers.  Returns {name: output}."""
    infos = [TensorInfo(name, torch_dtype_to_trt(override_types.get(name, t.dtype)),
                        tuple(override_shapes.get(name, t.shape))) for name, t in inputs.items()]
    result = dict(outputs)
    device = next(iter(inputs.values())).device
    for info in session.infer_shapes(infos):
        if info.name not in result:
            result[info.name] = torch.empty(tuple(info.shape), dtype=trt_dtype_to_torch(info.dtype), device=device)
    stream = torch.cuda.current_stream().cuda_stream if device.type == "cuda" else None
    session.run(inputs, result, stream)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result
