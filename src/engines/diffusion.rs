//! Image models (Stable Diffusion 1.5 / 2.1 / Turbo, SDXL / Turbo / refiner, FLUX.1-schnell)
//! from the registry, run by `reelsmith_diffusion` on candle.
//!
//! A model folder holds what the registry lists: a single-file checkpoint (or FLUX's parts),
//! `tokenizer/` (CLIP BPE: `vocab.json` + `merges.txt`) and for FLUX `tokenizer_2/spiece.model`;
//! companions named by `requires` (FLUX's text encoders) are looked for in their own folders.
//! A folder may also carry diffusers `unet|transformer|vae|text_encoder|text_encoder_2/config.json`
//! files: they replace the built-in configs (fine-tunes with other shapes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use reelsmith_diffusion::arch::{self, Arch};
use reelsmith_diffusion::lora::LoraSpec;
use reelsmith_diffusion::model::{self as dm, Model, ModelFiles};
use reelsmith_diffusion::pipeline::{InitImage, Step};
use reelsmith_diffusion::resume::{LoopState, Resume};
use reelsmith_diffusion::scheduler::SamplerKind;
use serde::{Deserialize, Serialize};

use super::loaded::{self, ModelKey};
use super::{EngineError, ImageEngine, ImageRequest};
use crate::hub::{import, HubConfig, ModelEntry, ModelKind, Registry};
use crate::media::image::RgbImage;

/// An installed image model a job draws with (part of the keyframes' cache keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageModelRef {
    pub id: String,
    /// The model's folder.
    pub dir: PathBuf,
    /// Companion folders (`requires`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<PathBuf>,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// sha256 of the weights when the registry knows them, else sizes and times.
    pub fingerprint: String,
    /// GPU memory to draw one image at the model's native size (what keyframes draw at), from
    /// the registry's estimate (`hub::vram`); the scheduler admits by it.
    #[serde(default)]
    pub vram_bytes: u64,
    /// The registry's default sampler/steps/guidance (else the architecture's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<crate::hub::registry::SamplingDefault>,
}

fn fingerprint(m: &ModelEntry, dir: &Path) -> String {
    let parts: Vec<String> = m
        .files
        .iter()
        .map(|f| {
            f.sha256
                .clone()
                .unwrap_or_else(|| super::models::fingerprint_of(&dir.join(&f.path)))
        })
        .collect();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(parts.join(",").as_bytes());
    hex::encode(&digest[..12])
}

/// The installed model `m` as a job reference, or why it cannot be used.
fn reference(reg: &Registry, cfg: &HubConfig, m: &ModelEntry) -> Result<ImageModelRef, String> {
    if !import::runnable_image(m) {
        return Err(format!(
            "{} ({} {}) is not an image model reelsmith runs; use one of: {}",
            m.id,
            m.format,
            m.arch,
            reg.models()
                .iter()
                .filter(|m| import::runnable_image(m))
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let dir = import::local_dir(cfg, m).ok_or_else(|| {
        format!(
            "{} is not installed: `reelsmith models pull {}`",
            m.id, m.id
        )
    })?;
    let companions = import::companion_dirs(reg, cfg, m)?;
    let native = arch::builtin(&m.arch, m.variant.as_deref())
        .map(|a| a.native as u32)
        .unwrap_or(1024);
    let size = crate::hub::vram::JobSize {
        width: native,
        height: native,
        batch: 1,
        ..Default::default()
    };
    Ok(ImageModelRef {
        id: m.id.clone(),
        vram_bytes: crate::hub::vram::estimate(m, &size),
        fingerprint: fingerprint(m, &dir),
        dir,
        companions,
        arch: m.arch.clone(),
        variant: m.variant.clone(),
        sampling: m.sampling.clone(),
    })
}

/// The model a setting names, as [`import::resolve`] reads names (installed models first, case
/// aside, file names too); `field` is where the setting came from, for errors.
pub fn find_image_model(
    reg: &Registry,
    cfg: &HubConfig,
    value: &str,
    field: &str,
) -> Result<ImageModelRef, String> {
    let m = import::resolve(reg, cfg, value, ModelKind::Image, &["safetensors"])
        .map_err(|e| format!("{field}: {e}"))?
        .entry;
    reference(reg, cfg, m).map_err(|e| format!("{field}: {e}"))
}

/// `auto`: the first installed runnable model in registry order. Without a GPU only Turbo
/// variants are picked (one or a few steps; a 25-step model takes minutes per keyframe on a
/// CPU) — name another model explicitly to use it anyway.
pub fn auto_image_model(reg: &Registry, cfg: &HubConfig, gpu: bool) -> Option<ImageModelRef> {
    reg.models()
        .iter()
        .filter(|m| import::runnable_image(m))
        .filter(|m| gpu || m.variant.as_deref() == Some("turbo"))
        .find_map(|m| reference(reg, cfg, m).ok())
}

/// The `.safetensors` files directly in `dir`, sorted by name.
fn safetensors_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
        .collect();
    found.sort();
    Ok(found)
}

/// Files named `name` under any of `dirs` (first match).
fn find_in(dirs: &[&Path], rel: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(rel)).find(|p| p.exists())
}

/// The architecture (with any folder configs applied) and files of an installed model.
pub fn model_files(m: &ImageModelRef) -> Result<(Arch, ModelFiles), String> {
    let mut arch = arch::builtin(&m.arch, m.variant.as_deref())
        .ok_or_else(|| format!("{}: unknown image architecture {}", m.id, m.arch))?;
    for net in [
        "unet",
        "transformer",
        "vae",
        "text_encoder",
        "text_encoder_2",
    ] {
        let p = m.dir.join(net).join("config.json");
        if p.is_file() {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            arch.configs[net] = v;
        }
    }
    // A folder's UNet config gives the native size: sample_size latents × the VAE's factor.
    if let (Some(sample), Some(blocks)) = (
        arch.configs["unet"]["sample_size"].as_u64(),
        arch.configs["vae"]["block_out_channels"].as_array(),
    ) {
        arch.native = sample as usize * (1 << blocks.len().saturating_sub(1));
    }
    let mut dirs: Vec<&Path> = vec![&m.dir];
    dirs.extend(m.companions.iter().map(PathBuf::as_path));
    if m.dir.join("transformer/config.json").is_file() {
        return Err(format!(
            "{}: FLUX diffusers folders (transformer/ with diffusers names) are not supported; \
             use the BFL single file flux1-schnell.safetensors (`reelsmith models pull flux1-schnell`)",
            m.id
        ));
    }
    // A diffusers folder: each network's weights in its own folder.
    let mut per_network = std::collections::BTreeMap::new();
    for net in ["unet", "vae", "text_encoder", "text_encoder_2"] {
        let d = m.dir.join(net);
        if !d.join("config.json").is_file() {
            continue;
        }
        // Both precisions may be there (`*.fp16.safetensors` sorts first): one is enough.
        if let Some(first) = safetensors_in(&d)?.into_iter().next() {
            per_network.insert(net.to_string(), vec![first]);
        }
    }
    let mut weights = Vec::new();
    for d in &dirs {
        let mut found = safetensors_in(d)?;
        // FLUX's T5 comes as fp16 or fp8: one is enough (the first by name: fp16 < fp8).
        let mut t5 = false;
        found.retain(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with("t5xxl") {
                let keep = !t5;
                t5 = true;
                keep
            } else {
                true
            }
        });
        weights.extend(found);
    }
    if weights.is_empty() && per_network.is_empty() {
        return Err(format!(
            "{}: no .safetensors weights in {}",
            m.id,
            m.dir.display()
        ));
    }
    if let Some(s) = &m.sampling {
        arch.defaults = arch::SamplingDefaults {
            sampler: SamplerKind::parse(&s.sampler).ok_or_else(|| {
                format!(
                    "{}: registry sampling.sampler {} is unknown",
                    m.id, s.sampler
                )
            })?,
            steps: s.steps.max(1) as usize,
            cfg: f64::from(s.cfg),
        };
    }
    let clip_tokenizer = find_in(&dirs, "tokenizer/vocab.json")
        .or_else(|| find_in(&dirs, "tokenizer_2/vocab.json"))
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .or_else(|| find_in(&dirs, "tokenizer/bpe_simple_vocab_16e6.txt.gz"))
        .or_else(|| find_in(&dirs, "bpe_simple_vocab_16e6.txt.gz"))
        .ok_or_else(|| {
            format!(
                "{}: the CLIP tokenizer is missing (tokenizer/vocab.json + merges.txt in {}); \
                 `reelsmith models pull {}` fetches it",
                m.id,
                m.dir.display(),
                m.id
            )
        })?;
    let t5_tokenizer = find_in(&dirs, "tokenizer_2/spiece.model")
        .or_else(|| find_in(&dirs, "tokenizer_2/tokenizer.json"));
    Ok((
        arch,
        ModelFiles {
            weights,
            per_network,
            clip_tokenizer,
            t5_tokenizer,
        },
    ))
}

/// Share of the schedule the SDXL refiner redraws (image-to-image over the base's drawing).
pub const REFINER_STRENGTH: f64 = 0.3;

/// A loaded model, with the SDXL refiner when the job has one.
pub struct DiffusionEngine {
    id: String,
    model: Arc<Model>,
    refiner: Option<(String, Arc<Model>)>,
}

fn load_model(
    m: &ImageModelRef,
    loras: &[LoraSpec],
    device: &Device,
    device_index: Option<u32>,
) -> Result<Arc<Model>, EngineError> {
    let fail = |message: String| EngineError::Failed {
        engine: m.id.clone(),
        message,
    };
    let (arch, files) = model_files(m).map_err(fail)?;
    let lora_key: Vec<String> = loras
        .iter()
        .map(|l| format!("{}*{}", l.path.display(), l.weight))
        .collect();
    let key = ModelKey {
        model: format!("{}#{}|{}", m.id, m.fingerprint, lora_key.join(",")),
        device: device_index,
        dtype: format!("{:?}", dm::run_dtype(arch.family, device)),
    };
    let bytes = weight_bytes(&files);
    loaded::shared(&key, bytes, || {
        Model::load(arch, &files, loras, device).map_err(|e| fail(e.to_string()))
    })
}

/// Rough host memory of a loaded model: the size of its weight files (f32 on the CPU doubles
/// f16 files; counted once, the cache only needs an order of magnitude).
fn weight_bytes(files: &ModelFiles) -> u64 {
    files
        .weights
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

impl DiffusionEngine {
    /// Loads (or reuses) `m` with `loras` on `device`, and the refiner (without LoRAs: style
    /// LoRAs are made for the base model).
    pub fn load(
        m: &ImageModelRef,
        refiner: Option<&ImageModelRef>,
        loras: &[LoraSpec],
        device: &Device,
        device_index: Option<u32>,
    ) -> Result<Self, EngineError> {
        let model = load_model(m, loras, device, device_index)?;
        let refiner = match refiner {
            Some(r) => Some((r.id.clone(), load_model(r, &[], device, device_index)?)),
            None => None,
        };
        Ok(Self {
            id: m.id.clone(),
            model,
            refiner,
        })
    }

    /// The size to draw at for an output of `width`×`height`: the model's native area at the
    /// output's aspect ratio, in whole latent blocks (the still is then scaled to the output).
    pub fn draw_size(&self, width: u32, height: u32) -> (usize, usize) {
        draw_size(&self.model, width, height)
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
}

fn draw_size(model: &Model, width: u32, height: u32) -> (usize, usize) {
    let native = model.arch.native as f64;
    let m = model.pipeline.size_multiple().max(8) as f64;
    let aspect = width as f64 / height.max(1) as f64;
    let h = (native / aspect.sqrt() / m).round().max(1.0) * m;
    let w = (native * aspect.sqrt() / m).round().max(1.0) * m;
    (w as usize, h as usize)
}

/// Which sampling run of a drawing a checkpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The model's own run.
    Base,
    /// The SDXL refiner's run over the base's picture.
    Refiner,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Base => "base",
            Phase::Refiner => "refiner",
        }
    }
}

/// Where a drawing keeps the checkpoints of its sampling loops, and how often it saves: the
/// keyframes stage hands in one per scene, backed by the task's checkpoint directory
/// (`stages::keyframes::SceneCheckpoints`). The engine encodes and decodes the states
/// ([`LoopState`]); this side only stores bytes and reports.
pub trait DrawCheckpoints {
    /// The state an earlier attempt saved for `phase`, if any.
    fn load(&mut self, phase: Phase) -> Option<Vec<u8>>;
    /// Whether to save the state after step `done` of `total`.
    fn due(&mut self, done: usize, total: usize) -> bool;
    /// Keeps `bytes`, `phase`'s state after step `done` of `total`.
    fn save(&mut self, phase: Phase, bytes: &[u8], done: usize, total: usize)
        -> Result<(), String>;
    /// The drawing continues from `phase`'s state after step `done` of `total`.
    fn resumed(&mut self, phase: Phase, done: usize, total: usize);
}

/// A shorter-lived `ckpt` to lend out (a trait object behind `&mut` needs the explicit cast).
fn reborrow<'s>(
    ckpt: &'s mut Option<&mut dyn DrawCheckpoints>,
) -> Option<&'s mut dyn DrawCheckpoints> {
    match ckpt {
        Some(c) => Some(&mut **c),
        None => None,
    }
}

/// The state `ckpt` holds for `phase` if it continues `request` on `model`; one that cannot be
/// read or belongs to another run is ignored (logged), and the run starts over.
fn saved_state(
    ckpt: &mut dyn DrawCheckpoints,
    phase: Phase,
    model: &Model,
    request: &dm::Request,
    init: Option<&InitImage>,
    engine: &str,
) -> Option<LoopState> {
    let bytes = ckpt.load(phase)?;
    let state = LoopState::decode(&bytes, &model.pipeline.device)
        .and_then(|s| model.check_resume(request, init, &s).map(|()| s));
    match state {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(
                "{engine}: not resuming from the {} checkpoint: {e}",
                phase.as_str()
            );
            None
        }
    }
}

/// One sampling run reporting its steps; a stop asked for by `progress` is `Cancelled`. It
/// starts from `from` when given and saves its state into `ckpt` when that says it is due.
#[allow(clippy::too_many_arguments)]
fn draw(
    model: &Model,
    request: &dm::Request,
    init: Option<&InitImage>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
    engine: &str,
    what: &str,
    from: Option<LoopState>,
    mut ckpt: Option<&mut dyn DrawCheckpoints>,
    phase: Phase,
) -> Result<candle_core::Tensor, EngineError> {
    let mut cancelled = false;
    let mut save = |s: &LoopState| -> reelsmith_diffusion::pipeline::Result<()> {
        let Some(c) = ckpt.as_deref_mut() else {
            return Ok(());
        };
        if !c.due(s.done, s.total) {
            return Ok(());
        }
        let bytes = s.encode()?;
        c.save(phase, &bytes, s.done, s.total).map_err(|m| {
            reelsmith_diffusion::pipeline::Error::Invalid(format!("saving a checkpoint: {m}"))
        })
    };
    let resume = Resume {
        from,
        on_state: Some(&mut save),
    };
    let result = model.generate_resumable(
        request,
        init,
        &mut |step: Step| {
            let go = progress(step.done, step.total);
            cancelled = !go;
            go
        },
        resume,
    );
    match result {
        Ok((images, _cut)) => Ok(images),
        Err(_) if cancelled => Err(EngineError::Cancelled),
        Err(e) => Err(EngineError::Failed {
            engine: engine.to_string(),
            message: format!("{what}{e}"),
        }),
    }
}

fn read_rgb(path: &Path, width: usize, height: usize) -> Result<RgbImage, EngineError> {
    let img = crate::media::decode::read_image(path).map_err(|e| EngineError::Failed {
        engine: "image".into(),
        message: format!("{}: {e}", path.display()),
    })?;
    Ok(crate::media::stills::cover(
        &img,
        width as u32,
        height as u32,
    ))
}

impl ImageEngine for DiffusionEngine {
    fn id(&self) -> String {
        match &self.refiner {
            Some((r, _)) => format!("diffusion/{}+{r}@1", self.id),
            None => format!("diffusion/{}@1", self.id),
        }
    }

    fn generate(&self, req: &ImageRequest) -> Result<RgbImage, EngineError> {
        self.generate_with(req, &mut |_, _| true)
    }

    fn generate_with(
        &self,
        req: &ImageRequest,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<RgbImage, EngineError> {
        self.generate_checkpointed(req, progress, None)
    }
}

impl DiffusionEngine {
    /// [`ImageEngine::generate_with`] that checkpoints its sampling loops into `ckpt` and
    /// continues from what an earlier attempt saved there: the picture is the same as an
    /// uninterrupted run's (bit for bit on the CPU). With a refiner, a refiner checkpoint means
    /// the base run had finished: it is not redrawn.
    pub fn generate_checkpointed(
        &self,
        req: &ImageRequest,
        progress: &mut dyn FnMut(usize, usize) -> bool,
        mut ckpt: Option<&mut dyn DrawCheckpoints>,
    ) -> Result<RgbImage, EngineError> {
        let fail = |message: String| EngineError::Failed {
            engine: self.id(),
            message,
        };
        let (w, h) = self.draw_size(req.width, req.height);
        let model = &self.model;
        let dev = model.pipeline.device.clone();
        let init = match &req.init {
            None => None,
            Some(i) => {
                let image = read_rgb(&i.image, w, h)?;
                let image =
                    dm::from_rgb8(&image.data, w, h, &dev).map_err(|e| fail(e.to_string()))?;
                let mask = match &i.mask {
                    None => None,
                    Some(p) => {
                        let m = read_rgb(p, w, h)?;
                        let t =
                            dm::from_rgb8(&m.data, w, h, &dev).map_err(|e| fail(e.to_string()))?;
                        Some(t.narrow(1, 0, 1).map_err(|e| fail(e.to_string()))?)
                    }
                };
                Some(InitImage {
                    image,
                    strength: i.strength as f64,
                    mask,
                })
            }
        };
        let s = req.sampling.clone().unwrap_or_default();
        let sampler = match &s.sampler {
            None => None,
            Some(name) => Some(SamplerKind::parse(name).ok_or_else(|| {
                fail(format!(
                    "unknown sampler {name}: use ddim, euler, euler_a, dpmpp_2m or flow"
                ))
            })?),
        };
        let request = dm::Request {
            prompt: req.prompt.clone(),
            negative: (!req.negative_prompt.trim().is_empty()).then(|| req.negative_prompt.clone()),
            width: w,
            height: h,
            seed: req.seed,
            batch: 1,
            sampler,
            steps: s.steps.map(|v| v as usize),
            cfg: s.cfg.map(f64::from),
        };
        let id = self.id();
        let refiner_request = dm::Request {
            sampler: None,
            steps: None,
            cfg: None,
            ..request.clone()
        };
        let refiner_from = match (&self.refiner, ckpt.as_deref_mut()) {
            (Some((_, r)), Some(c)) => {
                saved_state(c, Phase::Refiner, r, &refiner_request, None, &id)
            }
            _ => None,
        };
        let mut images = None;
        if let (Some(s), Some(c)) = (&refiner_from, ckpt.as_deref_mut()) {
            c.resumed(Phase::Refiner, s.done, s.total);
        } else {
            let from = ckpt
                .as_deref_mut()
                .and_then(|c| saved_state(c, Phase::Base, model, &request, init.as_ref(), &id));
            if let (Some(s), Some(c)) = (&from, ckpt.as_deref_mut()) {
                c.resumed(Phase::Base, s.done, s.total);
            }
            images = Some(draw(
                model,
                &request,
                init.as_ref(),
                progress,
                &id,
                "",
                from,
                reborrow(&mut ckpt),
                Phase::Base,
            )?);
        }
        if let Some((_, refiner)) = &self.refiner {
            let init = images.take().map(|image| InitImage {
                image,
                strength: REFINER_STRENGTH,
                mask: None,
            });
            images = Some(draw(
                refiner,
                &refiner_request,
                init.as_ref(),
                progress,
                &id,
                "refiner: ",
                refiner_from,
                reborrow(&mut ckpt),
                Phase::Refiner,
            )?);
        }
        let images = images.ok_or_else(|| fail("nothing was drawn".into()))?;
        let rgb = dm::to_rgb8(&images).map_err(|e| fail(e.to_string()))?;
        let img = RgbImage {
            width: w as u32,
            height: h as u32,
            data: rgb.into_iter().next().unwrap_or_default(),
        };
        Ok(crate::media::stills::cover(&img, req.width, req.height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_ref(dir: &Path) -> ImageModelRef {
        ImageModelRef {
            id: "m".into(),
            dir: dir.to_path_buf(),
            companions: vec![],
            arch: "sd15".into(),
            variant: None,
            fingerprint: "f".into(),
            vram_bytes: 0,
            sampling: Some(crate::hub::registry::SamplingDefault {
                sampler: "euler".into(),
                steps: 12,
                cfg: 4.5,
            }),
        }
    }

    #[test]
    fn single_file_and_diffusers_folders_are_laid_out_for_the_loader() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("tokenizer")).unwrap();
        std::fs::write(d.join("tokenizer/vocab.json"), "{}").unwrap();
        // No weights yet: a clear error.
        let e = model_files(&model_ref(d)).unwrap_err();
        assert!(e.contains("no .safetensors weights"), "{e}");
        // A single-file checkpoint.
        std::fs::write(d.join("v1-5.safetensors"), "x").unwrap();
        let (arch, files) = model_files(&model_ref(d)).unwrap();
        assert_eq!(files.weights, vec![d.join("v1-5.safetensors")]);
        assert!(files.per_network.is_empty());
        assert_eq!(files.clip_tokenizer, d.join("tokenizer"));
        // The registry's sampling replaces the architecture's.
        assert_eq!(
            (
                arch.defaults.sampler,
                arch.defaults.steps,
                arch.defaults.cfg
            ),
            (SamplerKind::Euler, 12, 4.5)
        );
        // A diffusers folder: per-network files (one precision each), configs override.
        std::fs::remove_file(d.join("v1-5.safetensors")).unwrap();
        for net in ["unet", "vae", "text_encoder"] {
            std::fs::create_dir_all(d.join(net)).unwrap();
            std::fs::write(d.join(net).join("diffusion_pytorch_model.safetensors"), "x").unwrap();
            std::fs::write(
                d.join(net).join("diffusion_pytorch_model.fp16.safetensors"),
                "x",
            )
            .unwrap();
        }
        std::fs::write(
            d.join("unet/config.json"),
            r#"{"sample_size": 96, "block_out_channels": [1]}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("vae/config.json"),
            r#"{"block_out_channels": [1, 2, 3, 4]}"#,
        )
        .unwrap();
        std::fs::write(d.join("text_encoder/config.json"), "{}").unwrap();
        let (arch, files) = model_files(&model_ref(d)).unwrap();
        assert!(files.weights.is_empty());
        assert_eq!(files.per_network.len(), 3);
        assert_eq!(
            files.per_network["unet"],
            vec![d.join("unet/diffusion_pytorch_model.fp16.safetensors")]
        );
        assert_eq!(
            arch.native,
            96 * 8,
            "sample_size latents × the VAE's factor"
        );
        // FLUX diffusers folders are refused with what to use instead.
        std::fs::create_dir_all(d.join("transformer")).unwrap();
        std::fs::write(d.join("transformer/config.json"), "{}").unwrap();
        let e = model_files(&model_ref(d)).unwrap_err();
        assert!(e.contains("flux1-schnell.safetensors"), "{e}");
    }
}
