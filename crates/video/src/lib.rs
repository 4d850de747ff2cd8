//! Video diffusion on candle: LTX-Video 0.9.x (text-to-video, image-to-video, keyframe
//! conditioning at any frame index), with the pieces a second family (Wan2.1) reuses written
//! once: the causal 3D convolution built from 2D taps, the frame-count and size rules, and the
//! streamed, tiled VAE decode.
//!
//! Files in, tensors out: nothing here knows of jobs, the CLI, the store or the registry.

mod attention;
pub mod conv3d;
pub mod frames;
pub mod ltx;
pub mod wan;
/// Seeded and replayed noise (shared with the other model crates).
pub use reelsmith_kit::noise;

/// Why a video model call failed.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Shape(#[from] frames::ShapeError),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    Weights { path: String, message: String },
    #[error("{what} hold {count} NaN or infinite values")]
    NonFinite { what: String, count: usize },
    #[error(
        "the decoded video is black (mean brightness {mean:.4}, transformer in {dtype}, VAE in \
         F32): the network produced no picture"
    )]
    Black { mean: f64, dtype: String },
    #[error("cancelled")]
    Cancelled,
}
