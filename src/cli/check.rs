//! `zdel check`: validate the configuration, open (and migrate) the
//! database, make one token refresh and one harmless read per queued module
//! — printing the effective limits and what was verified, never a secret.

use std::process::ExitCode;

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let limits = &config.limits;
    let or_none = |n: u64| {
        if n == 0 {
            "none".to_string()
        } else {
            n.to_string()
        }
    };
    println!(
        "config:      ok (rate {}/s, burst {}, {} calls in flight, {} attempts)",
        limits.requests_per_second, limits.burst, limits.max_concurrency, config.retry.max_attempts
    );
    println!(
        "caps:        deletions per day {}; zdel's credits per day {}; credits left for others {}; 429 back-off up to {} s",
        or_none(limits.max_deletions_per_day),
        or_none(limits.max_credits_per_day),
        or_none(limits.min_credits_remaining),
        limits.max_throttle_backoff_ms / 1000
    );
    let store = super::open_existing_store(&config).await?;
    let totals = store.state_totals().await?;
    let mut modules: Vec<String> = store
        .pending_lanes()
        .await?
        .into_iter()
        .map(|lane| lane.module)
        .collect();
    modules.dedup();
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
            let centre = crate::zoho::data_centre_of(&config.zoho.accounts_url)
                .map(|dc| format!("data centre {dc}"))
                .unwrap_or_else(|| "not a Zoho data centre's accounts server".to_string());
            println!(
                "api host:    {api}/crm/{} ({centre}, from {})",
                config.zoho.api_version, config.zoho.accounts_url
            );
            match &token.scope {
                Some(scope) => println!(
                    "scope:       {scope} (as the token answer names it; see the README's scope table)"
                ),
                None => println!(
                    "scope:       not named by the token answer; a missing scope shows as OAUTH_SCOPE_MISMATCH and pauses only that operation"
                ),
            }
            probe(&client, &modules).await
        }
        Err(e) => {
            println!("credentials: FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// One harmless read (`GET /{module}?fields=id&per_page=1`) of each module
/// with queued work: a token without the module's scope is caught here,
/// not by every call of a run.
async fn probe(client: &crate::zoho::ZohoClient, modules: &[String]) -> anyhow::Result<ExitCode> {
    if modules.is_empty() {
        println!(
            "probe:       skipped (nothing queued: it reads one record of each queued module)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut ok = true;
    for module in modules {
        let slot = client.acquire_slot().await;
        match client.probe_read(&slot, module).await {
            Ok(status) => {
                println!("probe:       ok (GET /{module}?fields=id&per_page=1 answered {status})")
            }
            Err(e) => {
                ok = false;
                let hint = match &e {
                    crate::zoho::ZohoError::LanePaused { .. } => {
                        "; the token very likely lacks the module's scope: see the README's scope table"
                    }
                    _ => "",
                };
                println!("probe:       FAILED: GET /{module}?fields=id&per_page=1: {e}{hint}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
