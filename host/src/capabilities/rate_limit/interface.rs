//! The `rate-limit` interface: a plugin's own limits, in its own key namespace.

use std::time::Duration;

use super::{Decision, Rate, RateLimiter};
use crate::{
    capabilities::{Capability, check_name},
    runtime::{
        HostState,
        bindings::wasmbot::plugin::rate_limit::{self as wit, RateLimitError},
    },
};

/// The longest key a plugin may pass.
const MAX_KEY_BYTES: usize = 200;

impl HostState {
    fn rate_limiter(&mut self) -> Result<&RateLimiter, RateLimitError> {
        self.grant(Capability::RateLimit)
            .map_err(RateLimitError::Denied)?;
        self.services
            .rate_limit
            .as_deref()
            .ok_or_else(|| RateLimitError::Denied("this host runs without rate limits".to_owned()))
    }
}

impl wit::Host for HostState {
    async fn check(
        &mut self,
        key: String,
        limit: u32,
        window_ms: u64,
    ) -> Result<wit::Decision, RateLimitError> {
        check_name("key", &key, MAX_KEY_BYTES).map_err(RateLimitError::Invalid)?;
        let rate = Rate::new(limit, Duration::from_millis(window_ms)).ok_or_else(|| {
            RateLimitError::Invalid(format!(
                "the limit must be at least 1 and the window 1 ms to {} ms",
                Rate::MAX_WINDOW.as_millis()
            ))
        })?;
        let key = format!("plugin:{}:{key}", self.plugin);
        let decision = self
            .rate_limiter()?
            .check(&key, rate)
            .await
            .map_err(|full| RateLimitError::Full(full.to_string()))?;
        Ok(match decision {
            Decision::Allowed => wit::Decision::Allowed,
            Decision::RetryAfter(wait) => wit::Decision::RetryAfter(
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
            ),
        })
    }
}
