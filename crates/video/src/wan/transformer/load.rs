//! Wan transformer weights as users have them: a diffusers `transformer/` folder, the official
//! Wan-AI release (original names, `WanModel` config.json, sharded with an index for the 14B
//! models) and the ComfyUI single files (`model.diffusion_model.` + the original names, bf16 or
//! fp8 e4m3fn). Every tensor is looked up by its diffusers name; the original names are mapped
//! by [`wan_key_from_official`], the inverse of diffusers' `convert_wan_transformer_to_diffusers`
//! (plus `img_emb.emb_pos`, which only diffusers' scripts/convert_wan_to_diffusers.py maps).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use super::config::{infer_config, ConfigHint, WanTransformerConfig};
use crate::ltx::load::safetensors_header;
use crate::VideoError;

type Result<T> = std::result::Result<T, VideoError>;

/// How a checkpoint names its tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WanLayout {
    /// diffusers `WanTransformer3DModel` names.
    Diffusers,
    /// The official Wan-AI names (`blocks.N.self_attn.q`, `head.modulation`, …).
    Official,
    /// ComfyUI repackagings: `model.diffusion_model.` + the official names.
    Comfy,
}

/// The prefix ComfyUI puts on the official names.
pub const COMFY_PREFIX: &str = "model.diffusion_model.";

/// Top-level modules: (official, diffusers).
const TOP: &[(&str, &str)] = &[
    (
        "time_embedding.0",
        "condition_embedder.time_embedder.linear_1",
    ),
    (
        "time_embedding.2",
        "condition_embedder.time_embedder.linear_2",
    ),
    (
        "text_embedding.0",
        "condition_embedder.text_embedder.linear_1",
    ),
    (
        "text_embedding.2",
        "condition_embedder.text_embedder.linear_2",
    ),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("img_emb.proj.0", "condition_embedder.image_embedder.norm1"),
    (
        "img_emb.proj.1",
        "condition_embedder.image_embedder.ff.net.0.proj",
    ),
    (
        "img_emb.proj.3",
        "condition_embedder.image_embedder.ff.net.2",
    ),
    ("img_emb.proj.4", "condition_embedder.image_embedder.norm2"),
    ("head.head", "proj_out"),
    ("patch_embedding", "patch_embedding"),
];

/// Top-level parameters: (official, diffusers).
const WHOLE: &[(&str, &str)] = &[
    ("head.modulation", "scale_shift_table"),
    (
        "img_emb.emb_pos",
        "condition_embedder.image_embedder.pos_embed",
    ),
];

/// Modules inside `blocks.N.`: (official, diffusers). The official model orders its norms
/// norm1, norm3 (cross-attention, affine), norm2; diffusers calls the affine one norm2.
const BLOCK: &[(&str, &str)] = &[
    ("self_attn.q", "attn1.to_q"),
    ("self_attn.k", "attn1.to_k"),
    ("self_attn.v", "attn1.to_v"),
    ("self_attn.o", "attn1.to_out.0"),
    ("self_attn.norm_q", "attn1.norm_q"),
    ("self_attn.norm_k", "attn1.norm_k"),
    ("cross_attn.q", "attn2.to_q"),
    ("cross_attn.k", "attn2.to_k"),
    ("cross_attn.v", "attn2.to_v"),
    ("cross_attn.o", "attn2.to_out.0"),
    ("cross_attn.norm_q", "attn2.norm_q"),
    ("cross_attn.norm_k", "attn2.norm_k"),
    ("cross_attn.k_img", "attn2.add_k_proj"),
    ("cross_attn.v_img", "attn2.add_v_proj"),
    ("cross_attn.norm_k_img", "attn2.norm_added_k"),
    ("norm3", "norm2"),
    ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"),
];

fn map_name(name: &str, from_official: bool) -> Option<String> {
    let pick = |pair: &(&'static str, &'static str)| {
        if from_official {
            (pair.0, pair.1)
        } else {
            (pair.1, pair.0)
        }
    };
    if let Some((_, to)) = WHOLE.iter().map(pick).find(|(from, _)| *from == name) {
        return Some(to.to_string());
    }
    if let Some(rest) = name.strip_prefix("blocks.") {
        let (n, rest) = rest.split_once('.')?;
        n.parse::<usize>().ok()?;
        let (table_own, table_other) = if from_official {
            ("modulation", "scale_shift_table")
        } else {
            ("scale_shift_table", "modulation")
        };
        if rest == table_own {
            return Some(format!("blocks.{n}.{table_other}"));
        }
        let (module, leaf) = rest.rsplit_once('.')?;
        let (_, to) = BLOCK.iter().map(pick).find(|(from, _)| *from == module)?;
        return Some(format!("blocks.{n}.{to}.{leaf}"));
    }
    let (module, leaf) = name.rsplit_once('.')?;
    let (_, to) = TOP.iter().map(pick).find(|(from, _)| *from == module)?;
    Some(format!("{to}.{leaf}"))
}

/// An official (or ComfyUI, prefixed) tensor name → its diffusers name; `None` for a name the
/// Wan2.1 transformer does not have.
pub fn wan_key_from_official(name: &str) -> Option<String> {
    map_name(name.strip_prefix(COMFY_PREFIX).unwrap_or(name), true)
}

/// A diffusers tensor name → its official name (for messages and writers).
pub fn wan_official_key(name: &str) -> Option<String> {
    map_name(name, false)
}

fn weights_err(path: impl AsRef<Path>, message: impl Into<String>) -> VideoError {
    VideoError::Weights {
        path: path.as_ref().display().to_string(),
        message: message.into(),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| weights_err(path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| weights_err(path, format!("not valid JSON: {e}")))
}

/// The safetensors files of a checkpoint: the file itself, or a folder's shards (by its
/// `*.safetensors.index.json` when there is one).
fn checkpoint_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        if !path.is_file() {
            return Err(weights_err(path, "no such file or folder"));
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| weights_err(path, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let index = entries
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".safetensors.index.json"));
    let mut files: Vec<PathBuf> = match index {
        Some(index) => {
            let v = read_json(index)?;
            let map = v
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| weights_err(index, "no weight_map in the index"))?;
            let names: HashSet<&str> = map.values().filter_map(Value::as_str).collect();
            let mut files = Vec::new();
            for n in names {
                let p = path.join(n);
                if !p.is_file() {
                    return Err(weights_err(
                        index,
                        format!("the index names {n}, which is not in the folder"),
                    ));
                }
                files.push(p);
            }
            files
        }
        None => entries
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect(),
    };
    files.sort();
    if files.is_empty() {
        return Err(weights_err(path, "no .safetensors weights in this folder"));
    }
    Ok(files)
}

/// Names a checkpoint may hold that the network does not use and diffusers skips too.
fn ignored(diffusers_name: &str) -> bool {
    diffusers_name.contains("norm_added_q")
}

/// The open files of one checkpoint, every tensor indexed by its diffusers name; records which
/// ones the network took, so that the rest can be reported as unexpected.
pub(crate) struct Store {
    pub layout: WanLayout,
    pub origin: String,
    files: Vec<(PathBuf, MmapedSafetensors)>,
    /// diffusers name → (file, stored name).
    index: HashMap<String, (usize, String)>,
    used: RefCell<HashSet<String>>,
}

/// How a tensor is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// A weight matrix: fp8 stays fp8, anything else becomes the compute dtype.
    Matrix,
    /// The compute dtype.
    Compute,
    /// f32 (what the reference keeps in f32).
    F32,
}

impl Store {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let paths = checkpoint_files(path)?;
        let mut files = Vec::new();
        let mut stored: Vec<(usize, String)> = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            // SAFETY: mapped read-only; like every mmap loader we rely on nobody rewriting the
            // weights while they are open.
            let st = unsafe { MmapedSafetensors::new(p) }
                .map_err(|e| weights_err(p, format!("cannot read the weights: {e}")))?;
            stored.extend(st.tensors().into_iter().map(|(n, _)| (i, n)));
            files.push((p.clone(), st));
        }
        let official = stored.iter().any(|(_, n)| {
            let n = n.strip_prefix(COMFY_PREFIX).unwrap_or(n);
            n == "head.modulation" || n.starts_with("time_embedding.")
        });
        let layout = match (
            official,
            stored.iter().any(|(_, n)| n.starts_with(COMFY_PREFIX)),
        ) {
            (false, _) => WanLayout::Diffusers,
            (true, false) => WanLayout::Official,
            (true, true) => WanLayout::Comfy,
        };
        let mut index = HashMap::new();
        for (i, name) in stored {
            let net = match layout {
                WanLayout::Diffusers => Some(name.clone()),
                _ => wan_key_from_official(&name),
            };
            let Some(net) = net else {
                return Err(weights_err(
                    &paths[i],
                    format!("unexpected tensor {name}: not a Wan2.1 transformer weight"),
                ));
            };
            if let Some((j, other)) = index.insert(net.clone(), (i, name.clone())) {
                return Err(weights_err(
                    &paths[i],
                    format!(
                        "{name} and {other} (in {}) are both {net}",
                        paths[j].display()
                    ),
                ));
            }
        }
        let origin = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self {
            layout,
            origin,
            files,
            index,
            used: RefCell::new(HashSet::new()),
        })
    }

    /// Every tensor's shape, by diffusers name.
    pub(crate) fn shapes(&self) -> Result<HashMap<String, Vec<usize>>> {
        let mut shapes = HashMap::new();
        for (net, (i, name)) in &self.index {
            let (path, st) = &self.files[*i];
            let view = st
                .get(name)
                .map_err(|e| weights_err(path, format!("{name}: {e}")))?;
            shapes.insert(net.clone(), view.shape().to_vec());
        }
        Ok(shapes)
    }

    /// The stored name of `net` in this checkpoint's naming (for messages).
    fn stored_name(&self, net: &str) -> String {
        match self.layout {
            WanLayout::Diffusers => net.to_string(),
            WanLayout::Official => wan_official_key(net).unwrap_or_else(|| net.to_string()),
            WanLayout::Comfy => format!(
                "{COMFY_PREFIX}{}",
                wan_official_key(net).unwrap_or_else(|| net.to_string())
            ),
        }
    }

    /// Loads `net` (a diffusers name) with `shape`, kept as `keep` says, onto `device`.
    pub(crate) fn get(
        &self,
        net: &str,
        shape: &[usize],
        keep: Keep,
        compute: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let Some((i, name)) = self.index.get(net) else {
            return Err(weights_err(
                &self.origin,
                format!("missing tensor {}", self.stored_name(net)),
            ));
        };
        let path = &self.files[*i].0;
        let t = self.files[*i]
            .1
            .load(name, &Device::Cpu)
            .map_err(|e| weights_err(path, format!("{name}: {e}")))?;
        if t.dims() != shape {
            return Err(weights_err(
                path,
                format!(
                    "{name} has shape {:?}, the network expects {shape:?}",
                    t.dims()
                ),
            ));
        }
        self.used.borrow_mut().insert(net.to_string());
        let dtype = match keep {
            Keep::Matrix if t.dtype() == DType::F8E4M3 => DType::F8E4M3,
            Keep::Matrix | Keep::Compute => compute,
            Keep::F32 => DType::F32,
        };
        let t = if t.dtype() == dtype {
            t
        } else {
            t.to_dtype(dtype)?
        };
        Ok(t.to_device(device)?)
    }

    /// Fails on the first tensor the network did not take.
    pub(crate) fn check_all_used(&self) -> Result<()> {
        let used = self.used.borrow();
        let mut left: BTreeMap<&str, &(usize, String)> = self
            .index
            .iter()
            .filter(|(net, _)| !used.contains(*net) && !ignored(net))
            .map(|(net, loc)| (net.as_str(), loc))
            .collect();
        if let Some((_, (i, name))) = left.pop_first() {
            let more = if left.is_empty() {
                String::new()
            } else {
                format!(" (and {} more)", left.len())
            };
            return Err(weights_err(
                &self.files[*i].0,
                format!(
                    "unexpected tensor {name}: the configured network has no such weight{more}"
                ),
            ));
        }
        Ok(())
    }
}

/// The config of a checkpoint: a diffusers config.json as it stands; otherwise inferred from the
/// shapes, with the head count from the official config.json or a `config` entry of the file's
/// header (official or diffusers field names), else `width / 128`.
pub(crate) fn resolve_config(path: &Path, store: &Store) -> Result<WanTransformerConfig> {
    let json_path = path.join("config.json");
    let hint = if path.is_dir() && json_path.is_file() {
        let v = read_json(&json_path)?;
        let is_diffusers = v.get("num_attention_heads").is_some()
            || v.get("_class_name").and_then(Value::as_str) == Some("WanTransformer3DModel");
        if is_diffusers {
            let cfg: WanTransformerConfig = serde_json::from_value(v)
                .map_err(|e| weights_err(&json_path, format!("transformer config: {e}")))?;
            cfg.validate().map_err(|e| weights_err(&json_path, e))?;
            return Ok(cfg);
        }
        ConfigHint::from_value(&v).map_err(|e| weights_err(&json_path, e))?
    } else if path.is_file() {
        let header = safetensors_header(path)?;
        match header
            .get("__metadata__")
            .and_then(|m| m.get("config"))
            .and_then(Value::as_str)
        {
            Some(s) => {
                let v: Value = serde_json::from_str(s).map_err(|e| {
                    weights_err(path, format!("the header's config is not JSON: {e}"))
                })?;
                ConfigHint::from_value(&v).map_err(|e| weights_err(path, e))?
            }
            None => ConfigHint::default(),
        }
    } else {
        ConfigHint::default()
    };
    infer_config(&store.shapes()?, &hint).map_err(|e| weights_err(&store.origin, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_names_map_both_ways() {
        let pairs = [
            ("blocks.3.self_attn.q.weight", "blocks.3.attn1.to_q.weight"),
            ("blocks.3.self_attn.o.bias", "blocks.3.attn1.to_out.0.bias"),
            (
                "blocks.0.cross_attn.norm_k_img.weight",
                "blocks.0.attn2.norm_added_k.weight",
            ),
            (
                "blocks.0.cross_attn.k_img.bias",
                "blocks.0.attn2.add_k_proj.bias",
            ),
            ("blocks.12.norm3.weight", "blocks.12.norm2.weight"),
            ("blocks.12.modulation", "blocks.12.scale_shift_table"),
            ("blocks.1.ffn.2.weight", "blocks.1.ffn.net.2.weight"),
            ("head.modulation", "scale_shift_table"),
            ("head.head.bias", "proj_out.bias"),
            (
                "time_projection.1.weight",
                "condition_embedder.time_proj.weight",
            ),
            (
                "img_emb.proj.4.bias",
                "condition_embedder.image_embedder.norm2.bias",
            ),
            (
                "img_emb.emb_pos",
                "condition_embedder.image_embedder.pos_embed",
            ),
            ("patch_embedding.weight", "patch_embedding.weight"),
        ];
        for (official, diffusers) in pairs {
            assert_eq!(wan_key_from_official(official).as_deref(), Some(diffusers));
            assert_eq!(
                wan_key_from_official(&format!("{COMFY_PREFIX}{official}")).as_deref(),
                Some(diffusers)
            );
            assert_eq!(wan_official_key(diffusers).as_deref(), Some(official));
        }
        for stranger in [
            "blocks.x.self_attn.q.weight",
            "vace_blocks.0.after_proj.weight",
            "head",
        ] {
            assert_eq!(wan_key_from_official(stranger), None, "{stranger}");
        }
    }
}
