"""kiln.models.llama against transformers' LlamaForCausalLM (the implementation
users trust): tiny random-weight models on the CPU under Triton's
interpreter (on the GPU where there is one: Triton's interpreter is chosen
per process), float32 -- logits within 1e-3, greedy tokens identical for 20
steps -- and the attention plugins against torch's scaled_dot_product_attention.
Skipped when transformers is not installed (pip install transformers safetensors)."""
import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("transformers")
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

import kiln  # noqa: E402
from kiln.models import llama  # noqa: E402

from conftest import HAVE_GPU, run_workers, subprocess_env  # noqa: E402
from hf_reference import reference_generate, reference_logits, unsettle_norms_and_biases  # noqa: E402

LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}

# Tiny configurations covering what from_hf must honour.
CONFIGS = {
    # grouped-query (2 query heads per kv head), untied, default RoPE, 1 layer
    "gqa_1layer": dict(num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2),
    # 3 layers, one kv head for 4 query heads, tied embeddings, llama3 RoPE scaling
    # (original context 16 so that all three frequency bands occur at head_dim 16)
    "mqa_tied_llama3": dict(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
                            tie_word_embeddings=True, rope_parameters=LLAMA3_ROPE, max_position_embeddings=64),
    # plain multi-head, head_dim 32, another theta, linear scaling, biases, another eps
    "mha_linear_bias": dict(num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                            rope_parameters={"rope_type": "linear", "rope_theta": 1000.0, "factor": 2.0},
                            attention_bias=True, mlp_bias=True, rms_norm_eps=1e-5),
}

# Where the float32 tests run: Triton compiles real kernels in a process that
# sees a GPU, so there the kernels' tensors must live on it.
DEVICE = "cuda" if HAVE_GPU else "cpu"

MAX_SEQ = 40      # prompt + 20 new tokens fit; with decode_split=16 the cache spans 3 splits


def hf_model(name, seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, attn_implementation="eager",
                      **{"max_position_embeddings": 128, **CONFIGS[name]})
    return unsettle_norms_and_biases(LlamaForCausalLM(cfg).to(DEVICE).eval())


_built = {}


def kiln_model(name):
    """One kiln model per config for the whole module (building is the slow part)."""
    if name not in _built:
        hf = hf_model(name)
        _built[name] = (hf, llama.from_hf(hf, dtype="float32", device=DEVICE, max_batch=2, max_seq_len=MAX_SEQ,
                                          decode_split=16))
    return _built[name]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_transformers_at_every_shape(name):
    hf, model = kiln_model(name)
    torch.manual_seed(1)
    # One engine serves every batch and length of its profile.
    for batch, seq in [(1, 1), (1, 16), (2, 7), (2, 16)]:
        ids = torch.randint(0, 256, (batch, seq), device=DEVICE)
        got = model.logits(ids)
        want = reference_logits(hf, ids)
        assert got.shape == (batch, seq, 256) and got.dtype == torch.float32
        err = (got - want).abs().max().item()
        assert err < 1e-3, f"{name} batch {batch} seq {seq}: max |kiln - transformers| = {err}"


@pytest.mark.parametrize("name,batch,prompt", [("gqa_1layer", 1, 5), ("mqa_tied_llama3", 2, 11),
                                               ("mha_linear_bias", 2, 1)])
def test_greedy_tokens_match_transformers(name, batch, prompt):
    hf, model = kiln_model(name)
    torch.manual_seed(2)
    ids = torch.randint(0, 256, (batch, prompt), device=DEVICE)
    got, step_logits = model.generate(ids, 20, output_logits=True)
    want = reference_generate(hf, ids, 20)
    assert want.shape == (batch, prompt + 20)
    assert torch.equal(got, want), f"{name}:\nkiln         {got.tolist()}\ntransformers {want.tolist()}"
    # Greedy tokens of tiny random models are robust to small errors; the
    # logits of every decode step (cached keys and values, the split
    # attention) must also equal transformers' logits of the whole sequence.
    err = (step_logits - reference_logits(hf, want)[:, prompt - 1:-1]).abs().max().item()
    assert err < 1e-3, f"{name}: decode-step logits differ from transformers by {err}"
    # The cache is reused: a second, shorter generation from another prompt.
    ids2 = torch.randint(0, 256, (batch, 3), device=DEVICE)
    assert torch.equal(model.generate(ids2, 6), reference_generate(hf, ids2, 6))


def test_checkpoint_directory(tmp_path):
    pytest.importorskip("safetensors")
    hf = hf_model("mqa_tied_llama3", seed=3)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    assert json.loads((tmp_path / "config.json").read_text())["tie_word_embeddings"] is True
    model = llama.from_hf(tmp_path, device=DEVICE, max_batch=1, max_seq_len=16)
    ids = torch.randint(0, 256, (1, 9), device=DEVICE)
    err = (model.logits(ids) - reference_logits(hf, ids)).abs().max().item()
    assert err < 1e-3
    assert torch.equal(model.generate(ids, 4), reference_generate(hf, ids, 4))


def test_save_and_load_in_a_fresh_process(tmp_path):
    hf, model = kiln_model("gqa_1layer")
    model.save(tmp_path / "saved")
    ids = torch.randint(0, 256, (2, 6), device=DEVICE)
    torch.save(ids, tmp_path / "ids.pt")
    # A process that never built the model: the engines name the plugins' module.
    code = f"""if True:
        import torch
        from kiln.models import llama
        m = llama.load({str(tmp_path / "saved")!r}, device={DEVICE!r})
        ids = torch.load({str(tmp_path / "ids.pt")!r})
        torch.save((m.logits(ids), m.generate(ids, 5)), {str(tmp_path / "out.pt")!r})
    """
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    logits, tokens = torch.load(tmp_path / "out.pt")
    assert torch.equal(logits, model.logits(ids))
    assert torch.equal(tokens, reference_generate(hf, ids, 5))
    with pytest.raises(FileNotFoundError, match="kiln_llama.json"):
        llama.load(tmp_path)
    # A directory saved in format 4 (before the other families: attention_bias
    # for all four projections, no family fields) still loads: its engines
    # are format 5's, its spec reads as Llama's.
    meta = json.loads((tmp_path / "saved" / "kiln_llama.json").read_text())
    assert meta["format"] == 5
    spec = meta["spec"]
    spec["attention_bias"] = spec.pop("qkv_bias")
    for new in ("o_bias", "qk_norm", "sliding_window", "sliding_layers", "model_type"):
        spec.pop(new)
    (tmp_path / "saved" / "kiln_llama.json").write_text(json.dumps(dict(meta, format=4)))
    old = llama.load(tmp_path / "saved", device=DEVICE)
    assert old.spec == model.spec
    assert torch.equal(old.logits(ids), model.logits(ids))
    # The decode engine writes each layer's new key and value rows into the
    # caller's cache in place: no copies between steps.
    r = subprocess.run([sys.executable, "-m", "kiln.cli", "inspect", str(tmp_path / "saved" / "decode.engine")],
                       env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (r.stdout.count("llama::RotaryQKVCache v1 [writes out3 into in3] [writes out4 into in4]")
            == hf.config.num_hidden_layers), r.stdout


@pytest.mark.parametrize("name", list(CONFIGS))
def test_rope_frequencies_equal_transformers(name):
    hf = hf_model(name)
    spec = llama.LlamaSpec.from_hf_config(hf.config)
    inv_freq, scaling = spec.inv_freq()
    rotary = hf.model.rotary_emb
    assert scaling == rotary.attention_scaling
    assert torch.equal(inv_freq, rotary.inv_freq.float().cpu())


def test_unsupported_configs_are_refused_by_name():
    base = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4)
    with pytest.raises(ValueError, match="rope type 'yarn'"):
        llama.LlamaSpec.from_hf_config(dict(base, rope_parameters={"rope_type": "yarn", "rope_theta": 1e4,
                                                                   "factor": 2.0}))
    with pytest.raises(ValueError, match="hidden_act 'gelu'"):
        llama.LlamaSpec.from_hf_config(dict(base, hidden_act="gelu"))
    with pytest.raises(ValueError, match="model_type 'qwen2_moe' is not supported"):
        llama.LlamaSpec.from_hf_config(dict(base, model_type="qwen2_moe"))


def test_inputs_outside_the_profile_are_refused():
    _, model = kiln_model("gqa_1layer")
    with pytest.raises(ValueError, match="batch 3"):
        model.logits(torch.zeros((3, 4), dtype=torch.long))
    with pytest.raises(ValueError, match="max_seq_len 40"):
        model.generate(torch.zeros((1, 30), dtype=torch.long), 11)
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        model.logits(torch.tensor([[1, 256]]))
    if DEVICE == "cpu":
        with pytest.raises(ValueError, match="cuda_graph needs a CUDA model"):
            model.generate(torch.zeros((1, 3), dtype=torch.long), 2, cuda_graph=True)


def sdpa(q, k, v, causal):
    """torch's attention on [batch, heads, seq, head_dim], kv heads repeated."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)


@pytest.mark.parametrize("heads,kv_heads,head_dim,seq", [(4, 2, 16, 37), (3, 1, 24, 70), (2, 2, 64, 5)])
def test_prefill_attention_plugin_matches_sdpa(heads, kv_heads, head_dim, seq):
    torch.manual_seed(4)
    batch = 2
    q = torch.randn(batch, seq, heads * head_dim, device=DEVICE)
    k, v = torch.randn(2, batch, seq, kv_heads * head_dim, device=DEVICE)
    got = llama.PrefillAttention(heads, kv_heads, head_dim)(q, k, v)      # eager call: forward on torch tensors

    def split(x, n):
        return x.view(batch, seq, n, head_dim).transpose(1, 2)
    want = sdpa(split(q, heads), split(k, kv_heads), split(v, kv_heads), causal=True)
    assert (got - want.transpose(1, 2).reshape(batch, seq, -1)).abs().max() < 1e-4


@pytest.mark.parametrize("split,max_seq,lengths", [
    (16, 80, [0, 1, 16, 17, 79]),       # empty cache, one split, split edges, a full cache
    (128, 300, [70, 129, 299]),         # splits of several key tiles (BLOCK_N 64)
    (16, 600, [255, 256, 257, 599]),    # more splits than the combine merges at once (16): 2 and 3 rounds
])
def test_decode_attention_plugin_matches_sdpa_with_ragged_lengths(split, max_seq, lengths):
    torch.manual_seed(5)
    heads, kv_heads, head_dim, layers, layer = 4, 2, 16, 2, 1
    lengths = torch.tensor(lengths, dtype=torch.int32, device=DEVICE)
    batch = len(lengths)
    q = torch.randn(batch, 1, heads * head_dim, device=DEVICE)
    k_new, v_new = torch.randn(2, batch, 1, kv_heads * head_dim, device=DEVICE)
    k_cache, v_cache = torch.randn(2, batch, layers, max_seq, kv_heads * head_dim, device=DEVICE)
    got = llama.DecodeAttention(heads, kv_heads, head_dim, layer=layer, split=split)(
        q, k_new, v_new, k_cache, v_cache, lengths)
    for b, n in enumerate(lengths.tolist()):
        keys = torch.cat([k_cache[b, layer, :n], k_new[b]]).view(n + 1, kv_heads, head_dim).transpose(0, 1)
        values = torch.cat([v_cache[b, layer, :n], v_new[b]]).view(n + 1, kv_heads, head_dim).transpose(0, 1)
        want = sdpa(q[b].view(1, heads, head_dim).transpose(0, 1)[None], keys[None], values[None], causal=False)
        assert (got[b, 0] - want[0].transpose(0, 1).reshape(-1)).abs().max() < 1e-5, f"sequence {b} (length {n})"


def test_aot_engines_hold_compiled_kernels():
    """prefer_aot: every plugin (RMSNorm, AddRMSNorm, RotaryQKV, SiluMul,
    PrefillAttention, DecodeAttention with its workspace, RotaryQKVCache) is compiled for sm_90 at
    build time (no GPU needed) into kiln::TritonAOT layers: no Python plugin
    is left in either engine.  In a process
    of its own, without Triton's interpreter: kiln's AOT compile of a kernel
    that calls Triton's @jit library functions (tl.sum, tl.max) fails under
    TRITON_INTERPRET=1."""
    code = """if True:
        import torch, kiln
        from transformers import LlamaConfig, LlamaForCausalLM
        from kiln.models.llama import engines, weights
        torch.manual_seed(0)
        hf = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                                          num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2))
        engine = bytes(engines.build_prefill(weights.from_model(hf), torch.bfloat16, 2, 32, prefer_aot=True))
        plugins = kiln.runtime.load_engine(engine).plugins()
        print(sorted(set(p[1] for p in plugins)), len(plugins))
        for kernel in (b"rms_norm_kernel", b"rotary_qkv_kernel", b"prefill_attention_kernel"):
            assert kernel in engine, kernel
        decode = bytes(engines.build_decode(weights.from_model(hf), torch.bfloat16, 2, 64, split=16,
                                            prefer_aot=True))
        plugins = kiln.runtime.load_engine(decode).plugins()
        print("decode", sorted(set(p[1] for p in plugins)), len(plugins))
        for kernel in (b"decode_split_kernel", b"decode_combine_kernel",
                       b"add_rms_norm_kernel", b"rotary_qkv_kernel", b"silu_mul_kernel"):
            assert kernel in decode, kernel
        print("ok")
    """
    env = dict(subprocess_env(), TRITON_INTERPRET="0", KILN_AOT_TARGET="sm_90")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    # the first norm, 2 add+norms, 1 rotary (q, k and the v split), 1 attention, 1 silu*up; all compiled
    assert "['TritonAOT'] 6" in r.stdout and "ok" in r.stdout, r.stdout
    # decode: the first norm, 2 add+norms, 1 rotary writing the cache (q, k, v), 1 attention, 1 silu*up
    assert "decode ['TritonAOT'] 6" in r.stdout, r.stdout


def gpu_model(prefer_aot):
    """A 4-layer bfloat16 model on the GPU, its kiln model and a prompt
    [2, 100]: random weights whose greedy decoding is known to follow
    transformers for 32 steps (random bfloat16 models often have near-ties)."""
    torch.manual_seed(6)
    cfg = LlamaConfig(vocab_size=1024, hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=2, attn_implementation="eager",
                      rope_parameters={**LLAMA3_ROPE, "original_max_position_embeddings": 64},
                      max_position_embeddings=512)
    hf = LlamaForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
    model = llama.from_hf(hf, dtype="bfloat16", device="cuda", max_batch=2, max_seq_len=256, decode_split=64,
                          prefer_aot=prefer_aot)
    return hf, model, torch.randint(0, 1024, (2, 100), device="cuda")


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU kiln and torch can use")
@pytest.mark.parametrize("prefer_aot", [False, True])
def test_gpu_bfloat16_matches_transformers(prefer_aot):
    hf, model, ids = gpu_model(prefer_aot)
    got = model.logits(ids).float()
    want = reference_logits(hf, ids).float()
    torch.cuda.synchronize()
    # bfloat16 keeps 8 bits of mantissa: compare relative to the logits' scale.
    assert (got - want).abs().max() <= 0.05 * want.abs().max()
    want_tokens = reference_generate(hf, ids, 32)
    assert torch.equal(model.generate(ids, 32), want_tokens)
    assert torch.equal(model.generate(ids, 32, cuda_graph=True), want_tokens)


def _generate_binary():
    """examples/llama/generate.c, built next to the Python extension."""
    for path in (os.environ.get("KILN_LLAMA_GENERATE"),
                 os.path.join(os.environ.get("KILN_BUILD_DIR", ""), "kiln_llama_generate")):
        if path and os.path.isfile(path):
            return path
    return None


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU kiln and torch can use")
def test_gpu_generation_from_c_matches_python(tmp_path):
    """Engines built with prefer_aot=True, saved, and run by the C program
    (no Python in its process): the same tokens as LlamaModel.generate and
    as transformers, with the decode step replayed from a CUDA graph and
    run eagerly."""
    binary = _generate_binary()
    if binary is None:
        pytest.skip("kiln_llama_generate is not built (set KILN_BUILD_DIR or KILN_LLAMA_GENERATE)")
    hf, model, ids = gpu_model(prefer_aot=True)
    ids = ids[:1]
    for session in (model.prefill_session, model.decode_session):
        assert {p[:2] for p in session.engine.plugins()} == {("kiln", "TritonAOT")}
    model.save(tmp_path)
    want = model.generate(ids, 32)
    for extra in ([], ["--eager"]):
        r = subprocess.run([binary, str(tmp_path), "--new", "32", *extra, *map(str, ids[0].tolist())],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert [int(t) for t in r.stdout.split()] == want[0].tolist(), (extra, r.stdout, r.stderr)
    assert torch.equal(want, reference_generate(hf, ids, 32))


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU kiln and torch can use")
def test_gpu_1b_shape_bfloat16_matches_transformers():
    """The Llama-3.2-1B shape (hidden 2048, 16 layers, 32/8 heads,
    intermediate 8192, vocabulary 128256, tied embeddings) in bfloat16,
    random weights, against transformers on the same GPU: logits within
    bfloat16 tolerance, and greedy decoding that agrees for 32 steps.

    Both sides round the logits to bfloat16, whose spacing near the top
    logit (~16 here) is 0.125: among 128256 random logits the best two are
    often exactly equal, and then the two implementations may break the tie
    differently (seen on the H200: transformers' margin of its choice over
    kiln's was 0.0).  So the check is teacher-forced on transformers' tokens:
    at each of the 32 steps kiln's greedy choice must be transformers' or
    within one bfloat16 spacing of it in transformers' own logits, most
    steps must agree exactly (56 of 64 did on the H200: the other 8 were
    such ties), and kiln's free-running generate must equal
    transformers' up to the first such tie.  The embedding matrix is scaled
    by 4 so that the logits are less flat than default init makes them."""
    torch.manual_seed(11)
    cfg = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                      num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True,
                      rope_parameters={**LLAMA3_ROPE, "factor": 32.0, "original_max_position_embeddings": 8192},
                      max_position_embeddings=131072, attn_implementation="sdpa")
    with torch.device("cuda"):
        hf = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    with torch.no_grad():
        hf.model.embed_tokens.weight.mul_(4)
    model = llama.from_hf(hf, dtype="bfloat16", device="cuda", max_batch=2, max_seq_len=256)
    ids = torch.randint(0, cfg.vocab_size, (2, 64), device="cuda")
    got = model.logits(ids).float()
    want = reference_logits(hf, ids).float()
    assert (got - want).abs().max() <= 0.05 * want.abs().max(), (got - want).abs().max()
    want_tokens = reference_generate(hf, ids, 32)
    n = ids.shape[1]
    target = want_tokens[:, n:]                                      # transformers' 32 choices
    with torch.no_grad():
        ref = hf(want_tokens[:, :-1]).logits[:, n - 1:].float()     # its logits at each step
    chosen = model.logits(want_tokens[:, :-1])[:, n - 1:].argmax(-1)   # kiln's choices on the same prefixes
    margin = ref.gather(-1, target[..., None]) - ref.gather(-1, chosen[..., None])
    spacing = 2.0 ** (torch.floor(torch.log2(ref.amax(-1, keepdim=True))) - 7)   # bfloat16 spacing at the top
    assert (margin <= spacing).all(), [(b, t, float(margin[b, t])) for b, t in (margin > spacing).nonzero().tolist()]
    agree = chosen == target
    assert agree.float().mean() >= 0.75, agree                       # 0.875 on the H200, 2026-11-29
    got_tokens = model.generate(ids, 32, cuda_graph=True)
    for b in range(ids.shape[0]):
        ties = (~agree[b]).nonzero()
        upto = n + (int(ties[0]) if len(ties) else 32)               # up to the first tie (either choice is right)
        assert torch.equal(got_tokens[b, :upto], want_tokens[b, :upto]), b


# ---- tensor parallelism ---------------------------------------------------------------

def test_tensor_parallel_ranks_hold_their_part(tmp_path):
    """tp_size=2: each rank's engines record (rank, 2) and hold about half of
    the weights (the norms are whole on both); from a checkpoint directory a
    rank reads only its rows/columns.  Running needs two GPUs (below); on the
    CPU a group of two is refused when the session is made, by name."""
    from kiln.models.llama import engines, weights
    torch.manual_seed(3)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    hf = LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    full = kiln.runtime.load_engine(bytes(engines.build_decode(weights.from_model(hf), torch.float32, 2, 32)))
    assert full.parallel == (0, 1)
    norms = 4 * 64 * (2 * cfg.num_hidden_layers + 1)
    for source in (weights.from_model(hf), weights.from_directory(tmp_path)):
        parts = []
        for rank in range(2):
            tp = llama.TensorParallel(source.spec, 2, rank)
            e = kiln.runtime.load_engine(bytes(engines.build_decode(source, torch.float32, 2, 32, tp=tp)))
            assert e.parallel == (rank, 2)
            shapes = {name: shape for name, _, _, shape in e.io()}
            assert shapes["k_cache"][-1] == 16 and shapes["logits"][-1] == 256   # 1 of 2 kv heads; every logit
            parts.append(e.weight_bytes)
        assert parts[0] == parts[1]
        # half of everything but the norms, plus the norms, a zero embedding row and the vocabulary bounds
        assert abs(parts[0] - ((full.weight_bytes - norms) / 2 + norms)) <= 4 * 64 + 256, (parts, full.weight_bytes)
    with pytest.raises(ValueError, match="tp_size 3 does not divide num_attention_heads 4"):
        llama.TensorParallel(weights.from_model(hf).spec, 3, 0)
    with pytest.raises(kiln.Error, match="world size 2"):
        llama.from_hf(hf, dtype="float32", device="cpu", max_batch=1, max_seq_len=16, tp_size=2, rank=0,
                      comm=(b"\0" * 128, b"\0" * 128))


@pytest.mark.skipif(not (HAVE_GPU and torch.cuda.device_count() >= 2), reason="needs 2 GPUs")
def test_gpu_tensor_parallel_2_matches_1(tmp_path):
    """Two processes, one per GPU, each building its rank's engines: TP=2
    logits equal TP=1's within bfloat16 tolerance and 32 greedy tokens are
    identical, eagerly and with the decode step replayed from a CUDA graph
    (tests/python/llama_tp_worker.py)."""
    worker = os.path.join(os.path.dirname(__file__), "llama_tp_worker.py")
    env = dict(subprocess_env(), KILN_NCCL_TIMEOUT_S="120")   # a stuck collective fails by name, before the deadline
    codes, outs = run_workers([[sys.executable, worker, str(r), "2", str(tmp_path)] for r in range(2)], env, 420)
    assert codes == [0, 0], "\n".join(outs)
    assert all(f"RANK {r}: ok" in outs[r] for r in range(2)), "\n".join(outs)
