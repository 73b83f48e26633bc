//! A conversation's last few messages, per plugin: appended one at a time, trimmed to the
//! plugin's limit with every append, so it never grows.

use super::{Conversation, StateStore};
use crate::db::{DbError, now_ms};

/// One remembered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Who wrote it ("user", "assistant"...).
    pub role: String,
    /// What was written.
    pub text: String,
    /// When it was remembered, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

const WHERE: &str = "plugin = $1 AND platform = $2 AND chat_id = $3 AND user_id = $4";

impl StateStore {
    /// Appends a message, then drops all but the last `keep`.
    pub async fn remember(
        &self,
        conversation: &Conversation,
        role: &str,
        text: &str,
        keep: u32,
    ) -> Result<(), DbError> {
        let now = now_ms();
        self.db
            .run_additive("history.write", || {
                sqlx::query(
                    "INSERT INTO chat_history (plugin, platform, chat_id, user_id, role, text, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&conversation.plugin)
                .bind(&conversation.platform)
                .bind(&conversation.chat)
                .bind(&conversation.user)
                .bind(role)
                .bind(text)
                .bind(now)
                .execute(self.db.pool())
            })
            .await?;
        let trim = format!(
            "DELETE FROM chat_history WHERE {WHERE} AND id NOT IN \
             (SELECT id FROM chat_history WHERE {WHERE} ORDER BY id DESC LIMIT $5)"
        );
        self.db
            .run("history.write", || {
                sqlx::query(sqlx::AssertSqlSafe(trim.clone()))
                    .bind(&conversation.plugin)
                    .bind(&conversation.platform)
                    .bind(&conversation.chat)
                    .bind(&conversation.user)
                    .bind(i64::from(keep))
                    .execute(self.db.pool())
            })
            .await
            .map(|_| ())
    }

    /// The kept messages, oldest first.
    pub async fn history(&self, conversation: &Conversation) -> Result<Vec<Turn>, DbError> {
        let read = format!("SELECT role, text, at FROM chat_history WHERE {WHERE} ORDER BY id");
        let rows = self
            .db
            .run_once("history.read", || {
                sqlx::query_as::<_, (String, String, i64)>(sqlx::AssertSqlSafe(read.clone()))
                    .bind(&conversation.plugin)
                    .bind(&conversation.platform)
                    .bind(&conversation.chat)
                    .bind(&conversation.user)
                    .fetch_all(self.db.pool())
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(role, text, at_ms)| Turn { role, text, at_ms })
            .collect())
    }

    /// Forgets the conversation's history.
    pub async fn clear_history(&self, conversation: &Conversation) -> Result<(), DbError> {
        let delete = format!("DELETE FROM chat_history WHERE {WHERE}");
        self.db
            .run("history.write", || {
                sqlx::query(sqlx::AssertSqlSafe(delete.clone()))
                    .bind(&conversation.plugin)
                    .bind(&conversation.platform)
                    .bind(&conversation.chat)
                    .bind(&conversation.user)
                    .execute(self.db.pool())
            })
            .await
            .map(|_| ())
    }
}
