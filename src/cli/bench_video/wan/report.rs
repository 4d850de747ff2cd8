//! The Wan bench's table and its full-depth projection.

use super::*;

pub(super) fn report(
    run: &Run,
    params: u64,
    resident: &[Ours],
    streamed: &[Ours],
    theirs: &[Reference],
) {
    let dev = &run.dev;
    let plan = run.plan;
    let layers = plan.config.num_layers;
    let runs = (2 * layers) as f64;
    let o_res = best(resident.iter().map(|r| median(&r.steps)));
    let o_str = best(streamed.iter().map(|r| median(&r.steps)));
    let mem_kind = if dev.is_cuda() {
        resident
            .iter()
            .find_map(|r| r.gpu.and_then(|g| g.best()))
            .map_or("device memory, NVML", |(_, k)| k)
    } else if resident.iter().chain(streamed).all(|r| r.steps_only) {
        "host peak RSS over the steps"
    } else {
        "host peak RSS of the process"
    };
    println!(
        "  {:<24} {:>12} {:>12} {:>14}   ({mem_kind})",
        "", "step", "per block", "peak memory"
    );
    let row = |name: &str, step: f64, mem: Option<u64>| {
        println!(
            "  {name:<24} {:>12} {:>12} {:>14}",
            fmt_secs(step),
            fmt_secs(step / runs),
            mem_cell(mem)
        );
    };
    let (m_res, m_str) = (ours_peak(dev, resident), ours_peak(dev, streamed));
    row("reelsmith (candle)", o_res, m_res);
    row("reelsmith, streamed", o_str, m_str);
    let t_step = best(theirs.iter().map(|x| num(&x.json, "step_s")));
    let mut t_mem = None;
    if let Some(j) = theirs.last().map(|x| &x.json) {
        t_mem = if dev.is_cuda() {
            theirs
                .iter()
                .filter_map(|x| x.gpu.and_then(|g| g.best()))
                .map(|(b, _)| b)
                .max()
        } else {
            theirs
                .iter()
                .filter_map(|x| x.json["step_peak_rss_bytes"].as_u64())
                .max()
        };
        row("diffusers (eager)", t_step, t_mem);
        println!(
            "    diffusers {}, torch {}; loaded from the same folder with from_pretrained",
            j["diffusers"].as_str().unwrap_or("?"),
            j["torch"].as_str().unwrap_or("?")
        );
        if dev.is_cuda() {
            if let Some(a) = j["cuda_step_max_allocated_bytes"].as_u64() {
                println!(
                    "    torch max_memory_allocated over the steps {:.2} GiB, max_memory_reserved {:.2} GiB (tensors only; NVML adds the CUDA context)",
                    gib(a),
                    gib(j["cuda_max_reserved_bytes"].as_u64().unwrap_or(0))
                );
            }
        }
        let tp = j["transformer_params"].as_u64().unwrap_or(0);
        if tp != params {
            println!("    warning: diffusers holds {tp} parameters, we built {params}: the networks differ");
        }
        if j["weights_match"].as_bool() != Some(true) {
            println!("    warning: diffusers' state_dict and the checkpoint's tensors differ (see its stderr)");
        }
    }
    if dev.is_cuda() {
        println!(
            "    host peak RSS {:.2} GiB",
            gib(crate::rt::memory_of(None).1)
        );
    }
    if !theirs.is_empty() {
        let ratio_mem = match (m_res, t_mem) {
            (Some(a), Some(b)) if b > 0 => format!("{:.2}×", a as f64 / b as f64),
            _ => "—".into(),
        };
        println!(
            "  {:<24} {:>11.2}× {:>12} {:>14}",
            "ratio ours/diffusers",
            o_res / t_step,
            "",
            ratio_mem
        );
    }
    println!(
        "  {:<24} {:>11.2}× {:>12}   ({}{} a streamed block run)",
        "streamed/resident",
        o_str / o_res,
        "",
        if o_str >= o_res { "+" } else { "−" },
        fmt_secs((o_str - o_res).abs() / runs)
    );
    println!(
        "    per block: a step over its 2 × {layers} block runs (the embeddings, head and sampler update included)"
    );
    projection(run, resident, o_res, o_str);
}

/// The full-depth figures when fewer blocks were built, and the fit under `--memory-cap`.
fn projection(run: &Run, resident: &[Ours], o_res: f64, o_str: f64) {
    let plan = run.plan;
    let (layers, full) = (plan.config.num_layers, plan.net.config.num_layers);
    let Some(r) = resident.first() else { return };
    let (rest, block) = (r.resident_bytes as u64, r.block_bytes as u64);
    let per = |step: f64| step / layers as f64;
    if layers < full {
        println!(
            "  at its {full} blocks ≈ {} a step resident ({:.2} GiB of {:?} weights), ≈ {} with every block streamed ({:.2} GiB of them on the device)",
            fmt_secs(per(o_res) * full as f64),
            gib(rest + full as u64 * block),
            run.dtype,
            fmt_secs(per(o_str) * full as f64),
            gib(rest + 2.min(full as u64) * block)
        );
    }
    let Some(cap) = plan.memory_cap else { return };
    // The steps' working set beyond the weights, as measured in the resident runs.
    let work = resident
        .iter()
        .map(|r| {
            if run.dev.is_cuda() {
                r.gpu
                    .and_then(|g| g.best())
                    .map_or(0, |(b, _)| b.saturating_sub(rest + layers as u64 * block))
            } else {
                r.host_peak.saturating_sub(r.host_before)
            }
        })
        .max()
        .unwrap_or(0);
    let fits = |kept: u64| rest + kept * block + work <= cap;
    let kept = if fits(full as u64) {
        full as u64
    } else {
        (0..full as u64).rev().find(|&k| fits(k + 2)).unwrap_or(0)
    };
    let on_device = rest + (kept + 2).min(full as u64) * block + work;
    let step = per(o_res) * kept as f64 + per(o_str) * (full as u64 - kept) as f64;
    let cap_gib = gib(cap);
    if !fits(2.min(full as u64)) {
        println!(
            "  under a {cap_gib:.1} GiB cap: does not fit even with every block streamed ({:.2} GiB of resident weights, 2 blocks of {:.2} GiB, a {:.2} GiB working set)",
            gib(rest),
            gib(block),
            gib(work)
        );
        return;
    }
    println!(
        "  under a {cap_gib:.1} GiB cap: {kept} of {full} blocks resident, {} streamed: ≈ {} a step, peak ≈ {:.2} GiB ({:.2} GiB of weights beside the blocks, {:.2} GiB a block, {:.2} GiB working set as measured){}",
        full as u64 - kept,
        fmt_secs(step),
        gib(on_device),
        gib(rest),
        gib(block),
        gib(work),
        if run.dev.is_cpu() {
            "; on the CPU the streamed blocks' host copies share that memory and are not counted"
        } else {
            ""
        }
    );
}
