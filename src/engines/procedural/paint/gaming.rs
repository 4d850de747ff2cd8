//! The gaming look (synthwave / neon).

use super::*;

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

pub(super) fn gaming(img: &mut RgbImage, c: &Ctx) {
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
