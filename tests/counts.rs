//! The maintained counts (`status`, the gauges, the daily cap read them
//! instead of scanning the queue) stay equal to what the table holds,
//! whoever changed it: `zdel enqueue`, the worker, the operator's retry and
//! cancel, and plain SQL (INSERT, UPDATE, DELETE — of the last row too,
//! whose id SQLite hands out again).

mod common;

use std::time::Duration;

use common::*;
use zdel::sandbox::Faults;
use zdel::store::{LaneStateCount, OutcomeFilter, RequestState};

/// What a GROUP BY over the whole table says, in the maintained counts' shape.
async fn truth(env: &TestEnv) -> Vec<(String, String, bool, String, String, i64)> {
    sqlx::query_as(
        "SELECT operation, module, wf_trigger, strategy, state, count(*) FROM deletion_requests
         GROUP BY operation, module, wf_trigger, strategy, state
         ORDER BY operation, module, wf_trigger, strategy, state",
    )
    .fetch_all(&env.sql)
    .await
    .unwrap()
}

fn shape(counts: &[LaneStateCount]) -> Vec<(String, String, bool, String, String, i64)> {
    counts
        .iter()
        .map(|c| {
            (
                c.operation.as_str().to_string(),
                c.module.clone(),
                c.wf_trigger,
                c.strategy.as_str().to_string(),
                c.state.as_str().to_string(),
                c.count,
            )
        })
        .collect()
}

async fn assert_counts_true(env: &TestEnv, step: &str) {
    let counted = shape(&env.store.lane_state_counts().await.unwrap());
    assert_eq!(counted, truth(env).await, "after {step}");
}

async fn exec(env: &TestEnv, sql: &str) -> u64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&env.sql)
        .await
        .unwrap()
        .rows_affected()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counts_follow_every_kind_of_change() {
    let env = TestEnv::new(Faults::default()).await;
    // 250 Leads (50 of them not in Zoho: they fail), 120 Contacts without workflows.
    let leads = ids(0, 250);
    env.sb().add_records("Leads", &leads[..200]);
    env.enqueue("Leads", &leads, true).await;
    env.seed_and_enqueue("Contacts", &ids(1000, 120), false)
        .await;
    assert_counts_true(&env, "enqueue").await;
    // Claimed rows are running (counted from their index), then released.
    let now = zdel::clock::now_ms();
    let batch = claim_one(&env.store, now, "counts-test", 60_000, &[])
        .await
        .unwrap();
    assert_eq!(batch.rows.len(), 100);
    assert_counts_true(&env, "a claim").await;
    assert_eq!(env.store.state_totals().await.unwrap().running, 100);
    assert_eq!(
        env.store.release_owned("counts-test", now).await.unwrap(),
        100
    );
    assert_counts_true(&env, "a release").await;

    // Plain SQL inserts (not counted until folded: read from above the mark).
    for id in ids(5000, 30) {
        exec(
            &env,
            &format!("INSERT INTO deletion_requests (module, record_id) VALUES ('Deals', '{id}')"),
        )
        .await;
    }
    env.sb().add_records("Deals", ids(5000, 30));
    assert_counts_true(&env, "plain SQL inserts").await;

    let summary = env.drain(Duration::from_secs(60)).await;
    assert!(
        matches!(summary.reason, zdel::worker::StopReason::Drained),
        "{:?}",
        summary.reason
    );
    assert_counts_true(&env, "the drain").await;
    let totals = env.store.state_totals().await.unwrap();
    assert_eq!((totals.succeeded, totals.failed), (350, 50));

    // An SQL insert after the fold, then the operator's changes.
    exec(
        &env,
        "INSERT INTO deletion_requests (module, record_id) VALUES ('Deals', '3652397000000009999')",
    )
    .await;
    let requeued = env
        .store
        .requeue(&OutcomeFilter::default(), zdel::clock::now_ms())
        .await
        .unwrap();
    assert_eq!(requeued, 50);
    assert_counts_true(&env, "retry").await;
    let cancelled = env
        .store
        .cancel(
            &OutcomeFilter {
                module: Some("Leads".into()),
                state: Some(RequestState::Pending),
                ..Default::default()
            },
            zdel::clock::now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(cancelled, 50);
    assert_counts_true(&env, "cancel").await;

    // Hand edits: a state change and a lane change by UPDATE, deletes of
    // old rows and of the last one, and inserts that reuse the freed id.
    exec(
        &env,
        "UPDATE deletion_requests SET state = 'cancelled', finished_at = 1 WHERE module = 'Deals' AND state = 'pending'",
    )
    .await;
    exec(
        &env,
        "UPDATE deletion_requests SET wf_trigger = 1 WHERE module = 'Contacts' AND id % 2 = 0",
    )
    .await;
    assert_counts_true(&env, "hand UPDATEs").await;
    let max_id: i64 = sqlx::query_scalar("SELECT max(id) FROM deletion_requests")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(
        exec(
            &env,
            &format!(
                "DELETE FROM deletion_requests WHERE id >= {} OR id <= 10",
                max_id - 4
            )
        )
        .await,
        15
    );
    assert_counts_true(&env, "hand DELETEs").await;
    for id in ids(7000, 8) {
        exec(
            &env,
            &format!("INSERT INTO deletion_requests (module, record_id) VALUES ('Deals', '{id}')"),
        )
        .await;
    }
    let reused: i64 =
        sqlx::query_scalar("SELECT min(id) FROM deletion_requests WHERE record_id = ?1")
            .bind(&ids(7000, 1)[0])
            .fetch_one(&env.sql)
            .await
            .unwrap();
    assert!(
        reused <= max_id,
        "SQLite reused a freed id: {reused} <= {max_id}"
    );
    assert_counts_true(&env, "inserts into freed ids").await;
    assert_eq!(env.store.fold_counts().await.unwrap(), 8);
    assert_counts_true(&env, "the fold").await;
    assert_eq!(env.store.fold_counts().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_count_is_exact_at_the_window_edge_and_counts_sql_rows() {
    let env = TestEnv::new(Faults::default()).await;
    // Successes 10 s apart over three minutes, by plain SQL, then folded.
    let minute = 60_000i64;
    let base = (zdel::clock::now_ms() / minute - 10) * minute;
    for (i, id) in ids(0, 18).iter().enumerate() {
        exec(
            &env,
            &format!(
                "INSERT INTO deletion_requests (module, record_id, state, outcome_code, finished_at)
                 VALUES ('Leads', '{id}', 'succeeded', 'SUCCESS', {})",
                base + i as i64 * 10_000
            ),
        )
        .await;
    }
    let expect = |since: i64| (0..18).filter(|i| base + i * 10_000 >= since).count() as i64;
    let edges = [
        base - 1,
        base,
        base + 25_000,
        base + minute + 5_000,
        base + 170_000,
    ];
    for folded in [false, true] {
        if folded {
            assert_eq!(env.store.fold_counts().await.unwrap(), 18);
        }
        for since in edges {
            assert_eq!(
                env.store.succeeded_since(since).await.unwrap(),
                expect(since),
                "folded: {folded}, since {since}"
            );
        }
    }
}
