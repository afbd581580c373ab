//! `zdel console [--listen ADDR]`: the console page and `/api/status`
//! over a database no `zdel serve` is using (a finished run, a copy), read
//! only: it takes no lease and changes nothing.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::http::Health;

#[derive(Debug, Args)]
pub struct Opts {
    /// Where to listen (default: http.listen, 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let listen = opts.listen.unwrap_or_else(|| config.http.listen.clone());
    let listen = if listen.is_empty() {
        "127.0.0.1:9187".to_string()
    } else {
        listen
    };
    config.http.check_console(&listen)?;
    let store = super::open_existing_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| super::UsageError(format!("--listen {listen}: cannot listen: {e}")))?;
    let addr = listener.local_addr()?;
    println!("zdel console at http://{addr}/ (read-only; Ctrl-C to stop)");
    let health = Health::new(
        store.clone(),
        None,
        config.limits.clone(),
        Some(config.http.console_token.clone()),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(crate::http::serve(listener, health, stop.clone()));
    super::serve::wait_for_signal().await;
    stop.cancel();
    let _ = server.await;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
