//! The host's own settings, for settings plugins: each guild's command prefix ([`PREFIX`]),
//! staff roles ([`STAFF_ROLES`]) and AI role prompt ([`AI_ROLE_PROMPT`]). The host reads
//! them on every message, so a change shows on the very next one, on every host. The
//! capability is `host-config`, which the operator grants by name.
//!
//! ```
//! use wasmbot_sdk::{host_config, prelude::*};
//!
//! struct Prefix;
//!
//! impl Plugin for Prefix {
//!     fn manifest() -> Manifest {
//!         Manifest::new("prefix", "0.1.0")
//!             .command(
//!                 CommandSpec::new("prefix", "Change the command prefix")
//!                     .option(OptionSpec::new("prefix", "The new prefix", OptionKind::Text).required())
//!                     .permission("manage-guild"),
//!             )
//!             .capability("host-config")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         let (Some(command), Some(guild)) = (event.command(), event.guild_scope()) else {
//!             return Ok(vec![]);
//!         };
//!         let prefix = command.text("prefix").unwrap_or_default();
//!         host_config::set(&guild, host_config::PREFIX, &prefix)?;
//!         Ok(vec![Action::reply(format!("Commands now start with {prefix}"))])
//!     }
//! }
//!
//! export_plugin!(Prefix);
//! ```

use crate::{
    bindings::wasmbot::plugin::host_config as wit,
    config::{ConfigError, Scope},
};

/// A guild's command prefix (text, 1 to 16 bytes, no spaces).
pub const PREFIX: &str = "prefix";
/// A guild's staff: a list of role ids allowed to run staff-only commands.
pub const STAFF_ROLES: &str = "staff-roles";
/// The role AI features play in a guild (text).
pub const AI_ROLE_PROMPT: &str = "ai-role-prompt";

crate::config::typed_calls!(wit);
