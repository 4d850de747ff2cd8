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

mod names;
use names::*;

#[cfg(test)]
pub(crate) mod tests;
