//! Highlights from recordings: the analysis of long gameplay recordings (shot boundaries, audio
//! peaks and onsets, motion, flashes, black frames), the scoring and selection of highlight
//! windows, and the synthetic recordings tests and benchmarks are measured on.
//!
//! A room of its own: it reads media through [`crate::media`]-style libav calls, knows nothing of
//! jobs or the store, and hands stages plain data (`analysis.json`, `selection.json`).

pub mod analyze;
pub mod cuts;
pub mod project;
pub mod select;
pub mod synth;
