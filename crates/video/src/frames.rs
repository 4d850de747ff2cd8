//! The shape rules of a video model, stated once for every family: how many frames a clip may
//! have (LTX: 8k+1, Wan: 4k+1 — the VAE keeps the first frame alone and packs the rest in groups
//! of its temporal compression), what the width and height must be multiples of, and how a long
//! clip is cut into chained windows.
//!
//! A wrong count is refused with the nearest valid values, never rounded silently (diffusers turns
//! 12 frames into 9 without a word).

/// The frame-count and size rule of one model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRule {
    /// Frames per latent frame after the first (LTX 8, Wan 4).
    pub temporal: usize,
    /// Width and height must be multiples of this (LTX 32, Wan 16).
    pub spatial: usize,
    /// The smallest frame count the model makes sense at (one latent frame).
    pub min_frames: usize,
}

/// A frame count or size a model cannot generate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error(
        "{frames} frames: this model generates {rule} frames; the nearest valid counts are {below} and {above}"
    )]
    Frames {
        frames: usize,
        rule: String,
        below: usize,
        above: usize,
    },
    #[error(
        "{width}×{height}: width and height must be multiples of {multiple}; the nearest valid size is {near_w}×{near_h}"
    )]
    Size {
        width: usize,
        height: usize,
        multiple: usize,
        near_w: usize,
        near_h: usize,
    },
}

impl FrameRule {
    /// LTX-Video: 8k+1 frames, sizes multiples of 32.
    pub const LTX: FrameRule = FrameRule {
        temporal: 8,
        spatial: 32,
        min_frames: 9,
    };
    /// Wan2.1: 4k+1 frames, sizes multiples of 16.
    pub const WAN: FrameRule = FrameRule {
        temporal: 4,
        spatial: 16,
        min_frames: 5,
    };

    /// `8k+1` (or `4k+1`).
    pub fn describe(&self) -> String {
        format!("{}k+1", self.temporal)
    }

    pub fn is_valid_frames(&self, frames: usize) -> bool {
        frames >= self.min_frames && (frames - 1).is_multiple_of(self.temporal)
    }

    /// The valid counts on either side of `frames` (equal when `frames` is valid).
    pub fn nearest_frames(&self, frames: usize) -> (usize, usize) {
        let t = self.temporal;
        if frames <= self.min_frames {
            return (self.min_frames, self.min_frames);
        }
        let below = (frames - 1) / t * t + 1;
        let above = if below == frames { below } else { below + t };
        (below.max(self.min_frames), above)
    }

    /// Checks a frame count.
    pub fn check_frames(&self, frames: usize) -> Result<(), ShapeError> {
        if self.is_valid_frames(frames) {
            return Ok(());
        }
        let (below, above) = self.nearest_frames(frames);
        Err(ShapeError::Frames {
            frames,
            rule: self.describe(),
            below,
            above,
        })
    }

    /// Checks a size.
    pub fn check_size(&self, width: usize, height: usize) -> Result<(), ShapeError> {
        let m = self.spatial;
        if width >= m && height >= m && width.is_multiple_of(m) && height.is_multiple_of(m) {
            return Ok(());
        }
        let near = |v: usize| ((v + m / 2) / m).max(1) * m;
        Err(ShapeError::Size {
            width,
            height,
            multiple: m,
            near_w: near(width),
            near_h: near(height),
        })
    }

    /// Latent frames of a valid pixel-frame count.
    pub fn latent_frames(&self, frames: usize) -> usize {
        (frames.saturating_sub(1)) / self.temporal + 1
    }

    /// Pixel frames of `latent` latent frames.
    pub fn pixel_frames(&self, latent: usize) -> usize {
        latent.saturating_sub(1) * self.temporal + 1
    }

    /// The smallest valid frame count covering `seconds` at `fps` (a scene's clip: it is cut to
    /// the scene's length at assembly, never left short).
    pub fn frames_for(&self, seconds: f64, fps: f64) -> usize {
        let want = (seconds.max(0.0) * fps).ceil() as usize;
        self.nearest_frames(want.max(1)).1
    }

    /// The largest valid size not above `width`×`height` with the same aspect as near as the rule
    /// allows (the generation size of a clip that is scaled to the output at assembly).
    pub fn fit_size(&self, width: usize, height: usize, max_pixels: usize) -> (usize, usize) {
        let m = self.spatial as f64;
        let (w, h) = (width.max(1) as f64, height.max(1) as f64);
        let scale = ((max_pixels as f64) / (w * h)).sqrt().min(1.0);
        let fit = |v: f64| (((v * scale) / m).round().max(1.0) * m) as usize;
        (fit(w), fit(h))
    }

    /// Cuts `frames` into windows of at most `window` frames (both valid counts), each after the
    /// first starting `overlap` frames (a valid count) before the previous one ends, so it can be
    /// conditioned on them. Returns `(start, frames)` pairs in output frame numbers.
    pub fn windows(&self, frames: usize, window: usize, overlap: usize) -> Vec<(usize, usize)> {
        if frames <= window || window <= overlap {
            return vec![(0, frames)];
        }
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let left = frames - start;
            if left <= window {
                out.push((start, self.nearest_frames(left).1));
                break;
            }
            out.push((start, window));
            // The next window repeats the last `overlap` frames of this one.
            start += window - overlap;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ltx_counts_are_8k_plus_1_and_wrong_ones_name_their_neighbours() {
        let r = FrameRule::LTX;
        for ok in [9, 17, 25, 121, 161] {
            assert!(r.check_frames(ok).is_ok(), "{ok}");
        }
        let e = r.check_frames(12).unwrap_err();
        assert_eq!(
            e,
            ShapeError::Frames {
                frames: 12,
                rule: "8k+1".into(),
                below: 9,
                above: 17
            }
        );
        assert!(e.to_string().contains("9 and 17"), "{e}");
        assert_eq!(r.nearest_frames(3), (9, 9));
        assert_eq!(FrameRule::WAN.nearest_frames(80), (77, 81));
    }

    #[test]
    fn sizes_must_be_multiples_and_the_message_says_the_nearest() {
        let r = FrameRule::LTX;
        assert!(r.check_size(768, 512).is_ok());
        let e = r.check_size(770, 500).unwrap_err().to_string();
        assert!(e.contains("768×512"), "{e}");
        assert!(r.check_size(0, 512).is_err());
    }

    #[test]
    fn durations_round_up_to_a_valid_count() {
        let r = FrameRule::LTX;
        assert_eq!(r.frames_for(5.0, 24.0), 121);
        assert_eq!(r.frames_for(0.2, 24.0), 9);
        assert_eq!(r.frames_for(1.0, 24.0), 25);
        assert_eq!(r.latent_frames(121), 16);
        assert_eq!(r.pixel_frames(16), 121);
    }

    #[test]
    fn windows_overlap_and_cover_everything() {
        let r = FrameRule::LTX;
        assert_eq!(r.windows(97, 121, 9), vec![(0, 97)]);
        let w = r.windows(257, 121, 9);
        assert_eq!(w[0], (0, 121));
        assert_eq!(w[1], (112, 121));
        let (s, n) = *w.last().unwrap();
        assert!(s + n >= 257);
        for (_, n) in &w {
            assert!(r.is_valid_frames(*n));
        }
    }

    #[test]
    fn fit_size_keeps_the_aspect_on_the_grid() {
        let r = FrameRule::LTX;
        assert_eq!(r.fit_size(1920, 1080, 768 * 512), (832, 480));
        assert_eq!(r.fit_size(64, 64, 1 << 20), (64, 64));
    }
}
