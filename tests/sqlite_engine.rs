//! The SQLite engine behind the store's contract, where a test needs SQL to
//! set up or see what it shows: a lane's share across retry times, group
//! commits with one reaped lease (each caller still gets its own answer,
//! fenced by its own lease), waiting out another process's write lock, a
//! write dropped uncommitted, the dry-run lease column, page sizes and the
//! upgrades to migrations 0004 and 0005. (What the API alone shows is in
//! tests/store_contract.rs.)

mod common;

use std::time::Duration;

use common::{TestEnv, ids, request, succeeded};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use zdel::sandbox::Faults;
use zdel::store::{ClaimRequest, LaneKey, Store, StoreError};

#[tokio::test]
async fn a_lane_share_taken_at_once_follows_due_order_across_retry_times() {
    let env = TestEnv::new(Faults::default()).await;
    env.enqueue("Leads", &ids(0, 400), true).await;
    let store = &env.store;
    // As retries leave them: every third row due at 500, every seventh not
    // yet due (5,000 > now = 1,000), the rest due at 0.
    sqlx::query(
        "UPDATE deletion_requests
         SET next_attempt_at = CASE WHEN id % 7 = 0 THEN 5000 WHEN id % 3 = 0 THEN 500 ELSE 0 END",
    )
    .execute(&env.sql)
    .await
    .unwrap();
    let due: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT next_attempt_at, id FROM deletion_requests WHERE next_attempt_at <= 1000
         ORDER BY next_attempt_at, id",
    )
    .fetch_all(&env.sql)
    .await
    .unwrap();
    assert_eq!(due.len(), 400 - 400 / 7);
    let lanes = store.pending_lanes().await.unwrap();
    let limit = |_: &LaneKey| 100;

    // Two claims of two slots each: the lane's first batch alone, then the
    // rest of its share in one statement, continuing where the first ended
    // (inside the next_attempt_at = 0 rows, then on into the 500 rows).
    let mut claimed: Vec<Vec<i64>> = Vec::new();
    for _ in 0..2 {
        for batch in store
            .claim_batches(&request(&lanes, &limit, 2, None))
            .await
            .unwrap()
        {
            let rows: Vec<i64> = batch.rows.iter().map(|r| r.id).collect();
            assert!(rows.is_sorted(), "a batch's rows come sorted by id");
            claimed.push(rows);
        }
    }
    assert_eq!(
        claimed.iter().map(Vec::len).collect::<Vec<_>>(),
        [100, 100, 100, 43]
    );
    // Each batch is the next 100 in due order: nothing skipped or taken twice.
    let in_due_order: Vec<i64> = due.iter().map(|(_, id)| *id).collect();
    for (n, batch) in claimed.iter().enumerate() {
        let mut expected = in_due_order[n * 100..(n * 100 + 100).min(in_due_order.len())].to_vec();
        expected.sort();
        assert_eq!(batch, &expected, "batch {n}");
    }
    assert_eq!(env.count_in_state("running").await, 343);
    assert_eq!(
        env.count_in_state("pending").await,
        57,
        "the rows not yet due"
    );
    let not_due_running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deletion_requests WHERE state = 'running' AND next_attempt_at > 1000",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap();
    assert_eq!(not_due_running, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_written_together_answer_each_caller_under_its_own_lease() {
    let env = TestEnv::new(Faults::default()).await;
    env.enqueue("Leads", &ids(0, 1_200), true).await;
    let store = env.store.clone();
    let lanes = store.pending_lanes().await.unwrap();
    let limit = |_: &LaneKey| 100;
    let batches = store
        .claim_batches(&request(&lanes, &limit, 12, None))
        .await
        .unwrap();
    assert_eq!(batches.len(), 12);

    // The first batch's lease is reaped and its rows claimed again by "b":
    // its late outcomes must not land.
    sqlx::query("UPDATE deletion_requests SET lease_expires_at = 0 WHERE lease_token = ?1")
        .bind(batches[0].lease.0)
        .execute(&env.sql)
        .await
        .unwrap();
    assert_eq!(store.reap_expired_leases(2_000).await.unwrap(), 100);
    let again = common::claim_one(&store, 2_000, "b", 60_000, &[])
        .await
        .unwrap();
    assert_eq!(
        again.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        batches[0].rows.iter().map(|r| r.id).collect::<Vec<_>>()
    );

    // All twelve record at once (as batches finishing together do).
    let tasks: Vec<_> = batches
        .iter()
        .map(|b| {
            let store = store.clone();
            let lease = b.lease;
            let outcomes = succeeded(b.rows.iter().map(|r| r.id));
            tokio::spawn(async move { store.record_outcomes(lease, &outcomes, 3_000).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        answers.push((r.applied, r.lease_lost));
    }
    let mut expected = vec![(100, 0); 12];
    expected[0] = (0, 100);
    assert_eq!(answers, expected);
    assert_eq!(env.count_in_state("succeeded").await, 1_100);
    let still_b: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deletion_requests WHERE state = 'running' AND lease_owner = 'b'",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap();
    assert_eq!(
        still_b, 100,
        "the reaped batch's rows stay with the new claim"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_out_another_process_holding_the_lock_then_gives_up() {
    let env = TestEnv::new(Faults::default()).await;
    let mut other = SqliteConnectOptions::new()
        .filename(&env.db_path)
        .connect()
        .await
        .unwrap();

    // Held for a moment: the enqueue waits and then succeeds.
    let held = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let store = env.store.clone();
    let enqueue = tokio::spawn(async move {
        let mut e = store.begin_enqueue().await?;
        e.add(
            &zdel::store::RequestTemplate::delete("Leads", true),
            &["3652397000000000001"],
        )
        .await?;
        e.commit().await
    });
    // Blocked as long as the lock is held...
    let mut enqueue = enqueue;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut enqueue)
            .await
            .is_err(),
        "the enqueue finished while another process held the write lock"
    );
    // ...and through as soon as it is released.
    held.rollback().await.unwrap();
    enqueue.await.unwrap().unwrap();
    assert_eq!(env.count_in_state("pending").await, 1);

    // Held longer than busy_timeout: a clear "database is locked", nothing written.
    let impatient = Store::open(env.db_path.to_str().unwrap(), Duration::from_millis(200))
        .await
        .unwrap();
    let held = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let started = std::time::Instant::now();
    let result = impatient.begin_enqueue().await;
    let waited = started.elapsed();
    let Err(StoreError::Database { source: e, .. }) = result else {
        panic!("expected a busy error");
    };
    assert!(e.to_string().contains("locked"), "{e}");
    assert!(
        waited >= Duration::from_millis(150),
        "gave up after {waited:?}"
    );
    drop(held);
    assert_eq!(env.count_in_state("pending").await, 1);
}

#[tokio::test]
async fn a_write_dropped_uncommitted_is_rolled_back_and_frees_the_lock() {
    let env = TestEnv::new(Faults::default()).await;
    let mut other = SqliteConnectOptions::new()
        .filename(&env.db_path)
        .busy_timeout(Duration::ZERO)
        .connect()
        .await
        .unwrap();
    let mut abandoned = env.store.begin_enqueue().await.unwrap();
    abandoned
        .add(
            &zdel::store::RequestTemplate::delete("Leads", true),
            &["3652397000000000001", "3652397000000000002"],
        )
        .await
        .unwrap();
    // Another process cannot write while it is open...
    assert!(other.begin_with("BEGIN IMMEDIATE").await.is_err());
    drop(abandoned);
    // ...and can soon after it is dropped, with nothing of it written,
    // although zdel writes nothing more meanwhile.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let free = loop {
        match other.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => break tx,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("locked"), "{e}");
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("the write lock was still held 5 s after the drop: {e}"),
        }
    };
    free.rollback().await.unwrap();
    assert_eq!(env.count_in_state("pending").await, 0);
    // The writer goes on as normal.
    env.enqueue("Leads", &ids(0, 3), true).await;
    assert_eq!(env.count_in_state("pending").await, 3);
}

#[tokio::test]
async fn migration_0004_keeps_every_row_and_fills_finished_at() {
    let dir = tempfile::tempdir().unwrap();
    let db = old_database(
        dir.path(),
        3,
        &[
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '3652397000000000001')",
            "INSERT INTO deletion_requests (module, record_id, state, outcome_code, updated_at)
             VALUES ('Leads', '3652397000000000002', 'succeeded', 'SUCCESS', 1234)",
            "INSERT INTO deletion_requests (module, record_id, state, lease_token, lease_owner, lease_expires_at)
             VALUES ('Contacts', '3652397000000000003', 'running', 7, 'old', 99)",
            "INSERT INTO deletion_requests (operation, module, record_id, related_list, related_id)
             VALUES ('delink', 'Leads', '3652397000000000004', 'Campaigns', '3652397000000000005')",
        ],
    )
    .await;

    let _store = Store::open(db.to_str().unwrap(), Duration::from_secs(5))
        .await
        .unwrap();
    let sql = common::raw_sql(&db).await;
    type Row = (i64, String, String, Option<i64>, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, record_id, state, finished_at, lease_token FROM deletion_requests ORDER BY id",
    )
    .fetch_all(&sql)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                1,
                "3652397000000000001".into(),
                "pending".into(),
                None,
                None
            ),
            (
                2,
                "3652397000000000002".into(),
                "succeeded".into(),
                Some(1234),
                None
            ),
            (
                3,
                "3652397000000000003".into(),
                "running".into(),
                None,
                Some(7)
            ),
            (
                4,
                "3652397000000000004".into(),
                "pending".into(),
                None,
                None
            ),
        ]
    );
    // The new table enforces "one live request per target" on finished_at.
    let dup = sqlx::query(
        "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '3652397000000000001')",
    )
    .execute(&sql)
    .await;
    assert!(
        dup.unwrap_err()
            .to_string()
            .contains("deletion_requests_one_live")
    );
    sqlx::query(
        "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '3652397000000000002')",
    )
    .execute(&sql)
    .await
    .unwrap();
}

/// A database file in `dir` as the first `migrations` migrations left it
/// (made with SQLite's default 4 KiB pages), with `inserts` run on it.
async fn old_database(
    dir: &std::path::Path,
    migrations: usize,
    inserts: &[&'static str],
) -> std::path::PathBuf {
    let db = dir.join("old.db");
    let old = dir.join("old-migrations");
    std::fs::create_dir(&old).unwrap();
    let mut names: Vec<_> =
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    names.sort();
    for path in &names[..migrations] {
        std::fs::copy(path, old.join(path.file_name().unwrap())).unwrap();
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    for sql in inserts {
        sqlx::query(*sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    db
}

async fn page_size(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar::<_, i64>("PRAGMA page_size")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_existing_file_keeps_its_page_size_and_a_new_one_gets_32_kib_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = old_database(dir.path(), 3, &[]).await;
    let store = Store::open(db.to_str().unwrap(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(page_size(&common::raw_sql(&db).await).await, 4096);
    store.close().await;
    let fresh = TestEnv::new(Faults::default()).await;
    assert_eq!(page_size(&fresh.sql).await, 32_768);
}

#[tokio::test]
async fn migration_0005_marks_a_dry_runs_running_rows_by_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = old_database(
        dir.path(),
        4,
        &[
            "INSERT INTO deletion_requests (module, record_id, state, lease_token, lease_owner, lease_expires_at)
             VALUES ('Leads', '3652397000000000001', 'running', 7, 'dry-run:zdel-1-0000abcd', 99)",
            "INSERT INTO deletion_requests (module, record_id, state, lease_token, lease_owner, lease_expires_at)
             VALUES ('Leads', '3652397000000000002', 'running', 8, 'zdel-2-0000abcd', 99)",
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '3652397000000000003')",
        ],
    )
    .await;
    let store = Store::open(db.to_str().unwrap(), Duration::from_secs(5))
        .await
        .unwrap();
    let marks: Vec<i64> =
        sqlx::query_scalar("SELECT lease_dry_run FROM deletion_requests ORDER BY id")
            .fetch_all(&common::raw_sql(&db).await)
            .await
            .unwrap();
    assert_eq!(marks, [1, 0, 0]);
    // Reaped, the dry run's row counts no ambiguous attempt; the other does.
    assert_eq!(store.reap_expired_leases(1_000).await.unwrap(), 2);
    let ambiguous: Vec<i64> =
        sqlx::query_scalar("SELECT ambiguous_attempts FROM deletion_requests ORDER BY id")
            .fetch_all(&common::raw_sql(&db).await)
            .await
            .unwrap();
    assert_eq!(ambiguous, [0, 1, 0]);
}

#[tokio::test]
async fn a_dry_runs_expired_lease_counts_no_ambiguous_attempt() {
    let env = TestEnv::new(Faults::default()).await;
    env.enqueue("Leads", &ids(0, 2), true).await;
    let store = &env.store;
    let lanes = store.pending_lanes().await.unwrap();
    let claim = |owner: &'static str, dry_run: bool| {
        let lanes = lanes.clone();
        async move {
            store
                .claim_batches(&ClaimRequest {
                    now_ms: 1_000,
                    lanes: &lanes,
                    after: None,
                    skip_modules: &[],
                    skip_lanes: &[],
                    owner,
                    dry_run,
                    lease_ms: 100,
                    limit_for: &|_| 1,
                    max_batches: 1,
                    max_ids: None,
                    fence: None,
                })
                .await
                .unwrap()
        }
    };
    let dry = claim("dry", true).await;
    let real = claim("real", false).await;
    assert_eq!((dry.len(), real.len()), (1, 1));
    let ambiguous = || async {
        sqlx::query_as::<_, (String, i64, i64)>(
            "SELECT record_id, ambiguous_attempts, lease_dry_run FROM deletion_requests ORDER BY id",
        )
        .fetch_all(&env.sql)
        .await
        .unwrap()
    };
    let (dry_id, real_id) = (ids(0, 2)[0].clone(), ids(0, 2)[1].clone());
    assert_eq!(
        ambiguous().await,
        [(dry_id.clone(), 0, 1), (real_id.clone(), 0, 0)]
    );
    // A dry run's release touches its own rows only.
    assert_eq!(store.release_dry_run("real").await.unwrap(), 0);
    assert_eq!(store.reap_expired_leases(2_000).await.unwrap(), 2);
    assert_eq!(ambiguous().await, [(dry_id, 0, 0), (real_id, 1, 0)]);
}
