//! The `--module` check of `zdel enqueue` and `zdel select`: with
//! credentials configured, the name is looked up among the org's modules
//! (`GET /settings/modules`, cached in the database for a day) — a name
//! the org lacks is refused with the nearest one ("did you mean Leads?"),
//! and `leads`/`LEADS` are written as Zoho spells them, so they share one
//! lane. Without credentials, or when Zoho cannot be asked, the cache
//! (if any) still gives Zoho's spelling and the name is otherwise kept
//! as given, with a warning: the workers' first call checks it again.

use super::UsageError;
use crate::config::Config;
use crate::org::OrgId;
use crate::store::Store;

/// How long the cached list is trusted.
const FRESH_MS: i64 = 24 * 3600 * 1000;

/// `given` as Zoho spells it in `names`, compared without case.
fn spelled<'a>(names: &'a [String], given: &str) -> Option<&'a String> {
    names
        .iter()
        .find(|n| *n == given)
        .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(given)))
}

/// The refusal of a module the org lacks, with the nearest names.
fn unknown(names: &[String], given: &str) -> UsageError {
    let lower = given.to_ascii_lowercase();
    let mut near: Vec<(f64, &String)> = names
        .iter()
        .map(|n| (strsim::jaro_winkler(&lower, &n.to_ascii_lowercase()), n))
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    near.sort_by(|a, b| b.0.total_cmp(&a.0));
    let hint = match near.first() {
        Some((_, best)) => format!("did you mean {best}?"),
        None => {
            let some: Vec<&str> = names.iter().take(12).map(String::as_str).collect();
            format!("its modules include {}", some.join(", "))
        }
    };
    UsageError(format!(
        "--module {given:?}: the org has no module of that API name ({hint}); nothing was queued"
    ))
}

/// `given`, checked against the org's modules and spelled as Zoho does.
pub(super) async fn check(config: &Config, store: &Store, given: &str) -> anyhow::Result<String> {
    let org = OrgId::default();
    let now = crate::clock::now_ms();
    let cached = store.org_modules(&org).await.ok().flatten();
    if let Some((names, at)) = &cached
        && let Some(name) = spelled(names, given)
        && (now - at < FRESH_MS || config.require_credentials().is_err())
    {
        return Ok(name.clone());
    }
    if config.require_credentials().is_err() {
        return Ok(given.to_string());
    }
    let client = super::zoho_client(config)?;
    let slot = client.acquire_slot().await;
    // Asked twice at most: an enqueue does not wait long on a Zoho out of reach.
    let fetched = crate::zoho::retrying(2, || client.modules(&slot)).await;
    drop(slot);
    let spent = client.credits().take_spent();
    let _ = store
        .record_credits(&org, spent, client.credits().last_remaining(), now)
        .await;
    match fetched {
        Ok(names) => {
            if let Err(e) = store.replace_org_modules(&org, &names, now).await {
                tracing::warn!(error = %e, "could not cache the org's modules");
            }
            match spelled(&names, given) {
                Some(name) => Ok(name.clone()),
                None => Err(unknown(&names, given).into()),
            }
        }
        Err(e) => {
            if let Some(name) = cached.as_ref().and_then(|(names, _)| spelled(names, given)) {
                return Ok(name.clone());
            }
            eprintln!(
                "zdel: warning: could not check --module {given} against the org's modules ({e}); it is used as given"
            );
            Ok(given.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_name_is_suggested_and_a_case_is_zoho_s() {
        let names: Vec<String> = ["Leads", "Contacts", "Price_Books"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(spelled(&names, "LEADS").map(String::as_str), Some("Leads"));
        assert_eq!(spelled(&names, "Lead"), None);
        assert!(unknown(&names, "Lead").0.contains("did you mean Leads?"));
        assert!(
            unknown(&names, "Widgets")
                .0
                .contains("its modules include Leads, Contacts")
        );
    }
}
