//! Writing JPEG pictures with libavcodec's MJPEG encoder (baseline JFIF, full-range Y'CbCr 4:4:4,
//! BT.601 as JFIF defines it), for commands asked for a `.jpg`.

use std::path::Path;

use ff::{codec, encoder, format, frame, software, Packet, Rational};
use ffmpeg_next as ff;

use super::image::RgbImage;
use super::MediaError;

fn fferr(path: &Path, e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: path.display().to_string(),
        source: e,
    }
}

/// Whether this libavcodec can write JPEG.
pub fn available() -> bool {
    super::init().is_ok() && encoder::find(codec::Id::MJPEG).is_some()
}

/// Writes `img` to `path` as a JPEG; `quality` is the MJPEG quantiser scale, 2 (best) to 31.
pub fn write_jpeg(img: &RgbImage, path: &Path, quality: u8) -> Result<(), MediaError> {
    super::init()?;
    let mjpeg = encoder::find(codec::Id::MJPEG).ok_or_else(|| MediaError::Missing {
        what: "the MJPEG encoder".into(),
        hint: "install a libavcodec with its native encoders (Debian: libavcodec59)".into(),
    })?;
    let (w, h) = (img.width, img.height);
    let pixel = format::Pixel::YUVJ444P;
    let mut ctx = codec::context::Context::new_with_codec(mjpeg)
        .encoder()
        .video()
        .map_err(|e| fferr(path, e))?;
    ctx.set_width(w);
    ctx.set_height(h);
    ctx.set_format(pixel);
    ctx.set_time_base(Rational::new(1, 25));
    ctx.set_color_range(ff::color::Range::JPEG);
    ctx.set_flags(codec::Flags::QSCALE | codec::Flags::BITEXACT);
    let q = quality.clamp(2, 31) as i32;
    ctx.set_global_quality(q * ff::ffi::FF_QP2LAMBDA);
    let mut enc = ctx.open_as(mjpeg).map_err(|e| fferr(path, e))?;
    let mut rgb = frame::Video::new(format::Pixel::RGB24, w, h);
    let stride = rgb.stride(0);
    let row = w as usize * 3;
    for (y, src) in img.data.chunks_exact(row).enumerate() {
        rgb.data_mut(0)[y * stride..y * stride + row].copy_from_slice(src);
    }
    let mut scaler = software::scaling::Context::get(
        format::Pixel::RGB24,
        w,
        h,
        pixel,
        w,
        h,
        software::scaling::Flags::BICUBIC | software::scaling::Flags::ACCURATE_RND,
    )
    .map_err(|e| fferr(path, e))?;
    let mut yuv = frame::Video::new(pixel, w, h);
    scaler.run(&rgb, &mut yuv).map_err(|e| fferr(path, e))?;
    yuv.set_color_range(ff::color::Range::JPEG);
    yuv.set_pts(Some(0));
    // The encoder scales each frame by its own quality (the context's is only a default).
    // SAFETY: a field of the frame we own.
    unsafe {
        (*yuv.as_mut_ptr()).quality = q * ff::ffi::FF_QP2LAMBDA;
    }
    enc.send_frame(&yuv).map_err(|e| fferr(path, e))?;
    enc.send_eof().map_err(|e| fferr(path, e))?;
    let mut bytes = Vec::new();
    let mut pkt = Packet::empty();
    while enc.receive_packet(&mut pkt).is_ok() {
        bytes.extend_from_slice(pkt.data().unwrap_or_default());
    }
    if bytes.is_empty() {
        return Err(MediaError::Format {
            path: path.to_path_buf(),
            message: "the JPEG encoder wrote nothing".into(),
        });
    }
    std::fs::write(path, bytes).map_err(|source| MediaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_reads_back_close_to_the_picture() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jpg");
        let mut img = RgbImage::new(48, 32);
        for y in 0..32 {
            for x in 0..48 {
                img.put(x, y, [(x * 5) as u8, (y * 7) as u8, 128]);
            }
        }
        write_jpeg(&img, &path, 2).unwrap();
        let back = super::super::decode::read_image(&path).unwrap();
        assert_eq!((back.width, back.height), (48, 32));
        let db = super::super::resample::psnr(&img, &back);
        assert!(db > 35.0, "{db:.1} dB");
    }
}
