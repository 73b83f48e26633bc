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
    exports: { default: async },
    additional_derives: [PartialEq],
});

pub use self::wasmbot::plugin::types;

/// The contract's package, as components name its interfaces (`wasmbot:plugin/log@0.1.4`).
pub const CONTRACT_PACKAGE: &str = "wasmbot:plugin";
/// The oldest contract version this host links.
pub const CONTRACT_OLDEST: &str = "0.1.0";
/// The newest: the `package` line of `wit/world.wit`.
pub const CONTRACT_VERSION: &str = "0.1.4";

/// Whether a component built against contract `version` links here: a 0.1.x release only
/// adds to the one before, so every 0.1.x up to this host's links against it.
pub fn accepts(version: &semver::Version) -> bool {
    let (Ok(oldest), Ok(newest)) = (
        semver::Version::parse(CONTRACT_OLDEST),
        semver::Version::parse(CONTRACT_VERSION),
    ) else {
        return false;
    };
    (version.major, version.minor) == (newest.major, newest.minor)
        && *version >= oldest
        && *version <= newest
        && version.pre.is_empty()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_version_is_the_one_in_wit() {
        let wit = include_str!("../../wit/world.wit");
        let package = format!("package {CONTRACT_PACKAGE}@{CONTRACT_VERSION};");
        assert!(wit.lines().any(|line| line == package), "{package}");
    }

    #[test]
    fn every_released_0_1_version_is_accepted_and_nothing_newer() {
        let accepted = |v: &str| accepts(&semver::Version::parse(v).unwrap());
        for version in ["0.1.0", "0.1.3", CONTRACT_VERSION] {
            assert!(accepted(version), "{version}");
        }
        for version in ["0.1.99", "0.2.0", "1.0.0", "0.0.9", "0.1.4-rc.1"] {
            assert!(!accepted(version), "{version}");
        }
    }
}
