#!/usr/bin/env python3
"""Writes the name-map references of the diffusion fixtures, from diffusers'/transformers' own
converters, so the Rust checkpoint loader (crates/diffusion/src/checkpoint.rs) can be required to
serve exactly the names and shapes the reference implementation loads:

  tests/fixtures/diffusion/<family>.keys.json
      {part: {name: shape}} for every network of the family, plus "fingerprint": {part: {name:
      Σ x_i·((i mod 97)/97 − 1/2)}} (f64, row-major) so that same-shaped tensors served under
      each other's names are caught too; `part` as the Rust `Part::name()`
      (unet, vae, text_encoder, text_encoder_2, flux_transformer, flux_vae, t5). The names are the
      ones the networks ask for (diffusers UNet2DConditionModel/AutoencoderKL, transformers
      CLIPTextModel with `text_model.`, BFL Flux, transformers T5). Each part's names come from
      diffusers' converter on the fixture checkpoint (convert_ldm_unet_checkpoint,
      convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint, convert_open_clip_checkpoint) and are
      checked by loading them strictly into the model built from `<family>.json`. Flux and T5 keep
      their file names (BFL / HF), likewise loaded into their models where diffusers has one.
  tests/fixtures/diffusion/sd15_lora_merged.safetensors
      three f32 weights of the sd15 UNet / text encoder after diffusers' `load_lora_weights`
      (sd15_lora_peft.safetensors) + `fuse_lora(lora_scale=<lora.scale>)`, i.e. merged by peft's
      LoraLayer.merge, under `unet.<name>` / `text_encoder.<name>`.

    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-diffusion-keys.py [FIXTURE_DIR]

Run after scripts/make-diffusion-fixture.py (same venv, scripts/diffusion-fixture-venv.sh).
"""
import argparse
import json
import sys
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "tests" / "fixtures" / "diffusion"
MERGED = [  # (part prefix, name the Rust network asks for)
    ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"),
    ("unet", "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"),
    ("text_encoder", "text_model.encoder.layers.1.self_attn.out_proj.weight"),
]
FAILED = []


def check(what, ok, detail=""):
    print(f"  [{'ok' if ok else 'FAIL'}] {what}{(': ' + detail) if detail else ''}")
    if not ok:
        FAILED.append(what)


def shapes(sd):
    return {k: list(v.shape) for k, v in sorted(sd.items())}


def fingerprint(t):
    """Σ x_i·((i mod 97)/97 − 1/2) over the row-major elements, in f64: tells apart same-shaped
    tensors, transposes and row orders (the Rust test computes the same on what it serves)."""
    v = t.detach().double().flatten()
    w = (torch.arange(v.numel(), dtype=torch.float64) % 97) / 97 - 0.5
    return float((v * w).sum())


def fingerprints(sd):
    return {k: fingerprint(v) for k, v in sorted(sd.items())}


def f32(sd):
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def strict_load(model, sd, what, allow_missing=()):
    """Loads `sd` into `model` strictly (bar `allow_missing`); returns `sd`."""
    missing, unexpected = model.load_state_dict(f32(sd), strict=False)
    ok = set(missing) <= set(allow_missing) and not unexpected
    check(f"{what}: {len(sd)} converted tensors load strictly into {type(model).__name__}", ok,
          "" if ok else f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    return sd


def clip_model(cfg, with_projection=False):
    c = CLIPTextConfig.from_dict(cfg)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(c).eval()


def clip_names(model, sd, what):
    """converter output (`text_model.*` + maybe position_ids) → strictly loaded → network names
    (with `text_model.`, whatever the transformers version keeps in its state dict)."""
    dropped = sorted(k for k in sd if k.endswith("embeddings.position_ids"))
    sd = {k: v for k, v in sd.items() if k not in dropped}
    if not hasattr(model, "text_projection"):  # CLIPTextModel (5.x: no text_model. in its state dict)
        inner = {k.removeprefix("text_model."): v for k, v in sd.items()}
        own = set(model.state_dict())
        load = inner if own <= set(inner) and not any(k.startswith("text_model.") for k in own) else sd
    else:
        load = sd
    strict_load(model, load, what)
    if dropped:
        print(f"    (buffers not served: {dropped})")
    return {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v for k, v in sd.items()}


def unet_part(ckpt, cfg, what):
    sd = sfu.convert_ldm_unet_checkpoint(dict(ckpt), cfg)
    return strict_load(UNet2DConditionModel.from_config(cfg), sd, f"{what} unet")


def vae_part(ckpt, cfg, what):
    sd = sfu.convert_ldm_vae_checkpoint(dict(ckpt), cfg)
    return strict_load(AutoencoderKL.from_config(cfg), sd, f"{what} vae")


def open_clip_part(ckpt, cfg, prefix, what, with_projection):
    model = clip_model(cfg, with_projection)
    sd = sfu.convert_open_clip_checkpoint(model, dict(ckpt), prefix=prefix)
    # the converter maps every resblock the file has (SD 2.x: one more than the model runs) and,
    # for CLIPTextModel, text_projection; the model's own names decide what is served
    own = {k if k.startswith(("text_model.", "text_projection")) else "text_model." + k for k in model.state_dict()}
    extra = sorted(k for k in sd if k not in own)
    sd = {k: v for k, v in sd.items() if k in own}
    if extra:
        print(f"    ({what}: converter output the model has no place for: {len(extra)} tensors, e.g. {extra[:3]})")
    return clip_names(model, sd, what)


def family_sd(d, family):
    print(family)
    cfg = json.loads((d / f"{family}.json").read_text())
    ckpt = load_file(d / f"{family}.safetensors")
    parts = {"unet": unet_part(ckpt, cfg["unet"], family), "vae": vae_part(ckpt, cfg["vae"], family)}
    if family in ("sd15", "sdxl"):
        sd = sfu.convert_ldm_clip_checkpoint(dict(ckpt))
        parts["text_encoder"] = clip_names(clip_model(cfg["text_encoder"]), sd, f"{family} text_encoder")
    if family == "sd21":
        parts["text_encoder"] = open_clip_part(ckpt, cfg["text_encoder"], "cond_stage_model.model.",
                                               f"{family} text_encoder (OpenCLIP)", False)
    if family == "sdxl":
        parts["text_encoder_2"] = open_clip_part(ckpt, cfg["text_encoder_2"], "conditioner.embedders.1.model.",
                                                 f"{family} text_encoder_2 (OpenCLIP)", True)
    if family == "sdxl_refiner":
        parts["text_encoder_2"] = open_clip_part(ckpt, cfg["text_encoder_2"], "conditioner.embedders.0.model.",
                                                 f"{family} text_encoder_2 (OpenCLIP)", True)
    return parts


def family_flux(d):
    print("flux")
    cfg = json.loads((d / "flux.json").read_text())
    parts = {}
    # BFL names are what candle's flux model asks for: served unchanged (the fixture script checks
    # them against diffusers' convert_flux_transformer_checkpoint_to_diffusers)
    parts["flux_transformer"] = load_file(d / "flux1-schnell.safetensors")
    parts["flux_vae"] = vae_part(load_file(d / "ae.safetensors"), cfg["vae"], "flux ae")
    clip = load_file(d / "clip_l.safetensors")
    parts["text_encoder"] = clip_names(clip_model(cfg["text_encoder"]), clip, "flux clip_l")
    t5 = load_file(d / "t5xxl.safetensors")
    parts["t5"] = strict_load(T5EncoderModel(T5Config.from_dict(cfg["text_encoder_2"])), t5, "flux t5",
                              allow_missing=("encoder.embed_tokens.weight",))
    return parts


def lora_merged(d):
    """Merged sd15 weights by diffusers' loader + peft's merge (fuse_lora), for the LoRA test."""
    print("sd15 LoRA merge (peft)")
    cfg = json.loads((d / "sd15.json").read_text())
    scale = float(cfg["lora"]["scale"])
    ckpt = load_file(d / "sd15.safetensors")
    unet = UNet2DConditionModel.from_config(cfg["unet"])
    unet.load_state_dict(f32(sfu.convert_ldm_unet_checkpoint(dict(ckpt), cfg["unet"])))
    vae = AutoencoderKL.from_config(cfg["vae"])
    vae.load_state_dict(f32(sfu.convert_ldm_vae_checkpoint(dict(ckpt), cfg["vae"])))
    te = clip_model(cfg["text_encoder"])
    te_sd = {k: v for k, v in sfu.convert_ldm_clip_checkpoint(dict(ckpt)).items() if not k.endswith("position_ids")}
    if not any(k.startswith("text_model.") for k in te.state_dict()):
        te_sd = {k.removeprefix("text_model."): v for k, v in te_sd.items()}
    te.load_state_dict(f32(te_sd))
    before = {"unet": {k: v.clone() for k, v in unet.state_dict().items()},
              "text_encoder": {k: v.clone() for k, v in te.state_dict().items()}}
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=None, unet=unet, scheduler=DDIMScheduler(steps_offset=1, clip_sample=False),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(d / "sd15_lora_peft.safetensors"), adapter_name="style")
    pipe.fuse_lora(lora_scale=scale, adapter_names=["style"])
    pipe.unload_lora_weights()
    after = {"unet": pipe.unet.state_dict(), "text_encoder": pipe.text_encoder.state_dict()}
    lora = load_file(d / "sd15_lora_peft.safetensors")
    alpha, r = cfg["lora"]["alpha"], cfg["lora"]["rank"]
    out = {}
    for part, name in MERGED:
        key = name if name in after[part] else name.removeprefix("text_model.")
        merged = after[part][key].float().contiguous()
        module = name.removesuffix(".weight")
        a, b = lora[f"{part}.{module}.lora_A.weight"].float(), lora[f"{part}.{module}.lora_B.weight"].float()
        by_hand = before[part][key] + scale * alpha / r * (b @ a)
        err = float((merged - by_hand).abs().max() / by_hand.abs().max())
        changed = float((merged - before[part][key]).abs().max())
        check(f"{part}.{name}: peft merge == W + {scale}·{alpha}/{r}·(B@A)", err < 1e-6 and changed > 1e-3,
              f"rel {err:.1e}, max change {changed:.3f}")
        out[f"{part}.{name}"] = merged
    changed = [k for k, v in after["unet"].items() if not torch.equal(v, before["unet"][k])]
    check("peft merged exactly the adapter's UNet modules", len(changed) == cfg["lora"]["unet_modules"],
          f"{len(changed)} weights changed, adapter has {cfg['lora']['unet_modules']}")
    return out, scale


def keys_json(keys, prints):
    """{part: {name: shape}, "fingerprint": {part: {name: f64}}}, one name per line."""
    def obj(d):
        lines = ",\n".join(f"{json.dumps(n)}:{v}" for n, v in sorted(d.items()))
        return f"{{\n{lines}}}"
    shape_of = {part: {n: json.dumps(v, separators=(",", ":")) for n, v in keys[part].items()} for part in keys}
    print_of = {part: {n: f"{v:.12g}" for n, v in prints[part].items()} for part in prints}
    parts = [f"{json.dumps(part)}:{obj(shape_of[part])}" for part in sorted(keys)]
    fp = ",\n".join(f"{json.dumps(part)}:{obj(print_of[part])}" for part in sorted(prints))
    parts.append(f'"fingerprint":{{\n{fp}}}')
    text = "{\n" + ",\n".join(parts) + "}\n"
    back = json.loads(text)
    assert {p: back[p] for p in keys} == keys and set(back["fingerprint"]) == set(prints)
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR)
    args = ap.parse_args()
    d = args.dir
    import diffusers
    import transformers
    diffusers.utils.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    for family in ("sd15", "sd21", "sdxl", "sdxl_refiner", "flux"):
        parts = family_flux(d) if family == "flux" else family_sd(d, family)
        keys = {part: shapes(sd) for part, sd in parts.items()}
        prints = {part: fingerprints(sd) for part, sd in parts.items()}
        (d / f"{family}.keys.json").write_text(keys_json(keys, prints))
        print(f"  wrote {family}.keys.json: " + ", ".join(f"{p} {len(k)}" for p, k in keys.items()))
    merged, scale = lora_merged(d)
    save_file(merged, d / "sd15_lora_merged.safetensors",
              metadata={"lora": "sd15_lora_peft.safetensors", "lora_scale": str(scale),
                        "made_by": "scripts/make-diffusion-keys.py: diffusers load_lora_weights + fuse_lora (peft merge)"})
    (d / "sd15_lora_merged.safetensors").chmod(0o644)
    print(f"  wrote sd15_lora_merged.safetensors ({(d / 'sd15_lora_merged.safetensors').stat().st_size} bytes)")
    if FAILED:
        print(f"FAILED: {FAILED}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
