//! Limits on the plugin's own expensive operations: "5 AI calls per minute per user". The
//! host counts them (across every host of the bot when it has Redis); keys are the
//! plugin's own. The capability is `rate-limit`, granted by default.
//!
//! ```
//! use std::time::Duration;
//! use wasmbot_sdk::{prelude::*, rate_limit};
//!
//! struct Oracle;
//!
//! impl Plugin for Oracle {
//!     fn manifest() -> Manifest {
//!         Manifest::new("oracle", "0.1.0")
//!             .command(CommandSpec::new("ask", "Ask the oracle"))
//!             .capability("rate-limit")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         let key = format!("ask:{}", event.author.id);
//!         if let Some(wait) = rate_limit::check(&key, 5, Duration::from_secs(60))? {
//!             let seconds = wait.as_secs().max(1);
//!             return Ok(vec![Action::reply(format!("Ask again in {seconds} s."))]);
//!         }
//!         Ok(vec![Action::reply("The answer is 42.")])
//!     }
//! }
//!
//! export_plugin!(Oracle);
//! ```

use std::time::Duration;

pub use crate::bindings::wasmbot::plugin::rate_limit::RateLimitError;
use crate::{PluginError, bindings::wasmbot::plugin::rate_limit as wit};

/// Counts one operation under `key` if `limit` per `window` allows it: `None` means go
/// ahead, `Some(wait)` means over the limit (nothing counted), try again after `wait`. The
/// rate is spread evenly (GCRA): a burst of up to `limit`, then one more each
/// `window / limit`.
pub fn check(key: &str, limit: u32, window: Duration) -> Result<Option<Duration>, RateLimitError> {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    Ok(match wit::check(key, limit, window_ms)? {
        wit::Decision::Allowed => None,
        wit::Decision::RetryAfter(ms) => Some(Duration::from_millis(ms)),
    })
}

/// So `?` works in a handler.
impl From<RateLimitError> for PluginError {
    fn from(error: RateLimitError) -> Self {
        match error {
            RateLimitError::Full(text) => PluginError::Unavailable(text),
            RateLimitError::Denied(text) | RateLimitError::Invalid(text) => {
                PluginError::Internal(text)
            }
        }
    }
}
