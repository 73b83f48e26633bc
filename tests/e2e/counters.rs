//! Write-behind counters against the real Postgres and SQLite: one write per key per quiet
//! period, a busy key written after the maximum delay, exact totals, thread semantics,
//! shutdown flush, two hosts flushing at once, no work while nothing waits.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use wasmbot::{
    capabilities::counters::{CounterKey, CountersConfig, WriteBehind},
    db::{Database, DatabaseConfig, RetryPolicy},
    redis::Redis,
};
use wasmbot_tests::{Logs, postgres_url, redis_url, unique};

async fn database(url: &str) -> Database {
    let db = Database::connect(&DatabaseConfig {
        url: url.to_owned(),
        max_connections: 4,
        min_connections: 0,
        retry: RetryPolicy {
            tries: 3,
            first_delay_ms: 10,
        },
        ..DatabaseConfig::default()
    })
    .unwrap();
    db.migrate().await.unwrap();
    db
}

/// The shared Postgres and a private SQLite file (its folder lives as long as the entry).
async fn backends() -> Vec<(Option<tempfile::TempDir>, Database)> {
    let folder = tempfile::tempdir().unwrap();
    let sqlite = database(&format!(
        "sqlite://{}/c.db?mode=rwc",
        folder.path().display()
    ))
    .await;
    vec![
        (Some(folder), sqlite),
        (None, database(&postgres_url()).await),
    ]
}

fn key(plugin: &str, subject: &str) -> CounterKey {
    CounterKey {
        plugin: plugin.to_owned(),
        counter: "tokens".to_owned(),
        subject: subject.to_owned(),
    }
}

fn counters(db: Database, quiet_ms: u64) -> Arc<WriteBehind> {
    counters_with(db, quiet_ms, None)
}

fn counters_with(db: Database, quiet_ms: u64, redis: Option<Arc<Redis>>) -> Arc<WriteBehind> {
    let config = CountersConfig {
        quiet_ms,
        ..CountersConfig::default()
    };
    WriteBehind::new(db, &config, redis)
}

/// Waits until nothing is pending (a bound so a stuck flusher fails the test; not a speed
/// bar).
async fn drained(counters: &WriteBehind) {
    for _ in 0..1_000 {
        if counters.pending() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} keys never flushed", counters.pending());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_for_a_hundred_users_make_a_hundred_writes() {
    for (_folder, db) in backends().await {
        let plugin = unique("activity");
        // A burst well inside one quiet period: each user's amounts become one write.
        let counters = counters(db, 1_000);
        let flusher = counters.start();
        for event in 0..10_000_i64 {
            let user = format!("u{}", event % 100);
            counters
                .record(key(&plugin, &user), event % 7 + 1, "t")
                .await;
        }
        drained(&counters).await;
        flusher.stop().await;
        assert!(counters.stats().writes.load(Ordering::Relaxed) <= 100);
        for user in 0..100_i64 {
            let expected: i64 = (0..10_000_i64)
                .filter(|e| e % 100 == user)
                .map(|e| e % 7 + 1)
                .sum();
            let stored = counters
                .stored(&key(&plugin, &format!("u{user}")))
                .await
                .unwrap();
            assert_eq!(stored, Some((expected, "t".to_owned())), "user {user}");
        }
    }
}

#[tokio::test]
async fn a_new_thread_restarts_the_total_and_nothing_waits_past_shutdown() {
    for (_folder, db) in backends().await {
        let plugin = unique("threads");
        // Never quiet long enough: only flush_all writes.
        let counters = counters(db.clone(), 3_600_000);
        let user = key(&plugin, "u1");
        counters.record(user.clone(), 5, "t1").await;
        counters.record(user.clone(), 3, "t1").await;
        assert_eq!(
            counters.stored(&user).await.unwrap(),
            None,
            "nothing written yet"
        );
        assert_eq!(counters.flush_all().await, 1);
        assert_eq!(
            counters.stored(&user).await.unwrap(),
            Some((8, "t1".into()))
        );

        counters.record(user.clone(), 2, "t1").await;
        counters.flush_all().await;
        assert_eq!(
            counters.stored(&user).await.unwrap(),
            Some((10, "t1".into())),
            "same thread grows"
        );

        counters.record(user.clone(), 4, "t2").await;
        counters.flush_all().await;
        assert_eq!(
            counters.stored(&user).await.unwrap(),
            Some((4, "t2".into())),
            "a new thread restarts"
        );

        // A change of thread while amounts wait: the old thread's are written first.
        counters.record(user.clone(), 1, "t2").await;
        counters.record(user.clone(), 6, "t3").await;
        assert_eq!(
            counters.stored(&user).await.unwrap(),
            Some((5, "t2".into()))
        );
        counters.flush_all().await;
        assert_eq!(
            counters.stored(&user).await.unwrap(),
            Some((6, "t3".into()))
        );

        // Reads come from the copy the last write left, not from the database.
        sqlx::query("UPDATE counters SET total = 999 WHERE plugin = $1")
            .bind(&plugin)
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(
            counters.stored(&user).await.unwrap(),
            Some((6, "t3".into()))
        );

        // A zero is ordinary traffic: skipped without a word; a negative amount is a
        // plugin's mistake, worth a debug line.
        let (logs, guard) = Logs::capture();
        counters.record(user.clone(), 0, "t3").await;
        counters.record(user.clone(), -2, "t3").await;
        drop(guard);
        assert_eq!(counters.pending(), 0);
        assert_eq!(counters.stats().skipped.load(Ordering::Relaxed), 2);
        let lines = logs.lines_with(&["counter amount"]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("DEBUG") && lines[0].contains("amount=-2"),
            "{lines:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_flushing_the_same_users_keep_exact_totals() {
    let plugin = unique("shared");
    let redis = || Some(Redis::new(&redis_url()).unwrap());
    let (a, b) = (
        counters_with(database(&postgres_url()).await, 3_600_000, redis()),
        counters_with(database(&postgres_url()).await, 3_600_000, redis()),
    );
    for round in 0..20 {
        for user in 0..10 {
            a.record(key(&plugin, &format!("u{user}")), 1, "t").await;
            b.record(key(&plugin, &format!("u{user}")), 2, "t").await;
        }
        // Both hosts write the same rows at the same time.
        let (written_a, written_b) = tokio::join!(a.flush_all(), b.flush_all());
        assert_eq!((written_a, written_b), (10, 10), "round {round}");
    }
    let db = database(&postgres_url()).await;
    for user in 0..10 {
        let total: i64 =
            sqlx::query_scalar("SELECT total FROM counters WHERE plugin = $1 AND subject = $2")
                .bind(&plugin)
                .bind(format!("u{user}"))
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(total, 60, "user {user}");
    }
    // A third host reads the totals from Redis: the latest version of each, in whatever
    // order the two hosts' copies landed (the database is not asked).
    sqlx::query("UPDATE counters SET total = 999 WHERE plugin = $1")
        .bind(&plugin)
        .execute(db.pool())
        .await
        .unwrap();
    let third = counters_with(db, 3_600_000, redis());
    for user in 0..10 {
        let stored = third
            .stored(&key(&plugin, &format!("u{user}")))
            .await
            .unwrap();
        assert_eq!(stored, Some((60, "t".into())), "user {user}");
    }
}

#[tokio::test]
async fn past_its_key_limit_an_amount_is_written_at_once() {
    let (_folder, db) = backends().await.remove(0);
    let plugin = unique("full");
    let config = CountersConfig {
        quiet_ms: 3_600_000,
        max_pending: 2,
        ..CountersConfig::default()
    };
    let counters = WriteBehind::new(db, &config, None);
    for user in 0..5 {
        counters
            .record(key(&plugin, &format!("u{user}")), 1, "t")
            .await;
    }
    assert_eq!(counters.pending(), 2, "memory stays bounded");
    assert_eq!(counters.stats().writes.load(Ordering::Relaxed), 3);
    counters.record(key(&plugin, "u0"), 1, "t").await;
    counters.flush_all().await;
    let totals: Vec<_> = stored_totals(&counters, &plugin).await;
    assert_eq!(totals, vec![2, 1, 1, 1, 1]);
}

async fn stored_totals(counters: &WriteBehind, plugin: &str) -> Vec<i64> {
    let mut totals = Vec::new();
    for user in 0..5 {
        let stored = counters
            .stored(&key(plugin, &format!("u{user}")))
            .await
            .unwrap();
        totals.push(stored.map_or(0, |(total, _)| total));
    }
    totals
}

#[tokio::test]
async fn an_unreachable_database_keeps_the_amounts_for_the_next_flush() {
    let db = Database::connect(&DatabaseConfig {
        url: "postgres://postgres@127.0.0.1:1/none".into(),
        min_connections: 0,
        acquire_timeout_ms: 100,
        retry: RetryPolicy {
            tries: 2,
            first_delay_ms: 10,
        },
        ..DatabaseConfig::default()
    })
    .unwrap();
    let counters = counters(db, 3_600_000);
    for user in ["u1", "u2", "u3"] {
        counters.record(key("p", user), 3, "t").await;
    }
    assert_eq!(counters.flush_all().await, 0);
    assert_eq!(counters.pending(), 3, "kept");
    // The first key found the database unreachable: the others were kept untried, not
    // each left to wait out the pool's timeouts (and hold up the stop).
    assert_eq!(counters.stats().failed_writes.load(Ordering::Relaxed), 1);
    counters.record(key("p", "u1"), 2, "t").await;
    assert_eq!(counters.pending(), 3);
}

/// Through a plugin: what it counts on every message is written once, on flush, exactly.
#[tokio::test]
async fn a_plugin_counts_every_message_without_a_write_per_message() {
    let host = wasmbot_sdk::testing::TestHost::with_config(
        wasmbot_tests::config(std::path::Path::new("")),
        &[wasmbot_tests::plugin("counter-probe")],
    )
    .await
    .unwrap();
    let guild = unique("g");
    for line in ["hello", "how are you", "fine"] {
        assert!(host.say_in(&guild, line).await.is_empty());
    }
    let counters = host.counters().unwrap();
    assert_eq!(counters.stats().writes.load(Ordering::Relaxed), 0);
    assert_eq!(host.say_in(&guild, "!total").await, vec!["ok:none"]);
    assert_eq!(counters.flush_all().await, 1);
    let channel = wasmbot::platforms::console::CHANNEL;
    assert_eq!(
        host.say_in(&guild, "!total").await,
        vec![format!("ok:20:{channel}")]
    );
    let bad = host.say_in(&guild, "!bad").await;
    assert!(
        bad[0].contains("Invalid(\"the counter name must be"),
        "{bad:?}"
    );
}

/// The total stored in the database itself (not a copy).
async fn total_in(db: &Database, plugin: &str, subject: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT total FROM counters WHERE plugin = $1 AND subject = $2")
        .bind(plugin)
        .bind(subject)
        .fetch_optional(db.pool())
        .await
        .unwrap()
}

/// A key that never goes quiet (an amount every few milliseconds, a quiet period of an
/// hour) is written while still busy, every maximum delay: a crash loses what arrived
/// since the last of those writes, not everything since the start. An orderly stop then
/// writes the rest: the stored total is every amount recorded, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_never_quiet_is_written_after_the_max_delay_while_still_busy() {
    for (_folder, db) in backends().await {
        let plugin = unique("busy");
        let config = CountersConfig {
            quiet_ms: 3_600_000,
            max_delay_ms: 100,
            ..CountersConfig::default()
        };
        let counters = WriteBehind::new(db.clone(), &config, None);
        let flusher = counters.start();
        let user = key(&plugin, "u1");
        let mut recorded = 0_i64;
        let mut busy_writes = Vec::new();
        // A bound on the events, so that a key never written fails the test (not a speed
        // bar: two writes come after about 40 of them).
        for event in 0..3_000_i64 {
            counters.record(user.clone(), event % 3 + 1, "t").await;
            recorded += event % 3 + 1;
            if let Some(total) = total_in(&db, &plugin, "u1").await
                && busy_writes.last() != Some(&total)
            {
                busy_writes.push(total);
                if busy_writes.len() == 2 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            busy_writes.len(),
            2,
            "written twice while busy, each time with what had arrived"
        );
        assert!(
            busy_writes[0] > 0 && busy_writes[0] < busy_writes[1] && busy_writes[1] <= recorded,
            "{busy_writes:?} of {recorded}"
        );
        // An orderly stop: the flusher ends, then what waits is written.
        flusher.stop().await;
        for _ in 0..10 {
            counters.record(user.clone(), 1, "t").await;
            recorded += 1;
        }
        assert_eq!(counters.pending(), 1);
        assert_eq!(counters.flush_all().await, 1);
        assert_eq!(total_in(&db, &plugin, "u1").await, Some(recorded));
    }
}

/// Once everything is written the flusher sleeps until the next amount: an idle bot makes
/// no periodic pass (the tick would be 10 ms here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_pending_the_flusher_does_no_periodic_work() {
    let (_folder, db) = backends().await.remove(0);
    let plugin = unique("idle");
    let counters = counters(db.clone(), 20);
    let flusher = counters.start();
    for round in 1..=2 {
        counters.record(key(&plugin, "u1"), 2, "t").await;
        drained(&counters).await;
        let scans = counters.stats().scans.load(Ordering::Relaxed);
        // Time for a few dozen ticks, had there been any.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            counters.stats().scans.load(Ordering::Relaxed),
            scans,
            "round {round}: no pass while nothing waits"
        );
        assert_eq!(total_in(&db, &plugin, "u1").await, Some(2 * round));
    }
    flusher.stop().await;
}
