//! Plugin storage through a real plugin, on SQLite and Postgres: notes kept in the plugin's
//! own tables, nothing outside them reachable, results and statements bounded, migrations
//! applied once, and a migration that fails half-way leaving nothing behind.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::{Map, Value, json};
use sqlx::AssertSqlSafe;
use wasmbot::{config::Config, runtime::LoadError};
use wasmbot_sdk::testing::{TestHost, texts};
use wasmbot_tests::{config, plugin, postgres_url, section, unique};

/// A host with `packages` on the database at `url`, `over` as storage-probe's policy.
async fn host(url: &str, packages: &[&str], over: Map<String, Value>) -> TestHost {
    let files: Vec<_> = packages.iter().map(|p| plugin(p)).collect();
    host_with_files(url, &files, over).await
}

async fn host_with_files(url: &str, files: &[PathBuf], over: Map<String, Value>) -> TestHost {
    let mut config: Config = config(Path::new(""));
    config.database.url = url.to_owned();
    config.plugins.insert("storage-probe".into(), over);
    let store = Arc::new(config.open_store().await.unwrap());
    TestHost::with_store(config, store, files).await.unwrap()
}

/// Types `line` as `author` (the probe's notes are per author; the Postgres is shared).
async fn say(host: &TestHost, author: &str, line: &str) -> String {
    let mut event = wasmbot::platforms::console::event_for_line(host.dispatcher(), line)
        .unwrap_or_else(|| panic!("{line} is no command"));
    event.author.id = author.to_owned();
    let answers = texts(&host.event(event).await.1);
    assert_eq!(answers.len(), 1, "{line}: {answers:?}");
    answers[0].clone()
}

fn sqlite_url(folder: &tempfile::TempDir) -> String {
    format!("sqlite://{}/s.db?mode=rwc", folder.path().display())
}

/// Runs `sql` on the host's database directly, as the operator would.
async fn count(host: &TestHost, sql: &str) -> Result<i64, sqlx::Error> {
    let db = host.store().unwrap().database();
    sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_owned()))
        .fetch_one(db.pool())
        .await
}

#[tokio::test]
async fn plugins_keep_data_in_their_own_tables_and_reach_nothing_else() {
    let folder = tempfile::tempdir().unwrap();
    for url in [sqlite_url(&folder), postgres_url()] {
        let host = host(&url, &["storage-probe"], Map::new()).await;
        let ada = unique("ada");
        assert_eq!(say(&host, &ada, "!add first").await, "ok:1");
        assert_eq!(
            say(&host, &ada, "!add it's; DROP TABLE notes").await,
            "ok:2"
        );
        assert_eq!(say(&host, &unique("bob"), "!add other").await, "ok:1");
        assert_eq!(
            say(&host, &ada, "!list").await,
            "ok:first|it's; DROP TABLE notes",
            "values travel as parameters"
        );
        // The rows are in the plugin's namespace, where the operator finds them.
        let stored = format!("SELECT count(*) FROM \"storage-probe.notes\" WHERE author = '{ada}'");
        assert_eq!(count(&host, &stored).await.unwrap(), 2);

        // Another table of the same name is the plugin's own, which does not exist.
        let answer = say(&host, &ada, "!sql SELECT count(*) FROM config_entries").await;
        assert!(
            answer.starts_with("err:StorageError::Database(DatabaseError { class: ErrorClass::BadQuery, retryable: false"),
            "{answer}"
        );
        for escape in [
            "SELECT * FROM public.config_entries",
            "SELECT * FROM main.config_entries",
            "SELECT * FROM \"survey.answers\"",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT query_to_xml('select 1', true, true, '')",
            "DELETE FROM notes; DELETE FROM notes",
            "DROP TABLE notes",
            "PRAGMA table_list",
        ] {
            let answer = say(&host, &ada, &format!("!sql {escape}")).await;
            assert!(
                answer.starts_with("err:StorageError::Forbidden("),
                "{escape}: {answer}"
            );
        }
        let answer = say(&host, &ada, "!sql SELECT * FROM notes WHERE body = 'first'").await;
        assert!(answer.contains("parameters"), "{answer}");
        assert_eq!(count(&host, &stored).await.unwrap(), 2, "nothing deleted");
    }
}

#[tokio::test]
async fn results_over_the_limits_and_wrong_parameters_are_typed_errors() {
    let folder = tempfile::tempdir().unwrap();
    for url in [sqlite_url(&folder), postgres_url()] {
        let limits = section(json!({"max_rows": 3, "max_result_bytes": 100}));
        let host = host(&url, &["storage-probe"], limits).await;
        let ada = unique("ada");
        for n in 1..=3 {
            say(&host, &ada, &format!("!add note {n}")).await;
        }
        assert_eq!(say(&host, &ada, "!list").await, "ok:note 1|note 2|note 3");
        say(&host, &ada, "!add note 4").await;
        let answer = say(&host, &ada, "!list").await;
        assert!(
            answer.starts_with("err:StorageError::TooLarge(") && answer.contains("3 rows"),
            "{answer}"
        );
        let bob = unique("bob");
        say(&host, &bob, &format!("!add {}", "x".repeat(120))).await;
        let answer = say(&host, &bob, "!list").await;
        assert!(answer.contains("100 bytes"), "{answer}");
    }
    // Postgres checks types (SQLite compares anything with anything).
    let host = host(&postgres_url(), &["storage-probe"], Map::new()).await;
    let answer = say(&host, &unique("ada"), "!count-longer abc").await;
    assert!(
        answer.starts_with("err:StorageError::Database(DatabaseError { class: ErrorClass::BadQuery, retryable: false"),
        "{answer}"
    );
    // A type the driver cannot read is the statement's fault too.
    let answer = say(&host, &unique("ada"), "!sql SELECT CAST(1 AS NUMERIC)").await;
    assert!(
        answer
            .starts_with("err:StorageError::Database(DatabaseError { class: ErrorClass::BadQuery"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_statement_over_its_timeout_is_cancelled() {
    let slow = section(json!({"statement_timeout_ms": 300}));
    let host = host(&postgres_url(), &["storage-probe"], slow).await;
    let ten = "(VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10))";
    let joins: Vec<String> = (0..10).map(|n| format!("{ten} AS t{n}(x)")).collect();
    let line = format!("!sql SELECT count(*) FROM {}", joins.join(", "));
    let ada = unique("ada");
    let answer = say(&host, &ada, &line).await;
    assert!(answer.starts_with("err:StorageError::Timeout("), "{answer}");
    // The connection is usable again at once.
    assert_eq!(say(&host, &ada, "!add after").await, "ok:1");
}

#[tokio::test]
async fn migrations_apply_once_and_a_failed_one_leaves_the_previous_version() {
    let folder = tempfile::tempdir().unwrap();
    for url in [sqlite_url(&folder), postgres_url()] {
        let first = host(&url, &["storage-probe"], Map::new()).await;
        let ada = unique("ada");
        assert_eq!(say(&first, &ada, "!add kept").await, "ok:1");
        // A second host (a restart, another machine) finds the migration applied.
        let plugins = tempfile::tempdir().unwrap();
        let file = plugins.path().join("storage-probe.wasm");
        std::fs::copy(plugin("storage-probe"), &file).unwrap();
        let second = host_with_files(&url, std::slice::from_ref(&file), Map::new()).await;
        assert_eq!(say(&second, &ada, "!list").await, "ok:kept");
        let applied = "SELECT count(*) FROM plugin_migrations WHERE plugin = 'storage-probe'";
        assert_eq!(count(&second, applied).await.unwrap(), 1);

        let registry = second.dispatcher().registry();
        // Its next version's second migration fails half-way.
        std::fs::copy(plugin("storage-broken"), &file).unwrap();
        let error = registry
            .load_file(&file)
            .await
            .expect_err("migration 2 fails");
        assert!(
            matches!(&error, LoadError::Migration { plugin, .. } if plugin == "storage-probe"),
            "{error}"
        );
        assert!(error.to_string().contains("migration 2"), "{error}");
        assert_eq!(say(&second, &ada, "!list").await, "ok:kept", "0.1.0 serves");
        let version = registry
            .snapshot()
            .plugin("storage-probe")
            .unwrap()
            .manifest()
            .version
            .clone();
        assert_eq!(version, "0.1.0");
        assert_eq!(count(&second, applied).await.unwrap(), 1);
        let extra = count(&second, "SELECT count(*) FROM \"storage-probe.extra\"").await;
        assert!(extra.is_err(), "the half-applied migration was rolled back");
    }
}

#[tokio::test]
async fn a_migration_changed_after_it_was_applied_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let url = sqlite_url(&folder);
    let first = host(&url, &["storage-probe"], Map::new()).await;
    count(
        &first,
        "UPDATE plugin_migrations SET checksum = 'other' WHERE plugin = 'storage-probe' RETURNING 0",
    )
    .await
    .unwrap();
    let mut config: Config = config(Path::new(""));
    config.database.url = url;
    let store = Arc::new(config.open_store().await.unwrap());
    let refused = TestHost::with_store(config, store, &[plugin("storage-probe")]).await;
    let error = refused.err().expect("refused").to_string();
    assert!(error.contains("migration 1 changed"), "{error}");
}
