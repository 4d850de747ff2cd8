//! Stage workers: stages run in worker processes (the same binary, `reelsmith worker`) that the
//! scheduler starts, feeds and supervises over the worker's stdin and stdout, one JSON message
//! per line. The scheduler, the store and the studio stay in the studio's process, so a stage
//! that segfaults in native code, aborts, runs out of memory or hangs takes down one worker,
//! never the studio or the other jobs; its death is attributed to the task it was running.
//!
//! - One long-lived worker per GPU keeps that device's loaded models; CPU stages run in a pool
//!   of workers, one task at a time each. A dead worker is replaced by the next task's start.
//! - A worker exits with the scheduler: its stdin closes (and Linux sends it SIGKILL through
//!   `PR_SET_PDEATHSIG`), so no orphan holds a GPU after the studio dies.

pub mod death;
pub mod fault;
pub mod pool;
pub mod serve;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pipeline::runner::NodeReport;
use crate::pipeline::{ArtifactRef, JobSpec, Node, StageEvent, StageKind};
use crate::store::{JobId, TaskId};

pub use death::Death;
pub use pool::{Pool, PoolConfig, WorkerId, WorkerSpawn, WorkerTask, WorkerView};

/// Set in a GPU worker's environment: the studio's index of the GPU it serves.
pub const WORKER_GPU_ENV: &str = "REELSMITH_WORKER_GPU";

/// How many jobs' specs a worker keeps. The scheduler sends a job's spec with the first order
/// of that job a worker gets; both sides remember the last `SPECS_KEPT` jobs sent, first in
/// first out, so they always agree on which specs the worker has.
pub const SPECS_KEPT: usize = 16;

/// One task for a worker: everything it needs to run a stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    pub task: TaskId,
    pub job: JobId,
    /// The job's spec, unless this worker was sent it recently (see [`SPECS_KEPT`]).
    pub spec: Option<Box<JobSpec>>,
    pub node: Node,
    pub key: String,
    pub engine: String,
    pub inputs: BTreeMap<StageKind, ArtifactRef>,
    /// The GPU the scheduler placed it on (None: CPU).
    pub device: Option<u32>,
}

/// What the scheduler tells a worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToWorker {
    Run(Box<Order>),
    /// Stop this task cooperatively (it answers `Done` with status cancelled).
    Cancel {
        task: TaskId,
    },
    /// Unload a cached model (the VRAM ledger needs its memory).
    Evict {
        device: Option<u32>,
        model: String,
    },
    /// Finish: exit once idle.
    Exit,
}

/// What a worker tells the scheduler.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromWorker {
    Ready {
        pid: u32,
    },
    Progress {
        task: TaskId,
        fraction: f32,
    },
    Event {
        task: TaskId,
        event: StageEvent,
    },
    Done {
        task: TaskId,
        report: Box<NodeReport>,
        artifact: Option<ArtifactRef>,
        /// The models the worker holds loaded afterwards.
        models: Vec<String>,
    },
}

/// Workers of this executable running the studio's stages, with default hygiene settings.
pub fn default_config(data: &std::path::Path) -> Result<PoolConfig, String> {
    Ok(PoolConfig::new(WorkerSpawn::current_exe(data, "default")?))
}
