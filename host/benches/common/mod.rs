//! What the benchmarks share: where their Postgres is, the runtime they run on, Postgres'
//! own count of a table's writes, and percentiles. Each benchmark uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::Row;
use wasmbot::{
    bindings::types::{Action, Command, CommandSource, Event, EventKind, Platform, User},
    db::Database,
    dispatch::{Dispatcher, Outlet, SendFailure},
};

/// `NAME` from the environment as a number, else `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// `REDIS_URL`, else the machine's Redis.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `redis-benchmark`'s p50 of a PING, one client, in µs; none when it cannot run.
pub fn redis_benchmark(url: &str, calls: u64) -> Option<f64> {
    let address = url.trim_start_matches("redis://");
    let (host, port) = address.split_once(':').unwrap_or((address, "6379"));
    let port = port.trim_end_matches('/');
    let output = std::process::Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            port,
            "-t",
            "ping_mbulk",
            "-c",
            "1",
            "--csv",
        ])
        .args(["-n", &calls.to_string()])
        .output()
        .ok()?;
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
    let text = String::from_utf8_lossy(&output.stdout);
    let row = text.lines().find(|line| line.starts_with("\"PING"))?;
    let p50_ms: f64 = row.split(',').nth(4)?.trim_matches('"').parse().ok()?;
    Some(p50_ms * 1000.0)
}

/// Drops every action for its platform: a benchmark measures the way in.
pub struct Nowhere(pub Platform);

impl Outlet for Nowhere {
    fn platform(&self) -> Platform {
        self.0
    }

    fn deliver<'a>(
        &'a self,
        _: &'a Event,
        _: &'a str,
        _: Action,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async { Ok(()) })
    }
}

/// `DATABASE_URL`, else the machine's Postgres.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A runtime like the bot's on these two-core machines.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

/// Runs `work` on a worker thread of [`runtime`], as the bot runs its events, and waits
/// for it. A future driven by `block_on` runs on the calling thread instead, which is not
/// one of the runtime's: every wake-up (each I/O round trip) then crosses threads, and on
/// these machines that costs more than the round trip itself.
pub fn on_worker<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    runtime()
        .block_on(async { tokio::spawn(work).await })
        .expect("the benchmark's task finished")
}

/// Rows inserted plus updated on `table`, as Postgres counts them, once settled.
pub async fn table_writes(db: &Database, table: &str) -> i64 {
    // Backends publish their counts when idle, at the latest 10 s later.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let row = sqlx::query(
        "SELECT (n_tup_ins + n_tup_upd)::BIGINT FROM pg_stat_user_tables WHERE relname = $1",
    )
    .bind(table)
    .fetch_one(db.pool())
    .await
    .expect("pg_stat_user_tables");
    row.get::<i64, _>(0)
}

/// The p50 and p99 of `nanos`, in microseconds.
pub fn percentiles(mut nanos: Vec<u64>) -> (f64, f64) {
    nanos.sort_unstable();
    let at = |q: f64| nanos[((nanos.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

/// What a probe plugin timed itself: `event`'s reply, nanoseconds separated by spaces.
pub async fn plugin_timings(dispatcher: &Dispatcher, event: Event) -> Vec<u64> {
    let outcomes = dispatcher.dispatch(event).await;
    let actions = outcomes[0].result.as_ref().expect("the probe answers");
    let Action::Reply(reply) = &actions[0] else {
        panic!("a reply")
    };
    reply
        .text
        .split(' ')
        .map(|n| n.parse::<u64>().expect(&reply.text))
        .collect()
}

/// `!echo hello benchmark` from the console, numbered `n`: the trivial plugin's event.
pub fn echo_event(n: u64) -> Event {
    Event {
        id: format!("bench-{n}"),
        platform: Platform::Console,
        guild_id: Some("local".into()),
        channel_id: "console".into(),
        author: User {
            id: "you".into(),
            name: "you".into(),
            is_bot: false,
            roles: Vec::new(),
            locale: None,
        },
        timestamp_ms: 0,
        received_ms: 0,
        guild_locale: None,
        kind: EventKind::Command(Command {
            name: "echo".into(),
            args: vec![],
            raw_args: "hello benchmark".into(),
            source: CommandSource::Prefix("!".into()),
            message_id: None,
        }),
    }
}
