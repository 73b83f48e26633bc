//! Builders for the manifest a plugin declares.

use std::time::Duration;

use crate::{
    Choice, CommandSpec, Cooldown, CooldownScope, EventType, Localization, Manifest, OptionKind,
    OptionSpec,
};

impl Manifest {
    /// A manifest with a name (lowercase letters, digits and '-') and a semantic version,
    /// on by default in every guild ([`Manifest::enabled_by_default`]).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            commands: Vec::new(),
            events: Vec::new(),
            capabilities: Vec::new(),
            enabled_by_default: true,
        }
    }

    /// Whether a guild whose admins have not turned the plugin on or off gets it (`true`
    /// unless said otherwise). Say `false` for a plugin a guild should opt into: one that
    /// posts on its own, say. The operator's `[plugins.NAME] guild_default` overrides it.
    pub fn enabled_by_default(mut self, enabled: bool) -> Self {
        self.enabled_by_default = enabled;
        self
    }

    /// One line saying what the plugin does.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Declares a command, invoked by prefix, mention or slash.
    pub fn command(mut self, command: CommandSpec) -> Self {
        self.commands.push(command);
        self
    }

    /// Subscribes to an event kind besides the plugin's own commands.
    pub fn on(mut self, event: EventType) -> Self {
        if !self.events.contains(&event) {
            self.events.push(event);
        }
        self
    }

    /// Asks for a host capability (e.g. `"log"`); the operator must grant it.
    pub fn capability(mut self, name: impl Into<String>) -> Self {
        self.capabilities.push(name.into());
        self
    }
}

impl CommandSpec {
    /// A command with its name (lowercase) and the description users see.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            aliases: Vec::new(),
            options: Vec::new(),
            permissions: Vec::new(),
            staff_only: false,
            cooldown: None,
            localizations: Vec::new(),
        }
    }

    /// Another name that invokes the same command.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }

    /// An argument, in the order users type it.
    pub fn option(mut self, option: OptionSpec) -> Self {
        self.options.push(option);
        self
    }

    /// A platform permission the invoking user needs, e.g. `"manage-guild"`.
    pub fn permission(mut self, permission: impl Into<String>) -> Self {
        self.permissions.push(permission.into());
        self
    }

    /// Restricts the command to the guild's staff roles.
    pub fn staff_only(mut self) -> Self {
        self.staff_only = true;
        self
    }

    /// At most `limit` uses per `window` for each user, channel, guild or the whole bot
    /// (`per`); the host refuses the rest before the plugin runs. The window is counted in
    /// whole milliseconds; a limit or a window of 0 makes the host refuse the plugin.
    pub fn cooldown(mut self, per: CooldownScope, limit: u32, window: Duration) -> Self {
        self.cooldown = Some(Cooldown {
            per,
            limit,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        });
        self
    }

    /// The command's description, and optionally its name, in the language `locale` (one
    /// of Discord's locales: `de`, `pt-BR`, `es-ES`...). Discord shows them to users of
    /// that language, as `help` does; `None` keeps the command's own name. Saying a locale
    /// again replaces it.
    pub fn localized(
        mut self,
        locale: impl Into<String>,
        name: Option<&str>,
        description: impl Into<String>,
    ) -> Self {
        let localization = Localization {
            locale: locale.into(),
            name: name.map(str::to_owned),
            description: description.into(),
        };
        self.localizations
            .retain(|known| known.locale != localization.locale);
        self.localizations.push(localization);
        self
    }
}

impl OptionSpec {
    /// An optional argument; see [`OptionSpec::required`].
    pub fn new(name: impl Into<String>, description: impl Into<String>, kind: OptionKind) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            kind,
            required: false,
            choices: Vec::new(),
        }
    }

    /// The command is refused, with its usage, when this argument is missing.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Restricts the argument to the declared values.
    pub fn choice(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.choices.push(Choice {
            name: name.into(),
            value: value.into(),
        });
        self
    }
}
