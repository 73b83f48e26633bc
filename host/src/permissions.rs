//! Platform permissions a command may require, by the names manifests use, and what the
//! platform says its user holds (Discord's permission bitfield).

/// The permissions a manifest may name, with their Discord bits.
const KNOWN: &[(&str, u64)] = &[
    ("kick-members", 1 << 1),
    ("ban-members", 1 << 2),
    ("administrator", 1 << 3),
    ("manage-channels", 1 << 4),
    ("manage-guild", 1 << 5),
    ("view-audit-log", 1 << 7),
    ("manage-messages", 1 << 13),
    ("mention-everyone", 1 << 17),
    ("manage-nicknames", 1 << 27),
    ("manage-roles", 1 << 28),
    ("manage-webhooks", 1 << 29),
    ("manage-threads", 1 << 34),
    ("moderate-members", 1 << 40),
];

const ADMINISTRATOR: u64 = 1 << 3;

/// What a user may do where an event happened, as the platform reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions(pub u64);

impl Permissions {
    /// Discord's bitfield as it travels in JSON: a decimal string.
    pub fn parse(bits: &str) -> Option<Self> {
        bits.parse().ok().map(Self)
    }

    /// Whether every one of `names` is held; an administrator holds them all.
    pub fn grant(self, names: &[String]) -> bool {
        self.0 & ADMINISTRATOR != 0
            || names
                .iter()
                .all(|name| bit(name).is_some_and(|bit| self.0 & bit != 0))
    }
}

/// The bit of a permission name; none for a name this host does not know.
pub fn bit(name: &str) -> Option<u64> {
    KNOWN
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, bit)| *bit)
}

/// The names a manifest may use, for error messages.
pub fn names() -> String {
    let names: Vec<&str> = KNOWN.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_permission_is_needed_unless_administrator() {
        let need = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let manage_guild = Permissions(1 << 5);
        assert!(manage_guild.grant(&need(&["manage-guild"])));
        assert!(!manage_guild.grant(&need(&["manage-guild", "ban-members"])));
        assert!(Permissions(ADMINISTRATOR).grant(&need(&["ban-members"])));
        assert!(!Permissions(u64::MAX ^ ADMINISTRATOR).grant(&need(&["teleport"])));
        assert_eq!(Permissions::parse("32"), Some(manage_guild));
        assert_eq!(Permissions::parse("lots"), None);
    }
}
