//! The analysis of one recording, in two passes over the file:
//!
//! 1. the whole file cheaply — the audio as a level envelope, and a few frames at every keyframe
//!    (motion and brightness sampled once per GOP) — or, for short recordings, every frame;
//! 2. every frame of the candidate windows the first pass points at (loud moments, motion), where
//!    shots are cut exactly and motion, flashes and black frames are measured frame by frame.
//!
//! Work is saved in chunks to a directory keyed by the recording's content (see
//! [`content_key`]): the audio pass, each span of the overview pass and each decoded window is
//! one file written atomically, so an analysis killed mid-way continues from the last finished
//! chunk, and a recording analysed once is never analysed again.

use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cuts::{downscaled_size, resize, CutDetector, Detector};
use crate::media::scan::{self, RecordingInfo, SmallFrame};
use crate::media::MediaError;
use crate::pipeline::checkpoint;

/// Bumped when what the analysis writes changes: old caches are not read.
pub const ANALYSIS_VERSION: u32 = 3;

/// Seconds per audio hop.
pub const HOP: f64 = 0.05;

/// How an analysis runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalysisParams {
    /// Recordings up to this long are decoded whole (every frame); longer ones in two passes.
    pub full_decode_below: f64,
    /// Seconds of recording per saved chunk of the overview pass.
    pub chunk_seconds: f64,
    /// Packets decoded after each keyframe in the overview pass.
    pub burst: usize,
    /// The shot detector.
    pub detector: DetectorChoice,
    /// A region of interest (x, y, w, h as fractions of the frame): motion is measured there.
    pub roi: Option<[f64; 4]>,
}

impl Default for AnalysisParams {
    fn default() -> Self {
        Self {
            full_decode_below: 600.0,
            chunk_seconds: 120.0,
            burst: 3,
            detector: DetectorChoice::Adaptive,
            roi: None,
        }
    }
}

/// Which cut detector runs over decoded frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DetectorChoice {
    /// PySceneDetect's ContentDetector: HSV difference ≥ 27.
    Content,
    /// PySceneDetect's AdaptiveDetector: a score 3× its neighbours' (its CLI default).
    Adaptive,
}

impl DetectorChoice {
    fn detector(self) -> Detector {
        match self {
            DetectorChoice::Content => Detector::Content(Default::default()),
            DetectorChoice::Adaptive => Detector::Adaptive(Default::default()),
        }
    }
}

/// The audio envelope: one entry per [`HOP`] from 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioLevels {
    pub hop: f64,
    /// Largest |sample| per hop.
    pub peak: Vec<f32>,
    /// RMS per hop.
    pub rms: Vec<f32>,
}

/// What is measured on one frame (against the frame before it, where there is one).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameSample {
    pub index: u64,
    pub t: f64,
    /// Share of pixels that changed since the previous frame (blurred grey, |Δ| > 12/255);
    /// `None` for the first frame after a gap.
    pub motion: Option<f32>,
    /// Mean luma 0..255.
    pub luma: f32,
    /// Share of pixels darker than 32/255.
    pub dark: f32,
}

/// Every frame of `[start, end)` (or of a whole span of the overview pass).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodedSpan {
    pub start: f64,
    pub end: f64,
    pub frames: Vec<FrameSample>,
    /// Cuts found in the span (first frame of each new shot).
    pub cuts: Vec<u64>,
    /// Flashes the detector took for cuts (a bright frame or three, then the same picture as
    /// before): not cuts.
    #[serde(default)]
    pub flashes: Vec<u64>,
}

/// The whole analysis of one recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub version: u32,
    pub path: PathBuf,
    pub key: String,
    pub info: RecordingInfo,
    pub params: AnalysisParams,
    pub audio: Option<AudioLevels>,
    /// Whether every frame was decoded (else: keyframe samples plus decoded windows).
    pub full: bool,
    /// Keyframe samples of the overview pass (empty when `full`).
    pub keyframes: Vec<FrameSample>,
    /// Decoded spans, in time order, not overlapping.
    pub spans: Vec<DecodedSpan>,
    /// Seconds of video decoded frame by frame.
    pub decoded_seconds: f64,
}

impl Analysis {
    /// Every cut found, in order.
    pub fn cuts(&self) -> Vec<u64> {
        let mut c: Vec<u64> = self.spans.iter().flat_map(|s| s.cuts.clone()).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// Flash frames: a single frame (or two) much brighter than the frames on both sides.
    pub fn flashes(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.spans.iter().flat_map(|s| s.flashes.clone()).collect();
        for s in &self.spans {
            let f = &s.frames;
            for i in 1..f.len() {
                for w in 1..=2usize {
                    let Some(after) = f.get(i + w) else { continue };
                    let before = f[i - 1].luma;
                    let peak = f[i..i + w].iter().map(|x| x.luma).fold(f32::MAX, f32::min);
                    if peak - before > 60.0 && peak - after.luma > 60.0 {
                        out.push(f[i].index);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Black stretches `(start, end)` in seconds: frames that are ≥ 98 % dark (blackdetect's rule).
    pub fn black(&self) -> Vec<(f64, f64)> {
        let frame = 1.0 / self.info.fps.max(1.0);
        let mut out: Vec<(f64, f64)> = Vec::new();
        for s in &self.spans {
            for f in &s.frames {
                if f.dark >= 0.98 {
                    match out.last_mut() {
                        Some(last) if (f.t - last.1).abs() < frame * 1.5 => last.1 = f.t + frame,
                        _ => out.push((f.t, f.t + frame)),
                    }
                }
            }
        }
        out
    }
}

/// Errors of an analysis.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cancelled")]
    Cancelled,
}

impl AnalysisError {
    /// Whether the input is at fault (exit 2) rather than the machine.
    pub fn is_input(&self) -> bool {
        match self {
            AnalysisError::Input { .. } => true,
            AnalysisError::Media(m) => !matches!(m, MediaError::Missing { .. }),
            _ => false,
        }
    }
}

/// The content key of a recording: SHA-256 over its size and 33 blocks of 64 KiB spread through
/// the file (first and last included) — cheap for files of hours, and a changed recording (cut,
/// re-encoded, appended) gets another key.
pub fn content_key(path: &Path) -> Result<String, AnalysisError> {
    use std::io::{Seek, SeekFrom};
    let io = |e| AnalysisError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut h = Sha256::new();
    h.update(len.to_le_bytes());
    const BLOCK: u64 = 64 * 1024;
    const BLOCKS: u64 = 32;
    let mut buf = vec![0u8; BLOCK as usize];
    for i in 0..=BLOCKS {
        let at = (len.saturating_sub(BLOCK)) * i / BLOCKS;
        f.seek(SeekFrom::Start(at)).map_err(io)?;
        let mut got = 0usize;
        loop {
            let n = f.read(&mut buf[got..]).map_err(io)?;
            if n == 0 {
                break;
            }
            got += n;
            if got == buf.len() {
                break;
            }
        }
        h.update(&buf[..got]);
    }
    Ok(format!("{:x}", h.finalize())[..24].to_string())
}

/// Checks that `path` is a recording highlights can be made from: [`check_video`], and a sound
/// track (highlights are found from the game's sound as much as its picture).
pub fn check_recording(path: &Path) -> Result<RecordingInfo, AnalysisError> {
    let info = check_video(path)?;
    if info.audio.is_none() {
        return Err(AnalysisError::Input {
            path: path.to_path_buf(),
            message: "has no audio stream: highlights are found from the game's sound as much \
                      as its picture; record with audio (or mux the sound in) and try again"
                .into(),
        });
    }
    Ok(info)
}

/// Checks that `path` is a video analysis can read: a non-empty file libav opens, with a
/// video stream whose codec decodes here and at least one frame.
pub fn check_video(path: &Path) -> Result<RecordingInfo, AnalysisError> {
    let input = |message: String| AnalysisError::Input {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| input(format!("cannot be read ({e})")))?;
    if !meta.is_file() {
        return Err(input("is not a file".into()));
    }
    if meta.len() == 0 {
        return Err(input(
            "is empty (0 bytes): the recording was not written; record again or pick another file"
                .into(),
        ));
    }
    let mut rec = scan::open(path).map_err(|e| match e {
        MediaError::NoStream { .. } => input("has no video stream: not a recording".into()),
        MediaError::Format { message, .. } => input(message),
        MediaError::Ffmpeg { source, .. } => {
            input(format!("not a video libav can read ({source})"))
        }
        other => AnalysisError::Media(other),
    })?;
    let info = rec.info().clone();
    // Decode the first frame: a codec libav names but cannot decode fails here, not later.
    let mut any = false;
    rec.scan_window(0.0, f64::INFINITY, |_| {
        any = true;
        ControlFlow::Break(())
    })
    .map_err(|e| input(format!("its video cannot be decoded: {e}")))?;
    if !any {
        return Err(input(
            "holds no decodable video frame (its codec is not supported here, or it is cut short)"
                .into(),
        ));
    }
    Ok(info)
}

/// Measures frames in order, keeping the previous blurred grey frame.
#[derive(Clone, Serialize, Deserialize)]
struct Meter {
    roi: Option<[f64; 4]>,
    prev: Option<(u64, Vec<u8>)>,
    #[serde(skip)]
    grey: Vec<u8>,
}

impl Meter {
    fn new(roi: Option<[f64; 4]>) -> Self {
        Self {
            roi,
            prev: None,
            grey: Vec::new(),
        }
    }

    /// Forget the previous frame (a gap follows).
    fn gap(&mut self) {
        self.prev = None;
    }

    fn measure(&mut self, f: &SmallFrame) -> FrameSample {
        let (w, h) = (f.width as usize, f.height as usize);
        // The region measured for motion.
        let (x0, y0, x1, y1) = match self.roi {
            Some([x, y, rw, rh]) => {
                let x0 = ((x * w as f64) as usize).min(w.saturating_sub(1));
                let y0 = ((y * h as f64) as usize).min(h.saturating_sub(1));
                let x1 = (((x + rw) * w as f64).ceil() as usize).clamp(x0 + 1, w);
                let y1 = (((y + rh) * h as f64).ceil() as usize).clamp(y0 + 1, h);
                (x0, y0, x1, y1)
            }
            None => (0, 0, w, h),
        };
        let (rw, rh) = (x1 - x0, y1 - y0);
        // Grey (BT.601), whole-frame mean and dark share.
        let mut luma_sum = 0u64;
        let mut dark = 0usize;
        self.grey.clear();
        self.grey.resize(rw * rh, 0);
        for y in 0..h {
            for x in 0..w {
                let p = (y * w + x) * 3;
                let (r, g, b) = (f.rgb[p] as u32, f.rgb[p + 1] as u32, f.rgb[p + 2] as u32);
                let l = ((77 * r + 150 * g + 29 * b) >> 8) as u8;
                luma_sum += l as u64;
                dark += (l < 32) as usize;
                if x >= x0 && x < x1 && y >= y0 && y < y1 {
                    self.grey[(y - y0) * rw + (x - x0)] = l;
                }
            }
        }
        let blurred = box_blur3(&self.grey, rw, rh);
        let motion = match &self.prev {
            Some((pi, prev)) if *pi + 8 >= f.index && prev.len() == blurred.len() => {
                let changed = prev
                    .iter()
                    .zip(&blurred)
                    .filter(|(a, b)| a.abs_diff(**b) > 12)
                    .count();
                Some(changed as f32 / blurred.len().max(1) as f32)
            }
            _ => None,
        };
        let n = (w * h).max(1);
        self.prev = Some((f.index, blurred));
        FrameSample {
            index: f.index,
            t: f.t,
            motion,
            luma: luma_sum as f32 / n as f32,
            dark: dark as f32 / n as f32,
        }
    }
}

/// Mean luma on a 16×9 grid: what the flash check compares.
fn luma_grid(f: &SmallFrame) -> Vec<u8> {
    let (w, h) = (f.width as usize, f.height as usize);
    let (gw, gh) = (16usize, 9usize);
    let mut sum = vec![0u32; gw * gh];
    let mut n = vec![0u32; gw * gh];
    for y in 0..h {
        let gy = y * gh / h.max(1);
        for x in 0..w {
            let p = (y * w + x) * 3;
            let l =
                (77 * f.rgb[p] as u32 + 150 * f.rgb[p + 1] as u32 + 29 * f.rgb[p + 2] as u32) >> 8;
            let g = gy * gw + x * gw / w.max(1);
            sum[g] += l;
            n[g] += 1;
        }
    }
    sum.iter()
        .zip(&n)
        .map(|(s, n)| (s / (*n).max(1)) as u8)
        .collect()
}

fn grid_dist(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len().max(1) as f64
}

/// Whether the cut at `c` is a flash: frame `c` is much brighter than `c − 1`, and within three
/// frames the picture is back to what it was before.
fn is_flash(grids: &std::collections::BTreeMap<u64, Vec<u8>>, c: u64) -> bool {
    let (Some(before), Some(at)) = (c.checked_sub(1).and_then(|b| grids.get(&b)), grids.get(&c))
    else {
        return false;
    };
    let mean = |g: &[u8]| g.iter().map(|&v| v as f64).sum::<f64>() / g.len().max(1) as f64;
    if mean(at) < mean(before) + 25.0 {
        return false;
    }
    let jump = grid_dist(before, at);
    (1..=3).any(|k| {
        grids.get(&(c + k)).is_some_and(|after| {
            let back = grid_dist(before, after);
            back < 0.3 * jump && back < 10.0
        })
    })
}

/// A 3×3 box blur (edges clamped).
fn box_blur3(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut tmp = vec![0u16; w * h];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for x in 0..w {
            let a = row[x.saturating_sub(1)] as u16;
            let b = row[x] as u16;
            let c = row[(x + 1).min(w - 1)] as u16;
            tmp[y * w + x] = a + b + c;
        }
    }
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        let up = y.saturating_sub(1) * w;
        let mid = y * w;
        let down = (y + 1).min(h - 1) * w;
        for x in 0..w {
            out[mid + x] = ((tmp[up + x] + tmp[mid + x] + tmp[down + x] + 4) / 9) as u8;
        }
    }
    out
}

/// Where analyses of recordings are kept: `<root>/<content key>-<params hash>/`.
pub fn cache_dir(root: &Path, key: &str, params: &AnalysisParams) -> PathBuf {
    let p = serde_json::to_string(params).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(ANALYSIS_VERSION.to_le_bytes());
    h.update(p.as_bytes());
    let ph = format!("{:x}", h.finalize());
    root.join(format!("{key}-{}", &ph[..10]))
}

fn save<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), AnalysisError> {
    let bytes = serde_json::to_vec(value).map_err(|e| AnalysisError::Io {
        path: dir.join(name),
        source: std::io::Error::other(e),
    })?;
    checkpoint::write_atomic(dir, name, &bytes).map_err(|e| AnalysisError::Io {
        path: dir.join(name),
        source: e,
    })
}

fn load<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Option<T> {
    checkpoint::read(dir, name).and_then(|b| serde_json::from_slice(&b).ok())
}

/// What the caller hears while an analysis runs.
pub struct Progress<'a> {
    /// Fraction done 0..1 and a label.
    pub report: &'a (dyn Fn(f32, &str) + Sync),
    /// Checked between frames and chunks.
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
    /// A finished chunk was found and reused (label).
    pub resumed: &'a (dyn Fn(&str) + Sync),
}

impl Progress<'_> {
    /// No reports, never cancelled.
    pub fn silent() -> Progress<'static> {
        Progress {
            report: &|_, _| {},
            cancelled: &|| false,
            resumed: &|_| {},
        }
    }
}

/// The audio pass (resumed from `audio.json`).
fn audio_pass(
    path: &Path,
    dir: &Path,
    info: &RecordingInfo,
    progress: &Progress,
) -> Result<Option<AudioLevels>, AnalysisError> {
    if info.audio.is_none() {
        return Ok(None);
    }
    if let Some(a) = load::<AudioLevels>(dir, "audio.json") {
        (progress.resumed)("audio");
        return Ok(Some(a));
    }
    let mut levels = AudioLevels {
        hop: HOP,
        ..Default::default()
    };
    let mut cancelled = false;
    let dur = info.duration.max(1e-3);
    scan::audio_levels(path, 0.0, HOP, |h| {
        let i = (h.t / HOP).round() as usize;
        if levels.peak.len() < i {
            levels.peak.resize(i, 0.0);
            levels.rms.resize(i, 0.0);
        }
        levels.peak.push(h.peak);
        levels.rms.push(h.rms);
        if i.is_multiple_of(2000) {
            if (progress.cancelled)() {
                cancelled = true;
                return ControlFlow::Break(());
            }
            (progress.report)((h.t / dur) as f32 * 0.1, "audio");
        }
        ControlFlow::Continue(())
    })?;
    if cancelled {
        return Err(AnalysisError::Cancelled);
    }
    save(dir, "audio.json", &levels)?;
    Ok(Some(levels))
}

/// What one chunk of a whole decode hands the next: the detector and the meter mid-stream, so
/// chunked analysis finds exactly what one pass over the file would.
#[derive(Clone, Serialize, Deserialize)]
struct Carry {
    detector: CutDetector,
    meter: Meter,
}

#[derive(Serialize, Deserialize)]
struct SpanFile {
    span: DecodedSpan,
    carry: Carry,
}

/// Decodes every frame of `[start, end)`: cuts, motion, brightness (resumed from its file).
/// `carry` continues a whole decode from the chunk before; without it the span stands alone
/// (a candidate window) and is finished at its end. Returns what the next chunk continues from.
fn decode_span(
    path: &Path,
    dir: &Path,
    (start, end): (f64, f64),
    carry: Option<Carry>,
    last: bool,
    params: &AnalysisParams,
    progress: &Progress,
) -> Result<(DecodedSpan, Carry), AnalysisError> {
    let name = format!(
        "span-{:010}-{}.json",
        (start * 1000.0) as u64,
        if end.is_finite() {
            format!("{:010}", (end * 1000.0) as u64)
        } else {
            "end".to_string()
        }
    );
    if let Some(s) = load::<SpanFile>(dir, &name) {
        (progress.resumed)(&name);
        return Ok((s.span, s.carry));
    }
    let chained = carry.is_some();
    let Carry {
        detector: mut det,
        mut meter,
    } = carry.unwrap_or_else(|| Carry {
        detector: CutDetector::new(params.detector.detector()),
        meter: Meter::new(params.roi),
    });
    let mut rec = scan::open(path)?;
    // A whole decode (short recordings) sees frames exactly as PySceneDetect does: RGB at full
    // size, then OpenCV's INTER_LINEAR downscale; candidate windows of long recordings take
    // swscale's area downscale straight from the decoder (several times cheaper).
    let exact = chained;
    let (ew, eh) = downscaled_size(rec.info().width, rec.info().height);
    if exact {
        rec.full_size_frames();
    }
    let mut span = DecodedSpan {
        start,
        end,
        ..Default::default()
    };
    let mut cancelled = false;
    let mut grids: std::collections::BTreeMap<u64, Vec<u8>> = Default::default();
    rec.scan_window(start, end, |f| {
        if f.index % 64 == 0 && (progress.cancelled)() {
            cancelled = true;
            return ControlFlow::Break(());
        }
        let resized;
        let f = if exact && (f.width, f.height) != (ew, eh) {
            match resize(&f.rgb, f.width, f.height, ew, eh) {
                Some(rgb) => {
                    resized = SmallFrame {
                        index: f.index,
                        t: f.t,
                        width: ew,
                        height: eh,
                        rgb,
                    };
                    &resized
                }
                None => f,
            }
        } else {
            f
        };
        span.frames.push(meter.measure(f));
        grids.insert(f.index, luma_grid(f));
        span.cuts
            .extend(det.push(f.index, &f.rgb, f.width, f.height));
        ControlFlow::Continue(())
    })?;
    if cancelled {
        return Err(AnalysisError::Cancelled);
    }
    if last || !chained {
        span.cuts.extend(det.finish());
    }
    span.cuts.sort_unstable();
    span.cuts.dedup();
    // Flashes are not cuts: the picture after the bright frames is the one before them.
    let flashes: Vec<u64> = span
        .cuts
        .iter()
        .copied()
        .filter(|&c| is_flash(&grids, c))
        .collect();
    span.cuts.retain(|c| !flashes.contains(c));
    span.flashes = flashes;
    if !chained {
        // A lone window's first frame is no cut: there is no frame before it here.
        if let Some(first) = span.frames.first().map(|f| f.index) {
            span.cuts.retain(|&c| c > first);
        }
    }
    let carry = Carry {
        detector: det,
        meter,
    };
    save(
        dir,
        &name,
        &SpanFile {
            span: span.clone(),
            carry: carry.clone(),
        },
    )?;
    Ok((span, carry))
}

/// The overview pass of a long recording: keyframe samples, in chunks.
fn keyframe_pass(
    path: &Path,
    dir: &Path,
    info: &RecordingInfo,
    params: &AnalysisParams,
    progress: &Progress,
) -> Result<Vec<FrameSample>, AnalysisError> {
    let chunks = (info.duration / params.chunk_seconds).ceil().max(1.0) as usize;
    let mut all = Vec::new();
    for c in 0..chunks {
        let name = format!("keys-{c:05}.json");
        let from = c as f64 * params.chunk_seconds;
        let to = from + params.chunk_seconds;
        if let Some(s) = load::<Vec<FrameSample>>(dir, &name) {
            (progress.resumed)(&name);
            all.extend(s);
            continue;
        }
        if (progress.cancelled)() {
            return Err(AnalysisError::Cancelled);
        }
        let mut rec = scan::open(path)?;
        let mut meter = Meter::new(params.roi);
        let mut samples = Vec::new();
        let mut last: Option<u64> = None;
        rec.scan_keyframes(from, params.burst, |f| {
            if f.t >= to {
                return ControlFlow::Break(());
            }
            // Only consecutive frames measure motion.
            if last.is_some_and(|l| f.index != l + 1) {
                meter.gap();
            }
            last = Some(f.index);
            samples.push(meter.measure(f));
            ControlFlow::Continue(())
        })?;
        save(dir, &name, &samples)?;
        (progress.report)(
            0.1 + 0.5 * (c + 1) as f32 / chunks as f32,
            &format!("overview {}/{}", c + 1, chunks),
        );
        all.extend(samples);
    }
    Ok(all)
}

/// Chooses the candidate windows of a long recording from its overview (info, audio levels,
/// keyframe samples): `(start, end)` seconds.
pub type WindowsFn =
    dyn Fn(&RecordingInfo, Option<&AudioLevels>, &[FrameSample]) -> Vec<(f64, f64)>;

/// Analyses one recording with its cache under `cache_root`: audio, then every frame (short
/// recordings) or keyframes plus every frame of `windows(audio, keyframes)` (long ones).
pub fn analyse(
    path: &Path,
    cache_root: &Path,
    params: &AnalysisParams,
    windows: &WindowsFn,
    progress: &Progress,
) -> Result<Analysis, AnalysisError> {
    let info = check_video(path)?;
    let key = content_key(path)?;
    let dir = cache_dir(cache_root, &key, params);
    let audio = audio_pass(path, &dir, &info, progress)?;
    let full = info.duration <= params.full_decode_below;
    let mut keyframes = Vec::new();
    let spans_wanted: Vec<(f64, f64)> = if full {
        let n = (info.duration / params.chunk_seconds).ceil().max(1.0) as usize;
        (0..n)
            .map(|c| {
                let a = c as f64 * params.chunk_seconds;
                let b = if c + 1 == n {
                    f64::INFINITY
                } else {
                    a + params.chunk_seconds
                };
                (a, b)
            })
            .collect()
    } else {
        keyframes = keyframe_pass(path, &dir, &info, params, progress)?;
        merge_windows(windows(&info, audio.as_ref(), &keyframes))
    };
    let mut spans = Vec::new();
    let total: f64 = spans_wanted
        .iter()
        .map(|(a, b)| b.min(info.duration) - a)
        .sum::<f64>()
        .max(1e-3);
    let mut done = 0.0;
    let mut carry: Option<Carry> = None;
    let n = spans_wanted.len();
    for (i, w) in spans_wanted.iter().enumerate() {
        if (progress.cancelled)() {
            return Err(AnalysisError::Cancelled);
        }
        // A whole decode runs as one chain; windows stand alone.
        let incoming = if full {
            Some(carry.take().unwrap_or_else(|| Carry {
                detector: CutDetector::new(params.detector.detector()),
                meter: Meter::new(params.roi),
            }))
        } else {
            None
        };
        let (span, out) = decode_span(path, &dir, *w, incoming, i + 1 == n, params, progress)?;
        carry = Some(out);
        done += w.1.min(info.duration) - w.0;
        let (base, share) = if full { (0.1, 0.9) } else { (0.6, 0.4) };
        (progress.report)(base + share * (done / total) as f32, "frames");
        spans.push(span);
    }
    let decoded_seconds = spans
        .iter()
        .map(|s| s.end.min(info.duration) - s.start)
        .sum();
    let analysis = Analysis {
        version: ANALYSIS_VERSION,
        path: path.to_path_buf(),
        key,
        info,
        params: params.clone(),
        audio,
        full,
        keyframes,
        spans,
        decoded_seconds,
    };
    (progress.report)(1.0, "done");
    Ok(analysis)
}

/// Sorts windows and merges those that overlap or touch.
pub fn merge_windows(mut w: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    w.retain(|(a, b)| b > a);
    w.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (a, b) in w {
        match out.last_mut() {
            Some(last) if a <= last.1 + 0.5 => last.1 = last.1.max(b),
            _ => out.push((a.max(0.0), b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_merge_when_they_touch() {
        let w = merge_windows(vec![(10.0, 20.0), (0.0, 5.0), (19.0, 30.0), (5.2, 6.0)]);
        assert_eq!(w, vec![(0.0, 6.0), (10.0, 30.0)]);
    }

    #[test]
    fn blur_keeps_flat_images_flat() {
        let img = vec![100u8; 12];
        assert_eq!(box_blur3(&img, 4, 3), img);
    }
}
