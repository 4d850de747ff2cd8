//! What a finished render offers to publish: its project folder (`report.json` and, per
//! language, `final.mp4`, `short.mp4`, captions, `metadata.json`, `thumbnail.png`), found from
//! a job number or a folder, and the checks made before anything is queued (outputs present,
//! a Short that really is one, consent for every real person shown).

use std::path::{Path, PathBuf};

use crate::script::PublishSpec;
use crate::store::Store;

/// A finished render's project folder and what its report says.
#[derive(Clone, Debug)]
pub struct Source {
    pub dir: PathBuf,
    pub job_id: Option<i64>,
    pub languages: Vec<String>,
    /// Characters that depict real people, as consent records name them.
    pub real_people: Vec<String>,
    /// The script's `publish:` block.
    pub spec: Option<PublishSpec>,
}

/// One file to publish in one language.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub lang: String,
    /// `video` (final.mp4) or `short` (short.mp4).
    pub kind: &'static str,
    pub file: PathBuf,
}

fn read_report(dir: &Path) -> Result<serde_json::Value, String> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        format!(
            "{}: no report.json: not the folder of a finished render (give the project's \
             folder, e.g. out/<name>, or a job number)",
            dir.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A job number (`reelsmith status` lists them) or a render's folder (the project folder, or
/// an output folder holding exactly one project).
pub fn resolve(arg: &str, store: Option<&Store>) -> Result<Source, String> {
    let (dir, job_id) = match arg.trim().parse::<i64>() {
        Ok(id) if !Path::new(arg).exists() => {
            let store =
                store.ok_or_else(|| format!("job {id}: the studio's database is not there"))?;
            let job = store
                .job(id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no job {id} (`reelsmith status` lists the jobs)"))?;
            if job.status.as_str() != "done" {
                return Err(format!(
                    "job {id} is {}: it has no outputs to publish until it is done",
                    job.status.as_str()
                ));
            }
            (PathBuf::from(job.out_dir), Some(id))
        }
        _ => {
            let p = PathBuf::from(arg);
            if !p.is_dir() {
                return Err(format!("{arg}: no such folder or job"));
            }
            if p.join("report.json").is_file() {
                (p, None)
            } else {
                let subs: Vec<PathBuf> = std::fs::read_dir(&p)
                    .map_err(|e| format!("{arg}: {e}"))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|d| d.join("report.json").is_file())
                    .collect();
                match subs.as_slice() {
                    [one] => (one.clone(), None),
                    [] => {
                        return Err(format!(
                            "{arg}: no report.json here: not the folder of a finished render"
                        ))
                    }
                    many => {
                        return Err(format!(
                            "{arg} holds {} renders; name one: {}",
                            many.len(),
                            many.iter()
                                .filter_map(|d| d.file_name())
                                .map(|n| n.to_string_lossy().into_owned())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    }
                }
            }
        }
    };
    let report = read_report(&dir)?;
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    Ok(Source {
        languages: strings(&report["languages"]),
        real_people: strings(&report["real_people"]),
        spec: serde_json::from_value(report["publish"].clone()).ok(),
        dir,
        job_id,
    })
}

impl Source {
    /// The files to publish for `langs` (all rendered languages when empty): `final.mp4` and,
    /// with `short`, `short.mp4` — or only the short with `short_only`. Every one must be
    /// there.
    pub fn items(
        &self,
        langs: &[String],
        short: bool,
        short_only: bool,
    ) -> Result<Vec<Item>, String> {
        let langs: Vec<String> = if langs.is_empty() {
            self.languages.clone()
        } else {
            for l in langs {
                if !self.languages.contains(l) {
                    return Err(format!(
                        "--lang {l}: this render has no {l} (it has {})",
                        self.languages.join(", ")
                    ));
                }
            }
            langs.to_vec()
        };
        if langs.is_empty() {
            return Err(format!(
                "{}: the report lists no languages: nothing to publish",
                self.dir.display()
            ));
        }
        let mut out = Vec::new();
        for lang in langs {
            let d = self.dir.join(&lang);
            let mut kinds = Vec::new();
            if !short_only {
                kinds.push(("video", "final.mp4"));
            }
            if short || short_only {
                kinds.push(("short", "short.mp4"));
            }
            for (kind, name) in kinds {
                let file = d.join(name);
                if !file.is_file() {
                    return Err(format!(
                        "{}: missing — this render has no {name} for {lang} to publish",
                        file.display()
                    ));
                }
                out.push(Item {
                    lang: lang.clone(),
                    kind,
                    file,
                });
            }
            for extra in ["metadata.json"] {
                if !d.join(extra).is_file() {
                    return Err(format!(
                        "{}: missing — this render has no {extra} for {lang}",
                        d.join(extra).display()
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Refuses a video that shows a real person with no consent record naming them.
    pub fn check_consent(&self, store: &Store) -> Result<(), String> {
        for person in &self.real_people {
            let found = store.consents_of(person).map_err(|e| e.to_string())?;
            if found.is_empty() {
                return Err(format!(
                    "the character {person:?} depicts a real person and there is no consent \
                     record for them: `reelsmith consent add {person:?} --scope … --date \
                     YYYY-MM-DD --evidence FILE` first"
                ));
            }
        }
        Ok(())
    }
}

/// Refuses a file published as a Short that is not one (YouTube: square or taller, at most
/// three minutes).
pub fn check_short(file: &Path) -> Result<(), String> {
    let info = crate::media::decode::probe(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let v = info
        .video
        .ok_or_else(|| format!("{}: no video stream", file.display()))?;
    if !reelsmith_publish::youtube::is_short(v.width, v.height, info.duration) {
        return Err(format!(
            "{} is {}×{}, {:.0} s: not a Short (a Short is square or taller and at most 3 \
             minutes); publish it without --short",
            file.display(),
            v.width,
            v.height,
            info.duration
        ));
    }
    Ok(())
}
