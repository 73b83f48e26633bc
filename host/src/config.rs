//! Operator configuration: a TOML file, every key overridable by the environment.
//!
//! Each section belongs to the module it configures, with its defaults there; this module
//! only assembles them, reads the file and the environment, and builds the host's parts
//! from the sections. The environment overrides the file with `WASMBOT_<SECTION>__<KEY>`,
//! e.g. `WASMBOT_BOT__PREFIX=?` or `WASMBOT_PLUGIN_DEFAULTS__CPU_MS=50`.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use anyhow::Context;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    capabilities::{
        Backends, Sections,
        config_store::{ConfigStore, StoreConfig, host_settings},
        counters::CountersConfig,
        metrics::MetricsConfig,
        rate_limit::{RateLimitConfig, RateLimiter},
        schedule::ScheduleConfig,
        state::StateConfig,
    },
    db::DatabaseConfig,
    dispatch::{BotConfig, Dispatcher, cooldowns::Cooldowns, limits::Limits},
    http::AdminConfig,
    packages::{PackageStore, Packages, PackagesConfig},
    platforms::{discord::DiscordConfig, whatsapp::WhatsAppConfig},
    redis::RedisConfig,
    runtime::{PluginPolicy, Policies, Registry, Runtime, RuntimeConfig},
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
    /// Plugins' timers.
    pub schedule: ScheduleConfig,
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
    /// Plugin packages: trusted publisher keys, indexes, registries.
    pub packages: PackagesConfig,
    /// Limits and grants for every plugin that has no section of its own.
    pub plugin_defaults: PluginPolicy,
    /// Per-plugin sections, by plugin name: `[plugins.ping]`; only the keys one sets
    /// override the defaults.
    pub plugins: BTreeMap<String, Map<String, Value>>,
}

impl Config {
    /// Reads the file (when it exists) and the environment over the defaults.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            anyhow::ensure!(file.is_file(), "config file {} not found", file.display());
            figment = figment.merge(Toml::file(file));
        }
        // WASMBOT_CONFIG names the file itself (the CLI reads it), it is no key.
        let figment = figment.merge(Env::prefixed("WASMBOT_").ignore(&["config"]).split("__"));
        let mut config: Config = figment.extract().context("invalid configuration")?;
        // A policy is made of each capability's keys, which serde cannot refuse unknown
        // ones of: checked here by name.
        let defaults: Map<String, Value> = figment
            .extract_inner("plugin_defaults")
            .context("invalid configuration")?;
        PluginPolicy::check_keys("plugin_defaults", defaults.keys())?;
        if let Ok(url) = std::env::var("DATABASE_URL") {
            config.database.url = url;
        }
        if let Ok(url) = std::env::var("REDIS_URL") {
            config.redis.url = url;
        }
        resolve_env(&mut config.plugin_defaults.env)?;
        for section in config.plugins.values_mut() {
            if let Some(Value::Object(env)) = section.get_mut("env") {
                for (key, value) in env.iter_mut() {
                    if let Value::String(text) = value {
                        *text = resolved(key, text)?;
                    }
                }
            }
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

    /// Every plugin's policy.
    pub fn policies(&self) -> Policies {
        Policies {
            defaults: self.plugin_defaults.clone(),
            plugins: self.plugins.clone(),
        }
    }

    /// The policy of the plugin called `name`: its section over the defaults.
    pub fn policy(&self, name: &str) -> anyhow::Result<PluginPolicy> {
        self.plugin_defaults
            .for_plugin(&self.plugins, name)
            .with_context(|| format!("invalid configuration: plugins.{name}"))
    }

    /// The config store a host runs with: the configured database (migrated), and Redis
    /// when its url is set. Must be called inside a tokio runtime.
    pub async fn open_store(&self) -> anyhow::Result<ConfigStore> {
        let db = crate::db::Database::connect(&self.database)?;
        db.migrate().await?;
        let store = ConfigStore::new(db, self.config_store.clone());
        if self.redis.url.is_empty() {
            return Ok(store);
        }
        store.with_redis(&self.redis.url)
    }

    /// The capabilities' backends, on `store`'s database and Redis.
    pub fn backends(&self, store: Arc<ConfigStore>) -> anyhow::Result<Backends> {
        Backends::on(
            store,
            Sections {
                counters: &self.counters,
                state: &self.state,
                rate_limits: &self.rate_limits,
                metrics: &self.metrics,
                memory: &self.memory,
                schedule: &self.schedule,
            },
        )
    }

    /// The plugin runtime over `backends`; the host's own settings are registered in their
    /// config store.
    pub fn build_runtime(&self, backends: Backends) -> anyhow::Result<Arc<Runtime>> {
        if let Some(store) = &backends.config_store {
            host_settings::register(store, &self.bot.prefix);
        }
        Runtime::new(self.runtime.clone(), self.policies(), backends)
    }

    /// The plugin registry of a host on `runtime`: the host's own commands (help, the guild
    /// admins') are kept from plugins.
    pub fn registry(&self, runtime: Arc<Runtime>) -> Arc<Registry> {
        let registry = Registry::new(runtime);
        registry.reserve(self.bot.host_commands());
        registry
    }

    /// The dispatcher over `registry`, with the operator's rate limits counted in a limiter
    /// of their own (in Redis when the config store has it).
    pub fn dispatcher(&self, registry: Arc<Registry>) -> Dispatcher {
        let backends = registry.runtime().backends();
        let limiter = backends.config_store.as_ref().map(|store| {
            let redis = store.redis().cloned();
            Arc::new(RateLimiter::configured(&self.rate_limits, redis))
        });
        let redis = backends
            .config_store
            .as_ref()
            .and_then(|s| s.redis().cloned());
        let limits =
            Limits::new(limiter, self.rate_limits.clone()).with_cooldowns(Cooldowns::new(redis));
        Dispatcher::new(registry, self.bot.clone(), limits)
    }

    /// The packages service of a host serving `registry`: the install record in the config
    /// store's database, changes told through its Redis; without Redis, on a shared
    /// (Postgres) database, the record is read every `packages.poll_secs`.
    pub fn packages(&self, registry: Arc<Registry>) -> Option<Arc<Packages>> {
        let store = registry.runtime().backends().config_store.clone()?;
        let redis = store.redis().cloned();
        let db = store.database().clone();
        let shared = db.backend() == crate::db::Backend::Postgres;
        let poll = (shared && redis.is_none() && self.packages.poll_secs > 0)
            .then(|| std::time::Duration::from_secs(self.packages.poll_secs));
        let record = PackageStore::new(db);
        Some(Packages::new(
            self.packages.clone(),
            registry,
            record,
            redis,
            poll,
        ))
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
        self.packages.validate()?;
        self.schedule.validate()?;
        anyhow::ensure!(
            self.schedule.claim_s.saturating_mul(1000) > self.plugin_defaults.wall_ms,
            "schedule.claim_s must be longer than plugin_defaults.wall_ms, or a batch of timers \
             could outlive its claim and be delivered twice"
        );
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
        self.plugin_defaults.validate("plugin_defaults", rt)?;
        for (name, section) in &self.plugins {
            let section_name = format!("plugins.{name}");
            PluginPolicy::check_keys(&section_name, section.keys())?;
            self.policy(name)?.validate(&section_name, rt)?;
        }
        Ok(())
    }
}

/// Replaces `$NAME` values by the host's variable `NAME`.
fn resolve_env(env: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
    for (key, value) in env.iter_mut() {
        *value = resolved(key, value)?;
    }
    Ok(())
}

/// `value`, or the host's variable it names as `$NAME`; a missing one is an error that
/// names it, rather than a plugin talking to an endpoint with an empty key.
fn resolved(key: &str, value: &str) -> anyhow::Result<String> {
    match value.strip_prefix('$') {
        Some(name) => std::env::var(name).with_context(|| {
            format!("plugin environment {key} = \"${name}\": the host has no variable {name}")
        }),
        None => Ok(value.to_owned()),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        let policy = config.policy("anything").unwrap();
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
                "messaging",
                "schedule"
            ]
        );
        let storage = policy.capabilities.storage.limits();
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
            let ping = config.policy("ping").map_err(|e| e.to_string())?;
            assert_eq!(
                (ping.cpu_ms, ping.memory_mib, ping.wall_ms),
                (50, 8, 30_000)
            );
            assert!(ping.grants.is_empty());
            assert_eq!(
                config.policy("dice").map_err(|e| e.to_string())?.memory_mib,
                64
            );
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
        // A policy is each capability's keys flattened: unknown ones are still refused.
        assert!(error("[plugins.x]\ncpu_mss = 1\n").contains("plugins.x: unknown key \"cpu_mss\""));
        assert!(
            error("[plugin_defaults]\nhistory_turn = 1\n")
                .contains("plugin_defaults: unknown key \"history_turn\"")
        );
        assert!(error("[plugins.x]\nmax_rows = \"many\"\n").contains("plugins.x"));
        assert!(Config::load(Some(Path::new("/nonexistent/wasmbot.toml"))).is_err());
    }
}
