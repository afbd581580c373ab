//! Every answer real Zoho can give (see `../shared/zoho-answers.md`), given
//! by the sandbox on demand, and what zdel does with it: per-ID server
//! faults retry, id-less entries are matched, an empty 2xx is no evidence,
//! whole-call errors inside `contact_roles` are read, a missing scope pauses
//! only its operation, a delink's invalid parent fails whole, status polls
//! that say nothing end the job, `FAILED` ends it with its counts,
//! `ALREADY_SCHEDULED` on the ID path costs nothing, and ID-list mass
//! deletes never overlap a view job.

mod common;

use std::time::Duration;

use common::{CVID, TestEnv, ids};
use zdel::sandbox::{Faults, JobPollAnswer};
use zdel::store::{DelinkParent, JobState, Operation, RequestState, RequestTemplate, Strategy};
use zdel::worker::StopReason;

/// Retries without waiting: the decisions, not the backoff, are under test.
fn quick_retries(env: &mut TestEnv, attempts: &str) {
    env.set("RETRY__MAX_ATTEMPTS", attempts);
    env.set("RETRY__BASE_DELAY_MS", "1");
    env.set("RETRY__MAX_DELAY_MS", "5");
}

fn mass_delete(module: &str) -> RequestTemplate {
    RequestTemplate {
        strategy: Strategy::MassDelete,
        ..RequestTemplate::delete(module, true)
    }
}

async fn ambiguous_attempts(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(ambiguous_attempts), 0) FROM deletion_requests")
        .fetch_one(&env.sql)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_id_internal_error_retries_and_never_fails_a_record_it_then_deletes() {
    let mut env = TestEnv::new(Faults::default()).await;
    quick_retries(&mut env, "4");
    let all = ids(0, 300);
    env.seed_and_enqueue("Leads", &all, true).await;
    // Two answers of INTERNAL_ERROR, then the delete goes through.
    env.sb().fail_record_internally(&all[5], 2);
    // More INTERNAL_ERRORs than attempts: it fails at the limit, said so.
    env.sb().fail_record_internally(&all[250], 100);

    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );

    let rows = env.rows("Leads").await;
    for (id, state, code, attempts) in &rows {
        if id == &all[5] {
            assert_eq!(
                (state.as_str(), code.as_deref(), *attempts),
                ("succeeded", Some("SUCCESS"), 3)
            );
        } else if id == &all[250] {
            assert_eq!(
                (state.as_str(), code.as_deref(), *attempts),
                ("failed", Some("INTERNAL_ERROR"), 4)
            );
        } else {
            assert_eq!((state.as_str(), *attempts), ("succeeded", 1), "{id}");
        }
    }
    assert!(env.sb().has_record("Leads", &all[250]));
    assert!(!env.sb().has_record("Leads", &all[5]));
    let (message,): (String,) =
        sqlx::query_as("SELECT outcome_message FROM deletion_requests WHERE record_id = ?1")
            .bind(&all[250])
            .fetch_one(&env.sql)
            .await
            .unwrap();
    assert!(message.contains("gave up after 4 attempts"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_name_their_id_only_by_json_path_are_matched_to_it() {
    let mut env = TestEnv::new(Faults {
        answer_by_json_path: true,
        ..Faults::default()
    })
    .await;
    quick_retries(&mut env, "5");
    let live = ids(0, 450);
    let never = ids(9_000, 50);
    env.sb().add_records("Leads", &live);
    env.sb().lock_record(&live[7], 1);
    let mut queued = live.clone();
    queued.extend(never.iter().cloned());
    env.enqueue_template(&mass_delete("Leads"), &queued).await;

    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );

    assert_eq!(env.ids_in_state(RequestState::Succeeded).await.len(), 450);
    let mut failed = env.ids_in_state(RequestState::Failed).await;
    failed.sort();
    assert_eq!(failed, never);
    for (id, _, code, attempts) in env.rows("Leads").await {
        let expected = if id == live[7] { 2 } else { 1 };
        assert_eq!(attempts, expected, "{id}: {code:?}");
    }
    assert_eq!(env.sb().remaining("Leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_2xx_is_retried_without_being_taken_for_a_deletion() {
    // Every delete answered 204 No Content, deleting nothing.
    let mut env = TestEnv::new(Faults {
        no_content_rate: 1.0,
        ..Faults::default()
    })
    .await;
    quick_retries(&mut env, "3");
    let all = ids(0, 150);
    env.seed_and_enqueue("Leads", &all, true).await;

    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );

    for (id, state, code, attempts) in env.rows("Leads").await {
        assert_eq!(
            (state.as_str(), code.as_deref(), attempts),
            ("failed", Some(zdel::zoho::EMPTY_ANSWER), 3),
            "{id}"
        );
    }
    assert_eq!(
        ambiguous_attempts(&env).await,
        0,
        "an empty answer is not 'maybe deleted'"
    );
    assert_eq!(env.calls_to("delete"), 6, "2 batches x 3 attempts");
    assert_eq!(env.sb().remaining("Leads"), 150);

    // Half the answers empty: everything ends deleted, nothing failed, and no
    // row counts an ambiguous attempt.
    let mut env = TestEnv::new(Faults {
        no_content_rate: 0.5,
        ..Faults::default()
    })
    .await;
    quick_retries(&mut env, "30");
    env.seed_and_enqueue("Leads", &all, true).await;
    env.drain(Duration::from_secs(30)).await;
    assert_eq!(env.count_in_state("succeeded").await, 150);
    assert_eq!(ambiguous_attempts(&env).await, 0);
    assert_eq!(env.sb().remaining("Leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_call_error_wrapped_in_contact_roles_is_read_as_one() {
    let env = TestEnv::new(Faults::default()).await;
    let roles = ids(0, 120);
    env.sb().add_contact_roles(&roles);
    let template = RequestTemplate {
        operation: Operation::DeleteContactRole,
        ..RequestTemplate::delete("Contacts", true)
    };
    env.enqueue_template(&template, &roles).await;
    env.sb().deny_module("Contacts", true);

    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::DrainedExceptPaused { paused_rows: 120 }
    );
    for (id, state, code, attempts) in env.rows("Contacts").await {
        assert_eq!(state, "pending", "{id}");
        assert_eq!(attempts, 0, "{id}");
        // Zoho's code, found inside the envelope (not HTTP_403).
        assert!(
            matches!(code.as_deref(), None | Some("NO_PERMISSION")),
            "{id}: {code:?}"
        );
    }
    let pauses = env.store.pauses().await.unwrap();
    assert_eq!(pauses.len(), 1);
    assert_eq!(
        (pauses[0].scope.as_str(), pauses[0].code.as_str()),
        ("Contacts", "NO_PERMISSION")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_scope_pauses_only_the_operation_that_lacks_it() {
    let env = TestEnv::new(Faults::default()).await;
    let plain = ids(0, 300);
    let massed = ids(5_000, 600);
    env.sb().add_records("Leads", &plain);
    env.sb().add_records("Leads", &massed);
    env.enqueue("Leads", &plain, true).await;
    env.enqueue_template(&mass_delete("Leads"), &massed).await;
    env.sb().lack_scope("mass_delete", true);

    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::DrainedExceptPaused { paused_rows: 600 }
    );
    // Plain deletes of the same module went on.
    assert_eq!(env.ids_in_state(RequestState::Succeeded).await, plain);
    assert_eq!(env.count_in_state("pending").await, 600);
    let attempts: i64 = sqlx::query_scalar(
        "SELECT sum(attempts) FROM deletion_requests WHERE strategy = 'mass_delete'",
    )
    .fetch_one(&env.sql)
    .await
    .unwrap();
    assert_eq!(attempts, 0, "a pause costs no attempt");
    let pauses = env.store.pauses().await.unwrap();
    assert_eq!(pauses.len(), 1);
    assert_eq!(
        (pauses[0].scope.as_str(), pauses[0].code.as_str()),
        ("Leads/mass_delete", "OAUTH_SCOPE_MISMATCH")
    );

    // Granted, and resumed by module: the rest goes.
    env.sb().lack_scope("mass_delete", false);
    assert!(env.store.resume("Leads").await.unwrap());
    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );
    assert_eq!(env.count_in_state("succeeded").await, 900);
    assert_eq!(env.sb().remaining("Leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delink_from_an_invalid_parent_fails_whole_with_zoho_s_code() {
    let env = TestEnv::new(Faults::default()).await;
    env.sb().add_records("Contacts", ["1000000000000000001"]);
    let template = RequestTemplate {
        operation: Operation::Delink,
        parent: Some(DelinkParent {
            record_id: "1999999999999999999".into(),
            related_list: "Campaigns".into(),
        }),
        ..RequestTemplate::delete("Contacts", true)
    };
    env.enqueue_template(&template, &ids(0, 40)).await;

    env.drain(Duration::from_secs(30)).await;

    for (id, state, code, attempts) in env.rows("Contacts").await {
        assert_eq!(
            (state.as_str(), code.as_deref(), attempts),
            ("failed", Some("INVALID_DATA"), 1),
            "{id}"
        );
    }
    assert_eq!(env.calls_to("delink"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_polls_answered_404_or_204_end_the_job_uncertain_and_drain_exits() {
    for answer in [JobPollAnswer::NotFound, JobPollAnswer::NoContent] {
        let mut env = TestEnv::new(Faults::default()).await;
        env.fast_jobs();
        env.set("MASS_DELETE__MAX_UNKNOWN_POLLS", "3");
        env.sb().add_view("Leads", CVID, ids(0, 200));
        env.sb().set_job_poll_answer(Some(answer));
        let id = env.queue_view_job("Leads").await;

        assert_eq!(
            env.drain(Duration::from_secs(30)).await.reason,
            StopReason::DrainedExceptUncertainJobs { jobs: 1 },
            "{answer:?}"
        );
        let job = env.store.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Uncertain, "{answer:?}");
        assert_eq!((job.polls, job.unknown_polls), (3, 3), "{answer:?}");
        let job_id = job.job_id.clone().unwrap();
        let error = job.last_error.unwrap_or_default();
        assert!(error.contains(&job_id), "{answer:?}: {error}");
        assert!(error.contains("zdel jobs --reschedule"), "{error}");
        assert_eq!(env.calls_to("mass_delete_status"), 3, "{answer:?}");
        assert_eq!(env.calls_to("mass_delete_view"), 1, "{answer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_ends_with_its_counts() {
    let mut env = TestEnv::new(Faults {
        job_records_per_poll: 100,
        ..Faults::default()
    })
    .await;
    env.fast_jobs();
    env.sb().add_view("Leads", CVID, ids(0, 350));
    let id = env.queue_view_job("Leads").await;
    // Two polls go normally (SCHEDULED → RUNNING, 100 deleted), then FAILED.
    let (stop, serve) = env.serve();
    common::wait_until(Duration::from_secs(20), "100 deleted", || async {
        env.sb().remaining("Leads") <= 250
    })
    .await;
    env.sb().set_job_poll_answer(Some(JobPollAnswer::Failed));
    common::wait_until(Duration::from_secs(20), "the job ends", || async {
        env.store
            .job(id)
            .await
            .unwrap()
            .unwrap()
            .state
            .is_terminal()
    })
    .await;
    stop.cancel();
    serve.await.unwrap();
    let job = env.store.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.zoho_status.as_deref(), Some("FAILED"));
    let deleted = 350 - env.sb().remaining("Leads") as i64;
    assert_eq!(
        (job.total_count, job.deleted_count, job.failed_count),
        (Some(350), Some(deleted), Some(0))
    );
    assert!(job.last_error.unwrap_or_default().contains("FAILED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_scheduled_on_the_id_path_puts_the_work_back_at_no_cost() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.fast_jobs();
    let all = ids(0, 1_200);
    env.sb().add_records("Leads", &all);
    env.enqueue_template(&mass_delete("Leads"), &all).await;
    // Someone else's mass action: the next 3 mass deletes are turned away.
    env.sb().occupy_module("Leads", 3);

    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );
    assert_eq!(env.sb().id_path_busy_answers(), 3);
    for (id, state, _, attempts) in env.rows("Leads").await {
        assert_eq!((state.as_str(), attempts), ("succeeded", 1), "{id}");
    }
    assert_eq!(env.sb().remaining("Leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_id_list_mass_delete_is_sent_while_a_view_job_of_the_org_runs() {
    let mut env = TestEnv::new(Faults {
        job_records_per_poll: 50,
        ..Faults::default()
    })
    .await;
    env.fast_jobs();
    env.sb().add_view("Deals", CVID, ids(50_000, 400));
    let job = env.queue_view_job("Deals").await;
    let listed = ids(0, 1_000);
    env.sb().add_records("Leads", &listed);
    env.enqueue_template(&mass_delete("Leads"), &listed).await;

    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );
    assert_eq!(
        env.sb().id_path_busy_answers(),
        0,
        "zdel held ID-list mass deletes back while the view job ran"
    );
    assert_eq!(
        env.store.job(job).await.unwrap().unwrap().state,
        JobState::Completed
    );
    assert_eq!(env.count_in_state("succeeded").await, 1_000);
    assert_eq!(env.calls_to("mass_delete_ids"), 2);
    assert_eq!(env.sb().remaining("Leads") + env.sb().remaining("Deals"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_takes_what_zoho_takes_one_record_paths_and_python_s_true() {
    let env = TestEnv::new(Faults::default()).await;
    let all = ids(0, 3);
    env.sb().add_records("Leads", &all);
    let http = reqwest::Client::new();
    let base = env.sandbox.url();
    let auth = format!("Zoho-oauthtoken {}", env.access_token().await);
    // `DELETE /{module}/{id}` with the Python SDK's `wf_trigger=True`.
    let one: serde_json::Value = http
        .delete(format!("{base}/crm/v8/Leads/{}?wf_trigger=True", all[0]))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["data"][0]["code"], "SUCCESS");
    assert_eq!(one["data"][0]["details"]["id"], all[0].as_str());
    let many = http
        .delete(format!(
            "{base}/crm/v8/Leads?ids={},{}&wf_trigger=False",
            all[1], all[2]
        ))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(many.status(), 200);
    assert_eq!(env.sb().remaining("Leads"), 0);
    let bad = http
        .delete(format!("{base}/crm/v8/Leads?ids=1&wf_trigger=maybe"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
