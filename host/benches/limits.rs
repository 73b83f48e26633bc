//! Rate-limit checks per second, in this process (governor) and through Redis (one script
//! per check), and what the operator's limits add to one event, in one run.
//!
//! `cargo bench -p wasmbot-host --bench limits`. `CHECKS=N` changes the number of checks
//! per measurement, `EVENTS=N` the events per dispatch measurement. Needs the Redis at
//! `REDIS_URL` (default the machine's).

mod common;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use wasmbot::{
    bindings::types::Platform,
    capabilities::rate_limit::{LimitConfig, OnRedisError, Rate, RateLimiter},
    config::Config,
    platforms::console,
    redis::Redis,
    runtime::Registry,
};
use wasmbot_sdk::build::PluginBuild;

/// Checks per second over 1 000 keys: one caller at a time, then `tasks` at once.
async fn checks_per_second(limiter: Arc<RateLimiter>, checks: u64, tasks: u64) -> (f64, f64) {
    let rate = Rate::new(1_000_000, Duration::from_secs(60)).expect("rate");
    let started = Instant::now();
    for n in 0..checks {
        let key = format!("bench:{}", n % 1000);
        let _ = limiter.check(&key, rate).await;
    }
    let sequential = checks as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move {
                for n in 0..checks / tasks {
                    let key = format!("bench:{task}:{}", n % 1000);
                    let _ = limiter.check(&key, rate).await;
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let concurrent = checks as f64 / started.elapsed().as_secs_f64();
    (sequential, concurrent)
}

/// Mean and p50 / p99 per `!ping` dispatched from Discord users through a host whose
/// limits are `enabled`, counted in Redis when `redis`.
async fn per_event(
    plugins: &Path,
    enabled: bool,
    redis: bool,
    events: u64,
) -> (Duration, f64, f64) {
    let folder = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.runtime.plugins_dir = plugins.to_owned();
    config.runtime.cache_dir = Default::default();
    config.runtime.hot_reload = false;
    config.database.url = format!("sqlite://{}/bot.db?mode=rwc", folder.path().display());
    config.rate_limits.enabled = enabled;
    // Generous: the check runs on every event and always passes.
    config.rate_limits.user = LimitConfig {
        limit: 1_000_000,
        window_secs: 60,
        per: None,
    };
    if redis {
        config.redis.url = common::redis_url();
    }
    let store = Arc::new(config.open_store().await.expect("store"));
    let backends = config.backends(store).expect("backends");
    let registry = Registry::new(config.build_runtime(backends).expect("runtime"));
    registry.load_dir(plugins).await.expect("plugins");
    let dispatcher = config
        .dispatcher(registry)
        .with_outlet(Arc::new(common::Nowhere(Platform::Discord)));
    let mut nanos = Vec::with_capacity(events as usize);
    let started = Instant::now();
    for n in 0..events {
        let mut event = console::event_for_line(&dispatcher, "!ping").expect("event");
        event.platform = Platform::Discord;
        event.author.id = format!("user-{}", n % 100);
        let one = Instant::now();
        dispatcher.dispatch(event).await;
        nanos.push(one.elapsed().as_nanos() as u64);
    }
    let mean = started.elapsed() / events as u32;
    let (p50, p99) = common::percentiles(nanos);
    (mean, p50, p99)
}

fn main() {
    let checks = common::env_or("CHECKS", 200_000);
    let events = common::env_or("EVENTS", 5_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = PluginBuild::new(&root)
        .profile("plugin")
        .package("ping")
        .run()
        .expect("building ping");
    let plugins = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&built[0], plugins.path().join("ping.wasm")).expect("copy");

    let folder = plugins.path().to_owned();
    // On a runtime worker, as the bot's events run (see `common::on_worker`).
    common::on_worker(async move {
        let local = Arc::new(RateLimiter::new(1_000_000, None, OnRedisError::Allow));
        let (sequential, concurrent) = checks_per_second(local, checks, 8).await;
        println!(
            "in-process checks/s: {sequential:.0} one at a time, {concurrent:.0} with 8 tasks"
        );
        let redis = Redis::new(&common::redis_url()).expect("redis url");
        let shared = Arc::new(RateLimiter::new(1, Some(redis), OnRedisError::Deny));
        let redis_checks = (checks / 10).max(1_000);
        let (sequential, concurrent) = checks_per_second(shared, redis_checks, 8).await;
        println!(
            "Redis checks/s:      {sequential:.0} one at a time, {concurrent:.0} with 8 tasks"
        );

        // Warm the plugin's code and the config cache before measuring; then alternate
        // the three setups, three rounds each, and keep each one's median round, so a
        // noisy moment of the shared machine does not land on one setup only.
        per_event(&folder, false, false, 200).await;
        let setups = [
            ("limits off", false, false),
            ("limits in-process", true, false),
            ("limits in Redis", true, true),
        ];
        let mut rounds: Vec<Vec<(Duration, f64, f64)>> = vec![Vec::new(); setups.len()];
        for _ in 0..3 {
            for (setup, (_, enabled, redis)) in setups.iter().enumerate() {
                rounds[setup].push(per_event(&folder, *enabled, *redis, events).await);
            }
        }
        let physical = common::redis_benchmark(&common::redis_url(), 20_000);
        println!("per event (!ping from Discord users, {events} events, median of 3 rounds):");
        match physical {
            Some(p50) => println!("  a Redis round trip now: redis-benchmark PING p50 {p50:.0} µs"),
            None => println!("  redis-benchmark could not run"),
        }
        let mut baseline = None;
        for ((label, _, _), mut measured) in setups.iter().zip(rounds) {
            measured.sort_by_key(|(mean, _, _)| *mean);
            let (mean, p50, p99) = measured[1];
            let off = *baseline.get_or_insert(mean);
            println!(
                "  {label:<18} mean {mean:?}, p50 {p50:.0} µs, p99 {p99:.0} µs ({:+.1} µs per event)",
                (mean.as_nanos() as f64 - off.as_nanos() as f64) / 1000.0
            );
        }
    });
}
