//! Wan2.1's samplers and pipeline arithmetic against diffusers 0.42.1 (tests/fixtures/wan/schedule,
//! made by scripts/make-wan-schedule-fixture.py; its README is the contract):
//!
//! - the timesteps and σ of `UniPCMultistepScheduler` (flow σ, Wan's config) and
//!   `FlowMatchEulerDiscreteScheduler(shift)` for several (steps, shift) pairs, exactly;
//! - whole runs of the real `WanPipeline` / `WanImageToVideoPipeline` (image-to-video and
//!   first-last-frame) driven by an analytic "transformer" written identically here, from the
//!   recorded initial noise: every step's latents (UniPC with Wan's config and with order 3 / bh1,
//!   flow-match Euler; guidance 5, 6 and off), the model's timesteps and call order, the video the
//!   VAE is asked to encode and the 20-channel condition built from the recorded encoder output;
//! - bad requests name the nearest valid values.
//!
//! Tolerance: rel-L2 ≤ 1e-5 and max|Δ| ≤ 1e-4·max|ref| per step (CPU f32). Measured (CPU f32,
//! `-- --nocapture`), worst step of each run, rel-L2 / max|Δ|/max|ref|: t2v_unipc 1.1e-7 /
//! 2.6e-7, t2v_unipc_order3 4.1e-8 / 1.3e-7, t2v_euler 5.9e-9 / 3.4e-8, i2v 4.9e-8 / 1.3e-7,
//! flf2v 5.1e-8 / 1.1e-7 (UniPC's coefficients are computed in f64 here, in f32 scalar tensors
//! in diffusers). The encoder input and the 20-channel condition match exactly (0), and so do
//! the schedules (integer timesteps, float32 σ).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::noise::{Noise, Replay};
use reelsmith_kit::testing::TestDevice;
use reelsmith_video::wan::pipeline::{
    condition_mask, condition_video, denoise, image_to_video, initial_latents, text_to_video,
    LatentStats, WanRequest,
};
use reelsmith_video::wan::schedule::{
    FinalSigma, FlowEuler, SamplerKind, SolverType, UniPcConfig, UniPcFlow, WanSampler,
};
use reelsmith_video::VideoError;
use serde_json::Value;

const REL: f64 = 1e-5;
const MAX: f64 = 1e-4;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wan/schedule")
}

fn td() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
}

struct Fixture {
    json: Value,
    io: HashMap<String, Tensor>,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let json = serde_json::from_str(
            &std::fs::read_to_string(dir().join("wan_schedule.json")).unwrap(),
        )
        .unwrap();
        let io =
            candle_core::safetensors::load(dir().join("wan_schedule.safetensors"), dev()).unwrap();
        Fixture { json, io }
    })
}

fn dev() -> &'static Device {
    &td().device
}

fn t(key: &str) -> Tensor {
    fixture()
        .io
        .get(key)
        .unwrap_or_else(|| panic!("fixture tensor {key} missing"))
        .clone()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// JSON numbers as f32: the schedules are float32 values, and serde_json's float parsing is not
/// exact to the last f64 bit.
fn f32s(v: &Value) -> Vec<f32> {
    f64s(v).into_iter().map(|x| x as f32).collect()
}

fn as_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn replay(run: &str) -> Replay {
    let mut draws = Vec::new();
    while let Some(d) = fixture().io.get(&format!("{run}.noise.{}", draws.len())) {
        draws.push(d.clone());
    }
    Replay::new(draws)
}

/// The analytic "transformer" of the fixture script (its module doc):
/// `A·x + B·sin(x) + C·t/1000 + E·e (+ G·y[4..20] + M0·y[0] + M3·y[3])`, e = 1 cond / −0.5 uncond.
fn analytic(input: &Tensor, timestep: f64, cond: bool) -> Result<Tensor, VideoError> {
    let m = &fixture().json["model"];
    let k = |name: &str| m[name].as_f64().unwrap();
    let x = input.narrow(1, 0, 16)?;
    let tt = timestep as f32 / 1000.0;
    let e = if cond {
        k("cond_embed")
    } else {
        k("uncond_embed")
    };
    let mut out = (((&x * k("A"))? + (x.sin()? * k("B"))?)? + (k("C") as f32 * tt) as f64)?;
    out = (out + (k("E") as f32 * e as f32) as f64)?;
    if input.dim(1)? > 16 {
        let y = input.narrow(1, 16, input.dim(1)? - 16)?;
        out = (out + (y.narrow(1, 4, 16)? * k("G"))?)?;
        out = out.broadcast_add(&(y.narrow(1, 0, 1)? * k("M0"))?)?;
        out = out.broadcast_add(&(y.narrow(1, 3, 1)? * k("M3"))?)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// schedules

#[test]
fn unipc_timesteps_and_sigmas_match_diffusers_exactly() {
    let all = fixture().json["schedules"]["unipc"].as_array().unwrap();
    assert!(all.len() >= 8);
    for s in all {
        let (steps, shift) = (
            s["steps"].as_u64().unwrap() as usize,
            s["shift"].as_f64().unwrap(),
        );
        let u = UniPcFlow::new(UniPcConfig::wan(shift), steps).unwrap();
        // Integers.
        assert_eq!(
            u.timesteps(),
            f64s(&s["timesteps"]),
            "{steps} steps, shift {shift}"
        );
        assert_eq!(
            as_f32(u.sigmas()),
            f32s(&s["sigmas"]),
            "{steps} steps, shift {shift}"
        );
    }
}

#[test]
fn euler_timesteps_and_sigmas_match_diffusers_exactly() {
    let all = fixture().json["schedules"]["euler"].as_array().unwrap();
    assert!(all.len() >= 4);
    for s in all {
        let (steps, shift) = (
            s["steps"].as_u64().unwrap() as usize,
            s["shift"].as_f64().unwrap(),
        );
        let e = FlowEuler::new(steps, shift).unwrap();
        assert_eq!(
            as_f32(e.timesteps()),
            f32s(&s["timesteps"]),
            "{steps} steps, shift {shift}"
        );
        assert_eq!(
            as_f32(e.sigmas()),
            f32s(&s["sigmas"]),
            "{steps} steps, shift {shift}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// runs

fn request(run: &str, sampler: SamplerKind) -> WanRequest {
    let r = &fixture().json["runs"][run];
    let n = |k: &str| r[k].as_u64().unwrap() as usize;
    WanRequest {
        frames: n("num_frames"),
        width: n("width"),
        height: n("height"),
        steps: n("steps"),
        guidance: r["guidance_scale"].as_f64().unwrap(),
        shift: match sampler {
            SamplerKind::UniPc => r["scheduler"]["flow_shift"].as_f64().unwrap(),
            SamplerKind::Euler => r["scheduler"]["shift"].as_f64().unwrap(),
        },
        seed: r["seed"].as_u64().unwrap(),
        sampler,
    }
}

/// Records what the model was called with: (timestep, cond) per call.
type Calls = Vec<(f64, bool)>;

/// Compares every step's latents and the model's calls with the recorded run; returns the
/// worst rel-L2.
fn check_run(run: &str, steps: &[Tensor], calls: &Calls) -> f64 {
    let r = &fixture().json["runs"][run];
    let n = r["steps"].as_u64().unwrap() as usize;
    assert_eq!(steps.len(), n, "{run}: steps");
    let mut worst = 0.0f64;
    for (i, x) in steps.iter().enumerate() {
        let want = t(&format!("{run}.step.{i}"));
        td().assert_close(&format!("{run} step {i}"), x, &want, REL, MAX);
        worst = worst.max(reelsmith_kit::testing::errors(x, &want).unwrap().0);
    }
    let per_step = r["model_calls_per_step"].as_u64().unwrap() as usize;
    assert_eq!(calls.len(), per_step * n, "{run}: model calls");
    let model_ts = f32s(&r["model_timesteps"]);
    for (i, chunk) in calls.chunks(per_step).enumerate() {
        assert!(chunk[0].1, "{run} step {i}: cond first");
        assert!(
            chunk[1..].iter().all(|c| !c.1),
            "{run} step {i}: then uncond"
        );
        assert!(
            chunk.iter().all(|c| c.0 as f32 == model_ts[i]),
            "{run} step {i}: timestep"
        );
    }
    println!("{run}: worst step rel-L2 {worst:.2e}");
    worst
}

fn t2v(run: &str, sampler: SamplerKind) {
    let req = request(run, sampler);
    let mut noise = replay(run);
    let mut calls = Calls::new();
    let mut steps = Vec::new();
    let mut hook = |_: usize, _: usize, x: &Tensor| {
        steps.push(x.clone());
        true
    };
    let out = text_to_video(
        &req,
        &mut noise,
        dev(),
        |x: &Tensor, ts: f64, cond: bool| {
            calls.push((ts, cond));
            analytic(x, ts, cond)
        },
        &mut hook,
    )
    .unwrap();
    assert_eq!(noise.remaining(), 0, "{run}: recorded draws left unused");
    check_run(run, &steps, &calls);
    assert_eq!(
        out.to_vec1_all(),
        steps.last().unwrap().to_vec1_all(),
        "{run}: returned latents"
    );
}

trait Flat {
    fn to_vec1_all(&self) -> Vec<f32>;
}

impl Flat for Tensor {
    fn to_vec1_all(&self) -> Vec<f32> {
        self.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }
}

#[test]
fn text_to_video_unipc_with_guidance_matches_diffusers_every_step() {
    t2v("t2v_unipc", SamplerKind::UniPc);
}

#[test]
fn text_to_video_flow_euler_with_guidance_matches_diffusers_every_step() {
    t2v("t2v_euler", SamplerKind::Euler);
}

/// UniPC order 3 with bh1 and a final σ of the last step (the linear solves of both updates),
/// guidance off (one model call per step), through the lower-level `denoise`.
#[test]
fn unipc_order3_bh1_without_guidance_matches_diffusers_every_step() {
    let run = "t2v_unipc_order3";
    let r = &fixture().json["runs"][run];
    let sc = &r["scheduler"];
    assert_eq!(sc["solver_type"], "bh1");
    assert_eq!(sc["final_sigmas_type"], "sigma_min");
    let config = UniPcConfig {
        num_train_timesteps: sc["num_train_timesteps"].as_u64().unwrap() as usize,
        flow_shift: sc["flow_shift"].as_f64().unwrap(),
        solver_order: sc["solver_order"].as_u64().unwrap() as usize,
        solver_type: SolverType::Bh1,
        lower_order_final: sc["lower_order_final"].as_bool().unwrap(),
        final_sigmas: FinalSigma::SigmaMin,
        disable_corrector: Vec::new(),
    };
    let req = request(run, SamplerKind::UniPc);
    let mut sampler = UniPcFlow::new(config, req.steps).unwrap();
    assert_eq!(sampler.timesteps(), f64s(&r["timesteps"]));
    assert_eq!(as_f32(sampler.sigmas()), f32s(&r["sigmas"]));
    let mut noise = replay(run);
    let latents = initial_latents(req.validate().unwrap(), &mut noise, dev()).unwrap();
    let mut calls = Calls::new();
    let mut steps = Vec::new();
    let mut hook = |_: usize, _: usize, x: &Tensor| {
        steps.push(x.clone());
        true
    };
    denoise(
        &mut sampler,
        latents,
        None,
        req.guidance,
        |x: &Tensor, ts: f64, cond: bool| {
            calls.push((ts, cond));
            analytic(x, ts, cond)
        },
        &mut hook,
    )
    .unwrap();
    check_run(run, &steps, &calls);
}

fn i2v(run: &str, last: bool) {
    let r = &fixture().json["runs"][run];
    let stats = LatentStats {
        mean: f64s(&r["latents_mean"]).iter().map(|&v| v as f32).collect(),
        std: f64s(&r["latents_std"]).iter().map(|&v| v as f32).collect(),
    };
    let req = request(run, SamplerKind::UniPc);
    let first = t(&format!("{run}.image"));
    let last_image = last.then(|| t(&format!("{run}.last_image")));
    let mut noise = replay(run);
    let mut calls = Calls::new();
    let mut steps = Vec::new();
    let mut encoded = 0;
    let mut hook = |_: usize, _: usize, x: &Tensor| {
        steps.push(x.clone());
        true
    };
    image_to_video(
        &req,
        &first,
        last_image.as_ref(),
        &stats,
        |video: &Tensor| {
            encoded += 1;
            // The video the pipeline asks the VAE to encode: [image, 0…] or [first, 0…, last].
            td().assert_close(
                &format!("{run} encoder input"),
                video,
                &t(&format!("{run}.encode_in")),
                0.0,
                0.0,
            );
            Ok(t(&format!("{run}.encode_out")))
        },
        &mut noise,
        dev(),
        |x: &Tensor, ts: f64, cond: bool| {
            assert_eq!(x.dim(1).unwrap(), 36, "the i2v transformer input");
            calls.push((ts, cond));
            analytic(x, ts, cond)
        },
        &mut hook,
    )
    .unwrap();
    assert_eq!(encoded, 1);
    assert_eq!(noise.remaining(), 0, "{run}: recorded draws left unused");
    check_run(run, &steps, &calls);
}

#[test]
fn image_to_video_matches_diffusers_every_step() {
    i2v("i2v", false);
}

#[test]
fn first_last_frame_matches_diffusers_every_step() {
    i2v("flf2v", true);
}

/// The 20-channel condition (mask + normalised latents), built from the recorded encoder
/// output, equals the one `prepare_latents` returned; the mask alone is the first 4 channels.
#[test]
fn image_conditions_match_prepare_latents() {
    for (run, last) in [("i2v", false), ("flf2v", true)] {
        let r = &fixture().json["runs"][run];
        let stats = LatentStats {
            mean: f64s(&r["latents_mean"]).iter().map(|&v| v as f32).collect(),
            std: f64s(&r["latents_std"]).iter().map(|&v| v as f32).collect(),
        };
        let req = request(run, SamplerKind::UniPc);
        let first = t(&format!("{run}.image"));
        let last_image = last.then(|| t(&format!("{run}.last_image")));
        let video = condition_video(&req, &first, last_image.as_ref()).unwrap();
        assert_eq!(
            video.to_vec1_all(),
            t(&format!("{run}.encode_in")).to_vec1_all()
        );
        let cond = reelsmith_video::wan::pipeline::image_condition(
            &req,
            &first,
            last_image.as_ref(),
            &stats,
            |_| Ok(t(&format!("{run}.encode_out"))),
            dev(),
        )
        .unwrap();
        let want = t(&format!("{run}.condition"));
        td().assert_close(&format!("{run} condition"), &cond, &want, 1e-7, 1e-6);
        let mask = condition_mask(&req, last, dev()).unwrap();
        assert_eq!(
            mask.to_vec1_all(),
            want.narrow(1, 0, 4).unwrap().to_vec1_all(),
            "{run} mask"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// requests

#[test]
fn bad_requests_name_the_nearest_valid_values() {
    let ok = WanRequest::text_to_video(832, 480);
    assert!(ok.validate().is_ok());
    let e = WanRequest {
        frames: 80,
        ..ok.clone()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("4k+1") && e.contains("77 and 81"), "{e}");
    let e = WanRequest {
        frames: 3,
        ..ok.clone()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("5"), "{e}");
    let e = WanRequest {
        width: 830,
        height: 486,
        ..ok.clone()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("multiples of 16") && e.contains("832×480"),
        "{e}"
    );
    assert!(WanRequest {
        steps: 0,
        ..ok.clone()
    }
    .validate()
    .is_err());
    assert!(WanRequest {
        shift: 0.0,
        ..ok.clone()
    }
    .validate()
    .is_err());
    assert!(WanRequest {
        guidance: f64::NAN,
        ..ok.clone()
    }
    .validate()
    .is_err());
    // A picture of the wrong size for the run.
    let small = WanRequest {
        frames: 9,
        width: 32,
        height: 32,
        ..ok
    };
    let pic = Tensor::zeros((3, 32, 48), DType::F32, dev()).unwrap();
    let e = condition_video(&small, &pic, None).unwrap_err().to_string();
    assert!(e.contains("1×3×32×32"), "{e}");
}

/// A hook that returns false stops the run after that step.
#[test]
fn the_step_hook_cancels() {
    let req = WanRequest {
        frames: 5,
        width: 16,
        height: 16,
        steps: 4,
        ..WanRequest::text_to_video(16, 16)
    };
    let mut seen = 0;
    let mut hook = |i: usize, n: usize, _: &Tensor| {
        seen = i;
        assert_eq!(n, 4);
        i < 2
    };
    let mut noise = req.noise();
    let r = text_to_video(&req, &mut noise, dev(), analytic, &mut hook);
    assert!(matches!(r, Err(VideoError::Cancelled)), "{r:?}");
    assert_eq!(seen, 2);
}

/// The seeded stream gives the same initial latents for the same seed, others for another.
#[test]
fn seeded_noise_is_repeatable() {
    let req = WanRequest {
        frames: 5,
        width: 16,
        height: 16,
        ..WanRequest::text_to_video(16, 16)
    };
    let shape = req.validate().unwrap();
    let a = initial_latents(shape, &mut req.noise(), dev()).unwrap();
    let b = initial_latents(shape, &mut req.noise(), dev()).unwrap();
    let c = initial_latents(
        shape,
        &mut WanRequest {
            seed: 1,
            ..req.clone()
        }
        .noise(),
        dev(),
    )
    .unwrap();
    assert_eq!(a.dims(), &[1, 16, 2, 2, 2]);
    assert_eq!(a.to_vec1_all(), b.to_vec1_all());
    assert_ne!(a.to_vec1_all(), c.to_vec1_all());
    let _: &dyn Noise = &req.noise();
}
