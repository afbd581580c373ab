//! `zdel check`: validate the configuration, open (and migrate) the
//! database, and make one token refresh — printing what was verified and
//! never a secret.

use std::process::ExitCode;

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    println!(
        "config:      ok (rate {}/s, burst {}, {} calls in flight, {} attempts)",
        config.limits.requests_per_second,
        config.limits.burst,
        config.limits.max_concurrency,
        config.retry.max_attempts
    );
    let store = super::open_store(&config).await?;
    let totals = store.state_totals().await?;
    store.close().await;
    println!(
        "database:    ok ({}: {} requests, {} pending)",
        config.database.url,
        totals.total(),
        totals.pending
    );
    let client = super::zoho_client(&config)?;
    match client.check_credentials().await {
        Ok(()) => {
            println!(
                "credentials: ok (client {} got an access token from {})",
                config.zoho.client_id, config.zoho.accounts_url
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("credentials: FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
