//! A fake Discord at its wire protocol, for serenity to connect to: the REST routes the
//! adapter uses (recording what the bot sent) and a gateway WebSocket that says HELLO,
//! answers IDENTIFY with READY and heartbeats with ACKs, resumes sessions (replaying what a
//! dropped connection missed), routes dispatches to shards by guild, and enforces the
//! 120 commands per 60 s send limit. Its gateway can be made to refuse connections, as
//! during an outage, and to accept them again.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::{
    Message as Frame,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

/// The token the fake accepts.
pub const TOKEN: &str = "fake-discord-token";
/// The bot's user id.
pub const BOT_ID: u64 = 900_000_000_000_000_001;
/// The application's id.
pub const APP_ID: u64 = 900_000_000_000_000_002;
/// 2015-01-01, where Discord's snowflakes count from.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
/// Discord's gateway send limit: commands per connection per window.
const SEND_LIMIT: usize = 120;
const SEND_WINDOW: Duration = Duration::from_secs(60);
/// Dispatches kept for resumes.
const BACKLOG: usize = 100_000;

/// One request the bot made to the REST API.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    /// The path after `/api/v10`.
    pub path: String,
    pub body: Value,
    /// When the fake received it.
    pub at: Instant,
}

impl Sent {
    /// The channel of a `/channels/{id}/...` request.
    pub fn channel(&self) -> Option<&str> {
        self.path.strip_prefix("/channels/")?.split('/').next()
    }

    /// The text content sent, when there is some.
    pub fn content(&self) -> &str {
        self.body["content"].as_str().unwrap_or_default()
    }
}

/// Frames a session writes at once at most, when a burst has them waiting.
const BATCH_FRAMES: usize = 256;

enum Control {
    Frame(String),
    Drop,
}

/// A gateway session: its shard, its own sequence numbers, what it was sent (for resumes)
/// and the connection it is on now, if any.
struct Session {
    shard: (u64, u64),
    seq: u64,
    backlog: VecDeque<(u64, String)>,
    live: Option<(u64, mpsc::UnboundedSender<Control>)>,
}

impl Session {
    fn send(&mut self, kind: &str, data: Value) {
        self.seq += 1;
        let frame = json!({ "op": 0, "t": kind, "s": self.seq, "d": data }).to_string();
        self.backlog.push_back((self.seq, frame.clone()));
        if self.backlog.len() > BACKLOG {
            self.backlog.pop_front();
        }
        if let Some((_, to)) = &self.live {
            let _ = to.send(Control::Frame(frame));
        }
    }
}

#[derive(Default)]
struct Inner {
    api_url: String,
    gateway_url: String,
    next_id: AtomicU64,
    sent: Mutex<Vec<Sent>>,
    sent_signal: tokio::sync::Notify,
    commands: Mutex<HashMap<String, Vec<Value>>>,
    command_writes: AtomicUsize,
    sessions: Mutex<HashMap<String, Session>>,
    identifies: AtomicUsize,
    resumes: AtomicUsize,
    rate_limited: AtomicUsize,
    connected: tokio::sync::Notify,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| u64::try_from(now.as_millis()).unwrap_or(u64::MAX))
}

/// RFC 3339 in UTC, as Discord writes its timestamps.
fn timestamp(ms: u64) -> String {
    let (seconds, millis) = (ms / 1000, ms % 1000);
    let (days, day_seconds) = (seconds / 86_400, seconds % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}000+00:00",
        day_seconds / 3600,
        day_seconds % 3600 / 60,
        day_seconds % 60
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The fake: its REST and gateway servers run until it is dropped.
pub struct FakeDiscord {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The gateway's listener, while it accepts connections.
    accepting: Mutex<Option<tokio::task::JoinHandle<()>>>,
    gateway: std::net::SocketAddr,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(accepting) = lock(&self.accepting).take() {
            accepting.abort();
        }
        self.drop_connections();
    }
}

/// Takes the gateway's connections, each a session, until aborted (which closes the port).
fn accept(inner: &Arc<Inner>, gateway: TcpListener) -> tokio::task::JoinHandle<()> {
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        while let Ok((stream, _)) = gateway.accept().await {
            tokio::spawn(session(Arc::clone(&inner), stream));
        }
    })
}

impl FakeDiscord {
    /// Starts the REST and gateway servers on loopback ports.
    pub async fn start() -> Self {
        let rest = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding REST");
        let gateway = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding gateway");
        let gateway_addr = gateway.local_addr().expect("gateway address");
        let inner = Arc::new(Inner {
            api_url: format!("http://{}", rest.local_addr().expect("REST address")),
            gateway_url: format!("ws://{gateway_addr}"),
            // Real snowflakes (milliseconds since Discord's epoch, shifted): ids differ
            // from one test run to the next, which share one Postgres.
            next_id: AtomicU64::new(now_ms().saturating_sub(DISCORD_EPOCH_MS) << 22),
            ..Inner::default()
        });
        let router = Router::new()
            .fallback(rest_route)
            .with_state(Arc::clone(&inner));
        let serving = tokio::spawn(async move {
            let _ = axum::serve(rest, router).await;
        });
        let accepting = accept(&inner, gateway);
        Self {
            inner,
            tasks: vec![serving],
            accepting: Mutex::new(Some(accepting)),
            gateway: gateway_addr,
        }
    }

    /// An outage: the live gateway connections drop and the gateway's port is closed, so
    /// every new connection is refused, until [`FakeDiscord::accept_connections`].
    pub async fn refuse_connections(&self) {
        let accepting = lock(&self.accepting).take();
        if let Some(accepting) = accepting {
            accepting.abort();
            // Once the task is gone, so is its listener: the port refuses from now on.
            let _ = accepting.await;
        }
        self.drop_connections();
    }

    /// The end of an outage: the gateway takes connections again, on the same address.
    pub async fn accept_connections(&self) {
        if lock(&self.accepting).is_some() {
            return;
        }
        let gateway = TcpListener::bind(self.gateway)
            .await
            .expect("binding the gateway's address again");
        *lock(&self.accepting) = Some(accept(&self.inner, gateway));
    }

    /// The REST base, for `discord.api_url`.
    pub fn api_url(&self) -> String {
        self.inner.api_url.clone()
    }

    /// A fresh snowflake.
    pub fn id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh guild id on `shard` of `shards`.
    pub fn guild_on(&self, shard: u64, shards: u64) -> u64 {
        let id = self.id();
        let off = (shard + shards - shard_of(id, shards)) % shards;
        // Skip whole milliseconds so the next ids stay fresh.
        self.inner.next_id.fetch_add(off << 22, Ordering::Relaxed);
        id + (off << 22)
    }

    /// Waits until `count` gateway connections are ready (or resumed).
    pub async fn wait_connected(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.inner.connected.notified();
            let live = lock(&self.inner.sessions)
                .values()
                .filter(|s| s.live.is_some())
                .count();
            if live >= count {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {count} gateway connection(s) in 30 s");
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Sends a dispatch to the connection of the guild's shard now, or on its resume.
    pub fn dispatch(&self, kind: &str, guild: Option<u64>, data: Value) {
        self.inner.dispatch(kind, guild.unwrap_or(0), data);
    }

    /// A user's message in a guild channel, as `MESSAGE_CREATE`; returns its id.
    pub fn message(&self, guild: u64, channel: u64, user: u64, content: &str) -> u64 {
        self.message_from(guild, channel, &user_json(user, false), &[], content)
    }

    /// [`FakeDiscord::message`] by a given author (a bot, say) with member roles.
    pub fn message_from(
        &self,
        guild: u64,
        channel: u64,
        author: &Value,
        roles: &[u64],
        content: &str,
    ) -> u64 {
        let id = self.id();
        let mut message = message_json(id, channel, author, content);
        message["guild_id"] = json!(guild.to_string());
        message["member"] = json!({
            "roles": roles.iter().map(u64::to_string).collect::<Vec<_>>(),
            "joined_at": timestamp(0),
            "deaf": false, "mute": false, "flags": 0,
        });
        self.dispatch("MESSAGE_CREATE", Some(guild), message);
        id
    }

    /// A slash command invocation, as `INTERACTION_CREATE`; returns the interaction's id.
    /// The member holds `permissions` (Discord's bitfield) in the channel.
    pub fn slash(
        &self,
        guild: u64,
        channel: u64,
        user: u64,
        permissions: u64,
        name: &str,
        options: Value,
    ) -> u64 {
        self.slash_in("en-US", guild, channel, user, permissions, name, options)
    }

    /// [`FakeDiscord::slash`] from a user whose Discord speaks `locale` (`es-ES`).
    #[allow(clippy::too_many_arguments)]
    pub fn slash_in(
        &self,
        locale: &str,
        guild: u64,
        channel: u64,
        user: u64,
        permissions: u64,
        name: &str,
        options: Value,
    ) -> u64 {
        let id = self.id();
        let mut data = self.interaction(id, guild, channel, user, permissions);
        data["type"] = json!(2);
        data["locale"] = json!(locale);
        data["data"] =
            json!({ "id": self.id().to_string(), "name": name, "type": 1, "options": options });
        self.dispatch("INTERACTION_CREATE", Some(guild), data);
        id
    }

    /// `GUILD_CREATE` for a guild owned by `owner`, with roles `(id, permissions)` besides
    /// @everyone (which holds none) and one text channel.
    pub fn guild_create(&self, guild: u64, owner: u64, roles: &[(u64, u64)], channel: u64) {
        let data = guild_json(guild, owner, roles, channel);
        self.dispatch("GUILD_CREATE", Some(guild), data);
    }

    /// A click on the button `custom_id` of the bot's message `message`, as
    /// `INTERACTION_CREATE`; returns the interaction's id.
    pub fn click(&self, guild: u64, channel: u64, user: u64, message: u64, custom_id: &str) -> u64 {
        let id = self.id();
        let mut data = self.interaction(id, guild, channel, user, 0);
        data["type"] = json!(3);
        data["data"] = json!({ "custom_id": custom_id, "component_type": 2 });
        data["message"] = message_json(message, channel, &user_json(BOT_ID, true), "");
        self.dispatch("INTERACTION_CREATE", Some(guild), data);
        id
    }

    fn interaction(&self, id: u64, guild: u64, channel: u64, user: u64, permissions: u64) -> Value {
        json!({
            "id": id.to_string(),
            "application_id": APP_ID.to_string(),
            "token": format!("token-{id}"),
            "version": 1,
            "guild_id": guild.to_string(),
            "channel_id": channel.to_string(),
            "member": {
                "user": user_json(user, false),
                "roles": [],
                "joined_at": timestamp(0),
                "deaf": false, "mute": false, "flags": 0,
                "permissions": permissions.to_string(),
            },
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": "0",
            "entitlements": [],
            "authorizing_integration_owners": {},
            "attachment_size_limit": 10_485_760,
        })
    }

    /// Closes every gateway connection abruptly, as a network failure would.
    pub fn drop_connections(&self) {
        for session in lock(&self.inner.sessions).values_mut() {
            if let Some((_, to)) = session.live.take() {
                let _ = to.send(Control::Drop);
            }
        }
    }

    /// How many IDENTIFYs and RESUMEs the gateway took.
    pub fn identifies(&self) -> usize {
        self.inner.identifies.load(Ordering::Relaxed)
    }

    pub fn resumes(&self) -> usize {
        self.inner.resumes.load(Ordering::Relaxed)
    }

    /// Connections closed for going over the send limit.
    pub fn rate_limited(&self) -> usize {
        self.inner.rate_limited.load(Ordering::Relaxed)
    }

    /// Everything the bot sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.inner.sent).clone()
    }

    /// How many requests the bot made so far.
    pub fn sent_count(&self) -> usize {
        lock(&self.inner.sent).len()
    }

    /// Waits (at most 30 s) for a request matching `wanted`, among those from `from` on.
    pub async fn wait_for(&self, from: usize, wanted: impl Fn(&Sent) -> bool) -> Sent {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.inner.sent_signal.notified();
            if let Some(found) = lock(&self.inner.sent).iter().skip(from).find(|s| wanted(s)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("nothing wanted was sent in 30 s; sent: {:#?}", self.sent());
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Waits until `count` requests match `wanted`, or none more came for `stalled` (a slow
    /// machine is not a lost message); how many did.
    pub async fn wait_count(
        &self,
        count: usize,
        stalled: Duration,
        wanted: impl Fn(&Sent) -> bool,
    ) -> usize {
        let (mut scanned, mut seen) = (0, 0);
        let mut deadline = Instant::now() + stalled;
        loop {
            let notified = self.inner.sent_signal.notified();
            let before = seen;
            {
                let sent = lock(&self.inner.sent);
                seen += sent[scanned..].iter().filter(|s| wanted(s)).count();
                scanned = sent.len();
            }
            if seen > before {
                deadline = Instant::now() + stalled;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if seen >= count || left.is_zero() {
                return seen;
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// The application commands registered (`""` for global, else the guild id).
    pub fn commands(&self, scope: &str) -> Vec<Value> {
        lock(&self.inner.commands)
            .get(scope)
            .cloned()
            .unwrap_or_default()
    }

    /// How many times the bot overwrote its application commands.
    pub fn command_writes(&self) -> usize {
        self.inner.command_writes.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// To every session of the guild's shard: live ones get it now, dropped ones on
    /// their resume.
    fn dispatch(&self, kind: &str, guild: u64, data: Value) {
        for session in lock(&self.sessions).values_mut() {
            if shard_of(guild, session.shard.1) == session.shard.0 {
                session.send(kind, data.clone());
            }
        }
    }

    fn record(&self, sent: Sent) {
        lock(&self.sent).push(sent);
        self.sent_signal.notify_waiters();
    }
}

/// Discord's shard formula; direct messages go to shard 0.
fn shard_of(guild: u64, total: u64) -> u64 {
    (guild >> 22) % total.max(1)
}

/// A guild object with its roles and one channel.
pub fn guild_json(guild: u64, owner: u64, roles: &[(u64, u64)], channel: u64) -> Value {
    let role = |id: u64, name: &str, permissions: u64| {
        json!({
            "id": id.to_string(), "name": name, "color": 0, "hoist": false, "icon": null,
            "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
            "unicode_emoji": null, "position": 0, "permissions": permissions.to_string(),
            "managed": false, "mentionable": false, "flags": 0,
        })
    };
    let mut all = vec![role(guild, "@everyone", 0)];
    all.extend(
        roles
            .iter()
            .map(|(id, permissions)| role(*id, "role", *permissions)),
    );
    let channel = json!({
        "id": channel.to_string(), "type": 0, "guild_id": guild.to_string(),
        "position": 0, "permission_overwrites": [], "name": "general", "topic": null,
        "nsfw": false, "last_message_id": null, "rate_limit_per_user": 0,
        "parent_id": null, "flags": 0,
    });
    let mut data = json!({
        "id": guild.to_string(), "name": "guild", "icon": null, "icon_hash": null,
        "splash": null, "discovery_splash": null, "owner_id": owner.to_string(),
        "afk_channel_id": null, "afk_timeout": 300, "widget_enabled": false,
        "widget_channel_id": null, "verification_level": 0,
        "default_message_notifications": 0, "explicit_content_filter": 0, "roles": all,
        "emojis": [], "features": [], "mfa_level": 0, "application_id": null,
        "system_channel_id": null, "system_channel_flags": 0, "rules_channel_id": null,
        "max_presences": null, "max_members": 1000, "vanity_url_code": null,
        "description": null, "banner": null, "premium_tier": 0,
    });
    let rest = json!({
        "premium_subscription_count": 0, "preferred_locale": "en-US",
        "public_updates_channel_id": null, "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50, "nsfw_level": 0, "stickers": [],
        "premium_progress_bar_enabled": false, "safety_alerts_channel_id": null,
        "joined_at": timestamp(0), "large": false, "unavailable": false, "member_count": 1,
        "voice_states": [], "members": [], "threads": [], "presences": [],
        "stage_instances": [], "guild_scheduled_events": [], "channels": [channel],
    });
    if let (Some(data), Value::Object(rest)) = (data.as_object_mut(), rest) {
        data.extend(rest);
    }
    data
}

/// A user object.
pub fn user_json(id: u64, bot: bool) -> Value {
    json!({
        "id": id.to_string(),
        "username": format!("user{id}"),
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": bot,
    })
}

/// A message object as Discord returns and dispatches it.
pub fn message_json(id: u64, channel: u64, author: &Value, content: &str) -> Value {
    json!({
        "id": id.to_string(),
        "channel_id": channel.to_string(),
        "author": author,
        "content": content,
        "timestamp": timestamp(now_ms()),
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": false,
        "type": 0,
    })
}

async fn rest_route(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start_matches("Bot ") == TOKEN);
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "401: Unauthorized", "code": 0 })),
        )
            .into_response();
    }
    let Some(path) = uri.path().strip_prefix("/api/v10") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let bot = user_json(BOT_ID, true);
    let answer = match (method.as_str(), parts.as_slice()) {
        ("GET", ["gateway"]) => json!({ "url": inner.gateway_url }),
        ("GET", ["gateway", "bot"]) => json!({
            "url": inner.gateway_url, "shards": 1,
            "session_start_limit": { "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1 },
        }),
        ("GET", ["users", "@me"]) => bot,
        ("GET", ["applications", _, "commands"]) => json!(commands(&inner, "")),
        ("GET", ["applications", _, "guilds", guild, "commands"]) => json!(commands(&inner, guild)),
        ("PUT", ["applications", _, "commands"]) => json!(overwrite(&inner, "", &body)),
        ("PUT", ["applications", _, "guilds", guild, "commands"]) => {
            json!(overwrite(&inner, guild, &body))
        }
        ("POST", ["users", "@me", "channels"]) => {
            let recipient = body["recipient_id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or(0);
            json!({
                "id": inner.next_id.fetch_add(1, Ordering::Relaxed).to_string(),
                "type": 1,
                "last_message_id": null,
                "recipients": [user_json(recipient, false)],
            })
        }
        // Messages the bot posts or edits, in channels or as interaction answers.
        ("POST", ["channels", _, "messages"])
        | ("PATCH", ["channels", _, "messages", _])
        | ("PATCH", ["webhooks", _, _, "messages", "@original"])
        | ("POST", ["webhooks", _, _]) => {
            let id = match parts.as_slice() {
                ["channels", _, "messages", id] => id.parse().unwrap_or(0),
                _ => inner.next_id.fetch_add(1, Ordering::Relaxed),
            };
            let channel = match parts.as_slice() {
                ["channels", channel, ..] => channel.parse().unwrap_or(0),
                _ => 0,
            };
            let content = body["content"].as_str().unwrap_or_default();
            let answer = message_json(id, channel, &bot, content);
            inner.record(Sent {
                method: method.to_string(),
                path: path.to_owned(),
                body,
                at: Instant::now(),
            });
            return Json(answer).into_response();
        }
        ("POST", ["interactions", _, _, "callback"])
        | ("POST", ["channels", _, "typing"])
        | ("DELETE", ["channels", _, "messages", _])
        | ("PUT", ["channels", _, "messages", _, "reactions", _, "@me"]) => {
            inner.record(Sent {
                method: method.to_string(),
                path: path.to_owned(),
                body,
                at: Instant::now(),
            });
            return StatusCode::NO_CONTENT.into_response();
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "message": "404: Not Found", "code": 0 })),
            )
                .into_response();
        }
    };
    Json(answer).into_response()
}

fn commands(inner: &Inner, scope: &str) -> Vec<Value> {
    lock(&inner.commands)
        .get(scope)
        .cloned()
        .unwrap_or_default()
}

/// A bulk overwrite: the commands as Discord stores them, with ids and versions.
fn overwrite(inner: &Inner, scope: &str, body: &Value) -> Vec<Value> {
    inner.command_writes.fetch_add(1, Ordering::Relaxed);
    let stored: Vec<Value> = body
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut command| {
            let id = inner.next_id.fetch_add(1, Ordering::Relaxed).to_string();
            command["id"] = json!(id);
            command["application_id"] = json!(APP_ID.to_string());
            command["version"] = json!(id);
            command["type"] = json!(1);
            command["dm_permission"] = json!(true);
            command["nsfw"] = json!(false);
            if !scope.is_empty() {
                command["guild_id"] = json!(scope);
            }
            // Discord leaves out what is empty or false.
            if let Some(options) = command["options"].as_array_mut() {
                for option in options {
                    let object = option.as_object_mut();
                    if let Some(object) = object {
                        if object.get("required") == Some(&json!(false)) {
                            object.remove("required");
                        }
                        if object.get("choices") == Some(&json!([])) {
                            object.remove("choices");
                        }
                    }
                }
            }
            command
        })
        .collect();
    lock(&inner.commands).insert(scope.to_owned(), stored.clone());
    stored
}

/// One gateway connection, from HELLO to its end.
async fn session(inner: Arc<Inner>, stream: tokio::net::TcpStream) {
    let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut out, mut incoming) = socket.split();
    let (to, mut control) = mpsc::unbounded_channel();
    let hello = json!({ "op": 10, "d": { "heartbeat_interval": 41_250 } });
    if out.send(Frame::text(hello.to_string())).await.is_err() {
        return;
    }
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let mut session = None::<String>;
    let mut closed_cleanly = false;
    let mut received = VecDeque::<Instant>::new();
    let close = |code: u16, reason: &'static str| {
        Frame::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        }))
    };
    loop {
        tokio::select! {
            command = control.recv() => match command {
                Some(Control::Frame(frame)) => {
                    // Frames already waiting go out together, one write for all, as a
                    // busy gateway's do: a burst is not a system call per event.
                    let mut written = out.feed(Frame::text(frame)).await.is_ok();
                    let mut dropped = false;
                    for _ in 1..BATCH_FRAMES {
                        if !written {
                            break;
                        }
                        match control.try_recv() {
                            Ok(Control::Frame(next)) => {
                                written = out.feed(Frame::text(next)).await.is_ok();
                            }
                            Ok(Control::Drop) => {
                                dropped = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if !written || out.flush().await.is_err() || dropped {
                        break;
                    }
                }
                // Abrupt: no close frame, as when the network goes.
                Some(Control::Drop) | None => break,
            },
            frame = incoming.next() => {
                let Some(Ok(frame)) = frame else { break };
                let text = match frame {
                    Frame::Text(text) => text,
                    // A client that closes ends its session: it cannot be resumed.
                    Frame::Close(_) => {
                        closed_cleanly = true;
                        let _ = out.send(Frame::Close(None)).await;
                        break;
                    }
                    _ => continue,
                };
                let now = Instant::now();
                received.push_back(now);
                while received.front().is_some_and(|at| now.duration_since(*at) > SEND_WINDOW) {
                    received.pop_front();
                }
                if received.len() > SEND_LIMIT {
                    inner.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let _ = out.send(close(4008, "Rate limited.")).await;
                    break;
                }
                let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                    let _ = out.send(close(4002, "Decode error.")).await;
                    break;
                };
                let reply = match payload["op"].as_u64() {
                    Some(1) => vec![json!({ "op": 11 }).to_string()],
                    Some(2) => match identify(&inner, id, &to, &payload["d"]) {
                        Some(started) => {
                            session = Some(started);
                            Vec::new()
                        }
                        None => {
                            let _ = out.send(close(4004, "Authentication failed.")).await;
                            break;
                        }
                    },
                    Some(6) => match resume(&inner, id, &to, &payload["d"]) {
                        Some((resumed, frames)) => {
                            session = Some(resumed);
                            frames
                        }
                        None => vec![json!({ "op": 9, "d": false }).to_string()],
                    },
                    _ => Vec::new(),
                };
                for frame in reply {
                    if out.send(Frame::text(frame)).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    if let Some(name) = session {
        let mut sessions = lock(&inner.sessions);
        if closed_cleanly {
            sessions.remove(&name);
        } else if let Some(session) = sessions.get_mut(&name)
            && session.live.as_ref().is_some_and(|(live, _)| *live == id)
        {
            session.live = None;
        }
    }
}

fn token_ok(data: &Value) -> bool {
    data["token"]
        .as_str()
        .is_some_and(|token| token.trim_start_matches("Bot ") == TOKEN)
}

/// IDENTIFY: a new session on the shard asked for, its READY sent; its name, or `None` on
/// a bad token.
fn identify(
    inner: &Inner,
    id: u64,
    to: &mpsc::UnboundedSender<Control>,
    data: &Value,
) -> Option<String> {
    if !token_ok(data) {
        return None;
    }
    inner.identifies.fetch_add(1, Ordering::Relaxed);
    let shard = (
        data["shard"][0].as_u64().unwrap_or(0),
        data["shard"][1].as_u64().unwrap_or(1),
    );
    let name = format!("session-{id}");
    let mut session = Session {
        shard,
        seq: 0,
        backlog: VecDeque::new(),
        live: Some((id, to.clone())),
    };
    let ready = json!({
        "v": 10,
        "user": user_json(BOT_ID, true),
        "guilds": [],
        "session_id": name,
        "resume_gateway_url": inner.gateway_url,
        "shard": [shard.0, shard.1],
        "application": { "id": APP_ID.to_string(), "flags": 0 },
    });
    session.send("READY", ready);
    lock(&inner.sessions).insert(name.clone(), session);
    inner.connected.notify_waiters();
    Some(name)
}

/// RESUME: the session's frames after its last sequence number, then RESUMED; `None` for
/// a session that cannot be resumed.
fn resume(
    inner: &Inner,
    id: u64,
    to: &mpsc::UnboundedSender<Control>,
    data: &Value,
) -> Option<(String, Vec<String>)> {
    if !token_ok(data) {
        return None;
    }
    let name = data["session_id"].as_str()?.to_owned();
    let mut sessions = lock(&inner.sessions);
    let session = sessions.get_mut(&name)?;
    inner.resumes.fetch_add(1, Ordering::Relaxed);
    let after = data["seq"].as_u64().unwrap_or(0);
    // Under the sessions' lock: nothing dispatched meanwhile is missed or sent twice.
    let mut frames: Vec<String> = session
        .backlog
        .iter()
        .filter(|(seq, _)| *seq > after)
        .map(|(_, frame)| frame.clone())
        .collect();
    session.seq += 1;
    frames.push(json!({ "op": 0, "t": "RESUMED", "s": session.seq, "d": {} }).to_string());
    session.live = Some((id, to.clone()));
    drop(sessions);
    inner.connected.notify_waiters();
    Some((name, frames))
}
