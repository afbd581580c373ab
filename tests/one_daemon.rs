//! One working zdel per database: a second `serve` or a `drain` beside a
//! live `serve` refuses, naming the holder, so the org's limits hold; a
//! holder killed with SIGKILL is taken over at once on the same host (its
//! OS lock died with it, and its claimed rows go back at once); a frozen
//! holder is taken over once its lease runs out, and stops when it thaws.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestEnv, ids, wait_until};
use zdel::sandbox::Faults;

fn slow_env_faults() -> Faults {
    Faults {
        latency: Duration::from_millis(40),
        ..Faults::default()
    }
}

async fn holder_pid(env: &TestEnv) -> Option<i64> {
    env.store.daemon_holder().await.unwrap().map(|h| h.pid)
}

/// Run `zdel args` to its end (at most 30 s): its status and stderr.
async fn run(env: &TestEnv, args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        env.zdel(args).stdout(Stdio::null()).output(),
    )
    .await
    .expect("zdel did not stop")
    .unwrap();
    (out.status.code(), common::text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_or_a_drain_beside_a_live_serve_refuses_naming_the_holder() {
    let mut env = TestEnv::new(slow_env_faults()).await;
    env.set("LIMITS__MAX_CONCURRENCY", "3");
    env.set("LIMITS__REQUESTS_PER_SECOND", "20");
    env.seed_and_enqueue("Leads", &ids(0, 20_000), true).await;
    let mut first = env.zdel(&["serve"]).spawn().unwrap();
    let pid = i64::from(first.id().unwrap());
    wait_until(
        Duration::from_secs(20),
        "the first serve holds the lease",
        || async {
            holder_pid(&env).await == Some(pid) && env.count_in_state("succeeded").await > 0
        },
    )
    .await;

    for command in ["serve", "drain"] {
        let (code, stderr) = run(&env, &[command]).await;
        assert_eq!(code, Some(7), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "another zdel is working on this database: zdel serve (pid {pid} on host "
            )),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("working since"), "{stderr}");
    }
    assert_eq!(
        holder_pid(&env).await,
        Some(pid),
        "the holder kept its lease"
    );

    common::signal(&first, libc::SIGTERM);
    let status = first.wait().await.unwrap();
    assert!(status.success());
    assert_eq!(
        holder_pid(&env).await,
        None,
        "a clean stop gives the lease up"
    );
    // The org saw one zdel's worth of calls in flight, never two.
    assert!(env.sb().stats().peak_concurrency <= 3);
    // Now a drain may run, and finishes the job.
    let (code, stderr) = run(&env, &["drain"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(env.count_in_state("succeeded").await, 20_000);
    assert!(env.sb().stats().peak_concurrency <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_with_sigkill_is_taken_over_at_once_and_its_rows_go_back_at_once() {
    let mut env = TestEnv::new(slow_env_faults()).await;
    env.set("LIMITS__MAX_CONCURRENCY", "3");
    env.set("LIMITS__REQUESTS_PER_SECOND", "10");
    // Row leases and the daemon lease far longer than this test may take:
    // only the OS lock can tell that the holder is dead.
    env.set("WORKER__LEASE_MS", "600000");
    env.set("WORKER__DAEMON_LEASE_MS", "600000");
    env.seed_and_enqueue("Leads", &ids(0, 3_000), true).await;
    let mut first = env.zdel(&["serve"]).spawn().unwrap();
    wait_until(Duration::from_secs(20), "calls in flight", || async {
        env.count_in_state("running").await > 0 && env.count_in_state("succeeded").await > 0
    })
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert!(
        holder_pid(&env).await.is_some(),
        "the dead holder's row is still there"
    );

    // systemd's restart right after the crash: it takes over at once, and
    // the dead one's claimed rows do not wait out their 10-minute leases.
    let (code, stderr) = run(&env, &["drain"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("took over from a zdel that died on this host")
            || !stderr.contains("another zdel"),
        "{stderr}"
    );
    assert_eq!(env.count_in_state("succeeded").await, 3_000);
    assert_eq!(env.sb().remaining("Leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_holder_is_taken_over_when_its_lease_runs_out_and_stops_when_it_thaws() {
    let mut env = TestEnv::new(slow_env_faults()).await;
    env.set("LIMITS__MAX_CONCURRENCY", "2");
    // Batches wait for the rate limiter after they are claimed, so the
    // freeze mostly lands there: thawed, the first must not send them (the
    // second holds those rows by then), or the IDs would go out twice and
    // the later call's INVALID_DATA would fail them.
    env.set("LIMITS__REQUESTS_PER_SECOND", "10");
    env.set("LIMITS__BURST", "1");
    env.set("WORKER__DAEMON_LEASE_MS", "1500");
    env.set("WORKER__LEASE_MS", "3000");
    env.set("ZOHO__REQUEST_TIMEOUT_MS", "2000");
    env.seed_and_enqueue("Leads", &ids(0, 8_000), true).await;
    let first = env.zdel(&["serve"]).spawn().unwrap();
    let pid = i64::from(first.id().unwrap());
    wait_until(Duration::from_secs(20), "progress", || async {
        holder_pid(&env).await == Some(pid) && env.count_in_state("succeeded").await > 0
    })
    .await;
    // Frozen but holding the OS lock, its lease still running: refused.
    // A holder frozen inside a write transaction holds SQLite's lock, and
    // then nobody can even read the lease ("database is locked", exit 1):
    // thaw it and freeze it again at another moment.
    let mut frozen_cleanly = false;
    for _ in 0..10 {
        common::signal(&first, libc::SIGSTOP);
        let (code, stderr) = run(&env, &["drain"]).await;
        if code == Some(7) {
            frozen_cleanly = true;
            break;
        }
        assert!(stderr.contains("database is locked"), "{code:?}: {stderr}");
        common::signal(&first, libc::SIGCONT);
        let before = env.count_in_state("succeeded").await;
        wait_until(Duration::from_secs(20), "more progress", || async {
            env.count_in_state("succeeded").await > before
        })
        .await;
    }
    assert!(frozen_cleanly, "never froze the holder outside a write");
    // Once the lease has run out, the frozen one is taken over.
    wait_until(
        Duration::from_secs(20),
        "the frozen lease expires",
        || async {
            let holder = env.store.daemon_holder().await.unwrap().unwrap();
            holder.expires_at < zdel::clock::now_ms()
        },
    )
    .await;
    let mut second = env.zdel(&["serve"]).spawn().unwrap();
    let second_pid = i64::from(second.id().unwrap());
    wait_until(
        Duration::from_secs(20),
        "the second serve holds the lease",
        || async { holder_pid(&env).await == Some(second_pid) },
    )
    .await;

    // Thawed, the first learns at its next renewal that it lost the
    // database, and stops (status 7) instead of working beside the second.
    common::signal(&first, libc::SIGCONT);
    let out = tokio::time::timeout(Duration::from_secs(30), first.wait_with_output())
        .await
        .expect("the thawed holder kept running")
        .unwrap();
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("another zdel took over this database"),
        "{stderr}"
    );

    wait_until(Duration::from_secs(60), "every ID deleted", || async {
        env.count_in_state("succeeded").await == 8_000
    })
    .await;
    common::signal(&second, libc::SIGTERM);
    assert!(second.wait().await.unwrap().success());
    let stats = env.sb().stats();
    assert_eq!(stats.overlapping_ids, 0, "an ID was in two calls at once");
    assert_eq!(env.sb().remaining("Leads"), 0);
    assert_eq!(env.count_in_state("failed").await, 0);
}
