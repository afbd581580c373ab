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

use super::{MAX_TRIES, UsageError};
use crate::config::Config;
use crate::store::{NewSelection, RequestTemplate, SelectionMethod, Store};
use crate::zoho::criteria::{
    Expr, Untranslatable, bulk_criteria, parse_criteria, search_criteria, selects_everything,
};
use crate::zoho::{
    BULK_JOB_CREDITS, BULK_PAGE, BulkFrom, BulkState, COQL_PAGE, CoqlPage, CountOf, VIEW_PAGE,
    VIEW_PAGE_CREDITS, ViewCursor, ZohoClient, ZohoError, coql_credits,
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
    /// How the IDs are fetched: `page` (COQL pages of 2,000, or a view's
    /// pages of 200), `bulk` (Bulk Read jobs of up to 200,000, as a ZIP),
    /// or `auto`: Bulk Read when Zoho's count says it costs under half the
    /// credits of paging, or a view has more than 100,000 records.
    #[arg(long, value_enum, default_value_t = Via::Auto)]
    via: Via,
    /// Show the calls the selection and the deletion would make and their
    /// credits, and queue nothing.
    #[arg(long, conflicts_with = "preview")]
    dry_run: bool,
}

/// How a selection's IDs are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Via {
    Page,
    Bulk,
    Auto,
}

/// What a selection pages through.
enum Query<'a> {
    /// `--where`: COQL, paged by `id > last`.
    Coql { criteria: &'a str },
    /// `--cvid`: Get Records of a custom view, by page number then token.
    View { cvid: &'a str },
}

impl Query<'_> {
    /// What `zdel selections` shows as the source.
    fn source(&self, module: &str, bulk: bool) -> String {
        let by = if bulk { "bulk read: " } else { "" };
        match self {
            Query::Coql { criteria } => format!("{by}select id from {module} where ({criteria})"),
            Query::View { cvid } => format!("{by}view {cvid} of {module}"),
        }
    }

    fn method(&self, bulk: bool) -> SelectionMethod {
        match self {
            _ if bulk => SelectionMethod::Bulk,
            Query::Coql { .. } => SelectionMethod::Coql,
            Query::View { .. } => SelectionMethod::Cvid,
        }
    }

    /// Records one page holds.
    fn page_size(&self) -> u64 {
        match self {
            Query::Coql { .. } => u64::from(COQL_PAGE),
            Query::View { .. } => u64::from(VIEW_PAGE),
        }
    }

    /// Credits paging through `n` records would cost.
    fn paging_credits(&self, n: u64) -> u64 {
        n.div_ceil(self.page_size()).max(1) * self.page_credits()
    }

    /// The criteria read (`None`: every record), for `api` to be told them.
    fn criteria(&self, api: &'static str) -> Result<Option<Expr>, Untranslatable> {
        let Query::Coql { criteria } = self else {
            return Ok(None);
        };
        let expr = parse_criteria(criteria).map_err(|e| Untranslatable {
            api,
            what: format!("criteria zdel cannot read ({})", e.message),
        })?;
        Ok((!selects_everything(&expr)).then_some(expr))
    }

    /// How Record Count is asked for these records, or why it cannot be.
    fn count_of(&self) -> Result<(Option<String>, Option<&str>), Untranslatable> {
        let criteria = match self.criteria("Record Count")? {
            Some(expr) => Some(search_criteria(&expr)?),
            None => None,
        };
        let cvid = match self {
            Query::View { cvid } => Some(*cvid),
            Query::Coql { .. } => None,
        };
        Ok((criteria, cvid))
    }

    /// The criteria as Bulk Read takes them (`None`: every record / the view).
    fn bulk_criteria(&self) -> Result<Option<serde_json::Value>, Untranslatable> {
        self.criteria("Bulk Read")?
            .map(|expr| bulk_criteria(&expr))
            .transpose()
    }

    /// What identifies the selection for a rerun.
    fn hash(&self, module: &str) -> String {
        let text = match self {
            Query::Coql { criteria } => format!("coql\n{module}\n{criteria}"),
            Query::View { cvid } => format!("cvid\n{module}\n{cvid}"),
        };
        super::sha256_hex(text.as_bytes())
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

/// Credits Bulk Read would cost for `n` records: a job a 200,000, each
/// with its polls (about [`BULK_POLLS`]) and a download.
fn bulk_credits(n: u64) -> u64 {
    n.div_ceil(BULK_PAGE).max(1) * (BULK_JOB_CREDITS + BULK_POLLS + 1)
}

/// Polls a Bulk Read job is expected to take, for the estimate.
const BULK_POLLS: u64 = 10;

/// Records a view gives through Get Records at most (Zoho's limit).
const VIEW_PAGING_LIMIT: u64 = 100_000;

/// `--via auto`: Bulk Read when it costs less than half the credits of
/// paging (its job's wait has to buy something), or when a view holds more
/// than Get Records can page through.
fn auto_picks_bulk(query: &Query<'_>, count: u64) -> bool {
    let view_too_big = matches!(query, Query::View { .. }) && count > VIEW_PAGING_LIMIT;
    view_too_big || 2 * bulk_credits(count) < query.paging_credits(count)
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
    let store = super::open_store(&config).await?;
    let module = &super::modules::check(&config, &store, &opts.module).await?;
    let slot = client.acquire_slot().await;

    // 1. The check: a query Zoho refuses stores nothing.
    match &query {
        Query::Coql { criteria } => {
            let check =
                format!("select id from {module} where ({criteria}) order by id asc limit 1");
            super::retrying(|| client.coql(&slot, &check, 1))
                .await
                .map_err(|e| refused(&e, &query))?;
        }
        Query::View { cvid } => {
            super::retrying(|| client.view_page(&slot, module, cvid, &ViewCursor::Page(1)))
                .await
                .map_err(|e| refused(&e, &query))?;
        }
    }

    if opts.preview || opts.dry_run {
        let result = preview(&client, &slot, module, &opts, &query).await;
        drop(slot);
        store.close().await;
        keep_credits(&config, &client).await;
        return result;
    }

    let template = RequestTemplate::delete(module, !opts.no_workflow);
    let wanted = |bulk: bool| NewSelection {
        module: module.clone(),
        operation: template.operation,
        method: query.method(bulk),
        source: Some(query.source(module, bulk)),
        source_hash: Some(query.hash(module)),
        shape: Some(template.shape()),
        wf_trigger: template.wf_trigger,
        strategy: template.strategy,
        os_user: crate::store::this_user(),
        host: crate::store::this_host(),
        how: "selection".into(),
        config_hash: Some(super::config_hash(&config)),
    };
    // An unfinished selection of the same query goes on the way it began.
    let mut earlier = None;
    for bulk in [false, true] {
        if let Some(found) = store.unfinished_selection(&wanted(bulk)).await? {
            earlier = Some((found, bulk));
            break;
        }
    }
    let (selection, mut cursor, mut pages, bulk) = match earlier {
        Some((earlier, bulk)) => {
            store.resume_selection(earlier.id).await?;
            super::enqueue::say_resuming(
                &earlier,
                &format!("{} page(s) already stored", earlier.pages),
            );
            (earlier.id, earlier.cursor, earlier.pages, bulk)
        }
        None => {
            let bulk = match opts.via {
                Via::Page => false,
                Via::Bulk => true,
                Via::Auto => match count(&client, &slot, module, &query).await {
                    Ok(n) => auto_picks_bulk(&query, n),
                    Err(e) => {
                        tracing::info!(error = %e, "no count for --via auto: paging");
                        false
                    }
                },
            };
            let id = store
                .begin_selection(&wanted(bulk), crate::clock::now_ms())
                .await?;
            (id, None, 0, bulk)
        }
    };
    let bulk_query = if bulk {
        match query.bulk_criteria() {
            Ok(criteria) => Some(criteria),
            Err(e) => {
                let _ = store
                    .finish_selection(selection, false, 0, 0, crate::clock::now_ms())
                    .await;
                store.close().await;
                return Err(UsageError(format!(
                    "--via bulk: {e}; use --via page (COQL says it), nothing was stored"
                ))
                .into());
            }
        }
    } else {
        None
    };

    // 3. The snapshot, page by page, each stored before the next is asked.
    let fetched = async {
        if let Some(criteria) = &bulk_query {
            let bulk = BulkSnapshot {
                client: &client,
                slot: &slot,
                store: &store,
                template: &template,
                selection,
                again: opts.again,
                module,
                criteria: criteria.as_ref(),
                cvid: match &query {
                    Query::View { cvid } => Some(*cvid),
                    Query::Coql { .. } => None,
                },
                poll: std::time::Duration::from_millis(config.select.bulk_poll_interval_ms.max(1)),
                max_wait: std::time::Duration::from_secs(config.select.bulk_max_wait_s),
            };
            return bulk.run(&mut cursor, &mut pages).await;
        }
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
    let how = if bulk {
        "by Bulk Read".to_string()
    } else {
        format!("in {pages} page(s)")
    };
    let deleted = if already_deleted > 0 {
        format!(", {already_deleted} already deleted by zdel (--again sends them again)")
    } else {
        String::new()
    };
    quietly_on_a_closed_pipe(writeln!(
        std::io::stdout(),
        "selected {found} record(s) of {module} {how}; queued {queued} for delete{deleted}; selection {selection}"
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

/// `--preview` and `--dry-run`: the count (Zoho's Record Count, or by
/// paging the IDs when Record Count cannot say the criteria), the calls
/// selecting and deleting them would make and their credits, and (preview,
/// for a query) a sample with the `--show` fields. Nothing is stored.
async fn preview(
    client: &ZohoClient,
    slot: &crate::zoho::CallSlot,
    module: &str,
    opts: &Opts,
    query: &Query<'_>,
) -> anyhow::Result<ExitCode> {
    let mut fields = vec!["id".to_string()];
    fields.extend(opts.show.iter().filter(|f| *f != "id").cloned());
    let shown = match query {
        Query::Coql { criteria } if opts.preview => {
            let sample = opts.sample.clamp(1, COQL_PAGE);
            let text = format!(
                "select {} from {module} where ({criteria}) order by id asc limit {sample}",
                fields.join(", ")
            );
            super::retrying(|| client.coql(slot, &text, sample))
                .await
                .map_err(|e| refused(&e, query))?
        }
        _ => CoqlPage::default(),
    };
    let (count, how) = match count(client, slot, module, query).await {
        Ok(n) => (
            n,
            "Zoho's Record Count, 1 credit; it may be 1-10 minutes stale, the snapshot counts them exactly".to_string(),
        ),
        Err(why) => {
            let (mut n, mut calls) = (0u64, 0u64);
            let mut cursor: Option<String> = None;
            while cursor.as_deref() != Some(DONE) {
                let (ids, next) = fetch(client, slot, module, query, cursor.as_deref()).await?;
                calls += 1;
                n += ids.len() as u64;
                cursor = Some(next);
            }
            (
                n,
                format!(
                    "counted now: {calls} call(s), {} credit(s); no Record Count: {why:#}",
                    calls * query.page_credits()
                ),
            )
        }
    };
    let paging = match query {
        Query::Coql { .. } => "COQL call(s) of 2,000",
        Query::View { .. } => "Get Records call(s) of 200",
    };
    let pages = count.div_ceil(query.page_size()).max(1);
    let jobs = count.div_ceil(BULK_PAGE).max(1);
    let auto = if auto_picks_bulk(query, count) {
        "Bulk Read"
    } else {
        "paging"
    };
    let mut out = std::io::stdout().lock();
    quietly_on_a_closed_pipe((|| {
        writeln!(
            out,
            "{count} record(s) of {module} match {} ({how})",
            query.describe(),
        )?;
        writeln!(
            out,
            "selecting them: {pages} {paging} ({} credit(s)) with --via page, or {jobs} Bulk Read job(s) (about {} credit(s)) with --via bulk; --via auto takes {auto}",
            query.paging_credits(count),
            bulk_credits(count),
        )?;
        writeln!(
            out,
            "deleting them: {} DELETE call(s) of 100 IDs ({} credit(s))",
            count.div_ceil(100),
            count.div_ceil(100)
        )?;
        writeln!(out, "nothing was queued")?;
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
async fn with_retries<T, F, Fut>(call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ZohoError>>,
{
    super::retrying(call)
        .await
        .map_err(|e| anyhow::Error::new(e).context("a page failed"))
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

/// Zoho's Record Count of the query's records (1 credit; Zoho says it may
/// be 1–10 minutes stale).
async fn count(
    client: &ZohoClient,
    slot: &crate::zoho::CallSlot,
    module: &str,
    query: &Query<'_>,
) -> anyhow::Result<u64> {
    let (criteria, cvid) = query.count_of()?;
    let of = match (&criteria, cvid) {
        (Some(c), _) => CountOf::Criteria(c),
        (None, Some(v)) => CountOf::View(v),
        (None, None) => CountOf::All,
    };
    with_retries(|| client.record_count(slot, module, of)).await
}

/// Where a Bulk Read selection is, as stored in `selections.cursor`:
/// `bulk|from=page:1` (the next job starts there), then `…|job=J|rows=N`
/// once job J is created (its id stored before it is polled), N of its
/// rows stored; [`DONE`] after the last job.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BulkCursor {
    from: BulkFrom,
    job: Option<String>,
    rows: u64,
}

impl BulkCursor {
    fn start() -> BulkCursor {
        BulkCursor {
            from: BulkFrom::Page(1),
            job: None,
            rows: 0,
        }
    }

    fn to_text(&self) -> String {
        let from = match &self.from {
            BulkFrom::Page(n) => format!("page:{n}"),
            BulkFrom::Token(t) => format!("token:{t}"),
        };
        match &self.job {
            Some(job) => format!("bulk|from={from}|job={job}|rows={}", self.rows),
            None => format!("bulk|from={from}"),
        }
    }

    fn from_text(text: &str) -> Option<BulkCursor> {
        let mut parts = text.split('|');
        if parts.next() != Some("bulk") {
            return None;
        }
        let mut cursor = BulkCursor::start();
        for part in parts {
            let (key, value) = part.split_once('=')?;
            match key {
                "from" => {
                    cursor.from = if let Some(n) = value.strip_prefix("page:") {
                        BulkFrom::Page(n.parse().ok()?)
                    } else {
                        BulkFrom::Token(value.strip_prefix("token:")?.to_string())
                    }
                }
                "job" => cursor.job = Some(value.to_string()),
                "rows" => cursor.rows = value.parse().ok()?,
                _ => return None,
            }
        }
        Some(cursor)
    }
}

/// IDs stored a transaction while a Bulk Read result is read.
const BULK_CHUNK: usize = 10_000;
/// Downloads Zoho allows a minute.
const DOWNLOADS_PER_MINUTE: usize = 10;

/// A selection by Bulk Read jobs: create a job (its id stored at once),
/// poll it, stream its ZIP to a file, store its IDs chunk by chunk with
/// the cursor, then the next job from the result's `next_page_token`.
struct BulkSnapshot<'a> {
    client: &'a ZohoClient,
    slot: &'a crate::zoho::CallSlot,
    store: &'a Store,
    template: &'a RequestTemplate,
    selection: i64,
    again: bool,
    module: &'a str,
    criteria: Option<&'a serde_json::Value>,
    cvid: Option<&'a str>,
    poll: std::time::Duration,
    max_wait: std::time::Duration,
}

impl BulkSnapshot<'_> {
    /// Store `cursor` (and `ids`) in one transaction; IDs already deleted.
    async fn store(&self, ids: Vec<String>, cursor: &BulkCursor) -> anyhow::Result<u64> {
        let mut enqueuer = self
            .store
            .begin_enqueue_into(self.selection, true, self.again)
            .await?;
        let mut chunk = crate::store::IdChunk::with_capacity(ids.len());
        for id in &ids {
            chunk.push(id);
        }
        let added = enqueuer.add_chunk(self.template, chunk).await?;
        enqueuer.record_page(&cursor.to_text()).await?;
        enqueuer.commit().await?;
        Ok(added.already_deleted)
    }

    async fn run(&self, cursor: &mut Option<String>, pages: &mut i64) -> anyhow::Result<u64> {
        let mut at = match cursor.as_deref() {
            None => BulkCursor::start(),
            Some(DONE) => return Ok(0),
            Some(text) => BulkCursor::from_text(text).ok_or_else(|| {
                anyhow::anyhow!(
                    "the stored cursor {text:?} is not a Bulk Read cursor: cancel the selection and start again"
                )
            })?,
        };
        let mut already_deleted = 0;
        let mut downloads: std::collections::VecDeque<std::time::Instant> = Default::default();
        loop {
            let job = match &at.job {
                Some(job) => job.clone(),
                None => {
                    let job = with_retries(|| {
                        self.client.create_bulk_read(
                            self.slot,
                            self.module,
                            self.criteria,
                            self.cvid,
                            &at.from,
                        )
                    })
                    .await?;
                    at.job = Some(job.clone());
                    at.rows = 0;
                    already_deleted += self.store(Vec::new(), &at).await?;
                    *pages += 1;
                    eprintln!("zdel: Bulk Read job {job} created; waiting for Zoho to finish it");
                    job
                }
            };
            // Poll until it ends, or the wait runs out (the job id is kept).
            let started = std::time::Instant::now();
            let result = loop {
                let polled = with_retries(|| self.client.bulk_read_job(self.slot, &job)).await;
                match polled {
                    Ok(j) if j.state == BulkState::Completed => match j.result {
                        Some(result) => break result,
                        None => anyhow::bail!(
                            "Bulk Read job {job} is COMPLETED but Zoho gave no result; run the same command again"
                        ),
                    },
                    Ok(j) if j.state == BulkState::Failure => {
                        // A new job from the same place next time.
                        at.job = None;
                        self.store(Vec::new(), &at).await?;
                        anyhow::bail!(
                            "Zoho says Bulk Read job {job} failed (FAILURE); run the same command again to start a new job"
                        );
                    }
                    Ok(_) => {}
                    Err(e) if is_gone(&e) => {
                        // Expired or unknown: a new job, its rows deduplicated.
                        at.job = None;
                        self.store(Vec::new(), &at).await?;
                        anyhow::bail!(
                            "Zoho no longer knows Bulk Read job {job} ({e:#}); run the same command again to start a new one"
                        );
                    }
                    Err(e) => return Err(e),
                }
                if started.elapsed() > self.max_wait {
                    anyhow::bail!(
                        "Bulk Read job {job} has not finished after {} s (select.bulk_max_wait_s); its id is kept: run the same command again to go on waiting",
                        self.max_wait.as_secs()
                    );
                }
                tokio::time::sleep(self.poll).await;
            };
            // Under Zoho's 10 downloads a minute, whatever else this run did.
            while downloads.len() >= DOWNLOADS_PER_MINUTE {
                let oldest = downloads[0];
                let wait = std::time::Duration::from_secs(60).saturating_sub(oldest.elapsed());
                if wait.is_zero() {
                    downloads.pop_front();
                } else {
                    tokio::time::sleep(wait).await;
                }
            }
            downloads.push_back(std::time::Instant::now());
            let file = self.download(&job).await?;
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<String>>(2);
            let skip = at.rows;
            let reading_job = job.clone();
            let reader = tokio::task::spawn_blocking(move || {
                crate::zoho::read_result_ids(file, &reading_job, skip, BULK_CHUNK, |ids| {
                    tx.blocking_send(ids)
                })
            });
            while let Some(ids) = rx.recv().await {
                at.rows += ids.len() as u64;
                already_deleted += self.store(ids, &at).await?;
                *pages += 1;
            }
            match reader.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(anyhow::Error::new(e).context("a Bulk Read result")),
                Err(e) => anyhow::bail!("reading a Bulk Read result stopped: {e}"),
            }
            at = match result.next {
                Some(from) => BulkCursor {
                    from,
                    job: None,
                    rows: 0,
                },
                None => {
                    let mut enqueuer = self
                        .store
                        .begin_enqueue_into(self.selection, true, self.again)
                        .await?;
                    enqueuer.record_page(DONE).await?;
                    enqueuer.commit().await?;
                    *cursor = Some(DONE.to_string());
                    return Ok(already_deleted);
                }
            };
            self.store(Vec::new(), &at).await?;
            *cursor = Some(at.to_text());
        }
    }

    /// The job's ZIP, streamed into an anonymous temporary file.
    async fn download(&self, job: &str) -> anyhow::Result<std::fs::File> {
        use tokio::io::AsyncWriteExt;
        let mut tries = 0;
        loop {
            let mut download =
                with_retries(|| self.client.download_bulk_read(self.slot, job)).await?;
            let file = tempfile::tempfile().map_err(|e| {
                anyhow::anyhow!(
                    "cannot make a temporary file for a Bulk Read result ({e}); check TMPDIR's disk"
                )
            })?;
            let mut out = tokio::fs::File::from_std(file.try_clone()?);
            let written = async {
                while let Some(chunk) = download.chunk().await? {
                    out.write_all(&chunk).await?;
                }
                out.flush().await?;
                anyhow::Ok(())
            }
            .await;
            match written {
                Ok(()) => return Ok(file),
                Err(e) if tries + 1 < MAX_TRIES && e.downcast_ref::<ZohoError>().is_some() => {
                    tries += 1;
                    tracing::warn!(error = %e, "a Bulk Read download broke off; downloading again");
                }
                Err(e) => {
                    return Err(e.context(format!("downloading Bulk Read job {job}'s result")));
                }
            }
        }
    }
}

/// A job Zoho no longer knows (404, or its code for a missing resource).
fn is_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ZohoError>(),
            Some(z) if z.http_status() == Some(404)
        )
    })
}
