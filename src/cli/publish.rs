//! `reelsmith publish JOB|OUTDIR --to youtube[,tiktok,instagram]`: queue a finished render's
//! videos as publications in the store and run them in the foreground (as `models pull`
//! does: through the store, so a killed command resumes where the platform has the bytes when
//! it is run again or when the studio's runner picks it up); `--queue` only queues them.
//! `--list` shows the publications, `--retry ID` and `--cancel ID` act on one.
//!
//! Everything is checked before anything is queued (exit 2, nothing queued): the platforms and
//! accounts, the render's outputs, `--at` (a time in the future, with private videos), a
//! `--short` that is really a Short, and a consent record for every real person shown.

use clap::Args;

use super::Fail;
use crate::config::Dirs;
use crate::publish::plan::{plan, Request};
use crate::publish::runner::{Outcome, Runner};
use crate::publish::source;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// A finished job's number (`reelsmith status`) or a render's folder (out/<name>).
    pub source: Option<String>,
    /// Platforms, comma-separated: youtube (final.mp4, and short.mp4 with --short), tiktok and
    /// instagram (short.mp4) (default: the script's `publish.to`).
    #[arg(long, value_delimiter = ',')]
    pub to: Vec<String>,
    /// Languages to publish, comma-separated (default: every rendered one).
    #[arg(long, value_delimiter = ',')]
    pub lang: Vec<String>,
    /// private, unlisted or public (default: the script's, else private).
    #[arg(long)]
    pub privacy: Option<String>,
    /// Publish at this time (RFC 3339, e.g. 2026-12-24T18:00:00Z): private until then.
    #[arg(long)]
    pub at: Option<String>,
    /// Publish the vertical short (short.mp4) too: a YouTube Short; what TikTok and
    /// Instagram get anyway.
    #[arg(long)]
    pub short: bool,
    /// Disclose the video as altered or synthetic content: yes (default) or no.
    #[arg(long)]
    pub synthetic: Option<String>,
    /// The account on each platform (default: the platform's only or first one).
    #[arg(long)]
    pub account: Option<String>,
    /// A YouTube playlist to add the videos to.
    #[arg(long)]
    pub playlist: Option<String>,
    /// TikTok: `direct` posts it (scope video.publish; the default), `inbox` sends it to the
    /// creator's TikTok inbox to post from the app (scope video.upload).
    #[arg(long)]
    pub tiktok_mode: Option<String>,
    /// Only queue them (`reelsmith publish --run` runs the queue).
    #[arg(long)]
    pub queue: bool,
    /// Run every queued publication now, resuming interrupted uploads where the platform has
    /// them (and held ones whose time has come).
    #[arg(long)]
    pub run: bool,
    /// List the publications.
    #[arg(long)]
    pub list: bool,
    /// With --list: JSON.
    #[arg(long)]
    pub json: bool,
    /// Queue a failed or cancelled publication again (it resumes where the platform has it).
    #[arg(long)]
    pub retry: Option<i64>,
    /// Cancel a publication.
    #[arg(long)]
    pub cancel: Option<i64>,
}

pub fn run(args: PublishArgs, dirs: &Dirs) -> i32 {
    Fail::exit_code(publish(args, dirs))
}

fn open(dirs: &Dirs) -> Result<Store, Fail> {
    if let Some(p) = dirs.db_path().parent() {
        std::fs::create_dir_all(p).map_err(|e| Fail::Failed(format!("{}: {e}", p.display())))?;
    }
    Store::open(&dirs.db_path()).map_err(|e| Fail::Failed(e.to_string()))
}

fn runner<'a>(store: &'a Store, dirs: &'a Dirs) -> Runner<'a> {
    Runner::from_env(store, &dirs.data)
}

fn publish(args: PublishArgs, dirs: &Dirs) -> Result<(), Fail> {
    let store = open(dirs)?;
    if args.list {
        let rows = store
            .publications()
            .map_err(|e| Fail::Failed(e.to_string()))?;
        if args.json {
            // The upload state holds session URIs and upload tokens: never shown.
            let shown: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.remove("upload_state");
                    }
                    v
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).unwrap_or_else(|_| "[]".into())
            );
            return Ok(());
        }
        for r in &rows {
            let pct = match r.bytes_total {
                Some(t) if t > 0 => format!("{:>3}%", r.bytes_done * 100 / t),
                _ => "   -".into(),
            };
            println!(
                "{:>4}  {:<10} {:<9} {:<5} {:<2} {:<10} {pct}  {}  {}",
                r.id,
                r.platform,
                r.account,
                r.kind,
                r.lang,
                r.status.as_str(),
                r.remote_id.as_deref().unwrap_or("-"),
                r.error.as_deref().unwrap_or("")
            );
        }
        println!("{} publication(s)", rows.len());
        return Ok(());
    }
    if args.run {
        let r = runner(&store, dirs);
        let mut failed = 0;
        r.run_all(None, &mut |row, outcome| report(row, outcome, &mut failed))
            .map_err(|e| Fail::Failed(e.to_string()))?;
        return finish(failed);
    }
    if let Some(id) = args.cancel {
        use crate::publish::runner::CancelResult;
        return match crate::publish::runner::cancel(&store, id)
            .map_err(|e| Fail::Failed(e.to_string()))?
        {
            CancelResult::Now => {
                println!("publication {id}: cancelled");
                Ok(())
            }
            CancelResult::Asked => {
                println!(
                    "publication {id}: cancel asked; its runner stops at its next chunk or poll"
                );
                Ok(())
            }
            CancelResult::Finished => Err(Fail::Input(format!(
                "publication {id} is not queued or running (`reelsmith publish --list`)"
            ))),
        };
    }
    if let Some(id) = args.retry {
        if !store
            .retry_publication(id)
            .map_err(|e| Fail::Failed(e.to_string()))?
        {
            return Err(Fail::Input(format!(
                "publication {id} is not failed or cancelled (`reelsmith publish --list`)"
            )));
        }
        println!("publication {id}: queued again");
        if args.queue {
            return Ok(());
        }
        return run_ids(&store, dirs, &[id]);
    }
    let Some(arg) = args.source.as_deref() else {
        return Err(Fail::Input(
            "name a finished job or a render's folder: `reelsmith publish 12 --to youtube`".into(),
        ));
    };
    let src = source::resolve(arg, Some(&store)).map_err(Fail::Input)?;
    let req = Request {
        to: args.to.clone(),
        lang: args.lang.clone(),
        privacy: args.privacy.clone(),
        at: args.at.clone(),
        short: args.short,
        synthetic: args.synthetic.clone(),
        account: args.account.clone(),
        playlist: args.playlist.clone(),
        tiktok_mode: args.tiktok_mode.clone(),
    };
    let new = plan(&req, &src, &dirs.data, &store).map_err(Fail::Input)?;
    // Already published is the user's to sort out (exit 2); a store that fails is not.
    let rows = store.enqueue_publications(&new).map_err(|e| match e {
        crate::store::StoreError::InvalidArgument { .. } => Fail::Input(e.to_string()),
        e => Fail::Failed(e.to_string()),
    })?;
    for r in &rows {
        println!(
            "publication {}: {} {} ({}) → {} account {}",
            r.id, r.kind, r.lang, r.file, r.platform, r.account
        );
    }
    if args.queue {
        return Ok(());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    run_ids(&store, dirs, &ids)
}

fn report(row: &crate::store::PublicationRow, outcome: &Outcome, failed: &mut usize) {
    match outcome {
        Outcome::Live(id) => println!("publication {}: live on {} as {id}", row.id, row.platform),
        Outcome::Waiting(until, why) => println!(
            "publication {}: waiting until {}: {why}",
            row.id,
            reelsmith_publish::time::format_rfc3339(*until)
        ),
        Outcome::Failed(why) => {
            *failed += 1;
            eprintln!("publication {}: failed: {why}", row.id)
        }
        Outcome::Cancelled(note) => println!(
            "publication {}: cancelled{}",
            row.id,
            note.as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        Outcome::Lost => eprintln!(
            "publication {}: taken over by another process (`reelsmith publish --list`)",
            row.id
        ),
    }
}

/// Runs publications `ids` in the foreground; those another running process holds are named
/// (it runs them; `--list` follows them).
pub(crate) fn run_ids(store: &Store, dirs: &Dirs, ids: &[i64]) -> Result<(), Fail> {
    let r = runner(store, dirs);
    let mut failed = 0;
    let mut ran = Vec::new();
    r.run_all(Some(ids), &mut |row, outcome| {
        ran.push(row.id);
        report(row, outcome, &mut failed)
    })
    .map_err(|e| Fail::Failed(e.to_string()))?;
    for &id in ids.iter().filter(|id| !ran.contains(id)) {
        if let Ok(Some(row)) = store.publication(id) {
            match row.owner_pid {
                Some(p) if row.status.is_active() => println!(
                    "publication {id}: {} by another process (pid {p}); `reelsmith publish \
                     --list` follows it",
                    row.status.as_str()
                ),
                _ if row.status == crate::store::PublicationStatus::Waiting => println!(
                    "publication {id}: waiting until {}: {}",
                    row.not_before_ms
                        .map(reelsmith_publish::time::format_rfc3339)
                        .unwrap_or_default(),
                    row.error.as_deref().unwrap_or("")
                ),
                _ => {}
            }
        }
    }
    finish(failed)
}

fn finish(failed: usize) -> Result<(), Fail> {
    if failed > 0 {
        return Err(Fail::Failed(format!(
            "{failed} publication(s) failed (`reelsmith publish --list`, `--retry ID`)"
        )));
    }
    Ok(())
}
