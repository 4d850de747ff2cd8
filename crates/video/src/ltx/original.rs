//! The configs Lightricks' single files carry in their header (`metadata["config"]`, with
//! `transformer` and `vae` objects in LTX-Video's own terms), read into the diffusers configs
//! the networks are written against.
//!
//! The VAE is described as a list of blocks: `res_x` groups of resnets, `compress_*` (0.9.0/0.9.1:
//! a strided conv; 0.9.5+: `compress_{space,time,all}_res` with a channel multiplier) between
//! them, `res_x_y` to double the channels (0.9.0/0.9.1). Each `res_x` group is one diffusers
//! block (the last one the mid block); a group followed by a compression scales. The decoder's
//! list (`decoder_blocks`, or the shared `blocks` of 0.9.0) is in the same outer-to-inner order
//! diffusers uses; its `compress_all` blocks carry the residual flag and the upsampling factor.

use serde_json::{json, Value};

/// A `[name, params]` block entry: params are a count (`["res_x", 4]`) or an object.
fn block(b: &Value) -> Option<(&str, Value)> {
    let a = b.as_array()?;
    let name = a.first()?.as_str()?;
    Some((name, a.get(1).cloned().unwrap_or(Value::Null)))
}

fn layers(params: &Value) -> usize {
    params
        .as_u64()
        .or_else(|| params.get("num_layers").and_then(Value::as_u64))
        .unwrap_or(1) as usize
}

fn multiplier(params: &Value) -> usize {
    params
        .get("multiplier")
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize
}

/// One `res_x` group and what follows it.
#[derive(Debug, Default, Clone)]
struct Group {
    layers: usize,
    channels: usize,
    inject_noise: bool,
    /// `conv`, `spatial`, `temporal`, `spatiotemporal` (None: no compression after it).
    compress: Option<&'static str>,
    residual: bool,
    factor: usize,
}

fn groups(blocks: &[Value], base: usize, decoder: bool) -> Option<Vec<Group>> {
    let mut out: Vec<Group> = Vec::new();
    let mut channels = base;
    for b in blocks {
        let (name, params) = block(b)?;
        match name {
            "res_x" => out.push(Group {
                layers: layers(&params),
                channels,
                inject_noise: params
                    .get("inject_noise")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                ..Group::default()
            }),
            "res_x_y" => channels *= 2,
            n if n.starts_with("compress_") => {
                let last = out.last_mut()?;
                let res = n.ends_with("_res");
                last.compress = Some(match (n, res) {
                    (_, false) => "conv",
                    ("compress_space_res", _) => "spatial",
                    ("compress_time_res", _) => "temporal",
                    _ => "spatiotemporal",
                });
                last.residual = params
                    .get("residual")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                last.factor = multiplier(&params);
                if res || (decoder && last.residual) {
                    channels *= multiplier(&params).max(1);
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A diffusers `AutoencoderKLLTXVideo` config from an original `CausalVideoAutoencoder` one
/// (`None` when the description is not one this reader knows).
pub fn vae_config(orig: &Value) -> Option<Value> {
    let enc_blocks = orig
        .get("encoder_blocks")
        .or_else(|| orig.get("blocks"))?
        .as_array()?;
    let dec_blocks = orig
        .get("decoder_blocks")
        .or_else(|| orig.get("blocks"))?
        .as_array()?;
    let base = |k: &str| orig.get(k).and_then(Value::as_u64).unwrap_or(128) as usize;
    let enc = groups(enc_blocks, base("encoder_base_channels"), false)?;
    let dec = groups(dec_blocks, base("decoder_base_channels"), true)?;
    let (down, mid) = enc.split_at(enc.len().checked_sub(1)?);
    let v095 = enc.iter().any(|g| {
        g.compress
            .is_some_and(|c| c == "spatial" || c == "temporal" || c == "spatiotemporal")
    });
    let patch = orig.get("patch_size").and_then(Value::as_u64).unwrap_or(4) as usize;
    let mut spatial = patch;
    let mut temporal = 1;
    for g in down {
        match g.compress {
            Some("spatial") => spatial *= 2,
            Some("temporal") => temporal *= 2,
            Some(_) => {
                spatial *= 2;
                temporal *= 2;
            }
            None => {}
        }
    }
    let mut block_out: Vec<usize> = down.iter().map(|g| g.channels).collect();
    if v095 {
        // 0.9.5 lists the mid block's width too (each down block doubles its input).
        block_out.push(mid.first()?.channels);
    }
    let residual_decoder = dec.iter().any(|g| g.residual);
    let (dec_out, dec_residual, dec_factor, dec_scaling): (
        Vec<usize>,
        Vec<bool>,
        Vec<usize>,
        Vec<bool>,
    ) = if residual_decoder {
        // Only the groups followed by an upsampler are up blocks; their width is the one
        // after the channel multiplier.
        let ups: Vec<&Group> = dec.iter().filter(|g| g.compress.is_some()).collect();
        (
            ups.iter().map(|g| g.channels * g.factor.max(1)).collect(),
            ups.iter().map(|g| g.residual).collect(),
            ups.iter().map(|g| g.factor.max(1)).collect(),
            ups.iter().map(|_| true).collect(),
        )
    } else {
        let (ups, _) = dec.split_at(dec.len().checked_sub(1)?);
        (
            ups.iter().map(|g| g.channels).collect(),
            ups.iter().map(|_| false).collect(),
            ups.iter().map(|_| 1).collect(),
            ups.iter().map(|g| g.compress.is_some()).collect(),
        )
    };
    Some(json!({
        "in_channels": orig.get("in_channels").and_then(Value::as_u64).unwrap_or(3),
        "out_channels": orig.get("out_channels").and_then(Value::as_u64).unwrap_or(3),
        "latent_channels": orig.get("latent_channels").and_then(Value::as_u64).unwrap_or(128),
        "block_out_channels": block_out,
        "down_block_types": down.iter().map(|_| if v095 { "LTXVideo095DownBlock3D" } else { "LTXVideoDownBlock3D" }).collect::<Vec<_>>(),
        "decoder_block_out_channels": dec_out,
        "layers_per_block": enc.iter().map(|g| g.layers).collect::<Vec<_>>(),
        "decoder_layers_per_block": dec.iter().map(|g| g.layers).collect::<Vec<_>>(),
        "spatio_temporal_scaling": down.iter().map(|g| g.compress.is_some()).collect::<Vec<_>>(),
        "decoder_spatio_temporal_scaling": dec_scaling,
        "decoder_inject_noise": dec.iter().map(|g| g.inject_noise).collect::<Vec<_>>(),
        "downsample_type": down.iter().map(|g| g.compress.unwrap_or("conv")).collect::<Vec<_>>(),
        "upsample_residual": dec_residual,
        "upsample_factor": dec_factor,
        "timestep_conditioning": orig.get("timestep_conditioning").and_then(Value::as_bool).unwrap_or(false),
        "patch_size": patch,
        "patch_size_t": 1,
        "resnet_norm_eps": 1e-6,
        "scaling_factor": orig.get("scaling_factor").and_then(Value::as_f64).unwrap_or(1.0),
        "encoder_causal": true,
        "decoder_causal": orig.get("causal_decoder").and_then(Value::as_bool).unwrap_or(false),
        "spatial_compression_ratio": spatial,
        "temporal_compression_ratio": temporal,
    }))
}

/// A diffusers `LTXVideoTransformer3DModel` config from an original `Transformer3DModel` one.
pub fn transformer_config(orig: &Value) -> Option<Value> {
    let n = |k: &str| orig.get(k).and_then(Value::as_u64);
    Some(json!({
        "in_channels": n("in_channels")?,
        "out_channels": n("out_channels").or(n("in_channels"))?,
        "patch_size": 1,
        "patch_size_t": 1,
        "num_attention_heads": n("num_attention_heads")?,
        "attention_head_dim": n("attention_head_dim")?,
        "cross_attention_dim": n("cross_attention_dim")?,
        "num_layers": n("num_layers")?,
        "activation_fn": "gelu-approximate",
        // LTX's `rms_norm` q/k norm normalises across all heads at once.
        "qk_norm": "rms_norm_across_heads",
        "norm_elementwise_affine": orig.get("norm_elementwise_affine").and_then(Value::as_bool).unwrap_or(false),
        "norm_eps": orig.get("norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
        "caption_channels": n("caption_channels")?,
        "attention_bias": orig.get("attention_bias").and_then(Value::as_bool).unwrap_or(true),
        "attention_out_bias": true,
    }))
}

/// Whether a header config part is already in diffusers' terms.
pub fn is_diffusers(part: &Value) -> bool {
    part.get("_class_name")
        .and_then(Value::as_str)
        .is_some_and(|c| c.starts_with("LTXVideo") || c == "AutoencoderKLLTXVideo")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real releases' original VAE configs map to the configs diffusers' conversion script
    /// states for them.
    #[test]
    fn real_releases_translate_to_diffusers_configs() {
        let v090 = json!({"_class_name": "CausalVideoAutoencoder", "latent_channels": 128,
            "blocks": [["res_x", 4], ["compress_all", 1], ["res_x_y", 1], ["res_x", 3], ["compress_all", 1],
                       ["res_x_y", 1], ["res_x", 3], ["compress_all", 1], ["res_x", 3], ["res_x", 4]],
            "patch_size": 4, "causal_decoder": false});
        let c = vae_config(&v090).unwrap();
        assert_eq!(c["block_out_channels"], json!([128, 256, 512, 512]));
        assert_eq!(c["layers_per_block"], json!([4, 3, 3, 3, 4]));
        assert_eq!(c["decoder_block_out_channels"], json!([128, 256, 512, 512]));
        assert_eq!(c["decoder_layers_per_block"], json!([4, 3, 3, 3, 4]));
        assert_eq!(
            c["spatio_temporal_scaling"],
            json!([true, true, true, false])
        );
        assert_eq!(
            c["decoder_spatio_temporal_scaling"],
            json!([true, true, true, false])
        );
        assert_eq!(c["spatial_compression_ratio"], json!(32));
        assert_eq!(c["temporal_compression_ratio"], json!(8));

        let v091 = json!({"latent_channels": 128, "timestep_conditioning": true,
            "encoder_blocks": [["res_x", {"num_layers": 4}], ["compress_all", {}], ["res_x_y", 1], ["res_x", {"num_layers": 3}], ["compress_all", {}], ["res_x_y", 1], ["res_x", {"num_layers": 3}], ["compress_all", {}], ["res_x", {"num_layers": 3}], ["res_x", {"num_layers": 4}]],
            "decoder_blocks": [["res_x", {"num_layers": 5, "inject_noise": true}], ["compress_all", {"residual": true, "multiplier": 2}], ["res_x", {"num_layers": 6, "inject_noise": true}], ["compress_all", {"residual": true, "multiplier": 2}], ["res_x", {"num_layers": 7, "inject_noise": true}], ["compress_all", {"residual": true, "multiplier": 2}], ["res_x", {"num_layers": 8, "inject_noise": false}]],
            "patch_size": 4});
        let c = vae_config(&v091).unwrap();
        assert_eq!(c["decoder_block_out_channels"], json!([256, 512, 1024]));
        assert_eq!(c["decoder_layers_per_block"], json!([5, 6, 7, 8]));
        assert_eq!(c["decoder_inject_noise"], json!([true, true, true, false]));
        assert_eq!(c["upsample_residual"], json!([true, true, true]));
        assert_eq!(c["upsample_factor"], json!([2, 2, 2]));
        assert_eq!(c["timestep_conditioning"], json!(true));

        let v095 = json!({"latent_channels": 128, "timestep_conditioning": true, "patch_size": 4,
            "encoder_blocks": [["res_x", {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}], ["res_x", {"num_layers": 6}], ["compress_time_res", {"multiplier": 2}], ["res_x", {"num_layers": 6}], ["compress_all_res", {"multiplier": 2}], ["res_x", {"num_layers": 2}], ["compress_all_res", {"multiplier": 2}], ["res_x", {"num_layers": 2}]],
            "decoder_blocks": [["res_x", {"num_layers": 5, "inject_noise": false}], ["compress_all", {"residual": true, "multiplier": 2}], ["res_x", {"num_layers": 5, "inject_noise": false}], ["compress_all", {"residual": true, "multiplier": 2}], ["res_x", {"num_layers": 5, "inject_noise": false}], ["compress_all", {"residual": true, "multiplier": 2}], ["res_x", {"num_layers": 5, "inject_noise": false}]]});
        let c = vae_config(&v095).unwrap();
        assert_eq!(c["block_out_channels"], json!([128, 256, 512, 1024, 2048]));
        assert_eq!(c["layers_per_block"], json!([4, 6, 6, 2, 2]));
        assert_eq!(
            c["downsample_type"],
            json!(["spatial", "temporal", "spatiotemporal", "spatiotemporal"])
        );
        assert_eq!(c["decoder_block_out_channels"], json!([256, 512, 1024]));
        assert_eq!(c["decoder_layers_per_block"], json!([5, 5, 5, 5]));
        assert_eq!(c["spatial_compression_ratio"], json!(32));
        assert_eq!(c["temporal_compression_ratio"], json!(8));
    }

    #[test]
    fn unknown_blocks_are_not_guessed() {
        assert!(vae_config(&json!({"blocks": [["attn", 1]]})).is_none());
        assert!(vae_config(&json!({})).is_none());
    }
}
