//! Procedural keyframe painter: one stylised picture per scene when no image model is installed.
//!
//! Everything here is analytic: shapes are signed-distance functions evaluated over their bounding
//! boxes with coverage-based anti-aliasing, and textures (halftone, screentone, paper, scanlines)
//! are smooth at the scale of a few pixels so that later Ken Burns resampling does not shimmer.
//! The painter is deterministic: the same [`PaintSpec`] always yields bit-identical bytes (own
//! splitmix64 PRNG, no hash-map iteration, fixed evaluation order).

use crate::media::image::RgbImage;
use std::f32::consts::{PI, TAU};

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

// ---------------------------------------------------------------------------------------------
// Randomness and noise
// ---------------------------------------------------------------------------------------------

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix64(seed ^ 0x5DEE_CE66_D1CE_4E5B))
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
    }
    fn range(&mut self, a: f32, b: f32) -> f32 {
        a + (b - a) * self.f()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f32) -> bool {
        self.f() < p
    }
}

fn hash2(ix: i32, iy: i32, seed: u64) -> f32 {
    let k = mix64(
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (ix as u32 as u64) ^ ((iy as u32 as u64) << 32),
    );
    (k >> 40) as f32 * (1.0 / 16_777_216.0)
}

/// Smooth value noise in [0, 1], one lattice cell per unit.
fn vnoise(x: f32, y: f32, seed: u64) -> f32 {
    let (xf, yf) = (ffloor(x), ffloor(y));
    let (ix, iy) = (xf as i32, yf as i32);
    let (fx, fy) = (x - xf, y - yf);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let a = hash2(ix, iy, seed);
    let b = hash2(ix + 1, iy, seed);
    let c = hash2(ix, iy + 1, seed);
    let d = hash2(ix + 1, iy + 1, seed);
    lerp(lerp(a, b, sx), lerp(c, d, sx), sy)
}

fn fbm(x: f32, y: f32, seed: u64, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
    for o in 0..octaves {
        sum += amp
            * vnoise(
                x * f + o as f32 * 17.3,
                y * f - o as f32 * 9.1,
                seed + o as u64,
            );
        norm += amp;
        amp *= 0.5;
        f *= 2.03;
    }
    sum / norm
}

/// A scalar field sampled on a coarse grid and bilinearly interpolated: cheap per pixel and
/// smooth at the pixel scale.
struct Field {
    gw: usize,
    gh: usize,
    inv: f32,
    v: Vec<f32>,
}

impl Field {
    fn new<F: Fn(f32, f32) -> f32>(w: f32, h: f32, step: f32, f: F) -> Field {
        let step = step.max(1.0);
        let gw = (w / step).ceil() as usize + 2;
        let gh = (h / step).ceil() as usize + 2;
        let mut v = Vec::with_capacity(gw * gh);
        for j in 0..gh {
            for i in 0..gw {
                v.push(f(i as f32 * step, j as f32 * step));
            }
        }
        Field {
            gw,
            gh,
            inv: 1.0 / step,
            v,
        }
    }

    #[inline(always)]
    fn at(&self, x: f32, y: f32) -> f32 {
        let gx = (x * self.inv).max(0.0);
        let gy = (y * self.inv).max(0.0);
        let ix = (gx as usize).min(self.gw - 2);
        let iy = (gy as usize).min(self.gh - 2);
        let fx = (gx - ix as f32).min(1.0);
        let fy = (gy - iy as f32).min(1.0);
        let i = iy * self.gw + ix;
        let top = lerp(self.v[i], self.v[i + 1], fx);
        let bot = lerp(self.v[i + self.gw], self.v[i + self.gw + 1], fx);
        lerp(top, bot, fy)
    }
}

// ---------------------------------------------------------------------------------------------
// Small maths
// ---------------------------------------------------------------------------------------------

/// floor() without a libm call (the crate is built without SSE4.1, where `f32::floor` is a call).
#[inline(always)]
fn ffloor(v: f32) -> f32 {
    let t = v as i32 as f32;
    if t > v {
        t - 1.0
    } else {
        t
    }
}

#[inline(always)]
fn fround(v: f32) -> f32 {
    ffloor(v + 0.5)
}

/// Blends `c` over the pixel at byte offset `i` with coverage `a`; same rounding as
/// `RgbImage::blend` for in-range values, but cheaper in the hot loops.
#[inline(always)]
fn blend_at(data: &mut [u8], i: usize, c: [u8; 3], a: f32) {
    let px = &mut data[i..i + 3];
    if a >= 1.0 {
        put3(px, c);
    } else if a > 0.0 {
        let mix1 = |d: u8, s: u8| {
            let d = d as f32;
            (d + (s as f32 - d) * a + 0.5) as u8
        };
        px[0] = mix1(px[0], c[0]);
        px[1] = mix1(px[1], c[1]);
        px[2] = mix1(px[2], c[2]);
    }
}

/// Stores one pixel (a plain 3-byte `copy_from_slice` becomes a memmove call at low opt-levels).
#[inline(always)]
fn put3(px: &mut [u8], c: [u8; 3]) {
    px[0] = c[0];
    px[1] = c[1];
    px[2] = c[2];
}

#[inline(always)]
fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

#[inline(always)]
fn smooth01(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[inline]
fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    smooth01((x - e0) / (e1 - e0))
}

/// Coverage of a pixel by a shape at signed distance `d` (negative inside).
#[inline(always)]
fn cov(d: f32) -> f32 {
    (0.5 - d).clamp(0.0, 1.0)
}

/// atan2 with ~0.001 rad error; cheaper than the libm call in full-frame passes.
#[inline(always)]
fn fast_atan2(y: f32, x: f32) -> f32 {
    let (ax, ay) = (x.abs(), y.abs());
    let mx = ax.max(ay);
    if mx == 0.0 {
        return 0.0;
    }
    let a = ax.min(ay) / mx;
    let s = a * a;
    let mut r = ((-0.046_496_474 * s + 0.159_314_22) * s - 0.327_622_76) * s * a + a;
    if ay > ax {
        r = PI * 0.5 - r;
    }
    if x < 0.0 {
        r = PI - r;
    }
    if y < 0.0 {
        -r
    } else {
        r
    }
}

#[inline(always)]
fn seg_dist(px: f32, py: f32, a: (f32, f32), b: (f32, f32)) -> f32 {
    let (pax, pay) = (px - a.0, py - a.1);
    let (bax, bay) = (b.0 - a.0, b.1 - a.1);
    let t = ((pax * bax + pay * bay) / (bax * bax + bay * bay).max(1e-6)).clamp(0.0, 1.0);
    let (dx, dy) = (pax - bax * t, pay - bay * t);
    (dx * dx + dy * dy).sqrt()
}

/// Signed distance to a rounded box centred at (cx, cy) with half extents (hx, hy).
#[inline(always)]
fn sd_rbox(px: f32, py: f32, cx: f32, cy: f32, hx: f32, hy: f32, r: f32) -> f32 {
    let qx = (px - cx).abs() - hx + r;
    let qy = (py - cy).abs() - hy + r;
    let (ox, oy) = (qx.max(0.0), qy.max(0.0));
    (ox * ox + oy * oy).sqrt() + qx.max(qy).min(0.0) - r
}

/// Signed distance to a five-pointed star (point up) of outer radius `r`.
fn sd_star5(px: f32, py: f32, r: f32, rf: f32) -> f32 {
    let (k1x, k1y) = (0.809_017, -0.587_785);
    let (k2x, k2y) = (-k1x, k1y);
    let mut x = px.abs();
    let mut y = -py;
    let d1 = 2.0 * (k1x * x + k1y * y).max(0.0);
    x -= d1 * k1x;
    y -= d1 * k1y;
    let d2 = 2.0 * (k2x * x + k2y * y).max(0.0);
    x -= d2 * k2x;
    y -= d2 * k2y;
    x = x.abs();
    y -= r;
    let (bax, bay) = (rf * -k1y, rf * k1x - 1.0);
    let hh = ((x * bax + y * bay) / (bax * bax + bay * bay)).clamp(0.0, r);
    let (dx, dy) = (x - bax * hh, y - bay * hh);
    let len = (dx * dx + dy * dy).sqrt();
    if y * bax - x * bay < 0.0 {
        -len
    } else {
        len
    }
}

/// A convex polygon as half-planes; `sdf` is exact inside and along edges, slightly mitred
/// beyond corners.
struct Poly {
    planes: Vec<[f32; 3]>,
    bb: [f32; 4],
}

impl Poly {
    fn new(pts: &[(f32, f32)]) -> Poly {
        let n = pts.len() as f32;
        let cx = pts.iter().map(|p| p.0).sum::<f32>() / n;
        let cy = pts.iter().map(|p| p.1).sum::<f32>() / n;
        let mut planes = Vec::with_capacity(pts.len());
        let mut bb = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        for (i, &a) in pts.iter().enumerate() {
            let b = pts[(i + 1) % pts.len()];
            let (ex, ey) = (b.0 - a.0, b.1 - a.1);
            let len = (ex * ex + ey * ey).sqrt().max(1e-6);
            let (mut nx, mut ny) = (ey / len, -ex / len);
            if nx * (cx - a.0) + ny * (cy - a.1) > 0.0 {
                nx = -nx;
                ny = -ny;
            }
            planes.push([nx, ny, nx * a.0 + ny * a.1]);
            bb = [
                bb[0].min(a.0),
                bb[1].min(a.1),
                bb[2].max(a.0),
                bb[3].max(a.1),
            ];
        }
        Poly { planes, bb }
    }

    #[inline]
    fn sdf(&self, x: f32, y: f32) -> f32 {
        let mut d = f32::MIN;
        for p in &self.planes {
            d = d.max(p[0] * x + p[1] * y - p[2]);
        }
        d
    }

    fn grown(&self, m: f32) -> [f32; 4] {
        grow(self.bb, m)
    }
}

fn grow(bb: [f32; 4], m: f32) -> [f32; 4] {
    [bb[0] - m, bb[1] - m, bb[2] + m, bb[3] + m]
}

fn ngon(cx: f32, cy: f32, r: f32, n: usize, rot: f32) -> Vec<(f32, f32)> {
    (0..n)
        .map(|i| {
            let a = rot + TAU * i as f32 / n as f32;
            (cx + r * a.cos(), cy + r * a.sin())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Colour
// ---------------------------------------------------------------------------------------------

type C3 = [f32; 3];
const WHITE: C3 = [1.0, 1.0, 1.0];
const BLACK: C3 = [0.0, 0.0, 0.0];

#[inline(always)]
fn c8(c: C3) -> [u8; 3] {
    [
        (c[0].clamp(0.0, 1.0) * 255.0 + 0.5) as u8,
        (c[1].clamp(0.0, 1.0) * 255.0 + 0.5) as u8,
        (c[2].clamp(0.0, 1.0) * 255.0 + 0.5) as u8,
    ]
}

fn cf(c: [u8; 3]) -> C3 {
    [
        c[0] as f32 / 255.0,
        c[1] as f32 / 255.0,
        c[2] as f32 / 255.0,
    ]
}

#[inline(always)]
fn mix(a: C3, b: C3, t: f32) -> C3 {
    [
        lerp(a[0], b[0], t),
        lerp(a[1], b[1], t),
        lerp(a[2], b[2], t),
    ]
}

fn scale(c: C3, k: f32) -> C3 {
    [c[0] * k, c[1] * k, c[2] * k]
}

fn gray(v: f32) -> C3 {
    [v, v, v]
}

/// Gray level as bytes (R == G == B by construction).
fn g8(v: f32) -> [u8; 3] {
    c8(gray(v))
}

fn to_hsv(c: C3) -> (f32, f32, f32) {
    let mx = c[0].max(c[1]).max(c[2]);
    let mn = c[0].min(c[1]).min(c[2]);
    let d = mx - mn;
    let h = if d <= 1e-6 {
        0.0
    } else if mx == c[0] {
        ((c[1] - c[2]) / d / 6.0).rem_euclid(1.0)
    } else if mx == c[1] {
        ((c[2] - c[0]) / d + 2.0) / 6.0
    } else {
        ((c[0] - c[1]) / d + 4.0) / 6.0
    };
    let s = if mx <= 1e-6 { 0.0 } else { d / mx };
    (h, s, mx)
}

fn hsv(h: f32, s: f32, v: f32) -> C3 {
    let h = h.rem_euclid(1.0) * 6.0;
    let s = s.clamp(0.0, 1.0);
    let v = v.clamp(0.0, 1.0);
    let i = (ffloor(h) as i32).clamp(0, 5);
    let f = h - i as f32;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match i {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

fn hue_dist(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(1.0);
    d.min(1.0 - d)
}

fn luma(c: C3) -> f32 {
    0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
}

const DEFAULT_PALETTE: [[u8; 3]; 5] = [
    [38, 70, 140],
    [42, 157, 143],
    [233, 196, 106],
    [244, 132, 97],
    [200, 80, 160],
];

/// The channel palette, hue-shifted per scene, with helpers to pick roles.
struct Pal {
    cols: Vec<C3>,
    /// Indices into `cols`, most chromatic first.
    order: Vec<usize>,
}

impl Pal {
    fn new(raw: &[[u8; 3]], shift: f32) -> Pal {
        let src: &[[u8; 3]] = if raw.is_empty() {
            &DEFAULT_PALETTE
        } else {
            raw
        };
        let mut cols: Vec<C3> = src
            .iter()
            .take(8)
            .map(|&c| {
                let (h, s, v) = to_hsv(cf(c));
                hsv(h + shift, s, v)
            })
            .collect();
        while cols.len() < 3 {
            let (h, s, v) = to_hsv(cols[cols.len() - 1]);
            cols.push(hsv(h + 0.31, s.max(0.45), 1.0 - 0.5 * v));
        }
        let chroma = |c: &C3| c[0].max(c[1]).max(c[2]) - c[0].min(c[1]).min(c[2]);
        let mut order: Vec<usize> = (0..cols.len()).collect();
        order.sort_by(|&a, &b| {
            chroma(&cols[b])
                .total_cmp(&chroma(&cols[a]))
                .then(a.cmp(&b))
        });
        Pal { cols, order }
    }

    fn accent(&self, i: usize) -> C3 {
        self.cols[self.order[i % self.order.len()]]
    }

    /// Hue of the i-th accent; gray palette entries get a stable made-up hue.
    fn hue(&self, i: usize) -> f32 {
        let (h, s, _) = to_hsv(self.accent(i));
        if s < 0.1 {
            (0.58 + 0.37 * (i % self.order.len()) as f32).rem_euclid(1.0)
        } else {
            h
        }
    }

    /// Two accent hues at least `min_gap` apart (the second is pushed away if needed).
    fn hue_pair(&self, i: usize, min_gap: f32) -> (f32, f32) {
        let a = self.hue(i);
        let mut b = self.hue(i + 1);
        for k in 2..self.order.len() {
            if hue_dist(a, b) >= min_gap {
                break;
            }
            b = self.hue(i + k);
        }
        if hue_dist(a, b) < min_gap {
            b = a + 0.5;
        }
        (a, b)
    }

    /// The palette hue closest to `target`, pulled `pull` of the way towards it.
    fn hue_near(&self, target: f32, pull: f32) -> f32 {
        let mut best = target;
        let mut bd = f32::MAX;
        for (k, c) in self.cols.iter().enumerate() {
            let (h, s, _) = to_hsv(*c);
            if s < 0.15 {
                continue;
            }
            let d = hue_dist(h, target) + 0.001 * k as f32;
            if d < bd {
                bd = d;
                best = h;
            }
        }
        let mut diff = (target - best).rem_euclid(1.0);
        if diff > 0.5 {
            diff -= 1.0;
        }
        (best + diff * pull).rem_euclid(1.0)
    }

    fn darkest(&self) -> C3 {
        *self
            .cols
            .iter()
            .min_by(|a, b| luma(**a).total_cmp(&luma(**b)))
            .unwrap_or(&BLACK)
    }

    fn lightest(&self) -> C3 {
        *self
            .cols
            .iter()
            .max_by(|a, b| luma(**a).total_cmp(&luma(**b)))
            .unwrap_or(&WHITE)
    }
}

// ---------------------------------------------------------------------------------------------
// Motifs and per-scene context
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Default, Debug)]
struct Motifs {
    sun: bool,
    night: bool,
    sunset: bool,
    city: bool,
    rain: bool,
    storm: bool,
    snow: bool,
    sea: bool,
    mountain: bool,
    forest: bool,
    fire: bool,
    space: bool,
    rainbow: bool,
    flower: bool,
}

impl Motifs {
    fn parse(words: &[String]) -> Motifs {
        let mut m = Motifs::default();
        for w in words {
            match w.trim().to_ascii_lowercase().as_str() {
                "sun" | "sunny" | "sunshine" | "sunlight" | "day" | "summer" | "daylight" => {
                    m.sun = true
                }
                "night" | "midnight" | "dark" | "darkness" | "evening" | "moon" | "moonlight"
                | "nighttime" => m.night = true,
                "sunset" | "sunrise" | "dusk" | "dawn" | "twilight" | "golden" => m.sunset = true,
                "city" | "cities" | "town" | "urban" | "skyline" | "street" | "building"
                | "buildings" | "downtown" | "skyscraper" | "skyscrapers" => m.city = true,
                "rain" | "rainy" | "raining" | "drizzle" | "shower" => m.rain = true,
                "storm" | "stormy" | "thunder" | "lightning" | "thunderstorm" => {
                    m.rain = true;
                    m.storm = true
                }
                "snow" | "snowy" | "winter" | "blizzard" | "ice" | "frost" => m.snow = true,
                "sea" | "ocean" | "beach" | "wave" | "waves" | "water" | "lake" | "river"
                | "coast" | "island" | "shore" => m.sea = true,
                "mountain" | "mountains" | "hill" | "hills" | "peak" | "peaks" | "cliff"
                | "valley" | "alps" => m.mountain = true,
                "forest" | "tree" | "trees" | "woods" | "jungle" | "nature" | "pine" => {
                    m.forest = true
                }
                "fire" | "flame" | "flames" | "burning" | "explosion" | "lava" | "volcano"
                | "blaze" | "inferno" => m.fire = true,
                "space" | "star" | "stars" | "galaxy" | "planet" | "planets" | "cosmos"
                | "universe" | "rocket" | "astronaut" | "cosmic" | "nebula" => m.space = true,
                "rainbow" | "rainbows" => m.rainbow = true,
                "flower" | "flowers" | "spring" | "blossom" | "blossoms" | "sakura" | "garden"
                | "petals" => m.flower = true,
                _ => {}
            }
        }
        m
    }

    fn dark(&self) -> bool {
        self.night || self.space
    }
}

struct Ctx {
    w: f32,
    h: f32,
    /// The shorter side: the unit for sizes, so compositions scale with the frame.
    s: f32,
    portrait: bool,
    m: Motifs,
    pal: Pal,
    seed: u64,
    idx: usize,
    /// Position of the scene in the video, 0..=1.
    prog: f32,
    /// Per-scene variation values in [0, 1).
    var: [f32; 4],
}

impl Ctx {
    fn new(spec: &PaintSpec) -> Ctx {
        let (w, h) = (spec.width as f32, spec.height as f32);
        let idx = spec.scene_index;
        let shift = ((idx as f32 * 0.618_034 + 0.5).fract() - 0.5) * 0.12;
        let mut vr = Rng::new(spec.seed ^ (idx as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        let var = [vr.f(), vr.f(), vr.f(), vr.f()];
        let prog = if spec.scene_count > 1 {
            (idx as f32 / (spec.scene_count - 1) as f32).min(1.0)
        } else {
            0.5
        };
        Ctx {
            w,
            h,
            s: w.min(h),
            portrait: h > w * 1.05,
            m: Motifs::parse(spec.motifs),
            pal: Pal::new(spec.palette, shift),
            seed: spec.seed,
            idx,
            prog,
            var,
        }
    }

    fn rng(&self, salt: u64) -> Rng {
        Rng::new(
            self.seed
                ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (self.idx as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
        )
    }

    /// How many items of something to scatter, scaled with the frame's aspect.
    fn count(&self, per_square: f32) -> usize {
        (per_square * self.w * self.h / (self.s * self.s)).round() as usize
    }

    /// y beyond which the caption band lies.
    fn caption_y(&self) -> f32 {
        self.h * 0.78
    }
}

// ---------------------------------------------------------------------------------------------
// Raster primitives
// ---------------------------------------------------------------------------------------------

/// Calls `f` at each pixel centre inside the (clipped) box; `f` returns colour and coverage.
fn shade_box<F: FnMut(f32, f32) -> Option<([u8; 3], f32)>>(
    img: &mut RgbImage,
    bb: [f32; 4],
    mut f: F,
) {
    let x0 = bb[0].floor().max(0.0) as i64;
    let y0 = bb[1].floor().max(0.0) as i64;
    let x1 = (bb[2].ceil().max(0.0) as i64).min(img.width as i64);
    let y1 = (bb[3].ceil().max(0.0) as i64).min(img.height as i64);
    let w = img.width as usize;
    for y in y0..y1 {
        let py = y as f32 + 0.5;
        let row = y as usize * w;
        for x in x0..x1 {
            if let Some((c, a)) = f(x as f32 + 0.5, py) {
                if a > 0.002 {
                    blend_at(&mut img.data, (row + x as usize) * 3, c, a);
                }
            }
        }
    }
}

fn fill_sdf<F: Fn(f32, f32) -> f32>(img: &mut RgbImage, bb: [f32; 4], col: C3, alpha: f32, sdf: F) {
    let c = c8(col);
    shade_box(img, bb, |x, y| {
        let a = cov(sdf(x, y));
        (a > 0.0).then_some((c, a * alpha))
    });
}

/// Fill plus a stroke straddling the outline (the comic-book "thick black line").
fn fill_outlined<F: Fn(f32, f32) -> f32>(
    img: &mut RgbImage,
    bb: [f32; 4],
    fill: C3,
    line: C3,
    lw: f32,
    sdf: F,
) {
    let (f, l) = (c8(fill), c8(line));
    let half = lw * 0.5;
    let x0 = bb[0] - half - 1.0;
    let y0 = bb[1] - half - 1.0;
    let x1 = bb[2] + half + 1.0;
    let y1 = bb[3] + half + 1.0;
    let x0i = x0.floor().max(0.0) as i64;
    let y0i = y0.floor().max(0.0) as i64;
    let x1i = (x1.ceil().max(0.0) as i64).min(img.width as i64);
    let y1i = (y1.ceil().max(0.0) as i64).min(img.height as i64);
    for y in y0i..y1i {
        let py = y as f32 + 0.5;
        for x in x0i..x1i {
            let d = sdf(x as f32 + 0.5, py);
            let outer = cov(d - half);
            if outer <= 0.0 {
                continue;
            }
            let i = (y as usize * img.width as usize + x as usize) * 3;
            blend_at(&mut img.data, i, l, outer);
            blend_at(&mut img.data, i, f, cov(d + half));
        }
    }
}

fn disc(img: &mut RgbImage, cx: f32, cy: f32, r: f32, col: C3, alpha: f32) {
    fill_sdf(
        img,
        [cx - r - 1.0, cy - r - 1.0, cx + r + 1.0, cy + r + 1.0],
        col,
        alpha,
        |x, y| {
            let (dx, dy) = (x - cx, y - cy);
            (dx * dx + dy * dy).sqrt() - r
        },
    );
}

fn ring(img: &mut RgbImage, cx: f32, cy: f32, r: f32, lw: f32, col: C3, alpha: f32) {
    let m = r + lw + 1.0;
    fill_sdf(img, [cx - m, cy - m, cx + m, cy + m], col, alpha, |x, y| {
        let (dx, dy) = (x - cx, y - cy);
        ((dx * dx + dy * dy).sqrt() - r).abs() - lw * 0.5
    });
}

/// A round-capped line of radius `r` (anti-aliased, at least ~1px visually).
fn capsule(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), r: f32, col: C3, alpha: f32) {
    // Very thin lines keep their ink but spread it over a pixel, to avoid sub-pixel shimmer.
    let (r, alpha) = if r < 0.6 {
        (0.6, alpha * (r / 0.6))
    } else {
        (r, alpha)
    };
    let m = r + 1.0;
    let bb = [
        a.0.min(b.0) - m,
        a.1.min(b.1) - m,
        a.0.max(b.0) + m,
        a.1.max(b.1) + m,
    ];
    fill_sdf(img, bb, col, alpha, |x, y| seg_dist(x, y, a, b) - r);
}

/// Soft radial glow: full `alpha` inside `r0`, quadratic falloff to zero at `r1`.
fn glow(img: &mut RgbImage, cx: f32, cy: f32, r0: f32, r1: f32, col: C3, alpha: f32) {
    let c = c8(col);
    let inv = 1.0 / (r1 - r0).max(1e-3);
    shade_box(img, [cx - r1, cy - r1, cx + r1, cy + r1], |x, y| {
        let (dx, dy) = (x - cx, y - cy);
        let d = (dx * dx + dy * dy).sqrt();
        let t = (1.0 - (d - r0) * inv).clamp(0.0, 1.0);
        (t > 0.0).then_some((c, alpha * t * t))
    });
}

/// A four-pointed sparkle with a soft halo.
fn sparkle(img: &mut RgbImage, cx: f32, cy: f32, r: f32, col: C3, alpha: f32) {
    glow(img, cx, cy, 0.0, r * 0.9, col, alpha * 0.5);
    let thin = r * 0.16;
    let k = r * thin / (r * r + thin * thin).sqrt();
    fill_sdf(
        img,
        [cx - r - 1.0, cy - r - 1.0, cx + r + 1.0, cy + r + 1.0],
        col,
        alpha,
        |x, y| {
            let (dx, dy) = ((x - cx).abs(), (y - cy).abs());
            let a = (dx / r + dy / thin - 1.0) * k;
            let b = (dx / thin + dy / r - 1.0) * k;
            a.min(b)
        },
    );
}

/// Vertical gradient over the whole frame; stops are (y in pixels, colour), smoothstepped.
fn vgradient(img: &mut RgbImage, stops: &[(f32, C3)]) {
    let w = img.width as usize;
    for (y, row) in img.data.chunks_exact_mut(w * 3).enumerate() {
        let col = c8(grad_at(stops, y as f32 + 0.5));
        for px in row.chunks_exact_mut(3) {
            put3(px, col);
        }
    }
}

fn grad_at(stops: &[(f32, C3)], t: f32) -> C3 {
    if t <= stops[0].0 {
        return stops[0].1;
    }
    for win in stops.windows(2) {
        if t <= win[1].0 {
            let u = (t - win[0].0) / (win[1].0 - win[0].0).max(1e-6);
            return mix(win[0].1, win[1].1, smooth01(u));
        }
    }
    stops[stops.len() - 1].1
}

/// Fills everything below the ridge line `top(x)`, anti-aliased with four sub-columns per pixel.
/// `shade(x, y, depth_below_ridge)` gives colour and opacity.
fn fill_below<T, S>(img: &mut RgbImage, top: T, shade: S)
where
    T: Fn(f32) -> f32,
    S: FnMut(f32, f32, f32) -> ([u8; 3], f32),
{
    fill_below_to(img, top, f32::MAX, shade);
}

/// [`fill_below`] that stops at row `y_end` (for washes that have faded out by then).
fn fill_below_to<T, S>(img: &mut RgbImage, top: T, y_end: f32, mut shade: S)
where
    T: Fn(f32) -> f32,
    S: FnMut(f32, f32, f32) -> ([u8; 3], f32),
{
    let w = img.width as usize;
    let h = (img.height as usize).min(y_end.max(0.0).ceil().min(1e9) as usize);
    let mut tops: Vec<[f32; 4]> = Vec::with_capacity(w);
    let mut ymin = f32::MAX;
    for x in 0..w {
        let xf = x as f32;
        let t = [
            top(xf + 0.125),
            top(xf + 0.375),
            top(xf + 0.625),
            top(xf + 0.875),
        ];
        for v in t {
            ymin = ymin.min(v);
        }
        tops.push(t);
    }
    if !ymin.is_finite() && ymin != f32::MIN {
        return;
    }
    let ys = ymin.floor().max(0.0) as usize;
    for y in ys..h {
        let yf = y as f32;
        for (x, t) in tops.iter().enumerate() {
            let mut cv = 0.0;
            for v in t {
                cv += (yf + 1.0 - v).clamp(0.0, 1.0);
            }
            if cv <= 0.0 {
                continue;
            }
            let mean = 0.25 * (t[0] + t[1] + t[2] + t[3]);
            let (col, a) = shade(x as f32 + 0.5, yf + 0.5, yf + 0.5 - mean);
            blend_at(&mut img.data, (y * w + x) * 3, col, a * cv * 0.25);
        }
    }
}

/// Copies `src` over `dst` where `sdf` < 0 (anti-aliased), inside the box.
fn composite<F: Fn(f32, f32) -> f32>(dst: &mut RgbImage, src: &RgbImage, bb: [f32; 4], sdf: F) {
    let w = dst.width as usize;
    let x0 = bb[0].floor().max(0.0) as usize;
    let y0 = bb[1].floor().max(0.0) as usize;
    let x1 = (bb[2].ceil().max(0.0) as usize).min(w);
    let y1 = (bb[3].ceil().max(0.0) as usize).min(dst.height as usize);
    for y in y0..y1 {
        for x in x0..x1 {
            let a = cov(sdf(x as f32 + 0.5, y as f32 + 0.5));
            if a <= 0.0 {
                continue;
            }
            let i = (y * w + x) * 3;
            if a >= 1.0 {
                dst.data[i] = src.data[i];
                dst.data[i + 1] = src.data[i + 1];
                dst.data[i + 2] = src.data[i + 2];
            } else {
                let c = [src.data[i], src.data[i + 1], src.data[i + 2]];
                blend_at(&mut dst.data, i, c, a);
            }
        }
    }
}

/// Fills a box of the image with one colour (no anti-aliasing; for layer backgrounds).
fn fill_box(img: &mut RgbImage, bb: [f32; 4], col: C3) {
    let c = c8(col);
    let w = img.width as usize;
    let x0 = bb[0].floor().max(0.0) as usize;
    let y0 = bb[1].floor().max(0.0) as usize;
    let x1 = (bb[2].ceil().max(0.0) as usize).min(w);
    let y1 = (bb[3].ceil().max(0.0) as usize).min(img.height as usize);
    for y in y0..y1 {
        for px in img.data[(y * w + x0) * 3..(y * w + x1.max(x0)) * 3].chunks_exact_mut(3) {
            put3(px, c);
        }
    }
}

/// A calligraphic stroke along a polyline: discs stamped into a coverage buffer (max, so no
/// double-darkening), radius from `radius(t)` with t in 0..=1 along the stroke; ink density is
/// modulated by the smooth field `tex` (values around 0.5).
fn brush<R: Fn(f32) -> f32>(
    img: &mut RgbImage,
    pts: &[(f32, f32)],
    radius: R,
    ink: C3,
    alpha: f32,
    tex: &Field,
) {
    if pts.len() < 2 {
        return;
    }
    let mut rmax: f32 = 0.0;
    for i in 0..=16 {
        rmax = rmax.max(radius(i as f32 / 16.0));
    }
    let mut bb = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
    for p in pts {
        bb = [
            bb[0].min(p.0),
            bb[1].min(p.1),
            bb[2].max(p.0),
            bb[3].max(p.1),
        ];
    }
    let bb = grow(bb, rmax + 2.0);
    let x0 = bb[0].floor().max(0.0) as i64;
    let y0 = bb[1].floor().max(0.0) as i64;
    let x1 = (bb[2].ceil().max(0.0) as i64).min(img.width as i64);
    let y1 = (bb[3].ceil().max(0.0) as i64).min(img.height as i64);
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    let (bw, bh) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let mut buf = vec![0.0f32; bw * bh];
    let total: f32 = pts
        .windows(2)
        .map(|p| ((p[1].0 - p[0].0).powi(2) + (p[1].1 - p[0].1).powi(2)).sqrt())
        .sum::<f32>()
        .max(1e-3);
    let mut walked = 0.0;
    for seg in pts.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let mut u = 0.0;
        while u <= len {
            let t = (walked + u) / total;
            let r = radius(t);
            let k = if len > 0.0 { u / len } else { 0.0 };
            let (cx, cy) = (lerp(a.0, b.0, k), lerp(a.1, b.1, k));
            if r > 0.05 {
                let (re, a_scale) = if r < 0.7 { (0.7, r / 0.7) } else { (r, 1.0) };
                let sx0 = (ffloor(cx - re - 1.0) as i64).max(x0);
                let sy0 = (ffloor(cy - re - 1.0) as i64).max(y0);
                let sx1 = ((cx + re + 1.0).ceil() as i64).min(x1);
                let sy1 = ((cy + re + 1.0).ceil() as i64).min(y1);
                for py in sy0..sy1 {
                    let dy = py as f32 + 0.5 - cy;
                    let row = (py - y0) as usize * bw;
                    for px in sx0..sx1 {
                        let dx = px as f32 + 0.5 - cx;
                        let c = cov((dx * dx + dy * dy).sqrt() - re) * a_scale;
                        let slot = &mut buf[row + (px - x0) as usize];
                        if c > *slot {
                            *slot = c;
                        }
                    }
                }
            }
            u += (0.3 * r).clamp(0.35, 4.0);
        }
        walked += len;
    }
    let c = c8(ink);
    for py in 0..bh {
        for px in 0..bw {
            let v = buf[py * bw + px];
            if v > 0.0 {
                let (x, y) = (x0 + px as i64, y0 + py as i64);
                let t = tex.at(x as f32, y as f32);
                let i = (y as usize * img.width as usize + x as usize) * 3;
                blend_at(&mut img.data, i, c, v * alpha * (0.7 + 0.6 * t).min(1.0));
            }
        }
    }
}

/// Points along a quadratic Bézier.
fn bezier(a: (f32, f32), c: (f32, f32), b: (f32, f32), n: usize) -> Vec<(f32, f32)> {
    (0..=n)
        .map(|i| {
            let t = i as f32 / n as f32;
            let u = 1.0 - t;
            (
                u * u * a.0 + 2.0 * u * t * c.0 + t * t * b.0,
                u * u * a.1 + 2.0 * u * t * c.1 + t * t * b.1,
            )
        })
        .collect()
}

/// Pressure profile of a brush stroke: quick attack, long taper.
fn pressure(t: f32) -> f32 {
    smoothstep(0.0, 0.12, t) * (1.0 - smoothstep(0.55, 1.0, t) * 0.92)
}

/// Screentone / halftone coverage: dots of radius `tone` (0..1 of the half-period) on a grid
/// rotated 45 degrees with the given period. Returns ink coverage at (x, y).
#[inline(always)]
fn halftone(x: f32, y: f32, period: f32, tone: f32) -> f32 {
    if tone <= 0.0 {
        return 0.0;
    }
    let inv = 1.0 / period;
    let u = (x + y) * std::f32::consts::FRAC_1_SQRT_2 * inv;
    let v = (x - y) * std::f32::consts::FRAC_1_SQRT_2 * inv;
    let fu = u - ffloor(u) - 0.5;
    let fv = v - ffloor(v) - 0.5;
    let d = (fu * fu + fv * fv).sqrt() * period;
    // Dot area grows with tone; above ~0.78 the dots merge into a solid.
    let r = period * 0.5 * (tone.min(1.0) * 1.5).sqrt().min(1.0) * 0.82;
    if tone > 0.9 {
        return 1.0_f32.min(cov(d - r) + (tone - 0.9) * 10.0);
    }
    cov(d - r)
}

// ---------------------------------------------------------------------------------------------
// Landscape building blocks
// ---------------------------------------------------------------------------------------------

/// A ridge line y(x): rolling sine hills and/or triangular peaks.
struct Ridge {
    base: f32,
    waves: Vec<[f32; 3]>,
    peaks: Vec<[f32; 3]>,
}

impl Ridge {
    fn hills(rng: &mut Rng, base: f32, amp: f32, s: f32) -> Ridge {
        let waves = (0..3)
            .map(|i| {
                let k = 0.5f32.powi(i);
                [
                    amp * k * rng.range(0.7, 1.1),
                    TAU / (s * 1.3 * k * rng.range(0.8, 1.25)),
                    rng.range(0.0, TAU),
                ]
            })
            .collect();
        Ridge {
            base,
            waves,
            peaks: Vec::new(),
        }
    }

    fn mountains(rng: &mut Rng, base: f32, height: f32, w: f32, s: f32, rough: f32) -> Ridge {
        let n = (w / (s * 0.32)).ceil() as usize + 2;
        let step = w / (n - 1) as f32;
        let peaks = (0..n)
            .map(|i| {
                [
                    (i as f32 - 0.5 + rng.f()) * step,
                    height * rng.range(0.45, 1.0),
                    s * rng.range(0.22, 0.42),
                ]
            })
            .collect();
        let waves = vec![
            [s * 0.006 * rough, TAU / (s * 0.045), rng.range(0.0, TAU)],
            [s * 0.012 * rough, TAU / (s * 0.13), rng.range(0.0, TAU)],
        ];
        Ridge { base, waves, peaks }
    }

    fn at(&self, x: f32) -> f32 {
        let mut y = self.base;
        for w in &self.waves {
            y -= w[0] * (x * w[1] + w[2]).sin();
        }
        let mut pk: f32 = 0.0;
        for p in &self.peaks {
            let t = 1.0 - (x - p[0]).abs() / p[2];
            if t > 0.0 {
                pk = pk.max(p[1] * t.powf(1.25));
            }
        }
        y - pk
    }
}

/// A row of rectangular buildings standing on `base`.
struct Skyline {
    xs: Vec<f32>,
    tops: Vec<f32>,
    base: f32,
}

impl Skyline {
    fn new(rng: &mut Rng, w: f32, s: f32, base: f32, hmin: f32, hmax: f32) -> Skyline {
        let mut xs = vec![-s * 0.03 * rng.f()];
        let mut tops = Vec::new();
        while xs[xs.len() - 1] < w {
            let bw = s * rng.range(0.035, 0.085);
            let mut hh = rng.range(hmin, hmax);
            if rng.chance(0.15) {
                hh *= 1.35;
            }
            xs.push(xs[xs.len() - 1] + bw);
            tops.push(base - hh);
        }
        Skyline { xs, tops, base }
    }

    fn at(&self, x: f32) -> f32 {
        let i = self.xs.partition_point(|&v| v <= x);
        if i == 0 || i > self.tops.len() {
            self.base
        } else {
            self.tops[i - 1]
        }
    }

    /// Little rectangular windows; `prob` of each being drawn.
    fn windows(&self, img: &mut RgbImage, rng: &mut Rng, s: f32, col: C3, prob: f32, alpha: f32) {
        let (ww, wh) = ((s * 0.0075).max(1.5), (s * 0.011).max(2.0));
        let (gx, gy) = ((s * 0.017).max(3.5), (s * 0.024).max(5.0));
        for (i, &top) in self.tops.iter().enumerate() {
            let (x0, x1) = (self.xs[i], self.xs[i + 1]);
            let cols = ((x1 - x0 - s * 0.012) / gx).floor().max(0.0) as usize;
            let rows = ((self.base - top - s * 0.015) / gy).floor().max(0.0) as usize;
            let off = (x1 - x0 - cols as f32 * gx) * 0.5 + gx * 0.5;
            for r in 0..rows {
                for c in 0..cols {
                    if !rng.chance(prob) {
                        continue;
                    }
                    let cx = x0 + off + c as f32 * gx;
                    let cy = top + s * 0.015 + r as f32 * gy + wh * 0.5;
                    let bb = [cx - ww, cy - wh, cx + ww, cy + wh];
                    fill_sdf(img, bb, col, alpha, |x, y| {
                        sd_rbox(x, y, cx, cy, ww * 0.5, wh * 0.5, 0.5)
                    });
                }
            }
        }
    }
}

/// A layered pine tree silhouette standing at (x, base).
fn pine_polys(x: f32, base: f32, height: f32) -> Vec<Poly> {
    (0..3)
        .map(|i| {
            let k = i as f32;
            let top = base - height * (1.0 - k * 0.22);
            let bot = base - height * (0.45 - k * 0.22);
            let half = height * (0.17 + 0.07 * k);
            Poly::new(&[(x, top), (x + half, bot), (x - half, bot)])
        })
        .collect()
}

fn pine(img: &mut RgbImage, x: f32, base: f32, height: f32, col: C3, alpha: f32) {
    let polys = pine_polys(x, base, height);
    let bb = [
        x - height * 0.4,
        base - height - 1.0,
        x + height * 0.4,
        base + 1.0,
    ];
    // Union of the tiers as one shape so the overlaps do not double-blend.
    fill_sdf(img, bb, col, alpha, |px, py| {
        let mut d = f32::MAX;
        for p in &polys {
            d = d.min(p.sdf(px, py));
        }
        d.min(sd_rbox(
            px,
            py,
            x,
            base - height * 0.05,
            height * 0.035,
            height * 0.08,
            0.0,
        ))
    });
}

/// Crescent moon: disc minus an offset disc.
fn crescent(img: &mut RgbImage, cx: f32, cy: f32, r: f32, col: C3, alpha: f32) {
    let (ox, oy) = (cx + r * 0.45, cy - r * 0.2);
    fill_sdf(
        img,
        [cx - r - 1.0, cy - r - 1.0, cx + r + 1.0, cy + r + 1.0],
        col,
        alpha,
        |x, y| {
            let d1 = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - r;
            let d2 = ((x - ox).powi(2) + (y - oy).powi(2)).sqrt() - r * 0.88;
            d1.max(-d2)
        },
    );
}

/// Scattered star points (never below `y1`).
fn starfield(img: &mut RgbImage, c: &Ctx, rng: &mut Rng, n: usize, y1: f32, col: C3) {
    for _ in 0..n {
        let x = rng.f() * c.w;
        let y = rng.f().powf(1.4) * y1;
        let big = rng.f().powi(4);
        let r = (c.s * (0.0011 + 0.004 * big)).max(0.8);
        let a = rng.range(0.45, 1.0);
        if big > 0.55 {
            sparkle(img, x, y, r * 3.5, col, a);
        } else {
            glow(img, x, y, 0.0, r * 3.0, col, a * 0.25);
            disc(img, x, y, r, col, a);
        }
    }
}

/// A shaded planet with a tilted ring.
fn planet(img: &mut RgbImage, cx: f32, cy: f32, r: f32, body: C3, ringc: C3, shadow: C3) {
    let tilt: f32 = -0.35;
    let (ct, st) = (tilt.cos(), tilt.sin());
    let ring_d = |x: f32, y: f32| {
        let (dx, dy) = (x - cx, y - cy);
        let u = dx * ct + dy * st;
        let v = -dx * st + dy * ct;
        let e = ((u / (r * 1.75)).powi(2) + (v / (r * 0.42)).powi(2)).sqrt();
        ((e - 1.0) * r * 0.42).abs() - r * 0.07
    };
    let m = r * 1.9;
    let bb = [cx - m, cy - m, cx + m, cy + m];
    let rc = c8(ringc);
    // Back half of the ring.
    shade_box(img, bb, |x, y| {
        let v = -(x - cx) * st + (y - cy) * ct;
        (v < 0.0).then(|| (rc, cov(ring_d(x, y))))
    });
    let (b8, s8) = (body, shadow);
    shade_box(img, grow([cx - r, cy - r, cx + r, cy + r], 1.0), |x, y| {
        let (dx, dy) = (x - cx, y - cy);
        let d = (dx * dx + dy * dy).sqrt();
        let a = cov(d - r);
        if a <= 0.0 {
            return None;
        }
        // Cel-style terminator: lit crescent vs shadow, soft 2px edge.
        let sd = ((dx + r * 0.35).powi(2) + (dy + r * 0.3).powi(2)).sqrt() - r * 1.05;
        let t = smoothstep(-1.5, 1.5, sd);
        let band = 0.5 + 0.5 * ((dy / r) * 5.0 + (dx / r) * 0.8).sin();
        let col = mix(mix(b8, WHITE, 0.12 * band), s8, t * 0.85);
        Some((c8(col), a))
    });
    shade_box(img, bb, |x, y| {
        let v = -(x - cx) * st + (y - cy) * ct;
        (v >= 0.0).then(|| (rc, cov(ring_d(x, y))))
    });
}

/// Rain streaks, lighter in the caption band.
fn rain(img: &mut RgbImage, c: &Ctx, rng: &mut Rng, col: C3, alpha: f32, n_per: f32) {
    let n = c.count(n_per);
    let ang: f32 = 0.22;
    for _ in 0..n {
        let x = rng.range(-0.1, 1.1) * c.w;
        let y = rng.f() * c.h;
        let len = c.s * rng.range(0.03, 0.07);
        let (dx, dy) = (ang.sin() * len, ang.cos() * len);
        let a = alpha * rng.range(0.5, 1.0) * if y > c.caption_y() { 0.45 } else { 1.0 };
        capsule(
            img,
            (x, y),
            (x - dx, y + dy),
            (c.s * 0.0011).max(0.55),
            col,
            a,
        );
    }
}

fn snow(img: &mut RgbImage, c: &Ctx, rng: &mut Rng, col: C3, alpha: f32) {
    for _ in 0..c.count(160.0) {
        let x = rng.f() * c.w;
        let y = rng.f() * c.h;
        let r = (c.s * rng.range(0.0018, 0.0055)).max(1.0);
        let a = alpha * if y > c.caption_y() { 0.5 } else { 1.0 };
        disc(img, x, y, r, col, a);
    }
}

/// Zig-zag lightning bolt with a glow.
fn lightning(img: &mut RgbImage, c: &Ctx, rng: &mut Rng, col: C3) {
    let mut pts = vec![(c.w * rng.range(0.25, 0.75), 0.0)];
    let end = c.h * rng.range(0.45, 0.6);
    let steps = 7;
    for i in 1..=steps {
        let (px, _) = pts[pts.len() - 1];
        pts.push((
            px + c.s * rng.range(-0.07, 0.07),
            end * i as f32 / steps as f32,
        ));
    }
    for p in pts.windows(2) {
        capsule(img, p[0], p[1], c.s * 0.012, col, 0.25);
    }
    for p in pts.windows(2) {
        capsule(img, p[0], p[1], (c.s * 0.0035).max(1.0), WHITE, 0.95);
    }
}

/// A rainbow arc (smooth spectrum, drawn before the landscape so hills occlude its feet).
fn rainbow(img: &mut RgbImage, cx: f32, cy: f32, r: f32, bw: f32, alpha: f32) {
    let m = r + 2.0;
    shade_box(img, [cx - m, cy - m, cx + m, cy], |x, y| {
        let (dx, dy) = (x - cx, y - cy);
        let d = (dx * dx + dy * dy).sqrt();
        let u = (d - (r - bw)) / bw;
        if !(-0.1..=1.1).contains(&u) {
            return None;
        }
        let edge = cov((u - 1.0) * bw).min(cov(-u * bw));
        let col = hsv(0.78 * (1.0 - u.clamp(0.0, 1.0)), 0.75, 1.0);
        Some((c8(col), edge * alpha))
    });
}

/// A soft translucent band (milky way) along a line.
fn milky_way(img: &mut RgbImage, c: &Ctx, col: C3, alpha: f32, y_max: f32) {
    let (ax, ay) = (0.0, c.h * (0.1 + 0.3 * c.var[1]));
    let (bx, by) = (c.w, c.h * (0.05 + 0.2 * c.var[2]));
    let (nx, ny) = {
        let (dx, dy) = (bx - ax, by - ay);
        let l = (dx * dx + dy * dy).sqrt();
        (-dy / l, dx / l)
    };
    let width = c.s * 0.12;
    let seed = c.seed ^ 0x77;
    let tex = Field::new(c.w, y_max, (c.s / 120.0).max(2.0), |x, y| {
        fbm(x / (c.s * 0.12), y / (c.s * 0.12), seed, 3)
    });
    let cc = c8(col);
    shade_box(img, [0.0, 0.0, c.w, y_max], |x, y| {
        let d = ((x - ax) * nx + (y - ay) * ny) / width;
        let t = (-d * d).exp() * (tex.at(x, y) * 1.6 - 0.3).max(0.0);
        (t > 0.01).then_some((cc, alpha * t.min(1.0)))
    });
}

// ---------------------------------------------------------------------------------------------
// Anime
// ---------------------------------------------------------------------------------------------

/// A cel-shaded cumulus: a union of puffs with a flat base, a lit upper part and a shadow tone.
fn cel_cloud(img: &mut RgbImage, rng: &mut Rng, cx: f32, cy: f32, size: f32, lit: C3, shadow: C3) {
    let n = 6 + rng.below(3);
    let puffs: Vec<[f32; 3]> = (0..n)
        .map(|i| {
            let t = i as f32 / (n - 1) as f32 * 2.0 - 1.0;
            let bulge = 1.0 - t * t;
            let r = size * (0.22 + 0.38 * bulge) * rng.range(0.8, 1.15);
            let lift = size * 0.35 * bulge * rng.range(0.6, 1.2);
            [
                cx + t * size * 1.15 + rng.range(-0.1, 0.1) * size,
                cy - r * 0.6 - lift,
                r,
            ]
        })
        .collect();
    let base = cy + size * 0.18;
    let union = |x: f32, y: f32, shrink: f32, ox: f32, oy: f32| {
        let mut d = f32::MAX;
        for p in &puffs {
            let (dx, dy) = (x - p[0] - ox * p[2], y - p[1] - oy * p[2]);
            d = d.min((dx * dx + dy * dy).sqrt() - p[2] * shrink);
        }
        d
    };
    let (l8, sh) = (lit, shadow);
    let bb = [
        cx - size * 1.8,
        cy - size * 1.4,
        cx + size * 1.8,
        base + 2.0,
    ];
    shade_box(img, bb, |x, y| {
        let d = union(x, y, 1.0, 0.0, 0.0).max(y - base);
        let a = cov(d);
        if a <= 0.0 {
            return None;
        }
        let dl = union(x, y, 0.86, -0.12, -0.2).max(y - base + size * 0.22);
        let t = cov(dl);
        Some((c8(mix(sh, l8, t)), a))
    });
}

fn anime(img: &mut RgbImage, c: &Ctx) {
    let (w, h, s) = (c.w, c.h, c.s);
    let m = c.m;
    let mut rng = c.rng(11);
    let sh = c.pal.hue_near(0.58, 0.5);
    let ss: f32 = 0.62;
    let warm = c.pal.accent(c.idx + 1);
    let night = m.dark();
    let dusk = (m.sunset || m.fire) && !night;
    let horizon = h * if c.portrait {
        0.6
    } else {
        0.56 + 0.08 * c.var[0]
    };
    let (mut top, mut mid, mut hor) = if night {
        (
            hsv(sh + 0.02, 0.75, 0.10),
            hsv(sh, 0.65, 0.22),
            mix(hsv(to_hsv(warm).0, 0.45, 0.5), hsv(sh, 0.5, 0.38), 0.5),
        )
    } else if dusk {
        (
            hsv(sh + 0.06, 0.55, 0.55),
            hsv(0.95, 0.42, 0.9),
            hsv(0.08, 0.55, 1.0),
        )
    } else {
        (
            hsv(sh, ss.clamp(0.5, 0.72), 0.88),
            hsv(sh - 0.01, 0.3, 0.98),
            mix(mix(warm, WHITE, 0.65), hsv(sh, 0.1, 1.0), 0.4),
        )
    };
    if m.rain && !night {
        top = mix(top, gray(luma(top) * 0.8), 0.6);
        mid = mix(mid, gray(luma(mid) * 0.85), 0.5);
        hor = mix(hor, gray(luma(hor) * 0.9), 0.4);
    }
    vgradient(
        img,
        &[(0.0, top), (horizon * 0.62, mid), (horizon, hor), (h, hor)],
    );

    if night {
        milky_way(
            img,
            c,
            mix(hsv(sh + 0.1, 0.35, 1.0), WHITE, 0.3),
            0.35,
            horizon,
        );
        starfield(
            img,
            c,
            &mut rng,
            c.count(110.0),
            horizon * 0.95,
            [1.0, 0.97, 0.9],
        );
    }

    // Sun or moon, drifting across the sky over the course of the video.
    let sx = w * (0.15 + 0.7 * (c.prog * 0.6 + c.var[1] * 0.4));
    let sy = if dusk {
        horizon - s * 0.1
    } else {
        horizon * (0.22 + 0.18 * c.var[2])
    };
    if m.space {
        planet(
            img,
            if sx > w * 0.5 { w * 0.22 } else { w * 0.78 },
            sy + s * 0.05,
            s * 0.09,
            hsv(to_hsv(warm).0, 0.45, 0.9),
            hsv(sh + 0.1, 0.25, 1.0),
            hsv(sh + 0.05, 0.6, 0.3),
        );
    }
    if night {
        glow(img, sx, sy, 0.0, s * 0.3, hsv(sh, 0.3, 0.8), 0.3);
        glow(img, sx, sy, s * 0.04, s * 0.1, [0.95, 0.95, 0.85], 0.4);
        crescent(img, sx, sy, s * 0.05, [1.0, 0.98, 0.86], 1.0);
    } else if !m.rain || m.sun {
        let sun_col = if dusk {
            [1.0, 0.82, 0.55]
        } else {
            [1.0, 0.98, 0.88]
        };
        glow(img, sx, sy, 0.0, s * 0.45, mix(hor, WHITE, 0.5), 0.55);
        glow(img, sx, sy, s * 0.05, s * 0.14, sun_col, 0.75);
        disc(img, sx, sy, s * 0.06, sun_col, 1.0);
        // Lens flare dots along the line through the frame centre.
        for (k, r) in [(0.45, 0.018), (0.8, 0.03), (1.25, 0.012)] {
            let fx = sx + (w * 0.5 - sx) * 2.0 * k;
            let fy = sy + (h * 0.45 - sy) * 2.0 * k;
            if fy < horizon {
                disc(img, fx, fy, s * r, hsv(sh + 0.1 * k, 0.25, 1.0), 0.18);
            }
        }
    }

    if m.rainbow {
        let cx = w * (0.35 + 0.3 * c.var[3]);
        rainbow(img, cx, horizon + s * 0.1, s * 0.62, s * 0.07, 0.45);
    }

    // Clouds.
    if !m.space {
        let n = if m.rain { 5 } else { 2 + rng.below(3) };
        let (lit, shadow) = if night {
            (hsv(sh, 0.25, 0.42), hsv(sh + 0.03, 0.45, 0.26))
        } else if dusk {
            ([1.0, 0.86, 0.78], hsv(0.8, 0.3, 0.72))
        } else if m.rain {
            (gray(0.88), hsv(sh + 0.04, 0.15, 0.62))
        } else {
            ([1.0, 1.0, 1.0], hsv(sh + 0.04, 0.28, 0.86))
        };
        for i in 0..n {
            let cx = w * ((i as f32 + rng.range(0.2, 0.8)) / n as f32);
            let cy = horizon * rng.range(0.25, 0.7);
            let size = s * rng.range(0.09, 0.17);
            cel_cloud(img, &mut rng, cx, cy, size, lit, shadow);
        }
    }

    // Landscape with atmospheric perspective.
    let gh = c.pal.hue_near(0.32, 0.6);
    let ground = if night {
        hsv(sh + 0.02, 0.55, 0.10)
    } else if dusk {
        hsv(0.85, 0.45, 0.32)
    } else {
        hsv(gh, 0.62, 0.5)
    };
    let haze = if night {
        hsv(sh, 0.45, 0.3)
    } else {
        hsv(sh + 0.02, 0.3, 0.9)
    };
    let far_col = mix(ground, mix(haze, hor, 0.3), 0.72);
    let mid_col = mix(ground, haze, 0.4);
    let rim = mix(hor, WHITE, 0.3);

    let far = if m.mountain {
        Ridge::mountains(&mut rng, horizon, s * 0.3, w, s, 1.0)
    } else {
        Ridge::hills(&mut rng, horizon - s * 0.02, s * 0.035, s)
    };
    let far8 = c8(far_col);
    let snowcap = c8(mix(far_col, WHITE, 0.65));
    let cap_line = horizon - s * 0.19;
    fill_below(
        img,
        |x| far.at(x),
        |_, y, depth| {
            if m.mountain && y < cap_line && depth < s * 0.05 {
                (snowcap, 1.0)
            } else {
                (far8, 1.0)
            }
        },
    );

    if m.city {
        let sky = Skyline::new(&mut rng, w, s, horizon + s * 0.06, s * 0.06, s * 0.26);
        let col = c8(mid_col);
        fill_below(img, |x| sky.at(x), |_, _, _| (col, 1.0));
        let (wc, p, a) = if night {
            ([1.0, 0.85, 0.5], 0.35, 0.95)
        } else {
            (mix(mid_col, hor, 0.5), 0.5, 0.6)
        };
        sky.windows(img, &mut rng, s, wc, p, a);
    } else if !m.sea {
        let mid = Ridge::hills(&mut rng, horizon + s * 0.04, s * 0.04, s);
        let col = c8(mid_col);
        fill_below(img, |x| mid.at(x), |_, _, _| (col, 1.0));
        if m.forest {
            for _ in 0..c.count(18.0) {
                let x = rng.f() * w;
                let th = s * rng.range(0.05, 0.09);
                pine(img, x, mid.at(x) + th * 0.3, th, mid_col, 1.0);
            }
        }
    }

    if m.sea {
        let deep = if night {
            hsv(sh, 0.6, 0.18)
        } else {
            mix(hsv(sh, 0.7, 0.6), c.pal.darkest(), 0.25)
        };
        let near_sea = mix(hor, top, 0.35);
        let (y0, hh) = (horizon, h - horizon);
        let (n8, d8) = (near_sea, deep);
        shade_box(img, [0.0, y0, w, h], |_, y| {
            let t = ((y - y0) / hh).powf(0.6);
            Some((c8(mix(n8, d8, t)), 1.0))
        });
        // Glints: short horizontal strokes, longer near the viewer; a reflection column under the
        // sun or moon.
        let glint = mix(hor, WHITE, 0.6);
        for i in 0..c.count(150.0) {
            let t = rng.f();
            let y = y0 + hh * t * t;
            let p = (y - y0) / hh;
            let near_sun = i % 3 == 0;
            let x = if near_sun {
                sx + (rng.f() - 0.5) * (rng.f() + 0.2) * (s * 0.06 + s * 0.3 * p)
            } else {
                rng.f() * w
            };
            let len = s * (0.008 + 0.05 * p) * rng.range(0.5, 1.4);
            let mut a = if near_sun { 0.75 } else { 0.35 } * (1.0 - 0.5 * p);
            if y > c.caption_y() {
                a *= 0.5;
            }
            let r = (s * 0.0012 * (0.6 + 2.0 * p)).max(0.6);
            capsule(img, (x - len * 0.5, y), (x + len * 0.5, y), r, glint, a);
        }
    } else {
        // Near ground: the calm caption field, with a cel rim light along its ridge.
        let near = Ridge::hills(&mut rng, h * 0.8, s * 0.035, s);
        let g_top = mix(ground, hor, 0.18);
        let rows: Vec<[u8; 3]> = (0..img.height)
            .map(|y| {
                c8(mix(
                    g_top,
                    scale(ground, 0.8),
                    smoothstep(h * 0.7, h, y as f32),
                ))
            })
            .collect();
        let rim8 = c8(mix(g_top, rim, 0.55));
        let rim_w = (s * 0.006).max(1.2);
        fill_below(
            img,
            |x| near.at(x),
            |_, y, depth| {
                if depth < rim_w {
                    (rim8, 1.0)
                } else {
                    (rows[(y as usize).min(rows.len() - 1)], 1.0)
                }
            },
        );
        if m.forest {
            for _ in 0..c.count(9.0) {
                let x = rng.f() * w;
                let th = s * rng.range(0.12, 0.22);
                pine(
                    img,
                    x,
                    near.at(x) + th * 0.25,
                    th,
                    mix(g_top, ground, 0.3),
                    1.0,
                );
            }
        }
        if m.city && !m.forest {
            // Street lamps along the ridge at night.
            if night {
                for i in 0..6 {
                    let x = w * (i as f32 + 0.5) / 6.0;
                    glow(
                        img,
                        x,
                        near.at(x) - s * 0.03,
                        0.0,
                        s * 0.04,
                        [1.0, 0.85, 0.5],
                        0.6,
                    );
                }
            }
        }
    }

    if m.fire {
        glow(img, w * 0.5, h * 1.1, 0.0, s * 1.0, [1.0, 0.45, 0.1], 0.55);
        for _ in 0..c.count(40.0) {
            let x = rng.f() * w;
            let y = h * rng.range(0.25, 0.78);
            let r = (s * rng.range(0.002, 0.005)).max(1.0);
            glow(img, x, y, 0.0, r * 4.0, [1.0, 0.5, 0.1], 0.5);
            disc(img, x, y, r, [1.0, 0.85, 0.4], 0.9);
        }
    }
    if m.storm {
        lightning(img, c, &mut rng, hsv(sh + 0.05, 0.3, 1.0));
    }
    if m.rain {
        rain(img, c, &mut rng, mix(hor, WHITE, 0.5), 0.45, 160.0);
    }
    if m.snow {
        snow(img, c, &mut rng, WHITE, 0.85);
    }

    // Petals and sparkles float in the upper three quarters.
    let petal = mix(hsv(0.95, 0.28, 1.0), mix(warm, WHITE, 0.5), 0.3);
    let n_petals = if m.flower {
        c.count(40.0)
    } else if night || m.rain || m.snow {
        0
    } else {
        c.count(12.0)
    };
    for _ in 0..n_petals {
        let (cx, cy) = (rng.f() * w, rng.range(0.05, 0.74) * h);
        let a = s * rng.range(0.007, 0.013);
        let b = a * 0.55;
        let rot = rng.range(0.0, PI);
        let (cr, sr) = (rot.cos(), rot.sin());
        let col = mix(petal, WHITE, rng.range(0.0, 0.4));
        fill_sdf(
            img,
            [cx - a - 1.0, cy - a - 1.0, cx + a + 1.0, cy + a + 1.0],
            col,
            0.95,
            |x, y| {
                let (dx, dy) = (x - cx, y - cy);
                let u = (dx * cr + dy * sr) / a;
                let v = (-dx * sr + dy * cr) / b;
                ((u * u + v * v).sqrt() - 1.0) * b
            },
        );
    }
    let n_sparkles = if night { c.count(6.0) } else { c.count(4.0) };
    for _ in 0..n_sparkles {
        let (x, y) = (rng.f() * w, rng.range(0.08, 0.7) * h);
        sparkle(
            img,
            x,
            y,
            s * rng.range(0.012, 0.025),
            [1.0, 1.0, 0.95],
            0.85,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Gaming (synthwave / neon)
// ---------------------------------------------------------------------------------------------

/// Neon outline of a convex polygon: a hot core line with a coloured glow.
fn neon_poly(img: &mut RgbImage, pts: &[(f32, f32)], col: C3, lw: f32, glow_r: f32) {
    let poly = Poly::new(pts);
    let g8c = c8(col);
    shade_box(img, poly.grown(glow_r + 1.0), |x, y| {
        let d = poly.sdf(x, y).abs() - lw * 0.5;
        let g = (1.0 - d.max(0.0) / glow_r).max(0.0);
        let a = g * g * 0.55;
        (a > 0.0).then_some((g8c, a))
    });
    fill_sdf(
        img,
        poly.grown(lw + 1.0),
        mix(col, WHITE, 0.55),
        1.0,
        |x, y| poly.sdf(x, y).abs() - lw * 0.5,
    );
}

fn neon_ring(img: &mut RgbImage, cx: f32, cy: f32, r: f32, col: C3, lw: f32, glow_r: f32) {
    let g8c = c8(col);
    let m = r + glow_r + 1.0;
    shade_box(img, [cx - m, cy - m, cx + m, cy + m], |x, y| {
        let d = (((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - r).abs() - lw * 0.5;
        let g = (1.0 - d.max(0.0) / glow_r).max(0.0);
        let a = g * g * 0.55;
        (a > 0.0).then_some((g8c, a))
    });
    ring(img, cx, cy, r, lw, mix(col, WHITE, 0.55), 1.0);
}

fn gaming(img: &mut RgbImage, c: &Ctx) {
    let (w, h, s) = (c.w, c.h, c.s);
    let m = c.m;
    let mut rng = c.rng(23);
    let (mut ha, mut hb) = c.pal.hue_pair(c.idx, 0.15);
    if m.fire {
        ha = 0.04;
        hb = 0.12;
    }
    let na = hsv(ha, 0.85, 1.0);
    let nb = hsv(hb, 0.8, 1.0);
    let horizon = h * if c.portrait {
        0.56
    } else {
        0.54 + 0.06 * c.var[0]
    };
    let dim = if m.night { 0.55 } else { 1.0 };
    vgradient(
        img,
        &[
            (0.0, hsv(ha + 0.05, 0.8, 0.05)),
            (horizon * 0.55, hsv(hb, 0.75, 0.13 * dim)),
            (horizon, hsv(ha, 0.8, 0.36 * dim)),
            (h, hsv(ha, 0.8, 0.36 * dim)),
        ],
    );
    let n_stars = if m.dark() {
        c.count(120.0)
    } else {
        c.count(40.0)
    };
    starfield(
        img,
        c,
        &mut rng,
        n_stars,
        horizon * 0.8,
        mix(nb, WHITE, 0.7),
    );

    // Neon sun with slits, half sunk behind the horizon (a ringed planet in space).
    let sr = s * 0.2;
    let sx = w * (0.5 + (c.var[1] - 0.5) * if c.portrait { 0.2 } else { 0.45 });
    let sy = horizon - sr * 0.45;
    if m.space {
        planet(
            img,
            sx,
            horizon - sr * 0.9,
            sr * 0.7,
            mix(na, WHITE, 0.2),
            nb,
            hsv(ha, 0.8, 0.25),
        );
    } else {
        glow(img, sx, sy, sr * 0.8, sr * 2.2, na, 0.45);
        let top_c = mix(na, [1.0, 0.92, 0.45], 0.55);
        let bot_c = nb;
        let stripe0 = sy - sr * 0.05;
        let period = sr * 0.17;
        shade_box(
            img,
            [sx - sr - 1.0, sy - sr - 1.0, sx + sr + 1.0, horizon],
            |x, y| {
                let d = ((x - sx).powi(2) + (y - sy).powi(2)).sqrt() - sr;
                let mut a = cov(d);
                if a <= 0.0 {
                    return None;
                }
                if y > stripe0 {
                    let t = (y - stripe0) / (sr * 1.05);
                    let gap = period * (0.08 + 0.5 * t);
                    let pos = (y - stripe0) - ffloor((y - stripe0) / period) * period;
                    a *= (pos - gap + 0.5).clamp(0.0, 1.0) * (period - pos + 0.5).clamp(0.0, 1.0);
                }
                let col = mix(top_c, bot_c, smoothstep(sy - sr, sy + sr * 0.6, y));
                Some((c8(col), a))
            },
        );
    }

    // Silhouettes on the horizon with neon rims.
    let dark = c8(hsv(ha + 0.05, 0.7, 0.07));
    let rim = c8(mix(nb, WHITE, 0.3));
    let lw = (s * 0.0035).max(1.2);
    let shade_rim = |_: f32, _: f32, depth: f32| {
        let t = (lw - depth + 0.5).clamp(0.0, 1.0);
        if t >= 1.0 {
            (rim, 1.0)
        } else if t <= 0.0 {
            (dark, 1.0)
        } else {
            (c8(mix(cf(dark), cf(rim), t)), 1.0)
        }
    };
    if m.city {
        let sky = Skyline::new(&mut rng, w, s, horizon + 1.0, s * 0.05, s * 0.22);
        fill_below(img, |x| sky.at(x), shade_rim);
        sky.windows(img, &mut rng, s, mix(na, WHITE, 0.25), 0.22, 0.9);
    } else if m.mountain || !m.sea {
        let height = if m.mountain { s * 0.22 } else { s * 0.1 };
        let ridge = Ridge::mountains(&mut rng, horizon + 1.0, height, w, s, 0.3);
        fill_below(img, |x| ridge.at(x), shade_rim);
    }
    if m.forest {
        for _ in 0..c.count(14.0) {
            let x = rng.f() * w;
            let th = s * rng.range(0.04, 0.08);
            pine(img, x, horizon + 1.0, th, cf(dark), 1.0);
        }
    }

    // Floor with the perspective grid; lines fade where they would crowd below ~4px apart.
    let vx = w * 0.5;
    let k = h - horizon;
    let dz = 0.22;
    let zphase = (c.idx as f32 * 0.37 + c.var[2]).fract();
    let cell = s * 0.16;
    let floor_top = hsv(ha + 0.04, 0.8, 0.2 * dim);
    let floor_bot = hsv(ha + 0.05, 0.7, 0.06);
    let line_c = if m.sea { na } else { nb };
    let core_c = mix(line_c, WHITE, 0.45);
    let width = img.width as usize;
    let y_start = horizon.ceil().max(0.0) as usize;
    for y in y_start..img.height as usize {
        let dy = y as f32 + 0.5 - horizon;
        if dy <= 0.0 {
            continue;
        }
        let p = dy / k;
        let bg = mix(floor_top, floor_bot, p.sqrt());
        let z = k / dy;
        let spacing = dz * dy * dy / k;
        let zz = (z + zphase) / dz;
        let fade_h = smoothstep(5.0, 14.0, spacing);
        let th = 0.5 + 1.6 * p;
        let glow_w = 1.5 + 8.0 * p;
        let cell_px = cell * p;
        let fade_v = smoothstep(6.0, 16.0, cell_px);
        let depth_fade = 0.35 + 0.65 * p.powf(0.5);
        let cap = if y as f32 > c.caption_y() { 0.6 } else { 1.0 };
        let row = &mut img.data[y * width * 3..(y + 1) * width * 3];
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let xf = x as f32 + 0.5;
            let mut dh = f32::MAX;
            if fade_h > 0.0 {
                let wob = if m.sea {
                    (xf / (s * 0.05) + z * 3.0).sin() * 0.12
                } else {
                    0.0
                };
                let f = zz + wob;
                dh = (f - fround(f)).abs() * spacing;
            }
            let mut dv = f32::MAX;
            if !m.sea && fade_v > 0.0 {
                let gx = (xf - vx) / cell_px;
                let n = fround(gx);
                let slope = n * cell / k;
                dv = (gx - n).abs() * cell_px / (1.0 + slope * slope).sqrt();
            }
            let core = (cov(dh - th * 0.5) * fade_h).max(cov(dv - th * 0.5) * fade_v);
            let gh = (1.0 - dh / glow_w).max(0.0);
            let gv = (1.0 - dv / glow_w).max(0.0);
            let g = (gh * gh * fade_h).max(gv * gv * fade_v) * 0.5;
            let mut col = mix(bg, line_c, (g * depth_fade * cap).min(1.0));
            col = mix(col, core_c, core * depth_fade * cap);
            put3(px, c8(col));
        }
    }
    if m.sea && !m.space {
        // Reflection of the sun on the water: stacked glowing dashes.
        for i in 0..24 {
            let t = (i as f32 + 0.5) / 24.0;
            let y = horizon + k * t * t;
            let half = sr * (0.9 - 0.5 * t) * rng.range(0.5, 1.0);
            let a = 0.6 * (1.0 - t) * if y > c.caption_y() { 0.5 } else { 1.0 };
            capsule(
                img,
                (sx - half, y),
                (sx + half, y),
                (s * 0.002 * (1.0 + 3.0 * t)).max(0.8),
                mix(na, WHITE, 0.3),
                a,
            );
        }
    }
    // Horizon glow line.
    let hg = c8(mix(na, WHITE, 0.2));
    shade_box(
        img,
        [0.0, horizon - s * 0.05, w, horizon + s * 0.05],
        |_, y| {
            let d = (y - horizon).abs() / (s * 0.025);
            let a = (-d * d).exp() * 0.55;
            Some((hg, a))
        },
    );

    // Floating neon shapes in the sky.
    let n_shapes = 3 + rng.below(3);
    let mut placed: Vec<(f32, f32)> = vec![(sx, sy)];
    for i in 0..n_shapes {
        let mut x;
        let mut y;
        let mut tries = 0;
        loop {
            x = w * rng.range(0.08, 0.92);
            y = horizon * rng.range(0.12, 0.7);
            tries += 1;
            let clear = placed.iter().enumerate().all(|(k, p)| {
                let need = if k == 0 { sr * 1.6 } else { s * 0.2 };
                ((x - p.0).powi(2) + (y - p.1).powi(2)).sqrt() > need
            });
            if clear || tries > 12 {
                break;
            }
        }
        placed.push((x, y));
        let r = s * rng.range(0.035, 0.075);
        let col = if i % 2 == 0 { na } else { nb };
        let rot = rng.range(0.0, TAU);
        let lw = (s * 0.004).max(1.2);
        match (i + c.idx) % 4 {
            0 => neon_poly(img, &ngon(x, y, r, 3, rot), col, lw, s * 0.03),
            1 => neon_poly(img, &ngon(x, y, r, 4, rot), col, lw, s * 0.03),
            2 => neon_ring(img, x, y, r * 0.8, col, lw, s * 0.03),
            _ => neon_poly(img, &ngon(x, y, r, 6, rot), col, lw, s * 0.03),
        }
    }
    if m.rainbow {
        rainbow(img, w * 0.5, horizon, s * 0.55, s * 0.06, 0.35);
    }
    if m.rain || m.storm {
        rain(img, c, &mut rng, mix(nb, WHITE, 0.3), 0.5, 140.0);
    }
    if m.snow {
        snow(img, c, &mut rng, mix(na, WHITE, 0.6), 0.8);
    }
    if m.storm {
        lightning(img, c, &mut rng, nb);
    }
    if m.fire {
        glow(img, w * 0.5, h * 1.1, 0.0, s * 0.9, [1.0, 0.4, 0.1], 0.5);
    }

    // CRT scanlines (a soft sinusoid with a period of several pixels) and a vignette.
    let period = (h / 160.0).max(5.0);
    let cx = w * 0.5;
    let cy = h * 0.5;
    let inv_r2 = 1.0 / (cx * cx + cy * cy);
    for (y, row) in img.data.chunks_exact_mut(width * 3).enumerate() {
        let yf = y as f32 + 0.5;
        let scan = 1.0 - 0.12 * (0.5 + 0.5 * (yf / period * TAU).sin());
        let dy2 = (yf - cy).powi(2);
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let dx = x as f32 + 0.5 - cx;
            let v = scan * (1.0 - 0.45 * (dx * dx + dy2) * inv_r2);
            for ch in px.iter_mut() {
                *ch = (*ch as f32 * v + 0.5) as u8;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Superhero
// ---------------------------------------------------------------------------------------------

fn bolt_sdf(x: f32, y: f32, cx: f32, cy: f32, r: f32, tris: &[Poly; 2]) -> f32 {
    let (u, v) = ((x - cx) / r, (y - cy) / r);
    tris[0].sdf(u, v).min(tris[1].sdf(u, v)) * r
}

fn bolt_tris() -> [Poly; 2] {
    [
        Poly::new(&[(0.42, -1.0), (-0.5, 0.2), (0.2, 0.02)]),
        Poly::new(&[(-0.42, 1.0), (0.5, -0.2), (-0.2, -0.02)]),
    ]
}

/// A bold emblem: black-outlined badge with an inner ring and a star or bolt.
/// `kind % 3` picks the badge (shield, disc, diamond), `(kind / 3) % 2` the symbol (star, bolt).
fn emblem(img: &mut RgbImage, cx: f32, cy: f32, r: f32, fill: C3, sym: C3, kind: usize) {
    let ow = r * 0.09;
    let badge = |x: f32, y: f32| -> f32 {
        match kind % 3 {
            0 => {
                // Shield: pentagon with a pointed bottom.
                let p: [(f32, f32); 5] = [
                    (-0.85, -0.75),
                    (0.85, -0.75),
                    (0.85, 0.1),
                    (0.0, 1.0),
                    (-0.85, 0.1),
                ];
                let u = (x - cx) / r;
                let v = (y - cy) / r;
                let mut d = f32::MIN;
                for i in 0..5 {
                    let a = p[i];
                    let b = p[(i + 1) % 5];
                    let (ex, ey) = (b.0 - a.0, b.1 - a.1);
                    let l = (ex * ex + ey * ey).sqrt();
                    let (nx, ny) = (ey / l, -ex / l);
                    d = d.max(nx * (u - a.0) + ny * (v - a.1));
                }
                d * r
            }
            1 => ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - r,
            _ => ((x - cx).abs() + (y - cy).abs() - r * 1.15) * std::f32::consts::FRAC_1_SQRT_2,
        }
    };
    let bb = [cx - r * 1.3, cy - r * 1.3, cx + r * 1.3, cy + r * 1.3];
    // Drop shadow.
    let off = (r * 0.07, r * 0.1);
    shade_box(img, grow(bb, r * 0.2), |x, y| {
        let d = badge(x - off.0, y - off.1) - ow;
        let a = (0.5 - d / (r * 0.08)).clamp(0.0, 1.0) * 0.45;
        (a > 0.0).then_some(([0, 0, 0], a))
    });
    fill_outlined(img, bb, fill, BLACK, ow * 2.0, badge);
    let inner = c8(mix(sym, WHITE, 0.5));
    shade_box(img, bb, |x, y| {
        let d = (badge(x, y) + r * 0.16).abs() - r * 0.025;
        (d < 0.5).then_some((inner, cov(d)))
    });
    let tris = bolt_tris();
    let sr = r * 0.62;
    if (kind / 3).is_multiple_of(2) {
        fill_outlined(img, bb, sym, BLACK, r * 0.06, |x, y| {
            sd_star5(x - cx, y - cy + sr * 0.08, sr, 0.45)
        });
    } else {
        fill_outlined(img, bb, sym, BLACK, r * 0.06, |x, y| {
            bolt_sdf(x, y, cx, cy, sr, &tris)
        });
    }
}

fn superhero(img: &mut RgbImage, c: &Ctx) {
    let (w, h, s) = (c.w, c.h, c.s);
    let m = c.m;
    let mut rng = c.rng(37);
    let (mut ha, mut hb) = c.pal.hue_pair(c.idx, 0.2);
    if m.fire {
        ha = 0.01;
        hb = 0.6;
    }
    let val = if m.night { 0.5 } else { 0.92 };
    let c1 = hsv(ha, 0.92, val);
    let c2 = hsv(ha + 0.03, 0.7, (val + 0.1).min(1.0));
    let centre = if m.night {
        hsv(hb, 0.3, 0.9)
    } else {
        [1.0, 0.96, 0.72]
    };
    let fx = w * (0.5 + (c.var[0] - 0.5) * 0.3);
    let fy = h * if c.portrait {
        0.36
    } else {
        0.4 + 0.05 * c.var[1]
    };
    let n_rays = 18.0 + ffloor(c.var[2] * 12.0);
    let phase = c.var[3];
    let rmax = (w * w + h * h).sqrt() * 0.62;
    let period = (s / 62.0).max(5.0);
    let width = img.width as usize;
    let ray_seed = c.seed ^ 0xBEEF;
    let splits: Vec<f32> = (0..n_rays as i32)
        .map(|k| 0.5 + 0.3 * (hash2(k, 0, ray_seed) - 0.5))
        .collect();
    for (y, row) in img.data.chunks_exact_mut(width * 3).enumerate() {
        let yf = y as f32 + 0.5;
        let dy = yf - fy;
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let xf = x as f32 + 0.5;
            let dx = xf - fx;
            let r = (dx * dx + dy * dy).sqrt();
            let a01 = fast_atan2(dy, dx) * (1.0 / TAU) + 0.5 + phase;
            let sec = a01 * n_rays;
            let i = ffloor(sec);
            let f = sec - i;
            let split = splits[(i as i32).rem_euclid(n_rays as i32) as usize];
            // Pixel distance to the nearest ray boundary.
            let px_per = r * TAU / n_rays;
            let d_edge = f.min(1.0 - f).min((f - split).abs()) * px_per;
            let t_mix = cov(-d_edge).max(0.5) - 0.5; // 0 at the edge, 0.5 well inside
            let inside_a = f < split;
            let wa = if inside_a { 0.5 + t_mix } else { 0.5 - t_mix };
            let ray = mix(c2, c1, wa);
            let t = (r / rmax).min(1.0);
            let mut col = mix(centre, ray, smoothstep(0.02, 0.5, t));
            col = scale(col, 1.0 - 0.35 * t * t);
            let tone = smoothstep(0.2, 1.0, t) * 0.75;
            let dot = halftone(xf, yf, period, tone);
            col = mix(col, scale(col, 0.5), dot * 0.75);
            put3(px, c8(col));
        }
    }

    if m.space || m.night {
        starfield(img, c, &mut rng, c.count(40.0), h * 0.6, WHITE);
    }
    glow(img, fx, fy, s * 0.05, s * 0.45, centre, 0.7);

    // Ground silhouettes in black with a rim light in the ray colour.
    let rim = c8(mix(c2, WHITE, 0.4));
    let black = [8u8, 8, 10];
    let rim_w = (s * 0.005).max(1.2);
    let shade = |_: f32, _: f32, depth: f32| {
        if depth < rim_w {
            (rim, 1.0)
        } else {
            (black, 1.0)
        }
    };
    if m.sea {
        let sea_h = c.pal.hue_near(0.6, 0.7);
        for (i, (amp, base)) in [(0.03, 0.78), (0.035, 0.86), (0.04, 0.94)]
            .iter()
            .enumerate()
        {
            let k = TAU / (s * (0.35 - 0.05 * i as f32));
            let ph = rng.range(0.0, TAU);
            let col = c8(hsv(sea_h, 0.85, 0.55 - 0.12 * i as f32));
            let wave = |x: f32| {
                h * base - s * amp * ((x * k + ph).sin() * 0.7 + (x * k * 2.1 + ph).sin() * 0.3)
            };
            fill_below(img, wave, |_, _, depth| {
                if depth < rim_w * 1.5 {
                    (rim, 1.0)
                } else {
                    (col, 1.0)
                }
            });
        }
    } else if m.mountain && !m.city {
        let ridge = Ridge::mountains(&mut rng, h * 0.84, s * 0.3, w, s, 1.0);
        fill_below(img, |x| ridge.at(x), shade);
    } else if !m.space {
        let sky = Skyline::new(&mut rng, w, s, h + 1.0, s * 0.12, s * 0.33);
        fill_below(img, |x| sky.at(x), shade);
        sky.windows(img, &mut rng, s, [1.0, 0.88, 0.45], 0.12, 0.9);
    }
    if m.fire {
        for i in 0..c.count(6.0) {
            let x = w * (i as f32 + rng.f()) / c.count(6.0) as f32;
            let fh = s * rng.range(0.15, 0.3);
            let fw = fh * 0.35;
            let base = h + fw * 0.3;
            let tri = Poly::new(&[(x, base - fh), (x + fw, base), (x - fw, base)]);
            let tri2 = Poly::new(&[
                (x, base - fh * 0.55),
                (x + fw * 0.55, base),
                (x - fw * 0.55, base),
            ]);
            fill_outlined(
                img,
                tri.grown(0.0),
                [1.0, 0.5, 0.05],
                BLACK,
                s * 0.008,
                |px, py| tri.sdf(px, py),
            );
            fill_sdf(img, tri2.grown(1.0), [1.0, 0.9, 0.3], 1.0, |px, py| {
                tri2.sdf(px, py)
            });
        }
    }
    if m.rain {
        rain(img, c, &mut rng, mix(c2, WHITE, 0.6), 0.45, 120.0);
    }
    if m.storm {
        lightning(img, c, &mut rng, mix(c2, WHITE, 0.5));
    }

    let er = s * 0.16;
    let kind = (c.seed as usize).wrapping_add(c.idx) % 3;
    let sym = if hue_dist(hb, 0.14) < 0.08 {
        hsv(ha, 0.9, 0.95)
    } else {
        [1.0, 0.84, 0.1]
    };
    let kind = kind + 3 * ((kind + c.idx) % 2);
    emblem(img, fx, fy, er, hsv(hb, 0.88, 0.82), sym, kind);

    // Darken the caption band a little so text over it stays readable.
    let cy0 = c.caption_y() - s * 0.05;
    shade_box(img, [0.0, cy0, w, h], |_, y| {
        Some(([0, 0, 0], 0.3 * smoothstep(cy0, h, y)))
    });
}

// ---------------------------------------------------------------------------------------------
// Manga (black ink, screentone, focus lines)
// ---------------------------------------------------------------------------------------------

const PAPER: f32 = 0.975;
const INK: f32 = 0.06;

/// Two slanted panels separated by a white gutter. Returns the two quads.
fn two_panels(c: &Ctx, margin: f32, gutter: f32) -> [Vec<(f32, f32)>; 2] {
    let (w, h) = (c.w, c.h);
    let g = gutter * 0.5;
    if c.portrait {
        let yl = h * (0.38 + 0.16 * c.var[0]);
        let yr = yl + h * (c.var[1] - 0.5) * 0.16;
        [
            vec![
                (margin, margin),
                (w - margin, margin),
                (w - margin, yr - g),
                (margin, yl - g),
            ],
            vec![
                (margin, yl + g),
                (w - margin, yr + g),
                (w - margin, h - margin),
                (margin, h - margin),
            ],
        ]
    } else {
        let xt = w * (0.38 + 0.22 * c.var[0]);
        let xb = xt + w * (c.var[1] - 0.5) * 0.22;
        [
            vec![
                (margin, margin),
                (xt - g, margin),
                (xb - g, h - margin),
                (margin, h - margin),
            ],
            vec![
                (xt + g, margin),
                (w - margin, margin),
                (w - margin, h - margin),
                (xb + g, h - margin),
            ],
        ]
    }
}

/// Focus lines converging on (cx, cy): black wedges tapering towards an inner ellipse.
fn focus_lines(img: &mut RgbImage, c: &Ctx, bb: [f32; 4], cx: f32, cy: f32, ax: f32, ay: f32) {
    let n = 200.0;
    let seed = c.seed ^ 0xF0C5 ^ (c.idx as u64).wrapping_mul(31);
    let ink = g8(INK);
    let tone_p = (c.s / 80.0).max(5.0);
    let mean_r = 0.5 * (ax + ay);
    shade_box(img, bb, |x, y| {
        let (u, v) = ((x - cx) / ax, (y - cy) / ay);
        let rho = (u * u + v * v).sqrt();
        if rho < 0.3 {
            return None;
        }
        let ang = fast_atan2(v, u) * (1.0 / TAU) + 0.5;
        let sec = ang * n;
        let i = ffloor(sec);
        let id = i as i32;
        let jitter = hash2(id, 1, seed);
        let start = 0.38 + 0.35 * hash2(id, 2, seed);
        let wf = 0.25 + 0.75 * hash2(id, 3, seed);
        let centre = 0.5 + (jitter - 0.5) * 0.5;
        let px_per = rho * mean_r * TAU / n;
        let d = (sec - i - centre).abs() * px_per;
        let grow = ((rho - start) / 0.6).clamp(0.0, 1.0);
        let hw = wf * 0.45 * px_per * grow;
        let line = if hw > 0.0 && hash2(id, 4, seed) > 0.12 {
            (hw + 0.5 - d).clamp(0.0, 1.0).min(2.0 * hw)
        } else {
            0.0
        };
        let tone = halftone(x, y, tone_p, smoothstep(0.9, 1.6, rho) * 0.45);
        let a = line.max(tone);
        (a > 0.0).then_some((ink, a))
    });
}

/// Sine wave line (for water).
/// Sine wave line (for water) between x0 and x1 around y0; `wave` is (amplitude, angular
/// frequency, phase).
fn wave_line(img: &mut RgbImage, x0: f32, x1: f32, y0: f32, wave: [f32; 3], lw: f32, col: C3) {
    let [amp, k, ph] = wave;
    let c = c8(col);
    shade_box(
        img,
        [x0, y0 - amp - lw - 1.0, x1, y0 + amp + lw + 1.0],
        |x, y| {
            let f = y0 - amp * (x * k + ph).sin();
            let dfdx = -amp * k * (x * k + ph).cos();
            // Keep only the crests for a brushy "wave" look.
            let crest = (x * k + ph).sin();
            let d = (y - f).abs() / (1.0 + dfdx * dfdx).sqrt()
                - lw * 0.5 * (0.4 + 0.6 * crest.max(0.0));
            let a = cov(d) * smoothstep(-0.6, 0.2, crest);
            (a > 0.0).then_some((c, a))
        },
    );
}

/// The "scene" panel: screentone sky and ink silhouettes chosen by motif.
fn manga_scene(img: &mut RgbImage, c: &Ctx, bb: [f32; 4]) {
    let m = c.m;
    let mut rng = c.rng(51);
    let (pw, ph) = (bb[2] - bb[0], bb[3] - bb[1]);
    let s = c.s;
    let ink = g8(INK);
    let paper = g8(PAPER);
    let tone_p = (s / 85.0).max(5.0);
    let horizon = bb[1] + ph * 0.62;
    let dark = m.dark();
    // Sky tone: dense at the top, fading to paper at the horizon.
    let (t0, t1) = if dark {
        (0.98, 0.55)
    } else if m.rain {
        (0.55, 0.2)
    } else {
        (0.42, 0.0)
    };
    shade_box(img, [bb[0], bb[1], bb[2], horizon], |x, y| {
        let t = lerp(t0, t1, smoothstep(bb[1], horizon, y));
        let a = halftone(x, y, tone_p, t);
        (a > 0.0).then_some((ink, a))
    });
    let sx = bb[0] + pw * (0.2 + 0.6 * c.var[2]);
    let sy = bb[1] + ph * 0.25;
    let sr = s * 0.07;
    if dark {
        for _ in 0..c.count(50.0) {
            let x = bb[0] + rng.f() * pw;
            let y = bb[1] + rng.f() * (horizon - bb[1]) * 0.9;
            let r = (s * rng.range(0.0015, 0.004)).max(1.0);
            disc(img, x, y, r, gray(PAPER), 1.0);
        }
        if m.space {
            disc(img, sx, sy, sr * 1.3, gray(PAPER), 1.0);
            ring(img, sx, sy, sr * 1.3, (s * 0.004).max(1.2), gray(INK), 1.0);
            shade_box(
                img,
                [sx - sr * 1.3, sy - sr * 1.3, sx + sr * 1.3, sy + sr * 1.3],
                |x, y| {
                    let d = ((x - sx - sr * 0.5).powi(2) + (y - sy + sr * 0.3).powi(2)).sqrt()
                        - sr * 1.4;
                    let dd = ((x - sx).powi(2) + (y - sy).powi(2)).sqrt() - sr * 1.3;
                    let a = halftone(x, y, tone_p, 0.55) * cov(-d) * cov(dd);
                    (a > 0.0).then_some((ink, a))
                },
            );
        } else {
            crescent(img, sx, sy, sr, gray(PAPER), 1.0);
        }
    } else if !m.rain {
        disc(img, sx, sy, sr, gray(PAPER), 1.0);
        ring(img, sx, sy, sr, (s * 0.004).max(1.2), gray(INK), 1.0);
        for i in 0..16 {
            let a = TAU * i as f32 / 16.0 + c.var[3];
            let (r0, r1) = (sr * 1.35, sr * if i % 2 == 0 { 1.9 } else { 1.6 });
            capsule(
                img,
                (sx + a.cos() * r0, sy + a.sin() * r0),
                (sx + a.cos() * r1, sy + a.sin() * r1),
                (s * 0.0025).max(0.8),
                gray(INK),
                1.0,
            );
        }
    }
    let lw = (s * 0.004).max(1.2);
    let outline = |depth: f32| -> ([u8; 3], f32) {
        let t = (lw - depth + 0.5).clamp(0.0, 1.0);
        if t >= 1.0 {
            (ink, 1.0)
        } else if t <= 0.0 {
            (paper, 1.0)
        } else {
            (g8(lerp(PAPER, INK, t)), 1.0)
        }
    };
    if m.mountain || (!m.city && !m.sea && !m.forest) {
        let height = if m.mountain { s * 0.28 } else { s * 0.12 };
        let ridge = Ridge::mountains(&mut rng, horizon, height, c.w, s, 1.0);
        fill_below(img, |x| ridge.at(x), |_, _, d| outline(d));
        // Tone on the shaded slopes: where the ridge descends to the right.
        let tops: Vec<f32> = (0..img.width).map(|x| ridge.at(x as f32 + 0.5)).collect();
        let off = (s * 0.02).max(1.0) as usize;
        let last = tops.len() - 1;
        shade_box(
            img,
            [bb[0], horizon - height * 1.1, bb[2], bb[3]],
            |x, y| {
                let xi = (x as usize).min(last);
                let top = tops[xi];
                if y < top + lw * 1.5 {
                    return None;
                }
                // Shade the flanks that descend to the right (slope measured over a wide baseline so
                // small ridge wiggles do not make vertical stripes).
                let slope =
                    (tops[(xi + off).min(last)] - tops[xi.saturating_sub(off)]) / (2 * off) as f32;
                let fade = 1.0 - smoothstep(top, top + height * 0.8, y);
                let a = halftone(x, y, tone_p, 0.5 * fade) * smoothstep(0.05, 0.5, slope);
                (a > 0.0).then_some((ink, a))
            },
        );
    }
    if m.city {
        let far = Skyline::new(&mut rng, c.w, s, horizon, s * 0.08, s * 0.22);
        let far_ink = c8(gray(0.5));
        fill_below(
            img,
            |x| far.at(x),
            |x, y, _| {
                let a = halftone(x, y, tone_p, 0.6);
                (if a > 0.5 { far_ink } else { paper }, 1.0)
            },
        );
        let near = Skyline::new(&mut rng, c.w, s, horizon + s * 0.05, s * 0.05, s * 0.18);
        fill_below(img, |x| near.at(x), |_, _, _| (ink, 1.0));
        near.windows(
            img,
            &mut rng,
            s,
            gray(PAPER),
            if dark { 0.4 } else { 0.2 },
            1.0,
        );
    }
    if m.forest {
        let base = horizon + s * 0.06;
        for _ in 0..c.count(16.0) {
            let x = rng.f() * c.w;
            let th = s * rng.range(0.08, 0.16);
            pine(img, x, base + rng.f() * s * 0.04, th, gray(INK), 1.0);
        }
    }
    if m.sea {
        shade_box(img, [bb[0], horizon, bb[2], bb[3]], |_, _| {
            Some((paper, 1.0))
        });
        capsule(
            img,
            (bb[0], horizon),
            (bb[2], horizon),
            lw * 0.5,
            gray(INK),
            1.0,
        );
        for i in 0..9 {
            let t = (i as f32 + 0.5) / 9.0;
            let y = horizon + (bb[3] - horizon) * t * t.sqrt();
            let k = TAU / (s * (0.06 + 0.18 * t));
            wave_line(
                img,
                bb[0],
                bb[2],
                y,
                [s * (0.004 + 0.012 * t), k, rng.range(0.0, TAU)],
                lw * (0.6 + 1.2 * t),
                gray(INK),
            );
        }
    } else {
        // Ground: paper with a few horizontal speed lines near the horizon.
        for i in 0..6 {
            let y = horizon + s * (0.03 + 0.025 * i as f32) + s * 0.05;
            if y > c.caption_y() {
                break;
            }
            let x0 = bb[0] + pw * rng.range(0.0, 0.5);
            let x1 = x0 + pw * rng.range(0.2, 0.5);
            capsule(img, (x0, y), (x1, y), (s * 0.0015).max(0.7), gray(INK), 0.9);
        }
    }
    if m.fire {
        for i in 0..5 {
            let x = bb[0] + pw * (i as f32 + 0.5) / 5.0;
            let fh = s * rng.range(0.12, 0.22);
            let tri = Poly::new(&[
                (x, horizon - fh),
                (x + fh * 0.3, horizon + 2.0),
                (x - fh * 0.3, horizon + 2.0),
            ]);
            fill_outlined(img, tri.grown(0.0), gray(PAPER), gray(INK), lw, |px, py| {
                tri.sdf(px, py)
            });
            shade_box(img, tri.grown(0.0), |px, py| {
                let a = halftone(px, py, tone_p, 0.5) * cov(tri.sdf(px, py) + lw);
                (a > 0.0).then_some((ink, a))
            });
        }
    }
    if m.rain || m.storm {
        for _ in 0..c.count(70.0) {
            let x = bb[0] + rng.f() * pw * 1.1;
            let y = bb[1] + rng.f() * ph;
            let len = s * rng.range(0.04, 0.09);
            capsule(
                img,
                (x, y),
                (x - len * 0.3, y + len),
                (s * 0.0012).max(0.6),
                gray(INK),
                0.7,
            );
        }
    }
    if m.snow {
        for _ in 0..c.count(90.0) {
            let (x, y) = (bb[0] + rng.f() * pw, bb[1] + rng.f() * ph);
            let r = (s * rng.range(0.002, 0.005)).max(1.0);
            disc(img, x, y, r + lw * 0.4, gray(INK), 1.0);
            disc(img, x, y, r, gray(PAPER), 1.0);
        }
    }
}

fn manga(img: &mut RgbImage, c: &Ctx) {
    let s = c.s;
    img.data.fill(c8(gray(PAPER))[0]);
    let margin = s * 0.035;
    let gutter = s * 0.028;
    let quads = two_panels(c, margin, gutter);
    let focus_first = (c.idx + c.seed as usize).is_multiple_of(2);
    let mut layer = RgbImage::new(img.width, img.height);
    for (pi, q) in quads.iter().enumerate() {
        let poly = Poly::new(q);
        let bb = poly.bb;
        fill_box(&mut layer, grow(bb, 2.0), gray(PAPER));
        let is_focus = (pi == 0) == focus_first;
        if is_focus {
            let (pw, ph) = (bb[2] - bb[0], bb[3] - bb[1]);
            let cx = bb[0] + pw * (0.4 + 0.2 * c.var[3]);
            let cy = bb[1] + ph * 0.42;
            focus_lines(&mut layer, c, bb, cx, cy, pw * 0.55, ph * 0.55);
            // The focal subject: a bold impact sparkle or a ringed moon.
            let r = s * 0.09;
            if c.m.dark() {
                disc(&mut layer, cx, cy, r * 0.8, gray(INK), 1.0);
                crescent(&mut layer, cx, cy, r * 0.7, gray(PAPER), 1.0);
            } else {
                let thin = r * 0.22;
                let k = r * thin / (r * r + thin * thin).sqrt();
                let star = |x: f32, y: f32| {
                    let (dx, dy) = ((x - cx).abs(), (y - cy).abs());
                    ((dx / r + dy / thin - 1.0) * k).min((dx / thin + dy / r - 1.0) * k)
                };
                fill_outlined(
                    &mut layer,
                    [cx - r, cy - r, cx + r, cy + r],
                    gray(PAPER),
                    gray(INK),
                    (s * 0.006).max(1.5),
                    star,
                );
            }
        } else {
            manga_scene(&mut layer, c, bb);
        }
        composite(img, &layer, grow(bb, 1.0), |x, y| poly.sdf(x, y));
        let bw = (s * 0.006).max(1.6);
        fill_sdf(img, poly.grown(bw + 1.0), gray(INK), 1.0, |x, y| {
            poly.sdf(x, y).abs() - bw * 0.5
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Comic (bold panels, thick outlines, Ben-Day dots)
// ---------------------------------------------------------------------------------------------

fn three_panels(c: &Ctx, margin: f32, gutter: f32) -> [Vec<(f32, f32)>; 3] {
    let (w, h) = (c.w, c.h);
    let g = gutter * 0.5;
    let flip = (c.idx + c.seed as usize) % 2 == 1;
    let fx = |x: f32| if flip { w - x } else { x };
    let q = |pts: Vec<(f32, f32)>| -> Vec<(f32, f32)> {
        pts.into_iter().map(|(x, y)| (fx(x), y)).collect()
    };
    if c.portrait {
        let yl = h * (0.5 + 0.08 * c.var[0]);
        let yr = yl - h * 0.12;
        let xm = w * (0.55 + 0.1 * c.var[1]);
        let xb = xm - w * 0.15;
        [
            q(vec![
                (margin, margin),
                (w - margin, margin),
                (w - margin, yr - g),
                (margin, yl - g),
            ]),
            q(vec![
                (margin, yl + g),
                (xm - g, yl + g - (yl - yr) * (xm / w)),
                (xb - g, h - margin),
                (margin, h - margin),
            ]),
            q(vec![
                (xm + g, yl + g - (yl - yr) * (xm / w)),
                (w - margin, yr + g),
                (w - margin, h - margin),
                (xb + g, h - margin),
            ]),
        ]
    } else {
        let xt = w * (0.5 + 0.1 * c.var[0]);
        let xb = xt - w * 0.16;
        let ym = h * (0.45 + 0.1 * c.var[1]);
        let yr = ym + h * 0.12;
        // x of the slanted vertical gutter at height y
        let xat = |y: f32| xt + (xb - xt) * (y / h);
        [
            q(vec![
                (margin, margin),
                (xt - g, margin),
                (xb - g, h - margin),
                (margin, h - margin),
            ]),
            q(vec![
                (xt + g, margin),
                (w - margin, margin),
                (w - margin, yr - g),
                (xat(ym) + g, ym - g),
            ]),
            q(vec![
                (xat(ym) + g, ym + g),
                (w - margin, yr + g),
                (w - margin, h - margin),
                (xb + g, h - margin),
            ]),
        ]
    }
}

/// Jagged explosion balloon as an approximate SDF.
fn burst_sdf(x: f32, y: f32, cx: f32, cy: f32, r: f32, spikes: f32, rot: f32) -> f32 {
    let (dx, dy) = (x - cx, y - cy);
    let d = (dx * dx + dy * dy).sqrt();
    let a = fast_atan2(dy, dx) + rot;
    let f = a * spikes / TAU;
    let f = f - ffloor(f);
    let tri = (f - 0.5).abs() * 2.0; // 1 at spike tips, 0 in valleys
    let rr = r * (0.68 + 0.32 * tri);
    (d - rr) * 0.8
}

fn comic(img: &mut RgbImage, c: &Ctx) {
    let s = c.s;
    let m = c.m;
    let mut rng = c.rng(67);
    img.data.fill(250);
    let margin = s * 0.03;
    let gutter = s * 0.035;
    let quads = three_panels(c, margin, gutter);
    let (ha, hb) = c.pal.hue_pair(c.idx, 0.15);
    let hc = c.pal.hue(c.idx + 2);
    let darkv = if m.night { 0.45 } else { 1.0 };
    let ow = (s * 0.009).max(2.0);
    let dot_p = (s / 42.0).max(6.0);
    let mut layer = RgbImage::new(img.width, img.height);
    let bwidth = img.width as usize;
    for (pi, q) in quads.iter().enumerate() {
        let poly = Poly::new(q);
        let bb = poly.bb;
        let (pw, ph) = (bb[2] - bb[0], bb[3] - bb[1]);
        let hue = [ha, hb, hc][pi];
        let bg = hsv(hue, 0.8, 0.95 * darkv);
        let dots = hsv(hue + 0.03, 0.55, (1.0 * darkv + 0.15).min(1.0));
        // Panel background with Ben-Day dots (and a diagonal tone gradient for drama).
        let x0 = bb[0].floor().max(0.0) as usize;
        let x1 = (bb[2].ceil() as usize).min(bwidth);
        let y0 = bb[1].floor().max(0.0) as usize;
        let y1 = (bb[3].ceil() as usize).min(img.height as usize);
        for y in y0..y1 {
            let yf = y as f32 + 0.5;
            for x in x0..x1 {
                let xf = x as f32 + 0.5;
                let diag = ((xf - bb[0]) / pw + (yf - bb[1]) / ph) * 0.5;
                let a = halftone(xf, yf, dot_p, 0.35 + 0.3 * diag);
                let col = mix(bg, dots, a);
                let i = (y * bwidth + x) * 3;
                put3(&mut layer.data[i..i + 3], c8(col));
            }
        }
        let role = (pi + c.idx) % 3;
        if role == 0 {
            // Action: diagonal speed lines and a jagged burst.
            let (cx, cy) = (bb[0] + pw * 0.5, bb[1] + ph * 0.42);
            let ang: f32 = 0.6;
            let (ca, sa) = (ang.cos(), ang.sin());
            let sp = s * 0.045;
            let lines = c8(hsv(hue, 0.9, 0.35 * darkv));
            shade_box(&mut layer, bb, |x, y| {
                let u = (x - cx) * ca + (y - cy) * sa;
                let v = -(x - cx) * sa + (y - cy) * ca;
                let k = fround(v / sp);
                let d = (v - k * sp).abs();
                let len = hash2(k as i32, 7, c.seed) * pw * 0.6 + pw * 0.2;
                let off = (hash2(k as i32, 8, c.seed) - 0.5) * pw;
                let along = ((u - off).abs() - len * 0.5).max(0.0);
                let hw = s * 0.004 * (1.0 - (along / (s * 0.05)).min(1.0));
                let a = cov(d - hw);
                (a > 0.0).then_some((lines, a))
            });
            let r = pw.min(ph) * 0.38;
            let rot = c.var[2] * TAU;
            let bb2 = [cx - r * 1.1, cy - r * 1.1, cx + r * 1.1, cy + r * 1.1];
            fill_outlined(&mut layer, bb2, [1.0, 0.88, 0.15], BLACK, ow, |x, y| {
                burst_sdf(x, y, cx, cy, r, 13.0, rot)
            });
            fill_outlined(
                &mut layer,
                bb2,
                hsv(0.01, 0.9, 0.95),
                BLACK,
                ow * 0.7,
                |x, y| burst_sdf(x, y, cx, cy, r * 0.55, 9.0, rot + 0.3),
            );
            disc(
                &mut layer,
                cx - r * 0.08,
                cy - r * 0.1,
                r * 0.12,
                WHITE,
                0.9,
            );
        } else if role == 1 {
            // Scene: motif landscape with outlined shapes.
            let horizon = bb[1] + ph * 0.66;
            let sx = bb[0] + pw * (0.25 + 0.5 * c.var[3]);
            let sy = bb[1] + ph * 0.3;
            let sr = pw.min(ph) * 0.16;
            let sky_hi = if m.dark() {
                hsv(hue + 0.5, 0.3, 0.95)
            } else {
                [1.0, 0.9, 0.3]
            };
            let bbs = [sx - sr, sy - sr, sx + sr, sy + sr];
            if m.dark() {
                fill_outlined(&mut layer, bbs, sky_hi, BLACK, ow, |x, y| {
                    let d1 = ((x - sx).powi(2) + (y - sy).powi(2)).sqrt() - sr;
                    let d2 = ((x - sx - sr * 0.5).powi(2) + (y - sy + sr * 0.2).powi(2)).sqrt()
                        - sr * 0.85;
                    d1.max(-d2)
                });
            } else {
                for i in 0..12 {
                    let a = TAU * i as f32 / 12.0;
                    let tri = Poly::new(&[
                        (
                            sx + (a - 0.12).cos() * sr * 1.15,
                            sy + (a - 0.12).sin() * sr * 1.15,
                        ),
                        (sx + a.cos() * sr * 1.6, sy + a.sin() * sr * 1.6),
                        (
                            sx + (a + 0.12).cos() * sr * 1.15,
                            sy + (a + 0.12).sin() * sr * 1.15,
                        ),
                    ]);
                    fill_outlined(
                        &mut layer,
                        tri.grown(0.0),
                        sky_hi,
                        BLACK,
                        ow * 0.6,
                        |x, y| tri.sdf(x, y),
                    );
                }
                fill_outlined(&mut layer, bbs, sky_hi, BLACK, ow, |x, y| {
                    ((x - sx).powi(2) + (y - sy).powi(2)).sqrt() - sr
                });
            }
            let ground = hsv(hue + 0.5, 0.75, 0.55 * darkv);
            let ground8 = c8(ground);
            let black8 = [0u8, 0, 0];
            let outlined = |depth: f32| {
                if depth < ow {
                    (black8, 1.0)
                } else {
                    (ground8, 1.0)
                }
            };
            if m.city {
                let sky = Skyline::new(&mut rng, c.w, s, horizon + s * 0.1, s * 0.1, s * 0.3);
                let fill8 = c8(hsv(hue + 0.45, 0.6, 0.6 * darkv));
                // Outline buildings: black where the pixel is near a top or a vertical edge.
                shade_box(
                    &mut layer,
                    [bb[0], horizon - s * 0.45, bb[2], bb[3]],
                    |x, y| {
                        let top = sky.at(x);
                        if y < top {
                            return None;
                        }
                        let i = sky.xs.partition_point(|&v| v <= x);
                        let (xl, xr) = if i == 0 || i >= sky.xs.len() {
                            (x - 1e3, x + 1e3)
                        } else {
                            (sky.xs[i - 1], sky.xs[i])
                        };
                        let edge = (y - top).min(x - xl).min(xr - x);
                        let t = cov(edge - ow * 0.5);
                        Some((c8(mix(cf(fill8), BLACK, t)), 1.0))
                    },
                );
                sky.windows(&mut layer, &mut rng, s, [1.0, 0.95, 0.5], 0.3, 1.0);
            } else if m.sea {
                for i in 0..4 {
                    let base = horizon + (bb[3] - horizon) * i as f32 / 4.0;
                    let k = TAU / (s * 0.2);
                    let ph0 = rng.range(0.0, TAU);
                    let col = c8(hsv(
                        0.58 + 0.02 * i as f32,
                        0.8,
                        (0.9 - 0.12 * i as f32) * darkv,
                    ));
                    fill_below(
                        &mut layer,
                        |x| base - s * 0.02 * (x * k + ph0).sin(),
                        |_, _, d| if d < ow { (black8, 1.0) } else { (col, 1.0) },
                    );
                }
            } else {
                let height = if m.mountain { s * 0.3 } else { s * 0.12 };
                let ridge = Ridge::mountains(&mut rng, horizon + s * 0.05, height, c.w, s, 1.0);
                fill_below(&mut layer, |x| ridge.at(x), |_, _, d| outlined(d));
                if m.forest {
                    for _ in 0..8 {
                        let x = bb[0] + rng.f() * pw;
                        let th = s * rng.range(0.1, 0.16);
                        let base = ridge.at(x) + th * 0.3;
                        let polys = pine_polys(x, base, th);
                        let tcol = hsv(0.33, 0.8, 0.45 * darkv);
                        fill_outlined(
                            &mut layer,
                            [x - th * 0.4, base - th, x + th * 0.4, base],
                            tcol,
                            BLACK,
                            ow * 0.6,
                            |px, py| polys.iter().map(|p| p.sdf(px, py)).fold(f32::MAX, f32::min),
                        );
                    }
                }
            }
        } else {
            // Close-up: a big outlined planet / moon / emblem circle with hatched shade.
            let (cx, cy) = (bb[0] + pw * 0.55, bb[1] + ph * 0.45);
            let r = pw.min(ph) * 0.3;
            let body = hsv(hue + 0.5, 0.7, 0.9 * darkv + 0.05);
            let shade_c = c8(hsv(hue + 0.5, 0.8, 0.45 * darkv));
            let hatch_p = (s * 0.016).max(5.0);
            fill_outlined(
                &mut layer,
                [cx - r, cy - r, cx + r, cy + r],
                body,
                BLACK,
                ow,
                |x, y| ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - r,
            );
            shade_box(&mut layer, [cx - r, cy - r, cx + r, cy + r], |x, y| {
                let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - (r - ow * 0.5);
                let dl =
                    ((x - cx + r * 0.4).powi(2) + (y - cy + r * 0.4).powi(2)).sqrt() - r * 1.15;
                if d > 0.5 || dl < -0.5 {
                    return None;
                }
                let v = (x + y) / hatch_p;
                let hd = (v - fround(v)).abs() * hatch_p * std::f32::consts::FRAC_1_SQRT_2;
                let a = cov(hd - hatch_p * 0.18).max(cov(-dl - ow * 2.0)) * cov(d) * cov(-dl);
                (a > 0.0).then_some((shade_c, a))
            });
            if m.space || m.night {
                let tilt: f32 = -0.3;
                let (ct, st) = (tilt.cos(), tilt.sin());
                let ring_bb = [cx - r * 1.9, cy - r, cx + r * 1.9, cy + r];
                fill_outlined(
                    &mut layer,
                    ring_bb,
                    [1.0, 0.9, 0.4],
                    BLACK,
                    ow * 0.6,
                    |x, y| {
                        let (dx, dy) = (x - cx, y - cy);
                        let u = dx * ct + dy * st;
                        let v = -dx * st + dy * ct;
                        if v < 0.0 && (u * u + v * v).sqrt() < r * 1.05 {
                            return 1e3;
                        }
                        let e = ((u / (r * 1.7)).powi(2) + (v / (r * 0.38)).powi(2)).sqrt();
                        ((e - 1.0) * r * 0.38).abs() - r * 0.06
                    },
                );
            } else {
                let tris = bolt_tris();
                fill_outlined(
                    &mut layer,
                    [cx - r, cy - r, cx + r, cy + r],
                    [1.0, 0.9, 0.2],
                    BLACK,
                    ow * 0.7,
                    |x, y| bolt_sdf(x, y, cx, cy, r * 0.6, &tris),
                );
            }
        }
        if m.rain || m.storm {
            let lc = hsv(hue, 0.3, 1.0);
            for _ in 0..((pw * ph) / (s * s) * 60.0) as usize {
                let x = bb[0] + rng.f() * pw;
                let y = bb[1] + rng.f() * ph;
                let len = s * 0.05;
                capsule(
                    &mut layer,
                    (x, y),
                    (x - len * 0.35, y + len),
                    (s * 0.0016).max(0.7),
                    lc,
                    0.8,
                );
            }
        }
        if m.snow {
            for _ in 0..((pw * ph) / (s * s) * 60.0) as usize {
                let (x, y) = (bb[0] + rng.f() * pw, bb[1] + rng.f() * ph);
                fill_outlined(
                    &mut layer,
                    [x - 6.0, y - 6.0, x + 6.0, y + 6.0],
                    WHITE,
                    BLACK,
                    ow * 0.4,
                    |px, py| ((px - x).powi(2) + (py - y).powi(2)).sqrt() - s * 0.005,
                );
            }
        }
        if m.fire {
            glow(
                &mut layer,
                bb[0] + pw * 0.5,
                bb[3],
                0.0,
                pw.max(ph) * 0.6,
                [1.0, 0.5, 0.1],
                0.45,
            );
        }
        composite(img, &layer, grow(bb, 1.0), |x, y| poly.sdf(x, y));
        fill_sdf(img, poly.grown(ow + 1.0), BLACK, 1.0, |x, y| {
            poly.sdf(x, y).abs() - ow * 0.5
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Ink wash (sumi-e)
// ---------------------------------------------------------------------------------------------

fn ink(img: &mut RgbImage, c: &Ctx) {
    let (w, h, s) = (c.w, c.h, c.s);
    let m = c.m;
    let mut rng = c.rng(79);
    let seed = c.seed ^ 0x1A2B;
    // Paper: a soft, low-frequency texture (no per-pixel grain).
    let paper = Field::new(w, h, (s / 180.0).max(2.0), |x, y| {
        0.6 * fbm(x / (s * 0.02), y / (s * 0.02), seed, 2)
            + 0.4 * fbm(x / (s * 0.25), y / (s * 0.25), seed + 5, 2)
    });
    let wash_tex = Field::new(w, h, (s / 120.0).max(2.0), |x, y| {
        fbm(x / (s * 0.08), y / (s * 0.08), seed + 9, 3)
    });
    let dark = m.dark();
    let horizon = h * (0.55 + 0.06 * c.var[0]);
    let width = img.width as usize;
    for (y, row) in img.data.chunks_exact_mut(width * 3).enumerate() {
        let yf = y as f32 + 0.5;
        // Night: a graded wash from the top.
        let sky = if dark {
            0.55 * (1.0 - smoothstep(0.0, horizon * 1.05, yf)).powf(0.8)
        } else if m.rain {
            0.18 * (1.0 - smoothstep(0.0, horizon, yf))
        } else {
            0.0
        };
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let xf = x as f32 + 0.5;
            let p = 0.925 + 0.06 * (paper.at(xf, yf) - 0.5);
            let v = if sky > 0.0 {
                p * (1.0 - sky * (0.8 + 0.4 * wash_tex.at(xf, yf)))
            } else {
                p
            };
            let g = (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
            put3(px, [g, g, g]);
        }
    }

    // Sun (a pale ink disc) or moon (paper left bare in the night wash).
    let sx = w * (0.2 + 0.6 * (1.0 - c.prog * 0.5 - c.var[1] * 0.5));
    let sy = horizon * (0.3 + 0.2 * c.var[2]);
    let sr = s * 0.075;
    if dark {
        glow(img, sx, sy, sr, sr * 2.5, gray(0.85), 0.35);
        disc(img, sx, sy, sr, gray(0.93), 1.0);
    } else {
        let tex = &wash_tex;
        shade_box(
            img,
            [sx - sr - 2.0, sy - sr - 2.0, sx + sr + 2.0, sy + sr + 2.0],
            |x, y| {
                let d = ((x - sx).powi(2) + (y - sy).powi(2)).sqrt() - sr;
                let a = smoothstep(1.5, -2.5, d) * (0.45 + 0.2 * tex.at(x, y));
                (a > 0.0).then_some((g8(0.25), a))
            },
        );
    }

    // Layered mountain washes: dark ridges bleeding down into mist.
    let layers: &[(f32, f32, f32)] = if m.mountain {
        &[(0.8, 0.4, 0.0), (0.5, 0.3, 0.07), (0.2, 0.22, 0.15)]
    } else {
        &[(0.8, 0.26, 0.0), (0.45, 0.18, 0.08)]
    };
    for &(level, height, drop) in layers.iter() {
        let base = horizon + s * drop;
        let ridge = Ridge::mountains(&mut rng, base, s * height, w, s, 0.35);
        let edge = s * 0.01;
        let col = g8(0.08 + level * 0.25);
        let tex = &wash_tex;
        let (top_y, mist_y) = (base - s * height * 0.55, base + s * 0.03);
        let strength = 1.0 - level * 0.75;
        fill_below_to(
            img,
            |x| ridge.at(x),
            mist_y + s * 0.01,
            |x, y, depth| {
                let d = depth.max(0.0);
                // Dark near the peaks, dissolving into mist towards the layer's base.
                let body = smoothstep(mist_y, top_y, y);
                let rim = if d < edge * 6.0 {
                    (-d / edge).exp() * (0.4 + 0.6 * smoothstep(mist_y + s * 0.05, top_y, y))
                } else {
                    0.0
                };
                let n = tex.at(x, y);
                let a = (0.5 * rim + 0.6 * body) * (0.6 + 0.7 * n) * strength;
                (col, a.min(1.0))
            },
        );
    }

    let brush_w = s * 0.012;
    if m.city {
        let sky = Skyline::new(&mut rng, w, s, horizon + s * 0.12, s * 0.05, s * 0.2);
        let col = g8(0.3);
        let tex = &wash_tex;
        fill_below_to(
            img,
            |x| sky.at(x),
            horizon + s * 0.12,
            |x, y, depth| {
                let a = (1.0 - depth.max(0.0) / (s * 0.2)).max(0.0) * (0.4 + 0.5 * tex.at(x, y));
                (col, a)
            },
        );
    }
    if m.sea {
        // A pale wash for the water, then rows of small brushed crests, smaller and lighter
        // towards the horizon.
        let (y0, y1) = (horizon + s * 0.02, c.caption_y());
        let tex = &wash_tex;
        shade_box(img, [0.0, y0 - s * 0.02, w, h], |x, y| {
            let a = smoothstep(y0 - s * 0.02, y0 + s * 0.03, y)
                * (1.0 - smoothstep(y0, h, y))
                * (0.15 + 0.2 * tex.at(x, y));
            Some((g8(0.35), a))
        });
        let rows = 4;
        for r in 0..rows {
            let t = r as f32 / (rows - 1) as f32;
            let y = y0 + s * 0.04 + (y1 - y0 - s * 0.04) * t * t.sqrt();
            let len = s * (0.05 + 0.08 * t);
            let amp = len * 0.28;
            let mut x = -len * rng.f();
            while x < w {
                let l = len * rng.range(0.8, 1.2);
                let pts = bezier(
                    (x, y),
                    (x + l * 0.45, y - amp * 2.0),
                    (x + l, y - amp * 0.2),
                    12,
                );
                let bw = brush_w * (0.35 + 0.6 * t);
                brush(
                    img,
                    &pts,
                    |u| bw * (0.3 + 0.7 * pressure(u)),
                    gray(0.15),
                    0.3 + 0.35 * t,
                    &wash_tex,
                );
                x += l * rng.range(1.3, 2.2);
            }
        }
    }
    if m.forest {
        for _ in 0..c.count(7.0) {
            let x = rng.f() * w;
            let base = horizon + s * rng.range(0.08, 0.16);
            let th = s * rng.range(0.18, 0.3);
            brush(
                img,
                &[(x, base), (x + s * 0.005, base - th)],
                |t| brush_w * 0.5 * (1.0 - 0.6 * t),
                gray(0.12),
                0.85,
                &wash_tex,
            );
            for j in 0..4 {
                let y = base - th * (0.35 + 0.18 * j as f32);
                let len = th * (0.45 - 0.08 * j as f32);
                let dir = if j % 2 == 0 { 1.0 } else { -1.0 };
                let pts = bezier(
                    (x, y),
                    (x + dir * len * 0.5, y - len * 0.15),
                    (x + dir * len, y + len * 0.05),
                    10,
                );
                brush(
                    img,
                    &pts,
                    |t| brush_w * 0.9 * pressure(t),
                    gray(0.1),
                    0.7,
                    &wash_tex,
                );
                let pts2 = bezier(
                    (x, y),
                    (x - dir * len * 0.4, y - len * 0.1),
                    (x - dir * len * 0.7, y + len * 0.06),
                    10,
                );
                brush(
                    img,
                    &pts2,
                    |t| brush_w * 0.8 * pressure(t),
                    gray(0.1),
                    0.6,
                    &wash_tex,
                );
            }
        }
    }

    // A signature element: an ensō circle or a flowering branch, alternating by scene.
    let variant = (c.idx + c.seed as usize) % 2;
    if m.space || (variant == 0 && !m.flower && !m.forest) {
        let (cx, cy) = (w * if sx > w * 0.5 { 0.3 } else { 0.7 }, h * 0.36);
        let r = s * 0.2;
        let a0 = rng.range(0.0, TAU);
        let pts: Vec<(f32, f32)> = (0..=64)
            .map(|i| {
                let a = a0 + TAU * 0.88 * i as f32 / 64.0;
                let rr = r * (1.0 + 0.03 * (a * 3.0).sin());
                (cx + rr * a.cos(), cy + rr * a.sin())
            })
            .collect();
        brush(
            img,
            &pts,
            |t| brush_w * 1.8 * (0.35 + 0.65 * pressure(t).max(0.3 * (1.0 - t))),
            gray(0.08),
            0.92,
            &wash_tex,
        );
    } else {
        let from_left = c.var[3] < 0.5;
        let x0 = if from_left { -s * 0.02 } else { w + s * 0.02 };
        let dir = if from_left { 1.0 } else { -1.0 };
        let y0 = h * 0.12;
        let end = (x0 + dir * w * 0.42, h * 0.3);
        let ctrl = (x0 + dir * w * 0.2, h * 0.02);
        let pts = bezier((x0, y0), ctrl, end, 40);
        brush(
            img,
            &pts,
            |t| brush_w * 1.3 * (1.0 - 0.75 * t),
            gray(0.1),
            0.9,
            &wash_tex,
        );
        for i in 0..5 {
            let t = 0.2 + 0.16 * i as f32;
            let p = pts[(t * 40.0) as usize];
            let side = if i % 2 == 0 { 1.0 } else { -1.0 };
            let tw_end = (p.0 + dir * s * 0.07, p.1 + side * s * 0.06);
            let twig = bezier(p, (p.0 + dir * s * 0.04, p.1 + side * s * 0.01), tw_end, 10);
            brush(
                img,
                &twig,
                |t| brush_w * 0.5 * (1.0 - 0.8 * t),
                gray(0.1),
                0.85,
                &wash_tex,
            );
            // Blossoms: pale wash discs with a dark heart.
            for (k, (ox, oy)) in [(0.0, 0.0), (0.03, -0.02), (-0.02, 0.025)]
                .iter()
                .enumerate()
            {
                let (bx, by) = (tw_end.0 + ox * s, tw_end.1 + oy * s);
                let br = s * (0.016 - 0.004 * k as f32);
                disc(img, bx, by, br, gray(0.62), 0.55);
                disc(img, bx, by, br * 0.25, gray(0.1), 0.9);
            }
        }
    }
    // Birds: a few small brushed "v"s.
    if !dark && !m.rain {
        let (bx, by) = (w * rng.range(0.3, 0.7), h * rng.range(0.15, 0.3));
        for i in 0..4 {
            let x = bx + i as f32 * s * 0.05 + rng.f() * s * 0.02;
            let y = by + ((i as f32) - 1.5).abs() * s * 0.025;
            let sz = s * 0.018;
            let l = bezier(
                (x - sz, y - sz * 0.3),
                (x - sz * 0.4, y - sz * 0.5),
                (x, y),
                6,
            );
            let r = bezier(
                (x, y),
                (x + sz * 0.4, y - sz * 0.5),
                (x + sz, y - sz * 0.35),
                6,
            );
            brush(
                img,
                &l,
                |t| (s * 0.0025).max(0.8) * (0.4 + 0.6 * t),
                gray(0.15),
                0.9,
                &wash_tex,
            );
            brush(
                img,
                &r,
                |t| (s * 0.0025).max(0.8) * (1.0 - 0.6 * t),
                gray(0.15),
                0.9,
                &wash_tex,
            );
        }
    }
    if m.fire {
        // Flickering flame strands: S-curves tapering upwards over a dark wash.
        let (fx, base) = (w * (0.35 + 0.3 * c.var[2]), c.caption_y() - s * 0.02);
        glow(img, fx, base, 0.0, s * 0.3, gray(0.25), 0.4);
        for i in 0..9 {
            let u = i as f32 / 8.0 - 0.5;
            let x = fx + u * s * 0.3;
            let top = base - s * (0.35 - 0.4 * u.abs()) * rng.range(0.7, 1.1);
            let mid = (base + top) * 0.5;
            let sway = s * 0.04 * if i % 2 == 0 { 1.0 } else { -1.0 };
            let mut pts = bezier((x, base), (x + sway, lerp(base, mid, 0.5)), (x, mid), 10);
            pts.extend(
                bezier(
                    (x, mid),
                    (x - sway, lerp(mid, top, 0.5)),
                    (x + sway * 0.3, top),
                    10,
                )
                .into_iter()
                .skip(1),
            );
            brush(
                img,
                &pts,
                |t| brush_w * 1.1 * (1.0 - t).powf(0.8) * smoothstep(0.0, 0.08, t),
                gray(0.1),
                0.8,
                &wash_tex,
            );
        }
    }
    if m.rain || m.storm {
        for _ in 0..c.count(90.0) {
            let x = rng.range(-0.1, 1.1) * w;
            let y = rng.f() * h;
            let len = s * rng.range(0.05, 0.1);
            let a = if y > c.caption_y() { 0.15 } else { 0.3 };
            capsule(
                img,
                (x, y),
                (x - len * 0.15, y + len),
                (s * 0.001).max(0.6),
                gray(0.25),
                a,
            );
        }
    }
    if m.snow {
        snow(img, c, &mut rng, gray(0.97), 0.95);
    }
    if m.rainbow {
        for i in 0..3 {
            let (cx, cy, r) = (w * 0.5, horizon + s * 0.1, s * (0.5 + 0.035 * i as f32));
            let pts: Vec<(f32, f32)> = (0..=48)
                .map(|k| {
                    let a = PI * (1.05 + 0.9 * k as f32 / 48.0);
                    (cx + r * a.cos(), cy + r * a.sin())
                })
                .collect();
            brush(
                img,
                &pts,
                |t| brush_w * 0.9 * (0.3 + 0.7 * pressure(t)),
                gray(0.35 + 0.15 * i as f32),
                0.35,
                &wash_tex,
            );
        }
    }
    // Mist over the caption band: lift towards paper.
    let y0 = c.caption_y() - s * 0.08;
    shade_box(img, [0.0, y0, w, h], |_, y| {
        Some((g8(0.93), 0.55 * smoothstep(y0, h, y)))
    });
}

// ---------------------------------------------------------------------------------------------
// Flat (explainer)
// ---------------------------------------------------------------------------------------------

/// Soft drop shadow of a rounded box, offset by (dx, dy).
fn soft_shadow(img: &mut RgbImage, card: &Card, dx: f32, dy: f32, blur: f32, alpha: f32, col: C3) {
    let (cx, cy, hx, hy, r) = (card.cx + dx, card.cy + dy, card.hx, card.hy, card.r);
    let c = c8(col);
    let m = blur * 2.0;
    shade_box(
        img,
        [cx - hx - m, cy - hy - m, cx + hx + m, cy + hy + m],
        |x, y| {
            let d = sd_rbox(x, y, cx, cy, hx, hy, r);
            let a = alpha * (1.0 - smoothstep(-blur, blur, d));
            (a > 0.0).then_some((c, a))
        },
    );
}

struct Card {
    cx: f32,
    cy: f32,
    hx: f32,
    hy: f32,
    r: f32,
}

impl Card {
    fn bb(&self) -> [f32; 4] {
        [
            self.cx - self.hx,
            self.cy - self.hy,
            self.cx + self.hx,
            self.cy + self.hy,
        ]
    }
    fn sdf(&self, x: f32, y: f32) -> f32 {
        sd_rbox(x, y, self.cx, self.cy, self.hx, self.hy, self.r)
    }
    fn draw(&self, img: &mut RgbImage, s: f32, fill: C3, shadow: C3) {
        soft_shadow(img, self, s * 0.006, s * 0.014, s * 0.025, 0.22, shadow);
        fill_sdf(img, grow(self.bb(), 1.0), fill, 1.0, |x, y| self.sdf(x, y));
    }
}

/// The flat illustration inside the main card.
fn flat_scene(img: &mut RgbImage, c: &Ctx, bb: [f32; 4], cols: &[C3; 4], bg_sky: C3) {
    let m = c.m;
    let s = c.s;
    let mut rng = c.rng(97);
    let (pw, ph) = (bb[2] - bb[0], bb[3] - bb[1]);
    fill_box(img, grow(bb, 2.0), bg_sky);
    let horizon = bb[1] + ph * 0.64;
    let sx = bb[0] + pw * (0.25 + 0.5 * c.var[2]);
    let sy = bb[1] + ph * 0.3;
    let sr = pw.min(ph) * 0.13;
    let dark = m.dark();
    if dark {
        for _ in 0..40 {
            let (x, y) = (bb[0] + rng.f() * pw, bb[1] + rng.f() * (horizon - bb[1]));
            disc(img, x, y, (s * 0.003).max(1.2), WHITE, 0.8);
        }
        crescent(img, sx, sy, sr, [1.0, 0.95, 0.75], 1.0);
    } else if !m.rain {
        let sun = [1.0, 0.8, 0.3];
        disc(img, sx, sy, sr * 1.45, mix(sun, bg_sky, 0.6), 1.0);
        disc(img, sx, sy, sr, sun, 1.0);
    }
    if m.space {
        let (px, py) = (
            bb[0] + pw * (1.0 - 0.25 - 0.5 * c.var[2]),
            bb[1] + ph * 0.35,
        );
        let pr = sr * 1.1;
        disc(img, px, py, pr, cols[1], 1.0);
        let tilt: f32 = -0.3;
        let (ct, st) = (tilt.cos(), tilt.sin());
        fill_sdf(
            img,
            [px - pr * 2.0, py - pr, px + pr * 2.0, py + pr],
            cols[2],
            1.0,
            |x, y| {
                let (dx, dy) = (x - px, y - py);
                let u = dx * ct + dy * st;
                let v = -dx * st + dy * ct;
                if v < 0.0 && (dx * dx + dy * dy).sqrt() < pr + 1.0 {
                    return 1e3;
                }
                let e = ((u / (pr * 1.8)).powi(2) + (v / (pr * 0.4)).powi(2)).sqrt();
                ((e - 1.0) * pr * 0.4).abs() - pr * 0.06
            },
        );
    }
    if m.rainbow {
        for (i, hcol) in [0.0f32, 0.1, 0.16, 0.35, 0.58, 0.75].iter().enumerate() {
            let r = pw * 0.38 - i as f32 * pw * 0.025;
            fill_sdf(
                img,
                [bb[0], bb[1], bb[2], horizon],
                hsv(*hcol, 0.6, 0.98),
                1.0,
                |x, y| {
                    let d = ((x - (bb[0] + pw * 0.5)).powi(2) + (y - horizon).powi(2)).sqrt();
                    (d - r).abs() - pw * 0.0125
                },
            );
        }
    }
    // Flat clouds: capsules with circle bumps.
    if !m.space {
        for i in 0..2 {
            let cx = bb[0] + pw * (0.2 + 0.55 * i as f32 + 0.1 * rng.f());
            let cy = bb[1] + ph * (0.18 + 0.15 * rng.f());
            let cw = pw * 0.12;
            let col = if dark {
                mix(bg_sky, WHITE, 0.2)
            } else if m.rain {
                gray(0.85)
            } else {
                WHITE
            };
            fill_sdf(
                img,
                [cx - cw * 1.3, cy - cw, cx + cw * 1.3, cy + cw * 0.5],
                col,
                1.0,
                |x, y| {
                    let base = sd_rbox(x, y, cx, cy, cw, cw * 0.28, cw * 0.28);
                    let bump = ((x - cx + cw * 0.25).powi(2) + (y - cy + cw * 0.2).powi(2)).sqrt()
                        - cw * 0.45;
                    let bump2 = ((x - cx - cw * 0.35).powi(2) + (y - cy + cw * 0.1).powi(2)).sqrt()
                        - cw * 0.32;
                    base.min(bump).min(bump2)
                },
            );
            if m.rain {
                for j in 0..5 {
                    let dx = cx - cw * 0.8 + j as f32 * cw * 0.4;
                    for k in 0..3 {
                        let dy = cy + cw * (0.55 + 0.45 * k as f32) + (j % 2) as f32 * cw * 0.2;
                        capsule(
                            img,
                            (dx, dy),
                            (dx - cw * 0.06, dy + cw * 0.18),
                            (s * 0.003).max(1.0),
                            cols[1],
                            1.0,
                        );
                    }
                }
            }
        }
    }
    // Ground shapes.
    if m.mountain || (!m.city && !m.sea && !m.forest && !m.space) {
        let n = 3;
        for i in 0..n {
            let cx = bb[0] + pw * (0.15 + 0.35 * i as f32 + 0.08 * rng.f());
            let mh = ph
                * if m.mountain {
                    rng.range(0.35, 0.5)
                } else {
                    rng.range(0.18, 0.28)
                };
            let half = mh * 1.1;
            let tri = Poly::new(&[
                (cx, horizon - mh),
                (cx + half, horizon + 1.0),
                (cx - half, horizon + 1.0),
            ]);
            let col = cols[i % 2 + 1];
            fill_sdf(img, tri.grown(1.0), col, 1.0, |x, y| tri.sdf(x, y));
            // Flat shading: the right flank slightly darker.
            let tri2 = Poly::new(&[
                (cx, horizon - mh),
                (cx + half, horizon + 1.0),
                (cx, horizon + 1.0),
            ]);
            fill_sdf(img, tri2.grown(1.0), BLACK, 0.12, |x, y| tri2.sdf(x, y));
            if m.snow || m.mountain {
                let k = 0.28;
                let cap = Poly::new(&[
                    (cx, horizon - mh),
                    (cx + half * k, horizon - mh * (1.0 - k)),
                    (cx - half * k, horizon - mh * (1.0 - k)),
                ]);
                fill_sdf(img, cap.grown(1.0), WHITE, 1.0, |x, y| cap.sdf(x, y));
            }
        }
    }
    if m.city {
        let mut x = bb[0] + pw * 0.04;
        let mut i = 0;
        while x < bb[2] - pw * 0.08 {
            let bw = pw * rng.range(0.08, 0.14);
            let bh = ph * rng.range(0.2, 0.5);
            let col = cols[i % 3 + 1];
            let (cx, cy) = (x + bw * 0.5, horizon - bh * 0.5);
            fill_sdf(
                img,
                [x - 1.0, horizon - bh - 1.0, x + bw + 1.0, horizon + 1.0],
                col,
                1.0,
                |px, py| sd_rbox(px, py, cx, cy + 2.0, bw * 0.5, bh * 0.5 + 2.0, s * 0.004),
            );
            let (ww, wh) = (bw * 0.16, bh * 0.05);
            let mut wy = horizon - bh + bh * 0.1;
            while wy < horizon - bh * 0.15 {
                for k in 0..2 {
                    let wx = x + bw * (0.3 + 0.4 * k as f32);
                    let lit = if dark {
                        [1.0, 0.9, 0.5]
                    } else {
                        mix(col, WHITE, 0.45)
                    };
                    fill_sdf(
                        img,
                        [wx - ww, wy - wh, wx + ww, wy + wh],
                        lit,
                        1.0,
                        |px, py| sd_rbox(px, py, wx, wy, ww * 0.5, wh * 0.5, 1.0),
                    );
                }
                wy += bh * 0.12;
            }
            x += bw + pw * 0.015;
            i += 1;
        }
    }
    if m.forest {
        for i in 0..6 {
            let x = bb[0] + pw * (0.08 + 0.17 * i as f32);
            let th = ph * rng.range(0.16, 0.26);
            capsule(
                img,
                (x, horizon),
                (x, horizon - th * 0.6),
                (pw * 0.008).max(1.0),
                mix(cols[3], BLACK, 0.3),
                1.0,
            );
            disc(
                img,
                x,
                horizon - th * 0.75,
                th * 0.3,
                cols[(i % 2) + 1],
                1.0,
            );
        }
    }
    // Ground band.
    let ground = if m.sea {
        cols[1]
    } else {
        mix(cols[2], WHITE, 0.25)
    };
    fill_box(
        img,
        [bb[0] - 2.0, horizon, bb[2] + 2.0, bb[3] + 2.0],
        ground,
    );
    if m.sea {
        for i in 0..3 {
            let y = horizon + (bb[3] - horizon) * (0.25 + 0.25 * i as f32);
            let k = TAU / (pw * 0.12);
            let ph0 = i as f32 * 1.3;
            let wc = mix(cols[1], WHITE, 0.35 + 0.15 * i as f32);
            fill_sdf(
                img,
                [bb[0], y - pw * 0.02, bb[2], y + pw * 0.02],
                wc,
                1.0,
                |x, yy| {
                    let f = y + pw * 0.008 * (x * k + ph0).sin();
                    (yy - f).abs() - (pw * 0.005).max(1.2)
                },
            );
        }
    }
    if m.fire {
        let (fx, fy) = (bb[0] + pw * 0.5, horizon);
        let fr = ph * 0.18;
        for (k, col) in [(1.0, [1.0, 0.45, 0.15]), (0.62, [1.0, 0.8, 0.25])] {
            let r = fr * k;
            fill_sdf(
                img,
                [fx - r * 1.2, fy - r * 2.6, fx + r * 1.2, fy + 1.0],
                col,
                1.0,
                |x, y| {
                    // Teardrop: a circle merged with a cone pointing up.
                    let (dx, dy) = (x - fx, y - (fy - r));
                    let circle = (dx * dx + dy * dy).sqrt() - r;
                    let cone = Poly::new(&[
                        (fx, fy - r * 2.6),
                        (fx + r * 0.95, fy - r * 1.3),
                        (fx - r * 0.95, fy - r * 1.3),
                    ]);
                    circle.min(cone.sdf(x, y))
                },
            );
        }
    }
}

fn flat(img: &mut RgbImage, c: &Ctx) {
    let (w, h, s) = (c.w, c.h, c.s);
    let m = c.m;
    let mut rng = c.rng(103);
    let dark = m.dark();
    let (ha, hb) = c.pal.hue_pair(c.idx, 0.12);
    let light = c.pal.lightest();
    let (lh, _, _) = to_hsv(light);
    let bg = if dark {
        hsv(ha, 0.45, 0.2)
    } else {
        hsv(lh, 0.06, 0.97)
    };
    let ink = if dark {
        gray(0.95)
    } else {
        hsv(ha, 0.35, 0.25)
    };
    let cols: [C3; 4] = [
        hsv(ha, 0.55, 0.92),
        hsv(ha, 0.6, 0.85),
        hsv(hb, 0.55, 0.92),
        hsv(c.pal.hue(c.idx + 2), 0.5, 0.95),
    ];
    fill_box(img, [0.0, 0.0, w, h], bg);
    let shadow = if dark { BLACK } else { hsv(ha, 0.4, 0.3) };

    // Decorative blob partly off-canvas in a top corner, and a dot grid.
    let left = (c.idx + c.seed as usize).is_multiple_of(2);
    let (bx, by) = (if left { w * 0.98 } else { w * 0.02 }, h * 0.02);
    disc(img, bx, by, s * 0.32, mix(cols[2], bg, 0.55), 1.0);
    let dot_p = s * 0.04;
    let dot_r = (s * 0.0035).max(1.3);
    let dots = c8(mix(bg, ink, 0.18));
    let (gx0, gx1) = if left {
        (w * 0.04, w * 0.3)
    } else {
        (w * 0.7, w * 0.96)
    };
    let (gy0, gy1) = (h * 0.5, h * 0.72);
    shade_box(img, [gx0, gy0, gx1, gy1], |x, y| {
        let fx = (x - gx0) / dot_p;
        let fy = (y - gy0) / dot_p;
        let dx = (fx - fround(fx)) * dot_p;
        let dy = (fy - fround(fy)) * dot_p;
        let a = cov((dx * dx + dy * dy).sqrt() - dot_r);
        (a > 0.0).then_some((dots, a))
    });

    // Main illustration card and a chart card, side by side (stacked in portrait).
    let (main, side) = if c.portrait {
        (
            Card {
                cx: w * 0.5,
                cy: h * 0.27,
                hx: w * 0.4,
                hy: h * 0.19,
                r: s * 0.04,
            },
            Card {
                cx: w * 0.5,
                cy: h * 0.6,
                hx: w * 0.36,
                hy: h * 0.1,
                r: s * 0.035,
            },
        )
    } else {
        let mx = if left { 0.33 } else { 0.67 };
        (
            Card {
                cx: w * mx,
                cy: h * 0.4,
                hx: w * 0.23,
                hy: h * 0.29,
                r: s * 0.04,
            },
            Card {
                cx: w * (1.0 - mx + if left { 0.04 } else { -0.04 }),
                cy: h * 0.33,
                hx: w * 0.14,
                hy: h * 0.19,
                r: s * 0.035,
            },
        )
    };
    main.draw(img, s, WHITE, shadow);
    let inner = Card {
        cx: main.cx,
        cy: main.cy,
        hx: main.hx - s * 0.02,
        hy: main.hy - s * 0.02,
        r: main.r * 0.7,
    };
    let mut layer = RgbImage::new(img.width, img.height);
    let sky = if dark {
        hsv(ha, 0.5, 0.32)
    } else {
        hsv(ha, 0.18, 0.98)
    };
    flat_scene(&mut layer, c, inner.bb(), &cols, sky);
    composite(img, &layer, grow(inner.bb(), 1.0), |x, y| inner.sdf(x, y));

    let card_col = if dark { hsv(ha, 0.35, 0.3) } else { WHITE };
    side.draw(img, s, card_col, shadow);
    // Chart: rounded bars on a baseline, or a donut.
    let sb = side.bb();
    let (pw, ph) = (sb[2] - sb[0], sb[3] - sb[1]);
    if (c.idx / 2 + c.seed as usize).is_multiple_of(2) {
        let n = 4;
        let base = sb[3] - ph * 0.2;
        let bw = pw * 0.12;
        for i in 0..n {
            let x = sb[0] + pw * (0.2 + 0.2 * i as f32);
            let bh = ph * rng.range(0.2, 0.55) * (0.7 + 0.3 * i as f32 / n as f32);
            let col = cols[i % 4];
            let (cx, cy) = (x, base - bh * 0.5);
            fill_sdf(
                img,
                [cx - bw, base - bh - 1.0, cx + bw, base + 1.0],
                col,
                1.0,
                |px, py| sd_rbox(px, py, cx, cy, bw * 0.5, bh * 0.5, bw * 0.25),
            );
        }
        capsule(
            img,
            (sb[0] + pw * 0.1, base + ph * 0.03),
            (sb[2] - pw * 0.1, base + ph * 0.03),
            (s * 0.003).max(1.0),
            mix(ink, card_col, 0.6),
            1.0,
        );
        for i in 0..2 {
            let y = sb[1] + ph * (0.14 + 0.08 * i as f32);
            capsule(
                img,
                (sb[0] + pw * 0.12, y),
                (sb[0] + pw * (0.6 - 0.2 * i as f32), y),
                (s * 0.006).max(1.5),
                mix(ink, card_col, 0.3 + 0.3 * i as f32),
                1.0,
            );
        }
    } else {
        let (cx, cy) = (sb[0] + pw * 0.5, sb[1] + ph * 0.45);
        let r = pw.min(ph) * 0.3;
        let lw = r * 0.38;
        let split = [0.0, 0.45 + 0.2 * c.var[3], 0.8, 1.0];
        for i in 0..3 {
            let (a0, a1) = (split[i], split[i + 1]);
            let col = cols[i % 4];
            fill_sdf(
                img,
                [cx - r - lw, cy - r - lw, cx + r + lw, cy + r + lw],
                col,
                1.0,
                |x, y| {
                    let (dx, dy) = (x - cx, y - cy);
                    let d = ((dx * dx + dy * dy).sqrt() - r).abs() - lw * 0.5;
                    let t = fast_atan2(dx, -dy) / TAU + 0.5;
                    let dist_ang = if t < a0 {
                        a0 - t
                    } else if t > a1 {
                        t - a1
                    } else {
                        0.0
                    };
                    let along = dist_ang * TAU * (dx * dx + dy * dy).sqrt();
                    d.max(along - 0.0)
                },
            );
        }
        capsule(
            img,
            (sb[0] + pw * 0.2, sb[3] - ph * 0.14),
            (sb[2] - pw * 0.2, sb[3] - ph * 0.14),
            (s * 0.006).max(1.5),
            mix(ink, card_col, 0.4),
            1.0,
        );
    }

    // Small accent shapes: a plus, a ring, a tiny triangle.
    let accents = [(0.1, 0.12), (0.9, 0.7), (0.52, 0.08), (0.08, 0.68)];
    for (i, (ux, uy)) in accents.iter().enumerate() {
        let (x, y) = (w * ux, h * uy);
        let r = s * 0.018;
        let col = cols[(i + 1) % 4];
        match (i + c.idx) % 3 {
            0 => {
                capsule(img, (x - r, y), (x + r, y), r * 0.28, col, 1.0);
                capsule(img, (x, y - r), (x, y + r), r * 0.28, col, 1.0);
            }
            1 => ring(img, x, y, r, r * 0.45, col, 1.0),
            _ => {
                let tri = Poly::new(&ngon(x, y, r * 1.1, 3, -PI * 0.5 + i as f32));
                fill_sdf(img, tri.grown(1.0), col, 1.0, |px, py| {
                    tri.sdf(px, py) + r * 0.1
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAL: [[u8; 3]; 5] = [
        [231, 76, 60],
        [52, 152, 219],
        [241, 196, 15],
        [46, 204, 113],
        [44, 62, 80],
    ];

    fn spec<'a>(look: Look, w: u32, h: u32, seed: u64, motifs: &'a [String]) -> PaintSpec<'a> {
        PaintSpec {
            width: w,
            height: h,
            look,
            palette: &PAL,
            seed,
            scene_index: 1,
            scene_count: 4,
            motifs,
        }
    }

    fn mean(img: &RgbImage) -> [f64; 3] {
        let mut m = [0.0; 3];
        for px in img.data.chunks_exact(3) {
            for c in 0..3 {
                m[c] += px[c] as f64;
            }
        }
        let n = (img.data.len() / 3) as f64;
        [m[0] / n, m[1] / n, m[2] / n]
    }

    fn top_half_luma(img: &RgbImage) -> f64 {
        let half = img.data.len() / 2 / 3 * 3;
        let mut sum = 0.0;
        for px in img.data[..half].chunks_exact(3) {
            sum += 0.299 * px[0] as f64 + 0.587 * px[1] as f64 + 0.114 * px[2] as f64;
        }
        sum / (half / 3) as f64
    }

    #[test]
    fn parse_round_trips() {
        for l in Look::ALL {
            assert_eq!(Look::parse(l.as_str()), Some(l));
        }
        assert_eq!(Look::parse("Marvel_DC"), Some(Look::Comic));
        assert_eq!(Look::parse("nope"), None);
    }

    #[test]
    fn deterministic() {
        let mot = vec!["city".to_string(), "rain".to_string(), "sea".to_string()];
        for l in Look::ALL {
            let a = paint(&spec(l, 320, 180, 7, &mot));
            let b = paint(&spec(l, 320, 180, 7, &mot));
            assert_eq!(a, b, "{l:?} is not deterministic");
        }
    }

    #[test]
    fn seeds_differ() {
        for l in Look::ALL {
            let a = paint(&spec(l, 320, 180, 1, &[]));
            let b = paint(&spec(l, 320, 180, 2, &[]));
            let diff = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
            assert!(
                diff > a.data.len() / 50,
                "{l:?}: seeds barely differ ({diff} bytes)"
            );
        }
    }

    #[test]
    fn grayscale_looks_are_gray() {
        let mots: Vec<Vec<String>> = vec![
            vec![],
            ["night", "city", "rain"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ["sea", "fire", "space", "rainbow", "forest", "snow"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ];
        for l in [Look::Manga, Look::Ink] {
            for mot in &mots {
                let img = paint(&spec(l, 333, 187, 3, mot));
                assert!(
                    img.data
                        .chunks_exact(3)
                        .all(|p| p[0] == p[1] && p[1] == p[2]),
                    "{l:?} not gray"
                );
            }
        }
    }

    #[test]
    fn colour_looks_are_colourful_and_distinct() {
        let looks = [
            Look::Anime,
            Look::Gaming,
            Look::Superhero,
            Look::Comic,
            Look::Flat,
        ];
        let imgs: Vec<RgbImage> = looks
            .iter()
            .map(|&l| paint(&spec(l, 320, 180, 5, &[])))
            .collect();
        for (l, img) in looks.iter().zip(&imgs) {
            let coloured = img
                .data
                .chunks_exact(3)
                .filter(|p| p[0].abs_diff(p[1]) > 12 || p[1].abs_diff(p[2]) > 12)
                .count();
            assert!(coloured > img.data.len() / 3 / 10, "{l:?} looks gray");
        }
        let means: Vec<[f64; 3]> = imgs.iter().map(mean).collect();
        for i in 0..looks.len() {
            for j in i + 1..looks.len() {
                let d = (0..3)
                    .map(|c| (means[i][c] - means[j][c]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(
                    d > 15.0,
                    "{:?} and {:?} mean colours too close ({d:.1})",
                    looks[i],
                    looks[j]
                );
            }
        }
    }

    #[test]
    fn strength_ranks_flat_gray_below_superhero() {
        let g = RgbImage::filled(320, 180, [128, 128, 128]);
        let hero = paint(&spec(Look::Superhero, 320, 180, 9, &[]));
        assert!(visual_strength(&g) < 0.05);
        assert!(visual_strength(&hero) > visual_strength(&g) + 0.5);
    }

    #[test]
    fn odd_sizes() {
        let mot = vec![
            "city".to_string(),
            "night".to_string(),
            "mountain".to_string(),
        ];
        for l in Look::ALL {
            for (w, h) in [(333, 187), (187, 333), (1, 1), (3, 2), (0, 5)] {
                let img = paint(&spec(l, w, h, 11, &mot));
                assert_eq!((img.width, img.height), (w, h));
                assert_eq!(img.data.len(), w as usize * h as usize * 3);
            }
        }
    }

    #[test]
    fn night_darkens_top_half() {
        let night = vec!["night".to_string()];
        for l in Look::ALL {
            let day = top_half_luma(&paint(&spec(l, 320, 180, 4, &[])));
            let dark = top_half_luma(&paint(&spec(l, 320, 180, 4, &night)));
            assert!(dark + 3.0 < day, "{l:?}: night {dark:.1} vs day {day:.1}");
        }
    }

    #[test]
    fn scenes_differ() {
        for l in Look::ALL {
            let mut a = spec(l, 240, 135, 3, &[]);
            let img0 = paint(&a);
            a.scene_index = 2;
            let img1 = paint(&a);
            assert_ne!(img0, img1, "{l:?}");
        }
    }

    #[test]
    fn tolerates_odd_palettes() {
        for pal in [&[][..], &[[10u8, 10, 10]][..], &[[128u8, 128, 128]; 9][..]] {
            for l in Look::ALL {
                let mut sp = spec(l, 100, 60, 1, &[]);
                sp.palette = pal;
                let img = paint(&sp);
                assert_eq!(img.data.len(), 100 * 60 * 3);
            }
        }
    }
}
