//! The host's one Redis link, shared by every capability that uses Redis (the config store's
//! second layer and invalidations, conversation state, rate limits, counters' copies): made
//! on first use and never fatal. It keeps a health flag: a call that fails on the network
//! marks the link down, and while it is down every call fails at once (callers fall back to
//! the database or to their configured answer) instead of waiting out its timeout. A
//! background task probes Redis with backoff while it is down and brings the link back up
//! with a fresh, checked connection, so the first call after Redis returns does not meet a
//! dead one. An outage is logged once when it starts and once when it ends, and counted.
//! With Redis up and the bot idle, the link does nothing.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::aio::MultiplexedConnection;
use tokio::sync::{Mutex, watch};

/// The `[redis]` section.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port`; empty (the default) runs without Redis: one host, in-process
    /// caches only.
    pub url: String,
}

/// How long a Redis call may take before the cache is skipped for that call.
const TIMEOUT: Duration = Duration::from_millis(500);

/// The first probe's delay after the link went down, doubled after each failed probe up to
/// [`PROBE_MAX`]: a blip is over in moments, a long outage costs one connection attempt
/// every few seconds.
const PROBE_FIRST: Duration = Duration::from_millis(50);

/// The longest wait between two probes.
const PROBE_MAX: Duration = Duration::from_secs(5);

/// Stores `{"v":VERSION,"d":DATA}` (ARGV 1, version ARGV 2) unless Redis holds the
/// same or a later version of the data, or the marker `{"w":VERSION}` of a later write.
/// With ARGV 4 set, stores ARGV 1 as a write's marker: over anything older than it.
const PUT: &str = r#"
local current = redis.call('GET', KEYS[1])
local mine = tonumber(ARGV[2])
local marker = ARGV[4] == '1'
if current then
  local written = tonumber(string.match(current, '^{"w":(%d+)'))
  if written and (written > mine or (marker and written == mine)) then return 0 end
  local held = tonumber(string.match(current, '^{"v":(%d+)'))
  if held and held >= mine then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"#;

/// A connection to the Redis at one url, with its health.
pub struct Redis {
    client: redis::Client,
    put: redis::Script,
    connection: Mutex<Option<MultiplexedConnection>>,
    outage: Episode,
    /// Whether Redis is believed reachable: false from a network failure until a probe
    /// answers. Waiters (the invalidation listener, invalidations to retry) watch it.
    up: watch::Sender<bool>,
    /// Whether a probing task runs (one at a time).
    probing: AtomicBool,
    /// Itself, for the probing task it starts from a `&self` method.
    me: Weak<Redis>,
}

/// Why a Redis call did not happen or did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    /// The link is down (a probe brings it back); the call was not tried.
    #[error("Redis is unavailable (reconnecting)")]
    Down,
    /// The call was tried and failed.
    #[error("Redis failed: {0}")]
    Failed(String),
}

impl Redis {
    /// A link to the Redis at `url`; nothing is connected until first use.
    pub fn new(url: &str) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url)?;
        Ok(Arc::new_cyclic(|me| Self {
            client,
            put: redis::Script::new(PUT),
            connection: Mutex::new(None),
            outage: Episode::new("cache.redis_unavailable"),
            up: watch::Sender::new(true),
            probing: AtomicBool::new(false),
            me: me.clone(),
        }))
    }

    /// The client, for what needs a connection of its own (a subscription).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The script that stores a versioned copy unless Redis holds a later one ([`PUT`]).
    pub(crate) fn put_script(&self) -> &redis::Script {
        &self.put
    }

    /// Stores `{"v":VERSION,"d":DATA}` for `ttl`, unless Redis holds the same or a later
    /// version (or a later write's marker): copies from several hosts land in any order.
    pub(crate) async fn put_versioned(
        &self,
        key: &str,
        data: &serde_json::Value,
        version: i64,
        ttl: Duration,
    ) {
        let Some(mut connection) = self.connection().await else {
            return;
        };
        let mut put = self.put.prepare_invoke();
        put.key(key)
            .arg(format!("{{\"v\":{version},\"d\":{data}}}"));
        put.arg(version).arg(ttl.as_secs().max(1)).arg(0);
        let stored: redis::RedisResult<i64> = put.invoke_async(&mut connection).await;
        self.outcome(stored);
    }

    /// The data of a versioned copy, when Redis has one (a write's marker is none).
    pub(crate) async fn get_versioned(&self, key: &str) -> Option<serde_json::Value> {
        use redis::AsyncCommands;
        let mut connection = self.connection().await?;
        let text: Option<String> = self.outcome(connection.get(key).await)?;
        let mut entry: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text?).ok()?;
        entry.remove("d")
    }

    /// Redis calls that failed, or were not tried because the link was down, so far.
    pub fn failures(&self) -> u64 {
        self.outage.count()
    }

    /// Whether the link is up (Redis answered last time, or was never tried).
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Waits until the link is up.
    pub(crate) async fn until_up(&self) {
        let mut up = self.up.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = up.wait_for(|up| *up).await;
    }

    /// A watch on the link's health (true: up).
    pub(crate) fn watch_up(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// Waits until the link is up, for at most `limit`; whether it is.
    pub(crate) async fn up_within(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.until_up()).await.is_ok()
    }

    /// The shared connection, made on first use; none at once while the link is down (the
    /// call is counted as failed, not tried).
    pub(crate) async fn connection(&self) -> Option<MultiplexedConnection> {
        self.try_connection().await.ok()
    }

    /// [`Redis::connection`], saying why there is none.
    pub(crate) async fn try_connection(&self) -> Result<MultiplexedConnection, RedisError> {
        if !self.is_up() {
            self.outage.skipped();
            return Err(RedisError::Down);
        }
        let mut connection = self.connection.lock().await;
        if let Some(made) = &*connection {
            return Ok(made.clone());
        }
        // The caller before this one may have found Redis gone while this one waited: not
        // one connect timeout per waiting caller.
        if !self.is_up() {
            self.outage.skipped();
            return Err(RedisError::Down);
        }
        match self.connect().await {
            Ok(made) => {
                *connection = Some(made.clone());
                Ok(made)
            }
            Err(error) => {
                drop(connection);
                let reason = error.to_string();
                self.lost(&error);
                Err(RedisError::Failed(reason))
            }
        }
    }

    /// A new connection with the link's timeouts.
    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// One PING through the link: the round trip every call through it costs at least.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut connection = self.try_connection().await?;
        let answer = redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await;
        self.try_outcome(answer).map(drop)
    }

    /// Notes how a call went.
    pub(crate) fn outcome<T>(&self, result: redis::RedisResult<T>) -> Option<T> {
        self.try_outcome(result).ok()
    }

    /// [`Redis::outcome`], keeping the reason of a failure. A network failure takes the
    /// link down; an error Redis answered (a script's, a wrong type) does not.
    pub(crate) fn try_outcome<T>(&self, result: redis::RedisResult<T>) -> Result<T, RedisError> {
        match result {
            Ok(value) => {
                // Ends an episode of refused calls; a network episode ends with a probe.
                if self.is_up() {
                    self.outage.recovered();
                }
                Ok(value)
            }
            Err(error) => {
                let reason = error.to_string();
                if is_network(&error) {
                    self.lost(&error);
                } else {
                    self.outage.failed(&error);
                }
                Err(RedisError::Failed(reason))
            }
        }
    }

    /// The link is lost (a call or the subscription failed on the network): calls fail at
    /// once from now on, and a probing task brings the link back when Redis answers.
    pub(crate) fn lost(&self, error: &dyn std::fmt::Display) {
        self.outage.failed(error);
        self.up.send_replace(false);
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.me.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(probe(me));
            }
            // No runtime to probe from (a call outside one cannot happen in the host):
            // the link stays down rather than block.
            Err(_) => self.probing.store(false, Ordering::Release),
        }
    }
}

/// Whether a failure says the server could not be reached (rather than refused the call).
pub(crate) fn is_network(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}

/// Probes Redis with backoff until it answers, then puts a fresh connection in place and
/// brings the link up. Ends when the link is dropped.
async fn probe(link: Weak<Redis>) {
    let mut delay = PROBE_FIRST;
    loop {
        tokio::time::sleep(delay).await;
        let Some(redis) = link.upgrade() else {
            return;
        };
        let answered = match redis.connect().await {
            Ok(mut connection) => redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map(|_| connection),
            Err(error) => Err(error),
        };
        match answered {
            Ok(connection) => {
                *redis.connection.lock().await = Some(connection);
                redis.probing.store(false, Ordering::Release);
                redis.outage.recovered();
                redis.up.send_replace(true);
                return;
            }
            Err(error) => {
                // Counted, logged only if this episode was not logged yet.
                redis.outage.failed(&error);
                delay = (delay * 2).min(PROBE_MAX);
            }
        }
    }
}

/// A failure that lasts: logged when it starts and when it ends, counted throughout.
pub(crate) struct Episode {
    category: &'static str,
    ongoing: AtomicBool,
    count: AtomicU64,
}

impl Episode {
    pub(crate) const fn new(category: &'static str) -> Self {
        Self {
            category,
            ongoing: AtomicBool::new(false),
            count: AtomicU64::new(0),
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if !self.ongoing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                category = self.category,
                "{error}; falling back until it recovers"
            );
        }
    }

    /// Counts a call not tried because the failure is known to go on (logged already).
    pub(crate) fn skipped(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn recovered(&self) {
        if self.ongoing.swap(false, Ordering::Relaxed) {
            tracing::info!(category = self.category, "recovered");
        }
    }
}
