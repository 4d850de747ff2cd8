//! Reading media back: probing streams, decoding video frames to RGB and audio to f32.
//! Used by tests, benchmarks and stages that take user-supplied images.

use std::path::Path;

use ff::{codec, format, frame, media, software};
use ffmpeg_next as ff;

use super::image::RgbImage;
use super::MediaError;

/// What a media file holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MediaInfo {
    pub format: String,
    pub duration: f64,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VideoInfo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub frames: u64,
    pub duration: f64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AudioInfo {
    pub codec: String,
    pub rate: u32,
    pub channels: u16,
    pub duration: f64,
}

fn fferr(path: &Path, e: ff::Error) -> MediaError {
    MediaError::Ffmpeg {
        what: path.display().to_string(),
        source: e,
    }
}

fn secs(ts: i64, tb: ff::Rational) -> f64 {
    ts as f64 * tb.numerator() as f64 / tb.denominator().max(1) as f64
}

/// Streams, sizes and durations, counting video frames by reading packets (exact, cheap).
pub fn probe(path: &Path) -> Result<MediaInfo, MediaError> {
    super::init()?;
    let mut ictx = format::input(path).map_err(|e| fferr(path, e))?;
    let fmt = ictx.format().name().to_string();
    let duration = ictx.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE);
    let vidx = ictx.streams().best(media::Type::Video).map(|s| s.index());
    let aidx = ictx.streams().best(media::Type::Audio).map(|s| s.index());
    let mut video = None;
    let mut audio = None;
    if let Some(i) = vidx {
        let st = ictx
            .stream(i)
            .ok_or_else(|| MediaError::Internal("stream vanished".into()))?;
        let ctx = codec::context::Context::from_parameters(st.parameters())
            .map_err(|e| fferr(path, e))?;
        let dec = ctx.decoder().video().map_err(|e| fferr(path, e))?;
        let r = st.avg_frame_rate();
        video = Some(VideoInfo {
            codec: dec.id().name().to_string(),
            width: dec.width(),
            height: dec.height(),
            fps: if r.denominator() != 0 {
                r.numerator() as f64 / r.denominator() as f64
            } else {
                0.0
            },
            frames: 0,
            duration: 0.0,
        });
    }
    if let Some(i) = aidx {
        let st = ictx
            .stream(i)
            .ok_or_else(|| MediaError::Internal("stream vanished".into()))?;
        let ctx = codec::context::Context::from_parameters(st.parameters())
            .map_err(|e| fferr(path, e))?;
        let dec = ctx.decoder().audio().map_err(|e| fferr(path, e))?;
        audio = Some(AudioInfo {
            codec: dec.id().name().to_string(),
            rate: dec.rate(),
            channels: dec.channels(),
            duration: 0.0,
        });
    }
    let mut v_end = 0.0f64;
    let mut a_end = 0.0f64;
    let mut frames = 0u64;
    for (st, pkt) in ictx.packets() {
        let tb = st.time_base();
        let end = secs(pkt.pts().unwrap_or(0) + pkt.duration(), tb);
        if Some(st.index()) == vidx {
            frames += 1;
            v_end = v_end.max(end);
        } else if Some(st.index()) == aidx {
            a_end = a_end.max(end);
        }
    }
    if let Some(v) = video.as_mut() {
        v.frames = frames;
        v.duration = v_end;
    }
    if let Some(a) = audio.as_mut() {
        a.duration = a_end;
    }
    Ok(MediaInfo {
        format: fmt,
        duration,
        video,
        audio,
    })
}

fn to_rgb(
    frame: &frame::Video,
    scaler: &mut Option<software::scaling::Context>,
) -> Result<RgbImage, MediaError> {
    let (w, h) = (frame.width(), frame.height());
    if scaler.is_none() {
        *scaler = Some(
            software::scaling::Context::get(
                frame.format(),
                w,
                h,
                format::Pixel::RGB24,
                w,
                h,
                software::scaling::Flags::BILINEAR | software::scaling::Flags::ACCURATE_RND,
            )
            .map_err(|e| MediaError::Ffmpeg {
                what: "colour conversion".into(),
                source: e,
            })?,
        );
    }
    let mut rgb = frame::Video::empty();
    if let Some(s) = scaler.as_mut() {
        s.run(frame, &mut rgb).map_err(|e| MediaError::Ffmpeg {
            what: "colour conversion".into(),
            source: e,
        })?;
    }
    Ok(frame_to_rgb(&rgb))
}

/// Copies a packed RGB24 frame into an [`RgbImage`].
pub fn frame_to_rgb(rgb: &frame::Video) -> RgbImage {
    let (w, h) = (rgb.width(), rgb.height());
    let mut img = RgbImage::new(w, h);
    let stride = rgb.stride(0);
    let data = rgb.data(0);
    let row = w as usize * 3;
    for y in 0..h as usize {
        img.data[y * row..(y + 1) * row].copy_from_slice(&data[y * stride..y * stride + row]);
    }
    img
}

/// Decodes every video frame, handing `(index, pts seconds, image)` to `visit`; stops early when
/// it returns false. Returns the number of frames decoded.
pub fn for_each_frame(
    path: &Path,
    mut visit: impl FnMut(u64, f64, &RgbImage) -> bool,
) -> Result<u64, MediaError> {
    super::init()?;
    let mut ictx = format::input(path).map_err(|e| fferr(path, e))?;
    let st = ictx
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| MediaError::NoStream {
            path: path.to_path_buf(),
            kind: "video",
        })?;
    let idx = st.index();
    let tb = st.time_base();
    let ctx =
        codec::context::Context::from_parameters(st.parameters()).map_err(|e| fferr(path, e))?;
    let mut dec = ctx.decoder().video().map_err(|e| fferr(path, e))?;
    let mut scaler = None;
    let mut n = 0u64;
    let mut frame = frame::Video::empty();
    let mut go_on = true;
    let mut drain =
        |dec: &mut ff::decoder::Video, n: &mut u64, go_on: &mut bool| -> Result<(), MediaError> {
            while *go_on && dec.receive_frame(&mut frame).is_ok() {
                let t = secs(frame.timestamp().unwrap_or(0), tb);
                let img = to_rgb(&frame, &mut scaler)?;
                *go_on = visit(*n, t, &img);
                *n += 1;
            }
            Ok(())
        };
    for (s, pkt) in ictx.packets() {
        if s.index() != idx {
            continue;
        }
        dec.send_packet(&pkt).map_err(|e| fferr(path, e))?;
        drain(&mut dec, &mut n, &mut go_on)?;
        if !go_on {
            return Ok(n);
        }
    }
    dec.send_eof().map_err(|e| fferr(path, e))?;
    drain(&mut dec, &mut n, &mut go_on)?;
    Ok(n)
}

/// Decodes the frame shown at `t` seconds (the last frame whose pts ≤ t).
pub fn frame_at(path: &Path, t: f64) -> Result<RgbImage, MediaError> {
    let mut found: Option<RgbImage> = None;
    for_each_frame(path, |_, pts, img| {
        if pts <= t + 1e-6 {
            found = Some(img.clone());
            true
        } else {
            false
        }
    })?;
    found.ok_or_else(|| MediaError::NoStream {
        path: path.to_path_buf(),
        kind: "video frame at that time",
    })
}

/// Decodes the whole audio track to mono f32 at `rate` (the two channels averaged).
pub fn decode_audio_mono(path: &Path, rate: u32) -> Result<Vec<f32>, MediaError> {
    Ok(decode_audio(path, rate)?
        .chunks(2)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect())
}

/// Decodes the whole audio track to interleaved stereo f32 at `rate`.
pub fn decode_audio(path: &Path, rate: u32) -> Result<Vec<f32>, MediaError> {
    super::init()?;
    let mut ictx = format::input(path).map_err(|e| fferr(path, e))?;
    let st = ictx
        .streams()
        .best(media::Type::Audio)
        .ok_or_else(|| MediaError::NoStream {
            path: path.to_path_buf(),
            kind: "audio",
        })?;
    let idx = st.index();
    let ctx =
        codec::context::Context::from_parameters(st.parameters()).map_err(|e| fferr(path, e))?;
    let mut dec = ctx.decoder().audio().map_err(|e| fferr(path, e))?;
    let mut out = Vec::new();
    let mut rs: Option<software::resampling::Context> = None;
    let mut frame = frame::Audio::empty();
    let push = |frame: &mut frame::Audio,
                rs: &mut Option<software::resampling::Context>,
                out: &mut Vec<f32>|
     -> Result<(), MediaError> {
        // WAV and some raw formats leave the layout unset; the resampler checks every frame
        // against the layout it was made for, so name it on the frame itself.
        if frame.channel_layout().is_empty() {
            frame.set_channel_layout(ff::ChannelLayout::default(frame.channels() as i32));
        }
        if rs.is_none() {
            let layout = frame.channel_layout();
            *rs = Some(
                software::resampling::Context::get(
                    frame.format(),
                    layout,
                    frame.rate(),
                    format::Sample::F32(format::sample::Type::Packed),
                    ff::ChannelLayout::STEREO,
                    rate,
                )
                .map_err(|e| MediaError::Ffmpeg {
                    what: "resampling".into(),
                    source: e,
                })?,
            );
        }
        // Room for all this frame converts to (an empty frame gets only the input's sample
        // count, and when upsampling the rest would pile up in the resampler).
        let room = (frame.samples() as u64 * rate as u64).div_ceil(frame.rate().max(1) as u64)
            as usize
            + 256;
        let mut converted = frame::Audio::new(
            format::Sample::F32(format::sample::Type::Packed),
            room,
            ff::ChannelLayout::STEREO,
        );
        converted.set_rate(rate);
        if let Some(r) = rs.as_mut() {
            r.run(frame, &mut converted)
                .map_err(|e| MediaError::Ffmpeg {
                    what: "resampling".into(),
                    source: e,
                })?;
        }
        let n = converted.samples() * 2;
        if n > 0 {
            extend_f32(out, converted.data(0), n);
        }
        Ok(())
    };
    for (s, pkt) in ictx.packets() {
        if s.index() != idx {
            continue;
        }
        dec.send_packet(&pkt).map_err(|e| fferr(path, e))?;
        while dec.receive_frame(&mut frame).is_ok() {
            push(&mut frame, &mut rs, &mut out)?;
        }
    }
    dec.send_eof().map_err(|e| fferr(path, e))?;
    while dec.receive_frame(&mut frame).is_ok() {
        push(&mut frame, &mut rs, &mut out)?;
    }
    if let Some(r) = rs.as_mut() {
        loop {
            let mut tail = frame::Audio::new(
                format::Sample::F32(format::sample::Type::Packed),
                4096,
                ff::ChannelLayout::STEREO,
            );
            tail.set_rate(rate);
            if r.flush(&mut tail).is_err() || tail.samples() == 0 {
                break;
            }
            extend_f32(&mut out, tail.data(0), tail.samples() * 2);
        }
    }
    Ok(out)
}

/// Appends the first `n` native-endian f32 samples held in `bytes`.
fn extend_f32(out: &mut Vec<f32>, bytes: &[u8], n: usize) {
    out.extend(
        bytes
            .chunks_exact(4)
            .take(n)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
    );
}

/// Decodes a still image (PNG, JPEG, WebP, BMP … whatever libavcodec reads) to RGB.
pub fn read_image(path: &Path) -> Result<RgbImage, MediaError> {
    let mut img = None;
    for_each_frame(path, |_, _, i| {
        img = Some(i.clone());
        false
    })?;
    img.ok_or_else(|| MediaError::NoStream {
        path: path.to_path_buf(),
        kind: "image",
    })
}
