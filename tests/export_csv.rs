//! `zdel enqueue --csv`: a Zoho export — header row, the ID column found
//! by name, `zcrm_` prefixes, quoting and embedded newlines, BOM and CRLF,
//! stdin — and the refusals: no ID column, two that disagree, a bad value
//! (named by line and column), all in one pass and nothing queued.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{TestEnv, text};
use zdel::sandbox::Faults;

/// `zdel enqueue --module Leads --csv <file holding bytes> [extra]`: status and stderr.
fn enqueue_csv(env: &TestEnv, bytes: &[u8], extra: &[&str]) -> (Option<i32>, String, String) {
    let path = env.dir.path().join("export.csv");
    std::fs::write(&path, bytes).unwrap();
    let mut args = vec![
        "enqueue",
        "--module",
        "Leads",
        "--csv",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = env
        .zdel_blocking(&args)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

async fn queued(env: &TestEnv) -> Vec<String> {
    env.rows("Leads").await.into_iter().map(|r| r.0).collect()
}

const ID1: &str = "3652397000000000001";
const ID2: &str = "3652397000000000002";
const ID3: &str = "3652397000000000003";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zoho_export_is_read_by_its_record_id_column() {
    let env = TestEnv::new(Faults::default()).await;
    // BOM, CRLF, quoted fields with commas, quotes and a newline inside,
    // a lookup's id column, the zcrm_ prefix, a short row, a blank line.
    let csv = format!(
        "\u{feff}Record Id,Last Name,Account Name.id,Description\r\n\
         zcrm_{ID1},\"Smith, Jr.\",zcrm_3652397000000099999,\"said \"\"hi\"\"\"\r\n\
         {ID2},Jones,,\"two\r\nlines\"\r\n\
         \r\n\
         zcrm_{ID3},Brown\r\n"
    );
    let (code, stdout, stderr) = enqueue_csv(&env, csv.as_bytes(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("queued 3 of 3 ID(s)"), "{stdout}");
    assert_eq!(queued(&env).await, [ID1, ID2, ID3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_column_may_be_id_or_module_id_or_named_and_stdin_works() {
    let env = TestEnv::new(Faults::default()).await;
    let (code, _, stderr) = enqueue_csv(
        &env,
        format!("Email,Lead Id\na@b.c,{ID1}\n").as_bytes(),
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    // Two columns that agree are fine.
    let both = format!("id,Record Id\n{ID2},zcrm_{ID2}\n");
    let (code, _, stderr) = enqueue_csv(&env, both.as_bytes(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let named = format!("Name,Zoho Key\nx,{ID3}\n");
    let (code, _, stderr) = enqueue_csv(&env, named.as_bytes(), &["--id-column", "zoho key"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(queued(&env).await, [ID1, ID2, ID3]);

    let mut child = env
        .zdel_blocking(&["enqueue", "--module", "Leads", "--csv", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Record Id\nzcrm_3652397000000000004\n3652397000000000005\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(queued(&env).await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_one_clear_id_column_is_refused_naming_the_columns() {
    let env = TestEnv::new(Faults::default()).await;
    let (code, _, stderr) = enqueue_csv(&env, b"Name,Account Name.id\nx,1\n", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no record ID column") && stderr.contains("\"Name\", \"Account Name.id\""),
        "{stderr}"
    );
    let disagree = format!("Record Id,Lead Id\n{ID1},{ID1}\n{ID2},{ID3}\n");
    let (code, _, stderr) = enqueue_csv(&env, disagree.as_bytes(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("line 3: columns \"Record Id\" and \"Lead Id\" both look like the record ID but disagree"),
        "{stderr}"
    );
    let (code, _, stderr) = enqueue_csv(&env, b"Name\nx\n", &["--id-column", "Key"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no column \"Key\""), "{stderr}");
    assert!(queued(&env).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_all_named_by_line_and_column_and_nothing_is_queued() {
    let env = TestEnv::new(Faults::default()).await;
    let csv = format!(
        "Last Name,Record Id\n\
         a,{ID1}\n\
         \"b\nwith a newline\",zcrm_12x\n\
         c,\n\
         d,{ID2}\n"
    );
    let (code, _, stderr) = enqueue_csv(&env, csv.as_bytes(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("2 bad line(s), nothing was queued"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 3: column \"Record Id\": \"zcrm_12x\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5: column \"Record Id\": \"\""),
        "{stderr}"
    );
    assert!(queued(&env).await.is_empty());
}
