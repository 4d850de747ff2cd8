//! The queue overview's aggregate (what `status` prints) against the loaded tasks.

use super::*;

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
