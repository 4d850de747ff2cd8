//! `reelsmith bench video` for Wan2.1: the transformer's sampling step on a random-weight
//! checkpoint (written as a diffusers `transformer/` folder — config.json and one bf16
//! safetensors file of [`WanTransformerConfig::diffusers_tensor_shapes`] — and loaded by
//! [`WanTransformer::load`] as a real one is), at a clip's size and frame count, against
//! diffusers' eager `WanTransformer3DModel` loaded from the same folder on the same device and
//! dtypes (bf16 on CUDA, f32 on the CPU).
//!
//! What is timed, on both sides: one step as `WanPipeline` runs it — the conditional and the
//! unconditional forward one after the other (512 text tokens of random states each), the
//! guidance mix and the UniPC update (`UniPCMultistepScheduler` with flow sigmas; ours through
//! [`reelsmith_video::wan::pipeline::denoise`]); the median of `--steps` steps after one warm-up
//! step. Ours runs twice per round: with every block streamed ([`Residency::Streamed`] with no
//! resident block: each block moved to the device just before it runs, the next one prefetched
//! on a thread; on the CPU the move is a host copy, so the mechanism and its cost run all the
//! same) and resident. Per-block times are a step's time over its 2 × blocks block runs.
//!
//! `--layers N` builds only N blocks: how a 14B's per-block time is measured without its 28 GB
//! of weights (the default for a 14B: 2); its full-depth step is then projected from the
//! per-block times. `--memory-cap GB` answers "how does it run under this much memory": the
//! blocks of the full model that fit resident beside the streamed two and the measured working
//! set, and the projected s/step and peak.
//!
//! Peak memory: on the CPU the host peak RSS over the timed steps (the kernel's peak counter is
//! reset after loading, on both sides); on CUDA the device memory NVML reports for the process
//! over the round, with torch's `max_memory_allocated` beside diffusers'.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use clap::Args;
use reelsmith_kit::noise::{Noise, Seeded};
use reelsmith_kit::Precision;
use reelsmith_video::frames::FrameRule;
use reelsmith_video::wan::pipeline::denoise;
use reelsmith_video::wan::schedule::SamplerKind;
use reelsmith_video::wan::transformer::{
    Residency, WanTransformer, WanTransformerConfig, DEFAULT_ATTENTION_BUDGET, IMAGE_TOKENS,
};
use reelsmith_video::VideoError;
use serde_json::{json, Value};

use super::measure::{cuda_index, median, run_reference, GpuMemory, GpuPeak, Reference};
use super::nets::{mem_available, var_builder};
use super::{fmt_params, fmt_secs, gib, list, mem_cell, num, VideoBenchArgs, REF_PY};
use crate::cli::Fail;
use crate::hub::Registry;

/// Text tokens of the prompt states (the Wan pipelines pad umT5 states to 512).
const TEXT_TOKENS: usize = 512;
/// Guidance of the step (the 14B's default; timing does not depend on it).
const GUIDANCE: f64 = 5.0;
/// The flow shift when the registry names none (the 14B's 720p value).
const DEFAULT_SHIFT: f64 = 5.0;
/// Pixels per latent pixel, each way, of the Wan2.1 VAE.
const VAE_SPATIAL: usize = 8;
/// Seed of the random weights.
const WEIGHTS_SEED: u64 = 21;
/// The checkpoint folder under the work dir.
const CHECKPOINT_DIR: &str = "wan-transformer";

/// The Wan-only options of `bench video`.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub struct WanBenchArgs {
    /// Wan: build only N transformer blocks (how a 14B's per-block time is measured without
    /// its 28 GB of weights; default: every block of a 1.3B, 2 of a 14B).
    #[arg(long, value_name = "N")]
    pub layers: Option<usize>,
    /// Wan: a memory budget in GiB (device memory on CUDA) for block streaming: how many of the
    /// full model's blocks stay resident under it, and the s/step and peak memory that gives.
    #[arg(long, value_name = "GB")]
    pub memory_cap: Option<f64>,
}

/// The built-in names `--model` takes for Wan besides registry ids.
pub(super) const NAMES: [&str; 3] = ["wan-1.3b", "wan-14b", "wan-tiny"];

/// The fixture's tiny text-to-video transformer (tests/fixtures/wan/transformer/diffusers-t2v).
const TINY: &str = r#"{"added_kv_proj_dim": null, "attention_head_dim": 12,
 "cross_attn_norm": true, "eps": 1e-06, "ffn_dim": 32, "freq_dim": 16, "image_dim": null,
 "in_channels": 16, "num_attention_heads": 2, "num_layers": 2, "out_channels": 16,
 "patch_size": [1, 2, 2], "pos_embed_seq_len": null, "qk_norm": "rms_norm_across_heads",
 "rope_max_seq_len": 1024, "text_dim": 16}"#;

/// Whether `--model` names a Wan model (a built-in Wan name, a registry entry of arch `wan`, or
/// an unknown name starting with "wan", whose error then lists the Wan choices).
pub(super) fn claims(model: &str, reg: &Registry) -> bool {
    NAMES.contains(&model)
        || match reg.get(model) {
            Some(m) => m.arch == "wan",
            None => model.to_ascii_lowercase().starts_with("wan"),
        }
}

/// `--layers` and `--memory-cap` are refused for LTX models.
pub(super) fn refuse_for_ltx(args: &WanBenchArgs) -> Result<(), String> {
    if args.layers.is_some() || args.memory_cap.is_some() {
        return Err("--layers and --memory-cap are for Wan models (e.g. --model wan-14b)".into());
    }
    Ok(())
}

/// The transformer a run builds.
#[derive(Clone, Debug, PartialEq)]
pub struct WanNet {
    /// What the header calls it.
    pub label: String,
    /// The full model's config.
    pub config: WanTransformerConfig,
    /// The flow shift of the sampler.
    pub shift: f64,
}

/// `--model` → the transformer: a built-in name, else a registry entry's `[model.video]` facts
/// (the 1.3B or a 14B by its width, the 14B's text, image or first-last-frame variant by its
/// task; the facts' heads and layers win).
pub fn resolve_model(model: &str, reg: &Registry) -> Result<WanNet, String> {
    let net = |label: &str, config, shift| WanNet {
        label: label.to_string(),
        config,
        shift,
    };
    match model {
        "wan-1.3b" => {
            return Ok(net(
                "Wan2.1 T2V 1.3B",
                WanTransformerConfig::t2v_1_3b(),
                8.0,
            ))
        }
        "wan-14b" => {
            return Ok(net(
                "Wan2.1 T2V 14B",
                WanTransformerConfig::t2v_14b(),
                DEFAULT_SHIFT,
            ))
        }
        "wan-tiny" => {
            let c = WanTransformerConfig::from_json(TINY)
                .map_err(|e| format!("the tiny Wan config: {e}"))?;
            return Ok(net(
                "wan-tiny (the test fixture's Wan2.1 T2V)",
                c,
                DEFAULT_SHIFT,
            ));
        }
        _ => {}
    }
    let (m, facts) = super::nets::registry_facts(
        reg,
        model,
        "wan",
        &NAMES,
        "a Wan2.1 transformer",
        "the Wan choices",
    )?;
    let mut config = match (facts.hidden, facts.task.as_str()) {
        (1536, "t2v") => WanTransformerConfig::t2v_1_3b(),
        (5120, "t2v") => WanTransformerConfig::t2v_14b(),
        (5120, "i2v") => WanTransformerConfig::i2v_14b(),
        (5120, "flf2v") => WanTransformerConfig::flf2v_14b(),
        (h, t) => {
            return Err(format!(
                "--model {model}: no Wan2.1 transformer of width {h} for task {t} (the releases: 1536 t2v, 5120 t2v/i2v/flf2v)"
            ))
        }
    };
    if facts.heads > 0 && facts.hidden % facts.heads == 0 {
        config.num_attention_heads = facts.heads as usize;
        config.attention_head_dim = (facts.hidden / facts.heads) as usize;
    }
    if facts.layers > 0 {
        config.num_layers = facts.layers as usize;
    }
    Ok(net(
        &format!(
            "{} (Wan{} {} {})",
            m.id,
            facts.version,
            facts.task.to_uppercase(),
            facts.size_class()
        ),
        config,
        facts.shift.unwrap_or(DEFAULT_SHIFT),
    ))
}

/// A checked Wan `bench video` invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct WanPlan {
    pub net: WanNet,
    /// The config built: the model's with `--layers` blocks.
    pub config: WanTransformerConfig,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    pub steps: usize,
    pub rounds: usize,
    /// `--memory-cap` in bytes.
    pub memory_cap: Option<u64>,
}

impl WanPlan {
    /// The clip's latent grid (frames, height, width).
    pub fn grid(&self) -> (usize, usize, usize) {
        (
            FrameRule::WAN.latent_frames(self.frames),
            self.height / VAE_SPATIAL,
            self.width / VAE_SPATIAL,
        )
    }

    /// The transformer's tokens (the latent grid over the patch).
    pub fn tokens(&self) -> (usize, usize, usize) {
        let (f, h, w) = self.grid();
        let (pt, ph, pw) = self.config.patch_size;
        (f / pt, h / ph, w / pw)
    }
}

/// `WxH` (also `W×H`).
fn parse_size(size: &str) -> Result<(usize, usize), String> {
    size.trim()
        .to_ascii_lowercase()
        .split_once(['x', '×'])
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
        .ok_or_else(|| format!("--size {size}: write WIDTHxHEIGHT, multiples of 16 (e.g. 832x480)"))
}

/// Blocks built by default: every block of a small model, 2 of a 14B-wide one.
fn default_layers(c: &WanTransformerConfig) -> usize {
    if c.inner_dim() >= 5120 {
        c.num_layers.min(2)
    } else {
        c.num_layers
    }
}

/// Checks the arguments (Wan's frame and size rules, the model, `--layers`, the counts); the
/// errors name the nearest valid values.
pub fn check(args: &VideoBenchArgs, reg: &Registry) -> Result<WanPlan, String> {
    let rule = FrameRule::WAN;
    let (width, height) = parse_size(&args.size)?;
    rule.check_size(width, height)
        .map_err(|e| format!("--size {}: {e}", args.size))?;
    rule.check_frames(args.frames)
        .map_err(|e| format!("--frames {}: {e}", args.frames))?;
    if args.steps == 0 || args.rounds == 0 || args.threads == 0 {
        return Err("--steps, --rounds and --threads must be at least 1".into());
    }
    let net = resolve_model(&args.model, reg)?;
    let full = net.config.num_layers;
    let layers = match args.wan.layers {
        None => default_layers(&net.config),
        Some(n) if (1..=full).contains(&n) => n,
        Some(n) => {
            return Err(format!(
                "--layers {n}: {} has {full} blocks; give 1 to {full}",
                net.label
            ))
        }
    };
    let memory_cap = match args.wan.memory_cap {
        None => None,
        Some(gb) if gb.is_finite() && gb > 0.0 => Some((gb * (1u64 << 30) as f64) as u64),
        Some(gb) => return Err(format!("--memory-cap {gb}: give a size in GiB above 0")),
    };
    let config = WanTransformerConfig {
        num_layers: layers,
        ..net.config.clone()
    };
    let plan = WanPlan {
        net,
        config,
        width,
        height,
        frames: args.frames,
        steps: args.steps,
        rounds: args.rounds,
        memory_cap,
    };
    let (f, h, w) = plan.tokens();
    let most = plan.config.rope_max_seq_len;
    if f.max(h).max(w) > most {
        return Err(format!(
            "--size {}: {f}×{h}×{w} tokens exceed the rotary tables' {most} positions per axis",
            args.size
        ));
    }
    Ok(plan)
}

/// diffusers' `transformer/config.json` for `c` (what `WanTransformer3DModel(**config)` takes).
pub fn config_json(c: &WanTransformerConfig) -> Value {
    let (pt, ph, pw) = c.patch_size;
    json!({
        "_class_name": "WanTransformer3DModel",
        "patch_size": [pt, ph, pw],
        "num_attention_heads": c.num_attention_heads,
        "attention_head_dim": c.attention_head_dim,
        "in_channels": c.in_channels,
        "out_channels": c.out_channels,
        "text_dim": c.text_dim,
        "freq_dim": c.freq_dim,
        "ffn_dim": c.ffn_dim,
        "num_layers": c.num_layers,
        "cross_attn_norm": c.cross_attn_norm,
        "qk_norm": c.qk_norm,
        "eps": c.eps,
        "image_dim": c.image_dim,
        "added_kv_proj_dim": c.added_kv_proj_dim,
        "rope_max_seq_len": c.rope_max_seq_len,
        "pos_embed_seq_len": c.pos_embed_seq_len,
    })
}

/// Parameters of a checkpoint of `c`.
fn count_params(c: &WanTransformerConfig) -> u64 {
    c.diffusers_tensor_shapes()
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum()
}

/// f32 → bf16 bits, rounded to nearest even (the values are finite).
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// Writes a diffusers checkpoint of `c` with random weights into `dir`: config.json and
/// `diffusion_pytorch_model.safetensors` in bf16, the tensors of
/// [`WanTransformerConfig::diffusers_tensor_shapes`] made by the LTX bench's rule (biases 0,
/// 1-D weights 1, the rest uniform with standard deviation 0.02 from per-tensor seeded
/// streams), one tensor in memory at a time. Returns the bytes of the weights file.
fn write_checkpoint(dir: &Path, c: &WanTransformerConfig, threads: usize) -> Result<u64, String> {
    fn io(p: &Path) -> impl Fn(std::io::Error) -> String + '_ {
        move |e| format!("{}: {e}", p.display())
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cfg_path = dir.join("config.json");
    std::fs::write(&cfg_path, config_json(c).to_string()).map_err(io(&cfg_path))?;
    let shapes = c.diffusers_tensor_shapes();
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, shape) in &shapes {
        let n = 2 * shape.iter().product::<usize>();
        header.insert(
            name.clone(),
            json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let mut head = Value::Object(header).to_string().into_bytes();
    head.resize(head.len().div_ceil(8) * 8, b' ');
    let path = dir.join("diffusion_pytorch_model.safetensors");
    let mut out = BufWriter::with_capacity(1 << 22, File::create(&path).map_err(io(&path))?);
    out.write_all(&(head.len() as u64).to_le_bytes())
        .and_then(|()| out.write_all(&head))
        .map_err(io(&path))?;
    let (vb, _) = var_builder(WEIGHTS_SEED, threads, false, DType::F32, &Device::Cpu);
    let mut bytes = Vec::new();
    for (name, shape) in &shapes {
        let t = vb
            .get(shape.clone(), name)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map_err(|e| format!("random weights {name}: {e}"))?;
        bytes.clear();
        bytes.extend(t.iter().flat_map(|&x| bf16_bits(x).to_le_bytes()));
        out.write_all(&bytes).map_err(io(&path))?;
    }
    out.flush().map_err(io(&path))?;
    Ok((8 + head.len() + offset) as u64)
}

/// Bytes a run holds at its peak: the weights in the compute dtype plus one forward's working
/// set (a generous estimate, to refuse a run that cannot fit before allocating it).
fn estimate_bytes(plan: &WanPlan, dtype: DType) -> u64 {
    let tb = dtype.size_in_bytes() as u64;
    let (f, h, w) = plan.tokens();
    let s = (f * h * w) as u64;
    let c = &plan.config;
    let d = c.inner_dim() as u64;
    let work = s * d * (8 * tb + 8 * 4)
        + s * c.ffn_dim as u64 * 2 * tb
        + DEFAULT_ATTENTION_BUDGET as u64
        + TEXT_TOKENS as u64 * (c.text_dim as u64 + 4 * d) * 4;
    count_params(c) * tb + work + (512 << 20)
}

/// One round of ours in one residency.
struct Ours {
    build_s: f64,
    steps: Vec<f64>,
    /// Host RSS when the timed steps start (the weights loaded).
    host_before: u64,
    /// Host peak RSS: over the steps when the peak could be reset after loading
    /// (`steps_only`), else the process's.
    host_peak: u64,
    steps_only: bool,
    gpu: Option<GpuMemory>,
    resident_bytes: usize,
    block_bytes: usize,
}

/// What every round shares.
struct Run<'a> {
    plan: &'a WanPlan,
    dev: Device,
    device: &'a str,
    dtype: DType,
    dir: PathBuf,
    threads: usize,
}

/// Resets this process's peak RSS (`VmHWM`), so the next reading is the peak since now.
fn reset_host_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn ours_round(run: &Run, residency: Residency) -> Result<Ours, String> {
    let gpu = run
        .dev
        .is_cuda()
        .then(|| GpuPeak::start(cuda_index(run.device), std::process::id()));
    let r = ours_measure(run, residency);
    let mem = gpu.map(GpuPeak::finish);
    r.map(|mut r| {
        r.gpu = mem;
        r
    })
}

fn ours_measure(run: &Run, residency: Residency) -> Result<Ours, String> {
    let t0 = Instant::now();
    let net = WanTransformer::load(&run.dir, run.dtype, &run.dev, residency)
        .map_err(|e| format!("loading the random-weight transformer: {e}"))?;
    run.dev.synchronize().map_err(|e| format!("device: {e}"))?;
    let build_s = t0.elapsed().as_secs_f64();
    let steps_only = reset_host_peak();
    let host_before = crate::rt::memory_of(None).0;
    let steps = timed(run.plan, &run.dev, &net).map_err(|e| format!("a timed run: {e}"))?;
    Ok(Ours {
        build_s,
        steps,
        host_before,
        host_peak: crate::rt::memory_of(None).1,
        steps_only,
        gpu: None,
        resident_bytes: net.resident_bytes(),
        block_bytes: net.block_bytes(),
    })
}

/// The warm-up and timed steps (seconds each) through the pipeline's own loop: cond and uncond
/// forwards, guidance, the UniPC update; the hook after each step waits for the device.
fn timed(plan: &WanPlan, dev: &Device, net: &WanTransformer) -> Result<Vec<f64>, VideoError> {
    let c = net.config();
    let dtype = net.dtype();
    let (f, h, w) = plan.grid();
    let lc = c.out_channels();
    let mut noise = Seeded::new(7);
    let x = noise.draw(&[1, lc, f, h, w], dev)?;
    let cond = match c.in_channels.checked_sub(lc).filter(|&n| n > 0) {
        Some(n) => Some(noise.draw(&[1, n, f, h, w], dev)?),
        None => None,
    };
    let text = noise
        .draw(&[1, TEXT_TOKENS, c.text_dim], dev)?
        .to_dtype(dtype)?;
    let negative = noise
        .draw(&[1, TEXT_TOKENS, c.text_dim], dev)?
        .to_dtype(dtype)?;
    let image = match c.image_dim {
        Some(d) => {
            let n = c.pos_embed_seq_len.unwrap_or(IMAGE_TOKENS);
            Some(noise.draw(&[1, n, d], dev)?.to_dtype(dtype)?)
        }
        None => None,
    };
    let mut sampler = SamplerKind::UniPc.build(plan.steps + 1, plan.net.shift)?;
    let mut times = Vec::with_capacity(plan.steps + 1);
    dev.synchronize()?;
    let mut t0 = Instant::now();
    let mut hook = |_: usize, _: usize, latents: &Tensor| {
        let synced = latents.device().synchronize().is_ok();
        let now = Instant::now();
        times.push((now - t0).as_secs_f64());
        t0 = now;
        synced
    };
    denoise(
        sampler.as_mut(),
        x,
        cond.as_ref(),
        GUIDANCE,
        |input: &Tensor, t: f64, conditional: bool| {
            let ts = Tensor::new(&[t as f32], dev)?;
            let states = if conditional { &text } else { &negative };
            net.forward(input, &ts, states, image.as_ref())
        },
        &mut hook,
    )?;
    // The first step is the warm-up.
    Ok(times.split_off(1))
}

fn reference_round(run: &Run, py: &Path, script: &Path) -> Result<Reference, String> {
    let p = run.plan;
    let mut cmd = Command::new(py);
    cmd.arg(script)
        .arg("wan")
        .arg("--model")
        .arg(&run.dir)
        .args([
            "--size",
            &format!("{}x{}", p.width, p.height),
            "--frames",
            &p.frames.to_string(),
            "--steps",
            &p.steps.to_string(),
            "--cfg",
            &GUIDANCE.to_string(),
            "--shift",
            &p.net.shift.to_string(),
            "--text-tokens",
            &TEXT_TOKENS.to_string(),
            "--device",
            &if run.dev.is_cuda() {
                format!("cuda:{}", cuda_index(run.device))
            } else {
                "cpu".into()
            },
            "--dtype",
            match run.dtype {
                DType::BF16 => "bfloat16",
                DType::F16 => "float16",
                _ => "float32",
            },
            "--threads",
            &run.threads.to_string(),
        ]);
    run_reference(cmd, py, &run.dev, run.device)
}

/// Runs the Wan `bench video`.
pub(super) fn bench(work: &Path, args: &VideoBenchArgs, reg: &Registry) -> Result<(), Fail> {
    let plan = check(args, reg).map_err(Fail::Input)?;
    let dev = crate::engines::models::parse_device(&args.device).map_err(Fail::Input)?;
    let reference_python = super::reference_python(args)?;
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    }
    let failed = Fail::Failed;
    let dtype = reelsmith_kit::compute_dtype(&dev, Precision::Bf16);
    let c = &plan.config;
    let params = count_params(c);
    let (f, h, w) = plan.tokens();
    let full = plan.net.config.num_layers;
    println!(
        "bench video: {} — {}x{}, {} frames ({f}×{h}×{w} = {} tokens), {}, random weights",
        plan.net.label,
        plan.width,
        plan.height,
        plan.frames,
        f * h * w,
        args.device
    );
    println!(
        "  transformer {} params ({} of {full} blocks) in {dtype:?}, {:.2} GiB, stored bf16; step: cond + uncond forwards with {TEXT_TOKENS}×{} text states, guidance {GUIDANCE}, UniPC (flow shift {}); streamed: every block moved to the device just before it runs, the next prefetched{}; best of {} alternating rounds, {} threads",
        fmt_params(params),
        c.num_layers,
        gib(params * dtype.size_in_bytes() as u64),
        c.text_dim,
        plan.net.shift,
        if dev.is_cpu() {
            " (on the CPU a host copy: the mechanism runs, its transfer is a memcpy)"
        } else {
            ""
        },
        plan.rounds,
        args.threads
    );
    let need = estimate_bytes(&plan, dtype);
    if dev.is_cpu() {
        if let Some(avail) = mem_available().filter(|&a| a < need) {
            return Err(Fail::Failed(format!(
                "this run needs ~{:.1} GiB of RAM ({:.1} GiB of f32 weights plus a forward's working set); {:.1} GiB is available. Use fewer --layers, a smaller --size or --frames, or --device cuda",
                gib(need),
                gib(params * 4),
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

    let dir = work.join(CHECKPOINT_DIR);
    let t0 = Instant::now();
    let written = write_checkpoint(&dir, c, args.threads).map_err(failed)?;
    eprintln!(
        "  wrote {:.2} GiB of random bf16 weights in {}",
        gib(written),
        fmt_secs(t0.elapsed().as_secs_f64())
    );
    let script = work.join("bench_ref.py");
    if reference_python.is_some() {
        std::fs::write(&script, REF_PY)
            .map_err(|e| Fail::Failed(format!("{}: {e}", script.display())))?;
    }
    let run = Run {
        plan: &plan,
        dev,
        device: &args.device,
        dtype,
        dir,
        threads: args.threads,
    };
    let (mut streamed, mut resident, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    let say = |round: usize, what: &str, r: &Ours| {
        eprintln!(
            "  round {round}: reelsmith {what} step {} (median of {}: {}), load {}",
            fmt_secs(median(&r.steps)),
            r.steps.len(),
            list(&r.steps),
            fmt_secs(r.build_s)
        );
    };
    for round in 1..=plan.rounds {
        // Streamed first: on CUDA its peak is read before the resident weights were ever there.
        let s = ours_round(&run, Residency::Streamed { resident_blocks: 0 }).map_err(failed)?;
        say(round, "streamed", &s);
        streamed.push(s);
        let r = ours_round(&run, Residency::Resident).map_err(failed)?;
        say(round, "resident", &r);
        resident.push(r);
        if let Some(py) = &reference_python {
            let x = reference_round(&run, py, &script).map_err(failed)?;
            let steps: Vec<f64> = x.json["steps"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            eprintln!(
                "  round {round}: diffusers step {} (median of {}: {}), load {}",
                fmt_secs(num(&x.json, "step_s")),
                steps.len(),
                list(&steps),
                fmt_secs(num(&x.json, "build_s"))
            );
            theirs.push(x);
        }
    }
    report(&run, params, &resident, &streamed, &theirs);
    Ok(())
}

fn best(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(f64::INFINITY, f64::min)
}

/// Peak memory of ours over rounds: NVML's figure on CUDA, the host peak on the CPU.
fn ours_peak(dev: &Device, rounds: &[Ours]) -> Option<u64> {
    if dev.is_cuda() {
        rounds
            .iter()
            .filter_map(|r| r.gpu.and_then(|g| g.best()))
            .map(|(b, _)| b)
            .max()
    } else {
        rounds.iter().map(|r| r.host_peak).max()
    }
}

mod report;
use report::report;

#[cfg(test)]
mod tests;
