//! The `config` and `host-config` interfaces: a plugin's calls, checked against its grants,
//! served by the store in the plugin's own namespace or in the host's.

use serde_json::Value;

use super::{ConfigStore, Document, Scope, ScopeKind, StoreError, host_settings};
use crate::{
    capabilities::Capability,
    runtime::{
        HostState,
        bindings::wasmbot::plugin::{
            config::{self as wit, ConfigError},
            host_config,
        },
    },
};

/// A store and the namespace a call reads and writes.
struct Access<'a> {
    store: &'a ConfigStore,
    namespace: &'a str,
}

impl HostState {
    /// What a call of `capability` may reach, or why it is refused.
    fn config_access(&mut self, capability: Capability) -> Result<Access<'_>, ConfigError> {
        self.grant(capability).map_err(ConfigError::Denied)?;
        let store = self.services.config.as_deref().ok_or_else(|| {
            ConfigError::Unavailable("this host runs without a config store".to_owned())
        })?;
        let namespace = match capability {
            Capability::HostConfig => host_settings::HOST,
            _ => &self.plugin,
        };
        Ok(Access { store, namespace })
    }
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

/// The calls `config` and `host-config` share, each checked against its capability.
macro_rules! scoped_calls {
    ($capability:expr) => {
        async fn get(&mut self, scope: wit::Scope, key: String) -> Result<String, ConfigError> {
            self.config_access($capability)?.get(scope, key).await
        }

        async fn document(&mut self, scope: wit::Scope) -> Result<String, ConfigError> {
            self.config_access($capability)?.document(scope).await
        }

        async fn set(
            &mut self,
            scope: wit::Scope,
            key: String,
            value: String,
        ) -> Result<(), ConfigError> {
            self.config_access($capability)?
                .set(scope, key, value)
                .await
        }

        async fn delete(&mut self, scope: wit::Scope, key: String) -> Result<(), ConfigError> {
            self.config_access($capability)?.delete(scope, key).await
        }

        async fn keys(&mut self, scope: wit::Scope) -> Result<Vec<String>, ConfigError> {
            self.config_access($capability)?.keys(scope)
        }
    };
}

impl wit::Host for HostState {
    async fn register(
        &mut self,
        kind: wit::ScopeKind,
        defaults: String,
    ) -> Result<(), ConfigError> {
        let limit = self
            .services
            .config
            .as_ref()
            .map_or(super::StoreConfig::default().max_value_bytes, |store| {
                store.config().max_value_bytes
            });
        let Some(registrations) = &mut self.registrations else {
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
        registrations
            .config
            .retain(|(registered, _)| *registered != kind);
        registrations.config.push((kind, defaults));
        Ok(())
    }

    scoped_calls!(Capability::Config);
}

impl host_config::Host for HostState {
    scoped_calls!(Capability::HostConfig);
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
