#!/usr/bin/env python3
"""Makes the Wan2.1 end-to-end pipeline parity fixture: the real diffusers WanPipeline (UniPC and
flow-match Euler) and WanImageToVideoPipeline (image-to-video, and first-last-frame with
`last_image`) run on the tiny random networks of the other Wan fixtures — the real tokenizer and
umT5 encoder, the CLIP vision tower and its image processor, the transformer, the VAE encode of
the condition and the final decode — so the candle runner (crates/video/src/wan/model.rs) can be
required to match every step. tests/fixtures/wan/pipeline/README.md is the contract.

    scripts/diffusion-fixture-venv.sh          # once: the pinned venv (outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-wan-pipeline-fixture.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/wan/pipeline/. Pinned: torch 2.15.0, diffusers 0.42.1,
transformers 5.23.0, safetensors 0.8.0 (refused otherwise unless --any-version). CPU, float32,
a few seconds, deterministic.

The networks come from tests/fixtures/wan/{encoders,transformer,vae}/, except the FLF2V
transformer: the tiny one there has a 514-token image position embedding (2 × 257, ViT-H/14),
while the tiny CLIP tower gives 5 tokens per image, so this script writes a copy of it with a
10-token `pos_embed` (seeded `0.5·randn`, exact in bf16 and f16) as `transformer-flf2v/`.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from fixture_common import check, finish, parse_args, save_io, write_json

PINNED = {"torch": "2.15.0", "diffusers": "0.42.1", "transformers": "5.23.0", "safetensors": "0.8.0"}
ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "wan"
DEFAULT_OUT = FIX / "pipeline"
SIZE_BUDGET = 1_000_000

import diffusers  # noqa: E402
import diffusers.pipelines.wan.pipeline_wan as pw  # noqa: E402
import diffusers.pipelines.wan.pipeline_wan_i2v as pwi  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
)
from transformers import AutoTokenizer, CLIPVisionModel, UMT5EncoderModel  # noqa: E402
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil  # noqa: E402

WAN_UNIPC = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "num_train_timesteps": 1000}
# The Wan I2V repos' preprocessor_config.json at the tiny tower's 28 px.
PROCESSOR = dict(do_resize=True, size={"shortest_edge": 28}, resample=3, do_center_crop=True,
                 crop_size={"height": 28, "width": 28}, do_rescale=True, rescale_factor=0.00392156862745098,
                 do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
                 image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)
PROMPT = "A cat walks on the grass, realistic style."
NEGATIVE = "the grass walks"
H = W = 32

NOISE = []
EMBEDS = {}
_ORIG_RANDN = pw.randn_tensor


def _recording_randn(*args, **kwargs):
    out = _ORIG_RANDN(*args, **kwargs)
    f = sys._getframe(1)
    NOISE.append((f"{f.f_globals.get('__name__', '?')}.{f.f_code.co_qualname}", out.detach().float().clone()))
    return out


def exact16(t):
    """Rounded through bf16 and then f16: exact in both."""
    return t.to(torch.bfloat16).to(torch.float16).to(torch.float32)


def flf2v_transformer(out):
    src = WanTransformer3DModel.from_pretrained(FIX / "transformer" / "diffusers-flf2v", torch_dtype=torch.float32)
    cfg = {k: v for k, v in dict(src.config).items() if not k.startswith("_")}
    cfg["pos_embed_seq_len"] = 10
    m = WanTransformer3DModel(**cfg)
    sd = src.state_dict()
    g = torch.Generator().manual_seed(4242)
    key = "condition_embedder.image_embedder.pos_embed"
    sd[key] = exact16(torch.randn(1, 10, cfg["image_dim"], generator=g) * 0.5)
    m.load_state_dict(sd)
    m.to(torch.float16).save_pretrained(out / "transformer-flf2v")
    back = WanTransformer3DModel.from_pretrained(out / "transformer-flf2v", torch_dtype=torch.float32).eval()
    same = all(torch.equal(back.state_dict()[k], sd[k]) for k in sd)
    check("transformer-flf2v: the f16 save holds the f32 weights exactly", same)
    return back


def tiny_vae(out):
    """A Wan2.1-structured AutoencoderKLWan with base_dim 4 and one residual block per level
    (tests/fixtures/wan/vae's has base_dim 2, whose 2-channel RMS norms amplify f32 rounding to
    ~3e-5 rel-L2 in a decode, and a 1e-6 difference in the latents to 3e-4): seeded as that
    fixture's script seeds it, rounded through f16, saved in f16 as `vae/`."""
    vae = AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    g = torch.Generator().manual_seed(907)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / math.sqrt(math.prod(p.shape[1:]))))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            p.copy_(p.half().float())
    sd = {k: v.clone() for k, v in vae.state_dict().items()}
    vae.to(torch.float16).save_pretrained(out / "vae")
    back = AutoencoderKLWan.from_pretrained(out / "vae", torch_dtype=torch.float32).eval()
    check("vae: the f16 save holds the f32 weights exactly",
          all(torch.equal(back.state_dict()[k], sd[k]) for k in sd))
    return back


def smooth_image(seed):
    """A smooth seeded RGB u8 picture at the run's size (bilinear-upscaled 4×4 noise)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 4, 4, generator=g)
    big = torch.nn.functional.interpolate(small, size=(H, W), mode="bilinear", align_corners=False)
    arr = (big[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    return arr


def run(io, meta, name, pipe, *, seed, steps, guidance, frames, negative, images=()):
    latents = []

    def on_step_end(_pipe, _i, _t, kw):
        latents.append(kw["latents"].detach().clone())
        return {}

    captured = {}
    vae = pipe.vae
    orig_encode, orig_decode, orig_prompt = vae.encode, vae.decode, pipe.encode_prompt

    def encode(x, *a, **k):
        captured["encode_in"] = x.detach().clone()
        return orig_encode(x, *a, **k)

    def decode(z, *a, **k):
        out = orig_decode(z, *a, **k)
        captured["decoded"] = (out[0] if isinstance(out, tuple) else out.sample).detach().clone()
        return out

    def encode_prompt(*a, **k):
        p, n = orig_prompt(*a, **k)
        captured["prompt_embeds"] = p.detach().clone()
        captured["negative_embeds"] = None if n is None else n.detach().clone()
        return p, n

    vae.encode, vae.decode, pipe.encode_prompt = encode, decode, encode_prompt
    if hasattr(pipe, "encode_image"):
        orig_image = pipe.encode_image

        def encode_image(*a, **k):
            e = orig_image(*a, **k)
            captured["image_embeds"] = e.detach().clone()
            return e

        pipe.encode_image = encode_image
    pipe.set_progress_bar_config(disable=True)
    NOISE.clear()
    kwargs = {}
    pil = [PIL.Image.fromarray(a) for a in images]
    if pil:
        kwargs["image"] = pil[0]
    if len(pil) > 1:
        kwargs["last_image"] = pil[1]
    try:
        with torch.no_grad():
            out = pipe(prompt=PROMPT, negative_prompt=negative, height=H, width=W, num_frames=frames,
                       num_inference_steps=steps, guidance_scale=guidance,
                       generator=torch.Generator().manual_seed(seed), callback_on_step_end=on_step_end,
                       output_type="pt", **kwargs)
    finally:
        del vae.encode, vae.decode, pipe.encode_prompt
        if "encode_image" in pipe.__dict__:
            del pipe.encode_image
    draws = list(NOISE)
    check(f"{name}: one noise draw (the initial latents)", len(draws) == 1, str([d[0] for d in draws]))
    for k, (_, n) in enumerate(draws):
        io[f"{name}.noise.{k}"] = n
    for i, x in enumerate(latents):
        io[f"{name}.step.{i}"] = x
    check(f"{name}: {steps} steps recorded, all finite",
          len(latents) == steps and all(torch.isfinite(x).all() for x in latents))
    dec = captured["decoded"]
    io[f"{name}.decoded"] = dec
    post = out.frames[0].permute(1, 0, 2, 3)  # [F, C, H, W] → [C, F, H, W]
    check(f"{name}: the returned frames are the decoded ones, (x/2 + 0.5) clamped",
          torch.allclose(post, (dec[0] / 2 + 0.5).clamp(0, 1), atol=1e-6))
    EMBEDS[name] = (captured["prompt_embeds"], captured["negative_embeds"] if guidance > 1 else None)
    for k, a in zip(("first", "last"), images):
        io[f"{name}.{k}_rgb"] = torch.from_numpy(a.copy())
    if images:
        # The condition video: the pictures at frame 0 (and F − 1), zeros between.
        v = captured["encode_in"][0]
        at = [0, v.shape[1] - 1][:len(images)]
        for k, i in zip(("first", "last"), at):
            io[f"{name}.{k}_pixels"] = v[:, i]
        rest = torch.ones(v.shape[1], dtype=torch.bool)
        rest[at] = False
        check(f"{name}: the condition video is zero away from the pictures", bool((v[:, rest] == 0).all()))
        io[f"{name}.image_embeds"] = captured["image_embeds"]
    s = pipe.scheduler
    meta["runs"][name] = {
        "pipeline": type(pipe).__name__, "scheduler_class": type(s).__name__,
        "sampler": "euler" if isinstance(s, FlowMatchEulerDiscreteScheduler) else "unipc",
        "shift": float(s.config.get("flow_shift") or s.config.get("shift")),
        "seed": seed, "steps": steps, "guidance_scale": guidance, "num_frames": frames, "height": H, "width": W,
        "prompt": PROMPT, "negative_prompt": negative, "images": len(images),
        "timesteps": s.timesteps.tolist(),
        "noise": [{"key": f"{name}.noise.{k}", "shape": list(n.shape), "drawn_by": f}
                  for k, (f, n) in enumerate(draws)],
        "transformer": {k: v for k, v in dict(pipe.transformer.config).items() if not k.startswith("_")},
    }


def main():
    out, have = parse_args(__doc__, DEFAULT_OUT, PINNED)
    diffusers.utils.logging.set_verbosity_error()
    torch.set_num_threads(1)
    pw.randn_tensor = _recording_randn
    pwi.randn_tensor = _recording_randn
    # diffusers 0.42.1's pipeline_wan_i2v.basic_clean calls ftfy.fix_text unconditionally (NameError
    # without ftfy); pipeline_wan skips it when ftfy is missing. Give the i2v module the same
    # behaviour: no ftfy, the text unchanged (the Rust port skips it too).
    if not hasattr(pwi, "ftfy"):
        pwi.ftfy = type("NoFtfy", (), {"fix_text": staticmethod(lambda t: t)})
    (out / "image_processor").mkdir(exist_ok=True)
    (out / "image_processor" / "preprocessor_config.json").write_text(
        json.dumps({"image_processor_type": "CLIPImageProcessor", **PROCESSOR}, indent=1) + "\n")

    tok = AutoTokenizer.from_pretrained(FIX / "encoders" / "tokenizer")
    te = UMT5EncoderModel.from_pretrained(FIX / "encoders" / "umt5-tiny", torch_dtype=torch.float32).eval()
    clip = CLIPVisionModel.from_pretrained(FIX / "encoders" / "clip-vision-tiny", torch_dtype=torch.float32).eval()
    proc = CLIPImageProcessorPil(**PROCESSOR)
    vae = tiny_vae(out)
    t2v = WanTransformer3DModel.from_pretrained(FIX / "transformer" / "diffusers-t2v",
                                                torch_dtype=torch.float32).eval()
    i2v = WanTransformer3DModel.from_pretrained(FIX / "transformer" / "diffusers-i2v",
                                                torch_dtype=torch.float32).eval()
    flf = flf2v_transformer(out)
    check("sizes fit: umT5 d_model = text_dim, CLIP hidden = image_dim, VAE z_dim = in_channels",
          te.config.d_model == t2v.config.text_dim == i2v.config.text_dim
          and clip.config.hidden_size == i2v.config.image_dim
          and vae.config.z_dim == t2v.config.in_channels)

    unipc = lambda shift: UniPCMultistepScheduler(**WAN_UNIPC, flow_shift=shift)  # noqa: E731
    mk_t2v = lambda s: WanPipeline(tokenizer=tok, text_encoder=te, transformer=t2v, vae=vae, scheduler=s)  # noqa: E731
    mk_i2v = lambda tr, s: WanImageToVideoPipeline(  # noqa: E731
        tokenizer=tok, text_encoder=te, vae=vae, scheduler=s, image_processor=proc, image_encoder=clip,
        transformer=tr)
    meta = {"made_by": "scripts/make-wan-pipeline-fixture.py", "versions": have, "processor": PROCESSOR,
            "files": {"tokenizer": "../encoders/tokenizer", "text_encoder": "../encoders/umt5-tiny",
                      "image_encoder": "../encoders/clip-vision-tiny", "image_processor": "image_processor",
                      "vae": "vae", "t2v": "../transformer/diffusers-t2v",
                      "i2v": "../transformer/diffusers-i2v", "flf2v": "transformer-flf2v"},
            "vae": {"latents_mean": list(vae.config.latents_mean), "latents_std": list(vae.config.latents_std)},
            "runs": {}}
    io = {}
    print("runs")
    run(io, meta, "t2v_unipc", mk_t2v(unipc(3.0)), seed=21, steps=3, guidance=5.0, frames=5, negative=NEGATIVE)
    run(io, meta, "t2v_euler", mk_t2v(FlowMatchEulerDiscreteScheduler(shift=5.0)), seed=22, steps=2,
        guidance=4.0, frames=5, negative=None)
    run(io, meta, "i2v", mk_i2v(i2v, unipc(5.0)), seed=23, steps=3, guidance=5.0, frames=5, negative=NEGATIVE,
        images=(smooth_image(51),))
    run(io, meta, "flf2v", mk_i2v(flf, unipc(5.0)), seed=24, steps=3, guidance=5.0, frames=5, negative=NEGATIVE,
        images=(smooth_image(52), smooth_image(53)))
    # One prompt in every run, one given negative prompt and the default (empty) one: stored once.
    io["prompt_embeds"] = EMBEDS["t2v_unipc"][0]
    io["negative_embeds"] = EMBEDS["t2v_unipc"][1]
    io["empty_negative_embeds"] = EMBEDS["t2v_euler"][1]
    check("the same prompt gives the same embeddings in every run",
          all(torch.equal(p, io["prompt_embeds"]) for p, _ in EMBEDS.values()))
    check("the same negative prompt gives the same embeddings in every run that has it",
          all(torch.equal(n, io["negative_embeds"]) for r, (_, n) in EMBEDS.items() if r != "t2v_euler"))
    check("the empty negative prompt differs from the given one",
          not torch.equal(io["empty_negative_embeds"], io["negative_embeds"]))
    check("flf2v's image states are the two pictures' 5 tokens each, [2, 5, 16]",
          list(io["flf2v.image_embeds"].shape) == [2, 5, 16])

    save_io(io, out / "wan_pipeline.safetensors", meta, keep=(torch.uint8,))
    write_json(out / "wan_pipeline.json", meta)
    finish(out, SIZE_BUDGET)


if __name__ == "__main__":
    main()
