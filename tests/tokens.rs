//! Tokens and throttling as real Zoho does them: "Access Denied" (HTTP 200)
//! from the token endpoint stops every token request for one shared
//! back-off; a cached token that has not expired keeps working while
//! refreshes fail; a token rejected right after zdel's own refresh pauses
//! all work as a credentials problem; a token answer without `api_domain`
//! still finds the API; `zdel check` names the token's scope; when the
//! day's credits are gone, the org backs off and probes one call at a time.

mod common;

use std::time::Duration;

use common::{TestEnv, ids, wait_until};
use zdel::sandbox::Faults;
use zdel::store::PAUSE_ALL;
use zdel::worker::StopReason;
use zdel::zoho::{Call, ZohoError};

/// A lease that runs out long after any of these calls.
fn far_off() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

fn delete_call<'a>(ids: &'a [&'a str]) -> Call<'a> {
    Call::DeleteRecords {
        module: "Leads",
        ids: ids.to_vec(),
        wf_trigger: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_stops_every_token_request_for_one_shared_back_off() {
    let env = TestEnv::new(Faults::default()).await;
    env.sb().add_records("Leads", ["1000000000000000001"]);
    env.sb().throttle_token_endpoint(true);
    let client = env.client();

    // Three "lanes" at once, five calls each.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for _ in 0..5 {
                let slot = client.acquire_slot().await;
                match client
                    .send(&slot, &delete_call(&["1000000000000000001"]), far_off())
                    .await
                {
                    Err(ZohoError::Unavailable {
                        code, retry_after, ..
                    }) => codes.push((code, retry_after)),
                    other => panic!("expected the token wait, got {other:?}"),
                }
            }
            codes
        }));
    }
    for task in tasks {
        for (code, retry_after) in task.await.unwrap() {
            assert_eq!(code, "TOKEN_THROTTLED");
            assert!(retry_after <= Duration::from_secs(60));
        }
    }
    let stats = env.sb().stats();
    assert_eq!(
        stats.token_requests, 1,
        "one token request, then one wait for all"
    );
    assert_eq!(stats.calls, 0, "no API call without a token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_that_has_not_expired_keeps_working_while_refreshes_fail() {
    // 4 s tokens: refreshed from 3 s on (a quarter before expiry).
    let env = TestEnv::new(Faults {
        token_ttl: Duration::from_secs(4),
        ..Faults::default()
    })
    .await;
    env.sb().add_records("Leads", ["1000000000000000001"]);
    let client = env.client();
    let ids = ["1000000000000000009"];
    let slot = client.acquire_slot().await;
    client
        .send(&slot, &delete_call(&ids), far_off())
        .await
        .unwrap();
    assert_eq!(env.sb().stats().token_requests, 1);

    env.sb().throttle_token_endpoint(true);
    // Call until zdel tries to refresh (it is due to from 3 s on): every
    // call meanwhile, and the one that met the refused refresh, is answered.
    wait_until(Duration::from_secs(10), "a refresh is tried", || async {
        client
            .send(&slot, &delete_call(&ids), far_off())
            .await
            .expect("the cached token still works");
        env.sb().stats().token_requests == 2
    })
    .await;
    for _ in 0..5 {
        client
            .send(&slot, &delete_call(&ids), far_off())
            .await
            .expect("the cached token still works");
    }
    let stats = env.sb().stats();
    assert_eq!(
        stats.token_requests, 2,
        "no refresh while the back-off runs"
    );
    assert_eq!(stats.unauthorized, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rejected_right_after_a_refresh_pauses_all_work_and_fails_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 300), true).await;
    env.sb().reject_fresh_tokens(true);

    let summary = env.drain(Duration::from_secs(30)).await;

    match &summary.reason {
        StopReason::CredentialsRejected { message } => {
            assert!(message.contains("INVALID_TOKEN"), "{message}")
        }
        other => panic!("expected a credentials stop, got {other:?}"),
    }
    for (id, state, _, attempts) in env.rows("Leads").await {
        assert_eq!((state.as_str(), attempts), ("pending", 0), "{id}");
    }
    let pause = env.store.globally_paused().await.unwrap().expect("paused");
    assert_eq!(
        (pause.scope.as_str(), pause.code.as_str()),
        (PAUSE_ALL, "INVALID_TOKEN")
    );
    let stats = env.sb().stats();
    // Each call slot (limits.max_concurrency = 8): one call, one refresh,
    // one repeat; then the pause holds. How many slots are in flight before
    // the pause lands depends on the machine's load (14 seen under load).
    assert!(stats.calls <= 2 * 8, "{} calls", stats.calls);
    assert!(
        stats.token_requests <= 6,
        "{} token requests",
        stats.token_requests
    );

    // Fixed: `resume --all`, and everything goes.
    env.sb().reject_fresh_tokens(false);
    env.store.resume_all().await.unwrap();
    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );
    assert_eq!(env.count_in_state("succeeded").await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_answer_without_api_domain_still_finds_the_api() {
    let env = TestEnv::new(Faults::default()).await;
    env.sb().omit_api_domain(true);
    env.seed_and_enqueue("Leads", &ids(0, 250), true).await;
    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );
    assert_eq!(env.count_in_state("succeeded").await, 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_api_host_and_the_scope_the_token_answer_names() {
    let env = TestEnv::new(Faults::default()).await;
    env.sb()
        .set_token_scope(Some("ZohoCRM.modules.ALL ZohoCRM.mass_delete.DELETE"));
    let out = env
        .zdel(&["check"])
        .stdout(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    let stdout = common::text(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        common::text(&out.stderr)
    );
    assert!(
        stdout.contains("scope:       ZohoCRM.modules.ALL ZohoCRM.mass_delete.DELETE"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("api host:    {}/crm/v8", env.sandbox.url())),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_credits_run_out_the_org_backs_off_and_probes_one_call_at_a_time() {
    let mut env = TestEnv::new(Faults {
        credit_budget: Some(10),
        ..Faults::default()
    })
    .await;
    env.set("LIMITS__MAX_CONCURRENCY", "4");
    env.set("LIMITS__MAX_THROTTLE_BACKOFF_MS", "300");
    env.seed_and_enqueue("Leads", &ids(0, 2_000), true).await;
    env.seed_and_enqueue("Deals", &ids(10_000, 2_000), true)
        .await;
    env.seed_and_enqueue("Accounts", &ids(20_000, 2_000), true)
        .await;
    let (stop, serve) = env.serve();

    wait_until(Duration::from_secs(20), "fourteen 429s", || async {
        env.sb().stats().credit_429_at.len() >= 14
    })
    .await;
    let stats = env.sb().stats();
    let at = &stats.credit_429_at;
    // The calls sent before zdel heard the first 429 meet it together (the
    // four in flight, and those started as earlier successes freed their
    // slots: at most twice the slots); after that, one probe per back-off,
    // each at least half a step (150 ms here) after the last.
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    let after_burst = &gaps[8..];
    assert!(
        after_burst.iter().all(|g| *g >= Duration::from_millis(140)),
        "probes came too close together: {gaps:?}"
    );

    // A new day: work resumes by itself.
    env.sb().restore_credits();
    env.sb().set_faults(Faults::default());
    wait_until(Duration::from_secs(30), "every ID deleted", || async {
        env.count_in_state("succeeded").await == 6_000
    })
    .await;
    stop.cancel();
    serve.await.unwrap();
    assert_eq!(env.count_in_state("failed").await, 0);
    let max_attempts: i64 = sqlx::query_scalar("SELECT max(attempts) FROM deletion_requests")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(max_attempts, 1, "a 429 costs no attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_the_effective_caps_and_catches_a_token_that_cannot_touch_the_module() {
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Deals", &ids(0, 10), true).await;
    let check = || async {
        let out = env
            .zdel(&["check"])
            .env("ZDEL__LIMITS__MAX_DELETIONS_PER_DAY", "5000")
            .stdout(std::process::Stdio::piped())
            .output()
            .await
            .unwrap();
        (out.status.code(), common::text(&out.stdout))
    };
    let (code, stdout) = check().await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("caps:        deletions per day 5000; zdel's credits per day none; credits left for others none; 429 back-off up to 60 s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not a Zoho data centre's accounts server"),
        "{stdout}"
    );
    assert!(
        stdout.contains("probe:       ok (GET /Deals?fields=id&per_page=1 answered 200)"),
        "{stdout}"
    );
    // A token without the module's scope: caught before a run, exit 1.
    env.sb().lack_scope("read", true);
    let (code, stdout) = check().await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout
            .contains("probe:       FAILED: GET /Deals?fields=id&per_page=1: OAUTH_SCOPE_MISMATCH"),
        "{stdout}"
    );
    assert_eq!(env.sb().remaining("Deals"), 10, "a check deletes nothing");
}

/// A batch held up after its claim (here by the rate limiter) until its
/// lease would run out before an answer could come is not sent: by then
/// another worker may hold its rows, and the IDs would go out twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_could_not_be_answered_within_its_lease_is_not_sent() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("LIMITS__REQUESTS_PER_SECOND", "1");
    env.set("LIMITS__BURST", "1");
    env.set("ZOHO__REQUEST_TIMEOUT_MS", "1000");
    env.sb()
        .add_records("Leads", ["1000000000000000001", "1000000000000000002"]);
    let client = env.client();
    let slot = client.acquire_slot().await;
    // The limiter's one token goes to this call.
    let first = client
        .send(&slot, &delete_call(&["1000000000000000001"]), far_off())
        .await
        .unwrap();
    assert_eq!(first.results.len(), 1);
    // The next token comes in ~1 s; a call may take 1 s; the lease ends in 1.3 s.
    let lease_ends = tokio::time::Instant::now() + Duration::from_millis(1_300);
    let err = client
        .send(&slot, &delete_call(&["1000000000000000002"]), lease_ends)
        .await
        .unwrap_err();
    assert!(matches!(err, ZohoError::NotSent { .. }), "{err:?}");
    assert!(
        tokio::time::Instant::now() < lease_ends,
        "it gave up in time"
    );
    assert_eq!(env.calls_to("delete"), 1);
    assert_eq!(env.sb().remaining("Leads"), 1);
    // With time for an answer, the same call goes.
    let later = client
        .send(&slot, &delete_call(&["1000000000000000002"]), far_off())
        .await
        .unwrap();
    assert_eq!(later.results.len(), 1);
    assert_eq!(env.sb().remaining("Leads"), 0);
}
