//! Wan2.1 clip_vision (being written).
