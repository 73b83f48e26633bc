//! The `config` and `host-config` interfaces: a plugin's calls, checked against its grants,
//! served by the store in the plugin's own namespace or in the host's.

use std::sync::Arc;

use serde_json::Value;
use wasmtime::component::{HasSelf, Linker};

use super::{ConfigStore, Document, Scope, ScopeKind, StoreError, host_settings};
use crate::{
    bindings::wasmbot::plugin::{
        config::{self as wit, ConfigError},
        host_config,
    },
    capabilities::{Backends, Capability, Grant, HasContexts, Instance, Policy, Reach},
};

/// One instance's access to the config store in one namespace: the plugin's own
/// (`config`) or the host's (`host-config`).
pub struct Context {
    store: Reach<ConfigStore>,
    namespace: Arc<str>,
    /// `Some` only while the plugin describes itself (`config` only).
    pub(crate) registering: Option<Vec<(ScopeKind, Document)>>,
}

impl Context {
    /// The plugin's own settings for `config`, the host's for `host-config`.
    pub(crate) fn new(grant: Grant, _: &Instance, backends: &Backends, _: &Policy) -> Self {
        let namespace = match grant.capability() {
            Capability::HostConfig => Arc::from(host_settings::HOST),
            _ => Arc::clone(grant.plugin()),
        };
        Self {
            store: Reach::new(grant, backends.config_store.clone(), "a config store"),
            namespace,
            registering: None,
        }
    }

    /// What a call may reach, or why it is refused.
    fn access(&mut self) -> Result<Access<'_>, ConfigError> {
        let store = self
            .store
            .get(ConfigError::Denied, ConfigError::Unavailable)?;
        Ok(Access {
            store,
            namespace: &self.namespace,
        })
    }
}

/// `config`'s linking.
pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().config)
}

/// `host-config`'s linking.
pub(crate) fn link_host<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    host_config::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().host_config)
}

/// A store and the namespace a call reads and writes.
struct Access<'a> {
    store: &'a ConfigStore,
    namespace: &'a str,
}

impl Access<'_> {
    async fn get(&self, scope: wit::Scope, key: String) -> Result<String, ConfigError> {
        let scope = scope_of(scope)?;
        let json = self.store.get_json(self.namespace, &scope, &key).await?;
        Ok(json)
    }

    async fn document(&self, scope: wit::Scope) -> Result<String, ConfigError> {
        let scope = scope_of(scope)?;
        let document = self.store.document(self.namespace, &scope).await;
        Ok(Value::Object(document).to_string())
    }

    async fn set(&self, scope: wit::Scope, key: String, value: String) -> Result<(), ConfigError> {
        let scope = scope_of(scope)?;
        // Checked before parsing too, so a huge text costs no parse.
        let limit = self.store.config().max_value_bytes;
        if value.len() > limit {
            return Err(StoreError::TooLarge {
                key,
                size: value.len(),
                limit,
            }
            .into());
        }
        let value: Value = serde_json::from_str(&value)
            .map_err(|error| ConfigError::InvalidValue(format!("{key:?} is not JSON: {error}")))?;
        if self.namespace == host_settings::HOST {
            host_settings::check(&key, &value)?;
        }
        Ok(self.store.set(self.namespace, &scope, &key, value).await?)
    }

    async fn delete(&self, scope: wit::Scope, key: String) -> Result<(), ConfigError> {
        let scope = scope_of(scope)?;
        Ok(self.store.delete(self.namespace, &scope, &key).await?)
    }

    fn keys(&self, scope: wit::Scope) -> Result<Vec<String>, ConfigError> {
        let scope = scope_of(scope)?;
        Ok(self.store.keys(self.namespace, scope.kind()))
    }
}

/// The calls `config` and `host-config` share.
macro_rules! scoped_calls {
    () => {
        async fn get(&mut self, scope: wit::Scope, key: String) -> Result<String, ConfigError> {
            self.access()?.get(scope, key).await
        }

        async fn document(&mut self, scope: wit::Scope) -> Result<String, ConfigError> {
            self.access()?.document(scope).await
        }

        async fn set(
            &mut self,
            scope: wit::Scope,
            key: String,
            value: String,
        ) -> Result<(), ConfigError> {
            self.access()?.set(scope, key, value).await
        }

        async fn delete(&mut self, scope: wit::Scope, key: String) -> Result<(), ConfigError> {
            self.access()?.delete(scope, key).await
        }

        async fn keys(&mut self, scope: wit::Scope) -> Result<Vec<String>, ConfigError> {
            self.access()?.keys(scope)
        }
    };
}

impl wit::Host for Context {
    async fn register(
        &mut self,
        kind: wit::ScopeKind,
        defaults: String,
    ) -> Result<(), ConfigError> {
        let limit = self
            .store
            .backend()
            .map_or(super::StoreConfig::default().max_value_bytes, |store| {
                store.config().max_value_bytes
            });
        let Some(registrations) = &mut self.registering else {
            return Err(ConfigError::Denied(
                "register is only allowed while the plugin describes itself".to_owned(),
            ));
        };
        if defaults.len() > limit {
            return Err(ConfigError::TooLarge(format!(
                "the defaults are {} bytes; the limit is {limit}",
                defaults.len()
            )));
        }
        let defaults: Document = serde_json::from_str(&defaults).map_err(|error| {
            ConfigError::InvalidValue(format!("the defaults are not a JSON object: {error}"))
        })?;
        let kind = kind_of(kind);
        registrations.retain(|(registered, _)| *registered != kind);
        registrations.push((kind, defaults));
        Ok(())
    }

    scoped_calls!();
}

impl host_config::Host for Context {
    scoped_calls!();
}

impl From<StoreError> for ConfigError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::UnknownKey { .. } => ConfigError::UnknownKey(message),
            StoreError::WrongType { .. } | StoreError::Invalid { .. } => {
                ConfigError::InvalidValue(message)
            }
            StoreError::TooLarge { .. } => ConfigError::TooLarge(message),
            StoreError::Unavailable(_) => ConfigError::Unavailable(message),
        }
    }
}

fn scope_of(scope: wit::Scope) -> Result<Scope, ConfigError> {
    let scope = match scope {
        wit::Scope::Global => Scope::Global,
        wit::Scope::Guild(id) => Scope::Guild(id),
        wit::Scope::Channel(id) => Scope::Channel(id),
        wit::Scope::User(id) => Scope::User(id),
        wit::Scope::Member(member) => Scope::Member {
            guild: member.guild_id,
            user: member.user_id,
        },
    };
    scope.check().map_err(ConfigError::InvalidScope)?;
    Ok(scope)
}

fn kind_of(kind: wit::ScopeKind) -> ScopeKind {
    match kind {
        wit::ScopeKind::Global => ScopeKind::Global,
        wit::ScopeKind::Guild => ScopeKind::Guild,
        wit::ScopeKind::Channel => ScopeKind::Channel,
        wit::ScopeKind::User => ScopeKind::User,
        wit::ScopeKind::Member => ScopeKind::Member,
    }
}
