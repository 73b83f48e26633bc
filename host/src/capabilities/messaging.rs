//! The `messaging` interface: actions carried out while the handler runs, with the
//! platform's verdict, and media downloads, both through a [`Messenger`] the dispatcher
//! attaches to the instance for the event it handles.

use std::sync::Arc;

use futures::future::BoxFuture;
use wasmtime::component::{HasSelf, Linker};

use super::{Backends, Grant, HasContexts, Instance, Policy};
use crate::bindings::{
    types::{Action, Event},
    wasmbot::plugin::messaging::{self as wit, SendError},
};

/// Where a plugin's mid-handler actions go: the dispatcher's outlets, answering one event.
pub trait Messenger: Send + Sync {
    /// The event the actions answer.
    fn origin(&self) -> &Event;

    /// Carries out one action of `plugin` now.
    fn act<'a>(&'a self, plugin: &'a str, action: Action)
    -> BoxFuture<'a, Result<(), SendFailure>>;

    /// Downloads a media file from the event's platform.
    fn download<'a>(&'a self, media_id: &'a str) -> BoxFuture<'a, Result<MediaFile, MediaError>>;
}

/// Why a platform did not carry out an action, in the terms a plugin can act on. Platforms
/// say which it is; a plain error is an outage.
#[derive(Debug, thiserror::Error)]
pub enum SendFailure {
    /// Outside the platform's window for free-form messages (WhatsApp's 24 hours).
    #[error("{0:#}")]
    OutsideWindow(anyhow::Error),
    /// The platform refused it for good; trying again will not help.
    #[error("{0:#}")]
    Rejected(anyhow::Error),
    /// The platform could not be reached, or failed for now.
    #[error("{0:#}")]
    Unavailable(anyhow::Error),
}

impl From<anyhow::Error> for SendFailure {
    fn from(error: anyhow::Error) -> Self {
        SendFailure::Unavailable(error)
    }
}

/// A media file a platform holds, downloaded within the host's size cap.
#[derive(Debug, Clone)]
pub struct MediaFile {
    /// Its MIME type, as announced and served.
    pub mime_type: String,
    /// Its content.
    pub bytes: bytes::Bytes,
}

/// Why a media file could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// No such media on the platform.
    #[error("{0}")]
    NotFound(String),
    /// Over the host's size cap.
    #[error("{0}")]
    TooLarge(String),
    /// Not of the type the platform announced.
    #[error("{0}")]
    WrongType(String),
    /// The platform cannot be reached now.
    #[error("{0}")]
    Unavailable(String),
}

/// One instance's messaging: its grant, the event's messenger and the actions it has left.
pub struct Context {
    grant: Grant,
    messenger: Option<Arc<dyn Messenger>>,
    acts_left: usize,
}

impl Context {
    pub(crate) fn new(grant: Grant, instance: &Instance, _: &Backends, _: &Policy) -> Self {
        Self {
            grant,
            messenger: None,
            acts_left: instance.actions,
        }
    }

    /// Where this event's actions go.
    pub fn attach(&mut self, messenger: Arc<dyn Messenger>) {
        self.messenger = Some(messenger);
    }

    /// No event's way out and a whole event's allowance, for a kept instance's next event.
    pub(crate) fn next_event(&mut self, actions: usize) {
        self.messenger = None;
        self.acts_left = actions;
    }

    fn messenger(&mut self) -> Result<Arc<dyn Messenger>, String> {
        self.grant.check()?;
        self.messenger
            .clone()
            .ok_or_else(|| "no event is being handled".to_owned())
    }
}

pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().messaging)
}

impl wit::Host for Context {
    async fn act(&mut self, action: Action) -> Result<(), SendError> {
        let messenger = self.messenger().map_err(SendError::Denied)?;
        if self.acts_left == 0 {
            return Err(SendError::Rejected(
                "this event took as many actions as one event may".to_owned(),
            ));
        }
        self.acts_left -= 1;
        let plugin = Arc::clone(self.grant.plugin());
        messenger.act(&plugin, action).await.map_err(|error| {
            tracing::info!(plugin = &*plugin, event = %messenger.origin().id, "action not carried out: {error:#}");
            let text = error.to_string();
            match error {
                SendFailure::OutsideWindow(_) => SendError::OutsideWindow(text),
                SendFailure::Rejected(_) => SendError::Rejected(text),
                SendFailure::Unavailable(_) => SendError::Unavailable(text),
            }
        })
    }

    async fn download(&mut self, media_id: String) -> Result<wit::MediaFile, wit::MediaError> {
        let messenger = self.messenger().map_err(wit::MediaError::Denied)?;
        match messenger.download(&media_id).await {
            Ok(file) => Ok(wit::MediaFile {
                mime_type: file.mime_type,
                bytes: file.bytes.to_vec(),
            }),
            Err(error) => Err(match error {
                MediaError::NotFound(text) => wit::MediaError::NotFound(text),
                MediaError::TooLarge(text) => wit::MediaError::TooLarge(text),
                MediaError::WrongType(text) => wit::MediaError::WrongType(text),
                MediaError::Unavailable(text) => wit::MediaError::Unavailable(text),
            }),
        }
    }
}
