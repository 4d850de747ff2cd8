//! Opening the database: migrations, pragmas, refusing newer schemas, connections and locks.

use super::*;

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
