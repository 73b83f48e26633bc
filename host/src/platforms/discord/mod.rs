//! Discord: the gateway through serenity (messages, interactions, reactions, members),
//! actions through its REST client, slash commands registered from the plugins' manifests;
//! and, for deployments without a gateway, interactions received over HTTP and verified with
//! the application's Ed25519 public key.

pub mod commands;
pub mod gateway;
pub mod interactions;
pub mod outlet;
pub mod wire;

use std::{ops::RangeInclusive, sync::Arc};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serenity::http::{Http, HttpBuilder};

pub use self::{gateway::Gateway, outlet::DiscordOutlet};
use crate::runtime::Registry;

/// The `[discord]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscordConfig {
    /// The bot token (or `DISCORD_TOKEN`); set, the host connects to the gateway.
    pub token: String,
    /// The application's public key (hex, from the developer portal); set, it opens
    /// `POST /discord/interactions` on the HTTP server.
    pub public_key: String,
    /// Where the REST API is reached instead of Discord's own: an HTTP proxy in front of
    /// it, or a fake in tests. Its `/gateway` answer names the gateway. Set, serenity's own
    /// rate limiter is off: the proxy is expected to do that job.
    pub api_url: String,
    /// Slash commands are registered in this guild only (development: they show at once)
    /// instead of globally.
    pub commands_guild: String,
    /// How many shards the bot runs as, in all.
    pub shards: u32,
    /// The first shard this host runs.
    pub first_shard: u32,
    /// The last shard this host runs (inclusive); all from `first_shard` when unset.
    pub last_shard: Option<u32>,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            token: String::new(),
            public_key: String::new(),
            api_url: String::new(),
            commands_guild: String::new(),
            shards: 1,
            first_shard: 0,
            last_shard: None,
        }
    }
}

impl DiscordConfig {
    /// The shards this host runs.
    pub fn shard_range(&self) -> RangeInclusive<u32> {
        self.first_shard..=self.last_shard.unwrap_or(self.shards.saturating_sub(1))
    }

    /// Refuses a shard layout Discord would refuse, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.public_key.is_empty() {
            interactions::public_key(&self.public_key)?;
        }
        anyhow::ensure!(self.shards >= 1, "discord.shards: at least 1");
        let range = self.shard_range();
        anyhow::ensure!(
            range.start() <= range.end() && *range.end() < self.shards,
            "discord.first_shard / last_shard: {}..={} is not within the {} shard(s) of discord.shards",
            range.start(),
            range.end(),
            self.shards
        );
        if !self.commands_guild.is_empty() {
            self.commands_guild
                .parse::<u64>()
                .ok()
                .filter(|id| *id != 0)
                .context("discord.commands_guild: a guild id (a number)")?;
        }
        Ok(())
    }

    /// The REST client: Discord's own API, or the configured one without rate limiter.
    pub fn http(&self) -> Http {
        let builder = HttpBuilder::new(&self.token);
        if self.api_url.is_empty() {
            builder.build()
        } else {
            builder
                .proxy(self.api_url.trim_end_matches('/'))
                .ratelimiter_disabled(true)
                .build()
        }
    }
}

/// Discord as one host runs it: the outlet the dispatcher delivers through, and the gateway
/// when a token is configured.
pub struct Discord {
    /// Where actions for Discord go (REST, or the answer of a waiting interaction).
    pub outlet: Arc<DiscordOutlet>,
    /// The gateway connection, not started yet; `None` for HTTP interactions only.
    pub gateway: Option<Gateway>,
}

impl Discord {
    /// Discord as configured, or `None` when neither a token nor a public key is. With a
    /// token, the token is checked now: one Discord refuses stops the start with a clear
    /// error rather than a gateway that retries forever.
    pub async fn prepare(
        config: &DiscordConfig,
        registry: &Registry,
    ) -> anyhow::Result<Option<Self>> {
        if config.token.is_empty() && config.public_key.is_empty() {
            return Ok(None);
        }
        // Late answers go to the interaction's webhook routes, which its token opens.
        let followups = Arc::new(config.http());
        let answers = Arc::new(interactions::Answers::with_followups(followups));
        if config.token.is_empty() {
            let outlet = Arc::new(DiscordOutlet::new(answers, None, None));
            return Ok(Some(Self {
                outlet,
                gateway: None,
            }));
        }
        let gateway = Gateway::build(config, registry, Arc::clone(&answers)).await?;
        let outlet = Arc::new(DiscordOutlet::new(
            answers,
            Some(gateway.http()),
            Some(gateway.connection()),
        ));
        Ok(Some(Self {
            outlet,
            gateway: Some(gateway),
        }))
    }
}
