//! The SQLite engine behind the store's contract (`super`): the
//! connections, the one writer and its transactions. The SQL of each part
//! of the contract is in `queue.rs` (enqueue, claims, outcomes, leases),
//! `jobs.rs` (mass-delete jobs) and `report.rs` (status, outcomes, the
//! operator's bulk changes, pauses).
//!
//! Writes: one connection, taken in turn (`begin_write`). Claims take a batch
//! per free call slot in one transaction; outcomes of batches finishing
//! together share one transaction (`record_outcomes`, group commit).

mod counts;
mod credits;
mod daemon;
mod jobs;
mod modules;
mod queue;
mod report;
mod selections;
mod verify;

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

pub use queue::{Added, Enqueuer, IdChunk, STAGED};

use super::StoreError;
use super::types::{Depth, LeaseToken, Recorded, RowOutcome};

/// SQLite's SQLITE_FULL (primary code 13), SQLITE_IOERR_SHMSIZE (4874:
/// the `-shm` file could not be extended, which on opening a database means
/// no space), and ENOSPC from the OS.
fn is_disk_full(e: &sqlx::Error) -> bool {
    const SQLITE_FULL: i32 = 13;
    const SQLITE_IOERR_SHMSIZE: i32 = 4874;
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == SQLITE_FULL || c == SQLITE_IOERR_SHMSIZE),
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    }
}

/// Why `path` could not be opened: a full disk, or anything else.
fn open_error(path: &Path, source: sqlx::Error) -> StoreError {
    if is_disk_full(&source) {
        return StoreError::DiskFull {
            source: Box::new(source),
        };
    }
    StoreError::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        if is_disk_full(&e) {
            return StoreError::DiskFull {
                source: Box::new(e),
            };
        }
        let constraint = matches!(&e, sqlx::Error::Database(d) if matches!(
            d.kind(),
            sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::UniqueViolation
                | sqlx::error::ErrorKind::NotNullViolation
        ));
        StoreError::Database {
            source: Box::new(e),
            constraint,
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Migrate(Box::new(e))
    }
}

/// The queue's handle: a small pool of SQLite connections in WAL mode.
#[derive(Clone)]
pub struct Store {
    /// The database file.
    path: std::path::PathBuf,
    /// Readers (status, outcomes, counts), concurrent under WAL.
    pool: SqlitePool,
    /// The one connection every write of this process goes through (`None`
    /// once closed); holding its lock is the writer's turn. One connection
    /// keeps its page cache warm (a SQLite connection drops its whole cache
    /// when another connection wrote since its last transaction). Writers
    /// in this process queue on this lock rather than in SQLite's busy
    /// handler, which polls with sleeps of up to 100 ms: measured, that left
    /// the writer idle most of the time under concurrent batches. It is not
    /// a pool: sqlx returns a pooled connection through a spawned task that
    /// pings it first, and measured, that cost the next transaction ~0.8 ms.
    writer: Arc<tokio::sync::Mutex<Option<SqliteConnection>>>,
    /// Whether `writer` has a transaction open: set by BEGIN, cleared by
    /// COMMIT or ROLLBACK. A transaction dropped uncommitted is rolled back
    /// by a spawned task, or by the next writer, whichever comes first.
    writer_in_tx: Arc<AtomicBool>,
    /// How long a write waits for another process's write lock.
    busy_timeout: Duration,
    /// Outcomes waiting to be written by the next writer (group commit).
    recordings: Arc<Mutex<Vec<Recording>>>,
}

/// One batch's outcomes queued for the next group commit.
pub(crate) struct Recording {
    lease: LeaseToken,
    outcomes: Vec<RowOutcome>,
    now_ms: i64,
    reply: tokio::sync::oneshot::Sender<Result<Recorded, StoreError>>,
}

/// The writer's turn: its connection, locked.
type WriterTurn = tokio::sync::OwnedMutexGuard<Option<SqliteConnection>>;

/// A write transaction (BEGIN IMMEDIATE) holding this process's writer turn
/// until it commits or drops; dropped uncommitted, it is rolled back.
pub(crate) struct WriteTx {
    conn: tokio::sync::OwnedMappedMutexGuard<Option<SqliteConnection>, SqliteConnection>,
    in_tx: Arc<AtomicBool>,
    writer: Arc<tokio::sync::Mutex<Option<SqliteConnection>>>,
}

impl WriteTx {
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        sqlx::query("COMMIT").execute(&mut *self.conn).await?;
        self.in_tx.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.in_tx.load(Ordering::SeqCst) {
            return;
        }
        // Roll back as soon as the turn is free (this guard is released
        // right after). Without a runtime, the next writer does it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (writer, in_tx) = (self.writer.clone(), self.in_tx.clone());
            runtime.spawn(async move {
                let mut turn = writer.lock_owned().await;
                if let Some(conn) = turn.as_mut() {
                    roll_back_if_open(conn, &in_tx).await;
                }
            });
        }
    }
}

/// Roll back the writer's transaction left open by a dropped [`WriteTx`]
/// (or by a BEGIN or COMMIT whose caller was dropped mid-statement).
async fn roll_back_if_open(conn: &mut SqliteConnection, in_tx: &AtomicBool) {
    if in_tx.load(Ordering::SeqCst) {
        // Fails only if SQLite already rolled back (some errors do).
        if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
            tracing::debug!(error = %e, "rolling back an abandoned write transaction");
        }
        in_tx.store(false, Ordering::SeqCst);
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

/// Connections in the pool: one writer at a time is SQLite's rule, the rest
/// serve reads (status) concurrently under WAL.
const POOL_CONNECTIONS: u32 = 4;

/// The most a WAL keeps after a checkpoint, in bytes.
const JOURNAL_SIZE_LIMIT: u64 = 64 << 20;

impl Store {
    /// Open (creating if missing) the database named by `url` and apply migrations.
    pub async fn open(url: &str, busy_timeout: Duration) -> Result<Store, StoreError> {
        let options = connect_options(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed enqueue or outcome survives power loss. See README "Durability".
            .synchronous(SqliteSynchronous::Full)
            // For a new database only (an existing one keeps its page size;
            // see README "Durability"): measured against 4 KiB pages,
            // 32 KiB made `zdel enqueue` ~18% faster and claims + outcomes
            // ~5% (fewer pages split, fewer WAL frames per commit).
            .page_size(32_768)
            .foreign_keys(true)
            // After a checkpoint, the WAL is cut back to 64 MiB: a big
            // enqueue beside a running daemon (whose open connections keep
            // the file) does not keep the disk's space (README "Durability").
            .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
            .busy_timeout(busy_timeout);
        let path = options.get_filename().to_path_buf();
        create_owner_only(&path)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .connect_with(options.clone())
            .await
            .map_err(|source| open_error(&path, source))?;
        let writer = options
            // Statement journals and json_each's temporary tables in memory.
            .pragma("temp_store", "memory")
            // No sleeping busy handler: see `begin_write_holding`.
            .busy_timeout(Duration::ZERO)
            .connect()
            .await
            .map_err(|source| open_error(&path, source))?;
        let store = Store {
            path,
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(Some(writer))),
            writer_in_tx: Arc::new(AtomicBool::new(false)),
            recordings: Arc::new(Mutex::new(Vec::new())),
            busy_timeout,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Open the database named by `url` only if it exists: for the commands
    /// that must not create one (status, outcomes, jobs, check, ...).
    pub async fn open_existing(url: &str, busy_timeout: Duration) -> Result<Store, StoreError> {
        let path = connect_options(url)?.get_filename().to_path_buf();
        if !path.exists() {
            return Err(StoreError::Missing { path });
        }
        Store::open(url, busy_timeout).await
    }

    /// Apply any migrations not yet applied. Idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers and every embedded migration is applied.
    pub async fn readiness(&self) -> Result<(), String> {
        let applied: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await;
        let expected = sqlx::migrate!("./migrations").migrations.len() as i64;
        match applied {
            Ok(n) if n >= expected => Ok(()),
            Ok(n) => Err(format!("database migrations applied: {n} of {expected}")),
            Err(e) => Err(format!("database not answering: {e}")),
        }
    }

    /// Rows by state and operation, and mass-delete jobs by state (for gauges).
    pub async fn depth(&self) -> Result<Depth, StoreError> {
        let mut requests: Vec<super::types::RequestDepth> = Vec::new();
        for lane in self.lane_state_counts().await? {
            match requests
                .iter_mut()
                .find(|r| r.state == lane.state && r.operation == lane.operation)
            {
                Some(r) => r.count += lane.count,
                None => requests.push(super::types::RequestDepth {
                    state: lane.state,
                    operation: lane.operation,
                    count: lane.count,
                }),
            }
        }
        let jobs =
            sqlx::query_as("SELECT state, count(*) AS count FROM mass_delete_jobs GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok(Depth { requests, jobs })
    }

    /// The database file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn close(&self) {
        let writer = self.writer.lock().await.take();
        if let Some(mut writer) = writer {
            // Hand the WAL's space back now, even if another process keeps
            // the database open (it would otherwise keep the file's size
            // until its next checkpoint). Busy readers just make it a no-op.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut writer)
                .await
            {
                tracing::debug!(error = %e, "checkpointing the WAL on close");
            }
            if let Err(e) = writer.close().await {
                tracing::debug!(error = %e, "closing the writer connection");
            }
        }
        self.pool.close().await;
    }

    /// One statement in a write transaction of its own; how many rows it changed.
    async fn write_alone(
        &self,
        query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let changed = query.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(changed)
    }

    /// Wait for the writer's turn.
    async fn writer_turn(&self) -> WriterTurn {
        self.writer.clone().lock_owned().await
    }

    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let turn = self.writer_turn().await;
        self.begin_write_holding(turn).await
    }

    /// Begin a write transaction with the writer's turn already taken.
    async fn begin_write_holding(&self, turn: WriterTurn) -> Result<WriteTx, StoreError> {
        let mut conn = tokio::sync::OwnedMutexGuard::try_map(turn, Option::as_mut)
            .map_err(|_| StoreError::Closed)?;
        roll_back_if_open(&mut conn, &self.writer_in_tx).await;
        // IMMEDIATE takes the write lock up front: a deferred transaction that
        // reads and then writes can fail with SQLITE_BUSY despite busy_timeout.
        // Another process (an operator's sqlite3, `zdel enqueue`) may hold
        // the write lock. SQLite's own busy handler sleeps 1, 2, 5, 10 … up
        // to 100 ms between tries, which measured, lost most of the writer's
        // time to a process writing small transactions; retry here in short
        // steps instead, for up to `busy_timeout` in all.
        let deadline = tokio::time::Instant::now() + self.busy_timeout;
        let mut pause = Duration::from_micros(100);
        loop {
            // Marked open before BEGIN is sent: if this future is dropped
            // mid-BEGIN, the next writer rolls back whatever it left.
            self.writer_in_tx.store(true, Ordering::SeqCst);
            let begun = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await;
            if begun.is_err() {
                self.writer_in_tx.store(false, Ordering::SeqCst);
            }
            match begun {
                Ok(_) => {
                    return Ok(WriteTx {
                        conn,
                        in_tx: self.writer_in_tx.clone(),
                        writer: self.writer.clone(),
                    });
                }
                Err(e) if is_busy(&e) && tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// SQLITE_BUSY: another connection holds the lock.
fn is_busy(e: &sqlx::Error) -> bool {
    // sqlx reports the extended code; its low byte is the primary code.
    matches!(e, sqlx::Error::Database(d)
        if d.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 5))
}

/// A database file zdel creates is readable by its owner only: it holds
/// what an organisation chose to delete. (SQLite gives its -wal and -shm
/// files the same permissions.) An existing file keeps its permissions.
fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    let options = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(|source| StoreError::BadUrl {
            url: url.to_string(),
            source: Box::new(source),
        })?
    } else {
        SqliteConnectOptions::new().filename(Path::new(url))
    };
    // sqlx warns of a statement over a second with its whole SQL text: noise
    // for an operator (a one-off migration of a large queue takes longer).
    // Kept for RUST_LOG=sqlx=debug.
    Ok(options.log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(1)))
}
