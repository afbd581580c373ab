//! The store's domain types: what the worker, the CLI and the HTTP layer
//! hand to the store and get back. Nothing here names a database type or
//! a wire encoding; the engine in `sqlite/` maps them to columns.

use serde::Serialize;

pub use crate::org::OrgId;

/// The operations a request row can ask for (`deletion_requests.operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Delete,
    Delink,
    DeleteContactRole,
    DeletePhoto,
    /// Back out of the recycle bin (`zdel restore`).
    Restore,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Delete,
        Operation::Delink,
        Operation::DeleteContactRole,
        Operation::DeletePhoto,
        Operation::Restore,
    ];

    /// The spelling in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Delete => "delete",
            Operation::Delink => "delink",
            Operation::DeleteContactRole => "delete_contact_role",
            Operation::DeletePhoto => "delete_photo",
            Operation::Restore => "restore",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

impl TryFrom<String> for Operation {
    type Error = UnknownState;
    fn try_from(s: String) -> Result<Operation, UnknownState> {
        Operation::parse(&s).ok_or(UnknownState(s))
    }
}

/// How record deletes are sent (`deletion_requests.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Whatever the config's `zoho.delete_strategy` says.
    Auto,
    /// `DELETE /{module}?ids=…`, up to 100 IDs.
    Delete,
    /// `POST /{module}/actions/mass_delete {"ids":[…]}`, up to 500 IDs.
    MassDelete,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Delete => "delete",
            Strategy::MassDelete => "mass_delete",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        match s {
            "auto" => Some(Strategy::Auto),
            "delete" => Some(Strategy::Delete),
            "mass_delete" => Some(Strategy::MassDelete),
            _ => None,
        }
    }
}

impl TryFrom<String> for Strategy {
    type Error = UnknownState;
    fn try_from(s: String) -> Result<Strategy, UnknownState> {
        Strategy::parse(&s).ok_or(UnknownState(s))
    }
}

/// Declares a state enum spelled in the database: `as_str`, `parse`,
/// `ALL`, `is_terminal`, and decoding from the column's text.
macro_rules! db_states {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal $(, terminal = $terminal:literal)?;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every state, in the order tables show them.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The spelling in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Whether only an operator moves a row out of this state.
            pub fn is_terminal(self) -> bool {
                match self {
                    $($name::$variant => false $(|| $terminal)?,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownState;
            fn try_from(s: String) -> Result<$name, UnknownState> {
                $name::parse(&s).ok_or(UnknownState(s))
            }
        }
    };
}

/// A state or operation column held a value no version of zdel writes.
#[derive(Debug, thiserror::Error)]
#[error("unknown value {0:?} in the database")]
pub struct UnknownState(pub String);

db_states! {
    /// A request's state (`deletion_requests.state`); the transitions are
    /// drawn in the store's module documentation.
    RequestState {
        /// Waiting; claimed once due and its lane is not paused.
        Pending = "pending";
        /// Claimed under a lease; only the lease holder moves it on.
        Running = "running";
        Succeeded = "succeeded", terminal = true;
        Failed = "failed", terminal = true;
        Cancelled = "cancelled", terminal = true;
    }
}

db_states! {
    /// A custom-view mass-delete job's state (`mass_delete_jobs.state`);
    /// the transitions are drawn in `store/sqlite/jobs.rs`.
    JobState {
        /// Waiting to be posted.
        Pending = "pending";
        /// The intent is recorded and the POST may be in flight.
        Scheduling = "scheduling";
        /// Zoho accepted it: its `job_id` is polled.
        Running = "running";
        Completed = "completed", terminal = true;
        Failed = "failed", terminal = true;
        /// The POST may or may not have reached Zoho: an operator decides.
        Uncertain = "uncertain";
        Cancelled = "cancelled", terminal = true;
    }
}

/// The pause scope that stops every lane (the OAuth client or refresh token was rejected).
pub const PAUSE_ALL: &str = "*";

/// What a pause's `scope` stops: everything (`*`), a module (`Leads`), or
/// one operation of a module (`Leads/mass_delete`, when the token lacks
/// that operation's scope). Module names never hold a `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PausedScope {
    All,
    Module(String),
    Operation { module: String, operation: String },
}

impl PausedScope {
    pub fn parse(scope: &str) -> PausedScope {
        if scope == PAUSE_ALL {
            return PausedScope::All;
        }
        match scope.split_once('/') {
            Some((module, operation)) => PausedScope::Operation {
                module: module.to_string(),
                operation: operation.to_string(),
            },
            None => PausedScope::Module(scope.to_string()),
        }
    }

    /// The `scope` column's text.
    pub fn as_scope(&self) -> String {
        match self {
            PausedScope::All => PAUSE_ALL.to_string(),
            PausedScope::Module(module) => module.clone(),
            PausedScope::Operation { module, operation } => format!("{module}/{operation}"),
        }
    }
}

/// Identifies one claim. Every later update of the claimed rows must present
/// it: a claim whose lease expired and was reaped can no longer write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub i64);

impl LeaseToken {
    pub fn random() -> LeaseToken {
        LeaseToken(rand::random::<i64>())
    }
}

/// A lane: requests that may share one call. Rows are batched within a lane only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaneKey {
    /// The org whose limits, pauses and credentials apply.
    pub org: OrgId,
    pub operation: Operation,
    pub module: String,
    pub wf_trigger: bool,
    /// The rows' strategy column (`Auto`: the config decides).
    pub strategy: Strategy,
}

impl std::fmt::Display for LaneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}{}",
            self.operation.as_str(),
            self.module,
            if self.wf_trigger {
                ""
            } else {
                " (no workflow)"
            }
        )
    }
}

/// One row of a claimed batch.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    pub id: i64,
    pub record_id: String,
    /// For delinks: the related list and the related record to unlink.
    pub related_list: Option<String>,
    pub related_id: Option<String>,
    /// Attempts made before this claim.
    pub attempts: i64,
    /// Earlier attempts that ended without a usable answer.
    pub ambiguous_attempts: i64,
}

impl ClaimedRow {
    /// The ID Zoho names in its per-ID answer: the related record for a
    /// delink, the record (or contact role) otherwise.
    pub fn answer_id(&self) -> &str {
        self.related_id.as_deref().unwrap_or(&self.record_id)
    }
}

#[derive(Debug, Clone)]
pub struct ClaimedBatch {
    pub lane: LaneKey,
    pub lease: LeaseToken,
    pub rows: Vec<ClaimedRow>,
}

/// What [`Store::claim_batches`] may claim.
pub struct ClaimRequest<'a> {
    pub now_ms: i64,
    /// Lanes with pending rows, sorted (from [`Store::pending_lanes`]).
    pub lanes: &'a [LaneKey],
    /// The lane claimed last: this claim starts with the lane after it.
    pub after: Option<&'a LaneKey>,
    /// Paused modules.
    pub skip_modules: &'a [String],
    /// Lanes cooling down after a 429.
    pub skip_lanes: &'a [LaneKey],
    pub owner: &'a str,
    /// A dry run's claim: when its lease runs out the rows go back without
    /// counting an ambiguous attempt (nothing was sent).
    pub dry_run: bool,
    pub lease_ms: i64,
    /// Rows per batch for a lane (100 for deletes, 500 for mass delete, …).
    pub limit_for: &'a (dyn Fn(&LaneKey) -> u32 + Sync),
    /// At most this many batches: one per call slot in hand.
    pub max_batches: usize,
    /// At most this many rows over all batches (what today's cap leaves).
    pub max_ids: Option<u64>,
    /// The claimer's daemon-lease token: the claim is refused
    /// ([`StoreError::LeaseLost`](crate::store::StoreError::LeaseLost)) if
    /// another zdel holds the lease now. `None`: not fenced (tests, tools).
    pub fence: Option<i64>,
}

/// What happens to one claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOutcome {
    pub id: i64,
    pub change: RowChange,
}

/// A row's next state. `code` is Zoho's code verbatim, or one of ours such as
/// `HTTP_503` or `TIMEOUT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RowChange {
    Succeeded {
        code: String,
        message: String,
        http_status: Option<u16>,
    },
    Failed {
        code: String,
        message: String,
        http_status: Option<u16>,
        /// Whether this call counts as an attempt.
        count_attempt: bool,
        /// The last call ended without a usable answer: Zoho may have acted on it.
        ambiguous: bool,
    },
    /// Back to pending, due again at `next_attempt_at` (epoch ms).
    Retry {
        code: String,
        message: String,
        http_status: Option<u16>,
        next_attempt_at: i64,
        count_attempt: bool,
        /// The call ended without a usable answer: Zoho may have acted on it.
        ambiguous: bool,
    },
}

/// How a `record_outcomes` call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Rows moved on.
    pub applied: u64,
    /// Rows whose lease was no longer ours: left untouched.
    pub lease_lost: u64,
}

/// What a group of enqueued IDs share. For a delink, the IDs are the related
/// records and `parent` names the record and related list they hang from.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub operation: Operation,
    pub module: String,
    pub wf_trigger: bool,
    pub strategy: Strategy,
    /// For delinks: the record and related list the IDs hang from.
    pub parent: Option<DelinkParent>,
}

/// The record a delink unlinks from, and the related list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelinkParent {
    pub record_id: String,
    /// The related list's API name (e.g. `Campaigns`).
    pub related_list: String,
}

impl RequestTemplate {
    /// A plain record delete.
    pub fn delete(module: &str, wf_trigger: bool) -> RequestTemplate {
        RequestTemplate {
            operation: Operation::Delete,
            module: module.to_string(),
            wf_trigger,
            strategy: Strategy::Auto,
            parent: None,
        }
    }

    /// What every request of this template shares, as one line
    /// (`delete Leads workflow=on strategy=auto`, with `parent=ID/List` for
    /// delinks): a selection's shape.
    pub fn shape(&self) -> String {
        let mut shape = format!(
            "{} {} workflow={} strategy={}",
            self.operation.as_str(),
            self.module,
            if self.wf_trigger { "on" } else { "off" },
            self.strategy.as_str()
        );
        if let Some(p) = &self.parent {
            shape.push_str(&format!(" parent={}/{}", p.record_id, p.related_list));
        }
        shape
    }
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub module: String,
    pub cvid: String,
    pub territory_id: Option<String>,
    pub include_child: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub module: String,
    pub cvid: String,
    pub territory_id: Option<String>,
    pub include_child: bool,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub job_id: Option<String>,
    pub zoho_status: Option<String>,
    pub total_count: Option<i64>,
    pub deleted_count: Option<i64>,
    pub failed_count: Option<i64>,
    pub post_attempts: i64,
    pub polls: i64,
    /// Polls in a row that said nothing about the job (see `JobUpdate::PollUnknown`).
    pub unknown_polls: i64,
    pub next_action_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub scheduled_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// The next thing to do for a job.
#[derive(Debug, Clone)]
pub enum JobAction {
    /// POST the job: it is now `scheduling` under this process's lease.
    Schedule(JobRow),
    /// GET the status of the stored `job_id`.
    Poll(JobRow),
}

/// Zoho's counts at a poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub total: Option<i64>,
    pub deleted: Option<i64>,
    pub failed: Option<i64>,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobUpdate {
    /// Zoho accepted the POST: scheduling (or uncertain) → running.
    Scheduled { job_id: String, next_poll_at: i64 },
    /// Zoho certainly did not schedule it: scheduling → pending, try at `retry_at`.
    NotScheduled { retry_at: i64, error: String },
    /// Nobody knows whether Zoho scheduled it: scheduling → uncertain.
    Uncertain { error: String },
    /// Zoho refused it for good: scheduling → failed.
    Refused { error: String },
    /// A poll answered: running stays running, due again at `next_poll_at`.
    Progress {
        status: String,
        counts: JobCounts,
        next_poll_at: i64,
    },
    /// A poll could not be made (throttled, paused, token outage): running
    /// stays running; the error is noted, the poll is not counted.
    PollFailed { next_poll_at: i64, error: String },
    /// A poll was answered with nothing about the job (404, 204, an
    /// unreadable body): counted, and in `unknown_polls` too.
    PollUnknown { next_poll_at: i64, error: String },
    /// The last of `mass_delete.max_unknown_polls` such polls: running → uncertain.
    PollsExhausted { error: String },
    /// The job ended: running → completed / failed (or scheduling → completed
    /// when the view was empty).
    Finished {
        completed: bool,
        status: String,
        counts: JobCounts,
        error: Option<String>,
    },
}

/// Rows by state, operation and module.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CountRow {
    #[sqlx(try_from = "String")]
    pub state: RequestState,
    #[sqlx(try_from = "String")]
    pub operation: Operation,
    pub module: String,
    pub count: i64,
}

/// A paused lane: `scope` is a module, or `*` for everything.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Pause {
    pub scope: String,
    pub code: String,
    pub message: String,
    pub paused_at: i64,
}

/// A recent error on a row (failed, or pending a retry).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ErrorRow {
    pub id: i64,
    pub module: String,
    pub record_id: String,
    #[sqlx(try_from = "String")]
    pub state: RequestState,
    pub code: String,
    pub message: Option<String>,
    pub attempts: i64,
    pub updated_at: i64,
}

/// Rows of one lane in one state, from the maintained counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LaneStateCount {
    #[sqlx(try_from = "String")]
    pub operation: Operation,
    pub module: String,
    pub wf_trigger: bool,
    #[sqlx(try_from = "String")]
    pub strategy: Strategy,
    #[sqlx(try_from = "String")]
    pub state: RequestState,
    pub count: i64,
}

/// Rows of one lane that reached `state` with `code` (what one run did).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FinishedGroup {
    #[sqlx(try_from = "String")]
    pub operation: Operation,
    pub module: String,
    pub wf_trigger: bool,
    #[sqlx(try_from = "String")]
    pub strategy: Strategy,
    #[sqlx(try_from = "String")]
    pub state: RequestState,
    pub code: Option<String>,
    pub count: i64,
}

/// What one lane (operation, module) finished lately: its current rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LaneRate {
    #[sqlx(try_from = "String")]
    pub operation: Operation,
    pub module: String,
    /// Rows that succeeded or failed from [`StatusReport::rates_since`] on.
    pub finished: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Rows by state; pending includes the staged ones.
    pub counts: Vec<CountRow>,
    /// Pending rows not claimable yet: their selection is going in, was
    /// interrupted, or is being released.
    pub staged: Vec<StagedCount>,
    /// Rows finished per lane from `rates_since` (epoch ms, the start of a
    /// minute) to now: each lane's current rate.
    pub rates: Vec<LaneRate>,
    pub rates_since: i64,
    /// The zdel working on this database, if its lease is live.
    pub holder: Option<DaemonHolder>,
    /// Pending rows waiting out a retry delay.
    pub waiting_to_retry: i64,
    pub pauses: Vec<Pause>,
    pub recent_errors: Vec<ErrorRow>,
    /// The last verify runs (`zdel verify`), newest first.
    pub verifications: Vec<VerifyRun>,
    /// Live rows that ask for mass delete with wf_trigger = 0: they are sent
    /// as plain deletes, because mass delete cannot suppress workflows.
    pub mass_delete_without_workflow: i64,
}

/// Totals by state, for progress displays.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TerminalCounts {
    pub pending: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl TerminalCounts {
    pub fn total(&self) -> i64 {
        self.pending + self.running + self.succeeded + self.failed + self.cancelled
    }
    pub fn finished(&self) -> i64 {
        self.succeeded + self.failed + self.cancelled
    }
}

/// One row of `zdel outcomes`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutcomeRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub operation: Operation,
    pub module: String,
    pub record_id: String,
    #[sqlx(try_from = "String")]
    pub state: RequestState,
    pub code: Option<String>,
    pub message: Option<String>,
    pub http_status: Option<i64>,
    pub attempts: i64,
    pub finished_at: Option<i64>,
    /// `zdel verify`'s finding: `verified` (in the recycle bin) or
    /// `not_in_recycle_bin`; empty when not checked.
    pub verification: Option<String>,
    /// Zoho's `deleted_time` and `deleted_by`, when verified.
    pub deleted_time: Option<String>,
    pub deleted_by: Option<String>,
    /// For a delink: the related list, and the related record unlinked
    /// (`record_id` is then the parent).
    pub related_list: Option<String>,
    pub related_id: Option<String>,
    /// Who queued it (the OS user of its selection; `sql` for a plain
    /// INSERT), how (`cli`, `erase`; `sql`), and the configuration's hash.
    pub queued_by: String,
    pub queued_how: String,
    pub config_hash: Option<String>,
}

/// How a selection chose its IDs (`selections.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMethod {
    /// `zdel enqueue --ids`.
    Ids,
    /// `zdel enqueue --file` (or stdin).
    File,
    /// `zdel enqueue --csv`: a Zoho export.
    Csv,
    /// `zdel select --where`: a COQL query, paged by id.
    Coql,
    /// `zdel select --cvid`: a custom view's records, by Get Records.
    Cvid,
    /// `zdel select --via bulk`: criteria or a view, by Bulk Read jobs.
    Bulk,
}

impl SelectionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionMethod::Ids => "ids",
            SelectionMethod::File => "file",
            SelectionMethod::Csv => "csv",
            SelectionMethod::Coql => "coql",
            SelectionMethod::Cvid => "cvid",
            SelectionMethod::Bulk => "bulk",
        }
    }
}

/// A selection about to be queued.
#[derive(Debug, Clone)]
pub struct NewSelection {
    pub module: String,
    pub operation: Operation,
    pub method: SelectionMethod,
    /// The file's name (`stdin` for standard input), the query, the view.
    pub source: Option<String>,
    /// The SHA-256 of the file read (of the list, one ID per line, for
    /// `--ids`), in hex.
    pub source_hash: Option<String>,
    /// What every request shares ([`RequestTemplate::shape`]): a rerun
    /// resumes an unfinished selection only of the same shape.
    pub shape: Option<String>,
    /// The lane's workflow flag and strategy (for counting its staged rows).
    pub wf_trigger: bool,
    pub strategy: Strategy,
    pub os_user: String,
    pub host: String,
    /// How it was queued: `cli` (enqueue), `selection` (select), `restore` or `erase`.
    pub how: String,
    /// A hash of the effective configuration (secrets never in it).
    pub config_hash: Option<String>,
}

/// One step of a release ([`crate::store::Store::release_selection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Rows made claimable.
    pub rows: u64,
    /// Rowids walked.
    pub walked: u64,
    /// The selection's range is walked to its end.
    pub done: bool,
}

/// One row of `zdel selections`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SelectionRow {
    pub id: i64,
    pub module: String,
    pub operation: String,
    pub method: String,
    pub source: Option<String>,
    pub source_hash: Option<String>,
    /// `queueing`, `complete`, `interrupted` or `cancelled`.
    pub state: String,
    pub ids_found: i64,
    pub ids_queued: i64,
    /// IDs skipped because zdel had already deleted them.
    pub ids_already_deleted: i64,
    /// Query selections: pages fetched, and where the next one starts.
    pub pages: i64,
    pub cursor: Option<String>,
    pub os_user: String,
    pub host: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// How it was queued: `cli` (enqueue), `selection` (select), `restore` or `erase`.
    pub how: String,
    /// A hash of the effective configuration it ran with.
    pub config_hash: Option<String>,
}

/// `zdel status --selection N`: the selection, and its rows by state and code.
#[derive(Debug, Clone, Serialize)]
pub struct SelectionReport {
    pub selection: SelectionRow,
    pub counts: Vec<SelectionCount>,
}

/// Rows of a selection in one state (`staged`: pending, not yet released)
/// with one outcome code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SelectionCount {
    pub state: String,
    pub code: Option<String>,
    pub count: i64,
}

/// Staged rows (not claimable until their selection is released) of one
/// selection.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StagedCount {
    pub selection: i64,
    /// The selection's state: `interrupted` ones wait for a rerun or a
    /// cancel; `queueing` ones are going in; `complete` ones are being released.
    pub selection_state: String,
    #[sqlx(try_from = "String")]
    pub operation: Operation,
    pub module: String,
    pub wf_trigger: bool,
    #[sqlx(try_from = "String")]
    pub strategy: Strategy,
    pub count: i64,
}

/// Which rows `outcomes`, `retry` and `cancel` touch. `None` means any.
#[derive(Debug, Clone, Default)]
pub struct OutcomeFilter {
    pub state: Option<RequestState>,
    /// Rows queued by this selection (`zdel selections`).
    pub selection: Option<i64>,
    pub module: Option<String>,
    /// Rows that ended with one of these codes (compared without case).
    pub codes: Option<Vec<String>>,
    pub record_ids: Option<Vec<String>>,
}

/// Rows by state and operation, and mass-delete jobs by state (for gauges).
#[derive(Debug, Clone, Default)]
pub struct Depth {
    pub requests: Vec<RequestDepth>,
    pub jobs: Vec<JobDepth>,
}

impl Depth {
    /// Rows in `state` for `operation`.
    pub fn requests_in(&self, state: RequestState, operation: Operation) -> i64 {
        self.requests
            .iter()
            .filter(|r| r.state == state && r.operation == operation)
            .map(|r| r.count)
            .sum()
    }

    /// Jobs in `state`.
    pub fn jobs_in(&self, state: JobState) -> i64 {
        self.jobs
            .iter()
            .filter(|j| j.state == state)
            .map(|j| j.count)
            .sum()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestDepth {
    #[sqlx(try_from = "String")]
    pub state: RequestState,
    #[sqlx(try_from = "String")]
    pub operation: Operation,
    pub count: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobDepth {
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub count: i64,
}

/// Rows in one state with one outcome code.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeCount {
    #[sqlx(try_from = "String")]
    pub state: RequestState,
    pub code: Option<String>,
    pub count: i64,
}

/// Mass-delete jobs not yet in a final state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct LiveJobs {
    /// Pending, scheduling, running or uncertain.
    pub live: i64,
    /// Of those, uncertain: they wait for an operator.
    pub uncertain: i64,
    /// Of those, being posted or running at Zoho: while one runs, Zoho
    /// takes no other mass delete of the org.
    pub at_zoho: i64,
}

/// What zdel spent of the org's API credits, and what Zoho last said is left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CreditLedger {
    /// Credits zdel's calls cost in the last 24 hours (rolling).
    pub spent_24h: i64,
    /// Zoho's last `X-API-CREDITS-REMAINING` (sent once half the day's
    /// credits are used), and when it came (epoch ms).
    pub remaining: Option<i64>,
    pub remaining_seen_at: Option<i64>,
}

/// A working zdel (serve or drain) as the `daemon_lease` row names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DaemonHolder {
    /// Its worker's lease owner name.
    pub owner: String,
    pub host: String,
    pub pid: i64,
    /// `serve` or `drain`.
    pub command: String,
    /// Epoch ms it took the lease (for a holder being asked: now).
    pub since: i64,
    #[sqlx(default)]
    pub renewed_at: i64,
    #[sqlx(default)]
    pub expires_at: i64,
}

/// This machine's host name (`unknown-host` if it cannot be read).
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Who runs this process: `$USER` (or `$LOGNAME`), else the numeric uid.
pub fn this_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            // SAFETY: getuid has no preconditions and cannot fail.
            format!("uid {}", unsafe { libc::getuid() })
        })
}

impl DaemonHolder {
    /// This process, about to work as `command`, at `now_ms`.
    pub fn this_process(owner: &str, command: &str, now_ms: i64) -> DaemonHolder {
        DaemonHolder {
            owner: owner.to_string(),
            host: this_host(),
            pid: i64::from(std::process::id()),
            command: command.to_string(),
            since: now_ms,
            renewed_at: now_ms,
            expires_at: now_ms,
        }
    }
}

impl std::fmt::Display for DaemonHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ago = |ms: i64| (crate::clock::now_ms() - ms).max(0) / 1000;
        write!(
            f,
            "zdel {} (pid {} on host {}), working since {} s ago, lease renewed {} s ago",
            self.command,
            self.pid,
            self.host,
            ago(self.since),
            ago(self.renewed_at)
        )
    }
}

/// This process's hold on the database's one working-zdel lease. Its OS
/// lock (if it got one) is released when this is dropped or the process dies.
#[derive(Debug)]
pub struct DaemonLease {
    pub token: i64,
    /// The owner name this process's row leases carry.
    pub owner: String,
    /// The lease owner of a holder on this host found dead (its OS lock
    /// free) when this one took over: its running rows can go back at once.
    pub dead_predecessor: Option<String>,
    pub(crate) _lock: Option<std::fs::File>,
}

/// Which succeeded deletes `zdel verify` checks.
#[derive(Debug, Clone, Default)]
pub struct VerifyScope {
    pub selection: Option<i64>,
    pub module: Option<String>,
    /// Rows finished at or after this (ms since the epoch).
    pub since_ms: Option<i64>,
}

/// One module's rows in a verify scope.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerifyLane {
    pub module: String,
    pub rows: i64,
    /// When the earliest of them was queued (ms since the epoch).
    pub earliest: i64,
}

/// A verify run and what it found.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct VerifyRun {
    pub id: i64,
    pub scope: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub checked: i64,
    pub verified: i64,
    pub not_in_bin: i64,
    pub pages: i64,
}
