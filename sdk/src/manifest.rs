//! Builders for the manifest a plugin declares.

use crate::{Choice, CommandSpec, EventType, Manifest, OptionKind, OptionSpec};

impl Manifest {
    /// A manifest with a name (lowercase letters, digits and '-') and a semantic version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            commands: Vec::new(),
            events: Vec::new(),
            capabilities: Vec::new(),
        }
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
