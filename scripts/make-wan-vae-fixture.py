#!/usr/bin/env python3
"""Makes the Wan2.1 video VAE parity fixtures: a tiny random-weight diffusers AutoencoderKLWan
run by the reference implementation (diffusers on PyTorch, CPU, float32), so the candle port in
crates/video/src/wan/vae can be required to match it. tests/fixtures/wan/vae/README.md is the
contract: what each file holds and how it was made.

    scripts/diffusion-fixture-venv.sh          # once: the pinned venv (outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-wan-vae-fixture.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/wan/vae/. Pinned: torch 2.15.0, diffusers 0.42.1,
safetensors 0.8.0 (the script refuses other versions unless --any-version is given). It imports
the seeded-weight helpers (f16, gen) from scripts/make-diffusion-fixture.py and the checks and the
writing of the files from scripts/fixture_common.py. Deterministic:
every random tensor comes from a fixed seed, and two runs write byte-identical files.

What it does:
  1. Builds a tiny AutoencoderKLWan with the real block structure (4 levels, 2 resnets per level,
     temporal downsampling [False, True, True], z_dim 16: diffusers' single-file converter maps
     the original flat decoder indices with a hardcoded table for exactly that structure) and
     base_dim 2 instead of 96. Every parameter gets a seeded value (`randn * 0.5/sqrt(fan_in)`,
     RMS-norm gammas 1 + 0.1·randn), rounded through float16; saved in f16, references in f32.
  2. Writes it as a diffusers folder (vae/: config.json + diffusion_pytorch_model.safetensors)
     and in the original Wan2.1 naming (wan-vae-tiny.safetensors as ComfyUI ships
     wan_2.1_vae.safetensors, and wan-vae-tiny.pth as the official Wan2.1_VAE.pth: a torch.save'd
     state dict), and checks the name map by a round trip through diffusers' own
     convert_wan_vae_to_diffusers; exits non-zero if it is not exact.
  3. Records in wan-vae.io.safetensors: the encoder moments of a 9-frame 32×32 clip and of its
     first frame, diffusers' decode of the 9-frame clip's latent mean, and with enable_tiling
     (small tiles) the tiled encode and tiled decode of a 5-frame 48×40 clip.

Every check prints one `[ok]`/`[FAIL]` line; the script exits 1 if any fails or if the fixtures
exceed 1.5 MB.
"""
import json
import math
import shutil
from pathlib import Path

import torch

from fixture_common import check, finish, load_diffusion_helpers, parse_args, save_io, write_json

PINNED = {"torch": "2.15.0", "diffusers": "0.42.1", "safetensors": "0.8.0"}

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "wan" / "vae"
SIZE_BUDGET = 1.5e6

mdf = load_diffusion_helpers()

import diffusers  # noqa: E402
from diffusers import AutoencoderKLWan  # noqa: E402
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

f16, gen = mdf.f16, mdf.gen

# The real Wan2.1 VAE is base_dim 96; the rest is the real structure.
CONFIG = dict(base_dim=2, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
              temperal_downsample=[False, True, True])
ENC_FRAMES, ENC_H, ENC_W = 9, 32, 32  # → latents 3 × 4 × 4
TILE_FRAMES, TILE_H, TILE_W = 5, 48, 40  # → latents 2 × 6 × 5
TILING = dict(tile_sample_min_height=32, tile_sample_min_width=32, tile_sample_stride_height=24,
              tile_sample_stride_width=24)


def randomize(model, seed):
    """Seeded values for every parameter (RMS-norm gammas around 1), rounded through f16."""
    g = gen(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / math.sqrt(math.prod(p.shape[1:]))))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            p.copy_(p.half().float())
    return model.eval()


def smooth(seed, shape, lo, hi):
    """A smooth seeded signal: bilinear-upsampled uniform noise (frames × channels × h/8 × w/8)."""
    *lead, h, w = shape
    coarse = torch.rand(math.prod(lead), 1, h // 8 + 1, w // 8 + 1, generator=gen(seed))
    up = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
    return (lo + (hi - lo) * up).reshape(shape)


# ---------------------------------------------------------------------------------------------
# diffusers names → the original Wan2.1 names (wan/modules/vae.py), for this structure

RES = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma",
       "conv2": "residual.6", "conv_shortcut": "shortcut"}


def _res(rest):
    for d, o in RES.items():
        if rest == d or rest.startswith(d + "."):
            return o + rest[len(d):]
    raise KeyError(rest)


def to_original(key, num_res_blocks=2, levels=4):
    top = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    for d, o in top.items():
        if key.startswith(d + "."):
            return o + key[len(d):]
    side, rest = key.split(".", 1)
    if rest.startswith("conv_in."):
        return f"{side}.conv1." + rest[len("conv_in."):]
    if rest.startswith("norm_out."):
        return f"{side}.head.0." + rest[len("norm_out."):]
    if rest.startswith("conv_out."):
        return f"{side}.head.2." + rest[len("conv_out."):]
    if rest.startswith("mid_block."):
        kind, i, sub = rest[len("mid_block."):].split(".", 2)
        if kind == "attentions":
            return f"{side}.middle.1.{sub}"
        return f"{side}.middle.{2 * int(i)}.{_res(sub)}"
    if rest.startswith("down_blocks."):
        n, sub = rest[len("down_blocks."):].split(".", 1)
        if sub.startswith("resample.") or sub.startswith("time_conv."):
            return f"encoder.downsamples.{n}.{sub}"
        return f"encoder.downsamples.{n}.{_res(sub)}"
    if rest.startswith("up_blocks."):
        b, kind, sub = rest[len("up_blocks."):].split(".", 2)
        base = int(b) * (num_res_blocks + 2)
        if kind == "resnets":
            j, sub = sub.split(".", 1)
            return f"decoder.upsamples.{base + int(j)}.{_res(sub)}"
        assert kind == "upsamplers", key
        _, sub = sub.split(".", 1)
        return f"decoder.upsamples.{base + num_res_blocks + 1}.{sub}"
    raise KeyError(key)


# ---------------------------------------------------------------------------------------------


def main():
    out, have = parse_args(__doc__, DEFAULT_OUT, PINNED)
    diffusers.utils.logging.set_verbosity_error()
    torch.set_num_threads(2)

    vae = randomize(AutoencoderKLWan(**CONFIG), 901)
    sd = {k: v.detach().clone() for k, v in vae.state_dict().items()}

    print("weights")
    vdir = out / "vae"
    if vdir.exists():
        shutil.rmtree(vdir)
    vae16 = AutoencoderKLWan(**CONFIG)
    vae16.load_state_dict(sd)
    vae16.half().save_pretrained(vdir)
    back = AutoencoderKLWan.from_pretrained(vdir, torch_dtype=torch.float32)
    ok, detail = mdf.same_dicts({k: v.float() for k, v in back.state_dict().items()}, sd)
    check("vae/ loads with AutoencoderKLWan.from_pretrained (= the reference weights)", ok, detail)

    original = {to_original(k): v for k, v in f16(sd).items()}
    check("the original names are distinct", len(original) == len(sd))
    converted = convert_wan_vae_to_diffusers(dict(original))
    ok, detail = mdf.same_dicts({k: v.float() for k, v in converted.items()}, sd)
    check("convert_wan_vae_to_diffusers(original names) = the diffusers state dict", ok, detail)
    check("the original names carry the Wan VAE marker diffusers detects",
          "decoder.middle.0.residual.0.gamma" in original)
    save_file(original, out / "wan-vae-tiny.safetensors")
    torch.save(dict(sorted(original.items())), out / "wan-vae-tiny.pth")
    ok, detail = mdf.same_dicts(load_file(out / "wan-vae-tiny.safetensors"), original)
    check("wan-vae-tiny.safetensors reads back", ok, detail)
    ok, detail = mdf.same_dicts(torch.load(out / "wan-vae-tiny.pth", weights_only=True), original)
    check("wan-vae-tiny.pth reads back", ok, detail)

    print("references")
    io = {}
    video = smooth(911, (1, 3, ENC_FRAMES, ENC_H, ENC_W), -1.0, 1.0)
    with torch.no_grad():
        moments = vae.encode(video).latent_dist.parameters
        mean = moments[:, : CONFIG["z_dim"]]
        moments1 = vae.encode(video[:, :, :1]).latent_dist.parameters
        decoded = vae.decode(mean).sample
    io.update({"video": video, "moments": moments, "moments_1frame": moments1, "decoded": decoded})
    check("9 frames encode to 3 latent frames, decode to 9", moments.shape[2] == 3 and decoded.shape[2] == 9)
    # The encoder is causal: the 1-frame encode is the 9-frame encode's first latent frame.
    check("1-frame encode = first latent frame of the 9-frame encode",
          torch.allclose(moments1, moments[:, :, :1], atol=1e-5), f"{(moments1 - moments[:, :, :1]).abs().max():.2e}")

    tvideo = smooth(912, (1, 3, TILE_FRAMES, TILE_H, TILE_W), -1.0, 1.0)
    with torch.no_grad():
        plain = vae.encode(tvideo).latent_dist.parameters
        vae.enable_tiling(**TILING)
        tmoments = vae.encode(tvideo).latent_dist.parameters
        tmean = tmoments[:, : CONFIG["z_dim"]]
        tdecoded = vae.decode(tmean).sample
        vae.disable_tiling()
        tplain = vae.decode(tmean).sample
    io.update({"tiled.video": tvideo, "tiled.moments": tmoments, "tiled.decoded": tdecoded})
    check("tiled encode differs from the plain encode (the tiles are really blended)",
          (tmoments - plain).abs().max() > 1e-4, f"{(tmoments - plain).abs().max():.2e}")
    check("tiled decode differs from the plain decode", (tdecoded - tplain).abs().max() > 1e-4,
          f"{(tdecoded - tplain).abs().max():.2e}")

    meta = {"made_by": "scripts/make-wan-vae-fixture.py", "versions": have,
            "config": json.loads(vae.to_json_string()), "enable_tiling": TILING}
    meta["config"].pop("_use_default_values", None)
    io = save_io(io, out / "wan-vae.io.safetensors", meta)
    write_json(out / "wan-vae.json", meta, sort_keys=True)
    for k, v in sorted(io.items()):
        print(f"  {k}: {list(v.shape)}")

    finish(out, SIZE_BUDGET)


if __name__ == "__main__":
    main()
