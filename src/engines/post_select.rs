//! Which post-processing engine a command runs: `--model` names a built-in engine, a registry
//! id of an installed or imported model (Real-ESRGAN, RIFE) or a weights file (`.pth`,
//! `.safetensors`, ncnn `.param`); without it the embedded default runs.

use candle_core::Device;

use super::post::{Blend, Interpolator, PairRetimer, Upscaler};
use super::post_models::{find_post_model, EsrganUpscaler, PostModelRef, RifePair};
use super::procedural::post::{Lanczos, Minterpolate};
use crate::cli::Fail;
use crate::config::Dirs;
use crate::hub::{HubConfig, ModelKind, Registry};

/// The model `name` of `kind`: an unknown name or a file of another kind is bad input.
fn model_named(dirs: &Dirs, name: &str, kind: ModelKind) -> Result<PostModelRef, Fail> {
    let reg = Registry::load(Some(&dirs.config)).map_err(|e| Fail::Failed(e.to_string()))?;
    let cfg = HubConfig::from_env(|k| std::env::var(k).ok());
    // Name errors start with the name itself: `--model NAME: …` reads best.
    find_post_model(&reg, &cfg, name, "--model", kind)
        .map_err(|e| Fail::Input(e.replacen("--model: ", "--model ", 1)))
}

/// The built-in upscalers `--model` takes.
pub const EMBEDDED_UPSCALERS: &[&str] = &["lanczos"];
/// The built-in interpolators `--model` takes.
pub const EMBEDDED_INTERPOLATORS: &[&str] = &["minterpolate", "blend"];

/// The upscaler for `model` (`None`: the default, Lanczos), to run on `device` at ×`scale`,
/// `tile` input pixels a side at a time (0: whole frames). An unknown name is bad input (exit
/// 2); an engine that fails to load is a failure (exit 1). The built-in engine runs on the CPU
/// at any scale, untiled.
pub(crate) fn choose_upscaler(
    dirs: &Dirs,
    model: Option<&str>,
    device: &Device,
    scale: u32,
    tile: u32,
) -> Result<Box<dyn Upscaler>, Fail> {
    // The network runs at its own factor; Lanczos takes its output to ×`scale`.
    let _ = scale;
    match model.map(|m| m.trim().to_ascii_lowercase()).as_deref() {
        None | Some("lanczos") => Ok(Box::new(Lanczos::new())),
        Some(_) => {
            let name = model.unwrap_or_default().trim();
            let m = model_named(dirs, name, ModelKind::Upscale).map_err(|e| match e {
                Fail::Input(e) => {
                    Fail::Input(format!("{e} (built in: {})", EMBEDDED_UPSCALERS.join(", ")))
                }
                e => e,
            })?;
            let up = EsrganUpscaler::load(&m, device, tile as usize)
                .map_err(|e| Fail::Failed(e.to_string()))?;
            Ok(Box::new(up))
        }
    }
}

/// The interpolator for `model` (`None`: the default, `minterpolate`), to run on `device`.
/// `blend` cross-fades (fast; for previews). Errors as [`choose_upscaler`]'s.
pub(crate) fn choose_interpolator(
    dirs: &Dirs,
    model: Option<&str>,
    device: &Device,
) -> Result<Box<dyn Interpolator>, Fail> {
    match model.map(|m| m.trim().to_ascii_lowercase()).as_deref() {
        None | Some("minterpolate") => Ok(Box::new(Minterpolate::new())),
        Some("blend") => Ok(Box::new(PairRetimer(Blend))),
        Some(_) => {
            let name = model.unwrap_or_default().trim();
            let m = model_named(dirs, name, ModelKind::Interpolation).map_err(|e| match e {
                Fail::Input(e) => Fail::Input(format!(
                    "{e} (built in: {})",
                    EMBEDDED_INTERPOLATORS.join(", ")
                )),
                e => e,
            })?;
            let rife = RifePair::load(&m, device).map_err(|e| Fail::Failed(e.to_string()))?;
            Ok(Box::new(PairRetimer(rife)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> Dirs {
        Dirs {
            data: "/nonexistent/data".into(),
            config: "/nonexistent/config".into(),
        }
    }

    #[test]
    fn built_in_names_and_defaults() {
        let d = dirs();
        let cpu = Device::Cpu;
        let ids = |m| choose_upscaler(&d, m, &cpu, 4, 0).map(|e| e.id());
        assert_eq!(ids(None).unwrap(), "lanczos@1");
        assert_eq!(ids(Some("Lanczos")).unwrap(), "lanczos@1");
        match ids(Some("realesrgan-x9")) {
            Err(Fail::Input(e)) => assert!(
                e.contains("--model") && e.contains("realesrgan-x9") && e.contains("lanczos"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        let idi = |m| choose_interpolator(&d, m, &cpu).map(|e| e.id());
        assert_eq!(idi(None).unwrap(), "minterpolate@1");
        assert_eq!(idi(Some("blend")).unwrap(), "blend@1");
        assert!(matches!(idi(Some("rife")), Err(Fail::Input(_))));
    }
}
