//! Synthetic recordings with known truth, for the highlight analysis' tests and benchmarks.
//!
//! A recording is a list of [`Segment`]s, each drawn by a libavfilter test source (`testsrc2`,
//! `mandelbrot`, `smptebars`, `cellauto`, `life`, `rgbtestsrc`, `color=c=…`, `gradients`, …,
//! optionally followed by filters such as `hue=h=90`) in one in-process filter graph per segment
//! (sources are endless; a segment takes as many frames as it needs). A segment enters by a hard
//! cut or by a dissolve from the previous one; [`Flash`]es overlay white frames (not cuts); an
//! optional soundtrack is a noise bed with louder bursts. Frames are encoded as they are made
//! (memory stays bounded whatever the length) with the container and codec asked for.
//!
//! [`write`] returns the [`SynthTruth`]: cut frames (first frames of new shots, the convention
//! of [`super::cuts`]), dissolve ranges, flash frames and loud intervals.

use std::path::Path;

use ff::{codec, encoder, filter, format, frame, Dictionary, Packet, Rational};
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::media::MediaError;

/// How a segment begins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    /// A hard cut: its first frame is a cut in the truth (except for the first segment).
    Cut,
    /// A dissolve from the previous segment over `frames` frames (the previous source runs on
    /// under the blend); not a cut.
    Fade { frames: u32 },
}

/// One shot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// A lavfi source with optional arguments, then optional `,filter` steps, e.g.
    /// `mandelbrot`, `color=c=red`, `testsrc2,hue=h=120`. The frame size and rate are appended
    /// to the source's arguments (`size=W×H:rate=FPS`), so they must not be given.
    pub source: String,
    pub seconds: f64,
    pub into: Entry,
    /// Temporal noise strength (libavfilter `noise=alls=N:allf=t`, fixed seed); 0 for none.
    pub noise: u8,
    /// A horizontal pan (wrapping scroll) of this many pixels a frame; 0 for none.
    pub pan_px_per_frame: f64,
}

impl Segment {
    /// A plain segment: entered by a hard cut, no noise, no pan.
    pub fn cut(source: &str, seconds: f64) -> Self {
        Self {
            source: source.to_string(),
            seconds,
            into: Entry::Cut,
            noise: 0,
            pan_px_per_frame: 0.0,
        }
    }
}

/// White frames overlaid at `at_frame` for `frames` frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flash {
    pub at_frame: u64,
    pub frames: u32,
}

/// The soundtrack: uniform noise with peaks at `base_db` dBFS, and bursts of noise at
/// `gain_db` dBFS at the events. Deterministic (fixed seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioSpec {
    pub rate: u32,
    /// 1 or 2.
    pub channels: u16,
    pub base_db: f32,
    pub events: Vec<AudioEvent>,
}

/// A loud burst from `at` for `seconds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioEvent {
    pub at: f64,
    pub seconds: f64,
    pub gain_db: f32,
}

/// A video codec for [`Container::Mkv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// libx264.
    H264,
    /// libx265.
    H265,
    /// libvpx-vp9.
    Vp9,
    /// libaom-av1.
    Av1,
}

impl Codec {
    /// The libavcodec encoder name.
    pub fn encoder_name(self) -> &'static str {
        match self {
            Codec::H264 => "libx264",
            Codec::H265 => "libx265",
            Codec::Vp9 => "libvpx-vp9",
            Codec::Av1 => "libaom-av1",
        }
    }
}

/// The codecs whose encoders the linked libavcodec has.
pub fn available_codecs() -> Vec<Codec> {
    if crate::media::init().is_err() {
        return vec![];
    }
    [Codec::H264, Codec::H265, Codec::Vp9, Codec::Av1]
        .into_iter()
        .filter(|c| encoder::find_by_name(c.encoder_name()).is_some())
        .collect()
}

/// The file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Container {
    /// MP4 with H.264 (and AAC audio).
    Mp4,
    /// Matroska with the given video codec (and AAC audio).
    Mkv(Codec),
}

/// A whole synthetic recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub segments: Vec<Segment>,
    pub flashes: Vec<Flash>,
    pub audio: Option<AudioSpec>,
    pub container: Container,
    /// Constant rate factor (x264/x265/vp9/av1 scale; higher is worse).
    pub crf: u8,
    /// Keyframe interval in frames.
    pub gop: u32,
}

/// What a synthetic recording contains, in frames of its video.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SynthTruth {
    pub frames: u64,
    pub fps: u32,
    /// The first frame of each shot entered by a hard cut (not frame 0).
    pub cuts: Vec<u64>,
    /// Dissolves: first and last blended frame.
    pub fades: Vec<(u64, u64)>,
    /// The first frame of each flash.
    pub flashes: Vec<u64>,
    /// Loud intervals of the soundtrack, in seconds.
    pub loud: Vec<(f64, f64)>,
}

fn fferr(what: &str, e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: what.to_string(),
        source: e,
    }
}

fn bad(path: &Path, message: String) -> MediaError {
    MediaError::Format {
        path: path.to_path_buf(),
        message,
    }
}

/// The frames each segment contributes (at least 1).
fn segment_frames(seg: &Segment, fps: u32) -> u64 {
    ((seg.seconds * f64::from(fps)).round() as u64).max(1)
}

/// The truth of `spec` without writing anything.
pub fn truth(spec: &SynthSpec) -> SynthTruth {
    let mut t = SynthTruth {
        fps: spec.fps,
        ..SynthTruth::default()
    };
    let mut at = 0u64;
    for (i, seg) in spec.segments.iter().enumerate() {
        match seg.into {
            Entry::Cut if i > 0 => t.cuts.push(at),
            Entry::Fade { frames } if i > 0 && frames > 0 => {
                let n = u64::from(frames).min(segment_frames(seg, spec.fps));
                t.fades.push((at, at + n - 1));
            }
            _ => {}
        }
        at += segment_frames(seg, spec.fps);
    }
    t.frames = at;
    t.flashes = spec
        .flashes
        .iter()
        .filter(|f| f.at_frame < at && f.frames > 0)
        .map(|f| f.at_frame)
        .collect();
    if let Some(a) = &spec.audio {
        t.loud = a.events.iter().map(|e| (e.at, e.at + e.seconds)).collect();
    }
    t
}

/// One segment's endless frame source: a filter graph `source → filters → yuv420p → sink`.
struct SourceGraph {
    graph: filter::Graph,
    spec: String,
}

impl SourceGraph {
    fn new(seg: &Segment, spec: &SynthSpec, index: usize) -> Result<Self, MediaError> {
        let (w, h) = (spec.width, spec.height);
        let (head, tail) = match seg.source.split_once(',') {
            Some((a, b)) => (a.trim(), Some(b.trim())),
            None => (seg.source.trim(), None),
        };
        let size = format!("size={w}x{h}:rate={}", spec.fps);
        let mut chain = if head.contains('=') {
            format!("{head}:{size}")
        } else {
            format!("{head}={size}")
        };
        if let Some(t) = tail {
            chain.push(',');
            chain.push_str(t);
        }
        // Sources may ignore the size (or draw at their own): pin it.
        chain.push_str(&format!(",scale={w}:{h},format=yuv420p"));
        if seg.noise > 0 {
            chain.push_str(&format!(
                ",noise=alls={}:allf=t:all_seed={}",
                seg.noise,
                1000 + index
            ));
        }
        if seg.pan_px_per_frame != 0.0 {
            chain.push_str(&format!(
                ",scroll=horizontal={:.6}",
                seg.pan_px_per_frame / f64::from(w)
            ));
        }
        chain.push_str(",format=yuv420p");
        let what = format!("synthetic segment {index} (`{chain}`)");
        let sink = filter::find("buffersink").ok_or_else(|| MediaError::Missing {
            what: "the libavfilter `buffersink` filter".into(),
            hint: "install a libavfilter with its built-in filters (Debian: libavfilter8)".into(),
        })?;
        let mut graph = filter::Graph::new();
        graph.add(&sink, "out", "").map_err(|e| fferr(&what, e))?;
        graph
            .input("out", 0)
            .and_then(|p| p.parse(&chain))
            .map_err(|e| fferr(&what, e))?;
        graph.validate().map_err(|e| fferr(&what, e))?;
        Ok(Self { graph, spec: what })
    }

    /// The next frame, into `out`.
    fn next(&mut self, out: &mut frame::Video) -> Result<(), MediaError> {
        let mut sink = self
            .graph
            .get("out")
            .ok_or_else(|| MediaError::Internal(format!("{}: lost its output", self.spec)))?;
        sink.sink().frame(out).map_err(|e| fferr(&self.spec, e))
    }
}

/// Copies a YUV420P frame's planes into `dst` (same size), blending `src` at weight `a`
/// (0 keeps `dst`, 1 replaces it) when `blend` is given.
fn copy_planes(src: &frame::Video, dst: &mut frame::Video, blend: Option<f32>) {
    for p in 0..3 {
        let (pw, ph) = if p == 0 {
            (dst.width() as usize, dst.height() as usize)
        } else {
            (
                dst.width().div_ceil(2) as usize,
                dst.height().div_ceil(2) as usize,
            )
        };
        let (ss, ds) = (src.stride(p), dst.stride(p));
        let sdata = src.data(p);
        let ddata = dst.data_mut(p);
        for y in 0..ph {
            let s = &sdata[y * ss..y * ss + pw];
            let d = &mut ddata[y * ds..y * ds + pw];
            match blend {
                None => d.copy_from_slice(s),
                Some(a) => {
                    for (d, &s) in d.iter_mut().zip(s) {
                        *d = (f32::from(*d) * (1.0 - a) + f32::from(s) * a).round() as u8;
                    }
                }
            }
        }
    }
}

/// Paints a frame white (BT.601/709 limited range: Y 235, neutral chroma).
fn paint_white(f: &mut frame::Video) {
    for p in 0..3 {
        let v = if p == 0 { 235 } else { 128 };
        f.data_mut(p).fill(v);
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// The soundtrack being made and AAC-encoded alongside the video.
struct AudioTrack {
    enc: encoder::Audio,
    index: usize,
    tb: Rational,
    rate: u32,
    channels: usize,
    frame_size: usize,
    /// Samples made so far.
    pos: i64,
    base: f32,
    events: Vec<(i64, i64, f32)>,
    rng: Rng,
}

impl AudioTrack {
    fn sample_amp(&self, t: i64) -> f32 {
        self.events
            .iter()
            .filter(|(a, b, _)| t >= *a && t < *b)
            .map(|(_, _, g)| *g)
            .fold(self.base, f32::max)
    }

    /// Encodes audio up to sample `until` (whole encoder frames) and muxes its packets.
    fn fill(
        &mut self,
        until: i64,
        octx: &mut format::context::Output,
        what: &str,
    ) -> Result<(), MediaError> {
        let layout = if self.channels == 1 {
            ff::ChannelLayout::MONO
        } else {
            ff::ChannelLayout::STEREO
        };
        while self.pos < until {
            let mut af = frame::Audio::new(
                format::Sample::F32(format::sample::Type::Planar),
                self.frame_size,
                layout,
            );
            af.set_rate(self.rate);
            for i in 0..self.frame_size {
                let amp = self.sample_amp(self.pos + i as i64);
                for ch in 0..self.channels {
                    let s = self.rng.next_f32() * amp;
                    af.plane_mut::<f32>(ch)[i] = s;
                }
            }
            af.set_pts(Some(self.pos));
            self.enc.send_frame(&af).map_err(|e| fferr(what, e))?;
            self.pos += self.frame_size as i64;
            self.drain(octx, what)?;
        }
        Ok(())
    }

    fn drain(&mut self, octx: &mut format::context::Output, what: &str) -> Result<(), MediaError> {
        let tb = octx
            .stream(self.index)
            .map(|s| s.time_base())
            .unwrap_or(self.tb);
        let mut pkt = Packet::empty();
        while self.enc.receive_packet(&mut pkt).is_ok() {
            pkt.set_stream(self.index);
            pkt.rescale_ts(self.tb, tb);
            pkt.write_interleaved(octx).map_err(|e| fferr(what, e))?;
        }
        Ok(())
    }
}

fn db_to_amp(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// Writes the recording `spec` describes to `path` and returns its truth.
pub fn write(path: &Path, spec: &SynthSpec) -> Result<SynthTruth, MediaError> {
    crate::media::init()?;
    let what = path.display().to_string();
    if spec.segments.is_empty() {
        return Err(bad(path, "a synthetic recording needs a segment".into()));
    }
    if spec.width < 16 || spec.height < 16 || spec.width % 2 == 1 || spec.height % 2 == 1 {
        return Err(bad(
            path,
            format!(
                "synthetic frame size {}×{}: both sides must be even and at least 16",
                spec.width, spec.height
            ),
        ));
    }
    if spec.fps == 0 {
        return Err(bad(path, "synthetic frame rate 0".into()));
    }
    let truth = truth(spec);
    let (codec_kind, fmt) = match spec.container {
        Container::Mp4 => (Codec::H264, "mp4"),
        Container::Mkv(c) => (c, "matroska"),
    };
    let vcodec =
        encoder::find_by_name(codec_kind.encoder_name()).ok_or_else(|| MediaError::Missing {
            what: format!("the {} encoder", codec_kind.encoder_name()),
            hint: format!(
                "use one of {:?} (synth::available_codecs) or a libavcodec built with it",
                available_codecs()
            ),
        })?;
    let mut octx = format::output_as(path, fmt).map_err(|e| fferr(&what, e))?;
    let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let v_tb = Rational::new(1, spec.fps as i32);

    let mut vctx = codec::context::Context::new_with_codec(vcodec)
        .encoder()
        .video()
        .map_err(|e| fferr(&what, e))?;
    vctx.set_width(spec.width);
    vctx.set_height(spec.height);
    vctx.set_format(format::Pixel::YUV420P);
    vctx.set_time_base(v_tb);
    vctx.set_frame_rate(Some(Rational::new(spec.fps as i32, 1)));
    vctx.set_gop(spec.gop.max(1));
    let mut flags = codec::Flags::BITEXACT;
    if global_header {
        flags |= codec::Flags::GLOBAL_HEADER;
    }
    vctx.set_flags(flags);
    let mut vopts = Dictionary::new();
    let crf = spec.crf.to_string();
    match codec_kind {
        Codec::H264 => {
            vopts.set("preset", "ultrafast");
            vopts.set("crf", &crf);
            vopts.set("threads", "1");
        }
        Codec::H265 => {
            vopts.set("preset", "ultrafast");
            vopts.set("crf", &crf);
            vopts.set("x265-params", "log-level=none:pools=1:frame-threads=1");
        }
        Codec::Vp9 => {
            vopts.set("crf", &crf);
            vopts.set("b", "0");
            vopts.set("deadline", "realtime");
            vopts.set("cpu-used", "8");
        }
        Codec::Av1 => {
            vopts.set("crf", &crf);
            vopts.set("b", "0");
            vopts.set("usage", "realtime");
            vopts.set("cpu-used", "8");
        }
    }
    let mut venc = vctx
        .open_as_with(vcodec, vopts)
        .map_err(|e| fferr(&what, e))?;
    let v_index = {
        let mut st = octx.add_stream(vcodec).map_err(|e| fferr(&what, e))?;
        st.set_parameters(&venc);
        st.set_time_base(v_tb);
        st.set_avg_frame_rate(Rational::new(spec.fps as i32, 1));
        st.index()
    };

    let mut audio = match &spec.audio {
        None => None,
        Some(a) => Some(open_audio(a, &mut octx, global_header, &what)?),
    };
    let mut hopts = Dictionary::new();
    hopts.set("fflags", "+bitexact");
    octx.write_header_with(hopts).map_err(|e| fferr(&what, e))?;

    let flash_at = |n: u64, spec: &SynthSpec| {
        spec.flashes
            .iter()
            .any(|f| n >= f.at_frame && n < f.at_frame + u64::from(f.frames))
    };

    let mut out = frame::Video::new(format::Pixel::YUV420P, spec.width, spec.height);
    let mut src = frame::Video::empty();
    let mut n = 0u64;
    let mut prev: Option<SourceGraph> = None;
    let mut v_pkt_tb = octx.stream(v_index).map(|s| s.time_base()).unwrap_or(v_tb);
    for (i, seg) in spec.segments.iter().enumerate() {
        let mut cur = SourceGraph::new(seg, spec, i)?;
        let frames = segment_frames(seg, spec.fps);
        let fade = match seg.into {
            Entry::Fade { frames: f } if i > 0 => u64::from(f).min(frames),
            _ => 0,
        };
        let mut from = if fade > 0 { prev.take() } else { None };
        for k in 0..frames {
            cur.next(&mut src)?;
            match from.as_mut() {
                Some(old) if k < fade => {
                    let mut o = frame::Video::empty();
                    old.next(&mut o)?;
                    copy_planes(&o, &mut out, None);
                    let a = (k + 1) as f32 / (fade + 1) as f32;
                    copy_planes(&src, &mut out, Some(a));
                }
                _ => {
                    from = None;
                    copy_planes(&src, &mut out, None);
                }
            }
            if flash_at(n, spec) {
                paint_white(&mut out);
            }
            out.set_pts(Some(n as i64));
            out.set_kind(ff::picture::Type::None);
            venc.send_frame(&out).map_err(|e| fferr(&what, e))?;
            n += 1;
            drain_video(&mut venc, &mut octx, v_index, v_tb, &mut v_pkt_tb, &what)?;
            if let Some(a) = audio.as_mut() {
                let until = n as i64 * i64::from(a.rate) / i64::from(spec.fps);
                a.fill(until, &mut octx, &what)?;
            }
        }
        prev = Some(cur);
    }
    venc.send_eof().map_err(|e| fferr(&what, e))?;
    drain_video(&mut venc, &mut octx, v_index, v_tb, &mut v_pkt_tb, &what)?;
    if let Some(a) = audio.as_mut() {
        a.enc.send_eof().map_err(|e| fferr(&what, e))?;
        a.drain(&mut octx, &what)?;
    }
    octx.write_trailer().map_err(|e| fferr(&what, e))?;
    Ok(truth)
}

fn drain_video(
    venc: &mut encoder::Video,
    octx: &mut format::context::Output,
    index: usize,
    v_tb: Rational,
    tb: &mut Rational,
    what: &str,
) -> Result<(), MediaError> {
    if let Some(st) = octx.stream(index) {
        *tb = st.time_base();
    }
    let mut pkt = Packet::empty();
    while venc.receive_packet(&mut pkt).is_ok() {
        pkt.set_stream(index);
        pkt.rescale_ts(v_tb, *tb);
        pkt.write_interleaved(octx).map_err(|e| fferr(what, e))?;
    }
    Ok(())
}

fn open_audio(
    a: &AudioSpec,
    octx: &mut format::context::Output,
    global_header: bool,
    what: &str,
) -> Result<AudioTrack, MediaError> {
    let aac = encoder::find(codec::Id::AAC).ok_or_else(|| MediaError::Missing {
        what: "the AAC encoder".into(),
        hint: "install libavcodec".into(),
    })?;
    let channels = usize::from(a.channels.clamp(1, 2));
    let layout = if channels == 1 {
        ff::ChannelLayout::MONO
    } else {
        ff::ChannelLayout::STEREO
    };
    let tb = Rational::new(1, a.rate as i32);
    let mut actx = codec::context::Context::new_with_codec(aac)
        .encoder()
        .audio()
        .map_err(|e| fferr(what, e))?;
    actx.set_rate(a.rate as i32);
    actx.set_channel_layout(layout);
    actx.set_format(format::Sample::F32(format::sample::Type::Planar));
    actx.set_bit_rate(32_000 * channels);
    actx.set_time_base(tb);
    let mut flags = codec::Flags::BITEXACT;
    if global_header {
        flags |= codec::Flags::GLOBAL_HEADER;
    }
    actx.set_flags(flags);
    let mut opts = Dictionary::new();
    opts.set("aac_coder", "fast");
    let enc = actx.open_as_with(aac, opts).map_err(|e| fferr(what, e))?;
    let frame_size = match enc.frame_size() {
        0 => 1024,
        n => n as usize,
    };
    let index = {
        let mut st = octx.add_stream(aac).map_err(|e| fferr(what, e))?;
        st.set_parameters(&enc);
        st.set_time_base(tb);
        st.index()
    };
    let rate = f64::from(a.rate);
    Ok(AudioTrack {
        enc,
        index,
        tb,
        rate: a.rate,
        channels,
        frame_size,
        pos: 0,
        base: db_to_amp(a.base_db),
        events: a
            .events
            .iter()
            .map(|e| {
                (
                    (e.at * rate).round() as i64,
                    ((e.at + e.seconds) * rate).round() as i64,
                    db_to_amp(e.gain_db),
                )
            })
            .collect(),
        rng: Rng(0x9e37_79b9_7f4a_7c15),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(container: Container) -> SynthSpec {
        SynthSpec {
            width: 64,
            height: 36,
            fps: 10,
            segments: vec![
                Segment::cut("testsrc2", 2.0),
                Segment::cut("color=c=red", 1.0),
                Segment {
                    into: Entry::Fade { frames: 5 },
                    noise: 20,
                    pan_px_per_frame: 3.0,
                    ..Segment::cut("mandelbrot", 2.0)
                },
            ],
            flashes: vec![Flash {
                at_frame: 8,
                frames: 2,
            }],
            audio: Some(AudioSpec {
                rate: 8000,
                channels: 1,
                base_db: -30.0,
                events: vec![AudioEvent {
                    at: 1.0,
                    seconds: 0.5,
                    gain_db: -3.0,
                }],
            }),
            container,
            crf: 23,
            gop: 20,
        }
    }

    #[test]
    fn truth_and_file_agree() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("a.mp4");
        let t = write(&p, &spec(Container::Mp4)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.frames, 50);
        assert_eq!(t.cuts, vec![20]);
        assert_eq!(t.fades, vec![(30, 34)]);
        assert_eq!(t.flashes, vec![8]);
        assert_eq!(t.loud, vec![(1.0, 1.5)]);
        let info = crate::media::decode::probe(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(info.audio.is_some());
        let n = crate::media::decode::for_each_frame(&p, |_, _, _| true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 50);
        // Without audio: no audio stream; in Matroska with every codec this libav has.
        for c in available_codecs() {
            let mut s = spec(Container::Mkv(c));
            s.audio = None;
            let p = dir.path().join(format!("{c:?}.mkv"));
            write(&p, &s).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            let info = crate::media::decode::probe(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(info.audio.is_none(), "{c:?}");
            let n = crate::media::decode::for_each_frame(&p, |_, _, _| true)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(n, 50, "{c:?}");
        }
    }

    #[test]
    fn a_bad_spec_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut s = spec(Container::Mp4);
        s.width = 63;
        assert!(write(&dir.path().join("x.mp4"), &s).is_err());
        let mut s = spec(Container::Mp4);
        s.segments[0].source = "nosuchsource".into();
        assert!(write(&dir.path().join("y.mp4"), &s).is_err());
    }
}
