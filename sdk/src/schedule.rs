//! Timers: the host calls the plugin back later with a timer event ([`Event::timer`]) in
//! the conversation the timer was set from, as if its author had written again, so a
//! reply goes where it was asked for. Timers are kept in the database: they survive
//! restarts, and each firing is delivered once across every host of the bot (late, with
//! [`Timer::late_ms`] saying by how much, when every host was down at the time). The
//! payload is the plugin's own text, handed back as it was given: keep it small (the host
//! caps it, 4 KiB by default). The capability is `schedule`, granted by default.
//!
//! ```
//! use std::time::Duration;
//! use wasmbot_sdk::{prelude::*, schedule};
//!
//! struct Tea;
//!
//! impl Plugin for Tea {
//!     fn manifest() -> Manifest {
//!         Manifest::new("tea", "0.1.0")
//!             .command(CommandSpec::new("tea", "Tell me when the tea is ready"))
//!             .capability("schedule")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         if let Some(timer) = event.timer() {
//!             return Ok(vec![Action::reply(format!("Your {} is ready.", timer.payload))]);
//!         }
//!         let id = schedule::after(Duration::from_secs(180), "green tea")?;
//!         Ok(vec![Action::reply(format!("Three minutes (timer {id})."))])
//!     }
//! }
//!
//! export_plugin!(Tea);
//! ```
//!
//! [`Event::timer`]: crate::Event::timer
//! [`Timer::late_ms`]: crate::Timer::late_ms

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::bindings::wasmbot::plugin::schedule::{Repeat, ScheduleError, TimerInfo};
use crate::{PluginError, bindings::wasmbot::plugin::schedule as wit};

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Sets a timer that fires once, `delay` from now (counted in whole milliseconds, at least
/// one); returns its id.
pub fn after(delay: Duration, payload: &str) -> Result<String, ScheduleError> {
    wit::after(millis(delay), payload)
}

/// Sets a timer that fires once at `time`, which must be ahead; returns its id.
pub fn at(time: SystemTime, payload: &str) -> Result<String, ScheduleError> {
    let since_epoch = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| ScheduleError::Invalid("the time is before 1970".to_owned()))?;
    wit::at(millis(since_epoch), payload)
}

/// Sets a timer that fires every `interval` from now (at least the host's shortest
/// interval, a minute by default) until cancelled; returns its id.
pub fn every(interval: Duration, payload: &str) -> Result<String, ScheduleError> {
    wit::every(&Repeat::IntervalMs(millis(interval)), payload)
}

/// Sets a timer that fires whenever the cron expression `expression` says, in UTC, until
/// cancelled: five fields (`0 9 * * MON-FRI`: weekdays at 09:00), or six with seconds
/// first. Returns its id.
pub fn cron(expression: &str, payload: &str) -> Result<String, ScheduleError> {
    wit::every(&Repeat::Cron(expression.to_owned()), payload)
}

/// Cancels one of the plugin's timers, wherever it was set; `false` when there was none
/// of that id (it fired, or was cancelled already). Anyone who can name an id can cancel
/// it: check [`list`] first when users give the id.
pub fn cancel(id: &str) -> Result<bool, ScheduleError> {
    wit::cancel(id)
}

/// The plugin's timers set in the event's guild (outside a guild: in its chat), soonest
/// first, with who set each one ([`TimerInfo::user_id`]).
pub fn list() -> Result<Vec<TimerInfo>, ScheduleError> {
    wit::list()
}

impl ScheduleError {
    /// What went wrong, in words.
    pub fn message(&self) -> &str {
        match self {
            ScheduleError::Denied(text)
            | ScheduleError::Invalid(text)
            | ScheduleError::TooMany(text)
            | ScheduleError::Unavailable(text) => text,
        }
    }
}

/// So `?` works in a handler: a time in the past, a cron expression that does not parse
/// and a full timer table are usually what the user asked for, so they are told; an outage
/// is "try later"; a capability the plugin lacks is its bug.
impl From<ScheduleError> for PluginError {
    fn from(error: ScheduleError) -> Self {
        match error {
            ScheduleError::Invalid(text) | ScheduleError::TooMany(text) => {
                PluginError::InvalidInput(text)
            }
            ScheduleError::Unavailable(text) => PluginError::Unavailable(text),
            ScheduleError::Denied(text) => PluginError::Internal(text),
        }
    }
}
