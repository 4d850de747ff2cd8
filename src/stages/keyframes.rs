//! keyframes: one still per scene, drawn larger than the frame so the camera can move over it.
//! A scene's `image` from the script is used as given (cropped to fit); otherwise the job's
//! image model draws it (Stable Diffusion / SDXL / FLUX on candle: the plan's prompt with the
//! channel style, the character sheets of the characters in the scene, image-to-image from the
//! leading character's reference, the channel's style LoRAs), or, with no image model, the
//! procedural painter. Each scene's still is a memoised item keyed by what it shows.
//!
//! A model's denoising loop checkpoints its state (latents, sampler history, noise position)
//! into the task's checkpoint directory on a [`Cadence`] (every 5 steps, or after 30 s); an
//! attempt cut short continues the scene it was drawing from there ([`SceneCheckpoints`]) and
//! draws the same picture, while the scenes it had finished are memoised items already.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::captions::{self, AssLayout, Cue};
use reelsmith_diffusion::lora::LoraSpec;

use crate::engines::diffusion::{DiffusionEngine, DrawCheckpoints, Phase};
use crate::engines::procedural::{paint, PaintEngine};
use crate::engines::{EngineError, ImageEngine, ImageInit, ImageRequest};
use crate::media::image::RgbImage;
use crate::media::{decode, stills};
use crate::pipeline::{
    read_json, write_json, JobSpec, Resources, Stage, StageCtx, StageError, StageKind,
};

use super::model::{KeyframeInfo, Keyframes, Plan, PlannedCharacter, PlannedScene};
use super::voice::place;

pub struct KeyframesStage;

/// How much larger than the frame keyframes are painted (room for pans and zooms).
pub const OVERSCAN: f64 = 1.3;

/// The keyframe size for a frame size.
pub fn keyframe_size(width: u32, height: u32) -> (u32, u32) {
    let even = |v: f64| ((v / 2.0).round() as u32) * 2;
    (
        even(width as f64 * OVERSCAN),
        even(height as f64 * OVERSCAN),
    )
}

/// Draws the scene number in a corner with a real font (language-neutral: stills are shared
/// by every language of the video).
fn draw_label(
    img: &RgbImage,
    label: &str,
    dir: &Path,
    light: [u8; 3],
) -> Result<RgbImage, StageError> {
    let mut layout = AssLayout::for_video(img.width, img.height, "en");
    layout.font_size = (img.height / 11).max(12);
    layout.alignment = 9;
    layout.bold = true;
    layout.primary = light;
    layout.outline_colour = [20, 20, 20];
    layout.outline = (img.height as f32 / 250.0).max(1.0);
    layout.shadow = 0.0;
    layout.boxed = false;
    layout.margin_v = img.height / 14;
    layout.margin_h = img.width / 16;
    let cue = Cue {
        start: 0.0,
        end: 3600.0,
        lines: vec![label.to_string()],
    };
    let ass = dir.join("label.ass");
    std::fs::write(&ass, captions::to_ass(&[cue], &layout, "en"))
        .map_err(|e| StageError::io(&ass, e))?;
    let out = stills::draw_ass(img, &ass)?;
    std::fs::remove_file(&ass).map_err(|e| StageError::io(&ass, e))?;
    Ok(out)
}

/// The characters a scene shows, leading one first: its speakers in order of speaking, then
/// those its prompt names.
fn scene_characters<'p>(
    characters: &'p [PlannedCharacter],
    prompt: &str,
    speakers: &[&str],
) -> Vec<&'p PlannedCharacter> {
    let mut out: Vec<&PlannedCharacter> = Vec::new();
    for speaker in speakers {
        if let Some(c) = characters.iter().find(|c| c.id == *speaker) {
            if !out.iter().any(|o| o.id == c.id) {
                out.push(c);
            }
        }
    }
    let prompt = prompt.to_lowercase();
    let names = |c: &PlannedCharacter| {
        [c.id.to_lowercase(), c.name.to_lowercase()]
            .into_iter()
            .filter(|n| !n.is_empty())
            .any(|n| {
                prompt
                    .split(|ch: char| !ch.is_alphanumeric() && ch != '_' && ch != '-')
                    .any(|w| w == n)
                    || (n.contains(' ') && prompt.contains(&n))
            })
    };
    for c in characters {
        if !out.iter().any(|o| o.id == c.id) && names(c) {
            out.push(c);
        }
    }
    out
}

/// Strength of image-to-image from a character's reference picture: enough to follow the
/// scene's prompt, little enough to keep the character recognisable.
pub const REFERENCE_STRENGTH: f32 = 0.7;

/// The image-model request of a scene: the plan's prompt (channel style included) with the
/// character sheets of the characters it shows; the leading character's reference picture
/// and seed when it has them.
fn diffusion_request(plan: &Plan, scene: &PlannedScene, base: ImageRequest) -> ImageRequest {
    let speakers: Vec<&str> = scene.lines.iter().map(|l| l.speaker.as_str()).collect();
    sheet_request(&plan.characters, &scene.prompt, &speakers, base)
}

fn sheet_request(
    characters: &[PlannedCharacter],
    scene_prompt: &str,
    speakers: &[&str],
    base: ImageRequest,
) -> ImageRequest {
    let chars = scene_characters(characters, scene_prompt, speakers);
    let mut prompt = scene_prompt.to_string();
    for c in &chars {
        let sheet = c.look.as_deref().unwrap_or(&c.description).trim();
        if !sheet.is_empty() {
            prompt.push_str(&format!(", {}: {sheet}", c.name));
        }
    }
    let lead = chars.first();
    ImageRequest {
        prompt,
        seed: lead.and_then(|c| c.seed).unwrap_or(base.seed),
        init: lead
            .and_then(|c| c.reference.clone())
            .map(|image| ImageInit {
                image,
                strength: REFERENCE_STRENGTH,
                mask: None,
            }),
        ..base
    }
}

/// The engine id of an image model (and refiner) as reports and keyframes.json show it.
pub fn engine_id(
    m: &crate::engines::diffusion::ImageModelRef,
    refiner: Option<&crate::engines::diffusion::ImageModelRef>,
) -> String {
    match refiner {
        Some(r) => format!("diffusion/{}+{}@1", m.id, r.id),
        None => format!("diffusion/{}@1", m.id),
    }
}

/// A style LoRA's file: absolute, or relative to `<config>/loras/`.
fn lora_path(file: &Path) -> std::path::PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        crate::config::Dirs::resolve(None)
            .config
            .join("loras")
            .join(file)
    }
}

/// The channel's style LoRAs for an architecture, with relative files under `<config>/loras/`.
fn style_loras(ctx: &StageCtx, arch: &str) -> Result<Vec<LoraSpec>, StageError> {
    let mut out = Vec::new();
    for (i, l) in ctx.job.channel.style.loras.iter().enumerate() {
        let family = |a: &str| a.trim_end_matches("-refiner").to_string();
        if !l.arch.is_empty() && !l.arch.iter().any(|a| family(a) == family(arch)) {
            continue;
        }
        let path = lora_path(&l.file);
        if !path.is_file() {
            return Err(StageError::data(
                format!("channel {}: style.loras[{i}].file", ctx.job.channel.name),
                format!("{} does not exist", path.display()),
            ));
        }
        out.push(LoraSpec::new(path, l.weight));
    }
    Ok(out)
}

fn file_digest(path: &Path) -> Result<String, StageError> {
    let bytes = std::fs::read(path).map_err(|e| StageError::io(path, e))?;
    Ok(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)))
}

/// When a loop of steps (denoising steps, frames, chunks) saves a checkpoint: after every
/// `steps`-th step, counted from the start of the loop so that a resumed and an uninterrupted
/// run save at the same steps, or sooner once `interval` has passed since the last save; never
/// after the last step (the result follows at once). Copy it for other long loops.
#[derive(Clone, Debug)]
pub struct Cadence {
    /// Save after every `steps`-th step (0: by time only).
    pub steps: usize,
    /// Save once this long has passed since the last save (slow steps, e.g. on a CPU).
    pub interval: Option<Duration>,
    last: Instant,
}

impl Cadence {
    /// Every 5 steps: ~5 % of a 25-step schedule is the most a crash costs, at one small
    /// write (two latent-sized tensors) per 5 steps.
    pub const STEPS: usize = 5;
    /// …or every 30 s, whichever comes first.
    pub const INTERVAL: Duration = Duration::from_secs(30);
    /// Overrides [`Cadence::STEPS`] (0: only every [`Cadence::INTERVAL`]).
    pub const STEPS_ENV: &'static str = "REELSMITH_CHECKPOINT_STEPS";

    pub fn new(steps: usize, interval: Option<Duration>) -> Self {
        Self {
            steps,
            interval,
            last: Instant::now(),
        }
    }

    /// The defaults, with the step count from `REELSMITH_CHECKPOINT_STEPS` when it is set.
    pub fn from_env() -> Self {
        let steps = std::env::var(Self::STEPS_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(Self::STEPS);
        Self::new(steps, Some(Self::INTERVAL))
    }

    /// Whether to save after step `done` of `total` (1-based); a yes restarts the clock.
    pub fn due(&mut self, done: usize, total: usize) -> bool {
        if done == 0 || done >= total {
            return false;
        }
        let by_steps = self.steps > 0 && done.is_multiple_of(self.steps);
        let by_time = self.interval.is_some_and(|i| self.last.elapsed() >= i);
        if by_steps || by_time {
            self.last = Instant::now();
        }
        by_steps || by_time
    }
}

/// One scene's sampling checkpoints in the task's checkpoint directory: files named by the
/// scene and its item key (`keyframe-003-<key>.base`), reported as "scene 3 step 10/20". The
/// pattern for any stage that runs a resumable loop per item: the engine encodes its state,
/// this adapter stores it through [`StageCtx::save_checkpoint`] on a [`Cadence`] and reports
/// [`StageCtx::resumed`] when an attempt continues from it.
pub struct SceneCheckpoints<'c, 'a> {
    ctx: &'c StageCtx<'a>,
    /// 1-based, as the user counts scenes.
    scene: usize,
    item_key: String,
    cadence: Cadence,
    enabled: bool,
}

impl<'c, 'a> SceneCheckpoints<'c, 'a> {
    pub fn new(ctx: &'c StageCtx<'a>, scene: usize, item_key: &str, cadence: Cadence) -> Self {
        Self {
            ctx,
            scene,
            item_key: item_key.chars().take(16).collect(),
            cadence,
            enabled: ctx.checkpoint_dir().is_some(),
        }
    }

    fn name(&self, phase: Phase) -> String {
        format!(
            "keyframe-{:03}-{}.{}",
            self.scene,
            self.item_key,
            phase.as_str()
        )
    }

    fn label(&self, phase: Phase, done: usize, total: usize) -> String {
        match phase {
            Phase::Base => format!("scene {} step {done}/{total}", self.scene),
            Phase::Refiner => format!("scene {} refiner step {done}/{total}", self.scene),
        }
    }
}

impl DrawCheckpoints for SceneCheckpoints<'_, '_> {
    fn load(&mut self, phase: Phase) -> Option<Vec<u8>> {
        self.ctx.load_checkpoint(&self.name(phase))
    }

    fn due(&mut self, done: usize, total: usize) -> bool {
        // Without a checkpoint directory (outside a task) nothing is encoded.
        self.enabled && self.cadence.due(done, total)
    }

    fn save(
        &mut self,
        phase: Phase,
        bytes: &[u8],
        done: usize,
        total: usize,
    ) -> Result<(), String> {
        self.ctx
            .save_checkpoint(&self.name(phase), bytes, &self.label(phase, done, total))
            .map_err(|e| e.to_string())
    }

    fn resumed(&mut self, phase: Phase, done: usize, total: usize) {
        self.ctx.resumed(&self.label(phase, done, total));
    }
}

/// The device a model-backed task was placed on.
pub(super) fn candle_device(ctx: &StageCtx) -> Result<candle_core::Device, StageError> {
    match ctx.device {
        None => Ok(candle_core::Device::Cpu),
        Some(i) => candle_core::Device::new_cuda(i as usize)
            .map_err(|e| StageError::Engine(format!("GPU {i}: {e}"))),
    }
}

impl Stage for KeyframesStage {
    fn kind(&self) -> StageKind {
        StageKind::Keyframes
    }

    fn builtin_engine(&self) -> String {
        PaintEngine.id()
    }

    fn engine(&self, job: &JobSpec) -> String {
        match &job.models.image {
            Some(m) => engine_id(m, job.models.refiner.as_ref()),
            None => self.builtin_engine(),
        }
    }

    fn params(&self, job: &JobSpec, _lang: Option<&str>) -> serde_json::Value {
        let model = job.models.image.as_ref().map(|m| (&m.id, &m.fingerprint));
        let refiner = job.models.refiner.as_ref().map(|m| (&m.id, &m.fingerprint));
        // Pictures are keyed by content, LoRAs (hundreds of MB) by size and time: one edited
        // in place redraws.
        let digest = |p: &Path| file_digest(p).ok();
        let references: Vec<_> = job
            .script
            .characters
            .iter()
            .map(|c| c.reference.as_deref().map(digest))
            .collect();
        let images: Vec<_> = job
            .script
            .scenes
            .iter()
            .map(|s| s.image.as_deref().map(digest))
            .collect();
        let loras: Vec<_> = job
            .channel
            .style
            .loras
            .iter()
            .map(|l| {
                (
                    crate::engines::models::fingerprint_of(&lora_path(&l.file)),
                    l.weight,
                    &l.arch,
                )
            })
            .collect();
        serde_json::json!({
            "size": keyframe_size(job.settings.width, job.settings.height),
            "image_model": model,
            "refiner": refiner,
            "loras": loras,
            "references": references,
            "images": images,
        })
    }

    fn resources(&self, job: &JobSpec) -> Resources {
        match &job.models.image {
            None => Resources::default(),
            Some(m) => Resources {
                cpu_slots: 2,
                ram_bytes: 0,
                // Placed on a GPU only when this build can run one; the refiner stays loaded
                // beside the base model.
                vram_bytes: if candle_core::utils::cuda_is_available() {
                    m.vram_bytes + job.models.refiner.as_ref().map_or(0, |r| r.vram_bytes)
                } else {
                    0
                },
                model: Some(m.id.clone()),
            },
        }
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let (kw, kh) = keyframe_size(ctx.job.settings.width, ctx.job.settings.height);
        let painter = PaintEngine;
        let diffusion = match &ctx.job.models.image {
            None => None,
            Some(m) => {
                let loras = style_loras(ctx, &m.arch)?;
                let device = candle_device(ctx)?;
                let refiner = ctx.job.models.refiner.as_ref();
                let engine = DiffusionEngine::load(m, refiner, &loras, &device, ctx.device)
                    .map_err(|e| StageError::Engine(e.to_string()))?;
                let digests: Vec<_> = loras
                    .iter()
                    .map(|l| (crate::engines::models::fingerprint_of(&l.path), l.weight))
                    .collect();
                Some((engine, digests))
            }
        };
        let engine: &dyn ImageEngine = match &diffusion {
            Some((e, _)) => e,
            None => &painter,
        };
        let n = plan.scenes.len();
        let light = plan
            .palette
            .iter()
            .copied()
            .max_by_key(|c| c[0] as u32 * 2 + c[1] as u32 * 5 + c[2] as u32)
            .unwrap_or([255, 255, 255]);
        let mut frames = Vec::new();
        for (i, scene) in plan.scenes.iter().enumerate() {
            ctx.check_cancel()?;
            let label = format!("{:02}", i + 1);
            let file = format!("scene-{i:03}.png");
            let (params, source) = match (&scene.image, &scene.source) {
                (_, Some(src)) => (
                    serde_json::json!({ "recording": src.key, "t": src.peak, "size": [kw, kh] }),
                    "recording",
                ),
                (Some(path), None) => {
                    let digest = file_digest(path)?;
                    (
                        serde_json::json!({ "image": digest, "size": [kw, kh] }),
                        "script image",
                    )
                }
                (None, None) => {
                    let base = ImageRequest {
                        prompt: scene.prompt.clone(),
                        negative_prompt: plan.negative_prompt.clone(),
                        width: kw,
                        height: kh,
                        seed: scene.seed,
                        look: plan.look.clone(),
                        palette: plan.palette.clone(),
                        motifs: scene.motifs.clone(),
                        scene_index: i,
                        scene_count: n,
                        init: None,
                        sampling: None,
                    };
                    match &diffusion {
                        None => (
                            serde_json::json!({ "engine": engine.id(), "request": base, "label": label }),
                            "painted",
                        ),
                        Some((_, loras)) => {
                            let req = diffusion_request(&plan, scene, base);
                            let reference = match &req.init {
                                Some(init) => Some(file_digest(&init.image)?),
                                None => None,
                            };
                            let models = (
                                ctx.job.models.image.as_ref().map(|m| &m.fingerprint),
                                ctx.job.models.refiner.as_ref().map(|m| &m.fingerprint),
                            );
                            (
                                serde_json::json!({ "engine": engine.id(), "weights": models,
                                    "request": req, "reference": reference, "loras": loras }),
                                "generated",
                            )
                        }
                    }
                }
            };
            let item = ctx.item("keyframe", &params, |dir| {
                let img = match (&scene.image, &scene.source) {
                    // A highlight's keyframe is its best moment (the thumbnail's picture).
                    (_, Some(src)) => stills::cover(
                        &crate::media::scan::frame_near(&src.path, src.peak)?,
                        kw,
                        kh,
                    ),
                    (Some(path), None) => stills::cover(&decode::read_image(path)?, kw, kh),
                    (None, None) => {
                        let req: ImageRequest = serde_json::from_value(params["request"].clone())
                            .map_err(|e| StageError::Engine(e.to_string()))?;
                        let mut progress = |done: usize, total: usize| {
                            ctx.progress((i as f32 + done as f32 / total.max(1) as f32) / n as f32);
                            !ctx.cancel.is_cancelled()
                        };
                        let drawn = match &diffusion {
                            Some((d, _)) => {
                                // Checkpoints are named by the item's key: another picture
                                // never continues this one's latents.
                                let key = crate::pipeline::cache::key(
                                    &serde_json::json!({ "item": "keyframe", "params": params }),
                                );
                                let mut ckpt =
                                    SceneCheckpoints::new(ctx, i + 1, &key, Cadence::from_env());
                                d.generate_checkpointed(&req, &mut progress, Some(&mut ckpt))
                            }
                            None => engine.generate_with(&req, &mut progress),
                        };
                        let img = drawn.map_err(|e| match e {
                            EngineError::Cancelled => StageError::Cancelled,
                            e => StageError::Engine(e.to_string()),
                        })?;
                        if diffusion.is_some() {
                            img
                        } else {
                            draw_label(&img, &label, dir, light)?
                        }
                    }
                };
                stills::write_png(&img, &dir.join("keyframe.png"))?;
                std::fs::write(
                    dir.join("strength"),
                    paint::visual_strength(&img).to_string(),
                )
                .map_err(|e| StageError::io(dir, e))?;
                Ok(())
            })?;
            place(&item.join("keyframe.png"), &ctx.out.join(&file))?;
            let strength = std::fs::read_to_string(item.join("strength"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0.0);
            frames.push(KeyframeInfo {
                scene: i,
                file,
                width: kw,
                height: kh,
                strength,
                source: source.into(),
            });
            ctx.progress((i + 1) as f32 / n as f32);
        }
        write_json(
            &ctx.out.join("keyframes.json"),
            &Keyframes {
                engine: engine.id(),
                frames,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cadence_saves_on_whole_multiples_and_never_after_the_last_step() {
        let mut c = Cadence::new(5, None);
        let due: Vec<usize> = (1..=20).filter(|&k| c.due(k, 20)).collect();
        assert_eq!(due, [5, 10, 15]);
        // A resumed loop saves at the same steps as an uninterrupted one.
        let mut c = Cadence::new(5, None);
        assert_eq!(
            (11..=20).filter(|&k| c.due(k, 20)).collect::<Vec<_>>(),
            [15]
        );
        // A short schedule is never interrupted for a save.
        let mut c = Cadence::new(5, None);
        assert!(!(1..=4).any(|k| c.due(k, 4)));
        // By time: a zero interval saves after every step but the last.
        let mut c = Cadence::new(0, Some(Duration::ZERO));
        assert_eq!((1..=4).filter(|&k| c.due(k, 4)).count(), 3);
    }

    fn character(
        id: &str,
        look: &str,
        seed: Option<u64>,
        reference: Option<&str>,
    ) -> PlannedCharacter {
        PlannedCharacter {
            id: id.into(),
            name: id.to_uppercase(),
            description: format!("{id} as described"),
            variant: "m3".into(),
            pitch: None,
            rate: None,
            speaker: None,
            length_scale: None,
            noise_scale: None,
            noise_w: None,
            look: (!look.is_empty()).then(|| look.to_string()),
            reference: reference.map(Into::into),
            seed,
        }
    }

    fn cast() -> Vec<PlannedCharacter> {
        vec![
            character(
                "aki",
                "red scarf, short black hair",
                Some(77),
                Some("/refs/aki.png"),
            ),
            character("bo", "", None, None),
            character("cy", "tall, silver armour", Some(5), None),
        ]
    }

    fn base(seed: u64) -> ImageRequest {
        ImageRequest {
            prompt: String::new(),
            negative_prompt: "blurry".into(),
            width: 640,
            height: 360,
            seed,
            look: "anime".into(),
            palette: vec![],
            motifs: vec![],
            scene_index: 0,
            scene_count: 1,
            init: None,
            sampling: None,
        }
    }

    #[test]
    fn the_leading_character_is_the_first_speaker_then_the_prompt_names() {
        let cast = cast();
        let ids = |prompt: &str, speakers: &[&str]| -> Vec<String> {
            scene_characters(&cast, prompt, speakers)
                .iter()
                .map(|c| c.id.clone())
                .collect()
        };
        assert_eq!(
            ids("cy stands on a hill with bo", &["bo", "aki", "bo"]),
            ["bo", "aki", "cy"]
        );
        assert!(ids("a quiet harbour at dawn", &[]).is_empty());
        // Names match whole words only ("bold" is not Bo).
        assert!(ids("bold colours", &[]).is_empty());
    }

    #[test]
    fn character_sheets_shape_the_request() {
        let cast = cast();
        // Aki leads: her sheet, seed and reference; Cy is named in the prompt: his sheet.
        let req = sheet_request(
            &cast,
            "anime key visual, aki meets cy",
            &["aki"],
            base(1234),
        );
        assert!(
            req.prompt.starts_with("anime key visual, aki meets cy"),
            "{}",
            req.prompt
        );
        assert!(
            req.prompt.contains("AKI: red scarf, short black hair"),
            "{}",
            req.prompt
        );
        assert!(
            req.prompt.contains("CY: tall, silver armour"),
            "{}",
            req.prompt
        );
        assert_eq!(req.seed, 77);
        let init = req.init.expect("image-to-image from the reference");
        assert_eq!(init.image, std::path::PathBuf::from("/refs/aki.png"));
        assert_eq!(init.strength, REFERENCE_STRENGTH);
        // Bo leads (no look: his description; no seed or reference): the scene's own seed.
        let req = sheet_request(&cast, "bo alone", &["bo"], base(1234));
        assert!(req.prompt.contains("BO: bo as described"), "{}", req.prompt);
        assert_eq!((req.seed, req.init.is_none()), (1234, true));
    }
}
