//! Plugins' access to the config store through the `config` and `host-config` interfaces:
//! typed values with defaults, namespaces, grants, bad input, and the `settings` plugin
//! whose changes every host sees on the next message.

use std::{path::Path, sync::Arc};

use serde_json::{Value, json};
use wasmbot::{
    capabilities::config_store::{ConfigStore, Scope, StoreConfig},
    config::Config,
    db::{Database, DatabaseConfig},
};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{Logs, config, plugin, postgres_url, redis_url, section, unique};

async fn postgres_store(config: StoreConfig) -> Arc<ConfigStore> {
    let db = Database::connect(&DatabaseConfig {
        url: postgres_url(),
        max_connections: 4,
        min_connections: 0,
        ..DatabaseConfig::default()
    })
    .unwrap();
    db.migrate().await.unwrap();
    Arc::new(ConfigStore::new(db, config))
}

fn test_config() -> Config {
    config(Path::new(""))
}

/// The probe on a private SQLite store and on the shared Postgres.
async fn probes() -> Vec<TestHost> {
    let files = [plugin("config-probe")];
    let sqlite = TestHost::with_config(test_config(), &files).await.unwrap();
    let store = postgres_store(StoreConfig::default()).await;
    let postgres = TestHost::with_store(test_config(), store, &files)
        .await
        .unwrap();
    vec![sqlite, postgres]
}

/// The probe's one answer to `line` in `guild`.
async fn ask(host: &TestHost, guild: &str, line: &str) -> String {
    let replies = host.say_in(guild, line).await;
    assert_eq!(replies.len(), 1, "{line}: {replies:?}");
    replies[0].clone()
}

#[tokio::test]
async fn a_plugin_reads_and_writes_its_typed_settings_with_defaults() {
    for host in probes().await {
        let guild = unique("g");
        let g = |line: &'static str| ask(&host, &guild, line);
        assert_eq!(g("!cfg get guild greeting").await, r#"ok:"hello""#);
        assert_eq!(g("!cfg set guild greeting \"hi there\"").await, "ok:null");
        assert_eq!(g("!cfg get guild greeting").await, r#"ok:"hi there""#);
        assert_eq!(g("!cfg set guild count 3").await, "ok:null");
        assert_eq!(
            g("!cfg set guild ratio 2").await,
            "ok:null",
            "an integer is a number"
        );
        assert_eq!(g("!cfg set guild tags [\"a\",\"b\"]").await, "ok:null");
        assert_eq!(
            g("!cfg set guild extra {\"any\":1}").await,
            "ok:null",
            "null takes anything"
        );
        let doc: Value =
            serde_json::from_str(g("!cfg doc guild").await.strip_prefix("ok:").unwrap()).unwrap();
        assert_eq!(
            doc,
            json!({"greeting": "hi there", "count": 3, "ratio": 2, "tags": ["a", "b"], "extra": {"any": 1}})
        );
        assert_eq!(
            g("!cfg keys guild").await,
            r#"ok:["count","extra","greeting","ratio","tags"]"#
        );
        assert_eq!(g("!cfg del guild greeting").await, "ok:null");
        assert_eq!(
            g("!cfg get guild greeting").await,
            r#"ok:"hello""#,
            "the default again"
        );

        // Every kind of scope, each with its own fields. The console's user is the same in
        // every run: start it clean.
        assert_eq!(g("!cfg del user lang").await, "ok:null");
        assert_eq!(g("!cfg get user lang").await, r#"ok:"en""#);
        assert_eq!(g("!cfg set user lang \"fr\"").await, "ok:null");
        assert_eq!(g("!cfg get user lang").await, r#"ok:"fr""#);
        assert_eq!(g("!cfg set member xp 10").await, "ok:null");
        assert_eq!(g("!cfg get member xp").await, "ok:10");
        assert_eq!(g("!cfg get channel quiet").await, "ok:false");
        assert_eq!(g("!cfg keys global").await, r#"ok:["motd"]"#);

        // What the plugin wrote is in its namespace, as the host sees it.
        let store = host.store().unwrap();
        let scope = Scope::Guild(guild.clone());
        assert_eq!(
            store.get("config-probe", &scope, "count").await.unwrap(),
            json!(3)
        );
        store.delete("config-probe", &scope, "count").await.unwrap();
        assert_eq!(g("!cfg get guild count").await, "ok:0");
    }
}

#[tokio::test]
async fn bad_input_gets_a_typed_error_and_writes_nothing() {
    let mut config = test_config();
    config.config_store.max_value_bytes = 1024;
    let host = TestHost::with_config(config, &[plugin("config-probe")])
        .await
        .unwrap();
    let guild = unique("g");
    let g = |line: String| {
        let host = &host;
        let guild = guild.clone();
        async move { ask(host, &guild, &line).await }
    };
    let refusals = [
        ("!cfg get guild nope", "err:unknown-key:"),
        ("!cfg set guild nope 1", "err:unknown-key:"),
        ("!cfg set guild count \"three\"", "err:invalid-value:"),
        ("!cfg set guild count 1.5", "err:invalid-value:"),
        ("!cfg set guild greeting 7", "err:invalid-value:"),
        ("!cfg get empty greeting", "err:invalid-scope:"),
        ("!cfg set global lang \"fr\"", "err:unknown-key:"),
        // The host's fields are not in the plugin's namespace.
        ("!cfg get guild prefix", "err:unknown-key:"),
        // Fields are declared while describing, not later.
        ("!cfg register guild", "err:denied:"),
    ];
    for (line, expected) in refusals {
        let answer = g(line.to_owned()).await;
        assert!(answer.starts_with(expected), "{line}: {answer}");
    }
    let big = format!("!cfg set guild greeting \"{}\"", "x".repeat(2000));
    let answer = g(big).await;
    assert!(answer.starts_with("err:too-large:"), "{answer}");
    assert!(answer.contains("limit is 1024"), "{answer}");

    let doc = g("!cfg doc guild".to_owned()).await;
    assert_eq!(
        serde_json::from_str::<Value>(doc.strip_prefix("ok:").unwrap()).unwrap(),
        json!({"greeting": "hello", "count": 0, "ratio": 0.5, "tags": [], "extra": null}),
        "nothing was written"
    );
}

#[tokio::test]
async fn config_calls_need_the_grant() {
    let (logs, _guard) = Logs::capture();
    let mut config = test_config();
    config.plugin_defaults.grants = vec!["log".into(), "config".into()];
    let host = TestHost::with_config(config.clone(), &[plugin("config-probe")])
        .await
        .unwrap();
    let guild = unique("g");
    let answer = ask(&host, &guild, "!cfg host-set guild prefix \"?\"").await;
    assert!(answer.starts_with("err:denied:"), "{answer}");
    assert_eq!(
        ask(&host, &guild, "!cfg host-get guild prefix")
            .await
            .split(':')
            .nth(1),
        Some("denied")
    );
    let denials = logs.lines_with(&["denied", "host-config", "config-probe"]);
    assert_eq!(denials.len(), 2, "once per event: {denials:?}");

    // A plugin that asks for config but is not granted it is refused at load.
    config.plugin_defaults.grants = vec!["log".into()];
    let refused = TestHost::with_config(config, &[plugin("config-probe")]).await;
    let error = refused.err().unwrap().to_string();
    assert!(error.contains("\"config\""), "{error}");
}

/// The settings plugin with `host-config` granted, and ping, on a host sharing Postgres and
/// Redis with other hosts.
async fn settings_host() -> TestHost {
    let mut config = test_config();
    config.plugins.insert(
        "settings".into(),
        section(json!({"grants": ["log", "config", "host-config"]})),
    );
    let store = postgres_store(StoreConfig::default()).await;
    let store = Arc::try_unwrap(store)
        .ok()
        .unwrap()
        .with_redis(&redis_url())
        .unwrap();
    let files = [plugin("settings"), plugin("ping")];
    let host = TestHost::with_store(config, Arc::new(store), &files)
        .await
        .unwrap();
    let listening = host.store().unwrap().listening();
    tokio::time::timeout(std::time::Duration::from_secs(30), listening)
        .await
        .expect("subscribed to invalidations");
    host
}

/// Sends `line` until a reply comes back: another host sees a change once its
/// invalidation arrives (a bound so a lost one fails the test; not a speed bar).
async fn eventually_answers(host: &TestHost, guild: &str, line: &str) -> String {
    for _ in 0..500 {
        if let Some(reply) = host.say_in(guild, line).await.pop() {
            return reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{line}: never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_plugin_changes_what_every_host_does_on_the_next_message() {
    let (a, b) = (settings_host().await, settings_host().await);
    let guild = unique("g");
    for host in [&a, &b] {
        assert!(ask(host, &guild, "!ping").await.starts_with("pong ("));
    }

    let answer = ask(&a, &guild, "!prefix ?").await;
    assert_eq!(answer, "Commands now start with `?`, e.g. `?settings`.");
    assert!(
        a.say_in(&guild, "!ping").await.is_empty(),
        "the old prefix is gone at once"
    );
    assert!(ask(&a, &guild, "?ping").await.starts_with("pong ("));
    assert!(
        eventually_answers(&b, &guild, "?ping")
            .await
            .starts_with("pong (")
    );
    assert!(b.say_in(&guild, "!ping").await.is_empty());
    let other = unique("other");
    assert!(
        ask(&a, &other, "!ping").await.starts_with("pong ("),
        "other guilds keep theirs"
    );

    assert_eq!(
        ask(&b, &guild, "?staff add 42").await,
        "<@&42> is staff now."
    );
    assert_eq!(
        ask(&b, &guild, "?staff add 43").await,
        "<@&43> is staff now."
    );
    assert_eq!(
        ask(&b, &guild, "?staff remove 42").await,
        "<@&42> is no longer staff."
    );
    assert_eq!(
        ask(&b, &guild, "?ai-prompt You are a patient librarian.").await,
        "AI role prompt set."
    );
    let shown = "Prefix: `?`\nStaff roles: <@&43>\nAI role prompt: You are a patient librarian.";
    assert_eq!(ask(&b, &guild, "?settings").await, shown);
    let store = a.store().unwrap();
    let scope = Scope::Guild(guild.clone());
    assert_eq!(
        store.get("wasmbot", &scope, "staff-roles").await.unwrap(),
        json!(["43"])
    );

    // A prefix the host cannot use is refused with the reason, and nothing changes.
    let refusal = ask(&a, &guild, "?prefix 12345678901234567").await;
    assert!(refusal.contains("1 to 16 bytes"), "{refusal}");
    assert!(ask(&a, &guild, "?ping").await.starts_with("pong ("));
    assert_eq!(ask(&a, &guild, "?ai-prompt").await, "AI role prompt reset.");
    assert_eq!(
        store
            .get("wasmbot", &scope, "ai-role-prompt")
            .await
            .unwrap(),
        json!("")
    );
}

#[tokio::test]
async fn plugins_built_against_contract_0_1_0_and_0_1_4_still_load_and_answer() {
    let (logs, _guard) = Logs::capture();
    let host = TestHost::load(&[plugin("legacy"), plugin("legacy-0-1-4"), plugin("ping")])
        .await
        .unwrap();
    let snapshot = host.dispatcher().registry().snapshot();
    let contract = |name: &str| match snapshot.plugin(name) {
        Some(plugin) => plugin.contract(),
        None => panic!("{name} is not loaded"),
    };
    assert_eq!(contract("legacy"), "0.1.0");
    assert_eq!(contract("legacy-0-1-4"), "0.1.4");
    assert_eq!(contract("ping"), wasmbot::bindings::CONTRACT_VERSION);
    assert_eq!(host.say("!old").await, vec!["still here (0.1.0)"]);
    assert_eq!(
        logs.lines_with(&["legacy", "answering from 0.1.0"]).len(),
        1
    );
    // 0.1.4's messaging (adapted) acts mid-handler; its state (served by 0.2's) is kept.
    assert_eq!(
        host.say("!old14").await,
        vec!["working on it (0.1.4)", "still here (0.1.4), call 1"]
    );
    assert_eq!(
        host.say("!old14").await,
        vec!["working on it (0.1.4)", "still here (0.1.4), call 2"]
    );
    assert!(host.say("!ping").await[0].starts_with("pong"));
}
