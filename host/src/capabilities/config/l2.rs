//! The second cache layer, shared by every host: documents in Redis with a time to live,
//! and an invalidation channel (pub/sub) so a write on one host drops the document from
//! every host's in-process cache. Redis being down is never fatal: reads go to the
//! database, the outage is logged once and counted, and connections come back by themselves.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use moka::future::Cache;
use redis::{AsyncCommands, aio::ConnectionManager};
use tokio::sync::{Mutex, watch};

use super::store::{Cached, Document, Episode};

/// The pub/sub channel carrying invalidated keys.
const CHANNEL: &str = "wasmbot:config:invalidate";
/// How long a Redis call may take before the layer is skipped for that read.
const TIMEOUT: Duration = Duration::from_millis(500);

/// The Redis layer of one host.
pub(crate) struct L2 {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    outage: Arc<Episode>,
    subscribed: watch::Sender<bool>,
}

impl L2 {
    /// A layer on the Redis at `url`; nothing is connected until first use.
    pub(crate) fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            connection: Mutex::new(None),
            outage: Arc::new(Episode::new("cache.l2_unavailable")),
            subscribed: watch::Sender::new(false),
        })
    }

    /// Waits until the invalidation listener is subscribed.
    pub(crate) async fn subscribed(&self) {
        let mut subscribed = self.subscribed.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = subscribed.wait_for(|yes| *yes).await;
    }

    /// Failed Redis calls so far.
    pub(crate) fn failures(&self) -> u64 {
        self.outage.count()
    }

    /// A connection, made on first use and remade after it could not be made.
    async fn connection(&self) -> Option<ConnectionManager> {
        let mut connection = self.connection.lock().await;
        if connection.is_none() {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_number_of_retries(1);
            match self.client.get_connection_manager_with_config(config).await {
                Ok(made) => *connection = Some(made),
                Err(error) => self.outage.failed(&error),
            }
        }
        connection.clone()
    }

    fn key(key: &str) -> String {
        format!("wasmbot:config:{key}")
    }

    /// The document, when Redis has it.
    pub(crate) async fn get(&self, key: &str) -> Option<Document> {
        let mut connection = self.connection().await?;
        let read: redis::RedisResult<Option<String>> = connection.get(Self::key(key)).await;
        match read {
            Ok(text) => {
                self.outage.recovered();
                serde_json::from_str(&text?).ok()
            }
            Err(error) => {
                self.outage.failed(&error);
                None
            }
        }
    }

    /// Stores the document for `ttl`.
    pub(crate) async fn put(&self, key: &str, document: &Document, ttl: Duration) {
        let Some(mut connection) = self.connection().await else {
            return;
        };
        let text = serde_json::Value::Object(document.clone()).to_string();
        let seconds = ttl.as_secs().max(1);
        let written: redis::RedisResult<()> =
            connection.set_ex(Self::key(key), text, seconds).await;
        match written {
            Ok(()) => self.outage.recovered(),
            Err(error) => self.outage.failed(&error),
        }
    }

    /// Removes the document and tells every host to drop it.
    pub(crate) async fn invalidate(&self, key: &str) {
        let Some(mut connection) = self.connection().await else {
            return;
        };
        let removed: redis::RedisResult<()> = redis::pipe()
            .del(Self::key(key))
            .ignore()
            .publish(CHANNEL, key)
            .ignore()
            .query_async(&mut connection)
            .await;
        match removed {
            Ok(()) => self.outage.recovered(),
            Err(error) => self.outage.failed(&error),
        }
    }

    /// Listens for invalidations for as long as the cache lives, resubscribing after an
    /// outage. A message names a key; it is dropped from `fresh`.
    pub(crate) fn listen(&self, fresh: Cache<Arc<str>, Cached>) -> tokio::task::JoinHandle<()> {
        let client = self.client.clone();
        let outage = Arc::clone(&self.outage);
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
                                    fresh.invalidate(key.as_str()).await;
                                }
                            }
                        }
                    }
                    Err(error) => outage.failed(&error),
                }
                // Invalidations sent while disconnected are lost: what is cached may be
                // stale until its time to live runs out, so start clean.
                subscribed.send_replace(false);
                fresh.invalidate_all();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}
