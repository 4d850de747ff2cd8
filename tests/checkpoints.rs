//! Long stages checkpoint and resume: a stage run once to completion gives the reference bytes;
//! the same stage run in a fresh cache is cancelled after its second checkpoint, then run again
//! with the same task key. The second attempt must say where it resumed, redo less than a whole
//! run, and write the same bytes as the reference.
//!
//! - keyframes drawn by an image model (the tiny SD 1.5 of `image_support`, built from the
//!   committed parity fixtures): the denoising loop's latents, sampler history and noise
//!   position every 5 steps;
//! - animate with a video model (the tiny LTX of `video_support`): each window's latents are
//!   saved before its decode, so an attempt cut off after sampling decodes them without
//!   sampling again;
//! - animate with a Wan2.1 model (the tiny text-to-video of `wan_support`): besides the latents,
//!   the streamed decode's state after every latent frame, so a decode cut off halfway
//!   continues from the last finished latent frame;
//! - assemble: the picture in 10-second segments joined without re-encoding.

mod image_support;
mod video_support;
mod wan_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use reelsmith::config::ChannelSet;
use reelsmith::engines::diffusion::ImageModelRef;
use reelsmith::engines::models::StageModels;
use reelsmith::hub::registry::SamplingDefault;
use reelsmith::media::compose::{make_writable, new_frame};
use reelsmith::media::decode;
use reelsmith::media::encode::{EncodeSettings, Mp4Writer};
use reelsmith::pipeline::job::{prepare_text, RenderRequest};
use reelsmith::pipeline::runner::plan_nodes;
use reelsmith::pipeline::{
    ArtifactCache, ArtifactRef, JobSpec, Quality, Stage, StageCtx, StageError, StageEvent,
    StageKind,
};
use reelsmith::stages::animate::AnimateStage;
use reelsmith::stages::assemble::{AssembleStage, SEGMENT_SECONDS};
use reelsmith::stages::keyframes::{Cadence, KeyframesStage};
use tokio_util::sync::CancellationToken;

/// A job for `script` at a small size (320×180, 10 fps) so the stages run quickly.
fn job(dir: &Path, script: &str, models: StageModels) -> JobSpec {
    let path = dir.join("script.yaml");
    std::fs::write(&path, script).unwrap();
    let req = RenderRequest {
        script: path,
        channel: None,
        languages: None,
        out: dir.join("out"),
        quality: Quality::Draft,
        seed: 7,
    };
    let channels = ChannelSet::load(None).unwrap();
    let mut job = prepare_text(&req, script, &channels, &models).unwrap();
    job.settings.width = 320;
    job.settings.height = 180;
    job.settings.fps = 10;
    job
}

/// Runs, into `cache`, every stage `target` reads (for `lang`); returns its inputs and its
/// task key.
fn prerequisites(
    job: &JobSpec,
    target: StageKind,
    lang: Option<&str>,
    cache: &ArtifactCache,
) -> (BTreeMap<StageKind, ArtifactRef>, String) {
    let graph = job.channel.graph().unwrap();
    let stages = reelsmith::stages::registry();
    let planned = plan_nodes(job, &graph, &stages).unwrap();
    let goal = planned
        .iter()
        .find(|p| p.node.kind == target && p.node.lang.as_deref() == lang)
        .expect("the target is in the graph");
    let needed: BTreeMap<&str, StageKind> =
        goal.inputs.iter().map(|(k, n)| (n.as_str(), *k)).collect();
    let mut done: BTreeMap<String, ArtifactRef> = BTreeMap::new();
    let cancel = CancellationToken::new();
    let progress = |_: f32| {};
    let inputs_of = |p: &reelsmith::pipeline::runner::Planned,
                     done: &BTreeMap<String, ArtifactRef>| {
        p.inputs
            .iter()
            .filter_map(|(k, n)| done.get(n).map(|a| (*k, a.clone())))
            .collect::<BTreeMap<_, _>>()
    };
    for p in &planned {
        let name = p.node.name();
        if !needed.contains_key(name.as_str()) {
            continue;
        }
        let dir = match cache.get(&p.key) {
            Some(dir) => dir,
            None => {
                let inputs = inputs_of(p, &done);
                let tmp = cache.begin(&p.key).unwrap();
                let ctx = StageCtx::new(
                    job,
                    p.node.lang.as_deref(),
                    &inputs,
                    tmp.path(),
                    &cancel,
                    cache,
                    &progress,
                );
                stages[&p.node.kind]
                    .run(&ctx)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                drop(ctx);
                cache.commit(tmp, &p.key, p.node.kind.as_str()).unwrap()
            }
        };
        done.insert(
            name,
            ArtifactRef {
                key: p.key.clone(),
                dir,
            },
        );
    }
    (inputs_of(goal, &done), goal.key.clone())
}

/// One attempt of a stage's task: what it returned, what it reported, where it wrote.
struct Attempt {
    result: Result<(), StageError>,
    events: Vec<StageEvent>,
    out: PathBuf,
}

impl Attempt {
    fn checkpoints(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                StageEvent::Checkpoint(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    fn resumed(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                StageEvent::Resumed(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Every file the stage wrote, by name.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(&self.out).unwrap() {
            let e = e.unwrap();
            assert!(
                e.file_type().unwrap().is_file(),
                "{}: the stage left a folder in its output",
                e.path().display()
            );
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            );
        }
        out
    }
}

/// Runs `stage` as task `key` (None: outside a task) with its cache and checkpoints under
/// `root`, cancelling once it reported `cancel_after` checkpoints.
#[allow(clippy::too_many_arguments)]
fn attempt(
    stage: &dyn Stage,
    job: &JobSpec,
    lang: Option<&str>,
    inputs: &BTreeMap<StageKind, ArtifactRef>,
    root: &Path,
    tag: &str,
    key: Option<&str>,
    cancel_after: Option<usize>,
) -> Attempt {
    let cache = ArtifactCache::open(&root.join("cache"), &root.join("tmp")).unwrap();
    let out = root.join(tag);
    std::fs::create_dir_all(&out).unwrap();
    let cancel = CancellationToken::new();
    let events = Mutex::new(Vec::new());
    let on_event = |ev: StageEvent| {
        let mut all = events.lock().unwrap();
        all.push(ev);
        let saved = all
            .iter()
            .filter(|e| matches!(e, StageEvent::Checkpoint(_)))
            .count();
        if Some(saved) == cancel_after {
            cancel.cancel();
        }
    };
    let progress = |_: f32| {};
    let mut ctx =
        StageCtx::new(job, lang, inputs, &out, &cancel, &cache, &progress).with_events(&on_event);
    ctx.key = key;
    let result = stage.run(&ctx);
    drop(ctx);
    Attempt {
        result,
        events: events.into_inner().unwrap(),
        out,
    }
}

const DRAWN: &str = r#"title: Lighthouse
channel: explainer
language: en
scenes:
  - prompt: a lighthouse in a storm at night
    lines:
      - text: The storm rolls in.
  - prompt: a quiet harbour at dawn
    lines:
      - text: Morning comes.
"#;

#[test]
fn keyframes_resume_the_denoising_loop_and_draw_the_same_pictures() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("tiny-sd15");
    image_support::build_model(&model_dir);
    let steps = 20;
    let mut pictures = Vec::new();
    for sampler in ["dpmpp_2m", "euler_a"] {
        let models = StageModels {
            image: Some(ImageModelRef {
                id: image_support::MODEL_ID.into(),
                dir: model_dir.clone(),
                companions: vec![],
                arch: "sd15".into(),
                variant: None,
                // Loaded models are shared by id and fingerprint: one per sampler.
                fingerprint: format!("test-{sampler}"),
                vram_bytes: 0,
                sampling: Some(SamplingDefault {
                    sampler: sampler.into(),
                    steps,
                    cfg: 5.0,
                }),
            }),
            ..Default::default()
        };
        let root = tmp.path().join(sampler);
        std::fs::create_dir_all(&root).unwrap();
        let job = job(&root, DRAWN, models);
        let pre = ArtifactCache::open(&root.join("pre/cache"), &root.join("pre/tmp")).unwrap();
        let (inputs, key) = prerequisites(&job, StageKind::Keyframes, None, &pre);
        let run = |dir: &str, tag: &str, cancel_after| {
            attempt(
                &KeyframesStage,
                &job,
                None,
                &inputs,
                &root.join(dir),
                tag,
                Some(&key),
                cancel_after,
            )
        };

        // Every 5 steps of 20, two scenes: steps 5, 10 and 15 of each (never the last).
        let every = Cadence::STEPS;
        let per_scene: Vec<usize> = (1..steps as usize).filter(|k| k % every == 0).collect();
        let reference = run("a", "out", None);
        reference.result.as_ref().unwrap();
        let want: Vec<String> = (1..=2)
            .flat_map(|s| {
                per_scene
                    .iter()
                    .map(move |k| format!("scene {s} step {k}/{steps}"))
            })
            .collect();
        assert_eq!(reference.checkpoints(), want, "{sampler}");
        assert!(reference.resumed().is_empty());

        // Cut short after the second checkpoint: scene 1, step 10 (enough steps are left that
        // a resume without the sampler's history or the noise position draws other pixels).
        let cut = run("b", "out-1", Some(2));
        assert!(
            matches!(cut.result, Err(StageError::Cancelled)),
            "{sampler}: {:?}",
            cut.result.as_ref().err()
        );
        assert_eq!(cut.checkpoints(), &want[..2]);

        // The next attempt continues scene 1 from step 10 and draws scene 2 whole.
        let again = run("b", "out-2", None);
        again.result.as_ref().unwrap();
        assert_eq!(
            again.resumed(),
            [format!("scene 1 step {}/{steps}", per_scene[1])],
            "{sampler}"
        );
        assert_eq!(
            again.checkpoints(),
            &want[2..],
            "{sampler}: only the rest is redone"
        );
        assert!(again.checkpoints().len() < reference.checkpoints().len());
        let (got, want_files) = (again.files(), reference.files());
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want_files.keys().collect::<Vec<_>>()
        );
        let differ: Vec<&String> = want_files
            .iter()
            .filter(|(name, bytes)| &got[*name] != *bytes)
            .map(|(name, _)| name)
            .collect();
        assert!(
            differ.is_empty(),
            "{sampler}: {differ:?} differ from the uninterrupted run's"
        );
        // The scene images are really drawn by the model (not all alike).
        assert_ne!(want_files["scene-000.png"], want_files["scene-001.png"]);
        pictures.push(want_files["scene-000.png"].clone());
    }
    // …with the sampler asked for.
    assert_ne!(
        pictures[0], pictures[1],
        "both samplers drew the same picture"
    );
}

const NARRATED: &str = r#"title: Tides
channel: explainer
language: en
scenes:
  - prompt: waves on a beach
    duration: 8
    transition: crossfade
    lines:
      - text: The sea comes in.
  - prompt: the moon over the water
    duration: 8
    transition: crossfade
    lines:
      - text: The moon pulls it.
  - prompt: a dry sandbar at noon
    duration: 8
    lines:
      - text: And the sea goes out.
"#;

/// Frames where a keyframe (IDR) packet starts, in presentation order.
fn keyframes_of(path: &Path) -> (Vec<i64>, i64) {
    use ffmpeg_next as ff;
    reelsmith::media::init().unwrap();
    let mut ictx = ff::format::input(&path).unwrap();
    let v = ictx.streams().best(ff::media::Type::Video).unwrap().index();
    let tb = ictx.stream(v).unwrap().time_base();
    let mut pts = Vec::new();
    for (st, pkt) in ictx.packets() {
        if st.index() == v {
            let t = pkt.pts().unwrap() as f64 * tb.numerator() as f64 / tb.denominator() as f64;
            pts.push(((t * 10.0).round() as i64, pkt.is_key()));
        }
    }
    pts.sort();
    // Presentation times are the frames 0..n in order: nothing lost, doubled or reordered.
    for (i, (t, _)) in pts.iter().enumerate() {
        assert_eq!(*t, i as i64, "frame {i} is shown at {t}");
    }
    let keys = pts.iter().filter(|p| p.1).map(|p| p.0).collect();
    (keys, pts.len() as i64)
}

#[test]
fn assembly_resumes_from_finished_segments_and_writes_the_same_file() {
    let tmp = tempfile::tempdir().unwrap();
    let job = job(tmp.path(), NARRATED, StageModels::default());
    let pre =
        ArtifactCache::open(&tmp.path().join("pre/cache"), &tmp.path().join("pre/tmp")).unwrap();
    let (inputs, key) = prerequisites(&job, StageKind::Assemble, Some("en"), &pre);
    let timeline: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(inputs[&StageKind::Align].file("timeline.json")).unwrap(),
    )
    .unwrap();
    let total = timeline["total"].as_f64().unwrap();
    let frames = (total * 10.0).round() as i64;
    let span = (10 * SEGMENT_SECONDS) as i64;
    let n = ((frames + span - 1) / span) as usize;
    assert!(n >= 3, "{total} s make {n} segments; the test needs 3");
    let run = |dir: &str, tag: &str, key: Option<&str>, cancel_after| {
        attempt(
            &AssembleStage,
            &job,
            Some("en"),
            &inputs,
            &tmp.path().join(dir),
            tag,
            key,
            cancel_after,
        )
    };

    let reference = run("a", "out", Some(&key), None);
    reference.result.as_ref().unwrap();
    let want: Vec<String> = (1..=n).map(|k| format!("segment {k}/{n}")).collect();
    assert_eq!(reference.checkpoints(), want);
    let final_mp4 = reference.files().remove("final.mp4").expect("final.mp4");

    // The joined file is a whole video: every frame once, keyframes where segments start
    // (and every 2 s within them), the soundtrack as long as the picture, index up front.
    let path = reference.out.join("final.mp4");
    let info = decode::probe(&path).unwrap();
    let (v, a) = (info.video.unwrap(), info.audio.unwrap());
    assert_eq!(v.frames as i64, frames);
    assert!((v.fps - 10.0).abs() < 1e-9, "fps {}", v.fps);
    assert!((v.duration - total).abs() < 1e-6, "video {} s", v.duration);
    assert!((a.duration - total).abs() <= 0.05, "audio {} s", a.duration);
    let (keys, shown) = keyframes_of(&path);
    assert_eq!(shown, frames);
    for k in 0..n as i64 {
        assert!(
            keys.contains(&(k * span)),
            "segment {k} starts without a keyframe: {keys:?}"
        );
    }
    assert!(
        keys.contains(&20) && keys.contains(&40),
        "GOPs of 2 s: {keys:?}"
    );
    let moov = final_mp4.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = final_mp4.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat, "the index is up front");
    // The frame at 5 s decodes to a picture (not a broken join).
    let still = decode::frame_at(&path, 15.0).unwrap();
    assert_eq!((still.width, still.height), (320, 180));

    // Cut short after two segments; the next attempt encodes only the third.
    let cut = run("b", "out-1", Some(&key), Some(2));
    assert!(
        matches!(cut.result, Err(StageError::Cancelled)),
        "{:?}",
        cut.result.as_ref().err()
    );
    assert_eq!(cut.checkpoints(), &want[..2]);
    assert!(!cut.out.join("final.mp4").exists());
    // Only whole segments are kept: the one being drawn when it stopped is gone.
    let mut kept: Vec<String> = std::fs::read_dir(tmp.path().join("b/checkpoints").join(&key))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        (1..=2)
            .map(|k| format!("final-segment-{k:03}-of-{n:03}.mp4"))
            .collect::<Vec<_>>()
    );
    let again = run("b", "out-2", Some(&key), None);
    again.result.as_ref().unwrap();
    assert_eq!(again.resumed(), [format!("segment 2/{n}")]);
    assert_eq!(again.checkpoints(), &want[2..], "only the rest is encoded");
    let got = again.files();
    assert_eq!(got.keys().collect::<Vec<_>>(), ["final.mp4"]);
    assert!(got["final.mp4"] == final_mp4, "the resumed file differs");

    // A segment an earlier attempt encoded differently (another libx264, other headers)
    // cannot be joined with this attempt's: every segment is encoded again, same file.
    let cut = run("d", "out-1", Some(&key), Some(2));
    assert!(matches!(cut.result, Err(StageError::Cancelled)));
    let first = tmp
        .path()
        .join("d/checkpoints")
        .join(&key)
        .join(format!("final-segment-001-of-{n:03}.mp4"));
    let other = EncodeSettings {
        width: 320,
        height: 180,
        fps: 10,
        crf: 30,
        preset: "ultrafast".into(),
        audio_rate: 48_000,
        audio_bitrate: 128_000,
        aac_coder: "fast".into(),
    };
    let mut w = Mp4Writer::create_segment(&first, &other).unwrap();
    let mut frame = new_frame(320, 180);
    for _ in 0..span {
        make_writable(&mut frame).unwrap();
        w.push_frame(&mut frame).unwrap();
    }
    w.finish().unwrap();
    let again = run("d", "out-2", Some(&key), None);
    again.result.as_ref().unwrap();
    assert_eq!(again.resumed(), [format!("segment 2/{n}")]);
    let mut redone = want[2..].to_vec();
    redone.extend(want.iter().cloned());
    assert_eq!(again.checkpoints(), redone);
    assert!(
        again.files()["final.mp4"] == final_mp4,
        "the re-encoded file differs"
    );

    // Outside a task (no checkpoint directory) the same segments make the same file, and
    // none is left behind.
    let plain = run("c", "out", None, None);
    plain.result.as_ref().unwrap();
    assert!(plain.checkpoints().is_empty());
    let got = plain.files();
    assert_eq!(got.keys().collect::<Vec<_>>(), ["final.mp4"]);
    assert!(
        got["final.mp4"] == final_mp4,
        "the file depends on checkpointing"
    );
}

/// An animate task at 128×64 with the video model in `model_dir` (found by path), its
/// prerequisites run: attempts of it run under `<tmp>/run/<dir>`.
struct AnimateTask {
    root: PathBuf,
    job: JobSpec,
    inputs: BTreeMap<StageKind, ArtifactRef>,
    key: String,
}

impl AnimateTask {
    fn new(tmp: &Path, model_dir: &Path) -> AnimateTask {
        let reg = reelsmith::hub::Registry::embedded().unwrap();
        let cfg = reelsmith::hub::HubConfig::from_env(|_| None);
        let video = reelsmith::engines::video_select::find_video_model(
            &reg,
            &cfg,
            model_dir.to_str().unwrap(),
            "test",
        )
        .unwrap();
        let models = StageModels {
            video: Some(video),
            ..Default::default()
        };
        let root = tmp.join("run");
        std::fs::create_dir_all(&root).unwrap();
        let mut job = job(&root, DRAWN, models);
        // Generated at 128×64 (small latents with the tiny VAEs): quick.
        job.settings.width = 128;
        job.settings.height = 64;
        let pre = ArtifactCache::open(&root.join("pre/cache"), &root.join("pre/tmp")).unwrap();
        let (inputs, key) = prerequisites(&job, StageKind::Animate, None, &pre);
        AnimateTask {
            root,
            job,
            inputs,
            key,
        }
    }

    fn attempt(&self, dir: &str, tag: &str, cancel_after: Option<usize>) -> Attempt {
        attempt(
            &AnimateStage,
            &self.job,
            None,
            &self.inputs,
            &self.root.join(dir),
            tag,
            Some(&self.key),
            cancel_after,
        )
    }
}

/// The resumed attempt wrote the same files as the uninterrupted one, its clips and their last
/// frames byte for byte.
fn assert_same_clips(again: &Attempt, reference: &Attempt) {
    let (got, want) = (again.files(), reference.files());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &want {
        if name.ends_with(".mkv") || name.ends_with(".png") {
            assert!(
                &got[name] == bytes,
                "{name} differs from the uninterrupted run's"
            );
        }
    }
}

#[test]
fn animate_decodes_saved_latents_without_sampling_again() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("tiny-ltx");
    video_support::build_model(&model_dir, false);
    let task = AnimateTask::new(tmp.path(), &model_dir);
    let run = |dir: &str, tag: &str, cancel_after| task.attempt(dir, tag, cancel_after);
    let reference = run("a", "out", None);
    reference.result.as_ref().unwrap();
    let sampled: Vec<&str> = reference.checkpoints();
    assert_eq!(sampled.len(), 2, "{sampled:?}");
    assert!(
        sampled[0].starts_with("scene-000 window 1/1 sampled"),
        "{sampled:?}"
    );

    // Cut off right after the first window's latents are saved (as a crash in its decode
    // would be): the next attempt decodes them and samples only the second scene.
    let cut = run("b", "out-1", Some(1));
    assert!(
        matches!(cut.result, Err(StageError::Cancelled)),
        "{:?}",
        cut.result.as_ref().err()
    );
    let again = run("b", "out-2", None);
    again.result.as_ref().unwrap();
    assert_eq!(
        again.resumed(),
        ["scene-000 window 1: decoding saved latents"]
    );
    assert_eq!(
        again.checkpoints(),
        &sampled[1..],
        "only scene 2 is sampled again"
    );
    assert_same_clips(&again, &reference);
}

#[test]
fn a_wan_decode_cut_off_halfway_continues_from_its_last_latent_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("tiny-wan");
    wan_support::build_model(&model_dir, wan_support::Task::T2v);
    let task = AnimateTask::new(tmp.path(), &model_dir);
    assert_eq!(task.job.models.video.as_ref().unwrap().arch, "wan");
    let run = |dir: &str, tag: &str, cancel_after| task.attempt(dir, tag, cancel_after);
    let reference = run("a", "out", None);
    reference.result.as_ref().unwrap();
    let saved: Vec<&str> = reference.checkpoints();
    // Per scene: the sampled latents, then the decode state after each latent frame.
    assert!(
        saved[0].starts_with("scene-000 window 1/1 sampled"),
        "{saved:?}"
    );
    let decoded: Vec<&&str> = saved
        .iter()
        .filter(|l| l.starts_with("scene-000 window 1 decoded"))
        .collect();
    assert!(decoded.len() >= 4, "{saved:?}");
    assert_eq!(
        saved[1],
        "scene-000 window 1 decoded 1/".to_string() + &decoded.len().to_string()
    );

    // Cut off after the second latent frame's state: the next attempt hands the saved frames
    // over again, continues the decode at latent frame 2, and samples nothing again.
    let cut = run("b", "out-1", Some(3));
    assert!(
        matches!(cut.result, Err(StageError::Cancelled)),
        "{:?}",
        cut.result.as_ref().err()
    );
    let again = run("b", "out-2", None);
    again.result.as_ref().unwrap();
    assert_eq!(
        again.resumed(),
        [
            "scene-000 window 1: decoding saved latents",
            "scene-000 window 1 decoded 2"
        ]
    );
    assert_eq!(again.checkpoints(), &saved[3..], "only the rest is redone");
    assert_same_clips(&again, &reference);

    // A saved decode of other latents (sampled again after its state was written) is not
    // continued: the decode starts over and still makes the same clip.
    let cut = run("c", "out-1", Some(3));
    assert!(matches!(cut.result, Err(StageError::Cancelled)));
    let ids = find_files(&tmp.path().join("run/c"), "latents.sha256");
    assert_eq!(ids.len(), 1, "{ids:?}");
    std::fs::write(&ids[0], "0".repeat(64)).unwrap();
    let again = run("c", "out-2", None);
    again.result.as_ref().unwrap();
    assert_eq!(
        again.resumed(),
        ["scene-000 window 1: decoding saved latents"]
    );
    assert_eq!(
        again.checkpoints(),
        &saved[1..],
        "the whole decode is redone"
    );
    assert_same_clips(&again, &reference);
}

/// Every file called `name` under `dir`.
fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(find_files(&p, name));
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out
}
