//! Operator configuration: a TOML file, every key overridable by the environment.
//!
//! Each key has its default here, in one place. The environment overrides the file with
//! `WASMBOT_<SECTION>__<KEY>`, e.g. `WASMBOT_BOT__PREFIX=?` or
//! `WASMBOT_PLUGIN_DEFAULTS__CPU_MS=50`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use crate::{
    capabilities::{
        Capability, config::StoreConfig, counters::CountersConfig, rate_limit::RateLimitConfig,
        state::StateConfig,
    },
    db::DatabaseConfig,
    http::AdminConfig,
    platforms::{discord::DiscordConfig, whatsapp::WhatsAppConfig},
    telemetry::memory::MemoryConfig,
};

/// The whole operator configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How the bot reads messages.
    pub bot: BotConfig,
    /// The plugin runtime.
    pub runtime: RuntimeConfig,
    /// The database pool; `DATABASE_URL` overrides its url.
    pub database: DatabaseConfig,
    /// The config store's cache.
    pub config_store: StoreConfig,
    /// Redis, shared by the hosts of one bot; `REDIS_URL` overrides its url.
    pub redis: RedisConfig,
    /// The admin HTTP API.
    pub admin: AdminConfig,
    /// Write-behind counters.
    pub counters: CountersConfig,
    /// Conversation state.
    pub state: StateConfig,
    /// The operator's rate limits, and how limits are counted.
    pub rate_limits: RateLimitConfig,
    /// The memory limit and its watch; `MEMORY_LIMIT` overrides the limit.
    pub memory: MemoryConfig,
    /// Plugins' own metrics.
    pub metrics: MetricsConfig,
    /// Discord.
    pub discord: DiscordConfig,
    /// WhatsApp (Cloud API).
    pub whatsapp: WhatsAppConfig,
    /// Limits and grants for every plugin that has no section of its own.
    pub plugin_defaults: PluginPolicy,
    /// Per-plugin overrides, by plugin name: `[plugins.ping]`.
    pub plugins: BTreeMap<String, PluginOverride>,
}

/// The `[metrics]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Label combinations one plugin metric may have; new ones past it are refused.
    pub max_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { max_series: 100 }
    }
}

/// The `[redis]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port`; empty (the default) runs without Redis: one host, in-process
    /// caches only.
    pub url: String,
}

/// How the bot reads messages.
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
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            prefix: "!".to_owned(),
            ignore_bots: true,
            mention_command: String::new(),
        }
    }
}

/// The plugin runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Every `*.wasm` in this folder is loaded as a plugin.
    pub plugins_dir: PathBuf,
    /// Compiled components, so a restart does not recompile. Empty: no disk cache.
    pub cache_dir: PathBuf,
    /// Watch `plugins_dir` and swap changed plugins in without a restart.
    pub hot_reload: bool,
    /// How long a file must be quiet before a change is picked up, in milliseconds.
    pub reload_debounce_ms: u64,
    /// Instances that can run at once: the pooling allocator's slots. Events beyond it wait.
    pub max_instances: u32,
    /// The largest memory cap a plugin may be given, in MiB (the size of a pool slot).
    pub max_memory_mib: u64,
    /// Granularity of CPU-budget checks, in milliseconds.
    pub epoch_tick_ms: u64,
    /// Actions one event may return.
    pub max_actions: usize,
    /// Bytes of text (all texts of all actions) one event may return.
    pub max_output_bytes: usize,
    /// Log lines one event may write; later ones are dropped.
    pub max_log_lines: u32,
    /// On SIGTERM / SIGINT, how long events in flight may take to finish, in milliseconds.
    pub shutdown_grace_ms: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from("plugins"),
            cache_dir: PathBuf::from(".wasmbot/cache"),
            hot_reload: true,
            reload_debounce_ms: 200,
            max_instances: 256,
            max_memory_mib: 256,
            epoch_tick_ms: 5,
            max_actions: 25,
            max_output_bytes: 64 * 1024,
            max_log_lines: 100,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// What one plugin may use and how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginPolicy {
    /// CPU time one event may use, in milliseconds.
    pub cpu_ms: u64,
    /// Wall-clock time one event may take, host calls included, in milliseconds.
    pub wall_ms: u64,
    /// Memory one instance may grow to, in MiB.
    pub memory_mib: u64,
    /// The capabilities the plugin may use.
    pub grants: Vec<String>,
    /// Set to false to keep the plugin's file in the folder without loading it.
    pub enabled: bool,
    /// Messages kept in each conversation's history (capability `state`).
    pub history_turns: u32,
    /// How long one storage call may run, in milliseconds (capability `storage`).
    pub statement_timeout_ms: u64,
    /// Rows one storage query may return.
    pub max_rows: u32,
    /// Bytes one storage query may return.
    pub max_result_bytes: u64,
    /// Tickets of one work queue held at once (capability `queue`).
    pub queue_concurrency: u32,
    /// Callers that may wait in one work queue; past it they hear "busy".
    pub queue_length: u32,
    /// Where the plugin may send HTTP requests (capability `http`, through `wasi:http`):
    /// `host` (its scheme's default port) or `host:port`. Empty: nowhere.
    pub http_allow: Vec<String>,
    /// Environment variables the plugin sees (an AI endpoint's URL, say). A value
    /// `$NAME` is the host's variable `NAME`, read at start-up, so secrets stay out of files.
    pub env: BTreeMap<String, String>,
}

impl Default for PluginPolicy {
    fn default() -> Self {
        Self {
            cpu_ms: 100,
            wall_ms: 30_000,
            memory_mib: 64,
            // A plugin's own settings, counters and state are namespaced, so granting
            // them hurts no one, and `messaging` does what returned actions do, only
            // sooner; `host-config` and `http` are granted by name only.
            grants: [
                Capability::Log,
                Capability::Config,
                Capability::Counters,
                Capability::State,
                Capability::Storage,
                Capability::RateLimit,
                Capability::Queue,
                Capability::Metrics,
                Capability::Messaging,
            ]
            .map(|c| c.name().to_owned())
            .to_vec(),
            enabled: true,
            history_turns: 5,
            statement_timeout_ms: 2_000,
            max_rows: 1_000,
            max_result_bytes: 1 << 20,
            queue_concurrency: 3,
            queue_length: 10,
            http_allow: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

/// A `[plugins.NAME]` section: only the keys it sets override the defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginOverride {
    /// Overrides [`PluginPolicy::cpu_ms`].
    pub cpu_ms: Option<u64>,
    /// Overrides [`PluginPolicy::wall_ms`].
    pub wall_ms: Option<u64>,
    /// Overrides [`PluginPolicy::memory_mib`].
    pub memory_mib: Option<u64>,
    /// Overrides [`PluginPolicy::grants`].
    pub grants: Option<Vec<String>>,
    /// Overrides [`PluginPolicy::enabled`].
    pub enabled: Option<bool>,
    /// Overrides [`PluginPolicy::history_turns`].
    pub history_turns: Option<u32>,
    /// Overrides [`PluginPolicy::statement_timeout_ms`].
    pub statement_timeout_ms: Option<u64>,
    /// Overrides [`PluginPolicy::max_rows`].
    pub max_rows: Option<u32>,
    /// Overrides [`PluginPolicy::max_result_bytes`].
    pub max_result_bytes: Option<u64>,
    /// Overrides [`PluginPolicy::queue_concurrency`].
    pub queue_concurrency: Option<u32>,
    /// Overrides [`PluginPolicy::queue_length`].
    pub queue_length: Option<u32>,
    /// Overrides [`PluginPolicy::http_allow`].
    pub http_allow: Option<Vec<String>>,
    /// Overrides [`PluginPolicy::env`].
    pub env: Option<BTreeMap<String, String>>,
}

impl PluginPolicy {
    /// CPU time one event may use.
    pub fn cpu_budget(&self) -> Duration {
        Duration::from_millis(self.cpu_ms)
    }

    /// Wall-clock time one event may take.
    pub fn wall_budget(&self) -> Duration {
        Duration::from_millis(self.wall_ms)
    }

    /// What the plugin's storage calls may take.
    pub fn storage_limits(&self) -> crate::capabilities::storage::Limits {
        crate::capabilities::storage::Limits {
            timeout: Duration::from_millis(self.statement_timeout_ms),
            max_rows: usize::try_from(self.max_rows).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(self.max_result_bytes).unwrap_or(usize::MAX),
        }
    }

    /// Memory one instance may use, in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

impl Config {
    /// Reads the file (when it exists) and the environment over the defaults.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            anyhow::ensure!(file.is_file(), "config file {} not found", file.display());
            figment = figment.merge(Toml::file(file));
        }
        let mut config: Config = figment
            // WASMBOT_CONFIG names the file itself (the CLI reads it), it is no key.
            .merge(Env::prefixed("WASMBOT_").ignore(&["config"]).split("__"))
            .extract()
            .context("invalid configuration")?;
        if let Ok(url) = std::env::var("DATABASE_URL") {
            config.database.url = url;
        }
        if let Ok(url) = std::env::var("REDIS_URL") {
            config.redis.url = url;
        }
        let envs = std::iter::once(&mut config.plugin_defaults.env)
            .chain(config.plugins.values_mut().filter_map(|p| p.env.as_mut()));
        for env in envs {
            resolve_env(env)?;
        }
        if let Ok(token) = std::env::var("DISCORD_TOKEN") {
            config.discord.token = token;
        }
        config.whatsapp.read_env();
        if let Ok(limit) = std::env::var("MEMORY_LIMIT") {
            config.memory.limit = limit;
        }
        config.validate()?;
        Ok(config)
    }

    /// The policy of the plugin called `name`: its section over the defaults.
    pub fn policy(&self, name: &str) -> PluginPolicy {
        let defaults = &self.plugin_defaults;
        let Some(over) = self.plugins.get(name) else {
            return defaults.clone();
        };
        PluginPolicy {
            cpu_ms: over.cpu_ms.unwrap_or(defaults.cpu_ms),
            wall_ms: over.wall_ms.unwrap_or(defaults.wall_ms),
            memory_mib: over.memory_mib.unwrap_or(defaults.memory_mib),
            grants: over
                .grants
                .clone()
                .unwrap_or_else(|| defaults.grants.clone()),
            enabled: over.enabled.unwrap_or(defaults.enabled),
            history_turns: over.history_turns.unwrap_or(defaults.history_turns),
            statement_timeout_ms: over
                .statement_timeout_ms
                .unwrap_or(defaults.statement_timeout_ms),
            max_rows: over.max_rows.unwrap_or(defaults.max_rows),
            max_result_bytes: over.max_result_bytes.unwrap_or(defaults.max_result_bytes),
            queue_concurrency: over.queue_concurrency.unwrap_or(defaults.queue_concurrency),
            queue_length: over.queue_length.unwrap_or(defaults.queue_length),
            http_allow: over
                .http_allow
                .clone()
                .unwrap_or_else(|| defaults.http_allow.clone()),
            env: over.env.clone().unwrap_or_else(|| defaults.env.clone()),
        }
    }

    /// Rejects values that would make the runtime useless or unbounded.
    pub fn validate(&self) -> anyhow::Result<()> {
        let rt = &self.runtime;
        anyhow::ensure!(
            self.database.retry.tries >= 1,
            "database.retry.tries must be at least 1 (1: no retry)"
        );
        anyhow::ensure!(!self.bot.prefix.is_empty(), "bot.prefix must not be empty");
        anyhow::ensure!(
            (1..=100_000).contains(&rt.max_instances),
            "runtime.max_instances must be between 1 and 100000"
        );
        anyhow::ensure!(
            (1..=100).contains(&rt.epoch_tick_ms),
            "runtime.epoch_tick_ms must be between 1 and 100"
        );
        anyhow::ensure!(
            rt.max_memory_mib > 0,
            "runtime.max_memory_mib must be at least 1"
        );
        anyhow::ensure!(
            rt.reload_debounce_ms >= 10,
            "runtime.reload_debounce_ms must be at least 10"
        );
        anyhow::ensure!(rt.max_actions > 0, "runtime.max_actions must be at least 1");
        let db = &self.database;
        anyhow::ensure!(
            db.max_connections >= 1 && db.min_connections <= db.max_connections,
            "database.max_connections must be at least 1 and at least database.min_connections"
        );
        self.rate_limits.validate()?;
        self.discord.validate()?;
        self.whatsapp.validate()?;
        self.memory.validate()?;
        anyhow::ensure!(
            self.metrics.max_series >= 1,
            "metrics.max_series must be at least 1"
        );
        let store = &self.config_store;
        anyhow::ensure!(
            store.max_entries >= 1 && store.max_bytes >= 1024,
            "config_store.max_entries must be at least 1 and config_store.max_bytes at least 1024"
        );
        anyhow::ensure!(
            rt.max_output_bytes > 0,
            "runtime.max_output_bytes must be at least 1"
        );
        let policies =
            std::iter::once(("plugin_defaults".to_owned(), self.plugin_defaults.clone())).chain(
                self.plugins
                    .keys()
                    .map(|name| (format!("plugins.{name}"), self.policy(name))),
            );
        for (section, policy) in policies {
            anyhow::ensure!(
                policy.cpu_ms >= rt.epoch_tick_ms,
                "{section}.cpu_ms must be at least runtime.epoch_tick_ms ({})",
                rt.epoch_tick_ms
            );
            anyhow::ensure!(policy.wall_ms > 0, "{section}.wall_ms must be at least 1");
            anyhow::ensure!(
                policy.statement_timeout_ms > 0
                    && policy.max_rows > 0
                    && policy.max_result_bytes > 0,
                "{section}.statement_timeout_ms, max_rows and max_result_bytes must be at least 1"
            );
            anyhow::ensure!(
                policy.queue_concurrency >= 1,
                "{section}.queue_concurrency must be at least 1"
            );
            anyhow::ensure!(
                policy.history_turns <= 100,
                "{section}.history_turns must be at most 100"
            );
            anyhow::ensure!(
                (1..=rt.max_memory_mib).contains(&policy.memory_mib),
                "{section}.memory_mib must be between 1 and runtime.max_memory_mib ({})",
                rt.max_memory_mib
            );
            for grant in &policy.grants {
                anyhow::ensure!(
                    Capability::from_name(grant).is_some(),
                    "{section}.grants names an unknown capability {grant:?}; known: {}",
                    Capability::names()
                );
            }
        }
        Ok(())
    }
}

/// Replaces `$NAME` values by the host's variable `NAME`; a missing one is an error that
/// names it, rather than a plugin talking to an endpoint with an empty key.
fn resolve_env(env: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
    for (key, value) in env.iter_mut() {
        if let Some(name) = value.strip_prefix('$') {
            *value = std::env::var(name).with_context(|| {
                format!("plugin environment {key} = \"${name}\": the host has no variable {name}")
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        let policy = config.policy("anything");
        assert_eq!(policy.cpu_budget(), Duration::from_millis(100));
        assert_eq!(policy.wall_budget(), Duration::from_secs(30));
        assert_eq!(policy.memory_bytes(), 64 << 20);
        assert_eq!(
            policy.grants,
            vec![
                "log",
                "config",
                "counters",
                "state",
                "storage",
                "rate-limit",
                "queue",
                "metrics",
                "messaging"
            ]
        );
        let storage = policy.storage_limits();
        assert_eq!(storage.timeout, Duration::from_secs(2));
        assert_eq!((storage.max_rows, storage.max_bytes), (1_000, 1 << 20));
        assert_eq!(config.bot.prefix, "!");
        config.validate().unwrap();
    }

    #[test]
    fn a_plugin_section_overrides_only_what_it_sets() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wasmbot.toml",
                r#"
                [plugin_defaults]
                cpu_ms = 50

                [plugins.ping]
                memory_mib = 8
                grants = []
                "#,
            )?;
            let config =
                Config::load(Some(Path::new("wasmbot.toml"))).map_err(|e| e.to_string())?;
            let ping = config.policy("ping");
            assert_eq!(
                (ping.cpu_ms, ping.memory_mib, ping.wall_ms),
                (50, 8, 30_000)
            );
            assert!(ping.grants.is_empty());
            assert_eq!(config.policy("dice").memory_mib, 64);
            Ok(())
        });
    }

    #[test]
    fn the_environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("wasmbot.toml", "[bot]\nprefix = \"?\"\n")?;
            jail.set_env("WASMBOT_BOT__PREFIX", "$");
            jail.set_env("WASMBOT_PLUGIN_DEFAULTS__CPU_MS", "25");
            jail.set_env("WASMBOT_CONFIG", "wasmbot.toml");
            let config =
                Config::load(Some(Path::new("wasmbot.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.bot.prefix, "$");
            assert_eq!(config.plugin_defaults.cpu_ms, 25);
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let error = |toml: &str| {
            let mut result = String::new();
            figment::Jail::expect_with(|jail| {
                jail.create_file("wasmbot.toml", toml)?;
                result = Config::load(Some(Path::new("wasmbot.toml")))
                    .map(|_| String::new())
                    .unwrap_or_else(|e| format!("{e:#}"));
                Ok(())
            });
            result
        };
        assert!(error("[plugins.x]\ncpu_ms = 0\n").contains("plugins.x.cpu_ms must be at least"));
        assert!(error("[runtime]\nmax_instances = 4000000000\n").contains("max_instances"));
        assert!(error("[runtime]\nreload_debounce_ms = 0\n").contains("reload_debounce_ms"));
        assert!(
            error("[plugin_defaults]\nmemory_mib = 9999\n").contains("memory_mib must be between")
        );
        assert!(
            error("[plugin_defaults]\ngrants = [\"teleport\"]\n")
                .contains("unknown capability \"teleport\"")
        );
        assert!(error("[bot]\nprefx = \"!\"\n").contains("prefx"));
        assert!(error("[plugin_defaults]\ncpu_ms = -5\n").contains("invalid configuration"));
        assert!(
            error("[rate_limits.user]\nlimit = 0\nwindow_secs = 60\n")
                .contains("rate_limits.user: limit and window_secs must be at least 1")
        );
        assert!(
            error("[rate_limits.commands.roll]\nlimit = -3\nwindow_secs = 60\n")
                .contains("invalid configuration")
        );
        assert!(
            error("[rate_limits.plugins.dice]\nlimit = 5\nwindow_secs = 0\n")
                .contains("rate_limits.plugins.dice")
        );
        assert!(error("[memory]\nlimit = \"lots\"\n").contains("memory.limit"));
        assert!(error("[discord]\npublic_key = \"abc\"\n").contains("discord.public_key"));
        assert!(error("[discord]\nshards = 2\nfirst_shard = 2\n").contains("first_shard"));
        assert!(error("[discord]\nshards = 0\n").contains("discord.shards"));
        assert!(error("[plugin_defaults]\nqueue_concurrency = 0\n").contains("queue_concurrency"));
        assert!(Config::load(Some(Path::new("/nonexistent/wasmbot.toml"))).is_err());
    }
}
