#!/usr/bin/env python3
"""Makes the Wan2.1 transformer parity fixtures: tiny random-weight `WanTransformer3DModel`s
(text-to-video, image-to-video, first-last-frame-to-video) in the three layouts users have them
(diffusers folder, official Wan-AI release, ComfyUI single file, the latter also in fp8 e4m3fn),
and recorded calls of the reference implementation (diffusers on PyTorch, CPU, float32), so the
candle port in crates/video/src/wan/transformer can be required to match them.
tests/fixtures/wan/transformer/README.md is the contract: what each file holds and how it was made.

    scripts/diffusion-fixture-venv.sh          # once: the pinned venv (outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-wan-transformer-fixture.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/wan/transformer/. Pinned: torch 2.15.0, diffusers 0.42.1,
transformers 5.23.0, safetensors 0.8.0 (the script refuses other versions unless --any-version is
given). It imports its helpers from scripts/make-diffusion-fixture.py (seeded weights) and
scripts/fixture_common.py (checks, the writing of the files).
It takes a few seconds and is deterministic: two runs write byte-identical files.

What it does:
  1. Builds the three tiny models and gives every parameter a seeded value (`randn·0.5/√fan_in`,
     norm weights 1 + 0.1·randn; `scale_shift_table` randn/√dim and the FLF2V `pos_embed`
     0.5·randn so that they matter), rounded so that every value is exact in f16 **and** bf16.
     Every reference is computed in f32 from exactly those values.
  2. Writes each model as a diffusers folder (i2v sharded, with the index), as an official Wan-AI
     folder (original names, WanModel config.json; i2v sharded), and as ComfyUI single files
     (`model.diffusion_model.` + original names, bf16; t2v and flf2v also fp8 e4m3fn). Every name
     map is checked by a round trip through diffusers' own `convert_wan_transformer_to_diffusers`
     (plus the FLF2V `img_emb.emb_pos` rename of diffusers' scripts/convert_wan_to_diffusers.py,
     which the single-file converter lacks); the script exits non-zero if one is not exact.
  3. Records one call per model (plus a second T2V grid), and the fp8 models' outputs.

Every check prints one `[ok]`/`[FAIL]` line; the script exits 1 if any fails or if the fixtures
exceed 1.5 MB. Ends with a table of the files and their sizes.
"""
import copy
import json
import os
import shutil
from pathlib import Path

import torch

from fixture_common import check, finish, load_diffusion_helpers, parse_args, save_io, write_json

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PINNED = {"torch": "2.15.0", "diffusers": "0.42.1", "transformers": "5.23.0", "safetensors": "0.8.0"}

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "wan" / "transformer"
SIZE_BUDGET = 1.5e6

mdf = load_diffusion_helpers()

import diffusers  # noqa: E402
from diffusers import WanTransformer3DModel  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

same_dicts, sdict, gen = mdf.same_dicts, mdf.sdict, mdf.gen

# ---------------------------------------------------------------------------------------------
# Tiny configs. Real: 1.3B = 12 heads × 128, ffn 8960, 30 layers; 14B = 40 × 128, ffn 13824,
# 40 layers; text_dim 4096, freq_dim 256, image_dim 1280, 257 image tokens per image.

T2V = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
    text_dim=16, freq_dim=16, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, rope_max_seq_len=1024,
)
DIM = T2V["num_attention_heads"] * T2V["attention_head_dim"]
IMAGE_TOKENS = 257  # CLIP ViT-H/14 penultimate states of one image (the real count)
I2V = {**T2V, "in_channels": 36, "image_dim": 16, "added_kv_proj_dim": DIM}
FLF2V = {**I2V, "pos_embed_seq_len": 2 * IMAGE_TOKENS}
MODELS = {"t2v": (T2V, 901), "i2v": (I2V, 902), "flf2v": (FLF2V, 903)}
TEXT_LEN = 512  # diffusers splits image from text tokens at `len − 512`: image calls need 512 text tokens

# The official WanModel config.json (Wan-AI/Wan2.1-*: the fields it holds), tiny sizes.
OFFICIAL_TYPE = {"t2v": "t2v", "i2v": "i2v", "flf2v": "flf2v"}
COMFY_PREFIX = "model.diffusion_model."


def exact16(t):
    """Rounds through bf16 then f16: the value is then exact in both (checked)."""
    r = t.detach().bfloat16().float().half().float()
    assert torch.equal(r.bfloat16().float(), r) and torch.equal(r.half().float(), r)
    return r


def build(kind):
    cfg, seed = MODELS[kind]
    m = mdf.randomize(WanTransformer3DModel(**cfg), seed)
    g = gen(seed + 1000)
    with torch.no_grad():
        for _, p in m.named_parameters():
            p.copy_(exact16(p))
        # Real-scale modulation tables (randomize gives them 0.5/√(6·dim)) and a pos embed that
        # matters (0.5/√(514·16) would hide a missing one).
        for b in m.blocks:
            b.scale_shift_table.copy_(exact16(torch.randn(b.scale_shift_table.shape, generator=g) / DIM ** 0.5))
        m.scale_shift_table.copy_(exact16(torch.randn(m.scale_shift_table.shape, generator=g) / DIM ** 0.5))
        emb = m.condition_embedder.image_embedder
        if emb is not None and emb.pos_embed is not None:
            emb.pos_embed.copy_(exact16(0.5 * torch.randn(emb.pos_embed.shape, generator=g)))
    return m.eval()


# ---------------------------------------------------------------------------------------------
# Name map diffusers -> official (Wan-AI) names: the inverse of diffusers'
# single_file_utils.convert_wan_transformer_to_diffusers (checked below by a round trip).

TOP = {
    "condition_embedder.time_embedder.linear_1": "time_embedding.0",
    "condition_embedder.time_embedder.linear_2": "time_embedding.2",
    "condition_embedder.text_embedder.linear_1": "text_embedding.0",
    "condition_embedder.text_embedder.linear_2": "text_embedding.2",
    "condition_embedder.time_proj": "time_projection.1",
    "condition_embedder.image_embedder.norm1": "img_emb.proj.0",
    "condition_embedder.image_embedder.ff.net.0.proj": "img_emb.proj.1",
    "condition_embedder.image_embedder.ff.net.2": "img_emb.proj.3",
    "condition_embedder.image_embedder.norm2": "img_emb.proj.4",
    "proj_out": "head.head",
    "patch_embedding": "patch_embedding",
}
WHOLE = {"scale_shift_table": "head.modulation", "condition_embedder.image_embedder.pos_embed": "img_emb.emb_pos"}
BLOCK = {
    "attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
    "attn1.to_out.0": "self_attn.o", "attn1.norm_q": "self_attn.norm_q", "attn1.norm_k": "self_attn.norm_k",
    "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k", "attn2.to_v": "cross_attn.v",
    "attn2.to_out.0": "cross_attn.o", "attn2.norm_q": "cross_attn.norm_q", "attn2.norm_k": "cross_attn.norm_k",
    "attn2.add_k_proj": "cross_attn.k_img", "attn2.add_v_proj": "cross_attn.v_img",
    "attn2.norm_added_k": "cross_attn.norm_k_img",
    "norm2": "norm3",  # the cross-attention norm: diffusers norm2 = official norm3
    "ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2",
}


def official_name(k):
    if k in WHOLE:
        return WHOLE[k]
    if k.startswith("blocks."):
        _, n, rest = k.split(".", 2)
        if rest == "scale_shift_table":
            return f"blocks.{n}.modulation"
        mod, leaf = rest.rsplit(".", 1)
        return f"blocks.{n}.{BLOCK[mod]}.{leaf}"
    mod, leaf = k.rsplit(".", 1)
    return f"{TOP[mod]}.{leaf}"


def to_official(sd):
    return {official_name(k): v for k, v in sd.items()}


def official_back(sd):
    """diffusers' single-file converter, plus the FLF2V rename of scripts/convert_wan_to_diffusers.py
    ("img_emb.emb_pos" -> "condition_embedder.image_embedder.pos_embed") that it lacks."""
    out = sfu.convert_wan_transformer_to_diffusers({k: v.float() for k, v in sd.items()})
    if "img_emb.emb_pos" in out:
        out["condition_embedder.image_embedder.pos_embed"] = out.pop("img_emb.emb_pos")
    return out


def official_config(kind):
    cfg = MODELS[kind][0]
    return {"_class_name": "WanModel", "_diffusers_version": "0.30.0", "dim": DIM, "eps": cfg["eps"],
            "ffn_dim": cfg["ffn_dim"], "freq_dim": cfg["freq_dim"], "in_dim": cfg["in_channels"],
            "model_type": OFFICIAL_TYPE[kind], "num_heads": cfg["num_attention_heads"],
            "num_layers": cfg["num_layers"], "out_dim": cfg["out_channels"], "text_len": TEXT_LEN}


def is_fp8_weight(official):
    """What the fp8 e4m3fn files here store in fp8: every `.weight` (the linear and patch
    embedding matrices, and the norm scales too, so that a loader must widen 1-D fp8 tensors);
    biases, modulation tables and the pos embed stay in bf16."""
    return official.endswith(".weight") and not official.endswith("modulation")


# ---------------------------------------------------------------------------------------------
# files


def write_diffusers(out, kind, m):
    d = out / f"diffusers-{kind}"
    if d.exists():
        shutil.rmtree(d)
    # i2v sharded as the 14B releases are (index + shards)
    shard = {"max_shard_size": "30KB"} if kind == "i2v" else {}
    copy.deepcopy(m).half().save_pretrained(d, **shard)
    ok, detail = same_dicts(sdict(WanTransformer3DModel.from_pretrained(d)), sdict(m))
    check(f"diffusers-{kind} loads with WanTransformer3DModel.from_pretrained (= the reference weights)", ok, detail)
    if kind == "i2v":
        check("diffusers-i2v is sharded with an index", (d / "diffusion_pytorch_model.safetensors.index.json").is_file()
              and len(list(d.glob("diffusion_pytorch_model-*.safetensors"))) >= 2)
    return sorted(p.name for p in d.iterdir())


def write_official(out, kind, m):
    d = out / f"official-{kind}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    sd = to_official(sdict(m))
    # The 1.3B release is f32; the 14B ones bf16 and sharded.
    dtype = torch.float32 if kind == "t2v" else torch.bfloat16
    sd = {k: v.to(dtype).contiguous() for k, v in sd.items()}
    (d / "config.json").write_text(json.dumps(official_config(kind), indent=2, sort_keys=True) + "\n")
    if kind == "i2v":
        keys = sorted(sd)
        half = len(keys) // 2
        parts = [keys[:half], keys[half:]]
        weight_map = {}
        for i, part in enumerate(parts):
            name = f"diffusion_pytorch_model-{i + 1:05d}-of-{len(parts):05d}.safetensors"
            save_file({k: sd[k] for k in part}, d / name)
            weight_map.update({k: name for k in part})
        total = sum(v.numel() * v.element_size() for v in sd.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (d / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    else:
        save_file(sd, d / "diffusion_pytorch_model.safetensors")
    back = {}
    for p in sorted(d.glob("*.safetensors")):
        back.update(load_file(p))
    ok, detail = same_dicts(official_back(back), sdict(m))
    check(f"official-{kind}: names -> diffusers convert_wan_transformer_to_diffusers round trip", ok, detail)
    return {"dtype": str(dtype).removeprefix("torch."), "tensors": len(sd)}


def write_comfy(out, kind, m, fp8):
    name = f"comfy-{kind}-{'fp8_e4m3fn' if fp8 else 'bf16'}.safetensors"
    sd = {}
    for k, v in to_official(sdict(m)).items():
        v = v.to(torch.float8_e4m3fn if fp8 and is_fp8_weight(k) else torch.bfloat16)
        sd[COMFY_PREFIX + k] = v.contiguous()
    # Real ComfyUI files carry no config (the loader infers it with head_dim 128); the tiny ones
    # say their head count in the header, in the official config's field names.
    meta = {"config": json.dumps(official_config(kind), sort_keys=True)}
    save_file(sd, out / name, metadata=meta)
    back = load_file(out / name)
    with safe_open(out / name, framework="pt") as fh:
        header = json.loads(fh.metadata()["config"])
    check(f"{name}: header `config` reads back", header == official_config(kind))
    detected = sfu.infer_diffusers_model_type(back)
    conv = official_back(back)
    if fp8:
        # the name map is exact; the values are the fp8 rounding of the reference weights
        ok = set(conv) == set(sdict(m))
        n8 = sum(v.dtype == torch.float8_e4m3fn for v in back.values())
        check(f"{name}: names -> diffusers round trip; {n8} of {len(back)} tensors in fp8", ok and n8 > 0)
    else:
        ok, detail = same_dicts(conv, sdict(m))
        check(f"{name}: names -> diffusers convert_wan_transformer_to_diffusers round trip", ok, detail)
    print(f"  {name}: {len(sd)} tensors; diffusers infer_diffusers_model_type -> {detected!r}")
    return name, conv, {"tensors": len(sd), "fp8": fp8, "diffusers_detects": detected}


# ---------------------------------------------------------------------------------------------
# calls


def randn(g, *shape, scale=1.0):
    return torch.randn(*shape, generator=g) * scale


def calls(kind):
    """(call name, kwargs for diffusers, the Rust-side image tensor) — seeded inputs."""
    cfg = MODELS[kind][0]
    g = gen(MODELS[kind][1] + 2000)
    c = cfg["in_channels"]
    if kind == "t2v":
        return [
            ("t2v", dict(hidden_states=randn(g, 2, c, 3, 4, 6), timestep=torch.tensor([937.5, 312.25]),
                         encoder_hidden_states=randn(g, 2, 8, cfg["text_dim"])), None),
            ("t2v_grid", dict(hidden_states=randn(g, 1, c, 2, 6, 4), timestep=torch.tensor([999.0]),
                              encoder_hidden_states=randn(g, 1, 5, cfg["text_dim"])), None),
        ]
    if kind == "i2v":
        image = randn(g, 2, IMAGE_TOKENS, cfg["image_dim"])
        return [("i2v", dict(hidden_states=randn(g, 2, c, 3, 4, 6), timestep=torch.tensor([875.0, 41.5]),
                             encoder_hidden_states=randn(g, 2, TEXT_LEN, cfg["text_dim"]),
                             encoder_hidden_states_image=image), image)]
    # FLF2V: the pipeline passes the two images' states as [2·B, 257, D] (first, last per sample);
    # the transformer views them as [B, 514, D]. The Rust call takes [B, 514, D].
    image = randn(g, 1, 2 * IMAGE_TOKENS, cfg["image_dim"])
    return [("flf2v", dict(hidden_states=randn(g, 1, c, 3, 4, 6), timestep=torch.tensor([500.5]),
                           encoder_hidden_states=randn(g, 1, TEXT_LEN, cfg["text_dim"]),
                           encoder_hidden_states_image=image.view(2, IMAGE_TOKENS, cfg["image_dim"])), image)]


def run(m, kw):
    with torch.no_grad():
        return m(**kw, return_dict=False)[0]


def record(io, meta, kind, m, fp8_model):
    for name, kw, image in calls(kind):
        out = run(m, kw)
        io[f"{name}.latents"] = kw["hidden_states"]
        io[f"{name}.timestep"] = kw["timestep"]
        io[f"{name}.text"] = kw["encoder_hidden_states"]
        if image is not None:
            io[f"{name}.image"] = image
        io[f"{name}.out"] = out
        entry = {"model": kind, "latents": list(kw["hidden_states"].shape), "timestep": kw["timestep"].tolist(),
                 "text": list(kw["encoder_hidden_states"].shape),
                 "image": None if image is None else list(image.shape), "out": list(out.shape)}
        if fp8_model is not None:
            out8 = run(fp8_model, kw)
            io[f"{name}.out_fp8"] = out8
            entry["fp8_vs_f32_rel_l2"] = mdf.rel(out8, out)
            entry["fp8_vs_f32_max_rel"] = float((out8 - out).abs().max() / out.abs().max())
            print(f"  {name}: fp8 weights vs f32 reference: rel-L2 {entry['fp8_vs_f32_rel_l2']:.3e}, "
                  f"max|Δ|/max|ref| {entry['fp8_vs_f32_max_rel']:.3e}")
        # The reference output does not depend on the batch neighbours (rows are independent).
        if kw["hidden_states"].shape[0] == 2:
            kw1 = {k: v[1:] for k, v in kw.items()}
            if image is not None and kind == "flf2v":
                kw1["encoder_hidden_states_image"] = kw["encoder_hidden_states_image"][2:]
            check(f"{name}: row 1 alone gives row 1 of the batch", torch.allclose(run(m, kw1), out[1:], atol=1e-6))
        meta["calls"][name] = entry


# ---------------------------------------------------------------------------------------------


def main():
    out, have = parse_args(__doc__, DEFAULT_OUT, PINNED)
    diffusers.utils.logging.set_verbosity_error()
    torch.set_num_threads(1)  # deterministic reductions

    meta = {"made_by": "scripts/make-wan-transformer-fixture.py", "versions": have, "transformer": {},
            "official_config": {}, "files": {}, "calls": {}, "image_tokens": IMAGE_TOKENS, "text_len": TEXT_LEN}
    io = {}
    for kind in MODELS:
        print(kind)
        m = build(kind)
        meta["transformer"][kind] = mdf.diffusers_config(m)
        meta["official_config"][kind] = official_config(kind)
        meta["files"][f"diffusers-{kind}"] = write_diffusers(out, kind, m)
        meta["files"][f"official-{kind}"] = write_official(out, kind, m)
        name, _, info = write_comfy(out, kind, m, fp8=False)
        meta["files"][name] = info
        fp8_model = None
        if kind in ("t2v", "flf2v"):
            name, conv, info = write_comfy(out, kind, m, fp8=True)
            meta["files"][name] = info
            fp8_model = copy.deepcopy(m)
            fp8_model.load_state_dict(conv, strict=True)
            fp8_model.eval()
        record(io, meta, kind, m, fp8_model)

    save_io(io, out / "wan_transformer.io.safetensors", meta)
    write_json(out / "wan_transformer.json", mdf.json_safe(meta))
    finish(out, SIZE_BUDGET)


if __name__ == "__main__":
    main()
