//! `zdel erase --email ADDRESS` (and `--phone`): one person's erasure
//! request (GDPR/CCPA). In every module of `erase.modules` the person's
//! records are found by COQL on an exact match of `erase.email_fields`
//! (or `erase.phone_fields`), shown, and — on confirmation — queued as one
//! selection (`how` = erase), deleted (a drain, when nothing else is
//! queued; or the running daemon), checked against the recycle bin, and
//! reported as JSON and text: what was searched, found, deleted and when,
//! and what failed. Nothing is queued when the search finds nothing or
//! fails.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::UsageError;
use crate::config::Config;
use crate::store::{NewSelection, OutcomeFilter, RequestTemplate, SelectionMethod, VerifyScope};
use crate::zoho::COQL_PAGE;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("who").required(true).multiple(true))]
pub struct Opts {
    /// The person's email address (an exact match).
    #[arg(long, group = "who")]
    email: Option<String>,
    /// The person's phone number (an exact match, as stored in Zoho).
    #[arg(long, group = "who")]
    phone: Option<String>,
    /// Delete without asking.
    #[arg(long)]
    yes: bool,
    /// Where the report goes: DIR/erase-N.json and DIR/erase-N.txt.
    #[arg(long, value_name = "DIR", default_value = ".")]
    report: std::path::PathBuf,
}

/// A record found: its module, id and the matching fields' values.
struct Found {
    module: String,
    id: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

/// A value as a COQL text literal (`'` doubled).
fn literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn criteria(opts: &Opts, config: &Config) -> (String, Vec<String>) {
    let mut terms = Vec::new();
    let mut fields = Vec::new();
    let mut add = |names: &[String], value: &Option<String>| {
        if let Some(v) = value {
            for f in names {
                terms.push(format!("{f} = {}", literal(v.trim())));
                fields.push(f.clone());
            }
        }
    };
    add(&config.erase.email_fields, &opts.email);
    add(&config.erase.phone_fields, &opts.phone);
    let text = terms
        .iter()
        .map(|t| format!("({t})"))
        .collect::<Vec<_>>()
        .join(" or ");
    (text, fields)
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    if let Some(email) = &opts.email
        && (!email.contains('@') || email.trim().contains(' '))
    {
        return Err(UsageError(format!("--email {email:?} is not an email address")).into());
    }
    if config.erase.modules.is_empty() {
        return Err(UsageError(
            "erase.modules is empty: name the modules to search (e.g. [\"Leads\", \"Contacts\"])"
                .into(),
        )
        .into());
    }
    let (where_, fields) = criteria(&opts, &config);
    let client = super::zoho_client(&config)?;
    let store = super::open_store(&config).await?;
    let searched_at = crate::clock::now_ms();

    // 1. Search every module; any failure stops everything, nothing queued.
    let slot = client.acquire_slot().await;
    let mut found = Vec::new();
    for module in &config.erase.modules {
        let mut after = "0".to_string();
        loop {
            let q = format!(
                "select id, {} from {module} where ({where_}) and (id > {after}) order by id asc limit {COQL_PAGE}",
                fields.join(", ")
            );
            let page = super::retrying(|| client.coql(&slot, &q, COQL_PAGE))
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "searching {module} failed: {e}; nothing was deleted (check erase.modules and erase.*_fields)"
                    )
                })?;
            for (id, row) in page.ids.iter().zip(&page.rows) {
                let mut shown = row.clone();
                shown.remove("id");
                found.push(Found {
                    module: module.clone(),
                    id: id.clone(),
                    fields: shown,
                });
            }
            match page.ids.last() {
                Some(last) if page.more_records => after = last.clone(),
                _ => break,
            }
        }
    }
    drop(slot);
    let who = opts
        .email
        .iter()
        .chain(opts.phone.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let searched = json!({
        "who": who, "modules": config.erase.modules, "criteria": where_,
        "at": crate::clock::rfc3339(searched_at),
    });
    if found.is_empty() {
        println!(
            "no record of {who} in {}: nothing to delete",
            config.erase.modules.join(", ")
        );
        let report = json!({"searched": searched, "found": [], "deleted": [], "failed": []});
        write_report(&opts.report, "erase-none", &report)?;
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} record(s) of {who}:", found.len());
    for f in &found {
        println!(
            "  {} {} {}",
            f.module,
            f.id,
            serde_json::Value::Object(f.fields.clone())
        );
    }
    if let Err(e) = super::confirm(
        &format!("these {} record(s) will be deleted", found.len()),
        opts.yes,
    ) {
        store.close().await;
        return Err(e);
    }

    // 2. Queue them: one selection per erase, per module its rows.
    let hash = super::sha256_hex(format!("erase\n{where_}\n{searched_at}").as_bytes());
    let template0 = RequestTemplate::delete(&found[0].module, true);
    let selection = store
        .begin_selection(
            &NewSelection {
                module: found[0].module.clone(),
                operation: template0.operation,
                method: SelectionMethod::Coql,
                source: Some(format!(
                    "erase: {where_} in {}",
                    config.erase.modules.join(", ")
                )),
                source_hash: Some(hash),
                shape: Some(template0.shape()),
                wf_trigger: true,
                strategy: template0.strategy,
                os_user: crate::store::this_user(),
                host: crate::store::this_host(),
                how: "erase".into(),
                config_hash: Some(super::config_hash(&config)),
            },
            crate::clock::now_ms(),
        )
        .await?;
    let live_before = store.state_totals().await?;
    let mut enqueuer = store.begin_enqueue_into(selection, false, true).await?;
    for module in &config.erase.modules {
        let ids: Vec<&str> = found
            .iter()
            .filter(|f| &f.module == module)
            .map(|f| f.id.as_str())
            .collect();
        if !ids.is_empty() {
            enqueuer
                .add(&RequestTemplate::delete(module, true), &ids)
                .await?;
        }
    }
    enqueuer
        .commit_complete(found.len() as u64, 0, crate::clock::now_ms())
        .await?;

    // 3. Delete: by the running daemon, or a drain of our own when nothing
    // else is queued (an erase never drains other people's work).
    let now = crate::clock::now_ms();
    let daemon = store.daemon_holder().await?.filter(|h| h.expires_at > now);
    let others = live_before.pending + live_before.running;
    if daemon.is_none() && others > 0 {
        println!(
            "queued {} request(s) as selection {selection}; {others} other request(s) are queued too, so erase does not drain them: run `zdel drain` (or `zdel serve`), then `zdel outcomes --selection {selection} --split DIR` and `zdel verify --selection {selection}`",
            found.len()
        );
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    if daemon.is_none() {
        #[derive(clap::Parser)]
        struct Drain {
            #[command(flatten)]
            opts: super::serve::Opts,
        }
        let drain = <Drain as clap::Parser>::try_parse_from(["drain"])?.opts;
        super::serve::run(config.clone(), crate::worker::RunMode::Drain, drain).await?;
    } else {
        wait_for(&store, selection, Duration::from_secs(config.erase.wait_s)).await?;
    }

    // 4. Verify and report.
    let scope = VerifyScope {
        selection: Some(selection),
        ..VerifyScope::default()
    };
    let verified =
        crate::worker::verify::verify(&store, &client, &scope, &format!("erase {selection}")).await;
    if let Err(e) = &verified {
        eprintln!(
            "zdel: the recycle-bin check failed ({e}); `zdel verify --selection {selection}` tries again"
        );
    }
    let filter = OutcomeFilter {
        selection: Some(selection),
        ..OutcomeFilter::default()
    };
    let mut rows = store.outcomes(&filter)?;
    let (mut deleted, mut failed) = (Vec::new(), Vec::new());
    use futures_util::TryStreamExt;
    while let Some(r) = rows.try_next().await? {
        let entry = json!({"module": r.module, "id": r.record_id, "state": r.state.as_str(),
            "code": r.code, "message": r.message, "finished_at": r.finished_at.map(crate::clock::rfc3339),
            "verified": r.verification, "deleted_time": r.deleted_time});
        match r.state {
            crate::store::RequestState::Succeeded => deleted.push(entry),
            _ => failed.push(entry),
        }
    }
    drop(rows);
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
    let report = json!({
        "selection": selection, "searched": searched,
        "found": found.iter().map(|f| json!({"module": f.module, "id": f.id, "fields": f.fields})).collect::<Vec<_>>(),
        "deleted": deleted, "failed": failed,
    });
    write_report(&opts.report, &format!("erase-{selection}"), &report)?;
    println!(
        "erased {} of {} record(s) of {who} (selection {selection}); {} failed; report: {}",
        deleted.len(),
        found.len(),
        failed.len(),
        opts.report
            .join(format!("erase-{selection}.json"))
            .display()
    );
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::exit::ROWS_FAILED)
    })
}

/// Wait until the daemon has decided every row of `selection`.
async fn wait_for(
    store: &crate::store::Store,
    selection: i64,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let open = store
            .selection_report(selection)
            .await?
            .map(|r| {
                r.counts
                    .iter()
                    .filter(|c| matches!(c.state.as_str(), "pending" | "running" | "staged"))
                    .map(|c| c.count)
                    .sum::<i64>()
            })
            .unwrap_or(0);
        if open == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "the running zdel has not finished selection {selection} after {} s (erase.wait_s): `zdel outcomes --selection {selection}` shows where it is",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// DIR/NAME.json (the report) and DIR/NAME.txt (it in words).
fn write_report(
    dir: &std::path::Path,
    name: &str,
    report: &serde_json::Value,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let json_path = dir.join(format!("{name}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(report)? + "\n")
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", json_path.display()))?;
    let mut text = String::new();
    let s = &report["searched"];
    text.push_str(&format!(
        "erasure request for {} — searched {} at {} ({})\n",
        s["who"].as_str().unwrap_or(""),
        s["modules"],
        s["at"].as_str().unwrap_or(""),
        s["criteria"].as_str().unwrap_or("")
    ));
    for (title, key) in [
        ("found", "found"),
        ("deleted", "deleted"),
        ("failed", "failed"),
    ] {
        let list = report[key].as_array().cloned().unwrap_or_default();
        text.push_str(&format!("{title}: {}\n", list.len()));
        for item in list {
            text.push_str(&format!("  {item}\n"));
        }
    }
    let txt_path = dir.join(format!("{name}.txt"));
    std::fs::write(&txt_path, text)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", txt_path.display()))?;
    Ok(())
}
