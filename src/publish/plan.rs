//! What a publish request turns into: one publication per platform, language and file,
//! checked before anything is queued (platforms, privacy, `at`, Shorts, consent, accounts).
//! `reelsmith publish` and the scheduler (a finished job whose script has a `publish:` block)
//! both plan with it.

use std::path::Path;

use reelsmith_publish::Platform;

use super::accounts;
use super::runner::PublishOptions;
use super::source::{self, Source};
use crate::store::{NewPublication, Store};

/// A publish request; every field left out comes from the script's `publish:` block.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub to: Vec<String>,
    pub lang: Vec<String>,
    pub privacy: Option<String>,
    pub at: Option<String>,
    pub short: bool,
    /// `yes` or `no`.
    pub synthetic: Option<String>,
    pub account: Option<String>,
    pub playlist: Option<String>,
    /// `direct` or `inbox`.
    pub tiktok_mode: Option<String>,
}

/// Queues what a finished render's script asks for in its `publish:` block (nothing when it
/// has none); the error says why nothing was queued.
pub fn queue_from_script(
    store: &Store,
    data: &Path,
    project_dir: &Path,
    job: i64,
) -> Result<Vec<crate::store::PublicationRow>, String> {
    let mut src = source::resolve(&project_dir.to_string_lossy(), Some(store))?;
    src.job_id = Some(job);
    if src.spec.is_none() {
        return Ok(Vec::new());
    }
    let new = plan(&Request::default(), &src, data, store)?;
    store.enqueue_publications(&new).map_err(|e| e.to_string())
}

/// The publications `req` asks for from `src` (the script's `publish:` block fills what it
/// leaves out), checked: nothing is queued on an error.
pub fn plan(
    req: &Request,
    src: &Source,
    data: &Path,
    store: &Store,
) -> Result<Vec<NewPublication>, String> {
    let spec = src.spec.clone().unwrap_or_default();
    let to = if req.to.is_empty() {
        spec.platforms().to_vec()
    } else {
        req.to.clone()
    };
    if to.is_empty() {
        return Err("--to: name the platforms (youtube, tiktok, instagram)".into());
    }
    let mut platforms = Vec::new();
    for t in &to {
        let p = Platform::parse(t).ok_or_else(|| {
            format!("--to {t}: unknown platform; use youtube, tiktok or instagram")
        })?;
        if !platforms.contains(&p) {
            platforms.push(p);
        }
    }
    let privacy = req
        .privacy
        .clone()
        .or(spec.privacy.clone())
        .unwrap_or_else(|| "private".into());
    if !["private", "unlisted", "public"].contains(&privacy.as_str()) {
        return Err(format!(
            "--privacy {privacy}: use private, unlisted or public"
        ));
    }
    // `--at` on the command line, else the script's `publish.at` (named as such in errors).
    let (at, at_name) = match (&req.at, &spec.at) {
        (Some(a), _) => (Some(a.clone()), "--at"),
        (None, Some(a)) => (Some(a.clone()), "the script's publish.at"),
        (None, None) => (None, "--at"),
    };
    let at_ms = match &at {
        None => None,
        Some(a) => {
            let ms = reelsmith_publish::time::parse_rfc3339_ms(a).ok_or_else(|| {
                format!("{at_name} {a}: write the time as RFC 3339, e.g. 2026-12-24T18:00:00Z")
            })?;
            if ms <= reelsmith_publish::oauth::now_ms() {
                return Err(format!(
                    "{at_name} {a} is in the past: give a time to come with --at, or remove it \
                     to publish now"
                ));
            }
            if privacy != "private" {
                return Err(format!(
                    "{at_name} with privacy {privacy}: a scheduled video stays private until its \
                     time; use --privacy private (or leave it out)"
                ));
            }
            Some(ms)
        }
    };
    // What the platforms cannot do is refused here, not done differently there.
    if at_ms.is_some() {
        if let Some(p) = platforms.iter().find(|p| **p != Platform::YouTube) {
            return Err(format!(
                "{at_name}: {p} cannot schedule a post through its API (only YouTube can); \
                 publish to {p} without a time, or queue it later"
            ));
        }
    }
    if platforms.contains(&Platform::Instagram) && privacy != "public" {
        return Err(format!(
            "--privacy {privacy}: Instagram Reels posted through the API are public (Instagram \
             has no private or unlisted Reel); use --privacy public for instagram, or publish \
             to it separately"
        ));
    }
    let synthetic = match req.synthetic.as_deref() {
        None => spec.synthetic.unwrap_or(true),
        Some("yes" | "true") => true,
        Some("no" | "false") => false,
        Some(v) => return Err(format!("--synthetic {v}: yes or no")),
    };
    let langs = if req.lang.is_empty() {
        spec.languages.clone()
    } else {
        req.lang.clone()
    };
    let short = req.short || spec.short.unwrap_or(false);
    // YouTube gets the video (and the short with --short); TikTok and Instagram Reels get the
    // vertical short.
    let youtube = platforms.contains(&Platform::YouTube);
    let items = if youtube {
        src.items(&langs, short, false)?
    } else {
        Vec::new()
    };
    let shorts = if platforms.iter().any(|p| *p != Platform::YouTube) {
        src.items(&langs, true, true)?
    } else {
        Vec::new()
    };
    for it in items.iter().chain(&shorts).filter(|i| i.kind == "short") {
        source::check_short(&it.file)?;
    }
    src.check_consent(store)?;
    let account_name = req.account.clone().or(spec.account.clone());
    let tiktok_inbox = match req.tiktok_mode.as_deref().or(spec.tiktok_mode.as_deref()) {
        None | Some("direct") => false,
        Some("inbox") => true,
        Some(m) => return Err(format!("--tiktok-mode {m}: direct or inbox")),
    };
    let options = PublishOptions {
        privacy,
        at_ms,
        synthetic,
        playlist: req.playlist.clone().or(spec.playlist.clone()),
        tiktok_inbox,
    };
    let options = serde_json::to_string(&options).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for p in platforms {
        let account = accounts::pick(data, p, account_name.as_deref())?;
        if p == Platform::Instagram && account.user_id.is_none() {
            return Err(format!(
                "the instagram account {} has no Instagram user id: add it again with \
                 --ig-user-id ID",
                account.name
            ));
        }
        let list = if p == Platform::YouTube {
            &items
        } else {
            &shorts
        };
        for it in list {
            out.push(NewPublication {
                platform: p.as_str().into(),
                account: account.name.clone(),
                kind: it.kind.into(),
                lang: it.lang.clone(),
                source: src.dir.to_string_lossy().into_owned(),
                job_id: src.job_id,
                file: it.file.to_string_lossy().into_owned(),
                options: options.clone(),
            });
        }
    }
    Ok(out)
}
