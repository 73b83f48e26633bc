//! Drives the load capabilities from the outside:
//! - `!ai`: 3 per minute per user through `rate-limit`; answers `ok` or `wait:MS`;
//! - `!work`: holds a place in the `work` queue until the global setting `open` is true,
//!   then answers `done`; or `err:busy` / `err:shedding`;
//! - `!metric OP NAME VALUE [LABEL]`: `add`, `set` or `observe`; answers `ok` or
//!   `err:KIND`;
//! - `!mem`: the memory figures as `mem:RESIDENT:PRESSURE:INSTANCE`;
//! - `!bench-limit N`: N rate-limit checks of one generous key, each timed; answers their
//!   nanoseconds (for the Redis benchmark: one host call that awaits one round trip).

use std::time::Duration;

use serde_json::json;
use wasmbot_sdk::{
    config::{self, Scope},
    metrics::{self, MetricsError},
    prelude::*,
    queue::{self, QueueError},
    rate_limit,
};

struct Probe;

impl Plugin for Probe {
    fn manifest() -> Manifest {
        let declared = [
            metrics::counter("calls", "Calls by kind", &["kind"]),
            metrics::gauge("depth", "A depth", &[]),
            metrics::histogram("size", "Sizes", &[], &[1.0, 10.0, 100.0]),
        ];
        for result in declared {
            if let Err(error) = result {
                log::error(&format!("declaring: {error:?}"));
            }
        }
        Manifest::new("load-probe", "0.1.0")
            .command(CommandSpec::new("ai", "A rate-limited call"))
            .command(CommandSpec::new("work", "Heavy work through the queue"))
            .command(
                CommandSpec::new("metric", "Record a metric")
                    .option(OptionSpec::new("op", "add, set, observe", OptionKind::Text).required())
                    .option(OptionSpec::new("name", "The metric", OptionKind::Text).required())
                    .option(OptionSpec::new("value", "The value", OptionKind::Number).required())
                    .option(OptionSpec::new("label", "A label value", OptionKind::Text)),
            )
            .command(CommandSpec::new("mem", "Memory figures"))
            .command(
                CommandSpec::new("bench-limit", "Times rate-limit checks")
                    .option(OptionSpec::new("n", "How many", OptionKind::Number).required()),
            )
            .capability("log")
            .capability("config")
            .capability("rate-limit")
            .capability("queue")
            .capability("metrics")
            .config(ScopeKind::Global, &json!({ "open": false }))
    }

    fn handle(event: Event) -> Handled {
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        let answer = match command.name.as_str() {
            "ai" => {
                let key = format!("ai:{}", event.author.id);
                match rate_limit::check(&key, 3, Duration::from_secs(60))? {
                    None => "ok".to_owned(),
                    Some(wait) => format!("wait:{}", wait.as_millis()),
                }
            }
            "work" => match queue::enter("work") {
                Ok(_ticket) => {
                    while !config::get::<bool>(&Scope::Global, "open")? {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    "done".to_owned()
                }
                Err(QueueError::Busy(_)) => "err:busy".to_owned(),
                Err(QueueError::Shedding(_)) => "err:shedding".to_owned(),
                Err(other) => format!("err:{other:?}"),
            },
            "bench-limit" => {
                let checks = command.number("n").unwrap_or(1.0) as usize;
                let mut nanos = Vec::with_capacity(checks);
                for _ in 0..checks {
                    // std's clock on wasm32-wasip2 is WASI's monotonic clock.
                    let started = std::time::Instant::now();
                    rate_limit::check("bench", 50_000_000, Duration::from_secs(60))?;
                    nanos.push(started.elapsed().as_nanos().to_string());
                }
                nanos.join(" ")
            }
            "metric" => {
                let name = command.text("name").unwrap_or_default();
                let value = command.number("value").unwrap_or_default();
                let labels: Vec<&str> = command.text("label").into_iter().collect();
                let result = match command.text("op").unwrap_or_default() {
                    "add" => metrics::add(name, value, &labels),
                    "set" => metrics::set(name, value, &labels),
                    _ => metrics::observe(name, value, &labels),
                };
                match result {
                    Ok(()) => "ok".to_owned(),
                    Err(MetricsError::Unknown(_)) => "err:unknown".to_owned(),
                    Err(MetricsError::Invalid(_)) => "err:invalid".to_owned(),
                    Err(MetricsError::TooManySeries(_)) => "err:too-many-series".to_owned(),
                    Err(MetricsError::Denied(_)) => "err:denied".to_owned(),
                }
            }
            _ => {
                let memory = metrics::memory();
                format!(
                    "mem:{}:{:?}:{}",
                    memory.resident_bytes, memory.pressure, memory.instance_bytes
                )
            }
        };
        Ok(vec![Action::reply(answer)])
    }
}

export_plugin!(Probe);
