//! What one instance carries while it handles one event: its WASI context, its memory cap,
//! its CPU clock and what it is allowed to call.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use wasmtime::ResourceLimiter;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::{
    capabilities::{
        Allowed, Capability, Services,
        config::{Document, ScopeKind},
        storage::{Limits, Migration},
    },
    config::PluginPolicy,
    runtime::stderr::CappedStderr,
};

/// Bytes of a plugin's stderr kept per event (a panic message fits).
const STDERR_BYTES: usize = 4 * 1024;

/// What a plugin declares while it describes itself, kept for when its manifest has been
/// checked.
#[derive(Debug, Default)]
pub(crate) struct Registrations {
    /// Its config fields' defaults per scope kind.
    pub(crate) config: Vec<(ScopeKind, Document)>,
    /// Its storage migrations, in order.
    pub(crate) migrations: Vec<Migration>,
}

/// Per-instance state: built fresh for every event, dropped with the instance.
pub struct HostState {
    pub(crate) plugin: Arc<str>,
    pub(crate) allowed: Allowed,
    pub(crate) memory: MemoryCap,
    pub(crate) cpu: CpuClock,
    pub(crate) services: Services,
    /// Messages kept per conversation history, from the plugin's policy.
    pub(crate) history_turns: u32,
    /// What its storage calls may take, from the plugin's policy.
    pub(crate) storage_limits: Limits,
    /// What a plugin declares while it describes itself (`Some` only then).
    pub(crate) registrations: Option<Registrations>,
    wasi: Wasi,
    table: ResourceTable,
    log_lines_left: u32,
    log_limit_noted: bool,
    denied_noted: Allowed,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<str>,
        allowed: Allowed,
        policy: &PluginPolicy,
        tick: Duration,
        max_log_lines: u32,
        wasi: Wasi,
        services: Services,
    ) -> Self {
        Self {
            plugin,
            allowed,
            memory: MemoryCap::new(policy.memory_bytes()),
            cpu: CpuClock::new(policy.cpu_budget(), tick),
            services,
            history_turns: policy.history_turns,
            storage_limits: policy.storage_limits(),
            registrations: None,
            wasi,
            table: ResourceTable::new(),
            log_lines_left: max_log_lines,
            log_limit_noted: false,
            denied_noted: Allowed::default(),
        }
    }

    /// What the plugin wrote to stderr (a Rust panic message lands there), lossy UTF-8.
    pub(crate) fn stderr(&self) -> String {
        self.wasi.stderr.contents()
    }

    /// Counts one log line against the per-event allowance; says so once when it runs out.
    pub(crate) fn take_log_line(&mut self) -> bool {
        if self.log_lines_left > 0 {
            self.log_lines_left -= 1;
            return true;
        }
        if !self.log_limit_noted {
            self.log_limit_noted = true;
            tracing::warn!(
                plugin = &*self.plugin,
                "log line limit reached; dropping the rest of this event's lines"
            );
        }
        false
    }

    /// Logs, once per event and capability, a call the plugin was not allowed to make.
    pub(crate) fn note_denied(&mut self, capability: Capability) {
        if !self.denied_noted.contains(capability) {
            self.denied_noted.insert(capability);
            tracing::warn!(
                plugin = &*self.plugin,
                capability = capability.name(),
                "denied: the plugin called a capability it did not ask for or was not granted"
            );
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// Gives back the WASI context for another event.
    pub(crate) fn into_wasi(self) -> Wasi {
        self.wasi
    }
}

/// A WASI context and the stderr it writes to. No files, no environment, no network: a
/// plugin reaches the world only through the capabilities it was granted.
pub(crate) struct Wasi {
    ctx: WasiCtx,
    stderr: CappedStderr,
}

impl Wasi {
    fn new() -> Self {
        let stderr = CappedStderr::new(STDERR_BYTES);
        let ctx = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Self { ctx, stderr }
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

    pub(crate) fn take(&self) -> Wasi {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(Wasi::new)
    }

    pub(crate) fn give(&self, wasi: Wasi) {
        wasi.stderr.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(wasi);
        }
    }
}

/// Caps the memory of one instance, all its linear memories together.
pub(crate) struct MemoryCap {
    limit: usize,
    used: usize,
    pub(crate) peak: usize,
    pub(crate) exceeded: bool,
}

impl MemoryCap {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            peak: 0,
            exceeded: false,
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
        self.used = used;
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

/// Measures the CPU time of an event's guest code in epoch ticks. The epoch callback runs
/// only while guest code runs: a host call, however long it waits, costs at most the one
/// tick counted when the guest resumes past its deadline. (An async capability that makes
/// many calls should reset the deadline with `set_epoch_deadline(1)` after its await.)
pub(crate) struct CpuClock {
    ticks_used: u64,
    budget_ticks: u64,
    pub(crate) budget: Duration,
    pub(crate) exceeded: bool,
}

impl CpuClock {
    fn new(budget: Duration, tick: Duration) -> Self {
        Self {
            ticks_used: 0,
            budget_ticks: ticks(budget, tick),
            budget,
            exceeded: false,
        }
    }

    /// Counts one tick of guest time; false (and marked exceeded) once the budget is spent.
    pub(crate) fn tick(&mut self) -> bool {
        self.ticks_used += 1;
        self.exceeded = self.ticks_used >= self.budget_ticks;
        !self.exceeded
    }
}

/// Epoch ticks covering `duration`, at least one.
fn ticks(duration: Duration, tick: Duration) -> u64 {
    let ticks = duration.as_nanos().div_ceil(tick.as_nanos().max(1));
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cap_counts_all_memories_and_records_the_peak() {
        let mut cap = MemoryCap::new(100);
        assert!(cap.memory_growing(0, 60, None).unwrap());
        assert!(cap.memory_growing(0, 30, None).unwrap());
        assert!(!cap.memory_growing(30, 50, None).unwrap());
        assert!(cap.exceeded);
        assert_eq!(cap.peak, 90);
        assert!(cap.memory_growing(60, 70, None).unwrap());
        assert_eq!(cap.peak, 100);
    }

    #[test]
    fn cpu_budget_is_counted_in_ticks_of_guest_time() {
        let mut clock = CpuClock::new(Duration::from_millis(100), Duration::from_millis(5));
        assert_eq!(clock.budget_ticks, 20);
        assert!((0..19).all(|_| clock.tick()));
        assert!(!clock.exceeded);
        assert!(!clock.tick());
        assert!(clock.exceeded);
        assert_eq!(ticks(Duration::from_millis(1), Duration::from_millis(5)), 1);
    }
}
