//! `POST /discord/interactions`: Discord's interactions over HTTP. The signature
//! (`X-Signature-Ed25519` over `X-Signature-Timestamp` and the raw body) is verified before
//! the body is parsed; a bad or missing one, or a timestamp more than five minutes off, is
//! 401. PING answers PONG. A slash command becomes the same normalized command event as a
//! prefix command, a component click the same interaction event as on the console; the
//! plugin's replies are the HTTP answer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Deserialize;
use serde_json::{Value as Json_, json};
use serenity::all::{ApplicationId, Http};

use super::wire;
use crate::{
    bindings::types::{
        AllowedMentions, Argument, Command, CommandSource, Event, EventKind, Interaction, Outgoing,
        Platform, User, Value,
    },
    dispatch::Dispatcher,
    permissions::Permissions,
};

/// How far a request's timestamp may be from now: older ones are replays.
const MAX_SKEW: Duration = Duration::from_secs(300);
/// The largest body accepted; Discord's interactions are a few kilobytes.
const MAX_BODY: usize = 256 * 1024;

/// Why a public key was refused.
#[derive(Debug, thiserror::Error)]
#[error("discord.public_key: expected 64 hex digits (an Ed25519 public key)")]
pub struct BadKey;

/// Parses the application's public key.
pub fn public_key(hex_key: &str) -> Result<VerifyingKey, BadKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(BadKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| BadKey)
}

/// Interactions waiting for their answer: each one's replies are kept for it, only while it
/// waits (so nothing piles up for other events).
#[derive(Default)]
pub struct Answers {
    replies: Mutex<HashMap<String, Vec<Outgoing>>>,
    /// Where answers that come too late for the response go (Discord's webhook routes,
    /// which the interaction's token opens); without it, late answers are sent late.
    followups: Option<Arc<Http>>,
}

impl Answers {
    /// Answers that send what comes after [`ANSWER_WITHIN`] through `rest`.
    pub fn with_followups(rest: Arc<Http>) -> Self {
        Self {
            replies: Mutex::default(),
            followups: Some(rest),
        }
    }

    /// The response to give Discord: the answer, when the plugins give it within
    /// [`ANSWER_WITHIN`] (Discord waits 3 s); else a deferral ("thinking..."), and the answer
    /// follows through the REST API when it comes. `None` for a kind of interaction the
    /// host does not handle.
    pub async fn respond(
        self: &Arc<Self>,
        dispatcher: &Arc<Dispatcher>,
        interaction: RawInteraction,
    ) -> Option<Json_> {
        let (kind, token) = (interaction.kind, interaction.token.clone());
        let application = interaction
            .application_id
            .as_deref()
            .and_then(|id| id.parse().ok());
        let (answers, dispatcher) = (Arc::clone(self), Arc::clone(dispatcher));
        let mut work = tokio::spawn(async move { answers.answer(&dispatcher, interaction).await });
        let Some(rest) = self.followups.clone().filter(|_| !token.is_empty()) else {
            return work.await.ok().flatten();
        };
        match tokio::time::timeout(ANSWER_WITHIN, &mut work).await {
            Ok(done) => done.ok().flatten(),
            Err(_) => {
                tokio::spawn(async move {
                    if let Ok(Some(answer)) = work.await {
                        follow_up(&rest, application, &token, kind, &answer["data"]).await;
                    }
                });
                let deferral = match kind {
                    MESSAGE_COMPONENT => UPDATE_ACK,
                    _ => DEFERRED_CHANNEL_MESSAGE,
                };
                Some(json!({ "type": deferral }))
            }
        }
    }

    fn expect(&self, event: &str) {
        let mut replies = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        replies.insert(event.to_owned(), Vec::new());
    }

    fn take(&self, event: &str) -> Vec<Outgoing> {
        let mut replies = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        replies.remove(event).unwrap_or_default()
    }
}

struct Endpoint {
    dispatcher: Arc<Dispatcher>,
    answers: Arc<Answers>,
    key: VerifyingKey,
}

/// The route, answering through `answers` (which `dispatcher` must deliver to).
pub fn router(dispatcher: Arc<Dispatcher>, answers: Arc<Answers>, key: VerifyingKey) -> Router {
    let endpoint = Arc::new(Endpoint {
        dispatcher,
        answers,
        key,
    });
    Router::new()
        .route("/discord/interactions", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(endpoint)
}

async fn receive(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(why) = verify(&endpoint.key, &headers, &body, SystemTime::now()) {
        tracing::info!(platform = "discord", "interaction refused: {why}");
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    let interaction: RawInteraction = match serde_json::from_slice(&body) {
        Ok(interaction) => interaction,
        Err(error) => {
            tracing::info!(
                platform = "discord",
                "interaction refused: malformed JSON: {error}"
            );
            return (StatusCode::BAD_REQUEST, "malformed interaction").into_response();
        }
    };
    if interaction.kind == PING {
        return Json(json!({ "type": PONG })).into_response();
    }
    match endpoint
        .answers
        .respond(&endpoint.dispatcher, interaction)
        .await
    {
        Some(answer) => Json(answer).into_response(),
        None => (StatusCode::BAD_REQUEST, "interaction type not handled").into_response(),
    }
}

impl Answers {
    /// Dispatches an interaction (received over HTTP or the gateway) and returns Discord's
    /// answer to it, built from the replies the plugins made meanwhile; `None` for a kind
    /// of interaction the host does not handle (logged).
    async fn answer(&self, dispatcher: &Dispatcher, interaction: RawInteraction) -> Option<Json_> {
        let kind = match interaction.kind {
            APPLICATION_COMMAND => command(&interaction),
            MESSAGE_COMPONENT => component(&interaction),
            other => {
                tracing::info!(
                    platform = "discord",
                    kind = other,
                    "interaction type not handled"
                );
                return None;
            }
        };
        let event = event(&interaction, kind);
        let id = event.id.clone();
        let permissions = interaction
            .member
            .as_ref()
            .and_then(|member| member.permissions.as_deref())
            .and_then(Permissions::parse);
        self.expect(&id);
        dispatcher.dispatch_with(event, permissions).await;
        Some(answer(interaction.kind, self.take(&id)))
    }

    /// Keeps `message` for the answer when `event` is an interaction waiting for it;
    /// false when it is not (the reply goes another way).
    pub fn reply(&self, event: &str, message: &Outgoing) -> bool {
        let mut replies = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        match replies.get_mut(event) {
            Some(waiting) => {
                waiting.push(message.clone());
                true
            }
            None => false,
        }
    }
}

/// Checks the signature of `timestamp + body` and the timestamp's age.
fn verify(
    key: &VerifyingKey,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(signature), Some(timestamp)) = (
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
    ) else {
        return Err("missing signature headers");
    };
    let signature: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or("malformed signature")?;
    let signed = [timestamp.as_bytes(), body].concat();
    key.verify(&signed, &Signature::from_bytes(&signature))
        .map_err(|_| "bad signature")?;
    let sent = timestamp
        .parse::<u64>()
        .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds))
        .map_err(|_| "malformed timestamp")?;
    let skew = now
        .duration_since(sent)
        .or_else(|early| Ok::<_, ()>(early.duration()))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err("stale timestamp");
    }
    Ok(())
}

const PING: u8 = 1;
const APPLICATION_COMMAND: u8 = 2;
const MESSAGE_COMPONENT: u8 = 3;
const PONG: u8 = 1;
const CHANNEL_MESSAGE: u8 = 4;
const DEFERRED_CHANNEL_MESSAGE: u8 = 5;
const UPDATE_ACK: u8 = 6;

/// How long an interaction's plugins may take before Discord is told to wait: it drops
/// interactions not answered within 3 s.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(2500);

/// Sends a late answer: the deferred command's response is edited into it; a click's
/// becomes a follow-up message (editing would replace the message clicked). Once more
/// after a moment if Discord has not taken the deferral yet.
async fn follow_up(rest: &Http, application: Option<u64>, token: &str, kind: u8, data: &Json_) {
    if data.is_null() {
        return;
    }
    if let Some(application) = application.filter(|id| *id != 0) {
        rest.set_application_id(ApplicationId::new(application));
    }
    for attempt in 0..2 {
        let sent = match kind {
            MESSAGE_COMPONENT => rest.create_followup_message(token, data, Vec::new()).await,
            _ => {
                rest.edit_original_interaction_response(token, data, Vec::new())
                    .await
            }
        };
        match sent {
            Ok(_) => return,
            Err(error) if attempt == 1 => {
                tracing::warn!(
                    platform = "discord",
                    "late interaction answer refused: {error}"
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// An interaction as Discord sends it, over HTTP or in the gateway's `INTERACTION_CREATE`.
#[derive(Deserialize)]
pub struct RawInteraction {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default, deserialize_with = "null_as_default")]
    id: String,
    /// The token that answers it through the REST API (gateway interactions, late answers).
    #[serde(default, deserialize_with = "null_as_default")]
    pub token: String,
    application_id: Option<String>,
    guild_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    channel_id: String,
    /// The invoking user's language (`en-US`); every interaction but a ping has it.
    locale: Option<String>,
    /// The guild's preferred language, in a guild.
    guild_locale: Option<String>,
    member: Option<RawMember>,
    user: Option<RawUser>,
    #[serde(default, deserialize_with = "null_as_default")]
    data: RawData,
    message: Option<RawMessage>,
}

#[derive(Deserialize)]
struct RawMember {
    user: RawUser,
    #[serde(default, deserialize_with = "null_as_default")]
    roles: Vec<String>,
    /// The member's permissions in the channel, as a decimal bitfield.
    permissions: Option<String>,
}

#[derive(Deserialize, Clone)]
struct RawUser {
    id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    username: String,
    #[serde(default, deserialize_with = "null_as_default")]
    bot: bool,
}

#[derive(Deserialize, Default)]
struct RawData {
    #[serde(default, deserialize_with = "null_as_default")]
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    options: Vec<RawOption>,
    #[serde(default, deserialize_with = "null_as_default")]
    custom_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    values: Vec<String>,
}

#[derive(Deserialize)]
struct RawOption {
    name: String,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default, deserialize_with = "null_as_default")]
    value: Json_,
}

#[derive(Deserialize)]
struct RawMessage {
    id: String,
}

/// Discord (and serenity, writing interactions back) sends `null` for some empty fields.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn command(interaction: &RawInteraction) -> EventKind {
    let data = &interaction.data;
    let args = data.options.iter().filter_map(argument).collect::<Vec<_>>();
    let raw_args = data
        .options
        .iter()
        .map(|option| match &option.value {
            Json_::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    EventKind::Command(Command {
        name: data.name.to_lowercase(),
        args,
        raw_args,
        source: CommandSource::Slash,
        message_id: None,
    })
}

/// One option as a typed argument, by Discord's option types; sub-commands and unknown
/// types are left out.
fn argument(option: &RawOption) -> Option<Argument> {
    let text = || option.value.as_str().map(str::to_owned);
    let value = match option.kind {
        3 => Value::Text(text()?),
        4 => Value::Integer(option.value.as_i64()?),
        5 => Value::Boolean(option.value.as_bool()?),
        6 => Value::User(text()?),
        7 => Value::Channel(text()?),
        8 => Value::Role(text()?),
        10 => Value::Number(option.value.as_f64()?),
        _ => return None,
    };
    Some(Argument {
        name: option.name.clone(),
        value,
    })
}

fn component(interaction: &RawInteraction) -> EventKind {
    EventKind::Interaction(Interaction {
        custom_id: interaction.data.custom_id.clone(),
        values: interaction.data.values.clone(),
        message_id: interaction
            .message
            .as_ref()
            .map(|message| message.id.clone()),
    })
}

fn event(interaction: &RawInteraction, kind: EventKind) -> Event {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| u64::try_from(now.as_millis()).unwrap_or(u64::MAX));
    let (user, roles) = match (&interaction.member, &interaction.user) {
        (Some(member), _) => (member.user.clone(), member.roles.clone()),
        (None, Some(user)) => (user.clone(), Vec::new()),
        (None, None) => (
            RawUser {
                id: String::new(),
                username: String::new(),
                bot: false,
            },
            Vec::new(),
        ),
    };
    Event {
        id: format!("discord-{}", interaction.id),
        platform: Platform::Discord,
        guild_id: interaction.guild_id.clone(),
        channel_id: interaction.channel_id.clone(),
        author: User {
            id: user.id,
            name: user.username,
            is_bot: user.bot,
            roles,
            locale: interaction.locale.clone(),
        },
        timestamp_ms: now,
        received_ms: now,
        guild_locale: interaction.guild_locale.clone(),
        kind,
    }
}

/// The answer: the replies as one message (their texts, embeds, buttons, menu and
/// ephemeral flag); a click with no reply is acknowledged, a command with none says it was
/// done.
fn answer(kind: u8, replies: Vec<Outgoing>) -> Json_ {
    if replies.is_empty() {
        return match kind {
            MESSAGE_COMPONENT => json!({ "type": UPDATE_ACK }),
            _ => {
                let done = json!({
                    "content": "Done.",
                    "flags": wire::EPHEMERAL,
                    "allowed_mentions": wire::mentions(&AllowedMentions::default()),
                });
                json!({ "type": CHANNEL_MESSAGE, "data": done })
            }
        };
    }
    let mut merged = Outgoing::text_only(
        replies
            .iter()
            .map(|reply| reply.text.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    for reply in replies {
        merged.embeds.extend(reply.embeds);
        merged.buttons.extend(reply.buttons);
        merged.media.extend(reply.media);
        merged.menu = merged.menu.or(reply.menu);
        merged.ephemeral |= reply.ephemeral;
        merged.mentions.users.extend(reply.mentions.users);
        merged.mentions.roles.extend(reply.mentions.roles);
        merged.mentions.everyone |= reply.mentions.everyone;
    }
    let mut data = wire::message(&merged);
    if merged.ephemeral {
        data["flags"] = json!(wire::EPHEMERAL);
    }
    json!({ "type": CHANNEL_MESSAGE, "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_are_64_hex_digits() {
        assert!(public_key("zz").is_err());
        assert!(public_key(&"00".repeat(31)).is_err());
    }
}
