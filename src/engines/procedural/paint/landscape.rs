//! Landscape building blocks: ridges, skylines, trees, sky bodies and weather.

use super::*;

/// A ridge line y(x): rolling sine hills and/or triangular peaks.
pub(super) struct Ridge {
    base: f32,
    waves: Vec<[f32; 3]>,
    peaks: Vec<[f32; 3]>,
}

impl Ridge {
    pub(super) fn hills(rng: &mut Rng, base: f32, amp: f32, s: f32) -> Ridge {
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

    pub(super) fn mountains(
        rng: &mut Rng,
        base: f32,
        height: f32,
        w: f32,
        s: f32,
        rough: f32,
    ) -> Ridge {
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

    pub(super) fn at(&self, x: f32) -> f32 {
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
pub(super) struct Skyline {
    pub(super) xs: Vec<f32>,
    tops: Vec<f32>,
    base: f32,
}

impl Skyline {
    pub(super) fn new(rng: &mut Rng, w: f32, s: f32, base: f32, hmin: f32, hmax: f32) -> Skyline {
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

    pub(super) fn at(&self, x: f32) -> f32 {
        let i = self.xs.partition_point(|&v| v <= x);
        if i == 0 || i > self.tops.len() {
            self.base
        } else {
            self.tops[i - 1]
        }
    }

    /// Little rectangular windows; `prob` of each being drawn.
    pub(super) fn windows(
        &self,
        img: &mut RgbImage,
        rng: &mut Rng,
        s: f32,
        col: C3,
        prob: f32,
        alpha: f32,
    ) {
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
pub(super) fn pine_polys(x: f32, base: f32, height: f32) -> Vec<Poly> {
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

pub(super) fn pine(img: &mut RgbImage, x: f32, base: f32, height: f32, col: C3, alpha: f32) {
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
pub(super) fn crescent(img: &mut RgbImage, cx: f32, cy: f32, r: f32, col: C3, alpha: f32) {
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
pub(super) fn starfield(img: &mut RgbImage, c: &Ctx, rng: &mut Rng, n: usize, y1: f32, col: C3) {
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
pub(super) fn planet(
    img: &mut RgbImage,
    cx: f32,
    cy: f32,
    r: f32,
    body: C3,
    ringc: C3,
    shadow: C3,
) {
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
pub(super) fn rain(img: &mut RgbImage, c: &Ctx, rng: &mut Rng, col: C3, alpha: f32, n_per: f32) {
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

pub(super) fn snow(img: &mut RgbImage, c: &Ctx, rng: &mut Rng, col: C3, alpha: f32) {
    for _ in 0..c.count(160.0) {
        let x = rng.f() * c.w;
        let y = rng.f() * c.h;
        let r = (c.s * rng.range(0.0018, 0.0055)).max(1.0);
        let a = alpha * if y > c.caption_y() { 0.5 } else { 1.0 };
        disc(img, x, y, r, col, a);
    }
}

/// Zig-zag lightning bolt with a glow.
pub(super) fn lightning(img: &mut RgbImage, c: &Ctx, rng: &mut Rng, col: C3) {
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
pub(super) fn rainbow(img: &mut RgbImage, cx: f32, cy: f32, r: f32, bw: f32, alpha: f32) {
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
pub(super) fn milky_way(img: &mut RgbImage, c: &Ctx, col: C3, alpha: f32, y_max: f32) {
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
