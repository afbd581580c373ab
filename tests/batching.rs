//! Batching: N pending IDs of one module and flag cost exactly ceil(N/100)
//! calls, never more than 100 IDs per call, and each row gets its own outcome.

mod common;

use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;
use zdel::worker::StopReason;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_1050_cost_exactly_11_calls() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 1050);
    env.seed_and_enqueue("Leads", &leads, true).await;

    let summary = env.drain(Duration::from_secs(60)).await;

    assert_eq!(summary.reason, StopReason::Drained);
    let stats = env.sb().stats();
    assert_eq!(
        stats.calls, 11,
        "1,050 IDs must take exactly ceil(1050/100) calls"
    );
    let mut sizes = stats.ids_per_call.clone();
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        [50, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100]
    );
    let rows = env.rows("Leads").await;
    assert_eq!(rows.len(), 1050);
    for (id, state, code, attempts) in &rows {
        assert_eq!(
            (state.as_str(), code.as_deref(), *attempts),
            ("succeeded", Some("SUCCESS"), 1),
            "{id}"
        );
        assert!(
            !env.sb().has_record("Leads", id),
            "{id} still in the sandbox"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_split_by_module_and_workflow_flag() {
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 250), true).await;
    env.seed_and_enqueue("Leads", &ids(1_000, 120), false).await;
    env.seed_and_enqueue("Contacts", &ids(2_000, 99), true)
        .await;

    env.drain(Duration::from_secs(60)).await;

    // ceil(250/100) + ceil(120/100) + ceil(99/100) = 3 + 2 + 1
    assert_eq!(env.sb().stats().calls, 6);
    assert_eq!(env.count_in_state("succeeded").await, 469);
    assert_eq!(
        env.sb().remaining("Leads") + env.sb().remaining("Contacts"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_fail_with_invalid_data_and_others_succeed() {
    let env = TestEnv::new(Faults::default()).await;
    let all = ids(0, 10);
    env.sb().add_records("Leads", &all[..7]);
    env.enqueue("Leads", &all, true).await;

    env.drain(Duration::from_secs(30)).await;

    let rows = env.rows("Leads").await;
    for (i, (id, state, code, _)) in rows.iter().enumerate() {
        let expected = if i < 7 {
            ("succeeded", "SUCCESS")
        } else {
            ("failed", "INVALID_DATA")
        };
        assert_eq!((state.as_str(), code.as_deref().unwrap()), expected, "{id}");
    }
    assert_eq!(env.sb().stats().calls, 1);
}
