//! Procedural background-music synthesiser: the embedded default music engine.
//!
//! Pure synthesis, no samples. Every mood is a small score description (tempo,
//! key, scale, chord progression, instrument parts, drum patterns) from which a
//! seeded PRNG derives the melodic details (arpeggio shapes, melody, accents).
//!
//! Determinism: the same `(mood, rate, seed)` gives bit-identical output on every
//! machine. The render path uses only IEEE-exact operations (`+ − × ÷`, `sqrt`,
//! `floor`); sines, exponentials and pitch ratios come from the small
//! arithmetic-only helpers below instead of the platform's libm.
//!
//! Seamless looping: every note is rendered from its own start (own oscillator
//! phases, filter and noise state) into a buffer longer than the loop, and the
//! overhang is folded back onto the start, so the loop joins to itself exactly
//! as any two consecutive samples inside it do.

use std::fmt;

/// Stereo channels of everything produced here.
const CHANNELS: usize = 2;
/// 16th-note steps per beat.
const STEPS_PER_BEAT: usize = 4;
/// Beats per bar (all moods are in 4/4).
const BEATS_PER_BAR: u32 = 4;
/// Bars per loop.
const BARS: u32 = 8;
/// Loop loudness target (RMS, linear): about −18 dBFS.
const TARGET_RMS: f64 = 0.125;
/// Hard cap on the loop's sample peak.
const PEAK_CAP: f64 = 0.89;

/// Error for a mood name that is not in [`moods`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMood {
    /// The name that was asked for.
    pub requested: String,
}

impl fmt::Display for UnknownMood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown music mood '{}' (known moods: {})",
            self.requested,
            moods().join(", ")
        )
    }
}

impl std::error::Error for UnknownMood {}

/// Timing of a mood's loop at a given sample rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopInfo {
    /// Effective tempo: exactly `60 · rate / frames_per_beat`.
    pub bpm: f64,
    /// Bars in the loop.
    pub bars: u32,
    /// Beats per bar.
    pub beats_per_bar: u32,
    /// Frames per beat (integer, so the loop is a whole number of beats).
    pub frames_per_beat: usize,
    /// Frames in the loop (`bars · beats_per_bar · frames_per_beat`).
    pub frames: usize,
}

// ---------------------------------------------------------------------------
// Deterministic arithmetic helpers
// ---------------------------------------------------------------------------

/// splitmix64: tiny, fast and identical everywhere.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    fn bipolar(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }

    /// Uniform integer in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }
}

/// sin(2π·p) for `p` in turns, via quarter-wave reduction and a degree-9 odd
/// Taylor polynomial (|error| < 4e-6). Arithmetic only, hence deterministic.
fn sin_turns(p: f32) -> f32 {
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
fn exp_neg(y: f64) -> f64 {
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
fn decay_per_sample(tau_s: f32, rate: f32) -> f32 {
    exp_neg(1.0 / (f64::from(tau_s) * f64::from(rate))) as f32
}

/// Coefficient of a one-pole low-pass with cutoff `hz`.
fn lowpass_coef(hz: f32, rate: f32) -> f32 {
    (1.0 - exp_neg(std::f64::consts::TAU * f64::from(hz) / f64::from(rate))) as f32
}

/// Equal-tempered frequency of MIDI note `m` (A4 = 69 = 440 Hz).
fn midi_hz(m: i32) -> f32 {
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
fn smoothstep(t: f32) -> f32 {
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

fn saw(phase: f32, dt: f32) -> f32 {
    2.0 * phase - 1.0 - poly_blep(phase, dt)
}

/// Triangle starting at 0 and rising (same phase convention as the sine).
fn triangle(phase: f32) -> f32 {
    let p = phase + 0.25;
    let p = p - p.floor();
    1.0 - 4.0 * (p - 0.5).abs()
}

#[inline]
fn advance(phase: &mut f32, dt: f32) {
    *phase += dt;
    if *phase >= 1.0 {
        *phase -= 1.0;
    }
}

// ---------------------------------------------------------------------------
// Score description
// ---------------------------------------------------------------------------

const MAJOR: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
const MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 10];
const HARMONIC_MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 11];
const DORIAN: [i32; 7] = [0, 2, 3, 5, 7, 9, 10];
const MIXOLYDIAN: [i32; 7] = [0, 2, 4, 5, 7, 9, 10];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Wave {
    Saw,
    Triangle,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Inst {
    /// Three detuned oscillators through a 2-pole low-pass, slow envelope.
    Pad(Wave),
    /// Filtered saw plus sine sub.
    Bass,
    /// Plucked triangle/saw with exponential decay (arpeggios, piano-ish melody).
    Pluck,
    /// Bright short saw pluck for ostinatos.
    Ostinato,
    /// Inharmonic sine partials with a long decay.
    Bell,
    /// Sustained soft saw/triangle lead with delayed vibrato.
    Lead,
    Kick,
    /// Deep drum with a longer body (epic/heroic "taiko").
    Tom,
    Snare,
    Hat,
}

#[derive(Debug, Clone, Copy)]
struct PadSpec {
    wave: Wave,
    cutoff_hz: f32,
    attack_s: f32,
    release_s: f32,
    level: f32,
}

#[derive(Debug, Clone, Copy)]
struct LineSpec {
    /// 16 steps per bar: `r` root, `f` fifth, `t` third, `o` octave, `-` tie,
    /// `.` rest.
    pattern: &'static str,
    inst: Inst,
    /// Semitones relative to the mood's root.
    transpose: i32,
    level: f32,
    pan: f32,
}

#[derive(Debug, Clone, Copy)]
struct ArpSpec {
    /// Steps (16ths) between notes.
    stride: usize,
    inst: Inst,
    transpose: i32,
    level: f32,
    /// Dotted-eighth echo on the opposite side.
    echo: bool,
}

#[derive(Debug, Clone, Copy)]
struct MelodySpec {
    inst: Inst,
    transpose: i32,
    level: f32,
    /// 0..1: how busy the rhythm is.
    density: f32,
    pan: f32,
}

#[derive(Debug, Clone, Copy)]
struct DrumSpec {
    /// 16-step patterns: `x` accent, `o` soft, `.` rest.
    kick: &'static str,
    snare: &'static str,
    hat: &'static str,
    kick_inst: Inst,
    level: f32,
}

#[derive(Debug, Clone, Copy)]
struct MoodSpec {
    name: &'static str,
    bpm: f64,
    /// MIDI note of the tonic around the pad register.
    root: i32,
    scale: [i32; 7],
    /// Scale degree (0-based) of the chord of each bar, cycled.
    progression: &'static [usize],
    pad: PadSpec,
    bass: Option<LineSpec>,
    ostinato: Option<LineSpec>,
    arp: Option<ArpSpec>,
    melody: Option<MelodySpec>,
    drums: Option<DrumSpec>,
}

const SPECS: &[MoodSpec] = &[
    MoodSpec {
        name: "calm",
        bpm: 72.0,
        root: 60,
        scale: MAJOR,
        progression: &[0, 3, 5, 4],
        pad: PadSpec {
            wave: Wave::Triangle,
            cutoff_hz: 1400.0,
            attack_s: 1.2,
            release_s: 1.5,
            level: 0.5,
        },
        bass: Some(LineSpec {
            pattern: "r-------f-------",
            inst: Inst::Bass,
            transpose: -24,
            level: 0.35,
            pan: 0.0,
        }),
        ostinato: None,
        arp: Some(ArpSpec {
            stride: 2,
            inst: Inst::Bell,
            transpose: 12,
            level: 0.12,
            echo: true,
        }),
        melody: None,
        drums: None,
    },
    MoodSpec {
        name: "upbeat",
        bpm: 120.0,
        root: 62,
        scale: MAJOR,
        progression: &[0, 4, 5, 3],
        pad: PadSpec {
            wave: Wave::Saw,
            cutoff_hz: 2200.0,
            attack_s: 0.05,
            release_s: 0.3,
            level: 0.22,
        },
        bass: Some(LineSpec {
            pattern: "r-.rr-.rr-.rf-.o",
            inst: Inst::Bass,
            transpose: -24,
            level: 0.45,
            pan: 0.0,
        }),
        ostinato: None,
        arp: Some(ArpSpec {
            stride: 1,
            inst: Inst::Pluck,
            transpose: 12,
            level: 0.1,
            echo: false,
        }),
        melody: Some(MelodySpec {
            inst: Inst::Lead,
            transpose: 12,
            level: 0.16,
            density: 0.6,
            pan: 0.1,
        }),
        drums: Some(DrumSpec {
            kick: "x...x...x...x...",
            snare: "....x.......x...",
            hat: "o.x.o.x.o.x.o.xo",
            kick_inst: Inst::Kick,
            level: 0.8,
        }),
    },
    MoodSpec {
        name: "epic",
        bpm: 90.0,
        root: 50,
        scale: MINOR,
        progression: &[0, 5, 2, 6],
        pad: PadSpec {
            wave: Wave::Saw,
            cutoff_hz: 1600.0,
            attack_s: 0.3,
            release_s: 0.8,
            level: 0.3,
        },
        bass: Some(LineSpec {
            pattern: "r-------r---r---",
            inst: Inst::Bass,
            transpose: -12,
            level: 0.4,
            pan: 0.0,
        }),
        ostinato: Some(LineSpec {
            pattern: "rrfrrfrrrrfrrfro",
            inst: Inst::Ostinato,
            transpose: 0,
            level: 0.1,
            pan: -0.35,
        }),
        arp: None,
        melody: Some(MelodySpec {
            inst: Inst::Lead,
            transpose: 12,
            level: 0.15,
            density: 0.3,
            pan: 0.15,
        }),
        drums: Some(DrumSpec {
            kick: "x.....x...x.....",
            snare: "....x.......x..o",
            hat: "..o...o...o...o.",
            kick_inst: Inst::Tom,
            level: 0.9,
        }),
    },
    MoodSpec {
        name: "tense",
        bpm: 100.0,
        root: 57,
        scale: HARMONIC_MINOR,
        progression: &[0, 0, 5, 4],
        pad: PadSpec {
            wave: Wave::Saw,
            cutoff_hz: 700.0,
            attack_s: 0.8,
            release_s: 1.0,
            level: 0.35,
        },
        bass: Some(LineSpec {
            pattern: "r.r.r.r.r.r.r.r.",
            inst: Inst::Bass,
            transpose: -24,
            level: 0.4,
            pan: 0.0,
        }),
        ostinato: Some(LineSpec {
            pattern: "rorfrorfrorfrorf",
            inst: Inst::Ostinato,
            transpose: -12,
            level: 0.1,
            pan: 0.3,
        }),
        arp: None,
        melody: None,
        drums: Some(DrumSpec {
            kick: "x.......x.......",
            snare: "................",
            hat: "o.o.o.o.o.o.o.o.",
            kick_inst: Inst::Kick,
            level: 0.6,
        }),
    },
    MoodSpec {
        name: "playful",
        bpm: 125.0,
        root: 65,
        scale: MAJOR,
        progression: &[0, 5, 1, 4],
        pad: PadSpec {
            wave: Wave::Triangle,
            cutoff_hz: 1800.0,
            attack_s: 0.05,
            release_s: 0.2,
            level: 0.2,
        },
        bass: Some(LineSpec {
            pattern: "r...f...r...f.o.",
            inst: Inst::Pluck,
            transpose: -24,
            level: 0.5,
            pan: 0.0,
        }),
        ostinato: None,
        arp: None,
        melody: Some(MelodySpec {
            inst: Inst::Pluck,
            transpose: 12,
            level: 0.22,
            density: 0.75,
            pan: -0.15,
        }),
        drums: Some(DrumSpec {
            kick: "x.....x.x.......",
            snare: "....x.......x...",
            hat: "x.x.x.x.x.x.x.xx",
            kick_inst: Inst::Kick,
            level: 0.55,
        }),
    },
    MoodSpec {
        name: "mysterious",
        bpm: 80.0,
        root: 62,
        scale: DORIAN,
        progression: &[0, 3, 0, 6],
        pad: PadSpec {
            wave: Wave::Triangle,
            cutoff_hz: 900.0,
            attack_s: 1.5,
            release_s: 2.0,
            level: 0.5,
        },
        bass: Some(LineSpec {
            pattern: "r---------------",
            inst: Inst::Bass,
            transpose: -24,
            level: 0.3,
            pan: 0.0,
        }),
        ostinato: None,
        arp: Some(ArpSpec {
            stride: 3,
            inst: Inst::Bell,
            transpose: 12,
            level: 0.14,
            echo: true,
        }),
        melody: None,
        drums: None,
    },
    MoodSpec {
        name: "sad",
        bpm: 64.0,
        root: 57,
        scale: MINOR,
        progression: &[0, 3, 5, 4],
        pad: PadSpec {
            wave: Wave::Triangle,
            cutoff_hz: 1000.0,
            attack_s: 1.0,
            release_s: 1.5,
            level: 0.45,
        },
        bass: Some(LineSpec {
            pattern: "r-------f-------",
            inst: Inst::Bass,
            transpose: -24,
            level: 0.3,
            pan: 0.0,
        }),
        ostinato: None,
        arp: None,
        melody: Some(MelodySpec {
            inst: Inst::Pluck,
            transpose: 12,
            level: 0.2,
            density: 0.3,
            pan: 0.1,
        }),
        drums: None,
    },
    MoodSpec {
        name: "heroic",
        bpm: 96.0,
        root: 58,
        scale: MIXOLYDIAN,
        progression: &[0, 6, 3, 0],
        pad: PadSpec {
            wave: Wave::Saw,
            cutoff_hz: 2400.0,
            attack_s: 0.1,
            release_s: 0.5,
            level: 0.28,
        },
        bass: Some(LineSpec {
            pattern: "r-.r-.r-r-.r-.f-",
            inst: Inst::Bass,
            transpose: -24,
            level: 0.4,
            pan: 0.0,
        }),
        ostinato: None,
        arp: None,
        melody: Some(MelodySpec {
            inst: Inst::Lead,
            transpose: 12,
            level: 0.17,
            density: 0.5,
            pan: 0.0,
        }),
        drums: Some(DrumSpec {
            kick: "x.......x.......",
            snare: "....x..o....x.oo",
            hat: "x.x.x.x.x.x.x.x.",
            kick_inst: Inst::Tom,
            level: 0.75,
        }),
    },
];

/// Names accepted by [`synthesize_loop`] / [`synthesize`].
pub fn moods() -> &'static [&'static str] {
    const NAMES: &[&str] = &[
        "calm",
        "upbeat",
        "epic",
        "tense",
        "playful",
        "mysterious",
        "sad",
        "heroic",
    ];
    NAMES
}

fn spec_for(mood: &str) -> Result<&'static MoodSpec, UnknownMood> {
    let wanted = mood.trim();
    SPECS
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(wanted))
        .ok_or_else(|| UnknownMood {
            requested: mood.to_string(),
        })
}

fn info_for(spec: &MoodSpec, rate: u32) -> LoopInfo {
    let frames_per_beat = ((60.0 * f64::from(rate) / spec.bpm).round() as usize).max(1);
    LoopInfo {
        bpm: 60.0 * f64::from(rate) / frames_per_beat as f64,
        bars: BARS,
        beats_per_bar: BEATS_PER_BAR,
        frames_per_beat,
        frames: (BARS * BEATS_PER_BAR) as usize * frames_per_beat,
    }
}

/// Loop timing of `mood` at `rate` (the loop produced by [`synthesize_loop`]
/// has exactly `frames` stereo frames).
pub fn loop_info(mood: &str, rate: u32) -> Result<LoopInfo, UnknownMood> {
    Ok(info_for(spec_for(mood)?, rate))
}

// ---------------------------------------------------------------------------
// Composition: score → note events
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Note {
    start: usize,
    /// Frames the key is held; the release tail follows.
    gate: usize,
    freq: f32,
    amp: f32,
    /// −1 (left) … 1 (right).
    pan: f32,
    inst: Inst,
    /// Seed of the note's private noise generator.
    noise_seed: u64,
    /// Optional echo: the same rendered note again `delay` frames later, scaled
    /// by `gain` and panned to `pan` (rendered once, mixed twice).
    echo: Option<Echo>,
}

#[derive(Debug, Clone, Copy)]
struct Echo {
    delay: usize,
    gain: f32,
    pan: f32,
}

struct Composer<'a> {
    spec: &'a MoodSpec,
    info: LoopInfo,
    rng: SplitMix64,
    notes: Vec<Note>,
}

impl Composer<'_> {
    fn step_frame(&self, step: usize) -> usize {
        step * self.info.frames_per_beat / STEPS_PER_BEAT
    }

    fn steps_per_bar(&self) -> usize {
        BEATS_PER_BAR as usize * STEPS_PER_BEAT
    }

    /// MIDI note of scale index `i` (may be negative or beyond one octave).
    fn scale_note(&self, i: i32) -> i32 {
        self.spec.root + self.spec.scale[i.rem_euclid(7) as usize] + 12 * i.div_euclid(7)
    }

    fn chord_degree(&self, bar: usize) -> i32 {
        self.spec.progression[bar % self.spec.progression.len()] as i32
    }

    fn push(&mut self, step: usize, steps: usize, midi: i32, amp: f32, pan: f32, inst: Inst) {
        let start = self.step_frame(step);
        let gate = (self.step_frame(step + steps) - start).max(1);
        let noise_seed = self.rng.next_u64();
        self.notes.push(Note {
            start,
            gate,
            freq: midi_hz(midi),
            amp,
            pan,
            inst,
            noise_seed,
            echo: None,
        });
    }

    fn pads(&mut self) {
        let pad = self.spec.pad;
        let spb = self.steps_per_bar();
        for bar in 0..BARS as usize {
            let degree = self.chord_degree(bar);
            // Close voicing around the root: each chord tone in the octave
            // nearest to the tonic, plus the chord root an octave below.
            let center = self.spec.root + 4;
            let mut voices = [0i32; 4];
            for (k, v) in voices.iter_mut().take(3).enumerate() {
                let mut m = self.scale_note(degree + 2 * k as i32);
                while m > center + 6 {
                    m -= 12;
                }
                while m < center - 6 {
                    m += 12;
                }
                *v = m;
            }
            voices[3] = self.scale_note(degree) - 12;
            let pans = [-0.45, 0.0, 0.45, 0.1];
            for (k, &m) in voices.iter().enumerate() {
                let amp = pad.level * if k == 3 { 0.6 } else { 1.0 };
                self.push(bar * spb, spb, m, amp, pans[k], Inst::Pad(pad.wave));
            }
        }
    }

    fn line(&mut self, line: LineSpec) {
        let pattern = line.pattern.as_bytes();
        let spb = self.steps_per_bar();
        for bar in 0..BARS as usize {
            let degree = self.chord_degree(bar);
            for (i, &c) in pattern.iter().enumerate() {
                let offset = match c {
                    b'r' => 0,
                    b't' => 2,
                    b'f' => 4,
                    b'o' => 7,
                    _ => continue,
                };
                let len = 1 + pattern[i + 1..].iter().take_while(|&&c| c == b'-').count();
                let midi = self.scale_note(degree + offset) + line.transpose;
                let accent = if i % 4 == 0 { 1.0 } else { 0.8 };
                let amp = line.level * accent * (1.0 + 0.06 * self.rng.bipolar());
                self.push(bar * spb + i, len, midi, amp, line.pan, line.inst);
            }
        }
    }

    fn arpeggio(&mut self, arp: ArpSpec) {
        let spb = self.steps_per_bar();
        let total_steps = BARS as usize * spb;
        let mut shape = 0;
        let mut idx = 0usize;
        let mut step = 0;
        while step < total_steps {
            let bar = step / spb;
            if step % (4 * spb) == 0 {
                shape = self.rng.below(4);
                idx = 0;
            }
            let degree = self.chord_degree(bar);
            let tones = [0, 2, 4, 7].map(|o| self.scale_note(degree + o) + arp.transpose);
            let order: usize = match shape {
                0 => idx % 4,
                1 => 3 - idx % 4,
                2 => [0, 1, 2, 3, 2, 1][idx % 6],
                _ => self.rng.below(4),
            };
            idx += 1;
            let amp = arp.level
                * (if step % 4 == 0 { 1.0 } else { 0.8 })
                * (1.0 + 0.1 * self.rng.bipolar());
            let pan = 0.35 * sin_turns(step as f32 / 32.0);
            self.push(step, arp.stride, tones[order], amp, pan, arp.inst);
            if arp.echo {
                // Dotted-eighth echo on the other side.
                let delay = self.step_frame(step + 3) - self.step_frame(step);
                if let Some(last) = self.notes.last_mut() {
                    last.echo = Some(Echo {
                        delay,
                        gain: 0.4,
                        pan: -pan * 1.5,
                    });
                }
            }
            step += arp.stride;
        }
    }

    fn melody(&mut self, mel: MelodySpec) {
        const RHYTHMS: [&[usize]; 6] = [
            &[0, 8],
            &[0, 6, 8],
            &[0, 4, 8, 12],
            &[0, 4, 6, 8, 12],
            &[0, 3, 6, 8, 12, 14],
            &[0, 2, 4, 6, 8, 10, 12, 14],
        ];
        let spb = self.steps_per_bar();
        // Phrase A over 4 bars, repeated as A' (last bar re-rolled) over bars 5–8.
        let mut phrase: Vec<Vec<(usize, usize, i32)>> = Vec::with_capacity(BARS as usize);
        let mut pos = 2i32;
        for bar in 0..BARS as usize {
            if (4..7).contains(&bar) {
                let copy = phrase[bar - 4].clone();
                phrase.push(copy);
                continue;
            }
            let reach = 2.0 + mel.density * (RHYTHMS.len() as f32 - 2.0);
            let choice = ((self.rng.unit() * reach) as usize).min(RHYTHMS.len() - 1);
            let onsets = RHYTHMS[choice];
            let degree = self.chord_degree(bar);
            let mut notes = Vec::with_capacity(onsets.len());
            for (k, &on) in onsets.iter().enumerate() {
                let end = onsets.get(k + 1).copied().unwrap_or(spb);
                if on == 0 {
                    // Downbeat: nearest chord tone.
                    let candidates = [degree, degree + 2, degree + 4, degree + 7, degree + 9];
                    pos = candidates
                        .iter()
                        .copied()
                        .min_by_key(|c| (c - pos).abs())
                        .unwrap_or(degree);
                } else {
                    if self.rng.chance(0.15) {
                        continue;
                    }
                    pos += [-2, -1, -1, 0, 1, 1, 2][self.rng.below(7)];
                }
                pos = pos.clamp(-2, 9);
                let len = if end - on > 4 && self.rng.chance(0.3) {
                    end - on - 2
                } else {
                    end - on
                };
                notes.push((on, len, pos));
            }
            phrase.push(notes);
        }
        for (bar, notes) in phrase.iter().enumerate() {
            for &(on, len, p) in notes {
                let midi = self.scale_note(p) + mel.transpose;
                let amp = mel.level * (if on % 8 == 0 { 1.0 } else { 0.85 });
                self.push(bar * spb + on, len, midi, amp, mel.pan, mel.inst);
            }
        }
    }

    fn drums(&mut self, drums: DrumSpec) {
        let spb = self.steps_per_bar();
        let parts = [
            (drums.kick, drums.kick_inst, 1.0f32, 0.0f32),
            (drums.snare, Inst::Snare, 0.7, 0.08),
            (drums.hat, Inst::Hat, 0.3, 0.3),
        ];
        for bar in 0..BARS as usize {
            for &(pattern, inst, level, pan) in &parts {
                for (i, &c) in pattern.as_bytes().iter().enumerate() {
                    let vel = match c {
                        b'x' => 1.0,
                        b'o' => 0.6,
                        _ => continue,
                    };
                    let amp = drums.level * level * vel * (1.0 + 0.08 * self.rng.bipolar());
                    // Midi is irrelevant for drums (fixed tunings in the renderer).
                    self.push(bar * spb + i, 1, 60, amp, pan, inst);
                }
            }
        }
    }
}

fn compose(spec: &MoodSpec, info: LoopInfo, seed: u64) -> Vec<Note> {
    // Mix the mood name into the seed so moods sharing a seed still differ.
    let name_hash = spec.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut c = Composer {
        spec,
        info,
        rng: SplitMix64(seed ^ name_hash),
        notes: Vec::with_capacity(1024),
    };
    c.pads();
    if let Some(bass) = spec.bass {
        c.line(bass);
    }
    if let Some(ost) = spec.ostinato {
        c.line(ost);
    }
    if let Some(arp) = spec.arp {
        c.arpeggio(arp);
    }
    if let Some(mel) = spec.melody {
        c.melody(mel);
    }
    if let Some(drums) = spec.drums {
        c.drums(drums);
    }
    c.notes
}

// ---------------------------------------------------------------------------
// Rendering: note events → samples
// ---------------------------------------------------------------------------

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
            let mut rng = SplitMix64(note.noise_seed);
            let c = lowpass_coef(if hat { 7000.0 } else { 1500.0 }, rate);
            let noise_decay = decay_per_sample(if hat { 0.03 } else { 0.09 }, rate);
            let body_decay = decay_per_sample(0.05, rate);
            let (mut lp1, mut lp2, mut nd, mut bd, mut ph) =
                (0.0f32, 0.0f32, 1.0f32, 1.0f32, 0.0f32);
            let attack = ms(0.001);
            for (t, o) in out.iter_mut().enumerate() {
                let w = rng.bipolar();
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

fn render(spec: &MoodSpec, info: LoopInfo, notes: &[Note], rate: u32) -> Vec<f32> {
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

/// Synthesises one seamless stereo loop (interleaved, `loop_info(mood).frames`
/// frames: 8 bars of 4/4) for `mood`. Same inputs → bit-identical output.
pub fn synthesize_loop(mood: &str, rate: u32, seed: u64) -> Result<Vec<f32>, UnknownMood> {
    let spec = spec_for(mood)?;
    if rate == 0 {
        return Ok(Vec::new());
    }
    let info = info_for(spec, rate);
    let notes = compose(spec, info, seed);
    Ok(render(spec, info, &notes, rate))
}

/// Tiles the stereo loop to exactly `round(seconds · rate)` frames, with a
/// 0.5 s equal-power fade-in and an equal-power fade-out over `fade_out_s`.
pub fn render_bed(loop_: &[f32], rate: u32, seconds: f64, fade_out_s: f32) -> Vec<f32> {
    let frames = (seconds.max(0.0) * f64::from(rate)).round() as usize;
    let mut out = vec![0.0f32; frames * CHANNELS];
    let loop_len = loop_.len() - loop_.len() % CHANNELS;
    if loop_len == 0 {
        return out;
    }
    for (dst, src) in out
        .chunks_mut(loop_len)
        .zip(std::iter::repeat(&loop_[..loop_len]))
    {
        dst.copy_from_slice(&src[..dst.len()]);
    }
    let fade_in = ((0.5 * f64::from(rate)).round() as usize).min(frames);
    let fade_out =
        ((f64::from(fade_out_s.max(0.0)) * f64::from(rate)).round() as usize).min(frames);
    for i in 0..fade_in {
        let g = sin_turns(0.25 * i as f32 / fade_in as f32);
        out[i * CHANNELS..(i + 1) * CHANNELS]
            .iter_mut()
            .for_each(|s| *s *= g);
    }
    for j in 0..fade_out {
        let i = frames - 1 - j;
        let g = sin_turns(0.25 * j as f32 / fade_out as f32);
        out[i * CHANNELS..(i + 1) * CHANNELS]
            .iter_mut()
            .for_each(|s| *s *= g);
    }
    out
}

/// Convenience: [`synthesize_loop`] then [`render_bed`] with a fade-out of
/// min(3 s, a quarter of the duration).
pub fn synthesize(mood: &str, rate: u32, seconds: f64, seed: u64) -> Result<Vec<f32>, UnknownMood> {
    let loop_ = synthesize_loop(mood, rate, seed)?;
    let fade_out = (seconds / 4.0).clamp(0.0, 3.0) as f32;
    Ok(render_bed(&loop_, rate, seconds, fade_out))
}

#[cfg(test)]
mod tests {
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
}
