//! The original Wan2.1 VAE names (`wan/modules/vae.py`: the official `Wan2.1_VAE.pth` and
//! ComfyUI's `wan_2.1_vae.safetensors`) → diffusers' (what [`super::WanVae`] reads): the renaming
//! of diffusers' `convert_wan_vae_to_diffusers`.
//!
//! The original numbers the decoder's stages flatly (`decoder.upsamples.N`: per level
//! `num_res_blocks + 1` residual blocks, then the upsampler, none after the last level);
//! diffusers nests them (`decoder.up_blocks.i.resnets.j`, `decoder.up_blocks.i.upsamplers.0`).
//! Residual blocks are `Sequential`s there (`residual.0` norm, `.2` conv, `.3` norm, `.6` conv,
//! `shortcut`), the mid block is `middle.{0,1,2}` and the head `head.{0,2}`; the top-level
//! `conv1`/`conv2` are `quant_conv`/`post_quant_conv`. diffusers hardcodes the flat indices of
//! the released structure (2 residual blocks, 4 levels); this map computes them from the config,
//! which agrees there.

use super::config::WanVaeConfig;

/// Whether `keys` are in the original naming (diffusers tells a Wan VAE checkpoint by
/// `decoder.middle.0.residual.0.gamma`).
pub fn is_original_layout<'a>(keys: impl IntoIterator<Item = &'a str>) -> bool {
    keys.into_iter().any(|k| {
        k.starts_with("decoder.middle.")
            || k.starts_with("encoder.middle.")
            || k.starts_with("decoder.upsamples.")
            || k.starts_with("encoder.downsamples.")
    })
}

/// The residual block's parts: original → diffusers.
const RESIDUAL: &[(&str, &str)] = &[
    ("residual.0.", "norm1."),
    ("residual.2.", "conv1."),
    ("residual.3.", "norm2."),
    ("residual.6.", "conv2."),
    ("shortcut.", "conv_shortcut."),
];

fn residual(rest: &str) -> Option<String> {
    RESIDUAL
        .iter()
        .find_map(|(o, d)| rest.strip_prefix(o).map(|tail| format!("{d}{tail}")))
}

/// The diffusers name of an original tensor name; `None` for a name the original model does not
/// have.
pub fn wan_vae_key_from_original(key: &str, cfg: &WanVaeConfig) -> Option<String> {
    for (o, d) in [("conv1.", "quant_conv."), ("conv2.", "post_quant_conv.")] {
        if let Some(tail) = key.strip_prefix(o) {
            return Some(format!("{d}{tail}"));
        }
    }
    let (side, rest) = key.split_once('.')?;
    if side != "encoder" && side != "decoder" {
        return None;
    }
    for (o, d) in [
        ("conv1.", "conv_in."),
        ("head.0.", "norm_out."),
        ("head.2.", "conv_out."),
        ("middle.1.", "mid_block.attentions.0."),
    ] {
        if let Some(tail) = rest.strip_prefix(o) {
            return Some(format!("{side}.{d}{tail}"));
        }
    }
    if let Some(m) = rest.strip_prefix("middle.") {
        let (i, tail) = m.split_once('.')?;
        let j = match i {
            "0" => 0,
            "2" => 1,
            _ => return None,
        };
        return Some(format!("{side}.mid_block.resnets.{j}.{}", residual(tail)?));
    }
    if let Some(m) = rest.strip_prefix("downsamples.") {
        if side != "encoder" {
            return None;
        }
        let (n, tail) = m.split_once('.')?;
        let tail = if tail.starts_with("resample.") || tail.starts_with("time_conv.") {
            tail.to_string()
        } else {
            residual(tail)?
        };
        return Some(format!("encoder.down_blocks.{n}.{tail}"));
    }
    if let Some(m) = rest.strip_prefix("upsamples.") {
        if side != "decoder" {
            return None;
        }
        let (n, tail) = m.split_once('.')?;
        let n: usize = n.parse().ok()?;
        let per = cfg.num_res_blocks + 2;
        let (block, j) = (n / per, n % per);
        if block >= cfg.dim_mult.len() {
            return None;
        }
        if j <= cfg.num_res_blocks {
            return Some(format!(
                "decoder.up_blocks.{block}.resnets.{j}.{}",
                residual(tail)?
            ));
        }
        if tail.starts_with("resample.") || tail.starts_with("time_conv.") {
            return Some(format!("decoder.up_blocks.{block}.upsamplers.0.{tail}"));
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_released_names_map_as_diffusers_maps_them() {
        let c = WanVaeConfig::wan2_1();
        let m = |k: &str| wan_vae_key_from_original(k, &c);
        let cases = [
            ("conv1.weight", "quant_conv.weight"),
            ("conv2.bias", "post_quant_conv.bias"),
            ("encoder.conv1.weight", "encoder.conv_in.weight"),
            ("decoder.conv1.bias", "decoder.conv_in.bias"),
            ("encoder.head.0.gamma", "encoder.norm_out.gamma"),
            ("decoder.head.2.weight", "decoder.conv_out.weight"),
            (
                "encoder.middle.2.residual.6.bias",
                "encoder.mid_block.resnets.1.conv2.bias",
            ),
            (
                "decoder.middle.1.to_qkv.weight",
                "decoder.mid_block.attentions.0.to_qkv.weight",
            ),
            (
                "encoder.downsamples.3.shortcut.weight",
                "encoder.down_blocks.3.conv_shortcut.weight",
            ),
            (
                "encoder.downsamples.5.time_conv.weight",
                "encoder.down_blocks.5.time_conv.weight",
            ),
            (
                "decoder.upsamples.4.shortcut.weight",
                "decoder.up_blocks.1.resnets.0.conv_shortcut.weight",
            ),
            (
                "decoder.upsamples.10.residual.3.gamma",
                "decoder.up_blocks.2.resnets.2.norm2.gamma",
            ),
            (
                "decoder.upsamples.7.time_conv.bias",
                "decoder.up_blocks.1.upsamplers.0.time_conv.bias",
            ),
            (
                "decoder.upsamples.11.resample.1.weight",
                "decoder.up_blocks.2.upsamplers.0.resample.1.weight",
            ),
            (
                "decoder.upsamples.14.residual.2.weight",
                "decoder.up_blocks.3.resnets.2.conv1.weight",
            ),
        ];
        for (o, d) in cases {
            assert_eq!(m(o).as_deref(), Some(d), "{o}");
        }
        assert_eq!(m("decoder.upsamples.15.residual.0.gamma"), None);
        assert_eq!(m("decoder.middle.3.residual.0.gamma"), None);
        assert_eq!(m("model.conv1.weight"), None);
        assert!(is_original_layout(["decoder.middle.0.residual.0.gamma"]));
        assert!(!is_original_layout([
            "decoder.mid_block.resnets.0.norm1.gamma"
        ]));
    }
}
