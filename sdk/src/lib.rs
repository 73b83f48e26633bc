//! Write wasmbot plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`. The host asks it once for its
//! [`Manifest`] (name, commands, the events and capabilities it wants), then hands it one
//! [`Event`] at a time, each on a fresh instance, and carries out the [`Action`]s it returns.
//!
//! A complete plugin (`crate-type = ["cdylib"]`, built with
//! `cargo build --target wasm32-wasip2`):
//!
//! ```
//! use wasmbot_sdk::prelude::*;
//!
//! struct Greeter;
//!
//! impl Plugin for Greeter {
//!     fn manifest() -> Manifest {
//!         Manifest::new("greeter", "0.1.0")
//!             .description("Greets people")
//!             .command(
//!                 CommandSpec::new("hello", "Say hello")
//!                     .option(OptionSpec::new("name", "Who to greet", OptionKind::Rest)),
//!             )
//!             .capability("log")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         let Some(command) = event.command() else { return Ok(vec![]) };
//!         let name = command.text("name").unwrap_or(&event.author.name);
//!         log::info(&format!("greeting {name}"));
//!         Ok(vec![Action::reply(format!("Hello, {name}!"))])
//!     }
//! }
//!
//! export_plugin!(Greeter);
//! ```
//!
//! The `testing` feature (on `[dev-dependencies]`) runs the built `.wasm` against an
//! in-process host from an ordinary `cargo test`; see `testing::TestHost`.

#![warn(missing_docs)]

/// The bindings generated from the plugin contract, `wasmbot:plugin@0.2.0`.
///
/// The ergonomic layer re-exports what plugin authors need; reach in here for the rest.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "wasmbot_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

mod actions;
#[cfg(all(feature = "build", not(target_arch = "wasm32")))]
pub mod build;
pub mod config;
pub mod counters;
mod events;
pub mod flow;
pub mod host_config;
pub mod http;
pub mod log;
mod manifest;
pub mod messaging;
pub mod metrics;
pub mod queue;
pub mod rate_limit;
pub mod schedule;
pub mod state;
pub mod storage;
#[cfg(all(feature = "testing", not(target_arch = "wasm32")))]
pub mod testing;
pub mod time;

pub use bindings::wasmbot::plugin::types::{
    Action, AllowedMentions, Argument, Attachment, Button, ButtonStyle, ChannelRef, Choice,
    Command, CommandSource, CommandSpec, Contact, Cooldown, CooldownScope, Delivery, DeliveryState,
    Destination, Edit, Embed, EmbedField, Event, EventKind, EventType, Interaction, Localization,
    Location, Manifest, Media, MediaKind, MediaSource, Menu, MenuOption, Message, OptionKind,
    OptionSpec, Outgoing, Platform, PluginError, React, Reaction, Send, Template, Timer, User,
    UserRef, Value,
};

/// What a handler returns: the actions to carry out, or why it could not.
pub type Handled = Result<Vec<Action>, PluginError>;

/// A plugin's behaviour. Both functions run on a fresh instance: keep no state in statics,
/// it is gone after the call.
pub trait Plugin {
    /// Describes the plugin. Called once when the host loads it.
    fn manifest() -> Manifest;

    /// Handles one event: a declared command, or an event kind the manifest subscribed to.
    fn handle(event: Event) -> Handled;
}

impl<T: Plugin> bindings::Guest for T {
    fn describe() -> Manifest {
        T::manifest()
    }

    fn handle(event: Event) -> Handled {
        T::handle(event)
    }
}

/// Exports a type implementing [`Plugin`] as the component's `describe` and `handle`.
///
/// Use it once per plugin crate, at the crate's root.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident) => {
        $crate::bindings::__export_plugin_world!($plugin with_types_in $crate::bindings);
    };
}

/// Everything a plugin usually needs: `use wasmbot_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::config::{Scope, ScopeKind};
    pub use crate::log;
    pub use crate::{
        Action, Button, ButtonStyle, Command, CommandSpec, CooldownScope, Event, EventKind,
        EventType, Handled, Manifest, Menu, MenuOption, OptionKind, OptionSpec, Outgoing, Platform,
        Plugin, PluginError, Timer, Value, export_plugin,
    };
}
