//! Turning a `.wasm` file into a [`Plugin`]: compile (or read the cache), link, ask for the
//! manifest, check it against the operator's policy. Every refusal says why.

use std::{path::Path, sync::Arc};

use wasmtime::component::Component;

use crate::{
    capabilities::{self, Allowed, GrantError},
    runtime::{
        Failure, Plugin, PluginStats, Runtime,
        bindings::{PluginPre, types::Manifest},
    },
};

/// Why a file was not loaded as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error("not a WebAssembly file")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build it for wasm32-wasip2 (or run `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("not a valid component: {0}")]
    Compile(String),
    #[error("built for another world or version: it needs {0}")]
    Imports(String),
    #[error("does not export the wasmbot:plugin@0.1.0 world: {0}")]
    Exports(String),
    #[error("its describe() failed: {0}")]
    Describe(Failure),
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("plugin {0:?} is disabled in the configuration")]
    Disabled(String),
    #[error("plugin {plugin:?} refused: {error}")]
    Grants { plugin: String, error: GrantError },
    #[error("plugin {plugin:?} is already loaded from {other}")]
    Duplicate { plugin: String, other: String },
    #[error("command {command:?} is already provided by plugin {owner:?}")]
    CommandTaken { command: String, owner: String },
}

impl Runtime {
    /// Loads one plugin from its bytes; `source` names it in logs.
    pub async fn load(
        self: &Arc<Self>,
        source: &Path,
        wasm: Vec<u8>,
        digest: String,
        stats: impl FnOnce(&str) -> Arc<PluginStats>,
    ) -> Result<Plugin, LoadError> {
        check_header(&wasm)?;
        let runtime = Arc::clone(self);
        let key = digest.clone();
        let component = tokio::task::spawn_blocking(move || {
            runtime.cache.get_or_compile(&runtime.engine, &wasm, &key)
        })
        .await
        .map_err(|join| LoadError::Compile(join.to_string()))?
        .map_err(|error| LoadError::Compile(format!("{error:#}")))?;
        let pre = self.prelink(&component)?;
        let manifest = self.describe(&pre).await?;
        let handle = component
            .get_export_index(None, "handle")
            .ok_or_else(|| LoadError::Exports("no `handle` export".into()))?;
        check_manifest(&manifest)?;

        let policy = self.config.policy(&manifest.name);
        if !policy.enabled {
            return Err(LoadError::Disabled(manifest.name));
        }
        let allowed =
            capabilities::allowed(&manifest.capabilities, &policy.grants).map_err(|error| {
                LoadError::Grants {
                    plugin: manifest.name.clone(),
                    error,
                }
            })?;
        let stats = stats(&manifest.name);
        Ok(Plugin {
            runtime: Arc::clone(self),
            name: Arc::from(manifest.name.as_str()),
            manifest,
            policy,
            allowed,
            pre: pre.instance_pre().clone(),
            handle,
            source: source.to_owned(),
            digest,
            stats,
        })
    }

    fn prelink(
        &self,
        component: &Component,
    ) -> Result<PluginPre<crate::runtime::HostState>, LoadError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|error| LoadError::Imports(format!("{error:#}")))?;
        PluginPre::new(pre).map_err(|error| LoadError::Exports(format!("{error:#}")))
    }

    /// Calls `describe` on a fresh instance under the default budgets; no capability is
    /// usable before the manifest has been checked. Binding the instance type-checks every
    /// export once, here, so events can skip it.
    async fn describe(
        &self,
        pre: &PluginPre<crate::runtime::HostState>,
    ) -> Result<Manifest, LoadError> {
        let policy = &self.config.plugin_defaults;
        let mut store = self.store(Arc::from("(loading)"), Allowed::default(), policy);
        let _slot = self.slots.acquire().await;
        let call = async {
            let instance = pre.instance_pre().instantiate_async(&mut store).await?;
            let plugin = crate::runtime::bindings::Plugin::new(&mut store, &instance)?;
            plugin.call_describe(&mut store).await
        };
        match tokio::time::timeout(policy.wall_budget(), call).await {
            Ok(Ok(manifest)) => Ok(manifest),
            Ok(Err(error)) => Err(LoadError::Describe(Failure::of_call(
                error,
                store.data(),
                policy.memory_mib,
            ))),
            Err(_) => Err(LoadError::Describe(Failure::WallClock(
                policy.wall_budget(),
            ))),
        }
    }
}

/// The preamble of a component is `\0asm` and layer 1; a core module's is layer 0.
fn check_header(wasm: &[u8]) -> Result<(), LoadError> {
    match wasm.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => Err(LoadError::CoreModule),
        _ => Err(LoadError::NotWasm),
    }
}

/// Names, commands and options must be usable as typed and as slash commands.
fn check_manifest(manifest: &Manifest) -> Result<(), LoadError> {
    let bad = |what: String| Err(LoadError::Manifest(what));
    if !is_name(&manifest.name) {
        return bad(format!(
            "name {:?}: use 1 to 32 lowercase letters, digits and '-'",
            manifest.name
        ));
    }
    if manifest.version.trim().is_empty() {
        return bad("version is empty".into());
    }
    let mut seen = std::collections::HashSet::new();
    for command in &manifest.commands {
        for name in std::iter::once(&command.name).chain(&command.aliases) {
            if !is_name(name) {
                return bad(format!(
                    "command {name:?}: use 1 to 32 lowercase letters, digits and '-'"
                ));
            }
            if !seen.insert(name.as_str()) {
                return bad(format!("command {name:?} is declared twice"));
            }
        }
        let options = &command.options;
        for (index, option) in options.iter().enumerate() {
            if !is_name(&option.name) {
                return bad(format!(
                    "command {:?}: option {:?}: use lowercase letters, digits and '-'",
                    command.name, option.name
                ));
            }
            let last = index + 1 == options.len();
            if option.kind == crate::runtime::bindings::types::OptionKind::Rest && !last {
                return bad(format!(
                    "command {:?}: option {:?} takes the rest of the line, so it must be last",
                    command.name, option.name
                ));
            }
        }
        let first_optional = options.iter().position(|o| !o.required);
        if let Some(first) = first_optional
            && options[first..].iter().any(|o| o.required)
        {
            return bad(format!(
                "command {:?}: required options must come before optional ones",
                command.name
            ));
        }
    }
    Ok(())
}

fn is_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_components_from_modules_and_junk() {
        assert!(check_header(b"\0asm\x0d\0\x01\0rest").is_ok());
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(matches!(
            check_header(b"hello world"),
            Err(LoadError::NotWasm)
        ));
        assert!(matches!(check_header(b""), Err(LoadError::NotWasm)));
    }

    #[test]
    fn names_are_lowercase_words() {
        assert!(is_name("ping"));
        assert!(is_name("user-profile2"));
        assert!(!is_name("Ping"));
        assert!(!is_name("-x"));
        assert!(!is_name(""));
        assert!(!is_name("a b"));
    }
}
