//! Whisper's log-mel front end.
//!
//! Mirrors the reference pipeline: 16 kHz mono input, a 400-point STFT with a
//! periodic Hann window and a hop of 160 samples (centre-padded by reflection,
//! last frame dropped), power spectrum, a Slaney-scale / Slaney-normalised
//! mel filterbank (what `librosa.filters.mel(sr, n_fft, n_mels)` returns with
//! its defaults), `log10` clamped at `1e-10`, dynamic range limited to 8 (in
//! log10 units) below the global maximum and finally `(x + 4) / 4`.

use std::f64::consts::PI;

/// Sample rate the model expects.
pub const SAMPLE_RATE: usize = 16_000;
/// STFT size.
pub const N_FFT: usize = 400;
/// STFT hop (10 ms).
pub const HOP_LENGTH: usize = 160;
/// Length of one model window in seconds.
pub const CHUNK_SECONDS: usize = 30;
/// Samples in one model window.
pub const N_SAMPLES: usize = CHUNK_SECONDS * SAMPLE_RATE;
/// Mel frames in one model window.
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;
/// Number of frequency bins of the one-sided spectrum.
pub const N_BINS: usize = N_FFT / 2 + 1;

/// A complex number (just what the FFT needs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct C32 {
    re: f32,
    im: f32,
}

impl C32 {
    fn mul(self, o: C32) -> C32 {
        C32 {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }

    fn add(self, o: C32) -> C32 {
        C32 {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
}

/// Mixed-radix decimation-in-time FFT for a fixed size.
///
/// The size is factored into small primes (4 is used as a radix when
/// possible); each stage combines `p` interleaved sub-transforms with a
/// direct `p`-point DFT, so any size whose factors are small runs in
/// `O(n · Σ factors)`.
struct Fft {
    n: usize,
    factors: Vec<usize>,
    /// `exp(-2πi k / n)` for `k` in `0..n`.
    twiddles: Vec<C32>,
}

impl Fft {
    fn new(n: usize) -> Self {
        assert!(n > 0, "FFT size must be positive");
        let mut factors = Vec::new();
        let mut rest = n;
        while rest.is_multiple_of(4) {
            factors.push(4);
            rest /= 4;
        }
        let mut p = 2;
        while rest > 1 {
            while rest.is_multiple_of(p) {
                factors.push(p);
                rest /= p;
            }
            p += 1;
        }
        let twiddles = (0..n)
            .map(|k| {
                let a = -2.0 * PI * k as f64 / n as f64;
                C32 {
                    re: a.cos() as f32,
                    im: a.sin() as f32,
                }
            })
            .collect();
        Self {
            n,
            factors,
            twiddles,
        }
    }

    /// Transforms `input` (length `n`) into `out` (length `n`).
    fn run(&self, input: &[C32], out: &mut [C32]) {
        debug_assert_eq!(input.len(), self.n);
        debug_assert_eq!(out.len(), self.n);
        self.stage(input, 1, out, &self.factors);
    }

    fn stage(&self, input: &[C32], stride: usize, out: &mut [C32], factors: &[usize]) {
        let n = out.len();
        let Some((&p, rest)) = factors.split_first() else {
            out[0] = input[0];
            return;
        };
        let m = n / p;
        for q in 0..p {
            self.stage(
                &input[q * stride..],
                stride * p,
                &mut out[q * m..(q + 1) * m],
                rest,
            );
        }
        // Twiddle step for this sub-size in the full-size table.
        let tw_step = self.n / n;
        let root_step = self.n / p;
        let mut gathered = [C32::default(); 8];
        let mut result = [C32::default(); 8];
        if p > 8 {
            // Large prime factor: fall back to a direct DFT with heap buffers.
            let mut g = vec![C32::default(); p];
            let mut r = vec![C32::default(); p];
            for k in 0..m {
                self.butterfly(out, k, m, p, tw_step, root_step, &mut g, &mut r);
            }
            return;
        }
        for k in 0..m {
            self.butterfly(
                out,
                k,
                m,
                p,
                tw_step,
                root_step,
                &mut gathered[..p],
                &mut result[..p],
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn butterfly(
        &self,
        out: &mut [C32],
        k: usize,
        m: usize,
        p: usize,
        tw_step: usize,
        root_step: usize,
        gathered: &mut [C32],
        result: &mut [C32],
    ) {
        for q in 0..p {
            let tw = self.twiddles[(q * k * tw_step) % self.n];
            gathered[q] = out[q * m + k].mul(tw);
        }
        for (r, slot) in result.iter_mut().enumerate() {
            let mut acc = C32::default();
            for (q, g) in gathered.iter().enumerate() {
                acc = acc.add(g.mul(self.twiddles[(q * r * root_step) % self.n]));
            }
            *slot = acc;
        }
        for (r, v) in result.iter().enumerate() {
            out[k + r * m] = *v;
        }
    }
}

/// Periodic Hann window of length `n` (as `torch.hann_window(n)`).
pub fn hann_window(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// Power spectrogram `|STFT|²` of `samples`, row-major `[frames][N_BINS]`.
///
/// Frames are centred (`N_FFT / 2` samples of reflection padding on both
/// sides) with a hop of [`HOP_LENGTH`]; like Whisper, the final frame is
/// dropped, so there are `samples.len() / HOP_LENGTH` frames.
pub fn power_spectrogram(samples: &[f32]) -> (Vec<f32>, usize) {
    let n_frames = samples.len() / HOP_LENGTH;
    let mut out = vec![0f32; n_frames * N_BINS];
    if n_frames == 0 {
        return (out, 0);
    }
    let half = N_FFT / 2;
    let len = samples.len() as isize;
    // Reflection padding without repeating the edge sample.
    let at = |i: isize| -> f32 {
        let mut j = i - half as isize;
        if j < 0 {
            j = -j;
        }
        if j >= len {
            j = 2 * (len - 1) - j;
        }
        samples[j.clamp(0, len - 1) as usize]
    };
    let fft = Fft::new(N_FFT);
    let window = hann_window(N_FFT);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let per_thread = n_frames.div_ceil(threads);
    std::thread::scope(|s| {
        for (t, chunk) in out.chunks_mut(per_thread * N_BINS).enumerate() {
            let (fft, window, at) = (&fft, &window, &at);
            s.spawn(move || {
                let mut frame = vec![C32::default(); N_FFT];
                let mut spec = vec![C32::default(); N_FFT];
                for (f, row) in chunk.chunks_mut(N_BINS).enumerate() {
                    let start = ((t * per_thread + f) * HOP_LENGTH) as isize;
                    for (i, (slot, w)) in frame.iter_mut().zip(window.iter()).enumerate() {
                        *slot = C32 {
                            re: at(start + i as isize) * w,
                            im: 0.0,
                        };
                    }
                    fft.run(&frame, &mut spec);
                    for (o, c) in row.iter_mut().zip(spec.iter()) {
                        *o = c.re * c.re + c.im * c.im;
                    }
                }
            });
        }
    });
    (out, n_frames)
}

fn hz_to_mel(hz: f64) -> f64 {
    // Slaney: linear below 1 kHz, logarithmic above.
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// Slaney mel filterbank, row-major `[n_mels][n_fft / 2 + 1]`, covering
/// 0 Hz to the Nyquist frequency, each triangle area-normalised.
pub fn mel_filters(n_mels: usize, n_fft: usize, sample_rate: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|k| k as f64 * sample_rate as f64 / n_fft as f64)
        .collect();
    let mel_min = hz_to_mel(0.0);
    let mel_max = hz_to_mel(sample_rate as f64 / 2.0);
    let mel_pts: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (lo, centre, hi) = (mel_pts[m], mel_pts[m + 1], mel_pts[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let rising = (f - lo) / (centre - lo);
            let falling = (hi - f) / (hi - centre);
            let w = rising.min(falling).max(0.0);
            weights[m * n_bins + k] = (w * enorm) as f32;
        }
    }
    weights
}

/// A normalised log-mel spectrogram, row-major `[n_mels][n_frames]`.
#[derive(Debug, Clone)]
pub struct LogMel {
    /// Values, mel-major.
    pub data: Vec<f32>,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Number of frames (10 ms each).
    pub n_frames: usize,
}

impl LogMel {
    /// Copies frames `start..start + N_FRAMES` into a `[n_mels][N_FRAMES]`
    /// buffer, padding past the end with zeros (as Whisper's `pad_or_trim`).
    pub fn window(&self, start: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.n_mels * N_FRAMES];
        let end = (start + N_FRAMES).min(self.n_frames);
        if start < end {
            for m in 0..self.n_mels {
                let src = &self.data[m * self.n_frames + start..m * self.n_frames + end];
                out[m * N_FRAMES..m * N_FRAMES + src.len()].copy_from_slice(src);
            }
        }
        out
    }
}

/// Computes Whisper's normalised log-mel spectrogram of 16 kHz mono
/// `samples`, after appending `pad_samples` zeros (Whisper pads by one
/// 30 s window so that the last window sees real silence frames).
pub fn log_mel_spectrogram(samples: &[f32], n_mels: usize, pad_samples: usize) -> LogMel {
    let mut padded = Vec::with_capacity(samples.len() + pad_samples);
    padded.extend_from_slice(samples);
    padded.resize(samples.len() + pad_samples, 0.0);
    let (power, n_frames) = power_spectrogram(&padded);
    let filters = mel_filters(n_mels, N_FFT, SAMPLE_RATE);
    // Each triangle is non-zero over a short bin range; keep only that range.
    let ranges: Vec<(usize, usize)> = (0..n_mels)
        .map(|m| {
            let row = &filters[m * N_BINS..(m + 1) * N_BINS];
            let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
            let last = row.iter().rposition(|&w| w > 0.0).map_or(0, |l| l + 1);
            (first, last.max(first))
        })
        .collect();
    let mut data = vec![0f32; n_mels * n_frames];
    let mut max = f32::NEG_INFINITY;
    for f in 0..n_frames {
        let spec = &power[f * N_BINS..(f + 1) * N_BINS];
        for (m, &(a, b)) in ranges.iter().enumerate() {
            let w = &filters[m * N_BINS + a..m * N_BINS + b];
            let e: f32 = w.iter().zip(&spec[a..b]).map(|(x, y)| x * y).sum();
            let v = e.max(1e-10).log10();
            max = max.max(v);
            data[m * n_frames + f] = v;
        }
    }
    let floor = max - 8.0;
    for v in &mut data {
        *v = (v.max(floor) + 4.0) / 4.0;
    }
    LogMel {
        data,
        n_mels,
        n_frames,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_matches_direct_dft() {
        for n in [1usize, 2, 5, 12, 400, 22] {
            let fft = Fft::new(n);
            let input: Vec<C32> = (0..n)
                .map(|i| C32 {
                    re: ((i * 7 + 3) % 11) as f32 - 5.0,
                    im: ((i * 3 + 1) % 5) as f32 - 2.0,
                })
                .collect();
            let mut out = vec![C32::default(); n];
            fft.run(&input, &mut out);
            for (k, o) in out.iter().enumerate() {
                let mut acc = (0f64, 0f64);
                for (j, x) in input.iter().enumerate() {
                    let a = -2.0 * PI * (j * k) as f64 / n as f64;
                    acc.0 += x.re as f64 * a.cos() - x.im as f64 * a.sin();
                    acc.1 += x.re as f64 * a.sin() + x.im as f64 * a.cos();
                }
                assert!((o.re as f64 - acc.0).abs() < 1e-2, "n={n} k={k}");
                assert!((o.im as f64 - acc.1).abs() < 1e-2, "n={n} k={k}");
            }
        }
    }

    #[test]
    fn mel_scale_roundtrip() {
        for hz in [0.0, 500.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
    }
}
