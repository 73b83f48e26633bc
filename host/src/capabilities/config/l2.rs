//! The second cache layer, shared by every host: documents in Redis with a time to live,
//! and an invalidation channel (pub/sub) so a write on one host drops the document from
//! every host's in-process cache. Redis being down is never fatal: reads go to the
//! database, the outage is logged once and counted, and connections come back by themselves.
//!
//! Entries carry the document's version, and a write leaves a marker of its new version
//! where the document was: a host that read the database just before the write cannot put
//! its older copy back (it would be served until its time to live ran out).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::sync::watch;

use super::store::{Document, Fresh, Generations};
use crate::redis::Redis;

/// The pub/sub channel carrying invalidated keys.
const CHANNEL: &str = "wasmbot:config:invalidate";

/// The Redis layer of one host.
pub(crate) struct L2 {
    redis: Arc<Redis>,
    subscribed: watch::Sender<bool>,
}

impl L2 {
    /// A layer on the host's Redis link.
    pub(crate) fn new(redis: Arc<Redis>) -> Self {
        Self {
            redis,
            subscribed: watch::Sender::new(false),
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
    pub(crate) async fn invalidate(&self, key: &str, written: Option<(i64, Duration)>) {
        let Some(mut connection) = self.redis.connection().await else {
            return;
        };
        let mut pipe = redis::pipe();
        match written {
            Some((version, ttl)) => {
                let mut mark = self.redis.put_script().prepare_invoke();
                mark.key(Self::key(key)).arg(format!("{{\"w\":{version}}}"));
                mark.arg(version).arg(ttl.as_secs().max(1)).arg(1);
                pipe.load_script(self.redis.put_script()).ignore();
                pipe.invoke_script(&mark)
            }
            None => pipe.del(Self::key(key)),
        };
        let removed: redis::RedisResult<()> = pipe
            .ignore()
            .publish(CHANNEL, key)
            .ignore()
            .query_async(&mut connection)
            .await;
        self.redis.outcome(removed);
    }

    /// Listens for invalidations for as long as the cache lives, resubscribing after an
    /// outage. A message names a key; it is dropped from `fresh`, and counted in
    /// `generations`.
    pub(crate) fn listen(
        &self,
        fresh: Fresh,
        generations: Arc<Generations>,
    ) -> tokio::task::JoinHandle<()> {
        let client = self.redis.client().clone();
        let outage = Arc::clone(self.redis.outage());
        let subscribed = self.subscribed.clone();
        tokio::spawn(async move {
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => {
                        if let Err(error) = pubsub.subscribe(CHANNEL).await {
                            outage.failed(&error);
                        } else {
                            subscribed.send_replace(true);
                            let mut messages = pubsub.on_message();
                            while let Some(message) = messages.next().await {
                                if let Ok(key) = message.get_payload::<String>() {
                                    generations.bump(&key);
                                    fresh.of(&key).invalidate(key.as_str()).await;
                                }
                            }
                        }
                    }
                    Err(error) => outage.failed(&error),
                }
                // Invalidations sent while disconnected are lost: what is cached may be
                // stale until its time to live runs out, so start clean.
                subscribed.send_replace(false);
                generations.bump_all();
                fresh.invalidate_all();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
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

        l2.invalidate(&key, None).await;
        l2.put(&key, &document("!"), 0, ttl).await;
        assert_eq!(l2.get(&key).await, Some(document("!")));
        // A write (to version 1) leaves its marker; the reader that read version 0 before
        // the write finishes after it.
        l2.invalidate(&key, Some((1, ttl))).await;
        assert_eq!(l2.get(&key).await, None, "a marker is no document");
        l2.put(&key, &document("!"), 0, ttl).await;
        assert_eq!(l2.get(&key).await, None, "the older copy stayed out");
        l2.put(&key, &document("?"), 1, ttl).await;
        assert_eq!(l2.get(&key).await, Some(document("?")));
        l2.put(&key, &document("!"), 0, ttl).await;
        assert_eq!(l2.get(&key).await, Some(document("?")), "no going back");
        // An invalidation from outside the bot knows no version: the copy goes.
        l2.invalidate(&key, None).await;
        assert_eq!(l2.get(&key).await, None);
        assert_eq!(l2.redis.failures(), 0);
    }
}
