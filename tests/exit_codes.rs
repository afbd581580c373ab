//! Exit statuses a cron job can use (the table in `zdel --help` and the
//! README), and read-only commands that never create a database.

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use common::{TestEnv, ids, text};
use zdel::sandbox::Faults;

fn run(env: &TestEnv, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = env.zdel_blocking(args);
    cmd.stdout(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_in_an_empty_directory_create_no_database() {
    let env = TestEnv::new(Faults::default()).await;
    let empty = tempfile::tempdir().unwrap();
    let db = empty.path().join("zdel.db");
    let url = db.to_str().unwrap();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["outcomes"],
        &["selections"],
        &["jobs"],
        &["check"],
        &["retry", "--yes"],
        &["cancel", "--module", "Leads", "--yes"],
        &["resume", "--all"],
    ] {
        let out = run(&env, args, &[("ZDEL__DATABASE__URL", url)]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "no database at {url} (set database.url or run zdel migrate)"
            )),
            "{args:?}: {stderr}"
        );
        assert!(!db.exists(), "{args:?} created {url}");
        assert_eq!(
            std::fs::read_dir(empty.path()).unwrap().count(),
            0,
            "{args:?}"
        );
    }
    // The commands that do create one.
    let out = run(&env, &["migrate"], &[("ZDEL__DATABASE__URL", url)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(db.exists());
    let out = run(&env, &["status"], &[("ZDEL__DATABASE__URL", url)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_exits_with_a_status_per_outcome() {
    // 0: everything deleted.
    let env = TestEnv::new(Faults::default()).await;
    env.seed_and_enqueue("Leads", &ids(0, 150), true).await;
    let out = run(&env, &["drain"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // 6: rows failed during this run; a drain after it with nothing new: 0.
    env.enqueue("Leads", &ids(5_000, 3), true).await;
    let out = run(&env, &["drain"], &[]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("3 row(s) failed during this run"));
    let out = run(&env, &["drain"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // 3: work left in a paused lane.
    env.seed_and_enqueue("Deals", &ids(10_000, 50), true).await;
    env.sb().deny_module("Deals", true);
    let out = run(&env, &["drain"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    env.sb().deny_module("Deals", false);
    env.store.resume_all().await.unwrap();

    // 4: the credit limit reached with work left.
    env.seed_and_enqueue("Accounts", &ids(20_000, 500), true)
        .await;
    let out = run(
        &env,
        &["drain"],
        &[("ZDEL__LIMITS__MAX_CREDITS_PER_DAY", "1")],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let out = run(&env, &["drain"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // 5: a mass-delete job whose status Zoho no longer knows.
    env.sb().add_view("Leads", common::CVID, ids(30_000, 10));
    env.sb()
        .set_job_poll_answer(Some(zdel::sandbox::JobPollAnswer::NotFound));
    env.queue_view_job("Leads").await;
    let out = tokio::time::timeout(Duration::from_secs(60), async {
        run(
            &env,
            &["drain"],
            &[
                ("ZDEL__MASS_DELETE__POLL_INTERVAL_MS", "20"),
                ("ZDEL__MASS_DELETE__MAX_UNKNOWN_POLLS", "2"),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
}

#[test]
fn help_prints_the_exit_status_table() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zdel"))
        .arg("--help")
        .output()
        .unwrap();
    let help = text(&out.stdout);
    assert!(out.status.success());
    for line in [
        "Exit status:",
        "  0  all done",
        "  1  zdel could not do its job",
        "  2  bad input or configuration",
        "  3  drain: work left in paused lanes",
        "  4  drain: the daily deletion cap or the credit limit",
        "  5  drain: mass-delete jobs are uncertain",
        "  6  drain: everything ran, but rows failed during this run",
        "  7  serve, drain: another zdel works on this database",
        "130  enqueue, select: interrupted before every ID was in",
    ] {
        assert!(help.contains(line), "missing {line:?} in:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_commands_end_quietly_when_the_pipe_closes() {
    let env = TestEnv::new(Faults::default()).await;
    env.enqueue("Leads", &ids(0, 20_000), true).await;
    for args in [&["status"][..], &["jobs"], &["outcomes"]] {
        let mut cmd = env.zdel_blocking(args);
        cmd.stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // `| head -c 1`: read a byte (or nothing), then close the pipe.
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        let _ = std::io::Read::read(&mut out, &mut first);
        drop(out);
        let done = child.wait_with_output().unwrap();
        let stderr = text(&done.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_ne!(done.status.code(), Some(101), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_job_is_named_and_json_logs_carry_numbers_as_numbers() {
    let env = TestEnv::new(Faults::default()).await;
    for args in [
        &["jobs", "--cancel", "99"][..],
        &["jobs", "--reschedule", "99"],
    ] {
        let out = run(&env, args, &[]);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            text(&out.stderr).trim(),
            "zdel: there is no mass-delete job 99: `zdel jobs` lists them"
        );
    }
    env.sb().add_view("Leads", common::CVID, ids(0, 250));
    env.queue_view_job("Leads").await;
    let out = run(
        &env,
        &["drain"],
        &[
            ("ZDEL__LOG__FORMAT", "json"),
            ("ZDEL__MASS_DELETE__POLL_INTERVAL_MS", "20"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let finished: serde_json::Value = text(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "mass delete finished")
        .expect("a 'mass delete finished' line");
    assert_eq!(finished["fields"]["deleted"], 250, "{finished}");
    assert_eq!(finished["fields"]["total"], 250, "{finished}");
    assert_eq!(finished["fields"]["failed"], 0, "{finished}");
}
