//! Hot reload: replacing a plugin's file while events flow swaps versions without dropping
//! an event; a broken file is refused while the old version serves; a deleted one unloads.

use std::{path::Path, sync::Arc, time::Duration};

use tokio::sync::broadcast;
use wasmbot::runtime::{registry::Change, watch};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{config, install, plugin};

/// A safety net so a broken watcher fails the test instead of hanging it; not a speed bar.
const PATIENCE: Duration = Duration::from_secs(60);
/// The watcher's quiet period in these tests.
const QUIET: Duration = Duration::from_millis(50);

async fn next_change(changes: &mut broadcast::Receiver<Change>) -> Change {
    match tokio::time::timeout(PATIENCE, changes.recv()).await {
        Ok(Ok(change)) => change,
        other => panic!("no registry change arrived: {other:?}"),
    }
}

/// Replaces `to` atomically, as an operator's deploy should (write, then rename).
fn replace(to: &Path, bytes: &[u8]) {
    let temporary = to.with_extension("partial");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, to).unwrap();
}

async fn watched_host(dir: &Path) -> (TestHost, watch::Watcher) {
    let files = install(dir, &["ping"]);
    let host = TestHost::with_config(config(dir), &files).await.unwrap();
    let registry = Arc::clone(host.dispatcher().registry());
    let watcher = watch::watch(registry, dir.to_owned(), QUIET).unwrap();
    (host, watcher)
}

// Several runtime threads: events run while the watcher swaps the plugin on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_plugin_while_events_flow_drops_none() {
    let dir = tempfile::tempdir().unwrap();
    let (host, _watcher) = watched_host(dir.path()).await;
    let mut changes = host.dispatcher().registry().changes();
    let v2 = std::fs::read(plugin("ping-v2")).unwrap();

    let mut answers = Vec::new();
    let mut swapped_at = None;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        // Events keep flowing, several at a time, while the file is replaced.
        let batch = futures_batch(&host).await;
        answers.extend(batch);
        if answers.len() >= 20 && swapped_at.is_none() {
            replace(&dir.path().join("ping.wasm"), &v2);
            swapped_at = Some(answers.len());
        }
        if answers.last().is_some_and(|a| a == "pong v2") && answers.len() > 60 {
            break;
        }
        match changes.try_recv() {
            Ok(Change::Refused { reason, .. }) => panic!("the new version was refused: {reason}"),
            _ => tokio::task::yield_now().await,
        }
    }

    let swapped_at = swapped_at.expect("the file was replaced");
    let first_v2 = answers
        .iter()
        .position(|a| a == "pong v2")
        .expect("version 2 answered after the swap");
    assert!(
        first_v2 >= swapped_at,
        "v2 answered before the file changed"
    );
    for (index, answer) in answers.iter().enumerate() {
        if index < first_v2 {
            assert!(answer.starts_with("pong ("), "event {index} got {answer:?}");
        } else {
            assert_eq!(
                answer, "pong v2",
                "event {index}: once swapped, only v2 answers"
            );
        }
    }
    let stats = host.dispatcher().registry().stats("ping");
    assert_eq!(stats.failed(), 0);
    assert_eq!(
        stats.events(),
        answers.len() as u64,
        "every event was handled"
    );
}

/// Four `!ping`s at once; each must get exactly one answer.
async fn futures_batch(host: &TestHost) -> Vec<String> {
    let (a, b, c, d) = tokio::join!(
        host.say("!ping"),
        host.say("!ping"),
        host.say("!ping"),
        host.say("!ping")
    );
    [a, b, c, d]
        .into_iter()
        .map(|answers| {
            assert_eq!(answers.len(), 1, "one answer per event: {answers:?}");
            answers.into_iter().next().unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn a_broken_replacement_is_refused_and_the_old_version_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (host, _watcher) = watched_host(dir.path()).await;
    let mut changes = host.dispatcher().registry().changes();

    replace(&dir.path().join("ping.wasm"), b"\0asm\x0d\0\x01\0truncated");
    match next_change(&mut changes).await {
        Change::Refused { file, reason } => {
            assert!(file.ends_with("ping.wasm"), "{}", file.display());
            assert!(reason.contains("not a valid component"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let answer = host.say("!ping").await;
    assert!(answer[0].starts_with("pong ("), "{answer:?}");
}

#[tokio::test]
async fn new_and_deleted_files_are_loaded_and_unloaded() {
    let dir = tempfile::tempdir().unwrap();
    let (host, _watcher) = watched_host(dir.path()).await;
    let mut changes = host.dispatcher().registry().changes();

    replace(
        &dir.path().join("dice.wasm"),
        &std::fs::read(plugin("dice")).unwrap(),
    );
    assert!(
        matches!(next_change(&mut changes).await, Change::Loaded { plugin, .. } if plugin == "dice")
    );
    assert_eq!(host.send("!roll 1 2").await.len(), 2, "reaction and reply");

    std::fs::remove_file(dir.path().join("ping.wasm")).unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Unloaded {
            plugin: "ping".into()
        }
    );
    assert!(
        host.say("!ping").await.is_empty(),
        "nobody answers an unloaded command"
    );
}

/// Waits until `registry` has read `count` files in all.
async fn loads_reach(registry: &wasmbot::runtime::Registry, count: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while registry.loads() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} load(s), expected {count}",
            registry.loads()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Refusals among the changes received so far.
fn refusals(changes: &mut broadcast::Receiver<Change>) -> usize {
    std::iter::from_fn(|| changes.try_recv().ok())
        .filter(|change| matches!(change, Change::Refused { .. }))
        .count()
}

#[tokio::test]
async fn an_idle_folder_is_not_reloaded_and_a_refused_plugin_is_refused_once() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["ping", "dice", "unknown-capability"]);
    let host = TestHost::with_config(config(dir.path()), &[])
        .await
        .unwrap();
    let registry = Arc::clone(host.dispatcher().registry());
    let mut changes = registry.changes();
    // As the binary starts: the watch first, then the first load of the folder, whose
    // reads the watcher sees.
    let _watcher = watch::watch(Arc::clone(&registry), dir.path().to_owned(), QUIET).unwrap();
    registry.load_dir(dir.path()).await.unwrap();
    assert_eq!(registry.loads(), 3);
    assert_eq!(refusals(&mut changes), 1, "the greedy plugin is refused");

    // Idle for many quiet periods: nothing is read again.
    tokio::time::sleep(QUIET * 60).await;
    assert_eq!(registry.loads(), 3, "an idle folder makes no reloads");

    // The refused file written again with the same bytes is read, and refused in silence.
    let greedy = dir.path().join("unknown-capability.wasm");
    std::fs::write(
        &greedy,
        std::fs::read(plugin("unknown-capability")).unwrap(),
    )
    .unwrap();
    loads_reach(&registry, 4).await;
    tokio::time::sleep(QUIET * 10).await;
    assert_eq!(
        refusals(&mut changes),
        0,
        "the same bytes are not refused twice"
    );

    // Changed, it is tried (and refused) again.
    replace(&greedy, b"\0asm\x0d\0\x01\0truncated");
    match next_change(&mut changes).await {
        Change::Refused { file, .. } => assert_eq!(file, greedy),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(host.say("!ping").await.len(), 1, "the others serve on");
}
