//! What one plugin may use and how much: the runtime's own limits and grants, and each
//! capability's keys ([`capabilities::Policy`]), in one section per plugin over the
//! defaults.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::capabilities::{self, Capability};

/// The `[runtime]` section: the plugin runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Every `*.wasm` in this folder is loaded as a plugin.
    pub plugins_dir: std::path::PathBuf,
    /// Compiled components, so a restart does not recompile. Empty: no disk cache.
    pub cache_dir: std::path::PathBuf,
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
            plugins_dir: "plugins".into(),
            cache_dir: ".wasmbot/cache".into(),
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
#[serde(default)]
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
    /// Whether a guild whose admins have not chosen gets the plugin on; unset: as its
    /// manifest says (`enabled-by-default`).
    pub guild_default: Option<bool>,
    /// Environment variables the plugin sees (an AI endpoint's URL, say). A value
    /// `$NAME` is the host's variable `NAME`, read at start-up, so secrets stay out of files.
    pub env: BTreeMap<String, String>,
    /// A fresh instance per event (the default), or instances kept warm between events.
    pub instances: Instances,
    /// With `instances = "reuse"`: events one instance serves before it is replaced.
    pub reuse_events: u32,
    /// Each capability's own keys.
    #[serde(flatten)]
    pub capabilities: capabilities::Policy,
}

impl Default for PluginPolicy {
    fn default() -> Self {
        Self {
            cpu_ms: 100,
            wall_ms: 30_000,
            memory_mib: 64,
            grants: Capability::default_grants(),
            enabled: true,
            guild_default: None,
            env: BTreeMap::new(),
            instances: Instances::Fresh,
            reuse_events: 1_000,
            capabilities: capabilities::Policy::default(),
        }
    }
}

/// How a plugin's events get their instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Instances {
    /// Every event on an instance of its own, which starts from the plugin's initial
    /// state: nothing one event leaves in memory reaches another.
    #[default]
    Fresh,
    /// An instance serves several events of its plugin, one at a time, under the same
    /// limits per event: what the plugin keeps in memory persists between them. For
    /// plugins whose instantiation costs more than their events (an interpreter's).
    Reuse,
}

/// What a packaged plugin asks for, and once the operator approves it, what it is granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asks {
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Hosts its `http` capability may reach.
    pub http_hosts: Vec<String>,
}

impl Asks {
    /// What `self` asks for beyond `approved`: nothing means an update may apply unasked.
    pub fn beyond(&self, approved: &Asks) -> Asks {
        let new = |asked: &[String], had: &[String]| {
            asked.iter().filter(|a| !had.contains(a)).cloned().collect()
        };
        Asks {
            capabilities: new(&self.capabilities, &approved.capabilities),
            http_hosts: new(&self.http_hosts, &approved.http_hosts),
        }
    }

    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.capabilities.is_empty() && self.http_hosts.is_empty()
    }
}

impl std::fmt::Display for Asks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |items: &[String]| match items.is_empty() {
            true => "none".to_owned(),
            false => items.join(", "),
        };
        write!(
            f,
            "capabilities: {}; HTTP hosts: {}",
            list(&self.capabilities),
            list(&self.http_hosts)
        )
    }
}

impl PluginPolicy {
    /// The operator's policy with an approval's grants: exactly the approved capabilities,
    /// and the approved hosts added to `http_allow`.
    pub fn approved(mut self, asks: &Asks) -> Self {
        self.grants = asks.capabilities.clone();
        let allow = &mut self.capabilities.http.http_allow;
        for host in &asks.http_hosts {
            if !allow.contains(host) {
                allow.push(host.clone());
            }
        }
        self
    }

    /// CPU time one event may use.
    pub fn cpu_budget(&self) -> Duration {
        Duration::from_millis(self.cpu_ms)
    }

    /// Wall-clock time one event may take.
    pub fn wall_budget(&self) -> Duration {
        Duration::from_millis(self.wall_ms)
    }

    /// Memory one instance may use, in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    /// The keys a policy section may hold.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(Value::Object(keys)) => keys.into_iter().map(|(key, _)| key).collect(),
            _ => Vec::new(),
        }
    }

    /// Refuses a section's key no policy has, naming it (`section.key`).
    pub fn check_keys<'a>(
        section: &str,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> anyhow::Result<()> {
        let known = Self::keys();
        for key in keys {
            anyhow::ensure!(
                known.contains(key),
                "{section}: unknown key {key:?}; known: {}",
                known.join(", ")
            );
        }
        Ok(())
    }

    /// This policy with the keys a `[plugins.NAME]` section sets put over it.
    pub fn overridden_by(&self, section: &Map<String, Value>) -> anyhow::Result<Self> {
        let mut merged = match serde_json::to_value(self)? {
            Value::Object(keys) => keys,
            _ => Map::new(),
        };
        merged.extend(section.clone());
        Ok(serde_json::from_value(Value::Object(merged))?)
    }

    /// The policy of the plugin called `name`: its section of `sections` over this one.
    pub fn for_plugin(
        &self,
        sections: &BTreeMap<String, Map<String, Value>>,
        name: &str,
    ) -> anyhow::Result<Self> {
        match sections.get(name) {
            Some(section) => self.overridden_by(section),
            None => Ok(self.clone()),
        }
    }

    /// Rejects values that would make the plugin useless or unbounded.
    pub fn validate(&self, section: &str, runtime: &RuntimeConfig) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.cpu_ms >= runtime.epoch_tick_ms,
            "{section}.cpu_ms must be at least runtime.epoch_tick_ms ({})",
            runtime.epoch_tick_ms
        );
        anyhow::ensure!(self.wall_ms > 0, "{section}.wall_ms must be at least 1");
        anyhow::ensure!(
            self.reuse_events > 0,
            "{section}.reuse_events must be at least 1"
        );
        anyhow::ensure!(
            (1..=runtime.max_memory_mib).contains(&self.memory_mib),
            "{section}.memory_mib must be between 1 and runtime.max_memory_mib ({})",
            runtime.max_memory_mib
        );
        for grant in &self.grants {
            anyhow::ensure!(
                Capability::from_name(grant).is_some(),
                "{section}.grants names an unknown capability {grant:?}; known: {}",
                Capability::names()
            );
        }
        self.capabilities.validate(section)
    }
}

/// Every plugin's policy: the defaults, and the sections of the plugins that have one.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// `[plugin_defaults]`.
    pub defaults: PluginPolicy,
    /// `[plugins.NAME]`: only the keys each sets.
    pub plugins: BTreeMap<String, Map<String, Value>>,
}

impl Policies {
    /// The policy of the plugin called `name`: its section over the defaults.
    pub fn of(&self, name: &str) -> anyhow::Result<PluginPolicy> {
        self.defaults.for_plugin(&self.plugins, name)
    }
}
