//! `assistant`: a conversation with an AI model (any OpenAI-compatible chat endpoint),
//! written as a flow (`wasmbot_sdk::flow`).
//!
//! - "assistant" or "ai", in Spanish "asistente" or "IA" (where people talk to the bot
//!   alone: WhatsApp, the console; on Discord `!assistant [question]`) opens a conversation
//!   thread. Greetings ("hi", "hola") are left to the `menu`, so one word opens one of
//!   them. From then on every message of the user in that chat is a question, answered
//!   with the system prompt and the conversation's last messages (`history_turns`, 5 by
//!   default) as context.
//! - "new" or "reset" starts a new thread: the history is forgotten and the token total
//!   starts again. "usage" tells how many tokens this thread used. "stop" (or "cancel",
//!   "bye") leaves; 30 minutes without a word close the conversation too. Messages that
//!   look like another plugin's command (`!profile`, `/help`) are left alone.
//! - Tokens: after each answer the model's `usage.total_tokens` is added to the write-behind
//!   counter `tokens` of the user, in the thread (a new thread restarts the total), so
//!   counting costs no database write per message; the total is written once the counter
//!   has been quiet for a while (`counters.quiet_ms`) and at shutdown.
//! - Each user may make 5 AI calls a minute (`rate-limit`, one limit across every host of
//!   the bot when it has Redis); over it they are told how long to wait and no call is
//!   made. An endpoint that cannot be reached gets a clear "unavailable" answer and the
//!   conversation goes on.
//!
//! Where the user is (the thread, the tokens counted so far, the last answer) is the flow's
//! position in the conversation state, so a conversation survives a restart of the host.
//!
//! The operator grants it `http` by name and gives it its endpoint:
//!
//! ```toml
//! [plugins.assistant]
//! grants = ["log", "state", "counters", "rate-limit", "messaging", "http"]
//! http_allow = ["api.openai.com"]
//! env = { AI_URL = "https://api.openai.com/v1", AI_KEY = "$OPENAI_API_KEY", AI_MODEL = "gpt-4o-mini" }
//! ```
//!
//! Optional: `AI_SYSTEM_PROMPT` (the assistant's role), `AI_RATE` (`"calls/seconds"`,
//! `"5/60"` by default).

use std::time::Duration;

use serde_json::{Value, json};
use wasmbot_sdk::{
    Platform, counters,
    flow::{Answers, Ask, Flow, Flows, Trigger},
    http, messaging,
    prelude::*,
    rate_limit, state,
};

/// The role when `AI_SYSTEM_PROMPT` sets none.
const SYSTEM_PROMPT: &str = "You are a helpful assistant talking with one person in a chat \
     app. Answer briefly and plainly; the last messages of the conversation come with each \
     question.";
/// AI calls one user may make, and in how many seconds, unless `AI_RATE` says otherwise.
const RATE: (u32, u64) = (5, 60);
/// The write-behind counter of tokens, per user, by thread.
const COUNTER: &str = "tokens";
/// A conversation left this long without a word is closed.
const IDLE_S: u32 = 30 * 60;
/// The longest answer asked of the model.
const MAX_TOKENS: u32 = 800;
/// An answer longer than this goes as several messages (WhatsApp takes 4096 characters).
const CHUNK_BYTES: usize = 3_000;
/// What is kept of one message in the history (the host's limit is `state.max_bytes`).
const KEEP_BYTES: usize = 4_000;

const START: [&str; 4] = ["assistant", "ai", "asistente", "ia"];
const NEW: [&str; 4] = ["new", "reset", "new thread", "start over"];
const USAGE: [&str; 2] = ["usage", "tokens"];

const GREETING: &str = "Hi! I am the assistant: ask me anything, I remember the last few \
     messages of our conversation. Say *new* to start over, *usage* to see the tokens this \
     conversation used, *stop* to leave.";
const NEW_THREAD: &str = "New conversation: I have forgotten the previous one. Ask away.";
const UNAVAILABLE: &str = "The assistant is unavailable right now; please ask again in a moment.";

struct Assistant;

impl Plugin for Assistant {
    fn manifest() -> Manifest {
        Manifest::new("assistant", env!("CARGO_PKG_VERSION"))
            .description("An AI assistant conversation with history and token accounting")
            .command(
                CommandSpec::new("assistant", "Talk with the AI assistant").option(
                    OptionSpec::new("question", "A first question", OptionKind::Rest),
                ),
            )
            .on(EventType::Message)
            .capability("log")
            .capability("state")
            .capability("counters")
            .capability("rate-limit")
            .capability("messaging")
            .capability("http")
    }

    fn handle(event: Event) -> Handled {
        // Another plugin's command, seen because this plugin watches messages.
        if let Some(message) = event.message()
            && message.text.trim_start().starts_with(['!', '/'])
        {
            return Ok(vec![]);
        }
        flows(&event).handle(&event)
    }
}

fn flows(event: &Event) -> Flows {
    let mut start = Flow::new("assistant").trigger(Trigger::command("assistant"));
    // In a Discord channel a keyword would catch everyone's "ai"; elsewhere people talk
    // to the bot alone.
    if event.platform != Platform::Discord || event.guild_id.is_none() {
        start = start.trigger(Trigger::keywords(START));
    }
    Flows::new()
        .flow(start.run(open).goto("talk"))
        .flow(
            Flow::new("talk")
                // The prompt of the question is the last answer: each message is answered
                // once, and the flow waits for the next.
                .ask(
                    "question",
                    Ask::text_with(|answers| {
                        let said = answers.get("said").filter(|s| !s.is_empty());
                        Outgoing::text(said.unwrap_or("Ask me anything."))
                    })
                    .invalid("I can only read text: please type your question.")
                    .give_up("Leaving the assistant; say *assistant* to come back."),
                )
                .run(turn)
                .goto("talk"),
        )
        .idle_timeout(
            IDLE_S,
            "Our conversation was idle for a while, so I closed it. Say *assistant* to start a new one.",
        )
        .cancel(
            ["stop", "cancel", "bye", "exit"],
            "Assistant closed. Say *assistant* whenever you need me again.",
        )
}

/// A conversation opens: a new thread, and the command's question answered at once.
fn open(event: &Event, answers: &mut Answers) -> Result<Vec<Outgoing>, PluginError> {
    new_thread(event, answers)?;
    let question = event
        .command()
        .and_then(|command| command.text("question"))
        .map(str::trim)
        .filter(|question| !question.is_empty());
    match question {
        Some(question) => ask(event, answers, question),
        None => {
            answers.set("said", GREETING);
            Ok(vec![])
        }
    }
}

/// One message inside the conversation.
fn turn(event: &Event, answers: &mut Answers) -> Result<Vec<Outgoing>, PluginError> {
    let question = answers.remove("question").unwrap_or_default();
    let word = normalize(&question);
    if NEW.contains(&word.as_str()) || START.contains(&word.as_str()) {
        new_thread(event, answers)?;
        answers.set("said", NEW_THREAD);
        return Ok(vec![]);
    }
    if USAGE.contains(&word.as_str()) {
        answers.set("said", usage(event, answers)?);
        return Ok(vec![]);
    }
    ask(event, answers, &question)
}

/// A new thread: its id (from the event, unique), no tokens, no history.
fn new_thread(event: &Event, answers: &mut Answers) -> Result<(), PluginError> {
    let thread = format!("{}-{:016x}", event.timestamp_ms, fnv1a(&event.id));
    answers.set("thread", thread);
    answers.set("tokens", "0");
    state::clear_history(&event.conversation())?;
    Ok(())
}

/// What this thread used: counted here, and how much of it the stored total has.
fn usage(event: &Event, answers: &Answers) -> Result<String, PluginError> {
    let counted = tokens(answers);
    let written = match counters::stored(COUNTER, &event.author.id)? {
        Some((total, thread)) if thread == answers["thread"] => total,
        _ => 0,
    };
    Ok(if written >= counted {
        format!("This conversation used {counted} tokens, all written to the usage totals.")
    } else {
        format!(
            "This conversation used {counted} tokens; {written} of them are written to the \
             usage totals so far, the rest are written once the counters have been quiet for \
             a while."
        )
    })
}

fn tokens(answers: &Answers) -> i64 {
    answers["tokens"].parse().unwrap_or(0)
}

/// Asks the model, within the user's limit; the answer (its last part, when it is long) is
/// what the question step says next, the earlier parts are returned.
fn ask(event: &Event, answers: &mut Answers, question: &str) -> Result<Vec<Outgoing>, PluginError> {
    let user = &event.author.id;
    let (limit, window) = rate();
    if let Some(wait) = rate_limit::check(&format!("ai:{user}"), limit, window)? {
        answers.set(
            "said",
            format!(
                "You have asked {limit} questions in {} s, which is the limit. Please wait {} s \
                 and ask again.",
                window.as_secs(),
                wait.as_secs().max(1)
            ),
        );
        return Ok(vec![]);
    }
    if let Err(error) = messaging::act(Action::Typing) {
        log::debug(&format!("no typing indicator: {error:?}"));
    }
    let conversation = event.conversation();
    let mut messages = vec![json!({ "role": "system", "content": system_prompt() })];
    for turn in state::history(&conversation)? {
        messages.push(json!({ "role": turn.role, "content": turn.text }));
    }
    messages.push(json!({ "role": "user", "content": question }));
    let (answer, used) = match complete(messages) {
        Ok(answered) => answered,
        Err(why) => {
            log::warn(&format!("the model could not be asked: {why}"));
            answers.set("said", UNAVAILABLE);
            return Ok(vec![]);
        }
    };
    // The answer is given whatever happens to the bookkeeping.
    let remembered = state::remember(&conversation, "user", clip(question, KEEP_BYTES))
        .and_then(|()| state::remember(&conversation, "assistant", clip(&answer, KEEP_BYTES)));
    if let Err(error) = remembered {
        log::warn(&format!("the history was not kept: {error:?}"));
    }
    if used > 0 {
        match counters::add(COUNTER, user, used, &answers["thread"]) {
            Ok(()) => answers.set("tokens", (tokens(answers) + used).to_string()),
            Err(error) => log::warn(&format!("{used} tokens not counted: {error:?}")),
        }
    }
    let mut parts = split(&answer, CHUNK_BYTES);
    let last = parts.pop().unwrap_or_default();
    answers.set("said", last);
    Ok(parts.into_iter().map(Outgoing::text).collect())
}

/// One chat completion: the answer and the tokens it used (0 when the endpoint does not
/// say).
fn complete(messages: Vec<Value>) -> Result<(String, i64), String> {
    let url = std::env::var("AI_URL").map_err(|_| "AI_URL is not configured".to_owned())?;
    let key = std::env::var("AI_KEY").unwrap_or_default();
    let model = std::env::var("AI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
    let endpoint = format!("{}/chat/completions", url.trim_end_matches('/'));
    let authorization = format!("Bearer {key}");
    let request = json!({ "model": model, "messages": messages, "max_tokens": MAX_TOKENS });
    let response = http::post_json(&endpoint, &[("authorization", &authorization)], &request)
        .map_err(|error| error.to_string())?;
    let body: Value = response.json().map_err(|error| error.to_string())?;
    let answer = body["choices"][0]["message"]["content"]
        .as_str()
        .map(str::trim)
        .filter(|answer| !answer.is_empty())
        .ok_or("the model gave no answer")?;
    let usage = &body["usage"];
    let used = usage["total_tokens"].as_i64().unwrap_or_else(|| {
        usage["prompt_tokens"].as_i64().unwrap_or(0)
            + usage["completion_tokens"].as_i64().unwrap_or(0)
    });
    Ok((answer.to_owned(), used.max(0)))
}

fn system_prompt() -> String {
    std::env::var("AI_SYSTEM_PROMPT")
        .ok()
        .filter(|prompt| !prompt.trim().is_empty())
        .unwrap_or_else(|| SYSTEM_PROMPT.to_owned())
}

/// `AI_RATE` as `calls/seconds`, else 5 a minute.
fn rate() -> (u32, Duration) {
    let configured = std::env::var("AI_RATE").ok().and_then(|rate| {
        let (calls, seconds) = rate.split_once('/')?;
        let calls: u32 = calls.trim().parse().ok().filter(|c| *c > 0)?;
        let seconds: u64 = seconds.trim().parse().ok().filter(|s| *s > 0)?;
        Some((calls, seconds))
    });
    let (calls, seconds) = configured.unwrap_or(RATE);
    (calls, Duration::from_secs(seconds))
}

/// Lowercase, trimmed, without the punctuation people end a word with (as flows match
/// keywords).
fn normalize(text: &str) -> String {
    text.trim()
        .trim_end_matches(['!', '.', '?'])
        .trim()
        .to_lowercase()
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` in parts of at most `max` bytes, cut after a line or a space where there is one.
fn split(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.len() > max {
        let head = clip(rest, max);
        let first = rest.chars().next().map_or(1, char::len_utf8);
        let cut = head
            .rfind('\n')
            .or_else(|| head.rfind(' '))
            .filter(|at| *at > 0)
            .unwrap_or(head.len())
            .max(first);
        parts.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

/// A short, stable digest of an id (FNV-1a), to keep thread names short.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

export_plugin!(Assistant);
