//! The `storage` interface: a plugin's statements, checked against its grant and run in
//! its namespace under its limits.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::{
    Limits, Migration, Rows, Statement, Storage, StorageError, Value,
    migrate::MAX_MIGRATIONS,
    sql::{MAX_SQL_BYTES, SqlError},
};
use crate::{
    bindings::wasmbot::plugin::storage as wit,
    capabilities::{Backends, Grant, HasContexts, Instance, Policy, Reach},
    db::{Backend, ErrorClass},
};

/// The most statements in one batch.
const MAX_BATCH: usize = 100;

/// One instance's storage: its grant, the host's pool, the plugin's limits, and the
/// migrations it declares while it describes itself.
pub struct Context {
    storage: Reach<Storage>,
    limits: Limits,
    /// `Some` only while the plugin describes itself.
    pub(crate) migrations: Option<Vec<Migration>>,
}

impl Context {
    pub(crate) fn new(grant: Grant, _: &Instance, backends: &Backends, policy: &Policy) -> Self {
        Self {
            storage: Reach::new(grant, backends.storage.clone(), "plugin storage"),
            limits: policy.storage.limits(),
            migrations: None,
        }
    }

    fn storage(&mut self) -> Result<(&Storage, Arc<str>), wit::StorageError> {
        let plugin = Arc::clone(self.storage.plugin());
        let denied = wit::StorageError::Denied;
        Ok((self.storage.get(denied, denied)?, plugin))
    }
}

pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().storage)
}

impl wit::Host for Context {
    async fn backend(&mut self) -> wit::DatabaseKind {
        let backend = self
            .storage
            .backend()
            .map_or(Backend::Sqlite, Storage::backend);
        match backend {
            Backend::Sqlite => wit::DatabaseKind::Sqlite,
            Backend::Postgres => wit::DatabaseKind::Postgres,
        }
    }

    async fn query(
        &mut self,
        sql: String,
        params: Vec<wit::Value>,
    ) -> Result<wit::Rows, wit::StorageError> {
        let limits = self.limits;
        let statement = statement(sql, params);
        let (storage, plugin) = self.storage()?;
        let rows = storage.query(&plugin, &limits, statement).await?;
        Ok(rows.into())
    }

    async fn execute(
        &mut self,
        sql: String,
        params: Vec<wit::Value>,
    ) -> Result<u64, wit::StorageError> {
        let limits = self.limits;
        let statement = statement(sql, params);
        let (storage, plugin) = self.storage()?;
        let counts = storage.execute(&plugin, &limits, vec![statement]).await?;
        Ok(counts.into_iter().sum())
    }

    async fn batch(
        &mut self,
        statements: Vec<wit::Statement>,
    ) -> Result<Vec<u64>, wit::StorageError> {
        if statements.len() > MAX_BATCH {
            return Err(wit::StorageError::Invalid(format!(
                "{} statements in one batch; at most {MAX_BATCH}",
                statements.len()
            )));
        }
        let limits = self.limits;
        let statements = statements
            .into_iter()
            .map(|s| statement(s.sql, s.params))
            .collect();
        let (storage, plugin) = self.storage()?;
        Ok(storage.execute(&plugin, &limits, statements).await?)
    }

    async fn migration(&mut self, version: u32, sql: String) -> Result<(), wit::StorageError> {
        let Some(migrations) = &mut self.migrations else {
            return Err(wit::StorageError::Denied(
                "migrations are declared only while the plugin describes itself".to_owned(),
            ));
        };
        let next = migrations.last().map_or(1, |last| last.version + 1);
        if version != next {
            return Err(wit::StorageError::Invalid(format!(
                "migration {version} declared where {next} was expected: declare 1, 2, 3... in order"
            )));
        }
        if migrations.len() >= MAX_MIGRATIONS || sql.len() > MAX_SQL_BYTES {
            return Err(wit::StorageError::TooLarge(format!(
                "at most {MAX_MIGRATIONS} migrations of {MAX_SQL_BYTES} bytes each"
            )));
        }
        migrations.push(Migration { version, sql });
        Ok(())
    }
}

fn statement(sql: String, params: Vec<wit::Value>) -> Statement {
    Statement {
        sql,
        params: params.into_iter().map(Value::from).collect(),
    }
}

impl From<wit::Value> for Value {
    fn from(value: wit::Value) -> Self {
        match value {
            wit::Value::Null => Value::Null,
            wit::Value::Integer(n) => Value::Integer(n),
            wit::Value::Real(x) => Value::Real(x),
            wit::Value::Text(text) => Value::Text(text),
            wit::Value::Blob(bytes) => Value::Blob(bytes),
        }
    }
}

impl From<Value> for wit::Value {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => wit::Value::Null,
            Value::Integer(n) => wit::Value::Integer(n),
            Value::Real(x) => wit::Value::Real(x),
            Value::Text(text) => wit::Value::Text(text),
            Value::Blob(bytes) => wit::Value::Blob(bytes),
        }
    }
}

impl From<Rows> for wit::Rows {
    fn from(rows: Rows) -> Self {
        wit::Rows {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(wit::Value::from).collect())
                .collect(),
        }
    }
}

impl From<StorageError> for wit::StorageError {
    fn from(error: StorageError) -> Self {
        let message = error.to_string();
        match error {
            StorageError::Sql(SqlError::Forbidden(_)) => wit::StorageError::Forbidden(message),
            StorageError::Sql(SqlError::Invalid(_)) => wit::StorageError::Invalid(message),
            StorageError::TooLarge(_) => wit::StorageError::TooLarge(message),
            StorageError::Timeout(_) => wit::StorageError::Timeout(message),
            StorageError::Database(error) => wit::StorageError::Database(wit::DatabaseError {
                class: match error.class {
                    ErrorClass::ConnectionLost => wit::ErrorClass::ConnectionLost,
                    ErrorClass::PoolTimeout => wit::ErrorClass::PoolTimeout,
                    ErrorClass::Serialization => wit::ErrorClass::Serialization,
                    ErrorClass::Constraint => wit::ErrorClass::Constraint,
                    ErrorClass::BadQuery => wit::ErrorClass::BadQuery,
                    ErrorClass::Fatal => wit::ErrorClass::Fatal,
                },
                retryable: error.retryable(),
                message,
            }),
        }
    }
}
