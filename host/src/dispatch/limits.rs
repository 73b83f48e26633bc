//! The operator's limits, applied by the dispatcher before any plugin runs: per user, per
//! guild or chat, per command and per plugin. A user over a limit who was talking to the
//! bot (a command, a click) hears about it once per window, not once per message; plain
//! chat over a limit is dropped quietly. The console is exempt: its user is the operator.
//! The limits count in a limiter of their own, so plugins' keys cannot crowd them out.
//!
//! Beside them, the cooldowns plugins declare on their commands (`CommandSpec::cooldown`,
//! counted in [`Cooldowns`]), on every platform, the console included, and whether or not
//! the operator's limits are on.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    bindings::types::{CommandSpec, CooldownScope, Event, EventKind, Platform},
    capabilities::rate_limit::{Decision, LimitConfig, Per, Rate, RateLimitConfig, RateLimiter},
    dispatch::cooldowns::{Cooldowns, Use},
};

/// An event over a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The limit: `user`, `guild`, `command roll`, `plugin dice`.
    pub rule: String,
    /// When the next event will pass.
    pub retry_after: Duration,
    /// What to tell the user: for the first refusal in a window of an event addressed to
    /// the bot.
    pub notice: Option<String>,
}

/// Whether the author of a refused event should hear about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tell {
    /// The event was addressed to the bot (a command, a click): once per window.
    Once,
    /// Plain chat, or a plugin nobody asked: the event is dropped quietly.
    Never,
}

/// The operator's limits over a [`RateLimiter`].
pub struct Limits {
    /// The operator's limits' limiter; none when they are off.
    limiter: Option<Arc<RateLimiter>>,
    /// The plugins' cooldowns, which apply whether the operator's limits are on.
    cooldowns: Cooldowns,
    config: RateLimitConfig,
    refused: Mutex<BTreeMap<String, u64>>,
}

impl Limits {
    /// Limits from `config`, counted by `limiter` (their own); with no limiter, nothing is
    /// limited.
    pub fn new(limiter: Option<Arc<RateLimiter>>, config: RateLimitConfig) -> Self {
        Self {
            cooldowns: Cooldowns::new(None),
            limiter: limiter.filter(|_| config.enabled),
            config,
            refused: Mutex::new(BTreeMap::new()),
        }
    }

    /// The plugins' cooldowns counted by `cooldowns` (across hosts when it counts in Redis)
    /// rather than in this process alone.
    pub fn with_cooldowns(mut self, cooldowns: Cooldowns) -> Self {
        self.cooldowns = cooldowns;
        self
    }

    /// Events refused so far, by rule.
    pub fn refused(&self) -> BTreeMap<String, u64> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The limits on everything a user does: per user, per guild.
    pub async fn admit(&self, event: &Event, tell: Tell) -> Result<(), Refusal> {
        let user = Some(&self.config.user);
        self.apply(event, "user", user, Per::User, tell, || {
            "You are sending messages too fast".to_owned()
        })
        .await?;
        let guild = self.config.guild.as_ref();
        self.apply(event, "guild", guild, Per::Guild, tell, || {
            "This place is sending the bot too many messages".to_owned()
        })
        .await
    }

    /// The limit on one command.
    pub async fn admit_command(&self, event: &Event, command: &str) -> Result<(), Refusal> {
        let limit = self.config.commands.get(command);
        let per = limit.and_then(|l| l.per).unwrap_or(Per::User);
        let rule = format!("command {command}");
        self.apply(event, &rule, limit, per, Tell::Once, || {
            format!("`{command}` is used too often")
        })
        .await
    }

    /// The limit on one plugin.
    pub async fn admit_plugin(
        &self,
        event: &Event,
        plugin: &str,
        tell: Tell,
    ) -> Result<(), Refusal> {
        let limit = self.config.plugins.get(plugin);
        let per = limit.and_then(|l| l.per).unwrap_or(Per::User);
        let rule = format!("plugin {plugin}");
        self.apply(event, &rule, limit, per, tell, || {
            format!("{plugin} is used too often")
        })
        .await
    }

    /// The cooldown `plugin` declared on the command, if any: the first use past it in a
    /// window is told when to try again, the next ones are dropped quietly.
    pub async fn admit_cooldown(
        &self,
        event: &Event,
        plugin: &str,
        spec: &CommandSpec,
    ) -> Result<(), Refusal> {
        let Some(cooldown) = &spec.cooldown else {
            return Ok(());
        };
        let per = match cooldown.per {
            CooldownScope::User => Per::User,
            CooldownScope::Channel => Per::Channel,
            CooldownScope::Guild => Per::Guild,
            CooldownScope::Global => Per::Global,
        };
        let key = format!("{plugin}:{}:{}", spec.name, whose(event, per));
        let window = Duration::from_millis(cooldown.window_ms);
        let Use::Refused { retry_after, first } =
            self.cooldowns.take(&key, cooldown.limit, window).await
        else {
            return Ok(());
        };
        let rule = format!("cooldown {plugin} {}", spec.name);
        self.count_refusal(&rule);
        let seconds = retry_after.as_secs_f64().ceil().max(1.0);
        Err(Refusal {
            rule,
            retry_after,
            notice: first.then(|| {
                format!(
                    "`{}` is cooling down; please wait {seconds} s. (Limit: {} per {} s.)",
                    spec.name,
                    cooldown.limit,
                    window.as_secs_f64()
                )
            }),
        })
    }

    fn count_refusal(&self, rule: &str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(rule.to_owned())
            .or_default() += 1;
    }

    async fn apply(
        &self,
        event: &Event,
        rule: &str,
        limit: Option<&LimitConfig>,
        per: Per,
        tell: Tell,
        says: impl FnOnce() -> String,
    ) -> Result<(), Refusal> {
        let (Some(limiter), Some(rate)) = (&self.limiter, limit.and_then(LimitConfig::rate)) else {
            return Ok(());
        };
        if event.platform == Platform::Console || !from_a_user(&event.kind) {
            return Ok(());
        }
        let key = format!("op:{rule}:{}", whose(event, per));
        // A host that tracks too many keys lets events through: the operator's limits
        // must not take the bot down.
        let Ok(Decision::RetryAfter(retry_after)) = limiter.check(&key, rate).await else {
            return Ok(());
        };
        self.count_refusal(rule);
        // One notice per user and window: a rate of one per window on the notices
        // themselves, per user even where the limit counts a whole guild.
        let once = Rate {
            limit: 1,
            window: rate.window,
        };
        let notice_key = format!("notice:{key}:{}", whose(event, Per::User));
        let first = tell == Tell::Once
            && limiter
                .decide(&notice_key, once)
                .await
                .is_ok_and(Decision::allowed);
        let seconds = retry_after.as_secs_f64().ceil().max(1.0);
        Err(Refusal {
            rule: rule.to_owned(),
            retry_after,
            notice: first.then(|| {
                format!(
                    "{}; please wait {seconds} s. (Limit: {} per {} s.)",
                    says(),
                    rate.limit,
                    rate.window.as_secs()
                )
            }),
        })
    }
}

/// Events a person caused by acting; joins and delivery reports are not limited.
fn from_a_user(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Message(_)
            | EventKind::Command(_)
            | EventKind::Interaction(_)
            | EventKind::Reaction(_)
    )
}

fn whose(event: &Event, per: Per) -> String {
    let platform = event.platform.name();
    match (per, &event.guild_id) {
        (Per::User, _) => format!("{platform}:u:{}", event.author.id),
        (Per::Guild, Some(guild)) => format!("{platform}:g:{guild}"),
        (Per::Guild | Per::Channel, _) => format!("{platform}:c:{}", event.channel_id),
        (Per::Global, _) => "all".to_owned(),
    }
}
