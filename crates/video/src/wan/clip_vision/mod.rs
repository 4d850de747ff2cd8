//! Wan2.1 I2V's image encoder: the visual tower of open-clip xlm-roberta-large-ViT-H/14
//! (transformers' `CLIPVisionModel`, exact erf gelu), read out at its penultimate layer, and the
//! `CLIPImageProcessor` that prepares its input ([`ClipImageProcessor`]).
//!
//! The tower: a patch convolution without bias, a class token and learned positions (1 + 256
//! tokens at 224 px / patch 14), a pre-LayerNorm, then pre-LN blocks (LayerNorm → attention with
//! q·kᵀ/√d → residual, LayerNorm → fc1 → gelu → fc2 → residual). The Wan pipelines take the
//! hidden states after the second-to-last block (transformers `hidden_states[-2]`; the official
//! `use_31_block=True`), without the post-LayerNorm: `[B, 257, 1280]`.
//!
//! Weight layouts ([`ClipVisionLayout`]): transformers folders (`vision_model.*` as 4.x saves
//! them, or without the prefix as 5.x does), ComfyUI's `clip_vision_h.safetensors`
//! (transformers names with `vision_model.`, as ComfyUI's `clip_vision.py` loads them), the
//! official Wan `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth` (`visual.*` names of
//! `wan/modules/clip.py`: `visual.transformer.N.attn.to_qkv` …; the text tower is ignored) and
//! open_clip's own (`visual.transformer.resblocks.N.attn.in_proj_weight` …).

mod preprocess;

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::Deserialize;

pub use preprocess::ClipImageProcessor;

use crate::wan::umt5::weights::{self, weights_err, WeightFiles};
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// The tower's shape, with transformers' `CLIPVisionConfig` names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// `gelu` (exact, ViT-H), `quick_gelu` (OpenAI CLIP) or `gelu_new`/`gelu_pytorch_tanh`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_channels() -> usize {
    3
}
fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "quick_gelu".into()
}

impl ClipVisionConfig {
    /// open-clip xlm-roberta-large-ViT-H/14's visual tower (Wan2.1 I2V).
    pub fn vit_h_14() -> Self {
        Self {
            hidden_size: 1280,
            intermediate_size: 5120,
            num_hidden_layers: 32,
            num_attention_heads: 16,
            image_size: 224,
            patch_size: 14,
            num_channels: 3,
            layer_norm_eps: 1e-5,
            hidden_act: "gelu".into(),
        }
    }

    /// A transformers `config.json`: a `CLIPVisionConfig`, or a `CLIPConfig` whose
    /// `vision_config` is read.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| weights_err(path.display(), e.to_string()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| weights_err(path.display(), format!("not JSON: {e}")))?;
        let v = json.get("vision_config").cloned().unwrap_or(json);
        let cfg: Self = serde_json::from_value(v)
            .map_err(|e| weights_err(path.display(), format!("not a CLIP vision config: {e}")))?;
        cfg.activation()
            .map_err(|m| weights_err(path.display(), m))?;
        Ok(cfg)
    }

    /// Tokens per image: the class token and one per patch.
    pub fn tokens(&self) -> usize {
        let side = self.image_size / self.patch_size;
        1 + side * side
    }

    fn activation(&self) -> std::result::Result<Act, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Act::Gelu),
            "quick_gelu" => Ok(Act::QuickGelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Act::GeluTanh),
            other => Err(format!("hidden_act {other:?} is not supported")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Gelu,
    QuickGelu,
    GeluTanh,
}

/// How a checkpoint names the tower's tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClipVisionLayout {
    /// transformers names under this prefix (`"vision_model."` or `""`).
    Transformers(String),
    /// `wan/modules/clip.py`: `visual.patch_embedding`, `visual.transformer.N.attn.to_qkv`, … .
    Official,
    /// open_clip: `visual.conv1`, `visual.transformer.resblocks.N.attn.in_proj_weight`, … .
    OpenClip,
}

impl ClipVisionLayout {
    pub fn detect(files: &WeightFiles) -> Result<Self> {
        for prefix in ["vision_model.", ""] {
            if files.contains(&format!("{prefix}embeddings.patch_embedding.weight")) {
                return Ok(Self::Transformers(prefix.into()));
            }
        }
        if files.contains("visual.patch_embedding.weight") {
            Ok(Self::Official)
        } else if files.contains("visual.conv1.weight") {
            Ok(Self::OpenClip)
        } else {
            Err(weights_err(
                files.label(),
                "not a CLIP vision tower: none of \"vision_model.embeddings.patch_embedding.weight\", \
                 \"embeddings.patch_embedding.weight\" (transformers/ComfyUI), \
                 \"visual.patch_embedding.weight\" (official Wan), \"visual.conv1.weight\" (open_clip)",
            ))
        }
    }
}

/// The official Wan (`wan/modules/clip.py`) name of a transformers `CLIPVisionModel` tensor
/// (given without the `vision_model.` prefix), and which third of a fused `[q; k; v]` tensor it
/// is (0, 1, 2). `None` outside the tower's mapped tensors.
pub fn clip_official_name(name: &str) -> Option<(String, Option<usize>)> {
    clip_fused_name(
        name,
        "visual.transformer.",
        |mid| match mid {
            "layer_norm1" => Some("norm1"),
            "layer_norm2" => Some("norm2"),
            "self_attn.out_proj" => Some("attn.proj"),
            "mlp.fc1" => Some("mlp.0"),
            "mlp.fc2" => Some("mlp.2"),
            _ => None,
        },
        |w| format!("attn.to_qkv.{w}"),
        |top| match top {
            "embeddings.patch_embedding.weight" => Some("visual.patch_embedding.weight"),
            "embeddings.class_embedding" => Some("visual.cls_embedding"),
            "embeddings.position_embedding.weight" => Some("visual.pos_embedding"),
            "pre_layrnorm.weight" => Some("visual.pre_norm.weight"),
            "pre_layrnorm.bias" => Some("visual.pre_norm.bias"),
            "post_layernorm.weight" => Some("visual.post_norm.weight"),
            "post_layernorm.bias" => Some("visual.post_norm.bias"),
            _ => None,
        },
    )
}

/// The open_clip name of a transformers `CLIPVisionModel` tensor (without `vision_model.`), and
/// which third of a fused `in_proj` tensor it is.
pub fn clip_open_clip_name(name: &str) -> Option<(String, Option<usize>)> {
    clip_fused_name(
        name,
        "visual.transformer.resblocks.",
        |mid| match mid {
            "layer_norm1" => Some("ln_1"),
            "layer_norm2" => Some("ln_2"),
            "self_attn.out_proj" => Some("attn.out_proj"),
            "mlp.fc1" => Some("mlp.c_fc"),
            "mlp.fc2" => Some("mlp.c_proj"),
            _ => None,
        },
        |w| format!("attn.in_proj_{w}"),
        |top| match top {
            "embeddings.patch_embedding.weight" => Some("visual.conv1.weight"),
            "embeddings.class_embedding" => Some("visual.class_embedding"),
            "embeddings.position_embedding.weight" => Some("visual.positional_embedding"),
            "pre_layrnorm.weight" => Some("visual.ln_pre.weight"),
            "pre_layrnorm.bias" => Some("visual.ln_pre.bias"),
            "post_layernorm.weight" => Some("visual.ln_post.weight"),
            "post_layernorm.bias" => Some("visual.ln_post.bias"),
            _ => None,
        },
    )
}

fn clip_fused_name(
    name: &str,
    block_prefix: &str,
    mid: impl Fn(&str) -> Option<&'static str>,
    fused: impl Fn(&str) -> String,
    top: impl Fn(&str) -> Option<&'static str>,
) -> Option<(String, Option<usize>)> {
    if let Some(t) = top(name) {
        return Some((t.to_string(), None));
    }
    let rest = name.strip_prefix("encoder.layers.")?;
    let (n, rest) = rest.split_once('.')?;
    let n: usize = n.parse().ok()?;
    let (module, w) = rest.rsplit_once('.')?;
    if !matches!(w, "weight" | "bias") {
        return None;
    }
    let part = match module {
        "self_attn.q_proj" => Some(0),
        "self_attn.k_proj" => Some(1),
        "self_attn.v_proj" => Some(2),
        _ => None,
    };
    let tail = match part {
        Some(_) => fused(w),
        None => format!("{}.{w}", mid(module)?),
    };
    Some((format!("{block_prefix}{n}.{tail}"), part))
}

struct Layer {
    ln1_w: Tensor,
    ln1_b: Tensor,
    q_w: Tensor,
    q_b: Tensor,
    k_w: Tensor,
    k_b: Tensor,
    v_w: Tensor,
    v_b: Tensor,
    o_w: Tensor,
    o_b: Tensor,
    ln2_w: Tensor,
    ln2_b: Tensor,
    fc1_w: Tensor,
    fc1_b: Tensor,
    fc2_w: Tensor,
    fc2_b: Tensor,
}

/// The CLIP vision tower up to its penultimate layer (the last block is not loaded).
pub struct ClipVision {
    cfg: ClipVisionConfig,
    act: Act,
    patch: Tensor,
    class: Tensor,
    positions: Tensor,
    pre_w: Tensor,
    pre_b: Tensor,
    layers: Vec<Layer>,
    dtype: DType,
    device: Device,
}

fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_matmul(&w.t()?)?.broadcast_add(b)?)
}

impl ClipVision {
    /// Loads a transformers folder (config.json + safetensors), a ComfyUI
    /// `clip_vision_h.safetensors`, an open_clip file or the official Wan
    /// `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`, in f32. The config is the
    /// folder's (or a `config.json` beside the file), else ViT-H/14's.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let cfg = match weights::config_of(path, "hidden_size") {
            Some(c) => ClipVisionConfig::from_file(&c)?,
            None => ClipVisionConfig::vit_h_14(),
        };
        let files = WeightFiles::open(&weights::files_of(path)?)?;
        Self::from_weights(&files, &cfg, DType::F32, device)
    }

    /// Builds the tower from opened weights (any layout), computing in `dtype`.
    pub fn from_weights(
        files: &WeightFiles,
        cfg: &ClipVisionConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let act = cfg
            .activation()
            .map_err(|m| weights_err(files.label(), m))?;
        if cfg.num_hidden_layers < 2
            || cfg.num_attention_heads == 0
            || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err(weights_err(
                files.label(),
                "the penultimate layer needs ≥ 2 layers and hidden_size divisible by the heads",
            ));
        }
        let layout = ClipVisionLayout::detect(files)?;
        let (d, m, c, p) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.num_channels,
            cfg.patch_size,
        );
        let n_tok = cfg.tokens();
        // A transformers-named tensor, read from whichever layout (fused thirds split off).
        let get = |hf: &str, shape: &[usize]| -> Result<Tensor> {
            let (file_name, part) = match &layout {
                ClipVisionLayout::Transformers(prefix) => (format!("{prefix}{hf}"), None),
                ClipVisionLayout::Official => clip_official_name(hf).ok_or_else(|| {
                    weights_err(files.label(), format!("no official name for {hf}"))
                })?,
                ClipVisionLayout::OpenClip => clip_open_clip_name(hf).ok_or_else(|| {
                    weights_err(files.label(), format!("no open_clip name for {hf}"))
                })?,
            };
            let t = files.get(&file_name, dtype, device)?;
            let t = match part {
                Some(i) => {
                    let rows = t.dim(0)? / 3;
                    t.narrow(0, i * rows, rows)?
                }
                None => t,
            };
            // Official/open_clip keep the class token as [1, 1, D] / [D] and the positions as
            // [1, N, D] / [N, D].
            let t = if t.elem_count() == shape.iter().product::<usize>() && t.dims() != shape {
                t.reshape(shape)?
            } else {
                t
            };
            if t.dims() != shape {
                return Err(weights_err(
                    files.label(),
                    format!(
                        "tensor {file_name:?} has shape {:?}, expected {shape:?}",
                        t.dims()
                    ),
                ));
            }
            Ok(t.contiguous()?)
        };
        let patch = get("embeddings.patch_embedding.weight", &[d, c, p, p])?;
        let class = get("embeddings.class_embedding", &[d])?;
        let positions = get("embeddings.position_embedding.weight", &[n_tok, d])?;
        let pre_w = get("pre_layrnorm.weight", &[d])?;
        let pre_b = get("pre_layrnorm.bias", &[d])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers - 1);
        for i in 0..cfg.num_hidden_layers - 1 {
            let l = |x: &str, shape: &[usize]| get(&format!("encoder.layers.{i}.{x}"), shape);
            layers.push(Layer {
                ln1_w: l("layer_norm1.weight", &[d])?,
                ln1_b: l("layer_norm1.bias", &[d])?,
                q_w: l("self_attn.q_proj.weight", &[d, d])?,
                q_b: l("self_attn.q_proj.bias", &[d])?,
                k_w: l("self_attn.k_proj.weight", &[d, d])?,
                k_b: l("self_attn.k_proj.bias", &[d])?,
                v_w: l("self_attn.v_proj.weight", &[d, d])?,
                v_b: l("self_attn.v_proj.bias", &[d])?,
                o_w: l("self_attn.out_proj.weight", &[d, d])?,
                o_b: l("self_attn.out_proj.bias", &[d])?,
                ln2_w: l("layer_norm2.weight", &[d])?,
                ln2_b: l("layer_norm2.bias", &[d])?,
                fc1_w: l("mlp.fc1.weight", &[m, d])?,
                fc1_b: l("mlp.fc1.bias", &[m])?,
                fc2_w: l("mlp.fc2.weight", &[d, m])?,
                fc2_b: l("mlp.fc2.bias", &[d])?,
            });
        }
        Ok(Self {
            cfg: cfg.clone(),
            act,
            patch,
            class,
            positions,
            pre_w,
            pre_b,
            layers,
            dtype,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &ClipVisionConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn layer_norm(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        let xf = x.to_dtype(DType::F32)?;
        let mean = xf.mean_keepdim(D::Minus1)?;
        let xc = xf.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let y = xc.broadcast_div(&(var + self.cfg.layer_norm_eps)?.sqrt()?)?;
        Ok(y.to_dtype(self.dtype)?.broadcast_mul(w)?.broadcast_add(b)?)
    }

    fn activate(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.act {
            Act::Gelu => x.gelu_erf()?,
            Act::GeluTanh => x.gelu()?,
            Act::QuickGelu => (x * candle_nn::ops::sigmoid(&(x * 1.702)?)?)?,
        })
    }

    /// The hidden states after the second-to-last block, `[B, 1 + patches, hidden]` (Wan I2V's
    /// `image_embeds`: `[B, 257, 1280]` for ViT-H/14), from normalized pixels
    /// `[B, 3, image_size, image_size]` (see [`ClipImageProcessor`]).
    pub fn penultimate(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = pixels.dims4()?;
        let s = self.cfg.image_size;
        if c != self.cfg.num_channels || h != s || w != s {
            return Err(VideoError::Invalid(format!(
                "CLIP vision: pixels {:?}, expected [B, {}, {s}, {s}]",
                pixels.dims(),
                self.cfg.num_channels
            )));
        }
        let (d, heads) = (self.cfg.hidden_size, self.cfg.num_attention_heads);
        let hd = d / heads;
        let x = pixels.to_dtype(self.dtype)?.to_device(&self.device)?;
        let x = x.conv2d(&self.patch, 0, self.cfg.patch_size, 1, 1)?; // [B, D, s/p, s/p]
        let x = x.flatten_from(2)?.transpose(1, 2)?; // [B, N, D]
        let cls = self.class.reshape((1, 1, d))?.broadcast_as((b, 1, d))?;
        let x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.positions.unsqueeze(0)?)?;
        let mut x = self.layer_norm(&x, &self.pre_w, &self.pre_b)?;
        let n = x.dim(1)?;
        let scale = 1.0 / (hd as f64).sqrt();
        for l in &self.layers {
            let hdn = self.layer_norm(&x, &l.ln1_w, &l.ln1_b)?;
            let heads_of = |w: &Tensor, bias: &Tensor| -> Result<Tensor> {
                Ok(linear(&hdn, w, bias)?
                    .reshape((b, n, heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = (heads_of(&l.q_w, &l.q_b)? * scale)?;
            let k = heads_of(&l.k_w, &l.k_b)?;
            let v = heads_of(&l.v_w, &l.v_b)?;
            let scores = q.matmul(&k.t()?)?.to_dtype(DType::F32)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(self.dtype)?;
            let att = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, d))?;
            x = (x + linear(&att, &l.o_w, &l.o_b)?)?;
            let hdn = self.layer_norm(&x, &l.ln2_w, &l.ln2_b)?;
            let hdn = self.activate(&linear(&hdn, &l.fc1_w, &l.fc1_b)?)?;
            x = (x + linear(&hdn, &l.fc2_w, &l.fc2_b)?)?;
        }
        Ok(x)
    }
}
