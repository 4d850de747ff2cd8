//! Runs queued publications: claims one from the store, uploads it with the platform's
//! protocol from wherever its saved upload state says (after every acknowledged chunk the state
//! goes back into the store, so a killed process, a reboot or a dropped network resumes from
//! the last byte the platform has), then follows the platform's processing until the video is
//! live. Platform errors are data: a spent quota holds the publication until the quota resets
//! (and says when), a refused token or request fails it with the platform's message and what
//! to do, an unreachable platform holds it for a back-off.

use std::path::Path;
use std::time::Duration;

use reelsmith_publish::oauth::OAuthError;
use reelsmith_publish::youtube::{self, Privacy, UploadState, VideoMeta, YouTubeError};
use reelsmith_publish::{Client, Endpoints, Platform};
use serde::{Deserialize, Serialize};

use super::accounts;
use crate::store::{Beat, PublicationRow, PublicationStatus, Store};

/// A publication's options, as queued (JSON in the store).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishOptions {
    /// private, unlisted, public.
    pub privacy: String,
    /// When a scheduled video goes public (ms since the epoch).
    pub at_ms: Option<i64>,
    /// Disclose altered or synthetic content.
    pub synthetic: bool,
    pub playlist: Option<String>,
    /// TikTok: send it to the creator's inbox (they post it in the app) instead of posting it.
    pub tiktok_inbox: bool,
}

/// What the runner keeps per publication beyond the platform's upload state: the steps after
/// the upload that must not run (or be counted) twice after a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct RunState {
    youtube: UploadState,
    /// The `videos.insert` is in the quota ledger.
    insert_counted: bool,
    thumbnail: bool,
    captions: bool,
    playlist: bool,
    /// What could not be done (a thumbnail, a caption track), kept across restarts.
    notes: Vec<String>,
}

/// How one run of a publication ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Live(String),
    /// Held until this time, with the reason.
    Waiting(i64, String),
    Failed(String),
    /// Stopped on request; the note says what stays on the platform when the upload had
    /// already been sent.
    Cancelled(Option<String>),
    /// Another process owns the publication now (this one stopped beating); nothing written.
    Lost,
}

/// A running publication whose owner has not beaten for this long is taken over (its process
/// is hung, or its pid was reused after a reboot). Runners beat at every chunk and poll.
pub const STALE_MS: i64 = 600_000;

/// How long a runner follows a platform's processing before it holds the publication and
/// moves on (it looks again after [`FOLLOW_AGAIN`]).
pub const FOLLOW_FOR: Duration = Duration::from_secs(3600);
pub const FOLLOW_AGAIN: Duration = Duration::from_secs(600);

/// What the runner needs.
pub struct Runner<'a> {
    pub store: &'a Store,
    pub data: &'a Path,
    pub client: Client,
    pub endpoints: Endpoints,
    pub pid: u32,
    /// Pause between processing polls.
    pub poll: Duration,
}

/// Whether the process owning a publication lives (this process always does).
pub fn owner_alive(pid: u32) -> bool {
    pid == std::process::id() || crate::hub::queue::process_alive(pid)
}

/// How a cancel went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelResult {
    /// Cancelled at once: it was queued or waiting, or its runner is gone.
    Now,
    /// Its live runner was asked; it stops at its next chunk or poll.
    Asked,
    /// It had already finished.
    Finished,
}

/// Cancels publication `id` (the CLI's `--cancel`, the studio's `c`): the runners of dead
/// processes are released first, so their uploads are cancelled at once.
pub fn cancel(store: &Store, id: i64) -> Result<CancelResult, crate::store::StoreError> {
    store.release_dead_publications(owner_alive)?;
    if !store.cancel_publication(id)? {
        return Ok(CancelResult::Finished);
    }
    Ok(match store.publication(id)? {
        Some(r) if r.status == PublicationStatus::Cancelled => CancelResult::Now,
        _ => CancelResult::Asked,
    })
}

/// The pause between a runner's polls of a platform's processing: 30 s, or
/// `REELSMITH_PUBLISH_POLL_MS`.
pub fn poll_interval() -> Duration {
    std::env::var("REELSMITH_PUBLISH_POLL_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(30))
}

fn now_ms() -> i64 {
    reelsmith_publish::oauth::now_ms()
}

/// The quota day (Pacific date) of a UTC time: the ledger's key.
pub fn quota_day(utc_ms: i64) -> String {
    let local = utc_ms + youtube::pacific_offset_ms(utc_ms);
    let (y, m, d) = reelsmith_publish::time::civil_from_days(local.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// YouTube's category id for the metadata stage's category name.
fn category_id(name: &str) -> &'static str {
    match name {
        "Gaming" => "20",
        "Education" => "27",
        "Film & Animation" => "1",
        _ => "22",
    }
}

pub(super) fn read_json(p: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// The YouTube resource of a publication: its language's metadata.json, the other rendered
/// languages' titles and descriptions as localizations, the options' privacy, schedule and
/// disclosure.
fn youtube_meta(row: &PublicationRow, opts: &PublishOptions) -> Result<VideoMeta, String> {
    let dir = Path::new(&row.source);
    let m = read_json(&dir.join(&row.lang).join("metadata.json"))?;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut meta = VideoMeta {
        title: s(&m["title"]),
        description: s(&m["description"]),
        tags: m["tags"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default(),
        category_id: category_id(m["category"].as_str().unwrap_or("")).into(),
        default_language: row.lang.clone(),
        privacy: match opts.privacy.as_str() {
            "public" => Privacy::Public,
            "unlisted" => Privacy::Unlisted,
            _ => Privacy::Private,
        },
        publish_at: opts.at_ms.map(reelsmith_publish::time::format_rfc3339),
        synthetic: opts.synthetic,
        ..VideoMeta::default()
    };
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(|e| e.ok()) {
            let lang = e.file_name().to_string_lossy().into_owned();
            let f = e.path().join("metadata.json");
            if lang != row.lang && f.is_file() {
                if let Ok(o) = read_json(&f) {
                    meta.localizations
                        .insert(lang, (s(&o["title"]), s(&o["description"])));
                }
            }
        }
    }
    Ok(meta)
}

/// Beats for publication `id` of `pid` every 30 s (with a connection of its own) until `stop`
/// or until the publication is no longer `pid`'s.
fn beat_while(db: &Path, id: i64, pid: u32, stop: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    let Ok(store) = Store::open(db) else { return };
    let tick = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        waited += tick;
        if waited >= Duration::from_secs(30) {
            waited = Duration::ZERO;
            if store.publication_beat(id, pid).ok() == Some(Beat::Lost) {
                return;
            }
        }
    }
}

/// Whether a runner still holds its publication, and whether it was asked to stop: shared by
/// the persist and progress callbacks of an upload.
#[derive(Default)]
pub(super) struct Control {
    cancel: std::cell::Cell<bool>,
    lost: std::cell::Cell<bool>,
}

impl Control {
    pub(super) fn saw(&self, beat: Beat) {
        match beat {
            Beat::Go => {}
            Beat::Cancel => self.cancel.set(true),
            Beat::Lost => self.lost.set(true),
        }
    }

    /// Whether the upload goes on.
    pub(super) fn go(&self) -> bool {
        !self.cancel.get() && !self.lost.get()
    }

    pub(super) fn lost(&self) -> bool {
        self.lost.get()
    }

    pub(super) fn cancelled(&self) -> bool {
        self.cancel.get()
    }

    /// What a stopped upload's outcome is.
    pub(super) fn stopped(&self) -> Outcome {
        if self.lost.get() {
            Outcome::Lost
        } else {
            Outcome::Cancelled(None)
        }
    }
}

impl<'a> Runner<'a> {
    /// A runner of this process with the platforms' clients and endpoints from the
    /// environment.
    pub fn from_env(store: &'a Store, data: &'a Path) -> Runner<'a> {
        Runner {
            store,
            data,
            client: Client::from_env(),
            endpoints: Endpoints::from_env(),
            pid: std::process::id(),
            poll: poll_interval(),
        }
    }

    /// Records a status; false when another process owns the publication now (nothing was
    /// written, and the caller stops: [`Outcome::Lost`]).
    fn set(
        &self,
        id: i64,
        status: PublicationStatus,
        remote: Option<&str>,
        error: Option<&str>,
        until: Option<i64>,
    ) -> bool {
        match self
            .store
            .set_publication_status(id, self.pid, status, remote, error, until)
        {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!("publication {id}: taken over by another process");
                false
            }
            Err(e) => {
                // The store will tell again at the next write; going on is safe.
                tracing::error!("publication {id}: {e}");
                true
            }
        }
    }

    /// Saves the upload state of a running publication (a heartbeat too).
    pub(super) fn save_state<S: Serialize>(
        &self,
        id: i64,
        state: &S,
        done: u64,
        total: u64,
    ) -> Result<Beat, String> {
        let json = serde_json::to_string(state).map_err(|e| e.to_string())?;
        self.store
            .publication_progress(id, self.pid, &json, done, total)
            .map_err(|e| e.to_string())
    }

    /// A heartbeat while waiting on the platform (a store error counts as going on: the
    /// next beat or the end will tell).
    pub(super) fn beat(&self, id: i64) -> Beat {
        self.store
            .publication_beat(id, self.pid)
            .unwrap_or(Beat::Go)
    }

    /// How many polls make [`FOLLOW_FOR`].
    pub(super) fn follow_polls(&self) -> u64 {
        (FOLLOW_FOR.as_millis() / self.poll.as_millis().max(1)).max(1) as u64
    }

    /// The hold after following a platform's processing for [`FOLLOW_FOR`].
    pub(super) fn follow_later(&self, what: &str) -> Outcome {
        let at = now_ms() + FOLLOW_AGAIN.as_millis() as i64;
        Outcome::Waiting(
            at,
            format!(
                "{what} still processing after {}; looked at again at {}",
                reelsmith_publish::time::fmt_wait(FOLLOW_FOR),
                reelsmith_publish::time::format_rfc3339(at)
            ),
        )
    }

    /// Runs one claimed publication to its end (or hold) and records the outcome. A thread
    /// of its own beats for it meanwhile (a single request, such as an Instagram Reel sent
    /// whole over a slow uplink, may take longer than [`STALE_MS`]).
    pub fn run(&self, row: &PublicationRow) -> Outcome {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| {
            let db = self.store.path().to_path_buf();
            if db.is_file() {
                let (id, pid, stop) = (row.id, self.pid, &stop);
                scope.spawn(move || beat_while(&db, id, pid, stop));
            }
            let o = match Platform::parse(&row.platform) {
                Some(Platform::YouTube) => self.youtube(row),
                Some(Platform::TikTok) => self.tiktok(row),
                Some(Platform::Instagram) => self.instagram(row),
                None => Outcome::Failed(format!("unknown platform {}", row.platform)),
            };
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            o
        });
        let _ = match &outcome {
            Outcome::Live(id) => self.set(row.id, PublicationStatus::Live, Some(id), None, None),
            Outcome::Waiting(until, why) => self.set(
                row.id,
                PublicationStatus::Waiting,
                None,
                Some(why),
                Some(*until),
            ),
            Outcome::Failed(why) => {
                self.set(row.id, PublicationStatus::Failed, None, Some(why), None)
            }
            Outcome::Cancelled(note) => self.set(
                row.id,
                PublicationStatus::Cancelled,
                None,
                note.as_deref(),
                None,
            ),
            Outcome::Lost => true,
        };
        outcome
    }

    /// Claims and runs publications until none is runnable; `only` limits them to some ids.
    /// A store error stops it (and is returned): the publications stay as they are.
    pub fn run_all(
        &self,
        only: Option<&[i64]>,
        on_done: &mut dyn FnMut(&PublicationRow, &Outcome),
    ) -> Result<(), crate::store::StoreError> {
        // Uploads whose process died (killed, rebooted) resume here from their saved state.
        let me = self.pid;
        self.store
            .release_dead_publications(|p| p == me || owner_alive(p))?;
        let mut tried = std::collections::HashSet::new();
        loop {
            let next = match only {
                Some(ids) => {
                    let mut found = None;
                    for &id in ids {
                        if tried.contains(&id) {
                            continue;
                        }
                        if let Some(r) = self.store.claim_publication(id, self.pid, STALE_MS)? {
                            found = Some(r);
                            break;
                        }
                    }
                    found
                }
                None => self.store.claim_next_publication(self.pid, STALE_MS)?,
            };
            let Some(row) = next else { break };
            // A publication held again (a quota, a back-off) is not run twice in one go.
            tried.insert(row.id);
            let outcome = self.run(&row);
            on_done(&row, &outcome);
            if only.is_none() && matches!(outcome, Outcome::Waiting(..)) {
                // claim_next picks only those whose time has come; a hold of 0 would spin.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// Records that the upload is done and the platform is processing it (`remote`); false
    /// when the publication is no longer ours.
    pub(super) fn mark_processing(&self, row: &PublicationRow, remote: &str) -> bool {
        self.set(
            row.id,
            PublicationStatus::Processing,
            Some(remote),
            None,
            None,
        )
    }

    pub(super) fn token_outcome(&self, e: OAuthError) -> Outcome {
        if e.is_transient() {
            Outcome::Waiting(now_ms() + 300_000, e.to_string())
        } else {
            Outcome::Failed(e.to_string())
        }
    }

    fn youtube(&self, row: &PublicationRow) -> Outcome {
        let opts: PublishOptions = serde_json::from_str(&row.options).unwrap_or_default();
        let mut account = match accounts::load(self.data, Platform::YouTube, &row.account) {
            Ok(a) => a,
            Err(e) => return Outcome::Failed(e),
        };
        let mut token =
            match accounts::fresh_token(self.data, &self.client, &self.endpoints, &mut account) {
                Ok(t) => t,
                Err(e) => return self.token_outcome(e),
            };
        let mut run: RunState = row
            .upload_state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let day = quota_day(now_ms());
        let used = |bucket: &str| {
            self.store
                .quota_used("youtube", &row.account, &day, bucket)
                .unwrap_or(0)
        };
        let spend = |bucket: &str, units: u32| {
            if let Err(e) =
                self.store
                    .quota_spend("youtube", &row.account, &day, bucket, u64::from(units))
            {
                tracing::warn!("publication {}: quota ledger: {e}", row.id);
            }
        };
        let reset = youtube::next_quota_reset(now_ms());
        if run.youtube.video_id.is_none()
            && used("insert") >= u64::from(youtube::VIDEOS_INSERT_PER_DAY)
        {
            return Outcome::Waiting(
                reset,
                format!(
                    "{} uploads today on {} (YouTube's daily limit); waits until the quota resets at {}",
                    youtube::VIDEOS_INSERT_PER_DAY,
                    row.account,
                    reelsmith_publish::time::format_rfc3339(reset)
                ),
            );
        }
        let meta = match youtube_meta(row, &opts) {
            Ok(m) => m,
            Err(e) => return Outcome::Failed(e),
        };
        let file = Path::new(&row.file);
        let mut refreshed = false;
        let (video_id, control_cancelled) = loop {
            let control = Control::default();
            let mut persist = |s: &UploadState| -> Result<(), String> {
                let st = RunState {
                    youtube: s.clone(),
                    ..run.clone()
                };
                control.saw(self.save_state(row.id, &st, s.offset, s.total)?);
                Ok(())
            };
            let mut progress = |_: u64, _: u64| control.go();
            let mut state = run.youtube.clone();
            let r = youtube::upload_video(
                &self.client,
                &self.endpoints,
                &token,
                &meta,
                file,
                &mut state,
                &mut persist,
                &mut progress,
            );
            run.youtube = state;
            if control.lost() {
                return Outcome::Lost;
            }
            // A cancel seen while the bytes were still going stops here; one seen as the last
            // chunk was acknowledged comes too late: the video is on YouTube (below).
            if control.cancelled() && r.is_err() {
                return control.stopped();
            }
            match r {
                Ok(id) => break (id, control.cancelled()),
                Err(YouTubeError::Unauthorized) if !refreshed => {
                    refreshed = true;
                    if let Err(e) =
                        accounts::refresh(self.data, &self.client, &self.endpoints, &mut account)
                    {
                        return self.token_outcome(e);
                    }
                    token = account.token.access_token.clone();
                }
                Err(YouTubeError::Cancelled) => return control.stopped(),
                Err(YouTubeError::Quota { reason, message }) => {
                    return Outcome::Waiting(
                        reset,
                        format!(
                        "YouTube quota ({reason}): {message}; waits until the quota resets at {}",
                        reelsmith_publish::time::format_rfc3339(reset)
                    ),
                    )
                }
                Err(e @ YouTubeError::Unavailable { .. }) => {
                    return Outcome::Waiting(now_ms() + 300_000, e.to_string())
                }
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        };
        run.youtube.video_id = Some(video_id.clone());
        let total = run.youtube.total;
        // Each step after the upload is saved done before the next, so a restart neither
        // repeats nor re-counts it; the token is refreshed before each (the upload may have
        // taken longer than the token lives).
        let save = |run: &RunState| match self.save_state(row.id, run, total, total) {
            Ok(Beat::Lost) => Err(Outcome::Lost),
            _ => Ok(()),
        };
        // The insert is marked counted before it is counted: a kill in between undercounts
        // one upload rather than counting it twice.
        let count_insert = !run.insert_counted;
        run.insert_counted = true;
        if save(&run).is_err() {
            return Outcome::Lost;
        }
        if count_insert {
            spend("insert", 1);
        }
        if !self.mark_processing(row, &video_id) {
            return Outcome::Lost;
        }
        let on_youtube = |what: &str| {
            Some(format!(
                "{what}: the video is on YouTube as {video_id} ({}); delete it in YouTube \
                 Studio if it should not stay",
                if opts.privacy.is_empty() {
                    "private"
                } else {
                    &opts.privacy
                }
            ))
        };
        if control_cancelled {
            return Outcome::Cancelled(on_youtube("cancelled as the upload ended"));
        }
        let dir = Path::new(&row.source).join(&row.lang);
        let fresh = |account: &mut accounts::Account| {
            accounts::fresh_token(self.data, &self.client, &self.endpoints, account)
        };
        let thumb = dir.join("thumbnail.png");
        if !run.thumbnail && row.kind == "video" && thumb.is_file() {
            match fresh(&mut account)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    youtube::set_thumbnail(&self.client, &self.endpoints, &t, &video_id, &thumb)
                        .map_err(|e| e.to_string())
                }) {
                Ok(()) => spend("units", youtube::THUMBNAILS_SET),
                Err(e) => run.notes.push(format!("thumbnail not set: {e}")),
            }
            run.thumbnail = true;
            if save(&run).is_err() {
                return Outcome::Lost;
            }
        }
        let srt = dir.join("captions.srt");
        if !run.captions && srt.is_file() {
            if account
                .token
                .has_scope(reelsmith_publish::oauth::YOUTUBE_FORCE_SSL)
            {
                match fresh(&mut account)
                    .map_err(|e| e.to_string())
                    .and_then(|t| {
                        youtube::insert_caption(
                            &self.client,
                            &self.endpoints,
                            &t,
                            &video_id,
                            &row.lang,
                            &row.lang,
                            &srt,
                        )
                        .map_err(|e| e.to_string())
                    }) {
                    Ok(_) => spend("units", youtube::CAPTIONS_INSERT),
                    Err(e) => run.notes.push(format!("captions not added: {e}")),
                }
            } else {
                run.notes.push(
                    "captions not added: the account was authorised without the \
                     youtube.force-ssl scope (`reelsmith accounts add youtube --captions`)"
                        .into(),
                );
            }
            run.captions = true;
            if save(&run).is_err() {
                return Outcome::Lost;
            }
        }
        if let (false, Some(pl)) = (run.playlist, &opts.playlist) {
            match fresh(&mut account)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    youtube::add_to_playlist(&self.client, &self.endpoints, &t, pl, &video_id)
                        .map_err(|e| e.to_string())
                }) {
                Ok(_) => spend("units", youtube::PLAYLIST_ITEMS_INSERT),
                Err(e) => run.notes.push(format!("not added to playlist {pl}: {e}")),
            }
            run.playlist = true;
            if save(&run).is_err() {
                return Outcome::Lost;
            }
        }
        if !run.notes.is_empty()
            && !self.set(
                row.id,
                PublicationStatus::Processing,
                None,
                Some(&run.notes.join("; ")),
                None,
            )
        {
            return Outcome::Lost;
        }
        // "Uploaded" is not "processed": follow the processing to its end.
        for _ in 0..self.follow_polls() {
            let token = match fresh(&mut account) {
                Ok(t) => t,
                Err(e) => return self.token_outcome(e),
            };
            match youtube::processing(&self.client, &self.endpoints, &token, &video_id) {
                Ok(p) => match p.status {
                    youtube::ProcessingStatus::Succeeded => return Outcome::Live(video_id),
                    youtube::ProcessingStatus::Failed | youtube::ProcessingStatus::Terminated => {
                        return Outcome::Failed(format!(
                            "YouTube could not process video {video_id}: {}",
                            p.failure_reason.unwrap_or_else(|| p.upload_status.clone())
                        ))
                    }
                    youtube::ProcessingStatus::Processing => {}
                },
                Err(YouTubeError::Unavailable { .. }) => {}
                Err(YouTubeError::Quota { reason, message }) => {
                    // The video is up; only following it waits for the quota.
                    let reset = youtube::next_quota_reset(now_ms());
                    return Outcome::Waiting(
                        reset,
                        format!(
                            "YouTube quota ({reason}) while following video {video_id}'s \
                             processing: {message}; looked at again after the reset at {}",
                            reelsmith_publish::time::format_rfc3339(reset)
                        ),
                    );
                }
                Err(e) => return Outcome::Failed(e.to_string()),
            }
            match self.beat(row.id) {
                Beat::Go => {}
                Beat::Cancel => {
                    return Outcome::Cancelled(on_youtube("processing no longer followed"))
                }
                Beat::Lost => return Outcome::Lost,
            }
            std::thread::sleep(self.poll);
        }
        self.follow_later(&format!("YouTube video {video_id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_days_are_pacific_dates() {
        // 2026-12-07 07:59 UTC is 23:59 on the 6th in Los Angeles (PST, UTC−8).
        let t = reelsmith_publish::time::parse_rfc3339_ms("2026-12-07T07:59:00Z").unwrap();
        assert_eq!(quota_day(t), "2026-12-06");
        assert_eq!(quota_day(t + 120_000), "2026-12-07");
        // Summer: PDT, UTC−7.
        let s = reelsmith_publish::time::parse_rfc3339_ms("2026-07-01T06:30:00Z").unwrap();
        assert_eq!(quota_day(s), "2026-06-30");
        assert_eq!(quota_day(s + 3_600_000), "2026-07-01");
    }
}
