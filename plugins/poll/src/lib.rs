//! `!poll 10m Lunch? | pizza | sushi | salad`: asks the question with one button per answer
//! (2 to 5; on WhatsApp, which shows at most 3 reply buttons, a list past 3). Each user has
//! one vote, and voting again replaces it; at the closing time a timer (capability
//! `schedule`) posts the tally where the poll was asked. A click after that is told the
//! poll is closed. Polls and votes are the plugin's own tables (capability `storage`); a
//! closed poll's rows are deleted with it, so the tables hold only open polls.

use std::time::Duration;

use wasmbot_sdk::{
    Platform,
    prelude::*,
    schedule,
    storage::{self, Statement, Value as Sql},
    time,
};

/// How long a poll may stay open.
const SHORTEST: Duration = Duration::from_secs(5);
const LONGEST: Duration = Duration::from_secs(30 * 24 * 3600);
/// Answers a poll may have: two at least, and one row of Discord buttons at most.
const ANSWERS: std::ops::RangeInclusive<usize> = 2..=5;
/// WhatsApp shows at most this many reply buttons; past it, a poll is a list.
const WHATSAPP_BUTTONS: usize = 3;
/// The longest question, in characters.
const QUESTION_MAX: usize = 300;
/// How a vote's button id starts; then the poll's id, `:` and the answer's index.
const VOTE: &str = "vote:";

const POLLS: &str = "CREATE TABLE polls (
                         id        TEXT PRIMARY KEY,
                         question  TEXT NOT NULL,
                         answers   TEXT NOT NULL,
                         closes_ms BIGINT NOT NULL
                     );
                     CREATE TABLE votes (
                         poll_id TEXT NOT NULL,
                         user_id TEXT NOT NULL,
                         answer  BIGINT NOT NULL,
                         PRIMARY KEY (poll_id, user_id)
                     )";

struct Poll;

impl Plugin for Poll {
    fn manifest() -> Manifest {
        Manifest::new("poll", env!("CARGO_PKG_VERSION"))
            .description("Polls with buttons: one vote each, a tally at the closing time")
            .command(
                CommandSpec::new("poll", "Ask a question with 2 to 5 answers")
                    .option(
                        OptionSpec::new(
                            "duration",
                            "How long it stays open, like 10m, 2h or 1d",
                            OptionKind::Text,
                        )
                        .required(),
                    )
                    .option(
                        OptionSpec::new(
                            "question",
                            "The question, then its answers, split by | : Lunch? | pizza | sushi",
                            OptionKind::Rest,
                        )
                        .required(),
                    )
                    .cooldown(CooldownScope::User, 3, Duration::from_secs(60)),
            )
            .capability("schedule")
            .migration(1, POLLS)
    }

    fn handle(event: Event) -> Handled {
        if let Some(timer) = event.timer() {
            return close(&timer.id, event.platform);
        }
        if let Some(click) = event.interaction() {
            let picked = click.values.first().map(String::as_str);
            return Ok(vote(&event, &click.custom_id, picked)?
                .into_iter()
                .collect());
        }
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        let duration = command.text("duration").unwrap_or_default();
        let question = command.text("question").unwrap_or_default();
        Ok(vec![Action::reply(open(&event, duration, question)?)])
    }
}

/// A poll as asked: its question and answers.
#[derive(Debug, PartialEq)]
struct Asked {
    question: String,
    answers: Vec<String>,
}

/// Reads `Lunch? | pizza | sushi`, refusing what could not be shown on `platform`.
fn parse(text: &str, platform: Platform) -> Result<Asked, PluginError> {
    let invalid = |text: String| Err(PluginError::InvalidInput(text));
    let mut parts = text.split('|').map(str::trim);
    let question = parts.next().unwrap_or_default().to_owned();
    let answers: Vec<String> = parts.map(str::to_owned).collect();
    if question.is_empty() {
        return invalid("Ask something first: `Lunch? | pizza | sushi`.".to_owned());
    }
    if question.chars().count() > QUESTION_MAX {
        return invalid(format!(
            "The question is at most {QUESTION_MAX} characters."
        ));
    }
    if !ANSWERS.contains(&answers.len()) {
        return invalid(format!(
            "A poll has {} to {} answers, split by `|`: `Lunch? | pizza | sushi`.",
            ANSWERS.start(),
            ANSWERS.end()
        ));
    }
    if answers.iter().any(String::is_empty) {
        return invalid("An answer is empty: is there a `|` too many?".to_owned());
    }
    // A button's label: Discord's limit; WhatsApp's reply buttons and list rows are shorter.
    let longest = match platform {
        Platform::Whatsapp if answers.len() <= WHATSAPP_BUTTONS => 20,
        Platform::Whatsapp => 24,
        _ => 80,
    };
    if let Some(long) = answers.iter().find(|a| a.chars().count() > longest) {
        return invalid(format!(
            "`{long}` is too long for a button here: at most {longest} characters."
        ));
    }
    for (index, answer) in answers.iter().enumerate() {
        if answers[..index]
            .iter()
            .any(|other| other.to_lowercase() == answer.to_lowercase())
        {
            return invalid(format!("`{answer}` is there twice."));
        }
    }
    Ok(Asked { question, answers })
}

/// Opens a poll: its closing timer, its row, and the message to vote on.
fn open(event: &Event, duration: &str, text: &str) -> Result<Outgoing, PluginError> {
    let open_for = time::parse_duration(duration)?;
    if !(SHORTEST..=LONGEST).contains(&open_for) {
        return Err(PluginError::InvalidInput(format!(
            "A poll stays open from {} to {}.",
            time::format_duration(SHORTEST),
            time::format_duration(LONGEST)
        )));
    }
    let asked = parse(text, event.platform)?;
    let answers = serde_json::to_string(&asked.answers)
        .map_err(|error| PluginError::Internal(format!("the answers as JSON: {error}")))?;
    // The timer's id names the poll: unique among the timers, so among open polls.
    let id = schedule::after(open_for, "close")?;
    let closes_ms = event
        .received_ms
        .saturating_add(u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX));
    let stored = storage::execute(
        "INSERT INTO polls (id, question, answers, closes_ms) VALUES ($1, $2, $3, $4)",
        &[
            id.as_str().into(),
            asked.question.as_str().into(),
            answers.into(),
            signed(closes_ms).into(),
        ],
    );
    if let Err(error) = stored {
        // Without its row the timer would close nothing.
        let _ = schedule::cancel(&id);
        return Err(error.into());
    }
    Ok(ballot(&id, &asked, event.platform, open_for, closes_ms))
}

/// The message users vote on.
fn ballot(
    id: &str,
    asked: &Asked,
    platform: Platform,
    open_for: Duration,
    closes_ms: u64,
) -> Outgoing {
    let text = format!(
        "📊 {}\nOne vote each; vote again to change it. Closes in {} ({}).",
        bold(platform, &asked.question),
        time::format_duration(open_for),
        moment(platform, closes_ms)
    );
    let mut message = Outgoing::text(text);
    if platform == Platform::Whatsapp && asked.answers.len() > WHATSAPP_BUTTONS {
        let mut menu = Menu::new(format!("{VOTE}{id}"), "Vote");
        for (index, answer) in asked.answers.iter().enumerate() {
            menu = menu.option(index.to_string(), answer);
        }
        return message.menu(menu);
    }
    for (index, answer) in asked.answers.iter().enumerate() {
        message = message.button(format!("{VOTE}{id}:{index}"), answer);
    }
    message
}

/// Records a click on poll button `custom_id` (or a list choice, `picked`); the answer
/// only the voter sees. `None` for a click that is not a vote.
fn vote(
    event: &Event,
    custom_id: &str,
    picked: Option<&str>,
) -> Result<Option<Action>, PluginError> {
    let Some(rest) = custom_id.strip_prefix(VOTE) else {
        return Ok(None);
    };
    let (id, index) = match rest.split_once(':') {
        Some((id, index)) => (id, Some(index)),
        None => (rest, picked),
    };
    let tell = |text: String| Ok(Some(Action::reply(Outgoing::text(text).ephemeral())));
    let Some(index) = index.and_then(|index| index.parse::<usize>().ok()) else {
        return tell("That is not one of the poll's answers.".to_owned());
    };
    let rows = storage::query(
        "SELECT answers, closes_ms FROM polls WHERE id = $1",
        &[id.into()],
    )?;
    let open = rows.rows.first().and_then(|row| {
        let answers: Vec<String> = serde_json::from_str(row.first()?.as_str()?).ok()?;
        let closes_ms = row.get(1)?.as_i64()?;
        (signed(event.received_ms) < closes_ms).then_some(answers)
    });
    let Some(answers) = open else {
        return tell("This poll is closed.".to_owned());
    };
    let Some(answer) = answers.get(index) else {
        return tell("That is not one of the poll's answers.".to_owned());
    };
    let user = event.author.id.as_str();
    let before = storage::query(
        "SELECT answer FROM votes WHERE poll_id = $1 AND user_id = $2",
        &[id.into(), user.into()],
    )?;
    let before = before
        .rows
        .first()
        .and_then(|row| row.first()?.as_i64())
        .and_then(|before| answers.get(usize::try_from(before).ok()?));
    if before == Some(answer) {
        return tell(format!("You already voted for {answer}."));
    }
    // Both backends run this; an upsert would be written differently on each.
    storage::batch(&[
        Statement::new(
            "DELETE FROM votes WHERE poll_id = $1 AND user_id = $2",
            vec![id.into(), user.into()],
        ),
        Statement::new(
            "INSERT INTO votes (poll_id, user_id, answer) VALUES ($1, $2, $3)",
            vec![
                id.into(),
                user.into(),
                i64::try_from(index).unwrap_or(i64::MAX).into(),
            ],
        ),
    ])?;
    match before {
        Some(before) => tell(format!("You changed your vote from {before} to {answer}.")),
        None => tell(format!("You voted for {answer}.")),
    }
}

/// Closes poll `id`: its tally, in the conversation it was asked in, and its rows gone.
fn close(id: &str, platform: Platform) -> Handled {
    let rows = storage::query(
        "SELECT question, answers FROM polls WHERE id = $1",
        &[id.into()],
    )?;
    let Some(row) = rows.rows.first() else {
        // Deleted by an earlier delivery of this timer.
        return Ok(vec![]);
    };
    let question = row.first().and_then(Sql::as_str).unwrap_or_default();
    let answers: Vec<String> = row
        .get(1)
        .and_then(Sql::as_str)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let counted = storage::query(
        "SELECT answer, count(*) FROM votes WHERE poll_id = $1 GROUP BY answer",
        &[id.into()],
    )?;
    let mut votes = vec![0u64; answers.len()];
    for row in &counted.rows {
        let index = row.first().and_then(Sql::as_i64);
        let count = row.get(1).and_then(Sql::as_i64);
        let (Some(index), Some(count)) = (index, count) else {
            continue;
        };
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| votes.get_mut(i)) {
            *slot = u64::try_from(count).unwrap_or(0);
        }
    }
    let text = tally(&bold(platform, question), &answers, &votes);
    storage::batch(&[
        Statement::new("DELETE FROM votes WHERE poll_id = $1", vec![id.into()]),
        Statement::new("DELETE FROM polls WHERE id = $1", vec![id.into()]),
    ])?;
    Ok(vec![Action::reply(text)])
}

/// The closing message: each answer's votes and share, and who won.
fn tally(question: &str, answers: &[String], votes: &[u64]) -> String {
    let total: u64 = votes.iter().sum();
    let mut lines = vec![format!("📊 Closed: {question}")];
    if total == 0 {
        lines.push("Nobody voted.".to_owned());
        return lines.join("\n");
    }
    for (answer, count) in answers.iter().zip(votes) {
        let share = (count * 100 + total / 2) / total;
        let noun = if *count == 1 { "vote" } else { "votes" };
        lines.push(format!("{answer}: {count} {noun} ({share}%)"));
    }
    let most = votes.iter().copied().max().unwrap_or(0);
    let winners: Vec<&str> = answers
        .iter()
        .zip(votes)
        .filter(|(_, count)| **count == most)
        .map(|(answer, _)| answer.as_str())
        .collect();
    lines.push(match winners.as_slice() {
        [winner] => format!("Winner: {winner}"),
        tied => format!("A tie: {}", tied.join(", ")),
    });
    lines.join("\n")
}

/// Bold text in the platform's markup.
fn bold(platform: Platform, text: &str) -> String {
    match platform {
        Platform::Discord => format!("**{text}**"),
        _ => format!("*{text}*"),
    }
}

/// A moment as the platform shows it best: Discord writes its timestamps in each reader's
/// own time zone; elsewhere, UTC.
fn moment(platform: Platform, ms: u64) -> String {
    match platform {
        Platform::Discord => format!("<t:{}:f>", ms / 1000),
        _ => time::format_utc(ms),
    }
}

/// The databases' integers are signed; milliseconds and indexes fit.
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

export_plugin!(Poll);

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    fn refused(text: &str, platform: Platform) -> String {
        match parse(text, platform) {
            Err(PluginError::InvalidInput(text)) => text,
            other => panic!("{text:?}: expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn a_question_and_its_answers_are_split_by_bars() {
        assert_eq!(
            parse(" Lunch? |pizza| sushi |salad ", Platform::Discord),
            Ok(Asked {
                question: "Lunch?".into(),
                answers: answers(&["pizza", "sushi", "salad"]),
            })
        );
    }

    #[test]
    fn polls_that_cannot_be_shown_or_answered_are_refused() {
        let cases = [
            ("| pizza | sushi", "Ask something first"),
            ("Lunch?", "2 to 5 answers"),
            ("Lunch? | pizza", "2 to 5 answers"),
            ("Lunch? | a | b | c | d | e | f", "2 to 5 answers"),
            ("Lunch? | pizza || sushi", "is empty"),
            ("Lunch? | pizza | Pizza", "`Pizza` is there twice"),
        ];
        for (text, why) in cases {
            let refusal = refused(text, Platform::Discord);
            assert!(refusal.contains(why), "{text:?}: {refusal}");
        }
        let long = "x".repeat(QUESTION_MAX + 1);
        assert!(refused(&format!("{long} | a | b"), Platform::Discord).contains("at most 300"));
        let label = "a".repeat(81);
        assert!(refused(&format!("Q | {label} | b"), Platform::Discord).contains("at most 80"));
    }

    #[test]
    fn whatsapp_labels_fit_its_buttons_and_list_rows() {
        let twenty_one = "a".repeat(21);
        let buttons = format!("Q | {twenty_one} | b");
        assert!(refused(&buttons, Platform::Whatsapp).contains("at most 20"));
        assert!(parse(&buttons, Platform::Discord).is_ok());
        let list = format!("Q | {twenty_one} | b | c | d");
        assert!(
            parse(&list, Platform::Whatsapp).is_ok(),
            "a list row takes 24"
        );
    }

    #[test]
    fn whatsapp_gets_a_list_past_three_answers_and_buttons_otherwise() {
        let asked = |n: usize| Asked {
            question: "Q".into(),
            answers: (0..n).map(|i| format!("a{i}")).collect(),
        };
        let minute = Duration::from_secs(60);
        let four = ballot("p1", &asked(4), Platform::Whatsapp, minute, 0);
        assert!(four.buttons.is_empty());
        let menu = four.menu.expect("a list");
        assert_eq!(menu.id, "vote:p1");
        let values: Vec<&str> = menu.options.iter().map(|o| o.value.as_str()).collect();
        assert_eq!(values, ["0", "1", "2", "3"]);

        let three = ballot("p1", &asked(3), Platform::Whatsapp, minute, 0);
        assert!(three.menu.is_none());
        assert_eq!(three.buttons.len(), 3);
        let five = ballot("p1", &asked(5), Platform::Discord, minute, 0);
        let ids: Vec<&str> = five.buttons.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "vote:p1:0",
                "vote:p1:1",
                "vote:p1:2",
                "vote:p1:3",
                "vote:p1:4"
            ]
        );
        assert!(five.text.starts_with("📊 **Q**\n"), "{}", five.text);
    }

    #[test]
    fn the_tally_gives_shares_and_the_winner_or_a_tie() {
        let options = answers(&["pizza", "sushi", "salad"]);
        assert_eq!(
            tally("*Lunch?*", &options, &[3, 2, 1]),
            "📊 Closed: *Lunch?*\npizza: 3 votes (50%)\nsushi: 2 votes (33%)\n\
             salad: 1 vote (17%)\nWinner: pizza"
        );
        assert!(tally("Q", &options, &[2, 2, 0]).ends_with("A tie: pizza, sushi"));
        assert_eq!(
            tally("Q", &options, &[0, 0, 0]),
            "📊 Closed: Q\nNobody voted."
        );
    }
}
