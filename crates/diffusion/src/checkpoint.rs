//! Single-file checkpoints → per-network [`VarBuilder`]s with diffusers/transformers names.
//!
//! The networks of this crate ask for their weights by the names diffusers and transformers give
//! them (`down_blocks.0.resnets.0.conv1.weight`, `text_model.encoder.layers.0.self_attn.q_proj.weight`,
//! …), but real weights are distributed in other layouts. [`Checkpoint`] memory-maps one or more
//! `.safetensors` files, finds each network's tensors in whatever layout the files use and serves
//! them under the requested names, renaming, splitting and transposing on the fly and merging LoRAs
//! ([`crate::lora`]) into the tensors as they are fetched.
//!
//! Layouts read, per [`Part`]:
//!
//! | part | layouts |
//! |---|---|
//! | [`Part::Unet`] | LDM/SGM `model.diffusion_model.*` (`input_blocks`/`middle_block`/`output_blocks`/`time_embed`/`label_emb`/`out`); diffusers `unet/diffusion_pytorch_model.safetensors` (bare or `unet.`) |
//! | [`Part::Vae`], [`Part::FluxVae`] | LDM `first_stage_model.*` / `vae.*` / bare (BFL `ae.safetensors`, standalone SD VAEs); diffusers AutoencoderKL (old `query`/`key`/`value`/`proj_attn` names too) |
//! | [`Part::TextEncoder`] | transformers CLIP under `cond_stage_model.transformer.` (SD 1.x), `conditioner.embedders.0.transformer.` (SDXL), bare (ComfyUI `clip_l.safetensors`), each with or without `text_model.` (transformers 5 drops it); SD 2.x OpenCLIP `cond_stage_model.model.*` |
//! | [`Part::TextEncoder2`] | OpenCLIP `conditioner.embedders.1.model.*` (SDXL), `conditioner.embedders.0.model.*` (SDXL refiner); transformers CLIPTextModelWithProjection files (ComfyUI `clip_g.safetensors`) |
//! | [`Part::FluxTransformer`] | BFL names, bare or under `model.diffusion_model.` / `diffusion_model.` (served unchanged) |
//! | [`Part::T5`] | transformers T5 names (served unchanged); F8_E4M3 files are converted on the CPU |
//!
//! **SD 2.x text encoder.** The [`Part`]s follow the components of the diffusers pipelines: SD 2.x
//! has a single text encoder, the pipeline's `text_encoder` (OpenCLIP-H converted to a
//! `CLIPTextModel`), so an SD 2.x file's `cond_stage_model.model.*` is served as
//! [`Part::TextEncoder`] (kohya `lora_te_` / diffusers `text_encoder.` LoRAs apply to it). The SDXL
//! refiner's only text encoder is the pipeline's `text_encoder_2` (OpenCLIP-bigG), so it is
//! [`Part::TextEncoder2`]. Asking for the other part on those files is an error that says which
//! part to ask for.
//!
//! Only the tensors the network's config describes are served: text encoder layers beyond
//! `num_hidden_layers` (SD 2.x drops the last OpenCLIP block) and the OpenCLIP `text_projection`
//! of SD 2.x stay unused, as in diffusers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::lora::{self, LoraDelta, LoraSpec};

/// One network of a diffusion model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// The SD/SDXL UNet (diffusers `UNet2DConditionModel` names).
    Unet,
    /// The SD/SDXL autoencoder (diffusers `AutoencoderKL` names, with quant convs).
    Vae,
    /// The pipeline's `text_encoder`: CLIP-L (SD 1.x, SDXL, Flux) or OpenCLIP-H (SD 2.x).
    TextEncoder,
    /// The pipeline's `text_encoder_2`: OpenCLIP-bigG of SDXL and the SDXL refiner.
    TextEncoder2,
    /// The Flux transformer (BFL names, as candle's flux model asks for them).
    FluxTransformer,
    /// The Flux autoencoder (diffusers `AutoencoderKL` names, no quant convs).
    FluxVae,
    /// The T5 encoder of Flux (transformers `T5EncoderModel` names).
    T5,
}

impl Part {
    /// Every part, in a fixed order.
    pub const ALL: [Part; 7] = [
        Part::Unet,
        Part::Vae,
        Part::TextEncoder,
        Part::TextEncoder2,
        Part::FluxTransformer,
        Part::FluxVae,
        Part::T5,
    ];

    /// A short snake_case name (`unet`, `vae`, `text_encoder`, `text_encoder_2`,
    /// `flux_transformer`, `flux_vae`, `t5`).
    pub fn name(self) -> &'static str {
        match self {
            Part::Unet => "unet",
            Part::Vae => "vae",
            Part::TextEncoder => "text_encoder",
            Part::TextEncoder2 => "text_encoder_2",
            Part::FluxTransformer => "flux_transformer",
            Part::FluxVae => "flux_vae",
            Part::T5 => "t5",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a checkpoint could not be opened or a network's weights not be served.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("no checkpoint files given")]
    NoFiles,
    #[error("cannot open checkpoint {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<candle_core::Error>,
    },
    #[error("checkpoint key `{key}` is in both {first} and {second}")]
    DuplicateKey {
        key: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "{part}: {files} hold no {part} weights in a known layout{hint} (keys look like: {sample})"
    )]
    PartNotFound {
        part: Part,
        files: String,
        hint: String,
        sample: String,
    },
    #[error("{part}: {message}")]
    Config { part: Part, message: String },
    #[error("{part}: the network asks for `{name}`, looked up as checkpoint key {key}, which is not in {files}")]
    Missing {
        part: Part,
        name: String,
        key: String,
        files: String,
    },
    #[error("{part}: the network asks for `{name}` with shape {expected:?}, but checkpoint key `{key}` in {file} gives {found:?}")]
    Shape {
        part: Part,
        name: String,
        key: String,
        file: PathBuf,
        expected: Box<[usize]>,
        found: Box<[usize]>,
    },
    #[error("{part}: cannot load `{name}` from checkpoint key `{key}` in {file}: {source}")]
    Load {
        part: Part,
        name: String,
        key: String,
        file: PathBuf,
        source: Box<candle_core::Error>,
    },
    #[error(transparent)]
    Lora(#[from] lora::LoraError),
}

/// One or more memory-mapped `.safetensors` files holding the weights of a model.
pub struct Checkpoint {
    files: Arc<Files>,
}

pub(crate) struct Files {
    paths: Vec<PathBuf>,
    mmaps: Vec<MmapedSafetensors>,
    /// Every key of every file → (file index, stored shape).
    index: HashMap<String, (usize, Vec<usize>)>,
}

impl Files {
    fn has(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    fn describe(&self) -> String {
        self.paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Checkpoint {
    /// Memory-maps `paths` (one single-file checkpoint, or the separate files of a model such as
    /// Flux's transformer, autoencoder and text encoders). A key may appear in one file only.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<Checkpoint, CheckpointError> {
        if paths.is_empty() {
            return Err(CheckpointError::NoFiles);
        }
        let mut files = Files {
            paths: Vec::new(),
            mmaps: Vec::new(),
            index: HashMap::new(),
        };
        for (i, path) in paths.iter().enumerate() {
            let path = path.as_ref().to_path_buf();
            // SAFETY: the file is mapped read-only; like every mmap-based loader we rely on nobody
            // truncating or rewriting the weights file while it is open.
            let st = unsafe { MmapedSafetensors::new(&path) }.map_err(|source| {
                CheckpointError::Open {
                    path: path.clone(),
                    source: Box::new(source),
                }
            })?;
            for (key, view) in st.tensors() {
                if let Some((j, _)) = files.index.get(&key) {
                    return Err(CheckpointError::DuplicateKey {
                        key,
                        first: files.paths[*j].clone(),
                        second: path,
                    });
                }
                files.index.insert(key, (i, view.shape().to_vec()));
            }
            files.paths.push(path);
            files.mmaps.push(st);
        }
        Ok(Checkpoint {
            files: Arc::new(files),
        })
    }

    /// The files, in the order given to [`Checkpoint::open`].
    pub fn paths(&self) -> &[PathBuf] {
        &self.files.paths
    }

    /// Which parts the files hold (detected from key prefixes). An autoencoder with quant convs
    /// is reported as [`Part::Vae`], one without as [`Part::FluxVae`].
    pub fn parts(&self) -> Vec<Part> {
        Part::ALL
            .into_iter()
            .filter(|&part| match detect(&self.files, part) {
                Ok(layout) => match part {
                    Part::Vae => self.has_quant_conv(&layout),
                    Part::FluxVae => !self.has_quant_conv(&layout),
                    _ => true,
                },
                Err(_) => false,
            })
            .collect()
    }

    fn has_quant_conv(&self, layout: &Layout) -> bool {
        self.files
            .has(&format!("{}quant_conv.weight", layout.prefix))
    }

    /// The weights of one network under the names it asks for, with `loras` merged in.
    ///
    /// `config` is the part's diffusers/transformers `config.json` value; it gives the structure
    /// the name map needs (UNet `layers_per_block`, `up_block_types`, `class_embed_type`; VAE
    /// `up_block_types`/`block_out_channels`; text encoder `num_hidden_layers`). Missing fields
    /// are inferred from the checkpoint's keys where possible.
    ///
    /// Every LoRA key aimed at this part must match one of its weights; LoRA modules aimed at
    /// other parts (e.g. text-encoder modules while loading the UNet) are left for those.
    pub fn var_builder(
        &self,
        part: Part,
        config: &Value,
        loras: &[LoraSpec],
        dtype: DType,
        device: &Device,
    ) -> Result<VarBuilder<'static>, CheckpointError> {
        let map = self.part_map(part, config)?;
        let deltas = lora::resolve(loras, &map)?;
        let backend = Backend {
            files: self.files.clone(),
            map,
            deltas,
        };
        Ok(VarBuilder::from_backend(
            Box::new(backend),
            dtype,
            device.clone(),
        ))
    }

    /// The name map of one part: every name served, where it comes from and its shape.
    pub(crate) fn part_map(&self, part: Part, config: &Value) -> Result<PartMap, CheckpointError> {
        let layout = detect(&self.files, part)?;
        // ComfyUI "scaled fp8" files keep a per-tensor scale next to each f8 weight; serving
        // the bare f8 values would be silently wrong.
        let scaled = self.files.index.keys().find(|k| {
            k.strip_prefix(layout.prefix.as_str())
                .is_some_and(|rest| rest == "scaled_fp8" || rest.ends_with(".scale_weight"))
        });
        if let Some(key) = scaled {
            return Err(CheckpointError::Config {
                part,
                message: format!(
                    "{} is a \"scaled fp8\" checkpoint (key `{key}`), which is not supported: use the fp16/bf16 or plain fp8 (e4m3fn) file",
                    self.files.describe()
                ),
            });
        }
        let structure = Structure::new(part, &layout, config, &self.files)?;
        let mut served = BTreeMap::new();
        for (key, (file, stored)) in &self.files.index {
            let Some(stripped) = key.strip_prefix(layout.prefix.as_str()) else {
                continue;
            };
            for entry in forward(part, &layout, &structure, stripped, stored) {
                let previous = served.insert(
                    entry.name.clone(),
                    Served {
                        name: entry.name.clone(),
                        key: key.clone(),
                        file: *file,
                        op: entry.op,
                        shape: entry.shape,
                    },
                );
                if let Some(previous) = previous {
                    return Err(CheckpointError::Config {
                        part,
                        message: format!(
                            "checkpoint keys `{}` and `{key}` both give `{}`",
                            previous.key, entry.name
                        ),
                    });
                }
            }
        }
        if served.is_empty() {
            return Err(not_found(&self.files, part, &layout.prefix));
        }
        let mut unused = BTreeSet::new();
        if matches!(layout.kind, Kind::ClipHf { .. } | Kind::OpenClip) {
            let all = Structure {
                text_layers: None,
                ..structure.clone()
            };
            for (key, (_, stored)) in &self.files.index {
                if let Some(stripped) = key.strip_prefix(layout.prefix.as_str()) {
                    let entries = forward(Part::TextEncoder2, &layout, &all, stripped, stored);
                    unused.extend(
                        entries
                            .into_iter()
                            .map(|e| e.name)
                            .filter(|n| !served.contains_key(n)),
                    );
                }
            }
        }
        Ok(PartMap {
            part,
            layout,
            structure,
            served,
            unused,
        })
    }
}

/// Where one served tensor comes from.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    /// The name the network asks for.
    pub name: String,
    /// The full checkpoint key.
    pub key: String,
    pub file: usize,
    pub op: Op,
    /// The shape served (after `op`, with 1×1-conv attention weights squeezed to 2-D).
    pub shape: Vec<usize>,
}

/// How a served tensor is cut out of its checkpoint tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Whole,
    /// Rows `start..start + len` of dim 0 (a third of a fused q/k/v projection).
    Rows {
        start: usize,
        len: usize,
    },
    /// A 2-D transpose (OpenCLIP `text_projection`, stored for `x @ P`).
    Transpose,
}

/// The layout of one part in the files: its family of names and the key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub kind: Kind,
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// LDM/SGM UNet (`input_blocks`, …).
    UnetLdm,
    /// diffusers UNet names.
    UnetDiffusers,
    /// LDM autoencoder (`encoder.down.0.block.0`, …).
    VaeLdm,
    /// diffusers AutoencoderKL names.
    VaeDiffusers,
    /// transformers CLIP; `text_model` says whether the keys carry `text_model.`.
    ClipHf { text_model: bool },
    /// OpenCLIP text tower (`transformer.resblocks.N`, fused `in_proj_weight`).
    OpenClip,
    /// BFL Flux names, served unchanged.
    Flux,
    /// transformers T5 names, served unchanged.
    T5,
}

/// The structure the name maps need, from the part's config (or inferred from the keys).
#[derive(Debug, Clone, Default)]
pub(crate) struct Structure {
    /// UNet: resnets per down block.
    layers_per_block: usize,
    /// UNet: whether up block i has attentions (None: look at the keys).
    up_attention: Option<Vec<bool>>,
    /// UNet: `label_emb` is a class embedding (else SDXL's `add_embedding`).
    class_embedding: bool,
    /// VAE: number of decoder up blocks.
    vae_up_blocks: usize,
    /// Text encoders: layers served (None: all).
    text_layers: Option<usize>,
}

impl Structure {
    fn new(
        part: Part,
        layout: &Layout,
        config: &Value,
        files: &Files,
    ) -> Result<Self, CheckpointError> {
        let mut s = Structure::default();
        let uint = |field: &str| {
            config
                .get(field)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
        };
        let strings = |field: &str| -> Option<Vec<String>> {
            config.get(field)?.as_array().map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
        };
        let keys_under = |head: &'static str| {
            files
                .index
                .keys()
                .filter_map(move |k| k.strip_prefix(layout.prefix.as_str())?.strip_prefix(head))
        };
        match layout.kind {
            Kind::UnetLdm | Kind::UnetDiffusers => {
                s.layers_per_block = match uint("layers_per_block") {
                    Some(l) => l,
                    None if layout.kind == Kind::UnetLdm => {
                        // The first downsampler sits at input_blocks.(1 + L).0.op.
                        let first_op = keys_under("input_blocks.")
                            .filter(|rest| rest.contains(".0.op."))
                            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
                            .min();
                        match first_op {
                            Some(i) if i >= 1 => i - 1,
                            _ => {
                                return Err(CheckpointError::Config {
                                    part,
                                    message: "the config has no `layers_per_block` and the checkpoint has no downsampler to infer it from".into(),
                                })
                            }
                        }
                    }
                    None => 0,
                };
                s.up_attention = strings("up_block_types")
                    .map(|types| types.iter().map(|t| t.contains("CrossAttn")).collect());
                s.class_embedding = config
                    .get("class_embed_type")
                    .and_then(Value::as_str)
                    .is_some();
            }
            Kind::VaeLdm | Kind::VaeDiffusers => {
                s.vae_up_blocks = match strings("up_block_types")
                    .map(|t| t.len())
                    .or_else(|| config.get("block_out_channels")?.as_array().map(Vec::len))
                {
                    Some(n) => n,
                    None => keys_under("decoder.up.")
                        .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
                        .max()
                        .map_or(0, |m| m + 1),
                };
            }
            Kind::ClipHf { .. } | Kind::OpenClip => {
                s.text_layers = uint("num_hidden_layers");
            }
            Kind::Flux | Kind::T5 => {}
        }
        Ok(s)
    }
}

/// The name map of one part.
pub(crate) struct PartMap {
    pub part: Part,
    pub layout: Layout,
    structure: Structure,
    /// Served name → source.
    pub served: BTreeMap<String, Served>,
    /// Names the checkpoint has but the configured network does not use (text encoder layers
    /// beyond `num_hidden_layers`, a projection CLIPTextModel lacks); LoRA modules on them are
    /// skipped.
    pub unused: BTreeSet<String>,
}

impl PartMap {
    /// The checkpoint key a name would be read from (for error messages), with the prefix.
    fn expected_key(&self, files: &Files, name: &str) -> Option<String> {
        let stripped = reverse(&self.layout, &self.structure, files, name)?;
        Some(format!("{}{}", self.layout.prefix, stripped))
    }

    /// The source key without the layout prefix (LDM/BFL names for LoRA matching).
    pub fn stripped_key<'a>(&self, served: &'a Served) -> &'a str {
        served
            .key
            .strip_prefix(self.layout.prefix.as_str())
            .unwrap_or(&served.key)
    }
}

struct Entry {
    name: String,
    op: Op,
    shape: Vec<usize>,
}

fn whole(name: String, stored: &[usize]) -> Vec<Entry> {
    vec![Entry {
        name,
        op: Op::Whole,
        shape: stored.to_vec(),
    }]
}

fn index(s: &str) -> Option<usize> {
    s.parse().ok()
}

/// Checkpoint key (prefix stripped) → the served entries it yields (none: not this part's).
fn forward(part: Part, layout: &Layout, s: &Structure, key: &str, stored: &[usize]) -> Vec<Entry> {
    let k: Vec<&str> = key.split('.').collect();
    let name = match layout.kind {
        Kind::UnetLdm => unet_ldm_to_diffusers(&k, s),
        Kind::UnetDiffusers => UNET_TOP.contains(&k[0]).then(|| key.to_string()),
        Kind::VaeLdm => {
            let Some((name, squeeze)) = vae_ldm_to_diffusers(&k, s.vae_up_blocks) else {
                return vec![];
            };
            let shape = if squeeze {
                squeezed(stored)
            } else {
                stored.to_vec()
            };
            return vec![Entry {
                name,
                op: Op::Whole,
                shape,
            }];
        }
        Kind::VaeDiffusers => vae_diffusers_name(&k),
        Kind::ClipHf { text_model } => {
            clip_hf_name(key, text_model).filter(|n| serve_text_name(part, s, n))
        }
        Kind::OpenClip => return open_clip_forward(part, s, &k, stored),
        Kind::Flux => FLUX_TOP.contains(&k[0]).then(|| key.to_string()),
        Kind::T5 => is_t5_key(&k).then(|| key.to_string()),
    };
    name.map_or_else(Vec::new, |n| whole(n, stored))
}

/// Served name → checkpoint key without the prefix (the inverse of [`forward`]).
fn reverse(layout: &Layout, s: &Structure, files: &Files, name: &str) -> Option<String> {
    let n: Vec<&str> = name.split('.').collect();
    match layout.kind {
        Kind::UnetLdm => {
            unet_diffusers_to_ldm(&n, s, |k| files.has(&format!("{}{k}", layout.prefix)))
        }
        Kind::UnetDiffusers | Kind::VaeDiffusers | Kind::Flux | Kind::T5 => Some(name.to_string()),
        Kind::VaeLdm => vae_diffusers_to_ldm(&n, s.vae_up_blocks),
        Kind::ClipHf { text_model } => {
            if name == "text_projection.weight" || text_model {
                Some(name.to_string())
            } else {
                name.strip_prefix("text_model.").map(str::to_string)
            }
        }
        Kind::OpenClip => open_clip_key(&n),
    }
}

const UNET_TOP: [&str; 9] = [
    "conv_in",
    "time_embedding",
    "add_embedding",
    "class_embedding",
    "down_blocks",
    "mid_block",
    "up_blocks",
    "conv_norm_out",
    "conv_out",
];

const FLUX_TOP: [&str; 8] = [
    "img_in",
    "txt_in",
    "time_in",
    "vector_in",
    "guidance_in",
    "double_blocks",
    "single_blocks",
    "final_layer",
];

fn is_t5_key(k: &[&str]) -> bool {
    match k {
        ["shared", ..] | ["lm_head", ..] => true,
        // (not `encoder.down…`/`decoder.up…`: an autoencoder may share the files)
        ["encoder" | "decoder", second, ..] => {
            matches!(*second, "block" | "final_layer_norm" | "embed_tokens")
        }
        _ => false,
    }
}

/// `[a, b, …]` joined with `.` after `head`.
fn join(head: &str, rest: &[&str]) -> Option<String> {
    if rest.is_empty() {
        return None;
    }
    Some(format!("{head}.{}", rest.join(".")))
}

// ---------------------------------------------------------------------------------------------
// UNet: LDM/SGM ↔ diffusers
// ---------------------------------------------------------------------------------------------

const LDM_RESNET: [(&str, &str); 6] = [
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("emb_layers.1", "time_emb_proj"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("skip_connection", "conv_shortcut"),
];

fn resnet_ldm_to_diffusers(head: &str, rest: &[&str]) -> Option<String> {
    let joined = rest.join(".");
    LDM_RESNET.iter().find_map(|(ldm, diff)| {
        let tail = joined.strip_prefix(ldm)?.strip_prefix('.')?;
        Some(format!("{head}.{diff}.{tail}"))
    })
}

fn resnet_diffusers_to_ldm(head: &str, rest: &[&str]) -> Option<String> {
    let joined = rest.join(".");
    LDM_RESNET.iter().find_map(|(ldm, diff)| {
        let tail = joined.strip_prefix(diff)?.strip_prefix('.')?;
        Some(format!("{head}.{ldm}.{tail}"))
    })
}

fn unet_ldm_to_diffusers(k: &[&str], s: &Structure) -> Option<String> {
    let per = s.layers_per_block + 1;
    let emb = if s.class_embedding {
        "class_embedding"
    } else {
        "add_embedding"
    };
    match k {
        ["input_blocks", "0", "0", rest @ ..] => join("conv_in", rest),
        ["time_embed", "0", rest @ ..] => join("time_embedding.linear_1", rest),
        ["time_embed", "2", rest @ ..] => join("time_embedding.linear_2", rest),
        ["label_emb", "0", "0", rest @ ..] => join(&format!("{emb}.linear_1"), rest),
        ["label_emb", "0", "2", rest @ ..] => join(&format!("{emb}.linear_2"), rest),
        ["out", "0", rest @ ..] => join("conv_norm_out", rest),
        ["out", "2", rest @ ..] => join("conv_out", rest),
        ["input_blocks", i, sub, rest @ ..] => {
            let i = index(i)?.checked_sub(1)?;
            let (b, j) = (i / per, i % per);
            match (*sub, rest) {
                ("0", ["op", tail @ ..]) => {
                    join(&format!("down_blocks.{b}.downsamplers.0.conv"), tail)
                }
                ("0", _) => resnet_ldm_to_diffusers(&format!("down_blocks.{b}.resnets.{j}"), rest),
                ("1", _) => join(&format!("down_blocks.{b}.attentions.{j}"), rest),
                _ => None,
            }
        }
        ["middle_block", "0", rest @ ..] => resnet_ldm_to_diffusers("mid_block.resnets.0", rest),
        ["middle_block", "1", rest @ ..] => join("mid_block.attentions.0", rest),
        ["middle_block", "2", rest @ ..] => resnet_ldm_to_diffusers("mid_block.resnets.1", rest),
        ["output_blocks", i, sub, rest @ ..] => {
            let i = index(i)?;
            let (b, j) = (i / per, i % per);
            match (*sub, rest) {
                ("0", _) => resnet_ldm_to_diffusers(&format!("up_blocks.{b}.resnets.{j}"), rest),
                ("1" | "2", ["conv", tail @ ..]) => {
                    join(&format!("up_blocks.{b}.upsamplers.0.conv"), tail)
                }
                ("1", _) => join(&format!("up_blocks.{b}.attentions.{j}"), rest),
                _ => None,
            }
        }
        _ => None,
    }
}

fn unet_diffusers_to_ldm(
    n: &[&str],
    s: &Structure,
    exists: impl Fn(&str) -> bool,
) -> Option<String> {
    let l = s.layers_per_block;
    let per = l + 1;
    match n {
        ["conv_in", rest @ ..] => join("input_blocks.0.0", rest),
        ["time_embedding", "linear_1", rest @ ..] => join("time_embed.0", rest),
        ["time_embedding", "linear_2", rest @ ..] => join("time_embed.2", rest),
        ["add_embedding" | "class_embedding", "linear_1", rest @ ..] => join("label_emb.0.0", rest),
        ["add_embedding" | "class_embedding", "linear_2", rest @ ..] => join("label_emb.0.2", rest),
        ["conv_norm_out", rest @ ..] => join("out.0", rest),
        ["conv_out", rest @ ..] => join("out.2", rest),
        ["down_blocks", b, "resnets", j, rest @ ..] => {
            let i = 1 + index(b)? * per + index(j)?;
            resnet_diffusers_to_ldm(&format!("input_blocks.{i}.0"), rest)
        }
        ["down_blocks", b, "attentions", j, rest @ ..] => {
            let i = 1 + index(b)? * per + index(j)?;
            join(&format!("input_blocks.{i}.1"), rest)
        }
        ["down_blocks", b, "downsamplers", "0", "conv", rest @ ..] => {
            let i = 1 + index(b)? * per + l;
            join(&format!("input_blocks.{i}.0.op"), rest)
        }
        ["mid_block", "resnets", j, rest @ ..] => {
            resnet_diffusers_to_ldm(&format!("middle_block.{}", 2 * index(j)?), rest)
        }
        ["mid_block", "attentions", "0", rest @ ..] => join("middle_block.1", rest),
        ["up_blocks", b, "resnets", j, rest @ ..] => {
            let i = index(b)? * per + index(j)?;
            resnet_diffusers_to_ldm(&format!("output_blocks.{i}.0"), rest)
        }
        ["up_blocks", b, "attentions", j, rest @ ..] => {
            let i = index(b)? * per + index(j)?;
            join(&format!("output_blocks.{i}.1"), rest)
        }
        ["up_blocks", b, "upsamplers", "0", "conv", rest @ ..] => {
            let b = index(b)?;
            let i = b * per + l;
            let attn = match &s.up_attention {
                Some(a) => a.get(b).copied().unwrap_or(false),
                None => exists(&format!("output_blocks.{i}.2.conv.{}", rest.join("."))),
            };
            join(
                &format!("output_blocks.{i}.{}.conv", if attn { 2 } else { 1 }),
                rest,
            )
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// VAE: LDM ↔ diffusers
// ---------------------------------------------------------------------------------------------

const VAE_ATTN: [(&str, &str); 5] = [
    ("norm", "group_norm"),
    ("q", "to_q"),
    ("k", "to_k"),
    ("v", "to_v"),
    ("proj_out", "to_out.0"),
];

fn vae_resnet(head: &str, rest: &[&str]) -> Option<String> {
    match rest {
        ["nin_shortcut", tail @ ..] => join(&format!("{head}.conv_shortcut"), tail),
        [m @ ("norm1" | "conv1" | "norm2" | "conv2"), tail @ ..] => {
            join(&format!("{head}.{m}"), tail)
        }
        _ => None,
    }
}

fn vae_resnet_rev(head: &str, rest: &[&str]) -> Option<String> {
    match rest {
        ["conv_shortcut", tail @ ..] => join(&format!("{head}.nin_shortcut"), tail),
        [m @ ("norm1" | "conv1" | "norm2" | "conv2"), tail @ ..] => {
            join(&format!("{head}.{m}"), tail)
        }
        _ => None,
    }
}

/// LDM VAE key → (diffusers name, whether a 1×1-conv attention weight is squeezed to 2-D).
fn vae_ldm_to_diffusers(k: &[&str], n_up: usize) -> Option<(String, bool)> {
    let plain = |s: Option<String>| s.map(|s| (s, false));
    match k {
        [q @ ("quant_conv" | "post_quant_conv"), rest @ ..] => plain(join(q, rest)),
        [ed @ ("encoder" | "decoder"), c @ ("conv_in" | "conv_out"), rest @ ..] => {
            plain(join(&format!("{ed}.{c}"), rest))
        }
        [ed @ ("encoder" | "decoder"), "norm_out", rest @ ..] => {
            plain(join(&format!("{ed}.conv_norm_out"), rest))
        }
        ["encoder", "down", i, "block", j, rest @ ..] => plain(vae_resnet(
            &format!("encoder.down_blocks.{}.resnets.{}", index(i)?, index(j)?),
            rest,
        )),
        ["encoder", "down", i, "downsample", "conv", rest @ ..] => plain(join(
            &format!("encoder.down_blocks.{}.downsamplers.0.conv", index(i)?),
            rest,
        )),
        ["decoder", "up", i, "block", j, rest @ ..] => {
            let b = n_up.checked_sub(1)?.checked_sub(index(i)?)?;
            plain(vae_resnet(
                &format!("decoder.up_blocks.{b}.resnets.{}", index(j)?),
                rest,
            ))
        }
        ["decoder", "up", i, "upsample", "conv", rest @ ..] => {
            let b = n_up.checked_sub(1)?.checked_sub(index(i)?)?;
            plain(join(
                &format!("decoder.up_blocks.{b}.upsamplers.0.conv"),
                rest,
            ))
        }
        [ed @ ("encoder" | "decoder"), "mid", block @ ("block_1" | "block_2"), rest @ ..] => {
            let j = if *block == "block_1" { 0 } else { 1 };
            plain(vae_resnet(&format!("{ed}.mid_block.resnets.{j}"), rest))
        }
        [ed @ ("encoder" | "decoder"), "mid", "attn_1", m, rest @ ..] => {
            let (_, diff) = VAE_ATTN.iter().find(|(ldm, _)| ldm == m)?;
            let name = join(&format!("{ed}.mid_block.attentions.0.{diff}"), rest)?;
            Some((name, *m != "norm" && rest == ["weight"]))
        }
        _ => None,
    }
}

fn vae_diffusers_to_ldm(n: &[&str], n_up: usize) -> Option<String> {
    match n {
        [q @ ("quant_conv" | "post_quant_conv"), rest @ ..] => join(q, rest),
        [ed @ ("encoder" | "decoder"), c @ ("conv_in" | "conv_out"), rest @ ..] => {
            join(&format!("{ed}.{c}"), rest)
        }
        [ed @ ("encoder" | "decoder"), "conv_norm_out", rest @ ..] => {
            join(&format!("{ed}.norm_out"), rest)
        }
        ["encoder", "down_blocks", i, "resnets", j, rest @ ..] => vae_resnet_rev(
            &format!("encoder.down.{}.block.{}", index(i)?, index(j)?),
            rest,
        ),
        ["encoder", "down_blocks", i, "downsamplers", "0", "conv", rest @ ..] => {
            join(&format!("encoder.down.{}.downsample.conv", index(i)?), rest)
        }
        ["decoder", "up_blocks", b, "resnets", j, rest @ ..] => {
            let i = n_up.checked_sub(1)?.checked_sub(index(b)?)?;
            vae_resnet_rev(&format!("decoder.up.{i}.block.{}", index(j)?), rest)
        }
        ["decoder", "up_blocks", b, "upsamplers", "0", "conv", rest @ ..] => {
            let i = n_up.checked_sub(1)?.checked_sub(index(b)?)?;
            join(&format!("decoder.up.{i}.upsample.conv"), rest)
        }
        [ed @ ("encoder" | "decoder"), "mid_block", "resnets", j @ ("0" | "1"), rest @ ..] => {
            vae_resnet_rev(&format!("{ed}.mid.block_{}", index(j)? + 1), rest)
        }
        [ed @ ("encoder" | "decoder"), "mid_block", "attentions", "0", rest @ ..] => {
            let joined = rest.join(".");
            VAE_ATTN.iter().find_map(|(ldm, diff)| {
                let tail = joined.strip_prefix(diff)?.strip_prefix('.')?;
                Some(format!("{ed}.mid.attn_1.{ldm}.{tail}"))
            })
        }
        _ => None,
    }
}

/// diffusers VAE key → served name (older diffusers files name the attention projections
/// `query`/`key`/`value`/`proj_attn`).
fn vae_diffusers_name(k: &[&str]) -> Option<String> {
    if !matches!(
        k.first(),
        Some(&("encoder" | "decoder" | "quant_conv" | "post_quant_conv"))
    ) {
        return None;
    }
    let renamed: Vec<&str> = k
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let in_attention = i >= 3 && k[i - 2] == "attentions";
            match (*c, in_attention) {
                ("query", true) => "to_q",
                ("key", true) => "to_k",
                ("value", true) => "to_v",
                ("proj_attn", true) => "to_out.0",
                _ => c,
            }
        })
        .collect();
    Some(renamed.join("."))
}

/// `[C, C, 1, 1]` / `[C, C, 1]` → `[C, C]`.
fn squeezed(shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    while s.len() > 2 && s.last() == Some(&1) {
        s.pop();
    }
    s
}

/// Shapes equal once every dimension of size 1 is dropped (a 1×1 conv vs a linear).
fn same_but_unit_dims(a: &[usize], b: &[usize]) -> bool {
    let strip = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    strip(a) == strip(b)
}

// ---------------------------------------------------------------------------------------------
// Text encoders
// ---------------------------------------------------------------------------------------------

fn clip_hf_name(rest: &str, text_model: bool) -> Option<String> {
    if rest == "text_projection.weight" {
        return Some(rest.to_string());
    }
    if text_model {
        rest.starts_with("text_model.").then(|| rest.to_string())
    } else {
        ["embeddings.", "encoder.layers.", "final_layer_norm."]
            .iter()
            .any(|p| rest.starts_with(p))
            .then(|| format!("text_model.{rest}"))
    }
}

/// Whether a transformers CLIP name is one the configured network has.
fn serve_text_name(part: Part, s: &Structure, name: &str) -> bool {
    if name.ends_with("position_ids") {
        return false;
    }
    if name == "text_projection.weight" {
        return part == Part::TextEncoder2;
    }
    if let (Some(layers), Some(rest)) = (
        s.text_layers,
        name.strip_prefix("text_model.encoder.layers."),
    ) {
        if let Some(i) = rest.split('.').next().and_then(index) {
            return i < layers;
        }
    }
    true
}

fn open_clip_forward(part: Part, s: &Structure, k: &[&str], stored: &[usize]) -> Vec<Entry> {
    let one = |name: String| -> Vec<Entry> {
        if serve_text_name(part, s, &name) {
            whole(name, stored)
        } else {
            vec![]
        }
    };
    match k {
        ["token_embedding", "weight"] => one("text_model.embeddings.token_embedding.weight".into()),
        ["positional_embedding"] => one("text_model.embeddings.position_embedding.weight".into()),
        ["ln_final", p] => one(format!("text_model.final_layer_norm.{p}")),
        ["text_projection"] if stored.len() == 2 && part == Part::TextEncoder2 => vec![Entry {
            name: "text_projection.weight".into(),
            op: Op::Transpose,
            shape: vec![stored[1], stored[0]],
        }],
        ["transformer", "resblocks", n, rest @ ..] => {
            let Some(layer) = index(n) else {
                return vec![];
            };
            let head = format!("text_model.encoder.layers.{layer}");
            if !serve_text_name(part, s, &format!("{head}.x")) {
                return vec![];
            }
            match rest {
                ["attn", which @ ("in_proj_weight" | "in_proj_bias")]
                    if stored[0].is_multiple_of(3) =>
                {
                    let h = stored[0] / 3;
                    let p = if *which == "in_proj_weight" {
                        "weight"
                    } else {
                        "bias"
                    };
                    ["q_proj", "k_proj", "v_proj"]
                        .iter()
                        .enumerate()
                        .map(|(i, proj)| {
                            let mut shape = stored.to_vec();
                            shape[0] = h;
                            Entry {
                                name: format!("{head}.self_attn.{proj}.{p}"),
                                op: Op::Rows {
                                    start: i * h,
                                    len: h,
                                },
                                shape,
                            }
                        })
                        .collect()
                }
                ["attn", "out_proj", p] => whole(format!("{head}.self_attn.out_proj.{p}"), stored),
                ["ln_1", p] => whole(format!("{head}.layer_norm1.{p}"), stored),
                ["ln_2", p] => whole(format!("{head}.layer_norm2.{p}"), stored),
                ["mlp", "c_fc", p] => whole(format!("{head}.mlp.fc1.{p}"), stored),
                ["mlp", "c_proj", p] => whole(format!("{head}.mlp.fc2.{p}"), stored),
                _ => vec![],
            }
        }
        _ => vec![],
    }
}

fn open_clip_key(n: &[&str]) -> Option<String> {
    match n {
        ["text_model", "embeddings", "token_embedding", "weight"] => {
            Some("token_embedding.weight".into())
        }
        ["text_model", "embeddings", "position_embedding", "weight"] => {
            Some("positional_embedding".into())
        }
        ["text_model", "final_layer_norm", p] => Some(format!("ln_final.{p}")),
        ["text_projection", "weight"] => Some("text_projection".into()),
        ["text_model", "encoder", "layers", l, rest @ ..] => {
            let head = format!("transformer.resblocks.{}", index(l)?);
            match rest {
                ["self_attn", "q_proj" | "k_proj" | "v_proj", "weight"] => {
                    Some(format!("{head}.attn.in_proj_weight"))
                }
                ["self_attn", "q_proj" | "k_proj" | "v_proj", "bias"] => {
                    Some(format!("{head}.attn.in_proj_bias"))
                }
                ["self_attn", "out_proj", p] => Some(format!("{head}.attn.out_proj.{p}")),
                ["layer_norm1", p] => Some(format!("{head}.ln_1.{p}")),
                ["layer_norm2", p] => Some(format!("{head}.ln_2.{p}")),
                ["mlp", "fc1", p] => Some(format!("{head}.mlp.c_fc.{p}")),
                ["mlp", "fc2", p] => Some(format!("{head}.mlp.c_proj.{p}")),
                _ => None,
            }
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Layout detection
// ---------------------------------------------------------------------------------------------

const CLIP_L_PREFIXES: [&str; 5] = [
    "cond_stage_model.transformer.",
    "conditioner.embedders.0.transformer.",
    "text_encoders.clip_l.transformer.",
    "text_encoder.",
    "",
];

/// Finds the layout of `part` in the files from marker keys.
fn detect(files: &Files, part: Part) -> Result<Layout, CheckpointError> {
    let found = |kind: Kind, prefix: &str| {
        Ok(Layout {
            kind,
            prefix: prefix.to_string(),
        })
    };
    let clip_hf = |prefixes: &[&str]| -> Option<Layout> {
        for p in prefixes {
            if files.has(&format!("{p}text_model.embeddings.token_embedding.weight")) {
                return Some(Layout {
                    kind: Kind::ClipHf { text_model: true },
                    prefix: p.to_string(),
                });
            }
            if files.has(&format!("{p}embeddings.token_embedding.weight")) {
                return Some(Layout {
                    kind: Kind::ClipHf { text_model: false },
                    prefix: p.to_string(),
                });
            }
        }
        None
    };
    let open_clip = |p: &str| files.has(&format!("{p}token_embedding.weight"));
    let mut hint = String::new();
    match part {
        Part::Unet => {
            for p in ["model.diffusion_model.", ""] {
                if files.has(&format!("{p}input_blocks.0.0.weight")) {
                    return found(Kind::UnetLdm, p);
                }
            }
            for p in ["", "unet.", "model.diffusion_model."] {
                if files.has(&format!("{p}time_embedding.linear_1.weight")) {
                    return found(Kind::UnetDiffusers, p);
                }
            }
            if detect(files, Part::FluxTransformer).is_ok() {
                hint = " (this is a Flux transformer: ask for flux_transformer)".into();
            }
        }
        Part::Vae | Part::FluxVae => {
            for p in ["first_stage_model.", "vae.", ""] {
                if files.has(&format!("{p}encoder.down.0.block.0.conv1.weight")) {
                    return found(Kind::VaeLdm, p);
                }
            }
            for p in ["", "vae.", "first_stage_model."] {
                if files.has(&format!("{p}encoder.down_blocks.0.resnets.0.conv1.weight")) {
                    return found(Kind::VaeDiffusers, p);
                }
            }
        }
        Part::TextEncoder => {
            if let Some(layout) = clip_hf(&CLIP_L_PREFIXES) {
                return Ok(layout);
            }
            if open_clip("cond_stage_model.model.") {
                return found(Kind::OpenClip, "cond_stage_model.model.");
            }
            if open_clip("conditioner.embedders.0.model.")
                || open_clip("conditioner.embedders.1.model.")
            {
                hint = " (its OpenCLIP-bigG text encoder is text_encoder_2)".into();
            }
        }
        Part::TextEncoder2 => {
            for p in [
                "conditioner.embedders.1.model.",
                "conditioner.embedders.0.model.",
            ] {
                if open_clip(p) {
                    return found(Kind::OpenClip, p);
                }
            }
            // transformers CLIPTextModelWithProjection files (ComfyUI clip_g): the projection
            // tells them from CLIP-L files
            for p in ["text_encoders.clip_g.transformer.", "text_encoder_2.", ""] {
                if let Some(layout) = clip_hf(&[p]) {
                    if files.has(&format!("{p}text_projection.weight")) {
                        return Ok(layout);
                    }
                }
            }
            if open_clip("cond_stage_model.model.") {
                hint = " (SD 2.x has a single text encoder: ask for text_encoder)".into();
            }
        }
        Part::FluxTransformer => {
            for p in ["", "model.diffusion_model.", "diffusion_model."] {
                if files.has(&format!("{p}double_blocks.0.img_attn.qkv.weight")) {
                    return found(Kind::Flux, p);
                }
            }
        }
        Part::T5 => {
            for p in ["", "text_encoders.t5xxl.transformer.", "text_encoder_2."] {
                if files.has(&format!(
                    "{p}encoder.block.0.layer.0.SelfAttention.q.weight"
                )) {
                    return found(Kind::T5, p);
                }
            }
        }
    }
    Err(CheckpointError::PartNotFound {
        part,
        files: files.describe(),
        hint,
        sample: sample_keys(files),
    })
}

fn sample_keys(files: &Files) -> String {
    let mut keys: Vec<&String> = files.index.keys().collect();
    keys.sort();
    let step = (keys.len() / 4).max(1);
    keys.iter()
        .step_by(step)
        .take(4)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_found(files: &Files, part: Part, prefix: &str) -> CheckpointError {
    CheckpointError::PartNotFound {
        part,
        files: files.describe(),
        hint: format!(" (keys under `{prefix}` match no known name)"),
        sample: sample_keys(files),
    }
}

// ---------------------------------------------------------------------------------------------
// The VarBuilder backend
// ---------------------------------------------------------------------------------------------

struct Backend {
    files: Arc<Files>,
    map: PartMap,
    deltas: HashMap<String, Vec<LoraDelta>>,
}

/// Dtypes candle's GPU backends may not convert; these are converted on the CPU.
fn convert_on_cpu(dtype: DType) -> bool {
    !matches!(dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

impl Backend {
    fn fetch(
        &self,
        name: &str,
        shape: Option<&Shape>,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor, CheckpointError> {
        let part = self.map.part;
        let Some(src) = self.map.served.get(name) else {
            let key = match self.map.expected_key(&self.files, name) {
                Some(k) => format!("`{k}`"),
                None => format!(
                    "(none: `{name}` is not a {part} name of the {:?} layout)",
                    self.map.layout.kind
                ),
            };
            return Err(CheckpointError::Missing {
                part,
                name: name.to_string(),
                key,
                files: self.files.describe(),
            });
        };
        let file = &self.files.paths[src.file];
        if let Some(shape) = shape {
            let want = shape.dims();
            if want != src.shape.as_slice() && !same_but_unit_dims(want, &src.shape) {
                return Err(CheckpointError::Shape {
                    part,
                    name: name.to_string(),
                    key: src.key.clone(),
                    file: file.clone(),
                    expected: want.into(),
                    found: src.shape.as_slice().into(),
                });
            }
        }
        let load_err = |source: candle_core::Error| CheckpointError::Load {
            part,
            name: name.to_string(),
            key: src.key.clone(),
            file: file.clone(),
            source: Box::new(source),
        };
        let t = self.load(src, dev).map_err(load_err)?;
        let t = match self.deltas.get(name) {
            Some(deltas) => {
                let mut w = t.to_dtype(DType::F32).map_err(load_err)?;
                for d in deltas {
                    w = d.apply(&w).map_err(|source| {
                        CheckpointError::Lora(lora::LoraError::Merge {
                            file: d.file.clone(),
                            key: d.key.clone(),
                            target: name.to_string(),
                            source: Box::new(source),
                        })
                    })?;
                }
                w
            }
            None => t,
        };
        let t = match shape {
            Some(s) if s.dims() != t.dims() => t.reshape(s.clone()),
            _ => Ok(t),
        };
        t.and_then(|t| t.to_dtype(dtype))
            .and_then(|t| t.to_device(dev))
            .map_err(load_err)
    }

    /// The served tensor, in the stored dtype (or f32 for dtypes converted on the CPU), on `dev`
    /// (or the CPU for those dtypes).
    fn load(&self, src: &Served, dev: &Device) -> candle_core::Result<Tensor> {
        let view = self.files.mmaps[src.file].get(&src.key)?;
        let stored_dtype = DType::try_from(view.dtype())?;
        let stored = view.shape().to_vec();
        let data = view.data();
        let on_cpu = convert_on_cpu(stored_dtype);
        let load_dev = if on_cpu { &Device::Cpu } else { dev };
        let t = match src.op {
            Op::Rows { start, len } => {
                let row_elems: usize = stored[1..].iter().product();
                let row_bytes = row_elems * stored_dtype.size_in_bytes();
                let bytes = data
                    .get(start * row_bytes..(start + len) * row_bytes)
                    .ok_or_else(|| {
                        candle_core::Error::msg(format!(
                            "rows {start}..{} out of range",
                            start + len
                        ))
                    })?;
                let mut shape = stored.clone();
                shape[0] = len;
                Tensor::from_raw_buffer(bytes, stored_dtype, &shape, load_dev)?
            }
            Op::Whole | Op::Transpose => {
                Tensor::from_raw_buffer(data, stored_dtype, &stored, load_dev)?
            }
        };
        let t = if on_cpu { t.to_dtype(DType::F32)? } else { t };
        let t = match src.op {
            Op::Transpose => t.t()?.contiguous()?,
            _ => t,
        };
        if t.dims() != src.shape.as_slice() {
            t.reshape(src.shape.clone())
        } else {
            Ok(t)
        }
    }
}

impl SimpleBackend for Backend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.fetch(name, Some(&s), dtype, dev)
            .map_err(candle_core::Error::wrap)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.fetch(name, None, dtype, dev)
            .map_err(candle_core::Error::wrap)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.served.contains_key(name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const FAMILIES: [&str; 5] = ["sd15", "sd21", "sdxl", "sdxl_refiner", "flux"];

    /// tests/fixtures/diffusion (made by scripts/make-diffusion-fixture.py and
    /// scripts/make-diffusion-keys.py); `REELSMITH_DIFFUSION_FIXTURES` points elsewhere.
    pub(crate) fn fixture_dir() -> PathBuf {
        std::env::var_os("REELSMITH_DIFFUSION_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/diffusion")
            })
    }

    pub(crate) fn fixture(name: &str) -> PathBuf {
        let p = fixture_dir().join(name);
        assert!(
            p.exists(),
            "missing fixture {} (scripts/make-diffusion-fixture.py, scripts/make-diffusion-keys.py)",
            p.display()
        );
        p
    }

    /// A fixture JSON; Python's json writes `-Infinity`/`NaN` (scheduler configs), read as null.
    pub(crate) fn read_json(name: &str) -> Value {
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        let text = regex::Regex::new(r"-?\bInfinity\b|\bNaN\b")
            .unwrap()
            .replace_all(&text, "null");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub(crate) fn family_files(family: &str) -> Vec<PathBuf> {
        match family {
            "flux" => [
                "flux1-schnell.safetensors",
                "ae.safetensors",
                "clip_l.safetensors",
                "t5xxl.safetensors",
            ]
            .iter()
            .map(|f| fixture(f))
            .collect(),
            f => vec![fixture(&format!("{f}.safetensors"))],
        }
    }

    pub(crate) fn open(family: &str) -> Checkpoint {
        Checkpoint::open(&family_files(family)).unwrap()
    }

    /// The part's config from `<family>.json` (diffusers pipeline component names).
    pub(crate) fn config(meta: &Value, part: Part) -> Value {
        let field = match part {
            Part::Unet => "unet",
            Part::Vae | Part::FluxVae => "vae",
            Part::TextEncoder => "text_encoder",
            Part::TextEncoder2 | Part::T5 => "text_encoder_2",
            Part::FluxTransformer => "transformer",
        };
        meta.get(field).cloned().unwrap_or(Value::Null)
    }

    pub(crate) fn part_named(name: &str) -> Part {
        *Part::ALL
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("unknown part {name}"))
    }

    /// `<family>.keys.json`: {part: {name: shape}} from diffusers'/transformers' converters.
    fn expected_keys(family: &str) -> BTreeMap<Part, BTreeMap<String, Vec<usize>>> {
        let mut v = read_json(&format!("{family}.keys.json"));
        v.as_object_mut().unwrap().remove("fingerprint");
        let v: BTreeMap<String, BTreeMap<String, Vec<usize>>> = serde_json::from_value(v).unwrap();
        v.into_iter()
            .map(|(p, names)| (part_named(&p), names))
            .collect()
    }

    /// `<family>.keys.json` "fingerprint": {part: {name: Σ x_i·((i mod 97)/97 − 1/2)}}.
    fn expected_fingerprints(family: &str) -> BTreeMap<Part, BTreeMap<String, f64>> {
        let v = read_json(&format!("{family}.keys.json"))["fingerprint"].clone();
        let v: BTreeMap<String, BTreeMap<String, f64>> = serde_json::from_value(v).unwrap();
        v.into_iter()
            .map(|(p, names)| (part_named(&p), names))
            .collect()
    }

    /// (fingerprint, Σ |x_i·w_i|) of a tensor, as scripts/make-diffusion-keys.py computes it.
    fn fingerprint(t: &Tensor) -> (f64, f64) {
        let v: Vec<f64> = t
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        v.iter().enumerate().fold((0.0, 0.0), |(s, a), (i, x)| {
            let w = (i % 97) as f64 / 97.0 - 0.5;
            (s + x * w, a + (x * w).abs())
        })
    }

    pub(crate) fn rel_max(got: &Tensor, want: &Tensor) -> f32 {
        let d = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let m = want
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        d / m.max(f32::MIN_POSITIVE)
    }

    /// The f32 CPU weights of `part`, configured from the family's JSON, without LoRAs.
    fn part_vb(ck: &Checkpoint, meta: &Value, part: Part) -> VarBuilder<'static> {
        ck.var_builder(part, &config(meta, part), &[], DType::F32, &Device::Cpu)
            .unwrap()
    }

    fn raw(ck: &Checkpoint, key: &str) -> Tensor {
        let (file, _) = ck.files.index[key];
        ck.files.mmaps[file]
            .load(key, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    }

    /// Tensors no network uses, per family: the CLIP `position_ids` buffer, OpenCLIP's
    /// `logit_scale`, and SD 2.x's last resblock and text_projection (diffusers drops them too).
    fn expected_unused(family: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        match family {
            "sd15" => {
                out.insert(
                    "cond_stage_model.transformer.text_model.embeddings.position_ids".to_string(),
                );
            }
            "sd21" => {
                let p = "cond_stage_model.model.";
                out.insert(format!("{p}logit_scale"));
                out.insert(format!("{p}text_projection"));
                for w in ["weight", "bias"] {
                    for m in [
                        "attn.in_proj",
                        "attn.out_proj",
                        "ln_1",
                        "ln_2",
                        "mlp.c_fc",
                        "mlp.c_proj",
                    ] {
                        let key = if m == "attn.in_proj" {
                            format!("{p}transformer.resblocks.23.attn.in_proj_{w}")
                        } else {
                            format!("{p}transformer.resblocks.23.{m}.{w}")
                        };
                        out.insert(key);
                    }
                }
            }
            "sdxl" => {
                out.insert(
                    "conditioner.embedders.0.transformer.text_model.embeddings.position_ids"
                        .to_string(),
                );
                out.insert("conditioner.embedders.1.model.logit_scale".to_string());
            }
            "sdxl_refiner" => {
                out.insert("conditioner.embedders.0.model.logit_scale".to_string());
            }
            _ => {}
        }
        out
    }

    #[test]
    fn served_names_and_shapes_equal_the_diffusers_converters() {
        for family in FAMILIES {
            let ck = open(family);
            let meta = read_json(&format!("{family}.json"));
            let expected = expected_keys(family);
            for (part, want) in &expected {
                let map = ck.part_map(*part, &config(&meta, *part)).unwrap();
                let got: BTreeMap<String, Vec<usize>> = map
                    .served
                    .iter()
                    .map(|(n, s)| (n.clone(), s.shape.clone()))
                    .collect();
                let missing: Vec<_> = want
                    .keys()
                    .filter(|k| !got.contains_key(*k))
                    .take(5)
                    .collect();
                let extra: Vec<_> = got
                    .keys()
                    .filter(|k| !want.contains_key(*k))
                    .take(5)
                    .collect();
                let shapes: Vec<_> = want
                    .iter()
                    .filter(|(k, s)| got.get(*k).is_some_and(|g| g != *s))
                    .map(|(k, s)| format!("{k}: want {s:?} got {:?}", got[k]))
                    .take(5)
                    .collect();
                assert!(
                    missing.is_empty() && extra.is_empty() && shapes.is_empty(),
                    "{family} {part}: missing {missing:?}, extra {extra:?}, shapes {shapes:?}"
                );
                assert_eq!(&got, want);
            }
            let parts: BTreeSet<Part> = ck.parts().into_iter().collect();
            let want: BTreeSet<Part> = expected.keys().copied().collect();
            assert_eq!(parts, want, "{family}: parts()");
        }
    }

    #[test]
    fn every_checkpoint_tensor_is_used_by_some_part() {
        for family in FAMILIES {
            let ck = open(family);
            let meta = read_json(&format!("{family}.json"));
            let mut used = BTreeSet::new();
            for part in ck.parts() {
                let map = ck.part_map(part, &config(&meta, part)).unwrap();
                used.extend(map.served.values().map(|s| s.key.clone()));
            }
            let unused: BTreeSet<String> = ck
                .files
                .index
                .keys()
                .filter(|k| !used.contains(*k))
                .cloned()
                .collect();
            assert_eq!(
                unused,
                expected_unused(family),
                "{family}: tensors no part serves"
            );
        }
    }

    #[test]
    fn reverse_map_gives_the_source_key_of_every_served_name() {
        for family in FAMILIES {
            let ck = open(family);
            let meta = read_json(&format!("{family}.json"));
            for part in ck.parts() {
                let map = ck.part_map(part, &config(&meta, part)).unwrap();
                for (name, s) in &map.served {
                    assert_eq!(
                        map.expected_key(&ck.files, name).as_deref(),
                        Some(s.key.as_str()),
                        "{family} {part} {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_served_tensor_loads_with_the_requested_shape_and_the_source_values() {
        for family in FAMILIES {
            let ck = open(family);
            let meta = read_json(&format!("{family}.json"));
            for (part, names) in expected_keys(family) {
                let cfg = config(&meta, part);
                let map = ck.part_map(part, &cfg).unwrap();
                let vb = ck
                    .var_builder(part, &cfg, &[], DType::F32, &Device::Cpu)
                    .unwrap();
                for (name, shape) in names {
                    let t = vb.get(shape.clone(), &name).unwrap();
                    assert_eq!(t.dims(), shape.as_slice());
                    assert_eq!(t.dtype(), DType::F32);
                    let src = &map.served[&name];
                    let r = raw(&ck, &src.key);
                    let want = match src.op {
                        Op::Whole => r.reshape(shape.clone()).unwrap(),
                        Op::Rows { start, len } => r.narrow(0, start, len).unwrap(),
                        Op::Transpose => r.t().unwrap(),
                    };
                    assert_eq!(
                        (&t - &want)
                            .unwrap()
                            .abs()
                            .unwrap()
                            .max_all()
                            .unwrap()
                            .to_scalar::<f32>()
                            .unwrap(),
                        0.0,
                        "{family} {part} {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn served_values_equal_the_diffusers_converters() {
        for family in FAMILIES {
            let ck = open(family);
            let meta = read_json(&format!("{family}.json"));
            let shapes = expected_keys(family);
            for (part, prints) in expected_fingerprints(family) {
                let cfg = config(&meta, part);
                let vb = ck
                    .var_builder(part, &cfg, &[], DType::F32, &Device::Cpu)
                    .unwrap();
                assert_eq!(prints.len(), shapes[&part].len());
                for (name, want) in prints {
                    let t = vb.get(shapes[&part][&name].clone(), &name).unwrap();
                    let (got, scale) = fingerprint(&t);
                    assert!(
                        (got - want).abs() <= 1e-9 * scale + 1e-12,
                        "{family} {part} {name}: fingerprint {got} (diffusers {want})"
                    );
                }
            }
        }
    }

    #[test]
    fn open_clip_fused_qkv_is_split_and_text_projection_transposed() {
        let ck = open("sdxl");
        let meta = read_json("sdxl.json");
        let vb = part_vb(&ck, &meta, Part::TextEncoder2);
        let l = "text_model.encoder.layers.1.self_attn";
        let q = vb.get((32, 32), &format!("{l}.q_proj.weight")).unwrap();
        let k = vb.get((32, 32), &format!("{l}.k_proj.weight")).unwrap();
        let v = vb.get((32, 32), &format!("{l}.v_proj.weight")).unwrap();
        let fused = raw(
            &ck,
            "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight",
        );
        assert_eq!(rel_max(&Tensor::cat(&[q, k, v], 0).unwrap(), &fused), 0.0);
        let qb = vb.get(32, &format!("{l}.q_proj.bias")).unwrap();
        let vb_ = vb.get(32, &format!("{l}.v_proj.bias")).unwrap();
        let fused_b = raw(
            &ck,
            "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_bias",
        );
        assert_eq!(rel_max(&qb, &fused_b.narrow(0, 0, 32).unwrap()), 0.0);
        assert_eq!(rel_max(&vb_, &fused_b.narrow(0, 64, 32).unwrap()), 0.0);
        // OpenCLIP stores the projection for x @ P; the HF Linear weight is its transpose.
        let p = vb.get((32, 32), "text_projection.weight").unwrap();
        let stored = raw(&ck, "conditioner.embedders.1.model.text_projection");
        assert_eq!(rel_max(&p, &stored.t().unwrap()), 0.0);
        assert!(
            rel_max(&p, &stored) > 0.1,
            "the tiny projection is not symmetric"
        );
    }

    #[test]
    fn vae_attention_weights_are_served_as_linear_or_as_1x1_conv() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let vb = part_vb(&ck, &meta, Part::Vae);
        let name = "decoder.mid_block.attentions.0.to_q.weight";
        let lin = vb.get((32, 32), name).unwrap();
        let conv = vb.get((32, 32, 1, 1), name).unwrap();
        assert_eq!(rel_max(&conv.reshape((32, 32)).unwrap(), &lin), 0.0);
        let stored = raw(&ck, "first_stage_model.decoder.mid.attn_1.q.weight");
        assert_eq!(stored.dims(), &[32, 32, 1, 1]);
        assert_eq!(rel_max(&conv, &stored), 0.0);
        // the same element count in another arrangement is a shape error, not a silent reshape
        let err = vb.get((16, 64), name).unwrap_err().to_string();
        assert!(
            err.contains("[16, 64]") && err.contains("[32, 32]"),
            "{err}"
        );
    }

    #[test]
    fn wrong_shape_error_names_network_name_key_and_file() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let vb = part_vb(&ck, &meta, Part::Unet);
        let err = vb
            .get((64, 4, 3, 3), "conv_in.weight")
            .unwrap_err()
            .to_string();
        for want in [
            "unet",
            "`conv_in.weight`",
            "model.diffusion_model.input_blocks.0.0.weight",
            "sd15.safetensors",
            "[64, 4, 3, 3]",
            "[32, 4, 3, 3]",
        ] {
            assert!(err.contains(want), "`{want}` not in: {err}");
        }
    }

    #[test]
    fn missing_tensor_error_names_the_key_it_was_looked_up_as() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let vb = part_vb(&ck, &meta, Part::Unet);
        // an SDXL-only tensor asked of an SD 1.5 file
        let err = vb
            .get((1280, 2816), "add_embedding.linear_1.weight")
            .unwrap_err()
            .to_string();
        for want in [
            "unet",
            "`add_embedding.linear_1.weight`",
            "`model.diffusion_model.label_emb.0.0.weight`",
            "sd15.safetensors",
        ] {
            assert!(err.contains(want), "`{want}` not in: {err}");
        }
        let err = vb
            .get((64, 64), "down_blocks.3.attentions.0.proj_in.weight")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.diffusion_model.input_blocks.7.1.proj_in.weight"),
            "{err}"
        );
        let vb = part_vb(&ck, &meta, Part::TextEncoder);
        assert!(!vb.contains_tensor("text_projection.weight"));
        let err = vb
            .get((32, 32), "text_model.encoder.layers.7.mlp.fc1.weight")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cond_stage_model.transformer.text_model.encoder.layers.7.mlp.fc1.weight"),
            "{err}"
        );
    }

    #[test]
    fn asking_for_a_part_the_files_do_not_hold_says_what_to_ask_for() {
        let sd21 = open("sd21");
        let err = sd21
            .part_map(Part::TextEncoder2, &Value::Null)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("SD 2.x has a single text encoder: ask for text_encoder"),
            "{err}"
        );
        let refiner = open("sdxl_refiner");
        let err = refiner
            .part_map(Part::TextEncoder, &Value::Null)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("text_encoder_2"), "{err}");
        let flux = Checkpoint::open(&[fixture("flux1-schnell.safetensors")]).unwrap();
        let err = flux
            .part_map(Part::Unet, &Value::Null)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("flux_transformer") && err.contains("flux1-schnell.safetensors"),
            "{err}"
        );
        let sd15 = open("sd15");
        let err = sd15
            .part_map(Part::T5, &Value::Null)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("t5") && err.contains("sd15.safetensors"),
            "{err}"
        );
        assert_eq!(sd15.parts(), vec![Part::Unet, Part::Vae, Part::TextEncoder]);
        assert_eq!(
            open("flux").parts(),
            vec![
                Part::TextEncoder,
                Part::FluxTransformer,
                Part::FluxVae,
                Part::T5
            ]
        );
    }

    #[test]
    fn a_key_in_two_files_is_rejected() {
        let f = fixture("sd15.safetensors");
        let err = Checkpoint::open(&[f.clone(), f]).err().unwrap().to_string();
        assert!(err.contains("is in both"), "{err}");
        assert!(matches!(
            Checkpoint::open::<PathBuf>(&[]),
            Err(CheckpointError::NoFiles)
        ));
    }

    #[test]
    fn structure_is_inferred_from_the_keys_without_a_config() {
        for family in ["sd15", "sdxl", "sdxl_refiner"] {
            let ck = open(family);
            let meta = read_json(&format!("{family}.json"));
            for part in [Part::Unet, Part::Vae] {
                let with = ck.part_map(part, &config(&meta, part)).unwrap();
                let without = ck.part_map(part, &Value::Null).unwrap();
                let names = |m: &PartMap| {
                    m.served
                        .iter()
                        .map(|(n, s)| (n.clone(), s.key.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(names(&with), names(&without), "{family} {part}");
                for name in with.served.keys() {
                    assert_eq!(
                        with.expected_key(&ck.files, name),
                        without.expected_key(&ck.files, name)
                    );
                }
            }
        }
    }

    /// Writes every served tensor of `part` under its served name (optionally renamed) to a file.
    fn write_served(
        ck: &Checkpoint,
        part: Part,
        cfg: &Value,
        rename: impl Fn(&str) -> String,
        path: &Path,
    ) {
        let map = ck.part_map(part, cfg).unwrap();
        let vb = ck
            .var_builder(part, cfg, &[], DType::F16, &Device::Cpu)
            .unwrap();
        let tensors: HashMap<String, Tensor> = map
            .served
            .iter()
            .map(|(n, s)| (rename(n), vb.get(s.shape.clone(), n).unwrap()))
            .collect();
        candle_core::safetensors::save(&tensors, path).unwrap();
    }

    #[test]
    fn diffusers_and_transformers_layout_files_are_served_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let meta = read_json("sdxl.json");
        let ck = open("sdxl");
        let cases = [
            (
                Part::Unet,
                "unet.safetensors",
                (|n: &str| n.to_string()) as fn(&str) -> String,
            ),
            (Part::Vae, "vae.safetensors", |n: &str| n.to_string()),
            // transformers 5 saves CLIPTextModel without `text_model.`
            (Part::TextEncoder, "te.safetensors", |n: &str| {
                n.trim_start_matches("text_model.").to_string()
            }),
            (Part::TextEncoder2, "te2.safetensors", |n: &str| {
                n.to_string()
            }),
        ];
        for (part, file, rename) in cases {
            let cfg = config(&meta, part);
            let path = dir.path().join(file);
            write_served(&ck, part, &cfg, rename, &path);
            let other = Checkpoint::open(&[&path]).unwrap();
            let a = ck.part_map(part, &cfg).unwrap();
            let b = other.part_map(part, &cfg).unwrap();
            let shapes = |m: &PartMap| {
                m.served
                    .iter()
                    .map(|(n, s)| (n.clone(), s.shape.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(shapes(&a), shapes(&b), "{part} from {file}");
            let vb = other
                .var_builder(part, &cfg, &[], DType::F32, &Device::Cpu)
                .unwrap();
            let vb0 = ck
                .var_builder(part, &cfg, &[], DType::F32, &Device::Cpu)
                .unwrap();
            for (n, s) in a.served.iter().take(20) {
                let x = vb.get(s.shape.clone(), n).unwrap();
                assert_eq!(
                    rel_max(&x, &vb0.get(s.shape.clone(), n).unwrap()),
                    0.0,
                    "{part} {n}"
                );
            }
        }
    }

    /// `torch.tensor([[0.5, -1.75, 448, -2**-9], [3, 0, 240, -0.0625]]).to(torch.float8_e4m3fn)`
    /// saved by safetensors.torch.save_file (torch 2.15.0, safetensors 0.8.0): the exact bytes.
    const TORCH_F8_FILE_HEADER: &str = r#"{"encoder.block.0.layer.0.SelfAttention.q.weight":{"dtype":"F8_E4M3","shape":[2,4],"data_offsets":[0,8]}}       "#;
    const TORCH_F8_DATA: [u8; 8] = [0x30, 0xbe, 0x7e, 0x81, 0x44, 0x00, 0x77, 0x98];

    #[test]
    fn f8_e4m3_weights_load_converted_to_the_requested_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t5xxl_fp8_e4m3fn.safetensors");
        let mut bytes = (TORCH_F8_FILE_HEADER.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(TORCH_F8_FILE_HEADER.as_bytes());
        bytes.extend_from_slice(&TORCH_F8_DATA);
        assert_eq!(bytes.len(), 128, "the size torch wrote");
        std::fs::write(&path, bytes).unwrap();
        let ck = Checkpoint::open(&[&path]).unwrap();
        assert_eq!(ck.parts(), vec![Part::T5]);
        let want = [0.5f32, -1.75, 448.0, -1.0 / 512.0, 3.0, 0.0, 240.0, -0.0625];
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let vb = ck
                .var_builder(Part::T5, &Value::Null, &[], dtype, &Device::Cpu)
                .unwrap();
            let t = vb
                .get((2, 4), "encoder.block.0.layer.0.SelfAttention.q.weight")
                .unwrap();
            assert_eq!(t.dtype(), dtype);
            let got: Vec<f32> = t
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(got, want, "{dtype:?}");
        }
        // ComfyUI "scaled fp8": a scale per weight, refused rather than served unscaled
        let scaled = dir.path().join("t5xxl_fp8_e4m3fn_scaled.safetensors");
        let tensors: HashMap<String, Tensor> = [
            (
                "encoder.block.0.layer.0.SelfAttention.q.weight",
                Tensor::new(&[[1f32, 2.0]], &Device::Cpu).unwrap(),
            ),
            (
                "encoder.block.0.layer.0.SelfAttention.q.scale_weight",
                Tensor::new(&[0.5f32], &Device::Cpu).unwrap(),
            ),
            ("scaled_fp8", Tensor::new(&[0f32], &Device::Cpu).unwrap()),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_string(), t.to_dtype(DType::F8E4M3).unwrap()))
        .collect();
        candle_core::safetensors::save(&tensors, &scaled).unwrap();
        let ck = Checkpoint::open(&[&scaled]).unwrap();
        let err = ck
            .var_builder(Part::T5, &Value::Null, &[], DType::F32, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("scaled fp8") && err.contains("t5xxl_fp8_e4m3fn_scaled.safetensors"),
            "{err}"
        );
    }
}
