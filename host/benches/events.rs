//! Events through a trivial plugin (`echo`), each on a fresh pooled instance and then on a
//! kept one (`instances = "reuse"`), against the same logic as a native Rust handler, in
//! one run.
//!
//! `cargo bench -p wasmbot-host --bench events` prints events/s, p50 and p99 per event for
//! both, and the ratios. `EVENTS=N` changes the number of events per measurement;
//! `ONLY=fresh|reuse|native` measures one path alone (for `perf record`).

mod common;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use wasmbot::{
    bindings::types::{Action, Event, EventKind, Outgoing},
    capabilities::Backends,
    config::Config,
    runtime::{Instances, Plugin, Registry},
};
use wasmbot_sdk::build::PluginBuild;

/// The native twin of the `echo` plugin.
fn native_echo(event: &Event) -> Vec<Action> {
    let text = match &event.kind {
        EventKind::Command(command) => command.raw_args.clone(),
        _ => String::new(),
    };
    vec![Action::Reply(Outgoing::text_only(text))]
}

async fn native_handler(event: Event) -> usize {
    std::hint::black_box(native_echo(std::hint::black_box(&event))).len()
}

struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// One event at a time for latency, then `workers` concurrent streams for throughput.
async fn measure<F, Fut>(events: u64, workers: u64, handle: F) -> Figures
where
    F: Fn(Event) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let mut latencies = Vec::with_capacity(events as usize);
    for n in 0..events {
        let event = common::echo_event(n);
        let started = Instant::now();
        let actions = handle(event).await;
        latencies.push(started.elapsed());
        assert_eq!(actions, 1, "every event gets its reply");
    }
    latencies.sort();

    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let handle = handle.clone();
            tokio::spawn(async move {
                for n in 0..events / workers {
                    assert_eq!(handle(common::echo_event(w * events + n)).await, 1);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("worker finished");
    }
    let elapsed = started.elapsed();
    Figures {
        per_second: (events / workers * workers) as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

fn build_echo() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match PluginBuild::new(root)
        .profile("plugin")
        .package("echo")
        .run()
    {
        Ok(mut files) => files.remove(0),
        Err(error) => panic!("building the echo plugin: {error}"),
    }
}

/// `echo` loaded on a runtime of its own, its instances `fresh` or reused.
async fn echo_plugin(wasm: &Path, instances: Instances) -> Arc<Plugin> {
    let mut config = Config::default();
    config.runtime.cache_dir = PathBuf::new();
    config.plugin_defaults.instances = instances;
    // Kept instances are replaced now and then; the figure is of the events between.
    config.plugin_defaults.reuse_events = 10_000;
    let registry = Registry::new(config.build_runtime(Backends::default()).expect("runtime"));
    registry.load_file(wasm).await.expect("echo loads");
    Arc::clone(registry.snapshot().plugin("echo").expect("echo"))
}

fn main() {
    let events = common::env_or("EVENTS", 50_000);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    let wasm = build_echo();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers as usize)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let fresh = echo_plugin(&wasm, Instances::Fresh).await;
        let reused = echo_plugin(&wasm, Instances::Reuse).await;

        // Warm up every path (allocator pools, caches).
        for n in 0..2_000 {
            let _ = fresh.handle(&common::echo_event(n)).await;
            let _ = reused.handle(&common::echo_event(n)).await;
            std::hint::black_box(native_echo(&common::echo_event(n)));
        }

        let through = |plugin: &Arc<Plugin>| {
            let plugin = Arc::clone(plugin);
            move |event: Event| {
                let plugin = Arc::clone(&plugin);
                async move {
                    plugin
                        .handle(&event)
                        .await
                        .map_or(0, |actions| actions.len())
                }
            }
        };
        if let Ok(only) = std::env::var("ONLY") {
            let figures = match only.as_str() {
                "fresh" => measure(events, workers, through(&fresh)).await,
                "reuse" => measure(events, workers, through(&reused)).await,
                _ => measure(events, workers, native_handler).await,
            };
            println!("{only}: p50 {:.2?}, p99 {:.2?}", figures.p50, figures.p99);
            return;
        }
        let sandboxed = measure(events, workers, through(&fresh)).await;
        let kept = measure(events, workers, through(&reused)).await;
        let native = measure(events, workers, native_handler).await;

        println!("events per measurement: {events}, concurrent workers: {workers}");
        println!("| path | events/s | p50 | p99 | p50 host overhead (p50 - native p50) |");
        println!("|---|---|---|---|---|");
        for (name, f) in [
            ("wasm plugin, fresh instance per event", &sandboxed),
            ("wasm plugin, instance reused", &kept),
            ("native Rust handler", &native),
        ] {
            println!(
                "| {name} | {:.0} | {:.2?} | {:.2?} | {:.2?} |",
                f.per_second,
                f.p50,
                f.p99,
                f.p50.saturating_sub(native.p50)
            );
        }
    });
}
