//! `zdel resume`: restart lanes paused by a permission or credential error.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true))]
pub struct Opts {
    /// The module whose lane to restart.
    #[arg(long, value_parser = super::parse_module, group = "which")]
    module: Option<String>,
    /// Restart every paused lane, and lift a credentials pause.
    #[arg(long, group = "which")]
    all: bool,
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let store = super::open_existing_store(&config).await?;
    if opts.all {
        let n = store.resume_all().await?;
        println!(
            "lifted {n} pause(s); a running zdel picks this up within worker.poll_interval_ms"
        );
    } else if let Some(module) = opts.module {
        if store.resume(&module).await? {
            println!(
                "resumed {module}; a running zdel picks this up within worker.poll_interval_ms"
            );
        } else {
            println!("{module} was not paused");
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
