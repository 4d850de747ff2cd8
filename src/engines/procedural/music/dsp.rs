//! Deterministic arithmetic helpers: PRNG, sines, exponentials, pitches and oscillators.

/// The generator shared with the model crates (splitmix64: identical everywhere).
pub(super) use reelsmith_kit::noise::SplitMix64;

/// sin(2π·p) for `p` in turns, via quarter-wave reduction and a degree-9 odd
/// Taylor polynomial (|error| < 4e-6). Arithmetic only, hence deterministic.
pub(super) fn sin_turns(p: f32) -> f32 {
    let p = p - p.floor();
    let x = if p < 0.25 {
        p
    } else if p < 0.75 {
        0.5 - p
    } else {
        p - 1.0
    };
    let t = x * std::f32::consts::TAU;
    let t2 = t * t;
    t * (1.0
        + t2 * (-1.0 / 6.0 + t2 * (1.0 / 120.0 + t2 * (-1.0 / 5040.0 + t2 * (1.0 / 362_880.0)))))
}

/// e^(−y) for y ≥ 0: argument halving, 6th-order series, repeated squaring.
pub(super) fn exp_neg(y: f64) -> f64 {
    let mut y = y.max(0.0);
    let mut squarings = 0;
    while y > 1.0 / 32.0 && squarings < 64 {
        y *= 0.5;
        squarings += 1;
    }
    let mut r = 1.0
        - y * (1.0
            - y * (0.5 - y * (1.0 / 6.0 - y * (1.0 / 24.0 - y * (1.0 / 120.0 - y / 720.0)))));
    for _ in 0..squarings {
        r *= r;
    }
    r
}

/// Per-sample multiplier of an exponential decay with time constant `tau_s`.
pub(super) fn decay_per_sample(tau_s: f32, rate: f32) -> f32 {
    exp_neg(1.0 / (f64::from(tau_s) * f64::from(rate))) as f32
}

/// Coefficient of a one-pole low-pass with cutoff `hz`.
pub(super) fn lowpass_coef(hz: f32, rate: f32) -> f32 {
    (1.0 - exp_neg(std::f64::consts::TAU * f64::from(hz) / f64::from(rate))) as f32
}

/// Equal-tempered frequency of MIDI note `m` (A4 = 69 = 440 Hz).
pub(super) fn midi_hz(m: i32) -> f32 {
    const SEMITONE: f64 = 1.059_463_094_359_295_3;
    let rel = m - 69;
    let mut f = 440.0f64;
    for _ in 0..rel.rem_euclid(12) {
        f *= SEMITONE;
    }
    let octaves = rel.div_euclid(12);
    for _ in 0..octaves.max(0) {
        f *= 2.0;
    }
    for _ in 0..(-octaves).max(0) {
        f *= 0.5;
    }
    f as f32
}

/// 3t² − 2t³ on [0, 1], clamped.
pub(super) fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// PolyBLEP residual for band-limiting the saw discontinuity.
fn poly_blep(t: f32, dt: f32) -> f32 {
    if t < dt {
        let x = t / dt;
        x + x - x * x - 1.0
    } else if t > 1.0 - dt {
        let x = (t - 1.0) / dt;
        x * x + x + x + 1.0
    } else {
        0.0
    }
}

pub(super) fn saw(phase: f32, dt: f32) -> f32 {
    2.0 * phase - 1.0 - poly_blep(phase, dt)
}

/// Triangle starting at 0 and rising (same phase convention as the sine).
pub(super) fn triangle(phase: f32) -> f32 {
    let p = phase + 0.25;
    let p = p - p.floor();
    1.0 - 4.0 * (p - 0.5).abs()
}

#[inline]
pub(super) fn advance(phase: &mut f32, dt: f32) {
    *phase += dt;
    if *phase >= 1.0 {
        *phase -= 1.0;
    }
}
