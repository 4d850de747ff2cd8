//! VITS inference (the network behind Piper voices) on candle: text encoder with relative-position
//! self-attention, stochastic (or plain) duration predictor, normalising flow and HiFi-GAN
//! decoder, run exactly as VITS's `infer` does for one utterance (batch 1, so no masks).
//!
//! Every tensor lives on the chosen device (CPU or CUDA); the two small host steps are the
//! rational-quadratic spline of the duration predictor (two values per phoneme) and turning
//! durations into frame indices.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};

use super::cpu::{Act, CpuVits};
use super::onnx::ConvAttrs;
use super::{PiperVoice, Scales, VitsDims, VoiceError};

/// VITS's spline constants (`transforms.py`).
const MIN_BIN_WIDTH: f64 = 1e-3;
const MIN_BIN_HEIGHT: f64 = 1e-3;
const MIN_DERIVATIVE: f64 = 1e-3;
/// The stochastic duration predictor's spline range.
const TAIL_BOUND: f64 = 5.0;
/// HiFi-GAN's LeakyReLU slope (and PyTorch's default for the last one).
const LRELU: f64 = 0.1;
const LRELU_POST: f64 = 0.01;

/// A loaded voice network.
pub struct Vits {
    pub dims: VitsDims,
    device: Device,
    w: HashMap<String, Tensor>,
    convs: HashMap<String, ConvAttrs>,
    /// The duration predictor's first flow (elementwise affine): mean and exp(−log-scale).
    dp_affine: Option<([f64; 2], [f64; 2])>,
    /// Decoder residual blocks: ResBlock1 (`convs1`/`convs2`) or ResBlock2 (`convs`).
    resblock1: bool,
    /// Convolutions per residual block (3 for ResBlock1, 2 for ResBlock2).
    resblock_convs: usize,
    /// On the CPU: the flow and decoder on host buffers (much faster than candle's generic
    /// convolutions there); None runs every module through candle (the CUDA path).
    host: Option<CpuVits>,
}

/// What one synthesis produced.
#[derive(Debug, Clone)]
pub struct Synthesis {
    /// Mono samples at the voice's rate, in [−1, 1].
    pub samples: Vec<f32>,
    /// Frames each phoneme id lasted (sums to the decoded frame count).
    pub durations: Vec<u32>,
}

/// Where the noise comes from: a seeded generator, so a render is repeatable.
pub use reelsmith_kit::noise::Seeded;

/// Normal noise of `shape` scaled by `scale` (zeros, drawing nothing, when `scale` is 0).
fn noise_tensor(
    noise: &mut Seeded,
    shape: (usize, usize, usize),
    scale: f32,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    Tensor::from_vec(noise.scaled(shape.0 * shape.1 * shape.2, scale), shape, dev)
}

fn leaky(x: &Tensor, slope: f64) -> candle_core::Result<Tensor> {
    x.maximum(&(x * slope)?)
}

impl Vits {
    /// Puts the voice's weights on `device`; on the CPU the host kernels run the encoder, flow
    /// and decoder.
    pub fn load(voice: &PiperVoice, device: &Device) -> Result<Self, VoiceError> {
        Self::build(voice, device, device.is_cpu())
    }

    /// Every module through candle, as on CUDA (for checking that path on a CPU).
    pub fn load_generic(voice: &PiperVoice, device: &Device) -> Result<Self, VoiceError> {
        Self::build(voice, device, false)
    }

    fn build(voice: &PiperVoice, device: &Device, host: bool) -> Result<Self, VoiceError> {
        let err = |e: candle_core::Error| VoiceError::Weights {
            path: voice.onnx.clone(),
            msg: e.to_string(),
        };
        let mut w = HashMap::new();
        for (name, t) in &voice.weights.weights {
            // With the host kernels, candle runs only the duration predictor (and needs the
            // speaker table): the other weights would be a second copy.
            if host && !(name.starts_with("dp.") || name.starts_with("emb_g.")) {
                continue;
            }
            let tensor = Tensor::from_slice(&t.values, t.shape.as_slice(), device).map_err(err)?;
            w.insert(name.clone(), tensor);
        }
        let weights = &voice.weights;
        let dp_affine = match weights.get("dp.flows.0.m") {
            None => None,
            Some(m) => {
                // The exporter folds exp(−logs) into a constant; older exports keep `logs`.
                let inv = if let Some(logs) = weights.get("dp.flows.0.logs") {
                    logs.values
                        .iter()
                        .map(|l| (-*l as f64).exp())
                        .collect::<Vec<_>>()
                } else if let Some(c) = weights.get("/dp/flows.0/Exp_output_0") {
                    c.values.iter().map(|v| *v as f64).collect()
                } else {
                    return Err(VoiceError::Weights {
                        path: voice.onnx.clone(),
                        msg: "dp.flows.0 has a mean but no log-scale (dp.flows.0.logs)".into(),
                    });
                };
                if m.values.len() != 2 || inv.len() != 2 {
                    return Err(VoiceError::Weights {
                        path: voice.onnx.clone(),
                        msg: format!("dp.flows.0.m has shape {:?}", m.shape),
                    });
                }
                Some(([m.values[0] as f64, m.values[1] as f64], [inv[0], inv[1]]))
            }
        };
        let resblock1 = weights.get("dec.resblocks.0.convs1.0.weight").is_some();
        let resblock_convs = if resblock1 {
            (0..)
                .take_while(|i| {
                    weights
                        .get(&format!("dec.resblocks.0.convs1.{i}.weight"))
                        .is_some()
                })
                .count()
        } else {
            (0..)
                .take_while(|i| {
                    weights
                        .get(&format!("dec.resblocks.0.convs.{i}.weight"))
                        .is_some()
                })
                .count()
        };
        let host = if host {
            Some(
                CpuVits::load(weights, &voice.dims).ok_or_else(|| VoiceError::Weights {
                    path: voice.onnx.clone(),
                    msg: "encoder, flow or decoder weights incomplete".into(),
                })?,
            )
        } else {
            None
        };
        Ok(Self {
            dims: voice.dims.clone(),
            device: device.clone(),
            w,
            convs: weights.convs.clone(),
            dp_affine,
            resblock1,
            resblock_convs,
            host,
        })
    }

    fn t(&self, name: &str) -> candle_core::Result<&Tensor> {
        self.w
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("voice has no tensor {name}")))
    }

    fn bias(&self, prefix: &str, y: Tensor) -> candle_core::Result<Tensor> {
        match self.w.get(&format!("{prefix}.bias")) {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1))?),
            None => Ok(y),
        }
    }

    /// `prefix` as a 1-D convolution with "same" padding (every VITS convolution keeps the
    /// length: some pad inside the Conv, the FFN with a Pad before it); dilation from the
    /// ONNX node.
    fn conv(&self, prefix: &str, x: &Tensor) -> candle_core::Result<Tensor> {
        let w = self.t(&format!("{prefix}.weight"))?;
        let (c_out, c_in_g, k) = w.dims3()?;
        let attrs = self.convs.get(&format!("{prefix}.weight")).copied();
        let dilation = attrs.map_or(1, |a| a.dilation);
        let total = dilation * (k - 1);
        let (pl, pr) = (total / 2, total - total / 2);
        let c_in = x.dim(1)?;
        let groups = c_in / c_in_g;
        let t = x.dim(2)?;
        let y = if groups > 1 && groups == c_in && groups == c_out {
            // Depthwise: a few shifted multiply-adds beat `groups` tiny convolutions.
            let xp = x.pad_with_zeros(2, pl, pr)?;
            let t_out = t;
            let mut acc: Option<Tensor> = None;
            for j in 0..k {
                let tap = w.narrow(2, j, 1)?.reshape((1, c_out, 1))?;
                let term = xp.narrow(2, j * dilation, t_out)?.broadcast_mul(&tap)?;
                acc = Some(match acc {
                    None => term,
                    Some(a) => (a + term)?,
                });
            }
            acc.expect("kernel has taps")
        } else if pl == pr {
            x.conv1d(w, pl, 1, dilation, groups)?
        } else {
            x.pad_with_zeros(2, pl, pr)?
                .conv1d(w, 0, 1, dilation, groups)?
        };
        self.bias(prefix, y)
    }

    /// `prefix` as a transposed convolution (upsampling).
    fn conv_transpose(&self, prefix: &str, x: &Tensor) -> candle_core::Result<Tensor> {
        let w = self.t(&format!("{prefix}.weight"))?;
        let k = w.dim(2)?;
        let attrs = self.convs.get(&format!("{prefix}.weight")).copied();
        let stride = attrs.map_or(k / 2, |a| a.stride);
        let pad = attrs.map_or((k - stride) / 2, |a| a.pad);
        // Unpadded (candle's fast path), then cut the padding off both ends.
        let y = x.conv_transpose1d(w, 0, 0, stride, 1, 1)?;
        let len = y.dim(2)?;
        let y = y.narrow(2, pad, len - 2 * pad)?;
        self.bias(prefix, y)
    }

    /// Layer norm over channels of `[1, C, T]`.
    fn norm(&self, prefix: &str, x: &Tensor) -> candle_core::Result<Tensor> {
        let g = self.t(&format!("{prefix}.gamma"))?;
        let b = self.t(&format!("{prefix}.beta"))?;
        let xt = x.transpose(1, 2)?.contiguous()?;
        candle_nn::ops::layer_norm(&xt, g, b, 1e-5)?.transpose(1, 2)
    }

    /// Synthesizes phoneme ids (Piper's `^ _ p _ … $` sequence).
    pub fn synthesize(
        &self,
        ids: &[i64],
        scales: Scales,
        speaker: Option<usize>,
        noise: &mut Seeded,
    ) -> candle_core::Result<Synthesis> {
        if ids.is_empty() {
            return Ok(Synthesis {
                samples: Vec::new(),
                durations: Vec::new(),
            });
        }
        if let Some(&bad) = ids
            .iter()
            .find(|&&i| i < 0 || i as usize >= self.dims.n_symbols)
        {
            candle_core::bail!(
                "phoneme id {bad} is outside the voice's {} symbols",
                self.dims.n_symbols
            );
        }
        let g = match (speaker, self.w.get("emb_g.weight")) {
            (Some(s), Some(table)) => {
                let n = table.dim(0)?;
                if s >= n {
                    candle_core::bail!("speaker {s} is not one of the voice's {n} speakers");
                }
                Some(table.narrow(0, s, 1)?.unsqueeze(2)?) // [1, gin, 1]
            }
            (None, Some(_)) => Some(self.t("emb_g.weight")?.narrow(0, 0, 1)?.unsqueeze(2)?),
            _ => None,
        };
        let inter = self.dims.inter;
        let Some(host) = &self.host else {
            // Every module through candle (CUDA, or checking that path on a CPU).
            let (x, m_p, logs_p) = self.text_encoder(ids)?;
            let durations = self.durations(&x, g.as_ref(), scales, noise)?;
            let frames: usize = durations.iter().map(|&d| d as usize).sum();
            let (m, logs) = if frames == 0 {
                let z = Tensor::zeros((1, inter, 1), DType::F32, &self.device)?;
                (z.clone(), z)
            } else {
                let idx: Vec<u32> = durations
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &d)| std::iter::repeat_n(i as u32, d as usize))
                    .collect();
                let idx = Tensor::from_vec(idx, frames, &self.device)?;
                (m_p.index_select(&idx, 2)?, logs_p.index_select(&idx, 2)?)
            };
            let frames = m.dim(2)?;
            let eps = noise_tensor(noise, (1, inter, frames), scales.noise_scale, &self.device)?;
            let z_p = (m + (eps * logs.exp()?)?)?;
            let z = self.flow_reverse(&z_p, g.as_ref())?;
            let samples = self.decode(&z, g.as_ref())?.flatten_all()?.to_vec1()?;
            return Ok(Synthesis { samples, durations });
        };
        // On the CPU: encoder, flow and decoder on host buffers; the small duration predictor
        // stays on candle.
        let (x, stats) = host.encoder.forward(ids);
        let t = x.t;
        let x = Tensor::from_vec(x.data, (1, self.dims.hidden, t), &self.device)?;
        let durations = self.durations(&x, g.as_ref(), scales, noise)?;
        // Each frame reads its phoneme's prior: z = m + ε·exp(log s)·noise_scale.
        let idx: Vec<usize> = durations
            .iter()
            .enumerate()
            .flat_map(|(i, &d)| std::iter::repeat_n(i, d as usize))
            .collect();
        let frames = idx.len().max(1);
        let mut z = Act::zeros(inter, frames);
        for c in 0..inter {
            let (m, logs) = (
                &stats.data[c * t..(c + 1) * t],
                &stats.data[(inter + c) * t..(inter + c + 1) * t],
            );
            for (f, zv) in z.data[c * frames..(c + 1) * frames].iter_mut().enumerate() {
                let eps = if scales.noise_scale == 0.0 {
                    0.0
                } else {
                    noise.normal() * scales.noise_scale
                };
                *zv = match idx.get(f) {
                    Some(&p) => m[p] + eps * logs[p].exp(),
                    None => eps,
                };
            }
        }
        let g = match &g {
            Some(g) => Some(g.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        let z = host.flow_reverse(z, g.as_deref());
        let samples = host.decode(&z, g.as_deref());
        Ok(Synthesis { samples, durations })
    }

    /// Text encoder: hidden states `[1, H, T]` and the prior's mean and log-scale `[1, C, T]`.
    fn text_encoder(&self, ids: &[i64]) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let d = &self.dims;
        let ids_t = Tensor::from_vec(
            ids.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            ids.len(),
            &self.device,
        )?;
        let emb = self.t("enc_p.emb.weight")?.index_select(&ids_t, 0)?; // [T, H]
        let mut x = (emb * (d.hidden as f64).sqrt())?
            .t()?
            .unsqueeze(0)?
            .contiguous()?; // [1,H,T]
        for i in 0..d.n_layers {
            let p = format!("enc_p.encoder.attn_layers.{i}");
            let y = self.attention(&p, &x)?;
            x = self.norm(&format!("enc_p.encoder.norm_layers_1.{i}"), &(x + y)?)?;
            let f = format!("enc_p.encoder.ffn_layers.{i}");
            let h = self.conv(&format!("{f}.conv_1"), &x)?.relu()?;
            let y = self.conv(&format!("{f}.conv_2"), &h)?;
            x = self.norm(&format!("enc_p.encoder.norm_layers_2.{i}"), &(x + y)?)?;
        }
        let stats = self.conv("enc_p.proj", &x)?;
        let m = stats.narrow(1, 0, d.inter)?;
        let logs = stats.narrow(1, d.inter, d.inter)?;
        Ok((x, m, logs))
    }

    /// Multi-head self-attention with relative position embeddings (keys and values).
    fn attention(&self, p: &str, x: &Tensor) -> candle_core::Result<Tensor> {
        let d = &self.dims;
        let t = x.dim(2)?;
        let dk = d.hidden / d.n_heads;
        let heads = |y: Tensor| -> candle_core::Result<Tensor> {
            // [1, H, T] → [1, heads, T, dk]
            y.reshape((1, d.n_heads, dk, t))?
                .transpose(2, 3)?
                .contiguous()
        };
        let scale = 1.0 / (dk as f64).sqrt();
        let q = (heads(self.conv(&format!("{p}.conv_q"), x)?)? * scale)?;
        let k = heads(self.conv(&format!("{p}.conv_k"), x)?)?;
        let v = heads(self.conv(&format!("{p}.conv_v"), x)?)?;
        let mut scores = q.matmul(&k.transpose(2, 3)?.contiguous()?)?; // [1, h, T, T]
        let rel_k = self.relative_embeddings(self.t(&format!("{p}.emb_rel_k"))?, t)?; // [1, 2T-1, dk]
        let rel_logits = q.broadcast_matmul(&rel_k.transpose(1, 2)?.contiguous()?.unsqueeze(0)?)?; // [1,h,T,2T-1]
        scores = (scores + relative_to_absolute(&rel_logits)?)?;
        let p_attn = candle_nn::ops::softmax_last_dim(&scores)?;
        let mut out = p_attn.matmul(&v)?; // [1, h, T, dk]
        let rel_v = self.relative_embeddings(self.t(&format!("{p}.emb_rel_v"))?, t)?;
        let rel_w = absolute_to_relative(&p_attn)?; // [1, h, T, 2T-1]
        out = (out + rel_w.broadcast_matmul(&rel_v.unsqueeze(0)?)?)?;
        let out = out
            .transpose(2, 3)?
            .contiguous()?
            .reshape((1, d.hidden, t))?;
        self.conv(&format!("{p}.conv_o"), &out)
    }

    /// The embeddings for relative positions −(T−1)…T−1: the learned window, zeros beyond it.
    fn relative_embeddings(&self, emb: &Tensor, t: usize) -> candle_core::Result<Tensor> {
        let window = self.dims.window;
        let pad = t.saturating_sub(window + 1);
        let start = (window + 1).saturating_sub(t);
        let padded = if pad > 0 {
            emb.pad_with_zeros(1, pad, pad)?
        } else {
            emb.clone()
        };
        padded.narrow(1, start, 2 * t - 1)
    }

    /// Frames per phoneme: the duration predictor's log-durations, scaled and rounded up.
    fn durations(
        &self,
        x: &Tensor,
        g: Option<&Tensor>,
        scales: Scales,
        noise: &mut Seeded,
    ) -> candle_core::Result<Vec<u32>> {
        let logw = self.log_durations(x, g, scales.noise_w, noise)?;
        Ok(logw
            .iter()
            .map(|l| (l.exp() * scales.length_scale as f64).ceil().max(0.0) as u32)
            .collect())
    }

    /// Log-durations (frames, natural log) per phoneme from the duration predictor.
    fn log_durations(
        &self,
        x: &Tensor,
        g: Option<&Tensor>,
        noise_w: f32,
        noise: &mut Seeded,
    ) -> candle_core::Result<Vec<f64>> {
        let t = x.dim(2)?;
        if !self.dims.stochastic_duration {
            // Deterministic predictor: conv → relu → norm, twice, then a projection.
            let mut h = x.clone();
            if let Some(g) = g {
                h = h.broadcast_add(&self.conv("dp.cond", g)?)?;
            }
            let h = self.norm("dp.norm_1", &self.conv("dp.conv_1", &h)?.relu()?)?;
            let h = self.norm("dp.norm_2", &self.conv("dp.conv_2", &h)?.relu()?)?;
            let logw = self.conv("dp.proj", &h)?;
            return Ok(logw
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(f64::from)
                .collect());
        }
        let mut h = self.conv("dp.pre", x)?;
        if let Some(g) = g {
            h = h.broadcast_add(&self.conv("dp.cond", g)?)?;
        }
        let h = self.dds_conv("dp.convs", &h)?;
        let cond = self.conv("dp.proj", &h)?;
        // z: two channels, [2][T], on the host (the spline is elementwise and tiny).
        let mut z: [Vec<f64>; 2] = [
            (0..t).map(|_| (noise.normal() * noise_w) as f64).collect(),
            (0..t).map(|_| (noise.normal() * noise_w) as f64).collect(),
        ];
        // Reverse order without the unused flow: flip, conv flows from last to the second,
        // flipping between them, flip, then the elementwise affine.
        let n_conv = (1..)
            .take_while(|i| {
                self.w
                    .contains_key(&format!("dp.flows.{}.pre.weight", 2 * i + 1))
            })
            .count();
        for i in (1..=n_conv).rev() {
            z.swap(0, 1);
            self.conv_flow_reverse(&format!("dp.flows.{}", 2 * i + 1), &mut z, &cond)?;
        }
        z.swap(0, 1);
        if let Some((m, inv)) = self.dp_affine {
            for (c, ch) in z.iter_mut().enumerate() {
                for v in ch.iter_mut() {
                    *v = (*v - m[c]) * inv[c];
                }
            }
        }
        Ok(z[0].clone())
    }

    /// Dilated depth-separable convolutions with layer norms and GELU (`DDSConv`).
    fn dds_conv(&self, p: &str, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        let layers = (0..)
            .take_while(|i| self.w.contains_key(&format!("{p}.convs_sep.{i}.weight")))
            .count();
        for i in 0..layers {
            let y = self.conv(&format!("{p}.convs_sep.{i}"), &x)?;
            let y = self.norm(&format!("{p}.norms_1.{i}"), &y)?.gelu_erf()?;
            let y = self.conv(&format!("{p}.convs_1x1.{i}"), &y)?;
            let y = self.norm(&format!("{p}.norms_2.{i}"), &y)?.gelu_erf()?;
            x = (x + y)?;
        }
        Ok(x)
    }

    /// A rational-quadratic spline coupling layer run backwards (`ConvFlow`, reverse).
    fn conv_flow_reverse(
        &self,
        p: &str,
        z: &mut [Vec<f64>; 2],
        cond: &Tensor,
    ) -> candle_core::Result<()> {
        let t = z[0].len();
        let filter = self.t(&format!("{p}.pre.weight"))?.dim(0)?;
        let x0 = Tensor::from_vec(
            z[0].iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (1, 1, t),
            &self.device,
        )?;
        let h = self.conv(&format!("{p}.pre"), &x0)?;
        let h = self.dds_conv(&format!("{p}.convs"), &(h + cond)?)?;
        let h = self.conv(&format!("{p}.proj"), &h)?; // [1, 3·bins − 1, T]
        let params = h.dim(1)?;
        let bins = (params + 1) / 3;
        let h: Vec<Vec<f32>> = h.squeeze(0)?.t()?.contiguous()?.to_vec2()?; // [T][params]
        let s = (filter as f64).sqrt();
        for (ti, row) in h.iter().enumerate() {
            let widths: Vec<f64> = row[..bins].iter().map(|&v| v as f64 / s).collect();
            let heights: Vec<f64> = row[bins..2 * bins].iter().map(|&v| v as f64 / s).collect();
            let derivs: Vec<f64> = row[2 * bins..].iter().map(|&v| v as f64).collect();
            z[1][ti] = rq_spline_inverse(z[1][ti], &widths, &heights, &derivs, TAIL_BOUND);
        }
        Ok(())
    }

    /// The normalising flow backwards: prior sample → latent.
    fn flow_reverse(&self, z: &Tensor, g: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let half = self.dims.inter / 2;
        let mut x = z.clone();
        for f in (0..self.dims.flows).rev() {
            x = flip_channels(&x)?;
            let p = format!("flow.flows.{}", 2 * f);
            let x0 = x.narrow(1, 0, half)?;
            let x1 = x.narrow(1, half, half)?;
            let h = self.conv(&format!("{p}.pre"), &x0)?;
            let h = self.wavenet(&format!("{p}.enc"), &h, g)?;
            let m = self.conv(&format!("{p}.post"), &h)?;
            x = Tensor::cat(&[&x0, &(x1 - m)?], 1)?;
        }
        Ok(x)
    }

    /// WaveNet-style gated convolutions (`WN`).
    fn wavenet(&self, p: &str, x: &Tensor, g: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let hidden = x.dim(1)?;
        let layers = (0..)
            .take_while(|i| self.w.contains_key(&format!("{p}.in_layers.{i}.weight")))
            .count();
        let cond = match g {
            Some(g) if self.w.contains_key(&format!("{p}.cond_layer.weight")) => {
                Some(self.conv(&format!("{p}.cond_layer"), g)?)
            }
            _ => None,
        };
        let mut x = x.clone();
        let mut out: Option<Tensor> = None;
        for i in 0..layers {
            let mut x_in = self.conv(&format!("{p}.in_layers.{i}"), &x)?;
            if let Some(c) = &cond {
                x_in = x_in.broadcast_add(&c.narrow(1, i * 2 * hidden, 2 * hidden)?)?;
            }
            let acts = (x_in.narrow(1, 0, hidden)?.tanh()?
                * candle_nn::ops::sigmoid(&x_in.narrow(1, hidden, hidden)?)?)?;
            let rs = self.conv(&format!("{p}.res_skip_layers.{i}"), &acts)?;
            let skip = if i + 1 < layers {
                x = (x + rs.narrow(1, 0, hidden)?)?;
                rs.narrow(1, hidden, hidden)?
            } else {
                rs
            };
            out = Some(match out {
                None => skip,
                Some(o) => (o + skip)?,
            });
        }
        out.ok_or_else(|| candle_core::Error::Msg(format!("{p} has no layers")))
    }

    /// HiFi-GAN: latent `[1, C, frames]` → audio `[1, 1, frames · hop]`.
    fn decode(&self, z: &Tensor, g: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let mut x = self.conv("dec.conv_pre", z)?;
        if let Some(g) = g {
            x = x.broadcast_add(&self.conv("dec.cond", g)?)?;
        }
        let kernels = self.dims.resblock_kernels.len();
        for i in 0..self.dims.upsample_rates.len() {
            x = self.conv_transpose(&format!("dec.ups.{i}"), &leaky(&x, LRELU)?)?;
            let mut sum: Option<Tensor> = None;
            for j in 0..kernels {
                let r = self.resblock(&format!("dec.resblocks.{}", i * kernels + j), &x)?;
                sum = Some(match sum {
                    None => r,
                    Some(s) => (s + r)?,
                });
            }
            x = (sum.expect("at least one resblock") / kernels as f64)?;
        }
        let x = self.conv("dec.conv_post", &leaky(&x, LRELU_POST)?)?;
        x.tanh()
    }

    fn resblock(&self, p: &str, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for c in 0..self.resblock_convs {
            let xt = if self.resblock1 {
                let xt = self.conv(&format!("{p}.convs1.{c}"), &leaky(&x, LRELU)?)?;
                self.conv(&format!("{p}.convs2.{c}"), &leaky(&xt, LRELU)?)?
            } else {
                self.conv(&format!("{p}.convs.{c}"), &leaky(&x, LRELU)?)?
            };
            x = (xt + x)?;
        }
        Ok(x)
    }
}

/// Reverses the channel order of `[1, C, T]` (VITS's `Flip`).
fn flip_channels(x: &Tensor) -> candle_core::Result<Tensor> {
    let c = x.dim(1)?;
    let idx = Tensor::from_vec((0..c as u32).rev().collect::<Vec<_>>(), c, x.device())?;
    x.index_select(&idx, 1)
}

/// `[b, h, l, 2l−1]` relative logits → `[b, h, l, l]` absolute (VITS's pad-and-reshape trick).
fn relative_to_absolute(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, l, _) = x.dims4()?;
    let x = x.pad_with_zeros(D::Minus1, 0, 1)?; // [b,h,l,2l]
    let flat = x
        .reshape((b, h, l * 2 * l))?
        .pad_with_zeros(D::Minus1, 0, l - 1)?;
    flat.reshape((b, h, l + 1, 2 * l - 1))?
        .narrow(2, 0, l)?
        .narrow(3, l - 1, l)
}

/// `[b, h, l, l]` absolute weights → `[b, h, l, 2l−1]` relative.
fn absolute_to_relative(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, l, _) = x.dims4()?;
    let x = x.pad_with_zeros(D::Minus1, 0, l - 1)?; // [b,h,l,2l-1]
    let flat = x
        .reshape((b, h, l * (2 * l - 1)))?
        .pad_with_zeros(D::Minus1, l, 0)?;
    flat.reshape((b, h, l, 2 * l))?
        .narrow(3, 1, 2 * l - 1)?
        .contiguous()
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// Knots of one spline axis: `[left, …, right]` from unnormalised bin sizes.
fn knots(unnormalised: &[f64], min_bin: f64, bound: f64) -> Vec<f64> {
    let n = unnormalised.len();
    let sizes = softmax(unnormalised);
    let mut cum = Vec::with_capacity(n + 1);
    cum.push(-bound);
    let mut acc = 0.0;
    for s in &sizes[..n - 1] {
        acc += min_bin + (1.0 - min_bin * n as f64) * s;
        cum.push(2.0 * bound * acc - bound);
    }
    cum.push(bound);
    cum
}

/// Inverse of the unconstrained rational-quadratic spline with linear tails (Durkan et al.),
/// as VITS's `piecewise_rational_quadratic_transform(…, inverse=True, tails="linear")`.
pub fn rq_spline_inverse(
    y: f64,
    widths: &[f64],
    heights: &[f64],
    derivs: &[f64],
    bound: f64,
) -> f64 {
    if !(-bound..=bound).contains(&y) {
        return y;
    }
    let n = widths.len();
    let cw = knots(widths, MIN_BIN_WIDTH, bound);
    let ch = knots(heights, MIN_BIN_HEIGHT, bound);
    // Tails: the outer derivatives are pinned to 1.
    let edge = ((1.0 - MIN_DERIVATIVE).exp() - 1.0).ln();
    let d = |i: usize| -> f64 {
        let u = if i == 0 || i == n {
            edge
        } else {
            derivs[i - 1]
        };
        MIN_DERIVATIVE + softplus(u)
    };
    // searchsorted with the last knot nudged up, as VITS does.
    let bin = (0..=n)
        .filter(|&i| {
            let k = if i == n { ch[i] + 1e-6 } else { ch[i] };
            y >= k
        })
        .count()
        .saturating_sub(1)
        .min(n - 1);
    let (x_k, w_k) = (cw[bin], cw[bin + 1] - cw[bin]);
    let (y_k, h_k) = (ch[bin], ch[bin + 1] - ch[bin]);
    let delta = h_k / w_k;
    let (d_k, d_k1) = (d(bin), d(bin + 1));
    let dy = y - y_k;
    let a = dy * (d_k + d_k1 - 2.0 * delta) + h_k * (delta - d_k);
    let b = h_k * d_k - dy * (d_k + d_k1 - 2.0 * delta);
    let c = -delta * dy;
    let disc = (b * b - 4.0 * a * c).max(0.0);
    let theta = (2.0 * c) / (-b - disc.sqrt());
    theta * w_k + x_k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forward spline, for checking the inverse.
    fn rq_forward(x: f64, w: &[f64], h: &[f64], dv: &[f64], bound: f64) -> f64 {
        let n = w.len();
        let cw = knots(w, MIN_BIN_WIDTH, bound);
        let ch = knots(h, MIN_BIN_HEIGHT, bound);
        let edge = ((1.0 - MIN_DERIVATIVE).exp() - 1.0).ln();
        let d =
            |i: usize| MIN_DERIVATIVE + softplus(if i == 0 || i == n { edge } else { dv[i - 1] });
        let bin = (0..n).rev().find(|&i| x >= cw[i]).unwrap_or(0);
        let (x_k, w_k, y_k, h_k) = (
            cw[bin],
            cw[bin + 1] - cw[bin],
            ch[bin],
            ch[bin + 1] - ch[bin],
        );
        let delta = h_k / w_k;
        let theta = (x - x_k) / w_k;
        let tt = theta * (1.0 - theta);
        let num = h_k * (delta * theta * theta + d(bin) * tt);
        let den = delta + (d(bin) + d(bin + 1) - 2.0 * delta) * tt;
        y_k + num / den
    }

    #[test]
    fn the_spline_inverse_undoes_the_forward_spline_and_leaves_the_tails_alone() {
        let w = [0.3, -1.0, 2.0, 0.1, 0.0, 0.5, -0.2, 1.1, 0.7, -0.4];
        let h = [1.0, 0.2, -0.3, 0.8, -1.2, 0.0, 0.4, 0.9, -0.1, 0.3];
        let dv = [0.5, -0.5, 1.0, 0.2, -1.0, 0.3, 0.0, 0.8, -0.2];
        for i in 0..=40 {
            let x = -4.9 + i as f64 * 0.245;
            let y = rq_forward(x, &w, &h, &dv, 5.0);
            let back = rq_spline_inverse(y, &w, &h, &dv, 5.0);
            assert!((back - x).abs() < 1e-9, "x {x} → y {y} → {back}");
        }
        assert_eq!(rq_spline_inverse(7.5, &w, &h, &dv, 5.0), 7.5);
        assert_eq!(rq_spline_inverse(-5.5, &w, &h, &dv, 5.0), -5.5);
    }

    #[test]
    fn relative_and_absolute_positions_map_onto_each_other() {
        let dev = Device::Cpu;
        let l = 4;
        // rel[i][r] = 10·i + r; abs[i][j] must be rel[i][j − i + l − 1].
        let rel: Vec<f32> = (0..l)
            .flat_map(|i| (0..2 * l - 1).map(move |r| (10 * i + r) as f32))
            .collect();
        let rel = Tensor::from_vec(rel, (1, 1, l, 2 * l - 1), &dev).unwrap();
        let abs: Vec<Vec<f32>> = relative_to_absolute(&rel)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        for (i, row) in abs.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert_eq!(*v, (10 * i + j + l - 1 - i) as f32);
            }
        }
        let back: Vec<Vec<f32>> = absolute_to_relative(&relative_to_absolute(&rel).unwrap())
            .unwrap()
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        for (i, row) in back.iter().enumerate() {
            for (r, v) in row.iter().enumerate() {
                let j = r as i64 - (l as i64 - 1) + i as i64;
                let want = if (0..l as i64).contains(&j) {
                    (10 * i + r) as f32
                } else {
                    0.0
                };
                assert_eq!(*v, want, "i {i} r {r}");
            }
        }
    }
}
