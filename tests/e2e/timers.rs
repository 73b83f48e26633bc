//! Timers (`schedule`) through a plugin, on SQLite and Postgres: fired in the conversation
//! they were set in, once across two hosts, late after a restart with their lateness, again
//! and again when repeating, not at all once cancelled, and bounded.

use std::{path::Path, sync::Arc, time::Duration};

use wasmbot::{bindings::types::EventKind, config::Config};
use wasmbot_sdk::testing::{TestHost, texts};
use wasmbot_tests::{config, fresh_postgres, plugin, unique};

/// Long enough for any timer of these tests to have fired on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);

fn schedule_config(url: &str) -> Config {
    let mut config: Config = config(Path::new(""));
    config.database.url = url.to_owned();
    // Tests repeat every second and want a second host to look often.
    config.schedule.min_interval_s = 1;
    config.schedule.poll_s = 1;
    config
}

async fn host_on(config: Config) -> TestHost {
    let store = Arc::new(config.open_store().await.unwrap());
    TestHost::with_store(config, store, &[plugin("schedule-probe")])
        .await
        .unwrap()
}

async fn host(url: &str) -> TestHost {
    host_on(schedule_config(url)).await
}

/// Types `line` as `user` in guild `guild`, channel `channel`; the texts answered.
async fn say(host: &TestHost, guild: &str, user: &str, line: &str) -> String {
    let Some(mut event) = wasmbot::platforms::console::event_for_line(host.dispatcher(), line)
    else {
        return String::new();
    };
    event.guild_id = Some(guild.to_owned());
    event.channel_id = format!("{guild}-channel");
    event.author.id = user.to_owned();
    texts(&host.event(event).await.1).join("\n")
}

/// The timer id in an `ok:ID` answer.
fn id(answer: &str) -> String {
    match answer.strip_prefix("ok:") {
        Some(id) => id.to_owned(),
        None => panic!("no timer set: {answer}"),
    }
}

/// Each database the tests run on: a private SQLite file, and a Postgres database of their
/// own (another test's host would otherwise take this test's timers).
async fn databases(folder: &Path) -> Vec<String> {
    vec![
        format!("sqlite://{}/timers.db?mode=rwc", folder.display()),
        fresh_postgres("timers").await,
    ]
}

#[tokio::test]
async fn a_timer_answers_in_the_conversation_it_was_set_in() {
    let folder = tempfile::tempdir().unwrap();
    for url in databases(folder.path()).await {
        let host = host(&url).await;
        let guild = unique("g");
        let set = say(&host, &guild, "ana", "!after 200 stretch").await;
        let timer = id(&set);
        let fired = host.timer_actions(1, PATIENCE).await;
        assert_eq!(fired.len(), 1, "{url}");
        let (event, action) = &fired[0];
        assert_eq!(event.guild_id.as_deref(), Some(guild.as_str()));
        assert_eq!(event.channel_id, format!("{guild}-channel"));
        assert_eq!(event.author.id, "ana");
        let EventKind::Timer(due) = &event.kind else {
            panic!("not a timer event: {event:?}");
        };
        assert_eq!(due.id, timer);
        assert!(!due.repeats);
        assert!(event.received_ms >= due.due_ms, "{event:?}");
        let text = texts(std::slice::from_ref(action)).join("");
        assert!(text.starts_with("fired:stretch late="), "{text}");
        assert!(text.ends_with("repeats=false from=ana"), "{text}");
        // Delivered: gone from the list once the round that delivered it is recorded.
        let mut listed = say(&host, &guild, "ana", "!timers").await;
        for _ in 0..100 {
            if listed == "ok:" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            listed = say(&host, &guild, "ana", "!timers").await;
        }
        assert_eq!(listed, "ok:", "{url}");
    }
}

#[tokio::test]
async fn two_hosts_deliver_each_firing_once() {
    let folder = tempfile::tempdir().unwrap();
    for url in databases(folder.path()).await {
        let (a, b) = (host(&url).await, host(&url).await);
        let guild = unique("g");
        let mut set = Vec::new();
        for n in 0..20 {
            let host = if n % 2 == 0 { &a } else { &b };
            set.push(id(
                &say(host, &guild, "ana", &format!("!after 300 t{n}")).await
            ));
        }
        let on_a = a.timer_actions(20, PATIENCE).await;
        let on_b = b.timer_actions(20 - on_a.len(), PATIENCE).await;
        // Whatever else comes in a poll period more would be a second delivery.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut fired: Vec<String> = a
            .timer_actions(0, Duration::ZERO)
            .await
            .into_iter()
            .chain(b.timer_actions(0, Duration::ZERO).await)
            .map(|(event, _)| match event.kind {
                EventKind::Timer(timer) => timer.id,
                other => panic!("not a timer: {other:?}"),
            })
            .collect();
        fired.sort();
        set.sort();
        assert_eq!(fired, set, "{url}: a: {}, b: {}", on_a.len(), on_b.len());
    }
}

#[tokio::test]
async fn a_timer_due_while_no_host_ran_fires_late_on_start_with_its_lateness() {
    let folder = tempfile::tempdir().unwrap();
    for url in databases(folder.path()).await {
        let guild = unique("g");
        let first = host(&url).await;
        let timer = id(&say(&first, &guild, "ana", "!after 500 late one").await);
        drop(first);
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let second = host(&url).await;
        let fired = second.timer_actions(1, PATIENCE).await;
        assert_eq!(fired.len(), 1, "{url}");
        let EventKind::Timer(due) = &fired[0].0.kind else {
            panic!("not a timer event");
        };
        assert_eq!(due.id, timer);
        assert_eq!(due.payload, "late one");
        assert!(due.late_ms >= 900, "{url}: late by {} ms only", due.late_ms);
    }
}

#[tokio::test]
async fn a_repeating_timer_fires_again_until_cancelled() {
    let folder = tempfile::tempdir().unwrap();
    for url in databases(folder.path()).await {
        let host = host(&url).await;
        let guild = unique("g");
        let timer = id(&say(&host, &guild, "ana", "!every 1000 tick").await);
        let fired = host.timer_actions(2, PATIENCE).await;
        assert_eq!(fired.len(), 2, "{url}");
        for (event, _) in &fired {
            let EventKind::Timer(due) = &event.kind else {
                panic!("not a timer event");
            };
            assert_eq!(due.id, timer);
            assert!(due.repeats);
        }
        let listed = say(&host, &guild, "ana", "!timers").await;
        assert!(listed.starts_with(&format!("ok:{timer}@")), "{listed}");
        assert_eq!(
            say(&host, &guild, "ana", &format!("!cancel {timer}")).await,
            "ok:true"
        );
        let count = host.timer_actions(0, Duration::ZERO).await.len();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // One firing may have been under way as it was cancelled; none after that.
        let after = host.timer_actions(0, Duration::ZERO).await.len();
        assert!(after <= count + 1, "{url}: {count} then {after}");
        assert_eq!(say(&host, &guild, "ana", "!timers").await, "ok:");
    }
}

#[tokio::test]
async fn a_cancelled_timer_never_fires() {
    let folder = tempfile::tempdir().unwrap();
    for url in databases(folder.path()).await {
        let host = host(&url).await;
        let guild = unique("g");
        let timer = id(&say(&host, &guild, "ana", "!after 1000 never").await);
        let cancel = format!("!cancel {timer}");
        assert_eq!(say(&host, &guild, "ana", &cancel).await, "ok:true");
        assert_eq!(say(&host, &guild, "ana", &cancel).await, "ok:false");
        // A timer set after it fires; the cancelled one, due before, must not have.
        id(&say(&host, &guild, "ana", "!after 1500 later").await);
        let fired = host.timer_actions(1, PATIENCE).await;
        let payloads: Vec<String> = fired
            .iter()
            .map(|(event, _)| match &event.kind {
                EventKind::Timer(timer) => timer.payload.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(payloads, ["later"], "{url}");
    }
}

#[tokio::test]
async fn timers_are_listed_soonest_first_per_guild() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/timers.db?mode=rwc", folder.path().display());
    let host = host(&url).await;
    let (guild, other) = (unique("g"), unique("g"));
    let late = id(&say(&host, &guild, "ana", "!after 600000 b").await);
    let soon = id(&say(&host, &guild, "bo", "!after 300000 a").await);
    id(&say(&host, &other, "ana", "!after 300000 elsewhere").await);
    let listed = say(&host, &guild, "ana", "!timers").await;
    let ids: Vec<&str> = listed
        .trim_start_matches("ok:")
        .split(',')
        .filter_map(|entry| entry.split('@').next())
        .collect();
    assert_eq!(ids, [soon.as_str(), late.as_str()]);
}

#[tokio::test]
async fn limits_and_bad_times_are_refused_and_nothing_is_written() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/timers.db?mode=rwc", folder.path().display());
    let mut config = schedule_config(&url);
    config.schedule.max_per_guild = 2;
    config.schedule.max_payload_bytes = 16;
    config.schedule.min_interval_s = 60;
    let host = host_on(config).await;
    let guild = unique("g");
    let refused = |answer: String, kind: &str, words: &str| {
        assert!(answer.starts_with(&format!("err:{kind}:")), "{answer}");
        assert!(answer.contains(words), "{answer}");
    };
    id(&say(&host, &guild, "ana", "!after 600000 one").await);
    id(&say(&host, &guild, "ana", "!after 600000 two").await);
    refused(
        say(&host, &guild, "ana", "!after 600000 three").await,
        "too-many",
        "2 timers in this guild",
    );
    let other = unique("g");
    refused(
        say(&host, &other, "ana", "!after 600000 seventeen-bytes!!").await,
        "too-many",
        "17 bytes",
    );
    refused(
        say(&host, &other, "ana", "!every 1000 fast").await,
        "invalid",
        "shortest is 60000 ms",
    );
    refused(
        say(&host, &other, "ana", "!cron * * * * * *").await,
        "invalid",
        "1 s apart",
    );
    refused(
        say(&host, &other, "ana", "!cron 61 * * * *").await,
        "invalid",
        "does not parse",
    );
    refused(
        say(&host, &other, "ana", "!at 1000 past").await,
        "invalid",
        "in the past",
    );
    refused(
        say(&host, &other, "ana", "!after 0 now").await,
        "invalid",
        "at least 1 ms",
    );
    // A cron expression within the limit is taken.
    id(&say(&host, &other, "ana", "!cron 0 9 * * MON-FRI").await);
    let listed = say(&host, &other, "ana", "!timers").await;
    assert_eq!(listed.matches('@').count(), 1, "{listed}");
    let listed = say(&host, &guild, "ana", "!timers").await;
    assert_eq!(listed.matches('@').count(), 2, "{listed}");
}

#[tokio::test]
async fn a_timer_in_a_guild_that_switched_its_plugin_off_does_not_fire() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/timers.db?mode=rwc", folder.path().display());
    let host = host(&url).await;
    let (off, on) = (unique("g"), unique("g"));
    id(&say(&host, &off, "ana", "!after 500 muted").await);
    id(&say(&host, &on, "ana", "!after 800 heard").await);
    assert_eq!(
        say(&host, &off, "ana", "!plugin disable schedule-probe").await,
        "schedule-probe is off in this server."
    );
    let fired = host.timer_actions(1, PATIENCE).await;
    // Past both due times: only the guild that kept the plugin on heard it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let fired: Vec<String> = fired
        .into_iter()
        .chain(host.timer_actions(0, Duration::ZERO).await)
        .map(|(event, _)| event.guild_id.unwrap_or_default())
        .collect();
    assert!(fired.iter().all(|guild| *guild == on), "{fired:?}");
    // The skipped one-shot timer is gone, not waiting for the plugin to be on again.
    say(&host, &off, "ana", "!plugin enable schedule-probe").await;
    assert_eq!(say(&host, &off, "ana", "!timers").await, "ok:");
}

#[tokio::test]
async fn an_unloaded_plugin_keeps_its_timers_and_gets_them_late_when_it_is_back() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/timers.db?mode=rwc", folder.path().display());
    let host = host(&url).await;
    let guild = unique("g");
    let timer = id(&say(&host, &guild, "ana", "!after 300 kept").await);
    let registry = host.dispatcher().registry();
    registry
        .unload_file(&plugin("schedule-probe"))
        .await
        .expect("the probe was loaded");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(host.timer_actions(0, Duration::ZERO).await.len(), 0);
    registry
        .load_file(&plugin("schedule-probe"))
        .await
        .expect("the probe loads again");
    // Postponed by one poll period (a second here), then delivered, late.
    let fired = host.timer_actions(1, PATIENCE).await;
    assert_eq!(fired.len(), 1);
    let EventKind::Timer(due) = &fired[0].0.kind else {
        panic!("not a timer event");
    };
    assert_eq!(due.id, timer);
    assert!(due.late_ms >= 1000, "late by {} ms only", due.late_ms);
}

#[tokio::test]
async fn timers_per_plugin_are_bounded_across_guilds() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/timers.db?mode=rwc", folder.path().display());
    let mut config = schedule_config(&url);
    config.schedule.max_per_plugin = 3;
    let host = host_on(config).await;
    for n in 0..3 {
        id(&say(&host, &unique("g"), "ana", &format!("!after 600000 t{n}")).await);
    }
    let refused = say(&host, &unique("g"), "ana", "!after 600000 t3").await;
    assert_eq!(
        refused,
        "err:too-many:the plugin has 3 timers; the limit is 3"
    );
}
