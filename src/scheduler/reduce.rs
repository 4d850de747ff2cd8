//! Recording what finished: the one reducer of task results into job state and the store.

use super::*;

impl Scheduler {
    pub(super) fn fail_unstartable(
        &mut self,
        id: JobId,
        i: usize,
        msg: &str,
    ) -> Result<(), SchedError> {
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        let n = &mut l.nodes[i];
        n.state = NodeState::Finished(NodeStatus::Failed);
        let task = n.task;
        let name = n.planned.node.name();
        self.store
            .task_finished(task, TaskStatus::Failed, None, Some(msg), 0)?;
        self.event(
            Some(id),
            Some(task),
            EventLevel::Error,
            &format!("{name}: {msg}"),
        );
        self.skip_dependents(id)?;
        self.maybe_finish_job(id)
    }

    /// Marks pending nodes whose dependencies can no longer finish as skipped.
    pub(super) fn skip_dependents(&mut self, id: JobId) -> Result<(), SchedError> {
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        loop {
            let dead: BTreeSet<String> = l
                .nodes
                .iter()
                .filter(|n| {
                    matches!(
                        n.state,
                        NodeState::Finished(
                            NodeStatus::Failed | NodeStatus::Skipped | NodeStatus::Cancelled
                        )
                    )
                })
                .map(|n| n.planned.node.name())
                .collect();
            let mut changed = false;
            for n in l.nodes.iter_mut() {
                if n.state == NodeState::Pending
                    && n.planned.deps.iter().any(|d| dead.contains(&d.name()))
                {
                    n.state = NodeState::Finished(NodeStatus::Skipped);
                    self.store.task_finished(
                        n.task,
                        TaskStatus::Skipped,
                        None,
                        Some("an earlier stage failed"),
                        0,
                    )?;
                    changed = true;
                }
            }
            if !changed {
                return Ok(());
            }
        }
    }

    /// Records a finished task and what follows from it.
    pub(super) fn reduce(&mut self, (id, i, report, art): TaskResult) -> Result<(), SchedError> {
        let shutting = self.shutdown.is_cancelled();
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        let user_cancel = l.user_cancelled();
        let project = l.spec.project.clone();
        let n = &mut l.nodes[i];
        if let Some(slot) = n.slot.take() {
            self.cpu.release(slot);
            self.ledger.release(slot);
        }
        let task = n.task;
        let ms = (report.seconds * 1000.0) as i64;
        let name = report.node.clone();
        if report.oom {
            let dev = n.device;
            let res = n.resources.clone();
            let free = dev
                .and_then(|d| self.gpus.sample().into_iter().find(|s| s.index == d))
                .map(|s| s.free >> 20)
                .unwrap_or(0);
            let model = res.model.clone().unwrap_or_else(|| "(no model)".into());
            let what = format!(
                "{name} ran out of GPU memory on GPU {} running {model} (estimate {} MiB, {free} MiB free)",
                dev.map(|d| d.to_string()).unwrap_or_else(|| "?".into()),
                res.vram_bytes >> 20
            );
            if n.oom_tries < self.cfg.oom_retries {
                n.oom_tries += 1;
                let wait = Duration::from_secs(1 << (n.oom_tries - 1).min(6));
                n.state = NodeState::Pending;
                n.not_before = Some(Instant::now() + wait);
                let msg = format!(
                    "{what}; freed cached models, retrying in {} s ({}/{})",
                    wait.as_secs(),
                    n.oom_tries,
                    self.cfg.oom_retries
                );
                if let Some(d) = dev {
                    for m in self.ledger.evictable(d, res.vram_bytes) {
                        self.evict_model(d, &m);
                    }
                }
                self.store.reset_task(task)?;
                self.store
                    .add_event(Some(id), Some(task), EventLevel::Warn, &msg)?;
                self.say(format!("job {id} ({project}) {msg}"));
                return Ok(());
            }
            let msg = format!("{what}; gave up after {} retries", self.cfg.oom_retries);
            n.state = NodeState::Finished(NodeStatus::Failed);
            self.store
                .task_finished(task, TaskStatus::Failed, None, Some(&msg), ms)?;
            self.store
                .add_event(Some(id), Some(task), EventLevel::Error, &msg)?;
            let mut r = report;
            r.error = Some(msg.clone());
            l.reports.push(r.clone());
            if let Some(tx) = &self.events {
                let _ = tx.send(runner::RunEvent::Finished(r));
            }
            self.say(format!("job {id} ({project}) FAILED: {msg}"));
            self.skip_dependents(id)?;
            return self.maybe_finish_job(id);
        }
        let line = match report.status {
            NodeStatus::Done => {
                n.state = NodeState::Finished(NodeStatus::Done);
                if let Some(a) = &art {
                    l.artifacts.insert(name.clone(), a.clone());
                }
                self.store
                    .task_finished(task, TaskStatus::Done, Some(&report.key), None, ms)?;
                if let Some(a) = &art {
                    let bytes = crate::pipeline::cache::dir_size(&a.dir).unwrap_or(0);
                    self.store
                        .record_artifact(&report.key, report.kind.as_str(), bytes)?;
                }
                for note in &report.notes {
                    self.store
                        .add_event(Some(id), Some(task), EventLevel::Warn, note)?;
                }
                let items = if report.items.made + report.items.hits > 0 {
                    format!(
                        " [{} made, {} reused]",
                        report.items.made, report.items.hits
                    )
                } else {
                    String::new()
                };
                let msg = format!("{name} done in {:.2} s{items}", report.seconds);
                self.store
                    .add_event(Some(id), Some(task), EventLevel::Info, &msg)?;
                format!("job {id} ({project}) {msg}")
            }
            NodeStatus::Cancelled if shutting && !user_cancel => {
                // Checkpoint: finished stages are in the cache; this one starts over next time.
                n.state = NodeState::Pending;
                self.store.reset_task(task)?;
                format!("job {id} ({project}) {name} checkpointed")
            }
            NodeStatus::Cancelled => {
                n.state = NodeState::Finished(NodeStatus::Cancelled);
                self.store.task_finished(
                    task,
                    TaskStatus::Cancelled,
                    None,
                    Some("cancelled"),
                    ms,
                )?;
                format!("job {id} ({project}) {name} cancelled")
            }
            _ => {
                n.state = NodeState::Finished(NodeStatus::Failed);
                let err = report.error.clone().unwrap_or_else(|| "failed".into());
                self.store
                    .task_finished(task, TaskStatus::Failed, None, Some(&err), ms)?;
                self.store.add_event(
                    Some(id),
                    Some(task),
                    EventLevel::Error,
                    &format!("{name}: {err}"),
                )?;
                format!("job {id} ({project}) {name} FAILED: {err}")
            }
        };
        if let Some(tx) = &self.events {
            let _ = tx.send(runner::RunEvent::Finished(report.clone()));
        }
        l.reports.push(report);
        self.say(line);
        self.skip_dependents(id)?;
        self.maybe_finish_job(id)
    }

    /// Closes a job whose nodes are all finished (or, when stopping, that has nothing running).
    pub(super) fn maybe_finish_job(&mut self, id: JobId) -> Result<(), SchedError> {
        let Some(l) = self.live.get(&id) else {
            return Ok(());
        };
        if l.running() > 0 {
            return Ok(());
        }
        if self.shutdown.is_cancelled() && !l.user_cancelled() {
            // Stopping: the job stays queued and resumes on the next start.
            if l.nodes.iter().any(|n| n.state == NodeState::Pending) {
                if let Some(l) = self.live.remove(&id) {
                    if l.row.status == JobStatus::Running {
                        self.store.set_job_status(id, JobStatus::Queued, None)?;
                    }
                }
                return Ok(());
            }
        }
        if l.user_cancelled() {
            for n in &l.nodes {
                if n.state == NodeState::Pending {
                    self.store.task_finished(
                        n.task,
                        TaskStatus::Cancelled,
                        None,
                        Some("cancelled"),
                        0,
                    )?;
                }
            }
            self.store
                .set_job_status(id, JobStatus::Cancelled, Some("cancelled by the user"))?;
            self.event(Some(id), None, EventLevel::Info, "cancelled");
            self.say(format!("job {id} cancelled"));
            self.live.remove(&id);
            return Ok(());
        }
        if l.nodes.iter().any(|n| n.state == NodeState::Pending) {
            return Ok(());
        }
        let Some(l) = self.live.remove(&id) else {
            return Ok(());
        };
        let failures: Vec<String> = l
            .reports
            .iter()
            .filter(|r| r.status == NodeStatus::Failed)
            .map(|r| format!("{}: {}", r.node, r.error.clone().unwrap_or_default()))
            .collect();
        let failed_nodes = l
            .nodes
            .iter()
            .filter(|n| matches!(n.state, NodeState::Finished(NodeStatus::Failed)))
            .count();
        if failed_nodes > 0 {
            let msg = if failures.is_empty() {
                "a stage failed; see `reelsmith logs`".to_string()
            } else {
                failures.join("\n")
            };
            self.store
                .set_job_status(id, JobStatus::Failed, Some(&msg))?;
            self.say(format!("job {id} ({}) failed", l.spec.project));
            self.stats.jobs_failed += 1;
            return Ok(());
        }
        let summary = RunSummary {
            nodes: l.reports.clone(),
            artifacts: l.artifacts.clone(),
            seconds: l.started.elapsed().as_secs_f64(),
        };
        if self.cfg.only_job == Some(id) {
            self.summary = Some((id, summary.clone()));
        }
        if self.cfg.export {
            let project_dir = std::path::PathBuf::from(&l.row.out_dir);
            if let Err(e) = job::export(&l.spec, &summary, &project_dir) {
                let msg = format!("exporting to {}: {e}", project_dir.display());
                self.store
                    .set_job_status(id, JobStatus::Failed, Some(&msg))?;
                self.say(format!("job {id} failed: {msg}"));
                self.stats.jobs_failed += 1;
                return Ok(());
            }
        }
        self.store.set_job_status(id, JobStatus::Done, None)?;
        self.event(Some(id), None, EventLevel::Info, "done");
        // The script's `publish:` block: its publications are queued (and run by the
        // publication thread); a problem is the job's warning, not its failure.
        if self.cfg.export && self.cfg.publish && l.spec.script.publish.is_some() {
            let dir = std::path::PathBuf::from(&l.row.out_dir);
            match crate::publish::plan::queue_from_script(&self.store, &self.dirs.data, &dir, id) {
                Ok(rows) => {
                    let what = format!("{} publication(s) queued", rows.len());
                    self.event(Some(id), None, EventLevel::Info, &what);
                }
                Err(e) => {
                    let what = format!("publishing not queued: {e}");
                    self.event(Some(id), None, EventLevel::Warn, &what);
                    self.say(format!("job {id}: {what}"));
                }
            }
        }
        self.say(format!(
            "job {id} ({}) done -> {}",
            l.spec.project, l.row.out_dir
        ));
        self.stats.jobs_done += 1;
        Ok(())
    }
}
