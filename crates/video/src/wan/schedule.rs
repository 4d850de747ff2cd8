//! Wan2.1 schedule (being written).
