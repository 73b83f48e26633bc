//! Plugin storage: each plugin's own tables in the host's one pool.
//!
//! Statements are checked and rewritten into the plugin's namespace ([`sql`]), run with the
//! plugin's parameters bound (never spliced into the text), under its statement timeout
//! and row / byte limits; several statements, or one that writes and returns rows, run in
//! one transaction. Migrations ([`migrate`]) create the tables when the plugin loads.
//!
//! A call waits for one round trip to the database and little else: checked statements
//! are cached by plugin and text, the connections are kept between calls (`db::kept`:
//! no pool pings) with the statement timeout set on their session (Postgres cancels a
//! statement that runs over), and the server's prepared statements are cached per
//! connection by sqlx.

mod interface;
mod migrate;
pub mod sql;

pub use interface::Context;
pub(crate) use interface::link;
pub use migrate::{Migration, MigrationError};

use std::{sync::Arc, time::Duration};

use futures::{TryStreamExt, future::BoxFuture};
use serde::{Deserialize, Serialize};
use sqlx::{
    Any, AnyConnection, AssertSqlSafe, Column, Connection, Row, ValueRef,
    any::{AnyArguments, AnyRow, AnyTypeInfoKind},
    query::Query,
};

use crate::capabilities::{Build, Lifecycle, Sections, config_store::ConfigStore};
use crate::db::{Backend, Database, DbError, kept::Kept};
use crate::telemetry::memory::Relief;
use sql::{Checked, SqlError};

/// A plugin's storage limits (keys of `[plugin_defaults]` and `[plugins.NAME]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// How long one storage call may run, in milliseconds.
    pub statement_timeout_ms: u64,
    /// Rows one storage query may return.
    pub max_rows: u32,
    /// Bytes one storage query may return.
    pub max_result_bytes: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            statement_timeout_ms: 2_000,
            max_rows: 1_000,
            max_result_bytes: 1 << 20,
        }
    }
}

impl Policy {
    pub(crate) fn validate(&self, section: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.statement_timeout_ms > 0 && self.max_rows > 0 && self.max_result_bytes > 0,
            "{section}.statement_timeout_ms, max_rows and max_result_bytes must be at least 1"
        );
        Ok(())
    }

    /// What the plugin's storage calls may take.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: Duration::from_millis(self.statement_timeout_ms),
            max_rows: usize::try_from(self.max_rows).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(self.max_result_bytes).unwrap_or(usize::MAX),
        }
    }
}

impl Relief for Storage {
    fn shrink(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            self.checked.invalidate_all();
            self.kept.release();
        })
    }
}

impl Lifecycle for Storage {}

impl Build for Storage {
    fn build(store: &Arc<ConfigStore>, _: Sections<'_>) -> Arc<Self> {
        Arc::new(Storage::new(store.database().clone()))
    }
}

/// What one plugin's statements may take, from its [`Policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// How long one call (all its statements) may run.
    pub timeout: Duration,
    /// Rows a query may return.
    pub max_rows: usize,
    /// Bytes a query may return (text and blobs by length, numbers as 8).
    pub max_bytes: usize,
}

/// A value bound to a statement or read from a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// An integer (booleans read as 0 / 1).
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    fn size(&self) -> usize {
        match self {
            Value::Text(text) => text.len(),
            Value::Blob(bytes) => bytes.len(),
            Value::Null | Value::Integer(_) | Value::Real(_) => 8,
        }
    }
}

/// A query's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// The column names, in order.
    pub columns: Vec<String>,
    /// The rows' values, in the columns' order.
    pub rows: Vec<Vec<Value>>,
}

/// Why a storage call failed. Nothing was written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The statement was refused before it ran.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// The result is over the plugin's limits.
    #[error("{0}")]
    TooLarge(String),
    /// The call ran over the plugin's statement timeout.
    #[error("the statement ran over its {0:?} timeout and was cancelled")]
    Timeout(Duration),
    /// The database refused the statement or could not be reached.
    #[error(transparent)]
    Database(#[from] DbError),
}

/// What a call returned.
enum Outcome {
    Rows(Rows),
    Counts(Vec<u64>),
}

/// One statement of a call, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The plugin's SQL.
    pub sql: String,
    /// Its parameters, `$1` first.
    pub params: Vec<Value>,
}

/// The plugins' storage, on the host's pool.
pub struct Storage {
    db: Database,
    /// Connections kept between calls.
    kept: Kept,
    /// Checked statements by plugin, text and NULL parameters.
    checked: moka::future::Cache<CheckKey, Arc<Checked>>,
}

/// What a statement's check depends on (the backend is the storage's own).
type CheckKey = (String, String, Vec<bool>);

/// Bytes of statements' texts the check cache holds.
const CHECKED_BYTES: u64 = 4 << 20;

/// Postgres' SQLSTATE for a statement cancelled by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

impl Storage {
    /// Storage on `db`, whose migrations (the `plugin_migrations` table) have run.
    pub fn new(db: Database) -> Self {
        // As many as the pool keeps open anyway, so an idle bot holds no more.
        let kept = Kept::new(
            db.pool().clone(),
            db.pool().options().get_min_connections().max(1) as usize,
        );
        let checked = moka::future::Cache::builder()
            .max_capacity(CHECKED_BYTES)
            .weigher(|(plugin, sql, _): &CheckKey, checked: &Arc<Checked>| {
                u32::try_from(plugin.len() + sql.len() + checked.sql.len()).unwrap_or(u32::MAX)
            })
            .build();
        Self { db, kept, checked }
    }

    /// The database behind it.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Runs one query of `plugin` and returns its rows, within `limits`.
    pub async fn query(
        &self,
        plugin: &str,
        limits: &Limits,
        statement: Statement,
    ) -> Result<Rows, StorageError> {
        let checked = self.prepare(plugin, vec![statement]).await?;
        match self.run(limits, "storage.query", checked, true).await? {
            Outcome::Rows(rows) => Ok(rows),
            Outcome::Counts(_) => Ok(Rows::default()),
        }
    }

    /// Runs statements of `plugin` in one transaction and returns each one's changed-row
    /// count.
    pub async fn execute(
        &self,
        plugin: &str,
        limits: &Limits,
        statements: Vec<Statement>,
    ) -> Result<Vec<u64>, StorageError> {
        let checked = self.prepare(plugin, statements).await?;
        match self.run(limits, "storage.execute", checked, false).await? {
            Outcome::Counts(counts) => Ok(counts),
            Outcome::Rows(_) => Ok(Vec::new()),
        }
    }

    /// Checks and rewrites each statement for its parameters (once per plugin, text and
    /// NULL parameters: the check is a parse and a rewrite, longer than the round trip).
    async fn prepare(
        &self,
        plugin: &str,
        statements: Vec<Statement>,
    ) -> Result<Vec<(Arc<Checked>, Vec<Value>)>, StorageError> {
        let mut prepared = Vec::with_capacity(statements.len());
        for statement in statements {
            let nulls: Vec<bool> = statement.params.iter().map(|p| *p == Value::Null).collect();
            let key = (plugin.to_owned(), statement.sql, nulls);
            let checked = match self.checked.get(&key).await {
                Some(checked) => checked,
                None => {
                    let checked =
                        Arc::new(sql::check_data(plugin, &key.1, self.backend(), &key.2)?);
                    self.checked.insert(key, Arc::clone(&checked)).await;
                    checked
                }
            };
            // NULLs are written into the statement: bound, they would carry a type.
            let params = statement
                .params
                .into_iter()
                .filter(|param| *param != Value::Null)
                .collect();
            prepared.push((checked, params));
        }
        Ok(prepared)
    }

    /// Runs statements under the plugin's timeout: on Postgres the server cancels the
    /// statement (the session's `statement_timeout`); everywhere the host stops waiting.
    /// Several statements, or one that writes and returns rows (which the limits may
    /// refuse), run in one transaction; one statement alone is atomic without. Errors are
    /// classified; a plugin's call is not retried (it must not wait out a backoff: it may
    /// retry itself, the error says whether that can help).
    async fn run(
        &self,
        limits: &Limits,
        what: &'static str,
        statements: Vec<(Arc<Checked>, Vec<Value>)>,
        want_rows: bool,
    ) -> Result<Outcome, StorageError> {
        let timeout = limits.timeout;
        let epoch = self.db.health().epoch();
        let transaction =
            statements.len() > 1 || (want_rows && statements.iter().any(|(s, _)| !s.reads_only));
        let work = async {
            let mut lease = self.kept.take().await?;
            if self.backend() == Backend::Postgres {
                lease.statement_timeout(timeout).await?;
            }
            let outcome = if transaction {
                let mut tx = lease.connection().begin().await?;
                let outcome = run_each(&mut tx, statements, want_rows, limits).await?;
                // A refused result is not committed: dropping the transaction rolls it back.
                if outcome.is_ok() {
                    tx.commit().await?;
                }
                outcome
            } else {
                run_each(lease.connection(), statements, want_rows, limits).await?
            };
            if outcome.is_ok() {
                lease.done().await;
            }
            Ok(outcome)
        };
        // The server's timeout fires first on Postgres; the margin covers the round trips.
        let Ok(result) = tokio::time::timeout(timeout + Duration::from_millis(250), work).await
        else {
            return Err(StorageError::Timeout(timeout));
        };
        // The statements run on a connection of the pool's: its health is told here.
        match result {
            Ok(outcome) => {
                self.db.note_success();
                outcome
            }
            Err(error) if is_cancelled(&error) => Err(StorageError::Timeout(timeout)),
            Err(error) => Err(self
                .db
                .note_failure(epoch, DbError::new(what, 1, &error))
                .into()),
        }
    }

    /// Applies the migrations of `plugin` not applied yet (see [`migrate`]).
    pub async fn migrate(
        &self,
        plugin: &str,
        migrations: &[Migration],
    ) -> Result<Vec<u32>, MigrationError> {
        migrate::apply(&self.db, plugin, migrations).await
    }
}

/// Runs each statement on `connection`: the last one's rows, or every one's changed-row
/// count.
async fn run_each(
    connection: &mut AnyConnection,
    statements: Vec<(Arc<Checked>, Vec<Value>)>,
    want_rows: bool,
    limits: &Limits,
) -> Result<Result<Outcome, StorageError>, sqlx::Error> {
    if want_rows {
        let mut rows = Ok(Rows::default());
        for (statement, params) in statements {
            rows = read(bind(&statement.sql, params).fetch(&mut *connection), limits).await?;
        }
        return Ok(rows.map(Outcome::Rows));
    }
    let mut counts = Vec::with_capacity(statements.len());
    for (statement, params) in statements {
        let done = bind(&statement.sql, params)
            .execute(&mut *connection)
            .await?;
        counts.push(done.rows_affected());
    }
    Ok(Ok(Outcome::Counts(counts)))
}

fn is_cancelled(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.code().as_deref() == Some(QUERY_CANCELED))
}

fn bind(sql: &str, params: Vec<Value>) -> Query<'static, Any, AnyArguments> {
    let mut query = sqlx::query(AssertSqlSafe(sql.to_owned()));
    for param in params {
        query = match param {
            Value::Null => query,
            Value::Integer(n) => query.bind(n),
            Value::Real(x) => query.bind(x),
            Value::Text(text) => query.bind(text),
            Value::Blob(bytes) => query.bind(bytes),
        };
    }
    query
}

/// Reads rows until the stream ends or a limit is passed.
async fn read(
    mut rows: impl futures::Stream<Item = Result<AnyRow, sqlx::Error>> + Unpin,
    limits: &Limits,
) -> Result<Result<Rows, StorageError>, sqlx::Error> {
    let mut out = Rows::default();
    let mut bytes = 0;
    while let Some(row) = rows.try_next().await? {
        if out.rows.is_empty() {
            out.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
        }
        if out.rows.len() == limits.max_rows {
            return Ok(Err(StorageError::TooLarge(format!(
                "the query returns more than {} rows; page it (LIMIT / OFFSET) or ask for fewer",
                limits.max_rows
            ))));
        }
        let values = (0..row.len())
            .map(|i| value(&row, i))
            .collect::<Result<Vec<_>, _>>()?;
        bytes += values.iter().map(Value::size).sum::<usize>();
        if bytes > limits.max_bytes {
            return Ok(Err(StorageError::TooLarge(format!(
                "the query returns more than {} bytes; ask for fewer rows or columns",
                limits.max_bytes
            ))));
        }
        out.rows.push(values);
    }
    Ok(Ok(out))
}

fn value(row: &AnyRow, index: usize) -> Result<Value, sqlx::Error> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().kind();
    Ok(match kind {
        AnyTypeInfoKind::Null => Value::Null,
        AnyTypeInfoKind::Bool => Value::Integer(i64::from(row.try_get::<bool, _>(index)?)),
        AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
            Value::Integer(row.try_get(index)?)
        }
        AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => Value::Real(row.try_get(index)?),
        AnyTypeInfoKind::Text => Value::Text(row.try_get(index)?),
        AnyTypeInfoKind::Blob => Value::Blob(row.try_get(index)?),
    })
}
