//! Front-end tests: mel filterbank shape and STFT frequency placement.

use reelsmith_whisper::audio::{
    log_mel_spectrogram, mel_filters, power_spectrogram, HOP_LENGTH, N_BINS, N_FFT, SAMPLE_RATE,
};

#[test]
fn filterbank_has_80_ascending_triangles() {
    let f = mel_filters(80, N_FFT, SAMPLE_RATE);
    assert_eq!(f.len(), 80 * N_BINS);
    let mut last_peak = 0usize;
    for m in 0..80 {
        let row = &f[m * N_BINS..(m + 1) * N_BINS];
        let sum: f32 = row.iter().sum();
        assert!(sum > 0.0, "filter {m} is empty");
        assert!(row.iter().all(|&w| w >= 0.0));
        let peak = (0..N_BINS)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        assert!(
            peak >= last_peak,
            "filter {m} peaks at {peak} before {last_peak}"
        );
        last_peak = peak;
    }
    // Slaney normalisation: each triangle has area 2 / width in Hz, so the
    // low (narrow, linear-scale) filters are the tallest: 2 / (3 · 200/3 Hz)
    // times the 40 Hz bin spacing at the peak ⇒ weights around 0.01–0.03.
    let first_peak = f[..N_BINS].iter().copied().fold(0.0, f32::max);
    assert!(first_peak > 0.005 && first_peak < 0.05, "{first_peak}");
    // Last filter ends at the Nyquist bin.
    assert!(f[79 * N_BINS + N_BINS - 2] > 0.0);
}

#[test]
fn stft_of_pure_tone_peaks_at_its_bin() {
    // 1 kHz lies exactly on bin 1000 / (16000 / 400) = 25.
    let tone: Vec<f32> = (0..SAMPLE_RATE)
        .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / SAMPLE_RATE as f32).sin())
        .collect();
    let (power, frames) = power_spectrogram(&tone);
    assert_eq!(frames, SAMPLE_RATE / HOP_LENGTH);
    for f in [5, frames / 2, frames - 5] {
        let row = &power[f * N_BINS..(f + 1) * N_BINS];
        let peak = (0..N_BINS)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        assert_eq!(peak, 25, "frame {f}");
        // A Hann-windowed sinusoid of amplitude 1: |X| = N/4 at the bin.
        let expected = (N_FFT as f32 / 4.0).powi(2);
        assert!((row[25] / expected - 1.0).abs() < 0.01, "{}", row[25]);
        assert!(row[40] < row[25] * 1e-6);
    }
}

#[test]
fn log_mel_is_normalised() {
    let tone: Vec<f32> = (0..SAMPLE_RATE / 2)
        .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / SAMPLE_RATE as f32).sin())
        .collect();
    let mel = log_mel_spectrogram(&tone, 80, 0);
    assert_eq!(mel.n_frames, tone.len() / HOP_LENGTH);
    let max = mel.data.iter().copied().fold(f32::MIN, f32::max);
    let min = mel.data.iter().copied().fold(f32::MAX, f32::min);
    // Dynamic range is clamped to 8 (log10 units) and scaled by 1/4.
    assert!(max - min <= 2.0 + 1e-5, "{min}..{max}");
}
