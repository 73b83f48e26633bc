//! Host capabilities: one module per WIT interface, each with its grant check.
//!
//! A plugin may use a capability when its manifest asks for it and the operator granted it;
//! the allowed set is computed once per load ([`Allowed`]) and checked at every call.

pub mod config;
pub mod counters;
pub mod http;
mod log;
mod messaging;
pub mod metrics;
pub mod queue;
pub mod rate_limit;
pub mod state;
pub mod storage;

pub(crate) use log::truncate;

use std::{fmt, sync::Arc};

use wasmtime::component::{HasSelf, Linker};

use crate::{
    runtime::{HostState, bindings},
    telemetry::memory::MemoryWatch,
};
use config::ConfigStore;

/// A capability a plugin can ask for in its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `wasmbot:plugin/log`: log lines attributed to the plugin.
    Log,
    /// `wasmbot:plugin/config`: the plugin's own settings per scope.
    Config,
    /// `wasmbot:plugin/host-config`: the host's settings (prefix, staff roles...).
    HostConfig,
    /// `wasmbot:plugin/counters`: write-behind counters.
    Counters,
    /// `wasmbot:plugin/state`: conversation state with a time to live.
    State,
    /// `wasmbot:plugin/storage`: the plugin's own tables.
    Storage,
    /// `wasmbot:plugin/rate-limit`: limits on the plugin's own operations.
    RateLimit,
    /// `wasmbot:plugin/queue`: bounded queues for heavy work.
    Queue,
    /// `wasmbot:plugin/metrics`: the plugin's own metrics, and memory figures.
    Metrics,
    /// `wasi:http/outgoing-handler`: HTTP requests to the hosts the operator allowed.
    Http,
    /// `wasmbot:plugin/messaging`: actions carried out mid-handler; media downloads.
    Messaging,
}

impl Capability {
    /// Every capability this host provides.
    pub const ALL: &'static [Capability] = &[
        Capability::Log,
        Capability::Config,
        Capability::HostConfig,
        Capability::Counters,
        Capability::State,
        Capability::Storage,
        Capability::RateLimit,
        Capability::Queue,
        Capability::Metrics,
        Capability::Http,
        Capability::Messaging,
    ];

    /// The name used in manifests and in the operator's grants.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Config => "config",
            Capability::HostConfig => "host-config",
            Capability::Counters => "counters",
            Capability::State => "state",
            Capability::Storage => "storage",
            Capability::RateLimit => "rate-limit",
            Capability::Queue => "queue",
            Capability::Metrics => "metrics",
            Capability::Http => "http",
            Capability::Messaging => "messaging",
        }
    }

    /// The capability a manifest or grant names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// The known names, for error messages.
    pub fn names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
        names.join(", ")
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The capabilities one plugin may use: asked for in its manifest and granted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed(u64);

impl Allowed {
    /// Whether the plugin may use `capability`.
    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// Allows `capability`.
    pub fn insert(&mut self, capability: Capability) {
        self.0 |= capability.bit();
    }
}

/// Why a manifest's capabilities were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// No capability of that name exists.
    #[error("its manifest asks for unknown capability {0:?} (this host provides: {known})", known = Capability::names())]
    Unknown(String),
    /// The operator did not grant it.
    #[error("its manifest asks for capability \"{0}\", which the operator has not granted it")]
    NotGranted(Capability),
}

/// Checks what a manifest asks for against the operator's grants.
pub fn allowed(asked: &[String], granted: &[String]) -> Result<Allowed, GrantError> {
    let mut allowed = Allowed::default();
    for name in asked {
        let capability =
            Capability::from_name(name).ok_or_else(|| GrantError::Unknown(name.clone()))?;
        if !granted.iter().any(|grant| grant == name) {
            return Err(GrantError::NotGranted(capability));
        }
        allowed.insert(capability);
    }
    Ok(allowed)
}

/// The backends of the capabilities that keep state outside an instance, shared by every
/// plugin of the host. A capability whose backend is missing answers `unavailable`.
#[derive(Clone, Default)]
pub struct Services {
    /// The config store (capabilities `config` and `host-config`).
    pub config: Option<Arc<ConfigStore>>,
    /// Write-behind counters.
    pub counters: Option<Arc<counters::WriteBehind>>,
    /// Conversation state.
    pub state: Option<Arc<state::StateStore>>,
    /// The plugins' own tables.
    pub storage: Option<Arc<storage::Storage>>,
    /// The plugins' own rate limits.
    pub rate_limit: Option<Arc<rate_limit::RateLimiter>>,
    /// The operator's rate limits on events, counted apart from the plugins'.
    pub limits: Option<Arc<rate_limit::Limits>>,
    /// Bounded work queues.
    pub queues: Option<Arc<queue::Queues>>,
    /// The plugins' own metrics.
    pub metrics: Option<Arc<metrics::PluginMetrics>>,
    /// The memory watch (figures, pressure).
    pub memory: Option<Arc<MemoryWatch>>,
}

impl Services {
    /// Every capability's backend, on the config store's database, and the memory watch
    /// that sheds their load.
    pub fn on(store: Arc<ConfigStore>, config: &crate::config::Config) -> anyhow::Result<Self> {
        let db = store.database().clone();
        let limiter = || {
            let limits = &config.rate_limits;
            let redis = store.redis().cloned();
            Arc::new(rate_limit::RateLimiter::new(
                limits.max_keys,
                redis,
                limits.on_redis_error,
            ))
        };
        let mut services = Self {
            counters: Some(counters::WriteBehind::new(
                db.clone(),
                &config.counters,
                store.redis().cloned(),
            )),
            state: Some(state::StateStore::new(
                db.clone(),
                config.state.clone(),
                store.redis().cloned(),
            )),
            storage: Some(Arc::new(storage::Storage::new(db))),
            rate_limit: Some(limiter()),
            limits: Some(Arc::new(rate_limit::Limits::new(
                Some(limiter()),
                config.rate_limits.clone(),
            ))),
            queues: Some(Arc::default()),
            metrics: Some(Arc::new(metrics::PluginMetrics::new(
                config.metrics.max_series,
            ))),
            config: Some(store),
            memory: None,
        };
        services.memory = Some(MemoryWatch::new(config.memory.clone(), services.clone())?);
        Ok(services)
    }
}

/// Checks a name or id a plugin passes: not empty, at most `max` bytes, no control
/// characters (it ends up in keys, rows and logs).
pub(crate) fn check_name(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(format!(
            "the {what} must be 1 to {max} bytes without control characters"
        ));
    }
    Ok(())
}

/// Links every capability's interface (and the WASI basics plugins are built against).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    bindings::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
}

impl bindings::wasmbot::plugin::types::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_set_is_the_granted_part_of_the_manifest() {
        let allowed = allowed(&["log".into()], &["log".into()]).unwrap();
        assert!(allowed.contains(Capability::Log));
        assert!(!Allowed::default().contains(Capability::Log));
    }

    #[test]
    fn unknown_and_ungranted_capabilities_are_refused_by_name() {
        assert_eq!(
            allowed(&["teleport".into()], &["log".into()]),
            Err(GrantError::Unknown("teleport".into()))
        );
        assert_eq!(
            allowed(&["log".into()], &[]),
            Err(GrantError::NotGranted(Capability::Log))
        );
    }
}
