//! Parity of the LTX-Video VAE with diffusers 0.42.1 on the tiny random-weight VAEs of
//! `tests/fixtures/video` (made by `scripts/make-video-fixture.py`; its README is the contract),
//! in the three layouts, read from the original single files through the name map and, for
//! 0.9.5, from the diffusers folder.
//!
//! Tolerance (f32 on the CPU; the references are f32 from the same f16-rounded weights):
//! relative L2 error ≤ 1e-4 and max |Δ| ≤ 1e-3 · max |reference|, for the encoder's moments, the
//! normalised latents, the single-pass decode, and the streamed and tiled decodes (which equal
//! the single pass by construction, so they are held to the same reference). The 0.9.1 decoder
//! replays the recorded injection noise. Measured errors are printed (`-- --nocapture`).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use reelsmith_kit::noise::Replay;
use reelsmith_kit::testing::TestDevice;
use reelsmith_kit::Precision;
use reelsmith_video::ltx::vae::{
    ltx_vae_key_from_original, DiffusersTiling, LtxVae, LtxVaeConfig, LtxVaeLayout, TileConfig,
};
use serde_json::Value;

/// Where the networks run (`REELSMITH_TEST_DEVICE`, `REELSMITH_TEST_DTYPE`; CPU f32 by default).
fn test_device() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
}

/// The LTX VAE runs in bf16 in production.
fn dtype() -> DType {
    test_device().dtype(Precision::Bf16)
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/video")
}

struct Fixture {
    json: Value,
    io: HashMap<String, Tensor>,
}

impl Fixture {
    fn load() -> Self {
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(dir().join("ltx.json")).unwrap())
                .unwrap();
        let io =
            candle_core::safetensors::load(dir().join("ltx.io.safetensors"), &test_device().device)
                .unwrap();
        Self { json, io }
    }

    fn t(&self, key: &str) -> Tensor {
        self.io
            .get(key)
            .unwrap_or_else(|| panic!("fixture tensor {key} missing"))
            .clone()
    }

    fn config(&self, version: &str) -> LtxVaeConfig {
        serde_json::from_value(self.json["vae"][version].clone()).unwrap()
    }

    /// The decode timestep of a layout's reference decode (none for 0.9.0).
    fn temb(&self, v: &str) -> Option<Tensor> {
        self.json["vae_io"][v]["decode_timestep"]
            .as_f64()
            .map(|t| Tensor::new(&[t as f32], &test_device().device).unwrap())
    }

    /// The recorded decoder injection draws of a layout, in order.
    fn noise(&self, v: &str) -> Replay {
        let draws = self.json["vae_io"][v]["decoder_noise"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| self.t(d["key"].as_str().unwrap()))
            .collect();
        Replay::new(draws)
    }
}

/// rel-L2 and max|Δ|/max|ref|, asserted against the limits (widened by the test device's
/// dtype, see `reelsmith_kit::testing`).
fn check(what: &str, got: &Tensor, want: &Tensor) {
    test_device().assert_close(what, got, want, 1e-4, 1e-3);
}

/// The VAE of an original single file, its names mapped to diffusers'.
fn from_single_file(fx: &Fixture, version: &str) -> LtxVae {
    let td = test_device();
    let file = dir().join(format!("ltxv-tiny-{version}.safetensors"));
    let all = candle_core::safetensors::load(&file, &td.device).unwrap();
    let layout = LtxVaeLayout::from_keys(all.keys().map(String::as_str));
    let want = match version {
        "0.9.0" => LtxVaeLayout::V0_9_0,
        "0.9.1" => LtxVaeLayout::V0_9_1,
        _ => LtxVaeLayout::V0_9_5,
    };
    assert_eq!(layout, want, "{version}: layout from the names");
    let mut weights = HashMap::new();
    for (name, t) in all {
        if !name.starts_with("vae.") {
            continue;
        }
        if let Some(k) = ltx_vae_key_from_original(&name, layout) {
            assert!(
                weights.insert(k.clone(), t).is_none(),
                "{version}: {k} twice"
            );
        }
    }
    let vb = VarBuilder::from_tensors(weights, dtype(), &td.device);
    LtxVae::new(vb, &fx.config(version)).unwrap()
}

/// The 0.9.5 VAE of the diffusers folder (`ltx-tiny/vae`).
fn from_folder() -> LtxVae {
    let td = test_device();
    let vae_dir = dir().join("ltx-tiny/vae");
    let cfg =
        LtxVaeConfig::from_json(&std::fs::read_to_string(vae_dir.join("config.json")).unwrap())
            .unwrap();
    let weights = candle_core::safetensors::load(
        vae_dir.join("diffusion_pytorch_model.safetensors"),
        &td.device,
    )
    .unwrap();
    let vb = VarBuilder::from_tensors(weights, dtype(), &td.device);
    LtxVae::new(vb, &cfg).unwrap()
}

fn f32(t: Tensor) -> Tensor {
    t.to_dtype(DType::F32).unwrap()
}

/// Encode, normalise and decode (single pass, streamed, tiled) against the references.
fn check_layout(fx: &Fixture, vae: &LtxVae, v: &str, what: &str) {
    let video = fx.t("vae.video");
    let moments = f32(vae.encode_raw(&video).unwrap());
    check(
        &format!("{what} encode moments"),
        &moments,
        &fx.t(&format!("{v}.moments")),
    );
    let (mean, _) = vae.encode_moments(&video).unwrap();
    check(
        &format!("{what} latents_mean"),
        &f32(vae.latents_mean().clone()),
        &fx.t(&format!("{v}.latents_mean")),
    );
    check(
        &format!("{what} latents_std"),
        &f32(vae.latents_std().clone()),
        &fx.t(&format!("{v}.latents_std")),
    );
    let normalized = vae.normalize(&mean, vae.config().scaling_factor).unwrap();
    check(
        &format!("{what} normalized"),
        &f32(normalized),
        &fx.t(&format!("{v}.normalized")),
    );

    // The decodes start from the reference's mean, so they are checked on their own.
    let c = vae.config().latent_channels;
    let z = fx.t(&format!("{v}.moments")).narrow(1, 0, c).unwrap();
    let want = fx.t(&format!("{v}.decoded"));
    let temb = fx.temb(v);
    let mut noise = fx.noise(v);
    let decoded = vae.decode(&z, temb.as_ref(), Some(&mut noise)).unwrap();
    assert_eq!(noise.remaining(), 0, "{what}: recorded draws left unused");
    check(&format!("{what} decode"), &f32(decoded), &want);

    let radius = vae.receptive_radius();
    for (name, tile) in [
        ("streamed 1 frame a step", TileConfig::frames(1)),
        (
            "tiled 1×2, halo = radius",
            TileConfig::tiled(1, (1, 2), radius, 0),
        ),
        (
            "tiled 1×1, halo = radius + 1, blend 1",
            TileConfig::tiled(2, (1, 1), radius + 1, 1),
        ),
    ] {
        let mut noise = fx.noise(v);
        let mut runs = Vec::new();
        vae.decode_streamed(&z, temb.as_ref(), Some(&mut noise), tile, &mut |x| {
            runs.push(x);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            noise.remaining(),
            0,
            "{what} {name}: recorded draws left unused"
        );
        let got = Tensor::cat(&runs, 2).unwrap();
        check(
            &format!("{what} decode {name} ({} runs)", runs.len()),
            &f32(got),
            &want,
        );
    }
}

#[test]
fn vae_0_9_0_single_file_matches_diffusers() {
    let fx = Fixture::load();
    let vae = from_single_file(&fx, "0.9.0");
    check_layout(&fx, &vae, "vae090", "0.9.0");
}

#[test]
fn vae_0_9_1_single_file_matches_diffusers() {
    let fx = Fixture::load();
    let vae = from_single_file(&fx, "0.9.1");
    check_layout(&fx, &vae, "vae091", "0.9.1");
}

#[test]
fn vae_0_9_5_single_file_matches_diffusers() {
    let fx = Fixture::load();
    let vae = from_single_file(&fx, "0.9.5");
    check_layout(&fx, &vae, "vae095", "0.9.5");
}

#[test]
fn vae_0_9_5_diffusers_folder_matches_diffusers() {
    let fx = Fixture::load();
    let vae = from_folder();
    assert_eq!(vae.config(), &fx.config("0.9.5"));
    check_layout(&fx, &vae, "vae095", "0.9.5 folder");
}

/// diffusers' own spatial tiling (`enable_tiling`, blended tiles): a different result from the
/// plain decode, matched as such.
#[test]
fn vae_0_9_5_diffusers_tiling_matches_diffusers() {
    let fx = Fixture::load();
    let vae = from_folder();
    let t = &fx.json["vae_io"]["vae095.tiled"]["enable_tiling"];
    let get = |k: &str| t[k].as_u64().unwrap() as usize;
    let tiling = DiffusersTiling {
        tile_sample_min_height: get("tile_sample_min_height"),
        tile_sample_min_width: get("tile_sample_min_width"),
        tile_sample_stride_height: get("tile_sample_stride_height"),
        tile_sample_stride_width: get("tile_sample_stride_width"),
    };
    let moments = vae
        .encode_raw_diffusers_tiled(&fx.t("vae.video"), &tiling)
        .unwrap();
    check(
        "0.9.5 diffusers-tiled encode moments",
        &f32(moments),
        &fx.t("vae095.tiled.moments"),
    );
    let c = vae.config().latent_channels;
    // The reference decodes the plain (untiled) mean.
    let z = fx.t("vae095.moments").narrow(1, 0, c).unwrap();
    let temb = fx.temb("vae095.tiled");
    let decoded = vae
        .decode_diffusers_tiled(&z, temb.as_ref(), None, &tiling)
        .unwrap();
    check(
        "0.9.5 diffusers-tiled decode",
        &f32(decoded),
        &fx.t("vae095.tiled.decoded"),
    );
}
