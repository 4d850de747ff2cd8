//! The embedded post-processing engines: Lanczos upscaling (libswscale) and motion-compensated
//! interpolation (libavfilter's `minterpolate`), both in process, on CPU, without weights.

use std::collections::VecDeque;

use ffmpeg_next::Rational;

use crate::engines::post::{
    check_rates, is_scene_cut, retimed_frames, tap, FrameSink, FrameSource, Interpolator, Tap,
    Upscaler,
};
use crate::engines::EngineError;
use crate::media::image::RgbImage;
use crate::media::minterp::MotionGraph;
use crate::media::resample::LanczosResizer;
use crate::media::MediaError;

/// Lanczos (3 lobes) resizing, each RGB channel on its own: any factor, any size.
#[derive(Debug, Default)]
pub struct Lanczos {
    resizer: LanczosResizer,
}

impl Lanczos {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Upscaler for Lanczos {
    fn id(&self) -> String {
        "lanczos@1".into()
    }

    fn upscale(
        &mut self,
        img: &RgbImage,
        width: u32,
        height: u32,
    ) -> Result<RgbImage, EngineError> {
        self.resizer
            .resize(img, width, height)
            .map_err(|e| media_fail(&self.id(), e))
    }
}

fn media_fail(engine: &str, e: MediaError) -> EngineError {
    EngineError::Failed {
        engine: engine.to_string(),
        message: e.to_string(),
    }
}

/// Motion-compensated interpolation through an in-process `minterpolate` filter graph, on the
/// same clock as the pairwise engines ([`crate::engines::post::retime_pairwise`]): output frame
/// `j` sits at source position `j · in/out`; whole positions are the source frame itself (not
/// its trip through the filter), pairs that are a scene cut ([`is_scene_cut`]) repeat the nearer
/// frame, positions past the last frame hold it, and [`retimed_frames`] frames are written.
#[derive(Debug, Default)]
pub struct Minterpolate;

impl Minterpolate {
    pub fn new() -> Self {
        Self
    }
}

/// A rate as the exact fraction libavfilter wants (60 → 60/1, 29.97… → 30000/1001).
fn rational(fps: f64) -> Rational {
    let r = Rational::from(fps);
    if r.numerator() > 0 && r.denominator() > 0 {
        r
    } else {
        Rational::new(fps.round().max(1.0) as i32, 1)
    }
}

/// The source frames an interpolation still needs, and the cut decision for the last pair.
struct Window {
    frames: VecDeque<(u64, RgbImage)>,
    cut: Option<(u64, bool)>,
}

impl Window {
    fn get(&self, i: u64) -> Option<&RgbImage> {
        self.frames.iter().find(|(k, _)| *k == i).map(|(_, f)| f)
    }

    fn is_cut(&mut self, i: u64) -> bool {
        if let Some((k, cut)) = self.cut {
            if k == i {
                return cut;
            }
        }
        let cut = match (self.get(i), self.get(i + 1)) {
            (Some(a), Some(b)) => is_scene_cut(a, b),
            _ => false,
        };
        self.cut = Some((i, cut));
        cut
    }
}

/// What output frame `j` needs.
enum Need {
    /// Ready now: this frame (`None`: the window lost it, a bug reported as a failure).
    Frame(Option<RgbImage>),
    /// The graph's frame `j`.
    Graph,
    /// Source frames not yet read.
    Later,
}

impl Interpolator for Minterpolate {
    fn id(&self) -> String {
        "minterpolate@1".into()
    }

    fn retime(
        &mut self,
        input: &mut FrameSource<'_>,
        in_fps: f64,
        out_fps: f64,
        out: &mut FrameSink<'_>,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<u64, EngineError> {
        let id = self.id();
        check_rates(&id, in_fps, out_fps)?;
        let fail = |e: MediaError| media_fail(&id, e);
        let mut window = Window {
            frames: VecDeque::new(),
            cut: None,
        };
        let mut graph: Option<MotionGraph> = None;
        // Frames the graph made that are not written yet, by output number.
        let mut made: VecDeque<(u64, RgbImage)> = VecDeque::new();
        let mut read = 0u64;
        let mut ended = false;
        let mut j = 0u64;
        loop {
            // What frame j needs, reading source frames (and feeding the graph) until it is known.
            let need = match tap(j, in_fps, out_fps) {
                Tap::Copy(i) if i < read => Need::Frame(window.get(i).cloned()),
                Tap::Between(i, t) if i + 1 < read => {
                    if window.is_cut(i) {
                        let near = if t < 0.5 { i } else { i + 1 };
                        Need::Frame(window.get(near).cloned())
                    } else {
                        Need::Graph
                    }
                }
                _ if ended => {
                    if j >= retimed_frames(read, in_fps, out_fps) {
                        return Ok(j);
                    }
                    // Past the last source frame: hold it.
                    Need::Frame(window.frames.back().map(|(_, f)| f.clone()))
                }
                _ => Need::Later,
            };
            let lost = || EngineError::Failed {
                engine: id.clone(),
                message: format!("output frame {j} lost its source frame"),
            };
            let frame = match need {
                Need::Frame(f) => Some(f.ok_or_else(lost)?),
                Need::Graph => {
                    while made.front().is_some_and(|(k, _)| *k < j) {
                        made.pop_front();
                    }
                    match made.front() {
                        Some((k, _)) if *k == j => made.pop_front().map(|(_, f)| f),
                        // The graph has not made it yet: read on (the graph runs a frame behind).
                        _ if !ended => None,
                        // The graph ended without it: the nearer source frame stands in.
                        _ => {
                            let near = match tap(j, in_fps, out_fps) {
                                Tap::Between(i, t) => window.get(if t < 0.5 { i } else { i + 1 }),
                                Tap::Copy(i) => window.get(i),
                            };
                            Some(near.cloned().ok_or_else(lost)?)
                        }
                    }
                }
                Need::Later => None,
            };
            if let Some(frame) = frame {
                if cancelled() {
                    return Err(EngineError::Cancelled);
                }
                out(frame)?;
                j += 1;
                // Keep the frames from the one the next output starts at.
                let keep = match tap(j, in_fps, out_fps) {
                    Tap::Copy(i) | Tap::Between(i, _) => i,
                };
                while window.frames.front().is_some_and(|(k, _)| *k < keep) {
                    window.frames.pop_front();
                }
                continue;
            }
            // Read one more source frame into the window and the graph.
            if cancelled() {
                return Err(EngineError::Cancelled);
            }
            match input.next() {
                Some(img) => {
                    let img = img?;
                    let g = match graph.as_mut() {
                        Some(g) => g,
                        None => graph.insert(
                            MotionGraph::new(
                                img.width,
                                img.height,
                                rational(in_fps),
                                rational(out_fps),
                            )
                            .map_err(fail)?,
                        ),
                    };
                    g.push(&img, read as i64).map_err(fail)?;
                    window.frames.push_back((read, img));
                    read += 1;
                }
                None => {
                    ended = true;
                    if let (Some(g), Some((_, last))) = (graph.as_mut(), window.frames.back()) {
                        // The last frame once more, a frame later: the graph makes the frames up
                        // to the last one without waiting for a frame that never comes.
                        g.push(last, read as i64).map_err(fail)?;
                        g.finish().map_err(fail)?;
                    }
                }
            }
            if let Some(g) = graph.as_mut() {
                while let Some((k, f)) = g.pull().map_err(fail)? {
                    if k >= j {
                        made.push_back((k, f));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::resample::psnr;

    /// A soft bright disc gliding right over a grey ramp, at time `x` (pixels of travel).
    fn disc(x: f64, w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for py in 0..h {
            for px in 0..w {
                let d = (px as f64 - 20.0 - x).hypot(py as f64 - h as f64 / 2.0);
                let a = (1.0 - (d - 9.0) / 2.0).clamp(0.0, 1.0);
                let bg = 60.0 + 80.0 * py as f64 / h as f64;
                let v = bg + (235.0 - bg) * a;
                img.put(px as i64, py as i64, [v as u8, v as u8, (v * 0.9) as u8]);
            }
        }
        img
    }

    fn retime(frames: Vec<RgbImage>, i: f64, o: f64) -> Vec<RgbImage> {
        let mut src = frames.into_iter().map(Ok);
        let mut got = Vec::new();
        let n = Minterpolate
            .retime(
                &mut src,
                i,
                o,
                &mut |f| {
                    got.push(f);
                    Ok(())
                },
                &|| false,
            )
            .unwrap();
        assert_eq!(n as usize, got.len());
        got
    }

    #[test]
    fn lanczos_makes_the_exact_size() {
        let img = disc(0.0, 40, 30);
        let big = Lanczos::new().upscale(&img, 120, 90).unwrap();
        assert_eq!((big.width, big.height), (120, 90));
        let back = Lanczos::new().upscale(&big, 40, 30).unwrap();
        assert!(psnr(&img, &back) > 30.0, "{:.1} dB", psnr(&img, &back));
    }

    #[test]
    fn minterpolate_counts_copies_and_moves() {
        let (w, h) = (96, 48);
        // 12 frames at 12 fps, the disc 4 px further each frame; to 30 fps.
        let src: Vec<RgbImage> = (0..12).map(|k| disc(4.0 * k as f64, w, h)).collect();
        let got = retime(src.clone(), 12.0, 30.0);
        assert_eq!(got.len(), 30);
        let mut better = 0;
        let mut between = 0;
        for (j, f) in got.iter().enumerate() {
            match tap(j as u64, 12.0, 30.0) {
                Tap::Copy(i) => assert!(f == &src[i as usize], "frame {j} is not source {i}"),
                Tap::Between(i, t) if i + 1 < 12 => {
                    between += 1;
                    let truth = disc(4.0 * (i as f64 + t), w, h);
                    let near = if t < 0.5 { i } else { i + 1 } as usize;
                    let (mine, held) = (psnr(&truth, f), psnr(&truth, &src[near]));
                    if mine > held {
                        better += 1;
                    }
                }
                _ => {}
            }
        }
        assert!(
            better * 10 >= between * 8,
            "only {better} of {between} in-between frames beat the nearer source frame"
        );
    }

    #[test]
    fn minterpolate_repeats_frames_at_a_cut() {
        let (w, h) = (64, 32);
        let mut src: Vec<RgbImage> = (0..6).map(|k| disc(3.0 * k as f64, w, h)).collect();
        src.extend((0..6).map(|k| {
            let mut img = disc(3.0 * k as f64, w, h);
            for p in img.data.chunks_exact_mut(3) {
                p[0] = 255 - p[0];
                p[2] = 30;
            }
            img
        }));
        let got = retime(src.clone(), 10.0, 25.0);
        assert_eq!(got.len(), 30);
        for (j, f) in got.iter().enumerate() {
            if let Tap::Between(5, t) = tap(j as u64, 10.0, 25.0) {
                let near = if t < 0.5 { 5 } else { 6 };
                assert!(
                    f == &src[near],
                    "frame {j} at the cut is not a copy of frame {near}"
                );
            }
        }
    }

    #[test]
    fn minterpolate_refuses_a_lower_rate_and_stops_when_cancelled() {
        let src: Vec<RgbImage> = (0..4).map(|k| disc(k as f64, 32, 16)).collect();
        let mut it = src.clone().into_iter().map(Ok);
        let e = Minterpolate
            .retime(&mut it, 30.0, 24.0, &mut |_| Ok(()), &|| false)
            .unwrap_err();
        assert!(e.to_string().contains("only raises"), "{e}");
        let mut it = src.into_iter().map(Ok);
        let e = Minterpolate
            .retime(&mut it, 10.0, 20.0, &mut |_| Ok(()), &|| true)
            .unwrap_err();
        assert!(matches!(e, EngineError::Cancelled));
    }
}
