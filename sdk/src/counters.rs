//! Write-behind counters: "user X was active", "thread T used N tokens". The host adds up
//! the amounts in memory and writes each total once it has been quiet for a while (and at
//! shutdown), so counting on every message costs no database write per message. Totals are
//! the plugin's own. The capability is `counters`, granted by default.
//!
//! ```
//! use wasmbot_sdk::{counters, prelude::*};
//!
//! struct Activity;
//!
//! impl Plugin for Activity {
//!     fn manifest() -> Manifest {
//!         Manifest::new("activity", "0.1.0")
//!             .on(EventType::Message)
//!             .command(CommandSpec::new("activity", "How much you wrote"))
//!             .capability("counters")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         if event.command().is_some() {
//!             let total = counters::stored("characters", &event.author.id)?
//!                 .map_or(0, |(total, _thread)| total);
//!             return Ok(vec![Action::reply(format!("{total} characters so far"))]);
//!         }
//!         let written = event.text().chars().count() as i64;
//!         counters::add("characters", &event.author.id, written, "all-time")?;
//!         Ok(vec![])
//!     }
//! }
//!
//! export_plugin!(Activity);
//! ```

pub use crate::bindings::wasmbot::plugin::counters::CounterError;
use crate::{PluginError, bindings::wasmbot::plugin::counters as wit};

/// Adds `amount` to the total of `counter` for `subject` in `thread`: the stored total's
/// thread grows it, another thread restarts it from `amount`. Amounts of zero or less are
/// skipped.
pub fn add(counter: &str, subject: &str, amount: i64, thread: &str) -> Result<(), CounterError> {
    wit::add(counter, subject, amount, thread)
}

/// The written total and its thread; amounts still waiting to be written are not in it.
pub fn stored(counter: &str, subject: &str) -> Result<Option<(i64, String)>, CounterError> {
    wit::stored(counter, subject)
}

/// So `?` works in a handler.
impl From<CounterError> for PluginError {
    fn from(error: CounterError) -> Self {
        match error {
            CounterError::Unavailable(text) => PluginError::Unavailable(text),
            CounterError::Denied(text) | CounterError::Invalid(text) => PluginError::Internal(text),
        }
    }
}
