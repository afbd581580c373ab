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

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::UsageError;
use crate::config::Config;
use crate::store::{NewSelection, RequestTemplate, SelectionMethod, Store};
use crate::zoho::{
    COQL_PAGE, CoqlPage, VIEW_PAGE_CREDITS, ViewCursor, ZohoClient, ZohoError, coql_credits,
};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("query").required(true))]
pub struct Opts {
    /// The module API name, e.g. Leads.
    #[arg(long, value_parser = super::parse_module)]
    module: String,
    /// COQL criteria: what follows WHERE, e.g.
    /// "Lead_Status = 'Junk Lead' and Created_Time < '2023-01-01T00:00:00+00:00'".
    #[arg(long = "where", value_name = "CRITERIA", group = "query")]
    criteria: Option<String>,
    /// A custom view's id: the records it lists (Get Records, pages of 200,
    /// up to Zoho's 100,000 a view).
    #[arg(long, value_name = "ID", group = "query")]
    cvid: Option<String>,
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

/// What a selection pages through.
enum Query<'a> {
    /// `--where`: COQL, paged by `id > last`.
    Coql { criteria: &'a str },
    /// `--cvid`: Get Records of a custom view, by page number then token.
    View { cvid: &'a str },
}

impl Query<'_> {
    /// What `zdel selections` shows as the source.
    fn source(&self, module: &str) -> String {
        match self {
            Query::Coql { criteria } => format!("select id from {module} where ({criteria})"),
            Query::View { cvid } => format!("view {cvid} of {module}"),
        }
    }

    fn method(&self) -> SelectionMethod {
        match self {
            Query::Coql { .. } => SelectionMethod::Coql,
            Query::View { .. } => SelectionMethod::Cvid,
        }
    }

    /// What identifies the selection for a rerun.
    fn hash(&self, module: &str) -> String {
        use sha2::Digest;
        let text = match self {
            Query::Coql { criteria } => format!("coql\n{module}\n{criteria}"),
            Query::View { cvid } => format!("cvid\n{module}\n{cvid}"),
        };
        sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// How `--preview` names it.
    fn describe(&self) -> String {
        match self {
            Query::Coql { criteria } => format!("{criteria:?}"),
            Query::View { cvid } => format!("view {cvid}"),
        }
    }

    /// Credits one page costs.
    fn page_credits(&self) -> u64 {
        match self {
            Query::Coql { .. } => coql_credits(COQL_PAGE),
            Query::View { .. } => VIEW_PAGE_CREDITS,
        }
    }
}

/// The page at `cursor` (`None`: the first), with retries; its IDs, and
/// the cursor of the next page ([`DONE`] after the last).
async fn fetch(
    client: &ZohoClient,
    slot: &crate::zoho::CallSlot,
    module: &str,
    query: &Query<'_>,
    cursor: Option<&str>,
) -> anyhow::Result<(Vec<String>, String)> {
    match query {
        Query::Coql { criteria } => {
            let after = cursor.unwrap_or("0");
            let text = format!(
                "select id from {module} where ({criteria}) and (id > {after}) order by id asc limit {COQL_PAGE}"
            );
            let page = with_retries(|| client.coql(slot, &text, COQL_PAGE)).await?;
            let end = page.ids.len() < COQL_PAGE as usize || !page.more_records;
            let next = match (end, page.ids.last()) {
                (false, Some(last)) => last.clone(),
                _ => DONE.to_string(),
            };
            Ok((page.ids, next))
        }
        Query::View { cvid } => {
            let at = match cursor {
                None => ViewCursor::Page(1),
                Some(text) => ViewCursor::from_text(text).ok_or_else(|| {
                    anyhow::anyhow!(
                        "the stored cursor {text:?} is not a view page: cancel the selection and start again"
                    )
                })?,
            };
            let page = with_retries(|| client.view_page(slot, module, cvid, &at)).await?;
            let next = page
                .next
                .as_ref()
                .map_or_else(|| DONE.to_string(), ViewCursor::to_text);
            Ok((page.ids, next))
        }
    }
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let query = match (&opts.criteria, &opts.cvid) {
        (Some(criteria), _) => {
            let criteria = criteria.trim();
            if criteria.is_empty() {
                return Err(UsageError(
                    "--where is empty: give COQL criteria (e.g. \"Lead_Status = 'Junk Lead'\"); to select every record say \"id is not null\"".into(),
                )
                .into());
            }
            Query::Coql { criteria }
        }
        (None, Some(cvid)) => {
            if !super::is_record_id(cvid) {
                return Err(UsageError(format!(
                    "--cvid {cvid:?} is not a view ID ({})",
                    super::RECORD_ID_RULE
                ))
                .into());
            }
            Query::View { cvid }
        }
        (None, None) => return Err(UsageError("give --where or --cvid".into()).into()),
    };
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
    match &query {
        Query::Coql { criteria } => {
            let check =
                format!("select id from {module} where ({criteria}) order by id asc limit 1");
            client
                .coql(&slot, &check, 1)
                .await
                .map_err(|e| refused(&e, &query))?;
        }
        Query::View { cvid } => {
            client
                .view_page(&slot, module, cvid, &ViewCursor::Page(1))
                .await
                .map_err(|e| refused(&e, &query))?;
        }
    }

    if opts.preview {
        let result = preview(&client, &slot, &opts, &query).await;
        drop(slot);
        keep_credits(&config, &client).await;
        return result;
    }

    let store = super::open_store(&config).await?;
    let template = RequestTemplate::delete(module, !opts.no_workflow);
    let wanted = NewSelection {
        module: module.clone(),
        operation: template.operation,
        method: query.method(),
        source: Some(query.source(module)),
        source_hash: Some(query.hash(module)),
        shape: Some(template.shape()),
        wf_trigger: template.wf_trigger,
        strategy: template.strategy,
        os_user: crate::store::this_user(),
        host: crate::store::this_host(),
    };
    let (selection, mut cursor, mut pages) = match store.unfinished_selection(&wanted).await? {
        Some(earlier) => {
            store.resume_selection(earlier.id).await?;
            super::enqueue::say_resuming(
                &earlier,
                &format!("{} page(s) already stored", earlier.pages),
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
            let (ids, next) = fetch(&client, &slot, module, &query, cursor.as_deref()).await?;
            let mut enqueuer = store
                .begin_enqueue_into(selection, true, opts.again)
                .await?;
            let mut chunk = crate::store::IdChunk::with_capacity(ids.len());
            for id in &ids {
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
    let released = super::enqueue::release(&store, selection, queued).await?;
    store.close().await;
    let deleted = if already_deleted > 0 {
        format!(", {already_deleted} already deleted by zdel (--again sends them again)")
    } else {
        String::new()
    };
    quietly_on_a_closed_pipe(writeln!(
        std::io::stdout(),
        "selected {found} record(s) of {module} in {pages} page(s); queued {queued} for delete{deleted}; selection {selection}"
    ))?;
    if released.is_none() {
        eprintln!(
            "zdel: interrupted while releasing selection {selection}: every ID is in; the next zdel serve or drain releases the rest"
        );
        return Ok(ExitCode::from(super::exit::INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Output to a pipe closed early (`| head`) ends the command quietly; the
/// process keeps Rust's ignored SIGPIPE, since it holds Zoho's sockets.
fn quietly_on_a_closed_pipe(written: std::io::Result<()>) -> anyhow::Result<()> {
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The cursor of a selection whose pages are all stored.
const DONE: &str = "done";

/// `--preview`: the count (by paging the IDs, nothing stored) and, for a
/// query, a sample with the `--show` fields.
async fn preview(
    client: &ZohoClient,
    slot: &crate::zoho::CallSlot,
    opts: &Opts,
    query: &Query<'_>,
) -> anyhow::Result<ExitCode> {
    let module = &opts.module;
    let mut fields = vec!["id".to_string()];
    fields.extend(opts.show.iter().filter(|f| *f != "id").cloned());
    let shown = match query {
        Query::Coql { criteria } => {
            let sample = opts.sample.clamp(1, COQL_PAGE);
            let text = format!(
                "select {} from {module} where ({criteria}) order by id asc limit {sample}",
                fields.join(", ")
            );
            client
                .coql(slot, &text, sample)
                .await
                .map_err(|e| refused(&e, query))?
        }
        Query::View { .. } => CoqlPage::default(),
    };
    let (mut count, mut calls) = (0u64, 0u64);
    let mut cursor: Option<String> = None;
    while cursor.as_deref() != Some(DONE) {
        let (ids, next) = fetch(client, slot, module, query, cursor.as_deref()).await?;
        calls += 1;
        count += ids.len() as u64;
        cursor = Some(next);
    }
    let mut out = std::io::stdout().lock();
    quietly_on_a_closed_pipe((|| {
        writeln!(
            out,
            "{count} record(s) of {module} match {} (counted now: {calls} call(s), {} credit(s); nothing was queued)",
            query.describe(),
            calls * query.page_credits()
        )?;
        writeln!(
            out,
            "a delete would take about {} call(s) of 100 IDs ({} credit(s))",
            count.div_ceil(100),
            count.div_ceil(100)
        )?;
        print_sample(&mut out, &fields, &shown)
    })())?;
    Ok(ExitCode::SUCCESS)
}

fn print_sample(out: &mut impl Write, fields: &[String], page: &CoqlPage) -> std::io::Result<()> {
    if page.rows.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nthe first {}:", page.rows.len())?;
    writeln!(out, "  {}", fields.join("\t"))?;
    for row in &page.rows {
        let cells: Vec<String> = fields
            .iter()
            .map(|f| match row.get(f) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => "-".to_string(),
                Some(other) => other.to_string(),
            })
            .collect();
        writeln!(out, "  {}", cells.join("\t"))?;
    }
    Ok(())
}

/// A call, tried again after a transient failure (timeout, 5xx, 429), up
/// to [`MAX_TRIES`] times with a growing pause.
async fn with_retries<T, F, Fut>(mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ZohoError>>,
{
    let mut tries = 0;
    loop {
        match call().await {
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
                tracing::warn!(error = %e, try_no = tries, "a page failed; asking again");
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("a page failed")),
        }
    }
}

/// A query Zoho refused: its code and details, and that nothing was stored.
fn refused(e: &ZohoError, query: &Query<'_>) -> anyhow::Error {
    let what = match query {
        Query::Coql { criteria } => format!("the query for --where {criteria:?}"),
        Query::View { cvid } => format!("--cvid {cvid}"),
    };
    match e {
        ZohoError::Rejected { .. } => {
            UsageError(format!("Zoho refused {what}: {e}; nothing was stored")).into()
        }
        other => anyhow::anyhow!("{other}; nothing was stored"),
    }
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
