//! A whole-call permission error pauses that module's lane: its rows stay
//! pending, other modules go on, `status` says why, `resume` restarts it.

mod common;

use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;
use zdel::worker::StopReason;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_error_pauses_the_lane_and_loses_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 500), true).await;
    env.seed_and_enqueue("Deals", &ids(10_000, 500), true).await;
    env.sb().deny_module("Deals", true);

    let summary = env.drain(Duration::from_secs(30)).await;

    assert_eq!(
        summary.reason,
        StopReason::DrainedExceptPaused { paused_rows: 500 }
    );
    for (_, state, _, _) in env.rows("Leads").await {
        assert_eq!(state, "succeeded");
    }
    let deals = env.rows("Deals").await;
    for (id, state, code, attempts) in &deals {
        assert_eq!(state, "pending", "{id}");
        assert_eq!(*attempts, 0, "{id}: a pause must not cost attempts");
        assert!(
            matches!(code.as_deref(), None | Some("NO_PERMISSION")),
            "{id}: {code:?}"
        );
    }
    let told = deals
        .iter()
        .filter(|r| r.2.as_deref() == Some("NO_PERMISSION"))
        .count();
    assert!(
        told >= 100,
        "the batch that met the 403 records why it waits ({told} rows)"
    );
    let calls_for_deals = env.sb().stats().statuses.get(&403).copied().unwrap_or(0);
    assert!(
        calls_for_deals <= 8,
        "after the first 403 the lane stops; saw {calls_for_deals} (at most one per slot)"
    );
    let status = env.store.status(zdel::clock::now_ms()).await.unwrap();
    assert_eq!(status.pauses.len(), 1);
    assert_eq!(
        (
            status.pauses[0].scope.as_str(),
            status.pauses[0].code.as_str()
        ),
        ("Deals", "NO_PERMISSION")
    );

    env.sb().deny_module("Deals", false);
    assert!(env.store.resume("Deals").await.unwrap());
    let summary = env.drain(Duration::from_secs(30)).await;
    assert_eq!(summary.reason, StopReason::Drained);
    assert_eq!(env.count_in_state("succeeded").await, 1_000);
    assert_eq!(env.sb().remaining("Deals"), 0);
}
