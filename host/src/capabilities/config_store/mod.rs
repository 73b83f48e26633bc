//! The config store: per-plugin settings by scope, cached, with defaults (capability
//! `config`); and the host's own settings in the same store (capability `host-config`).

pub mod admin;
pub mod host_settings;
mod interface;
mod l2;
mod scope;
mod store;

pub use interface::Context;
pub(crate) use interface::link;
pub use scope::{Scope, ScopeKind};
pub use store::{ConfigStore, Document, StoreConfig, StoreError, StoreStats};

use futures::future::BoxFuture;

use std::sync::Arc;

use crate::capabilities::{CacheReport, Sections};

/// The `host-config` capability: the host's settings, in the config store.
pub mod host_config {
    pub use super::interface::Context;
    pub(crate) use super::interface::link_host as link;
}

impl crate::telemetry::memory::Relief for ConfigStore {
    fn shrink(&self) -> BoxFuture<'_, ()> {
        Box::pin(ConfigStore::shrink(self))
    }
}

impl crate::capabilities::Build for ConfigStore {
    fn build(store: &Arc<ConfigStore>, _: Sections<'_>) -> Arc<Self> {
        Arc::clone(store)
    }
}

impl crate::capabilities::Lifecycle for ConfigStore {
    fn forget(&self, plugin: &str) {
        self.unregister_plugin(plugin);
    }

    fn cache(&self) -> BoxFuture<'_, Option<(&'static str, CacheReport)>> {
        Box::pin(async {
            let (entries, bytes) = self.cache_size().await;
            let bytes = Some(bytes);
            Some(("config", CacheReport { entries, bytes }))
        })
    }
}
