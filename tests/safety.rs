//! Safety switches and hygiene: dry runs, the daily cap, secrets that never
//! reach output, owner-only database files, config errors that name the key,
//! and `zdel check`.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::{self, Faults};
use zdel::worker::StopReason;

fn zdel(env: &TestEnv, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    env.zdel_blocking(args)
        .envs(extra_env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_groups_as_for_real_sends_nothing_and_leaves_rows_pending() {
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 250), true).await;
    env.seed_and_enqueue("Deals", &ids(1_000, 30), false).await;

    let out = zdel(&env, &["drain", "--dry-run"], &[]);

    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    let calls: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("dry run: would send"))
        .collect();
    assert_eq!(calls.len(), 4, "{log}");
    assert_eq!(
        calls
            .iter()
            .filter(|l| l.contains("DELETE /Leads?ids=") && l.contains("wf_trigger=true (100 IDs)"))
            .count(),
        2,
        "{log}"
    );
    assert_eq!(
        calls.iter().filter(|l| l.contains("(50 IDs)")).count(),
        1,
        "{log}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|l| l.contains("DELETE /Deals?ids=") && l.contains("wf_trigger=false (30 IDs)"))
            .count(),
        1,
        "{log}"
    );
    assert_eq!(env.sb().stats().calls, 0, "a dry run sent something");
    assert_eq!(env.sb().stats().tokens_issued, 0);
    let untouched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deletion_requests WHERE state = 'pending' AND attempts = 0
         AND ambiguous_attempts = 0 AND outcome_code IS NULL AND lease_token IS NULL",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap();
    assert_eq!(untouched, 280);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cap_stops_claiming_exactly_at_the_cap() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("LIMITS__MAX_DELETIONS_PER_DAY", "250");
    env.seed_and_enqueue("Leads", &ids(0, 1_000), true).await;

    let summary = env.drain(Duration::from_secs(30)).await;

    assert_eq!(summary.reason, StopReason::DailyCapReached { pending: 750 });
    assert_eq!(env.count_in_state("succeeded").await, 250);
    let mut sizes = env.sb().stats().ids_per_call;
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100, 100]);
    let out = zdel(&env, &["status"], &[]);
    assert!(text(&out).contains("DAILY CAP REACHED"), "{}", text(&out));
    let out = zdel(&env, &["drain"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("max_deletions_per_day"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_output_even_at_trace_level() {
    let env = TestEnv::new(Faults {
        error_5xx_rate: 0.2,
        token_ttl: Duration::from_secs(1),
        latency: Duration::from_millis(5),
        ..Faults::default()
    })
    .await;
    env.seed_and_enqueue("Leads", &ids(0, 300), true).await;
    env.enqueue("Leeds", &ids(0, 3), true).await;
    let trace = [("RUST_LOG", "trace")];

    let mut outputs = vec![
        zdel(&env, &["drain"], &trace),
        zdel(&env, &["status"], &trace),
        zdel(&env, &["status", "--json"], &trace),
        zdel(&env, &["check"], &trace),
        zdel(&env, &["outcomes", "--format", "json"], &trace),
    ];
    env.sb().revoke_refresh_token(true);
    outputs.push(zdel(&env, &["check"], &trace));
    outputs.push(zdel(
        &env,
        &["drain"],
        &[("RUST_LOG", "trace"), ("ZDEL__LIMITS__BURST", "0")],
    ));

    let all: String = outputs.iter().map(text).collect();
    assert!(
        all.contains("TRACE") || all.contains("trace"),
        "no trace output was produced"
    );
    assert!(all.contains("credentials: ok"), "{all}");
    for secret in [
        sandbox::CLIENT_SECRET,
        sandbox::REFRESH_TOKEN,
        "1000.sandbox",
    ] {
        assert!(!all.contains(secret), "{secret} leaked into output");
    }
    assert!(env.sb().stats().tokens_issued >= 2);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_zdel_creates_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new(Faults::default()).await;
    let path = env.dir.path().join("fresh.db");
    let url = path.to_str().unwrap();
    let out = zdel(&env, &["migrate"], &[("ZDEL__DATABASE__URL", url)]);
    assert!(out.status.success(), "{}", text(&out));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_stops_start_up_with_one_line_naming_the_key() {
    let env = TestEnv::new(Faults::default()).await;
    for (key, value, named) in [
        ("ZDEL__ZOHO__CLIENT_SECRET", "", "zoho.client_secret"),
        (
            "ZDEL__ZOHO__ACCOUNTS_URL",
            "accounts.zoho.com",
            "zoho.accounts_url",
        ),
        ("ZDEL__ZOHO__API_DOMAIN", "ftp://x", "zoho.api_domain"),
        (
            "ZDEL__LIMITS__REQUESTS_PER_SECOND",
            "0",
            "limits.requests_per_second",
        ),
        (
            "ZDEL__LIMITS__MAX_CONCURRENCY",
            "0",
            "limits.max_concurrency",
        ),
        (
            "ZDEL__DATABASE__URL",
            "/nonexistent-dir/sub/zdel.db",
            "database.url",
        ),
    ] {
        let out = zdel(&env, &["drain"], &[(key, value)]);
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{key}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{key}={value}: {stderr}");
    }
    // An unknown key (a typo that would leave the daily cap off) stops
    // start-up, naming it and the key meant; exit 2, nothing run.
    let out = zdel(
        &env,
        &["drain"],
        &[("ZDEL__LIMITS__MAX_DELETION_PER_DAY", "3")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "zdel: unknown configuration key `limits.max_deletion_per_day` (did you mean `limits.max_deletions_per_day`?); every key is listed in config/default.toml"
    );
    assert_eq!(env.sb().stats().calls, 0);
    // A variable with one underscore after ZDEL is reported, not ignored.
    let out = zdel(&env, &["status"], &[("ZDEL_LIMITS__MAX_CONCURRENCY", "20")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "environment variable ZDEL_LIMITS__MAX_CONCURRENCY is not read: zdel reads ZDEL__SECTION__KEY, with two underscores after ZDEL (did you mean ZDEL__LIMITS__MAX_CONCURRENCY?)"
        ),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_verifies_config_database_and_credentials() {
    let env = TestEnv::new(Faults::default()).await;
    let out = zdel(&env, &["check"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("config:      ok"), "{stdout}");
    assert!(stdout.contains("database:    ok"), "{stdout}");
    assert!(stdout.contains("credentials: ok"), "{stdout}");
    assert_eq!(env.sb().stats().tokens_issued, 1);
    env.sb().revoke_refresh_token(true);
    let out = zdel(&env, &["check"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("credentials: FAILED"),
        "{}",
        text(&out)
    );
}
