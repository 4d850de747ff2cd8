//! IFNet's layers, read from the tensors by name: the 4.0 flow blocks (Conv + PReLU, one
//! residual around eight convs, a 5-channel transposed conv) and the blocks of the feature-encoded
//! line that began with 4.7 (Conv + LeakyReLU(0.2), eight `ResConv`s, a transposed conv followed
//! by PixelShuffle(2), optionally carrying 8 feature channels to the next block), and the image
//! encoder of that line.

use candle_core::{DType, Device, Tensor};

use super::ops::{leaky_relu, prelu, resize_bilinear};
use crate::weights::Tensors;
use crate::{PostError, Result};

/// The slope of every LeakyReLU in the encoded line.
const SLOPE: f64 = 0.2;

/// Reads tensors by name in the network's dtype, naming what is missing.
pub(crate) struct Reader<'a> {
    pub tensors: &'a Tensors,
    pub device: &'a Device,
    pub dtype: DType,
}

impl Reader<'_> {
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Result<Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| PostError::Weights {
            path: "RIFE flownet".into(),
            message: format!("tensor `{name}` is missing (not a RIFE 4.x IFNet?)"),
        })?;
        Ok(t.to_device(self.device)?.to_dtype(self.dtype)?)
    }

    /// The shape of a tensor that must be there.
    pub fn dims(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.get_raw(name)?.dims().to_vec())
    }

    fn get_raw(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| PostError::Weights {
            path: "RIFE flownet".into(),
            message: format!("tensor `{name}` is missing (not a RIFE 4.x IFNet?)"),
        })
    }
}

/// A 3×3 convolution with bias, padding 1. Its group count is the input's channels over the
/// kernel's (4.14.lite convolves in 2 groups).
pub(crate) struct Conv {
    w: Tensor,
    b: Tensor,
    stride: usize,
}

impl Conv {
    pub fn load(r: &Reader, prefix: &str, stride: usize) -> Result<Self> {
        Ok(Self {
            w: r.get(&format!("{prefix}.weight"))?,
            b: r.get(&format!("{prefix}.bias"))?,
            stride,
        })
    }

    pub fn in_channels(&self) -> usize {
        self.w.dims()[1]
    }

    pub fn out_channels(&self) -> usize {
        self.w.dims()[0]
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let groups = x.dim(1)? / self.in_channels().max(1);
        let y = x.conv2d(&self.w, 1, self.stride, 1, groups.max(1))?;
        Ok(y.broadcast_add(&self.b.reshape((1, (), 1, 1))?)?)
    }
}

/// `ConvTranspose2d(c_in, c_out, 4, stride 2, padding 1)`: doubles height and width.
pub(crate) struct Deconv {
    w: Tensor,
    b: Tensor,
}

impl Deconv {
    pub fn load(r: &Reader, prefix: &str) -> Result<Self> {
        Ok(Self {
            w: r.get(&format!("{prefix}.weight"))?,
            b: r.get(&format!("{prefix}.bias"))?,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.w.dims()[1]
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv_transpose2d(&self.w, 1, 0, 2, 1)?;
        Ok(y.broadcast_add(&self.b.reshape((1, (), 1, 1))?)?)
    }
}

/// The activation after a conv: PReLU (4.0) or LeakyReLU(0.2) (the encoded line).
enum Act {
    PRelu(Tensor),
    Leaky,
}

impl Act {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::PRelu(w) => prelu(x, w),
            Act::Leaky => leaky_relu(x, SLOPE),
        }
    }
}

/// One layer of a block's body.
enum BodyLayer {
    /// `act(conv(x))` (4.0; the residual is around the whole body).
    Plain(Conv, Act),
    /// `leaky(conv(x)·beta + x)` (`ResConv`, the encoded line).
    Res(Conv, Tensor),
}

/// One IFBlock: estimates flow (4 channels: to image 0, to image 1), a blend mask and, in
/// 4.21+, 8 feature channels, at `1/scale` of the frame, and returns them at full size.
pub(crate) struct IfBlock {
    conv0: Vec<(Conv, Act)>,
    body: Vec<BodyLayer>,
    last: Deconv,
    /// 4.0's layout: residual around the body, no PixelShuffle, output resized by `2·scale`.
    v4_0: bool,
}

/// What a block returns: flow `[N, 4, H, W]` in pixels, mask `[N, 1, H, W]` (a logit), and the
/// feature channels (empty when the block makes none).
pub(crate) struct BlockOut {
    pub flow: Tensor,
    pub mask: Tensor,
    pub feat: Option<Tensor>,
}

impl IfBlock {
    /// The block `prefix` (`block0`…) of 4.0 (`v4_0`) or of the encoded line.
    pub fn load(r: &Reader, prefix: &str, v4_0: bool) -> Result<Self> {
        let act = |name: &str| -> Result<Act> {
            Ok(if v4_0 {
                Act::PRelu(r.get(&format!("{prefix}.{name}.1.weight"))?)
            } else {
                Act::Leaky
            })
        };
        let conv0 = (0..2)
            .map(|i| {
                let name = format!("conv0.{i}");
                Ok((
                    Conv::load(r, &format!("{prefix}.{name}.0"), 2)?,
                    act(&name)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut body = Vec::new();
        for i in 0.. {
            let p = format!("{prefix}.convblock.{i}");
            if v4_0 && r.has(&format!("{p}.0.weight")) {
                body.push(BodyLayer::Plain(
                    Conv::load(r, &format!("{p}.0"), 1)?,
                    act(&format!("convblock.{i}"))?,
                ));
            } else if !v4_0 && r.has(&format!("{p}.conv.weight")) {
                let beta = r.get(&format!("{p}.beta"))?;
                let c = beta.elem_count();
                body.push(BodyLayer::Res(
                    Conv::load(r, &format!("{p}.conv"), 1)?,
                    beta.reshape((1, c, 1, 1))?,
                ));
            } else {
                break;
            }
        }
        let last = if v4_0 {
            Deconv::load(r, &format!("{prefix}.lastconv"))?
        } else {
            Deconv::load(r, &format!("{prefix}.lastconv.0"))?
        };
        Ok(Self {
            conv0,
            body,
            last,
            v4_0,
        })
    }

    /// Input channels of the first conv (what the block expects concatenated).
    pub fn in_channels(&self) -> usize {
        self.conv0[0].0.in_channels()
    }

    /// The block's width `c` (channels of the body).
    pub fn width(&self) -> usize {
        self.conv0[1].0.out_channels()
    }

    /// Channels of the full-size output: 5 (4.0), else the transposed conv's over 4
    /// (PixelShuffle(2)): 6 (flow, mask, one unused) or 13 (flow, mask, 8 features).
    pub fn out_channels(&self) -> usize {
        if self.v4_0 {
            self.last.out_channels()
        } else {
            self.last.out_channels() / 4
        }
    }

    /// IFBlock.forward: `x` (and `flow`, divided by the factor) resized by `1/scale`, the convs,
    /// and the result resized back (by `scale`, or `2·scale` in 4.0 whose output is at half
    /// the body's resolution) with the flow multiplied to match. `feat_channels` of the
    /// output past flow and mask are returned as features.
    pub fn forward(
        &self,
        x: &Tensor,
        flow: Option<&Tensor>,
        scale: f64,
        feat_channels: usize,
    ) -> Result<BlockOut> {
        let mut x = resize_bilinear(x, 1.0 / scale)?;
        if let Some(flow) = flow {
            let f = (resize_bilinear(flow, 1.0 / scale)? / scale)?;
            x = Tensor::cat(&[&x, &f], 1)?;
        }
        let mut feat = x;
        for (conv, act) in &self.conv0 {
            feat = act.forward(&conv.forward(&feat)?)?;
        }
        let mut y = feat.clone();
        for layer in &self.body {
            y = match layer {
                BodyLayer::Plain(conv, act) => act.forward(&conv.forward(&y)?)?,
                BodyLayer::Res(conv, beta) => {
                    let z = (conv.forward(&y)?.broadcast_mul(beta)? + &y)?;
                    leaky_relu(&z, SLOPE)?
                }
            };
        }
        let tmp = if self.v4_0 {
            self.last.forward(&(y + feat)?)?
        } else {
            candle_nn::ops::pixel_shuffle(&self.last.forward(&y)?, 2)?
        };
        let up = if self.v4_0 { scale * 2.0 } else { scale };
        let tmp = resize_bilinear(&tmp, up)?;
        Ok(BlockOut {
            flow: (tmp.narrow(1, 0, 4)? * up)?,
            mask: tmp.narrow(1, 4, 1)?,
            feat: if feat_channels > 0 {
                Some(tmp.narrow(1, 5, feat_channels)?)
            } else {
                None
            },
        })
    }
}

/// The image encoder of the encoded line: convs (the first with stride 2) and a final
/// transposed conv back to full size, LeakyReLU(0.2) between them — except 4.7–4.9's two-layer
/// `Sequential(Conv2d, ConvTranspose2d)`, which has none. Named `encode.cnn0…cnn3` (`Head`,
/// 4.13+) or `encode.<index>` (`nn.Sequential`, where the activations hold indices too: a gap in
/// the indices is a LeakyReLU).
pub(crate) struct Encoder {
    convs: Vec<(Conv, bool)>,
    last: Deconv,
}

impl Encoder {
    pub fn load(r: &Reader) -> Result<Self> {
        if r.has("encode.cnn0.weight") {
            let convs = (0..3)
                .map(|i| {
                    let stride = if i == 0 { 2 } else { 1 };
                    Ok((Conv::load(r, &format!("encode.cnn{i}"), stride)?, true))
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Self {
                convs,
                last: Deconv::load(r, "encode.cnn3")?,
            });
        }
        let mut idx: Vec<usize> = r
            .tensors
            .keys()
            .filter_map(|k| k.strip_prefix("encode.")?.strip_suffix(".weight"))
            .filter_map(|i| i.parse().ok())
            .collect();
        idx.sort_unstable();
        let Some((&last, rest)) = idx.split_last() else {
            return Err(PostError::Weights {
                path: "RIFE flownet".into(),
                message: "no `encode` layers".into(),
            });
        };
        let convs = rest
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let next = idx[k + 1];
                let stride = if k == 0 { 2 } else { 1 };
                Ok((Conv::load(r, &format!("encode.{i}"), stride)?, next > i + 1))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            convs,
            last: Deconv::load(r, &format!("encode.{last}"))?,
        })
    }

    /// Channels of the features (4, 8 or 16).
    pub fn out_channels(&self) -> usize {
        self.last.out_channels()
    }

    /// Whether the layers are `Head`'s (`cnn0…cnn3`) or an `nn.Sequential` of the given length.
    pub fn layers(&self) -> usize {
        self.convs.len() + 1
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (conv, act) in &self.convs {
            x = conv.forward(&x)?;
            if *act {
                x = leaky_relu(&x, SLOPE)?;
            }
        }
        self.last.forward(&x)
    }
}
