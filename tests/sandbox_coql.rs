//! The sandbox's COQL over real HTTP (issue 14 point 9, the part `zdel
//! select` builds on): keyset paging by `id > last` past the 100,000-row
//! OFFSET ceiling selects every match and nothing else; OFFSET past it is
//! refused; Zoho's error shapes; 204 for no match; credits by LIMIT.

mod common;

use std::collections::HashMap;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;

/// POST /coql: the status and the body (null for 204).
async fn coql(env: &TestEnv, token: &str, query: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/crm/v8/coql", env.sandbox.url()))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .json(&serde_json::json!({ "select_query": query }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

fn lead(status: &str, created: &str) -> HashMap<String, String> {
    [
        ("Lead_Status", status),
        ("Created_Time", created),
        ("Last_Name", "Doe"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_paging_selects_every_match_past_the_offset_ceiling() {
    let env = TestEnv::new(Faults {
        credit_budget: Some(1_000_000),
        ..Faults::default()
    })
    .await;
    // 150,000 leads; every fifth is not junk: 120,000 match.
    let all = ids(0, 150_000);
    let want: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 4)
        .map(|(_, id)| id.clone())
        .collect();
    env.sb().add_records_with_fields(
        "Leads",
        all.iter().enumerate().map(|(i, id)| {
            let status = if i % 5 == 4 { "Contacted" } else { "Junk Lead" };
            (id.clone(), lead(status, "2022-06-01T00:00:00+00:00"))
        }),
    );
    let token = env.access_token().await;
    let mut got: Vec<String> = Vec::new();
    let mut last = "0".to_string();
    let mut calls = 0;
    loop {
        let (status, body) = coql(
            &env,
            &token,
            &format!("select id from Leads where (Lead_Status = 'Junk Lead') and (id > {last}) order by id asc limit 2000"),
        )
        .await;
        calls += 1;
        if status == 204 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        let page: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        last = page.last().unwrap().clone();
        got.extend(page);
        if body["info"]["more_records"] == false {
            break;
        }
    }
    assert_eq!(got, want);
    assert_eq!(calls, 60);
    // 3 credits a 2,000-row page.
    assert_eq!(env.sb().stats().credits_used, 3 * 60);

    // OFFSET stops at 100,000 rows.
    let (status, body) = coql(
        &env,
        &token,
        "select id from Leads where Lead_Status = 'Junk Lead' limit 2000 offset 98001",
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("LIMIT_EXCEEDED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_zoho_s_error_shapes_and_no_match_is_204() {
    let env = TestEnv::new(Faults::default()).await;
    let mut with_email = lead("Junk Lead", "2024-01-01T00:00:00+00:00");
    with_email.insert("Email".into(), "ann@example.com".into());
    env.sb().add_records_with_fields(
        "Leads",
        [
            (
                ids(0, 1)[0].clone(),
                lead("Junk Lead", "2022-01-01T00:00:00+00:00"),
            ),
            (ids(1, 1)[0].clone(), with_email),
        ],
    );
    let token = env.access_token().await;
    let (status, body) = coql(
        &env,
        &token,
        "select id from Leads where Lead_Status = 'x' Lead",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "SYNTAX_ERROR");
    assert_eq!(body["details"]["near"], "Lead");
    let (status, body) = coql(&env, &token, "select id from Leads where Lead_Stat = 'x'").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_QUERY"))
    );
    assert_eq!(body["details"]["column_name"], "Lead_Stat");
    let (status, body) = coql(&env, &token, "select id from Lead where id is not null").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_MODULE"))
    );
    let (status, _) = coql(
        &env,
        &token,
        "select id from Leads where Lead_Status = 'Contacted'",
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = coql(
        &env,
        &token,
        "select id, Last_Name, Email from Leads where Created_Time < '2023-01-01T00:00:00+00:00'",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0],
        serde_json::json!({"id": ids(0, 1)[0], "Last_Name": "Doe", "Email": null})
    );
}
