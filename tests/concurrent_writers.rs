//! Another writer — an operator's script inserting rows in small
//! transactions — while the daemon deletes at full speed: no "database is
//! locked" reaches the writer or a row, and no insert is lost.

mod common;

use std::time::Duration;

use common::{TestEnv, ids, wait_until};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use zdel::sandbox::Faults;

const WRITER_ROWS: u64 = 20_000;
const ROWS_PER_TX: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_transactions_from_another_writer_lose_nothing_and_lock_nothing() {
    let mut env = TestEnv::new(Faults {
        every_id_exists: true,
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__MAX_CONCURRENCY", "8");
    env.enqueue("Leads", &ids(0, 20_000), true).await;
    let (shutdown, handle) = env.serve();

    // The other writer: a plain connection with a busy timeout, like the sqlite3 shell.
    let mut writer = SqliteConnectOptions::new()
        .filename(&env.db_path)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let theirs = ids(1_000_000, WRITER_ROWS);
    for chunk in theirs.chunks(ROWS_PER_TX as usize) {
        let mut tx = writer.begin().await.unwrap();
        for id in chunk {
            sqlx::query(
                "INSERT INTO deletion_requests (module, record_id) VALUES ('Contacts', ?1)",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .expect("an operator's INSERT failed while zdel was busy");
        }
        tx.commit()
            .await
            .expect("an operator's COMMIT failed while zdel was busy");
    }
    writer.close().await.unwrap();

    wait_until(Duration::from_secs(60), "every row deleted", || async {
        env.count_in_state("succeeded").await == 40_000
    })
    .await;
    shutdown.cancel();
    handle.await.unwrap();

    let contacts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deletion_requests WHERE module = 'Contacts' AND state = 'succeeded'",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap();
    assert_eq!(contacts as u64, WRITER_ROWS, "an insert was lost");
    let locked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deletion_requests WHERE outcome_message LIKE '%locked%' OR outcome_message LIKE '%busy%'",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap();
    assert_eq!(locked, 0);
    // Each ID was sent exactly once (rows that trickle in may make partial batches).
    let sizes = env.sb().stats().ids_per_call;
    assert_eq!(sizes.iter().sum::<usize>(), 40_000);
    assert!(sizes.iter().all(|n| *n <= 100));
}
