//! Messages the Graph API could not take (it failed past the retries, or the breaker is
//! open) wait here, in the database, and a sender posts them in order once Meta answers
//! again: a failing API delays messages, it does not lose them. While a user has messages
//! waiting, their new ones queue behind, so they arrive in order.

use std::{collections::HashSet, sync::Arc, sync::Mutex, time::Duration};

use serde_json::Value;
use tokio::sync::Notify;

use super::{
    Traffic,
    graph::{Graph, GraphError},
};
use crate::db::{Database, DbError, now_ms};

/// Messages one round of the sender takes.
const BATCH: i64 = 100;
/// How long a host may be sending one message before another may take it over.
const CLAIM: Duration = Duration::from_secs(60);
/// How often the sender looks when nothing woke it (messages other hosts queued).
const IDLE: Duration = Duration::from_secs(5);

/// The outbox of one host (rows are shared by every host of the bot).
pub struct Outbox {
    db: Database,
    graph: Arc<Graph>,
    traffic: Arc<Traffic>,
    /// Users with messages waiting: theirs queue behind.
    waiting: Mutex<HashSet<String>>,
    wake: Notify,
}

impl Outbox {
    /// The outbox in `db`, sending through `graph`.
    pub fn new(db: Database, graph: Arc<Graph>, traffic: Arc<Traffic>) -> Self {
        Self {
            db,
            graph,
            traffic,
            waiting: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// Whether messages to `recipient` wait here (a new one must go behind them).
    pub fn holds(&self, recipient: &str) -> bool {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.contains(recipient)
    }

    /// Keeps `bodies` for `recipient`, in order.
    pub async fn queue(
        &self,
        phone_id: &str,
        recipient: &str,
        bodies: &[Value],
    ) -> Result<(), DbError> {
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.insert(recipient.to_owned());
        }
        for body in bodies {
            let text = body.to_string();
            self.db
                .run_additive("whatsapp outbox write", || {
                    sqlx::query(
                        "INSERT INTO whatsapp_outbox (phone_id, recipient, body, queued_ms) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(phone_id)
                    .bind(recipient)
                    .bind(&text)
                    .bind(now_ms())
                    .execute(self.db.pool())
                })
                .await?;
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Messages waiting (every host's).
    pub async fn waiting(&self) -> Result<i64, DbError> {
        self.db
            .run("whatsapp outbox count", || {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM whatsapp_outbox")
                    .fetch_one(self.db.pool())
            })
            .await
    }

    /// Sends what waits, oldest first, until the task is aborted.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let outbox = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let pause = match outbox.drain().await {
                    Ok(None) => IDLE,
                    Ok(Some(pause)) => pause,
                    Err(error) => {
                        tracing::warn!("whatsapp outbox unreadable: {error}");
                        IDLE
                    }
                };
                let woken = tokio::select! {
                    _ = outbox.wake.notified() => true,
                    _ = tokio::time::sleep(pause) => false,
                };
                // A message queued while the breaker is open needs no hurry: the pause
                // holds. After the pause itself, no more waiting: the breaker lets a probe
                // through now, and the messages go as soon as it succeeds.
                if woken && outbox.graph.breaker().is_open() {
                    tokio::time::sleep(pause.min(IDLE)).await;
                }
            }
        })
    }

    /// Sends the waiting messages until none is left (`None`) or the API fails again
    /// (`Some(pause)` before the next try).
    async fn drain(&self) -> Result<Option<Duration>, DbError> {
        loop {
            let rows = self
                .db
                .run("whatsapp outbox read", || {
                    sqlx::query_as::<_, (i64, String, String, String)>(
                        "SELECT id, phone_id, recipient, body FROM whatsapp_outbox \
                         WHERE claimed_until < $1 ORDER BY id LIMIT $2",
                    )
                    .bind(now_ms())
                    .bind(BATCH)
                    .fetch_all(self.db.pool())
                })
                .await?;
            if rows.is_empty() {
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                waiting.clear();
                return Ok(None);
            }
            for (id, phone_id, recipient, body) in rows {
                if !self.claim(id).await? {
                    continue;
                }
                let Ok(body) = serde_json::from_str::<Value>(&body) else {
                    tracing::error!(id, "whatsapp outbox message unreadable: dropped");
                    self.remove(id).await?;
                    continue;
                };
                match self.graph.send(&phone_id, &body).await {
                    Ok(_) => {
                        Traffic::count(&self.traffic.sent, 1);
                        tracing::debug!(id, to = %recipient, "whatsapp outbox message sent");
                        self.remove(id).await?;
                    }
                    Err(error) if error.is_transient() => {
                        self.unclaim(id).await?;
                        let pause = match error {
                            GraphError::BreakerOpen(wait) => wait,
                            _ => Duration::from_secs(1),
                        };
                        return Ok(Some(pause));
                    }
                    Err(error) => {
                        Traffic::count(&self.traffic.failed, 1);
                        tracing::error!(id, to = %recipient, "whatsapp outbox message given up: {error}");
                        self.remove(id).await?;
                    }
                }
            }
        }
    }

    async fn claim(&self, id: i64) -> Result<bool, DbError> {
        let now = now_ms();
        let done = self
            .db
            .run("whatsapp outbox claim", || {
                sqlx::query(
                    "UPDATE whatsapp_outbox SET claimed_until = $1 WHERE id = $2 AND claimed_until < $3",
                )
                .bind(now + CLAIM.as_millis() as i64)
                .bind(id)
                .bind(now)
                .execute(self.db.pool())
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unclaim(&self, id: i64) -> Result<(), DbError> {
        self.db
            .run("whatsapp outbox unclaim", || {
                sqlx::query("UPDATE whatsapp_outbox SET claimed_until = 0 WHERE id = $1")
                    .bind(id)
                    .execute(self.db.pool())
            })
            .await?;
        Ok(())
    }

    async fn remove(&self, id: i64) -> Result<(), DbError> {
        self.db
            .run("whatsapp outbox remove", || {
                sqlx::query("DELETE FROM whatsapp_outbox WHERE id = $1")
                    .bind(id)
                    .execute(self.db.pool())
            })
            .await?;
        Ok(())
    }
}
