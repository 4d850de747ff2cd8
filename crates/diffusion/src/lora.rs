//! LoRA adapters merged into the weights at load time.
//!
//! A LoRA file holds, per adapted module, a down (`A`, `[r, in]` or `[r, in, kh, kw]`) and an up
//! (`B`, `[out, r]` or `[out, r, 1, 1]`) matrix and optionally an `alpha`. When the
//! [`Checkpoint`](crate::checkpoint::Checkpoint) backend fetches a weight `W` that some LoRA
//! adapts, it returns `W + Σ scale · (up @ down)` (computed in f32, then cast), with
//! `scale = weight · alpha / rank` (`alpha` defaults to the rank).
//!
//! Formats read:
//! - **kohya** (sd-scripts and most trainers): `lora_unet_<module>` / `lora_te_` / `lora_te1_` /
//!   `lora_te2_` / `lora_te3_` (Flux T5) + `.lora_down.weight`, `.lora_up.weight`, `.alpha`, where
//!   `<module>` is the module path with `.` replaced by `_`. Because that replacement is
//!   ambiguous, keys are matched the other way round: every weight the part serves is turned
//!   into its kohya form and looked up. UNet modules match diffusers names (SD 1.x/2.x LoRAs) or
//!   the LDM/SGM names of the checkpoint (`lora_unet_input_blocks_4_1_…`, SDXL LoRAs); Flux
//!   modules match BFL names (`lora_unet_double_blocks_0_img_attn_qkv`) or diffusers names
//!   (`lora_transformer_…`). Conv LoRAs (LoCon) on resnets are merged as convolutions.
//! - **diffusers / peft**: `unet.` / `text_encoder.` / `text_encoder_2.` / `transformer.` +
//!   module + `.lora_A.weight` / `.lora_B.weight` (also the older `.lora.down/up`,
//!   `.lora_linear_layer.down/up` and `processor.to_q_lora.down/up` spellings), alpha from
//!   `.alpha` tensors, else from the `lora_adapter_metadata` header entry (`<prefix>.lora_alpha`,
//!   `alpha_pattern`, `use_rslora`), else alpha = rank. `diffusion_model.` + checkpoint names
//!   (LDM or BFL) is read too. diffusers Flux LoRAs (`transformer.transformer_blocks.0.attn.to_q`)
//!   target slices of BFL's fused weights: their deltas are added into the right rows
//!   (q/k/v thirds of `img_attn.qkv`, `linear1`'s q/k/v/mlp parts; `norm_out` with its
//!   scale/shift halves swapped).
//!
//! Which part a LoRA module is for follows its prefix: `lora_unet_`/`unet.`/`transformer.`/
//! `diffusion_model.` → the UNet or Flux transformer; `lora_te_`/`lora_te1_`/`text_encoder.` →
//! [`Part::TextEncoder`]; `lora_te2_`/`text_encoder_2.` → [`Part::TextEncoder2`]; `lora_te3_` and
//! (on Flux) `text_encoder_2.` → [`Part::T5`]. When a part is loaded, every module aimed at it must
//! match one of its weights (modules on weights the checkpoint has but the configured network
//! does not use, such as SD 2.x's dropped last text-encoder block, are skipped), else loading
//! fails naming the file and some of the keys, asking whether the LoRA is for another model
//! family; keys of no known format (LoHa, LoKr, DoRA, …) fail every load.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use crate::checkpoint::{Op, Part, PartMap};

/// A LoRA file and the weight it is merged with.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub path: PathBuf,
    pub weight: f32,
}

impl LoraSpec {
    pub fn new(path: impl Into<PathBuf>, weight: f32) -> Self {
        LoraSpec {
            path: path.into(),
            weight,
        }
    }
}

/// Why a LoRA could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("cannot read LoRA {file}: {source}")]
    Read {
        file: PathBuf,
        source: Box<candle_core::Error>,
    },
    #[error("cannot read the header of LoRA {file}: {message}")]
    Header { file: PathBuf, message: String },
    #[error("LoRA {file}: {message}")]
    Format { file: PathBuf, message: String },
    #[error("LoRA {file}: {count} key(s) of no supported LoRA format ({examples}); LoRA (kohya or diffusers/peft) is supported, LoHa/LoKr/DoRA are not")]
    Unsupported {
        file: PathBuf,
        count: usize,
        examples: String,
    },
    #[error("LoRA {file} matches none of the {part} weights of this checkpoint ({count} modules, e.g. {examples}{detail}): is it for another model family?")]
    NothingMatched {
        file: PathBuf,
        part: Part,
        count: usize,
        examples: String,
        /// The first shape mismatch, if any module named a weight but did not fit it.
        detail: String,
    },
    #[error("LoRA {file}: {count} of its {total} {part} modules match no {part} weight of this checkpoint (is it for another model family?): {examples}")]
    Unmatched {
        file: PathBuf,
        part: Part,
        count: usize,
        total: usize,
        examples: String,
    },
    #[error("LoRA {file}: `{key}` ({shapes}) does not fit {part} weight `{target}`")]
    Shape {
        file: PathBuf,
        part: Part,
        key: String,
        target: String,
        /// "up [..], down [..]; weight [..]"
        shapes: String,
    },
    #[error("LoRA {file}: merging `{key}` into `{target}`: {source}")]
    Merge {
        file: PathBuf,
        key: String,
        target: String,
        source: Box<candle_core::Error>,
    },
}

/// A slice of rows of a target weight that a delta's rows `from..from + len` are added to
/// (at rows `to..to + len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowPiece {
    pub from: usize,
    pub to: usize,
    pub len: usize,
}

/// One LoRA module resolved to a served weight.
#[derive(Debug, Clone)]
pub(crate) struct LoraDelta {
    pub file: PathBuf,
    /// The module's key in the LoRA file (without `.lora_down.weight` etc.).
    pub key: String,
    up: Tensor,
    down: Tensor,
    pub scale: f64,
    pieces: Option<Vec<RowPiece>>,
}

impl LoraDelta {
    /// `w + scale · (up @ down)`, `w` being the served weight in f32.
    pub(crate) fn apply(&self, w: &Tensor) -> candle_core::Result<Tensor> {
        let dev = w.device();
        let up = self.up.to_device(dev)?.to_dtype(DType::F32)?;
        let down = self.down.to_device(dev)?.to_dtype(DType::F32)?;
        let rank = down.dim(0)?;
        let out = up.dim(0)?;
        let delta = (up
            .reshape((out, rank))?
            .matmul(&down.reshape((rank, ()))?)?
            * self.scale)?;
        match &self.pieces {
            None => w + delta.reshape(w.shape())?,
            Some(pieces) => {
                let rows = w.dim(0)?;
                let mut acc = w.reshape((rows, ()))?;
                for p in pieces {
                    let mid = (acc.narrow(0, p.to, p.len)? + delta.narrow(0, p.from, p.len)?)?;
                    let mut chunks = Vec::with_capacity(3);
                    if p.to > 0 {
                        chunks.push(acc.narrow(0, 0, p.to)?);
                    }
                    chunks.push(mid);
                    if p.to + p.len < rows {
                        chunks.push(acc.narrow(0, p.to + p.len, rows - p.to - p.len)?);
                    }
                    acc = Tensor::cat(&chunks, 0)?;
                }
                acc.reshape(w.shape())
            }
        }
    }
}

/// The LoRA deltas of `loras` that apply to the part of `map`, keyed by served name.
pub(crate) fn resolve(
    loras: &[LoraSpec],
    map: &PartMap,
) -> Result<HashMap<String, Vec<LoraDelta>>, LoraError> {
    let mut out: HashMap<String, Vec<LoraDelta>> = HashMap::new();
    if loras.is_empty() {
        return Ok(out);
    }
    let targets = Targets::new(map);
    for spec in loras {
        let lora = LoraFile::read(&spec.path)?;
        let mut aimed = 0usize;
        let mut unmatched = Vec::new();
        let mut misfits = Vec::new();
        let mut fitted = Vec::new();
        let mut fitted_or_skipped = 0usize;
        for (key, module) in &lora.modules {
            let Some(c) = component(key) else {
                unreachable!("modules without a known prefix are rejected by LoraFile::read")
            };
            if !accepts(map.part, c.format, c.name) {
                // A denoiser module of the other family (a Flux LoRA on an SD UNet or back).
                if is_denoiser(map.part) && is_denoiser_component(c.format, c.name) {
                    aimed += 1;
                    unmatched.push(key.clone());
                }
                continue;
            }
            aimed += 1;
            let target = match targets.lookup(map.part, &c) {
                Lookup::Target(t) => t,
                Lookup::Unused => {
                    fitted_or_skipped += 1;
                    continue;
                }
                Lookup::None => {
                    unmatched.push(key.clone());
                    continue;
                }
            };
            match lora.delta(spec, key, module, &c, target, map.part) {
                Ok(delta) => fitted.push((target.name.clone(), delta)),
                Err(e) => misfits.push((key.clone(), e)),
            }
        }
        if aimed > 0 && fitted.is_empty() && fitted_or_skipped == 0 {
            let keys: Vec<String> = unmatched
                .iter()
                .cloned()
                .chain(misfits.iter().map(|(k, _)| k.clone()))
                .collect();
            let detail = misfits
                .first()
                .map(|(_, e)| format!("; {e}"))
                .unwrap_or_default();
            return Err(LoraError::NothingMatched {
                file: spec.path.clone(),
                part: map.part,
                count: aimed,
                examples: examples(&keys),
                detail,
            });
        }
        if !unmatched.is_empty() {
            return Err(LoraError::Unmatched {
                file: spec.path.clone(),
                part: map.part,
                count: unmatched.len(),
                total: aimed,
                examples: examples(&unmatched),
            });
        }
        if let Some((_, e)) = misfits.into_iter().next() {
            return Err(e);
        }
        for (name, delta) in fitted {
            out.entry(name).or_default().push(delta);
        }
    }
    Ok(out)
}

fn examples(keys: &[String]) -> String {
    let mut shown: Vec<String> = keys.iter().take(4).map(|k| format!("`{k}`")).collect();
    if keys.len() > 4 {
        shown.push(format!("… ({} more)", keys.len() - 4));
    }
    shown.join(", ")
}

// ---------------------------------------------------------------------------------------------
// Reading LoRA files
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Down,
    Up,
    Alpha,
}

#[derive(Debug, Default)]
struct Module {
    down: Option<Tensor>,
    up: Option<Tensor>,
    alpha: Option<f64>,
}

struct LoraFile {
    /// Module key (normalised, without the slot suffix) → tensors.
    modules: BTreeMap<String, Module>,
    /// The safetensors header's `__metadata__`.
    metadata: HashMap<String, String>,
}

/// Slot suffixes of the formats read (longest first where they overlap).
const SUFFIXES: [(&str, Slot); 11] = [
    (".lora_linear_layer.down.weight", Slot::Down),
    (".lora_linear_layer.up.weight", Slot::Up),
    (".lora_down.weight", Slot::Down),
    (".lora_up.weight", Slot::Up),
    (".lora_A.weight", Slot::Down),
    (".lora_B.weight", Slot::Up),
    (".lora.down.weight", Slot::Down),
    (".lora.up.weight", Slot::Up),
    ("_lora.down.weight", Slot::Down),
    ("_lora.up.weight", Slot::Up),
    (".alpha", Slot::Alpha),
];

/// Splits a LoRA key into (module, slot); old diffusers attention-processor names
/// (`attn1.processor.to_out_lora`) become module paths (`attn1.to_out.0`).
fn split_key(key: &str) -> Option<(String, Slot)> {
    let (suffix, slot) = SUFFIXES.iter().find(|(s, _)| key.ends_with(s))?;
    let module = &key[..key.len() - suffix.len()];
    let module = if suffix.starts_with('_') {
        let m = module.replace(".processor.", ".");
        if m.ends_with(".to_out") {
            format!("{m}.0")
        } else {
            m
        }
    } else {
        module.to_string()
    };
    Some((module, *slot))
}

impl LoraFile {
    fn read(path: &Path) -> Result<LoraFile, LoraError> {
        let metadata = read_metadata(path)?;
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|source| {
            LoraError::Read {
                file: path.to_path_buf(),
                source: Box::new(source),
            }
        })?;
        let mut modules: BTreeMap<String, Module> = BTreeMap::new();
        let mut unsupported = Vec::new();
        let mut keys: Vec<&String> = tensors.keys().collect();
        keys.sort();
        for key in keys {
            let t = &tensors[key];
            let parsed = split_key(key).filter(|(module, _)| component(module).is_some());
            let Some((module, slot)) = parsed else {
                unsupported.push(key.clone());
                continue;
            };
            let m = modules.entry(module).or_default();
            match slot {
                Slot::Down => m.down = Some(t.clone()),
                Slot::Up => m.up = Some(t.clone()),
                Slot::Alpha => {
                    let v = t
                        .to_dtype(DType::F64)
                        .and_then(|t| t.flatten_all())
                        .and_then(|t| t.to_vec1::<f64>())
                        .map_err(|source| LoraError::Read {
                            file: path.to_path_buf(),
                            source: Box::new(source),
                        })?;
                    m.alpha = v.first().copied();
                }
            }
        }
        if !unsupported.is_empty() {
            return Err(LoraError::Unsupported {
                file: path.to_path_buf(),
                count: unsupported.len(),
                examples: examples(&unsupported),
            });
        }
        // An alpha without matrices (kohya files sometimes keep them for skipped modules) is
        // harmless; a half pair is not.
        modules.retain(|_, m| m.down.is_some() || m.up.is_some());
        if modules.is_empty() {
            return Err(LoraError::Format {
                file: path.to_path_buf(),
                message:
                    "no LoRA weights in the file (no lora_down/lora_up or lora_A/lora_B tensors)"
                        .into(),
            });
        }
        for (key, m) in &modules {
            if m.down.is_none() || m.up.is_none() {
                return Err(LoraError::Format {
                    file: path.to_path_buf(),
                    message: format!("module `{key}` has only one of its down/up matrices"),
                });
            }
        }
        Ok(LoraFile { modules, metadata })
    }

    /// The delta of one module for `target`, with its scale and shapes checked.
    fn delta(
        &self,
        spec: &LoraSpec,
        key: &str,
        m: &Module,
        c: &Component<'_>,
        target: &Target,
        part: Part,
    ) -> Result<LoraDelta, LoraError> {
        let (Some(up), Some(down)) = (&m.up, &m.down) else {
            unreachable!("half pairs are rejected by LoraFile::read")
        };
        let shape_err = || LoraError::Shape {
            file: spec.path.clone(),
            part,
            key: key.to_string(),
            target: target.name.clone(),
            shapes: format!(
                "up {:?}, down {:?}; weight {:?}",
                up.dims(),
                down.dims(),
                target.shape
            ),
        };
        let (ud, dd) = (up.dims(), down.dims());
        if ud.len() < 2 || dd.len() < 2 || ud[2..].iter().any(|&d| d != 1) || ud[1] != dd[0] {
            return Err(shape_err());
        }
        let rank = dd[0];
        let cols: usize = dd[1..].iter().product();
        let target_rows = target.shape.first().copied().unwrap_or(0);
        let target_cols: usize = target.shape.iter().skip(1).product();
        let fits = match &target.pieces {
            None => ud[0] == target_rows && cols == target_cols,
            Some(pieces) => {
                cols == target_cols
                    && pieces
                        .iter()
                        .all(|p| p.from + p.len <= ud[0] && p.to + p.len <= target_rows)
                    && pieces.iter().map(|p| p.len).sum::<usize>() == ud[0]
            }
        };
        if !fits {
            return Err(shape_err());
        }
        let (alpha, rslora) = self.alpha(m, c, rank);
        let denom = if rslora {
            (rank as f64).sqrt()
        } else {
            rank as f64
        };
        Ok(LoraDelta {
            file: spec.path.clone(),
            key: key.to_string(),
            up: up.clone(),
            down: down.clone(),
            scale: spec.weight as f64 * alpha / denom,
            pieces: target.pieces.clone(),
        })
    }

    /// (alpha, use_rslora) of a module: its `.alpha` tensor, else the diffusers/peft header
    /// metadata, else kohya's `ss_network_alpha`, else the rank.
    fn alpha(&self, m: &Module, c: &Component<'_>, rank: usize) -> (f64, bool) {
        if let Some(a) = m.alpha {
            return (a, false);
        }
        if let Some(json) = self.metadata.get("lora_adapter_metadata") {
            if let Ok(Value::Object(meta)) = serde_json::from_str::<Value>(json) {
                let field = |f: &str| {
                    meta.get(&format!("{}.{f}", c.name))
                        .or_else(|| meta.get(f))
                        .cloned()
                };
                let rslora = field("use_rslora")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                if let Some(Value::Object(patterns)) = field("alpha_pattern") {
                    for (pattern, v) in &patterns {
                        let matches = regex::Regex::new(&format!(r"^(.*\.)?({pattern})$"))
                            .map(|re| re.is_match(c.module))
                            .unwrap_or(false);
                        if let (true, Some(a)) = (matches, v.as_f64()) {
                            return (a, rslora);
                        }
                    }
                }
                if let Some(a) = field("lora_alpha").and_then(|v| v.as_f64()) {
                    return (a, rslora);
                }
            }
        }
        if c.format == Format::Kohya {
            let num = |k: &str| {
                self.metadata
                    .get(k)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            if let (Some(a), Some(dim)) = (num("ss_network_alpha"), num("ss_network_dim")) {
                if dim as usize == rank {
                    return (a, false);
                }
            }
        }
        (rank as f64, false)
    }
}

/// The `__metadata__` of a safetensors header (empty when absent).
fn read_metadata(path: &Path) -> Result<HashMap<String, String>, LoraError> {
    let err = |message: String| LoraError::Header {
        file: path.to_path_buf(),
        message,
    };
    let mut f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| err(e.to_string()))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(err(format!(
            "header of {len} bytes: not a safetensors file"
        )));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|e| err(e.to_string()))?;
    let header: Value = serde_json::from_slice(&header).map_err(|e| err(e.to_string()))?;
    let mut out = HashMap::new();
    if let Some(Value::Object(meta)) = header.get("__metadata__") {
        for (k, v) in meta {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.to_string());
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Matching modules to served weights
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Kohya,
    Diffusers,
}

/// A module key split into its format, component and the module path inside the component.
struct Component<'a> {
    format: Format,
    name: &'static str,
    module: &'a str,
}

const KOHYA_PREFIXES: [(&str, &str); 6] = [
    ("lora_unet_", "unet"),
    ("lora_te1_", "te1"),
    ("lora_te2_", "te2"),
    ("lora_te3_", "te3"),
    ("lora_te_", "te1"),
    ("lora_transformer_", "transformer"),
];

const DIFFUSERS_PREFIXES: [(&str, &str); 5] = [
    ("unet.", "unet"),
    ("text_encoder_2.", "text_encoder_2"),
    ("text_encoder.", "text_encoder"),
    ("transformer.", "transformer"),
    ("diffusion_model.", "diffusion_model"),
];

fn component(key: &str) -> Option<Component<'_>> {
    for (format, prefixes) in [
        (Format::Kohya, &KOHYA_PREFIXES[..]),
        (Format::Diffusers, &DIFFUSERS_PREFIXES[..]),
    ] {
        for (prefix, name) in prefixes {
            if let Some(module) = key.strip_prefix(prefix) {
                return Some(Component {
                    format,
                    name,
                    module,
                });
            }
        }
    }
    None
}

/// Whether modules of a (format, component) are aimed at `part`.
fn accepts(part: Part, format: Format, name: &str) -> bool {
    use Format::{Diffusers as D, Kohya as K};
    matches!(
        (part, format, name),
        (Part::Unet, K, "unet")
            | (Part::Unet, D, "unet" | "diffusion_model")
            | (Part::FluxTransformer, K, "unet" | "transformer")
            | (Part::FluxTransformer, D, "transformer" | "diffusion_model")
            | (Part::TextEncoder, K, "te1")
            | (Part::TextEncoder, D, "text_encoder")
            | (Part::TextEncoder2, K, "te2")
            | (Part::TextEncoder2, D, "text_encoder_2")
            | (Part::T5, K, "te3")
            | (Part::T5, D, "text_encoder_2")
    )
}

fn is_denoiser(part: Part) -> bool {
    matches!(part, Part::Unet | Part::FluxTransformer)
}

fn is_denoiser_component(format: Format, name: &str) -> bool {
    matches!(
        (format, name),
        (Format::Kohya, "unet" | "transformer")
            | (
                Format::Diffusers,
                "unet" | "transformer" | "diffusion_model"
            )
    )
}

/// A served weight (or rows of one) a LoRA module can adapt.
#[derive(Debug, Clone)]
struct Target {
    /// Served name (with `.weight`).
    name: String,
    /// Served shape.
    shape: Vec<usize>,
    pieces: Option<Vec<RowPiece>>,
}

/// The module names of one part, by naming scheme.
struct Targets {
    /// diffusers/transformers module paths (and, for Flux, the diffusers aliases of BFL slices).
    diffusers: HashMap<String, Target>,
    /// Checkpoint module paths (LDM/SGM UNet, BFL Flux).
    source: HashMap<String, Target>,
    /// kohya forms of both (None: two modules share the form).
    kohya: HashMap<String, Option<Target>>,
    /// Module paths (and their kohya forms) of weights the checkpoint has but the network
    /// does not use.
    unused: HashSet<String>,
    unused_kohya: HashSet<String>,
}

enum Lookup<'a> {
    Target(&'a Target),
    /// A weight of the checkpoint the configured network does not use: skipped.
    Unused,
    None,
}

impl Targets {
    fn new(map: &PartMap) -> Targets {
        let mut diffusers = HashMap::new();
        let mut source = HashMap::new();
        for served in map.served.values() {
            let Some(module) = served.name.strip_suffix(".weight") else {
                continue;
            };
            let target = Target {
                name: served.name.clone(),
                shape: served.shape.clone(),
                pieces: None,
            };
            if matches!(map.part, Part::Unet | Part::FluxTransformer) && served.op == Op::Whole {
                if let Some(src) = map.stripped_key(served).strip_suffix(".weight") {
                    source.insert(src.to_string(), target.clone());
                }
            }
            diffusers.insert(module.to_string(), target);
        }
        if map.part == Part::FluxTransformer {
            for (alias, target) in flux_aliases(map) {
                diffusers.insert(alias, target);
            }
        }
        let mut kohya: HashMap<String, Option<Target>> = HashMap::new();
        for (module, target) in diffusers.iter().chain(source.iter()) {
            let form = module.replace('.', "_");
            match kohya.get(&form) {
                None => {
                    kohya.insert(form, Some(target.clone()));
                }
                Some(Some(existing))
                    if existing.name == target.name && existing.pieces == target.pieces => {}
                Some(_) => {
                    kohya.insert(form, None);
                }
            }
        }
        let unused: HashSet<String> = map
            .unused
            .iter()
            .filter_map(|n| n.strip_suffix(".weight"))
            .map(str::to_string)
            .collect();
        let unused_kohya = unused.iter().map(|m| m.replace('.', "_")).collect();
        Targets {
            unused,
            unused_kohya,
            diffusers,
            source,
            kohya,
        }
    }

    fn lookup(&self, part: Part, c: &Component<'_>) -> Lookup<'_> {
        let text = matches!(part, Part::TextEncoder | Part::TextEncoder2);
        let found = match c.format {
            Format::Kohya => self.kohya.get(c.module).and_then(Option::as_ref),
            Format::Diffusers => {
                let direct = if c.name == "diffusion_model" {
                    self.source
                        .get(c.module)
                        .or_else(|| self.diffusers.get(c.module))
                } else {
                    self.diffusers.get(c.module)
                };
                direct.or_else(|| {
                    text.then(|| self.diffusers.get(&format!("text_model.{}", c.module)))
                        .flatten()
                })
            }
        };
        if let Some(t) = found {
            return Lookup::Target(t);
        }
        let unused = match c.format {
            Format::Kohya => self.unused_kohya.contains(c.module),
            Format::Diffusers => {
                self.unused.contains(c.module)
                    || (text && self.unused.contains(&format!("text_model.{}", c.module)))
            }
        };
        if unused {
            Lookup::Unused
        } else {
            Lookup::None
        }
    }
}

/// diffusers Flux module paths → the BFL weights (and rows) they are slices of.
fn flux_aliases(map: &PartMap) -> Vec<(String, Target)> {
    let shape = |name: &str| map.served.get(name).map(|s| s.shape.clone());
    let mut out = Vec::new();
    let mut add = |alias: String, bfl: String, pieces: Option<Vec<RowPiece>>| {
        if let Some(shape) = shape(&bfl) {
            out.push((
                alias,
                Target {
                    name: bfl,
                    shape,
                    pieces,
                },
            ));
        }
    };
    let rows = |from: usize, len: usize| {
        Some(vec![RowPiece {
            from: 0,
            to: from,
            len,
        }])
    };
    let mut i = 0;
    while let Some(qkv) = shape(&format!("double_blocks.{i}.img_attn.qkv.weight")) {
        let d = format!("transformer_blocks.{i}");
        let b = format!("double_blocks.{i}");
        let h = qkv[0] / 3;
        for (j, (img, txt)) in [
            ("to_q", "add_q_proj"),
            ("to_k", "add_k_proj"),
            ("to_v", "add_v_proj"),
        ]
        .into_iter()
        .enumerate()
        {
            add(
                format!("{d}.attn.{img}"),
                format!("{b}.img_attn.qkv.weight"),
                rows(j * h, h),
            );
            add(
                format!("{d}.attn.{txt}"),
                format!("{b}.txt_attn.qkv.weight"),
                rows(j * h, h),
            );
        }
        for (alias, bfl) in [
            ("attn.to_out.0", "img_attn.proj"),
            ("attn.to_add_out", "txt_attn.proj"),
            ("ff.net.0.proj", "img_mlp.0"),
            ("ff.net.2", "img_mlp.2"),
            ("ff_context.net.0.proj", "txt_mlp.0"),
            ("ff_context.net.2", "txt_mlp.2"),
            ("norm1.linear", "img_mod.lin"),
            ("norm1_context.linear", "txt_mod.lin"),
        ] {
            add(format!("{d}.{alias}"), format!("{b}.{bfl}.weight"), None);
        }
        i += 1;
    }
    let mut i = 0;
    while let (Some(linear1), Some(linear2)) = (
        shape(&format!("single_blocks.{i}.linear1.weight")),
        shape(&format!("single_blocks.{i}.linear2.weight")),
    ) {
        let d = format!("single_transformer_blocks.{i}");
        let b = format!("single_blocks.{i}");
        let h = linear2[0];
        if linear1[0] > 3 * h {
            for (j, proj) in ["to_q", "to_k", "to_v"].into_iter().enumerate() {
                add(
                    format!("{d}.attn.{proj}"),
                    format!("{b}.linear1.weight"),
                    rows(j * h, h),
                );
            }
            add(
                format!("{d}.proj_mlp"),
                format!("{b}.linear1.weight"),
                rows(3 * h, linear1[0] - 3 * h),
            );
        }
        add(format!("{d}.proj_out"), format!("{b}.linear2.weight"), None);
        add(
            format!("{d}.norm.linear"),
            format!("{b}.modulation.lin.weight"),
            None,
        );
        i += 1;
    }
    for (alias, bfl) in [
        ("x_embedder", "img_in"),
        ("context_embedder", "txt_in"),
        (
            "time_text_embed.timestep_embedder.linear_1",
            "time_in.in_layer",
        ),
        (
            "time_text_embed.timestep_embedder.linear_2",
            "time_in.out_layer",
        ),
        (
            "time_text_embed.text_embedder.linear_1",
            "vector_in.in_layer",
        ),
        (
            "time_text_embed.text_embedder.linear_2",
            "vector_in.out_layer",
        ),
        (
            "time_text_embed.guidance_embedder.linear_1",
            "guidance_in.in_layer",
        ),
        (
            "time_text_embed.guidance_embedder.linear_2",
            "guidance_in.out_layer",
        ),
        ("proj_out", "final_layer.linear"),
    ] {
        add(alias.to_string(), format!("{bfl}.weight"), None);
    }
    // diffusers' AdaLayerNormContinuous splits (scale, shift) where BFL splits (shift, scale).
    if let Some(s) = shape("final_layer.adaLN_modulation.1.weight") {
        let h = s[0] / 2;
        add(
            "norm_out.linear".into(),
            "final_layer.adaLN_modulation.1.weight".into(),
            Some(vec![
                RowPiece {
                    from: 0,
                    to: h,
                    len: h,
                },
                RowPiece {
                    from: h,
                    to: 0,
                    len: h,
                },
            ]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::{config, fixture, open, read_json, rel_max};
    use crate::checkpoint::Checkpoint;
    use std::collections::BTreeSet;

    /// A deterministic tensor with values in [-0.5, 0.5).
    fn det(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Writes f32 tensors (and header metadata) as safetensors.
    fn write_st(path: &Path, tensors: &[(String, Tensor)], metadata: &[(&str, String)]) {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, t) in tensors {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let start = data.len();
            for x in v {
                data.extend_from_slice(&x.to_le_bytes());
            }
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": "F32", "shape": t.dims(), "data_offsets": [start, data.len()]}),
            );
        }
        if !metadata.is_empty() {
            let m: serde_json::Map<String, Value> = metadata
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                .collect();
            header.insert("__metadata__".into(), Value::Object(m));
        }
        let mut h = serde_json::to_vec(&Value::Object(header)).unwrap();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
        bytes.extend(h);
        bytes.extend(data);
        std::fs::write(path, bytes).unwrap();
    }

    fn deltas(
        ck: &Checkpoint,
        meta: &Value,
        part: Part,
        loras: &[LoraSpec],
    ) -> Result<HashMap<String, Vec<LoraDelta>>, LoraError> {
        resolve(loras, &ck.part_map(part, &config(meta, part)).unwrap())
    }

    fn weight(ck: &Checkpoint, meta: &Value, part: Part, loras: &[LoraSpec], name: &str) -> Tensor {
        let cfg = config(meta, part);
        let shape = ck.part_map(part, &cfg).unwrap().served[name].shape.clone();
        let vb = ck
            .var_builder(part, &cfg, loras, DType::F32, &Device::Cpu)
            .unwrap();
        vb.get(shape, name).unwrap()
    }

    fn sd15_scale(meta: &Value) -> f32 {
        meta["lora"]["scale"].as_f64().unwrap() as f32
    }

    #[test]
    fn kohya_and_peft_files_of_one_adapter_merge_identically() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let w = sd15_scale(&meta);
        let kohya = [LoraSpec::new(fixture("sd15_lora_kohya.safetensors"), w)];
        let peft = [LoraSpec::new(fixture("sd15_lora_peft.safetensors"), w)];
        for (part, count) in [
            (Part::Unet, "unet_modules"),
            (Part::TextEncoder, "te_modules"),
        ] {
            let dk = deltas(&ck, &meta, part, &kohya).unwrap();
            let dp = deltas(&ck, &meta, part, &peft).unwrap();
            let targets: BTreeSet<&String> = dk.keys().collect();
            assert_eq!(
                targets,
                dp.keys().collect::<BTreeSet<_>>(),
                "{part}: kohya and peft targets"
            );
            assert_eq!(
                targets.len() as u64,
                meta["lora"][count].as_u64().unwrap(),
                "{part}: targets"
            );
            assert!(dk.values().chain(dp.values()).all(|d| d.len() == 1));
            for d in dk.values().chain(dp.values()) {
                assert!(
                    (d[0].scale - w as f64 * 8.0 / 4.0).abs() < 1e-6,
                    "{part}: scale {}",
                    d[0].scale
                );
            }
            for name in &targets {
                let base = weight(&ck, &meta, part, &[], name);
                let a = weight(&ck, &meta, part, &kohya, name);
                let b = weight(&ck, &meta, part, &peft, name);
                assert!(
                    rel_max(&a, &b) <= 1e-6,
                    "{part} {name}: kohya vs peft {}",
                    rel_max(&a, &b)
                );
                assert!(
                    rel_max(&a, &base) > 1e-2,
                    "{part} {name}: the LoRA changes it"
                );
            }
        }
        // a weight no module adapts is served untouched
        let n = "down_blocks.0.resnets.0.conv1.weight";
        assert_eq!(
            rel_max(
                &weight(&ck, &meta, Part::Unet, &kohya, n),
                &weight(&ck, &meta, Part::Unet, &[], n)
            ),
            0.0
        );
    }

    #[test]
    fn merged_weights_equal_peft_merge_reference() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let w = sd15_scale(&meta);
        let path = fixture("sd15_lora_merged.safetensors");
        let file_scale: f32 = read_metadata(&path).unwrap()["lora_scale"].parse().unwrap();
        assert_eq!(file_scale, w);
        let reference = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        assert!(reference.len() >= 2);
        for file in ["sd15_lora_peft.safetensors", "sd15_lora_kohya.safetensors"] {
            let loras = [LoraSpec::new(fixture(file), w)];
            for (key, want) in &reference {
                let (part, name) = key.split_once('.').unwrap();
                let part = if part == "unet" {
                    Part::Unet
                } else {
                    Part::TextEncoder
                };
                let got = weight(&ck, &meta, part, &loras, name);
                let base = weight(&ck, &meta, part, &[], name);
                assert!(
                    rel_max(&got, want) <= 1e-6,
                    "{file} {key}: rel {}",
                    rel_max(&got, want)
                );
                assert!(
                    rel_max(&base, want) > 1e-2,
                    "{key}: the reference is merged"
                );
            }
        }
    }

    #[test]
    fn sdxl_kohya_sgm_lora_maps_every_key_to_its_diffusers_module() {
        let ck = open("sdxl");
        let meta = read_json("sdxl.json");
        let spec = [LoraSpec::new(fixture("sdxl_lora_kohya.safetensors"), 0.8)];
        let d = deltas(&ck, &meta, Part::Unet, &spec).unwrap();
        assert_eq!(
            d.len() as u64,
            meta["lora"]["unet_modules"].as_u64().unwrap()
        );
        // the fixture script's SGM → diffusers names (checked there against diffusers' loader)
        let sgm: &serde_json::Map<String, Value> = meta["lora"]["sgm_names"].as_object().unwrap();
        assert_eq!(sgm.len(), d.len());
        for (target, list) in &d {
            assert_eq!(list.len(), 1);
            let key = list[0].key.strip_prefix("lora_unet_").unwrap();
            let (_, diffusers) = sgm
                .iter()
                .find(|(s, _)| s.replace('.', "_") == key)
                .unwrap_or_else(|| panic!("{key} is not an SGM name of the adapter"));
            assert_eq!(format!("{}.weight", diffusers.as_str().unwrap()), *target);
        }
        // text encoders: nothing aimed at them, nothing merged
        for part in [Part::TextEncoder, Part::TextEncoder2] {
            assert!(deltas(&ck, &meta, part, &spec).unwrap().is_empty());
        }
    }

    #[test]
    fn a_lora_of_another_family_is_an_error_naming_the_file() {
        let sd15 = open("sd15");
        let meta15 = read_json("sd15.json");
        let sdxl_lora = [LoraSpec::new(fixture("sdxl_lora_kohya.safetensors"), 1.0)];
        let err = deltas(&sd15, &meta15, Part::Unet, &sdxl_lora)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sdxl_lora_kohya.safetensors") && err.contains("another model family"),
            "{err}"
        );
        let sdxl = open("sdxl");
        let meta_xl = read_json("sdxl.json");
        let sd15_lora = [LoraSpec::new(fixture("sd15_lora_peft.safetensors"), 1.0)];
        let err = deltas(&sdxl, &meta_xl, Part::Unet, &sd15_lora)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sd15_lora_peft.safetensors") && err.contains("another model family"),
            "{err}"
        );
        // a Flux LoRA (diffusers names) on an SD UNet
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flux_lora.safetensors");
        let m = "transformer.transformer_blocks.0.attn.to_q";
        write_st(
            &p,
            &[
                (format!("{m}.lora_A.weight"), det(&[2, 32], 1)),
                (format!("{m}.lora_B.weight"), det(&[32, 2], 2)),
            ],
            &[],
        );
        let err = deltas(&sd15, &meta15, Part::Unet, &[LoraSpec::new(&p, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("flux_lora.safetensors") && err.contains("another model family"),
            "{err}"
        );
        // and var_builder reports it
        let err = sd15
            .var_builder(
                Part::Unet,
                &config(&meta15, Part::Unet),
                &sdxl_lora,
                DType::F32,
                &Device::Cpu,
            )
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("sdxl_lora_kohya.safetensors"), "{err}");
    }

    #[test]
    fn unknown_and_partly_unmatched_keys_are_reported() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let dir = tempfile::tempdir().unwrap();
        let good = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
        let pair = |m: &str| {
            vec![
                (format!("{m}.lora_down.weight"), det(&[2, 32], 3)),
                (format!("{m}.lora_up.weight"), det(&[32, 2], 4)),
            ]
        };
        // LoHa keys: not LoRA
        let p = dir.path().join("loha.safetensors");
        let mut t = pair(good);
        t.push((format!("{good}.hada_w1_a"), det(&[2, 32], 5)));
        write_st(&p, &t, &[]);
        let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("loha.safetensors") && err.contains("hada_w1_a"),
            "{err}"
        );
        // DoRA
        let p = dir.path().join("dora.safetensors");
        let mut t = pair(good);
        t.push((format!("{good}.dora_scale"), det(&[32, 1], 5)));
        write_st(&p, &t, &[]);
        let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("dora_scale"), "{err}");
        // one good module, one that names nothing of the UNet
        let p = dir.path().join("partly.safetensors");
        let mut t = pair(good);
        t.extend(pair(
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn9_to_q",
        ));
        write_st(&p, &t, &[]);
        let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("partly.safetensors")
                && err.contains("attn9_to_q")
                && !err.contains("attn1_to_q"),
            "{err}"
        );
        // a module whose matrices do not fit the weight
        let p = dir.path().join("shape.safetensors");
        write_st(
            &p,
            &[
                (format!("{good}.lora_down.weight"), det(&[2, 31], 3)),
                (format!("{good}.lora_up.weight"), det(&[32, 2], 4)),
            ],
            &[],
        );
        let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shape.safetensors") && err.contains("[2, 31]"),
            "{err}"
        );
        // half a pair
        let p = dir.path().join("half.safetensors");
        write_st(&p, &pair(good)[..1], &[]);
        let err = deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("only one of its down/up"), "{err}");
    }

    #[test]
    fn locon_conv_lora_merges_as_a_convolution_under_diffusers_or_ldm_names() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let dir = tempfile::tempdir().unwrap();
        let (down, up) = (det(&[2, 32, 3, 3], 11), det(&[32, 2, 1, 1], 12));
        let name = "down_blocks.0.resnets.0.conv1.weight";
        let base = weight(&ck, &meta, Part::Unet, &[], name);
        // W[o,i,y,x] + w·alpha/r·Σ_r up[o,r]·down[r,i,y,x], by hand
        let (b, d, u): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            base.flatten_all().unwrap().to_vec1().unwrap(),
            down.flatten_all().unwrap().to_vec1().unwrap(),
            up.flatten_all().unwrap().to_vec1().unwrap(),
        );
        let scale = 0.7f32 * 1.0 / 2.0;
        let want: Vec<f32> = (0..b.len())
            .map(|idx| {
                let (o, rest) = (idx / 288, idx % 288);
                b[idx]
                    + scale
                        * (0..2)
                            .map(|r| u[o * 2 + r] * d[r * 288 + rest])
                            .sum::<f32>()
            })
            .collect();
        let want = Tensor::from_vec(want, (32, 32, 3, 3), &Device::Cpu).unwrap();
        for module in [
            "lora_unet_down_blocks_0_resnets_0_conv1",
            "lora_unet_input_blocks_1_0_in_layers_2",
        ] {
            let p = dir.path().join(format!("{module}.safetensors"));
            write_st(
                &p,
                &[
                    (format!("{module}.lora_down.weight"), down.clone()),
                    (format!("{module}.lora_up.weight"), up.clone()),
                    (
                        format!("{module}.alpha"),
                        Tensor::new(1f32, &Device::Cpu).unwrap(),
                    ),
                ],
                &[],
            );
            let got = weight(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 0.7)], name);
            assert!(
                rel_max(&got, &want) <= 1e-6,
                "{module}: rel {}",
                rel_max(&got, &want)
            );
        }
    }

    #[test]
    fn modules_on_weights_the_network_does_not_use_are_skipped() {
        // SD 2.x: the last OpenCLIP block is in the file, the 23-layer text encoder skips it
        let ck = open("sd21");
        let meta = read_json("sd21.json");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sd2_te.safetensors");
        let mut t = vec![];
        for (i, m) in [
            "lora_te_text_model_encoder_layers_0_mlp_fc1",
            "lora_te_text_model_encoder_layers_23_mlp_fc1",
        ]
        .iter()
        .enumerate()
        {
            t.push((format!("{m}.lora_down.weight"), det(&[2, 32], i as u64)));
            t.push((format!("{m}.lora_up.weight"), det(&[37, 2], 9 + i as u64)));
        }
        write_st(&p, &t, &[]);
        let d = deltas(&ck, &meta, Part::TextEncoder, &[LoraSpec::new(&p, 1.0)]).unwrap();
        assert_eq!(
            d.keys().collect::<Vec<_>>(),
            vec!["text_model.encoder.layers.0.mlp.fc1.weight"]
        );
        // a layer the file does not have at all is still an error
        let p = dir.path().join("sd2_te_bad.safetensors");
        let m = "lora_te_text_model_encoder_layers_24_mlp_fc1";
        write_st(
            &p,
            &[
                (format!("{m}.lora_down.weight"), det(&[2, 32], 1)),
                (format!("{m}.lora_up.weight"), det(&[37, 2], 2)),
            ],
            &[],
        );
        assert!(deltas(&ck, &meta, Part::TextEncoder, &[LoraSpec::new(&p, 1.0)]).is_err());
    }

    #[test]
    fn several_loras_add_up() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let k = fixture("sd15_lora_kohya.safetensors");
        let p = fixture("sd15_lora_peft.safetensors");
        let name = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.weight";
        let one = weight(&ck, &meta, Part::Unet, &[LoraSpec::new(&k, 0.8)], name);
        let two = weight(
            &ck,
            &meta,
            Part::Unet,
            &[LoraSpec::new(&k, 0.5), LoraSpec::new(&p, 0.3)],
            name,
        );
        assert!(rel_max(&two, &one) <= 1e-6, "rel {}", rel_max(&two, &one));
    }

    #[test]
    fn alpha_comes_from_tensors_then_peft_metadata_then_the_rank() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let dir = tempfile::tempdir().unwrap();
        let q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
        let k = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k";
        let mut t = vec![];
        for (m, cols) in [(q, 32), (k, 32)] {
            t.push((format!("unet.{m}.lora_A.weight"), det(&[2, cols], 1)));
            t.push((format!("unet.{m}.lora_B.weight"), det(&[32, 2], 2)));
        }
        let scales = |path: &Path| -> HashMap<String, f64> {
            deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(path, 0.5)])
                .unwrap()
                .into_iter()
                .map(|(n, d)| (n, d[0].scale))
                .collect()
        };
        let plain = dir.path().join("plain.safetensors");
        write_st(&plain, &t, &[]);
        let s = scales(&plain);
        assert_eq!(
            (s[&format!("{q}.weight")], s[&format!("{k}.weight")]),
            (0.5, 0.5),
            "alpha = rank"
        );
        let with_meta = dir.path().join("meta.safetensors");
        let lam = serde_json::json!({"unet.lora_alpha": 6, "unet.r": 2, "unet.alpha_pattern": {"attn2.to_k": 1}});
        write_st(
            &with_meta,
            &t,
            &[("lora_adapter_metadata", lam.to_string())],
        );
        let s = scales(&with_meta);
        assert_eq!(s[&format!("{q}.weight")], 0.5 * 6.0 / 2.0);
        assert_eq!(s[&format!("{k}.weight")], 0.5 * 1.0 / 2.0, "alpha_pattern");
        let with_tensor = dir.path().join("tensor.safetensors");
        let mut t2 = t.clone();
        t2.push((
            format!("unet.{q}.alpha"),
            Tensor::new(3f32, &Device::Cpu).unwrap(),
        ));
        write_st(
            &with_tensor,
            &t2,
            &[("lora_adapter_metadata", lam.to_string())],
        );
        assert_eq!(
            scales(&with_tensor)[&format!("{q}.weight")],
            0.5 * 3.0 / 2.0
        );
    }

    #[test]
    fn text_encoder_modules_match_with_or_without_text_model() {
        let ck = open("sd15");
        let meta = read_json("sd15.json");
        let dir = tempfile::tempdir().unwrap();
        let mut merged = vec![];
        for (i, m) in [
            "text_model.encoder.layers.0.self_attn.q_proj",
            "encoder.layers.0.self_attn.q_proj",
        ]
        .iter()
        .enumerate()
        {
            let p = dir.path().join(format!("te{i}.safetensors"));
            write_st(
                &p,
                &[
                    (format!("text_encoder.{m}.lora_A.weight"), det(&[2, 32], 7)),
                    (format!("text_encoder.{m}.lora_B.weight"), det(&[32, 2], 8)),
                ],
                &[],
            );
            let name = "text_model.encoder.layers.0.self_attn.q_proj.weight";
            merged.push(weight(
                &ck,
                &meta,
                Part::TextEncoder,
                &[LoraSpec::new(&p, 1.0)],
                name,
            ));
            // and nothing of it goes to the UNet
            assert!(deltas(&ck, &meta, Part::Unet, &[LoraSpec::new(&p, 1.0)])
                .unwrap()
                .is_empty());
        }
        assert_eq!(rel_max(&merged[0], &merged[1]), 0.0);
    }

    #[test]
    fn flux_diffusers_lora_adds_into_the_rows_of_fused_bfl_weights() {
        let ck = open("flux");
        let meta = read_json("flux.json");
        let dir = tempfile::tempdir().unwrap();
        let a = |seed| det(&[2, 32], seed);
        // diffusers modules (rank 2, no alpha: scale = weight)
        let (qa, qb) = (a(1), det(&[32, 2], 2)); // transformer_blocks.0.attn.to_k
        let (va, vb) = (a(3), det(&[32, 2], 4)); // transformer_blocks.0.attn.add_v_proj
        let (ma, mb) = (a(5), det(&[128, 2], 6)); // single_transformer_blocks.0.proj_mlp
        let (sa, sb) = (a(7), det(&[32, 2], 8)); // single_transformer_blocks.0.attn.to_q
        let (na, nb) = (a(9), det(&[64, 2], 10)); // norm_out.linear (scale, shift)
        let diff = dir.path().join("flux_diffusers.safetensors");
        let mut t = vec![];
        for (m, da, db) in [
            ("transformer_blocks.0.attn.to_k", &qa, &qb),
            ("transformer_blocks.0.attn.add_v_proj", &va, &vb),
            ("single_transformer_blocks.0.proj_mlp", &ma, &mb),
            ("single_transformer_blocks.0.attn.to_q", &sa, &sb),
            ("norm_out.linear", &na, &nb),
        ] {
            t.push((format!("transformer.{m}.lora_A.weight"), da.clone()));
            t.push((format!("transformer.{m}.lora_B.weight"), db.clone()));
        }
        write_st(&diff, &t, &[]);
        // the same adapter on BFL's fused weights (kohya), zero rows elsewhere
        let z = |rows: usize, cols: usize| {
            Tensor::zeros((rows, cols), DType::F32, &Device::Cpu).unwrap()
        };
        let cat0 = |ts: &[Tensor]| Tensor::cat(ts, 0).unwrap();
        let cat1 = |ts: &[Tensor]| Tensor::cat(ts, 1).unwrap();
        let kohya = dir.path().join("flux_kohya.safetensors");
        let mut t = vec![];
        let mut add = |m: &str, down: Tensor, up: Tensor| {
            let rank = down.dim(0).unwrap() as f32;
            t.push((format!("lora_unet_{m}.lora_down.weight"), down));
            t.push((format!("lora_unet_{m}.lora_up.weight"), up));
            t.push((
                format!("lora_unet_{m}.alpha"),
                Tensor::new(rank, &Device::Cpu).unwrap(),
            ));
        };
        add(
            "double_blocks_0_img_attn_qkv",
            qa.clone(),
            cat0(&[z(32, 2), qb.clone(), z(32, 2)]),
        );
        add(
            "double_blocks_0_txt_attn_qkv",
            va.clone(),
            cat0(&[z(64, 2), vb.clone()]),
        );
        add(
            "single_blocks_0_linear1",
            cat0(&[ma.clone(), sa.clone()]),
            cat0(&[
                cat1(&[z(32, 2), sb.clone()]),
                z(64, 4),
                cat1(&[mb.clone(), z(128, 2)]),
            ]),
        );
        add(
            "final_layer_adaLN_modulation_1",
            na.clone(),
            cat0(&[nb.narrow(0, 32, 32).unwrap(), nb.narrow(0, 0, 32).unwrap()]),
        );
        write_st(&kohya, &t, &[]);
        let part = Part::FluxTransformer;
        for name in [
            "double_blocks.0.img_attn.qkv.weight",
            "double_blocks.0.txt_attn.qkv.weight",
            "single_blocks.0.linear1.weight",
            "final_layer.adaLN_modulation.1.weight",
        ] {
            let base = weight(&ck, &meta, part, &[], name);
            let d = weight(&ck, &meta, part, &[LoraSpec::new(&diff, 0.9)], name);
            let k = weight(&ck, &meta, part, &[LoraSpec::new(&kohya, 0.9)], name);
            assert!(
                rel_max(&d, &k) <= 1e-6,
                "{name}: diffusers vs kohya rel {}",
                rel_max(&d, &k)
            );
            assert!(rel_max(&d, &base) > 1e-2, "{name}: changed");
        }
        // rows outside the slices are untouched: q and v of img qkv
        let name = "double_blocks.0.img_attn.qkv.weight";
        let base = weight(&ck, &meta, part, &[], name);
        let d = weight(&ck, &meta, part, &[LoraSpec::new(&diff, 0.9)], name);
        for start in [0, 64] {
            assert_eq!(
                rel_max(
                    &d.narrow(0, start, 32).unwrap(),
                    &base.narrow(0, start, 32).unwrap()
                ),
                0.0
            );
        }
        // the delta of the k slice is exactly 0.9 · B @ A
        let want =
            (base.narrow(0, 32, 32).unwrap() + (qb.matmul(&qa).unwrap() * 0.9).unwrap()).unwrap();
        assert!(rel_max(&d.narrow(0, 32, 32).unwrap(), &want) <= 1e-6);
        // and a diffusers Flux LoRA is no LoRA of the CLIP/T5 encoders
        for p in [Part::TextEncoder, Part::T5] {
            assert!(deltas(&ck, &meta, p, &[LoraSpec::new(&diff, 1.0)])
                .unwrap()
                .is_empty());
        }
    }
}
