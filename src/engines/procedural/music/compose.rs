//! Composition: score → note events.

use super::*;

#[derive(Debug, Clone, Copy)]
pub(super) struct Note {
    pub(super) start: usize,
    /// Frames the key is held; the release tail follows.
    pub(super) gate: usize,
    pub(super) freq: f32,
    pub(super) amp: f32,
    /// −1 (left) … 1 (right).
    pub(super) pan: f32,
    pub(super) inst: Inst,
    /// Seed of the note's private noise generator.
    pub(super) noise_seed: u64,
    /// Optional echo: the same rendered note again `delay` frames later, scaled
    /// by `gain` and panned to `pan` (rendered once, mixed twice).
    pub(super) echo: Option<Echo>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Echo {
    pub(super) delay: usize,
    pub(super) gain: f32,
    pub(super) pan: f32,
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
                let amp = line.level * accent * (1.0 + 0.06 * self.rng.bipolar_f32());
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
                * (1.0 + 0.1 * self.rng.bipolar_f32());
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
            let choice = ((self.rng.unit_f32() * reach) as usize).min(RHYTHMS.len() - 1);
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
                    let amp = drums.level * level * vel * (1.0 + 0.08 * self.rng.bipolar_f32());
                    // Midi is irrelevant for drums (fixed tunings in the renderer).
                    self.push(bar * spb + i, 1, 60, amp, pan, inst);
                }
            }
        }
    }
}

pub(super) fn compose(spec: &MoodSpec, info: LoopInfo, seed: u64) -> Vec<Note> {
    // Mix the mood name into the seed so moods sharing a seed still differ.
    let name_hash = spec.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut c = Composer {
        spec,
        info,
        rng: SplitMix64::from_state(seed ^ name_hash),
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
