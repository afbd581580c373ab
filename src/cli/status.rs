//! `zdel status`: what the queue holds, what is paused, what went wrong lately.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;

use crate::clock::now_ms;
use crate::config::Config;
use crate::status_model::StatusModel as Snapshot;
use crate::store::{JobState, RequestState, StatusReport};

#[derive(Debug, Args)]
pub struct Opts {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Only this selection (`zdel selections` lists them): how it was
    /// chosen, and its rows by state and outcome code.
    #[arg(long, value_name = "N")]
    selection: Option<i64>,
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    if let Some(id) = opts.selection {
        return selection(&config, id, opts.json).await;
    }
    let store = super::open_existing_store(&config).await?;
    let snap = Snapshot::read(&store, &config.limits).await;
    store.close().await;
    let snap = snap?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&snap.json()?)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_holder(&snap.report);
    print_counts(&snap.report);
    print_daily_cap(&snap);
    print_credits(&snap);
    print_waiting(&snap.report);
    print_jobs(&snap.jobs);
    print_pauses(&snap.report);
    print_recent_errors(&snap.report);
    print_verifications(&snap.report);
    Ok(ExitCode::SUCCESS)
}

fn print_verifications(report: &StatusReport) {
    if report.verifications.is_empty() {
        return;
    }
    println!("\nrecycle-bin checks (zdel verify):");
    for v in &report.verifications {
        match v.finished_at {
            Some(at) => println!(
                "  {} {}: {} of {} in the recycle bin, {} not there",
                time_of(at),
                v.scope,
                v.verified,
                v.checked,
                v.not_in_bin
            ),
            None => println!("  {} {}: did not finish", time_of(v.started_at), v.scope),
        }
    }
}

/// `status --selection N`.
async fn selection(config: &Config, id: i64, json: bool) -> anyhow::Result<ExitCode> {
    let store = super::open_existing_store(config).await?;
    let report = store.selection_report(id).await?;
    store.close().await;
    let Some(report) = report else {
        return Err(super::UsageError(format!(
            "there is no selection {id} (zdel selections lists them)"
        ))
        .into());
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = &report.selection;
    let source = match (&s.source, &s.source_hash) {
        (Some(name), Some(hash)) => format!("{name} (sha256 {hash})"),
        (Some(name), None) => name.clone(),
        (None, _) => "-".to_string(),
    };
    println!(
        "selection {}: {} {} by {} from {source}",
        s.id, s.operation, s.module, s.method
    );
    println!(
        "  by {}@{} at {}, {}",
        s.os_user,
        s.host,
        time_of(s.created_at),
        s.state
    );
    println!(
        "  IDs found {}, queued {}, skipped as already deleted {}",
        s.ids_found, s.ids_queued, s.ids_already_deleted
    );
    println!("\n  {:<10} {:<28} {:>9}", "state", "code", "rows");
    for c in &report.counts {
        println!(
            "  {:<10} {:<28} {:>9}",
            c.state,
            c.code.as_deref().unwrap_or("-"),
            c.count
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Who works on this database, since when.
fn print_holder(report: &StatusReport) {
    match &report.holder {
        Some(h) => println!(
            "zdel {} on {} (pid {}) working since {}\n",
            h.command,
            h.host,
            h.pid,
            time_of(h.since)
        ),
        None => println!("no zdel is working on this database (serve or drain runs the queue)\n"),
    }
}

/// Rows by module and operation, a column per state, each lane's current
/// rate and time left at that rate, and the totals.
fn print_counts(report: &StatusReport) {
    let mut by_lane: BTreeMap<(String, String), [i64; 5]> = BTreeMap::new();
    for row in &report.counts {
        let entry = by_lane
            .entry((row.module.clone(), row.operation.as_str().to_string()))
            .or_default();
        if let Some(i) = RequestState::ALL.iter().position(|s| *s == row.state) {
            entry[i] += row.count;
        }
    }
    let window_s = ((now_ms() - report.rates_since).max(1000) as f64) / 1000.0;
    let mut header: Vec<String> = RequestState::ALL.iter().map(|s| s.to_string()).collect();
    header.extend(["IDs/s".to_string(), "ETA".to_string()]);
    println!("{}", table_line("module", "operation", &header));
    let mut totals = [0i64; 5];
    let mut total_rate = 0.0;
    for ((module, operation), counts) in &by_lane {
        let finished = report
            .rates
            .iter()
            .filter(|r| r.module == *module && r.operation.as_str() == operation)
            .map(|r| r.finished)
            .sum::<i64>();
        let rate = finished as f64 / window_s;
        total_rate += rate;
        let mut cells: Vec<String> = counts.iter().map(i64::to_string).collect();
        cells.extend(rate_and_eta(rate, live(counts)));
        println!("{}", table_line(module, operation, &cells));
        for (t, c) in totals.iter_mut().zip(counts) {
            *t += c;
        }
    }
    let mut cells: Vec<String> = totals.iter().map(i64::to_string).collect();
    cells.extend(rate_and_eta(total_rate, live(&totals)));
    println!("{}", table_line("total", "", &cells));
    println!(
        "(IDs/s: succeeded or failed per second since {}; ETA: pending and running at that rate)",
        time_of(report.rates_since)
    );
}

/// Pending and running rows of a counts row (a cell per [`RequestState::ALL`]).
fn live(counts: &[i64; 5]) -> i64 {
    RequestState::ALL
        .iter()
        .zip(counts)
        .filter(|(state, _)| !state.is_terminal())
        .map(|(_, n)| n)
        .sum()
}

/// A lane's rate and its time left at that rate (`-` when idle or done).
fn rate_and_eta(rate: f64, left: i64) -> [String; 2] {
    let eta = if left == 0 {
        "done".to_string()
    } else if rate > 0.0 {
        let secs = (left as f64 / rate).ceil() as u64;
        humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
    } else {
        "-".to_string()
    };
    let rate = if rate > 0.0 {
        format!("{rate:.1}")
    } else {
        "-".to_string()
    };
    [rate, eta]
}

/// An epoch-ms time as UTC, to the second (RFC 3339).
pub(super) fn time_of(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn print_daily_cap(snap: &Snapshot) {
    let (cap, last_24h) = (snap.cap, snap.last_24h);
    if cap > 0 {
        println!(
            "\n{last_24h} deletion(s) succeeded in the last 24 hours (limits.max_deletions_per_day = {cap})"
        );
        if last_24h as u64 >= cap {
            println!(
                "DAILY CAP REACHED: zdel claims nothing new until the rolling 24-hour count drops below the cap"
            );
        }
    }
}

fn print_credits(snap: &Snapshot) {
    let ledger = &snap.ledger;
    if ledger.spent_24h == 0 && ledger.remaining.is_none() && snap.max_credits_per_day == 0 {
        return;
    }
    let cap = match snap.max_credits_per_day {
        0 => "no cap of zdel's own".to_string(),
        cap => format!("limits.max_credits_per_day = {cap}"),
    };
    println!(
        "
credits: zdel spent {} in the last 24 hours ({cap})",
        ledger.spent_24h
    );
    if let (Some(remaining), Some(at)) = (ledger.remaining, ledger.remaining_seen_at) {
        let ago = (now_ms() - at).max(0) / 1000;
        println!("  Zoho's last X-API-CREDITS-REMAINING: {remaining} ({ago} s ago)");
    }
    if let Some(stop) = &snap.credit_stop {
        println!("CLAIMING STOPPED: {stop}");
    }
}

fn print_waiting(report: &StatusReport) {
    for staged in &report.staged {
        let id = staged.selection;
        let why = match staged.selection_state.as_str() {
            "complete" => "all in, being released".to_string(),
            "queueing" => "its IDs are going in".to_string(),
            other => {
                format!("{other}: rerun its command to finish it, or zdel cancel --selection {id}")
            }
        };
        println!(
            "\n{} pending request(s) of {} {} are staged, not claimable yet: selection {id} ({why})",
            staged.count,
            staged.operation.as_str(),
            staged.module
        );
    }
    if report.waiting_to_retry > 0 {
        println!(
            "\n{} pending request(s) are waiting out a retry delay",
            report.waiting_to_retry
        );
    }
    if report.mass_delete_without_workflow > 0 {
        println!(
            "\n{} queued request(s) ask for mass delete with wf_trigger = 0: they go as plain DELETEs (100 IDs a call), because mass delete cannot suppress workflow rules",
            report.mass_delete_without_workflow
        );
    }
}

fn print_jobs(jobs: &[(JobState, i64)]) {
    if !jobs.is_empty() {
        let list: Vec<String> = jobs
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect();
        println!(
            "\nmass-delete jobs: {} (details: `zdel jobs`)",
            list.join(", ")
        );
        if jobs
            .iter()
            .any(|(state, n)| *state == JobState::Uncertain && *n > 0)
        {
            println!(
                "  an UNCERTAIN job needs an operator: check it in Zoho, then `zdel jobs --reschedule ID` or `--cancel ID`"
            );
        }
    }
}

fn print_pauses(report: &StatusReport) {
    if report.pauses.is_empty() {
        println!("\nno paused lanes");
    } else {
        println!("\npaused:");
        for p in &report.pauses {
            let what = if p.scope == crate::store::PAUSE_ALL {
                "ALL LANES".to_string()
            } else {
                p.scope.clone()
            };
            println!("  {what}: {} — {}", p.code, p.message);
        }
        println!("  restart with `zdel resume --module M` (or --all) once the cause is fixed");
    }
}

fn print_recent_errors(report: &StatusReport) {
    if !report.recent_errors.is_empty() {
        println!("\nrecent errors:");
        for e in &report.recent_errors {
            println!(
                "  {} #{} {} {} [{}] {}: {} (attempts {})",
                time_of(e.updated_at),
                e.id,
                e.module,
                e.record_id,
                e.state,
                e.code,
                e.message.as_deref().unwrap_or(""),
                e.attempts
            );
        }
    }
}

/// One line of the counts table: module, operation, then a column per request state.
fn table_line(module: &str, operation: &str, cells: &[impl std::fmt::Display]) -> String {
    const WIDTHS: [usize; 7] = [10, 8, 10, 8, 10, 8, 12];
    let mut line = format!("{module:<24} {operation:<12}");
    for (cell, width) in cells.iter().zip(WIDTHS) {
        line.push_str(&format!(" {:>width$}", cell.to_string()));
    }
    line
}
