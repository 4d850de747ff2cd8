//! Capability traits — one per kind of model — and their engines. `procedural/` holds the
//! embedded defaults that need no weights; model engines (candle) implement the same traits.
//! Engines know nothing of jobs, stages or the store.

pub mod diffusion;
pub mod llm;
pub mod loaded;
pub mod models;
pub mod post;
pub mod post_models;
pub mod post_select;
pub mod procedural;
pub mod video;
pub mod video_select;
pub mod video_wan;
/// Piper voices (the `reelsmith-vits` crate).
pub use reelsmith_vits as vits;
/// Whisper speech recognition (the `reelsmith-whisper` crate).
pub use reelsmith_whisper as whisper;

use crate::media::compose::CameraPath;
use crate::media::image::RgbImage;
use crate::media::wav::Audio;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{engine}: {message}")]
    Failed { engine: String, message: String },
    #[error("{engine} is not available: {hint}")]
    Unavailable { engine: String, hint: String },
    #[error("cancelled")]
    Cancelled,
}

/// A voice to speak with.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VoiceParams {
    pub language: String,
    /// Engine-specific voice name (espeak-ng: `en-us`, `cmn`, …).
    pub voice: String,
    pub variant: String,
    pub pitch: u8,
    pub rate: u16,
}

/// Text to speech.
pub trait SpeechEngine: Send + Sync {
    fn id(&self) -> String;
    /// Speaks `text`, returning mono audio trimmed of leading and trailing silence.
    fn synthesize(&self, text: &str, voice: &VoiceParams) -> Result<Audio, EngineError>;
}

/// What a keyframe should show.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageRequest {
    pub prompt: String,
    pub negative_prompt: String,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    pub look: String,
    pub palette: Vec<[u8; 3]>,
    pub motifs: Vec<String>,
    pub scene_index: usize,
    pub scene_count: usize,
    /// Image-to-image / inpainting from a picture (a character's reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<ImageInit>,
    /// Sampler settings instead of the model's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Sampling>,
}

/// A picture to start from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageInit {
    pub image: std::path::PathBuf,
    /// Share of the sampling schedule to run from the picture (1 = ignore it, except where
    /// masked out).
    pub strength: f32,
    /// White = redraw, black = keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<std::path::PathBuf>,
}

/// Sampler overrides (`None` = the model's registry default).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sampling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cfg: Option<f32>,
}

/// Text to image.
pub trait ImageEngine: Send + Sync {
    fn id(&self) -> String;
    fn generate(&self, req: &ImageRequest) -> Result<RgbImage, EngineError>;
    /// As `generate`, reporting `(steps done, total)`; `progress` returns false to cancel
    /// (between steps). Engines without steps ignore it.
    fn generate_with(
        &self,
        req: &ImageRequest,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<RgbImage, EngineError> {
        let _ = progress;
        self.generate(req)
    }
}

/// How a still becomes a clip.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Clip {
    /// A camera move over the still, drawn frame by frame at assembly (any duration, any fps).
    Camera { path: CameraPath },
    /// A generated clip: `frames` RGB frames of `width`×`height` at `fps`, in the file `file`
    /// (a bare name) of the animate stage's artifact directory. Written with
    /// [`crate::media::clip::ClipWriter`]: FFV1 in Matroska, bit-exact 8-bit RGB, every frame a
    /// keyframe. Assembly samples it on the output's clock (see [`crate::media::timeline`]).
    Frames {
        file: String,
        fps: f64,
        frames: u32,
        width: u32,
        height: u32,
    },
}

/// Image to video.
pub trait VideoEngine: Send + Sync {
    fn id(&self) -> String;
    fn animate(&self, still: &RgbImage, motion: &str, seed: u64) -> Result<Clip, EngineError>;
}

/// Background music.
pub trait MusicEngine: Send + Sync {
    fn id(&self) -> String;
    /// A seamless stereo loop for `mood`.
    fn compose_loop(&self, mood: &str, rate: u32, seed: u64) -> Result<Audio, EngineError>;
}
