//! Every `zdel enqueue` is a selection: recorded with its method, source,
//! the file's SHA-256, who ran it and how many IDs it found and queued;
//! its rows name it, so `outcomes`, `cancel` and `retry` take
//! `--selection N`.

mod common;

use std::process::Stdio;

use common::{TestEnv, ids, text};
use zdel::sandbox::Faults;

fn zdel(env: &TestEnv, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env
        .zdel_blocking(args)
        .env("USER", "erasure-bot")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_enqueue_is_a_selection_its_rows_can_be_picked_by() {
    let env = TestEnv::new(Faults::default()).await;
    let file = env.dir.path().join("leads.txt");
    let lines = ids(0, 5).join("\n") + "\n";
    std::fs::write(&file, &lines).unwrap();
    let csv = env.dir.path().join("export.csv");
    let csv_text = format!("Record Id,Email\nzcrm_{},a@b.c\n", ids(10, 1)[0]);
    std::fs::write(&csv, &csv_text).unwrap();
    let file_arg = file.to_str().unwrap();

    let (code, stdout, stderr) = zdel(&env, &["enqueue", "--module", "Leads", "--file", file_arg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.ends_with("selection 1\n"), "{stdout}");
    let listed = ids(20, 3).join(",");
    let (code, _, stderr) = zdel(&env, &["enqueue", "--module", "Leads", "--ids", &listed]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = zdel(
        &env,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    // The same file again: found 5, all already queued.
    let (code, _, stderr) = zdel(&env, &["enqueue", "--module", "Leads", "--file", file_arg]);
    assert_eq!(code, Some(0), "{stderr}");

    let (code, stdout, _) = zdel(&env, &["selections", "--json"]);
    assert_eq!(code, Some(0));
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let brief: Vec<(i64, &str, &str, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["method"].as_str().unwrap(),
                r["state"].as_str().unwrap(),
                r["ids_found"].as_i64().unwrap(),
                r["ids_queued"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            (4, "file", "complete", 5, 0),
            (3, "csv", "complete", 1, 1),
            (2, "ids", "complete", 3, 3),
            (1, "file", "complete", 5, 5),
        ]
    );
    assert_eq!(rows[3]["source"], file_arg);
    assert_eq!(rows[3]["source_hash"], sha256_hex(lines.as_bytes()));
    assert_eq!(rows[1]["source_hash"], sha256_hex(csv_text.as_bytes()));
    // --ids: the hash of the list, one ID per line.
    assert_eq!(
        rows[2]["source_hash"],
        sha256_hex(ids(20, 3).join("\n").as_bytes())
    );
    assert_eq!(rows[0]["os_user"], "erasure-bot");
    assert_eq!(rows[0]["module"], "Leads");
    let (_, table, _) = zdel(&env, &["selections"]);
    assert!(table.contains("erasure-bot@"), "{table}");

    // Its rows, and only its rows.
    let (_, outcomes, _) = zdel(&env, &["outcomes", "--selection", "2", "--format", "json"]);
    let got: Vec<String> = outcomes
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["record_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, ids(20, 3));
    let (code, stdout, stderr) = zdel(&env, &["cancel", "--selection", "1", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("cancelled 5 request(s)"), "{stdout}");
    assert_eq!(env.count_in_state("cancelled").await, 5);
    assert_eq!(env.count_in_state("pending").await, 4);
    let (code, stdout, stderr) = zdel(
        &env,
        &["retry", "--state", "cancelled", "--selection", "1", "--yes"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains('5'), "{stdout}");
    assert_eq!(env.count_in_state("pending").await, 9);
    // Neither --module nor --selection: a usage error.
    let (code, _, stderr) = zdel(&env, &["cancel", "--yes"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_one_selection_counts_its_rows_by_state_and_code() {
    let env = TestEnv::new(Faults::default()).await;
    // Selection 1: 5 IDs, 4 of them in Zoho. Selection 2 (other rows in
    // between): 3 IDs, not drained.
    let first = ids(0, 5);
    env.sb().add_records("Leads", &first[..4]);
    let (code, _, stderr) = zdel(
        &env,
        &["enqueue", "--module", "Leads", "--ids", &first.join(",")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = zdel(&env, &["drain"]);
    assert_eq!(code, Some(6), "{stderr}");
    let second = ids(100, 3).join(",");
    let (code, _, stderr) = zdel(&env, &["enqueue", "--module", "Leads", "--ids", &second]);
    assert_eq!(code, Some(0), "{stderr}");

    let (code, stdout, stderr) = zdel(&env, &["status", "--selection", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("selection 1: delete Leads by ids from --ids (sha256 "),
        "{stdout}"
    );
    assert!(stdout.contains("by erasure-bot@"), "{stdout}");
    assert!(stdout.contains(", complete\n"), "{stdout}");
    assert!(
        stdout.contains("IDs found 5, queued 5, skipped as already deleted 0"),
        "{stdout}"
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("state"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["failed", "INVALID_DATA", "1"],
            vec!["succeeded", "SUCCESS", "4"]
        ]
    );
    let (_, json, _) = zdel(&env, &["status", "--selection", "2", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["selection"]["ids_queued"], 3);
    assert_eq!(
        json["counts"],
        serde_json::json!([{"state": "pending", "code": null, "count": 3}])
    );
    let (code, _, stderr) = zdel(&env, &["status", "--selection", "9"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("there is no selection 9 (zdel selections lists them)"),
        "{stderr}"
    );
}
