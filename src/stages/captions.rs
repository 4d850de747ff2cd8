//! captions: subtitle files for one language — SRT and WebVTT for upload, and ASS documents laid
//! out for the landscape video and for the vertical short (narrower lines, higher up).

use crate::captions::{self, AssLayout, Cue};
use crate::config::channel::{parse_hex, CaptionStyle};
use crate::pipeline::{read_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{Plan, Texts, Timeline};

pub struct CaptionsStage;

/// Maximum caption line width for the vertical short (display columns).
pub const SHORT_MAX_WIDTH: usize = 26;

/// The ASS layout for a frame of `width`×`height` in the channel's caption style.
pub fn layout(
    style: &CaptionStyle,
    width: u32,
    height: u32,
    lang: &str,
    vertical: bool,
) -> AssLayout {
    let mut l = AssLayout::for_video(width, height, lang);
    // Sizes in the channel are for 1080 lines of a landscape frame; scale by the short side.
    let scale = width.min(height) as f64 / 1080.0;
    let px = |v: f64| (v * scale).round().max(1.0);
    l.font_size = px(style.font_size as f64) as u32;
    if vertical {
        l.font_size = (l.font_size as f64 * 1.15).round() as u32;
    }
    let rgb = |s: &str, fallback: [u8; 3]| parse_hex(s).map(|c| c.0).unwrap_or(fallback);
    l.primary = rgb(&style.primary, [255, 255, 255]);
    l.outline_colour = rgb(&style.outline, [0, 0, 0]);
    l.outline =
        px(style.outline_width as f64) as f32 * if style.outline_width > 0.0 { 1.0 } else { 0.0 };
    l.shadow = px(style.shadow as f64) as f32 * if style.shadow > 0.0 { 1.0 } else { 0.0 };
    l.bold = style.bold;
    l.boxed = style.boxed;
    if l.boxed {
        // libass pads the box by the outline width: give the text room to breathe.
        l.outline = l.outline.max((l.font_size as f32 * 0.3).round());
    }
    if let Some((c, a)) = parse_hex(&style.box_colour) {
        l.box_colour = [c[0], c[1], c[2], a];
    }
    l.margin_v = if vertical {
        // Above the platform's own buttons and description overlay.
        (height as f64 * 0.24).round() as u32
    } else {
        px(style.margin_v as f64) as u32
    };
    l
}

/// Caption cues of one language: each line chunked to fit and timed over its voice.
pub fn cues(
    plan: &Plan,
    texts: &Texts,
    timeline: &Timeline,
    lang: &str,
    max_width: usize,
) -> Vec<Cue> {
    let mut out = Vec::new();
    for slot in &timeline.lines {
        let Some(text) = texts.line(slot.scene, slot.line) else {
            continue;
        };
        let _ = plan;
        let chunks = captions::chunk_text(text, lang, max_width, captions::DEFAULT_MAX_LINES);
        if slot.words.is_empty() {
            out.extend(captions::time_chunks(&chunks, slot.start, slot.end));
        } else {
            let words: Vec<(String, f64, f64)> = slot
                .words
                .iter()
                .map(|w| (w.text.clone(), w.start, w.end))
                .collect();
            out.extend(captions::time_chunks_to_words(
                &chunks, &words, slot.start, slot.end,
            ));
        }
    }
    out
}

impl Stage for CaptionsStage {
    fn kind(&self) -> StageKind {
        StageKind::Captions
    }

    fn builtin_engine(&self) -> String {
        "captions@1".into()
    }

    fn params(&self, job: &JobSpec, lang: Option<&str>) -> serde_json::Value {
        let s = &job.settings;
        serde_json::json!({
            "lang": lang, "size": [s.width, s.height], "short": [s.short_width, s.short_height],
        })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let lang = ctx.lang()?;
        let s = &ctx.job.settings;
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let texts: Texts = read_json(&ctx.input(StageKind::Translate)?.file("text.json"))?;
        let timeline: Timeline = read_json(&ctx.input(StageKind::Align)?.file("timeline.json"))?;
        // A portrait video is laid out like the short: narrower lines, higher up.
        let portrait = s.height > s.width;
        let width = if portrait {
            SHORT_MAX_WIDTH
        } else {
            captions::DEFAULT_MAX_WIDTH
        };
        let main = cues(&plan, &texts, &timeline, lang, width);
        let vertical = cues(&plan, &texts, &timeline, lang, SHORT_MAX_WIDTH);
        let write = |name: &str, text: String| {
            let p = ctx.out.join(name);
            std::fs::write(&p, text).map_err(|e| StageError::io(&p, e))
        };
        write("captions.srt", captions::to_srt(&main))?;
        write("captions.vtt", captions::to_vtt(&main))?;
        let land = layout(&plan.captions, s.width, s.height, lang, portrait);
        write("landscape.ass", captions::to_ass(&main, &land, lang))?;
        let port = layout(&plan.captions, s.short_width, s.short_height, lang, true);
        write("portrait.ass", captions::to_ass(&vertical, &port, lang))?;
        Ok(())
    }
}
