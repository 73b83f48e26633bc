//! `cargo bench -p wasmbot-tests --bench timers`: timers fired from Postgres by two hosts.
//!
//! Two hosts on one database made for the run (each with its own pool and its own firing
//! loop, as two processes would have) deliver timers of the `schedule-probe` plugin written
//! straight into the database; each delivery is the plugin's `timer` event and its reply.
//!
//! 1. Throughput: `TIMERS` (20 000) timers all due at once, `LEAD_MS` (2 000) ms ahead, in
//!    `GUILDS` (100) guilds: timers fired per second (from the due time to the last
//!    delivery), how the firings split between the hosts, and that each fired once.
//! 2. Delay: `SPREAD` (2 000) timers due evenly over 10 s: the delay from due time to
//!    delivery (p50 / p99, the host's receive time), when no backlog holds them up.
//!
//! Beside it, from the same run, the physical limit: `pgbench -M prepared` with two clients
//! on a one-row `UPDATE ... RETURNING` of a table shaped like `timers` (what claiming one
//! timer at a time would cost).

use std::{
    collections::HashSet,
    path::Path,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use wasmbot::{bindings::types::EventKind, config::Config, db::now_ms};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{config, fresh_postgres, plugin};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn host(url: &str) -> TestHost {
    let mut config: Config = config(Path::new(""));
    config.database.url = url.to_owned();
    config.runtime.cache_dir = Default::default();
    // The hosts find the timers the bench wrote by looking (no host set them).
    config.schedule.poll_s = 1;
    let store = Arc::new(config.open_store().await.expect("store"));
    TestHost::with_store(config, store, &[plugin("schedule-probe")])
        .await
        .expect("host")
}

/// Writes `count` timers, the `n`th due at `due_ms + n * step_ms`, in batches of one
/// statement each.
async fn write_timers(url: &str, count: u64, guilds: u64, due_ms: i64, step_ms: f64) {
    use sqlx::ConnectOptions;
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
    let mut connection = options.connect().await.expect("connect");
    const BATCH: u64 = 1_000;
    for start in (0..count).step_by(BATCH as usize) {
        let end = (start + BATCH).min(count);
        let sql = "INSERT INTO timers (id, plugin, platform, guild_id, channel_id, user_id, \
                   user_name, payload, due_ms, created_ms) \
                   SELECT $5 || n, 'schedule-probe', 'console', 'g' || (n % $1), 'c', 'u', \
                   'u', 'bench', $2 + (n * $6)::bigint, $2 \
                   FROM generate_series($3::bigint, $4::bigint) AS n";
        sqlx::query(sql)
            .bind(guilds as i64)
            .bind(due_ms)
            .bind(start as i64)
            .bind(end as i64 - 1)
            .bind(format!("b{due_ms}-"))
            .bind(step_ms)
            .execute(&mut connection)
            .await
            .expect("insert timers");
    }
}

/// `pgbench -M prepared` on a one-row claim of a `timers`-shaped table, two clients, five
/// seconds: transactions per second.
fn pgbench_claims(url: &str) -> Option<f64> {
    use std::io::Write;
    // sqlx's own parameters are not libpq's.
    let url = url.split('?').next().unwrap_or(url);
    let mut setup = tempfile::NamedTempFile::new().ok()?;
    writeln!(
        setup,
        "\\set id random(1, 100000)\n\
         UPDATE bench_timers SET claimed_until = claimed_until + 1 WHERE id = :id \
         RETURNING id, payload, due_ms;"
    )
    .ok()?;
    let psql = |sql: &str| {
        Command::new("psql")
            .args([url, "-q", "-c", sql])
            .status()
            .ok()
            .filter(|status| status.success())
    };
    psql("DROP TABLE IF EXISTS bench_timers")?;
    psql(
        "CREATE TABLE bench_timers AS SELECT n AS id, 'bench'::text AS payload, \
         0::bigint AS due_ms, 0::bigint AS claimed_until FROM generate_series(1, 100000) n",
    )?;
    psql("ALTER TABLE bench_timers ADD PRIMARY KEY (id)")?;
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c", "2", "-T", "5", "-f"])
        .arg(setup.path())
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find(|line| line.starts_with("tps = "))?
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()?
        .parse()
        .ok();
    psql("DROP TABLE bench_timers");
    tps
}

/// Waits until the two hosts delivered `count` timers in all (at most five minutes); their
/// timer events, host A's first.
async fn wait_for(
    a: &TestHost,
    b: &TestHost,
    count: usize,
) -> Vec<wasmbot::bindings::types::Event> {
    let started = Instant::now();
    while a.timers_fired() + b.timers_fired() < count
        && started.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (on_a, on_b) = (
        a.timer_actions(0, Duration::ZERO).await,
        b.timer_actions(0, Duration::ZERO).await,
    );
    let mut events: Vec<_> = on_a
        .into_iter()
        .chain(on_b)
        .map(|(event, _)| event)
        .collect();
    events.sort_by_key(|event| event.received_ms);
    events
}

/// Distinct timers, those delivered twice, each delay (ms) and the last delivery's time.
fn tally(events: &[wasmbot::bindings::types::Event]) -> (usize, usize, Vec<u64>, u64) {
    let mut ids = HashSet::new();
    let (mut twice, mut last, mut delays) = (0, 0, Vec::new());
    for event in events {
        let EventKind::Timer(timer) = &event.kind else {
            continue;
        };
        if !ids.insert(timer.id.clone()) {
            twice += 1;
        }
        delays.push(event.received_ms.saturating_sub(timer.due_ms));
        last = last.max(event.received_ms);
    }
    (ids.len(), twice, delays, last)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(async {
        let timers = env_or("TIMERS", 20_000);
        let guilds = env_or("GUILDS", 100);
        let lead = env_or("LEAD_MS", 2_000) as i64;
        let url = fresh_postgres("bench_timers").await;
        let (a, b) = (host(&url).await, host(&url).await);
        let due = now_ms() + lead;
        write_timers(&url, timers, guilds, due, 0.0).await;
        let fired = wait_for(&a, &b, timers as usize).await;
        let (ids, twice, _, last) = tally(&fired);
        let span_ms = (last as i64 - due).max(1) as f64;
        let rate = ids as f64 / (span_ms / 1e3);
        let on_a = a.timers_fired();
        let spread = env_or("SPREAD", 2_000);
        let due = now_ms() + lead;
        write_timers(&url, spread, guilds, due, 10_000.0 / spread as f64).await;
        let all = wait_for(&a, &b, (timers + spread) as usize).await;
        let (_, _, mut spread_delays, _) = tally(&all[fired.len()..]);
        spread_delays.sort_unstable();
        println!("## Timers fired from Postgres by two hosts ({timers} timers, {guilds} guilds)");
        println!();
        println!("| measured | figure |");
        println!("|---|---|");
        println!("| timers fired per second, {timers} due at once (due time to last delivery) | {rate:.0} |");
        println!(
            "| delivered by host A / host B | {on_a} / {} |",
            timers as usize - on_a.min(timers as usize)
        );
        println!("| distinct timers delivered / delivered twice | {ids} / {twice} |");
        println!(
            "| delay from due time to delivery, {spread} timers over 10 s, p50 / p99 | {} ms / {} ms |",
            percentile(&spread_delays, 0.50),
            percentile(&spread_delays, 0.99)
        );
        match pgbench_claims(&url) {
            Some(tps) => println!(
                "| physical limit: `pgbench -M prepared -c 2`, one-row claim (`UPDATE ... RETURNING`) per transaction | {tps:.0}/s |"
            ),
            None => println!("| physical limit | pgbench or psql unavailable |"),
        }
    });
}
