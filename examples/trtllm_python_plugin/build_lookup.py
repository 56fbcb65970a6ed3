# Ported from TensorRT-LLM (examples/python_plugin/build_lookup.py), Copyright (c)
# NVIDIA CORPORATION & AFFILIATES, Apache License 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).  Changed: the import lines
# (tensorrt_llm -> kiln.compat.trtllm), and the .cuda() line so that a machine
# without a GPU runs it (on the CPU, under Triton's interpreter).
from pathlib import Path

import torch
from plugin_lib import LookUpPlugin

import kiln.compat.trtllm as tensorrt_llm
from kiln.compat.trtllm import Tensor
from kiln.compat.trtllm._utils import torch_dtype_to_str, torch_dtype_to_trt

if __name__ == "__main__":

    # meta data
    batch_size = 10
    vocab_size = 1000
    n_embed = 1024

    # test data
    ## input index
    index_shape = (batch_size, )
    index_data = torch.randint(0, vocab_size, index_shape,
                               dtype=torch.int32).to("cuda" if torch.cuda.is_available() else "cpu")

    def test(dtype):
        builder = tensorrt_llm.Builder()
        builder.strongly_typed = True
        network = builder.create_network()
        with tensorrt_llm.net_guard(network):
            x = Tensor(
                name="x",
                shape=index_shape,
                dtype=tensorrt_llm.str_dtype_to_trt("int32"),
            )
            y = Tensor(name="y",
                       shape=(vocab_size, n_embed),
                       dtype=torch_dtype_to_trt(dtype))

            def lookup(x, y):
                lookup_plugin = LookUpPlugin(False, True)
                return lookup_plugin(x, y)

            output = lookup(x, y)

            output.mark_output("output", torch_dtype_to_str(torch.float32))

        builder_config = builder.create_builder_config("float32")
        engine = builder.build_engine(network, builder_config)
        assert engine is not None

        output_dir = Path("tmp") / torch_dtype_to_str(dtype)
        output_dir.mkdir(parents=True, exist_ok=True)

        engine_path = output_dir / "lookup.engine"
        config_path = output_dir / "config.json"

        with engine_path.open("wb") as f:
            f.write(engine)
        builder.save_config(builder_config, str(config_path))

    test(torch.bfloat16)
    test(torch.float16)
    test(torch.float32)
