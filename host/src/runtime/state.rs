//! What one instance carries while it handles one event: its WASI context, its memory cap,
//! its CPU clock and what it is allowed to call.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use wasmtime::ResourceLimiter;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::{
    capabilities::{
        Allowed, Capability, Services,
        config::{Document, ScopeKind},
        http::Outbound,
        metrics::MetricSpec,
        storage::{Limits, Migration},
    },
    config::{PluginPolicy, RuntimeConfig},
    dispatch::Messenger,
    runtime::{PluginStats, stderr::CappedStderr},
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
    /// Its own metrics.
    pub(crate) metrics: Vec<MetricSpec>,
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
    /// Work-queue concurrency and length, from the plugin's policy.
    pub(crate) queue_limits: (usize, usize),
    /// What a plugin declares while it describes itself (`Some` only then).
    pub(crate) registrations: Option<Registrations>,
    /// Whether this event was told of a metric's label cap in the log already.
    pub(crate) series_capped_noted: bool,
    wasi: Wasi,
    /// `wasi:http`'s context, and where the plugin may send requests.
    pub(crate) http: wasmtime_wasi_http::WasiHttpCtx,
    pub(crate) outbound: Outbound,
    /// Where actions taken mid-handler go (capability `messaging`), and how many more
    /// this event may take.
    pub(crate) messenger: Option<Messenger>,
    pub(crate) acts_left: usize,
    /// The instance's resources: WASI's, and the queue tickets it holds.
    pub(crate) table: ResourceTable,
    log_lines_left: u32,
    log_limit_noted: bool,
    denied_noted: Allowed,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<str>,
        allowed: Allowed,
        policy: &PluginPolicy,
        runtime: &RuntimeConfig,
        wasi: Wasi,
        services: Services,
        stats: Option<Arc<PluginStats>>,
    ) -> Self {
        let queue = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        let outbound = Outbound::new(
            Arc::clone(&plugin),
            allowed.contains(Capability::Http),
            &policy.http_allow,
            policy.wall_budget(),
        );
        Self {
            plugin,
            allowed,
            memory: MemoryCap::new(policy.memory_bytes(), stats),
            cpu: CpuClock::new(
                policy.cpu_budget(),
                Duration::from_millis(runtime.epoch_tick_ms),
            ),
            services,
            history_turns: policy.history_turns,
            storage_limits: policy.storage_limits(),
            queue_limits: (queue(policy.queue_concurrency), queue(policy.queue_length)),
            registrations: None,
            series_capped_noted: false,
            wasi,
            http: crate::capabilities::http::context(),
            outbound,
            messenger: None,
            acts_left: runtime.max_actions,
            table: ResourceTable::new(),
            log_lines_left: runtime.max_log_lines,
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

    /// Whether the plugin may call `capability`; if not, why (for its `denied` error),
    /// logged once per event and capability.
    pub(crate) fn grant(&mut self, capability: Capability) -> Result<(), String> {
        if self.allowed.contains(capability) {
            return Ok(());
        }
        if !self.denied_noted.contains(capability) {
            self.denied_noted.insert(capability);
            tracing::warn!(
                plugin = &*self.plugin,
                capability = capability.name(),
                "denied: the plugin called a capability it did not ask for or was not granted"
            );
        }
        Err(format!(
            "the plugin may not use \"{capability}\": ask for it in the manifest and have the operator grant it"
        ))
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
}

impl MemoryCap {
    fn new(limit: usize, stats: Option<Arc<PluginStats>>) -> Self {
        Self {
            limit,
            used: 0,
            peak: 0,
            exceeded: false,
            stats,
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

/// Measures the CPU time of an event's guest code: at each epoch tick (the callback runs
/// only while guest code runs), the wall-clock time since the last one less the time spent
/// in host calls, which wasmtime's call hook reports: a plugin waiting on the database is
/// not spending its budget. At most one tick counts per callback: the guest yields at each
/// one, and the time it then waits for a thread is not its own either.
pub(crate) struct CpuClock {
    used: Duration,
    tick: Duration,
    pub(crate) budget: Duration,
    pub(crate) exceeded: bool,
    last_tick: Instant,
    in_host_since: Option<Instant>,
    in_host: Duration,
}

impl CpuClock {
    fn new(budget: Duration, tick: Duration) -> Self {
        Self {
            used: Duration::ZERO,
            tick,
            budget,
            exceeded: false,
            last_tick: Instant::now(),
            in_host_since: None,
            in_host: Duration::ZERO,
        }
    }

    /// Adds the guest time since the last tick; false (and marked exceeded) once the
    /// budget is spent.
    pub(crate) fn tick(&mut self) -> bool {
        let now = Instant::now();
        let since = now.duration_since(self.last_tick);
        let guest = since.saturating_sub(std::mem::take(&mut self.in_host));
        self.used += guest.min(self.tick);
        self.last_tick = now;
        self.exceeded = self.used >= self.budget;
        !self.exceeded
    }

    /// The guest called the host.
    pub(crate) fn entering_host(&mut self) {
        self.in_host_since = Some(Instant::now());
    }

    /// The host call returned to the guest.
    pub(crate) fn leaving_host(&mut self) {
        if let Some(since) = self.in_host_since.take() {
            self.in_host += since.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cap_counts_all_memories_and_records_the_peak() {
        let mut cap = MemoryCap::new(100, None);
        assert!(cap.memory_growing(0, 60, None).unwrap());
        assert!(cap.memory_growing(0, 30, None).unwrap());
        assert!(!cap.memory_growing(30, 50, None).unwrap());
        assert!(cap.exceeded);
        assert_eq!(cap.peak, 90);
        assert!(cap.memory_growing(60, 70, None).unwrap());
        assert_eq!(cap.peak, 100);
    }

    #[test]
    fn cpu_time_is_guest_time_less_host_calls() {
        let mut clock = CpuClock::new(Duration::from_millis(10), Duration::from_millis(5));
        clock.entering_host();
        std::thread::sleep(Duration::from_millis(30));
        clock.leaving_host();
        assert!(clock.tick(), "30 ms in a host call cost the guest nothing");
        std::thread::sleep(Duration::from_millis(30));
        assert!(clock.tick(), "a tick counts at most its own length");
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            !clock.tick(),
            "two ticks of guest time spend a 10 ms budget"
        );
        assert!(clock.exceeded);
    }
}
