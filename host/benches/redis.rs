//! Every Redis path of the host against the round trip it waits for, in one run:
//! `redis-benchmark`'s PING (the physical limit: its own client, in C), a PING through the
//! host's client, a rate-limit check (one script), the config store's second layer (an L1
//! miss answered by Redis), the conversation state's cached read, and the same rate-limit
//! check made by a plugin (`load-probe`): its difference from the native check is what an
//! async host call adds from wasm.
//!
//! `cargo bench -p wasmbot-host --bench redis` (Redis at `REDIS_URL`, default the
//! machine's). `CALLS=N` changes the calls per path and round (5 000). Three rounds, the
//! paths in turn within each, so a noisy moment of the shared machine does not land on one
//! path only; each path's median round is reported.

mod common;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use serde_json::json;
use wasmbot::{
    capabilities::{
        config_store::{ConfigStore, Scope, ScopeKind, StoreConfig},
        rate_limit::{Rate, RateLimiter},
        state::{Conversation, StateStore},
    },
    config::Config,
    dispatch::Dispatcher,
    platforms::console,
    redis::Redis,
    runtime::Registry,
};
use wasmbot_sdk::build::PluginBuild;

/// The rate-limit key and rate of `load-probe`'s `!bench-limit`, as the host names it.
const PLUGIN_KEY: &str = "plugin:load-probe:bench";

fn rate() -> Rate {
    Rate::new(50_000_000, Duration::from_secs(60)).expect("rate")
}

/// Times `calls` calls of `call`, one at a time; their nanoseconds.
async fn timed<F, Fut>(calls: u64, mut call: F) -> Vec<u64>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut nanos = Vec::with_capacity(calls as usize);
    for n in 0..calls {
        let started = Instant::now();
        call(n).await;
        nanos.push(started.elapsed().as_nanos() as u64);
    }
    nanos
}

/// The plugin's own timings of `calls` rate-limit checks.
async fn from_plugin(dispatcher: &Dispatcher, calls: u64) -> Vec<u64> {
    let mut nanos = Vec::with_capacity(calls as usize);
    // One event holds at most a few thousand checks within its budgets.
    while (nanos.len() as u64) < calls {
        let batch = (calls - nanos.len() as u64).min(1_000);
        let event = console::event_for_line(dispatcher, &format!("!bench-limit {batch}"))
            .expect("an event");
        nanos.extend(common::plugin_timings(dispatcher, event).await);
    }
    nanos
}

struct Paths {
    dispatcher: Dispatcher,
    redis: Arc<Redis>,
    limiter: Arc<RateLimiter>,
    /// Guilds whose settings are in Redis and not in `reader`'s own cache.
    reader: ConfigStore,
    state: Arc<StateStore>,
    conversation: Conversation,
    /// Guild ids used so far by the L2 reads (each is read once: a miss of the L1).
    guilds: u64,
    writer: ConfigStore,
    run: String,
}

impl Paths {
    async fn new(probe: &Path, url: &str, folder: &Path) -> Self {
        let mut config = Config::default();
        config.runtime.cache_dir = PathBuf::new();
        config.database.url = format!("sqlite://{}/bench.db?mode=rwc", folder.display());
        config.redis.url = url.to_owned();
        config.rate_limits.enabled = false;
        // A round of checks is one event: its budget must not cut the measurement short.
        config.plugin_defaults.cpu_ms = 60_000;
        let store = Arc::new(config.open_store().await.expect("store"));
        let backends = config.backends(Arc::clone(&store)).expect("backends");
        let limiter = backends.rate_limit.clone().expect("rate limits");
        let redis = Arc::clone(store.redis().expect("the store's Redis"));
        let registry = Registry::new(config.build_runtime(backends).expect("runtime"));
        registry.load_file(probe).await.expect("load-probe loads");
        let dispatcher = config.dispatcher(registry);
        let db = store.database().clone();

        let settings = || {
            let store = ConfigStore::new(db.clone(), StoreConfig::default())
                .with_redis(url)
                .expect("Redis url");
            let defaults = json!({"prefix": "!"})
                .as_object()
                .cloned()
                .unwrap_or_default();
            store.register_defaults("bench", ScopeKind::Guild, defaults);
            store
        };
        let state = StateStore::new(db.clone(), Default::default(), Some(Arc::clone(&redis)));
        let conversation = Conversation {
            plugin: "bench".into(),
            platform: "console".into(),
            chat: "chat".into(),
            user: "user".into(),
        };
        state
            .set(&conversation, "{\"step\":1}", Duration::from_secs(600))
            .await
            .expect("state written");
        let run = std::process::id().to_string();
        Self {
            dispatcher,
            redis,
            limiter,
            reader: settings(),
            state,
            conversation,
            guilds: 0,
            writer: settings(),
            run,
        }
    }

    /// Puts the settings of the next `calls` guilds in Redis through the writer's reads.
    async fn fill_l2(&self, calls: u64) {
        for n in self.guilds..self.guilds + calls {
            let guild = Scope::Guild(format!("bench-{}-{n}", self.run));
            self.writer
                .get("bench", &guild, "prefix")
                .await
                .expect("read");
        }
    }
}

fn p50(nanos: Vec<u64>) -> f64 {
    common::percentiles(nanos).0
}

fn median(mut rounds: Vec<f64>) -> f64 {
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

fn main() {
    let calls = common::env_or("CALLS", 5_000);
    let url = common::redis_url();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let probe = PluginBuild::new(root)
        .profile("plugin")
        .package("load-probe")
        .run()
        .expect("the plugin builds")
        .remove(0);
    let folder = tempfile::tempdir().expect("a folder");
    let labels = [
        "PING, redis-benchmark (C client)",
        "PING, the host's client",
        "rate-limit check (one script)",
        "config store read, L1 miss answered by Redis",
        "conversation state read (Redis)",
        "rate-limit check from a plugin",
    ];
    let folder_path = folder.path().to_owned();
    // On a worker of the runtime, as the bot's events run: a future blocked on from outside
    // is woken across threads at every await (`common::on_worker`).
    let rounds = common::on_worker(async move {
        let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); 6];
        let mut paths = Paths::new(&probe, &url, &folder_path).await;
        // Warm connections, caches and the plugin's code.
        from_plugin(&paths.dispatcher, 500).await;
        for _ in 0..3 {
            let physical = common::redis_benchmark(&url, calls * 4);
            rounds[0].push(physical.unwrap_or(f64::NAN));
            let redis = &paths.redis;
            let ping = timed(calls, |_| async { redis.ping().await.expect("PING") }).await;
            rounds[1].push(p50(ping));
            let limiter = &paths.limiter;
            let check = timed(calls, |_| async {
                limiter.check(PLUGIN_KEY, rate()).await.expect("checked");
            })
            .await;
            rounds[2].push(p50(check));
            paths.fill_l2(calls).await;
            let (reader, first, run) = (&paths.reader, paths.guilds, &paths.run);
            let l2_hits = reader.stats().l2_hits.load(Ordering::Relaxed);
            let l2 = timed(calls, |n| async move {
                let guild = Scope::Guild(format!("bench-{run}-{}", first + n));
                reader.get("bench", &guild, "prefix").await.expect("read");
            })
            .await;
            let hits = reader.stats().l2_hits.load(Ordering::Relaxed);
            assert_eq!(hits - l2_hits, calls, "every read was answered by Redis");
            paths.guilds += calls;
            rounds[3].push(p50(l2));
            let (state, conversation) = (&paths.state, &paths.conversation);
            let read = timed(calls, |_| async {
                state.get(conversation).await.expect("state read");
            })
            .await;
            rounds[4].push(p50(read));
            rounds[5].push(p50(from_plugin(&paths.dispatcher, calls).await));
        }
        rounds
    });
    let figures: Vec<f64> = rounds.into_iter().map(median).collect();
    let (physical, ping) = (figures[0], figures[1]);
    println!("calls per path and round: {calls}; median of 3 rounds");
    println!("| path | p50 | / host PING | / redis-benchmark PING |");
    println!("|---|---|---|---|");
    for (label, p50) in labels.iter().zip(&figures) {
        println!(
            "| {label} | {p50:.1} µs | {:.2}× | {:.2}× |",
            p50 / ping,
            p50 / physical
        );
    }
    println!(
        "what an async host call adds from a plugin (plugin check - native check, p50): {:.1} µs",
        figures[5] - figures[2]
    );
}
