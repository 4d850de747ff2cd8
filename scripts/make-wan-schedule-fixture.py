#!/usr/bin/env python3
"""Makes the Wan2.1 sampler and pipeline-arithmetic parity fixtures: the schedules of diffusers'
UniPCMultistepScheduler (flow sigmas, as the Wan pipelines configure it) and
FlowMatchEulerDiscreteScheduler, and whole runs of the real WanPipeline / WanImageToVideoPipeline
driven by a deterministic analytic "transformer", so the candle port in crates/video
(wan/schedule.rs, wan/pipeline.rs) can be required to match every step.
tests/fixtures/wan/schedule/README.md is the contract.

    scripts/diffusion-fixture-venv.sh          # once: the pinned venv (outside the repo)
    ~/.cache/reelsmith/fixture-venv/bin/python scripts/make-wan-schedule-fixture.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/wan/schedule/. Pinned: torch 2.15.0, diffusers 0.42.1,
safetensors 0.8.0 (other versions are refused unless --any-version is given). CPU, float32,
a few seconds, deterministic (two runs write byte-identical files).

The analytic model stands in for the Wan transformer (same call signature, same place in the
loop); the Rust test writes the same formula:

    x = hidden_states[:, :16]             (the noisy latents)
    v = A·x + B·sin(x) + C·t/1000 + E·mean(encoder_hidden_states)
      (+ G·y[:, 4:20] + M0·y[:, 0:1] + M3·y[:, 3:4]   with y = hidden_states[:, 16:36], i2v only)

The prompt embeddings are all ones (cond, mean 1) and the negative ones all −0.5 (uncond), so
the two CFG halves differ by E·1.5.
"""
import sys
from pathlib import Path

import numpy as np
import torch

from fixture_common import check, finish, parse_args, save_io, write_json

PINNED = {"torch": "2.15.0", "diffusers": "0.42.1", "safetensors": "0.8.0"}
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "wan" / "schedule"
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
)
from diffusers.configuration_utils import ConfigMixin, register_to_config  # noqa: E402
from diffusers.models.cache_utils import CacheMixin  # noqa: E402
from diffusers.models.modeling_utils import ModelMixin  # noqa: E402

# The analytic model's constants (the Rust test reads them from wan_schedule.json).
MODEL = {"A": 0.5, "B": 0.3, "C": 0.7, "E": 0.2, "G": 0.4, "M0": 0.25, "M3": -0.15,
         "cond_embed": 1.0, "uncond_embed": -0.5}
# The scheduler configs of the Wan2.1 diffusers repos (Wan-AI/Wan2.1-*-Diffusers
# scheduler/scheduler_config.json): UniPC with flow sigmas, everything else the class defaults.
WAN_UNIPC = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "num_train_timesteps": 1000}

NOISE = []
_ORIG_RANDN = pw.randn_tensor


def _recording_randn(*args, **kwargs):
    out = _ORIG_RANDN(*args, **kwargs)
    f = sys._getframe(1)
    NOISE.append((f"{f.f_globals.get('__name__', '?')}.{f.f_code.co_qualname}", out.detach().float().clone()))
    return out


class AnalyticTransformer(ModelMixin, ConfigMixin, CacheMixin):
    """The Wan transformer's call signature with a closed-form output (see the module doc)."""

    @register_to_config
    def __init__(self, in_channels: int = 16, out_channels: int = 16, patch_size=(1, 2, 2), image_dim=None):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a dtype and a device
        self.calls = []

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image=None,
                attention_kwargs=None, return_dict=True):
        m = MODEL
        x = hidden_states[:, :16]
        t = timestep.to(torch.float32).view(-1, 1, 1, 1, 1) / 1000
        e = encoder_hidden_states.to(torch.float32).mean()
        self.calls.append(("cond" if float(e) > 0 else "uncond", float(timestep[0])))
        out = m["A"] * x + m["B"] * torch.sin(x) + m["C"] * t + m["E"] * e
        if hidden_states.shape[1] > 16:
            y = hidden_states[:, 16:]
            out = out + m["G"] * y[:, 4:] + m["M0"] * y[:, 0:1] + m["M3"] * y[:, 3:4]
        return (out,)


def sched_config(s):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(s.config).items()
            if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------
# schedules

UNIPC_SCHEDULES = [(50, 5.0), (50, 3.0), (40, 5.0), (40, 3.0), (50, 8.0), (30, 12.0), (10, 3.0), (2, 1.0),
                   (1, 5.0)]
EULER_SCHEDULES = [(50, 5.0), (40, 3.0), (30, 12.0), (8, 5.0), (1, 3.0)]


def unipc_formula(steps, shift):
    """The schedule as the README states it (float64, then int64 truncation / float32)."""
    s = np.linspace(1, 1 / 1000, steps + 1)[:-1]
    s = shift * s / (1 + (shift - 1) * s)
    if abs(s[0] - 1) < 1e-6:
        s[0] -= 1e-6
    return (s * 1000).astype(np.int64).tolist(), np.concatenate([s, [0]]).astype(np.float32).tolist()


def schedules(meta):
    out = {"unipc": [], "euler": []}
    for steps, shift in UNIPC_SCHEDULES:
        s = UniPCMultistepScheduler(**WAN_UNIPC, flow_shift=shift)
        s.set_timesteps(steps)
        ts, sig = s.timesteps.tolist(), s.sigmas.tolist()
        fts, fsig = unipc_formula(steps, shift)
        check(f"unipc {steps} steps shift {shift}: timesteps/sigmas = the README formula", ts == fts and sig == fsig)
        out["unipc"].append({"steps": steps, "shift": shift, "timesteps": ts, "sigmas": sig})
    for steps, shift in EULER_SCHEDULES:
        s = FlowMatchEulerDiscreteScheduler(shift=shift)
        s.set_timesteps(steps)
        out["euler"].append({"steps": steps, "shift": shift, "timesteps": s.timesteps.tolist(),
                             "sigmas": s.sigmas.tolist(), "sigma_min": s.sigma_min, "sigma_max": s.sigma_max})
        # The README formula: sigma_min is the class's shifted training sigma (float32), the linspace
        # runs from 1000·sigma_max to 1000·sigma_min and is shifted a second time.
        smin = torch.tensor([1.0], dtype=torch.float32) / 1000
        smin = (shift * smin / (1 + (shift - 1) * smin)).item()
        t = np.linspace(1.0 * 1000, smin * 1000, steps) / 1000
        sig = torch.from_numpy(shift * t / (1 + (shift - 1) * t)).to(torch.float32)
        check(f"euler {steps} steps shift {shift}: sigmas = the README formula (shifted twice)",
              sig.tolist() + [0.0] == s.sigmas.tolist() and (sig * 1000).tolist() == s.timesteps.tolist())
    meta["schedules"] = out


# ---------------------------------------------------------------------------------------------
# runs

H = W = 32


def tiny_vae(seed):
    torch.manual_seed(seed)
    mean = [round(float(v), 4) for v in 0.2 * torch.randn(16)]
    std = [round(float(v), 4) for v in 0.5 + torch.rand(16)]
    vae = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
                           temperal_downsample=[False, True, True], latents_mean=mean, latents_std=std)
    return vae.eval()


def smooth_image(seed):
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(small, size=(H, W), mode="bilinear", align_corners=False)


def run(io, meta, name, pipe, seed, steps, guidance, frames, **kwargs):
    tr = pipe.transformer
    tr.calls = []
    latents = []
    captured = {}

    def on_step_end(_pipe, i, t, kw):
        latents.append(kw["latents"].detach().clone())
        return {}

    vae = pipe.vae
    orig_encode = vae.encode
    orig_prepare = pipe.prepare_latents

    def encode(x, *a, **k):
        captured["encode_in"] = x.detach().clone()
        out = orig_encode(x, *a, **k)
        captured["encode_out"] = out.latent_dist.mode().detach().clone()
        return out

    def prepare(*a, **k):
        out = orig_prepare(*a, **k)
        if isinstance(a[0], torch.Tensor):  # the i2v pipeline's (image, …, last_image)
            captured["prepare_image"] = a[0].detach().clone()
            last = a[10] if len(a) > 10 else k.get("last_image")
            captured["prepare_last_image"] = None if last is None else last.detach().clone()
        captured["prepare_out"] = out
        return out

    vae.encode = encode
    pipe.prepare_latents = prepare
    pipe.set_progress_bar_config(disable=True)
    NOISE.clear()
    ones = torch.full((1, 4, 8), MODEL["cond_embed"])
    neg = torch.full((1, 4, 8), MODEL["uncond_embed"])
    try:
        with torch.no_grad():
            out = pipe(prompt_embeds=ones, negative_prompt_embeds=neg, height=H, width=W, num_frames=frames,
                       num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(seed),
                       callback_on_step_end=on_step_end, output_type="latent", **kwargs)
    finally:
        del vae.encode
        del pipe.prepare_latents
    draws = list(NOISE)
    for k, (_, n) in enumerate(draws):
        io[f"{name}.noise.{k}"] = n
    for i, x in enumerate(latents):
        io[f"{name}.step.{i}"] = x
    final = out.frames
    check(f"{name}: the returned latents are the last step's", torch.equal(final, latents[-1]))
    check(f"{name}: every step finite", all(torch.isfinite(x).all() for x in latents))
    s = pipe.scheduler
    per_step = len(tr.calls) // steps
    check(f"{name}: {per_step} model call(s) per step, cond first",
          len(tr.calls) == per_step * steps and all(c[0] == "cond" for c in tr.calls[::per_step]))
    entry = {"pipeline": type(pipe).__name__, "scheduler_class": type(s).__name__, "scheduler": sched_config(s),
             "seed": seed, "steps": steps, "guidance_scale": guidance, "num_frames": frames, "height": H, "width": W,
             "timesteps": s.timesteps.tolist(), "sigmas": s.sigmas.tolist(),
             "model_timesteps": [c[1] for c in tr.calls[::per_step]], "model_calls_per_step": per_step,
             "noise": [{"key": f"{name}.noise.{k}", "shape": list(n.shape), "drawn_by": f} for k, (f, n) in
                       enumerate(draws)],
             "step_shape": list(latents[0].shape)}
    if "encode_in" in captured:
        vae_cfg = vae.config
        image = captured["prepare_image"]
        io[f"{name}.image"] = image[0]
        last = captured["prepare_last_image"]
        check(f"{name}: prepare_latents got a last image iff the run has one",
              (last is None) == (kwargs.get("last_image") is None))
        if last is not None:
            io[f"{name}.last_image"] = last[0]
        io[f"{name}.encode_in"] = captured["encode_in"]
        io[f"{name}.encode_out"] = captured["encode_out"]
        lat, cond = captured["prepare_out"]
        io[f"{name}.condition"] = cond
        check(f"{name}: the initial latents are the recorded draw", torch.equal(lat, draws[0][1]))
        # The arithmetic as the README states it, from the recorded encoder output.
        mean = torch.tensor(vae_cfg.latents_mean).view(1, 16, 1, 1, 1)
        inv = 1.0 / torch.tensor(vae_cfg.latents_std).view(1, 16, 1, 1, 1)
        z = (captured["encode_out"] - mean) * inv
        lf, lh, lw = z.shape[2:]
        mask = torch.zeros(1, 4, lf, lh, lw)
        mask[:, :, 0] = 1
        if kwargs.get("last_image") is not None:
            mask[:, 3, -1] = 1
        check(f"{name}: condition = [mask(4), (mode − mean)/std (16)] as the README says",
              torch.equal(cond, torch.cat([mask, z], 1)))
        entry["latents_mean"] = list(vae_cfg.latents_mean)
        entry["latents_std"] = list(vae_cfg.latents_std)
        entry["vae"] = {k: v for k, v in sched_config(vae).items() if k not in ("latents_mean", "latents_std")}
    meta["runs"][name] = entry


def runs(io, meta):
    tr = AnalyticTransformer()
    tr_i2v = AnalyticTransformer(in_channels=36)
    vae = tiny_vae(31)
    unipc = lambda **k: UniPCMultistepScheduler(**{**WAN_UNIPC, **k})  # noqa: E731
    t2v = lambda s: WanPipeline(tokenizer=None, text_encoder=None, transformer=tr, vae=vae, scheduler=s)  # noqa: E731
    i2v = lambda s: WanImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae, scheduler=s,  # noqa: E731
                                            image_processor=None, image_encoder=None, transformer=tr_i2v)
    run(io, meta, "t2v_unipc", t2v(unipc(flow_shift=3.0)), seed=11, steps=10, guidance=5.0, frames=9)
    run(io, meta, "t2v_unipc_order3", t2v(unipc(flow_shift=8.0, solver_order=3, solver_type="bh1",
                                                 final_sigmas_type="sigma_min")),
        seed=12, steps=7, guidance=1.0, frames=9)
    run(io, meta, "t2v_euler", t2v(FlowMatchEulerDiscreteScheduler(shift=5.0)), seed=13, steps=8, guidance=6.0,
        frames=9)
    run(io, meta, "i2v", i2v(unipc(flow_shift=5.0)), seed=14, steps=6, guidance=5.0, frames=9,
        image=smooth_image(41))
    run(io, meta, "flf2v", i2v(unipc(flow_shift=5.0)), seed=15, steps=6, guidance=5.0, frames=13,
        image=smooth_image(42), last_image=smooth_image(43))


def main():
    out, have = parse_args(__doc__, DEFAULT_OUT, PINNED)
    diffusers.utils.logging.set_verbosity_error()
    torch.set_num_threads(1)
    pw.randn_tensor = _recording_randn
    pwi.randn_tensor = _recording_randn
    meta = {"made_by": "scripts/make-wan-schedule-fixture.py", "versions": have, "model": MODEL,
            "wan_unipc_config": WAN_UNIPC, "runs": {}}
    print("schedules")
    schedules(meta)
    print("runs")
    io = {}
    runs(io, meta)
    save_io(io, out / "wan_schedule.safetensors", meta)
    write_json(out / "wan_schedule.json", meta)
    finish(out, SIZE_BUDGET)


if __name__ == "__main__":
    main()
