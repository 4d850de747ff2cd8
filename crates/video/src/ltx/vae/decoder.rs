//! The decoder (diffusers `LTXVideoDecoder3d`), written as a chain of streaming stages so that
//! one code path decodes a clip at once, in chunks of latent frames, and on spatial tiles.
//!
//! The stages are: the input convolution, each resnet of the mid block, for each up block its
//! width-changing resnet, its upsampler and its resnets, and the head (RMS norm, timestep
//! modulation, SiLU, output convolution, unpatchify). Each keeps its own stream state: the last
//! input frames of its convolutions and the shortcut frames waiting for them. The non-causal
//! decoder's convolutions look one frame ahead, so a stage's output lags its input; the lags add
//! up to tens of latent frames over the network, but every stage holds only a couple of frames,
//! and a [`DecodeRun`] pushes frames through the deepest stage that has work first, in pieces of
//! bounded length, so peak memory is bounded by the chunk size whatever the clip length.
//!
//! Timestep conditioning (0.9.1+) and noise injection (0.9.1) are computed before any frame:
//! the embeddings once per decode, the noise images drawn in diffusers' order at the full
//! latent size and cropped to each tile, so a tiled, chunked decode draws and uses exactly what
//! a single-pass one does.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn as nn;

use super::blocks::{
    depth_to_space, ltx_conv, rms_norm, FrameQueue, Resnet, ResnetCond, ResnetState, TimeEmbedder,
    Upsampler, UpsamplerState,
};
use super::config::LtxVaeConfig;
use super::encoder::swap_patch_axes;
use crate::conv3d::{CausalConv3d, Conv3dState};
use reelsmith_kit::noise::Noise;

enum Stage {
    ConvIn(CausalConv3d),
    /// A resnet; `temb` indexes the block embeddings (0: mid block, `i + 1`: up block `i`).
    Resnet {
        block: Box<Resnet>,
        temb: usize,
    },
    Upsample(Upsampler),
    Head,
}

enum StageState {
    Conv(Conv3dState),
    Resnet(Box<ResnetState>, ResnetCond),
    Upsample(UpsamplerState),
}

pub(crate) struct Decoder {
    stages: Vec<Stage>,
    /// Per stage: its spatial scale and frame rate relative to the latents.
    scales: Vec<(usize, usize)>,
    conv_out: CausalConv3d,
    /// The mid block's and each up block's timestep embedder.
    block_embedders: Vec<Option<TimeEmbedder>>,
    /// The head's embedder and its `[2, c]` table.
    head_embedder: Option<(TimeEmbedder, Tensor)>,
    timestep_scale_multiplier: Option<Tensor>,
    patch: usize,
    patch_t: usize,
}

/// The per-decode conditioning: the timestep modulations of every resnet stage and of the head,
/// and the full-size noise images (already scaled per channel) of every noise-injecting resnet.
pub(crate) struct DecodeCond {
    modulation: Vec<Option<[Tensor; 4]>>,
    head: Option<[Tensor; 2]>,
    noise: Vec<Option<[Tensor; 2]>>,
}

fn rev<T: Clone>(v: &[T]) -> Vec<T> {
    v.iter().rev().cloned().collect()
}

fn at<T: Copy>(v: &[T], i: usize, what: &str) -> Result<T> {
    match v.get(i) {
        Some(x) => Ok(*x),
        None => candle_core::bail!("LTX VAE config: {what} has no entry {i} (reversed)"),
    }
}

impl Decoder {
    pub(crate) fn new(vb: nn::VarBuilder, cfg: &LtxVaeConfig) -> Result<Self> {
        let causal = cfg.decoder_causal;
        let eps = cfg.resnet_norm_eps;
        let tc = cfg.timestep_conditioning;
        let bo = rev(&cfg.decoder_block_out_channels);
        let scaling = rev(&cfg.decoder_spatio_temporal_scaling);
        let layers = rev(&cfg.decoder_layers_per_block);
        let inject = rev(&cfg.decoder_inject_noise);
        let residual = rev(&cfg.upsample_residual);
        let factor = rev(&cfg.upsample_factor);
        let mut out = at(&bo, 0, "decoder_block_out_channels")?;
        let mut stages = Vec::new();
        let mut scales = Vec::new();
        let (mut s, mut r) = (1usize, 1usize);
        stages.push(Stage::ConvIn(ltx_conv(
            vb.pp("conv_in"),
            cfg.latent_channels,
            out,
            3,
            (1, 1, 1),
            causal,
        )?));
        scales.push((s, r));
        let mut block_embedders = Vec::new();
        let vm = vb.pp("mid_block");
        block_embedders.push(if tc {
            Some(TimeEmbedder::new(vm.pp("time_embedder"), out * 4)?)
        } else {
            None
        });
        let mid_noise = at(&inject, 0, "decoder_inject_noise")?;
        for j in 0..at(&layers, 0, "decoder_layers_per_block")? {
            let block = Box::new(Resnet::new(
                vm.pp("resnets").pp(j),
                out,
                out,
                eps,
                causal,
                mid_noise,
                tc,
            )?);
            stages.push(Stage::Resnet { block, temb: 0 });
            scales.push((s, r));
        }
        for (i, &width) in bo.iter().enumerate() {
            let f = at(&factor, i, "upsample_factor")?;
            if f == 0 {
                candle_core::bail!("LTX VAE config: upsample_factor 0");
            }
            let cin = out / f;
            out = width / f;
            let vu = vb.pp("up_blocks").pp(i);
            let noise = at(&inject, i + 1, "decoder_inject_noise")?;
            block_embedders.push(if tc {
                Some(TimeEmbedder::new(vu.pp("time_embedder"), cin * 4)?)
            } else {
                None
            });
            if cin != out {
                if tc {
                    // diffusers hands this resnet the raw timestep instead of an embedding.
                    candle_core::bail!(
                        "LTX VAE config: a timestep-conditioned up block that changes width \
                         ({cin} → {out}) (diffusers cannot run it)"
                    );
                }
                let block = Box::new(Resnet::new(
                    vu.pp("conv_in"),
                    cin,
                    out,
                    eps,
                    causal,
                    noise,
                    tc,
                )?);
                stages.push(Stage::Resnet { block, temb: i + 1 });
                scales.push((s, r));
            }
            if at(&scaling, i, "decoder_spatio_temporal_scaling")? {
                let res = at(&residual, i, "upsample_residual")?;
                let up = Upsampler::new(
                    vu.pp("upsamplers").pp(0),
                    out * f,
                    (2, 2, 2),
                    causal,
                    res,
                    f,
                )?;
                stages.push(Stage::Upsample(up));
                scales.push((s, r));
                s *= 2;
                r *= 2;
            }
            for j in 0..at(&layers, i + 1, "decoder_layers_per_block")? {
                let block = Box::new(Resnet::new(
                    vu.pp("resnets").pp(j),
                    out,
                    out,
                    eps,
                    causal,
                    noise,
                    tc,
                )?);
                stages.push(Stage::Resnet { block, temb: i + 1 });
                scales.push((s, r));
            }
        }
        let p = cfg.patch_size;
        let conv_out = ltx_conv(
            vb.pp("conv_out"),
            out,
            cfg.out_channels * p * p,
            3,
            (1, 1, 1),
            causal,
        )?;
        stages.push(Stage::Head);
        scales.push((s, r));
        let (head_embedder, timestep_scale_multiplier) = if tc {
            (
                Some((
                    TimeEmbedder::new(vb.pp("time_embedder"), out * 2)?,
                    vb.get((2, out), "scale_shift_table")?,
                )),
                Some(vb.get((), "timestep_scale_multiplier")?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            stages,
            scales,
            conv_out,
            block_embedders,
            head_embedder,
            timestep_scale_multiplier,
            patch: p,
            patch_t: cfg.patch_size_t,
        })
    }

    /// Whether a decode needs a noise source.
    pub(crate) fn injects_noise(&self) -> bool {
        self.stages
            .iter()
            .any(|s| matches!(s, Stage::Resnet { block, .. } if block.injects_noise()))
    }

    /// Output pixels per latent pixel (the upsamplers and the patch).
    pub(crate) fn spatial_factor(&self) -> usize {
        self.scales.last().map(|s| s.0).unwrap_or(1) * self.patch
    }

    /// How far (in latent pixels, rounded up) an output pixel sees: each "same" 3×3 convolution
    /// at spatial scale `s` reaches `1/s` latent pixel further. A tile whose window extends this
    /// far past the pixels it keeps decodes them exactly as the whole frame would.
    pub(crate) fn receptive_radius(&self) -> usize {
        // In units of 1/scale_max latent pixels.
        let top = self.scales.last().map(|s| s.0).unwrap_or(1);
        let mut units = 0usize;
        for (stage, &(s, _)) in self.stages.iter().zip(&self.scales) {
            let convs = match stage {
                Stage::ConvIn(_) | Stage::Upsample(_) | Stage::Head => 1,
                Stage::Resnet { .. } => 2,
            };
            units += convs * top / s;
        }
        units.div_ceil(top)
    }

    /// The timestep embeddings and the noise, for latents of `b × h × w`.
    pub(crate) fn condition(
        &self,
        b: usize,
        (h, w): (usize, usize),
        temb: Option<&Tensor>,
        mut noise: Option<&mut dyn Noise>,
        dtype: DType,
        device: &Device,
    ) -> Result<DecodeCond> {
        let temb = match (&self.timestep_scale_multiplier, temb) {
            (None, _) => None,
            (Some(_), None) => candle_core::bail!(
                "LTX VAE: this decoder is timestep-conditioned: give the decode timestep"
            ),
            (Some(m), Some(t)) => {
                let t = t.to_device(device)?.to_dtype(DType::F32)?.flatten_all()?;
                let t = match t.dim(0)? {
                    1 if b > 1 => t.repeat(b)?,
                    n if n == b => t,
                    n => candle_core::bail!("LTX VAE: {n} decode timesteps for a batch of {b}"),
                };
                Some(t.broadcast_mul(&m.to_dtype(DType::F32)?)?)
            }
        };
        let embs = self
            .block_embedders
            .iter()
            .map(|e| match (e, &temb) {
                (Some(e), Some(t)) => e.forward(t, dtype).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut modulation = Vec::with_capacity(self.stages.len());
        let mut noises = Vec::with_capacity(self.stages.len());
        if self.injects_noise() && noise.is_none() {
            candle_core::bail!("LTX VAE: this decoder injects noise: give a noise source");
        }
        for (stage, &(s, _)) in self.stages.iter().zip(&self.scales) {
            let Stage::Resnet { block, temb: ti } = stage else {
                modulation.push(None);
                noises.push(None);
                continue;
            };
            modulation.push(block.modulation(embs.get(*ti).and_then(|e| e.as_ref()))?);
            noises.push(match (block.noise_scales(), noise.as_deref_mut()) {
                (Some([s1, s2]), Some(src)) => {
                    // torch.randn((h, w)) times the per-channel scale: one image for every
                    // channel, frame and batch entry. The first convolution's draw comes first.
                    let mut image = |sc: &Tensor| -> Result<Tensor> {
                        let n = src.draw(&[h * s, w * s], device)?.to_dtype(dtype)?;
                        let c = sc.dim(0)?;
                        n.unsqueeze(0)?
                            .broadcast_mul(&sc.to_dtype(dtype)?.reshape((c, 1, 1))?)?
                            .reshape((1, c, 1, h * s, w * s))
                    };
                    let first = image(s1)?;
                    Some([first, image(s2)?])
                }
                _ => None,
            });
        }
        let head = match (&self.head_embedder, &temb) {
            (Some((e, table)), Some(t)) => {
                let emb = e.forward(t, dtype)?;
                let c = table.dim(1)?;
                let m = emb
                    .reshape((b, 2, c))?
                    .broadcast_add(&table.unsqueeze(0)?.to_dtype(dtype)?)?;
                Some([
                    m.narrow(1, 0, 1)?.reshape((b, c, 1, 1, 1))?,
                    m.narrow(1, 1, 1)?.reshape((b, c, 1, 1, 1))?,
                ])
            }
            _ => None,
        };
        Ok(DecodeCond {
            modulation,
            head,
            noise: noises,
        })
    }

    /// The head: RMS norm, modulation, SiLU, output convolution, unpatchify.
    fn head(
        &self,
        st: &mut Conv3dState,
        x: Option<Tensor>,
        last: bool,
        cond: &DecodeCond,
    ) -> Result<Option<Tensor>> {
        let h = match x {
            Some(x) => {
                let mut h = rms_norm(&x)?;
                if let Some([shift, scale]) = &cond.head {
                    h = h.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift)?;
                }
                Some(nn::ops::silu(&h)?)
            }
            None => None,
        };
        let Some(y) = self.conv_out.step(st, h.as_ref(), last)? else {
            return Ok(None);
        };
        let (p, pt) = (self.patch, self.patch_t);
        let c = y.dim(1)?;
        if !c.is_multiple_of(pt * p * p) {
            candle_core::bail!("LTX VAE: {c} output channels for {pt}×{p}×{p} patches");
        }
        // diffusers' patch channel order is (c, t, x, y): width before height.
        let y = swap_patch_axes(&y, c / (p * p), p)?;
        depth_to_space(&y, (pt, p, p)).map(Some)
    }
}

/// One decode in progress over one spatial window: the stages' states, the frames waiting
/// between them, and the decoded frames not yet taken.
pub(crate) struct DecodeRun<'a> {
    dec: &'a Decoder,
    cond: &'a DecodeCond,
    states: Vec<StageState>,
    /// `queues[i]`: stage `i`'s pending input; the last one holds the decoded frames.
    queues: Vec<FrameQueue>,
    /// Stage `i`'s input has ended (the stage flushes once its queue is empty).
    ended: Vec<bool>,
    flushed: Vec<bool>,
    /// Most frames a stage takes at once.
    caps: Vec<usize>,
}

impl<'a> DecodeRun<'a> {
    /// A run over the latent window whose top-left corner is `origin` and size `size` (noise
    /// cropped to it); stages take at most `chunk` latent frames' worth of frames at a time.
    pub(crate) fn new(
        dec: &'a Decoder,
        cond: &'a DecodeCond,
        origin: (usize, usize),
        size: (usize, usize),
        chunk: usize,
    ) -> Result<Self> {
        let n = dec.stages.len();
        let mut states = Vec::with_capacity(n);
        for (i, stage) in dec.stages.iter().enumerate() {
            states.push(match stage {
                Stage::ConvIn(_) | Stage::Head => StageState::Conv(Conv3dState::new()),
                Stage::Upsample(_) => StageState::Upsample(UpsamplerState::default()),
                Stage::Resnet { .. } => {
                    let s = dec.scales[i].0;
                    let noise = match &cond.noise[i] {
                        Some(pair) => {
                            let crop = |t: &Tensor| -> Result<Tensor> {
                                t.narrow(3, origin.0 * s, size.0 * s)?.narrow(
                                    4,
                                    origin.1 * s,
                                    size.1 * s,
                                )
                            };
                            Some([crop(&pair[0])?, crop(&pair[1])?])
                        }
                        None => None,
                    };
                    StageState::Resnet(
                        Box::default(),
                        ResnetCond {
                            modulation: cond.modulation[i].clone(),
                            noise,
                        },
                    )
                }
            });
        }
        let caps = dec
            .scales
            .iter()
            .map(|&(_, r)| chunk.saturating_mul(r).max(1))
            .collect();
        Ok(Self {
            dec,
            cond,
            states,
            queues: vec![FrameQueue::default(); n + 1],
            ended: vec![false; n + 1],
            flushed: vec![false; n],
            caps,
        })
    }

    /// The next latent frames `[b, c, f, h, w]` of this window; `last` with the clip's end.
    pub(crate) fn feed(&mut self, z: Option<Tensor>, last: bool) -> Result<()> {
        if self.ended[0] {
            candle_core::bail!("LTX VAE: latents fed after the last chunk");
        }
        if let Some(z) = z {
            self.queues[0].push(z)?;
        }
        self.ended[0] = last;
        Ok(())
    }

    /// Decoded frames ready to take.
    pub(crate) fn ready(&self) -> usize {
        self.queues[self.dec.stages.len()].len()
    }

    /// Whether every frame has been decoded (and the clip has ended).
    pub(crate) fn done(&self) -> bool {
        self.flushed.last().copied().unwrap_or(true)
    }

    /// Runs stages, deepest first, until `want` frames are ready or no stage can go on without
    /// more latents.
    pub(crate) fn pump(&mut self, want: usize) -> Result<()> {
        let n = self.dec.stages.len();
        while self.ready() < want {
            let Some(i) = (0..n)
                .rev()
                .find(|&i| !self.flushed[i] && (self.queues[i].len() > 0 || self.ended[i]))
            else {
                return Ok(());
            };
            let avail = self.queues[i].len();
            let take = avail.min(self.caps[i]);
            let x = if take > 0 {
                Some(self.queues[i].take(take)?)
            } else {
                None
            };
            let last = self.ended[i] && take == avail;
            let y = self.run_stage(i, x, last)?;
            if let Some(y) = y {
                self.queues[i + 1].push(y)?;
            }
            if last {
                self.flushed[i] = true;
                self.ended[i + 1] = true;
            }
        }
        Ok(())
    }

    /// The first `n` decoded frames.
    pub(crate) fn take(&mut self, n: usize) -> Result<Tensor> {
        let k = self.dec.stages.len();
        self.queues[k].take(n)
    }

    fn run_stage(&mut self, i: usize, x: Option<Tensor>, last: bool) -> Result<Option<Tensor>> {
        match (&self.dec.stages[i], &mut self.states[i]) {
            (Stage::ConvIn(c), StageState::Conv(st)) => c.step(st, x.as_ref(), last),
            (Stage::Head, StageState::Conv(st)) => self.dec.head(st, x, last, self.cond),
            (Stage::Resnet { block, .. }, StageState::Resnet(st, cond)) => {
                block.step(st, x, last, cond)
            }
            (Stage::Upsample(u), StageState::Upsample(st)) => u.step(st, x, last),
            _ => candle_core::bail!("LTX VAE: decoder stage {i} has the wrong state"),
        }
    }
}

/// Output channels and the frames a latent clip of `f` frames decodes to.
pub(crate) fn output_frames(dec: &Decoder, f: usize) -> usize {
    let mut n = f;
    for stage in &dec.stages {
        if let Stage::Upsample(u) = stage {
            let st = u.stride().0;
            n = (n * st).saturating_sub(st - 1);
        }
    }
    n * dec.patch_t
}
