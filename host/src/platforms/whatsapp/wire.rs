//! From an action's message to the Graph API's message bodies: text, reply buttons, lists,
//! media, templates, within WhatsApp's limits. One `Outgoing` may be several WhatsApp
//! messages (its text with buttons, a list, each media file).

use serde_json::{Value, json};

use super::payload::ROW_SEPARATOR;
use crate::bindings::types::{MediaKind, MediaSource, Outgoing};

/// WhatsApp's limits (characters).
const TEXT_MAX: usize = 4096;
const INTERACTIVE_BODY_MAX: usize = 1024;
const BUTTONS_MAX: usize = 3;
const BUTTON_TITLE_MAX: usize = 20;
const ROWS_MAX: usize = 10;
const ROW_TITLE_MAX: usize = 24;
const ROW_DESCRIPTION_MAX: usize = 72;
const CAPTION_MAX: usize = 1024;

/// The bodies to post for `message` to `to`, in order; `reply_to` quotes the user's
/// message in the first. Templates go alone: outside the window nothing else may.
pub fn messages(to: &str, reply_to: Option<&str>, message: &Outgoing) -> Vec<Value> {
    let mut bodies = Vec::new();
    if let Some(template) = &message.template {
        let mut content = json!({
            "name": template.name,
            "language": { "code": template.language },
        });
        if !template.parameters.is_empty() {
            let parameters: Vec<Value> = template
                .parameters
                .iter()
                .map(|text| json!({ "type": "text", "text": text }))
                .collect();
            content["components"] = json!([{ "type": "body", "parameters": parameters }]);
        }
        bodies.push(json!({ "type": "template", "template": content }));
    } else {
        let text = full_text(message);
        let replies: Vec<_> = message
            .buttons
            .iter()
            .filter(|button| button.url.is_none() && !button.disabled)
            .collect();
        if replies.len() > BUTTONS_MAX {
            tracing::debug!(
                dropped = replies.len() - BUTTONS_MAX,
                "WhatsApp shows at most 3 reply buttons"
            );
        }
        if !replies.is_empty() {
            let buttons: Vec<Value> = replies
                .iter()
                .take(BUTTONS_MAX)
                .map(|button| {
                    json!({ "type": "reply", "reply": {
                        "id": button.id,
                        "title": cut(&button.label, BUTTON_TITLE_MAX),
                    }})
                })
                .collect();
            bodies.push(json!({ "type": "interactive", "interactive": {
                "type": "button",
                "body": { "text": cut(or_default(&text), INTERACTIVE_BODY_MAX) },
                "action": { "buttons": buttons },
            }}));
        } else if message.menu.is_none() && !text.trim().is_empty() {
            bodies.push(json!({ "type": "text", "text": {
                "body": cut(&text, TEXT_MAX),
                "preview_url": false,
            }}));
        }
        if let Some(menu) = &message.menu {
            let rows: Vec<Value> = menu
                .options
                .iter()
                .take(ROWS_MAX)
                .map(|option| {
                    let mut row = json!({
                        "id": format!("{}{ROW_SEPARATOR}{}", menu.id, option.value),
                        "title": cut(&option.label, ROW_TITLE_MAX),
                    });
                    if let Some(description) = &option.description {
                        row["description"] = cut(description, ROW_DESCRIPTION_MAX).into();
                    }
                    row
                })
                .collect();
            // A list's text is the message's unless the buttons already carried it.
            let body = if replies.is_empty() { &text } else { "" };
            let label = if menu.label.is_empty() {
                "Choose"
            } else {
                &menu.label
            };
            bodies.push(json!({ "type": "interactive", "interactive": {
                "type": "list",
                "body": { "text": cut(or_default(body), INTERACTIVE_BODY_MAX) },
                "action": {
                    "button": cut(label, BUTTON_TITLE_MAX),
                    "sections": [{ "title": cut(label, ROW_TITLE_MAX), "rows": rows }],
                },
            }}));
        }
        for media in &message.media {
            let kind = kind_name(media.kind);
            let mut content = match &media.source {
                MediaSource::Id(id) => json!({ "id": id }),
                MediaSource::Url(url) => json!({ "link": url }),
            };
            if let Some(caption) = &media.caption
                && !matches!(media.kind, MediaKind::Audio | MediaKind::Sticker)
            {
                content["caption"] = cut(caption, CAPTION_MAX).into();
            }
            if let (MediaKind::Document, Some(name)) = (media.kind, &media.filename) {
                content["filename"] = name.clone().into();
            }
            let mut body = json!({ "type": kind });
            body[kind] = content;
            bodies.push(body);
        }
    }
    for (index, body) in bodies.iter_mut().enumerate() {
        body["messaging_product"] = "whatsapp".into();
        body["recipient_type"] = "individual".into();
        body["to"] = to.into();
        if let (0, Some(id)) = (index, reply_to) {
            body["context"] = json!({ "message_id": id });
        }
    }
    bodies
}

/// A reaction to a user's message.
pub fn reaction(to: &str, message_id: &str, emoji: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "reaction",
        "reaction": { "message_id": message_id, "emoji": emoji },
    })
}

/// Marks the user's message read and shows "typing..." (until the answer, or 25 s).
pub fn typing(message_id: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": message_id,
        "typing_indicator": { "type": "text" },
    })
}

/// The message's text with what WhatsApp has no place for written out: embeds, link
/// buttons.
fn full_text(message: &Outgoing) -> String {
    let mut text = message.text.clone();
    let mut line = |part: &str| {
        if !part.is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(part);
        }
    };
    for embed in &message.embeds {
        if let Some(title) = &embed.title {
            line(&format!("*{title}*"));
        }
        line(embed.description.as_deref().unwrap_or_default());
        for field in &embed.fields {
            line(&format!("{}: {}", field.name, field.value));
        }
        line(embed.url.as_deref().unwrap_or_default());
        line(embed.footer.as_deref().unwrap_or_default());
    }
    for button in &message.buttons {
        if let Some(url) = &button.url {
            line(&format!("{}: {url}", button.label));
        }
    }
    text
}

/// Interactive messages need a body.
fn or_default(text: &str) -> &str {
    if text.trim().is_empty() { "…" } else { text }
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
    }
}

/// At most `max` characters, cut at a character boundary.
fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{Button, ButtonStyle, Media, Menu, MenuOption, Template};

    fn button(id: &str, label: &str) -> Button {
        Button {
            id: id.into(),
            label: label.into(),
            style: ButtonStyle::Primary,
            url: None,
            disabled: false,
        }
    }

    #[test]
    fn text_quotes_the_message_it_answers() {
        let bodies = messages("4915", Some("wamid.1"), &Outgoing::text_only("hi"));
        assert_eq!(
            bodies,
            [json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915",
                "type": "text", "text": { "body": "hi", "preview_url": false },
                "context": { "message_id": "wamid.1" },
            })]
        );
    }

    #[test]
    fn buttons_lists_and_media_within_limits() {
        let mut message = Outgoing::text_only("Pick");
        message.buttons = (0..4)
            .map(|i| button(&format!("menu/b{i}"), "A label longer than twenty"))
            .collect();
        message.menu = Some(Menu {
            id: "menu/size".into(),
            label: "Sizes".into(),
            options: vec![MenuOption {
                value: "l".into(),
                label: "Large".into(),
                description: None,
            }],
            min_values: 1,
            max_values: 1,
        });
        message.media = vec![Media {
            kind: MediaKind::Document,
            source: MediaSource::Url("https://x/a.pdf".into()),
            caption: Some("menu".into()),
            filename: Some("a.pdf".into()),
        }];
        let bodies = messages("4915", None, &message);
        assert_eq!(bodies.len(), 3);
        let buttons = &bodies[0]["interactive"]["action"]["buttons"];
        assert_eq!(buttons.as_array().unwrap().len(), 3);
        assert_eq!(buttons[0]["reply"]["id"], "menu/b0");
        assert_eq!(buttons[0]["reply"]["title"], "A label longer than ");
        assert_eq!(bodies[0]["interactive"]["body"]["text"], "Pick");
        let row = &bodies[1]["interactive"]["action"]["sections"][0]["rows"][0];
        assert_eq!(row["id"], "menu/size\u{1f}l");
        assert_eq!(bodies[2]["document"]["link"], "https://x/a.pdf");
        assert_eq!(bodies[2]["document"]["filename"], "a.pdf");
        assert!(bodies.iter().all(|body| body.get("context").is_none()));
    }

    #[test]
    fn a_template_goes_alone() {
        let mut message = Outgoing::text_only("ignored");
        message.template = Some(Template {
            name: "order_update".into(),
            language: "en_US".into(),
            parameters: vec!["42".into()],
        });
        let bodies = messages("4915", None, &message);
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["template"]["name"], "order_update");
        assert_eq!(
            bodies[0]["template"]["components"][0]["parameters"][0]["text"],
            "42"
        );
    }
}
