//! The operator's view and the host's own protection: bounded work queues, memory
//! pressure and load shedding, plugin metrics, `/metrics` (parsed as Prometheus text),
//! `/v1/metrics`, `/healthz`, `/readyz`, and draining events on shutdown.

use std::{sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use futures::future::join_all;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmbot::{
    capabilities::{
        Backends,
        config_store::{ConfigStore, Scope, StoreConfig},
    },
    config::Config,
    db::{Database, DatabaseConfig},
    http::{host_router, report::Report},
    platforms::console,
    runtime::Registry,
    telemetry::memory::Pressure,
};
use wasmbot_sdk::testing::{TestHost, texts};
use wasmbot_tests::{Logs, plugin};

async fn probe(configure: impl FnOnce(&mut Config)) -> TestHost {
    let mut config = Config::default();
    config.runtime.cache_dir = Default::default();
    configure(&mut config);
    TestHost::with_config(config, &[plugin("load-probe")])
        .await
        .unwrap()
}

fn backends(host: &TestHost) -> &Backends {
    host.dispatcher().registry().runtime().backends()
}

async fn open_the_gate(host: &TestHost) {
    let store = host.store().unwrap();
    store
        .set("load-probe", &Scope::Global, "open", json!(true))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_work_never_exceeds_its_concurrency_and_overflow_hears_busy() {
    let host = probe(|config| {
        config.plugin_defaults.capabilities.queue.queue_concurrency = 3;
        config.plugin_defaults.capabilities.queue.queue_length = 2;
    })
    .await;
    let queues = backends(&host).queues.clone().unwrap();
    let work = join_all((0..10).map(|_| host.say("!work")));
    let release = async {
        // Three hold a place, two wait, five were turned away at once.
        until(|| {
            queues
                .stats()
                .get("load-probe/work")
                .is_some_and(|s| s.running == 3 && s.waiting == 2 && s.rejected == 5)
        })
        .await;
        open_the_gate(&host).await;
    };
    let (answers, ()) = tokio::join!(work, release);
    let answers: Vec<String> = answers.into_iter().flatten().collect();
    let count = |text: &str| answers.iter().filter(|a| *a == text).count();
    assert_eq!((count("done"), count("err:busy")), (5, 5), "{answers:?}");
    let stats = queues.stats()["load-probe/work"];
    assert_eq!((stats.peak_running, stats.completed), (3, 5));
    assert_eq!(
        (stats.running, stats.waiting),
        (0, 0),
        "tickets go with the instance"
    );
}

#[tokio::test]
async fn memory_pressure_sheds_load_and_recovers() {
    let (logs, _guard) = Logs::capture();
    let host = probe(|config| config.memory.limit = "1MiB".into()).await;
    let store = host.store().unwrap();
    // Something in the config cache to shrink.
    assert_eq!(host.say("!mem").await.len(), 1);
    assert!(store.cache_size().await.0 >= 1);

    let watch = backends(&host).memory.clone().unwrap();
    watch.sample().await;
    assert_eq!(watch.pressure(), Pressure::Critical);
    assert_eq!(store.cache_size().await.0, 0, "caches shrunk");
    assert_eq!(host.say("!work").await, ["err:shedding"]);
    let mem = host.say("!mem").await;
    assert!(
        mem[0].starts_with("mem:") && mem[0].contains(":Critical:"),
        "{mem:?}"
    );
    assert_eq!(
        logs.lines_with(&["memory critical", "shedding load"]).len(),
        1
    );
    let report = Report::gather(host.dispatcher()).await;
    assert_eq!(report.memory.pressure, Pressure::Critical);
    assert_eq!(report.memory.criticals, 1);

    watch.set_limit(Some(1 << 50));
    watch.sample().await;
    assert_eq!(watch.pressure(), Pressure::Normal);
    assert_eq!(logs.lines_with(&["memory back to normal"]).len(), 1);
    let work = host.say("!work");
    let (answer, ()) = tokio::join!(work, open_the_gate(&host));
    assert_eq!(answer, ["done"]);
}

#[tokio::test]
async fn a_limit_between_the_levels_warns_without_shedding() {
    let (logs, _guard) = Logs::capture();
    let host = probe(|config| {
        config.memory.warning_percent = 10;
        config.memory.critical_percent = 99;
    })
    .await;
    let watch = backends(&host).memory.clone().unwrap();
    let resident = watch.sample().await.resident_bytes;
    // Resident memory sits near 50 % of this limit, far from both levels (other tests run
    // in this process and move it a little).
    watch.set_limit(Some(resident * 2));
    watch.sample().await;
    assert_eq!(watch.pressure(), Pressure::Warning);
    assert_eq!(logs.lines_with(&["memory warning"]).len(), 1);
    assert!(!backends(&host).queues.as_ref().unwrap().shedding());
}

#[tokio::test]
async fn plugin_metrics_are_namespaced_checked_and_capped() {
    let (logs, _guard) = Logs::capture();
    let host = probe(|config| config.metrics.max_series = 3).await;
    assert_eq!(host.say("!metric add calls 2 ai").await, ["ok"]);
    assert_eq!(host.say("!metric add calls 1.5 ai").await, ["ok"]);
    assert_eq!(host.say("!metric set depth 7").await, ["ok"]);
    assert_eq!(host.say("!metric observe size 5").await, ["ok"]);
    assert_eq!(host.say("!metric add nope 1").await, ["err:unknown"]);
    assert_eq!(host.say("!metric set calls 1 ai").await, ["err:unknown"]);
    assert_eq!(host.say("!metric add calls 1").await, ["err:invalid"]);
    assert_eq!(host.say("!metric add calls -1 ai").await, ["err:invalid"]);
    for label in ["b", "c"] {
        assert_eq!(
            host.say(&format!("!metric add calls 1 {label}")).await,
            ["ok"]
        );
    }
    assert_eq!(
        host.say("!metric add calls 1 d").await,
        ["err:too-many-series"]
    );
    assert_eq!(
        logs.lines_with(&["load-probe", "label combinations"]).len(),
        1
    );

    let text = Report::gather(host.dispatcher())
        .await
        .prometheus(host.dispatcher())
        .unwrap();
    let scrape = parse(&text);
    assert_eq!(
        sample(
            &scrape,
            "wasmbot_plugin_load_probe__calls",
            &[("kind", "ai")]
        ),
        3.5
    );
    assert_eq!(
        sample(&scrape, "wasmbot_plugin_load_probe__depth", &[]),
        7.0
    );
    assert_eq!(
        sample(&scrape, "wasmbot_plugin_load_probe__size_count", &[]),
        1.0
    );
}

#[tokio::test]
async fn the_http_view_serves_prometheus_json_health_and_readiness() {
    let host = probe(|_| {}).await;
    for _ in 0..3 {
        host.say("!ai").await;
    }
    let router = host_router(Arc::clone(host.dispatcher()), "secret", None, []);
    let get = |path: &str, token: Option<&str>| {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Body::empty()).unwrap();
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };

    let (status, text) = get("/metrics", None).await;
    assert_eq!(status, 200);
    let scrape = parse(&text);
    assert_eq!(
        sample(&scrape, "wasmbot_events_total", &[("plugin", "load-probe")]),
        3.0
    );
    assert_eq!(
        sample(
            &scrape,
            "wasmbot_event_seconds_count",
            &[("plugin", "load-probe")]
        ),
        3.0
    );
    assert!(sample(&scrape, "wasmbot_memory_bytes", &[("kind", "resident")]) > 0.0);
    assert_eq!(
        sample(
            &scrape,
            "wasmbot_rate_limit_checks_total",
            &[("result", "allowed")]
        ),
        3.0
    );
    assert!(sample(&scrape, "wasmbot_db_pool_connections", &[("state", "max")]) >= 1.0);
    assert!(sample(&scrape, "wasmbot_cache_entries", &[("cache", "config")]) >= 0.0);

    assert_eq!(get("/healthz", None).await, (200, "ok".to_owned()));
    let (status, ready) = get("/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["platforms"]["console"], true);

    assert_eq!(get("/v1/metrics", None).await.0, 401);
    let (status, report) = get("/v1/metrics", Some("secret")).await;
    assert_eq!(status, 200);
    let report: Value = serde_json::from_str(&report).unwrap();
    let plugin = &report["plugins"]["load-probe"];
    assert_eq!(plugin["events"], 3);
    assert!(plugin["p50_ms"].as_f64().unwrap() <= plugin["p99_ms"].as_f64().unwrap());
    assert!(report["memory"]["resident_bytes"].as_u64().unwrap() > 0);
    assert_eq!(report["rate_limits"]["checks"], 3);
    assert!(report["database"]["max"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn readyz_says_503_when_the_database_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = Database::connect(&DatabaseConfig {
        url: format!("postgres://postgres@127.0.0.1:{port}/test"),
        acquire_timeout_ms: 300,
        min_connections: 0,
        ..DatabaseConfig::default()
    })
    .unwrap();
    let config = Config::default();
    let store = Arc::new(ConfigStore::new(db, StoreConfig::default()));
    let backends = config.backends(store).unwrap();
    let registry = Registry::new(config.build_runtime(backends).unwrap());
    let dispatcher = Arc::new(config.dispatcher(registry));
    let response = host_router(dispatcher, "", None, [])
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["ready"], false);
    assert!(
        body["database"].as_str().unwrap().contains("connection"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_finishes_events_in_flight_and_refuses_new_ones() {
    let host = probe(|_| {}).await;
    let dispatcher = host.dispatcher();
    let queues = backends(&host).queues.clone().unwrap();
    let work = join_all((0..3).map(|_| host.say("!work")));
    let drain = async {
        until(|| queues.stats().get("load-probe/work").map(|s| s.running) == Some(3)).await;
        assert_eq!(dispatcher.in_flight(), 3);
        let drained = dispatcher.drain(Duration::from_secs(60));
        let late = async {
            // Closed to new events while the three finish.
            while dispatcher.in_flight() > 0 && !is_refused(&host).await {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            open_the_gate(&host).await;
        };
        let (left, ()) = tokio::join!(drained, late);
        left
    };
    let (answers, left) = tokio::join!(work, drain);
    assert_eq!(left, 0);
    assert_eq!(answers, vec![vec!["done".to_owned()]; 3]);
    assert!(texts(&host.send("!mem").await).is_empty());
}

async fn is_refused(host: &TestHost) -> bool {
    let event = console::event_for_line(host.dispatcher(), "!mem").unwrap();
    host.event(event).await.0.is_empty()
}

/// Waits for `condition`; a regression fails the test after 30 s instead of hanging it.
async fn until(condition: impl Fn() -> bool) {
    let wait = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the condition held within 30 s");
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}

/// The value of the sample `name` with exactly these labels (among others).
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = scrape.samples.iter().find(|sample| {
        sample.metric == name
            && labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(*value))
    });
    match found.map(|sample| &sample.value) {
        Some(prometheus_parse::Value::Counter(value))
        | Some(prometheus_parse::Value::Gauge(value))
        | Some(prometheus_parse::Value::Untyped(value)) => *value,
        Some(other) => panic!("{name}: {other:?}"),
        None => panic!("no sample {name} {labels:?}"),
    }
}
