//! The plugin's own tables in the host's database (capability `storage`, granted by
//! default).
//!
//! Declare the tables as migrations in the manifest ([`Manifest::migration`]): the host
//! applies the new ones when it loads the plugin, in order, once. Every table name is the
//! plugin's own (the host moves `notes` into the plugin's namespace), values travel only as
//! parameters `$1`, `$2`..., one statement per call ([`batch`] runs several in one
//! transaction). Both backends run the same SQL: use `BIGINT`, `DOUBLE PRECISION`, `TEXT`,
//! and `CAST(sum(x) AS BIGINT)` where Postgres would answer `NUMERIC`.
//!
//! ```
//! use wasmbot_sdk::{prelude::*, storage};
//!
//! struct Notes;
//!
//! impl Plugin for Notes {
//!     fn manifest() -> Manifest {
//!         Manifest::new("notes", "0.1.0")
//!             .command(CommandSpec::new("note", "Keep a note, or list yours"))
//!             .migration(1, "CREATE TABLE notes (author TEXT NOT NULL, body TEXT NOT NULL)")
//!     }
//!
//!     fn handle(event: Event) -> Handled {
//!         let author = event.author.id.as_str();
//!         let text = event.text();
//!         if !text.is_empty() {
//!             storage::execute(
//!                 "INSERT INTO notes (author, body) VALUES ($1, $2)",
//!                 &[author.into(), text.into()],
//!             )?;
//!         }
//!         let rows = storage::query("SELECT body FROM notes WHERE author = $1", &[author.into()])?;
//!         let bodies: Vec<&str> = rows.rows.iter().filter_map(|row| row[0].as_str()).collect();
//!         Ok(vec![Action::reply(bodies.join("\n"))])
//!     }
//! }
//!
//! export_plugin!(Notes);
//! ```

pub use crate::bindings::wasmbot::plugin::storage::{
    DatabaseError, DatabaseKind, ErrorClass, Rows, Statement, StorageError, Value,
};
use crate::{Manifest, PluginError, bindings::wasmbot::plugin::storage as wit};

/// The database the host uses, for a migration that must say something per backend.
pub fn backend() -> DatabaseKind {
    wit::backend()
}

/// Runs a query; its rows, at most the plugin's row and byte limits.
pub fn query(sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
    wit::query(sql, params)
}

/// Runs a statement; how many rows it changed.
pub fn execute(sql: &str, params: &[Value]) -> Result<u64, StorageError> {
    wit::execute(sql, params)
}

/// Runs statements in one transaction, all or none; each one's changed-row count.
pub fn batch(statements: &[Statement]) -> Result<Vec<u64>, StorageError> {
    wit::batch(statements)
}

impl Statement {
    /// A statement and its parameters, for [`batch`].
    pub fn new(sql: impl Into<String>, params: impl Into<Vec<Value>>) -> Self {
        Statement {
            sql: sql.into(),
            params: params.into(),
        }
    }
}

impl Manifest {
    /// Declares storage migration `version` (declare 1, 2, 3... in order; one applied must
    /// never change) and asks for the `storage` capability.
    ///
    /// # Panics
    /// When the host refuses the declaration (out of order, too large): the host then
    /// refuses the plugin, saying why.
    pub fn migration(mut self, version: u32, sql: &str) -> Self {
        if let Err(error) = wit::migration(version, sql) {
            panic!("migration {version} was refused: {}", error.message());
        }
        if !self.capabilities.iter().any(|c| c == "storage") {
            self.capabilities.push("storage".to_owned());
        }
        self
    }
}

impl Rows {
    /// The index of the column called `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column == name)
    }
}

impl Value {
    /// The integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// The number, if it is one (integers widen).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Real(x) => Some(*x),
            #[allow(clippy::cast_precision_loss)]
            Value::Integer(n) => Some(*n as f64),
            _ => None,
        }
    }

    /// The text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes, if it is a blob.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Whether it is SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Integer(n)
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Integer(n.into())
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Integer(n.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Integer(b.into())
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Real(x)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Value::Blob(bytes)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

impl StorageError {
    /// What went wrong, in words.
    pub fn message(&self) -> &str {
        match self {
            StorageError::Denied(text)
            | StorageError::Forbidden(text)
            | StorageError::Invalid(text)
            | StorageError::TooLarge(text)
            | StorageError::Timeout(text) => text,
            StorageError::Database(error) => &error.message,
        }
    }

    /// Whether the same call could succeed later (a lost connection, a timeout...).
    pub fn retryable(&self) -> bool {
        match self {
            StorageError::Timeout(_) => true,
            StorageError::Database(error) => error.retryable,
            _ => false,
        }
    }
}

/// So `?` works in a handler: what could pass is `unavailable`, the rest is the plugin's bug.
impl From<StorageError> for PluginError {
    fn from(error: StorageError) -> Self {
        let text = error.message().to_owned();
        if error.retryable() {
            PluginError::Unavailable(text)
        } else {
            PluginError::Internal(text)
        }
    }
}
