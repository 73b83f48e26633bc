//! What plugins built against contract 0.1.x import of the capabilities. The interfaces
//! 0.2 left unchanged are served by the newest implementations, registered a second time
//! under their 0.1 names (`wasmbot:plugin/log@0.1.4`; wasmtime links a 0.1.0 to 0.1.3
//! import to it as semver-compatible); `messaging`, whose action changed, converts and calls
//! the newest (`bindings::v0_1` has the conversions).

use wasmtime::component::{HasSelf, Linker, LinkerInstance};

use super::{
    Contexts, HasContexts, config_store, counters, log, messaging, metrics, queue, rate_limit,
    state, storage,
};
use crate::bindings::{
    v0_1::{self, NEWEST, messaging as old_messaging, types as old},
    wasmbot::plugin as newest,
};

/// Links what a 0.1 plugin imports beside the newest contract.
pub(super) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn under<'a, T>(
        linker: &'a mut Linker<T>,
        interface: &str,
    ) -> wasmtime::Result<LinkerInstance<'a, T>> {
        linker.instance(&format!("wasmbot:plugin/{interface}@{NEWEST}"))
    }
    newest::log::add_to_linker_instance::<T, HasSelf<log::Context>>(
        &mut under(linker, "log")?,
        |t| &mut t.contexts().log,
    )?;
    newest::config::add_to_linker_instance::<T, HasSelf<config_store::Context>>(
        &mut under(linker, "config")?,
        |t| &mut t.contexts().config,
    )?;
    newest::host_config::add_to_linker_instance::<T, HasSelf<config_store::host_config::Context>>(
        &mut under(linker, "host-config")?,
        |t| &mut t.contexts().host_config,
    )?;
    newest::counters::add_to_linker_instance::<T, HasSelf<counters::Context>>(
        &mut under(linker, "counters")?,
        |t| &mut t.contexts().counters,
    )?;
    newest::state::add_to_linker_instance::<T, HasSelf<state::Context>>(
        &mut under(linker, "state")?,
        |t| &mut t.contexts().state,
    )?;
    newest::storage::add_to_linker_instance::<T, HasSelf<storage::Context>>(
        &mut under(linker, "storage")?,
        |t| &mut t.contexts().storage,
    )?;
    newest::rate_limit::add_to_linker_instance::<T, HasSelf<rate_limit::Context>>(
        &mut under(linker, "rate-limit")?,
        |t| &mut t.contexts().rate_limit,
    )?;
    newest::queue::add_to_linker_instance::<T, HasSelf<queue::Context>>(
        &mut under(linker, "queue")?,
        |t| &mut t.contexts().queue,
    )?;
    newest::metrics::add_to_linker_instance::<T, HasSelf<metrics::Context>>(
        &mut under(linker, "metrics")?,
        |t| &mut t.contexts().metrics,
    )?;
    old_messaging::add_to_linker::<T, HasSelf<messaging::Context>>(linker, |t| {
        &mut t.contexts().messaging
    })?;
    old::add_to_linker::<T, HasSelf<Contexts>>(linker, |t| t.contexts())
}

impl old::Host for Contexts {}

impl old_messaging::Host for messaging::Context {
    async fn act(&mut self, action: old::Action) -> Result<(), old_messaging::SendError> {
        use newest::messaging::{Host, SendError as New};
        use old_messaging::SendError as Old;
        Host::act(self, v0_1::action(action))
            .await
            .map_err(|error| match error {
                New::Denied(text) => Old::Denied(text),
                New::OutsideWindow(text) => Old::OutsideWindow(text),
                New::Rejected(text) => Old::Rejected(text),
                New::Unavailable(text) => Old::Unavailable(text),
            })
    }

    async fn download(
        &mut self,
        media_id: String,
    ) -> Result<old_messaging::MediaFile, old_messaging::MediaError> {
        use newest::messaging::{Host, MediaError as New};
        use old_messaging::MediaError as Old;
        match Host::download(self, media_id).await {
            Ok(file) => Ok(old_messaging::MediaFile {
                mime_type: file.mime_type,
                bytes: file.bytes,
            }),
            Err(error) => Err(match error {
                New::Denied(text) => Old::Denied(text),
                New::NotFound(text) => Old::NotFound(text),
                New::TooLarge(text) => Old::TooLarge(text),
                New::WrongType(text) => Old::WrongType(text),
                New::Unavailable(text) => Old::Unavailable(text),
            }),
        }
    }
}
