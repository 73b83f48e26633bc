//! The `metrics` interface: declarations while the plugin describes itself, then
//! recordings into its own metrics; and the memory figures.

use super::{MAX_METRICS, MetricError, MetricKind, MetricSpec, PluginMetrics, sample_names};
use crate::{
    capabilities::Capability,
    runtime::{
        HostState,
        bindings::wasmbot::plugin::metrics::{self as wit, MetricsError},
    },
    telemetry::memory::{Pressure, ProcessMemory},
};

impl From<MetricError> for MetricsError {
    fn from(error: MetricError) -> Self {
        match error {
            MetricError::Unknown(text) => MetricsError::Unknown(text),
            MetricError::Invalid(text) => MetricsError::Invalid(text),
            MetricError::TooManySeries(text) => MetricsError::TooManySeries(text),
        }
    }
}

impl HostState {
    fn plugin_metrics(&mut self) -> Result<&PluginMetrics, MetricsError> {
        self.grant(Capability::Metrics)
            .map_err(MetricsError::Denied)?;
        self.services
            .metrics
            .as_deref()
            .ok_or_else(|| MetricsError::Denied("this host runs without metrics".to_owned()))
    }

    fn record(
        &mut self,
        name: &str,
        kind: MetricKind,
        value: f64,
        labels: &[String],
    ) -> Result<(), MetricsError> {
        let plugin = self.plugin.clone();
        let result = self
            .plugin_metrics()?
            .record(&plugin, name, kind, value, labels);
        if let Err(MetricError::TooManySeries(text)) = &result {
            // Told to the plugin on every call; logged once per event.
            if !self.series_capped_noted {
                self.series_capped_noted = true;
                tracing::warn!(plugin = &*plugin, metric = name, "{text}");
            }
        }
        Ok(result?)
    }
}

impl wit::Host for HostState {
    async fn declare(&mut self, spec: wit::MetricSpec) -> Result<(), MetricsError> {
        let Some(registrations) = &mut self.registrations else {
            return Err(MetricsError::Denied(
                "metrics are declared only while the plugin describes itself".to_owned(),
            ));
        };
        let spec = MetricSpec {
            name: spec.name,
            kind: match spec.kind {
                wit::MetricKind::Counter => MetricKind::Counter,
                wit::MetricKind::Gauge => MetricKind::Gauge,
                wit::MetricKind::Histogram => MetricKind::Histogram,
            },
            help: spec.help,
            labels: spec.labels,
            buckets: spec.buckets,
        };
        spec.check()?;
        let metrics = &mut registrations.metrics;
        // A counter `x_count` and a histogram `x` would write the same samples.
        let taken: Vec<String> = metrics.iter().flat_map(sample_names).collect();
        if sample_names(&spec).iter().any(|name| taken.contains(name)) {
            return Err(MetricsError::Invalid(format!(
                "{} is declared twice, or names another metric's samples",
                spec.name
            )));
        }
        if metrics.len() >= MAX_METRICS {
            return Err(MetricsError::Invalid(format!(
                "a plugin declares at most {MAX_METRICS} metrics"
            )));
        }
        metrics.push(spec);
        Ok(())
    }

    async fn add(
        &mut self,
        name: String,
        value: f64,
        labels: Vec<String>,
    ) -> Result<(), MetricsError> {
        self.record(&name, MetricKind::Counter, value, &labels)
    }

    async fn set(
        &mut self,
        name: String,
        value: f64,
        labels: Vec<String>,
    ) -> Result<(), MetricsError> {
        self.record(&name, MetricKind::Gauge, value, &labels)
    }

    async fn observe(
        &mut self,
        name: String,
        value: f64,
        labels: Vec<String>,
    ) -> Result<(), MetricsError> {
        self.record(&name, MetricKind::Histogram, value, &labels)
    }

    async fn memory(&mut self) -> wit::MemoryFigures {
        if self.plugin_metrics().is_err() {
            return wit::MemoryFigures {
                resident_bytes: 0,
                limit_bytes: None,
                pressure: wit::Pressure::Normal,
                instance_bytes: 0,
            };
        }
        let watch = self.services.memory.as_ref();
        let pressure = watch.map_or(Pressure::Normal, |watch| watch.pressure());
        wit::MemoryFigures {
            resident_bytes: ProcessMemory::read().resident_bytes,
            limit_bytes: watch.and_then(|watch| watch.limit()),
            pressure: match pressure {
                Pressure::Normal => wit::Pressure::Normal,
                Pressure::Warning => wit::Pressure::Warning,
                Pressure::Critical => wit::Pressure::Critical,
            },
            instance_bytes: self.memory.used as u64,
        }
    }
}
