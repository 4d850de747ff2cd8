//! The tensor operations IFNet needs that candle lacks or does differently: PyTorch's
//! `grid_sample` as RIFE calls it (the backward [`warp`]), `F.interpolate(mode="bilinear")` with a
//! scale factor ([`resize_bilinear`]), PReLU and LeakyReLU.
//!
//! Each follows the float arithmetic of PyTorch's CPU kernels step by step (the same operands in
//! the same order, in f32), because a bilinear sample is a steep function of its coordinate: one
//! ulp of a coordinate near x = 60 (3.8e-6) moves a sample of a random image by as much, so a
//! port that reorders the sums cannot promise 1e-5.

use candle_core::{DType, Device, Tensor, D};

use crate::{PostError, Result};

/// `F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)` on `[N, C, H, W]`,
/// as IFNet calls it (the factor given, not recomputed from the sizes).
///
/// The output is `floor(H·factor) × floor(W·factor)`; output pixel `i` samples input coordinate
/// `max((i + 0.5)/factor − 0.5, 0)` (1/factor rounded to f32 once, as PyTorch's `float` opmath
/// does), so non-integer factors (1/3, 2.5) resize exactly as PyTorch does, not as a
/// resize-to-size would. Width first, then height: the order of PyTorch's separable CPU kernel,
/// which makes the sums the same. A factor of 1 returns `x` (PyTorch samples the identity).
pub fn resize_bilinear(x: &Tensor, factor: f64) -> Result<Tensor> {
    if !(factor.is_finite() && factor > 0.0) {
        return Err(PostError::Input(format!(
            "resize factor {factor} is not a positive number"
        )));
    }
    if factor == 1.0 {
        return Ok(x.clone());
    }
    let (_, _, h, w) = x.dims4()?;
    let (ho, wo) = (out_size(h, factor), out_size(w, factor));
    if ho == 0 || wo == 0 {
        return Err(PostError::Input(format!(
            "resizing {h}×{w} by {factor} leaves nothing"
        )));
    }
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return resize_cpu(x, (ho, wo), factor);
    }
    let x = resize_dim(x, 3, w, wo, factor)?;
    resize_dim(&x, 2, h, ho, factor)
}

/// [`resize_bilinear`] on the CPU in f32: the same taps and sums as the tensor path (each row
/// along the width, then pairs of those rows along the height), one thread per plane band.
fn resize_cpu(x: &Tensor, (ho, wo): (usize, usize), factor: f64) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let src = x.flatten_all()?.to_vec1::<f32>()?;
    let (xi0, xi1, xl0, xl1) = linear_taps(w, wo, factor);
    let (yi0, yi1, yl0, yl1) = linear_taps(h, ho, factor);
    let planes = n * c;
    let mut out = vec![0f32; planes * ho * wo];
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let per = planes.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (k, dst) in out.chunks_mut(per * ho * wo).enumerate() {
            let src = &src[k * per * h * w..];
            let (xi0, xi1, xl0, xl1) = (&xi0, &xi1, &xl0, &xl1);
            let (yi0, yi1, yl0, yl1) = (&yi0, &yi1, &yl0, &yl1);
            s.spawn(move || {
                let mut rows = vec![0f32; h * wo];
                for (p, plane) in dst.chunks_mut(ho * wo).enumerate() {
                    let img = &src[p * h * w..(p + 1) * h * w];
                    for (y, row) in rows.chunks_mut(wo).enumerate() {
                        let line = &img[y * w..(y + 1) * w];
                        for (j, v) in row.iter_mut().enumerate() {
                            *v = line[xi0[j] as usize] * xl0[j] + line[xi1[j] as usize] * xl1[j];
                        }
                    }
                    for (i, orow) in plane.chunks_mut(wo).enumerate() {
                        let a = &rows[yi0[i] as usize * wo..][..wo];
                        let b = &rows[yi1[i] as usize * wo..][..wo];
                        for (j, v) in orow.iter_mut().enumerate() {
                            *v = a[j] * yl0[i] + b[j] * yl1[i];
                        }
                    }
                }
            });
        }
    });
    Ok(Tensor::from_vec(out, (n, c, ho, wo), &Device::Cpu)?)
}

/// PyTorch's output size for a scale factor: `floor(size · factor)` in double precision.
fn out_size(size: usize, factor: f64) -> usize {
    (size as f64 * factor).floor() as usize
}

/// Linear interpolation along one axis (`dim` 2 or 3) from `n_in` to `n_out` samples.
fn resize_dim(x: &Tensor, dim: usize, n_in: usize, n_out: usize, factor: f64) -> Result<Tensor> {
    let (i0, i1, l0, l1) = linear_taps(n_in, n_out, factor);
    let dev = x.device();
    let mut shape = [1usize; 4];
    shape[dim] = n_out;
    let weight = |l: Vec<f32>| -> Result<Tensor> {
        Ok(Tensor::from_vec(l, &shape[..], dev)?.to_dtype(x.dtype())?)
    };
    let a = x.index_select(&Tensor::from_vec(i0, n_out, dev)?, dim)?;
    let b = x.index_select(&Tensor::from_vec(i1, n_out, dev)?, dim)?;
    Ok((a.broadcast_mul(&weight(l0)?)? + b.broadcast_mul(&weight(l1)?)?)?)
}

/// The two source indices and weights of each output sample, as PyTorch's
/// `compute_indices_weights_linear` makes them (in f32, the opmath of a float tensor).
fn linear_taps(n_in: usize, n_out: usize, factor: f64) -> (Vec<u32>, Vec<u32>, Vec<f32>, Vec<f32>) {
    let scale = (1.0 / factor) as f32;
    let mut out = (
        Vec::with_capacity(n_out),
        Vec::with_capacity(n_out),
        Vec::with_capacity(n_out),
        Vec::with_capacity(n_out),
    );
    for i in 0..n_out {
        let src = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n_in - 1);
        let l1 = (src - i0 as f32).clamp(0.0, 1.0);
        let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
        out.0.push(i0 as u32);
        out.1.push(i1 as u32);
        out.2.push(1.0 - l1);
        out.3.push(l1);
    }
    out
}

/// PReLU with one slope per channel (`weight: [C]`): `x` where positive, `weight·x` elsewhere.
pub fn prelu(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let w = weight.reshape((1, (), 1, 1))?;
    let neg = x.minimum(0f64)?.broadcast_mul(&w)?;
    Ok((x.maximum(0f64)? + neg)?)
}

/// LeakyReLU with a slope below 1, as `max(x, slope·x)`: the same values as PyTorch's
/// `x > 0 ? x : slope·x` in two passes instead of candle's five.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    Ok(x.maximum(&x.affine(slope, 0.0)?)?)
}

/// RIFE's backward warp: `img` `[N, C, H, W]` sampled at each pixel displaced by `flow`
/// `[N, 2, H, W]` (x then y, in pixels) — `F.grid_sample(img, grid, mode="bilinear",
/// padding_mode="border", align_corners=True)` with RIFE's grid, `linspace(-1, 1)` plus
/// `flow / ((size − 1)/2)`. Coordinates past the edge clamp to it (border), so any flow, however
/// far out of the frame, samples the nearest edge pixel.
///
/// On the CPU a loop over contiguous f32 does it (threads over rows); elsewhere gathers on
/// flattened indices do the same arithmetic. Other dtypes are warped in f32 and cast back, as
/// vs-rife's `warp` does.
pub fn warp(img: &Tensor, flow: &Tensor) -> Result<Tensor> {
    let (n, _, h, w) = img.dims4()?;
    let (fnn, fc, fh, fw) = flow.dims4()?;
    if (fnn, fc, fh, fw) != (n, 2, h, w) {
        return Err(PostError::Input(format!(
            "warp: flow {:?} does not fit image {:?} (want [{n}, 2, {h}, {w}])",
            flow.dims(),
            img.dims()
        )));
    }
    let dtype = img.dtype();
    let img32 = img.to_dtype(DType::F32)?;
    let flow32 = flow.to_dtype(DType::F32)?;
    let out = if img.device().is_cpu() {
        warp_cpu(&img32, &flow32)?
    } else {
        warp_tensor(&img32, &flow32)?
    };
    Ok(out.to_dtype(dtype)?)
}

/// `torch.linspace(-1, 1, steps)` in f32: the first half counted up from −1, the second down
/// from 1, as PyTorch's kernel does (so the grid is symmetric to the bit).
fn linspace(steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![-1.0];
    }
    let step = 2.0f32 / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                -1.0 + step * i as f32
            } else {
                1.0 - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// The constants of one axis: RIFE's flow divisor `(size − 1)/2` (a float tensor divided by a
/// Python float, so in f32), grid_sample's unnormalising factor `(size − 1)/2` and the clamp
/// limit `size − 1`.
struct Axis {
    base: Vec<f32>,
    div: f32,
    scale: f32,
    max: f32,
    size: usize,
}

impl Axis {
    fn new(size: usize) -> Self {
        let half = ((size as f64 - 1.0) / 2.0) as f32;
        Self {
            base: linspace(size),
            div: half,
            scale: (size - 1) as f32 / 2.0,
            max: (size - 1) as f32,
            size,
        }
    }

    /// The clamped sample coordinate of grid position `i` displaced by `f` pixels:
    /// `clamp((linspace[i] + f/div + 1)·scale, 0, size − 1)`.
    #[inline]
    fn coord(&self, i: usize, f: f32) -> f32 {
        let g = self.base[i] + f / self.div;
        let x = (g + 1.0) * self.scale;
        // clamp_min then clamp_max, as PyTorch's clip_coordinates (a NaN becomes 0).
        let x = if x > 0.0 { x } else { 0.0 };
        if x < self.max {
            x
        } else {
            self.max
        }
    }
}

/// The CPU warp: for each output pixel the four taps and weights of PyTorch's vectorised
/// `grid_sampler_2d` kernel, `(nw·v_nw + ne·v_ne) + sw·v_sw + se·v_se`, taps past the edge
/// weighing nothing.
fn warp_cpu(img: &Tensor, flow: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = img.dims4()?;
    let src = img.flatten_all()?.to_vec1::<f32>()?;
    let fl = flow.flatten_all()?.to_vec1::<f32>()?;
    let (ax, ay) = (Axis::new(w), Axis::new(h));
    let mut out = vec![0f32; n * c * h * w];
    let plane = h * w;
    // One job per (batch, row band); rows are independent.
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let band = h.div_ceil(threads.max(1)).max(1);
    let mut jobs: Vec<(usize, usize, Vec<f32>)> = Vec::new();
    for b in 0..n {
        let mut y0 = 0;
        while y0 < h {
            let y1 = (y0 + band).min(h);
            jobs.push((b, y0, vec![0f32; c * (y1 - y0) * w]));
            y0 = y1;
        }
    }
    std::thread::scope(|s| {
        for (b, y0, buf) in jobs.iter_mut() {
            let (src, fl, ax, ay) = (&src, &fl, &ax, &ay);
            let (b, y0) = (*b, *y0);
            s.spawn(move || {
                let rows = buf.len() / (c * w);
                let img = &src[b * c * plane..(b + 1) * c * plane];
                let fx = &fl[(b * 2) * plane..(b * 2 + 1) * plane];
                let fy = &fl[(b * 2 + 1) * plane..(b * 2 + 2) * plane];
                for r in 0..rows {
                    let y = y0 + r;
                    for x in 0..w {
                        let p = y * w + x;
                        let sx = ax.coord(x, fx[p]);
                        let sy = ay.coord(y, fy[p]);
                        let (xw, yn) = (sx.floor(), sy.floor());
                        let (we, ns) = (sx - xw, sy - yn);
                        let (e, so) = (1.0 - we, 1.0 - ns);
                        let (nw, ne, sw, se) = (so * e, so * we, ns * e, ns * we);
                        let (x0, y0i) = (xw as usize, yn as usize);
                        let x_in = x0 + 1 < ax.size;
                        let y_in = y0i + 1 < ay.size;
                        let i00 = y0i * w + x0;
                        for ch in 0..c {
                            let pl = &img[ch * plane..(ch + 1) * plane];
                            let v_nw = pl[i00];
                            let v_ne = if x_in { pl[i00 + 1] } else { 0.0 };
                            let v_sw = if y_in { pl[i00 + w] } else { 0.0 };
                            let v_se = if x_in && y_in { pl[i00 + w + 1] } else { 0.0 };
                            buf[(ch * rows + r) * w + x] =
                                v_nw * nw + v_ne * ne + v_sw * sw + v_se * se;
                        }
                    }
                }
            });
        }
    });
    for (b, y0, buf) in jobs {
        let rows = buf.len() / (c * w);
        for ch in 0..c {
            let dst = (b * c + ch) * plane + y0 * w;
            out[dst..dst + rows * w].copy_from_slice(&buf[ch * rows * w..(ch + 1) * rows * w]);
        }
    }
    Ok(Tensor::from_vec(out, (n, c, h, w), &Device::Cpu)?)
}

/// The warp as tensor operations (any device): the same coordinates, taps and sums as
/// [`warp_cpu`], the four taps gathered from the flattened planes. A tap past the edge is read
/// at the edge instead: its weight is exactly 0 there (the coordinate is clamped to `size − 1`).
pub(crate) fn warp_tensor(img: &Tensor, flow: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = img.dims4()?;
    let dev = img.device();
    let (ax, ay) = (Axis::new(w), Axis::new(h));
    let coord = |axis: &Axis, f: Tensor, base: Tensor| -> Result<Tensor> {
        let g = base.broadcast_add(&(f / axis.div as f64)?)?;
        let x = ((g + 1.0)? * axis.scale as f64)?;
        Ok(x.maximum(0f64)?.minimum(axis.max as f64)?)
    };
    let bx = Tensor::from_vec(ax.base.clone(), (1, 1, w), dev)?;
    let by = Tensor::from_vec(ay.base.clone(), (1, h, 1), dev)?;
    let sx = coord(&ax, flow.narrow(1, 0, 1)?.squeeze(1)?, bx)?;
    let sy = coord(&ay, flow.narrow(1, 1, 1)?.squeeze(1)?, by)?;
    let (xw, yn) = (sx.floor()?, sy.floor()?);
    let (we, ns) = ((&sx - &xw)?, (&sy - &yn)?);
    let (e, so) = (we.affine(-1.0, 1.0)?, ns.affine(-1.0, 1.0)?);
    let (nw, ne, sw, se) = ((&so * &e)?, (&so * &we)?, (&ns * &e)?, (&ns * &we)?);
    let x1 = (&xw + 1.0)?.minimum(ax.max as f64)?;
    let y1 = (&yn + 1.0)?.minimum(ay.max as f64)?;
    let flat = img.reshape((n, c, h * w))?;
    let tap = |yy: &Tensor, xx: &Tensor| -> Result<Tensor> {
        let idx = ((yy * w as f64)? + xx)?
            .to_dtype(DType::U32)?
            .reshape((n, 1, h * w))?
            .broadcast_as((n, c, h * w))?
            .contiguous()?;
        Ok(flat.gather(&idx, D::Minus1)?.reshape((n, c, h, w))?)
    };
    let wgt = |t: &Tensor| t.unsqueeze(1);
    let acc = tap(&yn, &xw)?.broadcast_mul(&wgt(&nw)?)?;
    let acc = (acc + tap(&yn, &x1)?.broadcast_mul(&wgt(&ne)?)?)?;
    let acc = (acc + tap(&y1, &xw)?.broadcast_mul(&wgt(&sw)?)?)?;
    Ok((acc + tap(&y1, &x1)?.broadcast_mul(&wgt(&se)?)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
        // A small LCG: tests need varied values, not a distribution.
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn zero_flow_is_identity_and_whole_pixel_flow_shifts() {
        let img = rand(&[1, 3, 7, 9], 0.0, 1.0, 1);
        let zero = Tensor::zeros((1, 2, 7, 9), DType::F32, &Device::Cpu).unwrap();
        assert!(max_abs(&warp(&img, &zero).unwrap(), &img) < 1e-6);
        // flow x = +1 everywhere: pixel x reads x + 1, the last column repeats (border).
        let one = Tensor::cat(
            &[
                Tensor::ones((1, 1, 7, 9), DType::F32, &Device::Cpu).unwrap(),
                Tensor::zeros((1, 1, 7, 9), DType::F32, &Device::Cpu).unwrap(),
            ],
            1,
        )
        .unwrap();
        let got = warp(&img, &one).unwrap();
        let want = Tensor::cat(
            &[img.narrow(3, 1, 8).unwrap(), img.narrow(3, 8, 1).unwrap()],
            3,
        )
        .unwrap();
        assert!(max_abs(&got, &want) < 1e-5, "{}", max_abs(&got, &want));
    }

    #[test]
    fn tensor_path_equals_cpu_loop_for_wild_flows() {
        let img = rand(&[2, 4, 11, 13], 0.0, 1.0, 2);
        let flow = rand(&[2, 2, 11, 13], -30.0, 30.0, 3);
        let a = warp_cpu(&img, &flow).unwrap();
        let b = warp_tensor(&img, &flow).unwrap();
        assert!(max_abs(&a, &b) < 1e-6, "{}", max_abs(&a, &b));
    }

    #[test]
    fn resize_by_half_averages_pairs_and_by_one_is_identity() {
        let x = rand(&[1, 2, 4, 6], 0.0, 1.0, 4);
        let got = resize_bilinear(&x, 0.5).unwrap();
        assert_eq!(got.dims(), &[1, 2, 2, 3]);
        let pooled = x.avg_pool2d(2).unwrap();
        assert!(max_abs(&got, &pooled) < 1e-6);
        assert!(max_abs(&resize_bilinear(&x, 1.0).unwrap(), &x) == 0.0);
        assert_eq!(
            resize_bilinear(&x, 1.0 / 3.0).unwrap().dims(),
            &[1, 2, 1, 2]
        );
    }

    #[test]
    fn resize_cpu_loop_equals_tensor_path() {
        let x = rand(&[2, 3, 9, 14], -1.0, 1.0, 5);
        for factor in [0.125, 0.5, 1.0 / 3.0, 0.4, 2.0, 2.5, 16.0] {
            let (_, _, h, w) = x.dims4().unwrap();
            let (ho, wo) = (out_size(h, factor), out_size(w, factor));
            if ho == 0 || wo == 0 {
                continue;
            }
            let a = resize_cpu(&x, (ho, wo), factor).unwrap();
            let t = resize_dim(&x, 3, w, wo, factor).unwrap();
            let b = resize_dim(&t, 2, h, ho, factor).unwrap();
            assert_eq!(max_abs(&a, &b), 0.0, "×{factor}");
        }
    }

    #[test]
    fn leaky_relu_and_prelu_match_their_definitions() {
        let x = Tensor::new(&[[[[-2f32, -0.5, 0.0, 3.0]]]], &Device::Cpu).unwrap();
        let l = leaky_relu(&x, 0.2).unwrap().flatten_all().unwrap();
        assert_eq!(l.to_vec1::<f32>().unwrap(), vec![-0.4, -0.1, 0.0, 3.0]);
        let p = prelu(&x, &Tensor::new(&[0.25f32], &Device::Cpu).unwrap()).unwrap();
        let p = p.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(p, vec![-0.5, -0.125, 0.0, 3.0]);
    }
}
