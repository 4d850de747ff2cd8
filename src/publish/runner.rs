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
use crate::store::{PublicationRow, PublicationStatus, Store};

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
}

/// What the runner keeps per publication beyond the platform's upload state: the steps after
/// the upload that must not run twice after a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct RunState {
    youtube: UploadState,
    thumbnail: bool,
    captions: bool,
    playlist: bool,
}

/// How one run of a publication ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Live(String),
    /// Held until this time, with the reason.
    Waiting(i64, String),
    Failed(String),
    Cancelled,
}

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

fn read_json(p: &Path) -> Result<serde_json::Value, String> {
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

impl Runner<'_> {
    fn set(
        &self,
        id: i64,
        status: PublicationStatus,
        remote: Option<&str>,
        error: Option<&str>,
        until: Option<i64>,
    ) {
        if let Err(e) = self
            .store
            .set_publication_status(id, status, remote, error, until)
        {
            tracing::error!("publication {id}: {e}");
        }
    }

    /// Runs one claimed publication to its end (or hold) and records the outcome.
    pub fn run(&self, row: &PublicationRow) -> Outcome {
        let outcome = match Platform::parse(&row.platform) {
            Some(Platform::YouTube) => self.youtube(row),
            Some(Platform::TikTok) => self.tiktok(row),
            Some(Platform::Instagram) => self.instagram(row),
            None => Outcome::Failed(format!("unknown platform {}", row.platform)),
        };
        match &outcome {
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
            Outcome::Cancelled => self.set(row.id, PublicationStatus::Cancelled, None, None, None),
        }
        outcome
    }

    /// Claims and runs publications until none is runnable; `only` limits them to some ids.
    pub fn run_all(
        &self,
        only: Option<&[i64]>,
        on_done: &mut dyn FnMut(&PublicationRow, &Outcome),
    ) {
        // Uploads whose process died (killed, rebooted) resume here from their saved state.
        let me = self.pid;
        if let Err(e) = self
            .store
            .release_dead_publications(|p| p == me || crate::hub::queue::process_alive(p))
        {
            tracing::error!("publications: {e}");
        }
        loop {
            let next = match only {
                Some(ids) => ids.iter().find_map(|&id| {
                    self.store
                        .claim_publication(id, self.pid, 120_000)
                        .ok()
                        .flatten()
                }),
                None => self
                    .store
                    .claim_next_publication(self.pid, 120_000)
                    .ok()
                    .flatten(),
            };
            let Some(row) = next else { break };
            let outcome = self.run(&row);
            on_done(&row, &outcome);
        }
    }

    /// Records that the upload is done and the platform is processing it (`remote`).
    pub(super) fn mark_processing(&self, row: &PublicationRow, remote: &str) {
        self.set(
            row.id,
            PublicationStatus::Processing,
            Some(remote),
            None,
            None,
        );
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
        let token =
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
        let mut token = token;
        let mut refreshed = false;
        let video_id = loop {
            let store = self.store;
            let cancel = std::cell::Cell::new(false);
            let mut persist = |s: &UploadState| -> Result<(), String> {
                let st = RunState {
                    youtube: s.clone(),
                    ..run.clone()
                };
                let json = serde_json::to_string(&st).map_err(|e| e.to_string())?;
                let c = store
                    .publication_progress(row.id, &json, s.offset, s.total)
                    .map_err(|e| e.to_string())?;
                cancel.set(c);
                Ok(())
            };
            let mut progress = |_: u64, _: u64| !cancel.get();
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
            match r {
                Ok(id) => break id,
                Err(YouTubeError::Unauthorized) if !refreshed => {
                    refreshed = true;
                    if let Err(e) =
                        accounts::refresh(self.data, &self.client, &self.endpoints, &mut account)
                    {
                        return self.token_outcome(e);
                    }
                    token = account.token.access_token.clone();
                }
                Err(YouTubeError::Cancelled) => return Outcome::Cancelled,
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
        let save = |run: &RunState| {
            if let Ok(json) = serde_json::to_string(run) {
                let _ = self.store.publication_progress(
                    row.id,
                    &json,
                    run.youtube.total,
                    run.youtube.total,
                );
            }
        };
        if run.youtube.video_id.as_deref() != Some(&video_id) {
            run.youtube.video_id = Some(video_id.clone());
        }
        if !run.thumbnail && !run.captions && !run.playlist {
            let _ = self
                .store
                .quota_spend("youtube", &row.account, &day, "insert", 1);
        }
        self.set(
            row.id,
            PublicationStatus::Processing,
            Some(&video_id),
            None,
            None,
        );
        let dir = Path::new(&row.source).join(&row.lang);
        let mut notes = Vec::new();
        let thumb = dir.join("thumbnail.png");
        if !run.thumbnail && row.kind == "video" && thumb.is_file() {
            match youtube::set_thumbnail(&self.client, &self.endpoints, &token, &video_id, &thumb) {
                Ok(()) => {
                    let _ = self.store.quota_spend(
                        "youtube",
                        &row.account,
                        &day,
                        "units",
                        u64::from(youtube::THUMBNAILS_SET),
                    );
                }
                Err(e) => notes.push(format!("thumbnail not set: {e}")),
            }
            run.thumbnail = true;
            save(&run);
        }
        let srt = dir.join("captions.srt");
        if !run.captions && srt.is_file() {
            if account
                .token
                .has_scope(reelsmith_publish::oauth::YOUTUBE_FORCE_SSL)
            {
                match youtube::insert_caption(
                    &self.client,
                    &self.endpoints,
                    &token,
                    &video_id,
                    &row.lang,
                    &row.lang,
                    &srt,
                ) {
                    Ok(_) => {
                        let _ = self.store.quota_spend(
                            "youtube",
                            &row.account,
                            &day,
                            "units",
                            u64::from(youtube::CAPTIONS_INSERT),
                        );
                    }
                    Err(e) => notes.push(format!("captions not added: {e}")),
                }
            } else {
                notes.push(
                    "captions not added: the account was authorised without the \
                     youtube.force-ssl scope (`reelsmith accounts add youtube --captions`)"
                        .into(),
                );
            }
            run.captions = true;
            save(&run);
        }
        if let (false, Some(pl)) = (run.playlist, &opts.playlist) {
            if let Err(e) =
                youtube::add_to_playlist(&self.client, &self.endpoints, &token, pl, &video_id)
            {
                notes.push(format!("not added to playlist {pl}: {e}"));
            } else {
                let _ = self.store.quota_spend(
                    "youtube",
                    &row.account,
                    &day,
                    "units",
                    u64::from(youtube::PLAYLIST_ITEMS_INSERT),
                );
            }
            run.playlist = true;
            save(&run);
        }
        if !notes.is_empty() {
            self.set(
                row.id,
                PublicationStatus::Processing,
                None,
                Some(&notes.join("; ")),
                None,
            );
        }
        // "Uploaded" is not "processed": follow the processing to its end.
        loop {
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
                Err(e) => return Outcome::Failed(e.to_string()),
            }
            if self
                .store
                .publication(row.id)
                .ok()
                .flatten()
                .is_some_and(|r| r.cancel_requested)
            {
                // The video is on YouTube; stopping only stops following it.
                return Outcome::Waiting(now_ms(), "processing not followed (cancelled)".into());
            }
            std::thread::sleep(self.poll);
            let _ = self.store.publication_progress(
                row.id,
                &serde_json::to_string(&run).unwrap_or_default(),
                run.youtube.total,
                run.youtube.total,
            );
        }
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
