//! Wan2.1 umt5 (being written).
