//! The plugin's own metrics, exported with the host's at `/metrics` as
//! `wasmbot_plugin_<plugin>__<name>`; and the memory figures the host watches. Metrics are
//! declared in the manifest function; label combinations per metric are capped by the
//! host. The capability is `metrics`, granted by default.
//!
//! ```
//! use wasmbot_sdk::{metrics, prelude::*};
//!
//! struct Trivia;
//!
//! impl Plugin for Trivia {
//!     fn manifest() -> Manifest {
//!         let _ = metrics::counter("answers", "Answers given, by result", &["result"]);
//!         Manifest::new("trivia", "0.1.0")
//!             .command(CommandSpec::new("answer", "Answer the question"))
//!             .capability("metrics")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         let right = event.text().contains("42");
//!         metrics::add("answers", 1.0, &[if right { "right" } else { "wrong" }])?;
//!         Ok(vec![Action::reply(if right { "Right!" } else { "No." })])
//!     }
//! }
//!
//! export_plugin!(Trivia);
//! ```

pub use crate::bindings::wasmbot::plugin::metrics::{
    MemoryFigures, MetricKind, MetricsError, Pressure,
};
use crate::{PluginError, bindings::wasmbot::plugin::metrics as wit};

/// Declares a metric; only while the plugin describes itself (in `manifest`).
pub fn declare(
    name: &str,
    kind: MetricKind,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<(), MetricsError> {
    wit::declare(&wit::MetricSpec {
        name: name.to_owned(),
        kind,
        help: help.to_owned(),
        labels: labels.iter().map(|label| label.to_string()).collect(),
        buckets: buckets.to_vec(),
    })
}

/// Declares a counter.
pub fn counter(name: &str, help: &str, labels: &[&str]) -> Result<(), MetricsError> {
    declare(name, MetricKind::Counter, help, labels, &[])
}

/// Declares a gauge.
pub fn gauge(name: &str, help: &str, labels: &[&str]) -> Result<(), MetricsError> {
    declare(name, MetricKind::Gauge, help, labels, &[])
}

/// Declares a histogram with these bucket bounds (empty: the host's defaults).
pub fn histogram(
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<(), MetricsError> {
    declare(name, MetricKind::Histogram, help, labels, buckets)
}

fn owned(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|label| label.to_string()).collect()
}

/// Adds `value` to a counter; `labels` are its label values in declared order.
pub fn add(name: &str, value: f64, labels: &[&str]) -> Result<(), MetricsError> {
    wit::add(name, value, &owned(labels))
}

/// Sets a gauge.
pub fn set(name: &str, value: f64, labels: &[&str]) -> Result<(), MetricsError> {
    wit::set(name, value, &owned(labels))
}

/// Records an observation in a histogram.
pub fn observe(name: &str, value: f64, labels: &[&str]) -> Result<(), MetricsError> {
    wit::observe(name, value, &owned(labels))
}

/// The host's memory figures, and this instance's.
pub fn memory() -> MemoryFigures {
    wit::memory()
}

/// So `?` works in a handler.
impl From<MetricsError> for PluginError {
    fn from(error: MetricsError) -> Self {
        match error {
            MetricsError::Denied(text)
            | MetricsError::Unknown(text)
            | MetricsError::Invalid(text)
            | MetricsError::TooManySeries(text) => PluginError::Internal(text),
        }
    }
}
