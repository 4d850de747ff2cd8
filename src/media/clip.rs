//! Generated clips on disk: the lossless intermediate between a video model and the assembly.
//!
//! A clip is FFV1 (version 3, 8-bit RGB, every frame a keyframe, a CRC on every slice) in
//! Matroska: bit-exact RGB, so the pixels the model made are the pixels assembly scales, with
//! no colour conversion or chroma subsampling in between; about half the size of raw frames;
//! any frame decodes on its own, so a reader can start anywhere (a segment of the assembly that
//! begins mid-clip seeks to it); and a damaged or cut file is reported, not drawn as garbage.
//!
//! [`ClipWriter`] writes to a temporary name beside the target and renames it into place only
//! when finished; [`ClipReader`] decodes one frame at a time (keeping the last two), never the
//! whole clip.

use std::path::{Path, PathBuf};

use ff::{codec, decoder, encoder, format, frame, media, software, Dictionary, Packet, Rational};
use ffmpeg_next as ff;

use super::image::RgbImage;
use super::MediaError;

/// Size, rate and length of a clip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClipInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second of the clip's own clock.
    pub fps: f64,
    pub frames: u32,
}

impl ClipInfo {
    /// Seconds the clip lasts at its own rate.
    pub fn seconds(&self) -> f64 {
        self.frames as f64 / self.fps
    }
}

/// The stream tag that keeps the clip's frame rate exactly as it was given.
const FPS_TAG: &str = "REELSMITH_FPS";

fn fferr(path: &Path, e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: path.display().to_string(),
        source: e,
    }
}

fn bad(path: &Path, message: impl Into<String>) -> MediaError {
    MediaError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Slice threads for FFV1: up to 4, never more than the machine has.
fn slice_threads() -> ff::codec::threading::Config {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Slice,
        count: n,
        ..Default::default()
    }
}

/// The 8-bit RGB layout the FFV1 encoder takes: planar GBR (newer libavcodec) or packed BGR0.
fn rgb_format(codec: &ff::Codec) -> format::Pixel {
    let planar = codec
        .video()
        .ok()
        .and_then(|v| v.formats().map(|mut f| f.any(|p| p == format::Pixel::GBRP)))
        .unwrap_or(false);
    if planar {
        format::Pixel::GBRP
    } else {
        format::Pixel::BGRZ
    }
}

/// Writes RGB frames into a clip file. Nothing appears at the target path until
/// [`ClipWriter::finish`] succeeds; dropping the writer unfinished removes what it wrote.
pub struct ClipWriter {
    /// The open file; `None` once closed.
    octx: Option<format::context::Output>,
    enc: encoder::Video,
    /// The RGB frame handed to the encoder (reused): planar GBR where the encoder takes it,
    /// else packed BGR0 (libavcodec 59's FFV1 takes 8-bit RGB only so).
    rgb: frame::Video,
    index: usize,
    tb: Rational,
    info: ClipInfo,
    tmp: PathBuf,
    path: PathBuf,
    finished: bool,
}

impl ClipWriter {
    /// Starts a clip of `width`×`height` RGB frames at `fps` to be written to `path`.
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self, MediaError> {
        super::init()?;
        if width == 0 || height == 0 {
            return Err(bad(path, format!("a clip cannot be {width}×{height}")));
        }
        if !(fps.is_finite() && fps > 0.0) {
            return Err(bad(path, format!("a clip cannot run at {fps} fps")));
        }
        let codec = encoder::find(codec::Id::FFV1).ok_or_else(|| MediaError::Missing {
            what: "the FFV1 encoder".into(),
            hint: "install a libavcodec built with its native encoders (Debian: libavcodec59)"
                .into(),
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "clip.mkv".into());
        let tmp = path.with_file_name(format!(".{name}.{}.part", std::process::id()));
        let rate = Rational::from(fps).reduce();
        let tb = rate.invert();
        let mut octx = format::output_as(&tmp, "matroska").map_err(|e| fferr(path, e))?;
        let mut ctx = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| fferr(path, e))?;
        ctx.set_width(width);
        ctx.set_height(height);
        let pixel = rgb_format(&codec);
        ctx.set_format(pixel);
        ctx.set_time_base(tb);
        ctx.set_frame_rate(Some(rate));
        // Every frame a keyframe: FFV1 otherwise carries its coder state from frame to frame,
        // and a reader could not start in the middle.
        ctx.set_gop(1);
        ctx.set_threading(slice_threads());
        let mut flags = codec::Flags::BITEXACT;
        if octx.format().flags().contains(format::Flags::GLOBAL_HEADER) {
            flags |= codec::Flags::GLOBAL_HEADER;
        }
        ctx.set_flags(flags);
        let mut opts = Dictionary::new();
        opts.set("level", "3");
        opts.set("slicecrc", "1");
        opts.set("coder", "range_def");
        opts.set("slices", "4");
        let enc = ctx.open_as_with(codec, opts).map_err(|e| fferr(path, e))?;
        let index = {
            let mut st = octx.add_stream(codec).map_err(|e| fferr(path, e))?;
            st.set_parameters(&enc);
            st.set_time_base(tb);
            st.set_avg_frame_rate(rate);
            let mut tags = Dictionary::new();
            tags.set(FPS_TAG, &format!("{fps}"));
            st.set_metadata(tags);
            st.index()
        };
        let mut hopts = Dictionary::new();
        hopts.set("fflags", "+bitexact");
        let header = octx.write_header_with(hopts).map(|_| ());
        let writer = Self {
            octx: Some(octx),
            enc,
            rgb: frame::Video::new(pixel, width, height),
            index,
            tb,
            info: ClipInfo {
                width,
                height,
                fps,
                frames: 0,
            },
            tmp,
            path: path.to_path_buf(),
            finished: false,
        };
        // From here a failure drops the writer, which removes the temporary file.
        header.map_err(|e| fferr(path, e))?;
        Ok(writer)
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u32 {
        self.info.frames
    }

    /// Appends one frame (of the clip's size).
    pub fn push(&mut self, img: &RgbImage) -> Result<(), MediaError> {
        if (img.width, img.height) != (self.info.width, self.info.height) {
            return Err(bad(
                &self.path,
                format!(
                    "frame {} is {}×{}, the clip is {}×{}",
                    self.info.frames, img.width, img.height, self.info.width, self.info.height
                ),
            ));
        }
        self.push_rgb24(&img.data)
    }

    /// Appends one frame given as packed RGB24 rows (`width * height * 3` bytes, no padding).
    pub fn push_rgb24(&mut self, rgb: &[u8]) -> Result<(), MediaError> {
        let (w, h) = (self.info.width as usize, self.info.height as usize);
        if rgb.len() != w * h * 3 {
            return Err(bad(
                &self.path,
                format!(
                    "frame {} has {} bytes, a {w}×{h} RGB frame has {}",
                    self.info.frames,
                    rgb.len(),
                    w * h * 3
                ),
            ));
        }
        super::compose::make_writable(&mut self.rgb)?;
        if self.rgb.format() == format::Pixel::GBRP {
            // Planes 0 = G, 1 = B, 2 = R.
            for (plane, channel) in [(0usize, 1usize), (1, 2), (2, 0)] {
                let s = self.rgb.stride(plane);
                let d = self.rgb.data_mut(plane);
                for y in 0..h {
                    let src = &rgb[y * w * 3..(y + 1) * w * 3];
                    for (o, px) in d[y * s..y * s + w].iter_mut().zip(src.chunks_exact(3)) {
                        *o = px[channel];
                    }
                }
            }
        } else {
            // Packed B, G, R, 0.
            let s = self.rgb.stride(0);
            let d = self.rgb.data_mut(0);
            for y in 0..h {
                let src = &rgb[y * w * 3..(y + 1) * w * 3];
                for (o, px) in d[y * s..y * s + w * 4]
                    .chunks_exact_mut(4)
                    .zip(src.chunks_exact(3))
                {
                    o.copy_from_slice(&[px[2], px[1], px[0], 0]);
                }
            }
        }
        self.rgb.set_pts(Some(self.info.frames as i64));
        self.enc
            .send_frame(&self.rgb)
            .map_err(|e| fferr(&self.path, e))?;
        self.info.frames += 1;
        self.drain()
    }

    fn output(&mut self) -> Result<&mut format::context::Output, MediaError> {
        self.octx
            .as_mut()
            .ok_or_else(|| bad(&self.path, "the clip is already closed"))
    }

    fn drain(&mut self) -> Result<(), MediaError> {
        let mut pkt = Packet::empty();
        let (index, tb, path) = (self.index, self.tb, self.path.clone());
        while self.enc.receive_packet(&mut pkt).is_ok() {
            let octx = self.output()?;
            let st_tb = octx.stream(index).map(|s| s.time_base()).unwrap_or(tb);
            pkt.set_stream(index);
            pkt.set_duration(1);
            pkt.rescale_ts(tb, st_tb);
            pkt.write_interleaved(octx).map_err(|e| fferr(&path, e))?;
        }
        Ok(())
    }

    /// Flushes the encoder, closes the file and renames it into place. A clip needs a frame.
    pub fn finish(mut self) -> Result<ClipInfo, MediaError> {
        if self.info.frames == 0 {
            return Err(bad(&self.path, "no frames were written to the clip"));
        }
        self.enc.send_eof().map_err(|e| fferr(&self.path, e))?;
        self.drain()?;
        let path = self.path.clone();
        self.output()?
            .write_trailer()
            .map_err(|e| fferr(&path, e))?;
        // Close the file before renaming it (the output context closes it when dropped).
        drop(self.octx.take());
        std::fs::rename(&self.tmp, &self.path).map_err(|e| MediaError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        self.finished = true;
        Ok(self.info)
    }
}

impl Drop for ClipWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads a clip frame by frame. Frames are decoded on demand and the last two kept; asking for
/// an earlier frame, or one far ahead, seeks (every frame of a clip is a keyframe).
pub struct ClipReader {
    path: PathBuf,
    ictx: format::context::Input,
    dec: decoder::Video,
    stream: usize,
    tb: Rational,
    info: ClipInfo,
    /// The frame the next packet read is expected to hold.
    next: u32,
    /// The last two frames decoded, the most recent first.
    cache: [Option<(u32, RgbImage)>; 2],
    decoded: frame::Video,
    scaler: Option<software::scaling::Context>,
}

impl std::fmt::Debug for ClipReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipReader")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("next", &self.next)
            .finish()
    }
}

impl ClipReader {
    /// Opens a clip written by [`ClipWriter`]: size, rate and length from its header.
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
        let stream = st.index();
        let tb = st.time_base();
        let fps = st
            .metadata()
            .get(FPS_TAG)
            .and_then(|v| v.parse::<f64>().ok())
            .or_else(|| {
                let r = st.avg_frame_rate();
                (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r))
            })
            .filter(|f| f.is_finite() && *f > 0.0)
            .ok_or_else(|| bad(path, "the clip names no frame rate"))?;
        let mut ctx = codec::context::Context::from_parameters(st.parameters())
            .map_err(|e| fferr(path, e))?;
        ctx.set_threading(slice_threads());
        // SAFETY: a field of the context we own, set before it is opened. Check the slice CRCs
        // and fail on damage instead of concealing it.
        unsafe {
            (*ctx.as_mut_ptr()).err_recognition = ff::ffi::AV_EF_CRCCHECK | ff::ffi::AV_EF_EXPLODE;
        }
        let dec = ctx.decoder().video().map_err(|e| fferr(path, e))?;
        let (width, height) = (dec.width(), dec.height());
        // The muxer writes the duration (last frame's end) into the header when it finishes.
        let seconds = ictx.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE);
        if seconds.is_nan() || seconds <= 0.0 || width == 0 || height == 0 {
            return Err(bad(
                path,
                "not a finished clip (no duration or size in its header); run the animate stage again",
            ));
        }
        let frames = (seconds * fps).round().max(1.0) as u32;
        Ok(Self {
            path: path.to_path_buf(),
            ictx,
            dec,
            stream,
            tb,
            info: ClipInfo {
                width,
                height,
                fps,
                frames,
            },
            next: 0,
            cache: [None, None],
            decoded: frame::Video::empty(),
            scaler: None,
        })
    }

    pub fn info(&self) -> ClipInfo {
        self.info
    }

    pub fn frames(&self) -> u32 {
        self.info.frames
    }

    pub fn fps(&self) -> f64 {
        self.info.fps
    }

    pub fn width(&self) -> u32 {
        self.info.width
    }

    pub fn height(&self) -> u32 {
        self.info.height
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The frame a timestamp (in the stream's time base) shows.
    fn index_of(&self, pts: i64) -> i64 {
        let secs = pts as f64 * f64::from(self.tb);
        (secs * self.info.fps).round() as i64
    }

    fn cached(&self, i: u32) -> Option<usize> {
        self.cache
            .iter()
            .position(|c| c.as_ref().is_some_and(|(k, _)| *k == i))
    }

    /// Frame `i` (0-based), decoding what it must.
    pub fn frame(&mut self, i: u32) -> Result<&RgbImage, MediaError> {
        if i >= self.info.frames {
            return Err(bad(
                &self.path,
                format!("no frame {i}: the clip has {} frames", self.info.frames),
            ));
        }
        if self.cached(i).is_none() {
            // Skipping packets is cheap (they are not decoded); farther than two seconds, seek.
            let ahead = (self.info.fps * 2.0).ceil() as u32;
            if i < self.next || i > self.next.saturating_add(ahead) {
                self.seek(i)?;
            }
            let img = self.decode_until(i)?;
            self.cache.swap(0, 1);
            self.cache[0] = Some((i, img));
        }
        let slot = self.cached(i).unwrap_or(0);
        match &self.cache[slot] {
            Some((_, img)) => Ok(img),
            None => Err(MediaError::Internal(format!(
                "{}: frame {i} vanished from the cache",
                self.path.display()
            ))),
        }
    }

    /// Moves the demuxer to a packet at or before frame `i`.
    fn seek(&mut self, i: u32) -> Result<(), MediaError> {
        let us = (i as f64 / self.info.fps * f64::from(ff::ffi::AV_TIME_BASE)).floor() as i64;
        // A little before the frame's time, so rounding in the container's clock cannot land
        // after it; the packets before it are skipped by their timestamps.
        let target = (us - 1000).max(0);
        if i == 0 || self.ictx.seek(target, ..target).is_err() {
            self.ictx.seek(0, ..0).map_err(|e| fferr(&self.path, e))?;
        }
        self.dec.flush();
        self.next = 0;
        Ok(())
    }

    fn truncated(&self, i: u32, why: &str) -> MediaError {
        bad(
            &self.path,
            format!(
                "frame {i} of {} cannot be read ({why}): the clip is truncated or damaged; \
                 run the animate stage again",
                self.info.frames
            ),
        )
    }

    /// Reads packets until frame `i` is decoded.
    fn decode_until(&mut self, i: u32) -> Result<RgbImage, MediaError> {
        let mut pkt = Packet::empty();
        let mut rewound = false;
        loop {
            match pkt.read(&mut self.ictx) {
                Ok(()) => {}
                Err(ff::Error::Eof) => {
                    self.dec.send_eof().ok();
                    if let Some(img) = self.receive(i)? {
                        return Ok(img);
                    }
                    return Err(self.truncated(i, "the file ends before it"));
                }
                Err(e) => return Err(self.truncated(i, &e.to_string())),
            }
            if pkt.stream() != self.stream {
                continue;
            }
            let k = pkt
                .pts()
                .map(|p| self.index_of(p))
                .unwrap_or(self.next as i64);
            if k > i as i64 {
                // A seek landed past the frame: start again from the top, once.
                if rewound {
                    return Err(self.truncated(i, "it is missing from the file"));
                }
                rewound = true;
                self.ictx.seek(0, ..0).map_err(|e| fferr(&self.path, e))?;
                self.dec.flush();
                continue;
            }
            self.next = (k + 1).max(0) as u32;
            if pkt.is_corrupt() {
                return Err(self.truncated(k as u32, "a damaged packet"));
            }
            if k < i as i64 && pkt.is_key() {
                continue; // not needed, and nothing after it depends on it
            }
            self.dec
                .send_packet(&pkt)
                .map_err(|e| self.truncated(k.max(0) as u32, &e.to_string()))?;
            if let Some(img) = self.receive(i)? {
                return Ok(img);
            }
        }
    }

    /// Takes decoded frames, returning frame `i` if it came out.
    fn receive(&mut self, i: u32) -> Result<Option<RgbImage>, MediaError> {
        loop {
            match self.dec.receive_frame(&mut self.decoded) {
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(None),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    return Ok(None)
                }
                Err(e) => return Err(self.truncated(i, &e.to_string())),
            }
            let k = self
                .decoded
                .pts()
                .map(|p| self.index_of(p))
                .unwrap_or(i as i64);
            if k == i as i64 {
                return self.decoded_rgb().map(Some);
            }
        }
    }

    /// The decoded frame as packed RGB: planar GBR and packed BGR0 are copied directly (exact);
    /// anything else goes through swscale.
    fn decoded_rgb(&mut self) -> Result<RgbImage, MediaError> {
        let f = &self.decoded;
        let (w, h) = (f.width() as usize, f.height() as usize);
        if f.format() == format::Pixel::BGRZ || f.format() == format::Pixel::BGRA {
            let mut img = RgbImage::new(w as u32, h as u32);
            let s = f.stride(0);
            let d = f.data(0);
            for y in 0..h {
                let row = &mut img.data[y * w * 3..(y + 1) * w * 3];
                for (px, q) in row
                    .chunks_exact_mut(3)
                    .zip(d[y * s..y * s + w * 4].chunks_exact(4))
                {
                    px.copy_from_slice(&[q[2], q[1], q[0]]);
                }
            }
            return Ok(img);
        }
        if f.format() == format::Pixel::GBRP {
            let mut img = RgbImage::new(w as u32, h as u32);
            let (sg, sb, sr) = (f.stride(0), f.stride(1), f.stride(2));
            let (g, b, r) = (f.data(0), f.data(1), f.data(2));
            for y in 0..h {
                let row = &mut img.data[y * w * 3..(y + 1) * w * 3];
                let (gr, br, rr) = (
                    &g[y * sg..y * sg + w],
                    &b[y * sb..y * sb + w],
                    &r[y * sr..y * sr + w],
                );
                for (x, px) in row.chunks_exact_mut(3).enumerate() {
                    px[0] = rr[x];
                    px[1] = gr[x];
                    px[2] = br[x];
                }
            }
            return Ok(img);
        }
        if self.scaler.is_none() {
            self.scaler = Some(
                software::scaling::Context::get(
                    f.format(),
                    w as u32,
                    h as u32,
                    format::Pixel::RGB24,
                    w as u32,
                    h as u32,
                    software::scaling::Flags::POINT | software::scaling::Flags::ACCURATE_RND,
                )
                .map_err(|e| fferr(&self.path, e))?,
            );
        }
        let mut rgb = frame::Video::empty();
        if let Some(s) = self.scaler.as_mut() {
            s.run(&self.decoded, &mut rgb)
                .map_err(|e| fferr(&self.path, e))?;
        }
        Ok(super::decode::frame_to_rgb(&rgb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame that differs everywhere from its neighbours: moving gradients and noise.
    fn synthetic(w: u32, h: u32, n: u32) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        let mut s = 0x9e37_79b9u32.wrapping_mul(n + 1);
        for y in 0..h {
            for x in 0..w {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let r = ((x * 3 + n * 7) % 256) as u8;
                let g = ((y * 5 + n * 11) % 256) as u8;
                let b = (s >> 24) as u8;
                img.put(x as i64, y as i64, [r, g, b]);
            }
        }
        img
    }

    fn write(path: &Path, w: u32, h: u32, fps: f64, n: u32) -> Vec<RgbImage> {
        let mut wr = ClipWriter::create(path, w, h, fps).unwrap();
        let frames: Vec<RgbImage> = (0..n).map(|i| synthetic(w, h, i)).collect();
        for f in &frames {
            wr.push(f).unwrap();
        }
        let info = wr.finish().unwrap();
        assert_eq!(info.frames, n);
        frames
    }

    #[test]
    fn round_trip_is_bit_exact_and_keeps_count_and_rate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scene-000.mkv");
        // An odd size: nothing may assume even dimensions.
        let frames = write(&path, 37, 21, 8.0, 12);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["scene-000.mkv".to_string()],
            "no temporary file left"
        );
        let mut r = ClipReader::open(&path).unwrap();
        assert_eq!(
            r.info(),
            ClipInfo {
                width: 37,
                height: 21,
                fps: 8.0,
                frames: 12
            }
        );
        for (i, f) in frames.iter().enumerate() {
            assert!(r.frame(i as u32).unwrap() == f, "frame {i} differs");
        }
        assert!(r.frame(12).is_err(), "no frame past the end");
    }

    #[test]
    fn fractional_rates_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mkv");
        let fps = 24000.0 / 1001.0;
        write(&path, 16, 8, fps, 30);
        let r = ClipReader::open(&path).unwrap();
        assert_eq!(r.fps(), fps);
        assert_eq!(r.frames(), 30);
    }

    #[test]
    fn frames_can_be_read_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mkv");
        // 24 fps: seeks (more than two seconds ahead, and back) as well as skips.
        let frames = write(&path, 32, 16, 24.0, 120);
        let mut r = ClipReader::open(&path).unwrap();
        for i in [100u32, 3, 4, 4, 3, 60, 119, 0, 55, 56, 58, 1, 118] {
            assert!(
                r.frame(i).unwrap() == &frames[i as usize],
                "frame {i} differs"
            );
        }
    }

    #[test]
    fn an_unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mkv");
        {
            let mut w = ClipWriter::create(&path, 16, 8, 24.0).unwrap();
            w.push(&synthetic(16, 8, 0)).unwrap();
            assert!(w.push(&synthetic(8, 8, 1)).is_err(), "wrong size refused");
            assert!(w.push_rgb24(&[0u8; 5]).is_err(), "short buffer refused");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let empty = ClipWriter::create(&path, 16, 8, 24.0).unwrap();
        assert!(empty.finish().is_err(), "a clip needs a frame");
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_truncated_clip_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scene-003.mkv");
        write(&path, 64, 48, 8.0, 16);
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("scene-003-cut.mkv");
        std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
        let err = match ClipReader::open(&cut) {
            Err(e) => e.to_string(),
            Ok(mut r) => {
                assert_eq!(r.frames(), 16, "the header still says 16 frames");
                (0..16)
                    .find_map(|i| r.frame(i).err())
                    .expect("a cut clip must not read as whole")
                    .to_string()
            }
        };
        assert!(err.contains("scene-003-cut.mkv"), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }
}
