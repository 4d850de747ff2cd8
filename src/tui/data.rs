//! The studio's side of the store: polls it for changes (cheaply: `PRAGMA data_version`, then
//! only the jobs whose revision moved), loads details on demand, and performs the effects that
//! write it. The scheduler (in this process or another) notices those writes the same way.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::config::{ChannelSet, Dirs};
use crate::pipeline::job::RenderRequest;
use crate::scheduler::{self, LedgerSnapshot, LEDGER_SETTING};
use crate::store::{EventRow, JobId, ProjectId, ProjectRow, Store, StoreError};

use super::action::Action;
use super::state::{JobDetail, PreviewImage, ProjectDetail};
use super::update::{Effect, EnqueueRequest};

/// Log lines kept for a job's detail view.
const LOG_KEEP: usize = 500;
/// Finished model downloads the studio keeps track of (besides every active one).
const PULLS_KEEP: usize = 20;
/// Finished publications the studio shows (besides every active one).
const PUBLICATIONS_KEEP: usize = 50;

pub struct DataSource {
    store: Store,
    dirs: Dirs,
    channels: ChannelSet,
    rev: i64,
    version: Option<i64>,
    projects: Vec<ProjectRow>,
    /// The detail log, loaded incrementally: `(job, lines)`.
    log: Option<(JobId, Vec<EventRow>)>,
    /// Artifact sizes never change: measured once.
    artifact_sizes: HashMap<String, u64>,
    /// The model downloads as last loaded.
    pulls: Vec<crate::store::PullRow>,
    /// The publications as last loaded.
    publications: Option<Vec<crate::store::PublicationRow>>,
    pub registry: crate::hub::Registry,
    pub hub: crate::hub::HubConfig,
}

impl DataSource {
    pub fn open(
        dirs: &Dirs,
        channels: ChannelSet,
        registry: crate::hub::Registry,
    ) -> Result<DataSource, StoreError> {
        let _ = std::fs::create_dir_all(&dirs.data);
        let store = Store::open(&dirs.db_path())?;
        Ok(DataSource {
            store,
            dirs: dirs.clone(),
            channels,
            rev: 0,
            version: None,
            projects: Vec::new(),
            log: None,
            artifact_sizes: HashMap::new(),
            pulls: Vec::new(),
            publications: None,
            registry,
            hub: crate::hub::HubConfig::from_env(|k| std::env::var(k).ok()),
        })
    }

    /// What changed since the last poll (nothing when nothing did).
    pub fn poll(&mut self) -> Result<Vec<Action>, StoreError> {
        let v = self.store.data_version()?;
        if self.version == Some(v) {
            return Ok(Vec::new());
        }
        self.version = Some(v);
        let (rev, changed) = self.store.job_changes(self.rev)?;
        self.rev = rev;
        self.projects = self.store.projects()?;
        let ledger = self
            .store
            .setting(LEDGER_SETTING)?
            .and_then(|s| serde_json::from_str::<LedgerSnapshot>(&s).ok());
        let workers = self
            .store
            .setting(scheduler::WORKERS_SETTING)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let jobs = Action::Jobs {
            changed,
            queue_paused: self.store.queue_paused()?,
            projects: self.projects.clone(),
            ledger,
            workers,
        };
        let mut out = vec![jobs];
        let pulls = self.store.pulls(PULLS_KEEP)?;
        if pulls != self.pulls {
            self.pulls = pulls.clone();
            out.push(Action::Pulls(pulls));
        }
        let publications = self.store.recent_publications(PUBLICATIONS_KEEP)?;
        if self.publications.as_ref() != Some(&publications) {
            self.publications = Some(publications.clone());
            out.push(Action::Publications(publications));
        }
        Ok(out)
    }

    /// Our own writes do not move our `data_version`: look again on the next poll.
    fn touched(&mut self) {
        self.version = None;
    }

    /// Performs a store or load effect and returns what to feed back to the reducer.
    pub fn perform(&mut self, effect: Effect) -> Vec<Action> {
        let done = |r: Result<String, StoreError>| vec![Action::Done(r.map_err(|e| e.to_string()))];
        let out = match effect {
            Effect::PauseJob(id) => done(
                self.store
                    .pause_job(id)
                    .map(|_| format!("job {id} paused: running stages finish, nothing new starts")),
            ),
            Effect::ResumeJob(id) => done(
                self.store
                    .resume_job(id)
                    .map(|_| format!("job {id} resumed")),
            ),
            Effect::CancelJob(id) => done(
                self.store
                    .request_cancel(id)
                    .map(|_| format!("job {id} cancelled")),
            ),
            Effect::RetryJob(id) => done(self.store.retry_job(id).map(|n| {
                format!("job {id} queued again ({n} stage(s) to redo; finished ones are reused)")
            })),
            Effect::SetPriority(id, p) => done(
                self.store
                    .set_priority(id, p)
                    .map(|_| format!("job {id}: priority {p}")),
            ),
            Effect::PauseQueue(p) => done(self.store.set_queue_paused(p).map(|_| {
                if p {
                    "queue paused: running stages finish, nothing new starts".to_string()
                } else {
                    "queue resumed".to_string()
                }
            })),
            Effect::Enqueue(req) => vec![self.enqueue(req)],
            Effect::LoadDetail(id) => match self.detail(id) {
                Ok(Some(d)) => vec![Action::Detail(Box::new(d))],
                Ok(None) => vec![],
                Err(e) => vec![Action::Done(Err(e.to_string()))],
            },
            Effect::LoadProjectDetail(id) => {
                vec![Action::ProjectDetail(Box::new(self.project_detail(id)))]
            }
            Effect::LoadPreview(id) => vec![Action::Preview(id, self.preview(id))],
            Effect::Complete(prefix) => vec![Action::Completions(complete_path(&prefix))],
            Effect::RescanModels => vec![Action::Models(super::catalog::scan(
                &self.hub,
                &self.registry,
            ))],
            Effect::RemoveModel(repo) => match crate::hub::remove(&self.hub, &repo) {
                Ok(n) => vec![
                    Action::Done(Ok(format!("{repo}: removed {}", crate::hub::human(n)))),
                    Action::Models(super::catalog::scan(&self.hub, &self.registry)),
                ],
                Err(e) => vec![Action::Done(Err(format!("{repo}: {e}")))],
            },
            Effect::PullModel(id) => done(self.store.enqueue_pull(&id).map(|(p, new)| {
                if new {
                    format!("{id}: download queued (pull {})", p.id)
                } else {
                    format!("{id} is already {} (pull {})", p.status, p.id)
                }
            })),
            Effect::CancelPull(id) => done(self.store.cancel_pull(id).map(|p| {
                if p.status.is_active() {
                    format!(
                        "{}: stopping the download (its files resume if pulled again)",
                        p.model
                    )
                } else {
                    format!("{}: download {}", p.model, p.status)
                }
            })),
            Effect::RetryPublication(id) => done(self.store.retry_publication(id).map(|ok| {
                if ok {
                    format!(
                        "publication {id} queued again: the scheduler resumes it where the \
                         platform has it"
                    )
                } else {
                    format!("publication {id} is not failed or cancelled")
                }
            })),
            Effect::CancelPublication(id) => {
                use crate::publish::runner::{cancel, CancelResult};
                done(cancel(&self.store, id).map(|r| match r {
                    CancelResult::Now => format!("publication {id} cancelled"),
                    CancelResult::Asked => format!(
                        "publication {id}: stopping at its next chunk or poll (`r` resumes it)"
                    ),
                    CancelResult::Finished => format!("publication {id} had already finished"),
                }))
            }
            Effect::SetMouse(_) | Effect::Quit(_) => vec![],
        };
        self.touched();
        out
    }

    fn enqueue(&mut self, req: EnqueueRequest) -> Action {
        let script = expand_tilde(&req.script);
        let name = script
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let r = RenderRequest {
            script,
            channel: req.channel,
            languages: req.languages,
            out: expand_tilde(&req.out),
            quality: req.quality,
            seed: 1,
        };
        let models = match crate::engines::models::StageModels::resolve(&self.dirs) {
            Ok(m) => m,
            Err(e) => return Action::FormError(e),
        };
        match scheduler::enqueue(&self.store, &self.channels, &r, req.priority, &models) {
            Ok(id) => Action::Queued(id, name),
            Err(e) => Action::FormError(e.to_string()),
        }
    }

    fn detail(&mut self, id: JobId) -> Result<Option<JobDetail>, StoreError> {
        let Some(job) = self.store.job(id)? else {
            return Ok(None);
        };
        let tasks = self.store.tasks(id)?;
        // The log: only what is new since the last load of this job.
        let (mut lines, after) = match self.log.take() {
            Some((j, lines)) if j == id => {
                let after = lines.last().map_or(0, |e| e.id);
                (lines, after)
            }
            _ => (Vec::new(), 0),
        };
        loop {
            let batch = self
                .store
                .events(id, after.max(lines.last().map_or(0, |e| e.id)), 1000)?;
            let n = batch.len();
            lines.extend(batch);
            if lines.len() > LOG_KEEP {
                lines.drain(..lines.len() - LOG_KEEP);
            }
            if n < 1000 {
                break;
            }
        }
        self.log = Some((id, lines.clone()));
        // The stage graph from the job's channel.
        let channel = self
            .projects
            .iter()
            .find(|p| p.id == job.project_id)
            .map(|p| p.channel.clone());
        let mut langs: Vec<String> = tasks.iter().filter_map(|t| t.lang.clone()).collect();
        langs.sort();
        langs.dedup();
        let mut deps = BTreeMap::new();
        if let Some(graph) = channel
            .and_then(|c| self.channels.get(&c).ok())
            .and_then(|c| c.graph().ok())
        {
            for (node, before) in graph.expand(&langs) {
                deps.insert(node.name(), before.iter().map(|n| n.name()).collect());
            }
        }
        let mut artifacts = BTreeMap::new();
        for key in tasks.iter().filter_map(|t| t.artifact_key.clone()) {
            let path = self.dirs.artifacts().join(&key);
            let size = *self
                .artifact_sizes
                .entry(key.clone())
                .or_insert_with(|| crate::hub::tree_size(&path).unwrap_or(0));
            artifacts.insert(key, (path, size));
        }
        Ok(Some(JobDetail {
            job,
            tasks,
            deps,
            artifacts,
            log: lines,
        }))
    }

    fn project_detail(&mut self, id: ProjectId) -> ProjectDetail {
        let project = self.projects.iter().find(|p| p.id == id).cloned();
        let summary = match &project {
            None => Err("no such project".into()),
            Some(p) => script_summary(Path::new(&p.script_path), &self.channels),
        };
        let outputs = self
            .store
            .latest_out_dir(id)
            .ok()
            .flatten()
            .map(|dir| list_outputs(Path::new(&dir)))
            .unwrap_or_default();
        ProjectDetail {
            project: id,
            summary,
            outputs,
        }
    }

    fn preview(&mut self, id: JobId) -> Vec<PreviewImage> {
        let mut out = Vec::new();
        let Ok(tasks) = self.store.tasks(id) else {
            return out;
        };
        for t in tasks.iter().filter(|t| t.kind == "keyframes") {
            let Some(key) = &t.artifact_key else { continue };
            let dir = self.dirs.artifacts().join(key);
            let mut files = pngs(&dir);
            files.sort();
            for f in files {
                let stem = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push(PreviewImage {
                    label: stem.replace('-', " "),
                    path: f,
                });
            }
        }
        if let Ok(Some(job)) = self.store.job(id) {
            let root = PathBuf::from(&job.out_dir);
            let mut langs: Vec<PathBuf> = std::fs::read_dir(&root)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            langs.sort();
            for l in langs {
                let thumb = l.join("thumbnail.png");
                if thumb.is_file() {
                    let lang = l
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    out.push(PreviewImage {
                        label: format!("thumbnail {lang}"),
                        path: thumb,
                    });
                }
            }
        }
        out
    }
}

fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            out.extend(pngs(&p));
        } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")) {
            out.push(p);
        }
    }
    out
}

/// Files under an output folder (two levels: `<lang>/<file>`), relative, sorted.
fn list_outputs(root: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return out;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if let Ok(inner) = std::fs::read_dir(&p) {
                for f in inner.filter_map(|f| f.ok()) {
                    if let Ok(m) = f.metadata() {
                        if m.is_file() {
                            out.push((
                                format!("{name}/{}", f.file_name().to_string_lossy()),
                                m.len(),
                            ));
                        }
                    }
                }
            }
        } else if let Ok(m) = e.metadata() {
            out.push((name, m.len()));
        }
    }
    out.sort();
    out
}

/// Title, scenes, duration, languages … of a script file, or why it cannot be read.
pub fn script_summary(path: &Path, channels: &ChannelSet) -> Result<Vec<(String, String)>, String> {
    let names = channels.names();
    let opts = crate::script::ValidateOptions {
        known_channels: &names,
        channel_override: None,
        languages_override: None,
        machine_translation: true,
    };
    let s = crate::script::load(path, &opts).map_err(|e| e.to_string())?;
    let secs: f64 = s.scenes.iter().filter_map(|sc| sc.duration).sum();
    let lines: usize = s.scenes.iter().map(|sc| sc.lines.len()).sum();
    let title = s
        .title
        .get(&s.language, &s.language)
        .unwrap_or_default()
        .to_string();
    let mut out = vec![
        ("title".to_string(), title),
        (
            "scenes".to_string(),
            format!("{} ({lines} lines)", s.scenes.len()),
        ),
        ("languages".to_string(), s.languages.join(", ")),
    ];
    if secs > 0.0 {
        out.push(("duration".into(), format!("{secs:.0} s planned")));
    }
    if !s.characters.is_empty() {
        out.push((
            "cast".into(),
            s.characters
                .iter()
                .map(|c| c.name.clone().unwrap_or_else(|| c.id.clone()))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    Ok(out)
}

fn expand_tilde(p: &Path) -> PathBuf {
    if let Ok(rest) = p.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    p.to_path_buf()
}

/// Completions of a typed path: entries of its folder that start with its last part —
/// folders (with a trailing `/`) and scripts — keeping what the user typed before them.
pub fn complete_path(typed: &str) -> Vec<String> {
    let (dir_text, stem) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    };
    let dir = if dir_text.is_empty() {
        PathBuf::from(".")
    } else {
        expand_tilde(Path::new(dir_text))
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(stem) || (name.starts_with('.') && !stem.starts_with('.')) {
                return None;
            }
            let p = e.path();
            if p.is_dir() {
                Some(format!("{dir_text}{name}/"))
            } else {
                let ext = p
                    .extension()
                    .map(|x| x.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default();
                crate::watch::SCRIPT_EXTENSIONS
                    .contains(&ext.as_str())
                    .then(|| format!("{dir_text}{name}"))
            }
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_lists_folders_and_scripts_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("scripts")).unwrap();
        std::fs::write(d.path().join("story.yaml"), "x").unwrap();
        std::fs::write(d.path().join("story.mp4"), "x").unwrap();
        std::fs::write(d.path().join("notes.txt"), "x").unwrap();
        std::fs::write(d.path().join(".hidden.yaml"), "x").unwrap();
        let base = format!("{}/", d.path().display());
        let all = complete_path(&base);
        assert_eq!(
            all,
            vec![
                format!("{base}notes.txt"),
                format!("{base}scripts/"),
                format!("{base}story.yaml"),
            ]
        );
        assert_eq!(
            complete_path(&format!("{base}st")),
            vec![format!("{base}story.yaml")]
        );
        assert!(complete_path(&format!("{base}zzz")).is_empty());
        assert!(complete_path("/no/such/dir/x").is_empty());
    }

    #[test]
    fn outputs_are_listed_by_language() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("en")).unwrap();
        std::fs::write(d.path().join("en/final.mp4"), vec![0u8; 10]).unwrap();
        std::fs::write(d.path().join("report.json"), "{}").unwrap();
        assert_eq!(
            list_outputs(d.path()),
            vec![
                ("en/final.mp4".to_string(), 10),
                ("report.json".to_string(), 2)
            ]
        );
    }
}
