//! `zdel enqueue`: queue record IDs from `--ids`, a file, or stdin.
//!
//! The input is read as a stream, line by line, and validated as it goes;
//! everything is inserted in one transaction, so a bad line anywhere means
//! nothing from this command is queued. A UTF-8 BOM, CRLF line endings,
//! blank lines and `#` comments are accepted. IDs already pending or running
//! (including repeats within the input) are skipped and counted.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::UsageError;
use crate::config::Config;
use crate::store::Operation;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OperationArg {
    /// Delete the records (DELETE /{module}?ids=…).
    Delete,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true))]
pub struct Opts {
    /// The module API name, e.g. Leads, Contacts, Custom_Module1.
    #[arg(long, value_parser = super::parse_module)]
    module: String,
    /// Record IDs, comma-separated.
    #[arg(long, group = "input", value_name = "ID,ID,...")]
    ids: Option<String>,
    /// A file with one record ID per line, or - for stdin.
    #[arg(long, group = "input", value_name = "PATH")]
    file: Option<PathBuf>,
    /// Delete without running workflow rules (wf_trigger=false).
    #[arg(long)]
    no_workflow: bool,
    /// What to do with the records.
    #[arg(long, value_enum, default_value = "delete")]
    operation: OperationArg,
}

/// IDs inserted per statement: large enough to be fast, small enough to
/// keep memory flat whatever the input size.
const CHUNK_IDS: usize = 5_000;

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let operation = match opts.operation {
        OperationArg::Delete => Operation::Delete,
    };
    let reader: Box<dyn Read> = match (&opts.ids, &opts.file) {
        (Some(ids), _) => Box::new(std::io::Cursor::new(ids.replace(',', "\n").into_bytes())),
        (None, Some(path)) if path.as_os_str() == "-" => Box::new(std::io::stdin()),
        (None, Some(path)) => Box::new(open_input(path)?),
        (None, None) => return Err(UsageError("give --ids or --file".into()).into()),
    };
    let source = match (&opts.ids, &opts.file) {
        (Some(_), _) => "--ids".to_string(),
        (None, Some(p)) if p.as_os_str() == "-" => "stdin".to_string(),
        (None, Some(p)) => p.display().to_string(),
        _ => String::new(),
    };
    let store = super::open_store(&config).await?;
    let mut enqueuer = store.begin_enqueue().await?;
    let mut lines = BufReader::new(reader);
    let mut line = Vec::new();
    let mut chunk: Vec<String> = Vec::with_capacity(CHUNK_IDS);
    let (mut line_no, mut seen, mut inserted) = (0u64, 0u64, 0u64);
    let wf_trigger = !opts.no_workflow;
    loop {
        line.clear();
        let n = lines
            .read_until(b'\n', &mut line)
            .map_err(|e| UsageError(format!("{source}: could not read: {e}")))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = std::str::from_utf8(&line)
            .map_err(|_| UsageError(format!("{source}: line {line_no} is not valid UTF-8")))?;
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
            return Err(UsageError(format!(
                "{source}: line {line_no}: {id:?} is not a record ID (1 to 19 digits); nothing was queued"
            ))
            .into());
        }
        seen += 1;
        chunk.push(id.to_string());
        if chunk.len() == CHUNK_IDS {
            inserted +=
                add_chunk(&mut enqueuer, operation, &opts.module, wf_trigger, &chunk).await?;
            chunk.clear();
        }
    }
    inserted += add_chunk(&mut enqueuer, operation, &opts.module, wf_trigger, &chunk).await?;
    if seen == 0 {
        return Err(
            UsageError(format!("{source}: no record IDs found; nothing was queued")).into(),
        );
    }
    enqueuer.commit().await?;
    store.close().await;
    println!(
        "queued {inserted} of {seen} ID(s) for {} {}{}; {} skipped (repeated in the input or already queued)",
        operation.as_str(),
        opts.module,
        if wf_trigger { "" } else { " without workflows" },
        seen - inserted
    );
    Ok(ExitCode::SUCCESS)
}

async fn add_chunk(
    enqueuer: &mut crate::store::Enqueuer,
    operation: Operation,
    module: &str,
    wf_trigger: bool,
    chunk: &[String],
) -> anyhow::Result<u64> {
    let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
    Ok(enqueuer.add(operation, module, wf_trigger, &ids).await?)
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
