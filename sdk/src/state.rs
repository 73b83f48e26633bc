//! Conversation state: what a multi-step flow remembers between one user's messages in one
//! chat, kept by the host in the database with a time to live, so the flow survives a
//! restart and can continue on another host; and the conversation's last few messages
//! ([`remember`], [`history`]) to build AI prompts from. The state is the plugin's own; the capability
//! is `state`, granted by default.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use wasmbot_sdk::{prelude::*, state};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Signup {
//!     name: Option<String>,
//! }
//!
//! struct Greeter;
//!
//! impl Plugin for Greeter {
//!     fn manifest() -> Manifest {
//!         Manifest::new("signup", "0.1.0")
//!             .on(EventType::Message)
//!             .command(CommandSpec::new("signup", "Sign up"))
//!             .capability("state")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         let conversation = event.conversation();
//!         if event.command().is_some() {
//!             state::set(&conversation, &Signup { name: None }, 3600)?;
//!             return Ok(vec![Action::reply("What is your name?")]);
//!         }
//!         let Some(Signup { name: None }) = state::get(&conversation)? else {
//!             return Ok(vec![]);
//!         };
//!         state::clear(&conversation)?;
//!         Ok(vec![Action::reply(format!("Welcome, {}!", event.text()))])
//!     }
//! }
//!
//! export_plugin!(Greeter);
//! ```

use serde::{Serialize, de::DeserializeOwned};

pub use crate::bindings::wasmbot::plugin::state::{Conversation, StateError, Turn};
use crate::{Event, PluginError, bindings::wasmbot::plugin::state as wit};

/// The conversation's state, unless none was set, it expired, or it no longer reads as `T`
/// (a flow changed shape between versions: start over).
pub fn get<T: DeserializeOwned>(conversation: &Conversation) -> Result<Option<T>, StateError> {
    Ok(wit::get(conversation)?.and_then(|text| serde_json::from_str(&text).ok()))
}

/// Sets the conversation's state for `ttl_seconds` (cut to the host's longest).
pub fn set(
    conversation: &Conversation,
    value: &impl Serialize,
    ttl_seconds: u32,
) -> Result<(), StateError> {
    let text = serde_json::to_string(value).map_err(|error| {
        StateError::Invalid(format!("the state cannot be written as JSON: {error}"))
    })?;
    wit::set(conversation, &text, ttl_seconds)
}

/// Forgets the conversation's state.
pub fn clear(conversation: &Conversation) -> Result<(), StateError> {
    wit::clear(conversation)
}

/// Appends a message to the conversation's history; the host keeps only the last few
/// (`history_turns`, 5 by default).
pub fn remember(conversation: &Conversation, role: &str, text: &str) -> Result<(), StateError> {
    wit::remember(conversation, role, text)
}

/// The conversation's history, oldest first: what an AI prompt is built from.
pub fn history(conversation: &Conversation) -> Result<Vec<Turn>, StateError> {
    wit::history(conversation)
}

/// Forgets the conversation's history.
pub fn clear_history(conversation: &Conversation) -> Result<(), StateError> {
    wit::clear_history(conversation)
}

impl Event {
    /// The event's author in the event's chat.
    pub fn conversation(&self) -> Conversation {
        Conversation {
            platform: self.platform,
            chat_id: self.channel_id.clone(),
            user_id: self.author.id.clone(),
        }
    }
}

/// So `?` works in a handler: an oversized state is the user's to shorten; the rest is the
/// plugin's or the host's trouble.
impl From<StateError> for PluginError {
    fn from(error: StateError) -> Self {
        match error {
            StateError::TooLarge(text) => PluginError::InvalidInput(text),
            StateError::Unavailable(text) => PluginError::Unavailable(text),
            StateError::Denied(text) | StateError::Invalid(text) => PluginError::Internal(text),
        }
    }
}
