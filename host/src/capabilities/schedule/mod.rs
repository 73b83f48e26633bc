//! Timers: a plugin asks to be called back later, in the conversation it was in. Kept in
//! the database, so they survive restarts and any host of the bot can fire them; a due
//! timer is claimed by one host (as the WhatsApp inbox claims its items), delivered, then
//! deleted or moved to its next time. The hosts are woken by the timers they set and, for
//! those set elsewhere, by looking again every `schedule.poll_s`.
//!
//! Bounded: timers per plugin and per plugin and guild, the shortest interval and the
//! payload size are the operator's limits (`[schedule]`).

mod interface;
mod repeat;

pub use interface::Context;
pub(crate) use interface::link;
pub use repeat::Repeat;

use std::{fmt::Write as _, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::{
    capabilities::{Build, Lifecycle, Sections, config_store::ConfigStore},
    db::{Backend, Database, DbError, now_ms},
    telemetry::memory::Relief,
};

/// The `[schedule]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Timers one plugin may have pending, in all guilds together.
    pub max_per_plugin: u32,
    /// Timers one plugin may have pending in one guild (outside guilds: in one chat).
    pub max_per_guild: u32,
    /// The shortest interval of a repeating timer, in seconds (a cron expression's too).
    pub min_interval_s: u64,
    /// The largest payload, in bytes.
    pub max_payload_bytes: usize,
    /// How often a host looks for timers other hosts set, in seconds; it is woken at once by
    /// its own.
    pub poll_s: u64,
    /// How long a host holds the due timers it is delivering, in seconds; a host that
    /// stops meanwhile leaves them to another once the claim runs out. Longer than a
    /// plugin's wall-clock budget, so a batch is recorded before its claim runs out.
    pub claim_s: u64,
    /// Due timers claimed at once, and delivered side by side.
    pub batch: u32,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            max_per_plugin: 10_000,
            max_per_guild: 100,
            min_interval_s: 60,
            max_payload_bytes: 4 * 1024,
            poll_s: 30,
            claim_s: 60,
            batch: 64,
        }
    }
}

impl ScheduleConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_per_plugin > 0,
            "schedule.max_per_plugin must be at least 1"
        );
        anyhow::ensure!(
            self.max_per_guild > 0,
            "schedule.max_per_guild must be at least 1"
        );
        anyhow::ensure!(
            self.min_interval_s > 0,
            "schedule.min_interval_s must be at least 1"
        );
        anyhow::ensure!(
            (1..=3600).contains(&self.poll_s),
            "schedule.poll_s must be between 1 and 3600"
        );
        anyhow::ensure!(
            (1..=86_400).contains(&self.claim_s),
            "schedule.claim_s must be between 1 and 86400"
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.batch),
            "schedule.batch must be between 1 and 1000"
        );
        Ok(())
    }
}

/// Where a timer was set, and by whom: the conversation its event answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The platform's name.
    pub platform: String,
    /// The guild; none outside one.
    pub guild: Option<String>,
    /// The channel or chat.
    pub channel: String,
    /// Who set it.
    pub user: String,
    /// Their name then.
    pub user_name: String,
}

impl Origin {
    /// The place a timer counts and is listed in, as the `timers` columns match it: the
    /// guild, or outside a guild (`''`) its chat; the channel is `''` within a guild.
    fn place(&self) -> (String, String) {
        match &self.guild {
            Some(guild) => (guild.clone(), String::new()),
            None => (String::new(), self.channel.clone()),
        }
    }
}

/// One stored timer.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    /// Its id.
    pub id: String,
    /// The plugin that set it.
    pub plugin: String,
    /// Where.
    pub origin: Origin,
    /// What the plugin gave.
    pub payload: String,
    /// When it fires next, in milliseconds since the Unix epoch.
    pub due_ms: i64,
    /// How it repeats; none for a one-shot timer.
    pub repeat: Option<Repeat>,
}

/// Why a timer was not set. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Over one of the operator's limits.
    #[error("{0}")]
    TooMany(String),
    /// Every id drawn was taken (with eight letters from 31, never in practice).
    #[error("no free timer id was found")]
    NoId,
    /// The database could not be reached.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The columns a timer is read from, in [`row`]'s order.
const COLUMNS: &str = "id, plugin, platform, guild_id, channel_id, user_id, user_name, payload, \
                       due_ms, every_ms, cron";

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
);

fn row(
    (id, plugin, platform, guild, channel, user, user_name, payload, due_ms, every_ms, cron): Row,
) -> Timer {
    Timer {
        id,
        plugin,
        origin: Origin {
            platform,
            guild: (!guild.is_empty()).then_some(guild),
            channel,
            user,
            user_name,
        },
        payload,
        due_ms,
        repeat: Repeat::from_columns(every_ms, cron),
    }
}

/// The timers of one bot, in its database.
pub struct Timers {
    db: Database,
    config: ScheduleConfig,
    /// This host's name in claims.
    host: String,
    /// Told when this host sets a timer, so its loop looks again.
    added: Notify,
}

impl Relief for Timers {}

impl Lifecycle for Timers {}

impl Build for Timers {
    fn build(store: &Arc<ConfigStore>, sections: Sections<'_>) -> Arc<Self> {
        Arc::new(Timers::new(
            store.database().clone(),
            sections.schedule.clone(),
        ))
    }
}

impl Timers {
    /// The timers in `db` (migrated), under the limits of `config`.
    pub fn new(db: Database, config: ScheduleConfig) -> Self {
        Self {
            db,
            config,
            host: format!("{}-{}", std::process::id(), now_ms()),
            added: Notify::new(),
        }
    }

    /// Its limits.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// Resolves when this host has set a timer since the last call.
    pub async fn added(&self) {
        self.added.notified().await;
    }

    /// Sets a timer of `plugin` at `origin`, due at `due_ms`; returns its id. The limits are
    /// checked first: nothing is written past one.
    pub async fn add(
        &self,
        plugin: &str,
        origin: &Origin,
        payload: &str,
        due_ms: i64,
        repeat: Option<&Repeat>,
    ) -> Result<String, ScheduleError> {
        let limit = self.config.max_payload_bytes;
        if payload.len() > limit {
            return Err(ScheduleError::TooMany(format!(
                "the payload is {} bytes; the limit is {limit}",
                payload.len()
            )));
        }
        self.check_counts(plugin, origin).await?;
        let (every_ms, cron) = repeat.map_or((0, String::new()), Repeat::to_columns);
        let guild = origin.guild.clone().unwrap_or_default();
        // A random id may be taken: another one is drawn (rarely more than once).
        for _ in 0..8 {
            let id = new_id();
            let written = self
                .db
                .run_once("schedule.add", || {
                    sqlx::query(
                        "INSERT INTO timers (id, plugin, platform, guild_id, channel_id, user_id, \
                         user_name, payload, due_ms, every_ms, cron, created_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&id)
                    .bind(plugin)
                    .bind(&origin.platform)
                    .bind(&guild)
                    .bind(&origin.channel)
                    .bind(&origin.user)
                    .bind(&origin.user_name)
                    .bind(payload)
                    .bind(due_ms)
                    .bind(every_ms)
                    .bind(&cron)
                    .bind(now_ms())
                    .execute(self.db.pool())
                })
                .await?;
            if written.rows_affected() == 1 {
                self.added.notify_one();
                return Ok(id);
            }
        }
        Err(ScheduleError::NoId)
    }

    /// Refuses a timer over the plugin's limits.
    async fn check_counts(&self, plugin: &str, origin: &Origin) -> Result<(), ScheduleError> {
        let (guild, channel) = origin.place();
        let (all, here): (i64, i64) = self
            .db
            .run_once("schedule.count", || {
                sqlx::query_as(
                    "SELECT COUNT(*), \
                     COALESCE(SUM(CASE WHEN guild_id = $2 AND (channel_id = $3 OR $3 = '') \
                     THEN 1 ELSE 0 END), 0) FROM timers WHERE plugin = $1",
                )
                .bind(plugin)
                .bind(&guild)
                .bind(&channel)
                .fetch_one(self.db.pool())
            })
            .await?;
        let (per_plugin, per_guild) = (self.config.max_per_plugin, self.config.max_per_guild);
        if all >= i64::from(per_plugin) {
            return Err(ScheduleError::TooMany(format!(
                "the plugin has {all} timers; the limit is {per_plugin}"
            )));
        }
        if here >= i64::from(per_guild) {
            let place = if origin.guild.is_some() {
                "guild"
            } else {
                "chat"
            };
            return Err(ScheduleError::TooMany(format!(
                "the plugin has {here} timers in this {place}; the limit is {per_guild}"
            )));
        }
        Ok(())
    }

    /// Cancels one of `plugin`'s timers; false when it has none of that id.
    pub async fn cancel(&self, plugin: &str, id: &str) -> Result<bool, DbError> {
        let done = self
            .db
            .run_once("schedule.cancel", || {
                sqlx::query("DELETE FROM timers WHERE id = $1 AND plugin = $2")
                    .bind(id)
                    .bind(plugin)
                    .execute(self.db.pool())
            })
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// `plugin`'s timers in `origin`'s guild (outside a guild: its channel), soonest first.
    pub async fn list(&self, plugin: &str, origin: &Origin) -> Result<Vec<Timer>, DbError> {
        let (guild, channel) = origin.place();
        let sql = format!(
            "SELECT {COLUMNS} FROM timers WHERE plugin = $1 AND guild_id = $2 \
             AND (channel_id = $3 OR $3 = '') ORDER BY due_ms, id"
        );
        let rows: Vec<Row> = self
            .db
            .run_once("schedule.list", || {
                sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(plugin)
                    .bind(&guild)
                    .bind(&channel)
                    .fetch_all(self.db.pool())
            })
            .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    /// Claims up to `batch` timers due at `now_ms` of the plugins and platforms this host
    /// serves (`here`), soonest first; no other host gets them until their claim runs out.
    pub async fn claim(&self, now_ms: i64, here: &Served) -> Result<Vec<Timer>, DbError> {
        let lock = match self.db.backend() {
            // Hosts claiming at once each take other rows rather than wait for a lock.
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // The claim is checked again on the row being updated: of two hosts that picked
        // the same row, only the first one's update matches.
        let sql = format!(
            "UPDATE timers SET claimed_until = $1, claimed_by = $2 WHERE id IN \
             (SELECT id FROM timers WHERE due_ms <= $3 AND claimed_until <= $3{} \
             ORDER BY due_ms LIMIT $4{lock}) AND claimed_until <= $3 RETURNING {COLUMNS}",
            here.filter(5)
        );
        let until = now_ms + duration_ms(Duration::from_secs(self.config.claim_s));
        let batch = i64::from(self.config.batch);
        let rows: Vec<Row> = self
            .db
            .run("schedule.claim", || {
                here.bind(
                    sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(until)
                        .bind(&self.host)
                        .bind(now_ms)
                        .bind(batch),
                )
                .fetch_all(self.db.pool())
            })
            .await?;
        let mut timers: Vec<Timer> = rows.into_iter().map(row).collect();
        timers.sort_by_key(|timer| timer.due_ms);
        Ok(timers)
    }

    /// Records that this host delivered `timers` at `now_ms`: one-shot timers are deleted,
    /// repeating ones move to their next time after `now_ms` (firings missed while every
    /// host was down are not made up, one late delivery stands for them).
    pub async fn delivered(&self, timers: &[Timer], now_ms: i64) -> Result<(), DbError> {
        let (repeating, once): (Vec<&Timer>, Vec<&Timer>) =
            timers.iter().partition(|timer| timer.repeat.is_some());
        if !once.is_empty() {
            let sql = format!(
                "DELETE FROM timers WHERE claimed_by = $1 AND id IN ({})",
                placeholders(2, once.len())
            );
            self.db
                .run("schedule.delivered", || {
                    once.iter()
                        .fold(
                            sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(&self.host),
                            |query, timer| query.bind(&timer.id),
                        )
                        .execute(self.db.pool())
                })
                .await?;
        }
        for timer in repeating {
            let next = timer
                .repeat
                .as_ref()
                .and_then(|repeat| repeat.next_after(timer.due_ms, now_ms));
            self.reschedule(timer, next).await?;
        }
        Ok(())
    }

    /// Moves a claimed timer to `next` and frees it; none deletes it (a cron expression
    /// with no time left).
    async fn reschedule(&self, timer: &Timer, next: Option<i64>) -> Result<(), DbError> {
        let Some(next) = next else {
            self.db
                .run("schedule.delivered", || {
                    sqlx::query("DELETE FROM timers WHERE id = $1 AND claimed_by = $2")
                        .bind(&timer.id)
                        .bind(&self.host)
                        .execute(self.db.pool())
                })
                .await?;
            return Ok(());
        };
        self.db
            .run("schedule.delivered", || {
                sqlx::query(
                    "UPDATE timers SET due_ms = $1, claimed_until = 0, claimed_by = '' \
                     WHERE id = $2 AND claimed_by = $3",
                )
                .bind(next)
                .bind(&timer.id)
                .bind(&self.host)
                .execute(self.db.pool())
            })
            .await?;
        Ok(())
    }

    /// Frees the claims of `timers` this host holds, for another host to deliver.
    pub async fn unclaim(&self, timers: &[Timer]) -> Result<(), DbError> {
        if timers.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE timers SET claimed_until = 0 WHERE claimed_by = $1 AND id IN ({})",
            placeholders(2, timers.len())
        );
        self.db
            .run("schedule.unclaim", || {
                timers
                    .iter()
                    .fold(
                        sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(&self.host),
                        |query, timer| query.bind(&timer.id),
                    )
                    .execute(self.db.pool())
            })
            .await?;
        Ok(())
    }

    /// Frees this host's claims, for another host to deliver (it is stopping).
    pub async fn release(&self) -> Result<(), DbError> {
        self.db
            .run_once("schedule.release", || {
                sqlx::query("UPDATE timers SET claimed_until = 0 WHERE claimed_by = $1")
                    .bind(&self.host)
                    .execute(self.db.pool())
            })
            .await?;
        Ok(())
    }

    /// When the soonest timer this host could claim at `now_ms` is due (of the plugins and
    /// platforms it serves, held by no host). Timers another host holds are not waited for:
    /// that host delivers them, or the next poll finds them once its claim ran out.
    pub async fn next_due(&self, now_ms: i64, here: &Served) -> Result<Option<i64>, DbError> {
        let sql = format!(
            "SELECT MIN(due_ms) FROM timers WHERE claimed_until <= $1{}",
            here.filter(2)
        );
        let (next,): (Option<i64>,) = self
            .db
            .run("schedule.next", || {
                here.bind(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(now_ms))
                    .fetch_one(self.db.pool())
            })
            .await?;
        Ok(next)
    }

    /// Deletes every timer of `plugin` (it was removed); returns how many.
    pub async fn drop_plugin(&self, plugin: &str) -> Result<u64, DbError> {
        let done = self
            .db
            .run("schedule.drop", || {
                sqlx::query("DELETE FROM timers WHERE plugin = $1")
                    .bind(plugin)
                    .execute(self.db.pool())
            })
            .await?;
        Ok(done.rows_affected())
    }
}

/// What one host can deliver: timers of the plugins loaded on it, on the platforms it is
/// connected to. Others are left to the hosts that can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    /// Plugin names.
    pub plugins: Vec<String>,
    /// Platform names.
    pub platforms: Vec<String>,
}

impl Served {
    /// ` AND plugin IN (...) AND platform IN (...)`, numbered from `$first`.
    fn filter(&self, first: usize) -> String {
        let (plugins, platforms) = (self.plugins.len().max(1), self.platforms.len().max(1));
        format!(
            " AND plugin IN ({}) AND platform IN ({})",
            placeholders(first, plugins),
            placeholders(first + plugins, platforms)
        )
    }

    /// Binds the filter's values (a list never empty: `''` matches nothing).
    fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
        let list = |values: &'q [String]| -> Vec<&'q str> {
            match values.is_empty() {
                true => vec![""],
                false => values.iter().map(String::as_str).collect(),
            }
        };
        let query = list(&self.plugins)
            .into_iter()
            .fold(query, |query, plugin| query.bind(plugin));
        list(&self.platforms)
            .into_iter()
            .fold(query, |query, platform| query.bind(platform))
    }
}

/// `$first, $first+1, ...`: `count` placeholders.
fn placeholders(first: usize, count: usize) -> String {
    let mut out = String::new();
    for n in first..first + count {
        if n > first {
            out.push_str(", ");
        }
        let _ = write!(out, "${n}");
    }
    out
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Eight letters and digits a person can read back without confusing them.
fn new_id() -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut bytes = [0u8; 8];
    // Without the system's randomness, the clock still tells ids apart (the insert checks).
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (now_ms() as u64).to_le_bytes();
    }
    bytes
        .iter()
        .map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_eight_readable_characters() {
        let id = new_id();
        assert_eq!(id.len(), 8);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
        assert!(!id.contains(['0', '1', 'i', 'l', 'o']), "{id}");
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn placeholders_number_from_the_first() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(placeholders(1, 1), "$1");
    }
}
