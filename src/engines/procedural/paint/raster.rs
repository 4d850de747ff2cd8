//! Raster primitives: filled and outlined shapes, glows, gradients, brushes, halftone.

use super::*;

/// Calls `f` at each pixel centre inside the (clipped) box; `f` returns colour and coverage.
pub(super) fn shade_box<F: FnMut(f32, f32) -> Option<([u8; 3], f32)>>(
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

pub(super) fn fill_sdf<F: Fn(f32, f32) -> f32>(
    img: &mut RgbImage,
    bb: [f32; 4],
    col: C3,
    alpha: f32,
    sdf: F,
) {
    let c = c8(col);
    shade_box(img, bb, |x, y| {
        let a = cov(sdf(x, y));
        (a > 0.0).then_some((c, a * alpha))
    });
}

/// Fill plus a stroke straddling the outline (the comic-book "thick black line").
pub(super) fn fill_outlined<F: Fn(f32, f32) -> f32>(
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

pub(super) fn disc(img: &mut RgbImage, cx: f32, cy: f32, r: f32, col: C3, alpha: f32) {
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

pub(super) fn ring(img: &mut RgbImage, cx: f32, cy: f32, r: f32, lw: f32, col: C3, alpha: f32) {
    let m = r + lw + 1.0;
    fill_sdf(img, [cx - m, cy - m, cx + m, cy + m], col, alpha, |x, y| {
        let (dx, dy) = (x - cx, y - cy);
        ((dx * dx + dy * dy).sqrt() - r).abs() - lw * 0.5
    });
}

/// A round-capped line of radius `r` (anti-aliased, at least ~1px visually).
pub(super) fn capsule(
    img: &mut RgbImage,
    a: (f32, f32),
    b: (f32, f32),
    r: f32,
    col: C3,
    alpha: f32,
) {
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
pub(super) fn glow(img: &mut RgbImage, cx: f32, cy: f32, r0: f32, r1: f32, col: C3, alpha: f32) {
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
pub(super) fn sparkle(img: &mut RgbImage, cx: f32, cy: f32, r: f32, col: C3, alpha: f32) {
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
pub(super) fn vgradient(img: &mut RgbImage, stops: &[(f32, C3)]) {
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
pub(super) fn fill_below<T, S>(img: &mut RgbImage, top: T, shade: S)
where
    T: Fn(f32) -> f32,
    S: FnMut(f32, f32, f32) -> ([u8; 3], f32),
{
    fill_below_to(img, top, f32::MAX, shade);
}

/// [`fill_below`] that stops at row `y_end` (for washes that have faded out by then).
pub(super) fn fill_below_to<T, S>(img: &mut RgbImage, top: T, y_end: f32, mut shade: S)
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
pub(super) fn composite<F: Fn(f32, f32) -> f32>(
    dst: &mut RgbImage,
    src: &RgbImage,
    bb: [f32; 4],
    sdf: F,
) {
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
pub(super) fn fill_box(img: &mut RgbImage, bb: [f32; 4], col: C3) {
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
pub(super) fn brush<R: Fn(f32) -> f32>(
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
pub(super) fn bezier(a: (f32, f32), c: (f32, f32), b: (f32, f32), n: usize) -> Vec<(f32, f32)> {
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
pub(super) fn pressure(t: f32) -> f32 {
    smoothstep(0.0, 0.12, t) * (1.0 - smoothstep(0.55, 1.0, t) * 0.92)
}

/// Screentone / halftone coverage: dots of radius `tone` (0..1 of the half-period) on a grid
/// rotated 45 degrees with the given period. Returns ink coverage at (x, y).
#[inline(always)]
pub(super) fn halftone(x: f32, y: f32, period: f32, tone: f32) -> f32 {
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
