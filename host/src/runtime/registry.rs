//! The plugins of one host, swapped atomically: readers take a snapshot and keep the
//! versions they hold until they are done with them.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use arc_swap::ArcSwap;
use futures::StreamExt;
use tokio::sync::broadcast;

use crate::{
    bindings::types::{CommandSpec, EventType},
    runtime::{LoadError, Packaged, Plugin, PluginStats, Runtime, cache::digest},
};

/// The plugins loaded at one moment.
#[derive(Default, Clone)]
pub struct Snapshot {
    plugins: BTreeMap<String, Arc<Plugin>>,
    files: HashMap<PathBuf, String>,
    commands: HashMap<String, (String, usize)>,
    /// The commands the host answers itself, by name.
    reserved: BTreeMap<String, HostCommand>,
}

/// A command the host answers itself (its help, the guild admins' commands): no plugin may
/// declare its name.
#[derive(Debug, Clone)]
pub struct HostCommand {
    /// Its declaration, as `help` shows it.
    pub spec: CommandSpec,
    /// The configuration key that names or switches it, for the refusal of a plugin that
    /// wants its name.
    pub key: &'static str,
    /// Whether it is also a Discord slash command.
    pub slash: bool,
}

/// A plugin file read and checked, not serving yet.
enum Prepared {
    /// Loaded and checked.
    Plugin(Box<Plugin>),
    /// Nothing to do (the same bytes already serve).
    Done(Change),
    /// Refused, with the digest of the bytes when they could be read.
    Refused(LoadError, Option<String>),
    /// The same bytes as last refused.
    StillRefused,
}

impl Snapshot {
    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.get(name)
    }

    /// Every plugin, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.values()
    }

    /// The plugin and declaration behind a command name or alias.
    pub fn command(&self, name: &str) -> Option<(&Arc<Plugin>, &CommandSpec)> {
        let (plugin, index) = self.commands.get(name)?;
        let plugin = self.plugins.get(plugin)?;
        Some((plugin, plugin.manifest().commands.get(*index)?))
    }

    /// The command the host answers itself under `name`, if any.
    pub fn host_command(&self, name: &str) -> Option<&HostCommand> {
        self.reserved.get(name)
    }

    /// The commands the host answers itself.
    pub fn host_commands(&self) -> impl Iterator<Item = &HostCommand> {
        self.reserved.values()
    }

    /// The plugins subscribed to an event type.
    pub fn subscribers(&self, event: EventType) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins
            .values()
            .filter(move |plugin| plugin.manifest().events.contains(&event))
    }

    fn insert(&mut self, plugin: Arc<Plugin>) {
        self.remove(plugin.name());
        for (index, command) in plugin.manifest().commands.iter().enumerate() {
            for name in command.names() {
                self.commands
                    .insert(name.clone(), (plugin.name().to_owned(), index));
            }
        }
        self.files
            .insert(plugin.source().to_owned(), plugin.name().to_owned());
        self.plugins.insert(plugin.name().to_owned(), plugin);
    }

    fn remove(&mut self, name: &str) -> Option<Arc<Plugin>> {
        let plugin = self.plugins.remove(name)?;
        self.commands.retain(|_, (owner, _)| owner != name);
        self.files.retain(|_, owner| owner != name);
        Some(plugin)
    }

    /// Refuses a plugin whose name or commands another file already provides.
    fn check_conflicts(&self, plugin: &Plugin) -> Result<(), LoadError> {
        // A file that is gone (renamed to the new one) does not hold its plugin.
        if let Some(existing) = self.plugins.get(plugin.name())
            && existing.source() != plugin.source()
            && holds(existing.source())
        {
            return Err(LoadError::Duplicate {
                plugin: plugin.name().to_owned(),
                other: existing.source().display().to_string(),
            });
        }
        for command in &plugin.manifest().commands {
            for name in command.names() {
                if let Some(host) = self.reserved.get(name) {
                    return Err(LoadError::CommandReserved {
                        command: name.clone(),
                        key: host.key.to_owned(),
                    });
                }
                if let Some((owner, _)) = self.commands.get(name)
                    && owner != plugin.name()
                {
                    return Err(LoadError::CommandTaken {
                        command: name.clone(),
                        owner: owner.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// What a change to the registry did, for logs, watchers and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A plugin that was not loaded is now.
    Loaded {
        /// Its name.
        plugin: String,
        /// Its version.
        version: String,
    },
    /// A new version of a loaded plugin replaced the old one.
    Replaced {
        /// Its name.
        plugin: String,
        /// The version that was serving.
        old: String,
        /// The version that serves now.
        new: String,
    },
    /// A plugin's file is gone, and the plugin with it.
    Unloaded {
        /// Its name.
        plugin: String,
    },
    /// The file changed on disk but its bytes did not.
    Unchanged {
        /// Its name.
        plugin: String,
    },
    /// A file was refused; the previous version, if any, keeps serving.
    Refused {
        /// The file.
        file: PathBuf,
        /// Why, as logged.
        reason: String,
    },
}

/// The registry of plugins of one host.
pub struct Registry {
    runtime: Arc<Runtime>,
    current: ArcSwap<Snapshot>,
    /// Serializes changes: two reloads never build snapshots from the same base.
    changes: tokio::sync::Mutex<()>,
    stats: Mutex<HashMap<String, Arc<PluginStats>>>,
    /// Every plugin's event durations, labelled by plugin.
    latency: prometheus::HistogramVec,
    changed: broadcast::Sender<Change>,
    /// Files read to be loaded since the host started.
    loads: AtomicU64,
    /// The content hash each refused file was refused with: the same bytes are not tried
    /// again, so a broken plugin costs one log line, not one per event on its file.
    refused: Mutex<HashMap<PathBuf, String>>,
}

impl Registry {
    /// An empty registry on `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            current: ArcSwap::from_pointee(Snapshot::default()),
            changes: tokio::sync::Mutex::new(()),
            stats: Mutex::default(),
            latency: latency_histogram(),
            changed: broadcast::channel(64).0,
            loads: AtomicU64::new(0),
            refused: Mutex::default(),
        })
    }

    /// How many times a plugin file was read to be loaded since the host started (the
    /// start-up scan, reloads, and files found unchanged or still refused).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Every change from now on, as it happens (a slow reader misses the oldest ones).
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.changed.subscribe()
    }

    fn announce(&self, change: Change) {
        // Nobody listening is fine: the log line has been written.
        let _ = self.changed.send(change);
    }

    /// The runtime its plugins run on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The plugins now; cheap, never blocks.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The counters of a plugin, kept across reloads.
    pub fn stats(&self, plugin: &str) -> Arc<PluginStats> {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let latency = || PluginStats::new(self.latency.with_label_values(&[plugin]));
        Arc::clone(
            stats
                .entry(plugin.to_owned())
                .or_insert_with(|| Arc::new(latency())),
        )
    }

    /// Every plugin's counters since the host started, loaded now or not.
    pub fn all_stats(&self) -> Vec<(String, Arc<PluginStats>)> {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats
            .iter()
            .map(|(name, stats)| (name.clone(), Arc::clone(stats)))
            .collect()
    }

    /// Every plugin's event durations (`wasmbot_event_seconds{plugin}`).
    pub fn latency(&self) -> &prometheus::HistogramVec {
        &self.latency
    }

    /// Loads every `*.wasm` in `dir` ([`Registry::load_files`]). A file that fails is
    /// logged and skipped.
    pub async fn load_dir(&self, dir: &Path) -> anyhow::Result<Vec<Change>> {
        let files = plugin_files(dir)?;
        let loaded = self.load_files(&files).await;
        Ok(loaded.into_iter().filter_map(Result::ok).collect())
    }

    /// Loads `files`, in their order, as [`Registry::load_file`] does each.
    ///
    /// Compiling is most of a load, and one plugin's compilation keeps the cores busy only
    /// part of the time: as many files as there are cores are prepared side by side. Each
    /// serves as soon as it and the files before it are in, so a clash of names or
    /// commands is decided by the files' order, as when they load one by one.
    pub async fn load_files(&self, files: &[PathBuf]) -> Vec<Result<Change, LoadError>> {
        let side_by_side = std::thread::available_parallelism().map_or(1, usize::from);
        // Owned paths: a closure over borrowed ones makes the future not `Send` for any
        // lifetime (rust-lang/rust#64552).
        let mut prepared = futures::stream::iter(files.to_vec())
            .map(|file| async move {
                let prepared = self.prepare_file(&file).await;
                (file, prepared)
            })
            .buffered(side_by_side);
        let mut loaded = Vec::with_capacity(files.len());
        while let Some((file, prepared)) = prepared.next().await {
            loaded.push(self.finish_file(&file, prepared).await);
        }
        loaded
    }

    /// Loads or reloads the plugin in `path`. On failure the previous version (if any) keeps
    /// serving and the reason is logged once, naming the file: the same bytes are refused
    /// again without a word ([`LoadError::StillRefused`]) until the file changes.
    pub async fn load_file(&self, path: &Path) -> Result<Change, LoadError> {
        let prepared = self.prepare_file(path).await;
        self.finish_file(path, prepared).await
    }

    /// Reads, compiles and checks the plugin in `path`, without making it serve.
    async fn prepare_file(&self, path: &Path) -> Prepared {
        self.loads.fetch_add(1, Ordering::Relaxed);
        let wasm = match tokio::fs::read(path).await {
            Ok(wasm) => wasm,
            Err(error) => return Prepared::Refused(error.into(), None),
        };
        let digest = digest(&wasm);
        if self.refused_before(path, &digest) {
            tracing::debug!(file = %path.display(), "plugin unchanged since it was refused");
            return Prepared::StillRefused;
        }
        // Watchers report one write as several events: the same bytes are not reloaded.
        let current = self.snapshot();
        if let Some(name) = current.files.get(path)
            && let Some(plugin) = current.plugin(name)
            && plugin.digest() == digest
        {
            return Prepared::Done(Change::Unchanged {
                plugin: name.clone(),
            });
        }
        match self
            .runtime
            .load(path, wasm, digest.clone(), |name| self.stats(name), None)
            .await
        {
            Ok(plugin) => Prepared::Plugin(Box::new(plugin)),
            Err(error) => Prepared::Refused(error, Some(digest)),
        }
    }

    /// Makes a prepared plugin serve, and logs and announces what changed.
    async fn finish_file(&self, path: &Path, prepared: Prepared) -> Result<Change, LoadError> {
        let (result, digest) = match prepared {
            Prepared::StillRefused => return Err(LoadError::StillRefused),
            Prepared::Done(change) => (Ok(change), None),
            Prepared::Plugin(plugin) => {
                let digest = plugin.digest().to_owned();
                (self.swap_in(*plugin).await, Some(digest))
            }
            Prepared::Refused(error, digest) => (Err(error), digest),
        };
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(change @ Change::Unchanged { .. }) => {
                tracing::debug!(file = %path.display(), "{change}");
            }
            Ok(change) => {
                refused.remove(path);
                tracing::info!(file = %path.display(), "{change}");
                self.announce(change.clone());
            }
            Err(error) => {
                if let Some(digest) = digest {
                    refused.insert(path.to_owned(), digest);
                }
                tracing::error!(file = %path.display(), "plugin not loaded: {error}");
                self.announce(Change::Refused {
                    file: path.to_owned(),
                    reason: error.to_string(),
                });
            }
        }
        result
    }

    fn refused_before(&self, path: &Path, digest: &str) -> bool {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.get(path).is_some_and(|refused| refused == digest)
    }

    /// Makes `plugin` serve in place of its previous version, if any: events in flight
    /// finish on the version they started on.
    async fn swap_in(&self, plugin: Plugin) -> Result<Change, LoadError> {
        let path = plugin.source().to_owned();
        let _change = self.changes.lock().await;
        let mut next = Snapshot::clone(&self.current.load());
        // The watcher and the start-up scan can load the same bytes at once: the second
        // finds the first's work done.
        if let Some(installed) = next.plugin(plugin.name())
            && installed.source() == path
            && installed.digest() == plugin.digest()
        {
            return Ok(Change::Unchanged {
                plugin: plugin.name().to_owned(),
            });
        }
        // The file may have held another plugin before: that one goes.
        let previous_owner = next.files.get(&path).cloned();
        if let Some(owner) = previous_owner.filter(|owner| owner != plugin.name()) {
            next.remove(&owner);
            self.forget_config(&owner);
        }
        next.check_conflicts(&plugin)?;
        plugin.migrate().await?;
        plugin.register_config();
        let new = plugin.manifest().version.clone();
        let name = plugin.name().to_owned();
        let old = next.plugin(&name).map(|p| p.manifest().version.clone());
        next.insert(Arc::new(plugin));
        self.current.store(Arc::new(next));
        Ok(match old {
            Some(old) => Change::Replaced {
                plugin: name,
                old,
                new,
            },
            None => Change::Loaded {
                plugin: name,
                version: new,
            },
        })
    }

    /// Compiles and checks a packaged plugin, granted what its package asks for, without
    /// making it serve: what an install verifies before it records anything.
    pub async fn prepare_package(
        &self,
        name: &str,
        wasm: Vec<u8>,
        package: Packaged,
    ) -> Result<Plugin, LoadError> {
        let digest = digest(&wasm);
        let source = package_source(name);
        self.runtime
            .load(
                &source,
                wasm,
                digest,
                |name| self.stats(name),
                Some(package),
            )
            .await
    }

    /// Keeps command names for the host (its help, the guild admins' commands); plugins
    /// loaded from now on may not declare them.
    pub fn reserve(&self, commands: Vec<HostCommand>) {
        let reserved: BTreeMap<String, HostCommand> = commands
            .into_iter()
            .map(|command| (command.spec.name.clone(), command))
            .collect();
        self.current.rcu(|current| {
            let mut next = Snapshot::clone(current);
            next.reserved.clone_from(&reserved);
            next
        });
    }

    /// Whether `plugin` could serve beside the others: its name and commands are free.
    pub fn conflicts(&self, plugin: &Plugin) -> Result<(), LoadError> {
        self.snapshot().check_conflicts(plugin)
    }

    /// Makes a prepared packaged plugin serve (replacing its previous version).
    pub async fn install_package(&self, plugin: Plugin) -> Result<Change, LoadError> {
        let change = self.swap_in(plugin).await?;
        if !matches!(change, Change::Unchanged { .. }) {
            tracing::info!("{change}");
            self.announce(change.clone());
        }
        Ok(change)
    }

    /// Unloads the packaged plugin `name`, if it serves.
    pub async fn remove_package(&self, name: &str) -> Option<Change> {
        self.unload_file(&package_source(name)).await
    }

    /// What the backends keep of an unloaded plugin goes with it: its settings fields,
    /// metrics and queues (its stored values stay).
    fn forget_config(&self, plugin: &str) {
        self.runtime.backends().forget(plugin);
    }

    /// Unloads the plugin that was loaded from `path`, if any.
    pub async fn unload_file(&self, path: &Path) -> Option<Change> {
        {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            refused.remove(path);
        }
        let _change = self.changes.lock().await;
        let mut next = Snapshot::clone(&self.current.load());
        let name = next.files.get(path)?.clone();
        next.remove(&name);
        self.forget_config(&name);
        self.current.store(Arc::new(next));
        let change = Change::Unloaded { plugin: name };
        tracing::info!(file = %path.display(), "{change}");
        self.announce(change.clone());
        Some(change)
    }
}

fn latency_histogram() -> prometheus::HistogramVec {
    let opts = prometheus::HistogramOpts::new(
        "wasmbot_event_seconds",
        "Time to handle one event, per plugin (instantiation included).",
    )
    .buckets(vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]);
    match prometheus::HistogramVec::new(opts, &["plugin"]) {
        Ok(histogram) => histogram,
        // The name, help and label above are valid: this cannot happen.
        Err(error) => unreachable!("latency histogram: {error}"),
    }
}

/// Where a packaged plugin says it was loaded from: not a file (its bytes are in the
/// database), and never one of the plugins folder.
pub fn package_source(name: &str) -> PathBuf {
    PathBuf::from(format!("{PACKAGE_SOURCE}{name}"))
}

const PACKAGE_SOURCE: &str = "package:";

/// Whether a plugin's source still provides it: its file exists, or it is a package.
fn holds(source: &Path) -> bool {
    source
        .to_str()
        .is_some_and(|s| s.starts_with(PACKAGE_SOURCE))
        || source.exists()
}

/// Plugins are the `*.wasm` files of the folder; anything else there is ignored.
pub fn is_plugin_file(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "wasm")
}

/// The plugin files of `dir`, in name order.
pub fn plugin_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read plugins folder {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| is_plugin_file(path))
        .collect();
    files.sort();
    Ok(files)
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Loaded { plugin, version } => write!(f, "plugin {plugin} {version} loaded"),
            Change::Replaced { plugin, old, new } => {
                write!(f, "plugin {plugin} {old} replaced by {new}")
            }
            Change::Unloaded { plugin } => write!(f, "plugin {plugin} unloaded"),
            Change::Unchanged { plugin } => write!(f, "plugin {plugin} unchanged"),
            Change::Refused { file, reason } => {
                write!(f, "{} refused: {reason}", file.display())
            }
        }
    }
}
