//! Just enough of the ONNX format to read a Piper voice's weights: the protobuf messages for the
//! model, its graph, nodes and tensors (hand-written `prost` structs with the field numbers of
//! `onnx.proto3`, so the build needs no `protoc`), and a reader that gives every weight its
//! module path.
//!
//! PyTorch's exporter keeps most parameter names (`enc_p.encoder.attn_layers.0.conv_q.weight`)
//! but renames weights it folded or reused (`onnx::Conv_8168`, and the text embedding shows up as
//! `sid`). Such a tensor is named after the node that consumes it instead:
//! `/flow/flows.6/enc/in_layers.0/Conv` input 1 → `flow.flows.6.enc.in_layers.0.weight`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;

/// A weight: shape and `f32` values (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Why an ONNX file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an ONNX model ({msg}); is the download complete?")]
    Decode { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Content { path: PathBuf, msg: String },
}

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

/// Only the integer attributes (what convolutions carry); other fields are skipped.
#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int64, tag = "3")]
    i: i64,
    #[prost(int64, repeated, tag = "8")]
    ints: Vec<i64>,
}

/// How a convolution reads its input, from the `Conv`/`ConvTranspose` node that uses a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvAttrs {
    pub dilation: usize,
    /// Zero padding at the start (ONNX `pads[0]`).
    pub pad: usize,
    pub stride: usize,
    pub groups: usize,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

/// ONNX `TensorProto.DataType.FLOAT`.
const FLOAT: i32 = 1;

/// The float weights of an ONNX model by module path, plus the model's opset.
#[derive(Debug, Clone)]
pub struct OnnxWeights {
    pub path: PathBuf,
    pub opset: i64,
    pub weights: HashMap<String, Weight>,
    /// Op type → count, for error messages and checks.
    pub ops: HashMap<String, usize>,
    /// Convolution settings by weight name (`dec.ups.0.weight` → stride 8, pad 4).
    pub convs: HashMap<String, ConvAttrs>,
}

impl OnnxWeights {
    /// Reads `path`.
    pub fn open(path: &Path) -> Result<Self, OnnxError> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Reads a model from `bytes` (`path` names it in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, OnnxError> {
        let content = |msg: String| OnnxError::Content {
            path: path.to_path_buf(),
            msg,
        };
        let model = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let graph = model
            .graph
            .ok_or_else(|| content("the model has no graph".into()))?;
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(0, |o| o.version);
        // Who reads each value: (node name, input slot).
        let mut readers: HashMap<&str, (&str, usize)> = HashMap::new();
        let mut ops: HashMap<String, usize> = HashMap::new();
        let mut conv_of: HashMap<&str, ConvAttrs> = HashMap::new();
        for n in &graph.node {
            *ops.entry(n.op_type.clone()).or_default() += 1;
            if matches!(n.op_type.as_str(), "Conv" | "ConvTranspose") && n.input.len() > 1 {
                conv_of.insert(n.input[1].as_str(), conv_attrs(n));
            }
            for (slot, i) in n.input.iter().enumerate() {
                readers.entry(i.as_str()).or_insert((n.name.as_str(), slot));
            }
        }
        let mut weights = HashMap::new();
        let mut convs = HashMap::new();
        for t in &graph.initializer {
            if t.data_type != FLOAT {
                continue; // shape constants and indices
            }
            let shape: Vec<usize> = t
                .dims
                .iter()
                .map(|&d| {
                    usize::try_from(d).map_err(|_| content(format!("{}: dimension {d}", t.name)))
                })
                .collect::<Result<_, _>>()?;
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if !t.raw_data.is_empty() {
                if t.raw_data.len() != n * 4 {
                    return Err(content(format!(
                        "tensor {} has {} bytes for shape {shape:?}",
                        t.name,
                        t.raw_data.len()
                    )));
                }
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                if t.float_data.len() != n {
                    return Err(content(format!(
                        "tensor {} has {} values for shape {shape:?}",
                        t.name,
                        t.float_data.len()
                    )));
                }
                t.float_data.clone()
            };
            let name = module_name(&t.name, readers.get(t.name.as_str()).copied());
            if let Some(c) = conv_of.get(t.name.as_str()) {
                convs.insert(name.clone(), *c);
            }
            weights.insert(name, Weight { shape, values });
        }
        Ok(Self {
            path: path.to_path_buf(),
            opset,
            weights,
            ops,
            convs,
        })
    }

    /// A weight by module path.
    pub fn get(&self, name: &str) -> Option<&Weight> {
        self.weights.get(name)
    }
}

fn conv_attrs(n: &NodeProto) -> ConvAttrs {
    let first = |name: &str, default: usize| {
        n.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.ints.first().copied().unwrap_or(a.i))
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(default)
    };
    ConvAttrs {
        dilation: first("dilations", 1),
        pad: first("pads", 0),
        stride: first("strides", 1),
        groups: first("group", 1).max(1),
    }
}

/// The module path of an initializer: its own name unless the exporter renamed it, else derived
/// from the node that reads it (`/a/b.0/c/Conv`, slot 1 → `a.b.0.c.weight`, slot 2 → `.bias`; a `Gather`
/// reads an embedding table).
fn module_name(name: &str, reader: Option<(&str, usize)>) -> String {
    // Exporter-made names: `onnx::Conv_8168`, or a bare word/number (`sid`, `6549`). Module
    // paths and folded constants (`/dp/flows.0/Exp_output_0`) keep their own name.
    let renamed = name.starts_with("onnx::") || !name.contains(['.', '/']);
    if !renamed {
        return name.to_string();
    }
    let Some((node, slot)) = reader else {
        return name.to_string();
    };
    let parts: Vec<&str> = node.trim_start_matches('/').split('/').collect();
    let Some((op, modules)) = parts.split_last() else {
        return name.to_string();
    };
    if modules.is_empty() {
        return name.to_string();
    }
    let base = modules.join(".");
    let leaf = if op.starts_with("Gather") || slot == 1 {
        "weight"
    } else if slot == 2 {
        "bias"
    } else {
        return name.to_string();
    };
    format!("{base}.{leaf}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_reading_node_when_the_exporter_renamed_them() {
        assert_eq!(
            module_name("enc_p.proj.weight", Some(("/enc_p/proj/Conv", 1))),
            "enc_p.proj.weight"
        );
        assert_eq!(
            module_name(
                "onnx::Conv_8168",
                Some(("/flow/flows.6/enc/in_layers.0/Conv", 1))
            ),
            "flow.flows.6.enc.in_layers.0.weight"
        );
        assert_eq!(
            module_name("sid", Some(("/enc_p/emb/Gather", 0))),
            "enc_p.emb.weight"
        );
        assert_eq!(
            module_name("onnx::Add_12", Some(("/dec/Add", 0))),
            "onnx::Add_12"
        );
        assert_eq!(module_name("onnx::Conv_1", None), "onnx::Conv_1");
    }

    #[test]
    fn garbage_is_reported_as_not_onnx() {
        let err = OnnxWeights::parse(b"\xff\xff\xff\xff not a model", Path::new("v.onnx"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("v.onnx") && err.contains("not an ONNX model"),
            "{err}"
        );
    }
}
