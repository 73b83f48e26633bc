//! The one database pool of a host, shared by every capability and plugin: SQLite by
//! default (nothing to install), Postgres when `DATABASE_URL` says so. Migrations live in
//! `migrations/<backend>/` and are embedded in the binary.

pub mod admin;
mod health;
pub mod kept;
mod retry;

pub use health::Health;
pub use retry::{DbError, ErrorClass, RetryPolicy};

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::{
    AnyPool, Connection,
    any::{AnyPoolOptions, install_default_drivers},
    migrate::Migrator,
};

/// A pooled connection idle for longer is pinged before it is handed out.
const IDLE_CHECK: Duration = Duration::from_secs(1);

static SQLITE: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("../migrations/postgres");

/// The `[database]` section. `DATABASE_URL` overrides `url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    pub url: String,
    /// Connections the pool may open.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// How long an unused connection stays open, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Retries of transient failures (`[database.retry]`).
    pub retry: RetryPolicy,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://.wasmbot/wasmbot.db?mode=rwc".to_owned(),
            max_connections: 10,
            min_connections: 2,
            acquire_timeout_ms: 20_000,
            idle_timeout_ms: 30_000,
            retry: RetryPolicy::default(),
        }
    }
}

/// Which database the URL names; SQL differs little, migrations per backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Production.
    Postgres,
}

/// The pool, created once per process.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    retry: RetryPolicy,
    /// What every call through the pool last found, shared by the clones.
    health: Arc<Health>,
}

impl Database {
    /// Opens the pool (creating a SQLite file's folder when needed). Connections are
    /// made lazily up to `min_connections`; an unreachable server fails the first query,
    /// not the start-up, so the bot can serve cached values.
    pub fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        install_default_drivers();
        let backend = backend(&config.url)?;
        if backend == Backend::Sqlite {
            create_sqlite_folder(&config.url)?;
        }
        let health = Arc::<Health>::default();
        let (watched, released) = (Arc::clone(&health), Arc::clone(&health));
        let mut options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            .idle_timeout(Duration::from_millis(config.idle_timeout_ms))
            // sqlx pings every connection it hands out: a round trip before each call. One
            // used within the last second is taken as alive, unless the database has failed
            // since (or is known to be down): then it is checked, and a dead one is closed
            // and another taken, quietly (the outage has its one line), rather than fail
            // its call.
            .test_before_acquire(false)
            .before_acquire(move |connection, meta| {
                let idle_since = Instant::now().checked_sub(meta.idle_for);
                let check = meta.idle_for > IDLE_CHECK
                    || watched.is_down()
                    || idle_since.is_none_or(|since| watched.failed_after(since));
                Box::pin(async move { Ok(!check || connection.ping().await.is_ok()) })
            })
            // Coming back while the database is known to be down, a connection is closed
            // rather than pinged (the ping would fail with a warning of its own).
            .after_release(move |_, _| {
                let keep = !released.is_down();
                Box::pin(async move { Ok(keep) })
            })
            // sqlx warns of every acquire slower than 2 s: when the database comes back,
            // that is one line per call that waited (hundreds a second), while the outage
            // has been logged once already. At info, other crates' level hides it unless
            // `RUST_LOG=sqlx=info` asks for it.
            .acquire_slow_level(log::LevelFilter::Info);
        if backend == Backend::Sqlite {
            // SQLite's default rollback journal syncs several times per commit and makes
            // readers wait for writers; with a write-ahead log a commit is one append, and
            // NORMAL syncs it at checkpoints: a commit survives the process crashing (not
            // the machine losing power, which is what Postgres is for).
            options = options.after_connect(|connection, _| {
                Box::pin(async move {
                    sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")
                        .execute(connection)
                        .await
                        .map(|_| ())
                })
            });
        }
        let pool = options
            .connect_lazy(&config.url)
            .with_context(|| format!("database url {}", redact(&config.url)))?;
        Ok(Self {
            pool,
            backend,
            retry: config.retry,
            health,
        })
    }

    /// Applies the embedded migrations not applied yet, in order, once.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        };
        migrator
            .run(&self.pool)
            .await
            .context("applying database migrations")
    }

    /// The pool, for the capabilities' queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether the database can be reached, as the calls through the pool last found.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether the database is known to be down: callers that must answer fast give up
    /// at once rather than wait out the pool's timeouts.
    pub fn is_down(&self) -> bool {
        self.health.is_down()
    }

    /// Runs one call through the retry policy: transient failures are tried again with
    /// backoff, the rest fail at once; the error says which class it was.
    pub async fn run<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        self.run_policy(self.retry, what, call, ErrorClass::retryable)
            .await
    }

    /// [`Database::run`] for a statement that adds (not idempotent): retried only when it
    /// surely did not take effect.
    pub async fn run_additive<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        self.run_policy(self.retry, what, call, ErrorClass::surely_not_applied)
            .await
    }

    /// Runs one call once, its error classified: for callers with a fallback of their own,
    /// or on a plugin's call, which must not wait out a backoff.
    pub async fn run_once<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let once = RetryPolicy {
            tries: 1,
            ..self.retry
        };
        self.run_policy(once, what, call, ErrorClass::retryable)
            .await
    }

    /// Runs one call once and waits for it at most `deadline` (the pool's acquire timeout
    /// included): for a caller that must answer soon, such as a webhook that would rather
    /// be delivered again than keep the sender waiting. A call cut short may still have
    /// taken effect; its error is then a lost connection (see [`DbError::deadline`]).
    pub async fn run_within<T, F, Fut>(
        &self,
        what: &'static str,
        deadline: Duration,
        call: F,
    ) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let epoch = self.health.epoch();
        match tokio::time::timeout(deadline, self.run_once(what, call)).await {
            Ok(result) => result,
            Err(_) => self.note(epoch, Err(DbError::deadline(what, deadline))),
        }
    }

    /// Tells the pool's health that a call made on the pool without [`Database::run`] (a
    /// transaction) succeeded: an outage ends.
    pub fn note_success(&self) {
        self.health.succeeded();
    }

    /// Tells the pool's health that a call made on the pool without [`Database::run`],
    /// started at `epoch` ([`Health::epoch`]), failed, and hands the error back: the first
    /// failure of an outage is logged.
    pub fn note_failure(&self, epoch: u64, error: DbError) -> DbError {
        self.health.failed(epoch, error.class, &error, &self.pool);
        error
    }

    fn note<T>(&self, epoch: u64, result: Result<T, DbError>) -> Result<T, DbError> {
        if result.is_ok() {
            self.note_success();
        }
        result.map_err(|error| self.note_failure(epoch, error))
    }

    async fn run_policy<T, F, Fut>(
        &self,
        policy: RetryPolicy,
        what: &'static str,
        call: F,
        again: fn(ErrorClass) -> bool,
    ) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let epoch = self.health.epoch();
        let before_retry = |what: &'static str, class: ErrorClass, error: &sqlx::Error, wait| {
            if class.is_outage() {
                // The first failure of an outage is logged by the health, once; the
                // retries through it are not news.
                self.health.failed(epoch, class, error, &self.pool);
                tracing::debug!(
                    what,
                    class = class.name(),
                    "database call failed, retrying in {wait:?}: {error}"
                );
            } else {
                tracing::warn!(
                    what,
                    class = class.name(),
                    "database call failed, retrying in {wait:?}: {error}"
                );
            }
        };
        let result = policy.run_if(what, call, again, &before_retry).await;
        self.note(epoch, result)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

fn backend(url: &str) -> anyhow::Result<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        anyhow::bail!("database url {}: use sqlite:// or postgres://", redact(url))
    }
}

fn create_sqlite_folder(url: &str) -> anyhow::Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    match std::path::Path::new(path).parent() {
        Some(folder) if !folder.as_os_str().is_empty() && path != ":memory:" => {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("creating {}", folder.display()))
        }
        _ => Ok(()),
    }
}

/// Milliseconds since the Unix epoch, as the tables store times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_backend_and_hide_passwords() {
        assert_eq!(backend("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert!(backend("mysql://h").is_err());
        assert_eq!(
            redact("postgres://bob:secret@h/db"),
            "postgres://bob:***@h/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
