#!/usr/bin/env python3
"""Makes the parity fixtures of Wan2.1's two conditioning encoders: a tiny random-weight umT5
encoder (transformers' UMT5EncoderModel) and a tiny CLIP vision tower (CLIPVisionModel, exact
gelu, as open-clip's xlm-roberta-large-ViT-H/14 visual tower that the Wan I2V pipeline uses), plus
a tiny umT5-structured tokenizer, the Wan prompt cleaning and the CLIP image processor, so the
candle port in crates/video/src/wan/{umt5,clip_vision}.rs can be required to match them.
tests/fixtures/wan/encoders/README.md is the contract.

    scripts/diffusion-fixture-venv.sh          # once: the pinned venv (outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-wan-encoders-fixture.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/wan/encoders/. Pinned: torch 2.15.0, diffusers 0.42.1,
transformers 5.23.0, safetensors 0.8.0, tokenizers 0.23.3, pillow 13.0.0 (refused otherwise
unless --any-version). It reads the tiny T5 tokenizer of tests/fixtures/diffusion/tokenizer/t5/
(its normalizer and pieces seed the umT5-structured one) and imports its helpers (seeded weights,
f16 rounding) from scripts/make-diffusion-fixture.py and scripts/fixture_common.py (checks, the
writing of the files). Deterministic: two runs write
byte-identical files. Every check prints [ok]/[FAIL]; the script exits 1 if one fails or if the
fixtures exceed 1.5 MB.
"""
import gzip
import html
import json
import math
import os
import re
import shutil
import types
from pathlib import Path

import numpy as np
import torch

from fixture_common import check, finish, load_diffusion_helpers, parse_args, save_io, write_json

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PINNED = {"torch": "2.15.0", "diffusers": "0.42.1", "transformers": "5.23.0", "safetensors": "0.8.0",
          "tokenizers": "0.23.3", "pillow": "13.0.0"}
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "wan" / "encoders"
T5_TOKENIZER = ROOT / "tests" / "fixtures" / "diffusion" / "tokenizer" / "t5" / "tokenizer.json.gz"
MAX_BYTES = 1_500_000

mdf = load_diffusion_helpers()  # randomize, f16, same_dicts, rel

import PIL.Image  # noqa: E402
import tokenizers  # noqa: E402
from diffusers.pipelines.wan import pipeline_wan  # noqa: E402
from diffusers.pipelines.wan.pipeline_wan import WanPipeline, prompt_clean  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
    UMT5Config,
    UMT5EncoderModel,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil  # noqa: E402

# The tiny umT5 (real umt5-xxl: d_model 4096, d_kv 64, 64 heads, d_ff 10240, 24 layers, 32 buckets,
# max distance 128, vocab 256384). 16 buckets / distance 32 so that the 512-long prompt path
# reaches every bucket, exact and logarithmic, both directions.
UMT5 = dict(vocab_size=1200, d_model=16, d_kv=8, num_heads=2, d_ff=24, num_layers=2, num_decoder_layers=2,
            relative_attention_num_buckets=16, relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
            layer_norm_epsilon=1e-6, dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
            tie_word_embeddings=False, is_encoder_decoder=True, use_cache=False)
# The tiny ViT (real ViT-H/14: 224 px, patch 14, width 1280, 32 layers, 16 heads, mlp 5120).
CLIPV = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=3, num_attention_heads=2, image_size=28,
             patch_size=14, num_channels=3, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=8)
# Wan2.1-I2V-14B-*-Diffusers/image_processor/preprocessor_config.json (OpenAI CLIP's).
WAN_PROCESSOR = dict(do_resize=True, size={"shortest_edge": 224}, resample=3, do_center_crop=True,
                     crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=0.00392156862745098,
                     do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
                     image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)
MAX_LEN = 512  # the Wan pipelines' max_sequence_length

# Pieces added to the T5 fixture's English ones: Cyrillic, CJK and Devanagari words and their
# characters. "🐱" (and every other character outside the vocabulary) goes to byte fallback.
EXTRA_PIECES = [("▁кот", -7.0), ("▁на", -7.5), ("▁луне", -8.0), ("луне", -9.0), ("猫", -8.0), ("在", -8.5),
                ("月亮", -8.0), ("月", -9.5), ("亮", -9.5), ("上", -9.0), ("▁猫", -8.5), ("▁बिल्ली", -8.0),
                ("बि", -9.0), ("ल्ली", -9.0)]
EXTRA_CHARS = sorted(set("котналуне猫在月亮上बिल्ल") - {" "})
N_EXTRA_IDS = 10
PROMPTS = [
    "A cat walks on the grass, realistic style.",
    "  a  cat\n\n\ton the moon &amp;amp; the stars   ",
    "кот на луне",
    "猫在月亮上",
    "बिल्ली on the moon",
    "a cat <extra_id_3> on the moon</s> now",
    "the " * 600,  # cut to 511 + </s>
    "a cat 🐱 on the moon",  # byte fallback
    "",
]
CLEAN_CASES = [
    "plain text",
    "  leading and trailing  ",
    "tabs\tand\nnewlines\r\nand\u3000ideographic\u00a0spaces\u2028here",
    "\x1c\x1d\x1e\x1f separators",
    "&amp; &lt;b&gt; &quot;q&quot; &apos;a&apos; &nbsp;x",
    "&amp;amp; twice &amp;lt; &amp;amp;amp; thrice",
    "legacy &amp &lt &gtx &copy2024 &notit; &notin; &ampx",
    "&eacute;t&eacute; &Eacute; &hellip; &mdash; &euro; &rarr; &NotNestedGreaterGreater;",
    "numeric &#65;&#x42;&#X43; &#0; &#13; &#128; &#150; &#x9F; &#xD800; &#1114112; &#99999999999;",
    "control &#1; &#11; &#x7f; &#xFDD0; &#xFFFE; &#x1FFFF; &#65 &#x41 no-semicolon",
    "&unknown; & alone &; &#; &#x; &#xZ;",
    "&" + "a" * 40 + ";",
]


def seeded_uint8_image(seed, h, w):
    """A smooth-ish, non-trivial RGB picture (gradients + noise)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2]) * 200
    noise = torch.rand((3, h, w), generator=g) * 55
    return (base + noise).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


# ------------------------------------------------------------------------------------------------
# name maps (transformers <-> the official Wan release, ComfyUI, open_clip)

def umt5_to_wan(sd, n_layers):
    """UMT5EncoderModel -> models_t5_umt5-xxl-enc-bf16.pth names (wan/modules/t5.py T5Encoder)."""
    out = {"token_embedding.weight": sd["shared.weight"], "norm.weight": sd["encoder.final_layer_norm.weight"]}
    for i in range(n_layers):
        p, o = f"encoder.block.{i}.layer.", f"blocks.{i}."
        out[o + "norm1.weight"] = sd[p + "0.layer_norm.weight"]
        for x in "qkvo":
            out[o + f"attn.{x}.weight"] = sd[p + f"0.SelfAttention.{x}.weight"]
        out[o + "pos_embedding.embedding.weight"] = sd[p + "0.SelfAttention.relative_attention_bias.weight"]
        out[o + "norm2.weight"] = sd[p + "1.layer_norm.weight"]
        out[o + "ffn.gate.0.weight"] = sd[p + "1.DenseReluDense.wi_0.weight"]
        out[o + "ffn.fc1.weight"] = sd[p + "1.DenseReluDense.wi_1.weight"]
        out[o + "ffn.fc2.weight"] = sd[p + "1.DenseReluDense.wo.weight"]
    return out


def wan_to_umt5(sd):
    out = {}
    for k, v in sd.items():
        if k == "token_embedding.weight":
            out["shared.weight"] = v
            continue
        if k == "norm.weight":
            out["encoder.final_layer_norm.weight"] = v
            continue
        m = re.fullmatch(r"blocks\.(\d+)\.(.*)", k)
        i, rest = m.group(1), m.group(2)
        p = f"encoder.block.{i}.layer."
        name = {"norm1.weight": "0.layer_norm.weight", "norm2.weight": "1.layer_norm.weight",
                "pos_embedding.embedding.weight": "0.SelfAttention.relative_attention_bias.weight",
                "ffn.gate.0.weight": "1.DenseReluDense.wi_0.weight", "ffn.fc1.weight": "1.DenseReluDense.wi_1.weight",
                "ffn.fc2.weight": "1.DenseReluDense.wo.weight"}.get(rest)
        if name is None:
            x = re.fullmatch(r"attn\.([qkvo])\.weight", rest).group(1)
            name = f"0.SelfAttention.{x}.weight"
        out[p + name] = v
    return out


def clip_to_wan(sd, n_layers, out_dim, g):
    """CLIPVisionModel -> models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth `visual.*` names
    (wan/modules/clip.py VisionTransformer: patch conv without bias, cls/pos embeddings as
    parameters, to_qkv = [q; k; v], mlp.0 / mlp.2, pre_norm / post_norm, head [dim, out_dim])."""
    v = "vision_model."
    out = {
        "visual.patch_embedding.weight": sd[v + "embeddings.patch_embedding.weight"],
        "visual.cls_embedding": sd[v + "embeddings.class_embedding"].reshape(1, 1, -1),
        "visual.pos_embedding": sd[v + "embeddings.position_embedding.weight"].unsqueeze(0),
        "visual.pre_norm.weight": sd[v + "pre_layrnorm.weight"], "visual.pre_norm.bias": sd[v + "pre_layrnorm.bias"],
        "visual.post_norm.weight": sd[v + "post_layernorm.weight"],
        "visual.post_norm.bias": sd[v + "post_layernorm.bias"],
    }
    for i in range(n_layers):
        p, o = f"{v}encoder.layers.{i}.", f"visual.transformer.{i}."
        for w in ("weight", "bias"):
            out[o + f"norm1.{w}"] = sd[p + f"layer_norm1.{w}"]
            out[o + f"norm2.{w}"] = sd[p + f"layer_norm2.{w}"]
            out[o + f"attn.to_qkv.{w}"] = torch.cat([sd[p + f"self_attn.{x}_proj.{w}"] for x in "qkv"]).contiguous()
            out[o + f"attn.proj.{w}"] = sd[p + f"self_attn.out_proj.{w}"]
            out[o + f"mlp.0.{w}"] = sd[p + f"mlp.fc1.{w}"]
            out[o + f"mlp.2.{w}"] = sd[p + f"mlp.fc2.{w}"]
    dim = sd[v + "pre_layrnorm.weight"].shape[0]
    out["visual.head"] = (torch.randn(dim, out_dim, generator=g) * 0.25).half().float()
    return out


def wan_to_clip(sd):
    v = "vision_model."
    out = {}
    for k, t in sd.items():
        if k == "visual.head":
            continue
        simple = {"visual.patch_embedding.weight": v + "embeddings.patch_embedding.weight",
                  "visual.pre_norm.weight": v + "pre_layrnorm.weight", "visual.pre_norm.bias": v + "pre_layrnorm.bias",
                  "visual.post_norm.weight": v + "post_layernorm.weight",
                  "visual.post_norm.bias": v + "post_layernorm.bias"}
        if k in simple:
            out[simple[k]] = t
        elif k == "visual.cls_embedding":
            out[v + "embeddings.class_embedding"] = t.reshape(-1)
        elif k == "visual.pos_embedding":
            out[v + "embeddings.position_embedding.weight"] = t[0]
        else:
            m = re.fullmatch(r"visual\.transformer\.(\d+)\.(.*)\.(weight|bias)", k)
            i, mid, w = m.groups()
            p = f"{v}encoder.layers.{i}."
            if mid == "attn.to_qkv":
                for x, part in zip("qkv", t.chunk(3)):
                    out[p + f"self_attn.{x}_proj.{w}"] = part
            else:
                name = {"norm1": "layer_norm1", "norm2": "layer_norm2", "attn.proj": "self_attn.out_proj",
                        "mlp.0": "mlp.fc1", "mlp.2": "mlp.fc2"}[mid]
                out[p + f"{name}.{w}"] = t
    return out


def clip_to_open_clip(sd, n_layers, g):
    """CLIPVisionModel -> open_clip `visual.*` (conv1, class_embedding, positional_embedding, ln_pre,
    transformer.resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}, ln_post, proj)."""
    v = "vision_model."
    out = {
        "visual.conv1.weight": sd[v + "embeddings.patch_embedding.weight"],
        "visual.class_embedding": sd[v + "embeddings.class_embedding"],
        "visual.positional_embedding": sd[v + "embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": sd[v + "pre_layrnorm.weight"], "visual.ln_pre.bias": sd[v + "pre_layrnorm.bias"],
        "visual.ln_post.weight": sd[v + "post_layernorm.weight"], "visual.ln_post.bias": sd[v + "post_layernorm.bias"],
    }
    for i in range(n_layers):
        p, o = f"{v}encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        for w in ("weight", "bias"):
            out[o + f"ln_1.{w}"] = sd[p + f"layer_norm1.{w}"]
            out[o + f"ln_2.{w}"] = sd[p + f"layer_norm2.{w}"]
            out[o + f"attn.in_proj_{w}"] = torch.cat([sd[p + f"self_attn.{x}_proj.{w}"] for x in "qkv"]).contiguous()
            out[o + f"attn.out_proj.{w}"] = sd[p + f"self_attn.out_proj.{w}"]
            out[o + f"mlp.c_fc.{w}"] = sd[p + f"mlp.fc1.{w}"]
            out[o + f"mlp.c_proj.{w}"] = sd[p + f"mlp.fc2.{w}"]
    dim = sd[v + "pre_layrnorm.weight"].shape[0]
    out["visual.proj"] = (torch.randn(dim, 8, generator=g) * 0.25).half().float()
    return out


def open_clip_to_clip(sd):
    v = "vision_model."
    simple = {"visual.conv1.weight": "embeddings.patch_embedding.weight",
              "visual.class_embedding": "embeddings.class_embedding",
              "visual.positional_embedding": "embeddings.position_embedding.weight",
              "visual.ln_pre.weight": "pre_layrnorm.weight", "visual.ln_pre.bias": "pre_layrnorm.bias",
              "visual.ln_post.weight": "post_layernorm.weight", "visual.ln_post.bias": "post_layernorm.bias"}
    out = {}
    for k, t in sd.items():
        if k == "visual.proj":
            continue
        if k in simple:
            out[v + simple[k]] = t
            continue
        i, mid, w = re.fullmatch(r"visual\.transformer\.resblocks\.(\d+)\.(.*?)[._](weight|bias)", k).groups()
        p = f"{v}encoder.layers.{i}."
        if mid == "attn.in_proj":
            for x, part in zip("qkv", t.chunk(3)):
                out[p + f"self_attn.{x}_proj.{w}"] = part
        else:
            name = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
                    "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}[mid]
            out[p + f"{name}.{w}"] = t
    return out


# ------------------------------------------------------------------------------------------------
# Hand-written forwards over the official layouts, after wan/modules/t5.py (T5Encoder, shared_pos
# False: a relative embedding in every block) and wan/modules/clip.py (VisionTransformer with
# use_31_block=True: all blocks but the last, no post_norm). They prove that the official names
# mean what the map says, independently of the map.

def wan_t5_forward(sd, ids, mask, n_heads, n_buckets, max_dist=128, eps=1e-6):
    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def bucket(rel):
        nb = n_buckets // 2
        b = (rel > 0).long() * nb
        rel = rel.abs()
        max_exact = nb // 2
        large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_dist / max_exact)
                             * (nb - max_exact)).long()
        large = torch.minimum(large, torch.full_like(large, nb - 1))
        return b + torch.where(rel < max_exact, rel, large)

    x = sd["token_embedding.weight"][ids]
    b, s, _ = x.shape
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    pos = torch.arange(s)
    rel = bucket(pos[None, :] - pos[:, None])
    for i in range(n_layers):
        p = f"blocks.{i}."
        h = rms(x, sd[p + "norm1.weight"])
        q, k, v = (torch.nn.functional.linear(h, sd[p + f"attn.{n}.weight"]).view(b, s, n_heads, -1) for n in "qkv")
        bias = sd[p + "pos_embedding.embedding.weight"][rel].permute(2, 0, 1).unsqueeze(0)
        bias = bias.expand(b, -1, -1, -1).clone()
        bias.masked_fill_(mask.view(b, 1, 1, s) == 0, torch.finfo(x.dtype).min)
        a = torch.softmax(torch.einsum("binc,bjnc->bnij", q, k) + bias, dim=-1)
        o = torch.einsum("bnij,bjnc->binc", a, v).reshape(b, s, -1)
        x = x + torch.nn.functional.linear(o, sd[p + "attn.o.weight"])
        h = rms(x, sd[p + "norm2.weight"])
        gate = torch.nn.functional.gelu(torch.nn.functional.linear(h, sd[p + "ffn.gate.0.weight"]), approximate="tanh")
        x = x + torch.nn.functional.linear(torch.nn.functional.linear(h, sd[p + "ffn.fc1.weight"]) * gate,
                                           sd[p + "ffn.fc2.weight"])
    return rms(x, sd["norm.weight"])


def wan_clip_penultimate(sd, pixels, n_heads, patch, eps=1e-5):
    ln = torch.nn.functional.layer_norm
    x = torch.nn.functional.conv2d(pixels, sd["visual.patch_embedding.weight"], stride=patch)
    x = x.flatten(2).permute(0, 2, 1)
    b, _, c = x.shape
    x = torch.cat([sd["visual.cls_embedding"].expand(b, -1, -1), x], dim=1) + sd["visual.pos_embedding"]
    x = ln(x, (c,), sd["visual.pre_norm.weight"], sd["visual.pre_norm.bias"], eps)
    n_layers = len({k.split(".")[2] for k in sd if k.startswith("visual.transformer.")})
    for i in range(n_layers - 1):  # use_31_block: transformer[:-1]
        p = f"visual.transformer.{i}."
        h = ln(x, (c,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps)
        s = h.shape[1]
        q, k, v = torch.nn.functional.linear(h, sd[p + "attn.to_qkv.weight"], sd[p + "attn.to_qkv.bias"]) \
            .view(b, s, 3, n_heads, -1).unbind(2)
        o = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + torch.nn.functional.linear(o.transpose(1, 2).reshape(b, s, c), sd[p + "attn.proj.weight"],
                                           sd[p + "attn.proj.bias"])
        h = ln(x, (c,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps)
        h = torch.nn.functional.gelu(torch.nn.functional.linear(h, sd[p + "mlp.0.weight"], sd[p + "mlp.0.bias"]))
        x = x + torch.nn.functional.linear(h, sd[p + "mlp.2.weight"], sd[p + "mlp.2.bias"])
    return x


# ------------------------------------------------------------------------------------------------

def build_tokenizer(out_dir):
    """A tokenizer.json with the structure of google/umt5-xxl's: Unigram with byte_fallback and the
    256 `<0xNN>` pieces, unk 2, pad 0, eos 1, the nmt_nfkc Precompiled normalizer, Metaspace, the
    `$A </s>` template, and trailing `<extra_id_N>` added tokens."""
    t5 = json.load(gzip.open(T5_TOKENIZER))
    pieces = [tuple(p) for p in t5["model"]["vocab"][:800]]  # the spm pieces (the 100 extra ids come after)
    specials, normal = pieces[:3], pieces[3:]
    assert [p for p, _ in specials] == ["<pad>", "</s>", "<unk>"], specials
    have = {p for p, _ in normal}
    extra = [(p, s) for p, s in EXTRA_PIECES if p not in have]
    extra += [(c, -10.0 - 0.01 * i) for i, c in enumerate(EXTRA_CHARS) if c not in have]
    vocab = list(specials) + [(f"<0x{b:02X}>", 0.0) for b in range(256)] + normal + extra
    n = len(vocab)
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(N_EXTRA_IDS - 1, -1, -1)]
    tok = json.loads(json.dumps(t5))
    tok["model"] = {"type": "Unigram", "unk_id": 2, "vocab": [list(v) for v in vocab], "byte_fallback": True}
    added = [a for a in t5["added_tokens"] if a["content"] in ("<pad>", "</s>", "<unk>")]
    for i in range(N_EXTRA_IDS):
        added.append({"id": n + N_EXTRA_IDS - 1 - i, "content": f"<extra_id_{i}>", "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": False, "special": True})
    tok["added_tokens"] = added
    tok["decoder"] = {"type": "Sequence", "decoders": [{"type": "Metaspace", "replacement": "▁",
                                                        "prepend_scheme": "always", "split": True},
                                                       {"type": "ByteFallback"}]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False, separators=(",", ":")) + "\n")
    cfg = {"tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
           "extra_ids": N_EXTRA_IDS, "additional_special_tokens": [f"<extra_id_{i}>" for i in range(N_EXTRA_IDS)],
           "model_max_length": MAX_LEN, "legacy": True}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return len(vocab)


def main():
    out, have = parse_args(__doc__, DEFAULT_OUT, PINNED)
    for f in out.iterdir():  # everything but the contract
        if f.name != "README.md":
            shutil.rmtree(f) if f.is_dir() else f.unlink()
    torch.set_grad_enabled(False)
    io = {}
    meta = {"versions": have, "max_sequence_length": MAX_LEN}
    check("ftfy is not installed (diffusers' basic_clean then skips ftfy.fix_text)",
          not pipeline_wan.is_ftfy_available())

    # -- tokenizer -----------------------------------------------------------------------------------
    tok_dir = out / "tokenizer"
    n_tok = build_tokenizer(tok_dir)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    raw = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    check("transformers loads the tokenizer with the file's vocabulary", len(tok) == n_tok, f"{len(tok)} / {n_tok}")
    # transformers 5's T5Tokenizer rebuilds the Unigram model without byte_fallback (its repr says
    # byte_fallback=False): characters outside the vocabulary become <unk>, as in diffusers and the
    # official Wan code (both tokenize through AutoTokenizer). The `tokenizers` file itself would
    # emit <0xNN> bytes; both are recorded, the pipeline's ids are the reference.
    check("transformers' umT5 tokenizer drops byte_fallback", "byte_fallback=False" in repr(tok.backend_tokenizer.model))
    tok_cases = []
    for p in PROMPTS:
        clean = prompt_clean(p)
        ids = tok(clean, add_special_tokens=True).input_ids
        fb = raw.encode(clean).ids
        pieces = raw.encode(clean).tokens
        byte_fallback = any(re.fullmatch(r"<0x[0-9A-F]{2}>", x) for x in pieces)
        check(f"transformers == tokenizers on {clean[:24]!r}" + (" except the byte fallback" if byte_fallback else ""),
              (ids == fb) != byte_fallback)
        tok_cases.append({"prompt": p, "clean": clean, "ids": ids, "byte_fallback": byte_fallback,
                          "ids_tokenizers_lib": fb})
    check("one prompt meets byte fallback", sum(c["byte_fallback"] for c in tok_cases) == 1)
    check("<unk> only where the tokenizers library falls back to bytes",
          all((2 in c["ids"]) == c["byte_fallback"] for c in tok_cases))
    meta["tokenizer"] = {"vocab": n_tok, "cases": tok_cases}
    meta["prompt_clean"] = [{"text": t, "clean": prompt_clean(t)} for t in CLEAN_CASES]
    check("prompt_clean is basic_clean + whitespace_clean",
          all(c["clean"] == re.sub(r"\s+", " ", html.unescape(html.unescape(c["text"])).strip()).strip()
              for c in meta["prompt_clean"]))

    # -- umT5 ------------------------------------------------------------------------------------------
    cfg = UMT5Config(**UMT5)
    enc = mdf.randomize(UMT5EncoderModel(cfg), 1201)
    for blk in enc.encoder.block:  # a bias large enough to matter (x4 keeps the values f16-exact)
        blk.layer[0].SelfAttention.relative_attention_bias.weight.mul_(4.0)
    enc.save_pretrained(out / "umt5-tiny", safe_serialization=True)
    sd_file = load_file(out / "umt5-tiny" / "model.safetensors")
    f16 = mdf.f16(sd_file)
    save_file(f16, out / "umt5-tiny" / "model.safetensors")
    hf_sd = {k: v.float() for k, v in f16.items()}
    check("umt5-tiny/model.safetensors holds shared.weight", "shared.weight" in hf_sd, f"{len(hf_sd)} tensors")
    enc = UMT5EncoderModel.from_pretrained(out / "umt5-tiny", torch_dtype=torch.float32).eval()
    meta["umt5"] = json.loads(enc.config.to_json_string(use_diff=False))

    g = torch.Generator().manual_seed(7)
    ids = torch.randint(3, n_tok, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.int64)
    ids[0, 9], ids[0, 10:] = 1, 0
    ids[1, 5], ids[1, 6:] = 1, 0
    mask[0, 10:] = 0
    mask[1, 6:] = 0
    hs = enc(input_ids=ids, attention_mask=mask).last_hidden_state
    io["umt5.ids"], io["umt5.mask"], io["umt5.hidden"] = ids, mask, hs
    io["umt5.hidden_nomask"] = enc(input_ids=ids).last_hidden_state

    wan_sd = umt5_to_wan(hf_sd, UMT5["num_layers"])
    back = wan_to_umt5(wan_sd)
    want = {k: v for k, v in hf_sd.items() if k != "encoder.embed_tokens.weight"}
    ok, detail = mdf.same_dicts(back, want)
    check("umT5 official names round-trip", ok, detail)
    hand = wan_t5_forward(wan_sd, ids, mask, UMT5["num_heads"], UMT5["relative_attention_num_buckets"],
                          UMT5["relative_attention_max_distance"])
    check("the official-layout forward (wan/modules/t5.py) reproduces UMT5EncoderModel",
          mdf.rel(hand, hs) < 1e-6, f"rel {mdf.rel(hand, hs):.1e}")
    torch.save({k: v.half() for k, v in wan_sd.items()}, out / "umt5-tiny-enc-f16.pth")
    # ComfyUI umt5_xxl_fp16.safetensors: transformers names.
    save_file({k: v.half() for k, v in want.items()}, out / "umt5-tiny_fp16.safetensors")
    # ComfyUI umt5_xxl_fp8_e4m3fn_scaled.safetensors: every linear weight in float8_e4m3fn with a
    # float32 `<layer>.scale_weight`, the marker `scaled_fp8`, everything else f16.
    fp8, deq = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}, {}
    for k, v in want.items():
        if re.search(r"\.(q|k|v|o|wi_0|wi_1|wo)\.weight$", k):
            scale = (v.abs().max() / 448.0).float()
            q = (v / scale).to(torch.float8_e4m3fn)
            fp8[k] = q
            fp8[k[: -len("weight")] + "scale_weight"] = scale.reshape(())
            deq[k] = q.float() * scale
        else:
            fp8[k] = v.half()
            deq[k] = v.half().float()
    save_file(fp8, out / "umt5-tiny_fp8_e4m3fn_scaled.safetensors")
    enc8 = UMT5EncoderModel(cfg).eval()
    missing, unexpected = enc8.load_state_dict({**deq, "encoder.embed_tokens.weight": deq["shared.weight"]},
                                               strict=False)
    check("the dequantized fp8 weights load", not unexpected and not [m for m in missing if "embed" not in m],
          f"missing {missing} unexpected {unexpected}")
    io["umt5.hidden_fp8"] = enc8(input_ids=ids, attention_mask=mask).last_hidden_state
    check("fp8 changes the output (the scales matter)", mdf.rel(io["umt5.hidden_fp8"], hs) > 1e-3,
          f"rel {mdf.rel(io['umt5.hidden_fp8'], hs):.1e}")

    # The Wan prompt path: diffusers' own _get_t5_prompt_embeds on the pipeline's glue.
    fake = types.SimpleNamespace(tokenizer=tok, text_encoder=enc, _execution_device=torch.device("cpu"))
    wan_prompts = [PROMPTS[0], PROMPTS[2], PROMPTS[6]]
    embeds = WanPipeline._get_t5_prompt_embeds(fake, prompt=wan_prompts, max_sequence_length=MAX_LEN,
                                               device=torch.device("cpu"), dtype=torch.float32)
    t = tok([prompt_clean(p) for p in wan_prompts], padding="max_length", max_length=MAX_LEN, truncation=True,
            add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    io["wan_prompt.ids"], io["wan_prompt.mask"], io["wan_prompt.embeds"] = t.input_ids, t.attention_mask, embeds
    meta["wan_prompt"] = {"prompts": wan_prompts, "real_lengths": t.attention_mask.sum(1).tolist()}
    check("the Wan prompt embeddings are [3, 512, 16], zero past each real length",
          embeds.shape == (3, MAX_LEN, 16) and all(bool((embeds[i, n:] == 0).all())
                                                   for i, n in enumerate(meta["wan_prompt"]["real_lengths"])))
    check("one Wan prompt is truncated to 512", meta["wan_prompt"]["real_lengths"][2] == MAX_LEN)

    # -- CLIP vision ---------------------------------------------------------------------------------
    vcfg = CLIPVisionConfig(**CLIPV)
    vis = mdf.randomize(CLIPVisionModel(vcfg), 1301)
    vis.save_pretrained(out / "clip-vision-tiny", safe_serialization=True)
    vsd = mdf.f16(load_file(out / "clip-vision-tiny" / "model.safetensors"))
    save_file(vsd, out / "clip-vision-tiny" / "model.safetensors")
    vis = CLIPVisionModel.from_pretrained(out / "clip-vision-tiny", torch_dtype=torch.float32).eval()
    meta["clip_vision"] = json.loads(vis.config.to_json_string(use_diff=False))
    # transformers 5 saves CLIPVisionModel without the `vision_model.` prefix (4.x files have it).
    check("clip-vision-tiny keys have no vision_model. prefix (transformers 5)",
          not any(k.startswith("vision_model.") for k in vsd), f"{len(vsd)} tensors")
    vsd = {"vision_model." + k: v.float() for k, v in vsd.items()}
    g = torch.Generator().manual_seed(11)
    px = torch.randn(2, 3, 28, 28, generator=g)
    outv = vis(pixel_values=px, output_hidden_states=True)
    io["clip.pixels"], io["clip.penultimate"] = px, outv.hidden_states[-2]
    check("hidden_states[-2] is [2, 5, 16]", tuple(outv.hidden_states[-2].shape) == (2, 5, 16))

    gh = torch.Generator().manual_seed(13)
    wan_v = clip_to_wan(vsd, CLIPV["num_hidden_layers"], 8, gh)
    ok, detail = mdf.same_dicts(wan_to_clip(wan_v), vsd)
    check("CLIP official (Wan) names round-trip", ok, detail)
    hand = wan_clip_penultimate(wan_v, px, CLIPV["num_attention_heads"], CLIPV["patch_size"])
    check("the official-layout forward (wan/modules/clip.py, use_31_block) reproduces hidden_states[-2]",
          mdf.rel(hand, outv.hidden_states[-2]) < 1e-6, f"rel {mdf.rel(hand, outv.hidden_states[-2]):.1e}")
    wan_v["log_scale"] = torch.tensor(math.log(1 / 0.07))
    torch.save({k: v.half() for k, v in wan_v.items()}, out / "clip-tiny-wan-f16.pth")
    oc = clip_to_open_clip(vsd, CLIPV["num_hidden_layers"], gh)
    ok, detail = mdf.same_dicts(open_clip_to_clip(oc), vsd)
    check("CLIP open_clip names round-trip", ok, detail)
    save_file({k: v.half() for k, v in oc.items()}, out / "clip-tiny-open-clip.safetensors")
    # ComfyUI clip_vision_h.safetensors: transformers names (vision_model.*, visual_projection).
    comfy = {k: v.half() for k, v in vsd.items()}
    comfy["visual_projection.weight"] = (torch.randn(8, 16, generator=gh) * 0.25).half()
    save_file(comfy, out / "clip_vision_tiny_comfy.safetensors")

    # -- CLIP image processor (transformers 5.23 falls back to the PIL backend without torchvision) ----
    proc = CLIPImageProcessorPil(**WAN_PROCESSOR)
    meta["processor"] = {"config": WAN_PROCESSOR, "class": type(proc).__name__, "images": {}}
    for name, (h, w), seed in (("up", (30, 41), 21), ("down", (233, 300), 22)):
        img = seeded_uint8_image(seed, h, w)
        pv = proc(images=PIL.Image.fromarray(img), return_tensors="pt").pixel_values
        short = min(h, w)
        nh, nw = (224, int(224 * w / h)) if h <= w else (int(224 * h / w), 224)
        res = np.array(PIL.Image.fromarray(img).resize((nw, nh), resample=PIL.Image.Resampling.BICUBIC))
        top, left = (nh - 224) // 2, (nw - 224) // 2
        crop = res[top:top + 224, left:left + 224].transpose(2, 0, 1).copy()
        mean = np.array(WAN_PROCESSOR["image_mean"], dtype=np.float32)[:, None, None]
        std = np.array(WAN_PROCESSOR["image_std"], dtype=np.float32)[:, None, None]
        mine = ((crop.astype(np.float64) * WAN_PROCESSOR["rescale_factor"]).astype(np.float32) - mean) / std
        check(f"processor({name} {w}x{h}) == PIL bicubic resize to {nw}x{nh}, crop, rescale, normalize",
              torch.equal(torch.from_numpy(mine)[None], pv) and short > 0)
        io[f"proc.{name}.image"] = torch.from_numpy(img)
        io[f"proc.{name}.crop_u8"] = torch.from_numpy(crop)
        io[f"proc.{name}.pixel_rows"] = pv[:, :, :8, :].contiguous()
        meta["processor"]["images"][name] = {"height": h, "width": w, "resized": [nh, nw]}
    # End to end on the tiny tower: the same processor at 28 px, then hidden_states[-2].
    tiny_proc = CLIPImageProcessorPil(**{**WAN_PROCESSOR, "size": {"shortest_edge": 28},
                                         "crop_size": {"height": 28, "width": 28}})
    pv = tiny_proc(images=PIL.Image.fromarray(seeded_uint8_image(23, 45, 37)), return_tensors="pt").pixel_values
    io["e2e.image"] = torch.from_numpy(seeded_uint8_image(23, 45, 37))
    io["e2e.pixels"] = pv
    io["e2e.penultimate"] = vis(pixel_values=pv, output_hidden_states=True).hidden_states[-2]

    # -- write -----------------------------------------------------------------------------------------
    save_io(io, out / "encoders.io.safetensors", meta, key="io", keep=(torch.int64, torch.uint8))
    write_json(out / "encoders.json", meta, ensure_ascii=False)
    finish(out, MAX_BYTES)


if __name__ == "__main__":
    main()
