//! The guild admins' commands: `plugins` lists the plugins and whether each is on here,
//! `plugin enable|disable NAME` switches one for the guild, `command enable|disable NAME
//! [#channel]` one command for the guild or a channel. The state is the host's `switches`
//! setting of the guild, in the config store: every host sees a change at once (the store's
//! invalidation), and reading it is a cache hit per event.

use crate::{
    bindings::types::{CommandSpec, OptionKind, OptionSpec, Platform},
    capabilities::config_store::{
        ConfigStore, Scope,
        host_settings::{HOST, SWITCHES, Switches},
    },
    dispatch::Here,
    runtime::registry::Snapshot,
};

/// What Discord calls the permission that may run them (beside a staff role).
const MANAGE_GUILD: &str = "manage-guild";

/// Their declarations, as `help` shows them.
pub fn specs() -> Vec<CommandSpec> {
    let option = |name: &str, description: &str, kind, required| OptionSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        kind,
        required,
        choices: Vec::new(),
    };
    let spec = |name: &str, description: &str, options| CommandSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        aliases: Vec::new(),
        options,
        permissions: vec![MANAGE_GUILD.to_owned()],
        staff_only: false,
        cooldown: None,
        localizations: Vec::new(),
    };
    let action = || option("action", "enable or disable", OptionKind::Text, true);
    vec![
        spec(
            "plugins",
            "The plugins, and whether each is on here",
            Vec::new(),
        ),
        spec(
            "plugin",
            "Switch a plugin on or off in this server",
            vec![
                action(),
                option("name", "The plugin", OptionKind::Text, true),
            ],
        ),
        spec(
            "command",
            "Switch a command on or off in this server or one channel",
            vec![
                action(),
                option("name", "The command", OptionKind::Text, true),
                option(
                    "channel",
                    "Only in this channel",
                    OptionKind::Channel,
                    false,
                ),
            ],
        ),
    ]
}

/// Whether the user may switch things here: the console's user (the operator), a member
/// with Manage Server, or one of the guild's staff.
pub(super) fn may_switch(here: &Here<'_>) -> bool {
    here.is_console()
        || here.is_staff()
        || here
            .permissions
            .is_some_and(|held| held.grant(&[MANAGE_GUILD.to_owned()]))
}

/// Runs `name` with its raw arguments; the answer for the user. Nothing is written unless
/// the whole command is valid.
pub(super) async fn run(
    store: Option<&ConfigStore>,
    snapshot: &Snapshot,
    here: &Here<'_>,
    name: &str,
    raw: &str,
) -> String {
    let Some(guild) = here.event.guild_id.clone() else {
        return "Plugins and commands are switched per server, and this chat has none.".into();
    };
    if !may_switch(here) {
        return "You need the Manage Server permission or a staff role for that.".into();
    }
    let Some(store) = store else {
        return "This bot keeps no settings, so nothing can be switched.".into();
    };
    let switches = &here.settings.switches;
    let words: Vec<&str> = raw.split_whitespace().collect();
    let prefix = here.prefix;
    let changed = match (name, words.as_slice()) {
        ("plugins", []) => return listing(snapshot, switches),
        ("plugin", [action, plugin]) => {
            let Some(on) = action_of(action) else {
                return format!("Usage: `{prefix}plugin enable|disable NAME`.");
            };
            if snapshot.plugin(plugin).is_none() {
                return format!("There is no plugin `{plugin}` (`{prefix}plugins` lists them).");
            }
            let mut next = switches.clone();
            next.plugins.insert((*plugin).to_owned(), on);
            (next, format!("{plugin} is {} in this server.", state(on)))
        }
        ("command", [action, command, rest @ ..]) if rest.len() <= 1 => {
            let Some(on) = action_of(action) else {
                return format!("Usage: `{prefix}command enable|disable NAME [#channel]`.");
            };
            let Some((_, spec)) = snapshot.command(&command.to_lowercase()) else {
                return format!("There is no command `{prefix}{command}` here.");
            };
            let channel = match rest.first() {
                Some(channel) => match channel_id(channel, here.event.platform) {
                    Some(id) => Some(id),
                    None => return format!("`{channel}` is not a channel."),
                },
                None => None,
            };
            let entry = match &channel {
                Some(channel) => format!("{}@{channel}", spec.name),
                None => spec.name.clone(),
            };
            let mut next = switches.clone();
            next.commands.retain(|off| *off != entry);
            if !on {
                next.commands.push(entry);
            } else if channel.is_some() && next.commands.contains(&spec.name) {
                return format!(
                    "`{prefix}{}` is off in the whole server; `{prefix}command enable {}` turns it on everywhere.",
                    spec.name, spec.name
                );
            }
            let place = match &channel {
                Some(channel) => format!("in <#{channel}>"),
                None => "in this server".to_owned(),
            };
            (
                next,
                format!("`{prefix}{}` is {} {place}.", spec.name, state(on)),
            )
        }
        _ => {
            return format!(
                "Usage: `{prefix}plugins`, `{prefix}plugin enable|disable NAME`, `{prefix}command enable|disable NAME [#channel]`."
            );
        }
    };
    let (next, done) = changed;
    let scope = Scope::Guild(guild);
    match store.set(HOST, &scope, SWITCHES, next.to_value()).await {
        Ok(()) => done,
        Err(error) => {
            tracing::warn!(event = %here.event.id, "guild switches not saved: {error}");
            "That could not be saved just now; please try again later.".into()
        }
    }
}

fn listing(snapshot: &Snapshot, switches: &Switches) -> String {
    let lines: Vec<String> = snapshot
        .plugins()
        .map(|plugin| {
            let chosen = switches.plugins.get(plugin.name()).copied();
            let on = chosen.unwrap_or(plugin.on_by_default());
            let default = if chosen.is_none() { " (default)" } else { "" };
            let description = &plugin.manifest().description;
            format!("`{}` {}{default}: {description}", plugin.name(), state(on))
        })
        .collect();
    match lines.is_empty() {
        true => "No plugins are loaded.".into(),
        false => lines.join("\n"),
    }
}

fn action_of(word: &str) -> Option<bool> {
    match word.to_lowercase().as_str() {
        "enable" | "on" => Some(true),
        "disable" | "off" => Some(false),
        _ => None,
    }
}

fn state(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// A channel as typed: a mention `<#123>` or a bare id; where channels have names beside
/// ids (Discord), only those, since `#general` would match no event's channel.
fn channel_id(text: &str, platform: Platform) -> Option<String> {
    let mention = text
        .strip_prefix("<#")
        .and_then(|rest| rest.strip_suffix('>'));
    let id = match (mention, platform) {
        (Some(id), _) => id,
        (None, Platform::Discord) => text,
        (None, _) => text.strip_prefix('#').unwrap_or(text),
    };
    let plain = match platform {
        Platform::Discord => id.bytes().all(|b| b.is_ascii_digit()),
        _ => id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
    };
    (plain && (1..=64).contains(&id.len())).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_mentions_or_ids() {
        let discord = |text| channel_id(text, Platform::Discord);
        assert_eq!(discord("<#123>").as_deref(), Some("123"));
        assert_eq!(discord("123").as_deref(), Some("123"));
        assert_eq!(discord("#general"), None);
        assert_eq!(discord("<#>"), None);
        let console = |text| channel_id(text, Platform::Console);
        assert_eq!(console("general").as_deref(), Some("general"));
        assert_eq!(console("#general").as_deref(), Some("general"));
        assert_eq!(console("a b"), None);
        assert_eq!(action_of("Disable"), Some(false));
        assert_eq!(action_of("toggle"), None);
    }
}
