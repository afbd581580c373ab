//! `zdel enqueue`: queue record IDs from `--ids`, a file, or stdin, for any
//! operation: delete records (plain or mass delete), delink related records
//! from one parent, delete contact roles, delete record photos.
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
use crate::store::{Operation, RequestTemplate, Strategy};

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
                    "--record {record:?} is not a record ID (1 to 19 digits)"
                )));
            }
            Some((record.clone(), list.clone()))
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
const CHUNK_IDS: usize = 5_000;

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let template = template(&opts)?;
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
            inserted += add_chunk(&mut enqueuer, &template, &chunk).await?;
            chunk.clear();
        }
    }
    inserted += add_chunk(&mut enqueuer, &template, &chunk).await?;
    if seen == 0 {
        return Err(
            UsageError(format!("{source}: no record IDs found; nothing was queued")).into(),
        );
    }
    enqueuer.commit().await?;
    store.close().await;
    let target = match &template.parent {
        Some((record, list)) => format!("{} {record} {list}", template.module),
        None => template.module.clone(),
    };
    println!(
        "queued {inserted} of {seen} ID(s) for {} {target}{}{}; {} skipped (repeated in the input or already queued)",
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
        seen - inserted
    );
    Ok(ExitCode::SUCCESS)
}

async fn add_chunk(
    enqueuer: &mut crate::store::Enqueuer,
    template: &RequestTemplate,
    chunk: &[String],
) -> anyhow::Result<u64> {
    let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
    Ok(enqueuer.add(template, &ids).await?)
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
