"""Models exported to ONNX, run by kiln and by onnxruntime (CPU), and on a
GPU by kiln (eager and graph replay) beside torch eager, side by side in one
run.

    python3 bench/bench_onnx_models.py [--device cpu|cuda] [--batch 1 8] [--seq 128] [--size base|small]
                                       [--models gpt2 bert llama resnet50]

Models (random weights, torch.manual_seed(0), torch.onnx.export opset 17,
dynamic batch and sequence): GPT-2 (base: 12 layers, hidden 768), BERT
(base: 12 layers, hidden 768), Llama (12 layers, hidden 768, 12/4 heads,
intermediate 2048), all from transformers; `--size small` uses 2-layer
hidden-256 versions (a quick check).  resnet50 (not in the default list):
bench/resnet.py's ResNet-50 on 224x224 images, dynamic batch (`--seq` and
`--size` do not apply).  Each engine is built once for batch 1..max and sequence
1..seq and serves every row of the table.  Times are the median of several
runs after warm-up; outputs are compared with onnxruntime's / torch's.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def configs(size):
    import transformers as t
    big = size == "base"
    layers, hidden, heads, inter = (12, 768, 12, 3072) if big else (2, 256, 4, 1024)
    return {
        "gpt2": lambda: t.GPT2LMHeadModel(t.GPT2Config(n_layer=layers, n_embd=hidden, n_head=heads, vocab_size=32000,
                                                       n_positions=1024)),
        "bert": lambda: t.BertModel(t.BertConfig(num_hidden_layers=layers, hidden_size=hidden,
                                                 num_attention_heads=heads, intermediate_size=inter, vocab_size=32000)),
        "llama": lambda: t.LlamaForCausalLM(t.LlamaConfig(num_hidden_layers=layers, hidden_size=hidden,
                                                          num_attention_heads=heads, num_key_value_heads=heads // 3 or 1,
                                                          intermediate_size=inter * 2 // 3, vocab_size=32000,
                                                          attn_implementation="eager")),
    }


def export(name, args, path):
    """Export model `name` to `path`: (the torch module, the dim_range for
    kiln.onnx.parse, make_feed(batch) -> {input name: numpy array} in the
    module's argument order)."""
    import torch
    torch.manual_seed(0)
    top = max(args.batch)
    if name == "resnet50":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from resnet import ResNet50
        model = ResNet50().eval()
        torch.onnx.export(model, (torch.randn(2, 3, 224, 224),), path, input_names=["image"], output_names=["out"],
                          dynamic_axes={"image": {0: "batch"}, "out": {0: "batch"}}, opset_version=17, dynamo=False)
        return model, {"batch": [(1, top, top)]}, lambda b: {
            "image": np.random.default_rng(b).standard_normal((b, 3, 224, 224)).astype(np.float32)}

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, mask):
            r = self.m(input_ids=ids, attention_mask=mask)
            return r.logits if hasattr(r, "logits") else r.last_hidden_state

    model = Wrap(configs(args.size)[name]().eval()).eval()
    ids0 = torch.randint(0, 32000, (2, 8))
    axes = {0: "batch", 1: "seq"}
    torch.onnx.export(model, (ids0, torch.ones_like(ids0)), path, input_names=["input_ids", "attention_mask"],
                      output_names=["out"], dynamic_axes={"input_ids": axes, "attention_mask": axes, "out": axes},
                      opset_version=17, dynamo=False)

    def make_feed(b):
        ids = np.random.default_rng(b).integers(0, 32000, (b, args.seq)).astype(np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    return model, {"batch": [(1, top, top)], "seq": [(1, args.seq, args.seq)]}, make_feed


def median_seconds(fn, runs=7):
    fn()
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--size", choices=["base", "small"], default="base")
    ap.add_argument("--models", nargs="+", default=["gpt2", "bert", "llama"],
                    choices=["gpt2", "bert", "llama", "resnet50"])
    args = ap.parse_args()

    import torch
    import kiln
    import kiln.onnx
    gpu = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
    if not gpu:
        import onnxruntime as ort
    tmp = tempfile.mkdtemp()
    rows = []
    for name in args.models:
        path = os.path.join(tmp, f"{name}.onnx")
        model, dim_range, make_feed = export(name, args, path)
        t0 = time.perf_counter()
        net = kiln.onnx.parse(path, dim_range=dim_range)
        engine = kiln.Builder().build_engine(net)
        build_s = time.perf_counter() - t0
        dev = "cuda" if gpu else "cpu"
        sess = kiln.Session.from_serialized_engine(engine, device=dev)
        if not gpu:
            so = ort.SessionOptions()
            ref = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        for b in args.batch:
            feed = make_feed(b)
            if not gpu:
                want = ref.run(None, feed)[0]
                got = sess(feed)["out"]
                err = float(np.abs(got - want).max())
                t_kiln = median_seconds(lambda: sess(feed))
                t_ref = median_seconds(lambda: ref.run(None, feed))
                rows.append((name, b, t_kiln * 1e3, t_ref * 1e3, t_ref / t_kiln, err, build_s))
            else:
                feed = {k: torch.from_numpy(v).cuda() for k, v in feed.items()}   # the forward's order
                model_gpu = model.cuda()
                with torch.no_grad():
                    want = model_gpu(*feed.values())
                out = {"out": torch.empty_like(want)}
                stream = torch.cuda.Stream()

                def eager():
                    sess.run(feed, out, stream.cuda_stream)
                    stream.synchronize()

                def graph():
                    sess.run_graph(feed, out, stream.cuda_stream)
                    stream.synchronize()

                def torch_eager():
                    with torch.no_grad():
                        model_gpu(*feed.values())
                    torch.cuda.synchronize()
                eager()
                err = float((out["out"] - want).abs().max())
                t_e, t_g, t_t = median_seconds(eager), median_seconds(graph), median_seconds(torch_eager)
                rows.append((name, b, t_e * 1e3, t_g * 1e3, t_t * 1e3, t_t / t_g, err, build_s))
    import platform
    when = time.strftime("%Y-%m-%d")
    if not gpu:
        print(f"kiln vs onnxruntime {ort.__version__} on the CPU ({os.cpu_count()} CPUs, {platform.processor() or 'x86_64'}), "
              f"{args.size} models, sequence {args.seq}, float32; {when}")
        print("| model | batch | kiln ms | onnxruntime ms | kiln speed / ort | max abs diff | kiln build s |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f}x | {r[5]:.1e} | {r[6]:.1f} |")
    else:
        print(f"kiln CUDA vs torch eager on {torch.cuda.get_device_name()}, {args.size} models, sequence {args.seq}, "
              f"float32; {when}")
        print("| model | batch | kiln eager ms | kiln graph ms | torch eager ms | torch / kiln graph | max abs diff | build s |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.2f}x | {r[6]:.1e} | {r[7]:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
