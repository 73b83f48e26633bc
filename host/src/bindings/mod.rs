//! The host side of the plugin contract, generated from `wit/`: the newest version, the only
//! one the rest of the host knows. Plugins built against an older major version are adapted
//! to it where calls cross into them, one module per such version ([`v0_1`]).

#![allow(missing_docs)]

pub mod v0_1;

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
        "wasmbot:plugin/schedule": async,
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
pub const CONTRACT_VERSION: &str = "0.2.0";

/// Each major version this host links, oldest and newest release: a release only adds to
/// the one before in its series, so every release of a series links against its newest.
const SERIES: [(&str, &str); 2] = [(CONTRACT_OLDEST, v0_1::NEWEST), ("0.2.0", CONTRACT_VERSION)];

/// Whether a component built against contract `version` links here.
pub fn accepts(version: &semver::Version) -> bool {
    version.pre.is_empty()
        && SERIES.iter().any(|(oldest, newest)| {
            let (Ok(oldest), Ok(newest)) = (
                semver::Version::parse(oldest),
                semver::Version::parse(newest),
            ) else {
                return false;
            };
            (version.major, version.minor) == (newest.major, newest.minor)
                && (oldest..=newest).contains(version)
        })
}

use types::{AllowedMentions, CommandSpec, EventKind, EventType, Outgoing, Platform};

impl Platform {
    /// Every platform.
    pub const ALL: [Platform; 3] = [Platform::Discord, Platform::Whatsapp, Platform::Console];

    /// The platform's name in logs and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Discord => "discord",
            Platform::Whatsapp => "whatsapp",
            Platform::Console => "console",
        }
    }

    /// The platform of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|platform| platform.name() == name)
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
            EventKind::Timer(_) => return None,
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
            mentions: AllowedMentions::default(),
        }
    }
}

impl Default for AllowedMentions {
    /// Nobody: the default of every message.
    fn default() -> Self {
        AllowedMentions {
            users: Vec::new(),
            roles: Vec::new(),
            everyone: false,
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
        let wit = include_str!("../../../wit/world.wit");
        let package = format!("package {CONTRACT_PACKAGE}@{CONTRACT_VERSION};");
        assert!(wit.lines().any(|line| line == package), "{package}");
    }

    #[test]
    fn every_released_version_is_accepted_and_nothing_newer() {
        let accepted = |v: &str| accepts(&semver::Version::parse(v).unwrap());
        for version in ["0.1.0", "0.1.3", "0.1.4", "0.2.0", CONTRACT_VERSION] {
            assert!(accepted(version), "{version}");
        }
        for version in ["0.1.5", "0.2.99", "0.3.0", "1.0.0", "0.0.9", "0.2.0-rc.1"] {
            assert!(!accepted(version), "{version}");
        }
    }
}
