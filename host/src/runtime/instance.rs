//! What one instance carries while it handles one event: its WASI context, its memory cap,
//! its CPU clock, and each capability's context.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use wasmtime::ResourceLimiter;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::{
    capabilities::{Contexts, HasContexts, InstanceMemory},
    runtime::{PluginStats, budget::CpuClock, stderr::CappedStderr},
};

/// Bytes of a plugin's stderr kept per event (a panic message fits).
const STDERR_BYTES: usize = 4 * 1024;

/// The data of one instance: built fresh for every event, dropped with the instance.
pub struct InstanceData {
    pub(crate) memory: MemoryCap,
    pub(crate) cpu: CpuClock,
    wasi: Wasi,
    /// The instance's WASI resources (`wasi:http`'s included).
    table: ResourceTable,
    /// Each capability's context.
    pub(crate) capabilities: Contexts,
}

impl InstanceData {
    pub(crate) fn new(
        memory: MemoryCap,
        cpu: CpuClock,
        wasi: Wasi,
        capabilities: Contexts,
    ) -> Self {
        Self {
            memory,
            cpu,
            wasi,
            table: ResourceTable::new(),
            capabilities,
        }
    }

    /// What the plugin wrote to stderr (a Rust panic message lands there), lossy UTF-8.
    pub(crate) fn stderr(&self) -> String {
        self.wasi.stderr.contents()
    }

    /// Forgets what the plugin wrote to stderr, for a kept instance's next event.
    pub(crate) fn clear_stderr(&self) {
        self.wasi.stderr.clear();
    }

    /// Gives back the WASI context for another event.
    pub(crate) fn into_wasi(self) -> Wasi {
        self.wasi
    }
}

impl WasiView for InstanceData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.capabilities.http.view(&mut self.table)
    }
}

impl HasContexts for InstanceData {
    fn contexts(&mut self) -> &mut Contexts {
        &mut self.capabilities
    }
}

/// A WASI context and the stderr it writes to. No files, no sockets, no environment but
/// what the operator gave the plugin: it reaches the world only through the capabilities
/// it was granted (`wasi:http` included).
pub(crate) struct Wasi {
    ctx: WasiCtx,
    stderr: CappedStderr,
    /// Whether it holds a plugin's own environment (then it is not shared).
    own_env: bool,
}

impl Wasi {
    fn new(env: &BTreeMap<String, String>) -> Self {
        let stderr = CappedStderr::new(STDERR_BYTES);
        let mut builder = WasiCtx::builder();
        builder
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false);
        for (key, value) in env {
            builder.env(key, value);
        }
        Self {
            ctx: builder.build(),
            stderr,
            own_env: !env.is_empty(),
        }
    }
}

/// WASI contexts of finished events. Building one seeds random generators (a third of a
/// microsecond, a good part of an event's host overhead); a context holds no event's
/// state once its stderr is cleared (resources live in the per-event table), so it is
/// reused.
pub(crate) struct WasiPool {
    free: Mutex<Vec<Wasi>>,
    keep: usize,
}

impl WasiPool {
    /// A pool keeping at most `keep` contexts (one per instance that can run at once).
    pub(crate) fn new(keep: usize) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// A context for a plugin with `env`: a plugin with an environment of its own gets a
    /// fresh one, the others a shared one.
    pub(crate) fn take(&self, env: &BTreeMap<String, String>) -> Wasi {
        if !env.is_empty() {
            return Wasi::new(env);
        }
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| Wasi::new(env))
    }

    pub(crate) fn give(&self, wasi: Wasi) {
        if wasi.own_env {
            return;
        }
        wasi.stderr.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(wasi);
        }
    }
}

/// Caps the memory of one instance, all its linear memories together.
/// What it holds is counted in its plugin's live memory until the instance goes.
pub(crate) struct MemoryCap {
    limit: usize,
    pub(crate) used: usize,
    pub(crate) peak: usize,
    pub(crate) exceeded: bool,
    stats: Option<Arc<PluginStats>>,
    /// `used`, for the capabilities (`metrics` reports it).
    shared: InstanceMemory,
}

impl MemoryCap {
    pub(crate) fn new(
        limit: usize,
        stats: Option<Arc<PluginStats>>,
        shared: InstanceMemory,
    ) -> Self {
        Self {
            limit,
            used: 0,
            peak: 0,
            exceeded: false,
            stats,
            shared,
        }
    }
}

impl Drop for MemoryCap {
    fn drop(&mut self) {
        if let Some(stats) = &self.stats {
            stats.instance_memory(self.used, 0);
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let used = self.used - current.min(self.used) + desired;
        if used > self.limit {
            // Refusing the growth (rather than trapping here) lets the guest see a failed
            // `memory.grow`; Rust's allocator then aborts and the trap is classified by
            // `exceeded`.
            self.exceeded = true;
            return Ok(false);
        }
        if let Some(stats) = &self.stats {
            stats.instance_memory(self.used, used);
        }
        self.used = used;
        self.shared.set(used);
        self.peak = self.peak.max(used);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pool's slot size.
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cap_counts_all_memories_and_records_the_peak() {
        let mut cap = MemoryCap::new(100, None, InstanceMemory::default());
        assert!(cap.memory_growing(0, 60, None).unwrap());
        assert!(cap.memory_growing(0, 30, None).unwrap());
        assert!(!cap.memory_growing(30, 50, None).unwrap());
        assert!(cap.exceeded);
        assert_eq!(cap.peak, 90);
        assert!(cap.memory_growing(60, 70, None).unwrap());
        assert_eq!(cap.peak, 100);
    }
}
