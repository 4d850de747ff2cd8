//! Building a pipeline's networks from configs and a source of weights (a checkpoint, or
//! random weights for benchmarks: full-size architectures time like the real ones).

use std::sync::Mutex;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::{flux, t5};
use serde_json::Value;

use crate::clip::ClipText;
use crate::config::{parse, ClipConfig, UNetConfig, VaeConfig};
use crate::pipeline::{Denoiser, Error, Family, Pipeline, Result, TextEncoders};
use crate::scheduler::ScheduleConfig;

/// The networks of a diffusers repo, by the folder names diffusers gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Unet,
    Transformer,
    Vae,
    TextEncoder,
    TextEncoder2,
}

impl Network {
    pub fn key(self) -> &'static str {
        match self {
            Network::Unet => "unet",
            Network::Transformer => "transformer",
            Network::Vae => "vae",
            Network::TextEncoder => "text_encoder",
            Network::TextEncoder2 => "text_encoder_2",
        }
    }
}

fn config(configs: &Value, n: Network) -> Result<&Value> {
    configs
        .get(n.key())
        .ok_or_else(|| Error::Invalid(format!("no {} config", n.key())))
}

/// candle's FLUX config from diffusers' `FluxTransformer2DModel` config.
pub fn flux_config(v: &Value) -> Result<flux::model::Config> {
    let get = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .ok_or_else(|| Error::Invalid(format!("transformer config: {k} missing")))
    };
    let heads = get("num_attention_heads")?;
    let axes = v
        .get("axes_dims_rope")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64().map(|x| x as usize))
                .collect()
        })
        .unwrap_or_else(|| vec![16, 56, 56]);
    Ok(flux::model::Config {
        in_channels: get("in_channels")?,
        vec_in_dim: get("pooled_projection_dim")?,
        context_in_dim: get("joint_attention_dim")?,
        hidden_size: heads * get("attention_head_dim")?,
        mlp_ratio: 4.0,
        num_heads: heads,
        depth: get("num_layers")?,
        depth_single_blocks: get("num_single_layers")?,
        axes_dim: axes,
        theta: 10_000,
        qkv_bias: true,
        guidance_embed: v
            .get("guidance_embeds")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Builds every network `family` uses; `weights(network, its config)` gives each one's
/// weights under diffusers/transformers names (BFL names for the FLUX transformer).
pub fn build(
    family: Family,
    configs: &Value,
    schedule: ScheduleConfig,
    dtype: DType,
    device: &Device,
    mut weights: impl FnMut(Network, &Value) -> Result<VarBuilder<'static>>,
) -> Result<Pipeline> {
    let mut load = |n: Network| -> Result<(VarBuilder<'static>, &Value)> {
        let c = config(configs, n)?;
        Ok((weights(n, c)?, c))
    };
    let (vb, c) = load(Network::Vae)?;
    let vae_dtype = vb.dtype();
    let vae = crate::vae::Vae::new(vb, &parse::<VaeConfig>("vae", c).map_err(Error::Invalid)?)?;
    let denoiser = match family {
        Family::Flux => {
            let (vb, c) = load(Network::Transformer)?;
            Denoiser::Flux(Box::new(flux::model::Flux::new(&flux_config(c)?, vb)?))
        }
        _ => {
            let (vb, c) = load(Network::Unet)?;
            let cfg: UNetConfig = parse("unet", c).map_err(Error::Invalid)?;
            Denoiser::UNet(Box::new(crate::unet::UNet::new(vb, &cfg)?))
        }
    };
    let mut text = TextEncoders::default();
    let mut clip = |n: Network, projection: bool| -> Result<ClipText> {
        let (vb, c) = load(n)?;
        let cfg: ClipConfig = parse(n.key(), c).map_err(Error::Invalid)?;
        Ok(ClipText::new(vb, &cfg, projection)?)
    };
    match family {
        Family::Sd1 | Family::Sd2 => text.clip = Some(clip(Network::TextEncoder, false)?),
        Family::Sdxl => {
            text.clip = Some(clip(Network::TextEncoder, false)?);
            text.clip2 = Some(clip(Network::TextEncoder2, true)?);
        }
        Family::SdxlRefiner => text.clip2 = Some(clip(Network::TextEncoder2, true)?),
        Family::Flux => {
            text.clip = Some(clip(Network::TextEncoder, false)?);
            let (vb, c) = load(Network::TextEncoder2)?;
            let cfg: t5::Config = serde_json::from_value(c.clone())
                .map_err(|e| Error::Invalid(format!("text_encoder_2 config: {e}")))?;
            text.t5 = Some(Mutex::new(t5::T5EncoderModel::load(vb, &cfg)?));
        }
    }
    Ok(Pipeline {
        family,
        denoiser,
        vae,
        text,
        schedule,
        device: device.clone(),
        dtype,
        vae_dtype,
    })
}

/// A pipeline of `arch` with random weights (seeded): times and uses memory exactly like the
/// real model, draws nothing meaningful. For benchmarks.
pub fn random(arch: &crate::arch::Arch, dtype: DType, device: &Device) -> Result<Pipeline> {
    build(
        arch.family,
        &arch.configs,
        arch.schedule.clone(),
        dtype,
        device,
        // The builder shares the map's storage: tensors are made (randomly initialised) as the
        // networks ask for them.
        |_, _| {
            Ok(VarBuilder::from_varmap(
                &candle_nn::VarMap::new(),
                dtype,
                device,
            ))
        },
    )
}
