//! Counts the characters each author writes, per channel as the thread; `!total` answers
//! the stored total and its thread as `ok:TOTAL:THREAD` (or `ok:none`), `!bad` tries an
//! invalid counter name and answers the error.

use wasmbot_sdk::{counters, prelude::*};

struct Probe;

impl Plugin for Probe {
    fn manifest() -> Manifest {
        Manifest::new("counter-probe", "0.1.0")
            .on(EventType::Message)
            .command(CommandSpec::new("total", "Your stored total"))
            .command(CommandSpec::new("bad", "An invalid counter"))
            .capability("counters")
    }

    fn handle(event: Event) -> Handled {
        let text = match event.command().map(|command| command.name.as_str()) {
            Some("total") => match counters::stored("chars", &event.author.id)? {
                Some((total, thread)) => format!("ok:{total}:{thread}"),
                None => "ok:none".to_owned(),
            },
            Some(_) => match counters::add("", &event.author.id, 1, "t") {
                Ok(()) => "ok".to_owned(),
                Err(error) => format!("err:{error:?}"),
            },
            None => {
                let amount = event.text().chars().count() as i64;
                counters::add("chars", &event.author.id, amount, &event.channel_id)?;
                return Ok(vec![]);
            }
        };
        Ok(vec![Action::reply(text)])
    }
}

export_plugin!(Probe);
