//! The config store, counted by Postgres itself (`pg_stat_user_tables`).
//!
//! `cargo bench -p wasmbot-host --bench config` (Postgres from `DATABASE_URL`, default the
//! local server's `test` database): (a) a config read from inside a plugin on an L1 hit,
//! timed by the plugin, with the clock's own cost and the store's native read beside it;
//! (b) 100 000 `!ping` messages from 1 000 guilds through the dispatcher, the guild prefix
//! read through the store, against the naive path (every read goes to the database: a zero
//! time to live makes each message one upsert); (c) 1 000 concurrent misses on one key;
//! (d) what the guild-switch check adds to one event: reading the guild's `switches`
//! through the store (an L1 hit) and checking a plugin and a command against them, beside
//! the prefix read every message already made, and the database queries it made (target:
//! none).

mod common;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use futures::future::join_all;
use wasmbot::{
    bindings::types::Platform,
    capabilities::{
        Backends,
        config_store::{ConfigStore, Document, Scope, ScopeKind, StoreConfig},
    },
    config::Config,
    db::{Database, DatabaseConfig},
    dispatch::{Dispatcher, limits::Limits},
    platforms::console,
    runtime::Registry,
};
use wasmbot_sdk::build::PluginBuild;

const MESSAGES: usize = 100_000;
const GUILDS: usize = 1_000;

/// Statements on the config table, as Postgres counts them: every config read that reaches
/// the database is one upsert, which inserts or updates one row. (`pg_stat_database`'s
/// transaction count would also count autovacuum's work after the naive run.)
async fn config_statements(db: &Database) -> i64 {
    common::table_writes(db, "config_entries").await
}

async fn run(db: &Database, wasm: &Path, config: StoreConfig, label: &str, run_id: &str) {
    let store = Arc::new(ConfigStore::new(db.clone(), config));
    let mut host_config = Config::default();
    host_config.runtime.cache_dir = PathBuf::new();
    let backends = Backends {
        config_store: Some(store),
        ..Backends::default()
    };
    let runtime = host_config.build_runtime(backends).expect("runtime");
    let registry = Registry::new(runtime);
    registry.load_file(wasm).await.expect("ping loads");
    // No limiter: the operator's limits count nothing here (the console is exempt anyway).
    let limits = Limits::new(None, host_config.rate_limits.clone());
    let dispatcher = Arc::new(
        Dispatcher::new(registry, host_config.bot, limits)
            .with_outlet(Arc::new(common::Nowhere(Platform::Console))),
    );

    let before = config_statements(db).await;
    let started = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            let dispatcher = Arc::clone(&dispatcher);
            let run_id = run_id.to_owned();
            tokio::spawn(async move {
                for n in (worker..MESSAGES).step_by(2) {
                    let mut event = console::event_for_line(&dispatcher, "!ping").expect("event");
                    event.guild_id = Some(format!("{run_id}-g{}", n % GUILDS));
                    dispatcher.dispatch(event).await;
                }
            })
        })
        .collect();
    for worker in join_all(workers).await {
        worker.expect("worker");
    }
    let elapsed = started.elapsed();
    let queries = config_statements(db).await - before;
    println!(
        "| {label} | {MESSAGES} | {GUILDS} | {queries} | {:.0} |",
        MESSAGES as f64 / elapsed.as_secs_f64()
    );
}

/// Reads timed inside the config-probe plugin: `!cfg OP guild greeting N` answers each
/// read's nanoseconds.
async fn plugin_reads(db: &Database, probe: &Path, run_id: &str) {
    const READS: usize = 2_000;
    const ROUNDS: usize = 10;
    let store = Arc::new(ConfigStore::new(db.clone(), StoreConfig::default()));
    let backends = Backends {
        config_store: Some(Arc::clone(&store)),
        ..Backends::default()
    };
    let mut config = Config::default();
    config.runtime.cache_dir = PathBuf::new();
    let runtime = config.build_runtime(backends).expect("runtime");
    let registry = Registry::new(runtime);
    registry.load_file(probe).await.expect("config-probe loads");
    let limits = Limits::new(None, config.rate_limits.clone());
    let dispatcher = Dispatcher::new(registry, config.bot, limits)
        .with_outlet(Arc::new(common::Nowhere(Platform::Console)));
    let guild = format!("{run_id}-reads");
    let timed = |op: &'static str| {
        let (dispatcher, guild) = (&dispatcher, guild.clone());
        async move {
            let mut nanos = Vec::new();
            for _ in 0..ROUNDS {
                let line = format!("!cfg {op} guild greeting {READS}");
                let mut event = console::event_for_line(dispatcher, &line).expect("event");
                event.guild_id = Some(guild.clone());
                nanos.extend(common::plugin_timings(dispatcher, event).await);
            }
            nanos
        }
    };
    timed("time").await; // The miss, and warm caches.
    let reads = timed("time").await;
    let clock = timed("clock").await;
    let scope = Scope::Guild(guild.clone());
    let mut native = Vec::new();
    for _ in 0..READS * ROUNDS {
        let started = Instant::now();
        std::hint::black_box(
            store
                .get("config-probe", &scope, "greeting")
                .await
                .expect("read"),
        );
        native.push(started.elapsed().as_nanos() as u64);
    }
    println!("| measured | p50 | p99 |");
    println!("|---|---|---|");
    for (label, nanos) in [
        ("config read inside the plugin (L1 hit)", reads),
        ("the plugin's clock alone (included above)", clock),
        ("the store's read, native (included above)", native),
    ] {
        let (p50, p99) = common::percentiles(nanos);
        println!("| {label} | {p50:.2} µs | {p99:.2} µs |");
    }
    println!();
}

/// Each of `count` calls of `what`, timed, in nanoseconds.
async fn timed<F: std::future::Future<Output = bool>>(
    count: usize,
    what: impl Fn() -> F,
) -> Vec<u64> {
    let mut nanos = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        std::hint::black_box(what().await);
        nanos.push(started.elapsed().as_nanos() as u64);
    }
    nanos
}

async fn switch_check(db: &Database, run_id: &str) {
    use wasmbot::capabilities::config_store::host_settings::{
        self, GuildSettings, HOST, PREFIX, STAFF_ROLES, SWITCHES,
    };
    const EVENTS: usize = 200_000;
    let store = Arc::new(ConfigStore::new(db.clone(), StoreConfig::default()));
    host_settings::register(&store, "!");
    let scope = Scope::Guild(format!("{run_id}-switched"));
    let guild = format!("{run_id}-switched");
    // A guild that switched a plugin off and a command off in a channel, with staff.
    let switched = serde_json::json!({
        "plugins": { "dice": false, "poll": true },
        "commands": ["roll", "remind@general"],
    });
    store
        .set(HOST, &scope, SWITCHES, switched)
        .await
        .expect("switches written");
    let staff = serde_json::json!(["111", "222"]);
    store
        .set(HOST, &scope, STAFF_ROLES, staff)
        .await
        .expect("staff written");
    // What the dispatcher reads per guild event now: the settings and the two checks.
    let now = || async {
        let settings = GuildSettings::read(&store, &guild, "!").await;
        settings.switches.plugin_on("ping", true) && settings.switches.command_on("ping", "general")
    };
    // What it read before switches existed: the prefix and the staff roles, a field each.
    let before = || async {
        let prefix = store.get(HOST, &scope, PREFIX).await.is_ok();
        let staff = store.get(HOST, &scope, STAFF_ROLES).await.is_ok();
        prefix && staff
    };
    timed(EVENTS, now).await; // Warm: the one miss.
    let queries_before = config_statements(db).await;
    let with_switches = timed(EVENTS, now).await;
    let without = timed(EVENTS, before).await;
    let queries = config_statements(db).await - queries_before;
    let (now50, now99) = common::percentiles(with_switches);
    let (before50, before99) = common::percentiles(without);
    println!("| a guild event's settings | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| now: prefix, staff roles and switches in one read, a plugin and a command checked | {now50:.2} µs | {now99:.2} µs |"
    );
    println!(
        "| before switches (baseline): prefix and staff roles, a field read each | {before50:.2} µs | {before99:.2} µs |"
    );
    println!(
        "| what the switch check adds (p50) | {:.2} µs | |",
        now50 - before50
    );
    println!();
    println!(
        "Database queries during those {} reads: {queries} (target 0)",
        EVENTS * 2
    );
    println!();
}

async fn concurrent_misses(db: &Database, run_id: &str) {
    let store = Arc::new(ConfigStore::new(db.clone(), StoreConfig::default()));
    let mut defaults = Document::new();
    defaults.insert("prefix".into(), "!".into());
    store.register_defaults("bench", ScopeKind::Guild, defaults);
    let before = config_statements(db).await;
    let scope = Scope::Guild(format!("{run_id}-hot"));
    let readers = (0..1_000).map(|_| {
        let (store, scope) = (Arc::clone(&store), scope.clone());
        tokio::spawn(async move { store.get("bench", &scope, "prefix").await })
    });
    for reader in join_all(readers).await {
        reader.expect("reader").expect("value");
    }
    let queries = config_statements(db).await - before;
    println!("1 000 concurrent misses on one key: {queries} database queries (target 1)");
}

fn main() {
    let url = common::database_url();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut built = PluginBuild::new(root)
        .profile("plugin")
        .package("ping")
        .package("config-probe")
        .run()
        .expect("the plugins build");
    let (probe, wasm) = (built.remove(1), built.remove(0));
    let runtime = common::runtime();
    runtime.block_on(async {
        // Every connection open before counting, none closed meanwhile: opening one is a
        // transaction too, and would be counted as a query.
        let db = Database::connect(&DatabaseConfig {
            url,
            max_connections: 10,
            min_connections: 10,
            idle_timeout_ms: 3_600_000,
            ..DatabaseConfig::default()
        })
        .expect("database");
        db.migrate().await.expect("migrations");
        let warm = (0..10).map(|_| sqlx::query("SELECT pg_sleep(0.2)").execute(db.pool()));
        for opened in join_all(warm).await {
            opened.expect("a connection");
        }
        let run_id = format!("bench-{}", std::process::id());
        plugin_reads(&db, &probe, &run_id).await;
        switch_check(&db, &run_id).await;
        println!("| path | messages | guilds | database queries | messages/s |");
        println!("|---|---|---|---|---|");
        run(
            &db,
            &wasm,
            StoreConfig::default(),
            "config store (L1 cache)",
            &run_id,
        )
        .await;
        let naive = StoreConfig {
            guild_ttl_s: 0,
            ..StoreConfig::default()
        };
        let naive_id = format!("{run_id}-naive");
        run(
            &db,
            &wasm,
            naive,
            "naive: one upsert per message",
            &naive_id,
        )
        .await;
        concurrent_misses(&db, &run_id).await;
    });
}
