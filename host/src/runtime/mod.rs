//! The sandbox: one engine, plugins compiled once into a pre-linked `InstancePre`, a fresh
//! pooled instance per event (or a kept one, for a plugin set to reuse them) with CPU,
//! wall-clock and memory budgets.

mod budget;
mod cache;
mod engine;
mod failure;
mod instance;
mod load;
mod output;
mod plugin;
mod policy;
pub mod registry;
mod stats;
mod stderr;
pub mod watch;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;
use wasmtime::{Engine, Store, UpdateDeadline, component::Linker};

use budget::CpuClock;
pub use cache::ComponentCache;
pub use failure::Failure;
pub use instance::InstanceData;
use instance::{MemoryCap, WasiPool};
pub use load::LoadError;
pub use plugin::{Packaged, Plugin};
pub use policy::{Asks, Instances, PluginPolicy, Policies, RuntimeConfig};
pub use registry::Registry;
pub use stats::PluginStats;

use crate::capabilities::{self, Allowed, Backends, Contexts, Instance, InstanceMemory};

/// Everything plugins share in one host: the engine, the linker with every capability, the
/// compiled-component cache and the instance slots.
pub struct Runtime {
    engine: Engine,
    linker: Linker<InstanceData>,
    cache: ComponentCache,
    config: RuntimeConfig,
    policies: Policies,
    slots: Arc<Semaphore>,
    /// The most instances a plugin keeps between events (`instances = "reuse"`): as many
    /// as can run at once.
    warm_per_plugin: usize,
    wasi: WasiPool,
    backends: Backends,
}

impl Runtime {
    /// Builds the engine and links the capabilities, served by `backends`, for plugins
    /// under `policies`; starts the epoch ticker.
    pub fn new(
        config: RuntimeConfig,
        policies: Policies,
        backends: Backends,
    ) -> anyhow::Result<Arc<Self>> {
        let engine = engine::build(&config)?;
        let tick = Duration::from_millis(config.epoch_tick_ms);
        engine::start_epoch_ticker(&engine, tick)?;
        let mut linker = Linker::new(&engine);
        capabilities::link(&mut linker)?;
        let cache = ComponentCache::new(&engine, &config.cache_dir);
        let slots = Arc::new(Semaphore::new(config.max_instances as usize));
        let warm_per_plugin = std::thread::available_parallelism().map_or(1, usize::from);
        let wasi = WasiPool::new(config.max_instances as usize);
        Ok(Arc::new(Self {
            engine,
            linker,
            cache,
            config,
            policies,
            slots,
            warm_per_plugin,
            wasi,
            backends,
        }))
    }

    /// The backends of the capabilities.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The `[runtime]` section it was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Every plugin's policy.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The compiled-component cache.
    pub fn cache(&self) -> &ComponentCache {
        &self.cache
    }

    /// A store for one call: its memory cap, and a CPU clock checked at every epoch tick.
    fn store(
        &self,
        plugin: Arc<str>,
        allowed: Allowed,
        policy: &PluginPolicy,
        stats: Option<Arc<PluginStats>>,
    ) -> Store<InstanceData> {
        let memory = InstanceMemory::default();
        let instance = Instance {
            plugin,
            allowed,
            log_lines: self.config.max_log_lines,
            actions: self.config.max_actions,
            wall_budget: policy.wall_budget(),
            memory: memory.clone(),
        };
        let data = InstanceData::new(
            MemoryCap::new(policy.memory_bytes(), stats, memory),
            CpuClock::new(
                policy.cpu_budget(),
                Duration::from_millis(self.config.epoch_tick_ms),
            ),
            self.wasi.take(&policy.env),
            Contexts::new(&instance, &self.backends, &policy.capabilities),
        );
        let mut store = Store::new(&self.engine, data);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        // Yielding at every tick keeps a busy guest from holding a runtime thread: other
        // events, and this event's wall-clock timeout, get their turn.
        store.epoch_deadline_callback(|mut context| {
            Ok(match context.data_mut().cpu.tick() {
                true => UpdateDeadline::Yield(1),
                false => UpdateDeadline::Interrupt,
            })
        });
        store
    }

    /// A kept instance's budgets, whole again for its next event; its memory stays, and
    /// stays capped.
    fn restart_clocks(store: &mut Store<InstanceData>, policy: &PluginPolicy, now: Instant) {
        let data = store.data_mut();
        data.cpu.restart(policy.cpu_budget(), now);
        data.memory.exceeded = false;
        data.memory.peak = data.memory.used;
        store.set_epoch_deadline(1);
    }
}
