//! The superhero look.

use super::*;

pub(super) fn bolt_sdf(x: f32, y: f32, cx: f32, cy: f32, r: f32, tris: &[Poly; 2]) -> f32 {
    let (u, v) = ((x - cx) / r, (y - cy) / r);
    tris[0].sdf(u, v).min(tris[1].sdf(u, v)) * r
}

pub(super) fn bolt_tris() -> [Poly; 2] {
    [
        Poly::new(&[(0.42, -1.0), (-0.5, 0.2), (0.2, 0.02)]),
        Poly::new(&[(-0.42, 1.0), (0.5, -0.2), (-0.2, -0.02)]),
    ]
}

/// A bold emblem: black-outlined badge with an inner ring and a star or bolt.
/// `kind % 3` picks the badge (shield, disc, diamond), `(kind / 3) % 2` the symbol (star, bolt).
pub(super) fn emblem(img: &mut RgbImage, cx: f32, cy: f32, r: f32, fill: C3, sym: C3, kind: usize) {
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

pub(super) fn superhero(img: &mut RgbImage, c: &Ctx) {
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
