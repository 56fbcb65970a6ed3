"""LlamaModel: a prefill engine and a decode engine, plus the KV cache and the
greedy loop that drive them."""
import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch

import kiln

from . import weights as _weights
from .engines import build_decode, build_prefill, torch_dtype
from .config import LlamaSpec
from .tensor_parallel import TensorParallel

_CONFIG = "kiln_llama.json"
_ENGINES = ("prefill.engine", "decode.engine")
_FORMAT = 5   # 2: the decode engine writes the KV cache in place; 3: engines output next_token;
              # 4: fused q/k/v and gate/up projections (RotaryQKV, one-input SiluMul), the
              # cache written by RotaryQKVCache; 5: the spec names its family (model_type) and
              # has qkv_bias/o_bias (for 4's attention_bias), qk_norm, sliding_window, sliding_layers
_READS = (4, 5)   # formats load() reads: 4's engines are 5's, its spec converts (LlamaSpec.from_dict)


def from_hf(model, *, dtype="float32", device=None, max_batch=8, max_seq_len=2048, decode_split=64,
            prefer_aot=False, tp_size=1, rank=0, comm=None):
    """Build kiln engines for a transformers LlamaForCausalLM,
    MistralForCausalLM, Qwen2ForCausalLM (Qwen2, Qwen2.5) or
    Qwen3ForCausalLM, or for a checkpoint directory of one (a path holding
    config.json and *.safetensors, as save_pretrained writes it).  Settings
    the engines do not implement are refused by name (config.py: MoE
    variants, rope types other than default/linear/llama3, activations
    other than SiLU); sliding windows are implemented.

    dtype: the engines' float type ("float32", "float16", "bfloat16").
    device: "cpu", "cuda", "cuda:N"; None: kiln's default (the GPU when kiln
    sees one).  max_batch, max_seq_len: the profile -- every batch size in
    [1, max_batch] and every total length (prompt + generated) up to
    max_seq_len runs on the same engines.  decode_split: cache rows per
    program of the decode attention's split kernel (a power of two >= 16).  prefer_aot: compile
    every plugin (RMSNorm, AddRMSNorm, RotaryQKV, SiluMul, PrefillAttention,
    DecodeAttention, RotaryQKVCache) ahead of time into kiln::TritonAOT layers: the engines then
    run on a GPU only and need no Python (examples/llama/generate.c runs
    them from C).  False (the default) runs every plugin's forward (JIT).

    tp_size, rank: tensor parallelism over tp_size GPUs, one process per
    rank (tensor_parallel.py says what each holds): this process builds
    rank `rank`'s engines, holding only its part of the weights (read alone
    from a checkpoint directory), and joins the ranks' communicators --
    comm: two ids (prefill's, decode's; kiln.distributed.comm_id_new on
    rank 0, shared), or None to make and share them through
    torch.distributed (initialised, e.g. under torchrun).  Every rank then
    calls logits / generate with the same inputs and gets the same
    result."""
    if isinstance(model, (str, os.PathLike)):
        w = _weights.from_directory(model)
    else:
        w = _weights.from_model(model)
    if int(max_batch) < 1 or int(max_seq_len) < 2:
        raise ValueError(f"kiln.models.llama: max_batch {max_batch} must be >= 1 and max_seq_len {max_seq_len} >= 2")
    tdtype = torch_dtype(dtype)
    tp = TensorParallel(w.spec, tp_size, rank)
    prefill = build_prefill(w, tdtype, int(max_batch), int(max_seq_len), prefer_aot=prefer_aot, tp=tp)
    decode = build_decode(w, tdtype, int(max_batch), int(max_seq_len), split=int(decode_split),
                          prefer_aot=prefer_aot, tp=tp)
    return LlamaModel(w.spec, prefill, decode, tdtype, device, int(max_batch), int(max_seq_len), tp=tp, comm=comm)


def load(directory, *, device=None, comm=None):
    """A LlamaModel saved by LlamaModel.save: the engine files are mapped, so
    the weights are used in place, not copied.  A tensor-parallel rank's
    directory loads as that rank (comm as for from_hf)."""
    directory = Path(os.fspath(directory))
    try:
        with open(directory / _CONFIG) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"kiln.models.llama.load: {directory} has no {_CONFIG} "
                                "(not a directory written by LlamaModel.save)") from None
    if meta.get("format") not in _READS:
        raise ValueError(f"kiln.models.llama.load: {directory / _CONFIG} has format {meta.get('format')!r}, "
                         f"this kiln reads formats {', '.join(map(str, _READS))}")
    try:
        spec = LlamaSpec.from_dict(meta["spec"])
        engines = [directory / name for name in _ENGINES]
        tp = TensorParallel(spec, int(meta.get("tp_size", 1)), int(meta.get("rank", 0)))
        return LlamaModel(spec, *engines, torch_dtype(meta["dtype"]), device, int(meta["max_batch"]),
                          int(meta["max_seq_len"]), tp=tp, comm=comm)
    except (KeyError, TypeError) as e:
        raise ValueError(f"kiln.models.llama.load: {directory / _CONFIG} is malformed: {e!r}") from None


class LlamaModel:
    """Runs the engines of build.py.  logits(ids): one prefill; generate(ids,
    n): a prefill, then one decode step per new token with a KV cache."""

    def __init__(self, spec, prefill_engine, decode_engine, dtype, device, max_batch, max_seq_len, tp=None,
                 comm=None):
        """prefill_engine, decode_engine: serialized engines (kept for save())
        or engine file paths (mapped).  tp: this rank's TensorParallel; comm:
        see from_hf."""
        self.spec = spec
        self.tp = tp or TensorParallel(spec)
        self.dtype = dtype
        self.max_batch = max_batch
        self.max_seq_len = max_seq_len
        self._engines = (prefill_engine, decode_engine)
        self.prefill_session = kiln.Session.from_engine(kiln.runtime.load_engine(prefill_engine), device=device)
        self.decode_session = kiln.Session.from_engine(kiln.runtime.load_engine(decode_engine), device=device)
        self.device = torch.device(self.prefill_session.device)
        if self.tp.size > 1:
            self._join(comm)
        self._cache = None
        self._graph_stream = None     # generate(cuda_graph=True)'s stream, made on first use

    def _join(self, comm):
        """Both sessions join their communicators (one each: an id is one
        NCCL communicator)."""
        if comm is None:
            from kiln.distributed import comm_from_torch
            comm = [comm_from_torch()[2] for _ in range(2)]
        ids = list(comm)
        if len(ids) != 2:
            raise ValueError("kiln.models.llama: comm must be two communicator ids (prefill's, decode's)")
        for session, comm_id in zip((self.prefill_session, self.decode_session), ids):
            session.set_communicator(self.tp.rank, self.tp.size, comm_id)

    def save(self, directory):
        """Write the two engines and a small JSON config into directory
        (created if needed); load(directory) reads them back."""
        directory = Path(os.fspath(directory))
        directory.mkdir(parents=True, exist_ok=True)
        for engine, name in zip(self._engines, _ENGINES):
            target = directory / name
            if isinstance(engine, Path):
                if engine.resolve() != target.resolve():
                    shutil.copyfile(engine, target)
            else:
                engine.save(str(target))
        meta = {"format": _FORMAT, "spec": dataclasses.asdict(self.spec), "dtype": kiln.dtype_name(self.dtype),
                "max_batch": self.max_batch, "max_seq_len": self.max_seq_len, "tp_size": self.tp.size,
                "rank": self.tp.rank}
        with open(directory / _CONFIG, "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")

    # --- running -------------------------------------------------------------
    def _stream(self):
        return torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None

    def _ids(self, input_ids):
        ids = torch.as_tensor(input_ids)
        if ids.dim() == 1:
            ids = ids[None]
        if ids.dim() != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"kiln.models.llama: input_ids must be integer token ids [batch, seq], "
                             f"got {ids.dtype} {tuple(ids.shape)}")
        batch, seq = ids.shape
        if not 1 <= batch <= self.max_batch:
            raise ValueError(f"kiln.models.llama: batch {batch} is outside this model's profile [1, {self.max_batch}]")
        if not 1 <= seq <= self.max_seq_len:
            raise ValueError(f"kiln.models.llama: {seq} tokens is outside this model's profile "
                             f"[1, {self.max_seq_len}]")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.spec.vocab_size):
            raise ValueError(f"kiln.models.llama: token ids must be in [0, {self.spec.vocab_size})")
        return ids.to(device=self.device, dtype=torch.int32).contiguous()

    def _prefill(self, ids, positions):
        positions = torch.as_tensor(positions, dtype=torch.int32, device=self.device)
        return self.prefill_session.run({"input_ids": ids, "logits_positions": positions}, stream=self._stream())

    def logits(self, input_ids):
        """[batch, seq, vocab] logits of a prefill without cache (a torch tensor
        on the model's device, in the model's dtype)."""
        ids = self._ids(input_ids)
        return self._prefill(ids, torch.arange(ids.shape[1]))["logits"]

    def _kv_cache(self):
        """The cache, allocated once at the profile's largest size:
        (k, v), each [max_batch, n_layers, max_seq_len, kv_width].  Batch is
        the outer axis so that cache[:batch] is contiguous (the engine input)."""
        if self._cache is None:
            s = self.spec
            shape = (self.max_batch, s.num_layers, self.max_seq_len, self.tp.kv_width)
            self._cache = tuple(torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(2))
        return self._cache

    def generate(self, input_ids, max_new_tokens, output_logits=False, cuda_graph=False):
        """Greedy generation: [batch, seq + max_new_tokens] token ids (int64),
        like transformers' generate(do_sample=False) without an end token.
        All sequences of the batch have the same prompt length (no padding).
        output_logits: also return the logits each new token was chosen from,
        [batch, max_new_tokens, vocab] (transformers' output_logits).
        cuda_graph (CUDA only): run the decode engine through a CUDA graph,
        captured at the first step and replayed after (session.run_graph);
        the step's buffers are the same every step, so it stays valid."""
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"kiln.models.llama: cuda_graph needs a CUDA model, this one runs on {self.device}")
        if not cuda_graph:
            return self._generate(input_ids, max_new_tokens, output_logits, False)
        # A graph is captured on a stream other than the default one.
        if self._graph_stream is None:
            self._graph_stream = torch.cuda.Stream(self.device)
        caller = torch.cuda.current_stream(self.device)
        self._graph_stream.wait_stream(caller)
        with torch.cuda.stream(self._graph_stream):
            result = self._generate(input_ids, max_new_tokens, output_logits, True)
        caller.wait_stream(self._graph_stream)
        return result

    def _generate(self, input_ids, max_new_tokens, output_logits, graph):
        ids = self._ids(input_ids)
        batch, prompt = ids.shape
        max_new_tokens = int(max_new_tokens)
        if max_new_tokens < 0 or prompt + max_new_tokens > self.max_seq_len:
            raise ValueError(f"kiln.models.llama: {prompt} prompt tokens + {max_new_tokens} new ones exceed "
                             f"max_seq_len {self.max_seq_len}")
        tokens = [ids.long()]
        chosen_from = []
        if max_new_tokens == 0:
            empty = torch.empty((batch, 0, self.spec.vocab_size), dtype=self.dtype, device=self.device)
            return (tokens[0], empty) if output_logits else tokens[0]
        k_cache, v_cache = self._kv_cache()
        out = self._prefill(ids, [prompt - 1])       # logits of the last position only
        # The prompt's keys and values go into the cache once (prompt rows only).
        for i in range(self.spec.num_layers):
            k_cache[:batch, i, :prompt] = out[f"k_{i}"]
            v_cache[:batch, i, :prompt] = out[f"v_{i}"]
        token = out["next_token"][:, -1]                # the engine's argmax: int32 [batch]
        tokens.append(token[:, None].long())
        chosen_from.append(out["logits"][:, -1])

        stream = self._stream()
        lengths = torch.full((batch,), prompt, dtype=torch.int32, device=self.device)
        step_in = {"input_ids": torch.empty((batch, 1), dtype=torch.int32, device=self.device), "lengths": lengths,
                   "k_cache": k_cache[:batch], "v_cache": v_cache[:batch]}
        step_out = {name: torch.empty(info.shape, dtype=kiln.to_torch_dtype(info.dtype), device=self.device)
                    for name, info in self._decode_output_shapes(batch).items()}
        for _ in range(max_new_tokens - 1):
            step_in["input_ids"].copy_(token[:, None])
            # The step writes each layer's new key and value row into k_cache /
            # v_cache itself (RotaryQKVCache, outputs written in place).
            if graph:
                self.decode_session.run_graph(step_in, step_out, stream)
            else:
                self.decode_session.run(step_in, step_out, stream=stream)
            lengths += 1
            token = step_out["next_token"][:, -1]
            tokens.append(token[:, None].long())
            if output_logits:
                chosen_from.append(step_out["logits"][:, -1].clone())
        tokens = torch.cat(tokens, dim=1)
        return (tokens, torch.stack(chosen_from, dim=1)) if output_logits else tokens

    def _decode_output_shapes(self, batch):
        s = self.spec
        infos = self.decode_session.infer_shapes([
            kiln.TensorInfo("input_ids", "int32", (batch, 1)),
            kiln.TensorInfo("lengths", "int32", (batch,)),
            kiln.TensorInfo("k_cache", self.dtype, (batch, s.num_layers, self.max_seq_len, self.tp.kv_width)),
            kiln.TensorInfo("v_cache", self.dtype, (batch, s.num_layers, self.max_seq_len, self.tp.kv_width)),
        ])
        return {info.name: info for info in infos}
