//! `zdel enqueue`: queue record IDs from `--ids`, a file, a Zoho export CSV, or stdin, for any
//! operation: delete records (plain or mass delete), delink related records
//! from one parent, delete contact roles, delete record photos.
//!
//! `--csv` reads a Zoho export instead (see `export_csv.rs`): the same two
//! passes, the ID taken from the column named as the record ID.
//!
//! Input of any size is streamed in constant memory, in two passes:
//!
//! 1. **validate** every line (stdin is copied to a private temp file as it
//!    is read). A bad line anywhere stops the command with the line number,
//!    exit status 2, and nothing queued.
//! 2. **insert** in transactions of [`COMMIT_IDS`] IDs, so a 5-million-line
//!    file never holds SQLite's write lock for long (the daemon keeps
//!    deleting meanwhile) and the WAL stays small. The rows are *staged*:
//!    no worker claims them until every ID is in; then the selection is
//!    marked complete and released, [`RELEASE_ROWS`] rows a transaction.
//!
//! If pass 2 is interrupted (Ctrl-C, SIGTERM, a crash, a full disk), what
//! was committed stays staged, none of it claimable, and the command says
//! so: running the same command again (same input, by SHA-256, and the same
//! options) resumes the selection, skipping the IDs it already holds;
//! `zdel cancel --selection N` drops it. A UTF-8 BOM, CRLF line endings,
//! blank lines and `#` comments are accepted. IDs already queued (including
//! repeats within the input) are skipped and counted, and so are IDs zdel
//! already deleted ("already deleted on DATE"), unless `--again`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::UsageError;
use crate::config::Config;
use crate::store::{
    Added, DelinkParent, IdChunk, NewSelection, Operation, RequestTemplate, SelectionMethod,
    Strategy,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OperationArg {
    /// Delete the records (DELETE /{module}?ids=…).
    Delete,
    /// Unlink related records from one parent (DELETE /{module}/{record}/{related_list}?ids=…).
    Delink,
    /// Delete contact roles (DELETE /Contacts/roles?ids=…); the IDs are role IDs.
    ContactRole,
    /// Delete the records' photos (DELETE /{module}/{id}/photo, one call each).
    Photo,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StrategyArg {
    /// DELETE, 100 IDs a call.
    Delete,
    /// POST …/actions/mass_delete, 500 IDs a call (not with --no-workflow).
    MassDelete,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true))]
pub struct Opts {
    /// The module API name, e.g. Leads, Contacts, Custom_Module1 (not needed for contact-role).
    #[arg(long, value_parser = super::parse_module)]
    module: Option<String>,
    /// Record IDs, comma-separated.
    #[arg(long, group = "input", value_name = "ID,ID,...")]
    ids: Option<String>,
    /// A file with one ID per line, or - for stdin.
    #[arg(long, group = "input", value_name = "PATH")]
    file: Option<PathBuf>,
    /// A CSV file exported from Zoho (header row; the ID column is found by
    /// name: "Record Id", "id", "<Module> Id"; a zcrm_ prefix is stripped),
    /// or - for stdin.
    #[arg(long, group = "input", value_name = "PATH")]
    csv: Option<PathBuf>,
    /// With --csv: the column holding the record IDs, by its header.
    #[arg(long, requires = "csv", value_name = "NAME")]
    id_column: Option<String>,
    /// Delete without running workflow rules (wf_trigger=false).
    #[arg(long)]
    no_workflow: bool,
    /// What to do with the IDs.
    #[arg(long, value_enum, default_value = "delete")]
    operation: OperationArg,
    /// For delink: the parent record the IDs are unlinked from.
    #[arg(long, value_name = "ID")]
    record: Option<String>,
    /// For delink: the related list's API name, e.g. Contacts, Products.
    #[arg(long, value_parser = super::parse_module, value_name = "NAME")]
    related_list: Option<String>,
    /// For delete: how to send them (default: the config's zoho.delete_strategy).
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
    /// Queue IDs zdel already deleted too (normally skipped and counted as
    /// "already deleted": Zoho would answer that the record is gone).
    #[arg(long)]
    again: bool,
}

/// Check the options fit together and build what every queued ID shares.
fn template(opts: &Opts) -> Result<RequestTemplate, UsageError> {
    let operation = match opts.operation {
        OperationArg::Delete => Operation::Delete,
        OperationArg::Delink => Operation::Delink,
        OperationArg::ContactRole => Operation::DeleteContactRole,
        OperationArg::Photo => Operation::DeletePhoto,
    };
    let module = match (operation, &opts.module) {
        (Operation::DeleteContactRole, None) => "Contacts".to_string(),
        (Operation::DeleteContactRole, Some(m)) if m != "Contacts" => {
            return Err(UsageError(
                "contact roles belong to Contacts: drop --module or use --module Contacts".into(),
            ));
        }
        (_, Some(m)) => m.clone(),
        (_, None) => {
            return Err(UsageError(
                "--module is required (e.g. --module Leads)".into(),
            ));
        }
    };
    let parent = match (operation, &opts.record, &opts.related_list) {
        (Operation::Delink, Some(record), Some(list)) => {
            if !super::is_record_id(record) {
                return Err(UsageError(format!(
                    "--record {record:?} is not a record ID ({})",
                    super::RECORD_ID_RULE
                )));
            }
            Some(DelinkParent {
                record_id: record.clone(),
                related_list: list.clone(),
            })
        }
        (Operation::Delink, _, _) => {
            return Err(UsageError(
                "delink needs --record (the parent) and --related-list".into(),
            ));
        }
        (_, None, None) => None,
        (_, _, _) => {
            return Err(UsageError(
                "--record and --related-list go with --operation delink only".into(),
            ));
        }
    };
    let strategy = match (operation, opts.strategy) {
        (_, None) => Strategy::Auto,
        (Operation::Delete, Some(StrategyArg::Delete)) => Strategy::Delete,
        (Operation::Delete, Some(StrategyArg::MassDelete)) if opts.no_workflow => {
            return Err(UsageError("--strategy mass-delete cannot suppress workflow rules: drop --no-workflow, or use --strategy delete".into()));
        }
        (Operation::Delete, Some(StrategyArg::MassDelete)) => Strategy::MassDelete,
        (_, Some(_)) => {
            return Err(UsageError(
                "--strategy goes with --operation delete only".into(),
            ));
        }
    };
    Ok(RequestTemplate {
        operation,
        module,
        wf_trigger: !opts.no_workflow,
        strategy,
        parent,
    })
}

/// IDs inserted per statement: large enough to be fast, small enough to
/// keep memory flat whatever the input size.
const CHUNK_IDS: usize = 25_000;
/// IDs per transaction in pass 2: each commit holds the write lock for a
/// fraction of a second, well inside the daemon's busy timeout.
pub const COMMIT_IDS: u64 = 50_000;

/// Where the IDs come from.
enum Source {
    Ids(String),
    File(PathBuf),
    /// Stdin, spooled during validation.
    Stdin(tempfile::NamedTempFile),
}

impl Source {
    fn open(&self) -> anyhow::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Source::Ids(ids) => Box::new(std::io::Cursor::new(ids.replace(',', "\n").into_bytes())),
            Source::File(path) => Box::new(open_input(path)?),
            Source::Stdin(spool) => Box::new(std::fs::File::open(spool.path())?),
        })
    }
}

/// Bad lines are listed up to this many; the rest are counted.
const BAD_LINES_SHOWN: usize = 20;

/// Bad input lines, gathered so they are all reported in one error: the
/// first [`BAD_LINES_SHOWN`] by line number and value, then how many more.
#[derive(Default)]
struct BadLines {
    shown: Vec<String>,
    total: u64,
}

impl BadLines {
    fn add(&mut self, what: impl FnOnce() -> String) {
        self.total += 1;
        if self.shown.len() < BAD_LINES_SHOWN {
            self.shown.push(what());
        }
    }

    fn any(&self) -> bool {
        self.total > 0
    }

    /// The error for `name`, if anything was bad.
    fn into_result(self, name: &str) -> anyhow::Result<()> {
        if self.total == 0 {
            return Ok(());
        }
        let more = self.total - self.shown.len() as u64;
        let tail = if more > 0 {
            format!("\n  … and {more} more bad line(s)")
        } else {
            String::new()
        };
        Err(UsageError(format!(
            "{name}: {} bad line(s), nothing was queued (a record ID is {}):\n  {}{tail}",
            self.total,
            super::RECORD_ID_RULE,
            self.shown.join("\n  ")
        ))
        .into())
    }
}

/// What the input is: one ID per line, or a Zoho export CSV.
#[derive(Clone)]
enum Format {
    Lines,
    Csv {
        module: String,
        id_column: Option<String>,
    },
}

/// Read `reader` in `format`, calling `each` with every valid ID; bad
/// lines are all reported at the end ([`BadLines`]).
fn for_each_input_id(
    reader: impl Read,
    format: &Format,
    name: &str,
    progress: &ProgressBar,
    spool: Option<&mut dyn Write>,
    each: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    match format {
        Format::Lines => for_each_id(reader, name, progress, spool, each),
        Format::Csv { module, id_column } => {
            let reader = Tee {
                inner: reader,
                copy: spool,
            };
            for_each_csv_id(reader, module, id_column.as_deref(), name, progress, each)
        }
    }
}

/// A reader that hashes what it reads (SHA-256: the selection's source hash).
struct Hashing<R> {
    inner: R,
    hash: sha2::Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hash, &buf[..n]);
        Ok(n)
    }
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hash: <sha2::Sha256 as sha2::Digest>::new(),
        }
    }

    fn hex(self) -> String {
        super::hex(&sha2::Digest::finalize(self.hash))
    }
}

/// A reader that copies what it reads (stdin into its spool file).
struct Tee<'a, R> {
    inner: R,
    copy: Option<&'a mut dyn Write>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(copy) = self.copy.as_mut() {
            copy.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// A Zoho export's rows, calling `each` with every row's record ID.
fn for_each_csv_id(
    reader: impl Read,
    module: &str,
    id_column: Option<&str>,
    name: &str,
    progress: &ProgressBar,
    mut each: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut rows = super::export_csv::reader(reader);
    let headers = rows
        .headers()
        .map_err(|e| UsageError(format!("{name}: could not read the CSV header: {e}")))?
        .clone();
    let columns =
        super::export_csv::id_columns(&headers, module, id_column, name).map_err(UsageError)?;
    let mut bad = BadLines::default();
    let mut record = csv::ByteRecord::new();
    let (mut count, mut reported) = (0u64, 0u64);
    loop {
        match rows.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                match e.kind() {
                    csv::ErrorKind::Io(io) => {
                        return Err(UsageError(format!("{name}: could not read: {io}")).into());
                    }
                    _ => bad.add(|| format!("line {line}: not CSV Zoho writes: {e}")),
                }
                continue;
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        let byte = record.position().map_or(0, |p| p.byte());
        if byte - reported >= 1 << 16 {
            progress.inc(byte - reported);
            reported = byte;
        }
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        count += 1;
        match super::export_csv::row_id(&record, &columns) {
            Ok(id) if !bad.any() => each(&id)?,
            Ok(_) => {}
            Err(why) => bad.add(|| format!("line {line}: {why}")),
        }
    }
    bad.into_result(name)?;
    Ok(count)
}

/// Read `reader` line by line, calling `each` with every valid ID. Bad
/// lines are all reported at the end, in one error: the first
/// [`BAD_LINES_SHOWN`] by line number and value, then how many more.
fn for_each_id(
    reader: impl Read,
    name: &str,
    progress: &ProgressBar,
    mut spool: Option<&mut dyn Write>,
    mut each: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut lines = BufReader::with_capacity(1 << 16, reader);
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut bad = BadLines::default();
    // The bar moves every 64 KiB: per line, its clock reads cost more than
    // validating the line.
    let mut unreported = 0u64;
    loop {
        line.clear();
        let n = lines
            .read_until(b'\n', &mut line)
            .map_err(|e| UsageError(format!("{name}: could not read: {e}")))?;
        if n == 0 {
            progress.inc(unreported);
            break;
        }
        unreported += n as u64;
        if unreported >= 1 << 16 {
            progress.inc(unreported);
            unreported = 0;
        }
        if let Some(out) = spool.as_mut() {
            out.write_all(&line)?;
        }
        line_no += 1;
        let Ok(text) = std::str::from_utf8(&line) else {
            bad.add(|| format!("line {line_no}: not valid UTF-8"));
            continue;
        };
        let text = if line_no == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        let id = text.trim();
        if id.is_empty() || id.starts_with('#') {
            continue;
        }
        if !super::is_record_id(id) {
            bad.add(|| format!("line {line_no}: {id:?}"));
            continue;
        }
        if !bad.any() {
            each(id)?;
        }
    }
    bad.into_result(name)?;
    Ok(line_no)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let mut template = template(&opts)?;
    let format = match &opts.csv {
        Some(_) => Format::Csv {
            module: template.module.clone(),
            id_column: opts.id_column.clone(),
        },
        None => Format::Lines,
    };
    let (mut source, name, size) = match (&opts.ids, opts.file.as_ref().or(opts.csv.as_ref())) {
        (Some(ids), _) => (
            Source::Ids(ids.clone()),
            "--ids".to_string(),
            ids.len() as u64,
        ),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let spool = tempfile::NamedTempFile::new()
                .map_err(|e| anyhow::anyhow!("could not create a temp file to hold stdin: {e}"))?;
            (Source::Stdin(spool), "stdin".to_string(), 0)
        }
        (None, Some(path)) => {
            let size = open_input(path)?.metadata().map(|m| m.len()).unwrap_or(0);
            (Source::File(path.clone()), path.display().to_string(), size)
        }
        (None, None) => return Err(UsageError("give --ids, --file or --csv".into()).into()),
    };

    // Pass 1: validate everything before queueing anything.
    let progress = bar(size, "checking");
    let mut seen = 0u64;
    let (checked, hash) = match &mut source {
        Source::Stdin(spool) => {
            let mut out = std::io::BufWriter::new(spool.as_file_mut());
            let mut input = Hashing::new(std::io::stdin().lock());
            let r = for_each_input_id(
                &mut input,
                &format,
                &name,
                &progress,
                Some(&mut out),
                |_| {
                    seen += 1;
                    Ok(())
                },
            );
            out.flush()?;
            (r, input.hex())
        }
        other => {
            let mut input = Hashing::new(other.open()?);
            let r = for_each_input_id(&mut input, &format, &name, &progress, None, |_| {
                seen += 1;
                Ok(())
            });
            (r, input.hex())
        }
    };
    progress.finish_and_clear();
    checked?;
    if seen == 0 {
        return Err(UsageError(format!("{name}: no record IDs found; nothing was queued")).into());
    }

    // Pass 2: insert in bounded transactions, staged, as one selection;
    // then release it.
    let store = super::open_store(&config).await?;
    template.module = match super::modules::check(&config, &store, &template.module).await {
        Ok(module) => module,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let wanted = NewSelection {
        module: template.module.clone(),
        operation: template.operation,
        method: match (&source, &format) {
            (Source::Ids(_), _) => SelectionMethod::Ids,
            (_, Format::Csv { .. }) => SelectionMethod::Csv,
            (_, Format::Lines) => SelectionMethod::File,
        },
        source: Some(name.clone()),
        source_hash: Some(hash),
        shape: Some(template.shape()),
        wf_trigger: template.wf_trigger,
        strategy: template.strategy,
        os_user: crate::store::this_user(),
        host: crate::store::this_host(),
        how: "cli".into(),
        config_hash: Some(super::config_hash(&config)),
    };
    let (selection, resumed) = match store.unfinished_selection(&wanted).await? {
        Some(earlier) => {
            store.resume_selection(earlier.id).await?;
            say_resuming(&earlier, "IDs it already staged are kept");
            (earlier.id, true)
        }
        None => (
            store
                .begin_selection(&wanted, crate::clock::now_ms())
                .await?,
            false,
        ),
    };
    let progress = bar(size.max(1), "queueing");
    // The reader thread gathers each chunk while the database inserts the
    // previous one.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<IdChunk>(4);
    let reader = source.open()?;
    let reader_name = name.clone();
    let reader_progress = progress.clone();
    let read_task = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let mut chunk = IdChunk::with_capacity(CHUNK_IDS);
        let lines = for_each_input_id(
            reader,
            &format,
            &reader_name,
            &reader_progress,
            None,
            |id| {
                chunk.push(id);
                if chunk.len() == CHUNK_IDS {
                    tx.blocking_send(std::mem::replace(
                        &mut chunk,
                        IdChunk::with_capacity(CHUNK_IDS),
                    ))
                    .map_err(|_| anyhow::anyhow!("the writer stopped"))?;
                }
                Ok(())
            },
        )?;
        if !chunk.is_empty() {
            tx.blocking_send(chunk)
                .map_err(|_| anyhow::anyhow!("the writer stopped"))?;
        }
        Ok(lines)
    });
    // An input that fits in one transaction goes in whole or not at all:
    // its rows need no staging. A bigger one is staged, and so is a resumed
    // one (its earlier run staged what it committed).
    let staging = seen > COMMIT_IDS || resumed;
    let mut added = Added::default();
    let written = async {
        let mut in_tx = 0u64;
        let mut enqueuer = store
            .begin_enqueue_into(selection, staging, opts.again)
            .await?;
        while let Some(ids) = rx.recv().await {
            in_tx += ids.len() as u64;
            added.absorb(enqueuer.add_chunk(&template, ids).await?);
            if staging && in_tx >= COMMIT_IDS {
                enqueuer.commit().await?;
                in_tx = 0;
                enqueuer = store
                    .begin_enqueue_into(selection, staging, opts.again)
                    .await?;
            }
        }
        if staging {
            enqueuer.commit().await?;
            anyhow::Ok(None)
        } else {
            let queued = enqueuer
                .commit_complete(seen, added.already_deleted, crate::clock::now_ms())
                .await?;
            anyhow::Ok(Some(queued))
        }
    };
    // Ctrl-C or SIGTERM stops the insert: the transaction in progress rolls
    // back, what was committed stays staged.
    let written = tokio::select! {
        written = written => Some(written),
        () = super::serve::wait_for_signal() => None,
    };
    // A failed write leaves the reader blocked on a full channel: closing
    // our end lets it stop at once instead of waiting for us forever.
    drop(rx);
    let read: anyhow::Result<u64> = read_task
        .await
        .map_err(|e| anyhow::anyhow!("reader failed: {e}"))?;
    progress.finish_and_clear();
    let now = crate::clock::now_ms();
    let Some(written) = written else {
        let staged = store
            .finish_selection(selection, false, seen, added.already_deleted, now)
            .await?;
        store.close().await;
        if staged == 0 {
            eprintln!(
                "zdel: interrupted: nothing of selection {selection} was queued; run the same command again"
            );
        } else {
            eprintln!(
                "zdel: interrupted: {staged} ID(s) of selection {selection} are staged and none is claimable; \
                 run the same command again to finish it (what is staged is kept), \
                 or `zdel cancel --selection {selection}` to drop them"
            );
        }
        return Ok(ExitCode::from(super::exit::INTERRUPTED));
    };
    // The writer's error says what happened; the reader then only saw it stop.
    let written = match (written, read) {
        (Ok(queued), Ok(_)) => queued,
        (Err(e), _) | (Ok(_), Err(e)) => {
            // Best effort: the failure may be the database's own.
            let staged = store
                .finish_selection(selection, false, seen, added.already_deleted, now)
                .await
                .map_or(String::from("what was committed"), |n| format!("{n} ID(s)"));
            return Err(e.context(if staging {
                format!(
                    "{staged} of selection {selection} stay staged, none claimable; run the same command again to finish it, or `zdel cancel --selection {selection}` to drop them"
                )
            } else {
                format!("nothing of selection {selection} was queued; run the same command again")
            }));
        }
    };
    let (queued, released) = match written {
        Some(queued) => (queued, Some(queued)),
        None => {
            let queued = store
                .finish_selection(selection, true, seen, added.already_deleted, now)
                .await?;
            (queued, release(&store, selection, queued).await?)
        }
    };
    let target = match &template.parent {
        Some(p) => format!("{} {} {}", template.module, p.record_id, p.related_list),
        None => template.module.clone(),
    };
    let deleted = match added.deleted_between {
        Some((first, last)) if added.already_deleted > 0 => format!(
            ", {} already deleted by zdel {} (--again sends them again)",
            added.already_deleted,
            on_dates(first, last)
        ),
        _ => String::new(),
    };
    println!(
        "queued {queued} of {seen} ID(s) for {} {target}{}{}; {} skipped (repeated in the input or already queued){deleted}; selection {selection}{}",
        template.operation.as_str(),
        if template.wf_trigger {
            ""
        } else {
            " without workflows"
        },
        if template.strategy == Strategy::MassDelete {
            " by mass delete"
        } else {
            ""
        },
        seen.saturating_sub(queued + added.already_deleted),
        if resumed { " (resumed)" } else { "" },
    );
    let code = match released {
        Some(_) => ExitCode::SUCCESS,
        None => {
            eprintln!(
                "zdel: interrupted while releasing selection {selection}: every ID is in; \
                 the next zdel serve or drain releases the rest"
            );
            ExitCode::from(super::exit::INTERRUPTED)
        }
    };
    note_unfinished(&store, selection).await;
    store.close().await;
    Ok(code)
}

/// Rowids walked per release transaction: a fraction of a second of the
/// write lock (bench/RESULTS.md), so a daemon beside it keeps working.
const RELEASE_ROWS: u32 = 50_000;

/// Make the complete selection's `queued` staged rows claimable, in
/// bounded transactions. `None` if a signal stopped it part-way (the
/// daemon's maintenance releases the rest).
pub(super) async fn release(
    store: &crate::store::Store,
    selection: i64,
    queued: u64,
) -> anyhow::Result<Option<u64>> {
    let progress = ProgressBar::with_draw_target(Some(queued), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("releasing {bar:40} {pos}/{len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let releasing = async {
        let mut released = 0u64;
        loop {
            let step = store.release_selection(selection, RELEASE_ROWS).await?;
            released += step.rows;
            progress.inc(step.rows);
            if step.done {
                return anyhow::Ok(released);
            }
        }
    };
    let released = tokio::select! {
        released = releasing => Some(released?),
        () = super::serve::wait_for_signal() => None,
    };
    progress.finish_and_clear();
    Ok(released)
}

/// On stderr: the unfinished selection `earlier` is taken up again.
pub(super) fn say_resuming(earlier: &crate::store::SelectionRow, kept: &str) {
    eprintln!(
        "resuming selection {} (started {} by {}@{}, {}): {kept}",
        earlier.id,
        super::status::time_of(earlier.created_at),
        earlier.os_user,
        earlier.host,
        earlier.state
    );
}

/// "on DATE", or "between DATE and DATE".
fn on_dates(first: i64, last: i64) -> String {
    let (first, last) = (super::status::time_of(first), super::status::time_of(last));
    if first[..10] == last[..10] {
        format!("on {}", &first[..10])
    } else {
        format!("between {} and {}", &first[..10], &last[..10])
    }
}

/// Other selections whose rows sit staged (an interrupted enqueue): IDs of
/// this input they hold were counted as already queued, and none of them
/// runs until that selection is finished or cancelled. Said on stderr.
async fn note_unfinished(store: &crate::store::Store, this: i64) {
    let Ok(staged) = store.staged_counts().await else {
        return;
    };
    for s in staged
        .iter()
        // `queueing` ones may be another enqueue at work right now.
        .filter(|s| s.selection != this && s.selection_state == "interrupted")
    {
        let id = s.selection;
        eprintln!(
            "note: selection {id} ({}) holds {} staged ID(s) of {} {} that no worker takes: \
             rerun its command to finish it, or `zdel cancel --selection {id}`",
            s.selection_state,
            s.count,
            s.operation.as_str(),
            s.module
        );
    }
}

fn open_input(path: &PathBuf) -> anyhow::Result<std::fs::File> {
    let meta = std::fs::metadata(path)
        .map_err(|e| UsageError(format!("{}: cannot read: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(UsageError(format!(
            "{}: is a directory, not a file of IDs",
            path.display()
        ))
        .into());
    }
    Ok(std::fs::File::open(path)
        .map_err(|e| UsageError(format!("{}: cannot open: {e}", path.display())))?)
}
