//! Reading events: the command and its typed arguments, the text, the interaction, the
//! timer.

use crate::{Command, Event, EventKind, Interaction, Message, Timer, Value};

impl Event {
    /// The command, when this event is one of the plugin's commands.
    pub fn command(&self) -> Option<&Command> {
        match &self.kind {
            EventKind::Command(command) => Some(command),
            _ => None,
        }
    }

    /// The message, when this event is a plain message.
    pub fn message(&self) -> Option<&Message> {
        match &self.kind {
            EventKind::Message(message) => Some(message),
            _ => None,
        }
    }

    /// The button, menu or list reply, when this event is one.
    pub fn interaction(&self) -> Option<&Interaction> {
        match &self.kind {
            EventKind::Interaction(interaction) => Some(interaction),
            _ => None,
        }
    }

    /// The timer, when this event is one the plugin set ([`crate::schedule`]) come due.
    pub fn timer(&self) -> Option<&Timer> {
        match &self.kind {
            EventKind::Timer(timer) => Some(timer),
            _ => None,
        }
    }

    /// The language to answer in, where the platform says (`en-US`, `pt-BR`): the user's,
    /// else the guild's. Discord's interactions carry them; messages and WhatsApp do not.
    pub fn locale(&self) -> Option<&str> {
        self.author
            .locale
            .as_deref()
            .or(self.guild_locale.as_deref())
    }

    /// The text the user wrote: a message's text or a command's arguments as typed.
    pub fn text(&self) -> &str {
        match &self.kind {
            EventKind::Message(message) => &message.text,
            EventKind::Command(command) => &command.raw_args,
            _ => "",
        }
    }
}

impl Command {
    /// The argument named `name`, when the user gave it.
    pub fn arg(&self, name: &str) -> Option<&Value> {
        self.args
            .iter()
            .find(|argument| argument.name == name)
            .map(|argument| &argument.value)
    }

    /// A text, rest-of-line, user, channel or role argument.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.arg(name)? {
            Value::Text(text) | Value::User(text) | Value::Channel(text) | Value::Role(text) => {
                Some(text)
            }
            _ => None,
        }
    }

    /// An integer argument.
    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.arg(name)? {
            Value::Integer(value) => Some(*value),
            _ => None,
        }
    }

    /// A number argument; integers are widened.
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.arg(name)? {
            Value::Number(value) => Some(*value),
            Value::Integer(value) => Some(*value as f64),
            _ => None,
        }
    }

    /// A boolean argument.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.arg(name)? {
            Value::Boolean(value) => Some(*value),
            _ => None,
        }
    }
}
