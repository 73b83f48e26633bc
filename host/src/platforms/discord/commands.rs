//! Slash commands from the plugins' manifests: the loaded plugins' commands are Discord's
//! application commands (globally, or in one guild in development), written only when they
//! differ from what Discord holds, so a restart or a reload that changes nothing costs one
//! read, and an unloaded plugin's commands go with it.

use std::{collections::BTreeMap, sync::Arc};

use serde_json::{Value, json};
use serenity::all::{GuildId, Http};

use crate::{
    bindings::types::{CommandSpec, OptionKind, OptionSpec},
    permissions,
    runtime::{Registry, registry::Snapshot},
};

/// Keeps Discord's application commands in step with the loaded plugins.
pub struct Commands {
    guild: Option<GuildId>,
    /// One synchronisation at a time: two would race their reads and writes.
    running: tokio::sync::Mutex<()>,
}

impl Commands {
    /// Commands registered in `guild`, or globally.
    pub fn new(guild: Option<GuildId>) -> Self {
        Self {
            guild,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Writes the commands of `snapshot` when Discord's differ; true when it wrote.
    /// Failures are logged: the commands stay as they were, prefix commands still work.
    pub async fn sync(&self, http: &Http, snapshot: &Snapshot) -> bool {
        let _one = self.running.lock().await;
        let wanted = application_commands(snapshot);
        let current = match self.guild {
            Some(guild) => http.get_guild_commands(guild).await,
            None => http.get_global_commands().await,
        };
        let current = match current.map(serde_json::to_value) {
            Ok(Ok(Value::Array(current))) => current,
            Ok(_) => Vec::new(),
            Err(error) => {
                tracing::warn!(platform = "discord", "slash commands not read: {error}");
                return false;
            }
        };
        if comparable(&current) == comparable(&wanted) {
            tracing::debug!(platform = "discord", "slash commands unchanged");
            return false;
        }
        let written = match self.guild {
            Some(guild) => http.create_guild_commands(guild, &wanted).await,
            None => http.create_global_commands(&wanted).await,
        };
        match written {
            Ok(_) => {
                tracing::info!(
                    platform = "discord",
                    count = wanted.len(),
                    guild = ?self.guild.map(|g| g.get()),
                    "slash commands registered"
                );
                true
            }
            Err(error) => {
                tracing::warn!(
                    platform = "discord",
                    "slash commands not registered: {error}"
                );
                false
            }
        }
    }

    /// Synchronises after every load and unload, until the task is aborted.
    pub fn follow(
        self: &Arc<Self>,
        http: Arc<Http>,
        registry: Arc<Registry>,
    ) -> tokio::task::JoinHandle<()> {
        let commands = Arc::clone(self);
        let mut changes = registry.changes();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
                // Before the first READY Discord's application id is unknown: READY syncs.
                if http.application_id().is_some() {
                    commands.sync(&http, &registry.snapshot()).await;
                }
            }
        })
    }
}

/// The application commands for the loaded plugins and the host's own slash commands
/// (`help`), by name; an alias is not a slash command of its own (prefix commands have
/// them).
pub fn application_commands(snapshot: &Snapshot) -> Vec<Value> {
    let mut commands = BTreeMap::new();
    for host in snapshot.host_commands().filter(|host| host.slash) {
        commands.insert(host.spec.name.clone(), command(&host.spec));
    }
    for plugin in snapshot.plugins() {
        for spec in &plugin.manifest().commands {
            // A name two plugins declare belongs to the one the dispatcher routes it to.
            let owner = snapshot.command(&spec.name).map(|(owner, _)| owner.name());
            if owner == Some(plugin.name()) {
                commands.insert(spec.name.clone(), command(spec));
            }
        }
    }
    commands.into_values().collect()
}

fn command(spec: &CommandSpec) -> Value {
    let permissions = spec
        .permissions
        .iter()
        .filter_map(|name| permissions::bit(name))
        .fold(0u64, |bits, bit| bits | bit);
    // Discord shows each user the name and description of their locale.
    let names: serde_json::Map<String, Value> = spec
        .localizations
        .iter()
        .filter_map(|l| Some((l.locale.clone(), json!(l.name.as_ref()?))))
        .collect();
    let descriptions: serde_json::Map<String, Value> = spec
        .localizations
        .iter()
        .map(|l| {
            (
                l.locale.clone(),
                json!(describe(&l.description, &spec.name)),
            )
        })
        .collect();
    json!({
        "type": 1,
        "name": spec.name,
        "name_localizations": names,
        "description": describe(&spec.description, &spec.name),
        "description_localizations": descriptions,
        "options": spec.options.iter().map(option).collect::<Vec<_>>(),
        // Discord hides the command from members without them; the host checks again.
        "default_member_permissions": (permissions != 0).then(|| permissions.to_string()),
    })
}

fn option(option: &OptionSpec) -> Value {
    let kind = match option.kind {
        OptionKind::Text | OptionKind::Rest => 3,
        OptionKind::Integer => 4,
        OptionKind::Boolean => 5,
        OptionKind::User => 6,
        OptionKind::Channel => 7,
        OptionKind::Role => 8,
        OptionKind::Number => 10,
    };
    let choices: Vec<Value> = option
        .choices
        .iter()
        .filter_map(|choice| {
            let value = match option.kind {
                OptionKind::Integer => json!(choice.value.parse::<i64>().ok()?),
                OptionKind::Number => json!(choice.value.parse::<f64>().ok()?),
                _ => json!(choice.value),
            };
            Some(json!({ "name": choice.name, "value": value }))
        })
        .collect();
    json!({
        "type": kind,
        "name": option.name,
        "description": describe(&option.description, &option.name),
        "required": option.required,
        "choices": choices,
    })
}

/// Discord requires a description of 1 to 100 characters.
fn describe(description: &str, name: &str) -> String {
    let text = if description.trim().is_empty() {
        name
    } else {
        description
    };
    text.chars().take(100).collect()
}

/// What decides whether a command changed, in one shape whichever side it came from:
/// Discord adds ids, versions and defaults, and leaves out what is false or empty.
fn comparable(commands: &[Value]) -> BTreeMap<String, Value> {
    let text = |value: &Value| match value {
        Value::Null => Value::Null,
        Value::String(text) => json!(text),
        other => json!(other.to_string()),
    };
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    // Discord says null for no localizations.
    let map = |value: &Value| json!(value.as_object().cloned().unwrap_or_default());
    commands
        .iter()
        .map(|command| {
            let options: Vec<Value> = list(&command["options"])
                .iter()
                .map(|option| {
                    json!({
                        "type": option["type"],
                        "name": option["name"],
                        "description": option["description"],
                        "required": option["required"].as_bool().unwrap_or(false),
                        "choices": list(&option["choices"]),
                    })
                })
                .collect();
            let name = command["name"].as_str().unwrap_or_default().to_owned();
            let shape = json!({
                "description": command["description"],
                "name_localizations": map(&command["name_localizations"]),
                "description_localizations": map(&command["description_localizations"]),
                "options": options,
                "default_member_permissions": text(&command["default_member_permissions"]),
            });
            (name, shape)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_discord_adds_or_leaves_out_is_not_a_change() {
        let ours = vec![json!({
            "type": 1, "name": "roll", "description": "Roll dice",
            "name_localizations": {}, "description_localizations": {},
            "options": [{ "type": 4, "name": "sides", "description": "sides",
                          "required": false, "choices": [] }],
            "default_member_permissions": null,
        })];
        let theirs = vec![json!({
            "id": "1", "application_id": "2", "version": "3", "type": 1, "name": "roll",
            "description": "Roll dice", "dm_permission": true, "nsfw": false,
            "options": [{ "type": 4, "name": "sides", "description": "sides" }],
            "default_member_permissions": null,
        })];
        assert_eq!(comparable(&ours), comparable(&theirs));
        let mut changed = theirs.clone();
        changed[0]["options"][0]["required"] = json!(true);
        assert_ne!(comparable(&ours), comparable(&changed));
        let mut permission = theirs.clone();
        permission[0]["default_member_permissions"] = json!("32");
        assert_ne!(comparable(&ours), comparable(&permission));
        let mut localized = theirs;
        localized[0]["description_localizations"] = json!({ "de": "Würfeln" });
        assert_ne!(comparable(&ours), comparable(&localized));
    }
}
