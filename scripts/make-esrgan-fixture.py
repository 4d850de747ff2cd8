#!/usr/bin/env python3
"""Makes the Real-ESRGAN parity fixtures for crates/post: tiny random-weight generators of both
families, defined by the reference code (BasicSR 1.4.2's RRDBNet, realesrgan 0.3.0's
SRVGGNetCompact), run on PyTorch (CPU, float32), so the candle port can be required to match.

    scripts/diffusion-fixture-venv.sh       # once: the pinned torch venv (outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-esrgan-fixture.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/post/esrgan/. The reference sources are the PyPI sdist/wheel
of basicsr==1.4.2 and realesrgan==0.3.0 (BSD-3), downloaded with `pip download --no-deps` into
~/.cache/reelsmith/post-refs/ (or $REELSMITH_POST_REFS) and read from there, never copied into
the repo: the two architecture files are executed as they are; of BasicSR's arch_util only the
three helpers they import (make_layer, pixel_unshuffle, default_init_weights) are taken, by
name, from the same file; the registry decorator is replaced by a no-op.

Writes (every random tensor from a fixed seed; two runs give identical files):
  compact-x4.pth          SRVGGNetCompact(num_feat=8, num_conv=4, upscale=4), {'params': sd}
  rrdb-x4.pth             RRDBNet(scale=4, num_feat=8, num_block=2, num_grow_ch=4), {'params_ema': sd}
  rrdb-x2.safetensors     RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4)
  io.safetensors          inputs and reference outputs:
     <net>.x / <net>.y             one forward pass on a random [1,3,H,W] picture in 0..1
     <net>.enhance.x / .y          the reference's RealESRGANer pre_pad=10 + mod-pad (reflect)
                                   around the network on an odd-sized picture, cropped back
"""
import ast
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
REFS = Path(os.environ.get("REELSMITH_POST_REFS", Path.home() / ".cache/reelsmith/post-refs"))


def fetch_refs():
    """The reference files, downloaded and unpacked once."""
    REFS.mkdir(parents=True, exist_ok=True)
    rrdb = REFS / "basicsr-1.4.2/basicsr/archs/rrdbnet_arch.py"
    srvgg = REFS / "realesrgan/archs/srvgg_arch.py"
    if not rrdb.exists() or not srvgg.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(REFS),
                        "basicsr==1.4.2", "realesrgan==0.3.0"], check=True)
        with tarfile.open(REFS / "basicsr-1.4.2.tar.gz") as t:
            t.extractall(REFS, filter="data")
        with zipfile.ZipFile(REFS / "realesrgan-0.3.0-py3-none-any.whl") as z:
            z.extractall(REFS)
    return rrdb, srvgg


def load_refs():
    rrdb, srvgg = fetch_refs()
    util_src = (rrdb.parent / "arch_util.py").read_text()
    wanted = {"make_layer", "pixel_unshuffle", "default_init_weights"}
    tree = ast.parse(util_src)
    helpers = ast.Module(body=[n for n in tree.body
                               if isinstance(n, ast.FunctionDef) and n.name in wanted], type_ignores=[])
    util_ns = {"torch": torch, "nn": nn, "F": F, "init": nn.init,
               "_BatchNorm": nn.modules.batchnorm._BatchNorm}
    exec(compile(helpers, str(rrdb.parent / "arch_util.py"), "exec"), util_ns)

    class Registry:
        def register(self):
            return lambda cls: cls

    def run(path):
        src = path.read_text()
        src = src.replace("from basicsr.utils.registry import ARCH_REGISTRY\n", "")
        src = src.replace("from .arch_util import default_init_weights, make_layer, pixel_unshuffle\n", "")
        ns = {"ARCH_REGISTRY": Registry(), **{k: util_ns[k] for k in wanted}}
        exec(compile(src, str(path), "exec"), ns)
        return ns

    return run(rrdb)["RRDBNet"], run(srvgg)["SRVGGNetCompact"]


def seeded(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) * (0.8 / fan_in ** 0.5))
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            else:  # PReLU slopes
                p.copy_(0.25 + 0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def enhance(model, img, scale, pre_pad=10):
    """RealESRGANer.pre_process / process / post_process (realesrgan/utils.py), tiles off."""
    x = F.pad(img, (0, pre_pad, 0, pre_pad), "reflect")
    mod = {2: 2, 1: 4}.get(scale)
    mh = mw = 0
    if mod:
        h, w = x.shape[2:]
        mh, mw = (mod - h % mod) % mod, (mod - w % mod) % mod
        x = F.pad(x, (0, mw, 0, mh), "reflect")
    y = model(x)
    h, w = y.shape[2:]
    y = y[:, :, : h - mh * scale, : w - mw * scale]
    h, w = y.shape[2:]
    y = y[:, :, : h - pre_pad * scale, : w - pre_pad * scale]
    return y.clamp(0, 1)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests/fixtures/post/esrgan"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    RRDBNet, SRVGGNetCompact = load_refs()
    nets = {
        "compact-x4": (seeded(SRVGGNetCompact(num_feat=8, num_conv=4, upscale=4), 1), 4, (19, 23)),
        "rrdb-x4": (seeded(RRDBNet(3, 3, scale=4, num_feat=8, num_block=2, num_grow_ch=4), 2), 4, (17, 21)),
        "rrdb-x2": (seeded(RRDBNet(3, 3, scale=2, num_feat=8, num_block=1, num_grow_ch=4), 3), 2, (18, 22)),
    }
    io = {}
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, (model, scale, (h, w)) in nets.items():
            sd = {k: v.contiguous() for k, v in model.state_dict().items()}
            if name == "compact-x4":
                torch.save({"params": sd}, out / f"{name}.pth")
            elif name == "rrdb-x4":
                torch.save({"params_ema": sd}, out / f"{name}.pth")
            else:
                save_file(sd, out / f"{name}.safetensors")
            x = torch.rand((1, 3, h, w), generator=g)
            io[f"{name}.x"] = x
            io[f"{name}.y"] = model(x)
            ex = torch.rand((1, 3, h + 1, w + 3), generator=g)  # odd sides: mod-pad for x2
            io[f"{name}.enhance.x"] = ex
            io[f"{name}.enhance.y"] = enhance(model, ex, scale)
            print(f"[ok] {name}: {tuple(x.shape)} -> {tuple(io[name + '.y'].shape)}, "
                  f"enhance {tuple(ex.shape)} -> {tuple(io[name + '.enhance.y'].shape)}")
    save_file({k: v.contiguous() for k, v in io.items()}, out / "io.safetensors")
    total = 0
    for f in sorted(out.iterdir()):
        total += f.stat().st_size
        print(f"{f.name:28} {f.stat().st_size:>9} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
