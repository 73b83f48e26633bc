//! Conversation state through a plugin, on SQLite and Postgres: kept, recalled, forgotten,
//! expired, bounded, isolated per conversation, and alive after a host restart.

use std::{path::Path, sync::Arc};

use serde_json::json;
use wasmbot::{
    capabilities::state::{Conversation, StateConfig, StateStore},
    config::Config,
    db::{Database, DatabaseConfig},
};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{config, plugin, postgres_url, redis_url, section, unique};

/// Types `line` in a chat of its own (state is per chat and user; the console's chat is the
/// same in every run and the Postgres is shared).
async fn say(host: &TestHost, chat: &str, line: &str) -> Vec<String> {
    let Some(mut event) = wasmbot::platforms::console::event_for_line(host.dispatcher(), line)
    else {
        return Vec::new();
    };
    event.guild_id = Some(chat.to_owned());
    event.channel_id = chat.to_owned();
    wasmbot_sdk::testing::texts(&host.event(event).await.1)
}

/// A host with `package` whose database is the given one (so a second host can share it).
async fn host_with(url: &str, package: &str) -> TestHost {
    let mut config: Config = config(Path::new(""));
    config.database.url = url.to_owned();
    let store = Arc::new(config.open_store().await.unwrap());
    TestHost::with_store(config, store, &[plugin(package)])
        .await
        .unwrap()
}

/// The state probe on the given database.
async fn host(url: &str) -> TestHost {
    host_with(url, "state-probe").await
}

#[tokio::test]
async fn a_flow_keeps_its_state_across_a_restart() {
    let folder = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/s.db?mode=rwc", folder.path().display());
    for url in [sqlite, postgres_url()] {
        let first = host(&url).await;
        let guild = unique("g");
        assert_eq!(say(&first, &guild, "!forget").await, vec!["ok"]);
        assert_eq!(say(&first, &guild, "!recall").await, vec!["ok:none"]);
        assert_eq!(
            say(&first, &guild, "!remember question 2 of 3").await,
            vec!["ok"]
        );
        drop(first);

        let second = host(&url).await;
        assert_eq!(
            say(&second, &guild, "!recall").await,
            vec!["ok:question 2 of 3"]
        );
        let refused = say(&second, &guild, "!hoard").await;
        assert!(
            refused[0].starts_with("err:StateError::TooLarge("),
            "{refused:?}"
        );
        assert_eq!(
            say(&second, &guild, "!recall").await,
            vec!["ok:question 2 of 3"],
            "nothing written"
        );
        assert_eq!(say(&second, &guild, "!glimpse gone").await, vec!["ok"]);
        assert_eq!(
            say(&second, &guild, "!recall").await,
            vec!["ok:none"],
            "expired at once"
        );
        assert_eq!(say(&second, &guild, "!remember again").await, vec!["ok"]);
        assert_eq!(say(&second, &guild, "!forget").await, vec!["ok"]);
        assert_eq!(say(&second, &guild, "!recall").await, vec!["ok:none"]);

        // The history keeps the last five messages (the default), oldest first.
        for n in 1..=6 {
            say(&second, &guild, &format!("!say m{n}")).await;
        }
        assert_eq!(
            say(&second, &guild, "!say m7").await,
            vec!["ok:m3|m4|m5|m6|m7"]
        );
        assert_eq!(say(&second, &guild, "!forget").await, vec!["ok"]);
        assert_eq!(say(&second, &guild, "!say again").await, vec!["ok:again"]);
        assert_eq!(say(&second, &guild, "!forget").await, vec!["ok"]);
    }
}

#[tokio::test]
async fn the_operator_sets_how_much_history_a_plugin_keeps() {
    let mut config: Config = config(Path::new(""));
    config
        .plugins
        .insert("state-probe".into(), section(json!({"history_turns": 2})));
    let host = TestHost::with_config(config, &[plugin("state-probe")])
        .await
        .unwrap();
    let guild = unique("g");
    for line in ["!say a", "!say b"] {
        say(&host, &guild, line).await;
    }
    assert_eq!(say(&host, &guild, "!say c").await, vec!["ok:b|c"]);
}

/// The shared Postgres, migrated.
async fn postgres() -> Database {
    let db = Database::connect(&DatabaseConfig {
        url: postgres_url(),
        min_connections: 0,
        ..DatabaseConfig::default()
    })
    .unwrap();
    db.migrate().await.unwrap();
    db
}

#[tokio::test]
async fn states_are_per_plugin_and_per_conversation_and_expired_ones_are_swept() {
    let db = postgres().await;
    let store_db = db.clone();
    let store = StateStore::new(db, StateConfig::default(), None);
    let user = unique("u");
    let conversation = |plugin: &str, chat: &str| Conversation {
        plugin: plugin.to_owned(),
        platform: "whatsapp".to_owned(),
        chat: chat.to_owned(),
        user: user.clone(),
    };
    let day = std::time::Duration::from_secs(86_400);
    store
        .set(&conversation("survey", "c1"), "step 2", day)
        .await
        .unwrap();
    assert_eq!(
        store
            .get(&conversation("survey", "c1"))
            .await
            .unwrap()
            .as_deref(),
        Some("step 2")
    );
    assert_eq!(
        store.get(&conversation("other", "c1")).await.unwrap(),
        None,
        "another plugin's"
    );
    assert_eq!(
        store.get(&conversation("survey", "c2")).await.unwrap(),
        None,
        "another chat's"
    );

    store
        .set(
            &conversation("survey", "c3"),
            "stale",
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    store.sweep().await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM flow_state WHERE user_id = $1 AND chat_id = 'c3'")
            .bind(&user)
            .fetch_one(store_db.pool())
            .await
            .unwrap();
    assert_eq!(left, 0, "the expired state was swept");
    assert_eq!(
        store
            .get(&conversation("survey", "c1"))
            .await
            .unwrap()
            .as_deref(),
        Some("step 2")
    );
    store.clear(&conversation("survey", "c1")).await.unwrap();
}

/// With Redis, two hosts read a conversation's state from their shared copy: a write on one
/// is what the other reads next, a clear leaves "none", and the database is not asked (a
/// row changed behind the hosts' backs is not seen until the copy expires, at most 5
/// minutes: the same bound holds for a write a host could not copy to Redis). Redis down:
/// the database answers.
#[tokio::test]
async fn state_is_cached_in_redis_and_hosts_see_each_others_writes() {
    let db = postgres().await;
    let redis = || Some(wasmbot::redis::Redis::new(&redis_url()).unwrap());
    let one = StateStore::new(db.clone(), StateConfig::default(), redis());
    let two = StateStore::new(db.clone(), StateConfig::default(), redis());
    let conversation = Conversation {
        plugin: "survey".into(),
        platform: "whatsapp".into(),
        chat: unique("chat"),
        user: unique("u"),
    };
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(two.get(&conversation).await.unwrap(), None);
    one.set(&conversation, "step 1", hour).await.unwrap();
    assert_eq!(
        two.get(&conversation).await.unwrap().as_deref(),
        Some("step 1")
    );
    one.set(&conversation, "step 2", hour).await.unwrap();
    assert_eq!(
        two.get(&conversation).await.unwrap().as_deref(),
        Some("step 2")
    );

    // Served from the copy: the database's row is not read.
    sqlx::query("UPDATE flow_state SET value = 'changed behind' WHERE chat_id = $1")
        .bind(&conversation.chat)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(
        two.get(&conversation).await.unwrap().as_deref(),
        Some("step 2")
    );

    two.clear(&conversation).await.unwrap();
    assert_eq!(one.get(&conversation).await.unwrap(), None);

    let unreachable = Some(wasmbot::redis::Redis::new("redis://127.0.0.1:1").unwrap());
    let down = StateStore::new(db, StateConfig::default(), unreachable);
    down.set(&conversation, "step 3", hour).await.unwrap();
    assert_eq!(
        down.get(&conversation).await.unwrap().as_deref(),
        Some("step 3")
    );
    down.clear(&conversation).await.unwrap();
    assert!(down.get(&conversation).await.unwrap().is_none());
}

/// One pool per process, whatever the load: 200 events at once, each writing and reading
/// its state or its plugin's own table, never hold more connections than the pool's limit
/// (Postgres counts them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_share_one_bounded_pool() {
    let name = unique("pool").replace('-', "_");
    let base = postgres_url();
    let joint = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{joint}application_name={name}");
    let mut config: Config = config(Path::new(""));
    config.database.url = url;
    config.database.max_connections = 4;
    config.database.min_connections = 0;
    let store = Arc::new(config.open_store().await.unwrap());
    let host = Arc::new(
        TestHost::with_store(
            config,
            store,
            &[plugin("state-probe"), plugin("storage-probe")],
        )
        .await
        .unwrap(),
    );
    let watcher = Database::connect(&DatabaseConfig {
        url: postgres_url(),
        max_connections: 1,
        min_connections: 0,
        ..DatabaseConfig::default()
    })
    .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        let count =
            format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'");
        tokio::spawn(async move {
            let mut most = 0_i64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count.clone()));
                most = most.max(query.fetch_one(watcher.pool()).await.unwrap());
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            most
        })
    };
    let events: Vec<_> = (0..200)
        .map(|n| {
            let host = Arc::clone(&host);
            tokio::spawn(async move {
                let guild = format!("g{n}");
                let (line, answer) = if n % 2 == 0 {
                    (format!("!remember item {n}"), "ok")
                } else {
                    (format!("!add item {n}"), "ok:1")
                };
                let mut event =
                    wasmbot::platforms::console::event_for_line(host.dispatcher(), &line).unwrap();
                event.guild_id = Some(guild);
                event.channel_id = format!("{}-c{n}", unique("pool"));
                event.author.id = event.channel_id.clone();
                let (_, actions) = host.event(event).await;
                assert_eq!(wasmbot_sdk::testing::texts(&actions), vec![answer]);
            })
        })
        .collect();
    for event in events {
        event.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.await.unwrap();
    assert!(most >= 1, "the sampler saw the pool at work");
    assert!(most <= 4, "{most} connections for a pool of 4");
}

/// The survey plugin: a flow across messages that a restart in the middle does not lose,
/// its answers counted without a write per message.
#[tokio::test]
async fn the_survey_continues_after_a_restart_and_counts_answers() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.db?mode=rwc", folder.path().display());
    let first = host_with(&url, "survey").await;
    assert!(first.say("hello").await.is_empty(), "no survey, no answer");
    assert_eq!(first.say("!survey").await, vec!["1/3 What is your name?"]);
    assert_eq!(
        first.say("Ada").await,
        vec!["2/3 Which city do you live in?"]
    );
    first.counters().unwrap().flush_all().await;
    drop(first);

    let second = host_with(&url, "survey").await;
    assert_eq!(
        second.say("London").await,
        vec!["3/3 How did you hear about us?"]
    );
    assert_eq!(
        second.say("a friend").await,
        vec!["Thank you! You said: Ada / London / a friend"]
    );
    assert!(
        second.say("anything else").await.is_empty(),
        "the survey is over"
    );
    assert_eq!(
        second.say("!survey-results").await,
        vec!["1 response so far. Cities: London (1)"]
    );
    let counters = second.counters().unwrap();
    counters.flush_all().await;
    let key = wasmbot::capabilities::counters::CounterKey {
        plugin: "survey".into(),
        counter: "answers".into(),
        subject: wasmbot::platforms::console::USER.into(),
    };
    assert_eq!(
        counters.stored(&key).await.unwrap(),
        Some((3, "survey".into()))
    );
}
