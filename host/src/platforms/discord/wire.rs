//! Outgoing messages in Discord's JSON: the body of a channel message, an edit, an
//! interaction answer. One rendering for the REST API and the HTTP interactions endpoint.

use serde_json::{Value, json};

use crate::bindings::types::{AllowedMentions, Button, ButtonStyle, Embed, Menu, Outgoing};

/// Discord's `flags` bit for a message only its addressee sees (interaction answers only).
pub const EPHEMERAL: u64 = 1 << 6;
/// Discord's limits: message length, embeds per message, buttons per row, rows per message.
const MAX_CONTENT: usize = 2000;
const MAX_EMBEDS: usize = 10;
const BUTTONS_PER_ROW: usize = 5;
const MAX_ROWS: usize = 5;

/// The message body for `message`: content, embeds, buttons (rows of five) and a select
/// menu, mentioning only whom the message allows (see [`mentions`]). What Discord cannot show (templates,
/// media by platform id) is left out with a debug line; content over Discord's limit is
/// cut rather than refused.
pub fn message(message: &Outgoing) -> Value {
    let mut body = json!({
        "content": truncate(&message.text, MAX_CONTENT),
        "allowed_mentions": mentions(&message.mentions),
    });
    let embeds: Vec<Value> = message
        .embeds
        .iter()
        .take(MAX_EMBEDS)
        .map(embed)
        .chain(message.media.iter().filter_map(media_embed))
        .take(MAX_EMBEDS)
        .collect();
    if !embeds.is_empty() {
        body["embeds"] = json!(embeds);
    }
    let components = components(&message.buttons, message.menu.as_ref());
    if !components.is_empty() {
        body["components"] = json!(components);
    }
    if message.template.is_some() {
        tracing::debug!(platform = "discord", "template dropped: WhatsApp only");
    }
    body
}

/// Discord's `allowed_mentions` for a message: only the users and roles it names (at most
/// Discord's hundred each), and `@everyone` when it says so; nobody by default. Without
/// it, Discord pings whatever the content names, and answers echo their users' text, so
/// `@everyone`, `@here`, `<@&role>` or `<@user>` in a reply would ping them. Mentions stay
/// visible as text. A reply may add `replied_user` (the asker only).
pub fn mentions(allowed: &AllowedMentions) -> Value {
    const MAX: usize = 100;
    let parse: &[&str] = if allowed.everyone { &["everyone"] } else { &[] };
    let mut value = json!({ "parse": parse });
    if !allowed.users.is_empty() {
        value["users"] = json!(allowed.users.iter().take(MAX).collect::<Vec<_>>());
    }
    if !allowed.roles.is_empty() {
        value["roles"] = json!(allowed.roles.iter().take(MAX).collect::<Vec<_>>());
    }
    value
}

/// Action rows: the buttons five to a row, then the menu in a row of its own.
pub fn components(buttons: &[Button], menu: Option<&Menu>) -> Vec<Value> {
    let mut rows: Vec<Value> = buttons
        .chunks(BUTTONS_PER_ROW)
        .map(|row| json!({ "type": 1, "components": row.iter().map(button).collect::<Vec<_>>() }))
        .collect();
    if let Some(menu) = menu {
        let options: Vec<Value> = menu
            .options
            .iter()
            .take(25)
            .map(|option| {
                let mut value = json!({ "label": option.label, "value": option.value });
                if let Some(description) = &option.description {
                    value["description"] = json!(description);
                }
                value
            })
            .collect();
        rows.push(json!({ "type": 1, "components": [{
            "type": 3,
            "custom_id": menu.id,
            "placeholder": menu.label,
            "options": options,
            "min_values": menu.min_values,
            "max_values": menu.max_values.max(menu.min_values).max(1),
        }]}));
    }
    rows.truncate(MAX_ROWS);
    rows
}

fn button(button: &Button) -> Value {
    match &button.url {
        Some(url) => json!({
            "type": 2, "style": 5, "label": button.label, "url": url, "disabled": button.disabled,
        }),
        None => json!({
            "type": 2,
            "style": style(button.style),
            "label": button.label,
            "custom_id": button.id,
            "disabled": button.disabled,
        }),
    }
}

fn style(style: ButtonStyle) -> u8 {
    match style {
        ButtonStyle::Primary => 1,
        ButtonStyle::Secondary => 2,
        ButtonStyle::Success => 3,
        ButtonStyle::Danger => 4,
    }
}

fn embed(embed: &Embed) -> Value {
    let mut value = json!({});
    let text = [
        ("title", &embed.title),
        ("description", &embed.description),
        ("url", &embed.url),
    ];
    for (key, text) in text {
        if let Some(text) = text {
            value[key] = json!(text);
        }
    }
    if let Some(color) = embed.color {
        value["color"] = json!(color);
    }
    if let Some(footer) = &embed.footer {
        value["footer"] = json!({ "text": footer });
    }
    if let Some(image) = &embed.image_url {
        value["image"] = json!({ "url": image });
    }
    if !embed.fields.is_empty() {
        value["fields"] = json!(
            embed
                .fields
                .iter()
                .map(|f| json!({ "name": f.name, "value": f.value, "inline": f.inline }))
                .collect::<Vec<_>>()
        );
    }
    value
}

/// Media by link shows as an image embed; Discord has no media ids to send by.
fn media_embed(media: &crate::bindings::types::Media) -> Option<Value> {
    use crate::bindings::types::MediaSource;
    match &media.source {
        MediaSource::Url(url) => Some(json!({ "image": { "url": url } })),
        MediaSource::Id(_) => {
            tracing::debug!(platform = "discord", "media by id dropped: WhatsApp only");
            None
        }
    }
}

/// At most `max` characters, cut on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{MenuOption, Outgoing};

    #[test]
    fn buttons_go_five_to_a_row_and_the_menu_in_its_own() {
        let mut message = Outgoing::text_only("pick");
        message.buttons = (0..7)
            .map(|i| Button {
                id: format!("p/{i}"),
                label: i.to_string(),
                style: ButtonStyle::Primary,
                url: None,
                disabled: false,
            })
            .collect();
        message.menu = Some(Menu {
            id: "p/m".into(),
            label: "choose".into(),
            options: vec![MenuOption {
                value: "a".into(),
                label: "A".into(),
                description: None,
            }],
            min_values: 1,
            max_values: 1,
        });
        let body = super::message(&message);
        let rows = body["components"].as_array().map(Vec::len);
        assert_eq!(rows, Some(3));
        assert_eq!(body["components"][0]["components"][4]["custom_id"], "p/4");
        assert_eq!(body["components"][1]["components"][1]["custom_id"], "p/6");
        assert_eq!(body["components"][2]["components"][0]["type"], 3);
        assert_eq!(body["content"], "pick");
    }

    #[test]
    fn every_message_mentions_no_one() {
        let body = super::message(&Outgoing::text_only("@everyone <@&1> <@2> @here"));
        assert_eq!(body["allowed_mentions"], json!({ "parse": [] }));
    }

    #[test]
    fn content_is_cut_at_discords_limit_on_a_character_boundary() {
        let long = "é".repeat(2500);
        let body = super::message(&Outgoing::text_only(long));
        assert_eq!(
            body["content"].as_str().map(|c| c.chars().count()),
            Some(2000)
        );
    }
}
