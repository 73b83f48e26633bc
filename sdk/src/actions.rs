//! Building the actions a handler returns.

use crate::{
    Action, AllowedMentions, Button, ButtonStyle, ChannelRef, Destination, Embed, Menu, MenuOption,
    Outgoing, Platform, React, Send,
};

impl Action {
    /// Answers in the event's conversation.
    pub fn reply(message: impl Into<Outgoing>) -> Self {
        Action::Reply(message.into())
    }

    /// Sends to a channel of a platform.
    pub fn send_to_channel(
        platform: Platform,
        guild_id: Option<String>,
        channel_id: impl Into<String>,
        message: impl Into<Outgoing>,
    ) -> Self {
        Action::Send(Send {
            to: Destination::Channel(ChannelRef {
                platform,
                guild_id,
                channel_id: channel_id.into(),
            }),
            message: message.into(),
        })
    }

    /// Replaces the content of a message the bot sent, e.g. the one whose button was clicked
    /// (`Interaction::message_id`).
    pub fn edit(message_id: impl Into<String>, message: impl Into<Outgoing>) -> Self {
        Action::Edit(crate::Edit {
            message_id: message_id.into(),
            message: message.into(),
        })
    }

    /// Sends a direct message to a user of a platform (on WhatsApp, their `wa_id`).
    pub fn send_direct(
        platform: Platform,
        user_id: impl Into<String>,
        message: impl Into<Outgoing>,
    ) -> Self {
        Action::Send(Send {
            to: Destination::Direct(crate::UserRef {
                platform,
                user_id: user_id.into(),
            }),
            message: message.into(),
        })
    }

    /// Reacts to the event's message with an emoji.
    pub fn react(emoji: impl Into<String>) -> Self {
        Action::React(React {
            message_id: None,
            emoji: emoji.into(),
        })
    }
}

impl Outgoing {
    /// A plain text message, which notifies nobody: a mention or `@everyone` in the text
    /// shows as one but pings no one unless a `mention_*` builder allows it.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
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

    /// Lets the message notify the user `id` where its text mentions them (on Discord,
    /// `<@id>`: the text must hold the mention too).
    pub fn mention_user(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        if !self.mentions.users.contains(&id) {
            self.mentions.users.push(id);
        }
        self
    }

    /// Lets the message notify the role `id` where its text mentions it (on Discord,
    /// `<@&id>`).
    pub fn mention_role(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        if !self.mentions.roles.contains(&id) {
            self.mentions.roles.push(id);
        }
        self
    }

    /// Lets `@everyone` and `@here` in the text notify everyone they name.
    pub fn mention_everyone(mut self) -> Self {
        self.mentions.everyone = true;
        self
    }

    /// Adds a button; a click comes back to this plugin as an interaction with `id`.
    pub fn button(mut self, id: impl Into<String>, label: impl Into<String>) -> Self {
        self.buttons.push(Button {
            id: id.into(),
            label: label.into(),
            style: ButtonStyle::Primary,
            url: None,
            disabled: false,
        });
        self
    }

    /// Adds a button that opens `url` instead of coming back as an interaction.
    pub fn link(mut self, url: impl Into<String>, label: impl Into<String>) -> Self {
        let url = url.into();
        self.buttons.push(Button {
            id: url.clone(),
            label: label.into(),
            style: ButtonStyle::Secondary,
            url: Some(url),
            disabled: false,
        });
        self
    }

    /// Attaches a select menu (Discord) or list (WhatsApp); a choice comes back to this
    /// plugin as an interaction with the menu's id and the chosen values.
    pub fn menu(mut self, menu: Menu) -> Self {
        self.menu = Some(menu);
        self
    }

    /// Makes it a WhatsApp template message (the only kind that may go to a user outside
    /// the 24-hour window): the template's name, language code and body parameters.
    pub fn template(mut self, name: &str, language: &str, parameters: &[&str]) -> Self {
        self.template = Some(crate::Template {
            name: name.to_owned(),
            language: language.to_owned(),
            parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
        });
        self
    }

    /// Adds an embed (Discord); other platforms render its text.
    pub fn embed(mut self, embed: Embed) -> Self {
        self.embeds.push(embed);
        self
    }

    /// Only the invoking user sees the message, where the platform allows it.
    pub fn ephemeral(mut self) -> Self {
        self.ephemeral = true;
        self
    }
}

/// Nobody: what every message starts with.
impl Default for AllowedMentions {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            roles: Vec::new(),
            everyone: false,
        }
    }
}

impl Menu {
    /// A menu with its id and the label of its placeholder (Discord) or of the button that
    /// opens the list (WhatsApp); one value is chosen.
    pub fn new(id: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            label: label.into(),
            options: Vec::new(),
            min_values: 1,
            max_values: 1,
        }
    }

    /// Adds an option: `value` comes back when chosen, users see `label`.
    pub fn option(self, value: impl Into<String>, label: impl Into<String>) -> Self {
        self.option_with(MenuOption {
            value: value.into(),
            label: label.into(),
            description: None,
        })
    }

    /// Adds an option with a line of description under its label.
    pub fn described(
        self,
        value: impl Into<String>,
        label: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.option_with(MenuOption {
            value: value.into(),
            label: label.into(),
            description: Some(description.into()),
        })
    }

    /// Adds an option built elsewhere.
    pub fn option_with(mut self, option: MenuOption) -> Self {
        self.options.push(option);
        self
    }

    /// Lets users choose from `min` to `max` values (Discord; a WhatsApp list takes one).
    pub fn values(mut self, min: u32, max: u32) -> Self {
        self.min_values = min;
        self.max_values = max.max(min);
        self
    }
}

impl From<&str> for Outgoing {
    fn from(text: &str) -> Self {
        Outgoing::text(text)
    }
}

impl From<String> for Outgoing {
    fn from(text: String) -> Self {
        Outgoing::text(text)
    }
}
