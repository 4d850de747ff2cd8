//! Shot boundaries: our ports of PySceneDetect's `ContentDetector` and `AdaptiveDetector`
//! (PySceneDetect 0.6.7.1, BSD-3; `scripts/scenedetect-venv.sh` installs that version as the
//! reference the parity test compares against).
//!
//! The pipeline is PySceneDetect's, step for step:
//! 1. frames are downscaled to a width of about 256 px ([`downscale_factor`],
//!    [`downscaled_size`]) with OpenCV's 8-bit `INTER_LINEAR` resize ([`resize`], bit-exact: the
//!    fixed-point coefficients and the rounding of its SIMD vertical pass, and the 2×2 average it
//!    switches to for an exact halving);
//! 2. each frame becomes OpenCV 8-bit HSV (H = hue/2 in 0..=180, S, V = max(R, G, B), OpenCV's
//!    fixed-point tables, bit-exact);
//! 3. a frame's content score is the weighted mean over H, S, V of the mean absolute difference
//!    to the previous frame (hue not circular; default weights 1, 1, 1; the edge component, off by
//!    default, is not ported); the first frame scores 0;
//! 4. `ContentDetector`: a frame scoring ≥ `threshold` (27) is a cut candidate, filtered by the
//!    "merge" flash filter with `min_scene_len` (15) frames; `AdaptiveDetector`: a frame's score
//!    over the mean of the `window_width` (2) frames either side, ≥ `adaptive_threshold` (3.0)
//!    with a score ≥ `min_content_val` (15), at least `min_scene_len` (15) frames after the last
//!    cut (counted from the frame being pushed, as PySceneDetect does).
//!
//! A cut is the number of the first frame of the new shot (PySceneDetect's cut list).
//!
//! Two things PySceneDetect has no notion of: frames may arrive with gaps in their numbers (the
//! analysis decodes windows), and the detector's state is checkpointed (serde). A gap, or a
//! change of frame size, restarts the comparison as at the start of a stream (the next frame
//! scores nothing, the adaptive window empties); the minimum-scene-length bookkeeping carries on.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// PySceneDetect's target processing width (`DEFAULT_MIN_WIDTH`).
pub const TARGET_WIDTH: u32 = 256;

/// `ContentDetector` settings; the defaults are PySceneDetect 0.6.7.1's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentParams {
    /// A frame whose content score reaches this is a cut candidate.
    pub threshold: f64,
    /// The shortest shot, in frames (the flash filter's length).
    pub min_scene_len: u32,
    /// Weights of the hue, saturation and value differences.
    pub weights: [f64; 3],
}

impl Default for ContentParams {
    fn default() -> Self {
        Self {
            threshold: 27.0,
            min_scene_len: 15,
            weights: [1.0, 1.0, 1.0],
        }
    }
}

/// `AdaptiveDetector` settings; the defaults are PySceneDetect 0.6.7.1's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveParams {
    /// The ratio of a frame's score to its neighbours' mean that makes it a cut.
    pub adaptive_threshold: f64,
    /// The shortest shot, in frames.
    pub min_scene_len: u32,
    /// Frames either side of the frame judged (at least 1).
    pub window_width: u32,
    /// The content score a cut needs at least.
    pub min_content_val: f64,
    /// Weights of the hue, saturation and value differences.
    pub weights: [f64; 3],
}

impl Default for AdaptiveParams {
    fn default() -> Self {
        Self {
            adaptive_threshold: 3.0,
            min_scene_len: 15,
            window_width: 2,
            min_content_val: 15.0,
            weights: [1.0, 1.0, 1.0],
        }
    }
}

/// Which detector, with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Detector {
    Content(ContentParams),
    Adaptive(AdaptiveParams),
}

impl Default for Detector {
    fn default() -> Self {
        Detector::Content(ContentParams::default())
    }
}

/// PySceneDetect's automatic downscale factor for a frame whose larger side is `size` pixels
/// (its `compute_downscale_factor(max(width, height))`): 1 below 256 px, else `size / 256`.
pub fn downscale_factor(size: u32) -> f64 {
    if size < TARGET_WIDTH {
        1.0
    } else {
        f64::from(size) / f64::from(TARGET_WIDTH)
    }
}

/// The size PySceneDetect processes a `width`×`height` frame at: each side divided by the
/// automatic [`downscale_factor`] and rounded (half to even, as Python's `round`), at least 1;
/// the frame's own size when the factor is 1.
pub fn downscaled_size(width: u32, height: u32) -> (u32, u32) {
    let f = downscale_factor(width.max(height));
    if f <= 1.0 {
        return (width, height);
    }
    let side = |s: u32| ((f64::from(s) / f).round_ties_even() as u32).max(1);
    (side(width), side(height))
}

/// OpenCV's fixed-point scale for `INTER_LINEAR` coefficients (`INTER_RESIZE_COEF_SCALE`).
const COEF_SCALE: i32 = 2048;

/// Source index and the two fixed-point weights of each destination position along one axis,
/// as OpenCV's `resize` computes them for `INTER_LINEAR` (float arithmetic included).
fn linear_taps(src: u32, dst: u32) -> Vec<(usize, i32, i32)> {
    let scale = f64::from(src) / f64::from(dst);
    (0..dst)
        .map(|d| {
            let f = ((f64::from(d) + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut fx = f - s as f32;
            if s < 0 {
                s = 0;
                fx = 0.0;
            }
            if s >= i64::from(src) - 1 {
                s = i64::from(src) - 1;
                fx = 0.0;
            }
            let w0 = ((1.0 - fx) * COEF_SCALE as f32).round_ties_even() as i32;
            let w1 = (fx * COEF_SCALE as f32).round_ties_even() as i32;
            (s as usize, w0, w1)
        })
        .collect()
}

/// Resizes packed RGB24 (`width`×`height`, rows without padding) to `dst_w`×`dst_h` exactly as
/// OpenCV 4.x `cv2.resize(…, interpolation=INTER_LINEAR)` does on 8-bit 3-channel images on
/// x86-64 (what PySceneDetect's downscale runs). Returns `None` when `rgb` is not that size or a
/// size is zero.
pub fn resize(rgb: &[u8], width: u32, height: u32, dst_w: u32, dst_h: u32) -> Option<Vec<u8>> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 || dst_w == 0 || dst_h == 0 || rgb.len() != w * h * 3 {
        return None;
    }
    if (dst_w, dst_h) == (width, height) {
        return Some(rgb.to_vec());
    }
    let (dw, dh) = (dst_w as usize, dst_h as usize);
    // An exact halving both ways: OpenCV runs its fast INTER_AREA (a rounded 2×2 mean).
    if w == dw * 2 && h == dh * 2 {
        let mut out = vec![0u8; dw * dh * 3];
        for y in 0..dh {
            let (r0, r1) = (&rgb[2 * y * w * 3..], &rgb[(2 * y + 1) * w * 3..]);
            for x in 0..dw * 3 {
                let i = (x / 3) * 6 + x % 3;
                let s = u32::from(r0[i]) + u32::from(r0[i + 3]) + u32::from(r1[i]);
                out[y * dw * 3 + x] = ((s + u32::from(r1[i + 3]) + 2) >> 2) as u8;
            }
        }
        return Some(out);
    }
    let xt = linear_taps(width, dst_w);
    let yt = linear_taps(height, dst_h);
    let row_len = dw * 3;
    // Horizontal pass of one source row into fixed-point sums (×2048).
    let hpass = |y: usize, out: &mut Vec<i32>| {
        out.clear();
        let src = &rgb[y * w * 3..(y + 1) * w * 3];
        for &(s, w0, w1) in &xt {
            for c in 0..3 {
                let v = if s + 1 < w {
                    i32::from(src[s * 3 + c]) * w0 + i32::from(src[(s + 1) * 3 + c]) * w1
                } else {
                    i32::from(src[s * 3 + c]) * COEF_SCALE
                };
                out.push(v);
            }
        }
    };
    let mut out = vec![0u8; row_len * dh];
    // The two horizontally resampled source rows in hand, by source row number.
    let mut slots: [(usize, Vec<i32>); 2] = [
        (usize::MAX, Vec::with_capacity(row_len)),
        (usize::MAX, Vec::with_capacity(row_len)),
    ];
    for (dy, &(s, b0, b1)) in yt.iter().enumerate() {
        let s1 = (s + 1).min(h - 1);
        for (want, other) in [(s, s1), (s1, s)] {
            if slots[0].0 != want && slots[1].0 != want {
                let victim = usize::from(slots[0].0 == other);
                hpass(want, &mut slots[victim].1);
                slots[victim].0 = want;
            }
        }
        let pick = |row: usize| {
            if slots[0].0 == row {
                &slots[0].1
            } else {
                &slots[1].1
            }
        };
        let (r0, r1) = (pick(s), pick(s1));
        let dst = &mut out[dy * row_len..(dy + 1) * row_len];
        // OpenCV's SIMD pass (16 then 8 lanes at a time) and its scalar tail round differently.
        let vec_end = {
            let mut x = 0usize;
            while x + 16 <= row_len {
                x += 16;
            }
            while x + 8 < row_len {
                x += 8;
            }
            x
        };
        for x in 0..row_len {
            let v = if x < vec_end {
                ((((r0[x] >> 4) * b0) >> 16) + (((r1[x] >> 4) * b1) >> 16) + 2) >> 2
            } else {
                (r0[x] * b0 + r1[x] * b1 + (1 << 21)) >> 22
            };
            dst[x] = v.clamp(0, 255) as u8;
        }
    }
    Some(out)
}

/// OpenCV's `sdiv_table` and `hdiv_table180` for 8-bit RGB→HSV (12-bit fixed point).
struct HsvTables {
    sdiv: [i32; 256],
    hdiv: [i32; 256],
}

fn hsv_tables() -> &'static HsvTables {
    static T: std::sync::OnceLock<HsvTables> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = HsvTables {
            sdiv: [0; 256],
            hdiv: [0; 256],
        };
        for i in 1..256 {
            t.sdiv[i] = (f64::from(255 << 12) / i as f64).round_ties_even() as i32;
            t.hdiv[i] = (f64::from(180 << 12) / (6.0 * i as f64)).round_ties_even() as i32;
        }
        t
    })
}

/// A frame as three OpenCV-HSV planes (H, then S, then V).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Hsv {
    width: u32,
    height: u32,
    planes: Vec<u8>,
}

impl Hsv {
    /// `cv2.cvtColor(bgr, COLOR_BGR2HSV)` of packed RGB24, bit-exact.
    fn of(rgb: &[u8], width: u32, height: u32) -> Self {
        let n = width as usize * height as usize;
        let t = hsv_tables();
        let mut planes = vec![0u8; n * 3];
        let (hp, rest) = planes.split_at_mut(n);
        let (sp, vp) = rest.split_at_mut(n);
        for (i, px) in rgb.chunks_exact(3).take(n).enumerate() {
            let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            let v = r.max(g).max(b);
            let diff = v - r.min(g).min(b);
            let s = (diff * t.sdiv[v as usize] + (1 << 11)) >> 12;
            let h = if v == r {
                g - b
            } else if v == g {
                b - r + 2 * diff
            } else {
                r - g + 4 * diff
            };
            let mut h = (h * t.hdiv[diff as usize] + (1 << 11)) >> 12;
            if h < 0 {
                h += 180;
            }
            hp[i] = h.clamp(0, 255) as u8;
            sp[i] = s.clamp(0, 255) as u8;
            vp[i] = v as u8;
        }
        Self {
            width,
            height,
            planes,
        }
    }

    /// The weighted mean of the three planes' mean absolute differences to `prev`.
    fn score(&self, prev: &Hsv, weights: &[f64; 3]) -> f64 {
        let n = self.width as usize * self.height as usize;
        let mut total = 0.0;
        for (p, w) in weights.iter().enumerate() {
            let a = &self.planes[p * n..(p + 1) * n];
            let b = &prev.planes[p * n..(p + 1) * n];
            let sum: u64 = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| u64::from(x.abs_diff(y)))
                .sum();
            total += sum as f64 / n as f64 * w;
        }
        let norm: f64 = weights.iter().map(|w| w.abs()).sum();
        if norm > 0.0 {
            total / norm
        } else {
            0.0
        }
    }
}

/// PySceneDetect's `FlashFilter` in "merge" mode: cut candidates closer than `length` frames
/// are merged, the merged run's last candidate becoming the cut once `length` quiet frames pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct MergeFilter {
    length: u64,
    last_above: Option<u64>,
    merge_enabled: bool,
    merge_triggered: bool,
    merge_start: u64,
}

impl MergeFilter {
    fn filter(&mut self, frame: u64, above: bool) -> Vec<u64> {
        if self.length == 0 {
            return if above { vec![frame] } else { vec![] };
        }
        let last_above = *self.last_above.get_or_insert(frame);
        let min_length_met = frame.saturating_sub(last_above) >= self.length;
        if above {
            self.last_above = Some(frame);
        }
        let last_above = self.last_above.unwrap_or(frame);
        if self.merge_triggered {
            let merged = last_above.saturating_sub(self.merge_start);
            if min_length_met && !above && merged >= self.length {
                self.merge_triggered = false;
                return vec![last_above];
            }
            return vec![];
        }
        if !above {
            return vec![];
        }
        if min_length_met {
            self.merge_enabled = true;
            return vec![frame];
        }
        if self.merge_enabled {
            self.merge_triggered = true;
            self.merge_start = frame;
        }
        vec![]
    }
}

/// Cut detection over a stream of frames; `Clone + Serialize + Deserialize` so the state can be
/// checkpointed between analysis chunks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CutDetector {
    detector: Detector,
    /// The previous frame's number and HSV planes.
    prev: Option<(u64, Hsv)>,
    /// The last pushed frame's content score (`None` when it had no previous frame).
    score: Option<f64>,
    flash: MergeFilter,
    /// Adaptive: the frames of the current window and their scores.
    window: VecDeque<(u64, f64)>,
    /// Adaptive: the frame the minimum scene length is counted from.
    last_cut: Option<u64>,
}

impl CutDetector {
    pub fn new(detector: Detector) -> Self {
        let length = match &detector {
            Detector::Content(p) => u64::from(p.min_scene_len),
            Detector::Adaptive(_) => 0,
        };
        Self {
            detector,
            prev: None,
            score: None,
            flash: MergeFilter {
                length,
                ..MergeFilter::default()
            },
            window: VecDeque::new(),
            last_cut: None,
        }
    }

    /// The detector and settings this was made with.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Feeds frame number `frame` (packed RGB24, `width`×`height`, already at the processing
    /// size: see [`downscaled_size`] and [`resize`]). Returns the cuts this frame confirmed
    /// (first frames of new shots; they may lie before `frame`). A frame whose buffer is not
    /// `width`×`height`×3 bytes, or a frame number not after the previous one, is ignored.
    pub fn push(&mut self, frame: u64, rgb: &[u8], width: u32, height: u32) -> Vec<u64> {
        if rgb.len() != width as usize * height as usize * 3 || width == 0 || height == 0 {
            return vec![];
        }
        if let Some((p, _)) = &self.prev {
            if frame <= *p {
                return vec![];
            }
        }
        let hsv = Hsv::of(rgb, width, height);
        let weights = match &self.detector {
            Detector::Content(p) => p.weights,
            Detector::Adaptive(p) => p.weights,
        };
        let restart = match &self.prev {
            Some((p, prev)) => *p + 1 != frame || prev.width != width || prev.height != height,
            None => true,
        };
        self.score = match (&self.prev, restart) {
            (Some((_, prev)), false) => Some(hsv.score(prev, &weights)),
            _ => None,
        };
        self.prev = Some((frame, hsv));
        // As PySceneDetect, a frame without a predecessor scores 0.
        let score = self.score.unwrap_or(0.0);
        match &self.detector {
            Detector::Content(p) => self.flash.filter(frame, score >= p.threshold),
            Detector::Adaptive(p) => {
                let p = p.clone();
                if restart {
                    self.window.clear();
                }
                self.adaptive(&p, frame, score)
            }
        }
    }

    fn adaptive(&mut self, p: &AdaptiveParams, frame: u64, score: f64) -> Vec<u64> {
        let last_cut = *self.last_cut.get_or_insert(frame);
        let ww = p.window_width.max(1) as usize;
        self.window.push_back((frame, score));
        while self.window.len() > 2 * ww + 1 {
            self.window.pop_front();
        }
        if self.window.len() < 2 * ww + 1 {
            return vec![];
        }
        let (target, target_score) = self.window[ww];
        let others: f64 = self
            .window
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != ww)
            .map(|(_, (_, s))| s)
            .sum();
        let mean = others / (2.0 * ww as f64);
        let ratio = if mean.abs() >= 0.00001 {
            (target_score / mean).min(255.0)
        } else if target_score >= p.min_content_val {
            255.0
        } else {
            0.0
        };
        let threshold_met = ratio >= p.adaptive_threshold && target_score >= p.min_content_val;
        let min_length_met = frame.saturating_sub(last_cut) >= u64::from(p.min_scene_len);
        if threshold_met && min_length_met {
            self.last_cut = Some(target);
            return vec![target];
        }
        vec![]
    }

    /// Says the stream ended; returns cuts confirmed by its end. PySceneDetect 0.6.7.1 confirms
    /// none there (a merge still open at the end is dropped; the adaptive window's last frames are
    /// never judged), so neither do we; the call exists so callers need not know that.
    pub fn finish(&mut self) -> Vec<u64> {
        vec![]
    }

    /// The last pushed frame's content score; `None` for a frame with no predecessor (the first,
    /// or the first after a gap).
    pub fn score(&self) -> Option<f64> {
        self.score
    }

    /// Runs a whole sequence of `(frame, rgb)` at one size through a new detector.
    pub fn detect_all<'a>(
        detector: Detector,
        frames: impl IntoIterator<Item = (u64, &'a [u8])>,
        width: u32,
        height: u32,
    ) -> Vec<u64> {
        let mut d = Self::new(detector);
        let mut cuts = Vec::new();
        for (n, rgb) in frames {
            cuts.extend(d.push(n, rgb, width, height));
        }
        cuts.extend(d.finish());
        cuts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 16;
    const H: u32 = 9;

    fn solid(rgb: [u8; 3]) -> Vec<u8> {
        rgb.iter()
            .copied()
            .cycle()
            .take((W * H * 3) as usize)
            .collect()
    }

    /// Frames 0.. of `shots`: (colour, frames) runs.
    fn run(d: Detector, frames: &[Vec<u8>]) -> Vec<u64> {
        CutDetector::detect_all(
            d,
            frames.iter().enumerate().map(|(i, f)| (i as u64, &f[..])),
            W,
            H,
        )
    }

    fn shots(list: &[([u8; 3], usize)]) -> Vec<Vec<u8>> {
        list.iter()
            .flat_map(|(c, n)| std::iter::repeat_n(solid(*c), *n))
            .collect()
    }

    #[test]
    fn hsv_matches_opencv_on_known_pixels() {
        // Values from cv2.cvtColor(…, COLOR_BGR2HSV) (OpenCV 4.10): RGB → (H, S, V).
        let cases: [([u8; 3], [u8; 3]); 6] = [
            ([255, 0, 0], [0, 255, 255]),
            ([0, 255, 0], [60, 255, 255]),
            ([0, 0, 255], [120, 255, 255]),
            ([10, 20, 30], [105, 170, 30]),
            ([200, 100, 150], [165, 127, 200]),
            ([7, 7, 7], [0, 0, 7]),
        ];
        for (rgb, hsv) in cases {
            let h = Hsv::of(&rgb, 1, 1);
            assert_eq!(h.planes, hsv.to_vec(), "rgb {rgb:?}");
        }
    }

    #[test]
    fn a_hard_cut_is_its_first_frame() {
        let frames = shots(&[([200, 30, 30], 20), ([30, 30, 200], 20)]);
        assert_eq!(run(Detector::default(), &frames), vec![20]);
        let mut d = CutDetector::new(Detector::default());
        d.push(0, &frames[0], W, H);
        assert_eq!(d.score(), None);
        d.push(1, &frames[1], W, H);
        assert_eq!(d.score(), Some(0.0));
    }

    #[test]
    fn the_score_is_the_mean_hsv_difference() {
        // Red (0, 255, 255) to blue (120, 255, 255): hue differs by 120 on every pixel.
        let mut d = CutDetector::new(Detector::default());
        d.push(0, &solid([255, 0, 0]), W, H);
        d.push(1, &solid([0, 0, 255]), W, H);
        assert_eq!(d.score(), Some(40.0));
    }

    #[test]
    fn flashes_follow_the_merge_filter() {
        // Cut at 20, a 2-frame white flash at 25..27: the flash's edges fall within
        // min_scene_len of the cut and are merged away (PySceneDetect 0.6.7.1 gives [20]).
        let frames = shots(&[
            ([200, 30, 30], 20),
            ([30, 30, 200], 5),
            ([255, 255, 255], 2),
            ([30, 30, 200], 30),
        ]);
        assert_eq!(run(Detector::default(), &frames), vec![20]);
        // A flash within min_scene_len of the start is dropped entirely.
        let frames = shots(&[
            ([30, 30, 200], 5),
            ([255, 255, 255], 1),
            ([30, 30, 200], 40),
        ]);
        assert_eq!(run(Detector::default(), &frames), Vec::<u64>::new());
        // A flash in the middle of a long shot: its first frame is a cut and its return is
        // merged into it (PySceneDetect gives [40] for both detectors).
        let frames = shots(&[
            ([200, 30, 30], 40),
            ([255, 255, 255], 2),
            ([200, 30, 30], 40),
        ]);
        assert_eq!(run(Detector::default(), &frames), vec![40]);
        let adaptive = Detector::Adaptive(AdaptiveParams::default());
        assert_eq!(run(adaptive, &frames), vec![40]);
    }

    #[test]
    fn min_scene_len_holds_back_close_cuts() {
        // Candidates at 16, 24 and 45: 16 is a cut; 24 opens a merge that 45 (≥ 15 frames on)
        // extends; the merge closes at 45 once 15 quiet frames followed it.
        let frames = shots(&[
            ([200, 30, 30], 16),
            ([30, 30, 200], 8),
            ([20, 20, 20], 21),
            ([200, 30, 30], 30),
        ]);
        assert_eq!(run(Detector::default(), &frames), vec![16, 45]);
        // A cut before min_scene_len frames have passed since the first frame is not one.
        let frames = shots(&[([200, 30, 30], 10), ([30, 30, 200], 40)]);
        assert_eq!(run(Detector::default(), &frames), Vec::<u64>::new());
        // With a shorter minimum it is.
        let p = ContentParams {
            min_scene_len: 5,
            ..ContentParams::default()
        };
        assert_eq!(run(Detector::Content(p), &frames), vec![10]);
    }

    #[test]
    fn adaptive_uses_the_ratio_to_its_neighbours() {
        let frames = shots(&[([200, 30, 30], 20), ([30, 30, 200], 20)]);
        let adaptive = || Detector::Adaptive(AdaptiveParams::default());
        assert_eq!(run(adaptive(), &frames), vec![20]);
        // Steady change scoring 20 a frame (greys alternating by 60, then reds alternating by
        // 60) with one jump of ~117 at frame 20: the jump is the adaptive detector's only cut
        // (ratio ≥ 3), while a content threshold of 15 fires all along.
        let frames: Vec<Vec<u8>> = (0..60u8)
            .map(|i| {
                let v = if i % 2 == 0 { 160 } else { 100 };
                if i < 20 {
                    solid([v, v, v])
                } else {
                    solid([v + 95, 0, 0])
                }
            })
            .collect();
        let mut d = CutDetector::new(adaptive());
        let mut cuts = Vec::new();
        let mut scores = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            cuts.extend(d.push(i as u64, f, W, H));
            scores.push(d.score().unwrap_or(0.0));
        }
        assert_eq!(scores[19], 20.0);
        assert!(scores[20] >= 3.0 * 20.0, "{scores:?}");
        assert_eq!(cuts, vec![20]);
        let content15 = Detector::Content(ContentParams {
            threshold: 15.0,
            min_scene_len: 1,
            ..ContentParams::default()
        });
        assert!(run(content15, &frames).len() > 40);
        // The window is 2 frames either side: a cut needs 2 frames after it to be confirmed.
        let mut d = CutDetector::new(adaptive());
        let frames = shots(&[([200, 30, 30], 20), ([30, 30, 200], 3)]);
        let mut at = None;
        for (i, f) in frames.iter().enumerate() {
            if !d.push(i as u64, f, W, H).is_empty() {
                at = Some(i);
            }
        }
        assert_eq!(at, Some(22));
    }

    #[test]
    fn a_gap_restarts_the_comparison() {
        let a = solid([200, 30, 30]);
        let b = solid([30, 30, 200]);
        let mut d = CutDetector::new(Detector::default());
        for i in 0..20 {
            assert!(d.push(i, &a, W, H).is_empty());
        }
        // Frame 40 differs from frame 19, but frames 20..40 were not seen: no score, no cut.
        assert!(d.push(40, &b, W, H).is_empty());
        assert_eq!(d.score(), None);
        assert!(d.push(41, &b, W, H).is_empty());
        assert_eq!(d.score(), Some(0.0));
        assert_eq!(d.push(42, &a, W, H), vec![42]);
    }

    #[test]
    fn state_survives_a_checkpoint() {
        let frames = shots(&[([200, 30, 30], 20), ([30, 30, 200], 20), ([20, 20, 20], 20)]);
        for det in [
            Detector::default(),
            Detector::Adaptive(AdaptiveParams::default()),
        ] {
            let whole = run(det.clone(), &frames);
            let mut d = CutDetector::new(det);
            let mut cuts = Vec::new();
            for (i, f) in frames.iter().enumerate() {
                if i == 30 {
                    let json = serde_json::to_string(&d).unwrap_or_default();
                    d = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
                }
                cuts.extend(d.push(i as u64, f, W, H));
            }
            assert_eq!(cuts, whole);
            assert_eq!(whole, vec![20, 40]);
        }
    }

    #[test]
    fn downscale_follows_pyscenedetect() {
        assert_eq!(downscale_factor(200), 1.0);
        assert_eq!(downscale_factor(1920), 7.5);
        assert_eq!(downscaled_size(1920, 1080), (256, 144));
        assert_eq!(downscaled_size(1280, 720), (256, 144));
        assert_eq!(downscaled_size(64, 36), (64, 36));
        assert_eq!(downscaled_size(300, 200), (256, 171));
    }

    #[test]
    fn resize_halving_and_linear() {
        // 4×2 → 2×1: the 2×2 mean, rounded.
        let src: Vec<u8> = (0..24).map(|i| (i * 10) as u8).collect();
        let out = resize(&src, 4, 2, 2, 1).unwrap_or_default();
        let expect: Vec<u8> = (0..6)
            .map(|x| {
                let i = (x / 3) * 6 + x % 3;
                let s = src[i] as u32 + src[i + 3] as u32 + src[i + 12] as u32 + src[i + 15] as u32;
                ((s + 2) >> 2) as u8
            })
            .collect();
        assert_eq!(out, expect);
        // A flat image stays flat at any size; a wrong buffer is refused.
        let flat = vec![77u8; 30 * 20 * 3];
        assert_eq!(resize(&flat, 30, 20, 7, 5), Some(vec![77u8; 7 * 5 * 3]));
        assert_eq!(resize(&flat, 31, 20, 7, 5), None);
        // 3 → 2 along x: OpenCV's taps (0, 1.0), (1.5 → 1 + 0.75·(2−1)).
        let row = [0u8, 0, 0, 100, 100, 100, 200, 200, 200];
        assert_eq!(
            resize(&row, 3, 1, 2, 1),
            Some(vec![25, 25, 25, 175, 175, 175])
        );
    }
}
