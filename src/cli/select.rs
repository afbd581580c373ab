//! `zdel select`: choose records by COQL criteria instead of by ID, preview
//! them, snapshot the matching IDs as a selection, then queue them.
//!
//! 1. **check**: `select id from {module} where ({criteria}) order by id asc
//!    limit 1`. A query Zoho refuses is shown with its details (clause,
//!    column, near) and nothing is stored.
//! 2. `--preview`: a sample of `--sample` records with the `--show` fields,
//!    and the count, by paging the IDs (nothing stored, the credits said).
//! 3. otherwise the **snapshot**: pages of 2,000 IDs, `id > last` (keyset,
//!    so not capped at Zoho's 100,000-row OFFSET ceiling), each page's IDs
//!    stored (staged) with the selection's page count and cursor in one
//!    transaction, before any of them is deleted. Ctrl-C, a crash or a
//!    failed call leaves the pages so far; the same command again resumes
//!    from the cursor, with no gap and no duplicate.
//! 4. above `select.confirm_above` IDs it asks (off a terminal it needs
//!    `--yes`); then the selection is released to the workers.
//!
//! Its calls go through the client's rate limiter and credit count, one at
//! a time (one query in flight: Zoho's query concurrency is small and
//! deletes need their slots); the credits are added to the ledger.

use std::process::ExitCode;

use clap::Args;

use super::UsageError;
use crate::config::Config;
use crate::store::{NewSelection, RequestTemplate, SelectionMethod, Store};
use crate::zoho::{COQL_PAGE, CoqlPage, ZohoClient, ZohoError, coql_credits};

#[derive(Debug, Args)]
pub struct Opts {
    /// The module API name, e.g. Leads.
    #[arg(long, value_parser = super::parse_module)]
    module: String,
    /// COQL criteria: what follows WHERE, e.g.
    /// "Lead_Status = 'Junk Lead' and Created_Time < '2023-01-01T00:00:00+00:00'".
    #[arg(long = "where", value_name = "CRITERIA")]
    criteria: String,
    /// Show the count and a sample, and queue nothing.
    #[arg(long)]
    preview: bool,
    /// With --preview: the fields to show for each sampled record.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "FIELD,...",
        requires = "preview"
    )]
    show: Vec<String>,
    /// With --preview: how many records to show.
    #[arg(long, default_value_t = 10, requires = "preview")]
    sample: u32,
    /// Release the selection without asking, whatever its size.
    #[arg(long)]
    yes: bool,
    /// Delete without running workflow rules (wf_trigger=false).
    #[arg(long)]
    no_workflow: bool,
    /// Queue IDs zdel already deleted too.
    #[arg(long)]
    again: bool,
}

/// Failed calls in a row (timeouts, 5xx, 429) before a snapshot stops and
/// leaves the rest to a rerun.
const MAX_TRIES: u32 = 5;

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let criteria = opts.criteria.trim();
    if criteria.is_empty() {
        return Err(UsageError(
            "--where is empty: give COQL criteria (e.g. \"Lead_Status = 'Junk Lead'\"); to select every record say \"id is not null\"".into(),
        )
        .into());
    }
    for field in &opts.show {
        super::parse_module(field).map_err(|_| {
            UsageError(format!(
                "--show {field:?} is not a field API name (letters, digits and _)"
            ))
        })?;
    }
    let client = super::zoho_client(&config)?;
    let module = &opts.module;
    let slot = client.acquire_slot().await;

    // 1. The check: a query Zoho refuses stores nothing.
    let check = format!("select id from {module} where ({criteria}) order by id asc limit 1");
    client
        .coql(&slot, &check, 1)
        .await
        .map_err(|e| refused(&e, criteria))?;

    if opts.preview {
        let result = preview(&client, &slot, &opts, criteria).await;
        drop(slot);
        keep_credits(&config, &client).await;
        return result;
    }

    let store = super::open_store(&config).await?;
    let template = RequestTemplate::delete(module, !opts.no_workflow);
    let wanted = NewSelection {
        module: module.clone(),
        operation: template.operation,
        method: SelectionMethod::Coql,
        source: Some(format!("select id from {module} where ({criteria})")),
        source_hash: Some(query_hash(module, criteria)),
        shape: Some(template.shape()),
        wf_trigger: template.wf_trigger,
        strategy: template.strategy,
        os_user: crate::store::this_user(),
        host: crate::store::this_host(),
    };
    let (selection, mut cursor, mut pages) = match store.unfinished_selection(&wanted).await? {
        Some(earlier) => {
            store.resume_selection(earlier.id).await?;
            eprintln!(
                "resuming selection {} (started {} by {}@{}): {} page(s) already stored",
                earlier.id,
                super::status::time_of(earlier.created_at),
                earlier.os_user,
                earlier.host,
                earlier.pages
            );
            (earlier.id, earlier.cursor, earlier.pages)
        }
        None => (
            store
                .begin_selection(&wanted, crate::clock::now_ms())
                .await?,
            None,
            0,
        ),
    };

    // 3. The snapshot, page by page, each stored before the next is asked.
    let fetched = async {
        let mut already_deleted = 0u64;
        while cursor.as_deref() != Some(DONE) {
            let after = cursor.as_deref().unwrap_or("0");
            let query = format!(
                "select id from {module} where ({criteria}) and (id > {after}) order by id asc limit {COQL_PAGE}"
            );
            let page = with_retries(&client, &slot, &query).await?;
            let last = page.ids.last().cloned();
            let end = page.ids.len() < COQL_PAGE as usize || !page.more_records;
            let next = match (end, last) {
                (true, _) | (false, None) => DONE.to_string(),
                (false, Some(last)) => last,
            };
            let mut enqueuer = store
                .begin_enqueue_into(selection, true, opts.again)
                .await?;
            let refs: Vec<&str> = page.ids.iter().map(String::as_str).collect();
            let mut chunk = crate::store::IdChunk::with_capacity(refs.len());
            for id in &refs {
                chunk.push(id);
            }
            already_deleted += enqueuer.add_chunk(&template, chunk).await?.already_deleted;
            enqueuer.record_page(&next).await?;
            enqueuer.commit().await?;
            pages += 1;
            cursor = Some(next);
        }
        anyhow::Ok(already_deleted)
    };
    let fetched = tokio::select! {
        fetched = fetched => Some(fetched),
        () = super::serve::wait_for_signal() => None,
    };
    drop(slot);
    keep_credits(&config, &client).await;
    let now = crate::clock::now_ms();
    let already_deleted = match fetched {
        Some(Ok(n)) => n,
        stopped => {
            let staged = store
                .finish_selection(selection, false, 0, 0, now)
                .await
                .unwrap_or(0);
            let why = match stopped {
                Some(Err(e)) => format!("{e:#}"),
                _ => "interrupted".to_string(),
            };
            eprintln!(
                "zdel: {why}: selection {selection} holds {staged} ID(s) from {pages} page(s), staged, none claimable; \
                 run the same command again to go on from there, or `zdel cancel --selection {selection}` to drop them"
            );
            store.close().await;
            return Ok(ExitCode::from(super::exit::INTERRUPTED));
        }
    };
    let found = store
        .selection(selection)
        .await?
        .map_or(0, |s| s.ids_queued as u64)
        + already_deleted;

    // 4. Ask above the threshold, then release.
    let confirm_above = config.select.confirm_above;
    if found > confirm_above
        && let Err(e) = super::confirm(
            &format!(
                "{found} record(s) of {module} match (selection {selection}, stored); they will be deleted"
            ),
            opts.yes,
        )
    {
        let _ = store
            .finish_selection(selection, false, found, already_deleted, now)
            .await;
        store.close().await;
        return Err(e.context(format!(
            "selection {selection} is above select.confirm_above ({confirm_above}): nothing is released; run the same command with --yes to release it, or `zdel cancel --selection {selection}`"
        )));
    }
    let queued = store
        .finish_selection(selection, true, found, already_deleted, now)
        .await?;
    loop {
        let step = store.release_selection(selection, 50_000).await?;
        if step.done {
            break;
        }
    }
    store.close().await;
    let deleted = if already_deleted > 0 {
        format!(", {already_deleted} already deleted by zdel (--again sends them again)")
    } else {
        String::new()
    };
    println!(
        "selected {found} record(s) of {module} in {pages} page(s); queued {queued} for delete{deleted}; selection {selection}"
    );
    Ok(ExitCode::SUCCESS)
}

/// The cursor of a selection whose pages are all stored.
const DONE: &str = "done";

/// `--preview`: the count (by paging the IDs, nothing stored) and a sample.
async fn preview(
    client: &ZohoClient,
    slot: &crate::zoho::CallSlot,
    opts: &Opts,
    criteria: &str,
) -> anyhow::Result<ExitCode> {
    let module = &opts.module;
    let mut fields = vec!["id".to_string()];
    fields.extend(opts.show.iter().filter(|f| *f != "id").cloned());
    let sample = opts.sample.clamp(1, COQL_PAGE);
    let query = format!(
        "select {} from {module} where ({criteria}) order by id asc limit {sample}",
        fields.join(", ")
    );
    let shown = client
        .coql(slot, &query, sample)
        .await
        .map_err(|e| refused(&e, criteria))?;
    let (mut count, mut calls, mut credits) = (0u64, 0u64, 0u64);
    let mut after = "0".to_string();
    loop {
        let query = format!(
            "select id from {module} where ({criteria}) and (id > {after}) order by id asc limit {COQL_PAGE}"
        );
        let page = with_retries(client, slot, &query).await?;
        calls += 1;
        credits += coql_credits(COQL_PAGE);
        count += page.ids.len() as u64;
        match page.ids.last() {
            Some(last) if page.ids.len() == COQL_PAGE as usize && page.more_records => {
                after = last.clone();
            }
            _ => break,
        }
    }
    println!(
        "{count} record(s) of {module} match {criteria:?} (counted now by COQL: {calls} call(s), {credits} credit(s); nothing was queued)"
    );
    println!(
        "a delete would take about {} call(s) of 100 IDs",
        count.div_ceil(100)
    );
    print_sample(&fields, &shown);
    Ok(ExitCode::SUCCESS)
}

fn print_sample(fields: &[String], page: &CoqlPage) {
    if page.rows.is_empty() {
        return;
    }
    println!("\nthe first {}:", page.rows.len());
    println!("  {}", fields.join("\t"));
    for row in &page.rows {
        let cells: Vec<String> = fields
            .iter()
            .map(|f| match row.get(f) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => "-".to_string(),
                Some(other) => other.to_string(),
            })
            .collect();
        println!("  {}", cells.join("\t"));
    }
}

/// One page, tried again after a transient failure (timeout, 5xx, 429),
/// up to [`MAX_TRIES`] times with a growing pause.
async fn with_retries(
    client: &ZohoClient,
    slot: &crate::zoho::CallSlot,
    query: &str,
) -> anyhow::Result<CoqlPage> {
    let mut tries = 0;
    loop {
        match client.coql(slot, query, COQL_PAGE).await {
            Ok(page) => return Ok(page),
            Err(
                e @ (ZohoError::Transient { .. }
                | ZohoError::RateLimited { .. }
                | ZohoError::Unavailable { .. }),
            ) if tries + 1 < MAX_TRIES => {
                tries += 1;
                let pause = match &e {
                    ZohoError::RateLimited {
                        retry_after: Some(after),
                        ..
                    } => *after,
                    _ => std::time::Duration::from_millis(200 << tries),
                };
                tracing::warn!(error = %e, try_no = tries, "a COQL page failed; asking again");
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("a COQL page failed")),
        }
    }
}

/// A query Zoho refused: its code and details, and that nothing was stored.
fn refused(e: &ZohoError, criteria: &str) -> anyhow::Error {
    match e {
        ZohoError::Rejected { .. } => UsageError(format!(
            "Zoho refused the query for --where {criteria:?}: {e}; nothing was stored"
        ))
        .into(),
        other => anyhow::anyhow!("{other}; nothing was stored"),
    }
}

/// What identifies a query selection for a rerun: the module and criteria.
fn query_hash(module: &str, criteria: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(format!("coql\n{module}\n{criteria}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Add what the calls cost to the credit ledger (best effort: a failure
/// leaves it to Zoho's own figure, read by the next call).
async fn keep_credits(config: &Config, client: &ZohoClient) {
    let spent = client.credits().take_spent();
    let remaining = client.credits().last_remaining();
    if spent == 0 && remaining.is_none() {
        return;
    }
    if let Ok(store) = Store::open(
        &config.database.url,
        std::time::Duration::from_millis(config.database.busy_timeout_ms),
    )
    .await
    {
        let _ = store
            .record_credits(client.org(), spent, remaining, crate::clock::now_ms())
            .await;
        store.close().await;
    }
}
