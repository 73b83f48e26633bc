//! The config store against real SQLite and Postgres: cached reads, single-flight,
//! invalidation, bounded memory, refusals, and a database that stops answering.

use std::sync::{Arc, atomic::Ordering};

use serde_json::{Value, json};
use wasmbot::{
    capabilities::config_store::{
        ConfigStore, Document, Scope, ScopeKind, StoreConfig, StoreError,
    },
    db::{Database, DatabaseConfig, RetryPolicy},
};

/// Transient failures retried as in production, without the production waits.
const QUICK_RETRY: RetryPolicy = RetryPolicy {
    tries: 3,
    first_delay_ms: 10,
};
use wasmbot_tests::{postgres_url, redis_url, unique};

/// How long a test's pool waits for a connection: the whole suite shares one Postgres and
/// two cores, and a short wait made a test fail on the machine's load, not on its subject.
const ACQUIRE_MS: u64 = 10_000;

async fn database(url: &str, max_connections: u32) -> Database {
    let db = Database::connect(&DatabaseConfig {
        url: url.to_owned(),
        max_connections,
        min_connections: 0,
        acquire_timeout_ms: ACQUIRE_MS,
        retry: QUICK_RETRY,
        ..DatabaseConfig::default()
    })
    .unwrap();
    db.migrate().await.unwrap();
    db
}

/// One SQLite file per test, and the shared Postgres: every test runs on both.
/// The SQLite file's folder lives as long as its entry.
async fn backends() -> Vec<(Option<tempfile::TempDir>, Database)> {
    let sqlite_dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}/test.db?mode=rwc", sqlite_dir.path().display());
    let sqlite = database(&sqlite_url, 4).await;
    let postgres = database(&postgres_url(), 4).await;
    vec![(Some(sqlite_dir), sqlite), (None, postgres)]
}

fn defaults() -> Document {
    let Value::Object(defaults) = json!({"prefix": "!", "staff": [], "limit": 5, "ratio": 0.5})
    else {
        unreachable!()
    };
    defaults
}

fn store(db: Database, config: StoreConfig, plugin: &str) -> ConfigStore {
    let store = ConfigStore::new(db, config);
    store.register_defaults(plugin, ScopeKind::Guild, defaults());
    store
}

#[tokio::test]
async fn reads_hit_the_cache_and_writes_invalidate_it() {
    for (_dir, db) in backends().await {
        let plugin = unique("settings");
        let store = store(db, StoreConfig::default(), &plugin);
        let guild = Scope::Guild("g1".into());

        assert_eq!(
            store.get(&plugin, &guild, "prefix").await.unwrap(),
            json!("!")
        );
        assert_eq!(
            store.stats().misses.load(Ordering::Relaxed),
            1,
            "first read creates the row"
        );
        for _ in 0..10 {
            assert_eq!(
                store.get(&plugin, &guild, "prefix").await.unwrap(),
                json!("!")
            );
        }
        assert_eq!(
            store.stats().misses.load(Ordering::Relaxed),
            1,
            "later reads are hits"
        );
        assert_eq!(store.stats().hits.load(Ordering::Relaxed), 10);

        store
            .set(&plugin, &guild, "prefix", json!("?"))
            .await
            .unwrap();
        assert_eq!(
            store.get(&plugin, &guild, "prefix").await.unwrap(),
            json!("?")
        );
        assert_eq!(
            store.stats().misses.load(Ordering::Relaxed),
            2,
            "a write drops the entry"
        );

        store.delete(&plugin, &guild, "prefix").await.unwrap();
        assert_eq!(
            store.get(&plugin, &guild, "prefix").await.unwrap(),
            json!("!")
        );
        let document = store.document(&plugin, &guild).await;
        assert_eq!(document.get("limit"), Some(&json!(5)));

        store.invalidate(&plugin, &guild).await.unwrap();
        store.get(&plugin, &guild, "prefix").await.unwrap();
        assert_eq!(store.stats().misses.load(Ordering::Relaxed), 4);
    }
}

#[tokio::test]
async fn a_thousand_concurrent_misses_make_one_query() {
    for (_dir, db) in backends().await {
        let plugin = unique("crowd");
        let store = Arc::new(store(db, StoreConfig::default(), &plugin));
        let readers: Vec<_> = (0..1000)
            .map(|_| {
                let (store, plugin) = (Arc::clone(&store), plugin.clone());
                tokio::spawn(async move {
                    store
                        .get(&plugin, &Scope::Guild("busy".into()), "prefix")
                        .await
                })
            })
            .collect();
        for reader in readers {
            assert_eq!(reader.await.unwrap().unwrap(), json!("!"));
        }
        assert_eq!(store.stats().misses.load(Ordering::Relaxed), 1);
        assert_eq!(store.stats().hits.load(Ordering::Relaxed), 999);
    }
}

/// Reads racing writes: the writer's next read (and any read begun after the write) sees
/// the new value, however many loads of the document are in flight. (The interleaving the
/// store's generation check guards against, a load that read before the write finishing
/// after it, is not forced here: it shows up only now and then.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_a_write_never_sees_an_older_value() {
    for (_dir, db) in backends().await {
        let plugin = unique("ryw");
        let store = Arc::new(store(db, StoreConfig::default(), &plugin));
        let guild = Scope::Guild("g".into());
        for round in 0..40 {
            let readers: Vec<_> = (0..8)
                .map(|_| {
                    let (store, plugin, guild) =
                        (Arc::clone(&store), plugin.clone(), guild.clone());
                    tokio::spawn(async move { store.get(&plugin, &guild, "limit").await })
                })
                .collect();
            store
                .set(&plugin, &guild, "limit", json!(round))
                .await
                .unwrap();
            assert_eq!(
                store.get(&plugin, &guild, "limit").await.unwrap(),
                json!(round)
            );
            for reader in readers {
                reader.await.unwrap().unwrap();
            }
        }
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_written() {
    for (_dir, db) in backends().await {
        let plugin = unique("strict");
        let config = StoreConfig {
            max_value_bytes: 100,
            ..StoreConfig::default()
        };
        let store = store(db, config, &plugin);
        let guild = Scope::Guild("g".into());
        let set = |key: &'static str, value: Value| store.set(&plugin, &guild, key, value);

        assert!(matches!(
            set("colour", json!("red")).await,
            Err(StoreError::UnknownKey { .. })
        ));
        assert_eq!(
            set("limit", json!("five")).await,
            Err(StoreError::WrongType {
                key: "limit".into(),
                expected: "an integer",
                found: "a string"
            })
        );
        assert!(matches!(
            set("limit", json!(2.5)).await,
            Err(StoreError::WrongType { .. })
        ));
        assert!(
            set("ratio", json!(1)).await.is_ok(),
            "an integer is a number"
        );
        assert!(matches!(
            set("prefix", json!("x".repeat(200))).await,
            Err(StoreError::TooLarge { .. })
        ));
        // Another plugin's namespace: its keys are unknown to this one.
        let other = unique("other");
        assert!(matches!(
            store.set(&other, &guild, "prefix", json!("?")).await,
            Err(StoreError::UnknownKey { .. })
        ));
        assert!(matches!(
            store.get(&plugin, &Scope::User("u".into()), "prefix").await,
            Err(StoreError::UnknownKey { .. })
        ));
        let document = store.document(&plugin, &guild).await;
        assert_eq!(document.get("prefix"), Some(&json!("!")));
        assert_eq!(document.get("limit"), Some(&json!(5)));
    }
}

#[tokio::test]
async fn the_cache_stays_within_its_entries_and_bytes() {
    for (_dir, db) in backends().await {
        let plugin = unique("many");
        let config = StoreConfig {
            max_entries: 20,
            max_bytes: 4_000,
            ..StoreConfig::default()
        };
        let store = store(db, config, &plugin);
        for guild in 0..200 {
            let scope = Scope::Guild(format!("g{guild}"));
            store.get(&plugin, &scope, "prefix").await.unwrap();
        }
        let (entries, bytes) = store.cache_size().await;
        assert!(entries <= 20, "{entries} entries");
        assert!(bytes <= 4_000, "{bytes} bytes");
        assert!(store.stats().evictions.load(Ordering::Relaxed) >= 180);
    }
}

#[tokio::test]
async fn user_documents_have_a_capacity_of_their_own() {
    for (_dir, db) in backends().await {
        let plugin = unique("profiles");
        let config = StoreConfig {
            max_entries: 50,
            user_max_entries: 5,
            ..StoreConfig::default()
        };
        let store = store(db, config, &plugin);
        store.register_defaults(&plugin, ScopeKind::User, defaults());
        let guilds: Vec<_> = (0..5).map(|g| Scope::Guild(format!("g{g}"))).collect();
        for guild in &guilds {
            store.get(&plugin, guild, "prefix").await.unwrap();
        }
        // A flood of users stays within their tier...
        for user in 0..100 {
            let scope = Scope::User(format!("u{user}"));
            store.get(&plugin, &scope, "prefix").await.unwrap();
        }
        let (entries, _) = store.cache_size().await;
        assert!(entries <= 5 + 5, "{entries} entries");
        // ...and pushed no guild out: reading them again loads nothing.
        let misses = store.stats().misses.load(Ordering::Relaxed);
        for guild in &guilds {
            store.get(&plugin, guild, "prefix").await.unwrap();
        }
        assert_eq!(store.stats().misses.load(Ordering::Relaxed), misses);
    }
}

#[tokio::test]
async fn an_unreachable_database_falls_back_to_defaults_and_refuses_writes() {
    // Nothing listens on port 1: every connection attempt fails at once.
    let db = Database::connect(&DatabaseConfig {
        url: "postgres://postgres@127.0.0.1:1/none".into(),
        min_connections: 0,
        acquire_timeout_ms: 500,
        retry: QUICK_RETRY,
        ..DatabaseConfig::default()
    })
    .unwrap();
    let store = store(db, StoreConfig::default(), "offline");
    let guild = Scope::Guild("g".into());
    assert_eq!(
        store.get("offline", &guild, "prefix").await.unwrap(),
        json!("!")
    );
    assert_eq!(store.stats().default_reads.load(Ordering::Relaxed), 1);
    let refused = store.set("offline", &guild, "prefix", json!("?")).await;
    let Err(StoreError::Unavailable(reason)) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        // sqlx reports a server it cannot reach as a pool timeout: transient, so retried.
        reason.contains("config.write: pool-timeout database error after 3 attempt(s)"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_database_that_stops_answering_serves_the_last_known_value() {
    for (_dir, db) in backends().await {
        let plugin = unique("stale");
        // Entries expire at once, so every read goes to the database.
        let config = StoreConfig {
            guild_ttl_s: 0,
            ..StoreConfig::default()
        };
        let pool = db.pool().clone();
        let store = store(db, config, &plugin);
        let guild = Scope::Guild("g".into());
        store
            .set(&plugin, &guild, "prefix", json!("$"))
            .await
            .unwrap();
        assert_eq!(
            store.get(&plugin, &guild, "prefix").await.unwrap(),
            json!("$")
        );

        // Hold every connection of the pool: reads time out acquiring one.
        let mut held = Vec::new();
        while held.len() < 4 {
            held.push(pool.acquire().await.unwrap());
        }
        assert_eq!(
            store.get(&plugin, &guild, "prefix").await.unwrap(),
            json!("$")
        );
        assert!(store.stats().stale_reads.load(Ordering::Relaxed) >= 1);
        drop(held);
    }
}

#[tokio::test]
async fn the_guild_prefix_is_read_through_the_store_with_no_query_per_message() {
    for (_dir, db) in backends().await {
        let store = Arc::new(ConfigStore::new(db, StoreConfig::default()));
        let config = wasmbot_tests::config(std::path::Path::new(""));
        let plugins = [wasmbot_tests::plugin("ping")];
        let host = wasmbot_sdk::testing::TestHost::with_store(config, Arc::clone(&store), &plugins)
            .await
            .unwrap();
        let id = unique("guild");
        let guild = Scope::Guild(id.clone());

        assert_eq!(host.say_in(&id, "!ping").await.len(), 1);
        let misses = store.stats().misses.load(Ordering::Relaxed);
        for _ in 0..20 {
            assert_eq!(host.say_in(&id, "!ping").await.len(), 1);
        }
        assert_eq!(
            store.stats().misses.load(Ordering::Relaxed),
            misses,
            "steady state: cache hits"
        );

        store
            .set("wasmbot", &guild, "prefix", json!("?"))
            .await
            .unwrap();
        assert!(
            host.say_in(&id, "!ping").await.is_empty(),
            "the old prefix stops working at once"
        );
        assert!(host.say_in(&id, "?ping").await[0].starts_with("pong ("));
        let other = unique("other");
        assert_eq!(
            host.say_in(&other, "!ping").await.len(),
            1,
            "other guilds keep theirs"
        );
    }
}

/// Reads until `expected` comes back; a bound so a lost invalidation fails the test instead
/// of hanging it (not a speed bar).
async fn eventually(store: &ConfigStore, plugin: &str, scope: &Scope, expected: Value) {
    for _ in 0..500 {
        if store.get(plugin, scope, "prefix").await.unwrap() == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{plugin}: never read {expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_host_invalidates_every_host() {
    let plugin = unique("shared");
    let host = || async {
        let db = database(&postgres_url(), 4).await;
        store(db, StoreConfig::default(), &plugin)
            .with_redis(&redis_url())
            .unwrap()
    };
    let (a, b) = (host().await, host().await);
    let guild = Scope::Guild("g".into());
    assert_eq!(b.get(&plugin, &guild, "prefix").await.unwrap(), json!("!"));
    assert_eq!(a.get(&plugin, &guild, "prefix").await.unwrap(), json!("!"));
    assert_eq!(
        a.stats().l2_hits.load(Ordering::Relaxed),
        1,
        "a found b's copy in Redis"
    );
    assert_eq!(a.stats().db_reads.load(Ordering::Relaxed), 0);

    // Invalidations sent before b subscribed would not reach it.
    tokio::time::timeout(std::time::Duration::from_secs(30), b.listening())
        .await
        .expect("b subscribes to invalidations");
    a.set(&plugin, &guild, "prefix", json!("?")).await.unwrap();
    eventually(&b, &plugin, &guild, json!("?")).await;

    a.invalidate(&plugin, &guild).await.unwrap();
    assert_eq!(a.redis_failures() + b.redis_failures(), 0);
}

#[tokio::test]
async fn an_unreachable_redis_is_skipped_and_counted() {
    let plugin = unique("noredis");
    let db = database(&postgres_url(), 4).await;
    let store = store(db, StoreConfig::default(), &plugin)
        .with_redis("redis://127.0.0.1:1")
        .unwrap();
    let guild = Scope::Guild("g".into());
    assert_eq!(
        store.get(&plugin, &guild, "prefix").await.unwrap(),
        json!("!")
    );
    store
        .set(&plugin, &guild, "prefix", json!("?"))
        .await
        .unwrap();
    assert_eq!(
        store.get(&plugin, &guild, "prefix").await.unwrap(),
        json!("?")
    );
    assert!(store.redis_failures() >= 1);
    assert_eq!(store.stats().db_reads.load(Ordering::Relaxed), 2);
}

/// A private Redis server this test can stop and start (the machine's `redis-server`).
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs");
        Self { port, child }
    }

    /// A server on a port nobody uses, once it accepts connections.
    async fn on_a_free_port() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = Self::start(port);
        redis.ready().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn ready(&self) {
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis that answers but refuses the invalidation subscription (a user without channel
/// rights, as Redis 7's ACLs give by default): not an outage. The link stays up for the
/// other calls, and the refusal is said once, not taken for an outage and its recovery in
/// turns.
#[tokio::test]
async fn a_refused_subscription_is_said_once_and_is_not_an_outage() {
    // The store's tasks run on this thread: they log here.
    let (logs, _guard) = wasmbot_tests::Logs::capture();
    let redis = PrivateRedis::on_a_free_port().await;
    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("resetchannels")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let plugin = unique("nochannel");
    let db = database(&postgres_url(), 4).await;
    let store = store(db, StoreConfig::default(), &plugin)
        .with_redis(&redis.url())
        .unwrap();
    let guild = Scope::Guild("g1".into());
    // Long enough for a link taken down by each refusal to have flapped many times.
    for _ in 0..20 {
        assert_eq!(
            store.get(&plugin, &guild, "prefix").await.unwrap(),
            json!("!")
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let link = store.redis().unwrap();
    assert!(link.is_up());
    assert_eq!(link.failures(), 0, "{}", logs.text());
    let refusals = logs.lines_with(&["WARN", "subscribing to invalidations"]);
    assert_eq!(refusals.len(), 1, "{}", logs.text());
    assert!(
        refusals[0].to_lowercase().contains("noperm"),
        "{refusals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_mid_run() {
    let redis = PrivateRedis::on_a_free_port().await;
    let port = redis.port;
    let plugin = unique("restart");
    let db = database(&postgres_url(), 4).await;
    let store = store(db, StoreConfig::default(), &plugin)
        .with_redis(&redis.url())
        .unwrap();
    let guild = Scope::Guild("g".into());
    assert_eq!(
        store.get(&plugin, &guild, "prefix").await.unwrap(),
        json!("!")
    );
    assert_eq!(store.redis_failures(), 0);

    drop(redis);
    store
        .set(&plugin, &guild, "prefix", json!("?"))
        .await
        .unwrap();
    assert_eq!(
        store.get(&plugin, &guild, "prefix").await.unwrap(),
        json!("?")
    );
    let failures = store.redis_failures();
    assert!(failures >= 1, "the outage is counted");

    let redis = PrivateRedis::start(port);
    redis.ready().await;
    tokio::time::timeout(std::time::Duration::from_secs(30), store.listening())
        .await
        .expect("the listener subscribes again");
    store
        .set(&plugin, &guild, "prefix", json!("%"))
        .await
        .unwrap();
    // The first calls after the restart may still meet the old connection; reads stay right.
    for _ in 0..3 {
        store.invalidate(&plugin, &guild).await.unwrap();
        assert_eq!(
            store.get(&plugin, &guild, "prefix").await.unwrap(),
            json!("%")
        );
    }
    // Redis serves again: another host finds the document there, not in the database.
    let other = {
        let db = database(&postgres_url(), 4).await;
        self::store(db, StoreConfig::default(), &plugin)
            .with_redis(&redis.url())
            .unwrap()
    };
    assert_eq!(
        other.get(&plugin, &guild, "prefix").await.unwrap(),
        json!("%")
    );
    assert_eq!(other.stats().l2_hits.load(Ordering::Relaxed), 1);
    assert_eq!(other.stats().db_reads.load(Ordering::Relaxed), 0);
}

/// Waits (bounded) until `condition` holds; panics with `what` if it never does.
async fn until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..1_500 {
        if condition() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("never: {what}");
}

/// Redis cut for a few seconds under traffic: the in-process cache keeps answering (no
/// database query), Redis calls fail at once instead of each trying to connect, and when
/// the subscription is made again the cache is emptied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_the_cache_and_fails_fast() {
    use wasmbot::capabilities::rate_limit::{OnRedisError, Rate, RateLimiter};
    let proxy = wasmbot_tests::proxy::Proxy::to(&redis_url()).await;
    let plugin = unique("outage");
    let db = database(&postgres_url(), 4).await;
    let store = store(db, StoreConfig::default(), &plugin)
        .with_redis(&proxy.url(&redis_url()))
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), store.listening())
        .await
        .expect("the listener subscribes");
    let link = Arc::clone(store.redis().unwrap());
    let limiter = RateLimiter::new(1_000, Some(Arc::clone(&link)), OnRedisError::Allow);
    let rate = Rate::new(1_000, std::time::Duration::from_secs(1)).unwrap();
    let guilds: Vec<Scope> = (0..20).map(|i| Scope::Guild(format!("g{i}"))).collect();
    for guild in &guilds {
        assert_eq!(
            store.get(&plugin, guild, "prefix").await.unwrap(),
            json!("!")
        );
    }
    assert!(limiter.check(&plugin, rate).await.unwrap().allowed());
    let stat = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    assert_eq!(stat(&store.stats().misses), 20);

    proxy.cut();
    // The lost subscription tells the link, before any call does.
    until("the link knows Redis is gone", || !link.is_up()).await;
    let connections = proxy.connections();
    // Other tests' invalidations, received before the cut, may have marked a document of
    // the same stripe as old: one pass reloads those, then the outage is measured.
    for guild in &guilds {
        store.get(&plugin, guild, "prefix").await.unwrap();
    }
    let (db_reads, misses) = (stat(&store.stats().db_reads), stat(&store.stats().misses));
    // Long enough that the old listener would have emptied the cache several times.
    let rounds = 150;
    for _ in 0..rounds {
        for guild in &guilds {
            assert_eq!(
                store.get(&plugin, guild, "prefix").await.unwrap(),
                json!("!")
            );
        }
        assert!(limiter.check(&plugin, rate).await.unwrap().allowed());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let attempts = proxy.connections() - connections;
    let during = (
        stat(&store.stats().db_reads) - db_reads,
        stat(&store.stats().misses) - misses,
    );
    println!(
        "outage: {attempts} connection attempts for {rounds} rate-limit checks, {during:?} database reads and misses for {} reads",
        rounds * 20
    );
    assert_eq!(during, (0, 0), "the cache kept answering: no database read");
    // A probe now and then (backoff), not one connection per call.
    assert!(
        attempts <= 15,
        "{attempts} connection attempts for {rounds} checks"
    );

    proxy.restore();
    tokio::time::timeout(std::time::Duration::from_secs(30), store.listening())
        .await
        .expect("the link comes back by itself and the listener subscribes again");
    assert!(link.is_up());
    // Invalidations sent meanwhile were lost: the cache was emptied, once.
    let misses = stat(&store.stats().misses);
    for guild in &guilds {
        assert_eq!(
            store.get(&plugin, guild, "prefix").await.unwrap(),
            json!("!")
        );
    }
    assert_eq!(stat(&store.stats().misses) - misses, 20, "emptied once");
    for guild in &guilds {
        store.get(&plugin, guild, "prefix").await.unwrap();
    }
    assert_eq!(stat(&store.stats().misses) - misses, 20, "and only once");
    assert_eq!(
        stat(&store.stats().db_reads),
        db_reads,
        "refilled from Redis"
    );
}

/// A user's profile as a change made outside the bot leaves it.
async fn change_outside(plugin: &str, user: &str, name: &str) {
    let db = database(&postgres_url(), 1).await;
    let document = json!({ "name": name }).to_string();
    let changed = sqlx::query(
        "UPDATE config_entries SET document = $1, version = version + 1 \
         WHERE plugin = $2 AND scope = 'user' AND scope_id = $3",
    )
    .bind(document)
    .bind(plugin)
    .bind(user)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(changed.rows_affected(), 1);
}

/// Reads `name` until it is `expected` (bounded: it panics rather than hang).
async fn eventually_named(store: &ConfigStore, plugin: &str, scope: &Scope, expected: &str) {
    for _ in 0..500 {
        if store.get(plugin, scope, "name").await.unwrap() == json!(expected) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{plugin}: never read {expected}");
}

mod admin {
    use axum::{
        body::Body,
        http::{Request, StatusCode},
    };
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use wasmbot::http::admin_router;

    use super::*;

    async fn call(
        router: &axum::Router,
        token: Option<&str>,
        path: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut request = Request::post(path).header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn the_update_user_hook_invalidates_the_users_settings() {
        let db = database(&postgres_url(), 4).await;
        let plugin = unique("profile");
        let store = Arc::new(ConfigStore::new(db, StoreConfig::default()));
        let Value::Object(defaults) = json!({"name": ""}) else {
            unreachable!()
        };
        store.register_defaults(&plugin, ScopeKind::User, defaults);
        let user = Scope::User("u42".into());
        store.get(&plugin, &user, "name").await.unwrap();
        let misses = store.stats().misses.load(Ordering::Relaxed);

        let router = admin_router(Arc::clone(&store), "s3cret");
        let hook = r#"{"userId": "u42", "changes": [{"field": "name", "value": "Ada"}]}"#;
        let (status, body) = call(&router, Some("s3cret"), "/update-user", hook).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["invalidated"], json!(1));
        store.get(&plugin, &user, "name").await.unwrap();
        assert_eq!(
            store.stats().misses.load(Ordering::Relaxed),
            misses + 1,
            "read again from the database"
        );
    }

    #[tokio::test]
    async fn unauthenticated_or_malformed_calls_are_refused() {
        let db = database(&postgres_url(), 4).await;
        let store = Arc::new(ConfigStore::new(db, StoreConfig::default()));
        let router = admin_router(Arc::clone(&store), "s3cret");
        let hook = r#"{"userId": "u1"}"#;
        for token in [None, Some("wrong"), Some("")] {
            let (status, body) = call(&router, token, "/update-user", hook).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
            assert_eq!(body["error"], json!("missing or wrong bearer token"));
        }
        let (status, body) = call(&router, Some("s3cret"), "/update-user", "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].as_str().unwrap().contains("JSON"), "{body}");
        let (status, _) = call(
            &router,
            Some("s3cret"),
            "/update-user",
            r#"{"userId": " "}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let bad_scope = r#"{"scope": "planet", "id": "x"}"#;
        let (status, body) =
            call(&router, Some("s3cret"), "/v1/config/invalidate", bad_scope).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"].as_str().unwrap().contains("unknown scope"),
            "{body}"
        );

        // No token configured: the admin API stays closed to everyone.
        let closed = admin_router(store, "");
        let (status, _) = call(&closed, Some(""), "/update-user", hook).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    /// Host `a` takes the admin calls, its Redis through a proxy; host `b` is another host
    /// of the bot. Right after Redis comes back, `/update-user` reaches `b`; while Redis is
    /// down it answers 503 (never 200), and what could not be sent (the hook's, a plugin's
    /// write) is sent when Redis is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invalidation_is_never_lost_around_a_redis_outage() {
        let proxy = wasmbot_tests::proxy::Proxy::to(&redis_url()).await;
        let plugin = unique("profile");
        let host = |url: String| {
            let plugin = plugin.clone();
            async move {
                let db = database(&postgres_url(), 4).await;
                let store = ConfigStore::new(db, StoreConfig::default());
                let Value::Object(defaults) = json!({"name": ""}) else {
                    unreachable!()
                };
                store.register_defaults(&plugin, ScopeKind::User, defaults);
                let store = store.with_redis(&url).unwrap();
                tokio::time::timeout(std::time::Duration::from_secs(30), store.listening())
                    .await
                    .expect("subscribed");
                Arc::new(store)
            }
        };
        let a = host(proxy.url(&redis_url())).await;
        let b = host(redis_url()).await;
        let user = Scope::User("u42".into());
        assert_eq!(a.get(&plugin, &user, "name").await.unwrap(), json!(""));
        assert_eq!(b.get(&plugin, &user, "name").await.unwrap(), json!(""));
        let router = admin_router(Arc::clone(&a), "s3cret");
        let hook = r#"{"userId": "u42"}"#;

        // Redis goes away and comes back while `a` is idle; then the user changes.
        proxy.cut();
        proxy.restore();
        change_outside(&plugin, "u42", "Ada").await;
        let (status, body) = call(&router, Some("s3cret"), "/update-user", hook).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["invalidated"], json!(1));
        eventually_named(&b, &plugin, &user, "Ada").await;

        // Redis is down: the hook is refused with the reason.
        proxy.cut();
        let link = Arc::clone(a.redis().unwrap());
        until("the link knows Redis is gone", || !link.is_up()).await;
        change_outside(&plugin, "u42", "Grace").await;
        let (status, body) = call(&router, Some("s3cret"), "/update-user", hook).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let reason = body["error"].as_str().unwrap();
        assert!(reason.contains("Redis"), "{reason}");
        // A plugin's write meanwhile is done; telling the other hosts waits for Redis.
        a.set(&plugin, &user, "name", json!("Linus")).await.unwrap();
        assert_eq!(a.get(&plugin, &user, "name").await.unwrap(), json!("Linus"));
        assert_eq!(a.pending_invalidations(), 1, "one key, kept once");
        assert_eq!(b.get(&plugin, &user, "name").await.unwrap(), json!("Ada"));

        proxy.restore();
        eventually_named(&b, &plugin, &user, "Linus").await;
        until("nothing left to send", || a.pending_invalidations() == 0).await;
    }
}
