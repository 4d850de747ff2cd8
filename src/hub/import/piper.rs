//! Facts about a Piper voice on disk (`NAME.onnx` + `NAME.onnx.json`) that importing and the
//! voice engines both need.

use std::path::Path;

/// The language (two letters) a voice speaks, from its `.onnx.json`.
pub fn voice_language(onnx: &Path) -> Option<String> {
    let text = std::fs::read_to_string(format!("{}.json", onnx.display())).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let family = v
        .pointer("/language/family")
        .and_then(|f| f.as_str())
        .or_else(|| {
            v.pointer("/language/code")?
                .as_str()?
                .split(['_', '-'])
                .next()
        })
        .map(str::to_string)
        .or_else(|| {
            let e = v.pointer("/espeak/voice")?.as_str()?;
            Some(e.split(['-', '_']).next()?.to_string())
        })?;
    Some(match family.as_str() {
        "cmn" | "yue" => "zh".into(),
        f => f.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_family_then_code_then_espeak_voice() {
        let d = tempfile::tempdir().unwrap();
        let onnx = d.path().join("v.onnx");
        let says = |json: &str| {
            std::fs::write(d.path().join("v.onnx.json"), json).unwrap();
            voice_language(&onnx)
        };
        assert_eq!(
            says(r#"{"language":{"family":"de","code":"en_US"}}"#).as_deref(),
            Some("de")
        );
        assert_eq!(
            says(r#"{"language":{"code":"pt_BR"}}"#).as_deref(),
            Some("pt")
        );
        assert_eq!(
            says(r#"{"espeak":{"voice":"FR-fr"}}"#).as_deref(),
            Some("fr")
        );
        // Piper's Chinese voices name Mandarin or Cantonese; reelsmith's language is zh.
        assert_eq!(
            says(r#"{"language":{"family":"cmn"}}"#).as_deref(),
            Some("zh")
        );
        assert_eq!(says(r#"{"audio":{}}"#), None);
        assert_eq!(says("not json"), None);
        std::fs::remove_file(d.path().join("v.onnx.json")).unwrap();
        assert_eq!(voice_language(&onnx), None);
    }
}
