//! Colour: RGB/HSV helpers and the channel palette.

use super::*;

pub(super) type C3 = [f32; 3];
pub(super) const WHITE: C3 = [1.0, 1.0, 1.0];
pub(super) const BLACK: C3 = [0.0, 0.0, 0.0];

#[inline(always)]
pub(super) fn c8(c: C3) -> [u8; 3] {
    [
        (c[0].clamp(0.0, 1.0) * 255.0 + 0.5) as u8,
        (c[1].clamp(0.0, 1.0) * 255.0 + 0.5) as u8,
        (c[2].clamp(0.0, 1.0) * 255.0 + 0.5) as u8,
    ]
}

pub(super) fn cf(c: [u8; 3]) -> C3 {
    [
        c[0] as f32 / 255.0,
        c[1] as f32 / 255.0,
        c[2] as f32 / 255.0,
    ]
}

#[inline(always)]
pub(super) fn mix(a: C3, b: C3, t: f32) -> C3 {
    [
        lerp(a[0], b[0], t),
        lerp(a[1], b[1], t),
        lerp(a[2], b[2], t),
    ]
}

pub(super) fn scale(c: C3, k: f32) -> C3 {
    [c[0] * k, c[1] * k, c[2] * k]
}

pub(super) fn gray(v: f32) -> C3 {
    [v, v, v]
}

/// Gray level as bytes (R == G == B by construction).
pub(super) fn g8(v: f32) -> [u8; 3] {
    c8(gray(v))
}

pub(super) fn to_hsv(c: C3) -> (f32, f32, f32) {
    let mx = c[0].max(c[1]).max(c[2]);
    let mn = c[0].min(c[1]).min(c[2]);
    let d = mx - mn;
    let h = if d <= 1e-6 {
        0.0
    } else if mx == c[0] {
        ((c[1] - c[2]) / d / 6.0).rem_euclid(1.0)
    } else if mx == c[1] {
        ((c[2] - c[0]) / d + 2.0) / 6.0
    } else {
        ((c[0] - c[1]) / d + 4.0) / 6.0
    };
    let s = if mx <= 1e-6 { 0.0 } else { d / mx };
    (h, s, mx)
}

pub(super) fn hsv(h: f32, s: f32, v: f32) -> C3 {
    let h = h.rem_euclid(1.0) * 6.0;
    let s = s.clamp(0.0, 1.0);
    let v = v.clamp(0.0, 1.0);
    let i = (ffloor(h) as i32).clamp(0, 5);
    let f = h - i as f32;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match i {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

pub(super) fn hue_dist(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(1.0);
    d.min(1.0 - d)
}

pub(super) fn luma(c: C3) -> f32 {
    0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
}

const DEFAULT_PALETTE: [[u8; 3]; 5] = [
    [38, 70, 140],
    [42, 157, 143],
    [233, 196, 106],
    [244, 132, 97],
    [200, 80, 160],
];

/// The channel palette, hue-shifted per scene, with helpers to pick roles.
pub(super) struct Pal {
    pub(super) cols: Vec<C3>,
    /// Indices into `cols`, most chromatic first.
    order: Vec<usize>,
}

impl Pal {
    pub(super) fn new(raw: &[[u8; 3]], shift: f32) -> Pal {
        let src: &[[u8; 3]] = if raw.is_empty() {
            &DEFAULT_PALETTE
        } else {
            raw
        };
        let mut cols: Vec<C3> = src
            .iter()
            .take(8)
            .map(|&c| {
                let (h, s, v) = to_hsv(cf(c));
                hsv(h + shift, s, v)
            })
            .collect();
        while cols.len() < 3 {
            let (h, s, v) = to_hsv(cols[cols.len() - 1]);
            cols.push(hsv(h + 0.31, s.max(0.45), 1.0 - 0.5 * v));
        }
        let chroma = |c: &C3| c[0].max(c[1]).max(c[2]) - c[0].min(c[1]).min(c[2]);
        let mut order: Vec<usize> = (0..cols.len()).collect();
        order.sort_by(|&a, &b| {
            chroma(&cols[b])
                .total_cmp(&chroma(&cols[a]))
                .then(a.cmp(&b))
        });
        Pal { cols, order }
    }

    pub(super) fn accent(&self, i: usize) -> C3 {
        self.cols[self.order[i % self.order.len()]]
    }

    /// Hue of the i-th accent; gray palette entries get a stable made-up hue.
    pub(super) fn hue(&self, i: usize) -> f32 {
        let (h, s, _) = to_hsv(self.accent(i));
        if s < 0.1 {
            (0.58 + 0.37 * (i % self.order.len()) as f32).rem_euclid(1.0)
        } else {
            h
        }
    }

    /// Two accent hues at least `min_gap` apart (the second is pushed away if needed).
    pub(super) fn hue_pair(&self, i: usize, min_gap: f32) -> (f32, f32) {
        let a = self.hue(i);
        let mut b = self.hue(i + 1);
        for k in 2..self.order.len() {
            if hue_dist(a, b) >= min_gap {
                break;
            }
            b = self.hue(i + k);
        }
        if hue_dist(a, b) < min_gap {
            b = a + 0.5;
        }
        (a, b)
    }

    /// The palette hue closest to `target`, pulled `pull` of the way towards it.
    pub(super) fn hue_near(&self, target: f32, pull: f32) -> f32 {
        let mut best = target;
        let mut bd = f32::MAX;
        for (k, c) in self.cols.iter().enumerate() {
            let (h, s, _) = to_hsv(*c);
            if s < 0.15 {
                continue;
            }
            let d = hue_dist(h, target) + 0.001 * k as f32;
            if d < bd {
                bd = d;
                best = h;
            }
        }
        let mut diff = (target - best).rem_euclid(1.0);
        if diff > 0.5 {
            diff -= 1.0;
        }
        (best + diff * pull).rem_euclid(1.0)
    }

    pub(super) fn darkest(&self) -> C3 {
        *self
            .cols
            .iter()
            .min_by(|a, b| luma(**a).total_cmp(&luma(**b)))
            .unwrap_or(&BLACK)
    }

    pub(super) fn lightest(&self) -> C3 {
        *self
            .cols
            .iter()
            .max_by(|a, b| luma(**a).total_cmp(&luma(**b)))
            .unwrap_or(&WHITE)
    }
}
