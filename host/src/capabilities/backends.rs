//! The capabilities' backends: built once per host on the config store's database, started
//! and stopped together, and relieved together when memory runs short.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Backends, config_store::ConfigStore, counters, metrics, rate_limit, schedule, state};
use crate::telemetry::memory::{MemoryConfig, MemoryWatch, Relief};

/// The lifecycle of a backend. The host calls each hook on every backend, in the order of
/// the capability list (stops in reverse); a backend implements those it needs.
pub trait Lifecycle: Relief {
    /// Starts its background work (a flusher, a sweeper).
    fn start(self: Arc<Self>) {}

    /// Stops its background work and writes what it holds; called once, when no event runs
    /// any more.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Forgets what it keeps of an unloaded plugin (its stored data stays).
    fn forget(&self, plugin: &str) {
        let _ = plugin;
    }

    /// Its in-process cache, by name, for the operator's report; `None` without one.
    fn cache(&self) -> BoxFuture<'_, Option<(&'static str, CacheReport)>> {
        Box::pin(async { None })
    }
}

/// One cache's size.
#[derive(Debug, serde::Serialize)]
pub struct CacheReport {
    /// Entries held.
    pub entries: u64,
    /// Bytes held, as the cache weighs them (where it does).
    pub bytes: Option<u64>,
}

/// How a backend is made, once per host.
pub trait Build {
    /// The backend, on the config store's database and Redis, from the operator's sections.
    fn build(store: &Arc<ConfigStore>, sections: Sections<'_>) -> Arc<Self>;
}

/// The operator's sections the backends are built from.
#[derive(Clone, Copy)]
pub struct Sections<'a> {
    /// `[counters]`.
    pub counters: &'a counters::CountersConfig,
    /// `[state]`.
    pub state: &'a state::StateConfig,
    /// `[rate_limits]`.
    pub rate_limits: &'a rate_limit::RateLimitConfig,
    /// `[metrics]`.
    pub metrics: &'a metrics::MetricsConfig,
    /// `[memory]`.
    pub memory: &'a MemoryConfig,
    /// `[schedule]`.
    pub schedule: &'a schedule::ScheduleConfig,
}

impl Backends {
    /// Every capability's backend, on the config store's database and Redis, and the memory
    /// watch that relieves them.
    pub fn on(store: Arc<ConfigStore>, sections: Sections<'_>) -> anyhow::Result<Self> {
        let backends = Self {
            memory: Some(MemoryWatch::new(sections.memory.clone())?),
            ..Self::build_each(&store, sections)
        };
        if let Some(memory) = &backends.memory {
            let relief = backends.lifecycles().into_iter();
            memory.relieve(relief.map(|backend| backend as Arc<dyn Relief>).collect());
        }
        Ok(backends)
    }

    /// Starts every backend's background work, and the memory watch.
    pub fn start(&self) {
        for backend in self.lifecycles() {
            backend.start();
        }
        if let Some(memory) = &self.memory {
            memory.start();
        }
    }

    /// Stops the memory watch, then every backend, the last started first.
    pub async fn stop(&self) {
        if let Some(memory) = &self.memory {
            memory.stop();
        }
        for backend in self.lifecycles().iter().rev() {
            backend.stop().await;
        }
    }

    /// Every backend's cache, by name.
    pub async fn caches(&self) -> std::collections::BTreeMap<&'static str, CacheReport> {
        let mut caches = std::collections::BTreeMap::new();
        for backend in self.lifecycles() {
            if let Some((name, cache)) = backend.cache().await {
                caches.insert(name, cache);
            }
        }
        caches
    }

    /// Forgets an unloaded plugin in every backend.
    pub fn forget(&self, plugin: &str) {
        for backend in self.lifecycles() {
            backend.forget(plugin);
        }
    }
}
