//! `reelsmith consent add|list|rm`: the consent records of real people shown in videos.
//!
//! A script marks a character that depicts a real person (`real_person: true`); publishing a
//! video that shows one is refused until a consent record names them (the character's `name`,
//! else its id, case aside): who, what they agreed to, when, and the evidence (a signed release,
//! a recording), whose SHA-256 is kept so a swapped file shows.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};

use super::Fail;
use crate::config::Dirs;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct ConsentArgs {
    #[command(subcommand)]
    pub cmd: ConsentCmd,
}

#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// Record a person's consent.
    Add {
        /// The person, as the script's character names them.
        person: String,
        /// What they agreed to (e.g. "youtube, tiktok: likeness and voice").
        #[arg(long)]
        scope: String,
        /// The day they agreed, YYYY-MM-DD (not in the future).
        #[arg(long)]
        date: String,
        /// The evidence: a signed release, a recording.
        #[arg(long)]
        evidence: PathBuf,
    },
    /// List the consent records.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a consent record by its number.
    Rm { id: i64 },
}

pub fn run(args: ConsentArgs, dirs: &Dirs) -> i32 {
    Fail::exit_code(consent(args, dirs))
}

/// `YYYY-MM-DD` → days since 1970-01-01, checked.
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let p: Vec<&str> = s.trim().split('-').collect();
    let [y, m, d] = p.as_slice() else {
        return None;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let ms = reelsmith_publish::time::parse_rfc3339_ms(&format!("{y}-{m}-{d}T00:00:00Z"))?;
    Some(ms.div_euclid(86_400_000))
}

fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

fn open(dirs: &Dirs) -> Result<Store, Fail> {
    if let Some(p) = dirs.db_path().parent() {
        std::fs::create_dir_all(p).map_err(|e| Fail::Failed(format!("{}: {e}", p.display())))?;
    }
    Store::open(&dirs.db_path()).map_err(|e| Fail::Failed(e.to_string()))
}

fn consent(args: ConsentArgs, dirs: &Dirs) -> Result<(), Fail> {
    match args.cmd {
        ConsentCmd::Add {
            person,
            scope,
            date,
            evidence,
        } => {
            if person.trim().is_empty() {
                return Err(Fail::Input("the person's name is empty".into()));
            }
            if scope.trim().is_empty() {
                return Err(Fail::Input(
                    "--scope is empty: say what they agreed to (e.g. \"youtube: likeness\")".into(),
                ));
            }
            let day = parse_date(&date).ok_or_else(|| {
                Fail::Input(format!("--date {date}: write the day as YYYY-MM-DD"))
            })?;
            let today = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64 / 86_400)
                .unwrap_or(0);
            // Today somewhere: the date is the signer's, and UTC+14 is a day ahead of UTC.
            if day > today + 1 {
                return Err(Fail::Input(format!(
                    "--date {date} is in the future: consent is recorded once given"
                )));
            }
            if !evidence.is_file() {
                return Err(Fail::Input(format!(
                    "--evidence {}: no such file",
                    evidence.display()
                )));
            }
            let abs = std::fs::canonicalize(&evidence)
                .map_err(|e| Fail::Input(format!("--evidence {}: {e}", evidence.display())))?;
            let sha = sha256_file(&abs)
                .map_err(|e| Fail::Input(format!("--evidence {}: {e}", evidence.display())))?;
            let store = open(dirs)?;
            let row = store
                .add_consent(
                    &person,
                    scope.trim(),
                    date.trim(),
                    &abs.to_string_lossy(),
                    &sha,
                )
                .map_err(|e| Fail::Failed(e.to_string()))?;
            println!(
                "consent {}: {} ({}, {}), evidence {}",
                row.id, row.person, row.scope, row.granted, row.evidence
            );
            Ok(())
        }
        ConsentCmd::List { json } => {
            let store = open(dirs)?;
            let rows = store.consents().map_err(|e| Fail::Failed(e.to_string()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
                );
                return Ok(());
            }
            for r in &rows {
                let changed = match sha256_file(std::path::Path::new(&r.evidence)) {
                    Ok(s) if s == r.evidence_sha256 => "",
                    Ok(_) => "  (evidence file changed since it was recorded)",
                    Err(_) => "  (evidence file missing)",
                };
                println!(
                    "{:>4}  {:<24} {:<10} {:<40} {}{changed}",
                    r.id, r.person, r.granted, r.scope, r.evidence
                );
            }
            println!("{} consent record(s)", rows.len());
            Ok(())
        }
        ConsentCmd::Rm { id } => {
            let store = open(dirs)?;
            if store
                .remove_consent(id)
                .map_err(|e| Fail::Failed(e.to_string()))?
            {
                println!("consent {id} removed");
                Ok(())
            } else {
                Err(Fail::Input(format!(
                    "no consent record {id} (`reelsmith consent list`)"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert!(parse_date("2026-02-30").is_none());
        assert!(parse_date("2026-2-3").is_none());
        assert!(parse_date("yesterday").is_none());
    }
}
