//! `user-profile`: what the bot knows about each user, kept in the host's config store
//! (user scope, namespaced to this plugin), and `profile` (where people talk to the bot
//! alone: WhatsApp, the console) or `!profile` to see it.
//!
//! The fields of a user's document:
//!
//! - `name`: the name the platform shows; `chat_id` and `platform`: the chat they last
//!   wrote in;
//! - `labels`: a list set by operators and tools from outside the bot (a CRM, an automation
//!   tool), never by the plugin: they write the document in the database and call the admin
//!   hook `POST /update-user {"userId": "..."}`, which drops the user's cached documents on
//!   every host;
//! - `last_active_ms`: when they last wrote, written at most every 5 minutes per user (the
//!   plugin compares the event's time with the cached value), so a burst of messages is one
//!   write, not one per message; it is accurate to within those 5 minutes;
//! - `thread`: when the user's current thread began (milliseconds since the Unix epoch): a
//!   message after about 30 minutes of silence begins a new one.
//!
//! Name and chat changes are written with the next activity write (or a new thread), not
//! on their own.
//!
//! And the thread's token count: the user's messages in the current thread, estimated at
//! one token per 4 characters (what a model would bill for reading them; the `assistant`
//! plugin counts the model's own figures separately), added to the write-behind counter
//! `thread-tokens` with the thread as its thread: the host adds the amounts up in memory
//! and writes the total once it has been quiet for `counters.quiet_ms` (and at shutdown),
//! so counting costs no database write per message; a new thread restarts the total.
//! `profile` shows the written total.
//!
//! Every message reads the user's document through the config store: a lookup in the
//! host's memory (the document stays cached `config_store.user_ttl_s`, 12 hours, and in
//! Redis where configured), not a database query. The cache, and so the capacity of these
//! profiles, is the config store's, not the plugin's: user documents have a tier of their
//! own, `config_store.user_max_entries` (1 000 by default), so new users cannot push the
//! guilds' settings out; past it the least used profiles go and are read again when their
//! users next write.
//!
//! Granted by default: `config`, `counters` and `log` only.

use serde::Deserialize;
use serde_json::{Value, json};
use wasmbot_sdk::{Platform, config, counters, prelude::*, time};

/// Activity is written at most this often per user.
const ACTIVITY_EVERY_MS: u64 = 5 * 60 * 1000;
/// Silence longer than this begins a new thread.
const THREAD_GAP_MS: u64 = 30 * 60 * 1000;
/// The write-behind counter of the thread's estimated tokens, per user.
const COUNTER: &str = "thread-tokens";
/// Characters per token, the usual estimate for English text.
const CHARS_PER_TOKEN: usize = 4;

/// A user's document; fields a tool wrote wrongly read as their defaults' type would not,
/// and fail the event with the reason.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Profile {
    name: String,
    labels: Vec<Value>,
    chat_id: String,
    platform: String,
    last_active_ms: u64,
    thread: String,
}

struct UserProfile;

impl Plugin for UserProfile {
    fn manifest() -> Manifest {
        Manifest::new("user-profile", env!("CARGO_PKG_VERSION"))
            .description("What the bot knows about each user")
            .command(CommandSpec::new("profile", "What the bot knows about you"))
            .on(EventType::Message)
            .config(
                ScopeKind::User,
                &json!({
                    "name": "",
                    "labels": [],
                    "chat_id": "",
                    "platform": "",
                    "last_active_ms": 0,
                    "thread": "",
                }),
            )
            .capability("counters")
            .capability("log")
    }

    fn handle(event: Event) -> Handled {
        let asked = match &event.kind {
            EventKind::Command(command) => command.name == "profile",
            // In a Discord channel the word would answer everyone's "profile".
            EventKind::Message(message) => {
                (event.platform != Platform::Discord || event.guild_id.is_none())
                    && normalize(&message.text) == "profile"
            }
            _ => return Ok(vec![]),
        };
        let scope = event.user_scope();
        let mut profile: Profile = config::document(&scope)?;
        touch(&event, &scope, &mut profile)?;
        if let Some(message) = event.message()
            && !asked
        {
            let estimate = estimate(&message.text);
            counters::add(COUNTER, &event.author.id, estimate, &profile.thread)?;
        }
        if !asked {
            return Ok(vec![]);
        }
        Ok(vec![Action::reply(render(&event, &profile)?)])
    }
}

/// Records the user's activity: nothing is written unless 5 minutes passed since the
/// written activity or a new thread begins.
fn touch(event: &Event, scope: &Scope, profile: &mut Profile) -> Result<(), PluginError> {
    let now = event.timestamp_ms;
    let idle = now.saturating_sub(profile.last_active_ms);
    let new_thread = profile.thread.is_empty() || idle > THREAD_GAP_MS;
    if !new_thread && idle < ACTIVITY_EVERY_MS {
        return Ok(());
    }
    if new_thread {
        profile.thread = now.to_string();
        config::set(scope, "thread", &profile.thread)?;
    }
    let name = &event.author.name;
    if !name.is_empty() && *name != profile.name {
        profile.name.clone_from(name);
        config::set(scope, "name", name)?;
    }
    if event.channel_id != profile.chat_id {
        profile.chat_id.clone_from(&event.channel_id);
        config::set(scope, "chat_id", &profile.chat_id)?;
    }
    let platform = platform_name(event.platform);
    if profile.platform != platform {
        profile.platform = platform.to_owned();
        config::set(scope, "platform", &platform)?;
    }
    profile.last_active_ms = now;
    config::set(scope, "last_active_ms", &now)?;
    Ok(())
}

/// The profile as the user reads it.
fn render(event: &Event, profile: &Profile) -> Result<String, PluginError> {
    let labels: Vec<String> = profile
        .labels
        .iter()
        .map(|label| match label {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect();
    let labels = if labels.is_empty() {
        "none".to_owned()
    } else {
        labels.join(", ")
    };
    let written = match counters::stored(COUNTER, &event.author.id)? {
        Some((total, thread)) if thread == profile.thread => total,
        _ => 0,
    };
    let since = profile
        .thread
        .parse::<u64>()
        .map_or_else(|_| "now".to_owned(), time::format_utc);
    Ok(format!(
        "Profile of {name}\n\
         Chat: {chat} ({platform})\n\
         Labels: {labels}\n\
         Last active: {active} (kept to within 5 minutes)\n\
         This thread, since {since}: {written} tokens written so far (about {CHARS_PER_TOKEN} \
         characters a token; the latest messages are added once the counter has been quiet \
         for a while)",
        name = if profile.name.is_empty() {
            &event.author.name
        } else {
            &profile.name
        },
        chat = profile.chat_id,
        platform = profile.platform,
        active = time::format_utc(profile.last_active_ms),
    ))
}

/// Estimated tokens of a message: a token per 4 characters, rounded up.
fn estimate(text: &str) -> i64 {
    let chars = text.trim().chars().count();
    i64::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap_or(i64::MAX)
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Discord => "discord",
        Platform::Whatsapp => "whatsapp",
        Platform::Console => "console",
    }
}

/// Lowercase, trimmed, without the punctuation people end a word with.
fn normalize(text: &str) -> String {
    text.trim()
        .trim_end_matches(['!', '.', '?'])
        .trim()
        .to_lowercase()
}

export_plugin!(UserProfile);
