//! A full disk, for real: the database on a small tmpfs. Every command that
//! writes says so within seconds, naming the file, and exits non-zero;
//! nothing hangs; what was committed is whole chunks, said in the message;
//! once there is room, the same commands finish the job.
//!
//! Mounting a tmpfs needs root with CAP_SYS_ADMIN (CI has it). Elsewhere
//! these tests say they were skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            // Root without CAP_SYS_ADMIN (an unprivileged container).
            eprintln!("skipped: mount -t tmpfs is not permitted here");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fill what space is left with a file; returns it (delete it to free the space).
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .stderr(Stdio::null())
            .status();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Run zdel with `env`'s settings and the database at `db`, within `limit`.
async fn zdel(env: &TestEnv, db: &Path, args: &[&str], limit: Duration) -> (bool, String) {
    let mut cmd = env.zdel(args);
    cmd.env("ZDEL__DATABASE__URL", db);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("zdel {args:?} hung on a full disk"))
        .unwrap();
    (out.status.success(), common::text(&out.stderr))
}

/// Make `n` Leads exist in the sandbox and queue them in the database at `db`.
async fn seed_and_enqueue(env: &TestEnv, db: &Path, n: u64) {
    let queued = ids(0, n);
    env.sb().add_records("Leads", &queued);
    let input = env.dir.path().join("ids.txt");
    std::fs::write(&input, queued.join("\n")).unwrap();
    let file = input.to_str().unwrap();
    let args = ["enqueue", "--module", "Leads", "--file", file];
    let (ok, stderr) = zdel(env, db, &args, Duration::from_secs(60)).await;
    assert!(ok, "{stderr}");
}

async fn rows_in(db: &Path) -> i64 {
    let pool = common::raw_sql(db).await;
    let n = sqlx::query_scalar("SELECT count(*) FROM deletion_requests")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_that_fills_the_disk_says_so_at_once_and_keeps_whole_chunks() {
    // Room for a few 50,000-ID chunks (each row is in four indexes), not
    // for the 400,000.
    let Some(disk) = SmallDisk::mount("24m") else {
        return;
    };
    let env = TestEnv::new(Faults::default()).await;
    let db = disk.path().join("zdel.db");
    let input = env.dir.path().join("ids.txt");
    std::fs::write(&input, ids(0, 400_000).join("\n")).unwrap();

    let (ok, stderr) = zdel(
        &env,
        &db,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--file",
            input.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    )
    .await;

    assert!(!ok, "{stderr}");
    assert!(stderr.contains("disk full"), "{stderr}");
    assert!(
        stderr.contains(db.to_str().unwrap()),
        "names the file: {stderr}"
    );
    let queued = rows_in(&db).await;
    assert!(queued > 0 && queued < 400_000, "{queued}");
    assert_eq!(queued % 50_000, 0, "whole chunks only: {queued}");
    assert!(
        stderr.contains(&format!(
            "{queued} ID(s) of selection 1 stay staged, none claimable; run the same command again"
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_serve_migrate_retry_and_cancel_on_a_full_disk_fail_fast_then_finish_once_freed() {
    // Room, once freed, for the WAL to grow to its first checkpoint (1,000
    // pages of 32 KiB) with the database beside it.
    let Some(disk) = SmallDisk::mount("48m") else {
        return;
    };
    let env = TestEnv::new(Faults::default()).await;
    let db = disk.path().join("zdel.db");
    seed_and_enqueue(&env, &db, 2_000).await;
    let filler = disk.fill();

    for args in [
        &["drain"][..],
        &["serve"][..],
        &["migrate"][..],
        &["retry", "--state", "failed", "--yes"][..],
        &["cancel", "--module", "Leads", "--yes"][..],
    ] {
        let (ok, stderr) = zdel(&env, &db, args, Duration::from_secs(60)).await;
        assert!(!ok, "{args:?}: {stderr}");
        assert!(stderr.contains("full"), "{args:?}: {stderr}");
        assert!(
            stderr.contains(db.to_str().unwrap()),
            "{args:?} names the file: {stderr}"
        );
    }
    assert_eq!(env.sb().remaining("Leads"), 2_000, "nothing was sent");

    std::fs::remove_file(filler).unwrap();
    let (ok, stderr) = zdel(&env, &db, &["migrate"], Duration::from_secs(60)).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) = zdel(&env, &db, &["drain"], Duration::from_secs(60)).await;
    assert!(ok, "{stderr}");
    assert_eq!(env.sb().remaining("Leads"), 0);
    let pool = common::raw_sql(&db).await;
    let succeeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deletion_requests WHERE state = 'succeeded'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(succeeded, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_whose_disk_fills_mid_run_stops_and_says_so_then_finishes_once_freed() {
    // Room, once freed, for the WAL to grow to its first checkpoint (1,000
    // pages of 32 KiB) with the database beside it.
    let Some(disk) = SmallDisk::mount("48m") else {
        return;
    };
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__MAX_CONCURRENCY", "1");
    env.set("WORKER__LEASE_MS", "1500");
    env.set("ZOHO__REQUEST_TIMEOUT_MS", "1000");
    let db = disk.path().join("zdel.db");
    seed_and_enqueue(&env, &db, 3_000).await;

    let mut cmd = env.zdel(&["drain"]);
    cmd.env("ZDEL__DATABASE__URL", &db);
    let drain = cmd.spawn().unwrap();
    common::wait_until(Duration::from_secs(20), "a batch deleted", || async {
        env.sb().remaining("Leads") <= 2_900
    })
    .await;
    let filler = disk.fill();
    let out = tokio::time::timeout(Duration::from_secs(60), drain.wait_with_output())
        .await
        .expect("drain hung on a full disk")
        .unwrap();
    let stderr = common::text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("is full"), "{stderr}");
    assert!(stderr.contains(db.to_str().unwrap()), "{stderr}");
    assert!(
        env.sb().remaining("Leads") > 0,
        "it stopped early: {stderr}"
    );

    // Room again: the same command finishes, every ID recorded once.
    std::fs::remove_file(filler).unwrap();
    let (ok, stderr) = zdel(&env, &db, &["drain"], Duration::from_secs(60)).await;
    assert!(ok, "{stderr}");
    assert_eq!(env.sb().remaining("Leads"), 0);
    let pool = common::raw_sql(&db).await;
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM deletion_requests GROUP BY state")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(states, [("succeeded".to_string(), 3_000)]);
}
