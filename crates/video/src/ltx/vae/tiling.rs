//! How a streamed decode cuts the latent frame into tiles and puts the decoded tiles back.
//!
//! Each tile owns a core of latent pixels; it decodes a window that reaches `halo` latent pixels
//! past the core on the sides it shares with other tiles (never past the frame), and keeps its
//! core plus `blend` pixels on those sides. Where two kept regions overlap (`2·blend` latent
//! pixels wide) the tiles are cross-faded linearly; the weights of the tiles covering a pixel sum
//! to one. With `blend = 0` the kept regions tile the frame and are simply put side by side.
//!
//! Exactness: a decoded pixel depends on the latents within the decoder's receptive radius
//! ([`super::LtxVae::receptive_radius`]); beyond the window a tile sees zeros where the frame
//! has latents. So a tile's kept pixels are exactly the single-pass decode's when
//! `halo ≥ radius + blend`, and blending is only needed (as in diffusers' `tiled_decode`) when a
//! smaller halo is chosen to save work.

use candle_core::{Result, Tensor};

/// How [`super::LtxVae::decode_streamed`] splits the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileConfig {
    /// Latent frames decoded per step (≥ 1). Peak memory grows with it, not with the clip.
    pub frames: usize,
    /// Latent height and width of a tile's core; `None` decodes whole frames.
    pub tile: Option<(usize, usize)>,
    /// Latent pixels of context a tile decodes past its core on interior sides.
    pub halo: usize,
    /// Latent pixels each tile keeps past its core on interior sides, cross-faded with its
    /// neighbour (at most `halo`).
    pub blend: usize,
}

impl TileConfig {
    /// Whole frames, `frames` latent frames at a time.
    pub fn frames(frames: usize) -> Self {
        Self {
            frames,
            tile: None,
            halo: 0,
            blend: 0,
        }
    }

    /// Tiles of `tile` latent pixels with the given context and cross-fade.
    pub fn tiled(frames: usize, tile: (usize, usize), halo: usize, blend: usize) -> Self {
        Self {
            frames,
            tile: Some(tile),
            halo,
            blend,
        }
    }
}

impl Default for TileConfig {
    /// Two latent frames (16 video frames) at a time, whole frames.
    fn default() -> Self {
        Self::frames(2)
    }
}

/// One tile along one axis, in latent pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AxisTile {
    /// The decoded window: start, length.
    pub(crate) window: (usize, usize),
    /// The kept region: start, length (inside the window).
    pub(crate) keep: (usize, usize),
    /// Cross-fade half-widths at the start and the end of the kept region.
    pub(crate) fade: (usize, usize),
}

/// Tiles along an axis of `len` latent pixels: cores of about `core` pixels (evenly spread).
pub(crate) fn plan_axis(len: usize, core: usize, halo: usize, blend: usize) -> Vec<AxisTile> {
    let core = core.max(1);
    let n = len.div_ceil(core).max(1);
    let bounds: Vec<usize> = (0..=n).map(|k| (k * len + n / 2) / n).collect();
    // The cross-fade at the boundary between core k−1 and core k.
    let fade_at = |k: usize| -> usize {
        if k == 0 || k == n {
            return 0;
        }
        let left = bounds[k] - bounds[k - 1];
        let right = bounds[k + 1] - bounds[k];
        blend.min(halo).min(left / 2).min(right / 2)
    };
    (0..n)
        .map(|k| {
            let (a, b) = (bounds[k], bounds[k + 1]);
            let ws = if k == 0 { 0 } else { a.saturating_sub(halo) };
            let we = if k + 1 == n { len } else { (b + halo).min(len) };
            let (f0, f1) = (fade_at(k), fade_at(k + 1));
            AxisTile {
                window: (ws, we - ws),
                keep: (a - f0, b + f1 - (a - f0)),
                fade: (f0, f1),
            }
        })
        .collect()
}

/// The weights of a kept region `scale` output pixels per latent pixel long: 1, ramping up
/// over the start's cross-fade and down over the end's.
fn ramp(t: &AxisTile, scale: usize) -> Vec<f32> {
    let len = t.keep.1 * scale;
    let mut w = vec![1f32; len];
    let up = 2 * t.fade.0 * scale;
    for (j, v) in w.iter_mut().take(up).enumerate() {
        *v = (j as f32 + 0.5) / up as f32;
    }
    let down = 2 * t.fade.1 * scale;
    for j in 0..down {
        w[len - down + j] = 1.0 - (j as f32 + 0.5) / down as f32;
    }
    w
}

/// Puts decoded tiles (row-major over `rows × cols`, each `[b, c, n, window_h·s, window_w·s]`)
/// back into frames `[b, c, n, H·s, W·s]`.
pub(crate) fn assemble(
    tiles: Vec<Tensor>,
    rows: &[AxisTile],
    cols: &[AxisTile],
    scale: usize,
) -> Result<Tensor> {
    if tiles.len() != rows.len() * cols.len() {
        candle_core::bail!(
            "tiling: {} tiles for a {}×{} grid",
            tiles.len(),
            rows.len(),
            cols.len()
        );
    }
    if tiles.len() == 1 {
        return tiles
            .into_iter()
            .next()
            .ok_or_else(|| candle_core::Error::Msg("tiling: no tile".into()));
    }
    let crop = |t: &Tensor, r: &AxisTile, c: &AxisTile| -> Result<Tensor> {
        t.narrow(3, (r.keep.0 - r.window.0) * scale, r.keep.1 * scale)?
            .narrow(4, (c.keep.0 - c.window.0) * scale, c.keep.1 * scale)
    };
    let fades = rows.iter().chain(cols).any(|t| t.fade != (0, 0));
    if !fades {
        let mut out_rows = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            let parts = cols
                .iter()
                .enumerate()
                .map(|(j, c)| crop(&tiles[i * cols.len() + j], r, c))
                .collect::<Result<Vec<_>>>()?;
            out_rows.push(Tensor::cat(&parts, 4)?);
        }
        return Tensor::cat(&out_rows, 3);
    }
    let full_h: usize = rows.last().map(|r| r.keep.0 + r.keep.1).unwrap_or(0) * scale;
    let full_w: usize = cols.last().map(|c| c.keep.0 + c.keep.1).unwrap_or(0) * scale;
    let mut acc: Option<Tensor> = None;
    for (i, r) in rows.iter().enumerate() {
        for (j, c) in cols.iter().enumerate() {
            let t = crop(&tiles[i * cols.len() + j], r, c)?;
            let dev = t.device();
            let wy = Tensor::from_vec(ramp(r, scale), (1, 1, 1, r.keep.1 * scale, 1), dev)?;
            let wx = Tensor::from_vec(ramp(c, scale), (1, 1, 1, 1, c.keep.1 * scale), dev)?;
            let wgt = wy.broadcast_mul(&wx)?.to_dtype(t.dtype())?;
            let t = t.broadcast_mul(&wgt)?;
            let (y0, x0) = (r.keep.0 * scale, c.keep.0 * scale);
            let t = t
                .pad_with_zeros(3, y0, full_h - y0 - r.keep.1 * scale)?
                .pad_with_zeros(4, x0, full_w - x0 - c.keep.1 * scale)?;
            acc = Some(match acc {
                Some(a) => (a + t)?,
                None => t,
            });
        }
    }
    acc.ok_or_else(|| candle_core::Error::Msg("tiling: no tile".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_cover_the_axis_and_windows_reach_the_halo() {
        let t = plan_axis(10, 4, 2, 1);
        assert_eq!(t.len(), 3);
        let mut at = 0;
        for (k, a) in t.iter().enumerate() {
            let core_start = a.keep.0 + a.fade.0;
            assert_eq!(core_start, at);
            at = a.keep.0 + a.keep.1 - a.fade.1;
            assert!(a.window.0 <= a.keep.0 && a.keep.0 + a.keep.1 <= a.window.0 + a.window.1);
            if k > 0 {
                assert_eq!(a.window.0 + 2, core_start);
            }
        }
        assert_eq!(at, 10);
        assert_eq!(
            plan_axis(5, 8, 3, 3),
            vec![AxisTile {
                window: (0, 5),
                keep: (0, 5),
                fade: (0, 0)
            }]
        );
    }

    #[test]
    fn cross_fade_weights_sum_to_one() {
        let t = plan_axis(12, 4, 3, 2);
        let s = 4;
        let mut sum = vec![0f32; 12 * s];
        for a in &t {
            for (j, w) in ramp(a, s).into_iter().enumerate() {
                sum[a.keep.0 * s + j] += w;
            }
        }
        assert!(sum.iter().all(|&v| (v - 1.0).abs() < 1e-6), "{sum:?}");
    }
}
