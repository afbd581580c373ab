//! The crash test: the real `zdel serve`, with faults on, killed with
//! SIGKILL at random moments a dozen times and restarted each time; then
//! every ID's fate must be known and consistent with the sandbox.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestEnv, ids, wait_until};
use zdel::sandbox::Faults;

const KILLS: usize = 12;

fn spawn(env: &TestEnv, command: &str) -> tokio::process::Child {
    env.zdel(&[command]).spawn().unwrap()
}

async fn finished(env: &TestEnv) -> i64 {
    env.count_in_state("succeeded").await + env.count_in_state("failed").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_and_deletes_nothing_twice() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_millis(30),
        error_5xx_rate: 0.1,
        error_5xx_after_delete_rate: 0.1,
        drop_after_delete_rate: 0.1,
        ..Faults::default()
    })
    .await;
    env.set("ZOHO__REQUEST_TIMEOUT_MS", "1000");
    env.set("WORKER__LEASE_MS", "1500");
    env.set("LIMITS__MAX_CONCURRENCY", "4");
    env.set("LIMITS__REQUESTS_PER_SECOND", "6");
    env.set("LIMITS__BURST", "4");
    env.set("RETRY__MAX_ATTEMPTS", "60");
    let leads = ids(0, 3_000);
    let contacts = ids(10_000, 2_000);
    let ghosts = ids(20_000, 25); // never existed in Zoho
    env.seed_and_enqueue("Leads", &leads, true).await;
    env.seed_and_enqueue("Contacts", &contacts, false).await;
    env.enqueue("Leads", &ghosts, true).await;
    let total = 5_025;

    let mut kills = 0;
    for kill in 0..KILLS {
        let mut child = spawn(&env, "serve");
        let before = finished(&env).await;
        // Let it make progress, then kill it at a random moment mid-flight.
        wait_until(
            Duration::from_secs(20),
            "progress before the kill",
            || async { finished(&env).await > before || env.count_in_state("running").await > 0 },
        )
        .await;
        let jitter = rand::random::<u64>() % 400;
        tokio::time::sleep(Duration::from_millis(jitter)).await; // the random kill moment
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "kill {kill}: zdel exited by itself");
        kills += 1;
        if finished(&env).await == total {
            break;
        }
    }
    assert!(
        kills >= 10,
        "only {kills} kills landed before the work was done"
    );
    assert!(
        env.count_in_state("succeeded").await < total,
        "the kills came too late to test anything"
    );

    let drain = spawn(&env, "drain");
    let out = tokio::time::timeout(Duration::from_secs(90), drain.wait_with_output())
        .await
        .expect("the final drain did not finish")
        .unwrap();
    // 0, or 6 if some of the ghosts' failures fell in this last run.
    assert!(
        matches!(out.status.code(), Some(0 | 6)),
        "{:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every row is terminal, once.
    assert_eq!(
        env.count_in_state("pending").await + env.count_in_state("running").await,
        0
    );
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT module || '/' || record_id) FROM deletion_requests",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap();
    assert_eq!((rows, distinct), (total, total));
    let outcomes: Vec<(String, String, String, Option<String>)> =
        sqlx::query_as("SELECT module, record_id, state, outcome_code FROM deletion_requests")
            .fetch_all(&env.sql)
            .await
            .unwrap();
    let ghosts: HashSet<&String> = ghosts.iter().collect();
    for (module, id, state, code) in &outcomes {
        let still_there = env.sb().has_record(module, id);
        match state.as_str() {
            "succeeded" => assert!(!still_there, "{module}/{id} succeeded but still exists"),
            "failed" | "cancelled" => {
                assert!(code.is_some(), "{module}/{id} {state} without a code");
                if !ghosts.contains(id) {
                    assert!(
                        still_there,
                        "{module}/{id} failed ({code:?}) but Zoho deleted it"
                    );
                }
            }
            other => panic!("{module}/{id} ended {other}"),
        }
    }
    // Every record Zoho still holds is accounted for by a failed row.
    assert_eq!(
        env.sb().remaining("Leads") + env.sb().remaining("Contacts"),
        outcomes
            .iter()
            .filter(|o| o.2 != "succeeded" && !ghosts.contains(&o.1))
            .count()
    );
    let stats = env.sb().stats();
    assert_eq!(
        stats.overlapping_ids, 0,
        "an ID was in two calls in flight at once"
    );
    assert!(
        stats.statuses.get(&500).copied().unwrap_or(0) > 0,
        "the faults did not fire"
    );
}
