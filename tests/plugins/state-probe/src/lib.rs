//! `!remember TEXT` keeps TEXT as the conversation's state for an hour (`!glimpse TEXT`: for
//! no time at all), `!recall` answers `ok:TEXT` or `ok:none`, `!forget` clears it, `!hoard`
//! tries a state over the host's limit, `!say TEXT` adds TEXT to the history and answers the
//! history as `ok:A|B|C` (`!forget` clears it too).

use wasmbot_sdk::{prelude::*, state};

struct Probe;

fn text_command(name: &str) -> CommandSpec {
    CommandSpec::new(name, "Keep some text").option(OptionSpec::new(
        "text",
        "What",
        OptionKind::Rest,
    ))
}

impl Plugin for Probe {
    fn manifest() -> Manifest {
        Manifest::new("state-probe", "0.1.0")
            .command(text_command("remember"))
            .command(text_command("glimpse"))
            .command(CommandSpec::new("recall", "What is kept"))
            .command(CommandSpec::new("forget", "Forget it"))
            .command(CommandSpec::new("hoard", "Keep too much"))
            .command(text_command("say"))
            .capability("state")
    }

    fn handle(event: Event) -> Handled {
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        let conversation = event.conversation();
        let text = command.text("text").unwrap_or_default().to_owned();
        let answer = match command.name.as_str() {
            "remember" => state::set(&conversation, &text, 3600).map(|()| "ok".to_owned()),
            "glimpse" => state::set(&conversation, &text, 0).map(|()| "ok".to_owned()),
            "recall" => state::get::<String>(&conversation)
                .map(|kept| format!("ok:{}", kept.as_deref().unwrap_or("none"))),
            "forget" => state::clear(&conversation)
                .and_then(|()| state::clear_history(&conversation))
                .map(|()| "ok".to_owned()),
            "say" => state::remember(&conversation, "user", &text)
                .and_then(|()| state::history(&conversation))
                .map(|turns| {
                    let texts: Vec<String> = turns.into_iter().map(|turn| turn.text).collect();
                    format!("ok:{}", texts.join("|"))
                }),
            _ => state::set(&conversation, &"x".repeat(20_000), 3600).map(|()| "ok".to_owned()),
        };
        Ok(vec![Action::reply(match answer {
            Ok(text) => text,
            Err(error) => format!("err:{error:?}"),
        })])
    }
}

export_plugin!(Probe);
