//! Loudness and true-peak measurement after ITU-R BS.1770-4 / EBU R128.
//!
//! * [`integrated_loudness`] — gated integrated loudness in LUFS (K-weighting,
//!   400 ms blocks with 75 % overlap, absolute gate −70 LUFS, relative gate −10 LU).
//! * [`short_term_max`] — the loudest 3 s (short-term) window, ungated.
//! * [`true_peak_dbtp`] — 4× oversampled peak in dBTP (BS.1770-4 Annex 2 style).
//!
//! Samples are `f32` in [-1, 1], interleaved when `channels > 1`. The K-weighting
//! biquads are derived from the analogue prototype for any sample rate, so
//! 44.1 kHz, 48 kHz, 96 kHz, … all measure the same.

use std::f64::consts::PI;

/// Offset of the BS.1770 loudness formula: L = −0.691 + 10·log10(Σ Gᵢ·zᵢ).
const LOUDNESS_OFFSET: f64 = -0.691;
/// Absolute gate, LUFS.
const ABSOLUTE_GATE_LUFS: f64 = -70.0;
/// Relative gate, LU below the absolute-gated loudness.
const RELATIVE_GATE_LU: f64 = -10.0;

/// A second-order IIR section (normalised so a0 = 1), run in f64.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
}

/// Direct form II transposed state.
#[derive(Debug, Clone, Copy, Default)]
struct BiquadState {
    s1: f64,
    s2: f64,
}

impl BiquadState {
    #[inline]
    fn tick(&mut self, f: &Biquad, x: f64) -> f64 {
        let y = f.b0 * x + self.s1;
        self.s1 = f.b1 * x - f.a1 * y + self.s2;
        self.s2 = f.b2 * x - f.a2 * y;
        y
    }
}

/// The two K-weighting stages for `rate`: a +4 dB high shelf around 1.7 kHz
/// (head diffraction model) followed by the RLB high-pass around 38 Hz.
///
/// The analogue prototype parameters (centre frequency, gain, Q) are the ones
/// that reproduce the 48 kHz coefficient table of BS.1770 exactly; they are
/// bilinear-transformed (with pre-warping) for the requested rate.
fn k_weighting(rate: u32) -> [Biquad; 2] {
    let fs = f64::from(rate);

    // Stage 1: high shelf.
    let f0 = 1_681.974_450_955_533;
    let gain_db = 3.999_843_853_973_347;
    let q = 0.707_175_236_955_419_6;
    let k = (PI * f0 / fs).tan();
    let vh = 10f64.powf(gain_db / 20.0);
    let vb = vh.powf(0.499_666_774_154_541_6);
    let a0 = 1.0 + k / q + k * k;
    let shelf = Biquad {
        b0: (vh + vb * k / q + k * k) / a0,
        b1: 2.0 * (k * k - vh) / a0,
        b2: (vh - vb * k / q + k * k) / a0,
        a1: 2.0 * (k * k - 1.0) / a0,
        a2: (1.0 - k / q + k * k) / a0,
    };

    // Stage 2: second-order high-pass (RLB weighting). The numerator is left
    // un-normalised (1, −2, 1) as in the standard's table.
    let f0 = 38.135_470_876_024_44;
    let q = 0.500_327_037_323_877_3;
    let k = (PI * f0 / fs).tan();
    let a0 = 1.0 + k / q + k * k;
    let highpass = Biquad {
        b0: 1.0,
        b1: -2.0,
        b2: 1.0,
        a1: 2.0 * (k * k - 1.0) / a0,
        a2: (1.0 - k / q + k * k) / a0,
    };
    [shelf, highpass]
}

/// BS.1770 channel weight Gᵢ. For 5.1 (L R C LFE Ls Rs) the LFE is excluded and
/// the surrounds get +1.5 dB; every other layout weights all channels 1.0.
fn channel_weight(channel: usize, channels: usize) -> f64 {
    if channels == 6 {
        match channel {
            3 => 0.0,
            4 | 5 => 1.41,
            _ => 1.0,
        }
    } else {
        1.0
    }
}

/// K-weighted, channel-weighted energy per 100 ms segment (Σ over channels of
/// Gᵢ·Σ y²). Returns `(segments, samples_per_segment)`; trailing samples that do
/// not fill a whole segment are ignored (they cannot complete a block either).
fn segment_energies(samples: &[f32], channels: usize, rate: u32) -> (Vec<f64>, usize) {
    let step = ((f64::from(rate) * 0.1).round() as usize).max(1);
    let frames = samples.len() / channels;
    let segments = frames / step;
    let mut energy = vec![0.0f64; segments];
    if segments == 0 {
        return (energy, step);
    }
    let filters = k_weighting(rate);
    let used = segments * step;
    for ch in 0..channels {
        let weight = channel_weight(ch, channels);
        if weight == 0.0 {
            continue;
        }
        let (mut shelf, mut highpass) = (BiquadState::default(), BiquadState::default());
        let mut frame = 0usize;
        for seg in energy.iter_mut() {
            let mut acc = 0.0f64;
            for _ in 0..step {
                let x = f64::from(samples[frame * channels + ch]);
                let y = highpass.tick(&filters[1], shelf.tick(&filters[0], x));
                acc += y * y;
                frame += 1;
            }
            *seg += weight * acc;
        }
        debug_assert_eq!(frame, used);
    }
    (energy, step)
}

fn lufs(mean_square: f64) -> f64 {
    LOUDNESS_OFFSET + 10.0 * mean_square.log10()
}

/// Gated integrated loudness (LUFS) of interleaved `samples`.
///
/// Returns `None` for an empty layout, input shorter than one 400 ms block, or
/// when every block falls below the gates (e.g. digital silence).
pub fn integrated_loudness(samples: &[f32], channels: usize, rate: u32) -> Option<f64> {
    if channels == 0 || rate == 0 {
        return None;
    }
    let (seg, step) = segment_energies(samples, channels, rate);
    if seg.len() < 4 {
        return None;
    }
    let block_len = (4 * step) as f64;
    // 400 ms blocks = 4 consecutive 100 ms segments, hop 100 ms (75 % overlap).
    let blocks: Vec<f64> = seg
        .windows(4)
        .map(|w| w.iter().sum::<f64>() / block_len)
        .collect();

    let abs_threshold = 10f64.powf((ABSOLUTE_GATE_LUFS - LOUDNESS_OFFSET) / 10.0);
    let (sum, count) = blocks
        .iter()
        .filter(|&&z| z > abs_threshold)
        .fold((0.0, 0usize), |(s, c), &z| (s + z, c + 1));
    if count == 0 {
        return None;
    }
    let relative_gate = lufs(sum / count as f64) + RELATIVE_GATE_LU;
    let rel_threshold = 10f64.powf((relative_gate - LOUDNESS_OFFSET) / 10.0);
    let threshold = abs_threshold.max(rel_threshold);
    let (sum, count) = blocks
        .iter()
        .filter(|&&z| z > threshold)
        .fold((0.0, 0usize), |(s, c), &z| (s + z, c + 1));
    if count == 0 {
        return None;
    }
    Some(lufs(sum / count as f64))
}

/// Maximum short-term loudness (3 s window, 100 ms hop, no gating) in LUFS.
/// `None` when the input is shorter than 3 s or completely silent.
pub fn short_term_max(samples: &[f32], channels: usize, rate: u32) -> Option<f64> {
    if channels == 0 || rate == 0 {
        return None;
    }
    let (seg, step) = segment_energies(samples, channels, rate);
    if seg.len() < 30 {
        return None;
    }
    let window = (30 * step) as f64;
    let max = seg
        .windows(30)
        .map(|w| w.iter().sum::<f64>() / window)
        .fold(0.0f64, f64::max);
    (max > 0.0).then(|| lufs(max))
}

/// Oversampling factor of the true-peak meter.
const TP_FACTOR: usize = 4;
/// Taps per polyphase branch.
const TP_TAPS: usize = 48;
/// Index of the tap that multiplies the "current" sample x[n].
const TP_CENTER: usize = TP_TAPS / 2 - 1;

/// Polyphase branches for the fractional positions 1/4, 2/4, 3/4 (position 0
/// is the sample itself). Tap `k` multiplies x[n + k − TP_CENTER].
struct TruePeakKernel {
    phases: [[f32; TP_TAPS]; TP_FACTOR - 1],
    /// Largest Σ|h| over the branches: a bound on the interpolation gain.
    l1: f32,
}

/// Zeroth-order modified Bessel function (power series), for the Kaiser window.
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

fn true_peak_kernel() -> TruePeakKernel {
    const BETA: f64 = 7.0;
    let half_span = TP_TAPS as f64 / 2.0;
    let i0_beta = bessel_i0(BETA);
    let mut phases = [[0.0f32; TP_TAPS]; TP_FACTOR - 1];
    let mut l1 = 0.0f32;
    for (p, phase) in phases.iter_mut().enumerate() {
        let frac = (p + 1) as f64 / TP_FACTOR as f64;
        let mut taps = [0.0f64; TP_TAPS];
        for (k, tap) in taps.iter_mut().enumerate() {
            // Distance between the interpolated instant and the input sample.
            let u = frac - (k as f64 - TP_CENTER as f64);
            let sinc = if u == 0.0 {
                1.0
            } else {
                (PI * u).sin() / (PI * u)
            };
            let r = (u / half_span).clamp(-1.0, 1.0);
            let window = bessel_i0(BETA * (1.0 - r * r).sqrt()) / i0_beta;
            *tap = sinc * window;
        }
        // Unity DC gain per branch.
        let dc: f64 = taps.iter().sum();
        for (dst, &t) in phase.iter_mut().zip(taps.iter()) {
            *dst = (t / dc) as f32;
        }
        l1 = l1.max(phase.iter().map(|h| h.abs()).sum());
    }
    TruePeakKernel { phases, l1 }
}

/// Frames processed per chunk when skipping regions that cannot reach a bound.
const TP_CHUNK: usize = 64;

/// One channel, zero-padded so every frame has a full window of neighbours.
fn padded_channel(samples: &[f32], channels: usize, ch: usize) -> Vec<f32> {
    let frames = samples.len() / channels;
    let mut x = vec![0.0f32; frames + TP_TAPS];
    for (i, dst) in x[TP_CENTER..TP_CENTER + frames].iter_mut().enumerate() {
        *dst = samples[i * channels + ch];
    }
    x
}

#[inline]
fn dot(h: &[f32; TP_TAPS], x: &[f32]) -> f32 {
    let x = &x[..TP_TAPS];
    let mut acc = [0.0f32; 8];
    for (hc, xc) in h.chunks_exact(8).zip(x.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += hc[i] * xc[i];
        }
    }
    acc.iter().sum()
}

/// Runs `visit(frame, |interpolated|)` for every oversampled point between a
/// frame and the next, skipping chunks whose bound (local max · Σ|h|) is not
/// above `floor()`.
fn scan_intersample(
    x: &[f32],
    frames: usize,
    kernel: &TruePeakKernel,
    mut floor: impl FnMut() -> f32,
    mut visit: impl FnMut(usize, f32),
) {
    let mut start = 0;
    while start < frames {
        let end = (start + TP_CHUNK).min(frames);
        let local = x[start..end + TP_TAPS - 1]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        if local * kernel.l1 > floor() {
            for n in start..end {
                let w = &x[n..n + TP_TAPS];
                for h in &kernel.phases {
                    visit(n, dot(h, w).abs());
                }
            }
        }
        start = end;
    }
}

/// True peak in dBTP: the largest magnitude of the 4× oversampled signal over
/// all channels. `f64::NEG_INFINITY` for silence or empty input.
pub fn true_peak_dbtp(samples: &[f32], channels: usize, _rate: u32) -> f64 {
    if channels == 0 {
        return f64::NEG_INFINITY;
    }
    let frames = samples.len() / channels;
    let mut peak = samples[..frames * channels]
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    if peak == 0.0 {
        return f64::NEG_INFINITY;
    }
    let kernel = true_peak_kernel();
    for ch in 0..channels {
        let x = padded_channel(samples, channels, ch);
        let best = std::cell::Cell::new(peak);
        scan_intersample(
            &x,
            frames,
            &kernel,
            || best.get(),
            |_, v| {
                if v > best.get() {
                    best.set(v);
                }
            },
        );
        peak = best.get();
    }
    20.0 * f64::from(peak).log10()
}

/// Per-frame peak envelope including inter-sample peaks: element `n` is the
/// largest magnitude, over all channels, of the sample at frame `n` and of the
/// 4× oversampled points between frames `n` and `n + 1`.
///
/// Interpolation is only evaluated where it could exceed `floor` (linear
/// amplitude); elsewhere the plain sample magnitude is reported. Pass `0.0` for
/// an exact envelope everywhere.
pub fn true_peak_envelope(samples: &[f32], channels: usize, floor: f32) -> Vec<f32> {
    if channels == 0 {
        return Vec::new();
    }
    let frames = samples.len() / channels;
    let mut env: Vec<f32> = samples
        .chunks_exact(channels)
        .map(|f| f.iter().fold(0.0f32, |m, v| m.max(v.abs())))
        .collect();
    let kernel = true_peak_kernel();
    for ch in 0..channels {
        let x = padded_channel(samples, channels, ch);
        scan_intersample(
            &x,
            frames,
            &kernel,
            || floor,
            |n, v| {
                if v > env[n] {
                    env[n] = v;
                }
            },
        );
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, amp: f64, phase: f64, rate: u32, seconds: f64) -> Vec<f32> {
        let n = (seconds * f64::from(rate)).round() as usize;
        (0..n)
            .map(|i| (amp * (2.0 * PI * freq * i as f64 / f64::from(rate) + phase).sin()) as f32)
            .collect()
    }

    fn stereo(left: &[f32], right: &[f32]) -> Vec<f32> {
        left.iter().zip(right).flat_map(|(&l, &r)| [l, r]).collect()
    }

    #[test]
    fn k_weighting_matches_bs1770_table_at_48k() {
        let [s, h] = k_weighting(48_000);
        assert!((s.b0 - 1.535_124_859_586_97).abs() < 1e-9);
        assert!((s.b1 + 2.691_696_189_406_38).abs() < 1e-9);
        assert!((s.b2 - 1.198_392_810_852_85).abs() < 1e-9);
        assert!((s.a1 + 1.690_659_293_182_41).abs() < 1e-9);
        assert!((s.a2 - 0.732_480_774_215_85).abs() < 1e-9);
        assert!((h.a1 + 1.990_047_454_833_98).abs() < 1e-9);
        assert!((h.a2 - 0.990_072_250_366_21).abs() < 1e-9);
    }

    #[test]
    fn full_scale_997hz_on_one_channel_is_minus_3_01() {
        for rate in [48_000u32, 44_100] {
            let tone = sine(997.0, 1.0, 0.0, rate, 5.0);
            let silent = vec![0.0f32; tone.len()];
            let l = integrated_loudness(&stereo(&tone, &silent), 2, rate).unwrap();
            assert!((l + 3.01).abs() < 0.05, "rate {rate}: {l}");
        }
    }

    #[test]
    fn full_scale_997hz_on_both_channels_is_zero() {
        let tone = sine(997.0, 1.0, 0.0, 48_000, 5.0);
        let l = integrated_loudness(&stereo(&tone, &tone), 2, 48_000).unwrap();
        assert!(l.abs() < 0.05, "{l}");
        // Mono: a single channel with weight 1.
        let m = integrated_loudness(&tone, 1, 48_000).unwrap();
        assert!((m + 3.01).abs() < 0.05, "{m}");
    }

    #[test]
    fn minus_20_dbfs_sine_is_minus_20_lufs() {
        let tone = sine(997.0, 0.1, 0.0, 48_000, 5.0);
        let l = integrated_loudness(&stereo(&tone, &tone), 2, 48_000).unwrap();
        assert!((l + 20.0).abs() < 0.1, "{l}");
    }

    #[test]
    fn quiet_tail_is_relatively_gated() {
        // 10 s at −20 dBFS (−20 LUFS on both channels) then 10 s at −60 dBFS.
        // Blocks start every 100 ms: 197 blocks in 20 s. Blocks 0..=96 lie
        // entirely in the loud part (power P), blocks 97, 98, 99 straddle the
        // step with 3/4, 1/2, 1/4 of their length loud, blocks 100.. are quiet
        // (power P·1e-4). The absolute-gated mean ≈ P·100/197 ≈ −22.9 LUFS, so
        // the relative gate sits at ≈ −32.9 LUFS: all quiet blocks (−60) drop
        // out, the three transition blocks (−21.2, −23.0, −26.0) stay. The
        // result is 10·log10((97 + 0.75 + 0.5 + 0.25)/100 · P) ≈ −20 − 0.066.
        // Without relative gating the answer would be ≈ −22.9 LUFS.
        let rate = 48_000;
        let mut tone = sine(997.0, 0.1, 0.0, rate, 10.0);
        tone.extend(sine(997.0, 0.001, 0.0, rate, 10.0));
        let l = integrated_loudness(&stereo(&tone, &tone), 2, rate).unwrap();
        let expected = -20.0 + 10.0 * (98.5f64 / 100.0).log10();
        assert!((l - expected).abs() < 0.05, "{l} vs {expected}");
    }

    #[test]
    fn silence_and_short_input_give_none() {
        assert_eq!(integrated_loudness(&vec![0.0; 96_000 * 2], 2, 48_000), None);
        let short = sine(997.0, 0.5, 0.0, 48_000, 0.3);
        assert_eq!(integrated_loudness(&short, 1, 48_000), None);
        // −80 dBFS is below the absolute gate.
        let faint = sine(997.0, 1e-4, 0.0, 48_000, 2.0);
        assert_eq!(integrated_loudness(&faint, 1, 48_000), None);
    }

    #[test]
    fn short_term_max_finds_the_loud_part() {
        let rate = 48_000;
        let mut tone = sine(997.0, 0.01, 0.0, rate, 5.0);
        tone.extend(sine(997.0, 0.1, 0.0, rate, 4.0));
        let st = short_term_max(&stereo(&tone, &tone), 2, rate).unwrap();
        assert!((st + 20.0).abs() < 0.1, "{st}");
        assert_eq!(short_term_max(&tone[..rate as usize], 1, rate), None);
    }

    #[test]
    fn true_peak_sees_intersample_peak() {
        let rate = 48_000;
        // f = fs/4 with phase π/4: every sample is ±0.707 but the waveform peaks at 1.0.
        let tone = sine(f64::from(rate) / 4.0, 1.0, PI / 4.0, rate, 1.0);
        let sample_peak = tone.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((sample_peak - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-3);
        let tp = true_peak_dbtp(&stereo(&tone, &tone), 2, rate);
        assert!(tp.abs() < 0.2, "{tp}");
        // A low-frequency sine is read at its sample peak.
        let low = sine(100.0, 0.5, 0.0, rate, 1.0);
        let tp = true_peak_dbtp(&low, 1, rate);
        assert!((tp - 20.0 * 0.5f64.log10()).abs() < 0.05, "{tp}");
        assert_eq!(true_peak_dbtp(&[0.0; 100], 2, rate), f64::NEG_INFINITY);
    }

    #[test]
    fn envelope_contains_intersample_peaks() {
        let rate = 48_000;
        let tone = sine(f64::from(rate) / 4.0, 0.5, PI / 4.0, rate, 0.1);
        let env = true_peak_envelope(&tone, 1, 0.0);
        assert_eq!(env.len(), tone.len());
        let mid = env[env.len() / 2];
        assert!((mid - 0.5).abs() < 0.02, "{mid}");
        // With a floor above any possible peak, only sample magnitudes remain.
        let env = true_peak_envelope(&tone, 1, 10.0);
        assert!((env[env.len() / 2] - 0.3536).abs() < 1e-3);
    }
}
