//! Procedural keyframe painter: one stylised picture per scene when no image model is installed.
//!
//! Everything here is analytic: shapes are signed-distance functions evaluated over their bounding
//! boxes with coverage-based anti-aliasing, and textures (halftone, screentone, paper, scanlines)
//! are smooth at the scale of a few pixels so that later Ken Burns resampling does not shimmer.
//! The painter is deterministic: the same [`PaintSpec`] always yields bit-identical bytes (own
//! splitmix64 PRNG, no hash-map iteration, fixed evaluation order).

mod anime;
mod colour;
mod comic;
mod context;
mod flat;
mod gaming;
mod ink;
mod landscape;
mod manga;
mod math;
mod noise;
mod raster;
mod superhero;

#[cfg(test)]
mod tests;

use crate::media::image::RgbImage;
use std::f32::consts::{PI, TAU};

// The parts see each other as if they were still one file: each one `use super::*`.
use anime::*;
use colour::*;
use comic::*;
use context::*;
use flat::*;
use gaming::*;
use ink::*;
use landscape::*;
use manga::*;
use math::*;
use noise::*;
use raster::*;
use superhero::*;

/// The visual style of the procedural art.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    Anime,
    Gaming,
    Superhero,
    Manga,
    Comic,
    Ink,
    Flat,
}

impl Look {
    /// Every look, in declaration order.
    pub const ALL: [Look; 7] = [
        Look::Anime,
        Look::Gaming,
        Look::Superhero,
        Look::Manga,
        Look::Comic,
        Look::Ink,
        Look::Flat,
    ];

    /// Parses a look name (case-insensitive). Also accepts the style aliases `marvel_dc` (comic),
    /// `original_manga` (ink) and `explainer` (flat).
    pub fn parse(s: &str) -> Option<Look> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "anime" => Some(Look::Anime),
            "gaming" => Some(Look::Gaming),
            "superhero" => Some(Look::Superhero),
            "manga" => Some(Look::Manga),
            "comic" | "marvel_dc" => Some(Look::Comic),
            "ink" | "original_manga" => Some(Look::Ink),
            "flat" | "explainer" => Some(Look::Flat),
            _ => None,
        }
    }

    /// The canonical name, accepted by [`Look::parse`].
    pub fn as_str(&self) -> &'static str {
        match self {
            Look::Anime => "anime",
            Look::Gaming => "gaming",
            Look::Superhero => "superhero",
            Look::Manga => "manga",
            Look::Comic => "comic",
            Look::Ink => "ink",
            Look::Flat => "flat",
        }
    }

    /// True for the looks that paint strictly gray pixels (R == G == B).
    pub fn is_grayscale(&self) -> bool {
        matches!(self, Look::Manga | Look::Ink)
    }
}

/// What to paint.
pub struct PaintSpec<'a> {
    pub width: u32,
    pub height: u32,
    pub look: Look,
    /// 3..=8 colours from the channel (fewer or more are tolerated); ignored by grayscale looks.
    pub palette: &'a [[u8; 3]],
    /// Deterministic per seed.
    pub seed: u64,
    pub scene_index: usize,
    pub scene_count: usize,
    /// Lower-case keywords from the scene prompt; unknown words are ignored.
    pub motifs: &'a [String],
}

/// Paints one keyframe.
pub fn paint(spec: &PaintSpec) -> RgbImage {
    let mut img = RgbImage::new(spec.width, spec.height);
    if spec.width == 0 || spec.height == 0 {
        return img;
    }
    let ctx = Ctx::new(spec);
    match spec.look {
        Look::Anime => anime(&mut img, &ctx),
        Look::Gaming => gaming(&mut img, &ctx),
        Look::Superhero => superhero(&mut img, &ctx),
        Look::Manga => manga(&mut img, &ctx),
        Look::Comic => comic(&mut img, &ctx),
        Look::Ink => ink(&mut img, &ctx),
        Look::Flat => flat(&mut img, &ctx),
    }
    img
}

/// "How striking" an image is: colourfulness (Hasler–Süsstrunk) plus luminance contrast (standard
/// deviation) plus edge energy (mean luminance gradient), each scaled to roughly 0..1 for typical
/// pictures. Evaluated on a sparse grid so it is cheap on large frames. Higher is more striking.
pub fn visual_strength(img: &RgbImage) -> f64 {
    let (w, h) = (img.width as usize, img.height as usize);
    if w < 2 || h < 2 || img.data.len() < w * h * 3 {
        return 0.0;
    }
    let step = (w.max(h) / 480).max(1);
    let lum = |x: usize, y: usize| -> f64 {
        let i = (y * w + x) * 3;
        0.299 * img.data[i] as f64 + 0.587 * img.data[i + 1] as f64 + 0.114 * img.data[i + 2] as f64
    };
    let (mut n, mut srg, mut syb, mut srg2, mut syb2, mut sl, mut sl2, mut edge) =
        (0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut y = 0;
    while y < h {
        let mut x = 0;
        while x < w {
            let i = (y * w + x) * 3;
            let (r, g, b) = (
                img.data[i] as f64,
                img.data[i + 1] as f64,
                img.data[i + 2] as f64,
            );
            let rg = r - g;
            let yb = 0.5 * (r + g) - b;
            let l = lum(x, y);
            srg += rg;
            syb += yb;
            srg2 += rg * rg;
            syb2 += yb * yb;
            sl += l;
            sl2 += l * l;
            let xn = (x + step).min(w - 1);
            let yn = (y + step).min(h - 1);
            edge += (lum(xn, y) - l).abs() + (lum(x, yn) - l).abs();
            n += 1.0;
            x += step;
        }
        y += step;
    }
    let var = |s: f64, s2: f64| (s2 / n - (s / n) * (s / n)).max(0.0);
    let colourful = (var(srg, srg2) + var(syb, syb2)).sqrt()
        + 0.3 * ((srg / n).powi(2) + (syb / n).powi(2)).sqrt();
    let contrast = var(sl, sl2).sqrt();
    let edges = edge / n / step as f64;
    colourful / 100.0 + contrast / 64.0 + (edges / 12.0).min(1.5)
}
