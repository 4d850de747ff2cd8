//! The shorts of a highlights job: each short is a stretch of the recording behind one
//! highlight (at most the short's length), composed for the tall frame with the plan's layout
//! (blurred fill, a crop that follows the action, or the facecam stacked over the gameplay),
//! with that highlight's commentary over its game audio (dipped under the voice) and its
//! captions. `short.mp4` is the best one; every one is in `shorts/short-N.mp4`.

use std::ops::ControlFlow;

use crate::media::encode::{yuv_of_rgb, EncodeSettings, Mp4Writer};
use crate::media::mix::{fade, mix_voice_over_music, normalize_loudness, DuckParams};
use crate::media::overlay::CaptionTrack;
use crate::media::vertical::{CropTracker, Layout, VerticalComposer};
use crate::media::{scan, wav};
use crate::pipeline::{read_json, write_json, StageCtx, StageError, StageKind};

use super::mix::{CEILING_DBTP, GAME_LUFS, TARGET_LUFS};
use super::model::{Plan, PlannedShort, RecordedPlan, Timeline, Voices};

/// Renders every short of a recorded plan into the stage's output.
pub fn recorded_shorts(
    ctx: &StageCtx,
    plan: &Plan,
    rec: &RecordedPlan,
    timeline: &Timeline,
) -> Result<(), StageError> {
    let dir = ctx.out.join("shorts");
    std::fs::create_dir_all(&dir).map_err(|e| StageError::io(&dir, e))?;
    let mut made = Vec::new();
    let n = rec.shorts.len();
    for (k, short) in rec.shorts.iter().enumerate() {
        ctx.check_cancel()?;
        let out = dir.join(format!("short-{}.mp4", k + 1));
        let info = one_short(ctx, plan, rec, timeline, short, &out, |f| {
            ctx.progress((k as f32 + f) / n as f32)
        })?;
        made.push(info);
    }
    super::voice::place(&dir.join("short-1.mp4"), &ctx.out.join("short.mp4"))?;
    write_json(
        &ctx.out.join("short.json"),
        &serde_json::json!({ "shorts": made, "layout": rec.layout }),
    )
}

/// One short: returns what `short.json` lists for it.
fn one_short(
    ctx: &StageCtx,
    plan: &Plan,
    rec: &RecordedPlan,
    timeline: &Timeline,
    short: &PlannedShort,
    out: &std::path::Path,
    progress: impl Fn(f32),
) -> Result<serde_json::Value, StageError> {
    let s = &ctx.job.settings;
    let (w, h, fps) = (s.short_width, s.short_height, s.fps);
    let src = &short.source;
    let scene = plan
        .scenes
        .get(short.scene)
        .and_then(|sc| sc.source.as_ref().map(|c| (sc, c)))
        .ok_or_else(|| {
            StageError::data(
                "plan.json",
                format!("short `{}` names no recorded scene", short.id),
            )
        })?;
    let slot = timeline.scenes.get(short.scene).ok_or_else(|| {
        StageError::data(
            "timeline.json",
            format!("no slot for scene {}", short.scene),
        )
    })?;
    // Where the short starts on the compilation's clock (its captions and voice are there).
    let t0 = slot.start + (src.start - scene.1.start).max(0.0);
    let frames = ((src.seconds() * fps as f64).round() as u64).max(1);
    let seconds = frames as f64 / fps as f64;
    let audio = soundtrack(ctx, rec, timeline, short.scene, src, t0, seconds)?;
    let mut rec_in = scan::open(&src.path)?;
    let (sw, sh) = (rec_in.info().width, rec_in.info().height);
    let mut composer = VerticalComposer::new(&rec.layout, sw, sh, w, h)
        .map_err(|e| StageError::data("highlights.layout", e.to_string()))?;
    let mut tracker = match rec.layout {
        Layout::Crop { follow: true } => {
            Some(CropTracker::new(fps as f64).with_crop_fraction(composer.crop_fraction()))
        }
        _ => None,
    };
    let enc = EncodeSettings {
        width: w,
        height: h,
        fps,
        crf: s.quality.crf(),
        preset: s.quality.x264_preset().to_string(),
        audio_rate: s.audio_rate,
        audio_bitrate: 192_000,
        aac_coder: s.quality.aac_coder().to_string(),
    };
    let tmp = out.with_extension("mp4.part");
    let mut writer = Mp4Writer::create(&tmp, &enc, Some(Box::new(move || Ok(audio))))?;
    let ass = ctx.input(StageKind::Captions)?.file("portrait.ass");
    let mut captions = if plan.captions.burn_in && ass.is_file() {
        Some(CaptionTrack::render(&ass, w, h, fps)?)
    } else {
        None
    };
    let n0 = (t0 * fps as f64).round() as i64;
    let mut i = 0i64;
    rec_in.extract::<StageError>(
        (src.start, src.start + seconds),
        (sw, sh),
        fps as f64,
        |img| {
            ctx.check_cancel()?;
            let centre = tracker.as_mut().map(|t| t.push(img));
            let composed = composer.compose(img, centre)?;
            let mut yuv = yuv_of_rgb(composed)?;
            if let Some(c) = captions.as_mut() {
                c.apply(n0 + i, &mut yuv)?;
            }
            writer.push_frame(&mut yuv)?;
            i += 1;
            progress(i as f32 / frames as f32);
            Ok(ControlFlow::Continue(()))
        },
    )?;
    writer.finish()?;
    std::fs::rename(&tmp, out).map_err(|e| StageError::io(out, e))?;
    Ok(serde_json::json!({
        "file": out.file_name().map(|n| n.to_string_lossy().into_owned()),
        "highlight": short.id,
        "recording": src.path,
        "start": src.start,
        "end": src.start + seconds,
        "seconds": seconds,
        "frames": i,
    }))
}

/// The short's sound: the recording's game audio of the stretch (normalised) with the
/// highlight's commentary over it where it falls in the stretch, dipped as the plan says; faded
/// at the end and normalised like every short.
fn soundtrack(
    ctx: &StageCtx,
    rec: &RecordedPlan,
    timeline: &Timeline,
    scene: usize,
    src: &super::model::SourceClip,
    t0: f64,
    seconds: f64,
) -> Result<Vec<f32>, StageError> {
    let rate = ctx.job.settings.audio_rate;
    let frames = (seconds * rate as f64).round() as usize;
    let mut game = scan::audio_window(&src.path, src.start, src.start + seconds, rate)?;
    game.resize(frames * 2, 0.0);
    normalize_loudness(&mut game, rate, GAME_LUFS, CEILING_DBTP);
    let voice_art = ctx.input(StageKind::Voice)?;
    let voices: Voices = read_json(&voice_art.file("voice.json"))?;
    let mut voice = vec![0f32; frames];
    for slot in timeline.lines.iter().filter(|l| l.scene == scene) {
        let Some(vl) = voices.line(slot.scene, slot.line) else {
            continue;
        };
        let a = wav::read(&voice_art.file(&vl.file))?;
        let at = ((slot.start - t0) * rate as f64).round() as i64;
        for (k, v) in a.samples.iter().enumerate() {
            let j = at + k as i64;
            if j >= 0 && (j as usize) < frames {
                voice[j as usize] += v;
            }
        }
    }
    let params = DuckParams {
        duck_db: (20.0 * (1.0 - rec.duck.clamp(0.0, 0.999)).log10()) as f32,
        attack_s: rec.duck_attack as f32,
        release_s: rec.duck_release as f32,
        music_gain_db: 0.0,
        ..DuckParams::default()
    };
    let mut mixed = mix_voice_over_music(&voice, &game, rate, &params);
    mixed.resize(frames * 2, 0.0);
    fade(&mut mixed, rate, 0.05, 0.3);
    normalize_loudness(&mut mixed, rate, TARGET_LUFS, CEILING_DBTP);
    Ok(mixed)
}
