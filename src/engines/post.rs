//! Post-processing engines: upscaling pictures and retiming clips to the output rate.
//!
//! Two capabilities, each with an embedded default that needs no weights (Lanczos through
//! swscale; motion-compensated interpolation through libav's `minterpolate`) and model engines
//! from `reelsmith-post` (Real-ESRGAN, RIFE) that take over when installed and selected.

use crate::media::image::RgbImage;

use super::EngineError;

/// Makes a picture larger.
pub trait Upscaler: Send {
    /// Engine and model id, recorded in artifacts and reports (`lanczos@1`, `realesrgan-x4plus@…`).
    fn id(&self) -> String;
    /// `img` scaled to exactly `width`×`height` (the caller keeps the aspect ratio).
    fn upscale(&mut self, img: &RgbImage, width: u32, height: u32)
        -> Result<RgbImage, EngineError>;
}

/// Where a retimed clip's frames go, one at a time, in order.
pub type FrameSink<'a> = dyn FnMut(RgbImage) -> Result<(), EngineError> + 'a;
/// Where a clip's frames come from, one at a time, in order.
pub type FrameSource<'a> = dyn Iterator<Item = Result<RgbImage, EngineError>> + 'a;

/// Makes in-between frames: retimes a clip from its rate to a higher one.
pub trait Interpolator: Send {
    fn id(&self) -> String;
    /// Every frame of `input` (at `in_fps`) retimed to `out_fps`, pushed to `out` in order;
    /// `cancelled` is checked between output frames. Returns the number of frames written.
    /// Never interpolates across a cut: frames on either side of a scene change are repeated.
    fn retime(
        &mut self,
        input: &mut FrameSource<'_>,
        in_fps: f64,
        out_fps: f64,
        out: &mut FrameSink<'_>,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<u64, EngineError>;
}

/// A model that makes one frame at time `t` ∈ (0, 1) between two (RIFE): the pairwise engines
/// are retimed by [`retime_pairwise`].
pub trait PairInterpolator: Send {
    fn id(&self) -> String;
    fn between(&mut self, a: &RgbImage, b: &RgbImage, t: f64) -> Result<RgbImage, EngineError>;
}
