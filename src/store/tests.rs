use super::*;

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
