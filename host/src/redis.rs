//! The host's one Redis link, shared by the capabilities that cache in it (the config
//! store's second layer, conversation state): made on first use, remade after it could not
//! be made, and never fatal: an outage is logged once, counted, and callers fall back to
//! the database.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

/// How long a Redis call may take before the cache is skipped for that call.
const TIMEOUT: Duration = Duration::from_millis(500);

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

/// A connection to the Redis at one url.
pub struct Redis {
    client: redis::Client,
    put: redis::Script,
    connection: Mutex<Option<ConnectionManager>>,
    outage: Arc<Episode>,
}

impl Redis {
    /// A link to the Redis at `url`; nothing is connected until first use.
    pub fn new(url: &str) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            client: redis::Client::open(url)?,
            put: redis::Script::new(PUT),
            connection: Mutex::new(None),
            outage: Arc::new(Episode::new("cache.redis_unavailable")),
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

    /// The outage episode every Redis failure counts in.
    pub(crate) fn outage(&self) -> &Arc<Episode> {
        &self.outage
    }

    /// Failed Redis calls so far.
    pub fn failures(&self) -> u64 {
        self.outage.count()
    }

    /// The shared connection, made on first use and remade after it could not be made.
    pub(crate) async fn connection(&self) -> Option<ConnectionManager> {
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

    /// Notes how a call went.
    pub(crate) fn outcome<T>(&self, result: redis::RedisResult<T>) -> Option<T> {
        match result {
            Ok(value) => {
                self.outage.recovered();
                Some(value)
            }
            Err(error) => {
                self.outage.failed(&error);
                None
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

    pub(crate) fn recovered(&self) {
        if self.ongoing.swap(false, Ordering::Relaxed) {
            tracing::info!(category = self.category, "recovered");
        }
    }
}
