//! `zdel verify` against the sandbox's recycle bin over HTTP: succeeded
//! deletes are marked `verified` (with Zoho's deleted_time and deleted_by)
//! or `not_in_recycle_bin`, from pages of the bin, never ID by ID.

mod common;

use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;

async fn marks(env: &TestEnv) -> Vec<(String, String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT record_id, state, verification, deleted_by FROM deletion_requests ORDER BY id",
    )
    .fetch_all(&env.sql)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_marks_each_deleted_id_by_what_the_recycle_bin_holds() {
    let env = TestEnv::new(Faults {
        credit_budget: Some(1_000_000),
        ..Faults::default()
    })
    .await;
    let all = ids(0, 5_000);
    env.sb().add_records("Leads", &all);
    // Others' deletions in the bin: 10 of ours before zdel gets to them,
    // and 50 records zdel never touches.
    let others = ids(100_000, 50);
    env.sb().add_records("Leads", &others);
    env.sb().delete_elsewhere("Leads", &others);
    env.sb().delete_elsewhere("Leads", &all[..10]);
    let file = env.dir.path().join("ids.txt");
    std::fs::write(&file, all.join("\n")).unwrap();
    let (code, _, stderr) = env.output(&[
        "enqueue",
        "--module",
        "Leads",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    env.drain(Duration::from_secs(60)).await;
    // 10 of zdel's deletions were purged (more than 60 days in the bin).
    env.sb().age_in_recycle_bin("Leads", &all[100..110], 61);

    let before = env.sb().stats().credits_used;
    let (code, stdout, stderr) = env.output(&["verify", "--selection", "1"]);
    assert_eq!(code, Some(6), "{stdout}{stderr}");
    // The bin holds 4,980 of zdel's + 60 others': 5,040 records, 26 pages.
    assert_eq!(
        stdout.lines().next().unwrap(),
        "Leads: 4980 of 4990 deleted record(s) are in the recycle bin; 10 not there (26 page(s))"
    );
    assert!(
        stderr.contains("10 deleted record(s) are not in the recycle bin"),
        "{stderr}"
    );
    assert_eq!(env.calls_to("deleted_records"), 26, "pages, never ID by ID");
    assert_eq!(env.sb().stats().credits_used - before, 52);

    let marks = marks(&env).await;
    let zdel_user = Some("Sandbox API User (3652397000000186017)".to_string());
    for (i, (id, state, verification, by)) in marks.iter().enumerate() {
        assert_eq!(id, &all[i]);
        match i {
            // Gone before zdel's call: failed, not a delete of zdel's to verify.
            0..10 => assert_eq!(
                (state.as_str(), verification, by),
                ("failed", &None, &None),
                "{id}"
            ),
            100..110 => assert_eq!(
                (state.as_str(), verification.as_deref(), by),
                ("succeeded", Some("not_in_recycle_bin"), &None),
                "{id}"
            ),
            _ => assert_eq!(
                (state.as_str(), verification.as_deref(), by),
                ("succeeded", Some("verified"), &zdel_user),
                "{id}"
            ),
        }
    }
    let deleted_time: Option<String> =
        sqlx::query_scalar("SELECT deleted_time FROM deletion_requests WHERE id = 11")
            .fetch_one(&env.sql)
            .await
            .unwrap();
    assert!(deleted_time.is_some_and(|t| t.starts_with("20") && t.ends_with("+00:00")));
    // outcomes show the marks.
    let (_, csv, _) = env.output(&["outcomes", "--state", "succeeded", "--selection", "1"]);
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",verification,deleted_time,deleted_by")
    );
    assert_eq!(
        csv.lines()
            .filter(|l| l.contains(",not_in_recycle_bin,"))
            .count(),
        10
    );

    // A second run looks only for the 10 not found; verified rows are done.
    let (code, stdout, _) = env.output(&["verify", "--module", "Leads"]);
    assert_eq!(code, Some(6));
    assert!(
        stdout.starts_with("Leads: 0 of 10 deleted record(s)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_with_verify_after_run_checks_what_it_deleted() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("VERIFY__AFTER_RUN", "true");
    let all = ids(0, 300);
    env.seed_and_enqueue("Leads", &all, true).await;
    let (code, stdout, stderr) = env.output(&["drain"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("verified 300 of 300 deleted this run in the recycle bin; 0 not there"),
        "{stdout}"
    );
    assert_eq!(env.calls_to("deleted_records"), 2);
    let (_, status, _) = env.output(&["status"]);
    assert!(
        status.contains("recycle-bin checks (zdel verify):")
            && status.contains("after drain: 300 of 300 in the recycle bin, 0 not there"),
        "{status}"
    );

    // What a drain verified is not checked again.
    let (code, stdout, stderr) = env.output(&["verify", "--since", "1h"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("nothing to verify"), "{stdout}");
}
