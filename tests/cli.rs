//! The `zdel` command line, run as a user would: enqueue from every source,
//! bad input refused with exit status 2 and nothing queued, status,
//! outcomes, retry, cancel, resume.

mod common;

use std::io::Write;
use std::process::Output;

use common::{TestEnv, ids, text};
use zdel::sandbox::Faults;

fn zdel(env: &TestEnv, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = env.zdel_blocking(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// The command must fail with exit status 2 and a message containing `expected`.
fn assert_refused(env: &TestEnv, args: &[&str], expected: &str) {
    let out = zdel(env, args, None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

async fn queued(env: &TestEnv) -> Vec<(String, String, i64)> {
    sqlx::query_as("SELECT module, record_id, wf_trigger FROM deletion_requests ORDER BY id")
        .fetch_all(&env.sql)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_reads_ids_files_and_stdin_with_bom_crlf_and_duplicates() {
    let env = TestEnv::new(Faults::default()).await;
    let out = zdel(
        &env,
        &["enqueue", "--module", "Leads", "--ids", "1,2,3"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("queued 3 of 3"),
        "{}",
        text(&out.stdout)
    );

    let file = env.dir.path().join("ids.txt");
    std::fs::write(
        &file,
        b"\xEF\xBB\xBF10\r\n11\r\n\r\n# a comment\r\n10\r\n3\r\n12",
    )
    .unwrap();
    let out = zdel(
        &env,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--file",
            file.to_str().unwrap(),
            "--no-workflow",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // 10 repeats within the file; 3 is already pending (with the workflow flag, but the same target).
    assert!(
        text(&out.stdout).contains("queued 3 of 5"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("2 skipped"),
        "{}",
        text(&out.stdout)
    );

    let out = zdel(
        &env,
        &["enqueue", "--module", "Contacts", "--file", "-"],
        Some(b"7\n8\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let rows = queued(&env).await;
    let got: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|(m, r, w)| (m.as_str(), r.as_str(), *w))
        .collect();
    assert_eq!(
        got,
        [
            ("Leads", "1", 1),
            ("Leads", "2", 1),
            ("Leads", "3", 1),
            ("Leads", "10", 0),
            ("Leads", "11", 0),
            ("Leads", "12", 0),
            ("Contacts", "7", 1),
            ("Contacts", "8", 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_names_the_problem_and_queues_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    let dir = env.dir.path();
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let non_digit = file("a.txt", b"1\n2\n12a4\n");
    let too_long = file("b.txt", b"1\n12345678901234567890\n");
    let empty = file("c.txt", b"\n\n");
    let not_utf8 = file("d.txt", b"1\n\xff\xfe\n");
    let missing = dir.join("nope.txt").to_str().unwrap().to_string();
    let directory = dir.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["enqueue", "--module", "Leads", "--file", &non_digit],
            "line 3: \"12a4\"",
        ),
        (
            vec!["enqueue", "--module", "Leads", "--file", &too_long],
            "line 2",
        ),
        (
            vec!["enqueue", "--module", "Leads", "--file", &empty],
            "no record IDs",
        ),
        (
            vec!["enqueue", "--module", "Leads", "--file", &not_utf8],
            "line 2: not valid UTF-8",
        ),
        (
            vec!["enqueue", "--module", "Leads", "--file", &missing],
            "nope.txt",
        ),
        (
            vec!["enqueue", "--module", "Leads", "--file", &directory],
            "is a directory",
        ),
        (
            vec!["enqueue", "--module", "../Leads", "--ids", "1"],
            "not a Zoho module API name",
        ),
        (
            vec!["enqueue", "--module", "Leads/1", "--ids", "1"],
            "not a Zoho module API name",
        ),
        (
            vec!["enqueue", "--module", "Le ads", "--ids", "1"],
            "not a Zoho module API name",
        ),
        (
            vec!["enqueue", "--module", "Lëads", "--ids", "1"],
            "not a Zoho module API name",
        ),
        (
            vec![
                "enqueue",
                "--module",
                "Leads",
                "--ids",
                "1",
                "--operation",
                "nuke",
            ],
            "nuke",
        ),
        (
            vec!["enqueue", "--module", "Leads", "--ids", "1,x"],
            "line 2: \"x\"",
        ),
    ];
    for (args, expected) in cases {
        assert_refused(&env, &args, expected);
    }
    assert!(
        queued(&env).await.is_empty(),
        "a refused command queued something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_line_is_reported_in_one_pass_up_to_a_limit() {
    let env = TestEnv::new(Faults::default()).await;
    let path = env.dir.path().join("ids.txt");
    // Three bad lines among good ones: all three named in one run.
    std::fs::write(&path, "1\nabc\n2\n007\n3\n1x\n").unwrap();
    let file = path.to_str().unwrap().to_string();
    let out = zdel(
        &env,
        &["enqueue", "--module", "Leads", "--file", &file],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("3 bad line(s), nothing was queued"),
        "{stderr}"
    );
    for line in ["line 2: \"abc\"", "line 4: \"007\"", "line 6: \"1x\""] {
        assert!(stderr.contains(line), "{line} missing: {stderr}");
    }
    // Past twenty, the rest are counted.
    let many: String = (0..50).map(|i| format!("bad{i}\n")).collect();
    std::fs::write(&path, many).unwrap();
    let out = zdel(
        &env,
        &["enqueue", "--module", "Leads", "--file", &file],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("50 bad line(s)"), "{stderr}");
    assert!(stderr.contains("line 20: \"bad19\""), "{stderr}");
    assert!(!stderr.contains("line 21:"), "{stderr}");
    assert!(stderr.contains("… and 30 more bad line(s)"), "{stderr}");
    assert!(queued(&env).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_credentials_names_the_key_and_never_prints_secrets() {
    let env = TestEnv::new(Faults::default()).await;
    let out = env
        .zdel_blocking(&["drain"])
        .env("ZDEL__ZOHO__REFRESH_TOKEN", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("zoho.refresh_token"), "{err}");
    assert!(!err.contains(zdel::sandbox::CLIENT_SECRET), "{err}");

    let out = env
        .zdel_blocking(&["status"])
        .env("ZDEL__LIMITS__MAX_CONCURRENCY", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("limits.max_concurrency"),
        "{}",
        text(&out.stderr)
    );
}

/// Five Leads queued by the CLI (three exist in Zoho, two do not) and one
/// Deals request cancelled, then a drain: 3 succeeded, 2 failed, 1 cancelled.
async fn drained_leads_and_cancelled_deals() -> (TestEnv, Vec<String>) {
    let env = TestEnv::new(Faults::default()).await;
    let all = ids(0, 5);
    env.sb().add_records("Leads", &all[..3]);
    let list = all.join(",");
    for args in [
        &["enqueue", "--module", "Leads", "--ids", &list][..],
        &["enqueue", "--module", "Deals", "--ids", "99"],
        &["cancel", "--module", "Deals", "--yes"],
    ] {
        let out = zdel(&env, args, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    // Two IDs do not exist: they fail, so drain says so with status 6.
    let out = zdel(&env, &["drain"], None);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("2 row(s) failed during this run"),
        "{}",
        text(&out.stderr)
    );
    (env, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_asks_for_yes_off_a_terminal_then_cancels_pending_rows() {
    let env = TestEnv::new(Faults::default()).await;
    let out = zdel(&env, &["enqueue", "--module", "Deals", "--ids", "99"], None);
    assert!(out.status.success());
    assert_eq!(
        zdel(&env, &["cancel", "--module", "Deals"], None)
            .status
            .code(),
        Some(2),
        "cancel needs --yes off a terminal"
    );
    assert_eq!(env.count_in_state("pending").await, 1);
    let out = zdel(&env, &["cancel", "--module", "Deals", "--yes"], None);
    assert!(
        text(&out.stdout).contains("cancelled 1"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(env.count_in_state("cancelled").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_rows_by_state_and_module_and_names_recent_errors() {
    let (env, _) = drained_leads_and_cancelled_deals().await;
    let out = zdel(&env, &["status", "--json"], None);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = |state: &str, module: &str| {
        status["counts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == state && c["module"] == module)
            .map(|c| c["count"].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(
        (
            count("succeeded", "Leads"),
            count("failed", "Leads"),
            count("cancelled", "Deals")
        ),
        (3, 2, 1)
    );
    let out = zdel(&env, &["status"], None);
    assert!(
        text(&out.stdout).contains("INVALID_DATA"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_stream_every_row_as_csv_or_json_lines() {
    let (env, all) = drained_leads_and_cancelled_deals().await;
    let out = zdel(&env, &["outcomes", "--state", "failed"], None);
    let csv = text(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,operation,module,record_id,state,code,message,http_status,attempts,finished_at,verification,deleted_time,deleted_by,related_list,related_id,queued_by,queued_how,config_hash"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].contains(&all[3]) && lines[1].contains("INVALID_DATA"),
        "{csv}"
    );
    let out = zdel(&env, &["outcomes", "--format", "json"], None);
    let rows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["state"], "succeeded");
    assert_eq!(rows[0]["code"], "SUCCESS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_requeues_failed_rows_and_the_next_drain_deletes_them() {
    let (env, all) = drained_leads_and_cancelled_deals().await;
    // The two missing records now exist: retrying the failed rows deletes them.
    env.sb().add_records("Leads", &all[3..]);
    let out = zdel(&env, &["retry", "--yes"], None);
    assert!(
        text(&out.stdout).contains("requeued 2"),
        "{}",
        text(&out.stdout)
    );
    assert!(zdel(&env, &["drain"], None).status.success());
    assert_eq!(env.count_in_state("succeeded").await, 5);
    assert_eq!(
        env.ids_in_state(zdel::store::RequestState::Succeeded).await,
        all,
        "exactly the five Leads IDs, and not the cancelled Deals one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_paused_lane_and_resume_lifts_it() {
    let env = TestEnv::new(Faults::default()).await;
    env.store
        .pause("Leads", "NO_PERMISSION", "test", 0)
        .await
        .unwrap();
    let out = zdel(&env, &["status"], None);
    assert!(
        text(&out.stdout).contains("Leads: NO_PERMISSION"),
        "{}",
        text(&out.stdout)
    );
    let out = zdel(&env, &["resume", "--module", "Leads"], None);
    assert!(
        text(&out.stdout).contains("resumed Leads"),
        "{}",
        text(&out.stdout)
    );
    assert!(env.store.pauses().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_queues_every_operation_with_its_columns() {
    let env = TestEnv::new(Faults::default()).await;
    let ok = |args: &[&str]| {
        let out = zdel(&env, args, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let out = ok(&[
        "enqueue",
        "--operation",
        "delink",
        "--module",
        "Campaigns",
        "--record",
        "3652397000000327001",
        "--related-list",
        "Contacts",
        "--ids",
        "11,12",
    ]);
    assert!(
        out.contains("queued 2 of 2 ID(s) for delink Campaigns 3652397000000327001 Contacts"),
        "{out}"
    );
    ok(&["enqueue", "--operation", "contact-role", "--ids", "21,22"]);
    ok(&[
        "enqueue",
        "--operation",
        "photo",
        "--module",
        "Leads",
        "--ids",
        "31",
    ]);
    let out = ok(&[
        "enqueue",
        "--module",
        "Leads",
        "--ids",
        "41,42",
        "--strategy",
        "mass-delete",
    ]);
    assert!(out.contains("by mass delete"), "{out}");
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT operation, module, record_id, related_list, related_id, strategy FROM deletion_requests ORDER BY id",
    )
    .fetch_all(&env.sql)
    .await
    .unwrap();
    let p = "3652397000000327001".to_string();
    let l = Some("Contacts".to_string());
    assert_eq!(
        rows,
        [
            (
                "delink".into(),
                "Campaigns".into(),
                p.clone(),
                l.clone(),
                Some("11".into()),
                "auto".into()
            ),
            (
                "delink".into(),
                "Campaigns".into(),
                p,
                l,
                Some("12".into()),
                "auto".into()
            ),
            (
                "delete_contact_role".into(),
                "Contacts".into(),
                "21".into(),
                None,
                None,
                "auto".into()
            ),
            (
                "delete_contact_role".into(),
                "Contacts".into(),
                "22".into(),
                None,
                None,
                "auto".into()
            ),
            (
                "delete_photo".into(),
                "Leads".into(),
                "31".into(),
                None,
                None,
                "auto".into()
            ),
            (
                "delete".into(),
                "Leads".into(),
                "41".into(),
                None,
                None,
                "mass_delete".into()
            ),
            (
                "delete".into(),
                "Leads".into(),
                "42".into(),
                None,
                None,
                "mass_delete".into()
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_refuses_options_that_do_not_fit_the_operation() {
    let env = TestEnv::new(Faults::default()).await;
    for (args, expected) in [
        (
            vec![
                "enqueue",
                "--operation",
                "delink",
                "--module",
                "Campaigns",
                "--ids",
                "1",
            ],
            "delink needs --record",
        ),
        (
            vec![
                "enqueue",
                "--operation",
                "delink",
                "--module",
                "Campaigns",
                "--record",
                "x1",
                "--related-list",
                "Contacts",
                "--ids",
                "1",
            ],
            "--record \"x1\"",
        ),
        (
            vec![
                "enqueue", "--module", "Leads", "--record", "1", "--ids", "1",
            ],
            "delink only",
        ),
        (
            vec![
                "enqueue",
                "--module",
                "Leads",
                "--ids",
                "1",
                "--strategy",
                "mass-delete",
                "--no-workflow",
            ],
            "cannot suppress workflow",
        ),
        (
            vec![
                "enqueue",
                "--operation",
                "photo",
                "--module",
                "Leads",
                "--ids",
                "1",
                "--strategy",
                "mass-delete",
            ],
            "--strategy goes with --operation delete",
        ),
        (
            vec![
                "enqueue",
                "--operation",
                "contact-role",
                "--module",
                "Leads",
                "--ids",
                "1",
            ],
            "contact roles belong to Contacts",
        ),
        (vec!["enqueue", "--ids", "1"], "--module is required"),
    ] {
        assert_refused(&env, &args, expected);
    }
    assert!(
        queued(&env).await.is_empty(),
        "refused commands queued nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_delete_shows_what_it_deletes_and_needs_yes_off_a_terminal() {
    let env = TestEnv::new(Faults::default()).await;
    let args = [
        "mass-delete",
        "--module",
        "Leads",
        "--cvid",
        "3652397000000538003",
        "--territory",
        "3652397000007622003",
        "--include-child",
    ];
    let out = zdel(&env, &args, None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("view:      3652397000000538003"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("territory: 3652397000007622003 (with child territories)"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    assert!(env.store.jobs().await.unwrap().is_empty());

    let mut with_yes = args.to_vec();
    with_yes.push("--yes");
    let out = zdel(&env, &with_yes, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jobs = env.store.jobs().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (
            jobs[0].territory_id.as_deref(),
            jobs[0].include_child,
            jobs[0].state.as_str()
        ),
        (Some("3652397000007622003"), true, "pending")
    );
    let out = zdel(&env, &with_yes, None);
    assert_eq!(out.status.code(), Some(2), "the same view twice is refused");
    assert!(
        text(&out.stderr).contains("already queued"),
        "{}",
        text(&out.stderr)
    );

    let out = zdel(&env, &["status"], None);
    assert!(
        text(&out.stdout).contains("mass-delete jobs: 1 pending"),
        "{}",
        text(&out.stdout)
    );
    let out = zdel(&env, &["jobs"], None);
    assert!(
        text(&out.stdout).contains("3652397000000538003") && text(&out.stdout).contains("pending"),
        "{}",
        text(&out.stdout)
    );
    let out = zdel(
        &env,
        &["jobs", "--reschedule", &jobs[0].id.to_string()],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a pending job cannot be rescheduled"
    );
    let out = zdel(&env, &["jobs", "--cancel", &jobs[0].id.to_string()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        env.store.jobs().await.unwrap()[0].state,
        zdel::store::JobState::Cancelled
    );
    let out = zdel(
        &env,
        &[
            "mass-delete",
            "--module",
            "Leads",
            "--cvid",
            "12ab",
            "--yes",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_are_checked_whole_before_anything_is_queued_then_committed_in_chunks() {
    let env = TestEnv::new(Faults::default()).await;
    let path = env.dir.path().join("big.txt");
    let mut body: String = ids(0, 120_000).join("\n");
    std::fs::write(&path, format!("{body}\n12x\n")).unwrap();
    let out = zdel(
        &env,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--file",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("line 120001: \"12x\""),
        "{}",
        text(&out.stderr)
    );
    assert!(
        queued(&env).await.is_empty(),
        "a bad last line must queue nothing"
    );

    // Valid, and bigger than one commit (50,000): all of it, in order.
    body.push('\n');
    std::fs::write(&path, &body).unwrap();
    let out = zdel(
        &env,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--file",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("queued 120000 of 120000"),
        "{}",
        text(&out.stdout)
    );
    // Running it again is the resume path: nothing is queued twice.
    let out = zdel(
        &env,
        &["enqueue", "--module", "Leads", "--file", "-"],
        Some(body.as_bytes()),
    );
    assert!(
        text(&out.stdout).contains("queued 0 of 120000"),
        "{}",
        text(&out.stdout)
    );
    let (n, first, last): (i64, String, String) =
        sqlx::query_as("SELECT count(*), min(record_id), max(record_id) FROM deletion_requests")
            .fetch_one(&env.sql)
            .await
            .unwrap();
    assert_eq!(
        (n, first.as_str(), last.as_str()),
        (120_000, ids(0, 1)[0].as_str(), ids(119_999, 1)[0].as_str())
    );
}

#[tokio::test]
#[should_panic(expected = "no such configuration key `limits.max_concurency`")]
async fn a_test_override_naming_an_unknown_key_fails_the_test() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("LIMITS__MAX_CONCURENCY", "3");
    env.all_env();
}
