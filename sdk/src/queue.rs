//! Bounded queues for heavy work (AI calls, image processing): at most the operator's
//! concurrency (3 by default) runs at once per plugin and operation, a bounded number
//! waits, and past that the call fails at once with `busy`. The capability is `queue`,
//! granted by default.
//!
//! ```
//! use wasmbot_sdk::{prelude::*, queue};
//!
//! struct Painter;
//!
//! impl Plugin for Painter {
//!     fn manifest() -> Manifest {
//!         Manifest::new("painter", "0.1.0")
//!             .command(CommandSpec::new("paint", "Paint a picture"))
//!             .capability("queue")
//!     }
//!
//!     fn handle(_event: Event) -> Handled {
//!         let picture = queue::run("paint", || "🖼️".repeat(3))?;
//!         Ok(vec![Action::reply(picture)])
//!     }
//! }
//!
//! export_plugin!(Painter);
//! ```

pub use crate::bindings::wasmbot::plugin::queue::{QueueError, Ticket};
use crate::{PluginError, bindings::wasmbot::plugin::queue as wit};

/// Waits for a place in the `operation` queue; the place is held until the ticket drops.
pub fn enter(operation: &str) -> Result<Ticket, QueueError> {
    wit::enter(operation)
}

/// Runs `work` holding a place in the `operation` queue.
pub fn run<T>(operation: &str, work: impl FnOnce() -> T) -> Result<T, QueueError> {
    let _ticket = enter(operation)?;
    Ok(work())
}

/// So `?` works in a handler: a full queue and a host short of memory are "unavailable".
impl From<QueueError> for PluginError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::Busy(ms) => PluginError::Unavailable(format!(
                "busy; try again in {} s",
                ms.div_ceil(1000).max(1)
            )),
            QueueError::Shedding(text) => PluginError::Unavailable(text),
            QueueError::Denied(text) | QueueError::Invalid(text) => PluginError::Internal(text),
        }
    }
}
