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
    let store = super::open_existing_store(&config).await?;
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
        Ok(token) => {
            println!(
                "credentials: ok (client {} got an access token from {})",
                config.zoho.client_id, config.zoho.accounts_url
            );
            let api = if config.zoho.api_domain.is_empty() {
                token.api_domain.clone()
            } else {
                config.zoho.api_domain.clone()
            };
            println!("api host:    {api}/crm/{}", config.zoho.api_version);
            match &token.scope {
                Some(scope) => println!(
                    "scope:       {scope} (as the token answer names it; see the README's scope table)"
                ),
                None => println!(
                    "scope:       not named by the token answer; a missing scope shows as OAUTH_SCOPE_MISMATCH and pauses only that operation"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("credentials: FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
