//! Rendering: note events → samples.

use super::*;

/// Frames over which every note's tail is ramped to exactly zero.
const END_RAMP: usize = 64;

/// Total rendered length (gate + tail) of a note in frames.
fn note_length(note: &Note, pad: &PadSpec, rate: f32) -> usize {
    let secs = |s: f32| (s * rate) as usize;
    match note.inst {
        Inst::Pad(_) => note.gate + secs(pad.release_s),
        Inst::Bass => note.gate + secs(0.08),
        Inst::Pluck => note.gate + secs(0.25),
        Inst::Ostinato => note.gate + secs(0.06),
        Inst::Bell => note.gate + secs(1.0),
        Inst::Lead => note.gate + secs(0.15),
        Inst::Kick => secs(0.45),
        Inst::Tom => secs(0.9),
        Inst::Snare => secs(0.3),
        Inst::Hat => secs(0.12),
    }
}

/// Attack (smoothstep) / hold / release envelope; the release starts from the
/// level reached at the gate, so short notes never jump.
fn env_ar(t: usize, gate: usize, attack: usize, release: usize) -> f32 {
    let att = |t: usize| {
        if t >= attack {
            1.0
        } else {
            smoothstep(t as f32 / attack as f32)
        }
    };
    if t < gate {
        att(t)
    } else {
        att(gate) * (1.0 - smoothstep((t - gate) as f32 / release as f32))
    }
}

/// Renders one note (mono) into `out[..len]`, starting from zero state.
fn render_note(note: &Note, pad: &PadSpec, rate: f32, out: &mut [f32]) {
    let len = out.len();
    let f = note.freq;
    let ms = |s: f32| ((s * rate) as usize).max(1);
    match note.inst {
        Inst::Pad(wave) => {
            let attack = ms(pad.attack_s);
            let release = ms(pad.release_s);
            let detune = [0.9962f32, 1.0, 1.0041];
            let dts = detune.map(|d| f * d / rate);
            let mut ph = [0.0f32, 0.37, 0.71];
            let c = lowpass_coef(pad.cutoff_hz, rate);
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for (t, o) in out.iter_mut().enumerate() {
                let mut x = 0.0;
                for k in 0..3 {
                    x += match wave {
                        Wave::Saw => saw(ph[k], dts[k]),
                        Wave::Triangle => triangle(ph[k]),
                    };
                    advance(&mut ph[k], dts[k]);
                }
                s1 += c * (x - s1);
                s2 += c * (s1 - s2);
                *o = s2 * (1.0 / 3.0) * env_ar(t, note.gate, attack, release);
            }
        }
        Inst::Bass => {
            let dt = f / rate;
            let (mut ph, mut sub) = (0.0f32, 0.0f32);
            let c = lowpass_coef((f * 4.0).min(900.0), rate);
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            let decay = decay_per_sample(0.35, rate);
            let mut d = 1.0f32;
            let (attack, release) = (ms(0.005), ms(0.08));
            for (t, o) in out.iter_mut().enumerate() {
                let x = 0.6 * saw(ph, dt) + 0.8 * sin_turns(sub);
                advance(&mut ph, dt);
                advance(&mut sub, dt);
                s1 += c * (x - s1);
                s2 += c * (s1 - s2);
                d *= decay;
                *o = s2 * (0.65 + 0.35 * d) * env_ar(t, note.gate, attack, release);
            }
        }
        Inst::Pluck | Inst::Ostinato => {
            let dt = f / rate;
            let mut ph = 0.0f32;
            let bright = note.inst == Inst::Ostinato;
            let tau = if bright { 0.12 } else { 0.35 };
            let decay = decay_per_sample(tau, rate);
            let c = lowpass_coef(
                if bright {
                    2500.0
                } else {
                    (f * 6.0).min(5000.0)
                },
                rate,
            );
            let mut s = 0.0f32;
            let mut d = 1.0f32;
            let release = ms(if bright { 0.06 } else { 0.25 });
            let attack = ms(0.003);
            for (t, o) in out.iter_mut().enumerate() {
                let x = if bright {
                    saw(ph, dt)
                } else {
                    triangle(ph) + 0.25 * saw(ph, dt)
                };
                advance(&mut ph, dt);
                s += c * (x - s);
                d *= decay;
                *o = s * d * env_ar(t, note.gate, attack, release);
            }
        }
        Inst::Bell => {
            let partials = [
                (1.0f32, 1.0f32, 1.6f32),
                (2.76, 0.35, 0.5),
                (5.4, 0.15, 0.2),
            ];
            let mut ph = [0.0f32; 3];
            let mut d = [1.0f32; 3];
            let dts = partials.map(|(r, _, _)| f * r / rate);
            let decays = partials.map(|(_, _, tau)| decay_per_sample(tau, rate));
            let (attack, release) = (ms(0.004), ms(1.0));
            for (t, o) in out.iter_mut().enumerate() {
                let mut x = 0.0;
                for k in 0..3 {
                    // Partials that have died away (< −80 dB) are skipped.
                    if d[k] > 1e-4 {
                        x += partials[k].1 * d[k] * sin_turns(ph[k]);
                        advance(&mut ph[k], dts[k]);
                        d[k] *= decays[k];
                    }
                }
                *o = x * env_ar(t, note.gate, attack, release);
            }
        }
        Inst::Lead => {
            let dt = f / rate;
            let mut ph = 0.0f32;
            let mut lfo = 0.0f32;
            let lfo_dt = 5.0 / rate;
            let vib_delay = ms(0.2);
            let c = lowpass_coef(2400.0, rate);
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            let (attack, release) = (ms(0.02), ms(0.15));
            for (t, o) in out.iter_mut().enumerate() {
                let depth = if t > vib_delay {
                    0.004 * smoothstep((t - vib_delay) as f32 / vib_delay as f32)
                } else {
                    0.0
                };
                let inc = dt * (1.0 + depth * sin_turns(lfo));
                advance(&mut lfo, lfo_dt);
                let x = 0.5 * saw(ph, inc) + 0.7 * triangle(ph);
                advance(&mut ph, inc);
                s1 += c * (x - s1);
                s2 += c * (s1 - s2);
                *o = s2 * env_ar(t, note.gate, attack, release);
            }
        }
        Inst::Kick | Inst::Tom => {
            let tom = note.inst == Inst::Tom;
            let (f_hi, f_lo) = if tom { (110.0, 55.0) } else { (150.0, 45.0) };
            let pitch_decay = decay_per_sample(if tom { 0.06 } else { 0.035 }, rate);
            let amp_decay = decay_per_sample(if tom { 0.35 } else { 0.2 }, rate);
            let (mut ph, mut pd, mut ad) = (0.0f32, 1.0f32, 1.0f32);
            let attack = ms(0.0015);
            for (t, o) in out.iter_mut().enumerate() {
                let freq = f_lo + (f_hi - f_lo) * pd;
                let a = if t < attack {
                    t as f32 / attack as f32
                } else {
                    1.0
                };
                *o = sin_turns(ph) * ad * a;
                advance(&mut ph, freq / rate);
                pd *= pitch_decay;
                ad *= amp_decay;
            }
        }
        Inst::Snare | Inst::Hat => {
            let hat = note.inst == Inst::Hat;
            let mut rng = SplitMix64::from_state(note.noise_seed);
            let c = lowpass_coef(if hat { 7000.0 } else { 1500.0 }, rate);
            let noise_decay = decay_per_sample(if hat { 0.03 } else { 0.09 }, rate);
            let body_decay = decay_per_sample(0.05, rate);
            let (mut lp1, mut lp2, mut nd, mut bd, mut ph) =
                (0.0f32, 0.0f32, 1.0f32, 1.0f32, 0.0f32);
            let attack = ms(0.001);
            for (t, o) in out.iter_mut().enumerate() {
                let w = rng.bipolar_f32();
                lp1 += c * (w - lp1);
                let hp = w - lp1;
                lp2 += c * (hp - lp2);
                let hp2 = hp - lp2;
                let a = if t < attack {
                    t as f32 / attack as f32
                } else {
                    1.0
                };
                *o = a * if hat {
                    0.8 * hp2 * nd
                } else {
                    0.6 * hp * nd + 0.7 * sin_turns(ph) * bd
                };
                advance(&mut ph, 185.0 / rate);
                nd *= noise_decay;
                bd *= body_decay;
            }
        }
    }
    // Guarantee an exact zero at the end of the tail.
    let ramp = END_RAMP.min(len);
    for (k, o) in out[len - ramp..].iter_mut().enumerate() {
        *o *= (ramp - k) as f32 / (ramp + 1) as f32;
    }
}

/// Equal-power pan gains for pan in −1..1.
fn pan_gains(pan: f32) -> (f32, f32) {
    let p = (pan.clamp(-1.0, 1.0) + 1.0) * 0.125; // turns in 0..0.25
    (sin_turns(p + 0.25), sin_turns(p))
}

/// Adds mono `src` at frame `start` of the stereo `buf`, panned and scaled.
fn mix_in(buf: &mut [f32], start: usize, src: &[f32], pan: f32, amp: f32) {
    let (gl, gr) = pan_gains(pan);
    let (gl, gr) = (gl * amp, gr * amp);
    let dst = &mut buf[start * CHANNELS..(start + src.len()) * CHANNELS];
    for (frame, &x) in dst.chunks_exact_mut(CHANNELS).zip(src) {
        frame[0] += x * gl;
        frame[1] += x * gr;
    }
}

pub(super) fn render(spec: &MoodSpec, info: LoopInfo, notes: &[Note], rate: u32) -> Vec<f32> {
    let fr = rate as f32;
    let loop_frames = info.frames;
    let bar_frames = info.frames_per_beat * info.beats_per_bar as usize;
    let lengths: Vec<usize> = notes
        .iter()
        .map(|n| note_length(n, &spec.pad, fr))
        .collect();
    let end = notes
        .iter()
        .zip(&lengths)
        .map(|(n, &l)| n.start + l + n.echo.map_or(0, |e| e.delay))
        .max()
        .unwrap_or(0);
    let total = end.max(loop_frames + bar_frames);
    let mut buf = vec![0.0f32; total * CHANNELS];
    let mut scratch = vec![0.0f32; lengths.iter().copied().max().unwrap_or(0)];
    for (note, &len) in notes.iter().zip(&lengths) {
        let out = &mut scratch[..len];
        render_note(note, &spec.pad, fr, out);
        mix_in(&mut buf, note.start, out, note.pan, note.amp);
        if let Some(e) = note.echo {
            mix_in(
                &mut buf,
                note.start + e.delay,
                out,
                e.pan,
                note.amp * e.gain,
            );
        }
    }
    // Fold everything that rings past the loop end back onto the start.
    let (head, overhang) = buf.split_at_mut(loop_frames * CHANNELS);
    for chunk in overhang.chunks(loop_frames * CHANNELS) {
        for (d, &s) in head.iter_mut().zip(chunk) {
            *d += s;
        }
    }
    buf.truncate(loop_frames * CHANNELS);

    // Level: RMS target with a peak cap.
    let energy: f64 = buf.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (energy / buf.len().max(1) as f64).sqrt();
    let peak = f64::from(buf.iter().fold(0.0f32, |m, s| m.max(s.abs())));
    if rms > 0.0 && peak > 0.0 {
        let gain = (TARGET_RMS / rms).min(PEAK_CAP / peak) as f32;
        buf.iter_mut().for_each(|s| *s *= gain);
    }
    buf
}
