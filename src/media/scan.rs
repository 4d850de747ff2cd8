//! Scanning long recordings cheaply, for analysis: frames come out small (about 256 pixels wide,
//! scaled by swscale straight from the decoder's own pixel format), either a few frames at each
//! keyframe (the whole-file pass: a fraction of a full decode) or every frame of a time window
//! (the candidate windows); the audio comes out as a level envelope. Memory is bounded by one
//! frame and one audio packet, whatever the length of the file.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use ff::{codec, decoder, format, frame, media, software, Packet, Rational};
use ffmpeg_next as ff;

use super::MediaError;

/// The width frames are brought down to for analysis: PySceneDetect's effective width.
pub const SMALL_WIDTH: u32 = 256;

/// The analysis size of a `width`×`height` frame: PySceneDetect's automatic downscale — each
/// side divided by `max(width, height) / 256` and rounded (half to even), the frame's own size
/// when it is smaller.
pub fn small_size(width: u32, height: u32) -> (u32, u32) {
    let long = width.max(height);
    if long < SMALL_WIDTH {
        return (width.max(1), height.max(1));
    }
    let f = f64::from(long) / f64::from(SMALL_WIDTH);
    let side = |s: u32| ((f64::from(s) / f).round_ties_even() as u32).max(1);
    (side(width), side(height))
}

/// What a recording holds, as analysis needs it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordingInfo {
    pub container: String,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Seconds (the container's, else the longest stream's).
    pub duration: f64,
    /// Frames the video holds (duration × fps, rounded).
    pub frames: u64,
    pub audio: Option<AudioTrack>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AudioTrack {
    pub codec: String,
    pub rate: u32,
    pub channels: u16,
}

/// One analysis frame: packed RGB24 at [`small_size`], its frame number on the stream's clock
/// (0 = the first frame) and time in seconds.
#[derive(Clone, Debug)]
pub struct SmallFrame {
    pub index: u64,
    pub t: f64,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// A swscale context (owned memory: it may move to another thread, never shared).
struct Sws(software::scaling::Context);
// SAFETY: see above.
unsafe impl Send for Sws {}

fn fferr(path: &Path, e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: path.display().to_string(),
        source: e,
    }
}

fn tb_f64(r: Rational) -> f64 {
    r.numerator() as f64 / r.denominator().max(1) as f64
}

/// A recording's video stream opened for scanning.
pub struct Recording {
    path: PathBuf,
    ictx: format::context::Input,
    index: usize,
    tb: Rational,
    start_pts: i64,
    info: RecordingInfo,
    params: codec::Parameters,
    small: (u32, u32),
    /// The swscale filter frames are brought to `small` with.
    filter: software::scaling::Flags,
    scaler: Option<((i32, u32, u32), Sws)>,
    decoded: frame::Video,
    scaled: frame::Video,
}

/// Opens `path` and reads what it holds. A file libav cannot read, or one without a video
/// stream, is an error naming the file.
pub fn open(path: &Path) -> Result<Recording, MediaError> {
    super::init()?;
    let ictx = format::input(path).map_err(|e| MediaError::Format {
        path: path.to_path_buf(),
        message: format!("not a video libav can read ({e})"),
    })?;
    let container = ictx.format().name().to_string();
    let st = ictx
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| MediaError::NoStream {
            path: path.to_path_buf(),
            kind: "video",
        })?;
    let index = st.index();
    let tb = st.time_base();
    let rate = super::frames::stream_rate(&st).ok_or_else(|| MediaError::Format {
        path: path.to_path_buf(),
        message: "the video names no frame rate".into(),
    })?;
    let fps = tb_f64(rate);
    let start_pts = st.start_time();
    let start_pts = if start_pts == ff::ffi::AV_NOPTS_VALUE {
        0
    } else {
        start_pts
    };
    let params = st.parameters();
    let stream_duration = if st.duration() > 0 {
        st.duration() as f64 * tb_f64(tb)
    } else {
        0.0
    };
    let dec = codec::context::Context::from_parameters(params.clone())
        .and_then(|c| c.decoder().video())
        .map_err(|e| MediaError::Format {
            path: path.to_path_buf(),
            message: format!("the video's codec cannot be decoded here ({e})"),
        })?;
    let (width, height) = (dec.width(), dec.height());
    if width == 0 || height == 0 {
        return Err(MediaError::Format {
            path: path.to_path_buf(),
            message: "the video stream has no picture size (damaged header?)".into(),
        });
    }
    let codec_name = dec.id().name().to_string();
    let audio = match ictx.streams().best(media::Type::Audio) {
        Some(a) => codec::context::Context::from_parameters(a.parameters())
            .and_then(|c| c.decoder().audio())
            .ok()
            .map(|d| AudioTrack {
                codec: d.id().name().to_string(),
                rate: d.rate(),
                channels: d.channels(),
            }),
        None => None,
    };
    let container_duration = if ictx.duration() > 0 {
        ictx.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else {
        0.0
    };
    let duration = if stream_duration > 0.0 {
        stream_duration
    } else {
        container_duration
    };
    let info = RecordingInfo {
        container,
        codec: codec_name,
        width,
        height,
        fps,
        duration,
        frames: (duration * fps).round() as u64,
        audio,
    };
    Ok(Recording {
        path: path.to_path_buf(),
        ictx,
        index,
        tb,
        start_pts,
        info,
        params,
        small: small_size(width, height),
        filter: software::scaling::Flags::AREA,
        scaler: None,
        decoded: frame::Video::empty(),
        scaled: frame::Video::empty(),
    })
}

impl Recording {
    pub fn info(&self) -> &RecordingInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size of the frames the scans hand out.
    pub fn small(&self) -> (u32, u32) {
        self.small
    }

    /// Hands frames out at the recording's own size, converted to RGB as OpenCV's FFmpeg
    /// backend does (swscale bicubic): for callers that downscale exactly as PySceneDetect.
    pub fn full_size_frames(&mut self) {
        self.small = (self.info.width, self.info.height);
        self.filter = software::scaling::Flags::BICUBIC;
        self.scaler = None;
    }

    fn decoder(&self, threads: bool) -> Result<decoder::Video, MediaError> {
        let mut ctx = codec::context::Context::from_parameters(self.params.clone())
            .map_err(|e| fferr(&self.path, e))?;
        if threads {
            ctx.set_threading(codec::threading::Config {
                kind: codec::threading::Type::Frame,
                count: 0,
                ..Default::default()
            });
        }
        ctx.decoder().video().map_err(|e| fferr(&self.path, e))
    }

    /// Seconds of a timestamp on the stream's clock, from the first frame.
    fn seconds(&self, pts: i64) -> f64 {
        (pts - self.start_pts) as f64 * tb_f64(self.tb)
    }

    fn frame_index(&self, t: f64) -> u64 {
        (t * self.info.fps).round().max(0.0) as u64
    }

    /// Moves the demuxer to the keyframe at or before `t` seconds (the start for `t` ≤ 0).
    fn seek(&mut self, t: f64) -> Result<(), MediaError> {
        let base = f64::from(ff::ffi::AV_TIME_BASE);
        let start = self.start_pts as f64 * tb_f64(self.tb);
        let ts = ((t.max(0.0) + start) * base) as i64;
        match self.ictx.seek(ts, ..ts + 1) {
            Ok(()) => Ok(()),
            // Some demuxers cannot seek to the very start: reopen instead.
            Err(_) if t <= 0.0 => {
                self.ictx = format::input(&self.path).map_err(|e| fferr(&self.path, e))?;
                Ok(())
            }
            Err(e) => Err(fferr(&self.path, e)),
        }
    }

    /// The decoded frame brought to the analysis size.
    fn small_frame(&mut self, t: f64) -> Result<SmallFrame, MediaError> {
        let pix: ff::ffi::AVPixelFormat = self.decoded.format().into();
        let key = (pix as i32, self.decoded.width(), self.decoded.height());
        if self.scaler.as_ref().map(|(k, _)| *k) != Some(key) {
            let ctx = software::scaling::Context::get(
                self.decoded.format(),
                key.1,
                key.2,
                format::Pixel::RGB24,
                self.small.0,
                self.small.1,
                self.filter,
            )
            .map_err(|e| fferr(&self.path, e))?;
            self.scaler = Some((key, Sws(ctx)));
        }
        let Some((_, Sws(sws))) = self.scaler.as_mut() else {
            return Err(MediaError::Internal("no scaler".into()));
        };
        sws.run(&self.decoded, &mut self.scaled)
            .map_err(|e| fferr(&self.path, e))?;
        let (w, h) = self.small;
        let stride = self.scaled.stride(0);
        let data = self.scaled.data(0);
        let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
        for y in 0..h as usize {
            rgb.extend_from_slice(&data[y * stride..y * stride + w as usize * 3]);
        }
        Ok(SmallFrame {
            index: self.frame_index(t),
            t,
            width: w,
            height: h,
            rgb,
        })
    }

    /// The decoded frame's time in seconds; frames without a timestamp are dropped (`None`).
    fn decoded_time(&self) -> Option<f64> {
        self.decoded.timestamp().map(|p| self.seconds(p))
    }

    fn damaged(&self, t: f64, e: ff::Error) -> MediaError {
        MediaError::Format {
            path: self.path.clone(),
            message: format!(
                "the video cannot be decoded near {t:.1} s ({e}): the file is damaged or its codec is not supported here"
            ),
        }
    }

    /// Every keyframe from `from` seconds on, each with the frames that follow it up to `burst`
    /// packets (so a frame-to-frame difference can be measured at every keyframe): only those
    /// packets are decoded. `f` sees them in order; `Break` stops the scan.
    pub fn scan_keyframes(
        &mut self,
        from: f64,
        burst: usize,
        mut f: impl FnMut(&SmallFrame) -> ControlFlow<()>,
    ) -> Result<(), MediaError> {
        self.seek(from)?;
        let mut dec = self.decoder(false)?;
        let mut pkt = Packet::empty();
        // Packets still to send after the last keyframe.
        let mut left = 0usize;
        let mut pending = false;
        let mut last_t = from;
        loop {
            let more = match pkt.read(&mut self.ictx) {
                Ok(()) => true,
                Err(ff::Error::Eof) => false,
                Err(e) => return Err(self.damaged(last_t, e)),
            };
            if more && pkt.stream() != self.index {
                continue;
            }
            let key = more && pkt.is_key();
            // A new keyframe (or the end) closes the burst before it: drain the decoder.
            if (key || !more) && pending {
                dec.send_eof().map_err(|e| self.damaged(last_t, e))?;
                while dec.receive_frame(&mut self.decoded).is_ok() {
                    let Some(t) = self.decoded_time() else {
                        continue;
                    };
                    if t + 1e-6 < from {
                        continue;
                    }
                    let small = self.small_frame(t)?;
                    if f(&small).is_break() {
                        return Ok(());
                    }
                }
                dec.flush();
                pending = false;
            }
            if !more {
                return Ok(());
            }
            if key {
                left = burst + 1;
            }
            if left == 0 {
                continue;
            }
            left -= 1;
            if let Some(p) = pkt.pts() {
                last_t = self.seconds(p);
            }
            // A damaged packet spoils its burst only.
            if dec.send_packet(&pkt).is_ok() {
                pending = true;
            }
        }
    }

    /// Every frame whose time lies in `[from, to)`, decoded from the keyframe before `from`
    /// (frame-threaded). `Break` stops the scan.
    pub fn scan_window(
        &mut self,
        from: f64,
        to: f64,
        mut f: impl FnMut(&SmallFrame) -> ControlFlow<()>,
    ) -> Result<(), MediaError> {
        self.seek(from)?;
        let mut dec = self.decoder(true)?;
        let mut pkt = Packet::empty();
        let mut eof = false;
        let mut last_t = from;
        loop {
            match dec.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    let Some(t) = self.decoded_time() else {
                        continue;
                    };
                    last_t = t;
                    if t >= to - 1e-6 {
                        return Ok(());
                    }
                    if t + 1e-6 < from {
                        continue;
                    }
                    let small = self.small_frame(t)?;
                    if f(&small).is_break() {
                        return Ok(());
                    }
                    continue;
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(e) => return Err(self.damaged(last_t, e)),
            }
            if eof {
                return Ok(());
            }
            loop {
                match pkt.read(&mut self.ictx) {
                    Ok(()) if pkt.stream() != self.index => continue,
                    Ok(()) => {
                        dec.send_packet(&pkt).map_err(|e| self.damaged(last_t, e))?;
                    }
                    Err(ff::Error::Eof) => {
                        dec.send_eof().map_err(|e| self.damaged(last_t, e))?;
                        eof = true;
                    }
                    Err(e) => return Err(self.damaged(last_t, e)),
                }
                break;
            }
        }
    }
}

/// The level of one hop of audio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AudioHop {
    /// Start of the hop in seconds.
    pub t: f64,
    /// Largest |sample| of the hop (mono mix), 0..=1.
    pub peak: f32,
    /// Root mean square of the hop.
    pub rms: f32,
}

/// Sample rate the audio is brought to before its levels are taken.
pub const LEVEL_RATE: u32 = 16_000;

/// The audio of `path` from `from` seconds on as levels per `hop` seconds (mono mix at
/// [`LEVEL_RATE`]), streamed: `f` sees each hop in order, `Break` stops. `Ok(false)` when the
/// file has no audio stream.
pub fn audio_levels(
    path: &Path,
    from: f64,
    hop: f64,
    mut f: impl FnMut(AudioHop) -> ControlFlow<()>,
) -> Result<bool, MediaError> {
    let Some(mut stream) = AudioStream::open(path, from)? else {
        return Ok(false);
    };
    let hop_len = ((hop * LEVEL_RATE as f64).round() as u64).max(1);
    let first_hop = (from / hop).floor().max(0.0) as u64;
    // Position (in samples at LEVEL_RATE, from the file's start) of the next sample.
    let mut pos: Option<u64> = None;
    let (mut peak, mut sq, mut n) = (0f32, 0f64, 0usize);
    let mut hop_index: u64 = 0;
    let mut finish_hop = |hop_index: u64, peak: f32, sq: f64, n: usize| {
        if n > 0 && hop_index >= first_hop {
            f(AudioHop {
                t: hop_index as f64 * hop,
                peak,
                rms: (sq / n as f64).sqrt() as f32,
            })
        } else {
            ControlFlow::Continue(())
        }
    };
    while let Some((t, out)) = stream.next(ff::ChannelLayout::MONO, LEVEL_RATE)? {
        let p = pos.get_or_insert(((t.unwrap_or(0.0).max(0.0)) * LEVEL_RATE as f64).round() as u64);
        let data: &[f32] = out.plane(0);
        for &s in &data[..out.samples().min(data.len())] {
            let h = *p / hop_len;
            if n > 0 && h != hop_index {
                if finish_hop(hop_index, peak, sq, n).is_break() {
                    return Ok(true);
                }
                (peak, sq, n) = (0.0, 0.0, 0);
            }
            hop_index = h;
            peak = peak.max(s.abs());
            sq += (s as f64) * (s as f64);
            n += 1;
            *p += 1;
        }
    }
    let _ = finish_hop(hop_index, peak, sq, n);
    Ok(true)
}

/// A recording's best audio stream, opened and positioned for decoding, its frames converted
/// to packed f32 (what [`audio_levels`] and [`audio_window`] read).
struct AudioStream<'p> {
    path: &'p Path,
    ictx: format::context::Input,
    index: usize,
    tb: Rational,
    start: i64,
    dec: decoder::Audio,
    resampler: Option<software::resampling::Context>,
    decoded: frame::Audio,
    eof: bool,
}

impl<'p> AudioStream<'p> {
    /// Opens `path`'s audio at the packet before `at` seconds; `None` without an audio stream.
    fn open(path: &'p Path, at: f64) -> Result<Option<Self>, MediaError> {
        super::init()?;
        let mut ictx = format::input(path).map_err(|e| fferr(path, e))?;
        let Some(st) = ictx.streams().best(media::Type::Audio) else {
            return Ok(None);
        };
        let index = st.index();
        let tb = st.time_base();
        let start = match st.start_time() {
            t if t == ff::ffi::AV_NOPTS_VALUE => 0,
            t => t,
        };
        let dec = codec::context::Context::from_parameters(st.parameters())
            .and_then(|c| c.decoder().audio())
            .map_err(|e| MediaError::Format {
                path: path.to_path_buf(),
                message: format!("the audio's codec cannot be decoded here ({e})"),
            })?;
        if at > 0.0 {
            let base = f64::from(ff::ffi::AV_TIME_BASE);
            let ts = ((at + start as f64 * tb_f64(tb)) * base) as i64;
            ictx.seek(ts, ..ts + 1).map_err(|e| fferr(path, e))?;
        }
        Ok(Some(Self {
            path,
            ictx,
            index,
            tb,
            start,
            dec,
            resampler: None,
            decoded: frame::Audio::empty(),
            eof: false,
        }))
    }

    /// The next decoded frame as packed f32 `layout` at `rate`, with its time in seconds (when
    /// it has a timestamp); `None` after the last. Damaged packets are skipped.
    fn next(
        &mut self,
        layout: ff::ChannelLayout,
        rate: u32,
    ) -> Result<Option<(Option<f64>, frame::Audio)>, MediaError> {
        let mut pkt = Packet::empty();
        loop {
            while self.dec.receive_frame(&mut self.decoded).is_ok() {
                if self.decoded.samples() == 0 {
                    continue;
                }
                let from_layout = if self.decoded.channel_layout().is_empty() {
                    ff::ChannelLayout::default(self.decoded.channels() as i32)
                } else {
                    self.decoded.channel_layout()
                };
                self.decoded.set_channel_layout(from_layout);
                if self.resampler.is_none() {
                    self.resampler = Some(
                        software::resampling::Context::get(
                            self.decoded.format(),
                            from_layout,
                            self.decoded.rate(),
                            format::Sample::F32(format::sample::Type::Packed),
                            layout,
                            rate,
                        )
                        .map_err(|e| fferr(self.path, e))?,
                    );
                }
                let Some(rs) = self.resampler.as_mut() else {
                    continue;
                };
                // Room for everything this input makes (upsampling makes more samples than
                // came in; a frame sized like the input would leave the rest in swresample).
                let mut out = output_frame(&self.decoded, rate, layout);
                if rs.run(&self.decoded, &mut out).is_err() {
                    continue;
                }
                let t = self
                    .decoded
                    .timestamp()
                    .map(|p| (p - self.start) as f64 * tb_f64(self.tb));
                return Ok(Some((t, out)));
            }
            if self.eof {
                return Ok(None);
            }
            match pkt.read(&mut self.ictx) {
                Ok(()) if pkt.stream() != self.index => {}
                Ok(()) => {
                    // A damaged audio packet is skipped.
                    let _ = self.dec.send_packet(&pkt);
                }
                Err(ff::Error::Eof) => {
                    let _ = self.dec.send_eof();
                    self.eof = true;
                }
                Err(e) => return Err(fferr(self.path, e)),
            }
        }
    }
}

impl Recording {
    /// Every frame of `[from, to)` brought to exactly `width`×`height` (scaled to cover it, the
    /// overflow cropped evenly) on a clock of `fps`: `round((to − from) · fps)` frames, each the
    /// recording's frame nearest its tick (frames dropped or repeated as the rates differ).
    /// `f` sees each in order; an error from it stops the scan and is returned.
    pub fn extract<E: From<MediaError>>(
        &mut self,
        (from, to): (f64, f64),
        (width, height): (u32, u32),
        fps: f64,
        mut f: impl FnMut(&super::image::RgbImage) -> Result<ControlFlow<()>, E>,
    ) -> Result<u64, E> {
        let (sw, sh) = (self.info.width as f64, self.info.height as f64);
        let scale = (width as f64 / sw).max(height as f64 / sh);
        let even = |v: f64| (v.round() as u32).max(2).div_ceil(2) * 2;
        let (cw, ch) = (even(sw * scale).max(width), even(sh * scale).max(height));
        let ticks = ((to - from) * fps).round().max(0.0) as u64;
        let saved = self.small;
        self.small = (cw, ch);
        self.scaler = None;
        let mut out = super::image::RgbImage::new(width, height);
        let (ox, oy) = (((cw - width) / 2) as usize, ((ch - height) / 2) as usize);
        let mut emitted = 0u64;
        let mut prev: Option<(f64, Vec<u8>)> = None;
        let mut failure: Option<E> = None;
        let crop = |src: &[u8], out: &mut super::image::RgbImage| {
            let row = width as usize * 3;
            for y in 0..height as usize {
                let s = ((y + oy) * cw as usize + ox) * 3;
                out.data[y * row..(y + 1) * row].copy_from_slice(&src[s..s + row]);
            }
        };
        let half = 0.5 / self.info.fps.max(1.0);
        let result = self.scan_window(from - half, to + 1.0, |fr| {
            // Ticks nearer the previous frame than this one get the previous frame.
            if let Some((pt, pdata)) = &prev {
                let mid = (pt + fr.t) / 2.0;
                while emitted < ticks && from + emitted as f64 / fps < mid {
                    crop(pdata, &mut out);
                    match f(&out) {
                        Ok(ControlFlow::Continue(())) => emitted += 1,
                        Ok(ControlFlow::Break(())) => return ControlFlow::Break(()),
                        Err(e) => {
                            failure = Some(e);
                            return ControlFlow::Break(());
                        }
                    }
                }
            }
            if emitted >= ticks {
                return ControlFlow::Break(());
            }
            prev = Some((fr.t, fr.rgb.clone()));
            ControlFlow::Continue(())
        });
        self.small = saved;
        self.scaler = None;
        if let Some(e) = failure {
            return Err(e);
        }
        result?;
        // The last frame fills the ticks left (the window runs to the end of the recording).
        if let Some((_, pdata)) = prev {
            while emitted < ticks {
                crop(&pdata, &mut out);
                match f(&out)? {
                    ControlFlow::Continue(()) => emitted += 1,
                    ControlFlow::Break(()) => break,
                }
            }
        }
        Ok(emitted)
    }
}

/// The audio of `[from, to)` as interleaved stereo f32 at `rate`, exactly
/// `round((to − from) · rate)` frames long (silence where the recording has none).
pub fn audio_window(path: &Path, from: f64, to: f64, rate: u32) -> Result<Vec<f32>, MediaError> {
    let frames = ((to - from) * rate as f64).round().max(0.0) as usize;
    let mut out = vec![0f32; frames * 2];
    // A little before: audio packets overlap their neighbours.
    let Some(mut stream) = AudioStream::open(
        path,
        if from > 0.0 {
            (from - 1.0).max(1e-9)
        } else {
            0.0
        },
    )?
    else {
        return Ok(out);
    };
    while let Some((t, conv)) = stream.next(ff::ChannelLayout::STEREO, rate)? {
        let Some(t0) = t else {
            continue;
        };
        if t0 >= to {
            break;
        }
        let data: &[f32] = conv.plane(0);
        // Placed by the frame's own timestamp (robust to gaps and to the seek's slack).
        let at = ((t0 - from) * rate as f64).round() as i64;
        for i in 0..conv.samples().min(data.len() / 2) {
            let k = at + i as i64;
            if k >= 0 && (k as usize) < frames {
                out[k as usize * 2] = data[i * 2];
                out[k as usize * 2 + 1] = data[i * 2 + 1];
            }
        }
    }
    Ok(out)
}

/// The frame of `path` shown nearest `t` seconds, at the recording's own size (decoded from
/// the keyframe before it, not from the start).
pub fn frame_near(path: &Path, t: f64) -> Result<super::image::RgbImage, MediaError> {
    let mut rec = open(path)?;
    let size = (rec.info.width, rec.info.height);
    let fps = rec.info.fps.max(1.0);
    let t = t.clamp(0.0, (rec.info.duration - 1.0 / fps).max(0.0));
    let mut got = None;
    rec.extract::<MediaError>((t, t + 1.0 / fps), size, fps, |img| {
        got = Some(img.clone());
        Ok(ControlFlow::Break(()))
    })?;
    got.ok_or_else(|| MediaError::Format {
        path: path.to_path_buf(),
        message: format!("no frame could be decoded near {t:.2} s"),
    })
}

/// An output frame for converting `input` to packed f32 at `rate`: room for every sample the
/// conversion can make, including what the resampler holds back from earlier frames.
fn output_frame(input: &frame::Audio, rate: u32, layout: ff::ChannelLayout) -> frame::Audio {
    let cap = (input.samples() as u64 * rate as u64).div_ceil(input.rate().max(1) as u64) + 256;
    let mut f = frame::Audio::new(
        format::Sample::F32(format::sample::Type::Packed),
        cap as usize,
        layout,
    );
    f.set_rate(rate);
    f
}
