//! What the end-to-end tests share: the plugins, built once per test run, a configuration
//! for tests, and a capture of log lines to assert on.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

pub mod discord_host;
pub mod fake_discord;
pub mod fake_openai;
pub mod fake_whatsapp;
pub mod oci_registry;
pub mod proxy;
pub mod whatsapp_host;

use wasmbot::config::Config;
use wasmbot_sdk::build::PluginBuild;

/// First-party and test plugins, as `(package, file stem)`.
const PLUGINS: &[&str] = &[
    "ping",
    "dice",
    "survey",
    "echo",
    "misbehave",
    "ping-v2",
    "unknown-capability",
    "other-world",
    "async-abi",
    "listener",
    "settings",
    "legacy",
    "legacy-0-1-4",
    "config-probe",
    "counter-probe",
    "state-probe",
    "schedule-probe",
    "guild-probe",
    "remind",
    "poll",
    "storage-probe",
    "storage-broken",
    "load-probe",
    "ai-reply",
    "notifier",
    "menu",
    "assistant",
    "user-profile",
    "greeter",
    "greeter-1-1",
    "greeter-2",
];

/// The built `.wasm` of a workspace plugin package; the first call builds them all.
pub fn plugin(package: &str) -> PathBuf {
    static BUILT: OnceLock<Vec<PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let build = PLUGINS
            .iter()
            .fold(PluginBuild::new(workspace()).profile("plugin"), |b, p| {
                b.package(*p)
            });
        match build.run() {
            Ok(files) => files,
            Err(error) => panic!("building the test plugins failed: {error}"),
        }
    });
    let index = PLUGINS
        .iter()
        .position(|p| *p == package)
        .unwrap_or_else(|| panic!("{package} is not in the test plugins list"));
    built[index].clone()
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

/// A configuration for tests: no disk cache, no hot reload, the given plugins folder.
pub fn config(plugins_dir: &Path) -> Config {
    let mut config = Config::default();
    config.runtime.plugins_dir = plugins_dir.to_owned();
    config.runtime.cache_dir = PathBuf::new();
    config.runtime.hot_reload = false;
    config.runtime.max_instances = 32;
    config
}

/// A `[plugins.NAME]` section: only the keys `value` (a JSON object) sets, e.g.
/// `section(json!({"wall_ms": 3000}))`.
pub fn section(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(keys) => keys,
        other => panic!("a plugin section is an object, not {other}"),
    }
}

/// Copies plugins into `dir` under their package names (`ping.wasm`, ...).
pub fn install(dir: &Path, packages: &[&str]) -> Vec<PathBuf> {
    packages
        .iter()
        .map(|package| {
            let to = dir.join(format!("{package}.wasm"));
            if let Err(error) = std::fs::copy(plugin(package), &to) {
                panic!("copying {package} into {}: {error}", dir.display());
            }
            to
        })
        .collect()
}

/// Log lines written on this thread while the guard lives (tests run on a current-thread
/// runtime, so the host's tasks log here too).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Starts capturing this thread's log lines, at debug level and above.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// The captured lines that contain every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The Postgres the tests use: `DATABASE_URL`, or the machine's local server.
pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The Redis the tests use: `REDIS_URL`, or the machine's local server.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A name (of a plugin, a guild) no other test or test run uses, so tests can share one
/// Postgres database.
pub fn unique(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Process ids come back across runs; the clock does not.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{now}-{next}")
}

/// A database of its own on the test Postgres, for figures no other test may disturb
/// (Postgres' statistics are per database); its URL.
pub async fn fresh_postgres(name: &str) -> String {
    use sqlx::ConnectOptions;
    let admin_url = postgres_url();
    let database = unique(name).replace('-', "_");
    let options: sqlx::postgres::PgConnectOptions = match admin_url.parse() {
        Ok(options) => options,
        Err(error) => panic!("DATABASE_URL {admin_url}: {error}"),
    };
    let mut admin = match options.connect().await {
        Ok(connection) => connection,
        Err(error) => panic!("connecting to {admin_url}: {error}"),
    };
    let create = format!("CREATE DATABASE {database}");
    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
    {
        panic!("creating {database}: {error}");
    }
    let options = options.database(&database);
    options.to_url_lossy().to_string()
}

/// Statements on the config store's table in `url`'s database, from Postgres' own
/// statistics: every read of the store is one upsert (an insert the first time, an update
/// after), every write one more. Call it once the host's pool is closed: a backend reports
/// its figures when it ends.
pub async fn config_statements(url: &str) -> i64 {
    use sqlx::{ConnectOptions, Row};
    let options: sqlx::postgres::PgConnectOptions = match url.parse() {
        Ok(options) => options,
        Err(error) => panic!("{url}: {error}"),
    };
    let mut connection = match options.connect().await {
        Ok(connection) => connection,
        Err(error) => panic!("connecting to {url}: {error}"),
    };
    let query = "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0)::bigint \
                 FROM pg_stat_user_tables WHERE relname = 'config_entries'";
    // Ended backends report within moments; read until two readings agree.
    let mut last = -1;
    for _ in 0..50 {
        let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut connection)
            .await;
        let count: i64 = match sqlx::query(query).fetch_one(&mut connection).await {
            Ok(row) => row.get(0),
            Err(error) => panic!("reading statistics: {error}"),
        };
        if count == last && count > 0 {
            return count;
        }
        last = count;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    last
}
