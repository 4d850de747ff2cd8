//! The flat look (explainer).

use super::*;

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
    pub(super) fn bb(&self) -> [f32; 4] {
        [
            self.cx - self.hx,
            self.cy - self.hy,
            self.cx + self.hx,
            self.cy + self.hy,
        ]
    }
    pub(super) fn sdf(&self, x: f32, y: f32) -> f32 {
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

pub(super) fn flat(img: &mut RgbImage, c: &Ctx) {
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
