//! The VAE's configuration: diffusers' `AutoencoderKLLTXVideo` `vae/config.json`, with
//! diffusers' defaults for a missing field (the defaults are the 0.9.0 layout). The three
//! released layouts differ only through these fields:
//!
//! - 0.9.0: four encoder down blocks (`LTXVideoDownBlock3D`, strided 3D convolutions), a plain
//!   decoder.
//! - 0.9.1: the same encoder; a wider decoder whose upsamplers add a residual and halve the
//!   channels (`upsample_residual`, `upsample_factor`), conditioned on the decode timestep
//!   (`timestep_conditioning`) and injecting learned-scale noise (`decoder_inject_noise`).
//! - 0.9.5 and later: `LTXVideo095DownBlock3D` encoder blocks whose downsamplers fold space or
//!   time into channels (`downsample_type`), a fifth `block_out_channels` entry, explicit
//!   compression ratios, and the 0.9.1-style decoder without noise.

use serde::Deserialize;

fn three() -> usize {
    3
}
fn c128() -> usize {
    128
}
fn four() -> usize {
    4
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn eps6() -> f64 {
    1e-6
}
fn unit() -> f64 {
    1.0
}
fn blocks() -> Vec<usize> {
    vec![128, 256, 512, 512]
}
fn layers() -> Vec<usize> {
    vec![4, 3, 3, 3, 4]
}
fn scaling() -> Vec<bool> {
    vec![true, true, true, false]
}
fn down_types() -> Vec<String> {
    vec!["LTXVideoDownBlock3D".into(); 4]
}
fn conv4() -> Vec<String> {
    vec!["conv".into(); 4]
}
fn no_noise() -> Vec<bool> {
    vec![false; 5]
}
fn no_residual() -> Vec<bool> {
    vec![false; 4]
}
fn factor_one() -> Vec<usize> {
    vec![1; 4]
}

/// diffusers `AutoencoderKLLTXVideo` config (field names and defaults as diffusers 0.42 has
/// them; unknown fields such as `_class_name` are ignored).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LtxVaeConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    #[serde(default = "c128")]
    pub latent_channels: usize,
    /// Encoder widths. With `LTXVideo095DownBlock3D` blocks one more entry than blocks: block
    /// `i` goes from entry `i` to entry `i + 1`.
    #[serde(default = "blocks")]
    pub block_out_channels: Vec<usize>,
    /// `LTXVideoDownBlock3D` or `LTXVideo095DownBlock3D`, one per encoder block.
    #[serde(default = "down_types")]
    pub down_block_types: Vec<String>,
    /// Decoder widths, listed outermost (full resolution) first, as diffusers lists them.
    #[serde(default = "blocks")]
    pub decoder_block_out_channels: Vec<usize>,
    /// Resnets per encoder block, the last entry the mid block's.
    #[serde(default = "layers")]
    pub layers_per_block: Vec<usize>,
    /// Resnets per decoder block (outermost first), the last entry the mid block's.
    #[serde(default = "layers")]
    pub decoder_layers_per_block: Vec<usize>,
    #[serde(default = "scaling")]
    pub spatio_temporal_scaling: Vec<bool>,
    #[serde(default = "scaling")]
    pub decoder_spatio_temporal_scaling: Vec<bool>,
    /// Per decoder block (outermost first, the last entry the mid block's): whether its resnets
    /// add learned-scale spatial noise after each convolution (0.9.1).
    #[serde(default = "no_noise")]
    pub decoder_inject_noise: Vec<bool>,
    /// `conv`, `spatial`, `temporal` or `spatiotemporal` per `LTXVideo095DownBlock3D`.
    #[serde(default = "conv4")]
    pub downsample_type: Vec<String>,
    /// Per decoder upsampler (outermost first): add the pixel-shuffled input back.
    #[serde(default = "no_residual")]
    pub upsample_residual: Vec<bool>,
    /// Per decoder upsampler (outermost first): by how much it divides the channels on top of
    /// the pixel shuffle.
    #[serde(default = "factor_one")]
    pub upsample_factor: Vec<usize>,
    /// The decoder takes the decode timestep (0.9.1+).
    #[serde(default)]
    pub timestep_conditioning: bool,
    #[serde(default = "four")]
    pub patch_size: usize,
    #[serde(default = "one")]
    pub patch_size_t: usize,
    #[serde(default = "eps6")]
    pub resnet_norm_eps: f64,
    #[serde(default = "unit")]
    pub scaling_factor: f64,
    #[serde(default = "yes")]
    pub encoder_causal: bool,
    #[serde(default)]
    pub decoder_causal: bool,
    /// Pixels per latent pixel; derived from the config when absent (0.9.5 states 32).
    #[serde(default)]
    pub spatial_compression_ratio: Option<usize>,
    /// Frames per latent frame after the first; derived when absent (0.9.5 states 8).
    #[serde(default)]
    pub temporal_compression_ratio: Option<usize>,
}

impl Default for LtxVaeConfig {
    /// diffusers' defaults (the 0.9.0 layout).
    fn default() -> Self {
        match serde_json::from_str("{}") {
            Ok(c) => c,
            Err(_) => unreachable!("every field has a default"),
        }
    }
}

impl LtxVaeConfig {
    /// From a diffusers `vae/config.json`.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// LTX-Video 0.9.0 (`ltx-video-2b-v0.9`).
    pub fn v0_9_0() -> Self {
        Self::default()
    }

    /// LTX-Video 0.9.1: timestep-conditioned, noise-injecting decoder.
    pub fn v0_9_1() -> Self {
        Self {
            decoder_block_out_channels: vec![256, 512, 1024],
            decoder_layers_per_block: vec![5, 6, 7, 8],
            decoder_spatio_temporal_scaling: vec![true; 3],
            decoder_inject_noise: vec![true, true, true, false],
            upsample_residual: vec![true; 3],
            upsample_factor: vec![2; 3],
            timestep_conditioning: true,
            ..Self::default()
        }
    }

    /// LTX-Video 0.9.5 and later (0.9.7 and 0.9.8 share the VAE layout).
    pub fn v0_9_5() -> Self {
        Self {
            block_out_channels: vec![128, 256, 512, 1024, 2048],
            down_block_types: vec!["LTXVideo095DownBlock3D".into(); 4],
            decoder_block_out_channels: vec![256, 512, 1024],
            layers_per_block: vec![4, 6, 6, 2, 2],
            decoder_layers_per_block: vec![5, 5, 5, 5],
            spatio_temporal_scaling: vec![true; 4],
            decoder_spatio_temporal_scaling: vec![true; 3],
            decoder_inject_noise: vec![false; 4],
            downsample_type: ["spatial", "temporal", "spatiotemporal", "spatiotemporal"]
                .map(String::from)
                .to_vec(),
            upsample_residual: vec![true; 3],
            upsample_factor: vec![2; 3],
            timestep_conditioning: true,
            spatial_compression_ratio: Some(32),
            temporal_compression_ratio: Some(8),
            ..Self::default()
        }
    }

    /// Pixels per latent pixel (diffusers: the stated ratio, else `patch_size · 2^scalings`).
    pub fn spatial_compression(&self) -> usize {
        self.spatial_compression_ratio.unwrap_or_else(|| {
            let n = self.spatio_temporal_scaling.iter().filter(|&&s| s).count();
            self.patch_size << n
        })
    }

    /// Frames per latent frame after the first.
    pub fn temporal_compression(&self) -> usize {
        self.temporal_compression_ratio.unwrap_or_else(|| {
            let n = self.spatio_temporal_scaling.iter().filter(|&&s| s).count();
            self.patch_size_t << n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffusers_defaults_are_the_0_9_0_layout() {
        let c = LtxVaeConfig::from_json(r#"{"_class_name": "AutoencoderKLLTXVideo"}"#).unwrap();
        assert_eq!(c, LtxVaeConfig::v0_9_0());
        assert_eq!(c.block_out_channels, vec![128, 256, 512, 512]);
        assert_eq!(c.decoder_inject_noise.len(), 5);
        assert!(c.encoder_causal && !c.decoder_causal && !c.timestep_conditioning);
        assert_eq!((c.spatial_compression(), c.temporal_compression()), (32, 8));
    }

    #[test]
    fn reads_the_0_9_5_config_as_diffusers_writes_it() {
        let json = r#"{
          "_class_name": "AutoencoderKLLTXVideo", "_diffusers_version": "0.33.0.dev0",
          "block_out_channels": [128, 256, 512, 1024, 2048],
          "decoder_block_out_channels": [256, 512, 1024], "decoder_causal": false,
          "decoder_inject_noise": [false, false, false, false],
          "decoder_layers_per_block": [5, 5, 5, 5],
          "decoder_spatio_temporal_scaling": [true, true, true],
          "down_block_types": ["LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D",
                               "LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D"],
          "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
          "encoder_causal": true, "in_channels": 3, "latent_channels": 128,
          "layers_per_block": [4, 6, 6, 2, 2], "out_channels": 3, "patch_size": 4,
          "patch_size_t": 1, "resnet_norm_eps": 1e-06, "scaling_factor": 1.0,
          "spatial_compression_ratio": 32, "spatio_temporal_scaling": [true, true, true, true],
          "temporal_compression_ratio": 8, "timestep_conditioning": true,
          "upsample_factor": [2, 2, 2], "upsample_residual": [true, true, true]
        }"#;
        let c = LtxVaeConfig::from_json(json).unwrap();
        assert_eq!(c, LtxVaeConfig::v0_9_5());
        assert_eq!((c.spatial_compression(), c.temporal_compression()), (32, 8));
    }

    #[test]
    fn null_ratios_are_derived() {
        let c = LtxVaeConfig::from_json(
            r#"{"spatial_compression_ratio": null, "temporal_compression_ratio": null}"#,
        )
        .unwrap();
        assert_eq!(c.spatial_compression(), 32);
        assert_eq!(LtxVaeConfig::v0_9_1().temporal_compression(), 8);
    }
}
