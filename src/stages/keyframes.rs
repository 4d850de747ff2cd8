//! keyframes: one still per scene, painted larger than the frame so the camera can move over it.
//! A scene's `image` from the script is used as given (cropped to fit); otherwise the image
//! engine draws it. Each scene's still is a memoised item keyed by what it shows.

use std::path::Path;

use crate::captions::{self, AssLayout, Cue};
use crate::engines::procedural::{paint, PaintEngine};
use crate::engines::{ImageEngine, ImageRequest};
use crate::media::image::RgbImage;
use crate::media::{decode, stills};
use crate::pipeline::{read_json, write_json, JobSpec, Stage, StageCtx, StageError, StageKind};

use super::model::{KeyframeInfo, Keyframes, Plan};
use super::voice::place;

pub struct KeyframesStage;

/// How much larger than the frame keyframes are painted (room for pans and zooms).
pub const OVERSCAN: f64 = 1.3;

/// The keyframe size for a frame size.
pub fn keyframe_size(width: u32, height: u32) -> (u32, u32) {
    let even = |v: f64| ((v / 2.0).round() as u32) * 2;
    (
        even(width as f64 * OVERSCAN),
        even(height as f64 * OVERSCAN),
    )
}

/// Draws the scene number in a corner with a real font (language-neutral: stills are shared
/// by every language of the video).
fn draw_label(
    img: &RgbImage,
    label: &str,
    dir: &Path,
    light: [u8; 3],
) -> Result<RgbImage, StageError> {
    let mut layout = AssLayout::for_video(img.width, img.height, "en");
    layout.font_size = (img.height / 11).max(12);
    layout.alignment = 9;
    layout.bold = true;
    layout.primary = light;
    layout.outline_colour = [20, 20, 20];
    layout.outline = (img.height as f32 / 250.0).max(1.0);
    layout.shadow = 0.0;
    layout.boxed = false;
    layout.margin_v = img.height / 14;
    layout.margin_h = img.width / 16;
    let cue = Cue {
        start: 0.0,
        end: 3600.0,
        lines: vec![label.to_string()],
    };
    let ass = dir.join("label.ass");
    std::fs::write(&ass, captions::to_ass(&[cue], &layout, "en"))
        .map_err(|e| StageError::io(&ass, e))?;
    let out = stills::draw_ass(img, &ass)?;
    std::fs::remove_file(&ass).map_err(|e| StageError::io(&ass, e))?;
    Ok(out)
}

impl Stage for KeyframesStage {
    fn kind(&self) -> StageKind {
        StageKind::Keyframes
    }

    fn builtin_engine(&self) -> String {
        PaintEngine.id()
    }

    fn params(&self, job: &JobSpec, _lang: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "size": keyframe_size(job.settings.width, job.settings.height) })
    }

    fn run(&self, ctx: &StageCtx) -> Result<(), StageError> {
        let plan: Plan = read_json(&ctx.input(StageKind::Plan)?.file("plan.json"))?;
        let (kw, kh) = keyframe_size(ctx.job.settings.width, ctx.job.settings.height);
        let engine = PaintEngine;
        let n = plan.scenes.len();
        let light = plan
            .palette
            .iter()
            .copied()
            .max_by_key(|c| c[0] as u32 * 2 + c[1] as u32 * 5 + c[2] as u32)
            .unwrap_or([255, 255, 255]);
        let mut frames = Vec::new();
        for (i, scene) in plan.scenes.iter().enumerate() {
            ctx.check_cancel()?;
            let label = format!("{:02}", i + 1);
            let file = format!("scene-{i:03}.png");
            let (params, source) = match &scene.image {
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|e| StageError::io(path, e))?;
                    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
                    (
                        serde_json::json!({ "image": digest, "size": [kw, kh] }),
                        "script image",
                    )
                }
                None => {
                    let req = ImageRequest {
                        prompt: scene.prompt.clone(),
                        negative_prompt: plan.negative_prompt.clone(),
                        width: kw,
                        height: kh,
                        seed: scene.seed,
                        look: plan.look.clone(),
                        palette: plan.palette.clone(),
                        motifs: scene.motifs.clone(),
                        scene_index: i,
                        scene_count: n,
                    };
                    (
                        serde_json::json!({ "engine": engine.id(), "request": req, "label": label }),
                        "painted",
                    )
                }
            };
            let item = ctx.item("keyframe", &params, |dir| {
                let img = match &scene.image {
                    Some(path) => stills::cover(&decode::read_image(path)?, kw, kh),
                    None => {
                        let req: ImageRequest = serde_json::from_value(params["request"].clone())
                            .map_err(|e| StageError::Engine(e.to_string()))?;
                        let img = engine
                            .generate(&req)
                            .map_err(|e| StageError::Engine(e.to_string()))?;
                        draw_label(&img, &label, dir, light)?
                    }
                };
                stills::write_png(&img, &dir.join("keyframe.png"))?;
                std::fs::write(
                    dir.join("strength"),
                    paint::visual_strength(&img).to_string(),
                )
                .map_err(|e| StageError::io(dir, e))?;
                Ok(())
            })?;
            place(&item.join("keyframe.png"), &ctx.out.join(&file))?;
            let strength = std::fs::read_to_string(item.join("strength"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0.0);
            frames.push(KeyframeInfo {
                scene: i,
                file,
                width: kw,
                height: kh,
                strength,
                source: source.into(),
            });
            ctx.progress((i + 1) as f32 / n as f32);
        }
        write_json(
            &ctx.out.join("keyframes.json"),
            &Keyframes {
                engine: engine.id(),
                frames,
            },
        )
    }
}
