//! Where a setting applies: the whole bot, a guild, a channel, a user, or a user in a guild.

use std::fmt;

/// The longest id a scope takes: platform ids are far shorter.
const MAX_ID_BYTES: usize = 128;

/// The scope of a config document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One document for the whole bot.
    Global,
    /// A guild (Discord server, WhatsApp business number).
    Guild(String),
    /// A channel or chat.
    Channel(String),
    /// A user, wherever they are.
    User(String),
    /// A user in one guild.
    Member {
        /// The guild.
        guild: String,
        /// The user.
        user: String,
    },
}

/// The kinds of scope, for per-kind settings such as time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// [`Scope::Global`].
    Global,
    /// [`Scope::Guild`].
    Guild,
    /// [`Scope::Channel`].
    Channel,
    /// [`Scope::User`].
    User,
    /// [`Scope::Member`].
    Member,
}

impl ScopeKind {
    /// The name stored in the database and used in the admin API.
    pub fn name(self) -> &'static str {
        match self {
            ScopeKind::Global => "global",
            ScopeKind::Guild => "guild",
            ScopeKind::Channel => "channel",
            ScopeKind::User => "user",
            ScopeKind::Member => "member",
        }
    }
}

impl Scope {
    /// Its kind.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Global => ScopeKind::Global,
            Scope::Guild(_) => ScopeKind::Guild,
            Scope::Channel(_) => ScopeKind::Channel,
            Scope::User(_) => ScopeKind::User,
            Scope::Member { .. } => ScopeKind::Member,
        }
    }

    /// The id stored next to the kind: empty for global, `guild:user` for a member.
    pub fn id(&self) -> String {
        match self {
            Scope::Global => String::new(),
            Scope::Guild(id) | Scope::Channel(id) | Scope::User(id) => id.clone(),
            Scope::Member { guild, user } => format!("{guild}:{user}"),
        }
    }

    /// Checks the ids: not empty, at most 128 bytes, no control characters, and no `:` in a
    /// member's parts (it separates them in the stored id).
    pub fn check(&self) -> Result<(), String> {
        let check = |id: &str, what: &str| {
            if id.is_empty() {
                Err(format!(
                    "the {what} id of scope {:?} is empty",
                    self.kind().name()
                ))
            } else if id.len() > MAX_ID_BYTES {
                Err(format!("the {what} id is over {MAX_ID_BYTES} bytes"))
            } else if id.chars().any(char::is_control) {
                Err(format!("the {what} id holds control characters"))
            } else {
                Ok(())
            }
        };
        match self {
            Scope::Global => Ok(()),
            Scope::Guild(id) => check(id, "guild"),
            Scope::Channel(id) => check(id, "channel"),
            Scope::User(id) => check(id, "user"),
            Scope::Member { guild, user } if guild.contains(':') || user.contains(':') => {
                Err("a member's guild and user ids cannot contain ':'".to_owned())
            }
            Scope::Member { guild, user } => check(guild, "guild").and(check(user, "user")),
        }
    }

    /// Parses a kind name and an id (as the admin API and the CLI take them).
    pub fn parse(kind: &str, id: &str) -> Result<Self, String> {
        let scope = Self::parse_unchecked(kind, id)?;
        scope.check()?;
        Ok(scope)
    }

    fn parse_unchecked(kind: &str, id: &str) -> Result<Self, String> {
        let need_id = |scope: fn(String) -> Scope| {
            if id.is_empty() {
                Err(format!("scope {kind:?} needs an id"))
            } else {
                Ok(scope(id.to_owned()))
            }
        };
        match kind {
            "global" => Ok(Scope::Global),
            "guild" => need_id(Scope::Guild),
            "channel" => need_id(Scope::Channel),
            "user" => need_id(Scope::User),
            "member" => match id.split_once(':') {
                Some((guild, user)) if !guild.is_empty() && !user.is_empty() => Ok(Scope::Member {
                    guild: guild.to_owned(),
                    user: user.to_owned(),
                }),
                _ => Err("scope \"member\" needs an id of the form guild:user".to_owned()),
            },
            other => Err(format!(
                "unknown scope {other:?}: use global, guild, channel, user or member"
            )),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            _ => write!(f, "{}:{}", self.kind().name(), self.id()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_kind_and_id() {
        for scope in [
            Scope::Global,
            Scope::Guild("g1".into()),
            Scope::Channel("c1".into()),
            Scope::User("u1".into()),
            Scope::Member {
                guild: "g1".into(),
                user: "u1".into(),
            },
        ] {
            assert_eq!(
                Scope::parse(scope.kind().name(), &scope.id()).unwrap(),
                scope
            );
        }
        assert!(Scope::parse("guild", "").is_err());
        assert!(Scope::parse("member", "g1").is_err());
        assert!(Scope::parse("member", "g1:u1:x").is_err());
        assert!(Scope::parse("user", "a\nb").is_err());
        assert!(Scope::parse("guild", &"1".repeat(129)).is_err());
        assert!(
            Scope::parse("planet", "x")
                .unwrap_err()
                .contains("unknown scope")
        );
    }
}
