//! `zdel selections`: every set of IDs queued, how it was chosen, by whom,
//! when, and how far it got.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct Opts {
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let store = super::open_existing_store(&config).await?;
    let selections = store.selections().await?;
    store.close().await;
    if opts.json {
        for s in &selections {
            println!("{}", serde_json::to_string(s)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if selections.is_empty() {
        println!("no selections yet (zdel enqueue records one per run)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<20}  {:<16}  {:<6}  {:<24}  {:<11}  {:>9}  {:>9}  source",
        "id", "created (UTC)", "by", "method", "module/operation", "state", "found", "queued"
    );
    for s in &selections {
        let source = match (&s.source, &s.source_hash) {
            (Some(name), Some(hash)) => format!("{name} (sha256 {})", &hash[..hash.len().min(12)]),
            (Some(name), None) => name.clone(),
            (None, _) => "-".to_string(),
        };
        let how = if s.how == "cli" {
            String::new()
        } else {
            format!(" by zdel {}", s.how)
        };
        let config = s
            .config_hash
            .as_deref()
            .map_or(String::new(), |h| format!("; config {h}"));
        let source = format!("{source}{how}{config}");
        println!(
            "{:>5}  {:<20}  {:<16}  {:<6}  {:<24}  {:<11}  {:>9}  {:>9}  {source}",
            s.id,
            super::status::time_of(s.created_at),
            format!("{}@{}", s.os_user, s.host),
            s.method,
            format!("{}/{}", s.module, s.operation),
            s.state,
            s.ids_found,
            s.ids_queued,
        );
    }
    println!(
        "\nrows of one: zdel outcomes --selection N; undo the pending ones: zdel cancel --selection N"
    );
    Ok(ExitCode::SUCCESS)
}
