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
    /// Only rows with this outcome code.
    #[arg(long)]
    code: Option<String>,
    /// Only rows queued by this selection (`zdel selections` lists them).
    #[arg(long, value_name = "N")]
    selection: Option<i64>,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
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
        code: opts.code,
        record_ids: None,
        selection: opts.selection,
    };
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
