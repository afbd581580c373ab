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
        &[
            "select", "--module", "Leads", "--where", JUNK, "--yes", "--via", "page",
        ],
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
    // And 1 for the module check (GET /settings/modules).
    assert_eq!(spent, 182);
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
            "4000 record(s) of Leads match \"Lead_Status = 'Junk Lead'\" (Zoho's Record Count, 1 credit; it may be 1-10 minutes stale, the snapshot counts them exactly)\n\
             selecting them: 2 COQL call(s) of 2,000 (6 credit(s)) with --via page, or 1 Bulk Read job(s) (about 61 credit(s)) with --via bulk; --via auto takes paging\n\
             deleting them: 40 DELETE call(s) of 100 IDs (40 credit(s))\n\
             nothing was queued\n"
        ),
        "{stdout}"
    );
    assert_eq!(env.calls_to("record_count"), 1);
    assert_eq!(
        env.calls_to("coql"),
        2,
        "the check and the sample, no paging"
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
        stdout.starts_with(
            "2500 record(s) of Leads match view 3652397000000087501 (Zoho's Record Count"
        ),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_read_selects_across_two_result_pages_and_resumes_the_job_it_stored() {
    let mut env = TestEnv::new(Faults {
        credit_budget: Some(1_000_000),
        ..Faults::default()
    })
    .await;
    env.set("SELECT__BULK_POLL_INTERVAL_MS", "20");
    // 208,000 matches: a first result page of Zoho's 200,000, then 8,000.
    let want = seed(&env, 260_000);
    assert_eq!(want.len(), 208_000);
    // The first job stays IN PROGRESS until the test lets it finish.
    env.sb().set_bulk_read(200_000, u32::MAX);
    let args = ["select", "--module", "Leads", "--where", JUNK, "--yes"];
    let child = env.zdel(&args).spawn().unwrap();
    let cursor = || async {
        sqlx::query_scalar::<_, String>("SELECT coalesce(cursor, '') FROM selections WHERE id = 1")
            .fetch_one(&env.sql)
            .await
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(60), "the job polled", || async {
        cursor().await.contains("|job=") && env.calls_to("bulk_read_status") >= 2
    })
    .await;
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    // --via auto took Bulk Read for Zoho's count of 208,000 (paging: 315
    // credits; Bulk Read: about 122), and stored the job's id before polling it.
    assert_eq!(env.calls_to("record_count"), 1);
    assert_eq!(env.calls_to("bulk_read"), 1);
    let stopped = cursor().await;
    assert!(
        stopped.starts_with("bulk|from=page:1|job=") && stopped.ends_with("|rows=0"),
        "{stopped}"
    );
    assert!(queued(&env).await.is_empty());

    // The rerun polls the same job (no new one), then the next page's job.
    env.sb().set_bulk_read(200_000, 1);
    let (code, stdout, stderr) = zdel(&env, &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("resuming selection 1"), "{stderr}");
    assert_eq!(
        stdout,
        "selected 208000 record(s) of Leads by Bulk Read; queued 208000 for delete; selection 1\n"
    );
    assert_eq!(queued(&env).await, want, "every match, once, nothing else");
    assert_eq!(claimable(&env).await, 208_000);
    assert_eq!(env.calls_to("bulk_read"), 2, "one job per result page");
    assert_eq!(env.sb().bulk_downloads(), (2, 0));
    assert_eq!(
        env.calls_to("record_count"),
        1,
        "a resumed selection is not counted again"
    );
    let (method, cursor): (String, String) =
        sqlx::query_as("SELECT method, cursor FROM selections WHERE id = 1")
            .fetch_one(&env.sql)
            .await
            .unwrap();
    assert_eq!((method.as_str(), cursor.as_str()), ("bulk", "done"));
    // Credits: the module check, the two query checks, the count, 2 jobs of
    // 50, every poll, 2 downloads.
    let polls = env.calls_to("bulk_read_status") as i64;
    let spent: i64 = sqlx::query_scalar("SELECT coalesce(sum(credits), 0) FROM credit_ledger")
        .fetch_one(&env.sql)
        .await
        .unwrap_or(0);
    assert_eq!(spent, 1 + 2 + 1 + 100 + polls + 2, "and the module check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bulk_read_job_stores_nothing_and_the_rerun_starts_a_new_one() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("SELECT__BULK_POLL_INTERVAL_MS", "20");
    let want = seed(&env, 500);
    env.sb().set_bulk_read(200_000, 1);
    env.sb().fail_bulk_reads(1);
    let args = [
        "select", "--module", "Leads", "--where", JUNK, "--via", "bulk", "--yes",
    ];
    let (code, _, stderr) = zdel(&env, &args);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("failed (FAILURE)"), "{stderr}");
    assert!(queued(&env).await.is_empty());
    let (code, stdout, stderr) = zdel(&env, &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("selected 400 record(s)"), "{stdout}");
    assert_eq!(queued(&env).await, want);
    assert_eq!(env.calls_to("bulk_read"), 2);

    // Criteria Bulk Read cannot say are refused before anything is stored.
    let (code, _, stderr) = zdel(
        &env,
        &[
            "select",
            "--module",
            "Leads",
            "--where",
            "Last_Name not like 'Doe1%'",
            "--via",
            "bulk",
            "--yes",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("Bulk Read has no way to say"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_says_the_calls_and_credits_and_stores_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    seed(&env, 5_000);
    // Record Count cannot say `like '%x'`: counted by paging instead.
    let (code, stdout, stderr) = zdel(
        &env,
        &[
            "select",
            "--module",
            "Leads",
            "--where",
            "Last_Name like '%7'",
            "--dry-run",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "500 record(s) of Leads match \"Last_Name like '%7'\" (counted now: 1 call(s), 3 credit(s); no Record Count: Record Count has no way to say Last_Name like '%7' (only like 'x%'))\n\
         selecting them: 1 COQL call(s) of 2,000 (3 credit(s)) with --via page, or 1 Bulk Read job(s) (about 61 credit(s)) with --via bulk; --via auto takes paging\n\
         deleting them: 5 DELETE call(s) of 100 IDs (5 credit(s))\n\
         nothing was queued\n"
    );
    assert_eq!(env.calls_to("record_count"), 0);
    assert!(queued(&env).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_read_downloads_stay_under_zohos_ten_a_minute() {
    let mut env = TestEnv::new(Faults {
        credit_budget: Some(1_000_000),
        ..Faults::default()
    })
    .await;
    env.set("SELECT__BULK_POLL_INTERVAL_MS", "20");
    // 1,100 matches in jobs of 100: eleven downloads. Zoho (the sandbox)
    // turns an eleventh download within a minute away with a 429; zdel
    // waits for the minute instead of asking.
    let want = seed(&env, 1_375);
    assert_eq!(want.len(), 1_100);
    env.sb().set_bulk_read(100, 0);
    let (code, stdout, stderr) = zdel(
        &env,
        &[
            "select", "--module", "Leads", "--where", JUNK, "--via", "bulk", "--yes",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("selected 1100 record(s)"), "{stdout}");
    assert_eq!(queued(&env).await, want);
    assert_eq!(
        env.sb().bulk_downloads(),
        (11, 0),
        "eleven served, none refused"
    );
}
