//! Resizing RGB pictures with libswscale's Lanczos filter (3 lobes), each channel on its own as
//! an 8-bit grey plane: no trip through Y'CbCr, so colours are not subsampled or rounded through
//! a matrix, and a flat colour stays exactly that colour.

use ff::{format, frame, software};
use ffmpeg_next as ff;

use super::image::RgbImage;
use super::MediaError;

/// A swscale context. It holds no thread-bound state (only tables and buffers it owns), so it
/// may move to another thread; it is never shared.
struct Sws(software::scaling::Context);

// SAFETY: see above: an SwsContext is plain owned memory, used by one thread at a time.
unsafe impl Send for Sws {}

/// Lanczos resizing of RGB pictures; the scaler for the last pair of sizes is kept, so a video's
/// frames (all one size) share it.
#[derive(Default)]
pub struct LanczosResizer {
    ctx: Option<((u32, u32, u32, u32), Sws)>,
}

impl std::fmt::Debug for LanczosResizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanczosResizer")
            .field("sizes", &self.ctx.as_ref().map(|(k, _)| *k))
            .finish()
    }
}

fn fferr(e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: "Lanczos scaling".into(),
        source: e,
    }
}

impl LanczosResizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// `img` resized to exactly `width`×`height`.
    pub fn resize(
        &mut self,
        img: &RgbImage,
        width: u32,
        height: u32,
    ) -> Result<RgbImage, MediaError> {
        super::init()?;
        let (w, h) = (img.width, img.height);
        if w == 0 || h == 0 || width == 0 || height == 0 {
            return Err(MediaError::Internal(format!(
                "cannot resize a {w}×{h} picture to {width}×{height}"
            )));
        }
        if img.data.len() != w as usize * h as usize * 3 {
            return Err(MediaError::Internal(format!(
                "a {w}×{h} RGB picture has {} bytes, not {}",
                img.data.len(),
                w as usize * h as usize * 3
            )));
        }
        if (w, h) == (width, height) {
            return Ok(img.clone());
        }
        let key = (w, h, width, height);
        if self.ctx.as_ref().map(|(k, _)| *k) != Some(key) {
            use software::scaling::Flags;
            let ctx = software::scaling::Context::get(
                format::Pixel::GRAY8,
                w,
                h,
                format::Pixel::GRAY8,
                width,
                height,
                Flags::LANCZOS | Flags::ACCURATE_RND | Flags::FULL_CHR_H_INT,
            )
            .map_err(fferr)?;
            self.ctx = Some((key, Sws(ctx)));
        }
        let Some((_, Sws(ctx))) = self.ctx.as_mut() else {
            return Err(MediaError::Internal("the Lanczos scaler vanished".into()));
        };
        let mut src = frame::Video::new(format::Pixel::GRAY8, w, h);
        let mut dst = frame::Video::empty();
        let mut out = RgbImage::new(width, height);
        let (w, h) = (w as usize, h as usize);
        let ow = width as usize;
        for c in 0..3 {
            let s = src.stride(0);
            let plane = src.data_mut(0);
            for y in 0..h {
                let row = &img.data[y * w * 3..(y + 1) * w * 3];
                for (o, px) in plane[y * s..y * s + w].iter_mut().zip(row.chunks_exact(3)) {
                    *o = px[c];
                }
            }
            ctx.run(&src, &mut dst).map_err(fferr)?;
            let s = dst.stride(0);
            let plane = dst.data(0);
            for y in 0..height as usize {
                let row = &mut out.data[y * ow * 3..(y + 1) * ow * 3];
                for (px, v) in row.chunks_exact_mut(3).zip(&plane[y * s..y * s + ow]) {
                    px[c] = *v;
                }
            }
        }
        Ok(out)
    }
}

/// `img` resized to exactly `width`×`height` with Lanczos.
pub fn resize_lanczos(img: &RgbImage, width: u32, height: u32) -> Result<RgbImage, MediaError> {
    LanczosResizer::new().resize(img, width, height)
}

/// Peak signal-to-noise ratio of `b` against `a` (same size), in dB; infinite when equal.
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    if (a.width, a.height) != (b.width, b.height) {
        return 0.0;
    }
    let se: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
        .sum();
    let mse = se / a.data.len().max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: u32, h: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let v = ((x as f64 / 5.0).sin() * (y as f64 / 7.0).cos() * 0.5 + 0.5) * 255.0;
                img.put(x as i64, y as i64, [v as u8, 255 - v as u8, (x * 2) as u8]);
            }
        }
        img
    }

    #[test]
    fn flat_colours_stay_exact_and_sizes_are_exact() {
        let img = RgbImage::filled(13, 7, [200, 31, 97]);
        let big = resize_lanczos(&img, 39, 21).unwrap();
        assert_eq!((big.width, big.height), (39, 21));
        assert_eq!(big, RgbImage::filled(39, 21, [200, 31, 97]));
    }

    #[test]
    fn up_then_down_comes_back_close() {
        let img = pattern(64, 48);
        let mut r = LanczosResizer::new();
        let big = r.resize(&img, 128, 96).unwrap();
        let back = r.resize(&big, 64, 48).unwrap();
        let db = psnr(&img, &back);
        assert!(db > 35.0, "{db:.1} dB");
        // Channels are scaled apart: the blue ramp does not leak into red.
        let odd = r.resize(&img, 192, 144).unwrap();
        assert_eq!((odd.width, odd.height), (192, 144));
    }
}
