//! The `config` capability: per-plugin settings by scope, cached, with defaults; and
//! `host-config`, the host's own settings in the same store.

pub mod admin;
pub mod host_settings;
mod interface;
mod l2;
mod scope;
mod store;

pub use scope::{Scope, ScopeKind};
pub use store::{ConfigStore, Document, StoreConfig, StoreError, StoreStats};
