//! `zdel outcomes`: one row per request, streamed as CSV or JSON lines.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use futures_util::TryStreamExt;

use crate::config::Config;
use crate::store::{OutcomeFilter, RequestState};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StateArg {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Debug, Args)]
pub struct Opts {
    /// Only rows in this state.
    #[arg(long, value_enum)]
    state: Option<StateArg>,
    /// Only this module.
    #[arg(long, value_parser = super::parse_module)]
    module: Option<String>,
    /// Only rows with one of these outcome codes (comma-separated or
    /// repeated; compared without case).
    #[arg(long, value_delimiter = ',')]
    code: Vec<String>,
    /// Only rows queued by this selection (`zdel selections` lists them).
    #[arg(long, value_name = "N")]
    selection: Option<i64>,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Write DIR/success.csv (succeeded rows) and DIR/error.csv (failed and
    /// cancelled ones), in Data Loader's shape, instead of printing.
    #[arg(long, value_name = "DIR", conflicts_with = "format")]
    split: Option<std::path::PathBuf>,
}

/// The columns of `--split`'s files.
const SPLIT_HEADER: [&str; 10] = [
    "record_id",
    "module",
    "operation",
    "related_list",
    "related_id",
    "code",
    "message",
    "attempts",
    "finished_at",
    "verified",
];

/// `--split DIR`: both files written whole under temporary names, then
/// renamed, so a crash never leaves half a file; a filter that matches
/// nothing still writes both headers.
async fn split(
    store: &crate::store::Store,
    filter: &OutcomeFilter,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let open = |name: &str| -> anyhow::Result<(csv::Writer<std::fs::File>, std::path::PathBuf)> {
        let tmp = dir.join(format!(".{name}.partial"));
        let file = std::fs::File::create(&tmp)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
        let mut w = csv::Writer::from_writer(file);
        w.write_record(SPLIT_HEADER)?;
        Ok((w, tmp))
    };
    let (mut ok, ok_tmp) = open("success.csv")?;
    let (mut bad, bad_tmp) = open("error.csv")?;
    let (mut oks, mut bads, mut open_rows) = (0u64, 0u64, 0u64);
    let mut rows = store.outcomes(filter)?;
    while let Some(row) = rows.try_next().await? {
        let writer = match row.state {
            RequestState::Succeeded => {
                oks += 1;
                &mut ok
            }
            RequestState::Failed | RequestState::Cancelled => {
                bads += 1;
                &mut bad
            }
            RequestState::Pending | RequestState::Running => {
                open_rows += 1;
                continue;
            }
        };
        let code = row.code.clone().unwrap_or_else(|| match row.state {
            RequestState::Cancelled => "CANCELLED".to_string(),
            _ => String::new(),
        });
        writer.write_record([
            row.record_id.as_str(),
            row.module.as_str(),
            row.operation.as_str(),
            row.related_list.as_deref().unwrap_or(""),
            row.related_id.as_deref().unwrap_or(""),
            code.as_str(),
            row.message.as_deref().unwrap_or(""),
            row.attempts.to_string().as_str(),
            row.finished_at
                .map(crate::clock::rfc3339)
                .unwrap_or_default()
                .as_str(),
            row.verification.as_deref().unwrap_or(""),
        ])?;
    }
    for (mut w, tmp, name) in [(ok, ok_tmp, "success.csv"), (bad, bad_tmp, "error.csv")] {
        w.flush()?;
        let file = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dir.join(name).display()))?;
    }
    let open_note = if open_rows > 0 {
        format!("; {open_rows} not finished yet are in neither")
    } else {
        String::new()
    };
    println!(
        "wrote {oks} row(s) to {} and {bads} to {}{open_note}",
        dir.join("success.csv").display(),
        dir.join("error.csv").display()
    );
    Ok(())
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let state = opts.state.map(|s| match s {
        StateArg::Pending => RequestState::Pending,
        StateArg::Running => RequestState::Running,
        StateArg::Succeeded => RequestState::Succeeded,
        StateArg::Failed => RequestState::Failed,
        StateArg::Cancelled => RequestState::Cancelled,
    });
    let store = super::open_existing_store(&config).await?;
    let filter = OutcomeFilter {
        state,
        module: opts.module,
        codes: (!opts.code.is_empty()).then_some(opts.code),
        record_ids: None,
        selection: opts.selection,
    };
    if let Some(dir) = &opts.split {
        let result = split(&store, &filter, dir).await;
        store.close().await;
        result?;
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(stdout);
    let mut rows = store.outcomes(&filter)?;
    match opts.format {
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            while let Some(row) = rows.try_next().await? {
                csv.serialize(&row)?;
            }
            csv.flush()?;
        }
        Format::Json => {
            while let Some(row) = rows.try_next().await? {
                serde_json::to_writer(&mut out, &row)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
