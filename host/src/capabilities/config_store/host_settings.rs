//! The host's own settings, kept in the config store under the namespace [`HOST`]: each
//! guild's command prefix, staff roles, AI role prompt and which plugins and commands are
//! switched on. The dispatcher reads them on every guild event (a cache hit at steady
//! state); guild admins' commands and plugins granted `host-config` change them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ConfigStore, Document, Scope, ScopeKind, StoreError};

/// The host's namespace in the store (no plugin may take this name).
pub const HOST: &str = "wasmbot";
/// The guild's command prefix (default `bot.prefix`).
pub const PREFIX: &str = "prefix";
/// Role ids whose members may run staff-only commands.
pub const STAFF_ROLES: &str = "staff-roles";
/// The role AI features play in the guild, as a system prompt.
pub const AI_ROLE_PROMPT: &str = "ai-role-prompt";
/// Which plugins the guild turned on or off, and which commands off ([`Switches`]).
pub const SWITCHES: &str = "switches";

const MAX_PREFIX_BYTES: usize = 16;

/// Registers the host's fields and their defaults (`prefix`: the operator's `bot.prefix`).
pub fn register(store: &ConfigStore, prefix: &str) {
    let mut guild = Document::new();
    guild.insert(PREFIX.to_owned(), Value::String(prefix.to_owned()));
    guild.insert(STAFF_ROLES.to_owned(), Value::Array(Vec::new()));
    guild.insert(AI_ROLE_PROMPT.to_owned(), Value::String(String::new()));
    guild.insert(SWITCHES.to_owned(), Value::Object(serde_json::Map::new()));
    store.register_defaults(HOST, ScopeKind::Guild, guild);
}

/// The rules of the host's fields beyond their types, checked before a write.
pub fn check(key: &str, value: &Value) -> Result<(), StoreError> {
    let invalid = |reason: &str| {
        Err(StoreError::Invalid {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    };
    match (key, value) {
        (PREFIX, Value::String(prefix)) if !usable_prefix(prefix) => {
            invalid("a prefix is 1 to 16 bytes, without spaces")
        }
        (STAFF_ROLES, Value::Array(roles))
            if !roles
                .iter()
                .all(|role| role.as_str().is_some_and(|id| !id.is_empty())) =>
        {
            invalid("staff roles are a list of role ids (non-empty strings)")
        }
        (SWITCHES, value) if Switches::parse(value).is_none() => invalid(
            "switches are {\"plugins\": {NAME: true|false}, \"commands\": [NAME or NAME@CHANNEL]}",
        ),
        _ => Ok(()),
    }
}

fn usable_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_BYTES
        && !prefix.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// What a guild's admins switched: plugins on or off (a plugin not named is at its
/// default), and commands off in the whole guild (`NAME`) or one channel (`NAME@CHANNEL`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Switches {
    /// Plugins turned on (true) or off (false), by name.
    pub plugins: BTreeMap<String, bool>,
    /// Commands turned off, by declared name: `NAME` in the whole guild, `NAME@CHANNEL` in
    /// one channel.
    pub commands: Vec<String>,
}

impl Switches {
    /// The switches stored as `value`; none when it is not their shape.
    pub fn parse(value: &Value) -> Option<Self> {
        Self::deserialize(value).ok()
    }

    /// As stored.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Whether the plugin is on, `default` unless the guild chose.
    pub fn plugin_on(&self, plugin: &str, default: bool) -> bool {
        self.plugins.get(plugin).copied().unwrap_or(default)
    }

    /// Whether the command is on in `channel`.
    pub fn command_on(&self, command: &str, channel: &str) -> bool {
        !self.commands.iter().any(|off| match off.split_once('@') {
            Some((name, at)) => name == command && at == channel,
            None => off == command,
        })
    }
}

/// What the dispatcher needs of a guild's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuildSettings {
    /// The command prefix.
    pub prefix: String,
    /// Role ids of the guild's staff.
    pub staff_roles: Vec<String>,
    /// Plugins and commands switched on or off.
    pub switches: Switches,
}

impl GuildSettings {
    /// Reads a guild's settings in one lookup of its cached document (fields not stored
    /// take their defaults: the configured prefix, no staff, nothing switched); the AI role
    /// prompt, which can be long, is not copied. A stored value that is unusable (a row
    /// edited outside the bot) is its default too.
    pub async fn read(store: &ConfigStore, guild: &str, default_prefix: &str) -> Self {
        let stored = store
            .stored_fields(HOST, &Scope::Guild(guild.to_owned()))
            .await;
        let prefix = match stored.get(PREFIX) {
            Some(Value::String(prefix)) if usable_prefix(prefix) => prefix.clone(),
            _ => default_prefix.to_owned(),
        };
        let staff_roles = match stored.get(STAFF_ROLES) {
            Some(Value::Array(roles)) => roles
                .iter()
                .filter_map(|role| role.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let switches = stored
            .get(SWITCHES)
            .and_then(Switches::parse)
            .unwrap_or_default();
        Self {
            prefix,
            staff_roles,
            switches,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn host_fields_have_rules_beyond_their_types() {
        assert!(check(PREFIX, &json!("?")).is_ok());
        assert!(check(PREFIX, &json!("")).is_err());
        assert!(check(PREFIX, &json!("a b")).is_err());
        assert!(check(PREFIX, &json!("x".repeat(17))).is_err());
        assert!(check(STAFF_ROLES, &json!(["1", "2"])).is_ok());
        assert!(check(STAFF_ROLES, &json!(["1", 2])).is_err());
        assert!(check(AI_ROLE_PROMPT, &json!("You are a pirate.")).is_ok());
        assert!(check(SWITCHES, &json!({})).is_ok());
        assert!(
            check(
                SWITCHES,
                &json!({"plugins": {"dice": false}, "commands": ["roll"]})
            )
            .is_ok()
        );
        assert!(check(SWITCHES, &json!({"plugins": {"dice": "off"}})).is_err());
        assert!(check(SWITCHES, &json!({"toggles": []})).is_err());
    }

    #[test]
    fn switches_turn_plugins_and_commands_off_in_a_guild_or_a_channel() {
        let switches = Switches::parse(&json!({
            "plugins": {"dice": false, "poll": true},
            "commands": ["roll", "remind@general"]
        }))
        .unwrap();
        assert!(!switches.plugin_on("dice", true));
        assert!(switches.plugin_on("poll", false));
        assert!(switches.plugin_on("ping", true));
        assert!(!switches.plugin_on("ping", false));
        assert!(!switches.command_on("roll", "general"));
        assert!(!switches.command_on("remind", "general"));
        assert!(switches.command_on("remind", "random"));
        assert!(switches.command_on("ping", "general"));
        assert_eq!(Switches::parse(&switches.to_value()), Some(switches));
    }
}
