//! API credits: zdel stops at its own share of the day and remembers it
//! across a restart; it leaves Zoho's remaining credits the headroom the
//! org's other integrations need; `status` and `/metrics` say so.

mod common;

use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;
use zdel::worker::StopReason;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zdel_stops_at_its_share_of_credits_and_a_restart_remembers_it() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("LIMITS__MAX_CREDITS_PER_DAY", "5");
    env.seed_and_enqueue("Leads", &ids(0, 1_000), true).await;

    match env.drain(Duration::from_secs(30)).await.reason {
        StopReason::CreditsReached { pending, why } => {
            assert_eq!(pending, 500);
            assert!(why.contains("limits.max_credits_per_day = 5"), "{why}");
        }
        other => panic!("expected the credit stop, got {other:?}"),
    }
    assert_eq!(env.sb().stats().calls, 5, "exactly zdel's share");
    assert_eq!(env.count_in_state("succeeded").await, 500);

    // A new zdel on the same database remembers what was spent.
    assert!(matches!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::CreditsReached { pending: 500, .. }
    ));
    assert_eq!(env.sb().stats().calls, 5, "no call after the restart");

    let out = env
        .zdel(&["status", "--json"])
        .stdout(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["credits"]["spent_24h"], 5);
    assert_eq!(status["credits"]["max_credits_per_day"], 5);
    let stopped = status["claiming_stopped"].as_array().unwrap();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(
        stopped[0].as_str().unwrap().contains("spent 5 API credits"),
        "{stopped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zdel_leaves_the_headroom_other_integrations_need() {
    // The org has 20 credits; Zoho names what is left from the 10th call on.
    let mut env = TestEnv::new(Faults {
        credit_budget: Some(20),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__MIN_CREDITS_REMAINING", "5");
    env.set("LIMITS__MAX_CONCURRENCY", "2");
    env.seed_and_enqueue("Leads", &ids(0, 3_000), true).await;

    assert!(matches!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::CreditsReached { .. }
    ));
    let stats = env.sb().stats();
    assert!(
        (13..=15).contains(&stats.calls),
        "stopped before fewer than 5 were left, counting calls in flight: {} calls",
        stats.calls
    );
    assert!(
        stats.credit_429_at.is_empty(),
        "never ran into Zoho's limit"
    );

    let out = env
        .zdel(&["status"])
        .stdout(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    let text = common::text(&out.stdout);
    assert!(
        text.contains(&format!(
            "Zoho's last X-API-CREDITS-REMAINING: {}",
            20 - stats.calls
        )),
        "{text}"
    );
    assert!(text.contains("CLAIMING STOPPED"), "{text}");
    assert!(
        text.contains(&format!("zdel spent {} in the last 24 hours", stats.calls)),
        "{text}"
    );
}
