//! diffusers' own spatial tiling (`enable_tiling`: `tiled_encode`, `tiled_decode`), reproduced
//! for callers that want diffusers' tiled output itself.
//!
//! Unlike [`super::LtxVae::decode_streamed`], it is an approximation: tiles at a fixed stride
//! are coded with no context past their edges and cross-faded over the overlap, so seams are
//! softened, not removed (on the tiny fixture VAE the tiled decode differs from the plain one by
//! up to 0.7). It also runs every tile over the whole clip, and a noise-injecting decoder draws
//! fresh noise for every tile, as diffusers does. Prefer the exact streamed decode; this exists
//! so a reference made with `enable_tiling` can be matched.
//!
//! diffusers blends in place: a tile is first cross-faded with the (already blended) tile
//! above it, then with the (already blended) tile to its left, then cropped to the stride. The
//! order matters and is kept.

use candle_core::{Result, Tensor};
use reelsmith_kit::noise::Noise;

use super::LtxVae;

/// diffusers' `enable_tiling` parameters, in video pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiffusersTiling {
    /// Tiles are used when the frame is taller or wider than this; it is also the tile size.
    pub tile_sample_min_height: usize,
    pub tile_sample_min_width: usize,
    /// The distance between tiles; the overlap (`min − stride`) is cross-faded.
    pub tile_sample_stride_height: usize,
    pub tile_sample_stride_width: usize,
}

impl Default for DiffusersTiling {
    /// diffusers' defaults: 512-pixel tiles every 448 pixels.
    fn default() -> Self {
        Self {
            tile_sample_min_height: 512,
            tile_sample_min_width: 512,
            tile_sample_stride_height: 448,
            tile_sample_stride_width: 448,
        }
    }
}

/// `b`'s first `extent` rows (dim 3) or columns (dim 4) faded in from `a`'s last ones: weight
/// `1 − y/extent` for `a`, `y/extent` for `b` (diffusers' `blend_v` / `blend_h`).
fn blend(a: &Tensor, b: &Tensor, extent: usize, dim: usize) -> Result<Tensor> {
    let (la, lb) = (a.dim(dim)?, b.dim(dim)?);
    let e = extent.min(la).min(lb);
    if e == 0 {
        return Ok(b.clone());
    }
    let mut shape = vec![1usize; 5];
    shape[dim] = e;
    let wb: Vec<f32> = (0..e).map(|y| (y as f64 / e as f64) as f32).collect();
    let wa: Vec<f32> = (0..e).map(|y| (1.0 - y as f64 / e as f64) as f32).collect();
    let wa = Tensor::from_vec(wa, shape.clone(), b.device())?.to_dtype(b.dtype())?;
    let wb = Tensor::from_vec(wb, shape, b.device())?.to_dtype(b.dtype())?;
    let head = (a.narrow(dim, la - e, e)?.broadcast_mul(&wa)?
        + b.narrow(dim, 0, e)?.broadcast_mul(&wb)?)?;
    if e == lb {
        Ok(head)
    } else {
        Tensor::cat(&[&head, &b.narrow(dim, e, lb - e)?], dim)
    }
}

/// Blends a grid of coded tiles and crops each to the stride, as diffusers does; `extent` and
/// `stride` in the tiles' pixels, `(h, w)` the output size.
fn merge(
    mut rows: Vec<Vec<Tensor>>,
    extent: (usize, usize),
    stride: (usize, usize),
    (h, w): (usize, usize),
) -> Result<Tensor> {
    let mut out_rows = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        for j in 0..rows[i].len() {
            let mut tile = rows[i][j].clone();
            if i > 0 {
                tile = blend(&rows[i - 1][j], &tile, extent.0, 3)?;
            }
            if j > 0 {
                tile = blend(&rows[i][j - 1], &tile, extent.1, 4)?;
            }
            rows[i][j] = tile;
        }
        let parts = rows[i]
            .iter()
            .map(|t| {
                let th = t.dim(3)?.min(stride.0);
                let tw = t.dim(4)?.min(stride.1);
                t.narrow(3, 0, th)?.narrow(4, 0, tw)
            })
            .collect::<Result<Vec<_>>>()?;
        out_rows.push(Tensor::cat(&parts, 4)?);
    }
    let all = Tensor::cat(&out_rows, 3)?;
    let (hh, ww) = (all.dim(3)?, all.dim(4)?);
    all.narrow(3, 0, h.min(hh))?.narrow(4, 0, w.min(ww))
}

/// The noise source again, for one more call.
fn reborrow<'b>(n: &'b mut Option<&mut dyn Noise>) -> Option<&'b mut dyn Noise> {
    match n {
        Some(n) => Some(&mut **n),
        None => None,
    }
}

/// Tile origins `0, stride, 2·stride, … < len` (diffusers' `range(0, len, stride)`).
fn origins(len: usize, stride: usize) -> Vec<usize> {
    (0..len).step_by(stride.max(1)).collect()
}

impl LtxVae {
    /// The encoder's raw moments with diffusers' spatial tiling (`enable_tiling` +
    /// `encode`): the plain encode when the frame is no larger than a tile.
    pub fn encode_raw_diffusers_tiled(
        &self,
        video: &Tensor,
        tiling: &DiffusersTiling,
    ) -> Result<Tensor> {
        let (_, _, _, h, w) = video.dims5()?;
        let t = tiling;
        if h <= t.tile_sample_min_height && w <= t.tile_sample_min_width {
            return self.encode_raw(video);
        }
        let r = self.config.spatial_compression().max(1);
        let (min_h, min_w) = (t.tile_sample_min_height / r, t.tile_sample_min_width / r);
        let (st_h, st_w) = (
            t.tile_sample_stride_height / r,
            t.tile_sample_stride_width / r,
        );
        let mut rows = Vec::new();
        for i in origins(h, t.tile_sample_stride_height) {
            let mut row = Vec::new();
            for j in origins(w, t.tile_sample_stride_width) {
                let th = t.tile_sample_min_height.min(h - i);
                let tw = t.tile_sample_min_width.min(w - j);
                row.push(self.encode_raw(&video.narrow(3, i, th)?.narrow(4, j, tw)?)?);
            }
            rows.push(row);
        }
        merge(
            rows,
            (min_h.saturating_sub(st_h), min_w.saturating_sub(st_w)),
            (st_h, st_w),
            (h / r, w / r),
        )
    }

    /// Decodes with diffusers' spatial tiling (`enable_tiling` + `decode`): the plain decode
    /// when the latents are no larger than a tile. Each tile draws its own injection noise, in
    /// diffusers' order (tiles row by row).
    pub fn decode_diffusers_tiled(
        &self,
        z: &Tensor,
        temb: Option<&Tensor>,
        mut noise: Option<&mut dyn Noise>,
        tiling: &DiffusersTiling,
    ) -> Result<Tensor> {
        let (_, _, _, h, w) = z.dims5()?;
        let t = tiling;
        let r = self.config.spatial_compression().max(1);
        let (min_h, min_w) = (t.tile_sample_min_height / r, t.tile_sample_min_width / r);
        if h <= min_h && w <= min_w {
            return self.decode(z, temb, noise);
        }
        let (st_h, st_w) = (
            t.tile_sample_stride_height / r,
            t.tile_sample_stride_width / r,
        );
        if st_h == 0 || st_w == 0 || min_h == 0 || min_w == 0 {
            candle_core::bail!("LTX VAE: tiles {tiling:?} smaller than a latent pixel");
        }
        let mut rows = Vec::new();
        for i in origins(h, st_h) {
            let mut row = Vec::new();
            for j in origins(w, st_w) {
                let tile = z
                    .narrow(3, i, min_h.min(h - i))?
                    .narrow(4, j, min_w.min(w - j))?;
                row.push(self.decode(&tile, temb, reborrow(&mut noise))?);
            }
            rows.push(row);
        }
        merge(
            rows,
            (
                t.tile_sample_min_height
                    .saturating_sub(t.tile_sample_stride_height),
                t.tile_sample_min_width
                    .saturating_sub(t.tile_sample_stride_width),
            ),
            (t.tile_sample_stride_height, t.tile_sample_stride_width),
            (h * r, w * r),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn blend_fades_from_a_into_b() {
        let a = Tensor::ones((1, 1, 1, 4, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros((1, 1, 1, 3, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = blend(&a, &b, 2, 3).unwrap().flatten_all().unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), vec![1.0, 0.5, 0.0]);
        assert_eq!(origins(5, 2), vec![0, 2, 4]);
    }
}
