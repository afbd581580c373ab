//! The sandbox's restore (`POST /settings/recycle_bin/actions/restore`)
//! over HTTP through the client's `Call::Restore`: SUCCESS back in the
//! module, INVALID_DATA for an ID not in the bin,
//! CANNOT_RESTORE_WITHOUT_PARENT while the parent is in the bin, and
//! SCHEDULED (202, no job id) for a big restore, whose records come back later.

mod common;

use std::time::Duration;

use common::{TestEnv, ids, wait_until};
use zdel::sandbox::Faults;
use zdel::zoho::Call;

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_answers_per_id_as_zoho_does() {
    let env = TestEnv::new(Faults::default()).await;
    let deals = ids(0, 6);
    let account = ids(100, 1);
    env.sb().add_records("Accounts", &account);
    env.seed_and_enqueue("Deals", &deals, true).await;
    env.enqueue("Accounts", &account, true).await;
    env.drain(Duration::from_secs(30)).await;
    assert!(env.sb().in_recycle_bin("Deals", &deals[0]));
    // deals[5] belongs to the account, which stays in the bin for now.
    env.sb()
        .restore_needs_parent(&deals[5], "Accounts", &account[0]);
    let never = ids(500, 1);
    let client = env.client();
    let slot = client.acquire_slot().await;
    let mut sent: Vec<&str> = deals.iter().map(String::as_str).collect();
    sent.push(&never[0]);
    let answer = client
        .send(&slot, &Call::Restore { ids: sent.clone() }, far())
        .await
        .unwrap();
    assert_eq!(answer.http_status, 207);
    let codes: Vec<(String, String)> = answer
        .results
        .iter()
        .map(|r| (r.id.clone(), r.code.to_string()))
        .collect();
    let mut want: Vec<(String, String)> = deals[..5]
        .iter()
        .map(|d| (d.clone(), "SUCCESS".into()))
        .collect();
    want.push((deals[5].clone(), "CANNOT_RESTORE_WITHOUT_PARENT".into()));
    want.push((never[0].clone(), "INVALID_DATA".into()));
    assert_eq!(codes, want);
    assert!(
        deals[..5]
            .iter()
            .all(|d| env.sb().has_record("Deals", d) && !env.sb().in_recycle_bin("Deals", d))
    );
    // Parent first, then the child comes back.
    let answer = client
        .send(
            &slot,
            &Call::Restore {
                ids: vec![&account[0], &deals[5]],
            },
            far(),
        )
        .await
        .unwrap();
    assert_eq!(answer.http_status, 200, "{:?}", answer.results);
    assert!(env.sb().has_record("Deals", &deals[5]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_restore_is_scheduled_and_its_records_come_back_later() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 3);
    env.seed_and_enqueue("Leads", &leads, true).await;
    env.drain(Duration::from_secs(30)).await;
    env.sb()
        .schedule_restores_over(2, Duration::from_millis(300));
    let client = env.client();
    let slot = client.acquire_slot().await;
    let sent: Vec<&str> = leads.iter().map(String::as_str).collect();
    let answer = client
        .send(&slot, &Call::Restore { ids: sent }, far())
        .await
        .unwrap();
    assert_eq!(answer.http_status, 202);
    assert!(
        answer
            .results
            .iter()
            .all(|r| r.code.to_string() == "SCHEDULED"),
        "{:?}",
        answer.results
    );
    assert!(
        !env.sb().has_record("Leads", &leads[0]),
        "not yet: no job id, only later"
    );
    wait_until(
        Duration::from_secs(10),
        "the scheduled restore done",
        || async { leads.iter().all(|l| env.sb().has_record("Leads", l)) },
    )
    .await;
}
