//! Progress and a summary on every run: `drain` off a terminal logs a
//! progress line every `log.progress_interval_ms` and ends with the IDs by
//! outcome and code, the calls made against the minimum, elapsed and rate;
//! `status` shows who works, each lane's rate and ETA, and when each recent
//! error happened.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestEnv, ids, text, wait_until};
use zdel::sandbox::Faults;

/// Run `zdel args` to its end with its output captured.
fn output(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.zdel_blocking(args)
        .stdout(Stdio::piped())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_off_a_terminal_logs_progress_lines_and_ends_with_a_summary() {
    let mut env = TestEnv::new(Faults::default()).await;
    // 1,200 IDs at 10 calls a second: about 1.2 s of work, several 200 ms lines.
    env.set("LIMITS__REQUESTS_PER_SECOND", "10");
    env.set("LIMITS__BURST", "1");
    env.set("LOG__PROGRESS_INTERVAL_MS", "200");
    env.set("LOG__FORMAT", "json");
    let leads = ids(0, 1_000);
    env.sb().add_records("Leads", &leads[..990]);
    env.enqueue("Leads", &leads, true).await;
    env.seed_and_enqueue("Contacts", &ids(5_000, 200), false)
        .await;
    let out = output(&env, &["drain"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // 10 IDs were not in Zoho: status 6, rows failed.
    assert_eq!(out.status.code(), Some(6), "{stderr}");

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "progress")
        .collect();
    assert!(lines.len() >= 3, "too few progress lines: {stderr}");
    let done: Vec<i64> = lines
        .iter()
        .map(|v| v["fields"]["done"].as_i64().expect("done is a number"))
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    for v in &lines {
        let f = &v["fields"];
        assert_eq!(
            f["done"].as_i64().unwrap() + f["left"].as_i64().unwrap(),
            1_200,
            "{v}"
        );
        assert!(f["ids_per_s"].is_number(), "{v}");
    }

    assert!(stdout.contains("IDs by outcome (this run):"), "{stdout}");
    let line_of = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(line_of("SUCCESS")[..3], ["succeeded", "SUCCESS", "1190"]);
    assert_eq!(
        line_of("INVALID_DATA")[..3],
        ["failed", "INVALID_DATA", "10"]
    );
    // 10 Leads calls and 2 Contacts calls at least; the failed IDs cost nothing more.
    let calls = env.sb().stats().calls;
    assert!(
        stdout.contains(&format!(
            "calls made:        {calls} (minimum for these IDs: 12)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("IDs/s"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_holder_the_rate_and_eta_per_lane_and_error_times() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_millis(20),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__REQUESTS_PER_SECOND", "10");
    env.set("LIMITS__BURST", "1");
    let leads = ids(0, 3_000);
    env.sb().add_records("Leads", &leads[..2_950]);
    env.enqueue("Leads", &leads, true).await;
    let mut serve = env.zdel(&["serve"]).spawn().unwrap();
    wait_until(Duration::from_secs(30), "some deleted", || async {
        env.count_in_state("succeeded").await >= 500
    })
    .await;
    let out = output(&env, &["status"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = serve.id().unwrap();
    assert!(
        stdout.contains("zdel serve on ")
            && stdout.contains(&format!("(pid {pid}) working since 20")),
        "{stdout}"
    );
    let leads_line: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("Leads"))
        .unwrap()
        .split_whitespace()
        .collect();
    // module, operation, 5 states, then IDs/s and an ETA.
    let rate: f64 = leads_line[7].parse().unwrap_or_else(|_| panic!("{stdout}"));
    assert!(rate > 0.0, "{stdout}");
    assert_ne!(leads_line[8], "-", "an ETA while work is left: {stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&output(&env, &["status", "--json"]).stdout).unwrap();
    assert_eq!(json["holder"]["pid"], i64::from(pid));
    assert_eq!(json["rates"][0]["module"], "Leads");
    assert!(json["rates"][0]["finished"].as_i64().unwrap() >= 500);

    wait_until(Duration::from_secs(60), "all done", || async {
        env.count_in_state("succeeded").await + env.count_in_state("failed").await == 3_000
    })
    .await;
    common::signal(&serve, libc::SIGTERM);
    assert!(serve.wait().await.unwrap().success());
    let out = output(&env, &["status"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("no zdel is working on this database"),
        "{stdout}"
    );
    let leads_line = stdout.lines().find(|l| l.starts_with("Leads")).unwrap();
    assert!(leads_line.trim_end().ends_with("done"), "{stdout}");
    // Each recent error with its time: `2026-…Z #id Leads <record> [failed] INVALID_DATA`.
    let errors: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "recent errors:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(errors.len(), 5, "{stdout}");
    for e in errors {
        let time = e.split_whitespace().next().unwrap();
        assert!(
            time.starts_with("20") && time.ends_with('Z') && time.contains('T'),
            "{e}"
        );
        assert!(e.contains("[failed] INVALID_DATA"), "{e}");
    }
}
