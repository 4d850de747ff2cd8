//! Score description: scales, instruments and the mood scores.

use super::*;

const MAJOR: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
const MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 10];
const HARMONIC_MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 11];
const DORIAN: [i32; 7] = [0, 2, 3, 5, 7, 9, 10];
const MIXOLYDIAN: [i32; 7] = [0, 2, 4, 5, 7, 9, 10];

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Wave {
    Saw,
    Triangle,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Inst {
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
pub(super) struct PadSpec {
    pub(super) wave: Wave,
    pub(super) cutoff_hz: f32,
    pub(super) attack_s: f32,
    pub(super) release_s: f32,
    pub(super) level: f32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct LineSpec {
    /// 16 steps per bar: `r` root, `f` fifth, `t` third, `o` octave, `-` tie,
    /// `.` rest.
    pub(super) pattern: &'static str,
    pub(super) inst: Inst,
    /// Semitones relative to the mood's root.
    pub(super) transpose: i32,
    pub(super) level: f32,
    pub(super) pan: f32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct ArpSpec {
    /// Steps (16ths) between notes.
    pub(super) stride: usize,
    pub(super) inst: Inst,
    pub(super) transpose: i32,
    pub(super) level: f32,
    /// Dotted-eighth echo on the opposite side.
    pub(super) echo: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct MelodySpec {
    pub(super) inst: Inst,
    pub(super) transpose: i32,
    pub(super) level: f32,
    /// 0..1: how busy the rhythm is.
    pub(super) density: f32,
    pub(super) pan: f32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct DrumSpec {
    /// 16-step patterns: `x` accent, `o` soft, `.` rest.
    pub(super) kick: &'static str,
    pub(super) snare: &'static str,
    pub(super) hat: &'static str,
    pub(super) kick_inst: Inst,
    pub(super) level: f32,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct MoodSpec {
    pub(super) name: &'static str,
    pub(super) bpm: f64,
    /// MIDI note of the tonic around the pad register.
    pub(super) root: i32,
    pub(super) scale: [i32; 7],
    /// Scale degree (0-based) of the chord of each bar, cycled.
    pub(super) progression: &'static [usize],
    pub(super) pad: PadSpec,
    pub(super) bass: Option<LineSpec>,
    pub(super) ostinato: Option<LineSpec>,
    pub(super) arp: Option<ArpSpec>,
    pub(super) melody: Option<MelodySpec>,
    pub(super) drums: Option<DrumSpec>,
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

pub(super) fn spec_for(mood: &str) -> Result<&'static MoodSpec, UnknownMood> {
    let wanted = mood.trim();
    SPECS
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(wanted))
        .ok_or_else(|| UnknownMood {
            requested: mood.to_string(),
        })
}

pub(super) fn info_for(spec: &MoodSpec, rate: u32) -> LoopInfo {
    let frames_per_beat = ((60.0 * f64::from(rate) / spec.bpm).round() as usize).max(1);
    LoopInfo {
        bpm: 60.0 * f64::from(rate) / frames_per_beat as f64,
        bars: BARS,
        beats_per_bar: BEATS_PER_BAR,
        frames_per_beat,
        frames: (BARS * BEATS_PER_BAR) as usize * frames_per_beat,
    }
}
