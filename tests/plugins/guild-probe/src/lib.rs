//! Commands for the host's help, switches and cooldowns: `!daily` (twice per two seconds per
//! user), `!tidy` (needs manage-messages), `!staff` (staff only), `!hola` (described in
//! Spanish and Portuguese too). Off in a guild until its admins switch it on.

use std::time::Duration;

use wasmbot_sdk::prelude::*;

struct Probe;

impl Plugin for Probe {
    fn manifest() -> Manifest {
        Manifest::new("guild-probe", "0.1.0")
            .description("Probes guild features")
            .enabled_by_default(false)
            .command(
                CommandSpec::new("daily", "Claim the daily reward").cooldown(
                    CooldownScope::User,
                    2,
                    Duration::from_secs(2),
                ),
            )
            .command(CommandSpec::new("tidy", "Tidy the channel").permission("manage-messages"))
            .command(CommandSpec::new("staff", "Staff business").staff_only())
            .command(
                CommandSpec::new("hola", "Say hello")
                    .localized("es-ES", Some("hola"), "Saludar")
                    .localized("pt-BR", None, "Dizer olá"),
            )
    }

    fn handle(event: Event) -> Handled {
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        Ok(vec![Action::reply(format!("{} ok", command.name))])
    }
}

export_plugin!(Probe);
