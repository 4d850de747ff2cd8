//! Bringing jobs into the window and starting their ready tasks: cache hits at once, the
//! rest on a worker (or a thread) once the CPU budget and the VRAM ledger admit them.

use super::*;

impl Scheduler {
    pub(super) fn score(&self, row: &JobRow) -> i64 {
        policy::score(
            row.priority,
            row.queued_ms.unwrap_or(row.created_ms),
            self.cfg.aging.as_millis() as i64,
        )
    }

    /// Brings the best waiting jobs into the window, planning their tasks.
    pub(super) fn fill_window(&mut self) -> Result<(), SchedError> {
        if self.queue_paused {
            return Ok(());
        }
        // Paused live jobs with nothing running make room.
        let idle_paused: Vec<JobId> = self
            .live
            .iter()
            .filter(|(_, l)| l.row.status == JobStatus::Paused && l.running() == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in idle_paused {
            if let Some(l) = self.live.remove(&id) {
                self.queue.insert(id, l.row);
            }
        }
        while self.live.len() < self.cfg.window {
            let best = self
                .queue
                .values()
                .filter(|r| r.status != JobStatus::Paused && !r.cancel_requested)
                .max_by(|a, b| self.score(a).cmp(&self.score(b)).then(b.id.cmp(&a.id)))
                .map(|r| r.id);
            let Some(id) = best else {
                break;
            };
            let Some(row) = self.queue.remove(&id) else {
                break;
            };
            self.load_job(row)?;
        }
        Ok(())
    }

    pub(super) fn load_job(&mut self, row: JobRow) -> Result<(), SchedError> {
        let id = row.id;
        let prepared = self.prepare(&row);
        let (spec, planned) = match prepared {
            Ok(v) => v,
            Err(msg) => {
                self.store
                    .set_job_status(id, JobStatus::Failed, Some(&msg))?;
                self.event(Some(id), None, EventLevel::Error, &msg);
                self.say(format!("job {id}: failed: {msg}"));
                self.stats.jobs_failed += 1;
                return Ok(());
            }
        };
        let mut nodes = Vec::with_capacity(planned.len());
        for p in planned {
            let task = self.store.upsert_task(
                id,
                &p.node.name(),
                p.node.kind.as_str(),
                p.node.lang.as_deref(),
            )?;
            nodes.push(LiveNode {
                planned: p,
                task,
                state: NodeState::Pending,
                slot: None,
                device: None,
                resources: Default::default(),
                oom_tries: 0,
                not_before: None,
            });
        }
        let cancel = self.shutdown.child_token();
        if row.cancel_requested {
            cancel.cancel();
        }
        self.live.insert(
            id,
            LiveJob {
                row,
                spec,
                nodes,
                artifacts: BTreeMap::new(),
                reports: Vec::new(),
                cancel,
                started: Instant::now(),
            },
        );
        Ok(())
    }

    pub(super) fn prepare(&self, row: &JobRow) -> Result<(Arc<JobSpec>, Vec<Planned>), String> {
        let params: JobParams = serde_json::from_value(row.params.clone()).map_err(|e| {
            format!(
                "job {}: unreadable parameters ({e}); re-add the script",
                row.id
            )
        })?;
        let text = row
            .script
            .clone()
            .ok_or_else(|| format!("job {} has no script snapshot; re-add the script", row.id))?;
        let script_name = row
            .script_name
            .clone()
            .unwrap_or_else(|| "script.yaml".into());
        let req = RenderRequest {
            script: script_name.into(),
            channel: params.channel,
            languages: params.languages,
            out: row.out_dir.clone().into(),
            quality: params.quality,
            seed: params.seed,
        };
        let models = StageModels::resolve(&self.dirs)?;
        let spec =
            job::prepare_text(&req, &text, &self.channels, &models).map_err(|e| e.to_string())?;
        let graph = spec
            .channel
            .graph()
            .map_err(|e| format!("channel {}: {e}", spec.channel.name))?;
        let planned = runner::plan_nodes(&spec, &graph, &self.stages).map_err(|e| e.to_string())?;
        Ok((Arc::new(spec), planned))
    }

    /// Starts every ready task that fits, best job first; cache hits finish at once.
    pub(super) fn launch(&mut self) -> Result<(), SchedError> {
        if self.queue_paused {
            return Ok(());
        }
        // Cache hits first (they unlock more nodes), until none are left.
        loop {
            let mut hits = Vec::new();
            for (id, l) in &self.live {
                if l.row.status == JobStatus::Paused || l.user_cancelled() {
                    continue;
                }
                for (i, n) in l.nodes.iter().enumerate() {
                    if n.state == NodeState::Pending && self.deps_done(l, i) {
                        if let Some(dir) = self.cache.get(&n.planned.key) {
                            hits.push((*id, i, dir));
                        }
                    }
                }
            }
            if hits.is_empty() {
                break;
            }
            for (id, i, dir) in hits {
                self.finish_cached(id, i, dir)?;
            }
        }
        let mut order: Vec<(i64, JobId)> = self
            .live
            .iter()
            .filter(|(_, l)| l.row.status != JobStatus::Paused && !l.user_cancelled())
            .map(|(id, l)| (self.score(&l.row), *id))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, id) in order {
            let now = Instant::now();
            let ready: Vec<usize> = match self.live.get(&id) {
                Some(l) => (0..l.nodes.len())
                    .filter(|&i| {
                        let n = &l.nodes[i];
                        n.state == NodeState::Pending
                            && n.not_before.is_none_or(|t| t <= now)
                            && self.deps_done(l, i)
                    })
                    .collect(),
                None => continue,
            };
            for i in ready {
                if !self.try_start(id, i)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    pub(super) fn deps_done(&self, l: &LiveJob, i: usize) -> bool {
        l.nodes[i].planned.deps.iter().all(|d| {
            let name = d.name();
            l.nodes.iter().any(|n| {
                n.planned.node.name() == name
                    && matches!(
                        n.state,
                        NodeState::Finished(NodeStatus::Done | NodeStatus::Cached)
                    )
            })
        })
    }

    pub(super) fn finish_cached(
        &mut self,
        id: JobId,
        i: usize,
        dir: std::path::PathBuf,
    ) -> Result<(), SchedError> {
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(());
        };
        let n = &mut l.nodes[i];
        n.state = NodeState::Finished(NodeStatus::Cached);
        let name = n.planned.node.name();
        let report = NodeReport {
            node: name.clone(),
            kind: n.planned.node.kind,
            lang: n.planned.node.lang.clone(),
            status: NodeStatus::Cached,
            key: n.planned.key.clone(),
            engine: n.planned.engine.clone(),
            seconds: 0.0,
            items: Default::default(),
            notes: vec![],
            error: None,
            oom: false,
        };
        let task = n.task;
        l.artifacts.insert(
            name,
            ArtifactRef {
                key: report.key.clone(),
                dir,
            },
        );
        l.reports.push(report.clone());
        self.store
            .task_finished(task, TaskStatus::Cached, Some(&report.key), None, 0)?;
        self.emit(runner::RunEvent::Finished(report));
        self.stats.tasks_cached += 1;
        self.maybe_finish_job(id)
    }

    /// Starts node `i` of job `id` if resources allow; false when the CPU side is full.
    pub(super) fn try_start(&mut self, id: JobId, i: usize) -> Result<bool, SchedError> {
        let Some(l) = self.live.get(&id) else {
            return Ok(true);
        };
        let kind = l.nodes[i].planned.node.kind;
        let Some(stage) = self.stages.get(&kind).cloned() else {
            return Ok(true);
        };
        let res = stage.resources(&l.spec);
        let slot = self.next_slot;
        if !self
            .cpu
            .try_acquire(slot, res.cpu_slots.max(1), res.ram_bytes)
        {
            return Ok(false);
        }
        let mut device = None;
        if res.vram_bytes > 0 {
            let mut admission = self
                .ledger
                .try_admit(slot, res.vram_bytes, res.model.as_deref());
            if let Admission::AfterEvicting { device, models } = &admission {
                // Idle models make room: drop them from the ledger (the loaded-model cache
                // frees them) and ask again.
                for m in models.clone() {
                    self.evict_model(*device, &m);
                }
                admission = self
                    .ledger
                    .try_admit(slot, res.vram_bytes, res.model.as_deref());
            }
            match admission {
                Admission::Admitted(r) => device = Some(r.device),
                Admission::CpuOnly => {}
                Admission::Never { reason } => {
                    self.cpu.release(slot);
                    let msg = format!("needs {} MiB of GPU memory: {reason}", res.vram_bytes >> 20);
                    self.fail_unstartable(id, i, &msg)?;
                    return Ok(true);
                }
                Admission::AfterEvicting { .. } | Admission::Wait { .. } => {
                    self.cpu.release(slot);
                    return Ok(true);
                }
            }
        }
        self.next_slot += 1;
        let Some(l) = self.live.get_mut(&id) else {
            return Ok(true);
        };
        let n = &mut l.nodes[i];
        n.state = NodeState::Running;
        n.slot = Some(slot);
        n.device = device;
        n.resources = res.clone();
        let planned = n.planned.clone();
        let task = n.task;
        let inputs: BTreeMap<_, _> = planned
            .inputs
            .iter()
            .filter_map(|(k, name)| l.artifacts.get(name).map(|a| (*k, a.clone())))
            .collect();
        let spec = l.spec.clone();
        let cancel = l.cancel.clone();
        let first = l.row.status == JobStatus::Queued;
        if first {
            l.row.status = JobStatus::Running;
        }
        self.store.task_started_on(task, &planned.engine, device)?;
        if first {
            self.store.set_job_status(id, JobStatus::Running, None)?;
        }
        self.stats.tasks_run += 1;
        self.emit(runner::RunEvent::Started {
            node: planned.node.name(),
            engine: planned.engine.clone(),
        });
        let name = planned.node.name();
        let worker = match self.pool.as_mut() {
            None => {
                let (cache, tx) = (self.cache.clone(), self.tx.clone());
                tokio::task::spawn_blocking(move || {
                    let progress = |fraction: f32| {
                        let _ = tx.send(PoolMsg::From(
                            IN_PROCESS,
                            FromWorker::Progress { task, fraction },
                        ));
                    };
                    let events = |event: crate::pipeline::StageEvent| {
                        let _ =
                            tx.send(PoolMsg::From(IN_PROCESS, FromWorker::Event { task, event }));
                    };
                    let (report, artifact) = runner::execute_node(
                        &spec,
                        stage.as_ref(),
                        &planned.node,
                        &planned.key,
                        &planned.engine,
                        &inputs,
                        &cache,
                        &cancel,
                        device,
                        &progress,
                        &events,
                    );
                    let _ = tx.send(PoolMsg::From(
                        IN_PROCESS,
                        FromWorker::Done {
                            task,
                            report: Box::new(report),
                            artifact,
                            models: Vec::new(),
                        },
                    ));
                });
                IN_PROCESS
            }
            Some(pool) => {
                let order = worker::Order {
                    task,
                    job: id,
                    spec: Some(Box::new((*spec).clone())),
                    node: planned.node.clone(),
                    key: planned.key.clone(),
                    engine: planned.engine.clone(),
                    inputs,
                    device,
                };
                match pool.assign(device, task) {
                    Ok(w) => {
                        if let Err(e) = pool.run(w, order) {
                            // The worker is on its way out: its exit puts the task back.
                            tracing::warn!("{name}: {e}");
                            pool.kill(w);
                        }
                        w
                    }
                    Err(e) => {
                        let report = self.synthetic_report(id, i, NodeStatus::Failed, Some(e));
                        return self.reduce((id, i, report, None)).map(|()| true);
                    }
                }
            }
        };
        self.running.insert(task, Running::new(id, i, name, worker));
        Ok(true)
    }
}
