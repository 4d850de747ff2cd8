//! Image models on disk: single-file diffusion checkpoints told apart by their tensor names,
//! diffusers pipeline folders by their configs, and the tokenizers the image engine needs.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{err, read_json, size, Detected, ImportError};
use crate::hub::registry::{ModelEntry, ModelKind};

/// Whether reelsmith can run a registry entry as an image model (not a companion, a format
/// and architecture the engine knows).
pub fn runnable_image(m: &ModelEntry) -> bool {
    m.kind == ModelKind::Image
        && m.format == "safetensors"
        && m.variant.as_deref() != Some("text-encoders")
        && reelsmith_diffusion::arch::builtin(&m.arch, m.variant.as_deref()).is_some()
}

/// A safetensors file's header (a JSON object of tensors, and `__metadata__`); only the
/// 8-byte little-endian length and the JSON after it are read.
pub(super) fn safetensors_header(
    p: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, ImportError> {
    let mut f = std::fs::File::open(p).map_err(|e| err(p, e.to_string()))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| err(p, "not a safetensors file: too short"))?;
    let n = u64::from_le_bytes(n);
    if n == 0 || n > 100 << 20 || n + 8 > size(p) {
        return Err(err(p, "not a safetensors file: bad header length"));
    }
    let mut h = vec![0u8; n as usize];
    f.read_exact(&mut h)
        .map_err(|_| err(p, "not a safetensors file: truncated header"))?;
    let v: serde_json::Value = serde_json::from_slice(&h).map_err(|e| {
        err(
            p,
            format!("not a safetensors file: header is not JSON ({e})"),
        )
    })?;
    match v {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(err(p, "not a safetensors file: header is not an object")),
    }
}

/// A safetensors file's header must be a JSON object of tensors.
pub(super) fn check_safetensors(p: &Path) -> Result<(), ImportError> {
    safetensors_header(p).map(|_| ())
}

/// What one safetensors file holds, as far as image models go (from its tensor names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiffusionFile {
    /// A single-file checkpoint of a registry architecture (`sd15`, `sd21`, `sdxl`,
    /// `sdxl-refiner`) or FLUX's transformer (`flux`).
    Checkpoint(&'static str),
    /// A kohya or diffusers (peft) LoRA.
    Lora,
    /// An LDM/SGM UNet without the text encoder and autoencoder.
    UnetOnly,
}

/// Classifies a file by the prefixes of its tensor names; `None`: nothing diffusion-specific.
fn classify_diffusion<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> Option<DiffusionFile> {
    let has = |p: &str| keys.clone().any(|k| k.starts_with(p));
    let lora = keys.clone().any(|k| {
        k.starts_with("lora_unet_")
            || k.starts_with("lora_te")
            || k.contains(".lora_A.")
            || k.contains(".lora_B.")
            || k.ends_with(".lora_down.weight")
            || k.ends_with(".lora_up.weight")
    });
    if lora {
        return Some(DiffusionFile::Lora);
    }
    if has("double_blocks.")
        || has("model.diffusion_model.double_blocks.")
        || has("diffusion_model.double_blocks.")
    {
        return Some(DiffusionFile::Checkpoint("flux"));
    }
    if !has("model.diffusion_model.") {
        return None;
    }
    Some(if has("conditioner.embedders.1.") {
        DiffusionFile::Checkpoint("sdxl")
    } else if has("conditioner.embedders.0.model.") {
        DiffusionFile::Checkpoint("sdxl-refiner")
    } else if has("cond_stage_model.model.") {
        DiffusionFile::Checkpoint("sd21")
    } else if has("cond_stage_model.transformer.") {
        DiffusionFile::Checkpoint("sd15")
    } else {
        DiffusionFile::UnetOnly
    })
}

/// The variant a checkpoint's metadata names: `v` for SD 2.x v-prediction (768) files, as
/// written by kohya's and Stability's tools (`modelspec.prediction_type`, an architecture
/// ending in `-v`).
fn metadata_variant(header: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let meta = header.get("__metadata__")?.as_object()?;
    let get = |k: &str| meta.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let v = get("modelspec.prediction_type") == "v"
        || get("modelspec.prediction_type") == "v_prediction"
        || get("modelspec.architecture").ends_with("-v");
    v.then(|| "v".to_string())
}

/// Files an image model folder may carry besides its weights (part of the entry, so the
/// fingerprint follows them): diffusers configs and the tokenizers.
const IMAGE_EXTRAS: &[&str] = &[
    "unet/config.json",
    "transformer/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "text_encoder_2/config.json",
    "scheduler/scheduler_config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/bpe_simple_vocab_16e6.txt.gz",
    "bpe_simple_vocab_16e6.txt.gz",
    "tokenizer_2/vocab.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/spiece.model",
    "tokenizer_2/tokenizer.json",
];

pub(super) fn image_extras(root: &Path) -> Vec<(String, u64)> {
    IMAGE_EXTRAS
        .iter()
        .filter(|f| root.join(f).is_file())
        .map(|f| (f.to_string(), size(&root.join(f))))
        .collect()
}

/// The tokenizers the image engine needs must be in the folder: CLIP's BPE for every
/// architecture, T5's for FLUX.
fn check_tokenizers(root: &Path, arch: &str) -> Result<(), ImportError> {
    let has = |f: &str| root.join(f).is_file();
    // The SDXL refiner's diffusers folder has only `tokenizer_2/` (OpenCLIP-bigG's BPE).
    let clip = (has("tokenizer/vocab.json") && has("tokenizer/merges.txt"))
        || (has("tokenizer_2/vocab.json") && has("tokenizer_2/merges.txt"))
        || has("tokenizer/bpe_simple_vocab_16e6.txt.gz")
        || has("bpe_simple_vocab_16e6.txt.gz");
    if !clip {
        return Err(err(
            root,
            format!(
                "a {arch} image model needs its CLIP tokenizer beside the weights: \
                 tokenizer/vocab.json + tokenizer/merges.txt (the `tokenizer/` folder of the \
                 model's diffusers repository), or bpe_simple_vocab_16e6.txt.gz"
            ),
        ));
    }
    if arch == "flux" && !has("tokenizer_2/spiece.model") && !has("tokenizer_2/tokenizer.json") {
        return Err(err(
            root,
            "FLUX needs its T5 tokenizer beside the weights: tokenizer_2/spiece.model \
             (or tokenizer_2/tokenizer.json) from the FLUX.1-schnell repository",
        ));
    }
    Ok(())
}

/// A folder (or one file) of single-file diffusion checkpoints: which architecture, or why it
/// cannot be imported; `None` when no file looks like a diffusion model. `only` restricts the
/// checkpoint to that file (a file was imported, not its folder).
pub(super) fn detect_checkpoint(
    root: &Path,
    only: Option<&Path>,
) -> Result<Option<Detected>, ImportError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| err(root, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut checkpoints = Vec::new();
    let mut loras = Vec::new();
    let mut unet_only = Vec::new();
    let mut all_keys: Vec<String> = Vec::new();
    let mut variant = None;
    for f in &files {
        let header = safetensors_header(f)?;
        let keys = header.keys().map(String::as_str);
        match classify_diffusion(keys) {
            Some(DiffusionFile::Checkpoint(a)) => {
                variant = variant.or_else(|| metadata_variant(&header));
                checkpoints.push((f.clone(), a));
            }
            Some(DiffusionFile::Lora) => loras.push(f.clone()),
            Some(DiffusionFile::UnetOnly) => unet_only.push(f.clone()),
            None => {}
        }
        all_keys.extend(header.into_iter().map(|(k, _)| k));
    }
    if let Some(only) = only {
        if loras.iter().any(|l| l == only) {
            return Err(err(
                only,
                "this is a LoRA, not a model: name it in a channel's [[style.loras]] or pass it \
                 to `reelsmith image --lora FILE`",
            ));
        }
        if unet_only.iter().any(|l| l == only) {
            return Err(err(
                only,
                "this file holds a UNet only (no text encoder, no autoencoder); import a complete \
                 single-file checkpoint",
            ));
        }
        let Some(&(_, arch)) = checkpoints.iter().find(|(p, _)| p == only) else {
            return Ok(None);
        };
        if arch == "flux" {
            return Err(err(
                only,
                "a FLUX transformer needs its autoencoder, text encoders and tokenizers: import \
                 the folder that holds them all",
            ));
        }
        let others: Vec<String> = files
            .iter()
            .filter(|p| *p != only)
            .map(|p| name(p))
            .collect();
        if !others.is_empty() {
            return Err(err(
                only,
                format!(
                    "its folder holds other .safetensors files too ({}), which the image engine \
                     would load with it; move the checkpoint into a folder of its own (with its \
                     tokenizer/) and import that folder",
                    others.join(", ")
                ),
            ));
        }
    }
    let arch =
        match checkpoints.as_slice() {
            [] if !loras.is_empty() && unet_only.is_empty() => {
                return Err(err(
                    root,
                    format!(
                "only LoRAs here ({}): name them in a channel's [[style.loras]] or pass them to \
                     `reelsmith image --lora FILE`",
                loras.iter().map(|p| name(p)).collect::<Vec<_>>().join(", ")
            ),
                ))
            }
            [] if !unet_only.is_empty() => return Err(err(
                &unet_only[0],
                "this file holds a UNet only (no text encoder, no autoencoder); import a complete \
                 single-file checkpoint",
            )),
            [] => return Ok(None),
            [(_, a)] => *a,
            many => {
                return Err(err(
                    root,
                    format!(
                    "several checkpoints in one folder ({}): import each from a folder of its own",
                    many.iter()
                        .map(|(p, a)| format!("{}: {a}", name(p)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                ))
            }
        };
    let ckpt = checkpoints[0].0.clone();
    if arch == "flux" {
        // BFL layout: the transformer, the autoencoder (ae.safetensors), CLIP-L and T5-XXL.
        let has = |f: &dyn Fn(&str) -> bool| all_keys.iter().any(|k| f(k));
        let mut missing = Vec::new();
        if !has(&|k| k.ends_with("decoder.conv_in.weight")) {
            missing.push("the autoencoder (ae.safetensors)");
        }
        if !has(&|k| k.contains("text_model.encoder.layers.")) {
            missing.push("CLIP-L (clip_l.safetensors)");
        }
        if !has(&|k| k.contains("encoder.block.0.layer.0.SelfAttention.")) {
            missing.push("T5-XXL (t5xxl_fp16.safetensors)");
        }
        if !missing.is_empty() {
            return Err(err(
                root,
                format!(
                    "FLUX.1 needs its parts in the same folder; missing: {}",
                    missing.join(", ")
                ),
            ));
        }
    } else {
        let extra: Vec<String> = files
            .iter()
            .filter(|p| **p != ckpt)
            .map(|p| name(p))
            .collect();
        if !extra.is_empty() {
            return Err(err(
                root,
                format!(
                    "besides the {arch} checkpoint {} the folder holds other .safetensors files \
                     ({}), which the image engine would load with it; keep one checkpoint per \
                     folder (LoRAs belong in <config>/loras/)",
                    name(&ckpt),
                    extra.join(", ")
                ),
            ));
        }
    }
    check_tokenizers(root, arch)?;
    let weights: Vec<(String, u64)> = match only {
        Some(f) => vec![(name(f), size(f))],
        None => files.iter().map(|p| (name(p), size(p))).collect(),
    };
    let mut all = weights;
    all.extend(image_extras(root));
    Ok(Some(Detected {
        kind: ModelKind::Image,
        format: "safetensors",
        arch: arch.to_string(),
        variant: if arch == "sd21" { variant } else { None },
        languages: vec![],
        files: all,
        root: root.to_path_buf(),
        video: None,
    }))
}

/// A diffusers pipeline folder (`model_index.json`): the registry architecture its class and
/// component configs say, or the class name when reelsmith does not run it.
pub(super) fn diffusers_arch(
    path: &Path,
    idx: &serde_json::Value,
) -> Result<(ModelKind, String, Option<String>), ImportError> {
    let class = idx["_class_name"].as_str().unwrap_or("").to_string();
    if class.contains("Video") || class.contains("AnimateDiff") {
        return Ok((ModelKind::Video, class, None));
    }
    let config = |name: &str| -> Result<serde_json::Value, ImportError> {
        let p = path.join(name).join("config.json");
        if p.is_file() {
            read_json(&p)
        } else {
            Ok(serde_json::Value::Null)
        }
    };
    let unet = config("unet")?;
    let four_channels = unet["in_channels"].as_u64().unwrap_or(4) == 4;
    let arch = match class.as_str() {
        "StableDiffusionPipeline" | "StableDiffusionImg2ImgPipeline" if four_channels => {
            match unet["cross_attention_dim"].as_u64() {
                Some(768) => Some("sd15"),
                Some(1024) => Some("sd21"),
                _ => None,
            }
        }
        "StableDiffusionXLPipeline" | "StableDiffusionXLImg2ImgPipeline" if four_channels => {
            // The refiner has no first text encoder and is conditioned on aesthetic scores.
            let no_te = match &idx["text_encoder"] {
                serde_json::Value::Array(a) => a.iter().all(|v| v.is_null()),
                v => v.is_null(),
            };
            if no_te || idx["requires_aesthetics_score"].as_bool() == Some(true) {
                Some("sdxl-refiner")
            } else {
                Some("sdxl")
            }
        }
        // FLUX.1-schnell (dev embeds the guidance scale, which the engine does not run).
        "FluxPipeline" | "FluxImg2ImgPipeline"
            if config("transformer")?["guidance_embeds"].as_bool() != Some(true) =>
        {
            Some("flux")
        }
        _ => None,
    };
    let Some(arch) = arch else {
        return Ok((ModelKind::Image, class, None));
    };
    check_tokenizers(path, arch)?;
    let scheduler = path.join("scheduler/scheduler_config.json");
    let variant = if arch == "sd21" && scheduler.is_file() {
        (read_json(&scheduler)?["prediction_type"].as_str() == Some("v_prediction"))
            .then(|| "v".to_string())
    } else {
        None
    };
    Ok((ModelKind::Image, arch.to_string(), variant))
}

#[cfg(test)]
mod tests {
    use super::super::{detect, entry};
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/diffusion")
            .join(name)
    }

    /// A folder holding `files` (fixture names, copied) and a CLIP tokenizer.
    fn model_folder(root: &Path, name: &str, files: &[&str], tokenizer: bool) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("tokenizer")).unwrap();
        for f in files {
            std::fs::copy(fixture(f), dir.join(f)).unwrap();
        }
        if tokenizer {
            std::fs::write(dir.join("tokenizer/vocab.json"), "{}").unwrap();
            std::fs::write(dir.join("tokenizer/merges.txt"), "#version: 0.2\n").unwrap();
        }
        dir
    }

    /// A safetensors file with these tensor names (one f16 value each) and metadata.
    fn synthetic(path: &Path, keys: &[&str], meta: Option<serde_json::Value>) {
        let mut h = serde_json::Map::new();
        for k in keys {
            h.insert(
                k.to_string(),
                serde_json::json!({"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}),
            );
        }
        if let Some(m) = meta {
            h.insert("__metadata__".into(), m);
        }
        let header = serde_json::Value::Object(h).to_string();
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&[0u8; 2]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    }

    #[test]
    fn single_file_checkpoints_are_told_apart_by_their_tensor_names() {
        let d = tempfile::tempdir().unwrap();
        for (file, arch) in [
            ("sd15.safetensors", "sd15"),
            ("sd21.safetensors", "sd21"),
            ("sdxl.safetensors", "sdxl"),
            ("sdxl_refiner.safetensors", "sdxl-refiner"),
        ] {
            let dir = model_folder(d.path(), arch, &[file], true);
            std::fs::create_dir_all(dir.join("unet")).unwrap();
            std::fs::write(dir.join("unet/config.json"), "{}").unwrap();
            for target in [dir.clone(), dir.join(file)] {
                let det = detect(&target).unwrap();
                assert_eq!(
                    (
                        det.kind,
                        det.format,
                        det.arch.as_str(),
                        det.variant.as_deref()
                    ),
                    (ModelKind::Image, "safetensors", arch, None),
                    "{}",
                    target.display()
                );
                assert_eq!(det.root, dir.canonicalize().unwrap());
                let names: Vec<&str> = det.files.iter().map(|f| f.0.as_str()).collect();
                assert_eq!(names[0], file);
                assert!(names.contains(&"unet/config.json"), "{names:?}");
                assert!(names.contains(&"tokenizer/vocab.json"), "{names:?}");
                // The engine accepts what import registers.
                assert!(runnable_image(&entry(&det, "x")), "{arch}");
            }
        }

        // FLUX: the BFL transformer with its autoencoder, CLIP-L and T5 in one folder.
        let parts = [
            "flux1-schnell.safetensors",
            "ae.safetensors",
            "clip_l.safetensors",
            "t5xxl.safetensors",
        ];
        let flux = model_folder(d.path(), "flux", &parts, true);
        let e = detect(&flux).unwrap_err().to_string();
        assert!(e.contains("tokenizer_2/spiece.model"), "{e}");
        std::fs::create_dir_all(flux.join("tokenizer_2")).unwrap();
        std::fs::copy(
            fixture("tokenizer/t5/spiece.model"),
            flux.join("tokenizer_2/spiece.model"),
        )
        .unwrap();
        let det = detect(&flux).unwrap();
        assert_eq!((det.kind, det.arch.as_str()), (ModelKind::Image, "flux"));
        assert_eq!(
            det.files
                .iter()
                .filter(|f| f.0.ends_with(".safetensors"))
                .count(),
            4
        );
        assert!(runnable_image(&entry(&det, "f")));
        std::fs::remove_file(flux.join("ae.safetensors")).unwrap();
        let e = detect(&flux).unwrap_err().to_string();
        assert!(
            e.contains("missing: the autoencoder (ae.safetensors)"),
            "{e}"
        );
        let e = detect(&flux.join("flux1-schnell.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("import the folder"), "{e}");
    }

    #[test]
    fn incomplete_or_ambiguous_image_checkpoints_are_refused_with_the_reason() {
        let d = tempfile::tempdir().unwrap();
        // No tokenizer: the engine could not run it.
        let dir = model_folder(d.path(), "notok", &["sd15.safetensors"], false);
        let e = detect(&dir).unwrap_err().to_string();
        assert!(
            e.contains("notok") && e.contains("tokenizer/vocab.json"),
            "{e}"
        );
        // Two checkpoints, or a checkpoint with a stray LoRA, in one folder.
        let dir = model_folder(
            d.path(),
            "two",
            &["sd15.safetensors", "sdxl.safetensors"],
            true,
        );
        let e = detect(&dir).unwrap_err().to_string();
        assert!(
            e.contains("several checkpoints") && e.contains("sd15.safetensors: sd15"),
            "{e}"
        );
        let dir = model_folder(
            d.path(),
            "stray",
            &["sd15.safetensors", "sd15_lora_kohya.safetensors"],
            true,
        );
        let e = detect(&dir).unwrap_err().to_string();
        assert!(e.contains("sd15_lora_kohya.safetensors"), "{e}");
        let e = detect(&dir.join("sd15.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("folder of its own"), "{e}");
        // A LoRA is not a model (kohya and peft names).
        for lora in ["sd15_lora_kohya.safetensors", "sd15_lora_peft.safetensors"] {
            let dir = model_folder(d.path(), lora, &[lora], true);
            let e = detect(&dir.join(lora)).unwrap_err().to_string();
            assert!(e.contains("LoRA"), "{lora}: {e}");
            let e = detect(&dir).unwrap_err().to_string();
            assert!(e.contains("LoRA"), "{lora}: {e}");
        }
        // A UNet without text encoder and autoencoder.
        let unet = d.path().join("unet-only/unet.safetensors");
        synthetic(
            &unet,
            &["model.diffusion_model.input_blocks.0.0.weight"],
            None,
        );
        let e = detect(unet.parent().unwrap()).unwrap_err().to_string();
        assert!(e.contains("UNet only"), "{e}");
        // An SD 2.x file whose metadata says v-prediction gets the `v` variant.
        let v = d.path().join("v/v2.safetensors");
        synthetic(
            &v,
            &[
                "model.diffusion_model.out.0.weight",
                "cond_stage_model.model.ln_final.weight",
            ],
            Some(serde_json::json!({"modelspec.architecture": "stable-diffusion-v2-768-v"})),
        );
        std::fs::create_dir_all(d.path().join("v/tokenizer")).unwrap();
        std::fs::write(d.path().join("v/bpe_simple_vocab_16e6.txt.gz"), b"x").unwrap();
        let det = detect(&v).unwrap();
        assert_eq!(
            (det.arch.as_str(), det.variant.as_deref()),
            ("sd21", Some("v"))
        );
        assert_eq!(entry(&det, "v").variant.as_deref(), Some("v"));
    }

    #[test]
    fn diffusers_folders_get_the_architecture_their_configs_say() {
        let d = tempfile::tempdir().unwrap();
        let folder = |name: &str, index: serde_json::Value, unet: Option<serde_json::Value>| {
            let dir = d.path().join(name);
            synthetic(
                &dir.join("unet/diffusion_pytorch_model.safetensors"),
                &["conv_in.weight"],
                None,
            );
            std::fs::write(dir.join("model_index.json"), index.to_string()).unwrap();
            if let Some(u) = unet {
                std::fs::write(dir.join("unet/config.json"), u.to_string()).unwrap();
            }
            std::fs::create_dir_all(dir.join("tokenizer")).unwrap();
            std::fs::write(dir.join("tokenizer/vocab.json"), "{}").unwrap();
            std::fs::write(dir.join("tokenizer/merges.txt"), "").unwrap();
            dir
        };
        let sd = serde_json::json!({"_class_name": "StableDiffusionPipeline"});
        let dir = folder(
            "sd15",
            sd.clone(),
            Some(serde_json::json!({"cross_attention_dim": 768})),
        );
        let det = detect(&dir).unwrap();
        assert_eq!(
            (det.kind, det.format, det.arch.as_str()),
            (ModelKind::Image, "safetensors", "sd15")
        );
        assert!(det.files.iter().any(|f| f.0 == "unet/config.json"));
        assert!(runnable_image(&entry(&det, "a")));

        let dir = folder(
            "sd21",
            sd.clone(),
            Some(serde_json::json!({"cross_attention_dim": 1024})),
        );
        std::fs::create_dir_all(dir.join("scheduler")).unwrap();
        std::fs::write(
            dir.join("scheduler/scheduler_config.json"),
            r#"{"prediction_type": "v_prediction"}"#,
        )
        .unwrap();
        let det = detect(&dir).unwrap();
        assert_eq!(
            (det.arch.as_str(), det.variant.as_deref()),
            ("sd21", Some("v"))
        );

        let dir = folder(
            "inpaint",
            sd,
            Some(serde_json::json!({"cross_attention_dim": 768, "in_channels": 9})),
        );
        let det = detect(&dir).unwrap();
        assert_eq!(det.arch, "StableDiffusionPipeline");
        assert!(!runnable_image(&entry(&det, "b")));

        let xl = serde_json::json!({"_class_name": "StableDiffusionXLPipeline",
            "text_encoder": ["transformers", "CLIPTextModel"]});
        assert_eq!(detect(&folder("xl", xl, None)).unwrap().arch, "sdxl");
        let refiner = serde_json::json!({"_class_name": "StableDiffusionXLImg2ImgPipeline",
            "text_encoder": [null, null], "requires_aesthetics_score": true});
        assert_eq!(
            detect(&folder("refiner", refiner, None)).unwrap().arch,
            "sdxl-refiner"
        );

        let flux = folder(
            "flux",
            serde_json::json!({"_class_name": "FluxPipeline"}),
            None,
        );
        let e = detect(&flux).unwrap_err().to_string();
        assert!(e.contains("tokenizer_2"), "{e}");
        std::fs::create_dir_all(flux.join("tokenizer_2")).unwrap();
        std::fs::write(flux.join("tokenizer_2/spiece.model"), b"x").unwrap();
        assert_eq!(detect(&flux).unwrap().arch, "flux");

        let video = folder(
            "video",
            serde_json::json!({"_class_name": "AnimateDiffPipeline"}),
            None,
        );
        assert_eq!(detect(&video).unwrap().kind, ModelKind::Video);
    }
}
