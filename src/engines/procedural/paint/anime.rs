//! The anime look.

use super::*;

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

pub(super) fn anime(img: &mut RgbImage, c: &Ctx) {
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
