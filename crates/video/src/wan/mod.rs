//! Wan2.1: the transformer (1.3B and 14B; text-to-video, image-to-video and first-last-frame
//! variants), the causal video VAE with streamed decode, the umT5 text encoder (relative-position
//! bias in every layer), the open-clip ViT-H/14 image encoder and the UniPC / flow-match Euler
//! samplers.

pub mod clip_vision;
pub mod model;
pub mod pipeline;
pub mod schedule;
pub mod transformer;
pub mod umt5;
pub mod vae;
