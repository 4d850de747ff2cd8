//! Tiny but complete Wan2.1 model folders in the diffusers layout, put together at test time
//! from the committed parity fixtures (`tests/fixtures/wan`: the random-weight transformers,
//! the pipeline fixture's VAE, the tiny umT5, its tokenizer and the tiny CLIP vision tower;
//! every file checked against diffusers 0.42.1 by the video crate's parity tests). Imported with
//! `reelsmith models import`, they run through every real code path of the Wan engine.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::Device;
use reelsmith::media::image::RgbImage;
use reelsmith_video::wan::model::{
    AnchorAt, AnchorPicture, DecodeOptions, Picture, WanFiles, WanModel,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wan")
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

/// The tasks the fixtures have a transformer for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    T2v,
    I2v,
    Flf2v,
}

/// Writes a `WanPipeline` (t2v) or `WanImageToVideoPipeline` (i2v, flf2v) folder into `dir`.
pub fn build_model(dir: &Path, task: Task) {
    let fx = fixtures();
    let (class, transformer) = match task {
        Task::T2v => ("WanPipeline", fx.join("transformer/diffusers-t2v")),
        Task::I2v => (
            "WanImageToVideoPipeline",
            fx.join("transformer/diffusers-i2v"),
        ),
        Task::Flf2v => (
            "WanImageToVideoPipeline",
            fx.join("pipeline/transformer-flf2v"),
        ),
    };
    std::fs::create_dir_all(dir).unwrap();
    copy_dir(&transformer, &dir.join("transformer"));
    copy_dir(&fx.join("pipeline/vae"), &dir.join("vae"));
    copy_dir(&fx.join("encoders/umt5-tiny"), &dir.join("text_encoder"));
    copy_dir(&fx.join("encoders/tokenizer"), &dir.join("tokenizer"));
    let mut index = serde_json::json!({
        "_class_name": class,
        "_diffusers_version": "0.42.1",
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
    });
    if task != Task::T2v {
        copy_dir(
            &fx.join("encoders/clip-vision-tiny"),
            &dir.join("image_encoder"),
        );
        copy_dir(
            &fx.join("pipeline/image_processor"),
            &dir.join("image_processor"),
        );
        index["image_encoder"] = serde_json::json!(["transformers", "CLIPVisionModel"]);
        index["image_processor"] = serde_json::json!(["transformers", "CLIPImageProcessor"]);
    }
    std::fs::write(
        dir.join("model_index.json"),
        serde_json::to_string_pretty(&index).unwrap(),
    )
    .unwrap();
}

/// The model folder's networks as the video crate takes them.
pub fn files(dir: &Path) -> WanFiles {
    let opt = |p: PathBuf| p.exists().then_some(p);
    WanFiles {
        transformer: dir.join("transformer"),
        vae: dir.join("vae"),
        text_encoder: dir.join("text_encoder"),
        tokenizer: dir.join("tokenizer"),
        image_encoder: opt(dir.join("image_encoder")),
        image_processor: opt(dir.join("image_processor")),
    }
}

/// `picture` through the model's VAE alone (encoded as a clip's first frame, decoded): what a
/// clip held to it at frame 0 must start with, as far as the VAE can draw it.
pub fn round_trip(dir: &Path, picture: &RgbImage) -> RgbImage {
    let m = WanModel::new(files(dir), &Device::Cpu);
    let anchors = m
        .encode_anchors(&[AnchorPicture {
            picture: Picture {
                rgb: &picture.data,
                width: picture.width as usize,
                height: picture.height as usize,
            },
            at: AnchorAt::First,
        }])
        .unwrap();
    let mut first = None;
    m.decode(
        &anchors[0].latents,
        &DecodeOptions::default(),
        &mut |_, frames| {
            first.get_or_insert(reelsmith_video::ltx::pipeline::to_rgb(&frames)?[0].clone());
            Ok(())
        },
    )
    .unwrap();
    RgbImage {
        width: picture.width,
        height: picture.height,
        data: first.unwrap(),
    }
}
