//! `reelsmith upscale` and `reelsmith interpolate` end to end: inputs drawn and encoded here
//! (with reelsmith's own writers), the real binary run on them, and its outputs decoded and
//! measured — sizes, frame counts, rates, audio length, and how close frames are to the truth.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use reelsmith::engines::post::{is_scene_cut, tap, Tap};
use reelsmith::media::clip::ClipWriter;
use reelsmith::media::decode::{probe, read_image};
use reelsmith::media::encode::{EncodeSettings, Mp4Writer};
use reelsmith::media::frames::VideoFrames;
use reelsmith::media::image::RgbImage;
use reelsmith::media::resample::{psnr, resize_lanczos};
use reelsmith::media::stills::write_png;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Env { dir }
    }

    /// A path in the working folder (the one the outputs go to).
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        common::reelsmith(
            &self.dir.path().join("data"),
            &self.dir.path().join("config"),
            args,
        )
    }

    /// The names in the working folder, sorted.
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path().join("work"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A soft bright disc of radius 10 at `x` pixels from the left, over a grey ramp.
fn disc(x: f64, w: u32, h: u32) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    for py in 0..h {
        for px in 0..w {
            let d = (px as f64 - 16.0 - x).hypot(py as f64 - h as f64 / 2.0);
            let a = (1.0 - (d - 10.0) / 2.0).clamp(0.0, 1.0);
            let bg = 50.0 + 90.0 * py as f64 / h as f64 + 20.0 * (px as f64 / 23.0).sin();
            let v = bg + (240.0 - bg) * a;
            img.put(px as i64, py as i64, [v as u8, v as u8, v as u8]);
        }
    }
    img
}

/// Colourful scenes for cuts: warm waves or cool rings, panned `shift` pixels.
fn scene(warm: bool, shift: f64, w: u32, h: u32) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f64 - shift, y as f64);
            let px = if warm {
                let v = ((xf / 9.0).sin() + (yf / 13.0).cos()) * 0.25 + 0.5;
                [200 + (50.0 * v) as u8, (60.0 + 120.0 * v) as u8, 20]
            } else {
                let r = ((xf - 40.0).hypot(yf - 30.0) / 6.0).sin() * 0.5 + 0.5;
                [
                    10,
                    (80.0 + 100.0 * r) as u8,
                    (150.0 + 100.0 * (1.0 - r)) as u8,
                ]
            };
            img.put(x as i64, y as i64, px);
        }
    }
    img
}

/// Encodes `frames` at `fps` into an MP4 with `audio` seconds of a 440 Hz tone (none on 0).
fn mp4(path: &Path, frames: &[RgbImage], fps: u32, audio: f64) {
    let settings = EncodeSettings {
        width: frames[0].width,
        height: frames[0].height,
        fps,
        crf: 10,
        preset: "ultrafast".into(),
        audio_rate: 48_000,
        audio_bitrate: 128_000,
        aac_coder: "fast".into(),
    };
    let source: Option<reelsmith::media::encode::AudioSource> = (audio > 0.0).then(|| {
        Box::new(move || {
            let n = (audio * 48_000.0) as usize;
            Ok((0..n * 2)
                .map(|i| (((i / 2) as f32) * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.3)
                .collect())
        }) as reelsmith::media::encode::AudioSource
    });
    let mut w = Mp4Writer::create(path, &settings, source).unwrap();
    for f in frames {
        w.push_rgb(f).unwrap();
    }
    w.finish().unwrap();
}

/// `(1 − t)·a + t·b`.
fn blend(a: &RgbImage, b: &RgbImage, t: f64) -> RgbImage {
    let mut out = a.clone();
    for (o, q) in out.data.iter_mut().zip(&b.data) {
        *o = (*o as f64 + (*q as f64 - *o as f64) * t).round() as u8;
    }
    out
}

fn decode_all(path: &Path) -> Vec<RgbImage> {
    VideoFrames::open(path)
        .unwrap()
        .map(|f| f.unwrap())
        .collect()
}

#[test]
fn upscaled_pictures_have_the_exact_size_and_come_back_close() {
    let env = Env::new();
    let input = env.path("in.png");
    let src: RgbImage = scene(true, 0.0, 96, 64);
    write_png(&src, &input).unwrap();
    let out = env.path("big.png");
    let o = env.run(&["upscale", s(&input), "--scale", "2", "-o", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("lanczos@1"), "{}", stderr(&o));
    let big = read_image(&out).unwrap();
    assert_eq!((big.width, big.height), (192, 128));
    let back = resize_lanczos(&big, 96, 64).unwrap();
    let db = psnr(&src, &back);
    eprintln!("png ×2 and back: {db:.1} dB");
    assert!(db > 35.0, "{db:.1} dB");
    // Without --scale a picture grows ×4; a .jpg output is a JPEG.
    let jpg = env.path("big.jpg");
    let o = env.run(&["upscale", s(&input), "-o", s(&jpg)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(&std::fs::read(&jpg).unwrap()[..2], &[0xff, 0xd8], "a JPEG");
    let big = read_image(&jpg).unwrap();
    assert_eq!((big.width, big.height), (384, 256));
    let db = psnr(&src, &resize_lanczos(&big, 96, 64).unwrap());
    eprintln!("jpg ×4 and back: {db:.1} dB");
    assert!(db > 30.0, "{db:.1} dB");
    assert_eq!(
        env.files(),
        ["big.jpg", "big.png", "in.png"],
        "no temporary files"
    );
}

#[test]
fn upscaled_videos_keep_their_frames_rate_and_audio() {
    let env = Env::new();
    let input = env.path("in.mp4");
    let frames: Vec<RgbImage> = (0..24).map(|k| disc(3.0 * k as f64, 128, 72)).collect();
    mp4(&input, &frames, 24, 1.0);
    let out = env.path("big.mp4");
    let o = env.run(&["upscale", s(&input), "-o", s(&out), "--scale", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (probe(&input).unwrap(), probe(&out).unwrap());
    let (va, vb) = (a.video.unwrap(), b.video.unwrap());
    assert_eq!((vb.width, vb.height), (256, 144));
    assert_eq!(vb.frames, va.frames);
    assert_eq!(vb.frames, 24);
    assert!((vb.fps - 24.0).abs() < 0.01, "{} fps", vb.fps);
    let (aa, ab) = (a.audio.unwrap(), b.audio.unwrap());
    eprintln!(
        "audio {:.3} s → {:.3} s, video {:.3} s → {:.3} s",
        aa.duration, ab.duration, va.duration, vb.duration
    );
    assert_eq!(ab.codec, aa.codec, "copied, not re-encoded");
    assert!((ab.duration - aa.duration).abs() < 0.03);
    assert!(
        (vb.duration - va.duration).abs() < 0.01,
        "{} vs {} s",
        vb.duration,
        va.duration
    );
    // Every frame is the source frame made larger.
    let (small, big) = (decode_all(&input), decode_all(&out));
    assert_eq!(big.len(), 24);
    let worst = small
        .iter()
        .zip(&big)
        .map(|(a, b)| psnr(&resize_lanczos(a, 256, 144).unwrap(), b))
        .fold(f64::INFINITY, f64::min);
    eprintln!("video ×2: worst frame {worst:.1} dB against Lanczos of the decoded source");
    assert!(worst > 35.0, "{worst:.1} dB");
}

#[test]
fn an_mkv_at_a_fractional_rate_with_an_odd_size_upscales() {
    let env = Env::new();
    let input = env.path("clip.mkv");
    let fps = 24000.0 / 1001.0;
    let mut w = ClipWriter::create(&input, 45, 27, fps).unwrap();
    for k in 0..10 {
        w.push(&scene(false, k as f64, 45, 27)).unwrap();
    }
    w.finish().unwrap();
    let out = env.path("big.mp4");
    let o = env.run(&["upscale", s(&input), "-o", s(&out), "--scale", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info = probe(&out).unwrap();
    let v = info.video.unwrap();
    assert_eq!((v.width, v.height), (136, 82), "135×81 made even");
    assert_eq!(v.frames, 10);
    assert!((v.fps - fps).abs() < 0.01, "{} fps", v.fps);
    assert!(info.audio.is_none());
}

#[test]
fn interpolating_24_to_60_keeps_duration_and_audio_and_lands_between() {
    let env = Env::new();
    let input = env.path("in.mp4");
    let (w, h) = (320, 96);
    // Two seconds; the disc glides 5 px a frame.
    let speed = 5.0;
    let frames: Vec<RgbImage> = (0..48).map(|k| disc(speed * k as f64, w, h)).collect();
    mp4(&input, &frames, 24, 2.0);
    let out = env.path("smooth.mp4");
    let o = env.run(&["interpolate", s(&input), "--fps", "60", "-o", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("minterpolate@1"), "{}", stderr(&o));
    let (a, b) = (probe(&input).unwrap(), probe(&out).unwrap());
    let v = b.video.unwrap();
    eprintln!("{} frames at {} fps, {:.3} s", v.frames, v.fps, v.duration);
    assert!(v.frames.abs_diff(120) <= 1, "{} frames", v.frames);
    assert!((v.fps - 60.0).abs() < 0.01, "{} fps", v.fps);
    let (aa, ab) = (a.audio.unwrap(), b.audio.unwrap());
    assert!(
        (ab.duration - aa.duration).abs() < 0.03,
        "{} vs {}",
        ab.duration,
        aa.duration
    );
    assert!((v.duration - 2.0).abs() < 0.05, "{} s", v.duration);
    // In-between frames are nearer the true picture at their moment than either source frame.
    let (src, got) = (decode_all(&input), decode_all(&out));
    let (mut better, mut between) = (0, 0);
    let (mut sum_mine, mut sum_near) = (0.0, 0.0);
    for (j, f) in got.iter().enumerate() {
        if let Tap::Between(i, t) = tap(j as u64, 24.0, 60.0) {
            if i + 1 >= 48 {
                continue;
            }
            let truth = disc(speed * (i as f64 + t), w, h);
            let mine = psnr(&truth, f);
            let near = psnr(&truth, &src[i as usize]).max(psnr(&truth, &src[i as usize + 1]));
            between += 1;
            better += usize::from(mine > near);
            sum_mine += mine;
            sum_near += near;
        }
    }
    eprintln!(
        "{better}/{between} in-between frames beat both neighbours; mean {:.1} dB vs {:.1} dB",
        sum_mine / between as f64,
        sum_near / between as f64
    );
    assert!(better * 4 >= between * 3, "{better} of {between}");
    assert!(
        sum_mine > sum_near + between as f64,
        "less than 1 dB better on average"
    );
    assert_eq!(env.files(), ["in.mp4", "smooth.mp4"]);
}

#[test]
fn no_frame_is_blended_across_a_cut() {
    let env = Env::new();
    let input = env.path("cut.mp4");
    let (w, h) = (96, 64);
    let frames: Vec<RgbImage> = (0..24)
        .map(|k| scene(k < 12, 2.0 * k as f64, w, h))
        .collect();
    mp4(&input, &frames, 24, 1.0);
    let src = decode_all(&input);
    assert!(is_scene_cut(&src[11], &src[12]));
    for model in ["minterpolate", "blend"] {
        let out = env.path(&format!("{model}.mp4"));
        let o = env.run(&[
            "interpolate",
            s(&input),
            "--fps",
            "60",
            "--model",
            model,
            "-o",
            s(&out),
        ]);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let got = decode_all(&out);
        assert_eq!(got.len(), 60, "{model}");
        let mut at_cut = 0;
        for (j, f) in got.iter().enumerate() {
            let Tap::Between(i, t) = tap(j as u64, 24.0, 60.0) else {
                continue;
            };
            if i + 1 >= 24 {
                continue; // past the last frame: held
            }
            let (a, b) = (&src[i as usize], &src[i as usize + 1]);
            if i == 11 {
                at_cut += 1;
                let near = if t < 0.5 { a } else { b };
                let (copy, other) = (psnr(near, f), psnr(if t < 0.5 { b } else { a }, f));
                eprintln!("{model}: frame {j} (t {t:.1}) {copy:.1} dB to the nearer, {other:.1} dB to the other");
                let mix = psnr(&blend(a, b, t), f);
                assert!(
                    copy > 32.0,
                    "{model}: frame {j} is not the nearer frame ({copy:.1} dB)"
                );
                assert!(
                    copy > mix + 3.0,
                    "{model}: frame {j} looks mixed ({mix:.1} dB to the mix)"
                );
            } else if model == "blend" {
                // Inside a scene the cross-fade really mixes the two frames.
                let mix = psnr(&blend(a, b, t), f);
                assert!(
                    mix > psnr(a, f).max(psnr(b, f)),
                    "{model}: frame {j} is no mix"
                );
            }
        }
        assert_eq!(at_cut, 2, "{model}: 11.2 and 11.6 fall between the scenes");
    }
}

#[test]
fn bad_input_exits_2_naming_it_and_writes_nothing() {
    let env = Env::new();
    let video = env.path("in.mp4");
    let frames: Vec<RgbImage> = (0..6).map(|k| disc(k as f64, 64, 32)).collect();
    mp4(&video, &frames, 24, 0.0);
    let pic = env.path("in.png");
    write_png(&frames[0], &pic).unwrap();
    let gif = env.path("in.gif");
    std::fs::write(&gif, b"GIF89a").unwrap();
    let before = env.files();
    let out = env.path("out.mp4");
    let missing = env.path("missing.mp4");
    let no_dir = env.path("nowhere/out.mp4");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["upscale", s(&missing), "-o", s(&out)], "no such file"),
        (vec!["upscale", s(&gif), "-o", s(&out)], ".gif"),
        (
            vec!["upscale", s(&video), "-o", s(&out), "--scale", "5"],
            "--scale 5",
        ),
        (vec!["upscale", s(&video), "-o", s(&no_dir)], "no folder"),
        (vec!["upscale", s(&video), "-o", "x.avi"], "*.mp4"),
        (vec!["upscale", s(&pic), "-o", s(&out)], "*.png"),
        (vec!["upscale", s(&video), "-o", s(&video)], "is the input"),
        (
            vec!["upscale", s(&video), "-o", s(&out), "--tile", "7"],
            "--tile 7",
        ),
        (
            vec!["upscale", s(&video), "-o", s(&out), "--device", "tpu"],
            "--device",
        ),
        (
            vec!["upscale", s(&video), "-o", s(&out), "--model", "nope"],
            "--model nope",
        ),
        (
            vec!["interpolate", s(&video), "--fps", "20", "-o", s(&out)],
            "--fps 20",
        ),
        (
            vec!["interpolate", s(&video), "--fps", "24", "-o", s(&out)],
            "24 fps",
        ),
        (
            vec!["interpolate", s(&video), "--fps", "500", "-o", s(&out)],
            "between 1 and 240",
        ),
        (
            vec!["interpolate", s(&missing), "--fps", "60", "-o", s(&out)],
            "no such file",
        ),
        (
            vec!["interpolate", s(&pic), "--fps", "60", "-o", s(&out)],
            "picture",
        ),
        (
            vec!["interpolate", s(&video), "--fps", "60", "-o", s(&no_dir)],
            "no folder",
        ),
        (
            vec![
                "interpolate",
                s(&video),
                "--fps",
                "60",
                "-o",
                s(&out),
                "--model",
                "x",
            ],
            "--model x",
        ),
    ];
    for (args, says) in cases {
        let o = env.run(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(says), "{args:?} should say {says:?}: {e}");
        assert_eq!(env.files(), before, "{args:?} wrote something");
    }
    // A file that is not a video at all.
    std::fs::write(env.path("junk.mp4"), b"not a video").unwrap();
    let o = env.run(&["upscale", s(&env.path("junk.mp4")), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("junk.mp4"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn ctrl_c_stops_between_frames_and_leaves_nothing() {
    let env = Env::new();
    let input = env.path("long.mp4");
    let frames: Vec<RgbImage> = (0..240)
        .map(|k| disc((k % 60) as f64 * 3.0, 320, 192))
        .collect();
    mp4(&input, &frames, 24, 10.0);
    let out = env.path("out.mp4");
    let mut child = Command::new(common::bin())
        .args(["interpolate", s(&input), "--fps", "120", "-o", s(&out)])
        .env("REELSMITH_DATA_DIR", env.dir.path().join("data"))
        .env("REELSMITH_CONFIG_DIR", env.dir.path().join("config"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Interrupt once it reports progress (it is then between frames, handlers installed).
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("interpolated frame") {
            // SAFETY: a signal to the child we started.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            break;
        }
    }
    seen.extend(lines.map_while(Result::ok));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen:?}");
    assert!(seen.iter().any(|l| l.contains("cancelled")), "{seen:?}");
    assert_eq!(env.files(), ["long.mp4"], "nothing written");
}
