//! Native CPU inference: thread pool, quantized kernels and forward pass.

pub mod model;
pub mod pool;
pub mod quant;
pub mod simd;

pub use model::CpuModel;
pub use pool::{physical_cores, ThreadPool};
