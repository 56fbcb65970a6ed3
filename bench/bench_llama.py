"""kiln.models.llama against transformers on the same device: prefill latency
and greedy decode tokens/s, random weights.  The peers (--peers): transformers
with eager attention, with SDPA attention, and with SDPA, a static cache and
torch.compile (generate's automatic compilation of the decode step, mode
reduce-overhead: the fast path people use), all in one run.

    PYTHONPATH=python KILN_BUILD_DIR=build-py python3 bench/bench_llama.py --shape tiny      # CPU
    python3 bench/bench_llama.py --shape 1b --dtype bfloat16 --batch 1 16                   # GPU
    python3 bench/bench_llama.py --arch qwen3 --shape 8b --batch 1 16 --graph              # another family

--arch picks the family (llama, qwen2, qwen3, mistral: the transformers
model class, and kiln.models.llama's engines for it), --shape a shape of
that family, built from a config with random weights (ARCHS):
  llama    tiny (hidden 64, 2 layers: the CPU, where kiln's plugins run under
           Triton's interpreter), 1b (Llama-3.2-1B: hidden 2048, 16 layers,
           32/8 heads, intermediate 8192, vocab 128256), 8b (Llama-3-8B:
           hidden 4096, 32 layers, 32/8 heads, intermediate 14336)
  qwen2    tiny, 1.5b (Qwen2.5-1.5B: hidden 1536, 28 layers, 12/2 heads,
           intermediate 8960, vocab 151936, tied, q/k/v biases), 7b
           (Qwen2.5-7B: hidden 3584, 28 layers, 28/4 heads, intermediate 18944)
  qwen3    tiny, 0.6b (Qwen3-0.6B: hidden 1024, 28 layers, 16/8 heads of 128,
           intermediate 3072, tied, q/k norms), 8b (Qwen3-8B: hidden 4096,
           36 layers, 32/8 heads of 128, intermediate 12288)
  mistral  tiny, 7b (Mistral-7B-v0.3: hidden 4096, 32 layers, 32/8 heads,
           intermediate 14336, vocab 32768, no sliding window)
--sliding-window N gives a mistral, qwen2 or qwen3 shape a window of N on
every layer (Mistral v0.1 had 4096), to measure the windowed attention.
Decode tokens/s counts decode steps only:
(generate(prompt, n) - generate(prompt, 1)) / (n - 1) per step, both
sides the same way.  kiln's decode step writes each layer's new K/V rows into
the cache in place (CacheWrite) and runs its plugins through Python (JIT)
unless --graph replays the step's kernels; --kiln jit-eager jit-graph
aot-graph ... puts several of those variants in one table.  --c-generate BINARY (with --aot)
also saves the engines and times examples/llama/generate.c on them: the
same greedy decode from C with no Python in the process (batch 1).
"""
import argparse
import os
import re
import subprocess
import tempfile
import time

TINY = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)
QWEN_ROPE = {"rope_type": "default", "rope_theta": 1000000.0}

SHAPES = {      # Llama's (bench_llama_tp.py and examples/llama/generate_tp.py read these too)
    "tiny": TINY,
    "1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
               num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True,
               rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192}, max_position_embeddings=131072),
    "8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=8,
               rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192}, max_position_embeddings=131072),
}

# {arch: (transformers config class name, model class name, {shape: config})}
ARCHS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", SHAPES),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {
        "tiny": dict(TINY, tie_word_embeddings=True),
        "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                     num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True,
                     rope_parameters=QWEN_ROPE, max_position_embeddings=32768),
        "7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                   num_attention_heads=28, num_key_value_heads=4, rope_parameters=QWEN_ROPE,
                   max_position_embeddings=32768),
    }),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {
        "tiny": dict(TINY, head_dim=16),
        "0.6b": dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                     num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                     rope_parameters=QWEN_ROPE, max_position_embeddings=40960),
        "8b": dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                   num_attention_heads=32, num_key_value_heads=8, head_dim=128, rope_parameters=QWEN_ROPE,
                   max_position_embeddings=40960),
    }),
    "mistral": ("MistralConfig", "MistralForCausalLM", {
        "tiny": dict(TINY, sliding_window=None),
        "7b": dict(vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, rope_parameters=QWEN_ROPE, sliding_window=None,
                   max_position_embeddings=32768),
    }),
}


def hf_config(arch, shape, sliding_window=None):
    """(config, model class) of transformers for --arch/--shape."""
    import transformers
    config_name, model_name, shapes = ARCHS[arch]
    kwargs = dict(shapes[shape])
    if sliding_window:
        if arch == "mistral":
            kwargs["sliding_window"] = sliding_window
        else:   # every layer windowed
            kwargs.update(use_sliding_window=True, sliding_window=sliding_window, max_window_layers=0)
    config = getattr(transformers, config_name)(attn_implementation="eager", **kwargs)
    return config, getattr(transformers, model_name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=ARCHS, default="llama", help="model family (default llama)")
    ap.add_argument("--shape", default="tiny", help="a shape of the family (see above; default tiny)")
    ap.add_argument("--sliding-window", type=int, default=None, metavar="N",
                    help="a sliding window of N keys on every layer (mistral, qwen2, qwen3)")
    ap.add_argument("--dtype", default=None, help="float32 | float16 | bfloat16 (default: bfloat16 on a GPU)")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1])
    ap.add_argument("--prompt", type=int, default=None, help="prompt tokens (default 128; 8 on the CPU)")
    ap.add_argument("--new-tokens", type=int, default=None, help="decode steps (default 128; 8 on the CPU)")
    ap.add_argument("--prefill", type=int, default=None, help="prefill length (default 2048; 16 on the CPU)")
    ap.add_argument("--aot", action="store_true", help="compile RMSNorm/Rotary/PrefillAttention ahead of time")
    ap.add_argument("--graph", action="store_true", help="kiln decode steps through a CUDA graph (GPU)")
    ap.add_argument("--c-generate", default=None, metavar="BINARY",
                    help="also time kiln_llama_generate (examples/llama/generate.c) on the saved AOT engines")
    ap.add_argument("--profile", action="store_true",
                    help="with --c-generate: print the per-op time of an eager C decode (KILN_PROFILE=1)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kiln", nargs="+", default=None, choices=["jit-eager", "jit-graph", "aot-eager", "aot-graph"],
                    help="kiln variants in one table: plugins JIT (Python) or AOT, decode eager or replayed from "
                         "a CUDA graph (default: the one --aot/--graph name)")
    ap.add_argument("--profile-step", action="store_true",
                    help="print the GPU kernels of the first kiln variant's decode (torch.profiler), by total time")
    ap.add_argument("--peers", nargs="+", default=["eager"], choices=["eager", "sdpa", "compile"],
                    help="transformers variants measured beside kiln (default: eager)")
    args = ap.parse_args()
    if args.shape not in ARCHS[args.arch][2]:
        ap.error(f"--arch {args.arch} has shapes {', '.join(ARCHS[args.arch][2])}, not {args.shape!r}")
    if args.sliding_window and args.arch == "llama":
        ap.error("--sliding-window: Llama has no sliding window (use --arch mistral, qwen2 or qwen3)")
    if args.c_generate and not (args.aot or any(v.startswith("aot") for v in args.kiln or [])):
        ap.error("--c-generate runs engines without Python: add --aot (or an aot --kiln variant)")

    import torch
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    from kiln.models import llama

    gpu = device.startswith("cuda")
    dtype_name = args.dtype or ("bfloat16" if gpu else "float32")
    dtype = getattr(torch, dtype_name)
    prompt = args.prompt or (128 if gpu else 8)
    new_tokens = args.new_tokens or (128 if gpu else 8)
    prefill_len = args.prefill or (2048 if gpu else 16)

    def sync():
        if gpu:
            torch.cuda.synchronize()

    def best_seconds(fn):
        fn()
        sync()
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
        return best

    torch.manual_seed(0)
    cfg, model_class = hf_config(args.arch, args.shape, args.sliding_window)
    with torch.device(device):
        hf = model_class(cfg).to(dtype).eval()
    hf.generation_config.eos_token_id = None
    variants = args.kiln or [f"{'aot' if args.aot else 'jit'}-{'graph' if args.graph else 'eager'}"]
    models, build_s = {}, {}
    for plugins in sorted({v.split("-")[0] for v in variants}):
        t0 = time.perf_counter()
        models[plugins] = llama.from_hf(hf, dtype=dtype_name, device=device, max_batch=max(args.batch),
                                        max_seq_len=max(prompt + new_tokens, prefill_len),
                                        prefer_aot=plugins == "aot")
        build_s[plugins] = time.perf_counter() - t0
    model = models["aot" if "aot" in models else "jit"]

    def set_attention(impl):
        if hasattr(hf, "set_attn_implementation"):
            hf.set_attn_implementation(impl)
        else:
            hf.config._attn_implementation = impl

    def hf_peer(peer):
        """(generate, logits) of one transformers variant."""
        attention = "eager" if peer == "eager" else "sdpa"
        extra = {"cache_implementation": "static"} if peer == "compile" else {}
        if peer == "compile" and not gpu:   # generate compiles on GPUs only unless told
            from transformers import CompileConfig
            config = CompileConfig()
            config._compile_all_devices = True
            extra["compile_config"] = config

        def generate(ids, n):
            set_attention(attention)
            with torch.no_grad():
                return hf.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0,
                                   attention_mask=torch.ones_like(ids), **extra)

        def logits(ids):
            set_attention(attention)
            with torch.no_grad():
                return hf(ids).logits
        return generate, logits

    def kiln_system(variant):
        plugins, decode = variant.split("-")
        m = models[plugins]
        return (f"kiln {plugins.upper()} {'graph' if decode == 'graph' else 'eager'}",
                lambda ids, n: m.generate(ids, n, cuda_graph=decode == "graph"), m.logits)

    systems = [kiln_system(v) for v in variants] + [(f"transformers {p}", *hf_peer(p)) for p in args.peers]
    kiln_generate = systems[0][1]
    rows = []
    for batch in args.batch:
        ids = torch.randint(0, cfg.vocab_size, (batch, prompt), device=device)
        long_ids = torch.randint(0, cfg.vocab_size, (1, prefill_len), device=device)
        want = kiln_generate(ids, new_tokens).cpu()
        for name, gen, logits in systems:
            one = best_seconds(lambda: gen(ids, 1))
            full = best_seconds(lambda: gen(ids, new_tokens))
            step = (full - one) / (new_tokens - 1)
            same = torch.equal(want, gen(ids, new_tokens).cpu())
            rows.append((batch, name, best_seconds(lambda: logits(long_ids)) * 1e3, batch / step, same))
    compiled = None
    if "compile" in args.peers:
        import torch._dynamo.utils as dynamo_utils
        compiled = dynamo_utils.counters["stats"]["unique_graphs"]

    if args.profile_step and gpu:
        profile_decode(systems[0], torch, cfg, prompt, new_tokens, device)

    c_row = None
    if args.c_generate:
        c_row = c_generate(args.c_generate, model, cfg, prompt, new_tokens, device, args.repeat, torch,
                           args.profile)

    where = torch.cuda.get_device_name() if gpu else "CPU (Triton interpreter)"
    window = f", sliding window {args.sliding_window}" if args.sliding_window else ""
    print(f"{args.arch} shape {args.shape}{window}, {dtype_name}, {where}, prompt {prompt}, {new_tokens} new tokens, "
          f"prefill {prefill_len} tokens (batch 1); kiln build "
          f"{', '.join(f'{k.upper()} {v:.1f} s' for k, v in build_s.items())}; {time.strftime('%Y-%m-%d')}")
    print(f"| batch | system | prefill ms | decode tok/s | decode steps/s | tokens equal to {systems[0][0]}'s |")
    print("|---|---|---|---|---|---|")
    for batch, name, prefill_ms, rate, same in rows:
        print(f"| {batch} | {name} | {prefill_ms:.2f} | {rate:,.1f} | {rate / batch:,.1f} | "
              f"{'yes' if same else 'NO'} |")
    if compiled is not None:
        print(f"torch.compile: {compiled} graphs compiled by dynamo (0 would mean the compile peer ran eager)")
    if c_row:
        print(f"kiln from C (generate.c, AOT engines, batch 1): graph {c_row[0]:.1f} decode steps/s, "
              f"eager {c_row[1]:.1f}; tokens equal to Python: {'yes' if c_row[2] else 'NO'}")


def profile_decode(system, torch, cfg, prompt, new_tokens, device):
    """Where a decode step's GPU time goes: the kernels of `new_tokens`
    steps at batch 1 (a CUDA graph's kernels are traced one by one), by
    total time, with the time per step."""
    from torch.profiler import ProfilerActivity, profile
    name, gen, _ = system
    ids = torch.randint(0, cfg.vocab_size, (1, prompt), device=device)
    gen(ids, new_tokens)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        gen(ids, new_tokens)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    events.sort(key=lambda e: -e.self_device_time_total)
    total = sum(e.self_device_time_total for e in events)
    print(f"{name}, batch 1, {new_tokens} new tokens (prefill included): GPU kernel time {total / 1e3:.2f} ms, "
          f"{total / new_tokens:.1f} µs per token")
    print("| kernel | calls | µs per token | share |")
    print("|---|---|---|---|")
    for e in events[:20]:
        print(f"| {e.key[:70]} | {e.count} | {e.self_device_time_total / new_tokens:.1f} | "
              f"{100 * e.self_device_time_total / total:.1f}% |")


def c_generate(binary, model, cfg, prompt, new_tokens, device, repeat, torch, profile):
    """(graph steps/s, eager steps/s, tokens equal to LlamaModel.generate)
    of generate.c on the saved engines, batch 1, best of `repeat` runs."""
    ids = torch.randint(0, cfg.vocab_size, (1, prompt), device=device)
    want = model.generate(ids, new_tokens)[0].tolist()
    rates, same = [], True
    with tempfile.TemporaryDirectory() as d:
        model.save(d)
        for extra in ([], ["--eager"]):
            best = 0.0
            for _ in range(repeat):
                r = subprocess.run([binary, d, "--new", str(new_tokens), *extra, *map(str, ids[0].tolist())],
                                   capture_output=True, text=True, timeout=600)
                if r.returncode:
                    raise RuntimeError(f"{binary} failed: {r.stderr[-2000:]}")
                same = same and [int(t) for t in r.stdout.split()] == want
                best = max(best, float(re.search(r"([0-9.]+) decode steps/s", r.stderr).group(1)))
            rates.append(best)
        if profile:
            r = subprocess.run([binary, d, "--new", str(new_tokens), "--eager", *map(str, ids[0].tolist())],
                               capture_output=True, text=True, timeout=600, env=dict(os.environ, KILN_PROFILE="1"))
            print(r.stderr)
    return rates[0], rates[1], same


if __name__ == "__main__":
    main()
