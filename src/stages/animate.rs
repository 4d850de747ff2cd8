//! animate: how each still moves.
//!
//! Without a video model the embedded engine plans a Ken Burns camera move from the scene's
//! motion hint; the frames are drawn at assembly, exactly at the output rate.
//!
//! With one (`engines.toml video = …`, `REELSMITH_VIDEO`), each scene's keyframe becomes the
//! first frame of a generated clip: the prompt is the scene's prompt with the motion hint in
//! words, the length the scene's estimated duration at the model's frame rate made k·8+1, and a
//! scene longer than one window is generated as chained windows, each starting from the last
//! frame of the one before (that frame is not repeated, so there is no seam). Each window's
//! latents are saved as a checkpoint before it is decoded: a crash in the decode does not
//! sample again. Clips are stored losslessly (FFV1) and assembly scales and retimes them.
//! A `morph` transition is a clip generated from a scene's last frame to the next keyframe.

use std::path::Path;

use crate::engines::procedural::kenburns::KenBurns;
use crate::engines::video::{
    latents_from_bytes, latents_to_bytes, prompt_tokens_setting, ClipCondition, ClipRequest,
    DecodeResume, VideoEngine,
};
use crate::engines::{Clip, EngineError, VideoEngine as _};
use crate::media::clip::{ClipReader, ClipWriter};
use crate::media::compose::Blend;
use crate::media::decode;
use crate::media::image::RgbImage;
use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};
use crate::script::Localized;

use super::model::{Clips, Keyframes, Plan, PlannedScene, SceneClip};
use super::voice::place;

pub struct AnimateStage;

/// Frames of one LTX generation window (LTX is trained up to 257; 121 = 5 s at 24 fps keeps
/// memory and time per window moderate).
pub const WINDOW_FRAMES: usize = 121;
/// Frames of one Wan2.1 window: 81, what it is trained on (5 s at 16 fps).
pub const WAN_WINDOW_FRAMES: usize = 81;
/// Largest LTX generation area: 768×512, its native size (clips are scaled to the output).
pub const MAX_PIXELS: usize = 768 * 512;
/// Largest Wan generation area: 832×480 (the 480p size; 720p models are asked for it with
/// `REELSMITH_VIDEO_AREA=921600`).
pub const WAN_MAX_PIXELS: usize = 832 * 480;

fn is_wan(m: &crate::engines::video::VideoModelRef) -> bool {
    m.arch == "wan"
}

/// The frames of one generation window of model `m`.
pub fn window_frames(m: &crate::engines::video::VideoModelRef) -> usize {
    if is_wan(m) {
        WAN_WINDOW_FRAMES
    } else {
        WINDOW_FRAMES
    }
}

/// `REELSMITH_VIDEO_AREA`: the largest generation area in pixels (default [`MAX_PIXELS`], Wan
/// [`WAN_MAX_PIXELS`]); smaller is faster and coarser (clips are scaled to the output at
/// assembly).
fn max_pixels(m: &crate::engines::video::VideoModelRef) -> usize {
    std::env::var("REELSMITH_VIDEO_AREA")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&v| v >= 32 * 32)
        .unwrap_or(if is_wan(m) {
            WAN_MAX_PIXELS
        } else {
            MAX_PIXELS
        })
}

/// The engine's name in reports and clips.json: `ltx-video/<id>` or `wan/<id>`.
fn engine_name(m: &crate::engines::video::VideoModelRef) -> String {
    if is_wan(m) {
        format!("wan/{}", m.id)
    } else {
        format!("ltx-video/{}", m.id)
    }
}

/// The generation size of a job's clips with model `m`.
fn generation_size(job: &JobSpec, m: &crate::engines::video::VideoModelRef) -> (usize, usize) {
    let rule = reelsmith_video::frames::FrameRule {
        temporal: m.facts.temporal_compression.max(1) as usize,
        spatial: m.facts.size_multiple.max(1) as usize,
        min_frames: 1,
    };
    rule.fit_size(
        job.settings.width as usize,
        job.settings.height as usize,
        max_pixels(m),
    )
}

/// Total memory of GPU `index` (None: the largest visible one), as the monitor sees it.
fn gpu_capacity(index: Option<u32>) -> Option<u64> {
    let samples = crate::gpu::monitor::GpuMonitor::from_env().sample();
    match index {
        Some(i) => samples.iter().find(|s| s.index == i).map(|s| s.total),
        None => samples.iter().map(|s| s.total).max(),
    }
    .filter(|&t| t > 0)
}

/// `REELSMITH_VIDEO_STEPS`: sampling steps instead of the model's default (not for distilled
/// models, whose fixed timesteps are their steps).
fn steps_for(m: &crate::engines::video::VideoModelRef) -> reelsmith_video::ltx::schedule::Steps {
    let over = std::env::var("REELSMITH_VIDEO_STEPS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0);
    match over {
        Some(n) if m.timesteps().is_empty() => reelsmith_video::ltx::schedule::Steps::Count(n),
        _ => crate::engines::video::default_steps(m),
    }
}

/// Spoken words per second used to estimate a scene's length before the voice exists.
const WORDS_PER_SECOND: f64 = 2.5;

/// A scene's expected length in seconds (the longest language's narration, its minimum, or 3 s).
pub fn estimated_seconds(scene: &PlannedScene) -> f64 {
    let words = scene
        .lines
        .iter()
        .map(|l| match &l.text {
            Localized::One(t) => t.split_whitespace().count(),
            Localized::Many(m) => m
                .values()
                .map(|t| t.split_whitespace().count())
                .max()
                .unwrap_or(0),
        })
        .sum::<usize>();
    let spoken = words as f64 / WORDS_PER_SECOND + 0.6 * scene.lines.len() as f64;
    spoken.max(scene.min_duration.unwrap_or(0.0)).max(3.0)
}

/// The motion hint in words, appended to the scene's prompt.
pub fn motion_words(motion: &str) -> String {
    let m = motion.trim().replace(['-', '_'], " ");
    if m.is_empty() || m == "static" || m == "none" {
        "subtle natural motion, steady camera".into()
    } else {
        format!("{m} camera motion, smooth natural movement")
    }
}

fn engine_err(scene: &str, e: EngineError) -> StageError {
    match e {
        EngineError::Cancelled => StageError::Cancelled,
        e if is_gpu_oom(&e.to_string()) => StageError::OutOfMemory(format!("scene `{scene}`: {e}")),
        e => StageError::Engine(format!("scene `{scene}`: {e}")),
    }
}

/// Whether an engine's message is the CUDA driver or runtime running out of device memory
/// (the scheduler then frees cached models and retries with back-off).
pub fn is_gpu_oom(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out_of_memory") || m.contains("out of memory") || m.contains("memoryallocation")
}

impl Stage for AnimateStage {
    fn kind(&self) -> StageKind {
        StageKind::Animate
    }

    fn builtin_engine(&self) -> String {
        KenBurns.id()
    }

    fn engine(&self, job: &JobSpec) -> String {
        match &job.models.video {
            Some(m) => engine_name(m),
            None => self.builtin_engine(),
        }
    }

    fn params(&self, job: &JobSpec, _lang: Option<&str>) -> serde_json::Value {
        match &job.models.video {
            None => serde_json::json!({}),
            Some(m) => serde_json::json!({
                "model": (&m.id, &m.fingerprint),
                "size": [job.settings.width, job.settings.height],
                "area": max_pixels(m),
                "steps": format!("{:?}", steps_for(m)),
                "window": window_frames(m),
                "morph": job.models.morph.as_ref().map(|mm| (&mm.id, &mm.fingerprint)),
            }),
        }
    }

    fn resources(&self, job: &JobSpec) -> crate::pipeline::Resources {
        match &job.models.video {
            None => Default::default(),
            Some(m) => crate::pipeline::Resources {
                cpu_slots: 2,
                ram_bytes: 0,
                // The peak of a window's two phases (the transformer pass, then the decode) at
                // this job's generation size. A Wan model that does not fit the largest GPU
                // resident asks for its plan with blocks streamed from host memory (the run
                // streams as many as the plan for the GPU it is placed on says).
                // A morph model runs after the video model has left memory: the larger counts.
                vram_bytes: if candle_core::utils::cuda_is_available() {
                    let (w, h) = generation_size(job, m);
                    let need = |m: &crate::engines::video::VideoModelRef| {
                        let frames = window_frames(m) as u32;
                        let peak = m.vram_peak(frames, w as u32, h as u32);
                        match gpu_capacity(None) {
                            Some(cap) if is_wan(m) && peak > cap => m
                                .plan(frames, w as u32, h as u32, cap)
                                .map_or(peak, |p| p.peak),
                            _ => peak,
                        }
                    };
                    need(m).max(job.models.morph.as_ref().map_or(0, need))
                } else {
                    0
                },
                model: Some(m.id.clone()),
            },
        }
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        if plan.recorded.is_some() {
            return recorded_clips(ctx, &plan);
        }
        match &ctx.job.models.video {
            None => camera_clips(ctx, &plan),
            Some(_) => generated_clips(ctx, &plan),
        }
    }
}

/// The stretches of the recordings highlights show, at the output's size and frame rate
/// (FFV1), each with its game audio (a WAV at the job's audio rate, exactly as long).
fn recorded_clips(ctx: &StageCtx, plan: &Plan) -> Result<(), StageError> {
    let s = &ctx.job.settings;
    let fps = s.fps as f64;
    let total: f64 = plan
        .scenes
        .iter()
        .filter_map(|sc| sc.source.as_ref().map(|c| c.seconds()))
        .sum::<f64>()
        .max(1e-3);
    let mut done = 0.0;
    let mut clips = Vec::new();
    for sc in &plan.scenes {
        ctx.check_cancel()?;
        let Some(src) = &sc.source else {
            return Err(StageError::data(
                "plan.json",
                format!("scene `{}` of a highlights plan shows no recording", sc.id),
            ));
        };
        let params = serde_json::json!({
            "recording": src.key, "start": src.start, "end": src.end,
            "size": [s.width, s.height], "fps": s.fps, "rate": s.audio_rate,
        });
        let base = done;
        let item = ctx.item("recording-clip", &params, |dir| {
            let mut rec = crate::media::scan::open(&src.path)?;
            let mut writer = ClipWriter::create(&dir.join("clip.mkv"), s.width, s.height, fps)?;
            let ticks = (src.seconds() * fps).round().max(1.0);
            rec.extract::<StageError>((src.start, src.end), (s.width, s.height), fps, |img| {
                ctx.check_cancel()?;
                writer.push(img)?;
                let k = writer.frames() as f64;
                ctx.progress(((base + src.seconds() * k / ticks) / total) as f32);
                Ok(std::ops::ControlFlow::Continue(()))
            })?;
            writer.finish()?;
            let audio = crate::media::scan::audio_window(
                &src.path,
                src.start,
                src.start + ticks / fps,
                s.audio_rate,
            )?;
            crate::media::wav::write_f32(
                &dir.join("audio.wav"),
                &crate::media::wav::Audio {
                    rate: s.audio_rate,
                    channels: 2,
                    samples: audio,
                },
            )?;
            Ok(())
        })?;
        done += src.seconds();
        let file = format!("scene-{:03}.mkv", sc.index);
        let audio = format!("scene-{:03}.wav", sc.index);
        place(&item.join("clip.mkv"), &ctx.out.join(&file))?;
        place(&item.join("audio.wav"), &ctx.out.join(&audio))?;
        let info = ClipReader::open(&ctx.out.join(&file))?.info();
        clips.push(SceneClip {
            scene: sc.index,
            clip: Clip::Frames {
                file,
                fps: info.fps,
                frames: info.frames,
                width: info.width,
                height: info.height,
            },
            blend_out: sc.transition,
            blend_seconds: sc.transition_seconds,
            morph: None,
            audio: Some(audio),
        });
    }
    write_json(
        &ctx.out.join("clips.json"),
        &Clips {
            engine: "recording@1".into(),
            clips,
        },
    )
}

fn camera_clips(ctx: &StageCtx, plan: &Plan) -> Result<(), StageError> {
    let engine = KenBurns;
    // The camera engine does not look at pixels.
    let still = RgbImage::new(1, 1);
    let mut clips = Vec::new();
    for s in &plan.scenes {
        let clip = engine
            .animate(&still, &s.motion, s.seed)
            .map_err(|e| StageError::Engine(format!("scene `{}`: {e}", s.id)))?;
        clips.push(SceneClip {
            scene: s.index,
            clip,
            blend_out: s.transition,
            blend_seconds: s.transition_seconds,
            morph: None,
            audio: None,
        });
    }
    write_json(
        &ctx.out.join("clips.json"),
        &Clips {
            engine: engine.id(),
            clips,
        },
    )
}

/// One clip to generate: conditions (first picture, optional last picture) and length.
struct ClipPlan<'a> {
    scene: &'a PlannedScene,
    label: String,
    first: &'a Path,
    last: Option<&'a Path>,
    frames: usize,
    prompt: String,
    seed: u64,
}

fn generated_clips(ctx: &StageCtx, plan: &Plan) -> Result<(), StageError> {
    let Some(m) = ctx.job.models.video.as_ref() else {
        return camera_clips(ctx, plan);
    };
    let keyframes: Keyframes = read_json(&ctx.input(StageKind::Keyframes)?.file("keyframes.json"))?;
    let kdir = ctx.input(StageKind::Keyframes)?;
    let device = super::keyframes::candle_device(ctx)?;
    let (gw, gh) = generation_size(ctx.job, m);
    let capacity = if device.is_cuda() {
        gpu_capacity(ctx.device)
    } else {
        None
    };
    let load = |m: &crate::engines::video::VideoModelRef| {
        let residency = crate::engines::video::residency_for(
            m,
            window_frames(m) as u32,
            gw as u32,
            gh as u32,
            capacity,
        );
        VideoEngine::load(
            &crate::engines::video::weights_of(m),
            &device,
            ctx.device,
            residency,
        )
        .map_err(|e| StageError::Engine(e.to_string()))
    };
    let engine = load(m)?;
    let rule = engine.rule();
    let fps = m.fps() as f64;
    let n = plan.scenes.len();
    let key_paths: Vec<std::path::PathBuf> = (0..n)
        .map(|i| {
            keyframes
                .frames
                .get(i)
                .map(|k| kdir.file(&k.file))
                .ok_or_else(|| {
                    StageError::data("keyframes.json", format!("no keyframe for scene {i}"))
                })
        })
        .collect::<Result<_, _>>()?;
    let scene_prompt =
        |scene: &PlannedScene| format!("{}, {}", scene.prompt, motion_words(&scene.motion));
    let morph_prompt = |i: usize| {
        format!(
            "{}, transforming into {}, seamless morph",
            plan.scenes[i].prompt,
            plan.scenes[i + 1].prompt
        )
    };
    let morphs: Vec<usize> = (0..n.saturating_sub(1))
        .filter(|&i| plan.scenes[i].transition == Blend::Morph)
        .collect();
    // Morphs are made by the morph model when the job has one (a first-last-frame model),
    // else by the video model.
    let morph_model = ctx.job.models.morph.as_ref().filter(|_| !morphs.is_empty());
    let states = if engine.takes_prompt_states() {
        let mut texts: Vec<String> = plan.scenes.iter().map(scene_prompt).collect();
        if morph_model.is_none() {
            texts.extend(morphs.iter().map(|&i| morph_prompt(i)));
        }
        Some(prompt_states(
            ctx,
            &engine,
            m,
            texts,
            &plan.negative_prompt,
        )?)
    } else {
        None
    };
    let mut clips = Vec::new();
    let mut last_frames: Vec<std::path::PathBuf> = Vec::new();
    for (i, scene) in plan.scenes.iter().enumerate() {
        ctx.check_cancel()?;
        let cp = ClipPlan {
            scene,
            label: format!("scene-{i:03}"),
            first: &key_paths[i],
            last: None,
            frames: rule.frames_for(estimated_seconds(scene), fps),
            prompt: scene_prompt(scene),
            seed: scene.seed,
        };
        let clip = generate(
            ctx,
            &engine,
            m,
            &cp,
            (gw, gh),
            fps,
            &plan.negative_prompt,
            states
                .as_ref()
                .map(|s| s.get(&cp.prompt))
                .transpose()?
                .as_ref(),
            |d| ctx.progress((i as f32 + d) / n as f32),
        )?;
        last_frames.push(clip.1.clone());
        clips.push(SceneClip {
            scene: scene.index,
            clip: clip.0,
            blend_out: scene.transition,
            blend_seconds: scene.transition_seconds,
            morph: None,
            audio: None,
        });
    }
    // Morphs: from a scene's last frame to the next keyframe, over the transition window.
    let morph_engine = match morph_model {
        Some(mm) => {
            drop(engine);
            let e = load(mm)?;
            let s = if e.takes_prompt_states() {
                let texts = morphs.iter().map(|&i| morph_prompt(i)).collect();
                Some(prompt_states(ctx, &e, mm, texts, &plan.negative_prompt)?)
            } else {
                None
            };
            MorphEngine::Own(e, mm, s)
        }
        None => MorphEngine::Video(engine),
    };
    let (m_engine, mm, m_states) = match &morph_engine {
        MorphEngine::Own(e, mm, s) => (e, *mm, s.as_ref()),
        MorphEngine::Video(e) => (e, m, states.as_ref()),
    };
    let m_fps = mm.fps() as f64;
    for &i in &morphs {
        let scene = &plan.scenes[i];
        let cp = ClipPlan {
            scene,
            label: format!("morph-{i:03}"),
            first: &last_frames[i],
            last: Some(&key_paths[i + 1]),
            frames: m_engine
                .rule()
                .frames_for(scene.transition_seconds.max(0.4), m_fps),
            prompt: morph_prompt(i),
            seed: scene.seed ^ 0x6d6f_7270,
        };
        let (clip, _) = generate(
            ctx,
            m_engine,
            mm,
            &cp,
            (gw, gh),
            m_fps,
            &plan.negative_prompt,
            m_states.map(|s| s.get(&cp.prompt)).transpose()?.as_ref(),
            |_| {},
        )?;
        clips[i].morph = Some(clip);
    }
    write_json(
        &ctx.out.join("clips.json"),
        &Clips {
            engine: engine_name(m),
            clips,
        },
    )
}

/// What makes a render's morphs: the job's morph model (with its prompt states), or the video
/// model itself.
enum MorphEngine<'a> {
    Own(
        VideoEngine,
        &'a crate::engines::video::VideoModelRef,
        Option<PromptStates>,
    ),
    Video(VideoEngine),
}

/// A render's prompt states (Wan): every clip's prompt and the negative prompt encoded by
/// umT5 in one load, kept as a cached item (`states.bin`) so a re-render, a resumed task or a
/// changed seed does not load the text encoder again.
struct PromptStates {
    texts: Vec<String>,
    /// `[n + 1, 512, D]`: the texts' states, then the negative prompt's.
    states: candle_core::Tensor,
}

impl PromptStates {
    /// `[2, 512, D]`: `prompt`'s states and the negative prompt's.
    fn get(&self, prompt: &str) -> Result<candle_core::Tensor, StageError> {
        let i = self.texts.iter().position(|t| t == prompt).ok_or_else(|| {
            StageError::Engine(format!("no encoded prompt states for `{prompt}`"))
        })?;
        let n = self.texts.len();
        let err = |e: candle_core::Error| StageError::Engine(format!("prompt states: {e}"));
        candle_core::Tensor::cat(
            &[
                &self.states.narrow(0, i, 1).map_err(err)?,
                &self.states.narrow(0, n, 1).map_err(err)?,
            ],
            0,
        )
        .map_err(err)
    }
}

fn prompt_states(
    ctx: &StageCtx,
    engine: &VideoEngine,
    m: &crate::engines::video::VideoModelRef,
    mut texts: Vec<String>,
    negative: &str,
) -> Result<PromptStates, StageError> {
    texts.sort();
    texts.dedup();
    let params = serde_json::json!({
        "model": (&m.id, &m.fingerprint), "texts": texts, "negative": negative,
    });
    let item = ctx.item("prompt-states", &params, |dir| {
        let mut all: Vec<&str> = texts.iter().map(String::as_str).collect();
        all.push(negative);
        let states = engine
            .encode_prompts(&all)
            .map_err(|e| engine_err("prompts", e))?;
        let bytes = latents_to_bytes(&states).map_err(|e| engine_err("prompts", e))?;
        std::fs::write(dir.join("states.bin"), bytes)
            .map_err(|e| StageError::io(&dir.join("states.bin"), e))
    })?;
    let file = item.join("states.bin");
    let bytes = std::fs::read(&file).map_err(|e| StageError::io(&file, e))?;
    let states = latents_from_bytes(&bytes)
        .filter(|t| t.dims().first() == Some(&(texts.len() + 1)))
        .ok_or_else(|| StageError::data(file.display().to_string(), "not the prompt states"))?;
    Ok(PromptStates { texts, states })
}

/// Generates (or finds in the cache) one clip, placed in the stage's output; returns the clip
/// and the path of a PNG of its last frame.
#[allow(clippy::too_many_arguments)]
fn generate(
    ctx: &StageCtx,
    engine: &VideoEngine,
    m: &crate::engines::video::VideoModelRef,
    cp: &ClipPlan,
    (gw, gh): (usize, usize),
    fps: f64,
    negative: &str,
    states: Option<&candle_core::Tensor>,
    progress: impl Fn(f32),
) -> Result<(Clip, std::path::PathBuf), StageError> {
    let rule = engine.rule();
    let window = window_frames(m);
    let digest = |p: &Path| crate::engines::models::fingerprint_of(p);
    let params = serde_json::json!({
        "model": (&m.id, &m.fingerprint), "prompt": cp.prompt, "negative": negative,
        "seed": cp.seed, "size": [gw, gh], "frames": cp.frames, "fps": fps,
        "first": digest(cp.first), "last": cp.last.map(digest),
        "steps": format!("{:?}", steps_for(m)), "cfg": m.cfg(), "window": window,
        "prompt_tokens": prompt_tokens_setting(),
    });
    let key = crate::pipeline::cache::key(&serde_json::json!({ "item": "clip", "params": params }));
    let key16: String = key.chars().take(16).collect();
    let item = ctx.item("clip", &params, |dir| {
        let first = decode::read_image(cp.first)?;
        let last = cp.last.map(decode::read_image).transpose()?;
        let mut writer = ClipWriter::create(&dir.join("clip.mkv"), gw as u32, gh as u32, fps)?;
        let windows = rule.windows(cp.frames, window, 1);
        let total = windows.len();
        let mut start_image = first;
        for (wi, &(_, frames)) in windows.iter().enumerate() {
            ctx.check_cancel()?;
            let mut conditions = vec![ClipCondition {
                image: start_image.clone(),
                frame: 0,
                strength: 1.0,
            }];
            if let (Some(l), true) = (&last, wi + 1 == total) {
                conditions.push(ClipCondition {
                    image: l.clone(),
                    frame: frames - 1 - (frames - 1) % rule.temporal,
                    strength: 1.0,
                });
            }
            let req = ClipRequest {
                prompt: cp.prompt.clone(),
                negative_prompt: negative.to_string(),
                width: gw,
                height: gh,
                frames,
                fps,
                steps: steps_for(m),
                guidance: m.cfg() as f64,
                seed: cp.seed.wrapping_add(wi as u64),
                conditions,
                prompt_tokens: prompt_tokens_setting(),
                shift: None,
            };
            let name = format!("{}-{key16}-w{wi}.latents", cp.label);
            let saved = ctx
                .load_checkpoint(&name)
                .and_then(|b| latents_from_bytes(&b));
            let latents = match saved {
                Some(l) => {
                    ctx.resumed(&format!(
                        "{} window {}: decoding saved latents",
                        cp.label,
                        wi + 1
                    ));
                    l
                }
                None => {
                    let mut on_step = |done: usize, steps: usize| {
                        progress(
                            (wi as f32 + done as f32 / steps.max(1) as f32 * 0.8) / total as f32,
                        );
                        !ctx.cancel.is_cancelled()
                    };
                    let l = engine
                        .sample(&req, states, &mut on_step)
                        .map_err(|e| engine_err(&cp.scene.id, e))?;
                    let bytes = latents_to_bytes(&l).map_err(|e| engine_err(&cp.scene.id, e))?;
                    ctx.save_checkpoint(
                        &name,
                        &bytes,
                        &format!("{} window {}/{total} sampled", cp.label, wi + 1),
                    )
                    .map_err(|e| StageError::Engine(e.to_string()))?;
                    l
                }
            };
            // Saved latents are a natural stop: a cancel here loses no sampling.
            ctx.check_cancel()?;
            // Windows after the first start on the previous window's last frame: skip it.
            let mut index = 0usize;
            let mut tail: Option<RgbImage> = None;
            // Wan keeps a decode's progress here, so a killed decode continues.
            let mut saved = |done: usize, of: usize| {
                ctx.checkpointed(&format!(
                    "{} window {} decoded {done}/{of}",
                    cp.label,
                    wi + 1
                ))
            };
            let mut resumed = |done: usize| {
                ctx.resumed(&format!("{} window {} decoded {done}", cp.label, wi + 1))
            };
            let resume = ctx.checkpoint_dir().map(|d| DecodeResume {
                dir: d.join(format!("{}-{key16}-w{wi}.decode", cp.label)),
                saved: &mut saved,
                resumed: &mut resumed,
            });
            engine
                .decode(&latents, req.seed, resume, &mut |img: RgbImage| {
                    if ctx.cancel.is_cancelled() {
                        return Err(EngineError::Cancelled);
                    }
                    let keep = wi == 0 || index > 0;
                    index += 1;
                    if keep {
                        writer.push(&img).map_err(|e| EngineError::Failed {
                            engine: "clip".into(),
                            message: e.to_string(),
                        })?;
                    }
                    tail = Some(img);
                    Ok(())
                })
                .map_err(|e| engine_err(&cp.scene.id, e))?;
            start_image = tail.ok_or_else(|| {
                StageError::Engine(format!(
                    "scene `{}`: the decode produced no frames",
                    cp.scene.id
                ))
            })?;
            progress((wi + 1) as f32 / total as f32);
        }
        let info = writer.finish()?;
        crate::media::stills::write_png(&start_image, &dir.join("last.png"))?;
        write_json(
            &dir.join("clip.json"),
            &serde_json::json!({ "frames": info.frames }),
        )
    })?;
    let file = format!("{}.mkv", cp.label);
    place(&item.join("clip.mkv"), &ctx.out.join(&file))?;
    let last = ctx.out.join(format!("{}-last.png", cp.label));
    place(&item.join("last.png"), &last)?;
    let reader = ClipReader::open(&ctx.out.join(&file))?;
    Ok((
        Clip::Frames {
            file,
            fps,
            frames: reader.frames(),
            width: reader.width(),
            height: reader.height(),
        },
        last,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_out_of_memory_is_told_apart() {
        assert!(is_gpu_oom(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"
        ));
        assert!(is_gpu_oom("cudaErrorMemoryAllocation"));
        assert!(!is_gpu_oom("the sampled latents hold 3 NaN values"));
    }

    #[test]
    fn motion_hints_become_words() {
        assert!(motion_words("zoom-in").starts_with("zoom in camera motion"));
        assert!(motion_words("").contains("steady camera"));
    }
}
