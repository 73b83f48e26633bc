//! The record of installed packages, in the bot's database: what every host serves.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{
    db::{Database, DbError},
    runtime::Asks,
};

/// One installed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The plugin.
    pub name: String,
    /// The OCI manifest's digest.
    pub digest: String,
    /// Its version.
    pub version: String,
    /// An index's name, an OCI reference, or `file`.
    pub source: String,
    /// The reference it was resolved from (`REGISTRY/REPO:TAG`); empty for a file.
    pub reference: String,
    /// The signing key's id; empty when installed unsigned.
    pub signer: String,
    /// What it asks for.
    pub asks: Asks,
    /// Whether the operator approved what it asks for.
    pub approved: bool,
    /// When it was installed (ms since the epoch).
    pub installed_ms: i64,
}

/// One installed plugin: which version serves and which waits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRow {
    /// The plugin.
    pub name: String,
    /// The serving version's digest (empty before a first approval).
    pub active: String,
    /// The version waiting for approval (empty: none).
    pub pending: String,
    /// Whether `update` leaves it alone.
    pub pinned: bool,
    /// Bumped by every change.
    pub revision: i64,
}

/// The package tables.
#[derive(Clone)]
pub struct PackageStore {
    db: Database,
}

const VERSION_COLUMNS: &str =
    "name, digest, version, source, reference, signer, asks, approved, installed_ms";

impl PackageStore {
    /// The store in `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Keeps a version and its archive; the same digest again changes nothing.
    pub async fn put_version(&self, record: &VersionRecord, archive: &[u8]) -> Result<(), DbError> {
        let asks = serde_json::to_string(&record.asks).unwrap_or_default();
        self.db
            .run("package version put", || {
                sqlx::query(
                    "INSERT INTO plugin_versions (name, digest, version, source, reference, signer, \
                     asks, approved, archive, installed_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (name, digest) DO NOTHING",
                )
                .bind(&record.name)
                .bind(&record.digest)
                .bind(&record.version)
                .bind(&record.source)
                .bind(&record.reference)
                .bind(&record.signer)
                .bind(&asks)
                .bind(i64::from(record.approved))
                .bind(archive.to_vec())
                .bind(record.installed_ms)
                .execute(self.db.pool())
            })
            .await?;
        Ok(())
    }

    /// Marks a version approved.
    pub async fn approve(&self, name: &str, digest: &str) -> Result<(), DbError> {
        self.db
            .run("package approve", || {
                sqlx::query(
                    "UPDATE plugin_versions SET approved = 1 WHERE name = $1 AND digest = $2",
                )
                .bind(name)
                .bind(digest)
                .execute(self.db.pool())
            })
            .await?;
        Ok(())
    }

    /// Sets which version of `name` serves and which waits, creating its row.
    pub async fn set(&self, name: &str, active: &str, pending: &str) -> Result<(), DbError> {
        self.db
            .run("package install set", || {
                sqlx::query(
                    "INSERT INTO plugin_installs (name, active, pending, pinned, revision) \
                     VALUES ($1, $2, $3, 0, 1) \
                     ON CONFLICT (name) DO UPDATE SET active = $2, pending = $3, \
                     revision = plugin_installs.revision + 1",
                )
                .bind(name)
                .bind(active)
                .bind(pending)
                .execute(self.db.pool())
            })
            .await?;
        Ok(())
    }

    /// Pins or unpins `name`; false when it is not installed.
    pub async fn pin(&self, name: &str, pinned: bool) -> Result<bool, DbError> {
        let done = self
            .db
            .run("package pin", || {
                sqlx::query(
                    "UPDATE plugin_installs SET pinned = $2, revision = revision + 1 WHERE name = $1",
                )
                .bind(name)
                .bind(i64::from(pinned))
                .execute(self.db.pool())
            })
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets `name` and every version of it; false when it was not installed.
    pub async fn remove(&self, name: &str) -> Result<bool, DbError> {
        let done = self
            .db
            .run("package remove", || {
                sqlx::query("DELETE FROM plugin_installs WHERE name = $1")
                    .bind(name)
                    .execute(self.db.pool())
            })
            .await?;
        self.db
            .run("package versions remove", || {
                sqlx::query("DELETE FROM plugin_versions WHERE name = $1")
                    .bind(name)
                    .execute(self.db.pool())
            })
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every installed plugin.
    pub async fn installs(&self) -> Result<Vec<InstallRow>, DbError> {
        self.install_rows(None).await
    }

    /// The install row of `name`.
    pub async fn install(&self, name: &str) -> Result<Option<InstallRow>, DbError> {
        Ok(self.install_rows(Some(name)).await?.pop())
    }

    async fn install_rows(&self, name: Option<&str>) -> Result<Vec<InstallRow>, DbError> {
        let rows = self
            .db
            .run("package installs", || {
                sqlx::query(
                    "SELECT name, active, pending, pinned, revision FROM plugin_installs \
                     WHERE $1 = '' OR name = $1 ORDER BY name",
                )
                .bind(name.unwrap_or_default())
                .fetch_all(self.db.pool())
            })
            .await?;
        Ok(rows
            .iter()
            .map(|row| InstallRow {
                name: row.get(0),
                active: row.get(1),
                pending: row.get(2),
                pinned: row.get::<i64, _>(3) != 0,
                revision: row.get(4),
            })
            .collect())
    }

    /// Every version of `name`, the newest install first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionRecord>, DbError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM plugin_versions WHERE name = $1 ORDER BY installed_ms DESC"
        );
        let rows = self
            .db
            .run("package versions", || {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(name)
                    .fetch_all(self.db.pool())
            })
            .await?;
        Ok(rows.iter().map(version_record).collect())
    }

    /// One version of `name`.
    pub async fn version(
        &self,
        name: &str,
        digest: &str,
    ) -> Result<Option<VersionRecord>, DbError> {
        Ok(self
            .versions(name)
            .await?
            .into_iter()
            .find(|v| v.digest == digest))
    }

    /// The archive of one version.
    pub async fn archive(&self, name: &str, digest: &str) -> Result<Option<Vec<u8>>, DbError> {
        self.db
            .run("package archive", || {
                sqlx::query_scalar::<_, Vec<u8>>(
                    "SELECT archive FROM plugin_versions WHERE name = $1 AND digest = $2",
                )
                .bind(name)
                .bind(digest)
                .fetch_optional(self.db.pool())
            })
            .await
    }
}

fn version_record(row: &sqlx::any::AnyRow) -> VersionRecord {
    let asks: String = row.get(6);
    VersionRecord {
        name: row.get(0),
        digest: row.get(1),
        version: row.get(2),
        source: row.get(3),
        reference: row.get(4),
        signer: row.get(5),
        asks: serde_json::from_str(&asks).unwrap_or_default(),
        approved: row.get::<i64, _>(7) != 0,
        installed_ms: row.get(8),
    }
}
