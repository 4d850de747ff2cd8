//! A processed copy of a video, as MP4: H.264 frames at any rational rate (a source's own, such
//! as 30000/1001, placed by its timestamps; or a new rate after interpolation) beside the source's
//! audio, copied packet for packet — or, where MP4 cannot carry the source's audio codec (PCM,
//! Vorbis), decoded and encoded again as AAC. Audio is interleaved with the video as frames
//! arrive, and the index goes up front (faststart).

use std::path::Path;

use ff::{codec, encoder, format, frame, media, software, Dictionary, Packet, Rational};
use ffmpeg_next as ff;

use super::encode::{AudioEncoding, EncodeSettings};
use super::image::RgbImage;
use super::MediaError;

/// What the video stream of a rewritten file is.
#[derive(Clone, Debug)]
pub struct VideoOut {
    /// Frame size: both even (H.264 4:2:0).
    pub width: u32,
    pub height: u32,
    /// The unit of the timestamps given to [`Mp4Rewriter::push`] (they are placed on the frame
    /// grid of `frame_rate`).
    pub time_base: Rational,
    /// The nominal frame rate (rate control, keyframe spacing, the stream's header).
    pub frame_rate: Rational,
    /// libx264 constant rate factor (lower is better quality).
    pub crf: u8,
    /// libx264 preset name (ultrafast … veryslow).
    pub preset: String,
}

/// Rate the audio is encoded at when it cannot be copied.
const AAC_RATE: u32 = 48_000;

/// A swscale context (plain owned memory: it may move to another thread, never shared).
struct Sws(software::scaling::Context);

// SAFETY: see above.
unsafe impl Send for Sws {}

/// The source's audio packets, copied as they are.
struct AudioCopy {
    ictx: format::context::Input,
    in_index: usize,
    in_tb: Rational,
    out_index: usize,
    /// A packet read but not yet due.
    pending: Option<Packet>,
    ended: bool,
}

enum Audio {
    Copy(AudioCopy),
    Aac(AudioEncoding),
}

/// Writes H.264 frames and a source's audio into an MP4.
pub struct Mp4Rewriter {
    octx: format::context::Output,
    venc: encoder::Video,
    v_index: usize,
    /// The unit of the timestamps [`Mp4Rewriter::push`] takes.
    unit: Rational,
    /// The encoder's clock: one tick a frame (1/rate). A finer clock with B-frames leaves the
    /// MP4's sample durations at zero, so timestamps are placed on the frame grid.
    tb: Rational,
    width: u32,
    height: u32,
    last_pts: Option<i64>,
    audio: Option<Audio>,
    scaler: Option<Sws>,
    what: String,
}

fn fferr(what: &str, e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: what.to_string(),
        source: e,
    }
}

/// Whether `path` holds an audio stream.
pub fn has_audio(path: &Path) -> bool {
    super::init().is_ok()
        && format::input(path)
            .map(|i| i.streams().best(media::Type::Audio).is_some())
            .unwrap_or(false)
}

impl Mp4Rewriter {
    /// Creates `path` (MP4 whatever its extension) with the video described by `video` and, when
    /// `audio_from` has an audio stream, that stream.
    pub fn create(
        path: &Path,
        video: &VideoOut,
        audio_from: Option<&Path>,
    ) -> Result<Self, MediaError> {
        super::init()?;
        let what = path.display().to_string();
        if video.width == 0 || video.height == 0 || video.width % 2 + video.height % 2 != 0 {
            return Err(MediaError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "H.264 needs an even frame size, not {}×{}",
                    video.width, video.height
                ),
            });
        }
        let (tb, rate) = (video.time_base, video.frame_rate);
        if tb.numerator() <= 0 || tb.denominator() <= 0 || rate.numerator() <= 0 {
            return Err(MediaError::Internal(format!(
                "{what}: time base {tb} and rate {rate} must be positive"
            )));
        }
        let mut octx = format::output_as(path, "mp4").map_err(|e| fferr(&what, e))?;
        let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
        let x264 = encoder::find_by_name("libx264").ok_or_else(|| MediaError::Missing {
            what: "the libx264 encoder".into(),
            hint: "install a libavcodec built with libx264 (Debian: libavcodec59)".into(),
        })?;
        let mut vctx = codec::context::Context::new_with_codec(x264)
            .encoder()
            .video()
            .map_err(|e| fferr(&what, e))?;
        vctx.set_width(video.width);
        vctx.set_height(video.height);
        vctx.set_format(format::Pixel::YUV420P);
        let unit = tb;
        let tb = rate.invert();
        vctx.set_time_base(tb);
        vctx.set_frame_rate(Some(rate));
        vctx.set_gop((2.0 * f64::from(rate)).round().max(1.0) as u32);
        vctx.set_colorspace(ff::color::Space::BT709);
        vctx.set_color_range(ff::color::Range::MPEG);
        // SAFETY: fields of the encoder context we own, set before it is opened.
        unsafe {
            let p = vctx.as_mut_ptr();
            (*p).color_primaries = ff::ffi::AVColorPrimaries::AVCOL_PRI_BT709;
            (*p).color_trc = ff::ffi::AVColorTransferCharacteristic::AVCOL_TRC_BT709;
        }
        let mut flags = codec::Flags::BITEXACT;
        if global_header {
            flags |= codec::Flags::GLOBAL_HEADER;
        }
        vctx.set_flags(flags);
        let mut vopts = Dictionary::new();
        vopts.set("preset", &video.preset);
        vopts.set("crf", &video.crf.to_string());
        vopts.set("profile", "high");
        let venc = vctx
            .open_as_with(x264, vopts)
            .map_err(|e| fferr(&what, e))?;
        let v_index = {
            let mut st = octx.add_stream(x264).map_err(|e| fferr(&what, e))?;
            st.set_parameters(&venc);
            st.set_time_base(tb);
            st.set_avg_frame_rate(rate);
            st.index()
        };
        let audio = match audio_from {
            Some(src) if has_audio(src) => Some(add_audio(&mut octx, src, path)?),
            _ => None,
        };
        let mut hopts = Dictionary::new();
        hopts.set("movflags", "+faststart");
        hopts.set("fflags", "+bitexact");
        octx.write_header_with(hopts).map_err(|e| fferr(&what, e))?;
        Ok(Self {
            octx,
            venc,
            v_index,
            unit,
            tb,
            width: video.width,
            height: video.height,
            last_pts: None,
            audio,
            scaler: None,
            what,
        })
    }

    /// Encodes `img` (of the configured size) shown at `pts` (in the configured time base;
    /// later than the last frame's), and muxes the audio up to its end.
    pub fn push(&mut self, img: &RgbImage, pts: i64) -> Result<(), MediaError> {
        if (img.width, img.height) != (self.width, self.height) {
            return Err(MediaError::Internal(format!(
                "{}: a {}×{} frame in a {}×{} video",
                self.what, img.width, img.height, self.width, self.height
            )));
        }
        // On the frame grid (exact for a constant-rate source; a variable-rate one snaps to
        // the nearest frame time, never two frames on one).
        let pts = (pts as f64 * f64::from(self.unit) / f64::from(self.tb)).round() as i64;
        let pts = match self.last_pts {
            Some(last) if pts <= last => last + 1,
            _ => pts,
        };
        self.last_pts = Some(pts);
        let mut yuv = self.yuv_of(img)?;
        yuv.set_pts(Some(pts));
        yuv.set_kind(ff::picture::Type::None);
        self.venc
            .send_frame(&yuv)
            .map_err(|e| fferr(&self.what, e))?;
        self.drain_video()?;
        let end = (pts + 1) as f64 * f64::from(self.tb);
        self.mux_audio(Some(end))
    }

    /// RGB → Y'CbCr 4:2:0, BT.709 limited range (as the rest of reelsmith writes video).
    fn yuv_of(&mut self, img: &RgbImage) -> Result<frame::Video, MediaError> {
        let (w, h) = (img.width, img.height);
        if self.scaler.is_none() {
            use software::scaling::Flags;
            let mut ctx = software::scaling::Context::get(
                format::Pixel::RGB24,
                w,
                h,
                format::Pixel::YUV420P,
                w,
                h,
                Flags::BICUBIC | Flags::ACCURATE_RND | Flags::FULL_CHR_H_INP,
            )
            .map_err(|e| fferr(&self.what, e))?;
            // SAFETY: our own, initialised context; the coefficients are libswscale's static table.
            let rc = unsafe {
                let coef = ff::ffi::sws_getCoefficients(ff::ffi::SWS_CS_ITU709);
                ff::ffi::sws_setColorspaceDetails(
                    ctx.as_mut_ptr(),
                    coef,
                    1,
                    coef,
                    0,
                    0,
                    1 << 16,
                    1 << 16,
                )
            };
            if rc < 0 {
                return Err(MediaError::Internal(format!(
                    "{}: libswscale cannot convert to BT.709",
                    self.what
                )));
            }
            self.scaler = Some(Sws(ctx));
        }
        let mut rgb = frame::Video::new(format::Pixel::RGB24, w, h);
        let stride = rgb.stride(0);
        let row = w as usize * 3;
        for (y, src) in img.data.chunks_exact(row).enumerate() {
            rgb.data_mut(0)[y * stride..y * stride + row].copy_from_slice(src);
        }
        let mut yuv = frame::Video::new(format::Pixel::YUV420P, w, h);
        if let Some(Sws(s)) = self.scaler.as_mut() {
            s.run(&rgb, &mut yuv).map_err(|e| fferr(&self.what, e))?;
        }
        yuv.set_color_space(ff::color::Space::BT709);
        yuv.set_color_range(ff::color::Range::MPEG);
        Ok(yuv)
    }

    fn drain_video(&mut self) -> Result<(), MediaError> {
        let mut pkt = Packet::empty();
        let st_tb = stream_tb(&self.octx, self.v_index);
        while self.venc.receive_packet(&mut pkt).is_ok() {
            pkt.set_duration(1);
            pkt.set_stream(self.v_index);
            pkt.rescale_ts(self.tb, st_tb);
            pkt.write_interleaved(&mut self.octx)
                .map_err(|e| fferr(&self.what, e))?;
        }
        Ok(())
    }

    /// Writes the audio due before `until` seconds (all of it on `None`).
    fn mux_audio(&mut self, until: Option<f64>) -> Result<(), MediaError> {
        match self.audio.as_mut() {
            None => Ok(()),
            Some(Audio::Aac(a)) => a.mux(
                &mut self.octx,
                until.map(|t| (t * AAC_RATE as f64).floor() as i64),
            ),
            Some(Audio::Copy(a)) => a.mux(&mut self.octx, until, &self.what),
        }
    }

    /// Flushes the encoder, writes the remaining audio and the trailer (index up front).
    pub fn finish(mut self) -> Result<(), MediaError> {
        self.venc.send_eof().map_err(|e| fferr(&self.what, e))?;
        self.drain_video()?;
        self.mux_audio(None)?;
        self.octx.write_trailer().map_err(|e| fferr(&self.what, e))
    }
}

fn stream_tb(octx: &format::context::Output, index: usize) -> Rational {
    octx.stream(index)
        .map(|s| s.time_base())
        .unwrap_or(Rational::new(1, 1))
}

/// Adds `src`'s best audio stream to `octx`: copied when MP4 carries its codec, else AAC.
fn add_audio(
    octx: &mut format::context::Output,
    src: &Path,
    out: &Path,
) -> Result<Audio, MediaError> {
    let what = src.display().to_string();
    let ictx = format::input(src).map_err(|e| fferr(&what, e))?;
    let ist = ictx
        .streams()
        .best(media::Type::Audio)
        .ok_or_else(|| MediaError::NoStream {
            path: src.to_path_buf(),
            kind: "audio",
        })?;
    let (in_index, in_tb) = (ist.index(), ist.time_base());
    let params = ist.parameters();
    // SAFETY: the muxer's static description and a codec id read from open parameters.
    let fits = unsafe {
        ff::ffi::avformat_query_codec(
            octx.format().as_ptr(),
            (*params.as_ptr()).codec_id,
            ff::ffi::FF_COMPLIANCE_NORMAL,
        ) == 1
    };
    if !fits {
        let settings = EncodeSettings {
            width: 2,
            height: 2,
            fps: 1,
            crf: 23,
            preset: "medium".into(),
            audio_rate: AAC_RATE,
            audio_bitrate: 192_000,
            aac_coder: "fast".into(),
        };
        let from = src.to_path_buf();
        let mut aac = AudioEncoding::start(
            &settings,
            Box::new(move || {
                super::decode::decode_audio(&from, AAC_RATE).map_err(|e| e.to_string())
            }),
            out,
        )?;
        aac.add_to(octx)?;
        return Ok(Audio::Aac(aac));
    }
    let mut st = octx
        .add_stream(encoder::find(codec::Id::None))
        .map_err(|e| fferr(&what, e))?;
    st.set_parameters(params);
    // SAFETY: the new stream's own parameters; the tag is chosen again by the muxer.
    unsafe {
        (*st.parameters().as_mut_ptr()).codec_tag = 0;
    }
    st.set_time_base(in_tb);
    let out_index = st.index();
    Ok(Audio::Copy(AudioCopy {
        ictx,
        in_index,
        in_tb,
        out_index,
        pending: None,
        ended: false,
    }))
}

impl AudioCopy {
    /// Copies packets that start before `until` seconds (all that remain on `None`).
    fn mux(
        &mut self,
        octx: &mut format::context::Output,
        until: Option<f64>,
        what: &str,
    ) -> Result<(), MediaError> {
        let out_tb = stream_tb(octx, self.out_index);
        loop {
            let pkt = match self.pending.take() {
                Some(p) => p,
                None if self.ended => return Ok(()),
                None => {
                    let mut p = Packet::empty();
                    match p.read(&mut self.ictx) {
                        Ok(()) if p.stream() != self.in_index => continue,
                        Ok(()) => p,
                        Err(ff::Error::Eof) => {
                            self.ended = true;
                            return Ok(());
                        }
                        Err(e) => return Err(fferr(what, e)),
                    }
                }
            };
            let start = pkt.dts().or(pkt.pts()).unwrap_or(0) as f64 * f64::from(self.in_tb);
            if until.is_some_and(|t| start >= t) {
                self.pending = Some(pkt);
                return Ok(());
            }
            let mut pkt = pkt;
            pkt.set_stream(self.out_index);
            pkt.set_position(-1);
            pkt.rescale_ts(self.in_tb, out_tb);
            pkt.write_interleaved(octx).map_err(|e| fferr(what, e))?;
        }
    }
}
