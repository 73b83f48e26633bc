//! `!survey`: three questions, one per message. Where the user is in the flow is
//! conversation state kept by the host (capability `state`), so the survey continues after
//! a restart, or on another host; each answer is counted (capability `counters`) without a
//! database write per message.

use serde::{Deserialize, Serialize};
use wasmbot_sdk::{counters, prelude::*, state};

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
            .on(EventType::Message)
            .capability("state")
            .capability("counters")
    }

    fn handle(event: Event) -> Handled {
        let conversation = event.conversation();
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
        state::clear(&conversation)?;
        Ok(vec![Action::reply(format!(
            "Thank you! You said: {}",
            progress.answers.join(" / ")
        ))])
    }
}

export_plugin!(Survey);
