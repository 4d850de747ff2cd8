//! Which post-processing engine runs: `--model` (or a stage's setting) named, else the embedded
//! default. Today only the built-in engines exist; model engines (Real-ESRGAN, RIFE from the
//! registry) are chosen here too, so the commands and stages never change when they arrive.

use candle_core::Device;

use super::post::{Blend, Interpolator, PairRetimer, Upscaler};
use super::procedural::post::{Lanczos, Minterpolate};
use crate::cli::Fail;
use crate::config::Dirs;

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
    let _ = (dirs, device, scale, tile);
    match model.map(|m| m.trim().to_ascii_lowercase()).as_deref() {
        None | Some("lanczos") => Ok(Box::new(Lanczos::new())),
        Some(_) => Err(Fail::Input(format!(
            "--model {}: not an upscaler reelsmith has; built in: {}",
            model.unwrap_or_default(),
            EMBEDDED_UPSCALERS.join(", ")
        ))),
    }
}

/// The interpolator for `model` (`None`: the default, `minterpolate`), to run on `device`.
/// `blend` cross-fades (fast; for previews). Errors as [`choose_upscaler`]'s.
pub(crate) fn choose_interpolator(
    dirs: &Dirs,
    model: Option<&str>,
    device: &Device,
) -> Result<Box<dyn Interpolator>, Fail> {
    let _ = (dirs, device);
    match model.map(|m| m.trim().to_ascii_lowercase()).as_deref() {
        None | Some("minterpolate") => Ok(Box::new(Minterpolate::new())),
        Some("blend") => Ok(Box::new(PairRetimer(Blend))),
        Some(_) => Err(Fail::Input(format!(
            "--model {}: not an interpolator reelsmith has; built in: {}",
            model.unwrap_or_default(),
            EMBEDDED_INTERPOLATORS.join(", ")
        ))),
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
                e.contains("--model realesrgan-x9") && e.contains("lanczos"),
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
