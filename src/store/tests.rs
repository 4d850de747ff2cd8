use super::*;

use rusqlite::params;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A unique database path in the temp dir, removed (with its WAL/SHM files)
/// on drop.
struct TempDb {
    path: PathBuf,
}

impl TempDb {
    fn new(name: &str) -> TempDb {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "reelsmith-store-test-{}-{}-{}-{}.db",
            std::process::id(),
            now_ms(),
            n,
            name
        ));
        let db = TempDb { path };
        db.cleanup();
        db
    }

    fn cleanup(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn sample_job(store: &Store) -> (ProjectId, JobId) {
    let project = store
        .upsert_project("Demo", "/scripts/demo.md", "main")
        .unwrap();
    let params = serde_json::json!({
        "languages": ["en", "de"],
        "quality": "draft",
        "seed": 42,
        "out_dir": "/out/demo"
    });
    let job = store
        .create_job(
            project,
            "render",
            &params,
            "/out/demo",
            0,
            JobStatus::Queued,
        )
        .unwrap();
    (project, job)
}

fn user_version_raw(path: &Path) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn in_memory_opens_at_latest_schema() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION as usize, MIGRATIONS.len());
    // Running the migration step again on an up-to-date database is a no-op.
    let mut store = store;
    store.migrate().unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.path(), Path::new(":memory:"));
}

#[test]
fn file_db_migrates_once_and_reopens_cleanly() {
    let db = TempDb::new("reopen");
    {
        let store = Store::open(&db.path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        sample_job(&store);
    }
    {
        let store = Store::open(&db.path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.jobs().unwrap().len(), 1, "data survives reopen");
    }
    assert_eq!(user_version_raw(&db.path), i64::from(SCHEMA_VERSION));
}

#[test]
fn file_db_uses_wal_and_pragmas() {
    let db = TempDb::new("wal");
    let store = Store::open(&db.path).unwrap();
    let mode: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = store
        .conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let sync: i64 = store
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 1, "NORMAL");
    let busy: i64 = store
        .conn
        .pragma_query_value(None, "busy_timeout", |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 5000);
}

fn file_fingerprint(path: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = std::fs::read(path).unwrap();
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    (bytes, mtime)
}

fn assert_newer_schema_refused(path: &Path, found: u32) {
    let before = file_fingerprint(path);
    // Make an mtime change observable even on coarse-grained file systems.
    std::thread::sleep(Duration::from_millis(20));
    let err = Store::open(path).unwrap_err();
    match &err {
        StoreError::NewerSchema {
            found: f, known, ..
        } => {
            assert_eq!(*f, found);
            assert_eq!(*known, SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!(
            "was written by a newer reelsmith (schema {found} > {SCHEMA_VERSION}); upgrade reelsmith"
        )),
        "{msg}"
    );
    let after = file_fingerprint(path);
    assert!(before.0 == after.0, "file bytes changed");
    assert_eq!(before.1, after.1, "file mtime changed");
}

#[test]
fn newer_schema_is_refused_and_wal_file_untouched() {
    let db = TempDb::new("newer-wal");
    drop(Store::open(&db.path).unwrap());
    let future = SCHEMA_VERSION + 7;
    {
        let conn = Connection::open(&db.path).unwrap();
        conn.pragma_update(None, "user_version", future).unwrap();
    }
    assert_newer_schema_refused(&db.path, future);
}

#[test]
fn newer_schema_is_refused_and_rollback_journal_file_untouched() {
    // A file that is not in WAL mode: opening must not switch it to WAL
    // (that would rewrite the header).
    let db = TempDb::new("newer-delete");
    let future = SCHEMA_VERSION + 1;
    {
        let conn = Connection::open(&db.path).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER);").unwrap();
        conn.pragma_update(None, "user_version", future).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
    }
    assert_newer_schema_refused(&db.path, future);
}

#[test]
fn non_database_file_is_reported() {
    let db = TempDb::new("garbage");
    std::fs::write(&db.path, vec![b'x'; 4096]).unwrap();
    let err = Store::open(&db.path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("is not a reelsmith database"));
}

#[test]
fn missing_directory_is_an_open_error() {
    let path = std::env::temp_dir()
        .join(format!("reelsmith-no-such-dir-{}", std::process::id()))
        .join("sub")
        .join("db.sqlite");
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("directory exists"), "{err}");
}

#[test]
fn project_upsert_is_keyed_by_script_path() {
    let store = Store::open_in_memory().unwrap();
    let a = store.upsert_project("A", "/s/a.md", "main").unwrap();
    let a2 = store
        .upsert_project("A renamed", "/s/a.md", "other")
        .unwrap();
    let b = store.upsert_project("B", "/s/b.md", "main").unwrap();
    assert_eq!(a, a2);
    assert_ne!(a, b);
    let (name, channel): (String, String) = store
        .conn
        .query_row(
            "SELECT name, channel FROM projects WHERE id = ?1",
            [a],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((name.as_str(), channel.as_str()), ("A renamed", "other"));
}

#[test]
fn job_lifecycle_round_trip() {
    let store = Store::open_in_memory().unwrap();
    let (project, job) = sample_job(&store);

    let row = store.job(job).unwrap().unwrap();
    assert_eq!(row.project_id, project);
    assert_eq!(row.kind, "render");
    assert_eq!(row.status, JobStatus::Queued);
    assert_eq!(row.params["languages"], serde_json::json!(["en", "de"]));
    assert_eq!(row.params["seed"], 42);
    assert_eq!(row.out_dir, "/out/demo");
    assert_eq!(row.attempts, 0);
    assert!(row.created_ms > 0);
    assert_eq!((row.started_ms, row.finished_ms), (None, None));

    store.set_job_status(job, JobStatus::Running, None).unwrap();
    let running = store.job(job).unwrap().unwrap();
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.attempts, 1);
    let started = running.started_ms.unwrap();

    // Pause and resume: started_ms is kept, attempts counts the resume.
    store.set_job_status(job, JobStatus::Paused, None).unwrap();
    store.set_job_status(job, JobStatus::Running, None).unwrap();
    // Running → running does not count as another attempt.
    store.set_job_status(job, JobStatus::Running, None).unwrap();
    let resumed = store.job(job).unwrap().unwrap();
    assert_eq!(resumed.started_ms, Some(started));
    assert_eq!(resumed.attempts, 2);
    assert_eq!(resumed.finished_ms, None);

    store
        .set_job_status(job, JobStatus::Failed, Some("voice:en: engine crashed"))
        .unwrap();
    let failed = store.job(job).unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("voice:en: engine crashed"));
    assert!(failed.finished_ms.unwrap() >= started);

    // Re-queue: error and finished_ms cleared, started_ms kept.
    store.set_job_status(job, JobStatus::Queued, None).unwrap();
    let requeued = store.job(job).unwrap().unwrap();
    assert_eq!(requeued.error, None);
    assert_eq!(requeued.finished_ms, None);
    assert_eq!(requeued.started_ms, Some(started));

    store.set_job_status(job, JobStatus::Running, None).unwrap();
    store.set_job_status(job, JobStatus::Done, None).unwrap();
    let done = store.job(job).unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(done.attempts, 3);
    assert!(done.finished_ms.is_some());

    assert_eq!(store.jobs().unwrap().len(), 1);
    assert!(store.job(job + 100).unwrap().is_none());

    // Serialises with lowercase statuses.
    let json = serde_json::to_value(&done).unwrap();
    assert_eq!(json["status"], "done");
}

#[test]
fn job_errors_name_missing_rows() {
    let store = Store::open_in_memory().unwrap();
    let err = store
        .create_job(
            999,
            "render",
            &serde_json::json!({}),
            "/out",
            0,
            JobStatus::Queued,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "project",
                id: 999,
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .set_job_status(12345, JobStatus::Running, None)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "job", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(":memory:"), "{err}");
    let err = store.upsert_task(777, "plan", "plan", None).unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "job", .. }),
        "{err:?}"
    );
    let err = store.task_started(555, "x").unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "task", .. }),
        "{err:?}"
    );
}

#[test]
fn status_checks_reject_garbage() {
    let store = Store::open_in_memory().unwrap();
    let (project, job) = sample_job(&store);
    let task = store.upsert_task(job, "plan", "plan", None).unwrap();

    let bad_job_insert = store.conn.execute(
        "INSERT INTO jobs (project_id, kind, status, params, out_dir, created_ms)
         VALUES (?1, 'render', 'exploded', '{}', '/o', 0)",
        [project],
    );
    assert!(bad_job_insert.is_err(), "jobs.status CHECK missing");
    let bad_job_update = store
        .conn
        .execute("UPDATE jobs SET status = 'Done' WHERE id = ?1", [job]);
    assert!(
        bad_job_update.is_err(),
        "jobs.status CHECK is case-sensitive"
    );
    let bad_params = store
        .conn
        .execute("UPDATE jobs SET params = 'not json' WHERE id = ?1", [job]);
    assert!(bad_params.is_err(), "jobs.params must be JSON");
    let bad_task = store
        .conn
        .execute("UPDATE tasks SET status = 'maybe' WHERE id = ?1", [task]);
    assert!(bad_task.is_err(), "tasks.status CHECK missing");
    let bad_level = store.conn.execute(
        "INSERT INTO events (job_id, at_ms, level, message) VALUES (?1, 0, 'debug', 'x')",
        [job],
    );
    assert!(bad_level.is_err(), "events.level CHECK missing");
    let bad_fk = store.conn.execute(
        "INSERT INTO tasks (job_id, stage, kind) VALUES (4242, 'x', 'x')",
        [],
    );
    assert!(bad_fk.is_err(), "foreign keys must be enforced");

    // Every status the API writes passes the CHECKs.
    for s in JobStatus::ALL {
        store.set_job_status(job, *s, None).unwrap();
        assert_eq!(store.job(job).unwrap().unwrap().status, *s);
        assert_eq!(JobStatus::parse(s.as_str()), Some(*s));
    }
    for s in TaskStatus::ALL {
        store
            .conn
            .execute(
                "UPDATE tasks SET status = ?2 WHERE id = ?1",
                params![task, s.as_str()],
            )
            .unwrap();
        assert_eq!(store.tasks(job).unwrap()[0].status, *s);
        assert_eq!(TaskStatus::parse(s.as_str()), Some(*s));
    }
    assert_eq!(JobStatus::parse("garbage"), None);
    assert_eq!(TaskStatus::parse("Done"), None);
    assert_eq!(EventLevel::parse("warn"), Some(EventLevel::Warn));
}

#[test]
fn task_lifecycle_round_trip() {
    let store = Store::open_in_memory().unwrap();
    let (_, job) = sample_job(&store);
    let plan = store.upsert_task(job, "plan", "plan", None).unwrap();
    let voice = store
        .upsert_task(job, "voice:en", "voice", Some("en"))
        .unwrap();

    let tasks = store.tasks(job).unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].id, plan);
    assert_eq!(tasks[1].stage, "voice:en");
    assert_eq!(tasks[1].kind, "voice");
    assert_eq!(tasks[1].lang.as_deref(), Some("en"));
    assert_eq!(tasks[1].status, TaskStatus::Pending);
    assert_eq!(tasks[1].progress, 0.0);

    store.task_started(voice, "kokoro").unwrap();
    store.task_progress(voice, 0.5).unwrap();
    let t = &store.tasks(job).unwrap()[1];
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(t.engine.as_deref(), Some("kokoro"));
    assert_eq!(t.progress, 0.5);
    assert!(t.started_ms.is_some());

    // Out-of-range progress is clamped, non-finite refused.
    store.task_progress(voice, 7.0).unwrap();
    assert_eq!(store.tasks(job).unwrap()[1].progress, 1.0);
    store.task_progress(voice, -1.0).unwrap();
    assert_eq!(store.tasks(job).unwrap()[1].progress, 0.0);
    assert!(matches!(
        store.task_progress(voice, f64::NAN),
        Err(StoreError::InvalidArgument { .. })
    ));

    store
        .task_finished(voice, TaskStatus::Done, Some("sha256:abc"), None, 1234)
        .unwrap();
    let t = &store.tasks(job).unwrap()[1];
    assert_eq!(t.status, TaskStatus::Done);
    assert_eq!(t.artifact_key.as_deref(), Some("sha256:abc"));
    assert_eq!(t.elapsed_ms, Some(1234));
    assert_eq!(t.progress, 1.0);
    assert!(t.finished_ms.is_some());

    store.task_started(plan, "llm").unwrap();
    store
        .task_finished(plan, TaskStatus::Failed, None, Some("boom"), 10)
        .unwrap();
    let t = &store.tasks(job).unwrap()[0];
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error.as_deref(), Some("boom"));

    // Retrying clears the old error.
    store.task_started(plan, "llm").unwrap();
    let t = &store.tasks(job).unwrap()[0];
    assert_eq!((t.status, t.error.as_deref()), (TaskStatus::Running, None));
    assert_eq!(t.finished_ms, None);

    assert!(matches!(
        store.task_finished(plan, TaskStatus::Running, None, None, 0),
        Err(StoreError::InvalidArgument { .. })
    ));

    let json = serde_json::to_value(&store.tasks(job).unwrap()[1]).unwrap();
    assert_eq!(json["status"], "done");
}

#[test]
fn upsert_task_is_idempotent() {
    let store = Store::open_in_memory().unwrap();
    let (_, job) = sample_job(&store);
    let a = store
        .upsert_task(job, "voice:en", "voice", Some("en"))
        .unwrap();
    store.task_started(a, "kokoro").unwrap();
    store
        .task_finished(a, TaskStatus::Cached, Some("k1"), None, 0)
        .unwrap();
    let b = store
        .upsert_task(job, "voice:en", "voice", Some("en"))
        .unwrap();
    assert_eq!(a, b);
    let tasks = store.tasks(job).unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].status,
        TaskStatus::Cached,
        "upsert leaves status alone"
    );

    // Same stage name in another job is another task.
    let project = store.job(job).unwrap().unwrap().project_id;
    let job2 = store
        .create_job(
            project,
            "render",
            &serde_json::json!({}),
            "/o2",
            5,
            JobStatus::Queued,
        )
        .unwrap();
    let c = store
        .upsert_task(job2, "voice:en", "voice", Some("en"))
        .unwrap();
    assert_ne!(a, c);
}

#[test]
fn deleting_a_job_cascades_to_tasks_and_events() {
    let store = Store::open_in_memory().unwrap();
    let (_, job) = sample_job(&store);
    let task = store.upsert_task(job, "plan", "plan", None).unwrap();
    store
        .add_event(Some(job), Some(task), EventLevel::Info, "x")
        .unwrap();
    store
        .conn
        .execute("DELETE FROM jobs WHERE id = ?1", [job])
        .unwrap();
    assert!(store.tasks(job).unwrap().is_empty());
    let n: i64 = store
        .conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    // Job ids are not reused after a delete.
    let (_, job2) = sample_job(&store);
    assert!(job2 > job);
}

#[test]
fn events_are_ordered_and_paged() {
    let store = Store::open_in_memory().unwrap();
    let (_, job) = sample_job(&store);
    let (_, other) = sample_job(&store);
    let task = store.upsert_task(job, "plan", "plan", None).unwrap();
    for i in 0..10 {
        store
            .add_event(Some(job), None, EventLevel::Info, &format!("e{i}"))
            .unwrap();
        store
            .add_event(Some(other), None, EventLevel::Warn, &format!("o{i}"))
            .unwrap();
    }
    store
        .add_event(Some(job), Some(task), EventLevel::Error, "task failed")
        .unwrap();
    store
        .add_event(None, None, EventLevel::Info, "global")
        .unwrap();

    let all = store.events(job, 0, 100).unwrap();
    assert_eq!(all.len(), 11);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let messages: Vec<&str> = all.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(&messages[..3], ["e0", "e1", "e2"]);
    assert_eq!(all[10].level, EventLevel::Error);
    assert_eq!(all[10].task_id, Some(task));
    assert!(all.iter().all(|e| e.job_id == Some(job)));

    // Paging with a cursor.
    let first = store.events(job, 0, 4).unwrap();
    assert_eq!(first.len(), 4);
    let rest = store.events(job, first[3].id, 100).unwrap();
    assert_eq!(rest.len(), 7);
    assert_eq!(rest[0].message, "e4");
    assert!(store.events(job, all[10].id, 100).unwrap().is_empty());
    assert!(store.events(job, 0, 0).unwrap().is_empty());

    let err = store
        .add_event(Some(9999), None, EventLevel::Info, "x")
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "job", .. }),
        "{err:?}"
    );

    let json = serde_json::to_value(&all[10]).unwrap();
    assert_eq!(json["level"], "error");
}

#[test]
fn artifacts_upsert_and_touch() {
    let store = Store::open_in_memory().unwrap();
    store.record_artifact("k1", "voice", 100).unwrap();
    let (created, used): (i64, i64) = store
        .conn
        .query_row(
            "SELECT created_ms, last_used_ms FROM artifacts WHERE key = 'k1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    store.record_artifact("k1", "voice", 250).unwrap();
    let (created2, used2, bytes): (i64, i64, i64) = store
        .conn
        .query_row(
            "SELECT created_ms, last_used_ms, bytes FROM artifacts WHERE key = 'k1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(created, created2);
    assert!(used2 > used);
    assert_eq!(bytes, 250);
    assert!(matches!(
        store.record_artifact("huge", "voice", u64::MAX),
        Err(StoreError::InvalidArgument { .. })
    ));
}

#[test]
fn integrity_check_is_ok() {
    let store = Store::open_in_memory().unwrap();
    sample_job(&store);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let db = TempDb::new("integrity");
    let store = Store::open(&db.path).unwrap();
    sample_job(&store);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn two_connections_see_each_others_commits() {
    let db = TempDb::new("two-conns");
    let a = Store::open(&db.path).unwrap();
    let b = Store::open(&db.path).unwrap();
    assert_eq!(b.schema_version().unwrap(), SCHEMA_VERSION);

    let (_, job) = sample_job(&a);
    let seen = b.job(job).unwrap().expect("b sees a's job");
    assert_eq!(seen.status, JobStatus::Queued);

    b.set_job_status(job, JobStatus::Running, None).unwrap();
    let task = b.upsert_task(job, "plan", "plan", None).unwrap();
    b.add_event(Some(job), Some(task), EventLevel::Info, "from b")
        .unwrap();

    assert_eq!(a.job(job).unwrap().unwrap().status, JobStatus::Running);
    assert_eq!(a.tasks(job).unwrap()[0].id, task);
    assert_eq!(a.events(job, 0, 10).unwrap()[0].message, "from b");
    // The same project path resolves to the same id from both sides.
    assert_eq!(
        a.upsert_project("Demo", "/scripts/demo.md", "main")
            .unwrap(),
        b.upsert_project("Demo", "/scripts/demo.md", "main")
            .unwrap()
    );
}

#[test]
fn concurrent_first_open_migrates_once() {
    let db = TempDb::new("race");
    let path = db.path.clone();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || Store::open(&path).map(|s| s.schema_version()))
        })
        .collect();
    for h in handles {
        let v = h.join().unwrap().unwrap().unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }
    assert_eq!(user_version_raw(&path), i64::from(SCHEMA_VERSION));
}

#[test]
fn busy_lock_reports_busy_after_timeout() {
    let db = TempDb::new("busy");
    let store = Store::open(&db.path).unwrap();
    let (project, _) = sample_job(&store);
    let locker = Connection::open(&db.path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let err = store
        .create_job(
            project,
            "render",
            &serde_json::json!({}),
            "/o",
            0,
            JobStatus::Queued,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_secs(4));
    locker.execute_batch("ROLLBACK").unwrap();
}

// ---- migration 2: the durable queue ----

fn new_job(project: ProjectId, name: &str, stages: &[&str]) -> NewJob {
    NewJob {
        project,
        kind: "render".to_string(),
        params: serde_json::json!({ "languages": ["en"], "name": name }),
        out_dir: format!("/out/{name}"),
        priority: 0,
        script: format!("# {name}\n\nHallo, Welt — ünïcödé ✓\n"),
        script_name: format!("{name}.md"),
        tasks: stages
            .iter()
            .map(|s| NewTask {
                stage: s.to_string(),
                kind: s.split(':').next().unwrap().to_string(),
                lang: s.split(':').nth(1).map(str::to_string),
            })
            .collect(),
    }
}

fn project(store: &Store) -> ProjectId {
    store
        .upsert_project("Demo", "/scripts/demo.md", "main")
        .unwrap()
}

fn task_id(store: &Store, job: JobId, stage: &str) -> TaskId {
    store
        .tasks(job)
        .unwrap()
        .into_iter()
        .find(|t| t.stage == stage)
        .unwrap()
        .id
}

fn task_row(store: &Store, job: JobId, stage: &str) -> TaskRow {
    store
        .tasks(job)
        .unwrap()
        .into_iter()
        .find(|t| t.stage == stage)
        .unwrap()
}

fn query_plan(store: &Store, sql: &str) -> String {
    let mut stmt = store
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows.join("\n")
}

#[test]
fn migrates_a_version_1_database_to_the_latest_keeping_data() {
    let db = TempDb::new("v1-to-v2");
    let (job, task, created) = {
        let conn = Connection::open(&db.path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO projects (name, script_path, channel, created_ms, updated_ms)
             VALUES ('Old', '/s/old.md', 'main', 1, 1)",
            [],
        )
        .unwrap();
        let job: i64 = conn
            .query_row(
                "INSERT INTO jobs (project_id, kind, status, params, out_dir, created_ms)
                 VALUES (1, 'render', 'queued', '{\"seed\":7}', '/o', 1234) RETURNING id",
                [],
                |r| r.get(0),
            )
            .unwrap();
        conn.execute(
            "INSERT INTO jobs (project_id, kind, status, params, out_dir, created_ms)
             VALUES (1, 'render', 'done', '{}', '/o2', 99)",
            [],
        )
        .unwrap();
        let task: i64 = conn
            .query_row(
                "INSERT INTO tasks (job_id, stage, kind, status)
                 VALUES (?1, 'plan', 'plan', 'done') RETURNING id",
                [job],
                |r| r.get(0),
            )
            .unwrap();
        (job, task, 1234)
    };
    assert_eq!(user_version_raw(&db.path), 1);
    for _ in 0..2 {
        // The first open applies migration 2, the second finds nothing to do.
        let store = Store::open(&db.path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let row = store.job(job).unwrap().unwrap();
        assert_eq!(row.params["seed"], 7);
        assert_eq!(row.status, JobStatus::Queued);
        assert_eq!(row.script, None);
        assert_eq!(row.script_name, None);
        assert!(!row.cancel_requested);
        assert_eq!(row.queued_ms, Some(created), "queued jobs are backfilled");
        let done = &store.jobs().unwrap()[1];
        assert_eq!(done.queued_ms, None);
        let t = &store.tasks(job).unwrap()[0];
        assert_eq!((t.id, t.status), (task, TaskStatus::Done));
        assert_eq!((t.crashes, t.attempts), (0, 0));
        assert!(!store.queue_paused().unwrap());
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }
    assert_eq!(user_version_raw(&db.path), i64::from(SCHEMA_VERSION));
}

#[test]
fn active_jobs_query_uses_the_partial_index() {
    let store = Store::open_in_memory().unwrap();
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_active
         WHERE status IN ('queued','running','paused') ORDER BY id"
    );
    let plan = query_plan(&store, &sql);
    assert!(plan.contains("jobs_active"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "no sort needed: {plan}");
    // The index holds only unfinished jobs.
    let p = project(&store);
    let done = store.enqueue_job(&new_job(p, "d", &[])).unwrap();
    store.set_job_status(done, JobStatus::Done, None).unwrap();
    store.enqueue_job(&new_job(p, "q", &[])).unwrap();
    let n: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM jobs INDEXED BY jobs_active
             WHERE status IN ('queued','running','paused')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn enqueue_round_trips_the_script_snapshot_and_tasks() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let mut new = new_job(p, "intro", &["plan", "voice:en", "voice:de", "voice:en"]);
    new.priority = 3;
    new.tasks[3].kind = "voice2".to_string();
    let before = now_ms();
    let job = store.enqueue_job(&new).unwrap();
    let row = store.job(job).unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Queued);
    assert_eq!(row.script.as_deref(), Some(new.script.as_str()));
    assert_eq!(row.script_name.as_deref(), Some("intro.md"));
    assert_eq!(row.priority, 3);
    assert_eq!(row.params, new.params);
    assert_eq!(row.out_dir, "/out/intro");
    assert!(!row.cancel_requested);
    assert!(row.queued_ms.unwrap() >= before);
    assert_eq!(row.queued_ms, Some(row.created_ms));
    assert_eq!(
        (row.attempts, row.started_ms, row.finished_ms),
        (0, None, None)
    );

    let tasks = store.tasks(job).unwrap();
    let stages: Vec<&str> = tasks.iter().map(|t| t.stage.as_str()).collect();
    assert_eq!(
        stages,
        ["plan", "voice:en", "voice:de"],
        "repeat is upserted"
    );
    assert_eq!(tasks[1].kind, "voice2");
    assert_eq!(tasks[2].lang.as_deref(), Some("de"));
    assert!(tasks
        .iter()
        .all(|t| t.status == TaskStatus::Pending && t.crashes == 0 && t.attempts == 0));

    // The snapshot is independent of anything on disk; task_started counts.
    store.task_started(tasks[0].id, "llm").unwrap();
    store.task_started(tasks[0].id, "llm").unwrap();
    assert_eq!(store.tasks(job).unwrap()[0].attempts, 2);

    // All or nothing: an unknown project rolls the whole batch back.
    let ok = new_job(p, "a", &["plan"]);
    let bad = new_job(p + 100, "b", &["plan"]);
    let err = store.enqueue_jobs(&[ok, bad]).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "project",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.jobs().unwrap().len(), 1);
    assert!(store.enqueue_jobs(&[]).unwrap().is_empty());

    // create_job also records when a queued job entered the queue.
    let (_, old_style) = sample_job(&store);
    let r = store.job(old_style).unwrap().unwrap();
    assert_eq!(r.queued_ms, Some(r.created_ms));
    assert_eq!(r.script, None);
}

/// CPU time this thread has run, in ns (Linux only): timings taken on a
/// busy machine are printed with it, since wall time there says little.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn cpu_ms_since(start: Option<u64>) -> String {
    match (start, thread_cpu_ns()) {
        (Some(a), Some(b)) => format!("{:.1} ms CPU", (b.saturating_sub(a)) as f64 / 1e6),
        _ => "CPU time n/a".to_string(),
    }
}

fn bulk_jobs(p: ProjectId, n: usize) -> Vec<NewJob> {
    const STAGES: [&str; 10] = [
        "plan",
        "visual",
        "voice:en",
        "voice:de",
        "captions:en",
        "captions:de",
        "music",
        "assemble:en",
        "assemble:de",
        "thumbnail",
    ];
    (0..n)
        .map(|i| {
            let mut j = new_job(p, &format!("job{i}"), &STAGES);
            // About 4 KB, a few minutes of narration.
            j.script = format!("# Video {i}\n\n{}", "Some narration text. ".repeat(200));
            j.priority = (i % 5) as i64;
            j
        })
        .collect()
}

#[test]
fn enqueue_jobs_10k_jobs_with_10_tasks_is_fast() {
    let db = TempDb::new("bulk");
    let store = Store::open(&db.path).unwrap();
    let p = project(&store);
    let jobs = bulk_jobs(p, 10_000);
    let cpu = thread_cpu_ns();
    let started = std::time::Instant::now();
    let ids = store.enqueue_jobs(&jobs).unwrap();
    let took = started.elapsed();
    println!(
        "enqueue_jobs: 10,000 jobs x 10 tasks in {took:?} wall, {}",
        cpu_ms_since(cpu)
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(ids.len(), 10_000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let tasks: i64 = store
        .conn
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tasks, 100_000);
}

#[test]
fn job_summaries_are_complete_and_fast_for_10k_jobs() {
    let db = TempDb::new("summaries");
    let store = Store::open(&db.path).unwrap();
    let p = project(&store);
    let ids = store.enqueue_jobs(&bulk_jobs(p, 10_000)).unwrap();
    // A job without tasks and some task state, to check the grouping.
    let (_, empty) = sample_job(&store);
    let t = task_id(&store, ids[17], "voice:de");
    store.task_started(t, "kokoro").unwrap();
    store
        .task_finished(t, TaskStatus::Failed, None, Some("boom"), 5)
        .unwrap();

    let mut best = Duration::MAX;
    let mut all = Vec::new();
    for round in 0..3 {
        // A fresh connection each time, like `reelsmith status`.
        let store = Store::open(&db.path).unwrap();
        drop(std::mem::take(&mut all));
        let cpu = thread_cpu_ns();
        let started = std::time::Instant::now();
        all = store.job_summaries(None).unwrap();
        let took = started.elapsed();
        println!(
            "job_summaries(None) #{round}: 10,001 jobs / 100,000 tasks in {took:?} wall, {}",
            cpu_ms_since(cpu)
        );
        best = best.min(took);
    }
    assert!(best < Duration::from_secs(1), "took {best:?}");

    assert_eq!(all.len(), 10_001);
    for (i, (job, tasks)) in all.iter().take(10_000).enumerate() {
        assert_eq!(job.id, ids[i]);
        assert_eq!(job.script, None, "summaries do not load scripts");
        assert_eq!(
            job.script_name.as_deref(),
            Some(format!("job{i}.md").as_str())
        );
        assert_eq!(tasks.len(), 10);
        assert!(tasks.iter().all(|t| t.job_id == job.id));
        assert!(tasks.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(tasks[0].stage, "plan");
        assert_eq!(tasks[9].stage, "thumbnail");
    }
    let (last, last_tasks) = &all[10_000];
    assert_eq!((last.id, last_tasks.len()), (empty, 0));
    let failed = &all[17].1[3];
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("boom"));
    assert_eq!(failed.attempts, 1);
    // Apart from the script, params and artifact keys, summaries match the single-job reads.
    let mut from_job = store.job(ids[17]).unwrap().unwrap();
    from_job.script = None;
    from_job.params = serde_json::Value::Null;
    assert_eq!(
        serde_json::to_value(&all[17].0).unwrap(),
        serde_json::to_value(&from_job).unwrap()
    );
    let mut full_tasks = store.tasks(ids[17]).unwrap();
    for t in &mut full_tasks {
        t.artifact_key = None;
    }
    assert_eq!(
        serde_json::to_value(&all[17].1).unwrap(),
        serde_json::to_value(full_tasks).unwrap()
    );

    let started = std::time::Instant::now();
    let newest = store.job_summaries(Some(3)).unwrap();
    println!("job_summaries(Some(3)): {:?}", started.elapsed());
    let newest_ids: Vec<JobId> = newest.iter().map(|(j, _)| j.id).collect();
    assert_eq!(newest_ids, [ids[9_998], ids[9_999], empty]);
    assert_eq!(newest[0].1.len(), 10);
    assert_eq!(newest[2].1.len(), 0);
    assert!(store.job_summaries(Some(0)).unwrap().is_empty());
    assert_eq!(store.job_summaries(Some(50_000)).unwrap().len(), 10_001);
    assert!(Store::open_in_memory()
        .unwrap()
        .job_summaries(None)
        .unwrap()
        .is_empty());
}

#[test]
fn request_cancel_queued_paused_running_and_finished() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let queued = store
        .enqueue_job(&new_job(p, "q", &["plan", "voice:en"]))
        .unwrap();
    let paused = store.enqueue_job(&new_job(p, "p", &["plan"])).unwrap();
    let running = store
        .enqueue_job(&new_job(p, "r", &["plan", "voice:en"]))
        .unwrap();
    let done = store.enqueue_job(&new_job(p, "d", &["plan"])).unwrap();
    store.pause_job(paused).unwrap();
    store
        .set_job_status(running, JobStatus::Running, None)
        .unwrap();
    store
        .task_started(task_id(&store, running, "plan"), "llm")
        .unwrap();
    store.set_job_status(done, JobStatus::Done, None).unwrap();
    let done_before = store.job(done).unwrap().unwrap();

    let q = store.request_cancel(queued).unwrap();
    assert_eq!(q.status, JobStatus::Cancelled);
    assert!(q.cancel_requested);
    assert!(q.finished_ms.is_some());
    assert!(store
        .tasks(queued)
        .unwrap()
        .iter()
        .all(|t| t.status == TaskStatus::Cancelled));

    let pa = store.request_cancel(paused).unwrap();
    assert_eq!(
        (pa.status, pa.cancel_requested),
        (JobStatus::Cancelled, true)
    );

    let r = store.request_cancel(running).unwrap();
    assert_eq!(r.status, JobStatus::Running, "the scheduler stops it");
    assert!(r.cancel_requested);
    assert_eq!(r.finished_ms, None);
    assert_eq!(
        task_row(&store, running, "plan").status,
        TaskStatus::Running
    );
    assert_eq!(
        task_row(&store, running, "voice:en").status,
        TaskStatus::Pending
    );

    let d = store.request_cancel(done).unwrap();
    assert_eq!(d.status, JobStatus::Done);
    assert!(!d.cancel_requested, "finished jobs are not touched");
    assert_eq!(d.finished_ms, done_before.finished_ms);

    // Cancelling twice is harmless.
    assert_eq!(
        store.request_cancel(queued).unwrap().finished_ms,
        q.finished_ms
    );
    let err = store.request_cancel(9999).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "job",
                id: 9999,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn pause_resume_priority_and_queue_pause() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let job = store.enqueue_job(&new_job(p, "j", &["plan"])).unwrap();
    let first_queued = store.job(job).unwrap().unwrap().queued_ms.unwrap();

    store.pause_job(job).unwrap();
    store.pause_job(job).unwrap();
    assert_eq!(store.job(job).unwrap().unwrap().status, JobStatus::Paused);
    assert!(!store.active_jobs().unwrap().is_empty(), "paused is active");
    std::thread::sleep(Duration::from_millis(3));
    store.resume_job(job).unwrap();
    let row = store.job(job).unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Queued);
    assert!(
        row.queued_ms.unwrap() > first_queued,
        "resume re-enters the queue"
    );
    store.resume_job(job).unwrap();

    store.set_job_status(job, JobStatus::Running, None).unwrap();
    let err = store.resume_job(job).unwrap_err();
    assert!(err.to_string().contains("is running"), "{err}");
    store.pause_job(job).unwrap();
    assert_eq!(store.job(job).unwrap().unwrap().status, JobStatus::Paused);

    // set_job_status → queued also stamps queued_ms.
    std::thread::sleep(Duration::from_millis(3));
    store.set_job_status(job, JobStatus::Queued, None).unwrap();
    let requeued = store.job(job).unwrap().unwrap().queued_ms.unwrap();
    assert!(requeued > row.queued_ms.unwrap());
    store.set_job_status(job, JobStatus::Queued, None).unwrap();
    assert_eq!(store.job(job).unwrap().unwrap().queued_ms, Some(requeued));

    store.set_job_status(job, JobStatus::Done, None).unwrap();
    let err = store.pause_job(job).unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("job 1 is done; only queued or running jobs can be paused"),
        "{err}"
    );
    assert!(matches!(
        store.pause_job(404),
        Err(StoreError::NotFound { what: "job", .. })
    ));

    store.set_priority(job, -7).unwrap();
    assert_eq!(store.job(job).unwrap().unwrap().priority, -7);
    assert!(matches!(
        store.set_priority(404, 1),
        Err(StoreError::NotFound { what: "job", .. })
    ));

    assert!(!store.queue_paused().unwrap());
    store.set_queue_paused(true).unwrap();
    assert!(store.queue_paused().unwrap());
    store.set_queue_paused(false).unwrap();
    assert!(!store.queue_paused().unwrap());
    store.set_setting("x", "1").unwrap();
    assert_eq!(store.setting("x").unwrap().as_deref(), Some("1"));
    assert_eq!(store.setting("nope").unwrap(), None);
}

#[test]
fn retry_resets_only_unfinished_tasks() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let stages = [
        "done",
        "cached",
        "failed",
        "cancelled",
        "skipped",
        "running",
        "pending",
    ];
    let job = store.enqueue_job(&new_job(p, "j", &stages)).unwrap();
    store.set_job_status(job, JobStatus::Running, None).unwrap();
    for (stage, status) in [
        ("done", TaskStatus::Done),
        ("cached", TaskStatus::Cached),
        ("failed", TaskStatus::Failed),
        ("cancelled", TaskStatus::Cancelled),
        ("skipped", TaskStatus::Skipped),
    ] {
        let t = task_id(&store, job, stage);
        store.task_started(t, "e").unwrap();
        store
            .task_finished(t, status, Some("key"), Some("why"), 10)
            .unwrap();
    }
    store
        .task_started(task_id(&store, job, "running"), "e")
        .unwrap();
    store
        .conn
        .execute("UPDATE tasks SET crashes = 2 WHERE job_id = ?1", [job])
        .unwrap();

    let err = store.retry_job(job).unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("is running, not failed or cancelled"),
        "{err}"
    );

    store.request_cancel(job).unwrap();
    store
        .set_job_status(job, JobStatus::Failed, Some("stage failed: boom"))
        .unwrap();
    let reset = store.retry_job(job).unwrap();
    assert_eq!(reset, 4, "failed, cancelled, skipped, running");

    let row = store.job(job).unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Queued);
    assert_eq!((row.error, row.finished_ms), (None, None));
    assert!(!row.cancel_requested);
    assert!(row.queued_ms.is_some());
    for stage in ["failed", "cancelled", "skipped", "running"] {
        let t = task_row(&store, job, stage);
        assert_eq!(t.status, TaskStatus::Pending, "{stage}");
        assert_eq!((t.error, t.crashes, t.progress), (None, 0, 0.0), "{stage}");
        assert_eq!(t.attempts, 1, "attempts are history, kept");
    }
    for (stage, status) in [("done", TaskStatus::Done), ("cached", TaskStatus::Cached)] {
        let t = task_row(&store, job, stage);
        assert_eq!(t.status, status);
        assert_eq!(t.artifact_key.as_deref(), Some("key"));
        assert_eq!(t.crashes, 2, "untouched");
    }
    assert_eq!(task_row(&store, job, "pending").crashes, 2, "untouched");

    // A cancelled job can be retried too; a queued one cannot.
    store.request_cancel(job).unwrap();
    assert_eq!(
        store.retry_job(job).unwrap(),
        5,
        "every task but the done and cached ones"
    );
    assert!(matches!(
        store.retry_job(job),
        Err(StoreError::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.retry_job(404),
        Err(StoreError::NotFound { what: "job", .. })
    ));
}

#[test]
fn recovery_resumes_interrupted_tasks_without_counting_a_crash() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let long = store
        .enqueue_job(&new_job(p, "long", &["plan", "voice:en", "assemble"]))
        .unwrap();
    let flaky = store.enqueue_job(&new_job(p, "flaky", &["plan"])).unwrap();
    let paused = store.enqueue_job(&new_job(p, "paused", &["plan"])).unwrap();
    let waiting = store
        .enqueue_job(&new_job(p, "waiting", &["plan"]))
        .unwrap();
    let voice = task_id(&store, long, "voice:en");
    let flaky_plan = task_id(&store, flaky, "plan");
    let paused_plan = task_id(&store, paused, "plan");
    let plan = task_id(&store, long, "plan");
    store.task_started(plan, "llm").unwrap();
    store
        .task_finished(plan, TaskStatus::Done, Some("k"), None, 1)
        .unwrap();

    // Nothing running: nothing to do.
    assert!(store.recover_interrupted().unwrap().is_empty());

    // The studio is killed ten times while the long task runs: never a crash.
    for round in 1..=10 {
        store
            .set_job_status(long, JobStatus::Running, None)
            .unwrap();
        store.task_started(voice, "kokoro").unwrap();
        store.task_progress(voice, 0.4).unwrap();
        if round == 1 {
            store
                .set_job_status(flaky, JobStatus::Running, None)
                .unwrap();
            store.task_started(flaky_plan, "llm").unwrap();
            store
                .set_job_status(paused, JobStatus::Running, None)
                .unwrap();
            store.task_started(paused_plan, "llm").unwrap();
            store.pause_job(paused).unwrap();
        }
        let report = store.recover_interrupted().unwrap();
        let me = report.iter().find(|r| r.task == voice).unwrap();
        assert_eq!(
            me,
            &Recovered {
                job: long,
                task: voice,
                stage: "voice:en".to_string(),
                crashes: 0,
                failed: false,
            }
        );
        let t = task_row(&store, long, "voice:en");
        assert_eq!(
            (t.status, t.crashes, t.attempts),
            (TaskStatus::Pending, 0, round)
        );
        assert_eq!(t.progress, 0.0);
        let job = store.job(long).unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Queued, "running jobs are re-queued");
        if round == 1 {
            assert_eq!(report.len(), 3);
            assert!(report.windows(2).all(|w| w[0].task < w[1].task));
            assert_eq!(store.job(flaky).unwrap().unwrap().status, JobStatus::Queued);
            assert_eq!(
                store.job(paused).unwrap().unwrap().status,
                JobStatus::Paused,
                "paused jobs stay paused"
            );
            assert_eq!(store.tasks(paused).unwrap()[0].status, TaskStatus::Pending);
        } else {
            assert_eq!(report.len(), 1, "only the long task was running");
        }
    }
    assert_eq!(task_row(&store, long, "plan").status, TaskStatus::Done);
    assert_eq!(
        task_row(&store, long, "assemble").status,
        TaskStatus::Pending
    );
    assert_eq!(
        store.job(waiting).unwrap().unwrap().status,
        JobStatus::Queued
    );

    // A running job whose cancel was requested ends cancelled, not queued.
    store
        .set_job_status(flaky, JobStatus::Running, None)
        .unwrap();
    store.task_started(flaky_plan, "llm").unwrap();
    store.request_cancel(flaky).unwrap();
    store.recover_interrupted().unwrap();
    let f = store.job(flaky).unwrap().unwrap();
    assert_eq!(f.status, JobStatus::Cancelled);
    assert!(f.finished_ms.is_some());
    assert_eq!(store.tasks(flaky).unwrap()[0].status, TaskStatus::Cancelled);
}

#[test]
fn worker_crashes_count_only_without_progress_and_fail_at_the_limit() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let job = store.enqueue_job(&new_job(p, "crashy", &["plan"])).unwrap();
    let plan = task_id(&store, job, "plan");
    let start = || {
        store.set_job_status(job, JobStatus::Running, None).unwrap();
        store.task_started(plan, "llm").unwrap();
        store.task_progress(plan, 0.3).unwrap();
    };
    start();
    assert_eq!(
        store.task_crashed(plan, "segv 1", true, 3).unwrap(),
        (1, false)
    );
    let t = task_row(&store, job, "plan");
    assert_eq!(
        (t.status, t.crashes, t.progress),
        (TaskStatus::Pending, 1, 0.0)
    );
    assert_eq!(
        t.error.as_deref(),
        Some("segv 1"),
        "the last crash's cause is kept"
    );
    start();
    assert_eq!(
        store.task_crashed(plan, "segv 2", true, 3).unwrap(),
        (2, false)
    );
    // A crash after a checkpoint is progress, not a loop: the count starts over.
    start();
    assert_eq!(
        store.task_crashed(plan, "oom", false, 3).unwrap(),
        (0, false)
    );
    for n in 1..=2 {
        start();
        assert_eq!(
            store.task_crashed(plan, "segv", true, 3).unwrap(),
            (n, false)
        );
    }
    start();
    assert_eq!(
        store.task_crashed(plan, "segv 3", true, 3).unwrap(),
        (3, true)
    );
    // At the limit the task is left running for the scheduler to record the failure.
    assert_eq!(task_row(&store, job, "plan").status, TaskStatus::Running);
    store
        .task_finished(plan, TaskStatus::Failed, None, Some("segv 3; …"), 5)
        .unwrap();
    // Only a running task can crash.
    assert!(matches!(
        store.task_crashed(plan, "late", true, 3),
        Err(StoreError::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.task_crashed(plan, "x", true, 0),
        Err(StoreError::InvalidArgument { .. })
    ));
    // Retrying clears the crash count.
    store
        .set_job_status(job, JobStatus::Failed, Some("x"))
        .unwrap();
    assert_eq!(store.retry_job(job).unwrap(), 1);
    let t = task_row(&store, job, "plan");
    assert_eq!(
        (t.status, t.crashes, t.error),
        (TaskStatus::Pending, 0, None)
    );
}

#[test]
fn reset_task_returns_running_tasks_to_pending() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let job = store
        .enqueue_job(&new_job(p, "j", &["plan", "voice:en"]))
        .unwrap();
    let plan = task_id(&store, job, "plan");
    store.task_started(plan, "llm").unwrap();
    store.task_progress(plan, 0.7).unwrap();
    store.reset_task(plan).unwrap();
    let t = task_row(&store, job, "plan");
    assert_eq!(
        (t.status, t.progress, t.error),
        (TaskStatus::Pending, 0.0, None)
    );
    assert_eq!(t.attempts, 1);
    store.reset_task(plan).unwrap();
    store.task_started(plan, "llm").unwrap();
    store
        .task_finished(plan, TaskStatus::Done, Some("k"), None, 1)
        .unwrap();
    let err = store.reset_task(plan).unwrap_err();
    assert!(err.to_string().contains("is done"), "{err}");
    assert_eq!(task_row(&store, job, "plan").status, TaskStatus::Done);
    assert!(matches!(
        store.reset_task(9999),
        Err(StoreError::NotFound { what: "task", .. })
    ));
}

#[test]
fn active_jobs_are_unfinished_jobs_with_scripts() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let mut ids = Vec::new();
    for status in JobStatus::ALL {
        let id = store
            .enqueue_job(&new_job(p, status.as_str(), &["plan"]))
            .unwrap();
        store.set_job_status(id, *status, None).unwrap();
        ids.push(id);
    }
    let active = store.active_jobs().unwrap();
    let got: Vec<(JobId, JobStatus)> = active.iter().map(|j| (j.id, j.status)).collect();
    assert_eq!(
        got,
        [
            (ids[0], JobStatus::Queued),
            (ids[1], JobStatus::Running),
            (ids[2], JobStatus::Paused)
        ]
    );
    assert!(active[1]
        .script
        .as_deref()
        .unwrap()
        .starts_with("# running"));
}

#[test]
fn data_version_changes_only_for_other_connections_commits() {
    let db = TempDb::new("data-version");
    let a = Store::open(&db.path).unwrap();
    let b = Store::open(&db.path).unwrap();
    let v0 = a.data_version().unwrap();
    let p = project(&a);
    a.enqueue_job(&new_job(p, "mine", &["plan"])).unwrap();
    assert_eq!(a.data_version().unwrap(), v0, "own commits do not count");
    assert_eq!(a.data_version().unwrap(), v0, "reading does not change it");

    b.set_queue_paused(true).unwrap();
    let v1 = a.data_version().unwrap();
    assert_ne!(v1, v0, "another connection committed");
    assert_eq!(
        a.data_version().unwrap(),
        v1,
        "stable until the next commit"
    );
    assert!(a.queue_paused().unwrap());
    b.enqueue_job(&new_job(p, "theirs", &["plan"])).unwrap();
    assert_ne!(a.data_version().unwrap(), v1);
}

#[test]
fn job_changes_returns_only_what_changed_since_a_revision() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let ids = store
        .enqueue_jobs(&[
            new_job(p, "a", &["plan", "voice"]),
            new_job(p, "b", &["plan", "voice"]),
            new_job(p, "c", &["plan"]),
        ])
        .unwrap();
    let (rev0, all) = store.job_changes(0).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].1.len(), 2, "tasks come with their job");
    assert_eq!(all[2].1.len(), 1);
    let (same, none) = store.job_changes(rev0).unwrap();
    assert_eq!(same, rev0);
    assert!(none.is_empty(), "nothing changed: nothing reloaded");

    // A task update moves its job; a priority change moves another; a third stays put.
    let voice = task_id(&store, ids[1], "voice");
    store.task_started_on(voice, "espeak", Some(1)).unwrap();
    store.task_progress(voice, 0.5).unwrap();
    store.set_priority(ids[2], 7).unwrap();
    let (rev1, changed) = store.job_changes(rev0).unwrap();
    assert!(rev1 > rev0);
    let got: Vec<JobId> = changed.iter().map(|(j, _)| j.id).collect();
    assert_eq!(got, vec![ids[1], ids[2]]);
    let t = changed[0].1.iter().find(|t| t.id == voice).unwrap();
    assert_eq!(t.device, Some(1));
    assert!((t.progress - 0.5).abs() < 1e-9);
    assert_eq!(changed[1].0.priority, 7);

    // A new job shows up after the last revision too.
    let d = store.enqueue_job(&new_job(p, "d", &["plan"])).unwrap();
    let (_, changed) = store.job_changes(rev1).unwrap();
    assert_eq!(
        changed.iter().map(|(j, _)| j.id).collect::<Vec<_>>(),
        vec![d]
    );
}

#[test]
fn projects_are_listed_newest_first() {
    let store = Store::open_in_memory().unwrap();
    let a = store.upsert_project("a", "/s/a.yaml", "anime").unwrap();
    let b = store.upsert_project("b", "/s/b.yaml", "gaming").unwrap();
    let rows = store.projects().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r.id == a && r.channel == "anime"));
    assert_eq!(
        rows[0].id, b,
        "the newer (or, within a millisecond, higher) one first"
    );
}

#[test]
fn migration_3_gives_existing_jobs_a_revision_and_tasks_no_device() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let ids = store
        .enqueue_jobs(&[new_job(p, "a", &["plan"]), new_job(p, "b", &["plan"])])
        .unwrap();
    let (rev, all) = store.job_changes(0).unwrap();
    assert!(rev >= 2);
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|(_, t)| t[0].device.is_none()));
    // Each job's revision is distinct: a change to one is seen alone.
    store.pause_job(ids[0]).unwrap();
    let (_, changed) = store.job_changes(rev).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0.id, ids[0]);
}

#[test]
fn latest_out_dir_is_the_newest_job_of_the_project() {
    let store = Store::open_in_memory().unwrap();
    let p = project(&store);
    let other = store.upsert_project("o", "/s/o.md", "main").unwrap();
    assert_eq!(store.latest_out_dir(p).unwrap(), None);
    store.enqueue_job(&new_job(p, "first", &["plan"])).unwrap();
    store.enqueue_job(&new_job(p, "second", &["plan"])).unwrap();
    store
        .enqueue_job(&new_job(other, "third", &["plan"]))
        .unwrap();
    assert_eq!(
        store.latest_out_dir(p).unwrap().as_deref(),
        Some("/out/second")
    );
}

// ---- the queue overview's aggregate ----

/// What the overview should say about a job, computed in Rust from its loaded tasks.
fn overview_of(job: &JobRow, tasks: &[TaskRow]) -> JobOverview {
    let running: Vec<RunningStage> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Running)
        .map(|t| RunningStage {
            stage: t.stage.clone(),
            progress: t.progress,
        })
        .collect();
    JobOverview {
        id: job.id,
        status: job.status,
        priority: job.priority,
        out_dir: job.out_dir.clone(),
        script_name: job.script_name.clone(),
        error: job.error.clone(),
        created_ms: job.created_ms,
        started_ms: job.started_ms,
        finished_ms: job.finished_ms,
        cancel_requested: job.cancel_requested,
        tasks: tasks.len(),
        tasks_finished: tasks.iter().filter(|t| t.status.is_terminal()).count(),
        tasks_running: running.len(),
        tasks_failed: tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Failed)
            .count(),
        running,
    }
}

/// A queue with a job in every state and every task status, including a job without tasks
/// and a stage upserted after later jobs' tasks (so task ids are not in job order).
fn mixed_queue(store: &Store) -> Vec<JobId> {
    let p = project(store);
    let stages = ["plan", "voice:en", "voice:de", "assemble:en", "assemble:de"];
    let ids = store
        .enqueue_jobs(&[
            new_job(p, "queued", &stages),
            new_job(p, "running", &stages),
            new_job(p, "failed", &stages),
            new_job(p, "cancelling", &stages),
            new_job(p, "paused", &stages),
            new_job(p, "done", &["plan", "thumbnail"]),
        ])
        .unwrap();
    let (queued, running, failed, cancelling, paused, done) =
        (ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]);
    let (_, empty) = sample_job(store);
    let set = |job, stage, status: TaskStatus, progress: f64, error: Option<&str>| {
        let t = task_id(store, job, stage);
        store.task_started(t, "engine@1").unwrap();
        store.task_progress(t, progress).unwrap();
        if status != TaskStatus::Running {
            store.task_finished(t, status, None, error, 7).unwrap();
        }
    };
    // Running: two stages at once (upserted in a different order than they started), one
    // done, one cached, one pending.
    store
        .set_job_status(running, JobStatus::Running, None)
        .unwrap();
    set(running, "plan", TaskStatus::Done, 1.0, None);
    set(running, "voice:de", TaskStatus::Running, 0.75, None);
    set(running, "voice:en", TaskStatus::Running, 0.25, None);
    set(running, "assemble:en", TaskStatus::Cached, 0.0, None);
    // Failed: a failed stage, the rest skipped or cancelled; a multi-line error.
    set(failed, "plan", TaskStatus::Done, 1.0, None);
    set(
        failed,
        "voice:en",
        TaskStatus::Failed,
        0.5,
        Some("boom\nat line 2"),
    );
    set(failed, "voice:de", TaskStatus::Failed, 0.1, Some("bang"));
    set(failed, "assemble:en", TaskStatus::Skipped, 0.0, None);
    set(failed, "assemble:de", TaskStatus::Cancelled, 0.0, None);
    store
        .set_job_status(
            failed,
            JobStatus::Failed,
            Some("voice:en failed: boom\nat line 2"),
        )
        .unwrap();
    // Running with a cancel asked for, one stage still running.
    store
        .set_job_status(cancelling, JobStatus::Running, None)
        .unwrap();
    set(cancelling, "plan", TaskStatus::Running, 0.5, None);
    store.request_cancel(cancelling).unwrap();
    store.pause_job(paused).unwrap();
    set(done, "plan", TaskStatus::Done, 1.0, None);
    set(done, "thumbnail", TaskStatus::Done, 1.0, None);
    store.set_job_status(done, JobStatus::Done, None).unwrap();
    // A stage added to the first job after every other job's tasks, and running.
    let late = store.upsert_task(queued, "export", "export", None).unwrap();
    store.task_started(late, "engine@1").unwrap();
    store.task_progress(late, 0.5).unwrap();
    store.upsert_task(empty, "late", "plan", None).unwrap();
    vec![queued, running, failed, cancelling, paused, done, empty]
}

#[test]
fn job_overview_aggregates_match_the_loaded_tasks() {
    let store = Store::open_in_memory().unwrap();
    let ids = mixed_queue(&store);
    let all = store.job_summaries(None).unwrap();
    assert_eq!(all.len(), ids.len());
    let expected: Vec<JobOverview> = all.iter().map(|(j, t)| overview_of(j, t)).collect();
    // The queue really is mixed: the aggregates have something to get wrong.
    let running = &expected[1];
    assert_eq!(
        (running.tasks, running.tasks_finished, running.tasks_running),
        (5, 2, 2)
    );
    assert_eq!(running.running[0].stage, "voice:en", "upsert order");
    assert_eq!(
        (expected[2].tasks_failed, expected[2].tasks_finished),
        (2, 5)
    );
    assert!(expected[3].cancel_requested);
    assert_eq!(expected[0].running[0].stage, "export");
    assert_eq!(expected[0].tasks, 6);

    assert_eq!(store.job_overview(None).unwrap(), expected);
    for n in 0..=ids.len() + 1 {
        let newest = store.job_overview(Some(n)).unwrap();
        let want = &expected[expected.len().saturating_sub(n)..];
        assert_eq!(newest, want, "--last {n}");
    }

    // With tasks: each job's own tasks, in order, alongside the same aggregates.
    let mut seen = Vec::new();
    store
        .for_each_job_overview_with_tasks(None, |j, t| {
            seen.push((j.clone(), t.to_vec()));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let want: Vec<(JobOverview, Vec<TaskRow>)> = all
        .iter()
        .map(|(j, t)| (overview_of(j, t), t.clone()))
        .collect();
    assert_eq!(seen, want);
    let mut newest = Vec::new();
    store
        .for_each_job_overview_with_tasks(Some(2), |j, t| {
            newest.push((j.id, t.len()));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(newest, [(ids[5], 2), (ids[6], 1)]);

    // An error from the visitor stops the walk and comes back.
    let mut visited = 0;
    let err = store
        .for_each_job_overview(None, |j| {
            visited += 1;
            if j.id == ids[2] {
                return Err(store.not_found("job", j.id));
            }
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { id, .. } if id == ids[2]));
    assert_eq!(visited, 3);
    assert!(Store::open_in_memory()
        .unwrap()
        .job_overview(None)
        .unwrap()
        .is_empty());
}

#[test]
fn job_overview_groups_tasks_through_the_index_without_sorting() {
    let store = Store::open_in_memory().unwrap();
    let plan = query_plan(&store, &queries::JOB_OVERVIEW_SQL.replace("?1", "0"));
    assert!(plan.contains("SEARCH t USING INDEX tasks_job"), "{plan}");
    // Jobs in rowid order are already grouped and ordered; only the running tasks' list is
    // sorted (`json_group_array(... ORDER BY)`), and it holds a handful of rows.
    assert!(!plan.contains("TEMP B-TREE FOR GROUP BY"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE FOR ORDER BY"), "{plan}");
}

#[test]
fn job_overview_of_10k_jobs_is_fast() {
    let db = TempDb::new("overview");
    let store = Store::open(&db.path).unwrap();
    let p = project(&store);
    store.enqueue_jobs(&bulk_jobs(p, 10_000)).unwrap();
    let best = |f: &dyn Fn(&Store) -> usize| {
        (0..3)
            .map(|_| {
                // A fresh connection each time, like `reelsmith status`.
                let store = Store::open(&db.path).unwrap();
                let started = std::time::Instant::now();
                assert_eq!(f(&store), 10_000);
                started.elapsed()
            })
            .min()
            .unwrap()
    };
    let overview = best(&|s| s.job_overview(None).unwrap().len());
    let summaries = best(&|s| s.job_summaries(None).unwrap().len());
    println!(
        "10,000 jobs x 10 tasks: job_overview {overview:?}, job_summaries {summaries:?} ({:.2}x)",
        overview.as_secs_f64() / summaries.as_secs_f64()
    );
    assert!(overview < Duration::from_secs(1), "took {overview:?}");
}
