//! The comic look (bold panels, thick outlines, Ben-Day dots).

use super::*;

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

pub(super) fn comic(img: &mut RgbImage, c: &Ctx) {
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
