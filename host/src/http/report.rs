//! The host's figures at one moment: memory, the database pool, caches, queues, rate
//! limits and each plugin's events, errors, latency and memory. One snapshot serves the
//! admin API's JSON (`/v1/metrics`) and Prometheus' text format (`/metrics`).
//!
//! It reads the dispatcher and everything under it, so it lives in the HTTP layer that
//! serves it, not in telemetry, which those layers use.

use std::collections::BTreeMap;

use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};
use serde::Serialize;

use crate::{
    capabilities::{CacheReport, queue::QueueStats},
    dispatch::Dispatcher,
    telemetry::memory::{Pressure, ProcessMemory},
};

/// Everything the operator's view shows.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The process's memory and the limit.
    pub memory: MemoryReport,
    /// The database pool.
    pub database: PoolReport,
    /// In-process caches.
    pub caches: BTreeMap<&'static str, CacheReport>,
    /// Work queues, by `plugin/operation`.
    pub queues: BTreeMap<String, QueueStats>,
    /// The operator's and plugins' rate limits.
    pub rate_limits: RateLimitReport,
    /// Failed Redis calls since the host started; none without Redis.
    pub redis_failures: Option<u64>,
    /// Events being handled now.
    pub events_in_flight: usize,
    /// Each connected platform, and whether it is reachable now.
    pub platforms: BTreeMap<&'static str, bool>,
    /// Each platform's traffic counters (WhatsApp: webhook items, duplicates, sends...).
    pub platform_counts: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Each plugin's figures, loaded or not since the host started.
    pub plugins: BTreeMap<String, PluginReport>,
}

/// Memory figures.
#[derive(Debug, Serialize)]
pub struct MemoryReport {
    /// The process's figures.
    #[serde(flatten)]
    pub process: ProcessMemory,
    /// The operator's limit.
    pub limit_bytes: Option<u64>,
    /// The level at the last sample.
    pub pressure: Pressure,
    /// Times the host went critical.
    pub criticals: u64,
}

/// The pool's figures.
#[derive(Debug, Serialize)]
pub struct PoolReport {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: usize,
    /// The most connections the pool opens.
    pub max: u32,
}

/// Rate-limit figures.
#[derive(Debug, Serialize)]
pub struct RateLimitReport {
    /// Checks plugins made of their own limits.
    pub checks: u64,
    /// Of those, refused (or failed: too many keys).
    pub refused: u64,
    /// Plugins' keys held in this process.
    pub keys: usize,
    /// Whether counts are shared through Redis.
    pub shared: bool,
    /// Events refused by the operator's limits, by rule.
    pub refused_events: BTreeMap<String, u64>,
}

/// One plugin's figures.
#[derive(Debug, Serialize)]
pub struct PluginReport {
    /// Whether it is loaded now.
    pub loaded: bool,
    /// Events handled.
    pub events: u64,
    /// Failed events, by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Time spent handling events, in seconds.
    pub busy_seconds: f64,
    /// Mean time per event, in milliseconds.
    pub mean_ms: f64,
    /// The bucket bounds under which half, and 99 %, of its events were handled, in
    /// milliseconds (from the `wasmbot_event_seconds` histogram).
    pub p50_ms: Option<f64>,
    /// See `p50_ms`.
    pub p99_ms: Option<f64>,
    /// Linear memory of its live instances now.
    pub memory_bytes: u64,
    /// The most memory one instance used.
    pub peak_memory_bytes: u64,
}

impl Report {
    /// The figures now.
    pub async fn gather(dispatcher: &Dispatcher) -> Self {
        let registry = dispatcher.registry();
        let runtime = registry.runtime();
        let backends = runtime.backends();
        let watch = backends.memory.as_ref();
        let memory = MemoryReport {
            process: ProcessMemory::read(),
            limit_bytes: watch.and_then(|watch| watch.limit()),
            pressure: watch.map_or(Pressure::Normal, |watch| watch.pressure()),
            criticals: watch.map_or(0, |watch| watch.criticals()),
        };
        let database = match &backends.config_store {
            Some(store) => {
                let pool = store.database().pool();
                PoolReport {
                    size: pool.size(),
                    idle: pool.num_idle(),
                    max: pool.options().get_max_connections(),
                }
            }
            None => PoolReport {
                size: 0,
                idle: 0,
                max: 0,
            },
        };
        let caches = backends.caches().await;
        let refused_events = dispatcher.limits().refused();
        let limiter = backends.rate_limit.as_ref();
        let (checks, refused) = limiter.map_or((0, 0), |limiter| limiter.counts());
        let rate_limits = RateLimitReport {
            checks,
            refused,
            keys: limiter.map_or(0, |limiter| limiter.keys()),
            shared: limiter.is_some_and(|limiter| limiter.shared()),
            refused_events,
        };
        let snapshot = registry.snapshot();
        let plugins = registry
            .all_stats()
            .into_iter()
            .map(|(name, stats)| {
                let events = stats.events();
                let busy = stats.busy().as_secs_f64();
                let report = PluginReport {
                    loaded: snapshot.plugin(&name).is_some(),
                    events,
                    errors: stats.failures(),
                    busy_seconds: busy,
                    mean_ms: if events == 0 {
                        0.0
                    } else {
                        busy * 1000.0 / events as f64
                    },
                    p50_ms: stats
                        .latency_quantile(0.5)
                        .map(|time| time.as_secs_f64() * 1000.0),
                    p99_ms: stats
                        .latency_quantile(0.99)
                        .map(|time| time.as_secs_f64() * 1000.0),
                    memory_bytes: stats.memory(),
                    peak_memory_bytes: stats.peak_memory(),
                };
                (name, report)
            })
            .collect();
        Report {
            memory,
            database,
            caches,
            queues: backends
                .queues
                .as_ref()
                .map(|queues| queues.stats())
                .unwrap_or_default(),
            rate_limits,
            redis_failures: backends
                .config_store
                .as_ref()
                .and_then(|store| store.redis())
                .map(|redis| redis.failures()),
            events_in_flight: dispatcher.in_flight(),
            platforms: dispatcher.platforms().into_iter().collect(),
            platform_counts: dispatcher
                .platform_counts()
                .into_iter()
                .map(|(platform, counts)| (platform, counts.into_iter().collect()))
                .collect(),
            plugins,
        }
    }

    /// The figures in Prometheus' text format, with the plugins' own metrics and each
    /// plugin's latency histogram.
    pub fn prometheus(&self, dispatcher: &Dispatcher) -> anyhow::Result<String> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<GaugeVec> {
            let vec = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };
        let counter = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntCounterVec> {
            let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };

        let memory = gauge("wasmbot_memory_bytes", "Process memory by kind.", &["kind"])?;
        let process = &self.memory.process;
        memory
            .with_label_values(&["resident"])
            .set(process.resident_bytes as f64);
        memory
            .with_label_values(&["virtual"])
            .set(process.virtual_bytes as f64);
        if let Some(allocator) = &process.allocator {
            for (kind, value) in [
                ("allocated", allocator.allocated_bytes),
                ("allocator_free", allocator.free_bytes),
                ("allocator_mapped", allocator.mapped_bytes),
            ] {
                memory.with_label_values(&[kind]).set(value as f64);
            }
        }
        if let Some(limit) = self.memory.limit_bytes {
            gauge(
                "wasmbot_memory_limit_bytes",
                "The operator's memory limit.",
                &[],
            )?
            .with_label_values::<&str>(&[])
            .set(limit as f64);
        }
        gauge(
            "wasmbot_memory_pressure",
            "0 normal, 1 warning, 2 critical (shedding load).",
            &[],
        )?
        .with_label_values::<&str>(&[])
        .set(self.memory.pressure as u8 as f64);

        let pool = gauge(
            "wasmbot_db_pool_connections",
            "Database pool connections by state.",
            &["state"],
        )?;
        pool.with_label_values(&["open"])
            .set(f64::from(self.database.size));
        pool.with_label_values(&["idle"])
            .set(self.database.idle as f64);
        pool.with_label_values(&["max"])
            .set(f64::from(self.database.max));

        let entries = gauge("wasmbot_cache_entries", "Entries per cache.", &["cache"])?;
        let bytes = gauge(
            "wasmbot_cache_bytes",
            "Weighted bytes per cache.",
            &["cache"],
        )?;
        for (name, cache) in &self.caches {
            entries
                .with_label_values(&[*name])
                .set(cache.entries as f64);
            if let Some(size) = cache.bytes {
                bytes.with_label_values(&[*name]).set(size as f64);
            }
        }

        let queue = gauge(
            "wasmbot_queue",
            "Work queues: running, waiting and their limits.",
            &["queue", "figure"],
        )?;
        let rejected = counter(
            "wasmbot_queue_rejected_total",
            "Callers turned away by a full or shedding queue.",
            &["queue"],
        )?;
        for (name, stats) in &self.queues {
            for (figure, value) in [
                ("running", stats.running),
                ("waiting", stats.waiting),
                ("concurrency", stats.concurrency),
                ("length", stats.length),
                ("peak_running", stats.peak_running),
            ] {
                queue.with_label_values(&[name, figure]).set(value as f64);
            }
            rejected.with_label_values(&[name]).inc_by(stats.rejected);
        }

        let limits = &self.rate_limits;
        let checks = counter(
            "wasmbot_rate_limit_checks_total",
            "Plugins' own rate-limit checks, by result.",
            &["result"],
        )?;
        checks
            .with_label_values(&["allowed"])
            .inc_by(limits.checks.saturating_sub(limits.refused));
        checks
            .with_label_values(&["refused"])
            .inc_by(limits.refused);
        let refused = counter(
            "wasmbot_rate_limited_events_total",
            "Events refused by the operator's limits, by rule.",
            &["rule"],
        )?;
        for (rule, count) in &limits.refused_events {
            refused.with_label_values(&[rule]).inc_by(*count);
        }
        if let Some(failures) = self.redis_failures {
            counter(
                "wasmbot_redis_failures_total",
                "Failed Redis calls (the host fell back each time).",
                &[],
            )?
            .with_label_values::<&str>(&[])
            .inc_by(failures);
        }
        gauge("wasmbot_events_in_flight", "Events being handled now.", &[])?
            .with_label_values::<&str>(&[])
            .set(self.events_in_flight as f64);
        let platforms = gauge(
            "wasmbot_platform_connected",
            "1 when the platform is reachable (every shard of this host connected), else 0.",
            &["platform"],
        )?;
        for (platform, connected) in &self.platforms {
            platforms
                .with_label_values(&[*platform])
                .set(f64::from(u8::from(*connected)));
        }
        let traffic = counter(
            "wasmbot_platform_total",
            "A platform's traffic since the host started, by what was counted.",
            &["platform", "what"],
        )?;
        for (platform, counts) in &self.platform_counts {
            for (what, count) in counts {
                traffic
                    .with_label_values(&[*platform, *what])
                    .inc_by(*count);
            }
        }

        let events = counter("wasmbot_events_total", "Events per plugin.", &["plugin"])?;
        let errors = counter(
            "wasmbot_event_errors_total",
            "Failed events per plugin and kind.",
            &["plugin", "kind"],
        )?;
        let instance = gauge(
            "wasmbot_instance_memory_bytes",
            "Plugin instances' linear memory: now (live instances) and the peak of one.",
            &["plugin", "figure"],
        )?;
        for (plugin, report) in &self.plugins {
            events.with_label_values(&[plugin]).inc_by(report.events);
            for (kind, count) in &report.errors {
                errors
                    .with_label_values(&[plugin.as_str(), kind])
                    .inc_by(*count);
            }
            instance
                .with_label_values(&[plugin, "current"])
                .set(report.memory_bytes as f64);
            instance
                .with_label_values(&[plugin, "peak"])
                .set(report.peak_memory_bytes as f64);
        }
        // What serves now: a package's digest and source, or a file's content hash.
        let info = gauge(
            "wasmbot_plugin_info",
            "The plugins loaded, with their version, digest and where they came from.",
            &["plugin", "version", "digest", "source"],
        )?;
        for plugin in dispatcher.registry().snapshot().plugins() {
            let (digest, source) = match plugin.package() {
                Some(package) => (package.digest.clone(), package.source.clone()),
                None => (
                    format!("sha256:{}", plugin.digest()),
                    plugin.source().display().to_string(),
                ),
            };
            info.with_label_values(&[
                plugin.name(),
                plugin.manifest().version.as_str(),
                digest.as_str(),
                source.as_str(),
            ])
            .set(1.0);
        }
        let latency = dispatcher.registry().latency().clone();
        registry.register(Box::new(latency))?;

        let mut families = registry.gather();
        if let Some(metrics) = &dispatcher.registry().runtime().backends().metrics {
            families.extend(metrics.gather());
        }
        let mut text = Vec::new();
        TextEncoder::new().encode(&families, &mut text)?;
        Ok(String::from_utf8(text)?)
    }
}
