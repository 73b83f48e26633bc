//! Host capabilities: what plugins may call.
//!
//! Each capability is one folder: its WIT host implementation on a per-instance `Context`
//! (never on the runtime's whole instance data), its backend (the service every plugin
//! shares), its operator section, its per-plugin policy, its metrics and its tests. The host
//! knows them through the one list below: the [`Capability`] enum, the default grants, the
//! per-instance [`Contexts`], the linking, the per-plugin [`Policy`] and the [`Backends`]
//! with their lifecycle all come from it.
//!
//! A module named in the list provides `Context::new(Grant, &Instance, &Backends, &Policy)`
//! and `link::<T: HasContexts>(&mut Linker<T>)`.

mod backends;
pub mod config_store;
pub mod counters;
mod grant;
pub mod http;
mod log;
pub mod messaging;
pub mod metrics;
pub mod queue;
pub mod rate_limit;
pub mod schedule;
pub mod state;
pub mod storage;
mod v0_1;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};

use crate::telemetry::memory::MemoryWatch;
pub use backends::{Build, CacheReport, Lifecycle, Sections};
pub use grant::{Allowed, Grant, GrantError, Reach, allowed};
pub(crate) use log::truncate;

/// Declares the capabilities, one line each:
/// `Variant "grant-name" granted|by_name => field: module[, backend field: Type][, policy field: Type];`
/// (`granted`: in every plugin's grants unless the operator says otherwise; `by_name`: only
/// when the operator names it).
macro_rules! capabilities {
    (@granted granted) => { true };
    (@granted by_name) => { false };
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident $name:literal $default:ident => $field:ident: $($module:ident)::+
            $(, backend $backend:ident: $backend_ty:ty)?
            $(, policy $policy:ident: $policy_ty:ty)?;
    )*) => {
        /// A capability a plugin can ask for in its manifest.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Capability {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Capability {
            /// Every capability this host provides.
            pub const ALL: &'static [Capability] = &[$(Capability::$variant),*];

            /// The name used in manifests and in the operator's grants.
            pub fn name(self) -> &'static str {
                match self {
                    $(Capability::$variant => $name,)*
                }
            }

            /// Whether a plugin is granted it when the operator lists no grants of its own.
            pub fn granted_by_default(self) -> bool {
                match self {
                    $(Capability::$variant => capabilities!(@granted $default),)*
                }
            }
        }

        /// One instance's context of every capability.
        pub struct Contexts {
            $(pub(crate) $field: $($module)::+::Context,)*
        }

        impl Contexts {
            /// The contexts of an instance of `instance.plugin`: a capability it may not
            /// use gets a context that answers `denied`.
            pub fn new(instance: &Instance, backends: &Backends, policy: &Policy) -> Self {
                Self {
                    $($field: $($module)::+::Context::new(
                        Grant::new(instance, Capability::$variant),
                        instance,
                        backends,
                        policy,
                    ),)*
                }
            }
        }

        /// Links every capability's interfaces (and the WASI basics plugins are built
        /// against) into `linker`, and what plugins of older contracts import of them.
        pub fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
            wasmtime_wasi::p2::add_to_linker_async(linker)?;
            crate::bindings::types::add_to_linker::<T, HasSelf<Contexts>>(linker, |t| t.contexts())?;
            $($($module)::+::link(linker)?;)*
            v0_1::link(linker)
        }

        /// The backends of the capabilities that keep state outside an instance, shared by
        /// every plugin of the host. A capability whose backend is missing answers
        /// `unavailable`.
        #[derive(Clone, Default)]
        pub struct Backends {
            $($(
                #[doc = concat!("The backend of `", $name, "`.")]
                pub $backend: Option<Arc<$backend_ty>>,
            )?)*
            /// The memory watch (figures, pressure).
            pub memory: Option<Arc<MemoryWatch>>,
        }

        impl Backends {
            /// Every capability's backend, built on `store` from `sections`; no memory watch.
            fn build_each(store: &Arc<config_store::ConfigStore>, sections: Sections<'_>) -> Self {
                Self {
                    $($(
                        $backend: Some(<$backend_ty as Build>::build(store, sections)),
                    )?)*
                    memory: None,
                }
            }

            /// Every backend there is, in the list's order: started in it, stopped in reverse.
            pub fn lifecycles(&self) -> Vec<Arc<dyn Lifecycle>> {
                let mut all: Vec<Arc<dyn Lifecycle>> = Vec::new();
                $($(
                    if let Some(backend) = &self.$backend {
                        all.push(Arc::clone(backend) as Arc<dyn Lifecycle>);
                    }
                )?)*
                all
            }
        }

        /// What the capabilities allow one plugin beyond their grant: each capability's
        /// own keys in the plugin's section (`[plugin_defaults]`, `[plugins.NAME]`).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Policy {
            $($(
                #[doc = concat!("The keys of `", $name, "`.")]
                #[serde(flatten)]
                pub $policy: $policy_ty,
            )?)*
        }

        impl Policy {
            /// Rejects values that would make a capability useless or unbounded, naming
            /// the key in `section`.
            pub fn validate(&self, section: &str) -> anyhow::Result<()> {
                $($(self.$policy.validate(section)?;)?)*
                Ok(())
            }
        }
    };
}

capabilities! {
    /// `wasmbot:plugin/log`: log lines attributed to the plugin.
    Log "log" granted => log: log;
    /// `wasmbot:plugin/config`: the plugin's own settings per scope.
    Config "config" granted => config: config_store, backend config_store: config_store::ConfigStore;
    /// `wasmbot:plugin/host-config`: the host's settings (prefix, staff roles...).
    HostConfig "host-config" by_name => host_config: config_store::host_config;
    /// `wasmbot:plugin/counters`: write-behind counters.
    Counters "counters" granted => counters: counters, backend counters: counters::WriteBehind;
    /// `wasmbot:plugin/state`: conversation state with a time to live.
    State "state" granted => state: state,
        backend state: state::StateStore, policy state: state::Policy;
    /// `wasmbot:plugin/storage`: the plugin's own tables.
    Storage "storage" granted => storage: storage,
        backend storage: storage::Storage, policy storage: storage::Policy;
    /// `wasmbot:plugin/rate-limit`: limits on the plugin's own operations.
    RateLimit "rate-limit" granted => rate_limit: rate_limit,
        backend rate_limit: rate_limit::RateLimiter;
    /// `wasmbot:plugin/queue`: bounded queues for heavy work.
    Queue "queue" granted => queue: queue, backend queues: queue::Queues, policy queue: queue::Policy;
    /// `wasmbot:plugin/metrics`: the plugin's own metrics, and memory figures.
    Metrics "metrics" granted => metrics: metrics, backend metrics: metrics::PluginMetrics;
    /// `wasi:http/outgoing-handler`: HTTP requests to the hosts the operator allowed.
    Http "http" by_name => http: http, policy http: http::Policy;
    /// `wasmbot:plugin/messaging`: actions carried out mid-handler; media downloads.
    Messaging "messaging" granted => messaging: messaging;
    /// `wasmbot:plugin/schedule`: timers that call the plugin back later.
    Schedule "schedule" granted => schedule: schedule, backend schedule: schedule::Timers;
}

impl Capability {
    /// The capability a manifest or grant names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// The capability a component's import is of: `wasmbot:plugin/NAME@...`, and
    /// `wasi:http/...` for `http`; `None` for what every plugin may import.
    pub fn of_import(import: &str) -> Option<Self> {
        if import.starts_with("wasi:http/") {
            return Some(Capability::Http);
        }
        let interface = import.strip_prefix("wasmbot:plugin/")?;
        Self::from_name(interface.split('@').next().unwrap_or_default())
    }

    /// The known names, for error messages.
    pub fn names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
        names.join(", ")
    }

    /// The grants of a plugin the operator names none for.
    pub fn default_grants() -> Vec<String> {
        Self::ALL
            .iter()
            .filter(|c| c.granted_by_default())
            .map(|c| c.name().to_owned())
            .collect()
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the runtime's data of an instance gives the capabilities: their contexts, and the
/// WASI views `wasi:http` needs.
pub trait HasContexts:
    wasmtime_wasi::WasiView + wasmtime_wasi_http::WasiHttpView + Send + 'static
{
    /// The instance's capability contexts.
    fn contexts(&mut self) -> &mut Contexts;
}

impl crate::bindings::types::Host for Contexts {}

/// What every context of one instance is built from.
pub struct Instance {
    /// The plugin the instance runs.
    pub plugin: Arc<str>,
    /// The capabilities it may use.
    pub allowed: Allowed,
    /// Log lines one event may write (`runtime.max_log_lines`).
    pub log_lines: u32,
    /// Actions one event may take mid-handler (`runtime.max_actions`).
    pub actions: usize,
    /// Wall-clock time one event may take (no HTTP request outlives it).
    pub wall_budget: Duration,
    /// The instance's memory in use, kept by the runtime.
    pub memory: InstanceMemory,
}

/// Bytes of linear memory one instance holds now: the runtime writes it as the instance
/// grows, `metrics` reads it.
#[derive(Debug, Clone, Default)]
pub struct InstanceMemory(Arc<AtomicUsize>);

impl InstanceMemory {
    /// Records the bytes in use.
    pub fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    /// The bytes in use.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a plugin declares while it describes itself, kept for when its manifest has been
/// checked.
#[derive(Debug, Default)]
pub struct Registrations {
    /// Its config fields' defaults per scope kind.
    pub config: Vec<(config_store::ScopeKind, config_store::Document)>,
    /// Its storage migrations, in order.
    pub migrations: Vec<storage::Migration>,
    /// Its own metrics.
    pub metrics: Vec<metrics::MetricSpec>,
}

impl Contexts {
    /// Opens the describe phase: declarations are taken until [`Contexts::registrations`].
    pub fn describing(&mut self) {
        self.config.registering = Some(Vec::new());
        self.storage.migrations = Some(Vec::new());
        self.metrics.declared = Some(Vec::new());
    }

    /// Readies a kept instance's contexts for its next event: each per-event allowance
    /// whole again, nothing of the last event's place or way out. What the instance holds
    /// (its queue tickets) stays with it. `log_lines` and `actions` as in [`Instance`].
    pub fn next_event(&mut self, log_lines: u32, actions: usize) {
        self.log.next_event(log_lines);
        self.messaging.next_event(actions);
        self.metrics.next_event();
        self.schedule.next_event();
    }

    /// What the plugin declared while it described itself.
    pub fn registrations(&mut self) -> Registrations {
        Registrations {
            config: self.config.registering.take().unwrap_or_default(),
            migrations: self.storage.migrations.take().unwrap_or_default(),
            metrics: self.metrics.declared.take().unwrap_or_default(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for capability in Capability::ALL {
            assert_eq!(Capability::from_name(capability.name()), Some(*capability));
        }
        assert_eq!(Capability::from_name("teleport"), None);
    }

    #[test]
    fn host_config_and_http_are_granted_by_name_only() {
        let defaults = Capability::default_grants();
        assert!(!defaults.contains(&"host-config".to_owned()));
        assert!(!defaults.contains(&"http".to_owned()));
        assert_eq!(defaults.len(), Capability::ALL.len() - 2);
    }
}
