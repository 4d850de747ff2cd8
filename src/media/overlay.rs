//! Burning ASS subtitles into frames with libavfilter's `ass` filter (libass: HarfBuzz shaping,
//! FriBidi for right-to-left scripts, fontconfig fallback for every script we render).

use std::path::Path;

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
    /// `time_base` is the frames' pts unit (1/fps for video frames numbered from 0).
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
        let ass_args = format!(
            "filename={}:shaping=complex",
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
