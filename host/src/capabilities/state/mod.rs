//! Conversation state: one value per (plugin, platform, chat, user), kept in the database
//! with a time to live, so a flow waiting for a reply survives a restart and can continue
//! on another host. Expired values are never returned, and swept away in the background.
//! Beside it, each conversation's last few messages, for AI prompts. With Redis, reads are
//! served from a copy there ([`cache`]).

mod cache;
mod history;
mod interface;

pub use history::Turn;
pub use interface::Context;
pub(crate) use interface::link;

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::capabilities::{Build, Lifecycle, Sections, config_store::ConfigStore};
use crate::task::Background;
use crate::telemetry::memory::Relief;
use crate::{
    db::{Database, DbError, now_ms},
    redis::Redis,
};
use cache::{Cached, StateCache};

/// The `[state]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// The largest value, in bytes.
    pub max_bytes: usize,
    /// The longest time to live, in seconds.
    pub max_ttl_s: u32,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            max_bytes: 16 << 10,
            max_ttl_s: 7 * 24 * 3600,
        }
    }
}

/// A plugin's conversation limits (a key of `[plugin_defaults]` and `[plugins.NAME]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Messages kept in each conversation's history.
    pub history_turns: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self { history_turns: 5 }
    }
}

impl Policy {
    pub(crate) fn validate(&self, section: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.history_turns <= 100,
            "{section}.history_turns must be at most 100"
        );
        Ok(())
    }
}

/// How often expired values are swept away.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Whose state: a plugin's, for one user in one chat of one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The plugin (its namespace).
    pub plugin: String,
    /// The platform's name.
    pub platform: String,
    /// The chat, channel or thread.
    pub chat: String,
    /// The user.
    pub user: String,
}

/// How long a cached "no state" is kept: a flow's first message finds one.
const ABSENT_TTL: Duration = Duration::from_secs(300);

/// The conversation state of one host.
pub struct StateStore {
    db: Database,
    config: StateConfig,
    cache: Option<StateCache>,
    sweeper: Background,
}

impl Relief for StateStore {}

impl Build for StateStore {
    fn build(store: &Arc<ConfigStore>, sections: Sections<'_>) -> Arc<Self> {
        let (db, redis) = (store.database().clone(), store.redis().cloned());
        StateStore::new(db, sections.state.clone(), redis)
    }
}

impl Lifecycle for StateStore {
    fn start(self: Arc<Self>) {
        self.sweeper.run(self.start_sweeper(SWEEP_EVERY));
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        self.sweeper.stop();
        Box::pin(async {})
    }
}

impl StateStore {
    /// A store over `db` (migrated), with copies in `redis` when given.
    pub fn new(db: Database, config: StateConfig, redis: Option<Arc<Redis>>) -> Arc<Self> {
        Arc::new(Self {
            db,
            config,
            cache: redis.map(StateCache::new),
            sweeper: Background::default(),
        })
    }

    /// Its limits.
    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    /// The value, unless none was set or it expired.
    pub async fn get(&self, conversation: &Conversation) -> Result<Option<String>, DbError> {
        if let Some(cache) = &self.cache {
            match cache.get(conversation).await {
                Some(Cached::Value(value)) => return Ok(Some(value)),
                Some(Cached::Absent) => return Ok(None),
                None => {}
            }
        }
        let now = now_ms();
        // Once: a plugin's call must not wait out a backoff.
        let row = self
            .db
            .run_once("state.read", || {
                sqlx::query_as::<_, (String, i64)>(
                    "SELECT value, expires_at FROM flow_state WHERE plugin = $1 \
                     AND platform = $2 AND chat_id = $3 AND user_id = $4 AND expires_at > $5",
                )
                .bind(&conversation.plugin)
                .bind(&conversation.platform)
                .bind(&conversation.chat)
                .bind(&conversation.user)
                .bind(now)
                .fetch_optional(self.db.pool())
            })
            .await?;
        if let Some(cache) = &self.cache {
            let (cached, ttl) = match &row {
                Some((value, expires)) => (
                    Cached::Value(value.clone()),
                    Duration::from_millis(u64::try_from(expires - now).unwrap_or_default()),
                ),
                None => (Cached::Absent, ABSENT_TTL),
            };
            cache.fill(conversation, &cached, ttl).await;
        }
        Ok(row.map(|(value, _)| value))
    }

    /// Sets the value for `ttl` (cut to the configured longest). The caller checks the size.
    pub async fn set(
        &self,
        conversation: &Conversation,
        value: &str,
        ttl: Duration,
    ) -> Result<(), DbError> {
        let ttl = ttl.min(Duration::from_secs(u64::from(self.config.max_ttl_s)));
        let expires = now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self.db
            .run("state.write", || {
                sqlx::query(
                    "INSERT INTO flow_state (plugin, platform, chat_id, user_id, value, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (plugin, platform, chat_id, user_id) \
                     DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                )
                .bind(&conversation.plugin)
                .bind(&conversation.platform)
                .bind(&conversation.chat)
                .bind(&conversation.user)
                .bind(value)
                .bind(expires)
                .execute(self.db.pool())
            })
            .await?;
        if let Some(cache) = &self.cache {
            cache
                .put(conversation, &Cached::Value(value.to_owned()), ttl)
                .await;
        }
        Ok(())
    }

    /// Forgets the value.
    pub async fn clear(&self, conversation: &Conversation) -> Result<(), DbError> {
        self.db
            .run("state.write", || {
                sqlx::query(
                    "DELETE FROM flow_state WHERE plugin = $1 AND platform = $2 \
                     AND chat_id = $3 AND user_id = $4",
                )
                .bind(&conversation.plugin)
                .bind(&conversation.platform)
                .bind(&conversation.chat)
                .bind(&conversation.user)
                .execute(self.db.pool())
            })
            .await?;
        if let Some(cache) = &self.cache {
            cache.put(conversation, &Cached::Absent, ABSENT_TTL).await;
        }
        Ok(())
    }

    /// Deletes expired values; returns how many.
    pub async fn sweep(&self) -> Result<u64, DbError> {
        let now = now_ms();
        let done = self
            .db
            .run("state.sweep", || {
                sqlx::query("DELETE FROM flow_state WHERE expires_at <= $1")
                    .bind(now)
                    .execute(self.db.pool())
            })
            .await?;
        Ok(done.rows_affected())
    }

    /// Sweeps expired values every `every` until the task is aborted.
    pub fn start_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                interval.tick().await;
                if let Err(error) = store.sweep().await {
                    tracing::warn!("expired conversation state not swept: {error}");
                }
            }
        })
    }
}
