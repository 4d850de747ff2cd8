//! Post-processing weights as users have them: Real-ESRGAN upscalers and RIFE interpolators.
//!
//! - **`.pth` / `.pt` / `.pkl`** (torch zip pickles; Real-ESRGAN nests its state dict under
//!   `params_ema` or `params`, RIFE's keys carry DataParallel's `module.`): read whole (they
//!   are tens of MB) and told apart by their tensors.
//! - **`.safetensors`** conversions: recognised from the header's tensor names first (so a
//!   multi-GB diffusion file is never loaded here), then read and checked like a pickle.
//! - **ncnn `.param` + `.bin`** pairs as realesrgan-ncnn-vulkan ships them (Real-ESRGAN only):
//!   the graph is mapped back to BasicSR names; a `.bin` given alone finds its `.param`.
//!
//! The architecture comes from the tensors, never from the file name: `conv_first` +
//! `body.N.rdbM` is RRDBNet (arch `realesrgan`, variant `x{scale}-{blocks}b`), `body.N` alone
//! is SRVGGNetCompact (`realesrgan-compact`, `x{scale}-compact-{convs}`), `block0.conv0…` is
//! RIFE's IFNet (`rife`, variant the releases its layout belongs to: `4.0/4.1`,
//! `4.21-4.23`, `4.25/4.26`, …). For ncnn graphs the scale is the one the model is published
//! as (realesr-animevideov3-x2 is the x4 network followed by a downscale).

use std::path::Path;

use candle_core::{DType, Device};
use reelsmith_post::esrgan::{self, Arch};
use reelsmith_post::rife::Rife;
use reelsmith_post::weights::{self, ncnn, Tensors};
use reelsmith_post::PostError;

use super::image::safetensors_header;
use super::{err, size, Detected, ImportError};
use crate::hub::registry::ModelKind;

/// Registry architectures an import gives post-processing models.
pub const ARCH_RRDB: &str = "realesrgan";
pub const ARCH_COMPACT: &str = "realesrgan-compact";
pub const ARCH_RIFE: &str = "rife";

/// No Real-ESRGAN or RIFE pickle comes near this; a bigger one is something else, and is
/// refused before it is read into memory.
const MAX_PICKLE: u64 = 1 << 30;

/// The tensor only RIFE's IFNet has (after `module.` is stripped).
const RIFE_KEY: &str = "block0.conv0.0.0.weight";

const EXPECTED: &str = "expected Real-ESRGAN (RRDBNet or SRVGGNetCompact, BasicSR names) or \
                        RIFE 4.x (IFNet flownet) weights";

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The message of a post-crate error, without the path it repeats (ours names the file).
fn message(e: PostError) -> String {
    match e {
        PostError::Weights { message, .. } => message,
        e => e.to_string(),
    }
}

/// `.pth`/`.pt`/`.pkl`, `.param` or `.bin` files: `Ok(None)` for any other extension.
pub(super) fn detect_file(path: &Path) -> Result<Option<Detected>, ImportError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pth" | "pt" | "pkl" => {
            if size(path) > MAX_PICKLE {
                return Err(err(
                    path,
                    format!(
                        "a {} GB pickle is not an upscaler or interpolator ({EXPECTED}, tens of MB)",
                        size(path) >> 30
                    ),
                ));
            }
            let t = weights::read_tensors(path, &Device::Cpu).map_err(|e| err(path, message(e)))?;
            from_tensors(path, &t, "pth").map(Some)
        }
        "param" => detect_ncnn(path).map(Some),
        "bin" => {
            let param = path.with_extension("param");
            if !param.is_file() {
                return Err(err(
                    path,
                    format!(
                        "a lone .bin: an ncnn model is a .param/.bin pair and there is no {} \
                         beside it (other .bin weights need their folder imported)",
                        file_name(&param)
                    ),
                ));
            }
            detect_ncnn(&param).map(Some)
        }
        _ => Ok(None),
    }
}

/// A `.safetensors` file whose tensor names are Real-ESRGAN's or RIFE's; `Ok(None)` when they
/// are not (diffusion, video and other files go their own way).
pub(super) fn detect_safetensors(path: &Path) -> Result<Option<Detected>, ImportError> {
    let header = safetensors_header(path)?;
    let names: Vec<&str> = header
        .keys()
        .filter(|k| *k != "__metadata__")
        .map(|k| k.strip_prefix("module.").unwrap_or(k))
        .collect();
    if !looks_like_post(&names) {
        return Ok(None);
    }
    let t = weights::read_tensors(path, &Device::Cpu).map_err(|e| err(path, message(e)))?;
    from_tensors(path, &t, "safetensors").map(Some)
}

/// Whether tensor names are those of a Real-ESRGAN generator or a RIFE IFNet.
fn looks_like_post(names: &[&str]) -> bool {
    let has = |n: &str| names.contains(&n);
    let rrdb = has("conv_first.weight") && names.iter().any(|n| n.starts_with("body.0.rdb1."));
    let compact = has("body.0.weight") && names.iter().all(|n| n.starts_with("body."));
    rrdb || compact || has(RIFE_KEY)
}

fn esrgan_detected(
    path: &Path,
    arch: Arch,
    scale: usize,
    format: &'static str,
    files: Vec<(String, u64)>,
) -> Detected {
    let (arch, variant) = match arch {
        Arch::Rrdb(s) => (ARCH_RRDB, format!("x{scale}-{}b", s.num_block)),
        Arch::Compact(s) => (ARCH_COMPACT, format!("x{scale}-compact-{}", s.num_conv)),
    };
    Detected {
        kind: ModelKind::Upscale,
        format,
        arch: arch.into(),
        variant: Some(variant),
        languages: vec![],
        files,
        root: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        video: None,
    }
}

/// What the tensors of a pickle or safetensors file are.
fn from_tensors(path: &Path, t: &Tensors, format: &'static str) -> Result<Detected, ImportError> {
    let files = vec![(file_name(path), size(path))];
    if t.contains_key(RIFE_KEY) {
        let rife = Rife::from_tensors(t, &Device::Cpu, DType::F32).map_err(|e| {
            err(
                path,
                format!("RIFE weights that do not load: {}", message(e)),
            )
        })?;
        return Ok(Detected {
            kind: ModelKind::Interpolation,
            format,
            arch: ARCH_RIFE.into(),
            variant: Some(rife.version().to_string().replace('–', "-")),
            languages: vec![],
            files,
            root: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            video: None,
        });
    }
    let arch = Arch::detect(t).map_err(|why| err(path, format!("{why}; {EXPECTED}")))?;
    Ok(esrgan_detected(path, arch, arch.scale(), format, files))
}

/// An ncnn `.param` with the `.bin` beside it: a Real-ESRGAN graph.
fn detect_ncnn(param: &Path) -> Result<Detected, ImportError> {
    let bin = ncnn::bin_for(param);
    if !bin.is_file() {
        return Err(err(
            param,
            format!(
                "an ncnn model is a .param/.bin pair: {} is missing beside it",
                file_name(&bin)
            ),
        ));
    }
    let model = ncnn::read(param, &Device::Cpu).map_err(|e| match e {
        PostError::Weights { path, message } => ImportError {
            path: path.into(),
            msg: message,
        },
        e => err(param, e.to_string()),
    })?;
    let (t, nominal) = esrgan::from_ncnn(&model).map_err(|why| {
        err(
            param,
            format!("{why}; reelsmith reads Real-ESRGAN ncnn graphs (RIFE: import its .pth/.pkl)"),
        )
    })?;
    let arch = Arch::detect(&t).map_err(|why| err(param, format!("{why}; {EXPECTED}")))?;
    let files = vec![
        (file_name(param), size(param)),
        (file_name(&bin), size(&bin)),
    ];
    Ok(esrgan_detected(param, arch, nominal, "ncnn", files))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use candle_core::Tensor;

    use super::super::{detect, entry, register};
    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/post")
            .join(rel)
    }

    fn zeros(shape: &[usize]) -> Tensor {
        Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()
    }

    /// An RRDBNet state dict (BasicSR names) of `blocks` blocks, 4 features, growth 2.
    fn rrdb(scale_in: usize, blocks: usize) -> HashMap<String, Tensor> {
        let (f, g) = (4, 2);
        let mut t = HashMap::new();
        let mut conv = |name: String, o: usize, i: usize| {
            t.insert(format!("{name}.weight"), zeros(&[o, i, 3, 3]));
            t.insert(format!("{name}.bias"), zeros(&[o]));
        };
        conv("conv_first".into(), f, scale_in);
        for b in 0..blocks {
            for r in 1..=3 {
                for k in 1..=5 {
                    let out = if k == 5 { f } else { g };
                    conv(format!("body.{b}.rdb{r}.conv{k}"), out, f + (k - 1) * g);
                }
            }
        }
        for name in ["conv_body", "conv_up1", "conv_up2", "conv_hr"] {
            conv(name.into(), f, f);
        }
        conv("conv_last".into(), 3, f);
        t
    }

    fn what(d: &Detected) -> (ModelKind, &'static str, &str, Option<&str>) {
        (d.kind, d.format, d.arch.as_str(), d.variant.as_deref())
    }

    #[test]
    fn a_tiny_rrdb_safetensors_is_an_upscaler_and_registers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tiny-rrdb.safetensors");
        candle_core::safetensors::save(&rrdb(3, 2), &p).unwrap();
        let d = detect(&p).unwrap();
        assert_eq!(
            what(&d),
            (ModelKind::Upscale, "safetensors", ARCH_RRDB, Some("x4-2b"))
        );
        assert_eq!(d.files, vec![("tiny-rrdb.safetensors".into(), size(&p))]);
        assert_eq!(d.root, dir.path().canonicalize().unwrap());
        // x2 RRDBNet takes the pixel-unshuffled 12 channels.
        candle_core::safetensors::save(&rrdb(12, 1), &p).unwrap();
        assert_eq!(detect(&p).unwrap().variant.as_deref(), Some("x2-1b"));

        let config = dir.path().join("config");
        register(&config, &entry(&d, "tiny-rrdb")).unwrap();
        let r = crate::hub::Registry::load(Some(&config)).unwrap();
        let m = r.get("tiny-rrdb").unwrap();
        assert_eq!(
            (m.kind, m.arch.as_str(), m.format.as_str(), m.dtype.as_str()),
            (ModelKind::Upscale, ARCH_RRDB, "safetensors", "f32")
        );
        assert_eq!(m.variant.as_deref(), Some("x4-2b"));
        assert_eq!(m.files[0].path, "tiny-rrdb.safetensors");
    }

    #[test]
    fn committed_pickles_and_conversions_are_told_apart_by_their_tensors() {
        let cases = [
            (
                "esrgan/compact-x4.pth",
                ModelKind::Upscale,
                "pth",
                ARCH_COMPACT,
                "x4-compact-4",
            ),
            (
                "esrgan/rrdb-x4.pth",
                ModelKind::Upscale,
                "pth",
                ARCH_RRDB,
                "x4-2b",
            ),
            (
                "esrgan/rrdb-x2.safetensors",
                ModelKind::Upscale,
                "safetensors",
                ARCH_RRDB,
                "x2-1b",
            ),
            (
                "rife/weights-v4_0.safetensors",
                ModelKind::Interpolation,
                "safetensors",
                ARCH_RIFE,
                "4.0/4.1",
            ),
            (
                "rife/weights-v4_22.safetensors",
                ModelKind::Interpolation,
                "safetensors",
                ARCH_RIFE,
                "4.21-4.23",
            ),
            (
                "rife/weights-v4_25.safetensors",
                ModelKind::Interpolation,
                "safetensors",
                ARCH_RIFE,
                "4.25/4.26",
            ),
        ];
        for (rel, kind, format, arch, variant) in cases {
            let p = fixture(rel);
            let d = detect(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(what(&d), (kind, format, arch, Some(variant)), "{rel}");
            assert_eq!(d.files, vec![(file_name(&p), size(&p))], "{rel}");
        }
    }

    #[test]
    fn other_tensors_are_not_taken_for_post_weights() {
        assert!(!looks_like_post(&[
            "body.0.weight",
            "text_model.embeddings.weight"
        ]));
        assert!(!looks_like_post(&["conv_first.weight", "conv_last.weight"]));
        assert!(looks_like_post(&[
            "body.0.weight",
            "body.1.weight",
            "body.2.weight"
        ]));
        assert!(looks_like_post(&[RIFE_KEY, "encode.cnn0.weight"]));

        let dir = tempfile::tempdir().unwrap();
        // An unrelated safetensors file still gets the diffusion checkpoint's answer.
        let p = dir.path().join("w.safetensors");
        let t = HashMap::from([("w".to_string(), zeros(&[2]))]);
        candle_core::safetensors::save(&t, &p).unwrap();
        let e = detect(&p).unwrap_err().to_string();
        assert!(
            e.contains("diffusion checkpoint") && !e.contains("Real-ESRGAN"),
            "{e}"
        );
        // RRDBNet names with an impossible input: the reason and what was expected.
        let p = dir.path().join("odd.safetensors");
        candle_core::safetensors::save(&rrdb(5, 1), &p).unwrap();
        let e = detect(&p).unwrap_err().to_string();
        assert!(
            e.contains("odd.safetensors")
                && e.contains("conv_first")
                && e.contains("expected Real-ESRGAN"),
            "{e}"
        );
        // A pickle that is not one.
        let p = dir.path().join("junk.pth");
        std::fs::write(&p, b"not a zip").unwrap();
        let e = detect(&p).unwrap_err().to_string();
        assert!(e.contains("junk.pth") && e.contains("PyTorch"), "{e}");
    }

    /// An SRVGGNetCompact x4 ncnn graph (2 features, 1 body conv) and its f32 weights.
    fn write_ncnn(dir: &Path) -> PathBuf {
        let param = dir.join("tiny-x4.param");
        std::fs::write(
            &param,
            "7767517\n7 7\nInput in 0 1 data\n\
             Convolution c0 1 1 data a 0=2 1=3 5=1 6=54\nPReLU p0 1 1 a b 0=2\n\
             Convolution c1 1 1 b c 0=2 1=3 5=1 6=36\nPReLU p1 1 1 c d 0=2\n\
             Convolution c2 1 1 d e 0=48 1=3 5=1 6=864\nPixelShuffle ps 1 1 e out 0=4\n",
        )
        .unwrap();
        let mut bin = Vec::new();
        let mut floats = |n: usize, tag: bool| {
            if tag {
                bin.extend(0u32.to_le_bytes());
            }
            bin.extend(std::iter::repeat_n(0.5f32.to_le_bytes(), n).flatten());
        };
        for (kernel, out) in [(54, 2), (36, 2), (864, 48)] {
            floats(kernel, true);
            floats(out, false);
            if out == 2 {
                floats(2, false); // the PReLU after it
            }
        }
        std::fs::write(dir.join("tiny-x4.bin"), bin).unwrap();
        param
    }

    #[test]
    fn an_ncnn_pair_is_found_from_either_file_and_a_missing_half_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let param = write_ncnn(dir.path());
        let bin = dir.path().join("tiny-x4.bin");
        for p in [&param, &bin] {
            let d = detect(p).unwrap();
            assert_eq!(
                what(&d),
                (
                    ModelKind::Upscale,
                    "ncnn",
                    ARCH_COMPACT,
                    Some("x4-compact-1")
                )
            );
            assert_eq!(
                d.files,
                vec![
                    ("tiny-x4.param".into(), size(&param)),
                    ("tiny-x4.bin".into(), size(&bin)),
                ]
            );
            assert_eq!(entry(&d, "tiny").dtype, "f16");
        }
        std::fs::rename(&bin, dir.path().join("elsewhere.bin")).unwrap();
        let e = detect(&param).unwrap_err().to_string();
        assert!(e.contains("tiny-x4.bin") && e.contains("missing"), "{e}");
        let e = detect(&dir.path().join("elsewhere.bin"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("elsewhere.param"), "{e}");
    }

    /// The real weights `scripts/fetch-post-test-models.sh` fetches, when they are here.
    #[test]
    fn real_ncnn_models_and_rife_4_0_are_recognised() {
        let root = std::env::var_os("REELSMITH_TEST_MODELS")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".cache/reelsmith/test-models"))
            })
            .unwrap_or_default();
        let ncnn = root.join("realesrgan-ncnn");
        let rife = root.join("rife-4.0/flownet.pkl");
        if !ncnn.is_dir() || !rife.is_file() {
            eprintln!(
                "skipped: no real post models in {} (scripts/fetch-post-test-models.sh)",
                root.display()
            );
            return;
        }
        let cases = [
            ("realesr-animevideov3-x2", ARCH_COMPACT, "x2-compact-16"),
            ("realesr-animevideov3-x3", ARCH_COMPACT, "x3-compact-16"),
            ("realesr-animevideov3-x4", ARCH_COMPACT, "x4-compact-16"),
            ("realesrgan-x4plus", ARCH_RRDB, "x4-23b"),
            ("realesrgan-x4plus-anime", ARCH_RRDB, "x4-6b"),
        ];
        for (stem, arch, variant) in cases {
            let d = detect(&ncnn.join(format!("{stem}.param"))).unwrap();
            assert_eq!(
                what(&d),
                (ModelKind::Upscale, "ncnn", arch, Some(variant)),
                "{stem}"
            );
            assert_eq!(d.files.len(), 2);
        }
        let d = detect(&rife).unwrap();
        assert_eq!(
            what(&d),
            (ModelKind::Interpolation, "pth", ARCH_RIFE, Some("4.0/4.1"))
        );
    }
}
