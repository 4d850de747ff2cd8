//! diffusers' spatial tiling of the Wan VAE (`enable_tiling`, `tiled_encode`, `tiled_decode`):
//! overlapping tiles coded independently (each with its own frame caches), then each tile's
//! top and left edges cross-faded linearly into the (already blended) tile above and to its left,
//! and each tile cropped to the stride.
//!
//! Tiles are cut in latent space for the decode (`tile_sample_* / 8` latent pixels, blending
//! `min − stride` pixels) and in pixel space for the encode (blending `(min − stride)/8` latent
//! pixels). Blending only mixes pixels of the same frame, so a frame-by-frame stream over all the
//! tiles gives the same frames as diffusers' tile-by-tile loop.

use candle_core::{Result, Tensor};

/// diffusers `AutoencoderKLWan.enable_tiling`'s settings, in pixels (its defaults: 256-pixel
/// tiles every 192 pixels, 64 pixels of cross-fade).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WanTiling {
    pub tile_sample_min_height: usize,
    pub tile_sample_min_width: usize,
    pub tile_sample_stride_height: usize,
    pub tile_sample_stride_width: usize,
}

impl Default for WanTiling {
    fn default() -> Self {
        Self {
            tile_sample_min_height: 256,
            tile_sample_min_width: 256,
            tile_sample_stride_height: 192,
            tile_sample_stride_width: 192,
        }
    }
}

/// Where the tiles of one frame lie and how they are put back together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Grid {
    /// Row starts and the tile height in input pixels (tiles end at the input's edge).
    pub rows: Vec<usize>,
    pub cols: Vec<usize>,
    pub tile_h: usize,
    pub tile_w: usize,
    /// Output pixels cross-faded at each tile's top/left edge.
    pub blend_h: usize,
    pub blend_w: usize,
    /// Output pixels each tile keeps.
    pub keep_h: usize,
    pub keep_w: usize,
    /// The output's size.
    pub out_h: usize,
    pub out_w: usize,
}

impl Grid {
    /// One tile: the whole input.
    pub(super) fn single(h: usize, w: usize, out_h: usize, out_w: usize) -> Self {
        Self {
            rows: vec![0],
            cols: vec![0],
            tile_h: h,
            tile_w: w,
            blend_h: 0,
            blend_w: 0,
            keep_h: out_h,
            keep_w: out_w,
            out_h,
            out_w,
        }
    }

    /// diffusers' `tiled_decode` grid over latents `lh × lw` (ratio: pixels per latent pixel),
    /// or one tile when the latents fit in one (diffusers' `_decode` condition).
    pub(super) fn decode(t: &WanTiling, lh: usize, lw: usize, ratio: usize) -> Result<Self> {
        check(t, ratio)?;
        let (min_h, min_w) = (
            t.tile_sample_min_height / ratio,
            t.tile_sample_min_width / ratio,
        );
        if lh <= min_h && lw <= min_w {
            return Ok(Self::single(lh, lw, lh * ratio, lw * ratio));
        }
        let (sh, sw) = (
            t.tile_sample_stride_height / ratio,
            t.tile_sample_stride_width / ratio,
        );
        Ok(Self {
            rows: (0..lh).step_by(sh).collect(),
            cols: (0..lw).step_by(sw).collect(),
            tile_h: min_h,
            tile_w: min_w,
            blend_h: t.tile_sample_min_height - t.tile_sample_stride_height,
            blend_w: t.tile_sample_min_width - t.tile_sample_stride_width,
            keep_h: t.tile_sample_stride_height,
            keep_w: t.tile_sample_stride_width,
            out_h: lh * ratio,
            out_w: lw * ratio,
        })
    }

    /// diffusers' `tiled_encode` grid over video frames `h × w`, or one tile when the frames fit
    /// in one (diffusers' `_encode` condition). `out` is the encoder's output size.
    pub(super) fn encode(t: &WanTiling, h: usize, w: usize, ratio: usize) -> Result<Self> {
        check(t, ratio)?;
        if h <= t.tile_sample_min_height && w <= t.tile_sample_min_width {
            return Ok(Self::single(h, w, h / ratio, w / ratio));
        }
        let (min_h, min_w) = (
            t.tile_sample_min_height / ratio,
            t.tile_sample_min_width / ratio,
        );
        let (sh, sw) = (
            t.tile_sample_stride_height / ratio,
            t.tile_sample_stride_width / ratio,
        );
        Ok(Self {
            rows: (0..h).step_by(t.tile_sample_stride_height).collect(),
            cols: (0..w).step_by(t.tile_sample_stride_width).collect(),
            tile_h: t.tile_sample_min_height,
            tile_w: t.tile_sample_min_width,
            blend_h: min_h - sh,
            blend_w: min_w - sw,
            keep_h: sh,
            keep_w: sw,
            out_h: h / ratio,
            out_w: w / ratio,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len() * self.cols.len()
    }

    pub(super) fn is_single(&self) -> bool {
        self.len() == 1
    }

    /// Tile `k` (row-major) of `x` `[b, c, t, h, w]`.
    pub(super) fn cut(&self, x: &Tensor, k: usize) -> Result<Tensor> {
        let (_, _, _, h, w) = x.dims5()?;
        let (i, j) = (
            self.rows[k / self.cols.len()],
            self.cols[k % self.cols.len()],
        );
        if self.is_single() {
            return Ok(x.clone());
        }
        x.narrow(3, i, self.tile_h.min(h - i))?
            .narrow(4, j, self.tile_w.min(w - j))
    }

    /// The coded tiles (row-major) blended and cropped into one output.
    pub(super) fn assemble(&self, tiles: Vec<Tensor>) -> Result<Tensor> {
        if tiles.len() != self.len() {
            candle_core::bail!("{} tiles for a grid of {}", tiles.len(), self.len());
        }
        if self.is_single() {
            return Ok(tiles.into_iter().next().unwrap_or_else(|| unreachable!()));
        }
        let n = self.cols.len();
        let mut done: Vec<Tensor> = Vec::with_capacity(tiles.len());
        let mut rows_out = Vec::with_capacity(self.rows.len());
        let mut row_out = Vec::with_capacity(n);
        for (k, tile) in tiles.into_iter().enumerate() {
            let (i, j) = (k / n, k % n);
            let mut t = tile;
            if i > 0 {
                t = blend(&done[k - n], &t, self.blend_h, 3)?;
            }
            if j > 0 {
                t = blend(&done[k - 1], &t, self.blend_w, 4)?;
            }
            let (_, _, _, th, tw) = t.dims5()?;
            row_out.push(
                t.narrow(3, 0, self.keep_h.min(th))?
                    .narrow(4, 0, self.keep_w.min(tw))?,
            );
            done.push(t);
            if j + 1 == n {
                rows_out.push(Tensor::cat(&row_out, 4)?);
                row_out.clear();
            }
        }
        let out = Tensor::cat(&rows_out, 3)?;
        let (_, _, _, h, w) = out.dims5()?;
        out.narrow(3, 0, self.out_h.min(h))?
            .narrow(4, 0, self.out_w.min(w))?
            .contiguous()
    }
}

fn check(t: &WanTiling, ratio: usize) -> Result<()> {
    let min = [t.tile_sample_min_height, t.tile_sample_min_width];
    let stride = [t.tile_sample_stride_height, t.tile_sample_stride_width];
    if min.iter().chain(&stride).any(|v| *v < ratio) || stride[0] > min[0] || stride[1] > min[1] {
        candle_core::bail!(
            "Wan VAE tiling {t:?}: tiles and strides must be at least {ratio} pixels, strides at \
             most the tile size"
        );
    }
    Ok(())
}

/// diffusers' `blend_v` (`dim` 3) / `blend_h` (`dim` 4): the first `extent` rows of `b` fade
/// from `a`'s last rows (weight `1 − y/extent`) to `b`'s own (`y/extent`).
fn blend(a: &Tensor, b: &Tensor, extent: usize, dim: usize) -> Result<Tensor> {
    let (la, lb) = (a.dim(dim)?, b.dim(dim)?);
    let e = extent.min(la).min(lb);
    if e == 0 {
        return Ok(b.clone());
    }
    let w: Vec<f64> = (0..e).map(|y| y as f64 / e as f64).collect();
    let mut shape = [1usize; 5];
    shape[dim] = e;
    let wb = Tensor::from_vec(w.clone(), e, b.device())?
        .to_dtype(b.dtype())?
        .reshape(shape.as_slice())?;
    let wa = Tensor::from_vec(w.iter().map(|v| 1.0 - v).collect::<Vec<_>>(), e, b.device())?
        .to_dtype(b.dtype())?
        .reshape(shape.as_slice())?;
    let head = (a.narrow(dim, la - e, e)?.broadcast_mul(&wa)?
        + b.narrow(dim, 0, e)?.broadcast_mul(&wb)?)?;
    if e == lb {
        return Ok(head);
    }
    Tensor::cat(&[&head, &b.narrow(dim, e, lb - e)?], dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn grids_follow_diffusers() {
        let t = WanTiling {
            tile_sample_min_height: 32,
            tile_sample_min_width: 32,
            tile_sample_stride_height: 24,
            tile_sample_stride_width: 24,
        };
        let g = Grid::decode(&t, 6, 5, 8).unwrap();
        assert_eq!((g.rows.clone(), g.cols.clone()), (vec![0, 3], vec![0, 3]));
        assert_eq!((g.tile_h, g.blend_h, g.keep_h, g.out_h), (4, 8, 24, 48));
        let g = Grid::encode(&t, 48, 40, 8).unwrap();
        assert_eq!((g.rows.clone(), g.cols.clone()), (vec![0, 24], vec![0, 24]));
        assert_eq!((g.tile_h, g.blend_h, g.keep_h, g.out_w), (32, 1, 3, 5));
        assert!(Grid::decode(&t, 4, 4, 8).unwrap().is_single());
        assert!(Grid::encode(&t, 32, 32, 8).unwrap().is_single());
        let bad = WanTiling {
            tile_sample_stride_height: 40,
            ..t
        };
        assert!(Grid::decode(&bad, 6, 5, 8).is_err());
    }

    #[test]
    fn blending_fades_linearly() {
        let dev = Device::Cpu;
        let a = Tensor::ones((1, 1, 1, 4, 1), DType::F32, &dev).unwrap();
        let b = Tensor::zeros((1, 1, 1, 3, 1), DType::F32, &dev).unwrap();
        let got = blend(&a, &b, 2, 3).unwrap();
        let v = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, [1.0, 0.5, 0.0]);
    }
}
