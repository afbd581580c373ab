//! The console over HTTP: `zdel console` serves the status document
//! (`/api/status`, the same as `zdel status --json`) and a page of tables
//! under a strict CSP, escaping Zoho's messages and showing no secret; off
//! loopback it needs `http.console_token`.

mod common;

use std::time::Duration;

use common::{TestEnv, ids, signal};
use tokio::io::{AsyncBufReadExt, BufReader};
use zdel::sandbox::Faults;

/// `zdel console` on `listen`; its child and base URL.
async fn console(env: &TestEnv, listen: &str) -> (tokio::process::Child, String) {
    let mut child = env
        .zdel(&["console", "--listen", listen])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the console says where it listens")
        .unwrap()
        .unwrap();
    let url = line
        .strip_prefix("zdel console at ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"))
        .trim_end_matches('/')
        .replace("0.0.0.0", "127.0.0.1");
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_serves_the_status_document_and_a_safe_page() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 3);
    env.sb().add_records("Leads", &leads[..2]);
    let (code, _, stderr) =
        env.output(&["enqueue", "--module", "Leads", "--ids", &leads.join(",")]);
    assert_eq!(code, Some(0), "{stderr}");
    env.drain(Duration::from_secs(30)).await;
    sqlx::query("UPDATE deletion_requests SET outcome_message = '<script>alert(1)</script>' WHERE state = 'failed'")
        .execute(&env.sql)
        .await
        .unwrap();
    let (child, url) = console(&env, "127.0.0.1:0").await;

    let api = reqwest::get(format!("{url}/api/status")).await.unwrap();
    assert_eq!(api.status(), 200);
    assert!(
        api.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let api: serde_json::Value = api.json().await.unwrap();
    let (_, cli, _) = env.output(&["status", "--json"]);
    let cli: serde_json::Value = serde_json::from_str(&cli).unwrap();
    for key in [
        "counts",
        "credits",
        "pauses",
        "recent_errors",
        "selections",
        "staged",
        "claiming_stopped",
    ] {
        assert_eq!(
            api[key], cli[key],
            "{key}: the page's document is status --json"
        );
    }
    assert_eq!(
        api["counts"],
        serde_json::json!([
            {"count": 2, "module": "Leads", "operation": "delete", "state": "succeeded"},
            {"count": 1, "module": "Leads", "operation": "delete", "state": "failed"}
        ])
    );

    let page = reqwest::get(format!("{url}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<td>Leads</td><td>delete</td><td>succeeded</td><td class=\"n\">2</td>"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped"
    );
    assert!(
        !html.contains("<script"),
        "no markup from Zoho's messages, and no scripts"
    );
    for secret in [zdel::sandbox::CLIENT_SECRET, zdel::sandbox::REFRESH_TOKEN] {
        assert!(
            !html.contains(secret) && !api.to_string().contains(secret),
            "{secret}"
        );
    }
    assert!(html.len() < 150_000);
    signal(&child, libc::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(status.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_console_needs_its_token() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 1), true).await;
    let (code, _, stderr) = env.output(&["console", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("http.console_token") && stderr.contains("is not a loopback address"),
        "{stderr}"
    );

    env.set("HTTP__CONSOLE_TOKEN", "t0ken-of-the-console");
    let (child, url) = console(&env, "0.0.0.0:0").await;
    let get = |path: String| async move { reqwest::get(path).await.unwrap().status().as_u16() };
    assert_eq!(get(format!("{url}/")).await, 401);
    assert_eq!(get(format!("{url}/api/status")).await, 401);
    assert_eq!(get(format!("{url}/api/status?token=wrong")).await, 401);
    assert_eq!(get(format!("{url}/?token=t0ken-of-the-console")).await, 200);
    let bearer = reqwest::Client::new()
        .get(format!("{url}/api/status"))
        .bearer_auth("t0ken-of-the-console")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    assert!(
        !bearer
            .text()
            .await
            .unwrap()
            .contains("t0ken-of-the-console")
    );
    // Probes stay open.
    assert_eq!(get(format!("{url}/healthz")).await, 200);
    signal(&child, libc::SIGTERM);
    let _ = child.wait_with_output().await;
}
