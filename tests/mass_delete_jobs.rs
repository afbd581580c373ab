//! Mass delete of a custom view: one POST, a stored job_id, polling to the
//! end; ALREADY_SCHEDULED waits; a restart resumes polling and never posts
//! twice; an unknowable POST outcome waits for an operator.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{CVID, TestEnv, ids, wait_until};
use zdel::sandbox::Faults;
use zdel::store::{JobRow, JobState, NewJob};
use zdel::worker::StopReason;

async fn queue_job(env: &TestEnv, module: &str) -> i64 {
    env.store
        .insert_job(&NewJob {
            module: module.into(),
            cvid: CVID.into(),
            territory_id: Some("3652397000007622003".into()),
            include_child: true,
        })
        .await
        .unwrap()
}

async fn job(env: &TestEnv, id: i64) -> JobRow {
    env.store.job(id).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_job_is_posted_once_and_polled_to_completion() {
    let mut env = TestEnv::new(Faults {
        job_records_per_poll: 100,
        ..Faults::default()
    })
    .await;
    env.fast_jobs();
    env.sb().add_view("Leads", CVID, ids(0, 350));
    let id = queue_job(&env, "Leads").await;

    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );

    let j = job(&env, id).await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.zoho_status.as_deref(), Some("COMPLETED"));
    assert_eq!(
        (j.total_count, j.deleted_count, j.failed_count),
        (Some(350), Some(350), Some(0))
    );
    assert!(j.job_id.is_some());
    assert_eq!(j.post_attempts, 1);
    // SCHEDULED → RUNNING, then 100 records a poll: 1 + 4 polls.
    assert_eq!(j.polls, 5);
    assert_eq!(env.calls_to("mass_delete_view"), 1);
    assert_eq!(env.calls_to("mass_delete_status"), 5);
    assert_eq!(env.sb().remaining("Leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_scheduled_waits_and_tries_again() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.fast_jobs();
    env.sb().add_view("Leads", CVID, ids(0, 50));
    env.sb().occupy_module("Leads", 2);
    let id = queue_job(&env, "Leads").await;

    env.drain(Duration::from_secs(30)).await;

    let j = job(&env, id).await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.post_attempts, 3, "two ALREADY_SCHEDULED, then accepted");
    assert_eq!(env.sb().stats().jobs_scheduled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_view_completes_and_unsupported_modules_fail() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.fast_jobs();
    env.sb().add_view("Leads", CVID, Vec::<String>::new());
    let empty = queue_job(&env, "Leads").await;
    env.sb().add_records("Deals", ids(0, 1));
    let unknown = queue_job(&env, "Deals").await;

    env.drain(Duration::from_secs(30)).await;

    let j = job(&env, empty).await;
    assert_eq!((j.state, j.deleted_count), (JobState::Completed, Some(0)));
    assert!(j.last_error.unwrap().contains("NO_RECORDS_FOUND"));
    let j = job(&env, unknown).await;
    assert_eq!(j.state, JobState::Failed);
    assert!(
        j.last_error.unwrap().contains("INVALID_DATA"),
        "an unknown view fails with Zoho's code"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_post_leaves_the_job_uncertain_and_never_reposts() {
    let mut env = TestEnv::new(Faults {
        error_5xx_after_delete_rate: 1.0,
        ..Faults::default()
    })
    .await;
    env.fast_jobs();
    env.sb().add_view("Leads", CVID, ids(0, 50));
    let id = queue_job(&env, "Leads").await;

    let summary = env.drain(Duration::from_secs(30)).await;

    assert_eq!(
        summary.reason,
        StopReason::DrainedExceptUncertainJobs { jobs: 1 }
    );
    let j = job(&env, id).await;
    assert_eq!(j.state, JobState::Uncertain);
    assert!(
        j.last_error
            .as_deref()
            .unwrap()
            .contains("zdel jobs --reschedule"),
        "{:?}",
        j.last_error
    );
    assert_eq!(env.sb().stats().jobs_scheduled, 1, "Zoho did schedule it");
    assert_eq!(
        env.calls_to("mass_delete_view"),
        1,
        "and zdel did not post again"
    );

    // A second drain still does not post.
    env.drain(Duration::from_secs(30)).await;
    assert_eq!(env.calls_to("mass_delete_view"), 1);

    // The operator checked and cancels it; a new job for the view may then be queued.
    assert!(env.store.cancel_job(id, 0).await.unwrap());
    queue_job(&env, "Leads").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_post_and_job_id_becomes_uncertain_not_a_second_post() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.fast_jobs();
    env.sb().add_view("Leads", CVID, ids(0, 50));
    let id = queue_job(&env, "Leads").await;
    // What a kill -9 right after the POST leaves: the intent, under a lease that has run out.
    sqlx::query("UPDATE mass_delete_jobs SET state = 'scheduling', lease_owner = 'dead', lease_expires_at = 1, post_attempts = 1 WHERE id = ?1")
        .bind(id)
        .execute(&env.sql)
        .await
        .unwrap();

    let summary = env.drain(Duration::from_secs(30)).await;

    assert_eq!(
        summary.reason,
        StopReason::DrainedExceptUncertainJobs { jobs: 1 }
    );
    assert_eq!(job(&env, id).await.state, JobState::Uncertain);
    assert_eq!(env.calls_to("mass_delete_view"), 0);

    // The operator looked in Zoho: the job never ran. Reschedule it.
    assert!(env.store.reschedule_job(id, 0).await.unwrap());
    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );
    assert_eq!(job(&env, id).await.state, JobState::Completed);
    assert_eq!(env.calls_to("mass_delete_view"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_mid_poll_resumes_after_restart_with_one_post() {
    let mut env = TestEnv::new(Faults {
        job_records_per_poll: 10,
        ..Faults::default()
    })
    .await;
    env.set("MASS_DELETE__POLL_INTERVAL_MS", "100");
    env.set("MASS_DELETE__MAX_POLL_INTERVAL_MS", "100");
    env.sb().add_view("Leads", CVID, ids(0, 300));
    let id = queue_job(&env, "Leads").await;
    let spawn = || env.zdel(&["serve"]).stderr(Stdio::null()).spawn().unwrap();
    let mut child = spawn();
    wait_until(
        Duration::from_secs(20),
        "the job polled a few times",
        || async { job(&env, id).await.polls >= 3 },
    )
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let polls_at_kill = job(&env, id).await.polls;
    assert_eq!(job(&env, id).await.state, JobState::Running);

    let mut child = spawn();
    wait_until(
        Duration::from_secs(30),
        "the job completed after restart",
        || async { job(&env, id).await.state == JobState::Completed },
    )
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let j = job(&env, id).await;
    assert!(j.polls > polls_at_kill);
    assert_eq!(j.deleted_count, Some(300));
    assert_eq!(
        env.calls_to("mass_delete_view"),
        1,
        "one POST in the sandbox's log"
    );
    assert_eq!(env.sb().stats().jobs_scheduled, 1);
    assert_eq!(env.sb().remaining("Leads"), 0);
}
