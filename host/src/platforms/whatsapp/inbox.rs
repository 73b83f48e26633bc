//! The durable inbox: a webhook's items are written here before Meta gets its 200, so an
//! item acknowledged is never lost, and only an item not seen before is written, so Meta's
//! redeliveries (for days) are not processed again once an item is done. Workers process
//! them, one user's always on the same worker and in order; the host that wrote an item
//! claims it for a while, and items whose claim ran out (their host stopped or crashed) are
//! taken up by any host.
//!
//! Processing is at least once: an item is marked done after it was processed (its answer
//! sent), so a crash in between processes it again (marking it first could lose it). A
//! worker starts an item only while fewer than `whatsapp.marks_ahead` (4) of its items wait
//! for their mark, so a crash repeats at most that many items per worker, however slow or
//! unreachable the database is; the marks of items that finish meanwhile, on any worker,
//! share one statement.
//!
//! The de-duplication is the inbox's own primary key, in the same statement that makes the
//! item durable: Redis would add a round trip, and a crash between the two would lose
//! a message or process it twice.

use std::{
    collections::VecDeque,
    hash::{Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use moka::future::Cache;
use sqlx::AssertSqlSafe;
use tokio::sync::{mpsc, oneshot};

use super::{
    Traffic, WhatsAppConfig,
    payload::{Item, ItemBody, Status},
};
use crate::{
    db::{Database, DbError, now_ms},
    dispatch::Dispatcher,
};

/// Items waiting for one worker; past it, an item waits in the table for the rescan.
const LANE_DEPTH: usize = 1024;
/// Rows one rescan takes.
const RESCAN_BATCH: i64 = 500;
/// How often processed items past the de-duplication window are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How long a failed done mark waits before it is tried again (its worker waits too).
const MARK_RETRY: Duration = Duration::from_secs(1);

/// An item on its way to a worker.
struct Pending {
    key: String,
    item: Item,
}

/// A processed item on its way to be marked done; its worker waits for `marked`.
struct Processed {
    key: String,
    marked: oneshot::Sender<()>,
}

/// How processed items are marked done: what it costs in statements, and how many items a
/// crash would process again.
#[derive(Debug, Default)]
pub struct Marking {
    /// Statements that marked items done (one per batch).
    pub statements: AtomicU64,
    /// Items processed (answered) and not marked done yet, all workers together: a crash
    /// now processes them again.
    pub unmarked: AtomicUsize,
    /// The most items there have been processed and not marked done at once, all workers
    /// together (at most `workers × marks_ahead`).
    pub most_unmarked: AtomicUsize,
}

/// The inbox of one host.
pub struct Inbox {
    db: Database,
    claim: Duration,
    /// The webhook path's deadline for the write (Meta waits on it).
    write_timeout: Duration,
    dedupe: Duration,
    workers: usize,
    lanes: ArcSwapOption<Vec<mpsc::Sender<Pending>>>,
    /// This host's name in claims.
    host: String,
    stopping: AtomicBool,
    /// Each user's last message (for the 24-hour window), as this host saw it.
    last_message: Cache<String, (String, i64)>,
    traffic: Arc<Traffic>,
    /// Items a worker may run ahead of their done marks.
    marks_ahead: usize,
    marking: Marking,
}

/// The last message a user sent to one of the bot's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastMessage {
    /// The business number it reached.
    pub phone_id: String,
    /// When Meta received it, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

impl Inbox {
    /// The inbox in `db`, with the claim and de-duplication times of `config`.
    pub fn new(db: Database, config: &WhatsAppConfig, traffic: Arc<Traffic>) -> Self {
        Self {
            db,
            claim: Duration::from_secs(config.claim_s.max(1)),
            write_timeout: Duration::from_millis(config.write_timeout_ms.max(1)),
            dedupe: Duration::from_secs(config.dedupe_hours * 3600),
            workers: config.workers.max(1),
            lanes: ArcSwapOption::empty(),
            host: format!("{}-{}", std::process::id(), now_ms()),
            stopping: AtomicBool::new(false),
            last_message: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.window())
                .build(),
            traffic,
            marks_ahead: config.marks_ahead.max(1),
            marking: Marking::default(),
        }
    }

    /// How processed items are being marked done.
    pub fn marking(&self) -> &Marking {
        &self.marking
    }

    /// Writes the items not seen before (one statement per 500) and hands them to the
    /// workers; returns how many were new. When this fails, the caller answers Meta with an
    /// error so it delivers again: what was written already is then a duplicate, not a loss.
    ///
    /// Meta waits on this: it is tried once, within `whatsapp.write_timeout_ms` in all,
    /// never through the retry policy's backoff. A write cut short by the deadline may
    /// have committed; its items are then claimed by this host but with no worker, and the
    /// rescan takes them up when the claim runs out, while Meta's redelivery is a duplicate.
    pub async fn accept(&self, mut items: Vec<Item>) -> Result<usize, DbError> {
        let deadline = tokio::time::Instant::now() + self.write_timeout;
        // One delivery may carry an item twice; the statement would return it once.
        let mut seen = std::collections::HashSet::new();
        let delivered = items.len();
        items.retain(|item| seen.insert(item.key()));
        let lanes = self.lanes.load_full();
        let now = now_ms();
        let claimed_until = match lanes {
            Some(_) => now + self.claim.as_millis() as i64,
            None => 0,
        };
        let mut fresh = 0;
        for chunk in items.chunks(500) {
            let rows = chunk
                .iter()
                .map(|item| {
                    let payload = serde_json::to_string(item).unwrap_or_default();
                    (item.key(), payload, item)
                })
                .collect::<Vec<_>>();
            let sql = insert_sql(rows.len());
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let keys: Vec<String> = self
                .db
                .run_within("whatsapp inbox write", left, || {
                    let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql.clone()));
                    for (key, payload, item) in &rows {
                        query = query
                            .bind(key)
                            .bind(&item.phone_id)
                            .bind(item.user())
                            .bind(i64::from(item.is_message()))
                            .bind(payload)
                            .bind(now)
                            .bind(claimed_until)
                            .bind(&self.host);
                    }
                    query.fetch_all(self.db.pool())
                })
                .await?;
            fresh += keys.len();
            for (key, _, item) in rows {
                if keys.contains(&key) {
                    self.hand_over(Pending {
                        key,
                        item: item.clone(),
                    })
                    .await;
                }
            }
        }
        Traffic::count(&self.traffic.received, fresh);
        Traffic::count(&self.traffic.duplicates, delivered - fresh);
        Ok(fresh)
    }

    /// What went through WhatsApp on this host.
    pub fn traffic(&self) -> &Arc<Traffic> {
        &self.traffic
    }

    /// Gives a fresh item to its worker; with none running, or its lane full, releases it
    /// for the rescan.
    async fn hand_over(&self, pending: Pending) {
        let lanes = self.lanes.load();
        let sent = match lanes.as_deref() {
            Some(lanes) => {
                let lane = &lanes[lane_of(pending.item.user(), lanes.len())];
                lane.try_send(pending).map_err(|error| match error {
                    mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
                })
            }
            None => Err(pending),
        };
        if let Err(pending) = sent {
            self.release(&pending.key).await;
        }
    }

    /// Frees an item for any host's rescan. On the webhook path: tried once, within the
    /// write's deadline (the claim runs out otherwise).
    async fn release(&self, key: &str) {
        let released = self
            .db
            .run_within("whatsapp inbox release", self.write_timeout, || {
                sqlx::query(
                    "UPDATE whatsapp_inbox SET claimed_until = 0 WHERE item_key = $1 AND done_ms = 0",
                )
                .bind(key)
                .execute(self.db.pool())
            })
            .await;
        if let Err(error) = released {
            error.log_quietly_if_outage(&format!(
                "whatsapp item {key} stays claimed until its claim runs out"
            ));
        }
    }

    /// The database the inbox is in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Items not processed yet, by any host of the bot.
    pub async fn pending(&self) -> Result<i64, DbError> {
        self.db
            .run("whatsapp inbox count", || {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM whatsapp_inbox WHERE done_ms = 0",
                )
                .fetch_one(self.db.pool())
            })
            .await
    }

    /// The user's last message to the bot: this host's memory of it, else the inbox's.
    pub async fn last_message(&self, user: &str) -> Result<Option<LastMessage>, DbError> {
        if let Some((phone_id, at_ms)) = self.last_message.get(user).await {
            return Ok(Some(LastMessage { phone_id, at_ms }));
        }
        let row = self
            .db
            .run("whatsapp last message", || {
                sqlx::query_as::<_, (String, i64)>(
                    "SELECT phone_id, received_ms FROM whatsapp_inbox \
                     WHERE user_id = $1 AND is_message = 1 ORDER BY received_ms DESC LIMIT 1",
                )
                .bind(user)
                .fetch_optional(self.db.pool())
            })
            .await?;
        Ok(row.map(|(phone_id, at_ms)| LastMessage { phone_id, at_ms }))
    }

    /// Starts the workers and the rescan (which first takes up what earlier hosts left).
    pub fn start(self: &Arc<Self>, dispatcher: Arc<Dispatcher>) -> Workers {
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        let (processed, keys) = mpsc::channel::<Processed>(LANE_DEPTH);
        for _ in 0..self.workers {
            let (send, mut receive) = mpsc::channel::<Pending>(LANE_DEPTH);
            lanes.push(send);
            let (inbox, dispatcher) = (Arc::clone(self), Arc::clone(&dispatcher));
            let processed = processed.clone();
            tasks.push(tokio::spawn(async move {
                // This worker's items processed and not marked done yet, oldest first.
                let mut unmarked = VecDeque::new();
                while let Some(pending) = receive.recv().await {
                    // A worker runs at most `marks_ahead` items ahead of the database (the
                    // one it starts included): that many at most run again after a crash.
                    // A mark whose sender is gone (the marker ended) waits no longer, and
                    // once stopping none is waited for: nothing more is started.
                    while unmarked.len() >= inbox.marks_ahead
                        && !inbox.stopping.load(Ordering::Relaxed)
                    {
                        if let Some(mark) = unmarked.pop_front() {
                            let _ = mark.await;
                        }
                    }
                    // Stopping (checked after the wait, which may have been long): what
                    // waits is released for the next host, not started.
                    if inbox.stopping.load(Ordering::Relaxed) {
                        continue;
                    }
                    let key = inbox.process(&dispatcher, pending).await;
                    // Counted before the marker can see it, so its decrement never comes
                    // first.
                    let waiting = inbox.marking.unmarked.fetch_add(1, Ordering::AcqRel);
                    inbox
                        .marking
                        .most_unmarked
                        .fetch_max(waiting + 1, Ordering::AcqRel);
                    let (marked, done) = oneshot::channel();
                    if processed.send(Processed { key, marked }).await.is_ok() {
                        unmarked.push_back(done);
                    } else {
                        inbox.marking.unmarked.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }));
        }
        self.lanes.store(Some(Arc::new(lanes)));
        let inbox = Arc::clone(self);
        let rescan = tokio::spawn(async move { inbox.rescan_forever().await });
        let inbox = Arc::clone(self);
        let marker = tokio::spawn(async move { inbox.mark_done_forever(keys).await });
        Workers {
            inbox: Arc::clone(self),
            tasks,
            rescan,
            marker,
        }
    }

    /// Processes one item: its event through the dispatcher; returns its key, to be marked
    /// done. An item that is not an event (a status the host does not know) is only
    /// recorded.
    async fn process(&self, dispatcher: &Dispatcher, pending: Pending) -> String {
        let Pending { key, item } = pending;
        let now = now_ms();
        let event = item.event(now as u64);
        match &item.body {
            ItemBody::Message { message, .. } => {
                let at = event.as_ref().map_or(now, |e| e.timestamp_ms as i64);
                self.note_message(&message.from, &item.phone_id, at).await;
            }
            ItemBody::Status(status) => {
                if let Err(error) = self.record(status).await {
                    tracing::warn!(message = %status.id, "whatsapp status not recorded: {error}");
                }
            }
        }
        match event {
            Some(event) => {
                dispatcher.dispatch(event).await;
            }
            None => {
                tracing::debug!(item = %key, "whatsapp status of an unknown kind recorded only")
            }
        }
        key
    }

    /// Marks processed items done, as many in one statement as finished meanwhile (a
    /// write per item would halve the inbox's throughput), then lets their workers go on.
    /// Until then an item counts as unprocessed: a crash in between processes it again (at
    /// least once, never lost).
    async fn mark_done_forever(&self, mut done: mpsc::Receiver<Processed>) {
        let mut batch = Vec::new();
        while done.recv_many(&mut batch, RESCAN_BATCH as usize).await > 0 {
            let keys: Vec<&str> = batch.iter().map(|item| item.key.as_str()).collect();
            self.mark_done(&keys).await;
            Traffic::count(&self.traffic.processed, batch.len());
            self.marking
                .unmarked
                .fetch_sub(batch.len(), Ordering::AcqRel);
            for item in batch.drain(..) {
                let _ = item.marked.send(());
            }
        }
    }

    /// One statement marking `keys` done, tried until it is written while the database
    /// is unreachable: their workers wait meanwhile, so no more items are processed that
    /// a crash would process again.
    async fn mark_done(&self, keys: &[&str]) {
        let sql = format!(
            "UPDATE whatsapp_inbox SET done_ms = $1, payload = NULL, claimed_until = 0 \
             WHERE item_key IN ({})",
            (2..keys.len() + 2)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut failing = false;
        loop {
            let done = self
                .db
                .run("whatsapp inbox done", || {
                    let mut query = sqlx::query(AssertSqlSafe(sql.clone())).bind(now_ms());
                    for key in keys {
                        query = query.bind(*key);
                    }
                    query.execute(self.db.pool())
                })
                .await;
            match done {
                Ok(_) => {
                    self.marking.statements.fetch_add(1, Ordering::Relaxed);
                    if failing {
                        tracing::info!(items = keys.len(), "whatsapp items marked done");
                    }
                    return;
                }
                Err(error) if error.retryable() => {
                    if !failing {
                        failing = true;
                        tracing::warn!(
                            items = keys.len(),
                            "whatsapp items processed but not marked done yet (a crash now \
                             runs them again); their workers wait: {error}"
                        );
                    }
                    tokio::time::sleep(MARK_RETRY).await;
                }
                // Trying again could not help: said, and the workers go on.
                Err(error) => {
                    tracing::warn!(
                        items = keys.len(),
                        "whatsapp items processed but not marked done (they may run again): {error}"
                    );
                    return;
                }
            }
        }
    }

    async fn note_message(&self, user: &str, phone_id: &str, at_ms: i64) {
        let newer = self
            .last_message
            .get(user)
            .await
            .is_none_or(|(_, known)| known <= at_ms);
        if newer {
            self.last_message
                .insert(user.to_owned(), (phone_id.to_owned(), at_ms))
                .await;
        }
    }

    /// Keeps the message's furthest delivery state (reports may come out of order).
    async fn record(&self, status: &Status) -> Result<(), DbError> {
        let rank = match status.status.as_str() {
            "sent" => 1,
            "delivered" => 2,
            "read" => 3,
            "failed" => 4,
            _ => 0,
        };
        let reason = status.reason();
        self.db
            .run("whatsapp status", || {
                sqlx::query(
                    "INSERT INTO whatsapp_statuses (message_id, recipient, state, rank, reason, updated_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (message_id) DO UPDATE SET state = excluded.state, \
                     rank = excluded.rank, reason = excluded.reason, updated_ms = excluded.updated_ms \
                     WHERE whatsapp_statuses.rank < excluded.rank",
                )
                .bind(&status.id)
                .bind(&status.recipient_id)
                .bind(&status.status)
                .bind(rank)
                .bind(&reason)
                .bind(now_ms())
                .execute(self.db.pool())
            })
            .await?;
        Ok(())
    }

    /// The delivery state Meta last reported for a message the bot sent.
    pub async fn status_of(&self, message_id: &str) -> Result<Option<String>, DbError> {
        self.db
            .run("whatsapp status read", || {
                sqlx::query_scalar::<_, String>(
                    "SELECT state FROM whatsapp_statuses WHERE message_id = $1",
                )
                .bind(message_id)
                .fetch_optional(self.db.pool())
            })
            .await
    }

    /// Takes up unclaimed items, at start and then every claim period (at most every
    /// 10 s), and sweeps the old processed ones now and then.
    async fn rescan_forever(&self) {
        let every = self.claim.min(Duration::from_secs(10));
        let mut swept = tokio::time::Instant::now() - SWEEP_EVERY;
        loop {
            match self.rescan().await {
                Ok(0) => {}
                Ok(taken) => tracing::info!(taken, "whatsapp items taken up from the inbox"),
                Err(error) => error.log_quietly_if_outage("whatsapp inbox rescan failed"),
            }
            if swept.elapsed() >= SWEEP_EVERY {
                swept = tokio::time::Instant::now();
                if let Err(error) = self.sweep().await {
                    error.log_quietly_if_outage("whatsapp inbox sweep failed");
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Claims unclaimed items, oldest first, and hands them to the workers.
    async fn rescan(&self) -> Result<usize, DbError> {
        let now = now_ms();
        let rows = self
            .db
            .run("whatsapp inbox rescan", || {
                sqlx::query_as::<_, (String, Option<String>)>(
                    "SELECT item_key, payload FROM whatsapp_inbox \
                     WHERE done_ms = 0 AND claimed_until < $1 ORDER BY received_ms LIMIT $2",
                )
                .bind(now)
                .bind(RESCAN_BATCH)
                .fetch_all(self.db.pool())
            })
            .await?;
        let mut taken = 0;
        for (key, payload) in rows {
            let claimed = self
                .db
                .run("whatsapp inbox claim", || {
                    sqlx::query(
                        "UPDATE whatsapp_inbox SET claimed_until = $1, claimed_by = $2 \
                         WHERE item_key = $3 AND done_ms = 0 AND claimed_until < $4",
                    )
                    .bind(now + self.claim.as_millis() as i64)
                    .bind(&self.host)
                    .bind(&key)
                    .bind(now)
                    .execute(self.db.pool())
                })
                .await?;
            if claimed.rows_affected() == 0 {
                continue; // another host took it
            }
            let Some(item) = payload.and_then(|p| serde_json::from_str::<Item>(&p).ok()) else {
                tracing::warn!(item = %key, "whatsapp item unreadable in the inbox: skipped");
                continue;
            };
            let Some(lanes) = self.lanes.load_full() else {
                break;
            };
            let lane = &lanes[lane_of(item.user(), lanes.len())];
            // The rescan may wait for a busy worker: nothing is behind it.
            if lane.send(Pending { key, item }).await.is_err() {
                break;
            }
            taken += 1;
        }
        Ok(taken)
    }

    async fn sweep(&self) -> Result<u64, DbError> {
        let before = now_ms() - self.dedupe.as_millis() as i64;
        let done = self
            .db
            .run("whatsapp inbox sweep", || {
                sqlx::query("DELETE FROM whatsapp_inbox WHERE done_ms > 0 AND done_ms < $1")
                    .bind(before)
                    .execute(self.db.pool())
            })
            .await?;
        Ok(done.rows_affected())
    }
}

/// The running workers. Dropped, they stop where they are (as in a crash: their claims run
/// out); [`Workers::stop`] releases what they had not started.
pub struct Workers {
    inbox: Arc<Inbox>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    rescan: tokio::task::JoinHandle<()>,
    marker: tokio::task::JoinHandle<()>,
}

impl Workers {
    /// Stops taking items: the one each worker is processing may finish within `grace`,
    /// and the done marks of what they finished may be written within `grace` again (what
    /// is not runs again on the next host); the rest of this host's claims are released
    /// for the next host (or this one's restart).
    pub async fn stop(mut self, grace: Duration) {
        self.rescan.abort();
        self.inbox.stopping.store(true, Ordering::Relaxed);
        // Without senders the lanes close once emptied (skipped, as stopping).
        self.inbox.lanes.store(None);
        let tasks = std::mem::take(&mut self.tasks);
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(?grace, "whatsapp workers stopped with items still running");
        }
        // The workers are gone: the marker writes what they finished, then ends.
        let _ = tokio::time::timeout(grace, &mut self.marker).await;
        let inbox = &self.inbox;
        let released = inbox
            .db
            .run("whatsapp inbox release all", || {
                sqlx::query(
                    "UPDATE whatsapp_inbox SET claimed_until = 0 \
                     WHERE done_ms = 0 AND claimed_by = $1",
                )
                .bind(&inbox.host)
                .execute(inbox.db.pool())
            })
            .await;
        match released {
            Ok(done) if done.rows_affected() > 0 => tracing::info!(
                released = done.rows_affected(),
                "whatsapp items left for the next host"
            ),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!("whatsapp items stay claimed until their claims run out: {error}")
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.rescan.abort();
        self.marker.abort();
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lane_of(user: &str, lanes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    user.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

/// `INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING RETURNING item_key` for `rows`
/// items: only the new ones come back.
fn insert_sql(rows: usize) -> String {
    let values = (0..rows)
        .map(|row| {
            let n = row * 8;
            let marks: Vec<String> = (n + 1..=n + 8).map(|i| format!("${i}")).collect();
            format!("({})", marks.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO whatsapp_inbox \
         (item_key, phone_id, user_id, is_message, payload, received_ms, claimed_until, claimed_by) \
         VALUES {values} ON CONFLICT (item_key) DO NOTHING RETURNING item_key"
    )
}
