//! Start-up: the first-party plugins (`plugins/*`) loaded into a host, from a cold
//! compiled-component cache and from a warm one, side by side (as the host loads its
//! folder) against one after another (the baseline), in one run.
//!
//! `cargo bench -p wasmbot-host --bench startup`. Each figure is the median of 3 runs; a
//! cold run starts from an empty cache folder. The plugins get the grants of the
//! repository's `wasmbot.toml`.

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use wasmbot::{capabilities::Backends, config::Config};
use wasmbot_sdk::build::PluginBuild;

/// The first-party plugins, built with the plugins' profile, in a folder of their own.
fn first_party(root: &Path, into: &Path) -> Vec<PathBuf> {
    let mut packages: Vec<String> = std::fs::read_dir(root.join("plugins"))
        .expect("plugins/")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    packages.sort();
    let mut build = PluginBuild::new(root).profile("plugin");
    for package in &packages {
        build = build.package(package.as_str());
    }
    let built = build.run().expect("the first-party plugins build");
    built
        .iter()
        .map(|file| {
            let copy = into.join(file.file_name().expect("a file name"));
            std::fs::copy(file, &copy).expect("copied");
            copy
        })
        .collect()
}

/// Loads `folder` into a new host whose cache is `cache`; how long until every plugin
/// serves.
async fn start(folder: &Path, cache: &Path, side_by_side: bool) -> Duration {
    // The repository's configuration grants what the first-party plugins ask for.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasmbot.toml");
    let mut config = Config::load(Some(&file)).expect("wasmbot.toml");
    config.runtime.cache_dir = cache.to_owned();
    let runtime = config.build_runtime(Backends::default()).expect("runtime");
    let registry = config.registry(runtime);
    let files = wasmbot::runtime::registry::plugin_files(folder).expect("the folder");
    let started = Instant::now();
    let loaded = if side_by_side {
        registry.load_files(&files).await
    } else {
        let mut loaded = Vec::new();
        for file in &files {
            loaded.push(registry.load_file(file).await);
        }
        loaded
    };
    let took = started.elapsed();
    assert!(
        loaded.iter().all(Result::is_ok),
        "every plugin loads: {loaded:?}"
    );
    took
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let folder = tempfile::tempdir().expect("a folder");
    let files = first_party(&root, folder.path());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let figures = common::on_worker({
        let folder = folder.path().to_owned();
        async move {
            let mut figures = Vec::new();
            for side_by_side in [false, true] {
                let (mut cold, mut warm) = (Vec::new(), Vec::new());
                for _ in 0..3 {
                    let cache = tempfile::tempdir().expect("a cache folder");
                    cold.push(start(&folder, cache.path(), side_by_side).await);
                    warm.push(start(&folder, cache.path(), side_by_side).await);
                }
                figures.push((side_by_side, median(cold), median(warm)));
            }
            figures
        }
    });
    println!(
        "{} first-party plugins, {cores} cores; median of 3 starts",
        files.len()
    );
    println!("| loading | cold cache | warm cache |");
    println!("|---|---|---|");
    for (side_by_side, cold, warm) in figures {
        let how = match side_by_side {
            true => "side by side (the host's folder load)",
            false => "one after another (baseline)",
        };
        println!("| {how} | {cold:.2?} | {warm:.2?} |");
    }
}
