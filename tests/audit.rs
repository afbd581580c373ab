//! An audit that stays: who queued each request (the OS user, or `sql`),
//! how (`cli`, `sql`) and the configuration's hash, in `outcomes`; nothing
//! pruned unless `zdel prune --before` is run, and then finished rows only.

mod common;

use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_says_who_queued_it_how_and_with_which_config() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 2);
    env.sb().add_records("Leads", &leads);
    let (code, _, stderr) = env.output(&["enqueue", "--module", "Leads", "--ids", &leads[0]]);
    assert_eq!(code, Some(0), "{stderr}");
    sqlx::query("INSERT INTO deletion_requests (module, record_id) VALUES ('Leads', ?1)")
        .bind(&leads[1])
        .execute(&env.sql)
        .await
        .unwrap();
    env.drain(Duration::from_secs(30)).await;
    let (code, json, _) = env.output(&["outcomes", "--format", "json"]);
    assert_eq!(code, Some(0));
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["queued_by"], zdel::store::this_user().as_str());
    assert_eq!(rows[0]["queued_how"], "cli");
    let hash = rows[0]["config_hash"].as_str().unwrap();
    assert!(
        hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    assert_eq!(
        (
            &rows[1]["queued_by"],
            &rows[1]["queued_how"],
            &rows[1]["config_hash"]
        ),
        (
            &serde_json::json!("sql"),
            &serde_json::json!("sql"),
            &serde_json::Value::Null
        )
    );
    let (_, listing, _) = env.output(&["selections"]);
    assert!(listing.contains(&format!("; config {hash}")), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_finished_rows_only_and_asks_first() {
    let env = TestEnv::new(Faults::default()).await;
    let done = ids(0, 3);
    env.seed_and_enqueue("Leads", &done, true).await;
    env.drain(Duration::from_secs(30)).await;
    let live = ids(100, 2);
    env.enqueue("Deals", &live, true).await;
    let count = |state: &'static str| {
        let sql = env.sql.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deletion_requests WHERE state = ?1")
                .bind(state)
                .fetch_one(&sql)
                .await
                .unwrap()
        }
    };
    // Finished a moment ago: not before an hour ago.
    let (code, stdout, _) = env.output(&["prune", "--before", "1h"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("no finished requests finished before 1h"),
        "{stdout}"
    );
    // Off a terminal it asks for --yes and deletes nothing.
    let (code, _, stderr) = env.output(&["prune", "--before", "2099-01-01T00:00:00Z"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("3 finished request(s)"), "{stderr}");
    assert_eq!(count("succeeded").await, 3);
    let (code, stdout, stderr) =
        env.output(&["prune", "--before", "2099-01-01T00:00:00Z", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "pruned 3 finished request(s); pending and running ones were not touched\n"
    );
    assert_eq!((count("succeeded").await, count("pending").await), (0, 2));
    // The maintained counts follow: only the live Deals are left.
    let (_, status, _) = env.output(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        v["counts"],
        serde_json::json!([{"count": 2, "module": "Deals", "operation": "delete", "state": "pending"}])
    );
}
