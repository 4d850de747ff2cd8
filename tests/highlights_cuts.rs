//! Shot-boundary detection on synthetic recordings with known cuts (`highlights::synth`):
//! recall and precision of our ContentDetector and AdaptiveDetector ports against the truth,
//! and their cut lists against PySceneDetect 0.6.7.1 itself (the venv that
//! `bash scripts/scenedetect-venv.sh` builds; `make test` builds it first).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use reelsmith::highlights::analyze::{analyse, AnalysisParams, DetectorChoice, Progress};
use reelsmith::highlights::cuts::{
    downscaled_size, resize, AdaptiveParams, ContentParams, CutDetector, Detector,
};
use reelsmith::highlights::synth::{
    self, available_codecs, Codec, Container, Entry, Flash, Segment, SynthSpec, SynthTruth,
};

struct Clip {
    name: &'static str,
    spec: SynthSpec,
}

fn seg(source: &str, seconds: f64) -> Segment {
    Segment::cut(source, seconds)
}

fn base(container: Container, segments: Vec<Segment>) -> SynthSpec {
    SynthSpec {
        width: 320,
        height: 180,
        fps: 30,
        segments,
        flashes: vec![],
        audio: None,
        container,
        crf: 23,
        gop: 60,
    }
}

/// The clips: hard cuts between different sources; dissolves and flashes that follow cuts
/// (in Matroska, with a second codec when libav has one); fast pans and noisy low-bitrate shots.
fn clips() -> Vec<Clip> {
    let mkv = available_codecs()
        .into_iter()
        .find(|c| *c != Codec::H264)
        .unwrap_or(Codec::H264);
    let cuts = base(
        Container::Mp4,
        vec![
            seg("testsrc2", 2.0),
            seg("mandelbrot", 1.5),
            seg("smptebars", 1.0),
            seg("color=c=0x202060", 1.2),
            seg("testsrc2,hue=h=120", 0.9),
            seg("rgbtestsrc", 1.0),
            seg("mandelbrot,hue=h=180:s=2", 2.0),
            seg("color=c=orange", 0.6),
            seg("testsrc,hue=h=60", 1.5),
            seg("smptehdbars", 1.0),
        ],
    );
    let fade = |src: &str, secs: f64, frames: u32| Segment {
        into: Entry::Fade { frames },
        ..seg(src, secs)
    };
    let mut fades = base(
        Container::Mkv(mkv),
        vec![
            seg("testsrc2", 2.0),
            fade("mandelbrot", 2.0, 30),
            seg("smptebars", 1.5),
            fade("color=c=darkred", 1.5, 20),
            seg("testsrc2,hue=h=200", 2.0),
            seg("rgbtestsrc", 1.5),
            fade("mandelbrot,hue=h=90", 2.0, 40),
            seg("color=c=0x30a040", 1.0),
        ],
    );
    // Flashes a few frames after cuts (at 120 and 270): merged into the cut. (A flash while a
    // merge is still open, e.g. right after the cut at 210, would move that cut to the flash's
    // last frame: PySceneDetect's merge filter emits the last candidate of a merged run.)
    fades.flashes = vec![
        Flash {
            at_frame: 124,
            frames: 2,
        },
        Flash {
            at_frame: 275,
            frames: 1,
        },
    ];
    let pan = |src: &str, secs: f64, px: f64, noise: u8| Segment {
        pan_px_per_frame: px,
        noise,
        ..seg(src, secs)
    };
    let mut motion = base(
        Container::Mp4,
        vec![
            pan("testsrc2", 2.0, 6.0, 0),
            pan("mandelbrot", 2.0, 12.0, 0),
            pan("smptebars", 1.5, 0.0, 40),
            pan("testsrc2,hue=h=240", 2.0, 9.0, 30),
            pan("color=c=0x604020", 1.0, 0.0, 0),
            pan("rgbtestsrc", 1.5, 5.0, 20),
            pan("mandelbrot,hue=h=120", 2.0, 4.0, 25),
        ],
    );
    motion.crf = 44;
    motion.gop = 250;
    vec![
        Clip {
            name: "cuts.mp4",
            spec: cuts,
        },
        Clip {
            name: "fades_flashes.mkv",
            spec: fades,
        },
        Clip {
            name: "pans_noise.mp4",
            spec: motion,
        },
    ]
}

/// Our cut list for `path` as the product finds it: the analysis (every frame of a short
/// recording, scanned small by swscale, our detector, flashes told from cuts). Also returns the
/// frames seen.
fn detect(path: &Path, detector: Detector) -> (Vec<u64>, u64) {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let params = AnalysisParams {
        detector: match detector {
            Detector::Content(_) => DetectorChoice::Content,
            Detector::Adaptive(_) => DetectorChoice::Adaptive,
        },
        ..AnalysisParams::default()
    };
    let windows = |_: &_, _: Option<&_>, _: &[_]| Vec::new();
    let a = analyse(path, cache.path(), &params, &windows, &Progress::silent())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let frames = a.spans.iter().map(|s| s.frames.len() as u64).sum();
    (a.cuts(), frames)
}

/// The cut list of the exact PySceneDetect path: every frame decoded to RGB, then OpenCV's
/// `INTER_LINEAR` downscale (bit-exact) — what the analysis's swscale path approximates.
fn detect_exact(path: &Path, detector: Detector) -> Vec<u64> {
    let mut d = CutDetector::new(detector);
    let mut cuts = Vec::new();
    reelsmith::media::decode::for_each_frame(path, |i, _, img| {
        let (w, h) = downscaled_size(img.width, img.height);
        match resize(&img.data, img.width, img.height, w, h) {
            Some(small) => cuts.extend(d.push(i, &small, w, h)),
            None => panic!("{}: frame {i} could not be resized", path.display()),
        }
        true
    })
    .unwrap_or_else(|e| panic!("{e}"));
    cuts.extend(d.finish());
    cuts
}

/// How many of `found` match `truth` within ±`tol` frames, one to one.
fn matches(found: &[u64], truth: &[u64], tol: u64) -> usize {
    let mut used = vec![false; truth.len()];
    let mut hit = 0;
    for f in found {
        if let Some(j) = (0..truth.len()).find(|&j| !used[j] && truth[j].abs_diff(*f) <= tol) {
            used[j] = true;
            hit += 1;
        }
    }
    hit
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("REELSMITH_SCENEDETECT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/reelsmith/scenedetect-venv")
        });
    let py = venv.join("bin/python");
    assert!(
        py.is_file(),
        "the PySceneDetect reference venv is missing ({}): run `bash scripts/scenedetect-venv.sh` \
         (or `make test-models`) first",
        py.display()
    );
    py
}

#[derive(serde::Deserialize)]
struct Reference {
    version: String,
    cuts: Vec<u64>,
    frames: u64,
    seconds: f64,
}

fn reference(py: &Path, video: &Path, detector: &str) -> Reference {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scenedetect_ref.py");
    let out = Command::new(py)
        .arg(&script)
        .arg(video)
        .arg("--detector")
        .arg(detector)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scenedetect_ref.py {} failed: {}",
        video.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "scenedetect_ref.py output: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn detectors() -> [(&'static str, Detector); 2] {
    [
        ("content", Detector::Content(ContentParams::default())),
        ("adaptive", Detector::Adaptive(AdaptiveParams::default())),
    ]
}

#[test]
fn cuts_match_the_truth_and_pyscenedetect() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // REELSMITH_HIGHLIGHTS_CLIPS=DIR keeps the clips there (to rerun scenedetect_ref.py on them).
    let keep = std::env::var_os("REELSMITH_HIGHLIGHTS_CLIPS").map(PathBuf::from);
    let out = keep.as_deref().unwrap_or(dir.path());
    let py = venv_python();
    let mut made: Vec<(PathBuf, SynthTruth)> = Vec::new();
    for clip in clips() {
        let path = out.join(clip.name);
        let truth = synth::write(&path, &clip.spec).unwrap_or_else(|e| panic!("{e}"));
        made.push((path, truth));
    }
    for (name, det) in detectors() {
        let (mut tp, mut found_n, mut truth_n, mut in_fades) = (0usize, 0usize, 0usize, 0usize);
        let (mut ours_t, mut ours_frames, mut ref_t, mut ref_frames) = (0.0, 0u64, 0.0, 0u64);
        for (path, truth) in &made {
            let t0 = Instant::now();
            let (found, frames) = detect(path, det.clone());
            ours_t += t0.elapsed().as_secs_f64();
            ours_frames += frames;
            assert_eq!(frames, truth.frames, "{}", path.display());
            // Flashes (all placed within min_scene_len after a cut) and dissolves are not cuts.
            for f in &truth.flashes {
                assert!(
                    !found.iter().any(|c| c.abs_diff(*f) <= 2),
                    "{name}: {}: the flash at {f} was taken for a cut: {found:?}",
                    path.display()
                );
            }
            tp += matches(&found, &truth.cuts, 1);
            // A detection inside a dissolve finds a (gradual) shot boundary: neither a hit on a
            // hard cut nor a false one. The adaptive detector, like PySceneDetect's, marks the
            // ends of a dissolve between still shots (the first blended frame's change over
            // still neighbours is an unbounded ratio).
            let in_fade = |c: &u64| {
                truth
                    .fades
                    .iter()
                    .any(|(a, b)| *c + 1 >= *a && *c <= *b + 1)
            };
            let fade_hits = found.iter().filter(|c| in_fade(c)).count();
            in_fades += fade_hits;
            found_n += found.len() - fade_hits;
            truth_n += truth.cuts.len();
            let r = reference(&py, path, name);
            assert_eq!(r.version, "0.6.7.1");
            assert_eq!(r.frames, frames, "{}", path.display());
            ref_t += r.seconds;
            ref_frames += r.frames;
            let exact = detect_exact(path, det.clone());
            assert_eq!(
                exact,
                r.cuts,
                "{name}: {}: the exact port differs from PySceneDetect",
                path.display()
            );
            let agree = matches(&found, &r.cuts, 1);
            eprintln!(
                "{name} {}: truth {:?}\n  ours {found:?}\n  pyscenedetect {:?}",
                path.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default(),
                truth.cuts,
                r.cuts
            );
            assert!(
                agree == found.len() && agree == r.cuts.len(),
                "{name}: {}: ours {found:?} vs PySceneDetect {:?}",
                path.display(),
                r.cuts
            );
        }
        let recall = tp as f64 / truth_n.max(1) as f64;
        let precision = tp as f64 / found_n.max(1) as f64;
        eprintln!(
            "{name}: recall {recall:.3} precision {precision:.3} ({tp}/{truth_n} cuts, {found_n} found, {in_fades} in dissolves); \
             decode+detect {:.0} frames/s ours, {:.0} frames/s PySceneDetect",
            ours_frames as f64 / ours_t,
            ref_frames as f64 / ref_t
        );
        assert!(recall >= 0.95, "{name}: recall {recall:.3}");
        assert!(precision >= 0.95, "{name}: precision {precision:.3}");
    }
}

/// A full-white flash in the middle of a long shot: PySceneDetect 0.6.7.1's merge filter only
/// merges candidates within min_scene_len of an earlier cut, so the flash's first frame is
/// reported as a cut and its return is merged into it. Our detector ports that exactly; the
/// analysis then tells the flash from a cut (bright frames, then the picture from before) and
/// reports it as a flash: the product's cuts are PySceneDetect's without the flashes.
#[test]
fn isolated_flashes_are_flashes_not_cuts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let py = venv_python();
    let mut spec = base(
        Container::Mp4,
        vec![seg("testsrc2", 3.0), seg("mandelbrot", 3.0)],
    );
    spec.flashes = vec![
        Flash {
            at_frame: 40,
            frames: 1,
        },
        Flash {
            at_frame: 130,
            frames: 2,
        },
    ];
    let path = dir.path().join("flash.mp4");
    let truth = synth::write(&path, &spec).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(truth.cuts, vec![90]);
    for (name, det) in detectors() {
        let exact = detect_exact(&path, det.clone());
        let (found, _) = detect(&path, det);
        let r = reference(&py, &path, name);
        eprintln!(
            "{name} flash.mp4: ours {found:?} exact port {exact:?} pyscenedetect {:?}",
            r.cuts
        );
        assert_eq!(
            exact, r.cuts,
            "{name}: the exact port follows PySceneDetect"
        );
        assert_eq!(found, vec![90], "{name}: only the real cut");
        let without_flashes: Vec<u64> = r
            .cuts
            .iter()
            .copied()
            .filter(|c| !truth.flashes.iter().any(|f| c.abs_diff(*f) <= 1))
            .collect();
        assert_eq!(found, without_flashes, "{name}");
    }
}

/// The sizes the brief asks synth to make quickly (run with `--ignored`): a 2-hour 64×36 10 fps
/// recording with 8 kHz mono audio well under a minute, and a 60 s 1080p60 one.
#[test]
#[ignore]
fn synth_speed() {
    use reelsmith::highlights::synth::{AudioEvent, AudioSpec};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sources = ["testsrc2", "mandelbrot", "smptebars", "color=c=0x203040"];
    let mut long = base(
        Container::Mp4,
        (0..240)
            .map(|i| seg(sources[i % sources.len()], 30.0))
            .collect(),
    );
    (long.width, long.height, long.fps) = (64, 36, 10);
    long.audio = Some(AudioSpec {
        rate: 8000,
        channels: 1,
        base_db: -30.0,
        events: (0..120)
            .map(|i| AudioEvent {
                at: f64::from(i) * 60.0 + 5.0,
                seconds: 2.0,
                gain_db: -3.0,
            })
            .collect(),
    });
    let t0 = Instant::now();
    let truth = synth::write(&dir.path().join("long.mp4"), &long).unwrap_or_else(|e| panic!("{e}"));
    let long_s = t0.elapsed().as_secs_f64();
    assert_eq!(truth.frames, 72_000);
    let mut hd = base(
        Container::Mp4,
        (0..6)
            .map(|i| seg(sources[i % sources.len()], 10.0))
            .collect(),
    );
    (hd.width, hd.height, hd.fps) = (1920, 1080, 60);
    let t0 = Instant::now();
    let path = dir.path().join("hd.mp4");
    synth::write(&path, &hd).unwrap_or_else(|e| panic!("{e}"));
    let hd_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let (_, frames) = detect(&path, Detector::Content(ContentParams::default()));
    let ours = frames as f64 / t0.elapsed().as_secs_f64();
    let r = reference(&venv_python(), &path, "content");
    eprintln!(
        "synth: 2 h 64×36 10 fps + 8 kHz mono in {long_s:.1} s; 60 s 1080p60 in {hd_s:.1} s; \
         content detection on it (decode+resize+detect) {ours:.0} frames/s ours, {:.0} frames/s \
         PySceneDetect ({:.2}×)",
        r.frames as f64 / r.seconds,
        ours / (r.frames as f64 / r.seconds)
    );
    assert!(
        long_s < 60.0,
        "2-hour synthetic recording took {long_s:.1} s"
    );
}
