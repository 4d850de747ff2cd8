//! Reflect padding (candle has none) and halo tiling around a picture-to-picture network.

use candle_core::{Tensor, D};

use crate::{PostError, Result};

/// Reflect-pads `x` (`[N, C, H, W]`) by `bottom` rows and `right` columns, like
/// `F.pad(x, (0, right, 0, bottom), 'reflect')`: the mirror excludes the edge pixel, so each
/// pad must be smaller than its dimension.
pub fn reflect_right_bottom(x: &Tensor, bottom: usize, right: usize) -> Result<Tensor> {
    let x = reflect_end(x, 2, bottom)?;
    reflect_end(&x, 3, right)
}

fn reflect_end(x: &Tensor, dim: usize, pad: usize) -> Result<Tensor> {
    if pad == 0 {
        return Ok(x.clone());
    }
    let n = x.dim(dim)?;
    if pad >= n {
        return Err(PostError::Input(format!(
            "cannot reflect-pad {pad} pixels onto a side of {n}"
        )));
    }
    let idx: Vec<u32> = (0..pad).map(|j| (n - 2 - j) as u32).collect();
    let idx = Tensor::from_vec(idx, pad, x.device())?;
    Ok(Tensor::cat(&[x, &x.index_select(&idx, dim)?], dim)?)
}

/// `f` run over `x` in tiles of `tile` pixels (0 = whole) that each also see `halo` pixels of
/// their neighbours (clipped at the picture's edges, where the network sees its own padding
/// exactly as on the whole picture), the outputs (`scale` times larger) cropped to the tile and
/// joined. With a halo at least the network's reach the result equals one pass over the
/// whole. Tile, halo and the picture's sides are kept multiples of `multiple`.
pub fn tiled(
    x: &Tensor,
    tile: usize,
    halo: usize,
    multiple: usize,
    scale: usize,
    progress: &mut dyn FnMut(usize, usize) -> bool,
    f: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let up = |v: usize| v.div_ceil(multiple) * multiple;
    if tile == 0 || (h <= tile && w <= tile) {
        let out = f(x)?;
        if !progress(1, 1) {
            return Err(PostError::Cancelled);
        }
        return Ok(out);
    }
    let (tile, halo) = (up(tile), up(halo));
    let (ny, nx) = (h.div_ceil(tile), w.div_ceil(tile));
    let total = ny * nx;
    let mut rows = Vec::with_capacity(ny);
    for ty in 0..ny {
        let (y0, y1) = (ty * tile, ((ty + 1) * tile).min(h));
        let (ys, ye) = (y0.saturating_sub(halo), (y1 + halo).min(h));
        let mut row = Vec::with_capacity(nx);
        for tx in 0..nx {
            let (x0, x1) = (tx * tile, ((tx + 1) * tile).min(w));
            let (xs, xe) = (x0.saturating_sub(halo), (x1 + halo).min(w));
            let input = x.narrow(2, ys, ye - ys)?.narrow(3, xs, xe - xs)?;
            let out = f(&input)?;
            let out = out
                .narrow(2, (y0 - ys) * scale, (y1 - y0) * scale)?
                .narrow(D::Minus1, (x0 - xs) * scale, (x1 - x0) * scale)?;
            row.push(out);
            if !progress(ty * nx + tx + 1, total) {
                return Err(PostError::Cancelled);
            }
        }
        rows.push(Tensor::cat(&row, 3)?);
    }
    Ok(Tensor::cat(&rows, 2)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn reflect_mirrors_without_the_edge() {
        let x = Tensor::arange(0f32, 12., &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 3, 4))
            .unwrap();
        let p = reflect_right_bottom(&x, 2, 2).unwrap();
        assert_eq!(p.dims(), &[1, 1, 5, 6]);
        let rows = p
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(rows[0], vec![0., 1., 2., 3., 2., 1.]);
        assert_eq!(rows[3], rows[1]);
        assert_eq!(rows[4], rows[0]);
        assert!(reflect_right_bottom(&x, 3, 0).is_err());
    }

    /// A 3×3 box blur twice (reach 2): tiles with halo 2 equal the whole, halo 0 does not.
    #[test]
    fn tiles_with_the_reach_as_halo_equal_one_pass() {
        let dev = Device::Cpu;
        let x = Tensor::rand(0f32, 1., (1, 1, 23, 37), &dev).unwrap();
        let k = (Tensor::ones((1, 1, 3, 3), candle_core::DType::F32, &dev).unwrap() / 9.).unwrap();
        let f = |t: &Tensor| -> Result<Tensor> {
            let a = t.conv2d(&k, 1, 1, 1, 1)?;
            let b = a.conv2d(&k, 1, 1, 1, 1)?;
            Ok(b.upsample_nearest2d(b.dim(2)? * 2, b.dim(3)? * 2)?)
        };
        let whole = f(&x).unwrap();
        let mut calls = 0;
        let tiled2 = tiled(
            &x,
            8,
            2,
            1,
            2,
            &mut |_, _| {
                calls += 1;
                true
            },
            &f,
        )
        .unwrap();
        assert_eq!(calls, 3 * 5);
        let d = (tiled2 - &whole)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "{d}");
        let tiled0 = tiled(&x, 8, 0, 1, 2, &mut |_, _| true, &f).unwrap();
        let d = (tiled0 - &whole)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d > 1e-3, "{d}");
        let stopped = tiled(&x, 8, 2, 1, 2, &mut |done, _| done < 2, &f);
        assert!(matches!(stopped, Err(PostError::Cancelled)));
    }
}
