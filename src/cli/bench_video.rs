//! `reelsmith bench video`: LTX-Video's sampling step and streamed VAE decode on full-size
//! networks with random weights (they time and use memory like the real ones; no download), at
//! a clip's size and frame count, against diffusers' eager `LTXVideoTransformer3DModel` and
//! `AutoencoderKLLTXVideo` built from the same configs on the same device and dtypes.
//!
//! What is timed, on both sides:
//! - one sampling step as the image-to-video pipeline runs it: the CFG batch of 2, a per-token
//!   timestep (latent frame 0 held at 0), 128 text tokens, the guidance mix and the Euler update
//!   of the other frames; the median of `--steps` steps after one warm-up step;
//! - the VAE decode of the clip's latents `[1, C, (N−1)/8+1, H/32, W/32]`: ours streamed with the
//!   engine's default [`TileConfig`], diffusers' `vae.decode` in one pass (its default);
//! - peak memory: host peak RSS on the CPU; on CUDA the device memory NVML reports for each
//!   process (candle keeps no allocator statistics), sampled while it runs, with torch's
//!   `max_memory_allocated` printed beside it.
//!
//! These machines are noisy, so the engines run in alternating rounds (ours, then diffusers in
//! its own process) and the best round of each is compared.

use super::Fail;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use clap::Args;
use reelsmith_kit::noise::{mix64, Noise, Seeded, SplitMix64};
use reelsmith_video::frames::FrameRule;
use reelsmith_video::ltx::load::Release;
use reelsmith_video::ltx::model::LtxModel;
use reelsmith_video::ltx::transformer::{LtxTransformer, LtxTransformerConfig, Positions};
use reelsmith_video::ltx::vae::{LtxVae, LtxVaeConfig, TileConfig};
use serde_json::{json, Value};

use crate::config::Dirs;
use crate::hub::Registry;

const REF_PY: &str = include_str!("../../scripts/bench_ref.py");

/// Text tokens of the prompt states (T5 pads LTX prompts to 128).
const TEXT_TOKENS: usize = 128;
/// Guidance of the default (undistilled) sampling: a CFG batch of 2.
const GUIDANCE: f64 = 3.0;
/// The frame rate the rotary positions are scaled by (the diffusers pipelines' default).
const FRAME_RATE: f64 = 25.0;
/// The decode timestep of a timestep-conditioned VAE (the LTX default).
const DECODE_TIMESTEP: f32 = 0.05;
/// Standard deviation of the random weights.
const WEIGHT_STD: f32 = 0.02;

/// The fixture's tiny transformer (tests/fixtures/video/ltx.json → `transformer`).
const TINY_TRANSFORMER: &str = r#"{"activation_fn": "gelu-approximate", "attention_bias": true,
 "attention_head_dim": 8, "attention_out_bias": true, "caption_channels": 32,
 "cross_attention_dim": 16, "in_channels": 8, "norm_elementwise_affine": false,
 "norm_eps": 1e-06, "num_attention_heads": 2, "num_layers": 2, "out_channels": 8,
 "patch_size": 1, "patch_size_t": 1, "qk_norm": "rms_norm_across_heads"}"#;

/// The fixture's tiny 0.9.5-layout VAE (tests/fixtures/video/ltx.json → `vae."0.9.5"`).
const TINY_VAE: &str = r#"{"block_out_channels": [2, 4, 8, 16, 32],
 "decoder_block_out_channels": [8, 16, 32], "decoder_causal": false,
 "decoder_inject_noise": [false, false, false, false], "decoder_layers_per_block": [2, 1, 1, 1],
 "decoder_spatio_temporal_scaling": [true, true, true],
 "down_block_types": ["LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D",
   "LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D"],
 "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
 "encoder_causal": true, "in_channels": 3, "latent_channels": 8,
 "layers_per_block": [1, 1, 2, 1, 1], "out_channels": 3, "patch_size": 2, "patch_size_t": 1,
 "resnet_norm_eps": 1e-06, "scaling_factor": 1.0, "spatial_compression_ratio": 16,
 "spatio_temporal_scaling": [true, true, true, true], "temporal_compression_ratio": 8,
 "timestep_conditioning": true, "upsample_factor": [2, 2, 2],
 "upsample_residual": [true, true, true]}"#;

#[derive(Args, Debug)]
pub struct VideoBenchArgs {
    /// The networks: ltxv-2b (0.9.5 2B), ltxv-13b (13B, 0.9.5 VAE), tiny (the test fixture's),
    /// or a video model's registry id (e.g. ltx-video-2b, ltxv-13b-0.9.8-dev). Configs only: the
    /// weights are random.
    #[arg(long)]
    pub model: String,
    /// WxH, multiples of 32 (e.g. 768x512).
    #[arg(long)]
    pub size: String,
    /// Frames, 8k+1 (e.g. 97).
    #[arg(long)]
    pub frames: usize,
    /// cpu, cuda or cuda:N (f32 on the CPU; on CUDA the transformer in bf16, the VAE in f32).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Steps timed (after one warm-up step); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Alternating rounds of both engines; the best of each is compared.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// CPU threads of both engines.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Python with torch + diffusers for the reference (default: the fixture venv of
    /// scripts/diffusion-fixture-venv.sh).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Measure ours only (no diffusers).
    #[arg(long)]
    pub no_reference: bool,
}

/// The networks a run builds.
#[derive(Clone, Debug, PartialEq)]
pub struct Nets {
    /// What the header calls them.
    pub label: String,
    pub transformer: LtxTransformerConfig,
    pub vae: LtxVaeConfig,
}

/// A checked `bench video` invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub nets: Nets,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub steps: usize,
    pub rounds: usize,
}

/// The built-in names `--model` takes besides registry ids.
const NAMES: [&str; 3] = ["ltxv-2b", "ltxv-13b", "tiny"];

fn vae_of(release: Release) -> LtxVaeConfig {
    use reelsmith_video::ltx::vae::LtxVaeLayout;
    match release.vae_layout() {
        LtxVaeLayout::V0_9_0 => LtxVaeConfig::v0_9_0(),
        LtxVaeLayout::V0_9_1 => LtxVaeConfig::v0_9_1(),
        LtxVaeLayout::V0_9_5 => LtxVaeConfig::v0_9_5(),
    }
}

/// `--model` → the networks' configs: a built-in name, else a registry entry's `[model.video]`
/// facts (the 2B or 13B transformer by its width, the VAE layout by its release).
pub fn resolve_model(model: &str, reg: &Registry) -> Result<Nets, String> {
    let release_nets = |label: &str, r: Release| Nets {
        label: label.to_string(),
        transformer: r.transformer_config(),
        vae: vae_of(r),
    };
    match model {
        "ltxv-2b" => return Ok(release_nets("LTX-Video 2B (0.9.5)", Release::V095)),
        "ltxv-13b" => return Ok(release_nets("LTX-Video 13B (0.9.5 VAE)", Release::V097)),
        "tiny" => {
            let t = LtxTransformerConfig::from_json(TINY_TRANSFORMER)
                .map_err(|e| format!("the tiny transformer config: {e}"))?;
            let v = LtxVaeConfig::from_json(TINY_VAE)
                .map_err(|e| format!("the tiny VAE config: {e}"))?;
            return Ok(Nets {
                label: "tiny (the test fixture's LTX, 0.9.5 VAE layout)".into(),
                transformer: t,
                vae: v,
            });
        }
        _ => {}
    }
    let valid = || {
        let mut v: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
        v.extend(
            reg.models()
                .iter()
                .filter(|m| m.arch == "ltxv" && m.video.is_some())
                .map(|m| m.id.clone()),
        );
        v
    };
    let Some(m) = reg.get(model) else {
        let names = valid();
        let near = nearest(model, &names);
        return Err(format!(
            "--model {model}: unknown; {}the choices are {}",
            near.map(|n| format!("did you mean {n}? "))
                .unwrap_or_default(),
            names.join(", ")
        ));
    };
    let facts = match (&m.video, m.arch.as_str()) {
        (Some(f), "ltxv") => f,
        _ => {
            return Err(format!(
            "--model {model}: not an LTX-Video model with [model.video] facts; the choices are {}",
            valid().join(", ")
        ))
        }
    };
    let release = match (facts.size_class(), facts.version.as_str()) {
        ("13B", _) => Release::V097,
        (_, "0.9.0") => Release::V090,
        (_, "0.9.1") => Release::V091,
        _ => Release::V095,
    };
    let mut nets = release_nets(
        &format!(
            "{} ({} {}, v{})",
            m.id,
            "LTX-Video",
            facts.size_class(),
            facts.version
        ),
        release,
    );
    // The facts' own shape wins over the release's (an imported model says what it holds).
    let t = &mut nets.transformer;
    if facts.heads > 0 && facts.hidden > 0 && facts.hidden % facts.heads == 0 {
        t.num_attention_heads = facts.heads as usize;
        t.attention_head_dim = (facts.hidden / facts.heads) as usize;
        t.cross_attention_dim = facts.hidden as usize;
    }
    if facts.layers > 0 {
        t.num_layers = facts.layers as usize;
    }
    Ok(nets)
}

/// The name in `names` closest to `s` by edit distance, if it is reasonably close.
fn nearest<'a>(s: &str, names: &'a [String]) -> Option<&'a str> {
    let d = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, &cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    let s = s.to_lowercase();
    names
        .iter()
        .map(|n| (d(&s, n), n))
        .min_by_key(|(k, _)| *k)
        .filter(|(k, n)| *k <= (n.len() / 2).max(2))
        .map(|(_, n)| n.as_str())
}

/// `WxH` (also `W×H`).
fn parse_size(size: &str) -> Result<(usize, usize), String> {
    size.trim()
        .to_ascii_lowercase()
        .split_once(['x', '×'])
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
        .ok_or_else(|| format!("--size {size}: write WIDTHxHEIGHT, multiples of 32 (e.g. 768x512)"))
}

/// Checks the arguments (the frame and size rules of LTX-Video, the model, the counts); the
/// error names the nearest valid values.
pub fn check(args: &VideoBenchArgs, reg: &Registry) -> Result<Plan, String> {
    let rule = FrameRule::LTX;
    let (width, height) = parse_size(&args.size)?;
    rule.check_size(width, height)
        .map_err(|e| format!("--size {}: {e}", args.size))?;
    rule.check_frames(args.frames)
        .map_err(|e| format!("--frames {}: {e}", args.frames))?;
    if args.steps == 0 || args.rounds == 0 || args.threads == 0 {
        return Err("--steps, --rounds and --threads must be at least 1".into());
    }
    let nets = resolve_model(&args.model, reg)?;
    Ok(Plan {
        nets,
        width,
        height,
        frames: args.frames,
        steps: args.steps,
        rounds: args.rounds,
    })
}

/// diffusers' `transformer/config.json` for `c` (what `LTXVideoTransformer3DModel(**config)`
/// takes).
pub fn transformer_json(c: &LtxTransformerConfig) -> Value {
    json!({
        "in_channels": c.in_channels,
        "out_channels": c.out_channels,
        "patch_size": c.patch_size,
        "patch_size_t": c.patch_size_t,
        "num_attention_heads": c.num_attention_heads,
        "attention_head_dim": c.attention_head_dim,
        "cross_attention_dim": c.cross_attention_dim,
        "num_layers": c.num_layers,
        "activation_fn": c.activation_fn,
        "qk_norm": c.qk_norm,
        "norm_elementwise_affine": c.norm_elementwise_affine,
        "norm_eps": c.norm_eps,
        "caption_channels": c.caption_channels,
        "attention_bias": c.attention_bias,
        "attention_out_bias": c.attention_out_bias,
    })
}

/// diffusers' `vae/config.json` for `c` (what `AutoencoderKLLTXVideo(**config)` takes).
pub fn vae_json(c: &LtxVaeConfig) -> Value {
    json!({
        "in_channels": c.in_channels,
        "out_channels": c.out_channels,
        "latent_channels": c.latent_channels,
        "block_out_channels": c.block_out_channels,
        "down_block_types": c.down_block_types,
        "decoder_block_out_channels": c.decoder_block_out_channels,
        "layers_per_block": c.layers_per_block,
        "decoder_layers_per_block": c.decoder_layers_per_block,
        "spatio_temporal_scaling": c.spatio_temporal_scaling,
        "decoder_spatio_temporal_scaling": c.decoder_spatio_temporal_scaling,
        "decoder_inject_noise": c.decoder_inject_noise,
        "downsample_type": c.downsample_type,
        "upsample_residual": c.upsample_residual,
        "upsample_factor": c.upsample_factor,
        "timestep_conditioning": c.timestep_conditioning,
        "patch_size": c.patch_size,
        "patch_size_t": c.patch_size_t,
        "resnet_norm_eps": c.resnet_norm_eps,
        "scaling_factor": c.scaling_factor,
        "encoder_causal": c.encoder_causal,
        "decoder_causal": c.decoder_causal,
        "spatial_compression_ratio": c.spatial_compression_ratio,
        "temporal_compression_ratio": c.temporal_compression_ratio,
    })
}

/// Weights made as the networks ask for them: biases 0, 1-D `*.weight` (norm scales) 1,
/// everything else uniform with standard deviation 0.02 from a per-tensor seeded stream
/// (diffusers' side draws the same distribution with torch's generator). In counting mode
/// nothing is allocated: each tensor is a broadcast zero, and only the elements are counted.
struct RandomWeights {
    seed: u64,
    threads: usize,
    count_only: bool,
    elements: Arc<AtomicU64>,
}

fn name_seed(seed: u64, name: &str) -> u64 {
    name.bytes()
        .fold(mix64(seed), |h, b| mix64(h ^ u64::from(b)))
}

impl RandomWeights {
    fn uniform(&self, shape: &Shape, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        let bound = WEIGHT_STD * 3f32.sqrt();
        let seed = name_seed(self.seed, name);
        if dev.is_cpu() {
            let n = shape.elem_count();
            let mut v = vec![0f32; n];
            const CHUNK: usize = 1 << 20;
            let fill = |(i, part): (usize, &mut [f32])| {
                let mut rng = SplitMix64::from_state(mix64(seed ^ (i as u64)));
                for x in part {
                    *x = rng.bipolar_f32() * bound;
                }
            };
            if n <= CHUNK || self.threads <= 1 {
                v.chunks_mut(CHUNK).enumerate().for_each(fill);
            } else {
                let chunks: Vec<(usize, &mut [f32])> = v.chunks_mut(CHUNK).enumerate().collect();
                let per = chunks.len().div_ceil(self.threads);
                let mut groups: Vec<Vec<(usize, &mut [f32])>> = Vec::new();
                let mut it = chunks.into_iter().peekable();
                while it.peek().is_some() {
                    groups.push(it.by_ref().take(per).collect());
                }
                std::thread::scope(|s| {
                    for g in groups {
                        s.spawn(move || g.into_iter().for_each(fill));
                    }
                });
            }
            Tensor::from_vec(v, shape, dev)
        } else {
            // curand, seeded once per run (see `build`).
            Tensor::rand(-bound, bound, shape.clone(), dev)
        }
    }
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.elements
            .fetch_add(s.elem_count() as u64, Ordering::Relaxed);
        if self.count_only {
            // One byte, broadcast: what a constructor copies (the VAE's kernel taps) costs a
            // byte per weight, and nothing else is allocated.
            return Tensor::zeros((), DType::U8, dev)?.broadcast_as(s);
        }
        if name.ends_with("bias") {
            Tensor::zeros(s, dtype, dev)
        } else if s.rank() == 1 && name.ends_with("weight") {
            Tensor::ones(s, dtype, dev)
        } else {
            self.uniform(&s, name, dev)?.to_dtype(dtype)
        }
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights: {name} was asked for without a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        // The VAE's latent statistics default to zeros and ones when absent, as in diffusers.
        !(name.ends_with("latents_mean") || name.ends_with("latents_std"))
    }
}

fn var_builder(
    seed: u64,
    threads: usize,
    count_only: bool,
    dtype: DType,
    dev: &Device,
) -> (VarBuilder<'static>, Arc<AtomicU64>) {
    let elements = Arc::new(AtomicU64::new(0));
    let backend = RandomWeights {
        seed,
        threads,
        count_only,
        elements: elements.clone(),
    };
    (
        VarBuilder::from_backend(Box::new(backend), dtype, dev.clone()),
        elements,
    )
}

/// Parameters of the transformer and the VAE, counted without allocating the transformer (the
/// VAE's convolutions split their kernels as they are built, so its count costs a transient
/// byte per VAE weight).
fn count_params(nets: &Nets, dev: &Device) -> Result<(u64, u64), String> {
    let (vb, n) = var_builder(0, 1, true, DType::F32, dev);
    drop(LtxTransformer::new(vb, &nets.transformer).map_err(|e| format!("transformer: {e}"))?);
    let t = n.load(Ordering::Relaxed);
    let (vb, n) = var_builder(0, 1, true, DType::F32, dev);
    drop(LtxVae::new(vb, &nets.vae).map_err(|e| format!("VAE: {e}"))?);
    Ok((t, n.load(Ordering::Relaxed)))
}

/// The latent grid of the clip: (frames, height, width).
fn grid(plan: &Plan) -> (usize, usize, usize) {
    let tc = plan.nets.vae.temporal_compression();
    let sc = plan.nets.vae.spatial_compression();
    (
        (plan.frames - 1) / tc + 1,
        plan.height / sc,
        plan.width / sc,
    )
}

/// Bytes a run holds at its peak: the weights plus the larger of the step's and the decode's
/// working sets (a generous estimate, to refuse a run that cannot fit before allocating it).
fn estimate_bytes(plan: &Plan, params: (u64, u64), tdtype: DType) -> u64 {
    let tb = tdtype.size_in_bytes() as u64;
    let weights = params.0 * tb + params.1 * 4;
    let (f, h, w) = grid(plan);
    let s = (f * h * w) as u64;
    let t = &plan.nets.transformer;
    let d = t.inner_dim() as u64;
    let heads = t.num_attention_heads as u64;
    let step = 2 * s * d * tb * 24
        + (2 * heads * s * s * tb)
            .min(reelsmith_video::ltx::transformer::DEFAULT_ATTENTION_BUDGET as u64)
        + 2 * TEXT_TOKENS as u64 * (t.caption_channels as u64 + d) * tb * 4;
    // The decoder's last stage: ~800 bytes per output pixel and frame in f32, for the frames of
    // one streamed chunk (two latent frames: up to 17).
    let chunk_frames = (TileConfig::default().frames * 8 + 1).min(plan.frames) as u64;
    let decode = 800 * (plan.width * plan.height) as u64 * chunk_frames;
    weights + step.max(decode) + (512 << 20)
}

/// A parameter count: 1.92B, 402.5K.
fn fmt_params(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Seconds, in milliseconds below one second.
fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

fn mem_available() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| crate::gpu::cpu::parse_mem_available(&t))
}

/// The CUDA ordinal of `--device` (`cuda` = 0).
fn cuda_index(device: &str) -> u32 {
    device
        .split_once(':')
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Device memory of one process, sampled from NVML while it runs: the process's own figure
/// when the driver lists it, else the growth of the device's used memory since the start.
struct GpuPeak {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<GpuMemory>,
}

#[derive(Clone, Copy, Debug, Default)]
struct GpuMemory {
    /// NVML answered at all.
    nvml: bool,
    process: Option<u64>,
    device_growth: Option<u64>,
}

impl GpuMemory {
    fn best(&self) -> Option<(u64, &'static str)> {
        self.process
            .map(|b| (b, "NVML, process"))
            .or(self.device_growth.map(|b| (b, "NVML, device growth")))
    }
}

impl GpuPeak {
    fn start(index: u32, pid: u32) -> GpuPeak {
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

    fn finish(self) -> GpuMemory {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// One round of ours.
struct Round {
    build_s: f64,
    steps: Vec<f64>,
    decode_s: f64,
    decoded_frames: usize,
    gpu: Option<GpuMemory>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ours_round(plan: &Plan, dev: &Device, device: &str, threads: usize) -> Result<Round, String> {
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
struct Reference {
    json: Value,
    gpu: Option<GpuMemory>,
}

#[allow(clippy::too_many_arguments)]
fn reference_round(
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
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
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

/// Runs `bench video`; the exit code (2 for bad arguments).
pub fn run(work: &Path, dirs: &Dirs, args: VideoBenchArgs) -> i32 {
    Fail::exit_code(bench(work, dirs, &args))
}

fn bench(work: &Path, dirs: &Dirs, args: &VideoBenchArgs) -> Result<(), Fail> {
    let builtin = NAMES.contains(&args.model.as_str());
    let reg = if builtin {
        Registry::load(None)
    } else {
        Registry::load(Some(&dirs.config))
    }
    .map_err(|e| Fail::Failed(e.to_string()))?;
    let plan = check(args, &reg).map_err(Fail::Input)?;
    let dev = crate::engines::models::parse_device(&args.device).map_err(Fail::Input)?;
    let reference_python = if args.no_reference {
        None
    } else {
        let venv = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/reelsmith/fixture-venv/bin/python"))
            .filter(|p| p.is_file());
        Some(args.python.clone().or(venv).ok_or_else(|| {
            Fail::Failed(
                "no python with torch + diffusers: run scripts/diffusion-fixture-venv.sh, pass --python, or --no-reference".into(),
            )
        })?)
    };
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    }
    let failed = Fail::Failed;
    let tdtype = LtxModel::dtype_for(&dev);
    let params = count_params(&plan.nets, &dev).map_err(failed)?;
    let need = estimate_bytes(&plan, params, tdtype);
    let (f, lh, lw) = grid(&plan);
    let tokens = f * lh * lw;
    println!(
        "bench video: {} — {}x{}, {} frames ({f}×{lh}×{lw} = {tokens} latent tokens), {}, random weights",
        plan.nets.label, plan.width, plan.height, plan.frames, args.device
    );
    println!(
        "  transformer {} params in {tdtype:?}, VAE {} in F32 ({:.1} GiB of weights); step: CFG batch 2, per-token timesteps, {TEXT_TOKENS}×{} text states; decode: TileConfig::default ({} latent frames a chunk, whole frames); best of {} alternating rounds, {} threads",
        fmt_params(params.0),
        fmt_params(params.1),
        gib(params.0 * tdtype.size_in_bytes() as u64 + params.1 * 4),
        plan.nets.transformer.caption_channels,
        TileConfig::default().frames,
        plan.rounds,
        args.threads
    );
    if dev.is_cpu() {
        if let Some(avail) = mem_available().filter(|&a| a < need) {
            return Err(Fail::Failed(format!(
                "this run needs ~{:.1} GiB of RAM ({:.1} GiB of f32 weights plus the step's or the decode's working set); {:.1} GiB is available. Use a smaller --model, --size or --frames, or --device cuda",
                gib(need),
                gib(params.0 * 4 + params.1 * 4),
                gib(avail)
            )));
        }
    } else {
        let free = crate::gpu::GpuMonitor::from_env()
            .sample()
            .into_iter()
            .find(|d| d.index == cuda_index(&args.device))
            .map(|d| d.free);
        if let Some(free) = free.filter(|&f| f > 0 && f < need) {
            return Err(Fail::Failed(format!(
                "this run needs ~{:.1} GiB of device memory; {:.1} GiB is free on {}",
                gib(need),
                gib(free),
                args.device
            )));
        }
    }

    let script = work.join("bench_ref.py");
    let configs = work.join("video-configs.json");
    if reference_python.is_some() {
        std::fs::write(&script, REF_PY)
            .map_err(|e| Fail::Failed(format!("{}: {e}", script.display())))?;
        let cfg = json!({
            "transformer": transformer_json(&plan.nets.transformer),
            "vae": vae_json(&plan.nets.vae),
        });
        std::fs::write(&configs, cfg.to_string())
            .map_err(|e| Fail::Failed(format!("{}: {e}", configs.display())))?;
    }

    let mut ours: Vec<Round> = Vec::new();
    let mut theirs: Vec<Reference> = Vec::new();
    for round in 1..=plan.rounds {
        let r = ours_round(&plan, &dev, &args.device, args.threads).map_err(failed)?;
        eprintln!(
            "  round {round}: reelsmith step {} (median of {}: {}), decode {}, build {}",
            fmt_secs(median(&r.steps)),
            r.steps.len(),
            list(&r.steps),
            fmt_secs(r.decode_s),
            fmt_secs(r.build_s)
        );
        if r.decoded_frames != plan.frames {
            return Err(Fail::Failed(format!(
                "the decode gave {} frames, not {}",
                r.decoded_frames, plan.frames
            )));
        }
        ours.push(r);
        if let Some(py) = &reference_python {
            let x = reference_round(
                py,
                &script,
                &configs,
                &plan,
                &args.device,
                &dev,
                tdtype,
                args.threads,
            )
            .map_err(failed)?;
            let steps: Vec<f64> = x.json["steps"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            eprintln!(
                "  round {round}: diffusers step {} (median of {}: {}), decode {}, build {}",
                fmt_secs(num(&x.json, "step_s")),
                steps.len(),
                list(&steps),
                fmt_secs(num(&x.json, "decode_s")),
                fmt_secs(num(&x.json, "build_s"))
            );
            theirs.push(x);
        }
    }
    report(&dev, params, &ours, &theirs);
    Ok(())
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|&t| fmt_secs(t))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mem_cell(b: Option<u64>) -> String {
    b.map(|b| format!("{:.2} GiB", gib(b)))
        .unwrap_or_else(|| "not measured".into())
}

fn report(dev: &Device, params: (u64, u64), ours: &[Round], theirs: &[Reference]) {
    let best = |v: &mut dyn Iterator<Item = f64>| v.fold(f64::INFINITY, f64::min);
    let o_step = best(&mut ours.iter().map(|r| median(&r.steps)));
    let o_dec = best(&mut ours.iter().map(|r| r.decode_s));
    let host = crate::rt::memory_of(None).1;
    let o_gpu = ours
        .iter()
        .filter_map(|r| r.gpu.and_then(|g| g.best()))
        .max_by_key(|(b, _)| *b);
    let (o_mem, mem_kind) = if dev.is_cuda() {
        (o_gpu.map(|(b, _)| b), o_gpu.map_or("device", |(_, k)| k))
    } else {
        (Some(host), "host peak RSS")
    };
    println!(
        "  {:<22} {:>12} {:>12} {:>14}   ({mem_kind})",
        "", "step", "VAE decode", "peak memory"
    );
    println!(
        "  {:<22} {:>12} {:>12} {:>14}",
        "reelsmith (candle)",
        fmt_secs(o_step),
        fmt_secs(o_dec),
        mem_cell(o_mem)
    );
    if dev.is_cuda() {
        println!("    host peak RSS {:.2} GiB", gib(host));
        if o_gpu.is_none() {
            println!(
                "    device memory: not measured — candle keeps no allocator statistics and NVML gave no figure for this process or device"
            );
        }
    }
    if theirs.is_empty() {
        return;
    }
    let t_step = best(&mut theirs.iter().map(|x| num(&x.json, "step_s")));
    let t_dec = best(&mut theirs.iter().map(|x| num(&x.json, "decode_s")));
    let t_gpu = theirs
        .iter()
        .filter_map(|x| x.gpu.and_then(|g| g.best()))
        .max_by_key(|(b, _)| *b);
    let t_mem = if dev.is_cuda() {
        t_gpu.map(|(b, _)| b)
    } else {
        theirs
            .iter()
            .filter_map(|x| x.json["peak_rss_bytes"].as_u64())
            .max()
    };
    let j = &theirs[theirs.len() - 1].json;
    println!(
        "  {:<22} {:>12} {:>12} {:>14}   (diffusers {}, torch {}; vae.decode in one pass)",
        "diffusers (eager)",
        fmt_secs(t_step),
        fmt_secs(t_dec),
        mem_cell(t_mem),
        j["diffusers"].as_str().unwrap_or("?"),
        j["torch"].as_str().unwrap_or("?")
    );
    if dev.is_cuda() {
        if let Some(a) = j["cuda_max_allocated_bytes"].as_u64() {
            println!(
                "    torch max_memory_allocated {:.2} GiB, max_memory_reserved {:.2} GiB (tensors only; NVML adds the CUDA context)",
                gib(a),
                gib(j["cuda_max_reserved_bytes"].as_u64().unwrap_or(0))
            );
        }
    }
    let (tp, vp) = (
        j["transformer_params"].as_u64().unwrap_or(0),
        j["vae_params"].as_u64().unwrap_or(0),
    );
    if (tp, vp) != params {
        println!(
            "    warning: diffusers built {tp} + {vp} parameters, we built {} + {}: the networks differ",
            params.0, params.1
        );
    }
    let ratio_mem = match (o_mem, t_mem) {
        (Some(a), Some(b)) if b > 0 => format!("{:.2}×", a as f64 / b as f64),
        _ => "—".into(),
    };
    println!(
        "  {:<22} {:>11.2}× {:>11.2}× {:>14}",
        "ratio ours/diffusers",
        o_step / t_step,
        o_dec / t_dec,
        ratio_mem
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(model: &str, size: &str, frames: usize) -> VideoBenchArgs {
        VideoBenchArgs {
            model: model.into(),
            size: size.into(),
            frames,
            device: "cpu".into(),
            steps: 3,
            rounds: 2,
            threads: 2,
            python: None,
            no_reference: true,
        }
    }

    #[test]
    fn arguments_are_checked_and_errors_name_the_nearest_valid_values() {
        let reg = Registry::load(None).unwrap();
        let p = check(&args("ltxv-2b", "768x512", 97), &reg).unwrap();
        assert_eq!((p.width, p.height, p.frames), (768, 512, 97));
        assert_eq!(p.nets.transformer, LtxTransformerConfig::ltxv_2b());
        assert_eq!(p.nets.vae, LtxVaeConfig::v0_9_5());
        assert_eq!(grid(&p), (13, 16, 24));

        let e = check(&args("ltxv-2b", "768x512", 100), &reg).unwrap_err();
        assert!(
            e.contains("97") && e.contains("105") && e.contains("8k+1"),
            "{e}"
        );
        let e = check(&args("ltxv-2b", "768x512", 4), &reg).unwrap_err();
        assert!(e.contains("nearest valid counts are 9"), "{e}");
        let e = check(&args("ltxv-2b", "770x500", 9), &reg).unwrap_err();
        assert!(
            e.contains("multiples of 32") && e.contains("768×512"),
            "{e}"
        );
        let e = check(&args("ltxv-2b", "wide", 9), &reg).unwrap_err();
        assert!(e.contains("WIDTHxHEIGHT"), "{e}");
        let e = check(&args("ltxv-2c", "64x64", 9), &reg).unwrap_err();
        assert!(e.contains("did you mean ltxv-2b?"), "{e}");
        assert!(e.contains("tiny") && e.contains("ltx-video-2b"), "{e}");
        let e = check(&args("sd15", "64x64", 9), &reg).unwrap_err();
        assert!(e.contains("not an LTX-Video model"), "{e}");
        let mut a = args("tiny", "64x64", 9);
        a.steps = 0;
        assert!(check(&a, &reg).unwrap_err().contains("--steps"));
    }

    #[test]
    fn registry_ids_map_to_the_2b_or_13b_networks() {
        let reg = Registry::load(None).unwrap();
        let two = resolve_model("ltx-video-2b", &reg).unwrap();
        assert_eq!(two.transformer, LtxTransformerConfig::ltxv_2b());
        assert_eq!(two.vae, LtxVaeConfig::v0_9_5());
        let big = resolve_model("ltxv-13b-0.9.8-dev", &reg).unwrap();
        assert_eq!(big.transformer, LtxTransformerConfig::ltxv_13b());
        assert_eq!(big.vae, LtxVaeConfig::v0_9_5());
        let d = resolve_model("ltxv-2b-0.9.8-distilled", &reg).unwrap();
        assert_eq!(d.transformer, LtxTransformerConfig::ltxv_2b());
        assert_eq!(
            resolve_model("ltxv-13b", &reg).unwrap().transformer,
            LtxTransformerConfig::ltxv_13b()
        );
    }

    #[test]
    fn the_tiny_configs_are_the_fixtures() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/video/ltx.json");
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let reg = Registry::load(None).unwrap();
        let tiny = resolve_model("tiny", &reg).unwrap();
        let t = LtxTransformerConfig::from_json(&fx["transformer"].to_string()).unwrap();
        let v = LtxVaeConfig::from_json(&fx["vae"]["0.9.5"].to_string()).unwrap();
        assert_eq!((tiny.transformer, tiny.vae), (t, v));
    }

    #[test]
    fn configs_written_for_diffusers_read_back_the_same() {
        for t in [
            LtxTransformerConfig::ltxv_2b(),
            LtxTransformerConfig::ltxv_13b(),
            LtxTransformerConfig::from_json(TINY_TRANSFORMER).unwrap(),
        ] {
            let back = LtxTransformerConfig::from_json(&transformer_json(&t).to_string()).unwrap();
            assert_eq!(back, t);
        }
        for v in [
            LtxVaeConfig::v0_9_0(),
            LtxVaeConfig::v0_9_1(),
            LtxVaeConfig::v0_9_5(),
            LtxVaeConfig::from_json(TINY_VAE).unwrap(),
        ] {
            assert_eq!(
                LtxVaeConfig::from_json(&vae_json(&v).to_string()).unwrap(),
                v
            );
        }
    }

    #[test]
    fn random_weights_are_seeded_counted_and_shaped_like_diffusers_init() {
        let dev = Device::Cpu;
        let (vb, n) = var_builder(3, 2, false, DType::F32, &dev);
        let w = vb.get((3000, 700), "a.weight").unwrap();
        let again = var_builder(3, 1, false, DType::F32, &dev)
            .0
            .get((3000, 700), "a.weight")
            .unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (
            w.flatten_all().unwrap().to_vec1().unwrap(),
            again.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(
            a, b,
            "the same seed gives the same weights whatever the threads"
        );
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let std = (a.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / a.len() as f32).sqrt();
        assert!(
            mean.abs() < 1e-3 && (std - WEIGHT_STD).abs() < 1e-3,
            "{mean} {std}"
        );
        let bias = vb.get(5, "a.bias").unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(bias, vec![0.0; 5]);
        let norm = vb
            .get(4, "norm_q.weight")
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(norm, vec![1.0; 4]);
        assert_eq!(n.load(Ordering::Relaxed), 3000 * 700 + 9);

        // Counting the tiny networks gives diffusers' parameter counts (the fixture's run of
        // scripts/bench_ref.py video reports 16056 and 402477).
        let reg = Registry::load(None).unwrap();
        let tiny = resolve_model("tiny", &reg).unwrap();
        assert_eq!(count_params(&tiny, &dev).unwrap(), (16_056, 402_477));
    }
}
