//! Post-processing networks for reelsmith on candle: Real-ESRGAN super-resolution
//! ([`esrgan`]: RRDBNet and SRVGGNetCompact, tiled so any frame size runs in bounded memory) and
//! RIFE frame interpolation ([`rife`]: IFNet 4.x at any timestep, with its own bilinear warp).
//!
//! Weights come as users have them — PyTorch `.pth` pickles, `.safetensors` conversions and
//! ncnn `.param`/`.bin` pairs ([`weights`]) — and the architecture is read from the tensors.
//! Images are `[N, 3, H, W]` RGB in 0..1. Nothing here knows of jobs, the CLI or the registry.

pub mod esrgan;
pub mod rife;
pub mod weights;

/// What can go wrong loading or running a post network.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {message}")]
    Weights { path: String, message: String },
    #[error("{0}")]
    Input(String),
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, PostError>;
