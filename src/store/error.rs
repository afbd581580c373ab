//! What can go wrong in the store, with what to do about it.

use std::path::PathBuf;

/// The engine's own error, kept as the source of a [`StoreError`] (the
/// contract names no database crate's type).
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error(
        "could not open the database at {path}: {source}. Check that the directory exists and is writable by this user"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: BackendError,
    },
    /// No database file where `database.url` points, for a command that
    /// must not create one.
    #[error("no database at {} (set database.url or run zdel migrate)", path.display())]
    Missing { path: PathBuf },
    /// The database file could not be created with owner-only permissions.
    #[error(
        "could not create the database file {path} (database.url): {source}. Check that the directory exists and is writable by this user"
    )]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `database.url` is not a path or sqlite URL.
    #[error("database.url {url:?} is not a SQLite path or URL: {source}")]
    BadUrl {
        url: String,
        #[source]
        source: BackendError,
    },
    /// Applying the embedded migrations failed.
    #[error("could not migrate the database: {0}")]
    Migrate(#[source] BackendError),
    /// The task writing a group of outcomes (group commit) was stopped
    /// before it committed: nothing of this batch was written; write again.
    #[error(
        "the task writing this batch's outcomes together with others stopped before committing (shutdown?); nothing was written, try again"
    )]
    WriterStopped,
    /// A claim found rows pending that were no longer pending when marked
    /// (within one transaction: a bug). Nothing was claimed.
    #[error(
        "a claim selected {expected} pending rows but could mark only {marked} running; it was rolled back and nothing was claimed"
    )]
    ClaimChanged { expected: u64, marked: u64 },
    /// The store was closed; nothing more can be written.
    #[error("the database was closed (shutting down); nothing was written")]
    Closed,
    /// Another zdel (serve or drain) works on this database: two would each
    /// apply the org's limits, so the org would see twice the calls.
    #[error(
        "another zdel is working on this database: {holder}. Stop it first (or let it finish); a holder that died is taken over at once on the same host, elsewhere once its lease runs out"
    )]
    HeldBy {
        holder: crate::store::types::DaemonHolder,
    },
    /// This process's lease was taken by another zdel (this one was frozen
    /// or cut off for longer than the lease): it must stop working.
    #[error(
        "this zdel lost the database to another one ({holder}): stopping; nothing more is claimed"
    )]
    LeaseLost { holder: String },
    /// The disk (or the file-size limit) holding the database is full: the
    /// statement was rolled back, everything committed before is intact.
    #[error(
        "the disk holding the database is full: nothing of this write was kept; everything committed before it is intact. Free space, then run the command again"
    )]
    DiskFull {
        #[source]
        source: BackendError,
    },
    /// Any other database error. `constraint`: a CHECK, UNIQUE or NOT NULL
    /// constraint refused the statement.
    #[error("database error: {source}")]
    Database {
        #[source]
        source: BackendError,
        constraint: bool,
    },
}

impl StoreError {
    /// True when the database could not be opened at all: a configuration
    /// problem (`database.url`), not a runtime failure.
    pub fn is_unopenable(&self) -> bool {
        matches!(
            self,
            StoreError::Open { .. }
                | StoreError::Create { .. }
                | StoreError::BadUrl { .. }
                | StoreError::Missing { .. }
        )
    }

    /// True when the disk holding the database is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }

    /// True when the statement failed on a constraint (CHECK, UNIQUE, NOT NULL).
    pub fn is_constraint_violation(&self) -> bool {
        matches!(
            self,
            StoreError::Database {
                constraint: true,
                ..
            }
        )
    }
}
