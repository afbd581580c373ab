//! The store's contract: queue semantics (claims and due order, leases and
//! fencing, group writes, outcomes, jobs, pauses, the daily cap's count)
//! shown through the store's API only — no SQL — on a store opened by
//! `common::open_store`, so another backend runs this file unchanged.

mod common;

use common::{claim_one, count_in_state, enqueue, failed, ids, request, rows_of, succeeded};
use zdel::store::{
    JobAction, JobState, JobUpdate, LaneKey, NewJob, OutcomeFilter, RequestState, RowChange,
    RowOutcome, Store,
};

async fn store_under_test() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = common::open_store(dir.path()).await;
    (dir, store)
}

#[tokio::test]
async fn a_stale_lease_cannot_overwrite_a_later_claim() {
    let (_dir, store) = store_under_test().await;
    enqueue(&store, "Leads", &ids(0, 3), true).await;
    let store = &store;

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
        count_in_state(store, "running").await,
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
    for (_, state, code, attempts) in rows_of(store, "Leads").await {
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
    let (_dir, store) = store_under_test().await;
    enqueue(&store, "Leads", &ids(0, 250), true).await;
    enqueue(&store, "Deals", &ids(1_000, 10), true).await;
    let store = &store;
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
async fn one_claim_takes_a_batch_per_slot_round_robin_within_the_cap() {
    let (_dir, store) = store_under_test().await;
    enqueue(&store, "Leads", &ids(0, 250), true).await;
    enqueue(&store, "Contacts", &ids(1_000, 30), true).await;
    let store = &store;
    let lanes = store.pending_lanes().await.unwrap();
    let limit = |_: &LaneKey| 100;

    // Five slots: Contacts 30 (then empty), Leads 100, 100, 50 (then empty).
    let batches = store
        .claim_batches(&request(&lanes, &limit, 5, None))
        .await
        .unwrap();
    let shape: Vec<(&str, usize)> = batches
        .iter()
        .map(|b| (b.lane.module.as_str(), b.rows.len()))
        .collect();
    assert_eq!(
        shape,
        [
            ("Contacts", 30),
            ("Leads", 100),
            ("Leads", 100),
            ("Leads", 50)
        ]
    );
    let leases: std::collections::HashSet<i64> = batches.iter().map(|b| b.lease.0).collect();
    assert_eq!(leases.len(), 4, "every batch has its own lease");
    assert_eq!(count_in_state(store, "running").await, 280);
    assert!(
        store
            .claim_batches(&request(&lanes, &limit, 5, None))
            .await
            .unwrap()
            .is_empty()
    );

    // The day's remaining cap bounds the rows over all batches.
    let (_dir, store) = store_under_test().await;
    enqueue(&store, "Leads", &ids(0, 500), true).await;
    let lanes = store.pending_lanes().await.unwrap();
    let batches = store
        .claim_batches(&request(&lanes, &limit, 10, Some(230)))
        .await
        .unwrap();
    let sizes: Vec<usize> = batches.iter().map(|b| b.rows.len()).collect();
    assert_eq!(sizes, [100, 100, 30]);
    assert_eq!(count_in_state(&store, "running").await, 230);
}

#[tokio::test]
async fn a_job_is_posted_once_and_a_lost_post_turns_uncertain_never_pending() {
    let (_dir, store) = store_under_test().await;
    let job = NewJob {
        module: "Leads".into(),
        cvid: "3652397000000087501".into(),
        territory_id: None,
        include_child: false,
    };
    let id = store.insert_job(&job).await.unwrap();
    assert!(
        store
            .insert_job(&job)
            .await
            .unwrap_err()
            .is_constraint_violation(),
        "one live job per view"
    );
    let Some(JobAction::Schedule(row)) = store.next_job_action(1_000, "a", 100, &[]).await.unwrap()
    else {
        panic!("the pending job is not handed out to be posted");
    };
    assert_eq!((row.id, row.state), (id, JobState::Scheduling));
    assert!(
        store
            .next_job_action(1_000, "b", 100, &[])
            .await
            .unwrap()
            .is_none(),
        "a job being posted is not handed out twice"
    );
    // The poster died before recording Zoho's answer: its lease runs out.
    assert_eq!(store.reap_stale_scheduling(1_050).await.unwrap(), 0);
    assert_eq!(store.reap_stale_scheduling(1_200).await.unwrap(), 1);
    assert_eq!(
        store.job(id).await.unwrap().unwrap().state,
        JobState::Uncertain
    );
    assert!(
        store
            .next_job_action(2_000, "b", 100, &[])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.live_jobs().await.unwrap().uncertain, 1);
    // A late answer still lands: knowing the job_id beats guessing.
    let scheduled = JobUpdate::Scheduled {
        job_id: "9".into(),
        next_poll_at: 2_000,
    };
    assert!(store.update_job(id, "a", &scheduled, 1_300).await.unwrap());
    let polled = store.next_job_action(2_000, "b", 100, &[]).await.unwrap();
    assert!(matches!(polled, Some(JobAction::Poll(j)) if j.job_id.as_deref() == Some("9")));
}

#[tokio::test]
async fn a_pause_keeps_its_first_reason_until_resumed() {
    let (_dir, store) = store_under_test().await;
    store
        .pause("Leads", "NO_PERMISSION", "first", 1)
        .await
        .unwrap();
    store
        .pause("Leads", "OAUTH_SCOPE_MISMATCH", "second", 2)
        .await
        .unwrap();
    store
        .pause(zdel::store::PAUSE_ALL, "invalid_code", "creds", 3)
        .await
        .unwrap();
    let pauses = store.pauses().await.unwrap();
    assert_eq!(
        pauses
            .iter()
            .map(|p| (p.scope.as_str(), p.code.as_str(), p.paused_at))
            .collect::<Vec<_>>(),
        [("*", "invalid_code", 3), ("Leads", "NO_PERMISSION", 1)]
    );
    assert!(store.globally_paused().await.unwrap().is_some());
    assert!(store.resume("Leads").await.unwrap());
    assert!(!store.resume("Leads").await.unwrap());
    assert_eq!(store.resume_all().await.unwrap(), 1);
    assert!(store.pauses().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_daily_count_holds_succeeded_rows_finished_in_the_window_only() {
    let (_dir, store) = store_under_test().await;
    enqueue(&store, "Leads", &ids(0, 30), true).await;
    let lanes = store.pending_lanes().await.unwrap();
    let limit = |_: &LaneKey| 10;
    let batches = store
        .claim_batches(&request(&lanes, &limit, 3, Some(25)))
        .await
        .unwrap();
    assert_eq!(
        batches.iter().map(|b| b.rows.len()).collect::<Vec<_>>(),
        [10, 10, 5],
        "a claim never takes more IDs than the cap leaves"
    );
    for (b, at) in batches.iter().zip([1_000, 5_000]) {
        let outcomes = succeeded(b.rows.iter().map(|r| r.id));
        store.record_outcomes(b.lease, &outcomes, at).await.unwrap();
    }
    assert_eq!(store.succeeded_since(0).await.unwrap(), 20);
    assert_eq!(store.succeeded_since(2_000).await.unwrap(), 10);
    assert_eq!(store.succeeded_since(6_000).await.unwrap(), 0);
}

#[tokio::test]
async fn retry_and_cancel_move_only_the_rows_their_filter_names() {
    let (_dir, store) = store_under_test().await;
    enqueue(&store, "Leads", &ids(0, 3), true).await;
    enqueue(&store, "Deals", &ids(10, 2), true).await;
    let leads = claim_one(&store, 1_000, "a", 60_000, &["Deals".to_string()])
        .await
        .unwrap();
    let failed = failed(leads.rows.iter().map(|r| r.id), "CANNOT_DELETE");
    store
        .record_outcomes(leads.lease, &failed, 1_100)
        .await
        .unwrap();
    let deals_pending = OutcomeFilter {
        state: Some(RequestState::Pending),
        module: Some("Deals".into()),
        record_ids: Some(vec![ids(10, 1)[0].clone()]),
        ..OutcomeFilter::default()
    };
    assert_eq!(store.count_matching(&deals_pending).await.unwrap(), 1);
    assert_eq!(store.cancel(&deals_pending, 1_200).await.unwrap(), 1);
    let failed_leads = OutcomeFilter {
        module: Some("Leads".into()),
        codes: Some(vec!["cannot_delete".into()]),
        ..OutcomeFilter::default()
    };
    assert_eq!(store.requeue(&failed_leads, 1_300).await.unwrap(), 3);
    let states = |module: &'static str| {
        let store = &store;
        async move {
            rows_of(store, module)
                .await
                .into_iter()
                .map(|(_, state, _, attempts)| (state, attempts))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(states("Leads").await, vec![("pending".to_string(), 0); 3]);
    assert_eq!(
        states("Deals").await,
        [("cancelled".to_string(), 0), ("pending".to_string(), 0)]
    );
    assert_eq!(count_in_state(&store, "cancelled").await, 1);
}
