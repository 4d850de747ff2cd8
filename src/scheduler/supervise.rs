//! Supervising running tasks: messages from the workers, their deaths and what they mean
//! for the task they ran (crash, cancel, resume), cancels that are not answered, tasks that
//! stopped moving, and the worker list published for `status`.

use super::*;

/// The in-process executor's pseudo worker id.
pub(super) const IN_PROCESS: WorkerId = 0;

/// A task running on a worker (or a thread of this process).
pub(super) struct Running {
    job: JobId,
    node: usize,
    name: String,
    worker: WorkerId,
    fraction: f32,
    /// When its progress last moved (or a checkpoint was saved).
    moved: Instant,
    stalled: bool,
    /// Checkpoints saved in this attempt (a crash after one is not a crash loop).
    checkpoints: u32,
    cancel_sent: Option<Instant>,
    kill_sent: bool,
}

impl Running {
    pub(super) fn new(job: JobId, node: usize, name: String, worker: WorkerId) -> Self {
        Self {
            job,
            node,
            name,
            worker,
            fraction: 0.0,
            moved: Instant::now(),
            stalled: false,
            checkpoints: 0,
            cancel_sent: None,
            kill_sent: false,
        }
    }
}

/// "10 min", "45 s".
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{} s", s.max(1))
    }
}

impl Scheduler {
    /// A report for node `i` of job `id` that no stage wrote (a worker that died or could not
    /// start).
    pub(super) fn synthetic_report(
        &self,
        id: JobId,
        i: usize,
        status: NodeStatus,
        error: Option<String>,
    ) -> NodeReport {
        let (node, key, engine) = match self.live.get(&id) {
            Some(l) => {
                let p = &l.nodes[i].planned;
                (p.node.clone(), p.key.clone(), p.engine.clone())
            }
            None => (
                crate::pipeline::Node {
                    kind: crate::pipeline::StageKind::Plan,
                    lang: None,
                },
                String::new(),
                String::new(),
            ),
        };
        NodeReport {
            node: node.name(),
            kind: node.kind,
            lang: node.lang,
            status,
            key,
            engine,
            seconds: 0.0,
            items: Default::default(),
            notes: vec![],
            error,
            oom: false,
        }
    }

    /// Unloads `model` from GPU `device`: from the ledger, and from whoever holds it (the
    /// device's worker, or this process).
    pub(super) fn evict_model(&mut self, device: u32, model: &str) {
        self.ledger.evict(device, model);
        match self.pool.as_mut() {
            Some(pool) => {
                if let Some(w) = pool.of_device(device) {
                    let msg = ToWorker::Evict {
                        device: Some(device),
                        model: model.to_string(),
                    };
                    if let Err(e) = pool.send(w, &msg) {
                        tracing::warn!("evicting {model}: {e}");
                    }
                }
            }
            None => {
                crate::engines::loaded::evict(Some(device), model);
            }
        }
    }

    /// Handles one message from a worker (or an in-process stage thread).
    pub(super) fn on_message(&mut self, msg: PoolMsg) -> Result<(), SchedError> {
        match msg {
            PoolMsg::From(_, FromWorker::Ready { pid }) => {
                tracing::debug!("stage worker {pid} ready");
                Ok(())
            }
            PoolMsg::From(_, FromWorker::Progress { task, fraction }) => {
                let Some(r) = self.running.get_mut(&task) else {
                    return Ok(());
                };
                if fraction > r.fraction {
                    r.moved = Instant::now();
                }
                r.fraction = fraction;
                let (job, name, was_stalled) = (r.job, r.name.clone(), r.stalled);
                if was_stalled && r.moved.elapsed() < Duration::from_secs(1) {
                    r.stalled = false;
                    let msg = format!("{name} is moving again");
                    self.event(Some(job), Some(task), EventLevel::Info, &msg);
                }
                if let Ok(mut p) = self.progress.lock() {
                    p.insert(task, fraction);
                }
                self.emit(runner::RunEvent::Progress {
                    node: name,
                    fraction,
                });
                Ok(())
            }
            PoolMsg::From(_, FromWorker::Event { task, event }) => {
                let Some(r) = self.running.get_mut(&task) else {
                    return Ok(());
                };
                r.moved = Instant::now();
                r.stalled = false;
                let (job, name) = (r.job, r.name.clone());
                let msg = match event {
                    crate::pipeline::StageEvent::Checkpoint(label) => {
                        r.checkpoints += 1;
                        tracing::info!("job {job} {name}: checkpoint {label}");
                        format!("{name}: checkpoint saved ({label})")
                    }
                    crate::pipeline::StageEvent::Resumed(label) => {
                        let m = format!("{name}: resumed from the checkpoint at {label}");
                        self.say(format!("job {job} {m}"));
                        m
                    }
                };
                self.event(Some(job), Some(task), EventLevel::Info, &msg);
                Ok(())
            }
            PoolMsg::From(
                w,
                FromWorker::Done {
                    task,
                    report,
                    artifact,
                    models,
                },
            ) => {
                let Some(r) = self.running.remove(&task) else {
                    return Ok(());
                };
                if w != IN_PROCESS {
                    if let Some(why) = self.pool.as_mut().and_then(|p| p.finished(w, task, models))
                    {
                        self.say(why);
                    }
                }
                self.reduce((r.job, r.node, *report, artifact))
            }
            PoolMsg::Exited(w, death) => self.worker_exited(w, death),
        }
    }

    /// A worker is gone: GPU memory it held is free again, and what it was running is put
    /// back, cancelled or counted as a crash.
    pub(super) fn worker_exited(&mut self, w: WorkerId, death: Death) -> Result<(), SchedError> {
        let Some(gone) = self.pool.as_mut().and_then(|p| p.exited(w)) else {
            return Ok(());
        };
        if let Some(d) = gone.device {
            let loaded: Vec<String> = self
                .ledger
                .snapshot()
                .into_iter()
                .filter(|dl| dl.index == d)
                .flat_map(|dl| dl.loaded.into_iter().map(|m| m.model))
                .collect();
            for m in loaded {
                self.ledger.evict(d, &m);
            }
        }
        if gone.running.is_empty() {
            if !death.clean() && !gone.retiring && !self.shutdown.is_cancelled() {
                let what = death.describe("nothing");
                self.say(format!("stage worker {} ended: {what}", gone.pid));
            }
            return Ok(());
        }
        for task in gone.running {
            self.task_died(task, &death, gone.pid)?;
        }
        Ok(())
    }

    pub(super) fn task_died(
        &mut self,
        task: TaskId,
        death: &Death,
        pid: u32,
    ) -> Result<(), SchedError> {
        let Some(r) = self.running.remove(&task) else {
            return Ok(());
        };
        let Some(l) = self.live.get(&r.job) else {
            return Ok(());
        };
        let (job, i, name) = (r.job, r.node, r.name.clone());
        if l.user_cancelled() {
            let report =
                self.synthetic_report(job, i, NodeStatus::Cancelled, Some("cancelled".into()));
            if r.kill_sent {
                let msg = format!("{name} did not answer the cancel; its worker {pid} was stopped");
                self.event(Some(job), Some(task), EventLevel::Warn, &msg);
            }
            return self.reduce((job, i, report, None));
        }
        if self.shutdown.is_cancelled() {
            // Checkpointed: it resumes on the next start.
            let report =
                self.synthetic_report(job, i, NodeStatus::Cancelled, Some("cancelled".into()));
            return self.reduce((job, i, report, None));
        }
        if death.killed_by_us {
            // Stopped for another task's sake (a shared GPU worker): not its fault.
            let msg = format!("{name}: its worker {pid} was stopped; starting it again");
            self.requeue(job, i, Duration::ZERO, &msg)?;
            return Ok(());
        }
        let cause = death.describe(&name);
        let counted = r.checkpoints == 0;
        let limit = self.cfg.crash_limit;
        let (crashes, failed) = self.store.task_crashed(task, &cause, counted, limit)?;
        if failed {
            let msg = format!(
                "{cause}; it crashed {crashes} times in a row without progress \
                 (limit {limit}); fix or remove it, then `reelsmith retry {job}`"
            );
            let report = self.synthetic_report(job, i, NodeStatus::Failed, Some(msg));
            return self.reduce((job, i, report, None));
        }
        let msg = if counted {
            format!("{cause}; starting it again (crash {crashes} of {limit} without progress)")
        } else {
            format!(
                "{cause}; it had saved {} checkpoint(s), so this is not a crash loop: resuming from the last",
                r.checkpoints
            )
        };
        self.requeue(job, i, Duration::from_secs(1), &msg)
    }

    /// Puts node `i` of job `id` back to pending (resources released), not before `after`.
    pub(super) fn requeue(
        &mut self,
        id: JobId,
        i: usize,
        after: Duration,
        msg: &str,
    ) -> Result<(), SchedError> {
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        let project = l.spec.project.clone();
        let n = &mut l.nodes[i];
        if let Some(slot) = n.slot.take() {
            self.cpu.release(slot);
            self.ledger.release(slot);
        }
        n.state = NodeState::Pending;
        n.not_before = Some(Instant::now() + after);
        let task = n.task;
        self.store.reset_task(task)?;
        self.store
            .add_event(Some(id), Some(task), EventLevel::Warn, msg)?;
        self.say(format!("job {id} ({project}) {msg}"));
        Ok(())
    }

    /// Sends cancels to workers whose task's job was cancelled, stops the workers that do not
    /// answer in time, and reports tasks whose progress stopped moving.
    pub(super) fn supervise(&mut self) -> Result<(), SchedError> {
        let now = Instant::now();
        let mut stalled = Vec::new();
        let mut to_cancel = Vec::new();
        let mut to_kill = Vec::new();
        for (task, r) in self.running.iter_mut() {
            let cancelled = self
                .live
                .get(&r.job)
                .is_some_and(|l| l.cancel.is_cancelled());
            if cancelled && r.worker != IN_PROCESS {
                match r.cancel_sent {
                    None => {
                        r.cancel_sent = Some(now);
                        to_cancel.push((*task, r.worker));
                    }
                    Some(t) if !r.kill_sent && now.duration_since(t) >= self.cfg.kill_grace => {
                        r.kill_sent = true;
                        to_kill.push((r.job, r.name.clone(), r.worker));
                    }
                    _ => {}
                }
            }
            if !r.stalled && now.duration_since(r.moved) >= self.cfg.stall_after {
                r.stalled = true;
                stalled.push((*task, r.job, r.name.clone(), r.worker));
            }
        }
        if let Some(pool) = self.pool.as_mut() {
            for (task, w) in to_cancel {
                if let Err(e) = pool.send(w, &ToWorker::Cancel { task }) {
                    tracing::warn!("cancelling task {task}: {e}");
                }
            }
        }
        for (job, name, w) in to_kill {
            let pid = self.pool.as_ref().and_then(|p| p.pid(w)).unwrap_or(0);
            self.say(format!(
                "job {job} {name} did not answer the cancel within {:.0} s: stopping its worker {pid}",
                self.cfg.kill_grace.as_secs_f64()
            ));
            if let Some(pool) = self.pool.as_mut() {
                pool.kill(w);
            }
        }
        for (task, job, name, w) in stalled {
            let pid = self.pool.as_ref().and_then(|p| p.pid(w));
            let on = pid.map(|p| format!(" (worker {p})")).unwrap_or_default();
            let msg = format!(
                "{name} has made no progress for {}{on}; `reelsmith cancel {job}` (or c in the studio) stops it",
                human_duration(self.cfg.stall_after)
            );
            self.event(Some(job), Some(task), EventLevel::Warn, &msg);
            self.say(format!("job {job} {msg}"));
        }
        Ok(())
    }

    /// Writes the worker list to the store when it changed (or every 10 s, for memory
    /// figures); `stopping` publishes an empty list.
    pub(super) fn publish_workers(&mut self, stopping: bool) {
        let Some(pool) = self.pool.as_ref() else {
            return;
        };
        let views = if stopping {
            Vec::new()
        } else {
            pool.views(|task| match self.running.get(&task) {
                Some(r) => worker::WorkerTask {
                    job: r.job,
                    task,
                    stage: r.name.clone(),
                    progress: (r.fraction * 100.0).round() / 100.0,
                    stalled: r.stalled,
                },
                None => worker::WorkerTask {
                    job: 0,
                    task,
                    stage: String::new(),
                    progress: 0.0,
                    stalled: false,
                },
            })
        };
        let identity: Vec<_> = views
            .iter()
            .map(|v| (v.pid, &v.tasks, &v.models, v.tasks_done))
            .collect();
        let Ok(identity) = serde_json::to_string(&identity) else {
            return;
        };
        if let Some((last, at)) = &self.published_workers {
            if *last == identity && at.elapsed() < Duration::from_secs(10) {
                return;
            }
        }
        let Ok(json) = serde_json::to_string(&views) else {
            return;
        };
        match self.store.set_setting(WORKERS_SETTING, &json) {
            Ok(()) => self.published_workers = Some((identity, Instant::now())),
            Err(e) => tracing::warn!("publishing the workers: {e}"),
        }
    }
}
