//! The `queue` interface: tickets are resources of the instance, so an event that ends,
//! traps or times out gives its places back with its store.

use wasmtime::component::Resource;

use super::{QueueError, Queues, Ticket};
use crate::{
    capabilities::{Capability, check_name},
    runtime::{
        HostState,
        bindings::wasmbot::plugin::queue::{self as wit, QueueError as WitError},
    },
};

/// The longest operation name.
const MAX_NAME_BYTES: usize = 64;

impl HostState {
    fn queues(&mut self) -> Result<&Queues, WitError> {
        self.grant(Capability::Queue).map_err(WitError::Denied)?;
        self.services
            .queues
            .as_deref()
            .ok_or_else(|| WitError::Denied("this host runs without queues".to_owned()))
    }
}

impl wit::Host for HostState {
    async fn enter(&mut self, operation: String) -> Result<Resource<Ticket>, WitError> {
        check_name("operation name", &operation, MAX_NAME_BYTES).map_err(WitError::Invalid)?;
        let (concurrency, length) = self.queue_limits;
        let plugin = self.plugin.clone();
        let ticket = self
            .queues()?
            .enter(&plugin, &operation, concurrency, length)
            .await
            .map_err(|error| match error {
                QueueError::Busy { retry_after, .. } => {
                    WitError::Busy(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX))
                }
                QueueError::Shedding => WitError::Shedding(error.to_string()),
                QueueError::TooManyQueues => WitError::Invalid(error.to_string()),
            })?;
        self.table
            .push(ticket)
            .map_err(|error| WitError::Shedding(format!("no room for the ticket: {error}")))
    }
}

impl wit::HostTicket for HostState {
    async fn drop(&mut self, ticket: Resource<Ticket>) -> wasmtime::Result<()> {
        self.table.delete(ticket)?;
        Ok(())
    }
}
