//! Bulk Read (`{api_domain}/crm/bulk/{version}/read`) and Record Count
//! (`GET /{module}/actions/count`), for `zdel select --via bulk` and its
//! counts.
//!
//! A Bulk Read job: `POST /read` with the module, `fields: ["id"]` and the
//! criteria (Bulk Read's JSON, [`super::criteria::bulk_criteria`]) or a
//! view → 201 with the job's id (50 credits a job). `GET /read/{job}`
//! polls its state: ADDED, QUEUED, IN PROGRESS, COMPLETED, FAILURE; once
//! completed, `result` says the page, the count and whether more records
//! follow (`more_records`, with `next_page_token`, or the next `page`). A
//! job holds at most 200,000 records; the next page is a new job. `GET
//! /read/{job}/result` downloads a ZIP holding `{job}.csv` with an `id`
//! column; at most 10 downloads a minute (then 429). The download is
//! streamed into a file and its IDs read from the file in chunks (see
//! [`read_result_ids`]): a 200,000-row result is never held in memory.

use serde_json::Value;

use super::{Answer, CallSlot, ZohoClient, ZohoError, answer};

/// Records one Bulk Read job holds at most (Zoho's limit).
pub const BULK_PAGE: u64 = 200_000;
/// Credits a Bulk Read job costs.
pub const BULK_JOB_CREDITS: u64 = 50;

/// Where a Bulk Read job starts: a result page, or the token the previous
/// job's result gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkFrom {
    Page(u32),
    Token(String),
}

/// A Bulk Read job's state, as Zoho names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkState {
    Added,
    Queued,
    InProgress,
    Completed,
    Failure,
    /// A state zdel does not know: polled on, like the running ones.
    Other(String),
}

impl BulkState {
    fn from_zoho(s: &str) -> BulkState {
        match s.to_ascii_uppercase().as_str() {
            "ADDED" => BulkState::Added,
            "QUEUED" => BulkState::Queued,
            "IN PROGRESS" | "IN_PROGRESS" | "RUNNING" => BulkState::InProgress,
            "COMPLETED" => BulkState::Completed,
            "FAILURE" | "FAILED" => BulkState::Failure,
            other => BulkState::Other(other.to_string()),
        }
    }
}

/// What a completed job's `result` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkResult {
    pub page: u32,
    pub count: u64,
    /// Where the next job starts, when Zoho says more records follow.
    pub next: Option<BulkFrom>,
}

/// A Bulk Read job as a poll answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkJob {
    pub id: String,
    pub state: BulkState,
    pub result: Option<BulkResult>,
}

/// How a Record Count is asked: by criteria (search syntax) or by view.
#[derive(Debug, Clone, Copy)]
pub enum CountOf<'a> {
    /// Every record of the module.
    All,
    Criteria(&'a str),
    View(&'a str),
}

/// A download under way: its body, chunk by chunk.
pub struct BulkDownload {
    response: reqwest::Response,
}

impl BulkDownload {
    /// The next chunk of the ZIP, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, ZohoError> {
        self.response
            .chunk()
            .await
            .map_err(|e| ZohoError::Transient {
                code: if e.is_timeout() {
                    "TIMEOUT".into()
                } else {
                    "CONNECTION_DROPPED".into()
                },
                message: format!(
                    "the download of a Bulk Read result broke off: {}",
                    e.without_url()
                ),
                http_status: Some(200),
                ambiguous: false,
            })
    }
}

/// `base` (`…/crm/{version}`) as Bulk Read's base: `…/crm/bulk/{version}/read`.
fn read_url(base: &url::Url, more: &[&str]) -> url::Url {
    let mut url = base.clone();
    let segments: Vec<String> = base
        .path_segments()
        .map(|s| s.map(str::to_string).collect())
        .unwrap_or_default();
    if let Ok(mut path) = url.path_segments_mut() {
        path.clear();
        let (version, head) = segments
            .split_last()
            .map_or(("v8", &[][..]), |(v, h)| (v.as_str(), h));
        path.extend(head.iter().map(String::as_str));
        path.extend(["bulk", version, "read"]);
        path.extend(more);
    }
    url
}

fn unreadable(status: u16, what: &str) -> ZohoError {
    ZohoError::Transient {
        code: "UNREADABLE_ANSWER".into(),
        message: format!("Zoho answered {what} with HTTP {status} and a body zdel cannot read"),
        http_status: Some(status),
        ambiguous: false,
    }
}

impl ZohoClient {
    /// `GET /{module}/actions/count`: Zoho's count, which it says may be
    /// 1–10 minutes stale (a preview's figure, never a snapshot's).
    pub async fn record_count(
        &self,
        _slot: &CallSlot,
        module: &str,
        of: CountOf<'_>,
    ) -> Result<u64, ZohoError> {
        let (status, answer) = self
            .call("record_count", |base| {
                let request = self.http.get(super::call::with_segments(
                    base,
                    &[module, "actions", "count"],
                ));
                match of {
                    CountOf::All => request,
                    CountOf::Criteria(c) => request.query(&[("criteria", c)]),
                    CountOf::View(cvid) => request.query(&[("cvid", cvid)]),
                }
            })
            .await?;
        if status == 204 {
            return Ok(0);
        }
        if status != 200 {
            return Err(answer::whole_call_error(status, &answer));
        }
        // A string in Zoho's answer; a number accepted too.
        match answer.get("count") {
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| unreadable(status, "a record count"))
    }

    /// Create a Bulk Read job of `module`'s IDs matching `criteria` (Bulk
    /// Read's JSON) and/or in view `cvid`, from `from`; its id.
    pub async fn create_bulk_read(
        &self,
        _slot: &CallSlot,
        module: &str,
        criteria: Option<&Value>,
        cvid: Option<&str>,
        from: &BulkFrom,
    ) -> Result<String, ZohoError> {
        let mut query = serde_json::json!({
            "module": {"api_name": module},
            "fields": ["id"],
        });
        if let Some(criteria) = criteria {
            query["criteria"] = criteria.clone();
        }
        if let Some(cvid) = cvid {
            query["cvid"] = Value::String(cvid.to_string());
        }
        match from {
            BulkFrom::Page(n) => query["page"] = Value::from(*n),
            BulkFrom::Token(t) => query["page_token"] = Value::String(t.clone()),
        }
        let body = serde_json::json!({ "query": query, "file_type": "csv" });
        let (status, answer) = self
            .call("bulk_read_create", |base| {
                self.http.post(read_url(base, &[])).json(&body)
            })
            .await?;
        let created = answer
            .pointer("/data/0/details/id")
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|_| (200..300).contains(&status));
        match created {
            Some(id) => {
                self.credits
                    .spent
                    .fetch_add(BULK_JOB_CREDITS - 1, std::sync::atomic::Ordering::Relaxed);
                Ok(id)
            }
            None if status >= 400 => Err(refused(status, &answer)),
            None => Err(unreadable(status, "a Bulk Read job's creation")),
        }
    }

    /// `GET /read/{job}`: the job's state, and its result once completed.
    pub async fn bulk_read_job(&self, _slot: &CallSlot, job: &str) -> Result<BulkJob, ZohoError> {
        let (status, answer) = self
            .call("bulk_read_status", |base| {
                self.http.get(read_url(base, &[job]))
            })
            .await?;
        if status != 200 {
            return Err(answer::whole_call_error(status, &answer));
        }
        let Some(details) = answer.pointer("/data/0") else {
            return Err(unreadable(status, "a Bulk Read job's status"));
        };
        let state = details
            .get("state")
            .and_then(Value::as_str)
            .map(BulkState::from_zoho)
            .ok_or_else(|| unreadable(status, "a Bulk Read job's status"))?;
        let result = details.get("result").filter(|r| r.is_object()).map(|r| {
            let page = r.get("page").and_then(Value::as_u64).unwrap_or(1) as u32;
            let more = r
                .get("more_records")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let token = r
                .get("next_page_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            BulkResult {
                page,
                count: r.get("count").and_then(Value::as_u64).unwrap_or(0),
                next: more.then(|| token.map_or(BulkFrom::Page(page + 1), BulkFrom::Token)),
            }
        });
        Ok(BulkJob {
            id: job.to_string(),
            state,
            result,
        })
    }

    /// `GET /read/{job}/result`: the ZIP, to stream (see [`BulkDownload`]).
    pub async fn download_bulk_read(
        &self,
        _slot: &CallSlot,
        job: &str,
    ) -> Result<BulkDownload, ZohoError> {
        match self
            .call_raw("bulk_read_download", |base| {
                self.http.get(read_url(base, &[job, "result"]))
            })
            .await?
        {
            Answer::Raw(response) => Ok(BulkDownload { response }),
            Answer::Json(status, answer) if status >= 400 => {
                Err(answer::whole_call_error(status, &answer))
            }
            Answer::Json(status, _) => Err(unreadable(status, "a Bulk Read download")),
        }
    }
}

/// A job Zoho would not create, with its code and details.
fn refused(status: u16, answer: &Value) -> ZohoError {
    let error = answer::whole_call_error(status, answer);
    let details = answer
        .get("details")
        .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()));
    match (error, details) {
        (
            ZohoError::Rejected {
                code,
                message,
                http_status,
            },
            Some(d),
        ) => ZohoError::Rejected {
            code,
            message: format!("{message} ({d})"),
            http_status,
        },
        (error, _) => error,
    }
}

/// Read the IDs of a Bulk Read result: the ZIP in `file`, its
/// `{job}.csv` (or its only CSV), the `id` column, in chunks of `chunk`,
/// past the first `skip` rows. Blocking: call it on a blocking thread.
/// `each` takes every chunk; its error stops the reading.
pub fn read_result_ids<E>(
    file: std::fs::File,
    job: &str,
    skip: u64,
    chunk: usize,
    mut each: impl FnMut(Vec<String>) -> Result<(), E>,
) -> Result<Result<u64, E>, ZohoError> {
    let bad = |what: String| ZohoError::Transient {
        code: "UNREADABLE_ANSWER".into(),
        message: format!("the Bulk Read result of job {job} {what}; it is downloaded again"),
        http_status: Some(200),
        ambiguous: false,
    };
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("is not a ZIP zdel can read ({e})")))?;
    let wanted = format!("{job}.csv");
    let name = match archive.index_for_name(&wanted) {
        Some(_) => wanted,
        None => {
            let csvs: Vec<String> = archive
                .file_names()
                .filter_map(Result::ok)
                .filter(|n| n.ends_with(".csv"))
                .map(|n| n.to_string())
                .collect();
            match csvs.as_slice() {
                [only] => only.clone(),
                _ => return Err(bad(format!("holds no {wanted} (it holds {csvs:?})"))),
            }
        }
    };
    let entry = archive
        .by_name(&name)
        .map_err(|e| bad(format!("cannot be opened ({e})")))?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(entry);
    let column = reader
        .headers()
        .map_err(|e| bad(format!("has no header row ({e})")))?
        .iter()
        .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case("id"))
        .ok_or_else(|| bad("has no id column".into()))?;
    let mut ids = Vec::with_capacity(chunk);
    let (mut row, mut read) = (0u64, 0u64);
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(bad(format!("breaks off at row {} ({e})", row + 1))),
        }
        row += 1;
        if row <= skip {
            continue;
        }
        let id = record.get(column).unwrap_or_default().trim();
        let id = id.strip_prefix("zcrm_").unwrap_or(id);
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("has {id:?} for an id at row {}", row + 1)));
        }
        ids.push(id.to_string());
        read += 1;
        if ids.len() == chunk
            && let Err(e) = each(std::mem::replace(&mut ids, Vec::with_capacity(chunk)))
        {
            return Ok(Err(e));
        }
    }
    if !ids.is_empty()
        && let Err(e) = each(ids)
    {
        return Ok(Err(e));
    }
    Ok(Ok(read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bulk_read_lives_beside_the_api_version() {
        let base = url::Url::parse("https://www.zohoapis.eu/crm/v8").unwrap();
        assert_eq!(
            read_url(&base, &["42", "result"]).as_str(),
            "https://www.zohoapis.eu/crm/bulk/v8/read/42/result"
        );
    }

    #[test]
    fn a_result_s_ids_are_read_in_chunks_past_the_rows_already_kept() {
        let mut file = tempfile::tempfile().unwrap();
        {
            let mut zip = zip::ZipWriter::new(&mut file);
            zip.start_file("77.csv", zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(b"\"id\",\"Last_Name\"\r\n").unwrap();
            for i in 1..=5 {
                write!(zip, "\"{i}\",\"Name, {i}\"\r\n").unwrap();
            }
            zip.finish().unwrap();
        }
        let mut chunks = Vec::new();
        let read = read_result_ids(file.try_clone().unwrap(), "77", 2, 2, |c| {
            chunks.push(c);
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(read, 3);
        assert_eq!(chunks, vec![vec!["3", "4"], vec!["5"]]);
        let not_zip = tempfile::tempfile().unwrap();
        let err = read_result_ids(not_zip, "77", 0, 2, |_| Ok::<(), ()>(())).unwrap_err();
        assert!(err.to_string().contains("not a ZIP"), "{err}");
    }
}
