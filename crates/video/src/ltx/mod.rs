//! LTX-Video 0.9.x: the transformer (2B and 13B), the video VAE in its three layouts
//! (0.9.0, 0.9.1 with the timestep-conditioned decoder, 0.9.5+), the flow-match pipelines.

pub mod load;
pub mod model;
pub mod original;
pub mod pipeline;
pub mod schedule;
pub mod text;
pub mod transformer;
pub mod vae;
