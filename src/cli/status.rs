//! `zdel status`: what the queue holds, what is paused, what went wrong lately.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;

use crate::clock::now_ms;
use crate::config::Config;
use crate::store::STATES;

#[derive(Debug, Args)]
pub struct Opts {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let store = super::open_store(&config).await?;
    let report = store.status(now_ms()).await?;
    let cap = config.limits.max_deletions_per_day;
    let last_24h = store.succeeded_since(now_ms() - 24 * 3600 * 1000).await?;
    let jobs = store.depth().await?.1;
    store.close().await;
    if opts.json {
        let mut value = serde_json::to_value(&report)?;
        value["succeeded_last_24h"] = last_24h.into();
        value["max_deletions_per_day"] = cap.into();
        value["daily_cap_reached"] = (cap > 0 && last_24h as u64 >= cap).into();
        value["mass_delete_jobs"] = jobs
            .iter()
            .map(|(state, n)| (state.clone(), serde_json::Value::from(*n)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut by_lane: BTreeMap<(String, String), [i64; 5]> = BTreeMap::new();
    for row in &report.counts {
        let entry = by_lane
            .entry((row.module.clone(), row.operation.clone()))
            .or_default();
        if let Some(i) = STATES.iter().position(|s| *s == row.state) {
            entry[i] += row.count;
        }
    }
    println!(
        "{:<24} {:<12} {:>10} {:>8} {:>10} {:>8} {:>10}",
        "module", "operation", "pending", "running", "succeeded", "failed", "cancelled"
    );
    let mut totals = [0i64; 5];
    for ((module, operation), counts) in &by_lane {
        println!(
            "{module:<24} {operation:<12} {:>10} {:>8} {:>10} {:>8} {:>10}",
            counts[0], counts[1], counts[2], counts[3], counts[4]
        );
        for (t, c) in totals.iter_mut().zip(counts) {
            *t += c;
        }
    }
    println!(
        "{:<24} {:<12} {:>10} {:>8} {:>10} {:>8} {:>10}",
        "total", "", totals[0], totals[1], totals[2], totals[3], totals[4]
    );
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
    if !jobs.is_empty() {
        let list: Vec<String> = jobs
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect();
        println!(
            "\nmass-delete jobs: {} (details: `zdel jobs`)",
            list.join(", ")
        );
        if jobs.iter().any(|(state, n)| state == "uncertain" && *n > 0) {
            println!(
                "  an UNCERTAIN job needs an operator: check it in Zoho, then `zdel jobs --reschedule ID` or `--cancel ID`"
            );
        }
    }
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
    if !report.recent_errors.is_empty() {
        println!("\nrecent errors:");
        for e in &report.recent_errors {
            println!(
                "  #{} {} {} [{}] {}: {} (attempts {})",
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
    Ok(ExitCode::SUCCESS)
}
