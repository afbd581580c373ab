//! Retries and per-ID outcomes under faults: 503 storms, ambiguous 5xx after
//! deleting, dropped connections, 429, locked records, invalid modules.

mod common;

use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_percent_503_rate_still_deletes_every_id() {
    let env = TestEnv::new(Faults {
        error_5xx_rate: 0.3,
        ..Faults::default()
    })
    .await;
    env.seed_and_enqueue("Leads", &ids(0, 2_000), true).await;

    env.drain(Duration::from_secs(60)).await;

    assert_eq!(env.count_in_state("succeeded").await, 2_000);
    assert_eq!(env.sb().remaining("Leads"), 0);
    let stats = env.sb().stats();
    assert!(
        stats.statuses.get(&503).copied().unwrap_or(0) > 0,
        "the sandbox injected no 503: {stats:?}"
    );
    // Every ID carried by any call counted exactly one attempt.
    let attempts: i64 = sqlx::query_scalar("SELECT sum(attempts) FROM deletion_requests")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(attempts as usize, stats.ids_per_call.iter().sum::<usize>());
    assert!(stats.ids_per_call.iter().all(|n| *n <= 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_failures_after_deleting_end_succeeded_not_invalid() {
    // The sandbox deletes, then answers 500 or drops the connection. The retry
    // then gets INVALID_DATA, which must read as "deleted by the first call".
    let env = TestEnv::new(Faults {
        error_5xx_after_delete_rate: 0.25,
        drop_after_delete_rate: 0.25,
        ..Faults::default()
    })
    .await;
    env.seed_and_enqueue("Leads", &ids(0, 1_000), true).await;

    env.drain(Duration::from_secs(60)).await;

    let rows = env.rows("Leads").await;
    assert!(
        rows.iter().all(|(_, state, _, _)| state == "succeeded"),
        "{:?}",
        rows.iter().find(|r| r.1 != "succeeded")
    );
    let confirmed = rows
        .iter()
        .filter(|r| r.2.as_deref() == Some("INVALID_DATA"))
        .count();
    assert!(
        confirmed > 0,
        "no call was cut off after deleting; the fault injection did not fire"
    );
    let messages: Vec<String> = sqlx::query_scalar(
        "SELECT outcome_message FROM deletion_requests WHERE outcome_code = 'INVALID_DATA'",
    )
    .fetch_all(&env.sql)
    .await
    .unwrap();
    // The recycle bin settled each: the cut-off call had deleted it.
    assert!(
        messages
            .iter()
            .all(|m| m.starts_with("confirmed by the recycle bin: deleted at ")),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_fail_rows_after_max_attempts() {
    let mut env = TestEnv::new(Faults {
        error_5xx_rate: 1.0,
        ..Faults::default()
    })
    .await;
    env.set("RETRY__MAX_ATTEMPTS", "4");
    env.seed_and_enqueue("Leads", &ids(0, 150), true).await;

    env.drain(Duration::from_secs(30)).await;

    let rows = env.rows("Leads").await;
    for (id, state, code, attempts) in &rows {
        assert_eq!(
            (state.as_str(), code.as_deref(), *attempts),
            ("failed", Some("HTTP_503"), 4),
            "{id}"
        );
    }
    // Each ID was sent exactly four times (retried rows may regroup into
    // different batches when they fall due together, so calls may vary).
    assert_eq!(env.sb().stats().ids_per_call.iter().sum::<usize>(), 150 * 4);
    assert_eq!(env.sb().remaining("Leads"), 150, "nothing was deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_costs_no_attempt_and_honours_retry_after() {
    let env = TestEnv::new(Faults {
        rate_429: 1.0,
        retry_after_secs: Some(1),
        ..Faults::default()
    })
    .await;
    env.seed_and_enqueue("Leads", &ids(0, 100), true).await;
    let (shutdown, handle) = env.serve();
    common::wait_until(
        Duration::from_secs(10),
        "the 429 recorded on the row",
        || async {
            let code: Option<String> =
                sqlx::query_scalar("SELECT outcome_code FROM deletion_requests LIMIT 1")
                    .fetch_one(&env.sql)
                    .await
                    .unwrap();
            code.as_deref() == Some("TOO_MANY_REQUESTS")
        },
    )
    .await;
    // The row waits out Retry-After with no attempt counted.
    let (state, attempts, next_at, code): (String, i64, i64, Option<String>) = sqlx::query_as(
        "SELECT state, attempts, next_attempt_at, outcome_code FROM deletion_requests LIMIT 1",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), attempts, code.as_deref()),
        ("pending", 0, Some("TOO_MANY_REQUESTS"))
    );
    assert!(
        next_at > zdel::clock::now_ms() + 500,
        "Retry-After: 1 not honoured"
    );
    assert_eq!(env.sb().stats().calls, 1, "the lane must wait, not hammer");

    env.sb().set_faults(Faults::default());
    common::wait_until(Duration::from_secs(10), "all succeeded", || async {
        env.count_in_state("succeeded").await == 100
    })
    .await;
    shutdown.cancel();
    handle.await.unwrap();
    let attempts: Vec<i64> = sqlx::query_scalar("SELECT attempts FROM deletion_requests")
        .fetch_all(&env.sql)
        .await
        .unwrap();
    assert!(
        attempts.iter().all(|a| *a == 1),
        "429s counted as attempts: {attempts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_records_go_back_to_pending_and_succeed_later() {
    let env = TestEnv::new(Faults::default()).await;
    let all = ids(0, 5);
    env.sb().lock_record(&all[2], 2);
    env.seed_and_enqueue("Leads", &all, true).await;

    env.drain(Duration::from_secs(30)).await;

    let rows = env.rows("Leads").await;
    assert!(rows.iter().all(|r| r.1 == "succeeded"), "{rows:?}");
    assert_eq!(
        rows[2].3, 3,
        "locked twice, then deleted on the third attempt"
    );
    assert_eq!(env.sb().stats().calls, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_module_fails_its_rows_and_not_the_others() {
    let env = TestEnv::new(Faults::default()).await;
    env.enqueue("Leeds", &ids(0, 3), true).await;
    env.seed_and_enqueue("Leads", &ids(100, 3), true).await;

    env.drain(Duration::from_secs(30)).await;

    for (_, state, code, _) in env.rows("Leeds").await {
        assert_eq!(
            (state.as_str(), code.as_deref()),
            ("failed", Some("INVALID_MODULE"))
        );
    }
    for (_, state, _, _) in env.rows("Leads").await {
        assert_eq!(state, "succeeded");
    }
}
