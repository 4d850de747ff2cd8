//! Errors of the store. Every message names the database and says what to do.

use std::path::PathBuf;

/// Anything that can go wrong in the store.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// The file could not be opened or created.
    #[error(
        "cannot open database {}: {source}; check that its directory exists and is writable",
        path.display()
    )]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The file exists but is not an SQLite database (or is encrypted/garbled).
    #[error(
        "{} is not a reelsmith database (or it is damaged); move it aside and run again to start a fresh one",
        path.display()
    )]
    NotADatabase {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The database was written by a newer reelsmith; it was not touched.
    #[error(
        "database {} was written by a newer reelsmith (schema {found} > {known}); upgrade reelsmith",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        known: u32,
    },

    /// A schema migration failed; its transaction was rolled back.
    #[error(
        "database {}: upgrading the schema to version {version} failed: {source}; it was left at version {} — \
         back it up and report this, or move it aside to start a fresh one",
        path.display(),
        version.saturating_sub(1)
    )]
    Migrate {
        path: PathBuf,
        version: u32,
        #[source]
        source: rusqlite::Error,
    },

    /// Another process held the write lock for longer than the busy timeout.
    #[error(
        "database {} is busy: another reelsmith process held its lock for more than {} s; \
         wait for it to finish and try again",
        path.display(),
        super::BUSY_TIMEOUT.as_secs()
    )]
    Busy {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// A row the caller referred to does not exist.
    #[error("database {}: no {what} with id {id}; list them to find a valid id", path.display())]
    NotFound {
        path: PathBuf,
        what: &'static str,
        id: i64,
    },

    /// The caller passed a value the store refuses to write.
    #[error("database {}: refusing to write {what}: {why}", path.display())]
    InvalidArgument {
        path: PathBuf,
        what: &'static str,
        why: String,
    },

    /// A JSON column could not be encoded or decoded.
    #[error(
        "database {}: bad JSON in {what}: {source}; the row may have been edited by hand — fix or delete it",
        path.display()
    )]
    Json {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// Any other SQLite failure.
    #[error(
        "database {}: {source}; if this repeats, check free disk space and run an integrity check",
        path.display()
    )]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}
