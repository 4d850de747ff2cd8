//! Tests of Wan2.1 import detection on the tiny real fixtures.

use super::super::{detect, entry, register};
use super::*;
use WanTransformerConfig as Cfg;

const TASKS: [&str; 3] = ["t2v", "i2v", "flf2v"];
const VAE: &str = "vae/wan-vae-tiny.safetensors";
const UMT5: &str = "encoders/umt5-tiny_fp16.safetensors";
const CLIP: &str = "encoders/clip_vision_tiny_comfy.safetensors";

/// Copies a fixture of tests/fixtures/wan (a file, or a flat folder) to `to`.
fn put(from: &str, to: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan");
    let from = fixtures.join(from);
    let dir = from.is_dir();
    for f in if dir { files_in(&from) } else { vec![from] } {
        let dest = if dir {
            to.join(f.file_name().unwrap())
        } else {
            to.into()
        };
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

fn video(d: &Detected) -> &DetectedVideo {
    d.video.as_ref().unwrap()
}

/// "layout task hidden layers heads" of a detected Wan model.
fn said(d: &Detected) -> String {
    assert_eq!((d.kind, d.arch.as_str()), (ModelKind::Video, "wan"));
    let f = &video(d).facts;
    assert_eq!(d.variant.as_ref(), Some(&f.task));
    let (l, t) = (&f.layout, &f.task);
    format!("{l} {t} {} {} {}", f.hidden, f.layers, f.heads)
}

fn names(d: &Detected) -> Vec<&str> {
    d.files.iter().map(|f| f.0.as_str()).collect()
}

#[test]
fn diffusers_pipelines_of_each_task() {
    let t = tempfile::tempdir().unwrap();
    for task in TASKS {
        let dir = t.path().join(format!("Wan2.1-{task}-Diffusers"));
        let transformer = match task {
            "flf2v" => "pipeline/transformer-flf2v".to_string(),
            _ => format!("transformer/diffusers-{task}"),
        };
        put(&transformer, &dir.join("transformer"));
        put("pipeline/vae", &dir.join("vae"));
        put("encoders/umt5-tiny", &dir.join("text_encoder"));
        put("encoders/tokenizer", &dir.join("tokenizer"));
        let image = task != "t2v";
        if image {
            put("encoders/clip-vision-tiny", &dir.join("image_encoder"));
            put("pipeline/image_processor", &dir.join("image_processor"));
        }
        let class = match image {
            true => "WanImageToVideoPipeline",
            false => "WanPipeline",
        };
        let index = serde_json::json!({ "_class_name": class });
        std::fs::write(dir.join("model_index.json"), index.to_string()).unwrap();
        let d = detect(&dir).unwrap();
        assert_eq!(said(&d), format!("diffusers {task} 24 2 2"));
        let v = video(&d);
        assert!(v.requires.is_empty() && v.matches.is_none());
        assert_eq!((v.sampling.sampler.as_str(), v.facts.fps), ("unipc", 16));
        let dir = dir.canonicalize().unwrap();
        let p = parts_in(&dir).unwrap();
        assert_eq!(p.transformer, dir.join("transformer"));
        assert_eq!(p.vae, Some(dir.join("vae")));
        assert_eq!(p.text_encoder, Some(dir.join("text_encoder")));
        let tokenizer = dir.join("tokenizer/tokenizer.json");
        assert_eq!(p.tokenizer, Some(tokenizer));
        assert_eq!(p.image_encoder, image.then(|| dir.join("image_encoder")));
        let processor = dir.join("image_processor/preprocessor_config.json");
        assert_eq!(p.image_processor, image.then_some(processor));
        let names = names(&d);
        assert!(names[0].starts_with("transformer/diffusion_pytorch_model"));
        for f in [
            "model_index.json",
            "vae/config.json",
            "tokenizer/tokenizer.json",
        ] {
            assert!(names.contains(&f), "{f} in {names:?}");
        }
    }
    let dir = t.path().join("Wan2.1-t2v-Diffusers");
    std::fs::remove_dir_all(dir.join("vae")).unwrap();
    let e = detect(&dir).unwrap_err().to_string();
    assert!(e.contains("the VAE: vae/"), "{e}");
}

#[test]
fn official_folders_of_each_task() {
    let t = tempfile::tempdir().unwrap();
    let clip = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth";
    let t5 = "models_t5_umt5-xxl-enc-bf16.pth";
    for task in TASKS {
        let dir = t.path().join(format!("Wan2.1-{task}-official"));
        put(&format!("transformer/official-{task}"), &dir);
        put("vae/wan-vae-tiny.pth", &dir.join("Wan2.1_VAE.pth"));
        put("encoders/umt5-tiny-enc-f16.pth", &dir.join(t5));
        put("encoders/tokenizer", &dir.join("google/umt5-xxl"));
        if task != "t2v" {
            put("encoders/clip-tiny-wan-f16.pth", &dir.join(clip));
        }
        let d = detect(&dir).unwrap();
        assert_eq!(said(&d), format!("official {task} 24 2 2"));
        assert!(video(&d).requires.is_empty());
        let dir = dir.canonicalize().unwrap();
        let p = parts_in(&dir).unwrap();
        assert_eq!(p.transformer, dir);
        assert_eq!(p.vae, Some(dir.join("Wan2.1_VAE.pth")));
        assert_eq!(p.text_encoder, Some(dir.join(t5)));
        let tokenizer = dir.join("google/umt5-xxl/tokenizer.json");
        assert_eq!(p.tokenizer, Some(tokenizer));
        assert_eq!(p.image_encoder, (task != "t2v").then(|| dir.join(clip)));
        let names = names(&d);
        assert!(names.contains(&"config.json") && names.contains(&"Wan2.1_VAE.pth"));
        // A shard imported by itself stands for its folder (i2v: shard 1 of 2).
        assert_eq!(detect(&dir.join(names[0])).unwrap(), d);
    }
}

/// A ComfyUI folder: the fixture `transformer` as `name`, the VAE, umT5 and (`clip`)
/// clip_vision_h beside it.
fn comfy(dir: &Path, transformer: &str, name: &str, clip: bool) -> PathBuf {
    put(&format!("transformer/{transformer}"), &dir.join(name));
    put(VAE, &dir.join("wan_2.1_vae.safetensors"));
    put(UMT5, &dir.join("umt5_xxl_fp16.safetensors"));
    if clip {
        put(CLIP, &dir.join("clip_vision_h.safetensors"));
    }
    dir.join(name)
}

#[test]
fn comfyui_files_and_folders() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("comfy");
    let name = "wan2.1_i2v_480p_tiny.safetensors";
    let file = comfy(&dir, "comfy-i2v-bf16.safetensors", name, true);
    put(
        "encoders/tokenizer/tokenizer.json",
        &dir.join("tokenizer.json"),
    );
    let d = detect(&dir).unwrap();
    assert_eq!(detect(&file).unwrap(), d);
    assert_eq!(said(&d), "comfyui i2v 24 2 2");
    let v = video(&d);
    assert!(v.requires.is_empty());
    assert_eq!(
        (v.facts.shift, v.sampling.steps),
        (Some(3.0), 40),
        "480p i2v"
    );
    let rest = "clip_vision_h.safetensors tokenizer.json umt5_xxl_fp16.safetensors \
                wan_2.1_vae.safetensors";
    let want: Vec<&str> = [name].into_iter().chain(rest.split_whitespace()).collect();
    assert_eq!(names(&d), want);
    let dir = dir.canonicalize().unwrap();
    let want = WanParts {
        transformer: dir.join(name),
        vae: Some(dir.join("wan_2.1_vae.safetensors")),
        text_encoder: Some(dir.join("umt5_xxl_fp16.safetensors")),
        tokenizer: Some(dir.join("tokenizer.json")),
        image_encoder: Some(dir.join("clip_vision_h.safetensors")),
        image_processor: None,
    };
    assert_eq!(parts_in(&dir.join(name)).unwrap(), want);
    // fp8 FLF2V: blocks stream at 1 byte a parameter; shift 16.
    let [f8, bf] = ["fp8_e4m3fn", "bf16"].map(|dtype| {
        let from = format!("comfy-flf2v-{dtype}.safetensors");
        detect(&comfy(&t.path().join(dtype), &from, "f.safetensors", true)).unwrap()
    });
    assert_eq!(said(&f8), "comfyui flf2v 24 2 2");
    let block = |d: &Detected| video(d).facts.vram.block_gb.unwrap();
    assert!((block(&bf) / block(&f8) - 2.0).abs() < 0.01);
    assert_eq!(video(&f8).facts.shift, Some(16.0));
    assert_eq!(entry(&f8, "x").dtype, "f8_e4m3");
    assert_eq!(entry(&bf, "x").dtype, "bf16");
}

#[test]
fn the_registry_download_layout_registers_and_loads_back() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("wan2.1-t2v-1.3b");
    let s = root.join("split_files");
    let file = s.join("diffusion_models/wan2.1_t2v_tiny.safetensors");
    put("transformer/comfy-t2v-bf16.safetensors", &file);
    put(VAE, &s.join("vae/wan_2.1_vae.safetensors"));
    let t5 = s.join("text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors");
    put("encoders/umt5-tiny_fp8_e4m3fn_scaled.safetensors", &t5);
    let d = detect(&root).unwrap();
    assert_eq!(said(&d), "comfyui t2v 24 2 2");
    assert_eq!(video(&d).requires, ["umt5-xxl-tokenizer"]);
    let first = "split_files/diffusion_models/wan2.1_t2v_tiny.safetensors";
    assert_eq!((names(&d)[0], d.files.len()), (first, 3));
    // The file by itself finds the same parts in the sibling folders.
    assert_eq!(detect(&file).unwrap().root, s.canonicalize().unwrap());
    assert_eq!(parts_in(&file).unwrap(), parts_in(&root).unwrap());
    let models = detect(file.parent().unwrap()).unwrap();
    assert_eq!(models.root, detect(&file).unwrap().root);
    // What `reelsmith models import` registers loads back with its [model.video].
    let config = t.path().join("config");
    register(&config, &entry(&d, "my-wan")).unwrap();
    let reg = crate::hub::Registry::load(Some(&config)).unwrap();
    let m = reg.get("my-wan").unwrap();
    assert_eq!((m.kind, m.arch.as_str()), (ModelKind::Video, "wan"));
    assert_eq!(m.variant.as_deref(), Some("t2v"));
    assert_eq!(m.requires, video(&d).requires);
    assert_eq!(m.sampling.as_ref(), Some(&video(&d).sampling));
    assert_eq!(m.video.as_ref(), Some(&video(&d).facts));
    assert!(m.name.contains("Wan2.1 T2V 1.3B, comfyui"), "{}", m.name);
}

#[test]
fn companions_alone_and_incomplete_transformers_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let lone = [
        (UMT5, "umt5_xxl_fp16.safetensors"),
        (VAE, "wan_2.1_vae.safetensors"),
        (CLIP, "clip_vision_h.safetensors"),
        (UMT5, "encoder.safetensors"),
    ];
    for (i, (fixture, name)) in lone.into_iter().enumerate() {
        let f = t.path().join(format!("lone{i}")).join(name);
        put(fixture, &f);
        assert!(detect(&f).is_err(), "{name}");
        assert!(parts_in(&f).is_err() && parts_in(f.parent().unwrap()).is_err());
        // Named like a Wan companion: says so; else not Wan's business.
        assert_eq!(detect_file(&f).is_err(), i < 3, "{name}");
    }
    let dir = t.path().join("noclip");
    let i2v = "comfy-i2v-bf16.safetensors";
    let file = comfy(&dir, i2v, "wan_i2v.safetensors", false);
    let e = detect(&file).unwrap_err().to_string();
    let clip_only = e.contains("clip_vision_h.safetensors") && !e.contains("VAE");
    assert!(clip_only, "{e}");
    std::fs::remove_file(dir.join("wan_2.1_vae.safetensors")).unwrap();
    let e = detect(&dir).unwrap_err().to_string();
    assert!(e.contains("the VAE: wan_2.1_vae.safetensors"), "{e}");
    // Two transformers in one folder: the folder is ambiguous, each file is not.
    let t2v = "comfy-t2v-bf16.safetensors";
    let file = comfy(&dir, t2v, "wan_t2v.safetensors", true);
    let e = detect(&dir).unwrap_err().to_string();
    assert!(e.contains("several Wan2.1 transformers"), "{e}");
    assert_eq!(said(&detect(&file).unwrap()), "comfyui t2v 24 2 2");
}

#[test]
fn derived_facts_agree_with_the_registry_entries() {
    let reg = crate::hub::Registry::embedded().unwrap();
    let cases = [
        ("wan2.1-t2v-1.3b", Cfg::t2v_1_3b(), "f16"),
        ("wan2.1-t2v-14b", Cfg::t2v_14b(), "f16"),
        ("wan2.1-i2v-14b-480p", Cfg::i2v_14b(), "bf16"),
        ("wan2.1-i2v-14b-720p", Cfg::i2v_14b(), "bf16"),
        ("wan2.1-flf2v-14b-720p-fp8", Cfg::flf2v_14b(), "f8_e4m3"),
    ];
    for (id, cfg, dtype) in cases {
        let m = reg.get(id).unwrap();
        let want = m.video.as_ref().unwrap();
        let bytes = m.files[0].size.unwrap();
        let file = m.files[0].path.rsplit('/').next().unwrap();
        let (f, s) = facts_for(&cfg, &want.task, "comfyui", (bytes, dtype), file);
        let shape = |f: &VideoFacts| (f.hidden, f.layers, f.heads, f.shift);
        assert_eq!(shape(&f), shape(want), "{id}");
        let base = f.vram.transformer_base_gb;
        assert_eq!(base, want.vram.transformer_base_gb, "{id}");
        let block = f.vram.block_gb.unwrap() / want.vram.block_gb.unwrap();
        assert!((block - 1.0).abs() < 0.002, "{id}: {:?}", f.vram.block_gb);
        assert_eq!(Some(&s), m.sampling.as_ref(), "{id}");
        // The registry's file of that name and size takes its entry.
        let found = registry_match(file, bytes, &f).map(|m| m.id);
        assert_eq!(found.as_deref(), Some(id));
        assert!(registry_match(file, bytes + 1, &f).is_none());
    }
}
