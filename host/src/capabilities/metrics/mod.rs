//! Plugins' own metrics: declared while a plugin describes itself, exported with the
//! host's under `wasmbot_plugin_<plugin>__<name>`, with a cap on label combinations per
//! metric so a plugin cannot grow them without bound.
//!
//! Plugin names hold `[a-z0-9-]` (`-` becomes `_`) and metric names no `__`, so the last
//! `__` separates the two and no two plugins' families can share a name.

mod interface;

pub use interface::Context;
pub(crate) use interface::link;

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex, RwLock},
};

use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, Opts, core::Collector};
use serde::{Deserialize, Serialize};

use crate::capabilities::{Build, Lifecycle, Sections, config_store::ConfigStore};
use crate::telemetry::memory::Relief;

/// The `[metrics]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Label combinations one plugin metric may have; new ones past it are refused.
    pub max_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { max_series: 100 }
    }
}

impl Relief for PluginMetrics {}

impl Build for PluginMetrics {
    fn build(_: &Arc<ConfigStore>, sections: Sections<'_>) -> Arc<Self> {
        Arc::new(PluginMetrics::new(sections.metrics.max_series))
    }
}

impl Lifecycle for PluginMetrics {
    fn forget(&self, plugin: &str) {
        PluginMetrics::forget(self, plugin);
    }
}

/// Metrics one plugin may declare.
pub const MAX_METRICS: usize = 32;
/// Labels one metric may have.
pub const MAX_LABELS: usize = 4;

/// What a plugin declares.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// `[a-z][a-z0-9_]*` without `__`, at most 64 bytes.
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// What it measures.
    pub help: String,
    /// Its label names.
    pub labels: Vec<String>,
    /// A histogram's bucket bounds; empty: the defaults.
    pub buckets: Vec<f64>,
}

/// The kinds of metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// Why a metric call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// Not declared, or of another kind.
    #[error("{0}")]
    Unknown(String),
    /// A bad name, label count, value or bucket list.
    #[error("{0}")]
    Invalid(String),
    /// The metric has its maximum of label combinations.
    #[error("{0}")]
    TooManySeries(String),
}

impl MetricSpec {
    /// Checks the name, labels, help and buckets.
    pub fn check(&self) -> Result<(), MetricError> {
        let invalid = |text: String| Err(MetricError::Invalid(text));
        if !is_metric_name(&self.name, 64) || self.name.contains("__") {
            return invalid(format!(
                "metric name {:?}: use [a-z][a-z0-9_]* without \"__\", at most 64 bytes",
                self.name
            ));
        }
        if self.help.len() > 200 || self.help.chars().any(char::is_control) {
            return invalid(format!(
                "{}: help is at most 200 bytes, one line",
                self.name
            ));
        }
        if self.labels.len() > MAX_LABELS
            || !self.labels.iter().all(|label| is_metric_name(label, 64))
            || self.labels.iter().collect::<HashSet<_>>().len() != self.labels.len()
        {
            return invalid(format!(
                "{}: at most {MAX_LABELS} distinct labels named [a-z][a-z0-9_]*",
                self.name
            ));
        }
        let increasing = self.buckets.windows(2).all(|pair| pair[0] < pair[1]);
        if self.buckets.len() > 32 || !increasing || self.buckets.iter().any(|b| !b.is_finite()) {
            return invalid(format!(
                "{}: at most 32 finite bucket bounds, increasing",
                self.name
            ));
        }
        if self.kind != MetricKind::Histogram && !self.buckets.is_empty() {
            return invalid(format!("{}: only histograms have buckets", self.name));
        }
        Ok(())
    }
}

fn is_metric_name(name: &str, max: usize) -> bool {
    name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

enum Family {
    Counter(CounterVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec),
}

impl Family {
    fn collector(&self) -> &dyn Collector {
        match self {
            Family::Counter(vec) => vec,
            Family::Gauge(vec) => vec,
            Family::Histogram(vec) => vec,
        }
    }
}

struct Declared {
    spec: MetricSpec,
    family: Family,
    series: Mutex<HashSet<Vec<String>>>,
}

/// Every plugin's declared metrics.
pub struct PluginMetrics {
    plugins: RwLock<BTreeMap<String, BTreeMap<String, Declared>>>,
    max_series: usize,
}

impl PluginMetrics {
    /// Metrics with at most `max_series` label combinations each.
    pub fn new(max_series: usize) -> Self {
        Self {
            plugins: RwLock::default(),
            max_series,
        }
    }

    /// Installs a plugin's metrics, replacing an earlier version's; a metric declared the
    /// same way keeps its values.
    pub fn register(&self, plugin: &str, specs: &[MetricSpec]) {
        let mut plugins = self.plugins.write().unwrap_or_else(|e| e.into_inner());
        let mut before = plugins.remove(plugin).unwrap_or_default();
        let mut now = BTreeMap::new();
        for spec in specs {
            let kept = before.remove(&spec.name).filter(|old| old.spec == *spec);
            let declared = match kept {
                Some(old) => old,
                None => match family(plugin, spec) {
                    Ok(family) => Declared {
                        spec: spec.clone(),
                        family,
                        series: Mutex::default(),
                    },
                    Err(error) => {
                        tracing::warn!(plugin, metric = %spec.name, "metric not registered: {error}");
                        continue;
                    }
                },
            };
            now.insert(spec.name.clone(), declared);
        }
        if !now.is_empty() {
            plugins.insert(plugin.to_owned(), now);
        }
    }

    /// Drops an unloaded plugin's metrics.
    pub fn forget(&self, plugin: &str) {
        let mut plugins = self.plugins.write().unwrap_or_else(|e| e.into_inner());
        plugins.remove(plugin);
    }

    /// Records `value` into the plugin's metric `name` of `kind`.
    pub fn record(
        &self,
        plugin: &str,
        name: &str,
        kind: MetricKind,
        value: f64,
        labels: &[String],
    ) -> Result<(), MetricError> {
        let plugins = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        let declared = plugins
            .get(plugin)
            .and_then(|metrics| metrics.get(name))
            .filter(|declared| declared.spec.kind == kind)
            .ok_or_else(|| {
                MetricError::Unknown(format!(
                    "no {kind:?} named {name:?} was declared (declare metrics in describe)"
                ))
            })?;
        if labels.len() != declared.spec.labels.len() {
            return Err(MetricError::Invalid(format!(
                "{name} takes {} label value(s): {:?}",
                declared.spec.labels.len(),
                declared.spec.labels
            )));
        }
        if !value.is_finite() || (kind == MetricKind::Counter && value < 0.0) {
            return Err(MetricError::Invalid(format!(
                "{name}: the value must be finite (and not negative for a counter)"
            )));
        }
        if labels.iter().any(|l| l.len() > 128) {
            return Err(MetricError::Invalid(format!(
                "{name}: a label value is at most 128 bytes"
            )));
        }
        {
            let mut series = declared.series.lock().unwrap_or_else(|e| e.into_inner());
            if !series.contains(labels) {
                if series.len() >= self.max_series {
                    return Err(MetricError::TooManySeries(format!(
                        "{name} has {} label combinations, the most allowed; new ones are dropped",
                        self.max_series
                    )));
                }
                series.insert(labels.to_vec());
            }
        }
        let values: Vec<&str> = labels.iter().map(String::as_str).collect();
        match &declared.family {
            Family::Counter(vec) => vec.with_label_values(&values).inc_by(value),
            Family::Gauge(vec) => vec.with_label_values(&values).set(value),
            Family::Histogram(vec) => vec.with_label_values(&values).observe(value),
        }
        Ok(())
    }

    /// Every plugin metric that has a value, for the exporter (the text format has no
    /// way to write a family without one).
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        let plugins = self.plugins.read().unwrap_or_else(|e| e.into_inner());
        plugins
            .values()
            .flat_map(BTreeMap::values)
            .flat_map(|declared| declared.family.collector().collect())
            .filter(|family| !family.get_metric().is_empty())
            .collect()
    }
}

fn family_name(plugin: &str, metric: &str) -> String {
    format!("wasmbot_plugin_{}__{metric}", plugin.replace('-', "_"))
}

/// The names a metric's samples take: a histogram's `_bucket`, `_sum` and `_count` too.
pub(crate) fn sample_names(spec: &MetricSpec) -> Vec<String> {
    match spec.kind {
        MetricKind::Histogram => ["", "_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{}{suffix}", spec.name))
            .collect(),
        MetricKind::Counter | MetricKind::Gauge => vec![spec.name.clone()],
    }
}

fn family(plugin: &str, spec: &MetricSpec) -> prometheus::Result<Family> {
    let name = family_name(plugin, &spec.name);
    let help = if spec.help.is_empty() {
        format!("{} (plugin {plugin})", spec.name)
    } else {
        spec.help.clone()
    };
    let labels: Vec<&str> = spec.labels.iter().map(String::as_str).collect();
    Ok(match spec.kind {
        MetricKind::Counter => Family::Counter(CounterVec::new(Opts::new(name, help), &labels)?),
        MetricKind::Gauge => Family::Gauge(GaugeVec::new(Opts::new(name, help), &labels)?),
        MetricKind::Histogram => {
            let mut opts = HistogramOpts::new(name, help);
            if !spec.buckets.is_empty() {
                opts = opts.buckets(spec.buckets.clone());
            }
            Family::Histogram(HistogramVec::new(opts, &labels)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: MetricKind, labels: &[&str]) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            kind,
            help: String::new(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            buckets: Vec::new(),
        }
    }

    #[test]
    fn label_combinations_are_capped_per_metric() {
        let metrics = PluginMetrics::new(2);
        metrics.register("p", &[spec("calls", MetricKind::Counter, &["model"])]);
        let record = |model: &str| {
            metrics.record("p", "calls", MetricKind::Counter, 1.0, &[model.to_owned()])
        };
        assert!(record("a").is_ok() && record("b").is_ok() && record("a").is_ok());
        assert!(matches!(record("c"), Err(MetricError::TooManySeries(_))));
        let families = metrics.gather();
        assert_eq!(families[0].name(), "wasmbot_plugin_p__calls");
        assert_eq!(families[0].get_metric().len(), 2);
    }

    #[test]
    fn unknown_names_kinds_and_bad_values_are_refused() {
        let metrics = PluginMetrics::new(10);
        metrics.register("p", &[spec("depth", MetricKind::Gauge, &[])]);
        let unknown = metrics.record("p", "nope", MetricKind::Gauge, 1.0, &[]);
        assert!(matches!(unknown, Err(MetricError::Unknown(_))));
        let kind = metrics.record("p", "depth", MetricKind::Counter, 1.0, &[]);
        assert!(matches!(kind, Err(MetricError::Unknown(_))));
        let labels = metrics.record("p", "depth", MetricKind::Gauge, 1.0, &["x".into()]);
        assert!(matches!(labels, Err(MetricError::Invalid(_))));
        let nan = metrics.record("p", "depth", MetricKind::Gauge, f64::NAN, &[]);
        assert!(matches!(nan, Err(MetricError::Invalid(_))));
        assert!(
            metrics
                .record("p", "depth", MetricKind::Gauge, -3.0, &[])
                .is_ok()
        );
        assert!(spec("Bad-Name", MetricKind::Gauge, &[]).check().is_err());
        assert!(spec("a__b", MetricKind::Gauge, &[]).check().is_err());
        assert_ne!(family_name("a-b", "c"), family_name("a", "b_c"));
        let histogram = spec("x", MetricKind::Histogram, &[]);
        let counter = spec("x_count", MetricKind::Counter, &[]);
        assert!(sample_names(&histogram).contains(&sample_names(&counter)[0]));
        assert!(spec("ok", MetricKind::Gauge, &["a", "a"]).check().is_err());
        metrics.forget("p");
        assert!(metrics.gather().is_empty());
    }
}
