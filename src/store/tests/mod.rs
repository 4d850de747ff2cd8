use super::*;

use rusqlite::params;
use std::sync::atomic::{AtomicUsize, Ordering};

mod overview;
mod queue;
mod rows;
mod schema;

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
    task_row(store, job, stage).id
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
