//! Procedural background-music synthesiser: the embedded default music engine.
//!
//! Pure synthesis, no samples. Every mood is a small score description (tempo,
//! key, scale, chord progression, instrument parts, drum patterns) from which a
//! seeded PRNG derives the melodic details (arpeggio shapes, melody, accents).
//!
//! Determinism: the same `(mood, rate, seed)` gives bit-identical output on every
//! machine. The render path uses only IEEE-exact operations (`+ − × ÷`, `sqrt`,
//! `floor`); sines, exponentials and pitch ratios come from the small
//! arithmetic-only helpers in `dsp.rs` instead of the platform's libm.
//!
//! Seamless looping: every note is rendered from its own start (own oscillator
//! phases, filter and noise state) into a buffer longer than the loop, and the
//! overhang is folded back onto the start, so the loop joins to itself exactly
//! as any two consecutive samples inside it do.

mod compose;
mod dsp;
mod render;
mod score;

#[cfg(test)]
mod tests;

use std::fmt;

// The parts see each other as if they were still one file: each one `use super::*`.
use compose::*;
use dsp::*;
use render::*;
use score::*;

/// Stereo channels of everything produced here.
const CHANNELS: usize = 2;
/// 16th-note steps per beat.
const STEPS_PER_BEAT: usize = 4;
/// Beats per bar (all moods are in 4/4).
const BEATS_PER_BAR: u32 = 4;
/// Bars per loop.
const BARS: u32 = 8;
/// Loop loudness target (RMS, linear): about −18 dBFS.
const TARGET_RMS: f64 = 0.125;
/// Hard cap on the loop's sample peak.
const PEAK_CAP: f64 = 0.89;

/// Error for a mood name that is not in [`moods`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMood {
    /// The name that was asked for.
    pub requested: String,
}

impl fmt::Display for UnknownMood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown music mood '{}' (known moods: {})",
            self.requested,
            moods().join(", ")
        )
    }
}

impl std::error::Error for UnknownMood {}

/// Timing of a mood's loop at a given sample rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopInfo {
    /// Effective tempo: exactly `60 · rate / frames_per_beat`.
    pub bpm: f64,
    /// Bars in the loop.
    pub bars: u32,
    /// Beats per bar.
    pub beats_per_bar: u32,
    /// Frames per beat (integer, so the loop is a whole number of beats).
    pub frames_per_beat: usize,
    /// Frames in the loop (`bars · beats_per_bar · frames_per_beat`).
    pub frames: usize,
}

/// Names accepted by [`synthesize_loop`] / [`synthesize`].
pub fn moods() -> &'static [&'static str] {
    const NAMES: &[&str] = &[
        "calm",
        "upbeat",
        "epic",
        "tense",
        "playful",
        "mysterious",
        "sad",
        "heroic",
    ];
    NAMES
}

/// Loop timing of `mood` at `rate` (the loop produced by [`synthesize_loop`]
/// has exactly `frames` stereo frames).
pub fn loop_info(mood: &str, rate: u32) -> Result<LoopInfo, UnknownMood> {
    Ok(info_for(spec_for(mood)?, rate))
}

/// Synthesises one seamless stereo loop (interleaved, `loop_info(mood).frames`
/// frames: 8 bars of 4/4) for `mood`. Same inputs → bit-identical output.
pub fn synthesize_loop(mood: &str, rate: u32, seed: u64) -> Result<Vec<f32>, UnknownMood> {
    let spec = spec_for(mood)?;
    if rate == 0 {
        return Ok(Vec::new());
    }
    let info = info_for(spec, rate);
    let notes = compose(spec, info, seed);
    Ok(render(spec, info, &notes, rate))
}

/// Tiles the stereo loop to exactly `round(seconds · rate)` frames, with a
/// 0.5 s equal-power fade-in and an equal-power fade-out over `fade_out_s`.
pub fn render_bed(loop_: &[f32], rate: u32, seconds: f64, fade_out_s: f32) -> Vec<f32> {
    let frames = (seconds.max(0.0) * f64::from(rate)).round() as usize;
    let mut out = vec![0.0f32; frames * CHANNELS];
    let loop_len = loop_.len() - loop_.len() % CHANNELS;
    if loop_len == 0 {
        return out;
    }
    for (dst, src) in out
        .chunks_mut(loop_len)
        .zip(std::iter::repeat(&loop_[..loop_len]))
    {
        dst.copy_from_slice(&src[..dst.len()]);
    }
    let fade_in = ((0.5 * f64::from(rate)).round() as usize).min(frames);
    let fade_out =
        ((f64::from(fade_out_s.max(0.0)) * f64::from(rate)).round() as usize).min(frames);
    for i in 0..fade_in {
        let g = sin_turns(0.25 * i as f32 / fade_in as f32);
        out[i * CHANNELS..(i + 1) * CHANNELS]
            .iter_mut()
            .for_each(|s| *s *= g);
    }
    for j in 0..fade_out {
        let i = frames - 1 - j;
        let g = sin_turns(0.25 * j as f32 / fade_out as f32);
        out[i * CHANNELS..(i + 1) * CHANNELS]
            .iter_mut()
            .for_each(|s| *s *= g);
    }
    out
}

/// Convenience: [`synthesize_loop`] then [`render_bed`] with a fade-out of
/// min(3 s, a quarter of the duration).
pub fn synthesize(mood: &str, rate: u32, seconds: f64, seed: u64) -> Result<Vec<f32>, UnknownMood> {
    let loop_ = synthesize_loop(mood, rate, seed)?;
    let fade_out = (seconds / 4.0).clamp(0.0, 3.0) as f32;
    Ok(render_bed(&loop_, rate, seconds, fade_out))
}
