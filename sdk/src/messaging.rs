//! Actions carried out now, while the handler runs, rather than after it returns: "typing...",
//! a progress note before a slow answer, or a message whose fate the plugin must know, such
//! as a WhatsApp message to a user who has not written in 24 hours ([`SendError::OutsideWindow`]:
//! only a template may go). And the media files users sent ([`download`]). The capability is
//! `messaging`, granted by default.
//!
//! ```
//! use wasmbot_sdk::{Platform, messaging, prelude::*};
//!
//! struct Reminder;
//!
//! impl Plugin for Reminder {
//!     fn manifest() -> Manifest {
//!         Manifest::new("reminder", "0.1.0")
//!             .command(CommandSpec::new("remind", "Remind a WhatsApp user").option(
//!                 OptionSpec::new("user", "Their WhatsApp id", OptionKind::Text).required(),
//!             ))
//!             .capability("messaging")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         let Some(user) = event.command().and_then(|c| c.text("user")) else {
//!             return Ok(vec![]);
//!         };
//!         messaging::act(Action::Typing)?;
//!         let reminder = Action::send_direct(Platform::Whatsapp, user, "Your table is ready.");
//!         match messaging::act(reminder) {
//!             Ok(()) => Ok(vec![Action::reply("Reminded.")]),
//!             // Outside the 24-hour window only a template may go.
//!             Err(messaging::SendError::OutsideWindow(_)) => {
//!                 let template = Outgoing::text("").template("table_ready", "en_US", &[]);
//!                 messaging::act(Action::send_direct(Platform::Whatsapp, user, template))?;
//!                 Ok(vec![Action::reply("Reminded with the template.")])
//!             }
//!             Err(other) => Err(other.into()),
//!         }
//!     }
//! }
//!
//! export_plugin!(Reminder);
//! ```

pub use crate::bindings::wasmbot::plugin::messaging::{MediaError, MediaFile, SendError};
use crate::{Action, Outgoing, PluginError, bindings::wasmbot::plugin::messaging as wit};

/// Carries out `action` now; the error says why the platform did not take it.
pub fn act(action: Action) -> Result<(), SendError> {
    wit::act(&action)
}

/// Answers in the event's conversation now.
pub fn reply(message: impl Into<Outgoing>) -> Result<(), SendError> {
    act(Action::reply(message))
}

/// Downloads a media file a user sent: an `Attachment::id` of the event's platform, at
/// most the host's size cap, of the type the platform announced.
pub fn download(media_id: &str) -> Result<MediaFile, MediaError> {
    wit::download(media_id)
}

/// So `?` works in a handler: an outage is "try later"; the rest is the plugin's to handle
/// (or an apology).
impl From<SendError> for PluginError {
    fn from(error: SendError) -> Self {
        match error {
            SendError::Unavailable(text) => PluginError::Unavailable(text),
            SendError::Denied(text)
            | SendError::OutsideWindow(text)
            | SendError::Rejected(text) => PluginError::Internal(text),
        }
    }
}

impl From<MediaError> for PluginError {
    fn from(error: MediaError) -> Self {
        match error {
            MediaError::TooLarge(text) | MediaError::WrongType(text) => {
                PluginError::InvalidInput(text)
            }
            MediaError::Unavailable(text) => PluginError::Unavailable(text),
            MediaError::Denied(text) | MediaError::NotFound(text) => PluginError::Internal(text),
        }
    }
}
