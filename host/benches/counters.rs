//! Write-behind counters against one write per event, counted by Postgres itself
//! (`pg_stat_user_tables` on `counters`).
//!
//! `cargo bench -p wasmbot-host --bench counters` (Postgres from `DATABASE_URL`, default the
//! local server's `test` database): 10 000 activity events for 100 users through the
//! write-behind (then the shutdown flush), and the same events with no room to accumulate
//! (`max_pending = 0`: every amount is written as it arrives, with the same upsert).

mod common;

use std::time::Instant;

use wasmbot::{
    capabilities::counters::{CounterKey, CountersConfig, WriteBehind},
    db::{Database, DatabaseConfig},
};

const EVENTS: i64 = 10_000;
const USERS: i64 = 100;

/// Rows inserted plus updated on `counters`, once Postgres has published its counts.
async fn counter_writes(db: &Database) -> i64 {
    common::table_writes(db, "counters").await
}

async fn run(db: &Database, label: &str, config: CountersConfig, run_id: &str) {
    let counters = WriteBehind::new(db.clone(), &config, None);
    let before = counter_writes(db).await;
    let started = Instant::now();
    for event in 0..EVENTS {
        let key = CounterKey {
            plugin: "bench".into(),
            counter: "tokens".into(),
            subject: format!("{run_id}-u{}", event % USERS),
        };
        counters.record(key, event % 7 + 1, "t").await;
    }
    let recorded = started.elapsed();
    counters.flush_all().await;
    let elapsed = started.elapsed();
    let writes = counter_writes(db).await - before;
    println!(
        "| {label} | {EVENTS} | {USERS} | {writes} | {:.0} | {:.1} ms | {:.1} ms |",
        EVENTS as f64 / elapsed.as_secs_f64(),
        recorded.as_secs_f64() * 1e3,
        (elapsed - recorded).as_secs_f64() * 1e3,
    );
}

fn main() {
    let url = common::database_url();
    let runtime = common::runtime();
    runtime.block_on(async {
        let db = Database::connect(&DatabaseConfig {
            url,
            min_connections: 1,
            idle_timeout_ms: 3_600_000,
            ..DatabaseConfig::default()
        })
        .expect("database");
        db.migrate().await.expect("migrations");
        let run_id = format!("bench-{}", std::process::id());
        println!(
            "| path | events | users | database writes | events/s | recording | shutdown flush |"
        );
        println!("|---|---|---|---|---|---|---|");
        let quiet = CountersConfig {
            quiet_ms: 3_600_000,
            ..CountersConfig::default()
        };
        run(&db, "write-behind (flushed once)", quiet, &run_id).await;
        let every = CountersConfig {
            max_pending: 0,
            ..CountersConfig::default()
        };
        run(&db, "one write per event", every, &format!("{run_id}-each")).await;
    });
}
