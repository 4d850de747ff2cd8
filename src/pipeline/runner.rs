//! Executes a job's stage graph: computes every node's cache key up front (a key depends only on
//! the stage, its parameters, its engine and its inputs' keys), skips nodes whose artifact
//! exists, and runs the rest on blocking threads, independent nodes concurrently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::cache::{self, ArtifactCache};
use super::graph::{Node, StageGraph, StageKind};
use super::{ArtifactRef, ItemStats, JobSpec, Stage, StageCtx, StageError, StageEvent};

/// Bump when a change anywhere alters outputs for the same inputs, to invalidate old caches.
pub const PIPELINE_VERSION: u32 = 1;

/// What the runner reports while it works.
#[derive(Clone, Debug)]
pub enum RunEvent {
    Planned {
        node: String,
        key: String,
        cached: bool,
    },
    Started {
        node: String,
        engine: String,
    },
    Progress {
        node: String,
        fraction: f32,
    },
    Finished(NodeReport),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Done,
    Cached,
    Failed,
    Cancelled,
    Skipped,
}

/// The outcome of one node, for the job's report and the store.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct NodeReport {
    pub node: String,
    pub kind: StageKind,
    pub lang: Option<String>,
    pub status: NodeStatus,
    pub key: String,
    pub engine: String,
    pub seconds: f64,
    pub items: ItemStats,
    pub notes: Vec<String>,
    pub error: Option<String>,
    /// The failure was the GPU running out of memory (worth retrying after freeing memory).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom: bool,
}

/// The result of running a whole graph.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub nodes: Vec<NodeReport>,
    pub artifacts: BTreeMap<String, ArtifactRef>,
    pub seconds: f64,
}

impl RunSummary {
    pub fn failed(&self) -> Vec<&NodeReport> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.status, NodeStatus::Failed | NodeStatus::Cancelled))
            .collect()
    }

    pub fn artifact(&self, kind: StageKind, lang: Option<&str>) -> Option<&ArtifactRef> {
        let node = Node {
            kind,
            lang: lang.map(str::to_string),
        };
        self.artifacts.get(&node.name())
    }
}

/// The registry of stage implementations.
pub type Stages = BTreeMap<StageKind, Arc<dyn Stage>>;

/// A node of a job with everything needed to run it.
#[derive(Clone, Debug)]
pub struct Planned {
    pub node: Node,
    pub deps: Vec<Node>,
    pub key: String,
    pub engine: String,
    /// All ancestors' nodes that this node may read (same language or shared).
    pub inputs: Vec<(StageKind, String)>,
}

/// Computes keys for every node of `graph` expanded over `job.languages`, in topological order.
pub fn plan_nodes(
    job: &JobSpec,
    graph: &StageGraph,
    stages: &Stages,
) -> Result<Vec<Planned>, StageError> {
    let expanded = graph.expand(&job.languages);
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for (node, deps) in expanded {
        let stage = stages.get(&node.kind).ok_or_else(|| {
            StageError::data(
                "pipeline",
                format!("no implementation for stage `{}`", node.kind),
            )
        })?;
        let engine = stage.engine(job);
        let params = stage.params(job, node.lang.as_deref());
        let dep_keys: BTreeMap<String, String> = deps
            .iter()
            .map(|d| (d.name(), keys.get(&d.name()).cloned().unwrap_or_default()))
            .collect();
        let key = cache::key(&serde_json::json!({
            "pipeline": PIPELINE_VERSION,
            "stage": node.kind.as_str(),
            "lang": node.lang,
            "engine": engine,
            "params": params,
            "inputs": dep_keys,
        }));
        keys.insert(node.name(), key.clone());
        let inputs = graph
            .ancestors(node.kind)
            .map(|k| {
                let n = Node {
                    kind: k,
                    lang: if k.per_language() {
                        node.lang.clone()
                    } else {
                        None
                    },
                };
                (k, n.name())
            })
            .collect();
        out.push(Planned {
            node,
            deps,
            key,
            engine,
            inputs,
        });
    }
    Ok(out)
}

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs one node: the stage writes into a temp dir that is committed into the cache on
/// success. Panics are caught and reported as the node's failure. Progress is throttled to
/// about ten reports a second.
#[allow(clippy::too_many_arguments)]
pub fn execute_node(
    job: &JobSpec,
    stage: &dyn Stage,
    node: &Node,
    key: &str,
    engine: &str,
    inputs: &BTreeMap<StageKind, ArtifactRef>,
    cache: &ArtifactCache,
    cancel: &CancellationToken,
    device: Option<u32>,
    progress: &(dyn Fn(f32) + Send + Sync),
    events: &(dyn Fn(StageEvent) + Send + Sync),
) -> (NodeReport, Option<ArtifactRef>) {
    let t0 = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_node(
            job, stage, node, key, inputs, cache, cancel, device, progress, events,
        )
    }));
    let (result, items, notes) = match outcome {
        Ok(r) => r,
        Err(p) => (
            Err(StageError::Engine(format!(
                "the stage crashed ({}); this is a bug in reelsmith, please report it",
                panic_message(p.as_ref())
            ))),
            ItemStats::default(),
            vec![],
        ),
    };
    let oom = matches!(result, Err(StageError::OutOfMemory(_)));
    let (status, dir, error) = match result {
        Ok(dir) => (NodeStatus::Done, Some(dir), None),
        Err(StageError::Cancelled) => (NodeStatus::Cancelled, None, Some("cancelled".to_string())),
        Err(e) => (NodeStatus::Failed, None, Some(e.to_string())),
    };
    let report = NodeReport {
        node: node.name(),
        kind: node.kind,
        lang: node.lang.clone(),
        status,
        key: key.to_string(),
        engine: engine.to_string(),
        seconds: t0.elapsed().as_secs_f64(),
        items,
        notes,
        error,
        oom,
    };
    let art = dir.map(|dir| ArtifactRef {
        key: key.to_string(),
        dir,
    });
    (report, art)
}

#[allow(clippy::too_many_arguments)]
fn run_node(
    job: &JobSpec,
    stage: &dyn Stage,
    node: &Node,
    key: &str,
    inputs: &BTreeMap<StageKind, ArtifactRef>,
    cache: &ArtifactCache,
    cancel: &CancellationToken,
    device: Option<u32>,
    report: &(dyn Fn(f32) + Send + Sync),
    events: &(dyn Fn(StageEvent) + Send + Sync),
) -> (
    Result<std::path::PathBuf, StageError>,
    ItemStats,
    Vec<String>,
) {
    let tmp = match cache.begin(key) {
        Ok(t) => t,
        Err(e) => {
            return (
                Err(StageError::io(cache.root(), e)),
                ItemStats::default(),
                vec![],
            )
        }
    };
    let last = std::sync::Mutex::new(Instant::now() - Duration::from_secs(1));
    let progress = |f: f32| {
        if let Ok(mut l) = last.lock() {
            if l.elapsed() >= Duration::from_millis(100) || f >= 1.0 {
                *l = Instant::now();
                report(f);
            }
        }
    };
    let mut ctx = StageCtx::new(
        job,
        node.lang.as_deref(),
        inputs,
        tmp.path(),
        cancel,
        cache,
        &progress,
    )
    .with_events(events);
    ctx.device = device;
    ctx.key = Some(key);
    let result = stage.run(&ctx);
    let (items, notes) = ctx.into_parts();
    let result = result.and_then(|()| {
        cache
            .commit(tmp, key, node.kind.as_str())
            .map_err(|e| StageError::io(cache.root(), e))
    });
    if result.is_ok() {
        // The artifact is whole: the task's checkpoints have served their purpose.
        let dir = super::checkpoint::dir(&cache.checkpoints_root(), key);
        if let Err(e) = super::checkpoint::clear(&dir) {
            tracing::warn!("removing checkpoints {}: {e}", dir.display());
        }
    }
    (result, items, notes)
}
