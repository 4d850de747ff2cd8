//! Motion-compensated frame interpolation with libavfilter's `minterpolate`, in process: a
//! filter graph `buffer (RGB) → yuv444p → minterpolate → rgb24 → buffersink` fed one frame at a
//! time. Block motion estimation both ways, overlapped-block compensation, variable-size blocks;
//! its own scene-change test (`scd=fdiff`) repeats a frame instead of morphing across a cut.

use ff::{filter, format, frame, Rational};
use ffmpeg_next as ff;

use super::image::RgbImage;
use super::MediaError;

/// The interpolation settings: motion-compensated (`mci`), adaptive overlapped-block
/// compensation, bidirectional estimation, variable-size blocks, frame-difference scene cuts.
pub const MINTERPOLATE_OPTIONS: &str =
    "mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=fdiff:scd_threshold=10";

/// A `minterpolate` graph for frames of one size, from one rate to another.
pub struct MotionGraph {
    graph: filter::Graph,
    width: u32,
    height: u32,
    out_tb: Rational,
    /// The output frame rate.
    rate: Rational,
}

fn fferr(e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: "minterpolate".into(),
        source: e,
    }
}

impl MotionGraph {
    /// A graph taking `width`×`height` RGB frames numbered on a clock of `in_rate` frames a
    /// second, giving frames numbered on a clock of `out_rate`.
    pub fn new(
        width: u32,
        height: u32,
        in_rate: Rational,
        out_rate: Rational,
    ) -> Result<Self, MediaError> {
        super::init()?;
        let find = |name: &str| {
            filter::find(name).ok_or_else(|| MediaError::Missing {
                what: format!("the libavfilter `{name}` filter"),
                hint: "install a libavfilter with its built-in filters (Debian: libavfilter8)"
                    .into(),
            })
        };
        let mut graph = filter::Graph::new();
        // The conversions to and from Y'CbCr 4:4:4 that the graph inserts: accurate rounding, no
        // chroma subsampling on either side.
        // SAFETY: the graph we own; libavfilter frees the string with the graph.
        unsafe {
            let opts = c"flags=bicubic+accurate_rnd+full_chroma_int+full_chroma_inp";
            (*graph.as_mut_ptr()).scale_sws_opts = ff::ffi::av_strdup(opts.as_ptr());
        }
        let pix: ff::ffi::AVPixelFormat = format::Pixel::RGB24.into();
        let in_tb = in_rate.invert();
        let args = format!(
            "video_size={width}x{height}:pix_fmt={}:time_base={}/{}:frame_rate={}/{}:pixel_aspect=1/1",
            pix as i32,
            in_tb.numerator(),
            in_tb.denominator(),
            in_rate.numerator(),
            in_rate.denominator()
        );
        graph.add(&find("buffer")?, "in", &args).map_err(fferr)?;
        graph.add(&find("buffersink")?, "out", "").map_err(fferr)?;
        find("minterpolate")?;
        let spec = format!(
            "format=yuv444p,minterpolate=fps={}/{}:{MINTERPOLATE_OPTIONS},format=rgb24",
            out_rate.numerator(),
            out_rate.denominator()
        );
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(&spec))
            .map_err(fferr)?;
        graph.validate().map_err(fferr)?;
        let out_tb = graph
            .get("out")
            .map(|mut c| c.sink().time_base())
            .filter(|tb| tb.numerator() > 0 && tb.denominator() > 0)
            .unwrap_or(out_rate.invert());
        Ok(Self {
            graph,
            width,
            height,
            out_tb,
            rate: out_rate,
        })
    }

    /// Feeds source frame number `index` (on the input clock).
    pub fn push(&mut self, img: &RgbImage, index: i64) -> Result<(), MediaError> {
        if (img.width, img.height) != (self.width, self.height) {
            return Err(MediaError::Internal(format!(
                "minterpolate: a {}×{} frame in a {}×{} graph",
                img.width, img.height, self.width, self.height
            )));
        }
        let mut f = frame::Video::new(format::Pixel::RGB24, img.width, img.height);
        let stride = f.stride(0);
        let row = img.width as usize * 3;
        for (y, src) in img.data.chunks_exact(row).enumerate() {
            f.data_mut(0)[y * stride..y * stride + row].copy_from_slice(src);
        }
        f.set_pts(Some(index));
        self.source()?.source().add(&f).map_err(fferr)
    }

    /// Says no more frames come.
    pub fn finish(&mut self) -> Result<(), MediaError> {
        self.source()?.source().flush().map_err(fferr)
    }

    fn source(&mut self) -> Result<filter::Context, MediaError> {
        self.graph
            .get("in")
            .ok_or_else(|| MediaError::Internal("minterpolate: the graph lost its input".into()))
    }

    /// The next frame the graph has made and its number on the output clock, or `None` when it
    /// needs more input (or has ended).
    pub fn pull(&mut self) -> Result<Option<(u64, RgbImage)>, MediaError> {
        let mut out = frame::Video::empty();
        let mut sink = self.graph.get("out").ok_or_else(|| {
            MediaError::Internal("minterpolate: the graph lost its output".into())
        })?;
        match sink.sink().frame(&mut out) {
            Ok(()) => {}
            Err(ff::Error::Eof) => return Ok(None),
            Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => return Ok(None),
            Err(e) => return Err(fferr(e)),
        }
        let pts = out.pts().unwrap_or(0).max(0);
        // On the output clock: the sink's time base is 1/rate; rescaled if it is not.
        let j = (pts as f64 * f64::from(self.out_tb) * f64::from(self.rate)).round() as u64;
        Ok(Some((j, super::decode::frame_to_rgb(&out))))
    }
}
