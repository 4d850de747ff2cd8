//! A render whose keyframes are drawn by an installed image model (the tiny SD 1.5 of
//! `image_support`, chosen with REELSMITH_IMAGE): the keyframes stage says so, a character's
//! reference picture and seed lead its scenes, and a second render is all cache hits.

mod image_support;

use std::path::Path;

use image_support::{Studio, MODEL_ID};
use reelsmith::media::image::RgbImage;
use reelsmith::media::stills::{read_png, write_png};

fn render(s: &Studio, script: &Path, out: &Path) -> serde_json::Value {
    let o = s.run(
        &[
            "render",
            script.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quality",
            "draft",
        ],
        &[("REELSMITH_IMAGE", MODEL_ID)],
    );
    assert!(
        o.status.success(),
        "render failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(out.join("fox-tales/report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

const SCRIPT: &str = r#"title: Fox Tales
channel: explainer
language: en
characters:
  - id: fox
    name: Fox
    description: a red fox with a white-tipped tail
    reference: fox.png
    seed: 42
scenes:
  - prompt: a snowy forest at dawn
    lines:
      - {speaker: fox, text: "Snow again."}
  - prompt: a frozen river under the moon
    lines:
      - {speaker: fox, text: "Time to cross."}
"#;

fn fox_picture() -> RgbImage {
    let mut fox = RgbImage::new(48, 32);
    for y in 0..32 {
        for x in 0..48 {
            fox.put(x, y, [(200 + x) as u8, (60 + 3 * y) as u8, 30]);
        }
    }
    fox
}

fn stage<'a>(report: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["node"] == node)
        .unwrap_or_else(|| panic!("no stage {node} in {report}"))
}

#[test]
fn keyframes_are_generated_by_the_image_model_and_cached() {
    let s = Studio::new();
    let (script, _) = fox_project(&s);
    let project = script.parent().unwrap().to_path_buf();
    let fox = fox_picture();

    let report = render(&s, &script, &s.path("out1"));
    let kf = stage(&report, "keyframes");
    assert_eq!(kf["status"], "done", "{kf}");
    assert_eq!(kf["engine"], format!("diffusion/{MODEL_ID}@1"), "{kf}");
    let key = kf["key"].as_str().unwrap();
    let dir = s.data.join("artifacts").join(key);
    let frames: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("keyframes.json")).unwrap())
            .unwrap();
    let engine = frames["engine"].as_str().unwrap();
    assert!(
        engine.starts_with(&format!("diffusion/{MODEL_ID}")) && engine.ends_with("@1"),
        "{engine}"
    );
    let list = frames["frames"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{frames}");
    let mut pictures = Vec::new();
    for f in list {
        assert_eq!(f["source"], "generated", "{f}");
        let (w, h) = (f["width"].as_u64().unwrap(), f["height"].as_u64().unwrap());
        let img = read_png(&dir.join(f["file"].as_str().unwrap())).unwrap();
        assert_eq!((img.width as u64, img.height as u64), (w, h));
        pictures.push(img);
    }
    // Draft frames are 1280×720; keyframes are drawn 1.3× larger for camera moves.
    assert_eq!((pictures[0].width, pictures[0].height), (1664, 936));
    assert_eq!(kf["items"]["made"], 2, "{kf}");

    // Nothing changed: the second render reuses every keyframe.
    let again = render(&s, &script, &s.path("out2"));
    let kf2 = stage(&again, "keyframes");
    assert_eq!(kf2["status"], "cached", "{kf2}");
    assert_eq!(kf2["key"], kf["key"]);
    assert!(s.path("out2/fox-tales/en/final.mp4").is_file());

    // Another reference picture: both scenes the fox leads are drawn again, differently.
    write_png(&swapped(&fox), &project.join("fox-blue.png")).unwrap();
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, text.replace("fox.png", "fox-blue.png")).unwrap();
    let third = render(&s, &script, &s.path("out3"));
    let kf3 = stage(&third, "keyframes");
    assert_eq!(kf3["status"], "done", "{kf3}");
    assert_eq!(kf3["items"]["made"], 2, "{kf3}");
    let dir3 = s.data.join("artifacts").join(kf3["key"].as_str().unwrap());
    let changed = changed(
        &read_png(&dir3.join("scene-000.png")).unwrap(),
        &pictures[0],
    );
    assert!(
        changed > 0.1,
        "a new reference changed only {changed} of the values"
    );
}

/// The picture with red and blue swapped.
fn swapped(img: &RgbImage) -> RgbImage {
    let mut out = img.clone();
    for px in out.data.chunks_exact_mut(3) {
        px.reverse();
    }
    out
}

/// Share of values that differ.
fn changed(a: &RgbImage, b: &RgbImage) -> f64 {
    let n = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
    n as f64 / a.data.len() as f64
}

/// A project whose only character has a reference picture: (script, picture).
fn fox_project(s: &Studio) -> (std::path::PathBuf, std::path::PathBuf) {
    let project = s.path("project");
    std::fs::create_dir_all(&project).unwrap();
    write_png(&fox_picture(), &project.join("fox.png")).unwrap();
    let script = project.join("fox-tales.yaml");
    std::fs::write(&script, SCRIPT).unwrap();
    (script, project.join("fox.png"))
}

/// Editing the reference picture in place (same path, new bytes) must redraw the keyframes
/// the character leads: the picture is part of what they show.
#[test]
fn editing_a_reference_picture_in_place_redraws_its_keyframes() {
    let s = Studio::new();
    let (script, picture) = fox_project(&s);
    let first = render(&s, &script, &s.path("out1"));
    let key = stage(&first, "keyframes")["key"].clone();
    write_png(&swapped(&fox_picture()), &picture).unwrap();
    let second = render(&s, &script, &s.path("out2"));
    let kf = stage(&second, "keyframes");
    assert_ne!(
        kf["key"], key,
        "the keyframes were reused although the reference picture changed: {kf}"
    );
    assert_eq!(kf["items"]["made"], 2, "{kf}");
}
