//! Actions for WhatsApp: replies, sends, reactions and "typing..." through the Graph API,
//! from the number the user last wrote to. Free-form messages need the user to have written
//! within the customer-service window (24 hours); outside it only templates may go, and
//! anything else is refused with [`SendError::OutsideWindow`]. A message Meta cannot take
//! now waits in the outbox.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use serde_json::Value;

use super::{
    Traffic, WhatsAppConfig,
    graph::{Graph, GraphError, OUTSIDE_WINDOW_CODE},
    inbox::Inbox,
    outbox::Outbox,
    wire,
};
use crate::{
    bindings::types::{Action, Destination, Event, EventKind, Outgoing, Platform},
    db::{DbError, now_ms},
    dispatch::{MediaError, MediaFile, Outlet, SendFailure},
};

/// Why a message to a WhatsApp user was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The user has not written within the window: only a template may be sent.
    #[error(
        "{user} has not written to the bot in the last {hours} h: outside WhatsApp's customer-service window only a template message may be sent (set `template`)"
    )]
    OutsideWindow {
        /// The WhatsApp user.
        user: String,
        /// The window's length.
        hours: u64,
    },
    /// The Graph API refused it, or could not take it and the outbox could not either.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The database failed (the window's record, the outbox).
    #[error("database: {0}")]
    Database(#[from] DbError),
}

/// What a failed send means to the plugin that asked for it.
impl From<SendError> for SendFailure {
    fn from(error: SendError) -> Self {
        let refused = match &error {
            SendError::OutsideWindow { .. } => return SendFailure::OutsideWindow(error.into()),
            SendError::Graph(graph) => !graph.is_transient(),
            SendError::Database(_) => false,
        };
        match refused {
            true => SendFailure::Rejected(error.into()),
            false => SendFailure::Unavailable(error.into()),
        }
    }
}

/// Where the dispatcher delivers WhatsApp actions.
pub struct WhatsAppOutlet {
    graph: Arc<Graph>,
    inbox: Arc<Inbox>,
    outbox: Arc<Outbox>,
    default_phone: String,
    window: Duration,
}

impl WhatsAppOutlet {
    /// Sends through `graph`; the window comes from what `inbox` received.
    pub fn new(graph: Arc<Graph>, inbox: Arc<Inbox>, config: &WhatsAppConfig) -> Self {
        let outbox = Arc::new(Outbox::new(
            inbox.database().clone(),
            Arc::clone(&graph),
            Arc::clone(inbox.traffic()),
        ));
        Self {
            graph,
            inbox,
            outbox,
            default_phone: config.phone_number_ids.first().cloned().unwrap_or_default(),
            window: config.window(),
        }
    }

    /// Starts the outbox's sender.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        self.outbox.start()
    }

    /// The Graph API client.
    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// The messages waiting for the Graph API.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Downloads a media file a user sent (capped, type-checked).
    pub async fn media(&self, media_id: &str) -> Result<MediaFile, GraphError> {
        self.graph.download(media_id).await
    }

    /// Sends `message` to `user`: refused outside the window unless it is a template;
    /// queued in the outbox when the API cannot take it now.
    pub async fn send(
        &self,
        user: &str,
        reply_to: Option<&str>,
        message: &Outgoing,
    ) -> Result<(), SendError> {
        let phone = self.open_window(user, message.template.is_some()).await?;
        let bodies = wire::messages(user, reply_to, message);
        self.post(&phone, user, bodies).await
    }

    /// The number to send from, once the user is within the window (or `template`).
    async fn open_window(&self, user: &str, template: bool) -> Result<String, SendError> {
        let last = self.inbox.last_message(user).await?;
        let within = last
            .as_ref()
            .is_some_and(|last| now_ms() - last.at_ms < self.window.as_millis() as i64);
        if !within && !template {
            Traffic::count(&self.inbox.traffic().failed, 1);
            return Err(self.outside_window(user));
        }
        Ok(last.map_or_else(|| self.default_phone.clone(), |last| last.phone_id))
    }

    fn outside_window(&self, user: &str) -> SendError {
        SendError::OutsideWindow {
            user: user.to_owned(),
            hours: self.window.as_secs() / 3600,
        }
    }

    /// Posts the bodies in order; from the first the API cannot take (or when the user
    /// already has messages waiting), the rest wait in the outbox.
    async fn post(&self, phone: &str, user: &str, bodies: Vec<Value>) -> Result<(), SendError> {
        let traffic = self.inbox.traffic();
        for (index, body) in bodies.iter().enumerate() {
            let result = if self.outbox.holds(user) {
                Err(GraphError::BreakerOpen(Duration::ZERO))
            } else {
                self.graph.send(phone, body).await
            };
            match result {
                Ok(_) => Traffic::count(&traffic.sent, 1),
                Err(error) if error.is_transient() => {
                    tracing::warn!(to = %user, "WhatsApp message queued in the outbox: {error}");
                    let waiting = &bodies[index..];
                    self.outbox.queue(phone, user, waiting).await?;
                    Traffic::count(&traffic.queued, waiting.len());
                    return Ok(());
                }
                Err(GraphError::Rejected { code, .. }) if code == OUTSIDE_WINDOW_CODE => {
                    Traffic::count(&traffic.failed, 1);
                    return Err(self.outside_window(user));
                }
                Err(error) => {
                    Traffic::count(&traffic.failed, 1);
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    async fn carry_out(&self, origin: &Event, action: Action) -> Result<(), SendError> {
        let chat = origin.channel_id.as_str();
        let message_id = match &origin.kind {
            EventKind::Message(message) => Some(message.id.as_str()),
            EventKind::Command(command) => command.message_id.as_deref(),
            _ => None,
        };
        match action {
            Action::Reply(message) => self.send(chat, message_id, &message).await,
            Action::Send(send) => {
                let to = match &send.to {
                    Destination::Channel(channel) => &channel.channel_id,
                    Destination::Direct(user) => &user.user_id,
                };
                self.send(to, None, &send.message).await
            }
            Action::React(react) => {
                let Some(target) = react.message_id.as_deref().or(message_id) else {
                    tracing::debug!("WhatsApp reaction without a message to react to: skipped");
                    return Ok(());
                };
                let phone = self.open_window(chat, false).await?;
                let body = wire::reaction(chat, target, &react.emoji);
                self.post(&phone, chat, vec![body]).await
            }
            Action::Typing => {
                let Some(id) = message_id else {
                    return Ok(());
                };
                let phone = self.open_window(chat, false).await?;
                // "Typing..." is worth nothing late: never queued.
                if let Err(error) = self.graph.send(&phone, &wire::typing(id)).await {
                    tracing::debug!("WhatsApp typing indicator not shown: {error}");
                }
                Ok(())
            }
            Action::Edit(_) | Action::Delete(_) => {
                tracing::debug!("WhatsApp cannot edit or delete messages: action skipped");
                Ok(())
            }
        }
    }
}

impl Outlet for WhatsAppOutlet {
    fn platform(&self) -> Platform {
        Platform::Whatsapp
    }

    fn connected(&self) -> bool {
        !self.graph.breaker().is_open()
    }

    fn counts(&self) -> Vec<(&'static str, u64)> {
        self.inbox.traffic().counts()
    }

    fn deliver<'a>(
        &'a self,
        origin: &'a Event,
        _plugin: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async move { Ok(self.carry_out(origin, action).await?) })
    }

    fn download<'a>(&'a self, media_id: &'a str) -> BoxFuture<'a, Result<MediaFile, MediaError>> {
        Box::pin(async move {
            self.media(media_id).await.map_err(|error| {
                let text = error.to_string();
                match error {
                    GraphError::TooLarge { .. } => MediaError::TooLarge(text),
                    GraphError::WrongType { .. } => MediaError::WrongType(text),
                    GraphError::Rejected { .. } => MediaError::NotFound(text),
                    GraphError::Unavailable { .. } | GraphError::BreakerOpen(_) => {
                        MediaError::Unavailable(text)
                    }
                }
            })
        })
    }
}
