//! Rate limits: GCRA counted in this process (governor), or in Redis with one atomic script
//! per check when the bot has Redis, so several hosts enforce one limit exactly. Used by
//! the operator's limits on events (`dispatch::limits`) and by plugins on their own
//! operations (the `rate-limit` interface).

mod config;
mod interface;

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};
use serde::{Deserialize, Serialize};

use crate::redis::Redis;

pub use config::{LimitConfig, Per, RateLimitConfig};
pub use interface::Context;
pub(crate) use interface::link;

impl crate::telemetry::memory::Relief for RateLimiter {}
impl super::Lifecycle for RateLimiter {}

impl super::Build for RateLimiter {
    fn build(
        store: &Arc<super::config_store::ConfigStore>,
        sections: super::Sections<'_>,
    ) -> Arc<Self> {
        Arc::new(RateLimiter::configured(
            sections.rate_limits,
            store.redis().cloned(),
        ))
    }
}

/// How often keys idle for longer than their window are dropped from memory.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often a full table may be swept to make room.
const SWEEP_WHEN_FULL_EVERY: Duration = Duration::from_secs(1);

/// GCRA in Redis: KEYS[1] holds the theoretical arrival time (µs, Redis' clock, so hosts'
/// clocks do not matter). ARGV: emission interval and window, in µs. Returns
/// `{1, 0}` when allowed (and counted), `{0, µs to wait}` otherwise.
const GCRA: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - window
if allowed_at > now then return {0, allowed_at - now} end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return {1, 0}
";

/// `limit` operations per `window`, spread evenly (GCRA): a burst of up to `limit` at
/// once, then one more each `window / limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Operations allowed in one window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

impl Rate {
    /// The longest window a limit may have.
    pub const MAX_WINDOW: Duration = Duration::from_secs(86_400);

    /// A rate, when `limit` and `window` make one: at least 1, a window of at most a day
    /// and at least a microsecond per operation (what Redis' clock can tell apart).
    pub fn new(limit: u32, window: Duration) -> Option<Self> {
        (limit > 0 && window <= Self::MAX_WINDOW && window.as_micros() >= u128::from(limit))
            .then_some(Self { limit, window })
    }

    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.limit)?;
        Quota::with_period(self.window / self.limit).map(|quota| quota.allow_burst(burst))
    }
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and counted.
    Allowed,
    /// Refused; the next one is allowed after this long.
    RetryAfter(Duration),
}

impl Decision {
    /// Whether the operation may go ahead.
    pub fn allowed(self) -> bool {
        self == Decision::Allowed
    }
}

/// What a check does when Redis cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisError {
    /// Allow, with a warning in the log (once per outage).
    #[default]
    Allow,
    /// Refuse.
    Deny,
}

/// This process tracks as many keys as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the host tracks {0} rate-limit keys, its maximum")]
pub struct Full(pub usize);

/// Counts operations against rates, per key.
pub struct RateLimiter {
    local: Mutex<HashMap<Rate, Arc<DefaultKeyedRateLimiter<String>>>>,
    last_sweep: Mutex<Instant>,
    last_full_sweep: Mutex<Instant>,
    max_keys: usize,
    redis: Option<Arc<Redis>>,
    script: redis::Script,
    on_redis_error: OnRedisError,
    checks: AtomicU64,
    refused: AtomicU64,
}

impl RateLimiter {
    /// A limiter counting in Redis when `redis` is given, in this process otherwise, with
    /// at most `max_keys` keys in memory.
    pub fn new(max_keys: usize, redis: Option<Arc<Redis>>, on_redis_error: OnRedisError) -> Self {
        Self {
            local: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
            last_full_sweep: Mutex::new(Instant::now()),
            max_keys,
            redis,
            script: redis::Script::new(GCRA),
            on_redis_error,
            checks: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// A limiter counting as `[rate_limits]` says, in `redis` when given.
    pub fn configured(config: &RateLimitConfig, redis: Option<Arc<Redis>>) -> Self {
        Self::new(config.max_keys, redis, config.on_redis_error)
    }

    /// Counts one operation under `key` if `rate` allows it. With no Redis, a new key when
    /// the process holds `max_keys` already is refused as [`Full`], until old ones expire.
    pub async fn check(&self, key: &str, rate: Rate) -> Result<Decision, Full> {
        let decision = self.decide(key, rate).await;
        self.checks.fetch_add(1, Ordering::Relaxed);
        if !matches!(decision, Ok(Decision::Allowed)) {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }

    /// [`RateLimiter::check`], left out of the counts (the host's own bookkeeping).
    pub(crate) async fn decide(&self, key: &str, rate: Rate) -> Result<Decision, Full> {
        match &self.redis {
            Some(redis) => Ok(self.check_redis(redis, key, rate).await),
            None => self.check_local(key, rate),
        }
    }

    /// Checks made, and refused, since the host started.
    pub fn counts(&self) -> (u64, u64) {
        // Refusals first: a check finishing between the loads cannot make them exceed
        // the checks.
        let refused = self.refused.load(Ordering::Relaxed);
        (self.checks.load(Ordering::Relaxed), refused)
    }

    /// Keys this process holds in memory.
    pub fn keys(&self) -> usize {
        self.limiters().iter().map(|limiter| limiter.len()).sum()
    }

    /// Whether the counts live in Redis.
    pub fn shared(&self) -> bool {
        self.redis.is_some()
    }

    fn limiters(&self) -> Vec<Arc<DefaultKeyedRateLimiter<String>>> {
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.values().cloned().collect()
    }

    fn check_local(&self, key: &str, rate: Rate) -> Result<Decision, Full> {
        self.sweep_if_due(&self.last_sweep, SWEEP_EVERY);
        // Full: make room (at most once a second), else refuse rather than grow.
        if self.keys() >= self.max_keys {
            self.sweep_if_due(&self.last_full_sweep, SWEEP_WHEN_FULL_EVERY);
            let keys = self.keys();
            if keys >= self.max_keys {
                return Err(Full(keys));
            }
        }
        let limiter = {
            let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            let Some(quota) = rate.quota() else {
                return Ok(Decision::RetryAfter(rate.window));
            };
            Arc::clone(
                local
                    .entry(rate)
                    .or_insert_with(|| Arc::new(DefaultKeyedRateLimiter::keyed(quota))),
            )
        };
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(Decision::Allowed),
            Err(not_until) => Ok(Decision::RetryAfter(
                not_until.wait_time_from(limiter.clock().now()),
            )),
        }
    }

    async fn check_redis(&self, redis: &Redis, key: &str, rate: Rate) -> Decision {
        let interval = micros(rate.window / rate.limit).max(1);
        let window = interval * u64::from(rate.limit);
        let key = format!(
            "wasmbot:rate:{}:{}:{key}",
            rate.limit,
            rate.window.as_micros()
        );
        let answer = match redis.connection().await {
            Some(mut connection) => {
                let mut call = self.script.prepare_invoke();
                call.key(key).arg(interval).arg(window);
                redis.outcome(call.invoke_async::<(i64, i64)>(&mut connection).await)
            }
            None => None,
        };
        match answer {
            Some((1, _)) => Decision::Allowed,
            Some((_, wait)) => Decision::RetryAfter(Duration::from_micros(wait.max(0) as u64)),
            // The outage is logged once by the link; every check says what it did.
            None => match self.on_redis_error {
                OnRedisError::Allow => {
                    tracing::debug!("rate limit not checked (Redis unavailable): allowed");
                    Decision::Allowed
                }
                OnRedisError::Deny => Decision::RetryAfter(rate.window / rate.limit),
            },
        }
    }

    fn sweep_if_due(&self, last: &Mutex<Instant>, every: Duration) {
        let due = {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.elapsed() >= every;
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            self.sweep();
        }
    }

    /// Drops keys whose window has passed, and rates nobody uses any more.
    fn sweep(&self) {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.retain(|_, limiter| {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            !limiter.is_empty()
        });
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exactly_the_limit_passes_in_one_window_per_key() {
        let limiter = RateLimiter::new(1_000, None, OnRedisError::Allow);
        let rate = Rate::new(5, Duration::from_secs(60)).unwrap();
        for _ in 0..5 {
            assert_eq!(limiter.check("a", rate).await, Ok(Decision::Allowed));
        }
        let Ok(Decision::RetryAfter(wait)) = limiter.check("a", rate).await else {
            panic!("the sixth check passed");
        };
        // One of five slots of a minute comes free every 12 s.
        assert!(wait > Duration::from_secs(11) && wait <= Duration::from_secs(12));
        assert_eq!(limiter.check("b", rate).await, Ok(Decision::Allowed));
        assert_eq!(limiter.counts(), (7, 1));
    }

    #[tokio::test]
    async fn a_slot_comes_back_after_its_share_of_the_window() {
        let limiter = RateLimiter::new(1_000, None, OnRedisError::Allow);
        let rate = Rate::new(2, Duration::from_millis(100)).unwrap();
        assert!(limiter.check("k", rate).await.unwrap().allowed());
        assert!(limiter.check("k", rate).await.unwrap().allowed());
        assert!(!limiter.check("k", rate).await.unwrap().allowed());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(limiter.check("k", rate).await.unwrap().allowed());
    }

    #[tokio::test]
    async fn keys_past_the_maximum_are_refused_until_they_expire() {
        let limiter = RateLimiter::new(3, None, OnRedisError::Allow);
        let rate = Rate::new(1, Duration::from_millis(50)).unwrap();
        for key in ["a", "b", "c"] {
            assert!(limiter.check(key, rate).await.unwrap().allowed());
        }
        assert_eq!(limiter.check("d", rate).await, Err(Full(3)));
        assert_eq!(limiter.keys(), 3, "a refused key is not kept");
        // governor forgets a key one emission interval after its state went back to fresh;
        // a full table is swept at most once a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(limiter.check("e", rate).await.unwrap().allowed());
        assert_eq!(limiter.keys(), 1);
    }

    #[test]
    fn zero_limits_and_windows_are_no_rate() {
        assert!(Rate::new(0, Duration::from_secs(1)).is_none());
        assert!(Rate::new(1, Duration::ZERO).is_none());
        assert!(Rate::new(1, Duration::from_secs(86_401)).is_none());
        assert!(Rate::new(1_000, Duration::from_micros(999)).is_none());
    }
}
