//! `zdel select --where` against the sandbox's COQL over HTTP: a snapshot
//! of every match past Zoho's 100,000-row OFFSET ceiling and nothing else;
//! a preview queues nothing; a refused query shows Zoho's details and
//! stores nothing; a selection stopped mid-way resumes with no gap and no
//! duplicate; above `select.confirm_above` it is released only with --yes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestEnv, ids, signal, text, wait_until};
use zdel::sandbox::Faults;

fn zdel(env: &TestEnv, args: &[&str]) -> (Option<i32>, String, String) {
    env.output(args)
}

fn lead(status: &str, last_name: &str) -> HashMap<String, String> {
    [("Lead_Status", status), ("Last_Name", last_name)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `n` leads, every fifth not junk; the junk ones' IDs.
fn seed(env: &TestEnv, n: u64) -> Vec<String> {
    let all = ids(0, n);
    env.sb().add_records_with_fields(
        "Leads",
        all.iter().enumerate().map(|(i, id)| {
            let status = if i % 5 == 4 { "Contacted" } else { "Junk Lead" };
            (id.clone(), lead(status, &format!("Doe{i}")))
        }),
    );
    all.iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 4)
        .map(|(_, id)| id.clone())
        .collect()
}

async fn queued(env: &TestEnv) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT record_id FROM deletion_requests ORDER BY CAST(record_id AS INTEGER)",
    )
    .fetch_all(&env.sql)
    .await
    .unwrap()
}

async fn claimable(env: &TestEnv) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM deletion_requests WHERE state = 'pending' AND next_attempt_at = 0",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap()
}

const JUNK: &str = "Lead_Status = 'Junk Lead'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_snapshots_every_match_past_the_offset_ceiling() {
    let env = TestEnv::new(Faults {
        credit_budget: Some(1_000_000),
        ..Faults::default()
    })
    .await;
    let want = seed(&env, 150_000);
    assert_eq!(want.len(), 120_000);

    let (code, stdout, stderr) = zdel(
        &env,
        &["select", "--module", "Leads", "--where", JUNK, "--yes"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "selected 120000 record(s) of Leads in 60 page(s); queued 120000 for delete; selection 1\n"
    );
    assert_eq!(queued(&env).await, want);
    assert_eq!(claimable(&env).await, 120_000);
    // The check (limit 1), then 60 pages of 2,000: 1 + 60 × 3 credits.
    assert_eq!(env.calls_to("coql"), 61);
    let (method, source, pages): (String, String, i64) =
        sqlx::query_as("SELECT method, source, pages FROM selections WHERE id = 1")
            .fetch_one(&env.sql)
            .await
            .unwrap();
    assert_eq!(
        (method.as_str(), source.as_str(), pages),
        (
            "coql",
            "select id from Leads where (Lead_Status = 'Junk Lead')",
            60
        )
    );
    let spent: i64 = sqlx::query_scalar("SELECT coalesce(sum(credits), 0) FROM credit_ledger")
        .fetch_one(&env.sql)
        .await
        .unwrap_or(0);
    assert_eq!(spent, 181);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_counts_and_samples_and_queues_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    let want = seed(&env, 5_000);
    let (code, stdout, stderr) = zdel(
        &env,
        &[
            "select",
            "--module",
            "Leads",
            "--where",
            JUNK,
            "--preview",
            "--show",
            "Last_Name,Lead_Status",
            "--sample",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with(
            "4000 record(s) of Leads match \"Lead_Status = 'Junk Lead'\" (counted now: 2 call(s), 6 credit(s); nothing was queued)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("a delete would take about 40 call(s) of 100 IDs"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "the first 2:\n  id\tLast_Name\tLead_Status\n  {}\tDoe0\tJunk Lead\n  {}\tDoe1\tJunk Lead\n",
            want[0], want[1]
        )),
        "{stdout}"
    );
    assert!(queued(&env).await.is_empty());
    let selections: i64 = sqlx::query_scalar("SELECT count(*) FROM selections")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(selections, 0);

    // Read by a pipe closed before anything is printed (`| head -0`): it
    // ends quietly, no panic.
    let mut child = env
        .zdel_blocking(&["select", "--module", "Leads", "--where", JUNK, "--preview"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_query_shows_zohos_details_and_stores_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    seed(&env, 10);
    let (code, _, stderr) = zdel(
        &env,
        &[
            "select",
            "--module",
            "Leads",
            "--where",
            "Lead_Stat = 'x'",
            "--yes",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "Zoho refused the query for --where \"Lead_Stat = 'x'\": INVALID_QUERY: column given seems to be invalid (column_name \"Lead_Stat\"); nothing was stored"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = zdel(
        &env,
        &[
            "select",
            "--module",
            "Leads",
            "--where",
            "Lead_Status = ",
            "--yes",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("SYNTAX_ERROR"), "{stderr}");
    assert!(stderr.contains("nothing was stored"), "{stderr}");
    let (code, _, stderr) = zdel(&env, &["select", "--module", "Leads", "--where", " "]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--where is empty"), "{stderr}");
    let selections: i64 = sqlx::query_scalar("SELECT count(*) FROM selections")
        .fetch_one(&env.sql)
        .await
        .unwrap_or(0);
    assert_eq!(selections, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_stopped_mid_way_resumes_with_no_gap_and_no_duplicate() {
    let env = TestEnv::new(Faults {
        latency: Duration::from_millis(30),
        credit_budget: Some(1_000_000),
        ..Faults::default()
    })
    .await;
    let want = seed(&env, 50_000);
    let args = ["select", "--module", "Leads", "--where", JUNK, "--yes"];
    let child = env.zdel(&args).spawn().unwrap();
    wait_until(Duration::from_secs(60), "two pages stored", || async {
        sqlx::query_scalar::<_, i64>("SELECT coalesce(max(pages), 0) FROM selections")
            .fetch_one(&env.sql)
            .await
            .unwrap_or(0)
            >= 2
    })
    .await;
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().await.unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let stored = queued(&env).await;
    assert!(
        stored.len() >= 4_000 && stored.len() < 40_000,
        "{}",
        stored.len()
    );
    assert_eq!(stored[..], want[..stored.len()], "a prefix, in order");
    assert_eq!(claimable(&env).await, 0, "none claimable");

    let (code, stdout, stderr) = zdel(&env, &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("resuming selection 1"), "{stderr}");
    assert!(stdout.contains("selected 40000 record(s)"), "{stdout}");
    assert!(stdout.ends_with("selection 1\n"), "{stdout}");
    assert_eq!(queued(&env).await, want);
    assert_eq!(claimable(&env).await, 40_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_confirm_above_it_is_released_only_with_yes() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("SELECT__CONFIRM_ABOVE", "100");
    let want = seed(&env, 500);
    let args = ["select", "--module", "Leads", "--where", JUNK];
    let (code, _, stderr) = zdel(&env, &args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("400 record(s) of Leads match (selection 1, stored)"),
        "{stderr}"
    );
    assert!(stderr.contains("add --yes to go ahead"), "{stderr}");
    assert!(
        stderr.contains("run the same command with --yes to release it"),
        "{stderr}"
    );
    assert_eq!(queued(&env).await, want);
    assert_eq!(claimable(&env).await, 0);
    let calls = env.calls_to("coql");

    let mut with_yes = args.to_vec();
    with_yes.push("--yes");
    let (code, stdout, stderr) = zdel(&env, &with_yes);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("selected 400 record(s)"), "{stdout}");
    assert_eq!(claimable(&env).await, 400);
    // The stored pages are not asked for again: only the check call.
    assert_eq!(env.calls_to("coql"), calls + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_is_selected_by_page_then_by_token() {
    let env = TestEnv::new(Faults {
        credit_budget: Some(1_000_000),
        ..Faults::default()
    })
    .await;
    // 2,500 records in the view (past the 10 numbered pages of 200), and
    // others in the module that it does not list.
    let listed = ids(0, 2_500);
    env.sb().add_view("Leads", "3652397000000087501", &listed);
    env.sb().add_records("Leads", ids(10_000, 300));
    let args = [
        "select",
        "--module",
        "Leads",
        "--cvid",
        "3652397000000087501",
    ];

    let mut preview = args.to_vec();
    preview.push("--preview");
    let (code, stdout, stderr) = zdel(&env, &preview);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("2500 record(s) of Leads match view 3652397000000087501 (counted now: 13 call(s), 39 credit(s); nothing was queued)"),
        "{stdout}"
    );
    assert!(queued(&env).await.is_empty());

    let mut with_yes = args.to_vec();
    with_yes.push("--yes");
    let (code, stdout, stderr) = zdel(&env, &with_yes);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "selected 2500 record(s) of Leads in 13 page(s); queued 2500 for delete; selection 1\n"
    );
    assert_eq!(queued(&env).await, listed);
    let cursor: String = sqlx::query_scalar("SELECT cursor FROM selections WHERE id = 1")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(cursor, "done");

    let (code, _, stderr) = zdel(
        &env,
        &["select", "--module", "Leads", "--cvid", "99", "--yes"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("Zoho refused --cvid 99: INVALID_DATA"),
        "{stderr}"
    );
}
