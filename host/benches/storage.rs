//! A plugin's storage call against a direct sqlx call and the database's own client, on
//! Postgres and SQLite.
//!
//! `cargo bench -p wasmbot-host --bench storage` (Postgres from `DATABASE_URL`, default the
//! local server's `test` database): the `storage-probe` plugin reads one row of its own
//! table 500 times per event, 20 events, timing each call inside the plugin; beside it, the
//! same read through the host's storage natively (check, rewrite, limits: what the plugin
//! call includes but the wasm boundary), the printed statement run directly on the pool
//! with sqlx (a prepared statement, no check), and on Postgres the same statement through
//! `pgbench -M prepared` (the physical limit: libpq, one client, loopback).

mod common;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use wasmbot::{
    bindings::types::Action,
    capabilities::{
        config_store::{ConfigStore, StoreConfig},
        storage::{Statement, Storage, Value, sql},
    },
    config::Config,
    db::{Backend, Database, DatabaseConfig},
    platforms::console,
    runtime::Registry,
};
use wasmbot_sdk::build::PluginBuild;

const READS: usize = 500;
const ROUNDS: usize = 20;
const AUTHOR: &str = "bench-author";

async fn measure(url: &str, label: &str, probe: &Path) {
    let db = Database::connect(&DatabaseConfig {
        url: url.to_owned(),
        min_connections: 2,
        idle_timeout_ms: 3_600_000,
        ..DatabaseConfig::default()
    })
    .expect("database");
    db.migrate().await.expect("migrations");
    let store = Arc::new(ConfigStore::new(db.clone(), StoreConfig::default()));
    let mut config = Config::default();
    config.runtime.cache_dir = PathBuf::new();
    // A round of reads is one event: its budget must not cut the measurement short.
    config.plugin_defaults.cpu_ms = 60_000;
    let backends = config.backends(store).unwrap();
    let storage: Arc<Storage> = backends.storage.clone().expect("storage");
    let runtime = config.build_runtime(backends).expect("runtime");
    let registry = Registry::new(runtime);
    registry
        .load_file(probe)
        .await
        .expect("storage-probe loads");
    let dispatcher = config.dispatcher(registry);
    let say = |line: String| {
        let dispatcher = &dispatcher;
        async move {
            let mut event = console::event_for_line(dispatcher, &line).expect("event");
            event.author.id = AUTHOR.to_owned();
            let outcomes = dispatcher.dispatch(event).await;
            let actions = outcomes[0].result.as_ref().expect("the probe answers");
            let Action::Reply(reply) = &actions[0] else {
                panic!("a reply")
            };
            reply.text.clone()
        }
    };
    say("!add the note".to_owned()).await;

    let plugin_round = || async {
        let answer = say(format!("!bench {READS}")).await;
        answer
            .split(' ')
            .map(|n| n.parse::<u64>().expect(&answer))
            .collect::<Vec<_>>()
    };
    plugin_round().await; // Warm caches and connections.
    let mut plugin = Vec::new();
    for _ in 0..ROUNDS {
        plugin.extend(plugin_round().await);
    }

    let statement = || Statement {
        sql: "SELECT body FROM notes WHERE author = $1 LIMIT 1".to_owned(),
        params: vec![Value::Text(AUTHOR.to_owned())],
    };
    let limits = config.plugin_defaults.capabilities.storage.limits();
    let mut native = Vec::new();
    for _ in 0..READS * ROUNDS {
        let started = Instant::now();
        std::hint::black_box(
            storage
                .query("storage-probe", &limits, statement())
                .await
                .expect("read"),
        );
        native.push(started.elapsed().as_nanos() as u64);
    }

    let printed = sql::check_data("storage-probe", &statement().sql, db.backend(), &[false])
        .expect("checked")
        .sql;
    let mut direct = Vec::new();
    for _ in 0..READS * ROUNDS {
        let started = Instant::now();
        std::hint::black_box(
            sqlx::query(sqlx::AssertSqlSafe(printed.clone()))
                .bind(AUTHOR)
                .fetch_all(db.pool())
                .await
                .expect("read"),
        );
        direct.push(started.elapsed().as_nanos() as u64);
    }

    let physical = match db.backend() {
        Backend::Postgres => pgbench(url, &printed.replace("$1", &format!("'{AUTHOR}'"))),
        Backend::Sqlite => None,
    };
    let (direct_p50, _) = common::percentiles(direct.clone());
    let to = |p50: f64| match physical {
        Some((pgbench, _)) => format!("{:.2}×", p50 / pgbench),
        None => "—".to_owned(),
    };
    for (path, nanos) in [
        ("storage.query from the plugin", plugin),
        ("the host's storage, native", native),
        ("direct sqlx, prepared", direct),
    ] {
        let (p50, p99) = common::percentiles(nanos);
        println!(
            "| {label} | {path} | {p50:.1} µs | {p99:.1} µs | {:.2}× | {} |",
            p50 / direct_p50,
            to(p50)
        );
    }
    if let Some((p50, p99)) = physical {
        println!(
            "| {label} | pgbench -M prepared | {p50:.1} µs | {p99:.1} µs | {:.2}× | 1× |",
            p50 / direct_p50
        );
    }
}

/// `pgbench -M prepared`'s p50 and p99 of `statement`, one client for 5 s, in µs; none when
/// it cannot run.
fn pgbench(url: &str, statement: &str) -> Option<(f64, f64)> {
    let folder = tempfile::tempdir().ok()?;
    let script = folder.path().join("read.sql");
    std::fs::write(&script, format!("{statement};\n")).ok()?;
    let prefix = folder.path().join("log");
    let status = std::process::Command::new("pgbench")
        .args(["-M", "prepared", "-n", "-c", "1", "-T", "5", "-l"])
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg("-f")
        .arg(&script)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    // One line per transaction: client, number, latency in µs, script, epoch, µs.
    let mut nanos = Vec::new();
    for entry in std::fs::read_dir(folder.path()).ok()?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("log") {
            let text = std::fs::read_to_string(entry.path()).ok()?;
            nanos.extend(text.lines().filter_map(|line| {
                line.split(' ')
                    .nth(2)?
                    .parse::<u64>()
                    .ok()
                    .map(|us| us * 1000)
            }));
        }
    }
    (!nanos.is_empty()).then(|| common::percentiles(nanos))
}

fn main() {
    let url = common::database_url();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let probe = PluginBuild::new(root)
        .profile("plugin")
        .package("storage-probe")
        .run()
        .expect("the plugin builds")
        .remove(0);
    let folder = tempfile::tempdir().expect("a folder");
    let sqlite = format!("sqlite://{}/bench.db?mode=rwc", folder.path().display());
    common::on_worker(async move {
        println!("| database | path | p50 | p99 | / direct sqlx | / pgbench |");
        println!("|---|---|---|---|---|---|");
        measure(&url, "postgres", &probe).await;
        measure(&sqlite, "sqlite", &probe).await;
    });
}
