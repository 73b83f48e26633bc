//! The sandbox: one engine, plugins compiled once into a pre-linked `InstancePre`, a fresh
//! pooled instance per event with CPU, wall-clock and memory budgets.

pub mod bindings;
mod cache;
mod engine;
mod failure;
mod load;
mod output;
mod plugin;
pub mod registry;
mod state;
mod stats;
mod stderr;
pub mod watch;

use std::{sync::Arc, time::Duration};

use tokio::sync::Semaphore;
use wasmtime::{CallHook, Engine, Store, UpdateDeadline, component::Linker};

pub use cache::ComponentCache;
pub use failure::Failure;
pub use load::LoadError;
pub use plugin::Plugin;
pub use registry::Registry;
pub use state::HostState;
use state::WasiPool;
pub use stats::PluginStats;

use crate::{
    capabilities::{self, Allowed, Services, config::host_settings},
    config::{Config, PluginPolicy},
};

/// Everything plugins share in one host: the engine, the linker with every capability, the
/// compiled-component cache and the instance slots.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    config: Arc<Config>,
    slots: Semaphore,
    wasi: WasiPool,
    services: Services,
}

impl Runtime {
    /// Builds the engine and links the capabilities, served by `services`; starts the epoch
    /// ticker. Registers the host's own settings in the config store.
    pub fn new(config: Arc<Config>, services: Services) -> anyhow::Result<Arc<Self>> {
        if let Some(store) = &services.config {
            host_settings::register(store, &config.bot);
        }
        let engine = engine::build(&config.runtime)?;
        let tick = Duration::from_millis(config.runtime.epoch_tick_ms);
        engine::start_epoch_ticker(&engine, tick)?;
        let mut linker = Linker::new(&engine);
        capabilities::add_to_linker(&mut linker)?;
        let cache = ComponentCache::new(&engine, &config.runtime.cache_dir);
        let slots = Semaphore::new(config.runtime.max_instances as usize);
        let wasi = WasiPool::new(config.runtime.max_instances as usize);
        Ok(Arc::new(Self {
            engine,
            linker,
            cache,
            config,
            slots,
            wasi,
            services,
        }))
    }

    /// The backends of the capabilities.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
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
    ) -> Store<HostState> {
        let state = HostState::new(
            plugin,
            allowed,
            policy,
            &self.config.runtime,
            self.wasi.take(&policy.env),
            self.services.clone(),
            stats,
        );
        let mut store = Store::new(&self.engine, state);
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
        // Time in host calls (a database round trip) is not the plugin's CPU time.
        store.call_hook(|mut context, hook| {
            let cpu = &mut context.data_mut().cpu;
            match hook {
                CallHook::CallingHost => cpu.entering_host(),
                CallHook::ReturningFromHost => cpu.leaving_host(),
                CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
            }
            Ok(())
        });
        store
    }
}
