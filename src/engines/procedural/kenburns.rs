//! Ken Burns motion: a slow camera move over the still, chosen from the scene's motion hint.

use crate::engines::{Clip, EngineError, VideoEngine};
use crate::media::compose::{CameraPath, CameraPose};
use crate::media::image::RgbImage;

pub struct KenBurns;

/// A small deterministic jitter in -1..1 from a seed, so scenes with the same hint still differ.
fn jitter(seed: u64, salt: u64) -> f64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// The camera path for a motion hint.
pub fn path_for(motion: &str, seed: u64) -> Option<CameraPath> {
    let j = |s| jitter(seed, s) * 0.03;
    let (cx, cy) = (0.5 + j(1), 0.5 + j(2));
    let pose = |cx: f64, cy: f64, zoom: f64| CameraPose { cx, cy, zoom };
    Some(match motion {
        "static" => CameraPath {
            from: pose(cx, cy, 1.08),
            to: pose(cx, cy, 1.10),
        },
        "zoom-in" => CameraPath {
            from: pose(cx, cy, 1.0),
            to: pose(cx + j(3), cy + j(4), 1.25),
        },
        "zoom-out" => CameraPath {
            from: pose(cx + j(3), cy + j(4), 1.25),
            to: pose(cx, cy, 1.0),
        },
        "pan-left" => CameraPath {
            from: pose(0.62, cy, 1.2),
            to: pose(0.38, cy, 1.2),
        },
        "pan-right" => CameraPath {
            from: pose(0.38, cy, 1.2),
            to: pose(0.62, cy, 1.2),
        },
        "pan-up" => CameraPath {
            from: pose(cx, 0.62, 1.2),
            to: pose(cx, 0.38, 1.2),
        },
        "pan-down" => CameraPath {
            from: pose(cx, 0.38, 1.2),
            to: pose(cx, 0.62, 1.2),
        },
        _ => return None,
    })
}

impl VideoEngine for KenBurns {
    fn id(&self) -> String {
        "procedural/ken-burns@1".into()
    }

    fn animate(&self, _still: &RgbImage, motion: &str, seed: u64) -> Result<Clip, EngineError> {
        let path = path_for(motion, seed).ok_or_else(|| EngineError::Failed {
            engine: self.id(),
            message: format!("unknown motion `{motion}`"),
        })?;
        Ok(Clip::Camera { path })
    }
}
