//! Models: the registry (`models/*.toml`), VRAM estimates and GPU tiers, and (soon) downloads
//! into the standard Hugging Face cache, verification and import.

pub mod registry;
pub mod vram;

pub use registry::{ModelEntry, ModelFile, ModelKind, Registry, RegistryError};
pub use vram::{JobSize, Tier};
