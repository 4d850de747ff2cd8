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
mod tests;
