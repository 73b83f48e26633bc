//! Turning a `.wasm` file into a [`Plugin`]: compile (or read the cache), link, ask for the
//! manifest, check it against the operator's policy. Every refusal says why.

use std::{path::Path, sync::Arc};

use wasmtime::component::Component;

use crate::{
    bindings::{self, types::Manifest},
    capabilities::{
        self, Allowed, Capability, GrantError, Registrations,
        config_store::{Document, ScopeKind},
        metrics::MetricSpec,
        storage::{Migration, MigrationError},
    },
    runtime::{
        Failure, InstanceData, Packaged, Plugin, PluginPolicy, PluginStats, Runtime, plugin::Abi,
    },
};
use wasmtime::component::InstancePre;

/// Why a file was not loaded as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    /// The file is not WebAssembly at all.
    #[error("not a WebAssembly file")]
    NotWasm,
    /// A core module rather than a component.
    #[error(
        "a core WebAssembly module, not a component: build it for wasm32-wasip2 (or run `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component does not validate or compile.
    #[error("not a valid component: {0}")]
    Compile(String),
    /// It was built against a contract version this host does not link.
    #[error(
        "built against {package}@{wanted}, and this host links {package}@{oldest} to {newest}: build it with a wasmbot-sdk of one of those versions, or run a host that supports {wanted}",
        package = bindings::CONTRACT_PACKAGE,
        oldest = bindings::CONTRACT_OLDEST,
        newest = bindings::CONTRACT_VERSION
    )]
    Contract {
        /// The version it asked for.
        wanted: String,
    },
    /// It uses the component model's async ABI, which this host does not run.
    #[error(
        "it uses the component model's async ABI ({0}), and this host runs components of the synchronous ABI only: build it without async exports and imports (some toolchains, e.g. JavaScript's, make them by default)"
    )]
    AsyncAbi(String),
    /// It imports something this host does not provide.
    #[error("built for another world or version: it needs {0}")]
    Imports(String),
    /// It lacks the exports of the plugin world, or they have other types.
    #[error("does not export the wasmbot:plugin world: {0}")]
    Exports(String),
    /// Asking it for its manifest failed.
    #[error("its describe() failed: {0}")]
    Describe(Failure),
    /// An instance does not fit the plugin's own limits.
    #[error("plugin {plugin:?} cannot run within its limits: {failure}")]
    Limits {
        /// The plugin's name.
        plugin: String,
        /// What failed when instantiating it.
        failure: Failure,
    },
    /// The manifest breaks a rule (names, commands, options).
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// The operator disabled it.
    #[error("plugin {0:?} is disabled in the configuration")]
    Disabled(String),
    /// Its section of the configuration does not make a policy.
    #[error("plugin {plugin:?} refused: its [plugins.{plugin}] section is invalid: {error}")]
    Policy {
        /// The plugin's name.
        plugin: String,
        /// Why.
        error: String,
    },
    /// It asks for capabilities it may not have.
    #[error("plugin {plugin:?} refused: {error}")]
    Grants {
        /// The plugin's name.
        plugin: String,
        /// What was refused.
        error: GrantError,
    },
    /// Another file already provides a plugin of that name.
    #[error("plugin {plugin:?} is already loaded from {other}")]
    Duplicate {
        /// The plugin's name.
        plugin: String,
        /// The file that provides it.
        other: String,
    },
    /// Its storage migrations could not be applied; none of them was.
    #[error("plugin {plugin:?}: its storage migrations were not applied: {error}")]
    Migration {
        /// The plugin's name.
        plugin: String,
        /// Why.
        error: MigrationError,
    },
    /// The file holds the bytes it was refused with before; it is tried again once it
    /// changes.
    #[error("unchanged since it was refused")]
    StillRefused,
    /// One of its commands is the host's own.
    #[error(
        "command {command:?} is the host's own: rename or switch off the host's ({key}) to let a plugin have it"
    )]
    CommandReserved {
        /// The command (or alias).
        command: String,
        /// The configuration key that names or switches the host's.
        key: String,
    },
    /// Another plugin already provides one of its commands.
    #[error("command {command:?} is already provided by plugin {owner:?}")]
    CommandTaken {
        /// The command (or alias).
        command: String,
        /// The plugin that has it.
        owner: String,
    },
}

impl Runtime {
    /// Loads one plugin from its bytes (whose content hash is `digest`); `source` names it
    /// in logs. A packaged plugin is granted what its approval says, not the operator's
    /// `grants`.
    pub(crate) async fn load(
        self: &Arc<Self>,
        source: &Path,
        wasm: Vec<u8>,
        digest: String,
        stats: impl FnOnce(&str) -> Arc<PluginStats>,
        package: Option<Packaged>,
    ) -> Result<Plugin, LoadError> {
        check_header(&wasm)?;
        let runtime = Arc::clone(self);
        let key = digest.clone();
        let component = tokio::task::spawn_blocking(move || {
            runtime.cache.get_or_compile(&runtime.engine, &wasm, &key)
        })
        .await
        .map_err(|join| LoadError::Compile(join.to_string()))?
        .map_err(|error| compile_error(format!("{error:#}")))?;
        let contract = check_contract(&component, &self.engine)?;
        let imports = imported_capabilities(&component, &self.engine);
        let (pre, abi) = self.prelink(&component)?;
        let (manifest, registrations) = self.describe(&pre, abi).await?;
        let handle = component
            .get_export_index(None, "handle")
            .ok_or_else(|| LoadError::Exports("no `handle` export".into()))?;
        check_manifest(&manifest)?;

        let mut policy = self
            .policies
            .of(&manifest.name)
            .map_err(|error| LoadError::Policy {
                plugin: manifest.name.clone(),
                error: format!("{error:#}"),
            })?;
        if let Some(package) = &package {
            policy = policy.approved(&package.asks);
        }
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
        // The manifest was read under the default limits: an instance must also fit the
        // plugin's own, or every event would fail.
        self.trial(&pre, &policy)
            .await
            .map_err(|failure| LoadError::Limits {
                plugin: manifest.name.clone(),
                failure,
            })?;
        let Declared {
            config_fields,
            migrations,
            metrics,
        } = declared(&manifest.name, allowed, registrations);
        let stats = stats(&manifest.name);
        Ok(Plugin {
            runtime: Arc::clone(self),
            name: Arc::from(manifest.name.as_str()),
            manifest,
            policy,
            allowed,
            pre,
            abi,
            handle,
            source: source.to_owned(),
            digest,
            imports,
            contract,
            package,
            stats,
            config_fields,
            migrations,
            metrics,
            warm: Default::default(),
        })
    }

    /// Links the component, and tells by its exports' types which contract it was built
    /// against: the newest, or 0.1 (whose calls are adapted).
    fn prelink(
        &self,
        component: &Component,
    ) -> Result<(InstancePre<InstanceData>, Abi), LoadError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|error| LoadError::Imports(format!("{error:#}")))?;
        match bindings::PluginPre::new(pre.clone()) {
            Ok(_) => Ok((pre, Abi::Newest)),
            Err(newest) => match bindings::v0_1::PluginPre::new(pre.clone()) {
                Ok(_) => Ok((pre, Abi::V0_1)),
                Err(_) => Err(LoadError::Exports(format!("{newest:#}"))),
            },
        }
    }

    /// Calls `describe` on a fresh instance under the default budgets; no capability is
    /// usable before the manifest has been checked, but the config fields the plugin
    /// registers are kept for then. Binding the instance type-checks every export once,
    /// here, so events can skip it.
    async fn describe(
        &self,
        pre: &InstancePre<InstanceData>,
        abi: Abi,
    ) -> Result<(Manifest, Registrations), LoadError> {
        let policy = &self.policies.defaults;
        let mut store = self.store(Arc::from("(loading)"), Allowed::default(), policy, None);
        store.data_mut().capabilities.describing();
        let _slot = self.slots.acquire().await;
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            match abi {
                Abi::Newest => {
                    let plugin = bindings::Plugin::new(&mut store, &instance)?;
                    plugin.call_describe(&mut store).await
                }
                Abi::V0_1 => {
                    let plugin = bindings::v0_1::Plugin::new(&mut store, &instance)?;
                    let manifest = plugin.call_describe(&mut store).await?;
                    Ok(bindings::v0_1::manifest(manifest))
                }
            }
        };
        match tokio::time::timeout(policy.wall_budget(), call).await {
            Ok(Ok(manifest)) => {
                let registrations = store.data_mut().capabilities.registrations();
                Ok((manifest, registrations))
            }
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

/// What a plugin declared while describing itself and may use.
struct Declared {
    config_fields: Vec<(ScopeKind, Document)>,
    migrations: Vec<Migration>,
    metrics: Vec<MetricSpec>,
}

/// The config fields, migrations and metrics a plugin declared while describing itself,
/// each kept when it may use the capability.
fn declared(plugin: &str, allowed: Allowed, registrations: Registrations) -> Declared {
    let Registrations {
        mut config,
        mut migrations,
        mut metrics,
    } = registrations;
    if !config.is_empty() && !allowed.contains(Capability::Config) {
        tracing::warn!(
            plugin,
            "its config fields are ignored: its manifest does not ask for \"config\""
        );
        config.clear();
    }
    if !migrations.is_empty() && !allowed.contains(Capability::Storage) {
        tracing::warn!(
            plugin,
            "its migrations are ignored: its manifest does not ask for \"storage\""
        );
        migrations.clear();
    }
    if !metrics.is_empty() && !allowed.contains(Capability::Metrics) {
        tracing::warn!(
            plugin,
            "its metrics are ignored: its manifest does not ask for \"metrics\""
        );
        metrics.clear();
    }
    Declared {
        config_fields: config,
        migrations,
        metrics,
    }
}

impl Runtime {
    /// Instantiates once under `policy`, to refuse at load what could never run.
    async fn trial(
        &self,
        pre: &InstancePre<InstanceData>,
        policy: &PluginPolicy,
    ) -> Result<(), Failure> {
        let mut store = self.store(Arc::from("(loading)"), Allowed::default(), policy, None);
        let _slot = self.slots.acquire().await;
        match pre.instantiate_async(&mut store).await {
            Ok(_) => Ok(()),
            Err(error) => Err(Failure::of_instantiation(
                error,
                store.data(),
                policy.memory_mib,
            )),
        }
    }
}

/// A component the validator refuses; the async ABI is named apart, with what to do.
fn compile_error(error: String) -> LoadError {
    // wasmtime's words for every async built-in (`task.return`, `stream.new`...).
    if error.contains("requires the component model async feature") {
        LoadError::AsyncAbi(error)
    } else {
        LoadError::Compile(error)
    }
}

/// The contract version each `wasmbot:plugin` import asks for must be one this host links:
/// said plainly, before the linker reports a missing function of a version it never had.
/// The newest of them is the one it was built against.
fn check_contract(
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<Option<semver::Version>, LoadError> {
    let prefix = format!("{}/", bindings::CONTRACT_PACKAGE);
    let component_type = component.component_type();
    let mut newest: Option<semver::Version> = None;
    for (name, _) in component_type.imports(engine) {
        let Some((_, wanted)) = name
            .strip_prefix(&prefix)
            .and_then(|interface| interface.split_once('@'))
        else {
            continue;
        };
        match semver::Version::parse(wanted) {
            Ok(version) if bindings::accepts(&version) => {
                if newest.as_ref().is_none_or(|newest| version > *newest) {
                    newest = Some(version);
                }
            }
            _ => {
                return Err(LoadError::Contract {
                    wanted: wanted.to_owned(),
                });
            }
        }
    }
    Ok(newest)
}

/// The capabilities whose interfaces the component imports, whatever its manifest says.
fn imported_capabilities(component: &Component, engine: &wasmtime::Engine) -> Vec<Capability> {
    let mut imports: Vec<Capability> = component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| Capability::of_import(name))
        .collect();
    imports.sort();
    imports.dedup();
    imports
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
    if manifest.name == crate::capabilities::config_store::host_settings::HOST {
        return bad(format!("name {:?} is the host's own", manifest.name));
    }
    if manifest.commands.len() > MAX_COMMANDS {
        return bad(format!(
            "{} commands; at most {MAX_COMMANDS}",
            manifest.commands.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for command in &manifest.commands {
        if command.options.len() > MAX_OPTIONS {
            return bad(format!(
                "command {:?} has {} options; at most {MAX_OPTIONS}",
                command.name,
                command.options.len()
            ));
        }
        if command.description.chars().count() > MAX_DESCRIPTION {
            return bad(format!(
                "command {:?}: description over {MAX_DESCRIPTION} characters",
                command.name
            ));
        }
        for name in command.names() {
            if !is_name(name) {
                return bad(format!(
                    "command {name:?}: use 1 to 32 lowercase letters, digits and '-'"
                ));
            }
            if !seen.insert(name.as_str()) {
                return bad(format!("command {name:?} is declared twice"));
            }
        }
        if let Some(unknown) = command
            .permissions
            .iter()
            .find(|name| crate::permissions::bit(name).is_none())
        {
            return bad(format!(
                "command {:?} requires unknown permission {unknown:?} (known: {})",
                command.name,
                crate::permissions::names()
            ));
        }
        if let Some(cooldown) = &command.cooldown
            && (cooldown.limit == 0 || !(1..=MAX_COOLDOWN_MS).contains(&cooldown.window_ms))
        {
            return bad(format!(
                "command {:?}: a cooldown needs a limit of at least 1 and a window of 1 ms to 30 days",
                command.name
            ));
        }
        let mut locales = std::collections::HashSet::new();
        for localization in &command.localizations {
            let locale = localization.locale.as_str();
            if !LOCALES.contains(&locale) {
                return bad(format!(
                    "command {:?}: unknown locale {locale:?} (known: {})",
                    command.name,
                    LOCALES.join(", ")
                ));
            }
            if !locales.insert(locale) {
                return bad(format!(
                    "command {:?}: locale {locale:?} is given twice",
                    command.name
                ));
            }
            if let Some(name) = &localization.name
                && !is_name(name)
            {
                return bad(format!(
                    "command {:?}: {locale} name {name:?}: use 1 to 32 lowercase letters, digits and '-'",
                    command.name
                ));
            }
            if localization.description.chars().count() > MAX_DESCRIPTION {
                return bad(format!(
                    "command {:?}: {locale} description over {MAX_DESCRIPTION} characters",
                    command.name
                ));
            }
        }
        let options = &command.options;
        let mut option_names = std::collections::HashSet::new();
        for (index, option) in options.iter().enumerate() {
            if !option_names.insert(option.name.as_str()) {
                return bad(format!(
                    "command {:?}: option {:?} is declared twice",
                    command.name, option.name
                ));
            }
            if !is_name(&option.name) {
                return bad(format!(
                    "command {:?}: option {:?}: use lowercase letters, digits and '-'",
                    command.name, option.name
                ));
            }
            let last = index + 1 == options.len();
            if option.kind == crate::bindings::types::OptionKind::Rest && !last {
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

/// Limits a platform puts on command lists (Discord's, the strictest).
const MAX_COMMANDS: usize = 100;
const MAX_OPTIONS: usize = 25;
const MAX_DESCRIPTION: usize = 100;
/// The longest cooldown window: thirty days.
const MAX_COOLDOWN_MS: u64 = 30 * 24 * 3600 * 1000;
/// The locales Discord localizes commands in (its list, which `help` follows too).
const LOCALES: &[&str] = &[
    "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu", "nl",
    "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru", "uk", "hi", "th",
    "zh-CN", "ja", "zh-TW", "ko",
];

fn is_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
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
    fn commands_may_require_only_known_permissions() {
        let manifest = |permission: &str| Manifest {
            name: "mod".into(),
            version: "0.1.0".into(),
            description: String::new(),
            commands: vec![crate::bindings::types::CommandSpec {
                name: "ban".into(),
                description: String::new(),
                aliases: Vec::new(),
                options: Vec::new(),
                permissions: vec![permission.into()],
                staff_only: false,
                cooldown: None,
                localizations: Vec::new(),
            }],
            events: Vec::new(),
            capabilities: Vec::new(),
            enabled_by_default: true,
        };
        assert!(check_manifest(&manifest("ban-members")).is_ok());
        let error = check_manifest(&manifest("ban-everyone"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown permission \"ban-everyone\""),
            "{error}"
        );
    }

    #[test]
    fn names_are_lowercase_words() {
        assert!(is_name("ping"));
        assert!(is_name("user-profile2"));
        assert!(!is_name("Ping"));
        assert!(!is_name("-x"));
        assert!(!is_name("x-"));
        assert!(!is_name(""));
        assert!(!is_name("a b"));
    }
}
