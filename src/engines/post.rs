//! Post-processing engines: upscaling pictures and retiming clips to the output rate.
//!
//! Two capabilities, each with an embedded default that needs no weights (Lanczos through
//! swscale; motion-compensated interpolation through libav's `minterpolate`) and model engines
//! from `reelsmith-post` (Real-ESRGAN, RIFE) that take over when installed and selected.

use crate::media::image::RgbImage;

use super::EngineError;

/// Makes a picture larger.
pub trait Upscaler: Send {
    /// Engine and model id, recorded in artifacts and reports (`lanczos@1`, `realesrgan-x4plus@…`).
    fn id(&self) -> String;
    /// `img` scaled to exactly `width`×`height` (the caller keeps the aspect ratio).
    fn upscale(&mut self, img: &RgbImage, width: u32, height: u32)
        -> Result<RgbImage, EngineError>;
}

/// Where a retimed clip's frames go, one at a time, in order.
pub type FrameSink<'a> = dyn FnMut(RgbImage) -> Result<(), EngineError> + 'a;
/// Where a clip's frames come from, one at a time, in order.
pub type FrameSource<'a> = dyn Iterator<Item = Result<RgbImage, EngineError>> + 'a;

/// Makes in-between frames: retimes a clip from its rate to a higher one.
pub trait Interpolator: Send {
    fn id(&self) -> String;
    /// Every frame of `input` (at `in_fps`) retimed to `out_fps`, pushed to `out` in order;
    /// `cancelled` is checked between output frames. Returns the number of frames written.
    /// Never interpolates across a cut: frames on either side of a scene change are repeated.
    fn retime(
        &mut self,
        input: &mut FrameSource<'_>,
        in_fps: f64,
        out_fps: f64,
        out: &mut FrameSink<'_>,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<u64, EngineError>;
}

/// A model that makes one frame at time `t` ∈ (0, 1) between two (RIFE): the pairwise engines
/// are retimed by [`retime_pairwise`].
pub trait PairInterpolator: Send {
    fn id(&self) -> String;
    fn between(&mut self, a: &RgbImage, b: &RgbImage, t: f64) -> Result<RgbImage, EngineError>;
}

// ---------------------------------------------------------------------------------------------
// Retiming: the clock every interpolator follows, scene cuts, and pairwise models.

/// Two positions closer than this (in source frames) are the same frame.
const SAME_FRAME: f64 = 1e-6;

/// A content score at or above this (0..255, see [`cut_score`]) between two consecutive frames
/// is a scene cut: PySceneDetect's ContentDetector default.
pub const CUT_THRESHOLD: f64 = 27.0;

/// What output frame `j` of a retime shows, on the source's frame clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tap {
    /// Source frame `i`, copied as it is.
    Copy(u64),
    /// The moment `t` ∈ (0, 1) of the way from source frame `i` to `i + 1`.
    Between(u64, f64),
}

/// Where output frame `j` falls in the source: position `j · in_fps / out_fps` (frame 0 of both
/// at the same instant); a position within 1e-6 of a whole frame is that frame.
pub fn tap(j: u64, in_fps: f64, out_fps: f64) -> Tap {
    let p = j as f64 * in_fps / out_fps;
    let whole = p.round();
    if (p - whole).abs() < SAME_FRAME {
        Tap::Copy(whole as u64)
    } else {
        let i = p.floor();
        Tap::Between(i as u64, p - i)
    }
}

/// Frames a retime of `n_in` source frames writes: the same duration at the new rate,
/// `round(n_in · out_fps / in_fps)` (24 → 60 fps: 48 frames become 120). Output frames whose
/// position lies past the last source frame repeat it.
pub fn retimed_frames(n_in: u64, in_fps: f64, out_fps: f64) -> u64 {
    (n_in as f64 * out_fps / in_fps).round() as u64
}

/// Refuses rates a retime cannot follow: both must be positive and finite, and the output rate
/// at least the input's (retiming makes in-between frames; it never drops frames).
pub fn check_rates(engine: &str, in_fps: f64, out_fps: f64) -> Result<(), EngineError> {
    let fail = |message: String| EngineError::Failed {
        engine: engine.to_string(),
        message,
    };
    if !(in_fps.is_finite() && in_fps > 0.0 && out_fps.is_finite() && out_fps > 0.0) {
        return Err(fail(format!(
            "cannot retime from {in_fps} to {out_fps} fps: rates must be positive"
        )));
    }
    if out_fps < in_fps {
        return Err(fail(format!(
            "cannot retime from {in_fps} down to {out_fps} fps: interpolation only raises the rate"
        )));
    }
    Ok(())
}

/// How different two frames' contents are, 0..255: both are averaged down to at most 64 cells
/// on their longer side, each cell described by hue, chroma (max − min) and value (max), and the
/// mean absolute differences of the three averaged — PySceneDetect's ContentDetector score
/// (HSV, threshold 27), in our own variant: chroma instead of saturation (so a near-black cell
/// does not swing from 0 to full saturation on a speck of noise), and a hue difference (taken
/// around the circle) that counts as much as the less colourful cell has colour (grey has no
/// hue). Frames of different sizes score 255.
pub fn cut_score(a: &RgbImage, b: &RgbImage) -> f64 {
    if (a.width, a.height) != (b.width, b.height) || a.width == 0 || a.height == 0 {
        return 255.0;
    }
    let (ha, hb) = (hsv_cells(a), hsv_cells(b));
    let mut sum = [0.0f64; 3];
    for (p, q) in ha.iter().zip(&hb) {
        let dh = (p[0] - q[0]).abs();
        sum[0] += dh.min(256.0 - dh) * p[1].min(q[1]) / 255.0;
        sum[1] += (p[1] - q[1]).abs();
        sum[2] += (p[2] - q[2]).abs();
    }
    let n = ha.len().max(1) as f64;
    (sum[0] + sum[1] + sum[2]) / (3.0 * n)
}

/// Whether `b` starts another scene than `a` (a cut): [`cut_score`] ≥ [`CUT_THRESHOLD`].
/// Interpolators never make frames between such a pair.
pub fn is_scene_cut(a: &RgbImage, b: &RgbImage) -> bool {
    cut_score(a, b) >= CUT_THRESHOLD
}

/// `img` box-averaged down to at most 64 cells on its longer side, each cell as hue, chroma and
/// value, 0..255.
fn hsv_cells(img: &RgbImage) -> Vec<[f64; 3]> {
    let (w, h) = (img.width as usize, img.height as usize);
    let step = w.max(h).div_ceil(64).max(1);
    let (cw, ch) = (w.div_ceil(step), h.div_ceil(step));
    let mut cells = vec![[0.0f64; 4]; cw * ch];
    for y in 0..h {
        let row = &img.data[y * w * 3..(y + 1) * w * 3];
        for (x, px) in row.chunks_exact(3).enumerate() {
            let c = &mut cells[(y / step) * cw + x / step];
            c[0] += px[0] as f64;
            c[1] += px[1] as f64;
            c[2] += px[2] as f64;
            c[3] += 1.0;
        }
    }
    cells
        .iter()
        .map(|c| {
            let n = c[3].max(1.0);
            hsv(c[0] / n, c[1] / n, c[2] / n)
        })
        .collect()
}

/// RGB 0..255 → hue (256 = the full circle), chroma and value, each 0..255.
fn hsv(r: f64, g: f64, b: f64) -> [f64; 3] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d <= 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    };
    [h * 256.0 / 6.0, d, max]
}

/// The last two source frames a pairwise retime has read, and whether they are a cut.
struct Pair<'s, 'a> {
    input: &'s mut FrameSource<'a>,
    /// The two most recent frames, the older first.
    frames: [Option<(u64, RgbImage)>; 2],
    /// Frames read so far.
    read: u64,
    ended: bool,
    /// The pair last checked for a cut: `(i, cut between i and i + 1)`.
    cut: Option<(u64, bool)>,
}

impl Pair<'_, '_> {
    /// Reads until frame `i` is held or the source ends.
    fn fill(&mut self, i: u64) -> Result<(), EngineError> {
        while !self.ended && self.read <= i {
            match self.input.next() {
                Some(frame) => {
                    let frame = frame?;
                    self.frames.swap(0, 1);
                    self.frames[1] = Some((self.read, frame));
                    self.read += 1;
                }
                None => self.ended = true,
            }
        }
        Ok(())
    }

    fn last(&self) -> Option<&RgbImage> {
        self.frames[1].as_ref().map(|(_, f)| f)
    }
}

/// Frame `i` among `frames`, if held.
fn held(frames: &[Option<(u64, RgbImage)>; 2], i: u64) -> Option<&RgbImage> {
    frames
        .iter()
        .flatten()
        .find(|(k, _)| *k == i)
        .map(|(_, f)| f)
}

/// Retimes a clip with a model that makes one frame between two: output frame `j` (see
/// [`tap`]) is source frame `j · in/out` copied when that is a whole frame, else
/// `model.between(floor, ceil, fraction)` — unless the two are a scene cut
/// ([`is_scene_cut`]), when the nearer of them is repeated (as vs-rife does). Writes
/// [`retimed_frames`] frames; holds two source frames at a time; `cancelled` is asked before
/// every output frame. `out_fps` below `in_fps` is refused.
pub fn retime_pairwise(
    model: &mut dyn PairInterpolator,
    input: &mut FrameSource<'_>,
    in_fps: f64,
    out_fps: f64,
    out: &mut FrameSink<'_>,
    cancelled: &dyn Fn() -> bool,
) -> Result<u64, EngineError> {
    check_rates(&model.id(), in_fps, out_fps)?;
    let mut pair = Pair {
        input,
        frames: [None, None],
        read: 0,
        ended: false,
        cut: None,
    };
    let mut j = 0u64;
    loop {
        if cancelled() {
            return Err(EngineError::Cancelled);
        }
        let t = tap(j, in_fps, out_fps);
        pair.fill(match t {
            Tap::Copy(i) => i,
            Tap::Between(i, _) => i + 1,
        })?;
        if pair.ended && j >= retimed_frames(pair.read, in_fps, out_fps) {
            return Ok(j);
        }
        let frame = match t {
            Tap::Copy(i) => held(&pair.frames, i).or(pair.last()).cloned(),
            Tap::Between(i, f) => match (held(&pair.frames, i), held(&pair.frames, i + 1)) {
                (Some(a), Some(b)) => {
                    let cut = match pair.cut {
                        Some((k, cut)) if k == i => cut,
                        _ => {
                            let cut = is_scene_cut(a, b);
                            pair.cut = Some((i, cut));
                            cut
                        }
                    };
                    if cut {
                        Some(if f < 0.5 { a } else { b }.clone())
                    } else {
                        Some(model.between(a, b, f)?)
                    }
                }
                // Past the last source frame: hold it.
                _ => pair.last().cloned(),
            },
        };
        let Some(frame) = frame else {
            return Ok(j);
        };
        out(frame)?;
        j += 1;
    }
}

/// Any [`PairInterpolator`] as an [`Interpolator`], retimed by [`retime_pairwise`].
pub struct PairRetimer<M: PairInterpolator>(pub M);

impl<M: PairInterpolator> Interpolator for PairRetimer<M> {
    fn id(&self) -> String {
        self.0.id()
    }

    fn retime(
        &mut self,
        input: &mut FrameSource<'_>,
        in_fps: f64,
        out_fps: f64,
        out: &mut FrameSink<'_>,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<u64, EngineError> {
        retime_pairwise(&mut self.0, input, in_fps, out_fps, out, cancelled)
    }
}

/// The simplest pair model: a cross-fade, `(1 − t)·a + t·b` per channel.
pub struct Blend;

impl PairInterpolator for Blend {
    fn id(&self) -> String {
        "blend@1".into()
    }

    fn between(&mut self, a: &RgbImage, b: &RgbImage, t: f64) -> Result<RgbImage, EngineError> {
        if (a.width, a.height) != (b.width, b.height) {
            return Err(EngineError::Failed {
                engine: self.id(),
                message: format!(
                    "cannot blend a {}×{} frame with a {}×{} one",
                    a.width, a.height, b.width, b.height
                ),
            });
        }
        let t = t.clamp(0.0, 1.0) as f32;
        let data = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(&p, &q)| (p as f32 + (q as f32 - p as f32) * t).round() as u8)
            .collect();
        Ok(RgbImage {
            width: a.width,
            height: a.height,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth scene: `warm` (orange and red waves) or cool (blue and green rings), its pattern
    /// moved `shift` pixels to the right.
    fn scene(warm: bool, shift: f64, w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let (xf, yf) = (x as f64 - shift, y as f64);
                let px = if warm {
                    let v = ((xf / 9.0).sin() + (yf / 13.0).cos()) * 0.25 + 0.5;
                    [200 + (50.0 * v) as u8, (60.0 + 120.0 * v) as u8, 20]
                } else {
                    let r = ((xf - 40.0).hypot(yf - 30.0) / 6.0).sin() * 0.5 + 0.5;
                    [
                        10,
                        (80.0 + 100.0 * r) as u8,
                        (150.0 + 100.0 * (1.0 - r)) as u8,
                    ]
                };
                img.put(x as i64, y as i64, px);
            }
        }
        img
    }

    fn run(frames: Vec<RgbImage>, in_fps: f64, out_fps: f64) -> Result<Vec<RgbImage>, EngineError> {
        let mut source = frames.into_iter().map(Ok);
        let mut got = Vec::new();
        let n = retime_pairwise(
            &mut Blend,
            &mut source,
            in_fps,
            out_fps,
            &mut |f| {
                got.push(f);
                Ok(())
            },
            &|| false,
        )?;
        assert_eq!(n as usize, got.len());
        Ok(got)
    }

    fn numbered(n: u64) -> Vec<RgbImage> {
        (0..n)
            .map(|k| RgbImage::filled(4, 2, [k as u8 * 4, 0, 0]))
            .collect()
    }

    #[test]
    fn frame_counts_keep_the_duration() {
        for (n, i, o, want) in [
            (48u64, 24.0, 60.0, 120usize),
            (30, 30.0, 60.0, 60),
            (32, 16.0, 30.0, 60),
            (25, 24.0, 60.0, 63), // 62.5 rounds up
            (1, 24.0, 60.0, 3),   // 2.5 rounds up: one picture held
            (10, 25.0, 25.0, 10), // the same rate copies
            (0, 24.0, 60.0, 0),
        ] {
            assert_eq!(retimed_frames(n, i, o) as usize, want, "{n} at {i} → {o}");
            let got = run(numbered(n), i, o).unwrap();
            assert_eq!(got.len(), want, "{n} frames {i} → {o} fps");
        }
    }

    #[test]
    fn whole_positions_copy_and_others_sit_between() {
        // 30 → 60: every other frame is a source frame, the rest are halfway.
        let src = numbered(5);
        let got = run(src.clone(), 30.0, 60.0).unwrap();
        for (j, f) in got.iter().enumerate() {
            match tap(j as u64, 30.0, 60.0) {
                Tap::Copy(i) => assert_eq!(f, &src[(i as usize).min(4)], "frame {j}"),
                Tap::Between(i, t) => {
                    assert_eq!(t, 0.5);
                    let want = if i < 4 { 4 * i as u8 + 2 } else { 16 };
                    assert_eq!(f.get(0, 0)[0], want, "frame {j}");
                }
            }
        }
        // 24 → 60: positions 0, 0.4, 0.8, 1.2, 1.6, 2 …; 2.0000000000000004 is frame 2.
        assert_eq!(tap(5, 24.0, 60.0), Tap::Copy(2));
        assert!(matches!(tap(3, 24.0, 60.0), Tap::Between(1, t) if (t - 0.2).abs() < 1e-9));
    }

    #[test]
    fn lowering_the_rate_is_refused() {
        let e = run(numbered(10), 25.0, 24.0).unwrap_err().to_string();
        assert!(e.contains("only raises the rate"), "{e}");
        assert!(run(numbered(10), 0.0, 24.0).is_err());
        assert!(run(numbered(10), 24.0, f64::NAN).is_err());
    }

    #[test]
    fn unrelated_pictures_are_a_cut_and_shifted_ones_are_not() {
        let (w, h) = (160, 90);
        let a = scene(true, 0.0, w, h);
        let moved = cut_score(&a, &scene(true, 3.0, w, h));
        let other = cut_score(&a, &scene(false, 0.0, w, h));
        let rings = cut_score(&scene(false, 0.0, w, h), &scene(false, 4.0, w, h));
        assert!(moved < CUT_THRESHOLD / 2.0, "a 3-pixel pan scored {moved}");
        assert!(rings < CUT_THRESHOLD / 2.0, "a 4-pixel pan scored {rings}");
        assert!(other > 40.0, "another scene scored {other}");
        eprintln!("pans {moved:.1} and {rings:.1}, another scene {other:.1}");
        assert!(!is_scene_cut(&a, &scene(true, 3.0, w, h)));
        assert!(is_scene_cut(&a, &scene(false, 0.0, w, h)));
        assert!(
            is_scene_cut(&a, &scene(true, 0.0, w / 2, h)),
            "a new size is a cut"
        );
        assert_eq!(cut_score(&a, &a), 0.0);
        // Near black, a speck of colour is no cut (HSV saturation would jump from 0 to 255).
        let black = RgbImage::filled(8, 8, [0, 0, 0]);
        assert!(cut_score(&black, &RgbImage::filled(8, 8, [6, 0, 0])) < 5.0);
        // Hue wraps: red just below and just above 0° are the same colour.
        let r1 = RgbImage::filled(8, 8, [250, 0, 6]);
        let r2 = RgbImage::filled(8, 8, [250, 6, 0]);
        assert!(cut_score(&r1, &r2) < 3.0, "{}", cut_score(&r1, &r2));
    }

    #[test]
    fn a_cut_inside_a_clip_repeats_frames_instead_of_blending() {
        let (w, h) = (96, 54);
        // Ten frames panning over one scene, then ten over another.
        let src: Vec<RgbImage> = (0..20)
            .map(|k| scene(k < 10, 2.0 * k as f64, w, h))
            .collect();
        let got = run(src.clone(), 10.0, 25.0).unwrap();
        assert_eq!(got.len(), 50);
        let mut held = 0;
        for (j, f) in got.iter().enumerate() {
            match tap(j as u64, 10.0, 25.0) {
                Tap::Between(9, t) => {
                    // Between the last frame of one scene and the first of the next.
                    let want = if t < 0.5 { &src[9] } else { &src[10] };
                    assert!(
                        f == want,
                        "frame {j} (t = {t}) is not a copy of the nearer frame"
                    );
                    assert!(f != &Blend.between(&src[9], &src[10], t).unwrap());
                    held += 1;
                }
                Tap::Between(i, t) if i + 1 < 20 => {
                    let want = Blend.between(&src[i as usize], &src[i as usize + 1], t);
                    assert!(
                        f == &want.unwrap(),
                        "frame {j} is not the blend inside a scene"
                    );
                }
                _ => {}
            }
        }
        assert_eq!(held, 2, "positions 9.2 and 9.6 fall between the scenes");
    }

    #[test]
    fn cancelling_stops_between_frames() {
        let mut source = numbered(10).into_iter().map(Ok);
        let mut n = 0;
        let calls = std::cell::Cell::new(0);
        let r = retime_pairwise(
            &mut Blend,
            &mut source,
            10.0,
            20.0,
            &mut |_| {
                n += 1;
                Ok(())
            },
            &|| {
                calls.set(calls.get() + 1);
                calls.get() > 3
            },
        );
        assert!(matches!(r, Err(EngineError::Cancelled)));
        assert_eq!(n, 3);
    }
}
