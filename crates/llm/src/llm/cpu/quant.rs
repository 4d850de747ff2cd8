//! Quantized weight matrices and the matrix × activations kernels.
//!
//! Activations are quantized once per step to 8-bit blocks of 32 values with a
//! per-block scale `d` and a precomputed `s = d · Σq` (the GGML "Q8_1" idea),
//! which serves Q4_0, Q4_1 and Q8_0 weights alike. Those three formats have
//! hand-written AVX2/FMA/F16C kernels chosen at run time; every other GGML
//! type (and every type on CPUs without AVX2) goes through candle's
//! per-block `GgmlType::vec_dot` implementations, still driven by our own
//! thread pool.

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, GgmlType,
};
use candle_core::quantized::{GgmlDType, QTensor};
use half::{bf16, f16};

use super::pool::ThreadPool;
use crate::llm::{LlmError, Result};

/// Values per quantization block for the fast formats.
pub const QK: usize = 32;

/// Whether the AVX2 kernels may be used on this CPU.
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Allows or forbids the AVX-VNNI kernel variants process-wide (they are used
/// by default when the CPU has AVX-VNNI); the plain AVX2 variants remain.
pub fn set_vnni_enabled(enabled: bool) {
    #[cfg(target_arch = "x86_64")]
    kernels::VNNI_DISABLED.store(!enabled, std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = enabled;
}

/// A row-major quantized matrix (`rows` outputs × `cols` inputs) in GGML
/// block layout, stored 8-byte aligned.
pub struct QMatrix {
    dtype: GgmlDType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u64>,
    fast: bool,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("dtype", &self.dtype)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl QMatrix {
    /// Copies a 1-D or 2-D CPU `QTensor` (shape `[rows, cols]`).
    pub fn from_qtensor(t: &QTensor) -> Result<Self> {
        let dims = t.shape().dims();
        let (rows, cols) = match *dims {
            [c] => (1, c),
            [r, c] => (r, c),
            _ => {
                return Err(LlmError::Format(format!(
                    "expected a matrix, got shape {dims:?}"
                )))
            }
        };
        let bytes = t.data()?;
        Self::from_bytes(t.dtype(), rows, cols, &bytes)
    }

    /// Builds a matrix from raw GGML block bytes.
    pub fn from_bytes(dtype: GgmlDType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Self> {
        let bs = dtype.block_size();
        if !cols.is_multiple_of(bs) {
            return Err(LlmError::Format(format!(
                "row length {cols} is not a multiple of the {dtype:?} block size {bs}"
            )));
        }
        let row_bytes = cols / bs * dtype.type_size();
        if bytes.len() != rows * row_bytes {
            return Err(LlmError::Format(format!(
                "{dtype:?} matrix {rows}x{cols}: expected {} bytes, got {}",
                rows * row_bytes,
                bytes.len()
            )));
        }
        let mut data = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `data` holds at least `bytes.len()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.as_mut_ptr() as *mut u8, bytes.len())
        };
        let fast = simd_available()
            && matches!(dtype, GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q8_0);
        Ok(Self {
            dtype,
            rows,
            cols,
            row_bytes,
            data,
            fast,
        })
    }

    /// Element type.
    pub fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    /// Number of output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of input columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Forces the portable (candle `vec_dot`) path; used to cross-check kernels.
    pub fn set_portable(&mut self, portable: bool) {
        self.fast = !portable
            && simd_available()
            && matches!(
                self.dtype,
                GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q8_0
            );
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: plain bytes reinterpretation of an owned `u64` buffer.
        unsafe {
            std::slice::from_raw_parts(self.data.as_ptr() as *const u8, self.rows * self.row_bytes)
        }
    }

    fn row(&self, r: usize) -> &[u8] {
        &self.bytes()[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Dequantizes row `r` into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let row = self.row(r);
        macro_rules! deq {
            ($t:ty) => {
                <$t>::to_float(cast_blocks::<$t>(row), out)
            };
        }
        match self.dtype {
            GgmlDType::F32 => deq!(f32),
            GgmlDType::F16 => deq!(f16),
            GgmlDType::BF16 => deq!(bf16),
            GgmlDType::Q4_0 => deq!(BlockQ4_0),
            GgmlDType::Q4_1 => deq!(BlockQ4_1),
            GgmlDType::Q5_0 => deq!(BlockQ5_0),
            GgmlDType::Q5_1 => deq!(BlockQ5_1),
            GgmlDType::Q8_0 => deq!(BlockQ8_0),
            GgmlDType::Q8_1 => deq!(BlockQ8_1),
            GgmlDType::Q2K => deq!(BlockQ2K),
            GgmlDType::Q3K => deq!(BlockQ3K),
            GgmlDType::Q4K => deq!(BlockQ4K),
            GgmlDType::Q5K => deq!(BlockQ5K),
            GgmlDType::Q6K => deq!(BlockQ6K),
            GgmlDType::Q8K => deq!(BlockQ8K),
        }
    }

    /// Dequantizes the whole matrix (row-major `rows × cols`).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, chunk) in out.chunks_mut(self.cols).enumerate() {
            self.dequantize_row(r, chunk);
        }
        out
    }
}

/// Reinterprets GGML block bytes as a slice of candle block structs.
fn cast_blocks<T: GgmlType>(bytes: &[u8]) -> &[T] {
    let size = std::mem::size_of::<T>();
    assert_eq!(
        bytes.len() % size,
        0,
        "block bytes not a multiple of the block size"
    );
    assert_eq!(
        bytes.as_ptr().align_offset(std::mem::align_of::<T>()),
        0,
        "misaligned block data"
    );
    // SAFETY: candle's block types are `#[repr(C)]` plain-old-data (integers and
    // half floats) valid for any bit pattern; size and alignment were checked.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, bytes.len() / size) }
}

/// Activations quantized to 8-bit blocks of 32 (one row per token).
#[derive(Debug, Default)]
pub struct Q8Acts {
    n: usize,
    cols: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
}

impl Q8Acts {
    /// Quantizes `n` rows of `cols` values (`cols` must be a multiple of 32),
    /// reusing the buffers.
    ///
    /// Scales are rounded to half precision exactly as GGML's (and candle's)
    /// `Q8_1` blocks store them, so results match those implementations up to
    /// summation order.
    pub fn quantize(&mut self, x: &[f32], n: usize, cols: usize) {
        debug_assert_eq!(x.len(), n * cols);
        self.n = n;
        self.cols = cols;
        if !cols.is_multiple_of(QK) {
            return;
        }
        let nb = n * cols / QK;
        self.qs.resize(n * cols, 0);
        self.d.resize(nb, 0.0);
        self.s.resize(nb, 0.0);
        for (b, xs) in x.chunks_exact(QK).enumerate() {
            let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, &v) in self.qs[b * QK..(b + 1) * QK].iter_mut().zip(xs) {
                let qi = round_half_away(v * id);
                *q = qi as i8;
                sum += qi;
            }
            let d16 = f16::from_f32(d);
            self.d[b] = d16.to_f32();
            self.s[b] = (f16::from_f32(sum as f32) * d16).to_f32();
        }
    }
}

/// `f32::round` (half away from zero) without a libm call: the value is
/// within ±127.5 here, so the integer conversion is exact.
#[inline]
fn round_half_away(v: f32) -> i32 {
    let t = v as i32; // truncates toward zero
    let frac = v - t as f32;
    if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// One output of a fused matmul: `out[t * w.rows() + r] = Σ_c w[r, c] · x[t, c]`.
pub struct MatJob<'a> {
    /// Weight matrix.
    pub w: &'a QMatrix,
    /// Destination, `n × w.rows()` row-major.
    pub out: &'a mut [f32],
}

/// A raw pointer that may cross threads; users guarantee disjoint writes.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used for writes to disjoint ranges from pool tasks.
unsafe impl Send for SendPtr {}
// SAFETY: see above.
unsafe impl Sync for SendPtr {}

/// Activations pre-quantized for a portable (candle) kernel.
struct GenericActs {
    bytes: Vec<u64>,
    row_bytes: usize,
}

/// Computes several matrix products that share the same input rows in one
/// parallel region. `x` holds `n` rows of `cols` floats; `q8` must be `x`
/// quantized with [`Q8Acts::quantize`] when any job uses a fast kernel.
pub fn matmul_many(pool: &ThreadPool, jobs: &mut [MatJob<'_>], x: &[f32], q8: &Q8Acts, n: usize) {
    // Per-job input preparation for the portable path.
    let generic: Vec<Option<GenericActs>> = jobs
        .iter()
        .map(|j| {
            if j.w.fast {
                None
            } else {
                Some(quantize_generic(j.w.dtype, x, n, j.w.cols))
            }
        })
        .collect();
    let threads = pool.threads();
    let mut tasks: Vec<(usize, usize, usize)> = Vec::with_capacity(64);
    let total_rows: usize = jobs.iter().map(|j| j.w.rows).sum();
    let chunk = (total_rows / (threads * 8))
        .clamp(4, 256)
        .next_multiple_of(4);
    for (ji, j) in jobs.iter().enumerate() {
        debug_assert_eq!(j.out.len(), n * j.w.rows);
        let mut r = 0;
        while r < j.w.rows {
            let e = (r + chunk).min(j.w.rows);
            tasks.push((ji, r, e));
            r = e;
        }
    }
    let outs: Vec<SendPtr> = jobs
        .iter_mut()
        .map(|j| SendPtr(j.out.as_mut_ptr()))
        .collect();
    let jobs_ref: &[MatJob<'_>] = jobs;
    pool.run(tasks.len(), &|ti| {
        let (ji, r0, r1) = tasks[ti];
        let w = jobs_ref[ji].w;
        let out = outs[ji];
        match &generic[ji] {
            None => fast_rows(w, q8, n, r0, r1, out),
            Some(g) => generic_rows(w, g, n, r0, r1, out),
        }
    });
}

/// Single-matrix convenience wrapper around [`matmul_many`].
pub fn matmul(pool: &ThreadPool, w: &QMatrix, out: &mut [f32], x: &[f32], q8: &Q8Acts, n: usize) {
    matmul_many(pool, &mut [MatJob { w, out }], x, q8, n);
}

fn quantize_generic(dtype: GgmlDType, x: &[f32], n: usize, cols: usize) -> GenericActs {
    fn q<T: GgmlType>(x: &[f32], n: usize, cols: usize) -> GenericActs {
        let per_row = cols / T::VecDotType::BLCK_SIZE;
        let row_bytes = per_row * std::mem::size_of::<T::VecDotType>();
        let mut bytes = vec![0u64; (n * row_bytes).div_ceil(8)];
        for t in 0..n {
            let mut blocks = vec![T::VecDotType::zeros(); per_row];
            T::VecDotType::from_float(&x[t * cols..(t + 1) * cols], &mut blocks);
            // SAFETY: copying plain-old-data blocks into a byte buffer of the
            // right size.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    blocks.as_ptr() as *const u8,
                    (bytes.as_mut_ptr() as *mut u8).add(t * row_bytes),
                    row_bytes,
                );
            }
        }
        GenericActs { bytes, row_bytes }
    }
    match dtype {
        GgmlDType::F32 => q::<f32>(x, n, cols),
        GgmlDType::F16 => q::<f16>(x, n, cols),
        GgmlDType::BF16 => q::<bf16>(x, n, cols),
        GgmlDType::Q4_0 => q::<BlockQ4_0>(x, n, cols),
        GgmlDType::Q4_1 => q::<BlockQ4_1>(x, n, cols),
        GgmlDType::Q5_0 => q::<BlockQ5_0>(x, n, cols),
        GgmlDType::Q5_1 => q::<BlockQ5_1>(x, n, cols),
        GgmlDType::Q8_0 => q::<BlockQ8_0>(x, n, cols),
        GgmlDType::Q8_1 => q::<BlockQ8_1>(x, n, cols),
        GgmlDType::Q2K => q::<BlockQ2K>(x, n, cols),
        GgmlDType::Q3K => q::<BlockQ3K>(x, n, cols),
        GgmlDType::Q4K => q::<BlockQ4K>(x, n, cols),
        GgmlDType::Q5K => q::<BlockQ5K>(x, n, cols),
        GgmlDType::Q6K => q::<BlockQ6K>(x, n, cols),
        GgmlDType::Q8K => q::<BlockQ8K>(x, n, cols),
    }
}

fn generic_rows(w: &QMatrix, g: &GenericActs, n: usize, r0: usize, r1: usize, out: SendPtr) {
    fn run<T: GgmlType>(
        w: &QMatrix,
        g: &GenericActs,
        n: usize,
        r0: usize,
        r1: usize,
        out: SendPtr,
    ) {
        // SAFETY: plain bytes view of the owned activation buffer.
        let all =
            unsafe { std::slice::from_raw_parts(g.bytes.as_ptr() as *const u8, n * g.row_bytes) };
        for r in r0..r1 {
            let wr = cast_blocks::<T>(w.row(r));
            for t in 0..n {
                let a = cast_blocks::<T::VecDotType>(&all[t * g.row_bytes..(t + 1) * g.row_bytes]);
                let v = T::vec_dot(w.cols, wr, a);
                // SAFETY: each task owns rows r0..r1 of every output row.
                unsafe { *out.0.add(t * w.rows + r) = v };
            }
        }
    }
    match w.dtype {
        GgmlDType::F32 => run::<f32>(w, g, n, r0, r1, out),
        GgmlDType::F16 => run::<f16>(w, g, n, r0, r1, out),
        GgmlDType::BF16 => run::<bf16>(w, g, n, r0, r1, out),
        GgmlDType::Q4_0 => run::<BlockQ4_0>(w, g, n, r0, r1, out),
        GgmlDType::Q4_1 => run::<BlockQ4_1>(w, g, n, r0, r1, out),
        GgmlDType::Q5_0 => run::<BlockQ5_0>(w, g, n, r0, r1, out),
        GgmlDType::Q5_1 => run::<BlockQ5_1>(w, g, n, r0, r1, out),
        GgmlDType::Q8_0 => run::<BlockQ8_0>(w, g, n, r0, r1, out),
        GgmlDType::Q8_1 => run::<BlockQ8_1>(w, g, n, r0, r1, out),
        GgmlDType::Q2K => run::<BlockQ2K>(w, g, n, r0, r1, out),
        GgmlDType::Q3K => run::<BlockQ3K>(w, g, n, r0, r1, out),
        GgmlDType::Q4K => run::<BlockQ4K>(w, g, n, r0, r1, out),
        GgmlDType::Q5K => run::<BlockQ5K>(w, g, n, r0, r1, out),
        GgmlDType::Q6K => run::<BlockQ6K>(w, g, n, r0, r1, out),
        GgmlDType::Q8K => run::<BlockQ8K>(w, g, n, r0, r1, out),
    }
}

/// Token rows processed together by the fast kernels when several tokens are
/// evaluated at once (weights are unpacked once per group).
const TOKEN_GROUP: usize = 4;

fn fast_rows(w: &QMatrix, q8: &Q8Acts, n: usize, r0: usize, r1: usize, out: SendPtr) {
    #[cfg(target_arch = "x86_64")]
    {
        debug_assert_eq!(q8.cols, w.cols);
        debug_assert!(q8.n >= n);
        let vnni = kernels::vnni_available();
        let nb = w.cols / QK;
        let store = |t: usize, r: usize, v: f32| {
            // SAFETY: each task owns rows r0..r1 of every output row.
            unsafe { *out.0.add(t * w.rows + r) = v };
        };
        if n == 1 {
            // Decode: two weight rows per call share the activation loads.
            let mut r = r0;
            while r + 2 <= r1 {
                let rows = [w.row(r).as_ptr(), w.row(r + 1).as_ptr()];
                // SAFETY: `fast` implies AVX2/FMA/F16C; pointers cover `nb` blocks.
                let res = unsafe { kernels::dispatch::<2, 1>(vnni, w.dtype, rows, nb, q8, 0) };
                store(0, r, res[0][0]);
                store(0, r + 1, res[1][0]);
                r += 2;
            }
            if r < r1 {
                // SAFETY: as above.
                let res = unsafe {
                    kernels::dispatch::<1, 1>(vnni, w.dtype, [w.row(r).as_ptr()], nb, q8, 0)
                };
                store(0, r, res[0][0]);
            }
            return;
        }
        let mut t = 0;
        while t < n {
            let g = (n - t).min(TOKEN_GROUP);
            for r in r0..r1 {
                let row = [w.row(r).as_ptr()];
                // SAFETY: as above; tokens t..t+g exist in `q8`.
                unsafe {
                    match g {
                        4 => {
                            let res = kernels::dispatch::<1, 4>(vnni, w.dtype, row, nb, q8, t);
                            for (k, v) in res[0].iter().enumerate() {
                                store(t + k, r, *v);
                            }
                        }
                        3 => {
                            let res = kernels::dispatch::<1, 3>(vnni, w.dtype, row, nb, q8, t);
                            for (k, v) in res[0].iter().enumerate() {
                                store(t + k, r, *v);
                            }
                        }
                        2 => {
                            let res = kernels::dispatch::<1, 2>(vnni, w.dtype, row, nb, q8, t);
                            for (k, v) in res[0].iter().enumerate() {
                                store(t + k, r, *v);
                            }
                        }
                        _ => {
                            let res = kernels::dispatch::<1, 1>(vnni, w.dtype, row, nb, q8, t);
                            store(t, r, res[0][0]);
                        }
                    }
                }
            }
            t += g;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, q8, n, r0, r1, out);
        unreachable!("fast kernels are only enabled on x86_64");
    }
}

#[cfg(target_arch = "x86_64")]
mod kernels {
    //! x86-64 kernels: `R` weight rows against `N` token rows.
    //!
    //! Each kernel exists twice, generated by one macro: with AVX2 only
    //! (`maddubs` + `madd` for the 8-bit dot products) and with AVX-VNNI
    //! (`vpdpbusd`, one instruction). AVX-512 and AMX are deliberately not used.

    use std::arch::x86_64::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{Q8Acts, QK};
    use candle_core::quantized::GgmlDType;

    /// Software prefetch distance in bytes ahead of the current block.
    const PREFETCH: usize = 2048;

    /// Set to forbid the AVX-VNNI variants (see [`super::set_vnni_enabled`]).
    pub static VNNI_DISABLED: AtomicBool = AtomicBool::new(false);

    /// Whether the AVX-VNNI variants can run (and are allowed).
    pub fn vnni_available() -> bool {
        !VNNI_DISABLED.load(Ordering::Relaxed) && std::is_x86_feature_detected!("avxvnni")
    }

    /// Activation pointers for `N` consecutive tokens.
    pub struct Acts<const N: usize> {
        qs: [*const i8; N],
        d: [*const f32; N],
        s: [*const f32; N],
    }

    /// Dispatches on the weight type and instruction set.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C (and AVX-VNNI when `vnni`);
    /// each of `rows` must point at `nb` blocks of `dtype`; `q8` must hold
    /// tokens `t..t + N`.
    #[inline]
    pub unsafe fn dispatch<const R: usize, const N: usize>(
        vnni: bool,
        dtype: GgmlDType,
        rows: [*const u8; R],
        nb: usize,
        q8: &Q8Acts,
        t: usize,
    ) -> [[f32; N]; R] {
        let cols = nb * QK;
        let a = Acts::<N> {
            qs: std::array::from_fn(|k| q8.qs.as_ptr().add((t + k) * cols)),
            d: std::array::from_fn(|k| q8.d.as_ptr().add((t + k) * nb)),
            s: std::array::from_fn(|k| q8.s.as_ptr().add((t + k) * nb)),
        };
        match (dtype, vnni) {
            (GgmlDType::Q4_1, false) => avx2::q4_1::<R, N>(rows, nb, &a),
            (GgmlDType::Q4_1, true) => vnni::q4_1::<R, N>(rows, nb, &a),
            (GgmlDType::Q4_0, false) => avx2::q4_0::<R, N>(rows, nb, &a),
            (GgmlDType::Q4_0, true) => vnni::q4_0::<R, N>(rows, nb, &a),
            (GgmlDType::Q8_0, false) => avx2::q8_0::<R, N>(rows, nb, &a),
            (GgmlDType::Q8_0, true) => vnni::q8_0::<R, N>(rows, nb, &a),
            _ => unreachable!("no fast kernel for {dtype:?}"),
        }
    }

    macro_rules! kernel_set {
        ($modname:ident, $features:literal, $dot:item) => {
            pub mod $modname {
                use super::*;

                /// Σ u8·i8 over 32 lanes as 8 i32 partial sums.
                #[inline]
                #[target_feature(enable = $features)]
                $dot

                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn hsum(v: __m256) -> f32 {
                    let lo = _mm256_castps256_ps128(v);
                    let hi = _mm256_extractf128_ps(v, 1);
                    let s = _mm_add_ps(lo, hi);
                    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                    _mm_cvtss_f32(s)
                }

                /// Two adjacent half floats at `p` as (first, second).
                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn f16x2_at(p: *const u8) -> (f32, f32) {
                    let bits = (p as *const u32).read_unaligned();
                    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
                    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
                }

                /// One half float at `p`.
                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn f16_at(p: *const u8) -> f32 {
                    let bits = (p as *const u16).read_unaligned();
                    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
                }

                /// 16 bytes of packed nibbles → 32 bytes (low nibbles, then
                /// high nibbles: GGML's Q4 element order).
                #[inline]
                #[target_feature(enable = $features)]
                unsafe fn nibbles(p: *const u8) -> __m256i {
                    let q = _mm_loadu_si128(p as *const __m128i);
                    let hi = _mm_srli_epi16(q, 4);
                    _mm256_and_si256(_mm256_set_m128i(hi, q), _mm256_set1_epi8(0x0F))
                }

                #[target_feature(enable = $features)]
                pub unsafe fn q4_1<const R: usize, const N: usize>(
                    rows: [*const u8; R],
                    nb: usize,
                    a: &Acts<N>,
                ) -> [[f32; N]; R] {
                    let mut acc = [[_mm256_setzero_ps(); N]; R];
                    let mut accm = [[0f32; N]; R];
                    for b in 0..nb {
                        let av: [__m256i; N] = std::array::from_fn(|k| {
                            _mm256_loadu_si256(a.qs[k].add(b * QK) as *const __m256i)
                        });
                        let ad: [f32; N] = std::array::from_fn(|k| *a.d[k].add(b));
                        let asum: [f32; N] = std::array::from_fn(|k| *a.s[k].add(b));
                        for r in 0..R {
                            let p = rows[r].add(b * 20);
                            _mm_prefetch::<_MM_HINT_T0>(p.add(PREFETCH) as *const i8);
                            let (dw, mw) = f16x2_at(p);
                            let w = nibbles(p.add(4));
                            for k in 0..N {
                                let f = _mm256_cvtepi32_ps(dot(w, av[k]));
                                acc[r][k] = _mm256_fmadd_ps(f, _mm256_set1_ps(dw * ad[k]), acc[r][k]);
                                accm[r][k] += mw * asum[k];
                            }
                        }
                    }
                    let mut out = [[0f32; N]; R];
                    for r in 0..R {
                        for k in 0..N {
                            out[r][k] = hsum(acc[r][k]) + accm[r][k];
                        }
                    }
                    out
                }

                #[target_feature(enable = $features)]
                pub unsafe fn q4_0<const R: usize, const N: usize>(
                    rows: [*const u8; R],
                    nb: usize,
                    a: &Acts<N>,
                ) -> [[f32; N]; R] {
                    // Σ (q - 8)·x = Σ q·x - 8·Σ x, with d_x·Σx precomputed in `s`.
                    let mut acc = [[_mm256_setzero_ps(); N]; R];
                    let mut accm = [[0f32; N]; R];
                    for b in 0..nb {
                        let av: [__m256i; N] = std::array::from_fn(|k| {
                            _mm256_loadu_si256(a.qs[k].add(b * QK) as *const __m256i)
                        });
                        let ad: [f32; N] = std::array::from_fn(|k| *a.d[k].add(b));
                        let asum: [f32; N] = std::array::from_fn(|k| *a.s[k].add(b));
                        for r in 0..R {
                            let p = rows[r].add(b * 18);
                            let dw = f16_at(p);
                            let w = nibbles(p.add(2));
                            for k in 0..N {
                                let f = _mm256_cvtepi32_ps(dot(w, av[k]));
                                acc[r][k] = _mm256_fmadd_ps(f, _mm256_set1_ps(dw * ad[k]), acc[r][k]);
                                accm[r][k] -= 8.0 * dw * asum[k];
                            }
                        }
                    }
                    let mut out = [[0f32; N]; R];
                    for r in 0..R {
                        for k in 0..N {
                            out[r][k] = hsum(acc[r][k]) + accm[r][k];
                        }
                    }
                    out
                }

                #[target_feature(enable = $features)]
                pub unsafe fn q8_0<const R: usize, const N: usize>(
                    rows: [*const u8; R],
                    nb: usize,
                    a: &Acts<N>,
                ) -> [[f32; N]; R] {
                    let mut acc = [[_mm256_setzero_ps(); N]; R];
                    for b in 0..nb {
                        let av: [__m256i; N] = std::array::from_fn(|k| {
                            _mm256_loadu_si256(a.qs[k].add(b * QK) as *const __m256i)
                        });
                        let ad: [f32; N] = std::array::from_fn(|k| *a.d[k].add(b));
                        for r in 0..R {
                            let p = rows[r].add(b * 34);
                            _mm_prefetch::<_MM_HINT_T0>(p.add(PREFETCH) as *const i8);
                            let dw = f16_at(p);
                            let w = _mm256_loadu_si256(p.add(2) as *const __m256i);
                            // The unsigned operand must be non-negative: move
                            // the weight's sign onto the activation.
                            let wa = _mm256_sign_epi8(w, w);
                            for k in 0..N {
                                let sa = _mm256_sign_epi8(av[k], w);
                                let f = _mm256_cvtepi32_ps(dot(wa, sa));
                                acc[r][k] = _mm256_fmadd_ps(f, _mm256_set1_ps(dw * ad[k]), acc[r][k]);
                            }
                        }
                    }
                    let mut out = [[0f32; N]; R];
                    for r in 0..R {
                        for k in 0..N {
                            out[r][k] = hsum(acc[r][k]);
                        }
                    }
                    out
                }
            }
        };
    }

    kernel_set!(
        avx2,
        "avx2,fma,f16c",
        unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
            _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
        }
    );

    kernel_set!(
        vnni,
        "avx2,fma,f16c,avxvnni",
        unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
            _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn check(dtype: GgmlDType) {
        for n in [1, 3, 6] {
            check_n(dtype, n);
        }
    }

    fn check_n(dtype: GgmlDType, n: usize) {
        let (rows, cols) = (37, 128);
        let wf = pseudo(rows * cols, 3);
        let t = candle_core::Tensor::from_vec(wf, (rows, cols), &candle_core::Device::Cpu).unwrap();
        let qt = QTensor::quantize(&t, dtype).unwrap();
        let mut fast = QMatrix::from_qtensor(&qt).unwrap();
        let x = pseudo(n * cols, 9);
        let mut q8 = Q8Acts::default();
        q8.quantize(&x, n, cols);
        let pool = ThreadPool::new(2);
        let mut a = vec![0f32; n * rows];
        let mut b = vec![0f32; n * rows];
        matmul(&pool, &fast, &mut a, &x, &q8, n);
        fast.set_portable(true);
        matmul(&pool, &fast, &mut b, &x, &q8, n);
        // Exact reference from dequantized weights.
        let deq = fast.dequantize();
        for t in 0..n {
            for r in 0..rows {
                let exact: f32 = (0..cols).map(|c| deq[r * cols + c] * x[t * cols + c]).sum();
                let (va, vb) = (a[t * rows + r], b[t * rows + r]);
                assert!(
                    (va - vb).abs() < 2e-2,
                    "{dtype:?} fast {va} vs portable {vb}"
                );
                assert!(
                    (va - exact).abs() < 5e-2,
                    "{dtype:?} fast {va} vs exact {exact}"
                );
            }
        }
    }

    #[test]
    fn kernels_agree_with_portable_path() {
        // Both instruction-set variants (the VNNI one only where supported).
        for vnni in [true, false] {
            set_vnni_enabled(vnni);
            for dt in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
                check(dt);
            }
        }
        set_vnni_enabled(true);
    }

    #[test]
    fn kquants_run_through_portable_path() {
        let (rows, cols, n) = (8, 256, 2);
        let wf = pseudo(rows * cols, 5);
        let t = candle_core::Tensor::from_vec(wf, (rows, cols), &candle_core::Device::Cpu).unwrap();
        let qt = QTensor::quantize(&t, GgmlDType::Q4K).unwrap();
        let m = QMatrix::from_qtensor(&qt).unwrap();
        let x = pseudo(n * cols, 1);
        let mut q8 = Q8Acts::default();
        q8.quantize(&x, n, cols);
        let pool = ThreadPool::new(2);
        let mut out = vec![0f32; n * rows];
        matmul(&pool, &m, &mut out, &x, &q8, n);
        let deq = m.dequantize();
        for t in 0..n {
            for r in 0..rows {
                let exact: f32 = (0..cols).map(|c| deq[r * cols + c] * x[t * cols + c]).sum();
                assert!((out[t * rows + r] - exact).abs() < 0.1);
            }
        }
    }
}
