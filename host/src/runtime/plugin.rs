//! A loaded plugin: its manifest, its policy and its pre-linked instance; each event runs on
//! a fresh instance from the pool, or on one kept from its last event when the operator
//! chose `instances = "reuse"` for it.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{
    Store,
    component::{ComponentExportIndex, Func, InstancePre, TypedFunc},
};

use crate::{
    bindings::{
        types::{Action, Event, Manifest, PluginError},
        v0_1,
    },
    capabilities::{
        Allowed, Capability,
        config_store::{Document, ScopeKind},
        messaging::Messenger,
        metrics::MetricSpec,
        storage::Migration,
    },
    runtime::{
        Asks, Failure, InstanceData, Instances, LoadError, PluginPolicy, PluginStats, Runtime,
        budget::Budgeted, output,
    },
};

/// What a plugin installed from a package carries of it.
#[derive(Debug, Clone)]
pub struct Packaged {
    /// What its approval grants.
    pub asks: Asks,
    /// The package's digest (its OCI manifest's).
    pub digest: String,
    /// Where it came from: an index, a reference, `file`.
    pub source: String,
}

/// The `handle` export's signature.
type HandleFn<'a> = TypedFunc<(&'a Event,), (Result<Vec<Action>, PluginError>,)>;

/// The `handle` export's signature in contract 0.1.
type HandleFnV0_1<'a> =
    TypedFunc<(&'a v0_1::Event,), (Result<Vec<v0_1::Action>, v0_1::PluginError>,)>;

/// The contract whose exports a plugin has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abi {
    /// The newest.
    Newest,
    /// 0.1: its events and answers are adapted at each call.
    V0_1,
}

/// One loaded version of a plugin. Events in flight keep their version alive (`Arc`), so a
/// reload never cuts one short.
pub struct Plugin {
    pub(super) runtime: Arc<Runtime>,
    pub(super) name: Arc<str>,
    pub(super) manifest: Manifest,
    pub(super) policy: PluginPolicy,
    pub(super) allowed: Allowed,
    pub(super) pre: InstancePre<InstanceData>,
    /// Which contract its exports are of.
    pub(super) abi: Abi,
    /// The `handle` export, type-checked at load.
    pub(super) handle: ComponentExportIndex,
    pub(super) source: PathBuf,
    pub(super) digest: String,
    /// The capabilities whose interfaces it imports.
    pub(super) imports: Vec<Capability>,
    /// The newest `wasmbot:plugin` version it imports.
    pub(super) contract: Option<semver::Version>,
    pub(super) package: Option<Packaged>,
    pub(super) stats: Arc<PluginStats>,
    /// The settings it declared, registered in the config store when it is installed.
    pub(super) config_fields: Vec<(ScopeKind, Document)>,
    pub(super) migrations: Vec<Migration>,
    /// The metrics it declared, registered when it is installed.
    pub(super) metrics: Vec<MetricSpec>,
    /// Instances between two events (`instances = "reuse"`); they go with this version.
    pub(super) warm: Mutex<Vec<Warm>>,
}

/// An instance kept for its plugin's next event, with its `handle` export and the pool
/// slot it holds while it lives.
pub(super) struct Warm {
    store: Store<InstanceData>,
    handle: Func,
    /// Events it has served.
    served: u32,
    slot: OwnedSemaphorePermit,
}

impl Plugin {
    /// Its name, from the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it declared at load.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Its limits and grants.
    pub fn policy(&self) -> &PluginPolicy {
        &self.policy
    }

    /// Whether a guild that has not chosen has it on: the operator's `guild_default`, else
    /// its manifest's.
    pub fn on_by_default(&self) -> bool {
        self.policy
            .guild_default
            .unwrap_or(self.manifest.enabled_by_default)
    }

    /// The file it was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The content hash of its `.wasm`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The capabilities whose interfaces the component imports (its manifest may say less).
    pub fn imports(&self) -> &[Capability] {
        &self.imports
    }

    /// The contract version it was built against: the newest `wasmbot:plugin` version it
    /// imports (the host's own when it imports none).
    pub fn contract(&self) -> String {
        self.contract.as_ref().map_or_else(
            || crate::bindings::CONTRACT_VERSION.to_owned(),
            |v| v.to_string(),
        )
    }

    /// The package it was installed from, if it was.
    pub fn package(&self) -> Option<&Packaged> {
        self.package.as_ref()
    }

    /// Its counters, shared by all its versions.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.stats
    }

    /// Applies its storage migrations the database does not have yet, before it serves.
    pub(super) async fn migrate(&self) -> Result<(), LoadError> {
        let Some(storage) = self.runtime.backends().storage.as_ref() else {
            return Ok(());
        };
        let applied = storage
            .migrate(&self.name, &self.migrations)
            .await
            .map_err(|error| LoadError::Migration {
                plugin: self.name.to_string(),
                error,
            })?;
        if !applied.is_empty() {
            tracing::info!(plugin = &*self.name, ?applied, "storage migrations applied");
        }
        Ok(())
    }

    /// Registers its settings in the config store, replacing an earlier version's.
    pub(super) fn register_config(&self) {
        let backends = self.runtime.backends();
        if let Some(metrics) = &backends.metrics {
            metrics.register(&self.name, &self.metrics);
        }
        if let Some(store) = &backends.config_store {
            store.register_plugin(&self.name, self.config_fields.clone());
        }
    }

    /// Handles one event on a fresh (or kept) instance. A failure is logged with the
    /// plugin's name and the reason, counted, and returned; nothing else is affected.
    pub async fn handle(&self, event: &Event) -> Result<Vec<Action>, Failure> {
        self.handle_with(event, None).await
    }

    /// [`Plugin::handle`] with somewhere for the actions it takes while it runs to go
    /// (capability `messaging`).
    pub async fn handle_with(
        &self,
        event: &Event,
        messenger: Option<Arc<dyn Messenger>>,
    ) -> Result<Vec<Action>, Failure> {
        let started = Instant::now();
        let (result, peak_memory) = self.run(event, messenger).await;
        let failure = result.as_ref().err().map(Failure::kind);
        self.stats.record(started.elapsed(), peak_memory, failure);
        if let Err(failure) = &result {
            match failure {
                Failure::Plugin(_) => tracing::info!(
                    plugin = &*self.name,
                    event = %event.id,
                    reason = failure.kind(),
                    "event refused: {failure}"
                ),
                _ => tracing::warn!(
                    plugin = &*self.name,
                    event = %event.id,
                    reason = failure.kind(),
                    "event failed: {failure}"
                ),
            }
        }
        result
    }

    /// Whether the plugin may use `capability` (asked for and granted).
    pub fn may(&self, capability: Capability) -> bool {
        self.allowed.contains(capability)
    }

    async fn run(
        &self,
        event: &Event,
        messenger: Option<Arc<dyn Messenger>>,
    ) -> (Result<Vec<Action>, Failure>, usize) {
        let runtime = &*self.runtime;
        let kept = match self.policy.instances {
            Instances::Reuse => self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop(),
            Instances::Fresh => None,
        };
        let (mut store, handle, slot, served) = match kept {
            Some(warm) => (warm.store, Some(warm.handle), warm.slot, warm.served),
            None => {
                let stats = Some(Arc::clone(&self.stats));
                let store =
                    runtime.store(Arc::clone(&self.name), self.allowed, &self.policy, stats);
                let Ok(slot) = Arc::clone(&runtime.slots).acquire_owned().await else {
                    return (
                        Err(Failure::Instantiate("the runtime is shutting down".into())),
                        0,
                    );
                };
                (store, None, slot, 0)
            }
        };
        // From here: waiting for a pool slot is not the plugin's time.
        let now = Instant::now();
        if handle.is_some() {
            Runtime::restart_clocks(&mut store, &self.policy, now);
        }
        if let Some(messenger) = messenger {
            store.data_mut().capabilities.messaging.attach(messenger);
        }
        if self.allowed.contains(Capability::Schedule) {
            store.data_mut().capabilities.schedule.set_origin(event);
        }
        let deadline = now + self.policy.wall_budget();
        let suspensions = store.data().cpu.suspensions();
        let call = async {
            let handle = match handle {
                Some(handle) => handle,
                None => self.instantiate(&mut store).await?,
            };
            // SAFETY: the export's type was checked against the signature of its contract
            // when the component was loaded (`Plugin::new` of its bindings in `describe`),
            // and every instance of a component has the same export types.
            let called = match self.abi {
                Abi::Newest => {
                    let typed = unsafe { HandleFn::new_unchecked(handle) };
                    typed
                        .call_async(&mut store, (event,))
                        .await
                        .map(|(result,)| result)
                }
                Abi::V0_1 => match v0_1::event(event) {
                    Some(event) => {
                        let typed = unsafe { HandleFnV0_1::new_unchecked(handle) };
                        let called = typed.call_async(&mut store, (&event,)).await;
                        called.map(|(result,)| v0_1::outcome(result))
                    }
                    // Nothing it could have asked for.
                    None => Ok(Ok(Vec::new())),
                },
            };
            called
                .map(|result| (handle, result))
                .map_err(|error| Failure::of_call(error, store.data(), self.policy.memory_mib))
        };
        // A trap, a timeout (the call cut short wherever it was) or the memory cap leave
        // no instance fit for another event.
        let called = {
            let call = std::pin::pin!(call);
            Budgeted::new(call, deadline, suspensions).await
        };
        let (outcome, fit) = match called {
            Err(_) => (Err(Failure::WallClock(self.policy.wall_budget())), None),
            Ok(Err(failure)) => (Err(failure), None),
            Ok(Ok((handle, Err(error)))) => (Err(Failure::Plugin(bounded(error))), Some(handle)),
            Ok(Ok((handle, Ok(actions)))) => {
                let limits = &runtime.config;
                let checked = output::check(&actions, limits.max_actions, limits.max_output_bytes)
                    .map(|()| actions)
                    .map_err(Failure::Malformed);
                (checked, Some(handle))
            }
        };
        let peak = store.data().memory.peak;
        let served = served + 1;
        match fit {
            Some(handle)
                if self.policy.instances == Instances::Reuse
                    && served < self.policy.reuse_events
                    && !store.data().memory.exceeded =>
            {
                self.keep(Warm {
                    store,
                    handle,
                    served,
                    slot,
                });
            }
            _ => runtime.wasi.give(store.into_data().into_wasi()),
        }
        (outcome, peak)
    }

    /// A new instance in `store`, and its `handle` export.
    async fn instantiate(&self, store: &mut Store<InstanceData>) -> Result<Func, Failure> {
        let instance = match self.pre.instantiate_async(&mut *store).await {
            Ok(instance) => instance,
            Err(error) => {
                let memory_mib = self.policy.memory_mib;
                return Err(Failure::of_instantiation(error, store.data(), memory_mib));
            }
        };
        instance
            .get_func(&mut *store, self.handle)
            .ok_or_else(|| Failure::Instantiate("the `handle` export is missing".into()))
    }

    /// Keeps an instance that served an event for the next one, holding nothing of the
    /// last event; beyond one per core (as many as can run at once), it goes.
    fn keep(&self, mut warm: Warm) {
        let config = &self.runtime.config;
        let data = warm.store.data_mut();
        data.capabilities
            .next_event(config.max_log_lines, config.max_actions);
        data.clear_stderr();
        let mut kept = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < self.runtime.warm_per_plugin {
            kept.push(warm);
        }
    }
}

/// A plugin's error with its text cut to a size fit for logs and users.
fn bounded(error: PluginError) -> PluginError {
    const MAX: usize = 2000;
    let cut = |text: String| crate::capabilities::truncate(&text, MAX).to_owned();
    match error {
        PluginError::InvalidInput(text) => PluginError::InvalidInput(cut(text)),
        PluginError::Unavailable(text) => PluginError::Unavailable(cut(text)),
        PluginError::Internal(text) => PluginError::Internal(cut(text)),
    }
}
