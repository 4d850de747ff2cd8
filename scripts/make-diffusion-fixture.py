#!/usr/bin/env python3
"""Makes the diffusion parity fixtures: tiny random-weight versions of Stable Diffusion 1.5,
2.1 (+ SD-Turbo), SDXL (+ SDXL-Turbo), the SDXL refiner and FLUX.1-schnell, run by the
reference implementation (diffusers/transformers/peft on PyTorch, CPU, float32), so the candle
engine in crates/diffusion can be required to match them. tests/fixtures/diffusion/README.md
is the contract: what each file holds and how it was made.

    scripts/diffusion-fixture-venv.sh          # once: the pinned venv (~5.4 GB, outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-diffusion-fixture.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/diffusion/. Pinned: torch 2.15.0, diffusers 0.42.1,
transformers 5.23.0, peft 0.21.2, safetensors 0.8.0 (the script refuses other versions unless
--any-version is given). Takes about 15 s on 2 CPU cores and is deterministic: every random
tensor comes from a fixed seed, and two runs write byte-identical files.

What it does, per family:
  1. Builds the tiny parts (UNet/Flux transformer, VAE, CLIP/OpenCLIP/T5 text encoders) and
     gives every parameter a seeded random value (`randn * 0.5/sqrt(fan_in)`, norm weights
     1 + 0.1·randn), then rounds every parameter through float16. The weights are saved in f16;
     every reference is computed in f32 from exactly those f16-rounded values.
  2. Writes the weights in the layout the real released files use (LDM/SGM single files,
     OpenCLIP, BFL Flux, ComfyUI CLIP-L, HF T5) and checks each name map by a round trip
     through diffusers' own converters (single_file_utils.convert_ldm_*); it exits non-zero
     if a round trip is not exact.
  3. Records text-encoder outputs, one denoiser call and the VAE both ways.
  4. Runs the real diffusers pipelines (t2i, img2img, inpaint, SDXL, refiner, Flux) with
     `prompt_embeds`, recording every `randn_tensor` draw in order (the Rust side replays
     them), the latents after each step and the decoded image.
  5. Replays every run by hand from the recorded noise (the glue the Rust side must copy:
     noise order, VAE posterior sampling, strength, CFG, inpaint blending, Flux packing),
     using diffusers' schedulers for the per-step math, and requires the recorded latents.
  6. LoRA: one adapter saved as kohya and as diffusers/peft files (sd15), one kohya SGM-named
     adapter (sdxl); references from the merged weights, checked against diffusers'
     `load_lora_weights` on each file.

Every check prints one `[ok]`/`[FAIL]` line; the script exits 1 if any fails or if the
fixtures exceed 12 MB. Ends with a table of the files and their sizes.
"""
import copy
import inspect
import json
import math
import re
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

# CHECKS and check are also this module's for the scripts that import it (make-video-fixture.py).
from fixture_common import CHECKS, check, finish, parse_args, save_io, write_json  # noqa: F401

PINNED = {"torch": "2.15.0", "diffusers": "0.42.1", "transformers": "5.23.0", "peft": "0.21.2", "safetensors": "0.8.0"}

import diffusers  # noqa: E402
import diffusers.models.autoencoders.vae  # noqa: E402,F401  (DiagonalGaussianDistribution draws noise)
import diffusers.utils.torch_utils as torch_utils  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKL,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "diffusion"
H = W = 16  # image size; the tiny VAEs have 2 blocks, so latents are 8×8
LORA_SCALE = 0.8
LORA_R, LORA_ALPHA = 4, 8

# ---------------------------------------------------------------------------------------------
# Real scheduler configs (scheduler_config.json of the released repos; runs override per run)
SD15_SCHEDULER = {  # runwayml/stable-diffusion-v1-5 (PNDM; the runs build DDIM/Euler/… from it)
    "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "trained_betas": None, "clip_sample": False,
}
SD21_SCHEDULER = {  # stabilityai/stable-diffusion-2-1 (768, v-prediction)
    "_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "v_prediction", "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
}
SDXL_SCHEDULER = {  # stabilityai/stable-diffusion-xl-base-1.0 (and the refiner)
    "_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "interpolation_type": "linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
    "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False,
}
TURBO_SCHEDULER = {  # stabilityai/sdxl-turbo (SD-Turbo runs the same: Euler ancestral, trailing spacing)
    **SDXL_SCHEDULER, "_class_name": "EulerAncestralDiscreteScheduler", "timestep_spacing": "trailing",
}
FLUX_SCHEDULER = {  # black-forest-labs/FLUX.1-schnell
    "_class_name": "FlowMatchEulerDiscreteScheduler", "base_image_seq_len": 256, "base_shift": 0.5,
    "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 1.0,
    "use_dynamic_shifting": False,
}

# ---------------------------------------------------------------------------------------------
# Tiny configs (candle constraints: UNet norm_num_groups = 32)
UNET_SD15 = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=2, norm_num_groups=32,
)
UNET_SD21 = {**UNET_SD15, "use_linear_projection": True, "attention_head_dim": (2, 4)}
UNET_SDXL = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=64, attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2),
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=32 + 6 * 8, norm_num_groups=32,
)
UNET_REFINER = {**UNET_SDXL, "block_out_channels": (32, 32), "cross_attention_dim": 32,
                "transformer_layers_per_block": (1, 1),
                "projection_class_embeddings_input_dim": 32 + 5 * 8}
VAE_SD = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), layers_per_block=1,
    latent_channels=4, norm_num_groups=8, sample_size=16, scaling_factor=0.18215,
)
VAE_SDXL = {**VAE_SD, "scaling_factor": 0.13025, "force_upcast": True}
VAE_FLUX = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 32), layers_per_block=1,
    latent_channels=16, norm_num_groups=32, sample_size=16, use_quant_conv=False, use_post_quant_conv=False,
    scaling_factor=0.3611, shift_factor=0.1159,
)
CLIP_L = dict(  # eos = highest id, so argmax pooling and first-eos pooling agree
    vocab_size=1000, hidden_size=32, intermediate_size=37, num_hidden_layers=3, num_attention_heads=4,
    max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=998, eos_token_id=999, pad_token_id=1,
    projection_dim=32,
)
OPEN_CLIP = {**CLIP_L, "hidden_act": "gelu", "pad_token_id": 0}  # OpenCLIP H / bigG: exact gelu, pad "!" = 0
SD21_RESBLOCKS = 24  # like the real OpenCLIP-H: SD2 runs 23 of them (penultimate layer)
T5 = dict(
    vocab_size=1000, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
    relative_attention_max_distance=128, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
    pad_token_id=0, eos_token_id=1,
)
FLUX = dict(
    patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
    joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=False, axes_dims_rope=(4, 6, 6),
)
T5_LEN = 16
# DPM++ 2M runs 3 steps: with 2, diffusers' lower_order_final makes both steps first order
# (step 0 has no history, the last step is first order), so the 2nd-order update would go untested.
DPM_STEPS = 3

# Token ids (no tokenizer here: the Rust side tokenizes separately). Row 0 = negative prompt.
NEG_TOKENS = [320, 42, 731]
POS_TOKENS = [5, 6, 7, 42, 512, 13]


def clip_ids(pad):
    rows = []
    for toks in (NEG_TOKENS, POS_TOKENS):
        r = [998] + toks + [999]
        rows.append(r + [pad] * (77 - len(r)))
    return torch.tensor(rows, dtype=torch.int64)


# ---------------------------------------------------------------------------------------------
# helpers


def randomize(model, seed):
    """Seeded non-trivial values for every parameter, then rounded through f16."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for _, mod in model.named_modules():
            is_norm = "norm" in type(mod).__name__.lower()
            w = getattr(mod, "weight", None)
            fan_in = math.prod(w.shape[1:]) if isinstance(w, torch.nn.Parameter) and w.dim() >= 2 else None
            for pname, p in mod.named_parameters(recurse=False):
                if is_norm:
                    p.copy_((1.0 if pname in ("weight", "scale") else 0.0) + 0.1 * torch.randn_like(p))
                elif p.dim() >= 2:
                    p.copy_(torch.randn_like(p) * (0.5 / math.sqrt(math.prod(p.shape[1:]))))
                else:
                    p.copy_(torch.randn_like(p) * (0.5 / math.sqrt(fan_in or p.numel())))
        for p in model.parameters():
            p.copy_(p.half().float())
    return model.eval()


def f16(sd):
    return {k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous().clone()
            for k, v in sd.items()}


def sdict(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_dicts(a, b):
    if set(a) != set(b):
        return False, f"keys differ: only left {sorted(set(a) - set(b))[:6]}, only right {sorted(set(b) - set(a))[:6]}"
    bad = [k for k in a if a[k].shape != b[k].shape or not torch.equal(a[k].float(), b[k].float())]
    return not bad, (f"{len(a)} tensors identical" if not bad else f"values differ: {bad[:6]}")


def diffusers_config(model):
    return json.loads(model.to_json_string())


def hf_config(model):
    cfg = json.loads(model.config.to_json_string(use_diff=False))
    cfg["architectures"] = [type(model).__name__]
    cfg.pop("_name_or_path", None)
    return cfg


def sched_config(s):
    cfg = json.loads(s.to_json_string())
    cfg.pop("_use_default_values", None)
    return cfg


def json_safe(x):
    """Strict JSON: the one non-finite value (DPMSolverMultistepScheduler lambda_min_clipped = -inf) -> null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def gen(seed):
    return torch.Generator("cpu").manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# noise recorder: every `randn_tensor` name diffusers imported is replaced by a recording wrapper

_ORIG_RANDN = torch_utils.randn_tensor
NOISE = []


def _recording_randn(*args, **kwargs):
    out = _ORIG_RANDN(*args, **kwargs)
    f = sys._getframe(1)
    NOISE.append((f"{f.f_globals.get('__name__', '?')}.{f.f_code.co_qualname}", out.detach().float().clone()))
    return out


def patch_randn():
    n = 0
    for name, mod in list(sys.modules.items()):
        if name.startswith("diffusers") and getattr(mod, "randn_tensor", None) is _ORIG_RANDN:
            setattr(mod, "randn_tensor", _recording_randn)
            n += 1
    return n


def assert_patched(*objs):
    for o in objs:
        mod = sys.modules[type(o).__module__]
        if hasattr(mod, "randn_tensor") and mod.randn_tensor is not _recording_randn:
            raise SystemExit(f"randn_tensor of {mod.__name__} is not recorded")


def run_pipeline(io, meta, run, pipe, seed, extra_meta=None, **kwargs):
    """Runs `pipe` and records noise draws, per-step latents, timesteps and the image under `run.`."""
    patch_randn()
    assert_patched(pipe, pipe.scheduler, pipe.vae)
    import diffusers.models.autoencoders.vae as vae_mod
    assert vae_mod.randn_tensor is _recording_randn
    pipe.set_progress_bar_config(disable=True)
    steps, ts = [], []

    def on_step_end(_pipe, i, t, cb_kwargs):
        steps.append(cb_kwargs["latents"].detach().float().clone())
        ts.append(float(t))
        return {}

    unet_calls = []
    hook = None
    if getattr(pipe, "unet", None) is not None and pipe.unet.config.addition_embed_type == "text_time":
        def pre_hook(_m, args, kw):
            if not unet_calls:
                unet_calls.append({k: v.tolist() for k, v in kw["added_cond_kwargs"].items() if k == "time_ids"})
        hook = pipe.unet.register_forward_pre_hook(pre_hook, with_kwargs=True)
    NOISE.clear()
    with torch.no_grad():
        out = pipe(generator=gen(seed), callback_on_step_end=on_step_end, output_type="pt", **kwargs)
    if hook is not None:
        hook.remove()
    draws = list(NOISE)
    NOISE.clear()
    image = out.images.float()
    for k, (_, n) in enumerate(draws):
        io[f"{run}.noise.{k}"] = n
    io[f"{run}.timesteps"] = torch.tensor(ts, dtype=torch.float32)
    for i, s in enumerate(steps):
        io[f"{run}.step.{i}"] = s
    io[f"{run}.image"] = image
    s = pipe.scheduler
    entry = {
        "pipeline": type(pipe).__name__,
        "scheduler": sched_config(s),
        "seed": seed,
        "height": kwargs.get("height", H),
        "width": kwargs.get("width", W),
        "num_inference_steps": kwargs.get("num_inference_steps"),
        "guidance_scale": kwargs.get("guidance_scale"),
        "timesteps": ts,
        "scheduler_timesteps": [float(x) for x in s.timesteps],
        "init_noise_sigma": float(getattr(s, "init_noise_sigma", 1.0)),
        "noise": [{"key": f"{run}.noise.{k}", "shape": list(n.shape), "drawn_by": who}
                  for k, (who, n) in enumerate(draws)],
        "steps": len(steps),
        "image_range": [float(image.min()), float(image.max())],
    }
    if getattr(s, "sigmas", None) is not None:
        entry["sigmas"] = [float(x) for x in s.sigmas]
    if unet_calls:
        entry["unet_time_ids"] = unet_calls[0]["time_ids"]  # as the UNet got them: [negative, positive] under CFG
    entry.update(extra_meta or {})
    meta["runs"][run] = entry
    print(f"  run {run}: {entry['pipeline']} + {entry['scheduler']['_class_name']}, timesteps {ts}, "
          f"{len(draws)} noise draws ({', '.join('.'.join(w.split('.')[-2:]) for w, _ in draws)})")
    return image


def make_scheduler(base, cls, **overrides):
    return cls.from_config({k: v for k, v in base.items() if k != "_class_name"}, **overrides)


# ---------------------------------------------------------------------------------------------
# name maps: diffusers -> LDM/SGM single file

RESNET_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
              "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def unet_name_to_ldm(k, L, up_has_attn):
    """One diffusers UNet2DConditionModel name (module or parameter) -> LDM/SGM `model.diffusion_model` name."""
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            p, r = rest.split(".", 1)
            rest = RESNET_LDM[p] + "." + r
        return f"input_blocks.{1 + i * (L + 1) + j}.{0 if kind == 'resnets' else 1}.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", k):
        return f"input_blocks.{1 + int(m[1]) * (L + 1) + L}.0.op.{m[2]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            p, r = rest.split(".", 1)
            rest = RESNET_LDM[p] + "." + r
        return f"output_blocks.{i * (L + 1) + j}.{0 if kind == 'resnets' else 1}.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", k):
        i = int(m[1])
        return f"output_blocks.{i * (L + 1) + L}.{2 if up_has_attn(i) else 1}.conv.{m[2]}"
    if m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", k):
        kind, j, rest = m[1], int(m[2]), m[3]
        if kind == "resnets":
            p, r = rest.split(".", 1)
            rest = RESNET_LDM[p] + "." + r
        return f"middle_block.{2 * j if kind == 'resnets' else 1}.{rest}"
    head, last = k.rsplit(".", 1)
    return {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
            "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
            "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2"}[head] + "." + last


def unet_to_ldm(sd, cfg):
    L = cfg["layers_per_block"]
    up_types = cfg["up_block_types"]

    def up_has_attn(i):
        return "CrossAttn" in up_types[i]
    return {"model.diffusion_model." + unet_name_to_ldm(k, L, up_has_attn): v for k, v in sd.items()}


VAE_RES = {"conv_shortcut": "nin_shortcut"}
VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(sd, n_blocks, prefix):
    out = {}
    for k, v in sd.items():
        n = k
        if m := re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(\w+)$", k):
            part, du, i, j, layer, p = m[1], m[2], int(m[3]), int(m[4]), m[5], m[6]
            i = i if du == "down" else n_blocks - 1 - i
            n = f"{part}.{du}.{i}.block.{j}.{VAE_RES.get(layer, layer)}.{p}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)$", k):
            n = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)$", k):
            n = f"decoder.up.{n_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(\w+)\.(\w+)$", k):
            n = f"{m[1]}.mid.block_{int(m[2]) + 1}.{VAE_RES.get(m[3], m[3])}.{m[4]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)\.(\w+)$", k):
            n = f"{m[1]}.mid.attn_1.{VAE_ATTN[m[2]]}.{m[3]}"
            if m[3] == "weight" and v.dim() == 2:
                v = v[:, :, None, None]  # LDM keeps the attention projections as 1×1 convs
        elif m := re.match(r"(encoder|decoder)\.conv_norm_out\.(\w+)$", k):
            n = f"{m[1]}.norm_out.{m[2]}"
        out[prefix + n] = v.contiguous()
    return out


def clip_to_ldm(sd, prefix):
    """transformers CLIPTextModel (5.x: no `text_model.` in its state dict) -> `prefix` + text_model.* + position_ids."""
    out = {}
    for k, v in sd.items():
        k = k if k.startswith(("text_model.", "text_projection")) else "text_model." + k
        out[prefix + k] = v
    out[prefix + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    return out


def clip_to_open_clip(sd, prefix, extra_block=None):
    """transformers CLIPTextModel(WithProjection) -> OpenCLIP `prefix`{token_embedding, positional_embedding,
    transformer.resblocks.N.*, ln_final, text_projection (transposed), logit_scale}."""
    sd = {k.removeprefix("text_model."): v for k, v in sd.items()}
    out = {
        "token_embedding.weight": sd.pop("embeddings.token_embedding.weight"),
        "positional_embedding": sd.pop("embeddings.position_embedding.weight"),
        "ln_final.weight": sd.pop("final_layer_norm.weight"),
        "ln_final.bias": sd.pop("final_layer_norm.bias"),
    }
    if "text_projection.weight" in sd:
        out["text_projection"] = sd.pop("text_projection.weight").T.contiguous()
    layers = sorted({int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers.")})
    for i in layers:
        p = f"encoder.layers.{i}."
        r = f"transformer.resblocks.{i}."
        for w in ("weight", "bias"):
            out[r + f"attn.in_proj_{w}"] = torch.cat([sd.pop(p + f"self_attn.{x}_proj.{w}") for x in "qkv"]).contiguous()
            out[r + f"attn.out_proj.{w}"] = sd.pop(p + f"self_attn.out_proj.{w}")
            out[r + f"ln_1.{w}"] = sd.pop(p + f"layer_norm1.{w}")
            out[r + f"ln_2.{w}"] = sd.pop(p + f"layer_norm2.{w}")
            out[r + f"mlp.c_fc.{w}"] = sd.pop(p + f"mlp.fc1.{w}")
            out[r + f"mlp.c_proj.{w}"] = sd.pop(p + f"mlp.fc2.{w}")
    assert not sd, sorted(sd)
    out["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    return {prefix + k: v for k, v in out.items()}


def flux_to_bfl(sd, cfg):
    """diffusers FluxTransformer2DModel -> BFL flux1-schnell names (inverse of diffusers'
    convert_flux_transformer_checkpoint_to_diffusers)."""
    d = dict(sd)
    b = {}

    def mv(src, dst):
        b[dst] = d.pop(src)
    for p in ("weight", "bias"):
        mv(f"time_text_embed.timestep_embedder.linear_1.{p}", f"time_in.in_layer.{p}")
        mv(f"time_text_embed.timestep_embedder.linear_2.{p}", f"time_in.out_layer.{p}")
        mv(f"time_text_embed.text_embedder.linear_1.{p}", f"vector_in.in_layer.{p}")
        mv(f"time_text_embed.text_embedder.linear_2.{p}", f"vector_in.out_layer.{p}")
        mv(f"context_embedder.{p}", f"txt_in.{p}")
        mv(f"x_embedder.{p}", f"img_in.{p}")
        mv(f"proj_out.{p}", f"final_layer.linear.{p}")
        scale, shift = d.pop(f"norm_out.linear.{p}").chunk(2, 0)  # diffusers (scale, shift); BFL (shift, scale)
        b[f"final_layer.adaLN_modulation.1.{p}"] = torch.cat([shift, scale]).contiguous()
        for i in range(cfg["num_layers"]):
            pre, bb = f"transformer_blocks.{i}.", f"double_blocks.{i}."
            mv(pre + f"norm1.linear.{p}", bb + f"img_mod.lin.{p}")
            mv(pre + f"norm1_context.linear.{p}", bb + f"txt_mod.lin.{p}")
            b[bb + f"img_attn.qkv.{p}"] = torch.cat([d.pop(pre + f"attn.to_{x}.{p}") for x in "qkv"]).contiguous()
            b[bb + f"txt_attn.qkv.{p}"] = torch.cat([d.pop(pre + f"attn.add_{x}_proj.{p}") for x in "qkv"]).contiguous()
            mv(pre + f"ff.net.0.proj.{p}", bb + f"img_mlp.0.{p}")
            mv(pre + f"ff.net.2.{p}", bb + f"img_mlp.2.{p}")
            mv(pre + f"ff_context.net.0.proj.{p}", bb + f"txt_mlp.0.{p}")
            mv(pre + f"ff_context.net.2.{p}", bb + f"txt_mlp.2.{p}")
            mv(pre + f"attn.to_out.0.{p}", bb + f"img_attn.proj.{p}")
            mv(pre + f"attn.to_add_out.{p}", bb + f"txt_attn.proj.{p}")
        for i in range(cfg["num_single_layers"]):
            pre, bb = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
            mv(pre + f"norm.linear.{p}", bb + f"modulation.lin.{p}")
            b[bb + f"linear1.{p}"] = torch.cat([d.pop(pre + f"attn.to_{x}.{p}") for x in "qkv"]
                                               + [d.pop(pre + f"proj_mlp.{p}")]).contiguous()
            mv(pre + f"proj_out.{p}", bb + f"linear2.{p}")
    for i in range(cfg["num_layers"]):
        pre, bb = f"transformer_blocks.{i}.attn.", f"double_blocks.{i}."
        mv(pre + "norm_q.weight", bb + "img_attn.norm.query_norm.scale")
        mv(pre + "norm_k.weight", bb + "img_attn.norm.key_norm.scale")
        mv(pre + "norm_added_q.weight", bb + "txt_attn.norm.query_norm.scale")
        mv(pre + "norm_added_k.weight", bb + "txt_attn.norm.key_norm.scale")
    for i in range(cfg["num_single_layers"]):
        pre, bb = f"single_transformer_blocks.{i}.attn.", f"single_blocks.{i}."
        mv(pre + "norm_q.weight", bb + "norm.query_norm.scale")
        mv(pre + "norm_k.weight", bb + "norm.key_norm.scale")
    assert not d, sorted(d)
    return b


def bfl_expected_shapes(cfg):
    """Every tensor of the real FLUX.1-schnell file (BFL layout) for this config, with the shapes candle's
    flux::model::Flux::new (candle-transformers 0.11.1) asks its VarBuilder for."""
    h = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    hd, mlp, cin = cfg["attention_head_dim"], 4 * cfg["num_attention_heads"] * cfg["attention_head_dim"], cfg["in_channels"]
    e = {}

    def lin(name, o, i):
        e[name + ".weight"], e[name + ".bias"] = [o, i], [o]
    lin("img_in", h, cin)
    lin("txt_in", h, cfg["joint_attention_dim"])
    lin("time_in.in_layer", h, 256)
    lin("time_in.out_layer", h, h)
    lin("vector_in.in_layer", h, cfg["pooled_projection_dim"])
    lin("vector_in.out_layer", h, h)
    for i in range(cfg["num_layers"]):
        for s in ("img", "txt"):
            p = f"double_blocks.{i}.{s}_"
            lin(p + "mod.lin", 6 * h, h)
            lin(p + "attn.qkv", 3 * h, h)
            e[p + "attn.norm.query_norm.scale"] = [hd]
            e[p + "attn.norm.key_norm.scale"] = [hd]
            lin(p + "attn.proj", h, h)
            lin(p + "mlp.0", mlp, h)
            lin(p + "mlp.2", h, mlp)
    for i in range(cfg["num_single_layers"]):
        p = f"single_blocks.{i}."
        lin(p + "linear1", 3 * h + mlp, h)
        lin(p + "linear2", h, h + mlp)
        e[p + "norm.query_norm.scale"] = [hd]
        e[p + "norm.key_norm.scale"] = [hd]
        lin(p + "modulation.lin", 3 * h, h)
    lin("final_layer.linear", cin, h)  # patch 1 × 1 × out_channels (= in_channels)
    lin("final_layer.adaLN_modulation.1", 2 * h, h)
    return e


def flux_bfl_roundtrip(bfl, inner_dim):
    """diffusers' own convert_flux_transformer_checkpoint_to_diffusers, with its hardcoded
    `inner_dim = 3072` (FLUX.1's hidden size) replaced by the tiny model's."""
    src = inspect.getsource(sfu.convert_flux_transformer_checkpoint_to_diffusers)
    assert src.count("inner_dim = 3072") == 1
    ns = dict(vars(sfu))
    exec(src.replace("inner_dim = 3072", f"inner_dim = {inner_dim}"), ns)
    return ns["convert_flux_transformer_checkpoint_to_diffusers"](dict(bfl))


# ---------------------------------------------------------------------------------------------
# round-trip checks through diffusers' converters


def check_unet(ldm, unet, what):
    back = sfu.convert_ldm_unet_checkpoint(dict(ldm), dict(unet.config))
    ok, detail = same_dicts(back, sdict(unet))
    check(f"{what}: UNet LDM names -> diffusers convert_ldm_unet_checkpoint", ok, detail)


def check_vae(ldm, vae, what):
    back = sfu.convert_ldm_vae_checkpoint(dict(ldm), dict(vae.config))
    ok, detail = same_dicts(back, sdict(vae))
    check(f"{what}: VAE LDM names -> diffusers convert_ldm_vae_checkpoint", ok, detail)


def check_clip(ldm, te, what, remove_prefix=None):
    back = sfu.convert_ldm_clip_checkpoint(dict(ldm), remove_prefix)
    extra = {k for k in back if k.endswith("embeddings.position_ids")}
    back = {k.removeprefix("text_model.") if not hasattr(te, "text_model") else k: v
            for k, v in back.items() if k not in extra}
    ok, detail = same_dicts(back, sdict(te))
    check(f"{what}: CLIP-L LDM names -> diffusers convert_ldm_clip_checkpoint", ok,
          detail + f" (+ {len(extra)} position_ids buffer)")


def check_open_clip(ldm, te, prefix, what):
    back = sfu.convert_open_clip_checkpoint(te, dict(ldm), prefix=prefix)
    if not hasattr(te, "text_model"):
        back = {k.removeprefix("text_model."): v for k, v in back.items()}
    ok, detail = same_dicts(back, sdict(te))
    check(f"{what}: OpenCLIP names -> diffusers convert_open_clip_checkpoint(prefix={prefix!r})", ok, detail)
    return back


# ---------------------------------------------------------------------------------------------
# text encoders, single calls


def unet_call(io, unet, seed, t, ctx, time_ids=None, pooled=None, prefix="unet"):
    lat = torch.randn(2, 4, 8, 8, generator=gen(seed))
    kw = {}
    if time_ids is not None:
        kw["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
    with torch.no_grad():
        out = unet(lat, t, ctx, **kw).sample
    io[f"{prefix}.latents"], io[f"{prefix}.t"], io[f"{prefix}.ctx"] = lat, torch.tensor([float(t)]), ctx
    if time_ids is not None:
        io[f"{prefix}.time_ids"], io[f"{prefix}.pooled"] = time_ids, pooled
    io[f"{prefix}.out"] = out
    return lat, out


def vae_io(io, vae, seed):
    g = gen(seed)
    img = torch.rand(1, 3, H, W, generator=g) * 2 - 1
    lat = torch.randn(1, vae.config.latent_channels, H // 2, W // 2, generator=g)
    with torch.no_grad():
        dist = vae.encode(img).latent_dist
        dec = vae.decode(lat).sample
    io["vae.image"], io["vae.mean"], io["vae.logvar"] = img, dist.mean, dist.logvar
    io["vae.latents"], io["vae.decoded"] = lat, dec


def init_image(seed):
    """A smooth [1,3,16,16] image in [0,1] (the img2img/inpaint input)."""
    g = gen(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)
    return (img + 0.1 * torch.rand(1, 3, H, W, generator=g)).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# replays: the pipeline glue re-done by hand from the recorded noise (what the Rust side must do),
# with diffusers' scheduler objects for the per-step math; must reproduce the recorded latents/image


def replay_sd(io, meta, run, unet, vae, ctx2, guidance, *, init=None, strength=None, mask=None, added=None):
    e = meta["runs"][run]
    cfg = dict(e["scheduler"])
    s = getattr(diffusers, cfg.pop("_class_name")).from_config(cfg)
    n = e["num_inference_steps"]
    s.set_timesteps(n)
    noise = [io[f"{run}.noise.{k}"] for k in range(len(e["noise"]))]
    sf = vae.config.scaling_factor
    ts = s.timesteps
    k = 0
    if init is not None:  # VAE posterior sample (noise 0), scaled: z = sf * (mean + exp(logvar/2) * n0)
        d = vae.encode(2 * init - 1).latent_dist
        z = sf * (d.mean + torch.exp(0.5 * d.logvar.clamp(-30, 20)) * noise[0])
        k = 1
    if mask is None and init is not None:  # img2img
        t_start = n - min(int(n * strength), n)
        ts = ts[t_start * s.order:]
        s.set_begin_index(t_start * s.order)
        x = s.add_noise(z, noise[k], ts[:1])
    else:
        x = noise[k] * s.init_noise_sigma
    if mask is not None:
        m = (mask >= 0.5).float()
        m_lat = torch.nn.functional.interpolate(m, size=(m.shape[-2] // 2, m.shape[-1] // 2))
        check(f"replay {run}: mask downsampling is nearest = mask[..., ::2, ::2]",
              torch.equal(m_lat, m[..., ::2, ::2]))
    cfg_on = guidance > 1.0
    worst = 0.0
    for i, t in enumerate(ts):
        xin = torch.cat([x, x]) if cfg_on else x
        xin = s.scale_model_input(xin, t)
        c = ctx2 if cfg_on else ctx2[1:]
        kw = {}
        if added is not None:
            kw["added_cond_kwargs"] = {k2: (v if cfg_on else v[1:]) for k2, v in added.items()}
        eps = unet(xin, t, c, **kw).sample
        if cfg_on:
            u, cnd = eps.chunk(2)
            eps = u + guidance * (cnd - u)
        step_noise = noise[k + 1 + i] if "Ancestral" in type(s).__name__ else None
        if step_noise is not None:  # Euler a: x = x + d·(σ_down − σ) + n·σ_up, n = the recorded draw
            sigma, sigma_to = s.sigmas[s.step_index], s.sigmas[s.step_index + 1]  # scale_model_input set step_index
            x0 = x - sigma * eps
            up = (sigma_to ** 2 * (sigma ** 2 - sigma_to ** 2) / sigma ** 2) ** 0.5
            down = (sigma_to ** 2 - up ** 2) ** 0.5
            x = x + (x - x0) / sigma * (down - sigma) + step_noise * up
            s._step_index += 1
        else:
            x = s.step(eps, t, x).prev_sample
        if mask is not None:  # 4-channel inpaint: keep the (re-noised) original outside the mask
            proper = z if i == len(ts) - 1 else s.add_noise(z, noise[k], ts[i + 1:i + 2])
            x = (1 - m_lat) * proper + m_lat * x
        worst = max(worst, rel(x, io[f"{run}.step.{i}"]))
    img = (vae.decode(x / sf).sample / 2 + 0.5).clamp(0, 1)
    worst_img = rel(img, io[f"{run}.image"])
    check(f"replay {run}: hand-made glue reproduces every step and the image", worst < 1e-5 and worst_img < 1e-5,
          f"worst step rel {worst:.1e}, image rel {worst_img:.1e}")


def replay_flux(io, meta, run, fx, vae, txt, pooled):
    e = meta["runs"][run]
    n = e["num_inference_steps"]
    sig = torch.linspace(1.0, 1.0 / n, n).tolist() + [0.0]  # schnell: shift 1, no dynamic shifting
    noise = io[f"{run}.noise.0"]  # [1, c, h, w]
    b, c, h, w = noise.shape
    x = noise.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    ids = ids.reshape(-1, 3)
    worst = 0.0
    for i in range(n):
        v = fx(hidden_states=x, encoder_hidden_states=txt, pooled_projections=pooled,
               timestep=torch.tensor([sig[i]]), img_ids=ids, txt_ids=torch.zeros(txt.shape[1], 3)).sample
        x = x + (sig[i + 1] - sig[i]) * v
        worst = max(worst, rel(x, io[f"{run}.step.{i}"]))
    lat = x.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
    img = (vae.decode(lat / vae.config.scaling_factor + vae.config.shift_factor).sample / 2 + 0.5).clamp(0, 1)
    ts_ok = [round(t, 3) for t in e["timesteps"]] == [round(1000 * t, 3) for t in sig[:n]]
    check(f"replay {run}: pack 2×2, img_ids (0, row, col), x += (σ_next − σ)·v, unpack, /scale + shift",
          ts_ok and worst < 1e-5 and rel(img, io[f"{run}.image"]) < 1e-5,
          f"timesteps = 1000·σ {ts_ok}, worst step rel {worst:.1e}, image rel {rel(img, io[f'{run}.image']):.1e}")


# ---------------------------------------------------------------------------------------------
# families


def new_meta(family, weights):
    return {"family": family, "versions": {p: version(p) for p in PINNED}, "weights": weights,
            "image": {"height": H, "width": W}, "runs": {}}


def fam_sd15(out):
    print("sd15")
    unet = randomize(UNet2DConditionModel(**UNET_SD15), 101)
    vae = randomize(AutoencoderKL(**VAE_SD), 102)
    te = randomize(CLIPTextModel(CLIPTextConfig(**CLIP_L)), 103)

    ldm = {**unet_to_ldm(sdict(unet), dict(unet.config)), **vae_to_ldm(sdict(vae), 2, "first_stage_model."),
           **clip_to_ldm(sdict(te), "cond_stage_model.transformer.")}
    check_unet(ldm, unet, "sd15")
    check_vae(ldm, vae, "sd15")
    check_clip(ldm, te, "sd15")
    save_file(f16(ldm), out / "sd15.safetensors")

    io = {}
    ids = clip_ids(pad=999)
    with torch.no_grad():
        hidden = te(ids).last_hidden_state
    io["ids"], io["te.hidden"] = ids, hidden
    unet_call(io, unet, 111, 501, hidden)
    vae_io(io, vae, 112)

    meta = new_meta("sd15", {"file": "sd15.safetensors", "layout": "ldm"})
    meta.update(unet=diffusers_config(unet), vae=diffusers_config(vae), text_encoder=hf_config(te),
                scheduler=SD15_SCHEDULER, ids={"bos": 998, "eos": 999, "pad": 999, "length": 77},
                inputs={"unet.t": 501})
    neg, pos = hidden[0:1], hidden[1:2]
    parts = dict(vae=vae, text_encoder=te, tokenizer=None, unet=unet, safety_checker=None,
                 feature_extractor=None, requires_safety_checker=False)
    pipe = StableDiffusionPipeline(scheduler=make_scheduler(SD15_SCHEDULER, DDIMScheduler), **parts)
    for run, cls, seed, steps in (("ddim", DDIMScheduler, 1001, 2), ("euler", EulerDiscreteScheduler, 1002, 2),
                                  ("euler_a", EulerAncestralDiscreteScheduler, 1003, 2),
                                  ("dpmpp_2m", DPMSolverMultistepScheduler, 1004, DPM_STEPS)):
        pipe.scheduler = make_scheduler(SD15_SCHEDULER, cls)
        run_pipeline(io, meta, f"t2i.{run}", pipe, seed, prompt_embeds=pos, negative_prompt_embeds=neg,
                     height=H, width=W, num_inference_steps=steps, guidance_scale=7.5)

    init = init_image(1101)
    i2i = StableDiffusionImg2ImgPipeline(scheduler=make_scheduler(SD15_SCHEDULER, EulerDiscreteScheduler), **parts)
    io["i2i.init"] = init
    run_pipeline(io, meta, "i2i", i2i, 1102, extra_meta={"strength": 0.6}, image=init, strength=0.6,
                 prompt_embeds=pos, negative_prompt_embeds=neg, num_inference_steps=4, guidance_scale=7.5)

    mask = torch.zeros(1, 1, H, W)
    mask[..., 3:12, 5:14] = 1.0  # odd edges: nearest downsampling (pixel 2i) differs from pooling
    inp = StableDiffusionInpaintPipeline(scheduler=make_scheduler(SD15_SCHEDULER, DDIMScheduler), **parts)
    io["inpaint.init"], io["inpaint.mask"] = init, mask
    run_pipeline(io, meta, "inpaint", inp, 1103, extra_meta={"strength": 1.0}, image=init, mask_image=mask.clone(),
                 strength=1.0, prompt_embeds=pos, negative_prompt_embeds=neg, height=H, width=W,
                 num_inference_steps=2, guidance_scale=7.5)

    with torch.no_grad():
        for run in ("t2i.ddim", "t2i.euler", "t2i.euler_a", "t2i.dpmpp_2m"):
            replay_sd(io, meta, run, unet, vae, hidden, 7.5)
        replay_sd(io, meta, "i2i", unet, vae, hidden, 7.5, init=init, strength=0.6)
        replay_sd(io, meta, "inpaint", unet, vae, hidden, 7.5, init=init, mask=mask)
    lora_sd15(out, io, meta, unet, vae, te, ids, parts)
    return io, meta


# ---------------------------------------------------------------------------------------------
# LoRA


def lora_targets(model, names):
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and any(n.endswith("." + t) or n == t for t in names)]


def make_lora(model, names, seed):
    """{module name: (A [r, in], B [out, r])}, seeded, f16-rounded."""
    torch.manual_seed(seed)
    ad = {}
    for n, m in lora_targets(model, names):
        a = torch.randn(LORA_R, m.in_features) * (0.5 / math.sqrt(m.in_features))
        b = torch.randn(m.out_features, LORA_R) * (0.5 / math.sqrt(LORA_R))
        ad[n] = (a.half().float(), b.half().float())
    return ad


def merged(model, adapter, w):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for n, (a, b) in adapter.items():
            lin = m.get_submodule(n)
            lin.weight += w * (LORA_ALPHA / LORA_R) * (b @ a)
    return m


def kohya_entries(prefix, name, a, b):
    k = prefix + name.replace(".", "_")
    return {f"{k}.lora_down.weight": a, f"{k}.lora_up.weight": b, f"{k}.alpha": torch.tensor(float(LORA_ALPHA))}


UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TE_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def lora_sd15(out, io, meta, unet, vae, te, ids, parts):
    from peft import LoraConfig
    print("  lora (sd15)")
    ad_u = make_lora(unet, UNET_LORA_TARGETS, 201)
    ad_t = make_lora(te, TE_LORA_TARGETS, 202)
    te_name = (lambda n: n if hasattr(te, "text_model") else "text_model." + n)  # real files: text_model.encoder…

    # kohya (sd-scripts) names: SD1.x kohya LoRAs use diffusers module names with "_"
    kohya = {}
    for n, (a, b) in ad_u.items():
        kohya.update(kohya_entries("lora_unet_", n, a, b))
    for n, (a, b) in ad_t.items():
        kohya.update(kohya_entries("lora_te_", te_name(n), a, b))
    save_file(f16(kohya), out / "sd15_lora_kohya.safetensors")

    # diffusers/peft: StableDiffusionPipeline.save_lora_weights with the peft LoraConfig as metadata
    unet_layers, te_layers = {}, {}
    for n, (a, b) in ad_u.items():
        unet_layers[f"{n}.lora_A.weight"], unet_layers[f"{n}.lora_B.weight"] = a, b
    for n, (a, b) in ad_t.items():
        te_layers[f"{te_name(n)}.lora_A.weight"], te_layers[f"{te_name(n)}.lora_B.weight"] = a, b
    cfg_u = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=UNET_LORA_TARGETS, init_lora_weights=False)
    cfg_t = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=TE_LORA_TARGETS, init_lora_weights=False)

    def peft_meta(cfg):
        d = cfg.to_dict()
        return {k: (sorted(v) if isinstance(v, set) else v) for k, v in d.items()}
    with tempfile.TemporaryDirectory() as tmp:
        StableDiffusionPipeline.save_lora_weights(
            tmp, unet_lora_layers=f16(unet_layers), text_encoder_lora_layers=f16(te_layers),
            weight_name="lora.safetensors", unet_lora_adapter_metadata=peft_meta(cfg_u),
            text_encoder_lora_adapter_metadata=peft_meta(cfg_t))
        (out / "sd15_lora_peft.safetensors").write_bytes((Path(tmp) / "lora.safetensors").read_bytes())
    with safe_open(out / "sd15_lora_peft.safetensors", "pt") as f:
        header_meta = f.metadata()
    lam = json.loads(header_meta["lora_adapter_metadata"])
    check("sd15 peft LoRA: header metadata carries lora_alpha", lam.get("unet.lora_alpha") == LORA_ALPHA
          and lam.get("text_encoder.lora_alpha") == LORA_ALPHA and lam.get("unet.r") == LORA_R,
          f"metadata keys {sorted(header_meta)}; unet.r={lam.get('unet.r')} unet.lora_alpha={lam.get('unet.lora_alpha')}")

    # reference: merged weights W + w·alpha/r·B·A
    lat, t, ctx = io["unet.latents"], 501, None
    te_m, unet_m = merged(te, ad_t, LORA_SCALE), merged(unet, ad_u, LORA_SCALE)
    with torch.no_grad():
        hid_ref = te_m(ids).last_hidden_state
        out_ref = unet_m(lat, t, hid_ref).sample
    io["lora.te.hidden"], io["lora.unet.out"] = hid_ref, out_ref
    check("sd15 LoRA changes the outputs", rel(hid_ref, io["te.hidden"]) > 1e-2 and rel(out_ref, io["unet.out"]) > 1e-2,
          f"rel change te {rel(hid_ref, io['te.hidden']):.3f}, unet {rel(out_ref, io['unet.out']):.3f}")

    # diffusers' load_lora_weights on both files must reproduce it
    for fname in ("sd15_lora_kohya.safetensors", "sd15_lora_peft.safetensors"):
        p = StableDiffusionPipeline(scheduler=make_scheduler(SD15_SCHEDULER, DDIMScheduler),
                                    **{**parts, "unet": copy.deepcopy(unet), "text_encoder": copy.deepcopy(te)})
        p.load_lora_weights(str(out / fname), adapter_name="style")
        p.set_adapters(["style"], adapter_weights=[LORA_SCALE])
        l_u = {n.removesuffix(".lora_A.style") for n, _ in p.unet.named_modules() if n.endswith(".lora_A.style")}
        l_t = {n.removesuffix(".lora_A.style") for n, _ in p.text_encoder.named_modules() if n.endswith(".lora_A.style")}
        with torch.no_grad():
            h = p.text_encoder(ids).last_hidden_state
            o = p.unet(lat, t, hid_ref).sample
        check(f"sd15 {fname}: diffusers load_lora_weights + set_adapters({LORA_SCALE}) == merged reference",
              l_u == set(ad_u) and l_t == set(ad_t) and rel(h, hid_ref) < 1e-5 and rel(o, out_ref) < 1e-5,
              f"{len(l_u)}/{len(ad_u)} unet + {len(l_t)}/{len(ad_t)} te modules, rel te {rel(h, hid_ref):.1e}, unet {rel(o, out_ref):.1e}")
    meta["lora"] = {
        "files": ["sd15_lora_kohya.safetensors", "sd15_lora_peft.safetensors"], "scale": LORA_SCALE,
        "rank": LORA_R, "alpha": LORA_ALPHA, "unet_targets": UNET_LORA_TARGETS, "te_targets": TE_LORA_TARGETS,
        "unet_modules": len(ad_u), "te_modules": len(ad_t),
        "delta": "W += scale * alpha / rank * (up @ down) = scale * alpha / r * (lora_B @ lora_A)",
        "inputs": "lora.te.hidden: te(ids) with the adapter; lora.unet.out: unet(unet.latents, unet.t, lora.te.hidden)",
        "peft_header_metadata": {k: v for k, v in sorted(lam.items()) if k.split(".", 1)[1] in
                                 ("r", "lora_alpha", "target_modules", "use_rslora", "use_dora", "rank_pattern", "alpha_pattern")},
    }


def lora_sdxl(out, io, meta, unet, ctx, time_ids, pooled):
    print("  lora (sdxl, kohya SGM names)")
    ad = make_lora(unet, UNET_LORA_TARGETS, 203)
    cfg = dict(unet.config)

    def up_has_attn(i):
        return "CrossAttn" in cfg["up_block_types"][i]
    kohya, names = {}, {}
    for n, (a, b) in ad.items():
        sgm = unet_name_to_ldm(n + ".weight", cfg["layers_per_block"], up_has_attn).removesuffix(".weight")
        names[n] = sgm
        kohya.update(kohya_entries("lora_unet_", sgm, a, b))
    save_file(f16(kohya), out / "sdxl_lora_kohya.safetensors")
    lat, t = io["unet.latents"], float(io["unet.t"][0])
    unet_m = merged(unet, ad, LORA_SCALE)
    with torch.no_grad():
        ref = unet_m(lat, t, ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
    io["lora.unet.out"] = ref
    # peft adapter on the diffusers UNet (diffusers names) = the same reference
    from peft import LoraConfig
    u_peft = copy.deepcopy(unet)
    u_peft.add_adapter(LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=UNET_LORA_TARGETS,
                                  init_lora_weights=False), adapter_name="ref")
    with torch.no_grad():
        for n, (a, b) in ad.items():
            lin = u_peft.get_submodule(n)
            lin.lora_A["ref"].weight.copy_(a)
            lin.lora_B["ref"].weight.copy_(b)
    u_peft.set_adapters(["ref"], weights=[LORA_SCALE])
    with torch.no_grad():
        peft_out = u_peft(lat, t, ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
    check("sdxl LoRA: peft adapter (diffusers names) at scale 0.8 == merged reference", rel(peft_out, ref) < 1e-5,
          f"rel {rel(peft_out, ref):.1e}")
    # diffusers' loader maps the SGM kohya names back (_maybe_map_sgm_blocks_to_diffusers)
    p = StableDiffusionXLPipeline(vae=None, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None,
                                  unet=copy.deepcopy(unet), scheduler=make_scheduler(SDXL_SCHEDULER, EulerDiscreteScheduler),
                                  add_watermarker=False)
    p.load_lora_weights(str(out / "sdxl_lora_kohya.safetensors"), adapter_name="style")
    p.set_adapters(["style"], adapter_weights=[LORA_SCALE])
    with torch.no_grad():
        o = p.unet(lat, t, ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
    check("sdxl sdxl_lora_kohya.safetensors: diffusers load_lora_weights (SGM->diffusers) == peft reference",
          rel(o, peft_out) < 1e-5 and rel(o, ref) < 1e-5, f"rel {rel(o, peft_out):.1e} (vs merged {rel(o, ref):.1e})")
    loaded = {n.removesuffix(".lora_A.style") for n, _ in p.unet.named_modules() if n.endswith(".lora_A.style")}
    check("sdxl kohya SGM names: diffusers maps them onto exactly the adapter's diffusers modules",
          loaded == set(ad), f"{len(kohya)} tensors, e.g. {sorted(names.values())[0]} -> {sorted(names)[0]}")
    meta["lora"] = {
        "files": ["sdxl_lora_kohya.safetensors"], "scale": LORA_SCALE, "rank": LORA_R, "alpha": LORA_ALPHA,
        "unet_targets": UNET_LORA_TARGETS, "unet_modules": len(ad),
        "sgm_names": {v: k for k, v in sorted(names.items())},
        "delta": "W += scale * alpha / rank * (up @ down)",
        "inputs": "lora.unet.out: unet(unet.latents, unet.t, unet.ctx, unet.time_ids, unet.pooled) with the adapter",
    }


def fam_sd21(out):
    print("sd21")
    unet = randomize(UNet2DConditionModel(**UNET_SD21), 301)
    vae = randomize(AutoencoderKL(**VAE_SD), 302)
    full = randomize(CLIPTextModel(CLIPTextConfig(**{**OPEN_CLIP, "num_hidden_layers": SD21_RESBLOCKS})), 303)
    te = CLIPTextModel(CLIPTextConfig(**{**OPEN_CLIP, "num_hidden_layers": SD21_RESBLOCKS - 1})).eval()
    fsd = sdict(full)
    te.load_state_dict({k: v for k, v in fsd.items() if f"layers.{SD21_RESBLOCKS - 1}." not in k}, strict=True)
    torch.manual_seed(304)
    proj = (torch.randn(32, 32) * (0.5 / math.sqrt(32))).half().float()  # unused by SD2, present in the real file

    oc = clip_to_open_clip({**fsd, "text_projection.weight": proj}, "cond_stage_model.model.")
    ldm = {**unet_to_ldm(sdict(unet), dict(unet.config)), **vae_to_ldm(sdict(vae), 2, "first_stage_model."), **oc}
    check_unet(ldm, unet, "sd21")
    check_vae(ldm, vae, "sd21")
    last = f"cond_stage_model.model.transformer.resblocks.{SD21_RESBLOCKS - 1}."
    check("sd21: the converter's hardcoded SD2 ignore list is exactly our last resblock + text_projection",
          {k for k in oc if k.startswith(last)} | {"cond_stage_model.model.text_projection"}
          == set(sfu.SD_2_TEXT_ENCODER_KEYS_TO_IGNORE), f"{len(sfu.SD_2_TEXT_ENCODER_KEYS_TO_IGNORE)} keys")
    check_open_clip(ldm, te, "cond_stage_model.model.", "sd21")
    save_file(f16(ldm), out / "sd21.safetensors")

    io = {}
    ids = clip_ids(pad=0)
    with torch.no_grad():
        hidden = te(ids).last_hidden_state
        o = full(ids, output_hidden_states=True)
        via_full = full.final_layer_norm(o.hidden_states[-2])
    check("sd21: 23-layer diffusers encoder == ln_final(penultimate of the 24 resblocks)",
          rel(via_full, hidden) < 1e-6, f"rel {rel(via_full, hidden):.1e}")
    io["ids"], io["te.hidden"] = ids, hidden
    unet_call(io, unet, 311, 801, hidden)
    vae_io(io, vae, 312)
    meta = new_meta("sd21", {"file": "sd21.safetensors", "layout": "ldm+openclip",
                             "openclip_resblocks": SD21_RESBLOCKS, "used_resblocks": SD21_RESBLOCKS - 1})
    meta.update(unet=diffusers_config(unet), vae=diffusers_config(vae), text_encoder=hf_config(te),
                scheduler=SD21_SCHEDULER, ids={"bos": 998, "eos": 999, "pad": 0, "length": 77},
                inputs={"unet.t": 801})
    neg, pos = hidden[0:1], hidden[1:2]
    parts = dict(vae=vae, text_encoder=te, tokenizer=None, unet=unet, safety_checker=None,
                 feature_extractor=None, requires_safety_checker=False)
    pipe = StableDiffusionPipeline(scheduler=make_scheduler(SD21_SCHEDULER, DPMSolverMultistepScheduler), **parts)
    run_pipeline(io, meta, "t2i.dpmpp_2m", pipe, 3001, prompt_embeds=pos, negative_prompt_embeds=neg,
                 height=H, width=W, num_inference_steps=DPM_STEPS, guidance_scale=7.5)
    pipe.scheduler = make_scheduler(TURBO_SCHEDULER, EulerAncestralDiscreteScheduler)
    run_pipeline(io, meta, "t2i.euler_a", pipe, 3002, extra_meta={"model": "SD-Turbo (epsilon, trailing, CFG off)"},
                 prompt_embeds=pos, negative_prompt_embeds=neg, height=H, width=W, num_inference_steps=2,
                 guidance_scale=0.0)
    with torch.no_grad():
        replay_sd(io, meta, "t2i.dpmpp_2m", unet, vae, hidden, 7.5)
        replay_sd(io, meta, "t2i.euler_a", unet, vae, hidden, 0.0)
    return io, meta


def fam_sdxl(out):
    print("sdxl")
    unet = randomize(UNet2DConditionModel(**UNET_SDXL), 401)
    vae = randomize(AutoencoderKL(**VAE_SDXL), 402)
    te1 = randomize(CLIPTextModel(CLIPTextConfig(**CLIP_L)), 403)
    te2 = randomize(CLIPTextModelWithProjection(CLIPTextConfig(**OPEN_CLIP)), 404)
    ldm = {**unet_to_ldm(sdict(unet), dict(unet.config)), **vae_to_ldm(sdict(vae), 2, "first_stage_model."),
           **clip_to_ldm(sdict(te1), "conditioner.embedders.0.transformer."),
           **clip_to_open_clip(sdict(te2), "conditioner.embedders.1.model.")}
    check_unet(ldm, unet, "sdxl")
    check_vae(ldm, vae, "sdxl")
    check_clip({k: v for k, v in ldm.items() if k.startswith("conditioner.embedders.0.")}, te1, "sdxl te1")
    check_open_clip(ldm, te2, "conditioner.embedders.1.model.", "sdxl te2")
    save_file(f16(ldm), out / "sdxl.safetensors")

    io = {}
    ids, ids2 = clip_ids(pad=999), clip_ids(pad=0)
    with torch.no_grad():
        o1 = te1(ids, output_hidden_states=True)
        o2 = te2(ids2, output_hidden_states=True)
    ctx = torch.cat([o1.hidden_states[-2], o2.hidden_states[-2]], dim=-1)
    pooled = o2.text_embeds
    io.update({"ids": ids, "ids2": ids2, "te.penultimate": o1.hidden_states[-2], "te2.penultimate": o2.hidden_states[-2],
               "te2.pooled": pooled, "ctx": ctx, "pooled": pooled})
    # (orig h, orig w, crop top, crop left, target h, target w): distinct values to pin the order
    time_ids = torch.tensor([[20.0, 24.0, 2.0, 4.0, 16.0, 16.0]] * 2)
    unet_call(io, unet, 411, 999, ctx, time_ids=time_ids, pooled=pooled)
    vae_io(io, vae, 412)
    meta = new_meta("sdxl", {"file": "sdxl.safetensors", "layout": "sgm"})
    meta.update(unet=diffusers_config(unet), vae=diffusers_config(vae), text_encoder=hf_config(te1),
                text_encoder_2=hf_config(te2), scheduler=SDXL_SCHEDULER,
                ids={"bos": 998, "eos": 999, "pad": 999, "length": 77}, ids2={"bos": 998, "eos": 999, "pad": 0, "length": 77},
                inputs={"unet.t": 999, "unet.time_ids": "(orig h, orig w, crop top, crop left, target h, target w)"},
                pipeline={"force_zeros_for_empty_prompt": True, "requires_aesthetics_score": False})
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=None, tokenizer_2=None,
                                     unet=unet, scheduler=make_scheduler(SDXL_SCHEDULER, EulerDiscreteScheduler),
                                     force_zeros_for_empty_prompt=True, add_watermarker=False)
    kw = dict(prompt_embeds=ctx[1:2], negative_prompt_embeds=ctx[0:1], pooled_prompt_embeds=pooled[1:2],
              negative_pooled_prompt_embeds=pooled[0:1], height=H, width=W, num_inference_steps=2)
    run_pipeline(io, meta, "t2i.euler", pipe, 4001, guidance_scale=5.0, **kw)
    pipe.scheduler = make_scheduler(TURBO_SCHEDULER, EulerAncestralDiscreteScheduler)
    run_pipeline(io, meta, "t2i.euler_a", pipe, 4002, extra_meta={"model": "SDXL-Turbo (trailing, CFG off)"},
                 guidance_scale=0.0, **kw)
    with torch.no_grad():
        ids6 = torch.tensor([[H, W, 0, 0, H, W]] * 2, dtype=torch.float32)  # orig, crop (0,0), target = (h, w)
        replay_sd(io, meta, "t2i.euler", unet, vae, ctx, 5.0, added={"text_embeds": pooled, "time_ids": ids6})
        replay_sd(io, meta, "t2i.euler_a", unet, vae, ctx, 0.0, added={"text_embeds": pooled, "time_ids": ids6})
    lora_sdxl(out, io, meta, unet, ctx, time_ids, pooled)
    return io, meta


def fam_refiner(out):
    print("sdxl_refiner")
    unet = randomize(UNet2DConditionModel(**UNET_REFINER), 501)
    vae = randomize(AutoencoderKL(**VAE_SDXL), 502)
    te2 = randomize(CLIPTextModelWithProjection(CLIPTextConfig(**OPEN_CLIP)), 503)
    ldm = {**unet_to_ldm(sdict(unet), dict(unet.config)), **vae_to_ldm(sdict(vae), 2, "first_stage_model."),
           **clip_to_open_clip(sdict(te2), "conditioner.embedders.0.model.")}
    check_unet(ldm, unet, "sdxl_refiner")
    check_vae(ldm, vae, "sdxl_refiner")
    check("sdxl_refiner: diffusers detects the refiner text encoder (is_open_clip_sdxl_refiner_model)",
          sfu.is_open_clip_sdxl_refiner_model(ldm) and not sfu.is_open_clip_sdxl_model(ldm))
    check_open_clip(ldm, te2, "conditioner.embedders.0.model.", "sdxl_refiner te2")
    save_file(f16(ldm), out / "sdxl_refiner.safetensors")

    io = {}
    ids2 = clip_ids(pad=0)
    with torch.no_grad():
        o2 = te2(ids2, output_hidden_states=True)
    ctx, pooled = o2.hidden_states[-2], o2.text_embeds
    io.update({"ids2": ids2, "te2.penultimate": ctx, "te2.pooled": pooled, "ctx": ctx, "pooled": pooled})
    time_ids = torch.tensor([[20.0, 24.0, 2.0, 4.0, 2.5], [20.0, 24.0, 2.0, 4.0, 6.0]])  # (orig h, w, crop t, l, aesthetic)
    unet_call(io, unet, 511, 301, ctx, time_ids=time_ids, pooled=pooled)
    vae_io(io, vae, 512)
    meta = new_meta("sdxl_refiner", {"file": "sdxl_refiner.safetensors", "layout": "sgm (refiner)"})
    meta.update(unet=diffusers_config(unet), vae=diffusers_config(vae), text_encoder_2=hf_config(te2),
                scheduler=SDXL_SCHEDULER, ids2={"bos": 998, "eos": 999, "pad": 0, "length": 77},
                inputs={"unet.t": 301, "unet.time_ids": "(orig h, orig w, crop top, crop left, aesthetic score)"},
                pipeline={"force_zeros_for_empty_prompt": False, "requires_aesthetics_score": True})
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=vae, text_encoder=None, text_encoder_2=te2, tokenizer=None, tokenizer_2=None, unet=unet,
        scheduler=make_scheduler(SDXL_SCHEDULER, EulerDiscreteScheduler), requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False, add_watermarker=False)
    init = init_image(5101)
    io["i2i.init"] = init
    run_pipeline(io, meta, "i2i", pipe, 5102,
                 extra_meta={"strength": 0.5, "aesthetic_score": 6.0, "negative_aesthetic_score": 2.5},
                 image=init, strength=0.5, prompt_embeds=ctx[1:2], negative_prompt_embeds=ctx[0:1],
                 pooled_prompt_embeds=pooled[1:2], negative_pooled_prompt_embeds=pooled[0:1],
                 num_inference_steps=4, guidance_scale=5.0, aesthetic_score=6.0, negative_aesthetic_score=2.5)
    with torch.no_grad():
        ids5 = torch.tensor([[H, W, 0, 0, 2.5], [H, W, 0, 0, 6.0]])  # [negative, positive]
        replay_sd(io, meta, "i2i", unet, vae, ctx, 5.0, init=init, strength=0.5,
                  added={"text_embeds": pooled, "time_ids": ids5})
    return io, meta


def fam_flux(out):
    print("flux")
    fx = randomize(FluxTransformer2DModel(**FLUX), 601)
    vae = randomize(AutoencoderKL(**VAE_FLUX), 602)
    clip = randomize(CLIPTextModel(CLIPTextConfig(**CLIP_L)), 603)
    t5 = randomize(T5EncoderModel(T5Config(**T5)), 604)

    bfl = flux_to_bfl(sdict(fx), FLUX)
    exp = bfl_expected_shapes(FLUX)
    got = {k: list(v.shape) for k, v in bfl.items()}
    check("flux: BFL keys/shapes == the real FLUX.1 layout as candle's Flux::new loads it",
          got == exp, f"{len(exp)} tensors" if got == exp else
          f"missing {sorted(set(exp) - set(got))[:5]}, extra {sorted(set(got) - set(exp))[:5]}, "
          f"shape {[k for k in exp if k in got and got[k] != exp[k]][:5]}")
    back = flux_bfl_roundtrip(bfl, FLUX["num_attention_heads"] * FLUX["attention_head_dim"])
    ok, detail = same_dicts(back, sdict(fx))
    check("flux: BFL names -> diffusers convert_flux_transformer_checkpoint_to_diffusers (inner_dim 3072 -> 32)", ok, detail)
    save_file(f16(bfl), out / "flux1-schnell.safetensors")
    ae = vae_to_ldm(sdict(vae), 2, "")
    check_vae(ae, vae, "flux ae")
    save_file(f16(ae), out / "ae.safetensors")
    cl = {"text_model." + k if not k.startswith("text_model.") else k: v for k, v in sdict(clip).items()}
    fresh = CLIPTextModel(CLIPTextConfig(**CLIP_L))
    fresh.load_state_dict({k.removeprefix("text_model."): v for k, v in cl.items()}, strict=True)
    check("flux clip_l: ComfyUI text_model.* names load strictly into CLIPTextModel", True, f"{len(cl)} tensors")
    save_file(f16(cl), out / "clip_l.safetensors")
    t5sd = {k: v for k, v in sdict(t5).items() if k != "encoder.embed_tokens.weight"}  # tied to shared.weight
    fresh = T5EncoderModel(T5Config(**T5))
    missing, unexpected = fresh.load_state_dict(t5sd, strict=False)
    check("flux t5xxl: HF T5EncoderModel names (shared.weight, encoder.*) load, only the tied embed_tokens missing",
          list(missing) in ([], ["encoder.embed_tokens.weight"]) and not unexpected, f"{len(t5sd)} tensors")
    save_file(f16(t5sd), out / "t5xxl.safetensors")

    io = {}
    cids = clip_ids(pad=999)
    t5_ids = torch.tensor([POS_TOKENS + [1] + [0] * (T5_LEN - len(POS_TOKENS) - 1)], dtype=torch.int64)
    with torch.no_grad():
        pooled = clip(cids).pooler_output
        txt = t5(t5_ids).last_hidden_state
    io.update({"clip_ids": cids, "clip.pooled": pooled, "t5_ids": t5_ids, "t5.hidden": txt})
    S = (H // 2 // 2) * (W // 2 // 2)
    x = torch.randn(1, S, FLUX["in_channels"], generator=gen(611))
    img_ids = FluxPipeline._prepare_latent_image_ids(1, H // 4, W // 4, "cpu", torch.float32)
    txt_ids = torch.zeros(T5_LEN, 3)
    with torch.no_grad():
        o = fx(hidden_states=x, encoder_hidden_states=txt, pooled_projections=pooled[1:2], timestep=torch.tensor([0.75]),
               img_ids=img_ids, txt_ids=txt_ids).sample
    io.update({"tr.x": x, "tr.img_ids": img_ids[None].contiguous(), "tr.txt": txt, "tr.txt_ids": txt_ids[None].contiguous(),
               "tr.t": torch.tensor([0.75]), "tr.pooled": pooled[1:2], "tr.out": o})
    vae_io(io, vae, 612)
    meta = new_meta("flux", {"files": {"transformer": "flux1-schnell.safetensors", "vae": "ae.safetensors",
                                       "clip_l": "clip_l.safetensors", "t5": "t5xxl.safetensors"},
                             "layout": "bfl + comfyui"})
    meta.update(transformer=diffusers_config(fx), vae=diffusers_config(vae), text_encoder=hf_config(clip),
                text_encoder_2=hf_config(t5), scheduler=FLUX_SCHEDULER,
                ids={"bos": 998, "eos": 999, "pad": 999, "length": 77}, t5_ids={"eos": 1, "pad": 0, "length": T5_LEN},
                inputs={"tr.t": 0.75, "tr.t_meaning": "sigma in [0,1]: diffusers passes timestep/1000 and multiplies by 1000 inside; BFL/candle take t in [0,1]"},
                candle_config={"in_channels": 64, "vec_in_dim": 32, "context_in_dim": 32, "hidden_size": 32,
                               "mlp_ratio": 4.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1,
                               "axes_dim": [4, 6, 6], "theta": 10000, "qkv_bias": True, "guidance_embed": False})
    pipe = FluxPipeline(scheduler=make_scheduler(FLUX_SCHEDULER, FlowMatchEulerDiscreteScheduler), vae=vae,
                        text_encoder=clip, tokenizer=None, text_encoder_2=t5, tokenizer_2=None, transformer=fx)
    run_pipeline(io, meta, "t2i.flow", pipe, 6001,
                 extra_meta={"latents": "step.<i> are packed [1, (h/2)(w/2), 4c] with h = w = 8 latent pixels",
                             "noise_shape": "unpacked [1, 16, 8, 8], packed by the pipeline"},
                 prompt_embeds=txt, pooled_prompt_embeds=pooled[1:2], height=H, width=W, num_inference_steps=2,
                 guidance_scale=0.0, max_sequence_length=T5_LEN)
    with torch.no_grad():
        replay_flux(io, meta, "t2i.flow", fx, vae, txt, pooled[1:2])
    return io, meta


# ---------------------------------------------------------------------------------------------


def main():
    out, have = parse_args(__doc__, DEFAULT_OUT, PINNED)
    diffusers.utils.logging.set_verbosity_error()
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    n = patch_randn()
    print(f"recording randn_tensor in {n} diffusers modules; versions {have}")

    for fam, fn in (("sd15", fam_sd15), ("sd21", fam_sd21), ("sdxl", fam_sdxl), ("sdxl_refiner", fam_refiner),
                    ("flux", fam_flux)):
        io, meta = fn(out)
        save_io(io, out / f"{fam}.io.safetensors", meta, keep=(torch.int64,))
        write_json(out / f"{fam}.json", json_safe(meta))

    # The files of this folder, not tokenizer/ (scripts/make-tokenizer-fixture.py makes that).
    finish(out, 12e6, files=[p for p in out.iterdir() if p.is_file()])


if __name__ == "__main__":
    main()
