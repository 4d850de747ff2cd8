//! Image diffusion on candle: Stable Diffusion 1.5 / 2.1 / Turbo, SDXL (+ refiner) / SDXL-Turbo and
//! FLUX.1-schnell. Text-to-image, image-to-image and inpainting with the Euler, Euler ancestral,
//! DDIM, DPM++ 2M and flow-match Euler samplers, LoRA merged at load time.
//!
//! Weights are read in the layouts they are distributed in (single-file LDM/SGM checkpoints,
//! BFL Flux files, ComfyUI text encoders) and renamed on the fly to the diffusers names the
//! networks are written against (`checkpoint`).

pub mod arch;
pub mod build;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod lora;
pub mod model;
/// Seeded and replayed noise (shared with the other model crates).
pub use reelsmith_kit::noise;
pub mod pipeline;
pub mod resume;
pub mod scheduler;
pub mod tokenizer;
pub mod unet;
pub mod vae;
