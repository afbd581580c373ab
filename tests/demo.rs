//! `zdel demo` (the quick start's first command): against its own sandbox,
//! it queues Contacts and Deals by ID, previews and selects the junk Leads
//! by criteria, and drains everything to an outcome per ID.

mod common;

use common::text;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_previews_and_selects_before_it_deletes_and_ends_with_every_id_decided() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zdel"));
    cmd.args(["demo", "--ids", "3000", "--latency-ms", "1", "--database"])
        .arg(&db)
        .current_dir(dir.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("ZDEL") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let preview = stdout
        .find("750 record(s) of Leads match \"Lead_Status = 'Junk Lead'\" (Zoho's Record Count")
        .expect(&stdout);
    let nothing = stdout.find("nothing was queued\n").expect(&stdout);
    let selected = stdout
        .find("selected 750 record(s) of Leads in 1 page(s); queued 750 for delete; selection 1\n")
        .expect(&stdout);
    let outcomes = stdout.find("IDs by outcome").expect(&stdout);
    assert!(
        preview < nothing && nothing < selected && selected < outcomes,
        "{stdout}"
    );
    assert!(
        stdout.contains("  3652397001000000000\tDemo\tlead0@example.com\n"),
        "{stdout}"
    );
    assert!(stdout.contains("stopped because:   Drained"), "{stdout}");

    let sql = common::raw_sql(&db).await;
    let leads: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM deletion_requests WHERE module = 'Leads' GROUP BY state",
    )
    .fetch_all(&sql)
    .await
    .unwrap();
    let decided: i64 = leads
        .iter()
        .filter(|(s, _)| s == "succeeded" || s == "failed")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(decided, 750, "every junk Lead decided: {leads:?}");
    let undecided: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deletion_requests WHERE state IN ('pending', 'running')",
    )
    .fetch_one(&sql)
    .await
    .unwrap();
    assert_eq!(undecided, 0);
    let method: String = sqlx::query_scalar("SELECT method FROM selections WHERE id = 1")
        .fetch_one(&sql)
        .await
        .unwrap();
    assert_eq!(method, "coql");
}
