//! Dumps frames of a video as PNG for a look: `cargo run --example frames -- VIDEO OUTDIR T1 T2 …`
//! (times in seconds). Prints what `probe` sees first.

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: frames VIDEO OUTDIR T1 [T2 …]");
        std::process::exit(2);
    }
    let video = PathBuf::from(&args[0]);
    let out = PathBuf::from(&args[1]);
    if let Err(e) = run(&video, &out, &args[2..]) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(
    video: &std::path::Path,
    out: &std::path::Path,
    times: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    println!("{:#?}", reelsmith::media::decode::probe(video)?);
    std::fs::create_dir_all(out)?;
    for t in times {
        let secs: f64 = t.parse()?;
        let img = reelsmith::media::decode::frame_at(video, secs)?;
        let p = out.join(format!("frame-{t}.png"));
        reelsmith::media::stills::write_png(&img, &p)?;
        println!("{}", p.display());
    }
    Ok(())
}
