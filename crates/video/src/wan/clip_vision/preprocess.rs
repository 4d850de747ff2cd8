//! `CLIPImageProcessor` as the Wan I2V pipelines configure it (OpenAI CLIP's
//! `preprocessor_config.json`): resize the shortest side to 224 with Pillow's bicubic filter on
//! 8-bit RGB, center-crop 224×224, rescale by 1/255, normalize with CLIP's mean and std.
//!
//! Reference: transformers 5.23's PIL backend (`CLIPImageProcessorPil`), which is what
//! `CLIPImageProcessor` resolves to when torchvision is not installed (the reference
//! environment; with torchvision, transformers 5 uses its tensor backend, whose bicubic
//! arithmetic differs). The resize reproduces Pillow's `ImagingResample` for 8-bit images bit for
//! bit: separable passes (horizontal first, only the rows the vertical pass needs), bicubic
//! a = −0.5 widened by the downscale factor, coefficients normalized then rounded to 22-bit fixed
//! point, each pass rounding and clipping to u8. The float steps follow numpy's: `u8 as f64 ·
//! rescale_factor` cast to f32, then `(x − mean) / std` in f32.

use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;

use crate::wan::umt5::weights::weights_err;
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// OpenAI CLIP's normalization (`OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`).
pub const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
pub const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// The processor's settings (transformers' `preprocessor_config.json` names in
/// [`ClipImageProcessor::from_file`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipImageProcessor {
    /// `size.shortest_edge` (None: no resize).
    pub shortest_edge: Option<usize>,
    /// `crop_size` (height, width) (None: no crop).
    pub crop: Option<(usize, usize)>,
    /// `rescale_factor` (None: no rescale).
    pub rescale_factor: Option<f64>,
    /// `image_mean`, `image_std` (None: no normalization).
    pub normalize: Option<([f64; 3], [f64; 3])>,
}

impl ClipImageProcessor {
    /// The Wan2.1 I2V diffusers repos' `image_processor/preprocessor_config.json`.
    pub fn wan_i2v() -> Self {
        Self {
            shortest_edge: Some(224),
            crop: Some((224, 224)),
            rescale_factor: Some(1.0 / 255.0),
            normalize: Some((CLIP_MEAN, CLIP_STD)),
        }
    }

    /// A `preprocessor_config.json` (only bicubic resampling, `resample: 3`, is supported).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bad = |m: String| weights_err(path.display(), m);
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let j: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let flag = |k: &str| j.get(k).and_then(Value::as_bool).unwrap_or(true);
        let num = |v: Option<&Value>| v.and_then(Value::as_u64).map(|x| x as usize);
        if flag("do_resize") && j.get("resample").and_then(Value::as_u64).unwrap_or(3) != 3 {
            return Err(bad(
                "only bicubic resampling (resample = 3) is supported".into()
            ));
        }
        let shortest_edge = if flag("do_resize") {
            let s = j.get("size");
            Some(
                num(s.and_then(|s| s.get("shortest_edge")))
                    .or_else(|| num(s))
                    .ok_or_else(|| bad("size: expected {\"shortest_edge\": N}".into()))?,
            )
        } else {
            None
        };
        let crop = if flag("do_center_crop") {
            let c = j.get("crop_size");
            let h = num(c.and_then(|c| c.get("height"))).or_else(|| num(c));
            let w = num(c.and_then(|c| c.get("width"))).or_else(|| num(c));
            Some(
                h.zip(w)
                    .ok_or_else(|| bad("crop_size: expected height/width".into()))?,
            )
        } else {
            None
        };
        let rescale_factor = if flag("do_rescale") {
            Some(
                j.get("rescale_factor")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0 / 255.0),
            )
        } else {
            None
        };
        let three = |k: &str, default: [f64; 3]| -> Result<[f64; 3]> {
            match j.get(k).and_then(Value::as_array) {
                None => Ok(default),
                Some(a) if a.len() == 3 => {
                    let mut out = [0.0; 3];
                    for (o, v) in out.iter_mut().zip(a) {
                        *o = v.as_f64().ok_or_else(|| bad(format!("{k}: not numbers")))?;
                    }
                    Ok(out)
                }
                Some(_) => Err(bad(format!("{k}: expected 3 values"))),
            }
        };
        let normalize = if flag("do_normalize") {
            Some((
                three("image_mean", CLIP_MEAN)?,
                three("image_std", CLIP_STD)?,
            ))
        } else {
            None
        };
        Ok(Self {
            shortest_edge,
            crop,
            rescale_factor,
            normalize,
        })
    }

    /// The resized and cropped 8-bit image, channels first `[3, H, W]`, from RGB bytes (row
    /// major, `height × width × 3`).
    pub fn resize_crop(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<(Vec<u8>, usize, usize)> {
        if width == 0 || height == 0 || rgb.len() != width * height * 3 {
            return Err(VideoError::Invalid(format!(
                "CLIP image: {} bytes for {width}×{height} RGB",
                rgb.len()
            )));
        }
        let (mut img, mut w, mut h) = (rgb.to_vec(), width, height);
        if let Some(short) = self.shortest_edge {
            // transformers `get_resize_output_image_size(default_to_square=False)`.
            let (nw, nh) = if w <= h {
                (short, (short as f64 * h as f64 / w as f64) as usize)
            } else {
                ((short as f64 * w as f64 / h as f64) as usize, short)
            };
            img = pillow_bicubic_rgb8(&img, w, h, nw, nh);
            w = nw;
            h = nh;
        }
        if let Some((ch, cw)) = self.crop {
            let (out, oh, ow) = center_crop(&img, w, h, ch, cw);
            img = out;
            w = ow;
            h = oh;
        }
        let mut chw = vec![0u8; 3 * h * w];
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    chw[c * h * w + y * w + x] = img[(y * w + x) * 3 + c];
                }
            }
        }
        Ok((chw, h, w))
    }

    /// `pixel_values` `[1, 3, H, W]` (f32) from RGB bytes (`height × width × 3`).
    pub fn preprocess(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let (chw, h, w) = self.resize_crop(rgb, width, height)?;
        let mut out = Vec::with_capacity(chw.len());
        for (i, &v) in chw.iter().enumerate() {
            let c = i / (h * w);
            let mut x = match self.rescale_factor {
                Some(f) => (f64::from(v) * f) as f32,
                None => f32::from(v),
            };
            if let Some((mean, std)) = &self.normalize {
                x = (x - mean[c] as f32) / std[c] as f32;
            }
            out.push(x);
        }
        Ok(Tensor::from_vec(out, (1, 3, h, w), device)?)
    }
}

/// transformers' `center_crop` on an interleaved RGB image (zero padding where the image is
/// smaller than the crop).
fn center_crop(img: &[u8], w: usize, h: usize, ch: usize, cw: usize) -> (Vec<u8>, usize, usize) {
    let (w, h, ch, cw) = (w as i64, h as i64, ch as i64, cw as i64);
    // Padding to at least the crop (ceil halves), then the crop at (orig − crop) // 2 shifted.
    let (nh, nw) = (ch.max(h), cw.max(w));
    let (tp, lp) = if ch > h || cw > w {
        (((nh - h) + 1) / 2, ((nw - w) + 1) / 2)
    } else {
        (0, 0)
    };
    let top = (h - ch).div_euclid(2) + tp;
    let left = (w - cw).div_euclid(2) + lp;
    let (y0, y1) = (top.max(0), (top + ch).min(nh));
    let (x0, x1) = (left.max(0), (left + cw).min(nw));
    let (oh, ow) = ((y1 - y0) as usize, (x1 - x0) as usize);
    let mut out = vec![0u8; oh * ow * 3];
    for y in y0..y1 {
        for x in x0..x1 {
            let (sy, sx) = (y - tp, x - lp);
            if sy >= 0 && sy < h && sx >= 0 && sx < w {
                let src = ((sy * w + sx) * 3) as usize;
                let dst = (((y - y0) as usize) * ow + (x - x0) as usize) * 3;
                out[dst..dst + 3].copy_from_slice(&img[src..src + 3]);
            }
        }
    }
    (out, oh, ow)
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output pixel the first input
/// index, the tap count, and `ksize` fixed-point weights.
fn coeffs(in_size: usize, out_size: usize) -> (usize, Vec<(usize, usize)>, Vec<i32>) {
    let support_base = 2.0;
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = support_base * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let ss = 1.0 / filterscale;
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = bicubic((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let f = v * f64::from(1u32 << PRECISION_BITS);
            kk[xx * ksize + x] = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    (ksize, bounds, kk)
}

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Pillow's `Image.resize((out_w, out_h), BICUBIC)` on an RGB image (interleaved bytes).
fn pillow_bicubic_rgb8(img: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    if out_w == w && out_h == h {
        return img.to_vec();
    }
    let need_h = out_w != w;
    let need_v = out_h != h;
    let (ks_h, b_h, k_h) = coeffs(w, out_w);
    let (ks_v, mut b_v, k_v) = coeffs(h, out_h);
    let y_first = b_v[0].0;
    let y_last = b_v[out_h - 1].0 + b_v[out_h - 1].1;
    let half = 1i32 << (PRECISION_BITS - 1);
    let (mut cur, mut cw, mut chh) = (img.to_vec(), w, h);
    if need_h {
        for b in &mut b_v {
            b.0 -= y_first;
        }
        let rows = y_last - y_first;
        let mut tmp = vec![0u8; rows * out_w * 3];
        for yy in 0..rows {
            let src_row = &img[(yy + y_first) * w * 3..(yy + y_first + 1) * w * 3];
            for xx in 0..out_w {
                let (xmin, n) = b_h[xx];
                let k = &k_h[xx * ks_h..xx * ks_h + n];
                for c in 0..3 {
                    let mut ss = half;
                    for (x, &kx) in k.iter().enumerate() {
                        ss = ss
                            .wrapping_add(i32::from(src_row[(x + xmin) * 3 + c]).wrapping_mul(kx));
                    }
                    tmp[(yy * out_w + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        cur = tmp;
        cw = out_w;
        chh = rows;
    }
    if need_v {
        let mut out = vec![0u8; out_h * cw * 3];
        for yy in 0..out_h {
            let (ymin, n) = b_v[yy];
            let k = &k_v[yy * ks_v..yy * ks_v + n];
            for xx in 0..cw {
                for c in 0..3 {
                    let mut ss = half;
                    for (y, &ky) in k.iter().enumerate() {
                        ss = ss.wrapping_add(
                            i32::from(cur[((y + ymin) * cw + xx) * 3 + c]).wrapping_mul(ky),
                        );
                    }
                    out[(yy * cw + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        cur = out;
        chh = out_h;
    }
    debug_assert_eq!(cur.len(), chh * cw * 3);
    cur
}
