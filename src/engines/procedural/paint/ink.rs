//! The ink-wash look (sumi-e).

use super::*;

pub(super) fn ink(img: &mut RgbImage, c: &Ctx) {
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
