//! Scoring and selection: the analysis of each recording becomes a score over time (loudness
//! over the room's baseline, sudden sounds, motion, cut rate, flashes; black and silence count
//! against), and the best windows become highlights — snapped to shot boundaries, padded, never
//! overlapping, the top N for the compilation and the best M of those for shorts. The result
//! is `selection.json`, which a user may edit and render again from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::analyze::{Analysis, AudioLevels, FrameSample};
use crate::media::scan::RecordingInfo;

/// Seconds per step of the score grid.
pub const STEP: f64 = 0.5;

/// How much each signal counts (the channel's `[highlights.weights]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Loudness over the recording's rolling baseline.
    pub loudness: f64,
    /// Sudden sounds (a jump of the level over the last half second).
    pub onset: f64,
    /// Motion energy over the recording's typical motion.
    pub motion: f64,
    /// Cuts per second nearby (replays, kill cams, menus flashing by).
    pub cuts: f64,
    /// Flash frames (explosions, muzzle flashes, hit markers).
    pub flash: f64,
    /// Black frames (loading screens, fades): subtracted.
    pub black: f64,
    /// Silence (peak below 0.04, auto-editor's threshold): subtracted.
    pub silence: f64,
    /// Excited words or laughter in the player's voice (transcript).
    pub speech: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            loudness: 1.0,
            onset: 0.6,
            motion: 0.8,
            cuts: 0.3,
            flash: 0.3,
            black: 1.5,
            silence: 0.5,
            speech: 0.8,
        }
    }
}

/// What to select.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectParams {
    /// Highlights in the compilation.
    pub count: usize,
    /// Target seconds per highlight.
    pub length: f64,
    /// Shorts (the best of the highlights).
    pub shorts: usize,
    /// Longest short, seconds (YouTube Shorts: 60).
    pub short_max: f64,
    /// Seconds added before and after a window before it is snapped.
    pub pad: f64,
    /// Least gap between two highlights of one recording, seconds.
    pub gap: f64,
    pub weights: Weights,
}

impl Default for SelectParams {
    fn default() -> Self {
        Self {
            count: 5,
            length: 12.0,
            shorts: 3,
            short_max: 60.0,
            pad: 0.5,
            gap: 2.0,
            weights: Weights::default(),
        }
    }
}

/// The per-step signals of one recording, each in 0..≈1.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    pub loud: Vec<f64>,
    /// dB over the baseline, for the reasons.
    pub loud_db: Vec<f64>,
    pub onset: Vec<f64>,
    pub motion: Vec<f64>,
    pub motion_raw: Vec<f64>,
    pub cuts: Vec<f64>,
    pub flash: Vec<f64>,
    pub black: Vec<f64>,
    pub silent: Vec<f64>,
    pub speech: Vec<f64>,
}

fn db(x: f32) -> f64 {
    20.0 * (x.max(1e-5) as f64).log10()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The audio's loudness, its rolling baseline (median over ±30 s) and sudden rises, per step.
fn audio_signals(a: &AudioLevels, steps: usize, s: &mut Signals) {
    let per = ((STEP / a.hop).round() as usize).max(1);
    let level: Vec<f64> = (0..steps)
        .map(|i| {
            let h = &a.rms[(i * per).min(a.rms.len())..((i + 1) * per).min(a.rms.len())];
            if h.is_empty() {
                -100.0
            } else {
                let ms = h.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / h.len() as f64;
                10.0 * ms.max(1e-10).log10()
            }
        })
        .collect();
    let half = (30.0 / STEP) as usize;
    for i in 0..steps {
        let lo = i.saturating_sub(half);
        let hi = (i + half + 1).min(steps);
        let mut w: Vec<f64> = level[lo..hi].to_vec();
        let base = percentile(&mut w, 0.5);
        let over = level[i] - base;
        s.loud_db[i] = over;
        s.loud[i] = ((over - 3.0) / 12.0).clamp(0.0, 1.5);
        let peak = a.peak[(i * per).min(a.peak.len())..((i + 1) * per).min(a.peak.len())]
            .iter()
            .fold(0f32, |m, &x| m.max(x));
        s.silent[i] = if peak < 0.04 { 1.0 } else { 0.0 };
    }
    // Onsets: a hop's level against the mean of the half second before it.
    let back = ((0.5 / a.hop).round() as usize).max(1);
    let hop_db: Vec<f64> = a.rms.iter().map(|&x| db(x)).collect();
    let mut acc = 0.0;
    for (h, &v) in hop_db.iter().enumerate() {
        if h >= back {
            acc -= hop_db[h - back];
        }
        let prev_mean = if h == 0 { v } else { acc / h.min(back) as f64 };
        acc += v;
        let rise = v - prev_mean;
        let i = h / per;
        if i < steps {
            s.onset[i] = s.onset[i].max(((rise - 6.0) / 12.0).clamp(0.0, 1.0));
        }
    }
}

/// Motion per step: decoded frames where there are some, else the nearest keyframe samples.
fn motion_signals(an: &Analysis, steps: usize, s: &mut Signals) {
    let mut sum = vec![0.0; steps];
    let mut n = vec![0usize; steps];
    let mut add = |f: &FrameSample| {
        if let Some(m) = f.motion {
            let i = ((f.t / STEP) as usize).min(steps.saturating_sub(1));
            sum[i] += m as f64;
            n[i] += 1;
        }
    };
    for sp in &an.spans {
        sp.frames.iter().for_each(&mut add);
    }
    let mut decoded = vec![false; steps];
    for sp in &an.spans {
        for f in &sp.frames {
            decoded[((f.t / STEP) as usize).min(steps.saturating_sub(1))] = true;
        }
    }
    for k in &an.keyframes {
        let i = ((k.t / STEP) as usize).min(steps.saturating_sub(1));
        if !decoded[i] {
            add(k);
        }
    }
    // Steps without a sample take the nearest sample's value (keyframes are seconds apart).
    let mut raw: Vec<Option<f64>> = (0..steps)
        .map(|i| (n[i] > 0).then(|| sum[i] / n[i] as f64))
        .collect();
    let mut last: Option<f64> = None;
    let mut filled = vec![None; steps];
    for i in 0..steps {
        if raw[i].is_some() {
            last = raw[i];
        }
        filled[i] = last;
    }
    last = None;
    for i in (0..steps).rev() {
        if raw[i].is_some() {
            last = raw[i];
        }
        if filled[i].is_none() {
            filled[i] = last;
        }
        raw[i] = filled[i];
    }
    let vals: Vec<f64> = raw.iter().map(|v| v.unwrap_or(0.0)).collect();
    let mut sorted = vals.clone();
    let med = percentile(&mut sorted, 0.5);
    let p90 = percentile(&mut sorted, 0.9);
    let scale = (p90 - med).max(0.05);
    for (i, v) in vals.iter().enumerate() {
        s.motion_raw[i] = *v;
        s.motion[i] = ((v - med) / scale).clamp(-0.5, 1.5);
    }
}

/// The signals of one analysed recording on the [`STEP`] grid.
pub fn signals(an: &Analysis) -> Signals {
    let steps = ((an.info.duration / STEP).ceil() as usize).max(1);
    let z = vec![0.0; steps];
    let mut s = Signals {
        loud: z.clone(),
        loud_db: z.clone(),
        onset: z.clone(),
        motion: z.clone(),
        motion_raw: z.clone(),
        cuts: z.clone(),
        flash: z.clone(),
        black: z.clone(),
        silent: z.clone(),
        speech: z,
    };
    if let Some(a) = &an.audio {
        audio_signals(a, steps, &mut s);
    }
    motion_signals(an, steps, &mut s);
    let fps = an.info.fps.max(1.0);
    let at = |t: f64| ((t / STEP) as usize).min(steps - 1);
    // Cut rate: cuts within ±2 s.
    for c in an.cuts() {
        let t = c as f64 / fps;
        let r = (2.0 / STEP) as usize;
        let i = at(t);
        for j in i.saturating_sub(r)..=(i + r).min(steps - 1) {
            s.cuts[j] = (s.cuts[j] + 1.0 / 3.0).min(1.0);
        }
    }
    for f in an.flashes() {
        let i = at(f as f64 / fps);
        for j in i.saturating_sub(2)..=(i + 2).min(steps - 1) {
            s.flash[j] = 1.0;
        }
    }
    for (a, b) in an.black() {
        let (i, j) = (at(a), at(b));
        for k in i..=j {
            s.black[k] = 1.0;
        }
    }
    s
}

/// The score per step.
pub fn score(s: &Signals, w: &Weights) -> Vec<f64> {
    (0..s.loud.len())
        .map(|i| {
            w.loudness * s.loud[i]
                + w.onset * s.onset[i]
                + w.motion * s.motion[i]
                + w.cuts * s.cuts[i]
                + w.flash * s.flash[i]
                + w.speech * s.speech[i]
                - w.black * s.black[i]
                - w.silence * s.silent[i]
        })
        .collect()
}

/// One chosen highlight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Highlight {
    /// `h1`, `h2`, … in order of score.
    pub id: String,
    /// Index into `Selection::recordings`.
    pub recording: usize,
    /// Seconds in the recording.
    pub start: f64,
    pub end: f64,
    /// The moment that scored best, seconds in the recording (the thumbnail's frame).
    pub peak: f64,
    pub score: f64,
    /// Why it was chosen, strongest first.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Whether each edge sits on a shot boundary (a cut, or the recording's start or end).
    #[serde(default)]
    pub snapped: [bool; 2],
    /// Title and one-line hook (the LLM's or the rules').
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub hook: String,
}

impl Highlight {
    pub fn seconds(&self) -> f64 {
        self.end - self.start
    }
}

/// A vertical short: one highlight, trimmed to at most the short's length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortPick {
    pub highlight: String,
    pub start: f64,
    pub end: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingRef {
    pub path: PathBuf,
    pub key: String,
    pub duration: f64,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    pub has_audio: bool,
}

/// `selection.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    pub version: u32,
    pub recordings: Vec<RecordingRef>,
    /// The compilation's highlights, in the order they play (recording, then time).
    pub highlights: Vec<Highlight>,
    pub shorts: Vec<ShortPick>,
    /// Who ranked and titled them (`rules@1`, `llm/<model>@1`).
    #[serde(default)]
    pub ranker: String,
}

impl Selection {
    /// Checks an edited selection against its recordings: ids unique, windows inside the
    /// recording and at least half a second long, shorts naming highlights and fitting `short_max`.
    pub fn validate(&self, short_max: f64) -> Result<(), String> {
        let mut ids = std::collections::BTreeSet::new();
        for (i, h) in self.highlights.iter().enumerate() {
            let at = format!("highlights[{i}]");
            if !ids.insert(h.id.as_str()) {
                return Err(format!("{at}.id: `{}` is used twice", h.id));
            }
            let Some(r) = self.recordings.get(h.recording) else {
                return Err(format!(
                    "{at}.recording: {} names no recording (there are {})",
                    h.recording,
                    self.recordings.len()
                ));
            };
            if !(h.start >= 0.0 && h.end <= r.duration + 0.05 && h.end - h.start >= 0.5) {
                return Err(format!(
                    "{at}: {:.2}–{:.2} s must lie within 0–{:.2} s of {} and last at least 0.5 s",
                    h.start,
                    h.end,
                    r.duration,
                    r.path.display()
                ));
            }
        }
        for (i, s) in self.shorts.iter().enumerate() {
            let at = format!("shorts[{i}]");
            let Some(h) = self.highlights.iter().find(|h| h.id == s.highlight) else {
                return Err(format!("{at}.highlight: no highlight `{}`", s.highlight));
            };
            let r = &self.recordings[h.recording];
            if !(s.start >= 0.0 && s.end <= r.duration + 0.05 && s.end > s.start) {
                return Err(format!(
                    "{at}: {:.2}–{:.2} s is outside the recording",
                    s.start, s.end
                ));
            }
            if s.end - s.start > short_max + 1e-6 {
                return Err(format!(
                    "{at}: {:.1} s is longer than a short may be ({short_max:.0} s)",
                    s.end - s.start
                ));
            }
        }
        Ok(())
    }
}

fn mmss(t: f64) -> String {
    let t = t.max(0.0);
    let s = t.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A candidate window before ranking.
#[derive(Clone, Debug)]
struct Candidate {
    recording: usize,
    start: f64,
    end: f64,
    peak: f64,
    score: f64,
    reasons: Vec<String>,
    snapped: [bool; 2],
}

/// The boundaries of shots in seconds: the cuts, the start and the end.
fn boundaries(an: &Analysis) -> Vec<f64> {
    let fps = an.info.fps.max(1.0);
    let mut b = vec![0.0];
    b.extend(an.cuts().into_iter().map(|c| c as f64 / fps));
    b.push(an.info.duration);
    b
}

/// The boundary nearest `t` within `[lo, hi]`.
fn nearest(b: &[f64], t: f64, lo: f64, hi: f64) -> Option<f64> {
    b.iter()
        .copied()
        .filter(|&x| x >= lo && x <= hi)
        .min_by(|a, b| (a - t).abs().total_cmp(&(b - t).abs()))
}

/// The best windows of one recording, best first, not overlapping (with `gap` between).
fn candidates(
    an: &Analysis,
    ri: usize,
    p: &SelectParams,
    want: usize,
    sig: &Signals,
) -> Vec<Candidate> {
    let sc = score(sig, &p.weights);
    let steps = sc.len();
    let len = p.length.clamp(1.0, an.info.duration.max(1.0));
    let win = ((len / STEP).round() as usize).clamp(1, steps);
    // Window score: its mean plus half its best step, the mean weighted a little towards 60 %
    // of the window (action builds up to a moment and settles after it), which also decides
    // between windows that hold the same moment.
    let tent: Vec<f64> = (0..win)
        .map(|k| 1.0 - 0.3 * ((k as f64 + 0.5) / win as f64 - 0.6).abs() / 0.6)
        .collect();
    let tent_sum: f64 = tent.iter().sum();
    let mut taken = vec![false; steps];
    let bounds = boundaries(an);
    let mut out = Vec::new();
    while out.len() < want {
        let mut best: Option<(f64, usize)> = None;
        for s in 0..=steps - win {
            if taken[s..s + win].iter().any(|&t| t) {
                continue;
            }
            let mean = sc[s..s + win]
                .iter()
                .zip(&tent)
                .map(|(v, t)| v * t)
                .sum::<f64>()
                / tent_sum;
            let top = sc[s..s + win].iter().cloned().fold(f64::MIN, f64::max);
            let v = mean + 0.5 * top;
            if best.is_none_or(|(b, _)| v > b) {
                best = Some((v, s));
            }
        }
        let Some((value, s)) = best else { break };
        let peak_i = (s..s + win)
            .max_by(|&a, &b| sc[a].total_cmp(&sc[b]))
            .unwrap_or(s);
        // Pad, then snap each edge to the nearest shot boundary close enough.
        let (a0, b0) = (
            (s as f64 * STEP - p.pad).max(0.0),
            ((s + win) as f64 * STEP + p.pad).min(an.info.duration),
        );
        let reach = (len / 3.0).max(1.0);
        let sa = nearest(
            &bounds,
            a0,
            a0 - reach,
            (a0 + reach).min(peak_i as f64 * STEP),
        );
        let sb = nearest(
            &bounds,
            b0,
            (b0 - reach).max(peak_i as f64 * STEP + STEP),
            b0 + reach,
        );
        let start = sa.unwrap_or(a0);
        let mut end = sb.unwrap_or(b0);
        let mut snapped = [sa.is_some(), sb.is_some()];
        if end - start < 1.0 {
            end = (start + len).min(an.info.duration);
            snapped[1] = bounds.iter().any(|&x| (x - end).abs() < 1e-6);
        }
        let mut reasons = reasons_at(sig, &p.weights, peak_i, (s, s + win));
        if !snapped[0] || !snapped[1] {
            reasons.push("no cut near an edge: cut mid-shot".into());
        }
        // Mark the window and a gap around it as taken.
        let g = (p.gap / STEP).round() as usize;
        let ta = ((start / STEP) as usize).saturating_sub(g);
        let tb = (((end / STEP).ceil() as usize) + g).min(steps);
        taken[ta..tb].iter_mut().for_each(|t| *t = true);
        for t in taken[s..s + win].iter_mut() {
            *t = true;
        }
        out.push(Candidate {
            recording: ri,
            start,
            end,
            peak: peak_i as f64 * STEP + STEP / 2.0,
            score: value,
            reasons,
            snapped,
        });
    }
    out
}

/// Why a window scored: the signals that count most at its peak and over it.
fn reasons_at(s: &Signals, w: &Weights, peak: usize, (a, b): (usize, usize)) -> Vec<String> {
    let max = |v: &[f64]| v[a..b].iter().cloned().fold(0.0, f64::max);
    let mut r: Vec<(f64, String)> = Vec::new();
    let ldb = s.loud_db[a..b].iter().cloned().fold(f64::MIN, f64::max);
    if max(&s.loud) > 0.0 {
        r.push((
            w.loudness * max(&s.loud),
            format!("loud: {ldb:+.0} dB over the room"),
        ));
    }
    if max(&s.onset) > 0.0 {
        r.push((w.onset * max(&s.onset), "a sudden sound".into()));
    }
    if max(&s.motion) > 0.3 {
        let m = s.motion_raw[a..b].iter().cloned().fold(0.0, f64::max);
        r.push((
            w.motion * max(&s.motion),
            format!("fast motion ({:.0} % of the picture moving)", m * 100.0),
        ));
    }
    if max(&s.cuts) > 0.0 {
        r.push((w.cuts * max(&s.cuts), "quick cuts".into()));
    }
    if max(&s.flash) > 0.0 {
        r.push((w.flash, "flashes".into()));
    }
    if max(&s.speech) > 0.0 {
        r.push((w.speech * max(&s.speech), "excited voice".into()));
    }
    let _ = peak;
    r.sort_by(|x, y| y.0.total_cmp(&x.0));
    r.into_iter().map(|(_, t)| t).collect()
}

/// The rules' title and hook for a highlight.
fn rule_texts(h: &Candidate, n: usize, name: &str) -> (String, String) {
    let first = h.reasons.first().map(String::as_str).unwrap_or("");
    let title = if first.starts_with("loud") {
        "The loudest moment"
    } else if first.starts_with("a sudden") {
        "Out of nowhere"
    } else if first.starts_with("fast motion") {
        "Full throttle"
    } else if first.starts_with("quick cuts") {
        "Rapid fire"
    } else if first.starts_with("flashes") {
        "Lights out"
    } else if first.starts_with("excited") {
        "They lost it"
    } else {
        "Highlight"
    };
    let title = format!("#{n} {title}");
    let hook = if first.is_empty() {
        format!("{} at {}", name, mmss(h.peak))
    } else {
        format!("{} at {}: {}", name, mmss(h.peak), first)
    };
    (title, hook)
}

/// Selects highlights and shorts over every analysed recording.
pub fn select(analyses: &[Analysis], p: &SelectParams) -> Selection {
    let want = p.count.max(p.shorts) + 2;
    let mut all: Vec<Candidate> = Vec::new();
    for (i, an) in analyses.iter().enumerate() {
        let sig = signals(an);
        all.extend(candidates(an, i, p, want, &sig));
    }
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    all.truncate(p.count.max(p.shorts));
    let names: Vec<String> = analyses
        .iter()
        .map(|a| {
            a.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let ranked: Vec<Highlight> = all
        .iter()
        .enumerate()
        .map(|(rank, c)| {
            let (title, hook) = rule_texts(c, rank + 1, &names[c.recording]);
            Highlight {
                id: format!("h{}", rank + 1),
                recording: c.recording,
                start: round3(c.start),
                end: round3(c.end),
                peak: round3(c.peak),
                score: (c.score * 1000.0).round() / 1000.0,
                reasons: c.reasons.clone(),
                snapped: c.snapped,
                title,
                hook,
            }
        })
        .collect();
    // Shorts: the best M, each at most `short_max` seconds around its peak.
    let shorts = ranked
        .iter()
        .take(p.shorts)
        .map(|h| {
            let (mut s, mut e) = (h.start, h.end);
            if e - s > p.short_max {
                // Centred on the peak, inside the highlight.
                s = (h.peak - p.short_max / 2.0).clamp(h.start, h.end - p.short_max);
                e = s + p.short_max;
            }
            ShortPick {
                highlight: h.id.clone(),
                start: s,
                end: e,
            }
        })
        .collect();
    let compilation_ids: Vec<String> = ranked.iter().take(p.count).map(|h| h.id.clone()).collect();
    let mut highlights: Vec<Highlight> = ranked;
    // Play order: recording, then time; highlights only shorts use stay listed after them.
    highlights.sort_by(|a, b| {
        let ca = compilation_ids.contains(&a.id);
        let cb = compilation_ids.contains(&b.id);
        cb.cmp(&ca)
            .then(a.recording.cmp(&b.recording))
            .then(a.start.total_cmp(&b.start))
    });
    Selection {
        version: 1,
        recordings: analyses.iter().map(recording_ref).collect(),
        highlights,
        shorts,
        ranker: "rules@1".into(),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The selection's entry for an analysed recording.
pub fn recording_ref(an: &Analysis) -> RecordingRef {
    let info: &RecordingInfo = &an.info;
    RecordingRef {
        path: an.path.clone(),
        key: an.key.clone(),
        duration: info.duration,
        fps: info.fps,
        width: info.width,
        height: info.height,
        has_audio: an.audio.is_some(),
    }
}

/// Where a long recording's second pass decodes every frame: around the best moments the first
/// pass found (audio and keyframe motion), enough for `p`'s highlights three times over, at most
/// a quarter of the recording.
pub fn candidate_windows(
    info: &RecordingInfo,
    audio: Option<&AudioLevels>,
    keyframes: &[FrameSample],
    p: &SelectParams,
) -> Vec<(f64, f64)> {
    let an = Analysis {
        version: super::analyze::ANALYSIS_VERSION,
        path: PathBuf::new(),
        key: String::new(),
        info: info.clone(),
        params: Default::default(),
        audio: audio.cloned(),
        full: false,
        keyframes: keyframes.to_vec(),
        spans: Vec::new(),
        decoded_seconds: 0.0,
    };
    let sig = signals(&an);
    let mut budget = info.duration * 0.10;
    let want = (p.count.max(p.shorts) + 2) * 3;
    let margin = p.length / 2.0 + p.pad + 3.0;
    let mut out = Vec::new();
    for c in candidates(&an, 0, p, want, &sig) {
        let (a, b) = (
            (c.start - margin).max(0.0),
            (c.end + margin).min(info.duration),
        );
        if b - a > budget {
            break;
        }
        budget -= b - a;
        out.push((a, b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::highlights::analyze::{AnalysisParams, DecodedSpan};

    fn analysis(duration: f64, loud_at: &[(f64, f64)], cuts: &[u64]) -> Analysis {
        let hop = super::super::analyze::HOP;
        let n = (duration / hop) as usize;
        let mut rms = vec![0.02f32; n];
        let mut peak = vec![0.1f32; n];
        for &(a, b) in loud_at {
            for i in (a / hop) as usize..((b / hop) as usize).min(n) {
                rms[i] = 0.5;
                peak[i] = 0.9;
            }
        }
        let fps = 10.0;
        let frames = (0..(duration * fps) as u64)
            .map(|i| FrameSample {
                index: i,
                t: i as f64 / fps,
                motion: Some(0.05),
                luma: 100.0,
                dark: 0.0,
            })
            .collect();
        Analysis {
            version: 1,
            path: "game.mkv".into(),
            key: "k".into(),
            info: RecordingInfo {
                container: "matroska".into(),
                codec: "h264".into(),
                width: 64,
                height: 36,
                fps,
                duration,
                frames: (duration * fps) as u64,
                audio: None,
            },
            params: AnalysisParams::default(),
            audio: Some(AudioLevels { hop, peak, rms }),
            full: true,
            keyframes: vec![],
            spans: vec![DecodedSpan {
                start: 0.0,
                end: duration,
                frames,
                cuts: cuts.to_vec(),
                flashes: vec![],
            }],
            decoded_seconds: duration,
        }
    }

    #[test]
    fn loud_moments_become_highlights_snapped_to_cuts() {
        let an = analysis(
            300.0,
            &[(100.0, 103.0), (220.0, 222.0)],
            &[950, 1080, 2150, 2290],
        );
        let p = SelectParams {
            count: 2,
            shorts: 1,
            length: 10.0,
            ..Default::default()
        };
        let sel = select(&[an], &p);
        assert_eq!(sel.highlights.len(), 2);
        let h = &sel.highlights;
        assert!(h[0].start <= 100.0 && h[0].end >= 103.0, "{h:?}");
        assert!(h[1].start <= 220.0 && h[1].end >= 222.0, "{h:?}");
        // Snapped to the cuts around the events.
        assert_eq!((h[0].start, h[0].end), (95.0, 108.0), "{h:?}");
        assert!(h[0].reasons[0].starts_with("loud"), "{:?}", h[0].reasons);
        assert_eq!(sel.shorts.len(), 1);
        sel.validate(60.0).unwrap();
    }

    #[test]
    fn shorts_of_long_highlights_stay_inside_them() {
        let an = analysis(300.0, &[(200.0, 203.0)], &[]);
        let p = SelectParams {
            count: 1,
            shorts: 1,
            length: 100.0,
            short_max: 30.0,
            ..Default::default()
        };
        let sel = select(&[an], &p);
        let (h, s) = (&sel.highlights[0], &sel.shorts[0]);
        assert!(s.start >= h.start && s.end <= h.end + 1e-9, "{h:?} {s:?}");
        assert!((s.end - s.start - 30.0).abs() < 1e-9);
        sel.validate(30.0).unwrap();
    }

    #[test]
    fn edited_selections_are_checked() {
        let an = analysis(60.0, &[(10.0, 12.0)], &[]);
        let mut sel = select(&[an], &SelectParams::default());
        sel.highlights[0].end = 500.0;
        let e = sel.validate(60.0).unwrap_err();
        assert!(e.starts_with("highlights[0]"), "{e}");
    }
}
