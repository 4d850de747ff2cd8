//! A tiny but complete Stable Diffusion 1.5 model folder, built at test time from the parity
//! fixtures (`tests/fixtures/diffusion/`): the random-weight single-file checkpoint with its CLIP
//! token embedding grown to the real 49408-token vocabulary (row i = row i mod 1000), the
//! diffusers `unet|vae|text_encoder/config.json` of the tiny networks, and the real CLIP
//! tokenizer (`tokenizer/vocab.json` + `merges.txt`). Two changes make its pictures behave
//! like a trained model's where the tests look: the autoencoder is confident (posterior
//! log-variance −30) and its latents are scaled to unit spread. Imported with
//! `reelsmith models import` into a private config/cache, it runs through every real code path
//! of the image engine.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};

pub const MODEL_ID: &str = "tiny-sd15";
const TOKEN_EMBEDDING: &str =
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight";
const QUANT_CONV_W: &str = "first_stage_model.quant_conv.weight";
const QUANT_CONV_B: &str = "first_stage_model.quant_conv.bias";
const VOCAB: u32 = 49408;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusion")
}

fn gunzip(src: &Path, dst: &Path) {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(src)
        .output()
        .expect("gzip runs");
    assert!(out.status.success(), "gzip -dc {}", src.display());
    std::fs::write(dst, out.stdout).unwrap();
}

/// Writes the model folder into `dir` (created).
pub fn build_model(dir: &Path) {
    std::fs::create_dir_all(dir.join("tokenizer")).unwrap();
    let fx = fixtures();
    let mut tensors =
        candle_core::safetensors::load(fx.join("sd15.safetensors"), &Device::Cpu).unwrap();
    let emb = tensors.remove(TOKEN_EMBEDDING).expect("token embedding");
    let rows = emb.dim(0).unwrap() as u32;
    let idx: Vec<u32> = (0..VOCAB).map(|i| i % rows).collect();
    let idx = Tensor::new(idx.as_slice(), &Device::Cpu).unwrap();
    let grown = emb.index_select(&idx, 0).unwrap();
    assert_eq!(grown.dims(), [VOCAB as usize, 32]);
    tensors.insert(TOKEN_EMBEDDING.to_string(), grown);
    // A confident autoencoder, as trained ones are: posterior log-variance −30 (σ ≈ 3e-7), so
    // the latents of an init picture are its encoding, not a seed-dependent draw around it
    // (the random encoder's own log-variance makes that draw as large as the encoding).
    let w = tensors.remove(QUANT_CONV_W).expect("quant_conv weight");
    let b = tensors.remove(QUANT_CONV_B).expect("quant_conv bias");
    let half = w.dim(0).unwrap() / 2;
    let w = Tensor::cat(
        &[
            &w.narrow(0, 0, half).unwrap(),
            &w.narrow(0, half, half).unwrap().zeros_like().unwrap(),
        ],
        0,
    )
    .unwrap();
    let logvar = (b.narrow(0, half, half).unwrap().zeros_like().unwrap() - 30.0).unwrap();
    let b = Tensor::cat(&[&b.narrow(0, 0, half).unwrap(), &logvar], 0).unwrap();
    tensors.insert(QUANT_CONV_W.to_string(), w);
    tensors.insert(QUANT_CONV_B.to_string(), b);
    candle_core::safetensors::save(&tensors, dir.join("tiny-sd15.safetensors")).unwrap();

    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("sd15.json")).unwrap()).unwrap();
    // Latents scaled to unit spread, which is how SD chose its 0.18215: 1/std of the tiny
    // encoder's latent means is 3.8–4.0 on 32×32 pictures (at 0.18215 the first sampling step
    // of the random UNet would swamp any init picture, whatever the strength).
    let mut cfg = cfg;
    cfg["vae"]["scaling_factor"] = 4.0.into();
    let mut te = cfg["text_encoder"].clone();
    te["vocab_size"] = VOCAB.into();
    te["bos_token_id"] = 49406.into();
    te["eos_token_id"] = 49407.into();
    for (net, v) in [
        ("unet", &cfg["unet"]),
        ("vae", &cfg["vae"]),
        ("text_encoder", &te),
    ] {
        std::fs::create_dir_all(dir.join(net)).unwrap();
        std::fs::write(
            dir.join(net).join("config.json"),
            serde_json::to_string_pretty(v).unwrap(),
        )
        .unwrap();
    }
    let clip = clip_tokenizer(&fx, dir);
    for f in ["special_tokens_map.json", "tokenizer_config.json"] {
        std::fs::copy(clip.join("sd15").join(f), dir.join("tokenizer").join(f)).unwrap();
    }
}

/// A private data dir, config dir and (empty) model cache, with the tiny model imported.
pub struct Studio {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub config: PathBuf,
    pub model: PathBuf,
}

impl Studio {
    pub fn new() -> Studio {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let config = tmp.path().join("cfg");
        let model = tmp.path().join("models/tiny-sd15");
        build_model(&model);
        let s = Studio {
            tmp,
            data,
            config,
            model,
        };
        let o = s.run(
            &[
                "models",
                "import",
                s.model.to_str().unwrap(),
                "--id",
                MODEL_ID,
            ],
            &[],
        );
        assert!(
            o.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        s
    }

    /// The same without any model.
    pub fn empty() -> Studio {
        let tmp = tempfile::tempdir().unwrap();
        Studio {
            data: tmp.path().join("data"),
            config: tmp.path().join("cfg"),
            model: tmp.path().join("models/none"),
            tmp,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Runs `reelsmith` with this studio's dirs, no model settings from the caller's
    /// environment, offline, and `env` added.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_reelsmith"));
        c.args(args)
            .env("REELSMITH_DATA_DIR", &self.data)
            .env("REELSMITH_CONFIG_DIR", &self.config)
            .env("HF_HOME", self.config.join("hf-home"))
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("HF_HUB_CACHE")
            .env_remove("REELSMITH_LLM")
            .env_remove("REELSMITH_ASR")
            .env_remove("REELSMITH_TTS")
            .env_remove("REELSMITH_IMAGE");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("the reelsmith binary runs")
    }
}

/// A FLUX.1-schnell folder from the parity fixtures (BFL transformer, autoencoder, CLIP-L, T5,
/// tokenizers): enough for `models import` and for checks made before loading.
pub fn build_flux(dir: &Path) {
    let fx = fixtures();
    std::fs::create_dir_all(dir.join("tokenizer")).unwrap();
    std::fs::create_dir_all(dir.join("tokenizer_2")).unwrap();
    for f in [
        "flux1-schnell.safetensors",
        "ae.safetensors",
        "clip_l.safetensors",
        "t5xxl.safetensors",
    ] {
        std::fs::copy(fx.join(f), dir.join(f)).unwrap();
    }
    clip_tokenizer(&fx, dir);
    std::fs::copy(
        fx.join("tokenizer/t5/spiece.model"),
        dir.join("tokenizer_2/spiece.model"),
    )
    .unwrap();
}

/// The real CLIP vocabulary and merges (from the tokenizer fixtures) into `dir/tokenizer/`;
/// returns the fixture folder they came from.
fn clip_tokenizer(fx: &Path, dir: &Path) -> PathBuf {
    let clip = fx.join("tokenizer/clip");
    gunzip(
        &clip.join("vocab.json.gz"),
        &dir.join("tokenizer/vocab.json"),
    );
    gunzip(
        &clip.join("merges.txt.gz"),
        &dir.join("tokenizer/merges.txt"),
    );
    clip
}
