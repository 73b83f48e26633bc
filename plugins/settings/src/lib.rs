//! `!settings`, `!prefix`, `!staff`, `!ai-prompt`: a guild's settings, kept by the host
//! (capability `host-config`). The host reads them on every message, so a new prefix works
//! on the very next message, on every host of the bot.

use serde::Deserialize;
use wasmbot_sdk::{host_config, prelude::*};

/// Changing settings needs the platform's "manage server" permission. The console's user is
/// the operator and has it; elsewhere the platform adapter checks it (until one does, the
/// host refuses these commands there rather than run them for anyone).
const MANAGE: &str = "manage-guild";

struct Settings;

/// The host's fields this plugin shows.
#[derive(Deserialize)]
struct Guild {
    prefix: String,
    #[serde(rename = "staff-roles")]
    staff_roles: Vec<String>,
    #[serde(rename = "ai-role-prompt")]
    ai_role_prompt: String,
}

impl Plugin for Settings {
    fn manifest() -> Manifest {
        Manifest::new("settings", env!("CARGO_PKG_VERSION"))
            .description("The guild's prefix, staff roles and AI role prompt")
            .command(CommandSpec::new("settings", "Show this server's settings"))
            .command(
                CommandSpec::new("prefix", "Change the command prefix")
                    .option(
                        OptionSpec::new(
                            "prefix",
                            "1 to 16 characters, no spaces",
                            OptionKind::Text,
                        )
                        .required(),
                    )
                    .permission(MANAGE),
            )
            .command(
                CommandSpec::new("staff", "Add or remove a staff role")
                    .option(
                        OptionSpec::new("change", "add or remove", OptionKind::Text)
                            .required()
                            .choice("add", "add")
                            .choice("remove", "remove"),
                    )
                    .option(OptionSpec::new("role", "The role", OptionKind::Role).required())
                    .permission(MANAGE),
            )
            .command(
                CommandSpec::new("ai-prompt", "Set the role AI features play (none: reset)")
                    .option(OptionSpec::new(
                        "prompt",
                        "The role prompt",
                        OptionKind::Rest,
                    ))
                    .permission(MANAGE),
            )
            .capability("host-config")
    }

    fn handle(event: Event) -> Handled {
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        let Some(guild) = event.guild_scope() else {
            return Err(PluginError::InvalidInput(
                "Settings belong to a server; use this in one.".into(),
            ));
        };
        let text = match command.name.as_str() {
            "prefix" => {
                let prefix = command.text("prefix").unwrap_or_default();
                host_config::set(&guild, host_config::PREFIX, &prefix)?;
                format!("Commands now start with `{prefix}`, e.g. `{prefix}settings`.")
            }
            "staff" => {
                let role = command.text("role").unwrap_or_default().to_owned();
                // Read, change, write: two staff changes at the same instant can lose one
                // (the contract has no compare-and-set yet); the answer shows what stuck.
                let mut roles: Vec<String> = host_config::get(&guild, host_config::STAFF_ROLES)?;
                let added = command.text("change") == Some("add");
                roles.retain(|r| *r != role);
                if added {
                    roles.push(role.clone());
                }
                host_config::set(&guild, host_config::STAFF_ROLES, &roles)?;
                match added {
                    true => format!("<@&{role}> is staff now."),
                    false => format!("<@&{role}> is no longer staff."),
                }
            }
            "ai-prompt" => match command.text("prompt") {
                Some(prompt) => {
                    host_config::set(&guild, host_config::AI_ROLE_PROMPT, &prompt)?;
                    "AI role prompt set.".to_owned()
                }
                None => {
                    host_config::delete(&guild, host_config::AI_ROLE_PROMPT)?;
                    "AI role prompt reset.".to_owned()
                }
            },
            _ => show(&host_config::document(&guild)?),
        };
        Ok(vec![Action::reply(text)])
    }
}

fn show(guild: &Guild) -> String {
    let staff = match guild.staff_roles.is_empty() {
        true => "none".to_owned(),
        false => guild
            .staff_roles
            .iter()
            .map(|role| format!("<@&{role}>"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let prompt = match guild.ai_role_prompt.is_empty() {
        true => "none",
        false => &guild.ai_role_prompt,
    };
    format!(
        "Prefix: `{}`\nStaff roles: {staff}\nAI role prompt: {prompt}",
        guild.prefix
    )
}

export_plugin!(Settings);
