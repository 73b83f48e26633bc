//! Compiled components on disk, keyed by content hash and engine, so a restart does not
//! recompile. Bounded: other engines' folders and entries unused for a month are removed at
//! start-up.

use std::{
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::{Engine, component::Component};

/// Entries not used for this long are removed at start-up.
const UNUSED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// The compiled-component cache of one engine.
pub struct ComponentCache {
    /// `<cache_dir>/<engine key>`, or none when caching is off.
    dir: Option<PathBuf>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ComponentCache {
    /// A cache under `root`; an empty path turns caching off.
    pub fn new(engine: &Engine, root: &Path) -> Self {
        let dir = (!root.as_os_str().is_empty()).then(|| {
            // Artifacts of another wasmtime version or configuration must never be loaded:
            // the engine's compatibility hash names the folder.
            let mut hasher = DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            root.join(format!("{:016x}", hasher.finish()))
        });
        if let Some(dir) = &dir {
            prune(root, dir);
        }
        Self {
            dir,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Loads the compiled form of `wasm` (whose [`digest`] is `digest`) from disk, or
    /// compiles and stores it.
    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
    ) -> anyhow::Result<Component> {
        let Some(dir) = &self.dir else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(Component::new(engine, wasm)?);
        };
        let path = dir.join(format!("{digest}.cwasm"));
        // Read into memory rather than mapping the file: a cache file changed under a
        // mapping would crash the host (SIGBUS), a changed copy only fails to load.
        if let Ok(bytes) = fs::read(&path) {
            // SAFETY: this runs native code from the cache folder, so the folder must be
            // writable by the bot alone (`store` creates it 0700). Its files are written
            // only by `store`, from an engine with the same compatibility hash, and
            // wasmtime checks their header and settings before using them.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    // The modification time marks the last use, for `prune`.
                    let touched = fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|file| file.set_modified(SystemTime::now()));
                    if let Err(error) = touched {
                        tracing::debug!(path = %path.display(), "cache entry not touched: {error}");
                    }
                    return Ok(component);
                }
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    "cache.unreadable: recompiling: {error:#}"
                ),
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let component = Component::new(engine, wasm)?;
        if let Err(error) = component
            .serialize()
            .map_err(anyhow::Error::from)
            .and_then(|compiled| store(dir, &path, &compiled))
        {
            tracing::warn!(path = %path.display(), "cache.write_failed: {error:#}");
        }
        Ok(component)
    }

    /// Components loaded from disk since start.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Components compiled since start.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

/// The content hash that identifies a component, in the cache and across reloads.
pub fn digest(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

/// Removes the folders of other engines (older wasmtime versions or settings) and the
/// entries of this one unused for [`UNUSED_FOR`]. Failures only cost disk space: logged.
fn prune(root: &Path, current: &Path) {
    let is_engine_folder = |path: &Path| {
        path.is_dir()
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|name| name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let stale_entry = |path: &Path| {
        path.extension().is_some_and(|ext| ext == "cwasm")
            && fs::metadata(path)
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > UNUSED_FOR)
    };
    let entries = |dir: &Path| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    for path in entries(root)
        .into_iter()
        .filter(|p| p != current && is_engine_folder(p))
    {
        if let Err(error) = fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), "cache.prune_failed: {error}");
        }
    }
    for path in entries(current).into_iter().filter(|p| stale_entry(p)) {
        if let Err(error) = fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), "cache.prune_failed: {error}");
        }
    }
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn store(dir: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let unique = WRITES.fetch_add(1, Ordering::Relaxed);
    let temporary = path.with_extension(format!("tmp{}-{unique}", std::process::id()));
    fs::write(&temporary, bytes).with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, path).with_context(|| format!("renaming to {}", path.display()))
}
