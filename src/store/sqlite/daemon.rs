//! One working zdel per database: the `daemon_lease` row, and an OS lock on
//! `<database>.lock` beside the file. The lease is the authority (it works
//! across hosts, and fences a frozen holder); the OS lock is how a holder
//! on the same host that died is known to be dead at once — the kernel
//! drops its lock with the process, so systemd's restart right after a
//! crash takes over without waiting for the lease to run out.

use std::fs::File;
use std::path::PathBuf;

use super::Store;
use crate::store::StoreError;
use crate::store::types::{DaemonHolder, DaemonLease};

impl Store {
    /// `<database>.lock`, the OS lock beside the database file.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Become the one working zdel of this database, or learn who is.
    ///
    /// Taken when nobody holds the lease, when it has expired (its holder is
    /// frozen or cut off: its late claims will be refused), or when its
    /// holder is on this host and the OS lock is free (it died). Refused
    /// with [`StoreError::HeldBy`] otherwise.
    pub async fn take_daemon_lease(
        &self,
        me: &DaemonHolder,
        lease_ms: i64,
    ) -> Result<DaemonLease, StoreError> {
        let lock = self.try_os_lock()?;
        let mut tx = self.begin_write().await?;
        let current: Option<(String, i64, String)> =
            sqlx::query_as("SELECT host, expires_at, owner FROM daemon_lease WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        // A holder on this host whose OS lock is free is dead: its rows can
        // go back at once instead of when their leases run out.
        let dead = current
            .as_ref()
            .filter(|(host, _, _)| lock.is_some() && *host == me.host)
            .map(|(_, _, owner)| owner.clone());
        let free = match &current {
            None => true,
            Some((_, expires_at, _)) if *expires_at <= me.since => true,
            Some(_) => dead.is_some(),
        };
        if !free {
            drop(tx);
            return Err(StoreError::HeldBy {
                holder: self.daemon_holder().await?.unwrap_or_default(),
            });
        }
        let token: i64 = sqlx::query_scalar(
            "INSERT INTO daemon_lease (id, token, owner, host, pid, command, since, renewed_at, expires_at)
             VALUES (1, 1, ?1, ?2, ?3, ?4, ?5, ?5, ?5 + ?6)
             ON CONFLICT (id) DO UPDATE SET token = token + 1, owner = excluded.owner,
                 host = excluded.host, pid = excluded.pid, command = excluded.command,
                 since = excluded.since, renewed_at = excluded.renewed_at,
                 expires_at = excluded.expires_at
             RETURNING token",
        )
        .bind(&me.owner)
        .bind(&me.host)
        .bind(me.pid)
        .bind(&me.command)
        .bind(me.since)
        .bind(lease_ms)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DaemonLease {
            token,
            owner: me.owner.clone(),
            dead_predecessor: dead,
            _lock: lock,
        })
    }

    /// Push the lease's expiry on. False if it is no longer ours (another
    /// zdel took it while we were frozen or cut off): stop working.
    pub async fn renew_daemon_lease(
        &self,
        lease: &DaemonLease,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE daemon_lease SET renewed_at = ?2, expires_at = ?2 + ?3 WHERE id = 1 AND token = ?1",
        )
        .bind(lease.token)
        .bind(now_ms)
        .bind(lease_ms);
        Ok(self.write_alone(query).await? > 0)
    }

    /// Give the lease up (a clean stop): the next zdel need not wait.
    pub async fn release_daemon_lease(&self, lease: DaemonLease) -> Result<(), StoreError> {
        let query =
            sqlx::query("DELETE FROM daemon_lease WHERE id = 1 AND token = ?1").bind(lease.token);
        self.write_alone(query).await?;
        Ok(())
    }

    /// Who holds the lease now, if anyone (expired or not).
    pub async fn daemon_holder(&self) -> Result<Option<DaemonHolder>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT owner, host, pid, command, since, renewed_at, expires_at FROM daemon_lease WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The OS lock, if free (`None`: another process on this host holds it).
    fn try_os_lock(&self) -> Result<Option<File>, StoreError> {
        let path = self.lock_path();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Create {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Create { path, source }),
        }
    }
}

/// Inside a write transaction: fail with [`StoreError::LeaseLost`] unless
/// `token` is the daemon lease's current one.
pub(super) async fn check_fence(
    conn: &mut sqlx::SqliteConnection,
    token: i64,
) -> Result<(), StoreError> {
    let current: Option<(i64, String, i64)> =
        sqlx::query_as("SELECT token, host, pid FROM daemon_lease WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await?;
    match current {
        Some((t, _, _)) if t == token => Ok(()),
        Some((_, host, pid)) => Err(StoreError::LeaseLost {
            holder: format!("pid {pid} on host {host}"),
        }),
        None => Err(StoreError::LeaseLost {
            holder: "nobody (the lease was released)".into(),
        }),
    }
}
