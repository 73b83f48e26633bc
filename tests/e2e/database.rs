//! The one place database errors are classified and transient ones retried, against the
//! real Postgres and SQLite.

use std::time::Duration;

use sqlx::AssertSqlSafe;
use wasmbot::db::{Database, DatabaseConfig, ErrorClass, RetryPolicy};
use wasmbot_tests::{postgres_url, unique};

fn database(url: &str, max_connections: u32, acquire_ms: u64) -> Database {
    Database::connect(&DatabaseConfig {
        url: url.to_owned(),
        max_connections,
        min_connections: 0,
        acquire_timeout_ms: acquire_ms,
        retry: RetryPolicy {
            tries: 3,
            first_delay_ms: 10,
        },
        ..DatabaseConfig::default()
    })
    .unwrap()
}

/// Runs `sql` (a test's own text) and returns how it failed.
async fn class_of(db: &Database, sql: &str) -> (ErrorClass, u32) {
    let error = db
        .run("test", || {
            sqlx::query(AssertSqlSafe(sql.to_owned())).execute(db.pool())
        })
        .await
        .expect_err(sql);
    (error.class, error.attempts)
}

async fn execute(db: &Database, sql: &str) {
    let query = sqlx::query(AssertSqlSafe(sql.to_owned()));
    query.execute(db.pool()).await.unwrap();
}

#[tokio::test]
async fn postgres_errors_are_classified_and_only_transient_ones_retried() {
    let db = database(&postgres_url(), 2, 1_000);
    let table = unique("t").replace('-', "_");
    execute(&db, &format!("CREATE TABLE {table} (id INT PRIMARY KEY)")).await;
    let insert = format!("INSERT INTO {table} VALUES (1)");
    execute(&db, &insert).await;

    assert_eq!(class_of(&db, &insert).await, (ErrorClass::Constraint, 1));
    assert_eq!(class_of(&db, "SELEC 1").await, (ErrorClass::BadQuery, 1));
    assert_eq!(
        class_of(&db, "SELECT * FROM no_such_table").await,
        (ErrorClass::BadQuery, 1)
    );
    let raise =
        |code: &str| format!("DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{code}'; END $$");
    assert_eq!(
        class_of(&db, &raise("40001")).await,
        (ErrorClass::Serialization, 3)
    );
    assert_eq!(
        class_of(&db, &raise("40P01")).await,
        (ErrorClass::Serialization, 3)
    );
    assert_eq!(
        class_of(&db, &raise("53300")).await,
        (ErrorClass::ConnectionLost, 3)
    );
    assert_eq!(class_of(&db, &raise("XX000")).await, (ErrorClass::Fatal, 1));
    execute(&db, &format!("DROP TABLE {table}")).await;

    let nowhere = database("postgres://postgres@127.0.0.1:1/test", 1, 200);
    let (class, attempts) = class_of(&nowhere, "SELECT 1").await;
    assert!(class.retryable(), "{class}");
    assert_eq!(attempts, 3);
}

#[tokio::test]
async fn sqlite_errors_are_classified() {
    let folder = tempfile::tempdir().unwrap();
    let db = database(
        &format!("sqlite://{}/t.db?mode=rwc", folder.path().display()),
        1,
        1_000,
    );
    execute(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
    execute(&db, "INSERT INTO t VALUES (1)").await;
    assert_eq!(
        class_of(&db, "INSERT INTO t VALUES (1)").await,
        (ErrorClass::Constraint, 1)
    );
    assert_eq!(class_of(&db, "SELEC 1").await, (ErrorClass::BadQuery, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_times_out_and_is_retried() {
    let db = database(&postgres_url(), 1, 100);
    let held = db.pool().acquire().await.unwrap();
    let (class, attempts) = class_of(&db, "SELECT 1").await;
    assert_eq!((class, attempts), (ErrorClass::PoolTimeout, 3));
    drop(held);
    db.run("test", || sqlx::query("SELECT 1").execute(db.pool()))
        .await
        .unwrap();
}

/// The server drops the connection in the middle of a statement: the retry runs it again on
/// a new connection and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_retried_on_a_new_one() {
    let db = database(&postgres_url(), 2, 5_000);
    let side = database(&postgres_url(), 1, 5_000);
    let marker = unique("dropped").replace('-', "_");
    let sleep = format!("SELECT pg_sleep(0.5) AS {marker}");
    let killer = tokio::spawn(async move {
        let find = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE '%AS {marker}' AND pid <> pg_backend_pid()"
        );
        for _ in 0..200 {
            let query = sqlx::query(AssertSqlSafe(find.clone()));
            let killed = query.fetch_all(side.pool()).await.unwrap();
            if !killed.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the statement never showed up in pg_stat_activity");
    });
    let mut attempts = 0;
    db.run("test", || {
        attempts += 1;
        sqlx::query(AssertSqlSafe(sleep.clone())).execute(db.pool())
    })
    .await
    .unwrap();
    killer.await.unwrap();
    assert_eq!(attempts, 2, "one failure, one retry");
}

/// A statement that adds is retried only when it surely did not apply: a rolled-back
/// transaction yes, a connection lost (maybe after the commit) no.
#[tokio::test]
async fn adding_statements_are_retried_only_when_they_surely_did_not_apply() {
    let db = database(&postgres_url(), 2, 1_000);
    let attempts = |code: &'static str| {
        let db = &db;
        async move {
            let raise =
                format!("DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{code}'; END $$");
            let error = db
                .run_additive("test", || {
                    sqlx::query(AssertSqlSafe(raise.clone())).execute(db.pool())
                })
                .await
                .expect_err(code);
            (error.class, error.attempts)
        }
    };
    assert_eq!(attempts("40001").await, (ErrorClass::Serialization, 3));
    assert_eq!(attempts("57P01").await, (ErrorClass::ConnectionLost, 1));
    assert_eq!(attempts("40003").await, (ErrorClass::ConnectionLost, 1));
}

/// The admin API tells a database that may come back (503) from one that will not (500),
/// with the failure's class.
#[tokio::test]
async fn the_admin_api_answers_database_failures_by_class() {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use wasmbot::capabilities::config_store::{ConfigStore, StoreConfig};

    async fn status(url: &str) -> (u16, serde_json::Value) {
        let store = ConfigStore::new(database(url, 1, 300), StoreConfig::default());
        let router = wasmbot::http::admin_router(std::sync::Arc::new(store), "s3cret");
        let request = Request::get("/v1/database")
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    let (code, body) = status(&postgres_url()).await;
    assert_eq!(
        (code, &body["backend"]),
        (200, &serde_json::json!("postgres")),
        "{body}"
    );

    let (code, body) = status("postgres://postgres@127.0.0.1:1/test").await;
    assert_eq!(code, 503, "{body}");
    // Nothing listens: the pool gives up trying to connect within its acquire timeout.
    assert!(
        ["connection-lost", "pool-timeout"].contains(&body["class"].as_str().unwrap()),
        "{body}"
    );
    assert_eq!(body["retryable"], true);

    let (code, body) = status("postgres://postgres@127.0.0.1:5432/wasmbot_no_such_database").await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["class"], "fatal");
    assert_eq!(body["retryable"], false);
}
