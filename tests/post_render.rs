//! The post stage in real renders: generated clips (the tiny LTX-Video of `video_support`,
//! made at the model's 24 fps) retimed to a 60 fps output and upscaled to the frame by the
//! embedded engines (no post model installed: Lanczos and libav's minterpolate), and the 4K
//! master quality giving a 3840×2160 final. Outputs are decoded and measured.

mod video_support;

use std::path::{Path, PathBuf};

use reelsmith::media::clip::ClipReader;
use reelsmith::media::decode;
use video_support::{Studio, MODEL_ID};

const FAST: [(&str, &str); 3] = [
    ("REELSMITH_VIDEO", MODEL_ID),
    ("REELSMITH_VIDEO_AREA", "8192"),
    ("REELSMITH_VIDEO_STEPS", "2"),
];

fn script(s: &Studio, name: &str, text: &str) -> PathBuf {
    let dir = s.path("project");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn report(out: &Path, project: &str) -> serde_json::Value {
    let t = std::fs::read_to_string(out.join(project).join("report.json")).expect("report.json");
    serde_json::from_str(&t).unwrap()
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
fn generated_clips_are_retimed_to_60_fps_and_upscaled_by_the_embedded_engines() {
    let s = Studio::new(false);
    let sc = script(
        &s,
        "harbour.yaml",
        "title: Harbour\nchannel: anime\nlanguage: en\nfps: 60\nscenes:\n  - prompt: boats in a harbour at dawn\n    lines:\n      - text: The boats wake up.\n",
    );
    let out = s.path("out");
    let o = s.run(
        &[
            "render",
            sc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quality",
            "draft",
        ],
        &FAST,
    );
    assert!(
        o.status.success(),
        "render failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rep = report(&out, "harbour");
    let post = stage(&rep, "post");
    assert_eq!(post["status"], "done", "{post}");
    let engine = post["engine"].as_str().unwrap();
    assert!(
        engine.contains("lanczos") && engine.contains("minterpolate"),
        "{engine}"
    );

    // The animate clip at 24 fps and the post clip at 60, same duration, covering 1280×720.
    let art = |n: &serde_json::Value| s.data.join("artifacts").join(n["key"].as_str().unwrap());
    let read = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("clips.json")).unwrap()).unwrap()
    };
    let an_dir = art(stage(&rep, "animate"));
    let post_dir = art(post);
    let (a, p) = (read(&an_dir), read(&post_dir));
    let (ac, pc) = (&a["clips"][0]["clip"], &p["clips"][0]["clip"]);
    assert_eq!(ac["fps"].as_f64().unwrap().round(), 24.0, "{ac}");
    assert_eq!(pc["fps"].as_f64().unwrap(), 60.0, "{pc}");
    let (an, pn) = (
        ac["frames"].as_u64().unwrap(),
        pc["frames"].as_u64().unwrap(),
    );
    let want = an as f64 * 60.0 / 24.0;
    assert!(
        (pn as f64 - want).abs() <= 3.0,
        "{an} frames at 24 fps became {pn} at 60"
    );
    let r = ClipReader::open(&post_dir.join(pc["file"].as_str().unwrap())).unwrap();
    assert_eq!(r.frames() as u64, pn);
    assert!(
        r.width() >= 1280 && r.height() >= 720,
        "{}x{}",
        r.width(),
        r.height()
    );
    // Interpolated frames are new pictures, not repeats: most neighbours differ.
    let mut r = r;
    let frames: Vec<_> = (0..r.frames().min(40))
        .map(|k| r.frame(k).unwrap().clone())
        .collect();
    let differ = frames.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        differ >= frames.len() * 3 / 4,
        "only {differ} of {} neighbours differ",
        frames.len() - 1
    );

    let info = decode::probe(&out.join("harbour/en/final.mp4")).unwrap();
    let v = info.video.expect("a video stream");
    assert_eq!((v.width, v.height), (1280, 720));
    assert!((v.fps - 60.0).abs() < 0.01, "final at {} fps", v.fps);
    assert!(
        (v.frames as f64 - v.duration * 60.0).abs() <= 2.0,
        "{} frames in {:.2} s",
        v.frames,
        v.duration
    );
}

#[test]
fn master_quality_gives_a_3840x2160_final() {
    let s = Studio::new(false);
    let sc = script(
        &s,
        "peak.yaml",
        "title: Peak\nchannel: explainer\nlanguage: en\nscenes:\n  - prompt: a mountain peak\n    lines:\n      - text: Up.\n",
    );
    let out = s.path("out");
    let o = s.run(
        &[
            "render",
            sc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quality",
            "master",
        ],
        &[("REELSMITH_VIDEO", "none")],
    );
    assert!(
        o.status.success(),
        "render failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let info = decode::probe(&out.join("peak/en/final.mp4")).unwrap();
    let v = info.video.expect("a video stream");
    assert_eq!((v.width, v.height), (3840, 2160));
    let rep = report(&out, "peak");
    assert_eq!(stage(&rep, "post")["status"], "done");
}

#[test]
fn a_channel_whose_output_rate_is_below_its_render_rate_is_refused_naming_the_field() {
    let s = Studio::new(false);
    let chan = s.config.join("channels");
    std::fs::create_dir_all(&chan).unwrap();
    std::fs::write(
        chan.join("anime.toml"),
        "[defaults]\nfps = 30\noutput_fps = 24\n",
    )
    .unwrap();
    let sc = script(
        &s,
        "slow.yaml",
        "title: Slow\nchannel: anime\nlanguage: en\nscenes:\n  - prompt: a cat\n    lines:\n      - text: Hi.\n",
    );
    let out = s.path("out");
    let o = s.run(
        &[
            "render",
            sc.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[("REELSMITH_VIDEO", "none")],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("defaults.output_fps"), "{err}");
    assert!(!out.join("slow").exists(), "something was written");
}

/// The real weights of `scripts/fetch-post-test-models.sh`, when fetched.
fn real_models() -> Option<(PathBuf, PathBuf)> {
    let root = std::env::var_os("REELSMITH_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/reelsmith/test-models")
        });
    let up = root.join("realesrgan-ncnn/realesr-animevideov3-x4.param");
    let rife = root.join("rife-4.0/flownet.pkl");
    if up.is_file() && rife.is_file() {
        Some((up, rife))
    } else {
        eprintln!(
            "skipped: no post test models in {} (scripts/fetch-post-test-models.sh)",
            root.display()
        );
        None
    }
}

/// RIFE named by path retimes the 128×64 clip 24→48 fps inside a render (upscaling off: a
/// network on every frame of a 1280×720 clip takes minutes on a CPU).
#[test]
fn named_models_take_over_the_post_stage() {
    let Some((up, rife)) = real_models() else {
        return;
    };
    let s = Studio::new(false);
    let sc = script(
        &s,
        "reef.yaml",
        "title: Reef\nchannel: anime\nlanguage: en\nfps: 48\nscenes:\n  - prompt: a coral reef\n    lines:\n      - text: Fish.\n",
    );
    let run = |upscale: &str, interpolate: &str, out: &Path| -> (serde_json::Value, PathBuf) {
        let mut env = FAST.to_vec();
        env.push(("REELSMITH_UPSCALE", upscale));
        env.push(("REELSMITH_INTERPOLATE", interpolate));
        let o = s.run(
            &[
                "render",
                sc.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--quality",
                "draft",
            ],
            &env,
        );
        assert!(
            o.status.success(),
            "render failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let rep = report(out, "reef");
        let post = stage(&rep, "post").clone();
        assert_eq!(post["status"], "done", "{post}");
        let dir = s.data.join("artifacts").join(post["key"].as_str().unwrap());
        let clips: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("clips.json")).unwrap())
                .unwrap();
        let c = &clips["clips"][0]["clip"];
        (post.clone(), dir.join(c["file"].as_str().unwrap()))
    };

    let (post, file) = run("none", rife.to_str().unwrap(), &s.path("out1"));
    assert!(
        post["engine"].as_str().unwrap().contains("flownet.pkl"),
        "{post}"
    );
    let mut r = ClipReader::open(&file).unwrap();
    assert_eq!(r.fps(), 48.0);
    assert_eq!((r.width(), r.height()), (128, 64));
    // Every second frame is RIFE's, between its neighbours: new, and closer to both than they
    // are to each other.
    let (a, m, b) = (
        r.frame(0).unwrap().clone(),
        r.frame(1).unwrap().clone(),
        r.frame(2).unwrap().clone(),
    );
    let d = |x: &reelsmith::media::image::RgbImage, y: &reelsmith::media::image::RgbImage| {
        x.data
            .iter()
            .zip(&y.data)
            .map(|(p, q)| (*p as f64 - *q as f64).abs())
            .sum::<f64>()
    };
    assert!(m != a && m != b, "the middle frame repeats a neighbour");
    assert!(
        d(&a, &m) < d(&a, &b) && d(&m, &b) < d(&a, &b),
        "the middle frame is not between"
    );
    let v = decode::probe(&s.path("out1/reef/en/final.mp4"))
        .unwrap()
        .video
        .unwrap();
    assert!((v.fps - 48.0).abs() < 0.01, "final at {} fps", v.fps);

    // The upscaler model as an engine: tests/post_models.rs (one frame; a whole clip through a
    // network at 1280×720 takes minutes on a CPU).
    let _ = up;
}
