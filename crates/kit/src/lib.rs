//! Plumbing shared by reelsmith's model crates, written once: seeded noise (and replayed
//! reference draws), the device and dtype policy, and the cancel/progress hooks long-running
//! model calls take. Nothing here knows of jobs, the CLI, the store or the model registry.

pub mod bytes_bpe;
pub mod device;
pub mod hooks;
pub mod noise;
pub mod testing;

pub use device::{compute_dtype, parse_device, DeviceError, Precision};
pub use hooks::{is_cancelled, CancelFlag, ProgressFn};
