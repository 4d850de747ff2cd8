//! Timing of `bench video`: one round of ours (build the random-weight networks, the warm-up
//! and timed sampling steps, the streamed decode) and one round of diffusers in its own process
//! (scripts/bench_ref.py), each watched by an NVML sampler for its device-memory peak on CUDA;
//! the constants both sides run with (text tokens, guidance, frame rate, decode timestep).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::noise::{Noise, Seeded};
use reelsmith_video::ltx::model::LtxModel;
use reelsmith_video::ltx::transformer::{LtxTransformer, Positions};
use reelsmith_video::ltx::vae::{LtxVae, TileConfig};
use serde_json::Value;

use super::nets::{grid, var_builder, Plan};

/// Text tokens of the prompt states (T5 pads LTX prompts to 128).
pub(super) const TEXT_TOKENS: usize = 128;
/// Guidance of the default (undistilled) sampling: a CFG batch of 2.
const GUIDANCE: f64 = 3.0;
/// The frame rate the rotary positions are scaled by (the diffusers pipelines' default).
const FRAME_RATE: f64 = 25.0;
/// The decode timestep of a timestep-conditioned VAE (the LTX default).
const DECODE_TIMESTEP: f32 = 0.05;

/// The CUDA ordinal of `--device` (`cuda` = 0).
pub(super) fn cuda_index(device: &str) -> u32 {
    device
        .split_once(':')
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Device memory of one process, sampled from NVML while it runs: the process's own figure
/// when the driver lists it, else the growth of the device's used memory since the start.
pub(super) struct GpuPeak {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<GpuMemory>,
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct GpuMemory {
    /// NVML answered at all.
    nvml: bool,
    process: Option<u64>,
    device_growth: Option<u64>,
}

impl GpuMemory {
    pub(super) fn best(&self) -> Option<(u64, &'static str)> {
        self.process
            .map(|b| (b, "NVML, process"))
            .or(self.device_growth.map(|b| (b, "NVML, device growth")))
    }
}

impl GpuPeak {
    pub(super) fn start(index: u32, pid: u32) -> GpuPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let monitor = crate::gpu::GpuMonitor::from_env();
            let mut m = GpuMemory::default();
            if monitor.is_cpu_only() {
                return m;
            }
            let mut base = None;
            loop {
                if let Some(d) = monitor.sample().into_iter().find(|d| d.index == index) {
                    m.nvml = true;
                    let b = *base.get_or_insert(d.used);
                    let g = d.used.saturating_sub(b);
                    m.device_growth = Some(m.device_growth.unwrap_or(0).max(g));
                    if let Some(p) = d.processes.iter().find(|p| p.pid == pid && p.used > 0) {
                        m.process = Some(m.process.unwrap_or(0).max(p.used));
                    }
                }
                if flag.load(Ordering::Relaxed) {
                    return m;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        GpuPeak { stop, handle }
    }

    pub(super) fn finish(self) -> GpuMemory {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// One round of ours.
pub(super) struct Round {
    pub(super) build_s: f64,
    pub(super) steps: Vec<f64>,
    pub(super) decode_s: f64,
    pub(super) decoded_frames: usize,
    pub(super) gpu: Option<GpuMemory>,
}

pub(super) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

pub(super) fn ours_round(
    plan: &Plan,
    dev: &Device,
    device: &str,
    threads: usize,
) -> Result<Round, String> {
    let gpu = dev
        .is_cuda()
        .then(|| GpuPeak::start(cuda_index(device), std::process::id()));
    let r = ours_measure(plan, dev, threads);
    let mem = gpu.map(GpuPeak::finish);
    r.map(|mut r| {
        r.gpu = mem;
        r
    })
}

fn ours_measure(plan: &Plan, dev: &Device, threads: usize) -> Result<Round, String> {
    let err = |what: &'static str| move |e: candle_core::Error| format!("{what}: {e}");
    let tdtype = LtxModel::dtype_for(dev);
    if dev.is_cuda() {
        dev.set_seed(1).map_err(err("seeding the device"))?;
    }
    let t0 = Instant::now();
    let (vb, _) = var_builder(0, threads, false, DType::F32, dev);
    let vae = LtxVae::new(vb, &plan.nets.vae).map_err(err("building the VAE"))?;
    let (vb, _) = var_builder(1, threads, false, tdtype, dev);
    let net =
        LtxTransformer::new(vb, &plan.nets.transformer).map_err(err("building the transformer"))?;
    dev.synchronize().map_err(err("device"))?;
    let build_s = t0.elapsed().as_secs_f64();

    let (steps, decode_s, decoded_frames) =
        timed(plan, dev, &net, &vae, tdtype).map_err(err("a timed run"))?;
    Ok(Round {
        build_s,
        steps,
        decode_s,
        decoded_frames,
        gpu: None,
    })
}

/// The warm-up and timed steps (seconds each), then the decode: (step times, decode seconds,
/// frames decoded).
fn timed(
    plan: &Plan,
    dev: &Device,
    net: &LtxTransformer,
    vae: &LtxVae,
    tdtype: DType,
) -> candle_core::Result<(Vec<f64>, f64, usize)> {
    let (f, lh, lw) = grid(plan);
    let hw = lh * lw;
    let s = f * hw;
    let t = &plan.nets.transformer;
    let mut noise = Seeded::new(7);
    let mut x = noise.draw(&[1, s, t.in_channels], dev)?;
    let txt = noise
        .draw(&[2, TEXT_TOKENS, t.caption_channels], dev)?
        .to_dtype(tdtype)?;
    let mask = Tensor::ones((2, TEXT_TOKENS), DType::F32, dev)?;
    // Latent frame 0 is the picture: its tokens sit at timestep 0 (image-to-video).
    let keep = Tensor::cat(
        &[
            Tensor::zeros((1, hw), DType::F32, dev)?,
            Tensor::ones((1, s - hw), DType::F32, dev)?,
        ],
        1,
    )?
    .repeat((2, 1))?;
    let (tc, sc) = (
        plan.nets.vae.temporal_compression() as f64,
        plan.nets.vae.spatial_compression() as f64,
    );
    let positions = Positions::Grid {
        frames: f,
        height: lh,
        width: lw,
        rope_interpolation_scale: (tc / FRAME_RATE, sc, sc),
    };
    let n = plan.steps + 1;
    let sigma = |i: usize| 1.0 - i as f64 / (n + 1) as f64;
    let mut times = Vec::with_capacity(plan.steps);
    for i in 0..n {
        dev.synchronize()?;
        let t0 = Instant::now();
        let ts = (&keep * (sigma(i) * 1000.0))?;
        let input = Tensor::cat(&[&x, &x], 0)?.to_dtype(tdtype)?;
        let out = net
            .forward(&input, &txt, &ts, Some(&mask), &positions)?
            .to_dtype(DType::F32)?;
        let (un, co) = (out.narrow(0, 0, 1)?, out.narrow(0, 1, 1)?);
        let v = (&un + ((co - &un)? * GUIDANCE)?)?;
        let dt = sigma(i + 1) - sigma(i);
        let moved = (x.narrow(1, hw, s - hw)? + (v.narrow(1, hw, s - hw)? * dt)?)?;
        x = Tensor::cat(&[&x.narrow(1, 0, hw)?, &moved], 1)?;
        dev.synchronize()?;
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    drop((x, txt, keep));

    let z = noise.draw(&[1, plan.nets.vae.latent_channels, f, lh, lw], dev)?;
    let temb = Tensor::new(&[DECODE_TIMESTEP], dev)?;
    let temb = plan.nets.vae.timestep_conditioning.then_some(&temb);
    let mut frames = 0;
    dev.synchronize()?;
    let t0 = Instant::now();
    vae.decode_streamed(&z, temb, None, TileConfig::default(), &mut |run| {
        run.device().synchronize()?;
        frames += run.dim(2)?;
        Ok(())
    })?;
    Ok((times, t0.elapsed().as_secs_f64(), frames))
}

/// What diffusers reported for one round.
pub(super) struct Reference {
    pub(super) json: Value,
    pub(super) gpu: Option<GpuMemory>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn reference_round(
    py: &Path,
    script: &Path,
    configs: &Path,
    plan: &Plan,
    device: &str,
    dev: &Device,
    tdtype: DType,
    threads: usize,
) -> Result<Reference, String> {
    let mut cmd = Command::new(py);
    cmd.arg(script)
        .arg("video")
        .arg("--configs")
        .arg(configs)
        .args([
            "--size",
            &format!("{}x{}", plan.width, plan.height),
            "--frames",
            &plan.frames.to_string(),
            "--steps",
            &plan.steps.to_string(),
            "--cfg",
            &GUIDANCE.to_string(),
            "--text-tokens",
            &TEXT_TOKENS.to_string(),
            "--frame-rate",
            &FRAME_RATE.to_string(),
            "--decode-timestep",
            &DECODE_TIMESTEP.to_string(),
            "--device",
            &if dev.is_cuda() {
                format!("cuda:{}", cuda_index(device))
            } else {
                "cpu".into()
            },
            "--dtype",
            match tdtype {
                DType::BF16 => "bfloat16",
                DType::F16 => "float16",
                _ => "float32",
            },
            "--threads",
            &threads.to_string(),
        ]);
    run_reference(cmd, py, dev, device)
}

/// Runs one reference process (`cmd`, the python `py` and its arguments) under an NVML sampler
/// on CUDA and reads the one line of JSON it prints.
pub(super) fn run_reference(
    mut cmd: Command,
    py: &Path,
    dev: &Device,
    device: &str,
) -> Result<Reference, String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let child = cmd.spawn().map_err(|e| format!("{}: {e}", py.display()))?;
    let gpu = dev
        .is_cuda()
        .then(|| GpuPeak::start(cuda_index(device), child.id()));
    let out = child.wait_with_output();
    let mem = gpu.map(GpuPeak::finish);
    let out = out.map_err(|e| format!("{}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the diffusers reference run failed ({}); rerun with --no-reference to measure ours alone",
            out.status
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let json =
        serde_json::from_str(line.trim()).map_err(|e| format!("reference output {line:?}: {e}"))?;
    Ok(Reference { json, gpu: mem })
}
