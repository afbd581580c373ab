//! The rate limiter and the concurrency cap hold, as measured by the sandbox.

mod common;

use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_in_every_one_second_window() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_millis(20),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__REQUESTS_PER_SECOND", "20");
    env.set("LIMITS__BURST", "5");
    env.set("LIMITS__MAX_CONCURRENCY", "8");
    // 60 calls at 20/s: about 3 seconds, so several full windows are measured.
    env.seed_and_enqueue("Leads", &ids(0, 6_000), true).await;

    env.drain(Duration::from_secs(60)).await;

    let stats = env.sb().stats();
    assert_eq!(stats.calls, 60);
    assert_eq!(env.count_in_state("succeeded").await, 6_000);
    let peak = stats.peak_calls_per_second();
    assert!(
        peak <= 20 + 5,
        "peak {peak} calls in one second exceeds 20/s + burst 5"
    );
    assert!(
        peak >= 15,
        "peak {peak}: the limiter is far below its rate; is it measuring anything?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_is_reached_and_never_exceeded() {
    let mut env = TestEnv::new(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__MAX_CONCURRENCY", "4");
    for (m, module) in ["Leads", "Contacts", "Deals"].iter().enumerate() {
        env.seed_and_enqueue(module, &ids(m as u64 * 10_000, 800), true)
            .await;
    }

    env.drain(Duration::from_secs(60)).await;

    let stats = env.sb().stats();
    assert_eq!(stats.calls, 24);
    assert_eq!(stats.peak_concurrency, 4, "the cap is 4 calls in flight");
    assert_eq!(stats.overlapping_ids, 0, "an ID was in two calls at once");
}
