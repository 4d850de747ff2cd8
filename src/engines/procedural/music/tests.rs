//! Unit tests of the music synthesiser.

use super::*;

const RATE: u32 = 48_000;

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Fraction of energy in the first difference: a crude brightness measure.
fn brightness(x: &[f32]) -> f64 {
    let diff: f64 = x.windows(3).map(|w| f64::from(w[2] - w[0]).powi(2)).sum();
    let energy: f64 = x.iter().map(|&s| f64::from(s).powi(2)).sum();
    diff / energy
}

#[test]
fn helpers_are_accurate() {
    for i in 0..1000 {
        let p = i as f32 / 997.0 - 0.3;
        let exact = (std::f64::consts::TAU * f64::from(p)).sin();
        assert!((f64::from(sin_turns(p)) - exact).abs() < 1e-5, "{p}");
    }
    for y in [0.0, 1e-6, 0.01, 0.5, 1.0, 3.0, 20.0] {
        let rel = (exp_neg(y) - (-y).exp()).abs() / (-y).exp();
        assert!(rel < 1e-11, "{y}: {rel}");
    }
    assert!((midi_hz(69) - 440.0).abs() < 1e-4);
    assert!((midi_hz(60) - 261.6256).abs() < 1e-3);
    assert!((midi_hz(33) - 55.0).abs() < 1e-4);
}

#[test]
fn deterministic_per_seed() {
    let a = synthesize_loop("upbeat", RATE, 42).unwrap();
    let b = synthesize_loop("upbeat", RATE, 42).unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    let c = synthesize_loop("upbeat", RATE, 43).unwrap();
    assert_eq!(a.len(), c.len());
    let diff = a.iter().zip(&c).filter(|(x, y)| x != y).count();
    assert!(
        diff > a.len() / 10,
        "seeds 42 and 43 differ in only {diff} samples"
    );
}

#[test]
fn every_mood_is_audible_bounded_and_loops_in_whole_beats() {
    for &mood in moods() {
        let info = loop_info(mood, RATE).unwrap();
        let l = synthesize_loop(mood, RATE, 7).unwrap();
        assert_eq!(l.len(), info.frames * 2, "{mood}");
        let beats = info.frames as f64 / (60.0 * f64::from(RATE) / info.bpm);
        assert!(
            (beats - beats.round()).abs() < 1e-9,
            "{mood}: {beats} beats"
        );
        assert_eq!(beats.round() as u32, info.bars * info.beats_per_bar);
        assert!(info.bars == 4 || info.bars == 8);
        let peak = l.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak <= 0.9 && peak > 0.2, "{mood}: peak {peak}");
        let r = 20.0 * rms(&l).log10();
        assert!((-30.0..=-12.0).contains(&r), "{mood}: rms {r:.1} dBFS");
        // Both channels carry signal and are not identical (panning).
        let left: Vec<f32> = l.iter().step_by(2).copied().collect();
        let right: Vec<f32> = l.iter().skip(1).step_by(2).copied().collect();
        assert!(rms(&left) > 0.03 && rms(&right) > 0.03, "{mood}");
        assert!(left != right, "{mood}");
    }
}

#[test]
fn loops_join_without_clicks() {
    for &mood in moods() {
        for rate in [RATE, 44_100] {
            let l = synthesize_loop(mood, rate, 3).unwrap();
            let frames = l.len() / 2;
            for ch in 0..2 {
                let x: Vec<f32> = l.iter().skip(ch).step_by(2).copied().collect();
                let mut jumps: Vec<f32> = x.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
                jumps.sort_by(f32::total_cmp);
                let p999 = jumps[(jumps.len() as f64 * 0.999) as usize];
                // The loop concatenated with itself: last frame → first frame.
                let seam = (x[0] - x[frames - 1]).abs();
                assert!(
                    seam <= p999,
                    "{mood}@{rate} ch{ch}: seam {seam} > p99.9 {p999}"
                );
                assert!(seam < 0.05, "{mood}@{rate} ch{ch}: seam {seam}");
            }
        }
    }
}

#[test]
fn moods_differ() {
    let tempos: Vec<f64> = moods()
        .iter()
        .map(|m| loop_info(m, RATE).unwrap().bpm)
        .collect();
    let calm = loop_info("calm", RATE).unwrap();
    let upbeat = loop_info("upbeat", RATE).unwrap();
    assert!(upbeat.bpm > calm.bpm * 1.5, "{tempos:?}");
    // Drums and plucks make upbeat much brighter than the pad-only calm loop.
    let bc = brightness(&synthesize_loop("calm", RATE, 1).unwrap());
    let bu = brightness(&synthesize_loop("upbeat", RATE, 1).unwrap());
    assert!(bu > 2.0 * bc, "calm {bc:.4} upbeat {bu:.4}");
    // All loops are pairwise different.
    let loops: Vec<Vec<f32>> = moods()
        .iter()
        .map(|m| synthesize_loop(m, RATE, 1).unwrap())
        .collect();
    for i in 0..loops.len() {
        for j in i + 1..loops.len() {
            assert_ne!(loops[i], loops[j]);
        }
    }
}

#[test]
fn unknown_mood_lists_known_ones() {
    let err = synthesize_loop("grumpy", RATE, 0).unwrap_err();
    assert_eq!(err.requested, "grumpy");
    let msg = err.to_string();
    assert!(msg.contains("grumpy"));
    for m in moods() {
        assert!(msg.contains(m), "{msg}");
    }
    assert!(loop_info("nope", RATE).is_err());
    assert!(synthesize_loop(" Calm ", RATE, 0).is_ok());
    assert!(moods().len() >= 8);
}

#[test]
fn bed_tiles_and_fades() {
    let l = synthesize_loop("tense", RATE, 9).unwrap();
    let frames = l.len() / 2;
    let seconds = 2.5 * frames as f64 / f64::from(RATE) + 0.01234;
    let bed = render_bed(&l, RATE, seconds, 2.0);
    assert_eq!(bed.len(), 2 * (seconds * f64::from(RATE)).round() as usize);
    assert_eq!(&bed[2 * frames..2 * frames + 2000], &l[..2000]);
    assert_eq!(bed[0], 0.0);
    assert_eq!(bed[1], 0.0);
    let n = bed.len();
    assert!(bed[n - 1] == 0.0 && bed[n - 2] == 0.0);
    // Fade-out region is quieter than the body.
    let tail = &bed[n - 2 * RATE as usize / 2..];
    assert!(rms(tail) < 0.5 * rms(&bed[2 * frames..4 * frames]));
    let short = synthesize("calm", RATE, 3.0, 1).unwrap();
    assert_eq!(short.len(), 2 * 3 * RATE as usize);
    assert!(render_bed(&[], RATE, 1.0, 0.5).iter().all(|&s| s == 0.0));
}
