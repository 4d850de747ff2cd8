//! The manga look (black ink, screentone, focus lines).

use super::*;

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

pub(super) fn manga(img: &mut RgbImage, c: &Ctx) {
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
