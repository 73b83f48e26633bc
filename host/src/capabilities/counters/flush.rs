//! Writing what accumulated: keys quiet for long enough or waiting for the maximum delay,
//! or everything at shutdown.

use tokio::sync::Notify;

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use super::{CounterKey, Pending, WriteBehind};
use crate::db::{DbError, now_ms};

/// Adds the amount when the thread is the stored one, restarts from it otherwise.
const UPSERT: &str = "INSERT INTO counters \
     (plugin, counter, subject, thread_id, total, updated_at, version) \
     VALUES ($1, $2, $3, $4, $5, $6, 1) \
     ON CONFLICT (plugin, counter, subject) DO UPDATE SET \
     total = CASE WHEN counters.thread_id = excluded.thread_id \
             THEN counters.total + excluded.total ELSE excluded.total END, \
     thread_id = excluded.thread_id, updated_at = excluded.updated_at, \
     version = counters.version + 1 \
     RETURNING total, thread_id, version";

impl WriteBehind {
    /// Writes the keys that are due: quiet for the configured time, or holding an amount
    /// that has waited the maximum delay; returns how many.
    pub async fn flush_due(&self) -> usize {
        let due = self.take_due();
        self.write_all(due).await
    }

    /// Writes everything pending (at shutdown); returns how many keys.
    pub async fn flush_all(&self) -> usize {
        let due = self.take(|_| true);
        self.write_all(due).await
    }

    /// Flushes due keys in the background until [`Flusher::stop`]. It sleeps until the
    /// earliest deadline of what waits (at least a tick, so keys due close together go in
    /// one pass), and while nothing waits it sleeps until a key does: an idle bot does no
    /// periodic work.
    pub fn start(self: &Arc<Self>) -> Flusher {
        let tick = (self.quiet.min(self.max_delay) / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let counters = Arc::clone(self);
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            loop {
                counters.stats.scans.fetch_add(1, Ordering::Relaxed);
                let due = counters.take_due();
                // A flush under way is never cut short: stopping waits for it.
                counters.write_all(due).await;
                // After the writes: an amount whose write failed waits again.
                let next = counters.next_due();
                let wait = async {
                    match next {
                        Some(at) => {
                            let at = at.max(Instant::now() + tick);
                            tokio::time::sleep_until(at.into()).await;
                        }
                        // Woken by the first key recorded (a permit is kept if it came
                        // since the pass above).
                        None => counters.wake.notified().await,
                    }
                };
                tokio::select! {
                    () = wait => {}
                    () = stopped.notified() => break,
                };
            }
        });
        Flusher { stop, task }
    }

    /// Takes the keys due now.
    fn take_due(&self) -> Vec<(CounterKey, Pending)> {
        let now = Instant::now();
        self.take(|pending| pending.due_at(self.quiet, self.max_delay) <= now)
    }

    /// When the first of the waiting keys is due, if any waits.
    fn next_due(&self) -> Option<Instant> {
        self.lock()
            .values()
            .map(|pending| pending.due_at(self.quiet, self.max_delay))
            .min()
    }

    fn take(&self, due: impl Fn(&Pending) -> bool) -> Vec<(CounterKey, Pending)> {
        let mut pending = self.lock();
        let keys: Vec<CounterKey> = pending
            .iter()
            .filter(|(_, waiting)| due(waiting))
            .map(|(key, _)| key.clone())
            .collect();
        self.writing.fetch_add(keys.len(), Ordering::AcqRel);
        keys.into_iter()
            .filter_map(|key| pending.remove(&key).map(|waiting| (key, waiting)))
            .collect()
    }

    async fn write_all(&self, due: Vec<(CounterKey, Pending)>) -> usize {
        let mut written = 0;
        let mut due = due.into_iter();
        while let Some((key, waiting)) = due.next() {
            match self.write(&key, &waiting, false).await {
                Ok(()) => written += 1,
                // The database is unreachable (its health said so, once): the rest of the
                // pass is kept untried rather than each key waiting out the pool's timeouts,
                // which would also hold up the stop.
                Err(error) if error.is_outage() => {
                    tracing::debug!(
                        keys = 1 + due.len(),
                        "counters kept for the next flush: {error}"
                    );
                    for (key, waiting) in std::iter::once((key, waiting)).chain(due.by_ref()) {
                        self.keep(key, waiting);
                        self.writing.fetch_sub(1, Ordering::AcqRel);
                    }
                    break;
                }
                Err(error) if error.retryable() => {
                    tracing::warn!(
                        plugin = %key.plugin,
                        counter = %key.counter,
                        "counter not written, kept for the next flush: {error}"
                    );
                    self.keep(key, waiting);
                }
                // Trying again could not help (an overflowing total): said, and dropped.
                Err(error) => tracing::error!(
                    plugin = %key.plugin,
                    counter = %key.counter,
                    amount = waiting.amount,
                    "counter dropped: {error}"
                ),
            }
            self.writing.fetch_sub(1, Ordering::AcqRel);
        }
        written
    }

    /// Puts an unwritten amount back, merged with what arrived meanwhile in the same thread.
    fn keep(&self, key: CounterKey, unwritten: Pending) {
        let mut pending = self.lock();
        match pending.get_mut(&key) {
            Some(newer) if newer.thread == unwritten.thread => {
                newer.amount = newer.amount.saturating_add(unwritten.amount);
            }
            // A newer thread restarted the total: the old thread's amount no longer counts.
            Some(_) => {}
            None => {
                // A sleeping flusher must come back for it (it may be all that waits).
                self.wake.notify_one();
                // Tried again after a quiet period or the maximum delay, whichever is
                // shorter, not at every pass.
                let now = Instant::now();
                pending.insert(
                    key,
                    Pending {
                        first: now,
                        last: now,
                        ..unwritten
                    },
                );
            }
        }
    }

    /// One adding upsert, retried only when it surely did not take effect (it must never
    /// add twice); `once` for a plugin's call, which must not wait out a backoff.
    pub(super) async fn write(
        &self,
        key: &CounterKey,
        waiting: &Pending,
        once: bool,
    ) -> Result<(), DbError> {
        let upsert = || {
            sqlx::query_as::<_, (i64, String, i64)>(UPSERT)
                .bind(&key.plugin)
                .bind(&key.counter)
                .bind(&key.subject)
                .bind(&waiting.thread)
                .bind(waiting.amount)
                .bind(now_ms())
                .fetch_one(self.db.pool())
        };
        let result = match once {
            true => self.db.run_once("counters.write", upsert).await,
            false => self.db.run_additive("counters.write", upsert).await,
        };
        match result {
            Ok((total, thread, version)) => {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
                // The cached copies are what this write left.
                self.copy(key, total, thread, version, true).await;
                Ok(())
            }
            Err(error) => {
                self.stats.failed_writes.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }
}

/// The background flusher of a [`WriteBehind`].
pub struct Flusher {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Flusher {
    /// Stops it, waiting for a flush under way to finish (then call
    /// [`WriteBehind::flush_all`]).
    pub async fn stop(self) {
        self.stop.notify_one();
        if let Err(error) = self.task.await {
            tracing::error!("the counters' flusher failed: {error}");
        }
    }
}
