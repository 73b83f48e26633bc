//! Discord. For now: interactions received over HTTP (slash commands and component clicks,
//! for deployments without a gateway connection), verified with the application's Ed25519
//! public key.

pub mod interactions;

use serde::{Deserialize, Serialize};

/// The `[discord]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscordConfig {
    /// The application's public key (hex, from the developer portal); set, it opens
    /// `POST /discord/interactions` on the HTTP server.
    pub public_key: String,
}
