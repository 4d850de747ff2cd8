//! Parity of the Real-ESRGAN generators with the reference PyTorch definitions (BasicSR 1.4.2's
//! RRDBNet, realesrgan 0.3.0's SRVGGNetCompact) on the tiny random-weight networks of
//! `tests/fixtures/post/esrgan` (made by `scripts/make-esrgan-fixture.py`), read from `.pth`
//! (`params` and `params_ema` nesting) and `.safetensors`.
//!
//! Tolerance (f32 on the CPU): relative L2 ≤ 1e-4 and max|Δ| ≤ 1e-4·max|ref| for one forward
//! pass and for the reference's `enhance` (reflect pre-pad 10 and mod-pad around the network);
//! tiled runs with a halo of the network's reach equal the whole picture within 1e-4 too.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::testing::TestDevice;
use reelsmith_kit::Precision;
use reelsmith_post::esrgan::{Arch, Esrgan, Tiling};
use reelsmith_post::weights::read_tensors;

fn test_device() -> &'static TestDevice {
    static TD: std::sync::OnceLock<TestDevice> = std::sync::OnceLock::new();
    TD.get_or_init(TestDevice::from_env)
}

/// Real-ESRGAN runs in f16 on a GPU (the reference's `half=True`).
fn dtype() -> DType {
    test_device().dtype(Precision::F16)
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/post/esrgan")
}

/// A reference input or output of `io.safetensors` (read once for every test).
fn io(name: &str) -> Tensor {
    static ALL: std::sync::OnceLock<std::collections::HashMap<String, Tensor>> =
        std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| {
        candle_core::safetensors::load(dir().join("io.safetensors"), &test_device().device).unwrap()
    });
    all.get(name)
        .unwrap_or_else(|| panic!("io.safetensors has no {name}"))
        .clone()
}

fn load(file: &str) -> Esrgan {
    Esrgan::load(&dir().join(file), dtype(), &test_device().device)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn check(file: &str, net: &str, arch: Arch) {
    let td = test_device();
    let m = load(file);
    assert_eq!(m.arch(), arch, "{file}");
    let y = m.forward(&io(&format!("{net}.x"))).unwrap();
    td.assert_close(
        &format!("{net} forward"),
        &y.to_dtype(DType::F32).unwrap(),
        &io(&format!("{net}.y")),
        1e-4,
        1e-4,
    );
    let y = m
        .upscale(
            &io(&format!("{net}.enhance.x")),
            &Tiling::default(),
            &mut |_, _| true,
        )
        .unwrap();
    td.assert_close(
        &format!("{net} enhance"),
        &y,
        &io(&format!("{net}.enhance.y")),
        1e-4,
        1e-4,
    );
}

#[test]
fn compact_matches_the_reference() {
    use reelsmith_post::esrgan::CompactShape;
    check(
        "compact-x4.pth",
        "compact-x4",
        Arch::Compact(CompactShape {
            scale: 4,
            num_conv: 4,
            num_feat: 8,
        }),
    );
}

#[test]
fn rrdb_x4_matches_the_reference() {
    use reelsmith_post::esrgan::RrdbShape;
    check(
        "rrdb-x4.pth",
        "rrdb-x4",
        Arch::Rrdb(RrdbShape {
            scale: 4,
            num_block: 2,
            num_feat: 8,
            num_grow: 4,
        }),
    );
}

#[test]
fn rrdb_x2_unshuffles_and_matches_the_reference() {
    use reelsmith_post::esrgan::RrdbShape;
    check(
        "rrdb-x2.safetensors",
        "rrdb-x2",
        Arch::Rrdb(RrdbShape {
            scale: 2,
            num_block: 1,
            num_feat: 8,
            num_grow: 4,
        }),
    );
}

/// Tiles smaller than the picture, with the network's full reach as halo, give the one-pass
/// result everywhere (the halo is clipped at the picture's edges, where the network sees the
/// same zero padding as on the whole).
#[test]
fn tiled_equals_whole_with_the_reach_as_halo() {
    let td = test_device();
    for file in ["compact-x4.pth", "rrdb-x2.safetensors", "rrdb-x4.pth"] {
        let m = load(file);
        let img = Tensor::rand(0f32, 1., (1, 3, 45, 61), &td.device).unwrap();
        let whole = m
            .upscale(&img, &Tiling::default(), &mut |_, _| true)
            .unwrap();
        let mut tiles = 0;
        let tiling = Tiling {
            tile: 16,
            halo: Some(m.reach()),
            pre_pad: 10,
        };
        let tiled = m
            .upscale(&img, &tiling, &mut |_, total| {
                tiles = total;
                true
            })
            .unwrap();
        assert!(tiles >= 6, "{file}: {tiles} tiles");
        td.assert_close(&format!("{file} tiled"), &tiled, &whole, 1e-4, 1e-4);
    }
}

/// The `.pth` and a `.safetensors` written from the same tensors give the same network.
#[test]
fn pth_and_safetensors_forms_agree() {
    let td = test_device();
    let t = read_tensors(&dir().join("rrdb-x4.pth"), &Device::Cpu).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("rrdb-x4.safetensors");
    candle_core::safetensors::save(&t, &st).unwrap();
    let a = load("rrdb-x4.pth").forward(&io("rrdb-x4.x")).unwrap();
    let b = Esrgan::load(&st, dtype(), &td.device)
        .unwrap()
        .forward(&io("rrdb-x4.x"))
        .unwrap();
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn wrong_tensors_are_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("other.safetensors");
    let mut t = std::collections::HashMap::new();
    t.insert(
        "encoder.weight".to_string(),
        Tensor::zeros((4, 3, 3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&t, &f).unwrap();
    let e = Esrgan::load(&f, DType::F32, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("other.safetensors") && e.contains("RRDBNet"),
        "{e}"
    );
    let e = Esrgan::load(&tmp.path().join("x.onnx"), DType::F32, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(".onnx"), "{e}");
}
