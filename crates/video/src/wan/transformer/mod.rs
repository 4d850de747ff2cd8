//! The Wan2.1 denoiser: diffusers' `WanTransformer3DModel` (T2V-1.3B: 30 layers × 1536;
//! 14B: 40 × 5120; I2V-14B with CLIP image states; FLF2V-14B with a position embedding over the
//! first and last images' states).
//!
//! The latent video `[B, 16 (36 for I2V), F, H, W]` is cut into (1, 2, 2) patches (a reshape
//! and a matmul), each block modulates its norms from the timestep and a learned
//! `scale_shift_table`, attends over the video with a 3D rotary embedding (head channels split
//! 44/42/42 over t/h/w at head width 128, θ 10⁴, tables built in f64), then to the umT5 text
//! (and, for the image models, to the projected CLIP states, whose attention output is added),
//! then a tanh-GELU feed-forward.
//!
//! Precision: the network computes in the requested dtype (bf16 on CUDA, f32 on the CPU); as in
//! the reference the rotary tables, the time embedder, the `scale_shift_table`s, the norms and
//! the gated residual sums stay in f32. Weights stored in fp8 e4m3 (ComfyUI's fp8 files) stay in
//! fp8 in memory and are upcast per layer at call time.
//!
//! Residency: [`Residency::Resident`] keeps every weight on the compute device;
//! [`Residency::Streamed`] keeps the first `resident_blocks` blocks on the device and the others
//! in host memory, moving each to the device right before it runs, the next one's transfer
//! running (on a second thread) while the current one computes, so at most two streamed blocks
//! are on the device. [`WanTransformer::resident_bytes`] and
//! [`WanTransformer::block_bytes`] let a scheduler choose.
//!
//! One difference from diffusers: diffusers passes the image states concatenated in front of the
//! text and splits them off at `len − 512`, so its image models need exactly 512 text tokens;
//! here the two come in separately and the text may have any length.

mod config;
mod layers;
mod load;

use std::path::Path;
use std::sync::mpsc::sync_channel;

use candle_core::{DType, Device, Tensor};

use crate::VideoError;
use layers::{
    bytes, layer_norm_f32, rope_tables, timestep_sinusoids, Attention, Block, BlockInput, WLinear,
};
use load::{resolve_config, Keep, Store};

pub use config::{WanTransformerConfig, HEAD_DIM, IMAGE_TOKENS};
pub use load::{wan_key_from_official, wan_official_key, WanLayout, COMFY_PREFIX};

type Result<T> = std::result::Result<T, VideoError>;

/// Default bound on one attention chunk's score matrix: 512 MiB.
pub const DEFAULT_ATTENTION_BUDGET: usize = 512 << 20;

/// Where the blocks' weights live between calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// Every weight on the compute device.
    Resident,
    /// The first `resident_blocks` blocks on the device, the others in host memory, each moved
    /// to the device just before it runs (the next one prefetched meanwhile); everything but the
    /// blocks resident.
    Streamed { resident_blocks: usize },
}

/// diffusers `WanImageEmbedding`: (+ position embedding) → LayerNorm → GELU MLP → LayerNorm.
struct ImageEmbed {
    norm1: (Tensor, Tensor),
    ff_in: WLinear,
    ff_out: WLinear,
    norm2: (Tensor, Tensor),
    /// `[P, image_dim]` (FLF2V).
    pos_embed: Option<Tensor>,
}

/// nn.LayerNorm's default epsilon (the image embedder's norms).
const IMAGE_NORM_EPS: f64 = 1e-5;

impl ImageEmbed {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = match &self.pos_embed {
            Some(p) => x.broadcast_add(&p.unsqueeze(0)?)?,
            None => x.clone(),
        };
        let h = layer_norm_f32(&x, Some(&self.norm1), IMAGE_NORM_EPS)?.to_dtype(dtype)?;
        let h = self.ff_out.forward(&self.ff_in.forward(&h)?.gelu_erf()?)?;
        Ok(layer_norm_f32(&h, Some(&self.norm2), IMAGE_NORM_EPS)?.to_dtype(dtype)?)
    }

    fn tensors(&self) -> Vec<&Tensor> {
        let mut t = vec![&self.norm1.0, &self.norm1.1, &self.norm2.0, &self.norm2.1];
        t.extend(self.ff_in.tensors());
        t.extend(self.ff_out.tensors());
        t.extend(&self.pos_embed);
        t
    }
}

/// The Wan2.1 transformer.
pub struct WanTransformer {
    cfg: WanTransformerConfig,
    layout: WanLayout,
    dtype: DType,
    device: Device,
    residency: Residency,
    /// `[dim, C·pt·ph·pw]`: the patch Conv3d as a matrix.
    patch: WLinear,
    time_1: WLinear,
    time_2: WLinear,
    time_proj: WLinear,
    text_1: WLinear,
    text_2: WLinear,
    image: Option<ImageEmbed>,
    /// On the device (resident) or the host (streamed).
    blocks: Vec<Block>,
    /// `[2, dim]` f32: output shift and scale.
    scale_shift_table: Tensor,
    proj_out: WLinear,
    attention_budget: usize,
}

impl WanTransformer {
    /// Reads the config of the checkpoint at `path` (a diffusers or official folder, or a single
    /// file) from its config.json or tensor shapes, without loading weights.
    pub fn read_config(path: &Path) -> Result<(WanTransformerConfig, WanLayout)> {
        let store = Store::open(path)?;
        Ok((resolve_config(path, &store)?, store.layout))
    }

    /// Loads the checkpoint at `path` (see [`WanLayout`]) to compute in `dtype` on `device`
    /// (bf16 on CUDA, f32 on the CPU: [`reelsmith_kit::compute_dtype`] with
    /// [`reelsmith_kit::Precision::Bf16`]).
    pub fn load(path: &Path, dtype: DType, device: &Device, residency: Residency) -> Result<Self> {
        let store = Store::open(path)?;
        let cfg = resolve_config(path, &store)?;
        let model = Self::build(&store, &cfg, dtype, device, residency)?;
        store.check_all_used()?;
        Ok(model)
    }

    fn build(
        store: &Store,
        cfg: &WanTransformerConfig,
        dtype: DType,
        device: &Device,
        residency: Residency,
    ) -> Result<Self> {
        cfg.validate()
            .map_err(|e| VideoError::Invalid(format!("wan transformer: {e}")))?;
        let dim = cfg.inner_dim();
        let host = Device::Cpu;
        let get = |name: &str, shape: &[usize], keep: Keep, dev: &Device| {
            store.get(name, shape, keep, dtype, dev)
        };
        let linear =
            |name: &str, out: usize, inp: usize, keep: Keep, dev: &Device| -> Result<WLinear> {
                let w_keep = if keep == Keep::F32 {
                    Keep::F32
                } else {
                    Keep::Matrix
                };
                Ok(WLinear {
                    weight: get(&format!("{name}.weight"), &[out, inp], w_keep, dev)?,
                    bias: Some(get(&format!("{name}.bias"), &[out], keep, dev)?),
                })
            };
        let (pt, ph, pw) = cfg.patch_size;
        let patch_in = cfg.in_channels * pt * ph * pw;
        let patch_w = get(
            "patch_embedding.weight",
            &[dim, cfg.in_channels, pt, ph, pw],
            Keep::Matrix,
            device,
        )?
        .reshape((dim, patch_in))?;
        let patch = WLinear {
            weight: patch_w,
            bias: Some(get("patch_embedding.bias", &[dim], Keep::Compute, device)?),
        };
        let ce = "condition_embedder";
        let image = match cfg.image_dim {
            Some(idim) => {
                let p = format!("{ce}.image_embedder");
                let norm = |n: &str, width: usize| -> Result<(Tensor, Tensor)> {
                    Ok((
                        get(&format!("{p}.{n}.weight"), &[width], Keep::F32, device)?,
                        get(&format!("{p}.{n}.bias"), &[width], Keep::F32, device)?,
                    ))
                };
                Some(ImageEmbed {
                    norm1: norm("norm1", idim)?,
                    ff_in: linear(
                        &format!("{p}.ff.net.0.proj"),
                        idim,
                        idim,
                        Keep::Compute,
                        device,
                    )?,
                    ff_out: linear(&format!("{p}.ff.net.2"), dim, idim, Keep::Compute, device)?,
                    norm2: norm("norm2", dim)?,
                    pos_embed: match cfg.pos_embed_seq_len {
                        Some(n) => Some(
                            get(
                                &format!("{p}.pos_embed"),
                                &[1, n, idim],
                                Keep::Compute,
                                device,
                            )?
                            .squeeze(0)?,
                        ),
                        None => None,
                    },
                })
            }
            None => None,
        };
        let blocks = (0..cfg.num_layers)
            .map(|i| -> Result<Block> {
                let block_dev = match residency {
                    Residency::Streamed { resident_blocks } if i >= resident_blocks => &host,
                    _ => device,
                };
                let p = format!("blocks.{i}");
                let attn = |a: &str, with_image: bool| -> Result<Attention> {
                    let n = format!("{p}.{a}");
                    let lin = |m: &str, inp: usize| {
                        linear(&format!("{n}.{m}"), dim, inp, Keep::Compute, block_dev)
                    };
                    let norm =
                        |m: &str| get(&format!("{n}.{m}.weight"), &[dim], Keep::Compute, block_dev);
                    Ok(Attention {
                        q: lin("to_q", dim)?,
                        k: lin("to_k", dim)?,
                        v: lin("to_v", dim)?,
                        o: lin("to_out.0", dim)?,
                        norm_q: norm("norm_q")?,
                        norm_k: norm("norm_k")?,
                        image: if with_image {
                            let kv = cfg.added_kv_proj_dim.unwrap_or(dim);
                            Some((
                                lin("add_k_proj", kv)?,
                                lin("add_v_proj", kv)?,
                                norm("norm_added_k")?,
                            ))
                        } else {
                            None
                        },
                        heads: cfg.num_attention_heads,
                        eps: cfg.eps,
                    })
                };
                Ok(Block {
                    attn1: attn("attn1", false)?,
                    attn2: attn("attn2", cfg.added_kv_proj_dim.is_some())?,
                    norm2: if cfg.cross_attn_norm {
                        Some((
                            get(&format!("{p}.norm2.weight"), &[dim], Keep::F32, block_dev)?,
                            get(&format!("{p}.norm2.bias"), &[dim], Keep::F32, block_dev)?,
                        ))
                    } else {
                        None
                    },
                    ffn_in: linear(
                        &format!("{p}.ffn.net.0.proj"),
                        cfg.ffn_dim,
                        dim,
                        Keep::Compute,
                        block_dev,
                    )?,
                    ffn_out: linear(
                        &format!("{p}.ffn.net.2"),
                        dim,
                        cfg.ffn_dim,
                        Keep::Compute,
                        block_dev,
                    )?,
                    scale_shift_table: get(
                        &format!("{p}.scale_shift_table"),
                        &[1, 6, dim],
                        Keep::F32,
                        block_dev,
                    )?
                    .squeeze(0)?,
                    eps: cfg.eps,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            layout: store.layout,
            dtype,
            device: device.clone(),
            residency,
            patch,
            time_1: linear(
                &format!("{ce}.time_embedder.linear_1"),
                dim,
                cfg.freq_dim,
                Keep::F32,
                device,
            )?,
            time_2: linear(
                &format!("{ce}.time_embedder.linear_2"),
                dim,
                dim,
                Keep::F32,
                device,
            )?,
            time_proj: linear(
                &format!("{ce}.time_proj"),
                6 * dim,
                dim,
                Keep::Compute,
                device,
            )?,
            text_1: linear(
                &format!("{ce}.text_embedder.linear_1"),
                dim,
                cfg.text_dim,
                Keep::Compute,
                device,
            )?,
            text_2: linear(
                &format!("{ce}.text_embedder.linear_2"),
                dim,
                dim,
                Keep::Compute,
                device,
            )?,
            image,
            blocks,
            scale_shift_table: get("scale_shift_table", &[1, 2, dim], Keep::F32, device)?
                .squeeze(0)?,
            proj_out: linear(
                "proj_out",
                cfg.out_channels() * cfg.patch_volume(),
                dim,
                Keep::Compute,
                device,
            )?,
            attention_budget: DEFAULT_ATTENTION_BUDGET,
        })
    }

    pub fn config(&self) -> &WanTransformerConfig {
        &self.cfg
    }

    /// How the checkpoint named its tensors.
    pub fn layout(&self) -> WanLayout {
        self.layout
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn residency(&self) -> Residency {
        self.residency
    }

    /// Bounds the bytes of one query chunk's attention scores; default
    /// [`DEFAULT_ATTENTION_BUDGET`]. Results do not depend on it.
    pub fn set_attention_budget(&mut self, bytes: usize) {
        self.attention_budget = bytes.max(1);
    }

    /// Bytes of the weights that always stay on the device (everything but the blocks), as
    /// stored (fp8 weights count one byte each).
    pub fn resident_bytes(&self) -> usize {
        let mut t: Vec<&Tensor> = [
            &self.patch,
            &self.time_1,
            &self.time_2,
            &self.time_proj,
            &self.text_1,
            &self.text_2,
            &self.proj_out,
        ]
        .into_iter()
        .flat_map(WLinear::tensors)
        .collect();
        t.push(&self.scale_shift_table);
        if let Some(image) = &self.image {
            t.extend(image.tensors());
        }
        t.into_iter().map(bytes).sum()
    }

    /// Bytes of the largest block as stored: streaming needs `resident_bytes() + 2 ·
    /// block_bytes()` of weights on the device (the running block and the prefetched one),
    /// residency `resident_bytes() + num_layers · block_bytes()`.
    pub fn block_bytes(&self) -> usize {
        self.blocks.iter().map(Block::bytes).max().unwrap_or(0)
    }

    /// How many weight tensors are stored in fp8 e4m3.
    pub fn fp8_weights(&self) -> usize {
        let top = [
            &self.patch,
            &self.time_1,
            &self.time_2,
            &self.time_proj,
            &self.text_1,
            &self.text_2,
            &self.proj_out,
        ]
        .into_iter()
        .chain(self.image.iter().flat_map(|i| [&i.ff_in, &i.ff_out]))
        .filter(|l| l.weight.dtype() == DType::F8E4M3)
        .count();
        top + self.blocks.iter().map(Block::fp8_tensors).sum::<usize>()
    }

    /// One denoiser call (diffusers `WanTransformer3DModel.forward`):
    ///
    /// - `latents` `[B, in_channels, F, H, W]`, F a multiple of the temporal patch and H, W of
    ///   the spatial one;
    /// - `timestep` `[B]` in the model's 0–1000 scale;
    /// - `text` `[B, L, text_dim]`: umT5 states (the pipelines pad them to 512 with zeros);
    /// - `image` `[B, N, image_dim]`: CLIP states for the image models — 257 tokens (I2V), or
    ///   the first and last images' 2 × 257 one after the other (FLF2V: N = `pos_embed_seq_len`).
    ///
    /// Returns the flow prediction `[B, out_channels, F, H, W]` in the compute dtype.
    pub fn forward(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        text: &Tensor,
        image: Option<&Tensor>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let bad = |m: String| VideoError::Invalid(format!("wan transformer: {m}"));
        let (b, c, f, h, w) = latents.dims5()?;
        let (pt, ph, pw) = cfg.patch_size;
        if c != cfg.in_channels {
            return Err(bad(format!(
                "latents have {c} channels, the model takes {}",
                cfg.in_channels
            )));
        }
        if f % pt != 0 || h % ph != 0 || w % pw != 0 {
            return Err(bad(format!(
                "latent grid {f}×{h}×{w} is not a multiple of the patch {pt}×{ph}×{pw}"
            )));
        }
        let grid = (f / pt, h / ph, w / pw);
        if grid.0.max(grid.1).max(grid.2) > cfg.rope_max_seq_len {
            return Err(bad(format!(
                "patch grid {grid:?} exceeds the rotary tables' {} positions",
                cfg.rope_max_seq_len
            )));
        }
        if timestep.dims() != [b] {
            return Err(bad(format!(
                "timestep is {:?}, expected [{b}]",
                timestep.dims()
            )));
        }
        let (tb, _, td) = text.dims3()?;
        if tb != b || td != cfg.text_dim {
            return Err(bad(format!(
                "text states are {:?}, expected [{b}, L, {}]",
                text.dims(),
                cfg.text_dim
            )));
        }
        let image = match (&self.image, image) {
            (None, None) => None,
            (Some(embed), Some(img)) => {
                let (ib, n, id) = img.dims3()?;
                let want_n = cfg.pos_embed_seq_len.unwrap_or(n);
                if ib != b || n != want_n || Some(id) != cfg.image_dim {
                    return Err(bad(format!(
                        "image states are {:?}, expected [{b}, {want_n}, {}]",
                        img.dims(),
                        cfg.image_dim.unwrap_or(0)
                    )));
                }
                Some(embed.forward(&img.to_dtype(self.dtype)?)?)
            }
            (None, Some(_)) => {
                return Err(bad(
                    "this is a text-to-video model: it takes no image states".into(),
                ))
            }
            (Some(_), None) => {
                return Err(bad(
                    "this image-to-video model needs the CLIP image states".into()
                ))
            }
        };
        let device = &self.device;
        let dim = cfg.inner_dim();
        let s = grid.0 * grid.1 * grid.2;

        // Patches in (f, h, w) order, each (c, pt, ph, pw) as the Conv3d weight is laid out.
        let x = latents
            .to_device(device)?
            .to_dtype(self.dtype)?
            .reshape(vec![b, c, grid.0, pt, grid.1, ph, grid.2, pw])?
            .permute([0, 2, 4, 6, 1, 3, 5, 7])?
            .reshape((b, s, c * pt * ph * pw))?;
        let x = self.patch.forward(&x)?;

        let (cos, sin) = rope_tables(cfg, grid, device)?;
        let t = timestep.to_device(device)?;
        let temb = self
            .time_2
            .forward(
                &self
                    .time_1
                    .forward(&timestep_sinusoids(&t, cfg.freq_dim)?)?
                    .silu()?,
            )?
            .to_dtype(self.dtype)?;
        let tproj = self
            .time_proj
            .forward(&temb.silu()?)?
            .reshape((b, 6, dim))?;
        let text = self.text_2.forward(
            &self
                .text_1
                .forward(&text.to_device(device)?.to_dtype(self.dtype)?)?
                .gelu()?,
        )?;

        let input = BlockInput {
            text: &text,
            image: image.as_ref(),
            temb: &tproj,
            rope: (&cos, &sin),
            budget: self.attention_budget,
        };
        let x = match self.residency {
            Residency::Resident => {
                let mut x = x;
                for block in &self.blocks {
                    x = block.forward(&x, &input)?;
                }
                x
            }
            Residency::Streamed { resident_blocks } => {
                let mut x = x;
                let kept = resident_blocks.min(self.blocks.len());
                for block in &self.blocks[..kept] {
                    x = block.forward(&x, &input)?;
                }
                self.streamed_blocks(x, &self.blocks[kept..], &input)?
            }
        };

        // Output modulation: the table plus the time embedding, in f32.
        let ss = temb
            .to_dtype(DType::F32)?
            .unsqueeze(1)?
            .broadcast_add(&self.scale_shift_table.unsqueeze(0)?)?;
        let (shift, scale) = (ss.narrow(1, 0, 1)?, ss.narrow(1, 1, 1)?);
        let x = layer_norm_f32(&x, None, cfg.eps)?
            .broadcast_mul(&(scale + 1.0)?)?
            .broadcast_add(&shift)?
            .to_dtype(self.dtype)?;
        let out = self.proj_out.forward(&x)?;
        let co = cfg.out_channels();
        Ok(out
            .reshape(vec![b, grid.0, grid.1, grid.2, pt, ph, pw, co])?
            .permute([0, 7, 1, 4, 2, 5, 3, 6])?
            .reshape((b, co, f, h, w))?)
    }

    /// Runs the host-resident blocks, each moved to the device just before it runs while a
    /// second thread moves the next one. The channel has no buffer: the mover hands over block
    /// i + 1 only when block i is done, so at most two blocks are on the device.
    fn streamed_blocks(&self, x: Tensor, blocks: &[Block], input: &BlockInput) -> Result<Tensor> {
        let device = &self.device;
        // Host → device; on a CPU-only machine a real copy, so the mechanism runs all the same.
        let to_device = |t: &Tensor| -> candle_core::Result<Tensor> {
            if device.is_cpu() {
                t.copy()
            } else {
                t.to_device(device)
            }
        };
        std::thread::scope(|scope| -> Result<Tensor> {
            let (tx, rx) = sync_channel::<candle_core::Result<Block>>(0);
            scope.spawn(move || {
                for block in blocks {
                    let moved = block.map(&to_device);
                    let failed = moved.is_err();
                    // The receiver is gone when the compute side failed: stop.
                    if tx.send(moved).is_err() || failed {
                        break;
                    }
                }
            });
            let mut x = x;
            for i in 0..blocks.len() {
                let block = rx.recv().map_err(|_| {
                    VideoError::Invalid(format!("wan transformer: block {i} was not delivered"))
                })??;
                x = block.forward(&x, input)?;
            }
            Ok(x)
        })
    }
}
