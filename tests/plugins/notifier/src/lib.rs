//! Acts while its handler runs (capability `messaging`): `!notify USER TEXT` messages a
//! WhatsApp user and, outside the 24-hour window, falls back to a template; `!progress`
//! says "working..." before its answer; a message with media is downloaded and described.

use wasmbot_sdk::{Platform, messaging, prelude::*};

struct Notifier;

impl Plugin for Notifier {
    fn manifest() -> Manifest {
        Manifest::new("notifier", "0.1.0")
            .command(
                CommandSpec::new("notify", "Message a WhatsApp user")
                    .option(OptionSpec::new("user", "Their wa_id", OptionKind::Text).required())
                    .option(OptionSpec::new("text", "What to say", OptionKind::Rest).required()),
            )
            .command(CommandSpec::new(
                "progress",
                "Answers after a progress note",
            ))
            .on(EventType::Message)
            .capability("messaging")
    }

    fn handle(event: Event) -> Handled {
        if let Some(command) = event.command() {
            if command.name == "progress" {
                messaging::reply("working...")?;
                return Ok(vec![Action::reply("done")]);
            }
            let (Some(user), Some(text)) = (command.text("user"), command.text("text")) else {
                return Ok(vec![]);
            };
            let message = Action::send_direct(Platform::Whatsapp, user, text);
            return Ok(vec![Action::reply(match messaging::act(message) {
                Ok(()) => "sent".to_owned(),
                Err(messaging::SendError::OutsideWindow(why)) => {
                    let template = Outgoing::text("").template("reengage", "en_US", &[text]);
                    messaging::act(Action::send_direct(Platform::Whatsapp, user, template))?;
                    format!("template sent ({why})")
                }
                Err(other) => format!("not sent: {other:?}"),
            })]);
        }
        let Some(attachment) = event.message().and_then(|m| m.attachments.first()) else {
            return Ok(vec![]);
        };
        let answer = match messaging::download(&attachment.id) {
            Ok(file) => format!("got {} ({} bytes)", file.mime_type, file.bytes.len()),
            Err(messaging::MediaError::TooLarge(_)) => "too large".to_owned(),
            Err(messaging::MediaError::WrongType(_)) => "wrong type".to_owned(),
            Err(other) => format!("no media: {other:?}"),
        };
        Ok(vec![Action::reply(answer)])
    }
}

export_plugin!(Notifier);
