"""Build look-up engines (float32, float16, bfloat16) with the Python plugin.

    python build_lookup.py [--out tmp] [--vocab 32] [--hidden 48]

writes tmp/<dtype>/lookup.engine and tmp/<dtype>/config.json.  The engine
stores the plugin's state and its shape rule (as expressions); running it
needs plugin_lib imported but no Python for shapes.
"""
import argparse
from collections import OrderedDict
from pathlib import Path

import plugin_lib  # noqa: F401  (registers the plugins; picks the Triton mode)
from plugin_lib import LookUpPlugin

import torch

from kiln.compat.trtllm import (Builder, Tensor, net_guard, str_dtype_to_trt, torch_dtype_to_str,
                                torch_dtype_to_trt)

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def build_engine(dtype, out_dir, vocab_size, n_embed, max_tokens):
    builder = Builder()
    network = builder.create_network()
    index_shape = (-1,)
    with net_guard(network):
        x = Tensor(name='x',
                   shape=index_shape,
                   dtype=str_dtype_to_trt('int32'),
                   dim_range=OrderedDict([('num_tokens', [(1, max(1, max_tokens // 2), max_tokens)])]))
        y = Tensor(name='y',
                   shape=(vocab_size, n_embed),
                   dtype=torch_dtype_to_trt(dtype))

        def lookup(x, y):
            lookup_plugin = LookUpPlugin(False, False)
            return lookup_plugin(x, y)

        output = lookup(x, y)
        output.mark_output('output', torch_dtype_to_str(dtype))

    config = builder.create_builder_config(precision=torch_dtype_to_str(dtype))
    engine = builder.build_engine(network, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine_path = out_dir / "lookup.engine"
    with engine_path.open('wb') as f:
        f.write(engine)
    builder.save_config(config, out_dir / "config.json")
    return engine_path, len(engine)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tmp", help="output directory (default: tmp)")
    ap.add_argument("--vocab", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    for dtype in DTYPES:
        path, size = build_engine(dtype, Path(args.out) / torch_dtype_to_str(dtype), args.vocab, args.hidden,
                                  args.max_tokens)
        print(f"built {path} ({size} bytes)")


if __name__ == "__main__":
    main()
