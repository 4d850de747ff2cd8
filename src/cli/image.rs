//! `reelsmith image PROMPT -o out.png`: draw with an installed image model (Stable Diffusion,
//! SDXL, FLUX on candle) for quick jobs — text-to-image, image-to-image from `--init`,
//! inpainting with `--mask`, LoRAs, any sampler. Everything the command line says is checked
//! before the model loads; the PNGs appear under their names only when every image of the batch
//! is drawn (`out.png`, then `out-1.png`, `out-2.png`, … for `--batch N`).

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use reelsmith_diffusion::arch::Arch;
use reelsmith_diffusion::lora::LoraSpec;
use reelsmith_diffusion::model::{self as dm};
use reelsmith_diffusion::pipeline::{Error as PipelineError, Family, InitImage, Step};
use reelsmith_diffusion::scheduler::SamplerKind;

use super::Fail;
use crate::config::Dirs;
use crate::engines::diffusion::{
    auto_image_model, find_image_model, model_files, DiffusionEngine, ImageModelRef,
};
use crate::engines::models::{engines_file, parse_device};
use crate::hub::{HubConfig, Registry};
use crate::media::image::RgbImage;
use crate::media::{decode, stills};

/// Most images one command draws.
pub const MAX_BATCH: u32 = 16;
/// Largest side, in pixels.
pub const MAX_SIDE: usize = 4096;
/// Image-to-image strength when `--init` is given without `--strength`.
pub const INIT_STRENGTH: f32 = 0.75;

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// What to draw.
    pub prompt: String,
    /// An installed image model (registry id, `reelsmith models list --kind image`). Default:
    /// the model `image` in <config>/engines.toml or REELSMITH_IMAGE names, else the first
    /// installed one.
    #[arg(long)]
    pub model: Option<String>,
    /// What the picture should not show (used when guidance is on, --cfg above 1).
    #[arg(long)]
    pub negative: Option<String>,
    /// A picture to start from (image-to-image); scaled and cropped to the size.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// How much of the sampling to run from --init: above 0, at most 1 (1 = only the
    /// composition's noise survives). Default 0.75, or 1 with --mask.
    #[arg(long, allow_negative_numbers = true)]
    pub strength: Option<f32>,
    /// Inpainting mask for --init, scaled and cropped like it: white = repaint, black = keep.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// ddim, euler, euler_a, dpmpp_2m, or flow (FLUX only). Default: the model's.
    #[arg(long)]
    pub sampler: Option<String>,
    /// Sampling steps (default: the model's, 1 for Turbo models, 4 for FLUX.1-schnell).
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<i64>,
    /// Classifier-free guidance scale; 1 or less turns guidance (and --negative) off.
    /// Default: the model's.
    #[arg(long, allow_negative_numbers = true)]
    pub cfg: Option<f32>,
    /// WIDTHxHEIGHT, multiples of the model's size step (8 for SD/SDXL, 16 for FLUX).
    /// Default: the model's native size (512² for SD 1.5 and the Turbos, 768² for SD 2.1,
    /// 1024² for SDXL and FLUX).
    #[arg(long)]
    pub size: Option<String>,
    /// Noise seed: the same seed, settings and model draw the same picture. Default: random
    /// (printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Pictures to draw in one batch: written as OUT.png, OUT-1.png, … OUT-(N-1).png.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub batch: i64,
    /// A LoRA `.safetensors` (kohya or diffusers) with an optional weight, `FILE[:WEIGHT]`
    /// (default 1); relative files not found here are looked for in <config>/loras/.
    /// Repeat for several.
    #[arg(long = "lora", value_name = "FILE[:WEIGHT]")]
    pub loras: Vec<String>,
    /// cpu, cuda or cuda:N (CUDA needs a `--features cuda` build).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Output PNG.
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(args: ImageArgs, dirs: &Dirs) -> i32 {
    Fail::exit_code(image(&args, dirs))
}

/// `WxH` (or `N` for a square).
fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--size {s}: write WIDTHxHEIGHT, e.g. 512x768");
    let t = s.trim().to_ascii_lowercase();
    let (w, h) = match t.split_once(['x', '×']) {
        Some((w, h)) => (w.trim(), h.trim()),
        None => (t.as_str(), t.as_str()),
    };
    let w: usize = w.parse().map_err(|_| bad())?;
    let h: usize = h.parse().map_err(|_| bad())?;
    if w == 0 || h == 0 {
        return Err(bad());
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!("--size {s}: at most {MAX_SIDE} pixels a side"));
    }
    Ok((w, h))
}

/// `FILE[:WEIGHT]`: the file as given, else under `<config>/loras/`.
fn parse_lora(value: &str, dirs: &Dirs) -> Result<LoraSpec, String> {
    let (file, weight) = match value.rsplit_once(':') {
        Some((f, w)) if !f.is_empty() && w.trim().parse::<f32>().is_ok() => {
            (f, w.trim().parse::<f32>().unwrap_or(1.0))
        }
        _ => (value, 1.0),
    };
    if !weight.is_finite() || !(-4.0..=4.0).contains(&weight) {
        return Err(format!(
            "--lora {value}: weight {weight} is outside -4..=4 (1 = as trained)"
        ));
    }
    let given = PathBuf::from(file);
    if given.extension().is_none_or(|e| e != "safetensors") {
        return Err(format!(
            "--lora {value}: {file} is not a .safetensors LoRA (kohya or diffusers)"
        ));
    }
    let in_config = dirs.config.join("loras").join(&given);
    let path = if given.is_file() {
        given
    } else if given.is_relative() && in_config.is_file() {
        in_config
    } else {
        return Err(format!(
            "--lora {value}: {file} does not exist (relative files are looked for here and in {})",
            dirs.config.join("loras").display()
        ));
    };
    Ok(LoraSpec::new(path, weight))
}

/// A picture given on the command line, decoded now so a bad file stops us before loading.
fn read_picture(flag: &str, path: &Path) -> Result<RgbImage, String> {
    if !path.is_file() {
        return Err(format!("{flag} {}: no such file", path.display()));
    }
    decode::read_image(path).map_err(|e| {
        format!(
            "{flag} {}: not a picture reelsmith can read ({e})",
            path.display()
        )
    })
}

/// The `key` setting of engines.toml, or the `env` variable (which wins), when set: (value,
/// where it came from).
pub(super) fn configured_setting(
    dirs: &Dirs,
    key: &str,
    env: &str,
) -> Result<Option<(String, String)>, String> {
    if let Some(v) = std::env::var(env).ok().filter(|v| !v.trim().is_empty()) {
        return Ok(Some((v.trim().to_string(), env.into())));
    }
    let file = engines_file(dirs);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let v: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    match v.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some((
            s.trim().to_string(),
            format!("{}: {key}", file.display()),
        ))),
        Some(_) => Err(format!(
            "{}: {key}: write auto, none or a model's id in quotes",
            file.display()
        )),
    }
}

/// `--model`, else the configured model, else the first installed one (any variant: the user
/// asked for a picture explicitly).
fn choose_model(args: &ImageArgs, dirs: &Dirs) -> Result<ImageModelRef, String> {
    let reg = Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
    let cfg = HubConfig::from_env(|k| std::env::var(k).ok());
    if let Some(id) = &args.model {
        return find_image_model(&reg, &cfg, id, &format!("--model {id}"));
    }
    if let Some((value, field)) = configured_setting(dirs, "image", "REELSMITH_IMAGE")? {
        if !matches!(value.as_str(), "auto" | "none" | "off" | "paint") {
            return find_image_model(&reg, &cfg, &value, &field);
        }
    }
    auto_image_model(&reg, &cfg, true).ok_or_else(|| {
        "no image model is installed: `reelsmith models pull sd-turbo` (SD-Turbo: one step, \
         runs on a CPU too), `reelsmith models list --kind image` for the others, or \
         `reelsmith models import PATH` a checkpoint folder of your own"
            .to_string()
    })
}

/// Pixels per side of the model's sizes: latents are 2^(VAE blocks − 1) times smaller, and
/// FLUX packs 2×2 latents.
fn size_multiple(arch: &Arch) -> usize {
    let blocks = arch.configs["vae"]["block_out_channels"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(4)
        .max(1);
    let f = 1usize << (blocks - 1);
    match arch.family {
        Family::Flux => f * 2,
        _ => f,
    }
}

/// Where the pictures of a batch go: OUT.png, OUT-1.png, …
pub fn batch_paths(out: &Path, n: usize) -> Vec<PathBuf> {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "png".into());
    (0..n)
        .map(|i| match i {
            0 => out.to_path_buf(),
            i => out.with_file_name(format!("{stem}-{i}.{ext}")),
        })
        .collect()
}

/// The GPU index a `--device` value names (part of the loaded-model cache key).
fn device_index(value: &str) -> Option<u32> {
    let v = value.trim().to_ascii_lowercase();
    match v.as_str() {
        "cuda" | "gpu" => Some(0),
        _ => v.strip_prefix("cuda:").and_then(|n| n.parse().ok()),
    }
}

/// Everything the command line asks for, checked.
struct Plan {
    model: ImageModelRef,
    arch_name: &'static str,
    loras: Vec<LoraSpec>,
    width: usize,
    height: usize,
    sampler: SamplerKind,
    steps: usize,
    cfg: f64,
    seed: u64,
    batch: usize,
    /// (picture, mask, strength), already scaled and cropped to the size.
    init: Option<(RgbImage, Option<RgbImage>, f32)>,
    outputs: Vec<PathBuf>,
}

fn check(args: &ImageArgs, dirs: &Dirs) -> Result<Plan, String> {
    if args.prompt.trim().is_empty() {
        return Err("nothing to draw: the prompt is empty".into());
    }
    let out = &args.output;
    if out
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
    {
        return Err(format!(
            "-o {}: pictures are written as PNG; name the output NAME.png",
            out.display()
        ));
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "-o {}: the folder {} does not exist; create it first",
            out.display(),
            dir.display()
        ));
    }
    if !(1..=MAX_BATCH as i64).contains(&args.batch) {
        return Err(format!(
            "--batch {}: draw 1 to {MAX_BATCH} pictures at a time",
            args.batch
        ));
    }
    if let Some(s) = args.steps {
        if !(1..=1000).contains(&s) {
            return Err(format!("--steps {s}: use 1 to 1000 steps"));
        }
    }
    if let Some(c) = args.cfg {
        if !c.is_finite() || !(0.0..=30.0).contains(&c) {
            return Err(format!(
                "--cfg {c}: use a guidance scale from 0 to 30 (1 or less = no guidance)"
            ));
        }
    }
    let sampler = match &args.sampler {
        None => None,
        Some(s) => Some(
            SamplerKind::parse(&s.trim().to_ascii_lowercase()).ok_or_else(|| {
                format!(
                    "--sampler {s}: unknown; use ddim, euler, euler_a, dpmpp_2m, or flow (FLUX)"
                )
            })?,
        ),
    };
    let size = args.size.as_deref().map(parse_size).transpose()?;
    if args.init.is_none() {
        if args.strength.is_some() {
            return Err("--strength needs --init (the picture to start from)".into());
        }
        if args.mask.is_some() {
            return Err("--mask needs --init (the picture whose white areas are repainted)".into());
        }
    }
    if let Some(s) = args.strength {
        if !(s > 0.0 && s <= 1.0) {
            return Err(format!(
                "--strength {s}: use a number above 0 and at most 1 (0.3 keeps the picture \
                 close, 1 keeps only what the mask protects)"
            ));
        }
    }
    let init = args
        .init
        .as_deref()
        .map(|p| read_picture("--init", p))
        .transpose()?;
    let mask = args
        .mask
        .as_deref()
        .map(|p| read_picture("--mask", p))
        .transpose()?;
    let loras = args
        .loras
        .iter()
        .map(|l| parse_lora(l, dirs))
        .collect::<Result<Vec<_>, _>>()?;

    // The model: its architecture (with the folder's configs) says sizes, samplers, defaults.
    let model = choose_model(args, dirs)?;
    let (arch, _files) = model_files(&model)?;
    let multiple = size_multiple(&arch);
    let (width, height) = size.unwrap_or((arch.native, arch.native));
    if width % multiple != 0 || height % multiple != 0 {
        let near = |v: usize| ((v + multiple / 2) / multiple).max(1) * multiple;
        return Err(format!(
            "--size {width}x{height}: {} ({}) draws sizes in multiples of {multiple}; try {}x{}",
            model.id,
            arch.name,
            near(width),
            near(height)
        ));
    }
    let d = arch.defaults;
    let sampler = sampler.unwrap_or(d.sampler);
    let flux = arch.family == Family::Flux;
    if flux && sampler != SamplerKind::Flow {
        return Err(format!(
            "--sampler {}: {} ({}) samples with flow only",
            sampler.name(),
            model.id,
            arch.name
        ));
    }
    if !flux && sampler == SamplerKind::Flow {
        return Err(format!(
            "--sampler flow: only FLUX models sample with flow; {} ({}) takes ddim, euler, \
             euler_a or dpmpp_2m",
            model.id, arch.name
        ));
    }
    let steps = args.steps.map(|s| s as usize).unwrap_or(d.steps);
    let cfg = args.cfg.map(f64::from).unwrap_or(d.cfg);
    let init = match init {
        None => None,
        Some(img) => {
            let strength =
                args.strength
                    .unwrap_or(if mask.is_some() { 1.0 } else { INIT_STRENGTH });
            // diffusers runs the last ⌊steps × strength⌋ steps.
            let kept = (steps as f64 * strength as f64) as usize;
            if kept == 0 {
                let need = (1.0 / strength as f64).ceil() as usize;
                return Err(format!(
                    "--strength {strength} with {steps} step(s) runs no step \
                     (⌊{steps} × {strength}⌋ = 0): use --steps {need} or more, or a higher \
                     --strength"
                ));
            }
            let (w, h) = (width as u32, height as u32);
            let mask = mask.map(|m| {
                // White = repaint: the mask is its luma, in every channel.
                let mut m = stills::cover(&m, w, h);
                for px in m.data.chunks_exact_mut(3) {
                    let l = (px[0] as u32 * 299 + px[1] as u32 * 587 + px[2] as u32 * 114) / 1000;
                    px.fill(l as u8);
                }
                m
            });
            Some((stills::cover(&img, w, h), mask, strength))
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish() % (1 << 32)
    });
    let batch = args.batch as usize;
    Ok(Plan {
        arch_name: arch.name,
        model,
        loras,
        width,
        height,
        sampler,
        steps,
        cfg,
        seed,
        batch,
        init,
        outputs: batch_paths(out, batch),
    })
}

fn image(args: &ImageArgs, dirs: &Dirs) -> Result<(), Fail> {
    let plan = check(args, dirs)?;
    let device = parse_device(&args.device)?;
    let t0 = Instant::now();
    eprintln!(
        "loading {} ({}) on {}{}",
        plan.model.id,
        plan.arch_name,
        args.device,
        if plan.loras.is_empty() {
            String::new()
        } else {
            format!(" with {} LoRA(s)", plan.loras.len())
        }
    );
    let engine = DiffusionEngine::load(
        &plan.model,
        None,
        &plan.loras,
        &device,
        device_index(&args.device),
    )
    .map_err(|e| Fail::Failed(e.to_string()))?;
    let model = engine.model();
    let loaded = t0.elapsed().as_secs_f64();
    if args.negative.is_some() && !model.pipeline.uses_guidance(plan.cfg) {
        if model.pipeline.family == Family::Flux {
            eprintln!("note: --negative is not used: FLUX.1-schnell draws without guidance");
        } else {
            eprintln!(
                "note: --negative is not used without guidance ({} draws with cfg {}; --cfg \
                 above 1 turns it on)",
                plan.model.id, plan.cfg
            );
        }
    }
    let failed = |e: PipelineError| Fail::Failed(format!("{}: {e}", plan.model.id));
    let dev = model.pipeline.device.clone();
    let (w, h) = (plan.width, plan.height);
    let init = match &plan.init {
        None => None,
        Some((img, mask, strength)) => Some(InitImage {
            image: dm::from_rgb8(&img.data, w, h, &dev).map_err(failed)?,
            strength: *strength as f64,
            mask: match mask {
                None => None,
                Some(m) => Some(
                    dm::from_rgb8(&m.data, w, h, &dev)
                        .and_then(|t| Ok(t.narrow(1, 0, 1)?))
                        .map_err(failed)?,
                ),
            },
        }),
    };
    let request = dm::Request {
        prompt: args.prompt.clone(),
        negative: args.negative.clone().filter(|n| !n.trim().is_empty()),
        width: w,
        height: h,
        seed: plan.seed,
        batch: plan.batch,
        sampler: Some(plan.sampler),
        steps: Some(plan.steps),
        cfg: Some(plan.cfg),
    };

    // Ctrl-C / SIGTERM stop between steps (no file is started before the last one). One worker
    // thread waits for the signals; the model has the CPU to itself.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Fail::Failed(format!("cannot start the runtime: {e}")))?;
    let cancel = tokio_util::sync::CancellationToken::new();
    {
        let _guard = rt.enter();
        super::cancel_on_signals(cancel.clone(), "interrupted: stopping after this step");
    }
    let t1 = Instant::now();
    let mut on_step = |s: Step| {
        let spent = t1.elapsed().as_secs_f64();
        let per = spent / s.done.max(1) as f64;
        eprintln!(
            "step {}/{} ({per:.2} s/step, {:.0} s left)",
            s.done,
            s.total,
            per * (s.total - s.done) as f64
        );
        !cancel.is_cancelled()
    };
    let (images, cut) = match model.generate(&request, init.as_ref(), &mut on_step) {
        Ok(v) => v,
        Err(PipelineError::Cancelled) => return Err(Fail::Cancelled),
        Err(e) => return Err(failed(e)),
    };
    let drawn = t1.elapsed().as_secs_f64();
    let rgb = dm::to_rgb8(&images).map_err(failed)?;
    write_all(&plan.outputs, rgb, w as u32, h as u32)?;
    for p in &plan.outputs {
        println!("{}", p.display());
    }
    let strength = match &plan.init {
        Some((_, _, s)) => format!(", strength {s}"),
        None => String::new(),
    };
    eprintln!(
        "{} picture(s) {w}x{h} with {} ({}): {} {} step(s), cfg {}{strength}, seed {}; \
         loaded in {loaded:.1} s, drawn in {drawn:.1} s",
        plan.batch,
        plan.model.id,
        plan.arch_name,
        plan.sampler.name(),
        plan.steps,
        plan.cfg,
        plan.seed
    );
    if cut > 0 {
        eprintln!(
            "note: the prompt is {cut} token(s) longer than the text encoder reads (77); its end \
             was left out"
        );
    }
    Ok(())
}

/// Writes every picture to a temporary file beside its output, then renames them all: an error
/// leaves nothing behind.
fn write_all(outputs: &[PathBuf], rgb: Vec<Vec<u8>>, w: u32, h: u32) -> Result<(), Fail> {
    if rgb.len() != outputs.len() {
        return Err(Fail::Failed(format!(
            "the model drew {} picture(s), not {}",
            rgb.len(),
            outputs.len()
        )));
    }
    let mut done = Vec::with_capacity(outputs.len());
    for (out, data) in outputs.iter().zip(rgb) {
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".image-")
            .suffix(".png.part")
            .tempfile_in(&dir)
            .map_err(|e| Fail::Failed(format!("{}: {e}", dir.display())))?;
        let img = RgbImage {
            width: w,
            height: h,
            data,
        };
        stills::write_png(&img, tmp.path())
            .map_err(|e| Fail::Failed(format!("{}: {e}", out.display())))?;
        // A temporary file is private (0600); the PNG is an ordinary output file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644));
        }
        done.push((tmp, out));
    }
    for (tmp, out) in done {
        tmp.persist(out)
            .map_err(|e| Fail::Failed(format!("{}: {}", out.display(), e.error)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_batch_names() {
        assert_eq!(parse_size("512x768"), Ok((512, 768)));
        assert_eq!(parse_size("640"), Ok((640, 640)));
        assert_eq!(parse_size(" 32 X 16 "), Ok((32, 16)));
        for bad in ["0x512", "512x", "axb", "-8x8", "8192x8"] {
            assert!(parse_size(bad).unwrap_err().contains("--size"), "{bad}");
        }
        let p = batch_paths(Path::new("out/cat.png"), 3);
        assert_eq!(
            p,
            [
                PathBuf::from("out/cat.png"),
                PathBuf::from("out/cat-1.png"),
                PathBuf::from("out/cat-2.png")
            ]
        );
        assert_eq!(device_index("cuda:3"), Some(3));
        assert_eq!(device_index("cpu"), None);
    }

    #[test]
    fn loras_take_a_weight_and_are_found_in_the_config_folder() {
        let d = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            data: d.path().join("data"),
            config: d.path().join("cfg"),
        };
        std::fs::create_dir_all(dirs.config.join("loras")).unwrap();
        std::fs::write(dirs.config.join("loras/ink.safetensors"), b"x").unwrap();
        let l = parse_lora("ink.safetensors:0.6", &dirs).unwrap();
        assert_eq!(l.path, dirs.config.join("loras/ink.safetensors"));
        assert!((l.weight - 0.6).abs() < 1e-6);
        let l = parse_lora("ink.safetensors", &dirs).unwrap();
        assert!((l.weight - 1.0).abs() < 1e-6);
        let e = parse_lora("ink.safetensors:9", &dirs).unwrap_err();
        assert!(e.contains("outside -4..=4"), "{e}");
        let e = parse_lora("gone.safetensors", &dirs).unwrap_err();
        assert!(e.contains("does not exist") && e.contains("loras"), "{e}");
        let e = parse_lora("ink.ckpt", &dirs).unwrap_err();
        assert!(e.contains("not a .safetensors"), "{e}");
    }
}
