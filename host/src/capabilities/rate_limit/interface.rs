//! The `rate-limit` interface: a plugin's own limits, in its own key namespace.

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use super::{Decision, Rate, RateLimiter};
use crate::{
    bindings::wasmbot::plugin::rate_limit::{self as wit, RateLimitError},
    capabilities::{Backends, Grant, HasContexts, Instance, Policy, Reach, check_name},
};

/// The longest key a plugin may pass.
const MAX_KEY_BYTES: usize = 200;

/// One instance's rate limits: its grant and the shared limiter.
pub struct Context(Reach<RateLimiter>);

impl Context {
    pub(crate) fn new(grant: Grant, _: &Instance, backends: &Backends, _: &Policy) -> Self {
        Self(Reach::new(
            grant,
            backends.rate_limit.clone(),
            "rate limits",
        ))
    }
}

pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().rate_limit)
}

impl wit::Host for Context {
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
        let key = format!("plugin:{}:{key}", self.0.plugin());
        let decision = self
            .0
            .get(RateLimitError::Denied, RateLimitError::Denied)?
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
