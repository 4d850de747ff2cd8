//! Small maths: rounding, blending, easing, coverage and signed-distance shapes.

use super::*;

/// floor() without a libm call (the crate is built without SSE4.1, where `f32::floor` is a call).
#[inline(always)]
pub(super) fn ffloor(v: f32) -> f32 {
    let t = v as i32 as f32;
    if t > v {
        t - 1.0
    } else {
        t
    }
}

#[inline(always)]
pub(super) fn fround(v: f32) -> f32 {
    ffloor(v + 0.5)
}

/// Blends `c` over the pixel at byte offset `i` with coverage `a`; same rounding as
/// `RgbImage::blend` for in-range values, but cheaper in the hot loops.
#[inline(always)]
pub(super) fn blend_at(data: &mut [u8], i: usize, c: [u8; 3], a: f32) {
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
pub(super) fn put3(px: &mut [u8], c: [u8; 3]) {
    px[0] = c[0];
    px[1] = c[1];
    px[2] = c[2];
}

#[inline(always)]
pub(super) fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

#[inline(always)]
pub(super) fn smooth01(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[inline]
pub(super) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    smooth01((x - e0) / (e1 - e0))
}

/// Coverage of a pixel by a shape at signed distance `d` (negative inside).
#[inline(always)]
pub(super) fn cov(d: f32) -> f32 {
    (0.5 - d).clamp(0.0, 1.0)
}

/// atan2 with ~0.001 rad error; cheaper than the libm call in full-frame passes.
#[inline(always)]
pub(super) fn fast_atan2(y: f32, x: f32) -> f32 {
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
pub(super) fn seg_dist(px: f32, py: f32, a: (f32, f32), b: (f32, f32)) -> f32 {
    let (pax, pay) = (px - a.0, py - a.1);
    let (bax, bay) = (b.0 - a.0, b.1 - a.1);
    let t = ((pax * bax + pay * bay) / (bax * bax + bay * bay).max(1e-6)).clamp(0.0, 1.0);
    let (dx, dy) = (pax - bax * t, pay - bay * t);
    (dx * dx + dy * dy).sqrt()
}

/// Signed distance to a rounded box centred at (cx, cy) with half extents (hx, hy).
#[inline(always)]
pub(super) fn sd_rbox(px: f32, py: f32, cx: f32, cy: f32, hx: f32, hy: f32, r: f32) -> f32 {
    let qx = (px - cx).abs() - hx + r;
    let qy = (py - cy).abs() - hy + r;
    let (ox, oy) = (qx.max(0.0), qy.max(0.0));
    (ox * ox + oy * oy).sqrt() + qx.max(qy).min(0.0) - r
}

/// Signed distance to a five-pointed star (point up) of outer radius `r`.
pub(super) fn sd_star5(px: f32, py: f32, r: f32, rf: f32) -> f32 {
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
pub(super) struct Poly {
    planes: Vec<[f32; 3]>,
    pub(super) bb: [f32; 4],
}

impl Poly {
    pub(super) fn new(pts: &[(f32, f32)]) -> Poly {
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
    pub(super) fn sdf(&self, x: f32, y: f32) -> f32 {
        let mut d = f32::MIN;
        for p in &self.planes {
            d = d.max(p[0] * x + p[1] * y - p[2]);
        }
        d
    }

    pub(super) fn grown(&self, m: f32) -> [f32; 4] {
        grow(self.bb, m)
    }
}

pub(super) fn grow(bb: [f32; 4], m: f32) -> [f32; 4] {
    [bb[0] - m, bb[1] - m, bb[2] + m, bb[3] + m]
}

pub(super) fn ngon(cx: f32, cy: f32, r: f32, n: usize, rot: f32) -> Vec<(f32, f32)> {
    (0..n)
        .map(|i| {
            let a = rot + TAU * i as f32 / n as f32;
            (cx + r * a.cos(), cy + r * a.sin())
        })
        .collect()
}
