//! The conditional UNet of Stable Diffusion 1.x/2.x and SDXL.
//!
//! The blocks are candle-transformers'; the top level is ours because candle's has no SDXL
//! micro-conditioning (`add_embedding`: pooled text + size/crop/aesthetic ids). Without it an
//! SDXL UNet runs but draws something else than the model was trained for.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn as nn;
use candle_transformers::models::stable_diffusion::embeddings::{TimestepEmbedding, Timesteps};
use candle_transformers::models::stable_diffusion::unet_2d_blocks::{
    CrossAttnDownBlock2D, CrossAttnDownBlock2DConfig, CrossAttnUpBlock2D, CrossAttnUpBlock2DConfig,
    DownBlock2D, DownBlock2DConfig, UNetMidBlock2DCrossAttn, UNetMidBlock2DCrossAttnConfig,
    UpBlock2D, UpBlock2DConfig,
};

use crate::config::UNetConfig;

enum Down {
    Plain(DownBlock2D),
    Attn(CrossAttnDownBlock2D),
}

enum Up {
    Plain(UpBlock2D),
    Attn(CrossAttnUpBlock2D),
}

/// SDXL's extra conditioning: the pooled text embedding and the size/crop (or aesthetic score)
/// ids, each id embedded like a timestep.
struct AddEmbedding {
    time_proj: Timesteps,
    embedding: TimestepEmbedding,
}

pub struct UNet {
    conv_in: nn::Conv2d,
    time_proj: Timesteps,
    time_embedding: TimestepEmbedding,
    add: Option<AddEmbedding>,
    down: Vec<Down>,
    mid: UNetMidBlock2DCrossAttn,
    up: Vec<Up>,
    norm_out: nn::GroupNorm,
    conv_out: nn::Conv2d,
    layers_per_block: usize,
}

/// Conditioning for one denoiser call.
pub struct UNetInput<'a> {
    /// Text embeddings `[batch, tokens, cross_attention_dim]`.
    pub context: &'a Tensor,
    /// SDXL: pooled text embedding `[batch, pooled]` and micro-conditioning ids `[batch, n]`.
    pub added: Option<(&'a Tensor, &'a Tensor)>,
}

fn conv3(cin: usize, cout: usize, vb: nn::VarBuilder) -> Result<nn::Conv2d> {
    let cfg = nn::Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    nn::conv2d(cin, cout, 3, cfg, vb)
}

impl UNet {
    pub fn new(vb: nn::VarBuilder, cfg: &UNetConfig) -> Result<Self> {
        let n = cfg.block_out_channels.len();
        if cfg.down_block_types.len() != n || cfg.up_block_types.len() != n {
            candle_core::bail!("unet config: {n} blocks but block types for a different count");
        }
        let attn: Vec<bool> = cfg
            .down_block_types
            .iter()
            .map(|t| t.contains("CrossAttn"))
            .collect();
        for (i, t) in cfg.up_block_types.iter().enumerate() {
            if t.contains("CrossAttn") != attn[n - 1 - i] {
                candle_core::bail!(
                    "unet config: up block {i} ({t}) does not mirror its down block"
                );
            }
        }
        let ch0 = cfg.block_out_channels[0];
        let temb = ch0 * 4;
        let conv_in = conv3(cfg.in_channels, ch0, vb.pp("conv_in"))?;
        let time_proj = Timesteps::new(ch0, cfg.flip_sin_to_cos, cfg.freq_shift);
        let time_embedding = TimestepEmbedding::new(vb.pp("time_embedding"), ch0, temb)?;
        let add = match cfg.addition_embed_type.as_deref() {
            None => None,
            Some("text_time") => {
                let dim = cfg.addition_time_embed_dim.unwrap_or(256);
                let input = cfg.projection_class_embeddings_input_dim.ok_or_else(|| {
                    candle_core::Error::Msg(
                        "unet config: text_time needs projection_class_embeddings_input_dim".into(),
                    )
                })?;
                Some(AddEmbedding {
                    time_proj: Timesteps::new(dim, cfg.flip_sin_to_cos, cfg.freq_shift),
                    embedding: TimestepEmbedding::new(vb.pp("add_embedding"), input, temb)?,
                })
            }
            Some(other) => {
                candle_core::bail!("unet config: addition_embed_type {other} unsupported")
            }
        };

        let mut down = Vec::with_capacity(n);
        for (i, &has_attn) in attn.iter().enumerate() {
            let cin = if i == 0 {
                ch0
            } else {
                cfg.block_out_channels[i - 1]
            };
            let cout = cfg.block_out_channels[i];
            let plain = DownBlock2DConfig {
                num_layers: cfg.layers_per_block,
                resnet_eps: cfg.norm_eps,
                resnet_groups: cfg.norm_num_groups,
                add_downsample: i + 1 < n,
                downsample_padding: 1,
                ..Default::default()
            };
            let vbi = vb.pp("down_blocks").pp(i);
            down.push(if has_attn {
                let c = CrossAttnDownBlock2DConfig {
                    downblock: plain,
                    attn_num_head_channels: cfg.heads(i),
                    cross_attention_dim: cfg.cross_attention_dim,
                    sliced_attention_size: None,
                    use_linear_projection: cfg.use_linear_projection,
                    transformer_layers_per_block: cfg.transformer_layers_per_block.get(i),
                };
                Down::Attn(CrossAttnDownBlock2D::new(
                    vbi,
                    cin,
                    cout,
                    Some(temb),
                    false,
                    c,
                )?)
            } else {
                Down::Plain(DownBlock2D::new(vbi, cin, cout, Some(temb), plain)?)
            });
        }

        let last = *cfg.block_out_channels.last().expect("at least one block");
        let mid_cfg = UNetMidBlock2DCrossAttnConfig {
            resnet_eps: cfg.norm_eps,
            output_scale_factor: cfg.mid_block_scale_factor,
            cross_attn_dim: cfg.cross_attention_dim,
            attn_num_head_channels: cfg.heads(n - 1),
            resnet_groups: Some(cfg.norm_num_groups),
            use_linear_projection: cfg.use_linear_projection,
            transformer_layers_per_block: cfg.transformer_layers_per_block.get(n - 1),
            ..Default::default()
        };
        let mid =
            UNetMidBlock2DCrossAttn::new(vb.pp("mid_block"), last, Some(temb), false, mid_cfg)?;

        let mut up = Vec::with_capacity(n);
        for i in 0..n {
            let block = n - 1 - i;
            let prev = if i == 0 {
                last
            } else {
                cfg.block_out_channels[n - i]
            };
            let cout = cfg.block_out_channels[block];
            let cin = cfg.block_out_channels[block.saturating_sub(1)];
            let plain = UpBlock2DConfig {
                num_layers: cfg.layers_per_block + 1,
                resnet_eps: cfg.norm_eps,
                resnet_groups: cfg.norm_num_groups,
                add_upsample: i + 1 < n,
                ..Default::default()
            };
            let vbi = vb.pp("up_blocks").pp(i);
            up.push(if attn[block] {
                let c = CrossAttnUpBlock2DConfig {
                    upblock: plain,
                    attn_num_head_channels: cfg.heads(block),
                    cross_attention_dim: cfg.cross_attention_dim,
                    sliced_attention_size: None,
                    use_linear_projection: cfg.use_linear_projection,
                    transformer_layers_per_block: cfg.transformer_layers_per_block.get(block),
                };
                Up::Attn(CrossAttnUpBlock2D::new(
                    vbi,
                    cin,
                    prev,
                    cout,
                    Some(temb),
                    false,
                    c,
                )?)
            } else {
                Up::Plain(UpBlock2D::new(vbi, cin, prev, cout, Some(temb), plain)?)
            });
        }
        let norm_out = nn::group_norm(
            cfg.norm_num_groups,
            ch0,
            cfg.norm_eps,
            vb.pp("conv_norm_out"),
        )?;
        let conv_out = conv3(ch0, cfg.out_channels, vb.pp("conv_out"))?;
        Ok(Self {
            conv_in,
            time_proj,
            time_embedding,
            add,
            down,
            mid,
            up,
            norm_out,
            conv_out,
            layers_per_block: cfg.layers_per_block,
        })
    }

    /// Whether the network needs `UNetInput::added` (SDXL).
    pub fn needs_added(&self) -> bool {
        self.add.is_some()
    }

    /// One denoiser evaluation at `timestep` (the same for the whole batch).
    pub fn forward(&self, xs: &Tensor, timestep: f64, input: &UNetInput) -> Result<Tensor> {
        let (b, _, h, w) = xs.dims4()?;
        let dev = xs.device();
        let dtype = xs.dtype();
        // Timestep embeddings are computed in f32 (as diffusers does) and cast.
        let t = Tensor::full(timestep as f32, b, dev)?;
        let mut emb = self.time_proj.forward(&t)?.to_dtype(dtype)?;
        emb = self.time_embedding.forward(&emb)?;
        match (&self.add, input.added) {
            (Some(add), Some((pooled, ids))) => {
                let ids = ids.to_dtype(DType::F32)?.flatten_all()?;
                let te = add
                    .time_proj
                    .forward(&ids)?
                    .reshape((b, ()))?
                    .to_dtype(dtype)?;
                let x = Tensor::cat(&[&pooled.to_dtype(dtype)?, &te], 1)?;
                emb = (emb + add.embedding.forward(&x)?)?;
            }
            (Some(_), None) => candle_core::bail!("this UNet needs pooled text and time ids"),
            (None, _) => {}
        }
        let ctx = input.context;
        let mut xs = self.conv_in.forward(xs)?;
        let mut skips = vec![xs.clone()];
        for block in &self.down {
            let (next, res) = match block {
                Down::Plain(b) => b.forward(&xs, Some(&emb))?,
                Down::Attn(b) => b.forward(&xs, Some(&emb), Some(ctx))?,
            };
            skips.extend(res);
            xs = next;
        }
        xs = self.mid.forward(&xs, Some(&emb), Some(ctx))?;
        let n = self.up.len();
        // Sizes that are not a multiple of the total downscale need explicit upsample sizes.
        let uneven = h % (1 << (n - 1)) != 0 || w % (1 << (n - 1)) != 0;
        for (i, block) in self.up.iter().enumerate() {
            let res = skips.split_off(skips.len() - (self.layers_per_block + 1));
            let size = if uneven && i + 1 < n {
                let (_, _, h, w) = skips.last().expect("skip connections").dims4()?;
                Some((h, w))
            } else {
                None
            };
            xs = match block {
                Up::Plain(b) => b.forward(&xs, &res, Some(&emb), size)?,
                Up::Attn(b) => b.forward(&xs, &res, Some(&emb), size, Some(ctx))?,
            };
        }
        let xs = nn::ops::silu(&self.norm_out.forward(&xs)?)?;
        self.conv_out.forward(&xs)
    }
}
