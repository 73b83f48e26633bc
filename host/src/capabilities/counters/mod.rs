//! Write-behind counters: "user X was active", "thread T used N tokens". Amounts accumulate
//! in memory per key; a key is written once it has been quiet for a while (every event
//! restarts its timer), or once its oldest unwritten amount is `max_delay` old even if it
//! never goes quiet (what a crash can lose is bounded by that), with one upsert whose SQL
//! does the addition, so two hosts flushing the same key never lose an increment of the
//! same thread (a change of thread is last-writer-wins between hosts). An upsert is retried only when it surely did not take
//! effect, so nothing counts twice. Everything pending is written on shutdown.

mod flush;
mod interface;

pub use flush::Flusher;
pub use interface::Context;
pub(crate) use interface::link;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::capabilities::{Build, CacheReport, Lifecycle, Sections, config_store::ConfigStore};
use crate::telemetry::memory::Relief;
use crate::{
    db::{Database, DbError},
    redis::Redis,
};

/// The `[counters]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CountersConfig {
    /// How long a key must be quiet before its total is written, in milliseconds.
    pub quiet_ms: u64,
    /// How long an amount may wait unwritten at most, in milliseconds: a key that never goes
    /// quiet is written this long after its oldest unwritten amount arrived. A crash (no
    /// shutdown flush) loses at most this much of each key's amounts.
    pub max_delay_ms: u64,
    /// Keys accumulated in memory at most; past it, a new key's amount is written at once.
    pub max_pending: usize,
}

impl Default for CountersConfig {
    fn default() -> Self {
        Self {
            quiet_ms: 600_000,
            // A minute of activity at most lost to a crash, a write per busy key per minute.
            max_delay_ms: 60_000,
            max_pending: 100_000,
        }
    }
}

/// Which total an amount adds to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// The plugin that counts (its namespace).
    pub plugin: String,
    /// What is counted, e.g. `tokens`.
    pub counter: String,
    /// Whom or what it is counted for, e.g. a user id.
    pub subject: String,
}

/// What is waiting to be written for one key.
#[derive(Debug, Clone)]
struct Pending {
    amount: i64,
    thread: String,
    /// When the oldest unwritten amount arrived (the maximum delay runs from it).
    first: Instant,
    /// When the latest arrived (the quiet period runs from it).
    last: Instant,
}

impl Pending {
    /// When it is due: quiet long enough, or waiting too long.
    fn due_at(&self, quiet: Duration, max_delay: Duration) -> Instant {
        (self.last + quiet).min(self.first + max_delay)
    }
}

/// Counters of the write-behind itself.
#[derive(Debug, Default)]
pub struct CounterStats {
    /// Amounts recorded.
    pub recorded: AtomicU64,
    /// Amounts of zero or less, skipped.
    pub skipped: AtomicU64,
    /// Upserts written.
    pub writes: AtomicU64,
    /// Writes that failed (their amounts were kept for the next flush).
    pub failed_writes: AtomicU64,
    /// Passes of the background flusher over the pending keys (none while nothing waits).
    pub scans: AtomicU64,
}

/// The write-behind of one host.
pub struct WriteBehind {
    db: Database,
    quiet: Duration,
    max_delay: Duration,
    max_pending: usize,
    pending: Mutex<HashMap<CounterKey, Pending>>,
    /// Wakes the flusher when a key starts waiting while none did.
    wake: Notify,
    /// Keys taken out of `pending` whose write has not finished.
    writing: AtomicUsize,
    stats: CounterStats,
    /// Stored totals and threads, as this host's last write or read saw them.
    copies: Cache<CounterKey, (i64, String)>,
    /// The same copies in Redis, for every host.
    redis: Option<Arc<Redis>>,
    /// The flusher, while the host runs.
    flusher: Mutex<Option<Flusher>>,
}

impl Relief for WriteBehind {
    fn shrink(&self) -> BoxFuture<'_, ()> {
        Box::pin(WriteBehind::shrink(self))
    }
}

impl Build for WriteBehind {
    fn build(store: &Arc<ConfigStore>, sections: Sections<'_>) -> Arc<Self> {
        let (db, redis) = (store.database().clone(), store.redis().cloned());
        WriteBehind::new(db, sections.counters, redis)
    }
}

impl Lifecycle for WriteBehind {
    fn start(self: Arc<Self>) {
        let flusher = WriteBehind::start(&self);
        *self.flusher.lock().unwrap_or_else(|e| e.into_inner()) = Some(flusher);
    }

    /// Stops the flusher and writes everything pending.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            let flusher = self
                .flusher
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(flusher) = flusher {
                flusher.stop().await;
            }
            let written = self.flush_all().await;
            tracing::info!(written, left = self.pending(), "counters flushed");
        })
    }

    /// Its copies of the stored totals.
    fn cache(&self) -> BoxFuture<'_, Option<(&'static str, CacheReport)>> {
        Box::pin(async {
            let entries = self.copies().await;
            let cache = CacheReport {
                entries,
                bytes: None,
            };
            Some(("counters", cache))
        })
    }
}

/// Stored totals kept in memory: enough for the active users of a big bot.
const MAX_COPIES: u64 = 100_000;
/// How long a copy is trusted: another host's writes show after at most this.
const COPY_TTL: Duration = Duration::from_secs(60);

impl WriteBehind {
    /// A write-behind over `db` (migrated), with copies of the stored totals in `redis`
    /// when given.
    pub fn new(db: Database, config: &CountersConfig, redis: Option<Arc<Redis>>) -> Arc<Self> {
        Arc::new(Self {
            db,
            quiet: Duration::from_millis(config.quiet_ms),
            max_delay: Duration::from_millis(config.max_delay_ms),
            max_pending: config.max_pending,
            pending: Mutex::default(),
            wake: Notify::new(),
            writing: AtomicUsize::new(0),
            stats: CounterStats::default(),
            copies: Cache::builder()
                .max_capacity(MAX_COPIES)
                .time_to_live(COPY_TTL)
                .build(),
            redis,
            flusher: Mutex::new(None),
        })
    }

    /// Its counters.
    pub fn stats(&self) -> &CounterStats {
        &self.stats
    }

    /// Stored totals held in memory.
    pub async fn copies(&self) -> u64 {
        self.copies.run_pending_tasks().await;
        self.copies.entry_count()
    }

    /// Drops the in-memory copies (memory pressure); reads go to Redis or the database.
    pub async fn shrink(&self) {
        self.copies.invalidate_all();
        self.copies.run_pending_tasks().await;
    }

    /// Keys waiting to be written, or being written.
    pub fn pending(&self) -> usize {
        self.lock().len() + self.writing.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CounterKey, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `amount` to `key`'s total in `thread`. An amount of zero or less is skipped
    /// (a zero is ordinary, e.g. a model that reported no tokens: not logged; a negative
    /// one is a plugin's mistake: a debug line). When the thread differs from the one accumulating, what accumulated is
    /// written first (it belongs to the old thread) and the new thread starts from `amount`
    /// (if that write fails, nothing is lost that counts: the new thread restarts the total).
    pub async fn record(&self, key: CounterKey, amount: i64, thread: &str) {
        if amount <= 0 {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            if amount < 0 {
                tracing::debug!(
                    plugin = %key.plugin,
                    counter = %key.counter,
                    amount,
                    "negative counter amount skipped: counters only grow"
                );
            }
            return;
        }
        self.stats.recorded.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let arrived = Pending {
            amount,
            thread: thread.to_owned(),
            first: now,
            last: now,
        };
        // What to write now: the old thread's amount, or this one when memory is full.
        let write_now = {
            let mut pending = self.lock();
            let full = pending.len() >= self.max_pending;
            // The flusher sleeps while nothing waits: the first key wakes it. Any other
            // key's deadline comes before this one's, so it is awake for them already.
            if pending.is_empty() && !full {
                self.wake.notify_one();
            }
            match pending.get_mut(&key) {
                Some(waiting) if waiting.thread == thread => {
                    waiting.amount = waiting.amount.saturating_add(amount);
                    waiting.last = arrived.last;
                    None
                }
                Some(_) => pending.insert(key.clone(), arrived),
                None if full => Some(arrived),
                None => pending.insert(key.clone(), arrived),
            }
        };
        if let Some(now) = write_now {
            self.writing.fetch_add(1, Ordering::AcqRel);
            if let Err(error) = self.write(&key, &now, true).await {
                tracing::warn!(plugin = %key.plugin, counter = %key.counter, "{error}");
            }
            self.writing.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The stored total of `key` and its thread (what has been written, not what waits),
    /// from this host's copy, else Redis', else the database.
    pub async fn stored(&self, key: &CounterKey) -> Result<Option<(i64, String)>, DbError> {
        if let Some(copy) = self.copies.get(key).await {
            return Ok(Some(copy));
        }
        if let Some(redis) = &self.redis
            && let Some(data) = redis.get_versioned(&Self::redis_key(key)).await
            && let Ok(copy) = serde_json::from_value::<(i64, String)>(data)
        {
            self.copies.entry(key.clone()).or_insert(copy.clone()).await;
            return Ok(Some(copy));
        }
        let row = self
            .db
            .run("counters.read", || {
                sqlx::query_as::<_, (i64, String, i64)>(
                    "SELECT total, thread_id, version FROM counters \
                     WHERE plugin = $1 AND counter = $2 AND subject = $3",
                )
                .bind(&key.plugin)
                .bind(&key.counter)
                .bind(&key.subject)
                .fetch_optional(self.db.pool())
            })
            .await?;
        Ok(match row {
            Some((total, thread, version)) => {
                self.copy(key, total, thread.clone(), version, false).await;
                Some((total, thread))
            }
            None => None,
        })
    }

    /// Keeps what the database said of `key` at `version`: in this host's copies (over an
    /// older copy only when `written`: a read does not replace what a write left), and in
    /// Redis unless it has a later version.
    async fn copy(
        &self,
        key: &CounterKey,
        total: i64,
        thread: String,
        version: i64,
        written: bool,
    ) {
        if let Some(redis) = &self.redis {
            let data = serde_json::json!([total, thread]);
            redis
                .put_versioned(&Self::redis_key(key), &data, version, COPY_TTL)
                .await;
        }
        if written {
            self.copies.insert(key.clone(), (total, thread)).await;
        } else {
            self.copies
                .entry(key.clone())
                .or_insert((total, thread))
                .await;
        }
    }

    fn redis_key(key: &CounterKey) -> String {
        // JSON keeps the parts apart whatever they hold.
        let parts = [&key.plugin, &key.counter, &key.subject];
        format!(
            "wasmbot:counter:{}",
            serde_json::to_string(&parts).unwrap_or_default()
        )
    }
}
