//! `zdel serve` as a service: /healthz, /readyz and /metrics on the real
//! binary; metrics agree with what the sandbox saw; SIGTERM turns readiness
//! off at once while calls in flight finish.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use common::{TestEnv, ids, wait_until};
use tokio::io::{AsyncBufReadExt, BufReader};
use zdel::sandbox::Faults;

struct Served {
    child: tokio::process::Child,
    base: String,
}

/// Start `zdel serve` with JSON logs and learn its HTTP address from them.
async fn serve(env: &TestEnv) -> Served {
    let mut child = env
        .zdel(&["serve"])
        .env("ZDEL__LOG__FORMAT", "json")
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = v.pointer("/fields/addr").and_then(|a| a.as_str())
            {
                return addr.to_string();
            }
        }
        panic!("zdel serve exited before listening");
    })
    .await
    .expect("no HTTP address logged");
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served {
        child,
        base: format!("http://{addr}"),
    }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `name{labels} value` lines → (name, sorted labels) → value.
fn parse_metrics(text: &str) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match key.split_once('{') {
            Some((n, rest)) => {
                let mut parts: Vec<&str> = rest.trim_end_matches('}').split(',').collect();
                parts.sort_unstable();
                (n.to_string(), parts.join(","))
            }
            None => (key.to_string(), String::new()),
        };
        if let Ok(v) = value.parse() {
            out.insert((name, labels), v);
        }
    }
    out
}

fn sum(m: &BTreeMap<(String, String), f64>, name: &str) -> f64 {
    m.iter()
        .filter(|((n, _), _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

fn value(m: &BTreeMap<(String, String), f64>, name: &str, labels: &[&str]) -> f64 {
    let mut labels: Vec<&str> = labels.to_vec();
    labels.sort_unstable();
    m.get(&(name.to_string(), labels.join(",")))
        .copied()
        .unwrap_or(0.0)
}

fn sigterm(child: &tokio::process::Child) {
    common::signal(child, libc::SIGTERM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_during_a_run_match_what_the_sandbox_saw() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_millis(40),
        error_5xx_rate: 0.1,
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__MAX_CONCURRENCY", "2");
    env.set("HTTP__QUEUE_DEPTH_INTERVAL_MS", "100");
    env.seed_and_enqueue("Leads", &ids(0, 1_050), true).await;
    env.enqueue("Leads", &ids(5_000, 5), true).await;
    let mut served = serve(&env).await;

    assert_eq!(
        get(&format!("{}/healthz", served.base)).await,
        (200, "ok\n".into())
    );
    let (status, body) = get(&format!("{}/readyz", served.base)).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    wait_until(Duration::from_secs(20), "metrics mid-run", || async {
        get(&format!("{}/metrics", served.base))
            .await
            .1
            .contains("zdel_zoho_calls_total")
    })
    .await;
    wait_until(Duration::from_secs(30), "every row finished", || async {
        env.count_in_state("succeeded").await + env.count_in_state("failed").await == 1_055
    })
    .await;
    // The 5 IDs Zoho never had fail INVALID_DATA — unless a 503 hit their
    // batch first: 5xx is ambiguous, so a later INVALID_DATA counts as
    // "deleted by that attempt" (succeeded, code INVALID_DATA). How many
    // went that way depends on where the faults fell; the metrics must agree.
    let confirmed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deletion_requests WHERE state = 'succeeded' AND outcome_code = 'INVALID_DATA'",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap();
    let metrics_url = format!("{}/metrics", served.base);
    wait_until(
        Duration::from_secs(10),
        "the queue-depth gauge to catch up",
        || async {
            let m = parse_metrics(&get(&metrics_url).await.1);
            value(
                &m,
                "zdel_queue_depth",
                &["state=\"succeeded\"", "operation=\"delete\""],
            ) == (1_050 + confirmed) as f64
        },
    )
    .await;

    let m = parse_metrics(&get(&metrics_url).await.1);
    let stats = env.sb().stats();
    assert_eq!(
        sum(&m, "zdel_zoho_calls_total"),
        stats.calls as f64,
        "calls by operation and status"
    );
    assert_eq!(
        value(
            &m,
            "zdel_zoho_calls_total",
            &["operation=\"delete\"", "status=\"503\""]
        ),
        stats.statuses.get(&503).copied().unwrap_or(0) as f64
    );
    assert_eq!(
        value(
            &m,
            "zdel_ids_total",
            &[
                "operation=\"delete\"",
                "outcome=\"succeeded\"",
                "code=\"SUCCESS\""
            ]
        ),
        1_050.0
    );
    assert_eq!(
        value(
            &m,
            "zdel_ids_total",
            &[
                "operation=\"delete\"",
                "outcome=\"failed\"",
                "code=\"INVALID_DATA\""
            ]
        ),
        (5 - confirmed) as f64
    );
    assert_eq!(
        sum(&m, "zdel_batch_retries_total"),
        stats.statuses.get(&503).copied().unwrap_or(0) as f64
    );
    assert_eq!(
        value(&m, "zdel_token_refreshes_total", &["result=\"ok\""]),
        stats.tokens_issued as f64
    );
    assert_eq!(
        value(
            &m,
            "zdel_zoho_call_duration_seconds_count",
            &["operation=\"delete\""]
        ),
        (stats.calls - env.calls_to("recycle_bin")) as f64,
        "every call but the recycle-bin look-ups that settled ambiguous answers"
    );
    assert!(
        m.keys()
            .any(|(n, _)| n == "zdel_rate_limiter_wait_seconds_count")
    );
    assert_eq!(value(&m, "zdel_lanes_paused", &[]), 0.0);
    assert_eq!(
        value(&m, "zdel_mass_delete_jobs", &["state=\"running\""]),
        0.0
    );

    sigterm(&served.child);
    let status = tokio::time::timeout(Duration::from_secs(10), served.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_at_once_and_lets_calls_finish() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_secs(2),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__MAX_CONCURRENCY", "2");
    env.set("WORKER__SHUTDOWN_GRACE_MS", "10000");
    env.seed_and_enqueue("Leads", &ids(0, 1_000), true).await;
    let mut served = serve(&env).await;
    wait_until(Duration::from_secs(10), "two calls in flight", || async {
        env.count_in_state("running").await == 200
    })
    .await;

    sigterm(&served.child);
    let ready = format!("{}/readyz", served.base);
    wait_until(
        Duration::from_millis(1_500),
        "readyz to turn 503",
        || async {
            let (status, body) = get(&ready).await;
            status == 503 && body == "not ready: shutting down\n"
        },
    )
    .await;
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "zdel must still be finishing its calls"
    );
    assert_eq!(
        get(&format!("{}/healthz", served.base)).await.0,
        200,
        "still alive meanwhile"
    );

    let status = tokio::time::timeout(Duration::from_secs(10), served.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert_eq!(env.count_in_state("running").await, 0);
    assert_eq!(
        env.count_in_state("succeeded").await,
        200,
        "the calls in flight finished and were recorded"
    );
    assert_eq!(env.count_in_state("pending").await, 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_says_why_when_credentials_are_rejected() {
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 10), true).await;
    env.sb().revoke_refresh_token(true);
    let mut served = serve(&env).await;
    let ready = format!("{}/readyz", served.base);
    wait_until(
        Duration::from_secs(10),
        "readyz to report the rejected credentials",
        || async {
            let (status, body) = get(&ready).await;
            status == 503 && body.contains("Zoho rejects the credentials (invalid_code)")
        },
    )
    .await;
    env.sb().revoke_refresh_token(false);
    wait_until(
        Duration::from_secs(10),
        "ready again once they work",
        || async { get(&ready).await.0 == 200 },
    )
    .await;
    sigterm(&served.child);
    served.child.wait().await.unwrap();
}

/// systemd's notify protocol, spoken to a socket we hold: READY after
/// start-up, watchdog pings while running, STOPPING on SIGTERM.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_pings_and_stopping() {
    let env = TestEnv::new(Faults::default()).await;
    let path = env.dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
    let mut child = env
        .zdel(&["serve"])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut heard: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 4096];
    let listen = async {
        loop {
            let n = socket.recv(&mut buf).await.unwrap();
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if heard.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3 {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), listen)
        .await
        .expect("no READY and watchdog pings");
    assert!(heard[0].contains("READY=1"), "READY comes first: {heard:?}");

    sigterm(&child);
    let stopping = async {
        loop {
            let n = socket.recv(&mut buf).await.unwrap();
            if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("no STOPPING");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_a_span_per_batch() {
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 150), false).await;
    let out = env
        .zdel(&["drain"])
        .env("ZDEL__LOG__FORMAT", "json")
        .env("RUST_LOG", "zdel=debug")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let mut batches: Vec<(String, String, bool, u64, u64)> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "call answered")
        .map(|l| {
            let span = &l["span"];
            assert_eq!(span["name"], "batch");
            (
                span["operation"].as_str().unwrap().to_string(),
                span["module"].as_str().unwrap().to_string(),
                span["wf_trigger"].as_bool().unwrap(),
                span["size"].as_u64().unwrap(),
                span["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    batches.sort();
    assert_eq!(
        batches,
        [
            ("delete".into(), "Leads".into(), false, 50, 1),
            ("delete".into(), "Leads".into(), false, 100, 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_credits_spent_what_zoho_says_is_left_and_why_claiming_stopped() {
    let mut env = TestEnv::new(Faults {
        credit_budget: Some(20),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__MIN_CREDITS_REMAINING", "5");
    env.set("LIMITS__MAX_CONCURRENCY", "2");
    env.seed_and_enqueue("Leads", &ids(0, 3_000), true).await;
    let mut served = serve(&env).await;
    let metrics_url = format!("{}/metrics", served.base);

    wait_until(
        Duration::from_secs(20),
        "claiming stops for credits",
        || async {
            let m = parse_metrics(&get(&metrics_url).await.1);
            value(&m, "zdel_claiming_stopped", &["reason=\"credit_headroom\""]) == 1.0
                && value(&m, "zdel_credits_spent_24h", &[]) == env.sb().stats().calls as f64
        },
    )
    .await;
    let calls = env.sb().stats().calls as f64;
    let m = parse_metrics(&get(&metrics_url).await.1);
    assert_eq!(value(&m, "zdel_credits_remaining", &[]), 20.0 - calls);
    assert_eq!(value(&m, "zdel_credits_spent_24h", &[]), calls);
    assert_eq!(
        value(&m, "zdel_claiming_stopped", &["reason=\"credit_share\""]),
        0.0
    );
    sigterm(&served.child);
    let status = tokio::time::timeout(Duration::from_secs(30), served.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_take_a_selection_and_give_its_rows_by_state_and_code() {
    let env = TestEnv::new(Faults::default()).await;
    // Selection 1: five IDs, one of which Zoho does not have.
    let queued = ids(0, 5);
    env.sb().add_records("Leads", &queued[..4]);
    let (code, _, stderr) =
        env.output(&["enqueue", "--module", "Leads", "--ids", &queued.join(",")]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut served = serve(&env).await;
    let url = |q: &str| format!("{}/metrics{q}", served.base);
    wait_until(Duration::from_secs(20), "the selection decided", || async {
        let m = parse_metrics(&get(&url("?selection=1")).await.1);
        value(
            &m,
            "zdel_selection_requests",
            &[
                "selection=\"1\"",
                "module=\"Leads\"",
                "state=\"succeeded\"",
                "code=\"SUCCESS\"",
            ],
        ) == 4.0
    })
    .await;
    let m = parse_metrics(&get(&url("?selection=1")).await.1);
    let rows: Vec<(&String, &f64)> = m
        .iter()
        .filter(|((n, _), _)| n == "zdel_selection_requests")
        .map(|((_, l), v)| (l, v))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                &"code=\"INVALID_DATA\",module=\"Leads\",selection=\"1\",state=\"failed\""
                    .to_string(),
                &1.0
            ),
            (
                &"code=\"SUCCESS\",module=\"Leads\",selection=\"1\",state=\"succeeded\""
                    .to_string(),
                &4.0
            ),
        ]
    );
    assert_eq!(
        value(
            &m,
            "zdel_selection_ids",
            &["selection=\"1\"", "kind=\"queued\""]
        ),
        5.0
    );
    // Without it, no selection's labels; a bad or unknown one is refused.
    assert_eq!(
        sum(
            &parse_metrics(&get(&url("")).await.1),
            "zdel_selection_requests"
        ),
        0.0
    );
    assert_eq!(get(&url("?selection=9")).await.0, 404);
    // The console rides on the same listener.
    let (status, html) = get(&format!("{}/", served.base)).await;
    assert_eq!(status, 200);
    assert!(html.contains("<h2>Selections</h2>"), "{html}");
    assert_eq!(get(&url("?selection=x")).await.0, 400);
    sigterm(&served.child);
    let status = tokio::time::timeout(Duration::from_secs(30), served.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
