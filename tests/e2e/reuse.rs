//! `instances = "reuse"`: an instance serves several events of its plugin and keeps its
//! memory between them, under the same limits per event as a fresh one, and is discarded
//! on a trap, a timeout, its memory cap, after `reuse_events` events and on a reload.

use serde_json::json;
use wasmbot::runtime::{Failure, registry::Change};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{Logs, config, plugin, section};

/// A host running `misbehave` from `file` with these keys over its sandbox limits.
async fn host_of(file: std::path::PathBuf, keys: serde_json::Value) -> TestHost {
    let mut config = config(std::path::Path::new("unused"));
    config.runtime.max_log_lines = 10;
    let mut limits = section(json!({"memory_mib": 16, "wall_ms": 1_000}));
    limits.extend(section(keys));
    config.plugins.insert("misbehave".into(), limits);
    match TestHost::with_config(config, &[file]).await {
        Ok(host) => host,
        Err(error) => panic!("test host: {error:#}"),
    }
}

async fn host(keys: serde_json::Value) -> TestHost {
    host_of(plugin("misbehave"), keys).await
}

async fn count(host: &TestHost) -> String {
    host.say("!count").await.concat()
}

async fn counts(host: &TestHost, events: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..events {
        seen.push(count(host).await);
    }
    seen
}

/// The failure `!command` causes.
async fn failure_of(host: &TestHost, command: &str) -> Failure {
    let line = format!("!{command}");
    let event = wasmbot::platforms::console::event_for_line(host.dispatcher(), &line)
        .expect("a command line is an event");
    let (outcomes, _) = host.event(event).await;
    match &outcomes[0].result {
        Err(failure) => failure.clone(),
        Ok(actions) => panic!("{command} should fail, returned {actions:?}"),
    }
}

#[tokio::test]
async fn fresh_instances_are_the_default_and_forget_every_event() {
    let host = host(json!({})).await;
    assert_eq!(counts(&host, 3).await, ["1", "1", "1"]);
}

#[tokio::test]
async fn a_reused_instance_remembers_until_it_fails() {
    let host = host(json!({"instances": "reuse"})).await;
    assert_eq!(counts(&host, 3).await, ["1", "2", "3"]);
    // A plugin's own error return leaves the instance fit; a trap, the CPU budget and the
    // wall clock do not.
    for (command, failure) in [
        ("boom", "panic"),
        ("spin", "cpu_budget"),
        ("nap", "wall_clock"),
    ] {
        assert_eq!(failure_of(&host, command).await.kind(), failure);
        assert_eq!(counts(&host, 2).await, ["1", "2"], "{command} discarded it");
    }
}

#[tokio::test]
async fn a_reused_instance_keeps_its_memory_under_the_same_cap() {
    let host = host(json!({"instances": "reuse"})).await;
    assert_eq!(host.say("!hoard").await, ["6 MiB"]);
    assert_eq!(host.say("!hoard").await, ["12 MiB"], "its memory persisted");
    assert_eq!(failure_of(&host, "hoard").await, Failure::Memory(16));
    assert_eq!(
        host.say("!hoard").await,
        ["6 MiB"],
        "a new instance, from nothing"
    );
    let fresh = self::host(json!({})).await;
    for _ in 0..3 {
        assert_eq!(fresh.say("!hoard").await, ["6 MiB"]);
    }
}

#[tokio::test]
async fn a_reused_instance_is_replaced_after_reuse_events() {
    let host = host(json!({"instances": "reuse", "reuse_events": 3})).await;
    assert_eq!(counts(&host, 7).await, ["1", "2", "3", "1", "2", "3", "1"]);
}

#[tokio::test]
async fn each_event_of_a_reused_instance_has_a_whole_allowance() {
    let (logs, _guard) = Logs::capture();
    let host = host(json!({"instances": "reuse"})).await;
    assert_eq!(count(&host).await, "1");
    for _ in 0..2 {
        assert_eq!(host.say("!chatty").await, ["said a lot"]);
    }
    let kept = logs.lines_with(&["INFO plugin: line ", "plugin=\"misbehave\""]);
    assert_eq!(kept.len(), 20, "10 log lines for each of the two events");
    assert_eq!(
        count(&host).await,
        "2",
        "one instance served all four events"
    );
}

#[tokio::test]
async fn a_reload_discards_the_kept_instances() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("misbehave.wasm");
    let mut wasm = std::fs::read(plugin("misbehave")).unwrap();
    std::fs::write(&file, &wasm).unwrap();
    let host = host_of(file.clone(), json!({"instances": "reuse"})).await;
    assert_eq!(counts(&host, 2).await, ["1", "2"]);
    // The same plugin with other bytes (a custom section added): a new version.
    wasm.extend_from_slice(&[0, 5, 4, b'n', b'o', b't', b'e']);
    std::fs::write(&file, wasm).unwrap();
    let change = host.dispatcher().registry().load_file(&file).await.unwrap();
    assert!(matches!(change, Change::Replaced { .. }), "{change:?}");
    assert_eq!(count(&host).await, "1");
}
