//! The host side of the plugin contract, generated from `wit/`.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    imports: {
        "wasmbot:plugin/config": async,
        "wasmbot:plugin/host-config": async,
        "wasmbot:plugin/counters": async,
        "wasmbot:plugin/state": async,
        "wasmbot:plugin/storage": async,
        "wasmbot:plugin/rate-limit": async,
        "wasmbot:plugin/queue": async,
        "wasmbot:plugin/metrics": async,
        "wasmbot:plugin/messaging": async,
    },
    with: {
        "wasmbot:plugin/queue.ticket": crate::capabilities::queue::Ticket,
    },
    exports: { default: async },
    additional_derives: [PartialEq],
});

pub use self::wasmbot::plugin::types;

use types::{CommandSpec, EventKind, EventType, Outgoing, Platform};

impl Platform {
    /// The platform's name in logs and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Discord => "discord",
            Platform::Whatsapp => "whatsapp",
            Platform::Console => "console",
        }
    }
}

impl CommandSpec {
    /// The command's name, then its aliases.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.name).chain(&self.aliases)
    }
}

impl EventType {
    /// The subscription an event of this kind goes to; commands go to their owner instead.
    pub fn of(kind: &EventKind) -> Option<Self> {
        Some(match kind {
            EventKind::Message(_) => EventType::Message,
            EventKind::Command(_) => return None,
            EventKind::Interaction(_) => EventType::Interaction,
            EventKind::MemberJoined => EventType::MemberJoined,
            EventKind::MemberLeft => EventType::MemberLeft,
            EventKind::Reaction(_) => EventType::Reaction,
            EventKind::Delivery(_) => EventType::Delivery,
        })
    }
}

impl Outgoing {
    /// A message with text only.
    pub fn text_only(text: impl Into<String>) -> Self {
        Outgoing {
            text: text.into(),
            embeds: Vec::new(),
            buttons: Vec::new(),
            menu: None,
            media: Vec::new(),
            template: None,
            ephemeral: false,
        }
    }
}

impl Action {
    /// The message this action carries, if any.
    pub fn outgoing_mut(&mut self) -> Option<&mut Outgoing> {
        match self {
            Action::Reply(message) => Some(message),
            Action::Send(send) => Some(&mut send.message),
            Action::Edit(edit) => Some(&mut edit.message),
            Action::React(_) | Action::Typing | Action::Delete(_) => None,
        }
    }
}
