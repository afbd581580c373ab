//! Leases: an expired lease puts rows back, and a claim whose lease was
//! reaped can never overwrite the outcome of a later claim.

mod common;

use common::{TestEnv, claim_one, ids};
use zdel::sandbox::Faults;
use zdel::store::{ClaimRequest, RowChange, RowOutcome};

#[tokio::test]
async fn a_stale_lease_cannot_overwrite_a_later_claim() {
    let env = TestEnv::new(Faults::default()).await;
    env.enqueue("Leads", &ids(0, 3), true).await;
    let store = &env.store;

    let first = claim_one(store, 1_000, "a", 100, &[]).await.unwrap();
    assert_eq!(first.rows.len(), 3);
    assert!(
        claim_one(store, 1_050, "b", 100, &[]).await.is_none(),
        "claimed rows are not claimed twice"
    );
    assert_eq!(store.reap_expired_leases(1_200).await.unwrap(), 3);
    let second = claim_one(store, 1_300, "b", 100, &[]).await.unwrap();
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
    while let Some(b) = claim_one(store, 1_000, "a", 60_000, &skip).await {
        assert_eq!(b.lane.module, "Leads");
        sizes.push(b.rows.len());
    }
    assert_eq!(sizes, [100, 100, 50]);
    let deals = claim_one(store, 1_000, "a", 60_000, &[]).await.unwrap();
    assert_eq!(
        (deals.lane.module.as_str(), deals.rows.len()),
        ("Deals", 10)
    );
}

#[tokio::test]
async fn a_dry_runs_expired_lease_counts_no_ambiguous_attempt() {
    let env = TestEnv::new(Faults::default()).await;
    env.enqueue("Leads", &ids(0, 2), true).await;
    let store = &env.store;
    let lanes = store.pending_lanes().await.unwrap();
    let claim = |owner: &'static str, dry_run: bool| {
        let lanes = lanes.clone();
        async move {
            store
                .claim_batches(&ClaimRequest {
                    now_ms: 1_000,
                    lanes: &lanes,
                    after: None,
                    skip_modules: &[],
                    skip_lanes: &[],
                    owner,
                    dry_run,
                    lease_ms: 100,
                    limit_for: &|_| 1,
                    max_batches: 1,
                    max_ids: None,
                })
                .await
                .unwrap()
        }
    };
    let dry = claim("dry", true).await;
    let real = claim("real", false).await;
    assert_eq!((dry.len(), real.len()), (1, 1));
    let ambiguous = || async {
        sqlx::query_as::<_, (String, i64, i64)>(
            "SELECT record_id, ambiguous_attempts, lease_dry_run FROM deletion_requests ORDER BY id",
        )
        .fetch_all(&env.sql)
        .await
        .unwrap()
    };
    let (dry_id, real_id) = (ids(0, 2)[0].clone(), ids(0, 2)[1].clone());
    assert_eq!(
        ambiguous().await,
        [(dry_id.clone(), 0, 1), (real_id.clone(), 0, 0)]
    );
    // A dry run's release touches its own rows only.
    assert_eq!(store.release_dry_run("real").await.unwrap(), 0);
    assert_eq!(store.reap_expired_leases(2_000).await.unwrap(), 2);
    assert_eq!(ambiguous().await, [(dry_id, 0, 0), (real_id, 1, 0)]);
}
