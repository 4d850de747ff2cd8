//! A 3D convolution over video `[batch, channels, frames, height, width]`, built from candle's
//! 2D convolution because candle has none in 3D.
//!
//! The kernel `[out, in, kt, kh, kw]` is split into its `kt` temporal taps, each a 2D kernel
//! `[out, in, kh, kw]`. For the frames of the (temporally padded) input,
//! `out[t] = bias + Σ_k conv2d(x[t·st + k], W[:, :, k])`: every tap is one conv2d over all the
//! output frames at once (the frames folded into the batch), so a 3×3×3 kernel costs three
//! conv2d calls whatever the clip length.
//!
//! Temporal padding is where the video models differ ([`TimePadding`]): LTX-Video's causal
//! encoder repeats the first frame in front, its non-causal decoder repeats the first frame in
//! front and the last behind, Wan pads zeros in front. Spatial padding is zeros.
//!
//! The same convolution runs on a stream of frame chunks ([`CausalConv3d::step`] with a
//! [`Conv3dState`]): the state keeps the input frames the next output frames still need (the last
//! `kt − st` of them, with a stride), so a clip fed in chunks gives the same frames as the clip
//! fed at once. For the non-causal mode the output lags the input by `(kt − 1)/2` frames (the
//! frames behind the last one are known only when the stream ends).

use candle_core::{Result, Tensor};
use candle_nn as nn;

/// How the frame axis is padded before the (valid) temporal convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimePadding {
    /// `kt − 1` copies of the first frame in front (LTX-Video's causal convolution): output frame
    /// `t` sees the input frames up to `t·st`, never a later one.
    ReplicateFirst,
    /// `(kt − 1)/2` copies of the first frame in front and as many of the last frame behind (LTX
    /// decoder's `is_causal = False`).
    ReplicateBoth,
    /// `kt − 1` zero frames in front (Wan2.1's causal convolution). Streamed, the zeros stand in
    /// front of the first chunk only; later chunks get the previous chunk's last frames instead
    /// (Wan's feature cache).
    ZerosFront,
    /// No temporal padding: `(T − kt)/st + 1` output frames.
    None,
}

impl TimePadding {
    /// Frames added in front and behind for a temporal kernel of `kt`.
    pub fn amounts(self, kt: usize) -> (usize, usize) {
        let k = kt.saturating_sub(1);
        match self {
            TimePadding::ReplicateFirst | TimePadding::ZerosFront => (k, 0),
            TimePadding::ReplicateBoth => (k / 2, k / 2),
            TimePadding::None => (0, 0),
        }
    }
}

/// Stride and padding of a [`CausalConv3d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dConfig {
    /// (time, height, width).
    pub stride: (usize, usize, usize),
    /// Zero padding on each side of (height, width).
    pub padding: (usize, usize),
    pub time_padding: TimePadding,
}

impl Conv3dConfig {
    /// Stride 1, "same" spatial padding for a kernel of `kh × kw` (odd sizes), the given time mode.
    pub fn same(kernel: (usize, usize, usize), time_padding: TimePadding) -> Self {
        Self {
            stride: (1, 1, 1),
            padding: (kernel.1 / 2, kernel.2 / 2),
            time_padding,
        }
    }
}

/// A 3D convolution with the temporal padding of the video models (see the module doc).
#[derive(Clone, Debug)]
pub struct CausalConv3d {
    /// The kernel's temporal taps, `kt` tensors `[out, in, kh, kw]`.
    taps: Vec<Tensor>,
    /// `[1, out, 1, 1]`, added once after the taps are summed.
    bias: Option<Tensor>,
    kernel: (usize, usize, usize),
    in_channels: usize,
    out_channels: usize,
    cfg: Conv3dConfig,
}

/// Where a streamed [`CausalConv3d`] stands between chunks.
#[derive(Clone, Debug, Default)]
pub struct Conv3dState {
    /// Input frames (padding included) the next output frames start at.
    kept: Option<Tensor>,
    /// Input frames to drop before the next window starts (a temporal stride larger than the
    /// kernel skips frames).
    skip: usize,
    /// The front padding is in (the first chunk has been seen).
    started: bool,
    /// The last input frame, repeated behind the clip when the stream ends
    /// ([`TimePadding::ReplicateBoth`]).
    last_frame: Option<Tensor>,
    finished: bool,
}

impl Conv3dState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the stream has ended (`last` was given).
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl CausalConv3d {
    /// From a kernel `[out, in, kt, kh, kw]` and an optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, cfg: Conv3dConfig) -> Result<Self> {
        let (out_channels, in_channels, kt, kh, kw) = weight.dims5()?;
        let (st, sh, sw) = cfg.stride;
        if st == 0 || sh == 0 || sw == 0 || kt == 0 {
            candle_core::bail!(
                "conv3d: stride {:?} and kernel depth {kt} must be ≥ 1",
                cfg.stride
            );
        }
        let taps = (0..kt)
            .map(|k| weight.narrow(2, k, 1)?.squeeze(2)?.contiguous())
            .collect::<Result<Vec<_>>>()?;
        let bias = match bias {
            Some(b) => {
                if b.dims() != [out_channels] {
                    candle_core::bail!(
                        "conv3d: bias of shape {:?} for {out_channels} output channels",
                        b.dims()
                    );
                }
                Some(b.reshape((1, out_channels, 1, 1))?)
            }
            None => None,
        };
        Ok(Self {
            taps,
            bias,
            kernel: (kt, kh, kw),
            in_channels,
            out_channels,
            cfg,
        })
    }

    /// `weight` `[out, in, kt, kh, kw]` (and `bias` `[out]` when `bias`) from `vb`.
    pub fn load(
        vb: nn::VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize, usize),
        cfg: Conv3dConfig,
        bias: bool,
    ) -> Result<Self> {
        let (kt, kh, kw) = kernel;
        let w = vb.get((out_channels, in_channels, kt, kh, kw), "weight")?;
        let b = if bias {
            Some(vb.get(out_channels, "bias")?)
        } else {
            None
        };
        Self::new(w, b, cfg)
    }

    /// (kt, kh, kw).
    pub fn kernel(&self) -> (usize, usize, usize) {
        self.kernel
    }

    pub fn config(&self) -> &Conv3dConfig {
        &self.cfg
    }

    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The whole clip `[b, in, t, h, w]` at once.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut state = Conv3dState::new();
        match self.step(&mut state, Some(x), true)? {
            Some(y) => Ok(y),
            None => candle_core::bail!(
                "conv3d: {} frames give no output frame for a temporal kernel of {} ({:?} padding)",
                x.dim(2)?,
                self.kernel.0,
                self.cfg.time_padding
            ),
        }
    }

    /// One chunk of a stream: `x` (the next frames, or none), `last` when the stream ends with
    /// it. Returns the output frames that are now complete (none while a window still waits for
    /// frames). Chunks of any sizes give, concatenated, exactly [`forward`](Self::forward)'s
    /// frames.
    pub fn step(
        &self,
        state: &mut Conv3dState,
        x: Option<&Tensor>,
        last: bool,
    ) -> Result<Option<Tensor>> {
        if state.finished {
            candle_core::bail!("conv3d: a chunk after the stream's last one");
        }
        let (kt, _, _) = self.kernel;
        let (front, back) = self.cfg.time_padding.amounts(kt);
        let mut parts: Vec<Tensor> = Vec::with_capacity(4);
        if let Some(k) = state.kept.take() {
            parts.push(k);
        }
        if let Some(x) = x {
            let (_, c, t, _, _) = x.dims5()?;
            if c != self.in_channels {
                candle_core::bail!(
                    "conv3d: input has {c} channels, the kernel takes {}",
                    self.in_channels
                );
            }
            if t > 0 {
                if !state.started {
                    if front > 0 {
                        let first = x.narrow(2, 0, 1)?;
                        parts.push(match self.cfg.time_padding {
                            TimePadding::ZerosFront => repeat_frames(&first.zeros_like()?, front)?,
                            _ => repeat_frames(&first, front)?,
                        });
                    }
                    state.started = true;
                }
                if back > 0 {
                    state.last_frame = Some(x.narrow(2, t - 1, 1)?);
                }
                parts.push(x.clone());
            }
        }
        if last {
            state.finished = true;
            if back > 0 {
                if let Some(lf) = state.last_frame.take() {
                    parts.push(repeat_frames(&lf, back)?);
                }
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let seq = if parts.len() == 1 {
            parts.pop().unwrap_or_else(|| unreachable!())
        } else {
            let refs: Vec<&Tensor> = parts.iter().collect();
            Tensor::cat(&refs, 2)?
        };
        let len = seq.dim(2)?;
        let drop = state.skip.min(len);
        state.skip -= drop;
        let len = len - drop;
        if len == 0 {
            return Ok(None);
        }
        let seq = if drop > 0 {
            seq.narrow(2, drop, len)?
        } else {
            seq
        };
        let st = self.cfg.stride.0;
        let n = if len >= kt { (len - kt) / st + 1 } else { 0 };
        let next = n * st;
        if next < len {
            state.kept = Some(seq.narrow(2, next, len - next)?);
        } else {
            state.skip = next - len;
        }
        if n == 0 {
            return Ok(None);
        }
        self.valid(&seq, n).map(Some)
    }

    /// The `n` output frames of windows starting at frames `0, st, 2·st, …` of `seq` (no temporal
    /// padding): the sum over the taps of one conv2d each.
    fn valid(&self, seq: &Tensor, n: usize) -> Result<Tensor> {
        let (b, c, _, _, _) = seq.dims5()?;
        let (st, sh, sw) = self.cfg.stride;
        let (ph, pw) = self.cfg.padding;
        // Frames next to each other in memory: a tap's frames are then a slice of the batch.
        let mut frames = seq.permute((0, 2, 1, 3, 4))?.contiguous()?;
        // candle's conv2d pads and strides both axes alike; anything else is done here: unequal
        // padding before, unequal strides by keeping every s-th row/column of a stride-1 result.
        let pad = if ph == pw {
            ph
        } else {
            frames = frames
                .pad_with_zeros(3, ph, ph)?
                .pad_with_zeros(4, pw, pw)?;
            0
        };
        let stride2d = if sh == sw { sh } else { 1 };
        let mut acc: Option<Tensor> = None;
        for (k, tap) in self.taps.iter().enumerate() {
            let sel = if st == 1 {
                frames.narrow(1, k, n)?
            } else {
                let idx: Vec<u32> = (0..n).map(|t| (t * st + k) as u32).collect();
                let idx = Tensor::from_vec(idx, n, frames.device())?;
                frames.index_select(&idx, 1)?
            };
            let (_, _, _, h, w) = sel.dims5()?;
            let sel = sel.reshape((b * n, c, h, w))?;
            let y = sel.conv2d(tap, pad, stride2d, 1, 1)?;
            acc = Some(match acc {
                Some(a) => (a + y)?,
                None => y,
            });
        }
        let mut y = match acc {
            Some(y) => y,
            None => candle_core::bail!("conv3d: a kernel without taps"),
        };
        if sh != sw {
            y = subsample(&y, 2, sh)?;
            y = subsample(&y, 3, sw)?;
        }
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(bias)?;
        }
        let (_, o, ho, wo) = y.dims4()?;
        y.reshape((b, n, o, ho, wo))?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()
    }
}

/// `frame` (`[b, c, 1, h, w]`) `n` times along the frame axis.
fn repeat_frames(frame: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(frame.clone());
    }
    frame.repeat((1, 1, n, 1, 1))
}

/// Every `step`-th element along `dim`, from the first.
fn subsample(x: &Tensor, dim: usize, step: usize) -> Result<Tensor> {
    if step == 1 {
        return Ok(x.clone());
    }
    let len = x.dim(dim)?;
    let idx: Vec<u32> = (0..len.div_ceil(step)).map(|i| (i * step) as u32).collect();
    let n = idx.len();
    x.index_select(&Tensor::from_vec(idx, n, x.device())?, dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use reelsmith_kit::noise::{Noise, Seeded};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        Seeded::new(seed).draw(shape, &Device::Cpu).unwrap()
    }

    /// out[b, o, t, y, x] by the definition, on the padded clip.
    #[allow(clippy::too_many_arguments)]
    fn naive(x: &Tensor, w: &Tensor, bias: &Tensor, cfg: Conv3dConfig) -> Tensor {
        let (b, c, t, h, wd) = x.dims5().unwrap();
        let (o, _, kt, kh, kw) = w.dims5().unwrap();
        let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let wv = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let bv = bias.to_vec1::<f32>().unwrap();
        let (front, back) = cfg.time_padding.amounts(kt);
        let tp = t + front + back;
        // The padded clip's frame `i`, as an index into x (None: zeros).
        let src = |i: usize| -> Option<usize> {
            if i < front {
                match cfg.time_padding {
                    TimePadding::ZerosFront => None,
                    _ => Some(0),
                }
            } else if i < front + t {
                Some(i - front)
            } else {
                Some(t - 1)
            }
        };
        let (st, sh, sw) = cfg.stride;
        let (ph, pw) = cfg.padding;
        let to = (tp - kt) / st + 1;
        let ho = (h + 2 * ph - kh) / sh + 1;
        let wo = (wd + 2 * pw - kw) / sw + 1;
        let mut out = vec![0f32; b * o * to * ho * wo];
        for bi in 0..b {
            for oi in 0..o {
                for ti in 0..to {
                    for yi in 0..ho {
                        for xi in 0..wo {
                            let mut s = bv[oi] as f64;
                            for ci in 0..c {
                                for k in 0..kt {
                                    let Some(f) = src(ti * st + k) else { continue };
                                    for dy in 0..kh {
                                        let yy = (yi * sh + dy) as isize - ph as isize;
                                        if yy < 0 || yy >= h as isize {
                                            continue;
                                        }
                                        for dx in 0..kw {
                                            let xx = (xi * sw + dx) as isize - pw as isize;
                                            if xx < 0 || xx >= wd as isize {
                                                continue;
                                            }
                                            let xv_i = (((bi * c + ci) * t + f) * h + yy as usize)
                                                * wd
                                                + xx as usize;
                                            let wv_i =
                                                (((oi * c + ci) * kt + k) * kh + dy) * kw + dx;
                                            s += xv[xv_i] as f64 * wv[wv_i] as f64;
                                        }
                                    }
                                }
                            }
                            out[(((bi * o + oi) * to + ti) * ho + yi) * wo + xi] = s as f32;
                        }
                    }
                }
            }
        }
        Tensor::from_vec(out, (b, o, to, ho, wo), &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
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

    fn cases() -> Vec<((usize, usize, usize), Conv3dConfig)> {
        let mut v = Vec::new();
        for mode in [
            TimePadding::ReplicateFirst,
            TimePadding::ReplicateBoth,
            TimePadding::ZerosFront,
            TimePadding::None,
        ] {
            for (kernel, stride, padding) in [
                ((3, 3, 3), (1, 1, 1), (1, 1)),
                ((3, 3, 3), (2, 2, 2), (1, 1)),
                ((3, 1, 1), (2, 1, 1), (0, 0)),
                ((1, 3, 3), (1, 2, 2), (0, 0)),
                ((2, 3, 1), (1, 2, 1), (1, 0)),
                ((1, 1, 1), (1, 1, 1), (0, 0)),
                ((3, 3, 3), (3, 1, 1), (1, 1)),
            ] {
                v.push((
                    kernel,
                    Conv3dConfig {
                        stride,
                        padding,
                        time_padding: mode,
                    },
                ));
            }
        }
        v
    }

    #[test]
    fn matches_the_direct_sum_in_every_mode() {
        for (i, (kernel, cfg)) in cases().into_iter().enumerate() {
            let (kt, kh, kw) = kernel;
            let x = rand(&[2, 3, 7, 6, 5], 10 + i as u64);
            let w = rand(&[4, 3, kt, kh, kw], 100 + i as u64);
            let b = rand(&[4], 1000 + i as u64);
            let conv = CausalConv3d::new(w.clone(), Some(b.clone()), cfg).unwrap();
            let got = conv.forward(&x).unwrap();
            let want = naive(&x, &w, &b, cfg);
            let d = max_abs_diff(&got, &want);
            assert!(d <= 1e-5, "case {i} {kernel:?} {cfg:?}: max|Δ| {d}");
        }
    }

    #[test]
    fn chunked_stream_equals_the_whole_clip() {
        for (i, (kernel, cfg)) in cases().into_iter().enumerate() {
            let (kt, kh, kw) = kernel;
            let x = rand(&[1, 2, 11, 5, 4], 20 + i as u64);
            let w = rand(&[3, 2, kt, kh, kw], 200 + i as u64);
            let b = rand(&[3], 2000 + i as u64);
            let conv = CausalConv3d::new(w, Some(b), cfg).unwrap();
            let whole = conv.forward(&x).unwrap();
            for sizes in [vec![1; 11], vec![2, 3, 1, 5], vec![4, 4, 3], vec![10, 1]] {
                let mut st = Conv3dState::new();
                let mut outs = Vec::new();
                let mut at = 0;
                for (j, &n) in sizes.iter().enumerate() {
                    let chunk = x.narrow(2, at, n).unwrap();
                    at += n;
                    if let Some(y) = conv
                        .step(&mut st, Some(&chunk), j + 1 == sizes.len())
                        .unwrap()
                    {
                        outs.push(y);
                    }
                }
                let refs: Vec<&Tensor> = outs.iter().collect();
                let streamed = Tensor::cat(&refs, 2).unwrap();
                let d = max_abs_diff(&streamed, &whole);
                assert!(d <= 1e-5, "case {i} chunks {sizes:?}: max|Δ| {d}");
            }
        }
    }

    #[test]
    fn the_stream_ends_with_an_empty_last_chunk_too() {
        let cfg = Conv3dConfig::same((3, 3, 3), TimePadding::ReplicateBoth);
        let x = rand(&[1, 2, 4, 3, 3], 5);
        let conv = CausalConv3d::new(rand(&[2, 2, 3, 3, 3], 6), None, cfg).unwrap();
        let whole = conv.forward(&x).unwrap();
        let mut st = Conv3dState::new();
        let a = conv.step(&mut st, Some(&x), false).unwrap().unwrap();
        // One frame waits for the frame behind the last.
        assert_eq!(a.dim(2).unwrap(), 3);
        let b = conv.step(&mut st, None, true).unwrap().unwrap();
        let streamed = Tensor::cat(&[&a, &b], 2).unwrap();
        assert!(max_abs_diff(&streamed, &whole) <= 1e-6);
        assert!(st.is_finished());
        assert!(conv.step(&mut st, None, true).is_err());
    }

    #[test]
    fn causal_output_never_sees_later_frames() {
        let cfg = Conv3dConfig::same((3, 3, 3), TimePadding::ReplicateFirst);
        let conv = CausalConv3d::new(rand(&[2, 2, 3, 3, 3], 7), None, cfg).unwrap();
        let x = rand(&[1, 2, 6, 4, 4], 8);
        let y = conv.forward(&x).unwrap();
        let y3 = conv.forward(&x.narrow(2, 0, 3).unwrap()).unwrap();
        assert!(max_abs_diff(&y.narrow(2, 0, 3).unwrap(), &y3) == 0.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let cfg = Conv3dConfig::same((3, 3, 3), TimePadding::None);
        let conv = CausalConv3d::new(rand(&[2, 2, 3, 3, 3], 9), None, cfg).unwrap();
        assert!(conv.forward(&rand(&[1, 3, 4, 4, 4], 1)).is_err());
        assert!(conv.forward(&rand(&[1, 2, 2, 4, 4], 1)).is_err());
        assert!(conv.forward(&rand(&[2, 4, 4, 4], 1)).is_err());
        let bad_bias = CausalConv3d::new(rand(&[2, 2, 3, 3, 3], 9), Some(rand(&[3], 1)), cfg);
        assert!(bad_bias.is_err());
    }
}
