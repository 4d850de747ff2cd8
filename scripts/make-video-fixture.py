#!/usr/bin/env python3
"""Makes the LTX-Video 0.9.x parity fixtures: a tiny random-weight LTX transformer, tiny VAEs in
the three layouts the releases use (0.9.0, 0.9.1, 0.9.5) and the tiny T5 encoder of the diffusion
fixtures, run by the reference implementation (diffusers/transformers on PyTorch, CPU, float32),
so the candle port in crates/video can be required to match them. tests/fixtures/video/README.md
is the contract: what each file holds and how it was made.

    scripts/diffusion-fixture-venv.sh          # once: the pinned venv (outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-video-fixture.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/video/. Pinned: torch 2.15.0, diffusers 0.42.1, transformers
5.23.0, safetensors 0.8.0, tokenizers 0.23.3 (the script refuses other versions unless
--any-version is given). It reads tests/fixtures/diffusion/{t5xxl.safetensors, tokenizer/}
(the tiny T5 and its SentencePiece model) and imports its helpers (seeded weights, f16 rounding,
the `randn_tensor` recorder) from scripts/make-diffusion-fixture.py. It takes about 15 s on 2 CPU
cores and is deterministic: every random tensor comes from a fixed seed, and two runs write
byte-identical files.

What it does:
  1. Builds the tiny parts and gives every parameter a seeded value (`randn * 0.5/sqrt(fan_in)`,
     norm weights 1 + 0.1·randn), rounded through float16. The weights are saved in f16; every
     reference is computed in f32 from exactly those f16-rounded values.
  2. Writes them as a diffusers folder (ltx-tiny/, the 0.9.5 layout) and as three official
     single files (ltxv-tiny-0.9.{0,1,5}.safetensors: original Lightricks names, config JSON in
     the safetensors header), and checks every name map by a round trip through diffusers' own
     convert_ltx_transformer/vae_checkpoint_to_diffusers; it exits non-zero if one is not exact.
  3. Records the T5 encoder, three transformer calls (per-batch timesteps, per-token timesteps,
     explicit video_coords), and each VAE layout both ways (plus a tiled decode).
  4. Runs the real diffusers pipelines (LTXPipeline, LTXImageToVideoPipeline, LTXConditionPipeline
     twice) with `prompt_embeds`, recording every noise draw in order (`randn_tensor`, and the
     `torch.randn` calls some LTX code makes directly), the latents after each step, the VAE
     decoder input and the decoded video.
  5. Replays every run by hand from the recorded noise (the glue the Rust side must copy) and
     requires the recorded latents and videos bit for bit.

Every check prints one `[ok]`/`[FAIL]` line; the script exits 1 if any fails or if the fixtures
exceed 6 MB. Ends with a table of the files and their sizes.
"""
import argparse
import contextlib
import copy
import gzip
import importlib.util
import json
import math
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # before transformers is imported: no torchvision notices

PINNED = {"torch": "2.15.0", "diffusers": "0.42.1", "transformers": "5.23.0", "safetensors": "0.8.0",
          "tokenizers": "0.23.3"}

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "video"
DIFFUSION_FIXTURES = ROOT / "tests" / "fixtures" / "diffusion"


def _load_diffusion_fixture_helpers():
    path = ROOT / "scripts" / "make-diffusion-fixture.py"
    spec = importlib.util.spec_from_file_location("make_diffusion_fixture", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mdf = _load_diffusion_fixture_helpers()  # randomize, f16, check, the randn_tensor recorder, the tiny T5 config

import diffusers  # noqa: E402
import tokenizers  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKLLTXVideo,
    FlowMatchEulerDiscreteScheduler,
    LTXConditionPipeline,
    LTXImageToVideoPipeline,
    LTXPipeline,
    LTXVideoTransformer3DModel,
)
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from diffusers.models.autoencoders import autoencoder_kl_ltx  # noqa: E402
from diffusers.pipelines.ltx import pipeline_ltx, pipeline_ltx_condition, pipeline_ltx_image2video  # noqa: E402,F401
from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import T5Config, T5EncoderModel  # noqa: E402

check, f16, sdict, same_dicts, gen = mdf.check, mdf.f16, mdf.sdict, mdf.same_dicts, mdf.gen

SIZE_BUDGET = 6e6
H, W = 32, 64  # pipeline runs: the pipelines require multiples of 32; latents are 2×4
VAE_FRAMES, VAE_W = 9, 48  # the VAE round trips: 9 = 1·8 + 1 frames × 32×48 → latents 2×2×3
FRAME_RATE = 25
T5_LEN = 16  # max_sequence_length of every run here (the pipelines' default is 128)
STEPS = 3
GUIDANCE = 3.0
DECODE_T, DECODE_NOISE = 0.05, 0.025
PROMPT, NEGATIVE = "a photo of a cat", ""

# ---------------------------------------------------------------------------------------------
# Tiny configs. The VAEs keep the real block structure (4 encoder blocks + mid; 4 or 3 decoder
# blocks + mid) because diffusers' single-file converter maps the original block indices with
# hardcoded tables; only channel widths, layer counts and the patch size are small. patch_size 2
# (real: 4) gives a spatial compression of 16 (real: 32); the temporal compression is 8 as real.

T5 = mdf.T5  # the tiny T5 of the diffusion fixtures: d_model 32, vocab 1000, pad 0, eos 1
TRANSFORMER = dict(
    in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
    cross_attention_dim=16, num_layers=2, caption_channels=T5["d_model"], qk_norm="rms_norm_across_heads",
)
_VAE_COMMON = dict(
    in_channels=3, out_channels=3, latent_channels=8, patch_size=2, patch_size_t=1, resnet_norm_eps=1e-6,
    scaling_factor=1.0, encoder_causal=True, decoder_causal=False,
)
VAE = {
    # LTX-Video 0.9.0: plain decoder, real (128, 256, 512, 512), layers (4, 3, 3, 3, 4)
    "0.9.0": dict(
        _VAE_COMMON, block_out_channels=(4, 8, 16, 16), decoder_block_out_channels=(4, 8, 16, 16),
        layers_per_block=(1, 2, 1, 1, 1), decoder_layers_per_block=(1, 2, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False), decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False,) * 5, upsample_residual=(False,) * 4, upsample_factor=(1,) * 4,
        timestep_conditioning=False,
    ),
    # 0.9.1: same encoder; timestep-conditioned decoder with residual depth-to-space upsamplers and
    # noise injection, real decoder (256, 512, 1024), layers (5, 6, 7, 8), inject (T, T, T, F)
    "0.9.1": dict(
        _VAE_COMMON, block_out_channels=(4, 8, 16, 16), layers_per_block=(1, 2, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False), decoder_block_out_channels=(8, 16, 32),
        decoder_layers_per_block=(1, 2, 1, 1), decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(True, True, True, False), upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2), timestep_conditioning=True,
    ),
    # 0.9.5 (also 0.9.6-0.9.8 2B): space-to-depth encoder (LTXVideo095DownBlock3D), real
    # (128, 256, 512, 1024, 2048), layers (4, 6, 6, 2, 2); decoder as 0.9.1 without noise
    # injection, real layers (5, 5, 5, 5). The compression ratios must be given: diffusers'
    # default formula (patch · 2^#scaling blocks) would say 32 (real: 64) for this encoder.
    "0.9.5": dict(
        _VAE_COMMON, block_out_channels=(2, 4, 8, 16, 32), down_block_types=("LTXVideo095DownBlock3D",) * 4,
        layers_per_block=(1, 1, 2, 1, 1), spatio_temporal_scaling=(True, True, True, True),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        decoder_block_out_channels=(8, 16, 32), decoder_layers_per_block=(2, 1, 1, 1),
        decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False, False, False, False),
        upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True,
        spatial_compression_ratio=16, temporal_compression_ratio=8,
    ),
}
LAYOUT_TAG = {"0.9.0": "vae090", "0.9.1": "vae091", "0.9.5": "vae095"}
SPATIAL, TEMPORAL = 16, 8  # the compression of every tiny VAE
ROPE_SCALE = (TEMPORAL / FRAME_RATE, SPATIAL, SPATIAL)  # rope_interpolation_scale as LTXPipeline computes it


def latent_frames(frames):
    return (frames - 1) // TEMPORAL + 1


# Real scheduler configs. 0.9.0/0.9.1 (Lightricks/LTX-Video, diffusers/LTX-Video-0.9.1): dynamic
# shifting with a terminal stretch. 0.9.5: diffusers' scripts/convert_ltx_to_diffusers.py writes
# `FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False)` for 0.9.5 and 0.9.7, i.e. the
# class defaults (shift 1, no terminal stretch).
SCHEDULER_091 = dict(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
                     max_image_seq_len=4096, shift_terminal=0.1)
SCHEDULER_095 = dict(use_dynamic_shifting=False)


# ---------------------------------------------------------------------------------------------
# weights


def build_transformer(seed):
    return mdf.randomize(LTXVideoTransformer3DModel(**TRANSFORMER), seed)


def build_vae(layout, seed):
    vae = mdf.randomize(AutoencoderKLLTXVideo(**VAE[layout]), seed)
    g = gen(seed + 1000)
    c = VAE[layout]["latent_channels"]
    with torch.no_grad():
        if vae.decoder.timestep_scale_multiplier is not None:
            vae.decoder.timestep_scale_multiplier.fill_(1000.0)  # the real value (a parameter, trained)
        vae.latents_mean.copy_((0.2 * torch.randn(c, generator=g)).half().float())
        vae.latents_std.copy_((0.5 + torch.rand(c, generator=g)).half().float())
    return vae


def load_t5():
    """The tiny T5 of the diffusion fixtures (HF names, f16, `shared.weight` only: embed_tokens is tied)."""
    te = T5EncoderModel(T5Config(**T5))
    sd = {k: v.float() for k, v in load_file(DIFFUSION_FIXTURES / "t5xxl.safetensors").items()}
    missing, unexpected = te.load_state_dict(sd, strict=False)
    assert list(missing) in ([], ["encoder.embed_tokens.weight"]) and not unexpected, (missing, unexpected)
    assert te.encoder.embed_tokens.weight.data_ptr() == te.shared.weight.data_ptr()
    return te.eval()


def t5_tokenizer():
    """transformers 5's conversion of the tiny spiece.model (verified against sentencepiece by the
    tokenizer fixture); used here only to produce the ids."""
    raw = gzip.decompress((DIFFUSION_FIXTURES / "tokenizer" / "t5" / "tokenizer.json.gz").read_bytes())
    return tokenizers.Tokenizer.from_str(raw.decode())


def tokenize(tok, text, length):
    """LTX's `_get_t5_prompt_embeds` tokenization: add eos, pad with 0 to `length`, truncate."""
    ids = tok.encode(text).ids
    if not ids or ids[-1] != 1:
        ids = ids + [1]
    ids = ids[:length]
    mask = [1] * len(ids) + [0] * (length - len(ids))
    return ids + [0] * (length - len(ids)), mask


# ---------------------------------------------------------------------------------------------
# Name maps: diffusers -> original (Lightricks) single file. The inverse of
# single_file_utils.convert_ltx_{transformer,vae}_checkpoint_to_diffusers, checked against them.

TRANSFORMER_TO_ORIGINAL = (("proj_in", "patchify_proj"), ("time_embed", "adaln_single"),
                           ("norm_q", "q_norm"), ("norm_k", "k_norm"))


def transformer_to_original(sd):
    out = {}
    for k, v in sd.items():
        for a, b in TRANSFORMER_TO_ORIGINAL:
            k = k.replace(a, b)
        out["model.diffusion_model." + k] = v
    return out


def _vae_block_tables(layout):
    """(diffusers module prefix, original block index) for encoder.down_blocks / decoder.up_blocks.
    The original models are flat lists of blocks: every resnet group, (de)compression and channel
    change is its own entry."""
    if layout == "0.9.5":
        enc = [(f"down_blocks.{i}.downsamplers.0", 2 * i + 1) for i in range(4)] + \
              [(f"down_blocks.{i}", 2 * i) for i in range(4)] + [("mid_block", 8)]
    else:
        enc = [("down_blocks.0.downsamplers.0", 1), ("down_blocks.0.conv_out", 2), ("down_blocks.0", 0),
               ("down_blocks.1.downsamplers.0", 4), ("down_blocks.1.conv_out", 5), ("down_blocks.1", 3),
               ("down_blocks.2.downsamplers.0", 7), ("down_blocks.2", 6), ("down_blocks.3", 8), ("mid_block", 9)]
    if layout == "0.9.0":
        dec = [("mid_block", 0), ("up_blocks.0", 1), ("up_blocks.1.upsamplers.0", 2), ("up_blocks.1", 3),
               ("up_blocks.2.conv_in", 4), ("up_blocks.2.upsamplers.0", 5), ("up_blocks.2", 6),
               ("up_blocks.3.conv_in", 7), ("up_blocks.3.upsamplers.0", 8), ("up_blocks.3", 9)]
    else:
        dec = [("mid_block", 0)] + [(f"up_blocks.{i}.upsamplers.0", 2 * i + 1) for i in range(3)] + \
              [(f"up_blocks.{i}", 2 * i + 2) for i in range(3)]
    return {"encoder": enc, "decoder": dec}


def vae_to_original(sd, layout, extra_stats):
    """diffusers AutoencoderKLLTXVideo state dict -> `vae.`-prefixed original names."""
    tables = _vae_block_tables(layout)
    out = {}
    for k, v in sd.items():
        n = k
        part, _, rest = k.partition(".")
        if part in tables:
            for prefix, idx in sorted(tables[part], key=lambda e: -len(e[0])):
                if rest.startswith(prefix + "."):
                    kind = "down_blocks" if part == "encoder" else "up_blocks"
                    n = f"{part}.{kind}.{idx}.{rest[len(prefix) + 1:]}"
                    break
            n = n.replace(".resnets.", ".res_blocks.").replace(".conv_shortcut.conv.", ".conv_shortcut.")
            n = n.replace(".norm3.", ".norm3.norm.")
            if n.startswith("decoder.time_embedder."):
                n = "decoder.last_time_embedder." + n.removeprefix("decoder.time_embedder.")
            elif n == "decoder.scale_shift_table":
                n = "decoder.last_scale_shift_table"
        elif k == "latents_mean":
            n = "per_channel_statistics.mean-of-means"
        elif k == "latents_std":
            n = "per_channel_statistics.std-of-means"
        out["vae." + n] = v
    for name, v in extra_stats.items():
        out[f"vae.per_channel_statistics.{name}"] = v
    return out


def extra_statistics(vae, seed):
    """The per-channel statistics real files carry besides mean-of-means / std-of-means. Unused by
    every implementation (diffusers drops them); present so loaders are tested against them."""
    g = gen(seed)
    c = vae.config.latent_channels
    mos = (0.5 + torch.rand(c, generator=g)).half().float()
    return {"channel": torch.arange(c, dtype=torch.float32), "mean-of-stds": mos,
            "mean-of-stds_over_std-of-means": (mos / vae.latents_std).half().float()}


def transformer_original_config(cfg):
    """The `transformer` block of the header config, as LTX-Video's Transformer3DModel reads it."""
    return {
        "_class_name": "Transformer3DModel", "_diffusers_version": "0.25.1", "activation_fn": "gelu-approximate",
        "attention_bias": True, "attention_head_dim": cfg["attention_head_dim"], "attention_type": "default",
        "caption_channels": cfg["caption_channels"], "cross_attention_dim": cfg["cross_attention_dim"],
        "double_self_attention": False, "dropout": 0.0, "in_channels": cfg["in_channels"],
        "norm_elementwise_affine": False, "norm_eps": 1e-06, "norm_num_groups": 32,
        "num_attention_heads": cfg["num_attention_heads"], "num_embeds_ada_norm": 1000,
        "num_layers": cfg["num_layers"], "num_vector_embeds": None, "only_cross_attention": False,
        "out_channels": cfg["out_channels"], "project_to_2d_pos": True, "upcast_attention": False,
        "use_linear_projection": False, "qk_norm": "rms_norm", "standardization_norm": "rms_norm",
        "positional_embedding_type": "rope", "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048], "timestep_scale_multiplier": 1000,
    }


def vae_original_config(layout):
    """The `vae` block of the header config (LTX-Video's CausalVideoAutoencoder.from_config)."""
    c = VAE[layout]
    lp = c["layers_per_block"]
    cfg = {"_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3,
           "latent_channels": c["latent_channels"]}
    if layout == "0.9.0":  # the 0.9.0 file has one `blocks` list for both halves, with int params
        cfg["blocks"] = [["res_x", lp[0]], ["compress_all", 1], ["res_x_y", 1], ["res_x", lp[1]], ["compress_all", 1],
                         ["res_x_y", 1], ["res_x", lp[2]], ["compress_all", 1], ["res_x", lp[3]], ["res_x", lp[4]]]
        decoder_base = c["decoder_block_out_channels"][0]
    else:
        if layout == "0.9.1":
            cfg["encoder_blocks"] = [
                ["res_x", {"num_layers": lp[0]}], ["compress_all", {}], ["res_x_y", 1],
                ["res_x", {"num_layers": lp[1]}], ["compress_all", {}], ["res_x_y", 1],
                ["res_x", {"num_layers": lp[2]}], ["compress_all", {}],
                ["res_x", {"num_layers": lp[3]}], ["res_x", {"num_layers": lp[4]}]]
        else:
            cfg["encoder_blocks"] = [
                ["res_x", {"num_layers": lp[0]}], ["compress_space_res", {"multiplier": 2}],
                ["res_x", {"num_layers": lp[1]}], ["compress_time_res", {"multiplier": 2}],
                ["res_x", {"num_layers": lp[2]}], ["compress_all_res", {"multiplier": 2}],
                ["res_x", {"num_layers": lp[3]}], ["compress_all_res", {"multiplier": 2}],
                ["res_x", {"num_layers": lp[4]}]]
        dl, inj = c["decoder_layers_per_block"], c["decoder_inject_noise"]
        dec = []
        for i in range(4):
            dec.append(["res_x", {"num_layers": dl[i], "inject_noise": inj[i]}])
            if i < 3:
                dec.append(["compress_all", {"residual": True, "multiplier": 2}])
        cfg["decoder_blocks"] = dec
        decoder_base = c["decoder_block_out_channels"][0] // c["upsample_factor"][0]
    cfg.update({"scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": c["patch_size"],
                "latent_log_var": "uniform", "use_quant_conv": False, "causal_decoder": False,
                "encoder_base_channels": c["block_out_channels"][0], "decoder_base_channels": decoder_base})
    if c["timestep_conditioning"]:
        cfg["timestep_conditioning"] = True
    return cfg


def convert_vae_back(single_file, layout):
    """diffusers' own converter on the file's `vae.*` tensors. It picks the 0.9.5 rename table only
    when `vae.encoder.conv_out.conv.weight` has 2048 input channels (the real width); for the tiny
    0.9.5 file a zero-copy stand-in of that shape selects it, and the real tensor is put back."""
    ck = dict(single_file)
    real = ck["vae.encoder.conv_out.conv.weight"]
    if layout == "0.9.5":
        ck["vae.encoder.conv_out.conv.weight"] = torch.zeros(()).expand(real.shape[0], 2048, *real.shape[2:])
    out = sfu.convert_ltx_vae_checkpoint_to_diffusers(ck)
    if layout == "0.9.5":
        out["encoder.conv_out.conv.weight"] = real
    return out


# ---------------------------------------------------------------------------------------------
# noise recording: `randn_tensor` through make-diffusion-fixture's recorder, plus the direct
# `torch.randn` calls of LTX code (decoder noise injection, the i2v pipeline's decode noise)

AE_MODULE = autoencoder_kl_ltx.__name__


@contextlib.contextmanager
def recording_torch_randn():
    orig = torch.randn

    def rec(*args, **kwargs):
        out = orig(*args, **kwargs)
        f = sys._getframe(1)
        mod = f.f_globals.get("__name__", "?")
        if mod.startswith("diffusers.") and mod != "diffusers.utils.torch_utils":  # randn_tensor records itself
            mdf.NOISE.append((f"{mod}.{f.f_code.co_qualname} (torch.randn)", out.detach().float().clone()))
        return out
    torch.randn = rec
    try:
        yield
    finally:
        torch.randn = orig


@contextlib.contextmanager
def replaying_decoder_noise(draws):
    """Makes the VAE decoder's `torch.randn` return the recorded draws, in order."""
    orig = torch.randn
    queue = list(draws)

    def rep(*args, **kwargs):
        if sys._getframe(1).f_globals.get("__name__") == AE_MODULE:
            d = queue.pop(0)
            assert tuple(d.shape) == tuple(args[0]), (d.shape, args[0])
            return d.clone()
        return orig(*args, **kwargs)
    torch.randn = rep
    try:
        yield
    finally:
        torch.randn = orig
    assert not queue, f"{len(queue)} decoder draws unused"


def draw_noise(fn, global_seed):
    """Runs fn() with the torch global RNG at `global_seed` and returns (result, draws)."""
    mdf.patch_randn()
    mdf.NOISE.clear()
    torch.manual_seed(global_seed)
    with recording_torch_randn(), torch.no_grad():
        out = fn()
    draws = list(mdf.NOISE)
    mdf.NOISE.clear()
    return out, draws


def short(who):
    return ".".join(who.split(" ")[0].split(".")[-2:])


# ---------------------------------------------------------------------------------------------
# references


def smooth(seed, shape, lo, hi):
    """A smooth seeded signal: bilinear-upsampled uniform noise (frames × channels × h/8 × w/8)."""
    *lead, h, w = shape
    coarse = torch.rand(math.prod(lead), 1, h // 8 + 1, w // 8 + 1, generator=gen(seed))
    up = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
    return (lo + (hi - lo) * up).reshape(shape)


def t5_io(io, te):
    tok = t5_tokenizer()
    rows = [tokenize(tok, NEGATIVE, T5_LEN), tokenize(tok, PROMPT, T5_LEN)]
    ids = torch.tensor([r[0] for r in rows])
    mask = torch.tensor([r[1] for r in rows])
    expected = json.loads((DIFFUSION_FIXTURES / "tokenizer" / "expected.json").read_text())
    case = next(c for c in expected["t5"]["cases"] if c["text"] == PROMPT)
    check(f"t5 ids of {PROMPT!r} == the tokenizer fixture's transformers ids",
          ids[1].tolist() == case["hf_padded"][:T5_LEN], str(ids[1].tolist()))
    with torch.no_grad():
        hidden = te(ids).last_hidden_state  # LTX passes no attention mask to the T5
    io.update({"t5.ids": ids, "t5.mask": mask, "t5.hidden": hidden})
    return hidden, mask


def transformer_io(io, tr, ctx, mask):
    f, h, w = 3, 2, 4  # a 17-frame 32×64 video
    s = f * h * w
    scale = ROPE_SCALE
    x = torch.randn(2, s, TRANSFORMER["in_channels"], generator=gen(711))
    t_batch = torch.tensor([937.5, 312.5])
    t_token = torch.rand(2, s, generator=gen(712)) * 1000
    t_token[:, :h * w] = 0.0  # first latent frame clean, as i2v conditioning does
    with torch.no_grad():
        cos, sin = tr.rope(x, f, h, w, scale)
        out_b = tr(x, ctx, t_batch, mask, num_frames=f, height=h, width=w, rope_interpolation_scale=scale).sample
        out_t = tr(x, ctx, t_token, mask, num_frames=f, height=h, width=w, rope_interpolation_scale=scale).sample
    # explicit coordinates as LTXConditionPipeline builds them: one extra conditioning latent frame
    # placed at pixel frame 8 in front of the 3×2×4 video tokens, time in seconds
    P = LTXConditionPipeline
    extra = P._scale_video_ids(P._prepare_video_ids(2, 1, h, w), SPATIAL, TEMPORAL, frame_index=8)
    main = P._scale_video_ids(P._prepare_video_ids(2, f, h, w), SPATIAL, TEMPORAL, frame_index=0)
    coords = torch.cat([extra, main], dim=2).float()
    coords[:, 0] = coords[:, 0] * (1.0 / FRAME_RATE)
    xc = torch.randn(2, coords.shape[2], TRANSFORMER["in_channels"], generator=gen(713))
    tc = torch.cat([torch.full((2, h * w), 200.0), torch.tensor([[718.75], [975.0]]).expand(2, s)], dim=1)
    with torch.no_grad():
        out_c = tr(xc, ctx, tc, mask, video_coords=coords).sample
    io.update({"tr.x": x, "tr.t_batch": t_batch, "tr.out_batch": out_b,  # context: t5.hidden, t5.mask
               "tr.rope_cos": cos, "tr.rope_sin": sin, "tr.t_token": t_token, "tr.out_token": out_t,
               "tr.coords": coords, "tr.x_coords": xc, "tr.t_coords": tc, "tr.out_coords": out_c})
    return {"latent_grid": [f, h, w], "rope_interpolation_scale": list(scale),
            "t_batch": t_batch.tolist(), "coords_extra_frame_index": 8}


def vae_io(io, meta, vae, layout, video):
    tag = LAYOUT_TAG[layout]
    temb = torch.tensor([DECODE_T]) if vae.config.timestep_conditioning else None
    with torch.no_grad():
        moments = vae.encode(video).latent_dist.parameters
        c = vae.config.latent_channels
        mean = moments[:, :c]
        normalized = LTXPipeline._normalize_latents(mean, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    decoded, draws = draw_noise(lambda: vae.decode(mean, temb).sample, 7000 + int(layout[-1]))
    io.update({f"{tag}.moments": moments, f"{tag}.latents_mean": vae.latents_mean,
               f"{tag}.latents_std": vae.latents_std, f"{tag}.normalized": normalized, f"{tag}.decoded": decoded})
    entry = {"decode_timestep": DECODE_T if temb is not None else None, "decoder_noise": []}
    for k, (who, n) in enumerate(draws):
        io[f"{tag}.decode_noise.{k}"] = n
        entry["decoder_noise"].append({"key": f"{tag}.decode_noise.{k}", "shape": list(n.shape), "drawn_by": who})
    if draws:
        with torch.no_grad(), replaying_decoder_noise([n for _, n in draws]):
            again = vae.decode(mean, temb).sample
        check(f"{tag}: decode replayed with the recorded injection noise is bit-identical", torch.equal(again, decoded))
    meta["vae_io"][tag] = entry
    print(f"  {tag}: moments {list(moments.shape)}, decoded {list(decoded.shape)}, {len(draws)} decoder noise draws")
    return mean


def tiled_io(io, meta, vae, mean, video):
    tiling = dict(tile_sample_min_height=32, tile_sample_min_width=32, tile_sample_stride_height=16,
                  tile_sample_stride_width=16)
    vae.enable_tiling(**tiling)
    with torch.no_grad():
        moments = vae.encode(video).latent_dist.parameters
        decoded = vae.decode(mean, torch.tensor([DECODE_T])).sample
    vae.disable_tiling()
    io.update({"vae095.tiled.moments": moments, "vae095.tiled.decoded": decoded})
    meta["vae_io"]["vae095.tiled"] = {
        "enable_tiling": tiling, "decode_timestep": DECODE_T,
        "note": "spatial tiling only; temporal (framewise) tiling is not enabled by enable_tiling"}


# ---------------------------------------------------------------------------------------------
# pipeline runs


def run_pipeline(io, meta, run, pipe, seed, global_seed, info, **kwargs):
    """Runs `pipe`; records noise draws, per-step latents, transformer timesteps, VAE calls, video."""
    mdf.patch_randn()
    for obj in (pipe, pipe.scheduler):
        mod = sys.modules[type(obj).__module__]
        assert getattr(mod, "randn_tensor", mdf._recording_randn) is mdf._recording_randn, mod.__name__
    import diffusers.models.autoencoders.vae as vae_mod
    assert vae_mod.randn_tensor is mdf._recording_randn
    pipe.set_progress_bar_config(disable=True)
    vae, tr = pipe.vae, pipe.transformer
    steps, ts, tr_calls, enc_calls, dec_calls = [], [], [], [], []

    def on_step_end(_pipe, i, t, cb):
        steps.append(cb["latents"].detach().float().clone())
        ts.append(float(t))
        return {}

    def tr_hook(_m, args, kw):
        tr_calls.append({k: kw[k].detach().clone() for k in ("timestep", "video_coords") if kw.get(k) is not None}
                        | {"rope_interpolation_scale": kw.get("rope_interpolation_scale")})

    orig_encode, orig_decode = vae.encode, vae.decode

    def encode(x, return_dict=True):
        out = orig_encode(x, return_dict=return_dict)
        enc_calls.append((x.detach().clone(), (out.latent_dist if return_dict else out[0]).parameters.detach().clone()))
        return out

    def decode(z, temb=None, return_dict=True):
        out = orig_decode(z, temb, return_dict=return_dict)
        dec_calls.append((z.detach().clone(), temb, (out.sample if return_dict else out[0]).detach().clone()))
        return out

    vae.encode, vae.decode = encode, decode
    hook = tr.register_forward_pre_hook(tr_hook, with_kwargs=True)
    try:
        out, draws = draw_noise(lambda: pipe(generator=gen(seed), callback_on_step_end=on_step_end,
                                             output_type="pt", **kwargs), global_seed)
    finally:
        hook.remove()
        del vae.encode, vae.decode
    frames = out.frames.float()
    assert len(dec_calls) == 1
    z, temb, video = dec_calls[0]
    check(f"{run}: the pipeline's frames == clamp(video/2 + 0.5, 0, 1) as [B, F, C, H, W]",
          torch.equal(frames, (video / 2 + 0.5).clamp(0, 1).permute(0, 2, 1, 3, 4)))
    for k, (_, n) in enumerate(draws):
        io[f"{run}.noise.{k}"] = n
    for i, s in enumerate(steps):
        io[f"{run}.step.{i}"] = s
    for i, (_, m) in enumerate(enc_calls):  # the inputs are 2·image − 1 (checked by the replays)
        io[f"{run}.encode.{i}.moments"] = m
    io[f"{run}.timesteps"] = torch.tensor(ts)
    for i, c in enumerate(tr_calls):
        io[f"{run}.tr_timestep.{i}"] = c["timestep"].float()
    if "video_coords" in tr_calls[0]:
        io[f"{run}.video_coords"] = tr_calls[0]["video_coords"]
    io[f"{run}.decode_latents"] = z
    io[f"{run}.video"] = video
    s = pipe.scheduler
    entry = {
        "pipeline": type(pipe).__name__, **info, "scheduler": mdf.sched_config(s), "seed": seed,
        "global_seed": global_seed, "height": kwargs["height"], "width": kwargs["width"],
        "num_frames": kwargs["num_frames"], "frame_rate": kwargs.get("frame_rate", FRAME_RATE),
        "num_inference_steps": kwargs["num_inference_steps"], "guidance_scale": kwargs["guidance_scale"],
        "decode_timestep": kwargs.get("decode_timestep"), "decode_noise_scale": kwargs.get("decode_noise_scale"),
        "decode_temb": None if temb is None else temb.tolist(), "timesteps": ts,
        "scheduler_timesteps": [float(x) for x in s.timesteps], "sigmas": [float(x) for x in s.sigmas],
        "rope_interpolation_scale": (list(tr_calls[0]["rope_interpolation_scale"])
                                     if tr_calls[0]["rope_interpolation_scale"] is not None else None),
        "noise": [{"key": f"{run}.noise.{k}", "shape": list(n.shape), "drawn_by": who}
                  for k, (who, n) in enumerate(draws)],
        "steps": len(steps), "step_latents_shape": list(steps[0].shape),
        "frames_range": [float(frames.min()), float(frames.max())],
    }
    meta["runs"][run] = entry
    print(f"  run {run}: {entry['pipeline']}, timesteps {[round(t, 4) for t in ts]}, {len(draws)} noise draws "
          f"({', '.join(short(w) for w, _ in draws)})")
    return {"draws": [n for _, n in draws], "steps": steps, "video": video, "decode_latents": z, "enc": enc_calls,
            "video_coords": tr_calls[0].get("video_coords")}


def cfg(tr, latents, ctx, mask, timestep, **kw):
    """One CFG transformer call as the LTX pipelines make it: batch [negative, positive]."""
    v = tr(torch.cat([latents] * 2), ctx, timestep, mask, return_dict=False, **kw)[0].float()
    u, c = v.chunk(2)
    return u + GUIDANCE * (c - u)


def decode_like_pipeline(vae, latents, noise, temb_value, noise_scale):
    """Denormalize, mix in the decode noise, decode (the end of every LTX pipeline)."""
    z = LTXPipeline._denormalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    temb = torch.tensor([temb_value])
    s = torch.tensor([noise_scale])[:, None, None, None, None]
    z = (1 - s) * z + s * noise
    return z, vae.decode(z, temb).sample


def same(what, got, want):
    if got.shape != want.shape:
        check(what, False, f"shape {list(got.shape)} != {list(want.shape)}")
    else:
        ok = torch.equal(got, want)
        check(what, ok, "" if ok else f"max abs diff {float((got - want).abs().max())}")


def flow_sigmas(n, mu=None, terminal=None):
    """FlowMatchEulerDiscreteScheduler.set_timesteps for LTXPipeline/LTXImageToVideoPipeline's
    sigmas = linspace(1, 1/n, n), in float32 as diffusers computes them (numpy float32)."""
    s = np.linspace(1.0, 1 / n, n).astype(np.float32)
    if mu is not None:
        s = math.exp(mu) / (math.exp(mu) + (1 / s - 1) ** 1.0)
    if terminal:
        one_minus = 1 - s
        s = 1 - one_minus / (one_minus[-1] / (1 - terminal))
    return torch.cat([torch.from_numpy(s).float(), torch.zeros(1)])


def replay_t2v(rec, tr, vae, ctx, mask, f, h, w, mu):
    sig = flow_sigmas(STEPS, mu, SCHEDULER_091["shift_terminal"])
    scale = ROPE_SCALE
    lat = LTXPipeline._pack_latents(rec["draws"][0])
    for i in range(STEPS):
        t = sig[i] * 1000
        v = cfg(tr, lat, ctx, mask, t.expand(2), num_frames=f, height=h, width=w, rope_interpolation_scale=scale)
        lat = lat + (sig[i + 1] - sig[i]) * v
        same(f"t2v replay: step {i} latents", lat, rec["steps"][i])
    unpacked = LTXPipeline._unpack_latents(lat, f, h, w)
    with replaying_decoder_noise(rec["draws"][2:]):
        z, video = decode_like_pipeline(vae, unpacked, rec["draws"][1], DECODE_T, DECODE_NOISE)
    same("t2v replay: decoder input (denormalized, decode noise mixed in)", z, rec["decode_latents"])
    same("t2v replay: video (decoder noise injection from the recorded draws)", video, rec["video"])
    return sig


def replay_i2v(rec, tr, vae, ctx, mask, image, f, h, w):
    sig = flow_sigmas(STEPS)
    scale = ROPE_SCALE
    x = (2 * image - 1)[:, :, None]
    same("i2v replay: VAE input == 2·image − 1, as [1, 3, 1, H, W]", x, rec["enc"][0][0])
    moments = vae.encode(x).latent_dist.parameters
    mean, logvar = moments.chunk(2, dim=1)
    z = mean + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * rec["draws"][0]  # the posterior *sample*
    init = LTXPipeline._normalize_latents(z, vae.latents_mean, vae.latents_std).repeat(1, 1, f, 1, 1)
    cmask = torch.zeros(1, 1, f, h, w)
    cmask[:, :, 0] = 1.0
    lat = LTXPipeline._pack_latents(init * cmask + rec["draws"][1] * (1 - cmask))
    tok_mask = LTXPipeline._pack_latents(cmask).squeeze(-1)
    for i in range(STEPS):
        t = sig[i] * 1000
        v = cfg(tr, lat, ctx, mask, t.expand(2).unsqueeze(-1) * (1 - torch.cat([tok_mask] * 2)),
                num_frames=f, height=h, width=w, rope_interpolation_scale=scale)
        v, un = LTXPipeline._unpack_latents(v, f, h, w), LTXPipeline._unpack_latents(lat, f, h, w)
        un = torch.cat([un[:, :, :1], un[:, :, 1:] + (sig[i + 1] - sig[i]) * v[:, :, 1:]], dim=2)
        lat = LTXPipeline._pack_latents(un)
        same(f"i2v replay: step {i} latents (frame 0 kept, frames 1.. stepped)", lat, rec["steps"][i])
    unpacked = LTXPipeline._unpack_latents(lat, f, h, w)
    z, video = decode_like_pipeline(vae, unpacked, rec["draws"][2], DECODE_T, DECODE_NOISE)
    same("i2v replay: decoder input", z, rec["decode_latents"])
    same("i2v replay: video", video, rec["video"])
    return sig


def replay_condition(run, rec, tr, vae, ctx, mask, conds, f, h, w, noise_scale):
    """LTXConditionPipeline, images only, denoise_strength 1."""
    P = LTXConditionPipeline
    draws = list(rec["draws"])
    # the pipeline passes timesteps = 1000·linear_quadratic_schedule; the scheduler divides them by
    # 1000 again (numpy float32) to get its sigmas
    ts = pipeline_ltx_condition.linear_quadratic_schedule(STEPS) * 1000
    sig = torch.cat([torch.from_numpy(ts.numpy().astype(np.float32) / 1000), torch.zeros(1)])
    lat = draws.pop(0).clone()  # [1, C, f, h, w] video noise
    frame_mask = torch.zeros(1, f)
    extra_lat, extra_ids, extra_mask = [], [], []
    for k, (image, frame_index, strength) in enumerate(conds):
        x = (2 * image - 1)[:, :, None]
        same(f"{run} replay: condition {k} VAE input == 2·image − 1", x, rec["enc"][k][0])
        mean, logvar = vae.encode(x).latent_dist.parameters.chunk(2, dim=1)
        c = mean + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * draws.pop(0)
        c = P._normalize_latents(c, vae.latents_mean, vae.latents_std)
        if frame_index == 0:
            lat[:, :, :1] = torch.lerp(lat[:, :, :1], c, strength)
            frame_mask[:, :1] = strength
        else:
            c = torch.lerp(draws.pop(0), c, strength)
            ids = P._scale_video_ids(P._prepare_video_ids(1, 1, h, w), SPATIAL, TEMPORAL, frame_index=frame_index)
            extra_lat.append(P._pack_latents(c))
            extra_ids.append(ids)
            extra_mask.append(torch.full((1, h * w), strength))
    ids = P._prepare_video_ids(1, f, h, w)
    tok_mask = torch.cat(extra_mask + [frame_mask.gather(1, ids[:, 0])], dim=1)
    coords = torch.cat(extra_ids + [P._scale_video_ids(ids, SPATIAL, TEMPORAL, frame_index=0)], dim=2).float()
    coords[:, 0] = coords[:, 0] * (1.0 / FRAME_RATE)
    lat = torch.cat(extra_lat + [P._pack_latents(lat)], dim=1)
    init = lat.clone()
    n_extra = sum(e.shape[1] for e in extra_lat)
    for i in range(STEPS):
        t = ts[i]
        noised = init + noise_scale * draws.pop(0) * (t / 1000.0) ** 2
        lat = torch.where((tok_mask > 1.0 - 1e-6).unsqueeze(-1), noised, lat)
        tt = torch.min(t.expand(2).unsqueeze(-1).float(), (1 - torch.cat([tok_mask] * 2)) * 1000.0)
        v = cfg(tr, lat, ctx, mask, tt, video_coords=torch.cat([coords] * 2))
        tok_sigma = tt.chunk(2)[0] / 1000
        lower = ((sig[:, None, None] < tok_sigma[None] - 1e-6) * sig[:, None, None]).max(dim=0).values
        denoised = lat + (tok_sigma - lower)[..., None] * -v  # the pipeline passes −v on this path
        lat = torch.where((t / 1000 - 1e-6 < (1.0 - tok_mask)).unsqueeze(-1), denoised, lat)
        same(f"{run} replay: step {i} latents (extra tokens first)", lat, rec["steps"][i])
    same(f"{run} replay: video_coords", coords.expand(2, -1, -1), rec["video_coords"])
    unpacked = P._unpack_latents(lat[:, n_extra:], f, h, w)
    z, video = decode_like_pipeline(vae, unpacked, draws.pop(0), DECODE_T, DECODE_NOISE)
    check(f"{run} replay: every recorded draw consumed", not draws)
    same(f"{run} replay: decoder input", z, rec["decode_latents"])
    same(f"{run} replay: video", video, rec["video"])
    return sig


# ---------------------------------------------------------------------------------------------
# the four runs


def pipeline_kwargs(ctx, mask, frames):
    """What every run passes: the T5 output as [negative, prompt] embeds, 3 steps, CFG 3, 32×64."""
    return dict(prompt_embeds=ctx[1:], prompt_attention_mask=mask[1:], negative_prompt_embeds=ctx[:1],
                negative_prompt_attention_mask=mask[:1], height=H, width=W, num_frames=frames, frame_rate=FRAME_RATE,
                num_inference_steps=STEPS, guidance_scale=GUIDANCE, decode_timestep=DECODE_T,
                decode_noise_scale=DECODE_NOISE, max_sequence_length=T5_LEN)


def run_t2v(io, meta, tr, vae, ctx, mask):
    """(a) text-to-video as the 0.9.1 release runs: its VAE injects noise, its scheduler shifts dynamically."""
    frames, h, w = 9, H // SPATIAL, W // SPATIAL
    f = latent_frames(frames)
    c = SCHEDULER_091
    mu = pipeline_ltx.calculate_shift(f * h * w, c["base_image_seq_len"], c["max_image_seq_len"], c["base_shift"],
                                      c["max_shift"])
    pipe = LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**c), vae=vae, text_encoder=None, tokenizer=None,
                       transformer=tr)
    rec = run_pipeline(io, meta, "t2v", pipe, 8001, 9001, {"vae": "0.9.1", "scheduler_of": "0.9.1", "mu": mu},
                       **pipeline_kwargs(ctx, mask, frames))
    with torch.no_grad():
        sig = replay_t2v(rec, tr, vae, ctx, mask, f, h, w, mu)
    same("t2v: scheduler sigmas == exponential time shift by mu, stretched to shift_terminal (float32)",
         pipe.scheduler.sigmas, sig)


def run_i2v(io, meta, tr, vae, ctx, mask):
    """(b) image-to-video with the ltx-tiny folder (0.9.5 VAE and scheduler)."""
    frames, h, w = 9, H // SPATIAL, W // SPATIAL
    f = latent_frames(frames)
    image = smooth(742, (1, 3, H, W), 0.0, 1.0)
    io["i2v.image"] = image
    pipe = LTXImageToVideoPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER_095), vae=vae,
                                   text_encoder=None, tokenizer=None, transformer=tr)
    mu = pipeline_ltx.calculate_shift(f * h * w)  # the pipeline computes it from this config; the scheduler ignores it
    rec = run_pipeline(io, meta, "i2v", pipe, 8002, 9002,
                       {"vae": "0.9.5", "scheduler_of": "0.9.5", "mu": mu, "mu_used": False}, image=image,
                       **pipeline_kwargs(ctx, mask, frames))
    with torch.no_grad():
        sig = replay_i2v(rec, tr, vae, ctx, mask, image, f, h, w)
    same("i2v: scheduler sigmas == linspace(1, 1/n, n), unshifted (float32)", pipe.scheduler.sigmas, sig)


def run_conditions(io, meta, tr, vae, ctx, mask):
    """(c) a transition: images at the first and the last frame; (d) one image mid-video, strength 0.8.
    Both with the ltx-tiny folder (0.9.5 VAE and scheduler)."""
    h, w = H // SPATIAL, W // SPATIAL
    pipe = LTXConditionPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER_095), vae=vae,
                                text_encoder=None, tokenizer=None, transformer=tr)
    noise_scale = 0.15  # image_cond_noise_scale, the pipeline's default
    for run, frames, conds, seed in (
        ("cond_transition", 9, [(smooth(743, (1, 3, H, W), 0.0, 1.0), 0, 1.0),
                                (smooth(744, (1, 3, H, W), 0.0, 1.0), 8, 1.0)], 8003),
        ("cond_middle", 17, [(smooth(745, (1, 3, H, W), 0.0, 1.0), 8, 0.8)], 8004),
    ):
        for k, (img, _, _) in enumerate(conds):
            io[f"{run}.image.{k}"] = img
        conditions = [LTXVideoCondition(image=img, frame_index=fi, strength=st) for img, fi, st in conds]
        info = {"vae": "0.9.5", "scheduler_of": "0.9.5", "image_cond_noise_scale": noise_scale,
                "conditions": [{"image": f"{run}.image.{k}", "frame_index": fi, "strength": st}
                               for k, (_, fi, st) in enumerate(conds)]}
        rec = run_pipeline(io, meta, run, pipe, seed, seed + 1000, info, conditions=conditions,
                           image_cond_noise_scale=noise_scale, **pipeline_kwargs(ctx, mask, frames))
        with torch.no_grad():
            sig = replay_condition(run, rec, tr, vae, ctx, mask, conds, latent_frames(frames), h, w, noise_scale)
        same(f"{run}: scheduler sigmas == (1000·linear_quadratic_schedule) / 1000 (float32)",
             pipe.scheduler.sigmas, sig)

    pipe.scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_091)
    try:
        pipe(conditions=conditions, output_type="latent", **pipeline_kwargs(ctx, mask, 9))
        refused = False
    except ValueError as e:
        refused = "mu" in str(e)
    check("LTXConditionPipeline refuses a dynamic-shifting scheduler (it passes no mu)", refused)


# ---------------------------------------------------------------------------------------------
# files


def write_single_file(out, name, tr, vae, layout, seed):
    sd = {**transformer_to_original(sdict(tr)), **vae_to_original(sdict(vae), layout, extra_statistics(vae, seed))}
    config = {"transformer": transformer_original_config(TRANSFORMER), "vae": vae_original_config(layout)}
    save_file(f16(sd), out / name, metadata={"config": json.dumps(config)})
    back = load_file(out / name)
    with safe_open(out / name, framework="pt") as fh:
        header = json.loads(fh.metadata()["config"])
    check(f"{name}: header metadata `config` == {{transformer, vae}} original configs", header == config)
    ok, detail = same_dicts(sfu.convert_ltx_transformer_checkpoint_to_diffusers(dict(back)), sdict(tr))
    check(f"{name}: transformer names -> diffusers convert_ltx_transformer_checkpoint_to_diffusers", ok, detail)
    ok, detail = same_dicts(convert_vae_back(back, layout), sdict(vae))
    check(f"{name}: vae names -> diffusers convert_ltx_vae_checkpoint_to_diffusers ({layout} table)", ok, detail)
    detected = sfu.infer_diffusers_model_type(back)
    print(f"  {name}: {len(sd)} tensors; diffusers infer_diffusers_model_type -> {detected!r}")
    return {"layout": layout, "tensors": len(sd), "diffusers_detects": detected}


def write_diffusers_folder(out, tr, vae, te, scheduler):
    d = out / "ltx-tiny"
    if d.exists():
        shutil.rmtree(d)
    copy.deepcopy(tr).half().save_pretrained(d / "transformer")
    copy.deepcopy(vae).half().save_pretrained(d / "vae")
    scheduler.save_pretrained(d / "scheduler")
    (d / "text_encoder").mkdir(parents=True)
    shutil.copyfile(DIFFUSION_FIXTURES / "t5xxl.safetensors", d / "text_encoder" / "model.safetensors")
    (d / "text_encoder" / "config.json").write_text(json.dumps(mdf.hf_config(te), indent=2, sort_keys=True) + "\n")
    (d / "tokenizer").mkdir()
    shutil.copyfile(DIFFUSION_FIXTURES / "tokenizer" / "t5" / "spiece.model", d / "tokenizer" / "spiece.model")
    extra = [f"<extra_id_{i}>" for i in range(100)]
    special = {"additional_special_tokens": extra, "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (d / "tokenizer" / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    (d / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(
        {**special, "clean_up_tokenization_spaces": True, "extra_ids": 100, "legacy": True, "model_max_length": 128,
         "sp_model_kwargs": {}, "tokenizer_class": "T5Tokenizer"}, indent=2) + "\n")
    index = {"_class_name": "LTXPipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
             "transformer": ["diffusers", "LTXVideoTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLLTXVideo"]}
    (d / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")

    ok, detail = same_dicts(sdict(LTXVideoTransformer3DModel.from_pretrained(d / "transformer")), sdict(tr))
    check("ltx-tiny/transformer loads with LTXVideoTransformer3DModel.from_pretrained (= the reference weights)",
          ok, detail)
    ok, detail = same_dicts(sdict(AutoencoderKLLTXVideo.from_pretrained(d / "vae")), sdict(vae))
    check("ltx-tiny/vae loads with AutoencoderKLLTXVideo.from_pretrained", ok, detail)
    te2 = T5EncoderModel.from_pretrained(d / "text_encoder", dtype=torch.float32).eval()  # default: the file's f16
    ids = torch.tensor([[5, 6, 7, 1, 0, 0]])
    with torch.no_grad():
        ok = torch.equal(te2(ids).last_hidden_state, te(ids).last_hidden_state)
    check("ltx-tiny/text_encoder loads with T5EncoderModel.from_pretrained", ok)
    s2 = FlowMatchEulerDiscreteScheduler.from_pretrained(d / "scheduler")
    check("ltx-tiny/scheduler loads with FlowMatchEulerDiscreteScheduler.from_pretrained",
          mdf.sched_config(s2) == mdf.sched_config(scheduler))


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--any-version", action="store_true", help="run with versions other than the pinned ones")
    args = ap.parse_args()
    have = {p: version(p) for p in PINNED}
    if have != PINNED and not args.any_version:
        raise SystemExit(f"pinned {PINNED}, found {have} (scripts/diffusion-fixture-venv.sh makes the venv)")
    diffusers.utils.logging.set_verbosity_error()
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(f"recording randn_tensor in {mdf.patch_randn()} diffusers modules; versions {have}")

    tr = build_transformer(701)
    vaes = {layout: build_vae(layout, 702 + i) for i, layout in enumerate(VAE)}
    te = load_t5()
    sched091 = FlowMatchEulerDiscreteScheduler(**SCHEDULER_091)
    sched095 = FlowMatchEulerDiscreteScheduler(**SCHEDULER_095)

    print("weights")
    files = {}
    for i, layout in enumerate(VAE):
        name = f"ltxv-tiny-{layout}.safetensors"
        files[name] = write_single_file(out, name, tr, vaes[layout], layout, 720 + i)
    write_diffusers_folder(out, tr, vaes["0.9.5"], te, sched095)

    io = {}
    meta = {
        "made_by": "scripts/make-video-fixture.py", "versions": have,
        "transformer": mdf.diffusers_config(tr), "text_encoder": mdf.hf_config(te),
        "vae": {layout: mdf.diffusers_config(v) for layout, v in vaes.items()},
        "vae_original": {layout: vae_original_config(layout) for layout in VAE},
        "transformer_original": transformer_original_config(TRANSFORMER),
        "scheduler": {"0.9.1": mdf.sched_config(sched091), "0.9.5": mdf.sched_config(sched095)},
        "single_files": files, "diffusers_folder": "ltx-tiny",
        "t5": {"prompt": PROMPT, "negative_prompt": NEGATIVE, "max_sequence_length": T5_LEN, "eos": 1, "pad": 0,
               "rows": ["negative", "prompt"]},
        "vae_io": {}, "runs": {},
    }

    print("references")
    ctx, mask = t5_io(io, te)
    meta["transformer_io"] = transformer_io(io, tr, ctx, mask)
    video = smooth(741, (1, 3, VAE_FRAMES, H, VAE_W), -1.0, 1.0)
    io["vae.video"] = video
    means = {layout: vae_io(io, meta, vaes[layout], layout, video) for layout in VAE}
    tiled_io(io, meta, vaes["0.9.5"], means["0.9.5"], video)

    print("pipelines")
    run_t2v(io, meta, tr, vaes["0.9.1"], ctx, mask)
    run_i2v(io, meta, tr, vaes["0.9.5"], ctx, mask)
    run_conditions(io, meta, tr, vaes["0.9.5"], ctx, mask)

    io = {k: (v.detach().float() if v.is_floating_point() else v.detach().to(torch.int64)).contiguous().clone()
          for k, v in io.items()}
    save_file(io, out / "ltx.io.safetensors")
    meta["io_tensors"] = {k: list(v.shape) for k, v in sorted(io.items())}
    (out / "ltx.json").write_text(json.dumps(mdf.json_safe(meta), indent=1, allow_nan=False) + "\n")

    failed = [c for c in mdf.CHECKS if not c[1]]
    print(f"\n{len(mdf.CHECKS) - len(failed)}/{len(mdf.CHECKS)} checks passed")
    paths = sorted(p for p in out.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in paths)
    print(f"\n{'file':<52}{'bytes':>12}")
    for p in paths:
        print(f"{str(p.relative_to(out)):<52}{p.stat().st_size:>12,}")
    print(f"{'total':<52}{total:>12,}  ({total / 1e6:.2f} MB)")
    if failed:
        for what, _, detail in failed:
            print(f"FAILED: {what}: {detail}", file=sys.stderr)
        raise SystemExit(1)
    if total > SIZE_BUDGET:
        raise SystemExit(f"fixtures are {total / 1e6:.2f} MB, over the {SIZE_BUDGET / 1e6:.0f} MB budget")


if __name__ == "__main__":
    main()
