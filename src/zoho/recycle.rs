//! The recycle bin, for `zdel verify`: Get Deleted Records (`GET
//! /{module}/deleted?type=recycle&page=N&per_page=200` with
//! `If-Modified-Since`), 200 a page, newest first, 2 credits a page, 204
//! when nothing was deleted since.

use serde_json::Value;

use super::{CallSlot, ZohoClient, ZohoError, answer};

/// Records a Get Deleted Records page holds at most.
pub const DELETED_PAGE: u32 = 200;
/// Credits a Get Deleted Records page costs.
pub const DELETED_PAGE_CREDITS: u64 = 2;

/// A record in the recycle bin: its id, when and by whom it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedRecord {
    pub id: String,
    pub deleted_time: String,
    /// The user's name and id, as `Name (id)`.
    pub deleted_by: String,
}

/// One page of the bin; `more`: Zoho says another follows.
#[derive(Debug, Clone, Default)]
pub struct DeletedPage {
    pub records: Vec<DeletedRecord>,
    pub more: bool,
}

impl ZohoClient {
    /// Page `page` of `module`'s recycle bin, records deleted since `since_ms`.
    pub async fn deleted_records(
        &self,
        _slot: &CallSlot,
        module: &str,
        since_ms: i64,
        page: u32,
    ) -> Result<DeletedPage, ZohoError> {
        let since = crate::clock::zoho_time(since_ms);
        let (status, answer) = self
            .call("deleted_records", |base| {
                self.http
                    .get(super::call::with_segments(base, &[module, "deleted"]))
                    .query(&[
                        ("type", "recycle".to_string()),
                        ("page", page.to_string()),
                        ("per_page", DELETED_PAGE.to_string()),
                    ])
                    .header("If-Modified-Since", &since)
            })
            .await?;
        if status == 204 || status == 304 {
            return Ok(DeletedPage::default());
        }
        if status == 200 {
            self.credits.spent.fetch_add(
                DELETED_PAGE_CREDITS - 1,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        read_page(status, &answer)
    }
}

fn read_page(status: u16, answer: &Value) -> Result<DeletedPage, ZohoError> {
    let Some(data) = answer
        .get("data")
        .and_then(Value::as_array)
        .filter(|_| status == 200)
    else {
        return Err(answer::whole_call_error(status, answer));
    };
    let mut page = DeletedPage {
        more: answer
            .pointer("/info/more_records")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ..DeletedPage::default()
    };
    for row in data {
        let Some(id) = row
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        else {
            return Err(ZohoError::Transient {
                code: "UNREADABLE_ANSWER".into(),
                message:
                    "Zoho answered a recycle-bin page with a record zdel cannot read (no string id)"
                        .into(),
                http_status: Some(status),
                ambiguous: false,
            });
        };
        let text = |p: &str| row.pointer(p).and_then(Value::as_str).unwrap_or("");
        let by = match (text("/deleted_by/name"), text("/deleted_by/id")) {
            ("", "") => String::new(),
            (name, "") => name.to_string(),
            (name, id) => format!("{name} ({id})"),
        };
        page.records.push(DeletedRecord {
            id: id.to_string(),
            deleted_time: text("/deleted_time").to_string(),
            deleted_by: by,
        });
    }
    Ok(page)
}

/// IDs the recycle-bin list takes in one call.
pub const BIN_LOOKUP_IDS: usize = 200;

impl ZohoClient {
    /// `GET /settings/recycle_bin?ids=…` (at most 200): which of `ids` the
    /// recycle bin holds, each with when and by whom it was deleted.
    pub async fn in_recycle_bin(
        &self,
        _slot: &CallSlot,
        ids: &[&str],
    ) -> Result<Vec<DeletedRecord>, ZohoError> {
        let joined = ids.join(",");
        let (status, answer) = self
            .call("recycle_bin", |base| {
                self.http
                    .get(super::call::with_segments(
                        base,
                        &["settings", "recycle_bin"],
                    ))
                    .query(&[("ids", joined.as_str())])
            })
            .await?;
        if status == 204 {
            return Ok(Vec::new());
        }
        let Some(rows) = answer
            .get("recycle_bin")
            .and_then(Value::as_array)
            .filter(|_| status == 200)
        else {
            return Err(answer::whole_call_error(status, &answer));
        };
        // Read like a page of deleted records: the same fields.
        let page = read_page(200, &serde_json::json!({ "data": rows }))?;
        Ok(page.records)
    }
}

impl ZohoClient {
    /// `GET /{module}?ids=…&fields=id` (at most 100): which of `ids` are
    /// live records — how a SCHEDULED restore is seen to be done.
    pub async fn live_records(
        &self,
        _slot: &CallSlot,
        module: &str,
        ids: &[&str],
    ) -> Result<std::collections::HashSet<String>, ZohoError> {
        let joined = ids.join(",");
        let (status, answer) = self
            .call("live_records", |base| {
                self.http
                    .get(super::call::with_segments(base, &[module]))
                    .query(&[("ids", joined.as_str()), ("fields", "id")])
            })
            .await?;
        if status == 204 {
            return Ok(Default::default());
        }
        let Some(rows) = answer
            .get("data")
            .and_then(Value::as_array)
            .filter(|_| status == 200)
        else {
            return Err(answer::whole_call_error(status, &answer));
        };
        Ok(rows
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bin_page_reads_who_deleted_what_and_when() {
        let answer = json!({"data": [{"id": "1", "deleted_time": "2026-12-01T10:00:00+00:00",
            "deleted_by": {"name": "Ann", "id": "9"}, "type": "recycle"}],
            "info": {"more_records": true}});
        let page = read_page(200, &answer).unwrap();
        assert!(page.more);
        assert_eq!(
            page.records,
            vec![DeletedRecord {
                id: "1".into(),
                deleted_time: "2026-12-01T10:00:00+00:00".into(),
                deleted_by: "Ann (9)".into()
            }]
        );
        assert!(read_page(200, &json!({"data": [{"id": 1}]})).is_err());
        assert_eq!(crate::clock::zoho_time(0), "1970-01-01T00:00:00+00:00");
    }
}
