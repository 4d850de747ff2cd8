//! ncnn models as realesrgan-ncnn-vulkan and its Python wheels ship them: a text `.param`
//! graph and a `.bin` of weights in layer order.
//!
//! The `.param` file: the magic `7767517`, `layer_count blob_count`, then one line per layer —
//! `Type name n_in n_out in_blobs… out_blobs… key=value…`, where a key `-233xx` holds an array
//! (`n,v1,v2…`) for parameter `xx`. The `.bin` holds, for each layer with weights and in the
//! file's layer order, its blobs back to back: a convolution's kernel is "auto-typed" (a 4-byte
//! tag first: `0` raw f32, `0x01306B47` f16 padded to 4 bytes, `0x0002C056` raw f32, any other
//! non-zero tag a 256-entry f32 table followed by u8 indices padded to 4 bytes; int8 is for
//! quantised inference and refused) and its bias and PReLU slopes are raw f32 without a tag.
//! Kernels are stored `[out, in, kh, kw]`, the same order as PyTorch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use half::f16;

use crate::{PostError, Result};

/// The first line of every `.param` file.
const MAGIC: &str = "7767517";

/// A parameter value: a number or an array of numbers.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Int(i64),
    Float(f32),
    Array(Vec<f32>),
}

impl Param {
    pub fn int(&self) -> Option<i64> {
        match self {
            Param::Int(v) => Some(*v),
            Param::Float(v) if v.fract() == 0.0 => Some(*v as i64),
            _ => None,
        }
    }
    pub fn float(&self) -> Option<f32> {
        match self {
            Param::Int(v) => Some(*v as f32),
            Param::Float(v) => Some(*v),
            Param::Array(_) => None,
        }
    }
}

/// One layer of the graph, with its weights (in the order ncnn loads them) when it has any.
#[derive(Debug)]
pub struct Layer {
    pub kind: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub params: HashMap<i64, Param>,
    /// Convolution/Deconvolution: `[kernel, bias?]`; PReLU: `[slopes]`.
    pub weights: Vec<Tensor>,
}

impl Layer {
    pub fn int(&self, key: i64, default: i64) -> i64 {
        self.params
            .get(&key)
            .and_then(Param::int)
            .unwrap_or(default)
    }
    pub fn float(&self, key: i64, default: f32) -> f32 {
        self.params
            .get(&key)
            .and_then(Param::float)
            .unwrap_or(default)
    }
}

/// A whole ncnn model, its weights as f32 on the device.
#[derive(Debug)]
pub struct Model {
    pub param: PathBuf,
    pub layers: Vec<Layer>,
}

impl Model {
    /// Layers of one type, in graph order.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Layer> + 'a {
        self.layers.iter().filter(move |l| l.kind == kind)
    }
}

/// The `.bin` beside a `.param` (same stem).
pub fn bin_for(param: &Path) -> PathBuf {
    param.with_extension("bin")
}

/// Reads `param` and the `.bin` beside it.
pub fn read(param: &Path, device: &Device) -> Result<Model> {
    let text = std::fs::read_to_string(param).map_err(|e| PostError::Weights {
        path: param.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    let mut layers = parse_param(&text).map_err(|(line, message)| PostError::Weights {
        path: format!("{}:{line}", param.display()),
        message,
    })?;
    let bin_path = bin_for(param);
    let bin = std::fs::read(&bin_path).map_err(|e| PostError::Weights {
        path: bin_path.display().to_string(),
        message: format!("cannot read the weights beside {}: {e}", param.display()),
    })?;
    let mut r = BinReader {
        data: &bin,
        at: 0,
        path: &bin_path,
    };
    for layer in &mut layers {
        layer.weights = load_weights(layer, &mut r, device)?;
    }
    if r.at != bin.len() {
        return Err(PostError::Weights {
            path: bin_path.display().to_string(),
            message: format!(
                "{} bytes are left after the last layer's weights ({} read): the .bin does not \
                 belong to {}",
                bin.len() - r.at,
                r.at,
                param.display()
            ),
        });
    }
    Ok(Model {
        param: param.to_path_buf(),
        layers,
    })
}

/// The layers of a `.param` text; an error is `(line number, message)`.
pub fn parse_param(text: &str) -> std::result::Result<Vec<Layer>, (usize, String)> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, l)) if l.trim() == MAGIC => {}
        Some((i, l)) => {
            return Err((
                i + 1,
                format!(
                    "`{}` is not the ncnn magic {MAGIC}: not an ncnn .param file",
                    l.trim()
                ),
            ))
        }
        None => return Err((1, "empty file".into())),
    }
    let (count_line, counts) = lines.next().ok_or((2, "no layer count".to_string()))?;
    let layer_count: usize = counts
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or((count_line + 1, format!("`{counts}` is not `layers blobs`")))?;
    let mut layers = Vec::with_capacity(layer_count);
    for (i, line) in lines {
        let no = i + 1;
        let mut tok = line.split_whitespace();
        let kind = tok.next().ok_or((no, "empty layer line".to_string()))?;
        let name = tok
            .next()
            .ok_or((no, "a layer without a name".to_string()))?;
        let count = |t: Option<&str>| -> std::result::Result<usize, (usize, String)> {
            t.and_then(|v| v.parse().ok())
                .ok_or((no, format!("layer `{name}`: bad input/output count")))
        };
        let n_in = count(tok.next())?;
        let n_out = count(tok.next())?;
        let mut blob = |n: usize| -> std::result::Result<Vec<String>, (usize, String)> {
            (0..n)
                .map(|_| {
                    tok.next()
                        .map(str::to_string)
                        .ok_or((no, format!("layer `{name}`: missing blob names")))
                })
                .collect()
        };
        let inputs = blob(n_in)?;
        let outputs = blob(n_out)?;
        let mut params = HashMap::new();
        for kv in tok {
            let (k, v) = kv
                .split_once('=')
                .ok_or((no, format!("layer `{name}`: `{kv}` is not key=value")))?;
            let k: i64 = k
                .parse()
                .map_err(|_| (no, format!("layer `{name}`: bad key `{k}`")))?;
            let bad = || (no, format!("layer `{name}`: bad value `{v}` for key {k}"));
            if k <= -23300 {
                let mut vals = v.split(',');
                let n: usize = vals.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                let arr = vals
                    .map(|x| x.parse::<f32>().map_err(|_| bad()))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                if arr.len() != n {
                    return Err(bad());
                }
                params.insert(-23300 - k, Param::Array(arr));
            } else if v.contains(['.', 'e', 'E']) {
                params.insert(k, Param::Float(v.parse().map_err(|_| bad())?));
            } else {
                params.insert(k, Param::Int(v.parse().map_err(|_| bad())?));
            }
        }
        layers.push(Layer {
            kind: kind.to_string(),
            name: name.to_string(),
            inputs,
            outputs,
            params,
            weights: vec![],
        });
    }
    if layers.len() != layer_count {
        return Err((
            2,
            format!(
                "the header promises {layer_count} layers, the file has {}",
                layers.len()
            ),
        ));
    }
    Ok(layers)
}

struct BinReader<'a> {
    data: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl BinReader<'_> {
    fn bytes(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let end = self.at + n;
        if end > self.data.len() {
            return Err(PostError::Weights {
                path: self.path.display().to_string(),
                message: format!(
                    "ends at byte {} while reading {what} ({n} bytes at {}): truncated, or not \
                     the weights of this .param",
                    self.data.len(),
                    self.at
                ),
            });
        }
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        Ok(self
            .bytes(n * 4, what)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// An auto-typed blob of `n` values (see the module docs).
    fn auto(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let tag = self.bytes(4, what)?;
        let tag_u = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
        let sum: u32 = tag.iter().map(|&b| b as u32).sum();
        match tag_u {
            0x0130_6B47 => {
                let raw = self.bytes(n * 2, what)?;
                let out = raw
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect();
                self.bytes((4 - (n * 2) % 4) % 4, what)?;
                Ok(out)
            }
            0x000D_4B38 => Err(PostError::Weights {
                path: self.path.display().to_string(),
                message: format!(
                    "{what} is int8-quantised, which only ncnn's int8 inference reads"
                ),
            }),
            0x0002_C056 => self.f32s(n, what),
            _ if sum == 0 => self.f32s(n, what),
            _ => {
                // The tag was the first of 256 table entries.
                self.at -= 4;
                let table = self.f32s(256, what)?;
                let idx = self.bytes(n, what)?.to_vec();
                self.bytes((4 - n % 4) % 4, what)?;
                Ok(idx.into_iter().map(|i| table[i as usize]).collect())
            }
        }
    }
}

fn load_weights(layer: &Layer, r: &mut BinReader<'_>, device: &Device) -> Result<Vec<Tensor>> {
    let bad = |message: String| PostError::Weights {
        path: r.path.display().to_string(),
        message: format!("layer `{}` ({}): {message}", layer.name, layer.kind),
    };
    match layer.kind.as_str() {
        "Convolution" | "Deconvolution" => {
            let out = layer.int(0, 0).max(0) as usize;
            let kw = layer.int(1, 0).max(0) as usize;
            let kh = layer.int(11, kw as i64).max(0) as usize;
            let size = layer.int(6, 0).max(0) as usize;
            if out == 0 || kw == 0 || size == 0 || !size.is_multiple_of(out * kw * kh) {
                return Err(bad(format!(
                    "weight_data_size {size} does not fit {out} outputs of {kh}x{kw}"
                )));
            }
            if layer.int(8, 0) != 0 {
                return Err(bad("int8-quantised convolutions are not supported".into()));
            }
            let cin = size / (out * kw * kh);
            let what = format!("the kernel of {}", layer.name);
            let k = r.auto(size, &what)?;
            // ncnn stores deconvolution kernels [out, in, kh, kw] too; PyTorch's
            // ConvTranspose2d keeps [in, out, kh, kw]: the caller transposes.
            let mut w = vec![Tensor::from_vec(k, (out, cin, kh, kw), device)?];
            if layer.int(5, 0) != 0 {
                let b = r.f32s(out, &format!("the bias of {}", layer.name))?;
                w.push(Tensor::from_vec(b, out, device)?);
            }
            Ok(w)
        }
        "PReLU" => {
            let n = layer.int(0, 0).max(0) as usize;
            if n == 0 {
                return Err(bad("no slopes".into()));
            }
            let s = r.f32s(n, &format!("the slopes of {}", layer.name))?;
            Ok(vec![Tensor::from_vec(s, n, device)?])
        }
        "Input" | "Split" | "Concat" | "Interp" | "Eltwise" | "BinaryOp" | "PixelShuffle"
        | "ReLU" | "Sigmoid" | "Crop" | "Slice" | "Noop" | "Reshape" | "Permute" => Ok(vec![]),
        other => Err(bad(format!(
            "layer type `{other}` is not one reelsmith reads (it reads Real-ESRGAN graphs)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layers_params_and_arrays() {
        let text = "7767517\n3 3\nInput in 0 1 data\nConvolution c0 1 1 data a 0=4 1=3 5=1 6=108 9=2 -23310=1,2.000000e-01\nInterp r 1 1 a out 0=3 1=5.000000e-01 2=5.000000e-01\n";
        let layers = parse_param(text).unwrap();
        assert_eq!(layers.len(), 3);
        let c = &layers[1];
        assert_eq!(
            (c.int(0, 0), c.int(1, 0), c.int(6, 0), c.int(9, 0)),
            (4, 3, 108, 2)
        );
        assert_eq!(c.params.get(&10), Some(&Param::Array(vec![0.2])));
        assert_eq!(layers[2].float(1, 1.0), 0.5);
        assert_eq!(c.inputs, vec!["data"]);
        assert_eq!(c.outputs, vec!["a"]);
    }

    #[test]
    fn refuses_a_wrong_magic_and_a_wrong_count_naming_the_line() {
        assert_eq!(parse_param("123\n1 1\n").unwrap_err().0, 1);
        let e = parse_param("7767517\n2 2\nInput in 0 1 data\n").unwrap_err();
        assert!(e.1.contains("2 layers"), "{e:?}");
        let e = parse_param("7767517\n1 1\nConvolution c 1 1 a b 0=x\n").unwrap_err();
        assert_eq!(e.0, 3);
    }

    /// fp16 kernels, raw biases and the 4-byte alignment after an odd number of halves.
    #[test]
    fn reads_f16_kernels_with_padding_and_raw_biases() {
        let dir = tempfile::tempdir().unwrap();
        let param = dir.path().join("m.param");
        std::fs::write(
            &param,
            "7767517\n3 3\nInput in 0 1 data\nConvolution c 1 1 data a 0=1 1=1 5=1 6=3\nPReLU p 1 1 a b 0=1\n",
        )
        .unwrap();
        let mut bin = 0x0130_6B47u32.to_le_bytes().to_vec();
        for v in [0.5f32, -1.0, 2.0] {
            bin.extend(f16::from_f32(v).to_le_bytes());
        }
        bin.extend([0, 0]); // pad 6 bytes to 8
        bin.extend(0.25f32.to_le_bytes()); // bias
        bin.extend(0.1f32.to_le_bytes()); // slope
        std::fs::write(dir.path().join("m.bin"), &bin).unwrap();
        let m = read(&param, &Device::Cpu).unwrap();
        let k = m.layers[1].weights[0]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(k, vec![0.5, -1.0, 2.0]);
        assert_eq!(m.layers[1].weights[0].dims(), &[1, 3, 1, 1]);
        assert_eq!(m.layers[1].weights[1].to_vec1::<f32>().unwrap(), vec![0.25]);
        assert_eq!(m.layers[2].weights[0].to_vec1::<f32>().unwrap(), vec![0.1]);
        // One byte short: the error names the layer being read.
        std::fs::write(dir.path().join("m.bin"), &bin[..bin.len() - 1]).unwrap();
        let e = read(&param, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("slopes of p"), "{e}");
    }
}
