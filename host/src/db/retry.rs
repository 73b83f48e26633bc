//! Every database call's error is classified here, and the transient ones are retried with
//! exponential backoff and jitter (backon); the rest fail at once. The class and whether a
//! retry could help travel with the error to plugins and to the admin API.

use std::{fmt, future::Future, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};

/// What kind of failure a database error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The connection broke or could not be made (network, server restart, too many clients).
    ConnectionLost,
    /// No connection came free in time.
    PoolTimeout,
    /// A transaction lost a race (serialization failure, deadlock, a busy SQLite file).
    Serialization,
    /// The data broke a constraint (unique, foreign key, not null, check).
    Constraint,
    /// The statement or its parameters are wrong (syntax, unknown table, type mismatch).
    BadQuery,
    /// Anything else: configuration, migrations, a crashed driver.
    Fatal,
}

impl ErrorClass {
    /// Whether the statement surely did not take effect, so even a statement that adds
    /// (not idempotent) may run again: no connection was had, or the transaction was
    /// rolled back.
    pub fn surely_not_applied(self) -> bool {
        matches!(self, ErrorClass::PoolTimeout | ErrorClass::Serialization)
    }

    /// Whether trying again could succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::ConnectionLost | ErrorClass::PoolTimeout | ErrorClass::Serialization
        )
    }

    /// Whether the failure means the database cannot be reached (rather than a statement's
    /// own fault, or a race that lost): such failures make an outage, logged once.
    pub fn is_outage(self) -> bool {
        matches!(self, ErrorClass::ConnectionLost | ErrorClass::PoolTimeout)
    }

    /// The name in logs and in errors sent to plugins.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::ConnectionLost => "connection-lost",
            ErrorClass::PoolTimeout => "pool-timeout",
            ErrorClass::Serialization => "serialization",
            ErrorClass::Constraint => "constraint",
            ErrorClass::BadQuery => "bad-query",
            ErrorClass::Fatal => "fatal",
        }
    }

    /// The class of a sqlx error, from the SQLSTATE on Postgres and the result code on
    /// SQLite.
    pub fn of(error: &sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut => ErrorClass::PoolTimeout,
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
                ErrorClass::ConnectionLost
            }
            sqlx::Error::Database(database) => {
                use sqlx::error::ErrorKind;
                if matches!(
                    database.kind(),
                    ErrorKind::UniqueViolation
                        | ErrorKind::ForeignKeyViolation
                        | ErrorKind::NotNullViolation
                        | ErrorKind::CheckViolation
                        | ErrorKind::ExclusionViolation
                ) {
                    return ErrorClass::Constraint;
                }
                database
                    .code()
                    .map_or(ErrorClass::Fatal, |code| Self::of_code(&code))
            }
            sqlx::Error::RowNotFound
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Encode(_)
            | sqlx::Error::Decode(_)
            | sqlx::Error::InvalidArgument(_)
            // A column of a type the driver cannot read (Postgres' NUMERIC, say).
            | sqlx::Error::AnyDriverError(_) => ErrorClass::BadQuery,
            _ => ErrorClass::Fatal,
        }
    }

    /// Postgres SQLSTATEs are five characters; SQLite's codes are numbers (the primary code
    /// in the low byte of an extended one).
    fn of_code(code: &str) -> Self {
        if let Ok(sqlite) = code.parse::<u32>()
            && code.len() < 5
        {
            return match sqlite & 0xff {
                5 | 6 => ErrorClass::Serialization, // SQLITE_BUSY, SQLITE_LOCKED
                19 => ErrorClass::Constraint,
                1 | 20 | 25 => ErrorClass::BadQuery, // SQLITE_ERROR, MISMATCH, RANGE
                10 | 14 => ErrorClass::ConnectionLost, // SQLITE_IOERR, CANTOPEN
                _ => ErrorClass::Fatal,
            };
        }
        match code {
            // Rolled back for sure: trying again is safe. (40003, "statement completion
            // unknown", is not: it may have committed.)
            "40001" | "40P01" | "55P03" => ErrorClass::Serialization,
            "40003" => ErrorClass::ConnectionLost,
            // Admin shutdown, crash shutdown, cannot connect now, too many connections.
            "57P01" | "57P02" | "57P03" | "53300" => ErrorClass::ConnectionLost,
            _ => match code.get(..2) {
                Some("08") => ErrorClass::ConnectionLost,
                Some("23") => ErrorClass::Constraint,
                Some("22" | "42") => ErrorClass::BadQuery,
                _ => ErrorClass::Fatal,
            },
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A database call that failed, after its retries.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {class} database error after {attempts} attempt(s): {message}")]
pub struct DbError {
    /// What the call was for, e.g. `config.write`.
    pub what: &'static str,
    /// The kind of failure.
    pub class: ErrorClass,
    /// Tries made.
    pub attempts: u32,
    /// The driver's message.
    pub message: String,
}

impl DbError {
    /// The error of a call tried `attempts` times, classified.
    pub fn new(what: &'static str, attempts: u32, error: &sqlx::Error) -> Self {
        Self {
            what,
            class: ErrorClass::of(error),
            attempts,
            message: error.to_string(),
        }
    }

    /// Whether trying again later could succeed.
    pub fn retryable(&self) -> bool {
        self.class.retryable()
    }

    /// Whether the database could not be reached: the pool's health has logged the outage
    /// once already, so a caller logs this failure quietly.
    pub fn is_outage(&self) -> bool {
        self.class.is_outage()
    }

    /// Logs `context` and this failure of a call with no caller to answer (a background
    /// pass): at WARN, or at debug when it is an outage, which the health logs once.
    pub fn log_quietly_if_outage(&self, context: &str) {
        if self.is_outage() {
            tracing::debug!("{context}: {self}");
        } else {
            tracing::warn!("{context}: {self}");
        }
    }

    /// A call that got no answer before its deadline. It may have taken effect (the
    /// statement may have run), so it is classed as a lost connection, never as a statement
    /// that surely did not apply.
    pub fn deadline(what: &'static str, deadline: Duration) -> Self {
        Self {
            what,
            class: ErrorClass::ConnectionLost,
            attempts: 1,
            // Rounded: a deadline is often what was left of a longer one.
            message: format!(
                "no answer within {} ms",
                deadline.as_micros().saturating_add(500) / 1000
            ),
        }
    }
}

/// The `[database.retry]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1: no retry).
    pub tries: u32,
    /// The wait before the first retry; it doubles (with jitter) for each next one.
    pub first_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            tries: 3,
            first_delay_ms: 1_000,
        }
    }
}

impl RetryPolicy {
    /// Runs `call` (a fresh statement each time) until it succeeds, fails with an error a
    /// retry cannot help, or has been tried `tries` times.
    pub async fn run<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.run_if(what, call, ErrorClass::retryable, &warn_retry)
            .await
    }

    /// [`RetryPolicy::run`] for a statement that adds (a counter, a history row): retried
    /// only when it surely did not take effect, so it never counts twice.
    pub async fn run_additive<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.run_if(what, call, ErrorClass::surely_not_applied, &warn_retry)
            .await
    }

    /// Runs `call` while `again` says a failure's class may be retried, telling
    /// `before_retry` of each failure that is (with the wait before the next try).
    pub(super) async fn run_if<T, F, Fut>(
        &self,
        what: &'static str,
        mut call: F,
        again: fn(ErrorClass) -> bool,
        before_retry: &(dyn Fn(&'static str, ErrorClass, &sqlx::Error, Duration) + Sync),
    ) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let mut attempts = 0;
        let counted = || {
            attempts += 1;
            call()
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.first_delay_ms))
            .with_max_times(self.tries.saturating_sub(1) as usize)
            .with_jitter();
        let result = counted
            .retry(backoff)
            .when(|error| again(ErrorClass::of(error)))
            .notify(|error, wait| before_retry(what, ErrorClass::of(error), error, wait))
            .await;
        result.map_err(|error| DbError::new(what, attempts, &error))
    }
}

/// A retry of a policy used on its own, without a pool's health to tell.
fn warn_retry(what: &'static str, class: ErrorClass, error: &sqlx::Error, wait: Duration) {
    tracing::warn!(
        what,
        class = class.name(),
        "database call failed, retrying in {wait:?}: {error}"
    );
}
