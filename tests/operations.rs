//! Every per-ID deletion: delink, contact roles, photos, and mass delete by
//! IDs, each batched to Zoho's limit with an outcome per ID.

mod common;

use std::time::Duration;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;
use zdel::store::{DelinkParent, Operation, RequestTemplate, Strategy};
use zdel::worker::StopReason;

const PARENT: &str = "3652397000000327001";

fn delink(module: &str, parent: &str, list: &str) -> RequestTemplate {
    RequestTemplate {
        operation: Operation::Delink,
        module: module.into(),
        wf_trigger: true,
        strategy: Strategy::Auto,
        parent: Some(DelinkParent {
            record_id: parent.into(),
            related_list: list.into(),
        }),
    }
}

async fn states(env: &TestEnv, operation: &str) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT coalesce(related_id, record_id), state, outcome_code FROM deletion_requests
         WHERE operation = ?1 ORDER BY id",
    )
    .bind(operation)
    .fetch_all(&env.sql)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delinks_are_batched_per_parent_250_cost_3_calls() {
    let env = TestEnv::new(Faults::default()).await;
    let contacts = ids(0, 250);
    env.sb()
        .add_relations("Campaigns", PARENT, "Contacts", &contacts[..249]);
    env.enqueue_template(&delink("Campaigns", PARENT, "Contacts"), &contacts)
        .await;
    // A second parent and a second related list are separate batches.
    let other_parent = "3652397000000327002";
    env.sb()
        .add_relations("Campaigns", other_parent, "Contacts", ids(0, 10));
    env.enqueue_template(&delink("Campaigns", other_parent, "Contacts"), &ids(0, 10))
        .await;
    env.sb()
        .add_relations("Campaigns", PARENT, "Leads", ids(500, 5));
    env.enqueue_template(&delink("Campaigns", PARENT, "Leads"), &ids(500, 5))
        .await;

    assert_eq!(
        env.drain(Duration::from_secs(30)).await.reason,
        StopReason::Drained
    );

    assert_eq!(env.calls_to("delink"), 3 + 1 + 1);
    assert_eq!(env.sb().relations_left("Campaigns", PARENT, "Contacts"), 0);
    assert_eq!(
        env.sb()
            .relations_left("Campaigns", other_parent, "Contacts"),
        0
    );
    assert_eq!(env.sb().relations_left("Campaigns", PARENT, "Leads"), 0);
    let rows = states(&env, "delink").await;
    assert_eq!(rows.len(), 265);
    for (i, (id, state, code)) in rows.iter().enumerate() {
        let expected = if i == 249 {
            ("failed", "INVALID_DATA")
        } else {
            ("succeeded", "SUCCESS")
        };
        assert_eq!(
            (state.as_str(), code.as_deref().unwrap()),
            expected,
            "row {i} ({id})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_roles_are_read_from_contact_roles_not_data() {
    let env = TestEnv::new(Faults::default()).await;
    let roles = ids(0, 150);
    env.sb().add_contact_roles(&roles[..148]);
    let template = RequestTemplate {
        operation: Operation::DeleteContactRole,
        module: "Contacts".into(),
        wf_trigger: true,
        strategy: Strategy::Auto,
        parent: None,
    };
    env.enqueue_template(&template, &roles).await;

    env.drain(Duration::from_secs(30)).await;

    assert_eq!(env.calls_to("contact_roles"), 2);
    assert_eq!(env.sb().contact_roles_left(), 0);
    let rows = states(&env, "delete_contact_role").await;
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.1 == "failed")
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(failed, [roles[148].as_str(), roles[149].as_str()]);
    assert!(
        rows.iter()
            .filter(|r| r.1 == "succeeded")
            .all(|r| r.2.as_deref() == Some("SUCCESS"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_are_deleted_one_call_each_from_a_bare_answer() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 3);
    env.sb().add_photos("Leads", &leads[..2]);
    let template = RequestTemplate {
        operation: Operation::DeletePhoto,
        module: "Leads".into(),
        wf_trigger: true,
        strategy: Strategy::Auto,
        parent: None,
    };
    env.enqueue_template(&template, &leads).await;

    env.drain(Duration::from_secs(30)).await;

    assert_eq!(env.calls_to("photo"), 3);
    assert!(!env.sb().has_photo("Leads", &leads[0]));
    let rows = states(&env, "delete_photo").await;
    assert_eq!(rows[0].1, "succeeded");
    assert_eq!(rows[1].1, "succeeded");
    assert_eq!(
        (rows[2].1.as_str(), rows[2].2.as_deref()),
        ("failed", Some("INVALID_DATA"))
    );
    let message: String =
        sqlx::query_scalar("SELECT outcome_message FROM deletion_requests WHERE state = 'failed'")
            .fetch_one(&env.sql)
            .await
            .unwrap();
    assert_eq!(message, "No such photo exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_delete_strategy_sends_500_ids_a_call_1200_cost_3() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 1_200);
    env.sb().add_records("Leads", &leads);
    let template = RequestTemplate {
        strategy: Strategy::MassDelete,
        ..RequestTemplate::delete("Leads", true)
    };
    env.enqueue_template(&template, &leads).await;
    // Mass delete cannot suppress workflows: these go as plain DELETEs.
    let quiet = ids(5_000, 150);
    env.sb().add_records("Leads", &quiet);
    let template = RequestTemplate {
        strategy: Strategy::MassDelete,
        ..RequestTemplate::delete("Leads", false)
    };
    env.enqueue_template(&template, &quiet).await;
    let status = env.store.status(0).await.unwrap();
    assert_eq!(status.mass_delete_without_workflow, 150);

    env.drain(Duration::from_secs(30)).await;

    assert_eq!(env.calls_to("mass_delete_ids"), 3);
    assert_eq!(env.calls_to("delete"), 2);
    let mut sizes = env.sb().stats().ids_per_call;
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100, 200, 500, 500]);
    assert_eq!(env.count_in_state("succeeded").await, 1_350);
    assert_eq!(env.sb().remaining("Leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_default_strategy_applies_to_auto_rows() {
    let mut env = TestEnv::new(Faults::default()).await;
    env.set("ZOHO__DELETE_STRATEGY", "mass_delete");
    env.seed_and_enqueue("Deals", &ids(0, 700), true).await;

    env.drain(Duration::from_secs(30)).await;

    assert_eq!(env.calls_to("mass_delete_ids"), 2);
    assert_eq!(env.calls_to("delete"), 0);
    assert_eq!(env.count_in_state("succeeded").await, 700);
}
