# Ported from TensorRT-LLM (examples/python_plugin/run_lookup.py), Copyright (c)
# NVIDIA CORPORATION & AFFILIATES, Apache License 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).  Changed: the import lines
# (tensorrt_llm -> kiln.compat.trtllm), and the .cuda()/device/stream lines so
# that a machine without a GPU runs it (on the CPU, under Triton's interpreter).
from pathlib import Path

import torch

from kiln.compat.trtllm import logger
from kiln.compat.trtllm._utils import (torch_dtype_to_str, torch_dtype_to_trt,
                                       trt_dtype_to_torch)
from kiln.compat.trtllm.runtime.session import Session, TensorInfo

import plugin_lib  # isort: skip

if __name__ == "__main__":

    def run_engine(dtype):
        output_dir = Path('tmp') / torch_dtype_to_str(dtype)

        engine_path = output_dir / "lookup.engine"

        with engine_path.open('rb') as f:
            session = Session.from_serialized_engine(f.read())

        # meta data
        batch_size = 10
        vocab_size = 1000
        n_embed = 1024

        # test data
        ## input index
        index_shape = (batch_size, )
        index_data = torch.randint(0,
                                   vocab_size,
                                   index_shape,
                                   dtype=torch.int32).to("cuda" if torch.cuda.is_available() else "cpu")
        weight_data = torch.rand(vocab_size, n_embed, dtype=dtype).to("cuda" if torch.cuda.is_available() else "cpu")

        inputs = {"x": index_data, "y": weight_data}

        output_info = session.infer_shapes([
            TensorInfo(name, torch_dtype_to_trt(tensor.dtype), tensor.shape)
            for name, tensor in inputs.items()
        ])
        logger.debug(f'output info {output_info}')
        outputs = {
            t.name: torch.empty(tuple(t.shape),
                                dtype=trt_dtype_to_torch(t.dtype),
                                device=index_data.device)
            for t in output_info
        }

        stream = torch.cuda.Stream() if torch.cuda.is_available() else None
        ok = session.run(inputs=inputs,
                         outputs=outputs,
                         stream=stream.cuda_stream if stream is not None else None)
        assert ok, 'Engine execution failed'

        embedding = torch.nn.Embedding.from_pretrained(weight_data)
        torch_out = embedding(index_data).to(torch.float32)
        trt_out = outputs['output']

        torch.testing.assert_close(trt_out, torch_out)

    run_engine(torch.bfloat16)
    run_engine(torch.float16)
    run_engine(torch.float32)
