//! The `config` capability: per-plugin settings by scope, cached, with defaults.

pub mod admin;
mod l2;
mod scope;
mod store;

pub use scope::{Scope, ScopeKind};
pub use store::{ConfigStore, Document, StoreConfig, StoreError, StoreStats};
