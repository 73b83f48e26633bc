//! A plugin's migrations: declared while it describes itself, applied when it loads, in
//! order, once. The new ones run in one transaction with their records, so a migration
//! that fails half-way leaves nothing behind and the plugin is not loaded (its previous
//! version, if any, keeps serving). Hosts loading the same plugin at once take turns.

use std::sync::atomic::{AtomicU32, Ordering};

use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};

use super::sql::{self, SqlError};
use crate::db::{Backend, Database, DbError, now_ms};

/// The most migrations one plugin declares.
pub const MAX_MIGRATIONS: usize = 1000;

/// One migration a plugin ships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// 1, 2, 3... in order.
    pub version: u32,
    /// Its statements, separated by `;`.
    pub sql: String,
}

impl Migration {
    fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// Why a plugin's migrations were not applied. Nothing of them was.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MigrationError {
    /// A statement of the migration is not one a plugin may run.
    #[error("migration {version}: {error}")]
    Refused {
        /// The migration.
        version: u32,
        /// Why.
        error: SqlError,
    },
    /// The migration was applied with other statements.
    #[error("migration {0} changed since it was applied: ship a new migration instead")]
    Changed(u32),
    /// The database has a migration this version does not ship (a newer version ran it).
    #[error(
        "the database has migration {0}, which this version does not ship (it is older than one loaded before)"
    )]
    Unknown(u32),
    /// The database refused a statement or could not be reached.
    #[error("migration {version}: {error}")]
    Failed {
        /// The migration (0 when reading what was applied failed).
        version: u32,
        /// The database's error.
        error: DbError,
    },
}

/// Applies the migrations of `plugin` the database does not have yet; returns their
/// versions.
pub(super) async fn apply(
    db: &Database,
    plugin: &str,
    migrations: &[Migration],
) -> Result<Vec<u32>, MigrationError> {
    if migrations.is_empty() {
        return Ok(Vec::new());
    }
    let mut prepared = Vec::with_capacity(migrations.len());
    for migration in migrations {
        let statements =
            sql::check_migration(plugin, &migration.sql, db.backend()).map_err(|error| {
                MigrationError::Refused {
                    version: migration.version,
                    error,
                }
            })?;
        prepared.push((migration, statements));
    }
    let failed_at = AtomicU32::new(0);
    let result = db
        .run("storage.migrate", || {
            apply_once(db, plugin, &prepared, &failed_at)
        })
        .await;
    result.unwrap_or_else(|error| {
        Err(MigrationError::Failed {
            version: failed_at.load(Ordering::Relaxed),
            error,
        })
    })
}

/// One try: lock, compare with what was applied, run the rest, commit.
async fn apply_once(
    db: &Database,
    plugin: &str,
    prepared: &[(&Migration, Vec<String>)],
    failed_at: &AtomicU32,
) -> Result<Result<Vec<u32>, MigrationError>, sqlx::Error> {
    failed_at.store(0, Ordering::Relaxed);
    // Another host loading this plugin waits here, then finds the work done.
    let begin = match db.backend() {
        Backend::Postgres => "BEGIN; LOCK TABLE plugin_migrations IN SHARE ROW EXCLUSIVE MODE",
        Backend::Sqlite => "BEGIN IMMEDIATE",
    };
    let mut tx = db.pool().begin_with(begin).await?;
    let applied = sqlx::query(
        "SELECT version, checksum FROM plugin_migrations WHERE plugin = $1 ORDER BY version",
    )
    .bind(plugin)
    .fetch_all(&mut *tx)
    .await?;
    let mut done = std::collections::BTreeMap::new();
    for row in applied {
        let version: i64 = row.try_get("version")?;
        let checksum: String = row.try_get("checksum")?;
        done.insert(version, checksum);
    }
    for (&version, checksum) in &done {
        let shipped = prepared
            .iter()
            .find(|(migration, _)| i64::from(migration.version) == version);
        let version = u32::try_from(version).unwrap_or(u32::MAX);
        match shipped {
            None => return Ok(Err(MigrationError::Unknown(version))),
            Some((migration, _)) if migration.checksum() != *checksum => {
                return Ok(Err(MigrationError::Changed(version)));
            }
            Some(_) => {}
        }
    }
    let mut applied = Vec::new();
    for (migration, statements) in prepared {
        if done.contains_key(&i64::from(migration.version)) {
            continue;
        }
        failed_at.store(migration.version, Ordering::Relaxed);
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement.clone()))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO plugin_migrations (plugin, version, checksum, applied_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(plugin)
        .bind(i64::from(migration.version))
        .bind(migration.checksum())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        applied.push(migration.version);
    }
    tx.commit().await?;
    Ok(Ok(applied))
}
