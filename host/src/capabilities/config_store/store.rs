//! The config store: one JSON document of typed fields per (plugin, scope), with defaults the
//! plugin registers. Reads go through an in-process cache bounded by entries and bytes,
//! with a time to live per scope; concurrent misses on one key make one database query;
//! when the database is down, reads fall back to the last known value, then to defaults.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::{Expiry, future::Cache, notification::RemovalCause};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;

use super::{
    l2::L2,
    scope::{Scope, ScopeKind},
};
use crate::{
    db::{Database, DbError, now_ms},
    redis::{Episode, Redis, RedisError},
};

/// A settings document: field name → value.
pub type Document = Map<String, Value>;

/// The `[config_store]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Documents the in-process cache holds at most.
    pub max_entries: u64,
    /// User documents (profiles) the in-process cache holds at most, apart from the rest:
    /// a flood of new users cannot push the guilds' settings out.
    pub user_max_entries: u64,
    /// Bytes (of JSON) the in-process cache holds at most.
    pub max_bytes: u64,
    /// Time to live of a cached global document, in seconds.
    pub global_ttl_s: u64,
    /// Time to live of a cached guild document, in seconds.
    pub guild_ttl_s: u64,
    /// Time to live of a cached channel document, in seconds.
    pub channel_ttl_s: u64,
    /// Time to live of a cached user document, in seconds.
    pub user_ttl_s: u64,
    /// Time to live of a cached member document, in seconds.
    pub member_ttl_s: u64,
    /// The largest value one field may hold, in bytes of JSON.
    pub max_value_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            user_max_entries: 1_000,
            max_bytes: 64 << 20,
            global_ttl_s: 300,
            guild_ttl_s: 300,
            channel_ttl_s: 300,
            user_ttl_s: 12 * 3600,
            member_ttl_s: 3600,
            max_value_bytes: 64 << 10,
        }
    }
}

impl StoreConfig {
    fn ttl(&self, kind: ScopeKind) -> Duration {
        Duration::from_secs(match kind {
            ScopeKind::Global => self.global_ttl_s,
            ScopeKind::Guild => self.guild_ttl_s,
            ScopeKind::Channel => self.channel_ttl_s,
            ScopeKind::User => self.user_ttl_s,
            ScopeKind::Member => self.member_ttl_s,
        })
    }
}

/// Why a store operation was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The plugin registered no such field for this kind of scope.
    #[error("unknown key {key:?} for {plugin}'s {scope} settings")]
    UnknownKey {
        /// The plugin.
        plugin: String,
        /// The kind of scope.
        scope: &'static str,
        /// The key.
        key: String,
    },
    /// The value's type differs from the default's.
    #[error("{key:?} must be {expected}, not {found}")]
    WrongType {
        /// The key.
        key: String,
        /// The type of the registered default.
        expected: &'static str,
        /// The type given.
        found: &'static str,
    },
    /// The value is over the size limit.
    #[error("the value of {key:?} is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The key.
        key: String,
        /// Its size, in bytes of JSON.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The value breaks a rule of its field beyond its type.
    #[error("{key:?}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The rule.
        reason: String,
    },
    /// The database could not be reached or refused the write.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

/// Counters of the store.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Reads answered by the in-process cache.
    pub hits: AtomicU64,
    /// Reads that loaded the document (once per key, however many waited).
    pub misses: AtomicU64,
    /// Loads answered by Redis.
    pub l2_hits: AtomicU64,
    /// Loads that queried the database.
    pub db_reads: AtomicU64,
    /// Documents the cache dropped to stay within its bounds.
    pub evictions: AtomicU64,
    /// Reads answered with a stale value because the database failed.
    pub stale_reads: AtomicU64,
    /// Reads answered with the defaults alone because the database failed.
    pub default_reads: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct Cached {
    document: Arc<Document>,
    kind: ScopeKind,
    /// Its key's generation when its load began.
    generation: u64,
}

/// Invalidations counted per key (in stripes, so memory stays fixed): a load records its
/// key's count before it reads, and a reader that finds a document loaded before a later
/// invalidation does not take it.
pub(crate) struct Generations([AtomicU64; 64]);

impl Default for Generations {
    fn default() -> Self {
        Self([const { AtomicU64::new(0) }; 64])
    }
}

impl Generations {
    fn slot(&self, key: &str) -> &AtomicU64 {
        // FNV-1a: keys are short and this runs on every read.
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.0[(hash % 64) as usize]
    }

    fn of(&self, key: &str) -> u64 {
        self.slot(key).load(Ordering::Acquire)
    }

    /// Counts an invalidation of `key`.
    pub(crate) fn bump(&self, key: &str) {
        self.slot(key).fetch_add(1, Ordering::AcqRel);
    }

    /// Counts an invalidation of every key.
    pub(crate) fn bump_all(&self) {
        for slot in &self.0 {
            slot.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Each document lives as long as its scope's time to live.
struct ScopeTtl(StoreConfig);

impl Expiry<Arc<str>, Cached> for ScopeTtl {
    fn expire_after_create(&self, _: &Arc<str>, value: &Cached, _: Instant) -> Option<Duration> {
        Some(self.0.ttl(value.kind))
    }
}

/// The in-process cache of current documents: user documents in a tier of their own.
#[derive(Clone)]
pub(crate) struct Fresh {
    users: Cache<Arc<str>, Cached>,
    others: Cache<Arc<str>, Cached>,
}

impl Fresh {
    /// The tier of a cache key (`plugin␟kind␟id`).
    pub(crate) fn of(&self, key: &str) -> &Cache<Arc<str>, Cached> {
        let user = ScopeKind::User.name();
        match key.split('\u{1f}').nth(1) {
            Some(kind) if kind == user => &self.users,
            _ => &self.others,
        }
    }

    pub(crate) fn invalidate_all(&self) {
        self.users.invalidate_all();
        self.others.invalidate_all();
    }

    fn tiers(&self) -> [&Cache<Arc<str>, Cached>; 2] {
        [&self.users, &self.others]
    }
}

/// The config store of one host.
pub struct ConfigStore {
    db: Database,
    config: StoreConfig,
    fresh: Fresh,
    last_known: Cache<Arc<str>, Arc<Document>>,
    /// Registered fields: plugin → kind of scope → defaults.
    defaults: RwLock<HashMap<String, HashMap<ScopeKind, Document>>>,
    generations: Arc<Generations>,
    stats: Arc<StoreStats>,
    db_reads: Episode,
    l2: Option<L2>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for ConfigStore {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

impl ConfigStore {
    /// A store over `db` (migrated), with empty caches.
    pub fn new(db: Database, config: StoreConfig) -> Self {
        let stats = Arc::new(StoreStats::default());
        // Weighing every document at least max_bytes / max_entries bounds both at once.
        let floor = u32::try_from(config.max_bytes / config.max_entries.max(1))
            .unwrap_or(u32::MAX)
            .max(1);
        let weigh = move |key: &Arc<str>, bytes: usize| {
            u32::try_from(key.len() + bytes)
                .unwrap_or(u32::MAX)
                .max(floor)
        };
        let tier = |capacity: u64| {
            let evictions = Arc::clone(&stats);
            Cache::builder()
                .max_capacity(capacity)
                .weigher(move |key, value: &Cached| weigh(key, json_size(&value.document)))
                .expire_after(ScopeTtl(config.clone()))
                .eviction_listener(move |_, _, cause| {
                    if cause == RemovalCause::Size {
                        evictions.evictions.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build()
        };
        let fresh = Fresh {
            users: tier(config.user_max_entries.saturating_mul(u64::from(floor))),
            others: tier(config.max_bytes),
        };
        let last_known = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(move |key, value: &Arc<Document>| weigh(key, json_size(value)))
            .build();
        Self {
            db,
            config,
            fresh,
            last_known,
            defaults: RwLock::default(),
            generations: Arc::default(),
            stats,
            db_reads: Episode::new("db.read_failed"),
            l2: None,
            listener: None,
        }
    }

    /// Adds the Redis layer: documents shared between hosts, and invalidations published to
    /// every host. Must be called inside a tokio runtime (it starts the listener).
    pub fn with_redis(mut self, url: &str) -> anyhow::Result<Self> {
        let l2 = L2::new(Redis::new(url)?);
        self.listener = Some(l2.listen(self.fresh.clone(), Arc::clone(&self.generations)));
        self.l2 = Some(l2);
        Ok(self)
    }

    /// The database it reads and writes (the host's one pool).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Its configuration (limits, time to live).
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Waits until this host receives other hosts' invalidations (at once without Redis).
    pub async fn listening(&self) {
        if let Some(l2) = &self.l2 {
            l2.subscribed().await;
        }
    }

    /// Failed Redis calls so far (0 without Redis).
    pub fn redis_failures(&self) -> u64 {
        self.redis().map_or(0, |redis| redis.failures())
    }

    /// The host's Redis link, when it has one: other capabilities cache in it too.
    pub fn redis(&self) -> Option<&Arc<Redis>> {
        self.l2.as_ref().map(L2::redis)
    }

    /// The store's counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Documents and weighted bytes in the in-process cache (after pending maintenance).
    pub async fn cache_size(&self) -> (u64, u64) {
        let mut size = (0, 0);
        for tier in self.fresh.tiers() {
            tier.run_pending_tasks().await;
            size.0 += tier.entry_count();
            size.1 += tier.weighted_size();
        }
        size
    }

    /// Empties the in-process caches (memory pressure): reads go to Redis or the database
    /// until they refill.
    pub async fn shrink(&self) {
        self.fresh.invalidate_all();
        self.last_known.invalidate_all();
        for tier in self.fresh.tiers() {
            tier.run_pending_tasks().await;
        }
        self.last_known.run_pending_tasks().await;
    }

    /// Registers a plugin's fields for a kind of scope, with their defaults (which also fix
    /// their types; a null default takes any type). Replaces what the plugin registered
    /// before.
    pub fn register_defaults(&self, plugin: &str, kind: ScopeKind, defaults: Document) {
        let mut all = self.defaults.write().unwrap_or_else(|e| e.into_inner());
        all.entry(plugin.to_owned())
            .or_default()
            .insert(kind, defaults);
    }

    /// Replaces everything a plugin registered (a new version of it) with `fields`.
    pub fn register_plugin(&self, plugin: &str, fields: Vec<(ScopeKind, Document)>) {
        let mut all = self.defaults.write().unwrap_or_else(|e| e.into_inner());
        all.insert(plugin.to_owned(), fields.into_iter().collect());
    }

    /// Forgets what a plugin registered (it was unloaded).
    pub fn unregister_plugin(&self, plugin: &str) {
        let mut all = self.defaults.write().unwrap_or_else(|e| e.into_inner());
        all.remove(plugin);
    }

    /// The value of one field: stored, else its default. Never a database query when cached.
    pub async fn get(&self, plugin: &str, scope: &Scope, key: &str) -> Result<Value, StoreError> {
        self.read(plugin, scope, key, Value::clone).await
    }

    /// [`ConfigStore::get`] as JSON text, written straight from the cached document.
    pub async fn get_json(
        &self,
        plugin: &str,
        scope: &Scope,
        key: &str,
    ) -> Result<String, StoreError> {
        self.read(plugin, scope, key, Value::to_string).await
    }

    async fn read<T>(
        &self,
        plugin: &str,
        scope: &Scope,
        key: &str,
        take: impl Fn(&Value) -> T,
    ) -> Result<T, StoreError> {
        let registered = {
            let all = self.defaults.read().unwrap_or_else(|e| e.into_inner());
            fields(&all, plugin, scope.kind()).is_some_and(|fields| fields.contains_key(key))
        };
        if registered && let Some(value) = self.stored(plugin, scope).await.get(key) {
            return Ok(take(value));
        }
        self.default_of(plugin, scope.kind(), key)
            .map(|value| take(&value))
    }

    /// What is stored of a document, without its defaults: one cache lookup for several
    /// fields (the dispatcher reads a guild's host settings so on every event).
    pub async fn stored_fields(&self, plugin: &str, scope: &Scope) -> Arc<Document> {
        self.stored(plugin, scope).await
    }

    /// The whole document: defaults overlaid with what is stored.
    pub async fn document(&self, plugin: &str, scope: &Scope) -> Document {
        let mut document = self.defaults_for(plugin, scope.kind());
        for (key, value) in self.stored(plugin, scope).await.iter() {
            document.insert(key.clone(), value.clone());
        }
        document
    }

    /// The registered field names for this kind of scope.
    pub fn keys(&self, plugin: &str, kind: ScopeKind) -> Vec<String> {
        let mut keys: Vec<String> = self.defaults_for(plugin, kind).keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Sets one field: checked against its default's type and the size limit, written to
    /// the database, then dropped from the cache.
    pub async fn set(
        &self,
        plugin: &str,
        scope: &Scope,
        key: &str,
        value: Value,
    ) -> Result<(), StoreError> {
        let default = self.default_of(plugin, scope.kind(), key)?;
        check_value(key, &default, &value, self.config.max_value_bytes)?;
        self.update(plugin, scope, |document| {
            document.insert(key.to_owned(), value.clone());
        })
        .await
    }

    /// Removes a field's stored value, so its default applies again.
    pub async fn delete(&self, plugin: &str, scope: &Scope, key: &str) -> Result<(), StoreError> {
        self.default_of(plugin, scope.kind(), key)?;
        self.update(plugin, scope, |document| {
            document.remove(key);
        })
        .await
    }

    /// Drops a document from the caches of every host, for changes made outside the bot.
    /// This host's copy goes at once. An error means the other hosts could not be told
    /// (Redis is unreachable, even after a moment's wait for the link to come back): the
    /// invalidation is kept and sent when the link is back, and the caller should say it is
    /// not done yet (the admin API answers 503).
    pub async fn invalidate(&self, plugin: &str, scope: &Scope) -> Result<(), RedisError> {
        self.invalidate_key(&cache_key(plugin, scope), true).await
    }

    /// [`ConfigStore::invalidate`] of one key; without `wait`, a failure does not wait for
    /// the link to come back (a caller before waited already).
    async fn invalidate_key(&self, key: &str, wait: bool) -> Result<(), RedisError> {
        self.drop_fresh(key).await;
        match &self.l2 {
            Some(l2) if wait => l2.invalidate_confirmed(key, None).await,
            Some(l2) => l2.invalidate(key, None).await,
            None => Ok(()),
        }
    }

    /// Invalidations waiting for Redis to come back (0 without Redis).
    pub fn pending_invalidations(&self) -> usize {
        self.l2.as_ref().map_or(0, L2::pending)
    }

    async fn drop_fresh(&self, key: &str) {
        self.generations.bump(key);
        self.fresh.of(key).invalidate(key).await;
    }

    /// Drops a scope's documents of every plugin that registered fields for its kind, on
    /// every host. Returns how many documents that was, or the first failure to tell the
    /// other hosts (every document is tried; see [`ConfigStore::invalidate`]).
    pub async fn invalidate_everywhere(&self, scope: &Scope) -> Result<usize, RedisError> {
        let plugins: Vec<String> = {
            let all = self.defaults.read().unwrap_or_else(|e| e.into_inner());
            all.iter()
                .filter(|(_, kinds)| kinds.contains_key(&scope.kind()))
                .map(|(plugin, _)| plugin.clone())
                .collect()
        };
        let mut failed = None;
        for plugin in &plugins {
            // Once the link failed after its wait, the rest are only kept for the retry:
            // one wait per call, not one per plugin.
            let key = cache_key(plugin, scope);
            if let Err(error) = self.invalidate_key(&key, failed.is_none()).await {
                failed.get_or_insert(error);
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(plugins.len()),
        }
    }

    /// The stored document, from the cache or loaded once; on a database failure the last
    /// known one, else an empty one (so the defaults apply). A document whose load began
    /// before a write that finished before this read began is loaded again (twice at most:
    /// then it is served, rather than wait on writes that keep coming).
    async fn stored(&self, plugin: &str, scope: &Scope) -> Arc<Document> {
        let key = cache_key(plugin, scope);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let generation = self.generations.of(&key);
            // The common case, without the entry machinery.
            let fresh = self.fresh.of(&key);
            if let Some(cached) = fresh.get(&key).await
                && cached.generation >= generation
            {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return cached.document;
            }
            let load = async {
                let document = self.load(&key, plugin, scope).await?;
                Ok::<_, StoreError>(Cached {
                    document: Arc::new(document),
                    kind: scope.kind(),
                    generation,
                })
            };
            let entry = match fresh.entry(Arc::clone(&key)).or_try_insert_with(load).await {
                Ok(entry) => entry,
                Err(error) => return self.fallback(&key, &error).await,
            };
            let loaded_here = entry.is_fresh();
            let cached = entry.into_value();
            if cached.generation < generation && attempts < 3 {
                fresh.invalidate(&key).await;
                continue;
            }
            if loaded_here {
                self.db_reads.recovered();
                if self.generations.of(&key) == cached.generation {
                    self.last_known
                        .insert(key, Arc::clone(&cached.document))
                        .await;
                }
            } else {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
            }
            return cached.document;
        }
    }

    /// What a read answers when the document cannot be loaded: the last known one, else
    /// none (the defaults).
    async fn fallback(&self, key: &str, error: &StoreError) -> Arc<Document> {
        self.db_reads.failed(error);
        match self.last_known.get(key).await {
            Some(document) => {
                self.stats.stale_reads.fetch_add(1, Ordering::Relaxed);
                document
            }
            None => {
                self.stats.default_reads.fetch_add(1, Ordering::Relaxed);
                Arc::default()
            }
        }
    }

    /// From Redis when it has the document, else get-or-create in one statement (the first
    /// read of a new scope creates its row), then shared through Redis.
    async fn load(&self, key: &str, plugin: &str, scope: &Scope) -> Result<Document, StoreError> {
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        if let Some(l2) = &self.l2
            && let Some(document) = l2.get(key).await
        {
            self.stats.l2_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(document);
        }
        self.stats.db_reads.fetch_add(1, Ordering::Relaxed);
        let (document, version) = self.row(plugin, scope, false).await?;
        if let Some(l2) = &self.l2 {
            let ttl = self.config.ttl(scope.kind());
            l2.put(key, &document, version, ttl).await;
        }
        Ok(document)
    }

    /// The stored document and its version, the row created empty when missing. A write
    /// retries transient failures; a read does not (it has its fallbacks, and a message
    /// should not wait on backoff).
    async fn row(
        &self,
        plugin: &str,
        scope: &Scope,
        write: bool,
    ) -> Result<(Document, i64), StoreError> {
        let upsert = || {
            sqlx::query(UPSERT)
                .bind(plugin)
                .bind(scope.kind().name())
                .bind(scope.id())
                .bind(now_ms())
                .fetch_one(self.db.pool())
        };
        let row = match write {
            true => self.db.run("config.write", upsert).await?,
            false => self.db.run_once("config.read", upsert).await?,
        };
        let unavailable = |e: sqlx::Error| StoreError::Unavailable(e.to_string());
        let document = parse(&row.try_get::<String, _>(0).map_err(unavailable)?)?;
        Ok((document, row.try_get(1).map_err(unavailable)?))
    }

    /// Read-modify-write with optimistic concurrency, so two hosts writing different
    /// fields of one document both land.
    async fn update(
        &self,
        plugin: &str,
        scope: &Scope,
        change: impl Fn(&mut Document),
    ) -> Result<(), StoreError> {
        for _ in 0..8 {
            let (mut document, version) = self.row(plugin, scope, true).await?;
            change(&mut document);
            let text = Value::Object(document.clone()).to_string();
            let update = || {
                sqlx::query(
                    "UPDATE config_entries SET document = $1, version = version + 1, \
                     updated_at = $2 \
                     WHERE plugin = $3 AND scope = $4 AND scope_id = $5 AND version = $6",
                )
                .bind(text.clone())
                .bind(now_ms())
                .bind(plugin)
                .bind(scope.kind().name())
                .bind(scope.id())
                .bind(version)
                .execute(self.db.pool())
            };
            let written = self.db.run("config.write", update).await?;
            if written.rows_affected() == 1 {
                let key = cache_key(plugin, scope);
                // Redis first: a read of this host between the two would otherwise find
                // the old copy there and cache it again.
                // The write is done whatever Redis says: when the other hosts cannot be
                // told now, the link sends it again as soon as Redis is back (until then
                // they serve their copy; Redis' own outage also empties their caches when
                // they subscribe again). The plugin's write succeeds either way.
                if let Some(l2) = &self.l2 {
                    let ttl = self.config.ttl(scope.kind());
                    if let Err(error) = l2.invalidate(&key, Some((version + 1, ttl))).await {
                        tracing::debug!("invalidation of a write kept for retry: {error}");
                    }
                }
                self.drop_fresh(&key).await;
                self.last_known.insert(key, Arc::new(document)).await;
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "the document kept changing under the write; try again".to_owned(),
        ))
    }

    fn defaults_for(&self, plugin: &str, kind: ScopeKind) -> Document {
        let all = self.defaults.read().unwrap_or_else(|e| e.into_inner());
        fields(&all, plugin, kind).cloned().unwrap_or_default()
    }

    fn default_of(&self, plugin: &str, kind: ScopeKind, key: &str) -> Result<Value, StoreError> {
        let all = self.defaults.read().unwrap_or_else(|e| e.into_inner());
        fields(&all, plugin, kind)
            .and_then(|defaults| defaults.get(key))
            .cloned()
            .ok_or_else(|| StoreError::UnknownKey {
                plugin: plugin.to_owned(),
                scope: kind.name(),
                key: key.to_owned(),
            })
    }
}

/// The defaults a plugin registered for a kind of scope.
fn fields<'a>(
    all: &'a HashMap<String, HashMap<ScopeKind, Document>>,
    plugin: &str,
    kind: ScopeKind,
) -> Option<&'a Document> {
    all.get(plugin)?.get(&kind)
}

/// Returns the row's document and version, creating an empty document when there is none.
/// The no-op update makes `RETURNING` answer on conflict too.
const UPSERT: &str = "INSERT INTO config_entries (plugin, scope, scope_id, document, version, updated_at) \
     VALUES ($1, $2, $3, '{}', 0, $4) \
     ON CONFLICT (plugin, scope, scope_id) DO UPDATE SET plugin = excluded.plugin \
     RETURNING document, version";

/// `plugin␟kind␟id`, built without the formatting machinery: it runs on every read.
fn cache_key(plugin: &str, scope: &Scope) -> Arc<str> {
    let kind = scope.kind().name();
    let mut key = String::with_capacity(plugin.len() + kind.len() + 40);
    key.push_str(plugin);
    key.push('\u{1f}');
    key.push_str(kind);
    key.push('\u{1f}');
    match scope {
        Scope::Global => {}
        Scope::Guild(id) | Scope::Channel(id) | Scope::User(id) => key.push_str(id),
        Scope::Member { guild, user } => {
            key.push_str(guild);
            key.push(':');
            key.push_str(user);
        }
    }
    Arc::from(key)
}

fn parse(text: &str) -> Result<Document, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(document)) => Ok(document),
        _ => Err(StoreError::Unavailable(
            "a stored document is not a JSON object".to_owned(),
        )),
    }
}

fn json_size(document: &Document) -> usize {
    serde_json::to_vec(document).map_or(0, |bytes| bytes.len())
}

fn check_value(key: &str, default: &Value, value: &Value, limit: usize) -> Result<(), StoreError> {
    let expected = type_name(default);
    let found = type_name(value);
    // A null default declares a field of no fixed type.
    let compatible =
        default.is_null() || expected == found || (expected == "a number" && found == "an integer");
    if !compatible {
        return Err(StoreError::WrongType {
            key: key.to_owned(),
            expected,
            found,
        });
    }
    let size = value.to_string().len();
    if size > limit {
        return Err(StoreError::TooLarge {
            key: key.to_owned(),
            size,
            limit,
        });
    }
    Ok(())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
