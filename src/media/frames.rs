//! Reading any video (MP4, MKV, WebM, MOV …) one frame at a time, as RGB, in display order, with
//! each frame's timestamp: the source of the post-processing commands, which never hold a whole
//! clip. Y'CbCr is turned into RGB with the matrix and range the stream is tagged with (BT.709
//! or BT.601, limited or full).

use std::path::{Path, PathBuf};

use ff::{codec, decoder, format, frame, media, software, Packet, Rational};
use ffmpeg_next as ff;

use super::image::RgbImage;
use super::MediaError;

/// A swscale context (plain owned memory: it may move to another thread, never shared).
struct Sws(software::scaling::Context);

// SAFETY: see above.
unsafe impl Send for Sws {}

/// Pixel format, width, height, colour space and range a converter was made for.
type ScalerKey = (i32, u32, u32, i32, i32);

/// A video file's best video stream, decoded frame by frame.
pub struct VideoFrames {
    path: PathBuf,
    ictx: format::context::Input,
    dec: decoder::Video,
    index: usize,
    tb: Rational,
    rate: Rational,
    decoded: frame::Video,
    /// The colour converter and what it was made for.
    scaler: Option<(ScalerKey, Sws)>,
    /// The demuxer is exhausted and the decoder told so.
    flushing: bool,
    done: bool,
    /// The last frame's timestamp.
    last_pts: Option<i64>,
    frames: u64,
}

impl std::fmt::Debug for VideoFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFrames")
            .field("path", &self.path)
            .field("rate", &self.rate)
            .field("frames", &self.frames)
            .finish()
    }
}

fn fferr(path: &Path, e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: path.display().to_string(),
        source: e,
    }
}

/// A stream's frame rate: its average rate, else its base rate; `None` when it names neither.
pub fn stream_rate(st: &format::stream::Stream) -> Option<Rational> {
    [st.avg_frame_rate(), st.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0)
}

impl VideoFrames {
    /// Opens `path`'s best video stream and its decoder (nothing is decoded yet).
    pub fn open(path: &Path) -> Result<Self, MediaError> {
        super::init()?;
        let ictx = format::input(path).map_err(|e| fferr(path, e))?;
        let st = ictx
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| MediaError::NoStream {
                path: path.to_path_buf(),
                kind: "video",
            })?;
        let index = st.index();
        let tb = st.time_base();
        let rate = stream_rate(&st).ok_or_else(|| MediaError::Format {
            path: path.to_path_buf(),
            message: "the video names no frame rate".into(),
        })?;
        let mut ctx = codec::context::Context::from_parameters(st.parameters())
            .map_err(|e| fferr(path, e))?;
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
        let dec = ctx.decoder().video().map_err(|e| fferr(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            ictx,
            dec,
            index,
            tb,
            rate,
            decoded: frame::Video::empty(),
            scaler: None,
            flushing: false,
            done: false,
            last_pts: None,
            frames: 0,
        })
    }

    pub fn width(&self) -> u32 {
        self.dec.width()
    }

    pub fn height(&self) -> u32 {
        self.dec.height()
    }

    /// Frames per second the stream plays at (its average rate).
    pub fn rate(&self) -> Rational {
        self.rate
    }

    /// The unit of the timestamps [`VideoFrames::next_frame`] returns.
    pub fn time_base(&self) -> Rational {
        self.tb
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The next frame and its timestamp (in [`VideoFrames::time_base`]); `None` after the last.
    pub fn next_frame(&mut self) -> Result<Option<(i64, RgbImage)>, MediaError> {
        if self.done {
            return Ok(None);
        }
        let mut pkt = Packet::empty();
        loop {
            match self.dec.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    // The stream's timestamp when it has one that moves forward; else a frame
                    // after the last.
                    let pts = match (self.decoded.timestamp(), self.last_pts) {
                        (Some(t), None) => t,
                        (Some(t), Some(last)) if t > last => t,
                        (_, Some(last)) => last + self.frame_ticks(),
                        (None, None) => 0,
                    };
                    self.last_pts = Some(pts);
                    let img = self.decoded_rgb()?;
                    self.frames += 1;
                    return Ok(Some((pts, img)));
                }
                Err(ff::Error::Eof) => {
                    self.done = true;
                    return Ok(None);
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(e) => return Err(self.damaged(e)),
            }
            if self.flushing {
                // The decoder said "again" after its end of stream: nothing more will come.
                self.done = true;
                return Ok(None);
            }
            loop {
                match pkt.read(&mut self.ictx) {
                    Ok(()) => {
                        if pkt.stream() != self.index {
                            continue;
                        }
                        self.dec.send_packet(&pkt).map_err(|e| self.damaged(e))?;
                    }
                    Err(ff::Error::Eof) => {
                        self.dec.send_eof().map_err(|e| self.damaged(e))?;
                        self.flushing = true;
                    }
                    Err(e) => return Err(self.damaged(e)),
                }
                break;
            }
        }
    }

    /// One frame's duration in timestamp units (at least 1).
    fn frame_ticks(&self) -> i64 {
        let t = f64::from(self.rate.invert()) / f64::from(self.tb);
        (t.round() as i64).max(1)
    }

    fn damaged(&self, e: ff::Error) -> MediaError {
        MediaError::Format {
            path: self.path.clone(),
            message: format!(
                "frame {} cannot be decoded ({e}): the file is damaged or cut short",
                self.frames
            ),
        }
    }

    fn decoded_rgb(&mut self) -> Result<RgbImage, MediaError> {
        let f = &self.decoded;
        let pix: ff::ffi::AVPixelFormat = f.format().into();
        let key = (
            pix as i32,
            f.width(),
            f.height(),
            f.color_space() as i32,
            f.color_range() as i32,
        );
        if self.scaler.as_ref().map(|(k, _)| *k) != Some(key) {
            use software::scaling::Flags;
            let mut ctx = software::scaling::Context::get(
                f.format(),
                f.width(),
                f.height(),
                format::Pixel::RGB24,
                f.width(),
                f.height(),
                Flags::BICUBIC | Flags::ACCURATE_RND | Flags::FULL_CHR_H_INT,
            )
            .map_err(|e| fferr(&self.path, e))?;
            // SAFETY: the descriptor table is libavutil's static one; the context is ours.
            unsafe {
                let desc = ff::ffi::av_pix_fmt_desc_get(pix);
                let rgb =
                    !desc.is_null() && (*desc).flags & ff::ffi::AV_PIX_FMT_FLAG_RGB as u64 != 0;
                if !rgb {
                    let matrix = if f.color_space() == ff::color::Space::BT709 {
                        ff::ffi::SWS_CS_ITU709
                    } else {
                        ff::ffi::SWS_CS_ITU601
                    };
                    let full = f.color_range() == ff::color::Range::JPEG
                        || matches!(
                            f.format(),
                            format::Pixel::YUVJ420P
                                | format::Pixel::YUVJ422P
                                | format::Pixel::YUVJ444P
                        );
                    let coef = ff::ffi::sws_getCoefficients(matrix);
                    ff::ffi::sws_setColorspaceDetails(
                        ctx.as_mut_ptr(),
                        coef,
                        full as i32,
                        coef,
                        1,
                        0,
                        1 << 16,
                        1 << 16,
                    );
                }
            }
            self.scaler = Some((key, Sws(ctx)));
        }
        let mut rgb = frame::Video::empty();
        if let Some((_, Sws(s))) = self.scaler.as_mut() {
            s.run(&self.decoded, &mut rgb)
                .map_err(|e| fferr(&self.path, e))?;
        }
        Ok(super::decode::frame_to_rgb(&rgb))
    }
}

impl Iterator for VideoFrames {
    type Item = Result<RgbImage, MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose().map(|r| r.map(|(_, img)| img))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::clip::ClipWriter;

    #[test]
    fn a_clip_reads_back_exactly_with_its_rate_and_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mkv");
        let fps = 24000.0 / 1001.0;
        let mut w = ClipWriter::create(&path, 20, 10, fps).unwrap();
        let frames: Vec<RgbImage> = (0..7u8)
            .map(|k| RgbImage::filled(20, 10, [k * 30, 255 - k * 30, 9]))
            .collect();
        for f in &frames {
            w.push(f).unwrap();
        }
        w.finish().unwrap();
        let mut r = VideoFrames::open(&path).unwrap();
        assert_eq!((r.width(), r.height()), (20, 10));
        assert!((f64::from(r.rate()) - fps).abs() < 1e-6, "{}", r.rate());
        let tb = f64::from(r.time_base());
        let mut k = 0;
        while let Some((pts, img)) = r.next_frame().unwrap() {
            assert!(img == frames[k], "frame {k}");
            assert!(
                (pts as f64 * tb - k as f64 / fps).abs() < 0.002,
                "frame {k} at {pts}"
            );
            k += 1;
        }
        assert_eq!(k, 7);
        assert!(r.next().is_none());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let e = VideoFrames::open(Path::new("/nonexistent/x.mp4")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.mp4"), "{e}");
    }
}
