//! `!ping`: answers pong and the time since the platform received the message, where the
//! platform's clock says it to the millisecond (Discord, the console). WhatsApp stamps
//! messages in whole seconds, so there a figure would be off by up to a second: it answers
//! pong alone.

use std::time::{SystemTime, UNIX_EPOCH};

use wasmbot_sdk::prelude::*;

struct Ping;

impl Plugin for Ping {
    fn manifest() -> Manifest {
        Manifest::new("ping", env!("CARGO_PKG_VERSION"))
            .description("Answers pong and how long it took")
            .command(CommandSpec::new("ping", "Check that the bot is alive"))
            .capability("log")
    }

    fn handle(event: Event) -> Handled {
        if event.platform == wasmbot_sdk::Platform::Whatsapp {
            return Ok(vec![Action::reply("pong")]);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(event.timestamp_ms);
        let took = now_ms.saturating_sub(event.timestamp_ms);
        log::debug(&format!("pong after {took} ms"));
        Ok(vec![Action::reply(format!("pong ({took} ms)"))])
    }
}

export_plugin!(Ping);
