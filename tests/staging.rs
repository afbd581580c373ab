//! A selection's rows are staged until every ID is in: Ctrl-C mid-enqueue
//! leaves nothing claimable and the rerun resumes; a selection stopped while
//! being released is finished by the next worker; `cancel --selection`
//! drops a staged one; an ID zdel already deleted is skipped (`--again`
//! sends it anyway).

mod common;

use std::io::Write;
use std::time::Duration;

use common::{TestEnv, ids, signal, text, wait_until};
use zdel::sandbox::Faults;

const STAGED: i64 = i64::MAX;

fn zdel(env: &TestEnv, args: &[&str]) -> (Option<i32>, String, String) {
    env.output(args)
}

async fn scalar(env: &TestEnv, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&env.sql).await.unwrap()
}

/// Rows a worker could claim now or later: pending and not staged.
async fn claimable(env: &TestEnv) -> i64 {
    scalar(
        env,
        "SELECT count(*) FROM deletion_requests
         WHERE state = 'pending' AND next_attempt_at < 9223372036854775807",
    )
    .await
}

async fn staged(env: &TestEnv) -> i64 {
    scalar(
        env,
        "SELECT count(*) FROM deletion_requests
         WHERE state = 'pending' AND next_attempt_at = 9223372036854775807",
    )
    .await
}

async fn selection(env: &TestEnv, id: i64) -> (String, i64, i64, i64) {
    sqlx::query_as(
        "SELECT state, ids_found, ids_queued, ids_already_deleted FROM selections WHERE id = ?1",
    )
    .bind(id)
    .fetch_one(&env.sql)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_enqueue_leaves_nothing_claimable_and_the_rerun_queues_every_id() {
    const N: u64 = 3_000_000;
    let env = TestEnv::new(Faults::default()).await;
    let file = env.dir.path().join("erasures.txt");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..N {
            writeln!(out, "{}", 3_652_397_000_000_000_000u64 + i).unwrap();
        }
    }
    let path = file.to_str().unwrap();
    let args = ["enqueue", "--module", "Leads", "--file", path];

    let child = env.zdel(&args).spawn().unwrap();
    // Interrupted once some chunks are committed, long before the end.
    wait_until(
        Duration::from_secs(300),
        "the first rows staged",
        || async { scalar(&env, "SELECT count(*) FROM deletion_requests").await > 0 },
    )
    .await;
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().await.unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let in_before = staged(&env).await;
    assert!(in_before > 0 && in_before < N as i64, "{in_before} staged");
    assert!(
        stderr.contains(&format!(
            "interrupted: {in_before} ID(s) of selection 1 are staged and none is claimable"
        )),
        "{stderr}"
    );
    assert_eq!(claimable(&env).await, 0);
    assert_eq!(
        selection(&env, 1).await,
        ("interrupted".to_string(), N as i64, in_before, 0)
    );

    // A worker takes none of them: the drain finds nothing to do.
    let (code, _, stderr) = zdel(&env, &["drain"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(env.sb().stats().calls_by_endpoint.get("delete"), None);
    assert_eq!(staged(&env).await, in_before);
    let (code, stdout, _) = zdel(&env, &["status"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains(&format!(
            "{in_before} pending request(s) of delete Leads are staged, not claimable yet: selection 1 (interrupted: rerun its command to finish it, or zdel cancel --selection 1)"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("waiting out a retry delay"), "{stdout}");

    // The same command again resumes selection 1 and queues the rest.
    let (code, stdout, stderr) = zdel(&env, &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("resuming selection 1"), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "queued {N} of {N} ID(s) for delete Leads; 0 skipped (repeated in the input or already queued); selection 1 (resumed)\n"
        )
    );
    assert_eq!(
        selection(&env, 1).await,
        ("complete".to_string(), N as i64, N as i64, 0)
    );
    assert_eq!(staged(&env).await, 0);
    assert_eq!(claimable(&env).await, N as i64);
    assert_eq!(
        scalar(
            &env,
            "SELECT count(DISTINCT record_id) FROM deletion_requests WHERE selection_id = 1"
        )
        .await,
        N as i64
    );
    assert_eq!(
        scalar(&env, "SELECT count(*) FROM deletion_requests").await,
        N as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_stopped_while_released_is_finished_by_the_next_worker() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 250);
    env.sb().add_records("Leads", &leads);
    let file = env.dir.path().join("leads.txt");
    std::fs::write(&file, leads.join("\n")).unwrap();
    let (code, _, stderr) = zdel(
        &env,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    // As a crash part-way through the release leaves it: every row in, the
    // first 100 released, the other 150 still staged.
    sqlx::query("UPDATE deletion_requests SET next_attempt_at = ?1 WHERE id > 100")
        .bind(STAGED)
        .execute(&env.sql)
        .await
        .unwrap();
    sqlx::query("UPDATE selections SET released_up_to = 101")
        .execute(&env.sql)
        .await
        .unwrap();
    assert_eq!((claimable(&env).await, staged(&env).await), (100, 150));
    let (_, stdout, _) = zdel(&env, &["status"]);
    assert!(
        stdout.contains("150 pending request(s) of delete Leads are staged, not claimable yet: selection 1 (all in, being released)"),
        "{stdout}"
    );

    let (code, _, stderr) = zdel(&env, &["drain"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("released staged rows"), "{stderr}");
    assert_eq!(env.count_in_state("succeeded").await, 250);
    assert_eq!(env.sb().remaining("Leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_drops_a_staged_selection_and_a_rerun_starts_afresh() {
    use zdel::store::{NewSelection, RequestTemplate, SelectionMethod};
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 40);
    let file = env.dir.path().join("leads.txt");
    std::fs::write(&file, leads.join("\n")).unwrap();
    // An enqueue of this file stopped after 30 of its 40 IDs, as the CLI
    // records it.
    let template = RequestTemplate::delete("Leads", true);
    let hash = {
        use sha2::Digest;
        sha2::Sha256::digest(leads.join("\n").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let wanted = NewSelection {
        module: "Leads".into(),
        operation: template.operation,
        method: SelectionMethod::File,
        source: Some(file.display().to_string()),
        source_hash: Some(hash),
        shape: Some(template.shape()),
        wf_trigger: true,
        strategy: template.strategy,
        os_user: "ops".into(),
        host: "h".into(),
        how: "cli".into(),
        config_hash: None,
    };
    let id = env.store.begin_selection(&wanted, 1_000).await.unwrap();
    let mut enqueuer = env.store.begin_enqueue_into(id, true, false).await.unwrap();
    let refs: Vec<&str> = leads[..30].iter().map(String::as_str).collect();
    assert_eq!(enqueuer.add(&template, &refs).await.unwrap(), 30);
    enqueuer.commit().await.unwrap();
    assert_eq!(
        env.store
            .finish_selection(id, false, 40, 0, 2_000)
            .await
            .unwrap(),
        30
    );
    assert_eq!(
        env.store
            .unfinished_selection(&wanted)
            .await
            .unwrap()
            .map(|s| s.id),
        Some(id)
    );

    // Another input holding 5 of the staged IDs: those count as already
    // queued, and the enqueue says which selection holds them.
    let other = env.dir.path().join("other.txt");
    let mut mixed: Vec<String> = leads[..5].to_vec();
    mixed.extend(ids(500, 5));
    std::fs::write(&other, mixed.join("\n")).unwrap();
    let (code, stdout, stderr) = zdel(
        &env,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--file",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("queued 5 of 10 ID(s) for delete Leads; 5 skipped"),
        "{stdout}"
    );
    assert!(
        stderr.contains("note: selection 1 (interrupted) holds 30 staged ID(s) of delete Leads that no worker takes: rerun its command to finish it, or `zdel cancel --selection 1`"),
        "{stderr}"
    );

    let (code, stdout, stderr) = zdel(&env, &["cancel", "--selection", "1", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("30"), "{stdout}");
    assert_eq!(selection(&env, 1).await.0, "cancelled");
    assert_eq!(staged(&env).await, 0);
    assert_eq!(env.count_in_state("cancelled").await, 30);

    // Cancelled is not resumed: the same file is a new selection (3) of all 40.
    let (code, stdout, stderr) = zdel(
        &env,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("resuming"), "{stderr}");
    assert!(
        stdout.starts_with("queued 40 of 40 ID(s) for delete Leads;"),
        "{stdout}"
    );
    assert!(stdout.ends_with("selection 3\n"), "{stdout}");
    // 40 of this selection, 5 of the other input's.
    assert_eq!(claimable(&env).await, 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_zdel_already_deleted_is_skipped_unless_again() {
    let env = TestEnv::new(Faults::default()).await;
    let leads = ids(0, 7);
    env.sb().add_records("Leads", &leads);
    // IDs a call, of the calls that carried IDs (not the module check's).
    let delete_calls = |env: &TestEnv| -> Vec<usize> {
        env.sb()
            .stats()
            .ids_per_call
            .into_iter()
            .filter(|n| *n > 0)
            .collect()
    };
    let (code, _, stderr) = zdel(
        &env,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--ids",
            &leads[..5].join(","),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = zdel(&env, &["drain"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(delete_calls(&env), vec![5]);

    // The five again, with two new ones: only the new ones are queued.
    let today = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let (code, stdout, stderr) = zdel(
        &env,
        &["enqueue", "--module", "Leads", "--ids", &leads.join(",")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "queued 2 of 7 ID(s) for delete Leads; 0 skipped (repeated in the input or already queued), 5 already deleted by zdel on {} (--again sends them again); selection 2\n",
            &today[..10]
        )
    );
    assert_eq!(selection(&env, 2).await, ("complete".to_string(), 7, 2, 5));
    let (code, _, stderr) = zdel(&env, &["drain"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(delete_calls(&env), vec![5, 2]);
    assert_eq!(env.count_in_state("succeeded").await, 7);

    // --again sends them anyway (Zoho answers that they are gone).
    let (code, stdout, stderr) = zdel(
        &env,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--again",
            "--ids",
            &leads[..3].join(","),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("queued 3 of 3 ID(s)"), "{stdout}");
    let (_, _, _) = zdel(&env, &["drain"]);
    assert_eq!(delete_calls(&env), vec![5, 2, 3]);
}
