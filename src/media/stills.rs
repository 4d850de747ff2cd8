//! Still images: PNG in and out, resizing, and text drawn with libass (so titles on keyframes and
//! thumbnails shape every script we support, right-to-left included).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use ff::{format, frame};
use ffmpeg_next as ff;

use super::image::RgbImage;
use super::overlay::AssBurner;
use super::MediaError;

fn io(path: &Path, source: std::io::Error) -> MediaError {
    MediaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes an 8-bit RGB PNG (deterministic bytes: no timestamps, fixed compression).
pub fn write_png(img: &RgbImage, path: &Path) -> Result<(), MediaError> {
    let f = File::create(path).map_err(|e| io(path, e))?;
    let mut enc = png::Encoder::new(BufWriter::new(f), img.width, img.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let fmt = |e: png::EncodingError| MediaError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut w = enc.write_header().map_err(fmt)?;
    w.write_image_data(&img.data).map_err(fmt)?;
    w.finish().map_err(fmt)?;
    Ok(())
}

/// Reads an 8-bit RGB or RGBA PNG (alpha is composited over black).
pub fn read_png(path: &Path) -> Result<RgbImage, MediaError> {
    let f = File::open(path).map_err(|e| io(path, e))?;
    let fmt = |m: String| MediaError::Format {
        path: path.to_path_buf(),
        message: m,
    };
    let mut dec = png::Decoder::new(BufReader::new(f));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| fmt(e.to_string()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| fmt(e.to_string()))?;
    let (w, h) = (info.width, info.height);
    let px = (w * h) as usize;
    let data = match info.color_type {
        png::ColorType::Rgb => buf[..px * 3].to_vec(),
        png::ColorType::Rgba => buf[..px * 4]
            .chunks_exact(4)
            .flat_map(|p| {
                let a = p[3] as u32;
                [p[0], p[1], p[2]].map(|c| ((c as u32 * a + 127) / 255) as u8)
            })
            .collect(),
        png::ColorType::Grayscale => buf[..px].iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => buf[..px * 2]
            .chunks_exact(2)
            .flat_map(|p| {
                let g = ((p[0] as u32 * p[1] as u32 + 127) / 255) as u8;
                [g, g, g]
            })
            .collect(),
        other => return Err(fmt(format!("unsupported PNG colour type {other:?}"))),
    };
    Ok(RgbImage {
        width: w,
        height: h,
        data,
    })
}

/// Resizes with an area-averaging (box) filter when shrinking and bilinear when growing.
pub fn resize(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    let sx = img.width as f64 / width as f64;
    let sy = img.height as f64 / height as f64;
    for y in 0..height {
        let y0 = y as f64 * sy;
        let y1 = ((y + 1) as f64 * sy).max(y0 + 1.0);
        for x in 0..width {
            let x0 = x as f64 * sx;
            let x1 = ((x + 1) as f64 * sx).max(x0 + 1.0);
            let mut acc = [0f64; 3];
            let mut wsum = 0.0;
            let mut yy = y0.floor();
            while yy < y1 {
                let wy = (y1.min(yy + 1.0) - y0.max(yy)).max(0.0);
                let iy = (yy as u32).min(img.height - 1);
                let mut xx = x0.floor();
                while xx < x1 {
                    let wx = (x1.min(xx + 1.0) - x0.max(xx)).max(0.0);
                    let ix = (xx as u32).min(img.width - 1);
                    let p = img.get(ix, iy);
                    let w = wx * wy;
                    for c in 0..3 {
                        acc[c] += p[c] as f64 * w;
                    }
                    wsum += w;
                    xx += 1.0;
                }
                yy += 1.0;
            }
            let p = acc.map(|a| (a / wsum.max(1e-9)).round().clamp(0.0, 255.0) as u8);
            out.put(x as i64, y as i64, p);
        }
    }
    out
}

/// Crops the centre of `img` to the aspect `w:h`, then resizes to `w`×`h`.
pub fn cover(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let target = width as f64 / height as f64;
    let src = img.width as f64 / img.height as f64;
    let (cw, ch) = if src > target {
        ((img.height as f64 * target).round() as u32, img.height)
    } else {
        (img.width, (img.width as f64 / target).round() as u32)
    };
    let (ox, oy) = ((img.width - cw) / 2, (img.height - ch) / 2);
    let mut crop = RgbImage::new(cw, ch);
    let row = cw as usize * 3;
    for y in 0..ch as usize {
        let s = ((oy as usize + y) * img.width as usize + ox as usize) * 3;
        crop.data[y * row..(y + 1) * row].copy_from_slice(&img.data[s..s + row]);
    }
    resize(&crop, width, height)
}

/// Draws the events of an ASS document (its time 0) onto `img` with libass.
pub fn draw_ass(img: &RgbImage, ass_path: &Path) -> Result<RgbImage, MediaError> {
    let mut f = frame::Video::new(format::Pixel::RGB24, img.width, img.height);
    let stride = f.stride(0);
    let row = img.width as usize * 3;
    {
        let d = f.data_mut(0);
        for y in 0..img.height as usize {
            d[y * stride..y * stride + row].copy_from_slice(&img.data[y * row..(y + 1) * row]);
        }
    }
    f.set_pts(Some(0));
    let mut burner = AssBurner::new(
        img.width,
        img.height,
        format::Pixel::RGB24,
        (1, 1000),
        ass_path,
    )?;
    let out = burner.burn(&f)?;
    Ok(super::decode::frame_to_rgb(&out))
}
