//! The host's own settings, kept in the config store under the namespace [`HOST`]: each
//! guild's command prefix, staff roles and AI role prompt. The dispatcher reads them on
//! every message (a cache hit at steady state); plugins granted `host-config` change them.

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

const MAX_PREFIX_BYTES: usize = 16;

/// Registers the host's fields and their defaults (`prefix`: the operator's `bot.prefix`).
pub fn register(store: &ConfigStore, prefix: &str) {
    let mut guild = Document::new();
    guild.insert(PREFIX.to_owned(), Value::String(prefix.to_owned()));
    guild.insert(STAFF_ROLES.to_owned(), Value::Array(Vec::new()));
    guild.insert(AI_ROLE_PROMPT.to_owned(), Value::String(String::new()));
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
        _ => Ok(()),
    }
}

fn usable_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_BYTES
        && !prefix.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// What the dispatcher needs of a guild's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildSettings {
    /// The command prefix.
    pub prefix: String,
    /// Role ids of the guild's staff.
    pub staff_roles: Vec<String>,
}

impl GuildSettings {
    /// Reads a guild's settings (field by field: the AI role prompt, which can be long, is
    /// not copied on every message); the configured prefix where the stored one is unusable
    /// (a row edited outside the bot).
    pub async fn read(store: &ConfigStore, guild: &str, default_prefix: &str) -> Self {
        let scope = Scope::Guild(guild.to_owned());
        let prefix = match store.get(HOST, &scope, PREFIX).await {
            Ok(Value::String(prefix)) if usable_prefix(&prefix) => prefix,
            _ => default_prefix.to_owned(),
        };
        let staff_roles = match store.get(HOST, &scope, STAFF_ROLES).await {
            Ok(Value::Array(roles)) => roles
                .into_iter()
                .filter_map(|role| match role {
                    Value::String(id) => Some(id),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Self {
            prefix,
            staff_roles,
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
    }
}
