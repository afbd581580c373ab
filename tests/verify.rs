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
            .ends_with(",verification,deleted_time,deleted_by,related_list,related_id,queued_by,queued_how,config_hash")
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

/// Three leads: `lost` is deleted by a call whose answer is lost
/// (INTERNAL_ERROR for it), `never` never existed and its first call too
/// ends without an answer, `plain` is deleted at once. Their rows' (state,
/// code, message) after a drain.
async fn settle(env: &mut TestEnv) -> Vec<(String, String, String)> {
    env.set("RETRY__BASE_DELAY_MS", "20");
    env.set("RETRY__MAX_DELAY_MS", "50");
    let leads = ids(0, 3);
    let (lost, never, plain) = (&leads[0], &leads[1], &leads[2]);
    env.sb().add_records("Leads", [lost, plain]);
    env.sb().delete_then_fail_internally(lost);
    env.sb().fail_record_internally(never, 1);
    env.enqueue("Leads", &leads, true).await;
    env.drain(Duration::from_secs(30)).await;
    sqlx::query_as("SELECT state, outcome_code, outcome_message FROM deletion_requests ORDER BY id")
        .fetch_all(&env.sql)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_data_after_a_lost_answer_is_settled_by_the_recycle_bin_both_ways() {
    let mut env = TestEnv::new(Faults::default()).await;
    let rows = settle(&mut env).await;
    let (state, code, message) = &rows[0];
    assert_eq!(
        (state.as_str(), code.as_str()),
        ("succeeded", "INVALID_DATA")
    );
    assert!(
        message.starts_with("confirmed by the recycle bin: deleted at 20")
            && message.contains("by Sandbox API User (3652397000000186017)"),
        "{message}"
    );
    let (state, code, message) = &rows[1];
    assert_eq!((state.as_str(), code.as_str()), ("failed", "INVALID_DATA"));
    assert!(
        message.starts_with("not in the recycle bin either: the record did not exist"),
        "{message}"
    );
    assert_eq!(
        (rows[2].0.as_str(), rows[2].1.as_str()),
        ("succeeded", "SUCCESS")
    );
    // One look-up for the two IDs answered INVALID_DATA after a lost answer.
    assert_eq!(env.calls_to("recycle_bin"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_recycle_bin_the_old_rule_decides_and_says_so() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.sb().lack_scope("recycle_bin", true);
    let rows = settle(&mut env).await;
    for (state, code, message) in &rows[..2] {
        assert_eq!(
            (state.as_str(), code.as_str()),
            ("succeeded", "INVALID_DATA")
        );
        assert!(
            message.contains("the recycle bin could not be checked (")
                && message.contains("OAUTH_SCOPE_MISMATCH")
                && message.contains("so the old rule decided"),
            "{message}"
        );
    }
    // Off: the old rule, without a look-up.
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("VERIFY__AMBIGUOUS", "false");
    let rows = settle(&mut env).await;
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str()),
        ("succeeded", "INVALID_DATA")
    );
    assert_eq!(env.calls_to("recycle_bin"), 0);
}
