//! The heavy half of VITS (flow and HiFi-GAN decoder) on the CPU without a tensor library:
//! activations are `[channels][time]` buffers, every convolution is one GEMM per time tile over
//! an im2col block (the LeakyReLU before a convolution is applied while the block is built, and
//! residual sums are the GEMM's starting value), tiles run in parallel. candle's generic
//! convolution copies and transposes whole activations around each op, which made the decoder
//! several times slower than Piper's runtime.

use rayon::prelude::*;

use super::onnx::{OnnxWeights, Weight};

/// Floats of one im2col block (about 512 KiB: it and the GEMM's tile stay in L2).
const BLOCK_FLOATS: usize = 128 * 1024;

/// `[c][t]` activations.
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub c: usize,
    pub t: usize,
    pub data: Vec<f32>,
}

impl Act {
    pub fn zeros(c: usize, t: usize) -> Self {
        Self {
            c,
            t,
            data: vec![0.0; c * t],
        }
    }

    fn rows(&self, from: usize, n: usize) -> &[f32] {
        &self.data[from * self.t..(from + n) * self.t]
    }
}

/// What happens to the input on its way into a convolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pre {
    None,
    Leaky(f32),
}

impl Pre {
    #[inline]
    fn apply(self, v: f32) -> f32 {
        match self {
            Pre::None => v,
            Pre::Leaky(s) => v.max(v * s),
        }
    }
}

/// Output pointer shared by the tiles (each writes its own columns).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Through a method, so closures capture the whole (Sync) wrapper, not the raw pointer.
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the buffer the pointer came from.
        unsafe { self.0.add(offset) }
    }
}

/// `dst (+)= lhs · rhs` on strided f32 matrices, single-threaded (callers parallelise over
/// tiles): sizes `(m, n, k)`; `dst` is `(pointer, row stride, accumulate)` with unit column
/// stride; `lhs` and `rhs` are `(pointer, column stride, row stride)`.
///
/// # Safety
/// The pointers and strides must describe in-bounds `m×n`, `m×k` and `k×n` matrices, and no
/// other thread may write the `dst` elements meanwhile.
unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, accumulate): (*mut f32, isize, bool),
    (lhs, lhs_cs, lhs_rs): (*const f32, isize, isize),
    (rhs, rhs_cs, rhs_rs): (*const f32, isize, isize),
) {
    let alpha = if accumulate { 1.0 } else { 0.0 };
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs,
        accumulate,
        lhs,
        lhs_cs,
        lhs_rs,
        rhs,
        rhs_cs,
        rhs_rs,
        alpha,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// A 1-D convolution with "same" padding.
#[derive(Debug, Clone)]
pub struct Conv {
    c_in: usize,
    c_out: usize,
    k: usize,
    dilation: usize,
    /// `[c_out][c_in·k]` (PyTorch's layout is already this).
    w: Vec<f32>,
    bias: Vec<f32>,
}

impl Conv {
    pub fn load(weights: &OnnxWeights, prefix: &str) -> Option<Self> {
        let w: &Weight = weights.get(&format!("{prefix}.weight"))?;
        let [c_out, c_in, k] = w.shape[..] else {
            return None;
        };
        let dilation = weights
            .convs
            .get(&format!("{prefix}.weight"))
            .map_or(1, |a| a.dilation);
        let bias = weights
            .get(&format!("{prefix}.bias"))
            .map_or_else(|| vec![0.0; c_out], |b| b.values.clone());
        Some(Self {
            c_in,
            c_out,
            k,
            dilation,
            w: w.values.clone(),
            bias,
        })
    }

    /// `residual + bias + conv(pre(x))`, or `bias + conv(pre(x))` without a residual.
    pub fn forward(&self, x: &Act, pre: Pre, residual: Option<&Act>) -> Act {
        assert_eq!(x.c, self.c_in, "conv input channels");
        let t = x.t;
        let mut y = match residual {
            Some(r) => {
                assert_eq!((r.c, r.t), (self.c_out, t));
                r.data.clone()
            }
            None => vec![0.0; self.c_out * t],
        };
        for (o, row) in y.chunks_exact_mut(t.max(1)).enumerate() {
            let b = self.bias[o];
            if b != 0.0 {
                row.iter_mut().for_each(|v| *v += b);
            }
        }
        let rows = self.c_in * self.k;
        // Small enough for L2, and enough tiles to keep every thread busy on short inputs.
        let per_thread = t
            .div_ceil(4 * rayon::current_num_threads())
            .next_multiple_of(16);
        let tile = (BLOCK_FLOATS / rows).min(per_thread).clamp(32, 4096) / 16 * 16;
        let pl = self.dilation * (self.k - 1) / 2;
        let out = OutPtr(y.as_mut_ptr());
        let direct = self.k == 1 && pre == Pre::None;
        (0..t.div_ceil(tile)).into_par_iter().for_each_init(
            || vec![0f32; rows * tile],
            |col, ti| {
                let t0 = ti * tile;
                let n = tile.min(t - t0);
                let (rhs, rhs_rs): (*const f32, isize) = if direct {
                    (x.data[t0..].as_ptr(), t as isize)
                } else {
                    for i in 0..self.c_in {
                        let src = &x.data[i * t..(i + 1) * t];
                        for j in 0..self.k {
                            let dst = &mut col[(i * self.k + j) * n..(i * self.k + j + 1) * n];
                            // Input position of column 0 for this tap; columns before `lo` and
                            // from `hi` on read the zero padding.
                            let start = t0 as isize + (j * self.dilation) as isize - pl as isize;
                            let lo = (-start).clamp(0, n as isize) as usize;
                            let hi = (t as isize - start).clamp(lo as isize, n as isize) as usize;
                            dst[..lo].fill(0.0);
                            dst[hi..].fill(0.0);
                            if hi == lo {
                                continue;
                            }
                            let from = (start + lo as isize) as usize;
                            let s = &src[from..from + (hi - lo)];
                            match pre {
                                Pre::None => dst[lo..hi].copy_from_slice(s),
                                Pre::Leaky(k) => {
                                    for (d, &v) in dst[lo..hi].iter_mut().zip(s) {
                                        *d = v.max(v * k);
                                    }
                                }
                            }
                        }
                    }
                    (col.as_ptr(), n as isize)
                };
                // SAFETY: every tile writes only its own columns [t0, t0+n) of `y`; the pointers
                // and strides describe in-bounds matrices (c_out × n, c_out × rows, rows × n).
                unsafe {
                    matmul(
                        (self.c_out, n, rows),
                        (out.at(t0), t as isize, true),
                        (self.w.as_ptr(), 1, rows as isize),
                        (rhs, 1, rhs_rs),
                    );
                }
            },
        );
        Act {
            c: self.c_out,
            t,
            data: y,
        }
    }
}

/// A transposed convolution (upsampling by `stride`).
#[derive(Debug, Clone)]
pub struct ConvTranspose {
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    /// `[c_out·k][c_in]`.
    wt: Vec<f32>,
    bias: Vec<f32>,
}

impl ConvTranspose {
    pub fn load(weights: &OnnxWeights, prefix: &str) -> Option<Self> {
        let w = weights.get(&format!("{prefix}.weight"))?;
        let [c_in, c_out, k] = w.shape[..] else {
            return None;
        };
        let attrs = weights.convs.get(&format!("{prefix}.weight"));
        let stride = attrs.map_or(k / 2, |a| a.stride).max(1);
        let pad = attrs.map_or((k - stride) / 2, |a| a.pad);
        let mut wt = vec![0.0; c_in * c_out * k];
        for i in 0..c_in {
            for r in 0..c_out * k {
                wt[r * c_in + i] = w.values[i * c_out * k + r];
            }
        }
        let bias = weights
            .get(&format!("{prefix}.bias"))
            .map_or_else(|| vec![0.0; c_out], |b| b.values.clone());
        Some(Self {
            c_in,
            c_out,
            k,
            stride,
            pad,
            wt,
            bias,
        })
    }

    pub fn forward(&self, x: &Act, pre: Pre) -> Act {
        assert_eq!(x.c, self.c_in, "transposed conv input channels");
        let t = x.t;
        let rows = self.c_out * self.k;
        // Columns: z[o·k + j][t] = Σ_i w[i][o][j] · pre(x[i][t]).
        let xin: Vec<f32> = x.data.iter().map(|&v| pre.apply(v)).collect();
        let mut z = vec![0f32; rows * t];
        let tile = 256usize;
        let zp = OutPtr(z.as_mut_ptr());
        (0..t.div_ceil(tile)).into_par_iter().for_each(|ti| {
            let t0 = ti * tile;
            let n = tile.min(t - t0);
            // SAFETY: disjoint column blocks of `z`; in-bounds strides.
            unsafe {
                matmul(
                    (rows, n, self.c_in),
                    (zp.at(t0), t as isize, false),
                    (self.wt.as_ptr(), 1, self.c_in as isize),
                    (xin[t0..].as_ptr(), 1, t as isize),
                );
            }
        });
        // col2im: y[o][t·s + j − p] += z[o·k + j][t], one output channel per task.
        let len = ((t - 1) * self.stride + self.k).saturating_sub(2 * self.pad);
        let mut y = vec![0f32; self.c_out * len];
        y.par_chunks_exact_mut(len.max(1))
            .enumerate()
            .for_each(|(o, row)| {
                row.fill(self.bias[o]);
                let (s, pad) = (self.stride, self.pad);
                for j in 0..self.k {
                    let zr = &z[(o * self.k + j) * t..(o * self.k + j + 1) * t];
                    // Inputs ti land at ti·s + j − pad; keep those inside [0, len).
                    let first = pad.saturating_sub(j).div_ceil(s);
                    let end = (len + pad).saturating_sub(j).div_ceil(s).min(t);
                    for ti in first..end {
                        row[ti * s + j - pad] += zr[ti];
                    }
                }
            });
        Act {
            c: self.c_out,
            t: len,
            data: y,
        }
    }
}

/// Layer norm over channels, per time step (`gamma`, `beta`: `[C]`).
fn layer_norm(x: &mut Act, gamma: &[f32], beta: &[f32]) {
    let (c, t) = (x.c, x.t);
    let mut mean = vec![0f32; t];
    let mut sq = vec![0f32; t];
    for row in x.data.chunks_exact(t) {
        for ((m, s), &v) in mean.iter_mut().zip(sq.iter_mut()).zip(row) {
            *m += v;
            *s += v * v;
        }
    }
    let inv_c = 1.0 / c as f32;
    let inv: Vec<f32> = mean
        .iter_mut()
        .zip(&sq)
        .map(|(m, &s)| {
            *m *= inv_c;
            let var = (s * inv_c - *m * *m).max(0.0);
            1.0 / (var + 1e-5).sqrt()
        })
        .collect();
    for (ci, row) in x.data.chunks_exact_mut(t).enumerate() {
        let (g, b) = (gamma[ci], beta[ci]);
        for ((v, &m), &iv) in row.iter_mut().zip(&mean).zip(&inv) {
            *v = (*v - m) * iv * g + b;
        }
    }
}

/// One layer of the text encoder.
#[derive(Debug, Clone)]
struct EncoderLayer {
    q: Conv,
    k: Conv,
    v: Conv,
    o: Conv,
    /// `[2·window + 1][head_dim]`, shared by the heads.
    rel_k: Vec<f32>,
    rel_v: Vec<f32>,
    norm1: (Vec<f32>, Vec<f32>),
    ffn1: Conv,
    ffn2: Conv,
    norm2: (Vec<f32>, Vec<f32>),
}

/// VITS's text encoder on host buffers: embeddings, relative-position self-attention and
/// convolutional feed-forward layers, and the prior's statistics.
#[derive(Debug, Clone)]
pub struct HostEncoder {
    emb: Vec<f32>,
    n_symbols: usize,
    hidden: usize,
    heads: usize,
    window: usize,
    layers: Vec<EncoderLayer>,
    proj: Conv,
}

impl HostEncoder {
    pub fn load(w: &OnnxWeights, heads: usize, window: usize) -> Option<Self> {
        let emb = w.get("enc_p.emb.weight")?;
        let [n_symbols, hidden] = emb.shape[..] else {
            return None;
        };
        let pair = |p: &str| -> Option<(Vec<f32>, Vec<f32>)> {
            Some((
                w.get(&format!("{p}.gamma"))?.values.clone(),
                w.get(&format!("{p}.beta"))?.values.clone(),
            ))
        };
        let mut layers = Vec::new();
        for i in 0.. {
            let a = format!("enc_p.encoder.attn_layers.{i}");
            if w.get(&format!("{a}.conv_q.weight")).is_none() {
                break;
            }
            let f = format!("enc_p.encoder.ffn_layers.{i}");
            layers.push(EncoderLayer {
                q: Conv::load(w, &format!("{a}.conv_q"))?,
                k: Conv::load(w, &format!("{a}.conv_k"))?,
                v: Conv::load(w, &format!("{a}.conv_v"))?,
                o: Conv::load(w, &format!("{a}.conv_o"))?,
                rel_k: w.get(&format!("{a}.emb_rel_k"))?.values.clone(),
                rel_v: w.get(&format!("{a}.emb_rel_v"))?.values.clone(),
                norm1: pair(&format!("enc_p.encoder.norm_layers_1.{i}"))?,
                ffn1: Conv::load(w, &format!("{f}.conv_1"))?,
                ffn2: Conv::load(w, &format!("{f}.conv_2"))?,
                norm2: pair(&format!("enc_p.encoder.norm_layers_2.{i}"))?,
            });
        }
        Some(Self {
            emb: emb.values.clone(),
            n_symbols,
            hidden,
            heads,
            window,
            layers,
            proj: Conv::load(w, "enc_p.proj")?,
        })
    }

    /// Hidden states `[H][T]` and the prior's statistics `[2·C][T]` (means, then log-scales).
    pub fn forward(&self, ids: &[i64]) -> (Act, Act) {
        let (h, t) = (self.hidden, ids.len());
        let scale = (h as f32).sqrt();
        let mut x = Act::zeros(h, t);
        for (ti, &id) in ids.iter().enumerate() {
            let id = (id.max(0) as usize).min(self.n_symbols - 1);
            for c in 0..h {
                x.data[c * t + ti] = self.emb[id * h + c] * scale;
            }
        }
        for l in &self.layers {
            let y = self.attention(l, &x);
            let mut sum = l.o.forward(&y, Pre::None, Some(&x));
            layer_norm(&mut sum, &l.norm1.0, &l.norm1.1);
            x = sum;
            let f = l.ffn1.forward(&x, Pre::None, None);
            // ReLU between the two convolutions, applied as the second one reads its input.
            let mut sum = l.ffn2.forward(&f, Pre::Leaky(0.0), Some(&x));
            layer_norm(&mut sum, &l.norm2.0, &l.norm2.1);
            x = sum;
        }
        let stats = self.proj.forward(&x, Pre::None, None);
        (x, stats)
    }

    /// Multi-head attention with relative keys and values; returns the heads' outputs `[H][T]`
    /// (before `conv_o`).
    fn attention(&self, l: &EncoderLayer, x: &Act) -> Act {
        let t = x.t;
        let dk = self.hidden / self.heads;
        let w = self.window;
        let inv = 1.0 / (dk as f32).sqrt();
        let mut q = l.q.forward(x, Pre::None, None);
        q.data.iter_mut().for_each(|v| *v *= inv);
        let k = l.k.forward(x, Pre::None, None);
        let v = l.v.forward(x, Pre::None, None);
        let mut out = Act::zeros(self.hidden, t);
        let outp = OutPtr(out.data.as_mut_ptr());
        (0..self.heads).into_par_iter().for_each(|hd| {
            let base = hd * dk * t;
            let (qh, kh, vh) = (&q.data[base..], &k.data[base..], &v.data[base..]);
            // scores[i][j] = Σ_d q[d][i] k[d][j]
            let mut s = vec![0f32; t * t];
            // SAFETY: in-bounds strided views of q, k ([dk][T]) and s ([T][T]).
            unsafe {
                matmul(
                    (t, t, dk),
                    (s.as_mut_ptr(), t as isize, false),
                    (qh.as_ptr(), t as isize, 1),
                    (kh.as_ptr(), 1, t as isize),
                );
            }
            for i in 0..t {
                let row = &mut s[i * t..(i + 1) * t];
                let lo = i.saturating_sub(w);
                let hi = (i + w).min(t - 1);
                for (j, sj) in row.iter_mut().enumerate().take(hi + 1).skip(lo) {
                    let r = &l.rel_k[(j + w - i) * dk..(j + w - i + 1) * dk];
                    let mut acc = 0.0;
                    for (d, &rv) in r.iter().enumerate() {
                        acc += qh[d * t + i] * rv;
                    }
                    *sj += acc;
                }
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for v in row.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|v| *v *= inv);
            }
            // out[d][i] = Σ_j v[d][j] p[i][j]
            // SAFETY: each head writes its own rows [hd·dk, (hd+1)·dk) of `out`.
            unsafe {
                matmul(
                    (dk, t, t),
                    (outp.at(base), t as isize, false),
                    (vh.as_ptr(), 1, t as isize),
                    (s.as_ptr(), t as isize, 1),
                );
                for i in 0..t {
                    let lo = i.saturating_sub(w);
                    let hi = (i + w).min(t - 1);
                    for j in lo..=hi {
                        let p = s[i * t + j];
                        let r = &l.rel_v[(j + w - i) * dk..(j + w - i + 1) * dk];
                        for (d, &rv) in r.iter().enumerate() {
                            *outp.at(base + d * t + i) += p * rv;
                        }
                    }
                }
            }
        });
        out
    }
}

/// One mean-only coupling layer of the flow.
#[derive(Debug, Clone)]
struct Coupling {
    pre: Conv,
    in_layers: Vec<Conv>,
    res_skip: Vec<Conv>,
    cond: Option<Conv>,
    post: Conv,
}

/// HiFi-GAN residual block.
#[derive(Debug, Clone)]
enum ResBlock {
    /// ResBlock1: pairs (dilated conv, plain conv).
    One(Vec<(Conv, Conv)>),
    /// ResBlock2: single dilated convs.
    Two(Vec<Conv>),
}

/// Flow and decoder weights on the host.
#[derive(Debug, Clone)]
pub struct CpuVits {
    pub encoder: HostEncoder,
    flows: Vec<Coupling>,
    conv_pre: Conv,
    cond: Option<Conv>,
    ups: Vec<ConvTranspose>,
    resblocks: Vec<ResBlock>,
    conv_post: Conv,
}

const LRELU: f32 = 0.1;
const LRELU_POST: f32 = 0.01;

impl CpuVits {
    /// None when a module is missing (the voice was checked on open, so this is a bug guard).
    pub fn load(w: &OnnxWeights, dims: &super::VitsDims) -> Option<Self> {
        let (flows, ups, kernels) = (
            dims.flows,
            dims.upsample_rates.len(),
            dims.resblock_kernels.len(),
        );
        let mut fl = Vec::new();
        for f in 0..flows {
            let p = format!("flow.flows.{}", 2 * f);
            let layers = (0..)
                .take_while(|i| w.get(&format!("{p}.enc.in_layers.{i}.weight")).is_some())
                .count();
            fl.push(Coupling {
                pre: Conv::load(w, &format!("{p}.pre"))?,
                in_layers: (0..layers)
                    .map(|i| Conv::load(w, &format!("{p}.enc.in_layers.{i}")))
                    .collect::<Option<_>>()?,
                res_skip: (0..layers)
                    .map(|i| Conv::load(w, &format!("{p}.enc.res_skip_layers.{i}")))
                    .collect::<Option<_>>()?,
                cond: Conv::load(w, &format!("{p}.enc.cond_layer")),
                post: Conv::load(w, &format!("{p}.post"))?,
            });
        }
        let mut resblocks = Vec::new();
        for r in 0..ups * kernels {
            let p = format!("dec.resblocks.{r}");
            let block = if w.get(&format!("{p}.convs1.0.weight")).is_some() {
                let n = (0..)
                    .take_while(|i| w.get(&format!("{p}.convs1.{i}.weight")).is_some())
                    .count();
                ResBlock::One(
                    (0..n)
                        .map(|i| {
                            Some((
                                Conv::load(w, &format!("{p}.convs1.{i}"))?,
                                Conv::load(w, &format!("{p}.convs2.{i}"))?,
                            ))
                        })
                        .collect::<Option<_>>()?,
                )
            } else {
                let n = (0..)
                    .take_while(|i| w.get(&format!("{p}.convs.{i}.weight")).is_some())
                    .count();
                ResBlock::Two(
                    (0..n)
                        .map(|i| Conv::load(w, &format!("{p}.convs.{i}")))
                        .collect::<Option<_>>()?,
                )
            };
            resblocks.push(block);
        }
        let mut ups: Vec<ConvTranspose> = (0..ups)
            .map(|i| ConvTranspose::load(w, &format!("dec.ups.{i}")))
            .collect::<Option<_>>()?;
        let mut conv_post = Conv::load(w, "dec.conv_post")?;
        // The decoder averages its residual blocks (sum / kernels) and the next layer starts
        // with a LeakyReLU, which commutes with a positive scale: the 1/kernels goes into
        // the next layer's weights instead of a pass over the activations.
        let inv = 1.0 / kernels.max(1) as f32;
        for up in ups.iter_mut().skip(1) {
            up.wt.iter_mut().for_each(|v| *v *= inv);
        }
        conv_post.w.iter_mut().for_each(|v| *v *= inv);
        Some(Self {
            encoder: HostEncoder::load(w, dims.n_heads, dims.window)?,
            flows: fl,
            conv_pre: Conv::load(w, "dec.conv_pre")?,
            cond: Conv::load(w, "dec.cond"),
            ups,
            resblocks,
            conv_post,
        })
    }

    /// `cond(g)` for a speaker embedding `g` (`[gin]`): one value per output channel.
    fn cond_of(conv: &Conv, g: &[f32]) -> Vec<f32> {
        let ga = Act {
            c: g.len(),
            t: 1,
            data: g.to_vec(),
        };
        conv.forward(&ga, Pre::None, None).data
    }

    /// `x + cond(g)` per channel (a speaker's offset).
    fn add_cond(conv: &Conv, g: &[f32], x: &mut Act) {
        let off = Self::cond_of(conv, g);
        for (row, &b) in x.data.chunks_exact_mut(x.t.max(1)).zip(&off) {
            row.iter_mut().for_each(|v| *v += b);
        }
    }

    /// The flow backwards: prior sample `[C][frames]` → latent.
    pub fn flow_reverse(&self, mut x: Act, g: Option<&[f32]>) -> Act {
        let half = x.c / 2;
        for f in self.flows.iter().rev() {
            flip(&mut x);
            let x0 = Act {
                c: half,
                t: x.t,
                data: x.rows(0, half).to_vec(),
            };
            let mut h = f.pre.forward(&x0, Pre::None, None);
            let hidden = h.c;
            let cond = match (&f.cond, g) {
                (Some(c), Some(g)) => Some(Self::cond_of(c, g)),
                _ => None,
            };
            let mut out = Act::zeros(hidden, x.t);
            let layers = f.in_layers.len();
            for i in 0..layers {
                let x_in = f.in_layers[i].forward(&h, Pre::None, None);
                let t = x.t;
                let mut acts = Act::zeros(hidden, t);
                acts.data
                    .par_chunks_exact_mut(t.max(1))
                    .enumerate()
                    .for_each(|(c, row)| {
                        let (ca, cb) = match &cond {
                            Some(g) => (g[i * 2 * hidden + c], g[i * 2 * hidden + hidden + c]),
                            None => (0.0, 0.0),
                        };
                        let a = &x_in.data[c * t..(c + 1) * t];
                        let b = &x_in.data[(hidden + c) * t..(hidden + c + 1) * t];
                        for ((d, &a), &b) in row.iter_mut().zip(a).zip(b) {
                            let s = 1.0 / (1.0 + (-(b + cb)).exp());
                            *d = (a + ca).tanh() * s;
                        }
                    });
                let rs = f.res_skip[i].forward(&acts, Pre::None, None);
                if i + 1 < layers {
                    for (d, s) in h.data.iter_mut().zip(rs.rows(0, hidden)) {
                        *d += s;
                    }
                    for (d, s) in out.data.iter_mut().zip(rs.rows(hidden, hidden)) {
                        *d += s;
                    }
                } else {
                    for (d, s) in out.data.iter_mut().zip(&rs.data) {
                        *d += s;
                    }
                }
            }
            let m = f.post.forward(&out, Pre::None, None);
            for (d, s) in x.data[half * x.t..].iter_mut().zip(&m.data) {
                *d -= s;
            }
        }
        x
    }

    /// HiFi-GAN: latent `[C][frames]` → samples.
    pub fn decode(&self, z: &Act, g: Option<&[f32]>) -> Vec<f32> {
        let mut x = self.conv_pre.forward(z, Pre::None, None);
        if let (Some(c), Some(g)) = (&self.cond, g) {
            Self::add_cond(c, g, &mut x);
        }
        let kernels = self.resblocks.len() / self.ups.len().max(1);
        for (i, up) in self.ups.iter().enumerate() {
            x = up.forward(&x, Pre::Leaky(LRELU));
            let mut sum: Option<Act> = None;
            for rb in &self.resblocks[i * kernels..(i + 1) * kernels] {
                let y = rb.forward(&x);
                sum = Some(match sum {
                    None => y,
                    Some(mut s) => {
                        s.data
                            .par_chunks_mut(1 << 14)
                            .zip(y.data.par_chunks(1 << 14))
                            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
                        s
                    }
                });
            }
            // Not divided by `kernels`: that scale is folded into the next layer's weights.
            x = sum.expect("kernels ≥ 1");
        }
        let mut y = self
            .conv_post
            .forward(&x, Pre::Leaky(LRELU_POST), None)
            .data;
        y.par_chunks_mut(1 << 14)
            .for_each(|c| c.iter_mut().for_each(|v| *v = v.tanh()));
        y
    }
}

impl ResBlock {
    fn forward(&self, x: &Act) -> Act {
        match self {
            ResBlock::Two(convs) => {
                let mut y = convs[0].forward(x, Pre::Leaky(LRELU), Some(x));
                for c in &convs[1..] {
                    y = c.forward(&y, Pre::Leaky(LRELU), Some(&y));
                }
                y
            }
            ResBlock::One(pairs) => {
                let mut y: Option<Act> = None;
                for (c1, c2) in pairs {
                    let cur = y.as_ref().unwrap_or(x);
                    let h = c1.forward(cur, Pre::Leaky(LRELU), None);
                    y = Some(c2.forward(&h, Pre::Leaky(LRELU), Some(cur)));
                }
                y.unwrap_or_else(|| x.clone())
            }
        }
    }
}

/// Reverses the channel order (VITS's `Flip`).
fn flip(x: &mut Act) {
    let t = x.t;
    let c = x.c;
    for i in 0..c / 2 {
        let (a, b) = x.data.split_at_mut((c - 1 - i) * t);
        a[i * t..(i + 1) * t].swap_with_slice(&mut b[..t]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution, for checking the tiled GEMM one.
    fn naive(c: &Conv, x: &Act, pre: Pre) -> Vec<f32> {
        let pl = c.dilation * (c.k - 1) / 2;
        let mut y = vec![0.0; c.c_out * x.t];
        for o in 0..c.c_out {
            for t in 0..x.t {
                let mut s = c.bias[o];
                for i in 0..c.c_in {
                    for j in 0..c.k {
                        let p = t as isize + (j * c.dilation) as isize - pl as isize;
                        if p >= 0 && (p as usize) < x.t {
                            s += c.w[o * c.c_in * c.k + i * c.k + j]
                                * pre.apply(x.data[i * x.t + p as usize]);
                        }
                    }
                }
                y[o * x.t + t] = s;
            }
        }
        y
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn tiled_convolutions_equal_the_direct_formula() {
        for (c_in, c_out, k, dil, t) in [
            (3, 4, 3, 1, 50),
            (5, 2, 5, 3, 700),
            (8, 8, 1, 1, 33),
            (2, 3, 7, 12, 5000),
        ] {
            let conv = Conv {
                c_in,
                c_out,
                k,
                dilation: dil,
                w: pseudo(c_out * c_in * k, 1),
                bias: pseudo(c_out, 2),
            };
            let x = Act {
                c: c_in,
                t,
                data: pseudo(c_in * t, 3),
            };
            for pre in [Pre::None, Pre::Leaky(0.1)] {
                let got = conv.forward(&x, pre, None).data;
                let want = naive(&conv, &x, pre);
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(err < 1e-4, "{c_in}x{c_out} k{k} d{dil} t{t}: {err}");
            }
            let r = Act {
                c: c_out,
                t,
                data: pseudo(c_out * t, 4),
            };
            let got = conv.forward(&x, Pre::None, Some(&r)).data;
            let want: Vec<f32> = naive(&conv, &x, Pre::None)
                .iter()
                .zip(&r.data)
                .map(|(a, b)| a + b)
                .collect();
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-4);
        }
    }

    #[test]
    fn transposed_convolutions_equal_the_direct_formula() {
        for (c_in, c_out, k, s, pad, t) in [
            (4, 3, 16, 8, 4, 1),
            (4, 3, 16, 8, 4, 9),
            (3, 2, 8, 4, 2, 300),
            (2, 2, 4, 2, 1, 2),
        ] {
            let w = pseudo(c_in * c_out * k, 5);
            let conv = ConvTranspose {
                c_in,
                c_out,
                k,
                stride: s,
                pad,
                wt: {
                    let mut wt = vec![0.0; c_in * c_out * k];
                    for i in 0..c_in {
                        for r in 0..c_out * k {
                            wt[r * c_in + i] = w[i * c_out * k + r];
                        }
                    }
                    wt
                },
                bias: pseudo(c_out, 6),
            };
            let x = Act {
                c: c_in,
                t,
                data: pseudo(c_in * t, 7),
            };
            let got = conv.forward(&x, Pre::Leaky(0.1));
            let len = (t - 1) * s + k - 2 * pad;
            assert_eq!(got.t, len);
            for o in 0..c_out {
                for n in 0..len {
                    let mut want = conv.bias[o];
                    for i in 0..c_in {
                        for ti in 0..t {
                            for j in 0..k {
                                if ti * s + j == n + pad {
                                    want += w[i * c_out * k + o * k + j]
                                        * Pre::Leaky(0.1).apply(x.data[i * t + ti]);
                                }
                            }
                        }
                    }
                    assert!(
                        (got.data[o * len + n] - want).abs() < 1e-4,
                        "k{k} s{s} t{t} o{o} n{n}"
                    );
                }
            }
        }
    }

    #[test]
    fn flip_reverses_channels() {
        let mut x = Act {
            c: 3,
            t: 2,
            data: vec![1., 2., 3., 4., 5., 6.],
        };
        flip(&mut x);
        assert_eq!(x.data, [5., 6., 3., 4., 1., 2.]);
    }
}
