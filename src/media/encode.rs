//! H.264 + AAC MP4 writing through libavcodec/libavformat, in process.

use std::path::Path;
use std::sync::mpsc;

use ff::{codec, encoder, format, frame, Dictionary, Packet, Rational};
use ffmpeg_next as ff;

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
    audio: Option<AudioTrack>,
    what: String,
}

/// The soundtrack: where it comes from. It is produced and AAC-encoded on its own thread while
/// the video encodes, and its packets are muxed as they arrive.
pub type AudioSource = Box<dyn FnOnce() -> Result<Vec<f32>, String> + Send>;

struct AudioTrack {
    index: usize,
    tb: Rational,
    rate: u32,
    packets: mpsc::Receiver<Result<Packet, MediaError>>,
    /// A packet received but not yet due.
    pending: Option<Packet>,
    thread: Option<std::thread::JoinHandle<()>>,
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
    let send_ready = |enc: &mut encoder::Audio| {
        let mut pkt = Packet::empty();
        while enc.receive_packet(&mut pkt).is_ok() {
            if tx.send(Ok(pkt.clone())).is_err() {
                return;
            }
        }
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
        send_ready(&mut enc);
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

        // Audio: the native AAC encoder, float planar stereo.
        let audio = match audio {
            None => None,
            Some(source) => {
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
                let mut aflags = codec::Flags::BITEXACT;
                if global_header {
                    aflags |= codec::Flags::GLOBAL_HEADER;
                }
                actx.set_flags(aflags);
                let mut aopts = Dictionary::new();
                // The "fast" coder is several times quicker than the default two-loop search
                // with little audible difference for speech over music at 192 kb/s.
                aopts.set("aac_coder", settings.aac_coder.as_str());
                let enc = actx.open_as_with(aac, aopts).map_err(|e| fferr(&what, e))?;
                let frame_size = match enc.frame_size() {
                    0 => 1024,
                    n => n as usize,
                };
                let index = {
                    let mut st = octx.add_stream(aac).map_err(|e| fferr(&what, e))?;
                    st.set_parameters(&enc);
                    st.set_time_base(tb);
                    st.index()
                };
                let (tx, packets) = mpsc::channel();
                let rate = settings.audio_rate;
                let w = what.clone();
                let thread = std::thread::Builder::new()
                    .name("aac".into())
                    .spawn(move || {
                        let result = source()
                            .map_err(|m| MediaError::Internal(format!("{w}: soundtrack: {m}")))
                            .and_then(|samples| {
                                encode_aac(enc, &samples, rate, frame_size, &tx, &w)
                            });
                        if let Err(e) = result {
                            let _ = tx.send(Err(e));
                        }
                    })
                    .map_err(|e| MediaError::Io {
                        path: path.to_path_buf(),
                        source: e,
                    })?;
                Some(AudioTrack {
                    index,
                    tb,
                    rate,
                    packets,
                    pending: None,
                    thread: Some(thread),
                })
            }
        };
        let mut hopts = Dictionary::new();
        hopts.set("movflags", "+faststart");
        hopts.set("fflags", "+bitexact");
        octx.write_header_with(hopts).map_err(|e| fferr(&what, e))?;
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

    fn stream_tb(octx: &format::context::Output, index: usize) -> Rational {
        octx.stream(index)
            .map(|s| s.time_base())
            .unwrap_or(Rational::new(1, 1))
    }

    fn drain_video(&mut self) -> Result<(), MediaError> {
        let mut pkt = Packet::empty();
        let tb = Self::stream_tb(&self.octx, self.v_index);
        while self.venc.receive_packet(&mut pkt).is_ok() {
            pkt.set_stream(self.v_index);
            pkt.rescale_ts(self.v_tb, tb);
            pkt.write_interleaved(&mut self.octx)
                .map_err(|e| fferr(&self.what, e))?;
        }
        Ok(())
    }

    /// Writes audio packets with pts before `until` (in samples), waiting for the encoder
    /// thread when it is behind; `None` writes all that remain.
    fn mux_audio(&mut self, until: Option<i64>) -> Result<(), MediaError> {
        let Some(a) = self.audio.as_mut() else {
            return Ok(());
        };
        let tb = Self::stream_tb(&self.octx, a.index);
        loop {
            let pkt = match a.pending.take() {
                Some(p) => p,
                None => match a.packets.recv() {
                    Ok(p) => p?,
                    Err(_) => break,
                },
            };
            if let Some(limit) = until {
                if pkt.pts().unwrap_or(0) >= limit {
                    a.pending = Some(pkt);
                    break;
                }
            }
            let mut pkt = pkt;
            pkt.set_stream(a.index);
            pkt.rescale_ts(a.tb, tb);
            pkt.write_interleaved(&mut self.octx)
                .map_err(|e| fferr(&self.what, e))?;
        }
        if until.is_none() {
            if let Some(t) = a.thread.take() {
                t.join().map_err(|_| {
                    MediaError::Internal(format!("{}: the audio encoder thread crashed", self.what))
                })?;
            }
        }
        Ok(())
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
