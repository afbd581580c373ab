//! What a run shows while it works and when it ends, for `drain` and the
//! demo alike: a progress bar on a terminal, a progress line in the log
//! every `log.progress_interval_ms` off one, and a summary — IDs by outcome
//! and code, calls made against the minimum, elapsed time, rate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

use crate::org::OrgId;
use crate::store::{FinishedGroup, LaneKey, RequestState, Store, StoreError};
use crate::worker::WorkerSettings;
use crate::zoho::ResultCode;

/// How often the bar is redrawn (the counts it reads are maintained: cheap).
const BAR_TICK: Duration = Duration::from_millis(200);

/// A run's progress display, until [`Progress::finish`].
pub struct Progress {
    watcher: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Start showing progress: a bar when `on_terminal`, else a log line
    /// every `every` (none when zero). Counts from what is finished now.
    pub async fn start(store: &Store, every: Duration, on_terminal: bool) -> Progress {
        let start = store.state_totals().await.unwrap_or_default();
        let bar = on_terminal.then(|| {
            let bar = ProgressBar::new((start.pending + start.running).max(0) as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} IDs ({per_sec}, ETA {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let store = store.clone();
        let shown = bar.clone();
        let watcher = tokio::spawn(async move {
            let tick = if shown.is_some() { BAR_TICK } else { every };
            if tick.is_zero() {
                return;
            }
            let (mut last_done, mut last_at) = (0i64, Instant::now());
            loop {
                tokio::time::sleep(tick).await;
                let Ok(now) = store.state_totals().await else {
                    continue;
                };
                let done = now.finished() - start.finished();
                let left = now.pending + now.running;
                match &shown {
                    Some(bar) => {
                        bar.set_length((done + left).max(0) as u64);
                        bar.set_position(done.max(0) as u64);
                    }
                    None => {
                        let rate = (done - last_done) as f64 / last_at.elapsed().as_secs_f64();
                        let eta_s = (rate > 0.0).then(|| (left as f64 / rate).ceil() as u64);
                        info!(
                            done,
                            left,
                            ids_per_s = (rate * 10.0).round() / 10.0,
                            eta_s,
                            "progress"
                        );
                        (last_done, last_at) = (done, Instant::now());
                    }
                }
            }
        });
        Progress { watcher, bar }
    }

    /// Stop showing progress (the bar is cleared: the summary follows).
    pub fn finish(self) {
        self.watcher.abort();
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What a run did, read back from the store when it ends.
pub struct RunReport {
    /// Finished since the run started, by lane, state and code.
    pub groups: Vec<FinishedGroup>,
    /// Requests sent to the CRM API.
    pub calls: u64,
    /// The fewest calls that could have finished the same IDs: per lane,
    /// the succeeded and failed IDs over the lane's largest batch.
    pub minimum: u64,
    pub elapsed: Duration,
}

impl RunReport {
    pub async fn read(
        store: &Store,
        since_ms: i64,
        calls: u64,
        settings: &WorkerSettings,
        elapsed: Duration,
    ) -> Result<RunReport, StoreError> {
        let groups = store.finished_since_by_lane(since_ms).await?;
        let mut sent: BTreeMap<LaneKey, u64> = BTreeMap::new();
        for g in groups.iter().filter(|g| g.state != RequestState::Cancelled) {
            let lane = LaneKey {
                org: OrgId::default(),
                operation: g.operation,
                module: g.module.clone(),
                wf_trigger: g.wf_trigger,
                strategy: g.strategy,
            };
            *sent.entry(lane).or_default() += g.count.max(0) as u64;
        }
        let minimum = sent
            .iter()
            .map(|(lane, n)| n.div_ceil(u64::from(settings.batch_limit(lane).max(1))))
            .sum();
        Ok(RunReport {
            groups,
            calls,
            minimum,
            elapsed,
        })
    }

    /// IDs finished by this run.
    pub fn finished(&self) -> i64 {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// Print the summary; `meaning` says what a (state, code) group means.
    pub fn print(&self, meaning: impl Fn(RequestState, Option<&str>) -> &'static str) {
        let mut by_code: Vec<(RequestState, Option<&str>, i64)> = Vec::new();
        for g in &self.groups {
            match by_code
                .iter_mut()
                .find(|(s, c, _)| *s == g.state && *c == g.code.as_deref())
            {
                Some(entry) => entry.2 += g.count,
                None => by_code.push((g.state, g.code.as_deref(), g.count)),
            }
        }
        by_code.sort_by_key(|g| (g.0, -g.2));
        println!("\nIDs by outcome (this run):");
        if by_code.is_empty() {
            println!("  none finished");
        }
        for (state, code, count) in &by_code {
            println!(
                "  {:<10} {:<18} {:>9}  {}",
                state.as_str(),
                code.unwrap_or("-"),
                count,
                meaning(*state, *code)
            );
        }
        let secs = self.elapsed.as_secs_f64().max(0.001);
        println!(
            "\ncalls made:        {} (minimum for these IDs: {})",
            self.calls, self.minimum
        );
        println!(
            "elapsed:           {:.1} s, {:.0} IDs/s, {:.1} calls/s",
            secs,
            self.finished() as f64 / secs,
            self.calls as f64 / secs
        );
    }
}

/// What a group of outcomes means, in words, for any run.
pub fn meaning(state: RequestState, code: Option<&str>) -> &'static str {
    match (state, code.map(ResultCode::parse)) {
        (RequestState::Succeeded, Some(ResultCode::Success)) => "deleted",
        (RequestState::Succeeded, Some(ResultCode::InvalidData)) => {
            "gone: deleted by an earlier call whose answer was lost (the message says whether the recycle bin confirmed it)"
        }
        (RequestState::Failed, Some(ResultCode::InvalidData)) => {
            "Zoho has no such record (wrong ID, module, or already deleted elsewhere)"
        }
        (RequestState::Cancelled, _) => "cancelled by an operator",
        (RequestState::Failed, _) => "see `zdel outcomes --state failed`",
        _ => "",
    }
}
