//! Projects, jobs, tasks, events and artifacts: their rows round-trip and their errors name what is missing.

use super::*;

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
