//! Misbehaving plugins are contained: each failure fails its own event, is named, logged and
//! counted, and the host and the other plugins go on.

use serde_json::json;
use wasmbot::{config::Config, runtime::Failure};
use wasmbot_sdk::testing::{TestHost, texts};
use wasmbot_tests::{Logs, config, plugin, section};

fn sandbox_config() -> Config {
    let mut config = config(std::path::Path::new("unused"));
    config.runtime.max_log_lines = 10;
    config.plugins.insert(
        "misbehave".into(),
        section(json!({"memory_mib": 16, "wall_ms": 1_000})),
    );
    config
}

async fn host() -> TestHost {
    let files = [plugin("misbehave"), plugin("ping")];
    match TestHost::with_config(sandbox_config(), &files).await {
        Ok(host) => host,
        Err(error) => panic!("test host: {error:#}"),
    }
}

/// Runs `!command` and returns the failure it caused, checking that the user got an apology.
async fn failure_of(host: &TestHost, command: &str) -> Failure {
    let event =
        wasmbot::platforms::console::event_for_line(host.dispatcher(), &format!("!{command}"))
            .expect("a command line is an event");
    let (outcomes, delivered) = host.event(event).await;
    assert_eq!(outcomes.len(), 1, "{command}: one plugin handles it");
    let failure = match &outcomes[0].result {
        Err(failure) => failure.clone(),
        Ok(actions) => panic!("{command} should fail, returned {} actions", actions.len()),
    };
    let replies = texts(&delivered);
    assert_eq!(replies.len(), 1, "{command}: one apology, got {replies:?}");
    assert!(
        replies[0].starts_with(&format!("Sorry, `{command}` failed")),
        "{replies:?}"
    );
    failure
}

/// After any failure, the same plugin and the others still answer.
async fn still_serving(host: &TestHost) {
    assert_eq!(host.say("!fine").await, vec!["fine"]);
    let pong = host.say("!ping").await;
    assert!(pong.len() == 1 && pong[0].starts_with("pong ("), "{pong:?}");
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_cpu_budget() {
    let host = host().await;
    let failure = failure_of(&host, "spin").await;
    assert_eq!(
        failure,
        Failure::CpuBudget(std::time::Duration::from_millis(100))
    );
    still_serving(&host).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let host = host().await;
    assert_eq!(failure_of(&host, "bomb").await, Failure::Memory(16));
    let stats = host.dispatcher().registry().stats("misbehave");
    assert!(
        stats.peak_memory() <= 16 << 20,
        "peak {}",
        stats.peak_memory()
    );
    still_serving(&host).await;
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack_only() {
    let host = host().await;
    assert_eq!(failure_of(&host, "recurse").await, Failure::StackOverflow);
    still_serving(&host).await;
}

#[tokio::test]
async fn a_panic_is_reported_with_its_message() {
    let host = host().await;
    // Twice: the second event must not see the first one's stderr.
    for _ in 0..2 {
        match failure_of(&host, "boom").await {
            Failure::Panic(message) => {
                let count = message
                    .matches("boom: this plugin panics on purpose")
                    .count();
                assert_eq!(count, 1, "{message}");
            }
            other => panic!("expected a panic, got {other:?}"),
        }
    }
    still_serving(&host).await;
}

#[tokio::test]
async fn too_many_actions_or_too_much_text_is_refused() {
    let host = host().await;
    match failure_of(&host, "flood").await {
        Failure::Malformed(reason) => assert!(reason.contains("5000 actions"), "{reason}"),
        other => panic!("expected a malformed result, got {other:?}"),
    }
    match failure_of(&host, "huge").await {
        Failure::Malformed(reason) => assert!(reason.contains("bytes of text"), "{reason}"),
        other => panic!("expected a malformed result, got {other:?}"),
    }
    still_serving(&host).await;
}

#[tokio::test]
async fn a_handler_waiting_forever_hits_the_wall_clock_budget() {
    let host = host().await;
    assert_eq!(
        failure_of(&host, "nap").await,
        Failure::WallClock(std::time::Duration::from_millis(1_000))
    );
    still_serving(&host).await;
}

#[tokio::test]
async fn failures_are_logged_with_the_plugin_and_counted() {
    let (logs, _guard) = Logs::capture();
    let host = host().await;
    failure_of(&host, "spin").await;
    failure_of(&host, "boom").await;
    host.say("!fine").await;
    let lines = logs.lines_with(&["event failed", "plugin=\"misbehave\""]);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].contains("reason=\"cpu_budget\""), "{}", lines[0]);
    assert!(lines[1].contains("reason=\"panic\""), "{}", lines[1]);
    let stats = host.dispatcher().registry().stats("misbehave");
    assert_eq!(stats.events(), 3);
    assert_eq!(stats.failed(), 2);
    assert_eq!(stats.failures().get("cpu_budget"), Some(&1));
}

#[tokio::test]
async fn a_busy_plugin_does_not_hold_up_another_on_the_same_thread() {
    // One runtime thread: the ping can only finish first if the spinning guest yields.
    let host = host().await;
    let finished = std::sync::Mutex::new(Vec::new());
    let run = |line: &'static str| {
        let (host, finished) = (&host, &finished);
        async move {
            let answer = host.say(line).await;
            finished.lock().unwrap().push(line);
            answer
        }
    };
    let (spin, ping) = tokio::join!(run("!spin"), run("!ping"));
    assert!(spin[0].starts_with("Sorry"), "{spin:?}");
    assert!(ping[0].starts_with("pong ("), "{ping:?}");
    assert_eq!(*finished.lock().unwrap(), vec!["!ping", "!spin"]);
}

#[tokio::test]
async fn an_action_for_an_unreachable_platform_is_dropped_with_one_line() {
    let (logs, _guard) = Logs::capture();
    let host = host().await;
    assert_eq!(host.say("!elsewhere").await, vec!["sent elsewhere"]);
    let lines = logs.lines_with(&["action dropped", "no whatsapp connection", "misbehave"]);
    assert_eq!(lines.len(), 1, "{}", logs.text());
}

#[tokio::test]
async fn log_lines_are_attributed_and_capped_per_event() {
    let (logs, _guard) = Logs::capture();
    let host = host().await;
    assert_eq!(host.say("!chatty").await, vec!["said a lot"]);
    let kept = logs.lines_with(&["INFO plugin: line ", "plugin=\"misbehave\""]);
    assert_eq!(kept.len(), 10, "{kept:#?}");
    assert_eq!(logs.lines_with(&["log line limit reached"]).len(), 1);
}
