//! Loading: bad files are refused with one clear line naming the file and the reason, good
//! ones load, and compiled components are cached on disk.

use std::sync::Arc;

use serde_json::json;
use wasmbot::{
    capabilities::Backends,
    runtime::{LoadError, Registry},
};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{Logs, config, install, plugin, section};

fn registry(config: wasmbot::config::Config) -> Arc<Registry> {
    match config.build_runtime(Backends::default()) {
        Ok(runtime) => Registry::new(runtime),
        Err(error) => panic!("runtime: {error:#}"),
    }
}

#[tokio::test]
async fn a_folder_of_good_and_bad_files_loads_the_good_and_names_the_bad() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    install(
        dir.path(),
        &["ping", "unknown-capability", "other-world", "async-abi"],
    );
    std::fs::write(dir.path().join("notes.wasm"), "these are not instructions").unwrap();
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("README.md"), "ignored: not a .wasm").unwrap();

    let registry = registry(config(dir.path()));
    let changes = registry.load_dir(dir.path()).await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let names: Vec<String> = registry
        .snapshot()
        .plugins()
        .map(|p| p.name().to_owned())
        .collect();
    assert_eq!(names, vec!["ping"]);

    for (file, reason) in [
        ("notes.wasm", "not a WebAssembly file"),
        ("core.wasm", "a core WebAssembly module, not a component"),
        ("unknown-capability.wasm", "unknown capability \"teleport\""),
        (
            "other-world.wasm",
            "built against wasmbot:plugin@9.9.9, and this host links wasmbot:plugin@0.1.0 to 0.2.0",
        ),
        ("async-abi.wasm", "uses the component model's async ABI"),
    ] {
        let lines = logs.lines_with(&["plugin not loaded", file, reason]);
        assert_eq!(
            lines.len(),
            1,
            "{file}: expected one line with {reason:?} in\n{}",
            logs.text()
        );
    }
    assert!(logs.lines_with(&["README.md"]).is_empty());
}

#[tokio::test]
async fn a_capability_the_operator_did_not_grant_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config
        .plugins
        .insert("ping".into(), section(json!({"grants": []})));
    let registry = registry(config);
    let error = registry.load_file(&plugin("ping")).await.unwrap_err();
    assert!(
        matches!(&error, LoadError::Grants { plugin, .. } if plugin == "ping"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("capability \"log\", which the operator has not granted")
    );
}

#[tokio::test]
async fn a_plugin_disabled_by_the_operator_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config
        .plugins
        .insert("ping".into(), section(json!({"enabled": false})));
    let error = registry(config)
        .load_file(&plugin("ping"))
        .await
        .unwrap_err();
    assert!(matches!(error, LoadError::Disabled(name) if name == "ping"));
}

#[tokio::test]
async fn a_call_to_a_capability_not_asked_for_is_denied_not_fatal() {
    let (logs, _guard) = Logs::capture();
    let host = TestHost::load(&[plugin("ping-v2")]).await.unwrap();
    assert_eq!(host.say("!ping").await, vec!["pong v2"]);
    assert_eq!(
        logs.lines_with(&["denied", "plugin=\"ping\"", "capability=\"log\""])
            .len(),
        1
    );
    assert!(logs.lines_with(&["this line is not allowed"]).is_empty());
}

#[tokio::test]
async fn two_files_cannot_provide_the_same_plugin_or_command() {
    let dir = tempfile::tempdir().unwrap();
    let files = install(dir.path(), &["ping", "ping-v2"]);
    let registry = registry(config(dir.path()));
    registry.load_file(&files[0]).await.unwrap();
    let error = registry.load_file(&files[1]).await.unwrap_err();
    assert!(
        matches!(&error, LoadError::Duplicate { plugin, .. } if plugin == "ping"),
        "{error}"
    );
    // The first one still serves.
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.plugin("ping").unwrap().manifest().version, "0.1.0");
}

#[tokio::test]
async fn a_command_another_plugin_provides_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let files = install(dir.path(), &["echo", "listener"]);
    let registry = registry(config(dir.path()));
    registry.load_file(&files[0]).await.unwrap();
    let error = registry.load_file(&files[1]).await.unwrap_err();
    assert!(
        matches!(&error, LoadError::CommandTaken { command, owner } if command == "echo" && owner == "echo"),
        "{error}"
    );
    assert!(registry.snapshot().plugin("listener").is_none());
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let counts = |registry: &Registry| {
        let cache = registry.runtime().cache();
        (cache.hits(), cache.misses())
    };

    let first = registry(cached(dir.path(), cache.path()));
    first.load_file(&plugin("echo")).await.unwrap();
    assert_eq!(counts(&first), (0, 1));

    let restarted = registry(cached(dir.path(), cache.path()));
    restarted.load_file(&plugin("echo")).await.unwrap();
    assert_eq!(counts(&restarted), (1, 0));
    assert!(restarted.snapshot().plugin("echo").is_some());

    // A damaged cache entry is recompiled, not trusted.
    let entries = walk(cache.path());
    assert_eq!(entries.len(), 1);
    std::fs::write(&entries[0], b"garbage").unwrap();
    let third = registry(cached(dir.path(), cache.path()));
    third.load_file(&plugin("echo")).await.unwrap();
    assert_eq!(counts(&third), (0, 1));

    // The cache is bounded: another engine's folder and month-old entries go at start-up.
    let current = entries[0].parent().unwrap().to_owned();
    let other_engine = cache.path().join("0123456789abcdef");
    std::fs::create_dir_all(&other_engine).unwrap();
    std::fs::write(other_engine.join("x.cwasm"), b"old").unwrap();
    let old_entry = current.join("old.cwasm");
    let file = std::fs::File::create(&old_entry).unwrap();
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    file.set_modified(month_ago).unwrap();
    let _fourth = registry(cached(dir.path(), cache.path()));
    assert!(!other_engine.exists(), "another engine's folder is removed");
    assert!(
        !old_entry.exists(),
        "an entry unused for a month is removed"
    );
    assert_eq!(walk(cache.path()), entries, "the entry in use stays");
}

fn cached(plugins: &std::path::Path, cache: &std::path::Path) -> wasmbot::config::Config {
    let mut config = config(plugins);
    config.runtime.cache_dir = cache.to_owned();
    config
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
