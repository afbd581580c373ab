//! OAuth: tokens cached and refreshed before expiry, a 401 refreshes and
//! repeats the call once without counting an attempt, rejected credentials
//! pause everything without failing a row.

mod common;

use std::time::Duration;

use common::{TestEnv, ids, wait_until};
use zdel::sandbox::Faults;
use zdel::store::PAUSE_ALL;
use zdel::worker::StopReason;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_mid_run_fail_nothing() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_millis(30),
        token_ttl: Duration::from_secs(1),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__REQUESTS_PER_SECOND", "20");
    env.set("LIMITS__BURST", "1");
    env.set("LIMITS__MAX_CONCURRENCY", "2");
    env.seed_and_enqueue("Leads", &ids(0, 6_000), true).await;
    let (shutdown, handle) = env.serve();

    // Revoke every token mid-run: calls in flight with the old token get 401.
    wait_until(
        Duration::from_secs(20),
        "a third of the IDs deleted",
        || async { env.count_in_state("succeeded").await >= 2_000 },
    )
    .await;
    env.sb().expire_all_tokens();
    wait_until(Duration::from_secs(30), "every ID deleted", || async {
        env.count_in_state("succeeded").await == 6_000
    })
    .await;
    shutdown.cancel();
    handle.await.unwrap();

    let stats = env.sb().stats();
    assert!(
        stats.tokens_issued >= 3,
        "1 s tokens over a 3 s run: {} issued",
        stats.tokens_issued
    );
    assert!(stats.unauthorized >= 1, "revoking tokens produced no 401");
    assert_eq!(env.count_in_state("failed").await, 0);
    let max_attempts: i64 = sqlx::query_scalar("SELECT max(attempts) FROM deletion_requests")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(
        max_attempts, 1,
        "a 401 followed by a refresh must not count an attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_pause_all_work_and_fail_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 300), true).await;
    env.sb().revoke_refresh_token(true);

    let summary = env.drain(Duration::from_secs(30)).await;

    assert!(
        matches!(summary.reason, StopReason::CredentialsRejected { .. }),
        "{summary:?}"
    );
    assert_eq!(env.count_in_state("pending").await, 300);
    assert_eq!(env.count_in_state("failed").await, 0);
    let pause = env
        .store
        .globally_paused()
        .await
        .unwrap()
        .expect("a global pause");
    assert_eq!(
        (pause.scope.as_str(), pause.code.as_str()),
        (PAUSE_ALL, "invalid_code")
    );
    assert!(pause.message.contains("refresh token"), "{}", pause.message);
    assert_eq!(env.sb().stats().calls, 0, "no API call without a token");

    // Fixed credentials: the next run probes, lifts the pause, and finishes.
    env.sb().revoke_refresh_token(false);
    let summary = env.drain(Duration::from_secs(30)).await;
    assert_eq!(summary.reason, StopReason::Drained);
    assert_eq!(env.count_in_state("succeeded").await, 300);
    assert!(env.store.globally_paused().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_resumes_by_itself_once_credentials_work() {
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 100), true).await;
    env.sb().revoke_refresh_token(true);
    let (shutdown, handle) = env.serve();
    wait_until(Duration::from_secs(10), "the global pause", || async {
        env.store.globally_paused().await.unwrap().is_some()
    })
    .await;
    env.sb().revoke_refresh_token(false);
    wait_until(
        Duration::from_secs(10),
        "all deleted after the probe",
        || async { env.count_in_state("succeeded").await == 100 },
    )
    .await;
    shutdown.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_outage_costs_no_attempts_and_is_not_hammered() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("ZOHO__TOKEN_RETRY_MS", "300");
    env.seed_and_enqueue("Leads", &ids(0, 800), true).await;
    env.sb().set_token_endpoint_down(true);
    let (shutdown, handle) = env.serve();

    wait_until(
        Duration::from_secs(10),
        "a first failed token request",
        || async { env.sb().stats().token_requests >= 1 },
    )
    .await;
    let first = std::time::Instant::now();
    wait_until(
        Duration::from_secs(10),
        "two more token requests",
        || async { env.sb().stats().token_requests >= 3 },
    )
    .await;
    assert!(
        first.elapsed() >= Duration::from_millis(500),
        "token requests must be spaced by zoho.token_retry_ms, not made per batch"
    );
    assert_eq!(env.sb().stats().calls, 0, "no API call without a token");
    let spent: i64 = sqlx::query_scalar("SELECT coalesce(max(attempts), 0) FROM deletion_requests")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(spent, 0, "an outage of the token endpoint costs no attempt");
    assert_eq!(env.count_in_state("failed").await, 0);

    env.sb().set_token_endpoint_down(false);
    wait_until(
        Duration::from_secs(10),
        "every ID deleted after the outage",
        || async { env.count_in_state("succeeded").await == 800 },
    )
    .await;
    shutdown.cancel();
    handle.await.unwrap();
    let max_attempts: i64 = sqlx::query_scalar("SELECT max(attempts) FROM deletion_requests")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(max_attempts, 1);
}
