//! Conversation state through a plugin, on SQLite and Postgres: kept, recalled, forgotten,
//! expired, bounded, isolated per conversation, and alive after a host restart.

use std::{path::Path, sync::Arc};

use wasmbot::{
    capabilities::state::{Conversation, StateConfig, StateStore},
    config::Config,
    db::{Database, DatabaseConfig},
};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{config, plugin, postgres_url, unique};

/// A host whose database is the given one (so a second host can share it).
async fn host(url: &str) -> TestHost {
    let mut config: Config = config(Path::new(""));
    config.database.url = url.to_owned();
    let store = Arc::new(
        wasmbot::capabilities::config::ConfigStore::open(&config)
            .await
            .unwrap(),
    );
    TestHost::with_store(config, store, &[plugin("state-probe")])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flow_keeps_its_state_across_a_restart() {
    let folder = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/s.db?mode=rwc", folder.path().display());
    for url in [sqlite, postgres_url()] {
        // The console's chat and user are the same in every run (state is per chat and
        // user, not per guild): start clean.
        let first = host(&url).await;
        let guild = unique("g");
        assert_eq!(first.say_in(&guild, "!forget").await, vec!["ok"]);
        assert_eq!(first.say_in(&guild, "!recall").await, vec!["ok:none"]);
        assert_eq!(
            first.say_in(&guild, "!remember question 2 of 3").await,
            vec!["ok"]
        );
        drop(first);

        let second = host(&url).await;
        assert_eq!(
            second.say_in(&guild, "!recall").await,
            vec!["ok:question 2 of 3"]
        );
        let refused = second.say_in(&guild, "!hoard").await;
        assert!(
            refused[0].starts_with("err:StateError::TooLarge("),
            "{refused:?}"
        );
        assert_eq!(
            second.say_in(&guild, "!recall").await,
            vec!["ok:question 2 of 3"],
            "nothing written"
        );
        assert_eq!(second.say_in(&guild, "!glimpse gone").await, vec!["ok"]);
        assert_eq!(
            second.say_in(&guild, "!recall").await,
            vec!["ok:none"],
            "expired at once"
        );
        assert_eq!(second.say_in(&guild, "!remember again").await, vec!["ok"]);
        assert_eq!(second.say_in(&guild, "!forget").await, vec!["ok"]);
        assert_eq!(second.say_in(&guild, "!recall").await, vec!["ok:none"]);
    }
}

#[tokio::test]
async fn states_are_per_plugin_and_per_conversation_and_expired_ones_are_swept() {
    let db = Database::connect(&DatabaseConfig {
        url: postgres_url(),
        min_connections: 0,
        ..DatabaseConfig::default()
    })
    .unwrap();
    db.migrate().await.unwrap();
    let store = StateStore::new(db, StateConfig::default());
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
    assert!(store.sweep().await.unwrap() >= 1);
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
