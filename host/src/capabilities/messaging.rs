//! The `messaging` interface: actions carried out while the handler runs, with the
//! platform's verdict, and media downloads, both through the dispatcher's outlets.

use crate::{
    capabilities::Capability,
    dispatch::{MediaError, Messenger},
    platforms::whatsapp::outlet::SendError as WhatsAppError,
    runtime::{
        HostState,
        bindings::{
            types::Action,
            wasmbot::plugin::messaging::{self as wit, MediaFile, SendError},
        },
    },
};

impl HostState {
    fn messenger(&mut self) -> Result<Messenger, String> {
        self.grant(Capability::Messaging)?;
        self.messenger
            .clone()
            .ok_or_else(|| "no event is being handled".to_owned())
    }
}

impl wit::Host for HostState {
    async fn act(&mut self, action: Action) -> Result<(), SendError> {
        let messenger = self.messenger().map_err(SendError::Denied)?;
        if self.acts_left == 0 {
            return Err(SendError::Rejected(
                "this event took as many actions as one event may".to_owned(),
            ));
        }
        self.acts_left -= 1;
        let plugin = self.plugin.clone();
        messenger.act(&plugin, action).await.map_err(|error| {
            let verdict = classify(&error);
            tracing::info!(plugin = &*plugin, event = %messenger.origin().id, "action not carried out: {error:#}");
            verdict
        })
    }

    async fn download(&mut self, media_id: String) -> Result<MediaFile, wit::MediaError> {
        let messenger = self.messenger().map_err(wit::MediaError::Denied)?;
        match messenger.download(&media_id).await {
            Ok(file) => Ok(MediaFile {
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

/// What a platform's failure means to the plugin: WhatsApp's window, a refusal, or an
/// outage.
fn classify(error: &anyhow::Error) -> SendError {
    let text = format!("{error:#}");
    match error.downcast_ref::<WhatsAppError>() {
        Some(WhatsAppError::OutsideWindow { .. }) => SendError::OutsideWindow(text),
        Some(WhatsAppError::Graph(graph)) if !graph.is_transient() => SendError::Rejected(text),
        _ => SendError::Unavailable(text),
    }
}
