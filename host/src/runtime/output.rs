//! Bounds on what one event may return: a plugin cannot flood a platform or the host.

use crate::bindings::types::{Action, Destination, MediaSource, Outgoing};

/// Checks the number of actions and the total bytes of the strings they carry.
pub(crate) fn check(
    actions: &[Action],
    max_actions: usize,
    max_bytes: usize,
) -> Result<(), String> {
    if actions.len() > max_actions {
        return Err(format!(
            "{} actions; at most {max_actions} per event",
            actions.len()
        ));
    }
    let bytes: usize = actions.iter().map(action_bytes).sum();
    if bytes > max_bytes {
        return Err(format!(
            "{bytes} bytes of text; at most {max_bytes} per event"
        ));
    }
    Ok(())
}

fn action_bytes(action: &Action) -> usize {
    match action {
        Action::Reply(message) => outgoing_bytes(message),
        Action::Send(send) => {
            let to = match &send.to {
                Destination::Channel(channel) => channel.channel_id.len() + len(&channel.guild_id),
                Destination::Direct(user) => user.user_id.len(),
            };
            to + outgoing_bytes(&send.message)
        }
        Action::Edit(edit) => edit.message_id.len() + outgoing_bytes(&edit.message),
        Action::React(react) => react.emoji.len() + len(&react.message_id),
        Action::Delete(id) => id.len(),
        Action::Typing => 0,
    }
}

/// Every string a message carries, text or not: ids and links reach the platform too.
fn outgoing_bytes(message: &Outgoing) -> usize {
    let embeds: usize = message
        .embeds
        .iter()
        .map(|embed| {
            [
                &embed.title,
                &embed.description,
                &embed.url,
                &embed.footer,
                &embed.image_url,
            ]
            .into_iter()
            .map(len)
            .sum::<usize>()
                + embed
                    .fields
                    .iter()
                    .map(|field| field.name.len() + field.value.len())
                    .sum::<usize>()
        })
        .sum();
    let buttons: usize = message
        .buttons
        .iter()
        .map(|button| button.id.len() + button.label.len() + len(&button.url))
        .sum();
    let menu = message.menu.as_ref().map_or(0, |menu| {
        menu.id.len()
            + menu.label.len()
            + menu
                .options
                .iter()
                .map(|option| option.value.len() + option.label.len() + len(&option.description))
                .sum::<usize>()
    });
    let media: usize = message
        .media
        .iter()
        .map(|media| {
            let source = match &media.source {
                MediaSource::Id(id) | MediaSource::Url(id) => id.len(),
            };
            source + len(&media.caption) + len(&media.filename)
        })
        .sum();
    let template = message.template.as_ref().map_or(0, |template| {
        template.name.len()
            + template.language.len()
            + template.parameters.iter().map(String::len).sum::<usize>()
    });
    message.text.len() + embeds + buttons + menu + media + template
}

fn len(text: &Option<String>) -> usize {
    text.as_deref().map_or(0, str::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> Action {
        Action::Reply(Outgoing {
            text: text.to_owned(),
            embeds: vec![],
            buttons: vec![],
            menu: None,
            media: vec![],
            template: None,
            ephemeral: false,
            mentions: Default::default(),
        })
    }

    #[test]
    fn counts_actions_and_text_bytes() {
        assert!(check(&[reply("hi"), Action::Typing], 2, 10).is_ok());
        assert_eq!(
            check(&[Action::Typing, Action::Typing, Action::Typing], 2, 10),
            Err("3 actions; at most 2 per event".to_owned())
        );
        assert_eq!(
            check(&[reply("hello"), reply("world!")], 5, 10),
            Err("11 bytes of text; at most 10 per event".to_owned())
        );
    }
}
