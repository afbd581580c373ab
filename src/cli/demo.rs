//! `zdel demo`: the whole pipeline against the built-in sandbox Zoho, with
//! faults switched on, on a fresh local database. No credentials needed.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::sandbox::{self, Faults, Sandbox, SandboxHandle};
use crate::store::{RequestState, RequestTemplate, Store};
use crate::worker::{self, RunMode};
use crate::zoho::ResultCode;

#[derive(Debug, Args)]
pub struct Opts {
    /// How many record IDs to delete.
    #[arg(long, default_value_t = 20_000)]
    ids: u32,
    /// The demo's database file (replaced if it exists).
    #[arg(long, default_value = "zdel-demo.db")]
    database: String,
    /// Sandbox latency per call, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Share of calls the sandbox answers 503 (0 to 1).
    #[arg(long, default_value_t = 0.05)]
    error_rate: f64,
    /// Calls per second allowed.
    #[arg(long, default_value_t = 50)]
    requests_per_second: u32,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 10)]
    max_concurrency: u32,
}

/// Modules whose demo IDs are queued as a list, as `zdel enqueue` would.
const ENQUEUED: [&str; 2] = ["Contacts", "Deals"];
/// Leads are chosen by criteria instead, as `zdel select` would.
const JUNK: &str = "Lead_Status = 'Junk Lead'";
/// One ID in this many is not in the sandbox: it ends `failed` with INVALID_DATA.
const MISSING_EVERY: u32 = 97;

pub async fn run(config_file: Option<&Path>, opts: Opts) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&opts.error_rate) {
        return Err(super::UsageError("--error-rate must be between 0 and 1".into()).into());
    }
    remove_old_database(&opts.database)?;
    let handle = start_sandbox(&opts).await?;
    // The user's config and environment, pointed at the sandbox and
    // tuned for a demo (the same sandbox settings the tests use).
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    env.extend(sandbox::config_env(&handle.url()));
    env.extend(demo_env(&opts));
    let config = Config::load_with_env(config_file, env)?;
    let store = Store::open(
        &config.database.url,
        Duration::from_millis(config.database.busy_timeout_ms),
    )
    .await?;
    println!(
        "zdel demo: a fake Zoho at {} (503s, ambiguous 500s, dropped connections, 3 s tokens)",
        handle.url()
    );
    let total = seed_and_enqueue(&store, &handle.sandbox, &opts).await?;
    println!(
        "queued {total} IDs in {} across {}",
        config.database.url,
        ENQUEUED.join(", ")
    );
    let selected = select_junk_leads(&config, &store, &handle.sandbox, &opts).await?;
    println!(
        "queued {selected} junk Leads by a selection ({} in all)",
        total + selected
    );
    let client = Arc::new(super::zoho_client(&config)?);
    let (summary, elapsed) = drain_with_progress(&store, &client, &config).await?;
    report(
        &store,
        &handle.sandbox,
        &client,
        &config,
        &opts,
        &summary,
        elapsed,
    )
    .await?;
    handle.stop();
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The demo's database starts empty every time.
fn remove_old_database(database: &str) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", database);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(anyhow::anyhow!("could not replace {path}: {e}"));
        }
    }
    Ok(())
}

/// The sandbox with the demo's faults switched on.
async fn start_sandbox(opts: &Opts) -> anyhow::Result<SandboxHandle> {
    let faults = Faults {
        latency: Duration::from_millis(opts.latency_ms),
        error_5xx_rate: opts.error_rate,
        error_5xx_after_delete_rate: opts.error_rate / 5.0,
        drop_after_delete_rate: opts.error_rate / 5.0,
        token_ttl: Duration::from_secs(3),
        ..Faults::default()
    };
    Ok(Sandbox::start("127.0.0.1:0", faults).await?)
}

/// Make the demo's records (1 in 97 missing) and queue them all; how many were queued.
async fn seed_and_enqueue(store: &Store, sandbox: &Sandbox, opts: &Opts) -> anyhow::Result<u64> {
    let mut enqueuer = store.begin_enqueue().await?;
    let mut total = 0u64;
    for (m, module) in ENQUEUED.iter().enumerate() {
        let count = opts.ids / 3 + u32::from((m as u32) < opts.ids % 3);
        let ids: Vec<String> = (0..count)
            .map(|i| format!("36523970{:02}{:09}", m + 2, i))
            .collect();
        sandbox.add_records(
            module,
            ids.iter()
                .enumerate()
                .filter(|(i, _)| !(*i as u32 + 1).is_multiple_of(MISSING_EVERY))
                .map(|(_, id)| id),
        );
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        total += enqueuer
            .add(&RequestTemplate::delete(module, *module != "Deals"), &refs)
            .await?;
    }
    enqueuer.commit().await?;
    Ok(total)
}

/// A third of the demo's IDs are Leads, three in four of them junk: the
/// demo shows `zdel select --preview`, then selects them (a snapshot of
/// the matching IDs) and queues them; how many it queued.
async fn select_junk_leads(
    config: &Config,
    store: &Store,
    sandbox: &Sandbox,
    opts: &Opts,
) -> anyhow::Result<u64> {
    let before = store.state_totals().await?.total();
    let leads = opts.ids / 3;
    sandbox.add_records_with_fields(
        "Leads",
        (0..leads).map(|i| {
            let status = if i % 4 == 3 { "Contacted" } else { "Junk Lead" };
            let fields = [("Lead_Status", status), ("Last_Name", "Demo")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("Email".to_string(), format!("lead{i}@example.com"))])
                .collect();
            (format!("3652397001{i:09}"), fields)
        }),
    );
    let select = |extra: &[&str]| -> anyhow::Result<super::select::Opts> {
        #[derive(clap::Parser)]
        struct Wrapped {
            #[command(flatten)]
            opts: super::select::Opts,
        }
        let mut args = vec!["select", "--module", "Leads", "--where", JUNK];
        args.extend_from_slice(extra);
        Ok(<Wrapped as clap::Parser>::try_parse_from(args)?.opts)
    };
    println!(
        "\n$ zdel select --module Leads --where \"{JUNK}\" --preview --show Last_Name,Email --sample 3"
    );
    super::select::run(
        config.clone(),
        select(&["--preview", "--show", "Last_Name,Email", "--sample", "3"])?,
    )
    .await?;
    println!("\n$ zdel select --module Leads --where \"{JUNK}\" --yes");
    super::select::run(config.clone(), select(&["--yes"])?).await?;
    let after = store.state_totals().await?.total();
    Ok(u64::try_from(after - before).unwrap_or(0))
}

/// Drain the queue with a progress bar; the run's summary and elapsed time.
async fn drain_with_progress(
    store: &Store,
    client: &Arc<crate::zoho::ZohoClient>,
    config: &Config,
) -> anyhow::Result<(worker::RunSummary, Duration)> {
    let shutdown = CancellationToken::new();
    super::serve::spawn_signal_listener(shutdown.clone(), None);
    let started = Instant::now();
    let progress = super::progress::Progress::start(store, Duration::ZERO, true).await;
    let summary = worker::run(
        store.clone(),
        client.clone(),
        super::worker_settings(config),
        RunMode::Drain,
        shutdown,
    )
    .await;
    progress.finish();
    Ok((summary?, started.elapsed()))
}

/// IDs by outcome and what each means; calls against the minimum; peaks; rate.
async fn report(
    store: &Store,
    sandbox: &Sandbox,
    client: &crate::zoho::ZohoClient,
    config: &Config,
    opts: &Opts,
    summary: &worker::RunSummary,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let stats = sandbox.stats();
    let run = super::progress::RunReport::read(
        store,
        0,
        client.calls_made(),
        &super::worker_settings(config),
        elapsed,
    )
    .await?;
    run.print(|state, code| match (state, code.map(ResultCode::parse)) {
        (RequestState::Failed, Some(ResultCode::InvalidData)) => {
            "not in Zoho (1 in 97 demo IDs does not exist)"
        }
        _ => super::progress::meaning(state, code),
    });
    println!(
        "(of the calls, {} answered 401 and were repeated after a token refresh)",
        stats.unauthorized
    );
    println!("token refreshes:   {}", client.token_refreshes());
    println!(
        "peak concurrency:  {} (cap {})",
        stats.peak_concurrency, opts.max_concurrency
    );
    println!(
        "peak calls/second: {} (limit {} + burst {})",
        stats.peak_calls_per_second(),
        config.limits.requests_per_second,
        config.limits.burst
    );
    println!("stopped because:   {:?}", summary.reason);
    println!(
        "\nlook closer:  ZDEL__DATABASE__URL={} zdel outcomes --state failed",
        config.database.url
    );
    Ok(())
}

/// The demo's own settings, as `ZDEL__*` variables over the user's.
fn demo_env(opts: &Opts) -> Vec<(String, String)> {
    [
        ("DATABASE__URL", opts.database.clone()),
        ("ZOHO__REQUEST_TIMEOUT_MS", "5000".into()),
        (
            "LIMITS__REQUESTS_PER_SECOND",
            opts.requests_per_second.max(1).to_string(),
        ),
        ("LIMITS__BURST", "10".into()),
        (
            "LIMITS__MAX_CONCURRENCY",
            opts.max_concurrency.max(1).to_string(),
        ),
        ("RETRY__BASE_DELAY_MS", "100".into()),
        ("RETRY__MAX_DELAY_MS", "2000".into()),
        ("RETRY__MAX_ATTEMPTS", "10".into()),
        ("WORKER__POLL_INTERVAL_MS", "100".into()),
        ("WORKER__LEASE_MS", "30000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("ZDEL__{k}"), v))
    .collect()
}
