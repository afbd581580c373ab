//! The real `zdel serve` binary: SIGTERM stops claiming, lets calls in
//! flight finish, records them and exits 0; calls cut off by the grace
//! period go back to pending; a kill -9 mid-call loses nothing.

mod common;

use std::time::Duration;

use common::{TestEnv, ids, signal, wait_until};
use zdel::sandbox::Faults;

fn spawn_serve(env: &TestEnv) -> tokio::process::Child {
    env.zdel(&["serve"]).spawn().expect("start zdel serve")
}

async fn exit_status(
    child: tokio::process::Child,
    limit: Duration,
) -> (std::process::ExitStatus, String) {
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .expect("zdel did not exit in time")
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_finishes_calls_in_flight_and_leaves_no_row_running() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__MAX_CONCURRENCY", "4");
    let all = ids(0, 3_000);
    env.seed_and_enqueue("Leads", &all, true).await;
    let child = spawn_serve(&env);

    wait_until(
        Duration::from_secs(20),
        "some deleted and calls in flight",
        || async {
            env.count_in_state("succeeded").await >= 400 && env.count_in_state("running").await > 0
        },
    )
    .await;
    signal(&child, libc::SIGTERM);
    let (status, stderr) = exit_status(child, Duration::from_secs(15)).await;

    assert!(status.success(), "exit {status:?}: {stderr}");
    assert_eq!(env.count_in_state("running").await, 0, "{stderr}");
    let succeeded = env.count_in_state("succeeded").await;
    let pending = env.count_in_state("pending").await;
    assert_eq!(succeeded + pending, 3_000);
    assert!(pending > 0, "SIGTERM came too late to test anything");
    for (id, state, code, _) in env.rows("Leads").await {
        match state.as_str() {
            "succeeded" => assert!(!env.sb().has_record("Leads", &id)),
            "pending" => {
                assert!(
                    env.sb().has_record("Leads", &id),
                    "{id} pending but deleted"
                );
                assert_eq!(
                    code, None,
                    "{id}: finished calls were recorded, not cut off"
                );
            }
            other => panic!("{id} is {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cut_off_by_the_grace_period_go_back_to_pending() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_secs(4),
        ..Faults::default()
    })
    .await;
    env.set("WORKER__SHUTDOWN_GRACE_MS", "200");
    env.set("LIMITS__MAX_CONCURRENCY", "2");
    env.seed_and_enqueue("Leads", &ids(0, 500), true).await;
    let child = spawn_serve(&env);
    wait_until(Duration::from_secs(10), "two calls in flight", || async {
        env.count_in_state("running").await == 200
    })
    .await;
    signal(&child, libc::SIGINT);
    let (status, stderr) = exit_status(child, Duration::from_secs(3)).await;

    assert!(status.success(), "exit {status:?}: {stderr}");
    assert_eq!(env.count_in_state("pending").await, 500);
    let cut: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT outcome_code, ambiguous_attempts, attempts FROM deletion_requests WHERE outcome_code IS NOT NULL",
    )
    .fetch_all(&env.sql)
    .await
    .unwrap();
    assert_eq!(cut.len(), 200, "the two cut-off batches");
    assert!(
        cut.iter()
            .all(|(code, ambiguous, attempts)| code == "SHUTDOWN"
                && *ambiguous == 1
                && *attempts == 0),
        "{cut:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_call_loses_nothing_after_the_lease_expires() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_millis(800),
        ..Faults::default()
    })
    .await;
    env.set("ZOHO__REQUEST_TIMEOUT_MS", "1500");
    env.set("WORKER__LEASE_MS", "2000");
    env.set("LIMITS__MAX_CONCURRENCY", "2");
    env.seed_and_enqueue("Leads", &ids(0, 600), true).await;
    let child = spawn_serve(&env);
    wait_until(Duration::from_secs(10), "calls in flight", || async {
        env.count_in_state("running").await > 0
    })
    .await;
    signal(&child, libc::SIGKILL);
    let (status, _) = exit_status(child, Duration::from_secs(5)).await;
    assert!(!status.success());
    assert!(
        env.count_in_state("running").await > 0,
        "kill -9 leaves claimed rows running"
    );

    let child = spawn_serve(&env);
    wait_until(
        Duration::from_secs(30),
        "every ID finished after restart",
        || async { env.count_in_state("succeeded").await == 600 },
    )
    .await;
    signal(&child, libc::SIGTERM);
    let (status, stderr) = exit_status(child, Duration::from_secs(10)).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(env.sb().remaining("Leads"), 0);
    let reaped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deletion_requests WHERE ambiguous_attempts > 0")
            .fetch_one(&env.sql)
            .await
            .unwrap();
    assert!(
        reaped >= 100,
        "the killed claims were reaped as ambiguous ({reaped})"
    );
}
