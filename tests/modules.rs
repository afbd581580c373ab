//! The `--module` check of `zdel enqueue` and `zdel select` against the
//! org's modules (`GET /settings/modules`, cached in the database): a
//! name the org lacks is refused with the nearest one and nothing is
//! queued; another case is written as Zoho spells it, so it shares the
//! lane; Zoho out of reach leaves the name as given, with a warning.

mod common;

use common::TestEnv;
use zdel::sandbox::Faults;

async fn modules_queued(env: &TestEnv) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT module, count(*) FROM deletion_requests GROUP BY module ORDER BY module")
        .fetch_all(&env.sql)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_names_are_checked_against_the_org_and_spelled_as_zoho_does() {
    let env = TestEnv::new(Faults::default()).await;
    let (code, _, stderr) = env.output(&["enqueue", "--module", "Lead", "--ids", "1,2"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--module \"Lead\": the org has no module of that API name (did you mean Leads?); nothing was queued"),
        "{stderr}"
    );
    assert!(modules_queued(&env).await.is_empty());

    for module in ["leads", "LEADS", "Leads"] {
        let (code, _, stderr) = env.output(&["enqueue", "--module", module, "--ids", "3,4"]);
        assert_eq!(code, Some(0), "{module}: {stderr}");
    }
    // One lane, as Zoho spells it: the second and third found the first's rows live.
    assert_eq!(modules_queued(&env).await, vec![("Leads".to_string(), 2)]);
    // Asked once; the cache answered the rest.
    assert_eq!(env.calls_to("modules"), 1);
    let cached: i64 =
        sqlx::query_scalar("SELECT count(*) FROM org_modules WHERE api_name = 'Leads'")
            .fetch_one(&env.sql)
            .await
            .unwrap();
    assert_eq!(cached, 1);

    // select refuses it the same way, before any query.
    let (code, _, stderr) = env.output(&[
        "select",
        "--module",
        "Deal",
        "--where",
        "id is not null",
        "--yes",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("did you mean Deals?"), "{stderr}");
    assert_eq!(env.calls_to("coql"), 0);
    // A name not in the cache is asked again (a module made since).
    assert_eq!(env.calls_to("modules"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_zoho_s_reach_the_module_is_used_as_given_with_a_warning() {
    let env = TestEnv::new(Faults::default()).await;
    env.sandbox.stop();
    let (code, _, stderr) = env.output(&["enqueue", "--module", "Leads", "--ids", "1,2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: could not check --module Leads against the org's modules"),
        "{stderr}"
    );
    assert_eq!(modules_queued(&env).await, vec![("Leads".to_string(), 2)]);
}
