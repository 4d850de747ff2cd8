//! The original Lightricks checkpoints' VAE weight names → diffusers' (what [`super::LtxVae`]
//! reads), the renaming diffusers applies when it loads a single-file checkpoint
//! (`convert_ltx_vae_checkpoint_to_diffusers`).
//!
//! The original VAE numbers its decoder stages flatly (`up_blocks.0` … `up_blocks.9`, each a
//! resnet group, an upsampler or a width change) and its encoder stages likewise; diffusers
//! nests them into blocks. Which flat index becomes which block depends on the layout, so the
//! mapping takes it ([`LtxVaeLayout::from_keys`] finds it from the checkpoint's names).
//! The renames apply in order, each to every occurrence, as diffusers' string replacements do.

use super::config::LtxVaeConfig;

/// The three VAE layouts of the original checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LtxVaeLayout {
    V0_9_0,
    V0_9_1,
    /// 0.9.5, 0.9.7, 0.9.8.
    V0_9_5,
}

impl LtxVaeLayout {
    /// The layout of an original checkpoint, from its VAE weight names (with or without the
    /// `vae.` prefix): a 0.9.5+ encoder has its mid block at flat index 8 (no
    /// `encoder.down_blocks.9`); a 0.9.1 decoder has `last_time_embedder` weights; anything else
    /// is 0.9.0.
    ///
    /// diffusers tells 0.9.5 by the encoder's output convolution reading 2048 channels, the real
    /// width, which misreads any narrower model with that layout; the names do not.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let (mut mid_at_9, mut timestep) = (false, false);
        for k in keys {
            mid_at_9 |= k.contains("encoder.down_blocks.9.");
            timestep |= k.contains("decoder.last_time_embedder.");
        }
        if !mid_at_9 {
            Self::V0_9_5
        } else if timestep {
            Self::V0_9_1
        } else {
            Self::V0_9_0
        }
    }

    /// The diffusers config of the released model with this layout.
    pub fn config(self) -> LtxVaeConfig {
        match self {
            Self::V0_9_0 => LtxVaeConfig::v0_9_0(),
            Self::V0_9_1 => LtxVaeConfig::v0_9_1(),
            Self::V0_9_5 => LtxVaeConfig::v0_9_5(),
        }
    }
}

const COMMON_0_9_0: &[(&str, &str)] = &[
    ("up_blocks.0", "mid_block"),
    ("up_blocks.1", "up_blocks.0"),
    ("up_blocks.2", "up_blocks.1.upsamplers.0"),
    ("up_blocks.3", "up_blocks.1"),
    ("up_blocks.4", "up_blocks.2.conv_in"),
    ("up_blocks.5", "up_blocks.2.upsamplers.0"),
    ("up_blocks.6", "up_blocks.2"),
    ("up_blocks.7", "up_blocks.3.conv_in"),
    ("up_blocks.8", "up_blocks.3.upsamplers.0"),
    ("up_blocks.9", "up_blocks.3"),
    ("down_blocks.0", "down_blocks.0"),
    ("down_blocks.1", "down_blocks.0.downsamplers.0"),
    ("down_blocks.2", "down_blocks.0.conv_out"),
    ("down_blocks.3", "down_blocks.1"),
    ("down_blocks.4", "down_blocks.1.downsamplers.0"),
    ("down_blocks.5", "down_blocks.1.conv_out"),
    ("down_blocks.6", "down_blocks.2"),
    ("down_blocks.7", "down_blocks.2.downsamplers.0"),
    ("down_blocks.8", "down_blocks.3"),
    ("down_blocks.9", "mid_block"),
    ("conv_shortcut", "conv_shortcut.conv"),
    ("res_blocks", "resnets"),
    ("norm3.norm", "norm3"),
    ("per_channel_statistics.mean-of-means", "latents_mean"),
    ("per_channel_statistics.std-of-means", "latents_std"),
];

/// 0.9.1 and 0.9.5 decoders: an upsampler before each resnet group, no width-changing resnet.
const DECODER_0_9_1: &[(&str, &str)] = &[
    ("up_blocks.0", "mid_block"),
    ("up_blocks.1", "up_blocks.0.upsamplers.0"),
    ("up_blocks.2", "up_blocks.0"),
    ("up_blocks.3", "up_blocks.1.upsamplers.0"),
    ("up_blocks.4", "up_blocks.1"),
    ("up_blocks.5", "up_blocks.2.upsamplers.0"),
    ("up_blocks.6", "up_blocks.2"),
    ("up_blocks.7", "up_blocks.3.upsamplers.0"),
    ("up_blocks.8", "up_blocks.3"),
];

/// 0.9.5 encoders: a downsampler after each resnet group.
const ENCODER_0_9_5: &[(&str, &str)] = &[
    ("down_blocks.0", "down_blocks.0"),
    ("down_blocks.1", "down_blocks.0.downsamplers.0"),
    ("down_blocks.2", "down_blocks.1"),
    ("down_blocks.3", "down_blocks.1.downsamplers.0"),
    ("down_blocks.4", "down_blocks.2"),
    ("down_blocks.5", "down_blocks.2.downsamplers.0"),
    ("down_blocks.6", "down_blocks.3"),
    ("down_blocks.7", "down_blocks.3.downsamplers.0"),
    ("down_blocks.8", "mid_block"),
];

const TIMESTEP_0_9_1: &[(&str, &str)] = &[
    ("last_time_embedder", "time_embedder"),
    ("last_scale_shift_table", "scale_shift_table"),
];

/// Names diffusers drops (statistics it does not use).
const DROPPED: &[&str] = &[
    "per_channel_statistics.channel",
    "per_channel_statistics.mean-of-means",
    "per_channel_statistics.mean-of-stds",
];

/// The renames of a layout, in the order diffusers applies them (its dict keeps the 0.9.0
/// order; a later layout's entries replace values in place and append the new ones).
fn renames(layout: LtxVaeLayout) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<(&str, &str)> = COMMON_0_9_0.to_vec();
    let mut update = |table: &[(&'static str, &'static str)]| {
        for &(k, val) in table {
            match v.iter_mut().find(|(kk, _)| *kk == k) {
                Some(e) => e.1 = val,
                None => v.push((k, val)),
            }
        }
    };
    match layout {
        LtxVaeLayout::V0_9_0 => {}
        LtxVaeLayout::V0_9_1 => {
            update(DECODER_0_9_1);
            update(TIMESTEP_0_9_1);
        }
        LtxVaeLayout::V0_9_5 => {
            update(DECODER_0_9_1);
            update(ENCODER_0_9_5);
            update(TIMESTEP_0_9_1);
        }
    }
    v
}

/// The diffusers name of an original VAE weight (`vae.` prefix optional), or `None` for the
/// statistics diffusers drops. The caller picks the VAE's weights out of a whole-model
/// checkpoint (the names starting `vae.`).
pub fn ltx_vae_key_from_original(name: &str, layout: LtxVaeLayout) -> Option<String> {
    let mut key = name.replace("vae.", "");
    for (from, to) in renames(layout) {
        if key.contains(from) {
            key = key.replace(from, to);
        }
    }
    if DROPPED.iter().any(|d| key.contains(d)) {
        return None;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str, layout: LtxVaeLayout) -> String {
        ltx_vae_key_from_original(name, layout).unwrap()
    }

    #[test]
    fn v0_9_0_nests_the_flat_stages() {
        let l = LtxVaeLayout::V0_9_0;
        assert_eq!(
            map("vae.decoder.up_blocks.0.res_blocks.2.conv1.conv.weight", l),
            "decoder.mid_block.resnets.2.conv1.conv.weight"
        );
        assert_eq!(
            map("vae.decoder.up_blocks.2.conv.conv.bias", l),
            "decoder.up_blocks.1.upsamplers.0.conv.conv.bias"
        );
        assert_eq!(
            map("vae.decoder.up_blocks.4.conv_shortcut.weight", l),
            "decoder.up_blocks.2.conv_in.conv_shortcut.conv.weight"
        );
        assert_eq!(
            map("vae.decoder.up_blocks.7.norm3.norm.weight", l),
            "decoder.up_blocks.3.conv_in.norm3.weight"
        );
        assert_eq!(
            map("vae.decoder.up_blocks.9.res_blocks.0.conv2.conv.weight", l),
            "decoder.up_blocks.3.resnets.0.conv2.conv.weight"
        );
        assert_eq!(
            map("vae.encoder.down_blocks.1.conv.weight", l),
            "encoder.down_blocks.0.downsamplers.0.conv.weight"
        );
        assert_eq!(
            map("vae.encoder.down_blocks.5.conv1.conv.weight", l),
            "encoder.down_blocks.1.conv_out.conv1.conv.weight"
        );
        assert_eq!(
            map("vae.encoder.down_blocks.9.res_blocks.3.conv2.conv.bias", l),
            "encoder.mid_block.resnets.3.conv2.conv.bias"
        );
        assert_eq!(
            map("vae.encoder.conv_in.conv.weight", l),
            "encoder.conv_in.conv.weight"
        );
        assert_eq!(
            map("vae.per_channel_statistics.mean-of-means", l),
            "latents_mean"
        );
        assert_eq!(
            map("vae.per_channel_statistics.std-of-means", l),
            "latents_std"
        );
        assert_eq!(
            ltx_vae_key_from_original("vae.per_channel_statistics.channel", l),
            None
        );
        assert_eq!(
            ltx_vae_key_from_original("vae.per_channel_statistics.mean-of-stds", l),
            None
        );
        // The prefix is optional.
        assert_eq!(
            map("decoder.conv_out.conv.weight", l),
            "decoder.conv_out.conv.weight"
        );
    }

    #[test]
    fn v0_9_1_moves_the_upsamplers_and_the_timestep_weights() {
        let l = LtxVaeLayout::V0_9_1;
        assert_eq!(
            map("vae.decoder.up_blocks.1.conv.conv.weight", l),
            "decoder.up_blocks.0.upsamplers.0.conv.conv.weight"
        );
        assert_eq!(
            map("vae.decoder.up_blocks.8.res_blocks.4.per_channel_scale1", l),
            "decoder.up_blocks.3.resnets.4.per_channel_scale1"
        );
        assert_eq!(
            map(
                "vae.decoder.up_blocks.6.time_embedder.timestep_embedder.linear_1.weight",
                l
            ),
            "decoder.up_blocks.2.time_embedder.timestep_embedder.linear_1.weight"
        );
        assert_eq!(
            map(
                "vae.decoder.last_time_embedder.timestep_embedder.linear_2.bias",
                l
            ),
            "decoder.time_embedder.timestep_embedder.linear_2.bias"
        );
        assert_eq!(
            map("vae.decoder.last_scale_shift_table", l),
            "decoder.scale_shift_table"
        );
        assert_eq!(
            map("vae.decoder.timestep_scale_multiplier", l),
            "decoder.timestep_scale_multiplier"
        );
        // The encoder keeps the 0.9.0 renames.
        assert_eq!(
            map("vae.encoder.down_blocks.2.norm3.norm.bias", l),
            "encoder.down_blocks.0.conv_out.norm3.bias"
        );
    }

    #[test]
    fn v0_9_5_renumbers_the_encoder() {
        let l = LtxVaeLayout::V0_9_5;
        assert_eq!(
            map("vae.encoder.down_blocks.7.conv.conv.weight", l),
            "encoder.down_blocks.3.downsamplers.0.conv.conv.weight"
        );
        assert_eq!(
            map("vae.encoder.down_blocks.8.res_blocks.1.conv1.conv.bias", l),
            "encoder.mid_block.resnets.1.conv1.conv.bias"
        );
        assert_eq!(
            map(
                "vae.encoder.down_blocks.2.res_blocks.5.conv2.conv.weight",
                l
            ),
            "encoder.down_blocks.1.resnets.5.conv2.conv.weight"
        );
        assert_eq!(
            map("vae.decoder.up_blocks.7.conv.conv.weight", l),
            "decoder.up_blocks.3.upsamplers.0.conv.conv.weight"
        );
    }

    #[test]
    fn layouts_are_told_apart_by_their_names() {
        let v090 = ["vae.encoder.down_blocks.9.res_blocks.0.conv1.conv.weight"];
        let v091 = [
            "vae.encoder.down_blocks.9.res_blocks.0.conv1.conv.weight",
            "vae.decoder.last_time_embedder.timestep_embedder.linear_1.weight",
        ];
        let v095 = [
            "vae.encoder.down_blocks.8.res_blocks.0.conv1.conv.weight",
            "vae.decoder.last_time_embedder.timestep_embedder.linear_1.weight",
        ];
        assert_eq!(LtxVaeLayout::from_keys(v090), LtxVaeLayout::V0_9_0);
        assert_eq!(LtxVaeLayout::from_keys(v091), LtxVaeLayout::V0_9_1);
        assert_eq!(LtxVaeLayout::from_keys(v095), LtxVaeLayout::V0_9_5);
        assert!(LtxVaeLayout::V0_9_1.config().timestep_conditioning);
    }

    #[test]
    fn only_the_whole_statistics_names_are_renamed() {
        // `mean-of-stds_over_std-of-means` contains `std-of-means`; diffusers drops it.
        for l in [
            LtxVaeLayout::V0_9_0,
            LtxVaeLayout::V0_9_1,
            LtxVaeLayout::V0_9_5,
        ] {
            assert_eq!(
                ltx_vae_key_from_original(
                    "vae.per_channel_statistics.mean-of-stds_over_std-of-means",
                    l
                ),
                None
            );
        }
    }
}
