//! Parity of the Wan2.1 VAE with diffusers 0.42.1 `AutoencoderKLWan` on the tiny random-weight
//! VAE of `tests/fixtures/wan/vae` (made by `scripts/make-wan-vae-fixture.py`; its README is the
//! contract), read from the diffusers folder, from the original-naming safetensors file and from
//! the `.pth`.
//!
//! Tolerance (f32 on the CPU; the references are f32 from the same f16-rounded weights):
//! relative L2 error ≤ 1e-4 and max |Δ| ≤ 1e-3 · max |reference|, for the encoder's moments
//! (9 frames and 1 frame), the streamed decode against diffusers' decode, and the tiled encode
//! and decode against diffusers' `enable_tiling` ones. The three weight layouts must agree bit
//! for bit, and a decode saved part-way and resumed must equal the uninterrupted one bit for bit.
//!
//! Measured (CPU f32, `-- --nocapture`; rel-L2 / max|Δ|/max|ref|): encode 9 frames 2.8e-5 /
//! 4.4e-5, encode 1 frame 1.3e-5 / 1.3e-5, streamed decode 3.3e-5 / 2.5e-4, tiled encode
//! 1.6e-6 / 3.9e-6, tiled decode 5.3e-5 / 3.0e-4. That is the f32 noise of this tiny network
//! (2 channels at the first level, where the L2 norm amplifies rounding): diffusers' own f32
//! decode differs from its f64 decode by 2.2e-5 rel-L2.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor};
use reelsmith_kit::testing::TestDevice;
use reelsmith_video::wan::vae::{
    WanDecodeState, WanStreamDecoder, WanTiling, WanVae, WanVaeConfig,
};
use reelsmith_video::VideoError;
use serde_json::Value;

/// Where the networks run (`REELSMITH_TEST_DEVICE`); the Wan VAE always runs in f32.
fn test_device() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/wan/vae")
}

const REL: f64 = 1e-4;
const MAX: f64 = 1e-3;

struct Fixture {
    json: Value,
    io: HashMap<String, Tensor>,
    config: WanVaeConfig,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(dir().join("wan-vae.json")).unwrap())
                .unwrap();
        let io = candle_core::safetensors::load(
            dir().join("wan-vae.io.safetensors"),
            &test_device().device,
        )
        .unwrap();
        let config =
            WanVaeConfig::from_json(&json["config"].to_string(), "wan-vae.json config").unwrap();
        Fixture { json, io, config }
    })
}

impl Fixture {
    fn t(&self, key: &str) -> Tensor {
        self.io
            .get(key)
            .unwrap_or_else(|| panic!("fixture tensor {key} missing"))
            .clone()
    }

    fn tiling(&self) -> WanTiling {
        let t = &self.json["enable_tiling"];
        let g = |k: &str| t[k].as_u64().unwrap() as usize;
        WanTiling {
            tile_sample_min_height: g("tile_sample_min_height"),
            tile_sample_min_width: g("tile_sample_min_width"),
            tile_sample_stride_height: g("tile_sample_stride_height"),
            tile_sample_stride_width: g("tile_sample_stride_width"),
        }
    }

    /// The reference latent mean (the first z channels of the moments).
    fn mean(&self, key: &str) -> Tensor {
        self.t(key).narrow(1, 0, self.config.z_dim).unwrap()
    }
}

fn vae() -> &'static WanVae {
    static V: std::sync::OnceLock<WanVae> = std::sync::OnceLock::new();
    V.get_or_init(|| WanVae::from_diffusers_dir(&dir().join("vae"), &test_device().device).unwrap())
}

fn single_file(name: &str) -> WanVae {
    WanVae::from_file(&dir().join(name), &fixture().config, &test_device().device).unwrap()
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn close(what: &str, got: &Tensor, want: &Tensor) {
    test_device().assert_close(what, got, want, REL, MAX);
}

#[test]
fn the_fixture_config_is_the_wan2_1_structure() {
    let c = &fixture().config;
    assert_eq!(c.base_dim, 2);
    assert_eq!(
        (c.z_dim, c.dim_mult.as_slice(), c.num_res_blocks),
        (16, [1, 2, 4, 4].as_slice(), 2)
    );
    assert_eq!(c.latents_mean, WanVaeConfig::wan2_1().latents_mean);
}

#[test]
fn encode_matches_diffusers() {
    let f = fixture();
    let m = vae().encode_moments(&f.t("video")).unwrap();
    close("encode 9 frames (moments)", &m, &f.t("moments"));
    let m1 = vae()
        .encode_moments(&f.t("video").narrow(2, 0, 1).unwrap())
        .unwrap();
    close("encode 1 frame (moments)", &m1, &f.t("moments_1frame"));
    let mean = vae().encode(&f.t("video")).unwrap();
    assert_eq!(
        max_abs(&mean, &f.mean("moments")),
        max_abs(&m.narrow(1, 0, 16).unwrap(), &f.mean("moments"))
    );
}

#[test]
fn streamed_decode_matches_diffusers_decode() {
    let f = fixture();
    let z = f.mean("moments");
    let (_, _, n, h, w) = z.dims5().unwrap();
    let mut dec = vae().stream_decoder(h, w, None).unwrap();
    let mut frames = Vec::new();
    for i in 0..n {
        let out = dec.decode_step(&z.narrow(2, i, 1).unwrap()).unwrap();
        assert_eq!(out.dim(2).unwrap(), if i == 0 { 1 } else { 4 }, "step {i}");
        frames.push(out);
    }
    assert_eq!(dec.next_frame(), n);
    let streamed = Tensor::cat(&frames, 2).unwrap();
    close("streamed decode", &streamed, &f.t("decoded"));
    let whole = vae().decode(&z, None).unwrap();
    assert_eq!(
        max_abs(&whole, &streamed),
        0.0,
        "decode = the streamed loop"
    );
    // A wrong latent frame is refused, not decoded.
    assert!(matches!(
        dec.decode_step(&z.narrow(2, 0, 1).unwrap().narrow(3, 0, 2).unwrap()),
        Err(VideoError::Invalid(_))
    ));
}

#[test]
fn tiled_encode_and_decode_match_diffusers_tiling() {
    let f = fixture();
    let tiling = f.tiling();
    let m = vae()
        .encode_moments_tiled(&f.t("tiled.video"), &tiling)
        .unwrap();
    close("tiled encode (moments)", &m, &f.t("tiled.moments"));
    let z = f.mean("tiled.moments");
    let tiled = vae().decode(&z, Some(tiling)).unwrap();
    close("tiled decode", &tiled, &f.t("tiled.decoded"));
    // Frame by frame over all the tiles: the same frames.
    let (_, _, n, h, w) = z.dims5().unwrap();
    let mut dec = vae().stream_decoder(h, w, Some(tiling)).unwrap();
    assert_eq!(dec.tiles(), 4);
    let frames: Vec<Tensor> = (0..n)
        .map(|i| dec.decode_step(&z.narrow(2, i, 1).unwrap()).unwrap())
        .collect();
    let streamed = Tensor::cat(&frames, 2).unwrap();
    assert_eq!(max_abs(&streamed, &tiled), 0.0, "streamed tiled = tiled");
    // The tiling is real: the untiled decode of the same latents differs.
    let plain = vae().decode(&z, None).unwrap();
    assert!(max_abs(&plain, &tiled) > 1e-3);
}

#[test]
fn the_original_layouts_load_to_the_same_network() {
    let f = fixture();
    let video = f.t("video").narrow(2, 0, 5).unwrap();
    let z = f.mean("moments");
    let want_m = vae().encode_moments(&video).unwrap();
    let want_d = vae().decode(&z, None).unwrap();
    for name in ["wan-vae-tiny.safetensors", "wan-vae-tiny.pth"] {
        let v = single_file(name);
        let m = v.encode_moments(&video).unwrap();
        assert_eq!(max_abs(&m, &want_m), 0.0, "{name}: encode");
        let d = v.decode(&z, None).unwrap();
        assert_eq!(max_abs(&d, &want_d), 0.0, "{name}: decode");
        close(&format!("{name}: decode"), &d, &f.t("decoded"));
    }
}

fn decode_resumed(tiling: Option<WanTiling>, stop_after: usize, z: &Tensor) -> (Tensor, Tensor) {
    let (_, _, n, h, w) = z.dims5().unwrap();
    let frame = |i: usize| z.narrow(2, i, 1).unwrap();
    let mut dec = vae().stream_decoder(h, w, tiling).unwrap();
    let whole: Vec<Tensor> = (0..n)
        .map(|i| dec.decode_step(&frame(i)).unwrap())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("decode.state.safetensors");
    let mut first = vec![];
    {
        let mut dec = vae().stream_decoder(h, w, tiling).unwrap();
        for i in 0..stop_after {
            first.push(dec.decode_step(&frame(i)).unwrap());
        }
        dec.save(&path).unwrap();
        // The decode goes on past the save and is then "killed": what it did after is lost.
        dec.decode_step(&frame(stop_after)).unwrap();
    }
    // Resumed by another VAE instance (loaded from the .pth).
    let other = single_file("wan-vae-tiny.pth");
    let mut dec = WanStreamDecoder::resume(&other, &path).unwrap();
    assert_eq!(dec.next_frame(), stop_after);
    assert_eq!(dec.state().tiling(), tiling);
    while dec.next_frame() < n {
        let i = dec.next_frame();
        first.push(dec.decode_step(&frame(i)).unwrap());
    }
    (
        Tensor::cat(&whole, 2).unwrap(),
        Tensor::cat(&first, 2).unwrap(),
    )
}

#[test]
fn a_saved_decode_resumes_to_the_same_frames() {
    let f = fixture();
    let z = f.mean("moments");
    for stop in [1, 2] {
        let (whole, resumed) = decode_resumed(None, stop, &z);
        assert_eq!(
            max_abs(&whole, &resumed),
            0.0,
            "resumed after {stop} frames"
        );
        close(&format!("resumed after {stop}"), &resumed, &f.t("decoded"));
    }
    let z = f.mean("tiled.moments");
    let (whole, resumed) = decode_resumed(Some(f.tiling()), 1, &z);
    assert_eq!(
        max_abs(&whole, &resumed),
        0.0,
        "tiled, resumed after 1 frame"
    );
    close("tiled, resumed", &resumed, &f.t("tiled.decoded"));
}

#[test]
fn a_decode_state_is_checked_when_resumed() {
    let f = fixture();
    let z = f.mean("moments");
    let (_, _, _, h, w) = z.dims5().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.safetensors");
    let mut dec = vae().stream_decoder(h, w, None).unwrap();
    dec.decode_step(&z.narrow(2, 0, 1).unwrap()).unwrap();
    dec.decode_step(&z.narrow(2, 1, 1).unwrap()).unwrap();
    dec.save(&path).unwrap();
    let state = WanDecodeState::load(&path, &test_device().device).unwrap();
    assert_eq!((state.next_frame(), state.latent_size()), (2, (h, w)));
    // The caches are what the memory estimate counts, exactly, once every slot holds 2 frames.
    let est = f.config.decode_memory(8 * w, 8 * h);
    assert_eq!(state.cache_bytes() as u64, est.cache_bytes);
    assert!(f.config.decode_bytes_per_frame(8 * w, 8 * h) > est.cache_bytes);
    // Not a decode state.
    let bad = WanStreamDecoder::resume(vae(), &dir().join("wan-vae-tiny.safetensors"));
    assert!(matches!(bad, Err(VideoError::Weights { .. })));
    // A truncated file.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(WanStreamDecoder::resume(vae(), &path).is_err());
}

#[test]
fn normalize_is_the_pipelines_formula() {
    let f = fixture();
    let z = f.mean("moments");
    let n = vae().normalize(&z).unwrap();
    let c = &f.config;
    let mean = Tensor::from_vec(
        c.latents_mean.iter().map(|v| *v as f32).collect::<Vec<_>>(),
        (1, 16, 1, 1, 1),
        &test_device().device,
    )
    .unwrap();
    let std = Tensor::from_vec(
        c.latents_std.iter().map(|v| *v as f32).collect::<Vec<_>>(),
        (1, 16, 1, 1, 1),
        &test_device().device,
    )
    .unwrap();
    let want = z.broadcast_sub(&mean).unwrap().broadcast_div(&std).unwrap();
    assert!(max_abs(&n, &want) <= 1e-6);
    let back = vae().denormalize(&n).unwrap();
    assert!(max_abs(&back, &z) <= 1e-5);
    assert!(vae().normalize(&z.narrow(1, 0, 8).unwrap()).is_err());
}

#[test]
fn missing_and_unexpected_weights_name_the_file_and_key() {
    let path = dir().join("wan-vae-tiny.safetensors");
    let dev = &test_device().device;
    let load = |t: HashMap<String, Tensor>| WanVae::from_tensors(t, &fixture().config, &path, dev);
    let full = candle_core::safetensors::load(&path, dev).unwrap();
    let msg = |r: Result<WanVae, VideoError>| match r {
        Err(VideoError::Weights { path, message }) => format!("{path}: {message}"),
        Err(e) => panic!("not a weights error: {e}"),
        Ok(_) => panic!("loaded"),
    };
    let mut t = full.clone();
    t.remove("decoder.upsamples.7.time_conv.weight");
    let m = msg(load(t));
    assert!(m.contains("wan-vae-tiny.safetensors"), "{m}");
    assert!(
        m.contains("decoder.up_blocks.1.upsamplers.0.time_conv.weight"),
        "{m}"
    );
    let mut t = full.clone();
    let extra = t["conv1.bias"].clone();
    t.insert("decoder.middle.3.residual.0.gamma".into(), extra.clone());
    assert!(msg(load(t)).contains("decoder.middle.3.residual.0.gamma"));
    // Diffusers naming with a stray tensor.
    let mut t: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir().join("vae/diffusion_pytorch_model.safetensors"), dev)
            .unwrap();
    t.insert("decoder.extra.weight".into(), extra);
    assert!(msg(load(t)).contains("decoder.extra.weight"));
    // A wrong config: the shapes do not fit.
    let mut c = fixture().config.clone();
    c.base_dim = 4;
    let r = WanVae::from_tensors(full, &c, &path, dev);
    assert!(msg(r).contains("shape"));
    let r = WanVae::from_file(&dir().join("nope.safetensors"), &fixture().config, dev);
    assert!(matches!(r, Err(VideoError::Weights { .. })));
    let _ = DType::F32;
}
