//! `reelsmith video PROMPT -o out.mp4`: generate a clip with an installed video model
//! (LTX-Video or Wan2.1 on candle) — from text, from a first picture (`--image`), between a first and a
//! last picture (`--end`: a generated transition), or held to pictures at any frame
//! (`--condition IMG@FRAME[:STRENGTH]`). Everything is checked before the model loads (a wrong
//! frame count or size exits 2 naming the nearest valid values); the MP4 appears under its
//! name only when the whole clip is encoded; Ctrl-C stops between steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use reelsmith_video::frames::FrameRule;
use reelsmith_video::ltx::load::{self as ltx_load, LtxSource};
use reelsmith_video::ltx::schedule::Steps;

use super::Fail;
use crate::config::Dirs;
use crate::engines::models::parse_device;
use crate::engines::video::{
    default_steps, residency_for, weights_of, ClipCondition, ClipRequest, Residency, VideoEngine,
    VideoModelRef, VideoWeights,
};
use crate::engines::video_select::{auto_video_model, choose_video, find_video_model};
use crate::engines::EngineError;
use crate::hub::{HubConfig, Registry};
use crate::media::decode;
use crate::media::encode::{EncodeSettings, Mp4Writer};
use crate::media::image::RgbImage;

/// Longest clip one command makes, in frames.
pub const MAX_FRAMES: usize = 1025;

#[derive(Args, Debug)]
pub struct VideoArgs {
    /// What the clip should show.
    pub prompt: String,
    /// An installed video model (registry id, `reelsmith models list --kind video`) or an
    /// LTX-Video single file (`ltxv-*.safetensors`) or diffusers folder. Default: the model
    /// `video` in <config>/engines.toml or REELSMITH_VIDEO names, else the first installed one.
    #[arg(long)]
    pub model: Option<String>,
    /// The T5 text encoder (a transformers folder or a `t5*.safetensors` file) instead of the
    /// one found for the model.
    #[arg(long)]
    pub text_encoder: Option<PathBuf>,
    /// The T5 tokenizer (folder, spiece.model or tokenizer.json) instead of the model's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// The first frame (image-to-video).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// The last frame: with --image, a generated transition between the two.
    #[arg(long)]
    pub end: Option<PathBuf>,
    /// A picture held at a frame, `IMG@FRAME[:STRENGTH]` (frame a multiple of 8, strength
    /// 0..1, default 1). Repeat for several.
    #[arg(long = "condition")]
    pub conditions: Vec<String>,
    /// What the clip should not show (used when --cfg is above 1).
    #[arg(
        long,
        default_value = "worst quality, inconsistent motion, blurry, jittery, distorted"
    )]
    pub negative: String,
    /// Frames: LTX-Video 8k+1 (default 97 = 4 s at 24 fps), Wan2.1 4k+1 (default 81 = 5 s at
    /// 16 fps).
    #[arg(long, allow_negative_numbers = true)]
    pub frames: Option<i64>,
    /// Frame rate the model is told and the MP4 plays at (default: the model's, 24 or 30).
    #[arg(long, allow_negative_numbers = true)]
    pub fps: Option<i64>,
    /// WIDTHxHEIGHT: LTX-Video multiples of 32 (default 768x512), Wan2.1 multiples of 16
    /// (default 832x480).
    #[arg(long)]
    pub size: Option<String>,
    /// Sampling steps (default: the model's; a distilled model's fixed timesteps).
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<i64>,
    /// Classifier-free guidance; 1 or less turns it off (default: the model's).
    #[arg(long, allow_negative_numbers = true)]
    pub cfg: Option<f64>,
    /// T5 tokens the prompt is read up to (diffusers reads 128, the official pipeline 256).
    #[arg(long, default_value_t = 128, allow_negative_numbers = true)]
    pub prompt_tokens: i64,
    /// Noise seed (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda or cuda:N (default: cuda when this build has it, else cpu).
    #[arg(long)]
    pub device: Option<String>,
    /// Where to write the MP4.
    #[arg(short, long)]
    pub out: PathBuf,
}

pub fn run(args: VideoArgs, dirs: &Dirs) -> i32 {
    Fail::exit_code(video(&args, dirs))
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--size {s}: write WIDTHxHEIGHT, e.g. 768x512");
    let (w, h) =
        s.trim()
            .to_ascii_lowercase()
            .split_once(['x', '×'])
            .map_or((None, None), |(w, h)| {
                (
                    w.trim().parse::<usize>().ok(),
                    h.trim().parse::<usize>().ok(),
                )
            });
    match (w, h) {
        (Some(w), Some(h)) if w > 0 && h > 0 && w <= 4096 && h <= 4096 => Ok((w, h)),
        _ => Err(bad()),
    }
}

/// `IMG@FRAME[:STRENGTH]`.
fn parse_condition(value: &str) -> Result<(PathBuf, usize, f64), String> {
    let bad = || {
        format!("--condition {value}: write IMG@FRAME or IMG@FRAME:STRENGTH, e.g. end.png@96:0.9")
    };
    let (file, rest) = value.rsplit_once('@').ok_or_else(bad)?;
    let (frame, strength) = match rest.split_once(':') {
        Some((f, s)) => (f, s.trim().parse::<f64>().map_err(|_| bad())?),
        None => (rest, 1.0),
    };
    let frame = frame.trim().parse::<usize>().map_err(|_| bad())?;
    if !(0.0..=1.0).contains(&strength) {
        return Err(format!(
            "--condition {value}: the strength must lie in 0..1"
        ));
    }
    if file.is_empty() {
        return Err(bad());
    }
    Ok((PathBuf::from(file), frame, strength))
}

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

/// Everything the command line says, checked.
struct Plan {
    model: VideoModelRef,
    weights: VideoWeights,
    request: ClipRequest,
    fps: u32,
}

/// `--model`, else the configured model, else the first installed one (the user asked for a
/// clip explicitly, so a CPU is no reason to refuse).
fn choose_model(args: &VideoArgs, dirs: &Dirs) -> Result<VideoModelRef, String> {
    let reg = Registry::load(Some(&dirs.config)).map_err(|e| e.to_string())?;
    let cfg = HubConfig::from_env(|k| std::env::var(k).ok());
    if let Some(v) = &args.model {
        return find_video_model(&reg, &cfg, v, &format!("--model {v}"));
    }
    if let Some((value, field)) =
        super::image::configured_setting(dirs, "video", "REELSMITH_VIDEO")?
    {
        if let Some(m) = choose_video(&reg, &cfg, &value, &field, true)? {
            return Ok(m);
        }
    }
    auto_video_model(&reg, &cfg, true).ok_or_else(|| {
        "no video model is installed: `reelsmith models pull ltxv-2b-0.9.8-distilled` (and \
         flux-text-encoders for its T5) or `reelsmith models pull wan2.1-t2v-1.3b` (and \
         umt5-xxl-tokenizer), `reelsmith models list --kind video` for the others, or \
         `reelsmith models import PATH` an LTX-Video or Wan2.1 model"
            .to_string()
    })
}

fn plan(args: &VideoArgs, dirs: &Dirs) -> Result<Plan, String> {
    if args.prompt.trim().is_empty() {
        return Err("the prompt is empty: say what the clip should show".into());
    }
    let m = choose_model(args, dirs)?;
    let mut weights = weights_of(&m);
    if let Some(t) = &args.text_encoder {
        if !t.exists() {
            return Err(format!(
                "--text-encoder {}: no such file or folder",
                t.display()
            ));
        }
        weights.text_encoder = t.clone();
    }
    if let Some(t) = &args.tokenizer {
        if !t.exists() {
            return Err(format!(
                "--tokenizer {}: no such file or folder",
                t.display()
            ));
        }
        weights.tokenizer = t.clone();
    }
    let wan = m.arch == "wan";
    let rule = if wan {
        FrameRule::WAN
    } else {
        let source = if weights.weights.is_dir() {
            LtxSource::Diffusers(weights.weights.clone())
        } else {
            LtxSource::SingleFile(weights.weights.clone())
        };
        let configs = ltx_load::configs(&source).map_err(|e| format!("{}: {e}", m.id))?;
        FrameRule {
            temporal: configs.vae.temporal_compression(),
            spatial: configs.vae.spatial_compression(),
            min_frames: configs.vae.temporal_compression() + 1,
        }
    };
    let frames = args.frames.unwrap_or(if wan { 81 } else { 97 });
    if frames <= 0 || frames as usize > MAX_FRAMES {
        return Err(format!("--frames {frames}: between 1 and {MAX_FRAMES}"));
    }
    let frames = frames as usize;
    rule.check_frames(frames)
        .map_err(|e| format!("--frames: {e}"))?;
    let size = args
        .size
        .clone()
        .unwrap_or_else(|| if wan { "832x480" } else { "768x512" }.to_string());
    let (width, height) = parse_size(&size)?;
    rule.check_size(width, height)
        .map_err(|e| format!("--size: {e}"))?;
    let fps = args.fps.unwrap_or(m.fps() as i64);
    if !(1..=240).contains(&fps) {
        return Err(format!("--fps {fps}: between 1 and 240"));
    }
    let steps = match args.steps {
        Some(n) if !(1..=1000).contains(&n) => {
            return Err(format!("--steps {n}: between 1 and 1000"));
        }
        Some(n) => Steps::Count(n as usize),
        None => default_steps(&m),
    };
    let guidance = args.cfg.unwrap_or(m.cfg() as f64);
    if !(guidance.is_finite() && (0.0..=30.0).contains(&guidance)) {
        return Err(format!("--cfg {guidance}: between 0 and 30"));
    }
    if !(8..=512).contains(&args.prompt_tokens) {
        return Err(format!(
            "--prompt-tokens {}: between 8 and 512",
            args.prompt_tokens
        ));
    }
    let mut conditions = Vec::new();
    if let Some(p) = &args.image {
        conditions.push(ClipCondition {
            image: read_picture("--image", p)?,
            frame: 0,
            strength: 1.0,
        });
    }
    if let Some(p) = &args.end {
        conditions.push(ClipCondition {
            image: read_picture("--end", p)?,
            frame: frames - 1 - (frames - 1) % rule.temporal,
            strength: 1.0,
        });
    }
    if wan && !args.conditions.is_empty() {
        return Err(format!(
            "--condition: {} is a Wan2.1 model, which holds pictures at the first frame \
             (--image) and the last (--end) only",
            m.id
        ));
    }
    if wan && m.facts.task != "t2v" && args.image.is_none() {
        return Err(format!(
            "{} is a Wan2.1 {} model: give the first frame with --image",
            m.id,
            if m.facts.task == "flf2v" {
                "first-last-frame"
            } else {
                "image-to-video"
            }
        ));
    }
    for c in &args.conditions {
        let (file, frame, strength) = parse_condition(c)?;
        if frame >= frames {
            return Err(format!(
                "--condition {c}: frame {frame} is past the clip's last frame {}",
                frames - 1
            ));
        }
        if frame % rule.temporal != 0 {
            let below = frame / rule.temporal * rule.temporal;
            return Err(format!(
                "--condition {c}: frames are held on multiples of {}; the nearest are {below} and {}",
                rule.temporal,
                below + rule.temporal
            ));
        }
        conditions.push(ClipCondition {
            image: read_picture("--condition", &file)?,
            frame,
            strength,
        });
    }
    match args.out.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("mp4") => {}
        _ => {
            return Err(format!(
                "-o {}: the clip is written as MP4; name it *.mp4",
                args.out.display()
            ))
        }
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(format!(
                "-o {}: no folder {}",
                args.out.display(),
                dir.display()
            ));
        }
    }
    let seed = args.seed.unwrap_or_else(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish() >> 1
    });
    Ok(Plan {
        model: m,
        weights,
        request: ClipRequest {
            prompt: args.prompt.clone(),
            negative_prompt: args.negative.clone(),
            width,
            height,
            frames,
            fps: fps as f64,
            steps,
            guidance,
            seed,
            conditions,
            prompt_tokens: args.prompt_tokens as usize,
            shift: None,
        },
        fps: fps as u32,
    })
}

fn video(args: &VideoArgs, dirs: &Dirs) -> Result<(), Fail> {
    let plan = plan(args, dirs).map_err(Fail::Input)?;
    let device_name = args.device.clone().unwrap_or_else(|| {
        if candle_core::utils::cuda_is_available() {
            "cuda".into()
        } else {
            "cpu".into()
        }
    });
    let device = parse_device(&device_name).map_err(Fail::Input)?;
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
    let t0 = Instant::now();
    let req = &plan.request;
    let capacity = match device {
        candle_core::Device::Cuda(_) => {
            let index = device_name
                .split_once(':')
                .and_then(|(_, i)| i.parse::<u32>().ok())
                .unwrap_or(0);
            crate::gpu::monitor::GpuMonitor::from_env()
                .sample()
                .into_iter()
                .find(|s| s.index == index)
                .map(|s| s.total)
                .filter(|&t| t > 0)
        }
        _ => None,
    };
    let residency = residency_for(
        &plan.model,
        req.frames as u32,
        req.width as u32,
        req.height as u32,
        capacity,
    );
    if residency != Residency::Resident {
        eprintln!(
            "{}: {residency:?} (the GPU holds too little for every block)",
            plan.model.id
        );
    }
    let engine = VideoEngine::load(&plan.weights, &device, None, residency).map_err(engine_fail)?;
    // Wan: the prompts are encoded first (umT5 loads, runs and leaves memory).
    let states = if engine.takes_prompt_states() {
        Some(
            engine
                .encode_prompts(&[req.prompt.as_str(), req.negative_prompt.as_str()])
                .map_err(engine_fail)?,
        )
    } else {
        None
    };
    let loaded = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut on_step = |done: usize, total: usize| {
        let per = t1.elapsed().as_secs_f64() / done.max(1) as f64;
        eprintln!(
            "step {done}/{total} ({per:.2} s/step, {:.0} s left)",
            per * (total - done) as f64
        );
        !cancel.is_cancelled()
    };
    let latents = engine
        .sample(req, states.as_ref(), &mut on_step)
        .map_err(engine_fail)?;
    let sampled = t1.elapsed().as_secs_f64();
    let tmp = args.out.with_extension("mp4.part");
    let settings = EncodeSettings {
        width: req.width as u32,
        height: req.height as u32,
        fps: plan.fps,
        crf: 16,
        preset: "medium".into(),
        audio_rate: 48_000,
        audio_bitrate: 192_000,
        aac_coder: "fast".into(),
    };
    let t2 = Instant::now();
    let written = (|| -> Result<usize, Fail> {
        let mut mp4 =
            Mp4Writer::create(&tmp, &settings, None).map_err(|e| Fail::Failed(e.to_string()))?;
        let mut n = 0usize;
        engine
            .decode(&latents, req.seed, None, &mut |img: RgbImage| {
                if cancel.is_cancelled() {
                    return Err(EngineError::Cancelled);
                }
                n += 1;
                mp4.push_rgb(&img).map_err(|e| EngineError::Failed {
                    engine: "mp4".into(),
                    message: e.to_string(),
                })
            })
            .map_err(engine_fail)?;
        mp4.finish().map_err(|e| Fail::Failed(e.to_string()))?;
        Ok(n)
    })();
    let frames = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &args.out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Fail::Failed(format!("{}: {e}", args.out.display()))
    })?;
    println!("{}", args.out.display());
    eprintln!(
        "{frames} frames {}x{} at {} fps with {} ({:?}): {} step(s), cfg {}, seed {}; loaded in \
         {loaded:.1} s, sampled in {sampled:.1} s, decoded in {:.1} s",
        req.width,
        req.height,
        plan.fps,
        engine.id(),
        engine.dtype(),
        req.steps.len(),
        req.guidance,
        req.seed,
        t2.elapsed().as_secs_f64()
    );
    Ok(())
}

fn engine_fail(e: EngineError) -> Fail {
    match e {
        EngineError::Cancelled => Fail::Cancelled,
        e => Fail::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_bad_ones_say_the_form() {
        assert_eq!(
            parse_condition("a.png@16:0.5").unwrap(),
            (PathBuf::from("a.png"), 16, 0.5)
        );
        assert_eq!(parse_condition("dir@x/a.png@8").unwrap().1, 8);
        assert!(parse_condition("a.png").unwrap_err().contains("IMG@FRAME"));
        assert!(parse_condition("a.png@8:2").unwrap_err().contains("0..1"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("768x512").unwrap(), (768, 512));
        assert!(parse_size("768").is_err());
        assert!(parse_size("0x512").is_err());
    }
}
