//! `zdel restore` against the sandbox's recycle bin over HTTP: restore
//! requests in the same queue as deletes, an outcome per ID (SUCCESS,
//! INVALID_DATA when not in the bin, SCHEDULED then gone from the bin),
//! crash safety, and the 60-day limit up front.

mod common;

use std::time::Duration;

use common::{TestEnv, ids, signal, wait_until};
use zdel::sandbox::Faults;

async fn rows(env: &TestEnv, selection: i64) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT record_id, state, outcome_code, outcome_message FROM deletion_requests
         WHERE selection_id = ?1 ORDER BY CAST(record_id AS INTEGER)",
    )
    .bind(selection)
    .fetch_all(&env.sql)
    .await
    .unwrap()
}

/// `n` leads deleted by selection 1.
async fn deleted(env: &TestEnv, n: u64) -> Vec<String> {
    let all = ids(0, n);
    env.sb().add_records("Leads", &all);
    let file = env.dir.path().join("leads.txt");
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
    assert!(all.iter().all(|id| env.sb().in_recycle_bin("Leads", id)));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_gives_each_id_its_outcome_scheduled_ones_included() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("RETRY__BASE_DELAY_MS", "20");
    env.set("RETRY__MAX_DELAY_MS", "50");
    let all = deleted(&env, 1_250).await;
    // 5 purged from the bin meanwhile; restores of 100 are SCHEDULED (done
    // by Zoho before the next call), smaller ones restored at once.
    env.sb().age_in_recycle_bin("Leads", &all[..5], 61);
    env.sb().schedule_restores_over(99, Duration::ZERO);
    let (code, stdout, stderr) = env.output(&["restore", "--selection", "1", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "queued 1250 restore request(s) in 1 module(s) as selection 2; `zdel drain` (or the running `zdel serve`) restores them, `zdel outcomes --selection 2` shows each\n"
    );
    env.drain(Duration::from_secs(60)).await;
    let rows = rows(&env, 2).await;
    assert_eq!(rows.len(), 1_250);
    for (i, (id, state, code, message)) in rows.iter().enumerate() {
        assert_eq!(id, &all[i]);
        match i {
            0..5 => {
                assert_eq!(
                    (state.as_str(), code.as_str()),
                    ("failed", "INVALID_DATA"),
                    "{id}"
                );
                assert!(
                    message.starts_with("not in the recycle bin: purged after 60 days"),
                    "{message}"
                );
            }
            // Restored at once, or SCHEDULED and then gone from the bin
            // (which batch a row rode in is the claims' business).
            _ => {
                assert_eq!(state, "succeeded", "{id}: {message}");
                assert!(
                    code == "SUCCESS"
                        || (code == "INVALID_DATA"
                            && message
                                .starts_with("restored: live again, no longer in the recycle bin")),
                    "{id}: {code} {message}"
                );
            }
        }
    }
    assert!(all[5..].iter().all(|id| env.sb().has_record("Leads", id)));
    let scheduled = env.sb().stats().statuses.get(&202).copied().unwrap_or(0);
    assert!(
        scheduled >= 11,
        "restores of 100 were scheduled: {scheduled}"
    );
    let restored_later = rows
        .iter()
        .filter(|r| r.1 == "succeeded" && r.2 == "INVALID_DATA")
        .count();
    assert!(
        restored_later >= 1_095,
        "scheduled, then gone from the bin: {restored_later}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_mid_run_ends_with_every_id_terminal_once() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("WORKER__LEASE_MS", "1500");
    env.set("ZOHO__REQUEST_TIMEOUT_MS", "1000");
    env.set("LIMITS__MAX_CONCURRENCY", "1");
    let all = deleted(&env, 600).await;
    let (code, _, stderr) = env.output(&["restore", "--selection", "1", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut faults = env.sb().faults();
    faults.latency = Duration::from_millis(80);
    env.sb().set_faults(faults);
    let child = env.zdel(&["drain"]).spawn().unwrap();
    wait_until(Duration::from_secs(30), "restores under way", || async {
        env.calls_to("restore") >= 2
    })
    .await;
    signal(&child, libc::SIGKILL);
    let _ = child.wait_with_output().await;
    env.sb().set_faults(Faults::default());
    env.drain(Duration::from_secs(60)).await;
    let rows = rows(&env, 2).await;
    assert_eq!(rows.len(), 600, "one row per ID, never two");
    assert!(
        rows.iter().all(|(_, state, _, _)| state == "succeeded"),
        "{rows:?}"
    );
    assert!(
        all.iter()
            .all(|id| env.sb().has_record("Leads", id) && !env.sb().in_recycle_bin("Leads", id))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_older_than_60_days_are_refused_up_front() {
    let env = TestEnv::new(Faults::default()).await;
    let all = deleted(&env, 3).await;
    let old = zdel::clock::now_ms() - 61 * 24 * 3600 * 1000;
    sqlx::query("UPDATE deletion_requests SET finished_at = ?1 WHERE record_id = ?2")
        .bind(old)
        .bind(&all[0])
        .execute(&env.sql)
        .await
        .unwrap();
    let (code, stdout, stderr) = env.output(&["restore", "--module", "Leads", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("1 record(s) were deleted more than 60 days ago"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("queued 2 restore request(s)"),
        "{stdout}"
    );
    // Off a terminal, above select.confirm_above, it needs --yes.
    let (code, _, stderr) = env.output(&["restore", "--module", "Leads", "--ids", &all[1]]);
    assert_eq!(
        code,
        Some(0),
        "under the threshold it does not ask: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_restore_that_never_comes_back_fails_after_a_live_check() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("RETRY__BASE_DELAY_MS", "20");
    env.set("RETRY__MAX_DELAY_MS", "50");
    let all = deleted(&env, 3).await;
    env.sb().schedule_restores_over(2, Duration::ZERO);
    env.sb().lose_scheduled_restores(true);
    let (code, _, stderr) = env.output(&["restore", "--selection", "1", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    env.drain(Duration::from_secs(30)).await;
    for (id, state, code, message) in rows(&env, 2).await {
        assert_eq!(
            (state.as_str(), code.as_str()),
            ("failed", "INVALID_DATA"),
            "{id}"
        );
        assert!(
            message.starts_with("neither in the recycle bin nor live"),
            "{message}"
        );
    }
    // One look-up of the three, after the scheduled restore.
    assert_eq!(env.calls_to("read"), 1);
    assert!(all.iter().all(|id| !env.sb().has_record("Leads", id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_and_its_parent_restored_together_both_come_back() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("RETRY__BASE_DELAY_MS", "20");
    env.set("RETRY__MAX_DELAY_MS", "50");
    let deal = ids(0, 1);
    let account = ids(100, 1);
    env.seed_and_enqueue("Deals", &deal, true).await;
    env.seed_and_enqueue("Accounts", &account, true).await;
    env.drain(Duration::from_secs(30)).await;
    env.sb()
        .restore_needs_parent(&deal[0], "Accounts", &account[0]);
    // Above select.confirm_above, off a terminal: refused without --yes.
    env.set("SELECT__CONFIRM_ABOVE", "1");
    let (code, _, stderr) = env.output(&["restore", "--since", "1h"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("2 record(s) will be restored"), "{stderr}");
    let (code, stdout, stderr) = env.output(&["restore", "--since", "1h", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("queued 2 restore request(s) in 2 module(s)"),
        "{stdout}"
    );
    env.drain(Duration::from_secs(30)).await;
    let states: Vec<(String, String)> = sqlx::query_as(
        "SELECT module, state FROM deletion_requests WHERE operation = 'restore' ORDER BY module",
    )
    .fetch_all(&env.sql)
    .await
    .unwrap();
    assert_eq!(
        states,
        vec![
            ("Accounts".into(), "succeeded".into()),
            ("Deals".into(), "succeeded".into())
        ]
    );
    assert!(env.sb().has_record("Deals", &deal[0]) && env.sb().has_record("Accounts", &account[0]));
}
