//! Vertical shorts (9:16, usually 1080×1920) from landscape gameplay frames (issue 19).
//!
//! A [`Layout`] says how a landscape frame fills the tall picture: the whole frame over a blurred
//! copy of itself ([`Layout::BlurredFill`]), a full-height slice that may follow the action
//! ([`Layout::Crop`], driven by a [`CropTracker`]), or a facecam stacked over the gameplay
//! ([`Layout::Stack`]). A [`VerticalComposer`] is built once per (layout, source size, output
//! size); it holds its swscale contexts and every buffer, so composing a frame allocates nothing.
//!
//! Scaling goes through libswscale on planar GBRP (see `Scaler`). The blurred background is made small: the
//! cover crop is scaled down 8× (area filter), box-blurred three times each way and darkened at
//! that size, then scaled back up bilinearly, which keeps it to a few milliseconds at 1080×1920.

use std::path::PathBuf;

use ff::{format, frame, software};
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::image::RgbImage;
use super::MediaError;

/// How a landscape frame is laid out in the vertical short.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layout {
    /// The whole frame scaled to the short's width, centred, over a blurred, darkened copy that
    /// covers the frame.
    BlurredFill,
    /// A cover crop of the source: a full-height slice whose centre follows the action (the
    /// `crop_centre_x` given to [`VerticalComposer::compose`], usually from a [`CropTracker`])
    /// when `follow` is set, and stays in the middle otherwise.
    Crop {
        #[serde(default)]
        follow: bool,
    },
    /// A facecam rectangle stacked over the gameplay: the facecam on top, taking `facecam_share`
    /// of the height, the gameplay region (default: the whole frame) below, each cover-scaled
    /// (centred crop to the band's aspect, then scaled) into its band.
    Stack {
        facecam: Rect,
        #[serde(default)]
        gameplay: Option<Rect>,
        #[serde(default = "default_facecam_share")]
        facecam_share: f32,
    },
}

fn default_facecam_share() -> f32 {
    0.35
}

/// A rectangle of the source frame. Each field on its own is read as a fraction of the frame
/// (width for `x`/`w`, height for `y`/`h`) when it is at most 1.0, and as pixels when larger; so
/// `{x: 0.75, y: 0, w: 0.25, h: 0.25}` is the top-right sixteenth of any frame and
/// `{x: 1440, y: 0, w: 480, h: 270}` the same corner of a 1920×1080 one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// A validated rectangle in whole source pixels, inside the frame and not empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl PixelRect {
    fn full(w: u32, h: u32) -> Self {
        Self { x: 0, y: 0, w, h }
    }
}

impl Rect {
    /// The rectangle in pixels of a `src_w`×`src_h` frame, or a message naming the field at fault
    /// (`x`, `y`, `w` or `h`) and what is wrong with it: not a number, negative, zero size, or
    /// reaching outside the frame.
    pub fn validate(&self, src_w: u32, src_h: u32) -> Result<PixelRect, String> {
        fn px(field: &str, v: f64, dim: u32) -> Result<f64, String> {
            if !v.is_finite() {
                return Err(format!("{field}: {v} is not a finite number"));
            }
            if v < 0.0 {
                return Err(format!("{field}: {v} is negative"));
            }
            Ok(if v <= 1.0 { v * dim as f64 } else { v })
        }
        let x = px("x", self.x, src_w)?;
        let y = px("y", self.y, src_h)?;
        let w = px("w", self.w, src_w)?;
        let h = px("h", self.h, src_h)?;
        // Round the edges, not the sizes, so that 0.25 + 0.75 ends exactly at the frame's edge.
        let (x0, x1) = (x.round(), (x + w).round());
        let (y0, y1) = (y.round(), (y + h).round());
        if x0 >= src_w as f64 {
            return Err(format!(
                "x: {} starts at {x0} px, outside the {src_w} px wide frame",
                self.x
            ));
        }
        if y0 >= src_h as f64 {
            return Err(format!(
                "y: {} starts at {y0} px, outside the {src_h} px high frame",
                self.y
            ));
        }
        if x1 <= x0 {
            return Err(format!("w: {} is a zero size (under one pixel)", self.w));
        }
        if y1 <= y0 {
            return Err(format!("h: {} is a zero size (under one pixel)", self.h));
        }
        if x1 > src_w as f64 {
            return Err(format!(
                "w: {} makes the right edge {x1} px, outside the {src_w} px wide frame",
                self.w
            ));
        }
        if y1 > src_h as f64 {
            return Err(format!(
                "h: {} makes the bottom edge {y1} px, outside the {src_h} px high frame",
                self.h
            ));
        }
        Ok(PixelRect {
            x: x0 as u32,
            y: y0 as u32,
            w: (x1 - x0) as u32,
            h: (y1 - y0) as u32,
        })
    }
}

/// Where a `part` long span centred at `c` (a fraction of `full`, NaN meaning the middle) starts,
/// moved as little as needed to stay inside `0..full`.
fn place(c: f64, full: u32, part: u32) -> u32 {
    let c = if c.is_finite() {
        c.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let start = (c * full as f64 - part as f64 / 2.0).round();
    start.clamp(0.0, full.saturating_sub(part) as f64) as u32
}

/// The largest part of `r` with the aspect `aw:ah`, its centre at (`cx`, `cy`) in fractions of
/// `r`, moved as little as needed to stay inside `r`.
fn cover_crop(r: PixelRect, aw: u32, ah: u32, cx: f64, cy: f64) -> PixelRect {
    let aspect = aw as f64 / ah as f64;
    let (cw, ch) = if r.w as f64 / r.h as f64 > aspect {
        (((r.h as f64 * aspect).round() as u32).clamp(1, r.w), r.h)
    } else {
        (r.w, ((r.w as f64 / aspect).round() as u32).clamp(1, r.h))
    };
    PixelRect {
        x: r.x + place(cx, r.w, cw),
        y: r.y + place(cy, r.h, ch),
        w: cw,
        h: ch,
    }
}

fn fferr(what: &str) -> impl Fn(ff::Error) -> MediaError + '_ {
    move |e| MediaError::Ffmpeg {
        what: format!("vertical layout: {what}"),
        source: e,
    }
}

fn bad_layout(message: String) -> MediaError {
    MediaError::Format {
        path: PathBuf::from("vertical layout"),
        message,
    }
}

/// A swscale context. It holds no thread-bound state (only tables and buffers it owns), so it
/// may move to another thread; it is never shared.
struct Sws(software::scaling::Context);

// SAFETY: see above: an SwsContext is plain owned memory, used by one thread at a time.
unsafe impl Send for Sws {}

/// GBRP planes (G, B, R) and the packed RGB channel each holds.
const PLANES: [(usize, usize); 3] = [(0, 1), (1, 2), (2, 0)];

/// One fixed-size scaling step with its own input and output frames. Pictures go through
/// swscale as planar GBRP, not packed RGB24: no colour matrix is involved and it runs about twice
/// as fast here (16 ms against 38 ms for 608×1080 → 1080×1920, same result), the (de)interleave
/// included.
struct Scaler {
    ctx: Sws,
    src: frame::Video,
    dst: frame::Video,
    what: &'static str,
}

impl Scaler {
    fn new(
        what: &'static str,
        (sw, sh): (u32, u32),
        (dw, dh): (u32, u32),
        flags: software::scaling::Flags,
    ) -> Result<Self, MediaError> {
        let fmt = format::Pixel::GBRP;
        let ctx = software::scaling::Context::get(fmt, sw, sh, fmt, dw, dh, flags)
            .map_err(fferr(what))?;
        Ok(Self {
            ctx: Sws(ctx),
            src: frame::Video::new(fmt, sw, sh),
            dst: frame::Video::new(fmt, dw, dh),
            what,
        })
    }

    /// Scales the part `r` of `img`; `r` has the source size given to `new` and lies inside `img`.
    fn scale_region(&mut self, img: &RgbImage, r: PixelRect) -> Result<(), MediaError> {
        let iw = img.width as usize;
        let w = r.w as usize;
        for y in 0..r.h as usize {
            let from = ((r.y as usize + y) * iw + r.x as usize) * 3;
            let line = &img.data[from..from + w * 3];
            for (plane, c) in PLANES {
                let s = self.src.stride(plane);
                let row = &mut self.src.data_mut(plane)[y * s..y * s + w];
                for (o, px) in row.iter_mut().zip(line.chunks_exact(3)) {
                    *o = px[c];
                }
            }
        }
        self.run()
    }

    /// Scales a packed RGB buffer of exactly the source size.
    fn scale_packed(&mut self, data: &[u8]) -> Result<(), MediaError> {
        let w = self.src.width() as usize;
        for (y, line) in data.chunks_exact(w * 3).enumerate() {
            for (plane, c) in PLANES {
                let s = self.src.stride(plane);
                let row = &mut self.src.data_mut(plane)[y * s..y * s + w];
                for (o, px) in row.iter_mut().zip(line.chunks_exact(3)) {
                    *o = px[c];
                }
            }
        }
        self.run()
    }

    fn run(&mut self) -> Result<(), MediaError> {
        self.ctx
            .0
            .run(&self.src, &mut self.dst)
            .map_err(fferr(self.what))
    }

    /// Copies the scaled picture into `out` with its top-left corner at (`x0`, `y0`); the
    /// composer sizes every band to fit.
    fn blit(&self, out: &mut RgbImage, x0: u32, y0: u32) {
        let (w, h) = (self.dst.width() as usize, self.dst.height() as usize);
        let ow = out.width as usize;
        for y in 0..h {
            let to = ((y0 as usize + y) * ow + x0 as usize) * 3;
            let line = &mut out.data[to..to + w * 3];
            for (plane, c) in PLANES {
                let s = self.dst.stride(plane);
                let row = &self.dst.data(plane)[y * s..y * s + w];
                for (px, v) in line.chunks_exact_mut(3).zip(row) {
                    px[c] = *v;
                }
            }
        }
    }

    /// Copies the scaled picture into a packed RGB buffer of its size.
    fn copy_packed(&self, out: &mut [u8]) {
        let w = self.dst.width() as usize;
        for (y, line) in out.chunks_exact_mut(w * 3).enumerate() {
            for (plane, c) in PLANES {
                let s = self.dst.stride(plane);
                let row = &self.dst.data(plane)[y * s..y * s + w];
                for (px, v) in line.chunks_exact_mut(3).zip(row) {
                    px[c] = *v;
                }
            }
        }
    }
}

/// How much smaller than the output the background is blurred.
const BLUR_SHRINK: u32 = 8;
/// Box radius (in small pixels) and passes: three passes of radius 3 at 1/8 size are close to a
/// Gaussian of σ ≈ 27 output pixels.
const BLUR_RADIUS: usize = 3;
const BLUR_PASSES: usize = 3;
/// The background is multiplied by this over 256 (about 0.55).
const DARKEN_256: u32 = 141;

struct Background {
    region: PixelRect,
    down: Scaler,
    up: Scaler,
    small: Vec<u8>,
    tmp: Vec<u8>,
    sw: usize,
    sh: usize,
}

enum Plan {
    BlurredFill {
        bg: Background,
        fg: Scaler,
        at: (u32, u32),
    },
    Crop {
        follow: bool,
        region: PixelRect,
        scaler: Scaler,
    },
    Stack {
        face: (PixelRect, Scaler),
        game: (PixelRect, Scaler),
        split: u32,
    },
}

/// Composes vertical frames for one layout, source size and output size.
pub struct VerticalComposer {
    plan: Plan,
    src_w: u32,
    src_h: u32,
    out: RgbImage,
}

impl std::fmt::Debug for VerticalComposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.plan {
            Plan::BlurredFill { .. } => "blurred_fill",
            Plan::Crop { .. } => "crop",
            Plan::Stack { .. } => "stack",
        };
        f.debug_struct("VerticalComposer")
            .field("layout", &kind)
            .field("src", &(self.src_w, self.src_h))
            .field("out", &(self.out.width, self.out.height))
            .finish()
    }
}

/// Sizes above this are refused as a mistake rather than attempted.
const MAX_SIDE: u32 = 16384;

impl VerticalComposer {
    /// A composer for `layout`, turning `src_w`×`src_h` frames into `out_w`×`out_h` ones. Fails
    /// with a message naming the field when the layout does not fit the source (a facecam outside
    /// the frame, a share outside 0.05..=0.95), or when a size is zero or absurd.
    pub fn new(
        layout: &Layout,
        src_w: u32,
        src_h: u32,
        out_w: u32,
        out_h: u32,
    ) -> Result<Self, MediaError> {
        super::init()?;
        for (name, v) in [
            ("source width", src_w),
            ("source height", src_h),
            ("output width", out_w),
            ("output height", out_h),
        ] {
            if v == 0 || v > MAX_SIDE {
                return Err(bad_layout(format!(
                    "{name} {v} is outside 1..={MAX_SIDE} pixels"
                )));
            }
        }
        use software::scaling::Flags;
        let quality = Flags::BICUBIC | Flags::ACCURATE_RND;
        let full = PixelRect::full(src_w, src_h);
        let plan = match layout {
            Layout::BlurredFill => {
                // Fit the whole frame inside the output, full width for landscape sources.
                let (mut fw, mut fh) = (
                    out_w,
                    (out_w as f64 * src_h as f64 / src_w as f64).round() as u32,
                );
                if fh > out_h {
                    fw = (out_h as f64 * src_w as f64 / src_h as f64).round() as u32;
                    fh = out_h;
                }
                let (fw, fh) = (fw.clamp(1, out_w), fh.clamp(1, out_h));
                let fg = Scaler::new("foreground scaling", (src_w, src_h), (fw, fh), quality)?;
                let region = cover_crop(full, out_w, out_h, 0.5, 0.5);
                let sw = out_w.div_ceil(BLUR_SHRINK).max(1);
                let sh = out_h.div_ceil(BLUR_SHRINK).max(1);
                let down = Scaler::new(
                    "background reduction",
                    (region.w, region.h),
                    (sw, sh),
                    Flags::AREA,
                )?;
                let up = Scaler::new(
                    "background enlargement",
                    (sw, sh),
                    (out_w, out_h),
                    Flags::BILINEAR,
                )?;
                let n = sw as usize * sh as usize * 3;
                Plan::BlurredFill {
                    bg: Background {
                        region,
                        down,
                        up,
                        small: vec![0; n],
                        tmp: vec![0; n],
                        sw: sw as usize,
                        sh: sh as usize,
                    },
                    fg,
                    at: ((out_w - fw) / 2, (out_h - fh) / 2),
                }
            }
            Layout::Crop { follow } => {
                let region = cover_crop(full, out_w, out_h, 0.5, 0.5);
                let scaler = Scaler::new(
                    "crop scaling",
                    (region.w, region.h),
                    (out_w, out_h),
                    quality,
                )?;
                Plan::Crop {
                    follow: *follow,
                    region,
                    scaler,
                }
            }
            Layout::Stack {
                facecam,
                gameplay,
                facecam_share,
            } => {
                let share = *facecam_share;
                if !(0.05..=0.95).contains(&share) {
                    return Err(bad_layout(format!(
                        "facecam_share: {share} is outside 0.05..=0.95 (the facecam's part of the height)"
                    )));
                }
                if out_h < 2 {
                    return Err(bad_layout(format!(
                        "output height {out_h} has no room for two bands"
                    )));
                }
                let split = ((out_h as f64 * share as f64).round() as u32).clamp(1, out_h - 1);
                let face_r = facecam
                    .validate(src_w, src_h)
                    .map_err(|m| bad_layout(format!("facecam.{m}")))?;
                let game_r = match gameplay {
                    Some(g) => g
                        .validate(src_w, src_h)
                        .map_err(|m| bad_layout(format!("gameplay.{m}")))?,
                    None => full,
                };
                let face_r = cover_crop(face_r, out_w, split, 0.5, 0.5);
                let game_r = cover_crop(game_r, out_w, out_h - split, 0.5, 0.5);
                let face = Scaler::new(
                    "facecam scaling",
                    (face_r.w, face_r.h),
                    (out_w, split),
                    quality,
                )?;
                let game = Scaler::new(
                    "gameplay scaling",
                    (game_r.w, game_r.h),
                    (out_w, out_h - split),
                    quality,
                )?;
                Plan::Stack {
                    face: (face_r, face),
                    game: (game_r, game),
                    split,
                }
            }
        };
        Ok(Self {
            plan,
            src_w,
            src_h,
            out: RgbImage::new(out_w, out_h),
        })
    }

    /// The width of the crop as a fraction of the source width (1.0 for layouts that show the
    /// whole width); give it to [`CropTracker::with_crop_fraction`].
    pub fn crop_fraction(&self) -> f32 {
        match &self.plan {
            Plan::Crop { region, .. } => region.w as f32 / self.src_w as f32,
            _ => 1.0,
        }
    }

    /// The vertical frame for `src`. `crop_centre_x` (0..1 of the source width) places the crop
    /// of a following [`Layout::Crop`]; it is clamped so the crop stays inside the frame, `None`
    /// means the middle, and other layouts ignore it. The returned image is reused by the next
    /// call.
    pub fn compose(
        &mut self,
        src: &RgbImage,
        crop_centre_x: Option<f32>,
    ) -> Result<&RgbImage, MediaError> {
        if (src.width, src.height) != (self.src_w, self.src_h) {
            return Err(MediaError::Internal(format!(
                "vertical layout: a composer built for {}×{} frames was given a {}×{} frame",
                self.src_w, self.src_h, src.width, src.height
            )));
        }
        let want = src.width as usize * src.height as usize * 3;
        if src.data.len() != want {
            return Err(MediaError::Internal(format!(
                "vertical layout: a {}×{} RGB frame has {} bytes, not {want}",
                src.width,
                src.height,
                src.data.len()
            )));
        }
        let full = PixelRect::full(self.src_w, self.src_h);
        match &mut self.plan {
            Plan::BlurredFill { bg, fg, at } => {
                bg.down.scale_region(src, bg.region)?;
                bg.down.copy_packed(&mut bg.small);
                for _ in 0..BLUR_PASSES {
                    box_blur_h(&bg.small, &mut bg.tmp, bg.sw, bg.sh, BLUR_RADIUS);
                    box_blur_v(&bg.tmp, &mut bg.small, bg.sw, bg.sh, BLUR_RADIUS);
                }
                for v in bg.small.iter_mut() {
                    *v = ((*v as u32 * DARKEN_256 + 128) >> 8) as u8;
                }
                bg.up.scale_packed(&bg.small)?;
                bg.up.blit(&mut self.out, 0, 0);
                fg.scale_region(src, full)?;
                fg.blit(&mut self.out, at.0, at.1);
            }
            Plan::Crop {
                follow,
                region,
                scaler,
            } => {
                let cx = match (*follow, crop_centre_x) {
                    (true, Some(c)) => c as f64,
                    _ => 0.5,
                };
                let r = PixelRect {
                    x: place(cx, self.src_w, region.w),
                    ..*region
                };
                scaler.scale_region(src, r)?;
                scaler.blit(&mut self.out, 0, 0);
            }
            Plan::Stack { face, game, split } => {
                face.1.scale_region(src, face.0)?;
                face.1.blit(&mut self.out, 0, 0);
                game.1.scale_region(src, game.0)?;
                game.1.blit(&mut self.out, 0, *split);
            }
        }
        Ok(&self.out)
    }
}

/// One horizontal box-blur pass over packed RGB, edges extended.
fn box_blur_h(src: &[u8], dst: &mut [u8], w: usize, h: usize, r: usize) {
    let d = (2 * r + 1) as u32;
    for y in 0..h {
        let row = &src[y * w * 3..(y + 1) * w * 3];
        let out = &mut dst[y * w * 3..(y + 1) * w * 3];
        for c in 0..3 {
            let at = |i: isize| row[i.clamp(0, w as isize - 1) as usize * 3 + c] as u32;
            let mut sum: u32 = (-(r as isize)..=r as isize).map(at).sum();
            for x in 0..w {
                out[x * 3 + c] = ((sum + d / 2) / d) as u8;
                let x = x as isize;
                sum = sum + at(x + r as isize + 1) - at(x - r as isize);
            }
        }
    }
}

/// One vertical box-blur pass over packed RGB, edges extended.
fn box_blur_v(src: &[u8], dst: &mut [u8], w: usize, h: usize, r: usize) {
    let d = (2 * r + 1) as u32;
    let stride = w * 3;
    for i in 0..stride {
        let at = |y: isize| src[y.clamp(0, h as isize - 1) as usize * stride + i] as u32;
        let mut sum: u32 = (-(r as isize)..=r as isize).map(at).sum();
        for y in 0..h {
            dst[y * stride + i] = ((sum + d / 2) / d) as u8;
            let y = y as isize;
            sum = sum + at(y + r as isize + 1) - at(y - r as isize);
        }
    }
}

/// Grid of the motion map: this many columns, rows to match the frame's aspect.
const GRID_W: usize = 64;
/// Grey-level change below which a cell counts as still (compression noise, film grain).
const NOISE: u8 = 12;

/// Follows the action horizontally for [`Layout::Crop`]: each frame is reduced to a small grey
/// grid, differenced against the previous one, and the centroid of the changed columns becomes the
/// target. The crop's centre moves toward it as a critically damped spring whose speed is capped
/// (a fraction of the frame width per second), is clamped so the crop stays inside the frame, and
/// holds still when little moves. Same frames in, same centres out.
#[derive(Clone, Debug)]
pub struct CropTracker {
    dt: f64,
    max_speed: f64,
    omega: f64,
    min_motion: f64,
    deadband: f64,
    crop_fraction: Option<f64>,
    dims: (u32, u32),
    grid_h: usize,
    grid: Vec<u8>,
    prev: Vec<u8>,
    have_prev: bool,
    started: bool,
    target: f64,
    pos: f64,
    vel: f64,
}

impl CropTracker {
    /// A tracker for video at `fps` frames per second (a non-finite or non-positive rate is taken
    /// as 30). Defaults: pan at most 0.5 frame widths per second, spring settling in about a
    /// second, a 9:16 crop of the source's height, hold when under 0.3 % of the grid changes.
    pub fn new(fps: f64) -> Self {
        let fps = if fps.is_finite() && fps > 0.0 {
            fps.clamp(1.0, 1000.0)
        } else {
            30.0
        };
        Self {
            dt: 1.0 / fps,
            max_speed: 0.5,
            omega: 5.0,
            min_motion: 0.003,
            deadband: 0.04,
            crop_fraction: None,
            dims: (0, 0),
            grid_h: 0,
            grid: Vec::new(),
            prev: Vec::new(),
            have_prev: false,
            started: false,
            target: 0.5,
            pos: 0.5,
            vel: 0.0,
        }
    }

    /// The fastest pan, in frame widths per second (clamped to 0.01..=10).
    pub fn with_max_speed(mut self, widths_per_second: f32) -> Self {
        let v = widths_per_second as f64;
        self.max_speed = if v.is_finite() {
            v.clamp(0.01, 10.0)
        } else {
            0.5
        };
        self
    }

    /// The crop's width as a fraction of the source width, for the clamp at the edges (see
    /// [`VerticalComposer::crop_fraction`]); without it a 9:16 crop of the full height is assumed.
    pub fn with_crop_fraction(mut self, fraction: f32) -> Self {
        let f = fraction as f64;
        self.crop_fraction = (f.is_finite() && f > 0.0).then(|| f.min(1.0));
        self
    }

    /// The largest step the centre takes between two frames, in fractions of the width.
    pub fn max_step(&self) -> f32 {
        (self.max_speed * self.dt) as f32
    }

    fn half_crop(&self, w: u32, h: u32) -> f64 {
        let f = self
            .crop_fraction
            .unwrap_or_else(|| (h as f64 * 9.0 / 16.0 / w as f64).min(1.0));
        f / 2.0
    }

    /// Reduces `src` to the grey grid in `self.grid`.
    fn reduce(&mut self, src: &RgbImage) {
        let (w, h) = (src.width as usize, src.height as usize);
        let gw = GRID_W.min(w);
        let gh = self.grid_h;
        for gy in 0..gh {
            let (y0, y1) = (gy * h / gh, ((gy + 1) * h / gh).max(gy * h / gh + 1));
            let sy = ((y1 - y0) / 4).max(1);
            for gx in 0..gw {
                let (x0, x1) = (gx * w / gw, ((gx + 1) * w / gw).max(gx * w / gw + 1));
                let sx = ((x1 - x0) / 4).max(1);
                let (mut sum, mut n) = (0u32, 0u32);
                for y in (y0..y1).step_by(sy) {
                    for x in (x0..x1).step_by(sx) {
                        let i = (y * w + x) * 3;
                        let p = &src.data[i..i + 3];
                        sum += (p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8;
                        n += 1;
                    }
                }
                self.grid[gy * gw + gx] = (sum / n.max(1)) as u8;
            }
        }
    }

    /// The crop centre for this frame, in 0..1 of the source width.
    pub fn push(&mut self, src: &RgbImage) -> f32 {
        let (w, h) = (src.width, src.height);
        if w == 0 || h == 0 || src.data.len() != w as usize * h as usize * 3 {
            return self.pos as f32;
        }
        if self.dims != (w, h) {
            self.dims = (w, h);
            let gw = GRID_W.min(w as usize);
            self.grid_h = ((gw as f64 * h as f64 / w as f64).round() as usize).clamp(1, h as usize);
            self.grid = vec![0; gw * self.grid_h];
            self.prev = vec![0; gw * self.grid_h];
            self.have_prev = false;
        }
        let half = self.half_crop(w, h);
        let (lo, hi) = (half, 1.0 - half);
        self.reduce(src);
        if !self.started {
            self.started = true;
            self.target = 0.5f64.clamp(lo, hi);
            self.pos = self.target;
            self.vel = 0.0;
        }
        if self.have_prev {
            let gw = GRID_W.min(w as usize);
            let (mut moved, mut total, mut moment) = (0usize, 0u64, 0f64);
            for (i, (&a, &b)) in self.grid.iter().zip(&self.prev).enumerate() {
                let d = a.abs_diff(b);
                if d > NOISE {
                    let wgt = (d - NOISE) as u64;
                    moved += 1;
                    total += wgt;
                    moment += wgt as f64 * ((i % gw) as f64 + 0.5) / gw as f64;
                }
            }
            if moved as f64 >= self.min_motion * self.grid.len() as f64 && total > 0 {
                let centre = (moment / total as f64).clamp(lo, hi);
                if (centre - self.target).abs() > self.deadband {
                    self.target = centre;
                }
            }
        }
        std::mem::swap(&mut self.grid, &mut self.prev);
        self.have_prev = true;
        self.step(lo, hi);
        self.pos as f32
    }

    /// One critically damped spring step toward the target, speed capped, kept in [lo, hi].
    fn step(&mut self, lo: f64, hi: f64) {
        let (w, t) = (self.omega, self.dt);
        let e0 = self.pos - self.target;
        let k = (-w * t).exp();
        let tmp = self.vel + w * e0;
        let e = (e0 + tmp * t) * k;
        let v = (self.vel - w * tmp * t) * k;
        let max_step = self.max_speed * t;
        let step = (self.target + e - self.pos).clamp(-max_step, max_step);
        self.vel = v.clamp(-self.max_speed, self.max_speed);
        let next = self.pos + step;
        self.pos = next.clamp(lo, hi);
        if self.pos != next {
            self.vel = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::resample::resize_lanczos;

    /// A smooth, bright landscape picture.
    fn scene(w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let fx = x as f64 / w as f64;
                let fy = y as f64 / h as f64;
                let v = ((fx * 9.0).sin() * (fy * 5.0).cos() * 0.5 + 0.5) * 120.0;
                img.put(
                    x as i64,
                    y as i64,
                    [
                        (110.0 + v) as u8,
                        (200.0 - v * 0.5) as u8,
                        (90.0 + fx * 120.0) as u8,
                    ],
                );
            }
        }
        img
    }

    fn fill(img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, rgb: [u8; 3]) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                img.put(x as i64, y as i64, rgb);
            }
        }
    }

    fn luma(img: &RgbImage, y0: u32, y1: u32) -> f64 {
        let mut sum = 0.0;
        for y in y0..y1 {
            for x in 0..img.width {
                let p = img.get(x, y);
                sum += 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
            }
        }
        sum / ((y1 - y0) as f64 * img.width as f64)
    }

    fn mean_colour(img: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> [f64; 3] {
        let mut s = [0.0; 3];
        for y in y0..y1 {
            for x in x0..x1 {
                for (s, p) in s.iter_mut().zip(img.get(x, y)) {
                    *s += p as f64;
                }
            }
        }
        let n = ((x1 - x0) * (y1 - y0)) as f64;
        s.map(|v| v / n)
    }

    fn stack(face: Rect, gameplay: Option<Rect>) -> Layout {
        Layout::Stack {
            facecam: face,
            gameplay,
            facecam_share: 0.35,
        }
    }

    #[test]
    fn every_layout_makes_1080_by_1920_from_16_9_and_4_3() {
        let face = Rect {
            x: 0.0,
            y: 0.0,
            w: 0.25,
            h: 0.25,
        };
        for (w, h) in [(1920, 1080), (1440, 1080)] {
            let src = scene(w, h);
            for layout in [
                Layout::BlurredFill,
                Layout::Crop { follow: true },
                Layout::Crop { follow: false },
                stack(face, None),
            ] {
                let mut c = VerticalComposer::new(&layout, w, h, 1080, 1920).unwrap();
                let out = c.compose(&src, Some(0.3)).unwrap();
                assert_eq!(
                    (out.width, out.height),
                    (1080, 1920),
                    "{layout:?} from {w}×{h}"
                );
                assert_eq!(out.data.len(), 1080 * 1920 * 3);
            }
        }
    }

    #[test]
    fn blurred_fill_keeps_the_scaled_frame_in_a_centred_band_over_darker_bands() {
        let (w, h) = (640, 360);
        let src = scene(w, h);
        let mut c = VerticalComposer::new(&Layout::BlurredFill, w, h, 360, 640).unwrap();
        let out = c.compose(&src, None).unwrap().clone();
        // 640×360 fits 360×203, centred at y = 218.
        let (bh, top) = (203, (640 - 203) / 2);
        let reference = resize_lanczos(&src, 360, bh).unwrap();
        let mut band = RgbImage::new(360, bh);
        band.data
            .copy_from_slice(&out.data[top as usize * 360 * 3..(top + bh) as usize * 360 * 3]);
        let db = crate::media::resample::psnr(&reference, &band);
        assert!(db > 30.0, "band vs Lanczos-scaled source: {db:.1} dB");
        let src_luma = luma(&src, 0, h);
        let above = luma(&out, 0, top);
        let below = luma(&out, top + bh, 640);
        for (name, l) in [("above", above), ("below", below)] {
            assert!(l < 0.7 * src_luma, "{name}: {l:.1} vs source {src_luma:.1}");
            // Made from the picture, not black.
            assert!(l > 0.3 * src_luma, "{name}: {l:.1} vs source {src_luma:.1}");
        }
        // Blurred: neighbouring background pixels differ far less than the source's do.
        let rough = |img: &RgbImage, y0: u32, y1: u32| {
            let mut s = 0.0;
            for y in y0..y1 {
                for x in 1..img.width {
                    s += (img.get(x, y)[0] as f64 - img.get(x - 1, y)[0] as f64).abs();
                }
            }
            s / ((y1 - y0) * (img.width - 1)) as f64
        };
        let mut sharp = scene(w, h);
        for y in 0..h {
            for x in 0..w {
                if (x / 4 + y / 4) % 2 == 0 {
                    sharp.put(x as i64, y as i64, [250, 250, 250]);
                }
            }
        }
        let out = c.compose(&sharp, None).unwrap();
        assert!(rough(out, 0, 100) < 0.1 * rough(&sharp, 0, 100));
    }

    #[test]
    fn stack_puts_the_facecam_on_top_and_the_gameplay_below() {
        let (w, h) = (960, 540);
        let mut src = scene(w, h);
        // A magenta facecam in the top-left corner, a blue area on the right-hand gameplay side.
        fill(&mut src, 0, 0, 240, 135, [255, 0, 255]);
        let face = Rect {
            x: 0.0,
            y: 0.0,
            w: 240.0,
            h: 135.0,
        };
        let mut c = VerticalComposer::new(&stack(face, None), w, h, 540, 960).unwrap();
        let out = c.compose(&src, None).unwrap();
        let split = 336; // 0.35 × 960
        let top = mean_colour(out, 0, 0, 540, split);
        assert!(
            top[0] > 250.0 && top[1] < 5.0 && top[2] > 250.0,
            "top {top:?}"
        );
        let magentaish = |p: [u8; 3]| p[0] > 200 && p[1] < 60 && p[2] > 200;
        for y in split..960 {
            for x in 0..540 {
                assert!(!magentaish(out.get(x, y)), "facecam leaked to ({x}, {y})");
            }
        }
        // The gameplay band is the middle of the frame, cover-scaled.
        let game = cover_crop(PixelRect::full(w, h), 540, 960 - split, 0.5, 0.5);
        let mut region = RgbImage::new(game.w, game.h);
        for y in 0..game.h {
            for x in 0..game.w {
                region.put(x as i64, y as i64, src.get(game.x + x, game.y + y));
            }
        }
        let reference = resize_lanczos(&region, 540, 960 - split).unwrap();
        let mut band = RgbImage::new(540, 960 - split);
        band.data
            .copy_from_slice(&out.data[split as usize * 540 * 3..]);
        let db = crate::media::resample::psnr(&reference, &band);
        assert!(db > 30.0, "gameplay band: {db:.1} dB");

        // An explicit gameplay region (the right half, in fractions) is what fills the bottom.
        fill(&mut src, 480, 0, 480, 540, [0, 0, 255]);
        let right = Rect {
            x: 0.5,
            y: 0.0,
            w: 0.5,
            h: 1.0,
        };
        let mut c = VerticalComposer::new(&stack(face, Some(right)), w, h, 540, 960).unwrap();
        let out = c.compose(&src, None).unwrap();
        let bottom = mean_colour(out, 0, split, 540, 960);
        assert!(
            bottom[0] < 5.0 && bottom[1] < 5.0 && bottom[2] > 250.0,
            "{bottom:?}"
        );
    }

    #[test]
    fn crop_follows_the_given_centre_only_when_asked_and_stays_inside() {
        let (w, h) = (960, 540);
        let mut src = RgbImage::filled(w, h, [0, 255, 0]);
        fill(&mut src, 0, 0, 320, h, [255, 0, 0]);
        fill(&mut src, 640, 0, 320, h, [0, 0, 255]);
        // The crop is 304 px wide (540 × 9/16).
        let mut follow =
            VerticalComposer::new(&Layout::Crop { follow: true }, w, h, 270, 480).unwrap();
        assert!((follow.crop_fraction() - 304.0 / 960.0).abs() < 1e-6);
        for (centre, rgb) in [
            (Some(0.0), [255.0, 0.0, 0.0]),
            (Some(-3.0), [255.0, 0.0, 0.0]),
            (Some(f32::NAN), [0.0, 255.0, 0.0]),
            (None, [0.0, 255.0, 0.0]),
            (Some(0.5), [0.0, 255.0, 0.0]),
            (Some(1.0), [0.0, 0.0, 255.0]),
        ] {
            let out = follow.compose(&src, centre).unwrap();
            let m = mean_colour(out, 0, 0, 270, 480);
            for (m, want) in m.iter().zip(rgb) {
                assert!((m - want).abs() < 2.0, "{centre:?}: {m:?} vs {want}");
            }
        }
        let mut fixed =
            VerticalComposer::new(&Layout::Crop { follow: false }, w, h, 270, 480).unwrap();
        let m = mean_colour(fixed.compose(&src, Some(0.0)).unwrap(), 0, 0, 270, 480);
        assert!(m[1] > 253.0, "a fixed crop ignores the centre: {m:?}");
    }

    #[test]
    fn composer_and_tracker_can_move_to_a_worker_thread() {
        fn send<T: Send>() {}
        send::<VerticalComposer>();
        send::<CropTracker>();
    }

    #[test]
    fn compose_refuses_frames_of_another_size() {
        let mut c = VerticalComposer::new(&Layout::BlurredFill, 64, 36, 36, 64).unwrap();
        let err = c.compose(&RgbImage::new(32, 18), None).unwrap_err();
        assert!(err.to_string().contains("64×36"), "{err}");
        let mut short = RgbImage::new(64, 36);
        short.data.truncate(10);
        assert!(c.compose(&short, None).is_err());
    }

    /// A dark frame with a bright square whose left edge is at `x`.
    fn square_at(x: u32) -> RgbImage {
        let mut img = RgbImage::filled(320, 180, [20, 25, 30]);
        fill(&mut img, x, 80, 24, 24, [250, 250, 240]);
        img
    }

    #[test]
    fn crop_tracker_follows_a_moving_square_at_a_capped_speed_inside_the_frame() {
        let fps = 30.0;
        let mut t = CropTracker::new(fps);
        let max_step = t.max_step() as f64;
        assert!((max_step - 0.5 / 30.0).abs() < 1e-6);
        // Crop of 101.25 px on 320: the centre stays within half of that from each edge.
        let half = 180.0 * 9.0 / 16.0 / 320.0 / 2.0;
        let mut centres = vec![];
        // Still at first: nothing moves, so the centre holds exactly.
        for _ in 0..10 {
            centres.push(t.push(&square_at(250)) as f64);
        }
        assert!(centres.iter().all(|&c| c == 0.5), "{centres:?}");
        // Then it runs right to left, from x = 250 to x = 10 at 6 px a frame, and stops.
        let mut x = 250;
        while x > 10 {
            x -= 6;
            centres.push(t.push(&square_at(x)) as f64);
        }
        let arrived = centres.len();
        for _ in 0..60 {
            centres.push(t.push(&square_at(x)) as f64);
        }
        for pair in centres.windows(2) {
            assert!(
                (pair[1] - pair[0]).abs() <= max_step + 1e-6,
                "jump {pair:?}"
            );
        }
        for &c in &centres {
            assert!(
                c >= half - 1e-6 && c <= 1.0 - half + 1e-6,
                "{c} outside the bounds"
            );
        }
        // (Centres come back as f32, hence the 1e-6 slack.)
        // It went left, toward the square, and ends near the left-most allowed centre (the
        // square is at 22/320 ≈ 0.07, left of the bound 0.158), within the tracker's deadband.
        assert!(centres[arrived] < 0.5, "{}", centres[arrived]);
        let last = *centres.last().unwrap();
        assert!(last - half < 0.045, "{last} vs {half}");
        // Once the square stops the picture is still, and so is the crop.
        let tail = &centres[centres.len() - 10..];
        assert!(tail.iter().all(|&c| (c - last).abs() < 1e-3), "{tail:?}");

        // The same frames give the same centres.
        let mut again = CropTracker::new(fps);
        let mut x = 250;
        for _ in 0..10 {
            again.push(&square_at(x));
        }
        let mut replay = vec![];
        while x > 10 {
            x -= 6;
            replay.push(again.push(&square_at(x)) as f64);
        }
        assert_eq!(replay, centres[10..arrived]);
    }

    #[test]
    fn crop_tracker_ignores_sensor_noise_and_bad_frames() {
        let mut t = CropTracker::new(f64::NAN).with_crop_fraction(0.3);
        for i in 0..40u32 {
            // ±6 grey levels of flicker everywhere: below the noise floor.
            let v = if i % 2 == 0 { 94 } else { 106 };
            assert_eq!(t.push(&RgbImage::filled(320, 180, [v, v, v])), 0.5);
        }
        let mut broken = RgbImage::filled(320, 180, [100, 100, 100]);
        broken.data.truncate(5);
        assert_eq!(t.push(&broken), 0.5);
        assert_eq!(t.push(&RgbImage::new(0, 0)), 0.5);
    }

    #[test]
    fn rect_validation_names_the_field_and_the_fault() {
        let ok = Rect {
            x: 0.75,
            y: 0.0,
            w: 0.25,
            h: 0.25,
        };
        assert_eq!(
            ok.validate(1920, 1080),
            Ok(PixelRect {
                x: 1440,
                y: 0,
                w: 480,
                h: 270
            })
        );
        let px = Rect {
            x: 1440.0,
            y: 10.0,
            w: 480.0,
            h: 270.0,
        };
        assert_eq!(px.validate(1920, 1080).unwrap().w, 480);
        let cases = [
            (Rect { x: 1800.0, ..px }, "w:", "outside"),
            (Rect { y: 900.0, ..px }, "h:", "outside"),
            (Rect { x: 2000.0, ..px }, "x:", "outside"),
            (Rect { y: 1200.0, ..px }, "y:", "outside"),
            (Rect { x: 0.9, ..ok }, "w:", "outside"),
            (Rect { w: 0.0, ..ok }, "w:", "zero size"),
            (Rect { h: 0.0001, ..ok }, "h:", "zero size"),
            (Rect { x: -5.0, ..px }, "x:", "negative"),
            (Rect { y: f64::NAN, ..px }, "y:", "not a finite"),
        ];
        for (r, field, what) in cases {
            let e = r.validate(1920, 1080).unwrap_err();
            assert!(e.starts_with(field) && e.contains(what), "{r:?}: {e}");
        }
        // The composer says which rectangle.
        let bad = stack(Rect { x: 1800.0, ..px }, None);
        let e = VerticalComposer::new(&bad, 1920, 1080, 1080, 1920).unwrap_err();
        assert!(e.to_string().contains("facecam.w:"), "{e}");
        let bad = stack(ok, Some(Rect { w: 0.0, ..ok }));
        let e = VerticalComposer::new(&bad, 1920, 1080, 1080, 1920).unwrap_err();
        assert!(e.to_string().contains("gameplay.w:"), "{e}");
        let bad = Layout::Stack {
            facecam: ok,
            gameplay: None,
            facecam_share: 1.5,
        };
        let e = VerticalComposer::new(&bad, 1920, 1080, 1080, 1920).unwrap_err();
        assert!(e.to_string().contains("facecam_share"), "{e}");
        assert!(VerticalComposer::new(&Layout::BlurredFill, 0, 1080, 1080, 1920).is_err());
    }

    #[test]
    fn layouts_read_from_scripts_with_defaults() {
        let l: Layout =
            serde_json::from_str(r#"{"kind":"stack","facecam":{"x":0.75,"y":0,"w":480,"h":270}}"#)
                .unwrap();
        assert_eq!(
            l,
            Layout::Stack {
                facecam: Rect {
                    x: 0.75,
                    y: 0.0,
                    w: 480.0,
                    h: 270.0
                },
                gameplay: None,
                facecam_share: 0.35
            }
        );
        let l: Layout = serde_norway::from_str("kind: crop\n").unwrap();
        assert_eq!(l, Layout::Crop { follow: false });
        let l: Layout = serde_norway::from_str("kind: crop\nfollow: true\n").unwrap();
        assert_eq!(l, Layout::Crop { follow: true });
        let l: Layout = serde_norway::from_str("kind: blurred_fill\n").unwrap();
        assert_eq!(l, Layout::BlurredFill);
        let back: Layout = serde_json::from_str(
            &serde_json::to_string(&stack(
                Rect {
                    x: 0.1,
                    y: 0.2,
                    w: 0.3,
                    h: 0.4,
                },
                None,
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            back,
            stack(
                Rect {
                    x: 0.1,
                    y: 0.2,
                    w: 0.3,
                    h: 0.4
                },
                None
            )
        );
        assert!(serde_json::from_str::<Layout>(
            r#"{"kind":"stack","facecam":{"x":0,"y":0,"w":1,"h":1,"z":2}}"#
        )
        .is_err());
    }

    /// Per-frame cost of each layout at 1920×1080 → 1080×1920, against one plain bicubic scale of
    /// the frame to 1080×608 measured in the same run. Run with
    /// `cargo test --lib media::vertical -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_layouts() {
        use std::time::Instant;
        let src = scene(1920, 1080);
        let frames = 30;
        let mut base = Scaler::new(
            "baseline",
            (1920, 1080),
            (1080, 608),
            software::scaling::Flags::BICUBIC,
        )
        .unwrap();
        let full = PixelRect::full(1920, 1080);
        base.scale_region(&src, full).unwrap();
        let t = Instant::now();
        for _ in 0..frames {
            base.scale_region(&src, full).unwrap();
        }
        let base_ms = t.elapsed().as_secs_f64() * 1000.0 / frames as f64;
        println!("baseline bicubic 1920x1080 -> 1080x608: {base_ms:.2} ms/frame");
        let face = Rect {
            x: 0.0,
            y: 0.0,
            w: 0.25,
            h: 0.25,
        };
        for layout in [
            Layout::BlurredFill,
            Layout::Crop { follow: true },
            stack(face, None),
        ] {
            let mut c = VerticalComposer::new(&layout, 1920, 1080, 1080, 1920).unwrap();
            c.compose(&src, Some(0.4)).unwrap();
            let t = Instant::now();
            for _ in 0..frames {
                c.compose(&src, Some(0.4)).unwrap();
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0 / frames as f64;
            println!(
                "{layout:?}: {ms:.2} ms/frame ({:.2}× baseline)",
                ms / base_ms
            );
        }
        let mut tracker = CropTracker::new(60.0);
        let t = Instant::now();
        for _ in 0..frames {
            tracker.push(&src);
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / frames as f64;
        println!(
            "CropTracker::push: {ms:.2} ms/frame ({:.2}× baseline)",
            ms / base_ms
        );
    }
}
