//! The engine's own CPU forward pass for llama / qwen2 / qwen3 / gemma3 GGUF models.
//!
//! Everything lives in plain `Vec<f32>` buffers that are reused between
//! steps: no tensors are allocated per token, the KV cache is preallocated and
//! written in place, matrix products run on the quantized weights directly
//! (see [`super::quant`]) and every parallel region goes through one
//! persistent [`ThreadPool`].

use std::cell::RefCell;
use std::io::{Read, Seek};

use candle_core::quantized::gguf_file;
use candle_core::Device;

use super::pool::ThreadPool;
use super::quant::{matmul, matmul_many, MatJob, Q8Acts, QMatrix};
use super::simd;
use crate::llm::config::{Arch, ModelConfig};
use crate::llm::{LlmError, Result};

/// Longest batch processed in one forward call; longer prompts are split.
const MAX_BATCH: usize = 128;

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    w_gate: QMatrix,
    w_up: QMatrix,
    w_down: QMatrix,
    /// Gemma: norms of the attention and feed-forward outputs, before the residual add.
    post_attn_norm: Option<Vec<f32>>,
    post_ffn_norm: Option<Vec<f32>>,
    /// Keys this layer sees (sliding-window layers), and whether it uses the local RoPE base.
    window: Option<usize>,
}

/// Reusable per-step buffers.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    q8: Q8Acts,
    cos: Vec<f32>,
    sin: Vec<f32>,
    cos_local: Vec<f32>,
    sin_local: Vec<f32>,
}

/// A loaded model with its KV cache, running on the CPU.
pub struct CpuModel {
    cfg: ModelConfig,
    embed: QMatrix,
    output: Option<QMatrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    /// Per rotated pair: inverse frequency (already divided by any
    /// `rope_freqs` factor).
    inv_freq: Vec<f32>,
    /// The same for sliding-window layers (Gemma-3's local base).
    inv_freq_local: Vec<f32>,
    max_ctx: usize,
    k_cache: Vec<f32>,
    v_cache: Vec<f32>,
    pos: usize,
    pool: ThreadPool,
    s: Scratch,
}

impl std::fmt::Debug for CpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuModel")
            .field("cfg", &self.cfg)
            .field("max_ctx", &self.max_ctx)
            .field("pos", &self.pos)
            .field("threads", &self.pool.threads())
            .finish()
    }
}

fn read_matrix<R: Read + Seek>(
    content: &gguf_file::Content,
    r: &mut R,
    name: &str,
) -> Result<QMatrix> {
    let t = content
        .tensor(r, name, &Device::Cpu)
        .map_err(|e| LlmError::Format(format!("tensor {name}: {e}")))?;
    QMatrix::from_qtensor(&t)
}

fn read_vec<R: Read + Seek>(
    content: &gguf_file::Content,
    r: &mut R,
    name: &str,
) -> Result<Vec<f32>> {
    let m = read_matrix(content, r, name)?;
    Ok(m.dequantize())
}

fn read_opt_vec<R: Read + Seek>(
    content: &gguf_file::Content,
    r: &mut R,
    name: &str,
) -> Result<Option<Vec<f32>>> {
    if content.tensor_infos.contains_key(name) {
        read_vec(content, r, name).map(Some)
    } else {
        Ok(None)
    }
}

impl CpuModel {
    /// Loads the weights of a llama / qwen2 / qwen3 / gemma3 GGUF file.
    ///
    /// `max_ctx` caps the KV cache (tokens); `threads` sizes the thread pool.
    pub fn load<R: Read + Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        max_ctx: usize,
        threads: usize,
    ) -> Result<Self> {
        let cfg = ModelConfig::from_gguf(content)?;
        if !matches!(
            cfg.arch,
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma3
        ) {
            return Err(LlmError::Unsupported(format!(
                "{:?} has no native CPU forward pass",
                cfg.arch
            )));
        }
        if cfg.rope_dim % 2 != 0 || cfg.head_dim == 0 || cfg.n_heads % cfg.n_kv_heads != 0 {
            return Err(LlmError::Format(format!(
                "inconsistent attention shape: {cfg:?}"
            )));
        }
        let embed = read_matrix(content, reader, "token_embd.weight")?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(read_matrix(content, reader, "output.weight")?)
        } else {
            None
        };
        let output_norm = read_vec(content, reader, "output_norm.weight")?;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: read_vec(content, reader, &n("attn_norm.weight"))?,
                wq: read_matrix(content, reader, &n("attn_q.weight"))?,
                wk: read_matrix(content, reader, &n("attn_k.weight"))?,
                wv: read_matrix(content, reader, &n("attn_v.weight"))?,
                bq: read_opt_vec(content, reader, &n("attn_q.bias"))?,
                bk: read_opt_vec(content, reader, &n("attn_k.bias"))?,
                bv: read_opt_vec(content, reader, &n("attn_v.bias"))?,
                q_norm: read_opt_vec(content, reader, &n("attn_q_norm.weight"))?,
                k_norm: read_opt_vec(content, reader, &n("attn_k_norm.weight"))?,
                wo: read_matrix(content, reader, &n("attn_output.weight"))?,
                ffn_norm: read_vec(content, reader, &n("ffn_norm.weight"))?,
                w_gate: read_matrix(content, reader, &n("ffn_gate.weight"))?,
                w_up: read_matrix(content, reader, &n("ffn_up.weight"))?,
                w_down: read_matrix(content, reader, &n("ffn_down.weight"))?,
                post_attn_norm: read_opt_vec(content, reader, &n("post_attention_norm.weight"))?,
                post_ffn_norm: read_opt_vec(content, reader, &n("post_ffw_norm.weight"))?,
                window: cfg
                    .sliding_window
                    .filter(|_| (i + 1) % cfg.sliding_pattern.max(1) != 0),
            });
        }
        let half = cfg.rope_dim / 2;
        let factors = read_opt_vec(content, reader, "rope_freqs.weight")?;
        let inv_freq_of = |theta: f32| -> Vec<f32> {
            (0..half)
                .map(|i| {
                    let f = 1.0 / (theta as f64).powf(2.0 * i as f64 / cfg.rope_dim as f64);
                    let factor = factors
                        .as_ref()
                        .and_then(|v| v.get(i))
                        .copied()
                        .unwrap_or(1.0) as f64;
                    (f / factor) as f32
                })
                .collect()
        };
        let inv_freq = inv_freq_of(cfg.rope_theta);
        let inv_freq_local = inv_freq_of(cfg.rope_theta_local);
        let max_ctx = max_ctx.clamp(1, cfg.context_length.max(1));
        let cache_len = cfg.n_layers * cfg.n_kv_heads * max_ctx * cfg.head_dim;
        Ok(Self {
            embed,
            output,
            output_norm,
            layers,
            inv_freq,
            inv_freq_local,
            max_ctx,
            k_cache: vec![0.0; cache_len],
            v_cache: vec![0.0; cache_len],
            pos: 0,
            pool: ThreadPool::new(threads.max(1)),
            s: Scratch::default(),
            cfg,
        })
    }

    /// Model hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Tokens currently held in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// KV cache capacity in tokens.
    pub fn max_context(&self) -> usize {
        self.max_ctx
    }

    /// Threads used by the forward pass.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Routes every matrix product through candle's portable per-block dot
    /// products instead of the AVX2 kernels (for cross-checking them).
    pub fn set_portable_kernels(&mut self, portable: bool) {
        let mut all: Vec<&mut QMatrix> = vec![&mut self.embed];
        if let Some(o) = self.output.as_mut() {
            all.push(o);
        }
        for l in &mut self.layers {
            all.extend([
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ]);
        }
        for m in all {
            m.set_portable(portable);
        }
    }

    /// Forgets the KV cache (start of a new conversation).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Drops cached tokens after the first `pos` (to reuse a common prefix).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Feeds `tokens` at the current position and writes the logits of the
    /// last one into `logits` (resized to the vocabulary size).
    pub fn forward(&mut self, tokens: &[u32], logits: &mut Vec<f32>) -> Result<()> {
        if tokens.is_empty() {
            return Err(LlmError::Generation("empty input".into()));
        }
        if self.pos + tokens.len() > self.max_ctx {
            return Err(LlmError::ContextFull {
                needed: self.pos + tokens.len(),
                capacity: self.max_ctx,
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
            return Err(LlmError::Generation(format!("token id {bad} out of range")));
        }
        for chunk in tokens.chunks(MAX_BATCH) {
            self.forward_batch(chunk);
        }
        let last_batch = (tokens.len() - 1) % MAX_BATCH + 1;
        self.logits_last(last_batch, logits);
        Ok(())
    }

    /// Runs the transformer blocks over one batch, leaving the final hidden
    /// states in `s.x`.
    fn forward_batch(&mut self, tokens: &[u32]) {
        let cfg = &self.cfg;
        let n = tokens.len();
        let (dim, hd) = (cfg.dim, cfg.head_dim);
        let q_dim = cfg.n_heads * hd;
        let kv_dim = cfg.n_kv_heads * hd;
        let s = &mut self.s;
        s.x.resize(n * dim, 0.0);
        s.xn.resize(n * dim, 0.0);
        s.q.resize(n * q_dim, 0.0);
        s.k.resize(n * kv_dim, 0.0);
        s.v.resize(n * kv_dim, 0.0);
        s.attn.resize(n * q_dim, 0.0);
        s.proj.resize(n * dim, 0.0);
        s.gate.resize(n * cfg.ffn_dim, 0.0);
        s.up.resize(n * cfg.ffn_dim, 0.0);
        let gemma = cfg.arch == Arch::Gemma3;
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &mut s.x[t * dim..(t + 1) * dim];
            self.embed.dequantize_row(tok as usize, row);
            if gemma {
                // Gemma scales its embeddings by √dim.
                let scale = (dim as f32).sqrt();
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        // RoPE angles for this batch (and for sliding-window layers, when their base differs).
        let half = cfg.rope_dim / 2;
        let angles = |inv: &[f32], cos: &mut Vec<f32>, sin: &mut Vec<f32>| {
            cos.resize(n * half, 0.0);
            sin.resize(n * half, 0.0);
            for t in 0..n {
                let p = (self.pos + t) as f32;
                for (i, f) in inv.iter().enumerate() {
                    let (sn, cs) = (p * f).sin_cos();
                    cos[t * half + i] = cs;
                    sin[t * half + i] = sn;
                }
            }
        };
        angles(&self.inv_freq, &mut s.cos, &mut s.sin);
        if cfg.sliding_window.is_some() {
            angles(&self.inv_freq_local, &mut s.cos_local, &mut s.sin_local);
        }
        let layer_stride = cfg.n_kv_heads * self.max_ctx * hd;
        for (li, layer) in self.layers.iter().enumerate() {
            // --- attention ---
            rms_norm(&s.x, &layer.attn_norm, cfg.rms_eps, dim, &mut s.xn);
            s.q8.quantize(&s.xn, n, dim);
            matmul_many(
                &self.pool,
                &mut [
                    MatJob {
                        w: &layer.wq,
                        out: &mut s.q,
                    },
                    MatJob {
                        w: &layer.wk,
                        out: &mut s.k,
                    },
                    MatJob {
                        w: &layer.wv,
                        out: &mut s.v,
                    },
                ],
                &s.xn,
                &s.q8,
                n,
            );
            for (buf, bias) in [
                (&mut s.q, &layer.bq),
                (&mut s.k, &layer.bk),
                (&mut s.v, &layer.bv),
            ] {
                if let Some(b) = bias {
                    for row in buf.chunks_exact_mut(b.len()) {
                        for (x, bb) in row.iter_mut().zip(b) {
                            *x += bb;
                        }
                    }
                }
            }
            if let Some(w) = &layer.q_norm {
                rms_norm_inplace(&mut s.q, w, cfg.rms_eps, hd);
            }
            if let Some(w) = &layer.k_norm {
                rms_norm_inplace(&mut s.k, w, cfg.rms_eps, hd);
            }
            let interleaved = cfg.arch.rope_interleaved();
            let (cos, sin) = if layer.window.is_some() {
                (&s.cos_local, &s.sin_local)
            } else {
                (&s.cos, &s.sin)
            };
            for t in 0..n {
                let (cs, sn) = (
                    &cos[t * half..(t + 1) * half],
                    &sin[t * half..(t + 1) * half],
                );
                for h in s.q[t * q_dim..(t + 1) * q_dim].chunks_exact_mut(hd) {
                    rope(h, cs, sn, cfg.rope_dim, interleaved);
                }
                for h in s.k[t * kv_dim..(t + 1) * kv_dim].chunks_exact_mut(hd) {
                    rope(h, cs, sn, cfg.rope_dim, interleaved);
                }
            }
            // Write K/V into the cache: layout [layer][kv_head][pos][hd].
            let base = li * layer_stride;
            for t in 0..n {
                for h in 0..cfg.n_kv_heads {
                    let dst = base + (h * self.max_ctx + self.pos + t) * hd;
                    let src = t * kv_dim + h * hd;
                    self.k_cache[dst..dst + hd].copy_from_slice(&s.k[src..src + hd]);
                    self.v_cache[dst..dst + hd].copy_from_slice(&s.v[src..src + hd]);
                }
            }
            attention(
                &self.pool,
                cfg,
                &s.q,
                &self.k_cache[base..base + layer_stride],
                &self.v_cache[base..base + layer_stride],
                self.max_ctx,
                self.pos,
                n,
                layer.window,
                &mut s.attn,
            );
            s.q8.quantize(&s.attn, n, q_dim);
            matmul(&self.pool, &layer.wo, &mut s.proj, &s.attn, &s.q8, n);
            if let Some(w) = &layer.post_attn_norm {
                rms_norm_inplace(&mut s.proj, w, cfg.rms_eps, dim);
            }
            for (x, p) in s.x.iter_mut().zip(&s.proj) {
                *x += p;
            }
            // --- feed-forward (SwiGLU; GeGLU for Gemma) ---
            rms_norm(&s.x, &layer.ffn_norm, cfg.rms_eps, dim, &mut s.xn);
            s.q8.quantize(&s.xn, n, dim);
            matmul_many(
                &self.pool,
                &mut [
                    MatJob {
                        w: &layer.w_gate,
                        out: &mut s.gate,
                    },
                    MatJob {
                        w: &layer.w_up,
                        out: &mut s.up,
                    },
                ],
                &s.xn,
                &s.q8,
                n,
            );
            if gemma {
                for (g, u) in s.gate.iter_mut().zip(&s.up) {
                    *g = gelu_tanh(*g) * u;
                }
            } else {
                for (g, u) in s.gate.iter_mut().zip(&s.up) {
                    *g = *g / (1.0 + (-*g).exp()) * u;
                }
            }
            s.q8.quantize(&s.gate, n, cfg.ffn_dim);
            matmul(&self.pool, &layer.w_down, &mut s.proj, &s.gate, &s.q8, n);
            if let Some(w) = &layer.post_ffn_norm {
                rms_norm_inplace(&mut s.proj, w, cfg.rms_eps, dim);
            }
            for (x, p) in s.x.iter_mut().zip(&s.proj) {
                *x += p;
            }
        }
        self.pos += n;
    }

    /// Final norm and LM head on the last row of the last batch (`n` rows).
    fn logits_last(&mut self, n: usize, logits: &mut Vec<f32>) {
        let dim = self.cfg.dim;
        let s = &mut self.s;
        let last = &s.x[(n - 1) * dim..n * dim];
        s.xn.resize(dim, 0.0);
        rms_norm(
            last,
            &self.output_norm,
            self.cfg.rms_eps,
            dim,
            &mut s.xn[..dim],
        );
        let head = self.output.as_ref().unwrap_or(&self.embed);
        s.q8.quantize(&s.xn[..dim], 1, dim);
        logits.resize(head.rows(), 0.0);
        matmul(&self.pool, head, logits, &s.xn[..dim], &s.q8, 1);
    }
}

/// RMS-normalises each `dim`-row of `x` into `out`, scaled by `w`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, dim: usize, out: &mut [f32]) {
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let ss = simd::dot(xr, xr) / dim as f32;
        let inv = 1.0 / (ss + eps).sqrt();
        for ((o, &v), &wi) in or.iter_mut().zip(xr).zip(w) {
            *o = v * inv * wi;
        }
    }
}

/// RMS-normalises each `dim`-chunk of `x` in place (per-head Q/K norms).
fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32, dim: usize) {
    for r in x.chunks_exact_mut(dim) {
        let ss = simd::dot(r, r) / dim as f32;
        let inv = 1.0 / (ss + eps).sqrt();
        for (v, &wi) in r.iter_mut().zip(w) {
            *v = *v * inv * wi;
        }
    }
}

/// GELU, tanh approximation (Gemma's `gelu_pytorch_tanh`).
fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // √(2/π)
    0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh())
}

/// Rotates the first `rope_dim` values of one head.
fn rope(h: &mut [f32], cos: &[f32], sin: &[f32], rope_dim: usize, interleaved: bool) {
    let half = rope_dim / 2;
    for i in 0..half {
        let (a, b) = if interleaved {
            (2 * i, 2 * i + 1)
        } else {
            (i, i + half)
        };
        let (x0, x1) = (h[a], h[b]);
        h[a] = x0 * cos[i] - x1 * sin[i];
        h[b] = x0 * sin[i] + x1 * cos[i];
    }
}

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Wrapper making a raw output pointer shareable across pool tasks.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
impl OutPtr {
    /// The wrapped pointer (a method, so closures capture the whole wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: tasks write disjoint head slices.
unsafe impl Send for OutPtr {}
// SAFETY: see above.
unsafe impl Sync for OutPtr {}

/// Causal grouped-query attention for `n` new tokens starting at `pos`; with a `window`, each
/// token sees only the last `window` keys (itself included).
#[allow(clippy::too_many_arguments)]
fn attention(
    pool: &ThreadPool,
    cfg: &ModelConfig,
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    max_ctx: usize,
    pos: usize,
    n: usize,
    window: Option<usize>,
    out: &mut [f32],
) {
    let hd = cfg.head_dim;
    let q_dim = cfg.n_heads * hd;
    let group = cfg.n_heads / cfg.n_kv_heads;
    let scale = cfg.attn_scale;
    let out_ptr = OutPtr(out.as_mut_ptr());
    pool.run(n * cfg.n_heads, &|task| {
        let (t, h) = (task / cfg.n_heads, task % cfg.n_heads);
        let kvh = h / group;
        let end = pos + t + 1;
        let first = window.map_or(0, |w| end.saturating_sub(w));
        let ctx = end - first;
        let qh = &q[t * q_dim + h * hd..t * q_dim + (h + 1) * hd];
        let kh = &k_cache[(kvh * max_ctx + first) * hd..];
        let vh = &v_cache[(kvh * max_ctx + first) * hd..];
        // SAFETY: task (t, h) alone writes this head slice of `out`.
        let o =
            unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(t * q_dim + h * hd), hd) };
        SCORES.with(|cell| {
            let mut sc = cell.borrow_mut();
            sc.resize(ctx, 0.0);
            let mut max = f32::NEG_INFINITY;
            for (j, s) in sc.iter_mut().enumerate() {
                *s = simd::dot(qh, &kh[j * hd..(j + 1) * hd]) * scale;
                max = max.max(*s);
            }
            let mut sum = 0.0;
            for s in sc.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            let inv = 1.0 / sum;
            o.fill(0.0);
            for (j, &p) in sc.iter().enumerate() {
                simd::axpy(o, p * inv, &vh[j * hd..(j + 1) * hd]);
            }
        });
    });
}
