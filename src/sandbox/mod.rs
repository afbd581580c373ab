//! A fake Zoho CRM (accounts + delete API) on axum, for tests, `zdel demo`
//! and benchmarks. It behaves like the documented API — expiring OAuth
//! tokens, per-ID results, `INVALID_DATA` for unknown IDs, the 100-ID limit —
//! lets tests inject faults (5xx before or after deleting, dropped
//! connections, 429, latency, permission errors, locked records, revoked
//! credentials), and counts what it saw: calls, IDs per call, peak
//! concurrency, peak rate, IDs sent in two calls at once.
//!
//! It must never be mistaken for the real thing: it only binds where it is
//! told (tests use 127.0.0.1:0).
//!
//! A new answer from Zoho starts here too: the sandbox learns to give it
//! (a fault or a verb in this file, the handler in `api.rs`), and a test
//! shows what zdel does with it. [`config_env`] points zdel at a sandbox.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

mod api;
mod bulk;
pub mod coql;
mod recycle;

/// Zoho's limit of IDs per DELETE call.
pub const MAX_IDS_PER_CALL: usize = 100;

/// The sandbox's credentials. Not secrets: they exist only in the sandbox.
pub const CLIENT_ID: &str = "sandbox-client";
pub const CLIENT_SECRET: &str = "sandbox-secret";
pub const REFRESH_TOKEN: &str = "sandbox-refresh-token";

/// The `ZDEL__*` settings that point zdel at a sandbox listening at `url`
/// with the sandbox's credentials: the one helper the tests, the bench and
/// `zdel demo` share.
pub fn config_env(url: &str) -> Vec<(String, String)> {
    [
        ("ZDEL__ZOHO__ACCOUNTS_URL", url),
        // The API host comes from the sandbox's token answer.
        ("ZDEL__ZOHO__API_DOMAIN", ""),
        ("ZDEL__ZOHO__CLIENT_ID", CLIENT_ID),
        ("ZDEL__ZOHO__CLIENT_SECRET", CLIENT_SECRET),
        ("ZDEL__ZOHO__REFRESH_TOKEN", REFRESH_TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Faults and behaviour, changeable while the sandbox runs.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Every call waits this long before answering.
    pub latency: Duration,
    /// Share of calls answered 503 before anything is deleted.
    pub error_5xx_rate: f64,
    /// Share of calls that delete, then answer 500 (the ambiguous case).
    pub error_5xx_after_delete_rate: f64,
    /// Share of calls that delete, then drop the connection mid-answer.
    pub drop_after_delete_rate: f64,
    /// Share of calls answered 429.
    pub rate_429: f64,
    /// `Retry-After` seconds sent with a 429, if any.
    pub retry_after_secs: Option<u64>,
    /// Lifetime of the access tokens it issues.
    pub token_ttl: Duration,
    /// Every ID exists until deleted once (benchmarks with millions of IDs).
    pub every_id_exists: bool,
    /// Records a mass-delete job deletes per status poll.
    pub job_records_per_poll: usize,
    /// Share of record deletes answered 204 No Content, deleting nothing.
    pub no_content_rate: f64,
    /// Per-ID entries name their ID by `details.json_path` (`$.ids[3]`)
    /// instead of `details.id`, as JSON-body APIs do.
    pub answer_by_json_path: bool,
    /// The org's daily credit budget (`None`: unlimited). Every answered
    /// call costs one; once half is used, answers carry
    /// `X-API-CREDITS-REMAINING`; once all is used, every call gets 429.
    pub credit_budget: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            error_5xx_rate: 0.0,
            error_5xx_after_delete_rate: 0.0,
            drop_after_delete_rate: 0.0,
            rate_429: 0.0,
            retry_after_secs: None,
            token_ttl: Duration::from_secs(3600),
            every_id_exists: false,
            job_records_per_poll: 100,
            no_content_rate: 0.0,
            answer_by_json_path: false,
            credit_budget: None,
        }
    }
}

/// What the sandbox saw.
#[derive(Debug, Clone, Default)]
pub struct SandboxStats {
    /// API calls (DELETEs), whatever their answer.
    pub calls: u64,
    /// IDs carried by each call that got past auth, in arrival order.
    pub ids_per_call: Vec<usize>,
    /// Most calls in flight at once.
    pub peak_concurrency: usize,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Requests to the token endpoint, answered or not.
    pub token_requests: u64,
    /// Calls answered 401 (expired or unknown token).
    pub unauthorized: u64,
    /// Answers by HTTP status.
    pub statuses: HashMap<u16, u64>,
    /// IDs that arrived while a call carrying the same ID was in flight.
    pub overlapping_ids: u64,
    /// IDs deleted (answered SUCCESS or deleted before a fault).
    pub deleted: u64,
    /// Calls by endpoint: `delete`, `delink`, `contact_roles`, `photo`,
    /// `mass_delete_ids`, `mass_delete_view`, `mass_delete_status`.
    pub calls_by_endpoint: HashMap<String, u64>,
    /// Mass-delete jobs scheduled (accepted POSTs with a cvid).
    pub jobs_scheduled: u64,
    /// Credits charged (answered calls, 429s excluded).
    pub credits_used: u64,
    /// When each call was answered 429 because the credits were spent.
    pub credit_429_at: Vec<Instant>,
    /// When each call got past auth.
    pub call_times: Vec<Instant>,
    call_starts: Vec<Instant>,
}

impl SandboxStats {
    /// Calls per second between the first and the last call's start.
    pub fn mean_calls_per_second(&self) -> f64 {
        match (self.call_starts.first(), self.call_starts.last()) {
            (Some(first), Some(last)) if self.call_starts.len() > 1 => {
                (self.call_starts.len() - 1) as f64
                    / last.duration_since(*first).as_secs_f64().max(1e-9)
            }
            _ => 0.0,
        }
    }

    /// Seconds between the first and the last call's start.
    pub fn span_seconds(&self) -> f64 {
        match (self.call_starts.first(), self.call_starts.last()) {
            (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// The most calls that started within any one-second window.
    pub fn peak_calls_per_second(&self) -> usize {
        let starts = &self.call_starts;
        let mut peak = 0;
        let mut lo = 0;
        for hi in 0..starts.len() {
            while starts[hi].duration_since(starts[lo]) >= Duration::from_secs(1) {
                lo += 1;
            }
            peak = peak.max(hi - lo + 1);
        }
        peak
    }
}

#[derive(Default)]
struct Inner {
    faults: Faults,
    records: HashMap<String, HashSet<String>>,
    denied_modules: HashSet<String>,
    /// ID → how many more calls answer RECORD_LOCKED for it.
    locked: HashMap<String, u32>,
    tokens: HashMap<String, Instant>,
    credentials_revoked: bool,
    token_endpoint_down: bool,
    in_flight: usize,
    in_flight_ids: HashMap<String, u32>,
    stats: SandboxStats,
    token_counter: u64,
    /// (module, parent record, related list) → related record IDs.
    relations: HashMap<(String, String, String), HashSet<String>>,
    contact_roles: HashSet<String>,
    /// (module, record) pairs that have a photo.
    photos: HashSet<(String, String)>,
    /// (module, cvid) → the records the view lists.
    views: HashMap<(String, String), Vec<String>>,
    jobs: HashMap<String, Job>,
    job_counter: u64,
    /// Modules that exist: any seeded one (plus Contacts, for roles).
    modules: HashSet<String>,
    /// module → how many more schedule POSTs answer ALREADY_SCHEDULED (another mass action runs).
    occupied: HashMap<String, u32>,
    /// ID → how many more calls answer INTERNAL_ERROR for it (deleting nothing).
    internal_errors: HashMap<String, u32>,
    /// What mass-delete status polls answer instead of the job's status.
    job_poll_answer: Option<JobPollAnswer>,
    /// The token endpoint answers "Access Denied" (throttled), HTTP 200.
    token_throttled: bool,
    /// Access tokens it issues are rejected by the API (401 INVALID_TOKEN).
    reject_fresh_tokens: bool,
    /// Token answers leave out `api_domain`.
    omit_api_domain: bool,
    /// The `scope` its token answers name, if any.
    token_scope: Option<String>,
    /// Endpoints (`delete`, `mass_delete`, `delink`, `contact_roles`,
    /// `photo`) whose scope the token lacks: 401 OAUTH_SCOPE_MISMATCH.
    missing_scopes: HashSet<String>,
    /// How many ALREADY_SCHEDULED answers ID-list mass deletes got.
    id_path_busy_answers: u64,
    /// module → record → its fields, for COQL (`add_records_with_fields`).
    fields: HashMap<String, HashMap<String, HashMap<String, String>>>,
    /// module → its records' ids in numeric order, for COQL's `order by id`
    /// and keyset paging. A superset: ids deleted since stay here and are
    /// skipped when not in `records`.
    ordered: HashMap<String, std::collections::BTreeSet<u64>>,
    /// module → the field names its records have.
    module_fields: HashMap<String, HashSet<String>>,
    /// Credits the current call costs beyond the first (COQL by its LIMIT).
    extra_credits: u64,
    bulk: bulk::BulkReads,
    recycle: recycle::RecycleBin,
    /// IDs whose next delete removes the record but answers INTERNAL_ERROR.
    fail_after_delete: HashSet<String>,
    restores: recycle::Restores,
}

/// What a mass-delete status poll answers, when not the job's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPollAnswer {
    /// 404 `NOT_FOUND` "Empty response" (an unknown or expired job).
    NotFound,
    /// 204 No Content.
    NoContent,
    /// The job's status, but `FAILED` with its counts so far.
    Failed,
}

/// A mass-delete job over a custom view: it deletes `per_poll` records each
/// time its status is asked, so the view empties over several polls.
#[derive(Debug, Clone)]
struct Job {
    module: String,
    remaining: Vec<String>,
    total: i64,
    deleted: i64,
    failed: i64,
    status: &'static str,
}

/// Shared state of a running sandbox; tests hold one to seed and inspect it.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Mutex<Inner>>,
    base_url: String,
}

/// A running sandbox. Dropping it does not stop the server; call `stop`.
pub struct SandboxHandle {
    pub sandbox: Sandbox,
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT`: both the accounts URL and the API domain.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Sandbox {
    /// Start on `addr` (use `127.0.0.1:0` for a free port).
    pub async fn start(addr: &str, faults: Faults) -> std::io::Result<SandboxHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let sandbox = Sandbox {
            inner: Arc::new(Mutex::new(Inner {
                faults,
                ..Inner::default()
            })),
            base_url: format!("http://{local}"),
        };
        let app = api::router(sandbox.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(SandboxHandle {
            sandbox,
            addr: local,
            stop,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make these records exist in `module`.
    pub fn add_records<S: AsRef<str>>(&self, module: &str, ids: impl IntoIterator<Item = S>) {
        let mut inner = self.lock();
        inner.modules.insert(module.to_string());
        let ids: Vec<String> = ids.into_iter().map(|s| s.as_ref().to_string()).collect();
        inner
            .ordered
            .entry(module.to_string())
            .or_default()
            .extend(ids.iter().filter_map(|id| id.parse::<u64>().ok()));
        inner
            .records
            .entry(module.to_string())
            .or_default()
            .extend(ids);
    }

    /// Whether `id` still exists in `module`.
    /// Make these records exist in `module`, each with its fields
    /// (`Lead_Status`, `Created_Time`, `Email`, …), for COQL to select by.
    pub fn add_records_with_fields(
        &self,
        module: &str,
        records: impl IntoIterator<Item = (String, HashMap<String, String>)>,
    ) {
        let mut inner = self.lock();
        inner.modules.insert(module.to_string());
        for (id, fields) in records {
            inner
                .module_fields
                .entry(module.to_string())
                .or_default()
                .extend(fields.keys().cloned());
            inner
                .records
                .entry(module.to_string())
                .or_default()
                .insert(id.clone());
            if let Ok(n) = id.parse::<u64>() {
                inner
                    .ordered
                    .entry(module.to_string())
                    .or_default()
                    .insert(n);
            }
            inner
                .fields
                .entry(module.to_string())
                .or_default()
                .insert(id, fields);
        }
    }

    pub fn has_record(&self, module: &str, id: &str) -> bool {
        let mut inner = self.lock();
        recycle::finish_scheduled(&mut inner);
        inner.records.get(module).is_some_and(|s| s.contains(id))
    }

    /// How many records `module` still has.
    pub fn remaining(&self, module: &str) -> usize {
        self.lock().records.get(module).map_or(0, |s| s.len())
    }

    pub fn stats(&self) -> SandboxStats {
        self.lock().stats.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Calls for `module` answer 403 NO_PERMISSION (or stop doing so).
    pub fn deny_module(&self, module: &str, denied: bool) {
        let mut inner = self.lock();
        if denied {
            inner.denied_modules.insert(module.to_string());
        } else {
            inner.denied_modules.remove(module);
        }
    }

    /// The next `times` calls carrying `id` answer RECORD_LOCKED for it.
    pub fn lock_record(&self, id: &str, times: u32) {
        self.lock().locked.insert(id.to_string(), times);
    }

    /// Make these related records linked to `record` through `related_list`.
    pub fn add_relations<S: AsRef<str>>(
        &self,
        module: &str,
        record: &str,
        related_list: &str,
        ids: impl IntoIterator<Item = S>,
    ) {
        let mut inner = self.lock();
        inner.modules.insert(module.to_string());
        let key = (
            module.to_string(),
            record.to_string(),
            related_list.to_string(),
        );
        let set = inner.relations.entry(key).or_default();
        set.extend(ids.into_iter().map(|s| s.as_ref().to_string()));
    }

    /// How many records are still linked to `record` through `related_list`.
    pub fn relations_left(&self, module: &str, record: &str, related_list: &str) -> usize {
        let key = (
            module.to_string(),
            record.to_string(),
            related_list.to_string(),
        );
        self.lock().relations.get(&key).map_or(0, |s| s.len())
    }

    pub fn add_contact_roles<S: AsRef<str>>(&self, ids: impl IntoIterator<Item = S>) {
        let mut inner = self.lock();
        inner
            .contact_roles
            .extend(ids.into_iter().map(|s| s.as_ref().to_string()));
    }

    pub fn contact_roles_left(&self) -> usize {
        self.lock().contact_roles.len()
    }

    /// Give these records of `module` a photo.
    pub fn add_photos<S: AsRef<str>>(&self, module: &str, ids: impl IntoIterator<Item = S>) {
        let mut inner = self.lock();
        inner.modules.insert(module.to_string());
        for id in ids {
            inner
                .photos
                .insert((module.to_string(), id.as_ref().to_string()));
        }
    }

    pub fn has_photo(&self, module: &str, id: &str) -> bool {
        self.lock()
            .photos
            .contains(&(module.to_string(), id.to_string()))
    }

    /// A custom view `cvid` of `module` listing these records (which are also
    /// added to the module).
    pub fn add_view<S: AsRef<str>>(
        &self,
        module: &str,
        cvid: &str,
        ids: impl IntoIterator<Item = S>,
    ) {
        let ids: Vec<String> = ids.into_iter().map(|s| s.as_ref().to_string()).collect();
        let mut inner = self.lock();
        inner.modules.insert(module.to_string());
        inner
            .records
            .entry(module.to_string())
            .or_default()
            .extend(ids.iter().cloned());
        inner
            .views
            .insert((module.to_string(), cvid.to_string()), ids);
    }

    /// Someone else deletes these records of `module` (they go to the
    /// recycle bin as deleted by another user).
    pub fn delete_elsewhere<S: AsRef<str>>(&self, module: &str, ids: impl IntoIterator<Item = S>) {
        let mut inner = self.lock();
        for id in ids {
            let id = id.as_ref();
            if inner.records.get_mut(module).is_some_and(|r| r.remove(id)) {
                inner.recycle.put(
                    module,
                    id,
                    recycle::Deleted {
                        at_ms: crate::clock::now_ms(),
                        by: recycle::OTHER_USER,
                    },
                );
            }
        }
    }

    /// Move these records' time in the recycle bin back by `days` (past
    /// 60 they are purged at the next listing, as in Zoho).
    pub fn age_in_recycle_bin<S: AsRef<str>>(
        &self,
        module: &str,
        ids: impl IntoIterator<Item = S>,
        days: i64,
    ) {
        let mut inner = self.lock();
        for id in ids {
            if let Some(mut d) = inner.recycle.take(module, id.as_ref()) {
                d.at_ms -= days * 24 * 3600 * 1000;
                inner.recycle.put(module, id.as_ref(), d);
            }
        }
    }

    /// The next call for `id` deletes it (into the recycle bin) but
    /// answers INTERNAL_ERROR for it, as if the answer were lost.
    pub fn delete_then_fail_internally(&self, id: &str) {
        self.lock().fail_after_delete.insert(id.to_string());
    }

    /// Whether the recycle bin holds `id` of `module`.
    pub fn in_recycle_bin(&self, module: &str, id: &str) -> bool {
        let mut inner = self.lock();
        recycle::finish_scheduled(&mut inner);
        inner.recycle.get(module, id).is_some()
    }

    /// `child` comes back from the bin only once `parent` of
    /// `parent_module` is live (CANNOT_RESTORE_WITHOUT_PARENT before).
    pub fn restore_needs_parent(&self, child: &str, parent_module: &str, parent: &str) {
        self.lock().restores.parents.insert(
            child.to_string(),
            (parent_module.to_string(), parent.to_string()),
        );
    }

    /// Scheduled restores fail inside Zoho: their records leave the bin and
    /// never come back.
    pub fn lose_scheduled_restores(&self, lose: bool) {
        self.lock().restores.lose_scheduled = lose;
    }

    /// Restores of more than `ids` IDs are SCHEDULED and done `delay` later.
    pub fn schedule_restores_over(&self, ids: usize, delay: Duration) {
        let mut inner = self.lock();
        inner.restores.schedule_over = Some(ids);
        inner.restores.delay = delay;
    }

    /// Bulk Read jobs hold `records` each (Zoho: 200,000) and answer
    /// IN PROGRESS to `polls` polls before they are COMPLETED.
    pub fn set_bulk_read(&self, records: usize, polls: u32) {
        let mut inner = self.lock();
        inner.bulk.page_size = records.max(1);
        inner.bulk.polls_in_progress = polls;
    }

    /// The next `jobs` Bulk Read jobs end in FAILURE.
    pub fn fail_bulk_reads(&self, jobs: u32) {
        self.lock().bulk.failing_jobs = jobs;
    }

    /// Bulk Read results downloaded, and downloads refused (over 10 a minute).
    pub fn bulk_downloads(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.bulk.downloads_served, inner.bulk.downloads_refused)
    }

    /// The next `posts` custom-view mass deletes of `module` answer
    /// ALREADY_SCHEDULED, as if someone else's mass action were running.
    pub fn occupy_module(&self, module: &str, posts: u32) {
        self.lock().occupied.insert(module.to_string(), posts);
    }

    /// The next `times` calls carrying `id` answer INTERNAL_ERROR for it,
    /// deleting nothing.
    pub fn fail_record_internally(&self, id: &str, times: u32) {
        self.lock().internal_errors.insert(id.to_string(), times);
    }

    /// Make status polls answer `answer` instead of the job's status (`None`: normal).
    pub fn set_job_poll_answer(&self, answer: Option<JobPollAnswer>) {
        self.lock().job_poll_answer = answer;
    }

    /// Make the token endpoint answer "Access Denied" (or stop doing so).
    pub fn throttle_token_endpoint(&self, throttled: bool) {
        self.lock().token_throttled = throttled;
    }

    /// Make the API reject every access token, even one just issued (or stop).
    pub fn reject_fresh_tokens(&self, reject: bool) {
        self.lock().reject_fresh_tokens = reject;
    }

    /// Leave `api_domain` out of token answers (or put it back).
    pub fn omit_api_domain(&self, omit: bool) {
        self.lock().omit_api_domain = omit;
    }

    /// Name `scope` in token answers.
    pub fn set_token_scope(&self, scope: Option<&str>) {
        self.lock().token_scope = scope.map(str::to_string);
    }

    /// The token lacks the scope of `endpoint` (`delete`, `mass_delete`,
    /// `delink`, `contact_roles`, `photo`): its calls answer 401
    /// OAUTH_SCOPE_MISMATCH (or stop doing so).
    pub fn lack_scope(&self, endpoint: &str, lacking: bool) {
        let mut inner = self.lock();
        if lacking {
            inner.missing_scopes.insert(endpoint.to_string());
        } else {
            inner.missing_scopes.remove(endpoint);
        }
    }

    /// A new day: the credit budget is whole again.
    pub fn restore_credits(&self) {
        self.lock().stats.credits_used = 0;
    }

    /// How many ALREADY_SCHEDULED answers ID-list mass deletes got.
    pub fn id_path_busy_answers(&self) -> u64 {
        self.lock().id_path_busy_answers
    }

    /// Forget every issued access token: the next calls get 401 INVALID_TOKEN.
    pub fn expire_all_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Make the token endpoint answer 503 (or stop doing so).
    pub fn set_token_endpoint_down(&self, down: bool) {
        self.lock().token_endpoint_down = down;
    }

    /// Make the token endpoint answer `invalid_code` (or stop doing so).
    pub fn revoke_refresh_token(&self, revoked: bool) {
        self.lock().credentials_revoked = revoked;
    }
}
