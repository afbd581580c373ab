//! `zdel erase`: one person's records found across modules by an exact
//! COQL match, deleted, verified against the recycle bin, and reported;
//! nothing deleted when the search finds nothing or fails.

mod common;

use std::collections::HashMap;

use common::{TestEnv, ids};
use zdel::sandbox::Faults;

fn person(email: &str, phone: Option<&str>) -> HashMap<String, String> {
    let mut f: HashMap<String, String> = [("Email".to_string(), email.to_string())].into();
    if let Some(p) = phone {
        f.insert("Phone".into(), p.into());
        f.insert("Mobile".into(), String::new());
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_finds_a_person_in_two_modules_deletes_verifies_and_reports() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 4);
    let contacts = ids(100, 3);
    let jane = "jane@example.com";
    env.sb().add_records_with_fields(
        "Leads",
        leads.iter().enumerate().map(|(i, id)| {
            let email = if i < 2 {
                jane.to_string()
            } else {
                format!("other{i}@example.com")
            };
            (id.clone(), person(&email, Some("+1 555 0100")))
        }),
    );
    env.sb().add_records_with_fields(
        "Contacts",
        contacts.iter().enumerate().map(|(i, id)| {
            let email = if i == 1 {
                jane.to_string()
            } else {
                format!("c{i}@example.com")
            };
            (id.clone(), person(&email, None))
        }),
    );
    let report = env.dir.path().join("reports");
    let (code, stdout, stderr) = env.output(&[
        "erase",
        "--email",
        jane,
        "--yes",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("3 record(s) of jane@example.com:\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "erased 3 of 3 record(s) of jane@example.com (selection 1); 0 failed; report: {}",
            report.join("erase-1.json").display()
        )),
        "{stdout}"
    );
    for id in [&leads[0], &leads[1], &contacts[1]] {
        assert!(!env.sb().has_record(
            if id == &contacts[1] {
                "Contacts"
            } else {
                "Leads"
            },
            id
        ));
    }
    assert!(
        env.sb().has_record("Leads", &leads[2]) && env.sb().has_record("Contacts", &contacts[0])
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("erase-1.json")).unwrap())
            .unwrap();
    assert_eq!(json["searched"]["who"], jane);
    assert_eq!(json["found"].as_array().unwrap().len(), 3);
    let deleted: Vec<(&str, &str, &str)> = json["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["module"].as_str().unwrap(),
                d["id"].as_str().unwrap(),
                d["verified"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        deleted,
        vec![
            ("Leads", leads[0].as_str(), "verified"),
            ("Leads", leads[1].as_str(), "verified"),
            ("Contacts", contacts[1].as_str(), "verified"),
        ]
    );
    assert_eq!(json["failed"], serde_json::json!([]));
    let text = std::fs::read_to_string(report.join("erase-1.txt")).unwrap();
    assert!(
        text.starts_with("erasure request for jane@example.com"),
        "{text}"
    );
    let (_, json_rows, _) = env.output(&["outcomes", "--selection", "1", "--format", "json"]);
    assert!(
        json_rows
            .lines()
            .all(|l| l.contains("\"queued_how\":\"erase\"")),
        "{json_rows}"
    );

    // Nobody by that address: nothing queued.
    let (code, stdout, _) = env.output(&[
        "erase",
        "--email",
        "nobody@example.com",
        "--yes",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("no record of nobody@example.com in Leads, Contacts: nothing to delete"),
        "{stdout}"
    );
    let selections: i64 = sqlx::query_scalar("SELECT count(*) FROM selections")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(selections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_search_deletes_nothing() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 2);
    // Leads have a Phone; Contacts do not: the Contacts search is refused.
    env.sb().add_records_with_fields(
        "Leads",
        leads
            .iter()
            .map(|id| (id.clone(), person("a@x.io", Some("555")))),
    );
    env.sb().add_records_with_fields(
        "Contacts",
        [(ids(100, 1)[0].clone(), person("b@x.io", None))],
    );
    let (code, _, stderr) = env.output(&["erase", "--phone", "555", "--yes"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("searching Contacts failed") && stderr.contains("nothing was deleted"),
        "{stderr}"
    );
    assert!(leads.iter().all(|id| env.sb().has_record("Leads", id)));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM deletion_requests")
        .fetch_one(&env.sql)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let (code, _, stderr) = env.output(&["erase", "--email", "not an address", "--yes"]);
    assert_eq!(code, Some(2), "{stderr}");
}
