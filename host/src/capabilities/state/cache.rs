//! Conversation state in Redis, in front of the database, when the host has Redis: a flow
//! reads its state on every message, most often to find there is none.
//!
//! A write goes to the database, then overwrites the cached copy (a cleared state leaves a
//! "none" in its place); a read that missed fills the cache only if nothing is there, so it
//! cannot put back a value a write replaced meanwhile. Copies live as long as the state, at
//! most [`MAX_TTL`]: if Redis missed a write while it was down, a stale copy does not outlive
//! that.

use std::{sync::Arc, time::Duration};

use redis::AsyncCommands;

use super::Conversation;
use crate::redis::Redis;

/// The longest a copy is kept.
const MAX_TTL: Duration = Duration::from_secs(300);

/// What the cache holds for a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cached {
    /// Its state.
    Value(String),
    /// It has none.
    Absent,
}

/// The state's copies in Redis.
pub(super) struct StateCache {
    redis: Arc<Redis>,
}

impl StateCache {
    pub(super) fn new(redis: Arc<Redis>) -> Self {
        Self { redis }
    }

    fn key(conversation: &Conversation) -> String {
        // JSON keeps the parts apart whatever they hold.
        let parts = [
            &conversation.plugin,
            &conversation.platform,
            &conversation.chat,
            &conversation.user,
        ];
        format!(
            "wasmbot:state:{}",
            serde_json::to_string(&parts).unwrap_or_default()
        )
    }

    fn entry(cached: &Cached) -> String {
        match cached {
            Cached::Value(value) => format!("={value}"),
            Cached::Absent => "-".to_owned(),
        }
    }

    /// The cached copy, if Redis has one (and answers).
    pub(super) async fn get(&self, conversation: &Conversation) -> Option<Cached> {
        let mut connection = self.redis.connection().await?;
        let entry: Option<String> = self
            .redis
            .outcome(connection.get(Self::key(conversation)).await)?;
        let entry = entry?;
        match entry.strip_prefix('=') {
            Some(value) => Some(Cached::Value(value.to_owned())),
            None => Some(Cached::Absent),
        }
    }

    /// Caches what the database said, unless a write cached something meanwhile.
    pub(super) async fn fill(&self, conversation: &Conversation, cached: &Cached, ttl: Duration) {
        self.store(conversation, cached, ttl, true).await;
    }

    /// Caches what a write left.
    pub(super) async fn put(&self, conversation: &Conversation, cached: &Cached, ttl: Duration) {
        self.store(conversation, cached, ttl, false).await;
    }

    async fn store(&self, conversation: &Conversation, cached: &Cached, ttl: Duration, nx: bool) {
        let ttl = ttl.min(MAX_TTL);
        let Some(mut connection) = self.redis.connection().await else {
            return;
        };
        if ttl.is_zero() {
            let removed: redis::RedisResult<()> = connection.del(Self::key(conversation)).await;
            self.redis.outcome(removed);
            return;
        }
        let mut set = redis::cmd("SET");
        set.arg(Self::key(conversation))
            .arg(Self::entry(cached))
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        if nx {
            set.arg("NX");
        }
        let stored: redis::RedisResult<Option<String>> = set.query_async(&mut connection).await;
        self.redis.outcome(stored);
    }
}
