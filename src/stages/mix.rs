//! mix: one language's soundtrack — the voice lines placed on the timeline over the music bed,
//! the music ducked under speech, the whole normalised to −14 LUFS integrated with a −1 dBTP
//! ceiling (YouTube's reference loudness).

use std::collections::BTreeMap;

use crate::engines::procedural::music::render_bed;
use crate::media::mix::{mix_voice_over_music, normalize_loudness, DuckParams, NormalizeReport};
use crate::media::wav::{self, Audio};
use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{MixInfo, Music, Plan, Timeline, Voices};

pub struct MixStage;

pub const TARGET_LUFS: f64 = -14.0;
pub const CEILING_DBTP: f64 = -1.0;

/// Lays the music loops along the timeline: each scene's mood, equal-power crossfades of one
/// second where the mood changes. Returns interleaved stereo of exactly `frames` frames.
fn music_bed(
    plan: &Plan,
    timeline: &Timeline,
    music: &Music,
    dir: &std::path::Path,
    rate: u32,
    frames: usize,
) -> Result<Vec<f32>, StageError> {
    let seconds = frames as f64 / rate as f64;
    let mut beds: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    for s in &plan.scenes {
        if beds.contains_key(s.music.as_str()) {
            continue;
        }
        let file = music.loops.get(&s.music).ok_or_else(|| {
            StageError::data("music.json", format!("no loop for mood `{}`", s.music))
        })?;
        let lp = wav::read(&dir.join(file))?;
        let mut bed = render_bed(&lp.samples, rate, seconds, 2.0);
        bed.resize(frames * 2, 0.0);
        beds.insert(s.music.as_str(), bed);
    }
    if beds.len() == 1 {
        return Ok(beds.into_values().next().unwrap_or_default());
    }
    // Per-frame weight of each mood.
    let moods: Vec<&str> = beds.keys().copied().collect();
    let mut weight = vec![vec![0f32; frames]; moods.len()];
    let mood_of = |si: usize| {
        moods
            .iter()
            .position(|m| *m == plan.scenes[si].music)
            .unwrap_or(0)
    };
    for (si, slot) in timeline.scenes.iter().enumerate() {
        let a = ((slot.start * rate as f64).round() as usize).min(frames);
        let b = (((slot.start + slot.duration) * rate as f64).round() as usize).min(frames);
        weight[mood_of(si)][a..b].iter_mut().for_each(|w| *w = 1.0);
    }
    let half = rate as usize / 2;
    for si in 1..timeline.scenes.len() {
        let (mp, mn) = (mood_of(si - 1), mood_of(si));
        if mp == mn {
            continue;
        }
        let b = (timeline.scenes[si].start * rate as f64).round() as usize;
        for k in 0..2 * half {
            let i = (b + k).wrapping_sub(half);
            if i >= frames {
                continue;
            }
            let a = k as f32 / (2 * half) as f32 * std::f32::consts::FRAC_PI_2;
            weight[mp][i] = a.cos();
            weight[mn][i] = a.sin();
        }
    }
    let mut out = vec![0f32; frames * 2];
    for (mi, m) in moods.iter().enumerate() {
        let bed = &beds[m];
        for i in 0..frames {
            let w = weight[mi][i];
            out[i * 2] += bed[i * 2] * w;
            out[i * 2 + 1] += bed[i * 2 + 1] * w;
        }
    }
    Ok(out)
}

/// Loudness the game audio of recorded scenes is brought to before the commentary goes over it
/// (a little under the whole mix's, so speech sits on top).
pub const GAME_LUFS: f64 = -18.0;

/// The game audio of a plan made from recordings: each scene's clip audio at its place on the
/// timeline (20 ms fades where scenes meet), normalised to [`GAME_LUFS`]. Interleaved stereo,
/// exactly `frames` long.
pub fn game_bed(
    timeline: &Timeline,
    clips: &super::model::Clips,
    clip_dir: &std::path::Path,
    rate: u32,
    frames: usize,
) -> Result<Vec<f32>, StageError> {
    let mut bed = vec![0f32; frames * 2];
    let fade = (0.02 * rate as f64) as usize;
    for (si, slot) in timeline.scenes.iter().enumerate() {
        let Some(file) = clips
            .clips
            .iter()
            .find(|c| c.scene == si)
            .and_then(|c| c.audio.as_ref())
        else {
            continue;
        };
        let a = wav::read(&clip_dir.join(file))?;
        if a.rate != rate || a.channels != 2 {
            return Err(StageError::data(
                file.clone(),
                format!(
                    "game audio is {} Hz × {}, not {rate} Hz stereo",
                    a.rate, a.channels
                ),
            ));
        }
        let at = (slot.start * rate as f64).round() as usize;
        let len = ((slot.duration * rate as f64).round() as usize).min(a.samples.len() / 2);
        for i in 0..len {
            let g = if i < fade {
                i as f32 / fade as f32
            } else if len - i <= fade {
                (len - i) as f32 / fade as f32
            } else {
                1.0
            };
            if let Some(o) = bed.get_mut((at + i) * 2..(at + i) * 2 + 2) {
                o[0] += a.samples[i * 2] * g;
                o[1] += a.samples[i * 2 + 1] * g;
            }
        }
    }
    normalize_loudness(&mut bed, rate, GAME_LUFS, CEILING_DBTP);
    Ok(bed)
}

/// The whole soundtrack of one language: voice lines at their timeline positions over the ducked
/// music bed (when the channel has music), normalised. Exactly `timeline.total` long.
pub fn mix_tracks(
    plan: &Plan,
    timeline: &Timeline,
    voice_dir: &std::path::Path,
    music_dir: Option<&std::path::Path>,
    rate: u32,
) -> Result<(Vec<f32>, NormalizeReport), StageError> {
    mix_tracks_with(plan, timeline, voice_dir, music_dir, None, rate)
}

/// [`mix_tracks`]; with `game` (the animate stage's artifact of a recorded plan) the game audio
/// is the bed instead of the music, dipped under the commentary as the plan says.
pub fn mix_tracks_with(
    plan: &Plan,
    timeline: &Timeline,
    voice_dir: &std::path::Path,
    music_dir: Option<&std::path::Path>,
    game: Option<&std::path::Path>,
    rate: u32,
) -> Result<(Vec<f32>, NormalizeReport), StageError> {
    let voices: Voices = read_json(&voice_dir.join("voice.json"))?;
    let frames = (timeline.total * rate as f64).round() as usize;
    let mut voice = vec![0f32; frames];
    for slot in &timeline.lines {
        let Some(vl) = voices.line(slot.scene, slot.line) else {
            continue;
        };
        let a = wav::read(&voice_dir.join(&vl.file))?;
        let at = (slot.start * rate as f64).round() as usize;
        for (i, s) in a.samples.iter().enumerate() {
            if let Some(v) = voice.get_mut(at + i) {
                *v += s;
            }
        }
    }
    let mut mixed = match (game, &plan.recorded, music_dir) {
        (Some(dir), Some(rec), _) => {
            let clips: super::model::Clips = read_json(&dir.join("clips.json"))?;
            let bed = game_bed(timeline, &clips, dir, rate, frames)?;
            let duck_db = 20.0 * (1.0 - rec.duck.clamp(0.0, 0.999)).log10();
            let params = DuckParams {
                duck_db: duck_db as f32,
                attack_s: rec.duck_attack as f32,
                release_s: rec.duck_release as f32,
                music_gain_db: 0.0,
                ..DuckParams::default()
            };
            mix_voice_over_music(&voice, &bed, rate, &params)
        }
        (_, _, Some(dir)) => {
            let music: Music = read_json(&dir.join("music.json"))?;
            let bed = music_bed(plan, timeline, &music, dir, rate, frames)?;
            mix_voice_over_music(&voice, &bed, rate, &DuckParams::default())
        }
        _ => voice.iter().flat_map(|&v| [v, v]).collect(),
    };
    mixed.resize(frames * 2, 0.0);
    let report = normalize_loudness(&mut mixed, rate, TARGET_LUFS, CEILING_DBTP);
    Ok((mixed, report))
}

impl Stage for MixStage {
    fn kind(&self) -> StageKind {
        StageKind::Mix
    }

    fn builtin_engine(&self) -> String {
        "mix@1".into()
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "lang": lang, "rate": job.settings.audio_rate, "lufs": TARGET_LUFS, "ceiling": CEILING_DBTP,
        })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let lang = ctx.lang()?;
        let rate = ctx.job.settings.audio_rate;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let timeline: Timeline = read_json(&ctx.input(StageKind::Align)?.file("timeline.json"))?;
        let voice_dir = &ctx.input(StageKind::Voice)?.dir;
        let music_dir = ctx
            .optional_input(StageKind::Music)
            .map(|m| m.dir.as_path());
        ctx.progress(0.1);
        let game = ctx
            .optional_input(StageKind::Animate)
            .filter(|_| plan.recorded.is_some())
            .map(|a| a.dir.as_path());
        let (mixed, report) = mix_tracks_with(&plan, &timeline, voice_dir, music_dir, game, rate)?;
        wav::write_f32(
            &ctx.out.join("mix.wav"),
            &Audio {
                rate,
                channels: 2,
                samples: mixed,
            },
        )?;
        write_json(
            &ctx.out.join("mix.json"),
            &MixInfo {
                lang: lang.to_string(),
                seconds: timeline.total,
                input_lufs: report.input_lufs,
                output_lufs: report.output_lufs,
                true_peak_dbtp: report.output_true_peak_dbtp,
            },
        )
    }
}
