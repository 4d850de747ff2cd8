//! Wan2.1 vae (being written).
