//! The second cache layer, shared by every host: documents in Redis with a time to live,
//! and an invalidation channel (pub/sub) so a write on one host drops the document from
//! every host's in-process cache. Redis being down is never fatal: reads are answered by the
//! in-process cache, else the database; the link logs the outage once, fails fast and
//! reconnects by itself. An invalidation that could not be sent is kept and sent when the
//! link is back (an admin hook that needs it confirmed is refused instead, see
//! [`L2::invalidate_confirmed`]), and a subscription made again after it was lost empties
//! the in-process cache once, since invalidations sent meanwhile never arrived.
//!
//! Entries carry the document's version, and a write leaves a marker of its new version
//! where the document was: a host that read the database just before the write cannot put
//! its older copy back (it would be served until its time to live ran out).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use futures::StreamExt;
use tokio::sync::watch;

use super::store::{Document, Fresh, Generations};
use crate::redis::{Redis, RedisError, is_network};

/// The pub/sub channel carrying invalidated keys.
const CHANNEL: &str = "wasmbot:config:invalidate";

/// The message that drops every key (after more invalidations failed than are kept).
const EVERYTHING: &str = "*";

/// Invalidations kept for retry at most; past it, the retry drops every key everywhere.
const MAX_PENDING: usize = 10_000;

/// The wait before subscribing again after Redis refused it, doubled up to
/// [`RESUBSCRIBE_MAX`].
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two subscriptions Redis refused.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

/// How long subscribing may take before it counts as failed.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an invalidation that must be confirmed waits for the link to come back (a
/// connection that died while idle is replaced within moments) before it is refused.
const CONFIRM_WAIT: Duration = Duration::from_secs(2);

/// Invalidations whose publish failed, retried when the link is back: key → the write's
/// marker (the latest), if a write made it.
#[derive(Default)]
struct Pending {
    keys: HashMap<String, Option<(i64, Duration)>>,
    /// More failed than [`MAX_PENDING`]: the retry drops every copy and every cached key.
    overflowed: bool,
    /// Whether a task waits to retry them.
    retrying: bool,
}

/// The Redis layer of one host.
pub(crate) struct L2 {
    redis: Arc<Redis>,
    subscribed: watch::Sender<bool>,
    pending: Arc<Mutex<Pending>>,
}

impl L2 {
    /// A layer on the host's Redis link.
    pub(crate) fn new(redis: Arc<Redis>) -> Self {
        Self {
            redis,
            subscribed: watch::Sender::new(false),
            pending: Arc::default(),
        }
    }

    /// The Redis link it uses.
    pub(crate) fn redis(&self) -> &Arc<Redis> {
        &self.redis
    }

    /// Waits until the invalidation listener is subscribed.
    pub(crate) async fn subscribed(&self) {
        let mut subscribed = self.subscribed.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = subscribed.wait_for(|yes| *yes).await;
    }

    /// Invalidations waiting for the link to come back.
    pub(crate) fn pending(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .len()
    }

    fn key(key: &str) -> String {
        format!("wasmbot:config:{key}")
    }

    /// The document, when Redis has it (a write's marker is no document).
    pub(crate) async fn get(&self, key: &str) -> Option<Document> {
        match self.redis.get_versioned(&Self::key(key)).await? {
            serde_json::Value::Object(document) => Some(document),
            _ => None,
        }
    }

    /// Stores the document, read at `version`, for `ttl`, unless a later version or a later
    /// write's marker is there.
    pub(crate) async fn put(&self, key: &str, document: &Document, version: i64, ttl: Duration) {
        let document = serde_json::Value::Object(document.clone());
        self.redis
            .put_versioned(&Self::key(key), &document, version, ttl)
            .await;
    }

    /// Drops the document and tells every host to drop it. After a write through the
    /// store, `written` is the new version: its marker stays for `ttl` in the document's
    /// place (unless a later write's is there), so older copies cannot come back.
    ///
    /// When Redis cannot be reached, the invalidation is kept and sent again as soon as the
    /// link is back (other hosts serve their copy until then); the error says it is late.
    pub(crate) async fn invalidate(
        &self,
        key: &str,
        written: Option<(i64, Duration)>,
    ) -> Result<(), RedisError> {
        let sent = publish(&self.redis, key, written).await;
        if sent.is_err() {
            self.retry_later(key, written);
        }
        sent
    }

    /// [`L2::invalidate`] for a caller that must know it reached every host (an admin hook,
    /// which answers 200 only then): a failure waits a moment for the link to come back and
    /// sends it again; only if that fails too is the error returned (and it is still kept for
    /// retry).
    pub(crate) async fn invalidate_confirmed(
        &self,
        key: &str,
        written: Option<(i64, Duration)>,
    ) -> Result<(), RedisError> {
        if publish(&self.redis, key, written).await.is_ok() {
            return Ok(());
        }
        let sent = match self.redis.up_within(CONFIRM_WAIT).await {
            true => publish(&self.redis, key, written).await,
            false => Err(RedisError::Down),
        };
        if sent.is_err() {
            self.retry_later(key, written);
        }
        sent
    }

    /// Keeps a failed invalidation, and starts the task that retries them when the link is
    /// back (one at a time; it ends when none is left).
    fn retry_later(&self, key: &str, written: Option<(i64, Duration)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        keep(&mut pending, key.to_owned(), written);
        if pending.retrying {
            return;
        }
        pending.retrying = true;
        drop(pending);
        let link = Arc::downgrade(&self.redis);
        let up = self.redis.watch_up();
        tokio::spawn(retry(link, up, Arc::clone(&self.pending)));
    }

    /// Listens for invalidations for as long as the cache lives. A message names a key; it
    /// is dropped from `fresh`, and counted in `generations`. While the link is down the
    /// cache keeps serving; when the subscription is made again after it was lost, the cache
    /// is emptied once (invalidations sent meanwhile never arrived). A lost subscription
    /// takes the link down, so its probe brings both back.
    pub(crate) fn listen(
        &self,
        fresh: Fresh,
        generations: Arc<Generations>,
    ) -> tokio::task::JoinHandle<()> {
        let redis = Arc::clone(&self.redis);
        let subscribed = self.subscribed.clone();
        tokio::spawn(async move {
            let mut missed = false;
            // While Redis refuses the subscription (and answers the rest): how long to wait.
            let mut refused: Option<Duration> = None;
            loop {
                redis.until_up().await;
                let mut pubsub = match subscribe(&redis).await {
                    Ok(pubsub) => pubsub,
                    Err(Subscribe::Unreachable(error)) => {
                        missed = true;
                        redis.lost(&error);
                        continue;
                    }
                    // Not an outage (the link's probe would find Redis up at once and the
                    // two would take turns): said once, tried again with a backoff.
                    Err(Subscribe::Refused(error)) => {
                        missed = true;
                        let wait = refused
                            .map_or(RESUBSCRIBE_FIRST, |wait| (wait * 2).min(RESUBSCRIBE_MAX));
                        if refused.is_none() {
                            tracing::warn!(
                                category = "cache.redis_unavailable",
                                "{error}: other hosts' invalidations do not reach this one \
                                 until Redis accepts the subscription"
                            );
                        }
                        refused = Some(wait);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                };
                if refused.take().is_some() {
                    tracing::info!(
                        category = "cache.redis_unavailable",
                        "invalidations subscribed"
                    );
                }
                if missed {
                    generations.bump_all();
                    fresh.invalidate_all();
                }
                subscribed.send_replace(true);
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    match message.get_payload::<String>() {
                        Ok(key) if key == EVERYTHING => {
                            generations.bump_all();
                            fresh.invalidate_all();
                        }
                        Ok(key) => {
                            generations.bump(&key);
                            fresh.of(&key).invalidate(key.as_str()).await;
                        }
                        Err(_) => {}
                    }
                }
                subscribed.send_replace(false);
                missed = true;
                redis.lost(&"the invalidation subscription was closed");
            }
        })
    }
}

/// A subscription to the invalidation channel, on a connection of its own.
/// Why the invalidation subscription could not be made.
enum Subscribe {
    /// Redis could not be reached: the link is down.
    Unreachable(String),
    /// Redis answered with a refusal (e.g. an ACL user without channel rights).
    Refused(String),
}

async fn subscribe(redis: &Redis) -> Result<redis::aio::PubSub, Subscribe> {
    let subscribing = async {
        let mut pubsub = redis.client().get_async_pubsub().await?;
        pubsub.subscribe(CHANNEL).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribing).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(error)) => {
            let said = format!("subscribing to invalidations: {error}");
            Err(if is_network(&error) {
                Subscribe::Unreachable(said)
            } else {
                Subscribe::Refused(said)
            })
        }
        Err(_) => Err(Subscribe::Unreachable(
            "subscribing to invalidations timed out".to_owned(),
        )),
    }
}

/// Drops the copy in Redis (or leaves the write's marker) and publishes the key, once.
async fn publish(
    redis: &Redis,
    key: &str,
    written: Option<(i64, Duration)>,
) -> Result<(), RedisError> {
    let mut connection = redis.try_connection().await?;
    let mut pipe = redis::pipe();
    match written {
        Some((version, ttl)) => {
            let mut mark = redis.put_script().prepare_invoke();
            mark.key(L2::key(key)).arg(format!("{{\"w\":{version}}}"));
            mark.arg(version).arg(ttl.as_secs().max(1)).arg(1);
            pipe.load_script(redis.put_script()).ignore();
            pipe.invoke_script(&mark)
        }
        None => pipe.del(L2::key(key)),
    };
    let removed: redis::RedisResult<()> = pipe
        .ignore()
        .publish(CHANNEL, key)
        .ignore()
        .query_async(&mut connection)
        .await;
    redis.try_outcome(removed)
}

/// Adds a failed invalidation to those kept; a write's marker wins over none, the later
/// over the earlier.
fn keep(pending: &mut Pending, key: String, written: Option<(i64, Duration)>) {
    let full = pending.keys.len() >= MAX_PENDING;
    match pending.keys.get_mut(&key) {
        Some(kept) => {
            if written.is_some_and(|(version, _)| kept.is_none_or(|(held, _)| version > held)) {
                *kept = written;
            }
        }
        None if full => {
            if !pending.overflowed {
                tracing::warn!(
                    category = "cache.redis_unavailable",
                    "more than {MAX_PENDING} invalidations wait for Redis: every cached \
                     document will be dropped when it is back"
                );
            }
            pending.overflowed = true;
        }
        None => {
            pending.keys.insert(key, written);
        }
    }
}

/// Sends the kept invalidations each time the link comes back, until none is left.
async fn retry(link: Weak<Redis>, mut up: watch::Receiver<bool>, pending: Arc<Mutex<Pending>>) {
    loop {
        // Ends when the link is dropped (its sender with it).
        if up.wait_for(|up| *up).await.is_err() {
            return;
        }
        let Some(redis) = link.upgrade() else {
            return;
        };
        let (keys, overflowed) = {
            let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
            (
                std::mem::take(&mut pending.keys),
                std::mem::take(&mut pending.overflowed),
            )
        };
        let mut failed = Vec::new();
        if overflowed && let Err(error) = drop_everything(&redis).await {
            tracing::debug!("dropping every copy after an outage failed: {error}");
            failed.push((EVERYTHING.to_owned(), None));
        }
        for (key, written) in keys {
            if publish(&redis, &key, written).await.is_err() {
                failed.push((key, written));
            }
        }
        if !failed.is_empty() && redis.is_up() {
            // Redis answered with an error (not a lost link): sending again will not help.
            tracing::warn!(
                category = "cache.redis_unavailable",
                "{} invalidations refused by Redis are dropped; cached copies expire with \
                 their time to live",
                failed.len()
            );
            failed.clear();
        }
        let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
        for (key, written) in failed {
            match key == EVERYTHING {
                true => pending.overflowed = true,
                false => keep(&mut pending, key, written),
            }
        }
        if pending.keys.is_empty() && !pending.overflowed {
            pending.retrying = false;
            return;
        }
        // Some failed again: the link went down with them; wait for it again.
    }
}

/// After more invalidations failed than were kept: drops every copy in Redis and tells
/// every host to empty its cache.
async fn drop_everything(redis: &Redis) -> Result<(), RedisError> {
    let mut connection = redis.try_connection().await?;
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis.try_outcome(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(L2::key("*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await,
        )?;
        if !keys.is_empty() {
            let removed: redis::RedisResult<()> = redis::cmd("UNLINK")
                .arg(keys)
                .query_async(&mut connection)
                .await;
            redis.try_outcome(removed)?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let published: redis::RedisResult<()> = redis::cmd("PUBLISH")
        .arg(CHANNEL)
        .arg(EVERYTHING)
        .query_async(&mut connection)
        .await;
    redis.try_outcome(published)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn document(prefix: &str) -> Document {
        let mut document = Document::new();
        document.insert("prefix".into(), json!(prefix));
        document
    }

    /// Against the machine's Redis (`REDIS_URL`): the race a write can lose to a slow read.
    #[tokio::test]
    async fn an_older_copy_cannot_replace_a_later_write() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let l2 = L2::new(Redis::new(&url).unwrap());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let key = format!("l2-test-{}", now.map_or(0, |t| t.as_nanos()));
        let ttl = Duration::from_secs(30);

        l2.invalidate(&key, None).await.unwrap();
        l2.put(&key, &document("!"), 0, ttl).await;
        assert_eq!(l2.get(&key).await, Some(document("!")));
        // A write (to version 1) leaves its marker; the reader that read version 0 before
        // the write finishes after it.
        l2.invalidate(&key, Some((1, ttl))).await.unwrap();
        assert_eq!(l2.get(&key).await, None, "a marker is no document");
        l2.put(&key, &document("!"), 0, ttl).await;
        assert_eq!(l2.get(&key).await, None, "the older copy stayed out");
        l2.put(&key, &document("?"), 1, ttl).await;
        assert_eq!(l2.get(&key).await, Some(document("?")));
        l2.put(&key, &document("!"), 0, ttl).await;
        assert_eq!(l2.get(&key).await, Some(document("?")), "no going back");
        // An invalidation from outside the bot knows no version: the copy goes.
        l2.invalidate(&key, None).await.unwrap();
        assert_eq!(l2.get(&key).await, None);
        assert_eq!(l2.redis.failures(), 0);
    }
}
