//! Queueing render jobs: the parameters a job is stored with and its task rows.

use super::*;

/// The parameters a job was queued with (stored as the job's `params`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct JobParams {
    pub channel: Option<String>,
    pub languages: Option<Vec<String>>,
    pub quality: Quality,
    pub seed: u64,
}

impl JobParams {
    /// The parameters of `req`.
    pub fn of(req: &RenderRequest) -> Self {
        Self {
            channel: req.channel.clone(),
            languages: req.languages.clone(),
            quality: req.quality,
            seed: req.seed,
        }
    }

    /// As stored in the job row.
    pub fn to_value(&self) -> Result<serde_json::Value, job::JobError> {
        serde_json::to_value(self).map_err(|e| job::JobError::Failed(e.to_string()))
    }
}

/// The task rows a job of `graph` over `languages` starts with (all pending).
pub fn new_tasks(
    graph: &crate::pipeline::StageGraph,
    languages: &[String],
) -> Vec<crate::store::NewTask> {
    graph
        .expand(languages)
        .into_iter()
        .map(|(n, _)| crate::store::NewTask {
            stage: n.name(),
            kind: n.kind.as_str().to_string(),
            lang: n.lang.clone(),
        })
        .collect()
}

/// Validates a script and queues a render job for it (the script's text is kept in the store,
/// so the job never depends on the file). Returns the job id.
pub fn enqueue(
    store: &Store,
    channels: &ChannelSet,
    req: &RenderRequest,
    priority: i64,
    models: &StageModels,
) -> Result<JobId, job::JobError> {
    let text =
        crate::script::read_text(&req.script).map_err(|e| job::JobError::Input(e.to_string()))?;
    let spec = job::prepare_text(req, &text, channels, models)?;
    enqueue_prepared(store, req, text, &spec, priority)
}

/// Queues a job for `spec`, prepared from `text` (the script's content) for `req`.
pub fn enqueue_prepared(
    store: &Store,
    req: &RenderRequest,
    text: String,
    spec: &JobSpec,
    priority: i64,
) -> Result<JobId, job::JobError> {
    let graph = spec
        .channel
        .graph()
        .map_err(|e| job::JobError::Input(format!("channel {}: {e}", spec.channel.name)))?;
    let script_path = std::fs::canonicalize(&req.script).unwrap_or_else(|_| req.script.clone());
    let fail = |e: StoreError| job::JobError::Failed(e.to_string());
    let project = store
        .upsert_project(
            &spec.project,
            &script_path.to_string_lossy(),
            &spec.channel.name,
        )
        .map_err(fail)?;
    let tasks = new_tasks(&graph, &spec.languages);
    let new = crate::store::NewJob {
        project,
        kind: "render".into(),
        params: JobParams::of(req).to_value()?,
        out_dir: req.out.join(&spec.project).to_string_lossy().into_owned(),
        priority,
        script: text,
        script_name: script_path.to_string_lossy().into_owned(),
        tasks,
    };
    store.enqueue_job(&new).map_err(fail)
}
