//! H.264 + AAC MP4 writing through libavcodec/libavformat, in process: a whole file at once
//! ([`Mp4Writer::create`]), or video in segments ([`Mp4Writer::create_segment`]) that
//! [`join_segments`] copies into one file beside the soundtrack, without re-encoding (the
//! finished segments of a long encode are its checkpoints).

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use ff::{codec, encoder, format, frame, media, Dictionary, Packet, Rational};
use ffmpeg_next as ff;

use super::image::RgbImage;
use super::MediaError;

/// Encoder settings for one MP4.
#[derive(Clone, Debug)]
pub struct EncodeSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// libx264 constant rate factor (lower is better quality).
    pub crf: u8,
    /// libx264 preset name (ultrafast … veryslow).
    pub preset: String,
    pub audio_rate: u32,
    pub audio_bitrate: usize,
    /// libavcodec AAC coder: `fast` or `twoloop` (slower, slightly better).
    pub aac_coder: String,
}

/// Writes H.264 video and AAC audio into an MP4 with the index up front (faststart).
///
/// The audio track is handed over whole (it is mixed before the video is drawn) and is
/// interleaved with the video as frames arrive, so the file is streamable and the muxer never
/// buffers more than a frame or two.
pub struct Mp4Writer {
    octx: format::context::Output,
    venc: encoder::Video,
    v_index: usize,
    v_tb: Rational,
    frames: i64,
    fps: u32,
    audio: Option<AudioEncoding>,
    what: String,
}

/// The soundtrack: where it comes from. It is produced and AAC-encoded on its own thread while
/// the video encodes, and its packets are muxed as they arrive.
pub type AudioSource = Box<dyn FnOnce() -> Result<Vec<f32>, String> + Send>;

/// A soundtrack being AAC-encoded on its own thread for an MP4, started before the file it goes
/// into is opened (so it encodes while the video does); its packets are muxed as they arrive.
pub struct AudioEncoding {
    /// The encoder's parameters, for the stream it is muxed into.
    params: codec::Parameters,
    /// The stream it is muxed into, once added.
    index: usize,
    tb: Rational,
    rate: u32,
    packets: mpsc::Receiver<Result<Packet, MediaError>>,
    /// A packet received but not yet due.
    pending: Option<Packet>,
    thread: Option<std::thread::JoinHandle<()>>,
    what: String,
}

/// Encodes interleaved stereo `samples` to AAC packets (pts in 1/rate), sending each as it is made.
fn encode_aac(
    mut enc: encoder::Audio,
    samples: &[f32],
    rate: u32,
    frame_size: usize,
    tx: &mpsc::Sender<Result<Packet, MediaError>>,
    what: &str,
) -> Result<(), MediaError> {
    let total = samples.len() / 2;
    let mut pos = 0usize;
    // False once nobody listens (the writer was dropped): the encoding stops.
    let send_ready = |enc: &mut encoder::Audio| {
        let mut pkt = Packet::empty();
        while enc.receive_packet(&mut pkt).is_ok() {
            if tx.send(Ok(pkt.clone())).is_err() {
                return false;
            }
        }
        true
    };
    while pos < total {
        let n = frame_size.min(total - pos);
        let mut af = frame::Audio::new(
            format::Sample::F32(format::sample::Type::Planar),
            frame_size,
            ff::ChannelLayout::STEREO,
        );
        af.set_rate(rate);
        for ch in 0..2 {
            let plane = af.plane_mut::<f32>(ch);
            for (i, s) in plane.iter_mut().enumerate() {
                *s = if i < n {
                    samples[(pos + i) * 2 + ch]
                } else {
                    0.0
                };
            }
        }
        if n < frame_size {
            af.set_samples(n);
        }
        af.set_pts(Some(pos as i64));
        enc.send_frame(&af).map_err(|e| fferr(what, e))?;
        pos += n;
        if !send_ready(&mut enc) {
            return Ok(());
        }
    }
    enc.send_eof().map_err(|e| fferr(what, e))?;
    send_ready(&mut enc);
    Ok(())
}

fn fferr(what: &str, e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: what.to_string(),
        source: e,
    }
}

impl Mp4Writer {
    /// Creates `path` (written as MP4 whatever its extension) and opens the encoders.
    /// `audio` yields interleaved stereo f32 at `settings.audio_rate`; `None` writes video only.
    pub fn create(
        path: &Path,
        settings: &EncodeSettings,
        audio: Option<AudioSource>,
    ) -> Result<Self, MediaError> {
        let audio = audio
            .map(|source| AudioEncoding::start(settings, source, path))
            .transpose()?;
        Self::create_with(path, settings, audio, true)
    }

    /// A segment of a longer video for [`join_segments`]: video only, starting with a keyframe
    /// (every writer's first frame is one), with no index moved to the front (it is copied, not
    /// played).
    pub fn create_segment(path: &Path, settings: &EncodeSettings) -> Result<Self, MediaError> {
        Self::create_with(path, settings, None, false)
    }

    fn create_with(
        path: &Path,
        settings: &EncodeSettings,
        mut audio: Option<AudioEncoding>,
        faststart: bool,
    ) -> Result<Self, MediaError> {
        super::init()?;
        let what = path.display().to_string();
        let mut octx = format::output_as(path, "mp4").map_err(|e| fferr(&what, e))?;
        let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);

        // Video: libx264, yuv420p, BT.709 limited range.
        let x264 = encoder::find_by_name("libx264").ok_or_else(|| MediaError::Missing {
            what: "the libx264 encoder".into(),
            hint: "install a libavcodec built with libx264 (Debian: libavcodec59)".into(),
        })?;
        let v_tb = Rational::new(1, settings.fps as i32);
        let mut vctx = codec::context::Context::new_with_codec(x264)
            .encoder()
            .video()
            .map_err(|e| fferr(&what, e))?;
        vctx.set_width(settings.width);
        vctx.set_height(settings.height);
        vctx.set_format(format::Pixel::YUV420P);
        vctx.set_time_base(v_tb);
        vctx.set_frame_rate(Some(Rational::new(settings.fps as i32, 1)));
        vctx.set_gop(settings.fps * 2);
        vctx.set_colorspace(ff::color::Space::BT709);
        vctx.set_color_range(ff::color::Range::MPEG);
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
        vopts.set("preset", &settings.preset);
        vopts.set("crf", &settings.crf.to_string());
        vopts.set("profile", "high");
        let venc = vctx
            .open_as_with(x264, vopts)
            .map_err(|e| fferr(&what, e))?;
        let v_index = {
            let mut st = octx.add_stream(x264).map_err(|e| fferr(&what, e))?;
            st.set_parameters(&venc);
            st.set_time_base(v_tb);
            st.set_avg_frame_rate(Rational::new(settings.fps as i32, 1));
            st.index()
        };

        if let Some(a) = audio.as_mut() {
            a.add_to(&mut octx)?;
        }
        write_header(&mut octx, faststart, &what)?;
        Ok(Self {
            octx,
            venc,
            v_index,
            v_tb,
            frames: 0,
            fps: settings.fps,
            audio,
            what,
        })
    }

    /// Encodes one YUV420P frame of the configured size, and muxes audio that is ready.
    pub fn push_frame(&mut self, frame: &mut frame::Video) -> Result<(), MediaError> {
        frame.set_pts(Some(self.frames));
        frame.set_kind(ff::picture::Type::None);
        self.venc
            .send_frame(frame)
            .map_err(|e| fferr(&self.what, e))?;
        self.frames += 1;
        self.drain_video()?;
        // Audio is muxed up to this frame's end time: the same calls in the same order on every
        // run, so the file's layout does not depend on how fast the audio thread was.
        let until = self
            .audio
            .as_ref()
            .map(|a| self.frames * a.rate as i64 / self.fps as i64)
            .unwrap_or(0);
        self.mux_audio(Some(until))
    }

    /// Encodes one RGB picture of the configured size (converted to YUV420P, BT.709).
    pub fn push_rgb(&mut self, img: &RgbImage) -> Result<(), MediaError> {
        let mut yuv = yuv_of_rgb(img).map_err(|e| match e {
            MediaError::Ffmpeg { source, .. } => fferr(&self.what, source),
            e => e,
        })?;
        self.push_frame(&mut yuv)
    }

    fn drain_video(&mut self) -> Result<(), MediaError> {
        let mut pkt = Packet::empty();
        let tb = stream_tb(&self.octx, self.v_index);
        while self.venc.receive_packet(&mut pkt).is_ok() {
            pkt.set_stream(self.v_index);
            pkt.rescale_ts(self.v_tb, tb);
            pkt.write_interleaved(&mut self.octx)
                .map_err(|e| fferr(&self.what, e))?;
        }
        Ok(())
    }

    fn mux_audio(&mut self, until: Option<i64>) -> Result<(), MediaError> {
        match self.audio.as_mut() {
            Some(a) => a.mux(&mut self.octx, until),
            None => Ok(()),
        }
    }

    /// Flushes the encoders and writes the MP4 trailer (moving the index to the front).
    pub fn finish(mut self) -> Result<(), MediaError> {
        self.venc.send_eof().map_err(|e| fferr(&self.what, e))?;
        self.drain_video()?;
        self.mux_audio(None)?;
        self.octx
            .write_trailer()
            .map_err(|e| fferr(&self.what, e))?;
        Ok(())
    }
}

/// Writes an MP4 header: bit-exact, with the index moved to the front on `faststart`.
fn write_header(
    octx: &mut format::context::Output,
    faststart: bool,
    what: &str,
) -> Result<(), MediaError> {
    let mut hopts = Dictionary::new();
    if faststart {
        hopts.set("movflags", "+faststart");
    }
    hopts.set("fflags", "+bitexact");
    octx.write_header_with(hopts).map_err(|e| fferr(what, e))?;
    Ok(())
}

impl AudioEncoding {
    /// Opens the AAC encoder (float planar stereo, global headers as MP4 wants them) and starts
    /// encoding `source` on a thread of its own. `path` names the file it is for, in errors.
    pub fn start(
        settings: &EncodeSettings,
        source: AudioSource,
        path: &Path,
    ) -> Result<Self, MediaError> {
        super::init()?;
        let what = path.display().to_string();
        let aac = encoder::find(codec::Id::AAC).ok_or_else(|| MediaError::Missing {
            what: "the AAC encoder".into(),
            hint: "install libavcodec".into(),
        })?;
        let tb = Rational::new(1, settings.audio_rate as i32);
        let mut actx = codec::context::Context::new_with_codec(aac)
            .encoder()
            .audio()
            .map_err(|e| fferr(&what, e))?;
        actx.set_rate(settings.audio_rate as i32);
        actx.set_channel_layout(ff::ChannelLayout::STEREO);
        actx.set_format(format::Sample::F32(format::sample::Type::Planar));
        actx.set_bit_rate(settings.audio_bitrate);
        actx.set_time_base(tb);
        actx.set_flags(codec::Flags::BITEXACT | codec::Flags::GLOBAL_HEADER);
        let mut aopts = Dictionary::new();
        // The "fast" coder is several times quicker than the default two-loop search
        // with little audible difference for speech over music at 192 kb/s.
        aopts.set("aac_coder", settings.aac_coder.as_str());
        let enc = actx.open_as_with(aac, aopts).map_err(|e| fferr(&what, e))?;
        let frame_size = match enc.frame_size() {
            0 => 1024,
            n => n as usize,
        };
        let params = codec::Parameters::from(&enc);
        let (tx, packets) = mpsc::channel();
        let rate = settings.audio_rate;
        let w = what.clone();
        let thread = std::thread::Builder::new()
            .name("aac".into())
            .spawn(move || {
                let result = source()
                    .map_err(|m| MediaError::Internal(format!("{w}: soundtrack: {m}")))
                    .and_then(|samples| encode_aac(enc, &samples, rate, frame_size, &tx, &w));
                if let Err(e) = result {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| MediaError::Io {
                path: path.to_path_buf(),
                source: e,
            })?;
        Ok(Self {
            params,
            index: 0,
            tb,
            rate,
            packets,
            pending: None,
            thread: Some(thread),
            what,
        })
    }

    /// Adds the audio stream to `octx` (before its header is written).
    pub(crate) fn add_to(&mut self, octx: &mut format::context::Output) -> Result<(), MediaError> {
        let mut st = octx
            .add_stream(encoder::find(codec::Id::AAC))
            .map_err(|e| fferr(&self.what, e))?;
        st.set_parameters(self.params.clone());
        st.set_time_base(self.tb);
        self.index = st.index();
        Ok(())
    }

    /// Writes audio packets with pts before `until` (in samples), waiting for the encoder
    /// thread when it is behind; `None` writes all that remain.
    pub(crate) fn mux(
        &mut self,
        octx: &mut format::context::Output,
        until: Option<i64>,
    ) -> Result<(), MediaError> {
        let tb = stream_tb(octx, self.index);
        loop {
            let pkt = match self.pending.take() {
                Some(p) => p,
                None => match self.packets.recv() {
                    Ok(p) => p?,
                    Err(_) => break,
                },
            };
            if let Some(limit) = until {
                if pkt.pts().unwrap_or(0) >= limit {
                    self.pending = Some(pkt);
                    break;
                }
            }
            let mut pkt = pkt;
            pkt.set_stream(self.index);
            pkt.rescale_ts(self.tb, tb);
            pkt.write_interleaved(octx)
                .map_err(|e| fferr(&self.what, e))?;
        }
        if until.is_none() {
            if let Some(t) = self.thread.take() {
                t.join().map_err(|_| {
                    MediaError::Internal(format!("{}: the audio encoder thread crashed", self.what))
                })?;
            }
        }
        Ok(())
    }
}

fn stream_tb(octx: &format::context::Output, index: usize) -> Rational {
    octx.stream(index)
        .map(|s| s.time_base())
        .unwrap_or(Rational::new(1, 1))
}

/// What [`probe_segment`] reads from a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Video packets (frames).
    pub frames: u64,
    /// The codec's global headers (H.264 SPS/PPS): segments can only be joined when they are
    /// the same (the same encoder and settings wrote them).
    pub headers: Vec<u8>,
}

fn open_video(path: &Path) -> Result<(format::context::Input, usize), MediaError> {
    let what = path.display().to_string();
    let ictx = format::input(path).map_err(|e| fferr(&what, e))?;
    let index = ictx
        .streams()
        .best(media::Type::Video)
        .map(|s| s.index())
        .ok_or_else(|| MediaError::NoStream {
            path: path.to_path_buf(),
            kind: "video",
        })?;
    Ok((ictx, index))
}

/// The codec extradata of stream `index`.
fn headers_of(ictx: &format::context::Input, index: usize) -> Vec<u8> {
    let Some(st) = ictx.stream(index) else {
        return Vec::new();
    };
    let params = st.parameters();
    // SAFETY: the parameters belong to the open input; extradata is `extradata_size` bytes.
    unsafe {
        let p = params.as_ptr();
        let (data, len) = ((*p).extradata, (*p).extradata_size);
        if data.is_null() || len <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(data, len as usize).to_vec()
        }
    }
}

/// Frames and codec headers of a video segment (cheap: packets are counted, not decoded). A
/// file that does not open as a video is an error (a damaged segment: encode it again).
pub fn probe_segment(path: &Path) -> Result<SegmentInfo, MediaError> {
    super::init()?;
    let (mut ictx, index) = open_video(path)?;
    let headers = headers_of(&ictx, index);
    let frames = ictx.packets().filter(|(st, _)| st.index() == index).count() as u64;
    Ok(SegmentInfo { frames, headers })
}

/// Joins video segments written by [`Mp4Writer::create_segment`] with the same settings, in
/// order, into the MP4 `out` by copying their packets (no re-encode): segment k's frames
/// follow segment k−1's on the timeline at `fps`. `audio` is muxed beside them, interleaved
/// frame by frame as [`Mp4Writer`] does; the index goes up front (faststart).
pub fn join_segments(
    out: &Path,
    segments: &[PathBuf],
    fps: u32,
    mut audio: Option<AudioEncoding>,
) -> Result<(), MediaError> {
    super::init()?;
    let what = out.display().to_string();
    let first = segments
        .first()
        .ok_or_else(|| MediaError::Internal(format!("{what}: no segments to join")))?;
    let v_tb = Rational::new(1, fps as i32);
    let mut octx = format::output_as(out, "mp4").map_err(|e| fferr(&what, e))?;
    let (headers, v_index) = {
        let (ictx, index) = open_video(first)?;
        let ist = ictx
            .stream(index)
            .ok_or_else(|| MediaError::Internal("stream vanished".into()))?;
        let mut st = octx
            .add_stream(encoder::find(codec::Id::None))
            .map_err(|e| fferr(&what, e))?;
        st.set_parameters(ist.parameters());
        // SAFETY: the new stream's own parameters; the tag is chosen again by the muxer.
        unsafe {
            (*st.parameters().as_mut_ptr()).codec_tag = 0;
        }
        st.set_time_base(v_tb);
        st.set_avg_frame_rate(Rational::new(fps as i32, 1));
        (headers_of(&ictx, index), st.index())
    };
    if let Some(a) = audio.as_mut() {
        a.add_to(&mut octx)?;
    }
    write_header(&mut octx, true, &what)?;
    let out_tb = stream_tb(&octx, v_index);
    let mut start = 0i64;
    let mut written = 0i64;
    for seg in segments {
        let (mut ictx, index) = open_video(seg)?;
        if headers_of(&ictx, index) != headers {
            return Err(MediaError::Format {
                path: seg.clone(),
                message: format!(
                    "encoded with other settings than {} (segments are joined without re-encoding)",
                    first.display()
                ),
            });
        }
        let in_tb = ictx.stream(index).map(|s| s.time_base()).unwrap_or(v_tb);
        // The segment's first packet is its keyframe, shown first: it lands on `start`.
        let mut offset = None;
        let mut frames = 0i64;
        for (st, mut pkt) in ictx.packets() {
            if st.index() != index {
                continue;
            }
            pkt.rescale_ts(in_tb, v_tb);
            let off = *offset.get_or_insert(start - pkt.pts().unwrap_or(0));
            pkt.set_pts(pkt.pts().map(|t| t + off));
            pkt.set_dts(pkt.dts().map(|t| t + off));
            pkt.set_position(-1);
            pkt.set_stream(v_index);
            pkt.rescale_ts(v_tb, out_tb);
            pkt.write_interleaved(&mut octx)
                .map_err(|e| fferr(&what, e))?;
            frames += 1;
            written += 1;
            if let Some(a) = audio.as_mut() {
                a.mux(&mut octx, Some(written * a.rate as i64 / fps as i64))?;
            }
        }
        start += frames;
    }
    if let Some(a) = audio.as_mut() {
        a.mux(&mut octx, None)?;
    }
    octx.write_trailer().map_err(|e| fferr(&what, e))
}

/// An RGB picture as the YUV420P frame (BT.709, limited range) the H.264 encoder takes.
pub fn yuv_of_rgb(img: &RgbImage) -> Result<frame::Video, MediaError> {
    let mut rgb = frame::Video::new(ff::format::Pixel::RGB24, img.width, img.height);
    let stride = rgb.stride(0);
    let w = img.width as usize * 3;
    for (y, row) in img.data.chunks_exact(w).enumerate() {
        rgb.data_mut(0)[y * stride..y * stride + w].copy_from_slice(row);
    }
    let mut yuv = super::compose::new_frame(img.width, img.height);
    let mut scaler = ff::software::scaling::Context::get(
        ff::format::Pixel::RGB24,
        img.width,
        img.height,
        ff::format::Pixel::YUV420P,
        img.width,
        img.height,
        ff::software::scaling::Flags::BICUBIC,
    )
    .map_err(|e| fferr("RGB to YUV", e))?;
    scaler
        .run(&rgb, &mut yuv)
        .map_err(|e| fferr("RGB to YUV", e))?;
    yuv.set_color_space(ff::color::Space::BT709);
    yuv.set_color_range(ff::color::Range::MPEG);
    Ok(yuv)
}
