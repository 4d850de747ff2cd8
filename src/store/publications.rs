//! Publications (uploads to the platforms) as durable jobs, the per-account quota ledger and
//! the consent records of real people shown in videos.
//!
//! A publication is one file to one platform and account (`video` or `short`, one language).
//! Its runner keeps the platform's upload state (session URI, acknowledged offset, container or
//! publish id) in `upload_state` after every acknowledged chunk, so a killed process, a reboot
//! or a dropped network resumes from the last byte the platform has; `not_before_ms` holds a
//! publication back (a quota that resets at a known time, a back-off). Statuses:
//! `queued` → `uploading` → `processing` → `live`, or `waiting` (for `not_before_ms`),
//! `failed` (with the platform's message and what to do), `cancelled`. One active publication
//! per (platform, account, kind, language, file): publishing the same file twice is refused
//! while the first is not failed or cancelled.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{now_ms, Store, StoreError};

/// Row id of a publication.
pub type PublicationId = i64;

/// Where a publication stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicationStatus {
    Queued,
    Uploading,
    Processing,
    Waiting,
    Live,
    Failed,
    Cancelled,
}

impl PublicationStatus {
    pub const ALL: [PublicationStatus; 7] = [
        PublicationStatus::Queued,
        PublicationStatus::Uploading,
        PublicationStatus::Processing,
        PublicationStatus::Waiting,
        PublicationStatus::Live,
        PublicationStatus::Failed,
        PublicationStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PublicationStatus::Queued => "queued",
            PublicationStatus::Uploading => "uploading",
            PublicationStatus::Processing => "processing",
            PublicationStatus::Waiting => "waiting",
            PublicationStatus::Live => "live",
            PublicationStatus::Failed => "failed",
            PublicationStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Still to be run (or running).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            PublicationStatus::Queued
                | PublicationStatus::Uploading
                | PublicationStatus::Processing
                | PublicationStatus::Waiting
        )
    }
}

/// What a running publication's heartbeat learns from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// Still ours: go on.
    Go,
    /// Ours, and a cancel was asked.
    Cancel,
    /// No longer ours (another process took it over after this one stopped beating, or it
    /// was cancelled while its owner was gone): stop without writing anything more.
    Lost,
}

/// A publication to queue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPublication {
    pub platform: String,
    pub account: String,
    /// `video` or `short`.
    pub kind: String,
    pub lang: String,
    /// The project's output folder the file comes from.
    pub source: String,
    /// The render job, when known.
    pub job_id: Option<i64>,
    pub file: String,
    /// JSON: privacy, schedule, disclosure, metadata snapshot.
    pub options: String,
}

/// One publication, as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PublicationRow {
    pub id: PublicationId,
    pub platform: String,
    pub account: String,
    pub kind: String,
    pub lang: String,
    pub source: String,
    pub job_id: Option<i64>,
    pub file: String,
    pub options: String,
    pub status: PublicationStatus,
    /// The platform's upload state (JSON), saved after every acknowledged chunk.
    pub upload_state: Option<String>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    /// The platform's id of the published item (video id, publish id, media id).
    pub remote_id: Option<String>,
    pub error: Option<String>,
    /// Not to be run before this time (a quota reset, a back-off).
    pub not_before_ms: Option<i64>,
    pub cancel_requested: bool,
    pub owner_pid: Option<u32>,
    pub attempts: u32,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub beat_ms: Option<i64>,
    pub finished_ms: Option<i64>,
}

/// A consent record: who, for what, since when, and the evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsentRow {
    pub id: i64,
    /// The person as the script's characters name them.
    pub person: String,
    /// What they agreed to (e.g. "youtube, tiktok: likeness and voice").
    pub scope: String,
    /// The date they agreed (YYYY-MM-DD).
    pub granted: String,
    /// The evidence file (signed release, recording) as given, and its SHA-256.
    pub evidence: String,
    pub evidence_sha256: String,
    pub created_ms: i64,
}

const COLUMNS: &str = "id, platform, account, kind, lang, source, job_id, file, options, status,
    upload_state, bytes_done, bytes_total, remote_id, error, not_before_ms, cancel_requested,
    owner_pid, attempts, created_ms, started_ms, beat_ms, finished_ms";

fn row(r: &Row<'_>) -> rusqlite::Result<PublicationRow> {
    let status: String = r.get(9)?;
    Ok(PublicationRow {
        id: r.get(0)?,
        platform: r.get(1)?,
        account: r.get(2)?,
        kind: r.get(3)?,
        lang: r.get(4)?,
        source: r.get(5)?,
        job_id: r.get(6)?,
        file: r.get(7)?,
        options: r.get(8)?,
        status: PublicationStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                9,
                rusqlite::types::Type::Text,
                format!("unknown publication status {status:?}").into(),
            )
        })?,
        upload_state: r.get(10)?,
        bytes_done: r.get::<_, i64>(11)?.max(0) as u64,
        bytes_total: r.get::<_, Option<i64>>(12)?.map(|b| b.max(0) as u64),
        remote_id: r.get(13)?,
        error: r.get(14)?,
        not_before_ms: r.get(15)?,
        cancel_requested: r.get::<_, i64>(16)? != 0,
        owner_pid: r.get::<_, Option<i64>>(17)?.map(|p| p as u32),
        attempts: r.get::<_, i64>(18)?.max(0) as u32,
        created_ms: r.get(19)?,
        started_ms: r.get(20)?,
        beat_ms: r.get(21)?,
        finished_ms: r.get(22)?,
    })
}

fn consent(r: &Row<'_>) -> rusqlite::Result<ConsentRow> {
    Ok(ConsentRow {
        id: r.get(0)?,
        person: r.get(1)?,
        scope: r.get(2)?,
        granted: r.get(3)?,
        evidence: r.get(4)?,
        evidence_sha256: r.get(5)?,
        created_ms: r.get(6)?,
    })
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Queues publications, all or none (one transaction). A file already queued, running or
    /// live for the same platform, account, kind and language is refused, naming it.
    pub fn enqueue_publications(
        &self,
        new: &[NewPublication],
    ) -> Result<Vec<PublicationRow>, StoreError> {
        let tx = self.write_tx()?;
        let mut ids = Vec::new();
        for p in new {
            let existing: Option<(i64, String)> = tx
                .prepare_cached(
                    "SELECT id, status FROM publications WHERE platform = ?1 AND account = ?2
                     AND kind = ?3 AND lang = ?4 AND file = ?5
                     AND status NOT IN ('failed','cancelled')",
                )
                .and_then(|mut st| {
                    st.query_row(
                        params![p.platform, p.account, p.kind, p.lang, p.file],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                })
                .map_err(|e| self.err(e))?;
            if let Some((id, status)) = existing {
                return Err(self.invalid(
                    "publication",
                    format!(
                        "{} is already published to {} ({}) as publication {id} ({status}); \
                         `reelsmith publish --list` shows it",
                        p.file, p.platform, p.account
                    ),
                ));
            }
            tx.execute(
                "INSERT INTO publications (platform, account, kind, lang, source, job_id, file,
                     options, status, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9)",
                params![
                    p.platform,
                    p.account,
                    p.kind,
                    p.lang,
                    p.source,
                    p.job_id,
                    p.file,
                    p.options,
                    now_ms()
                ],
            )
            .map_err(|e| self.err(e))?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit().map_err(|e| self.err(e))?;
        ids.into_iter()
            .map(|id| {
                self.publication(id)?
                    .ok_or_else(|| self.not_found("publication", id))
            })
            .collect()
    }

    pub fn publication(&self, id: PublicationId) -> Result<Option<PublicationRow>, StoreError> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM publications WHERE id = ?1"))
            .and_then(|mut st| st.query_row(params![id], row).optional())
            .map_err(|e| self.err(e))
    }

    /// Every publication, newest first.
    pub fn publications(&self) -> Result<Vec<PublicationRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM publications ORDER BY id DESC"
            ))
            .and_then(|mut st| st.query_map([], row)?.collect())
            .map_err(|e| self.err(e))
    }

    /// Every active publication and the latest `keep` finished ones, newest first (what the
    /// studio shows).
    pub fn recent_publications(&self, keep: usize) -> Result<Vec<PublicationRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM publications
                 WHERE status IN ('queued','uploading','processing','waiting')
                    OR id IN (SELECT id FROM publications
                              WHERE status IN ('live','failed','cancelled')
                              ORDER BY id DESC LIMIT ?1)
                 ORDER BY id DESC"
            ))
            .and_then(|mut st| {
                st.query_map(params![i64::try_from(keep).unwrap_or(i64::MAX)], row)?
                    .collect()
            })
            .map_err(|e| self.err(e))
    }

    /// Claims publication `id` for process `pid` when it is runnable: queued, waiting past its
    /// time, or uploading/processing with no owner ([`Store::release_dead_publications`] frees
    /// those of dead processes) or an owner silent for `stale_ms` (a runner beats at least
    /// every poll, so only a hung process or a reused pid after a reboot goes that long). The
    /// error of an earlier attempt is cleared.
    pub fn claim_publication(
        &self,
        id: PublicationId,
        pid: u32,
        stale_ms: i64,
    ) -> Result<Option<PublicationRow>, StoreError> {
        let tx = self.write_tx()?;
        let now = now_ms();
        let n = tx
            .execute(
                "UPDATE publications SET status = CASE WHEN status = 'processing'
                         THEN 'processing' ELSE 'uploading' END,
                     owner_pid = ?2, started_ms = COALESCE(started_ms, ?3), beat_ms = ?3,
                     attempts = attempts + 1, error = NULL
                 WHERE id = ?1 AND cancel_requested = 0 AND (
                     status = 'queued'
                     OR (status = 'waiting' AND COALESCE(not_before_ms, 0) <= ?3)
                     OR (status IN ('uploading','processing')
                         AND (owner_pid IS NULL OR owner_pid = ?2
                              OR COALESCE(beat_ms, 0) < ?3 - ?4)))",
                params![id, i64::from(pid), now, stale_ms],
            )
            .map_err(|e| self.err(e))?;
        let r = if n == 1 {
            tx.prepare_cached(&format!("SELECT {COLUMNS} FROM publications WHERE id = ?1"))
                .and_then(|mut st| st.query_row(params![id], row).optional())
                .map_err(|e| self.err(e))?
        } else {
            None
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(r)
    }

    /// The next runnable publication for `pid` (oldest first), claimed.
    pub fn claim_next_publication(
        &self,
        pid: u32,
        stale_ms: i64,
    ) -> Result<Option<PublicationRow>, StoreError> {
        let now = now_ms();
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT id FROM publications WHERE cancel_requested = 0 AND (
                     status = 'queued'
                     OR (status = 'waiting' AND COALESCE(not_before_ms, 0) <= ?1)
                     OR (status IN ('uploading','processing')
                         AND (owner_pid IS NULL OR COALESCE(beat_ms, 0) < ?1 - ?2)))
                 ORDER BY id",
            )
            .and_then(|mut st| {
                st.query_map(params![now, stale_ms], |r| r.get(0))?
                    .collect()
            })
            .map_err(|e| self.err(e))?;
        for id in ids {
            if let Some(r) = self.claim_publication(id, pid, stale_ms)? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Saves a running publication's upload state and progress (and a heartbeat) when `pid`
    /// still owns it.
    pub fn publication_progress(
        &self,
        id: PublicationId,
        pid: u32,
        upload_state: &str,
        done: u64,
        total: u64,
    ) -> Result<Beat, StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE publications SET upload_state = ?2, bytes_done = ?3, bytes_total = ?4,
                     beat_ms = ?5
                 WHERE id = ?1 AND owner_pid = ?6 RETURNING cancel_requested",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![
                        id,
                        upload_state,
                        i64_of(done),
                        i64_of(total),
                        now_ms(),
                        i64::from(pid)
                    ],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
            })
            .map(Self::beat_of)
            .map_err(|e| self.err(e))
    }

    /// A heartbeat of `pid`'s running publication (while it waits on the platform).
    pub fn publication_beat(&self, id: PublicationId, pid: u32) -> Result<Beat, StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE publications SET beat_ms = ?2 WHERE id = ?1 AND owner_pid = ?3
                 RETURNING cancel_requested",
            )
            .and_then(|mut st| {
                st.query_row(params![id, now_ms(), i64::from(pid)], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
            })
            .map(Self::beat_of)
            .map_err(|e| self.err(e))
    }

    fn beat_of(cancel: Option<i64>) -> Beat {
        match cancel {
            None => Beat::Lost,
            Some(0) => Beat::Go,
            Some(_) => Beat::Cancel,
        }
    }

    /// Moves a publication `owner` runs to `status`, with its remote id, error and hold time;
    /// false (nothing written) when `owner` no longer owns it. A publication going live keeps
    /// the notes its run left in `error` when `error` is `None` (a thumbnail or caption track
    /// that could not be set).
    pub fn set_publication_status(
        &self,
        id: PublicationId,
        owner: u32,
        status: PublicationStatus,
        remote_id: Option<&str>,
        error: Option<&str>,
        not_before_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let finished = matches!(
            status,
            PublicationStatus::Live | PublicationStatus::Failed | PublicationStatus::Cancelled
        )
        .then(now_ms);
        let owner_kept = matches!(
            status,
            PublicationStatus::Uploading | PublicationStatus::Processing
        );
        let n = self
            .conn
            .prepare_cached(
                "UPDATE publications SET status = ?2, remote_id = COALESCE(?3, remote_id),
                     error = CASE WHEN ?2 = 'live' THEN COALESCE(?4, error) ELSE ?4 END,
                     not_before_ms = ?5, finished_ms = ?6, beat_ms = ?7,
                     owner_pid = CASE WHEN ?8 THEN owner_pid ELSE NULL END
                 WHERE id = ?1 AND owner_pid = ?9",
            )
            .and_then(|mut st| {
                st.execute(params![
                    id,
                    status.as_str(),
                    remote_id,
                    error,
                    not_before_ms,
                    finished,
                    now_ms(),
                    owner_kept,
                    i64::from(owner)
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Asks a publication to stop; false when it had already finished. A queued or waiting
    /// one, or a running one whose owner is gone (no owner: call
    /// [`Store::release_dead_publications`] first), is cancelled at once; a running one is
    /// asked, and its runner stops at its next chunk or poll.
    pub fn cancel_publication(&self, id: PublicationId) -> Result<bool, StoreError> {
        let tx = self.write_tx()?;
        let now = now_ms();
        let n = tx
            .execute(
                "UPDATE publications SET status = 'cancelled', finished_ms = ?2,
                     cancel_requested = 1, owner_pid = NULL
                 WHERE id = ?1 AND (status IN ('queued','waiting')
                     OR (status IN ('uploading','processing') AND owner_pid IS NULL))",
                params![id, now],
            )
            .map_err(|e| self.err(e))?;
        let m = tx
            .execute(
                "UPDATE publications SET cancel_requested = 1
                 WHERE id = ?1 AND status IN ('uploading','processing')",
                params![id],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n + m > 0)
    }

    /// Frees the running publications whose owner process is gone (`alive` says which pids
    /// live), so the next runner resumes them from their saved upload state; returns their ids.
    /// One whose cancel was asked (and never acted on: its runner died first) is cancelled.
    pub fn release_dead_publications(
        &self,
        alive: impl Fn(u32) -> bool,
    ) -> Result<Vec<PublicationId>, StoreError> {
        let owned: Vec<(i64, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT id, owner_pid FROM publications
                 WHERE status IN ('uploading','processing')
                   AND (owner_pid IS NOT NULL OR cancel_requested = 1)",
            )
            .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for (id, pid) in owned {
            if pid.is_some_and(|p| u32::try_from(p).is_ok_and(&alive)) {
                continue;
            }
            self.conn
                .prepare_cached(
                    "UPDATE publications SET owner_pid = NULL,
                         status = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE status END,
                         finished_ms = CASE WHEN cancel_requested = 1 THEN ?3 ELSE finished_ms END
                     WHERE id = ?1 AND owner_pid IS ?2",
                )
                .and_then(|mut st| st.execute(params![id, pid, now_ms()]))
                .map_err(|e| self.err(e))?;
            out.push(id);
        }
        Ok(out)
    }

    /// Puts a failed or cancelled publication back in the queue (its upload state kept, so
    /// an upload resumes where the platform has it); false when it was not failed/cancelled.
    pub fn retry_publication(&self, id: PublicationId) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE publications SET status = 'queued', error = NULL, finished_ms = NULL,
                     cancel_requested = 0, not_before_ms = NULL, owner_pid = NULL
                 WHERE id = ?1 AND status IN ('failed','cancelled')",
            )
            .and_then(|mut st| st.execute(params![id]))
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Units (or inserts) `account` has used on `platform` in quota day `day` from `bucket`.
    pub fn quota_used(
        &self,
        platform: &str,
        account: &str,
        day: &str,
        bucket: &str,
    ) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT used FROM publish_quota
                 WHERE platform = ?1 AND account = ?2 AND day = ?3 AND bucket = ?4",
            )
            .and_then(|mut st| {
                st.query_row(params![platform, account, day, bucket], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
            })
            .map(|u| u.unwrap_or(0).max(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Adds `units` to the ledger; returns the day's new total.
    pub fn quota_spend(
        &self,
        platform: &str,
        account: &str,
        day: &str,
        bucket: &str,
        units: u64,
    ) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO publish_quota (platform, account, day, bucket, used)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (platform, account, day, bucket) DO UPDATE SET used = used + ?5
                 RETURNING used",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![platform, account, day, bucket, i64_of(units)],
                    |r| r.get::<_, i64>(0),
                )
            })
            .map(|u| u.max(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Records a consent.
    pub fn add_consent(
        &self,
        person: &str,
        scope: &str,
        granted: &str,
        evidence: &str,
        evidence_sha256: &str,
    ) -> Result<ConsentRow, StoreError> {
        if person.trim().is_empty() {
            return Err(self.invalid("consent", "the person's name is empty"));
        }
        self.conn
            .prepare_cached(
                "INSERT INTO consents (person, scope, granted, evidence, evidence_sha256,
                     created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 RETURNING id, person, scope, granted, evidence, evidence_sha256, created_ms",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![
                        person.trim(),
                        scope,
                        granted,
                        evidence,
                        evidence_sha256,
                        now_ms()
                    ],
                    consent,
                )
            })
            .map_err(|e| self.err(e))
    }

    /// Every consent, by person.
    pub fn consents(&self) -> Result<Vec<ConsentRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT id, person, scope, granted, evidence, evidence_sha256, created_ms
                 FROM consents ORDER BY person COLLATE NOCASE, id",
            )
            .and_then(|mut st| st.query_map([], consent)?.collect())
            .map_err(|e| self.err(e))
    }

    /// The consents of `person` (case aside).
    pub fn consents_of(&self, person: &str) -> Result<Vec<ConsentRow>, StoreError> {
        Ok(self
            .consents()?
            .into_iter()
            .filter(|c| c.person.eq_ignore_ascii_case(person.trim()))
            .collect())
    }

    /// Removes a consent record; false when there was none.
    pub fn remove_consent(&self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM consents WHERE id = ?1")
            .and_then(|mut st| st.execute(params![id]))
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(file: &str) -> NewPublication {
        NewPublication {
            platform: "youtube".into(),
            account: "main".into(),
            kind: "video".into(),
            lang: "en".into(),
            source: "/out/p".into(),
            job_id: None,
            file: file.into(),
            options: "{}".into(),
        }
    }

    #[test]
    fn publications_queue_claim_progress_and_finish() {
        let s = Store::open_in_memory().unwrap();
        let rows = s
            .enqueue_publications(&[new("/out/p/en/final.mp4")])
            .unwrap();
        let id = rows[0].id;
        assert_eq!(rows[0].status, PublicationStatus::Queued);
        // The same file again is refused while the first is active, and nothing is queued.
        let e = s
            .enqueue_publications(&[new("/out/p/de/final.mp4"), new("/out/p/en/final.mp4")])
            .unwrap_err();
        assert!(e.to_string().contains("already published"), "{e}");
        assert_eq!(s.publications().unwrap().len(), 1);
        let c = s.claim_next_publication(42, 60_000).unwrap().unwrap();
        assert_eq!(
            (c.id, c.status, c.owner_pid),
            (id, PublicationStatus::Uploading, Some(42))
        );
        // Another live process does not take it; a silent (stale) owner's one is taken over,
        // and the first owner learns it lost it: its writes are refused.
        assert!(s.claim_next_publication(43, 60_000).unwrap().is_none());
        assert!(s.claim_next_publication(43, -1).unwrap().is_some());
        assert_eq!(
            s.publication_progress(id, 42, "{\"offset\":9}", 9, 10)
                .unwrap(),
            Beat::Lost
        );
        assert_eq!(s.publication_beat(id, 42).unwrap(), Beat::Lost);
        assert!(!s
            .set_publication_status(id, 42, PublicationStatus::Failed, None, Some("x"), None)
            .unwrap());
        assert_eq!(
            s.publication_progress(id, 43, "{\"offset\":5}", 5, 10)
                .unwrap(),
            Beat::Go
        );
        let r = s.publication(id).unwrap().unwrap();
        assert_eq!((r.bytes_done, r.bytes_total), (5, Some(10)));
        assert_eq!(r.upload_state.as_deref(), Some("{\"offset\":5}"));
        assert_eq!(r.status, PublicationStatus::Uploading);
        // Notes left while processing survive going live.
        assert!(s
            .set_publication_status(
                id,
                43,
                PublicationStatus::Processing,
                Some("vid1"),
                Some("thumbnail not set"),
                None
            )
            .unwrap());
        // Waiting for a quota reset: not claimable before its time.
        let later = now_ms() + 3_600_000;
        s.set_publication_status(
            id,
            43,
            PublicationStatus::Waiting,
            None,
            Some("quota"),
            Some(later),
        )
        .unwrap();
        assert!(s.claim_next_publication(44, 60_000).unwrap().is_none());
        s.conn
            .execute(
                "UPDATE publications SET not_before_ms = 0 WHERE id = ?1",
                params![id],
            )
            .unwrap();
        let c = s.claim_next_publication(44, 60_000).unwrap().unwrap();
        assert_eq!((c.id, c.error.as_deref()), (id, None));
        s.set_publication_status(
            id,
            44,
            PublicationStatus::Processing,
            None,
            Some("note"),
            None,
        )
        .unwrap();
        s.set_publication_status(id, 44, PublicationStatus::Live, Some("vid1"), None, None)
            .unwrap();
        let r = s.publication(id).unwrap().unwrap();
        assert_eq!(
            (r.status, r.remote_id.as_deref(), r.error.as_deref()),
            (PublicationStatus::Live, Some("vid1"), Some("note"))
        );
        assert!(r.finished_ms.is_some());
        // Failed ones can be retried, keeping their upload state.
        let id2 = s
            .enqueue_publications(&[new("/out/p/fr/final.mp4")])
            .unwrap()[0]
            .id;
        s.claim_publication(id2, 45, 60_000).unwrap().unwrap();
        s.set_publication_status(id2, 45, PublicationStatus::Failed, None, Some("x"), None)
            .unwrap();
        assert!(s.retry_publication(id2).unwrap());
        assert!(s.cancel_publication(id2).unwrap());
        assert_eq!(
            s.publication(id2).unwrap().unwrap().status,
            PublicationStatus::Cancelled
        );
        // The studio's list: active ones always, finished ones up to `keep`.
        let id3 = s
            .enqueue_publications(&[new("/out/p/it/final.mp4")])
            .unwrap()[0]
            .id;
        let ids = |keep| {
            s.recent_publications(keep)
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(0), vec![id3]);
        assert_eq!(ids(1), vec![id3, id2]);
        assert_eq!(ids(9), vec![id3, id2, id]);
    }

    #[test]
    fn a_dead_owners_upload_is_cancelled_at_once_a_live_ones_is_asked() {
        let s = Store::open_in_memory().unwrap();
        let a = s.enqueue_publications(&[new("/a.mp4")]).unwrap()[0].id;
        let b = s.enqueue_publications(&[new("/b.mp4")]).unwrap()[0].id;
        s.claim_publication(a, 7, 60_000).unwrap().unwrap();
        s.claim_publication(b, 8, 60_000).unwrap().unwrap();
        // 7 is gone, 8 lives.
        assert_eq!(s.release_dead_publications(|p| p == 8).unwrap(), vec![a]);
        assert!(s.cancel_publication(a).unwrap());
        assert!(s.cancel_publication(b).unwrap());
        let (ra, rb) = (
            s.publication(a).unwrap().unwrap(),
            s.publication(b).unwrap().unwrap(),
        );
        assert_eq!(ra.status, PublicationStatus::Cancelled);
        assert_eq!(
            (rb.status, rb.cancel_requested),
            (PublicationStatus::Uploading, true)
        );
        assert_eq!(s.publication_beat(b, 8).unwrap(), Beat::Cancel);
        // A cancelled one is not claimed again.
        assert!(s.claim_next_publication(9, -1).unwrap().is_none());
        // Its runner dies before acting on the cancel: the next release finishes it.
        assert_eq!(s.release_dead_publications(|_| false).unwrap(), vec![b]);
        let rb = s.publication(b).unwrap().unwrap();
        assert_eq!(
            (rb.status, rb.owner_pid),
            (PublicationStatus::Cancelled, None)
        );
        assert!(rb.finished_ms.is_some());
    }

    #[test]
    fn the_quota_ledger_adds_up_per_day_and_bucket() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(
            s.quota_used("youtube", "a", "2026-12-07", "units").unwrap(),
            0
        );
        assert_eq!(
            s.quota_spend("youtube", "a", "2026-12-07", "units", 400)
                .unwrap(),
            400
        );
        assert_eq!(
            s.quota_spend("youtube", "a", "2026-12-07", "units", 50)
                .unwrap(),
            450
        );
        assert_eq!(
            s.quota_spend("youtube", "a", "2026-12-08", "units", 1)
                .unwrap(),
            1
        );
        assert_eq!(
            s.quota_spend("youtube", "a", "2026-12-07", "insert", 1)
                .unwrap(),
            1
        );
        assert_eq!(
            s.quota_used("youtube", "a", "2026-12-07", "units").unwrap(),
            450
        );
    }

    #[test]
    fn consents_are_recorded_listed_and_removed() {
        let s = Store::open_in_memory().unwrap();
        let c = s
            .add_consent(
                "Ada Lovelace",
                "youtube: likeness",
                "2026-12-01",
                "/r.pdf",
                "ab",
            )
            .unwrap();
        assert_eq!(s.consents_of("ada lovelace").unwrap().len(), 1);
        assert!(s
            .add_consent(" ", "x", "2026-12-01", "/r.pdf", "ab")
            .is_err());
        assert!(s.remove_consent(c.id).unwrap());
        assert!(!s.remove_consent(c.id).unwrap());
        assert!(s.consents().unwrap().is_empty());
    }
}
