//! Counters of one plugin, kept across its reloads.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// What a plugin has done since the host started.
#[derive(Debug)]
pub struct PluginStats {
    failures: Mutex<BTreeMap<&'static str, u64>>,
    peak_memory: AtomicU64,
    live_memory: AtomicU64,
    latency: prometheus::Histogram,
}

impl PluginStats {
    /// Counters that also observe each event's time into `latency`.
    pub(crate) fn new(latency: prometheus::Histogram) -> Self {
        Self {
            failures: Mutex::default(),
            peak_memory: AtomicU64::new(0),
            live_memory: AtomicU64::new(0),
            latency,
        }
    }

    /// An instance's memory went from `before` to `after` bytes.
    pub(crate) fn instance_memory(&self, before: usize, after: usize) {
        if after >= before {
            self.live_memory
                .fetch_add((after - before) as u64, Ordering::Relaxed);
        } else {
            self.live_memory
                .fetch_sub((before - after) as u64, Ordering::Relaxed);
        }
    }

    /// The time under which a `q` share of its events were handled, as the histogram's
    /// bucket bounds tell it (an upper estimate); none before the first event.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        use prometheus::core::Metric;
        let metric = self.latency.metric();
        let histogram = metric.get_histogram();
        let total = histogram.get_sample_count();
        let rank = (total as f64 * q).ceil().max(1.0) as u64;
        let bound = histogram
            .get_bucket()
            .iter()
            .find(|bucket| bucket.cumulative_count() >= rank)
            .map_or(f64::INFINITY, |bucket| bucket.upper_bound());
        (total > 0).then(|| Duration::try_from_secs_f64(bound).unwrap_or(Duration::MAX))
    }

    /// Linear memory of its instances alive now, in bytes.
    pub fn memory(&self) -> u64 {
        self.live_memory.load(Ordering::Relaxed)
    }

    pub(crate) fn record(
        &self,
        elapsed: Duration,
        peak_memory: usize,
        failure: Option<&'static str>,
    ) {
        // The histogram counts the events and sums their time too: each atomic here is
        // paid on every event.
        self.latency.observe(elapsed.as_secs_f64());
        let peak_memory = peak_memory as u64;
        if peak_memory > self.peak_memory.load(Ordering::Relaxed) {
            self.peak_memory.fetch_max(peak_memory, Ordering::Relaxed);
        }
        if let Some(kind) = failure {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            *failures.entry(kind).or_default() += 1;
        }
    }

    /// Events handled, failed ones included.
    pub fn events(&self) -> u64 {
        self.latency.get_sample_count()
    }

    /// Failed events by [`Failure::kind`](crate::runtime::Failure::kind).
    pub fn failures(&self) -> BTreeMap<&'static str, u64> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Failed events, all kinds.
    pub fn failed(&self) -> u64 {
        self.failures().values().sum()
    }

    /// Time spent in the plugin, instantiation included.
    pub fn busy(&self) -> Duration {
        Duration::try_from_secs_f64(self.latency.get_sample_sum()).unwrap_or_default()
    }

    /// The most memory one instance has used, in bytes.
    pub fn peak_memory(&self) -> u64 {
        self.peak_memory.load(Ordering::Relaxed)
    }
}
