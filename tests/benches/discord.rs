//! `cargo bench -p wasmbot-tests --bench discord`: Discord messages from the fake gateway to
//! the replies the fake REST API records, through a real host (serenity, dispatcher, the
//! `ping` plugin, Postgres for its config store).
//!
//! 1. One message at a time (`SEQUENTIAL`, 1 000): latency per message, unloaded.
//! 2. A burst of `MESSAGES` (10 000) across 100 guilds: messages/s, latency per message
//!    under load, and the config store's statements in Postgres' own statistics.
//!
//! `FAKE=apart` runs the fake Discord on a runtime of its own (one thread, `fake-discord`)
//! and reports the CPU time of the burst on each side of the wire, from the kernel's
//! per-thread accounting: the host's share alone, with the fake's taken out.
//! `PING_INSTANCES=reuse` keeps `ping`'s instances between messages.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use wasmbot_tests::{
    config_statements,
    discord_host::{Host, measured, plugins},
    fake_discord::FakeDiscord,
    fresh_postgres,
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// CPU time each part has run so far, from `/proc/self/task/*/schedstat`: the fake's
/// threads (`fake-discord`), this driver (the main thread, which makes the gateway's
/// messages) and all others (the host and its runtime).
fn cpu_time() -> (Duration, Duration, Duration) {
    let (mut fake, mut driver, mut host) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (fake, driver, host);
    };
    let main = std::process::id().to_string();
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ran = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
            .map_or(Duration::ZERO, Duration::from_nanos);
        if name.trim() == "fake-discord" {
            fake += ran;
        } else if task.file_name() == main.as_str() {
            driver += ran;
        } else {
            host += ran;
        }
    }
    (fake, driver, host)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} messages)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len(),
    );
}

/// Latency of each answered message: from its dispatch to the reply that references it.
fn latencies(
    fake: &FakeDiscord,
    from: usize,
    dispatched: &HashMap<String, Instant>,
) -> Vec<Duration> {
    fake.sent()
        .iter()
        .skip(from)
        .filter_map(|sent| {
            let id = sent.body["message_reference"]["message_id"].as_str()?;
            Some(sent.at.duration_since(*dispatched.get(id)?))
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sequential = env_or("SEQUENTIAL", 1_000);
    let burst = env_or("MESSAGES", 10_000);
    let apart = std::env::var("FAKE").is_ok_and(|v| v == "apart");
    // Shut down at the end without waiting: a runtime cannot be dropped inside another.
    let fake_runtime = apart.then(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fake-discord")
            .enable_all()
            .build()
            .expect("the fake's runtime")
    });
    let fake = match &fake_runtime {
        Some(runtime) => runtime
            .spawn(FakeDiscord::start())
            .await
            .expect("the fake starts"),
        None => FakeDiscord::start().await,
    };
    let folder = plugins(&["ping"]);
    let database = fresh_postgres("discord_bench").await;
    let reuse = std::env::var("PING_INSTANCES").is_ok_and(|v| v == "reuse");
    let configure = measured(database.clone());
    let host = Host::start(&fake, folder.path(), move |config| {
        configure(config);
        if reuse {
            config.plugin_defaults.instances = wasmbot::runtime::Instances::Reuse;
        }
    })
    .await;
    fake.wait_connected(1).await;
    let guilds: Vec<u64> = (0..100).map(|_| fake.id()).collect();
    let channel = fake.id();
    let pong = |sent: &wasmbot_tests::fake_discord::Sent| sent.content().contains("pong");

    // Unloaded: the next message goes when the previous one's reply is recorded.
    let from = fake.sent_count();
    let mut dispatched = HashMap::new();
    for i in 0..sequential {
        let before = fake.sent_count();
        let at = Instant::now();
        let id = fake.message(guilds[i % guilds.len()], channel, 7, "!ping");
        dispatched.insert(id.to_string(), at);
        fake.wait_for(before, pong).await;
    }
    report("one at a time", latencies(&fake, from, &dispatched));

    // A burst: all messages at once, as a busy gateway delivers them.
    let from = fake.sent_count();
    let mut dispatched = HashMap::new();
    let cpu_before = cpu_time();
    let started = Instant::now();
    for i in 0..burst {
        let at = Instant::now();
        let id = fake.message(
            guilds[i % guilds.len()],
            channel,
            1 + i as u64 % 500,
            "!ping",
        );
        dispatched.insert(id.to_string(), at);
    }
    let answered = fake
        .wait_count(sequential + burst, Duration::from_secs(60), pong)
        .await
        - sequential;
    let elapsed = started.elapsed();
    let cpu_after = cpu_time();
    let latencies = latencies(&fake, from, &dispatched);
    let last = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "burst: {answered} of {burst} answered in {:.2} s: {:.0} messages/s",
        elapsed.as_secs_f64(),
        answered as f64 / last.max(Duration::from_micros(1)).as_secs_f64()
    );
    report("burst", latencies);
    if apart {
        // Saturating: a thread that ended in between takes its time with it.
        let fake_cpu = cpu_after.0.saturating_sub(cpu_before.0);
        let driver_cpu = cpu_after.1.saturating_sub(cpu_before.1);
        let host_cpu = cpu_after.2.saturating_sub(cpu_before.2);
        let per = |cpu: Duration| cpu.as_secs_f64() * 1e6 / answered.max(1) as f64;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
        println!(
            "burst CPU: fake {:.2} s ({:.1} µs a message), driver {:.2} s ({:.1} µs), host {:.2} s \
             ({:.1} µs a message): the host alone would answer {:.0} messages/s on {cores} cores",
            fake_cpu.as_secs_f64(),
            per(fake_cpu),
            driver_cpu.as_secs_f64(),
            per(driver_cpu),
            host_cpu.as_secs_f64(),
            per(host_cpu),
            cores * 1e6 / per(host_cpu)
        );
    }

    host.stop().await;
    let statements = config_statements(&database).await;
    let messages = sequential + burst;
    println!(
        "config store statements in Postgres: {statements} for {messages} messages in 100 guilds \
         ({:.1} per 10 000)",
        statements as f64 * 10_000.0 / messages as f64
    );
    drop(fake);
    if let Some(runtime) = fake_runtime {
        runtime.shutdown_background();
    }
}
