//! `cargo bench -p wasmbot-tests --bench soak`: a host's memory under steady traffic.
//!
//! One host (SQLite in a temporary folder, the defaults otherwise) runs 20 plugins; first
//! one `!ping` from each of `GUILDS` (10 000) guilds, so their settings are in the config
//! store's cache, then `RATE` (200) events a second for `SECONDS` (600), spread over the
//! guilds and over every command of every plugin, each dispatched as it comes (a slow one
//! does not hold up the next). The process's resident memory is sampled every 10 s. It
//! prints the samples and whether the host stayed within 100 MB and flat: the last
//! minute's mean within 5 % of the second minute's.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use wasmbot::{
    bindings::types::{Action, Event, Platform},
    config::Config,
    dispatch::{Dispatcher, Outlet, SendFailure},
    platforms::console,
};
use wasmbot_tests::{install, workspace};

/// Twenty plugins whose commands do not clash (`ai-reply`, without an endpoint, answers
/// that it is unavailable).
const PLUGINS: [&str; 20] = [
    "ping",
    "dice",
    "survey",
    "echo",
    "greeter",
    "settings",
    "legacy",
    "legacy-0-1-4",
    "config-probe",
    "counter-probe",
    "state-probe",
    "schedule-probe",
    "ai-reply",
    "remind",
    "poll",
    "storage-probe",
    "assistant",
    "notifier",
    "menu",
    "user-profile",
];

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const LIMIT_MIB: f64 = 100.0;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Counts what the plugins answer and drops it.
#[derive(Default)]
struct Sink(AtomicU64);

impl Outlet for Sink {
    fn platform(&self) -> Platform {
        Platform::Console
    }

    fn deliver<'a>(
        &'a self,
        _: &'a Event,
        _: &'a str,
        _: Action,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

fn resident_mib() -> f64 {
    memory_stats::memory_stats().map_or(f64::NAN, |m| m.physical_mem as f64 / (1 << 20) as f64)
}

fn event(dispatcher: &Dispatcher, line: &str, guild: u64, user: u64) -> Event {
    let mut event = console::event_for_line(dispatcher, line).expect("a line is an event");
    event.guild_id = Some(format!("soak-guild-{guild}"));
    event.channel_id = format!("soak-channel-{guild}");
    event.author.id = format!("soak-user-{user}");
    event
}

fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len().max(1) as f64
}

async fn soak(seconds: u64, rate: u64, guilds: u64) -> Vec<(u64, f64, u64)> {
    let folder = tempfile::tempdir().expect("a folder");
    let plugins = folder.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins folder");
    install(&plugins, &PLUGINS);
    // The repository's configuration: the grants its plugins need.
    let mut config = Config::load(Some(&workspace().join("wasmbot.toml"))).expect("wasmbot.toml");
    config.runtime.plugins_dir = plugins.clone();
    config.runtime.hot_reload = false;
    config.database.url = format!("sqlite://{}/bot.db?mode=rwc", folder.path().display());
    config.runtime.cache_dir = folder.path().join("cache");
    config.rate_limits.enabled = false;
    let store = Arc::new(config.open_store().await.expect("store"));
    let backends = config.backends(Arc::clone(&store)).expect("backends");
    backends.start();
    let registry = config.registry(config.build_runtime(backends.clone()).expect("runtime"));
    let files = wasmbot::runtime::registry::plugin_files(&plugins).expect("plugins");
    let refused: Vec<_> = registry
        .load_files(&files)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(refused.is_empty(), "every plugin loads: {refused:?}");
    let commands: Vec<String> = registry
        .snapshot()
        .plugins()
        .flat_map(|plugin| plugin.manifest().commands.clone())
        .map(|command| format!("!{} 1", command.name))
        .collect();
    let sink = Arc::new(Sink::default());
    let dispatcher = Arc::new(config.dispatcher(registry).with_outlet(sink.clone()));

    let started = Instant::now();
    for guild in 0..guilds {
        dispatcher
            .dispatch(event(&dispatcher, "!ping", guild, guild))
            .await;
    }
    let (cached, _) = store.cache_size().await;
    println!(
        "{guilds} guilds' first message in {:.1?}; {cached} documents cached; {} MiB resident",
        started.elapsed(),
        resident_mib().round()
    );

    let mut samples = vec![(0, resident_mib(), 0)];
    let traffic = {
        let dispatcher = Arc::clone(&dispatcher);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 0u64.. {
                tick.tick().await;
                let line = &commands[n as usize % commands.len()];
                let event = event(&dispatcher, line, n % guilds, n % 5_000);
                let dispatcher = Arc::clone(&dispatcher);
                tokio::spawn(async move { dispatcher.dispatch(event).await });
            }
        })
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let at = start.elapsed().as_secs();
        samples.push((at, resident_mib(), sink.0.load(Ordering::Relaxed)));
        println!(
            "{at:>4} s: {:>6.1} MiB resident, {} answers",
            samples.last().map_or(0.0, |s| s.1),
            sink.0.load(Ordering::Relaxed)
        );
    }
    traffic.abort();
    let unfinished = dispatcher.drain(Duration::from_secs(10)).await;
    backends.stop().await;
    store.database().pool().close().await;
    assert_eq!(unfinished, 0, "the traffic drained");
    samples
}

fn main() {
    let seconds = env_or("SECONDS", 600);
    let rate = env_or("RATE", 200);
    let guilds = env_or("GUILDS", 10_000);
    // As the binary does before its runtime starts.
    wasmbot::telemetry::allocator::cap_glibc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let samples = runtime
        .block_on(async { tokio::spawn(soak(seconds, rate, guilds)).await })
        .expect("the soak ran");
    let resident: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let peak = resident.iter().copied().fold(0.0, f64::max);
    // Samples 7 to 12 are the second minute, the last six the last one.
    let second = mean(resident.get(7..13).unwrap_or(&[]));
    let last = mean(&resident[resident.len().saturating_sub(6)..]);
    let drift = (last - second) / second * 100.0;
    println!(
        "{} plugins, {guilds} guilds, {rate} events/s for {seconds} s: peak {peak:.1} MiB (target ≤ {LIMIT_MIB}); second minute {second:.1} MiB, last minute {last:.1} MiB ({drift:+.1} %, target within ±5 %)",
        PLUGINS.len()
    );
}
