//! The command line: one clap enum, one file per subcommand. `anyhow` lives
//! here and in `main.rs` only; the library below returns typed errors.
//!
//! Exit statuses: see [`exit`] (the same table is in `--help` and the README).

mod cancel;
mod check;
mod console;
mod demo;
mod enqueue;
mod erase;
mod export_csv;
mod jobs;
mod mass_delete;
mod migrate;
mod modules;
mod outcomes;
mod progress;
mod prune;
mod restore;
mod resume;
mod retry;
mod select;
mod selections;
mod serve;
mod status;
mod verify;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat};
use crate::store::Store;
use crate::zoho::ZohoError;

#[derive(Debug, Parser)]
#[command(
    name = "zdel",
    version,
    about = "Bulk deletion for Zoho CRM: a durable SQLite queue, batched and rate-limited, with an outcome for every ID",
    after_help = EXIT_HELP
)]
pub struct Cli {
    /// Config file layered over the built-in defaults (then ZDEL__* env vars).
    #[arg(long, global = true, env = "ZDEL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole thing against a built-in fake Zoho: no credentials needed.
    Demo(demo::Opts),
    /// Create or upgrade the database (serve and drain do it too).
    Migrate,
    /// Check the config, the database and the credentials (one token refresh).
    Check,
    /// Queue record IDs for deletion.
    Enqueue(enqueue::Opts),
    /// Select records by COQL criteria: preview them, or snapshot and queue them.
    Select(select::Opts),
    /// Run the workers until SIGTERM/SIGINT.
    Serve(serve::Opts),
    /// Run the workers until nothing is left to do, then exit.
    Drain(serve::Opts),
    /// Counts by state and module, paused lanes, recent errors.
    Status(status::Opts),
    /// One row per request with its outcome, as CSV or JSON lines.
    Outcomes(outcomes::Opts),
    /// Check succeeded deletes against Zoho's recycle bin.
    Verify(verify::Opts),
    /// Delete finished requests that finished before a date (asks first).
    Prune(prune::Opts),
    /// Erase one person: find their records by email or phone, delete, verify, report.
    Erase(erase::Opts),
    /// Undo deletes: queue restores out of the recycle bin (within 60 days).
    Restore(restore::Opts),
    /// Serve the read-only console over a database no zdel serve is using.
    Console(console::Opts),
    /// What was queued, how it was chosen, by whom and when.
    Selections(selections::Opts),
    /// Put failed (or cancelled) requests back in the queue.
    Retry(retry::Opts),
    /// Cancel pending requests.
    Cancel(cancel::Opts),
    /// Restart a lane paused by a permission error.
    Resume(resume::Opts),
    /// Delete every record of a custom view, as a Zoho mass-delete job.
    MassDelete(mass_delete::Opts),
    /// Mass-delete jobs: state, counts, polls; reschedule or cancel one.
    Jobs(jobs::Opts),
}

/// Bad input or configuration: exit status 2, nothing changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Every command's exit statuses, for scripts and cron jobs. The same
/// table is printed by `zdel --help` ([`EXIT_HELP`]) and in the README.
pub mod exit {
    /// All done: nothing failed, nothing left.
    pub const DONE: u8 = 0;
    /// zdel could not do its job (the database, a full disk, the network):
    /// nothing queued was lost; run the command again once fixed.
    pub const ERROR: u8 = 1;
    /// Bad input or bad configuration (or no database where one must be):
    /// nothing was changed.
    pub const USAGE: u8 = 2;
    /// `drain`: work is left in paused lanes, or Zoho rejects the
    /// credentials: fix the cause, then `zdel resume`.
    pub const PAUSED: u8 = 3;
    /// `drain`: the daily deletion cap or the credit limit is reached with
    /// work left: run again later.
    pub const LIMIT: u8 = 4;
    /// `drain`: mass-delete jobs are uncertain: an operator must decide
    /// (`zdel jobs`).
    pub const UNCERTAIN: u8 = 5;
    /// `drain`: everything ran, but rows failed during this run
    /// (`zdel outcomes --state failed`); `verify`: deleted records are not
    /// in the recycle bin.
    pub const ROWS_FAILED: u8 = 6;
    /// `serve`, `drain`: another zdel works on this database (named in the
    /// message), or took it over from this one.
    pub const HELD: u8 = 7;
    /// `enqueue`, `select`: stopped by Ctrl-C or SIGTERM (`select`: or a
    /// page that keeps failing) before every ID was in:
    /// what went in is staged, none of it claimable; run the same command
    /// again to finish, or `zdel cancel --selection N` to drop it.
    pub const INTERRUPTED: u8 = 130;
}

/// The exit-status table, as `zdel --help` prints it.
pub const EXIT_HELP: &str = "Exit status:
  0  all done: nothing failed, nothing left
  1  zdel could not do its job (database, full disk, network); nothing queued was lost
  2  bad input or configuration, or no database where one must be; nothing changed
  3  drain: work left in paused lanes, or the credentials are rejected
  4  drain: the daily deletion cap or the credit limit is reached with work left
  5  drain: mass-delete jobs are uncertain; an operator must decide (zdel jobs)
  6  drain: everything ran, but rows failed during this run (zdel outcomes --state failed); verify: deleted records not in the recycle bin
  7  serve, drain: another zdel works on this database (the message names it)
130  enqueue, select: interrupted before every ID was in; none is claimable (run it again, or zdel cancel --selection N)";

/// An error's message and its causes, each said once: a cause whose text
/// the message already holds (sqlx repeats SQLite's, thiserror wrappers
/// repeat theirs) is left out.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(part.as_str()) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// The store's error behind `e`, if any: on its own, or carried by the
/// worker's (`WorkerError::Store` is transparent, so it is not a separate
/// link of the chain).
fn store_error(e: &anyhow::Error) -> Option<&crate::store::StoreError> {
    e.chain().find_map(|cause| {
        cause.downcast_ref::<crate::store::StoreError>().or(
            match cause.downcast_ref::<crate::worker::WorkerError>() {
                Some(crate::worker::WorkerError::Store(s)) => Some(s),
                None => None,
            },
        )
    })
}

/// Commands whose output is read by people and pipes (`| head`): a closed
/// pipe ends them quietly, as it does `ls` or `cat`.
fn ends_quietly_on_a_closed_pipe(command: &Command) -> bool {
    matches!(
        command,
        Command::Status(_) | Command::Outcomes(_) | Command::Jobs(_) | Command::Selections(_)
    )
}

/// Run the parsed command line; errors become a message on stderr and an exit status.
pub fn main(cli: Cli) -> ExitCode {
    if ends_quietly_on_a_closed_pipe(&cli.command) {
        // Rust ignores SIGPIPE, so a write to a closed pipe fails and
        // println! panics; with the default action the process just ends.
        // Only these commands: they hold no sockets that a peer may close.
        // SAFETY: called before any thread is started; SIG_DFL is a valid action.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zdel: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zdel: {}", error_text(&e));
            let store_error = store_error(&e);
            if matches!(store_error, Some(crate::store::StoreError::HeldBy { .. })) {
                return ExitCode::from(exit::HELD);
            }
            let unopenable = store_error.is_some_and(|s| s.is_unopenable());
            if e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<ConfigError>().is_some()
                || unopenable
            {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::from(exit::ERROR)
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    init_tracing(&config, matches!(cli.command, Command::Demo(_)));
    let database = config.database.url.clone();
    let result = run_command(cli, config).await;
    result.map_err(|e| {
        if store_error(&e).is_some_and(|s| s.is_disk_full()) {
            e.context(format!("disk full: the database {database} cannot grow"))
        } else {
            e
        }
    })
}

async fn run_command(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(opts) => demo::run(cli.config.as_deref(), opts).await,
        Command::Migrate => migrate::run(config).await,
        Command::Check => check::run(config).await,
        Command::Enqueue(opts) => enqueue::run(config, opts).await,
        Command::Serve(opts) => serve::run(config, crate::worker::RunMode::Serve, opts).await,
        Command::Drain(opts) => serve::run(config, crate::worker::RunMode::Drain, opts).await,
        Command::Status(opts) => status::run(config, opts).await,
        Command::Outcomes(opts) => outcomes::run(config, opts).await,
        Command::Verify(opts) => verify::run(config, opts).await,
        Command::Prune(opts) => prune::run(config, opts).await,
        Command::Erase(opts) => erase::run(config, opts).await,
        Command::Restore(opts) => restore::run(config, opts).await,
        Command::Console(opts) => console::run(config, opts).await,
        Command::Selections(opts) => selections::run(config, opts).await,
        Command::Select(opts) => select::run(config, opts).await,
        Command::Retry(opts) => retry::run(config, opts).await,
        Command::Cancel(opts) => cancel::run(config, opts).await,
        Command::Resume(opts) => resume::run(config, opts).await,
        Command::MassDelete(opts) => mass_delete::run(config, opts).await,
        Command::Jobs(opts) => jobs::run(config, opts).await,
    }
}

fn init_tracing(config: &Config, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = config.log.level.to_ascii_lowercase();
    let default_filter = if quiet {
        "error".to_string()
    } else {
        format!("warn,zdel={level}")
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The worker's settings from the config's sections.
pub fn worker_settings(config: &Config) -> crate::worker::WorkerSettings {
    crate::worker::WorkerSettings {
        verify_ambiguous: config.verify.ambiguous,
        ..crate::worker::WorkerSettings::new(
            &config.worker,
            &config.retry,
            &config.mass_delete,
            &config.limits,
            config.zoho.delete_strategy,
        )
    }
}

/// A hash of the effective configuration, for the audit: the SHA-256 of its
/// debug form, in which every secret reads `[REDACTED]` (so no secret is in
/// it, and changing one does not change the hash); 16 hex digits.
pub(crate) fn config_hash(config: &Config) -> String {
    sha256_hex(format!("{config:?}").as_bytes())[..16].to_string()
}

/// The SHA-256 of `bytes`, in hex: how selections name what they read.
fn sha256_hex(bytes: &[u8]) -> String {
    hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// `bytes` in lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The default org's Zoho client from the config's `[zoho]` and `[limits]`.
pub fn zoho_client(config: &Config) -> Result<crate::zoho::ZohoClient, ConfigError> {
    crate::zoho::ZohoClient::new(crate::org::OrgId::default(), &config.zoho, &config.limits)
}

/// The database, which must exist already: every command but `migrate`,
/// `enqueue`, `mass-delete` (these two queue work), `serve`, `drain` and
/// `demo` (which create it) opens it so.
async fn open_existing_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open_existing(
        &config.database.url,
        std::time::Duration::from_millis(config.database.busy_timeout_ms),
    )
    .await?)
}

/// The database, created if missing (`migrate`, `enqueue`, `mass-delete`, `serve`, `drain`).
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(
        &config.database.url,
        std::time::Duration::from_millis(config.database.busy_timeout_ms),
    )
    .await?)
}

/// A Zoho call, tried again after a transient failure, up to
/// [`MAX_TRIES`] times ([`crate::zoho::retrying`]).
pub(super) async fn retrying<T, F, Fut>(call: F) -> Result<T, ZohoError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ZohoError>>,
{
    crate::zoho::retrying(MAX_TRIES, call).await
}

/// Failed calls in a row (timeouts, 5xx, 429) before [`retrying`] gives up
/// (a snapshot then stops and leaves the rest to a rerun).
const MAX_TRIES: u32 = 5;

/// Ask before a bulk change. Off a terminal, refuse unless `--yes` was given.
fn confirm(what: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "{what}. Not a terminal, so zdel cannot ask: add --yes to go ahead"
        ))
        .into());
    }
    print!("{what}. Go ahead? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
        Ok(())
    } else {
        Err(UsageError("not confirmed: nothing changed".into()).into())
    }
}

/// A Zoho module API name: `[A-Za-z][A-Za-z0-9_]*`, at most 100 characters
/// (the same rule as the database's CHECK constraint).
pub fn parse_module(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 100
        && s.as_bytes()[0].is_ascii_alphabetic()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a Zoho module API name (a letter, then letters, digits or _; e.g. Leads, Price_Books)"
        ))
    }
}

/// A Zoho ID (record, view, territory): a positive 64-bit integer in plain
/// decimal — digits only, no leading zero. The same rule as the database's
/// `record_id_is_a_zoho_id` check, so what the CLI accepts always inserts.
pub fn is_record_id(s: &str) -> bool {
    !s.starts_with('0')
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<i64>().is_ok_and(|n| n > 0)
}

/// How a bad ID is explained in error messages.
pub const RECORD_ID_RULE: &str = "a Zoho ID is a positive 64-bit number written in digits, without leading zeros, e.g. 3652397000006064023";

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn module_names() {
        assert!(parse_module("Leads").is_ok());
        assert!(parse_module("Custom_Module1").is_ok());
        for bad in ["", "../Leads", "Leads/1", "Le ads", "Lëads", "1Leads", "_x"] {
            assert!(parse_module(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_ids() {
        assert!(is_record_id("3652397000006064023"));
        assert!(!is_record_id("36523970000060640231"));
        assert!(!is_record_id("12a"));
        assert!(!is_record_id(""));
        assert!(!is_record_id("１２"));
        assert!(!is_record_id("0123"));
        assert!(!is_record_id("0"));
        assert!(!is_record_id("+123"));
        assert!(is_record_id("9223372036854775807"));
        assert!(!is_record_id("9223372036854775808"));
    }
}

#[cfg(test)]
mod error_text_tests {
    #[derive(Debug, thiserror::Error)]
    #[error("attempt to write a readonly database")]
    struct Sqlite;

    #[derive(Debug, thiserror::Error)]
    #[error("error returned from database: attempt to write a readonly database")]
    struct Sqlx(#[source] Sqlite);

    #[derive(Debug, thiserror::Error)]
    #[error("database error: error returned from database: attempt to write a readonly database")]
    struct Store(#[source] Sqlx);

    #[test]
    fn each_cause_is_said_once() {
        let e = anyhow::Error::new(Store(Sqlx(Sqlite))).context("could not queue the IDs");
        assert_eq!(
            super::error_text(&e),
            "could not queue the IDs: database error: error returned from database: attempt to write a readonly database"
        );
    }
}

#[cfg(test)]
mod config_hash_tests {
    #[test]
    fn the_config_hash_ignores_secrets_and_follows_settings() {
        let base =
            crate::config::Config::load_with_env(None, Vec::<(String, String)>::new()).unwrap();
        let with = |k: &str, v: &str| {
            crate::config::Config::load_with_env(None, vec![(k.to_string(), v.to_string())])
                .unwrap()
        };
        let h = super::config_hash(&base);
        assert_eq!(h.len(), 16);
        assert_eq!(
            super::config_hash(&with("ZDEL__ZOHO__REFRESH_TOKEN", "1000.secret")),
            h
        );
        assert_ne!(super::config_hash(&with("ZDEL__LIMITS__BURST", "7")), h);
        assert!(
            !format!("{:?}", with("ZDEL__ZOHO__REFRESH_TOKEN", "1000.secret"))
                .contains("1000.secret")
        );
    }
}
