//! `zdel restore`: undo deletes, within Zoho's 60 days. The records come
//! back out of the recycle bin by `restore` requests in the same queue as
//! deletes (leases, limits, credits, retries, crash safety), up to 100 IDs
//! a call to `POST /settings/recycle_bin/actions/restore`, with an outcome
//! per ID: `SUCCESS`; `INVALID_DATA` (not in the bin); `SCHEDULED` (Zoho
//! restores a big request later, with no job id: asked again later, it is
//! `succeeded` once gone from the bin); `CANNOT_RESTORE_WITHOUT_PARENT`
//! (asked again later: by then the parent, restored in its own lane, is
//! back). IDs deleted more than 60 days ago are refused up front.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;
use futures_util::TryStreamExt;

use super::UsageError;
use crate::config::Config;
use crate::store::{
    NewSelection, Operation, OutcomeFilter, RequestState, RequestTemplate, SelectionMethod,
};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(true))]
pub struct Opts {
    /// What this selection deleted.
    #[arg(long, group = "what", value_name = "N")]
    selection: Option<i64>,
    /// Only this module (with --ids: these records of it).
    #[arg(long, group = "what", value_parser = super::parse_module)]
    module: Option<String>,
    /// These record IDs (comma-separated), with --module.
    #[arg(long, value_delimiter = ',', requires = "module")]
    ids: Option<Vec<String>>,
    /// What zdel deleted since this time: RFC 3339 or an age (24h).
    #[arg(long, group = "what", value_name = "TIME")]
    since: Option<String>,
    /// Do not ask, whatever the number.
    #[arg(long)]
    yes: bool,
}

/// How long Zoho keeps a deleted record.
const RETENTION_MS: i64 = 60 * 24 * 3600 * 1000;

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    if let Some(bad) = opts
        .ids
        .iter()
        .flatten()
        .find(|id| !super::is_record_id(id))
    {
        return Err(UsageError(format!(
            "--ids: {bad:?} is not a record ID ({})",
            super::RECORD_ID_RULE
        ))
        .into());
    }
    let since = opts
        .since
        .as_deref()
        .map(|t| super::verify::parse_time("--since", t))
        .transpose()?;
    let store = super::open_existing_store(&config).await?;
    let now = crate::clock::now_ms();
    // module → record → when zdel deleted it (None: not deleted by zdel).
    let mut wanted: BTreeMap<String, BTreeMap<String, Option<i64>>> = BTreeMap::new();
    let filter = OutcomeFilter {
        state: Some(RequestState::Succeeded),
        module: opts.module.clone(),
        selection: opts.selection,
        record_ids: opts.ids.clone(),
        ..OutcomeFilter::default()
    };
    let mut rows = store.outcomes(&filter)?;
    while let Some(r) = rows.try_next().await? {
        if r.operation != Operation::Delete || since.is_some_and(|s| r.finished_at.unwrap_or(0) < s)
        {
            continue;
        }
        wanted
            .entry(r.module)
            .or_default()
            .insert(r.record_id, r.finished_at);
    }
    drop(rows);
    // IDs given that zdel did not delete: restored as asked.
    if let (Some(module), Some(ids)) = (&opts.module, &opts.ids) {
        let known = wanted.entry(module.clone()).or_default();
        for id in ids {
            known.entry(id.clone()).or_insert(None);
        }
    }
    let too_old: usize = wanted
        .values()
        .map(|m| {
            m.values()
                .filter(|at| at.is_some_and(|t| now - t > RETENTION_MS))
                .count()
        })
        .sum();
    for records in wanted.values_mut() {
        records.retain(|_, at| !at.is_some_and(|t| now - t > RETENTION_MS));
    }
    wanted.retain(|_, records| !records.is_empty());
    if too_old > 0 {
        eprintln!(
            "zdel: {too_old} record(s) were deleted more than 60 days ago: Zoho has purged them from the recycle bin, so they are not queued"
        );
    }
    let total: usize = wanted.values().map(BTreeMap::len).sum();
    if total == 0 {
        println!("nothing to restore: no record deleted within the last 60 days matches");
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    if total as u64 > config.select.confirm_above
        && let Err(e) = super::confirm(
            &format!("{total} record(s) will be restored from the recycle bin"),
            opts.yes,
        )
    {
        store.close().await;
        return Err(e);
    }
    let first = wanted.keys().next().cloned().unwrap_or_default();
    let template = |module: &str| RequestTemplate {
        operation: Operation::Restore,
        ..RequestTemplate::delete(module, true)
    };
    let source = match (opts.selection, &opts.module, &opts.since) {
        (Some(n), _, _) => format!("restore of selection {n}"),
        (None, Some(m), _) => format!("restore of {m}"),
        (None, None, Some(s)) => format!("restore of deletes since {s}"),
        _ => "restore".to_string(),
    };
    let selection = store
        .begin_selection(
            &NewSelection {
                module: first.clone(),
                operation: Operation::Restore,
                method: SelectionMethod::Ids,
                source: Some(source),
                source_hash: None,
                shape: Some(template(&first).shape()),
                wf_trigger: true,
                strategy: template(&first).strategy,
                os_user: crate::store::this_user(),
                host: crate::store::this_host(),
                how: "restore".into(),
                config_hash: Some(super::config_hash(&config)),
            },
            now,
        )
        .await?;
    let mut enqueuer = store.begin_enqueue_into(selection, false, true).await?;
    for (module, records) in &wanted {
        let ids: Vec<&str> = records.keys().map(String::as_str).collect();
        for chunk in ids.chunks(10_000) {
            enqueuer.add(&template(module), chunk).await?;
        }
    }
    let queued = enqueuer
        .commit_complete(total as u64, 0, crate::clock::now_ms())
        .await?;
    store.close().await;
    println!(
        "queued {queued} restore request(s) in {} module(s) as selection {selection}; `zdel drain` (or the running `zdel serve`) restores them, `zdel outcomes --selection {selection}` shows each",
        wanted.len()
    );
    Ok(ExitCode::SUCCESS)
}
