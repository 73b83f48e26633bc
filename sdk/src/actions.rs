//! Building the actions a handler returns.

use crate::{
    Action, Button, ButtonStyle, ChannelRef, Destination, Embed, Outgoing, Platform, React, Send,
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

    /// Reacts to the event's message with an emoji.
    pub fn react(emoji: impl Into<String>) -> Self {
        Action::React(React {
            message_id: None,
            emoji: emoji.into(),
        })
    }
}

impl Outgoing {
    /// A plain text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            embeds: Vec::new(),
            buttons: Vec::new(),
            menu: None,
            media: Vec::new(),
            template: None,
            ephemeral: false,
        }
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
