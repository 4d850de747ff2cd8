//! Wan2.1 in the studio: the files of an installed model (any layout `models import` knows:
//! diffusers, the official release, ComfyUI's split files) and the engine half that drives
//! [`WanModel`] for the animate stage and `reelsmith video`.
//!
//! How a clip is made (each network loaded when needed and dropped when done, so one of them is
//! in memory at a time):
//! 1. the prompts (every clip's, and the negative prompt) are encoded by umT5 in one load; the
//!    caller saves the states (an artifact) and the encoder leaves memory;
//! 2. the keyframe (and a morph's next keyframe) are encoded by the VAE as *anchors*: the clip's
//!    first latent frame is held to the keyframe's latents (and a morph's last one to the next
//!    keyframe's, unless the model is a first-last-frame model, which is given it as its
//!    condition), so the clip starts on its keyframe with any Wan model, text-to-video included;
//!    image models also get the picture as their condition (CLIP states and the VAE-encoded
//!    condition video), as diffusers' `WanImageToVideoPipeline` does;
//! 3. the transformer samples (streaming its blocks from host memory when the plan says so);
//! 4. the VAE decodes one latent frame at a time; with a resume folder each step's frames are
//!    appended to `frames.rgb` and the decoder's state saved after them, so a killed decode
//!    continues from the last finished latent frame.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::noise::Seeded;
use reelsmith_video::frames::FrameRule;
use reelsmith_video::wan::model::{
    AnchorAt, AnchorPicture, DecodeOptions, ImageCondition, Picture, WanFiles, WanModel,
};
use reelsmith_video::wan::pipeline::WanRequest;
use reelsmith_video::wan::schedule::SamplerKind;
use reelsmith_video::wan::transformer::Residency;
use reelsmith_video::wan::vae::WanTiling;
use reelsmith_video::VideoError;

use super::video::{frame_error, frame_images, ClipRequest, DecodeResume, VideoWeights};
use super::video_select::{folder_fingerprint, VideoModelRef, REFERENCE_CLIP};
use super::EngineError;
use crate::hub::import::wan as wan_import;
use crate::hub::registry::SamplingDefault;
use crate::hub::{import, HubConfig, ModelEntry, Registry};
use crate::media::image::RgbImage;
use crate::media::stills;

/// The job reference of Wan model `m` whose files are in `dir`, or why it cannot run.
pub(super) fn reference(
    reg: &Registry,
    cfg: &HubConfig,
    m: &ModelEntry,
    dir: &Path,
) -> Result<VideoModelRef, String> {
    let facts = m
        .video
        .clone()
        .ok_or_else(|| format!("{}: the registry has no [model.video] for it", m.id))?;
    let sampling = m.sampling.clone().unwrap_or(SamplingDefault {
        sampler: "unipc".into(),
        steps: if facts.task == "i2v" { 40 } else { 50 },
        cfg: 5.0,
    });
    // The entry's first file is its transformer (the registry lists it first; an import of one
    // file lists that file first): look from it, so a folder of several transformers is fine.
    let start = m
        .files
        .iter()
        .map(|f| dir.join(&f.path))
        .find(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| x == "safetensors")
                && wan_import::parts_in(p).is_ok()
        })
        .unwrap_or_else(|| dir.to_path_buf());
    let parts = wan_import::parts_in(&start).map_err(|e| format!("{}: {e}", m.id))?;
    let companions = import::companion_dirs(reg, cfg, m)?;
    let installed_wan = || {
        reg.models()
            .iter()
            .filter(|o| o.arch == "wan")
            .filter_map(|o| import::local_dir(cfg, o))
    };
    let tokenizer = parts
        .tokenizer
        .clone()
        .or_else(|| companions.iter().find_map(|c| wan_import::tokenizer_in(c)))
        .or_else(|| installed_wan().find_map(|d| wan_import::tokenizer_in(&d)))
        .ok_or_else(|| {
            format!(
                "{}: the umT5 tokenizer is missing: put tokenizer.json (google/umt5-xxl) beside \
                 the weights in {}, or `reelsmith models pull umt5-xxl-tokenizer`",
                m.id,
                dir.display()
            )
        })?;
    let missing = |what: &str, hint: &str| {
        format!("{}: {what} is missing from {}: {hint}", m.id, dir.display())
    };
    let text_encoder = parts.text_encoder.clone().ok_or_else(|| {
        missing(
            "the umT5-XXL text encoder",
            "put umt5_xxl_fp16.safetensors (or the fp8 one) beside the weights",
        )
    })?;
    let vae = parts.vae.clone().ok_or_else(|| {
        missing(
            "the Wan 2.1 VAE",
            "put wan_2.1_vae.safetensors beside the weights",
        )
    })?;
    let image_encoder = parts.image_encoder.clone().or_else(|| {
        companions
            .iter()
            .find_map(|c| wan_import::image_encoder_in(c))
    });
    if facts.task != "t2v" && image_encoder.is_none() {
        return Err(missing(
            "the CLIP vision encoder an image model needs",
            "put clip_vision_h.safetensors beside the weights",
        ));
    }
    let fingerprint_of = |p: &Path| -> String {
        if p.is_dir() {
            return folder_fingerprint(p);
        }
        m.files
            .iter()
            .find(|f| p.ends_with(&f.path))
            .and_then(|f| f.sha256.clone())
            .unwrap_or_else(|| super::models::fingerprint_of(p))
    };
    let mut prints = vec![
        fingerprint_of(&parts.transformer),
        fingerprint_of(&vae),
        fingerprint_of(&text_encoder),
        fingerprint_of(&tokenizer),
    ];
    if let Some(i) = &image_encoder {
        prints.push(fingerprint_of(i));
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(prints.join("|").as_bytes());
    let mut r = VideoModelRef {
        id: m.id.clone(),
        arch: m.arch.clone(),
        weights: parts.transformer,
        text_encoder,
        tokenizer,
        vae: Some(vae),
        image_encoder,
        image_processor: parts.image_processor,
        fingerprint: hex::encode(&digest[..12]),
        facts,
        sampling,
        vram_bytes: 0,
    };
    let (frames, width, height) = REFERENCE_CLIP;
    r.vram_bytes = r.vram_peak(frames, width, height);
    Ok(r)
}

/// Where the transformer's blocks live for a clip of `frames` at `width`×`height` on a device
/// of `capacity` bytes (None: the CPU, where everything is "resident"): the hub's plan.
/// `REELSMITH_WAN_RESIDENT_BLOCKS=N` forces streaming with N blocks kept on the device.
pub fn residency_for(
    m: &VideoModelRef,
    frames: u32,
    width: u32,
    height: u32,
    capacity: Option<u64>,
) -> Residency {
    if let Some(n) = std::env::var("REELSMITH_WAN_RESIDENT_BLOCKS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return Residency::Streamed { resident_blocks: n };
    }
    let Some(capacity) = capacity else {
        return Residency::Resident;
    };
    match m.plan(frames, width, height, capacity).map(|p| p.residency) {
        Some(crate::hub::vram::Residency::Streamed { resident_blocks }) => Residency::Streamed {
            resident_blocks: resident_blocks as usize,
        },
        _ => Residency::Resident,
    }
}

/// A Wan2.1 model ready to make clips (nothing is loaded until a call needs it).
pub struct WanEngine {
    id: String,
    model: WanModel,
    sampler: SamplerKind,
    shift: Option<f64>,
}

fn failed(engine: &str, e: VideoError) -> EngineError {
    match e {
        VideoError::Cancelled => EngineError::Cancelled,
        e => EngineError::Failed {
            engine: engine.to_string(),
            message: e.to_string(),
        },
    }
}

impl WanEngine {
    pub fn new(w: &VideoWeights, device: &Device, residency: Residency) -> Self {
        let files = WanFiles {
            transformer: w.weights.clone(),
            vae: w.vae.clone().unwrap_or_else(|| w.weights.clone()),
            text_encoder: w.text_encoder.clone(),
            tokenizer: w.tokenizer.clone(),
            image_encoder: w.image_encoder.clone(),
            image_processor: w.image_processor.clone(),
        };
        let mut model = WanModel::new(files, device);
        model.residency = residency;
        let sampler = match w.sampler.as_str() {
            "euler" | "flow" | "flow-euler" => SamplerKind::Euler,
            _ => SamplerKind::UniPc,
        };
        Self {
            id: w.id.clone(),
            model,
            sampler,
            shift: w.shift,
        }
    }

    pub fn rule(&self) -> FrameRule {
        FrameRule::WAN
    }

    pub fn dtype(&self) -> DType {
        self.model.dtype
    }

    fn fail(&self) -> impl Fn(VideoError) -> EngineError + '_ {
        move |e| failed(&self.id, e)
    }

    /// umT5 states of `texts`, `[n, 512, D]` f32 on the CPU (one load of the encoder).
    pub fn encode_prompts(&self, texts: &[&str]) -> Result<Tensor, EngineError> {
        let t = self.model.encode_prompts(texts).map_err(self.fail())?;
        t.to_device(&Device::Cpu).map_err(|e| self.fail()(e.into()))
    }

    /// Samples a clip's normalised latents `[1, 16, L, h, w]` (CPU, f32). `text` is
    /// `[2, 512, D]`: the prompt's states, then the negative prompt's. Conditions: the one at
    /// frame 0 is the first picture, one at a later frame the last.
    pub fn sample(
        &self,
        req: &ClipRequest,
        text: &Tensor,
        on_step: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Tensor, EngineError> {
        let fail = self.fail();
        let steps = req.steps.len();
        let wreq = WanRequest {
            frames: req.frames,
            width: req.width,
            height: req.height,
            steps,
            guidance: req.guidance,
            shift: req
                .shift
                .or(self.shift)
                .unwrap_or_else(|| WanRequest::default_shift(req.width, req.height)),
            seed: req.seed,
            sampler: self.sampler,
        };
        let shape = wreq.validate().map_err(&fail)?;
        let cfg = self.model.transformer_config().map_err(&fail)?;
        let flf2v = cfg.pos_embed_seq_len.is_some();
        let cover = |img: &RgbImage| stills::cover(img, req.width as u32, req.height as u32);
        let first = req
            .conditions
            .iter()
            .find(|c| c.frame == 0)
            .map(|c| cover(&c.image));
        let last = req
            .conditions
            .iter()
            .find(|c| c.frame > 0)
            .map(|c| cover(&c.image));
        fn pic(img: &RgbImage) -> Picture<'_> {
            Picture {
                rgb: &img.data,
                width: img.width as usize,
                height: img.height as usize,
            }
        }
        let image_states;
        let image = if cfg.has_image_input() {
            let Some(f) = first.as_ref() else {
                return Err(fail(VideoError::Invalid(
                    "an image-to-video model needs a first picture".into(),
                )));
            };
            // A first-last-frame model reads two pictures' CLIP states; without a last picture
            // it gets the first twice (and no last frame in its condition video).
            let clip_last = if flf2v {
                last.as_ref().or(Some(f))
            } else {
                None
            };
            let mut pictures = vec![pic(f)];
            pictures.extend(clip_last.map(pic));
            image_states = self.model.encode_images(&pictures).map_err(&fail)?;
            Some(ImageCondition {
                embeds: &image_states,
                first: pic(f),
                last: if flf2v { last.as_ref().map(pic) } else { None },
            })
        } else {
            None
        };
        let mut anchors = Vec::new();
        if let Some(f) = &first {
            anchors.push(AnchorPicture {
                picture: pic(f),
                at: AnchorAt::First,
            });
        }
        if let (Some(l), false) = (&last, flf2v) {
            anchors.push(AnchorPicture {
                picture: pic(l),
                at: AnchorAt::LastOf(shape.frames),
            });
        }
        let anchors = self.model.encode_anchors(&anchors).map_err(&fail)?;
        let (prompt, negative) = match text.dims() {
            [2, _, _] => (
                text.narrow(0, 0, 1).map_err(|e| fail(e.into()))?,
                text.narrow(0, 1, 1).map_err(|e| fail(e.into()))?,
            ),
            d => {
                return Err(fail(VideoError::Invalid(format!(
                    "the saved prompt states are {d:?}, not [2, 512, D]"
                ))))
            }
        };
        let mut noise = Seeded::new(req.seed);
        let mut hook = |done: usize, total: usize, _: &Tensor| on_step(done, total);
        let latents = self
            .model
            .sample_anchored(
                &wreq,
                &prompt,
                Some(&negative),
                image,
                &anchors,
                &mut noise,
                &mut hook,
            )
            .map_err(&fail)?;
        latents
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| fail(e.into()))
    }

    /// Decodes saved latents into frames, in order, handing each to `frame`. With `resume`
    /// (a folder of its own) the decode's progress is kept there, tied to these latents (their
    /// SHA-256), and a later call with the same latents continues it (other latents start
    /// over). The folder stays when the decode is done: a call again before the caller has
    /// committed the frames replays them from it instead of decoding again; the caller removes
    /// it (the task's checkpoint folder is cleared when its artifact is committed).
    pub fn decode(
        &self,
        latents: &Tensor,
        resume: Option<DecodeResume<'_>>,
        frame: &mut dyn FnMut(RgbImage) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let fail = self.fail();
        let (resume, saved_hook) = match resume {
            Some(r) => (Some(r.dir), Some((r.saved, r.resumed))),
            None => (None, None),
        };
        let resume = resume.as_deref();
        let (mut on_saved, on_resumed) = match saved_hook {
            Some((s, r)) => (Some(s), Some(r)),
            None => (None, None),
        };
        let total_latent = latents.dim(2).map_err(|e| fail(e.into()))?;
        let (_, _, _, h, w) = latents.dims5().map_err(|e| fail(e.into()))?;
        let (fw, fh) = (w * 8, h * 8);
        let tiling = (fw * fh > 832 * 480).then(WanTiling::default);
        let io = |p: &Path, e: std::io::Error| EngineError::Failed {
            engine: self.id.clone(),
            message: format!("{}: {e}", p.display()),
        };
        let mut saved: Option<(PathBuf, PathBuf)> = None;
        let mut options = DecodeOptions {
            tiling,
            resume: None,
        };
        if let Some(dir) = resume {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            let (frames_file, state) = (dir.join("frames.rgb"), dir.join("decode.safetensors"));
            let id_file = dir.join("latents.sha256");
            let id = latents_id(latents).map_err(|e| fail(e.into()))?;
            let same_latents = std::fs::read_to_string(&id_file).is_ok_and(|s| s.trim() == id);
            let frame_bytes = (fw * fh * 3) as u64;
            let done = decoded_frames(&state).filter(|_| same_latents);
            match done {
                Some(n) if file_len(&frames_file) >= n as u64 * frame_bytes => {
                    // Frames written after the last saved state are written again.
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&frames_file)
                        .map_err(|e| io(&frames_file, e))?;
                    f.set_len(n as u64 * frame_bytes)
                        .map_err(|e| io(&frames_file, e))?;
                    replay(&frames_file, n, fw, fh, frame).map_err(|e| match e {
                        Replay::Io(e) => io(&frames_file, e),
                        Replay::Frame(e) => e,
                    })?;
                    options.resume = Some(state.clone());
                    tracing::info!("{}: the decode continues after {n} frame(s)", self.id);
                    if let Some(r) = on_resumed {
                        r(latent_done(n));
                    }
                }
                _ => {
                    // A fresh decode (or one of other latents: sampled again): what is there
                    // goes, then the latents it is for are named.
                    let _ = std::fs::remove_file(&state);
                    std::fs::write(&frames_file, b"").map_err(|e| io(&frames_file, e))?;
                    crate::pipeline::checkpoint::write_atomic(dir, "latents.sha256", id.as_bytes())
                        .map_err(|e| io(&id_file, e))?;
                }
            }
            saved = Some((frames_file, state));
        }
        let mut sink = |decoder: &reelsmith_video::wan::vae::WanStreamDecoder<'_>,
                        frames: Tensor|
         -> Result<(), VideoError> {
            let images = frame_images(&frames)?;
            if let Some((frames_file, state)) = &saved {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(frames_file)
                    .map_err(|e| VideoError::Invalid(format!("{}: {e}", frames_file.display())))?;
                for img in &images {
                    f.write_all(&img.data).map_err(|e| {
                        VideoError::Invalid(format!("{}: {e}", frames_file.display()))
                    })?;
                }
                f.sync_data()
                    .map_err(|e| VideoError::Invalid(format!("{}: {e}", frames_file.display())))?;
                decoder.save(state)?;
                if let Some(s) = on_saved.as_mut() {
                    s(decoder.next_frame(), total_latent);
                }
            }
            for img in images {
                frame(img).map_err(frame_error)?;
            }
            Ok(())
        };
        self.model
            .decode(latents, &options, &mut sink)
            .map_err(&fail)
    }
}

/// The SHA-256 (hex) of latents' f32 values and shape: what a saved decode belongs to.
fn latents_id(latents: &Tensor) -> candle_core::Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for d in latents.dims() {
        h.update((*d as u64).to_le_bytes());
    }
    let values = latents
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    for v in values {
        h.update(v.to_le_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// Latent frames behind `pixel` decoded pixel frames (the inverse of [`decoded_frames`]).
fn latent_done(pixel: usize) -> usize {
    if pixel == 0 {
        0
    } else {
        1 + (pixel - 1) / 4
    }
}

/// Pixel frames a saved decode state has produced (latent frame 0 gives one, each later one
/// four); None without a readable state.
fn decoded_frames(state: &Path) -> Option<usize> {
    if !state.is_file() {
        return None;
    }
    let next = reelsmith_video::wan::vae::WanDecodeState::peek_next_frame(state)?;
    Some(if next == 0 { 0 } else { 1 + 4 * (next - 1) })
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

enum Replay {
    Io(std::io::Error),
    Frame(EngineError),
}

/// Hands the first `n` frames of a frames file to `frame` again.
fn replay(
    file: &Path,
    n: usize,
    w: usize,
    h: usize,
    frame: &mut dyn FnMut(RgbImage) -> Result<(), EngineError>,
) -> Result<(), Replay> {
    let mut f = std::fs::File::open(file).map_err(Replay::Io)?;
    f.rewind().map_err(Replay::Io)?;
    for _ in 0..n {
        let mut data = vec![0u8; w * h * 3];
        f.read_exact(&mut data).map_err(Replay::Io)?;
        frame(RgbImage {
            width: w as u32,
            height: h as u32,
            data,
        })
        .map_err(Replay::Frame)?;
    }
    Ok(())
}
