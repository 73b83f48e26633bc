//! The `queue` interface: tickets are resources of the instance, so an event that ends,
//! traps or times out gives its places back with its store.

use std::{collections::HashMap, sync::Arc};

use wasmtime::component::{HasSelf, Linker, Resource};

use super::{Policy as QueuePolicy, QueueError, Queues, Ticket};
use crate::{
    bindings::wasmbot::plugin::queue::{self as wit, QueueError as WitError},
    capabilities::{Backends, Grant, HasContexts, Instance, Policy, Reach, check_name},
};

/// The longest operation name.
const MAX_NAME_BYTES: usize = 64;

/// One instance's queues: its grant, its plugin's limits and the tickets it holds.
pub struct Context {
    queues: Reach<Queues>,
    limits: QueuePolicy,
    /// The tickets the instance holds, by resource handle; dropped with the instance.
    tickets: HashMap<u32, Ticket>,
    next_ticket: u32,
}

impl Context {
    pub(crate) fn new(grant: Grant, _: &Instance, backends: &Backends, policy: &Policy) -> Self {
        Self {
            queues: Reach::new(grant, backends.queues.clone(), "queues"),
            limits: policy.queue.clone(),
            tickets: HashMap::new(),
            next_ticket: 0,
        }
    }
}

pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().queue)
}

impl wit::Host for Context {
    async fn enter(&mut self, operation: String) -> Result<Resource<wit::Ticket>, WitError> {
        check_name("operation name", &operation, MAX_NAME_BYTES).map_err(WitError::Invalid)?;
        let limit = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        let (concurrency, length) = (
            limit(self.limits.queue_concurrency),
            limit(self.limits.queue_length),
        );
        let plugin = Arc::clone(self.queues.plugin());
        let ticket = self
            .queues
            .get(WitError::Denied, WitError::Denied)?
            .enter(&plugin, &operation, concurrency, length)
            .await
            .map_err(|error| match error {
                QueueError::Busy { retry_after, .. } => {
                    WitError::Busy(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX))
                }
                QueueError::Shedding => WitError::Shedding(error.to_string()),
                QueueError::TooManyQueues => WitError::Invalid(error.to_string()),
            })?;
        let handle = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.tickets.insert(handle, ticket);
        Ok(Resource::new_own(handle))
    }
}

impl wit::HostTicket for Context {
    async fn drop(&mut self, ticket: Resource<wit::Ticket>) -> wasmtime::Result<()> {
        self.tickets.remove(&ticket.rep());
        Ok(())
    }
}
