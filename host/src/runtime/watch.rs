//! Hot reload: watches the plugins folder and applies each settled change to the registry.
//! A changed file is compiled in the background and swapped in; a deleted one is unloaded; a
//! broken one is refused while the previous version keeps serving.
//!
//! Only events that can change what a file holds count: creations, writes, renames and
//! removals. Reading a plugin to load it makes access events (open, read, close), and
//! taking those as changes made every load start the next one, forever.

use std::{collections::BTreeSet, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use notify_debouncer_full::{
    DebounceEventResult, Debouncer, RecommendedCache, new_debouncer,
    notify::{EventKind, RecommendedWatcher, RecursiveMode, event::ModifyKind},
};
use tokio::sync::mpsc;

use crate::runtime::{Registry, registry::is_plugin_file};

/// Keeps the watch alive; dropping it stops hot reload.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `dir`; changes are applied one batch at a time, in path order.
pub fn watch(registry: Arc<Registry>, dir: PathBuf, quiet: Duration) -> anyhow::Result<Watcher> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(quiet, None, move |result| {
        // The receiver only goes away with the watcher itself.
        let _ = sender.send(result);
    })
    .context("starting the plugins folder watcher")?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    let task = tokio::spawn(async move {
        while let Some(result) = receiver.recv().await {
            let events = match result {
                Ok(events) => events,
                Err(errors) => {
                    for error in errors {
                        tracing::warn!(folder = %dir.display(), "plugins folder watch error: {error}");
                    }
                    continue;
                }
            };
            let paths: BTreeSet<PathBuf> = events
                .iter()
                .filter(|event| changes_content(&event.kind))
                .flat_map(|event| event.paths.iter())
                .filter(|path| is_plugin_file(path))
                .cloned()
                .collect();
            // Loads first: a plugin renamed from a.wasm to b.wasm is replaced by b.wasm
            // (a.wasm no longer exists, so it is no duplicate), then a.wasm holds nothing
            // to unload, and the plugin never stops serving.
            let (present, gone): (Vec<PathBuf>, Vec<PathBuf>) =
                paths.into_iter().partition(|path| path.is_file());
            for path in present {
                // A failure is logged by the registry; the previous version stays.
                let _ = registry.load_file(&path).await;
            }
            for path in gone {
                registry.unload_file(&path).await;
            }
        }
    });
    Ok(Watcher {
        _debouncer: debouncer,
        task,
    })
}

/// Whether an event may have changed a file's content or presence. `Any` is what watchers
/// report when they cannot tell: a reload of unchanged bytes costs a hash, a missed change
/// costs the operator's deploy.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Modify(modify) => !matches!(modify, ModifyKind::Metadata(_)),
        EventKind::Access(_) | EventKind::Other => false,
    }
}

#[cfg(test)]
mod tests {
    use notify_debouncer_full::notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode,
    };

    use super::*;

    #[test]
    fn reads_and_attribute_changes_are_not_changes() {
        let reads = [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ];
        for kind in reads {
            assert!(!changes_content(&kind), "{kind:?}");
        }
        let changes = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Content)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            EventKind::Remove(RemoveKind::File),
        ];
        for kind in changes {
            assert!(changes_content(&kind), "{kind:?}");
        }
    }
}
