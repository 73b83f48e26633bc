//! Sets timers as told and answers them. `!after MS TEXT`, `!at MS TEXT` (an absolute time),
//! `!every MS TEXT`, `!cron EXPR` (payload `cron`), `!cancel ID` and `!timers` answer `ok:ID`,
//! `ok:true|false` or `ok:ID@NEXT,...` (soonest first), or `err:KIND:TEXT`. A due timer is
//! answered `fired:PAYLOAD late=MS repeats=BOOL from=USER` in the conversation it was set in.

use wasmbot_sdk::{
    bindings::wasmbot::plugin::{
        schedule::{self, Repeat, ScheduleError},
        types::EventKind,
    },
    prelude::*,
};

struct Probe;

fn with_text(name: &str) -> CommandSpec {
    CommandSpec::new(name, "Set a timer")
        .option(OptionSpec::new("ms", "Milliseconds", OptionKind::Integer).required())
        .option(OptionSpec::new("text", "Payload", OptionKind::Rest))
}

impl Plugin for Probe {
    fn manifest() -> Manifest {
        Manifest::new("schedule-probe", "0.1.0")
            .command(with_text("after"))
            .command(with_text("at"))
            .command(with_text("every"))
            .command(
                CommandSpec::new("cron", "Every time the expression says").option(OptionSpec::new(
                    "expr",
                    "Cron expression",
                    OptionKind::Rest,
                )),
            )
            .command(
                CommandSpec::new("cancel", "Cancel one")
                    .option(OptionSpec::new("id", "Timer", OptionKind::Text).required()),
            )
            .command(CommandSpec::new("timers", "List them"))
            .capability("schedule")
    }

    fn handle(event: Event) -> Handled {
        if let EventKind::Timer(timer) = &event.kind {
            return Ok(vec![Action::reply(format!(
                "fired:{} late={} repeats={} from={}",
                timer.payload, timer.late_ms, timer.repeats, event.author.id
            ))]);
        }
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        let ms = command.integer("ms").unwrap_or_default().max(0) as u64;
        let text = command.text("text").unwrap_or_default();
        let answer = match command.name.as_str() {
            "after" => schedule::after(ms, text),
            "at" => schedule::at(ms, text),
            "every" => schedule::every(&Repeat::IntervalMs(ms), text),
            "cron" => schedule::every(
                &Repeat::Cron(command.text("expr").unwrap_or_default().to_owned()),
                "cron",
            ),
            "cancel" => {
                schedule::cancel(command.text("id").unwrap_or_default()).map(|c| c.to_string())
            }
            _ => schedule::list().map(|timers| {
                let listed: Vec<String> = timers
                    .iter()
                    .map(|timer| format!("{}@{}", timer.id, timer.next_ms))
                    .collect();
                listed.join(",")
            }),
        };
        Ok(vec![Action::reply(match answer {
            Ok(text) => format!("ok:{text}"),
            Err(ScheduleError::Denied(text)) => format!("err:denied:{text}"),
            Err(ScheduleError::Invalid(text)) => format!("err:invalid:{text}"),
            Err(ScheduleError::TooMany(text)) => format!("err:too-many:{text}"),
            Err(ScheduleError::Unavailable(text)) => format!("err:unavailable:{text}"),
        })])
    }
}

export_plugin!(Probe);
