//! `cargo bench -p wasmbot-tests --bench whatsapp`: a load generator posting signed
//! webhooks at a fixed rate on loopback to a real host (webhook, durable inbox, worker,
//! dispatcher, the `ping` plugin, the Graph API client) whose answers the fake Graph API
//! records. Reported from the same run: the acknowledgement's latency alone (POST → 200)
//! and the whole path's (POST → the answer recorded by the fake), p50 / p95 / p99, and the
//! rate actually held.
//!
//! `RATE` (1 000 per second) for `SECONDS` (10) after a one-second warm-up, across `USERS`
//! (1 000) senders; `DATABASE_URL` set to a Postgres URL measures on Postgres (a database
//! made for the run), else SQLite in a temporary folder. `MARKS_AHEAD` sets
//! `whatsapp.marks_ahead` (4): how many items a worker may answer before their done marks
//! are written; the run reports the statements marking them and the most items answered
//! and not marked at once (what a crash would have answered twice).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use wasmbot_tests::{
    discord_host::plugins,
    fake_whatsapp::{FakeGraph, text_webhook},
    fresh_postgres,
    whatsapp_host::Host,
};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn report(name: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{name}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        latencies.len(),
    );
}

/// Posts `count` webhooks at `rate` per second; returns when each was posted and how long
/// its acknowledgement took, by wamid, and the rate actually held.
async fn load(
    fake: &Arc<FakeGraph>,
    url: &str,
    prefix: &str,
    count: u64,
    rate: u64,
    users: u64,
) -> (HashMap<String, (Instant, Duration)>, f64) {
    let posted = Arc::new(Mutex::new(HashMap::new()));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count as usize);
    for i in 0..count {
        tick.tick().await;
        let (fake, posted, url) = (Arc::clone(fake), Arc::clone(&posted), url.to_owned());
        let wamid = format!("wamid.{prefix}{i}");
        let user = format!("49155{:06}", i % users);
        tasks.push(tokio::spawn(async move {
            let body = text_webhook(&user, &wamid, "!ping");
            let at = Instant::now();
            let status = fake.deliver(&url, &body).await;
            let ack = at.elapsed();
            assert!(status.is_success(), "webhook answered {status}");
            posted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(wamid, (at, ack));
        }));
    }
    let held = count as f64 / started.elapsed().as_secs_f64();
    for task in tasks {
        let _ = task.await;
    }
    let posted = std::mem::take(&mut *posted.lock().unwrap_or_else(|e| e.into_inner()));
    (posted, held)
}

#[tokio::main]
async fn main() {
    let rate = env_or("RATE", 1000);
    let seconds = env_or("SECONDS", 10);
    let users = env_or("USERS", 1000);
    let marks_ahead = env_or("MARKS_AHEAD", 4) as usize;
    let folder = plugins(&["ping"]);
    let database = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(fresh_postgres("wabench").await),
        _ => None,
    };
    let backend = if database.is_some() {
        "Postgres"
    } else {
        "SQLite"
    };
    let fake = Arc::new(FakeGraph::start().await);
    let host = Host::start(&fake, folder.path(), |config| {
        config.rate_limits.enabled = false;
        config.whatsapp.marks_ahead = marks_ahead;
        if let Some(url) = database {
            config.database.url = url;
        }
    })
    .await;

    let (_, _) = load(&fake, &host.url, "warm", rate, rate, users).await;
    fake.wait_sent(rate as usize).await;
    let from = fake.sent().len();
    let count = rate * seconds;
    let (posted, held) = load(&fake, &host.url, "run", count, rate, users).await;
    let sent = fake.wait_sent(from + count as usize).await;
    let answered: Vec<Duration> = sent[from..]
        .iter()
        .filter_map(|sent| {
            let wamid = sent.body["context"]["message_id"].as_str()?;
            let (at, _) = posted.get(wamid)?;
            Some(sent.at.duration_since(*at))
        })
        .collect();
    let acks: Vec<Duration> = posted.values().map(|(_, ack)| *ack).collect();
    println!(
        "WhatsApp webhooks on {backend}, marks_ahead {marks_ahead}: {count} at {rate}/s asked, \
         {held:.0}/s held, {} answered",
        answered.len()
    );
    report("acknowledgement (POST → 200)", acks);
    report("webhook → plugin → send recorded", answered);
    // What at-least-once costs: done marks written, and what a crash would have repeated.
    let marking = host.whatsapp.inbox.marking();
    let processed = host
        .whatsapp
        .inbox
        .traffic()
        .processed
        .load(Ordering::Relaxed);
    let statements = marking.statements.load(Ordering::Relaxed);
    println!(
        "done marks: {statements} statements for {processed} items ({:.3} per item); \
         answered and not marked done at once, at most: {} items (of {} workers)",
        statements as f64 / processed.max(1) as f64,
        marking.most_unmarked.load(Ordering::Relaxed),
        wasmbot::platforms::whatsapp::WhatsAppConfig::default().workers,
    );
    host.stop().await;
}
