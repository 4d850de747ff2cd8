//! Frame composition: Ken Burns camera moves over keyframes, transitions between clips, and the
//! conversion of RGB stills to the encoder's YUV 4:2:0 (BT.709, limited range). The timeline
//! that puts clips in their slots is [`super::timeline`] (re-exported here).
//!
//! Sampling is bilinear with 1/256-pixel precision from keyframes painted larger than the output,
//! so slow pans and zooms move smoothly instead of stepping a pixel at a time (the jitter of
//! integer-crop zoompan).

use ff::{format, frame};
use ffmpeg_next as ff;

use super::image::RgbImage;
pub use super::timeline::{FrameSource, Picture, TimelineClip, TimelineRenderer};

/// One 8-bit plane.
#[derive(Clone, Debug)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// A still converted for sampling: full-resolution luma, half-resolution chroma.
#[derive(Clone, Debug)]
pub struct Still {
    pub y: Plane,
    pub u: Plane,
    pub v: Plane,
}

/// BT.709 limited-range RGB → Y'CbCr, fixed point.
#[inline]
fn rgb_to_ycc(r: i32, g: i32, b: i32) -> (i32, i32, i32) {
    // Coefficients × 65536 for Y = 16 + 219*(0.2126R+0.7152G+0.0722B)/255, etc.
    let y = (11966 * r + 40254 * g + 4064 * b + (16 << 16) + 32768) >> 16;
    let cb = (-6596 * r - 22189 * g + 28784 * b + (128 << 16) + 32768) >> 16;
    let cr = (28784 * r - 26145 * g - 2639 * b + (128 << 16) + 32768) >> 16;
    (y, cb, cr)
}

impl Still {
    /// Converts an RGB image; chroma is box-filtered down to half size.
    pub fn from_rgb(img: &RgbImage) -> Self {
        let (w, h) = (img.width as usize, img.height as usize);
        let mut y = vec![0u8; w * h];
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut cb_acc = vec![0i32; cw * ch];
        let mut cr_acc = vec![0i32; cw * ch];
        let mut cnt = vec![0i32; cw * ch];
        for row in 0..h {
            let src = &img.data[row * w * 3..(row + 1) * w * 3];
            let yrow = &mut y[row * w..(row + 1) * w];
            let crow = (row / 2) * cw;
            for x in 0..w {
                let (yy, cb, cr) = rgb_to_ycc(
                    src[x * 3] as i32,
                    src[x * 3 + 1] as i32,
                    src[x * 3 + 2] as i32,
                );
                yrow[x] = yy.clamp(0, 255) as u8;
                let ci = crow + x / 2;
                cb_acc[ci] += cb;
                cr_acc[ci] += cr;
                cnt[ci] += 1;
            }
        }
        let avg = |acc: Vec<i32>| -> Vec<u8> {
            acc.iter()
                .zip(&cnt)
                .map(|(&a, &n)| ((a + n / 2) / n.max(1)).clamp(0, 255) as u8)
                .collect()
        };
        Self {
            y: Plane {
                width: w,
                height: h,
                data: y,
            },
            u: Plane {
                width: cw,
                height: ch,
                data: avg(cb_acc),
            },
            v: Plane {
                width: cw,
                height: ch,
                data: avg(cr_acc),
            },
        }
    }

    pub fn width(&self) -> usize {
        self.y.width
    }

    pub fn height(&self) -> usize {
        self.y.height
    }
}

/// A camera move: normalised centre (0..1 of the still) and zoom (1 = the largest window of the
/// output's aspect that fits in the still; 1.25 shows 80% of that), from `from` to `to`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CameraPose {
    pub cx: f64,
    pub cy: f64,
    pub zoom: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CameraPath {
    pub from: CameraPose,
    pub to: CameraPose,
}

/// A window on the still in its pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// Gentle ease in and out: mostly constant speed, no sudden start or stop.
pub fn ease(u: f64) -> f64 {
    let u = u.clamp(0.0, 1.0);
    // Blend of linear (70%) and smoothstep (30%): starts and ends at 0.7× speed, never stops.
    0.7 * u + 0.3 * (u * u * (3.0 - 2.0 * u))
}

impl CameraPath {
    /// The window at progress `u` in 0..=1 for an output of aspect `out_w / out_h`.
    pub fn window(&self, u: f64, still_w: usize, still_h: usize, out_w: u32, out_h: u32) -> Window {
        let e = ease(u);
        let cx = self.from.cx + (self.to.cx - self.from.cx) * e;
        let cy = self.from.cy + (self.to.cy - self.from.cy) * e;
        // Zoom interpolates in log space so the apparent speed is constant.
        let z0 = self.from.zoom.max(1.0).ln();
        let z1 = self.to.zoom.max(1.0).ln();
        let zoom = (z0 + (z1 - z0) * e).exp();
        let (sw, sh) = (still_w as f64, still_h as f64);
        let aspect = out_w as f64 / out_h as f64;
        let (mut w, mut h) = if sw / sh > aspect {
            (sh * aspect, sh)
        } else {
            (sw, sw / aspect)
        };
        w /= zoom;
        h /= zoom;
        let x = (cx * sw - w / 2.0).clamp(0.0, sw - w);
        let y = (cy * sh - h / 2.0).clamp(0.0, sh - h);
        Window { x, y, w, h }
    }
}

/// Samples `src` over the window into `dst` (`dw`×`dh`, stride `ds`), bilinear, 8-bit weights.
///
/// Separable: each source row needed is interpolated horizontally once into a 16-bit row (kept
/// while consecutive output rows share it), then output rows are a vertical blend of two such
/// rows — a plain loop the compiler vectorises.
fn sample_plane(src: &Plane, win: Window, dst: &mut [u8], ds: usize, dw: usize, dh: usize) {
    if src.width < 2 || src.height < 1 || dw == 0 {
        return;
    }
    let sx = win.w / dw as f64;
    let sy = win.h / dh as f64;
    let max_x = src.width - 2;
    let max_y = src.height.saturating_sub(2);
    let mut xi = Vec::with_capacity(dw);
    let mut xw = Vec::with_capacity(dw);
    for x in 0..dw {
        let fx = (win.x + (x as f64 + 0.5) * sx - 0.5).max(0.0);
        let x0 = (fx.floor() as usize).min(max_x);
        let w = ((fx - x0 as f64) * 256.0).round().clamp(0.0, 256.0) as u16;
        xi.push(x0 as u32);
        xw.push(w);
    }
    let hrow = |y: usize, out: &mut [u16]| {
        let r = &src.data[y * src.width..(y + 1) * src.width];
        for ((o, &x0), &w) in out.iter_mut().zip(&xi).zip(&xw) {
            let x0 = x0 as usize;
            *o = r[x0] as u16 * (256 - w) + r[x0 + 1] as u16 * w;
        }
    };
    // Two cached horizontal rows, tagged with their source row.
    let mut rows = [(usize::MAX, vec![0u16; dw]), (usize::MAX, vec![0u16; dw])];
    for y in 0..dh {
        let fy = (win.y + (y as f64 + 0.5) * sy - 0.5).max(0.0);
        let y0 = (fy.floor() as usize).min(max_y);
        let y1 = (y0 + 1).min(src.height - 1);
        let wy = ((fy - y0 as f64) * 256.0).round().clamp(0.0, 256.0) as u32;
        // Make rows hold y0 and y1 (in either slot), computing only what is missing.
        for need in [y0, y1] {
            if rows[0].0 != need && rows[1].0 != need {
                let other = if need == y0 { y1 } else { y0 };
                let slot = if rows[0].0 == other { 1 } else { 0 };
                hrow(need, &mut rows[slot].1);
                rows[slot].0 = need;
            }
        }
        let top = if rows[0].0 == y0 {
            &rows[0].1
        } else {
            &rows[1].1
        };
        let bot = if rows[0].0 == y1 {
            &rows[0].1
        } else {
            &rows[1].1
        };
        let out = &mut dst[y * ds..y * ds + dw];
        let (wt, wb) = (256 - wy, wy);
        for ((o, &t), &b) in out.iter_mut().zip(top.iter()).zip(bot.iter()) {
            *o = ((t as u32 * wt + b as u32 * wb + 32768) >> 16) as u8;
        }
    }
}

/// Draws the window of `still` into a YUV420P frame.
pub fn render_window(still: &Still, win: Window, out: &mut frame::Video) {
    let (w, h) = (out.width() as usize, out.height() as usize);
    let s0 = out.stride(0);
    sample_plane(&still.y, win, out.data_mut(0), s0, w, h);
    let cwin = Window {
        x: win.x / 2.0,
        y: win.y / 2.0,
        w: win.w / 2.0,
        h: win.h / 2.0,
    };
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let s1 = out.stride(1);
    sample_plane(&still.u, cwin, out.data_mut(1), s1, cw, ch);
    let s2 = out.stride(2);
    sample_plane(&still.v, cwin, out.data_mut(2), s2, cw, ch);
}

/// Makes sure `frame`'s buffers are ours alone before drawing into them (an encoder may still
/// hold a reference to the previous picture); copies only when they are shared.
pub fn make_writable(frame: &mut frame::Video) -> Result<(), super::MediaError> {
    let rc = unsafe { ff::ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    if rc < 0 {
        return Err(super::MediaError::Ffmpeg {
            what: "frame buffer".into(),
            source: ff::Error::from(rc),
        });
    }
    Ok(())
}

/// A new YUV420P frame.
pub fn new_frame(width: u32, height: u32) -> frame::Video {
    let mut f = frame::Video::new(format::Pixel::YUV420P, width, height);
    f.set_color_space(ff::color::Space::BT709);
    f.set_color_range(ff::color::Range::MPEG);
    f
}

/// How one clip hands over to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blend {
    Cut,
    Crossfade,
    FadeBlack,
    WipeLeft,
    WipeRight,
    /// A generated clip that turns one scene into the next, shown over the transition window
    /// instead of either scene (see [`TimelineClip::morph`]). Where there is none (no video
    /// model made one), it blends as a crossfade.
    Morph,
}

/// Mixes `b` into `a` in place at progress `alpha` (0 = all `a`, 1 = all `b`).
pub fn blend_into(a: &mut frame::Video, b: &frame::Video, alpha: f64, kind: Blend) {
    let alpha = alpha.clamp(0.0, 1.0);
    let (w, h) = (a.width() as usize, a.height() as usize);
    for p in 0..3 {
        let (pw, ph) = if p == 0 {
            (w, h)
        } else {
            (w.div_ceil(2), h.div_ceil(2))
        };
        let sa = a.stride(p);
        let sb = b.stride(p);
        let black: u32 = if p == 0 { 16 } else { 128 };
        let bd = b.data(p);
        // Copy b's rows first so we can borrow a mutably.
        let ad = a.data_mut(p);
        match kind {
            Blend::Cut => {
                if alpha >= 0.5 {
                    for y in 0..ph {
                        ad[y * sa..y * sa + pw].copy_from_slice(&bd[y * sb..y * sb + pw]);
                    }
                }
            }
            // A morph without its generated clip falls back to a crossfade.
            Blend::Crossfade | Blend::Morph => {
                let wb = (alpha * 256.0).round() as u32;
                for y in 0..ph {
                    let ra = &mut ad[y * sa..y * sa + pw];
                    let rb = &bd[y * sb..y * sb + pw];
                    for (x, v) in ra.iter_mut().enumerate() {
                        *v = ((*v as u32 * (256 - wb) + rb[x] as u32 * wb + 128) >> 8) as u8;
                    }
                }
            }
            Blend::FadeBlack => {
                // First half: a to black; second half: black to b.
                let (src_b, k) = if alpha < 0.5 {
                    (false, 1.0 - alpha * 2.0)
                } else {
                    (true, alpha * 2.0 - 1.0)
                };
                let wk = (k * 256.0).round() as u32;
                for y in 0..ph {
                    for x in 0..pw {
                        let v = if src_b {
                            bd[y * sb + x] as u32
                        } else {
                            ad[y * sa + x] as u32
                        };
                        ad[y * sa + x] = ((v * wk + black * (256 - wk) + 128) >> 8) as u8;
                    }
                }
            }
            Blend::WipeLeft | Blend::WipeRight => {
                // The edge moves across the frame with a soft 3% feather.
                let feather = (pw as f64 * 0.03).max(1.0);
                let edge = alpha * (pw as f64 + feather) - feather / 2.0;
                for x in 0..pw {
                    let pos = if kind == Blend::WipeLeft {
                        (pw - 1 - x) as f64
                    } else {
                        x as f64
                    };
                    let m = ((edge - pos) / feather + 0.5).clamp(0.0, 1.0);
                    let wb = (m * 256.0).round() as u32;
                    if wb == 0 {
                        continue;
                    }
                    for y in 0..ph {
                        let va = ad[y * sa + x] as u32;
                        let vb = bd[y * sb + x] as u32;
                        ad[y * sa + x] = ((va * (256 - wb) + vb * wb + 128) >> 8) as u8;
                    }
                }
            }
        }
    }
}

/// Copies every plane of `src` into `dst` (same size and format).
pub fn copy_frame(src: &frame::Video, dst: &mut frame::Video) {
    let (w, h) = (src.width() as usize, src.height() as usize);
    for p in 0..3 {
        let (pw, ph) = if p == 0 {
            (w, h)
        } else {
            (w.div_ceil(2), h.div_ceil(2))
        };
        let ss = src.stride(p);
        let ds = dst.stride(p);
        let sd = src.data(p);
        let dd = dst.data_mut(p);
        for y in 0..ph {
            dd[y * ds..y * ds + pw].copy_from_slice(&sd[y * ss..y * ss + pw]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let v = ((x * 255) / (w - 1)) as u8;
                img.put(x as i64, y as i64, [v, v, v]);
            }
        }
        img
    }

    #[test]
    fn ycc_of_white_black_and_red() {
        assert_eq!(rgb_to_ycc(255, 255, 255), (235, 128, 128));
        assert_eq!(rgb_to_ycc(0, 0, 0), (16, 128, 128));
        let (y, cb, cr) = rgb_to_ycc(255, 0, 0);
        assert_eq!((y, cb, cr), (63, 102, 240));
    }

    #[test]
    fn window_stays_inside_and_keeps_aspect() {
        let p = CameraPath {
            from: CameraPose {
                cx: 0.0,
                cy: 0.0,
                zoom: 1.0,
            },
            to: CameraPose {
                cx: 1.0,
                cy: 1.0,
                zoom: 2.0,
            },
        };
        for i in 0..=10 {
            let w = p.window(i as f64 / 10.0, 1600, 900, 1080, 1920);
            assert!(w.x >= 0.0 && w.y >= 0.0);
            assert!(w.x + w.w <= 1600.0 + 1e-9 && w.y + w.h <= 900.0 + 1e-9);
            assert!((w.w / w.h - 1080.0 / 1920.0).abs() < 1e-9);
        }
    }

    #[test]
    fn pan_moves_smoothly_without_steps() {
        // A slow pan over a ramp: the mean luma must change by nearly the same amount every
        // frame (sub-pixel motion), never stand still and jump.
        let still = Still::from_rgb(&ramp(1600, 900));
        let path = CameraPath {
            from: CameraPose {
                cx: 0.45,
                cy: 0.5,
                zoom: 1.2,
            },
            to: CameraPose {
                cx: 0.55,
                cy: 0.5,
                zoom: 1.2,
            },
        };
        let mut f = new_frame(320, 180);
        let mut means = Vec::new();
        for i in 0..60 {
            let u = 0.3 + 0.4 * i as f64 / 59.0; // middle of the move: nearly constant speed
            let win = path.window(u, still.width(), still.height(), 320, 180);
            render_window(&still, win, &mut f);
            let s = f.stride(0);
            let d = f.data(0);
            let sum: u64 = (0..180)
                .map(|y| d[y * s..y * s + 320].iter().map(|&v| v as u64).sum::<u64>())
                .sum();
            means.push(sum as f64 / (320.0 * 180.0));
        }
        let steps: Vec<f64> = means.windows(2).map(|w| w[1] - w[0]).collect();
        let min = steps.iter().cloned().fold(f64::MAX, f64::min);
        let max = steps.iter().cloned().fold(f64::MIN, f64::max);
        assert!(min > 0.0, "camera stood still for a frame: {steps:?}");
        assert!(max / min < 1.5, "uneven motion: {min}..{max}");
    }

    #[test]
    fn crossfade_midpoint_is_the_average() {
        let mut a = new_frame(64, 36);
        let mut b = new_frame(64, 36);
        let still_a = Still::from_rgb(&RgbImage::filled(64, 36, [0, 0, 0]));
        let still_b = Still::from_rgb(&RgbImage::filled(64, 36, [255, 255, 255]));
        let full = Window {
            x: 0.0,
            y: 0.0,
            w: 64.0,
            h: 36.0,
        };
        render_window(&still_a, full, &mut a);
        render_window(&still_b, full, &mut b);
        blend_into(&mut a, &b, 0.5, Blend::Crossfade);
        let y = a.data(0)[10];
        assert!((y as i32 - (16 + 235) / 2).abs() <= 1, "{y}");
        let mut c = new_frame(64, 36);
        render_window(&still_b, full, &mut c);
        blend_into(&mut c, &b, 0.5, Blend::FadeBlack);
        assert_eq!(c.data(0)[10], 16, "fade through black is black halfway");
    }
}
