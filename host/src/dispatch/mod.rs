//! From a normalized event to the plugins that handle it, and from their actions to the
//! platforms: commands go to the plugin that declared them (arguments parsed and typed
//! here), other events to the plugins subscribed to their kind, button clicks back to the
//! plugin that sent the buttons.

pub mod args;
pub mod cooldowns;
mod flight;
pub mod guild_admin;
pub mod help;
pub mod limits;
pub mod timers;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use futures::future::{BoxFuture, join_all};

use serde::{Deserialize, Serialize};

pub use crate::capabilities::messaging::{MediaError, MediaFile, SendFailure};
use crate::{
    bindings::types::{
        Action, Command, CommandSource, CommandSpec, Destination, Event, EventKind, EventType,
        Interaction, Message, Outgoing, Platform, PluginError, Value,
    },
    capabilities::{
        Capability,
        config_store::host_settings::{self, GuildSettings},
        messaging,
    },
    dispatch::limits::{Limits, Refusal, Tell},
    permissions::Permissions,
    runtime::{
        Failure, Plugin, Registry,
        registry::{HostCommand, Snapshot},
    },
};

/// The `[bot]` section: how the bot reads messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    /// The command prefix, `!` by default.
    pub prefix: String,
    /// Ignore messages written by bots (the default), so two bots cannot loop.
    pub ignore_bots: bool,
    /// The command that answers a message addressed to the bot (`@bot how are you?`) that
    /// names no command: it gets the whole text as its arguments. Empty: such messages are
    /// plain messages.
    pub mention_command: String,
    /// The host's help command (`!help`, `/help`), built from the manifests. Empty: no
    /// help, and a plugin may declare `help` itself.
    pub help_command: String,
    /// Whole messages that ask for help where people talk to the bot alone (direct chats,
    /// WhatsApp), in any case.
    pub help_words: Vec<String>,
    /// The guild admins' commands `plugins`, `plugin enable|disable` and `command
    /// enable|disable`. False: none, and plugins may declare those names.
    pub guild_commands: bool,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            prefix: "!".to_owned(),
            ignore_bots: true,
            mention_command: String::new(),
            help_command: "help".to_owned(),
            help_words: vec!["help".to_owned(), "ayuda".to_owned()],
            guild_commands: true,
        }
    }
}

impl BotConfig {
    /// The commands the host answers itself, which no plugin may declare.
    pub fn host_commands(&self) -> Vec<HostCommand> {
        let mut commands = Vec::new();
        if !self.help_command.is_empty() {
            commands.push(HostCommand {
                spec: help::spec(&self.help_command),
                key: "bot.help_command",
                slash: true,
            });
        }
        if self.guild_commands {
            commands.extend(guild_admin::specs().into_iter().map(|spec| HostCommand {
                spec,
                key: "bot.guild_commands",
                slash: false,
            }));
        }
        commands
    }
}

/// Where an event happened, as routing sees it: the guild's settings and what the user may
/// do there.
pub(crate) struct Here<'a> {
    event: &'a Event,
    settings: &'a GuildSettings,
    permissions: Option<Permissions>,
    prefix: &'a str,
}

impl Here<'_> {
    /// Whether the plugin is on here: outside a guild every plugin is; in one, as its
    /// admins switched it, else its default.
    fn plugin_on(&self, plugin: &Plugin) -> bool {
        self.event.guild_id.is_none()
            || (self.settings.switches).plugin_on(plugin.name(), plugin.on_by_default())
    }

    /// Whether the command is on in this guild and channel.
    fn command_on(&self, spec: &CommandSpec) -> bool {
        self.event.guild_id.is_none()
            || (self.settings.switches).command_on(&spec.name, &self.event.channel_id)
    }

    /// Whether the user holds what the command requires.
    fn may_run(&self, spec: &CommandSpec) -> bool {
        authorize(
            self.event,
            spec,
            &self.settings.staff_roles,
            self.permissions,
        )
        .is_ok()
    }

    /// Whether the user may run one of the host's own commands.
    fn may_run_host(&self, spec: &CommandSpec) -> bool {
        spec.permissions.is_empty() || guild_admin::may_switch(self)
    }

    fn is_console(&self) -> bool {
        self.event.platform == Platform::Console
    }

    fn is_staff(&self) -> bool {
        is_staff(self.event, &self.settings.staff_roles)
    }
}

/// The name the host uses for its own replies (usage, apologies).
pub const HOST: &str = host_settings::HOST;

/// Separates the plugin name from a plugin's own id in button and menu ids.
const ID_SEPARATOR: char = '/';

/// Where a platform adapter carries out actions.
pub trait Outlet: Send + Sync {
    /// The platform this outlet reaches.
    fn platform(&self) -> Platform;

    /// Whether the platform is reachable now (`/readyz`); an outlet with no connection to
    /// lose is always.
    fn connected(&self) -> bool {
        true
    }

    /// The platform's own traffic counters since the host started (`/metrics`:
    /// `wasmbot_platform_total{platform, what}`).
    fn counts(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Carries out one action of `plugin`, answering `origin`; a failure says what it means
    /// to the plugin (a plain error is an outage).
    fn deliver<'a>(
        &'a self,
        origin: &'a Event,
        plugin: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<(), SendFailure>>;

    /// Downloads a media file a user sent on this platform.
    fn download<'a>(&'a self, media_id: &'a str) -> BoxFuture<'a, Result<MediaFile, MediaError>> {
        let _ = media_id;
        let platform = self.platform().name();
        Box::pin(async move {
            Err(MediaError::NotFound(format!(
                "{platform} has no media to download"
            )))
        })
    }
}

/// Where the actions a plugin takes while its handler runs go: the platforms' outlets,
/// answering the event being handled.
pub struct Messenger {
    outlets: Outlets,
    origin: Arc<Event>,
}

impl messaging::Messenger for Messenger {
    fn origin(&self) -> &Event {
        &self.origin
    }

    fn act<'a>(
        &'a self,
        plugin: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(deliver_one(&self.outlets, &self.origin, plugin, action))
    }

    fn download<'a>(&'a self, media_id: &'a str) -> BoxFuture<'a, Result<MediaFile, MediaError>> {
        let platform = self.origin.platform;
        Box::pin(async move {
            match self.outlets.iter().find(|o| o.platform() == platform) {
                Some(outlet) => outlet.download(media_id).await,
                None => Err(MediaError::Unavailable(format!(
                    "no {} connection in this host",
                    platform.name()
                ))),
            }
        })
    }
}

type Outlets = Arc<Vec<Arc<dyn Outlet>>>;

/// Sends one action to its platform's outlet, its button ids namespaced by the plugin.
async fn deliver_one(
    outlets: &Outlets,
    event: &Event,
    plugin: &str,
    mut action: Action,
) -> Result<(), SendFailure> {
    namespace_ids(&mut action, plugin);
    let platform = target_platform(event, &action);
    let Some(outlet) = outlets.iter().find(|o| o.platform() == platform) else {
        let error = anyhow::anyhow!("no {} connection in this host", platform.name());
        return Err(SendFailure::Unavailable(error));
    };
    outlet.deliver(event, plugin, action).await
}

/// What one plugin made of one event.
#[derive(Debug)]
pub struct Outcome {
    /// The plugin's name.
    pub plugin: String,
    /// Its actions (already delivered), or why it failed (already logged).
    pub result: Result<Vec<Action>, Failure>,
}

/// Routes events to plugins and their actions to outlets.
pub struct Dispatcher {
    registry: Arc<Registry>,
    outlets: Outlets,
    bot: BotConfig,
    next_id: AtomicU64,
    limits: Arc<Limits>,
    flight: flight::Flight,
    /// Ways of addressing the bot that work as a command prefix (its mentions).
    addressed: arc_swap::ArcSwap<Vec<String>>,
}

impl Dispatcher {
    /// A dispatcher over `registry` applying the operator's `limits`, with no platform
    /// connected yet.
    pub fn new(registry: Arc<Registry>, bot: BotConfig, limits: Limits) -> Self {
        Self {
            registry,
            outlets: Arc::new(Vec::new()),
            bot,
            next_id: AtomicU64::new(1),
            limits: Arc::new(limits),
            flight: flight::Flight::default(),
            addressed: arc_swap::ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// The operator's rate limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Each connected platform, and whether it is reachable now.
    pub fn platforms(&self) -> Vec<(&'static str, bool)> {
        self.outlets
            .iter()
            .map(|outlet| (outlet.platform().name(), outlet.connected()))
            .collect()
    }

    /// Each platform's traffic counters.
    pub fn platform_counts(&self) -> Vec<(&'static str, Vec<(&'static str, u64)>)> {
        self.outlets
            .iter()
            .map(|outlet| (outlet.platform().name(), outlet.counts()))
            .filter(|(_, counts)| !counts.is_empty())
            .collect()
    }

    /// Events being handled now.
    pub fn in_flight(&self) -> usize {
        self.flight.count()
    }

    /// Stops taking events and waits, at most `grace`, for those in flight; returns how
    /// many were still running when it gave up (0: all finished).
    pub async fn drain(&self, grace: std::time::Duration) -> usize {
        self.flight.close(grace).await
    }

    /// Connects a platform's outlet; actions for platforms without one are dropped and logged.
    pub fn with_outlet(mut self, outlet: Arc<dyn Outlet>) -> Self {
        Arc::make_mut(&mut self.outlets).push(outlet);
        self
    }

    /// The settings of the event's guild (prefix, staff roles, switches), read through the
    /// config store: a cache hit at steady state, no query per event. Outside a guild, or
    /// with no store, the configured prefix, no staff and nothing switched.
    async fn guild_settings(&self, event: &Event) -> GuildSettings {
        let store = &self.registry.runtime().backends().config_store;
        match (store, &event.guild_id) {
            (Some(store), Some(guild)) => GuildSettings::read(store, guild, &self.bot.prefix).await,
            _ => GuildSettings {
                prefix: self.bot.prefix.clone(),
                ..GuildSettings::default()
            },
        }
    }

    /// Makes messages that start with one of `mentions` (the bot's, once a platform knows
    /// it) commands, as with the prefix: `@bot ping` is `!ping`.
    pub fn address_as(&self, mentions: Vec<String>) {
        self.addressed.store(Arc::new(mentions));
    }

    /// The command in `text`, after the guild's prefix or a mention of the bot.
    fn command_in<'t>(&self, text: &'t str, prefix: &str) -> Option<(&'t str, &'t str)> {
        split_command(text, prefix)
            .or_else(|| split_command(self.after_mention(text)?.trim_start(), ""))
    }

    /// What follows a mention of the bot that starts `text`.
    fn after_mention<'t>(&self, text: &'t str) -> Option<&'t str> {
        let text = text.trim_start();
        self.addressed
            .load()
            .iter()
            .find_map(|mention| text.strip_prefix(mention.as_str()))
    }

    /// The command a message names, with its raw arguments; else, for a message addressed
    /// to the bot, the operator's `mention_command` with the whole text.
    /// Commands switched off here are not found: the message is plain chat.
    fn route<'s, 't>(
        &self,
        snapshot: &'s Snapshot,
        here: &Here<'_>,
        text: &'t str,
    ) -> Option<((&'s Arc<Plugin>, &'s CommandSpec), &'t str)> {
        let on = |(plugin, spec): (&'s Arc<Plugin>, &'s CommandSpec)| {
            (here.plugin_on(plugin) && here.command_on(spec)).then_some((plugin, spec))
        };
        let named = self
            .command_in(text, here.prefix)
            .and_then(|(name, raw)| Some((on(snapshot.command(&name.to_lowercase())?)?, raw)));
        named.or_else(|| {
            let rest = self.after_mention(text)?;
            let command = on(snapshot.command(&self.bot.mention_command)?)?;
            Some((command, rest))
        })
    }

    /// The plugins it routes to.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// A fresh event id, for platforms that have none of their own.
    pub fn next_event_id(&self) -> String {
        format!("ev-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Handles one event: runs the plugins it concerns and delivers their actions. Returns
    /// what each plugin did; failures have already been logged and counted.
    /// After [`Dispatcher::drain`] began, events are refused (logged, nothing runs).
    pub async fn dispatch(&self, event: Event) -> Vec<Outcome> {
        self.dispatch_with(event, None).await
    }

    /// [`Dispatcher::dispatch`] for a platform that reports what its user may do where the
    /// event happened: commands that require platform permissions are checked against them.
    pub async fn dispatch_with(
        &self,
        mut event: Event,
        permissions: Option<Permissions>,
    ) -> Vec<Outcome> {
        if event.author.is_bot && self.bot.ignore_bots {
            return Vec::new();
        }
        let Some(_in_flight) = self.flight.enter() else {
            tracing::info!(event = %event.id, "event not taken: the host is shutting down");
            return Vec::new();
        };
        if event.id.is_empty() {
            event.id = self.next_event_id();
        }
        if event.received_ms == 0 {
            event.received_ms = u64::try_from(crate::db::now_ms()).unwrap_or_default();
        }
        let settings = self.guild_settings(&event).await;
        // Help and the host's answers to slash commands name the prefix forms too.
        let prefix = match &event.kind {
            EventKind::Message(_) | EventKind::Command(_) => settings.prefix.as_str(),
            _ => "",
        };
        let tell = match &event.kind {
            EventKind::Message(message) if self.command_in(&message.text, prefix).is_some() => {
                Tell::Once
            }
            EventKind::Command(_) | EventKind::Interaction(_) => Tell::Once,
            _ => Tell::Never,
        };
        if let Err(refusal) = self.limits.admit(&event, tell).await {
            self.rate_limited(&event, refusal).await;
            return Vec::new();
        }
        let snapshot = self.registry.snapshot();
        let here = Here {
            event: &event,
            settings: &settings,
            permissions,
            prefix,
        };
        match &event.kind {
            EventKind::Message(message) => self.message(&snapshot, &here, message).await,
            EventKind::Command(command) => self.command(&snapshot, &here, command).await,
            EventKind::Interaction(interaction) => {
                self.interaction(&snapshot, &here, interaction).await
            }
            _ => {
                let unheard = "no plugin subscribes to this kind of event";
                self.broadcast(&snapshot, &here, None, Some(unheard)).await
            }
        }
    }

    /// A message: one of the host's commands (after the prefix only: a mention of the bot
    /// is for `mention_command`), a plugin's command (its owner gets it), a help word in a
    /// direct chat, or plain chat. The plugins watching messages see the text of commands
    /// too.
    async fn message(
        &self,
        snapshot: &Snapshot,
        here: &Here<'_>,
        message: &Message,
    ) -> Vec<Outcome> {
        let event = here.event;
        if let Some((name, raw)) = split_command(&message.text, here.prefix)
            && let Some(host) = snapshot.host_command(&name.to_lowercase())
        {
            let answer = async {
                let answer = self
                    .host_command(snapshot, here, &host.spec.name, raw)
                    .await;
                self.host_reply(event, answer).await;
            };
            let (_, watchers) = tokio::join!(answer, self.broadcast(snapshot, here, None, None));
            return watchers;
        }
        if event.guild_id.is_none() && self.is_help_word(&message.text) {
            let help = &self.bot.help_command;
            let answer = help::answer(snapshot, here, help, "");
            self.host_reply(event, answer).await;
            return Vec::new();
        }
        let Some(((plugin, spec), raw)) = self.route(snapshot, here, &message.text) else {
            let unheard = "no command matched and no plugin takes messages";
            return self.broadcast(snapshot, here, None, Some(unheard)).await;
        };
        let args = match args::parse(spec, here.prefix, raw) {
            Ok(args) => args,
            Err(usage) => {
                self.host_reply(event, usage).await;
                return Vec::new();
            }
        };
        let command = Command {
            name: spec.name.clone(),
            args,
            raw_args: raw.trim().to_owned(),
            source: CommandSource::Prefix(here.prefix.to_owned()),
            message_id: Some(message.id.clone()),
        };
        let as_command = Event {
            kind: EventKind::Command(command),
            ..event.clone()
        };
        let (mut outcomes, others) = tokio::join!(
            self.run_command(Arc::clone(plugin), spec, &as_command, here),
            self.broadcast(snapshot, here, Some(plugin.name()), None),
        );
        outcomes.extend(others);
        outcomes
    }

    /// A command the platform parsed (a slash command): the host's, or its plugin's when it
    /// is on here.
    async fn command(
        &self,
        snapshot: &Snapshot,
        here: &Here<'_>,
        command: &Command,
    ) -> Vec<Outcome> {
        let event = here.event;
        if let Some(host) = snapshot.host_command(&command.name) {
            // The host's commands take their text as one option.
            let raw = match command.args.first().map(|arg| &arg.value) {
                Some(Value::Text(text)) => text.as_str(),
                _ => command.raw_args.as_str(),
            };
            let answer = self
                .host_command(snapshot, here, &host.spec.name, raw)
                .await;
            self.host_reply(event, answer).await;
            return Vec::new();
        }
        let Some((plugin, spec)) = snapshot.command(&command.name) else {
            unhandled(event, "no plugin provides this command");
            return Vec::new();
        };
        if !here.plugin_on(plugin) || !here.command_on(spec) {
            // A slash command must be answered, or Discord shows a failure.
            let text = format!("`/{}` is switched off here.", spec.name);
            self.host_reply(event, text).await;
            return Vec::new();
        }
        let mut named = event.clone();
        if let EventKind::Command(command) = &mut named.kind {
            command.name = spec.name.clone();
        }
        self.run_command(Arc::clone(plugin), spec, &named, here)
            .await
    }

    /// A click: back to the plugin whose control it was, when it is on here; a control of
    /// no plugin goes to the plugins taking interactions.
    async fn interaction(
        &self,
        snapshot: &Snapshot,
        here: &Here<'_>,
        interaction: &Interaction,
    ) -> Vec<Outcome> {
        let event = here.event;
        let Some((owner, id)) = interaction.custom_id.split_once(ID_SEPARATOR) else {
            // Not one of ours (a platform-native control): for the subscribers.
            let unheard = "not a plugin's control and no plugin takes interactions";
            return self.broadcast(snapshot, here, None, Some(unheard)).await;
        };
        let Some(plugin) = snapshot.plugin(owner).cloned() else {
            tracing::info!(
                plugin = owner,
                "interaction for a plugin that is not loaded ignored"
            );
            return Vec::new();
        };
        if !here.plugin_on(&plugin) {
            unhandled(event, "its plugin is switched off here");
            return Vec::new();
        }
        let mut clicked = event.clone();
        if let EventKind::Interaction(interaction) = &mut clicked.kind {
            interaction.custom_id = id.to_owned();
        }
        let admitted = self
            .limits
            .admit_plugin(&clicked, plugin.name(), Tell::Once);
        if let Err(refusal) = admitted.await {
            self.rate_limited(&clicked, refusal).await;
            return Vec::new();
        }
        self.run(vec![plugin], &clicked).await
    }

    /// The answer to one of the host's own commands.
    async fn host_command(
        &self,
        snapshot: &Snapshot,
        here: &Here<'_>,
        name: &str,
        raw: &str,
    ) -> String {
        if name == self.bot.help_command {
            return help::answer(snapshot, here, &self.bot.help_command, raw);
        }
        let store = self.registry.runtime().backends().config_store.as_deref();
        guild_admin::run(store, snapshot, here, name, raw).await
    }

    /// Whether a whole message asks for help (`help`, `ayuda`).
    fn is_help_word(&self, text: &str) -> bool {
        let text = text.trim();
        !self.bot.help_command.is_empty()
            && self
                .bot
                .help_words
                .iter()
                .any(|word| word.eq_ignore_ascii_case(text))
    }

    /// Hands a due timer to the plugin that set it; its answer goes to the conversation the
    /// timer was set in (the event's). A guild that switched the plugin off gets nothing.
    /// None when the host no longer takes events (it is shutting down): the timer is left
    /// for another host.
    pub async fn dispatch_timer(&self, plugin: Arc<Plugin>, event: Event) -> Option<Vec<Outcome>> {
        let _in_flight = self.flight.enter()?;
        let settings = self.guild_settings(&event).await;
        let here = Here {
            event: &event,
            settings: &settings,
            permissions: None,
            prefix: &settings.prefix,
        };
        if !here.plugin_on(&plugin) {
            tracing::debug!(plugin = plugin.name(), event = %event.id, "timer skipped: its plugin is switched off in this guild");
            return Some(Vec::new());
        }
        Some(self.run(vec![plugin], &event).await)
    }

    /// Runs a command on its plugin, once the invoking user is allowed to use it and it is
    /// within its cooldown and the operator's limits.
    async fn run_command(
        &self,
        plugin: Arc<Plugin>,
        spec: &CommandSpec,
        event: &Event,
        here: &Here<'_>,
    ) -> Vec<Outcome> {
        if let Err(refusal) = authorize(event, spec, &here.settings.staff_roles, here.permissions) {
            self.host_reply(event, refusal).await;
            return Vec::new();
        }
        let admitted = async {
            self.limits
                .admit_cooldown(event, plugin.name(), spec)
                .await?;
            self.limits.admit_command(event, &spec.name).await?;
            self.limits
                .admit_plugin(event, plugin.name(), Tell::Once)
                .await
        };
        if let Err(refusal) = admitted.await {
            self.rate_limited(event, refusal).await;
            return Vec::new();
        }
        self.run(vec![plugin], event).await
    }

    /// An event over one of the operator's limits: the user hears it once per window.
    async fn rate_limited(&self, event: &Event, refusal: Refusal) {
        tracing::debug!(
            event = %event.id,
            rule = %refusal.rule,
            retry_after_ms = refusal.retry_after.as_millis() as u64,
            "event over a rate limit"
        );
        if let Some(notice) = refusal.notice {
            self.host_reply(event, notice).await;
        }
    }

    /// Runs the plugins subscribed to the event's kind and on here, but `except`. When none
    /// runs, the event leaves a debug line saying `unheard` (none: another plugin has it).
    async fn broadcast(
        &self,
        snapshot: &Snapshot,
        here: &Here<'_>,
        except: Option<&str>,
        unheard: Option<&str>,
    ) -> Vec<Outcome> {
        let event = here.event;
        let Some(kind) = EventType::of(&event.kind) else {
            return Vec::new();
        };
        let mut targets = Vec::new();
        let mut over_limit = 0;
        for plugin in snapshot
            .subscribers(kind)
            .filter(|plugin| Some(plugin.name()) != except && here.plugin_on(plugin))
        {
            // Nobody asked these plugins: over their limit they skip the event quietly.
            let admitted = self.limits.admit_plugin(event, plugin.name(), Tell::Never);
            match admitted.await {
                Ok(()) => targets.push(Arc::clone(plugin)),
                Err(_) => over_limit += 1,
            }
        }
        if let Some(unheard) = unheard.filter(|_| targets.is_empty()) {
            match over_limit {
                0 => unhandled(event, unheard),
                _ => unhandled(event, "every plugin that takes it is over its rate limit"),
            }
        }
        self.run(targets, event).await
    }

    /// Runs the plugins side by side; each one's failure stays its own.
    async fn run(&self, plugins: Vec<Arc<Plugin>>, event: &Event) -> Vec<Outcome> {
        join_all(plugins.iter().map(|plugin| async move {
            // Only plugins that may act mid-handler get a copy of the event to act on.
            let messenger = plugin.may(Capability::Messaging).then(|| {
                Arc::new(Messenger {
                    outlets: Arc::clone(&self.outlets),
                    origin: Arc::new(event.clone()),
                }) as Arc<dyn messaging::Messenger>
            });
            let result = plugin.handle_with(event, messenger).await;
            match &result {
                Ok(actions) => self.deliver(event, plugin.name(), actions.clone()).await,
                Err(failure) => self.explain(event, plugin.name(), failure).await,
            }
            Outcome {
                plugin: plugin.name().to_owned(),
                result,
            }
        }))
        .await
    }

    /// Tells the user whose command or click failed what happened, without internals.
    /// Failures on events nobody asked for (plain messages, joins) stay in the logs.
    async fn explain(&self, event: &Event, plugin: &str, failure: &Failure) {
        let what = match &event.kind {
            EventKind::Command(command) => format!("`{}`", command.name),
            EventKind::Interaction(_) => "That".to_owned(),
            _ => return,
        };
        let text = match failure {
            Failure::Plugin(PluginError::InvalidInput(message)) => message.clone(),
            Failure::Plugin(PluginError::Unavailable(_)) => {
                format!("{what} is unavailable right now; please try again later.")
            }
            _ => format!(
                "Sorry, {what} failed. The operator can find why in the logs ({plugin}, event {}).",
                event.id
            ),
        };
        self.host_reply(event, text).await;
    }

    /// The host's own answer (a refusal, a usage line, a notice, an apology): for the asker
    /// only where the platform can hide it from others (an interaction's answer); a message
    /// in a channel stays one.
    async fn host_reply(&self, event: &Event, text: String) {
        let mut reply = Outgoing::text_only(text);
        reply.ephemeral = true;
        self.deliver(event, HOST, vec![Action::Reply(reply)]).await;
    }

    /// Sends each action to its platform's outlet, in order. One that cannot go (no outlet
    /// for its platform, or the platform refused it) is logged and the rest still go.
    async fn deliver(&self, event: &Event, plugin: &str, actions: Vec<Action>) {
        for action in actions {
            if let Err(error) = deliver_one(&self.outlets, event, plugin, action).await {
                tracing::warn!(plugin, event = %event.id, "action dropped: {error:#}");
            }
        }
    }
}

/// An event that reached no plugin: worth a line when wondering why the bot kept quiet.
fn unhandled(event: &Event, why: &str) {
    tracing::debug!(
        event = %event.id,
        platform = event.platform.name(),
        "event not handled: {why}"
    );
}

/// Checks a command's requirements against the invoking user. The console's user is the
/// operator at the keyboard. Staff-only commands need one of the guild's staff roles.
/// Platform permissions are checked against what the platform reported; where it reported
/// nothing, a command that needs them is refused rather than run for anyone.
fn authorize(
    event: &Event,
    spec: &CommandSpec,
    staff_roles: &[String],
    permissions: Option<Permissions>,
) -> Result<(), String> {
    if event.platform == Platform::Console {
        return Ok(());
    }
    let staff = || is_staff(event, staff_roles);
    let permitted = || {
        spec.permissions.is_empty() || permissions.is_some_and(|held| held.grant(&spec.permissions))
    };
    if (spec.staff_only && !staff()) || !permitted() {
        return Err(format!("You are not allowed to use `{}` here.", spec.name));
    }
    Ok(())
}

/// Whether the event's author holds one of the guild's staff roles.
fn is_staff(event: &Event, staff_roles: &[String]) -> bool {
    (event.author.roles.iter()).any(|role| staff_roles.contains(role))
}

/// `!roll 2 6` → `("roll", " 2 6")` when the text starts with the prefix and a name.
fn split_command<'t>(text: &'t str, prefix: &str) -> Option<(&'t str, &'t str)> {
    let after = text.trim_start().strip_prefix(prefix)?;
    let end = after.find(char::is_whitespace).unwrap_or(after.len());
    let name = &after[..end];
    (!name.is_empty()).then(|| (name, &after[end..]))
}

fn target_platform(event: &Event, action: &Action) -> Platform {
    match action {
        Action::Send(send) => match &send.to {
            Destination::Channel(channel) => channel.platform,
            Destination::Direct(user) => user.platform,
        },
        _ => event.platform,
    }
}

/// Prefixes button and menu ids with the plugin's name, so clicks find their way back.
fn namespace_ids(action: &mut Action, plugin: &str) {
    let Some(message) = action.outgoing_mut() else {
        return;
    };
    for button in &mut message.buttons {
        if button.url.is_none() {
            button.id = format!("{plugin}{ID_SEPARATOR}{}", button.id);
        }
    }
    if let Some(menu) = &mut message.menu {
        menu.id = format!("{plugin}{ID_SEPARATOR}{}", menu.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_need_the_prefix_and_a_name() {
        assert_eq!(split_command("!roll 2 6", "!"), Some(("roll", " 2 6")));
        assert_eq!(split_command("  !ping", "!"), Some(("ping", "")));
        assert_eq!(split_command("! ping", "!"), None);
        assert_eq!(split_command("ping", "!"), None);
        assert_eq!(split_command("bot, ping", "bot, "), Some(("ping", "")));
    }

    #[test]
    fn staff_only_commands_need_a_staff_role_and_permissions_an_adapter() {
        let user = |roles: &[&str]| crate::bindings::types::User {
            id: "u".into(),
            name: "u".into(),
            is_bot: false,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            locale: None,
        };
        let event = |platform, roles: &[&str]| Event {
            id: "e".into(),
            platform,
            guild_id: Some("g".into()),
            channel_id: "c".into(),
            author: user(roles),
            timestamp_ms: 0,
            received_ms: 0,
            guild_locale: None,
            kind: EventKind::MemberJoined,
        };
        let spec = |staff_only, permissions: &[&str]| CommandSpec {
            name: "ban".into(),
            description: String::new(),
            aliases: Vec::new(),
            options: Vec::new(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            staff_only,
            cooldown: None,
            localizations: Vec::new(),
        };
        let staff = ["mods".to_owned()];
        let discord = |roles| event(Platform::Discord, roles);
        let check = |event: Event, spec: CommandSpec, staff: &[String]| {
            authorize(&event, &spec, staff, None).is_ok()
        };
        assert!(check(discord(&["mods"]), spec(true, &[]), &staff));
        assert!(!check(discord(&["fans"]), spec(true, &[]), &staff));
        assert!(!check(discord(&["mods"]), spec(true, &[]), &[]));
        assert!(check(discord(&[]), spec(false, &[]), &[]));
        assert!(!check(
            discord(&["mods"]),
            spec(false, &["ban-members"]),
            &staff
        ));
        let bans = Some(Permissions(1 << 2));
        let ban = spec(false, &["ban-members"]);
        assert!(authorize(&discord(&[]), &ban, &[], bans).is_ok());
        assert!(authorize(&discord(&[]), &ban, &[], Some(Permissions(0))).is_err());
        let console = event(Platform::Console, &[]);
        assert!(authorize(&console, &spec(true, &["ban-members"]), &[], None).is_ok());
    }
}
