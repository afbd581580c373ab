//! `zdel verify`: check succeeded deletes against Zoho's recycle bin and
//! mark each row `verified` (with Zoho's `deleted_time` and `deleted_by`)
//! or `not_in_recycle_bin`. See [`crate::worker::verify`].

use std::process::ExitCode;

use clap::Args;

use super::UsageError;
use crate::config::Config;
use crate::store::VerifyScope;

#[derive(Debug, Args)]
pub struct Opts {
    /// Only the rows of this selection (`zdel selections` lists them).
    #[arg(long, value_name = "N")]
    selection: Option<i64>,
    /// Only this module.
    #[arg(long, value_parser = super::parse_module)]
    module: Option<String>,
    /// Only rows finished since this time: RFC 3339 (2026-12-01T09:00:00Z)
    /// or an age (24h, 7days).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
}

/// A time flag (`--since`, `--before`): an RFC 3339 time, or an age before now.
pub(super) fn parse_time(flag: &str, text: &str) -> Result<i64, UsageError> {
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(ms(t));
    }
    match humantime::parse_duration(text) {
        Ok(age) => Ok(crate::clock::now_ms() - age.as_millis() as i64),
        Err(_) => Err(UsageError(format!(
            "{flag} {text:?} is neither a time (2026-12-01T09:00:00Z) nor an age (24h, 7days)"
        ))),
    }
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let scope = VerifyScope {
        selection: opts.selection,
        module: opts.module.clone(),
        since_ms: opts
            .since
            .as_deref()
            .map(|t| parse_time("--since", t))
            .transpose()?,
    };
    let mut describe = Vec::new();
    if let Some(n) = opts.selection {
        describe.push(format!("selection {n}"));
    }
    if let Some(m) = &opts.module {
        describe.push(format!("module {m}"));
    }
    if let Some(s) = &opts.since {
        describe.push(format!("since {s}"));
    }
    let describe = if describe.is_empty() {
        "every succeeded delete".to_string()
    } else {
        describe.join(", ")
    };
    let store = super::open_existing_store(&config).await?;
    let client = super::zoho_client(&config)?;
    let verified = crate::worker::verify::verify(&store, &client, &scope, &describe).await;
    let spent = client.credits().take_spent();
    let _ = store
        .record_credits(
            client.org(),
            spent,
            client.credits().last_remaining(),
            crate::clock::now_ms(),
        )
        .await;
    store.close().await;
    let (run, modules) = verified?;
    if modules.is_empty() {
        println!("nothing to verify ({describe}): no succeeded delete waits for a check");
        return Ok(ExitCode::SUCCESS);
    }
    for m in &modules {
        println!(
            "{}: {} of {} deleted record(s) are in the recycle bin; {} not there ({} page(s))",
            m.module, m.verified, m.checked, m.not_in_bin, m.pages
        );
    }
    println!(
        "verified {} of {} ({describe}); {spent} credit(s); see `zdel outcomes --state succeeded` (verification, deleted_time, deleted_by)",
        run.verified, run.checked
    );
    if run.not_in_bin > 0 {
        eprintln!(
            "zdel: {} deleted record(s) are not in the recycle bin: deleted for good, purged after 60 days, restored, or never deleted; `zdel outcomes --state succeeded --format json` names them (verification not_in_recycle_bin)",
            run.not_in_bin
        );
        return Ok(ExitCode::from(super::exit::ROWS_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_an_age() {
        assert_eq!(
            parse_time("--since", "1970-01-01T00:00:01Z").unwrap(),
            1_000
        );
        let day_ago = parse_time("--since", "24h").unwrap();
        assert!((crate::clock::now_ms() - day_ago - 86_400_000).abs() < 60_000);
        assert!(
            parse_time("--since", "yesterday")
                .unwrap_err()
                .0
                .contains("neither a time")
        );
    }
}
