//! The store: the durable queue, its leases, outcomes, mass-delete jobs,
//! pauses and statistics. It knows nothing of HTTP or Zoho; the worker tells
//! it what happened in the store's own terms.
//!
//! # The contract
//!
//! [`Store`]'s public methods are the one API the worker, the CLI and the
//! HTTP layer use, and their signatures carry only the domain types of
//! [`types`] (re-exported here) — no database type, no wire encoding:
//!
//! * selections: [`Store::begin_selection`], [`Store::begin_enqueue_into`]
//!   (staged rows), [`Store::finish_selection`], [`Store::release_selection`],
//!   [`Store::release_completed`], [`Store::unfinished_selection`],
//!   [`Store::resume_selection`], [`Store::staged_counts`],
//!   [`Store::selections`];
//! * queue: [`Store::begin_enqueue`] ([`Enqueuer`]), [`Store::pending_lanes`],
//!   [`Store::claim_batches`], [`Store::record_outcomes`],
//!   [`Store::reap_expired_leases`], [`Store::release_owned`],
//!   [`Store::release_dry_run`], [`Store::pending_rows`],
//!   [`Store::any_runnable`], [`Store::running_elsewhere`];
//! * mass-delete jobs: [`Store::insert_job`], [`Store::next_job_action`],
//!   [`Store::update_job`], [`Store::reap_stale_scheduling`],
//!   [`Store::reschedule_job`], [`Store::cancel_job`], [`Store::jobs`],
//!   [`Store::live_jobs`];
//! * reading and the operator's changes: [`Store::status`],
//!   [`Store::state_totals`], [`Store::depth`], [`Store::outcomes`],
//!   [`Store::outcome_code_counts`], [`Store::count_matching`],
//!   [`Store::requeue`], [`Store::cancel`], [`Store::succeeded_since`];
//!   pauses: [`Store::pause`], [`Store::resume`], [`Store::resume_all`],
//!   [`Store::pauses`], [`Store::globally_paused`];
//! * lifecycle: [`Store::open`], [`Store::migrate`], [`Store::readiness`],
//!   [`Store::close`].
//!
//! The engine is SQLite, in [`sqlite`]: all of zdel's SQL is there. Adding
//! a backend (PostgreSQL): a sibling module implementing the same methods
//! over the same types, and `Store` choosing between them by
//! `database.url`; the queue-semantics tests (`tests/store_*.rs`) open
//! their store through one helper (`tests/common::open_store`), so they
//! run unchanged against it. The "SQL interface" (`tests/sql_interface.rs`)
//! is a promise about SQLite's own tables and stays SQLite's.
//!
//! # The states of a request (`deletion_requests.state`)
//!
//! ```text
//!            INSERT (SQL or `zdel enqueue`)
//!                      │
//!                      ▼
//!   ┌──────────────► pending ──── `zdel cancel` ───► cancelled
//!   │                  │                                 │
//!   │  claim_batches (worker, BEGIN IMMEDIATE,           │
//!   │   sets lease_token + lease_expires_at)             │
//!   │                  ▼                                 │
//!   ├── retry ──── running ──── record_outcomes ──► succeeded
//!   │   (5xx, timeout,  │        (fenced by lease)
//!   │    429, locked,   │
//!   │    paused lane)   └──── record_outcomes ──► failed
//!   │                                                  │
//!   ├── reap_expired_leases (lease ran out: crash)     │
//!   ├── release_owned (shutdown grace ran out)         │
//!   └──────────────────── `zdel retry` ◄───────────────┴── (and cancelled)
//! ```
//!
//! * `pending`: waiting; the worker claims it once `next_attempt_at` (epoch ms)
//!   has passed and its module's lane is not paused. A row of a selection
//!   still going in (or interrupted) is *staged*: pending with
//!   `next_attempt_at` = [`STAGED`], never due, until the selection is
//!   complete and released.
//! * `running`: claimed under a lease. Only the holder of `lease_token` may move
//!   it on; if the holder dies, [`Store::reap_expired_leases`] moves it back.
//! * `succeeded`, `failed`, `cancelled`: terminal, with `finished_at` (the
//!   `finished_at_iff_terminal` check). Only an operator moves them again
//!   (`zdel retry`).
//!
//! A claim that ends without a recorded answer (crash, shutdown cut-off) adds
//! one to `ambiguous_attempts`: Zoho may have deleted the records, so a later
//! `INVALID_DATA` for that row means "already deleted", not "never existed".

mod error;
pub mod sqlite;
pub mod types;

pub use error::{BackendError, StoreError};
pub use sqlite::{Added, Enqueuer, IdChunk, STAGED, Store};
pub use types::*;
