//! The Whisper encoder–decoder transformer, on candle tensor ops.
//!
//! Weights come straight from a CTranslate2 `model.bin` (see [`super::ct2`]),
//! keeping CTranslate2's fused projections: the self-attention
//! query/key/value projection is one `[3·d, d]` matrix (`linear_0`) and the
//! cross-attention key/value projection one `[2·d, d]` matrix (`linear_1`),
//! which means one matrix product instead of three (or two). The attention
//! scale `1/√d_head` is folded into the query rows at load time.
//!
//! Batch size is always one: activations are `[time, channels]` matrices.

use candle_core::{DType, Device, IndexOp, Module, Tensor};

use super::ct2::Ct2Model;
use super::kernels::{self, HalfMatrix};
use super::WhisperError;

type CResult<T> = candle_core::Result<T>;

/// Layer-norm epsilon used by Whisper.
const LN_EPS: f32 = 1e-5;

/// Hyper-parameters read from the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelDims {
    /// Mel bands of the input (80, or 128 for large-v3).
    pub n_mels: usize,
    /// Encoder positions (1500 for a 30 s window).
    pub n_audio_ctx: usize,
    /// Encoder width.
    pub n_audio_state: usize,
    /// Encoder attention heads.
    pub n_audio_head: usize,
    /// Encoder layers.
    pub n_audio_layer: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
    /// Decoder width.
    pub n_text_state: usize,
    /// Decoder attention heads.
    pub n_text_head: usize,
    /// Decoder layers.
    pub n_text_layer: usize,
}

/// Feed-forward activation, as stored in CTranslate2's `activation` scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Relu,
    GeluTanh,
    Gelu,
}

impl Activation {
    /// Applies the activation to plain values.
    fn apply_slice(self, v: &mut [f32]) {
        match self {
            Self::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
            Self::GeluTanh => v.iter_mut().for_each(|x| {
                let c = (2.0 / std::f32::consts::PI).sqrt();
                *x = 0.5 * *x * (1.0 + (c * (*x + 0.044_715 * *x * *x * *x)).tanh());
            }),
            Self::Gelu => v.iter_mut().for_each(|x| {
                *x = 0.5
                    * *x
                    * (1.0 + kernels::erf(f64::from(*x) / std::f64::consts::SQRT_2) as f32);
            }),
        }
    }

    fn from_ct2(id: i64) -> Option<Self> {
        match id {
            0 => Some(Self::Relu),
            1 => Some(Self::GeluTanh),
            3 => Some(Self::Gelu),
            _ => None,
        }
    }

    fn apply(self, x: &Tensor) -> CResult<Tensor> {
        match self {
            Self::Relu => x.relu(),
            Self::GeluTanh => x.gelu(),
            Self::Gelu => x.gelu_erf(),
        }
    }
}

/// `y = x · Wᵀ + b` with `Wᵀ` stored contiguous as `[in, out]`.
#[derive(Debug, Clone)]
struct Linear {
    wt: Tensor,
    b: Option<Tensor>,
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let y = x.matmul(&self.wt)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Half-precision copy of a linear layer for single-token steps.
#[derive(Debug, Clone)]
struct HalfLinear {
    w: HalfMatrix,
    b: Option<Vec<f32>>,
}

impl HalfLinear {
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.w.rows];
        self.w.matvec(x, self.b.as_deref(), &mut out);
        out
    }
}

/// Layer-norm parameters as plain values.
#[derive(Debug, Clone)]
struct RawNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl RawNorm {
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        kernels::layer_norm(x, &self.gamma, &self.beta, LN_EPS, &mut out);
        out
    }
}

#[derive(Debug, Clone)]
struct LayerNorm {
    gamma: Tensor,
    beta: Tensor,
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        candle_nn::ops::layer_norm(x, &self.gamma, &self.beta, LN_EPS)
    }
}

/// Loads tensors from the CTranslate2 file with shape checks.
struct Loader<'a> {
    m: &'a Ct2Model,
    dtype: DType,
    device: &'a Device,
}

impl Loader<'_> {
    fn err(&self, msg: String) -> WhisperError {
        WhisperError::ModelFormat {
            path: self.m.path().to_path_buf(),
            msg,
        }
    }

    fn vec(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, WhisperError> {
        let shape = self.m.shape(name)?;
        if shape != expected {
            return Err(self.err(format!(
                "variable '{name}' has shape {shape:?}, expected {expected:?}"
            )));
        }
        self.m.to_f32_vec(name)
    }

    fn tensor(&self, values: Vec<f32>, shape: &[usize]) -> Result<Tensor, WhisperError> {
        let t = Tensor::from_vec(values, shape, &Device::Cpu)?;
        Ok(t.to_dtype(self.dtype)?.to_device(self.device)?)
    }

    /// Loads `prefix/weight` `[out, in]` (+ `prefix/bias`), optionally
    /// multiplying the first `scaled_rows` output rows by `scale`.
    fn linear(
        &self,
        prefix: &str,
        out: usize,
        inp: usize,
        scaled_rows: usize,
        scale: f32,
    ) -> Result<Linear, WhisperError> {
        Ok(self
            .linear_pair(prefix, out, inp, scaled_rows, scale, false)?
            .0)
    }

    /// Like [`Self::linear`], plus a half-precision copy when `half` is set.
    fn linear_pair(
        &self,
        prefix: &str,
        out: usize,
        inp: usize,
        scaled_rows: usize,
        scale: f32,
        half: bool,
    ) -> Result<(Linear, Option<HalfLinear>), WhisperError> {
        let mut w = self.vec(&format!("{prefix}/weight"), &[out, inp])?;
        for v in &mut w[..scaled_rows * inp] {
            *v *= scale;
        }
        let half_w = half.then(|| HalfMatrix::from_f32(&w, out, inp));
        // Transpose to [in, out] so that x·Wᵀ is a plain row-major product.
        let mut wt = vec![0f32; w.len()];
        for (o, row) in w.chunks_exact(inp).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                wt[i * out + o] = v;
            }
        }
        let bias_name = format!("{prefix}/bias");
        let b = if self.m.contains(&bias_name) {
            let mut b = self.vec(&bias_name, &[out])?;
            for v in &mut b[..scaled_rows] {
                *v *= scale;
            }
            Some(b)
        } else {
            None
        };
        let half_linear = half_w.map(|w| HalfLinear { w, b: b.clone() });
        let b = b.map(|b| self.tensor(b, &[out])).transpose()?;
        Ok((
            Linear {
                wt: self.tensor(wt, &[inp, out])?,
                b,
            },
            half_linear,
        ))
    }

    fn layer_norm(&self, prefix: &str, d: usize) -> Result<LayerNorm, WhisperError> {
        Ok(self.norm_pair(prefix, d)?.0)
    }

    fn norm_pair(&self, prefix: &str, d: usize) -> Result<(LayerNorm, RawNorm), WhisperError> {
        let gamma = self.vec(&format!("{prefix}/gamma"), &[d])?;
        let beta = self.vec(&format!("{prefix}/beta"), &[d])?;
        Ok((
            LayerNorm {
                gamma: self.tensor(gamma.clone(), &[d])?,
                beta: self.tensor(beta.clone(), &[d])?,
            },
            RawNorm { gamma, beta },
        ))
    }

    fn count_layers(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.m
                    .contains(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    }

    fn heads(&self, name: &str, d: usize) -> Result<usize, WhisperError> {
        let h = self.m.scalar_i64(name)?;
        if h <= 0 || !d.is_multiple_of(h as usize) {
            return Err(self.err(format!(
                "'{name}' = {h} does not divide the model width {d}"
            )));
        }
        Ok(h as usize)
    }
}

/// Fused-QKV self-attention plus feed-forward (encoder layer).
#[derive(Debug, Clone)]
struct EncoderLayer {
    attn_ln: LayerNorm,
    qkv: Linear,
    attn_out: Linear,
    ffn_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// Splits `[t, h·dh]` into heads: `[h, t, dh]` (contiguous).
fn split_heads(x: &Tensor, heads: usize) -> CResult<Tensor> {
    let (t, d) = x.dims2()?;
    x.reshape((t, heads, d / heads))?
        .transpose(0, 1)?
        .contiguous()
}

/// Merges `[h, t, dh]` back to `[t, h·dh]`.
fn merge_heads(x: &Tensor) -> CResult<Tensor> {
    let (h, t, dh) = x.dims3()?;
    x.transpose(0, 1)?.contiguous()?.reshape((t, h * dh))
}

/// The audio encoder.
#[derive(Debug, Clone)]
pub struct Encoder {
    conv1_w: Tensor,
    conv1_b: Tensor,
    conv2_w: Tensor,
    conv2_b: Tensor,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    ln_post: LayerNorm,
    heads: usize,
    act: Activation,
}

impl Encoder {
    /// Encodes a `[n_mels, 2·n_audio_ctx]` mel window into
    /// `[n_audio_ctx, n_audio_state]` features.
    pub fn forward(&self, mel: &Tensor) -> CResult<Tensor> {
        let x = mel.unsqueeze(0)?;
        let x = x
            .conv1d(&self.conv1_w, 1, 1, 1, 1)?
            .broadcast_add(&self.conv1_b.reshape((1, (), 1))?)?;
        let x = self.act.apply(&x)?;
        let x = x
            .conv1d(&self.conv2_w, 1, 2, 1, 1)?
            .broadcast_add(&self.conv2_b.reshape((1, (), 1))?)?;
        let x = self.act.apply(&x)?;
        // [1, d, t] -> [t, d]
        let x = x.squeeze(0)?.t()?.contiguous()?;
        let t = x.dim(0)?;
        let mut x = (x + self.positions.narrow(0, 0, t)?)?;
        for layer in &self.layers {
            let d = x.dim(1)?;
            let h = layer.attn_ln.forward(&x)?;
            let qkv = layer.qkv.forward(&h)?;
            let q = split_heads(&qkv.narrow(1, 0, d)?, self.heads)?;
            let k = split_heads(&qkv.narrow(1, d, d)?, self.heads)?;
            let v = split_heads(&qkv.narrow(1, 2 * d, d)?, self.heads)?;
            let scores = q.matmul(&k.t()?)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let attn = merge_heads(&probs.matmul(&v)?)?;
            x = (x + layer.attn_out.forward(&attn)?)?;
            let h = layer.ffn_ln.forward(&x)?;
            let h = layer
                .fc2
                .forward(&self.act.apply(&layer.fc1.forward(&h)?)?)?;
            x = (x + h)?;
        }
        self.ln_post.forward(&x)
    }
}

/// Decoder layer: causal self-attention, cross-attention, feed-forward.
#[derive(Debug, Clone)]
struct DecoderLayer {
    self_ln: LayerNorm,
    self_qkv: Linear,
    self_out: Linear,
    cross_ln: LayerNorm,
    cross_q: Linear,
    cross_kv: Linear,
    cross_out: Linear,
    ffn_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// Half-precision decoder layer for single-token steps on the CPU.
#[derive(Debug, Clone)]
struct StepLayer {
    self_ln: RawNorm,
    self_qkv: HalfLinear,
    self_out: HalfLinear,
    cross_ln: RawNorm,
    cross_q: HalfLinear,
    cross_out: HalfLinear,
    ffn_ln: RawNorm,
    fc1: HalfLinear,
    fc2: HalfLinear,
}

/// CPU fast path of the decoder: one token at a time on plain slices with
/// half-precision weights (see [`super::kernels`]).
#[derive(Debug, Clone)]
struct StepDecoder {
    layers: Vec<StepLayer>,
    ln: RawNorm,
    /// Token embeddings `[vocab, d]`, also the output projection.
    embeddings: HalfMatrix,
    /// Positional embeddings `[positions, d]`.
    positions: Vec<f32>,
}

/// Per-window decoder state: cross-attention keys/values computed once from
/// the encoder output, and the growing self-attention key/value cache.
#[derive(Debug, Clone)]
pub struct DecoderState {
    /// Per layer: keys transposed `[h, dh, t_audio]` and values `[h, t_audio, dh]`.
    cross: Vec<(Tensor, Tensor)>,
    /// Per layer: cached keys and values `[h, t, dh]` (tensor path).
    cache: Vec<Option<(Tensor, Tensor)>>,
    /// Per layer: keys and values `[h, t_audio, dh]` as plain values (CPU step path).
    raw_cross: Vec<(Vec<f32>, Vec<f32>)>,
    /// Per layer: cached keys and values `[t, d]` as plain values (CPU step path).
    raw_cache: Vec<(Vec<f32>, Vec<f32>)>,
    /// Number of token positions already decoded.
    len: usize,
    /// Number of positions held by the tensor cache.
    tensor_len: usize,
}

impl DecoderState {
    /// Number of tokens already decoded into the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops cached tokens, keeping the cross-attention keys/values.
    pub fn reset(&mut self) {
        self.len = 0;
        self.tensor_len = 0;
        self.cache.iter_mut().for_each(|c| *c = None);
        for (k, v) in &mut self.raw_cache {
            k.clear();
            v.clear();
        }
    }
}

/// The text decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    embeddings: Tensor,
    /// Embedding matrix transposed `[d, vocab]` for the output projection.
    projection: Tensor,
    positions: Tensor,
    layers: Vec<DecoderLayer>,
    ln: LayerNorm,
    heads: usize,
    act: Activation,
    step: Option<StepDecoder>,
}

/// Output of one decoder call.
#[derive(Debug)]
pub struct DecoderOutput {
    /// Final hidden states `[t, d]` (after the last layer norm).
    pub hidden: Tensor,
    /// Requested cross-attention scores (pre-softmax, already scaled by
    /// `1/√d_head`), one `[t, t_audio]` tensor per requested `(layer, head)`.
    pub cross_scores: Vec<Tensor>,
}

fn flat_f32(t: &Tensor) -> CResult<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

impl Decoder {
    /// Computes the per-window cross-attention keys and values.
    pub fn new_state(&self, audio: &Tensor) -> CResult<DecoderState> {
        let d = audio.dim(1)?;
        let mut cross = Vec::with_capacity(self.layers.len());
        let mut raw_cross = Vec::new();
        for layer in &self.layers {
            let kv = layer.cross_kv.forward(audio)?;
            let k = split_heads(&kv.narrow(1, 0, d)?, self.heads)?;
            let v = split_heads(&kv.narrow(1, d, d)?, self.heads)?;
            if self.step.is_some() {
                raw_cross.push((flat_f32(&k)?, flat_f32(&v)?));
            }
            let kt = k.transpose(1, 2)?.contiguous()?;
            cross.push((kt, v));
        }
        let n = self.layers.len();
        Ok(DecoderState {
            cross,
            cache: vec![None; n],
            raw_cross,
            raw_cache: vec![(Vec::new(), Vec::new()); if self.step.is_some() { n } else { 0 }],
            len: 0,
            tensor_len: 0,
        })
    }

    /// Maximum number of token positions.
    pub fn max_positions(&self) -> usize {
        self.positions.dim(0).unwrap_or(0)
    }

    /// Runs `tokens` (appended after the cached ones) through the decoder.
    ///
    /// `alignment_heads` lists `(layer, head)` pairs whose cross-attention
    /// scores should be returned. After [`Self::step`] calls on the CPU
    /// path, only a [`DecoderState::reset`] state may be passed here.
    pub fn forward(
        &self,
        tokens: &[u32],
        state: &mut DecoderState,
        alignment_heads: &[(usize, usize)],
    ) -> CResult<DecoderOutput> {
        let t = tokens.len();
        let offset = state.len;
        if t == 0 {
            candle_core::bail!("decoder called without tokens");
        }
        if state.tensor_len != offset {
            candle_core::bail!(
                "decoder tensor cache is behind the single-step cache; reset the state first"
            );
        }
        if offset + t > self.max_positions() {
            candle_core::bail!(
                "decoder context overflow: {} positions, maximum {}",
                offset + t,
                self.max_positions()
            );
        }
        let device = self.embeddings.device();
        let ids = Tensor::new(tokens, device)?;
        let mut x =
            (self.embeddings.index_select(&ids, 0)? + self.positions.narrow(0, offset, t)?)?;
        let total = offset + t;
        let mask = if t > 1 {
            let m: Vec<f32> = (0..t)
                .flat_map(|i| {
                    (0..total).map(move |j| {
                        if j <= offset + i {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
                .collect();
            Some(Tensor::from_vec(m, (1, t, total), device)?.to_dtype(x.dtype())?)
        } else {
            None
        };
        let mut cross_scores = Vec::new();
        let d = x.dim(1)?;
        for (li, layer) in self.layers.iter().enumerate() {
            // Causal self-attention with the key/value cache.
            let h = layer.self_ln.forward(&x)?;
            let qkv = layer.self_qkv.forward(&h)?;
            if let Some((kc, vc)) = state.raw_cache.get_mut(li) {
                kc.extend(flat_f32(&qkv.narrow(1, d, d)?)?);
                vc.extend(flat_f32(&qkv.narrow(1, 2 * d, d)?)?);
            }
            let q = split_heads(&qkv.narrow(1, 0, d)?, self.heads)?;
            let k_new = split_heads(&qkv.narrow(1, d, d)?, self.heads)?;
            let v_new = split_heads(&qkv.narrow(1, 2 * d, d)?, self.heads)?;
            let (k, v) = match state.cache[li].take() {
                Some((k, v)) => (
                    Tensor::cat(&[&k, &k_new], 1)?,
                    Tensor::cat(&[&v, &v_new], 1)?,
                ),
                None => (k_new, v_new),
            };
            let mut scores = q.matmul(&k.t()?)?;
            if let Some(mask) = &mask {
                scores = scores.broadcast_add(mask)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let attn = merge_heads(&probs.matmul(&v)?)?;
            state.cache[li] = Some((k, v));
            x = (x + layer.self_out.forward(&attn)?)?;

            // Cross-attention over the window's audio features.
            let h = layer.cross_ln.forward(&x)?;
            let q = split_heads(&layer.cross_q.forward(&h)?, self.heads)?;
            let (kt, v) = &state.cross[li];
            let scores = q.matmul(kt)?;
            for &(l, head) in alignment_heads {
                if l == li {
                    cross_scores.push(scores.i(head)?);
                }
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let attn = merge_heads(&probs.matmul(v)?)?;
            x = (x + layer.cross_out.forward(&attn)?)?;

            let h = layer.ffn_ln.forward(&x)?;
            let h = layer
                .fc2
                .forward(&self.act.apply(&layer.fc1.forward(&h)?)?)?;
            x = (x + h)?;
        }
        state.len = total;
        state.tensor_len = total;
        Ok(DecoderOutput {
            hidden: self.ln.forward(&x)?,
            cross_scores,
        })
    }

    /// Vocabulary logits `[rows, vocab]` (as `f32`) of hidden states `[rows, d]`.
    pub fn logits(&self, hidden: &Tensor) -> CResult<Tensor> {
        hidden.matmul(&self.projection)?.to_dtype(DType::F32)
    }

    /// Appends one token and returns the next-token logits.
    ///
    /// On the CPU this runs the half-precision single-token path; on other
    /// devices it is a one-token [`Self::forward`].
    pub fn step(&self, token: u32, state: &mut DecoderState) -> CResult<Vec<f32>> {
        match &self.step {
            Some(fast) => self.step_cpu(fast, token, state),
            None => {
                let out = self.forward(&[token], state, &[])?;
                self.logits(&out.hidden)?.squeeze(0)?.to_vec1::<f32>()
            }
        }
    }

    fn step_cpu(&self, f: &StepDecoder, token: u32, state: &mut DecoderState) -> CResult<Vec<f32>> {
        let d = f.embeddings.cols;
        let heads = self.heads;
        let dh = d / heads;
        let pos = state.len;
        if pos >= self.max_positions() {
            candle_core::bail!("decoder context overflow at position {pos}");
        }
        if token as usize >= f.embeddings.rows {
            candle_core::bail!("token id {token} outside the vocabulary");
        }
        let mut x = f.embeddings.row_f32(token as usize);
        for (a, b) in x.iter_mut().zip(&f.positions[pos * d..(pos + 1) * d]) {
            *a += b;
        }
        let t = pos + 1;
        for (li, layer) in f.layers.iter().enumerate() {
            // Self-attention over the cached positions plus this one.
            let qkv = layer.self_qkv.apply(&layer.self_ln.apply(&x));
            let (kc, vc) = &mut state.raw_cache[li];
            kc.extend_from_slice(&qkv[d..2 * d]);
            vc.extend_from_slice(&qkv[2 * d..3 * d]);
            let mut attn = vec![0f32; d];
            let mut scores = vec![0f32; t];
            for (head, out) in attn.chunks_mut(dh).enumerate() {
                let q = &qkv[head * dh..(head + 1) * dh];
                let at = |j: usize| j * d + head * dh..j * d + (head + 1) * dh;
                for (j, s) in scores.iter_mut().enumerate() {
                    *s = kernels::dot_f32(q, &kc[at(j)]);
                }
                kernels::softmax(&mut scores);
                for (j, &p) in scores.iter().enumerate() {
                    kernels::axpy(out, p, &vc[at(j)]);
                }
            }
            for (a, b) in x.iter_mut().zip(layer.self_out.apply(&attn)) {
                *a += b;
            }

            // Cross-attention, heads split over the thread pool.
            let q = layer.cross_q.apply(&layer.cross_ln.apply(&x));
            let (kx, vx) = &state.raw_cross[li];
            let frames = kx.len() / d;
            let mut attn = vec![0f32; d];
            kernels::par_rows(&mut attn, dh, 2, |range, chunk| {
                let mut scores = vec![0f32; frames];
                for (head, out) in range.zip(chunk.chunks_mut(dh)) {
                    let q = &q[head * dh..(head + 1) * dh];
                    let kh = &kx[head * frames * dh..(head + 1) * frames * dh];
                    let vh = &vx[head * frames * dh..(head + 1) * frames * dh];
                    for (s, k) in scores.iter_mut().zip(kh.chunks_exact(dh)) {
                        *s = kernels::dot_f32(q, k);
                    }
                    kernels::softmax(&mut scores);
                    for (&p, v) in scores.iter().zip(vh.chunks_exact(dh)) {
                        kernels::axpy(out, p, v);
                    }
                }
            });
            for (a, b) in x.iter_mut().zip(layer.cross_out.apply(&attn)) {
                *a += b;
            }

            let mut h = layer.fc1.apply(&layer.ffn_ln.apply(&x));
            self.act.apply_slice(&mut h);
            for (a, b) in x.iter_mut().zip(layer.fc2.apply(&h)) {
                *a += b;
            }
        }
        state.len = t;
        let x = f.ln.apply(&x);
        let mut logits = vec![0f32; f.embeddings.rows];
        f.embeddings.matvec(&x, None, &mut logits);
        Ok(logits)
    }
}

/// Whisper model weights.
#[derive(Debug, Clone)]
pub struct WhisperModel {
    /// Hyper-parameters.
    pub dims: ModelDims,
    /// Audio encoder.
    pub encoder: Encoder,
    /// Text decoder.
    pub decoder: Decoder,
    /// Compute dtype.
    pub dtype: DType,
}

impl WhisperModel {
    /// Builds the model from a parsed CTranslate2 Whisper model.
    pub fn from_ct2(m: &Ct2Model, device: &Device) -> Result<Self, WhisperError> {
        let dtype = reelsmith_kit::compute_dtype(device, reelsmith_kit::Precision::F16);
        let l = Loader { m, dtype, device };
        if m.spec != "WhisperSpec" {
            return Err(l.err(format!(
                "model spec is '{}', expected 'WhisperSpec'",
                m.spec
            )));
        }
        let conv1 = m.shape("encoder/conv1/weight")?;
        let conv2 = m.shape("encoder/conv2/weight")?;
        let enc_pos = m.shape("encoder/position_encodings/encodings")?;
        let emb = m.shape("decoder/embeddings/weight")?;
        let dec_pos = m.shape("decoder/position_encodings/encodings")?;
        let bad = |what: &str, s: &[usize]| l.err(format!("unexpected {what} shape {s:?}"));
        let [d_a, n_mels, 3] = conv1[..] else {
            return Err(bad("encoder/conv1/weight", &conv1));
        };
        if conv2 != [d_a, d_a, 3] {
            return Err(bad("encoder/conv2/weight", &conv2));
        }
        let [n_audio_ctx, d] = enc_pos[..] else {
            return Err(bad("encoder/position_encodings/encodings", &enc_pos));
        };
        let [n_vocab, d_t] = emb[..] else {
            return Err(bad("decoder/embeddings/weight", &emb));
        };
        let [n_text_ctx, d_t2] = dec_pos[..] else {
            return Err(bad("decoder/position_encodings/encodings", &dec_pos));
        };
        if d != d_a || d_t2 != d_t {
            return Err(l.err("encoder/decoder widths are inconsistent".into()));
        }
        let dims = ModelDims {
            n_mels,
            n_audio_ctx,
            n_audio_state: d_a,
            n_audio_head: l.heads("encoder/num_heads", d_a)?,
            n_audio_layer: l.count_layers("encoder"),
            n_vocab,
            n_text_ctx,
            n_text_state: d_t,
            n_text_head: l.heads("decoder/num_heads", d_t)?,
            n_text_layer: l.count_layers("decoder"),
        };
        if dims.n_audio_layer == 0 || dims.n_text_layer == 0 {
            return Err(l.err("no encoder or decoder layers found".into()));
        }
        let act = |name: &str| -> Result<Activation, WhisperError> {
            if !m.contains(name) {
                return Ok(Activation::Gelu);
            }
            let id = m.scalar_i64(name)?;
            Activation::from_ct2(id)
                .ok_or_else(|| l.err(format!("unsupported activation id {id} in '{name}'")))
        };
        // Flags the reader does not implement must have their Whisper values.
        for (name, want) in [
            ("decoder/pre_norm", 1),
            ("decoder/alibi", 0),
            ("decoder/scale_embeddings", 0),
        ] {
            if m.contains(name) && m.scalar_i64(name)? != want {
                return Err(l.err(format!("'{name}' must be {want} for a Whisper model")));
            }
        }

        let enc_act = act("encoder/activation")?;
        let dec_act = act("decoder/activation")?;
        let ffn_dim = m.shape("encoder/layer_0/ffn/linear_0/weight")?[0];
        let a_scale = 1.0 / ((d_a / dims.n_audio_head) as f32).sqrt();
        let mut enc_layers = Vec::with_capacity(dims.n_audio_layer);
        for i in 0..dims.n_audio_layer {
            let p = format!("encoder/layer_{i}");
            enc_layers.push(EncoderLayer {
                attn_ln: l.layer_norm(&format!("{p}/self_attention/layer_norm"), d_a)?,
                qkv: l.linear(
                    &format!("{p}/self_attention/linear_0"),
                    3 * d_a,
                    d_a,
                    d_a,
                    a_scale,
                )?,
                attn_out: l.linear(&format!("{p}/self_attention/linear_1"), d_a, d_a, 0, 1.0)?,
                ffn_ln: l.layer_norm(&format!("{p}/ffn/layer_norm"), d_a)?,
                fc1: l.linear(&format!("{p}/ffn/linear_0"), ffn_dim, d_a, 0, 1.0)?,
                fc2: l.linear(&format!("{p}/ffn/linear_1"), d_a, ffn_dim, 0, 1.0)?,
            });
        }
        let encoder = Encoder {
            conv1_w: l.tensor(l.vec("encoder/conv1/weight", &conv1)?, &conv1)?,
            conv1_b: l.tensor(l.vec("encoder/conv1/bias", &[d_a])?, &[d_a])?,
            conv2_w: l.tensor(l.vec("encoder/conv2/weight", &conv2)?, &conv2)?,
            conv2_b: l.tensor(l.vec("encoder/conv2/bias", &[d_a])?, &[d_a])?,
            positions: l.tensor(
                l.vec("encoder/position_encodings/encodings", &enc_pos)?,
                &enc_pos,
            )?,
            layers: enc_layers,
            ln_post: l.layer_norm("encoder/layer_norm", d_a)?,
            heads: dims.n_audio_head,
            act: enc_act,
        };

        let t_scale = 1.0 / ((d_t / dims.n_text_head) as f32).sqrt();
        let ffn_dim = m.shape("decoder/layer_0/ffn/linear_0/weight")?[0];
        let half = device.is_cpu();
        let mut dec_layers = Vec::with_capacity(dims.n_text_layer);
        let mut step_layers = Vec::with_capacity(dims.n_text_layer);
        for i in 0..dims.n_text_layer {
            let p = format!("decoder/layer_{i}");
            let lin = |name: &str, out: usize, inp: usize, scaled: usize, scale: f32| {
                l.linear_pair(&format!("{p}/{name}"), out, inp, scaled, scale, half)
            };
            let (self_ln, self_ln_raw) =
                l.norm_pair(&format!("{p}/self_attention/layer_norm"), d_t)?;
            let (self_qkv, self_qkv_h) =
                lin("self_attention/linear_0", 3 * d_t, d_t, d_t, t_scale)?;
            let (self_out, self_out_h) = lin("self_attention/linear_1", d_t, d_t, 0, 1.0)?;
            let (cross_ln, cross_ln_raw) =
                l.norm_pair(&format!("{p}/attention/layer_norm"), d_t)?;
            let (cross_q, cross_q_h) = lin("attention/linear_0", d_t, d_t, d_t, t_scale)?;
            let cross_kv = l.linear(&format!("{p}/attention/linear_1"), 2 * d_t, d_a, 0, 1.0)?;
            let (cross_out, cross_out_h) = lin("attention/linear_2", d_t, d_t, 0, 1.0)?;
            let (ffn_ln, ffn_ln_raw) = l.norm_pair(&format!("{p}/ffn/layer_norm"), d_t)?;
            let (fc1, fc1_h) = lin("ffn/linear_0", ffn_dim, d_t, 0, 1.0)?;
            let (fc2, fc2_h) = lin("ffn/linear_1", d_t, ffn_dim, 0, 1.0)?;
            if let (
                Some(self_qkv),
                Some(self_out),
                Some(cross_q),
                Some(cross_out),
                Some(fc1),
                Some(fc2),
            ) = (self_qkv_h, self_out_h, cross_q_h, cross_out_h, fc1_h, fc2_h)
            {
                step_layers.push(StepLayer {
                    self_ln: self_ln_raw,
                    self_qkv,
                    self_out,
                    cross_ln: cross_ln_raw,
                    cross_q,
                    cross_out,
                    ffn_ln: ffn_ln_raw,
                    fc1,
                    fc2,
                });
            }
            dec_layers.push(DecoderLayer {
                self_ln,
                self_qkv,
                self_out,
                cross_ln,
                cross_q,
                cross_kv,
                cross_out,
                ffn_ln,
                fc1,
                fc2,
            });
        }
        let emb_values = l.vec("decoder/embeddings/weight", &emb)?;
        let mut proj = vec![0f32; emb_values.len()];
        for (v, row) in emb_values.chunks_exact(d_t).enumerate() {
            for (i, &x) in row.iter().enumerate() {
                proj[i * n_vocab + v] = x;
            }
        }
        if m.contains("decoder/projection/weight") && m.shape("decoder/projection/weight")? != emb {
            return Err(bad(
                "decoder/projection/weight",
                &m.shape("decoder/projection/weight")?,
            ));
        }
        let dec_positions = l.vec("decoder/position_encodings/encodings", &dec_pos)?;
        let (final_ln, final_ln_raw) = l.norm_pair("decoder/layer_norm", d_t)?;
        let step = half.then(|| StepDecoder {
            layers: step_layers,
            ln: final_ln_raw,
            embeddings: HalfMatrix::from_f32(&emb_values, n_vocab, d_t),
            positions: dec_positions.clone(),
        });
        let decoder = Decoder {
            embeddings: l.tensor(emb_values, &emb)?,
            projection: l.tensor(proj, &[d_t, n_vocab])?,
            positions: l.tensor(dec_positions, &dec_pos)?,
            layers: dec_layers,
            ln: final_ln,
            heads: dims.n_text_head,
            act: dec_act,
            step,
        };
        Ok(Self {
            dims,
            encoder,
            decoder,
            dtype,
        })
    }

    /// Encodes one `[n_mels × 2·n_audio_ctx]` mel window (mel-major values).
    pub fn encode(&self, mel: &[f32], device: &Device) -> CResult<Tensor> {
        let frames = mel.len() / self.dims.n_mels;
        let t =
            Tensor::from_slice(mel, (self.dims.n_mels, frames), device)?.to_dtype(self.dtype)?;
        self.encoder.forward(&t)
    }
}
