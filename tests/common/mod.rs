//! The one test harness: a sandbox Zoho on 127.0.0.1, a real SQLite file in
//! a temp dir, a config pointing at both (every override checked against
//! the known keys), the `zdel` binary with that environment, signals, rows
//! by state, and waiting on conditions with a deadline (never sleeping as
//! synchronisation).
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use zdel::config::Config;
use zdel::sandbox::{self, Faults, Sandbox, SandboxHandle};
use zdel::store::{
    ClaimRequest, ClaimedBatch, LaneKey, RequestTemplate, RowChange, RowOutcome, Store,
};
use zdel::worker::{self, RunMode, RunSummary};
use zdel::zoho::ZohoClient;

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub db_path: PathBuf,
    pub store: Store,
    /// The same database opened as another process would (an operator's
    /// sqlite3, a script's INSERT): for reading and writing raw SQL.
    pub sql: sqlx::SqlitePool,
    pub sandbox: SandboxHandle,
    /// Extra `ZDEL__*` settings for this test, applied over [`base_env`].
    pub env: Vec<(String, String)>,
}

/// Settings every test uses: the sandbox's credentials, generous limits,
/// fast retries, a short poll interval.
pub fn base_env(sandbox_url: &str, db_path: &std::path::Path) -> Vec<(String, String)> {
    let mut env = sandbox::config_env(sandbox_url);
    env.extend(
        [
            ("ZDEL__DATABASE__URL", db_path.display().to_string()),
            ("ZDEL__ZOHO__REQUEST_TIMEOUT_MS", "5000".to_string()),
            ("ZDEL__LIMITS__REQUESTS_PER_SECOND", "1000".to_string()),
            ("ZDEL__LIMITS__BURST", "100".to_string()),
            ("ZDEL__LIMITS__MAX_CONCURRENCY", "8".to_string()),
            ("ZDEL__RETRY__MAX_ATTEMPTS", "30".to_string()),
            ("ZDEL__RETRY__BASE_DELAY_MS", "1".to_string()),
            ("ZDEL__RETRY__MAX_DELAY_MS", "20".to_string()),
            ("ZDEL__WORKER__POLL_INTERVAL_MS", "50".to_string()),
            ("ZDEL__WORKER__LEASE_MS", "10000".to_string()),
            ("ZDEL__WORKER__SHUTDOWN_GRACE_MS", "5000".to_string()),
            ("ZDEL__WORKER__AUTH_PROBE_INTERVAL_MS", "100".to_string()),
            // Tests run in parallel: every `serve` gets its own free port.
            ("ZDEL__HTTP__LISTEN", "127.0.0.1:0".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<Vec<_>>(),
    );
    env
}

/// Open the store under test in `dir`: the one place a test suite chooses
/// its backend (today SQLite, the only one), so the queue-semantics tests
/// (tests/store_contract.rs) run unchanged against another.
pub async fn open_store(dir: &std::path::Path) -> (Store, PathBuf) {
    let db_path = dir.join("zdel.db");
    let store = Store::open(db_path.to_str().unwrap(), Duration::from_secs(5))
        .await
        .unwrap();
    (store, db_path)
}

/// (record_id, state, outcome_code, attempts) of every row of `module`, by
/// id, read through the store's API.
pub async fn rows_of(store: &Store, module: &str) -> Vec<(String, String, Option<String>, i64)> {
    use futures_util::TryStreamExt;
    let filter = zdel::store::OutcomeFilter {
        module: Some(module.to_string()),
        ..Default::default()
    };
    store
        .outcomes(&filter)
        .unwrap()
        .map_ok(|r| {
            (
                r.record_id,
                r.state.as_str().to_string(),
                r.code,
                r.attempts,
            )
        })
        .try_collect()
        .await
        .unwrap()
}

/// How many rows are in `state`, read through the store's API.
pub async fn count_in_state(store: &Store, state: &str) -> i64 {
    let t = store.state_totals().await.unwrap();
    match state {
        "pending" => t.pending,
        "running" => t.running,
        "succeeded" => t.succeeded,
        "failed" => t.failed,
        "cancelled" => t.cancelled,
        other => panic!("no request state {other:?}"),
    }
}

impl TestEnv {
    pub async fn new(faults: Faults) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let (store, db_path) = open_store(dir.path()).await;
        let sql = raw_sql(&db_path).await;
        let sandbox = Sandbox::start("127.0.0.1:0", faults).await.unwrap();
        TestEnv {
            dir,
            db_path,
            store,
            sql,
            sandbox,
            env: Vec::new(),
        }
    }

    pub fn sb(&self) -> &Sandbox {
        &self.sandbox.sandbox
    }

    /// Override one setting, e.g. `set("LIMITS__MAX_CONCURRENCY", "3")`.
    pub fn set(&mut self, key: &str, value: &str) {
        self.env.push((format!("ZDEL__{key}"), value.to_string()));
    }

    /// All `ZDEL__*` variables for this test, for in-process config or a
    /// child process. Panics if an override names a key zdel does not know
    /// (a typo would otherwise be ignored and the test prove nothing).
    pub fn all_env(&self) -> Vec<(String, String)> {
        let mut env = base_env(&self.sandbox.url(), &self.db_path);
        env.extend(self.env.iter().cloned());
        assert_known_keys(&env);
        env
    }

    /// The `zdel` binary with `args` and this test's environment (and none
    /// of the caller's: no ZDEL_CONFIG, RUST_LOG or systemd variables);
    /// stdin and stdout null, stderr piped, killed if dropped.
    pub fn zdel(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.zdel_blocking(args));
        cmd.kill_on_drop(true);
        cmd
    }

    /// [`TestEnv::zdel`] as a std command, for `output()` without a runtime.
    pub fn zdel_blocking(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zdel"));
        cmd.args(args);
        for var in [
            "ZDEL_CONFIG",
            "RUST_LOG",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(self.all_env())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    }

    /// Run the `zdel` binary with `args` to its end: exit code, stdout, stderr.
    pub fn output(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self
            .zdel_blocking(args)
            .stdout(std::process::Stdio::piped())
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }

    /// The record IDs of every row in `state`, by id.
    pub async fn ids_in_state(&self, state: zdel::store::RequestState) -> Vec<String> {
        sqlx::query_scalar("SELECT record_id FROM deletion_requests WHERE state = ?1 ORDER BY id")
            .bind(state.as_str())
            .fetch_all(&self.sql)
            .await
            .unwrap()
    }

    pub fn config(&self) -> Config {
        Config::load_with_env(None, self.all_env()).unwrap()
    }

    /// Make `ids` exist in the sandbox and queue them.
    pub async fn seed_and_enqueue(&self, module: &str, ids: &[String], wf_trigger: bool) {
        self.sb().add_records(module, ids);
        self.enqueue(module, ids, wf_trigger).await;
    }

    pub async fn enqueue(&self, module: &str, ids: &[String], wf_trigger: bool) {
        enqueue(&self.store, module, ids, wf_trigger).await;
    }

    /// Queue `ids` shaped by `template` (any operation).
    pub async fn enqueue_template(&self, template: &RequestTemplate, ids: &[String]) -> u64 {
        let mut enqueuer = self.store.begin_enqueue().await.unwrap();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let n = enqueuer.add(template, &refs).await.unwrap();
        enqueuer.commit().await.unwrap();
        n
    }

    /// Calls the sandbox saw at `endpoint`.
    pub fn calls_to(&self, endpoint: &str) -> u64 {
        self.sb()
            .stats()
            .calls_by_endpoint
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    pub fn client(&self) -> Arc<ZohoClient> {
        Arc::new(zdel::cli::zoho_client(&self.config()).unwrap())
    }

    /// Run `drain` in-process until it stops by itself (at most `limit`).
    pub async fn drain(&self, limit: Duration) -> RunSummary {
        let config = self.config();
        let run = worker::run(
            self.store.clone(),
            self.client(),
            zdel::cli::worker_settings(&config),
            RunMode::Drain,
            CancellationToken::new(),
        );
        tokio::time::timeout(limit, run)
            .await
            .expect("drain did not finish in time")
            .unwrap()
    }

    /// Start `serve` in-process; cancel the token to stop it.
    pub fn serve(&self) -> (CancellationToken, tokio::task::JoinHandle<RunSummary>) {
        let config = self.config();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker::run(
            self.store.clone(),
            self.client(),
            zdel::cli::worker_settings(&config),
            RunMode::Serve,
            shutdown.clone(),
        ));
        let handle = tokio::spawn(async move { handle.await.unwrap().unwrap() });
        (shutdown, handle)
    }

    /// (record_id, state, outcome_code, attempts) of every row of `module`, by id.
    pub async fn rows(&self, module: &str) -> Vec<(String, String, Option<String>, i64)> {
        rows_of(&self.store, module).await
    }

    /// How many rows are in `state` (`pending`, `running`, …).
    pub async fn count_in_state(&self, state: &str) -> i64 {
        count_in_state(&self.store, state).await
    }
}

impl TestEnv {
    /// An access token from the sandbox, fetched as any client would, for
    /// tests that call its API by hand.
    pub async fn access_token(&self) -> String {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/oauth/v2/token", self.sandbox.url()))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", zdel::sandbox::CLIENT_ID),
                ("client_secret", zdel::sandbox::CLIENT_SECRET),
                ("refresh_token", zdel::sandbox::REFRESH_TOKEN),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_string()
    }
}

/// The custom view the mass-delete tests queue jobs for.
pub const CVID: &str = "3652397000000538003";

impl TestEnv {
    /// Poll mass-delete jobs every 20–50 ms instead of 5–60 s.
    pub fn fast_jobs(&mut self) {
        self.set("MASS_DELETE__POLL_INTERVAL_MS", "20");
        self.set("MASS_DELETE__MAX_POLL_INTERVAL_MS", "50");
    }

    /// Queue a mass-delete job of [`CVID`] in `module`, no territory.
    pub async fn queue_view_job(&self, module: &str) -> i64 {
        self.store
            .insert_job(&zdel::store::NewJob {
                module: module.into(),
                cvid: CVID.into(),
                territory_id: None,
                include_child: false,
            })
            .await
            .unwrap()
    }
}

/// `n` distinct 19-digit record IDs starting at `start`.
pub fn ids(start: u64, n: u64) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}", 3_652_397_000_000_000_000u64 + start + i))
        .collect()
}

/// Poll `check` until it returns true, failing the test after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw SQLite pool on the database file at `path`, as another process
/// would open it.
pub async fn raw_sql(path: &std::path::Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(5));
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap()
}

/// Claim one batch of up to 100 rows for `owner`, leaving out `skip_modules`.
pub async fn claim_one(
    store: &Store,
    now_ms: i64,
    owner: &str,
    lease_ms: i64,
    skip_modules: &[String],
) -> Option<ClaimedBatch> {
    let lanes = store.pending_lanes().await.unwrap();
    let mut batches = store
        .claim_batches(&ClaimRequest {
            now_ms,
            lanes: &lanes,
            after: None,
            skip_modules,
            skip_lanes: &[],
            owner,
            dry_run: false,
            lease_ms,
            limit_for: &|_| 100,
            max_batches: 1,
            max_ids: None,
            fence: None,
        })
        .await
        .unwrap();
    batches.pop()
}

/// Every `ZDEL__SECTION__KEY` in `env` names a key of config/default.toml.
pub fn assert_known_keys(env: &[(String, String)]) {
    let defaults = config::Config::builder()
        .add_source(config::File::from_str(
            zdel::config::DEFAULT_TOML,
            config::FileFormat::Toml,
        ))
        .build()
        .unwrap();
    for (var, _) in env {
        let Some(path) = var.strip_prefix("ZDEL__") else {
            continue;
        };
        let key = path.to_ascii_lowercase().replace("__", ".");
        assert!(
            defaults.get::<config::Value>(&key).is_ok(),
            "{var}: no such configuration key `{key}` (see config/default.toml)"
        );
    }
}

/// Send `sig` to a child still running.
pub fn signal(child: &tokio::process::Child, sig: libc::c_int) {
    let pid = child.id().expect("child still running") as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// A process's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A claim at 1,000 ms by `test` with a 60 s lease: `max_batches` batches of
/// `limit_for` rows of `lanes`, at most `max_ids` IDs in all.
pub fn request<'a>(
    lanes: &'a [LaneKey],
    limit_for: &'a (dyn Fn(&LaneKey) -> u32 + Sync),
    max_batches: usize,
    max_ids: Option<u64>,
) -> ClaimRequest<'a> {
    ClaimRequest {
        now_ms: 1_000,
        lanes,
        after: None,
        skip_modules: &[],
        skip_lanes: &[],
        owner: "test",
        dry_run: false,
        lease_ms: 60_000,
        limit_for,
        max_batches,
        max_ids,
        fence: None,
    }
}

/// Every row of `ids` succeeded.
pub fn succeeded(ids: impl Iterator<Item = i64>) -> Vec<RowOutcome> {
    ids.map(|id| RowOutcome {
        id,
        change: RowChange::Succeeded {
            code: "SUCCESS".into(),
            message: "record deleted".into(),
            http_status: Some(200),
        },
    })
    .collect()
}

/// Every row of `ids` failed with `code` (one attempt, not ambiguous).
pub fn failed(ids: impl Iterator<Item = i64>, code: &str) -> Vec<RowOutcome> {
    ids.map(|id| RowOutcome {
        id,
        change: RowChange::Failed {
            code: code.into(),
            message: "m".into(),
            http_status: Some(400),
            count_attempt: true,
            ambiguous: false,
        },
    })
    .collect()
}

/// Queue `ids` of `module` for deletion, in one transaction.
pub async fn enqueue(store: &Store, module: &str, ids: &[String], wf_trigger: bool) {
    let mut enqueuer = store.begin_enqueue().await.unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    enqueuer
        .add(&RequestTemplate::delete(module, wf_trigger), &refs)
        .await
        .unwrap();
    enqueuer.commit().await.unwrap();
}
