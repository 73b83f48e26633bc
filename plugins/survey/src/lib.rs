//! `!survey`: three questions, one per message. Where the user is in the flow is
//! conversation state kept by the host (capability `state`), so the survey continues after
//! a restart, or on another host; each answer is counted (capability `counters`) without a
//! database write per message; a finished survey is a row in the plugin's own table
//! (capability `storage`), which `!survey-results` sums up.

use serde::{Deserialize, Serialize};
use wasmbot_sdk::{counters, prelude::*, state, storage};

const QUESTIONS: [&str; 3] = [
    "What is your name?",
    "Which city do you live in?",
    "How did you hear about us?",
];

/// A survey in progress lives this long without an answer.
const PATIENCE_S: u32 = 24 * 3600;

/// Where a user is in the survey.
#[derive(Serialize, Deserialize)]
struct Progress {
    answers: Vec<String>,
}

struct Survey;

impl Plugin for Survey {
    fn manifest() -> Manifest {
        Manifest::new("survey", env!("CARGO_PKG_VERSION"))
            .description("A three-question survey across messages")
            .command(CommandSpec::new("survey", "Answer three questions"))
            .command(CommandSpec::new(
                "survey-results",
                "What the answers say so far",
            ))
            .on(EventType::Message)
            .capability("state")
            .capability("counters")
            .migration(
                1,
                "CREATE TABLE responses (
                     user_id TEXT NOT NULL,
                     name    TEXT NOT NULL,
                     city    TEXT NOT NULL,
                     source  TEXT NOT NULL
                 )",
            )
    }

    fn handle(event: Event) -> Handled {
        let conversation = event.conversation();
        if event.command().is_some_and(|c| c.name == "survey-results") {
            return Ok(vec![Action::reply(results()?)]);
        }
        if event.command().is_some() {
            state::set(&conversation, &Progress { answers: vec![] }, PATIENCE_S)?;
            return Ok(vec![Action::reply(format!("1/3 {}", QUESTIONS[0]))]);
        }
        // Not in a survey: the message is someone else's business.
        let Some(mut progress) = state::get::<Progress>(&conversation)? else {
            return Ok(vec![]);
        };
        progress.answers.push(event.text().trim().to_owned());
        counters::add("answers", &event.author.id, 1, "survey")?;
        let next = progress.answers.len();
        if let Some(question) = QUESTIONS.get(next) {
            state::set(&conversation, &progress, PATIENCE_S)?;
            return Ok(vec![Action::reply(format!("{}/3 {question}", next + 1))]);
        }
        let mut params = vec![event.author.id.as_str().into()];
        params.extend(progress.answers.iter().map(|a| a.as_str().into()));
        storage::execute(
            "INSERT INTO responses (user_id, name, city, source) VALUES ($1, $2, $3, $4)",
            &params,
        )?;
        state::clear(&conversation)?;
        Ok(vec![Action::reply(format!(
            "Thank you! You said: {}",
            progress.answers.join(" / ")
        ))])
    }
}

/// How many finished the survey, and their most common cities.
fn results() -> Result<String, PluginError> {
    let total = storage::query("SELECT count(*) FROM responses", &[])?;
    let total = total
        .rows
        .first()
        .and_then(|row| row[0].as_i64())
        .unwrap_or(0);
    let cities = storage::query(
        "SELECT city, count(*) AS n FROM responses GROUP BY city ORDER BY n DESC, city LIMIT 3",
        &[],
    )?;
    let cities: Vec<String> = cities
        .rows
        .iter()
        .filter_map(|row| Some(format!("{} ({})", row[0].as_str()?, row[1].as_i64()?)))
        .collect();
    Ok(match total {
        0 => "Nobody has finished the survey yet.".to_owned(),
        1 => format!("1 response so far. Cities: {}", cities.join(", ")),
        n => format!("{n} responses so far. Cities: {}", cities.join(", ")),
    })
}

export_plugin!(Survey);
