//! Wan2.1 transformer (being written).
