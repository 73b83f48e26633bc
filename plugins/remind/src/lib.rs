//! `!remind 10m stretch`: reminds the user of something later, in the conversation they
//! asked in, mentioning them (a ping on Discord). `!reminders` lists theirs here, `!remind
//! cancel ID` cancels one of them. The reminders are the host's timers (capability
//! `schedule`): they survive restarts, and one the bot was down for comes when it is back,
//! saying how late.
//!
//! WhatsApp lets a bot write to a user only within 24 hours of their last message (outside
//! it, only templates), so there a reminder is at most 23 hours ahead.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmbot_sdk::{
    CommandSource, Platform,
    prelude::*,
    schedule::{self, TimerInfo},
    time,
};

/// The furthest ahead a reminder may be.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);
/// On WhatsApp: inside the 24-hour window, with an hour to spare for a late delivery.
const LONGEST_ON_WHATSAPP: Duration = Duration::from_secs(23 * 3600);
/// The longest text kept, in characters: timer payloads are small.
const TEXT_MAX: usize = 1000;
/// A reminder later than this says so (the bot was down when it was due).
const LATE_NOTE: Duration = Duration::from_secs(60);
/// Reminders `!reminders` shows, and the characters of each one's text it shows.
const LISTED: usize = 20;
const LISTED_TEXT: usize = 80;

/// A timer's payload.
#[derive(Serialize, Deserialize)]
struct Reminder {
    text: String,
}

struct Remind;

impl Plugin for Remind {
    fn manifest() -> Manifest {
        Manifest::new("remind", env!("CARGO_PKG_VERSION"))
            .description("Reminds you of something later, here")
            .command(
                CommandSpec::new("remind", "Remind me of something later")
                    .option(
                        OptionSpec::new(
                            "when",
                            "How long from now, like 10m, 2h or 1h30m; or `cancel`",
                            OptionKind::Text,
                        )
                        .required(),
                    )
                    .option(
                        OptionSpec::new(
                            "text",
                            "What to remind you of (after `cancel`: the reminder's id)",
                            OptionKind::Rest,
                        )
                        .required(),
                    )
                    .cooldown(CooldownScope::User, 5, Duration::from_secs(60))
                    .localized("de", None, "Erinnere mich später an etwas")
                    .localized("es-ES", None, "Recuérdame algo más tarde"),
            )
            .command(
                CommandSpec::new("reminders", "Your reminders here")
                    .localized("de", Some("erinnerungen"), "Deine Erinnerungen hier")
                    .localized("es-ES", Some("recordatorios"), "Tus recordatorios aquí"),
            )
            .capability("schedule")
            .capability("log")
    }

    fn handle(event: Event) -> Handled {
        if let Some(timer) = event.timer() {
            return Ok(vec![Action::reply(due(&event, timer))]);
        }
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        let prefix = prefix(&command.source);
        if command.name == "reminders" {
            return Ok(vec![Action::reply(list(&event, &prefix)?)]);
        }
        let when = command.text("when").unwrap_or_default().trim();
        let text = command.text("text").unwrap_or_default().trim();
        let answer = if when.eq_ignore_ascii_case("cancel") {
            cancel(&event, text, &prefix)?
        } else {
            set(&event, when, text, &prefix)?
        };
        Ok(vec![Action::reply(answer)])
    }
}

/// How the user typed the command, for the hints that name other commands.
fn prefix(source: &CommandSource) -> String {
    match source {
        CommandSource::Prefix(prefix) => prefix.clone(),
        CommandSource::Slash => "/".to_owned(),
        CommandSource::Mention => String::new(),
    }
}

/// Sets a reminder of `text`, `when` from now.
fn set(event: &Event, when: &str, text: &str, prefix: &str) -> Result<String, PluginError> {
    let delay = time::parse_duration(when)?;
    let longest = match event.platform {
        Platform::Whatsapp => LONGEST_ON_WHATSAPP,
        _ => LONGEST,
    };
    if delay.is_zero() {
        return Err(PluginError::InvalidInput(format!(
            "A reminder needs some time ahead: `{prefix}remind 10m stretch`."
        )));
    }
    if delay > longest {
        return Err(PluginError::InvalidInput(format!(
            "{} is too far ahead: a reminder here is at most {} ahead.",
            time::format_duration(delay),
            time::format_duration(longest)
        )));
    }
    if text.is_empty() {
        return Err(PluginError::InvalidInput(format!(
            "What should I remind you of? `{prefix}remind {when} stretch`."
        )));
    }
    let length = text.chars().count();
    if length > TEXT_MAX {
        return Err(PluginError::InvalidInput(format!(
            "That is {length} characters; a reminder holds at most {TEXT_MAX}."
        )));
    }
    let payload = serde_json::to_string(&Reminder {
        text: text.to_owned(),
    })
    .map_err(|error| PluginError::Internal(format!("the reminder as JSON: {error}")))?;
    let id = schedule::after(delay, &payload)?;
    let due_ms = event.received_ms.saturating_add(millis(delay));
    log::debug(&format!("reminder {id} set for {due_ms}"));
    Ok(format!(
        "⏰ In {} ({}) I'll remind you: {text}\n\
         Reminder `{id}`: `{prefix}remind cancel {id}` cancels it.",
        time::format_duration(delay),
        moment(event.platform, due_ms),
    ))
}

/// The user's reminders in this guild (or chat), soonest first.
fn list(event: &Event, prefix: &str) -> Result<String, PluginError> {
    let mine: Vec<TimerInfo> = schedule::list()?
        .into_iter()
        .filter(|timer| timer.user_id == event.author.id)
        .collect();
    if mine.is_empty() {
        return Ok(format!(
            "You have no reminders here; `{prefix}remind 10m stretch` sets one."
        ));
    }
    let mut lines = vec![format!("Your reminders here ({}):", mine.len())];
    for timer in mine.iter().take(LISTED) {
        let text = text_of(&timer.payload);
        let shown: String = text.chars().take(LISTED_TEXT).collect();
        let cut = if shown.len() < text.len() { "…" } else { "" };
        lines.push(format!(
            "`{}` {}: {shown}{cut}",
            timer.id,
            moment(event.platform, timer.next_ms)
        ));
    }
    if mine.len() > LISTED {
        lines.push(format!("…and {} more.", mine.len() - LISTED));
    }
    lines.push(format!("`{prefix}remind cancel ID` cancels one."));
    Ok(lines.join("\n"))
}

/// Cancels reminder `id` if it is the user's and set here.
fn cancel(event: &Event, id: &str, prefix: &str) -> Result<String, PluginError> {
    if id.is_empty() {
        return Err(PluginError::InvalidInput(format!(
            "Which one? `{prefix}remind cancel ID`; `{prefix}reminders` lists their ids."
        )));
    }
    // `schedule::cancel` takes any of the plugin's ids: whose it is is checked here.
    let timers = schedule::list()?;
    let Some(timer) = timers.iter().find(|timer| timer.id == id) else {
        return Err(PluginError::InvalidInput(format!(
            "There is no reminder `{id}` here; `{prefix}reminders` lists yours."
        )));
    };
    if timer.user_id != event.author.id {
        return Err(PluginError::InvalidInput(format!(
            "Reminder `{id}` is someone else's: only they can cancel it."
        )));
    }
    Ok(if schedule::cancel(id)? {
        format!("Reminder `{id}` cancelled.")
    } else {
        format!("Reminder `{id}` has just gone off.")
    })
}

/// The reminder itself, in the conversation it was set in: the event's author set it.
fn due(event: &Event, timer: &Timer) -> Outgoing {
    let text = text_of(&timer.payload);
    let late = Duration::from_millis(timer.late_ms);
    let late = if late > LATE_NOTE {
        format!(
            "\n(This was due {} ago: I was offline then.)",
            time::format_duration(late)
        )
    } else {
        String::new()
    };
    let user = &event.author.id;
    let message = match event.platform {
        Platform::Discord => format!("<@{user}> ⏰ {text}{late}"),
        _ => format!("⏰ Reminder: {text}{late}"),
    };
    // The text is the user's own: it may ping its author, and nobody else.
    Outgoing::text(message).mention_user(user)
}

/// A reminder's text; a payload that is not one (written by another version) as it is.
fn text_of(payload: &str) -> String {
    serde_json::from_str::<Reminder>(payload).map_or_else(|_| payload.to_owned(), |r| r.text)
}

/// A moment as the platform shows it best: Discord writes its timestamps in each reader's
/// own time zone; elsewhere, UTC.
fn moment(platform: Platform, ms: u64) -> String {
    match platform {
        Platform::Discord => format!("<t:{}:f>", ms / 1000),
        _ => time::format_utc(ms),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

export_plugin!(Remind);

#[cfg(test)]
mod tests {
    use wasmbot_sdk::{EventKind, User};

    use super::*;

    fn event(platform: Platform) -> Event {
        Event {
            id: "e".into(),
            platform,
            guild_id: None,
            channel_id: "chat".into(),
            author: User {
                id: "42".into(),
                name: "Ada".into(),
                is_bot: false,
                roles: Vec::new(),
                locale: None,
            },
            timestamp_ms: 0,
            received_ms: 0,
            guild_locale: None,
            kind: EventKind::MemberJoined,
        }
    }

    fn timer(payload: &str, late_ms: u64) -> Timer {
        Timer {
            id: "abc".into(),
            payload: payload.into(),
            due_ms: 0,
            late_ms,
            repeats: false,
        }
    }

    fn refused(result: Result<String, PluginError>) -> String {
        match result {
            Err(PluginError::InvalidInput(text)) => text,
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn bad_delays_and_texts_are_refused_before_any_timer_is_set() {
        let discord = event(Platform::Discord);
        for (when, why) in [
            ("0m", "some time ahead"),
            ("soon", "not a duration"),
            ("10", "no unit"),
            ("366d", "at most 365d"),
        ] {
            let text = refused(set(&discord, when, "stretch", "!"));
            assert!(text.contains(why), "{when:?}: {text}");
        }
        let text = refused(set(&discord, "10m", "", "!"));
        assert!(text.contains("`!remind 10m stretch`"), "{text}");
        let text = refused(set(&discord, "10m", &"a".repeat(TEXT_MAX + 1), "!"));
        assert!(text.contains("at most 1000"), "{text}");

        let whatsapp = event(Platform::Whatsapp);
        let text = refused(set(&whatsapp, "1d", "stretch", "!"));
        assert!(text.contains("at most 23h"), "{text}");
    }

    #[test]
    fn a_due_reminder_pings_its_author_on_discord_only() {
        let payload = r#"{"text":"stretch @everyone"}"#;
        let discord = due(&event(Platform::Discord), &timer(payload, 0));
        assert_eq!(discord.text, "<@42> ⏰ stretch @everyone");
        assert_eq!(discord.mentions.users, ["42"]);
        assert!(!discord.mentions.everyone);

        let whatsapp = due(&event(Platform::Whatsapp), &timer(payload, 0));
        assert_eq!(whatsapp.text, "⏰ Reminder: stretch @everyone");
    }

    #[test]
    fn a_late_reminder_says_how_late() {
        let on_time = due(
            &event(Platform::Console),
            &timer(r#"{"text":"tea"}"#, 60_000),
        );
        assert_eq!(on_time.text, "⏰ Reminder: tea");
        let late = due(
            &event(Platform::Console),
            &timer(r#"{"text":"tea"}"#, 5_400_000),
        );
        assert_eq!(
            late.text,
            "⏰ Reminder: tea\n(This was due 1h 30m ago: I was offline then.)"
        );
        let unknown = due(&event(Platform::Console), &timer("tea", 0));
        assert_eq!(unknown.text, "⏰ Reminder: tea", "another payload shape");
    }
}
