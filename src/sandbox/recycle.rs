//! The sandbox's recycle bin (`../shared/zoho-api.md`, "Recycle bin"):
//! every record the sandbox deletes goes there with its `deleted_time` and
//! `deleted_by`, and stays 60 days. Get Deleted Records (`GET
//! /{module}/deleted?type=recycle&page=N&per_page=200`, `If-Modified-Since`)
//! lists it newest first, 2 credits a page, 204 when nothing is there.

use std::collections::{BTreeSet, HashMap};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Inner;

/// How long Zoho keeps a deleted record.
pub const RETENTION_MS: i64 = 60 * 24 * 3600 * 1000;

/// Who deleted a record: zdel's token's user, or someone else.
pub(super) const ZDEL_USER: (&str, &str) = ("3652397000000186017", "Sandbox API User");
pub(super) const OTHER_USER: (&str, &str) = ("3652397000000186099", "Another User");

#[derive(Debug, Clone)]
pub(super) struct Deleted {
    pub at_ms: i64,
    pub by: (&'static str, &'static str),
}

/// module → id → when and by whom; and (time, id) in order for listing.
#[derive(Debug, Default)]
pub(super) struct RecycleBin {
    entries: HashMap<String, HashMap<String, Deleted>>,
    order: HashMap<String, BTreeSet<(i64, String)>>,
}

impl RecycleBin {
    pub(super) fn put(&mut self, module: &str, id: &str, deleted: Deleted) {
        self.take(module, id);
        self.order
            .entry(module.to_string())
            .or_default()
            .insert((deleted.at_ms, id.to_string()));
        self.entries
            .entry(module.to_string())
            .or_default()
            .insert(id.to_string(), deleted);
    }

    /// Out of the bin (restored or purged): what it held.
    pub(super) fn take(&mut self, module: &str, id: &str) -> Option<Deleted> {
        let deleted = self.entries.get_mut(module)?.remove(id)?;
        if let Some(order) = self.order.get_mut(module) {
            order.remove(&(deleted.at_ms, id.to_string()));
        }
        Some(deleted)
    }

    pub(super) fn get(&self, module: &str, id: &str) -> Option<&Deleted> {
        self.entries.get(module)?.get(id)
    }

    /// Entries older than 60 days are gone, as in Zoho.
    pub(super) fn purge(&mut self, now_ms: i64) {
        let cutoff = now_ms - RETENTION_MS;
        for (module, order) in self.order.iter_mut() {
            let old: Vec<(i64, String)> = order.range(..(cutoff, String::new())).cloned().collect();
            for key in old {
                order.remove(&key);
                if let Some(e) = self.entries.get_mut(module) {
                    e.remove(&key.1);
                }
            }
        }
    }
}

/// An HTTP date (`If-Modified-Since`) as ms since the epoch: RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) or RFC 3339.
fn httpdate_parse(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return t
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64);
    }
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, _] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? + 1;
    let iso = format!("{year}-{month:02}-{day:0>2}T{time}Z");
    humantime::parse_rfc3339(&iso)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as i64)
}

/// `GET /{module}/deleted?type=recycle&page=N&per_page=200`.
pub(super) fn deleted_records(
    inner: &mut Inner,
    module: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    inner.recycle.purge(crate::clock::now_ms());
    let since = headers
        .get("if-modified-since")
        .and_then(|v| v.to_str().ok())
        .and_then(httpdate_parse)
        .unwrap_or(i64::MIN);
    let per_page: usize = params
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(200)
        .clamp(1, 200);
    let page: usize = params
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    if params
        .get("type")
        .is_some_and(|t| t != "recycle" && t != "all")
    {
        // Permanently deleted records are not kept by the sandbox.
        return StatusCode::NO_CONTENT.into_response();
    }
    inner.extra_credits = 1;
    let Some(order) = inner.recycle.order.get(module) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let mut newest_first = order
        .iter()
        .rev()
        .take_while(|(at, _)| *at >= since)
        .skip((page - 1) * per_page);
    let rows: Vec<&(i64, String)> = newest_first.by_ref().take(per_page).collect();
    if rows.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let more = newest_first.next().is_some();
    let entries = inner.recycle.entries.get(module);
    let data: Vec<serde_json::Value> = rows
        .iter()
        .map(|(at, id)| {
            let by = entries.and_then(|e| e.get(id)).map_or(ZDEL_USER, |d| d.by);
            json!({"id": id, "display_name": format!("Record {id}"), "type": "recycle",
                "deleted_time": crate::clock::zoho_time(*at), "deleted_by": {"name": by.1, "id": by.0},
                "created_by": {"name": "Sandbox API User", "id": ZDEL_USER.0}})
        })
        .collect();
    Json(json!({"data": data, "info": {"per_page": per_page, "count": data.len(), "page": page, "more_records": more}}))
        .into_response()
}

/// `GET /settings/recycle_bin?ids=…`: those of the IDs the bin holds, in
/// any module; 204 when none.
pub(super) fn bin_lookup(inner: &mut Inner, params: &HashMap<String, String>) -> Response {
    inner.recycle.purge(crate::clock::now_ms());
    let ids: Vec<&str> = params
        .get("ids")
        .map(|s| s.split(',').filter(|i| !i.is_empty()).collect())
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 200 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "INVALID_DATA", "details": {"param_name": "ids"}, "message": "give 1 to 200 ids", "status": "error"})),
        )
            .into_response();
    }
    let mut rows = Vec::new();
    for id in ids {
        for (module, entries) in &inner.recycle.entries {
            if let Some(d) = entries.get(id) {
                rows.push(json!({"id": id, "display_name": format!("Record {id}"),
                    "deleted_time": crate::clock::zoho_time(d.at_ms), "deleted_by": {"name": d.by.1, "id": d.by.0},
                    "owner": {"name": ZDEL_USER.1, "id": ZDEL_USER.0},
                    "module": {"api_name": module, "id": "1"}}));
            }
        }
    }
    if rows.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let n = rows.len();
    Json(json!({"recycle_bin": rows, "info": {"per_page": 200, "count": n, "page": 1, "more_records": false}}))
        .into_response()
}

/// What a restore of IDs asks of the sandbox beyond the bin itself.
#[derive(Debug, Default)]
pub(super) struct Restores {
    /// child ID → (parent module, parent ID): the child comes back only
    /// once its parent is live (CANNOT_RESTORE_WITHOUT_PARENT before).
    pub(super) parents: HashMap<String, (String, String)>,
    /// A restore of more IDs than this is SCHEDULED (Zoho: over 1,000
    /// records with their children); `None`: never.
    pub(super) schedule_over: Option<usize>,
    /// How long a scheduled restore takes.
    pub(super) delay: std::time::Duration,
    /// Scheduled restores: when they are done, and what.
    pub(super) scheduled: Vec<(std::time::Instant, String, String)>,
    /// Scheduled restores fail inside Zoho: the records leave the bin and
    /// never come back.
    pub(super) lose_scheduled: bool,
}

/// Scheduled restores whose time has come put their records back.
pub(super) fn finish_scheduled(inner: &mut Inner) {
    let now = std::time::Instant::now();
    let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.restores.scheduled)
        .into_iter()
        .partition(|(at, _, _)| *at <= now);
    inner.restores.scheduled = later;
    for (_, module, id) in due {
        if inner.recycle.take(&module, &id).is_some() {
            inner.records.entry(module).or_default().insert(id);
        }
    }
}

/// `POST /settings/recycle_bin/actions/restore {"ids":[…]}`: per ID,
/// SUCCESS (back in its module), INVALID_DATA (not in the bin),
/// CANNOT_RESTORE_WITHOUT_PARENT, or — for a big restore — SCHEDULED (202;
/// the records come back after a delay, with no job id).
pub(super) fn restore(inner: &mut Inner, body: &serde_json::Value) -> Response {
    inner.recycle.purge(crate::clock::now_ms());
    let ids: Vec<String> = body["ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 200 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "INVALID_DATA", "details": {"param_name": "ids"}, "message": "give 1 to 200 ids", "status": "error"})),
        )
            .into_response();
    }
    let module_of = |inner: &Inner, id: &str| {
        inner
            .recycle
            .entries
            .iter()
            .find(|(_, e)| e.contains_key(id))
            .map(|(m, _)| m.clone())
    };
    let scheduled = inner.restores.schedule_over.is_some_and(|n| ids.len() > n);
    let mut entries = Vec::new();
    let (mut done, mut failed) = (0, 0);
    for id in &ids {
        let entry = |code: &str, message: &str, status: &str| json!({"code": code, "details": {"id": id}, "message": message, "status": status});
        let Some(module) = module_of(inner, id) else {
            failed += 1;
            entries.push(entry(
                "INVALID_DATA",
                "the id given seems to be invalid",
                "error",
            ));
            continue;
        };
        if let Some((pm, pid)) = inner.restores.parents.get(id)
            && !inner.records.get(pm).is_some_and(|r| r.contains(pid))
        {
            failed += 1;
            entries.push(entry(
                "CANNOT_RESTORE_WITHOUT_PARENT",
                "the parent record is in the recycle bin: restore it first",
                "error",
            ));
            continue;
        }
        if scheduled && inner.restores.lose_scheduled {
            inner.recycle.take(&module, id);
            entries.push(entry("SCHEDULED", "restore scheduled", "success"));
            continue;
        }
        if scheduled {
            let at = std::time::Instant::now() + inner.restores.delay;
            inner.restores.scheduled.push((at, module, id.clone()));
            entries.push(entry("SCHEDULED", "restore scheduled", "success"));
            continue;
        }
        inner.recycle.take(&module, id);
        inner.records.entry(module).or_default().insert(id.clone());
        done += 1;
        entries.push(entry("SUCCESS", "record restored", "success"));
    }
    let status = if scheduled && failed == 0 {
        StatusCode::ACCEPTED
    } else if failed == 0 {
        StatusCode::OK
    } else if done > 0 || scheduled {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, Json(json!({ "recycle_bin": entries }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_modified_since_reads_both_date_forms() {
        assert_eq!(
            httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"),
            httpdate_parse("1994-11-06T08:49:37Z")
        );
        assert!(httpdate_parse("yesterday").is_none());
    }
}
