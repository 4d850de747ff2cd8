//! Burning ASS subtitles into frames with libavfilter's `ass` filter (libass: HarfBuzz shaping,
//! FriBidi for right-to-left scripts, fontconfig fallback for every script we render).

use std::path::Path;
use std::sync::mpsc;

use ff::{filter, format, frame};
use ffmpeg_next as ff;

use super::MediaError;

/// A filter graph `buffer → ass → buffersink` for frames of one size and pixel format.
pub struct AssBurner {
    graph: filter::Graph,
    what: String,
}

/// Quotes a value for libavfilter's `key=value:key=value` option strings.
fn quote_option(value: &str) -> String {
    // Inside single quotes nothing is special; a quote itself ends the quoted run.
    format!("'{}'", value.replace('\'', "'\\''"))
}

fn fferr(what: &str, e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: what.to_string(),
        source: e,
    }
}

impl AssBurner {
    /// `time_base` is the frames' pts unit (1/fps for video frames numbered from 0). RGBA
    /// frames are drawn with alpha, so drawing on transparent black yields a premultiplied layer.
    pub fn new(
        width: u32,
        height: u32,
        pixel: format::Pixel,
        time_base: (i32, i32),
        ass_path: &Path,
    ) -> Result<Self, MediaError> {
        super::init()?;
        let what = format!("captions {}", ass_path.display());
        let mut graph = filter::Graph::new();
        let pix: ff::ffi::AVPixelFormat = pixel.into();
        let args = format!(
            "video_size={width}x{height}:pix_fmt={}:time_base={}/{}:pixel_aspect=1/1",
            pix as i32, time_base.0, time_base.1
        );
        let find = |name: &str| {
            filter::find(name).ok_or_else(|| MediaError::Missing {
                what: format!("the libavfilter `{name}` filter"),
                hint: "install a libavfilter built with libass (Debian: libavfilter8)".into(),
            })
        };
        let mut src = graph
            .add(&find("buffer")?, "in", &args)
            .map_err(|e| fferr(&what, e))?;
        let alpha = if pixel == format::Pixel::RGBA {
            ":alpha=1"
        } else {
            ""
        };
        let ass_args = format!(
            "filename={}:shaping=complex{alpha}",
            quote_option(&ass_path.to_string_lossy())
        );
        let mut ass = graph
            .add(&find("ass")?, "ass", &ass_args)
            .map_err(|e| fferr(&what, e))?;
        let mut sink = graph
            .add(&find("buffersink")?, "out", "")
            .map_err(|e| fferr(&what, e))?;
        src.link(0, &mut ass, 0);
        ass.link(0, &mut sink, 0);
        graph.validate().map_err(|e| fferr(&what, e))?;
        Ok(Self { graph, what })
    }

    /// Draws the captions active at `frame`'s pts onto a copy of it and returns the copy.
    pub fn burn(&mut self, input: &frame::Video) -> Result<frame::Video, MediaError> {
        let what = self.what.clone();
        let mut src = self
            .graph
            .get("in")
            .ok_or_else(|| MediaError::Internal(format!("{what}: filter graph lost its input")))?;
        // KEEP_REF: the filter takes its own reference, so `input` stays usable by the caller
        // (plain av_buffersrc_add_frame would move the buffers out of it).
        let rc = unsafe {
            ff::ffi::av_buffersrc_add_frame_flags(
                src.as_mut_ptr(),
                input.as_ptr() as *mut _,
                ff::ffi::AV_BUFFERSRC_FLAG_KEEP_REF as i32,
            )
        };
        if rc < 0 {
            return Err(fferr(&what, ff::Error::from(rc)));
        }
        let mut out = frame::Video::empty();
        self.graph
            .get("out")
            .ok_or_else(|| MediaError::Internal(format!("{what}: filter graph lost its output")))?
            .sink()
            .frame(&mut out)
            .map_err(|e| fferr(&what, e))?;
        Ok(out)
    }
}

/// Start and end (centiseconds) of every `Dialogue:` event in an ASS document.
pub fn ass_event_times(ass: &str) -> Vec<(u64, u64)> {
    fn cs(t: &str) -> Option<u64> {
        let mut parts = t.trim().split(':');
        let h: u64 = parts.next()?.parse().ok()?;
        let m: u64 = parts.next()?.parse().ok()?;
        let (s, c) = parts.next()?.split_once('.')?;
        let s: u64 = s.parse().ok()?;
        let c: u64 = c.parse().ok()?;
        Some(((h * 60 + m) * 60 + s) * 100 + c)
    }
    ass.lines()
        .filter_map(|l| l.strip_prefix("Dialogue:"))
        .filter_map(|rest| {
            let mut f = rest.splitn(4, ',');
            let _layer = f.next()?;
            Some((cs(f.next()?)?, cs(f.next()?)?))
        })
        .filter(|(a, b)| b > a)
        .collect()
}

/// One still caption image, ready to blend into YUV420P frames: premultiplied Y'CbCr
/// contributions and coverage, cropped to where it has pixels.
#[derive(Clone, Debug)]
struct CaptionImage {
    /// Frames `[first, last)` it is shown on.
    first: i64,
    last: i64,
    /// Crop origin (even) and size in luma pixels.
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    /// Per luma pixel: coverage 0..=255 and premultiplied luma (coverage × Y / 255).
    a: Vec<u8>,
    ya: Vec<u8>,
    /// Per chroma pixel (half size): coverage and premultiplied Cb, Cr.
    ca: Vec<u8>,
    ua: Vec<u8>,
    va: Vec<u8>,
}

/// Captions of a whole video, drawn once per distinct caption with libass and blended into
/// frames as they are encoded: the same pixels as filtering every frame, at a fraction of the
/// cost (nothing is drawn or copied on frames without captions). The images are drawn on a
/// thread of their own, in time order, while the first frames encode.
pub struct CaptionTrack {
    images: mpsc::Receiver<Result<CaptionImage, MediaError>>,
    /// The image being shown or the next one due.
    current: Option<CaptionImage>,
    done: bool,
    drawn: usize,
}

/// Draws every distinct caption state of an ASS document, in time order.
fn draw_caption_images(
    ass_path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    tx: &mpsc::SyncSender<Result<CaptionImage, MediaError>>,
) -> Result<(), MediaError> {
    let text = std::fs::read_to_string(ass_path).map_err(|e| MediaError::Io {
        path: ass_path.to_path_buf(),
        source: e,
    })?;
    let events = ass_event_times(&text);
    let mut bounds: Vec<u64> = events.iter().flat_map(|&(a, b)| [a, b]).collect();
    bounds.sort_unstable();
    bounds.dedup();
    // libass shows an event on a frame at t when start <= t < end (in its centiseconds);
    // map each boundary to the first frame at or after it.
    let frame_of = |cs: u64| -> i64 { ((cs as u128 * fps as u128).div_ceil(100)) as i64 };
    let mut burner = AssBurner::new(width, height, format::Pixel::RGBA, (1, 100), ass_path)?;
    for w in bounds.windows(2) {
        let (a, b) = (w[0], w[1]);
        if !events.iter().any(|&(s, e)| s <= a && a < e) {
            continue;
        }
        let (first, last) = (frame_of(a), frame_of(b));
        if first >= last {
            continue;
        }
        let mut canvas = frame::Video::new(format::Pixel::RGBA, width, height);
        let stride = canvas.stride(0);
        canvas.data_mut(0)[..stride * height as usize].fill(0);
        canvas.set_pts(Some(a as i64));
        let drawn = burner.burn(&canvas)?;
        if let Some(img) = CaptionImage::from_rgba(&drawn, first, last) {
            if tx.send(Ok(img)).is_err() {
                break;
            }
        }
    }
    Ok(())
}

impl CaptionTrack {
    /// Starts drawing the captions of `ass_path` for a `width`×`height` video at `fps`.
    pub fn render(ass_path: &Path, width: u32, height: u32, fps: u32) -> Result<Self, MediaError> {
        super::init()?;
        let (tx, rx) = mpsc::sync_channel(4);
        let path = ass_path.to_path_buf();
        std::thread::Builder::new()
            .name("captions".into())
            .spawn(move || {
                if let Err(e) = draw_caption_images(&path, width, height, fps, &tx) {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| MediaError::Io {
                path: ass_path.to_path_buf(),
                source: e,
            })?;
        Ok(Self {
            images: rx,
            current: None,
            done: false,
            drawn: 0,
        })
    }

    /// Blends the caption shown on frame `n` (if any) into a YUV420P frame. Frames must come
    /// in increasing order.
    pub fn apply(&mut self, n: i64, frame: &mut frame::Video) -> Result<(), MediaError> {
        loop {
            match &self.current {
                Some(img) if img.last > n => break,
                _ if self.done => break,
                _ => match self.images.recv() {
                    Ok(img) => {
                        self.current = Some(img?);
                        self.drawn += 1;
                    }
                    Err(_) => {
                        self.done = true;
                        self.current = None;
                    }
                },
            }
        }
        if let Some(img) = &self.current {
            if img.first <= n && n < img.last {
                img.blend(frame);
            }
        }
        Ok(())
    }

    /// How many distinct caption images have been drawn so far.
    pub fn drawn(&self) -> usize {
        self.drawn
    }
}

impl CaptionImage {
    /// From a premultiplied RGBA canvas (libass drawing over transparent black with alpha).
    fn from_rgba(f: &frame::Video, first: i64, last: i64) -> Option<Self> {
        let (fw, fh) = (f.width() as usize, f.height() as usize);
        let stride = f.stride(0);
        let d = f.data(0);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in 0..fh {
            let row = &d[y * stride..y * stride + fw * 4];
            for x in 0..fw {
                if row[x * 4 + 3] != 0 {
                    x0 = x0.min(x);
                    x1 = x1.max(x + 1);
                    y0 = y0.min(y);
                    y1 = y1.max(y + 1);
                }
            }
        }
        if x0 == usize::MAX {
            return None;
        }
        // Even origin and size so chroma lines up with the frame's 2×2 blocks.
        let (x, y) = (x0 & !1, y0 & !1);
        let w = ((x1 - x + 1) & !1).min(fw - x);
        let h = ((y1 - y + 1) & !1).min(fh - y);
        let mut a = vec![0u8; w * h];
        let mut ya = vec![0u8; w * h];
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut acc = vec![[0u32; 3]; cw * ch];
        for j in 0..h {
            let row = &d[(y + j) * stride..];
            for i in 0..w {
                let p = &row[(x + i) * 4..(x + i) * 4 + 4];
                let (r, g, b, al) = (p[0] as i32, p[1] as i32, p[2] as i32, p[3] as i32);
                a[j * w + i] = al as u8;
                // Premultiplied colour → premultiplied Y'CbCr: the offsets scale with coverage.
                let yy = (11966 * r + 40254 * g + 4064 * b + 16 * 65536 * al / 255 + 32768) >> 16;
                let cb = (-6596 * r - 22189 * g + 28784 * b + 128 * 65536 * al / 255 + 32768) >> 16;
                let cr = (28784 * r - 26145 * g - 2639 * b + 128 * 65536 * al / 255 + 32768) >> 16;
                ya[j * w + i] = yy.clamp(0, 255) as u8;
                let c = &mut acc[(j / 2) * cw + i / 2];
                c[0] += al as u32;
                c[1] += cb.clamp(0, 255) as u32;
                c[2] += cr.clamp(0, 255) as u32;
            }
        }
        let avg = |k: usize| {
            acc.iter()
                .map(|c| ((c[k] + 2) / 4) as u8)
                .collect::<Vec<u8>>()
        };
        Some(Self {
            first,
            last,
            x,
            y,
            w,
            h,
            a,
            ya,
            ca: avg(0),
            ua: avg(1),
            va: avg(2),
        })
    }

    fn blend(&self, f: &mut frame::Video) {
        #[inline]
        fn over(dst: u8, premul: u8, a: u8) -> u8 {
            ((dst as u32 * (255 - a as u32) + 127) / 255 + premul as u32).min(255) as u8
        }
        let (fw, fh) = (f.width() as usize, f.height() as usize);
        let w = self.w.min(fw.saturating_sub(self.x));
        let h = self.h.min(fh.saturating_sub(self.y));
        let s0 = f.stride(0);
        let luma = f.data_mut(0);
        for j in 0..h {
            let row = &mut luma[(self.y + j) * s0 + self.x..(self.y + j) * s0 + self.x + w];
            let (a, ya) = (&self.a[j * self.w..], &self.ya[j * self.w..]);
            for (i, px) in row.iter_mut().enumerate() {
                if a[i] != 0 {
                    *px = over(*px, ya[i], a[i]);
                }
            }
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let scw = self.w.div_ceil(2);
        let (cx, cy) = (self.x / 2, self.y / 2);
        for (p, src) in [(1usize, &self.ua), (2usize, &self.va)] {
            let s = f.stride(p);
            let plane = f.data_mut(p);
            for j in 0..ch {
                let row = &mut plane[(cy + j) * s + cx..(cy + j) * s + cx + cw];
                for (i, px) in row.iter_mut().enumerate() {
                    let a = self.ca[j * scw + i];
                    if a != 0 {
                        *px = over(*px, src[j * scw + i], a);
                    }
                }
            }
        }
    }
}
