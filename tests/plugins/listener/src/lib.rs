//! Subscribes to plain messages (other plugins' commands included), declares a command only
//! staff may use, and one (`echo`) that the echo plugin already owns, so that loading both
//! is refused.

use wasmbot_sdk::prelude::*;

struct Listener;

impl Plugin for Listener {
    fn manifest() -> Manifest {
        Manifest::new("listener", "0.1.0")
            .on(EventType::Message)
            .command(CommandSpec::new("secret", "For staff only").staff_only())
            .command(CommandSpec::new("echo", "Taken by the echo plugin"))
    }

    fn handle(event: Event) -> Handled {
        Ok(match &event.kind {
            EventKind::Message(message) => vec![Action::reply(format!("heard: {}", message.text))],
            EventKind::Command(_) => vec![Action::reply("secret ok")],
            _ => vec![],
        })
    }
}

export_plugin!(Listener);
