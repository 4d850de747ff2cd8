//! WAV files and sample-rate conversion for the audio stages.

use std::path::Path;

use ff::{format, frame, software};
use ffmpeg_next as ff;

use super::MediaError;

fn hound_err(path: &Path, e: hound::Error) -> MediaError {
    MediaError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Audio in memory: interleaved f32 samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<f32>,
}

impl Audio {
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1) as usize
    }

    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / self.rate as f64
    }
}

/// Writes 32-bit float WAV (lossless for our mixes; deterministic bytes).
pub fn write_f32(path: &Path, audio: &Audio) -> Result<(), MediaError> {
    let spec = hound::WavSpec {
        channels: audio.channels,
        sample_rate: audio.rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| hound_err(path, e))?;
    for &s in &audio.samples {
        w.write_sample(s).map_err(|e| hound_err(path, e))?;
    }
    w.finalize().map_err(|e| hound_err(path, e))
}

/// Reads a 16/24/32-bit integer or 32-bit float WAV into f32.
pub fn read(path: &Path) -> Result<Audio, MediaError> {
    let r = hound::WavReader::open(path).map_err(|e| hound_err(path, e))?;
    read_from(r, path)
}

/// Reads a WAV held in memory (e.g. a subprocess's stdout).
pub fn read_bytes(bytes: &[u8], origin: &Path) -> Result<Audio, MediaError> {
    let r = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|e| hound_err(origin, e))?;
    read_from(r, origin)
}

fn read_from<R: std::io::Read>(
    mut r: hound::WavReader<R>,
    path: &Path,
) -> Result<Audio, MediaError> {
    let spec = r.spec();
    let samples: Result<Vec<f32>, hound::Error> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect()
        }
    };
    Ok(Audio {
        rate: spec.sample_rate,
        channels: spec.channels,
        samples: samples.map_err(|e| hound_err(path, e))?,
    })
}

/// Converts mono audio to `rate` with libswresample (band-limited, deterministic).
pub fn resample_mono(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, MediaError> {
    if from == to || input.is_empty() {
        return Ok(input.to_vec());
    }
    super::init()?;
    let err = |e| MediaError::Ffmpeg {
        what: format!("resampling {from} Hz to {to} Hz"),
        source: e,
    };
    let fmt = format::Sample::F32(format::sample::Type::Packed);
    let mut ctx = software::resampling::Context::get(
        fmt,
        ff::ChannelLayout::MONO,
        from,
        fmt,
        ff::ChannelLayout::MONO,
        to,
    )
    .map_err(err)?;
    let mut out = Vec::with_capacity(input.len() * to as usize / from as usize + 64);
    let chunk = 8192;
    for part in input.chunks(chunk) {
        let mut f = frame::Audio::new(fmt, part.len(), ff::ChannelLayout::MONO);
        f.set_rate(from);
        f.plane_mut::<f32>(0)[..part.len()].copy_from_slice(part);
        // Room for everything this chunk can produce plus what the resampler held back: an
        // empty frame would be given only `part.len()` samples of room, and when upsampling
        // the rest piles up inside the resampler and never comes out.
        let room = (part.len() as u64 * to as u64).div_ceil(from as u64) as usize + 256;
        let mut o = frame::Audio::new(fmt, room, ff::ChannelLayout::MONO);
        o.set_rate(to);
        ctx.run(&f, &mut o).map_err(err)?;
        out.extend_from_slice(&o.plane::<f32>(0)[..o.samples()]);
    }
    loop {
        let mut o = frame::Audio::new(fmt, 4096, ff::ChannelLayout::MONO);
        o.set_rate(to);
        match ctx.flush(&mut o) {
            Ok(_) if o.samples() > 0 => out.extend_from_slice(&o.plane::<f32>(0)[..o.samples()]),
            _ => break,
        }
    }
    // Trim or pad to the exact expected length so durations stay exact.
    let expected = (input.len() as u64 * to as u64).div_ceil(from as u64) as usize;
    out.resize(expected, 0.0);
    Ok(out)
}

#[cfg(test)]
mod resample_tests {
    use super::*;

    #[test]
    fn resampling_keeps_every_part_of_a_long_signal() {
        for (from, to) in [(22_050, 48_000), (27_144, 48_000), (48_000, 16_000)] {
            let n = from as usize * 3 / 2 + 123; // 1.5 s: several 8192-sample chunks
            let x: Vec<f32> = (0..n)
                .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / from as f32).sin() * 0.5)
                .collect();
            let y = resample_mono(&x, from, to).unwrap();
            assert_eq!(
                y.len(),
                (n as u64 * to as u64).div_ceil(from as u64) as usize
            );
            // The same through the file decoder (stereo out).
            let dir = tempfile::tempdir().unwrap();
            let wav = dir.path().join("tone.wav");
            write_f32(
                &wav,
                &Audio {
                    rate: from,
                    channels: 1,
                    samples: x.clone(),
                },
            )
            .unwrap();
            let st = crate::media::decode::decode_audio(&wav, to).unwrap();
            let frames = st.len() / 2;
            let want = n as f64 * to as f64 / from as f64;
            assert!(
                (frames as f64 - want).abs() < to as f64 * 0.01,
                "{from}→{to}: decoded {frames} frames, want ≈ {want:.0}"
            );
            // Every 50 ms block carries the tone (none is silence or padding).
            let block = to as usize / 20;
            for (b, c) in y[..y.len() - block].chunks(block).enumerate() {
                let rms = (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt();
                assert!(rms > 0.3, "{from}→{to}: block {b} rms {rms}");
            }
        }
    }
}
