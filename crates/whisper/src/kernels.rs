//! CPU kernels for single-token decoding.
//!
//! One decoder step multiplies every decoder weight matrix by a single
//! vector, so it is bound by memory bandwidth, not arithmetic. These
//! kernels keep the weights in half precision (lossless for the float16
//! model files faster-whisper ships), convert them on the fly with F16C, and
//! split rows over candle's persistent CPU thread pool. Everything else of a
//! step (layer norm, attention over ≤ 448 cached positions and 1500 audio
//! frames, activations) is done on plain slices.
//!
//! The SIMD paths need AVX2, FMA and F16C and are chosen at run time;
//! other CPUs use portable scalar code with identical results up to
//! summation order.

use std::ops::Range;

use candle_core::utils::barrier_pool;

/// Rows below which a matrix–vector product stays on the calling thread.
const PARALLEL_MIN_ROWS: usize = 64;

/// Converts IEEE half-precision bits to `f32`.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: value = man · 2⁻²⁴.
            let v = man as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// Converts `f32` to IEEE half-precision bits, rounding to nearest even.
pub fn f32_to_f16(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        // Inf or NaN.
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal half: shift the full mantissa (with implicit bit).
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let midpoint = 1 << (shift - 1);
        let round = u32::from(rem > midpoint || (rem == midpoint && half & 1 == 1));
        return sign | (half + round) as u16;
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    let round = u32::from(rem > 0x1000 || (rem == 0x1000 && half & 1 == 1));
    // A carry out of the mantissa correctly bumps the exponent (up to inf).
    sign | (half + round) as u16
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma_f16c() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        lanes.iter().sum()
    }

    /// `Σ w[i]·x[i]` with half-precision `w`.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(w: &[u16], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let o = i + 8 * k;
                let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(o) as *const __m128i));
                *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(o)), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i) as *const __m128i));
            acc[0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(i)), acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut total = hsum(sum);
        for j in i..n {
            total += super::f16_to_f32(w[j]) * x[j];
        }
        total
    }

    /// Four dot products of half-precision rows `w0..w3` (each `x.len()`
    /// long, starting at `w`, `stride` apart) with `x`.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C, and `w` must hold
    /// `3 * stride + x.len()` values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_f16(w: &[u16], stride: usize, x: &[f32]) -> [f32; 4] {
        let n = x.len();
        debug_assert!(w.len() >= 3 * stride + n);
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 8 <= n {
            let xv = _mm256_loadu_ps(xp.add(i));
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(r * stride + i) as *const __m128i));
                *a = _mm256_fmadd_ps(wv, xv, *a);
            }
            i += 8;
        }
        let mut out = [0f32; 4];
        for (r, o) in out.iter_mut().enumerate() {
            *o = hsum(acc[r]);
            for j in i..n {
                *o += super::f16_to_f32(w[r * stride + j]) * x[j];
            }
        }
        out
    }

    /// `Σ a[i]·b[i]`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i)), _mm256_loadu_ps(bp.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ap.add(i + 8)),
                _mm256_loadu_ps(bp.add(i + 8)),
                acc1,
            );
            i += 16;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i)), _mm256_loadu_ps(bp.add(i)), acc0);
            i += 8;
        }
        let mut total = hsum(_mm256_add_ps(acc0, acc1));
        for j in i..n {
            total += a[j] * b[j];
        }
        total
    }

    /// `y += s·x`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(y: &mut [f32], s: f32, x: &[f32]) {
        let n = y.len().min(x.len());
        let (yp, xp) = (y.as_mut_ptr(), x.as_ptr());
        let sv = _mm256_set1_ps(s);
        let mut i = 0;
        while i + 8 <= n {
            let r = _mm256_fmadd_ps(sv, _mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(yp.add(i)));
            _mm256_storeu_ps(yp.add(i), r);
            i += 8;
        }
        for j in i..n {
            y[j] += s * x[j];
        }
    }
}

/// `Σ w[i]·x[i]` with half-precision `w`.
pub fn dot_f16(w: &[u16], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the required CPU features were detected above.
        return unsafe { x86::dot_f16(w, x) };
    }
    w.iter().zip(x).map(|(&a, &b)| f16_to_f32(a) * b).sum()
}

/// `Σ a[i]·b[i]`.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the required CPU features were detected above.
        return unsafe { x86::dot_f32(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += s·x`.
pub fn axpy(y: &mut [f32], s: f32, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the required CPU features were detected above.
        unsafe { x86::axpy(y, s, x) };
        return;
    }
    y.iter_mut().zip(x).for_each(|(a, b)| *a += s * b);
}

/// Raw output pointer shared by pool workers that write disjoint ranges.
struct SharedOut(*mut f32, usize);

// SAFETY: workers only write through the pointer to non-overlapping index
// ranges handed out by the pool, and the caller keeps the slice borrowed
// mutably until all workers have finished.
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `range` must be in bounds and not handed to another worker.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, range: Range<usize>) -> &mut [f32] {
        debug_assert!(range.end <= self.1);
        std::slice::from_raw_parts_mut(self.0.add(range.start), range.len())
    }
}

/// Runs `f(range, out_chunk)` over `out` split into row ranges of
/// `row_len` values, in parallel on candle's CPU pool when there are at
/// least `min_rows` rows.
pub fn par_rows(
    out: &mut [f32],
    row_len: usize,
    min_rows: usize,
    f: impl Fn(Range<usize>, &mut [f32]) + Sync,
) {
    let rows = out.len() / row_len.max(1);
    if rows < min_rows.max(2) {
        f(0..rows, out);
        return;
    }
    let shared = SharedOut(out.as_mut_ptr(), out.len());
    barrier_pool().execute_chunked(rows, |range| {
        // SAFETY: the pool hands out disjoint row ranges within `rows`.
        let chunk = unsafe { shared.slice(range.start * row_len..range.end * row_len) };
        f(range, chunk);
    });
}

/// A row-major half-precision matrix `[rows, cols]`.
#[derive(Debug, Clone)]
pub struct HalfMatrix {
    bits: Vec<u16>,
    /// Number of rows (outputs).
    pub rows: usize,
    /// Number of columns (inputs).
    pub cols: usize,
}

impl HalfMatrix {
    /// Converts row-major `f32` values.
    pub fn from_f32(values: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "matrix size mismatch");
        Self {
            bits: values.iter().map(|&v| f32_to_f16(v)).collect(),
            rows,
            cols,
        }
    }

    /// One row as `f32` values.
    pub fn row_f32(&self, r: usize) -> Vec<f32> {
        self.bits[r * self.cols..(r + 1) * self.cols]
            .iter()
            .map(|&b| f16_to_f32(b))
            .collect()
    }

    /// `out = W·x (+ bias)`.
    pub fn matvec(&self, x: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        assert_eq!(x.len(), self.cols, "matvec input size");
        assert_eq!(out.len(), self.rows, "matvec output size");
        let cols = self.cols;
        par_rows(out, 1, PARALLEL_MIN_ROWS, |range, chunk| {
            let start = range.start;
            let mut r = start;
            #[cfg(target_arch = "x86_64")]
            if has_avx2_fma_f16c() {
                // Four rows at a time share each load of `x`.
                while r + 4 <= range.end {
                    // SAFETY: features detected above; rows r..r+4 exist.
                    let v = unsafe { x86::dot4_f16(&self.bits[r * cols..(r + 4) * cols], cols, x) };
                    chunk[r - start..r - start + 4].copy_from_slice(&v);
                    r += 4;
                }
            }
            for r in r..range.end {
                chunk[r - start] = dot_f16(&self.bits[r * cols..(r + 1) * cols], x);
            }
            if let Some(b) = bias {
                for (o, bv) in chunk.iter_mut().zip(&b[range]) {
                    *o += bv;
                }
            }
        });
    }
}

/// Layer norm of `x` into `out` (`eps` = Whisper's 1e-5).
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for (((o, &v), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
        *o = (v - mean) * inv * g + b;
    }
}

/// Error function (|error| < 1.2e-7), via a Chebyshev fit of `erfc`.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

/// In-place softmax.
pub fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    v.iter_mut().for_each(|x| *x *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_roundtrip_is_exact() {
        for bits in (0u16..=0xffff).step_by(7) {
            let v = f16_to_f32(bits);
            if v.is_nan() {
                continue;
            }
            assert_eq!(f32_to_f16(v), bits, "bits {bits:#06x} value {v}");
        }
        assert_eq!(f32_to_f16(1.0 + 1.0 / 4096.0), 0x3c00); // ties to even
        assert_eq!(f32_to_f16(1e6), 0x7c00);
    }

    #[test]
    fn kernels_match_scalar() {
        let x: Vec<f32> = (0..77).map(|i| (i as f32 * 0.37).sin()).collect();
        let y: Vec<f32> = (0..77).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        assert!((dot_f32(&x, &y) - naive).abs() < 1e-4);
        let m = HalfMatrix::from_f32(&[x.clone(), y.clone()].concat(), 2, 77);
        let mut out = [0f32; 2];
        m.matvec(&y, Some(&[1.0, 2.0]), &mut out);
        let d0: f32 = m.row_f32(0).iter().zip(&y).map(|(a, b)| a * b).sum();
        assert!((out[0] - d0 - 1.0).abs() < 1e-3);
        let mut acc = y.clone();
        axpy(&mut acc, 2.0, &x);
        assert!((acc[5] - (y[5] + 2.0 * x[5])).abs() < 1e-6);
    }

    #[test]
    fn erf_values() {
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 2e-7);
        assert!((erf(-1.5) + 0.966_105_146_5).abs() < 2e-7);
        assert!(erf(0.0).abs() < 2e-7);
    }
}
