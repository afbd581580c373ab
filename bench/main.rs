//! zdel's benchmarks. `bash bench/run.sh` runs every scenario against the
//! sandbox on 127.0.0.1 and rewrites `bench/RESULTS.md`. `--quick` runs
//! small sizes (a smoke test, figures not to be quoted).
//!
//! These machines are shared and noisy: throughput figures are medians of
//! several runs, and comparisons are ratios measured in the same run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;
use zdel::config::Config;
use zdel::sandbox::{self, Faults, Sandbox, SandboxHandle};
use zdel::store::{RequestTemplate, Store, Strategy};
use zdel::worker::{self, RunMode};

// The same allocator as the `zdel` binary (src/main.rs), so in-process
// figures are the daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Result<T> = anyhow::Result<T>;

/// One line of the results table.
struct Figure {
    scenario: String,
    figure: String,
    target: String,
    ok: Option<bool>,
}

struct Bench {
    quick: bool,
    figures: Vec<Figure>,
    notes: Vec<String>,
}

impl Bench {
    fn record(&mut self, scenario: &str, figure: String, target: &str, ok: Option<bool>) {
        println!("{scenario}: {figure} (target {target})");
        self.figures.push(Figure {
            scenario: scenario.into(),
            figure,
            target: target.into(),
            ok,
        });
    }
}

/// A fresh database and sandbox.
struct Env {
    _dir: tempfile::TempDir,
    db: PathBuf,
    store: Store,
    sandbox: SandboxHandle,
}

impl Env {
    async fn new(faults: Faults) -> Result<Env> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("bench.db");
        let store = Store::open(db.to_str().unwrap_or_default(), Duration::from_secs(5)).await?;
        let sandbox = Sandbox::start("127.0.0.1:0", faults).await?;
        Ok(Env {
            _dir: dir,
            db,
            store,
            sandbox,
        })
    }

    fn env(&self, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = sandbox::config_env(&self.sandbox.url());
        env.extend(
            [
                ("ZDEL__DATABASE__URL", self.db.display().to_string()),
                ("ZDEL__LIMITS__REQUESTS_PER_SECOND", "1000000".into()),
                ("ZDEL__LIMITS__BURST", "1000000".into()),
                ("ZDEL__LIMITS__MAX_CONCURRENCY", "8".into()),
                ("ZDEL__RETRY__BASE_DELAY_MS", "50".into()),
                ("ZDEL__RETRY__MAX_DELAY_MS", "2000".into()),
                ("ZDEL__RETRY__MAX_ATTEMPTS", "20".into()),
                ("ZDEL__WORKER__POLL_INTERVAL_MS", "100".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Vec<_>>(),
        );
        for (k, v) in overrides {
            env.push((format!("ZDEL__{k}"), v.to_string()));
        }
        env
    }

    fn config(&self, overrides: &[(&str, &str)]) -> Result<Config> {
        Ok(Config::load_with_env(None, self.env(overrides))?)
    }

    async fn enqueue(&self, module: &str, start: u64, n: u64, strategy: Strategy) -> Result<()> {
        let template = RequestTemplate {
            strategy,
            ..RequestTemplate::delete(module, true)
        };
        let mut done = 0;
        while done < n {
            let chunk = (n - done).min(50_000);
            let ids: Vec<String> = (0..chunk).map(|i| id(start + done + i)).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut enqueuer = self.store.begin_enqueue().await?;
            enqueuer.add(&template, &refs).await?;
            enqueuer.commit().await?;
            done += chunk;
        }
        Ok(())
    }

    /// Drain in-process; the elapsed wall time.
    async fn drain(&self, overrides: &[(&str, &str)]) -> Result<Duration> {
        let config = self.config(overrides)?;
        let client = Arc::new(zdel::cli::zoho_client(&config)?);
        let started = Instant::now();
        worker::run(
            self.store.clone(),
            client,
            zdel::cli::worker_settings(&config),
            RunMode::Drain,
            CancellationToken::new(),
        )
        .await?;
        Ok(started.elapsed())
    }
}

fn id(n: u64) -> String {
    format!("{}", 3_652_397_000_000_000_000u64 + n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Peak resident set of a process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Run a child to completion, sampling its peak RSS; (wall time, peak kB, output).
async fn run_measured(
    mut cmd: tokio::process::Command,
) -> Result<(Duration, u64, std::process::Output)> {
    let started = Instant::now();
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id().unwrap_or(0);
    let waiting = tokio::spawn(child.wait_with_output());
    let mut peak = 0;
    while !waiting.is_finished() {
        peak = peak.max(peak_rss_kb(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let output = waiting.await??;
    Ok((started.elapsed(), peak, output))
}

fn zdel_command(env: &[(String, String)], args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zdel"));
    cmd.args(args)
        .env_remove("ZDEL_CONFIG")
        .env_remove("RUST_LOG")
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

fn write_ids(path: &Path, n: u64) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(out, "{}", id(i))?;
    }
    out.flush()?;
    Ok(())
}

const MODULES: [&str; 3] = ["Leads", "Contacts", "Deals"];

/// Scenario 2: calls made ÷ the minimum possible.
async fn batch_efficiency(b: &mut Bench) -> Result<()> {
    let sizes: &[u64] = if b.quick {
        &[10_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    for &n in sizes {
        for (strategy, per_call, name) in [
            (Strategy::Delete, 100, "delete"),
            (Strategy::MassDelete, 500, "mass_delete"),
        ] {
            let env = Env::new(Faults {
                every_id_exists: true,
                ..Faults::default()
            })
            .await?;
            let mut minimum = 0;
            for (m, module) in MODULES.iter().enumerate() {
                let share = n / 3 + u64::from((m as u64) < n % 3);
                env.enqueue(module, m as u64 * 10_000_000, share, strategy)
                    .await?;
                minimum += share.div_ceil(per_call);
            }
            let elapsed = env.drain(&[]).await?;
            let calls = env.sandbox.sandbox.stats().calls;
            let ratio = calls as f64 / minimum as f64;
            b.record(
                &format!("batch efficiency, {n} IDs / 3 modules, {name}"),
                format!(
                    "{calls} calls / {minimum} minimum = **{ratio:.2}** ({:.0} IDs/s)",
                    n as f64 / elapsed.as_secs_f64()
                ),
                "1.00",
                Some(calls == minimum),
            );
        }
    }
    Ok(())
}

/// Scenario 3: the rate limit and the concurrency cap are saturated, never exceeded.
async fn limit_saturation(b: &mut Bench) -> Result<()> {
    let seconds = if b.quick { 4 } else { 32 };
    // 20 calls/s, 100 ms latency.
    let env = Env::new(Faults {
        every_id_exists: true,
        latency: Duration::from_millis(100),
        ..Faults::default()
    })
    .await?;
    env.enqueue("Leads", 0, 20 * 100 * seconds, Strategy::Auto)
        .await?;
    env.drain(&[
        ("LIMITS__REQUESTS_PER_SECOND", "20"),
        ("LIMITS__BURST", "5"),
        ("LIMITS__MAX_CONCURRENCY", "10"),
    ])
    .await?;
    let stats = env.sandbox.sandbox.stats();
    let ratio = stats.mean_calls_per_second() / 20.0;
    b.record(
        "rate limit 20/s, burst 5, 100 ms latency",
        format!(
            "{:.2} calls/s over {:.0} s = **{ratio:.3}** of 20/s",
            stats.mean_calls_per_second(),
            stats.span_seconds()
        ),
        "≥ 0.97",
        Some(ratio >= 0.97),
    );
    let peak = stats.peak_calls_per_second();
    b.record(
        "rate limit: peak calls in any 1 s window",
        format!("**{peak}**"),
        "≤ 25 (20 + burst)",
        Some(peak <= 25),
    );

    // 10 in flight, 500 ms latency: 20 calls/s at most.
    let env = Env::new(Faults {
        every_id_exists: true,
        latency: Duration::from_millis(500),
        ..Faults::default()
    })
    .await?;
    env.enqueue("Leads", 0, 20 * 100 * seconds, Strategy::Auto)
        .await?;
    env.drain(&[("LIMITS__MAX_CONCURRENCY", "10")]).await?;
    let stats = env.sandbox.sandbox.stats();
    let ratio = stats.mean_calls_per_second() / 20.0;
    b.record(
        "concurrency cap 10, 500 ms latency",
        format!(
            "{:.2} calls/s over {:.0} s = **{ratio:.3}** of 10 / 0.5 s",
            stats.mean_calls_per_second(),
            stats.span_seconds()
        ),
        "≥ 0.95",
        Some(ratio >= 0.95),
    );
    b.record(
        "concurrency cap: peak calls in flight",
        format!("**{}**", stats.peak_concurrency),
        "≤ 10",
        Some(stats.peak_concurrency <= 10),
    );
    Ok(())
}

/// The other writer of the contention runs: `rows` single-row INSERTs in
/// 50-row transactions on a connection of its own with a busy timeout, as
/// an operator's script would. Returns the errors it saw.
fn spawn_writer(db: std::path::PathBuf, rows: u64) -> tokio::task::JoinHandle<Result<u64>> {
    tokio::spawn(async move {
        let mut conn = SqliteConnectOptions::new()
            .filename(&db)
            .busy_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        let mut errors = 0u64;
        for start in (0..rows).step_by(50) {
            let mut tx = conn.begin().await?;
            for i in start..(start + 50).min(rows) {
                if sqlx::query(
                    "INSERT INTO deletion_requests (module, record_id) VALUES ('Contacts', ?1)",
                )
                .bind(id(50_000_000 + i))
                .execute(&mut *tx)
                .await
                .is_err()
                {
                    errors += 1;
                }
            }
            if tx.commit().await.is_err() {
                errors += 1;
            }
        }
        anyhow::Ok(errors)
    })
}

/// Drain `n` pending IDs with no limits and zero latency: IDs/s end to end
/// and CPU µs per ID.
async fn raw_run(n: u64, strategy: Strategy) -> Result<(f64, f64)> {
    let env = Env::new(Faults {
        every_id_exists: true,
        ..Faults::default()
    })
    .await?;
    env.enqueue("Leads", 0, n, strategy).await?;
    let cpu = cpu_seconds();
    let started = Instant::now();
    env.drain(&[("LIMITS__MAX_CONCURRENCY", "25")]).await?;
    let secs = started.elapsed().as_secs_f64();
    Ok((n as f64 / secs, (cpu_seconds() - cpu) / n as f64 * 1e6))
}

/// zdel serving `n` pending IDs while [`spawn_writer`] inserts `writer` rows:
/// zdel's IDs/s while the writer is active (the backlog is sized so zdel
/// never runs dry before the writer is done), and the writer's seconds.
async fn contended_run(n: u64, writer: u64) -> Result<(f64, f64)> {
    let env = Env::new(Faults {
        every_id_exists: true,
        ..Faults::default()
    })
    .await?;
    env.enqueue("Leads", 0, n, Strategy::Auto).await?;
    let config = env.config(&[("LIMITS__MAX_CONCURRENCY", "25")])?;
    let client = Arc::new(zdel::cli::zoho_client(&config)?);
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let w = spawn_writer(env.db.clone(), writer);
    let run = tokio::spawn(worker::run(
        env.store.clone(),
        client,
        zdel::cli::worker_settings(&config),
        RunMode::Serve,
        shutdown.clone(),
    ));
    let errors = w.await??;
    let writer_secs = started.elapsed().as_secs_f64();
    let totals = env.store.state_totals().await?;
    anyhow::ensure!(errors == 0, "the concurrent writer saw {errors} errors");
    anyhow::ensure!(
        totals.pending > 0,
        "zdel ran out of work before the writer finished: enlarge the backlog"
    );
    let rate = totals.finished() as f64 / writer_secs;
    shutdown.cancel();
    run.await??;
    Ok((rate, writer_secs))
}

/// The writer of [`contended_run`] alone, with no zdel running: seconds.
async fn writer_alone(writer: u64) -> Result<f64> {
    let env = Env::new(Faults::default()).await?;
    let started = Instant::now();
    let errors = spawn_writer(env.db.clone(), writer).await??;
    anyhow::ensure!(errors == 0, "the writer saw {errors} errors");
    Ok(started.elapsed().as_secs_f64())
}

/// Scenario 4 (and issue 4's lock contention): raw throughput, idle and with a concurrent writer.
async fn raw_throughput(b: &mut Bench) -> Result<()> {
    let (n, runs, writer) = if b.quick {
        (20_000, 1, 10_000)
    } else {
        (200_000, 3, 100_000)
    };
    let mut rates = Vec::new();
    let mut cpus = Vec::new();
    let mut busy = Vec::new();
    let mut writer_secs = Vec::new();
    let mut alone_secs = Vec::new();
    let mut mass = Vec::new();
    for _ in 0..runs {
        let (rate, cpu) = raw_run(n, Strategy::Auto).await?;
        rates.push(rate);
        cpus.push(cpu);
        let (rate, secs) = contended_run(4 * n, writer).await?;
        busy.push(rate);
        writer_secs.push(secs);
        alone_secs.push(writer_alone(writer).await?);
        mass.push(raw_run(n, Strategy::MassDelete).await?.0);
    }
    let rate = median(rates);
    b.record(
        &format!("raw throughput, {n} IDs, no limits, zero latency (median of {runs})"),
        format!("**{rate:.0} IDs/s** finalised (claim → call → outcome)"),
        "≥ 100,000 IDs/s",
        Some(rate >= 100_000.0),
    );
    b.record(
        &format!("raw throughput as above, mass delete (500 IDs a call) (median of {runs})"),
        format!("**{:.0} IDs/s**", median(mass)),
        "-",
        None,
    );
    b.record(
        "CPU per million IDs (zdel + sandbox, one process)",
        format!("**{:.1} CPU s**", median(cpus)),
        "-",
        None,
    );
    let busy_rate = median(busy);
    b.record(
        &format!(
            "zdel's throughput while another connection inserts {writer} rows in 50-row transactions"
        ),
        format!(
            "{busy_rate:.0} IDs/s; idle ÷ busy = **{:.2}**; writer errors: 0",
            rate / busy_rate
        ),
        "≤ 2.00",
        Some(rate / busy_rate <= 2.0),
    );
    b.record(
        &format!("that writer's {writer} rows: with zdel running ÷ alone"),
        format!(
            "{:.1} s ÷ {:.1} s = **{:.2}**",
            median(writer_secs.clone()),
            median(alone_secs.clone()),
            median(writer_secs) / median(alone_secs)
        ),
        "-",
        None,
    );
    Ok(())
}

/// The store alone (no HTTP): claim 16 batches of 100 rows in one
/// transaction, record them succeeded together (group commit) — the single
/// SQLite writer's ceiling, which bounds end-to-end throughput.
async fn store_only(b: &mut Bench) -> Result<()> {
    let n = if b.quick { 20_000 } else { 200_000 };
    let env = Env::new(Faults::default()).await?;
    env.enqueue("Leads", 0, n, Strategy::Auto).await?;
    let lanes = env.store.pending_lanes().await?;
    let started = Instant::now();
    let mut done = 0;
    loop {
        let batches = env
            .store
            .claim_batches(&zdel::store::ClaimRequest {
                now_ms: 1,
                lanes: &lanes,
                after: None,
                skip_modules: &[],
                skip_lanes: &[],
                owner: "bench",
                dry_run: false,
                lease_ms: 60_000,
                limit_for: &|_| 100,
                max_batches: 16,
                max_ids: None,
                fence: None,
            })
            .await?;
        if batches.is_empty() {
            break;
        }
        let recorded = batches.iter().map(|batch| {
            let outcomes: Vec<zdel::store::RowOutcome> = batch
                .rows
                .iter()
                .map(|r| zdel::store::RowOutcome {
                    id: r.id,
                    change: zdel::store::RowChange::Succeeded {
                        code: "SUCCESS".into(),
                        message: "record deleted".into(),
                        http_status: Some(200),
                    },
                })
                .collect();
            let store = env.store.clone();
            let lease = batch.lease;
            tokio::spawn(async move { store.record_outcomes(lease, &outcomes, 2).await })
        });
        for r in futures_util::future::join_all(recorded).await {
            r??;
        }
        done += batches.iter().map(|b| b.rows.len()).sum::<usize>();
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    b.record(
        &format!("store only: claim 16 × 100 + record outcomes, {n} IDs, no HTTP"),
        format!("**{rate:.0} IDs/s** (the single SQLite writer's ceiling)"),
        "-",
        None,
    );
    Ok(())
}

/// Scenario 5: `zdel enqueue` of a 1,000,000-line file.
async fn enqueue(b: &mut Bench) -> Result<()> {
    let (n, runs) = if b.quick {
        (100_000, 1)
    } else {
        (1_000_000, 3)
    };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ids.txt");
    write_ids(&file, n)?;
    let mut times = Vec::new();
    let mut peaks = Vec::new();
    for run in 0..runs {
        let db = dir.path().join(format!("enqueue{run}.db"));
        let env = vec![("ZDEL__DATABASE__URL".to_string(), db.display().to_string())];
        let (elapsed, peak, out) = run_measured(zdel_command(
            &env,
            &[
                "enqueue",
                "--module",
                "Leads",
                "--file",
                file.to_str().unwrap_or_default(),
            ],
        ))
        .await?;
        anyhow::ensure!(
            out.status.success(),
            "enqueue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        times.push(elapsed.as_secs_f64());
        peaks.push(peak as f64);
    }
    let secs = median(times);
    b.record(
        &format!("enqueue {n} IDs from a file (median of {runs})"),
        format!(
            "{secs:.2} s = **{:.0} IDs/s**, peak RSS {:.1} MB",
            n as f64 / secs,
            median(peaks) / 1024.0
        ),
        "≥ 500,000 IDs/s",
        Some(n as f64 / secs >= 500_000.0),
    );
    Ok(())
}

/// Scenario 6: `zdel serve`'s footprint over 5,000,000 pending rows.
async fn footprint(b: &mut Bench) -> Result<()> {
    let n = if b.quick { 200_000 } else { 5_000_000 };
    let env = Env::new(Faults {
        every_id_exists: true,
        latency: Duration::from_millis(200),
        ..Faults::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ids.txt");
    write_ids(&file, n)?;
    let vars = env.env(&[
        ("LIMITS__REQUESTS_PER_SECOND", "5"),
        ("LIMITS__BURST", "1"),
        ("LIMITS__MAX_CONCURRENCY", "2"),
    ]);
    let (elapsed, enqueue_peak, out) = run_measured(zdel_command(
        &vars,
        &[
            "enqueue",
            "--module",
            "Leads",
            "--file",
            file.to_str().unwrap_or_default(),
        ],
    ))
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "enqueue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db_bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", env.db.display())).ok())
        .map(|m| m.len())
        .sum();
    b.record(
        &format!("enqueue {n} IDs (the footprint's setup)"),
        format!(
            "{:.1} s = {:.0} IDs/s, peak RSS {:.1} MB",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            enqueue_peak as f64 / 1024.0
        ),
        "constant memory",
        None,
    );
    b.record(
        &format!("database bytes per queued ID ({n} pending)"),
        format!(
            "**{:.0} B/ID** ({:.0} MB)",
            db_bytes as f64 / n as f64,
            db_bytes as f64 / 1e6
        ),
        "-",
        None,
    );
    let mut serve = zdel_command(&vars, &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = serve.id().unwrap_or(0);
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(if b.quick { 3 } else { 15 }) {
        peak = peak.max(peak_rss_kb(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    serve.wait().await?;
    let calls = env.sandbox.sandbox.stats().calls;
    b.record(
        &format!("`zdel serve` peak RSS with {n} pending rows"),
        format!(
            "**{:.1} MB** (over {:.0} s, {calls} calls made)",
            peak as f64 / 1024.0,
            started.elapsed().as_secs_f64()
        ),
        "≤ 64 MB",
        Some((peak as f64 / 1024.0) <= 64.0),
    );
    Ok(())
}

/// Scenario: `zdel status` over 5,000,000 rows in every state (issue 13:
/// it took 9.1 s when it grouped the whole table).
async fn status_at_scale(b: &mut Bench) -> Result<()> {
    let n: u64 = if b.quick { 200_000 } else { 5_000_000 };
    let env = Env::new(Faults::default()).await?;
    let dir = tempfile::tempdir()?;
    let vars = env.env(&[]);
    // Three modules, as `zdel enqueue` queues them.
    for (m, module) in MODULES.iter().enumerate() {
        let file = dir.path().join(format!("{module}.txt"));
        let share = n / 3 + u64::from((m as u64) < n % 3);
        {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
            for i in 0..share {
                writeln!(out, "{}", id(m as u64 * 10_000_000 + i))?;
            }
            out.flush()?;
        }
        let out = zdel_command(
            &vars,
            &[
                "enqueue",
                "--module",
                module,
                "--file",
                file.to_str().unwrap_or_default(),
            ],
        )
        .output()
        .await?;
        anyhow::ensure!(
            out.status.success(),
            "enqueue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // 60% succeeded over the last 20 hours, 4% failed, 1,000 running, 500
    // waiting to retry, the rest pending: as a long run leaves it.
    let sql = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&env.db))
        .await?;
    let now = zdel::clock::now_ms();
    let (succeeded, failed) = (n * 60 / 100, n * 4 / 100);
    let setup = Instant::now();
    for statement in [
        format!(
            "UPDATE deletion_requests SET state = 'succeeded', outcome_code = 'SUCCESS', attempts = 1,
                 finished_at = {now} - (id * 72000000 / {succeeded}), updated_at = {now}
             WHERE id <= {succeeded}"
        ),
        format!(
            "UPDATE deletion_requests SET state = 'failed', outcome_code = 'INVALID_DATA', attempts = 1,
                 finished_at = {now} - 1000, updated_at = {now} - 1000
             WHERE id > {succeeded} AND id <= {}",
            succeeded + failed
        ),
        format!(
            "UPDATE deletion_requests SET state = 'running', lease_owner = 'bench', lease_token = 1,
                 lease_expires_at = {now} + 600000
             WHERE id > {} AND id <= {}",
            succeeded + failed,
            succeeded + failed + 1000
        ),
        format!(
            "UPDATE deletion_requests SET outcome_code = 'HTTP_503', attempts = 1,
                 next_attempt_at = {now} + 600000, updated_at = {now}
             WHERE id > {} AND id <= {}",
            succeeded + failed + 1000,
            succeeded + failed + 1500
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&sql).await?;
    }
    let setup_s = setup.elapsed().as_secs_f64();
    // The query `status` ran before the maintained counts, for comparison.
    let grouped = Instant::now();
    let groups: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT state, operation, module, count(*) FROM deletion_requests GROUP BY state, operation, module",
    )
    .fetch_all(&sql)
    .await?;
    let grouped_s = grouped.elapsed().as_secs_f64();
    sql.close().await;
    let mut times = Vec::new();
    let mut json_times = Vec::new();
    let mut last = String::new();
    for _ in 0..5 {
        for (args, into) in [
            (&["status"][..], &mut times),
            (&["status", "--json"][..], &mut json_times),
        ] {
            let started = Instant::now();
            let out = zdel_command(&vars, args).output().await?;
            into.push(started.elapsed().as_secs_f64());
            anyhow::ensure!(
                out.status.success(),
                "status failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            anyhow::ensure!(
                out.stderr.is_empty(),
                "status warned: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if args.len() == 1 {
                last = String::from_utf8_lossy(&out.stdout).into_owned();
            }
        }
    }
    let total_line = last
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap_or("")
        .to_string();
    anyhow::ensure!(
        total_line.contains(&succeeded.to_string()) && total_line.contains(&failed.to_string()),
        "status counted wrong: {total_line}"
    );
    let secs = median(times);
    b.record(
        &format!("`zdel status` with {n} rows (median of 5; `--json` {:.3} s)", median(json_times)),
        format!(
            "**{secs:.3} s** (whole process; the old GROUP BY over the table: {grouped_s:.1} s for its {} groups; setup UPDATEs {setup_s:.0} s)",
            groups.len()
        ),
        "< 1 s",
        Some(secs < 1.0),
    );
    Ok(())
}

/// Scenario 7: zdel next to the plain sequential script of the API docs.
async fn side_by_side(b: &mut Bench) -> Result<()> {
    let n = if b.quick { 2_000 } else { 20_000 };
    let faults = Faults {
        latency: Duration::from_millis(50),
        error_5xx_rate: 0.03,
        ..Faults::default()
    };
    let ids: Vec<String> = (0..n).map(id).collect();

    let env = Env::new(faults.clone()).await?;
    env.sandbox.sandbox.add_records("Leads", &ids);
    env.enqueue("Leads", 0, n, Strategy::Auto).await?;
    let zdel_time = env
        .drain(&[
            ("LIMITS__MAX_CONCURRENCY", "10"),
            ("RETRY__BASE_DELAY_MS", "200"),
            ("RETRY__MAX_DELAY_MS", "5000"),
        ])
        .await?;
    let totals = env.store.state_totals().await?;
    let zdel_known = totals.finished();
    let zdel_lost = totals.pending + totals.running;

    let script_env = Env::new(faults).await?;
    script_env.sandbox.sandbox.add_records("Leads", &ids);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ids.txt");
    write_ids(&file, n)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/naive_delete.py");
    let started = Instant::now();
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(script_env.sandbox.url())
        .arg("Leads")
        .arg(&file)
        .output()
        .await?;
    let script_time = started.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "the script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ratio = script_time.as_secs_f64() / zdel_time.as_secs_f64();
    b.record(
        &format!("{n} deletions, 50 ms latency, 3% 503s: zdel (10 in flight)"),
        format!(
            "{:.1} s; outcome known for **{zdel_known}**, lost **{zdel_lost}**",
            zdel_time.as_secs_f64()
        ),
        "all known",
        Some(zdel_lost == 0 && zdel_known == n as i64),
    );
    b.record(
        "same, plain sequential script (bench/naive_delete.py)",
        format!(
            "{:.1} s; outcome known for **{}**, lost **{}**",
            script_time.as_secs_f64(),
            result["known"],
            result["lost"]
        ),
        "-",
        None,
    );
    b.record(
        "wall time, script ÷ zdel",
        format!("**{ratio:.1}×**"),
        "-",
        None,
    );
    Ok(())
}

/// Scenario "mixed real answers": every answer of issue 12 switched on at
/// modest rates; every ID's outcome must agree with the sandbox's state, no
/// ID may fail that was deleted, and the run must end.
async fn mixed_real_answers(b: &mut Bench) -> Result<()> {
    let n: u64 = if b.quick { 4_000 } else { 20_000 };
    let env = Env::new(Faults {
        error_5xx_rate: 0.05,
        error_5xx_after_delete_rate: 0.03,
        drop_after_delete_rate: 0.02,
        rate_429: 0.03,
        no_content_rate: 0.05,
        answer_by_json_path: true,
        latency: Duration::from_millis(30),
        token_ttl: Duration::from_secs(1),
        job_records_per_poll: 500,
        ..Faults::default()
    })
    .await?;
    let sb = &env.sandbox.sandbox;
    // A tenth of the queued IDs never existed (they must fail INVALID_DATA).
    let mut existing: Vec<String> = Vec::new();
    let mut never: std::collections::HashSet<String> = Default::default();
    let halves = [
        ("Leads", Strategy::Delete),
        ("Contacts", Strategy::MassDelete),
    ];
    for (m, (module, strategy)) in halves.iter().enumerate() {
        let start = m as u64 * 10_000_000;
        let share = n / 2;
        let ids: Vec<String> = (0..share).map(|i| id(start + i)).collect();
        for (i, record) in ids.iter().enumerate() {
            if i % 10 == 9 {
                never.insert(record.clone());
            } else {
                existing.push(record.clone());
            }
        }
        sb.add_records(module, ids.iter().filter(|r| !never.contains(*r)));
        env.enqueue(module, start, share, *strategy).await?;
    }
    // Locked records, per-ID server faults, another integration's mass
    // action, a view job running beside ID-list mass deletes.
    for (i, record) in existing.iter().enumerate() {
        match i % 100 {
            0 => sb.lock_record(record, 2),
            1 => sb.fail_record_internally(record, 2),
            _ => {}
        }
    }
    sb.occupy_module("Contacts", 2);
    let view: Vec<String> = (0..2_000).map(|i| id(50_000_000 + i)).collect();
    sb.add_view("Deals", "3652397000000538003", &view);
    env.store
        .insert_job(&zdel::store::NewJob {
            module: "Deals".into(),
            cvid: "3652397000000538003".into(),
            territory_id: None,
            include_child: false,
        })
        .await?;
    let overrides = [
        ("MASS_DELETE__POLL_INTERVAL_MS", "50"),
        ("MASS_DELETE__MAX_POLL_INTERVAL_MS", "200"),
        ("LIMITS__MAX_THROTTLE_BACKOFF_MS", "500"),
    ];
    let config = env.config(&overrides)?;
    let client = Arc::new(zdel::cli::zoho_client(&config)?);
    let started = Instant::now();
    let summary = tokio::time::timeout(
        Duration::from_secs(600),
        worker::run(
            env.store.clone(),
            client,
            zdel::cli::worker_settings(&config),
            RunMode::Drain,
            CancellationToken::new(),
        ),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the mixed-answers drain did not end in 10 minutes"))??;
    let elapsed = started.elapsed();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::new().filename(&env.db))
        .await?;
    let rows: Vec<(String, String, String, Option<String>)> =
        sqlx::query_as("SELECT module, record_id, state, outcome_code FROM deletion_requests")
            .fetch_all(&pool)
            .await?;
    let (mut agree, mut disagree, mut false_failures, mut never_succeeded) =
        (0u64, 0u64, 0u64, 0u64);
    let mut codes: std::collections::BTreeMap<String, u64> = Default::default();
    for (module, record, state, code) in &rows {
        let gone = !sb.has_record(module, record);
        let existed = !never.contains(record);
        *codes
            .entry(format!("{state} {}", code.as_deref().unwrap_or("-")))
            .or_default() += 1;
        // succeeded: Zoho no longer has it; failed: Zoho still has it, or
        // it never existed (INVALID_DATA).
        let right = match state.as_str() {
            "succeeded" => gone,
            "failed" => !gone || (!existed && code.as_deref() == Some("INVALID_DATA")),
            _ => false,
        };
        if state == "succeeded" && !existed {
            never_succeeded += 1;
        }
        if state == "failed" && existed && gone {
            false_failures += 1;
        }
        if right {
            agree += 1;
        } else {
            disagree += 1;
        }
    }
    let job = env.store.jobs().await?;
    let job_state = job.first().map(|j| j.state.to_string()).unwrap_or_default();
    let stats = sb.stats();
    let by_code: Vec<String> = codes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let mut statuses: Vec<(u16, u64)> = stats.statuses.iter().map(|(k, v)| (*k, *v)).collect();
    statuses.sort();
    let statuses: Vec<String> = statuses.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    b.record(
        &format!("mixed real answers, {n} IDs + a 2,000-record view job"),
        format!(
            "run ended ({:?}) in {:.1} s; **{agree} outcomes agree with the sandbox, {disagree} disagree, {false_failures} deleted-but-failed**; {never_succeeded} never-existing IDs recorded succeeded (\"no longer in Zoho\" after an unanswered attempt); view job {job_state}; {} calls (HTTP {}), {} tokens, {} ALREADY_SCHEDULED on the ID path; outcomes: {}",
            summary.reason,
            elapsed.as_secs_f64(),
            stats.calls,
            statuses.join(" "),
            stats.tokens_issued,
            sb.id_path_busy_answers(),
            by_code.join(", ")
        ),
        "every outcome agrees, none deleted-but-failed, the run ends",
        Some(disagree == 0 && false_failures == 0 && summary.reason == worker::StopReason::Drained),
    );
    Ok(())
}

/// Scenario "credits run out": Zoho's daily credits end mid-run (every call
/// 429, no Retry-After); how many calls zdel makes in the next 60 s, and
/// how soon it resumes once credits return.
async fn credits_run_out(b: &mut Bench) -> Result<()> {
    let watch = if b.quick { 15 } else { 60 };
    let env = Env::new(Faults {
        every_id_exists: true,
        latency: Duration::from_millis(20),
        credit_budget: Some(200),
        ..Faults::default()
    })
    .await?;
    let sb = env.sandbox.sandbox.clone();
    for (m, module) in MODULES.iter().enumerate() {
        env.enqueue(module, m as u64 * 10_000_000, 20_000, Strategy::Auto)
            .await?;
    }
    let config = env.config(&[("LIMITS__MAX_CONCURRENCY", "4")])?;
    let client = Arc::new(zdel::cli::zoho_client(&config)?);
    let stop = CancellationToken::new();
    let serve = tokio::spawn(worker::run(
        env.store.clone(),
        client,
        zdel::cli::worker_settings(&config),
        RunMode::Serve,
        stop.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    while sb.stats().credit_429_at.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the credits never ran out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exhausted = sb.stats().credit_429_at[0];
    tokio::time::sleep_until((exhausted + Duration::from_secs(watch)).into()).await;
    let in_window = sb
        .stats()
        .credit_429_at
        .iter()
        .filter(|t| **t < exhausted + Duration::from_secs(watch))
        .count();
    // A new day.
    let calls_before = sb.stats().call_times.len();
    let restored = Instant::now();
    sb.restore_credits();
    let deadline = restored + Duration::from_secs(300);
    while sb.stats().call_times.len() == calls_before {
        anyhow::ensure!(Instant::now() < deadline, "work never resumed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resumed = sb.stats().call_times[calls_before].duration_since(restored);
    stop.cancel();
    serve.await??;
    let limit = config.limits.max_throttle_backoff_ms / 1000;
    b.record(
        &format!("credits run out (4 slots, 3 lanes, limits.max_throttle_backoff_ms = {}), {watch} s watched", config.limits.max_throttle_backoff_ms),
        format!(
            "**{in_window} calls in the {watch} s after the credits ran out** (before issue 12: 35 calls in 15 s with 4 slots, ~140 a minute); first call {:.1} s after credits returned (at most one back-off, {limit} s)",
            resumed.as_secs_f64()
        ),
        "a handful a minute; resumes by itself",
        Some(in_window as u64 <= 20 && resumed.as_secs() <= limit + 1),
    );
    Ok(())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find(|l| l.starts_with("MemTotal:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {:.1} GiB memory",
        mem as f64 / 1024.0 / 1024.0
    )
}

fn commit() -> String {
    let out = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let dirty = if out(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " (with uncommitted changes)"
    };
    format!("{}{dirty}", out(&["rev-parse", "--short", "HEAD"]))
}

/// `zdel select` at 100 ms a call: IDs selected per second and credits per
/// 10,000 IDs, by COQL (`--where`, 2,000 a page), by a view's Get Records
/// (`--cvid`, 200 a page) and by Bulk Read (`--via bulk`: jobs polled
/// every second that finish on their third poll, as a stand-in for
/// Zoho's job time), the `zdel` binary against the sandbox.
async fn selecting(b: &mut Bench) -> Result<()> {
    let scale: u64 = if b.quick { 5 } else { 1 };
    let coql = vec!["--where", "Lead_Status = 'Junk Lead'"];
    let view = vec!["--cvid", "3652397000000087501"];
    for (how, args, via, n) in [
        ("COQL --where", coql.clone(), "page", 100_000 / scale),
        ("view --cvid", view.clone(), "page", 100_000 / scale),
        ("Bulk Read --where", coql.clone(), "bulk", 100_000 / scale),
        ("Bulk Read --cvid", view.clone(), "bulk", 100_000 / scale),
        ("COQL --where", coql.clone(), "page", 400_000 / scale),
        ("Bulk Read --where", coql.clone(), "bulk", 400_000 / scale),
    ] {
        let env = Env::new(Faults {
            latency: Duration::from_millis(100),
            credit_budget: Some(10_000_000),
            ..Faults::default()
        })
        .await?;
        let sb = &env.sandbox.sandbox;
        // n junk leads and n / 4 others; the view lists the junk ones.
        let junk: Vec<String> = (0..n).map(id).collect();
        let lead = |status: &str| {
            [("Lead_Status".to_string(), status.to_string())]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>()
        };
        sb.add_records_with_fields(
            "Leads",
            junk.iter()
                .map(|i| (i.clone(), lead("Junk Lead")))
                .chain((n..n + n / 4).map(|i| (id(i), lead("Contacted")))),
        );
        sb.add_view("Leads", "3652397000000087501", &junk);
        sb.set_bulk_read(200_000, 2);
        let before = sb.stats().credits_used;
        let started = Instant::now();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_zdel"))
            .args(["select", "--module", "Leads", "--yes", "--via", via])
            .args(&args)
            .env_remove("ZDEL_CONFIG")
            .envs(env.env(&[("SELECT__BULK_POLL_INTERVAL_MS", "1000")]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await?;
        let elapsed = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            out.status.success(),
            "zdel select failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let credits = sb.stats().credits_used - before;
        let calls = sb.stats().calls;
        b.record(
            &format!("select {n} IDs by {how}, 100 ms a call"),
            format!(
                "**{:.0} IDs/s**, {:.0} credits per 10,000 IDs ({calls} calls, {elapsed:.1} s)",
                n as f64 / elapsed,
                credits as f64 * 10_000.0 / n as f64
            ),
            "-",
            None,
        );
    }
    Ok(())
}

/// A sandbox whose `n` leads zdel has deleted (they sit in its recycle bin).
async fn deleted_leads(n: u64) -> Result<Env> {
    let env = Env::new(Faults {
        credit_budget: Some(10_000_000),
        ..Faults::default()
    })
    .await?;
    env.sandbox.sandbox.add_records("Leads", (0..n).map(id));
    env.enqueue("Leads", 0, n, Strategy::Auto).await?;
    env.drain(&[]).await?;
    Ok(env)
}

/// `zdel verify` of 100,000 deleted IDs at 100 ms a call: the credits and
/// seconds the recycle-bin check takes (pages of 200, 2 credits a page).
async fn verifying(b: &mut Bench) -> Result<()> {
    let n: u64 = if b.quick { 20_000 } else { 100_000 };
    let env = deleted_leads(n).await?;
    let sb = &env.sandbox.sandbox;
    // The check itself at Zoho-like latency.
    let mut faults = sb.faults();
    faults.latency = Duration::from_millis(100);
    sb.set_faults(faults);
    let config = env.config(&[])?;
    let client = zdel::cli::zoho_client(&config)?;
    let before = sb.stats().credits_used;
    let started = Instant::now();
    let (run, _) = zdel::worker::verify::verify(
        &env.store,
        &client,
        &zdel::store::VerifyScope::default(),
        "bench",
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(run.verified == n as i64, "verified {} of {n}", run.verified);
    let credits = sb.stats().credits_used - before;
    b.record(
        &format!("verify {n} deleted IDs against the recycle bin, 100 ms a call"),
        format!(
            "**{credits} credits** ({} pages), {elapsed:.1} s = {:.0} IDs/s; {} of {n} verified",
            run.pages,
            n as f64 / elapsed,
            run.verified
        ),
        "about 1,000 credits per 100,000",
        Some(credits as f64 <= n as f64 / 100.0 * 1.05),
    );
    Ok(())
}

/// `zdel restore` of 10,000 deleted IDs at 100 ms a call: the credits and
/// seconds their restore requests take through the queue (100 IDs a call).
async fn restoring(b: &mut Bench) -> Result<()> {
    let n: u64 = if b.quick { 2_000 } else { 10_000 };
    let env = deleted_leads(n).await?;
    let sb = &env.sandbox.sandbox;
    let template = RequestTemplate {
        operation: zdel::store::Operation::Restore,
        ..RequestTemplate::delete("Leads", true)
    };
    let ids: Vec<String> = (0..n).map(id).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut enqueuer = env.store.begin_enqueue().await?;
    enqueuer.add(&template, &refs).await?;
    enqueuer.commit().await?;
    let mut faults = sb.faults();
    faults.latency = Duration::from_millis(100);
    sb.set_faults(faults);
    let before = sb.stats().credits_used;
    let calls_before = sb.stats().calls;
    let elapsed = env.drain(&[]).await?.as_secs_f64();
    let restored = (0..n).filter(|i| sb.has_record("Leads", &id(*i))).count();
    anyhow::ensure!(restored == n as usize, "restored {restored} of {n}");
    let credits = sb.stats().credits_used - before;
    b.record(
        &format!("restore {n} deleted IDs through the queue, 100 ms a call, 8 in flight"),
        format!(
            "**{credits} credits** ({} calls), {elapsed:.1} s = {:.0} IDs/s; {restored} of {n} back",
            sb.stats().calls - calls_before,
            n as f64 / elapsed
        ),
        "-",
        None,
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let mut b = Bench {
        quick,
        figures: Vec::new(),
        notes: Vec::new(),
    };
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o.as_str() == name);
    let started = Instant::now();
    if wanted("batching") {
        batch_efficiency(&mut b).await?;
    }
    if wanted("limits") {
        limit_saturation(&mut b).await?;
    }
    if wanted("throughput") {
        raw_throughput(&mut b).await?;
    }
    if only.iter().any(|o| o.as_str() == "raw") {
        // Not part of a full run: the idle end-to-end figure alone, for profiling.
        let n = if b.quick { 20_000 } else { 200_000 };
        let (rate, cpu) = raw_run(n, Strategy::Auto).await?;
        b.record(
            &format!("raw throughput, {n} IDs, one run"),
            format!("**{rate:.0} IDs/s**, {cpu:.1} CPU s per million IDs"),
            "-",
            None,
        );
    }
    if wanted("throughput") || wanted("store") {
        store_only(&mut b).await?;
    }
    if wanted("enqueue") {
        enqueue(&mut b).await?;
    }
    if wanted("footprint") {
        footprint(&mut b).await?;
    }
    if wanted("status") {
        status_at_scale(&mut b).await?;
    }
    if wanted("side-by-side") {
        side_by_side(&mut b).await?;
    }
    if wanted("real-answers") {
        mixed_real_answers(&mut b).await?;
    }
    if wanted("credits") {
        credits_run_out(&mut b).await?;
    }
    if wanted("select") {
        selecting(&mut b).await?;
    }
    if wanted("verify") {
        verifying(&mut b).await?;
    }
    if wanted("restore") {
        restoring(&mut b).await?;
    }
    b.notes.push(format!(
        "whole run: {:.0} s",
        started.elapsed().as_secs_f64()
    ));

    let mut md = String::new();
    writeln!(md, "# Benchmark results\n")?;
    writeln!(
        md,
        "Made by `bash bench/run.sh{}{}` — do not edit by hand.\n",
        if quick { " --quick" } else { "" },
        only.iter().map(|o| format!(" {o}")).collect::<String>()
    )?;
    writeln!(md, "- machine: {}", machine())?;
    writeln!(md, "- commit: {}", commit())?;
    writeln!(
        md,
        "- everything runs against the sandbox Zoho on 127.0.0.1, with a real SQLite file (WAL, synchronous=FULL) in a temp dir"
    )?;
    for note in &b.notes {
        writeln!(md, "- {note}")?;
    }
    if quick {
        writeln!(
            md,
            "- **--quick**: small sizes, a smoke test; do not quote these figures"
        )?;
    }
    writeln!(md, "\n| scenario | figure | target | |\n|---|---|---|---|")?;
    for f in &b.figures {
        let verdict = match f.ok {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        };
        writeln!(
            md,
            "| {} | {} | {} | {verdict} |",
            f.scenario, f.figure, f.target
        )?;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/RESULTS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    // Keep the hand-written analysis below the marker, if any.
    let marker = "<!-- analysis -->";
    if let Some(pos) = existing.find(marker) {
        md.push('\n');
        md.push_str(&existing[pos..]);
    }
    std::fs::write(&path, md)?;
    println!("wrote {}", path.display());
    Ok(())
}
