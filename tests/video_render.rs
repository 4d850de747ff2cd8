//! Renders whose scenes are animated by an installed video model (the tiny LTX-Video of
//! `video_support`, imported with `models import` and chosen with REELSMITH_VIDEO): the clips
//! are generated (they move, the camera engine is not used), each starts on its keyframe, a
//! `morph` transition is a generated clip, a re-render is all cache hits, a poisoned weight
//! fails the task with a message naming the model and dtype; and `reelsmith video` makes a
//! clip from the command line or refuses bad arguments with exit code 2. The same for Wan2.1
//! (the tiny diffusers-layout models of `wan_support`): text-to-video clips held to their
//! keyframes, image-to-video and first-last-frame clips from `reelsmith video`, and its checks
//! (4k+1 frames, sizes /16, an image model without --image).

mod video_support;
mod wan_support;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use reelsmith::media::clip::ClipReader;
use reelsmith::media::decode;
use reelsmith::media::image::RgbImage;
use reelsmith::media::stills::{self, read_png};
use reelsmith_video::ltx::load::{self as ltx_load, LtxSource};
use video_support::{Studio, MODEL_ID};

/// Small and quick: 128×64 generation (latents 8×4 with the tiny 16× VAE), 4 steps.
const FAST: [(&str, &str); 3] = [
    ("REELSMITH_VIDEO", MODEL_ID),
    ("REELSMITH_VIDEO_AREA", "8192"),
    ("REELSMITH_VIDEO_STEPS", "4"),
];

const SCRIPT: &str = r#"title: Tide Pools
channel: explainer
language: en
scenes:
  - prompt: a tide pool with a red starfish
    motion: zoom-in
    transition: morph
    lines:
      - text: The tide goes out.
  - prompt: a crab under a rock
    lines:
      - text: Something moves.
"#;

fn project(s: &Studio) -> PathBuf {
    let dir = s.path("project");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("tide-pools.yaml");
    std::fs::write(&script, SCRIPT).unwrap();
    script
}

fn render(
    s: &Studio,
    script: &Path,
    out: &Path,
) -> (std::process::Output, Option<serde_json::Value>) {
    let o = s.run(
        &[
            "render",
            script.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quality",
            "draft",
        ],
        &FAST,
    );
    let report = std::fs::read_to_string(out.join("tide-pools/report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    (o, report)
}

fn stage<'a>(report: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["node"] == node)
        .unwrap_or_else(|| panic!("no stage {node} in {report}"))
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.data.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

/// The keyframe through the tiny VAE alone (encode, decode at the decode timestep): what a
/// clip's first frame must be, as far as the VAE can draw it.
fn round_trip(model: &Path, keyframe: &RgbImage, w: u32, h: u32) -> RgbImage {
    let nets = ltx_load::load(
        &LtxSource::Diffusers(model.to_path_buf()),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let img = stills::cover(keyframe, w, h);
    let v: Vec<f32> = img.data.iter().map(|&p| p as f32 / 127.5 - 1.0).collect();
    let x = Tensor::from_vec(v, (h as usize, w as usize, 3), &Device::Cpu)
        .unwrap()
        .permute((2, 0, 1))
        .unwrap()
        .unsqueeze(1)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
        .contiguous()
        .unwrap();
    let z = nets.vae.encode(&x).unwrap();
    let temb = Tensor::new(&[0.05f32], &Device::Cpu).unwrap();
    let out = nets.vae.decode(&z, Some(&temb), None).unwrap();
    let rgb = reelsmith_video::ltx::pipeline::to_rgb(&out).unwrap();
    RgbImage {
        width: w,
        height: h,
        data: rgb[0].clone(),
    }
}

#[test]
fn scenes_are_generated_clips_that_move_start_on_their_keyframes_and_are_cached() {
    let s = Studio::new(false);
    let script = project(&s);
    let (o, report) = render(&s, &script, &s.path("out1"));
    assert!(
        o.status.success(),
        "render failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let report = report.expect("report.json");
    let an = stage(&report, "animate");
    assert_eq!(an["status"], "done", "{an}");
    assert_eq!(an["engine"], format!("ltx-video/{MODEL_ID}"), "{an}");
    let dir = s.data.join("artifacts").join(an["key"].as_str().unwrap());
    let clips: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("clips.json")).unwrap()).unwrap();
    assert_eq!(clips["engine"], format!("ltx-video/{MODEL_ID}"));
    let list = clips["clips"].as_array().unwrap();
    assert_eq!(list.len(), 2);

    let kf = stage(&report, "keyframes");
    let kdir = s.data.join("artifacts").join(kf["key"].as_str().unwrap());
    for (i, c) in list.iter().enumerate() {
        // Generated frames, not a camera move.
        assert_eq!(c["clip"]["type"], "frames", "{c}");
        let file = dir.join(c["clip"]["file"].as_str().unwrap());
        let mut r = ClipReader::open(&file).unwrap();
        let (w, h, n) = (r.width(), r.height(), r.frames());
        assert_eq!((w, h), (128, 64), "generation size");
        // 3 s at the model's 24 fps, made 8k+1.
        assert!(n >= 73 && (n - 1) % 8 == 0, "{n} frames");
        let frames: Vec<RgbImage> = (0..n).map(|k| r.frame(k).unwrap().clone()).collect();
        let moving = frames.windows(2).filter(|p| p[0] != p[1]).count();
        assert!(
            moving as u32 >= (n - 1) * 9 / 10,
            "scene {i}: only {moving} of {} consecutive frame pairs differ",
            n - 1
        );
        let key = read_png(&kdir.join(format!("scene-{i:03}.png"))).unwrap();
        let reference = round_trip(&s.model, &key, w, h);
        let p = psnr(&frames[0], &reference);
        println!("scene {i}: first frame vs keyframe round trip {p:.1} dB");
        assert!(
            p > 30.0,
            "scene {i}: first frame is {p:.1} dB from its keyframe"
        );
    }
    // The morph into scene 2 is a generated clip too, ending on scene 2's keyframe.
    let morph = &list[0]["morph"];
    assert_eq!(morph["type"], "frames", "{}", list[0]);
    assert!(list[1].get("morph").is_none());
    assert!(s.path("out1/tide-pools/en/final.mp4").is_file());
    let info = decode::probe(&s.path("out1/tide-pools/en/final.mp4")).unwrap();
    assert!(info.video.is_some());

    // Nothing changed: the second render reuses every clip.
    let (o2, again) = render(&s, &script, &s.path("out2"));
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let an2 = stage(again.as_ref().unwrap(), "animate");
    assert_eq!(an2["status"], "cached", "{an2}");
}

#[test]
fn a_poisoned_weight_fails_the_task_naming_the_model_and_dtype() {
    let s = Studio::new(true);
    let script = project(&s);
    let (o, _) = render(&s, &script, &s.path("out"));
    assert!(!o.status.success(), "a NaN weight rendered a video");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("NaN"), "{err}");
    assert!(err.contains(MODEL_ID), "{err}");
    assert!(err.contains("F32"), "{err}");
    assert!(!s.path("out/tide-pools/en/final.mp4").exists());
}

fn video(s: &Studio, extra: &[&str], out: &Path) -> std::process::Output {
    let mut args = vec![
        "video",
        "a crab scuttles across wet sand",
        "--model",
        s.model.to_str().unwrap(),
        "--device",
        "cpu",
        "--seed",
        "5",
        "--steps",
        "3",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    s.run(&args, &[])
}

#[test]
fn the_video_command_makes_clips_and_refuses_bad_arguments_with_exit_2() {
    let s = Studio::new(false);
    let out = s.path("clip.mp4");
    // Text to video.
    let o = video(&s, &["--frames", "17", "--size", "64x32"], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let n = decode::for_each_frame(&out, |_, _, _| true).unwrap();
    assert_eq!(n, 17);

    // The model by its id, from REELSMITH_VIDEO.
    let by_id = s.path("by-id.mp4");
    let o = s.run(
        &[
            "video",
            "ripples",
            "--device",
            "cpu",
            "--steps",
            "2",
            "--frames",
            "9",
            "--size",
            "64x32",
            "-o",
            by_id.to_str().unwrap(),
        ],
        &[("REELSMITH_VIDEO", MODEL_ID)],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains(MODEL_ID));

    // A transition between two pictures.
    let first = s.path("first.png");
    let last = s.path("last.png");
    stills::write_png(&RgbImage::filled(64, 32, [200, 40, 40]), &first).unwrap();
    stills::write_png(&RgbImage::filled(64, 32, [40, 40, 200]), &last).unwrap();
    let out2 = s.path("morph.mp4");
    let o = video(
        &s,
        &[
            "--frames",
            "9",
            "--size",
            "64x32",
            "--image",
            first.to_str().unwrap(),
            "--end",
            last.to_str().unwrap(),
        ],
        &out2,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out2.is_file());

    // Bad input: exit 2, the nearest valid values named, nothing written.
    let bad = s.path("bad.mp4");
    for (args, says) in [
        (vec!["--frames", "12", "--size", "64x32"], "9 and 17"),
        (vec!["--frames", "9", "--size", "70x32"], "64×32"),
        (
            vec![
                "--frames",
                "17",
                "--size",
                "64x32",
                "--condition",
                "x.png@5",
            ],
            "multiples of 8",
        ),
        (
            vec!["--frames", "9", "--size", "64x32", "--image", "missing.png"],
            "no such file",
        ),
    ] {
        let o = video(&s, &args, &bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!bad.exists() && !s.path("bad.mp4.part").exists());
    }
}

/// The tiny Wan model of `wan_support` imported as `id`.
fn wan_studio(id: &str, task: wan_support::Task) -> Studio {
    Studio::with_model(id, |dir| wan_support::build_model(dir, task))
}

#[test]
fn wan_scenes_are_generated_clips_that_start_on_their_keyframes_and_are_cached() {
    let s = wan_studio("tiny-wan", wan_support::Task::T2v);
    let script = project(&s);
    let env = [
        ("REELSMITH_VIDEO", "tiny-wan"),
        ("REELSMITH_VIDEO_AREA", "4096"),
        ("REELSMITH_VIDEO_STEPS", "3"),
    ];
    let out = s.path("out1");
    let args = |out: &Path| {
        vec![
            "render".to_string(),
            script.to_str().unwrap().to_string(),
            "--out".into(),
            out.to_str().unwrap().to_string(),
            "--quality".into(),
            "draft".into(),
        ]
    };
    let run = |out: &Path| {
        let a = args(out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = s.run(&a, &env);
        let report: Option<serde_json::Value> =
            std::fs::read_to_string(out.join("tide-pools/report.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
        (o, report)
    };
    let (o, report) = run(&out);
    assert!(
        o.status.success(),
        "render failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let report = report.expect("report.json");
    let an = stage(&report, "animate");
    assert_eq!(an["status"], "done", "{an}");
    assert_eq!(an["engine"], "wan/tiny-wan", "{an}");
    let dir = s.data.join("artifacts").join(an["key"].as_str().unwrap());
    let clips: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("clips.json")).unwrap()).unwrap();
    let list = clips["clips"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let kf = stage(&report, "keyframes");
    let kdir = s.data.join("artifacts").join(kf["key"].as_str().unwrap());
    for (i, c) in list.iter().enumerate() {
        assert_eq!(c["clip"]["type"], "frames", "{c}");
        let file = dir.join(c["clip"]["file"].as_str().unwrap());
        let mut r = ClipReader::open(&file).unwrap();
        let (w, h, n) = (r.width(), r.height(), r.frames());
        assert!(
            w % 16 == 0 && h % 16 == 0 && w * h <= 4096 && w > h,
            "generation size {w}×{h}"
        );
        // 3 s at Wan's 16 fps, made 4k+1.
        assert!(n >= 45 && (n - 1) % 4 == 0, "{n} frames");
        let frames: Vec<RgbImage> = (0..n).map(|k| r.frame(k).unwrap().clone()).collect();
        let moving = frames.windows(2).filter(|p| p[0] != p[1]).count();
        assert!(
            moving as u32 >= (n - 1) / 2,
            "scene {i}: only {moving} of {} consecutive frame pairs differ",
            n - 1
        );
        let key = read_png(&kdir.join(format!("scene-{i:03}.png"))).unwrap();
        let reference = wan_support::round_trip(&s.model, &stills::cover(&key, w, h));
        let p = psnr(&frames[0], &reference);
        println!("wan scene {i}: first frame vs keyframe round trip {p:.1} dB");
        assert!(
            p > 30.0,
            "scene {i}: first frame is {p:.1} dB from its keyframe"
        );
        // The later frames are generated, not the keyframe held.
        let last = psnr(&frames[n as usize - 1], &reference);
        assert!(
            last < p,
            "scene {i}: the last frame is the keyframe ({last:.1} dB)"
        );
    }
    let morph = &list[0]["morph"];
    assert_eq!(morph["type"], "frames", "{}", list[0]);
    assert!(s.path("out1/tide-pools/en/final.mp4").is_file());

    // Nothing changed: the prompt states and every clip come from the cache.
    let (o2, again) = run(&s.path("out2"));
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let an2 = stage(again.as_ref().unwrap(), "animate");
    assert_eq!(an2["status"], "cached", "{an2}");

    // A first-last-frame model for the morphs (REELSMITH_MORPH): the scene clips stay what they
    // were, the morph is made again by the other model.
    let flf = s.path("models/tiny-flf2v");
    wan_support::build_model(&flf, wan_support::Task::Flf2v);
    let mut env3 = env.to_vec();
    env3.push(("REELSMITH_MORPH", flf.to_str().unwrap()));
    let out3 = s.path("out3");
    let a = args(&out3);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o3 = s.run(&a, &env3);
    assert!(
        o3.status.success(),
        "{}",
        String::from_utf8_lossy(&o3.stderr)
    );
    let report3: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out3.join("tide-pools/report.json")).unwrap(),
    )
    .unwrap();
    let an3 = stage(&report3, "animate");
    assert_eq!(an3["status"], "done", "{an3}");
    let dir3 = s.data.join("artifacts").join(an3["key"].as_str().unwrap());
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(read(&dir3, "scene-000.mkv"), read(&dir, "scene-000.mkv"));
    assert_eq!(read(&dir3, "scene-001.mkv"), read(&dir, "scene-001.mkv"));
    assert_ne!(read(&dir3, "morph-000.mkv"), read(&dir, "morph-000.mkv"));
    // A morph model that is not a first-last-frame model is refused before anything runs.
    let mut env4 = env.to_vec();
    env4.push(("REELSMITH_MORPH", "tiny-wan"));
    let o4 = s.run(&a, &env4);
    let err = String::from_utf8_lossy(&o4.stderr);
    assert_eq!(o4.status.code(), Some(2), "{err}");
    assert!(
        err.contains("REELSMITH_MORPH") && err.contains("first-last-frame"),
        "{err}"
    );
}

fn wan_video(s: &Studio, id: &str, extra: &[&str], out: &Path) -> std::process::Output {
    let mut args = vec![
        "video",
        "a crab scuttles across wet sand",
        "--model",
        id,
        "--device",
        "cpu",
        "--seed",
        "5",
        "--steps",
        "2",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    s.run(&args, &[])
}

#[test]
fn the_video_command_runs_wan_models_and_refuses_bad_arguments_with_exit_2() {
    let s = wan_studio("tiny-wan-i2v", wan_support::Task::I2v);
    let first = s.path("first.png");
    let last = s.path("last.png");
    stills::write_png(&RgbImage::filled(32, 32, [200, 40, 40]), &first).unwrap();
    stills::write_png(&RgbImage::filled(32, 32, [40, 40, 200]), &last).unwrap();
    let out = s.path("clip.mp4");
    let o = wan_video(
        &s,
        "tiny-wan-i2v",
        &[
            "--frames",
            "9",
            "--size",
            "32x32",
            "--image",
            first.to_str().unwrap(),
        ],
        &out,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(decode::for_each_frame(&out, |_, _, _| true).unwrap(), 9);

    // A first-last-frame model, by path.
    let flf = s.path("models/tiny-flf2v");
    wan_support::build_model(&flf, wan_support::Task::Flf2v);
    let out2 = s.path("morph.mp4");
    let o = wan_video(
        &s,
        flf.to_str().unwrap(),
        &[
            "--frames",
            "9",
            "--size",
            "32x32",
            "--image",
            first.to_str().unwrap(),
            "--end",
            last.to_str().unwrap(),
        ],
        &out2,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(decode::for_each_frame(&out2, |_, _, _| true).unwrap(), 9);

    let bad = s.path("bad.mp4");
    let img = first.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--frames", "12", "--size", "32x32", "--image", img],
            "9 and 13",
        ),
        (
            vec!["--frames", "9", "--size", "40x32", "--image", img],
            "48×32",
        ),
        (vec!["--frames", "9", "--size", "32x32"], "--image"),
        (
            vec![
                "--frames",
                "9",
                "--size",
                "32x32",
                "--image",
                img,
                "--condition",
                "x.png@4",
            ],
            "first frame",
        ),
    ] {
        let o = wan_video(&s, "tiny-wan-i2v", &args, &bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!bad.exists() && !s.path("bad.mp4.part").exists());
    }
}
