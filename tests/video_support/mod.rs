//! A tiny but complete LTX-Video model folder, built at test time from the parity fixtures
//! (`tests/fixtures/video/ltx-tiny`: the random-weight transformer, 0.9.5-layout VAE, T5 and
//! tokenizer in the diffusers layout) with one change that makes it behave like a trained model
//! where the tests look: the VAE encoder is confident (posterior log-variance −30), so a
//! keyframe's latents are its encoding, not a seed-dependent draw around it, and the decoder
//! draws each latent frame from that frame (no random mixing of neighbours in time). Imported with
//! `reelsmith models import` into a private config, it runs through every real code path of
//! the video engine.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};

pub const MODEL_ID: &str = "tiny-ltx";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/video/ltx-tiny")
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// Writes the model folder into `dir`; `poison` puts a NaN into a transformer weight.
pub fn build_model(dir: &Path, poison: bool) {
    copy_dir(&fixtures(), dir);
    let vae = dir.join("vae/diffusion_pytorch_model.safetensors");
    let mut t = candle_core::safetensors::load(&vae, &Device::Cpu).unwrap();
    // The encoder's last output channel is the (uniform) log-variance.
    let w = t.remove("encoder.conv_out.conv.weight").unwrap();
    let b = t.remove("encoder.conv_out.conv.bias").unwrap();
    let c = w.dim(0).unwrap() - 1;
    let w = Tensor::cat(
        &[
            &w.narrow(0, 0, c).unwrap(),
            &w.narrow(0, c, 1).unwrap().zeros_like().unwrap(),
        ],
        0,
    )
    .unwrap();
    let b = Tensor::cat(
        &[
            &b.narrow(0, 0, c).unwrap(),
            &(b.narrow(0, c, 1).unwrap().zeros_like().unwrap() - 30.0).unwrap(),
        ],
        0,
    )
    .unwrap();
    t.insert("encoder.conv_out.conv.weight".into(), w);
    t.insert("encoder.conv_out.conv.bias".into(), b);
    // A decoder that draws each latent frame from that frame alone (the neighbouring time taps
    // of its 3×3×3 convolutions zeroed): a trained LTX decoder keeps a conditioning picture at
    // frame 0 whatever the generated frames after it hold; random time taps would mix them in.
    let names: Vec<String> = t
        .keys()
        .filter(|k| k.starts_with("decoder.") && k.ends_with(".weight"))
        .cloned()
        .collect();
    for k in names {
        let w = &t[&k];
        if w.rank() != 5 || w.dim(2).unwrap() != 3 {
            continue;
        }
        let centre = w.narrow(2, 1, 1).unwrap();
        let zero = centre.zeros_like().unwrap();
        let w = Tensor::cat(&[&zero, &centre, &zero], 2).unwrap();
        t.insert(k, w);
    }
    candle_core::safetensors::save(&t, &vae).unwrap();
    if poison {
        let tf = dir.join("transformer/diffusion_pytorch_model.safetensors");
        let mut t = candle_core::safetensors::load(&tf, &Device::Cpu).unwrap();
        let key = "proj_in.weight";
        let w = t.remove(key).expect("proj_in.weight");
        let mut v: Vec<f32> = w
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        v[0] = f32::NAN;
        let w = Tensor::from_vec(v, w.dims(), &Device::Cpu)
            .unwrap()
            .to_dtype(w.dtype())
            .unwrap();
        t.insert(key.into(), w);
        candle_core::safetensors::save(&t, &tf).unwrap();
    }
}

/// A private data dir and config dir with the tiny model imported as [`MODEL_ID`].
pub struct Studio {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub config: PathBuf,
    pub model: PathBuf,
}

impl Studio {
    pub fn new(poison: bool) -> Studio {
        Studio::with_model(MODEL_ID, |dir| build_model(dir, poison))
    }

    /// A studio with the model `build` writes (into `models/<id>`) imported as `id`.
    pub fn with_model(id: &str, build: impl FnOnce(&Path)) -> Studio {
        let tmp = tempfile::tempdir().unwrap();
        let s = Studio {
            data: tmp.path().join("data"),
            config: tmp.path().join("cfg"),
            model: tmp.path().join("models").join(id),
            tmp,
        };
        build(&s.model);
        let o = s.run(
            &["models", "import", s.model.to_str().unwrap(), "--id", id],
            &[],
        );
        assert!(
            o.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        s
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
            .env_remove("REELSMITH_IMAGE")
            .env_remove("REELSMITH_VIDEO")
            .env_remove("REELSMITH_MORPH")
            .env_remove("REELSMITH_UPSCALE")
            .env_remove("REELSMITH_INTERPOLATE");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("the reelsmith binary runs")
    }
}
