//! Grants: a plugin may use a capability when its manifest asks for it and the operator
//! granted it. The allowed set is computed once per load ([`allowed`]); each capability's
//! context holds its own [`Grant`] and checks it at every call.

use std::sync::Arc;

use super::{Capability, Instance};

/// The capabilities one plugin may use: asked for in its manifest and granted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed(u64);

impl Allowed {
    /// Whether the plugin may use `capability`.
    pub fn contains(self, capability: Capability) -> bool {
        self.0 & bit(capability) != 0
    }

    /// Allows `capability`.
    pub fn insert(&mut self, capability: Capability) {
        self.0 |= bit(capability);
    }
}

fn bit(capability: Capability) -> u64 {
    1 << (capability as u32)
}

/// Why a manifest's capabilities were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// No capability of that name exists.
    #[error("its manifest asks for unknown capability {0:?} (this host provides: {known})", known = Capability::names())]
    Unknown(String),
    /// The operator did not grant it.
    #[error("its manifest asks for capability \"{0}\", which the operator has not granted it")]
    NotGranted(Capability),
}

/// Checks what a manifest asks for against the operator's grants.
pub fn allowed(asked: &[String], granted: &[String]) -> Result<Allowed, GrantError> {
    let mut allowed = Allowed::default();
    for name in asked {
        let capability =
            Capability::from_name(name).ok_or_else(|| GrantError::Unknown(name.clone()))?;
        if !granted.iter().any(|grant| grant == name) {
            return Err(GrantError::NotGranted(capability));
        }
        allowed.insert(capability);
    }
    Ok(allowed)
}

/// One capability's grant in one instance: the check every call of it makes.
pub struct Grant {
    plugin: Arc<str>,
    capability: Capability,
    granted: bool,
    denied_noted: bool,
}

impl Grant {
    /// The grant of `capability` to the instance's plugin.
    pub fn new(instance: &Instance, capability: Capability) -> Self {
        Self {
            plugin: Arc::clone(&instance.plugin),
            capability,
            granted: instance.allowed.contains(capability),
            denied_noted: false,
        }
    }

    /// The plugin the instance runs.
    pub fn plugin(&self) -> &Arc<str> {
        &self.plugin
    }

    /// The capability it grants.
    pub fn capability(&self) -> Capability {
        self.capability
    }

    /// Whether the plugin may use the capability.
    pub fn granted(&self) -> bool {
        self.granted
    }

    /// Whether the plugin may call the capability; if not, why (for its `denied` error),
    /// logged once per event.
    pub fn check(&mut self) -> Result<(), String> {
        if self.granted {
            return Ok(());
        }
        if !std::mem::replace(&mut self.denied_noted, true) {
            tracing::warn!(
                plugin = &*self.plugin,
                capability = self.capability.name(),
                "denied: the plugin called a capability it did not ask for or was not granted"
            );
        }
        Err(format!(
            "the plugin may not use \"{}\": ask for it in the manifest and have the operator grant it",
            self.capability
        ))
    }
}

/// A capability's grant and its backend: what most contexts are.
pub struct Reach<B: ?Sized> {
    grant: Grant,
    backend: Option<Arc<B>>,
    /// What the backend is called in "this host runs without ...".
    what: &'static str,
}

impl<B: ?Sized> Reach<B> {
    /// `grant`'s reach of `backend`, named `what` when it is missing.
    pub fn new(grant: Grant, backend: Option<Arc<B>>, what: &'static str) -> Self {
        Self {
            grant,
            backend,
            what,
        }
    }

    /// The backend, when the plugin may call it and the host has it; otherwise the
    /// capability's error: `denied` or, without the backend, `missing`.
    pub fn get<E>(
        &mut self,
        denied: impl FnOnce(String) -> E,
        missing: impl FnOnce(String) -> E,
    ) -> Result<&B, E> {
        self.grant.check().map_err(denied)?;
        let what = self.what;
        self.backend
            .as_deref()
            .ok_or_else(|| missing(format!("this host runs without {what}")))
    }

    /// The backend, whatever the grant (for what needs no grant, e.g. which database).
    pub fn backend(&self) -> Option<&B> {
        self.backend.as_deref()
    }

    /// The plugin the instance runs.
    pub fn plugin(&self) -> &Arc<str> {
        self.grant.plugin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_set_is_the_granted_part_of_the_manifest() {
        let allowed = allowed(&["log".into()], &["log".into()]).unwrap();
        assert!(allowed.contains(Capability::Log));
        assert!(!Allowed::default().contains(Capability::Log));
    }

    #[test]
    fn unknown_and_ungranted_capabilities_are_refused_by_name() {
        assert_eq!(
            allowed(&["teleport".into()], &["log".into()]),
            Err(GrantError::Unknown("teleport".into()))
        );
        assert_eq!(
            allowed(&["log".into()], &[]),
            Err(GrantError::NotGranted(Capability::Log))
        );
    }
}
