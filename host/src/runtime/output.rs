//! Bounds on what one event may return: a plugin cannot flood a platform or the host.

use crate::runtime::bindings::types::{Action, Outgoing};

/// Checks the number of actions and the total bytes of text they carry.
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
        Action::Send(send) => outgoing_bytes(&send.message),
        Action::React(react) => react.emoji.len(),
        Action::Typing => 0,
    }
}

fn outgoing_bytes(message: &Outgoing) -> usize {
    let embeds: usize = message
        .embeds
        .iter()
        .map(|embed| {
            let fields: usize = embed
                .fields
                .iter()
                .map(|f| f.name.len() + f.value.len())
                .sum();
            [&embed.title, &embed.description, &embed.footer]
                .iter()
                .map(|text| text.as_deref().map_or(0, str::len))
                .sum::<usize>()
                + fields
        })
        .sum();
    let buttons: usize = message
        .buttons
        .iter()
        .map(|b| b.id.len() + b.label.len())
        .sum();
    let menu = message.menu.as_ref().map_or(0, |menu| {
        menu.label.len()
            + menu
                .options
                .iter()
                .map(|o| o.label.len() + o.value.len())
                .sum::<usize>()
    });
    message.text.len() + embeds + buttons + menu
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
