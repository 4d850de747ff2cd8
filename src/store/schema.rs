//! The database schema as an append-only list of migrations.
//!
//! `MIGRATIONS[i]` takes a database from schema version `i` to `i + 1`
//! (`PRAGMA user_version`). Never edit or reorder an entry that has shipped:
//! append a new one instead. Each entry runs inside its own transaction
//! together with the `user_version` bump, so a migration either lands whole
//! or not at all.
//!
//! Notes for whoever builds the durable job queue on top of this:
//! - `jobs` and `events` use `AUTOINCREMENT`, so ids are never reused after a
//!   delete: a job id printed in a log stays unambiguous, and an event cursor
//!   (`id > after`) never skips a row.
//! - `jobs(status, priority DESC, id)` is the "pick the next queued job"
//!   index: `WHERE status = 'queued' ORDER BY priority DESC, id`.
//! - `jobs.kind` carries no CHECK on purpose, so new job kinds need no table
//!   rebuild. Status sets do carry CHECKs; widening one means a table rebuild
//!   migration (create new table, copy, drop, rename) — plan for that.
//! - Leases/heartbeats for workers are deliberately not here yet; add them as
//!   a new migration (`ALTER TABLE jobs ADD COLUMN ...`) when the queue lands.
//! - Migration 2 (the durable queue): a job carries a snapshot of its script
//!   (`script`, `script_name`) so a queued job never depends on the user's
//!   file; `cancel_requested` is the flag a running job's scheduler polls;
//!   `queued_ms` is when it last entered the queue (for priority aging).
//!   Tasks count `attempts` (starts) and `crashes` (times they were running
//!   when the studio died). `settings` holds small global key/value state
//!   (the queue-wide pause flag). `jobs_active` is a partial index over the
//!   jobs that are not finished, so "active jobs" never scans history; a
//!   query uses it only when it repeats the index's `WHERE` term verbatim
//!   (`status IN ('queued','running','paused')`), and the planner prefers
//!   `jobs_status_priority` unless told `INDEXED BY jobs_active`.
//! - Migration 4: model downloads are queued jobs of their own (`pulls`), so a pull asked for
//!   in the studio or with `reelsmith models pull --queue` survives a restart and any process
//!   can show its progress. At most one active (queued/running) pull per model: a partial
//!   unique index. `owner_pid` + `beat_ms` say who runs it and when it last said so; a pull
//!   whose owner died goes back to the queue (its partial files resume).
//! - Migration 5: publications (uploads to YouTube, TikTok, Instagram) are durable jobs like
//!   pulls, with the platform's upload state (session URI, acknowledged offset) saved after
//!   every chunk; `publish_quota` is the per-account, per-quota-day ledger; `consents` holds
//!   the consent records of real people shown in videos.
//! - `jobs.script` is the table's last column on purpose: SQLite reads a row
//!   only up to the last column a query asks for, so listings that skip the
//!   script never touch its overflow pages. Keep it last (or move scripts to
//!   their own table) when adding job columns.

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    script_path TEXT    NOT NULL UNIQUE,
    channel     TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
) STRICT;

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    kind        TEXT    NOT NULL,
    status      TEXT    NOT NULL
                CHECK (status IN ('queued','running','paused','done','failed','cancelled')),
    priority    INTEGER NOT NULL DEFAULT 0,
    params      TEXT    NOT NULL CHECK (json_valid(params)),
    out_dir     TEXT    NOT NULL,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_ms  INTEGER NOT NULL,
    started_ms  INTEGER,
    finished_ms INTEGER
) STRICT;
CREATE INDEX jobs_status_priority ON jobs(status, priority DESC, id);
CREATE INDEX jobs_project ON jobs(project_id);

CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    stage        TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    lang         TEXT,
    status       TEXT    NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending','running','done','cached','failed','cancelled','skipped')),
    engine       TEXT,
    artifact_key TEXT,
    error        TEXT,
    progress     REAL    NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    started_ms   INTEGER,
    finished_ms  INTEGER,
    elapsed_ms   INTEGER,
    UNIQUE (job_id, stage)
) STRICT;
CREATE INDEX tasks_job ON tasks(job_id);

CREATE TABLE artifacts (
    key          TEXT    PRIMARY KEY,
    stage_kind   TEXT    NOT NULL,
    bytes        INTEGER NOT NULL CHECK (bytes >= 0),
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX artifacts_last_used ON artifacts(last_used_ms);

CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
    task_id INTEGER REFERENCES tasks(id) ON DELETE CASCADE,
    at_ms   INTEGER NOT NULL,
    level   TEXT    NOT NULL CHECK (level IN ('info','warn','error')),
    message TEXT    NOT NULL
) STRICT;
CREATE INDEX events_job ON events(job_id, id);
CREATE INDEX events_task ON events(task_id);
"#,
    // 2: durable queue — script snapshots, cancel flag, aging, crash counts.
    r#"
ALTER TABLE jobs ADD COLUMN script_name TEXT;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0
    CHECK (cancel_requested IN (0, 1));
ALTER TABLE jobs ADD COLUMN queued_ms INTEGER;
-- Last on purpose: a query that does not ask for the script never reads its
-- overflow pages.
ALTER TABLE jobs ADD COLUMN script TEXT;
UPDATE jobs SET queued_ms = created_ms WHERE status = 'queued';

ALTER TABLE tasks ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0 CHECK (crashes >= 0);
ALTER TABLE tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE INDEX jobs_active ON jobs(id) WHERE status IN ('queued','running','paused');
"#,
    // 3: the studio's view — where a task runs, and a change counter so a monitor reloads only
    // the jobs that changed since it last looked.
    r#"
ALTER TABLE tasks ADD COLUMN device INTEGER CHECK (device IS NULL OR device >= 0);
ALTER TABLE jobs ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET rev = id;
CREATE INDEX jobs_rev ON jobs(rev);

CREATE TRIGGER jobs_rev_insert AFTER INSERT ON jobs BEGIN
    UPDATE jobs SET rev = (SELECT MAX(rev) FROM jobs) + 1 WHERE id = NEW.id;
END;
CREATE TRIGGER jobs_rev_update
AFTER UPDATE OF status, priority, error, attempts, started_ms, finished_ms, cancel_requested,
                queued_ms, out_dir
ON jobs BEGIN
    UPDATE jobs SET rev = (SELECT MAX(rev) FROM jobs) + 1 WHERE id = NEW.id;
END;
CREATE TRIGGER tasks_rev_update AFTER UPDATE ON tasks BEGIN
    UPDATE jobs SET rev = (SELECT MAX(rev) FROM jobs) + 1 WHERE id = NEW.job_id;
END;
"#,
    // 4: model downloads as queued jobs.
    r#"
CREATE TABLE pulls (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    model            TEXT    NOT NULL,
    status           TEXT    NOT NULL
                     CHECK (status IN ('queued','running','done','failed','cancelled')),
    bytes_done       INTEGER NOT NULL DEFAULT 0 CHECK (bytes_done >= 0),
    bytes_total      INTEGER CHECK (bytes_total IS NULL OR bytes_total >= 0),
    bytes_per_s      REAL    NOT NULL DEFAULT 0,
    error            TEXT,
    path             TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    owner_pid        INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_ms       INTEGER NOT NULL,
    started_ms       INTEGER,
    beat_ms          INTEGER,
    finished_ms      INTEGER
) STRICT;
CREATE UNIQUE INDEX pulls_active_model ON pulls(model) WHERE status IN ('queued','running');
CREATE INDEX pulls_status ON pulls(status, id);
"#,
    // 5: publications (uploads to the platforms) as durable jobs, the quota ledger, consents.
    r#"
CREATE TABLE publications (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    platform         TEXT    NOT NULL CHECK (platform IN ('youtube','tiktok','instagram')),
    account          TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('video','short')),
    lang             TEXT    NOT NULL,
    source           TEXT    NOT NULL,
    job_id           INTEGER,
    file             TEXT    NOT NULL,
    options          TEXT    NOT NULL,
    status           TEXT    NOT NULL
                     CHECK (status IN ('queued','uploading','processing','waiting','live',
                                       'failed','cancelled')),
    upload_state     TEXT,
    bytes_done       INTEGER NOT NULL DEFAULT 0 CHECK (bytes_done >= 0),
    bytes_total      INTEGER CHECK (bytes_total IS NULL OR bytes_total >= 0),
    remote_id        TEXT,
    error            TEXT,
    not_before_ms    INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    owner_pid        INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_ms       INTEGER NOT NULL,
    started_ms       INTEGER,
    beat_ms          INTEGER,
    finished_ms      INTEGER
) STRICT;
CREATE INDEX publications_status ON publications(status, id);
CREATE TABLE publish_quota (
    platform TEXT    NOT NULL,
    account  TEXT    NOT NULL,
    day      TEXT    NOT NULL,
    bucket   TEXT    NOT NULL,
    used     INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (platform, account, day, bucket)
) STRICT;
CREATE TABLE consents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    person          TEXT    NOT NULL,
    scope           TEXT    NOT NULL,
    granted         TEXT    NOT NULL,
    evidence        TEXT    NOT NULL,
    evidence_sha256 TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL
) STRICT;
"#,
];
