//! The cooldowns plugins declare on their commands: at most `limit` uses in a window that
//! opens with the first use, as discord.py and Red count them (not a smoothed rate: the
//! `limit + 1`th use inside the window is refused until the window closes, however the uses
//! were spread). Counted in the process, or in Redis across hosts (one script: the count
//! and the window's expiry); while Redis cannot answer, this process counts alone rather
//! than let every use through.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use moka::{Expiry, future::Cache};

use crate::redis::Redis;

/// Windows counted in the process at most; the oldest go first past it.
const MAX_WINDOWS: u64 = 100_000;

/// Counts a window's uses; returns them and the milliseconds the window has left.
const COUNT: &str = r"
local uses = redis.call('INCR', KEYS[1])
if uses == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {uses, redis.call('PTTL', KEYS[1])}
";

/// What a use is to its cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Within the limit.
    Allowed,
    /// Over it, until the window closes in `retry_after`; `first` for the first use refused
    /// in this window (the one the user is told about).
    Refused {
        /// When the window closes.
        retry_after: Duration,
        /// Whether it is the window's first refused use.
        first: bool,
    },
}

/// One window's uses, in the process.
#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Instant,
    length: Duration,
    uses: u32,
}

impl Window {
    fn left(&self) -> Duration {
        self.length.saturating_sub(self.opened.elapsed())
    }
}

/// A window is forgotten when it closes.
struct Closes;

impl Expiry<String, Window> for Closes {
    fn expire_after_create(&self, _: &String, window: &Window, _: Instant) -> Option<Duration> {
        Some(window.left())
    }

    fn expire_after_update(
        &self,
        _: &String,
        window: &Window,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(window.left())
    }
}

/// The cooldowns' counts.
pub struct Cooldowns {
    local: Cache<String, Window>,
    redis: Option<Arc<Redis>>,
    script: redis::Script,
}

impl Cooldowns {
    /// Counts in `redis` when given, in this process otherwise.
    pub fn new(redis: Option<Arc<Redis>>) -> Self {
        Self {
            local: Cache::builder()
                .max_capacity(MAX_WINDOWS)
                .expire_after(Closes)
                .build(),
            redis,
            script: redis::Script::new(COUNT),
        }
    }

    /// Counts one use of `key`, allowed `limit` times per `window`.
    pub async fn take(&self, key: &str, limit: u32, window: Duration) -> Use {
        let (uses, left) = match self.count_in_redis(key, window).await {
            Some(counted) => counted,
            None => self.count_here(key, window).await,
        };
        match uses.checked_sub(u64::from(limit)) {
            None | Some(0) => Use::Allowed,
            Some(over) => Use::Refused {
                retry_after: left,
                first: over == 1,
            },
        }
    }

    async fn count_in_redis(&self, key: &str, window: Duration) -> Option<(u64, Duration)> {
        let redis = self.redis.as_ref()?;
        let mut connection = redis.connection().await?;
        let length = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut call = self.script.prepare_invoke();
        call.key(format!("wasmbot:cooldown:{}:{key}", length))
            .arg(length);
        let (uses, left): (i64, i64) = redis.outcome(call.invoke_async(&mut connection).await)?;
        let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
        Some((u64::try_from(uses).unwrap_or(0), left))
    }

    async fn count_here(&self, key: &str, length: Duration) -> (u64, Duration) {
        let window = self
            .local
            .entry(key.to_owned())
            .and_upsert_with(|open| {
                let window = match open.map(|entry| entry.into_value()) {
                    Some(open) if !open.left().is_zero() => Window {
                        uses: open.uses.saturating_add(1),
                        ..open
                    },
                    _ => Window {
                        opened: Instant::now(),
                        length,
                        uses: 1,
                    },
                };
                std::future::ready(window)
            })
            .await
            .into_value();
        (u64::from(window.uses), window.left())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_window_holds_its_limit_however_the_uses_are_spread_then_opens_again() {
        let cooldowns = Cooldowns::new(None);
        let window = Duration::from_secs(3);
        assert_eq!(cooldowns.take("k", 2, window).await, Use::Allowed);
        // Past window / limit: a smoothed rate would allow a third use from here.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(cooldowns.take("k", 2, window).await, Use::Allowed);
        let Use::Refused { retry_after, first } = cooldowns.take("k", 2, window).await else {
            panic!("the third use in the window passed");
        };
        assert!(first);
        assert!(
            retry_after <= Duration::from_millis(1400),
            "{retry_after:?}"
        );
        assert!(matches!(
            cooldowns.take("k", 2, window).await,
            Use::Refused { first: false, .. }
        ));
        assert_eq!(cooldowns.take("other", 2, window).await, Use::Allowed);

        let short = Duration::from_millis(100);
        assert_eq!(cooldowns.take("s", 1, short).await, Use::Allowed);
        assert!(matches!(
            cooldowns.take("s", 1, short).await,
            Use::Refused { .. }
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(cooldowns.take("s", 1, short).await, Use::Allowed);
    }
}
