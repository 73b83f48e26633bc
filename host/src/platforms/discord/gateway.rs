//! The gateway connection through serenity: each `MESSAGE_CREATE`, interaction, reaction
//! and member change becomes a normalized event for the dispatcher. Heartbeats, reconnects
//! and resumes are serenity's; this side reads which shards are connected from serenity's
//! shard manager, for `/readyz` and the metrics.

use std::{
    ops::RangeInclusive,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use serenity::{
    all::{
        Client, ConnectionStage, Context, EventHandler, GatewayIntents, GuildId, Http, Member,
        Message as DiscordMessage, Ready, ResumedEvent, ShardId, ShardManager,
        ShardStageUpdateEvent, User as DiscordUser,
    },
    async_trait,
    cache::{Cache, Settings as CacheSettings},
    model::{application::Interaction as DiscordInteraction, channel::Reaction as DiscordReaction},
};

use super::{DiscordConfig, commands::Commands, interactions::Answers};
use crate::{
    bindings::types::{
        Attachment, Event, EventKind, EventType, MediaKind, Message, Platform, Reaction, User,
    },
    dispatch::Dispatcher,
    permissions::Permissions,
    runtime::{Registry, registry::Snapshot},
};

/// Discord's interaction types.
const APPLICATION_COMMAND: u8 = 2;
const MESSAGE_COMPONENT: u8 = 3;

/// 2015-01-01, where Discord's snowflakes count from.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Which of this host's shards are connected, read from serenity's shard manager at the
/// moment of asking. Serenity sends no event when a shard's connection drops and its
/// resume or restart fails, but it keeps each shard runner's stage in the manager, and a
/// shard being restarted has no runner there: a shard is connected when its runner is at
/// [`ConnectionStage::Connected`]. Nothing runs between two questions.
pub struct Connection {
    manager: Arc<ShardManager>,
    shards: RangeInclusive<u32>,
    /// The last reading, answered when serenity holds its runners' lock at that moment.
    last: AtomicUsize,
}

impl Connection {
    /// Whether every shard this host runs is connected.
    pub fn connected(&self) -> bool {
        let (up, of) = self.shards();
        up == of
    }

    /// How many of this host's shards are connected, and how many it runs.
    pub fn shards(&self) -> (usize, usize) {
        let expected = self.shards.clone().count();
        let Ok(runners) = self.manager.runners.try_lock() else {
            return (self.last.load(Ordering::Relaxed), expected);
        };
        let up = self
            .shards
            .clone()
            .filter(|shard| {
                runners
                    .get(&ShardId(*shard))
                    .is_some_and(|runner| runner.stage == ConnectionStage::Connected)
            })
            .count();
        self.last.store(up, Ordering::Relaxed);
        (up, expected)
    }
}

/// The gateway client of one host, built and not started yet.
pub struct Gateway {
    client: Client,
    handler: Arc<Handler>,
    connection: Arc<Connection>,
    shards: RangeInclusive<u32>,
    total: u32,
}

/// A running gateway; [`Running::stop`] closes its shards.
pub struct Running {
    shards: Arc<ShardManager>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Closes every shard's connection and stops the background work.
    pub async fn stop(self) {
        self.shards.shutdown_all().await;
        for task in self.tasks {
            task.abort();
        }
    }
}

impl Gateway {
    /// Checks the token with Discord (`GET /users/@me`) and builds the client with the
    /// intents the loaded plugins need.
    pub async fn build(
        config: &DiscordConfig,
        registry: &Registry,
        answers: Arc<Answers>,
    ) -> anyhow::Result<Self> {
        let http = config.http();
        let me = http.get_current_user().await.map_err(|error| {
            let refused = matches!(
                &error,
                serenity::Error::Http(http) if http.status_code().is_some_and(|s| s.as_u16() == 401)
            );
            if refused {
                anyhow::anyhow!("Discord refused the bot token (401 Unauthorized): check discord.token / DISCORD_TOKEN")
            } else {
                anyhow::Error::new(error).context("reaching Discord's API to check the bot token")
            }
        })?;
        tracing::info!(platform = "discord", bot = %me.name, id = %me.id, "token accepted");
        let intents = intents(&registry.snapshot());
        let commands_guild = config.commands_guild.parse::<u64>().ok().map(GuildId::new);
        let shards = config.shard_range();
        let handler = Arc::new(Handler {
            dispatcher: OnceLock::new(),
            answers,
            bot: me.id.to_string(),
            commands: (*shards.start() == 0).then(|| Arc::new(Commands::new(commands_guild))),
        });
        // Guilds, their roles and channels, for permissions: no messages, no users.
        let mut cache = CacheSettings::default();
        cache.max_messages = 0;
        cache.cache_users = false;
        // One REST client (and rate limiter) for the gateway's needs and the actions.
        let client = serenity::all::ClientBuilder::new_with_http(http, intents)
            .cache_settings(cache)
            .event_handler_arc(Arc::clone(&handler))
            .await
            .context("building the Discord client")?;
        let connection = Arc::new(Connection {
            manager: Arc::clone(&client.shard_manager),
            shards: shards.clone(),
            last: AtomicUsize::new(0),
        });
        Ok(Self {
            client,
            handler,
            connection,
            shards,
            total: config.shards,
        })
    }

    /// The REST client the gateway uses; actions go through it too.
    pub fn http(&self) -> Arc<Http> {
        Arc::clone(&self.client.http)
    }

    /// The connection state of this host's shards.
    pub fn connection(&self) -> Arc<Connection> {
        Arc::clone(&self.connection)
    }

    /// Connects this host's shards and starts handing their events to `dispatcher`. The
    /// bot's mention becomes a command prefix; on the host that runs shard 0, slash
    /// commands follow the loaded plugins.
    pub fn start(mut self, dispatcher: Arc<Dispatcher>) -> Running {
        let bot = &self.handler.bot;
        dispatcher.address_as(vec![format!("<@{bot}>"), format!("<@!{bot}>")]);
        let _ = self.handler.dispatcher.set(Arc::clone(&dispatcher));
        let shards = Arc::clone(&self.client.shard_manager);
        let mut tasks = Vec::new();
        if let Some(commands) = &self.handler.commands {
            tasks.push(commands.follow(self.http(), Arc::clone(dispatcher.registry())));
        }
        let (first, last, total) = (*self.shards.start(), *self.shards.end(), self.total);
        tasks.push(tokio::spawn(async move {
            // serenity reads `first..last` as including `last`. When every shard has
            // failed for good (intents the portal has not enabled, say), it returns.
            if let Err(error) = self.client.start_shard_range(first..last, total).await {
                tracing::error!(platform = "discord", "gateway stopped: {error}");
            }
        }));
        Running { shards, tasks }
    }
}

/// The intents: guild and direct messages with their content always (prefix commands need
/// it); members and reactions only when a plugin subscribes to them, because members is
/// privileged and both are busy.
pub fn intents(snapshot: &Snapshot) -> GatewayIntents {
    let mut intents = GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT;
    let wants = |kind| snapshot.subscribers(kind).next().is_some();
    if wants(EventType::MemberJoined) || wants(EventType::MemberLeft) {
        intents |= GatewayIntents::GUILD_MEMBERS;
    }
    if wants(EventType::Reaction) {
        intents |=
            GatewayIntents::GUILD_MESSAGE_REACTIONS | GatewayIntents::DIRECT_MESSAGE_REACTIONS;
    }
    intents
}

struct Handler {
    dispatcher: OnceLock<Arc<Dispatcher>>,
    answers: Arc<Answers>,
    bot: String,
    commands: Option<Arc<Commands>>,
}

impl Handler {
    async fn dispatch(&self, event: Event) {
        if let Some(dispatcher) = self.dispatcher.get() {
            dispatcher.dispatch(event).await;
        }
    }
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        tracing::info!(
            platform = "discord",
            shard = ctx.shard_id.0,
            guilds = ready.guilds.len(),
            "ready"
        );
        if let (Some(commands), Some(dispatcher)) = (&self.commands, self.dispatcher.get()) {
            commands
                .sync(&ctx.http, &dispatcher.registry().snapshot())
                .await;
        }
    }

    async fn resume(&self, ctx: Context, _: ResumedEvent) {
        tracing::info!(platform = "discord", shard = ctx.shard_id.0, "resumed");
    }

    async fn shard_stage_update(&self, _: Context, update: ShardStageUpdateEvent) {
        tracing::debug!(
            platform = "discord",
            shard = update.shard_id.0,
            "shard {:?} -> {:?}",
            update.old,
            update.new
        );
    }

    async fn message(&self, ctx: Context, message: DiscordMessage) {
        let Some(dispatcher) = self.dispatcher.get() else {
            return;
        };
        let permissions = permissions(&ctx.cache, &message);
        dispatcher
            .dispatch_with(message_event(&message), permissions)
            .await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: DiscordInteraction) {
        let Some(dispatcher) = self.dispatcher.get() else {
            return;
        };
        let kind = match &interaction {
            DiscordInteraction::Command(_) => APPLICATION_COMMAND,
            DiscordInteraction::Component(_) => MESSAGE_COMPONENT,
            _ => {
                tracing::info!(platform = "discord", "interaction type not handled");
                return;
            }
        };
        let (id, token) = (interaction.id(), interaction.token().to_owned());
        // One reading of interactions for both ways they arrive: Discord's JSON (serenity
        // writes the type in its enum, not in the object).
        let raw = serde_json::to_value(&interaction).and_then(|mut raw| {
            raw["type"] = kind.into();
            serde_json::from_value(raw)
        });
        let raw = match raw {
            Ok(raw) => raw,
            Err(error) => {
                tracing::warn!(platform = "discord", "interaction not understood: {error}");
                return;
            }
        };
        let Some(answer) = self.answers.respond(dispatcher, raw).await else {
            return;
        };
        if let Err(error) = ctx
            .http
            .create_interaction_response(id, &token, &answer, Vec::new())
            .await
        {
            tracing::warn!(platform = "discord", "interaction answer refused: {error}");
        }
    }

    async fn reaction_add(&self, _: Context, reaction: DiscordReaction) {
        if let Some(event) = reaction_event(&reaction, true) {
            self.dispatch(event).await;
        }
    }

    async fn reaction_remove(&self, _: Context, reaction: DiscordReaction) {
        if let Some(event) = reaction_event(&reaction, false) {
            self.dispatch(event).await;
        }
    }

    async fn guild_member_addition(&self, _: Context, member: Member) {
        let roles = member.roles.iter().map(ToString::to_string).collect();
        let event = member_event(
            &member.guild_id,
            &member.user,
            roles,
            EventKind::MemberJoined,
        );
        self.dispatch(event).await;
    }

    async fn guild_member_removal(
        &self,
        _: Context,
        guild: GuildId,
        user: DiscordUser,
        _: Option<Member>,
    ) {
        let event = member_event(&guild, &user, Vec::new(), EventKind::MemberLeft);
        self.dispatch(event).await;
    }
}

/// What the author may do in the message's channel, from the guild's roles, owner and the
/// channel's overwrites as the cache holds them (from `GUILD_CREATE` and its updates);
/// `None` where it cannot tell (a direct message, a guild not cached yet): commands that
/// need permissions are then refused.
fn permissions(cache: &Cache, message: &DiscordMessage) -> Option<Permissions> {
    let guild = cache.guild(message.guild_id?)?;
    let member = message.member.as_deref()?;
    let channel = guild.channels.get(&message.channel_id).or_else(|| {
        // A thread takes its parent channel's overwrites.
        let thread = guild.threads.iter().find(|t| t.id == message.channel_id)?;
        guild.channels.get(&thread.parent_id?)
    })?;
    let held = guild.partial_member_permissions_in(channel, message.author.id, member);
    Some(Permissions(held.bits()))
}

/// A Discord message as a normalized message event; webhooks count as bots.
pub fn message_event(message: &DiscordMessage) -> Event {
    let roles = message
        .member
        .as_ref()
        .map(|member| member.roles.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    Event {
        id: message.id.to_string(),
        platform: Platform::Discord,
        guild_id: message.guild_id.map(|id| id.to_string()),
        channel_id: message.channel_id.to_string(),
        author: User {
            id: message.author.id.to_string(),
            name: message.author.name.clone(),
            is_bot: message.author.bot || message.webhook_id.is_some(),
            roles,
            locale: None,
        },
        // The snowflake holds the creation time to the millisecond; `timestamp` to the second.
        timestamp_ms: (message.id.get() >> 22) + DISCORD_EPOCH_MS,
        received_ms: now_ms(),
        guild_locale: None,
        kind: EventKind::Message(Message {
            id: message.id.to_string(),
            text: message.content.clone(),
            reply_to: message
                .message_reference
                .as_ref()
                .and_then(|reference| reference.message_id)
                .map(|id| id.to_string()),
            mentions: message
                .mentions
                .iter()
                .map(|user| user.id.to_string())
                .collect(),
            attachments: message
                .attachments
                .iter()
                .map(|attachment| Attachment {
                    kind: media_kind(attachment.content_type.as_deref()),
                    id: attachment.id.to_string(),
                    url: Some(attachment.url.clone()),
                    mime_type: attachment.content_type.clone(),
                    filename: Some(attachment.filename.clone()),
                    size_bytes: Some(u64::from(attachment.size)),
                    caption: attachment.description.clone(),
                })
                .collect(),
            location: None,
            contacts: Vec::new(),
        }),
    }
}

fn media_kind(content_type: Option<&str>) -> MediaKind {
    match content_type.and_then(|mime| mime.split('/').next()) {
        Some("image") => MediaKind::Image,
        Some("audio") => MediaKind::Audio,
        Some("video") => MediaKind::Video,
        _ => MediaKind::Document,
    }
}

fn reaction_event(reaction: &DiscordReaction, added: bool) -> Option<Event> {
    let user = reaction.user_id?;
    let (name, is_bot, roles) = match &reaction.member {
        Some(member) => (
            member.user.name.clone(),
            member.user.bot,
            member.roles.iter().map(ToString::to_string).collect(),
        ),
        None => (String::new(), false, Vec::new()),
    };
    Some(Event {
        id: String::new(),
        platform: Platform::Discord,
        guild_id: reaction.guild_id.map(|id| id.to_string()),
        channel_id: reaction.channel_id.to_string(),
        author: User {
            id: user.to_string(),
            name,
            is_bot,
            roles,
            locale: None,
        },
        timestamp_ms: now_ms(),
        received_ms: now_ms(),
        guild_locale: None,
        kind: EventKind::Reaction(Reaction {
            message_id: reaction.message_id.to_string(),
            emoji: reaction.emoji.to_string(),
            added,
        }),
    })
}

fn member_event(guild: &GuildId, user: &DiscordUser, roles: Vec<String>, kind: EventKind) -> Event {
    Event {
        id: String::new(),
        platform: Platform::Discord,
        guild_id: Some(guild.to_string()),
        channel_id: String::new(),
        author: User {
            id: user.id.to_string(),
            name: user.name.clone(),
            is_bot: user.bot,
            roles,
            locale: None,
        },
        timestamp_ms: now_ms(),
        received_ms: now_ms(),
        guild_locale: None,
        kind,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| u64::try_from(now.as_millis()).unwrap_or(u64::MAX))
}
