//! Leases: an expired lease puts rows back, and a claim whose lease was
//! reaped can never overwrite the outcome of a later claim.

mod common;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;
use zdel::store::{RowChange, RowOutcome};

#[tokio::test]
async fn a_stale_lease_cannot_overwrite_a_later_claim() {
    let env = TestEnv::new(Faults::default()).await;
    env.enqueue("Leads", &ids(0, 3), true).await;
    let store = &env.store;

    let first = store
        .claim_batch(
            1_000,
            &store.pending_lanes().await.unwrap(),
            None,
            &[],
            &[],
            "a",
            100,
            &|_| 100,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.rows.len(), 3);
    assert!(
        store
            .claim_batch(
                1_050,
                &store.pending_lanes().await.unwrap(),
                None,
                &[],
                &[],
                "b",
                100,
                &|_| 100
            )
            .await
            .unwrap()
            .is_none(),
        "claimed rows are not claimed twice"
    );
    assert_eq!(store.reap_expired_leases(1_200).await.unwrap(), 3);
    let second = store
        .claim_batch(
            1_300,
            &store.pending_lanes().await.unwrap(),
            None,
            &[],
            &[],
            "b",
            100,
            &|_| 100,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second
            .rows
            .iter()
            .map(|r| r.ambiguous_attempts)
            .collect::<Vec<_>>(),
        [1, 1, 1]
    );

    let done = |id| RowOutcome {
        id,
        change: RowChange::Succeeded {
            code: "SUCCESS".into(),
            message: "stale".into(),
            http_status: Some(200),
        },
    };
    let stale: Vec<RowOutcome> = first.rows.iter().map(|r| done(r.id)).collect();
    let recorded = store
        .record_outcomes(first.lease, &stale, 1_400)
        .await
        .unwrap();
    assert_eq!((recorded.applied, recorded.lease_lost), (0, 3));
    assert_eq!(
        env.count_in_state("running").await,
        3,
        "the stale write changed nothing"
    );

    let fresh: Vec<RowOutcome> = second
        .rows
        .iter()
        .map(|r| RowOutcome {
            id: r.id,
            change: RowChange::Failed {
                code: "CANNOT_DELETE".into(),
                message: "fresh".into(),
                http_status: Some(400),
                count_attempt: true,
                ambiguous: false,
            },
        })
        .collect();
    let recorded = store
        .record_outcomes(second.lease, &fresh, 1_500)
        .await
        .unwrap();
    assert_eq!((recorded.applied, recorded.lease_lost), (3, 0));
    for (_, state, code, attempts) in env.rows("Leads").await {
        assert_eq!(
            (state.as_str(), code.as_deref(), attempts),
            ("failed", Some("CANNOT_DELETE"), 1)
        );
    }
    // Even after the rows finished, the stale lease still cannot touch them.
    let recorded = store
        .record_outcomes(first.lease, &stale, 1_600)
        .await
        .unwrap();
    assert_eq!(recorded.applied, 0);
}

#[tokio::test]
async fn claims_take_full_batches_in_due_order_and_skip_paused_modules() {
    let env = TestEnv::new(Faults::default()).await;
    env.enqueue("Leads", &ids(0, 250), true).await;
    env.enqueue("Deals", &ids(1_000, 10), true).await;
    let store = &env.store;
    let skip = vec!["Deals".to_string()];
    let mut sizes = Vec::new();
    while let Some(b) = store
        .claim_batch(
            1_000,
            &store.pending_lanes().await.unwrap(),
            None,
            &skip,
            &[],
            "a",
            60_000,
            &|_| 100,
        )
        .await
        .unwrap()
    {
        assert_eq!(b.lane.module, "Leads");
        sizes.push(b.rows.len());
    }
    assert_eq!(sizes, [100, 100, 50]);
    let deals = store
        .claim_batch(
            1_000,
            &store.pending_lanes().await.unwrap(),
            None,
            &[],
            &[],
            "a",
            60_000,
            &|_| 100,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (deals.lane.module.as_str(), deals.rows.len()),
        ("Deals", 10)
    );
}
