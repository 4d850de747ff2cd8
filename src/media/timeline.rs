//! The timeline: clips in their slots, drawn at any time `t` — camera moves over stills,
//! generated clips sampled on the output's clock, and the transitions between them.
//!
//! A generated clip ([`FrameSource`]) is read frame by frame from its file as the timeline
//! reaches it (two decoded and two scaled frames kept), so memory does not grow with the video;
//! clips whose time has passed are closed.
//!
//! Its clock starts when it first shows: at the start of the transition into it, or, after a
//! generated morph (which ends on the scene's keyframe), when that morph ends. It plays at the
//! rate that ends it exactly when it stops showing, if that is within 25% of its own (see
//! [`RETIME`]). Source position `p = (t − appears) · rate` blends frames `⌊p⌋` and `⌊p⌋ + 1` by `p − ⌊p⌋` (a clean frame blend,
//! until an interpolation stage exists), and the last frame holds when the slot outlasts the
//! clip. Frames are cover-cropped to the output's aspect (like stills) and scaled by swscale
//! (bicubic, BT.709 limited range).

use std::path::{Path, PathBuf};

use ff::{format, frame, software};
use ffmpeg_next as ff;

use super::clip::{ClipInfo, ClipReader};
use super::compose::{blend_into, copy_frame, new_frame, render_window, Blend, CameraPath, Still};
use super::MediaError;

/// How far a generated clip's rate may be changed to fill its time on screen exactly (25%:
/// motion still reads naturally; the model's length estimate is made before the voice exists).
pub const RETIME: f64 = 0.25;

/// The largest centred window of `out_w:out_h` aspect in a `w`×`h` picture: `(x, y, w, h)`.
pub fn cover_crop(w: u32, h: u32, out_w: u32, out_h: u32) -> (u32, u32, u32, u32) {
    let target = out_w as f64 / out_h.max(1) as f64;
    let (cw, ch) = if w as f64 / h.max(1) as f64 > target {
        (((h as f64 * target).round() as u32).clamp(1, w), h)
    } else {
        (w, ((w as f64 / target).round() as u32).clamp(1, h))
    };
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}

/// A generated clip drawn on the timeline: opened when first drawn, closed by
/// [`FrameSource::release`].
pub struct FrameSource {
    path: PathBuf,
    info: ClipInfo,
    reader: Option<ClipReader>,
    /// RGB → YUV 4:2:0 at the output size, from the cover-cropped window.
    scaler: Option<software::scaling::Context>,
    /// The output size the scaler and `scaled` are for.
    size: (u32, u32),
    /// The cropped RGB frame handed to the scaler.
    crop: Option<frame::Video>,
    /// The last two frames scaled for the output, by source index.
    scaled: [Option<(u32, frame::Video)>; 2],
}

impl std::fmt::Debug for FrameSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSource")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("open", &self.reader.is_some())
            .finish()
    }
}

impl FrameSource {
    /// Checks that `path` is a readable clip (its header); the file is opened again when drawn.
    pub fn open(path: &Path) -> Result<Self, MediaError> {
        let info = ClipReader::open(path)?.info();
        Ok(Self {
            path: path.to_path_buf(),
            info,
            reader: None,
            scaler: None,
            size: (0, 0),
            crop: None,
            scaled: [None, None],
        })
    }

    pub fn info(&self) -> ClipInfo {
        self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is open (tests watch memory being given back).
    pub fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Closes the file and frees the frames kept; drawing again reopens it.
    pub fn release(&mut self) {
        self.reader = None;
        self.scaled = [None, None];
        self.crop = None;
        self.scaler = None;
        self.size = (0, 0);
    }

    /// Draws the clip at source position `pos` (in frames; between two frames, their blend;
    /// before the first or after the last, that frame) into the YUV 4:2:0 frame `out`.
    pub fn draw(&mut self, pos: f64, out: &mut frame::Video) -> Result<(), MediaError> {
        let last = self.info.frames.saturating_sub(1);
        let pos = if pos.is_finite() {
            pos.clamp(0.0, last as f64)
        } else {
            0.0
        };
        let i0 = (pos.floor() as u32).min(last);
        let frac = pos - i0 as f64;
        // Weights are in 1/256ths (as the blends are): closer than that is one frame.
        let wb = (frac * 256.0).round() as u32;
        let size = (out.width(), out.height());
        if wb == 0 || i0 >= last {
            let s = self.scaled_frame(i0, None, size)?;
            self.copy_slot(s, out)
        } else if wb >= 256 {
            let s = self.scaled_frame(i0 + 1, None, size)?;
            self.copy_slot(s, out)
        } else {
            let s0 = self.scaled_frame(i0, None, size)?;
            let s1 = self.scaled_frame(i0 + 1, Some(i0), size)?;
            self.copy_slot(s0, out)?;
            let b = self.slot(s1)?;
            blend_into(out, b, frac, Blend::Crossfade);
            Ok(())
        }
    }

    fn slot(&self, s: usize) -> Result<&frame::Video, MediaError> {
        self.scaled[s].as_ref().map(|(_, f)| f).ok_or_else(|| {
            MediaError::Internal(format!("{}: no scaled frame", self.path.display()))
        })
    }

    fn copy_slot(&self, s: usize, out: &mut frame::Video) -> Result<(), MediaError> {
        copy_frame(self.slot(s)?, out);
        Ok(())
    }

    /// Makes sure source frame `i` is scaled for an output of `size`, keeping the frame `keep`
    /// if it is held; returns its slot.
    fn scaled_frame(
        &mut self,
        i: u32,
        keep: Option<u32>,
        size: (u32, u32),
    ) -> Result<usize, MediaError> {
        if self.size != size {
            self.scaled = [None, None];
            self.scaler = None;
            self.crop = None;
            self.size = size;
        }
        let held =
            |s: &Option<(u32, frame::Video)>, k: u32| s.as_ref().is_some_and(|(j, _)| *j == k);
        if let Some(s) = self.scaled.iter().position(|s| held(s, i)) {
            return Ok(s);
        }
        let slot = match keep {
            Some(k) if held(&self.scaled[0], k) => 1,
            Some(k) if held(&self.scaled[1], k) => 0,
            _ => usize::from(self.scaled[0].is_some() && self.scaled[1].is_none()),
        };
        if self.reader.is_none() {
            self.reader = Some(ClipReader::open(&self.path)?);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Err(MediaError::Internal("clip reader vanished".into()));
        };
        let img = reader.frame(i)?;
        let (x, y, cw, ch) = cover_crop(img.width, img.height, size.0, size.1);
        let crop = self
            .crop
            .get_or_insert_with(|| frame::Video::new(format::Pixel::RGB24, cw, ch));
        if (crop.width(), crop.height()) != (cw, ch) {
            *crop = frame::Video::new(format::Pixel::RGB24, cw, ch);
            self.scaler = None;
        }
        {
            let stride = crop.stride(0);
            let row = cw as usize * 3;
            let d = crop.data_mut(0);
            for r in 0..ch as usize {
                let s = ((y as usize + r) * img.width as usize + x as usize) * 3;
                d[r * stride..r * stride + row].copy_from_slice(&img.data[s..s + row]);
            }
        }
        if self.scaler.is_none() {
            self.scaler = Some(scaler(cw, ch, size, &self.path)?);
        }
        let target = match self.scaled[slot].take() {
            Some((_, f)) => f,
            None => new_frame(size.0, size.1),
        };
        let mut target = target;
        if let Some(sc) = self.scaler.as_mut() {
            sc.run(crop, &mut target).map_err(|e| MediaError::Ffmpeg {
                what: format!("{}: scaling", self.path.display()),
                source: e,
            })?;
        }
        self.scaled[slot] = Some((i, target));
        Ok(slot)
    }
}

/// RGB24 `w`×`h` → YUV 4:2:0 at `size`: bicubic, full chroma input, BT.709 limited range (as
/// the stills are converted, so a generated clip and a still match).
fn scaler(
    w: u32,
    h: u32,
    size: (u32, u32),
    path: &Path,
) -> Result<software::scaling::Context, MediaError> {
    use software::scaling::Flags;
    let mut ctx = software::scaling::Context::get(
        format::Pixel::RGB24,
        w,
        h,
        format::Pixel::YUV420P,
        size.0,
        size.1,
        Flags::BICUBIC | Flags::ACCURATE_RND | Flags::FULL_CHR_H_INP,
    )
    .map_err(|e| MediaError::Ffmpeg {
        what: format!("{}: scaling", path.display()),
        source: e,
    })?;
    // SAFETY: our own, initialised context; the coefficient table is libswscale's static one.
    let rc = unsafe {
        let coef = ff::ffi::sws_getCoefficients(ff::ffi::SWS_CS_ITU709);
        ff::ffi::sws_setColorspaceDetails(ctx.as_mut_ptr(), coef, 1, coef, 0, 0, 1 << 16, 1 << 16)
    };
    if rc < 0 {
        return Err(MediaError::Internal(format!(
            "{}: libswscale cannot convert to BT.709",
            path.display()
        )));
    }
    Ok(ctx)
}

/// What a clip shows.
#[derive(Debug)]
pub enum Picture<'a> {
    /// A camera move over a still, drawn at any time.
    Camera { still: &'a Still, path: CameraPath },
    /// A generated clip, sampled at the timeline's time.
    Frames(Box<FrameSource>),
}

/// One clip on a timeline: what it shows and where it sits.
#[derive(Debug)]
pub struct TimelineClip<'a> {
    pub picture: Picture<'a>,
    /// Start and length of the clip's slot on the timeline, seconds.
    pub start: f64,
    pub duration: f64,
    /// How this clip hands over to the next one, and over how many seconds (centred on the cut).
    pub out_blend: Blend,
    pub out_seconds: f64,
    /// The generated clip from this scene into the next: with [`Blend::Morph`] it fills the
    /// transition window (its frames spread over the window, first to last), instead of
    /// either scene. Without it a morph is a crossfade.
    pub morph: Option<FrameSource>,
}

impl<'a> TimelineClip<'a> {
    /// A camera move over `still` in the slot `start`..`start + duration`, no generated morph.
    pub fn camera(
        still: &'a Still,
        path: CameraPath,
        start: f64,
        duration: f64,
        out_blend: Blend,
        out_seconds: f64,
    ) -> Self {
        Self {
            picture: Picture::Camera { still, path },
            start,
            duration,
            out_blend,
            out_seconds,
            morph: None,
        }
    }
}

/// Renders frames of a sequence of clips whose slots tile the timeline.
pub struct TimelineRenderer<'a> {
    clips: Vec<TimelineClip<'a>>,
    width: u32,
    height: u32,
    scratch: frame::Video,
}

impl<'a> TimelineRenderer<'a> {
    pub fn new(clips: Vec<TimelineClip<'a>>, width: u32, height: u32) -> Self {
        Self {
            clips,
            width,
            height,
            scratch: new_frame(width, height),
        }
    }

    /// The clips, in order (tests look at which files are open).
    pub fn clips(&self) -> &[TimelineClip<'a>] {
        &self.clips
    }

    fn half_in(&self, i: usize) -> f64 {
        if i == 0 {
            0.0
        } else {
            let p = &self.clips[i - 1];
            if p.out_blend == Blend::Cut {
                0.0
            } else {
                p.out_seconds / 2.0
            }
        }
    }

    fn half_out(&self, i: usize) -> f64 {
        let c = &self.clips[i];
        if i + 1 >= self.clips.len() || c.out_blend == Blend::Cut {
            0.0
        } else {
            c.out_seconds / 2.0
        }
    }

    /// Whether the transition out of clip `i` is a generated morph that is drawn.
    fn morph_drawn(&self, i: usize) -> bool {
        let c = &self.clips[i];
        c.out_blend == Blend::Morph && c.morph.is_some() && self.half_out(i) > 0.0
    }

    /// When clip `i` first shows: the start of the transition into it, or the end of a drawn
    /// morph into it (which ends on this scene's keyframe, the clip's first frame).
    fn appears(&self, i: usize) -> f64 {
        let c = &self.clips[i];
        let hi = self.half_in(i);
        if i > 0 && self.morph_drawn(i - 1) {
            c.start + hi
        } else {
            c.start - hi
        }
    }

    /// When clip `i` stops showing: the start of a drawn morph out of it (whose first frame is
    /// the clip's last), else the end of the transition out of it.
    fn disappears(&self, i: usize) -> f64 {
        let c = &self.clips[i];
        let ho = self.half_out(i);
        if self.morph_drawn(i) {
            c.start + c.duration - ho
        } else {
            c.start + c.duration + ho
        }
    }

    /// The rate a generated clip plays at: the one that ends it exactly when it stops showing
    /// (no frozen tail, no cut motion, and a morph after it starts from the frame on screen),
    /// kept within ±[`RETIME`] of its own rate; past that it plays at its own rate, holding its
    /// last frame or cut off.
    fn rate(&self, i: usize, info: &ClipInfo) -> f64 {
        let span = self.disappears(i) - self.appears(i);
        if span <= 0.0 || info.frames < 2 || info.fps <= 0.0 {
            return info.fps;
        }
        let exact = (info.frames - 1) as f64 / span;
        if (exact / info.fps - 1.0).abs() <= RETIME {
            exact
        } else {
            info.fps
        }
    }

    fn draw_clip(&mut self, i: usize, t: f64, out: &mut frame::Video) -> Result<(), MediaError> {
        let pre = self.half_in(i);
        let post = self.half_out(i);
        let appears = self.appears(i);
        let rate = match &self.clips[i].picture {
            Picture::Frames(src) => self.rate(i, &src.info()),
            Picture::Camera { .. } => 0.0,
        };
        let (w, h) = (self.width, self.height);
        let c = &mut self.clips[i];
        match &mut c.picture {
            Picture::Camera { still, path } => {
                let span = c.duration + pre + post;
                let u = if span > 0.0 {
                    (t - c.start + pre) / span
                } else {
                    0.0
                };
                let win = path.window(u, still.width(), still.height(), w, h);
                render_window(still, win, out);
                Ok(())
            }
            Picture::Frames(src) => src.draw((t - appears) * rate, out),
        }
    }

    /// Draws the morph out of clip `i` at progress `u` (0..=1) of its window.
    fn draw_morph(&mut self, i: usize, u: f64, out: &mut frame::Video) -> Result<(), MediaError> {
        match self.clips[i].morph.as_mut() {
            Some(m) => {
                let last = m.info().frames.saturating_sub(1) as f64;
                m.draw(u.clamp(0.0, 1.0) * last, out)
            }
            None => Ok(()),
        }
    }

    /// Closes the generated clips whose time is over at `t` (they reopen if drawn again).
    fn release_before(&mut self, t: f64) {
        for j in 0..self.clips.len() {
            let gone = self.clips[j].start + self.clips[j].duration + self.half_out(j) < t;
            if !gone {
                continue;
            }
            let c = &mut self.clips[j];
            if let Picture::Frames(src) = &mut c.picture {
                if src.is_open() {
                    src.release();
                }
            }
            if let Some(m) = c.morph.as_mut() {
                if m.is_open() {
                    m.release();
                }
            }
        }
    }

    /// Draws what is on screen at `t`: the clip into `a`, and during a transition the clip
    /// being blended to into `b`, returning how to blend (`a` is the outgoing clip). A drawn
    /// morph fills `a` alone.
    pub fn layers(
        &mut self,
        t: f64,
        a: &mut frame::Video,
        b: &mut frame::Video,
    ) -> Result<Option<(f64, Blend)>, MediaError> {
        if self.clips.is_empty() {
            return Ok(None);
        }
        self.release_before(t);
        let i = self.clips.iter().rposition(|c| c.start <= t).unwrap_or(0);
        let (start, end) = (
            self.clips[i].start,
            self.clips[i].start + self.clips[i].duration,
        );
        let ho = self.half_out(i);
        if ho > 0.0 && t >= end - ho {
            let alpha = (t - (end - ho)) / (2.0 * ho);
            if self.morph_drawn(i) {
                self.draw_morph(i, alpha, a)?;
                return Ok(None);
            }
            self.draw_clip(i, t, a)?;
            self.draw_clip(i + 1, t, b)?;
            return Ok(Some((alpha, self.clips[i].out_blend)));
        }
        let hi = self.half_in(i);
        if hi > 0.0 && t < start + hi {
            let alpha = (t - (start - hi)) / (2.0 * hi);
            if self.morph_drawn(i - 1) {
                self.draw_morph(i - 1, alpha, a)?;
                return Ok(None);
            }
            self.draw_clip(i - 1, t, a)?;
            self.draw_clip(i, t, b)?;
            return Ok(Some((alpha, self.clips[i - 1].out_blend)));
        }
        self.draw_clip(i, t, a)?;
        Ok(None)
    }

    /// Draws the timeline at time `t` (seconds) into `out`.
    pub fn render(&mut self, t: f64, out: &mut frame::Video) -> Result<(), MediaError> {
        if self.clips.is_empty() {
            return Ok(());
        }
        let mut scratch = std::mem::replace(&mut self.scratch, frame::Video::empty());
        let drawn = self.layers(t, out, &mut scratch);
        if let Ok(Some((alpha, kind))) = &drawn {
            blend_into(out, &scratch, *alpha, *kind);
        }
        self.scratch = scratch;
        drawn.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::clip::ClipWriter;
    use crate::media::compose::CameraPose;
    use crate::media::image::RgbImage;

    /// Writes `frames` as a clip at `fps` and opens it for the timeline.
    fn clip(dir: &Path, name: &str, fps: f64, frames: &[RgbImage]) -> FrameSource {
        let path = dir.join(name);
        let mut w = ClipWriter::create(&path, frames[0].width, frames[0].height, fps).unwrap();
        for f in frames {
            w.push(f).unwrap();
        }
        w.finish().unwrap();
        FrameSource::open(&path).unwrap()
    }

    fn grey(w: u32, h: u32, v: u8) -> RgbImage {
        RgbImage::filled(w, h, [v, v, v])
    }

    /// Luma of the pixel at (x, y).
    fn luma(f: &frame::Video, x: usize, y: usize) -> u8 {
        f.data(0)[y * f.stride(0) + x]
    }

    /// Limited-range luma of a grey level (BT.709 and BT.601 agree on greys).
    fn y_of(v: u8) -> i32 {
        16 + (v as i32 * 219 + 127) / 255
    }

    fn assert_near(got: u8, want: i32, what: &str) {
        assert!(
            (got as i32 - want).abs() <= 2,
            "{what}: luma {got}, want {want}"
        );
    }

    fn same(a: &frame::Video, b: &frame::Video) -> bool {
        (0..3).all(|p| {
            let (w, h) = if p == 0 {
                (a.width() as usize, a.height() as usize)
            } else {
                (
                    a.width().div_ceil(2) as usize,
                    a.height().div_ceil(2) as usize,
                )
            };
            (0..h).all(|y| {
                a.data(p)[y * a.stride(p)..y * a.stride(p) + w]
                    == b.data(p)[y * b.stride(p)..y * b.stride(p) + w]
            })
        })
    }

    #[test]
    fn cover_crop_keeps_the_output_aspect_centred() {
        assert_eq!(cover_crop(768, 512, 1920, 1080), (0, 40, 768, 432));
        assert_eq!(cover_crop(768, 512, 1080, 1920), (240, 0, 288, 512));
        assert_eq!(cover_crop(640, 360, 1280, 720), (0, 0, 640, 360));
    }

    #[test]
    fn generated_frames_are_bt709_and_cover_cropped() {
        let dir = tempfile::tempdir().unwrap();
        // Red in the middle, green bars left and right that a 1:1 output crops away.
        let mut img = RgbImage::filled(48, 24, [0, 255, 0]);
        for y in 0..24 {
            for x in 12..36 {
                img.put(x, y, [255, 0, 0]);
            }
        }
        let mut src = clip(dir.path(), "red.mkv", 24.0, &[img]);
        let mut out = new_frame(32, 32);
        src.draw(0.0, &mut out).unwrap();
        // BT.709 limited range: red is (63, 102, 240) (BT.601 would give Y 81).
        for (x, y) in [(1, 1), (16, 16), (30, 30)] {
            assert_near(luma(&out, x, y), 63, "red");
        }
        let (u, v) = (
            out.data(1)[8 * out.stride(1) + 8],
            out.data(2)[8 * out.stride(2) + 8],
        );
        assert!(
            (u as i32 - 102).abs() <= 2 && (v as i32 - 240).abs() <= 2,
            "{u} {v}"
        );
    }

    #[test]
    fn positions_between_frames_blend_and_the_ends_hold() {
        let dir = tempfile::tempdir().unwrap();
        let frames = [grey(16, 16, 0), grey(16, 16, 255), grey(16, 16, 100)];
        let mut src = clip(dir.path(), "c.mkv", 8.0, &frames);
        let mut out = new_frame(16, 16);
        for (pos, want) in [
            (0.0, y_of(0)),
            (0.5, (y_of(0) + y_of(255)) / 2),
            (0.25, (3 * y_of(0) + y_of(255)) / 4),
            (1.0, y_of(255)),
            (1.5, (y_of(255) + y_of(100)) / 2),
            (2.0, y_of(100)),
            (7.0, y_of(100)),
            (-3.0, y_of(0)),
        ] {
            src.draw(pos, &mut out).unwrap();
            assert_near(luma(&out, 8, 8), want, &format!("position {pos}"));
        }
    }

    fn black_and_white() -> (Still, Still) {
        (
            Still::from_rgb(&grey(32, 18, 0)),
            Still::from_rgb(&grey(32, 18, 255)),
        )
    }

    fn still_path() -> CameraPath {
        let p = CameraPose {
            cx: 0.5,
            cy: 0.5,
            zoom: 1.0,
        };
        CameraPath { from: p, to: p }
    }

    #[test]
    fn a_generated_clip_plays_on_the_output_clock_and_holds_its_last_frame() {
        let dir = tempfile::tempdir().unwrap();
        // Eight frames at 8 fps: one second, levels 0, 30, … 210.
        let frames: Vec<_> = (0..8).map(|k| grey(32, 18, (k * 30) as u8)).collect();
        let src = clip(dir.path(), "c.mkv", 8.0, &frames);
        let tclip = TimelineClip {
            picture: Picture::Frames(Box::new(src)),
            start: 0.0,
            duration: 2.0,
            out_blend: Blend::Cut,
            out_seconds: 0.0,
            morph: None,
        };
        let mut r = TimelineRenderer::new(vec![tclip], 32, 18);
        let mut out = new_frame(32, 18);
        for n in 0..48 {
            let t = n as f64 / 24.0;
            r.render(t, &mut out).unwrap();
            let p = (t * 8.0).min(7.0);
            let lo = p.floor();
            let want = y_of((lo * 30.0) as u8) as f64 * (1.0 - (p - lo))
                + y_of(((lo + 1.0).min(7.0) * 30.0) as u8) as f64 * (p - lo);
            assert_near(
                luma(&out, 16, 9),
                want.round() as i32,
                &format!("output frame {n}"),
            );
        }
    }

    #[test]
    fn a_segment_starting_mid_clip_draws_the_same_frames() {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<_> = (0..40)
            .map(|k| {
                let mut img = grey(40, 24, 0);
                for y in 0..24 {
                    for x in 0..40 {
                        let v = ((x * 6 + y * 3 + k * 9) % 256) as u8;
                        img.put(x as i64, y as i64, [v, 255 - v, (k * 5) as u8]);
                    }
                }
                img
            })
            .collect();
        let make = || TimelineClip {
            picture: Picture::Frames(Box::new(clip(dir.path(), "c.mkv", 8.0, &frames))),
            start: 0.0,
            duration: 5.0,
            out_blend: Blend::Cut,
            out_seconds: 0.0,
            morph: None,
        };
        let mut all = TimelineRenderer::new(vec![make()], 40, 24);
        let mut seq = Vec::new();
        for n in 0..120 {
            let mut f = new_frame(40, 24);
            all.render(n as f64 / 24.0, &mut f).unwrap();
            seq.push(f);
        }
        // A renderer that starts at frame 77 (a resumed segment) and one that goes back.
        let mut late = TimelineRenderer::new(vec![make()], 40, 24);
        for n in (77..120).chain(3..9) {
            let mut f = new_frame(40, 24);
            late.render(n as f64 / 24.0, &mut f).unwrap();
            assert!(same(&f, &seq[n]), "frame {n} differs");
        }
        assert!(!same(&seq[77], &seq[78]), "the clip moves");
    }

    #[test]
    fn a_morph_fills_the_transition_window_and_the_next_clip_starts_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (black, _) = black_and_white();
        // The morph: five frames 40, 80 … 200; the next scene: a clip starting at 250.
        let morph: Vec<_> = (1..=5).map(|k| grey(32, 18, (k * 40) as u8)).collect();
        let next: Vec<_> = (0..16)
            .map(|k| grey(32, 18, (250 - k * 10) as u8))
            .collect();
        let clips = vec![
            TimelineClip {
                picture: Picture::Camera {
                    still: &black,
                    path: still_path(),
                },
                start: 0.0,
                duration: 2.0,
                out_blend: Blend::Morph,
                out_seconds: 1.0,
                morph: Some(clip(dir.path(), "morph.mkv", 24.0, &morph)),
            },
            TimelineClip {
                picture: Picture::Frames(Box::new(clip(dir.path(), "next.mkv", 8.0, &next))),
                start: 2.0,
                duration: 2.0,
                out_blend: Blend::Cut,
                out_seconds: 0.0,
                morph: None,
            },
        ];
        let mut r = TimelineRenderer::new(clips, 32, 18);
        let mut out = new_frame(32, 18);
        let mut at = |t: f64| {
            r.render(t, &mut out).unwrap();
            luma(&out, 16, 9)
        };
        assert_near(at(1.0), y_of(0), "scene 1 before the window");
        // The window is 1.5 s .. 2.5 s; its five frames spread over it, first to last.
        assert_near(at(1.5), y_of(40), "window start: the morph's first frame");
        assert_near(at(1.75), y_of(80), "a quarter in: its second");
        assert_near(at(2.0), y_of(120), "the cut: its middle frame");
        assert_near(at(2.125), (y_of(120) + y_of(160)) / 2, "between two frames");
        assert_near(at(2.4999), y_of(200), "window end: its last frame");
        // After it, the next scene's clip starts from its first frame.
        assert_near(at(2.5), y_of(250), "the next clip's first frame");
        // Its 16 frames (15 intervals, 1.875 s at 8 fps) fill its 1.5 s on screen: played at
        // 10 fps (within the 25% retime), 2.5 frames later at 2.75 s, its last at the end.
        assert_near(
            at(2.75),
            (y_of(230) + y_of(220)) / 2,
            "two and a half frames later (retimed to 10 fps)",
        );
        assert_near(at(3.999), y_of(100), "its last frame as it ends");
        // The first scene's generated morph is closed once its time is over.
        assert!(!r.clips()[0].morph.as_ref().unwrap().is_open());
    }

    #[test]
    fn a_morph_without_its_clip_is_a_crossfade() {
        let (black, white) = black_and_white();
        let make = |blend: Blend| {
            vec![
                TimelineClip::camera(&black, still_path(), 0.0, 2.0, blend, 1.0),
                TimelineClip::camera(&white, still_path(), 2.0, 2.0, Blend::Cut, 0.0),
            ]
        };
        let mut morph = TimelineRenderer::new(make(Blend::Morph), 32, 18);
        let mut fade = TimelineRenderer::new(make(Blend::Crossfade), 32, 18);
        let (mut a, mut b) = (new_frame(32, 18), new_frame(32, 18));
        for t in [1.4, 1.6, 2.0, 2.3] {
            morph.render(t, &mut a).unwrap();
            fade.render(t, &mut b).unwrap();
            assert!(same(&a, &b), "t = {t}");
        }
        assert_near(
            luma(&a, 16, 9),
            (y_of(0) * 2 + y_of(255) * 8) / 10,
            "t = 2.3",
        );
    }

    /// PSNR (dB) of two RGB images of one size.
    fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
        assert_eq!((a.width, a.height), (b.width, b.height));
        let se: f64 = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum();
        let mse = se / a.data.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
    }

    /// `a·(1−w) + b·w`.
    fn mix(a: &RgbImage, b: &RgbImage, w: f64) -> RgbImage {
        let mut out = a.clone();
        for (o, (&x, &y)) in out.data.iter_mut().zip(a.data.iter().zip(&b.data)) {
            *o = (x as f64 * (1.0 - w) + y as f64 * w).round() as u8;
        }
        out
    }

    #[test]
    fn a_generated_clip_at_8_fps_renders_into_a_24_fps_mp4() {
        use crate::media::decode::for_each_frame;
        use crate::media::encode::{EncodeSettings, Mp4Writer};
        use crate::media::stills::resize;
        let dir = tempfile::tempdir().unwrap();
        // Smooth, gently coloured patterns drifting across the frame (decode.rs reads back
        // with BT.601, we write BT.709: saturated colours would differ by that alone).
        let (cw, ch) = (96u32, 54u32);
        // Nine frames: a second at 8 fps and the frame it ends on, so every output frame moves.
        let frames: Vec<RgbImage> = (0..9)
            .map(|k| {
                let mut img = RgbImage::new(cw, ch);
                for y in 0..ch {
                    for x in 0..cw {
                        let phase = (x as f64 + k as f64 * 6.0) / 14.0 + y as f64 / 23.0;
                        let v = 128.0 + 90.0 * phase.sin();
                        img.put(
                            x as i64,
                            y as i64,
                            [v as u8, (v * 0.9 + 12.0) as u8, (v * 0.8 + 24.0) as u8],
                        );
                    }
                }
                img
            })
            .collect();
        let src = clip(dir.path(), "scene.mkv", 8.0, &frames);
        let (w, h) = (192u32, 108u32);
        let tclip = TimelineClip {
            picture: Picture::Frames(Box::new(src)),
            start: 0.0,
            duration: 1.0,
            out_blend: Blend::Cut,
            out_seconds: 0.0,
            morph: None,
        };
        let mut r = TimelineRenderer::new(vec![tclip], w, h);
        let out = dir.path().join("out.mp4");
        let enc = EncodeSettings {
            width: w,
            height: h,
            fps: 24,
            crf: 16,
            preset: "veryfast".into(),
            audio_rate: 48_000,
            audio_bitrate: 192_000,
            aac_coder: "fast".into(),
        };
        let mut wr = Mp4Writer::create(&out, &enc, None).unwrap();
        let mut f = new_frame(w, h);
        for n in 0..24 {
            make_writable_ok(&mut f);
            r.render(n as f64 / 24.0, &mut f).unwrap();
            wr.push_frame(&mut f).unwrap();
        }
        wr.finish().unwrap();
        let mut got = Vec::new();
        for_each_frame(&out, |_, _, img| {
            got.push(img.clone());
            true
        })
        .unwrap();
        assert_eq!(got.len(), 24);
        for (n, pair) in got.windows(2).enumerate() {
            assert!(
                psnr(&pair[0], &pair[1]) < 40.0,
                "output frames {n} and {} are alike",
                n + 1
            );
        }
        let big: Vec<RgbImage> = frames.iter().map(|f| resize(f, w, h)).collect();
        let p0 = psnr(&got[0], &big[0]);
        eprintln!("frame 0: {p0:.1} dB");
        assert!(p0 > 30.0, "output frame 0 vs clip frame 0: {p0:.1} dB");
        // Output frames 1 and 2 lie a third and two thirds of the way from source frame 0 to
        // 1: each is that blend, and nearer to it than to either source frame.
        for (n, wgt) in [(1usize, 1.0 / 3.0), (2, 2.0 / 3.0), (4, 1.0 / 3.0)] {
            let k = n / 3;
            let want = mix(&big[k], &big[k + 1], wgt);
            let (pb, pa, pc) = (
                psnr(&got[n], &want),
                psnr(&got[n], &big[k]),
                psnr(&got[n], &big[k + 1]),
            );
            eprintln!("frame {n}: blend {pb:.1} dB, sources {pa:.1} / {pc:.1} dB");
            assert!(pb > 30.0, "output frame {n} vs the blend: {pb:.1} dB");
            assert!(
                pb > pa + 3.0 && pb > pc + 3.0,
                "frame {n}: blend {pb:.1}, sources {pa:.1} {pc:.1}"
            );
        }
    }

    fn make_writable_ok(f: &mut frame::Video) {
        crate::media::compose::make_writable(f).unwrap();
    }
}
