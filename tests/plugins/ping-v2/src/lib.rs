//! A second version of `ping` (same name, other answer), to swap in while events flow. It
//! also calls `log` without asking for it in its manifest, which the host must deny.

use wasmbot_sdk::prelude::*;

struct PingV2;

impl Plugin for PingV2 {
    fn manifest() -> Manifest {
        Manifest::new("ping", "2.0.0")
            .description("Answers pong, version 2")
            .command(CommandSpec::new("ping", "Check that the bot is alive"))
    }

    fn handle(_event: Event) -> Handled {
        log::info("this line is not allowed: no log capability asked for");
        Ok(vec![Action::reply("pong v2")])
    }
}

export_plugin!(PingV2);
