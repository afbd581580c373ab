//! Result files and the filters around them: `outcomes --split DIR` writes
//! success.csv and error.csv in Data Loader's shape; `retry --code` takes
//! several codes, without case; `cancel --file` takes IDs as enqueue does.

mod common;

use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;

fn read(path: &std::path::Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let mut rows = vec![r.headers().unwrap().iter().map(str::to_string).collect()];
    rows.extend(
        r.records()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect()),
    );
    rows
}

const HEADER: [&str; 10] = [
    "record_id",
    "module",
    "operation",
    "related_list",
    "related_id",
    "code",
    "message",
    "attempts",
    "finished_at",
    "verified",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_split_into_success_and_error_files_and_the_filters_around_them() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 5);
    env.sb().add_records("Leads", &leads[..4]);
    let (code, _, stderr) =
        env.output(&["enqueue", "--module", "Leads", "--ids", &leads.join(",")]);
    assert_eq!(code, Some(0), "{stderr}");
    env.drain(Duration::from_secs(30)).await;
    let (code, _, _) = env.output(&["verify", "--selection", "1"]);
    assert_eq!(code, Some(0));

    let dir = env.dir.path().join("results");
    let (code, stdout, stderr) = env.output(&[
        "outcomes",
        "--selection",
        "1",
        "--split",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("wrote 4 row(s) to "), "{stdout}");
    let success = read(&dir.join("success.csv"));
    assert_eq!(success[0], HEADER);
    assert_eq!(success.len(), 5);
    for (row, id) in success[1..].iter().zip(&leads[..4]) {
        assert_eq!(
            row[..8],
            [
                id.as_str(),
                "Leads",
                "delete",
                "",
                "",
                "SUCCESS",
                "record deleted",
                "1"
            ]
        );
        assert!(
            row[8].len() == 20 && row[8].ends_with('Z'),
            "ISO 8601 UTC: {}",
            row[8]
        );
        assert_eq!(row[9], "verified");
    }
    let error = read(&dir.join("error.csv"));
    assert_eq!(error.len(), 2);
    assert_eq!(
        error[1][..8],
        [
            leads[4].as_str(),
            "Leads",
            "delete",
            "",
            "",
            "INVALID_DATA",
            "the id given seems to be invalid",
            "1"
        ]
    );
    assert_eq!(error[1][9], "");

    // A filter that matches nothing still writes both headers.
    let empty = env.dir.path().join("empty");
    let (code, _, _) = env.output(&[
        "outcomes",
        "--selection",
        "1",
        "--code",
        "NOPE",
        "--split",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(
        read(&empty.join("success.csv")),
        vec![HEADER.map(str::to_string).to_vec()]
    );
    assert_eq!(
        read(&empty.join("error.csv")),
        vec![HEADER.map(str::to_string).to_vec()]
    );

    // retry --code: several codes, any case.
    let (code, stdout, stderr) = env.output(&[
        "retry",
        "--selection",
        "1",
        "--code",
        "http_503,invalid_data",
        "--yes",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("requeued 1 request(s)"), "{stdout}");
    let pending: Vec<String> =
        sqlx::query_scalar("SELECT record_id FROM deletion_requests WHERE state = 'pending'")
            .fetch_all(&env.sql)
            .await
            .unwrap();
    assert_eq!(pending, vec![leads[4].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_takes_a_file_of_ids_checked_before_anything_is_cancelled() {
    let env = TestEnv::new(Faults::default()).await;
    let queued = ids(0, 3);
    let (code, _, stderr) =
        env.output(&["enqueue", "--module", "Leads", "--ids", &queued.join(",")]);
    assert_eq!(code, Some(0), "{stderr}");
    let bad = env.dir.path().join("bad.txt");
    std::fs::write(&bad, format!("{}\nnot-an-id\n", queued[0])).unwrap();
    let (code, _, stderr) = env.output(&[
        "cancel",
        "--module",
        "Leads",
        "--file",
        bad.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.txt:2: \"not-an-id\" is not a record ID"),
        "{stderr}"
    );
    let file = env.dir.path().join("ids.txt");
    std::fs::write(&file, format!("{}\r\n\n{}\n", queued[0], queued[2])).unwrap();
    let (code, stdout, stderr) = env.output(&[
        "cancel",
        "--module",
        "Leads",
        "--file",
        file.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "cancelled 2 request(s)\n");
    let states: Vec<(String, String)> =
        sqlx::query_as("SELECT record_id, state FROM deletion_requests ORDER BY id")
            .fetch_all(&env.sql)
            .await
            .unwrap();
    assert_eq!(
        states,
        vec![
            (queued[0].clone(), "cancelled".to_string()),
            (queued[1].clone(), "pending".to_string()),
            (queued[2].clone(), "cancelled".to_string()),
        ]
    );
}
