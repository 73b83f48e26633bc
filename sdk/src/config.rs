//! Settings the host keeps for the plugin: one document of typed fields per scope (the bot,
//! a guild, a channel, a user, a member of a guild), cached by the host (a read is a memory
//! lookup, not a query), shared by every host of the bot, and namespaced per plugin. The
//! capability is `config`, granted by default.
//!
//! Declare the fields and their defaults in the manifest; a field's default fixes its type.
//! Values are anything `serde` can read or write, a single field or the whole document as
//! one typed record:
//!
//! ```
//! use serde::Deserialize;
//! use serde_json::json;
//! use wasmbot_sdk::{config, prelude::*};
//!
//! #[derive(Deserialize)]
//! struct Greetings {
//!     greeting: String,
//!     shout: bool,
//! }
//!
//! struct Greeter;
//!
//! impl Plugin for Greeter {
//!     fn manifest() -> Manifest {
//!         Manifest::new("greeter", "0.1.0")
//!             .command(CommandSpec::new("hello", "Say hello"))
//!             .command(
//!                 CommandSpec::new("greeting", "Change the greeting")
//!                     .option(OptionSpec::new("text", "The new greeting", OptionKind::Rest).required())
//!                     .permission("manage-guild"),
//!             )
//!             .config(ScopeKind::Guild, &json!({ "greeting": "Hello", "shout": false }))
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         let (Some(command), Some(guild)) = (event.command(), event.guild_scope()) else {
//!             return Ok(vec![]);
//!         };
//!         if command.name == "greeting" {
//!             config::set(&guild, "greeting", &command.text("text").unwrap_or("Hello"))?;
//!             return Ok(vec![Action::reply("Greeting changed.")]);
//!         }
//!         let settings: Greetings = config::document(&guild)?;
//!         let text = format!("{}, {}!", settings.greeting, event.author.name);
//!         Ok(vec![Action::reply(if settings.shout { text.to_uppercase() } else { text })])
//!     }
//! }
//!
//! export_plugin!(Greeter);
//! ```

use serde::{Serialize, de::DeserializeOwned};

pub use crate::bindings::wasmbot::plugin::config::{ConfigError, Member, Scope, ScopeKind};
use crate::{Event, Manifest, PluginError, bindings::wasmbot::plugin::config as wit};

/// Declares the fields of one kind of scope with their defaults (a JSON object). Only
/// while the host reads the manifest; [`Manifest::config`] calls it for you.
pub fn register(kind: ScopeKind, defaults: &impl Serialize) -> Result<(), ConfigError> {
    wit::register(kind, &encode("the defaults", defaults)?)
}

/// The typed calls over one of the two interfaces (`config`, `host-config`): they differ
/// only in whose namespace they reach.
macro_rules! typed_calls {
    ($wit:ident) => {
        /// One field's value: what is stored in `scope`, else its default.
        pub fn get<T: serde::de::DeserializeOwned>(
            scope: &Scope,
            key: &str,
        ) -> Result<T, ConfigError> {
            $crate::config::decode(key, &$wit::get(scope, key)?)
        }

        /// Every field of `scope` as one record: the defaults overlaid with what is stored.
        pub fn document<T: serde::de::DeserializeOwned>(scope: &Scope) -> Result<T, ConfigError> {
            $crate::config::decode("the document", &$wit::document(scope)?)
        }

        /// Stores one field's value; every host sees it on its next read.
        pub fn set(
            scope: &Scope,
            key: &str,
            value: &impl serde::Serialize,
        ) -> Result<(), ConfigError> {
            $wit::set(scope, key, &$crate::config::encode(key, value)?)
        }

        /// Removes one field's stored value, so its default applies again.
        pub fn delete(scope: &Scope, key: &str) -> Result<(), ConfigError> {
            $wit::delete(scope, key)
        }

        /// The fields registered for the scope's kind.
        pub fn keys(scope: &Scope) -> Result<Vec<String>, ConfigError> {
            $wit::keys(scope)
        }
    };
}
pub(crate) use typed_calls;

typed_calls!(wit);

pub(crate) fn encode(what: &str, value: &impl Serialize) -> Result<String, ConfigError> {
    serde_json::to_string(value).map_err(|error| {
        ConfigError::InvalidValue(format!("{what} cannot be written as JSON: {error}"))
    })
}

pub(crate) fn decode<T: DeserializeOwned>(what: &str, json: &str) -> Result<T, ConfigError> {
    serde_json::from_str(json).map_err(|error| {
        ConfigError::InvalidValue(format!("{what} does not fit the type asked for: {error}"))
    })
}

impl Manifest {
    /// Declares the plugin's settings for one kind of scope, with their defaults (a JSON
    /// object), and asks for the `config` capability.
    ///
    /// # Panics
    /// When the host refuses the defaults (not a JSON object, over the size limit): the
    /// host then refuses the plugin, saying why.
    pub fn config(mut self, kind: ScopeKind, defaults: &impl Serialize) -> Self {
        if let Err(error) = register(kind, defaults) {
            panic!("the config defaults were refused: {}", error.message());
        }
        if !self.capabilities.iter().any(|c| c == "config") {
            self.capabilities.push("config".to_owned());
        }
        self
    }
}

impl Event {
    /// The event's guild, as a config scope; none outside a guild.
    pub fn guild_scope(&self) -> Option<Scope> {
        self.guild_id.clone().map(Scope::Guild)
    }

    /// The event's channel or chat, as a config scope.
    pub fn channel_scope(&self) -> Scope {
        Scope::Channel(self.channel_id.clone())
    }

    /// The event's author, as a config scope.
    pub fn user_scope(&self) -> Scope {
        Scope::User(self.author.id.clone())
    }

    /// The event's author in its guild, as a config scope; none outside a guild.
    pub fn member_scope(&self) -> Option<Scope> {
        self.guild_id.clone().map(|guild_id| {
            Scope::Member(Member {
                guild_id,
                user_id: self.author.id.clone(),
            })
        })
    }
}

impl ConfigError {
    /// What the host said, without the variant's name.
    pub fn message(&self) -> &str {
        match self {
            ConfigError::Denied(text)
            | ConfigError::InvalidScope(text)
            | ConfigError::UnknownKey(text)
            | ConfigError::InvalidValue(text)
            | ConfigError::TooLarge(text)
            | ConfigError::Unavailable(text) => text,
        }
    }
}

/// So `?` works in a handler: what a user could have got wrong is theirs to read, the rest
/// is the plugin's or the host's trouble.
impl From<ConfigError> for PluginError {
    fn from(error: ConfigError) -> Self {
        let text = error.message().to_owned();
        match error {
            ConfigError::InvalidValue(_) | ConfigError::TooLarge(_) => {
                PluginError::InvalidInput(text)
            }
            ConfigError::Unavailable(_) => PluginError::Unavailable(text),
            ConfigError::Denied(_) | ConfigError::InvalidScope(_) | ConfigError::UnknownKey(_) => {
                PluginError::Internal(text)
            }
        }
    }
}
