"""Architectures users bring, exported to ONNX and run by kiln: small
random-weight models (transformers configs, 2 layers, small hidden sizes,
torch.manual_seed(0); no downloads) and plain torch modules, exported with
torch.onnx.export (TorchScript exporter, dynamic batch and sequence axes),
imported with kiln.onnx.parse, run on kiln's CPU backend and compared with
onnxruntime (CPUExecutionProvider) and torch on the same inputs.

Used by test_onnx_models.py (pytest) and as a script, which prints the
coverage table of docs/onnx-models.md:

    PYTHONPATH=python KILN_BUILD_DIR=build/py python3 tests/python/onnx_model_zoo.py [--all] [-k name] [--opset 18]

Each entry of MODELS says how to build the module, what inputs it takes
(text: input_ids and attention_mask over batch × seq; image: pixel_values
over batch; audio: samples over batch × seq) and whether it is in the
default (CI) set.
"""
import argparse
import os
import sys
import tempfile
import time
import traceback

import numpy as np

VOCAB = 128
TOL = 1e-4          # max abs error against onnxruntime / torch, after scaling by the output's magnitude


# Known failures whose cause is outside kiln's importer.
ORT_FAILS = dict(expect="the TorchScript exporter writes a graph onnxruntime cannot run either",
                 expect_stage="ort-fails")


class Spec:
    def __init__(self, name, build, kind="text", default=True, opset=17, mask=True, left_pad=True, image=32,
                 channels=3, fixed_seq=None, note="", reinit=False, expect=None, expect_stage="import"):
        # default: in the CI set (known failures and the slowest models are not)
        self.name, self.build, self.kind, self.default, self.opset = name, build, kind, default and not expect, opset
        self.mask, self.left_pad, self.image, self.channels = mask, left_pad, image, channels
        self.fixed_seq, self.note, self.reinit = fixed_seq, note, reinit
        # a known failure: its reason and the stage it fails at
        self.expect, self.expect_stage = expect, expect_stage


def _t():
    import transformers
    return transformers


def _lm(cls_name, cfg_name, **kw):
    def build():
        t = _t()
        base = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                    vocab_size=VOCAB, max_position_embeddings=128)
        base.update(kw)
        return getattr(t, cls_name)(getattr(t, cfg_name)(**base, attn_implementation="eager"))
    return build


def _encoder(cls_name, cfg_name, **kw):
    return _lm(cls_name, cfg_name, **kw)


def _image(cls_name, cfg_name, **kw):
    def build():
        t = _t()
        return getattr(t, cls_name)(getattr(t, cfg_name)(**kw))
    return build


# ---- plain torch modules ------------------------------------------------------

def _mlp():
    import torch
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32), torch.nn.SiLU(),
                               torch.nn.LayerNorm(32), torch.nn.Linear(32, 8))


def _cnn():
    import torch
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), nn.BatchNorm2d(16), nn.Hardswish(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def _torch_encoder():
    """A transformer encoder layer of torch.nn (no transformers)."""
    import torch

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 32)
            self.enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True,
                                                                                   dropout=0.0), 2,
                                                   enable_nested_tensor=False)

        def forward(self, ids):
            return self.enc(self.emb(ids))
    return M()


def _sdpa_block():
    """Pre-norm attention + SiLU MLP written with torch.nn.functional
    (scaled_dot_product_attention, causal)."""
    import torch
    F = torch.nn.functional

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 32)
            self.qkv, self.o = torch.nn.Linear(32, 96), torch.nn.Linear(32, 32)
            self.n1, self.g = torch.nn.LayerNorm(32), torch.nn.Parameter(torch.rand(32) + 0.5)
            self.up, self.down = torch.nn.Linear(32, 64), torch.nn.Linear(64, 32)

        def forward(self, ids):
            x = self.emb(ids)
            b, s, _ = x.shape
            q, k, v = self.qkv(self.n1(x)).view(b, s, 3, 4, 8).permute(2, 0, 3, 1, 4).unbind(0)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, s, 32)
            x = x + self.o(a)
            h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.g
            return x + self.down(F.silu(self.up(h)))
    return M()


def _whisper_encoder():
    t = _t()
    cfg = t.WhisperConfig(encoder_layers=2, decoder_layers=2, d_model=64, encoder_attention_heads=4,
                          decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=16,
                          max_source_positions=32, vocab_size=VOCAB, pad_token_id=0,
                          bos_token_id=1, eos_token_id=1, decoder_start_token_id=1)
    return t.WhisperModel(cfg).get_encoder()


def _whisper_model():
    t = _t()
    return t.WhisperModel(t.WhisperConfig(encoder_layers=2, decoder_layers=2, d_model=64, encoder_attention_heads=4,
                                          decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                                          num_mel_bins=16, max_source_positions=32, vocab_size=VOCAB, pad_token_id=0,
                                          bos_token_id=1, eos_token_id=1, decoder_start_token_id=1))


def _decoder_of(cls_name, cfg_name, **kw):
    build = _encoder(cls_name, cfg_name, **kw)

    def decoder():
        return build().get_decoder()
    decoder.cls_name = cls_name + " decoder"
    return decoder


def _vit_like(cls_name, cfg_name, **kw):
    return _image(cls_name, cfg_name, **{**dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                                intermediate_size=128, image_size=32, patch_size=8), **kw})


def _audio(cls_name, cfg_name, **kw):
    return _image(cls_name, cfg_name, **{**dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                                intermediate_size=128, conv_dim=(32, 32), conv_stride=(5, 2),
                                                conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                                                num_conv_pos_embedding_groups=4), **kw})


def _seq2seq(cls_name, cfg_name, **kw):
    return _encoder(cls_name, cfg_name, **{**dict(encoder_layers=2, decoder_layers=2, d_model=64,
                                                  encoder_attention_heads=4, decoder_attention_heads=4,
                                                  encoder_ffn_dim=128, decoder_ffn_dim=128), **kw})


def _image_spec(name, build, **kw):
    return Spec(name, build, kind="image", **kw)


MODELS = [
    # ---- plain torch
    Spec("torch-mlp", _mlp, kind="vector"),
    Spec("torch-cnn", _cnn, kind="image", image=16),
    Spec("torch-sdpa-block", _sdpa_block, mask=False),
    Spec("torch-transformer-encoder", _torch_encoder, mask=False, **ORT_FAILS),
    # ---- encoders (right-padded masks)
    Spec("distilbert", _encoder("DistilBertModel", "DistilBertConfig", n_layers=2, dim=64, n_heads=4, hidden_dim=128),
         left_pad=False),
    Spec("roberta", _encoder("RobertaModel", "RobertaConfig", max_position_embeddings=130), left_pad=False),
    Spec("xlm-roberta", _encoder("XLMRobertaModel", "XLMRobertaConfig", max_position_embeddings=130), left_pad=False,
         default=False),
    Spec("albert", _encoder("AlbertModel", "AlbertConfig", embedding_size=32), left_pad=False),
    Spec("electra", _encoder("ElectraModel", "ElectraConfig", embedding_size=32), left_pad=False),
    Spec("deberta-v2", _encoder("DebertaV2Model", "DebertaV2Config", relative_attention=True, position_buckets=32,
                                pos_att_type=["p2c", "c2p"]), left_pad=False),
    Spec("mpnet", _encoder("MPNetModel", "MPNetConfig", max_position_embeddings=130), left_pad=False),
    Spec("squeezebert", _encoder("SqueezeBertModel", "SqueezeBertConfig", embedding_size=64, q_groups=2, k_groups=2,
                                 v_groups=2, post_attention_groups=2, intermediate_groups=2, output_groups=2),
         left_pad=False),
    Spec("mobilebert", _encoder("MobileBertModel", "MobileBertConfig", embedding_size=32, intra_bottleneck_size=32,
                                true_hidden_size=32, num_feedforward_networks=2), left_pad=False, reinit=True),
    Spec("convbert", _encoder("ConvBertModel", "ConvBertConfig", embedding_size=64), left_pad=False),
    Spec("funnel", _image("FunnelBaseModel", "FunnelConfig", block_sizes=[1, 1], d_model=64, n_head=4, d_head=16,
                          d_inner=128, vocab_size=VOCAB), left_pad=False, **ORT_FAILS),
    Spec("t5-encoder", _encoder("T5EncoderModel", "T5Config", num_layers=2, d_model=64, num_heads=4, d_kv=16,
                                d_ff=128), left_pad=False),
    Spec("clip-text", _encoder("CLIPTextModel", "CLIPTextConfig", projection_dim=32, max_position_embeddings=77),
         left_pad=False),
    Spec("siglip-text", _encoder("SiglipTextModel", "SiglipTextConfig", max_position_embeddings=64), mask=False),
    # ---- encoder-decoder (input_ids, attention_mask, decoder_input_ids)
    Spec("bart", _seq2seq("BartModel", "BartConfig"), kind="seq2seq", left_pad=False),
    Spec("marian", _seq2seq("MarianModel", "MarianConfig", pad_token_id=0, decoder_start_token_id=0),
         kind="seq2seq", left_pad=False, default=False),
    Spec("t5", _encoder("T5Model", "T5Config", num_layers=2, d_model=64, num_heads=4, d_kv=16, d_ff=128),
         kind="seq2seq", left_pad=False),
    # ---- decoders (causal LMs, left-padded masks)
    Spec("mistral", _lm("MistralForCausalLM", "MistralConfig", num_key_value_heads=2)),
    Spec("qwen2", _lm("Qwen2ForCausalLM", "Qwen2Config", num_key_value_heads=2)),
    Spec("qwen3", _lm("Qwen3ForCausalLM", "Qwen3Config", num_key_value_heads=2, head_dim=16)),
    Spec("phi", _lm("PhiForCausalLM", "PhiConfig", partial_rotary_factor=0.5)),
    Spec("phi3", _lm("Phi3ForCausalLM", "Phi3Config", num_key_value_heads=2, pad_token_id=0)),
    Spec("gemma", _lm("GemmaForCausalLM", "GemmaConfig", num_key_value_heads=1, head_dim=16)),
    Spec("gemma2", _lm("Gemma2ForCausalLM", "Gemma2Config", num_key_value_heads=2, head_dim=16, sliding_window=8)),
    Spec("stablelm", _lm("StableLmForCausalLM", "StableLmConfig", num_key_value_heads=2), default=False),
    Spec("olmo", _lm("OlmoForCausalLM", "OlmoConfig", num_key_value_heads=2), default=False),
    Spec("starcoder2", _lm("Starcoder2ForCausalLM", "Starcoder2Config", num_key_value_heads=2), default=False),
    Spec("cohere", _lm("CohereForCausalLM", "CohereConfig", num_key_value_heads=2), **ORT_FAILS),
    Spec("gpt-neox", _lm("GPTNeoXForCausalLM", "GPTNeoXConfig")),
    Spec("gpt-j", _lm("GPTJForCausalLM", "GPTJConfig", n_layer=2, n_embd=64, n_head=4, rotary_dim=8, n_positions=128)),
    Spec("codegen", _lm("CodeGenForCausalLM", "CodeGenConfig", n_layer=2, n_embd=64, n_head=4, rotary_dim=8,
                        n_positions=128, n_ctx=128)),
    Spec("gpt-bigcode", _lm("GPTBigCodeForCausalLM", "GPTBigCodeConfig", n_layer=2, n_embd=64, n_head=4,
                            n_positions=128, multi_query=True)),
    Spec("opt", _lm("OPTForCausalLM", "OPTConfig", ffn_dim=128, word_embed_proj_dim=64, pad_token_id=1)),
    Spec("falcon", _lm("FalconForCausalLM", "FalconConfig", new_decoder_architecture=False, multi_query=True)),
    Spec("bloom", _lm("BloomForCausalLM", "BloomConfig", n_layer=2, n_head=4)),
    Spec("mpt", _lm("MptForCausalLM", "MptConfig", n_layers=2, d_model=64, n_heads=4, max_seq_len=128)),
    # ---- one decoding step with a KV cache (past keys/values in, logits and present keys/values out)
    Spec("mistral-decode", _lm("MistralForCausalLM", "MistralConfig", num_key_value_heads=2), kind="decode"),
    Spec("qwen2-decode", _lm("Qwen2ForCausalLM", "Qwen2Config", num_key_value_heads=2), kind="decode", default=False),
    Spec("gpt-neox-decode", _lm("GPTNeoXForCausalLM", "GPTNeoXConfig"), kind="decode"),
    Spec("phi3-decode", _lm("Phi3ForCausalLM", "Phi3Config", num_key_value_heads=2, pad_token_id=0), kind="decode",
         default=False),
    # ---- a decoder stack over given encoder states (the decoder half of an encoder-decoder, no cache)
    Spec("t5-decoder", _decoder_of("T5Model", "T5Config", num_layers=2, d_model=64, num_heads=4, d_kv=16, d_ff=128),
         kind="cross"),
    Spec("bart-decoder", _decoder_of("BartModel", "BartConfig", encoder_layers=2, decoder_layers=2, d_model=64,
                                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                     decoder_ffn_dim=128), kind="cross"),
    Spec("whisper", _whisper_model, kind="mel2seq"),
    # ---- vision transformers (pixel_values, dynamic batch)
    _image_spec("vit", _vit_like("ViTModel", "ViTConfig")),
    _image_spec("deit", _vit_like("DeiTModel", "DeiTConfig"), default=False),
    _image_spec("clip-vision", _vit_like("CLIPVisionModel", "CLIPVisionConfig")),
    _image_spec("siglip-vision", _vit_like("SiglipVisionModel", "SiglipVisionConfig")),
    _image_spec("swin", _image("SwinModel", "SwinConfig", image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
                               num_heads=[2, 2], window_size=4)),
    _image_spec("segformer", _image("SegformerModel", "SegformerConfig", num_encoder_blocks=2, depths=[1, 1],
                                    sr_ratios=[2, 1], hidden_sizes=[16, 32], num_attention_heads=[1, 2],
                                    mlp_ratios=[2, 2], patch_sizes=[7, 3], strides=[4, 2])),
    _image_spec("levit", _image("LevitModel", "LevitConfig", image_size=32, hidden_sizes=[32, 48, 64],
                                num_attention_heads=[1, 2, 2], depths=[1, 1, 1], key_dim=[8, 8, 8]), reinit=True),
    _image_spec("beit", _vit_like("BeitModel", "BeitConfig", use_relative_position_bias=True)),
    _image_spec("dinov2", _vit_like("Dinov2Model", "Dinov2Config", mlp_ratio=2)),
    _image_spec("yolos", _vit_like("YolosModel", "YolosConfig", image_size=[32, 32], num_detection_tokens=4)),
    _image_spec("dpt", _vit_like("DPTModel", "DPTConfig", num_hidden_layers=4, backbone_out_indices=[0, 1, 2, 3])),
    _image_spec("mobilevit", _image("MobileViTModel", "MobileViTConfig", image_size=32, hidden_sizes=[16, 24, 32],
                                    neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64]), reinit=True),
    # ---- CNNs (transformers' weights are re-drawn where they leave the output near zero)
    _image_spec("resnet", _image("ResNetModel", "ResNetConfig", embedding_size=16, hidden_sizes=[16, 32],
                                 depths=[1, 1], layer_type="basic")),
    _image_spec("convnext", _image("ConvNextModel", "ConvNextConfig", num_stages=2, hidden_sizes=[16, 32],
                                   depths=[1, 1])),
    _image_spec("convnext-v2", _image("ConvNextV2Model", "ConvNextV2Config", num_stages=2, hidden_sizes=[16, 32],
                                      depths=[1, 1]), default=False),
    _image_spec("regnet", _image("RegNetModel", "RegNetConfig", embedding_size=16, hidden_sizes=[16, 32],
                                 depths=[1, 1], groups_width=8)),
    _image_spec("poolformer", _image("PoolFormerModel", "PoolFormerConfig", hidden_sizes=[16, 32, 32, 32],
                                     depths=[1, 1, 1, 1]), reinit=True),
    _image_spec("mobilenet-v1", _image("MobileNetV1Model", "MobileNetV1Config", image_size=32, depth_multiplier=0.25),
                reinit=True, default=False),
    _image_spec("mobilenet-v2", _image("MobileNetV2Model", "MobileNetV2Config", image_size=32, depth_multiplier=0.25),
                reinit=True, default=False),
    _image_spec("efficientnet", _image("EfficientNetModel", "EfficientNetConfig", image_size=32,
                                       width_coefficient=0.25, depth_coefficient=0.25, hidden_dim=320),
                reinit=True, default=False),
    _image_spec("bit", _image("BitModel", "BitConfig", embedding_size=32, hidden_sizes=[32, 32, 32, 32],
                              num_groups=4, depths=[1, 1, 1, 1]), default=False),
    # ---- CNNs over any image size (dynamic height and width: SAME pads, pools and strides as expressions)
    Spec("torch-cnn-any-size", _cnn, kind="image-hw"),
    Spec("resnet-any-size", _image("ResNetModel", "ResNetConfig", embedding_size=16, hidden_sizes=[16, 32],
                                   depths=[1, 1], layer_type="basic"), kind="image-hw"),
    Spec("convnext-any-size", _image("ConvNextModel", "ConvNextConfig", num_stages=2, hidden_sizes=[16, 32],
                                     depths=[1, 1]), kind="image-hw"),
    Spec("segformer-any-size", _image("SegformerModel", "SegformerConfig", num_encoder_blocks=2, depths=[1, 1],
                                      sr_ratios=[2, 1], hidden_sizes=[16, 32], num_attention_heads=[1, 2],
                                      mlp_ratios=[2, 2], patch_sizes=[7, 3], strides=[4, 2]), kind="image-hw",
         default=False),
    # ---- audio (raw samples over batch x samples; Whisper: log-mel frames)
    Spec("wav2vec2", _audio("Wav2Vec2Model", "Wav2Vec2Config"), kind="audio"),
    Spec("hubert", _audio("HubertModel", "HubertConfig"), kind="audio"),
    Spec("wavlm", _audio("WavLMModel", "WavLMConfig", num_buckets=32, max_bucket_distance=100), kind="audio"),
    Spec("whisper-encoder", _whisper_encoder, kind="mel"),
]

BY_NAME = {s.name: s for s in MODELS}


# ---- export -------------------------------------------------------------------

def _first(r):
    if isinstance(r, (tuple, list)):
        return r[0]
    for k in ("logits", "last_hidden_state"):
        if getattr(r, k, None) is not None:
            return getattr(r, k)
    return r[0]


def export(spec, path, opset=None):
    """Builds the module, exports it to `path`; returns (torch module wrapper,
    input names, dim_range)."""
    import torch
    torch.manual_seed(0)
    model = spec.build().eval()
    spec.config = getattr(model, "config", None)
    if spec.reinit:
        # He initialization: transformers' (std 0.02, ReLU6)
        # leaves these models' outputs near 0, where any error looks small
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                if mod.bias is not None:
                    torch.nn.init.normal_(mod.bias, std=0.1)
            elif isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                torch.nn.init.uniform_(mod.weight, 0.5, 1.5)
                torch.nn.init.normal_(mod.bias, std=0.1)
                torch.nn.init.normal_(mod.running_mean, std=0.1)
                torch.nn.init.uniform_(mod.running_var, 0.5, 1.5)
    kind = spec.kind

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *xs):
            if kind == "text":
                if spec.name.startswith("torch-"):
                    return self.m(xs[0])
                return _first(self.m(input_ids=xs[0], attention_mask=xs[1]) if spec.mask
                              else self.m(input_ids=xs[0]))
            if kind == "seq2seq":
                return _first(self.m(input_ids=xs[0], attention_mask=xs[1], decoder_input_ids=xs[2]))
            if kind in ("image", "image-hw", "vector") and spec.name.startswith("torch-"):
                return self.m(xs[0])
            if kind in ("image", "image-hw"):
                return _first(self.m(pixel_values=xs[0]))
            if kind == "audio":
                return _first(self.m(input_values=xs[0]))
            if kind == "mel":
                return _first(self.m(input_features=xs[0]))
            if kind == "mel2seq":
                return _first(self.m(input_features=xs[0], decoder_input_ids=xs[1]))
            if kind == "cross":      # a decoder stack over given encoder states
                return _first(self.m(input_ids=xs[0], encoder_hidden_states=xs[1], encoder_attention_mask=xs[2]))
            if kind == "decode":     # one step with a KV cache: logits and every layer's present keys/values
                from transformers import DynamicCache
                cache = DynamicCache()
                for i in range(len(xs[2:]) // 2):
                    cache.update(xs[2 + 2 * i], xs[3 + 2 * i], i)
                r = self.m(input_ids=xs[0], attention_mask=xs[1], past_key_values=cache, use_cache=True)
                outs = [r.logits]
                for layer in r.past_key_values.layers:
                    outs += [layer.keys, layer.values]
                return tuple(outs)
            raise ValueError(kind)

    wrap = Wrap(model).eval()
    ex = example_inputs(spec, 2, 800 if kind == "audio" else 8, np.random.default_rng(0), past=5)
    names = list(ex)
    axes = {}
    for n, a in ex.items():
        if kind in ("text", "seq2seq", "mel2seq", "cross", "decode"):
            axes[n] = {0: "batch", 1: "dec" if n == "decoder_input_ids" else "seq"}
            if kind == "decode" and n == "attention_mask":
                axes[n] = {0: "batch", 1: "total"}
            elif n.startswith("past"):
                axes[n] = {0: "batch", 2: "past"}
            elif n == "input_features":
                axes[n] = {0: "batch"}
        elif kind == "audio":
            axes[n] = {0: "batch", 1: "seq"}
        elif kind == "image-hw":
            axes[n] = {0: "batch", 2: "height", 3: "width"}
        else:
            axes[n] = {0: "batch"}
    outs = ["out"]
    out_axes = {"out": {0: "batch"}}
    if kind == "decode":
        outs = ["logits"] + [n.replace("past", "present") for n in names if n.startswith("past")]
        out_axes = {n: {0: "batch", 2: "total"} for n in outs[1:]}
        out_axes["logits"] = {0: "batch", 1: "seq"}
    torch.onnx.export(wrap, tuple(torch.from_numpy(a) for a in ex.values()), str(path), input_names=names,
                      output_names=outs, dynamic_axes={**axes, **out_axes},
                      opset_version=opset or spec.opset, dynamo=False)
    dim_range = {"batch": [(1, 2, 3)]}
    if kind in ("text", "seq2seq", "mel2seq", "cross", "decode"):
        dim_range["seq"] = [(1, 16, 24)]
        dim_range["dec"] = [(1, 8, 24)]
        dim_range["past"] = [(1, 8, 16)]
        dim_range["total"] = [(2, 9, 40)]
    if kind == "audio":
        dim_range["seq"] = [(400, 800, 1600)]
    if kind == "image-hw":
        dim_range["height"] = dim_range["width"] = [(16, 32, 64)]
    return wrap, names, outs, dim_range


def example_inputs(spec, batch, seq, rng, past=0):
    k = spec.kind
    if k == "decode":      # seq new tokens after past cached ones; the first row's first two are padding
        cfg = spec.config
        heads = cfg.num_attention_heads
        kv, hd = getattr(cfg, "num_key_value_heads", heads) or heads, cfg.hidden_size // heads
        mask = np.ones((batch, past + seq), np.int64)
        mask[0, :min(2, past)] = 0
        out = {"input_ids": rng.integers(2, VOCAB, (batch, seq)).astype(np.int64), "attention_mask": mask}
        for i in range(cfg.num_hidden_layers):
            for what in ("key", "value"):
                out[f"past{i}_{what}"] = rng.standard_normal((batch, kv, past, hd)).astype(np.float32)
        return out
    if k == "mel2seq":
        return {"input_features": rng.standard_normal((batch, 16, 64)).astype(np.float32),
                "decoder_input_ids": rng.integers(2, VOCAB, (batch, seq)).astype(np.int64)}
    if k == "cross":       # decoder ids over encoder states of length seq + 3 (right-padded)
        mask = np.ones((batch, seq + 3), np.int64)
        mask[0, seq + 1:] = 0
        return {"decoder_input_ids": rng.integers(2, VOCAB, (batch, seq)).astype(np.int64),
                "encoder_hidden_states": rng.standard_normal((batch, seq + 3, 64)).astype(np.float32),
                "attention_mask": mask}
    if k in ("text", "seq2seq"):
        ids = rng.integers(2, VOCAB, (batch, seq)).astype(np.int64)
        out = {"input_ids": ids}
        if spec.mask and not spec.name.startswith("torch-"):
            mask = np.ones((batch, seq), np.int64)
            if batch > 1 and seq > 2:
                if spec.left_pad:
                    mask[0, : seq // 2] = 0
                else:
                    mask[0, seq - seq // 2:] = 0
            out["attention_mask"] = mask
        if k == "seq2seq":
            out["decoder_input_ids"] = rng.integers(2, VOCAB, (batch, max(1, seq // 2))).astype(np.int64)
        return out
    if k == "vector":
        return {"x": rng.standard_normal((batch, 16)).astype(np.float32)}
    if k == "image":
        return {"pixel_values": rng.standard_normal((batch, spec.channels, spec.image, spec.image)).astype(np.float32)}
    if k == "image-hw":     # seq: the height; the width differs
        return {"pixel_values": rng.standard_normal((batch, spec.channels, seq, 80 - seq)).astype(np.float32)}
    if k == "audio":
        return {"input_values": rng.standard_normal((batch, seq)).astype(np.float32)}
    if k == "mel":
        return {"input_features": rng.standard_normal((batch, 16, 64)).astype(np.float32)}
    raise ValueError(k)


SHAPES = {"text": [(1, 1), (2, 16), (3, 23)], "seq2seq": [(1, 3), (2, 16), (3, 23)], "audio": [(1, 400), (3, 1333)],
          "mel2seq": [(1, 1), (3, 9)], "cross": [(1, 1), (3, 9)],
          "decode": [(1, 1, 3), (3, 1, 9), (2, 4, 7)],
          "image-hw": [(1, 32), (3, 24), (2, 64)]}        # (batch, height); width = 80 - height       # (batch, new tokens, cached tokens)


def check(spec, tmpdir, opset=None):
    """Exports, imports, runs; returns a dict: stage reached, errors, timing.
    Raises nothing: a failure is recorded with its stage and message."""
    import torch
    import onnxruntime as ort
    import kiln
    import kiln.onnx
    res = {"name": spec.name, "opset": opset or spec.opset, "stage": "export", "err_ort": None, "err_torch": None,
           "error": ""}
    t0 = time.perf_counter()
    path = os.path.join(tmpdir, f"{spec.name}-{res['opset']}.onnx")
    try:
        wrap, names, outs, dim_range = export(spec, path, opset)
        shapes = SHAPES.get(spec.kind, [(1, 0), (3, 0)])

        def inputs(shape, rng):
            feed = example_inputs(spec, *shape[:2], rng, past=shape[2] if len(shape) > 2 else 0)
            return {n: feed[n] for n in names}
        res["stage"] = "ort-fails"
        ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        try:       # does the export run at another shape than it was traced at?
            ref.run(None, inputs(shapes[-1], np.random.default_rng(1)))
        except Exception as e:      # the export is wrong, not kiln
            raise RuntimeError(f"onnxruntime fails too: {str(e).splitlines()[0][:200]}") from e
        res["stage"] = "import"
        net = kiln.onnx.parse(path, dim_range=dim_range)
        res["stage"] = "build"
        sess = kiln.Session.from_serialized_engine(kiln.Builder().build_engine(net), device="cpu")
        res["stage"] = "run"
        rng = np.random.default_rng(1)
        e_ort = e_torch = 0.0
        for shape in shapes:
            feed = inputs(shape, rng)
            wants = ref.run(None, feed)
            gots = sess(feed)
            with torch.no_grad():
                tws = wrap(*[torch.from_numpy(feed[n]) for n in names])
            tws = [t.numpy() for t in (tws if isinstance(tws, tuple) else (tws,))]
            for name, want, tw in zip(outs, wants, tws):
                got = gots[name]
                if got.shape != want.shape:
                    raise AssertionError(f"{name}: shape {got.shape} != onnxruntime's {want.shape} at {shape}")
                scale = max(1.0, float(np.abs(want).max()))
                if float(np.abs(want).max()) < 1e-2:
                    raise AssertionError(f"the output is near zero (max {float(np.abs(want).max()):.1e}): "
                                         "nothing to compare; reinitialize the weights")
                e_ort = max(e_ort, float(np.abs(got - want).max()) / scale)
                e_torch = max(e_torch, float(np.abs(got - tw).max()) / scale)
        res["err_ort"], res["err_torch"] = e_ort, e_torch
        res["stage"] = "ok" if e_ort <= TOL else "wrong"
        if res["stage"] == "wrong":
            res["error"] = f"max error {e_ort:.2e} vs onnxruntime"
    except Exception as e:      # recorded, with the stage it happened in
        res["error"] = f"{type(e).__name__}: {e}".strip()
        res["trace"] = traceback.format_exc()
    res["seconds"] = time.perf_counter() - t0
    return res


def _what(spec):
    if spec.name.startswith("torch-"):
        return "torch.nn module"
    import inspect
    if getattr(spec.build, "cls_name", None):
        return spec.build.cls_name
    src = inspect.getclosurevars(spec.build).nonlocals if spec.build else {}
    return src.get("cls_name", {"mel": "WhisperModel encoder", "mel2seq": "WhisperModel"}.get(spec.kind, ""))


_STAGE_TEXT = {"ok": "runs", "export": "torch cannot export", "ort-fails": "export broken (onnxruntime fails)",
               "import": "import fails", "build": "build fails", "run": "run fails", "wrong": "wrong result"}


def table(rows):
    """Markdown: one row per model, a column per opset."""
    opsets = sorted({r["opset"] for r in rows})
    by = {}
    for r in rows:
        by.setdefault(r["name"], {})[r["opset"]] = r
    head = "| model | class | inputs | " + " | ".join(f"opset {o}" for o in opsets) + \
        " | max error vs onnxruntime | vs torch | CI | note |"
    lines = [head, "|" + "---|" * (7 + len(opsets))]
    for name, per in by.items():
        spec = BY_NAME[name]
        cells = []
        for o in opsets:
            r = per.get(o)
            cells.append("" if r is None else _STAGE_TEXT.get(r["stage"], r["stage"]))
        errs = [r for r in per.values() if r["err_ort"] is not None]
        e1 = f"{max(r['err_ort'] for r in errs):.1e}" if errs else ""
        e2 = f"{max(r['err_torch'] for r in errs):.1e}" if errs else ""
        note = spec.expect or ""
        bad = [r for r in per.values() if r["stage"] != "ok"]
        if bad and not note:
            note = bad[0]["error"][:160]
        elif bad:
            node = bad[0]["error"].split("node '")[1].split("'")[0] if "node '" in bad[0]["error"] else ""
            note += f" (`{node}`)" if node else ""
        inputs = {"text": "ids, mask" if spec.mask and not name.startswith("torch-") else "ids",
                  "seq2seq": "ids, mask, decoder ids", "image": "pixels", "image-hw": "pixels (any size)",
                  "vector": "features",
                  "audio": "samples", "mel": "log-mel frames", "mel2seq": "log-mel frames, decoder ids",
                  "cross": "decoder ids, encoder states, mask", "decode": "ids, mask, past keys/values"}[spec.kind]
        lines.append(f"| {name} | {_what(spec)} | {inputs} | " + " | ".join(cells) +
                     f" | {e1} | {e2} | {'yes' if spec.default else 'all'} | {note.replace('|', '/')} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="every model, not only the default (CI) set")
    ap.add_argument("-k", nargs="*", default=None, help="only these names")
    ap.add_argument("--opset", type=int, nargs="*", default=[None])
    ap.add_argument("-v", action="store_true")
    ap.add_argument("--table", default=None, help="also write the markdown table to this file")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    rows = []
    for spec in MODELS:
        if args.k and spec.name not in args.k:
            continue
        if not (args.all or spec.default or args.k):
            continue
        for opset in args.opset:
            r = check(spec, tmp, opset)
            rows.append(r)
            err = "" if r["err_ort"] is None else f"{r['err_ort']:.1e}"
            print(f"{r['name']:28s} opset {r['opset']:2d} {r['stage']:7s} {err:8s} {r['seconds']:5.1f}s "
                  f"{r['error'][:300]}", flush=True)
            if args.v and r.get("trace"):
                print(r["trace"])
    print()
    print(table(rows))
    if args.table:
        with open(args.table, "w") as f:
            f.write(table(rows) + "\n")
    return 0 if all(r["stage"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
