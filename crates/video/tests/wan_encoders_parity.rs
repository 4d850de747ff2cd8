//! Parity of Wan2.1's conditioning encoders with the reference (transformers 5.23.0 /
//! diffusers 0.42.1, f32 on the CPU) on the tiny random-weight models of
//! tests/fixtures/wan/encoders (made by scripts/make-wan-encoders-fixture.py; its README.md is
//! the contract):
//!
//! - umT5 (`UMT5EncoderModel`) on padded ids with a mask and without, from the transformers
//!   folder, the ComfyUI fp16 file, the official Wan `.pth` and the ComfyUI scaled-fp8 file;
//! - the Wan prompt path: `prompt_clean`, the umT5 tokenizer padded to 512 (a truncated prompt,
//!   non-Latin scripts, an added token, a character outside the vocabulary) and diffusers'
//!   `_get_t5_prompt_embeds` (encode with the mask, cut, zero-pad to 512);
//! - the CLIP vision tower's `hidden_states[-2]` from the transformers folder (5.x names), the
//!   ComfyUI file (`vision_model.*`), the official Wan `.pth` and open_clip names;
//! - `CLIPImageProcessor` (Wan's config, PIL backend) on an upscaled and a downscaled non-square
//!   image, bit for bit, and end to end into the tower.
//!
//! Tolerance (f32 on the CPU, reference f32 from the same f16-rounded weights): rel-L2 ≤ 1e-4 and
//! max|Δ| ≤ 1e-3·max|ref|, widened by the test device's dtype (`reelsmith_kit::testing`).
//! Measured on the CPU in f32 (`-- --nocapture`): umT5 3.1e-7 rel-L2 / 4.4e-7 max for every
//! layout (transformers folder, ComfyUI fp16, official .pth; scaled fp8 2.8e-7 / 4.4e-7; no mask
//! 3.2e-7 / 4.6e-7), the 512-token Wan prompt embedding 6.7e-6 / 1.1e-5 (softmax over 512
//! keys); CLIP penultimate 2.1e-7 / 2.5e-7 for every layout, end to end 2.3e-7 / 4.5e-7; the
//! tokenizer ids, `prompt_clean` and the image processor (u8 crop and f32 pixels) exact.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::testing::TestDevice;
use reelsmith_kit::Precision;
use reelsmith_video::wan::clip_vision::{
    clip_official_name, clip_open_clip_name, ClipImageProcessor, ClipVision, ClipVisionConfig,
};
use reelsmith_video::wan::umt5::{
    prompt_clean, umt5_official_name, UmT5Config, UmT5Encoder, WanTokenizer, WeightFiles,
    WAN_MAX_TOKENS,
};
use reelsmith_video::VideoError;
use serde_json::Value;

fn test_device() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wan/encoders")
}

struct Fixture {
    json: Value,
    io: HashMap<String, Tensor>,
}

fn fixture() -> &'static Fixture {
    static FX: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FX.get_or_init(|| Fixture {
        json: serde_json::from_str(&std::fs::read_to_string(dir().join("encoders.json")).unwrap())
            .unwrap(),
        io: candle_core::safetensors::load(dir().join("encoders.io.safetensors"), &Device::Cpu)
            .unwrap(),
    })
}

impl Fixture {
    fn t(&self, key: &str) -> Tensor {
        self.io
            .get(key)
            .unwrap_or_else(|| panic!("fixture tensor {key} missing"))
            .to_device(&test_device().device)
            .unwrap()
    }
}

/// umT5 runs in f32 (the reference's precision) on every device.
fn umt5_dtype() -> DType {
    test_device().dtype(Precision::F32)
}

/// Wan runs the CLIP tower in f16 on GPUs.
fn clip_dtype() -> DType {
    test_device().dtype(Precision::F16)
}

fn check(what: &str, got: &Tensor, want: &Tensor) {
    test_device().assert_close(what, got, want, 1e-4, 1e-3);
}

fn umt5_config() -> UmT5Config {
    UmT5Config::from_file(&dir().join("umt5-tiny/config.json")).unwrap()
}

fn umt5_from(file: &str) -> UmT5Encoder {
    let td = test_device();
    let files = WeightFiles::open(&[dir().join(file)]).unwrap();
    UmT5Encoder::from_weights(&files, &umt5_config(), umt5_dtype(), &td.device).unwrap()
}

#[test]
fn umt5_config_reads_transformers_json_and_the_xxl_preset() {
    let cfg = umt5_config();
    let j = &fixture().json["umt5"];
    assert_eq!(cfg.d_model, 16);
    assert_eq!(cfg.num_layers, j["num_layers"].as_u64().unwrap() as usize);
    assert_eq!(cfg.relative_attention_num_buckets, 16);
    assert_eq!(cfg.relative_attention_max_distance, 32);
    let xxl = UmT5Config::umt5_xxl();
    assert_eq!(
        (
            xxl.vocab_size,
            xxl.d_model,
            xxl.num_heads,
            xxl.d_kv,
            xxl.d_ff,
            xxl.num_layers
        ),
        (256384, 4096, 64, 64, 10240, 24)
    );
    // umT5-XXL's buckets: transformers 5.23's `_relative_position_bucket` (32 buckets, max
    // distance 128, encoder) gives exactly these.
    let b: Vec<usize> = [
        -200i64, -128, -127, -64, -16, -8, -1, 0, 1, 7, 8, 12, 16, 32, 64, 127, 500,
    ]
    .iter()
    .map(|&r| xxl.bucket(r))
    .collect();
    assert_eq!(
        b,
        [15, 15, 15, 14, 10, 8, 1, 0, 17, 23, 24, 25, 26, 28, 30, 31, 31]
    );
}

#[test]
fn umt5_matches_transformers_in_every_layout() {
    let fx = fixture();
    let (ids, mask) = (fx.t("umt5.ids"), fx.t("umt5.mask"));
    let want = fx.t("umt5.hidden");
    let folder = UmT5Encoder::load(&dir().join("umt5-tiny"), &test_device().device).unwrap();
    check(
        "umt5 (transformers folder)",
        &folder.forward(&ids, Some(&mask)).unwrap(),
        &want,
    );
    check(
        "umt5 without a mask",
        &folder.forward(&ids, None).unwrap(),
        &fx.t("umt5.hidden_nomask"),
    );
    for file in ["umt5-tiny_fp16.safetensors", "umt5-tiny-enc-f16.pth"] {
        let enc = umt5_from(file);
        check(
            &format!("umt5 ({file})"),
            &enc.forward(&ids, Some(&mask))
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap(),
            &want,
        );
    }
}

#[test]
fn umt5_scaled_fp8_weights_are_dequantized() {
    let fx = fixture();
    let enc = umt5_from("umt5-tiny_fp8_e4m3fn_scaled.safetensors");
    let got = enc
        .forward(&fx.t("umt5.ids"), Some(&fx.t("umt5.mask")))
        .unwrap();
    check("umt5 (ComfyUI scaled fp8)", &got, &fx.t("umt5.hidden_fp8"));
}

#[test]
fn umt5_official_names_cover_the_pth() {
    let hf = WeightFiles::open(&[dir().join("umt5-tiny_fp16.safetensors")]).unwrap();
    let wan = WeightFiles::open(&[dir().join("umt5-tiny-enc-f16.pth")]).unwrap();
    let mut mapped: Vec<String> = hf
        .names()
        .map(|n| umt5_official_name(n).unwrap_or_else(|| panic!("{n} has no official name")))
        .collect();
    mapped.sort();
    let mut official: Vec<String> = wan.names().map(String::from).collect();
    official.sort();
    assert_eq!(mapped, official);
    assert_eq!(
        umt5_official_name("encoder.block.3.layer.1.DenseReluDense.wi_0.weight").as_deref(),
        Some("blocks.3.ffn.gate.0.weight")
    );
    assert_eq!(
        umt5_official_name("decoder.block.0.layer.0.SelfAttention.q.weight"),
        None
    );
}

#[test]
fn a_missing_tensor_names_the_file_and_the_key() {
    let mut cfg = umt5_config();
    cfg.num_layers += 1;
    let path = dir().join("umt5-tiny_fp16.safetensors");
    let files = WeightFiles::open(&[&path]).unwrap();
    let err = UmT5Encoder::from_weights(&files, &cfg, DType::F32, &Device::Cpu)
        .err()
        .expect("a layer too many must fail");
    let VideoError::Weights { path: p, message } = &err else {
        panic!("expected VideoError::Weights, got {err}");
    };
    assert!(p.ends_with("umt5-tiny_fp16.safetensors"), "{p}");
    assert!(
        message.contains("encoder.block.2.layer.0.layer_norm.weight"),
        "{message}"
    );
    let wan = WeightFiles::open(&[dir().join("umt5-tiny-enc-f16.pth")]).unwrap();
    let err = UmT5Encoder::from_weights(&wan, &cfg, DType::F32, &Device::Cpu)
        .err()
        .expect("a layer too many must fail")
        .to_string();
    assert!(
        err.contains("umt5-tiny-enc-f16.pth") && err.contains("blocks.2.norm1.weight"),
        "{err}"
    );
}

#[test]
fn prompt_clean_matches_diffusers() {
    for case in fixture().json["prompt_clean"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            prompt_clean(text),
            case["clean"].as_str().unwrap(),
            "{text:?}"
        );
    }
}

fn tokenizer() -> WanTokenizer {
    WanTokenizer::from_path(&dir().join("tokenizer")).unwrap()
}

#[test]
fn tokenizer_matches_transformers() {
    let tok = tokenizer();
    let cases = fixture().json["tokenizer"]["cases"].as_array().unwrap();
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let clean = case["clean"].as_str().unwrap();
        assert_eq!(prompt_clean(prompt), clean);
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(tok.encode_clean(clean), want, "{clean:?}");
        let padded = tok.tokenize(prompt);
        let n = want.len().min(WAN_MAX_TOKENS);
        assert_eq!(padded.ids.len(), WAN_MAX_TOKENS);
        assert_eq!(padded.len, n, "{clean:?}");
        assert_eq!(padded.truncated, want.len() - n);
        assert!(padded.ids[n..].iter().all(|&i| i == 0));
        assert_eq!(padded.ids[n - 1], 1, "ends with </s>");
    }
    assert!(
        cases.iter().any(|c| c["byte_fallback"] == true),
        "a byte-fallback case"
    );
}

#[test]
fn wan_prompt_embedding_matches_diffusers() {
    let fx = fixture();
    let tok = tokenizer();
    let enc = UmT5Encoder::load(&dir().join("umt5-tiny"), &test_device().device).unwrap();
    let wp = &fx.json["wan_prompt"];
    let prompts: Vec<&str> = wp["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let tokens: Vec<_> = prompts.iter().map(|p| tok.tokenize(p)).collect();
    let want_ids: Vec<Vec<i64>> = fx.t("wan_prompt.ids").to_vec2().unwrap();
    let lens: Vec<usize> = serde_json::from_value(wp["real_lengths"].clone()).unwrap();
    for ((t, w), &n) in tokens.iter().zip(&want_ids).zip(&lens) {
        let w: Vec<u32> = w.iter().map(|&x| x as u32).collect();
        assert_eq!(t.ids, w);
        assert_eq!(t.len, n);
    }
    let got = enc.encode_prompt(&tokens).unwrap();
    check(
        "Wan prompt embedding [3, 512, 16]",
        &got,
        &fx.t("wan_prompt.embeds"),
    );
    let rows: Vec<Vec<Vec<f32>>> = got.to_vec3().unwrap();
    for (r, &n) in rows.iter().zip(&lens) {
        assert!(
            r[n..].iter().flatten().all(|&v| v == 0.0),
            "zeros past the real tokens"
        );
        assert!(r[n - 1].iter().any(|&v| v != 0.0));
    }
}

fn clip_config() -> ClipVisionConfig {
    ClipVisionConfig::from_file(&dir().join("clip-vision-tiny/config.json")).unwrap()
}

#[test]
fn clip_penultimate_matches_transformers_in_every_layout() {
    let fx = fixture();
    let td = test_device();
    let cfg = clip_config();
    assert_eq!(cfg.tokens(), 5);
    assert_eq!(cfg.hidden_act, "gelu");
    let h = ClipVisionConfig::vit_h_14();
    assert_eq!(
        (h.tokens(), h.hidden_size, h.num_hidden_layers),
        (257, 1280, 32)
    );
    let px = fx.t("clip.pixels");
    let want = fx.t("clip.penultimate");
    let folder = ClipVision::load(&dir().join("clip-vision-tiny"), &td.device).unwrap();
    check(
        "clip (transformers 5 folder)",
        &folder.penultimate(&px).unwrap(),
        &want,
    );
    for file in [
        "clip_vision_tiny_comfy.safetensors",
        "clip-tiny-wan-f16.pth",
        "clip-tiny-open-clip.safetensors",
    ] {
        let files = WeightFiles::open(&[dir().join(file)]).unwrap();
        let m = ClipVision::from_weights(&files, &cfg, clip_dtype(), &td.device).unwrap();
        let got = m.penultimate(&px).unwrap().to_dtype(DType::F32).unwrap();
        check(&format!("clip ({file})"), &got, &want);
    }
}

#[test]
fn clip_name_maps_cover_the_files() {
    let hf = WeightFiles::open(&[dir().join("clip-vision-tiny/model.safetensors")]).unwrap();
    for (file, map) in [
        (
            "clip-tiny-wan-f16.pth",
            clip_official_name as fn(&str) -> Option<(String, Option<usize>)>,
        ),
        ("clip-tiny-open-clip.safetensors", clip_open_clip_name),
    ] {
        let other = WeightFiles::open(&[dir().join(file)]).unwrap();
        let mut mapped: Vec<String> = hf
            .names()
            .map(|n| map(n).unwrap_or_else(|| panic!("{n}: no name in {file}")).0)
            .collect();
        mapped.sort();
        mapped.dedup();
        let mut have: Vec<&str> = other
            .names()
            .filter(|n| !matches!(*n, "visual.head" | "visual.proj" | "log_scale"))
            .collect();
        have.sort();
        assert_eq!(mapped, have, "{file}");
    }
}

fn u8_tensor(t: &Tensor) -> Vec<u8> {
    t.flatten_all().unwrap().to_vec1::<u8>().unwrap()
}

#[test]
fn image_processor_is_exact() {
    let fx = fixture();
    let proc = ClipImageProcessor::wan_i2v();
    for name in ["up", "down"] {
        let img = fx.t(&format!("proc.{name}.image"));
        let (h, w, _) = img.dims3().unwrap();
        let (crop, ch, cw) = proc.resize_crop(&u8_tensor(&img), w, h).unwrap();
        assert_eq!((ch, cw), (224, 224));
        let want = u8_tensor(&fx.t(&format!("proc.{name}.crop_u8")));
        let diff = crop.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(
            diff,
            0,
            "{name} ({w}×{h}): {diff} of {} bytes differ",
            want.len()
        );
        let px = proc
            .preprocess(&u8_tensor(&img), w, h, &Device::Cpu)
            .unwrap();
        let rows = px.narrow(2, 0, 8).unwrap();
        let want = fx
            .t(&format!("proc.{name}.pixel_rows"))
            .to_device(&Device::Cpu)
            .unwrap();
        let got: Vec<f32> = rows.flatten_all().unwrap().to_vec1().unwrap();
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got.len(), want.len());
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: pixel values"
        );
    }
}

#[test]
fn image_to_penultimate_end_to_end() {
    let fx = fixture();
    let td = test_device();
    let proc = ClipImageProcessor {
        shortest_edge: Some(28),
        crop: Some((28, 28)),
        ..ClipImageProcessor::wan_i2v()
    };
    let img = fx.t("e2e.image");
    let (h, w, _) = img.dims3().unwrap();
    let px = proc.preprocess(&u8_tensor(&img), w, h, &td.device).unwrap();
    let want_px = fx.t("e2e.pixels");
    let d: f32 = (&px - &want_px)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(d, 0.0, "pixel values");
    let m = ClipVision::load(&dir().join("clip-vision-tiny"), &td.device).unwrap();
    check(
        "clip end to end",
        &m.penultimate(&px).unwrap(),
        &fx.t("e2e.penultimate"),
    );
}
