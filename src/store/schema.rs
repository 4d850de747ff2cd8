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
];
