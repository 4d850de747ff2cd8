//! Parity of the LTX-Video transformer with diffusers' `LTXVideoTransformer3DModel` on the tiny
//! random-weight model of tests/fixtures/video (made by scripts/make-video-fixture.py; its
//! README.md is the contract).
//!
//! Three recorded calls: per-sample timesteps on a latent grid, per-token timesteps on the same
//! grid (first latent frame clean, as image-to-video conditioning), and explicit `video_coords`
//! with per-token timesteps as `LTXConditionPipeline` builds them (an extra conditioning frame in
//! front). Each is run from the diffusers folder (`ltx-tiny/transformer`) and from every original
//! single file (`ltxv-tiny-*.safetensors`) through the key map; the rotary tables are checked
//! against the reference's too.
//!
//! Tolerance (f32 on the CPU; the reference is f32 from the same f16-rounded weights): relative
//! L2 error ≤ 1e-4 and max |Δ| ≤ 1e-3 · max |reference|, widened by the test device's dtype
//! (`reelsmith_kit::testing`). Measured errors are printed (`-- --nocapture`): on the CPU in
//! f32, ≤ 4.2e-7 rel-L2 and ≤ 6.6e-7 max|Δ| (max|ref| ≈ 1.1–1.4) for every call and weight
//! source; the RoPE tables to the last bit (cos) and ≤ 6e-8 (sin).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use reelsmith_kit::testing::TestDevice;
use reelsmith_kit::Precision;
use reelsmith_video::ltx::transformer::{
    is_ltx_transformer_key, ltx_transformer_key_from_original, LtxTransformer,
    LtxTransformerConfig, Positions,
};
use serde_json::Value;

fn test_device() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
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

    fn config(&self) -> LtxTransformerConfig {
        serde_json::from_value(self.json["transformer"].clone()).unwrap()
    }

    fn grid(&self) -> Positions {
        let io = &self.json["transformer_io"];
        let g: Vec<usize> = serde_json::from_value(io["latent_grid"].clone()).unwrap();
        let s: Vec<f64> = serde_json::from_value(io["rope_interpolation_scale"].clone()).unwrap();
        Positions::Grid {
            frames: g[0],
            height: g[1],
            width: g[2],
            rope_interpolation_scale: (s[0], s[1], s[2]),
        }
    }
}

fn dtype() -> DType {
    test_device().dtype(Precision::Bf16)
}

/// The diffusers folder's transformer.
fn from_folder(fx: &Fixture) -> LtxTransformer {
    let td = test_device();
    let folder = dir().join("ltx-tiny/transformer");
    let cfg = LtxTransformerConfig::from_json(
        &std::fs::read_to_string(folder.join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg, fx.config(), "ltx-tiny/transformer/config.json");
    let weights = candle_core::safetensors::load(
        folder.join("diffusion_pytorch_model.safetensors"),
        &td.device,
    )
    .unwrap();
    LtxTransformer::new(VarBuilder::from_tensors(weights, dtype(), &td.device), &cfg).unwrap()
}

/// The transformer of an original single file, renamed through the key map.
fn from_single_file(fx: &Fixture, name: &str) -> LtxTransformer {
    let td = test_device();
    let all = candle_core::safetensors::load(dir().join(name), &td.device).unwrap();
    let total = all.len();
    let weights: HashMap<String, Tensor> = all
        .into_iter()
        .filter(|(k, _)| is_ltx_transformer_key(k))
        .map(|(k, v)| (ltx_transformer_key_from_original(&k), v))
        .collect();
    assert!(
        weights.len() < total,
        "{name}: the VAE tensors are set aside"
    );
    assert!(
        weights.keys().all(|k| !k.starts_with("model.")),
        "{name}: prefix stripped"
    );
    LtxTransformer::new(
        VarBuilder::from_tensors(weights, dtype(), &td.device),
        &fx.config(),
    )
    .unwrap()
}

fn single_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("ltxv-tiny-") && n.ends_with(".safetensors"))
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no ltxv-tiny-*.safetensors in the fixtures"
    );
    names
}

/// Asserts `got` matches `want` within the limits (widened by the test device's dtype).
fn check(what: &str, got: &Tensor, want: &Tensor, rel_limit: f64, max_limit: f64) {
    test_device().assert_close(what, got, want, rel_limit, max_limit);
}

fn check_call(what: &str, got: &Tensor, want: &Tensor) {
    check(what, got, want, 1e-4, 1e-3);
}

/// The three recorded calls through one model.
fn check_calls(fx: &Fixture, model: &LtxTransformer, source: &str) {
    // The recorded T5 states ([negative, prompt] rows) and their padding mask.
    let ctx = fx.t("t5.hidden");
    let mask = fx.t("t5.mask");
    let grid = fx.grid();
    let out = model
        .forward(&fx.t("tr.x"), &ctx, &fx.t("tr.t_batch"), Some(&mask), &grid)
        .unwrap();
    check_call(
        &format!("{source}: per-sample timesteps"),
        &out,
        &fx.t("tr.out_batch"),
    );
    let out = model
        .forward(&fx.t("tr.x"), &ctx, &fx.t("tr.t_token"), Some(&mask), &grid)
        .unwrap();
    check_call(
        &format!("{source}: per-token timesteps"),
        &out,
        &fx.t("tr.out_token"),
    );
    let coords = Positions::Coords(fx.t("tr.coords"));
    let out = model
        .forward(
            &fx.t("tr.x_coords"),
            &ctx,
            &fx.t("tr.t_coords"),
            Some(&mask),
            &coords,
        )
        .unwrap();
    check_call(
        &format!("{source}: video_coords, per-token timesteps"),
        &out,
        &fx.t("tr.out_coords"),
    );
}

#[test]
fn rope_tables_match_diffusers() {
    let fx = Fixture::load();
    let model = from_folder(&fx);
    let x = fx.t("tr.x");
    let (b, s, _) = x.dims3().unwrap();
    let (cos, sin) = model
        .rope_tables(&fx.grid(), b, s, &test_device().device)
        .unwrap();
    let want_cos = fx.t("tr.rope_cos");
    let want_sin = fx.t("tr.rope_sin");
    let cos = cos.broadcast_as(want_cos.shape()).unwrap();
    let sin = sin.broadcast_as(want_sin.shape()).unwrap();
    // f32 whatever the compute dtype.
    check("rope cos", &cos, &want_cos, 1e-6, 1e-5);
    check("rope sin", &sin, &want_sin, 1e-6, 1e-5);
}

#[test]
fn diffusers_folder_matches_diffusers() {
    let fx = Fixture::load();
    check_calls(&fx, &from_folder(&fx), "ltx-tiny/transformer");
}

#[test]
fn single_files_match_diffusers() {
    let fx = Fixture::load();
    for name in single_files() {
        check_calls(&fx, &from_single_file(&fx, &name), &name);
    }
}

#[test]
fn query_chunked_attention_matches_diffusers() {
    let fx = Fixture::load();
    let mut model = from_folder(&fx);
    // A few query rows per chunk: the chunked path against the same references.
    model.set_attention_budget(1024);
    check_calls(&fx, &model, "ltx-tiny/transformer, chunked attention");
}
