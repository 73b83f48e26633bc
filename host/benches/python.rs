//! A Python plugin (`tests/plugins-py/echo`, built with componentize-py: an interpreter in
//! an 18 MB component) on a fresh instance per event and on a reused one, beside the Rust
//! `echo` plugin on the same paths, in one run.
//!
//! `cargo bench -p wasmbot-host --bench python`. componentize-py is installed from PyPI into
//! `target/componentize-py` on the first run (`python3 -m pip`); when it cannot be, the
//! benchmark says so and measures the Rust plugin alone. `EVENTS=N` changes the events per
//! measurement of a reused instance (2 000; a fresh one gets a tenth of them).

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Instant,
};

use wasmbot::{
    capabilities::Backends,
    config::Config,
    runtime::{Instances, Plugin, Registry},
};
use wasmbot_sdk::build::PluginBuild;

const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// Builds the Python plugin, installing componentize-py first if needed; why not, if it
/// cannot be.
fn build_python(root: &Path) -> Result<PathBuf, String> {
    let tools = root.join("target/componentize-py");
    let script = tools.join("bin/componentize-py");
    if !script.is_file() {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&tools)
            .arg(COMPONENTIZE_PY)
            .status()
            .map_err(|error| format!("python3 -m pip could not run: {error}"))?;
        if !installed.success() {
            return Err(format!(
                "pip could not install {COMPONENTIZE_PY} ({installed})"
            ));
        }
    }
    let out = root.join("target/py-echo.wasm");
    let started = Instant::now();
    let built = Command::new(&script)
        .current_dir(root)
        .env("PYTHONPATH", &tools)
        .args(["-d", "wit", "-w", "plugin", "componentize", "app"])
        .args(["-p", "tests/plugins-py/echo", "-o"])
        .arg(&out)
        .status()
        .map_err(|error| format!("componentize-py could not run: {error}"))?;
    if !built.success() {
        return Err(format!("componentize-py failed ({built})"));
    }
    println!(
        "py-echo built by {COMPONENTIZE_PY} in {:.1?}",
        started.elapsed()
    );
    Ok(out)
}

/// `wasm` loaded on a runtime of its own, its instances fresh or reused.
async fn load(wasm: &Path, instances: Instances) -> Arc<Plugin> {
    let mut config = Config::default();
    config.runtime.cache_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache");
    config.plugin_defaults.instances = instances;
    config.plugin_defaults.reuse_events = 1_000_000;
    let registry = Registry::new(config.build_runtime(Backends::default()).expect("runtime"));
    let started = Instant::now();
    registry.load_file(wasm).await.expect("the plugin loads");
    let took = started.elapsed();
    let snapshot = registry.snapshot();
    let plugin = snapshot.plugins().next().expect("one plugin");
    if instances == Instances::Fresh {
        println!(
            "{} loaded in {took:.1?} (compiled, or from the cache)",
            plugin.name()
        );
    }
    Arc::clone(plugin)
}

/// p50 and p99 of `events` events, one at a time, after a warm-up.
async fn per_event(plugin: &Plugin, events: u64) -> (f64, f64) {
    for n in 0..events.min(50) {
        plugin
            .handle(&common::echo_event(n))
            .await
            .expect("the plugin answers");
    }
    let mut nanos = Vec::with_capacity(events as usize);
    for n in 0..events {
        let started = Instant::now();
        let actions = plugin
            .handle(&common::echo_event(n))
            .await
            .expect("the plugin answers");
        nanos.push(started.elapsed().as_nanos() as u64);
        assert_eq!(actions.len(), 1, "every event gets its reply");
    }
    common::percentiles(nanos)
}

fn main() {
    let events = common::env_or("EVENTS", 2_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rust = PluginBuild::new(&root)
        .profile("plugin")
        .package("echo")
        .run()
        .expect("the echo plugin builds")
        .remove(0);
    let python = build_python(&root);
    if let Err(why) = &python {
        println!("no Python plugin measured: {why}");
    }
    let rows = common::on_worker(async move {
        let mut rows = Vec::new();
        let mut plugins = vec![("Rust echo", rust)];
        if let Ok(python) = python {
            plugins.push(("Python echo (componentize-py)", python));
        }
        for (name, wasm) in plugins {
            for (instances, count) in [(Instances::Fresh, events / 10), (Instances::Reuse, events)]
            {
                let plugin = load(&wasm, instances).await;
                let (p50, p99) = per_event(&plugin, count.max(20)).await;
                rows.push((name, instances, p50, p99));
            }
        }
        rows
    });
    println!("| plugin | instances | p50 per event | p99 |");
    println!("|---|---|---|---|");
    for (name, instances, p50, p99) in rows {
        println!("| {name} | {instances:?} | {p50:.1} µs | {p99:.1} µs |");
    }
}
