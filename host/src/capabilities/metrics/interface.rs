//! The `metrics` interface: declarations while the plugin describes itself, then
//! recordings into its own metrics; and the memory figures.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::{MAX_METRICS, MetricError, MetricKind, MetricSpec, PluginMetrics, sample_names};
use crate::{
    bindings::wasmbot::plugin::metrics::{self as wit, MetricsError},
    capabilities::{Backends, Grant, HasContexts, Instance, InstanceMemory, Policy, Reach},
    telemetry::memory::{MemoryWatch, Pressure, ProcessMemory},
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

/// One instance's metrics: its grant, the host's plugin metrics and memory watch, the
/// instance's memory, and the metrics it declares while it describes itself.
pub struct Context {
    metrics: Reach<PluginMetrics>,
    watch: Option<Arc<MemoryWatch>>,
    instance_memory: InstanceMemory,
    /// Whether this event was told of a metric's label cap in the log already.
    series_capped_noted: bool,
    /// `Some` only while the plugin describes itself.
    pub(crate) declared: Option<Vec<MetricSpec>>,
}

impl Context {
    pub(crate) fn new(grant: Grant, instance: &Instance, backends: &Backends, _: &Policy) -> Self {
        Self {
            metrics: Reach::new(grant, backends.metrics.clone(), "metrics"),
            watch: backends.memory.clone(),
            instance_memory: instance.memory.clone(),
            series_capped_noted: false,
            declared: None,
        }
    }

    /// Logs a capped metric again, for a kept instance's next event.
    pub(crate) fn next_event(&mut self) {
        self.series_capped_noted = false;
    }

    fn plugin_metrics(&mut self) -> Result<&PluginMetrics, MetricsError> {
        self.metrics.get(MetricsError::Denied, MetricsError::Denied)
    }

    fn record(
        &mut self,
        name: &str,
        kind: MetricKind,
        value: f64,
        labels: &[String],
    ) -> Result<(), MetricsError> {
        let plugin = Arc::clone(self.metrics.plugin());
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

pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().metrics)
}

impl wit::Host for Context {
    async fn declare(&mut self, spec: wit::MetricSpec) -> Result<(), MetricsError> {
        let Some(metrics) = &mut self.declared else {
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
        let watch = self.watch.as_ref();
        let pressure = watch.map_or(Pressure::Normal, |watch| watch.pressure());
        wit::MemoryFigures {
            resident_bytes: ProcessMemory::read().resident_bytes,
            limit_bytes: watch.and_then(|watch| watch.limit()),
            pressure: match pressure {
                Pressure::Normal => wit::Pressure::Normal,
                Pressure::Warning => wit::Pressure::Warning,
                Pressure::Critical => wit::Pressure::Critical,
            },
            instance_bytes: self.instance_memory.get() as u64,
        }
    }
}
