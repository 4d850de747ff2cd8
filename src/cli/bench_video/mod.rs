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
//!
//! Wan2.1 models (`--model wan-1.3b`, `wan-14b`, a registry id of arch `wan`…) are benched by
//! [`wan`]: the sampling step, resident and block-streamed, against diffusers'
//! `WanTransformer3DModel`.

mod measure;
mod nets;
mod wan;

pub use nets::{check, resolve_model, transformer_json, vae_json, Nets, Plan};

use super::Fail;
use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::Args;
use reelsmith_video::ltx::model::LtxModel;
use reelsmith_video::ltx::vae::TileConfig;
use serde_json::{json, Value};

use crate::config::Dirs;
use crate::hub::Registry;
use measure::{cuda_index, median, ours_round, reference_round, Reference, Round, TEXT_TOKENS};
use nets::{count_params, estimate_bytes, grid, mem_available, NAMES};

const REF_PY: &str = include_str!("../../../scripts/bench_ref.py");

#[derive(Args, Debug)]
pub struct VideoBenchArgs {
    /// The networks: ltxv-2b (0.9.5 2B), ltxv-13b (13B, 0.9.5 VAE), tiny (the test fixture's),
    /// wan-1.3b, wan-14b, wan-tiny (Wan2.1 T2V), or a video model's registry id (e.g.
    /// ltx-video-2b, ltxv-13b-0.9.8-dev, wan2.1-t2v-1.3b). Configs only: the weights are random.
    #[arg(long)]
    pub model: String,
    /// WxH, multiples of 32 for LTX (e.g. 768x512), of 16 for Wan (e.g. 832x480).
    #[arg(long)]
    pub size: String,
    /// Frames, 8k+1 for LTX (e.g. 97), 4k+1 for Wan (e.g. 81).
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
    #[command(flatten)]
    pub wan: wan::WanBenchArgs,
}

/// Runs `bench video`; the exit code (2 for bad arguments).
pub fn run(work: &Path, dirs: &Dirs, args: VideoBenchArgs) -> i32 {
    Fail::exit_code(bench(work, dirs, &args))
}

fn bench(work: &Path, dirs: &Dirs, args: &VideoBenchArgs) -> Result<(), Fail> {
    let builtin = NAMES.contains(&args.model.as_str()) || wan::NAMES.contains(&args.model.as_str());
    let reg = if builtin {
        Registry::load(None)
    } else {
        Registry::load(Some(&dirs.config))
    }
    .map_err(|e| Fail::Failed(e.to_string()))?;
    if wan::claims(&args.model, &reg) {
        return wan::bench(work, args, &reg);
    }
    wan::refuse_for_ltx(&args.wan).map_err(Fail::Input)?;
    let plan = check(args, &reg).map_err(Fail::Input)?;
    let dev = crate::engines::models::parse_device(&args.device).map_err(Fail::Input)?;
    let reference_python = reference_python(args)?;
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

/// The python of the reference runs: `--python`, else the fixture venv; `None` with
/// `--no-reference`.
fn reference_python(args: &VideoBenchArgs) -> Result<Option<PathBuf>, Fail> {
    if args.no_reference {
        return Ok(None);
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/reelsmith/fixture-venv/bin/python"))
        .filter(|p| p.is_file());
    args.python.clone().or(venv).map(Some).ok_or_else(|| {
        Fail::Failed(
            "no python with torch + diffusers: run scripts/diffusion-fixture-venv.sh, pass --python, or --no-reference".into(),
        )
    })
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
