//! Actions for Discord: the replies to an interaction waiting for its answer become that
//! answer; everything else goes through the REST API.

use std::sync::Arc;

use anyhow::Context as _;
use futures::future::BoxFuture;
use serde_json::json;
use serenity::all::{ChannelId, Http, MessageId, ReactionType};

use super::{gateway::Connection, interactions::Answers, wire};
use crate::{
    bindings::types::{Action, Destination, Event, EventKind, Platform},
    dispatch::{Outlet, SendFailure},
};

/// Where the dispatcher delivers Discord actions.
pub struct DiscordOutlet {
    answers: Arc<Answers>,
    rest: Option<Arc<Http>>,
    connection: Option<Arc<Connection>>,
}

impl DiscordOutlet {
    /// Answers interactions through `answers`; other actions go through `rest` when there
    /// is one (HTTP-interactions-only deployments have none). `connection` is the gateway's.
    pub fn new(
        answers: Arc<Answers>,
        rest: Option<Arc<Http>>,
        connection: Option<Arc<Connection>>,
    ) -> Self {
        Self {
            answers,
            rest,
            connection,
        }
    }

    /// The answers interactions wait for.
    pub fn answers(&self) -> &Arc<Answers> {
        &self.answers
    }

    /// The gateway's connection state, when there is a gateway.
    pub fn connection(&self) -> Option<&Arc<Connection>> {
        self.connection.as_ref()
    }

    async fn carry_out(&self, origin: &Event, action: Action) -> anyhow::Result<()> {
        if let Action::Reply(message) = &action
            && self.answers.reply(&origin.id, message)
        {
            return Ok(());
        }
        let rest = self
            .rest
            .as_ref()
            .context("no bot token: only replies to interactions can be sent")?;
        let here = || snowflake(&origin.channel_id).map(ChannelId::new);
        // The message the event came from: a prefix command's too.
        let origin_message = match &origin.kind {
            EventKind::Message(message) => Some(message.id.as_str()),
            EventKind::Command(command) => command.message_id.as_deref(),
            _ => None,
        };
        match action {
            Action::Reply(message) => {
                let mut body = wire::message(&message);
                if let Some(id) = origin_message {
                    body["message_reference"] =
                        json!({ "message_id": id, "fail_if_not_exists": false });
                    // The asker hears the answer to their command, as with any Discord
                    // reply; it is the only mention a reply may make.
                    body["allowed_mentions"]["replied_user"] = json!(true);
                }
                rest.send_message(here()?, Vec::new(), &body).await?;
            }
            Action::Send(send) => {
                let channel = match &send.to {
                    Destination::Channel(channel) => {
                        ChannelId::new(snowflake(&channel.channel_id)?)
                    }
                    Destination::Direct(user) => {
                        snowflake(&user.user_id)?;
                        let dm = json!({ "recipient_id": user.user_id });
                        rest.create_private_channel(&dm).await?.id
                    }
                };
                rest.send_message(channel, Vec::new(), &wire::message(&send.message))
                    .await?;
            }
            Action::React(react) => {
                let Some(message) = react.message_id.as_deref().or(origin_message) else {
                    // A slash command has no message of its own to react to.
                    tracing::debug!(platform = "discord", "reaction skipped: no message");
                    return Ok(());
                };
                let emoji = ReactionType::try_from(react.emoji.as_str())
                    .unwrap_or_else(|_| ReactionType::Unicode(react.emoji.clone()));
                rest.create_reaction(here()?, MessageId::new(snowflake(message)?), &emoji)
                    .await?;
            }
            Action::Typing => rest.broadcast_typing(here()?).await?,
            Action::Edit(edit) => {
                let body = wire::message(&edit.message);
                let id = MessageId::new(snowflake(&edit.message_id)?);
                rest.edit_message(here()?, id, &body, Vec::new()).await?;
            }
            Action::Delete(id) => {
                let id = MessageId::new(snowflake(&id)?);
                rest.delete_message(here()?, id, None).await?;
            }
        }
        Ok(())
    }
}

impl Outlet for DiscordOutlet {
    fn platform(&self) -> Platform {
        Platform::Discord
    }

    fn connected(&self) -> bool {
        self.connection
            .as_ref()
            .is_none_or(|connection| connection.connected())
    }

    fn deliver<'a>(
        &'a self,
        origin: &'a Event,
        _plugin: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async move { Ok(self.carry_out(origin, action).await?) })
    }
}

/// A Discord id: a non-zero number.
fn snowflake(id: &str) -> anyhow::Result<u64> {
    id.parse::<u64>()
        .ok()
        .filter(|id| *id != 0)
        .with_context(|| format!("{id:?} is not a Discord id"))
}
