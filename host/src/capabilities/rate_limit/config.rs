//! The `[rate_limits]` section: how limits are counted, and the operator's limits on events
//! (which the dispatcher applies, `dispatch::limits`).

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use super::{OnRedisError, Rate};

/// The `[rate_limits]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Apply the operator's limits to events (plugins' own checks work either way).
    pub enabled: bool,
    /// What a check does when Redis cannot answer: `allow` (warned) or `deny`.
    pub on_redis_error: OnRedisError,
    /// Keys one process tracks at most (with no Redis); past it, plugins' checks fail.
    pub max_keys: usize,
    /// Events per user, across the bot.
    pub user: LimitConfig,
    /// Events per guild (per chat where there is no guild); none by default.
    pub guild: Option<LimitConfig>,
    /// Uses of one command, by command name: `[rate_limits.commands.roll]`.
    pub commands: BTreeMap<String, LimitConfig>,
    /// Events into one plugin, by plugin name: `[rate_limits.plugins.dice]`.
    pub plugins: BTreeMap<String, LimitConfig>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            on_redis_error: OnRedisError::Allow,
            max_keys: 100_000,
            user: LimitConfig {
                limit: 30,
                window_secs: 60,
                per: None,
            },
            guild: None,
            commands: BTreeMap::new(),
            plugins: BTreeMap::new(),
        }
    }
}

/// One limit: `limit` events per `window_secs`, counted per `per`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Events allowed per window.
    pub limit: u32,
    /// The window, in seconds.
    pub window_secs: u64,
    /// Whose events count together (commands and plugins only; `user` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<Per>,
}

impl LimitConfig {
    /// The limit as a rate; `None` when it allows nothing.
    pub fn rate(&self) -> Option<Rate> {
        Rate::new(self.limit, Duration::from_secs(self.window_secs))
    }
}

/// Whose events a limit counts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// Each user's.
    User,
    /// Each guild's (each chat's where there is no guild).
    Guild,
    /// Each channel's or chat's.
    Channel,
    /// Everyone's together.
    Global,
}

impl RateLimitConfig {
    /// Rejects limits of zero and windows of zero or over a day, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_keys >= 1,
            "rate_limits.max_keys must be at least 1"
        );
        let fixed = [("user", Some(&self.user)), ("guild", self.guild.as_ref())];
        for (name, limit) in fixed {
            if let Some(limit) = limit {
                check(&format!("rate_limits.{name}"), limit)?;
                anyhow::ensure!(
                    limit.per.is_none(),
                    "rate_limits.{name}.per cannot be set: it counts per {name}"
                );
            }
        }
        for (section, limits) in [("commands", &self.commands), ("plugins", &self.plugins)] {
            for (name, limit) in limits {
                check(&format!("rate_limits.{section}.{name}"), limit)?;
            }
        }
        Ok(())
    }
}

fn check(key: &str, limit: &LimitConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        limit.rate().is_some(),
        "{key}: limit and window_secs must be at least 1, window_secs at most {}",
        Rate::MAX_WINDOW.as_secs()
    );
    Ok(())
}
