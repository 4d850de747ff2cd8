//! `reelsmith image` on a tiny but complete SD 1.5 model (random weights, real layout, real
//! tokenizer) imported with `reelsmith models import`: pictures at the asked size, seeds that
//! reproduce, image-to-image and inpainting that do what they say, and every bad input refused
//! with exit code 2, the flag named and nothing written.

mod image_support;

use std::path::Path;
use std::process::Output;

use image_support::{Studio, MODEL_ID};
use reelsmith::media::image::RgbImage;
use reelsmith::media::stills::{read_png, write_png};

fn ok(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{what} failed ({}):\n{err}", o.status);
    err
}

fn draw(s: &Studio, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "image",
        "a red fox in the snow",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&s.run(&args, &[]), &format!("image {extra:?}"))
}

/// Mean absolute difference per channel value over columns `x0..x1`.
fn diff(a: &RgbImage, b: &RgbImage, x0: u32, x1: u32) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in 0..a.height {
        for x in x0..x1 {
            let (p, q) = (a.get(x, y), b.get(x, y));
            for c in 0..3 {
                sum += (p[c] as i32 - q[c] as i32).unsigned_abs() as u64;
                n += 1;
            }
        }
    }
    sum as f64 / n as f64
}

fn spread(img: &RgbImage) -> f64 {
    let n = img.data.len() as f64;
    let mean = img.data.iter().map(|&v| v as f64).sum::<f64>() / n;
    (img.data
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

fn pattern(w: u32, h: u32) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let v = [
                (x * 255 / (w - 1)) as u8,
                (y * 255 / (h - 1)) as u8,
                if (x / 4 + y / 4) % 2 == 0 { 40 } else { 215 },
            ];
            img.put(x as i64, y as i64, v);
        }
    }
    img
}

#[test]
fn pictures_come_out_at_the_asked_size_and_seeds_reproduce() {
    let s = Studio::new();
    let (a, b, c) = (s.path("a.png"), s.path("b.png"), s.path("c.png"));
    let err = draw(&s, &a, &["--size", "32x32", "--steps", "2", "--seed", "7"]);
    assert!(
        err.contains("step 1/2") && err.contains("step 2/2"),
        "{err}"
    );
    assert!(err.contains(MODEL_ID) && err.contains("seed 7"), "{err}");
    draw(
        &s,
        &b,
        &[
            "--size", "32x32", "--steps", "2", "--seed", "7", "--model", MODEL_ID,
        ],
    );
    draw(&s, &c, &["--size", "32x32", "--steps", "2", "--seed", "8"]);
    let img = read_png(&a).unwrap();
    assert_eq!((img.width, img.height), (32, 32));
    let sd = spread(&img);
    let other = read_png(&c).unwrap();
    let d = diff(&img, &other, 0, 32);
    eprintln!("spread {sd:.1}, seed 7 vs 8: {d:.1}");
    assert!(sd > 5.0, "a flat picture (spread {sd})");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(d > 2.0, "seeds 7 and 8 drew nearly the same picture ({d})");

    // Default size: the model's native size (its UNet's sample_size 8 × the VAE's factor 2).
    let n = s.path("native.png");
    draw(&s, &n, &["--steps", "1", "--seed", "1"]);
    let img = read_png(&n).unwrap();
    assert_eq!((img.width, img.height), (16, 16));

    // A batch: OUT.png, OUT-1.png, different pictures, nothing else left in the folder.
    std::fs::create_dir(s.path("batch")).unwrap();
    let out = s.path("batch/fox.png");
    let o = s.run(
        &[
            "image",
            "a fox",
            "--size",
            "16x24",
            "--steps",
            "1",
            "--seed",
            "3",
            "--batch",
            "2",
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    ok(&o, "batch");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let mut names: Vec<String> = std::fs::read_dir(s.path("batch"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["fox-1.png", "fox.png"]);
    let (p0, p1) = (
        read_png(&s.path("batch/fox.png")).unwrap(),
        read_png(&s.path("batch/fox-1.png")).unwrap(),
    );
    assert_eq!((p0.width, p0.height), (16, 24));
    let d = diff(&p0, &p1, 0, 16);
    eprintln!("batch pictures differ by {d:.1}");
    assert!(d > 2.0, "{d}");
}

#[test]
fn init_strength_and_mask_do_what_they_say() {
    let s = Studio::new();
    let init = s.path("init.png");
    let pic = pattern(40, 24);
    write_png(&pic, &init).unwrap();
    let i = init.to_str().unwrap();
    let picture = |name: &str, extra: &[&str]| {
        let out = s.path(name);
        draw(
            &s,
            &out,
            &[&["--init", i, "--size", "32x32"][..], extra].concat(),
        );
        let img = read_png(&out).unwrap();
        assert_eq!((img.width, img.height), (32, 32), "{name}");
        img
    };
    let mask_file = |name: &str, white_cols: u32| {
        let mut m = RgbImage::new(32, 32);
        for y in 0..32 {
            for x in 0..white_cols {
                m.put(x as i64, y as i64, [255, 255, 255]);
            }
        }
        let p = s.path(name);
        write_png(&m, &p).unwrap();
        p.to_str().unwrap().to_string()
    };

    // An all-black mask keeps everything: the init as this model's autoencoder gives it back
    // (random weights do not reproduce the picture itself), whatever the seed.
    let black = mask_file("black.png", 0);
    let keep = picture(
        "keep1.png",
        &["--mask", &black, "--steps", "2", "--seed", "1"],
    );
    let keep2 = picture(
        "keep2.png",
        &["--mask", &black, "--steps", "2", "--seed", "2"],
    );
    let d = diff(&keep, &keep2, 0, 32);
    eprintln!("black mask, seeds 1 and 2: mean |difference| {d:.4}");
    assert!(
        d < 0.01,
        "a black mask let the seed change the picture ({d})"
    );

    // Euler, 4 steps: strength 0.3 runs the last ⌊4 × 0.3⌋ = 1 step (σ 0.03) from the init's
    // latents; strength 1.0 all 4 from noise.
    let euler = [
        "--sampler",
        "euler",
        "--steps",
        "4",
        "--seed",
        "5",
        "--strength",
    ];
    let lo = picture("lo.png", &[&euler[..], &["0.3"]].concat());
    let hi = picture("hi.png", &[&euler[..], &["1.0"]].concat());
    let (dl, dh) = (diff(&lo, &keep, 0, 32), diff(&hi, &keep, 0, 32));
    eprintln!("mean |out − init through the autoencoder|: strength 0.3 {dl:.2}, 1.0 {dh:.2}");
    assert!(
        dl < dh / 4.0,
        "strength 0.3 ({dl}) is not closer to the init than 1.0 ({dh})"
    );

    // Left half white: repainted (the seed shows); right half black: kept.
    let half = mask_file("half.png", 16);
    let a = picture("m1.png", &["--mask", &half, "--steps", "2", "--seed", "1"]);
    let b = picture("m2.png", &["--mask", &half, "--steps", "2", "--seed", "2"]);
    let (left, right) = (diff(&a, &b, 0, 4), diff(&a, &b, 28, 32));
    eprintln!(
        "half mask, seeds 1 and 2: left columns differ by {left:.2}, right edge by {right:.2}"
    );
    assert!(
        right < 4.0 && left > 8.0 * right,
        "left {left}, right {right}"
    );
}

#[test]
fn loras_merge_with_their_weight() {
    let s = Studio::new();
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusion");
    let kohya = fx.join("sd15_lora_kohya.safetensors");
    let k = kohya.to_str().unwrap();
    let base = ["--size", "16x16", "--steps", "1", "--seed", "3"];
    let plain = s.path("plain.png");
    draw(&s, &plain, &base);
    let zero = s.path("zero.png");
    draw(
        &s,
        &zero,
        &[&base[..], &["--lora", &format!("{k}:0")]].concat(),
    );
    let with = s.path("with.png");
    let err = draw(
        &s,
        &with,
        &[&base[..], &["--lora", &format!("{k}:0.8")]].concat(),
    );
    assert!(err.contains("1 LoRA"), "{err}");
    assert_eq!(
        std::fs::read(&plain).unwrap(),
        std::fs::read(&zero).unwrap()
    );
    let d = diff(&read_png(&plain).unwrap(), &read_png(&with).unwrap(), 0, 16);
    eprintln!("LoRA at 0.8 changes the picture by {d:.2}");
    assert!(d > 0.5, "the LoRA changed nothing ({d})");

    // A relative name is found in <config>/loras/; an SDXL LoRA does not fit an SD 1.5 model.
    std::fs::create_dir_all(s.config.join("loras")).unwrap();
    std::fs::copy(&kohya, s.config.join("loras/style.safetensors")).unwrap();
    let rel = s.path("rel.png");
    draw(
        &s,
        &rel,
        &[&base[..], &["--lora", "style.safetensors:0.8"]].concat(),
    );
    assert_eq!(std::fs::read(&rel).unwrap(), std::fs::read(&with).unwrap());
    let xl = fx.join("sdxl_lora_kohya.safetensors");
    let out = s.path("xl.png");
    let o = s.run(
        &[
            &["image", "a fox", "-o", out.to_str().unwrap()][..],
            &base[..],
            &["--lora", xl.to_str().unwrap()],
        ]
        .concat(),
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("SDXL LoRA on SD 1.5: exit {:?}: {err}", o.status.code());
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("loading") && err.contains("error: "),
        "{err}"
    );
    assert!(!out.exists());
}

/// Runs `image` with `args` in a fresh output folder; asserts exit code 2, an `error:` line
/// containing every needle, and an empty folder afterwards.
fn refused(s: &Studio, name: &str, args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let dir = s.path(&format!("refused-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.png");
    let mut all = vec!["image"];
    if !args.contains(&"--prompt-given") {
        all.push("a lighthouse at dusk");
    }
    all.extend(args.iter().filter(|a| **a != "--prompt-given"));
    if !args.contains(&"-o") {
        all.extend(["-o", out.to_str().unwrap()]);
    }
    let o = s.run(&all, env);
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{name}: {}", err.trim_end());
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    assert!(err.starts_with("error: "), "{name}: {err}");
    assert!(
        !err.contains("loading"),
        "{name}: the model was loaded first: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{name}: stderr lacks {n:?}: {err}");
    }
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{name}: files left behind: {left:?}");
}

#[test]
fn bad_input_is_refused_before_loading_with_the_flag_named() {
    let s = Studio::new();
    let text = s.path("notes.txt");
    std::fs::write(&text, "not a picture").unwrap();
    let pic = s.path("pic.png");
    write_png(&pattern(20, 20), &pic).unwrap();
    let (t, p) = (text.to_str().unwrap(), pic.to_str().unwrap());
    let gone = s.path("gone.png");
    let g = gone.to_str().unwrap();
    let no_dir = s.path("no/such/dir/out.png");
    let lora = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diffusion/sd15_lora_kohya.safetensors");
    let heavy = format!("{}:9", lora.display());
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "empty prompt",
            vec!["--prompt-given", "  "],
            vec!["prompt is empty"],
        ),
        ("not png", vec!["-o", "out.jpg"], vec!["-o out.jpg", ".png"]),
        (
            "no folder",
            vec!["-o", no_dir.to_str().unwrap()],
            vec!["-o", "does not exist"],
        ),
        (
            "init missing",
            vec!["--init", g],
            vec!["--init", "gone.png", "no such file"],
        ),
        (
            "init not a picture",
            vec!["--init", t],
            vec!["--init", "notes.txt"],
        ),
        (
            "mask missing",
            vec!["--init", p, "--mask", g],
            vec!["--mask", "gone.png"],
        ),
        (
            "mask without init",
            vec!["--mask", p],
            vec!["--mask needs --init"],
        ),
        (
            "strength without init",
            vec!["--strength", "0.5"],
            vec!["--strength needs --init"],
        ),
        (
            "strength 0",
            vec!["--init", p, "--strength", "0"],
            vec!["--strength 0"],
        ),
        (
            "strength 1.5",
            vec!["--init", p, "--strength", "1.5"],
            vec!["--strength 1.5"],
        ),
        (
            "strength negative",
            vec!["--init", p, "--strength", "-0.2"],
            vec!["--strength -0.2"],
        ),
        (
            "strength runs no step",
            vec!["--init", p, "--strength", "0.1", "--steps", "2"],
            vec!["--strength 0.1", "--steps 10"],
        ),
        ("steps 0", vec!["--steps", "0"], vec!["--steps 0"]),
        ("cfg negative", vec!["--cfg", "-1"], vec!["--cfg -1"]),
        (
            "unknown sampler",
            vec!["--sampler", "plms"],
            vec!["--sampler plms", "dpmpp_2m"],
        ),
        (
            "flow on sd",
            vec!["--sampler", "flow"],
            vec!["--sampler flow", "FLUX", MODEL_ID],
        ),
        (
            "size garbage",
            vec!["--size", "big"],
            vec!["--size big", "WIDTHxHEIGHT"],
        ),
        (
            "size multiple",
            vec!["--size", "33x32"],
            vec!["--size 33x32", "multiples of 2", "34x32"],
        ),
        ("batch 0", vec!["--batch", "0"], vec!["--batch 0"]),
        (
            "lora missing",
            vec!["--lora", "nope.safetensors"],
            vec!["--lora nope.safetensors", "does not exist"],
        ),
        (
            "lora weight",
            vec!["--lora", &heavy],
            vec!["--lora", "outside -4..=4"],
        ),
        (
            "unknown model",
            vec!["--model", "nope"],
            vec!["--model nope", "models list --kind image"],
        ),
        ("device", vec!["--device", "tpu"], vec!["--device tpu"]),
    ];
    for (name, args, needles) in &cases {
        refused(&s, name, args, &[], needles);
    }
    // The configured model must exist (REELSMITH_IMAGE wins over engines.toml).
    refused(
        &s,
        "env model",
        &[],
        &[("REELSMITH_IMAGE", "nope")],
        &["REELSMITH_IMAGE", "nope"],
    );
    std::fs::create_dir_all(&s.config).unwrap();
    std::fs::write(s.config.join("engines.toml"), "image = \"sd15\"\n").unwrap();
    refused(
        &s,
        "toml model",
        &[],
        &[],
        &["engines.toml: image", "sd15 is not installed"],
    );
    std::fs::write(s.config.join("engines.toml"), "image = \"none\"\n").unwrap();
    let ok_out = s.path("fallback.png");
    draw(
        &s,
        &ok_out,
        &["--size", "16x16", "--steps", "1", "--seed", "1"],
    );

    // FLUX samples with flow only, and in multiples of 16 (its 8× autoencoder, 2×2 patches).
    let flux = s.path("models/tiny-flux");
    image_support::build_flux(&flux);
    let o = s.run(
        &[
            "models",
            "import",
            flux.to_str().unwrap(),
            "--id",
            "tiny-flux",
        ],
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("image safetensors (flux"),
        "{out}"
    );
    refused(
        &s,
        "euler on flux",
        &["--model", "tiny-flux", "--sampler", "euler"],
        &[],
        &["--sampler euler", "flow only"],
    );
    refused(
        &s,
        "flux size",
        &["--model", "tiny-flux", "--size", "40x40"],
        &[],
        &["--size 40x40", "multiples of 16", "try 48x48"],
    );

    // Nothing installed at all.
    let empty = Studio::empty();
    refused(
        &empty,
        "no model",
        &[],
        &[],
        &[
            "no image model is installed",
            "reelsmith models pull sd-turbo",
        ],
    );
}

#[test]
fn ctrl_c_stops_between_steps_and_writes_nothing() {
    use std::io::BufRead;
    let s = Studio::new();
    std::fs::create_dir(s.path("out")).unwrap();
    let out = s.path("out/long.png");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_reelsmith"))
        .args([
            "image",
            "a long night",
            "--steps",
            "1000",
            "--seed",
            "1",
            "-o",
        ])
        .arg(&out)
        .env("REELSMITH_DATA_DIR", &s.data)
        .env("REELSMITH_CONFIG_DIR", &s.config)
        .env("HF_HOME", s.config.join("hf-home"))
        .env_remove("REELSMITH_IMAGE")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let go = line.starts_with("step 3/1000");
        seen.push(line);
        if go {
            // SAFETY: signalling our own child process by its id.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            break;
        }
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let steps = seen
        .iter()
        .chain(&rest)
        .filter(|l| l.starts_with("step "))
        .count();
    eprintln!("stopped after {steps} of 1000 steps: {:?}", rest.last());
    assert_eq!(status.code(), Some(130), "{seen:?} {rest:?}");
    assert!(steps < 1000, "it ran to the end");
    assert!(
        rest.iter().any(|l| l.contains("nothing written")),
        "{rest:?}"
    );
    let left: Vec<_> = std::fs::read_dir(s.path("out")).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}
