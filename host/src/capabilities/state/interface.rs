//! The `state` interface: a plugin's conversation state, checked against its grant, in its
//! own namespace.

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use super::{Conversation, StateStore};
use crate::{
    bindings::wasmbot::plugin::state::{self as wit, StateError},
    capabilities::{Backends, Grant, HasContexts, Instance, Policy, Reach, check_name},
};

/// The longest chat or user id.
const MAX_ID_BYTES: usize = 128;
/// The longest role name in a history.
const MAX_ROLE_BYTES: usize = 32;

/// One instance's conversation state: its grant, the host's store and the plugin's
/// history length.
pub struct Context {
    store: Reach<StateStore>,
    history_turns: u32,
}

impl Context {
    pub(crate) fn new(grant: Grant, _: &Instance, backends: &Backends, policy: &Policy) -> Self {
        Self {
            store: Reach::new(grant, backends.state.clone(), "state"),
            history_turns: policy.state.history_turns,
        }
    }

    fn state(&mut self) -> Result<&StateStore, StateError> {
        self.store.get(StateError::Denied, StateError::Unavailable)
    }

    fn conversation(&self, conversation: wit::Conversation) -> Result<Conversation, StateError> {
        check_name("chat id", &conversation.chat_id, MAX_ID_BYTES).map_err(StateError::Invalid)?;
        check_name("user id", &conversation.user_id, MAX_ID_BYTES).map_err(StateError::Invalid)?;
        Ok(Conversation {
            plugin: self.store.plugin().to_string(),
            platform: conversation.platform.name().to_owned(),
            chat: conversation.chat_id,
            user: conversation.user_id,
        })
    }
}

pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().state)
}

fn unavailable(error: crate::db::DbError) -> StateError {
    StateError::Unavailable(error.to_string())
}

impl wit::Host for Context {
    async fn get(&mut self, conversation: wit::Conversation) -> Result<Option<String>, StateError> {
        let conversation = self.conversation(conversation)?;
        self.state()?.get(&conversation).await.map_err(unavailable)
    }

    async fn set(
        &mut self,
        conversation: wit::Conversation,
        value: String,
        ttl_seconds: u32,
    ) -> Result<(), StateError> {
        let conversation = self.conversation(conversation)?;
        let store = self.state()?;
        let limit = store.config().max_bytes;
        if value.len() > limit {
            return Err(StateError::TooLarge(format!(
                "the state is {} bytes; the limit is {limit}",
                value.len()
            )));
        }
        let ttl = Duration::from_secs(u64::from(ttl_seconds));
        store
            .set(&conversation, &value, ttl)
            .await
            .map_err(unavailable)
    }

    async fn clear(&mut self, conversation: wit::Conversation) -> Result<(), StateError> {
        let conversation = self.conversation(conversation)?;
        self.state()?
            .clear(&conversation)
            .await
            .map_err(unavailable)
    }

    async fn remember(
        &mut self,
        conversation: wit::Conversation,
        role: String,
        text: String,
    ) -> Result<(), StateError> {
        let conversation = self.conversation(conversation)?;
        check_name("role", &role, MAX_ROLE_BYTES).map_err(StateError::Invalid)?;
        let keep = self.history_turns;
        let store = self.state()?;
        let limit = store.config().max_bytes;
        if text.len() > limit {
            return Err(StateError::TooLarge(format!(
                "the message is {} bytes; the limit is {limit}",
                text.len()
            )));
        }
        store
            .remember(&conversation, &role, &text, keep)
            .await
            .map_err(unavailable)
    }

    async fn history(
        &mut self,
        conversation: wit::Conversation,
    ) -> Result<Vec<wit::Turn>, StateError> {
        let conversation = self.conversation(conversation)?;
        let turns = self
            .state()?
            .history(&conversation)
            .await
            .map_err(unavailable)?;
        Ok(turns
            .into_iter()
            .map(|turn| wit::Turn {
                role: turn.role,
                text: turn.text,
                timestamp_ms: u64::try_from(turn.at_ms).unwrap_or_default(),
            })
            .collect())
    }

    async fn clear_history(&mut self, conversation: wit::Conversation) -> Result<(), StateError> {
        let conversation = self.conversation(conversation)?;
        let store = self.state()?;
        store
            .clear_history(&conversation)
            .await
            .map_err(unavailable)
    }
}
