//! `deletion_requests` is an interface: a bare INSERT from another connection
//! is picked up by a running server, and malformed rows are refused by SQLite.

mod common;

use std::time::Duration;

use common::{TestEnv, ids, wait_until};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use zdel::sandbox::Faults;

async fn other_connection(env: &TestEnv) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(&env.db_path)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_inserted_by_sql_while_serving_is_processed() {
    let env = TestEnv::new(Faults::default()).await;
    let id = &ids(0, 1)[0];
    env.sb().add_records("Leads", [id]);
    let (shutdown, handle) = env.serve();

    let mut other = other_connection(&env).await;
    sqlx::query("INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', ?1)")
        .bind(id)
        .execute(&mut other)
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "the SQL row to succeed", || async {
        env.count_in_state("succeeded").await == 1
    })
    .await;
    assert!(!env.sb().has_record("Leads", id));
    shutdown.cancel();
    handle.await.unwrap();
    other.close().await.unwrap();

    let (op, wf, state, code, finished): (String, i64, String, String, Option<i64>) =
        sqlx::query_as(
            "SELECT operation, wf_trigger, state, outcome_code, finished_at FROM deletion_requests",
        )
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(
        (op.as_str(), wf, state.as_str(), code.as_str()),
        ("delete", 1, "succeeded", "SUCCESS")
    );
    assert!(finished.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_inserts_are_rejected_by_sqlite() {
    let env = TestEnv::new(Faults::default()).await;
    let mut other = other_connection(&env).await;
    let cases = [
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '12a4')",
            "record_id_is_a_zoho_id",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '12345678901234567890')",
            "record_id_is_a_zoho_id",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '')",
            "record_id_is_a_zoho_id",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '0123')",
            "record_id_is_a_zoho_id",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '9223372036854775808')",
            "record_id_is_a_zoho_id",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '-5')",
            "record_id_is_a_zoho_id",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id, state) VALUES ('Leads', '1', 'failed')",
            "finished_at_iff_terminal",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('../Leads', '1')",
            "module_is_an_api_name",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Leads/1', '1')",
            "module_is_an_api_name",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Le ads', '1')",
            "module_is_an_api_name",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id) VALUES ('Lëads', '1')",
            "module_is_an_api_name",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id, operation) VALUES ('Leads', '1', 'nuke')",
            "operation_is_known",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id, state) VALUES ('Leads', '1', 'done')",
            "state_is_known",
        ),
        (
            "INSERT INTO deletion_requests (module, record_id, wf_trigger) VALUES ('Leads', '1', 2)",
            "wf_trigger_is_0_or_1",
        ),
        (
            "INSERT INTO deletion_requests (record_id) VALUES ('1')",
            "NOT NULL",
        ),
    ];
    for (sql, expected) in cases {
        let err = sqlx::query(sql)
            .execute(&mut other)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{sql}: {err}");
    }
    // A second live request for the same record is refused too.
    sqlx::query("INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '42')")
        .execute(&mut other)
        .await
        .unwrap();
    let err =
        sqlx::query("INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', '42')")
            .execute(&mut other)
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("UNIQUE"), "{err}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM deletion_requests")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(count, 1);
}
